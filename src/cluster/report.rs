//! What `status` shows of the fleet: each node reports, under
//! `deployed/<name>/<node>` (with its lease), the version it has live and
//! whether its `verify` targets serve it — written only when that changes —
//! and any node's `status` reads every node's reports and the holders back.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{GetOptions, PutOptions, Txn, TxnOp};
use serde::Serialize;
use tracing::debug;

use super::{Cluster, Error, PUTS_PER_TXN, lock};
use crate::status::{CertStatus, Deployed};

/// The longest `status` waits for etcd.
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// This node's view of the fleet, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// This node.
    pub node: String,
    /// Whether it reaches an etcd quorum with a live lease.
    pub connected: bool,
    /// How many certificate leases it holds.
    pub leases_held: usize,
    /// The live nodes.
    pub nodes: Vec<String>,
    /// Why etcd could not be read, if it could not.
    pub error: Option<String>,
}

impl Cluster {
    /// Reports what `statuses` (this node's) say is deployed here, where it
    /// changed since the last report.
    pub async fn report(&self, statuses: &[CertStatus]) {
        let lease = self.lease();
        if !self.connected() {
            return;
        }
        let mut changed = Vec::new();
        {
            let mut reported = lock(&self.reported);
            if reported.0 != lease {
                *reported = (lease, HashMap::new());
            }
            for status in statuses {
                let Some(here) = status.deployed_here(&self.config.node) else {
                    continue;
                };
                if reported.1.get(&status.name) != Some(&here) {
                    reported.1.insert(status.name.clone(), here.clone());
                    changed.push((status.name.clone(), here));
                }
            }
        }
        let Ok(mut client) = self.client() else {
            return;
        };
        // A mass renewal changes many at once: a transaction per batch, not a
        // commit per certificate.
        for batch in changed.chunks(PUTS_PER_TXN) {
            let puts: Vec<TxnOp> = batch
                .iter()
                .map(|(name, here)| {
                    let key = self.key(&format!("deployed/{name}/{}", self.config.node));
                    let value = serde_json::to_string(here).unwrap_or_default();
                    TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)))
                })
                .collect();
            if let Err(e) = client.txn(Txn::new().and_then(puts)).await {
                debug!("cannot report deployments: {e}");
                let mut reported = lock(&self.reported);
                for (name, _) in batch {
                    reported.1.remove(name);
                }
            }
        }
    }

    /// Adds the holder and every node's deployment to `statuses`; the
    /// fleet's state as this node sees it.
    pub async fn fill_status(&self, statuses: &mut [CertStatus]) -> FleetStatus {
        let error = match tokio::time::timeout(STATUS_WAIT, self.read_fleet()).await {
            Ok(Ok((holders, mut deployed))) => {
                for status in statuses.iter_mut() {
                    status.holder = holders.get(&status.name).cloned();
                    status.deployed = deployed.remove(&status.name).unwrap_or_default();
                }
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("etcd did not answer within {STATUS_WAIT:?}")),
        };
        FleetStatus {
            node: self.config.node.clone(),
            connected: self.connected(),
            leases_held: self.leases_held(),
            nodes: lock(&self.nodes).clone(),
            error,
        }
    }

    /// Holders by certificate, and every node's deployments by certificate.
    async fn read_fleet(
        &self,
    ) -> Result<(HashMap<String, String>, HashMap<String, Vec<Deployed>>), Error> {
        let mut client = self.client()?;
        let holders_prefix = self.key("holders/");
        let response = client
            .get(
                holders_prefix.clone(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let holders = response
            .kvs()
            .iter()
            .filter_map(|kv| {
                let name = kv.key_str().ok()?.strip_prefix(&holders_prefix)?;
                Some((name.to_owned(), kv.value_str().ok()?.to_owned()))
            })
            .collect();
        let deployed_prefix = self.key("deployed/");
        let response = client
            .get(
                deployed_prefix.clone(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let mut deployed: HashMap<String, Vec<Deployed>> = HashMap::new();
        for kv in response.kvs() {
            let Some(rest) = kv
                .key_str()
                .ok()
                .and_then(|k| k.strip_prefix(&deployed_prefix))
            else {
                continue;
            };
            let Some((name, _node)) = rest.rsplit_once('/') else {
                continue;
            };
            if let Ok(d) = serde_json::from_slice::<Deployed>(kv.value()) {
                deployed.entry(name.to_owned()).or_default().push(d);
            }
        }
        for list in deployed.values_mut() {
            list.sort_by(|a, b| a.node.cmp(&b.node));
        }
        Ok((holders, deployed))
    }
}
