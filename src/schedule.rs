//! When a certificate is due (spec section 4). Pure functions of the certificate,
//! its config and the clock, so they are tested without a CA or a clock.
//!
//! The "renew now" conditions and the lifetime-based fallback live here; ARI
//! windows ([RFC 9773]) are carried as [`Window`].
//!
//! [RFC 9773]: https://www.rfc-editor.org/rfc/rfc9773

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::config::CertificateConfig;
use crate::store::Lineage;

/// Why a certificate must be renewed now, regardless of its schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urgent {
    /// No `live/<name>` yet.
    Missing,
    /// `live/<name>` exists but cannot be read.
    Unreadable(String),
    /// The configured domains differ from the certificate's.
    DomainsChanged,
    /// The configured key type differs from the certificate's.
    KeyTypeChanged,
    /// `privkey.pem` does not belong to `cert.pem`.
    KeyMismatch,
    /// Less than 1/10 of the lifetime is left.
    NearlyExpired,
}

impl fmt::Display for Urgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no certificate yet"),
            Self::Unreadable(why) => write!(f, "stored certificate unreadable: {why}"),
            Self::DomainsChanged => f.write_str("configured domains changed"),
            Self::KeyTypeChanged => f.write_str("configured key type changed"),
            Self::KeyMismatch => f.write_str("private key does not match certificate"),
            Self::NearlyExpired => f.write_str("less than 1/10 of its lifetime left"),
        }
    }
}

/// Whether the stored lineage must be replaced right away.
#[must_use]
pub fn urgent(
    config: &CertificateConfig,
    lineage: &Result<Option<Lineage>, String>,
    now: OffsetDateTime,
) -> Option<Urgent> {
    let lineage = match lineage {
        Ok(Some(l)) => l,
        Ok(None) => return Some(Urgent::Missing),
        Err(why) => return Some(Urgent::Unreadable(why.clone())),
    };
    let cert = &lineage.cert;
    if !cert.covers_exactly(&config.domains) {
        Some(Urgent::DomainsChanged)
    } else if cert.key_type != Some(config.key) {
        Some(Urgent::KeyTypeChanged)
    } else if !lineage.key_matches {
        Some(Urgent::KeyMismatch)
    } else if cert.not_after - now < cert.lifetime() / 10 {
        Some(Urgent::NearlyExpired)
    } else {
        None
    }
}

/// How long before expiry the fallback rule renews: `max(renew_before, lifetime/3)`.
///
/// A `renew_before` as long as the lifetime itself (30 days against a 6-day
/// certificate) would make every new certificate due at once and renew in a loop,
/// so then 1/3 of the lifetime is used alone.
#[must_use]
pub fn fallback_threshold(lifetime: Duration, renew_before: std::time::Duration) -> Duration {
    let third = lifetime / 3;
    let renew_before = Duration::try_from(renew_before).unwrap_or(Duration::MAX);
    if renew_before >= lifetime {
        third
    } else {
        renew_before.max(third)
    }
}

/// The earliest time the fallback rule renews `lineage` (before any jitter).
#[must_use]
pub fn fallback_time(lineage: &Lineage, renew_before: std::time::Duration) -> OffsetDateTime {
    lineage.cert.not_after - fallback_threshold(lineage.cert.lifetime(), renew_before)
}

/// An RFC 9773 suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Start of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// End of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::days(1);

    #[test]
    fn ninety_day_certificates_renew_thirty_days_before_expiry() {
        let t = fallback_threshold(90 * DAY, std::time::Duration::from_secs(30 * 86_400));
        assert_eq!(t, 30 * DAY);
        let t = fallback_threshold(90 * DAY, std::time::Duration::from_secs(10 * 86_400));
        assert_eq!(t, 30 * DAY);
        let t = fallback_threshold(365 * DAY, std::time::Duration::from_secs(30 * 86_400));
        assert_eq!(t, Duration::seconds(365 * 86_400 / 3));
    }

    #[test]
    fn short_lived_certificates_do_not_renew_in_a_loop() {
        let t = fallback_threshold(6 * DAY, std::time::Duration::from_secs(30 * 86_400));
        assert_eq!(t, 2 * DAY);
    }
}
