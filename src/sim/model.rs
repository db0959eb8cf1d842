//! What the simulation knows and keeps: the CA, the "disk" (live
//! certificates and `state.json` as last written), the host's services, the
//! counts, each certificate's recent events, and the bookkeeping the
//! invariants need. One per run, shared by the simulated world's tasks and the
//! driver (all on one thread).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rand::rngs::StdRng;
use time::{Duration, OffsetDateTime};

use super::ca::{Ca, Issued};
use super::faults::Faults;
use crate::clock::Clock;
use crate::config::{Config, KeyType};
use crate::state::{MemoryFiles, Window};
use crate::store::{CertInfo, Lineage};

/// Events kept per certificate, for a violation's report.
const RECENT: usize = 24;

/// Something that happened to a certificate.
#[derive(Debug, Clone)]
pub(super) enum Note {
    Text(String),
    /// An ARI poll answered with this window.
    Poll(Window),
}

impl From<String> for Note {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for Note {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Poll(w) => write!(
                f,
                "ARI poll: window {} .. {}",
                crate::status::rfc3339(w.start.time()),
                crate::status::rfc3339(w.end.time())
            ),
        }
    }
}

/// A certificate as `live/` holds it.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub version: u32,
    pub serial: String,
    pub key_type: KeyType,
    pub issued: Issued,
}

impl Live {
    pub(super) fn lineage(&self, name: &str) -> Lineage {
        Lineage {
            name: name.to_owned(),
            version: self.version,
            dir: PathBuf::new(),
            cert: CertInfo {
                serial: self.serial.clone(),
                not_before: self.issued.not_before,
                not_after: self.issued.not_after,
                domains: self.issued.domains.clone(),
                key_type: Some(self.key_type),
                ari_id: Some(format!("sim.{}", self.serial)),
                spki_der: Vec::new(),
                der: Vec::new(),
            },
            key_matches: true,
        }
    }
}

/// What survives a crash.
#[derive(Debug, Default)]
pub(super) struct Disk {
    pub live: BTreeMap<String, Live>,
    /// `state.json` and `state.journal`.
    pub state: MemoryFiles,
}

/// What the simulation counts.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub renewals: u64,
    pub orders: u64,
    pub ari_polls: u64,
    pub crashes: u64,
}

/// When a failure allows the next order for a certificate.
#[derive(Debug, Clone)]
pub(super) struct HoldOff {
    /// Not before the shortest backoff (forced renewals excepted).
    pub backoff: OffsetDateTime,
    /// Not before the CA's `Retry-After`, even forced.
    pub ca: Option<OffsetDateTime>,
    /// The daemon's own retry time, for the report.
    pub retry_at: OffsetDateTime,
}

/// A revocation the daemon must answer by replacing the certificate.
#[derive(Debug, Clone)]
pub(super) struct Revoked {
    pub name: String,
    pub serial: String,
    pub key: u64,
    pub key_compromise: bool,
    pub at: OffsetDateTime,
    /// How many certificates were revoked at once.
    pub batch: usize,
}

pub(super) struct Sim {
    pub clock: Clock,
    pub rng: StdRng,
    pub faults: Faults,
    /// The config file as it is now (what a SIGHUP or restart reads).
    pub config: Arc<Config>,
    pub ca: Ca,
    pub disk: Disk,
    pub counts: Counts,
    trace: Option<String>,
    recent: HashMap<String, VecDeque<(OffsetDateTime, Note)>>,
    pub violations: u64,
    pub first_violation: Option<String>,
    next_key: u64,
    // What the invariants need.
    pub orders_in_flight: usize,
    pub polls_in_flight: usize,
    pub ordering: HashSet<String>,
    /// Per certificate, when the last failure allows the next order.
    pub hold_off: HashMap<String, HoldOff>,
    /// Per certificate, the latest `Retry-After` the CA sent and when it did.
    pub told: HashMap<String, (OffsetDateTime, OffsetDateTime)>,
    /// Per certificate, when its live version was published (until judged).
    pub published: BTreeMap<String, OffsetDateTime>,
    /// Per certificate and reload target, when it last started to run.
    pub reloaded: HashMap<(String, String), OffsetDateTime>,
    /// Per certificate, reloads run since its last publish.
    pub reloads_since_publish: HashMap<String, u32>,
    pub revocations: Vec<Revoked>,
    /// Starts of SIGUSR1 storms.
    pub storms: Vec<OffsetDateTime>,
    /// Per certificate, when forced renewals succeeded.
    pub forced: BTreeMap<String, Vec<OffsetDateTime>>,
    /// Where in its ARI window each renewal the window planned started (0..1).
    pub spread: Vec<f64>,
    /// Per certificate, the expiry already judged.
    pub expired_seen: HashMap<String, OffsetDateTime>,
    /// Restart times, for the deployment invariant.
    pub restarts: Vec<OffsetDateTime>,
}

impl Sim {
    pub(super) fn new(
        clock: Clock,
        rng: StdRng,
        faults: Faults,
        config: Arc<Config>,
        trace: Option<String>,
    ) -> Self {
        Self {
            clock,
            rng,
            faults,
            config,
            ca: Ca::default(),
            disk: Disk::default(),
            counts: Counts::default(),
            trace,
            recent: HashMap::new(),
            violations: 0,
            first_violation: None,
            next_key: 0,
            orders_in_flight: 0,
            polls_in_flight: 0,
            ordering: HashSet::new(),
            hold_off: HashMap::new(),
            told: HashMap::new(),
            published: BTreeMap::new(),
            reloaded: HashMap::new(),
            reloads_since_publish: HashMap::new(),
            revocations: Vec::new(),
            storms: Vec::new(),
            forced: BTreeMap::new(),
            spread: Vec::new(),
            expired_seen: HashMap::new(),
            restarts: Vec::new(),
        }
    }

    pub(super) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(super) fn new_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Notes `what` happened to certificate `name` (formatted only when
    /// printed: a year of polls is millions of notes).
    pub(super) fn event(&mut self, name: &str, what: impl Into<Note>) {
        let (now, what) = (self.now(), what.into());
        if self.trace.as_deref() == Some(name) {
            eprintln!("trace {name}: {} {what}", crate::status::rfc3339(now));
        }
        let recent = match self.recent.get_mut(name) {
            Some(recent) => recent,
            None => self.recent.entry(name.to_owned()).or_default(),
        };
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((now, what));
    }

    /// Reports a violation of invariant `number` by certificate `name`; the
    /// first one is printed with the certificate's recent events.
    pub(super) fn violated(&mut self, number: u8, name: &str, what: &str) {
        self.violations += 1;
        if self.first_violation.is_some() {
            return;
        }
        let message = format!(
            "invariant {number} at {}: {name}: {what}",
            crate::status::rfc3339(self.now())
        );
        eprintln!("violation: {message}");
        eprintln!("recent events of {name}:");
        for (at, what) in self.recent.get(name).into_iter().flatten() {
            eprintln!("  {} {what}", crate::status::rfc3339(*at));
        }
        self.first_violation = Some(message);
    }

    pub(super) fn live(&self, name: &str) -> Option<&Live> {
        self.disk.live.get(name)
    }

    pub(super) fn max_concurrent(&self) -> usize {
        self.config.daemon.max_concurrent
    }

    pub(super) fn check_interval(&self) -> Duration {
        Duration::try_from(self.config.daemon.check_interval.0).unwrap_or(Duration::HOUR)
    }
}
