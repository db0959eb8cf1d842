//! The run: the fleet's config, the faults planned from the seed, and the
//! daemon — started, signalled, killed and restarted from what is on disk —
//! with the invariants checked every simulated hour.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::sync::{Mutex as AsyncMutex, mpsc};
use tokio::task::JoinHandle;

use super::ca::{Downtime, SHORT_LIVED};
use super::faults::{Fault, Faults};
use super::model::Sim;
use super::world::{Shared, SimWorld, lock};
use super::{Options, Report};
use crate::clock::Clock;
use crate::config::Config;
use crate::daemon::Event;
use crate::daemon::scheduler::Scheduler;
use crate::state::State;

/// Where simulated time starts.
const EPOCH: OffsetDateTime = datetime!(2027-01-01 00:00 UTC);
/// How long a killed daemon stays down (systemd's `RestartSec=`).
const RESTART_DELAY: Duration = Duration::seconds(10);

/// Something the driver does at a planned time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Check,
    Crash,
    Sighup,
    Usr1Storm,
    Revoke,
    WindowChange,
}

pub(super) async fn simulate(options: &Options) -> Report {
    let wall = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut fleet = Fleet::new(options.seed, options.certs);
    let clock = Clock::following_tokio(EPOCH);
    let start = tokio::time::Instant::now();
    let end = EPOCH + Duration::days(i64::from(options.days));
    let sim: Shared = Arc::new(Mutex::new(Sim::new(
        clock.clone(),
        StdRng::seed_from_u64(rng.random()),
        options.faults,
        Arc::new(fleet.config()),
        options.trace.clone(),
    )));
    lock(&sim).ca.downtimes = downtimes(&mut rng, options.faults, end);
    let plan = plan(&mut rng, options.faults, end);

    let mut daemon = Daemon::start(&sim, &clock, &mut rng);
    for (at, what) in plan {
        tokio::time::sleep_until(start + std_duration(at - EPOCH)).await;
        match what {
            What::Check => lock(&sim).check_hourly(),
            What::Crash => {
                daemon.kill().await;
                lock(&sim).counts.crashes += 1;
                tokio::time::sleep(std_duration(RESTART_DELAY)).await;
                lock(&sim).restarts.push(clock.now());
                daemon = Daemon::start(&sim, &clock, &mut rng);
            }
            What::Sighup => {
                fleet.change(&mut rng);
                lock(&sim).config = Arc::new(fleet.config());
                daemon.send(Event::Reload(None)).await;
            }
            What::Usr1Storm => {
                lock(&sim).storms.push(clock.now());
                for _ in 0..rng.random_range(2..=5) {
                    daemon.send(Event::RenewAll).await;
                    let pause = rng.random_range(0.0..3.0);
                    tokio::time::sleep(std::time::Duration::from_secs_f64(pause)).await;
                }
            }
            What::Revoke => revoke(&sim, &mut rng),
            What::WindowChange => change_windows(&sim, &mut rng),
        }
    }
    daemon.kill().await;
    let mut s = lock(&sim);
    s.load_state(); // Invariant 7, once more at the end.
    s.check_at_end();
    Report {
        seed: options.seed,
        certs: options.certs,
        days: options.days,
        renewals: s.counts.renewals,
        orders: s.counts.orders,
        ari_polls: s.counts.ari_polls,
        crashes: s.counts.crashes,
        violations: s.violations,
        first_violation: s.first_violation.clone(),
        wall_seconds: wall.elapsed().as_secs_f64(),
    }
}

/// A running daemon process.
struct Daemon {
    events: mpsc::Sender<Event>,
    task: JoinHandle<()>,
}

