//! Renewals as the scheduler runs them: started as tasks (at most
//! `max_concurrent` orders in flight), their outcomes recorded in the state when
//! they end, and forced mass renewals (SIGUSR1, `renew --force`) guarded so that
//! a second trigger while one runs renews nothing twice.

use std::collections::HashSet;
use std::sync::Arc;

use rand::Rng;
use time::OffsetDateTime;
use tokio::task::JoinError;
use tracing::{error, info};

use super::{RenewalResult, Scheduler};
use crate::control::proto::RenewEvent;
use crate::renew::{Failure, FailureKind, Outcome};

/// The forced mass renewal in progress: a certificate it has already renewed
/// (or tried) is not forced again until every one of it has ended.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Forced and not ended yet.
    todo: HashSet<String>,
    /// Ended in this batch.
    done: HashSet<String>,
}

impl Batch {
    /// Which of `names` to force now: those the batch does not cover yet, which
    /// it then does.
    fn take(&mut self, names: &[String]) -> Vec<String> {
        let fresh: Vec<String> = names
            .iter()
            .filter(|n| !self.todo.contains(*n) && !self.done.contains(*n))
            .cloned()
            .collect();
        self.todo.extend(fresh.iter().cloned());
        fresh
    }

    /// `name` has ended; whether the whole batch has.
    fn ended(&mut self, name: &str) -> bool {
        if self.todo.remove(name) {
            self.done.insert(name.to_owned());
        }
        self.todo.is_empty()
    }

    fn covered(&self, name: &str) -> bool {
        self.done.contains(name)
    }
}

impl Scheduler {
    pub(super) fn start_renewal(&mut self, name: &str, reason: String) {
        let Some(cert) = self.config().certificate(name).cloned() else {
            return;
        };
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        entry.running = true;
        for target in cert.reload.iter() {
            *self.held.entry(target.clone()).or_default() += 1;
        }
        self.holding
            .insert(name.to_owned(), Arc::clone(&cert.reload));
        let world = Arc::clone(&self.world);
        let fresh_key = entry.fresh_key;
        let permits = Arc::clone(&self.permits);
        let max = self.config().daemon.max_concurrent;
        let clock = self.clock.clone();
        self.renewals.spawn(name, async move {
            let started = clock.now();
            // Closed when the daemon stops: no new order after SIGTERM.
            let Ok(slot) = Arc::clone(&permits).acquire_owned().await else {
                return (started, Outcome::Stopped);
            };
            let in_flight = max.saturating_sub(permits.available_permits());
            info!(cert_name = %cert.name, in_flight, reason, "order started");
            (
                started,
                world.renew(cert, reason, fresh_key, Some(slot)).await,
            )
        });
    }

    /// A renewal task ended; one that panicked ends its renewal as a failure, so
    /// that the retry waits for the backoff instead of looping.
    pub(super) async fn renewal_ended(
        &mut self,
        name: String,
        done: Result<RenewalResult, JoinError>,
    ) {
        let (started, outcome) = done.unwrap_or_else(|e| {
            error!(cert_name = %name, "renewal task failed: {e}");
            (
                self.clock.now(),
                Outcome::Failed(Failure::new(
                    FailureKind::Internal,
                    format!("internal error: {e}"),
                )),
            )
        });
        self.record(&name, started, &outcome).await;
        if matches!(outcome, Outcome::Renewed { .. } | Outcome::Failed(_)) {
            let (event, detail) = (outcome.event(), outcome.to_string());
            self.fleet_outcome(&name, Some(started), event, &detail);
        }
        self.finished(name, outcome).await;
    }

    pub(super) async fn record(&mut self, name: &str, started: OffsetDateTime, outcome: &Outcome) {
        let world = Arc::clone(&self.world);
        let Some(cert) = world.config().certificate(name) else {
            return;
        };
        let times = (started, self.clock.now());
        let random = self.rng.random();
        let mut state = self.state.lock().await;
        world.record(cert, outcome, state.entry(name), times, random);
    }

    async fn finished(&mut self, name: String, outcome: Outcome) {
        for waiter in self.waiters.remove(&name).unwrap_or_default() {
            let _ = waiter.send(RenewEvent {
                event: outcome.event().to_owned(),
                name: name.clone(),
                detail: outcome.to_string(),
            });
        }
        if self.batch.as_mut().is_some_and(|b| b.ended(&name)) {
            info!("mass renewal ended");
            self.batch = None;
        }
        if let Some(entry) = self.entries.get_mut(name.as_str()) {
            entry.running = false;
            if std::mem::take(&mut entry.reforce) {
                // The order that just ended started before the force: the
                // force asks for one that starts after it.
                self.state.lock().await.entry(&name).force_pending = true;
            }
            if let Some(holds) = self.holding.remove(&name) {
                self.release(&holds);
            }
            if matches!(outcome, Outcome::Renewed { .. }) {
                self.deploy(&name, false).await;
            }
            self.dispatch_reloads().await;
            self.replan(&name).await;
            self.schedule_save();
            self.status_changed();
        }
    }

    /// Forces the renewal of `names`, except those the mass renewal in progress
    /// has already renewed: marks them, starts those not already renewing and
    /// persists the marks, so a daemon restarted after a crash finishes the job.
    /// The orders need several round trips to the CA, so the write lands long
    /// before any of them can finish; it does not hold them up.
    pub(super) async fn force(&mut self, names: &[String]) {
        let names = self.batch.get_or_insert_default().take(names);
        let now = self.clock.now();
        // Forced: renewd's own backoff is skipped, but not a time the CA asked
        // for (a rate limit, a Retry-After): those start when their retry time
        // ends, as planned.
        let mut held = HashSet::new();
        {
            let mut state = self.state.lock().await;
            for name in &names {
                let cs = state.entry(name);
                cs.force_pending = true;
                if cs.ca_retry_at.is_some_and(|at| at > now) {
                    held.insert(name.clone());
                }
            }
        }
        for name in &names {
            match self.entries.get_mut(name.as_str()) {
                Some(entry) if entry.running => entry.reforce = true,
                Some(_) if held.contains(name) => self.replan(name).await,
                Some(_) => self.start_renewal(name, "forced".to_owned()),
                None => {}
            }
        }
        if self.batch.as_ref().is_some_and(|b| b.todo.is_empty()) {
            self.batch = None;
        }
        self.save_state().await;
    }

    /// Whether the mass renewal in progress has already renewed (or tried) `name`.
    pub(super) fn renewed_in_batch(&self, name: &str) -> bool {
        self.batch.as_ref().is_some_and(|b| b.covered(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_second_trigger_forces_only_what_the_batch_does_not_cover() {
        let mut batch = Batch::default();
        assert_eq!(
            batch.take(&names(&["a", "b", "c"])),
            names(&["a", "b", "c"])
        );
        assert!(!batch.ended("a"));
        // Again while b and c run: a is done, b and c are under way.
        assert_eq!(batch.take(&names(&["a", "b", "c", "d"])), names(&["d"]));
        assert!(batch.covered("a") && !batch.covered("b"));
        assert!(!batch.ended("b"));
        assert!(!batch.ended("c"));
        assert!(batch.ended("d"), "every certificate of the batch has ended");
    }
}
