//! acme-ceiling DIRECTORY_URL TRUST_PEM N CONCURRENCY [POLL_MS]
//!
//! Registers one account and gets N certificates (one name each,
//! `cNNNNN.ceiling.example.com`), then renews all N with `replaces`, as a mass
//! renewal does, with at most CONCURRENCY orders in flight, polling every POLL_MS
//! (default 20) ms. Expects a CA that validates without looking (Pebble with
//! PEBBLE_VA_ALWAYS_VALID=1).
//!
//! Talks to benches/run over stdio so that only the renewals are measured:
//! prints `{"issued":..,"issue_wall_s":..}` and waits for a line on stdin; renews,
//! prints `{"n":..,"ok":..,"failed":..,"wall_s":..,"certs_per_s":..}` (`wall_s`
//! from the first newOrder to the last certificate downloaded) and exits at the
//! end of stdin, once its CPU time and peak RSS have been read.
//!
//! Renewing what was issued (rather than timing fresh orders on an empty CA) is
//! what makes this the ceiling of renewd's part (a): Pebble's work per order
//! grows with what it has stored (it scans every authorization on each
//! newOrder), so both must face the same history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::BodyWrapper;
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::Semaphore;

/// Gets a certificate for `name`, replacing `replaces` if given (once more
/// without it if the CA refuses, as renewd does); returns its ARI identifier.
async fn one(
    account: &Account,
    name: String,
    replaces: Option<CertificateIdentifier<'static>>,
    poll: RetryPolicy,
) -> Result<CertificateIdentifier<'static>, String> {
    let ids = [Identifier::Dns(name)];
    let new_order = match replaces {
        Some(id) => NewOrder::new(&ids).replaces(id),
        None => NewOrder::new(&ids),
    };
    let mut order = match account.new_order(&new_order).await {
        Ok(order) => Ok(order),
        Err(_) => account.new_order(&NewOrder::new(&ids)).await,
    }
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
    order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain = order
        .poll_certificate(&poll)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    let leaf = CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .ok_or("empty chain")?
        .map_err(|e| format!("chain: {e}"))?;
    CertificateIdentifier::try_from(&leaf).map_err(|e| format!("ARI id: {e}"))
}

/// Runs one order per name with at most `concurrency` in flight; returns the
/// wall time and, per name, the new certificate's ARI identifier.
async fn batch(
    account: &Account,
    jobs: Vec<(String, Option<CertificateIdentifier<'static>>)>,
    concurrency: usize,
    poll: RetryPolicy,
) -> (f64, Vec<Option<CertificateIdentifier<'static>>>) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let start = Instant::now();
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(name, replaces)| {
            let account = account.clone();
            let permits = Arc::clone(&permits);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                one(&account, name, replaces, poll).await
            })
        })
        .collect();
    let mut issued = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(Ok(id)) => issued.push(Some(id)),
            Ok(Err(e)) => {
                eprintln!("{e}");
                issued.push(None);
            }
            Err(e) => {
                eprintln!("task: {e}");
                issued.push(None);
            }
        }
    }
    (start.elapsed().as_secs_f64(), issued)
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
    let names: Vec<String> = (1..=n)
        .map(|i| format!("c{i:05}.ceiling.example.com"))
        .collect();
    let jobs = names.iter().map(|name| (name.clone(), None)).collect();
    let (issue_wall, issued) = batch(&account, jobs, concurrency, poll).await;
    let count = issued.iter().filter(|id| id.is_some()).count();
    println!("{{\"issued\":{count},\"issue_wall_s\":{issue_wall}}}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");

    let jobs = names.into_iter().zip(issued).collect();
    let (wall, renewed) = batch(&account, jobs, concurrency, poll).await;
    let ok = renewed.iter().filter(|r| r.is_some()).count();
    let failed = n - ok;
    println!(
        "{{\"n\":{n},\"ok\":{ok},\"failed\":{failed},\"wall_s\":{wall},\"certs_per_s\":{}}}",
        ok as f64 / wall
    );
    while std::io::stdin()
        .read_line(&mut line)
        .is_ok_and(|read| read > 0)
    {}
}
