//! Fleet-wide challenges: the CA may reach any node, so an http-01 token or a
//! tls-alpn-01 key authorization one node presents goes to
//! `challenges/<token>` (with that node's lease, so it vanishes with it), and
//! every other node presents it through its own solver of the same name.
//!
//! A standalone listener is bound on every node and waits for a token it
//! does not know yet (`crate::solver`), so the presenting node tells the CA
//! to validate as soon as etcd took the challenge. A webroot's file must be
//! in place before the CA asks the web server: for those the other nodes
//! acknowledge under `acks/<token>/<node>`, and the presenting node tells the
//! CA once every live node did, or after [`ACK_WAIT`] at most.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use etcd_client::{DeleteOptions, EventType, PutOptions, Txn, TxnOp, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Cluster, Error, lock};
use crate::solver::{Fleet, Response};

/// The longest a presenting node waits for the others to acknowledge.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// The value of `challenges/<token>`.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    solver: String,
    node: String,
    identifier: String,
    token: String,
    key_authorization: String,
    /// base64 of the SHA-256 digest (tls-alpn-01).
    digest: String,
    dns_value: String,
    /// Whether the presenting node waits for acknowledgements (absent in
    /// records of older nodes, which always wait).
    #[serde(default = "yes")]
    ack: bool,
}

fn yes() -> bool {
    true
}

impl Record {
    fn response(&self) -> Option<Response> {
        let mut digest = [0u8; 32];
        let bytes = STANDARD.decode(&self.digest).ok()?;
        if bytes.len() != 32 {
            return None;
        }
        digest.copy_from_slice(&bytes);
        Some(Response {
            identifier: self.identifier.parse().ok()?,
            token: self.token.clone(),
            key_authorization: self.key_authorization.clone(),
            digest,
            dns_value: self.dns_value.clone(),
        })
    }
}

impl Fleet for Cluster {
    fn share<'a>(
        &'a self,
        solver: &'a str,
        response: &'a Response,
        wait: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Err(e) = self.share_challenge(solver, response, wait).await {
                warn!(solver, "cannot share the challenge with the fleet: {e}");
            }
        })
    }

    fn withdraw<'a>(
        &'a self,
        response: &'a Response,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let txn = Txn::new().and_then([
                TxnOp::delete(self.key(&format!("challenges/{}", response.token)), None),
                TxnOp::delete(
                    self.key(&format!("acks/{}/", response.token)),
                    Some(DeleteOptions::new().with_prefix()),
                ),
            ]);
            // In the background: the order waits for nothing here, and a
            // late delete is harmless (the key also goes with the lease).
            if let Ok(mut client) = self.client() {
                tokio::spawn(async move {
                    if let Err(e) = client.txn(txn).await {
                        debug!("cannot withdraw a challenge: {e}");
                    }
                });
            }
        })
    }
}

