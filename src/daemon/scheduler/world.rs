//! Everything the scheduler does outside its own memory: orders, ARI polls,
//! reloads, served-certificate checks, reading the store, writing the state and
//! re-reading the config. The daemon's [`Daemon`] does it for real; the
//! simulator ([`crate::sim`]) does it against a simulated CA, disk and host, so
//! the scheduler's decisions run there unchanged.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};

use tracing::warn;

use crate::acme::{self, RenewalInfo};
use crate::cluster::Cluster;
use crate::config::{CertificateConfig, Config, Location, ReloadTarget};
use crate::daemon::View;
use crate::deploy::{self, Check};
use crate::metrics::Metrics;
use crate::reload;
use crate::renew::{Outcome, Renewer, Slot};
use crate::state::{CertState, Snapshot, State};
use crate::store::{self, Facts, Lineage};

/// A lineage as [`World::lineages`] read it, and its facts if read anew.
pub(crate) type Read = (Result<Option<Lineage>, String>, Option<Facts>);

/// Work done outside the scheduler, as a task of its own.
pub(crate) type Work<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What an ARI poll found.
#[derive(Debug)]
pub(crate) struct Polled {
    /// The live certificate the poll asked about, as it read it before
    /// asking: its serial and the middle of its lifetime (`None`: none could
    /// be read, and nothing was asked).
    pub(crate) live: Option<(String, OffsetDateTime)>,
    /// The CA's answer (`Unsupported` when the live certificate names no ARI
    /// identifier).
    pub(crate) answer: Result<RenewalInfo, acme::Error>,
    /// Whether the CA's CRL lists the serial (`None`: not known).
    pub(crate) on_crl: Option<bool>,
}

impl Polled {
    /// Nothing was asked: there is no live certificate to ask about.
    pub(crate) fn nothing_live() -> Self {
        Self {
            live: None,
            answer: Ok(RenewalInfo::Unsupported),
            on_crl: None,
        }
    }
}

/// The scheduler's outside world.
pub(crate) trait World: Send + Sync + 'static {
    /// The config the scheduler runs.
    fn config(&self) -> &Arc<Config>;

    /// What `live/<name>` holds.
    fn lineage(&self, name: &str) -> Result<Option<Lineage>, String>;

    /// [`World::lineage`] of each of `names`, in order, taken from the facts
    /// `known` of each while they hold; with the facts read anew where they
    /// did not (the daemon reads them in parallel).
    fn lineages(&self, names: &[Arc<str>], _known: &[Option<Facts>]) -> Vec<Read> {
        names
            .iter()
            .map(|name| (self.lineage(name), None))
            .collect()
    }

    /// Renews `cert` (order, publish), holding `slot` while the order is in
    /// flight; `fresh_key` forbids reusing the live key.
    fn renew(
        &self,
        cert: CertificateConfig,
        reason: String,
        fresh_key: bool,
        slot: Slot,
    ) -> Work<Outcome>;

    /// Records `outcome` of the renewal of `cert` started and ended at `times`
    /// in its state ([`Outcome::record`]).
    fn record(
        &self,
        cert: &CertificateConfig,
        outcome: &Outcome,
        cs: &mut CertState,
        times: (OffsetDateTime, OffsetDateTime),
        random: f64,
    );

    /// Asks CA `ca` for the renewal window of certificate `name`'s live
    /// certificate (read first: it names the ARI identifier, and the
    /// scheduler keeps no copy of it), and looks at its CRL.
    fn poll(&self, name: String, ca: String) -> Work<Polled>;

    /// The CA that issued `cert`'s live certificate (`issued_by`), else its first.
    fn issuer(&self, cert: &CertificateConfig, issued_by: Option<&str>) -> String;

    /// Runs reload `target` once for the certificates `names`.
    fn reload(&self, target: ReloadTarget, names: Vec<String>) -> Work<Result<(), reload::Error>>;

    /// Checks that `cert`'s `verify` targets serve its live certificate.
    fn check(&self, cert: CertificateConfig, patience: Duration) -> Work<Option<Check>>;

    /// Writes `state.json`.
    fn save(&self, snapshot: Snapshot) -> Work<Result<(), store::Error>>;

    /// Re-reads the config: the world that runs the new one, or why not.
    fn reconfigure(&self, state: &Arc<Mutex<State>>) -> Result<Arc<dyn World>, String>;

    /// Removes challenge responses that renewals abandoned at shutdown left.
    fn cleanup_abandoned(&self) -> Work<()>;

    /// Whether this node may order and poll ARI for `name` now: always on a
    /// single host; in a fleet, when it holds `name`'s lease (or etcd is gone
    /// and the certificate has less than a tenth of its lifetime left).
    fn holds(&self, _name: &str) -> bool {
        true
    }

    /// Asks the fleet to renew `names` once each: whether etcd took the
    /// request; `None` on a single host, where the scheduler forces them
    /// itself.
    fn fleet_force(&self, _names: &[String]) -> Work<Option<Result<(), String>>> {
        Box::pin(async { None })
    }
}

