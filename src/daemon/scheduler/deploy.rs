//! After a renewal: reload each target once per batch, then check that every
//! `verify` target serves the new certificate; re-check every `check_interval`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::{ReloadResult, Scheduler, VERIFY_PATIENCE, VerifyResult};
use crate::config::{CertificateConfig, ReloadTarget};
use crate::reload;

impl Scheduler {
    /// Queues the reloads of a freshly renewed certificate (or verifies it at
    /// once when it has none).
    pub(super) fn deploy(&mut self, name: &str) {
        let Some(cert) = self.config().certificate(name) else {
            return;
        };
        let targets = cert.reload.clone();
        if targets.is_empty() {
            self.start_verify(name, VERIFY_PATIENCE);
            return;
        }
        self.outstanding.insert(name.to_owned(), targets.len());
        for target in targets {
            match self.pending_reloads.iter_mut().find(|(t, _)| *t == target) {
                Some((_, names)) => names.push(name.to_owned()),
                None => self.pending_reloads.push((target, vec![name.to_owned()])),
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

    /// Starts every pending reload whose batch is complete: no renewal of a
    /// certificate that uses the target is still running or queued.
    pub(super) fn dispatch_reloads(&mut self) {
        let config = Arc::clone(&self.ctx.config);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_reloads)
            .into_iter()
            .partition(|(t, _)| !self.held.contains_key(t));
        self.pending_reloads = waiting;
        for (target, names) in ready {
            let certs: Vec<&CertificateConfig> =
                names.iter().filter_map(|n| config.certificate(n)).collect();
            let renewed = reload::Renewed::new(&self.ctx.store, &certs);
            self.reloads.spawn(async move {
                let result = reload::run(&target, &renewed).await;
                (target, names, result)
            });
        }
    }

    pub(super) async fn reloaded(&mut self, (target, names, result): ReloadResult) {
        let what = reload::describe(&target);
        match &result {
            Ok(()) => {
                info!(renewd_event = "reloaded", target = %what, certificates = names.len(), "reloaded");
            }
            Err(e) => error!(renewd_event = "reload-failed", target = %what, "reload failed: {e}"),
        }
        {
            let mut state = self.ctx.state().lock().await;
            for name in &names {
                state.entry(name).reload_error = result.as_ref().err().map(ToString::to_string);
            }
        }
        self.schedule_save();
        for name in names {
            let left = self.outstanding.get_mut(&name).map(|n| {
                *n = n.saturating_sub(1);
                *n
            });
            if left == Some(0) {
                self.outstanding.remove(&name);
                self.start_verify(&name, VERIFY_PATIENCE);
            }
        }
    }

    /// Checks that every `verify` target of `name` serves its live certificate.
    pub(super) fn start_verify(&mut self, name: &str, patience: StdDuration) {
        let Some(cert) = self.config().certificate(name) else {
            return;
        };
        if cert.verify.is_empty() {
            return;
        }
        let Ok(Some(lineage)) = self.ctx.store.lineage(name) else {
            // Nothing to check until there is a certificate: its deployment
            // starts the first check.
            if let Some(entry) = self.entries.get_mut(name) {
                entry.verify_at = None;
            }
            return;
        };
        let (targets, sni) = (cert.verify.clone(), crate::verify::sni_for(&cert.domains));
        if let Some(entry) = self.entries.get_mut(name) {
            entry.verifying = true;
        }
        self.verifies.spawn(name, async move {
            let served =
                crate::verify::check_all(&targets, &sni, &lineage.cert.der, patience).await;
            (lineage.cert.serial, served)
        });
    }

    pub(super) async fn verified(&mut self, name: String, (serial, served): VerifyResult) {
        self.verify_done(&name);
        for s in served.iter().filter(|s| !s.matches) {
            warn!(cert_name = %name, renewd_event = "verify-failed", target = %s.target, serial,
                "the service does not serve the current certificate");
        }
        if served.iter().all(|s| s.matches) {
            info!(cert_name = %name, renewd_event = "verified", serial, "served by every verify target");
        }
        let mut state = self.ctx.state().lock().await;
        let cs = state.entry(&name);
        if cs.is_for(&serial) {
            cs.served = served;
            cs.served_at = Some(OffsetDateTime::now_utc());
        }
        drop(state);
        self.schedule_save();
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
            entry.verify_at = Some(OffsetDateTime::now_utc() + check_interval);
        }
        self.touched(name);
    }
}
