//! `state.json` (and `state.journal`): what renewd remembers between runs
//! about each certificate — last attempt and its result, which CA and solver
//! issued it, its ARI window and chosen renewal time, failures and backoff,
//! deployments pending. Losing it is harmless for correctness; renewals are
//! then planned afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::clock::Moment;
use crate::config::Config;
use crate::store::{self, Facts, Serial, Store};
use crate::verify::Served;

const FILE: &str = "state.json";
const JOURNAL: &str = "state.journal";

/// An RFC 9773 suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start of the window.
    pub start: Moment,
    /// End of the window.
    pub end: Moment,
}

/// Memory about one certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CertState {
    /// When renewal was last attempted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Moment>,
    /// `"ok"` or `"error: ..."`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::intern::shared_opt"
    )]
    pub last_result: Option<Arc<str>>,
    /// The kind of the last failure, while the certificate keeps failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<crate::failure::Kind>,
    /// CA that issued the live certificate.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::intern::shared_opt"
    )]
    pub ca: Option<Arc<str>>,
    /// Solver that validated the live certificate.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::intern::shared_opt"
    )]
    pub solver: Option<Arc<str>>,
    /// Serial of the live certificate the fields below were computed for; when
    /// the live serial differs, they are stale and ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<Serial>,
    /// Last known ARI window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ari_window: Option<Window>,
    /// When to ask the CA for the ARI window again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ari_poll_at: Option<Moment>,
    /// The renewal time chosen (randomly, inside the ARI window or after the
    /// fallback point), kept so a restart does not re-roll it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_renewal: Option<Moment>,
    /// The ARI window `next_renewal` was drawn in (`None`: the lifetime
    /// fallback); a different window means a new draw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_renewal_for: Option<Window>,
    /// The CA said (through ARI) that the certificate was revoked.
    #[serde(skip_serializing_if = "is_false")]
    pub revoked: bool,
    /// The CA refused the key of the last attempt (`badCSR`).
    #[serde(skip_serializing_if = "is_false")]
    pub key_refused: bool,
    /// Consecutive failed attempts.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub failures: u32,
    /// Do not try again before this (backoff, Retry-After).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Moment>,
    /// The part of `retry_at` the CA asked for (a rate limit's time, a
    /// `Retry-After`): even a forced renewal waits for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_retry_at: Option<Moment>,
    /// A forced renewal (SIGUSR1, `renew --force`) was requested and has not
    /// succeeded yet; survives a crash so a restarted daemon finishes the job.
    #[serde(skip_serializing_if = "is_false")]
    pub force_pending: bool,
    /// The live certificate was published and its deployment (reloads, then
    /// the served-certificate check) has not finished: written before the first
    /// reload runs, so a daemon that crashed meanwhile deploys it when it
    /// restarts.
    #[serde(skip_serializing_if = "is_false")]
    pub deploy_pending: bool,
    /// Per reload target (as logged, e.g. `unit nginx.service`), why its last
    /// run for this certificate failed; a target's success clears only its own.
    #[serde(skip_serializing_if = "ReloadErrors::is_empty")]
    pub reload_errors: ReloadErrors,
    /// Last served-certificate checks.
    #[serde(skip_serializing_if = "<[Served]>::is_empty")]
    pub served: Box<[Served]>,
    /// When they were made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_at: Option<Moment>,
    /// What `live/<name>` held when last read ([`Facts`]): a restart, a
    /// `status` and a reload take it from here instead of reading and
    /// parsing the certificate and key again while it still holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Facts>,
}

impl CertState {
    /// Forgets what was known about the previous certificate after a renewal.
    pub fn renewed(&mut self, serial: &str) {
        self.serial = Some(Serial::new(serial));
        self.ari_window = None;
        self.ari_poll_at = None;
        self.next_renewal = None;
        self.next_renewal_for = None;
        self.revoked = false;
        self.key_refused = false;
        self.failures = 0;
        self.last_failure = None;
        self.retry_at = None;
        self.ca_retry_at = None;
        self.force_pending = false;
        self.deploy_pending = false;
        self.reload_errors.clear();
        self.served = Box::default();
        self.served_at = None;
        self.live = None;
    }

    /// Whether the next order must use a new key: the live certificate was
    /// revoked (its key may be why), or the CA refused the key last time.
    #[must_use]
    pub fn needs_fresh_key(&self) -> bool {
        self.revoked || self.key_refused
    }

