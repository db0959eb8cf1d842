//! After a renewal, as the daemon does it: reload each target once per batch
//! (when no renewal of a certificate that uses it is still running), then check
//! the `verify` targets; re-check every `check_interval`. The steps and their
//! records are [`crate::deploy`]'s; this file keeps the batches.
//!
//! A deployment is durable: the renewal's record marks it pending in the state,
//! the state is written before any reload of a batch runs, and the mark is
//! cleared only once the certificate was checked (or has nothing to check). A
//! daemon that died in between deploys what is pending when it starts, as one
//! batch. A service that does not serve the new certificate after its reload
//! gets one more reload; then the certificate stays unhealthy (no loop).

use std::sync::Arc;

use tokio::time::Instant;

use tracing::{error, info, warn};

use super::{ReloadResult, Scheduler};
use crate::config::ReloadTarget;
use crate::deploy::{self, Check, REVERIFY_PATIENCE, VERIFY_PATIENCE};

/// Why a served-certificate check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verify {
    /// After a deployment's reloads: it decides whether to reload once more.
    EndsDeployment,
    /// Every `check_interval`.
    Periodic,
}

/// Why a check ran, and what it found.
pub(super) type VerifyResult = (Verify, Option<Check>);

impl Scheduler {
    /// Deploys every certificate whose deployment a previous run left
    /// pending, as one batch.
    pub(super) async fn resume_deploys(&mut self) {
        let mut pending: Vec<String> = {
            let state = self.state.lock().await;
            self.entries
                .iter()
                .filter(|(name, entry)| {
                    // Planning a live certificate the state was not for
                    // reset the mark: one left is for the live certificate.
                    entry.live
                        && state
                            .certificates
                            .get::<str>(name)
                            .is_some_and(|cs| cs.deploy_pending)
                })
                .map(|(name, _)| name.to_string())
                .collect()
        };
        // In name order, whatever the map's.
        pending.sort_unstable();
        for name in &pending {
            info!(cert_name = %name, "deploying what the last run left pending");
            self.deploy(name, false).await;
        }
        self.dispatch_reloads().await;
    }

    /// Queues the reloads of a freshly renewed certificate (or verifies it at
    /// once when it has none); `again` after a check found it not served.
    pub(super) async fn deploy(&mut self, name: &str, again: bool) {
        let Some(cert) = self.config().certificate(name) else {
            return;
        };
        let targets = Arc::clone(&cert.reload);
        if let Some(entry) = self.entries.get_mut(name) {
            entry.deploying = if again { 2 } else { 1 };
        }
        if targets.is_empty() {
            self.deploy_checked(name).await;
            return;
        }
        self.outstanding.insert(name.to_owned(), targets.len());
        for target in targets.iter() {
            match self.pending_reloads.iter_mut().find(|(t, _)| t == target) {
                Some((_, names)) => names.push(name.to_owned()),
                None => self
                    .pending_reloads
                    .push((target.clone(), vec![name.to_owned()])),
            }
        }
    }

    /// A renewal that held `targets` back has ended (or its certificate left the
    /// config).
    pub(super) fn release(&mut self, targets: &[ReloadTarget]) {
        for target in targets {
            if let Some(count) = self.held.get_mut(target) {
                *count -= 1;
                if *count == 0 {
                    self.held.remove(target);
                }
            }
        }
    }

    /// Starts every pending reload that may run: its batch is complete (no
    /// renewal of a certificate that uses the target is still running or
    /// queued), and no target before it in the `reload` list of one of its
    /// certificates is still waiting or running. The ones that may run go one
    /// after the other, in the order they were queued, so each certificate's
    /// targets run in the order given. The state (with the deployments pending)
    /// is written first.
    pub(super) async fn dispatch_reloads(&mut self) {
        if self.quiet_until.is_some_and(|at| at > Instant::now()) {
            return;
        }
        let config = Arc::clone(self.world.config());
        let mut blocked: Vec<ReloadTarget> = self.reloading.clone();
        let mut ready = Vec::new();
        for (target, names) in std::mem::take(&mut self.pending_reloads) {
            // Looked at only when needed: during a mass renewal, every
            // renewal that ends dispatches, and the targets wait with all
            // the certificates renewed so far.
            let earlier_waits = || {
                names.iter().filter_map(|n| config.certificate(n)).any(|c| {
                    c.reload
                        .iter()
                        .take_while(|t| **t != target)
                        .any(|t| blocked.contains(t))
                })
            };
            let waits = self.held.contains_key(&target) || (!blocked.is_empty() && earlier_waits());
            if waits {
                blocked.push(target.clone());
                self.pending_reloads.push((target, names));
            } else {
                ready.push((target, names));
            }
        }
        if ready.is_empty() {
            return;
        }
        self.save_state().await;
        self.reloading.extend(ready.iter().map(|(t, _)| t.clone()));
        let world = Arc::clone(&self.world);
        self.reloads.spawn(async move {
            let mut results = Vec::with_capacity(ready.len());
            for (target, names) in ready {
                let result = world.reload(target.clone(), names.clone()).await;
                results.push((target, names, result));
            }
            results
        });
    }

