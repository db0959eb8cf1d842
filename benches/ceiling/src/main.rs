//! acme-ceiling DIRECTORY_URL TRUST_PEM N CONCURRENCY [POLL_MS]
//!
//! Registers one account, then gets N certificates (one name each,
//! `cNNNNN.ceiling.example.com`) with at most CONCURRENCY orders in flight, polling
//! every POLL_MS (default 20) ms. Expects a CA that validates without looking
//! (Pebble with PEBBLE_VA_ALWAYS_VALID=1). Prints one JSON line:
//! `{"n":..,"ok":..,"failed":..,"wall_s":..,"certs_per_s":..}`; the wall time runs
//! from the first newOrder to the last certificate downloaded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use tokio::sync::Semaphore;

async fn one(account: &Account, name: String, poll: RetryPolicy) -> Result<(), String> {
    let ids = [Identifier::Dns(name)];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("newOrder: {e}"))?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("authz: {e}"))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or("no http-01 challenge")?;
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge: {e}"))?;
    }
    match order.poll_ready(&poll).await {
        Ok(OrderStatus::Ready) => {}
        other => return Err(format!("order not ready: {other:?}")),
    }
    order.finalize().await.map_err(|e| format!("finalize: {e}"))?;
    order
        .poll_certificate(&poll)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: acme-ceiling DIRECTORY_URL TRUST_PEM N CONCURRENCY [POLL_MS]");
        std::process::exit(2);
    }
    let n: usize = args[3].parse().expect("N");
    let concurrency: usize = args[4].parse().expect("CONCURRENCY");
    let poll_ms: u64 = args.get(5).map_or(20, |s| s.parse().expect("POLL_MS"));
    let poll = RetryPolicy::new()
        .initial_delay(Duration::from_millis(poll_ms))
        .backoff(1.0)
        .timeout(Duration::from_secs(300));
    let (account, _) = Account::builder_with_root(&args[2])
        .expect("trust")
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            args[1].clone(),
            None,
        )
        .await
        .expect("newAccount");
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let start = Instant::now();
    let tasks: Vec<_> = (1..=n)
        .map(|i| {
            let account = account.clone();
            let permits = Arc::clone(&permits);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                one(&account, format!("c{i:05}.ceiling.example.com"), poll).await
            })
        })
        .collect();
    let (mut ok, mut failed) = (0usize, 0usize);
    for task in tasks {
        match task.await {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("{e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("task: {e}");
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{{\"n\":{n},\"ok\":{ok},\"failed\":{failed},\"wall_s\":{wall},\"certs_per_s\":{}}}",
        ok as f64 / wall
    );
}
