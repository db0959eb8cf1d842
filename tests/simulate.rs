//! The deterministic simulation's CI set (`docs/simulation.md`): fixed
//! seeds at 1,000 certificates over 90 days with every fault, each of which
//! must keep every invariant; and the same seed must replay the same run.
//! Longer sweeps: `scripts/simulate --seeds K`.

use renewd::sim::{self, Faults, Options, Report};

fn run(seed: u64, certs: usize, days: u32) -> Report {
    sim::run(&Options {
        seed,
        certs,
        days,
        faults: Faults::all(),
        trace: None,
    })
}

/// Seeds that once found a bug stay here, with what it was.
const SEEDS: [u64; 3] = [1, 2, 3];

#[test]
fn fixed_seeds_keep_every_invariant() {
    for seed in SEEDS {
        let report = run(seed, 1000, 90);
        println!("{}", serde_json::to_string(&report).unwrap());
        assert!(report.passed(), "seed {seed}: {:?}", report.first_violation);
        assert!(report.renewals >= 1000, "{report:?}");
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    let (a, b) = (run(11, 200, 30), run(11, 200, 30));
    let key = |r: &Report| (r.renewals, r.orders, r.ari_polls, r.crashes, r.violations);
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&run(12, 200, 30)), "another seed, another run");
}
