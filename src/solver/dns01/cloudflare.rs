//! cloudflare: create and delete the TXT record through Cloudflare's v4 API
//! with an API token (`Authorization: Bearer`, permission Zone:DNS:Edit).
//!
//! The zone is the nearest of the domain and its parents that
//! `GET /zones?name=` finds; the record is created with
//! `POST /zones/{zone}/dns_records` and deleted by the id Cloudflare returned
//! (or, after a restart, the id `GET /zones/{zone}/dns_records` finds for the
//! same name and value). `api_url` may be plain http, for gateways and tests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
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

/// Cloudflare's error code for "An identical record already exists."
const IDENTICAL_RECORD: i64 = 81058;

type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

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

#[derive(Debug, Deserialize)]
struct ApiError {
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

/// A failed API call: the HTTP status (if there was an answer) and Cloudflare's errors.
#[derive(Debug)]
struct Failure {
    codes: Vec<i64>,
    message: String,
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
    pub(super) async fn create(&self, record: &Record) -> Result<(), String> {
        let zone = self.zone(record).await?;
        let body = serde_json::json!({
            "type": "TXT",
            "name": record.api_name(),
            "content": record.value,
            "ttl": TTL,
        });
        let path = format!("/zones/{}/dns_records", zone.id);
        let id = match self
            .call::<DnsRecord>(Method::POST, &path, Some(body))
            .await
        {
            Ok(created) => created.id,
            Err(f) if f.codes.contains(&IDENTICAL_RECORD) => {
                let mut ids = self.find(&zone, record).await.map_err(|f| f.message)?;
                ids.pop().ok_or_else(|| f.message.clone())?
            }
            Err(f) => {
                return Err(format!(
                    "cannot create {record} in Cloudflare zone {}: {}",
                    zone.name, f.message
                ));
            }
        };
        self.created().insert(record.key(), (zone.id, id));
        Ok(())
    }

    /// Deletes the record created for this name and value (only it).
    pub(super) async fn delete(&self, record: &Record) -> Result<(), String> {
        let remembered = self.created().remove(&record.key());
        let (zone_id, ids) = match remembered {
            Some((zone_id, id)) => (zone_id, vec![id]),
            None => {
                let zone = self.zone(record).await?;
                let ids = self.find(&zone, record).await.map_err(|f| {
                    format!(
                        "cannot look up {record} in zone {}: {}",
                        zone.name, f.message
                    )
                })?;
                (zone.id, ids)
            }
        };
        for id in ids {
            let path = format!("/zones/{zone_id}/dns_records/{id}");
            self.call::<serde_json::Value>(Method::DELETE, &path, None)
                .await
                .map_err(|f| format!("cannot delete {record} (id {id}): {}", f.message))?;
        }
        Ok(())
    }

    /// The ids of the TXT records with `record`'s name and value in `zone`.
    async fn find(&self, zone: &Zone, record: &Record) -> Result<Vec<String>, Failure> {
        let path = format!(
            "/zones/{}/dns_records?type=TXT&name={}&content={}",
            zone.id,
            encode(&record.api_name()),
            encode(&record.value)
        );
        let found: Vec<DnsRecord> = self.call(Method::GET, &path, None).await?;
        Ok(found.into_iter().map(|r| r.id).collect())
    }

    /// The nearest zone holding `record`'s domain that the token can see.
    async fn zone(&self, record: &Record) -> Result<Zone, String> {
        let candidates = super::query::ancestors(&record.name);
        // The first candidate is the record itself, never a zone apex.
        let candidates: Vec<String> = candidates
            .iter()
            .skip(1)
            .map(|n| n.to_ascii().trim_end_matches('.').to_owned())
            .collect();
        for candidate in &candidates {
            let path = format!("/zones?name={}", encode(candidate));
            let zones: Vec<Zone> = self.call(Method::GET, &path, None).await.map_err(|f| {
                format!(
                    "looking up the Cloudflare zone of {}: {}",
                    record.fqdn, f.message
                )
            })?;
            if let Some(zone) = zones.into_iter().next() {
                return Ok(zone);
            }
        }
        Err(format!(
            "no Cloudflare zone for {record} (tried {}) is visible to the token in {}: give \
             the token Zone:DNS:Edit on the zone",
            candidates.join(", "),
            self.token_file.display()
        ))
    }

    /// One API call; `result` of a successful answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        let url = format!("{}{path}", self.base);
        let shown = format!("{method} {url}");
        let fail = |message: String| Failure {
            codes: Vec::new(),
            message: format!("{shown}: {message}"),
        };
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot read API token {}: {e}",
                    self.token_file.display()
                ))
            })?;
        let http = self.http().await.map_err(fail)?;
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", token.trim()))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| fail(e.to_string()))?;
        let exchange = async {
            let response = http
                .request(request)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(e.to_string()))?
                .to_bytes();
            Ok::<_, Failure>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| fail(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())))??;
        let envelope: Option<Envelope<T>> = serde_json::from_slice(&bytes).ok();
        match envelope {
            Some(Envelope {
                success: true,
                result: Some(result),
                ..
            }) if status.is_success() => Ok(result),
            Some(envelope) => Err(Failure {
                codes: envelope.errors.iter().map(|e| e.code).collect(),
                message: format!(
                    "{shown}: {}{}",
                    describe(status, &envelope.errors),
                    self.token_hint(status)
                ),
            }),
            None => Err(fail(format!(
                "HTTP {status}, not a Cloudflare API answer: {}{}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim(),
                self.token_hint(status)
            ))),
        }
    }

    fn token_hint(&self, status: StatusCode) -> String {
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            format!(
                " (check the token in {}: it needs Zone:DNS:Edit)",
                self.token_file.display()
            )
        } else {
            String::new()
        }
    }

    async fn http(&self) -> Result<&Http, String> {
        self.http
            .get_or_try_init(|| async {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .try_with_platform_verifier()
                    .map_err(|e| format!("system trust store: {e}"))?
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

fn describe(status: StatusCode, errors: &[ApiError]) -> String {
    let errors: Vec<String> = errors
        .iter()
        .map(|e| format!("[{}] {}", e.code, e.message))
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

    #[tokio::test]
    async fn an_unreadable_token_is_named() {
        let cf = Cloudflare::new(Some("http://127.0.0.1:9"), "/nonexistent/token".into());
        let record = Record::new("a.example.com", "v").unwrap();
        let err = cf.create(&record).await.unwrap_err();
        assert!(
            err.contains("cannot read API token /nonexistent/token"),
            "{err}"
        );
    }
}
