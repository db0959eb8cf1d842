//! When a certificate is due (`docs/reference/daemon.md`). Pure functions of the certificate,
//! its config and the clock, so they are tested without a CA or a clock.
//!
//! The "renew now" conditions and the lifetime-based fallback live here; ARI
//! windows ([RFC 9773]) come in through the state ([`crate::state::Window`]).
//!
//! [RFC 9773]: https://www.rfc-editor.org/rfc/rfc9773

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::clock::Moment;
use crate::config::CertificateConfig;
use crate::failure::Kind as FailureKind;
use crate::state::{CertState, Window};
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

/// Delay before retry number `failures` (1-based): 1 minute doubling up to
/// `cap`, then scaled by `jitter` in `[0.5, 1.0]` so many failing certificates
/// do not retry in lockstep.
#[must_use]
pub fn backoff(failures: u32, cap: std::time::Duration, jitter: f64) -> Duration {
    let base = 60f64 * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
    let capped = base.min(cap.as_secs_f64().max(1.0));
    Duration::seconds_f64(capped * jitter.clamp(0.5, 1.0))
}

/// The longest wait a CA can ask for: a `Retry-After` or rate-limit time
/// further out (a broken or hostile CA saying "years") is cut to this.
pub const MAX_CA_WAIT: Duration = Duration::days(7);

/// When the CA asked to be tried again after a failure of `kind`, if it did: a
/// rate limit's stated time, else the `Retry-After` header of its refusal
/// (`told`), else, for a rate limit, `cap` (the longest backoff) — never later
/// than [`MAX_CA_WAIT`] from `now`.
#[must_use]
pub fn ca_retry_time(
    kind: FailureKind,
    told: Option<OffsetDateTime>,
    now: OffsetDateTime,
    cap: std::time::Duration,
) -> Option<OffsetDateTime> {
    let asked = match kind {
        FailureKind::RateLimited { until } => Some(
            until
                .or(told)
                .unwrap_or_else(|| now + Duration::try_from(cap).unwrap_or(Duration::HOUR)),
        ),
        _ => told,
    };
    asked.map(|at| at.min(now + MAX_CA_WAIT))
}

/// When a certificate is to be renewed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The time to start the renewal (may be in the past: start now).
    pub at: OffsetDateTime,
    /// Why, for logs and status.
    pub reason: Reason,
    /// A time picked randomly now, to be remembered.
    pub chosen: Option<Chosen>,
}

/// Why a [`Plan`] has its time. Kept as a value and written out only when
/// shown: every certificate has a plan, and planning 100,000 of them must
/// not format 100,000 strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Renew now, whatever the schedule.
    Urgent(Urgent),
    /// `live/<name>` could not be looked at.
    NoCertificate,
    /// A forced renewal has not succeeded yet.
    ForcePending,
    /// The CA said the certificate was revoked.
    Revoked,
    /// A random time inside the CA's ARI window.
    AriWindow,
    /// The lifetime-based fallback time plus jitter.
    LifetimeFallback,
    /// `reason`'s time, put off to the retry time after `failures` failed
    /// attempts.
    Retry {
        /// Why it would be renewed otherwise.
        reason: Box<Reason>,
        /// Consecutive failed attempts.
        failures: u32,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Urgent(u) => u.fmt(f),
            Self::NoCertificate => f.write_str("no certificate"),
            Self::ForcePending => f.write_str("forced renewal pending"),
            Self::Revoked => f.write_str("revoked"),
            Self::AriWindow => f.write_str("inside ARI window"),
            Self::LifetimeFallback => f.write_str("lifetime fallback"),
            Self::Retry { reason, failures } => {
                write!(f, "{reason} (retry after {failures} failure(s))")
            }
        }
    }
}

/// A renewal time picked at random, and the ARI window it was picked in (`None`:
/// picked by the lifetime fallback). Remembered in the state, it is kept while
/// the window stays the same — across polls, restarts and config reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// The time.
    pub at: OffsetDateTime,
    /// The window it lies in.
    pub window: Option<Window>,
}

