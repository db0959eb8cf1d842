//! The resident scheduler: one loop that owns every per-certificate decision.
//!
//! It sleeps until the earliest of: a planned renewal, an ARI poll, a pending
//! state save or `STATUS=` line, the watchdog — or until an [`Event`] arrives or
//! a renewal or poll finishes. There is no fixed polling period. Renewals run as
//! tasks bounded by `daemon.max_concurrent`; a certificate already renewing is
//! never started twice, which is what makes repeated SIGUSR1 harmless.
//!
//! This file holds the loop, the per-certificate plan and the due index; the
//! rest is by concern: `renewals` (starting them, recording outcomes, the
//! mass-renewal guard), `requests` (signals, control requests, config reload),
//! `ari` (polls and revocations seen), `deploy` (reload batches and checks),
//! `status_line` (systemd's `STATUS=`), `tasks` (tasks joined with their name).
//! Time is read from a [`Clock`] and every random choice comes from one
//! seeded generator, so tests drive both.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

mod ari;
mod deploy;
mod renewals;
mod requests;
mod status_line;
mod tasks;
mod world;

use renewals::Batch;
use tasks::Tasks;
#[cfg_attr(not(feature = "sim"), allow(unused_imports))]
pub(crate) use world::{Daemon, Polled, Work, World};

use super::Event;
use crate::clock::{Clock, Moment};
use crate::config::{Config, ReloadTarget};
use crate::control::proto::RenewEvent;
use crate::reload;
use crate::renew::Outcome;
use crate::schedule::{self, Reason};
use crate::state::State;
use crate::store::{Facts, Lineage};
use crate::systemd::notify;

/// How long in-flight renewals may finish after SIGTERM before they are abandoned.
const DRAIN: StdDuration = StdDuration::from_secs(5);
/// Coalesces state writes during a mass renewal.
const SAVE_DELAY: StdDuration = StdDuration::from_secs(1);
/// How long bookkeeping that changes no plan (an ARI window that moved
/// without a new renewal time, a periodic check) may wait to be written: with
/// 100,000 certificates checks end several times a second, and each save is
/// an fsync. A crash loses at most this much of it, which only means checking
/// again. (An ARI poll that found the same window writes nothing at all.)
const LAZY_SAVE_DELAY: StdDuration = StdDuration::from_secs(60);
/// At most one `STATUS=` a second: a mass renewal finishes hundreds of
/// certificates a second, and each line costs a pass over all of them.
const STATUS_INTERVAL: StdDuration = StdDuration::from_secs(1);
/// The longest the loop sleeps at once. Its timers run on the monotonic clock,
/// which stands still while a host is suspended and ignores a stepped wall
/// clock; waking at least this often re-plans against the wall clock, so a
/// renewal long overdue after a resume waits minutes, not the time asleep.
const MAX_SLEEP: StdDuration = StdDuration::from_secs(300);
/// Fleet mode: reloads wait until no version from another node arrived for
/// this long, so that a fleet-wide mass renewal, whose versions arrive over its
/// whole course, reloads each target once rather than once per arrival.
const FLEET_QUIET: StdDuration = StdDuration::from_secs(2);
/// Certificates whose lineages are read (in parallel) and planned at a time:
/// reading all of 100,000 first held them all in memory at once.
const REPLAN_CHUNK: usize = 4096;
/// Never poll ARI more often than this (or `check_interval`, if shorter),
/// whatever Retry-After says.
const MIN_ARI_INTERVAL: StdDuration = StdDuration::from_secs(60);

type ReloadResult = (ReloadTarget, Vec<String>, Result<(), reload::Error>);
/// When a renewal started, and how it ended.
type RenewalResult = (OffsetDateTime, Outcome);

/// A certificate's [`schedule::Plan`] as the scheduler keeps it: what was drawn is
/// in the state.
#[derive(Debug)]
struct Planned {
    at: Moment,
    reason: Reason,
}

