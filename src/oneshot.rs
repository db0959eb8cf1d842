//! One-shot mode: `renewd renew` and `renewd revoke` without a daemon, for cron
//! or CI. Renews what is due (or everything forced) with at most
//! `daemon.max_concurrent` orders in flight, records the outcomes, then deploys
//! the renewed certificates once, as one batch — the same steps the daemon
//! takes, run to completion.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::config::{CertificateConfig, Config};
use crate::deploy;
use crate::metrics::Metrics;
use crate::renew::{Outcome, Renewer};
use crate::schedule;
use crate::state::{CertState, State};
use crate::store::Store;

/// A one-shot run over one config and state directory.
pub struct OneShot {
    renewer: Arc<Renewer>,
    state: State,
}

impl OneShot {
    /// Prepares a run over `store` with `config`, reading `state.json`.
    #[must_use]
    pub fn new(config: Arc<Config>, store: Store) -> Self {
        Self {
            state: State::load(&store, &config),
            renewer: Arc::new(Renewer::new(config, store, Metrics::new())),
        }
    }

    /// Renews each of `certs` that is due (all of them with `force`), with at
    /// most `daemon.max_concurrent` in flight; outcomes in the order given.
    pub async fn renew_all(
        &mut self,
        certs: Vec<CertificateConfig>,
        force: bool,
    ) -> Vec<(String, Outcome)> {
        let config = &self.renewer.config;
        let permits = Arc::new(Semaphore::new(config.daemon.max_concurrent.max(1)));
        let now = OffsetDateTime::now_utc();
        let tasks: Vec<_> = certs
            .into_iter()
            .map(|cert| {
                let decision = self.decide(&cert, force, now);
                let fresh_key = self
                    .state
                    .certificates
                    .get(&*cert.name)
                    .is_some_and(CertState::needs_fresh_key);
                let renewer = Arc::clone(&self.renewer);
                let permits = Arc::clone(&permits);
                tokio::spawn(async move {
                    let started = OffsetDateTime::now_utc();
                    let outcome = match decision {
                        Err(at) => Outcome::NotDue { at },
                        Ok(reason) => {
                            let slot = permits.acquire_owned().await.ok();
                            renewer.renew(&cert, &reason, fresh_key, slot).await
                        }
                    };
                    (cert, started, outcome)
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            match task.await {
                Ok((cert, started, outcome)) => {
                    self.record(&cert, started, &outcome);
                    outcomes.push((cert.name.to_string(), outcome));
                }
                Err(e) => warn!("renewal task failed: {e}"),
            }
        }
        self.save_state().await;
        outcomes
    }

    /// Why `cert` is to be renewed now, or when it will be: the daemon's plan
    /// (ARI time, revocation, pending forced renewal, fallback), whose newly
    /// drawn time is remembered as the daemon would.
    fn decide(
        &mut self,
        cert: &CertificateConfig,
        force: bool,
        now: OffsetDateTime,
    ) -> Result<String, OffsetDateTime> {
        let daemon = &self.renewer.config.daemon;
        let lineage = self
            .renewer
            .store
            .lineage(&cert.name)
            .map_err(|e| e.to_string());
        let cs = self.state.entry(&cert.name);
        // An explicit run is an explicit attempt: the daemon's retry backoff
        // after a failure does not hold it back.
        let retry_at = cs.retry_at.take();
        let (plan, _) = schedule::plan_and_remember(
            cert,
            &lineage,
            cs,
            (daemon.renew_before.0, daemon.jitter.0),
            now,
            rand::random(),
        );
        cs.retry_at = retry_at;
        if force {
            Ok("forced".to_owned())
        } else if plan.at <= now {
            Ok(plan.reason.to_string())
        } else {
            Err(plan.at)
        }
    }

    fn record(&mut self, cert: &CertificateConfig, started: OffsetDateTime, outcome: &Outcome) {
        let cs = self.state.entry(&cert.name);
        let times = (started, OffsetDateTime::now_utc());
        self.renewer
            .record(cert, outcome, cs, times, rand::random());
    }

    /// Deploys `renewed` as one batch: each distinct reload target once, then
    /// every `verify` target checked. Returns one line per reload and per check,
    /// and whether all went well.
    pub async fn deploy(&mut self, renewed: &[&CertificateConfig]) -> (Vec<String>, bool) {
        let store = &self.renewer.store;
        let mut lines = Vec::new();
        let mut ok = true;
        for (target, certs) in crate::reload::coalesce(renewed) {
            let result = deploy::reload(&target, store, &certs).await;
            let what = crate::reload::describe(&target);
            match &result {
                Ok(()) => lines.push(format!("reload {what}: ok")),
                Err(e) => {
                    lines.push(format!("reload {what}: failed: {e}"));
                    ok = false;
                }
            }
            let names: Vec<String> = certs.iter().map(|c| c.name.to_string()).collect();
            deploy::record_reload(&mut self.state, &target, &names, &result);
        }
        for cert in renewed {
            let Some(check) = deploy::check(cert, store, deploy::VERIFY_PATIENCE).await else {
                continue;
            };
            for s in &check.served {
                if s.matches {
                    lines.push(format!("{}: served at {}", cert.name, s.target));
                } else {
                    lines.push(format!(
                        "{}: verify-failed: {} does not serve it",
                        cert.name, s.target
                    ));
                    ok = false;
                }
            }
            deploy::record_check(
                &mut self.state,
                &cert.name,
                check,
                OffsetDateTime::now_utc(),
            );
            // Written even when it found the same: this process ends here.
            self.state.entry(&cert.name);
        }
        for cert in renewed {
            self.state.entry(&cert.name).deploy_pending = false;
        }
        self.save_state().await;
        (lines, ok)
    }

    /// Revokes the live certificate of `cert` at the CA that issued it and
    /// marks it revoked (so it is renewed next, with a new key); returns its
    /// serial.
    ///
    /// # Errors
    ///
    /// [`crate::acme::Error`] when there is no live certificate or the CA refuses.
    pub async fn revoke(
        &mut self,
        cert: &CertificateConfig,
        reason: Option<instant_acme::RevocationReason>,
    ) -> Result<String, crate::acme::Error> {
        let issued_by = self.state.issued_by(&cert.name);
        let ca = self.renewer.issuer(cert, issued_by.as_deref());
        let serial = self.renewer.revoke(cert, &ca, reason).await?;
        // The serial is the live certificate's: what the state knew of another
        // one no longer applies.
        let cs = self.state.entry(&cert.name);
        if !cs.is_for(&serial) {
            cs.renewed(&serial);
        }
        cs.revoked = true;
        self.save_state().await;
        Ok(serial)
    }

    async fn save_state(&mut self) {
        if let Err(e) = self.state.snapshot().write(&self.renewer.store).await {
            warn!("cannot save state: {e}");
        }
    }
}
