//! ARI polling: ask the issuing CA for each certificate's renewal window
//! (RFC 9773) as `Retry-After` and `check_interval` say, and notice revocations,
//! there or on the CA's CRL (checked at the same time).

use std::sync::Arc;

use rand::Rng;
use time::OffsetDateTime;
use tracing::{debug, error, warn};

use super::{Entry, MIN_ARI_INTERVAL, Polled, Scheduler};
use crate::acme::RenewalInfo;
use crate::schedule;

impl Scheduler {
    pub(super) fn start_poll(&mut self, name: &str) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        if !entry.live {
            return;
        }
        entry.polling = true;
        let (world, state) = (Arc::clone(&self.world), Arc::clone(&self.state));
        let permits = Arc::clone(&self.poll_permits);
        let max = self.config().daemon.max_concurrent;
        let owned = name.to_owned();
        self.polls.spawn(name, async move {
            let _slot = Arc::clone(&permits).acquire_owned().await;
            let Some(cert) = world.config().certificate(&owned) else {
                return Polled::nothing_live();
            };
            let issued_by = state.lock().await.issued_by(&owned);
            let ca = world.issuer(cert, issued_by.as_deref());
            let in_flight = max.saturating_sub(permits.available_permits());
            debug!(cert_name = %owned, ca, in_flight, "ARI poll");
            world.poll(owned, ca).await
        });
    }

    /// A poll has ended. Routine bookkeeping — the same window, a next poll
    /// time — is neither journalled nor re-planned: with 100,000 certificates
    /// polls end several times a second, and a next poll time lost in a crash
    /// only means polling sooner (polls missed while the daemon was down are
    /// spread over the next `check_interval`); the plan holds as it is
    /// ([`schedule::plan`] depends on the clock only through times it
    /// returns). A new window, a revocation or a live certificate other than
    /// the one planned for is written and re-planned for.
    pub(super) async fn polled(&mut self, name: String, polled: Polled) {
        let now = self.clock.now();
        let random = self.rng.random();
        let check_interval = self.config().daemon.check_interval.0;
        let Some(entry) = self.entries.get_mut(name.as_str()) else {
            return;
        };
        entry.polling = false;
        let running = entry.running;
        let state = Arc::clone(&self.state);
        let mut state = state.lock().await;
        let cs = state.unsaved_entry(&name);
        let Polled {
            answer,
            on_crl,
            live,
        } = polled;
        let Some((serial, lineage_mid)) = live.filter(|(serial, _)| cs.is_for(serial)) else {
            // Not the certificate planned for: renewed meanwhile (the end of
            // the renewal plans again), or replaced behind the scheduler's
            // back (by hand, by a one-shot run), or gone.
            drop(state);
            if running {
                self.touched(&name);
            } else {
                self.replan(&name).await;
            }
            return;
        };
        let (was_revoked, window_before) = (cs.revoked, cs.ari_window);
        if on_crl == Some(true) && !cs.revoked {
            warn!(cert_name = %name, renewd_event = "revoked-detected", serial,
                "serial listed on the CA's CRL: certificate revoked, renewing now");
            cs.revoked = true;
        }
        let next = match answer {
            Ok(RenewalInfo::Window(window, retry_after)) => {
                entry.ari_failures = 0;
                // A window that has passed before the middle of the lifetime is the
                // CA asking for early replacement: a revocation (RFC 9773 §4.2).
                if window.end <= now && window.end < lineage_mid && !cs.revoked {
                    warn!(cert_name = %name, renewd_event = "revoked-detected", serial,
                        "CA moved the renewal window into the past: certificate revoked, renewing now");
                    cs.revoked = true;
                }
                cs.ari_window = Some(window);
                now + retry_after.clamp(check_interval.min(MIN_ARI_INTERVAL), check_interval)
            }
            Ok(RenewalInfo::Unsupported) => now + check_interval,
            Err(e) => {
                warn!(cert_name = %name, "ARI poll failed: {e}");
                retry_poll_at(entry, check_interval, now, random)
            }
        };
        cs.ari_poll_at = Some(next.into());
        let revoked = cs.revoked && !was_revoked;
        let moved = cs.ari_window != window_before;
        if !revoked && !moved {
            drop(state);
            entry.ari_poll_at = Some(next.into());
            self.touched(&name);
            return;
        }
        state.entry(&name);
        drop(state);
        // A newly drawn renewal time is saved at once by `replan`; so is a
        // revocation, here. A window that moved without changing the plan
        // can wait.
        self.replan(&name).await;
        if revoked {
            self.schedule_save();
        } else {
            self.save_within(super::LAZY_SAVE_DELAY);
        }
    }

    /// A poll task panicked: count it as a failed poll, retried after a backoff.
    pub(super) async fn poll_died(&mut self, name: String, e: &tokio::task::JoinError) {
        error!(cert_name = %name, "ARI poll task failed: {e}");
        let check_interval = self.config().daemon.check_interval.0;
        let (now, random) = (self.clock.now(), self.rng.random());
        let Some(entry) = self.entries.get_mut(name.as_str()) else {
            return;
        };
        entry.polling = false;
        let next = retry_poll_at(entry, check_interval, now, random);
        self.state.lock().await.entry(&name).ari_poll_at = Some(next.into());
        self.replan(&name).await;
    }
}