    /// Whether the per-certificate fields describe the live certificate `serial`.
    #[must_use]
    pub fn is_for(&self, serial: &str) -> bool {
        // Compared as numbers: older versions wrote serials without their
        // leading zeros.
        self.serial.as_ref().is_some_and(|s| s.is(serial))
    }
}

/// [`CertState::reload_errors`]: per reload target, why its last run
/// failed. Almost always none, so a pointer wide (an empty map inline was
/// 16 bytes more per certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
#[allow(clippy::box_collection)] // the point: a pointer inline, the map's 24 bytes only when needed
pub struct ReloadErrors(Option<Box<BTreeMap<String, String>>>);

impl ReloadErrors {
    /// Records why `target` failed.
    pub fn insert(&mut self, target: String, error: String) {
        self.0.get_or_insert_default().insert(target, error);
    }

    /// Forgets `target`'s failure.
    pub fn remove(&mut self, target: &str) {
        if let Some(errors) = &mut self.0 {
            errors.remove(target);
            if errors.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Forgets them all.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Whether no target failed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Each failed target and why.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().flat_map(|errors| errors.iter())
    }
}

impl From<BTreeMap<String, String>> for ReloadErrors {
    fn from(errors: BTreeMap<String, String>) -> Self {
        Self((!errors.is_empty()).then(|| Box::new(errors)))
    }
}

impl From<ReloadErrors> for BTreeMap<String, String> {
    fn from(errors: ReloadErrors) -> Self {
        errors.0.map(|e| *e).unwrap_or_default()
    }
}

/// Everything renewd remembers, per certificate.
///
/// On disk it is `state.json`, a full copy, plus `state.journal`, the
/// certificates changed since, one JSON line each: a change writes its own
/// line, not the whole state (a poll of one certificate among 100,000 wrote
/// tens of MB). Every copy of a certificate carries the number of the
/// snapshot it was taken in, and the newest wins, so writes that land out of
/// order lose nothing. Once the journal outgrows the full copy, the next
/// snapshot is a full one, which empties it.
///
/// [`State::load`] takes each certificate's name from the config, so that
/// the config, the state and the scheduler share one copy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct State {
    /// Per certificate name.
    pub certificates: BTreeMap<Arc<str>, CertState>,
    /// The snapshot `state.json` was written as: journal lines up to it are
    /// in it already.
    #[serde(skip_serializing_if = "is_zero")]
    snapshot: u64,
    #[serde(skip)]
    saves: Saves,
}

/// Where a certificate's name read from the state comes from: the config's
/// copy, when it has the certificate.
pub type Names<'a> = &'a dyn Fn(&str) -> Option<Arc<str>>;

/// Reads a [`State`], its names taken from [`Names`].
struct StateSeed<'a>(Names<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for StateSeed<'_> {
    type Value = State;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<State, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StateSeed<'_> {
    type Value = State;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("renewd's state")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<State, A::Error> {
        let mut state = State::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "certificates" => state.certificates = map.next_value_seed(Entries(self.0))?,
                "snapshot" => state.snapshot = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(state)
    }
}

/// Reads the certificates into a B-tree built in one go from the sorted
/// entries: inserted one at a time in order, as serde does, every node is
/// split in the middle and stays half empty — with 100,000 certificates
/// about 35 MB of empty slots.
struct Entries<'a>(Names<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for Entries<'_> {
    type Value = BTreeMap<Arc<str>, CertState>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Entries<'_> {
    type Value = BTreeMap<Arc<str>, CertState>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("certificates by name")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let mut cs: CertState = map.next_value()?;
            if let Some(live) = &mut cs.live {
                live.compact();
            }
            let name = (self.0)(&name).unwrap_or_else(|| Arc::from(&*name));
            entries.push((name, cs));
        }
        // Sorts and builds the nodes full.
        Ok(entries.into_iter().collect())
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_false(b: &bool) -> bool {
    !*b
}

/// One line of `state.journal`.
#[derive(Deserialize)]
struct Line {
    /// The snapshot it was written by.
    n: u64,
    name: String,
    state: CertState,
}

/// A [`Line`] to write.
#[derive(Serialize)]
struct LineRef<'a> {
    n: u64,
    name: &'a str,
    state: &'a CertState,
}

/// The journal is compacted into `state.json` once it would be larger than
/// this and than half of `state.json`.
const JOURNAL_MIN: u64 = 1 << 20;

