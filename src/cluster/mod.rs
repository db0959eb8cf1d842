//! Fleet mode (`[cluster]`, `docs/reference/cluster.md`): several renewd nodes
//! with the same certificates, coordinated through etcd — no consensus of
//! renewd's own, only etcd leases and transactions.
//!
//! What lives where in etcd, under `prefix`:
//!
//! ```text
//! nodes/<node>             {"lease":..}          with the node's lease: who is alive
//! holders/<name>           <node>                with the holder's lease: who renews <name>
//! certs/<name>             Shared (JSON)         the newest version: chain, sealed key, batch
//! force                    {"id":..}             the latest fleet-wide mass renewal
//! challenges/<token>       ChallengeRecord       an http-01 / tls-alpn-01 response presented
//! acks/<token>/<node>      ""                    <node> answers that response too
//! deployed/<name>/<node>   Deployed (JSON)       what <node> has live, and verified
//! accounts/<ca>            account.json, sealed  the fleet's ACME account at <ca>
//! sched/<name>             Schedule (JSON)       the holder's scheduling state of <name>
//! ```
//!
//! Each node keeps one etcd lease alive (`session`). For every certificate,
//! the node that ranks first for it among the live nodes (rendezvous hashing)
//! takes `holders/<name>` in a transaction that succeeds only if the key does
//! not exist (`leases`); only the holder polls ARI and orders. A node that dies
//! loses its lease after `lease_ttl`, its keys vanish, and the next node in
//! rank takes over. A node that renewed writes the version to `certs/<name>`
//! (its private key sealed, `seal`); every node watches `certs/` and
//! publishes each new version into its own store, then deploys it
//! (`share`). Challenges are shared the same way (`challenges`).
//!
//! The scheduler sees none of this: it asks [`Cluster::holds`] before ordering
//! or polling, and receives [`crate::daemon::Event`]s (`Replan`,
//! `FleetForce`, `Published`). This module owns no per-certificate decision.

mod accounts;
mod challenges;
mod force;
mod leases;
mod report;
mod schedule;
mod seal;
mod session;
mod share;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterConfig, Config};
use crate::daemon::Event;
use crate::solver::Solvers;
use crate::state::State;
use crate::store::Store;

pub use report::FleetStatus;
pub(crate) use seal::Sealer;

/// What went wrong talking to etcd or handling what it holds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An etcd request failed (unreachable, no quorum, refused).
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// Not connected to etcd right now.
    #[error("etcd: not connected")]
    NotConnected,
    /// The node's lease ended (etcd did not hear from it within `lease_ttl`).
    #[error("etcd: this node's lease expired")]
    LeaseExpired,
    /// `secret_key_file` cannot be used.
    #[error("cluster.secret_key_file {0}")]
    SecretKey(String),
    /// A private key could not be sealed or opened.
    #[error("{0}")]
    Seal(String),
    /// A file `[cluster]` names cannot be read.
    #[error("cluster: {0}")]
    File(String),
    /// What etcd holds is not what renewd writes there.
    #[error("etcd key {key}: {why}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The local store could not take a version.
    #[error("{0}")]
    Store(#[from] crate::store::Error),
}

/// A node's handle on its fleet: cheap to share, used by the daemon's world,
/// the solvers and the background tasks.
pub struct Cluster {
    config: ClusterConfig,
    sealer: Sealer,
    store: Store,
    /// The scheduler's state, which a node adopts the fleet's scheduling
    /// state into (`schedule`).
    state: Arc<tokio::sync::Mutex<State>>,
    events: mpsc::Sender<Event>,
    /// Connected client; `None` until the first connection and after a
    /// failed session.
    client: Mutex<Option<etcd_client::Client>>,
    /// Which endpoint the next connection tries first.
    endpoint: std::sync::atomic::AtomicUsize,
    /// This node's lease (0: none yet).
    lease: AtomicI64,
    /// When etcd last confirmed the lease: the node holds nothing once this
    /// is older than two thirds of `lease_ttl`.
    confirmed: Mutex<Option<Instant>>,
    /// Certificates whose lease this node holds.
    held: Mutex<HashSet<String>>,
    /// Certificates with an order of this node in flight (never handed over).
    busy: Mutex<HashSet<String>>,
    /// The configured certificates, in config order.
    names: Mutex<Vec<String>>,
    /// The live nodes, as last read.
    nodes: Mutex<Vec<String>>,
    /// The newest fleet-wide mass renewal seen, and what it covers (empty:
    /// everything).
    force_id: AtomicU64,
    force_names: Mutex<Vec<String>>,
    /// The node's solvers, which present what other nodes share.
    solvers: Mutex<Solvers>,
    /// Whether every version in etcd was published here once.
    synced: AtomicBool,
    /// The last connection state reported to the scheduler.
    was_connected: AtomicBool,
    /// What this node last reported as deployed, under which lease.
    reported: Mutex<(
        i64,
        std::collections::HashMap<String, crate::status::Deployed>,
    )>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.config.node)
            .finish_non_exhaustive()
    }
}

