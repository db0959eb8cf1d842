//! `renewd-sim`: the deterministic simulation of the daemon
//! (`docs/simulation.md`), run by `scripts/simulate`.

use std::process::ExitCode;

use clap::Parser;
use renewd::sim::{self, Faults, Options};

/// Runs renewd's scheduler against a simulated CA, disk and host on a
/// simulated clock, checking its invariants; prints one JSON object per run
/// as the last line, and exits 0 only when no invariant was violated.
#[derive(Debug, Parser)]
#[command(name = "renewd-sim", version)]
struct Args {
    /// Seed of every random choice: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Certificates in the config at the start.
    #[arg(long, default_value_t = 1000)]
    certs: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Faults to inject: all, none, or a comma-separated list of outage, busy,
    /// rate-limit, bad-nonce, validation, no-replaces, revocation,
    /// window-change, crash, sighup, usr1-storm, reload, verify.
    #[arg(long, default_value = "all")]
    faults: Faults,
    /// Print every event of this certificate (c000042, ...).
    #[arg(long)]
    trace: Option<String>,
    /// Run this many seeds, from --seed on, one JSON line each, then a summary.
    #[arg(long)]
    seeds: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = |seed| Options {
        seed,
        certs: args.certs,
        days: args.days,
        faults: args.faults,
        trace: args.trace.clone(),
    };
    let Some(count) = args.seeds else {
        let report = sim::run(&options(args.seed));
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return exit(report.passed());
    };
    let mut failed = Vec::new();
    for seed in args.seed..args.seed + count {
        let report = sim::run(&options(seed));
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        if !report.passed() {
            failed.push(seed);
        }
    }
    let summary = serde_json::json!({ "seeds": count, "failed": failed });
    println!("{summary}");
    exit(failed.is_empty())
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
