//! `renewd run`: the resident daemon.
//!
//! Wiring only: load the config, open the store, bind the control socket, install
//! signal handlers, tell systemd we are ready, then hand over to the
//! `scheduler`, which owns every per-certificate decision. All outside stimuli
//! — signals, control-socket commands — arrive as [`Event`]s on one channel.
//! The control socket (`control.rs`) and the metrics endpoint (`scrape.rs`)
//! read the running config and state through a `View`, swapped on config
//! reload.

mod control;
pub(crate) mod scheduler;
mod scrape;
mod signals;

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::{Config, Location};
use crate::control::proto::RenewEvent;
use crate::metrics::Metrics;
use crate::renew::Renewer;
use crate::state::State;
use crate::status::{self, CertStatus};
use crate::store::{self, Store};

/// Something the daemon must react to.
#[derive(Debug)]
pub enum Event {
    /// SIGTERM / SIGINT: stop gracefully.
    Shutdown,
    /// SIGHUP or `reload-config`: re-read the config; the sender, if any, gets
    /// the outcome.
    Reload(Option<oneshot::Sender<Result<(), String>>>),
    /// SIGUSR1: force-renew every certificate.
    RenewAll,
    /// The CA accepted the revocation of `name`'s live certificate `serial`
    /// (a control-socket `revoke`): replace it at once, with a new key.
    Revoked {
        /// The certificate.
        name: String,
        /// The serial revoked.
        serial: String,
    },
    /// Fleet mode: this node took the leases of `names`, or its connection
    /// to etcd changed: plan them anew.
    Replan(Vec<String>),
    /// Fleet mode: a fleet-wide mass renewal covers `names`, whose leases this
    /// node holds and which it has not renewed yet.
    FleetForce(Vec<String>),
    /// Fleet mode: another node's new version of `name` was published here;
    /// deploy it.
    Published {
        /// The certificate.
        name: String,
        /// The new serial.
        serial: String,
        /// The CA that issued it.
        ca: Option<String>,
    },
    /// Fleet mode: the holder of `name` failed to renew it, in an attempt
    /// started `at` (its scheduling state in etcd says so).
    FleetFailed {
        /// The certificate.
        name: String,
        /// When the attempt started.
        at: time::OffsetDateTime,
        /// Why it failed, as the holder recorded it.
        detail: String,
    },
    /// A control-socket `renew`: `names` empty means all. The reply lists each
    /// certificate with a channel that yields its outcome.
    Renew {
        /// Certificates to renew; empty for all.
        names: Vec<String>,
        /// Renew even if not due.
        force: bool,
        /// Where to send the per-certificate channels.
        reply: oneshot::Sender<Result<Vec<Pending>, String>>,
    },
}