impl Daemon {
    /// Starts one from what is on disk, as systemd would.
    fn start(sim: &Shared, clock: &Clock, rng: &mut StdRng) -> Self {
        let state = lock(sim).load_state();
        let world = Arc::new(SimWorld::new(sim));
        let scheduler = Scheduler::with_clock(
            world,
            Arc::new(AsyncMutex::new(state)),
            clock.clone(),
            StdRng::seed_from_u64(rng.random()),
        );
        let (events, rx) = mpsc::channel(64);
        let task = tokio::spawn(scheduler.run(rx));
        Self { events, task }
    }

    async fn send(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    /// `kill -9`: whatever it was doing stops where it is.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl Sim {
    /// The state on disk, as a starting daemon loads it (empty when it does
    /// not load, which violates invariant 7).
    fn load_state(&mut self) -> State {
        self.disk.state.load().unwrap_or_else(|e| {
            self.violated(7, "-", &format!("the state on disk does not load: {e}"));
            State::default()
        })
    }
}

fn std_duration(d: Duration) -> std::time::Duration {
    std::time::Duration::try_from(d).unwrap_or_default()
}

/// An exponentially distributed wait with mean `mean`.
fn exponential(rng: &mut StdRng, mean: Duration) -> Duration {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    mean * -u.ln()
}

/// Log-uniform between `low` and `high`.
fn log_uniform(rng: &mut StdRng, low: Duration, high: Duration) -> Duration {
    let (a, b) = (low.as_seconds_f64().ln(), high.as_seconds_f64().ln());
    Duration::seconds_f64(rng.random_range(a..b).exp())
}

/// When the CA is unreachable (minutes to days) or busy (503 with
/// `Retry-After`), planned up front.
fn downtimes(rng: &mut StdRng, faults: Faults, end: OffsetDateTime) -> Vec<Downtime> {
    let mut all = Vec::new();
    for (fault, mean, shortest, longest) in [
        (
            Fault::Outage,
            Duration::days(20),
            Duration::minutes(5),
            Duration::days(3),
        ),
        (
            Fault::Busy,
            Duration::days(10),
            Duration::minutes(2),
            Duration::hours(6),
        ),
    ] {
        if !faults.has(fault) {
            continue;
        }
        let mut at = EPOCH + exponential(rng, mean);
        while at < end {
            let length = log_uniform(rng, shortest, longest);
            let retry_after =
                (fault == Fault::Busy).then(|| Duration::minutes(rng.random_range(1..30)));
            all.push(Downtime {
                start: at,
                end: at + length,
                retry_after,
            });
            at += length + exponential(rng, mean);
        }
    }
    all.sort_by_key(|d| d.start);
    all
}

/// The driver's plan: hourly checks and the host-side faults, in time order.
fn plan(rng: &mut StdRng, faults: Faults, end: OffsetDateTime) -> Vec<(OffsetDateTime, What)> {
    let mut plan = Vec::new();
    let mut at = EPOCH + Duration::HOUR;
    while at <= end {
        plan.push((at, What::Check));
        at += Duration::HOUR;
    }
    for (fault, what, mean) in [
        (Fault::Crash, What::Crash, Duration::days(12)),
        (Fault::Sighup, What::Sighup, Duration::days(30)),
        (Fault::Revocation, What::Revoke, Duration::days(45)),
        (Fault::WindowChange, What::WindowChange, Duration::days(20)),
    ] {
        if !faults.has(fault) {
            continue;
        }
        let mut at = EPOCH + exponential(rng, mean);
        while at < end {
            plan.push((at, what));
            at += exponential(rng, mean);
        }
    }
    if faults.has(Fault::Usr1Storm) {
        // Weeks apart, so that invariant 5 can tell one mass renewal from the next.
        let mut at = EPOCH + Duration::days(3) + exponential(rng, Duration::days(40));
        while at < end {
            plan.push((at, What::Usr1Storm));
            at += Duration::days(14) + exponential(rng, Duration::days(40));
        }
    }
    plan.sort();
    plan
}

/// The CA revokes 1 % to 100 % of the live certificates at once, with or
/// without keyCompromise.
fn revoke(sim: &Shared, rng: &mut StdRng) {
    let mut s = lock(sim);
    let names: Vec<String> = s.disk.live.keys().cloned().collect();
    let share = if rng.random_bool(0.1) {
        1.0
    } else {
        log_uniform(rng, Duration::seconds(1), Duration::seconds(100)).as_seconds_f64() / 100.0
    };
    let chosen: Vec<String> = names
        .into_iter()
        .filter(|_| rng.random_bool(share.clamp(0.0, 1.0)))
        .collect();
    let key_compromise = rng.random_bool(0.5);
    s.revoke(&chosen, key_compromise);
}

/// The CA moves the windows of a tenth of the live certificates by up to ten
/// days either way.
fn change_windows(sim: &Shared, rng: &mut StdRng) {
    let mut s = lock(sim);
    let now = s.now();
    let live: Vec<(String, String)> = s
        .disk
        .live
        .iter()
        .map(|(name, l)| (name.clone(), l.serial.clone()))
        .collect();
    for (name, serial) in live {
        if rng.random_bool(0.1) {
            let by = Duration::hours(rng.random_range(-240..240));
            s.ca.move_window(&serial, by, now);
            s.event(&name, format!("CA moved the ARI window by {by}"));
        }
    }
}

/// The certificates in the config, which SIGHUPs change.
struct Fleet {
    seed: u64,
    members: BTreeSet<usize>,
    next: usize,
    /// Certificates given one more name.
    grown: BTreeSet<usize>,
}

impl Fleet {
    fn new(seed: u64, certs: usize) -> Self {
        Self {
            seed,
            members: (0..certs).collect(),
            next: certs,
            grown: BTreeSet::new(),
        }
    }

