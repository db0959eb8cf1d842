//! One certificate's renewal: key, order (falling back over solvers, then CAs),
//! publish. Used by one-shot `renewd renew` and by the daemon's scheduler alike.
//!
//! A renewal reads the config, the store and the CAs, and writes only a new
//! archive version (through the store). It neither decides whether a
//! certificate is due (the caller does, with [`crate::schedule`]), nor writes
//! the state ([`Renewer::record`] turns an outcome into the certificate's next
//! state, which the caller keeps), nor reloads or verifies ([`crate::deploy`]).

mod failure;
mod outcome;

use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{Instrument, info, warn};

pub use crate::failure::{Failure, Kind as FailureKind};
pub use outcome::{Attempt, Outcome};

/// What a renewal that failed with these errors records (for the fuzz targets).
#[cfg(fuzzing)]
pub(crate) use failure::failure;

use crate::acme::{self, Cas};
use crate::config::{CaConfig, CertificateConfig, Config};
use crate::metrics::Metrics;
use crate::schedule;
use crate::solver::Solvers;
use crate::store::{Issued, Lineage, Store};

/// One of the `daemon.max_concurrent` places for orders in flight, if the caller
/// holds one. It is given back as soon as the CA has delivered the certificate:
/// writing it to disk (several fsyncs) is not an order in flight, and holding the
/// place meanwhile kept the CA idle for a sixth of every renewal in a mass renewal.
pub type Slot = Option<tokio::sync::OwnedSemaphorePermit>;

/// What renewals of one config share: the config, the store, the solvers and
/// the CAs (with their accounts).
pub struct Renewer {
    /// The validated config.
    pub config: Arc<Config>,
    /// The state directory.
    pub store: Store,
    /// The configured CAs.
    pub cas: Cas,
    solvers: Solvers,
    metrics: Metrics,
    fleet: Option<Arc<dyn Fleet>>,
}

/// What a node of a fleet shares with the others ([`crate::cluster`]): what
/// its solvers present, and its ACME accounts.
pub trait Fleet: crate::solver::Fleet + acme::SharedAccounts {}

impl<T: crate::solver::Fleet + acme::SharedAccounts> Fleet for T {}

impl Renewer {
    /// Prepares renewals of `config`'s certificates into `store`, counting CA
    /// requests in `metrics`.
    #[must_use]
    pub fn new(config: Arc<Config>, store: Store, metrics: Metrics) -> Self {
        Self::after(None, config, store, metrics)
    }

    /// As [`Renewer::new`], for a config that replaces `previous`'s: solvers
    /// whose settings did not change are taken over, with what they present.
    #[must_use]
    pub fn after(
        previous: Option<&Self>,
        config: Arc<Config>,
        store: Store,
        metrics: Metrics,
    ) -> Self {
        let fleet = previous.and_then(|p| p.fleet.clone());
        Self::in_fleet(previous, config, store, metrics, fleet)
    }

    /// As [`Renewer::after`], for a node of a fleet: its http-01 and
    /// tls-alpn-01 solvers share what they present with `fleet`, and its
    /// accounts are the fleet's.
    #[must_use]
    pub fn in_fleet(
        previous: Option<&Self>,
        config: Arc<Config>,
        store: Store,
        metrics: Metrics,
        fleet: Option<Arc<dyn Fleet>>,
    ) -> Self {
        let challenges = fleet.clone().map(|f| f as Arc<dyn crate::solver::Fleet>);
        Self {
            solvers: Solvers::in_fleet(&config.solvers, previous.map(|p| &p.solvers), challenges),
            cas: Cas::new(config.cas.clone(), store.clone(), metrics.clone())
                .shared(fleet.clone().map(|f| f as Arc<dyn acme::SharedAccounts>)),
            metrics,
            config,
            store,
            fleet,
        }
    }

    /// Renews `cert` now, for `reason`. `fresh_key` forbids reusing the live
    /// key (a revoked certificate's key may be why it was revoked).
    pub async fn renew(
        &self,
        cert: &CertificateConfig,
        reason: &str,
        fresh_key: bool,
        mut slot: Slot,
    ) -> Outcome {
        let span = tracing::info_span!("certificate", cert_name = %cert.name);
        async {
            let now = OffsetDateTime::now_utc();
            let lineage = self.store.lineage(&cert.name).map_err(|e| e.to_string());
            let urgent = schedule::urgent(cert, &lineage, now);
            info!(reason, "renewing");
            let lineage = lineage.ok().flatten();
            let reuse = !fresh_key && urgent.is_none();
            self.issue(cert, lineage.as_ref(), reuse, &mut slot).await
        }
        .instrument(span)
        .await
    }

