//! The renewal pipeline for one certificate: decide, key, order (falling back
//! over solvers, then CAs), publish, remember. Used by one-shot `renewd renew`
//! and by the daemon's scheduler alike; neither reloads nor verifies here.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use instant_acme::Account;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Semaphore};
use tracing::{Instrument, info, warn};

use crate::acme;
use crate::config::{CertificateConfig, Config};
use crate::schedule::{self, Urgent};
use crate::solver::Solvers;
use crate::state::State;
use crate::store::{Issued, Lineage, Store};

/// How long a one-shot check waits for a reloaded service to serve the new certificate.
const VERIFY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// One of the `daemon.max_concurrent` places for orders in flight, if the caller
/// holds one. It is given back as soon as the CA has delivered the certificate:
/// writing it to disk (several fsyncs) is not an order in flight, and holding the
/// place meanwhile kept the CA idle for a sixth of every renewal in a mass renewal.
pub type Slot = Option<tokio::sync::OwnedSemaphorePermit>;

/// Everything a renewal needs, shared by all certificates of a run.
pub struct Context {
    /// The validated config.
    pub config: Arc<Config>,
    /// The state directory.
    pub store: Store,
    solvers: Solvers,
    accounts: Mutex<HashMap<String, Account>>,
    state: Arc<Mutex<State>>,
}

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
    Failed(String),
}

impl Outcome {
    /// Whether this outcome counts as success for an exit code.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        !matches!(self, Self::Failed(_))
    }
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
        }
    }
}

impl Context {
    /// Prepares a run over `store` with `config`, reading `state.json`.
    #[must_use]
    pub fn new(config: Arc<Config>, store: Store) -> Self {
        let state = Arc::new(Mutex::new(State::load(&store)));
        Self::with_state(config, store, state)
    }

    /// Prepares a run that shares `state` with an earlier one (config reload).
    #[must_use]
    pub fn with_state(config: Arc<Config>, store: Store, state: Arc<Mutex<State>>) -> Self {
        Self {
            solvers: Solvers::new(&config.solvers),
            config,
            store,
            accounts: Mutex::new(HashMap::new()),
            state,
        }
    }

    /// The state shared by every renewal.
    #[must_use]
    pub fn state(&self) -> &Arc<Mutex<State>> {
        &self.state
    }

