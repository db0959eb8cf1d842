//! cloudflare: create and delete the TXT record through Cloudflare's v4 API
//! with an API token (`Authorization: Bearer`, permission Zone:DNS:Edit).
//!
//! The zone is the nearest of the domain and its parents that
//! `GET /zones?name=` finds; the record is created with
//! `POST /zones/{zone}/dns_records` and deleted by the id Cloudflare returned
//! (or, after a restart, the id `GET /zones/{zone}/dns_records` finds for the
//! same name and value). `api_url` may be plain http, for gateways and tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Record, TTL};

/// The API when `api_url` is not set.
pub(super) const DEFAULT_URL: &str = "https://api.cloudflare.com/client/v4";

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer accepted: a zone or record listing is a few KiB; this only
/// stops a broken or hostile endpoint from filling memory.
const MAX_ANSWER: usize = 1 << 20;

/// Cloudflare's error code for "An identical record already exists."
const IDENTICAL_RECORD: i64 = 81058;

type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why the cloudflare provider could not create or delete a record.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// Cloudflare refused to create the record.
    #[error("cannot create {record} in Cloudflare zone {}: {source}", zone.escape_debug())]
    Create {
        /// The record.
        record: Record,
        /// The zone's name.
        zone: String,
        /// The failed call.
        #[source]
        source: CallError,
    },
    /// The records to delete could not be listed.
    #[error("cannot look up {record} in zone {}: {source}", zone.escape_debug())]
    Find {
        /// The record.
        record: Record,
        /// The zone's name.
        zone: String,
        /// The failed call.
        #[source]
        source: CallError,
    },
    /// Cloudflare refused to delete the record.
    #[error("cannot delete {record} (id {}): {source}", id.escape_debug())]
    Delete {
        /// The record.
        record: Record,
        /// Cloudflare's id of it.
        id: String,
        /// The failed call.
        #[source]
        source: CallError,
    },
    /// The zone holding the record could not be looked up.
    #[error("looking up the Cloudflare zone of {}: {source}", record.fqdn)]
    ZoneLookup {
        /// The record.
        record: Record,
        /// The failed call.
        #[source]
        source: CallError,
    },
    /// No zone holding the record is visible to the token.
    #[error(
        "no Cloudflare zone for {record} (tried {}) is visible to the token in {}: give \
         the token Zone:DNS:Edit on the zone",
        tried.join(", "),
        token_file.display()
    )]
    NoZone {
        /// The record.
        record: Record,
        /// The zone names asked for, nearest first.
        tried: Vec<String>,
        /// `api_token_file`.
        token_file: PathBuf,
    },
}

/// One API call that failed: the request, and why.
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {reason}")]
pub struct CallError {
    method: Method,
    url: String,
    #[source]
    reason: CallFailure,
}

impl CallError {
    /// Whether Cloudflare answered with error `code`.
    fn has_code(&self, code: i64) -> bool {
        matches!(&self.reason, CallFailure::Rejected { errors, .. }
            if errors.iter().any(|e| e.code == code))
    }
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    /// The token file cannot be read.
    #[error("cannot read API token {}: {source}", path.display())]
    Token {
        /// `api_token_file`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The platform's trust store cannot be loaded.
    #[error("system trust store: {0}")]
    TrustStore(#[source] rustls::Error),
    /// The request could not be built (e.g. a malformed `api_url`).
    #[error(transparent)]
    Request(#[from] http::Error),
    /// The request could not be sent (connect, TLS, protocol).
    #[error(transparent)]
    Send(#[from] hyper_util::client::legacy::Error),
    /// The response body could not be read, or is larger than allowed.
    #[error("reading the answer: {0} (at most {MAX_ANSWER} bytes)")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No complete response in time.
    #[error("no answer within {}s", .0.as_secs())]
    Timeout(Duration),
    /// A Cloudflare API answer reporting failure.
    #[error("{}{}", describe(*status, errors), token_hint(*status, token_file))]
    Rejected {
        /// The HTTP status.
        status: StatusCode,
        /// Cloudflare's errors.
        errors: Vec<ApiError>,
        /// `api_token_file`, named when the status says the token is wrong.
        token_file: PathBuf,
    },
    /// An answer that is not Cloudflare's JSON (a proxy's error page, ...).
    #[error(
        "HTTP {status}, not a Cloudflare API answer: {body}{}",
        token_hint(*status, token_file)
    )]
    NotApi {
        /// The HTTP status.
        status: StatusCode,
        /// The start of the body.
        body: String,
        /// `api_token_file`, named when the status says the token is wrong.
        token_file: PathBuf,
    },
}

/// The cloudflare provider of one solver.
#[derive(Debug)]
pub(super) struct Cloudflare {
    base: String,
    token_file: PathBuf,
    /// Built on first use: the platform trust store is only read when needed.
    http: tokio::sync::OnceCell<Http>,
    /// (record name, value) → (zone id, record id) of what we created.
    created: Mutex<HashMap<(String, String), (String, String)>>,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiError>,
    result: Option<T>,
}

/// One entry of an API answer's `errors`.
#[derive(Debug, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct Zone {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct DnsRecord {
    id: String,
}

impl Cloudflare {
    pub(super) fn new(api_url: Option<&str>, token_file: PathBuf) -> Self {
        Self {
            base: api_url
                .unwrap_or(DEFAULT_URL)
                .trim_end_matches('/')
                .to_owned(),
            token_file,
            http: tokio::sync::OnceCell::new(),
            created: Mutex::default(),
        }
    }

