//! Fleet-wide mass renewals: SIGUSR1 or `renew --force` on any node writes
//! `force` (a new id, and the certificates it covers); every node watches it
//! and forces those it holds. A version records the id in force when its
//! order started (`Shared::batch`), so a node that takes a lease over later —
//! its holder died mid-way — forces exactly what the batch has not renewed
//! yet: each certificate once, plus at most the order the dead holder had in
//! flight.
//!
//! Revocations the same way: a node that revoked a certificate at the CA
//! (`revoke`) writes `revoked/<name>` (the serial), and every node treats it
//! as revoked — its holder replaces it at once, with a new key.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use etcd_client::EventType;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::share::Shared;
use super::{Cluster, Error, lock};
use crate::daemon::Event;

/// How long a mass renewal request keeps trying to reach etcd.
const FORCE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The value of `force`.
#[derive(Debug, Serialize, Deserialize)]
struct Force {
    /// Larger than every earlier one (nanoseconds since the epoch).
    id: u64,
    /// The certificates covered; empty for all.
    #[serde(default)]
    names: Vec<String>,
    /// The node that asked.
    node: String,
}

impl Cluster {
    /// Asks the whole fleet to renew `names` (empty: all) once, trying for
    /// up to `FORCE_PATIENCE` (30 s) while etcd does not answer (logged then).
    pub async fn request_force(&self, names: &[String]) {
        let deadline = tokio::time::Instant::now() + FORCE_PATIENCE;
        loop {
            match self.try_force(names).await {
                Ok(()) => return,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    error!(
                        renewd_event = "fleet-renew-all-failed",
                        "cannot ask the fleet to renew: {e}; nothing was forced (try again once etcd answers)"
                    );
                    // Answers the `renew --force` requests waiting for it.
                    let names = if names.is_empty() {
                        self.names()
                    } else {
                        names.to_vec()
                    };
                    for name in names {
                        self.tell(Event::FleetFailed {
                            name,
                            at: time::OffsetDateTime::now_utc(),
                            detail: format!("cannot ask the fleet to renew: {e}"),
                        })
                        .await;
                    }
                    return;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            }
        }
    }

    async fn try_force(&self, names: &[String]) -> Result<(), Error> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let id = u64::try_from(now)
            .unwrap_or_default()
            .max(self.force_id.load(Ordering::SeqCst) + 1);
        let force = Force {
            id,
            names: names.to_vec(),
            node: self.config.node.clone(),
        };
        let value = serde_json::to_string(&force).unwrap_or_default();
        self.client()?.put(self.key("force"), value, None).await?;
        info!(
            renewd_event = "fleet-renew-all",
            id,
            certificates = names.len(),
            "fleet-wide mass renewal requested"
        );
        Ok(())
    }

    pub(super) async fn watch_force(self: Arc<Self>, cancel: CancellationToken) {
        self.keep_following(&cancel, "force", || self.follow_force())
            .await;
    }

    pub(super) async fn watch_revocations(self: Arc<Self>, cancel: CancellationToken) {
        self.keep_following(&cancel, "revocations", || self.follow_revocations())
            .await;
    }

    /// Tells the fleet that this node revoked `name`'s certificate `serial`
    /// at the CA.
    ///
    /// # Errors
    ///
    /// [`Error`] when etcd does not take it.
    pub async fn announce_revoked(&self, name: &str, serial: &str) -> Result<(), Error> {
        let key = self.key(&format!("revoked/{name}"));
        self.client()?.put(key, serial, None).await?;
        Ok(())
    }

    /// Passes every revocation announced from now on to the scheduler (one
    /// announced earlier was acted on, or the CA's ARI answer shows it).
    async fn follow_revocations(&self) -> Result<(), Error> {
        let prefix = self.key("revoked/");
        let (_, mut stream) = self.read_then_watch(&prefix, true).await?;
        while let Some(message) = stream.message().await? {
            for event in message.events() {
                let Some(kv) = event.kv().filter(|_| event.event_type() == EventType::Put) else {
                    continue;
                };
                let (Some(name), Ok(serial)) = (
                    kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix)),
                    kv.value_str(),
                ) else {
                    continue;
                };
                info!(cert_name = %name, serial, "the fleet revoked a certificate");
                self.tell(Event::Revoked {
                    name: name.to_owned(),
                    serial: serial.to_owned(),
                })
                .await;
            }
        }
        Err(Error::NotConnected)
    }

    async fn follow_force(&self) -> Result<(), Error> {
        let key = self.key("force");
        let (now, mut stream) = self.read_then_watch(&key, false).await?;
        if let Some(kv) = now.first() {
            self.forced(kv.value()).await;
        }
        while let Some(message) = stream.message().await? {
            for event in message.events() {
                if let (EventType::Put, Some(kv)) = (event.event_type(), event.kv()) {
                    self.forced(kv.value()).await;
                }
            }
        }
        Err(Error::NotConnected)
    }

    /// A mass renewal was asked for: force what this node holds of it.
    async fn forced(&self, value: &[u8]) {
        let Ok(force) = serde_json::from_slice::<Force>(value) else {
            return;
        };
        let known = self.force_id.fetch_max(force.id, Ordering::SeqCst);
        if known >= force.id {
            return; // Seen (a reconnect reads it again).
        }
        lock(&self.force_names).clone_from(&force.names);
        let held: Vec<String> = {
            let held = lock(&self.held);
            self.names()
                .into_iter()
                .filter(|n| held.contains(n))
                .filter(|n| force.names.is_empty() || force.names.contains(n))
                .collect()
        };
        let pending = self.forced_among(&held).await;
        info!(
            id = force.id,
            by = %force.node,
            held = pending.len(),
            "fleet-wide mass renewal: renewing the certificates this node holds"
        );
        if !pending.is_empty() {
            self.tell(Event::FleetForce(pending)).await;
        }
    }

    /// Which of `names` the latest mass renewal has not renewed yet.
    pub(super) async fn forced_among(&self, names: &[String]) -> Vec<String> {
        let id = self.force_id.load(Ordering::SeqCst);
        if id == 0 || names.is_empty() {
            return Vec::new();
        }
        let Ok(mut client) = self.client() else {
            return Vec::new();
        };
        let covered = lock(&self.force_names).clone();
        let mut pending = Vec::new();
        for name in names {
            if !covered.is_empty() && !covered.contains(name) {
                continue;
            }
            let key = self.key(&format!("certs/{name}"));
            // A certificate the fleet has no version of yet is being issued
            // anyway, after the batch.
            let batch = match client.get(key, None).await {
                Ok(response) => response
                    .kvs()
                    .first()
                    .and_then(|kv| serde_json::from_slice::<Shared>(kv.value()).ok())
                    .map(|s| s.batch),
                Err(_) => continue,
            };
            if batch.is_some_and(|b| b < id) {
                pending.push(name.clone());
            }
        }
        pending
    }
}