/// What the scheduler knows about one certificate between decisions.
#[derive(Debug, Default)]
struct Entry {
    plan: Option<Planned>,
    /// `live/` held a certificate when last planned. Its serial and ARI
    /// identifier are the state's and the store's to know: a copy of each
    /// here cost 13 MB with 100,000 certificates.
    live: bool,
    ari_poll_at: Option<Moment>,
    /// Consecutive failed polls, saturating (the backoff is long capped by
    /// then): a byte keeps the entry, one per certificate, at 64 bytes.
    ari_failures: u8,
    verify_at: Option<Moment>,
    running: bool,
    polling: bool,
    verifying: bool,
    /// The CA reported the live certificate revoked, or refused its key: the
    /// key is not reused.
    fresh_key: bool,
    /// Deployments of the live certificate under way: 0 none, 1 the first,
    /// 2 the one more reload after the service did not serve it.
    deploying: u8,
    /// Its key in the scheduler's due index, if it is there.
    indexed: Option<Moment>,
    /// Forced while an order that started before was in flight: renewed
    /// once more when that one ends.
    reforce: bool,
}

impl Entry {
    /// The earliest time something is planned for this certificate that is not
    /// already under way.
    fn earliest(&self) -> Option<Moment> {
        if self.running {
            return None;
        }
        let plan = self.plan.as_ref().map(|p| p.at);
        let poll = self.ari_poll_at.filter(|_| !self.polling);
        let verify = self.verify_at.filter(|_| !self.verifying);
        plan.into_iter().chain(poll).chain(verify).min()
    }
}

/// A hasher without a random seed: the same operations give the same
/// iteration order in every run.
type FixedState = BuildHasherDefault<DefaultHasher>;

pub(crate) struct Scheduler {
    /// Where "now" comes from.
    clock: Clock,
    /// Every random choice (renewal times, jitter), seeded once.
    rng: StdRng,
    /// Orders, polls, reloads, checks, the store and the config.
    world: Arc<dyn World>,
    /// Written only here; shared for `status` and metrics to read.
    state: Arc<Mutex<State>>,
    /// By name, looked up several times per poll and renewal: hashed, not
    /// ordered (10,000 names in a B-tree cost a dozen string compares per
    /// look). What is due at one instant starts in the order of `due`; the
    /// fixed hasher keeps any iteration the same every run (the simulator
    /// replays a seed event for event). The names are shared with `due`,
    /// which re-indexes a certificate at every poll and renewal.
    entries: hashbrown::HashMap<Arc<str>, Entry, FixedState>,
    permits: Arc<Semaphore>,
    /// Places for ARI polls (each with its CRL look) in flight: as many as for
    /// orders, so polls that come due together (after a restart, a resume, a
    /// Retry-After that ends for all) do not hit the CA all at once.
    poll_permits: Arc<Semaphore>,
    renewals: Tasks<RenewalResult>,
    polls: Tasks<Polled>,
    reloads: JoinSet<Vec<ReloadResult>>,
    /// Targets of the reload chains in flight.
    reloading: Vec<ReloadTarget>,
    verifies: Tasks<deploy::VerifyResult>,
    /// Reload targets waiting for the renewals of their batch to finish, with
    /// the certificates they are for.
    pending_reloads: Vec<(ReloadTarget, Vec<String>)>,
    /// Per certificate, reloads still to run before it is verified.
    outstanding: HashMap<String, usize>,
    /// Per reload target, the running renewals of certificates that use it: a
    /// target's batch is complete when none is left.
    held: HashMap<ReloadTarget, usize>,
    /// Per running renewal, the reload targets it holds back (those of the
    /// config it started with), released when it finishes. (Not in its
    /// [`Entry`]: few run at a time, and every entry would carry the room.)
    holding: HashMap<String, Arc<[ReloadTarget]>>,
    waiters: HashMap<String, Vec<oneshot::Sender<RenewEvent>>>,
    /// Fleet mode: forced renewals asked of the fleet through the control
    /// socket, waiting for the first outcome of an attempt started after the
    /// request (`since`), whichever node makes it.
    fleet_waiters: HashMap<String, Vec<(OffsetDateTime, oneshot::Sender<RenewEvent>)>>,
    /// The forced mass renewal in progress, if any.
    batch: Option<Batch>,
    save_at: Option<Instant>,
    /// Every certificate with something planned, by the earliest time it is
    /// planned for ([`Entry::earliest`] when it was indexed, kept in
    /// `Entry::indexed`), so a wake-up looks only at what is due instead of
    /// at every certificate. An entry whose times moved later without being
    /// re-indexed is looked at early and re-indexed then; every change that
    /// may make one earlier goes through [`Scheduler::touched`].
    due: BTreeSet<(Moment, Arc<str>)>,
    /// Fleet mode: reloads are held back until then ([`FLEET_QUIET`]).
    quiet_until: Option<Instant>,
    /// When the next `STATUS=` is due, if anything changed.
    status_at: Option<Instant>,
    status_sent: Instant,
    /// Whether systemd reads `STATUS=` lines.
    notify: bool,
}

