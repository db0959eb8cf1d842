//! The HTTP client instant-acme talks through: hyper + rustls like its default,
//! plus our own trust roots for test CAs, a count of every request per CA and
//! result (`renewd_acme_requests_total`) and a note of each `Retry-After` a CA
//! sends with a refusal.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use crate::metrics::Metrics;

type Hyper = Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// How long hyper keeps an idle connection in its pool.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Silence after which the pooled connection may be gone: the pool's limit, or
/// the server's own (nginx closes idle connections after 75 s by default).
const QUIET: Duration = Duration::from_secs(30);

/// Largest response body accepted from a CA. An ACME answer is a few KiB (a
/// chain, an order); this only stops a broken or hostile server from filling
/// memory.
const MAX_RESPONSE: usize = 1 << 20;

/// How long one request may wait for the CA's whole response (connecting and
/// reading the body included).
/// hyper has no limit of its own: a CA that accepts connections and never answers
/// would otherwise hold a renewal forever.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the HTTP client for a CA could not be built.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// The platform's trust store cannot be loaded.
    #[error("system trust store: {0}")]
    TrustStore(#[source] rustls::Error),
    /// rustls refused the TLS configuration.
    #[error(transparent)]
    Tls(rustls::Error),
    /// The `trust` file cannot be read, or holds something else than PEM
    /// certificates.
    #[error("trust {}: {source}", path.display())]
    TrustFile {
        /// `trust`.
        path: PathBuf,
        /// The read or PEM error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate of the `trust` file is not usable as a root.
    #[error("trust {}: {source}", path.display())]
    TrustRoot {
        /// `trust`.
        path: PathBuf,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// The `trust` file holds no certificate.
    #[error("trust {}: no certificate in the file", path.display())]
    NoRoots {
        /// `trust`.
        path: PathBuf,
    },
}

/// An instant-acme HTTP client for one CA.
pub(super) struct CountingClient {
    inner: Hyper,
    ca: String,
    first: Arc<FirstRequest>,
    metrics: Metrics,
    notes: Arc<RetryAfterNotes>,
    created: Arc<CreatedOrders>,
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
        last.is_some_and(|at| at.elapsed() < QUIET)
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
    pub(super) fn new(
        ca: &str,
        trust: Option<&Path>,
        metrics: Metrics,
        (notes, created): (Arc<RetryAfterNotes>, Arc<CreatedOrders>),
    ) -> Result<Self, Error> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match trust {
            None => builder
                .try_with_platform_verifier()
                .map_err(Error::TrustStore)?,
            Some(path) => builder.with_tls_config(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(Error::Tls)?
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
            metrics,
            notes,
            created,
        })
    }
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, Error> {
    let file = |source| Error::TrustFile {
        path: path.to_owned(),
        source,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(file)? {
        roots
            .add(cert.map_err(file)?)
            .map_err(|source| Error::TrustRoot {
                path: path.to_owned(),
                source,
            })?;
    }
    if roots.is_empty() {
        return Err(Error::NoRoots {
            path: path.to_owned(),
        });
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
        let metrics = self.metrics.clone();
        let notes = Arc::clone(&self.notes);
        let created = Arc::clone(&self.created);
        Box::pin(async move {
            let alone = first.wait().await;
            let response =
                tokio::time::timeout(RESPONSE_TIMEOUT, fetch(&inner, req, &ca, &created))
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
            metrics.acme_request(&ca, result);
            if let Ok(r) = &response {
                notes.note(&ca, &r.parts);
            }
            response
        })
    }
}

/// Sends `req` and reads the whole response, at most [`MAX_RESPONSE`] bytes of
/// body, so the caller's timeout covers the body too (an endless or slow body
/// cannot hold a renewal).
async fn fetch(
    client: &Hyper,
    req: http::Request<BodyWrapper<Bytes>>,
    ca: &str,
    created: &CreatedOrders,
) -> Result<BytesResponse, instant_acme::Error> {
    let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
    let response = client.request(req).await.map_err(|e| other(Box::new(e)))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| other(format!("response body: {e} (at most {MAX_RESPONSE} bytes)").into()))?
        .to_bytes();
    created.note(ca, &parts, &body);
    Ok(BytesResponse::from(http::Response::from_parts(
        parts,
        Full::new(body),
    )))
}

/// Orders the CAs created: a `201 Created` with a `Location` and an order in
/// the body. When the ACME library refuses an answer to `newOrder` that did
/// create an order (a CA's quirk, such as not echoing `replaces`), the order is
/// found here and used instead of being abandoned at the CA.
#[derive(Debug, Default)]
pub(super) struct CreatedOrders(std::sync::Mutex<Vec<Created>>);

#[derive(Debug)]
struct Created {
    ca: String,
    at: OffsetDateTime,
    url: String,
    identifiers: Vec<String>,
}

impl CreatedOrders {
    /// How long a note is kept: long past any `newOrder` in flight.
    const KEPT: time::Duration = time::Duration::minutes(10);

    fn note(&self, ca: &str, parts: &http::response::Parts, body: &[u8]) {
        if parts.status != http::StatusCode::CREATED {
            return;
        }
        let Some(url) = parts
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let Ok(order) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if order.get("finalize").is_none() {
            return; // an account, not an order
        }
        let identifiers = order["identifiers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["value"].as_str().map(str::to_owned))
            .collect();
        let now = OffsetDateTime::now_utc();
        let mut created = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        created.retain(|c| now - c.at < Self::KEPT);
        created.push(Created {
            ca: ca.to_owned(),
            at: now,
            url: url.to_owned(),
            identifiers,
        });
    }

    /// The URL of an order CA `ca` created since `since` for exactly
    /// `domains`, taken out of the notes.
    pub(super) fn take(
        &self,
        ca: &str,
        since: OffsetDateTime,
        domains: &[String],
    ) -> Option<String> {
        let mut created = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wanted: Vec<&str> = domains.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        let found = created.iter().position(|c| {
            let mut got: Vec<&str> = c.identifiers.iter().map(String::as_str).collect();
            got.sort_unstable();
            c.ca == ca && c.at >= since && got == wanted
        })?;
        Some(created.remove(found).url)
    }
}

/// `Retry-After` of each CA's latest refusal (429 or 503): when it was received and
/// the time it names. instant-acme's errors carry no headers, so the client notes
/// them here for the renewal that failed (see [`RetryAfterNotes::since`]).
#[derive(Debug, Default)]
pub(super) struct RetryAfterNotes(
    std::sync::Mutex<BTreeMap<String, (OffsetDateTime, OffsetDateTime)>>,
);

impl RetryAfterNotes {
    fn note(&self, ca: &str, parts: &http::response::Parts) {
        if !matches!(parts.status.as_u16(), 429 | 503) {
            return;
        }
        let now = OffsetDateTime::now_utc();
        let Some(until) = parts
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now))
        else {
            return;
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ca.to_owned(), (now, until));
    }

    /// The time CA `ca` named in a `Retry-After` received since `since`, if any.
    pub(super) fn since(&self, ca: &str, since: OffsetDateTime) -> Option<OffsetDateTime> {
        let noted = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        noted
            .get(ca)
            .filter(|(received, _)| *received >= since)
            .map(|(_, until)| *until)
    }
}

/// `body` as the answer to a `newOrder` (noted, then looked up) and as a
/// `Retry-After` value.
#[cfg(fuzzing)]
pub(crate) fn fuzz(body: &[u8]) {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = http::StatusCode::CREATED;
    parts.headers.insert(
        http::header::LOCATION,
        http::HeaderValue::from_static("https://ca.example/order/1"),
    );
    let created = CreatedOrders::default();
    let since = OffsetDateTime::now_utc();
    created.note("ca", &parts, body);
    let _ = created.take("ca", since, &["a.example".to_owned()]);
    if let Ok(value) = std::str::from_utf8(body) {
        let now = OffsetDateTime::now_utc();
        if let Some(at) = parse_retry_after(value, now) {
            let _ = at - now;
        }
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(now + time::Duration::seconds(i64::from(seconds)));
    }
    let imf_fixdate = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(value, imf_fixdate)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// A TLS server on loopback that answers every connection with a 200 whose
    /// body is `size` bytes long; the CA file that trusts it.
    async fn server_sending(size: usize) -> (String, tempfile::TempDir) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/dir",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = [0u8; 4096];
                    let _ = tls.read(&mut request).await;
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(&vec![b'x'; size]).await;
                });
            }
        });
        (url, dir)
    }

    #[tokio::test]
    async fn a_response_body_larger_than_the_limit_is_cut_off_and_named() {
        let (url, dir) = server_sending(MAX_RESPONSE + 1).await;
        let client = CountingClient::new(
            "huge",
            Some(&dir.path().join("ca.pem")),
            Metrics::new(),
            (Arc::default(), Arc::default()),
        )
        .unwrap();
        let request = |url: &str| {
            http::Request::get(url)
                .body(BodyWrapper::from(Vec::new()))
                .unwrap()
        };
        let Err(err) = client.request(request(&url)).await else {
            panic!("a body past the limit was accepted");
        };
        assert!(err.to_string().contains("at most 1048576 bytes"), "{err}");
        // Just under the limit is fine.
        let (url, dir) = server_sending(MAX_RESPONSE).await;
        let client = CountingClient::new(
            "big",
            Some(&dir.path().join("ca.pem")),
            Metrics::new(),
            (Arc::default(), Arc::default()),
        )
        .unwrap();
        let response = client.request(request(&url)).await.unwrap();
        assert!(response.parts.status.is_success());
    }

    #[test]
    fn a_trust_file_without_roots_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = roots(&empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("trust {}: no certificate in the file", empty.display())
        );
        let missing = dir.path().join("missing.pem");
        let err = roots(&missing).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("trust {}: ", missing.display())),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = datetime!(2026-06-01 00:00 UTC);
        assert_eq!(
            parse_retry_after("120", now),
            Some(datetime!(2026-06-01 00:02 UTC))
        );
        assert_eq!(
            parse_retry_after("Mon, 01 Jun 2026 03:04:05 GMT", now),
            Some(datetime!(2026-06-01 03:04:05 UTC))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_refusals_with_retry_after_are_noted() {
        let since = OffsetDateTime::now_utc();
        let response = |status: u16, retry: &str| {
            let (parts, ()) = http::Response::builder()
                .status(status)
                .header("retry-after", retry)
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        let notes = RetryAfterNotes::default();
        notes.note("test-200", &response(200, "60"));
        assert_eq!(notes.since("test-200", since), None);
        notes.note("test-429", &response(429, "60"));
        let until = notes.since("test-429", since).unwrap();
        assert!(until >= since + time::Duration::seconds(60), "{until}");
        // A note older than the attempt does not count.
        assert_eq!(notes.since("test-429", until), None);
    }
}
