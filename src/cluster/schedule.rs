//! The fleet's scheduling state: what the holder of a certificate knows about
//! its next renewal — the ARI window and the time drawn in it, when to poll
//! again, failures and backoff, the CA's `Retry-After`, a revocation — kept in
//! `sched/<name>` (no lease: it outlives the holder). A node that takes a
//! certificate over adopts it before it plans, so it goes on where the last
//! holder stopped instead of starting afresh: it keeps the renewal time
//! already drawn, polls when the last holder would have, and does not retry a
//! failing order sooner than the backoff allows.
//!
//! The holder writes what changed every [`Cluster::tick`], so what a new
//! holder adopts is at most that old. Each node's own deployment (reload
//! errors, served checks) stays its own. Every node also watches the records
//! for failed attempts: a `renew --force` waiting on one node learns so of a
//! failure on another.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use etcd_client::{EventType, GetOptions, TxnOp};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{Cluster, Error, PUTS_PER_TXN, lock, pause};
use crate::clock::Moment;
use crate::daemon::Event;
use crate::state::{CertState, Window};
use crate::store::Serial;

/// The value of `sched/<name>`: the part of a [`CertState`] about renewing
/// the live certificate `serial` (`None`: about issuing the first one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Schedule {
    serial: Option<Serial>,
    ari_window: Option<Window>,
    ari_poll_at: Option<Moment>,
    next_renewal: Option<Moment>,
    next_renewal_for: Option<Window>,
    revoked: bool,
    key_refused: bool,
    failures: u32,
    last_failure: Option<crate::failure::Kind>,
    last_attempt: Option<Moment>,
    #[serde(default, deserialize_with = "crate::intern::shared_opt")]
    last_result: Option<Arc<str>>,
    retry_at: Option<Moment>,
    ca_retry_at: Option<Moment>,
}

impl Schedule {
    /// What `cs` says about renewing its live certificate.
    fn of(cs: &CertState) -> Self {
        Self {
            serial: cs.serial.clone(),
            ari_window: cs.ari_window,
            ari_poll_at: cs.ari_poll_at,
            next_renewal: cs.next_renewal,
            next_renewal_for: cs.next_renewal_for,
            revoked: cs.revoked,
            key_refused: cs.key_refused,
            failures: cs.failures,
            last_failure: cs.last_failure,
            last_attempt: cs.last_attempt,
            last_result: cs.last_result.clone(),
            retry_at: cs.retry_at,
            ca_retry_at: cs.ca_retry_at,
        }
    }

    /// Makes it `cs`'s.
    fn adopt_into(self, cs: &mut CertState) {
        cs.serial = self.serial;
        cs.ari_window = self.ari_window;
        cs.ari_poll_at = self.ari_poll_at;
        cs.next_renewal = self.next_renewal;
        cs.next_renewal_for = self.next_renewal_for;
        cs.revoked = self.revoked;
        cs.key_refused = self.key_refused;
        cs.failures = self.failures;
        cs.last_failure = self.last_failure;
        cs.last_attempt = self.last_attempt;
        cs.last_result = self.last_result;
        cs.retry_at = self.retry_at;
        cs.ca_retry_at = self.ca_retry_at;
    }
}

impl Cluster {
    /// Tells the scheduler about every failed attempt another node records,
    /// for the `renew --force` requests that wait on this node.
    pub(super) async fn watch_failures(self: Arc<Self>, cancel: CancellationToken) {
        self.keep_following(&cancel, "scheduling state", || self.follow_failures())
            .await;
    }

