//! The simulated CA: what it issued, the ARI window of each certificate, its
//! revocations, and when it cannot be reached or is busy.

use std::collections::{HashMap, HashSet};

use time::{Duration, OffsetDateTime};

use crate::state::Window;

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub(super) struct Issued {
    pub domains: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Which private key it is for.
    pub key: u64,
    pub window: Window,
    /// Whether the window was moved (by a change or a revocation).
    pub window_moved: bool,
    /// Revoked: with keyCompromise or not.
    pub revoked: Option<bool>,
}

/// A time the CA answers no one (`Outage`) or everyone with 503 and a
/// `Retry-After` (`Busy`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Downtime {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// `None`: unreachable; `Some(after)`: 503 with `Retry-After: after`.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Default)]
pub(super) struct Ca {
    next_serial: u64,
    /// By serial.
    pub issued: HashMap<String, Issued>,
    /// Planned up front, in order.
    pub downtimes: Vec<Downtime>,
    /// Keys of certificates revoked for keyCompromise: a CSR for one is
    /// refused (`badCSR`), as Let's Encrypt's Boulder does.
    pub blocked_keys: HashSet<u64>,
}

/// Let's Encrypt's short-lived profile: 160 hours.
pub(super) const SHORT_LIVED: &str = "shortlived";

impl Ca {
    pub(super) fn lifetime(profile: Option<&str>) -> Duration {
        match profile {
            Some(SHORT_LIVED) => Duration::hours(160),
            _ => Duration::days(90),
        }
    }

    /// The window the CA suggests at issuance: from 2/3 of the lifetime, a
    /// 30th of the lifetime long, from the start of the issuance's 6-hour
    /// block, so that certificates issued close together share one window.
    fn window(not_before: OffsetDateTime, lifetime: Duration) -> Window {
        let block = Duration::hours(6).whole_seconds();
        let since_epoch = (not_before - OffsetDateTime::UNIX_EPOCH).whole_seconds();
        let base =
            OffsetDateTime::UNIX_EPOCH + Duration::seconds(since_epoch - since_epoch % block);
        let start: OffsetDateTime = base + lifetime * 2 / 3;
        let end: OffsetDateTime = start + lifetime / 30;
        Window {
            start: start.into(),
            end: end.into(),
        }
    }

    pub(super) fn issue(
        &mut self,
        domains: &[String],
        profile: Option<&str>,
        key: u64,
        now: OffsetDateTime,
    ) -> (String, Issued) {
        self.next_serial += 1;
        // Leading zero byte and all: serials as CAs print them.
        let serial = format!("00fa{:012x}", self.next_serial);
        let lifetime = Self::lifetime(profile);
        let issued = Issued {
            domains: domains.to_vec(),
            not_before: now,
            not_after: now + lifetime,
            key,
            window: Self::window(now, lifetime),
            window_moved: false,
            revoked: None,
        };
        self.issued.insert(serial.clone(), issued.clone());
        (serial, issued)
    }

    /// The downtime the CA is in at `now`, if any.
    pub(super) fn down_at(&self, now: OffsetDateTime) -> Option<Downtime> {
        self.downtimes
            .iter()
            .find(|d| d.start <= now && now < d.end)
            .copied()
    }

    /// How much of `from..to` the CA was down or busy.
    pub(super) fn down_during(&self, from: OffsetDateTime, to: OffsetDateTime) -> Duration {
        self.downtimes
            .iter()
            .map(|d| (d.end.min(to) - d.start.max(from)).max(Duration::ZERO))
            .sum()
    }

    /// Revokes `serial`; its window moves into the past, before the middle of
    /// its lifetime (RFC 9773 §4.2: "renew now").
    pub(super) fn revoke(&mut self, serial: &str, key_compromise: bool) {
        if let Some(cert) = self.issued.get_mut(serial) {
            cert.revoked = Some(key_compromise);
            if key_compromise {
                self.blocked_keys.insert(cert.key);
            }
            cert.window = Window {
                start: (cert.not_before - Duration::hours(2)).into(),
                end: (cert.not_before - Duration::hours(1)).into(),
            };
            cert.window_moved = true;
        }
    }

    /// Moves `serial`'s window by `by`, never into the past of `now`.
    pub(super) fn move_window(&mut self, serial: &str, by: Duration, now: OffsetDateTime) {
        if let Some(cert) = self.issued.get_mut(serial) {
            if cert.revoked.is_some() {
                return;
            }
            let length = cert.window.end.time() - cert.window.start.time();
            let start = (cert.window.start + by).max(now + Duration::hours(1));
            cert.window = Window {
                start: start.into(),
                end: (start + length).into(),
            };
            cert.window_moved = true;
        }
    }
}