/// Orders the writes of one state: snapshots are numbered under the state's
/// lock and written without it.
#[derive(Debug, Clone, Default)]
struct Saves {
    /// Number of the latest snapshot taken.
    taken: u64,
    /// Certificates changed since the last snapshot.
    dirty: BTreeSet<String>,
    /// Bytes in the journal (as this state wrote it), and in the last full copy.
    journal_bytes: u64,
    full_bytes: u64,
    /// What is on disk: held while writing.
    written: Arc<std::sync::Mutex<Written>>,
}

/// The newest full copy written, and the newest journal line.
#[derive(Debug, Default)]
struct Written {
    full: u64,
    journal: u64,
}

/// Where a [`Snapshot`] goes: the state directory, or a simulated one.
pub trait Files {
    /// Replaces `state.json` atomically.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    fn replace_full(&mut self, bytes: &[u8]) -> Result<(), store::Error>;
    /// Appends to `state.journal`, durably.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    fn append_journal(&mut self, bytes: &[u8]) -> Result<(), store::Error>;
    /// Empties `state.journal`.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    fn clear_journal(&mut self) -> Result<(), store::Error>;
}

impl Files for &Store {
    fn replace_full(&mut self, bytes: &[u8]) -> Result<(), store::Error> {
        self.write_file(Path::new(FILE), bytes)
    }

    fn append_journal(&mut self, bytes: &[u8]) -> Result<(), store::Error> {
        self.append_file(Path::new(JOURNAL), bytes)
    }

    fn clear_journal(&mut self) -> Result<(), store::Error> {
        self.write_file(Path::new(JOURNAL), b"")
    }
}

/// `state.json` and `state.journal` in memory (the simulator's disk).
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    /// `state.json`, if written.
    pub full: Option<Vec<u8>>,
    /// `state.journal`.
    pub journal: Vec<u8>,
}

impl MemoryFiles {
    /// The state they hold, as [`State::load`] reads it.
    ///
    /// # Errors
    ///
    /// [`serde_json::Error`] when `state.json` does not parse.
    pub fn load(&self) -> Result<State, serde_json::Error> {
        State::from_files(self.full.as_deref(), Some(&self.journal), &|_| None)
    }
}

impl Files for MemoryFiles {
    fn replace_full(&mut self, bytes: &[u8]) -> Result<(), store::Error> {
        self.full = Some(bytes.to_vec());
        Ok(())
    }

    fn append_journal(&mut self, bytes: &[u8]) -> Result<(), store::Error> {
        self.journal.extend_from_slice(bytes);
        Ok(())
    }

    fn clear_journal(&mut self) -> Result<(), store::Error> {
        self.journal.clear();
        Ok(())
    }
}