/// Inputs to [`plan`] besides the certificate config.
#[derive(Debug)]
pub struct Facts<'a> {
    /// What the store holds.
    pub lineage: &'a Result<Option<Lineage>, String>,
    /// What `state.json` remembers about this certificate.
    pub state: &'a CertState,
    /// `daemon.renew_before`.
    pub renew_before: std::time::Duration,
    /// `daemon.jitter`.
    pub jitter: std::time::Duration,
    /// The clock.
    pub now: OffsetDateTime,
}

/// Decides when to renew (`docs/reference/daemon.md`). `random` is a uniform sample in
/// `[0, 1)` used only when a new time must be picked.
///
/// The clock matters only through the times returned: a plan made once
/// holds until something it was made from changes, so a certificate need not
/// be planned again at every ARI poll.
#[must_use]
pub fn plan(config: &CertificateConfig, facts: &Facts<'_>, random: f64) -> Plan {
    let now = facts.now;
    let now_plan = |reason| Plan {
        at: now,
        reason,
        chosen: None,
    };
    let base = match (urgent(config, facts.lineage, now), facts.lineage) {
        (Some(u), _) => now_plan(Reason::Urgent(u)),
        (None, Ok(Some(lineage))) => by_nearly_expired(scheduled(lineage, facts, random), lineage),
        (None, _) => now_plan(Reason::NoCertificate),
    };
    match facts.state.retry_at {
        Some(retry) if retry > base.at && facts.state.failures > 0 => Plan {
            at: retry.time(),
            reason: Reason::Retry {
                reason: Box::new(base.reason),
                failures: facts.state.failures,
            },
            chosen: base.chosen,
        },
        _ => base,
    }
}

/// Plans `config`'s certificate with what `cs` remembers, and remembers in `cs`
/// what the plan decided: a live certificate other than the one `cs` is about
/// (renewed behind the planner's back: a one-shot run, a crash before a save)
/// resets it, and a newly drawn time is kept. Returns whether `cs` changed.
pub fn plan_and_remember(
    config: &CertificateConfig,
    lineage: &Result<Option<Lineage>, String>,
    cs: &mut CertState,
    (renew_before, jitter): (std::time::Duration, std::time::Duration),
    now: OffsetDateTime,
    random: f64,
) -> (Plan, bool) {
    if let Ok(Some(live)) = lineage {
        if !cs.is_for(&live.cert.serial) {
            cs.renewed(&live.cert.serial);
        }
    }
    let facts = Facts {
        lineage,
        state: cs,
        renew_before,
        jitter,
        now,
    };
    let plan = plan(config, &facts, random);
    let changed = plan.chosen.is_some();
    if let Some(chosen) = plan.chosen {
        cs.next_renewal = Some(chosen.at.into());
        cs.next_renewal_for = chosen.window;
    }
    (plan, changed)
}

/// `plan`, or the time less than a tenth of the certificate's lifetime is
/// left ([`Urgent::NearlyExpired`]) if that comes first: a CA may move its
/// window past it.
fn by_nearly_expired(plan: Plan, lineage: &Lineage) -> Plan {
    let cert = &lineage.cert;
    let nearly_expired = cert.not_after - cert.lifetime() / 10;
    if plan.at <= nearly_expired {
        return plan;
    }
    Plan {
        at: nearly_expired,
        reason: Reason::Urgent(Urgent::NearlyExpired),
        chosen: plan.chosen,
    }
}

