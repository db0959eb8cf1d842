//! The HTTP client instant-acme talks through: hyper + rustls like its default,
//! plus our own trust roots for test CAs and a count of every request per CA
//! and result (`renewd_acme_requests_total`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

type Hyper = Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// How long hyper keeps an idle connection in its pool.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// How long one request may wait for the CA's response (connecting included).
/// hyper has no limit of its own: a CA that accepts connections and never answers
/// would otherwise hold a renewal forever.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// An instant-acme HTTP client for one CA.
pub(super) struct CountingClient {
    inner: Hyper,
    ca: String,
    first: Arc<FirstRequest>,
}

/// Lets one request go first when the pool is likely empty.
///
/// hyper learns that a CA speaks HTTP/2 only from a finished TLS handshake; until
/// then every request opens a connection of its own. A mass renewal after hours
/// of idleness would open one connection per order in flight (27 for 32 in a
/// benchmark) and wait for all those handshakes. So after a quiet spell the first
/// request goes alone and the rest follow once it has finished, successful or
/// not, sharing its connection.
#[derive(Default)]
struct FirstRequest {
    gate: tokio::sync::Mutex<()>,
    last_done: std::sync::Mutex<Option<Instant>>,
}

impl FirstRequest {
    fn recent(&self) -> bool {
        let last = *self
            .last_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.is_some_and(|at| at.elapsed() < POOL_IDLE)
    }

    fn done(&self) {
        *self
            .last_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Waits for the first request of a quiet spell, unless this is it: then the
    /// returned guard holds the others back until it is dropped.
    async fn wait(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.recent() {
            return None;
        }
        let guard = self.gate.lock().await;
        (!self.recent()).then_some(guard)
    }
}

impl CountingClient {
    /// Trusts the platform's roots, or only the roots in `trust` when given.
    pub(super) fn new(ca: &str, trust: Option<&Path>) -> Result<Self, String> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match trust {
            None => builder
                .try_with_platform_verifier()
                .map_err(|e| format!("system trust store: {e}"))?,
            Some(path) => builder.with_tls_config(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots(path)?)
                .with_no_client_auth(),
            ),
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        // Without it a new connection's first request waits ~40 ms: the HTTP/2
        // preface is held back by Nagle's algorithm until the CA's delayed ACK for
        // the TLS handshake's last flight.
        tcp.set_nodelay(true);
        let connector = builder
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        Ok(Self {
            inner: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .build(connector),
            ca: ca.to_owned(),
            first: Arc::default(),
        })
    }
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("trust {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("trust {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("trust {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "trust {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(roots)
}

impl HttpClient for CountingClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let inner = self.inner.clone();
        let ca = self.ca.clone();
        let first = Arc::clone(&self.first);
        Box::pin(async move {
            let alone = first.wait().await;
            let response = tokio::time::timeout(RESPONSE_TIMEOUT, HttpClient::request(&inner, req))
                .await
                .unwrap_or_else(|_| {
                    Err(instant_acme::Error::Other(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no response within {} s", RESPONSE_TIMEOUT.as_secs()),
                    ))))
                });
            first.done();
            drop(alone);
            let result = match &response {
                Ok(r) if r.parts.status.is_success() || r.parts.status.is_redirection() => {
                    "success"
                }
                Ok(r) if r.parts.status.is_client_error() => "client_error",
                Ok(_) => "server_error",
                Err(_) => "unreachable",
            };
            crate::metrics::acme_request(&ca, result);
            response
        })
    }
}
