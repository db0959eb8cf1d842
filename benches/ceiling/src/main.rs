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
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::BodyWrapper;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
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

/// hyper + rustls trusting only `trust_pem`, with TCP_NODELAY (as renewd).
fn http_client(
    trust_pem: &str,
) -> Client<HttpsConnector<HttpConnector>, BodyWrapper<bytes::Bytes>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(trust_pem).expect("trust") {
        roots.add(cert.expect("trust")).expect("trust");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new()).build(connector)
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
    let (account, _) = Account::builder_with_http(Box::new(http_client(&args[2])))
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
