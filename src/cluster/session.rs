//! The node's session with etcd: connect, grant (or keep) one lease of
//! `lease_ttl`, register under `nodes/<node>` with it, and keep it alive
//! every third of its TTL. Every key a node owns is attached to this lease, so
//! a node that dies, or cannot reach a quorum for `lease_ttl`, drops them all.
//! A lost connection is retried every second, with the next endpoint, keeping
//! the lease if etcd still has it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, PutOptions, TlsOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Cluster, Error, lock, pause};
use crate::daemon::Event;

impl Cluster {
    pub(super) async fn session(self: Arc<Self>, cancel: CancellationToken) {
        // Logged once per kind of failure, not every second.
        let mut last = String::new();
        loop {
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                r = self.run_session() => r,
            };
            if let Err(e) = result {
                let message = e.to_string();
                if message != last {
                    warn!("etcd: {message}; retrying every second");
                    last = message;
                }
            }
            *lock(&self.confirmed) = None;
            // The next session talks to the next member: one that is down
            // or cut off from the quorum must not hold the node back.
            *lock(&self.client) = None;
            self.endpoint.fetch_add(1, Ordering::SeqCst);
            self.connection_changed().await;
            if !pause(&cancel, Duration::from_secs(1)).await {
                return;
            }
        }
    }

    async fn run_session(&self) -> Result<(), Error> {
        let mut client = match self.client() {
            Ok(client) => client,
            Err(_) => {
                let client = self.connect().await?;
                *lock(&self.client) = Some(client.clone());
                client
            }
        };
        let lease = self.lease_for(&mut client).await?;
        let node = self.key(&format!("nodes/{}", self.config.node));
        let value = serde_json::json!({ "lease": lease }).to_string();
        client
            .put(node, value, Some(PutOptions::new().with_lease(lease)))
            .await?;
        let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
        info!(renewd_event = "cluster-connected", node = %self.config.node, lease, "connected to etcd");
        loop {
            let sent = Instant::now();
            keeper.keep_alive().await?;
            let answer = tokio::time::timeout(self.tick(), stream.message()).await;
            match answer {
                Ok(Ok(Some(r))) if r.ttl() > 0 => {
                    *lock(&self.confirmed) = Some(sent);
                    self.connection_changed().await;
                }
                Ok(Ok(Some(_))) => {
                    self.lease.store(0, Ordering::SeqCst);
                    return Err(Error::LeaseExpired);
                }
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(None)) | Err(_) => return Err(Error::NotConnected),
            }
            tokio::time::sleep_until(sent + self.tick()).await;
        }
    }

    /// The lease this node had, if etcd still has it, else a new one.
    async fn lease_for(&self, client: &mut Client) -> Result<i64, Error> {
        let old = self.lease();
        if old != 0 {
            let alive = client.lease_time_to_live(old, None).await?.ttl() > 0;
            if alive {
                return Ok(old);
            }
        }
        let ttl = i64::try_from(self.config.lease_ttl.0.as_secs()).unwrap_or(i64::MAX);
        let lease = client.lease_grant(ttl, None).await?.id();
        self.lease.store(lease, Ordering::SeqCst);
        // Whatever the old lease held is gone with it.
        lock(&self.held).clear();
        Ok(lease)
    }

    async fn connect(&self) -> Result<Client, Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if let Some(tls) = &self.config.tls {
            let read = |path: &std::path::Path| {
                std::fs::read(path)
                    .map_err(|e| Error::File(format!("{}: cannot read: {e}", path.display())))
            };
            let mut config =
                TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            options = options.with_tls(config);
        }
        if let Some((user, file)) = &self.config.auth {
            let password = std::fs::read_to_string(file)
                .map_err(|e| Error::File(format!("{}: cannot read: {e}", file.display())))?;
            options = options.with_user(user.clone(), password.trim_end().to_owned());
        }
        // One member at a time, in turn: the client's own balancing keeps
        // sending requests to a member that is down.
        let endpoints = &self.config.etcd;
        let endpoint = &endpoints[self.endpoint.load(Ordering::SeqCst) % endpoints.len()];
        Ok(Client::connect([endpoint], Some(options)).await?)
    }

    /// Tells the scheduler when the node's connection changed: every
    /// certificate is planned anew (held ones resume; with etcd gone, those
    /// close to expiry are renewed alone).
    async fn connection_changed(&self) {
        let now = self.connected();
        if self.was_connected.swap(now, Ordering::SeqCst) != now {
            if !now {
                warn!(
                    renewd_event = "cluster-disconnected",
                    "lost etcd: no orders until it is back"
                );
            }
            self.tell(Event::Replan(self.names())).await;
        }
    }
}