impl State {
    /// Reads `state.json` and `state.journal`, the names of the certificates
    /// in `config` shared with it; a missing or unreadable state
    /// gives an empty one (and a warning for the latter), because the daemon
    /// must be correct without it.
    #[must_use]
    pub fn load(store: &Store, config: &Config) -> Self {
        let read = |file: &str| match store.read_file(Path::new(file)) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!("ignoring unreadable state: {e}");
                None
            }
        };
        let (full, journal) = (read(FILE), read(JOURNAL));
        let names = |name: &str| config.certificate(name).map(|c| Arc::clone(&c.name));
        Self::from_files(full.as_deref(), journal.as_deref(), &names).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: ignoring unreadable state: {e}",
                store.root().join(FILE).display()
            );
            Self::default()
        })
    }

    /// The CA that issued `name`'s live certificate, as remembered.
    #[must_use]
    pub fn issued_by(&self, name: &str) -> Option<Arc<str>> {
        self.certificates.get(name).and_then(|cs| cs.ca.clone())
    }

    /// The state that `state.json` (`full`) and `state.journal` hold. A
    /// journal line that does not parse is skipped: it was being written when
    /// the host went down.
    ///
    /// # Errors
    ///
    /// [`serde_json::Error`] when `state.json` does not parse.
    pub fn from_files(
        full: Option<&[u8]>,
        journal: Option<&[u8]>,
        names: Names<'_>,
    ) -> Result<Self, serde_json::Error> {
        let mut state = match full {
            Some(bytes) => {
                let mut json = serde_json::Deserializer::from_slice(bytes);
                let state = serde::de::DeserializeSeed::deserialize(StateSeed(names), &mut json)?;
                json.end()?;
                state
            }
            None => Self::default(),
        };
        let journal = journal.unwrap_or_default();
        let mut newest: BTreeMap<String, (u64, CertState)> = BTreeMap::new();
        for line in journal.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(Line { n, name, state: cs }) = serde_json::from_slice::<Line>(line) else {
                continue;
            };
            if n > state.snapshot && newest.get(&name).is_none_or(|(m, _)| n >= *m) {
                newest.insert(name, (n, cs));
            }
        }
        let taken = newest.values().map(|(n, _)| *n).max().unwrap_or(0);
        for (name, (_, cs)) in newest {
            let name = names(&name).unwrap_or_else(|| Arc::from(name));
            state.certificates.insert(name, cs);
        }
        state.saves.taken = taken.max(state.snapshot);
        state.saves.journal_bytes = journal.len() as u64;
        state.saves.full_bytes = full.map_or(0, |f| f.len() as u64);
        Ok(state)
    }

    /// A copy holding only the certificates in `names` (those it knows), to
    /// read without the lock: copying all of them for a question about one
    /// cost milliseconds per thousand certificates.
    #[must_use]
    pub fn only(&self, names: &[String]) -> Self {
        let certificates = names
            .iter()
            .filter_map(|n| {
                let (name, cs) = self.certificates.get_key_value(n.as_str())?;
                Some((Arc::clone(name), cs.clone()))
            })
            .collect();
        Self {
            certificates,
            ..Self::default()
        }
    }

    /// Writes what changed atomically, off the runtime's worker threads and
    /// without holding the lock during the fsyncs, so renewals in flight do not
    /// wait for them.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    pub async fn save(state: &Mutex<Self>, store: &Store) -> Result<(), store::Error> {
        let snapshot = state.lock().await.snapshot();
        snapshot.write(store).await
    }

    /// What changed since the last snapshot (or everything, when the journal
    /// would grow past half the full copy), numbered, to be written without
    /// holding the state.
    pub fn snapshot(&mut self) -> Snapshot {
        self.saves.taken += 1;
        let number = self.saves.taken;
        let dirty = std::mem::take(&mut self.saves.dirty);
        let lines = self.journal_lines(number, dirty);
        // Half: loading reads both files, and a start that changed every
        // certificate (the first after an upgrade) wrote a journal as large
        // as the full copy, which every later start read twice over.
        let limit = JOURNAL_MIN.max(self.saves.full_bytes / 2);
        let (bytes, full) = if self.saves.journal_bytes + lines.len() as u64 > limit {
            self.snapshot = number;
            // Compact: pretty-printing made it half again as large, and with
            // 100,000 certificates loading it is most of a restart's reading.
            let json = serde_json::to_vec(&*self).unwrap_or_default();
            self.saves.full_bytes = json.len() as u64;
            self.saves.journal_bytes = 0;
            (json, true)
        } else {
            self.saves.journal_bytes += lines.len() as u64;
            (lines, false)
        };
        Snapshot {
            bytes,
            full,
            number,
            written: Arc::clone(&self.saves.written),
        }
    }

    /// The journal lines of the certificates `dirty`, as snapshot `number`.
    fn journal_lines(&self, number: u64, dirty: BTreeSet<String>) -> Vec<u8> {
        let mut lines = Vec::new();
        for name in dirty {
            if let Some(cs) = self.certificates.get(name.as_str()) {
                let line = LineRef {
                    n: number,
                    name: &name,
                    state: cs,
                };
                serde_json::to_writer(&mut lines, &line).unwrap_or_default();
                lines.push(b'\n');
            }
        }
        lines
    }

    /// The entry for `name`, created empty if needed, *not* marked changed:
    /// for reading, and for changes that need not be written (they are saved
    /// with the certificate's next change, and made again if lost).
    pub fn unsaved_entry(&mut self, name: &str) -> &mut CertState {
        if !self.certificates.contains_key(name) {
            self.certificates
                .insert(Arc::from(name), CertState::default());
        }
        self.certificates.get_mut(name).expect("just made")
    }

    /// The entry for `name`, created empty if needed, and marked changed.
    pub fn entry(&mut self, name: &str) -> &mut CertState {
        if !self.saves.dirty.contains(name) {
            self.saves.dirty.insert(name.to_owned());
        }
        self.unsaved_entry(name)
    }
}

/// What one snapshot writes, taken by [`State::snapshot`].
#[derive(Debug)]
pub struct Snapshot {
    /// A whole `state.json`, or journal lines.
    bytes: Vec<u8>,
    full: bool,
    number: u64,
    written: Arc<std::sync::Mutex<Written>>,
}

