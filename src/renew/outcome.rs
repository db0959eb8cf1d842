//! What a renewal ended with, and how that is recorded in a certificate's state:
//! a pure transition of [`CertState`], so its rules (backoff, Retry-After, the
//! spread of the first ARI poll) are tested without a CA or a clock.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use super::Failure;
use crate::clock::Moment;
use crate::intern;
use crate::schedule;
use crate::state::CertState;

/// What happened to one certificate.
#[derive(Debug)]
pub enum Outcome {
    /// A new version was issued and published.
    Renewed {
        /// Archive version now live.
        version: u32,
        /// Serial of the new certificate (hex).
        serial: String,
        /// Its expiry.
        not_after: OffsetDateTime,
        /// CA that issued it.
        ca: String,
        /// Solver that validated it.
        solver: String,
    },
    /// Nothing to do yet.
    NotDue {
        /// When the fallback rule will renew it.
        at: OffsetDateTime,
    },
    /// Every CA and solver failed; the live certificate is untouched.
    Failed(Failure),
    /// Never started: the daemon began to stop while the renewal waited for a
    /// place among the orders in flight. Nothing is recorded, so a forced
    /// renewal stays pending for the next start.
    Stopped,
}

impl Outcome {
    /// Whether this outcome counts as success for an exit code.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        !matches!(self, Self::Failed(_) | Self::Stopped)
    }

    /// The word for it on the control socket and in metrics: `renewed`,
    /// `failed` or `not-due`.
    #[must_use]
    pub fn event(&self) -> &'static str {
        match self {
            Self::Renewed { .. } => "renewed",
            Self::Failed(_) | Self::Stopped => "failed",
            Self::NotDue { .. } => "not-due",
        }
    }

    /// Records this outcome of the attempt started at `attempt.started` in `cs`.
    ///
    /// A renewal resets what was known about the old certificate, marks the new
    /// one's deployment pending, and plans the
    /// new one's first ARI poll at a random point (`random` in `[0, 1)`) of the
    /// next `check_interval`, so that a mass renewal is not followed by a burst
    /// of renewalInfo requests. A failure counts, and sets the retry time: the
    /// backoff (1 minute doubling to `check_interval`, jittered by `random`), or
    /// later when the CA said so (a rate limit's time, else `told`, the
    /// `Retry-After` of its refusal).
    pub fn record(&self, cs: &mut CertState, attempt: &Attempt) {
        if matches!(self, Self::NotDue { .. } | Self::Stopped) {
            return;
        }
        cs.last_attempt = Some(attempt.started.into());
        match self {
            Self::Renewed {
                ca, solver, serial, ..
            } => {
                cs.last_result = Some(intern::shared("ok"));
                cs.ca = Some(intern::shared(ca));
                cs.solver = Some(intern::shared(solver));
                cs.renewed(serial);
                cs.deploy_pending = true;
                cs.ari_poll_at =
                    Some((attempt.now + attempt.check_interval.mul_f64(attempt.random)).into());
            }
            Self::Failed(why) => {
                cs.last_result = Some(format!("error: {why}").into());
                cs.last_failure = Some(why.kind);
                cs.failures += 1;
                cs.key_refused |= why.kind == super::FailureKind::KeyRefused;
                let jitter = 0.5 + attempt.random / 2.0;
                let backoff =
                    attempt.now + schedule::backoff(cs.failures, attempt.check_interval, jitter);
                let asked = schedule::ca_retry_time(
                    why.kind,
                    attempt.told,
                    attempt.now,
                    attempt.check_interval,
                );
                cs.ca_retry_at = asked.map(Moment::from);
                cs.retry_at = Some(asked.map_or(backoff, |asked| asked.max(backoff)).into());
            }
            Self::NotDue { .. } | Self::Stopped => {}
        }
    }
}