    /// Renews every certificate in `certs` with at most `daemon.max_concurrent`
    /// in flight, returning outcomes in the order given.
    pub async fn renew_all(
        self: &Arc<Self>,
        certs: Vec<CertificateConfig>,
        force: bool,
    ) -> Vec<(String, Outcome)> {
        let permits = Arc::new(Semaphore::new(self.config.daemon.max_concurrent.max(1)));
        let tasks: Vec<_> = certs
            .into_iter()
            .map(|cert| {
                let ctx = Arc::clone(self);
                let permits = Arc::clone(&permits);
                tokio::spawn(async move {
                    let slot = permits.acquire_owned().await.ok();
                    let outcome = ctx.renew(&cert, force, slot).await;
                    (cert.name, outcome)
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            match task.await {
                Ok(done) => outcomes.push(done),
                Err(e) => warn!("renewal task failed: {e}"),
            }
        }
        self.save_state().await;
        outcomes
    }

    /// Renews `cert` if it is due by the fallback rule (or `force`), recording
    /// the attempt. This is one-shot mode's decision; the daemon plans with ARI
    /// and calls [`Context::renew_now`].
    pub async fn renew(&self, cert: &CertificateConfig, force: bool, slot: Slot) -> Outcome {
        let now = OffsetDateTime::now_utc();
        let lineage = self.store.lineage(&cert.name).map_err(|e| e.to_string());
        let urgent = schedule::urgent(cert, &lineage, now);
        if let (false, None, Ok(Some(l))) = (force, &urgent, &lineage) {
            let at = schedule::fallback_time(l, self.config.daemon.renew_before.0);
            if at > now {
                return Outcome::NotDue { at };
            }
        }
        let reason = match urgent {
            Some(u) => u.to_string(),
            None if force => "forced".to_owned(),
            None => "due".to_owned(),
        };
        self.renew_now(cert, &reason, slot).await
    }

    /// Renews `cert` now, for `reason`, recording the attempt in the state.
    pub async fn renew_now(
        &self,
        cert: &CertificateConfig,
        reason: &str,
        mut slot: Slot,
    ) -> Outcome {
        let span = tracing::info_span!("certificate", cert_name = %cert.name);
        async {
            let now = OffsetDateTime::now_utc();
            let lineage = self.store.lineage(&cert.name).map_err(|e| e.to_string());
            let urgent = schedule::urgent(cert, &lineage, now);
            info!(reason, "renewing");
            let outcome = self
                .issue(cert, lineage.ok().flatten().as_ref(), &urgent, &mut slot)
                .await;
            self.record(&cert.name, now, &outcome).await;
            outcome
        }
        .instrument(span)
        .await
    }

    async fn issue(
        &self,
        cert: &CertificateConfig,
        lineage: Option<&Lineage>,
        urgent: &Option<Urgent>,
        slot: &mut Slot,
    ) -> Outcome {
        let key_pem = match self.key_for(cert, lineage, urgent).await {
            Ok(key) => key,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let mut errors = Vec::new();
        for ca in &cert.ca {
            match self
                .issue_from(cert, ca, lineage, &key_pem, &mut errors, slot)
                .await
            {
                Some(outcome) => return outcome,
                None => warn!(ca, "CA failed, trying the next one"),
            }
        }
        Outcome::Failed(errors.join("; "))
    }

    /// Tries every solver with CA `ca`; `None` when all failed (errors appended).
    async fn issue_from(
        &self,
        cert: &CertificateConfig,
        ca: &str,
        lineage: Option<&Lineage>,
        key_pem: &str,
        errors: &mut Vec<String>,
        slot: &mut Slot,
    ) -> Option<Outcome> {
        let account = match self.account(ca).await {
            Ok(account) => account,
            Err(e) => {
                errors.push(e.to_string());
                return None;
            }
        };

        let ca_config = &self.config.cas[ca];
        let order = acme::Order {
            ca,
            domains: &cert.domains,
            profile: cert.profile.as_deref().or(ca_config.profile.as_deref()),
            replaces: lineage.and_then(|l| l.cert.ari_id.as_deref()),
            key_pem,
        };
        let replaces = order.replaces.unwrap_or("-");
        for solver_name in &cert.solvers {
            let Some(solver) = self.solvers.get(solver_name) else {
                continue;
            };
            match acme::issue(&account, &order, &solver).await {
                Ok(fullchain) => {
                    info!(ca, solver = solver_name, replaces, "certificate issued");
                    slot.take();
                    return Some(
                        self.publish(cert, ca, solver_name, fullchain, key_pem)
                            .await,
                    );
                }
                Err(e) => {
                    warn!(ca, solver = solver_name, "issuance failed: {e}");
                    self.forget_account_if_unreachable(ca, &e).await;
                    let next_solver_may_help = e.is_challenge_failure();
                    errors.push(e.to_string());
                    if !next_solver_may_help {
                        return None;
                    }
                }
            }
        }
        None
    }

    async fn publish(
        &self,
        cert: &CertificateConfig,
        ca: &str,
        solver: &str,
        fullchain: String,
        key_pem: &str,
    ) -> Outcome {
        let issued = match Issued::from_fullchain(fullchain, key_pem.to_owned()) {
            Ok(issued) => issued,
            Err(e) => return Outcome::Failed(format!("CA {ca} returned an unusable chain: {e}")),
        };
        let info = match crate::store::CertInfo::from_pem(issued.cert_pem.as_bytes()) {
            Ok(info) if info.matches_key(key_pem) => info,
            Ok(_) => {
                return Outcome::Failed(format!("CA {ca} returned a certificate for another key"));
            }
            Err(e) => {
                return Outcome::Failed(format!("CA {ca} returned an unreadable certificate: {e}"));
            }
        };
        let name = cert.name.clone();
        let published = self
            .store
            .off_runtime(move |store| store.publish(&name, &issued))
            .await;
        match published {
            Ok(version) => {
                info!(
                    renewd_event = "renewed",
                    serial = %info.serial,
                    version,
                    ca,
                    solver,
                    "renewed"
                );
                Outcome::Renewed {
                    version,
                    serial: info.serial,
                    not_after: info.not_after,
                    ca: ca.to_owned(),
                    solver: solver.to_owned(),
                }
            }
            Err(e) => Outcome::Failed(format!("cannot store the new certificate: {e}")),
        }
    }

    /// The key for the new certificate: the live one when `reuse_key` allows,
    /// otherwise a fresh one of the configured type.
    async fn key_for(
        &self,
        cert: &CertificateConfig,
        lineage: Option<&Lineage>,
        urgent: &Option<Urgent>,
    ) -> Result<String, acme::Error> {
        // A revoked certificate's key may be why it was revoked (keyCompromise).
        let revoked = self
            .state
            .lock()
            .await
            .certificates
            .get(&cert.name)
            .is_some_and(|s| s.revoked);
        let reusable = cert.reuse_key
            && !revoked
            && urgent.is_none()
            && lineage.is_some_and(|l| l.key_matches && l.cert.key_type == Some(cert.key));
        if reusable {
            if let Ok(key) = self.store.live_key(&cert.name) {
                return Ok(key);
            }
        }
        let key_type = cert.key;
        tokio::task::spawn_blocking(move || acme::generate_key(key_type))
            .await
            .map_err(|e| acme::Error::Key(e.to_string()))?
    }

    /// Asks the CA that issued the live certificate for its ARI window.
    ///
    /// # Errors
    ///
    /// [`acme::Error`] when the account cannot be loaded or the CA not reached.
    pub async fn renewal_info(
        &self,
        cert: &CertificateConfig,
        ari_id: &str,
    ) -> Result<acme::RenewalInfo, acme::Error> {
        let ca = self.issuer(cert).await;
        let account = self.account(&ca).await?;
        let result = acme::renewal_info(&account, &ca, ari_id).await;
        if let Err(e) = &result {
            self.forget_account_if_unreachable(&ca, e).await;
        }
        result
    }

    /// Whether the CA's CRL lists the live certificate of `name`: `None` when it
    /// names no CRL or the CRL cannot tell (logged).
    pub async fn crl_revoked(&self, name: &str, lineage: &Lineage) -> Option<bool> {
        let chain = std::fs::read(lineage.dir.join("chain.pem")).ok()?;
        let issuer = rustls_pki_types::CertificateDer::pem_slice_iter(&chain)
            .next()?
            .ok()?;
        match crate::crl::is_revoked(&lineage.cert.der, &issuer).await {
            Ok(listed) => listed,
            Err(e) => {
                warn!(cert_name = name, "CRL check failed: {e}");
                None
            }
        }
    }

    /// Drops the cached account of a CA that could not be reached, so the next
    /// attempt rebuilds its HTTP client (re-reading `trust` and the directory).
    async fn forget_account_if_unreachable(&self, ca: &str, e: &acme::Error) {
        if e.is_transport() {
            self.accounts.lock().await.remove(ca);
        }
    }

    /// Revokes the live certificate of `cert` with the account of the CA that
    /// issued it.
    ///
    /// # Errors
    ///
    /// [`acme::Error`] when there is no live certificate or the CA refuses.
    pub async fn revoke(
        &self,
        cert: &CertificateConfig,
        reason: Option<instant_acme::RevocationReason>,
    ) -> Result<String, acme::Error> {
        let lineage = self
            .store
            .lineage(&cert.name)
            .map_err(|e| acme::Error::Key(e.to_string()))?
            .ok_or_else(|| acme::Error::Key(format!("{}: no certificate to revoke", cert.name)))?;
        let ca = self.issuer(cert).await;
        let account = self.account(&ca).await?;
        acme::revoke(&account, &ca, &lineage.cert.der, reason).await?;
        warn!(cert_name = %cert.name, renewd_event = "revoked", serial = %lineage.cert.serial, "certificate revoked");
        Ok(lineage.cert.serial)
    }

    /// The CA that issued the live certificate, else the first configured one.
    async fn issuer(&self, cert: &CertificateConfig) -> String {
        let issuer = self
            .state
            .lock()
            .await
            .certificates
            .get(&cert.name)
            .and_then(|s| s.ca.clone());
        issuer
            .filter(|ca| self.config.cas.contains_key(ca))
            .or_else(|| cert.ca.first().cloned())
            .unwrap_or_default()
    }

    async fn account(&self, ca: &str) -> Result<Account, acme::Error> {
        let mut accounts = self.accounts.lock().await;
        if let Some(account) = accounts.get(ca) {
            return Ok(account.clone());
        }
        let account = acme::account(&self.store, ca, &self.config.cas[ca]).await?;
        accounts.insert(ca.to_owned(), account.clone());
        Ok(account)
    }

    pub(crate) async fn record(&self, name: &str, at: OffsetDateTime, outcome: &Outcome) {
        let mut state = self.state.lock().await;
        let entry = state.entry(name);
        entry.last_attempt = Some(at);
        if !matches!(outcome, Outcome::NotDue { .. }) {
            crate::metrics::renewal(name, outcome.is_ok());
        }
        match outcome {
            Outcome::Renewed {
                ca, solver, serial, ..
            } => {
                entry.last_result = Some("ok".to_owned());
                entry.ca = Some(ca.clone());
                entry.solver = Some(solver.clone());
                entry.renewed(serial);
                // A new certificate's window is weeks away: its first ARI poll can
                // wait, at a random point of a check interval, so that a mass
                // renewal is not followed by a burst of renewalInfo requests.
                let spread = self.config.daemon.check_interval.0.mul_f64(rand::random());
                entry.ari_poll_at = Some(OffsetDateTime::now_utc() + spread);
            }
            Outcome::Failed(why) => {
                warn!(
                    cert_name = name,
                    renewd_event = "failed",
                    "renewal failed: {why}"
                );
                entry.last_result = Some(format!("error: {why}"));
                entry.failures += 1;
                let delay = schedule::backoff(
                    entry.failures,
                    self.config.daemon.check_interval.0,
                    rand::random_range(0.5..=1.0),
                );
                let now = OffsetDateTime::now_utc();
                let cap = self.config.daemon.check_interval.0;
                let backoff = now + delay;
                let told = self
                    .config
                    .certificate(name)
                    .into_iter()
                    .flat_map(|c| &c.ca)
                    .filter_map(|ca| acme::retry_after(ca, at))
                    .max();
                entry.retry_at = Some(
                    schedule::ca_retry_time(why, told, now, cap)
                        .map_or(backoff, |asked| asked.max(backoff)),
                );
            }
            Outcome::NotDue { .. } => {}
        }
    }

    /// One-shot deployment after a batch: runs each distinct reload target of the
    /// renewed certificates once, then checks their `verify` targets. Returns one
    /// line per reload and per check, and whether all went well; results are
    /// recorded in the state like the daemon does.
    pub async fn deploy(&self, renewed: &[&CertificateConfig]) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut ok = true;
        for (target, certs) in crate::reload::coalesce(renewed) {
            let what = crate::reload::describe(&target);
            let result =
                crate::reload::run(&target, &crate::reload::Renewed::new(&self.store, &certs))
                    .await;
            match &result {
                Ok(()) => lines.push(format!("reload {what}: ok")),
                Err(e) => {
                    warn!(renewd_event = "reload-failed", "reload failed: {e}");
                    lines.push(format!("reload {what}: failed: {e}"));
                    ok = false;
                }
            }
            let mut state = self.state.lock().await;
            for cert in certs {
                state.entry(&cert.name).reload_error =
                    result.as_ref().err().map(ToString::to_string);
            }
        }
        for cert in renewed.iter().filter(|c| !c.verify.is_empty()) {
            let Ok(Some(lineage)) = self.store.lineage(&cert.name) else {
                continue;
            };
            let sni = crate::verify::sni_for(&cert.domains);
            let served =
                crate::verify::check_all(&cert.verify, &sni, &lineage.cert.der, VERIFY_PATIENCE)
                    .await;
            for s in &served {
                if s.matches {
                    lines.push(format!("{}: served at {}", cert.name, s.target));
                } else {
                    warn!(cert_name = %cert.name, renewd_event = "verify-failed", target = %s.target, "not served");
                    lines.push(format!(
                        "{}: verify-failed: {} does not serve it",
                        cert.name, s.target
                    ));
                    ok = false;
                }
            }
            let mut state = self.state.lock().await;
            let entry = state.entry(&cert.name);
            entry.served = served;
            entry.served_at = Some(OffsetDateTime::now_utc());
        }
        self.save_state().await;
        (lines, ok)
    }

    /// Writes `state.json` (callers batch this; see the daemon's scheduler).
    pub async fn save_state(&self) {
        if let Err(e) = State::save(&self.state, &self.store).await {
            warn!("cannot save state: {e}");
        }
    }
}
