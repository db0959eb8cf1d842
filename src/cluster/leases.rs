//! Certificate leases, spread over the live nodes by rendezvous hashing: for
//! each certificate every node ranks the live nodes the same way, and only the
//! first may take `holders/<name>`, in a transaction that succeeds only when
//! the key does not exist (attached to the node's lease, so it vanishes with
//! the node). A holder hands a certificate over to the node that ranks first
//! for it once that node is alive and no order of its own is in flight. A
//! certificate nobody took for two lease TTLs (its first node lacks it in its
//! config, say) is taken by whoever sees it.
//!
//! The balance runs every `tick` on what it reads (two range reads), not on
//! events: its latency is dominated by `lease_ttl` anyway.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use aws_lc_rs::digest::{SHA256, digest};
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{Cluster, Error, lock, pause};
use crate::daemon::Event;

/// The node that ranks first for `name` among `nodes`.
pub(super) fn rendezvous<'a>(name: &str, nodes: &'a [String]) -> Option<&'a str> {
    nodes
        .iter()
        .max_by_key(|node| {
            let hash = digest(&SHA256, format!("{name}\0{node}").as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&hash.as_ref()[..8]);
            (u64::from_be_bytes(first), node.as_str())
        })
        .map(String::as_str)
}

/// Who holds each certificate: node and lease.
type Holders = HashMap<String, (String, i64)>;

impl Cluster {
    pub(super) async fn balance(self: Arc<Self>, cancel: CancellationToken) {
        let mut unheld: HashMap<String, Instant> = HashMap::new();
        loop {
            if !pause(&cancel, self.tick()).await {
                return;
            }
            // Ranks are only fair once the nodes that start together see each
            // other, and a lease is only worth taking once the versions in
            // etcd are here (else the holder would renew what it lacks).
            if !self.connected() || !self.synced.load(Ordering::SeqCst) {
                continue;
            }
            if let Err(e) = self.balance_once(&mut unheld).await {
                debug!("lease balance: {e}");
            }
        }
    }

    async fn balance_once(&self, unheld: &mut HashMap<String, Instant>) -> Result<(), Error> {
        let mut client = self.client()?;
        let lease = self.lease();
        let me = self.config.node.clone();
        let nodes = self.read_nodes(&mut client).await?;
        let holders = self.read_holders(&mut client).await?;
        let patience = self.config.lease_ttl.0 * 2;
        let mut held = HashSet::new();
        for name in self.names() {
            let first = rendezvous(&name, &nodes);
            match holders.get(&name) {
                Some((node, l)) if *node == me && *l == lease => {
                    let other_first = first.is_some_and(|f| f != me);
                    if other_first && !self.is_busy(&name) && self.release(&name, lease).await? {
                        continue;
                    }
                    held.insert(name);
                }
                Some(_) => {
                    unheld.remove(&name);
                }
                None => {
                    let since = *unheld.entry(name.clone()).or_insert_with(Instant::now);
                    let mine = first == Some(me.as_str()) || since.elapsed() > patience;
                    if mine && self.acquire(&name, lease).await? {
                        unheld.remove(&name);
                        held.insert(name);
                    }
                }
            }
        }
        let gained: Vec<String> = held.difference(&lock(&self.held)).cloned().collect();
        // Adopted before they count as held: until then this node neither
        // plans them nor writes its own (older) scheduling state over the
        // fleet's.
        if !gained.is_empty()
            && let Err(e) = self.adopt_schedules(&gained).await
        {
            debug!("cannot read the fleet's scheduling state: {e}");
        }
        *lock(&self.held) = held;
        if !gained.is_empty() {
            info!(count = gained.len(), "took certificate leases");
            let forced = self.forced_among(&gained).await;
            self.tell(Event::Replan(gained)).await;
            if !forced.is_empty() {
                self.tell(Event::FleetForce(forced)).await;
            }
        }
        Ok(())
    }

    async fn read_nodes(&self, client: &mut etcd_client::Client) -> Result<Vec<String>, Error> {
        let prefix = self.key("nodes/");
        let response = client
            .get(
                prefix.clone(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let mut nodes: Vec<String> = response
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        nodes.sort();
        lock(&self.nodes).clone_from(&nodes);
        Ok(nodes)
    }

    async fn read_holders(&self, client: &mut etcd_client::Client) -> Result<Holders, Error> {
        let prefix = self.key("holders/");
        let response = client
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(response
            .kvs()
            .iter()
            .filter_map(|kv| {
                let name = kv.key_str().ok()?.strip_prefix(&prefix)?.to_owned();
                Some((name, (kv.value_str().ok()?.to_owned(), kv.lease())))
            })
            .collect())
    }

    /// Takes `name`'s lease if nobody holds it; whether this node got it.
    async fn acquire(&self, name: &str, lease: i64) -> Result<bool, Error> {
        let key = self.key(&format!("holders/{name}"));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                self.config.node.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let mut client = self.client()?;
        Ok(client.txn(txn).await?.succeeded())
    }

    /// Gives `name`'s lease up if this node (with `lease`) holds it.
    async fn release(&self, name: &str, lease: i64) -> Result<bool, Error> {
        let key = self.key(&format!("holders/{name}"));
        let txn = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, lease)])
            .and_then([TxnOp::delete(key, None)]);
        let mut client = self.client()?;
        let released = client.txn(txn).await?.succeeded();
        if released {
            debug!(cert_name = %name, "handed the lease over");
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_ranks_the_same_and_certificates_spread() {
        let nodes: Vec<String> = ["web1", "web2", "web3"].map(str::to_owned).to_vec();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for i in 0..300 {
            let name = format!("c{i}");
            let first = rendezvous(&name, &nodes).unwrap();
            let mut shuffled = nodes.clone();
            shuffled.reverse();
            assert_eq!(rendezvous(&name, &shuffled), Some(first));
            *count.entry(first).or_default() += 1;
        }
        for node in &nodes {
            assert!(count[node.as_str()] > 60, "{count:?}");
        }
    }

    #[test]
    fn a_node_leaving_moves_only_its_own_certificates() {
        let three: Vec<String> = ["web1", "web2", "web3"].map(str::to_owned).to_vec();
        let two: Vec<String> = ["web1", "web3"].map(str::to_owned).to_vec();
        for i in 0..100 {
            let name = format!("c{i}");
            let before = rendezvous(&name, &three).unwrap();
            if before != "web2" {
                assert_eq!(rendezvous(&name, &two), Some(before));
            }
        }
    }
}