    /// One percent removed, one percent added, half a percent renamed.
    fn change(&mut self, rng: &mut StdRng) {
        let count = (self.members.len() / 100).max(1);
        for _ in 0..count {
            if let Some(gone) = self.pick(rng) {
                self.members.remove(&gone);
            }
            self.members.insert(self.next);
            self.next += 1;
        }
        for _ in 0..count.div_ceil(2) {
            if let Some(grown) = self.pick(rng) {
                self.grown.insert(grown);
            }
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Option<usize> {
        let index = rng.random_range(0..self.members.len().max(1));
        self.members.iter().nth(index).copied()
    }

    /// The config file: parsed and checked by renewd's own config code.
    fn config(&self) -> Config {
        let mut text = String::from(
            "[daemon]\nstate_dir = \"/var/lib/renewd\"\nmax_concurrent = 8\n\n\
             [ca.sim]\ndirectory = \"https://ca.sim.invalid/directory\"\n\n\
             [solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:80\"\n",
        );
        for i in &self.members {
            self.certificate(*i, &mut text);
        }
        Config::from_str(&text, std::path::Path::new("/etc/renewd/renewd.toml"))
            .expect("the simulated config is valid")
    }

    /// Certificate `i`'s table: the same for the same seed and `i`.
    fn certificate(&self, i: usize, text: &mut String) {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let name = format!("c{i:06}");
        text.push_str(&format!("\n[[certificate]]\nname = \"{name}\"\n"));
        let mut domains = format!("\"{name}.sim.example\"");
        if self.grown.contains(&i) {
            domains.push_str(&format!(", \"www.{name}.sim.example\""));
        }
        text.push_str(&format!("domains = [{domains}]\n"));
        if rng.random_bool(0.2) {
            text.push_str(&format!("profile = \"{SHORT_LIVED}\"\n"));
        }
        if rng.random_bool(0.3) {
            text.push_str("reuse_key = true\n");
        }
        if rng.random_bool(0.7) {
            let unit = rng.random_range(0..10);
            text.push_str(&format!("reload = [{{ unit = \"web{unit}.service\" }}]\n"));
        }
        if rng.random_bool(0.3) {
            text.push_str("verify = [\"127.0.0.1:443\"]\n");
        }
    }
}
