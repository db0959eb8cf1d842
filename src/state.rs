//! `state.json`: what renewd remembers between runs about each certificate —
//! last attempt and its result, which CA and solver issued it. Losing the file is
//! harmless; it only makes `status` less informative until the next renewal.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::store::cert::normalize_serial;
use crate::store::{self, Store};
use crate::verify::Served;

const FILE: &str = "state.json";

/// An RFC 9773 suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// End of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// Memory about one certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CertState {
    /// When renewal was last attempted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt: Option<OffsetDateTime>,
    /// `"ok"` or `"error: ..."`.
    pub last_result: Option<String>,
    /// The kind of the last failure, while the certificate keeps failing.
    pub last_failure: Option<crate::failure::Kind>,
    /// CA that issued the live certificate.
    pub ca: Option<String>,
    /// Solver that validated the live certificate.
    pub solver: Option<String>,
    /// Serial of the live certificate the fields below were computed for; when
    /// the live serial differs, they are stale and ignored.
    pub serial: Option<String>,
    /// Last known ARI window.
    pub ari_window: Option<Window>,
    /// When to ask the CA for the ARI window again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ari_poll_at: Option<OffsetDateTime>,
    /// The renewal time chosen (randomly, inside the ARI window or after the
    /// fallback point), kept so a restart does not re-roll it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_renewal: Option<OffsetDateTime>,
    /// The ARI window `next_renewal` was drawn in (`None`: the lifetime
    /// fallback); a different window means a new draw.
    pub next_renewal_for: Option<Window>,
    /// The CA said (through ARI) that the certificate was revoked.
    pub revoked: bool,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Do not try again before this (backoff, Retry-After).
    #[serde(with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    /// A forced renewal (SIGUSR1, `renew --force`) was requested and has not
    /// succeeded yet; survives a crash so a restarted daemon finishes the job.
    pub force_pending: bool,
    /// The live certificate was published and its deployment (reloads, then
    /// the served-certificate check) has not finished: written before the first
    /// reload runs, so a daemon that crashed meanwhile deploys it when it
    /// restarts.
    pub deploy_pending: bool,
    /// Per reload target (as logged, e.g. `unit nginx.service`), why its last
    /// run for this certificate failed; a target's success clears only its own.
    pub reload_errors: BTreeMap<String, String>,
    /// Last served-certificate checks.
    pub served: Vec<Served>,
    /// When they were made.
    #[serde(with = "time::serde::rfc3339::option")]
    pub served_at: Option<OffsetDateTime>,
}

impl CertState {
    /// Forgets what was known about the previous certificate after a renewal.
    pub fn renewed(&mut self, serial: &str) {
        self.serial = Some(serial.to_owned());
        self.ari_window = None;
        self.ari_poll_at = None;
        self.next_renewal = None;
        self.next_renewal_for = None;
        self.revoked = false;
        self.failures = 0;
        self.last_failure = None;
        self.retry_at = None;
        self.force_pending = false;
        self.deploy_pending = false;
        self.reload_errors.clear();
        self.served.clear();
        self.served_at = None;
    }

    /// Whether the per-certificate fields describe the live certificate `serial`.
    #[must_use]
    pub fn is_for(&self, serial: &str) -> bool {
        // Compared as numbers: older versions wrote serials without their
        // leading zeros.
        self.serial
            .as_deref()
            .is_some_and(|s| normalize_serial(s) == normalize_serial(serial))
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Per certificate name.
    pub certificates: BTreeMap<String, CertState>,
    #[serde(skip)]
    saves: Saves,
}

/// Orders the writes of one state: snapshots are numbered under the state's lock
/// and written without it, and an older snapshot never overwrites a newer one.
#[derive(Debug, Clone, Default)]
struct Saves {
    /// Number of the latest snapshot taken.
    taken: u64,
    /// Number of the snapshot on disk; held while writing.
    written: Arc<std::sync::Mutex<u64>>,
}

impl State {
    /// Reads `state.json`; a missing or unreadable file gives an empty state (and a
    /// warning for the latter), because the daemon must be correct without it.
    #[must_use]
    pub fn load(store: &Store) -> Self {
        match store.read_file(Path::new(FILE)) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: ignoring unreadable state: {e}",
                    store.root().join(FILE).display()
                );
                Self::default()
            }),
            Ok(None) => Self::default(),
            Err(e) => {
                tracing::warn!("ignoring unreadable state: {e}");
                Self::default()
            }
        }
    }

    /// Writes `state.json` atomically, off the runtime's worker threads and without
    /// holding the lock during the fsyncs, so renewals in flight do not wait for
    /// them.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    pub async fn save(state: &Mutex<Self>, store: &Store) -> Result<(), store::Error> {
        let snapshot = state.lock().await.snapshot();
        snapshot.write(store).await
    }

    /// The state as it is now, numbered, to be written without holding it.
    pub fn snapshot(&mut self) -> Snapshot {
        self.saves.taken += 1;
        Snapshot {
            json: serde_json::to_vec_pretty(&*self).unwrap_or_default(),
            number: self.saves.taken,
            written: Arc::clone(&self.saves.written),
        }
    }

    /// The entry for `name`, created empty if needed.
    pub fn entry(&mut self, name: &str) -> &mut CertState {
        self.certificates.entry(name.to_owned()).or_default()
    }
}

/// One state to write, taken by [`State::snapshot`].
#[derive(Debug)]
pub struct Snapshot {
    json: Vec<u8>,
    number: u64,
    written: Arc<std::sync::Mutex<u64>>,
}

impl Snapshot {
    /// Writes it to `state.json` (atomically, off the runtime), unless a newer
    /// snapshot of the same state was written meanwhile.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    pub async fn write(self, store: &Store) -> Result<(), store::Error> {
        let Self {
            json,
            number,
            written,
        } = self;
        store
            .off_runtime(move |store| {
                let mut written = written.lock().unwrap_or_else(PoisonError::into_inner);
                if *written < number {
                    store.write_file(Path::new(FILE), &json)?;
                    *written = number;
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_leave_the_newest_state_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let mut saves = tokio::task::JoinSet::new();
        for i in 0..32 {
            let (state, store) = (Arc::clone(&state), store.clone());
            saves.spawn(async move {
                state.lock().await.entry(&format!("c{i}")).failures = i;
                State::save(&state, &store).await.unwrap();
            });
        }
        saves.join_all().await;
        // Every change precedes its own snapshot, so the last snapshot has all 32.
        assert_eq!(State::load(&store).certificates.len(), 32);
    }
}