    async fn issue(
        &self,
        cert: &CertificateConfig,
        lineage: Option<&Lineage>,
        reuse_key: bool,
        slot: &mut Slot,
    ) -> Outcome {
        let key_pem = match self.key_for(cert, lineage, reuse_key).await {
            Ok(key) => key,
            Err(e) => return Outcome::Failed(failure::failure(&[e])),
        };
        let mut errors = Vec::new();
        let replaces = lineage.and_then(|l| l.cert.ari_id.as_deref());
        let mut cas = cert.ca.iter().peekable();
        while let Some(ca) = cas.next() {
            let delivered = self
                .obtain(&self.cas, ca, cert, replaces, &key_pem, &mut errors)
                .await;
            if let Some((fullchain, solver)) = delivered {
                slot.take();
                return self.publish(cert, ca, solver, fullchain, &key_pem).await;
            }
            if let Some(next) = cas.peek() {
                warn!(ca, next, "CA failed, trying the next one");
            }
        }
        Outcome::Failed(failure::failure(&errors))
    }

    /// Orders `cert` from CA `ca` (its account in `cas`), trying every solver;
    /// the chain and the solver that validated it, or `None` when all failed
    /// (errors appended).
    async fn obtain<'a>(
        &'a self,
        cas: &Cas,
        ca: &str,
        cert: &'a CertificateConfig,
        replaces: Option<&str>,
        key_pem: &str,
        errors: &mut Vec<acme::Error>,
    ) -> Option<(String, &'a str)> {
        let account = match cas.account(ca).await {
            Ok(account) => account,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let ca_config = cas.config(ca)?;
        let order = acme::Order {
            ca,
            domains: &cert.domains,
            profile: cert.profile.as_deref().or(ca_config.profile.as_deref()),
            replaces,
            key_pem,
        };
        for solver_name in cert.solvers.iter() {
            let Some(solver) = self.solvers.get(solver_name) else {
                continue;
            };
            match acme::issue(cas, &account, &order, &solver).await {
                Ok(delivered) => {
                    // What the order really carried, which may not be what was asked.
                    let replaces = delivered.replaces.as_deref().unwrap_or("-");
                    info!(ca, solver = solver_name, replaces, "certificate issued");
                    return Some((delivered.fullchain, solver_name));
                }
                Err(e) => {
                    warn!(ca, solver = solver_name, "issuance failed: {e}");
                    cas.forget_if_unreachable(ca, &e).await;
                    let next_solver_may_help = e.is_challenge_failure();
                    errors.push(e);
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
        let (issued, info) = match delivered(ca, fullchain, key_pem) {
            Ok(delivered) => delivered,
            Err(failure) => return Outcome::Failed(failure),
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
            Err(e) => Outcome::Failed(Failure::new(
                FailureKind::Store,
                format!("cannot store the new certificate: {e}"),
            )),
        }
    }

    /// Issues `cert` from the staging directory of each of its CAs in turn
    /// (`[ca.NAME] staging`), with a throw-away key, and checks what comes
    /// back — without touching `live/`, `archive/` or the state, and without
    /// reloading anything: what `renewd renew --dry-run` does after a config
    /// change. Returns what was issued, or why not.
    ///
    /// # Errors
    ///
    /// A [`Failure`] when no CA has a staging directory or every one failed.
    pub async fn dry_run(&self, cert: &CertificateConfig) -> Result<String, Failure> {
        let staging = self.staging_cas();
        let mut errors = Vec::new();
        let mut tried = false;
        let mut key = None;
        for ca in cert
            .ca
            .iter()
            .filter(|ca| staging.config(&staging_name(ca)).is_some())
        {
            tried = true;
            let key_pem = match &key {
                Some(key) => key,
                None => key.insert(
                    fresh_key(cert.key)
                        .await
                        .map_err(|e| failure::failure(&[e]))?,
                ),
            };
            let name = staging_name(ca);
            let delivered_by = self
                .obtain(&staging, &name, cert, None, key_pem, &mut errors)
                .await;
            if let Some((fullchain, solver)) = delivered_by {
                let (_, info) = delivered(&name, fullchain, key_pem)?;
                return Ok(format!(
                    "dry run ok: serial {}, valid until {} (CA {ca} staging, solver {solver}); nothing stored",
                    info.serial,
                    crate::status::rfc3339(info.not_after)
                ));
            }
        }
        if !tried {
            return Err(Failure::new(
                FailureKind::Refused,
                format!(
                    "no CA of this certificate has a staging directory ([ca.NAME] staging = \"URL\"; \
                     Let's Encrypt's is {LETS_ENCRYPT_STAGING})"
                ),
            ));
        }
        Err(failure::failure(&errors))
    }

    /// The CAs' staging directories as CAs of their own (`NAME.staging`), with
    /// accounts of their own.
    fn staging_cas(&self) -> Cas {
        let staging = self
            .config
            .cas
            .iter()
            .filter_map(|(name, ca)| {
                let directory = ca.staging.clone()?;
                Some((
                    staging_name(name),
                    CaConfig {
                        directory,
                        staging: None,
                        ..ca.clone()
                    },
                ))
            })
            .collect();
        Cas::new(staging, self.store.clone(), self.metrics.clone()).shared(
            self.fleet
                .clone()
                .map(|f| f as Arc<dyn acme::SharedAccounts>),
        )
    }

    /// The key for the new certificate: the live one when `reuse_key` allows
    /// (and the config asks for it), otherwise a fresh one of the configured type.
    async fn key_for(
        &self,
        cert: &CertificateConfig,
        lineage: Option<&Lineage>,
        reuse_key: bool,
    ) -> Result<String, acme::Error> {
        let reusable = cert.reuse_key
            && reuse_key
            && lineage.is_some_and(|l| l.key_matches && l.cert.key_type == Some(cert.key));
        if reusable {
            if let Ok(key) = self.store.live_key(&cert.name) {
                return Ok(key);
            }
        }
        fresh_key(cert.key).await
    }

    /// The configured solvers (a fleet's other nodes present through them).
    #[must_use]
    pub fn solvers(&self) -> &Solvers {
        &self.solvers
    }

    /// Removes challenge responses (TXT records, webroot files) that renewals
    /// abandoned when the daemon stopped left in place.
    pub async fn cleanup_abandoned(&self) {
        self.solvers.cleanup_abandoned().await;
    }

    /// The CA that issued the live certificate (`issued_by`, from the state),
    /// else the first configured one.
    #[must_use]
    pub fn issuer(&self, cert: &CertificateConfig, issued_by: Option<&str>) -> String {
        issued_by
            .filter(|ca| self.config.cas.contains_key(*ca))
            .or_else(|| cert.ca.first().map(String::as_str))
            .unwrap_or_default()
            .to_owned()
    }

    /// Records how the renewal of `cert` that started at `started` ended, at
    /// `now`, in its state `cs` ([`Outcome::record`], `random` in `[0, 1)`):
    /// counted in the metrics, a failure logged. A renewal that never started
    /// or was not due records nothing.
    pub fn record(
        &self,
        cert: &CertificateConfig,
        outcome: &Outcome,
        cs: &mut crate::state::CertState,
        (started, now): (OffsetDateTime, OffsetDateTime),
        random: f64,
    ) {
        if matches!(outcome, Outcome::NotDue { .. } | Outcome::Stopped) {
            return;
        }
        self.metrics.renewal(&cert.name, outcome.is_ok());
        if let Outcome::Failed(why) = outcome {
            warn!(cert_name = %cert.name, renewd_event = "failed", kind = %why.kind, "renewal failed: {why}");
        }
        let attempt = Attempt {
            started,
            now,
            check_interval: self.config.daemon.check_interval.0,
            told: self.retry_after(cert, started),
            random,
        };
        outcome.record(cs, &attempt);
    }

    /// The latest `Retry-After` any CA of `cert` sent since `since`.
    #[must_use]
    pub fn retry_after(
        &self,
        cert: &CertificateConfig,
        since: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        cert.ca
            .iter()
            .filter_map(|ca| self.cas.retry_after(ca, since))
            .max()
    }

    /// Revokes the live certificate of `cert` at `ca` (its issuer); returns its
    /// serial.
    ///
    /// # Errors
    ///
    /// [`acme::Error`] when there is no live certificate or the CA refuses.
    pub async fn revoke(
        &self,
        cert: &CertificateConfig,
        ca: &str,
        reason: Option<instant_acme::RevocationReason>,
    ) -> Result<String, acme::Error> {
        let lineage = self
            .store
            .lineage(&cert.name)
            .map_err(|e| acme::Error::Key(e.to_string()))?
            .ok_or_else(|| acme::Error::Key(format!("{}: no certificate to revoke", cert.name)))?;
        self.cas.revoke(ca, &lineage.cert.der, reason).await?;
        warn!(cert_name = %cert.name, renewd_event = "revoked", serial = %lineage.cert.serial, "certificate revoked");
        Ok(lineage.cert.serial)
    }
}

/// A new private key of `key_type` (PEM), made off the runtime's workers (RSA
/// takes a while).
async fn fresh_key(key_type: crate::config::KeyType) -> Result<String, acme::Error> {
    tokio::task::spawn_blocking(move || acme::generate_key(key_type))
        .await
        .map_err(|e| acme::Error::Key(e.to_string()))?
}

/// Let's Encrypt's staging directory, for the docs and messages.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The name of CA `ca`'s staging directory as a CA of its own (its account is
/// kept apart from the real one's).
fn staging_name(ca: &str) -> String {
    format!("{ca}.staging")
}

/// What the CA `ca` delivered, checked: a usable chain whose certificate is for
/// `key_pem`.
fn delivered(
    ca: &str,
    fullchain: String,
    key_pem: &str,
) -> Result<(Issued, crate::store::CertInfo), Failure> {
    let bad = |message: String| Failure::new(FailureKind::BadCertificate, message);
    let issued = Issued::from_fullchain(fullchain, key_pem.to_owned())
        .map_err(|e| bad(format!("CA {ca} returned an unusable chain: {e}")))?;
    match crate::store::CertInfo::from_pem(issued.cert_pem.as_bytes()) {
        Ok(info) if info.matches_key(key_pem) => Ok((issued, info)),
        Ok(_) => Err(bad(format!(
            "CA {ca} returned a certificate for another key"
        ))),
        Err(e) => Err(bad(format!(
            "CA {ca} returned an unreadable certificate: {e}"
        ))),
    }
}