    async fn follow_failures(&self) -> Result<(), Error> {
        let prefix = self.key("sched/");
        // What is there already is older than any request still waiting.
        let (_, mut stream) = self.read_then_watch(&prefix, true).await?;
        while let Some(message) = stream.message().await? {
            for event in message.events() {
                let Some(kv) = event.kv().filter(|_| event.event_type() == EventType::Put) else {
                    continue;
                };
                let Some(name) = kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix)) else {
                    continue;
                };
                let Ok(schedule) = serde_json::from_slice::<Schedule>(kv.value()) else {
                    continue;
                };
                if let (Some(at), Some(detail)) = (
                    schedule.last_attempt,
                    schedule
                        .last_result
                        .as_deref()
                        .and_then(|r| r.strip_prefix("error: ")),
                ) {
                    self.tell(Event::FleetFailed {
                        name: name.to_owned(),
                        at: at.time(),
                        detail: detail.to_owned(),
                    })
                    .await;
                }
            }
        }
        Err(Error::NotConnected)
    }

    /// Writes the scheduling state of every certificate this node holds to
    /// etcd when it changed, every tick.
    pub(super) async fn share_schedules(self: Arc<Self>, cancel: CancellationToken) {
        // What etcd was last given, per certificate.
        let mut shared: HashMap<String, Schedule> = HashMap::new();
        loop {
            if !pause(&cancel, self.tick()).await {
                return;
            }
            let held: HashSet<String> = lock(&self.held).clone();
            if held.is_empty() || !self.connected() {
                continue;
            }
            let changed: Vec<(String, Schedule)> = {
                let mut state = self.state.lock().await;
                held.iter()
                    .filter_map(|name| {
                        let schedule = Schedule::of(state.unsaved_entry(name));
                        (shared.get(name) != Some(&schedule)).then(|| (name.clone(), schedule))
                    })
                    .collect()
            };
            for batch in changed.chunks(PUTS_PER_TXN) {
                match self.put_schedules(batch).await {
                    Ok(()) => shared.extend(batch.iter().cloned()),
                    Err(e) => debug!("cannot share scheduling state: {e}"),
                }
            }
        }
    }

    async fn put_schedules(&self, batch: &[(String, Schedule)]) -> Result<(), Error> {
        let ops: Vec<TxnOp> = batch
            .iter()
            .map(|(name, schedule)| {
                let value = serde_json::to_string(schedule).unwrap_or_default();
                TxnOp::put(self.key(&format!("sched/{name}")), value, None)
            })
            .collect();
        let mut client = self.client()?;
        client.txn(etcd_client::Txn::new().and_then(ops)).await?;
        Ok(())
    }

    /// Adopts the fleet's scheduling state of `gained` (certificates this node
    /// just took over) where it is about the certificate live here (or about
    /// issuing the first one, when none is); before they are planned.
    pub(super) async fn adopt_schedules(&self, gained: &[String]) -> Result<(), Error> {
        let prefix = self.key("sched/");
        let mut client = self.client()?;
        let response = client
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        let gained: HashSet<&str> = gained.iter().map(String::as_str).collect();
        let mut fleet: Vec<(String, Schedule)> = Vec::new();
        for kv in response.kvs() {
            let Some(name) = kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix)) else {
                continue;
            };
            if !gained.contains(name) {
                continue;
            }
            match serde_json::from_slice::<Schedule>(kv.value()) {
                Ok(schedule) => fleet.push((name.to_owned(), schedule)),
                Err(e) => debug!(cert_name = %name, "ignoring sched/{name}: {e}"),
            }
        }
        let live: Vec<Option<Serial>> = fleet
            .iter()
            .map(|(name, _)| Some(Serial::new(&self.store.lineage(name).ok()??.cert.serial)))
            .collect();
        let mut adopted = 0;
        let mut state = self.state.lock().await;
        for ((name, schedule), live) in fleet.into_iter().zip(live) {
            if live == schedule.serial {
                schedule.adopt_into(state.entry(&name));
                adopted += 1;
            }
        }
        if adopted > 0 {
            info!(count = adopted, "took over the fleet's scheduling state");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_carries_the_renewal_plan_and_backoff_but_not_the_deployment() {
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap();
        let window = Window {
            start: now.into(),
            end: (now + time::Duration::days(1)).into(),
        };
        let holder = CertState {
            serial: Some("0a".into()),
            ari_window: Some(window),
            next_renewal: Some((now + time::Duration::hours(5)).into()),
            next_renewal_for: Some(window),
            failures: 3,
            retry_at: Some((now + time::Duration::minutes(8)).into()),
            deploy_pending: true,
            ..CertState::default()
        };
        let json = serde_json::to_string(&Schedule::of(&holder)).unwrap();
        let mut taker = CertState {
            reload_errors: std::collections::BTreeMap::from([(
                "unit nginx.service".to_owned(),
                "failed".to_owned(),
            )])
            .into(),
            ..CertState::default()
        };
        serde_json::from_str::<Schedule>(&json)
            .unwrap()
            .adopt_into(&mut taker);
        assert_eq!(taker.serial, Some("0a".into()));
        assert_eq!(taker.next_renewal, holder.next_renewal);
        assert_eq!(taker.next_renewal_for, Some(window));
        assert_eq!((taker.failures, taker.retry_at), (3, holder.retry_at));
        assert!(!taker.deploy_pending, "deployment stays per node");
        assert_eq!(taker.reload_errors.iter().count(), 1);
    }
}
