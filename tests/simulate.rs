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

/// One fixed seed at the CI size: every invariant kept.
fn keeps_every_invariant(seed: u64) {
    let report = run(seed, 1000, 90);
    println!("{}", serde_json::to_string(&report).unwrap());
    assert!(report.passed(), "seed {seed}: {:?}", report.first_violation);
    assert!(report.renewals >= 1000, "{report:?}");
}

#[test]
fn seed_1_keeps_every_invariant() {
    keeps_every_invariant(1);
}

#[test]
fn seed_2_keeps_every_invariant() {
    keeps_every_invariant(2);
}

/// Found a certificate revoked for keyCompromise renewed with the same key
/// before a poll showed the revocation (the CA now refuses it: badCSR, and
/// renewd takes a new key).
#[test]
fn seed_3_keeps_every_invariant() {
    keeps_every_invariant(3);
}

#[test]
fn a_seed_replays_the_same_run() {
    let (a, b) = (run(11, 200, 30), run(11, 200, 30));
    let key = |r: &Report| (r.renewals, r.orders, r.ari_polls, r.crashes, r.violations);
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&run(12, 200, 30)), "another seed, another run");
}