    /// Creates the TXT record and remembers its id.
    pub(super) async fn create(&self, record: &Record) -> Result<(), Error> {
        let zone = self.zone(record).await?;
        let body = serde_json::json!({
            "type": "TXT",
            "name": record.api_name(),
            "content": record.value,
            "ttl": TTL,
        });
        let path = format!("/zones/{}/dns_records", path_segment(&zone.id));
        let id = match self
            .call::<DnsRecord>(Method::POST, &path, Some(body))
            .await
        {
            Ok(created) => created.id,
            Err(f) if f.has_code(IDENTICAL_RECORD) => {
                let mut ids = self.find(&zone, record).await?;
                ids.pop().ok_or(f)?
            }
            Err(source) => {
                return Err(Error::Create {
                    record: record.clone(),
                    zone: zone.name,
                    source,
                });
            }
        };
        self.created().insert(record.key(), (zone.id, id));
        Ok(())
    }

    /// Deletes the record created for this name and value (only it).
    pub(super) async fn delete(&self, record: &Record) -> Result<(), Error> {
        let remembered = self.created().remove(&record.key());
        let (zone_id, ids) = match remembered {
            Some((zone_id, id)) => (zone_id, vec![id]),
            None => {
                let zone = self.zone(record).await?;
                let ids = match self.find(&zone, record).await {
                    Ok(ids) => ids,
                    Err(source) => {
                        return Err(Error::Find {
                            record: record.clone(),
                            zone: zone.name,
                            source,
                        });
                    }
                };
                (zone.id, ids)
            }
        };
        for id in ids {
            let path = format!(
                "/zones/{}/dns_records/{}",
                path_segment(&zone_id),
                path_segment(&id)
            );
            if let Err(source) = self
                .call::<serde_json::Value>(Method::DELETE, &path, None)
                .await
            {
                return Err(Error::Delete {
                    record: record.clone(),
                    id,
                    source,
                });
            }
        }
        Ok(())
    }

    /// The ids of the TXT records with `record`'s name and value in `zone`.
    async fn find(&self, zone: &Zone, record: &Record) -> Result<Vec<String>, CallError> {
        let path = format!(
            "/zones/{}/dns_records?type=TXT&name={}&content={}",
            path_segment(&zone.id),
            encode(&record.api_name()),
            encode(&record.value)
        );
        let found: Vec<DnsRecord> = self.call(Method::GET, &path, None).await?;
        Ok(found.into_iter().map(|r| r.id).collect())
    }

    /// The nearest zone holding `record`'s domain that the token can see.
    async fn zone(&self, record: &Record) -> Result<Zone, Error> {
        let candidates = super::query::ancestors(&record.name);
        // The first candidate is the record itself, never a zone apex.
        let candidates: Vec<String> = candidates
            .iter()
            .skip(1)
            .map(|n| n.to_ascii().trim_end_matches('.').to_owned())
            .collect();
        for candidate in &candidates {
            let path = format!("/zones?name={}", encode(candidate));
            let zones: Vec<Zone> = self
                .call(Method::GET, &path, None)
                .await
                .map_err(|source| Error::ZoneLookup {
                    record: record.clone(),
                    source,
                })?;
            if let Some(zone) = zones.into_iter().next() {
                return Ok(zone);
            }
        }
        Err(Error::NoZone {
            record: record.clone(),
            tried: candidates,
            token_file: self.token_file.clone(),
        })
    }

