//! Issued versions in etcd: the holder of a certificate writes each version it
//! obtained to `certs/<name>` (chain in clear, private key sealed), and every
//! node publishes the newest one into its own store — the same archive/live
//! layout, through [`Store::publish`], so atomically — then tells its
//! scheduler to deploy it.
//!
//! A node publishes a version only when it is newer (later `notBefore`) than
//! its live one, so a node that renewed alone while etcd was away keeps its
//! own until the fleet has a newer one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use etcd_client::{EventType, KeyValue};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Cluster, Error};
use crate::daemon::Event;
use crate::store::{CertInfo, Issued, Store};

/// The value of `certs/<name>`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Shared {
    /// Serial of the leaf (hex).
    pub serial: String,
    /// Leaf and intermediates (PEM).
    pub fullchain: String,
    /// The private key (PKCS#8 PEM), sealed for `"<name> <serial>"`.
    pub key: String,
    /// The CA that issued it.
    pub ca: Option<String>,
    /// The node that ordered it.
    pub node: String,
    /// The fleet-wide mass renewal in force when its order started.
    #[serde(default)]
    pub batch: u64,
}

fn context(name: &str, serial: &str) -> String {
    format!("{name} {serial}")
}

impl Cluster {
    /// Writes `name`'s live version (just renewed here) to etcd for the
    /// other nodes; `batch` is the mass renewal it satisfies.
    ///
    /// # Errors
    ///
    /// [`Error`] when the live version cannot be read or etcd cannot take it.
    pub async fn share(&self, name: &str, ca: &str, batch: u64) -> Result<(), Error> {
        let dir = self.store.live_dir(name);
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file)).map_err(|source| {
                Error::Store(crate::store::Error::Io {
                    path: dir.join(file),
                    source,
                })
            })
        };
        let (fullchain, key) = (read("fullchain.pem")?, read("privkey.pem")?);
        let info = CertInfo::from_pem(fullchain.as_bytes()).map_err(|e| Error::Corrupt {
            key: name.to_owned(),
            why: e.to_string(),
        })?;
        let shared = Shared {
            key: self
                .sealer
                .seal(&context(name, &info.serial), key.as_bytes())?,
            serial: info.serial,
            fullchain,
            ca: Some(ca.to_owned()),
            node: self.config.node.clone(),
            batch,
        };
        let value = serde_json::to_string(&shared).unwrap_or_default();
        let mut client = self.client()?;
        client
            .put(self.key(&format!("certs/{name}")), value, None)
            .await?;
        Ok(())
    }

    pub(super) async fn watch_certs(self: Arc<Self>, cancel: CancellationToken) {
        self.keep_following(&cancel, "certs", || self.follow_certs())
            .await;
    }

    /// Publishes every version in etcd that is newer than the local one, then
    /// each new one as it comes.
    async fn follow_certs(&self) -> Result<(), Error> {
        let prefix = self.key("certs/");
        let (now, mut stream) = self.read_then_watch(&prefix, true).await?;
        for kv in &now {
            self.arrived(&prefix, kv).await;
        }
        if !self.synced.swap(true, Ordering::SeqCst) {
            info!(versions = now.len(), "in step with the versions in etcd");
        }
        while let Some(message) = stream.message().await? {
            for event in message.events() {
                if let (EventType::Put, Some(kv)) = (event.event_type(), event.kv()) {
                    self.arrived(&prefix, kv).await;
                }
            }
        }
        Err(Error::NotConnected)
    }

    async fn arrived(&self, prefix: &str, kv: &KeyValue) {
        let Some(name) = kv.key_str().ok().and_then(|k| k.strip_prefix(prefix)) else {
            return;
        };
        if !self.names().iter().any(|n| n == name) {
            return;
        }
        match self.publish(name, kv.value()).await {
            Ok(Some((serial, ca))) => {
                info!(cert_name = %name, serial = %serial, "published the fleet's new version");
                self.tell(Event::Published {
                    name: name.to_owned(),
                    serial,
                    ca,
                })
                .await;
            }
            Ok(None) => {}
            Err(e) => warn!(cert_name = %name, "cannot publish the fleet's version: {e}"),
        }
    }

    /// Publishes the version `value` holds if it is newer than the live one:
    /// its serial and CA, or `None` when there was nothing to do.
    async fn publish(
        &self,
        name: &str,
        value: &[u8],
    ) -> Result<Option<(String, Option<String>)>, Error> {
        let corrupt = |why: String| Error::Corrupt {
            key: self.key(&format!("certs/{name}")),
            why,
        };
        let shared: Shared = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
        let info =
            CertInfo::from_pem(shared.fullchain.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
        let live = self.store.lineage(name).ok().flatten();
        if live.is_some_and(|l| l.cert.serial == info.serial || l.cert.not_before > info.not_before)
        {
            return Ok(None);
        }
        let key = self
            .sealer
            .open(&context(name, &info.serial), &shared.key)?;
        let key = String::from_utf8(key).map_err(|e| corrupt(e.to_string()))?;
        if !info.matches_key(&key) {
            return Err(corrupt(
                "its key does not belong to its certificate".to_owned(),
            ));
        }
        let issued =
            Issued::from_fullchain(shared.fullchain, key).map_err(|e| corrupt(e.to_string()))?;
        let owned = name.to_owned();
        self.store
            .off_runtime(move |store: &Store| store.publish(&owned, &issued))
            .await?;
        Ok(Some((info.serial, shared.ca)))
    }
}