/// The circumstances of one attempt that [`Outcome::record`] needs.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// When the attempt started.
    pub started: OffsetDateTime,
    /// When it ended (the clock now).
    pub now: OffsetDateTime,
    /// `daemon.check_interval`: the longest backoff, the spread of the first poll.
    pub check_interval: Duration,
    /// The latest `Retry-After` a CA of the certificate sent during the attempt.
    pub told: Option<OffsetDateTime>,
    /// A uniform sample in `[0, 1)`.
    pub random: f64,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Renewed {
                version,
                serial,
                not_after,
                ca,
                solver,
            } => write!(
                f,
                "renewed: version {version}, serial {serial}, valid until {} (CA {ca}, solver {solver})",
                crate::status::rfc3339(*not_after)
            ),
            Self::NotDue { at } => {
                write!(f, "not due, renewal from {}", crate::status::rfc3339(*at))
            }
            Self::Failed(why) => write!(f, "failed: {why}"),
            Self::Stopped => f.write_str("not started: renewd is stopping"),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
    const HOUR: Duration = Duration::from_secs(3600);

    fn attempt(random: f64, told: Option<OffsetDateTime>) -> Attempt {
        Attempt {
            started: NOW - time::Duration::seconds(30),
            now: NOW,
            check_interval: 6 * HOUR,
            told,
            random,
        }
    }

    fn failed(why: &str) -> Outcome {
        Outcome::Failed(Failure::new(super::super::FailureKind::CaUnreachable, why))
    }

    #[test]
    fn a_renewal_forgets_the_old_certificate_and_spreads_the_first_poll() {
        let mut cs = CertState {
            failures: 3,
            revoked: true,
            force_pending: true,
            retry_at: Some(NOW.into()),
            ..CertState::default()
        };
        let renewed = Outcome::Renewed {
            version: 2,
            serial: "0a".to_owned(),
            not_after: NOW + time::Duration::days(90),
            ca: "le".to_owned(),
            solver: "web".to_owned(),
        };
        renewed.record(&mut cs, &attempt(0.25, None));
        assert_eq!(cs.last_result.as_deref(), Some("ok"));
        assert_eq!(
            cs.last_attempt.map(Moment::time),
            Some(NOW - time::Duration::seconds(30))
        );
        assert_eq!(
            (cs.ca.as_deref(), cs.solver.as_deref()),
            (Some("le"), Some("web"))
        );
        assert!(cs.is_for("0a"));
        assert_eq!(
            (cs.failures, cs.revoked, cs.force_pending),
            (0, false, false)
        );
        assert_eq!(cs.retry_at.map(Moment::time), None);
        assert_eq!(
            cs.ari_poll_at.map(Moment::time),
            Some(NOW + time::Duration::minutes(90))
        );
    }

    #[test]
    fn failures_back_off_from_one_minute_doubling_to_the_check_interval() {
        let mut cs = CertState::default();
        let mut delays = Vec::new();
        for _ in 0..12 {
            failed("CA le: connection refused").record(&mut cs, &attempt(0.999_999, None));
            delays.push((cs.retry_at.unwrap() - NOW).as_seconds_f64().round());
        }
        // random near 1 means no jitter: 1, 2, 4, ... minutes, capped at 6 h.
        assert_eq!(
            delays,
            [
                60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3840.0, 7680.0, 15360.0, 21600.0,
                21600.0, 21600.0
            ]
        );
        assert_eq!(cs.failures, 12);
        assert_eq!(
            cs.last_result.as_deref(),
            Some("error: CA le: connection refused")
        );
    }

    #[test]
    fn jitter_shortens_a_backoff_by_at_most_half() {
        let mut cs = CertState::default();
        failed("x").record(&mut cs, &attempt(0.0, None));
        assert_eq!(
            cs.retry_at.map(Moment::time),
            Some(NOW + time::Duration::seconds(30))
        );
    }

    #[test]
    fn a_retry_after_later_than_the_backoff_is_honoured() {
        let told = NOW + time::Duration::minutes(30);
        let mut cs = CertState::default();
        failed("CA le: 503").record(&mut cs, &attempt(0.999_999, Some(told)));
        assert_eq!(cs.retry_at.map(Moment::time), Some(told));
        // ...but never an earlier one.
        let mut cs = CertState {
            failures: 9,
            ..CertState::default()
        };
        failed("CA le: 503").record(&mut cs, &attempt(0.0, Some(told)));
        assert_eq!(
            cs.retry_at.map(Moment::time),
            Some(NOW + time::Duration::seconds(10_800))
        );
    }

    #[test]
    fn a_rate_limit_waits_for_the_time_the_ca_names() {
        let until = datetime!(2026-06-02 00:00 UTC);
        let mut cs = CertState::default();
        let limited = super::super::FailureKind::RateLimited { until: Some(until) };
        Outcome::Failed(Failure::new(limited, "too many")).record(&mut cs, &attempt(0.5, None));
        assert_eq!(cs.retry_at.map(Moment::time), Some(until));
        assert_eq!(cs.last_failure, Some(limited));
    }

    #[test]
    fn a_refused_key_is_not_offered_again() {
        let mut cs = CertState::default();
        let refused = super::super::FailureKind::KeyRefused;
        Outcome::Failed(Failure::new(refused, "badCSR")).record(&mut cs, &attempt(0.5, None));
        assert!(cs.needs_fresh_key());
        cs.renewed("0abc");
        assert!(
            !cs.needs_fresh_key(),
            "the new certificate's key may be reused"
        );
    }

    #[test]
    fn not_due_records_nothing() {
        let mut cs = CertState::default();
        Outcome::NotDue { at: NOW }.record(&mut cs, &attempt(0.5, None));
        assert_eq!(cs.last_attempt.map(Moment::time), None);
    }
}