    /// One API call; `result` of a successful answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base);
        let fail = |reason: CallFailure| CallError {
            method: method.clone(),
            url: url.clone(),
            reason,
        };
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|source| {
                fail(CallFailure::Token {
                    path: self.token_file.clone(),
                    source,
                })
            })?;
        let http = self
            .http()
            .await
            .map_err(|e| fail(CallFailure::TrustStore(e)))?;
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", token.trim()))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| fail(e.into()))?;
        let exchange = async {
            let response = http.request(request).await.map_err(|e| fail(e.into()))?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| fail(CallFailure::Body(e)))?
                .to_bytes();
            Ok::<_, CallError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| fail(CallFailure::Timeout(REQUEST_TIMEOUT)))??;
        answer(status, &bytes, &self.token_file).map_err(fail)
    }

    async fn http(&self) -> Result<&Http, rustls::Error> {
        self.http
            .get_or_try_init(|| async {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .try_with_platform_verifier()?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(connector))
            })
            .await
    }

    fn created(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, String)>> {
        self.created.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `result` of an API answer with `status` and `body`, or why there is none.
fn answer<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    token_file: &Path,
) -> Result<T, CallFailure> {
    let envelope: Option<Envelope<T>> = serde_json::from_slice(body).ok();
    match envelope {
        Some(Envelope {
            success: true,
            result: Some(result),
            ..
        }) if status.is_success() => Ok(result),
        Some(envelope) => Err(CallFailure::Rejected {
            status,
            errors: envelope.errors,
            token_file: token_file.to_owned(),
        }),
        None => Err(CallFailure::NotApi {
            status,
            body: shown(&body[..body.len().min(200)]),
            token_file: token_file.to_owned(),
        }),
    }
}

/// The start of a body that is not an API answer, as the log shows it: its
/// control characters escaped, so a proxy's page cannot forge log lines.
fn shown(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .trim()
        .escape_debug()
        .to_string()
}

/// The `cloudflare_answer` fuzz target: `body` as the answer to each call,
/// with a success and a failure status. Every failure must render on one line.
#[cfg(fuzzing)]
pub(super) fn fuzz(body: &[u8]) {
    fn check<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Option<T> {
        match answer::<T>(status, body, Path::new("/etc/renewd/cloudflare.token")) {
            Ok(result) => Some(result),
            Err(e) => {
                let shown = e.to_string();
                assert!(!shown.contains('\n'), "{shown:?}");
                None
            }
        }
    }
    for status in [StatusCode::OK, StatusCode::FORBIDDEN] {
        for zone in check::<Vec<Zone>>(status, body).into_iter().flatten() {
            let _ = path_segment(&zone.id);
            let _ = zone.name;
        }
        if let Some(record) = check::<DnsRecord>(status, body) {
            assert!(!path_segment(&record.id).contains('/'));
        }
        let _ = check::<Vec<DnsRecord>>(status, body);
        let _ = check::<serde_json::Value>(status, body);
    }
}

/// An id from an API answer as one segment of a request path: an id such
/// as `../../user/tokens` must not walk to another endpoint.
fn path_segment(id: &str) -> String {
    encode(id)
}

/// What to check when the API refused the token; empty for other statuses.
fn token_hint(status: StatusCode, token_file: &Path) -> String {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        format!(
            " (check the token in {}: it needs Zone:DNS:Edit)",
            token_file.display()
        )
    } else {
        String::new()
    }
}