/// A certificate a `renew` request covers, and where its outcome will arrive.
pub type Pending = (String, oneshot::Receiver<RenewEvent>);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is invalid (exit 2).
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// The state directory cannot be used.
    #[error("state directory: {0}")]
    Store(#[from] store::Error),
    /// The control socket cannot be bound.
    #[error("control socket: {0}")]
    Control(#[from] control::Error),
    /// The metrics listener cannot be bound.
    #[error("metrics_listen {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
    /// Signal handlers cannot be installed.
    #[error("signals: {0}")]
    Signals(std::io::Error),
    /// Fleet mode cannot start (its key file).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
}

impl Error {
    /// Whether the config is at fault (exit 2: restarting will not help).
    #[must_use]
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::Control(control::Error::NoGroup(_))
        )
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
///
/// # Errors
///
/// [`Error`] when startup fails; after startup, failures are per certificate
/// and logged, never fatal.
pub async fn run(location: &Location) -> Result<(), Error> {
    let config = Arc::new(Config::load(location)?);
    let store = Store::open(&config.daemon.state_dir)?;
    // Held for the daemon's lifetime: no one-shot `renew` may write meanwhile.
    let _lock = store.lock()?;
    let server = control::Server::bind(
        &config.daemon.control_socket,
        config.daemon.control_group.as_deref(),
    )
    .await?;
    let (events_tx, events_rx) = mpsc::channel(64);
    signals::spawn(events_tx.clone()).map_err(Error::Signals)?;

    let metrics = Metrics::new();
    let state = Arc::new(Mutex::new(State::load(&store, &config)));
    let cluster = match &config.cluster {
        Some(c) => Some(Cluster::new(
            &config,
            c,
            (store.clone(), Arc::clone(&state)),
            events_tx.clone(),
        )?),
        None => None,
    };
    let fleet = cluster.clone().map(|c| c as Arc<dyn crate::renew::Fleet>);
    let renewer = Arc::new(Renewer::in_fleet(
        None,
        Arc::clone(&config),
        store,
        metrics.clone(),
        fleet,
    ));
    let (view_tx, view_rx) = watch::channel(View::new(&renewer, &state, cluster.clone()));
    let cancel = CancellationToken::new();
    if let Some(cluster) = &cluster {
        cluster.reconfigure(&config, renewer.solvers());
        cluster.spawn(&cancel);
    }
    if let Some(addr) = config.daemon.metrics_listen {
        scrape::serve(addr, metrics.clone(), view_rx.clone(), cancel.clone())
            .await
            .map_err(|e| Error::Metrics(addr, e))?;
    }
    if let Some(cluster) = &cluster {
        tokio::spawn(report_deployments(
            Arc::clone(cluster),
            view_rx.clone(),
            cancel.clone(),
        ));
    }
    let control = tokio::spawn(server.serve(events_tx, view_rx, cancel.clone()));
    // A thread of its own that ends right away: a blocking-pool thread would
    // linger and wake up 10 s later just to exit.
    let _ = std::thread::Builder::new()
        .name("prime-rng".to_owned())
        .spawn(crate::acme::prime_key_generator);

    let world = scheduler::Daemon::new(renewer, location.clone(), metrics, view_tx, cluster);
    let scheduler = scheduler::Scheduler::new(Arc::new(world), state);
    scheduler.run(events_rx).await;

    cancel.cancel();
    let _ = control.await;
    Ok(())
}

/// Fleet mode: reports what this node has deployed (and verified) every
/// [`REPORT_INTERVAL`], for any node's `status`.
async fn report_deployments(
    cluster: Arc<Cluster>,
    view: watch::Receiver<View>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(REPORT_INTERVAL) => {}
        }
        let view = view.borrow().clone();
        cluster.report(&view.statuses(&[]).await).await;
    }
}

/// How often a node of a fleet reports its deployments.
const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// What the control socket and metrics scrapes work with: the running config's
/// [`Renewer`] (config, store, CAs) and the state (locked only to copy it).
#[derive(Clone)]
pub(crate) struct View {
    renewer: Arc<Renewer>,
    state: Arc<Mutex<State>>,
    cluster: Option<Arc<Cluster>>,
}

impl View {
    fn new(
        renewer: &Arc<Renewer>,
        state: &Arc<Mutex<State>>,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        Self {
            renewer: Arc::clone(renewer),
            state: Arc::clone(state),
            cluster,
        }
    }

    /// The status of every certificate, or of those in `names`, as `renewd
    /// status` shows it ([`View::each_status_chunk`], gathered).
    async fn statuses(&self, names: &[String]) -> Vec<CertStatus> {
        let all = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gather = Arc::clone(&all);
        self.each_status_chunk(names, move |chunk| {
            lock(&gather).extend(chunk);
            true
        })
        .await;
        std::mem::take(&mut *lock(&all))
    }

    /// Hands the statuses of every certificate, or of those in `names`, to
    /// `sink` a chunk at a time, in config order, until it returns `false`.
    /// Reading the certificates is file I/O: it runs on the blocking pool, and
    /// the state is locked only to copy what a chunk needs, so neither the
    /// runtime's workers nor the scheduler wait for it, and memory holds a
    /// chunk rather than every certificate twice (with 100,000 a whole copy
    /// of the state and a 40 MB reply).
    async fn each_status_chunk<F>(&self, names: &[String], mut sink: F)
    where
        F: FnMut(Vec<CertStatus>) -> bool + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let renewer = Arc::clone(&self.renewer);
        let names = names.to_vec();
        let _ = tokio::task::spawn_blocking(move || {
            let (config, store) = (&renewer.config, &renewer.store);
            let now = OffsetDateTime::now_utc();
            let certs = status::selected(config, &names);
            for chunk in certs.chunks(STATUS_CHUNK) {
                let names: Vec<String> = chunk.iter().map(|c| c.name.to_string()).collect();
                let state = state.blocking_lock().only(&names);
                if !sink(status::of(config, store, chunk, &state, now)) {
                    return;
                }
            }
        })
        .await;
    }
}

/// Certificates whose statuses are collected at a time.
const STATUS_CHUNK: usize = 2048;

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