fn scheduled(lineage: &Lineage, facts: &Facts<'_>, random: f64) -> Plan {
    let now = facts.now;
    let state = facts.state;
    let current = state.is_for(&lineage.cert.serial);
    let now_plan = |reason| Plan {
        at: now,
        reason,
        chosen: None,
    };
    if state.force_pending {
        return now_plan(Reason::ForcePending);
    }
    if current && state.revoked {
        return now_plan(Reason::Revoked);
    }
    // A time remembered for the same window (or for the fallback: `None`).
    let remembered = |window: Option<Window>| {
        state
            .next_renewal
            .filter(|_| current && state.next_renewal_for == window)
            .map(Moment::time)
    };
    if let Some(window) = state.ari_window.filter(|_| current) {
        let reason = Reason::AriWindow;
        if let Some(at) = remembered(Some(window)) {
            return Plan {
                at,
                reason,
                chosen: None,
            };
        }
        // RFC 9773 §4.2: a uniform random time in the window; of one already
        // open, in what is left of it, so that certificates sharing the window
        // do not all renew at once. A window that has passed means now.
        let (start, end) = (window.start.time(), window.end.time());
        let from = start.max(now).min(end);
        let at = from + (end - from) * random;
        return Plan {
            at,
            reason,
            chosen: Some(Chosen {
                at,
                window: Some(window),
            }),
        };
    }
    let fallback = fallback_time(lineage, facts.renew_before);
    let latest = fallback + Duration::try_from(facts.jitter).unwrap_or(Duration::ZERO);
    let reason = Reason::LifetimeFallback;
    if let Some(at) = remembered(None).filter(|at| *at >= fallback && *at <= latest) {
        return Plan {
            at,
            reason,
            chosen: None,
        };
    }
    let at = fallback + (latest - fallback) * random;
    Plan {
        at,
        reason,
        chosen: Some(Chosen { at, window: None }),
    }
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
    fn backoff_doubles_from_a_minute_up_to_the_cap() {
        let cap = std::time::Duration::from_secs(3600);
        assert_eq!(backoff(1, cap, 1.0), Duration::minutes(1));
        assert_eq!(backoff(3, cap, 1.0), Duration::minutes(4));
        assert_eq!(backoff(30, cap, 1.0), Duration::hours(1));
        assert_eq!(backoff(2, cap, 0.5), Duration::minutes(1));
        assert_eq!(
            backoff(2, cap, 0.0),
            Duration::minutes(1),
            "jitter never below half"
        );
    }

    #[test]
    fn rate_limits_are_waited_out() {
        let now = time::macros::datetime!(2026-06-01 00:00 UTC);
        let cap = std::time::Duration::from_secs(6 * 3600);
        let stated = time::macros::datetime!(2026-06-03 10:00 UTC);
        let le = FailureKind::RateLimited {
            until: Some(stated),
        };
        assert_eq!(ca_retry_time(le, None, now, cap), Some(stated));
        let bare = FailureKind::RateLimited { until: None };
        assert_eq!(
            ca_retry_time(bare, None, now, cap),
            Some(now + Duration::hours(6))
        );
        assert_eq!(
            ca_retry_time(FailureKind::CaUnreachable, None, now, cap),
            None
        );
        // The Retry-After header counts when the CA named no time, and for any
        // other refusal that carried one (a 503 during maintenance).
        let told = Some(now + Duration::minutes(10));
        assert_eq!(ca_retry_time(bare, told, now, cap), told);
        assert_eq!(ca_retry_time(FailureKind::Refused, told, now, cap), told);
        assert!(ca_retry_time(le, told, now, cap) > told);
        // A CA asking for years gets a week.
        let years = Some(now + Duration::days(3650));
        let week = Some(now + Duration::days(7));
        assert_eq!(ca_retry_time(FailureKind::Refused, years, now, cap), week);
        let forever = FailureKind::RateLimited { until: years };
        assert_eq!(ca_retry_time(forever, None, now, cap), week);
    }

    #[test]
    fn short_lived_certificates_do_not_renew_in_a_loop() {
        let t = fallback_threshold(6 * DAY, std::time::Duration::from_secs(30 * 86_400));
        assert_eq!(t, 2 * DAY);
    }

    mod plan {
        use time::macros::datetime;

        use super::super::*;
        use crate::config::{Identifier, KeyType};
        use crate::state::{CertState, Window};
        use crate::store::CertInfo;

        const NOW: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);
        const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

        fn config() -> CertificateConfig {
            CertificateConfig {
                name: "a".into(),
                domains: vec![Identifier::Dns("a.example".into())].into(),
                ca: vec!["ca".into()].into(),
                solvers: vec!["web".into()].into(),
                key: KeyType::EcdsaP256,
                reuse_key: false,
                profile: None,
                reload: Vec::new().into(),
                verify: Vec::new().into(),
                line: 1,
            }
        }

        /// A 90-day certificate issued `age` days before NOW.
        fn lineage(age: i64) -> Result<Option<Lineage>, String> {
            let not_before = NOW - Duration::days(age);
            Ok(Some(Lineage {
                name: "a".into(),
                version: 1,
                dir: "/x".into(),
                key_matches: true,
                cert: CertInfo {
                    serial: "abc".into(),
                    not_before,
                    not_after: not_before + Duration::days(90),
                    domains: vec!["a.example".into()],
                    key_type: Some(KeyType::EcdsaP256),
                    ari_id: Some("k.s".into()),
                    spki_der: vec![],
                    der: vec![],
                },
            }))
        }

        fn state() -> CertState {
            CertState {
                serial: Some("abc".into()),
                ..CertState::default()
            }
        }

        fn plan_with(
            lineage: &Result<Option<Lineage>, String>,
            state: &CertState,
            random: f64,
        ) -> Plan {
            let facts = Facts {
                lineage,
                state,
                renew_before: 30 * DAY,
                jitter: DAY,
                now: NOW,
            };
            plan(&config(), &facts, random)
        }

        fn window(start_days: i64, end_days: i64) -> Option<Window> {
            Some(Window {
                start: (NOW + Duration::days(start_days)).into(),
                end: (NOW + Duration::days(end_days)).into(),
            })
        }

        #[test]
        fn fallback_point_plus_jitter_is_picked_once_and_then_kept() {
            let l = lineage(10);
            let p = plan_with(&l, &state(), 0.5);
            assert_eq!(p.at, NOW + Duration::days(50) + Duration::hours(12));
            let chosen = p.chosen.unwrap();
            assert_eq!((chosen.at, chosen.window), (p.at, None));
            let again = plan_with(&l, &remembering(chosen), 0.9);
            assert_eq!((again.at, again.chosen), (p.at, None));
        }

        fn remembering(chosen: Chosen) -> CertState {
            let mut s = state();
            s.next_renewal = Some(chosen.at.into());
            s.next_renewal_for = chosen.window;
            s.ari_window = chosen.window;
            s
        }

        #[test]
        fn a_fallback_time_is_not_kept_once_an_ari_window_is_known() {
            let l = lineage(10);
            let fallback = plan_with(&l, &state(), 0.5).chosen.unwrap();
            let mut s = remembering(fallback);
            // The window (days 49-51) contains the fallback time: it must be
            // drawn anew all the same, or certificates issued together stay
            // together for good.
            s.ari_window = window(49, 51);
            let p = plan_with(&l, &s, 0.25);
            assert_eq!(p.at, NOW + Duration::days(49) + Duration::hours(12));
            assert_eq!(p.chosen.unwrap().window, s.ari_window);
        }

        #[test]
        fn a_time_drawn_in_a_window_is_kept_until_the_window_changes() {
            let l = lineage(10);
            let mut s = state();
            s.ari_window = window(20, 22);
            let first = plan_with(&l, &s, 0.25).chosen.unwrap();
            let kept = plan_with(&l, &remembering(first), 0.75);
            assert_eq!((kept.at, kept.chosen), (first.at, None));
            let mut moved = remembering(first);
            moved.ari_window = window(30, 32);
            let redrawn = plan_with(&l, &moved, 0.75);
            assert_eq!(redrawn.at, NOW + Duration::days(31) + Duration::hours(12));
        }

        /// Found by the simulation once polls stopped re-planning: a CA
        /// window moved past the point where a tenth of the lifetime is left
        /// was waited for until the certificate expired.
        #[test]
        fn a_window_after_the_nearly_expired_point_plans_that_point() {
            // Issued 10 days ago: a tenth of 90 days is left from day 71.
            let l = lineage(10);
            let mut s = state();
            s.ari_window = window(75, 77);
            let p = plan_with(&l, &s, 0.5);
            assert_eq!(p.at, NOW + Duration::days(71));
            assert_eq!(p.reason, Reason::Urgent(Urgent::NearlyExpired));
            let chosen = p.chosen.unwrap();
            assert_eq!(chosen.at, NOW + Duration::days(76), "the draw is kept");
            let again = plan_with(&l, &remembering(chosen), 0.9);
            assert_eq!(again.at, NOW + Duration::days(71));
        }

        #[test]
        fn a_remembered_time_that_has_passed_means_now_not_a_new_draw() {
            let l = lineage(10);
            let mut s = state();
            s.ari_window = window(-1, 1);
            s.next_renewal = Some((NOW - Duration::hours(1)).into());
            s.next_renewal_for = s.ari_window;
            let p = plan_with(&l, &s, 0.99);
            assert_eq!((p.at, p.chosen), (NOW - Duration::hours(1), None));
        }

        #[test]
        fn certificates_sharing_an_open_window_spread_over_what_is_left_of_it() {
            // A 48 h window opened 12 h ago: 1,000 draws cover the 36 h left,
            // none before now, each quarter of it holding about a quarter.
            let l = lineage(10);
            let mut s = state();
            s.ari_window = Some(Window {
                start: (NOW - Duration::hours(12)).into(),
                end: (NOW + Duration::hours(36)).into(),
            });
            let mut quarters = [0u32; 4];
            for i in 0..1000 {
                let at = plan_with(&l, &s, f64::from(i) / 1000.0).at;
                assert!(at >= NOW && at < NOW + Duration::hours(36), "{at}");
                let quarter = ((at - NOW).whole_hours() / 9) as usize;
                quarters[quarter] += 1;
            }
            assert_eq!(quarters, [250; 4]);
        }

        #[test]
        fn ari_window_in_the_future_gets_a_uniform_time_inside_it() {
            let mut s = state();
            s.ari_window = window(20, 22);
            let p = plan_with(&lineage(10), &s, 0.25);
            assert_eq!(p.at, NOW + Duration::days(20) + Duration::hours(12));
            assert_eq!(p.reason.to_string(), "inside ARI window");
        }

        #[test]
        fn ari_window_in_the_past_or_revocation_means_now() {
            let mut s = state();
            s.ari_window = window(-2, -1);
            assert!(plan_with(&lineage(10), &s, 0.5).at <= NOW);
            let mut s = state();
            s.revoked = true;
            assert_eq!(plan_with(&lineage(10), &s, 0.5).reason, Reason::Revoked);
        }

        #[test]
        fn state_about_an_older_certificate_is_ignored() {
            let mut s = state();
            s.serial = Some("old".into());
            s.revoked = true;
            s.ari_window = window(-2, -1);
            let p = plan_with(&lineage(10), &s, 0.0);
            assert_eq!(p.at, NOW + Duration::days(50));
        }

        #[test]
        fn missing_or_nearly_expired_certificates_are_due_now() {
            assert_eq!(plan_with(&Ok(None), &state(), 0.5).at, NOW);
            let p = plan_with(&lineage(85), &state(), 0.5);
            assert_eq!(
                (p.at, p.reason.to_string().as_str()),
                (NOW, "less than 1/10 of its lifetime left")
            );
        }

        #[test]
        fn backoff_delays_even_an_urgent_renewal() {
            let mut s = state();
            s.failures = 2;
            s.retry_at = Some((NOW + Duration::minutes(2)).into());
            let p = plan_with(&Ok(None), &s, 0.5);
            assert_eq!(p.at, NOW + Duration::minutes(2));
            assert!(
                p.reason.to_string().contains("retry after 2 failure(s)"),
                "{}",
                p.reason
            );
        }

        #[test]
        fn a_pending_forced_renewal_survives_restarts() {
            let mut s = state();
            s.force_pending = true;
            assert_eq!(plan_with(&lineage(1), &s, 0.5).at, NOW);
        }
    }
}