    /// Fleet mode: a version from another node arrived; more may follow
    /// (a mass renewal), so the reloads wait for a quiet moment.
    pub(super) fn hold_reloads_briefly(&mut self) {
        self.quiet_until = Some(Instant::now() + super::FLEET_QUIET);
    }

    /// A chain of reloads has ended.
    pub(super) async fn reloaded(&mut self, results: Vec<ReloadResult>) {
        for result in results {
            self.reload_ended(result).await;
        }
        self.dispatch_reloads().await;
    }

    async fn reload_ended(&mut self, (target, names, result): ReloadResult) {
        self.reloading.retain(|t| *t != target);
        deploy::record_reload(&mut *self.state.lock().await, &target, &names, &result);
        self.schedule_save();
        for name in names {
            let left = self.outstanding.get_mut(&name).map(|n| {
                *n = n.saturating_sub(1);
                *n
            });
            if left == Some(0) {
                self.outstanding.remove(&name);
                self.deploy_checked(&name).await;
            }
        }
    }

    /// The reloads of `name`'s deployment are done (or it has none): check it,
    /// or end the deployment when there is nothing to check.
    async fn deploy_checked(&mut self, name: &str) {
        let verifies = self
            .config()
            .certificate(name)
            .is_some_and(|c| !c.verify.is_empty());
        if verifies {
            self.start_verify(name, Verify::EndsDeployment);
        } else {
            self.deploy_done(name).await;
        }
    }

    /// `name`'s deployment has ended, well or not.
    async fn deploy_done(&mut self, name: &str) {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.deploying = 0;
        }
        self.state.lock().await.entry(name).deploy_pending = false;
        self.schedule_save();
    }

    /// Checks that every `verify` target of `name` serves its live certificate.
    pub(super) fn start_verify(&mut self, name: &str, kind: Verify) {
        let Some(cert) = self.config().certificate(name).cloned() else {
            return;
        };
        if cert.verify.is_empty() {
            return;
        }
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        if !entry.live {
            // Nothing to check until there is a certificate: its deployment
            // starts the first check.
            entry.verify_at = None;
            return;
        }
        entry.verifying = true;
        let world = Arc::clone(&self.world);
        let patience = match kind {
            Verify::EndsDeployment => VERIFY_PATIENCE,
            Verify::Periodic => REVERIFY_PATIENCE,
        };
        self.verifies.spawn(
            name,
            async move { (kind, world.check(cert, patience).await) },
        );
    }

    pub(super) async fn verified(&mut self, name: String, (kind, check): VerifyResult) {
        self.verify_done(&name);
        let served = check
            .as_ref()
            .is_none_or(|c| c.served.iter().all(|s| s.matches));
        if let Some(check) = check {
            let now = self.clock.now();
            deploy::record_check(&mut *self.state.lock().await, &name, check, now);
        }
        // Only the check after the reloads decides about the deployment: a
        // periodic one may have started before them, or for the certificate
        // before.
        let deploying = match kind {
            Verify::EndsDeployment => self.entries.get(name.as_str()).map_or(0, |e| e.deploying),
            Verify::Periodic => 0,
        };
        let reloads = self
            .config()
            .certificate(&name)
            .is_some_and(|c| !c.reload.is_empty());
        if !served && deploying == 1 && reloads {
            warn!(cert_name = %name, "not served after the reload: reloading once more");
            self.deploy(&name, true).await;
            self.dispatch_reloads().await;
        } else if deploying > 0 {
            self.deploy_done(&name).await;
        }
        match kind {
            Verify::EndsDeployment => self.schedule_save(),
            Verify::Periodic => self.save_within(super::LAZY_SAVE_DELAY),
        }
        self.status_changed();
    }

    /// A check task panicked: the next check comes a check interval later.
    pub(super) fn verify_died(&mut self, name: &str, e: &tokio::task::JoinError) {
        error!(cert_name = name, "served-certificate check failed: {e}");
        self.verify_done(name);
    }

    /// Plans the next periodic check of `name`.
    fn verify_done(&mut self, name: &str) {
        let check_interval = self.config().daemon.check_interval.0;
        if let Some(entry) = self.entries.get_mut(name) {
            entry.verifying = false;
            entry.verify_at = Some((self.clock.now() + check_interval).into());
        }
        self.touched(name);
    }
}