/// When to poll a certificate for its ARI window, given the time remembered
/// (`known`) and how many certificates are planned `together` with it (at
/// startup all of them): none yet, a random point of the next second per
/// certificate planned together, at most `check_interval` — one new
/// certificate at once, the 100,000 of a lost state or an import about five a
/// second instead of all of them in the first minute; a time missed by more
/// than [`MIN_ARI_INTERVAL`] (the daemon was not running then), a random
/// point of the next `check_interval`, so that the polls of 100,000
/// certificates that came due while it was stopped neither go out at once nor
/// come due together ever after; otherwise the time remembered. `random` is
/// uniform in `[0, 1)`.
pub(super) fn poll_time(
    known: Option<OffsetDateTime>,
    now: OffsetDateTime,
    check_interval: std::time::Duration,
    together: usize,
    random: f64,
) -> OffsetDateTime {
    match known {
        None => {
            let seconds = u64::try_from(together).unwrap_or(u64::MAX);
            let spread = check_interval.min(std::time::Duration::from_secs(seconds));
            now + spread.mul_f64(random)
        }
        Some(at) if at + MIN_ARI_INTERVAL < now => now + check_interval.mul_f64(random),
        Some(at) => at,
    }
}

/// Counts a failed poll of `entry`; when to try again (backoff with jitter).
/// `random` is a uniform sample in `[0, 1)`.
fn retry_poll_at(
    entry: &mut Entry,
    check_interval: std::time::Duration,
    now: OffsetDateTime,
    random: f64,
) -> OffsetDateTime {
    entry.ari_failures = entry.ari_failures.saturating_add(1);
    let failures = u32::from(entry.ari_failures);
    now + schedule::backoff(failures, check_interval, 0.5 + random / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    #[test]
    fn a_certificate_never_polled_is_polled_within_a_second() {
        let now = OffsetDateTime::now_utc();
        let at = poll_time(None, now, 6 * HOUR, 1, 0.7);
        assert!(at >= now && at < now + time::Duration::seconds(1));
    }

    #[test]
    fn many_never_polled_are_spread_a_second_apart_at_most_over_the_interval() {
        let now = OffsetDateTime::now_utc();
        let last = |together| poll_time(None, now, 6 * HOUR, together, 0.999_999);
        assert!(last(1_000) > now + time::Duration::seconds(999));
        assert!(last(1_000) < now + time::Duration::seconds(1_000));
        assert!(last(100_000) < now + 6 * HOUR);
        assert!(last(100_000) > now + 6 * HOUR - time::Duration::seconds(1));
    }

    #[test]
    fn a_poll_time_ahead_or_just_passed_is_kept() {
        let now = OffsetDateTime::now_utc();
        let ahead = now + time::Duration::hours(2);
        assert_eq!(poll_time(Some(ahead), now, 6 * HOUR, 1, 0.7), ahead);
        let just = now - time::Duration::seconds(30);
        assert_eq!(poll_time(Some(just), now, 6 * HOUR, 1, 0.7), just);
    }

    #[test]
    fn polls_missed_while_stopped_are_spread_over_the_next_interval() {
        let now = OffsetDateTime::now_utc();
        let missed = Some(now - time::Duration::days(2));
        let times: Vec<OffsetDateTime> = (0..100)
            .map(|i| poll_time(missed, now, 6 * HOUR, 1, f64::from(i) / 100.0))
            .collect();
        assert!(times.iter().all(|t| *t >= now && *t < now + 6 * HOUR));
        // Evenly: each hour of the interval gets its sixth of them.
        for hour in 0..6 {
            let start = now + HOUR * hour;
            let n = times
                .iter()
                .filter(|t| **t >= start && **t < start + HOUR)
                .count();
            assert!((16..=17).contains(&n), "hour {hour}: {n} polls");
        }
    }
}