/// The real world: a [`Renewer`] over the real store and CAs, the config file,
/// and the [`View`] the control socket and `/metrics` read.
pub(crate) struct Daemon {
    renewer: Arc<Renewer>,
    location: Location,
    metrics: Metrics,
    view: watch::Sender<View>,
    /// The fleet this node belongs to, in fleet mode.
    cluster: Option<Arc<Cluster>>,
}

impl Daemon {
    pub(crate) fn new(
        renewer: Arc<Renewer>,
        location: Location,
        metrics: Metrics,
        view: watch::Sender<View>,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        Self {
            renewer,
            location,
            metrics,
            view,
            cluster,
        }
    }

    /// With etcd out of reach, a certificate with less than a tenth of its
    /// lifetime left is renewed by whichever node gets to it rather than left
    /// to expire.
    /// A certificate this node has not got at all is no exception: the fleet
    /// may well have it.
    fn nearly_expired(&self, name: &str) -> bool {
        let Ok(Some(lineage)) = self.renewer.store.lineage(name) else {
            return false;
        };
        let left = lineage.cert.not_after - OffsetDateTime::now_utc();
        left < lineage.cert.lifetime() / 10
    }
}

/// Renews in a fleet: the lease is not handed over meanwhile, and a version
/// obtained goes to etcd for the other nodes.
async fn renew_in_fleet(
    renewer: Arc<Renewer>,
    cluster: Arc<Cluster>,
    request: (CertificateConfig, String, bool, Slot),
) -> Outcome {
    let (cert, reason, fresh_key, slot) = request;
    let batch = cluster.busy(&cert.name, true);
    let outcome = renewer.renew(&cert, &reason, fresh_key, slot).await;
    if let Outcome::Renewed { ca, .. } = &outcome {
        // Retried briefly: etcd may be electing a leader.
        for attempt in 1..=5u32 {
            match cluster.share(&cert.name, ca, batch).await {
                Ok(()) => break,
                Err(e) if attempt == 5 => {
                    warn!(cert_name = %cert.name, "cannot share the new version with the fleet: {e}");
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await,
            }
        }
    }
    cluster.busy(&cert.name, false);
    outcome
}

impl World for Daemon {
    fn config(&self) -> &Arc<Config> {
        &self.renewer.config
    }

    fn lineage(&self, name: &str) -> Result<Option<Lineage>, String> {
        self.renewer.store.lineage(name).map_err(|e| e.to_string())
    }

    fn lineages(&self, names: &[Arc<str>], known: &[Option<Facts>]) -> Vec<Read> {
        let items: Vec<(&Arc<str>, Option<&Facts>)> = names
            .iter()
            .zip(
                known
                    .iter()
                    .map(Option::as_ref)
                    .chain(std::iter::repeat(None)),
            )
            .collect();
        crate::parallel::map(&items, |(name, known)| {
            let (lineage, fresh) = self.renewer.store.lineage_known(name, *known);
            (lineage.map_err(|e| e.to_string()), fresh)
        })
    }

    fn renew(
        &self,
        cert: CertificateConfig,
        reason: String,
        fresh_key: bool,
        slot: Slot,
    ) -> Work<Outcome> {
        let renewer = Arc::clone(&self.renewer);
        match &self.cluster {
            Some(cluster) => Box::pin(renew_in_fleet(
                renewer,
                Arc::clone(cluster),
                (cert, reason, fresh_key, slot),
            )),
            None => Box::pin(async move { renewer.renew(&cert, &reason, fresh_key, slot).await }),
        }
    }

    fn record(
        &self,
        cert: &CertificateConfig,
        outcome: &Outcome,
        cs: &mut CertState,
        times: (OffsetDateTime, OffsetDateTime),
        random: f64,
    ) {
        self.renewer.record(cert, outcome, cs, times, random);
    }

    fn poll(&self, name: String, ca: String) -> Work<Polled> {
        let renewer = Arc::clone(&self.renewer);
        Box::pin(async move {
            // One read of the live certificate names what to ask about and
            // serves the CRL look and the revocation heuristic.
            let Some(l) = renewer.store.lineage(&name).ok().flatten() else {
                return Polled::nothing_live();
            };
            let live = Some((
                l.cert.serial.clone(),
                l.cert.not_before + l.cert.lifetime() / 2,
            ));
            let Some(ari_id) = l.cert.ari_id.as_deref() else {
                return Polled {
                    live,
                    ..Polled::nothing_live()
                };
            };
            Polled {
                answer: renewer.cas.renewal_info(&ca, ari_id).await,
                on_crl: renewer.cas.crl_revoked(&name, &l).await,
                live,
            }
        })
    }

    fn issuer(&self, cert: &CertificateConfig, issued_by: Option<&str>) -> String {
        self.renewer.issuer(cert, issued_by)
    }

    fn reload(&self, target: ReloadTarget, names: Vec<String>) -> Work<Result<(), reload::Error>> {
        let renewer = Arc::clone(&self.renewer);
        Box::pin(async move {
            let certs: Vec<&CertificateConfig> = names
                .iter()
                .filter_map(|n| renewer.config.certificate(n))
                .collect();
            deploy::reload(&target, &renewer.store, &certs).await
        })
    }

    fn check(&self, cert: CertificateConfig, patience: Duration) -> Work<Option<Check>> {
        let renewer = Arc::clone(&self.renewer);
        Box::pin(async move { deploy::check(&cert, &renewer.store, patience).await })
    }

    fn save(&self, snapshot: Snapshot) -> Work<Result<(), store::Error>> {
        let store = self.renewer.store.clone();
        Box::pin(async move { snapshot.write(&store).await })
    }

    fn reconfigure(&self, state: &Arc<Mutex<State>>) -> Result<Arc<dyn World>, String> {
        let config = Arc::new(Config::load(&self.location).map_err(|e| e.to_string())?);
        if config.cluster != self.renewer.config.cluster {
            warn!("[cluster] changes take effect at the next restart");
        }
        let renewer = Arc::new(Renewer::after(
            Some(&self.renewer),
            config,
            self.renewer.store.clone(),
            self.metrics.clone(),
        ));
        if let Some(cluster) = &self.cluster {
            cluster.reconfigure(&renewer.config, renewer.solvers());
        }
        let _ = self
            .view
            .send(View::new(&renewer, state, self.cluster.clone()));
        Ok(Arc::new(Self {
            renewer,
            location: self.location.clone(),
            metrics: self.metrics.clone(),
            view: self.view.clone(),
            cluster: self.cluster.clone(),
        }))
    }

    fn cleanup_abandoned(&self) -> Work<()> {
        let renewer = Arc::clone(&self.renewer);
        Box::pin(async move { renewer.cleanup_abandoned().await })
    }

    fn holds(&self, name: &str) -> bool {
        self.cluster.as_ref().is_none_or(|cluster| {
            cluster.holds(name) || (!cluster.connected() && self.nearly_expired(name))
        })
    }

    fn fleet_force(&self, names: &[String]) -> Work<Option<Result<(), String>>> {
        let Some(cluster) = self.cluster.clone() else {
            return Box::pin(async { None });
        };
        let names = names.to_vec();
        // In the background: etcd may take a while to answer (a member just
        // went down), and the scheduler must not wait for it.
        tokio::spawn(async move { cluster.request_force(&names).await });
        Box::pin(async { Some(Ok(())) })
    }
}