impl Scheduler {
    pub(crate) fn new(world: Arc<dyn World>, state: Arc<Mutex<State>>) -> Self {
        Self::with_clock(world, state, Clock::system(), StdRng::from_os_rng())
    }

    /// A scheduler that reads `clock` and draws from `rng` (tests and the
    /// simulator drive both).
    pub(crate) fn with_clock(
        world: Arc<dyn World>,
        state: Arc<Mutex<State>>,
        clock: Clock,
        rng: StdRng,
    ) -> Self {
        let max_concurrent = world.config().daemon.max_concurrent;
        // Sized once: grown by doubling, the table left each smaller copy
        // freed between allocations that stay (13 + 6.5 + ... MB with
        // 100,000 certificates), which the allocator cannot give back.
        let entries = hashbrown::HashMap::with_capacity_and_hasher(
            world.config().certificates.len(),
            FixedState::default(),
        );
        Self {
            clock,
            rng,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            poll_permits: Arc::new(Semaphore::new(max_concurrent)),
            world,
            state,
            entries,
            renewals: Tasks::new(),
            polls: Tasks::new(),
            reloads: JoinSet::new(),
            reloading: Vec::new(),
            verifies: Tasks::new(),
            pending_reloads: Vec::new(),
            outstanding: HashMap::new(),
            held: HashMap::new(),
            holding: HashMap::new(),
            waiters: HashMap::new(),
            fleet_waiters: HashMap::new(),
            batch: None,
            save_at: None,
            due: BTreeSet::new(),
            quiet_until: None,
            status_at: None,
            status_sent: Instant::now(),
            notify: notify::listening(),
        }
    }

    fn config(&self) -> &Config {
        self.world.config()
    }