impl Snapshot {
    /// Writes it to the state directory, off the runtime.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    pub async fn write(self, store: &Store) -> Result<(), store::Error> {
        store
            .off_runtime(move |mut store| self.write_to(&mut store))
            .await
    }

    /// Writes it to `files`: journal lines are appended; a full copy replaces
    /// `state.json` unless a newer one is there, and empties the journal
    /// unless it holds lines newer than itself.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    pub fn write_to(&self, files: &mut impl Files) -> Result<(), store::Error> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.full {
            if !self.bytes.is_empty() {
                files.append_journal(&self.bytes)?;
                written.journal = written.journal.max(self.number);
            }
            return Ok(());
        }
        if written.full > self.number {
            return Ok(());
        }
        files.replace_full(&self.bytes)?;
        written.full = self.number;
        if written.journal <= self.number {
            files.clear_journal()?;
        }
        Ok(())
    }

    /// Whether there is nothing to write.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
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
        let read = |file: &str| store.read_file(Path::new(file)).unwrap();
        let state = State::from_files(read(FILE).as_deref(), read(JOURNAL).as_deref(), &|_| None);
        assert_eq!(state.unwrap().certificates.len(), 32);
    }

    #[test]
    fn a_change_writes_its_certificate_alone_and_the_journal_is_compacted_later() {
        let mut files = MemoryFiles::default();
        let mut state = State::default();
        for i in 0..1000 {
            state.entry(&format!("c{i}")).failures = 1;
        }
        state.snapshot().write_to(&mut files).unwrap();
        let all = files.journal.len();
        state.entry("c7").failures = 2;
        state.snapshot().write_to(&mut files).unwrap();
        let one = files.journal.len() - all;
        assert!(one < 1024, "one certificate's change wrote {one} bytes");
        assert!(
            state.snapshot().is_empty(),
            "nothing changed, nothing to write"
        );
        assert_eq!(files.load().unwrap().certificates["c7"].failures, 2);

        // Past its limit the journal is folded into state.json.
        while files.full.is_none() {
            state.entry("c7").failures += 1;
            state.snapshot().write_to(&mut files).unwrap();
        }
        assert!(files.journal.is_empty());
        let loaded = files.load().unwrap();
        assert_eq!(loaded.certificates.len(), 1000);
        assert_eq!(
            loaded.certificates["c7"].failures,
            state.certificates["c7"].failures
        );
    }

    #[test]
    fn out_of_order_writes_and_a_torn_last_line_lose_nothing_written_before() {
        let mut files = MemoryFiles::default();
        let mut state = State::default();
        state.entry("a").failures = 1;
        let older = state.snapshot();
        state.entry("a").failures = 2;
        state.entry("b").failures = 5;
        let newer = state.snapshot();
        newer.write_to(&mut files).unwrap();
        older.write_to(&mut files).unwrap();
        files
            .journal
            .extend_from_slice(b"{\"n\":99,\"name\":\"a\",\"sta");
        let loaded = files.load().unwrap();
        assert_eq!(loaded.certificates["a"].failures, 2, "the newer copy wins");
        assert_eq!(loaded.certificates["b"].failures, 5);
    }

    #[test]
    fn a_state_written_before_facts_and_defaults_were_left_out_still_loads() {
        let old = br#"{
  "certificates": {
    "a": {
      "last_attempt": "2026-06-01T10:00:00Z",
      "last_result": "ok",
      "serial": "3a9f",
      "ari_window": null,
      "revoked": false,
      "failures": 2,
      "retry_at": null,
      "reload_errors": {},
      "served": []
    }
  }
}"#;
        // The name comes from the config, one copy for both.
        let configured: Arc<str> = Arc::from("a");
        let names = |name: &str| (name == "a").then(|| Arc::clone(&configured));
        let state = State::from_files(Some(old), None, &names).unwrap();
        let (name, a) = state.certificates.first_key_value().unwrap();
        assert!(Arc::ptr_eq(name, &configured));
        assert_eq!((a.failures, a.live.is_none()), (2, true));
        // Written back without what is unset, and read back the same.
        let mut state = state;
        state.saves.journal_bytes = u64::MAX;
        let mut files = MemoryFiles::default();
        state.snapshot().write_to(&mut files).unwrap();
        let text = String::from_utf8(files.full.clone().unwrap()).unwrap();
        assert!(
            !text.contains("retry_at") && !text.contains("revoked"),
            "{text}"
        );
        assert_eq!(files.load().unwrap().certificates["a"].failures, 2);
    }
}
