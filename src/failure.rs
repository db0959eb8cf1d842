//! Why a renewal failed, as a kind a program can act on (the scheduler waits
//! out a rate limit, `status --json` reports it) and the message an operator
//! reads. The kind is decided once, where the error is known
//! ([`crate::renew`]), never by searching the message later.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A failed renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure.
    pub kind: Kind,
    /// What happened, for the log and `renewd status`.
    pub message: String,
}

/// The kinds of failure (`failure` in `renewd status --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Kind {
    /// The CA's rate limit; `until` is the time the CA named, if it did.
    RateLimited {
        /// When the CA said to try again.
        #[serde(default, with = "time::serde::rfc3339::option")]
        until: Option<OffsetDateTime>,
    },
    /// The CA could not be reached (DNS, connection, TLS, no answer).
    CaUnreachable,
    /// The CA tried a challenge and it failed, or no solver could present one.
    ValidationFailed,
    /// The CA refused the order, the account or the finalization.
    Refused,
    /// The stored account could not be used.
    Account,
    /// The key or the CSR could not be made.
    Key,
    /// The CA refused the certificate's key or CSR (`badCSR`: a key it blocks,
    /// e.g. one revoked for keyCompromise): the next attempt uses a new key.
    KeyRefused,
    /// The CA delivered a certificate renewd does not accept (unreadable, for
    /// another key).
    BadCertificate,
    /// The new certificate could not be stored.
    Store,
    /// A bug: the renewal task ended abnormally.
    Internal,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Kind {
    /// As in `renewd status --json` (`rate-limited until 2026-06-03T10:00:00Z`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RateLimited { until: Some(until) } => {
                return write!(f, "rate-limited until {}", crate::status::rfc3339(*until));
            }
            Self::RateLimited { until: None } => "rate-limited",
            Self::CaUnreachable => "ca-unreachable",
            Self::ValidationFailed => "validation-failed",
            Self::Refused => "refused",
            Self::Account => "account",
            Self::Key => "key",
            Self::KeyRefused => "key-refused",
            Self::BadCertificate => "bad-certificate",
            Self::Store => "store",
            Self::Internal => "internal",
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_reads_as_json_with_its_time() {
        let kind = Kind::RateLimited {
            until: Some(time::macros::datetime!(2026-06-03 10:00 UTC)),
        };
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::json!({"kind": "rate-limited", "until": "2026-06-03T10:00:00Z"})
        );
        assert_eq!(
            serde_json::to_value(Kind::CaUnreachable).unwrap(),
            serde_json::json!({"kind": "ca-unreachable"})
        );
        // Logs say it the same way.
        assert_eq!(kind.to_string(), "rate-limited until 2026-06-03T10:00:00Z");
        assert_eq!(Kind::CaUnreachable.to_string(), "ca-unreachable");
    }
}