    pub(crate) async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        self.replan_all().await;
        self.resume_deploys().await;
        self.save_state().await;
        let status = self.status_line().await;
        info!(
            certificates = self.entries.len(),
            "renewd started: {status}"
        );
        notify::ready(&status);
        let mut watchdog = notify::watchdog_interval().map(tokio::time::interval);
        loop {
            self.start_due();
            let wake = self.next_wake();
            // Biased: the branches are polled in this order, not at random, so
            // that a seed replays the same run; what has ended is taken in
            // before anything new is asked.
            tokio::select! {
                biased;
                Some((name, done)) = self.renewals.join_next() => {
                    self.renewal_ended(name, done).await;
                }
                Some((name, done)) = self.polls.join_next() => match done {
                    Ok(result) => self.polled(name, result).await,
                    Err(e) => self.poll_died(name, &e).await,
                },
                Some(done) = self.reloads.join_next() => match done {
                    Ok(result) => self.reloaded(result).await,
                    Err(e) => error!("reload task failed: {e}"),
                },
                Some((name, done)) = self.verifies.join_next() => match done {
                    Ok(result) => self.verified(name, result).await,
                    Err(e) => self.verify_died(&name, &e),
                },
                event = events.recv() => match event {
                    None | Some(Event::Shutdown) => break,
                    Some(event) => self.handle(event).await,
                },
                () = tokio::time::sleep_until(wake) => {}
                () = tick(&mut watchdog) => notify::watchdog(),
            }
            self.flush_due().await;
        }
        self.shutdown().await;
    }

    /// Writes the state and sends `STATUS=` if their time has come.
    async fn flush_due(&mut self) {
        let now = Instant::now();
        if self.save_at.is_some_and(|at| at <= now) {
            self.save_state().await;
        }
        if self.status_at.is_some_and(|at| at <= now) {
            self.send_status().await;
        }
        if self.quiet_until.is_some_and(|at| at <= now) {
            self.quiet_until = None;
            self.dispatch_reloads().await;
        }
    }

    /// Starts every renewal, ARI poll and check whose time has come.
    fn start_due(&mut self) {
        let now = Moment::from(self.clock.now());
        while self.due.first().is_some_and(|(at, _)| *at <= now) {
            let Some((at, name)) = self.due.pop_first() else {
                break;
            };
            if self.start_what_is_due(&name, at, now) {
                self.touched(&name);
            }
        }
    }

    /// Starts what is due of `name`, taken out of the due index where it
    /// was at `at`; whether it is still a certificate of the config.
    fn start_what_is_due(&mut self, name: &str, at: Moment, now: Moment) -> bool {
        let Some(entry) = self.entries.get_mut(name) else {
            return false;
        };
        if entry.indexed == Some(at) {
            entry.indexed = None;
        }
        if entry.running {
            return true;
        }
        let renew = entry
            .plan
            .as_ref()
            .filter(|p| p.at <= now)
            .map(|p| p.reason.to_string());
        let poll = !entry.polling && entry.ari_poll_at.is_some_and(|at| at <= now);
        let verify = !entry.verifying && entry.verify_at.is_some_and(|at| at <= now);
        if (renew.is_some() || poll) && !self.world.holds(name) {
            // Parked: neither renewed nor polled here.
            self.park(name);
        } else if let Some(reason) = renew {
            self.start_renewal(name, reason);
            return true;
        } else if poll {
            self.start_poll(name);
        }
        if verify {
            self.start_verify(name, deploy::Verify::Periodic);
        }
        true
    }

    /// Another node of the fleet holds `name`'s lease: it renews and polls,
    /// this node only deploys and checks what it publishes. Planned again
    /// when the lease comes here ([`Event::Replan`]) or a version arrives.
    fn park(&mut self, name: &str) {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.plan = None;
            entry.ari_poll_at = None;
        }
    }

    /// Re-indexes `name` by its earliest planned time, after its times
    /// changed or it stopped renewing, polling or verifying.
    fn touched(&mut self, name: &str) {
        let Some((key, entry)) = self.entries.get_key_value_mut(name) else {
            return;
        };
        let at = entry.earliest();
        if entry.indexed == at {
            return;
        }
        if let Some(old) = entry.indexed.take() {
            self.due.remove(&(old, Arc::clone(key)));
        }
        if let Some(at) = at {
            entry.indexed = Some(at);
            self.due.insert((at, Arc::clone(key)));
        }
    }

    /// `name`'s entry, made if it has none yet.
    fn entry_mut(&mut self, name: &str) -> &mut Entry {
        if !self.entries.contains_key(name) {
            self.entries.insert(Arc::from(name), Entry::default());
        }
        self.entries.get_mut(name).expect("just made")
    }

    /// The earliest instant anything is planned.
    fn next_wake(&self) -> Instant {
        let now = self.clock.now();
        let cap = self.config().daemon.check_interval.0;
        let cap = cap.min(MAX_SLEEP);
        let until = self.due.first().map_or(cap, |(at, _)| {
            StdDuration::try_from(at.time() - now)
                .unwrap_or(StdDuration::ZERO)
                .min(cap)
        });
        let wake = Instant::now() + until;
        [self.save_at, self.status_at, self.quiet_until]
            .into_iter()
            .flatten()
            .fold(wake, Instant::min)
    }

    /// Re-plans every certificate of the config, its names copied a chunk
    /// at a time: copies of all of them, freed once planned, left that much
    /// memory free between the allocations planning keeps.
    async fn replan_all(&mut self) {
        let together = self.config().certificates.len();
        for start in (0..together).step_by(REPLAN_CHUNK) {
            let chunk: Vec<Arc<str>> = self.config().certificates[start..]
                .iter()
                .take(REPLAN_CHUNK)
                .map(|c| Arc::clone(&c.name))
                .collect();
            self.replan_chunk(&chunk, together).await;
        }
    }

    /// Re-plans `names`, a chunk at a time.
    async fn replan_these(&mut self, names: Vec<Arc<str>>) {
        for chunk in names.chunks(REPLAN_CHUNK) {
            self.replan_chunk(chunk, names.len()).await;
        }
    }

    /// Re-plans `chunk` among `together` certificates planned at once, their
    /// lineages read in parallel, from the facts the state remembers where
    /// they still hold.
    async fn replan_chunk(&mut self, chunk: &[Arc<str>], together: usize) {
        let known: Vec<_> = {
            let state = self.state.lock().await;
            chunk
                .iter()
                .map(|n| state.certificates.get(&**n).and_then(|cs| cs.live.clone()))
                .collect()
        };
        let read = self.world.lineages(chunk, &known);
        drop(known);
        for (name, (lineage, fresh)) in chunk.iter().zip(read) {
            // The config's name, shared rather than copied.
            self.entries.entry(Arc::clone(name)).or_default();
            self.replan_with(name, lineage, fresh, together).await;
        }
    }

    /// Re-reads `live/<name>` and decides anew when to renew and poll it.
    async fn replan(&mut self, name: &str) {
        self.replan_these(vec![Arc::from(name)]).await;
    }

    /// [`Scheduler::replan`] with `live/<name>` read already (and its facts,
    /// if they were read anew, to remember), among `together` certificates
    /// planned at once ([`ari::poll_time`]). The state is marked changed only
    /// when the plan or the facts changed it: replanning 100,000
    /// certificates at startup or on a reload must not write 100,000 lines.
    async fn replan_with(
        &mut self,
        name: &str,
        lineage: Result<Option<Lineage>, String>,
        fresh: Option<Facts>,
        together: usize,
    ) {
        let world = Arc::clone(&self.world);
        let Some(cert) = world.config().certificate(name) else {
            return;
        };
        let now = self.clock.now();
        let live = lineage.as_ref().ok().and_then(Option::as_ref);
        let serial = live.map(|l| l.cert.serial.as_str());
        let has_ari_id = live.is_some_and(|l| l.cert.ari_id.is_some());
        let check_interval = world.config().daemon.check_interval.0;
        let (random, poll_random) = (self.rng.random(), self.rng.random());
        let state = Arc::clone(&self.state);
        let mut state = state.lock().await;
        let cs = state.unsaved_entry(name);
        let reset = serial.is_some_and(|s| !cs.is_for(s));
        let learnt = fresh.is_some();
        if learnt {
            cs.live = fresh;
        }
        let daemon = &world.config().daemon;
        let (plan, changed) = schedule::plan_and_remember(
            cert,
            &lineage,
            cs,
            (daemon.renew_before.0, daemon.jitter.0),
            now,
            random,
        );
        let ari_poll_at = has_ari_id.then(|| {
            let known = cs.ari_poll_at.map(Moment::time);
            let at = ari::poll_time(known, now, check_interval, together, poll_random);
            cs.ari_poll_at = Some(at.into());
            at
        });
        let (fresh_key, live) = (cs.needs_fresh_key(), live.is_some());
        if changed || reset || learnt {
            state.entry(name);
            self.schedule_save();
        }
        drop(state);
        let verifies = !cert.verify.is_empty();
        let entry = self.entry_mut(name);
        if verifies && entry.verify_at.is_none() {
            entry.verify_at = Some(now.into());
        } else if !verifies {
            entry.verify_at = None;
        }
        entry.plan = Some(Planned {
            at: plan.at.into(),
            reason: plan.reason,
        });
        entry.fresh_key = fresh_key;
        entry.live = live;
        entry.ari_poll_at = ari_poll_at.map(Moment::from);
        self.touched(name);
    }

    fn schedule_save(&mut self) {
        self.save_within(SAVE_DELAY);
    }

    /// Saves within `delay`, or sooner if a save is already due sooner.
    fn save_within(&mut self, delay: StdDuration) {
        let at = Instant::now() + delay;
        self.save_at = Some(self.save_at.map_or(at, |due| due.min(at)));
    }

    async fn save_state(&mut self) {
        self.save_at = None;
        let snapshot = self.state.lock().await.snapshot();
        if snapshot.is_empty() {
            return;
        }
        if let Err(e) = self.world.save(snapshot).await {
            warn!("cannot save state: {e}");
        }
    }

    async fn shutdown(mut self) {
        notify::stopping();
        // Renewals still waiting for a place end as `Stopped` without an order;
        // forced ones stay pending in the state for the next start.
        self.permits.close();
        let in_flight =
            (self.config().daemon.max_concurrent).saturating_sub(self.permits.available_permits());
        info!(in_flight, "stopping");
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some((name, done)) = self.renewals.join_next().await {
                match done {
                    Ok((_, Outcome::Stopped)) | Err(_) => {}
                    Ok((started, outcome)) => {
                        info!(cert_name = %name, "finished before stop: {outcome}");
                        self.record(&name, started, &outcome).await;
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            // Publishing runs on a blocking thread that finishes even when its
            // renewal is aborted, so aborting never splits a store write.
            warn!(
                abandoned = self.renewals.len(),
                "abandoning renewals still in flight"
            );
            self.renewals.abort_all();
            while self.renewals.join_next().await.is_some() {}
            self.world.cleanup_abandoned().await;
        }
        self.polls.abort_all();
        self.verifies.abort_all();
        self.save_state().await;
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::watch;

    use super::*;
    use crate::config::Location;
    use crate::daemon::View;
    use crate::metrics::Metrics;
    use crate::renew::Renewer;

    #[test]
    fn an_entry_stays_small() {
        // One per certificate, in a table sized for all of them at once.
        assert!(size_of::<Entry>() <= 64, "{}", size_of::<Entry>());
    }

    /// A scheduler for one certificate, `a`, over a fresh state directory.
    fn scheduler(dir: &std::path::Path) -> Scheduler {
        let path = dir.join("renewd.toml");
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n\n[ca.test]\ndirectory = \"https://127.0.0.1:1/dir\"\n\n\
             [solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:1\"\n\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nca = [\"test\"]\n\
             solvers = [\"web\"]\n",
            dir.join("state").display()
        );
        let config = Arc::new(Config::from_str(&text, &path).unwrap());
        let store = crate::store::Store::open(&config.daemon.state_dir).unwrap();
        let state = Arc::new(Mutex::new(State::load(&store, &config)));
        let renewer = Arc::new(Renewer::new(config, store, Metrics::new()));
        let (view, _) = watch::channel(View::new(&renewer, &state, None));
        let location = Location::new(path, None);
        let world = Arc::new(Daemon::new(renewer, location, Metrics::new(), view, None));
        let clock = Clock::following_tokio(time::macros::datetime!(2026-06-01 00:00 UTC));
        Scheduler::with_clock(world, state, clock, StdRng::seed_from_u64(7))
    }

    /// Ends `a`'s renewal (started now) with a failure of `kind`.
    async fn fail(scheduler: &mut Scheduler, kind: crate::failure::Kind) {
        let failure = crate::failure::Failure::new(kind, "CA test: no");
        let started = scheduler.clock.now();
        scheduler.entry_mut("a").running = true;
        scheduler
            .renewal_ended("a".to_owned(), Ok((started, Outcome::Failed(failure))))
            .await;
    }

    /// Whether a renewal of `a` starts when the loop wakes next: runs the
    /// loop's step (wait for the wake-up, start what is due) on tokio's paused
    /// time, never past `limit`.
    async fn starts_by(scheduler: &mut Scheduler, limit: tokio::time::Instant) -> bool {
        loop {
            let wake = scheduler.next_wake();
            if wake > limit {
                return false;
            }
            tokio::time::sleep_until(wake).await;
            scheduler.flush_due().await;
            scheduler.start_due();
            if scheduler.entries["a"].running {
                return true;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn planning_that_changes_nothing_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        // Startup and config reloads plan every certificate: with 100,000 of
        // them, marking each as changed wrote every one's line each time.
        scheduler.replan_all().await;
        scheduler.replan_all().await;
        assert!(scheduler.state.lock().await.snapshot().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_at_their_backoff_not_a_second_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        scheduler.replan_all().await;
        let cap = scheduler.config().daemon.check_interval.0;
        for failures in 1..=12u32 {
            fail(&mut scheduler, crate::failure::Kind::CaUnreachable).await;
            let state = scheduler.state.lock().await.certificates["a"].clone();
            assert_eq!(state.failures, failures);
            let delay =
                StdDuration::try_from(state.retry_at.unwrap() - scheduler.clock.now()).unwrap();
            // 1 min doubling up to check_interval, jittered by at most half.
            let full = StdDuration::from_secs(60 * 2u64.pow(failures - 1)).min(cap);
            assert!(
                delay >= full / 2 && delay <= full,
                "{failures}: {delay:?} of {full:?}"
            );
            let due = tokio::time::Instant::now() + delay;
            assert!(
                !starts_by(&mut scheduler, due - StdDuration::from_secs(1)).await,
                "{failures}: retried early"
            );
            assert!(
                starts_by(&mut scheduler, due).await,
                "{failures}: not retried at {delay:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_longer_than_the_backoff_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        scheduler.replan_all().await;
        let until = scheduler.clock.now() + time::Duration::hours(3);
        fail(
            &mut scheduler,
            crate::failure::Kind::RateLimited { until: Some(until) },
        )
        .await;
        let due = tokio::time::Instant::now() + StdDuration::from_secs(3 * 3600);
        assert!(!starts_by(&mut scheduler, due - StdDuration::from_secs(1)).await);
        assert!(starts_by(&mut scheduler, due).await);
    }

    /// Found by the simulation (seed 1, 10,000 certificates, 365 days): a
    /// SIGUSR1 started an order during a rate limit's Retry-After.
    #[tokio::test(start_paused = true)]
    async fn a_forced_renewal_waits_for_the_cas_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        scheduler.replan_all().await;
        let until = scheduler.clock.now() + time::Duration::hours(1);
        fail(
            &mut scheduler,
            crate::failure::Kind::RateLimited { until: Some(until) },
        )
        .await;
        scheduler.force(&["a".to_owned()]).await;
        assert!(
            !scheduler.entries["a"].running,
            "ordered during Retry-After"
        );
        let due = tokio::time::Instant::now() + StdDuration::from_secs(3600);
        assert!(!starts_by(&mut scheduler, due - StdDuration::from_secs(1)).await);
        assert!(starts_by(&mut scheduler, due).await, "forced once it ended");
    }

    /// An operator who forces a renewal after fixing what failed does not wait
    /// for renewd's own backoff.
    #[tokio::test(start_paused = true)]
    async fn a_forced_renewal_skips_renewds_own_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        scheduler.replan_all().await;
        fail(&mut scheduler, crate::failure::Kind::ValidationFailed).await;
        assert!(!scheduler.entries["a"].running);
        scheduler.force(&["a".to_owned()]).await;
        assert!(scheduler.entries["a"].running, "waited for the backoff");
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_resumed_after_thirty_days_renews_within_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        scheduler.replan_all().await;
        let until = scheduler.clock.now() + time::Duration::days(30);
        fail(
            &mut scheduler,
            crate::failure::Kind::RateLimited { until: Some(until) },
        )
        .await;
        // Suspended for 30 days: the wall clock moves, tokio's timers do not.
        scheduler.clock.jump(time::Duration::days(30));
        let soon = tokio::time::Instant::now() + MAX_SLEEP;
        assert!(
            starts_by(&mut scheduler, soon).await,
            "waited for the monotonic clock"
        );
    }

    #[tokio::test]
    async fn a_renewal_task_that_panics_ends_as_a_failure_not_running_forever() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        scheduler.entry_mut("a").running = true;
        scheduler
            .renewals
            .spawn("a", async { panic!("a bug in a renewal") });

        let (name, done) = scheduler.renewals.join_next().await.unwrap();
        scheduler.renewal_ended(name, done).await;

        let entry = &scheduler.entries["a"];
        assert!(!entry.running, "free to be renewed again");
        let retry = entry.plan.as_ref().unwrap().at.time();
        assert!(retry > scheduler.clock.now(), "retried after a backoff");
        let state = scheduler.state.lock().await;
        let a = &state.certificates["a"];
        assert_eq!(a.failures, 1);
        assert!(
            a.last_result
                .as_deref()
                .unwrap()
                .contains("a bug in a renewal"),
            "{a:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_that_finds_another_live_certificate_plans_for_that_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        let store = crate::store::Store::open(&dir.path().join("state")).unwrap();
        store
            .publish("a", &crate::store::tests::issued(&["a.example.com"]))
            .unwrap();
        scheduler.replan_all().await;
        assert!(scheduler.entries["a"].live);
        // Replaced behind the scheduler's back, and found by a poll, which
        // asks about what live/ holds.
        store
            .publish("a", &crate::store::tests::issued(&["a.example.com"]))
            .unwrap();
        let replaced = store.lineage("a").unwrap().unwrap().cert;
        let polled = Polled {
            live: Some((replaced.serial.clone(), replaced.not_before)),
            answer: Ok(crate::acme::RenewalInfo::Unsupported),
            on_crl: None,
        };
        scheduler.entry_mut("a").polling = true;
        scheduler.polled("a".to_owned(), polled).await;
        let state = scheduler.state.lock().await;
        assert!(state.certificates["a"].is_for(&replaced.serial));
        assert!(!scheduler.entries["a"].polling);
    }

    #[tokio::test]
    async fn a_poll_or_check_task_that_panics_is_retried_later() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        let entry = scheduler.entry_mut("a");
        entry.polling = true;
        entry.verifying = true;
        scheduler
            .polls
            .spawn("a", async { panic!("a bug in a poll") });
        scheduler
            .verifies
            .spawn("a", async { panic!("a bug in a check") });

        let (name, done) = scheduler.polls.join_next().await.unwrap();
        scheduler.poll_died(name, &done.unwrap_err()).await;
        let (name, done) = scheduler.verifies.join_next().await.unwrap();
        scheduler.verify_died(&name, &done.unwrap_err());

        let now = scheduler.clock.now();
        let entry = &scheduler.entries["a"];
        assert!(!entry.polling && !entry.verifying);
        assert_eq!(entry.ari_failures, 1);
        let state = scheduler.state.lock().await;
        assert!(
            state.certificates["a"].ari_poll_at.unwrap() > now,
            "poll backs off"
        );
        assert!(
            entry.verify_at.unwrap().time() > now,
            "check waits a check interval"
        );
    }
}