impl Cluster {
    async fn share_challenge(
        &self,
        solver: &str,
        response: &Response,
        wait: bool,
    ) -> Result<(), Error> {
        let record = Record {
            solver: solver.to_owned(),
            node: self.config.node.clone(),
            identifier: response.identifier.to_string(),
            token: response.token.clone(),
            key_authorization: response.key_authorization.clone(),
            digest: STANDARD.encode(response.digest),
            dns_value: response.dns_value.clone(),
            ack: wait,
        };
        let value = serde_json::to_string(&record).unwrap_or_default();
        let mut client = self.client()?;
        let key = self.key(&format!("challenges/{}", response.token));
        let put = client
            .put(key, value, Some(PutOptions::new().with_lease(self.lease())))
            .await?;
        let revision = put
            .header()
            .map_or(0, etcd_client::ResponseHeader::revision);
        let others: HashSet<String> = lock(&self.nodes)
            .iter()
            .filter(|n| **n != self.config.node)
            .cloned()
            .collect();
        if !wait || others.is_empty() {
            return Ok(());
        }
        let acks = self.key(&format!("acks/{}/", response.token));
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision);
        let mut stream = client.watch(acks.clone(), Some(options)).await?;
        let mut acked = HashSet::new();
        let wait = async {
            while let Some(message) = stream.message().await? {
                for event in message.events() {
                    let node = event
                        .kv()
                        .and_then(|kv| kv.key_str().ok()?.strip_prefix(&acks));
                    if let Some(node) = node {
                        acked.insert(node.to_owned());
                    }
                }
                if others.is_subset(&acked) {
                    break;
                }
            }
            Ok::<(), Error>(())
        };
        if tokio::time::timeout(ACK_WAIT, wait).await.is_err() {
            let missing: Vec<&String> = others.difference(&acked).collect();
            warn!(token = %response.token, ?missing, "not every node acknowledged the challenge in time");
        }
        Ok(())
    }

    pub(super) async fn watch_challenges(self: Arc<Self>, cancel: CancellationToken) {
        let presented = Arc::new(Mutex::new(Presented::default()));
        self.keep_following(&cancel, "challenges", || self.follow_challenges(&presented))
            .await;
    }

    async fn follow_challenges(
        self: &Arc<Self>,
        presented: &Arc<Mutex<Presented>>,
    ) -> Result<(), Error> {
        let prefix = self.key("challenges/");
        let (now, mut stream) = self.read_then_watch(&prefix, true).await?;
        for kv in &now {
            self.present_for_other(kv.value(), presented);
        }
        while let Some(message) = stream.message().await? {
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => self.present_for_other(kv.value(), presented),
                    EventType::Delete => {
                        let Some(token) = kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix))
                        else {
                            continue;
                        };
                        let gone = lock(presented).withdrawn(token);
                        if let Some((solver, response)) = gone {
                            self.clean_up(&solver, &response).await;
                        }
                    }
                }
            }
        }
        Err(Error::NotConnected)
    }

    /// Presents what another node shared, and acknowledges it if asked to —
    /// in a task of its own: the orders of the other nodes wait for the
    /// acknowledgements, and one at a time they would queue behind each
    /// other's etcd commits.
    fn present_for_other(self: &Arc<Self>, value: &[u8], presented: &Arc<Mutex<Presented>>) {
        let Ok(record) = serde_json::from_slice::<Record>(value) else {
            return;
        };
        if record.node == self.config.node {
            return;
        }
        let Some(response) = record.response() else {
            return;
        };
        let solver = lock(&self.solvers).get(&record.solver);
        let Some(solver) = solver else {
            warn!(solver = %record.solver, "a node shared a challenge of a solver this node lacks");
            return;
        };
        lock(presented).pending.insert(record.token.clone());
        let (cluster, presented) = (Arc::clone(self), Arc::clone(presented));
        tokio::spawn(async move {
            if let Err(e) = solver.present_here(&response).await {
                warn!("cannot present the fleet's challenge: {e}");
                lock(&presented).pending.remove(&record.token);
                return;
            }
            let token = record.token.clone();
            let withdrawn = lock(&presented).presented(token.clone(), (record.solver, response));
            if let Some((solver, response)) = withdrawn {
                // Withdrawn while it was being presented.
                cluster.clean_up(&solver, &response).await;
                return;
            }
            if !record.ack {
                return;
            }
            let ack = cluster.key(&format!("acks/{token}/{}", cluster.config.node));
            if let Ok(mut client) = cluster.client() {
                let options = PutOptions::new().with_lease(cluster.lease());
                if let Err(e) = client.put(ack, "", Some(options)).await {
                    debug!("cannot acknowledge a challenge: {e}");
                }
            }
        });
    }

    async fn clean_up(&self, solver: &str, response: &Response) {
        let solver = lock(&self.solvers).get(solver);
        if let Some(solver) = solver {
            solver.cleanup_here(response).await;
        }
    }
}

/// What this node presents for other nodes, by token.
#[derive(Default)]
struct Presented {
    /// Presented: the solver and the response, to clean up when withdrawn.
    done: HashMap<String, (String, Response)>,
    /// Being presented.
    pending: HashSet<String>,
    /// Withdrawn while being presented: cleaned up once presented.
    withdrawn: HashSet<String>,
}

impl Presented {
    /// `token` was withdrawn: what to clean up now, if it was presented.
    fn withdrawn(&mut self, token: &str) -> Option<(String, Response)> {
        if self.pending.contains(token) {
            self.withdrawn.insert(token.to_owned());
        }
        self.done.remove(token)
    }

    /// `token` is presented now: what to clean up at once, if it was
    /// withdrawn meanwhile.
    fn presented(&mut self, token: String, what: (String, Response)) -> Option<(String, Response)> {
        self.pending.remove(&token);
        if self.withdrawn.remove(&token) {
            return Some(what);
        }
        self.done.insert(token, what);
        None
    }
}