fn describe(status: StatusCode, errors: &[ApiError]) -> String {
    let errors: Vec<String> = errors
        .iter()
        .map(|e| format!("[{}] {}", e.code, e.message.escape_debug()))
        .collect();
    if errors.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", errors.join("; "))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_what_they_say_stays_on_one_line() {
        let token = Path::new("/etc/renewd/cf.token");
        let zones: Vec<Zone> = answer(
            StatusCode::OK,
            br#"{"success":true,"errors":[],"result":[{"id":"z1","name":"example.com"}]}"#,
            token,
        )
        .unwrap();
        assert_eq!(
            (zones[0].id.as_str(), zones[0].name.as_str()),
            ("z1", "example.com")
        );
        let rejected = answer::<Vec<Zone>>(
            StatusCode::FORBIDDEN,
            br#"{"success":false,"errors":[{"code":9109,"message":"bad\nINFO forged"}]}"#,
            token,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            rejected,
            "HTTP 403 Forbidden: [9109] bad\\nINFO forged (check the token in \
             /etc/renewd/cf.token: it needs Zone:DNS:Edit)"
        );
        let proxy = answer::<Vec<Zone>>(StatusCode::BAD_GATEWAY, b"<h1>502</h1>\r\nx", token)
            .unwrap_err()
            .to_string();
        assert_eq!(
            proxy,
            "HTTP 502 Bad Gateway, not a Cloudflare API answer: <h1>502</h1>\\r\\nx"
        );
    }

    #[test]
    fn ids_from_an_answer_stay_one_path_segment() {
        assert_eq!(path_segment("023e105f4ecef8ad"), "023e105f4ecef8ad");
        assert_eq!(
            path_segment("../../user/tokens?x"),
            "..%2F..%2Fuser%2Ftokens%3Fx"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("_acme-challenge.a.example.com"),
            "_acme-challenge.a.example.com"
        );
        assert_eq!(encode("a b&c=\"d\""), "a%20b%26c%3D%22d%22");
    }

    #[test]
    fn errors_quote_cloudflare_codes_and_the_status() {
        let errors = vec![ApiError {
            code: 9109,
            message: "Invalid access token".into(),
        }];
        assert_eq!(
            describe(StatusCode::FORBIDDEN, &errors),
            "HTTP 403 Forbidden: [9109] Invalid access token"
        );
        assert_eq!(
            describe(StatusCode::BAD_GATEWAY, &[]),
            "HTTP 502 Bad Gateway"
        );
    }

    #[test]
    fn a_refused_call_names_the_request_cloudflare_s_errors_and_the_token_file() {
        let call = CallError {
            method: Method::GET,
            url: "https://api.example/client/v4/zones?name=example.com".into(),
            reason: CallFailure::Rejected {
                status: StatusCode::FORBIDDEN,
                errors: vec![ApiError {
                    code: 9109,
                    message: "Invalid access token".into(),
                }],
                token_file: "/etc/renewd/cf.token".into(),
            },
        };
        assert!(call.has_code(9109) && !call.has_code(IDENTICAL_RECORD));
        assert_eq!(
            call.to_string(),
            "GET https://api.example/client/v4/zones?name=example.com: HTTP 403 Forbidden: \
             [9109] Invalid access token (check the token in /etc/renewd/cf.token: it needs \
             Zone:DNS:Edit)"
        );
        let record = Record::new("a.example.com", "v").unwrap();
        let err = Error::ZoneLookup {
            record: record.clone(),
            source: call,
        };
        assert!(
            err.to_string().starts_with(
                "looking up the Cloudflare zone of _acme-challenge.a.example.com.: GET "
            ),
            "{err}"
        );
        let not_api = CallFailure::NotApi {
            status: StatusCode::BAD_GATEWAY,
            body: "<html>".into(),
            token_file: "/t".into(),
        };
        assert_eq!(
            not_api.to_string(),
            "HTTP 502 Bad Gateway, not a Cloudflare API answer: <html>"
        );
        let no_zone = Error::NoZone {
            record,
            tried: vec!["a.example.com".into(), "example.com".into()],
            token_file: "/etc/renewd/cf.token".into(),
        };
        assert_eq!(
            no_zone.to_string(),
            "no Cloudflare zone for _acme-challenge.a.example.com. TXT \"v\" (tried \
             a.example.com, example.com) is visible to the token in /etc/renewd/cf.token: give \
             the token Zone:DNS:Edit on the zone"
        );
    }

    #[tokio::test]
    async fn an_unreadable_token_is_named() {
        let cf = Cloudflare::new(Some("http://127.0.0.1:9"), "/nonexistent/token".into());
        let record = Record::new("a.example.com", "v").unwrap();
        let err = cf.create(&record).await.unwrap_err().to_string();
        assert!(
            err.contains("cannot read API token /nonexistent/token"),
            "{err}"
        );
    }
}