/// Puts written in one transaction (etcd's default limit of operations in
/// one is 128).
const PUTS_PER_TXN: usize = 64;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cluster {
    /// A node of the fleet `config` describes, publishing into `store`,
    /// sharing the scheduling state in `state` and telling the scheduler
    /// through `events`. Nothing is contacted yet.
    ///
    /// # Errors
    ///
    /// [`Error::SecretKey`] when the key file cannot be used.
    pub fn new(
        config: &Config,
        cluster: &ClusterConfig,
        (store, state): (Store, Arc<tokio::sync::Mutex<State>>),
        events: mpsc::Sender<Event>,
    ) -> Result<Arc<Self>, Error> {
        Ok(Arc::new(Self {
            sealer: Sealer::load(&cluster.secret_key_file)?,
            config: cluster.clone(),
            store,
            state,
            events,
            client: Mutex::new(None),
            endpoint: std::sync::atomic::AtomicUsize::new(0),
            lease: AtomicI64::new(0),
            confirmed: Mutex::new(None),
            held: Mutex::default(),
            busy: Mutex::default(),
            names: Mutex::new(config.names()),
            nodes: Mutex::default(),
            force_id: AtomicU64::new(0),
            force_names: Mutex::default(),
            solvers: Mutex::default(),
            synced: AtomicBool::new(false),
            was_connected: AtomicBool::new(false),
            reported: Mutex::default(),
        }))
    }

    /// Starts the background tasks: the lease, the balance of certificate
    /// leases, the watchers of versions, mass renewals, revocations,
    /// challenges and failures, the sharing of scheduling state. They
    /// reconnect by themselves and end with `cancel`.
    pub fn spawn(self: &Arc<Self>, cancel: &CancellationToken) {
        tokio::spawn(Arc::clone(self).session(cancel.clone()));
        tokio::spawn(Arc::clone(self).balance(cancel.clone()));
        tokio::spawn(Arc::clone(self).watch_certs(cancel.clone()));
        tokio::spawn(Arc::clone(self).watch_force(cancel.clone()));
        tokio::spawn(Arc::clone(self).watch_revocations(cancel.clone()));
        tokio::spawn(Arc::clone(self).watch_challenges(cancel.clone()));
        tokio::spawn(Arc::clone(self).share_schedules(cancel.clone()));
        tokio::spawn(Arc::clone(self).watch_failures(cancel.clone()));
    }

    /// The config changed: these are the certificates and solvers now.
    pub fn reconfigure(&self, config: &Config, solvers: &Solvers) {
        *lock(&self.names) = config.names();
        *lock(&self.solvers) = solvers.clone();
        let solvers = solvers.clone();
        tokio::spawn(async move { solvers.listen_for_fleet().await });
    }

    /// This node's name.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// Whether this node is connected to etcd with a live lease.
    #[must_use]
    pub fn connected(&self) -> bool {
        let limit = self.config.lease_ttl.0.mul_f64(2.0 / 3.0);
        lock(&self.confirmed).is_some_and(|at| at.elapsed() < limit)
    }

    /// Whether this node holds the lease for `name` now: only then may it
    /// order or poll ARI for it.
    #[must_use]
    pub fn holds(&self, name: &str) -> bool {
        self.connected() && lock(&self.held).contains(name)
    }

    /// How many certificate leases this node holds.
    #[must_use]
    pub fn leases_held(&self) -> usize {
        if self.connected() {
            lock(&self.held).len()
        } else {
            0
        }
    }

    /// An order for `name` starts (`true`) or ended (`false`): its lease is
    /// not handed over meanwhile. Returns the mass renewal in force when it
    /// started, which the version it yields satisfies.
    pub fn busy(&self, name: &str, busy: bool) -> u64 {
        if busy {
            lock(&self.busy).insert(name.to_owned());
        } else {
            lock(&self.busy).remove(name);
        }
        self.force_id.load(Ordering::SeqCst)
    }

    fn is_busy(&self, name: &str) -> bool {
        lock(&self.busy).contains(name)
    }

    fn names(&self) -> Vec<String> {
        lock(&self.names).clone()
    }

    fn client(&self) -> Result<etcd_client::Client, Error> {
        lock(&self.client).clone().ok_or(Error::NotConnected)
    }

    /// What `key` holds now (with `prefix`: every key under it), and a watch
    /// of every change after that read, so that nothing between the two is
    /// missed.
    async fn read_then_watch(
        &self,
        key: &str,
        prefix: bool,
    ) -> Result<(Vec<etcd_client::KeyValue>, etcd_client::WatchStream), Error> {
        let mut client = self.client()?;
        let get = prefix.then(|| etcd_client::GetOptions::new().with_prefix());
        let mut response = client.get(key, get).await?;
        let revision = response
            .header()
            .map_or(0, etcd_client::ResponseHeader::revision);
        let mut watch = etcd_client::WatchOptions::new().with_start_revision(revision + 1);
        if prefix {
            watch = watch.with_prefix();
        }
        let stream = client.watch(key, Some(watch)).await?;
        Ok((response.take_kvs(), stream))
    }

    fn lease(&self) -> i64 {
        self.lease.load(Ordering::SeqCst)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.config.prefix)
    }

    /// How often the tasks look again: a third of the lease, at most 2 s.
    fn tick(&self) -> Duration {
        (self.config.lease_ttl.0 / 3).min(Duration::from_secs(2))
    }

    /// Follows a watch of etcd (`follow`) until `cancel`: a watch ends with
    /// its connection and is started again a tick later.
    async fn keep_following<F, Fut>(&self, cancel: &CancellationToken, what: &str, follow: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                result = follow() => if let Err(e) = result {
                    tracing::debug!("watching {what}: {e}");
                },
            }
            if !pause(cancel, self.tick()).await {
                return;
            }
        }
    }

    /// Tells the scheduler; a scheduler gone (stopping) is no error.
    async fn tell(&self, event: Event) {
        let _ = self.events.send(event).await;
    }
}

/// Waits `delay`, or less when `cancel` fires; whether to go on.
async fn pause(cancel: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}
