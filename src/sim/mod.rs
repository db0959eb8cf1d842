//! A seeded, deterministic simulation of the daemon under faults
//! (`docs/simulation.md`): the real scheduler — planning, ARI handling,
//! backoff, Retry-After, the mass-renewal guard, state records, deployment
//! batches — runs on tokio's paused time against a simulated CA, disk and host
//! (the scheduler's `World`), while invariants are
//! checked all the way. The same seed gives the same run, event for event.
//!
//! What is simulated stands in only for the network, the disk and time: the
//! order itself (key, CSR, solvers, X.509) is the CA model's, and is tested
//! end to end against Pebble instead.

mod ca;
mod checks;
mod driver;
mod faults;
mod model;
mod world;

use serde::Serialize;

pub use faults::{Fault, Faults};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeds every random choice, the daemon's and the simulation's.
    pub seed: u64,
    /// Certificates in the config at the start.
    pub certs: usize,
    /// Simulated days.
    pub days: u32,
    /// The faults to inject.
    pub faults: Faults,
    /// A certificate whose every event is printed.
    pub trace: Option<String>,
}

/// How a run went: the last line `scripts/simulate` prints, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Certificates at the start.
    pub certs: usize,
    /// Simulated days.
    pub days: u32,
    /// Certificates issued and published.
    pub renewals: u64,
    /// Orders placed at the CA.
    pub orders: u64,
    /// ARI polls answered or refused by the CA.
    pub ari_polls: u64,
    /// Times the daemon was killed and restarted.
    pub crashes: u64,
    /// Invariant violations seen.
    pub violations: u64,
    /// The first of them.
    pub first_violation: Option<String>,
    /// Wall-clock seconds the run took.
    pub wall_seconds: f64,
}

impl Report {
    /// Whether no invariant was violated.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations == 0
    }
}

/// Runs one simulation to its end. Events of `options.trace` and the first
/// violation (with the certificate's recent events) go to stderr.
///
/// # Panics
///
/// When the runtime cannot be built.
#[must_use]
pub fn run(options: &Options) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(driver::simulate(options))
}
