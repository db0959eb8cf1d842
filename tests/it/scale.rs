//! Benchmarks at sizes Pebble 2.10 does not finish unaided: ignored by
//! default, run by hand (docs/benchmarks.md).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::{
    Daemon, Pebble, RewritingProxy, all_done, daemon_table, many_certificates, wait_until,
};

/// Long enough to issue and renew 10,000 certificates one new order at a time.
const PATIENCE: Duration = Duration::from_secs(3600);

/// `benches/run`'s parts (a) and (b) — renewd's forced mass renewal against
/// the ceiling client's (`benches/ceiling`) — at N = 10,000, where Pebble
/// 2.10 deadlocks in every attempt (docs/benchmarks.md). Here each client
/// gets a fresh Pebble behind [`RewritingProxy::one_new_order_at_a_time`],
/// which avoids the deadlock; both issue the N certificates first and are
/// timed renewing them, with as many orders in flight.
///
/// `RENEWD_SCALE_BENCH_N=10000 cargo test --release --features sim --test it
/// scale:: -- --ignored --nocapture` (`RENEWD_SCALE_BENCH_IN_FLIGHT`, default
/// 8).
#[test]
#[ignore = "a benchmark: minutes of CPU"]
fn mass_renewal_against_the_ceiling_client_one_new_order_at_a_time() {
    let n = env_or("RENEWD_SCALE_BENCH_N", 10_000);
    let in_flight = env_or("RENEWD_SCALE_BENCH_IN_FLIGHT", 8);
    let dir = tempfile::tempdir().unwrap();
    let ceiling = ceiling_rate(&dir.path().join("ceiling"), n, in_flight);
    let renewd = renewd_rate(&dir.path().join("renewd"), n, in_flight);
    println!(
        "scale bench ({n} certificates, {in_flight} in flight, one new order at a time): \
         ceiling client {ceiling:.1}/s; renewd {renewd:.1}/s ({:.2}x the ceiling)",
        renewd / ceiling
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh Pebble that validates without looking (as `benches/run`'s: the
/// ceiling client solves no challenge), behind the gate.
fn gated_pebble(dir: &Path) -> (Pebble, RewritingProxy) {
    std::fs::create_dir_all(dir).unwrap();
    let pebble = Pebble::start_with(
        &dir.join("pebble"),
        &[
            ("PEBBLE_PROFILES", "default"),
            ("PEBBLE_VA_ALWAYS_VALID", "1"),
        ],
    );
    let proxy = RewritingProxy::one_new_order_at_a_time(&pebble, dir);
    (pebble, proxy)
}

/// The ceiling client's renewals per second: it issues `n`, says so on
/// stdout, renews them when told on stdin and prints its figures.
fn ceiling_rate(dir: &Path, n: usize, in_flight: usize) -> f64 {
    let (_pebble, proxy) = gated_pebble(dir);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(repo.join("benches/ceiling/Cargo.toml"))
        .env("CARGO_TARGET_DIR", repo.join("target"))
        .status()
        .expect("build benches/ceiling");
    assert!(built.success(), "benches/ceiling did not build");
    let mut child = Command::new(repo.join("target/release/acme-ceiling"))
        .arg(proxy.dir_url())
        .arg(&proxy.trust)
        .args([n.to_string(), in_flight.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("ceiling.log")).unwrap())
        .spawn()
        .expect("run acme-ceiling");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        let line = lines.next().expect("a line from acme-ceiling").unwrap();
        serde_json::from_str(&line).expect("JSON from acme-ceiling")
    };
    let issued = next();
    assert_eq!(issued["issued"], n, "{issued}");
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    let renewed = next();
    drop(child.stdin.take());
    child.wait().unwrap();
    assert_eq!(renewed["failed"], 0, "{renewed}");
    renewed["certs_per_s"].as_f64().expect("certs_per_s")
}

/// renewd's renewals per second in a forced mass renewal (SIGUSR1) of `n`
/// certificates it issued first, timed until every one has a new serial.
fn renewd_rate(dir: &Path, n: usize, in_flight: usize) -> f64 {
    let (pebble, proxy) = gated_pebble(dir);
    let (names, certs) = many_certificates(n);
    let (state, socket) = (dir.join("state"), dir.join("control.sock"));
    let config = dir.join("renewd.toml");
    std::fs::write(
        &config,
        format!(
            "{}max_concurrent = {in_flight}\n\n{}\n[solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:{}\"\n\n{certs}",
            daemon_table(&state, &socket),
            proxy.ca_toml("pebble"),
            pebble.http01_port
        ),
    )
    .unwrap();
    let store = renewd::store::Store::open(&state).unwrap();
    let serial = |i: usize| {
        let lineage = store.lineage(&names[i]).ok().flatten();
        lineage.map(|l| l.cert.serial)
    };
    let daemon = Daemon::start_in(dir, &config, socket, "warn");
    wait_until(
        PATIENCE,
        "renewd's issuance",
        all_done(n, |i| serial(i).is_some()),
    );
    let before: Vec<Option<String>> = (0..n).map(serial).collect();
    let start = Instant::now();
    daemon.signal(Signal::SIGUSR1);
    let renewed = |i: usize| serial(i).is_some_and(|s| Some(&s) != before[i].as_ref());
    wait_until(PATIENCE, "renewd's mass renewal", all_done(n, renewed));
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let rate = n as f64 / start.elapsed().as_secs_f64();
    rate
}
