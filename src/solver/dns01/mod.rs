//! dns-01 ([RFC 8555 §8.4]): publish `_acme-challenge.<domain>. TXT <value>`
//! through a provider, wait until it is visible, remove it afterwards.
//!
//! This module picks the provider and owns the order of things: add the
//! record, wait for it ([`propagation`]), and on a failed wait remove it
//! again, since the caller only cleans up what was presented. Providers only
//! add and remove: [`rfc2136`] (DNS UPDATE with TSIG), [`cloudflare`] (its
//! v4 API) and [`exec`] (an operator's hook). Records are always added beside
//! existing values, never replacing them: a wildcard and its base domain
//! validate with two values at the same name.
//!
//! [RFC 8555 §8.4]: https://www.rfc-editor.org/rfc/rfc8555#section-8.4

mod cloudflare;
mod exec;
mod propagation;
mod query;
mod rfc2136;

use std::collections::HashMap;
use std::fmt;

use hickory_proto::ProtoError;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use crate::config::{Dns01Config, Dns01Provider};

/// TTL of the records we publish: short, so a retry's value is not hidden
/// behind a cached old one.
const TTL: u32 = 60;

/// Why a dns-01 record could not be published, found or removed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `_acme-challenge.<domain>.` is not a valid DNS name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The rfc2136 provider failed.
    #[error(transparent)]
    Rfc2136(#[from] rfc2136::Error),
    /// The cloudflare provider failed.
    #[error(transparent)]
    Cloudflare(#[from] cloudflare::Error),
    /// The exec hook failed.
    #[error(transparent)]
    Exec(#[from] exec::Error),
    /// The record did not become visible, or where to look is unknown.
    #[error(transparent)]
    Propagation(#[from] propagation::Error),
}

/// `_acme-challenge.<domain>.` is not a valid DNS name.
#[derive(Debug, thiserror::Error)]
#[error("{fqdn}: not a DNS name: {source}")]
pub struct NameError {
    /// The record name as built from the domain.
    fqdn: String,
    /// hickory's parse error.
    #[source]
    source: ProtoError,
}

/// The `dns_reply` fuzz target: `reply` as a DNS server's answer to each
/// question renewd asks (the zone of a name, whether the record is visible,
/// an update signed with TSIG). What it says about the record must render
/// without control characters: it goes to the log.
#[cfg(fuzzing)]
pub(crate) fn fuzz_reply(reply: &[u8]) {
    rfc2136::fuzz(reply);
    let Ok(message) = query::decode("192.0.2.53:53".parse().expect("an address"), reply) else {
        return;
    };
    let _ = query::zone_in_reply(&message);
    if let Err(absence) = propagation::contains(&message, "fuzz-value") {
        let shown = absence.to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}

/// The `cloudflare_answer` fuzz target: `body` as the answer to each call.
#[cfg(fuzzing)]
pub(crate) fn fuzz_cloudflare(body: &[u8]) {
    cloudflare::fuzz(body);
}

/// A configured dns-01 solver.
#[derive(Debug)]
pub(super) struct Dns01 {
    provider: Provider,
    propagation: propagation::Propagation,
    /// Records presented and not yet cleaned up, by (domain, value): cleanup
    /// removes exactly where present added, without following CNAMEs again.
    presented: std::sync::Mutex<HashMap<(String, String), Record>>,
}

#[derive(Debug)]
enum Provider {
    Rfc2136(rfc2136::Rfc2136),
    /// Boxed: its HTTP client is large.
    Cloudflare(Box<cloudflare::Cloudflare>),
    Exec(exec::Exec),
}

/// The TXT record of one authorization. Public only because the error types
/// carry it; it is built and read in this module alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `_acme-challenge.<domain>.`
    name: Name,
    /// The same, as text with the trailing dot.
    fqdn: String,
    /// The TXT value (base64url of the key authorization digest).
    value: String,
}

impl Record {
    /// The record for `domain` (with or without `*.`, trailing dot or not).
    pub(super) fn new(domain: &str, value: &str) -> Result<Self, NameError> {
        let domain = domain
            .trim_start_matches("*.")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let fqdn = format!("_acme-challenge.{domain}.");
        let name = match Name::from_ascii(&fqdn) {
            Ok(name) => name,
            Err(source) => return Err(NameError { fqdn, source }),
        };
        Ok(Self {
            name,
            fqdn,
            value: value.to_owned(),
        })
    }

    /// The same value at `name` (the target of a CNAME).
    fn at(self, name: Name) -> Self {
        let mut fqdn = name.to_ascii().to_ascii_lowercase();
        if !fqdn.ends_with('.') {
            fqdn.push('.');
        }
        Self {
            name,
            fqdn,
            value: self.value,
        }
    }

    /// The name without the trailing dot, as web APIs write it.
    fn api_name(&self) -> String {
        self.fqdn.trim_end_matches('.').to_owned()
    }

    fn key(&self) -> (String, String) {
        (self.fqdn.clone(), self.value.clone())
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} TXT \"{}\"", self.fqdn, self.value)
    }
}

/// A response code as DNS tools print it (`NXDOMAIN`, `REFUSED`, ...).
fn rcode(code: ResponseCode) -> String {
    format!("{code:?}").to_ascii_uppercase()
}

/// `items` shown one after the other, `separator` between them.
fn joined<T: fmt::Display>(items: &[T], separator: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

impl Dns01 {
    pub(super) fn new(config: &Dns01Config) -> Self {
        let provider = match &config.provider {
            Dns01Provider::Rfc2136 {
                server,
                tsig_key_file,
            } => Provider::Rfc2136(rfc2136::Rfc2136::new(*server, tsig_key_file.clone())),
            Dns01Provider::Cloudflare {
                api_token_file,
                api_url,
            } => Provider::Cloudflare(Box::new(cloudflare::Cloudflare::new(
                api_url.as_deref(),
                api_token_file.clone(),
            ))),
            Dns01Provider::Exec { command } => {
                Provider::Exec(exec::Exec::new(command.clone(), exec::TIMEOUT))
            }
        };
        let primary = match &provider {
            Provider::Rfc2136(p) => Some(p.server()),
            _ => None,
        };
        Self {
            provider,
            propagation: propagation::Propagation::new(
                config.propagation_timeout,
                config.resolvers.clone(),
                primary,
            ),
            presented: std::sync::Mutex::default(),
        }
    }

    /// Publishes the TXT record for `domain` (no `*.` prefix) and returns once it
    /// is visible (or fails after `propagation_timeout`, removing it again).
    pub(super) async fn present(
        &self,
        solver: &str,
        domain: &str,
        value: &str,
    ) -> Result<(), super::Error> {
        let fail = |source: Error| super::Error::Dns {
            solver: solver.to_owned(),
            source: Box::new(source),
        };
        let record = self.record(solver, domain, value).await.map_err(fail)?;
        self.presented()
            .insert((domain.to_owned(), value.to_owned()), record.clone());
        self.add(&record).await.map_err(fail)?;
        tracing::info!(solver, record = %record.fqdn, "TXT record published, waiting until visible");
        if let Err(e) = self.propagation.wait(&record).await {
            self.remove_logged(solver, &record).await;
            return Err(fail(e.into()));
        }
        Ok(())
    }

    /// Removes the TXT record (only this value: other values for the same name,
    /// e.g. of a wildcard and its base domain, stay). Failures are logged.
    pub(super) async fn cleanup(&self, solver: &str, domain: &str, value: &str) {
        let presented = self
            .presented()
            .remove(&(domain.to_owned(), value.to_owned()));
        let record = match presented {
            Some(record) => Ok(record),
            None => self.record(solver, domain, value).await,
        };
        match record {
            Ok(record) => self.remove_logged(solver, &record).await,
            Err(e) => tracing::warn!(solver, "cannot remove TXT record: {e}"),
        }
    }

    /// Removes every record still published: those of orders abandoned when
    /// the daemon stopped.
    pub(super) async fn cleanup_all(&self, solver: &str) {
        let records: Vec<Record> = self.presented().drain().map(|(_, r)| r).collect();
        for record in records {
            self.remove_logged(solver, &record).await;
        }
    }

    fn presented(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Record>> {
        self.presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The record to publish for `domain`: at `_acme-challenge.<domain>`, or where
    /// a CNAME there points.
    async fn record(&self, solver: &str, domain: &str, value: &str) -> Result<Record, Error> {
        let record = Record::new(domain, value)?;
        let target = self.propagation.follow_cnames(&record.name).await;
        if target == record.name {
            return Ok(record);
        }
        tracing::info!(solver, record = %record.fqdn, target = %target, "_acme-challenge is a CNAME, using its target");
        Ok(record.at(target))
    }

    async fn add(&self, record: &Record) -> Result<(), Error> {
        match &self.provider {
            Provider::Rfc2136(p) => p.add(record).await?,
            Provider::Cloudflare(p) => p.create(record).await?,
            Provider::Exec(p) => p.set(record).await?,
        }
        Ok(())
    }

    async fn remove_logged(&self, solver: &str, record: &Record) {
        let removed: Result<(), Error> = match &self.provider {
            Provider::Rfc2136(p) => p.delete(record).await.map_err(Into::into),
            Provider::Cloudflare(p) => p.delete(record).await.map_err(Into::into),
            Provider::Exec(p) => p.unset(record).await.map_err(Into::into),
        };
        match removed {
            Ok(()) => tracing::info!(solver, record = %record.fqdn, "TXT record removed"),
            Err(e) => {
                tracing::warn!(solver, record = %record.fqdn, "cannot remove TXT record: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_name_is_the_fqdn_under_acme_challenge() {
        for domain in ["Example.COM", "*.example.com", "example.com."] {
            let record = Record::new(domain, "v").unwrap();
            assert_eq!(record.fqdn, "_acme-challenge.example.com.", "{domain}");
            assert_eq!(record.name.to_ascii(), "_acme-challenge.example.com.");
            assert_eq!(record.api_name(), "_acme-challenge.example.com");
        }
        assert_eq!(
            Record::new("a.example.com", "xyz").unwrap().to_string(),
            "_acme-challenge.a.example.com. TXT \"xyz\""
        );
    }

    #[test]
    fn a_bad_domain_is_refused_naming_it() {
        let err = Record::new("a..example.com", "v").unwrap_err().to_string();
        assert!(err.contains("_acme-challenge.a..example.com."), "{err}");
    }

    #[test]
    fn response_codes_read_as_dig_prints_them() {
        assert_eq!(rcode(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode(ResponseCode::NotAuth), "NOTAUTH");
        assert_eq!(rcode(ResponseCode::Refused), "REFUSED");
    }

    #[tokio::test]
    async fn a_provider_failure_names_the_solver() {
        let dns = Dns01::new(&Dns01Config {
            provider: Dns01Provider::Exec {
                command: vec!["false".to_owned()],
            },
            propagation_timeout: crate::config::ConfigDuration::from_secs(120),
            resolvers: Vec::new(),
        });
        let err = dns.present("dns", "example.com", "v").await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("solver dns: hook false set _acme-challenge.example.com. v failed"),
            "{err}"
        );
    }
}
