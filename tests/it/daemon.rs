//! `renewd run` against a real Pebble: ARI-driven renewal of revoked certificates,
//! SIGUSR1 mass renewal, SIGHUP, crashes, flaky and unreachable CAs.

use std::borrow::Cow;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use renewd::store::CertInfo;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fixture::{Daemon, Env, http_get, many_certificates, versions, wait_until};

const MINUTE: Duration = Duration::from_secs(60);

fn all_at(env: &Env, names: &[String], version: u32) -> bool {
    versions(env, names).iter().all(|v| *v >= version)
}

/// `in_flight=N` values of the daemon's "order started" lines in `log`.
fn in_flight(log: &str) -> Vec<usize> {
    in_flight_of(log, "order started")
}

/// `in_flight=N` values of the lines of `log` that contain `what`.
fn in_flight_of(log: &str, what: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            l.split("in_flight=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Asks Pebble for a new order replacing `old` and returns its error type, if any:
/// Pebble answers `alreadyReplaced` once another order replacing it was finalized.
fn replacement_error(env: &Env, old: &CertInfo) -> Option<String> {
    let config =
        renewd::config::Config::load(&renewd::config::Location::new(env.config_path(), None))
            .unwrap();
    let store = env.store();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cas = renewd::acme::Cas::new(config.cas, store, renewd::metrics::Metrics::new());
        let account = cas.account("pebble").await.unwrap();
        let (aki, serial) = old.ari_id.as_deref().unwrap().split_once('.').unwrap();
        let id = instant_acme::CertificateIdentifier {
            authority_key_identifier: Cow::Owned(aki.to_owned()),
            serial: Cow::Owned(serial.to_owned()),
        };
        let identifiers = [instant_acme::Identifier::Dns(old.domains[0].clone())];
        match account
            .new_order(&instant_acme::NewOrder::new(&identifiers).replaces(id))
            .await
        {
            Ok(_) => None,
            Err(instant_acme::Error::Api(p)) => p.r#type,
            Err(e) => Some(e.to_string()),
        }
    })
}

/// Revokes `name`'s live certificate with renewd's account through the library,
/// as the CA (or another client) would, without telling the daemon.
fn revoke_behind_renewds_back(env: &Env, name: &str) {
    let config =
        renewd::config::Config::load(&renewd::config::Location::new(env.config_path(), None))
            .unwrap();
    let store = env.store();
    let der = store.lineage(name).unwrap().unwrap().cert.der;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cas = renewd::acme::Cas::new(config.cas, store, renewd::metrics::Metrics::new());
        let reason = Some(instant_acme::RevocationReason::KeyCompromise);
        cas.revoke("pebble", &der, reason).await.unwrap();
    });
}

#[test]
fn renewd_revoke_replaces_at_once_with_a_new_key() {
    let env = Env::new();
    let cert = "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nreuse_key = true\n";
    env.write_config_with("check_interval = \"1h\"", cert);
    let key = |env: &Env| env.store().lineage("a").unwrap().unwrap().cert.spki_der;

    // With a daemon: it revokes, and replaces at once (no ARI poll for an hour).
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "a issued", || all_at(&env, &["a".to_owned()], 1));
    let first = key(&env);
    let run = env.renewd(&["revoke", "a", "--reason", "keyCompromise"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("a: revoked serial "), "{run:?}");
    wait_until(MINUTE, "a replaced", || all_at(&env, &["a".to_owned()], 2));
    let second = key(&env);
    assert_ne!(
        second, first,
        "reuse_key, yet a new key after keyCompromise"
    );
    drop(daemon);

    // Without one: in-process, with the deployment.
    let run = env.renewd(&["revoke", "a"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("a: renewed: version 3"), "{run:?}");
    assert_ne!(key(&env), second, "a new key after any revocation");
    let status = env.renewd(&["status", "--json"]);
    assert_eq!(status.code, 0, "healthy again: {status:?}");
}

#[test]
fn revoked_certificates_are_found_through_ari_and_only_they_are_renewed() {
    let env = Env::new();
    let (names, certs) = many_certificates(20);
    env.write_config_with("check_interval = \"2s\"\nmax_concurrent = 8", &certs);
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "20 certificates issued", || all_at(&env, &names, 1));

    let (revoked, kept) = names.split_at(10);
    for name in revoked {
        revoke_behind_renewds_back(&env, name);
    }
    // No signal: the daemon must notice through ARI within a few check intervals.
    wait_until(MINUTE, "revoked certificates renewed", || {
        all_at(&env, revoked, 2)
    });
    // Each replacement's window polled and saved: had the daemon taken a
    // replacement for revoked too, its order would have started by then.
    wait_until(MINUTE, "the replacements polled", || {
        let store = env.store();
        let state = state_json(&env).unwrap_or_default();
        revoked.iter().all(|n| {
            let live = store.lineage(n).ok().flatten().map(|l| l.cert.serial);
            let cs = &state["certificates"][n];
            live.as_deref() == cs["serial"].as_str() && cs["ari_window"].is_object()
        })
    });
    assert_eq!(
        in_flight(&daemon.log_text()).len(),
        30,
        "20 first orders, one more for each revoked certificate"
    );
    assert_eq!(versions(&env, revoked), vec![2; 10], "renewed exactly once");
    assert_eq!(
        versions(&env, kept),
        vec![1; 10],
        "unrevoked certificates left alone"
    );
    let log = daemon.log_text();
    assert_eq!(
        log.matches("renewd_event=\"revoked-detected\"").count(),
        10,
        "{log}"
    );

    let status = daemon.control(r#"{"cmd":"status"}"#);
    let certs = status[0]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 20);
    for c in certs {
        assert_eq!(c["revoked"], false, "{c}");
        assert_eq!(c["healthy"], true, "{c}");
        assert!(
            c["ari_window"]["start"].is_string(),
            "ARI window known: {c}"
        );
    }
}

#[test]
fn sigusr1_renews_everything_once_with_bounded_concurrency_and_replaces() {
    let env = Env::new();
    let (names, certs) = many_certificates(20);
    let metrics_port = crate::fixture::free_port();
    env.write_config_with(
        &format!("max_concurrent = 4\nmetrics_listen = \"127.0.0.1:{metrics_port}\""),
        &certs,
    );
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "20 certificates issued", || all_at(&env, &names, 1));
    let old: Vec<CertInfo> = {
        let store = env.store();
        names
            .iter()
            .map(|n| store.lineage(n).unwrap().unwrap().cert)
            .collect()
    };
    let before = daemon.log_text().len();

    // An operator who presses twice must not get two mass renewals.
    daemon.signal(Signal::SIGUSR1);
    daemon.signal(Signal::SIGUSR1);
    wait_until(MINUTE, "all certificates renewed", || {
        all_at(&env, &names, 2)
    });
    // The batch ends once each of its certificates has: a renewal the second
    // signal started would have started before that.
    wait_until(MINUTE, "the mass renewal ends", || {
        daemon.log_text()[before..].contains("mass renewal ended")
    });
    assert_eq!(
        versions(&env, &names),
        vec![2; 20],
        "each renewed exactly once"
    );

    let log = daemon.log_text()[before..].to_owned();
    let flights = in_flight(&log);
    assert_eq!(flights.len(), 20, "{log}");
    assert!(
        flights.iter().all(|n| (1..=4).contains(n)),
        "max_concurrent exceeded: {flights:?}"
    );
    assert!(
        flights.contains(&4),
        "renewals ran in parallel: {flights:?}"
    );
    let metrics = http_get(metrics_port, "/metrics");
    for line in [
        "renewd_renewals_total{name=\"c7\",result=\"success\"} 2",
        "renewd_certificate_healthy{name=\"c7\"} 1",
        "renewd_certificate_revoked{name=\"c7\"} 0",
        "renewd_certificate_not_after_seconds{name=\"c7\"} ",
        "renewd_certificate_next_renewal_seconds{name=\"c7\"} ",
        "renewd_acme_requests_total{ca=\"pebble\",result=\"success\"} ",
        "process_resident_memory_bytes ",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    // Each new order named the certificate it replaces; Pebble then refuses a
    // second replacement of the same certificate.
    for cert in old.iter().take(3) {
        let error = replacement_error(&env, cert);
        assert_eq!(
            error.as_deref(),
            Some("urn:ietf:params:acme:error:alreadyReplaced"),
            "{}",
            cert.serial
        );
    }
}

#[test]
fn a_second_trigger_during_a_mass_renewal_renews_nothing_twice() {
    // Pebble's validator waits 0-2 s before each validation, so the batch (20
    // certificates, 2 at a time) lasts well past the second trigger even on a
    // busy machine.
    let env = Env::with_pebble_env(&[("PEBBLE_VA_NOSLEEP", "0"), ("PEBBLE_VA_SLEEPTIME", "3")]);
    let (names, certs) = many_certificates(20);
    env.write_config_with("max_concurrent = 2", &certs);
    let daemon = Daemon::start(&env);
    wait_until(2 * MINUTE, "20 certificates issued", || {
        all_at(&env, &names, 1)
    });
    let before = daemon.log_text().len();

    daemon.signal(Signal::SIGUSR1);
    wait_until(MINUTE, "5 certificates renewed", || {
        versions(&env, &names).iter().filter(|v| **v == 2).count() >= 5
    });
    assert!(
        !daemon.log_text()[before..].contains("mass renewal ended"),
        "the batch ended before the second trigger: the test proves nothing"
    );
    // Both triggers again while the batch runs: from a signal and from the socket.
    daemon.signal(Signal::SIGUSR1);
    let run = env.renewd(&["renew", "--all", "--force", "--no-wait"]);
    assert_eq!(run.code, 0, "{run:?}");
    // The batch ends once each of its certificates has; a renewal the second
    // trigger started would have started before that.
    wait_until(2 * MINUTE, "the mass renewal ends", || {
        daemon.log_text()[before..].contains("mass renewal ended")
    });
    let log = daemon.log_text()[before..].to_owned();
    assert_eq!(
        in_flight(&log).len(),
        20,
        "one order per certificate:\n{log}"
    );
    assert_eq!(versions(&env, &names), vec![2; 20], "one new version each");
}

/// Per certificate of `names`: the renewal time state.json remembers, where it
/// lies in the ARI window it was drawn in (0 = start, 1 = end), and the next
/// ARI poll; `None` until every one has a time drawn in a window.
fn ari_times(env: &Env, names: &[String]) -> Option<Vec<(String, f64, OffsetDateTime)>> {
    let state = state_json(env)?;
    let time = |v: &serde_json::Value| OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok();
    names
        .iter()
        .map(|name| {
            let cs = &state["certificates"][name];
            let window = &cs["next_renewal_for"];
            let (start, end) = (time(&window["start"])?, time(&window["end"])?);
            let at = time(&cs["next_renewal"])?;
            let fraction = (at - start) / (end - start);
            Some((
                cs["next_renewal"].as_str()?.to_owned(),
                fraction,
                time(&cs["ari_poll_at"])?,
            ))
        })
        .collect()
}

#[test]
fn ari_times_are_spread_over_the_window_and_kept_across_restarts() {
    let env = Env::new();
    let (names, certs) = many_certificates(30);
    env.write_config_with("check_interval = \"2s\"", &certs);
    let mut daemon = Daemon::start(&env);
    wait_until(MINUTE, "30 certificates issued", || all_at(&env, &names, 1));
    wait_until(MINUTE, "a time in the ARI window of each", || {
        ari_times(&env, &names).is_some()
    });
    let before = ari_times(&env, &names).unwrap();
    // Issued together, they share (nearly) one window; drawn uniformly, 30
    // times cover most of it (each bound misses with probability 0.7^30, 2e-5).
    let fractions: Vec<f64> = before.iter().map(|(_, f, _)| *f).collect();
    assert!(
        fractions.iter().all(|f| (0.0..=1.0).contains(f)),
        "{fractions:?}"
    );
    let (low, high) = fractions
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), f| (lo.min(*f), hi.max(*f)));
    assert!(
        low < 0.3 && high > 0.7,
        "not spread over the window: {fractions:?}"
    );

    assert_eq!(daemon.stop(), Some(0));
    // A poll that finds the same window writes nothing: the polls are seen
    // in the log.
    let daemon = Daemon::start_logging(&env, "info,renewd::daemon::scheduler::ari=debug");
    wait_until(MINUTE, "every certificate polled again", || {
        let log = daemon.log_text();
        names
            .iter()
            .all(|name| log.contains(&format!("ARI poll cert_name={name} ")))
    });
    // Its answer handled too (the polls end before the next ones start).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let after = ari_times(&env, &names).unwrap();
    let times = |t: &[(String, f64, OffsetDateTime)]| -> Vec<String> {
        t.iter().map(|(at, _, _)| at.clone()).collect()
    };
    assert_eq!(
        times(&after),
        times(&before),
        "a restart re-rolled renewal times"
    );
}

#[test]
fn sigterm_starts_no_new_order_and_a_forced_renewal_finishes_after_restart() {
    // Pebble's validator waits 0-2 s per validation: the forced renewals (one at
    // a time) are still queued when SIGTERM arrives, even on a busy machine.
    let env = Env::with_pebble_env(&[("PEBBLE_VA_NOSLEEP", "0"), ("PEBBLE_VA_SLEEPTIME", "3")]);
    let (names, certs) = many_certificates(8);
    env.write_config_with("max_concurrent = 1", &certs);
    let mut daemon = Daemon::start(&env);
    wait_until(2 * MINUTE, "8 certificates issued", || {
        all_at(&env, &names, 1)
    });
    let before = daemon.log_text().len();

    daemon.signal(Signal::SIGUSR1);
    wait_until(MINUTE, "the first forced order", || {
        daemon.log_text()[before..].contains("order started")
    });
    assert_eq!(daemon.stop(), Some(0), "graceful stop");
    let log = daemon.log_text()[before..].to_owned();
    let stopping = log.find("stopping").expect("a stopping line");
    assert!(
        !log[stopping..].contains("order started"),
        "an order started after SIGTERM:\n{log}"
    );
    let renewed = versions(&env, &names).iter().filter(|v| **v == 2).count();
    assert!(renewed < names.len(), "all renewed before the stop: {log}");

    // The forced renewal of the others was recorded: a restart finishes it.
    let _daemon = Daemon::start(&env);
    wait_until(2 * MINUTE, "the rest renewed after restart", || {
        all_at(&env, &names, 2)
    });
    assert_eq!(versions(&env, &names), vec![2; 8]);
}

#[test]
fn a_deployment_cut_short_by_a_crash_is_finished_after_restart() {
    let env = Env::new();
    let marks = env.dir.path().join("hook-runs");
    env.write_config(&format!(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n\
         reload = [{{ exec = [\"sh\", \"-c\", \"echo run >> {}; sleep 4\"] }}]\n",
        marks.display()
    ));
    let runs = || {
        std::fs::read_to_string(&marks)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let mut daemon = Daemon::start(&env);
    wait_until(MINUTE, "the reload hook running", || runs() == 1);
    daemon.kill9();
    assert_eq!(versions(&env, &["a".to_owned()]), vec![1]);

    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "the deployment finished", || {
        daemon.log_text().contains("renewd_event=\"reloaded\"")
    });
    assert_eq!(runs(), 2, "the hook ran again, once");
    assert!(
        daemon
            .log_text()
            .contains("deploying what the last run left pending"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(versions(&env, &["a".to_owned()]), vec![1], "no new renewal");
    wait_until(MINUTE, "the state saved", || {
        let status = env.renewd(&["status", "--json"]);
        status.code == 0
    });
}

#[test]
fn a_config_reload_keeps_the_listener_of_a_renewal_in_flight() {
    // Pebble's validator waits up to 3 s before each validation, so a renewal
    // holds the http-01 port for a while.
    let env = Env::with_pebble_env(&[("PEBBLE_VA_NOSLEEP", "0"), ("PEBBLE_VA_SLEEPTIME", "3")]);
    let a = "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n";
    env.write_config(a);
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "a issued", || all_at(&env, &["a".to_owned()], 1));

    let run = env.renewd(&["renew", "--force", "--no-wait", "a"]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_until(MINUTE, "a's order started", || {
        daemon.log_text().matches("order started").count() == 2
    });
    env.write_config(&format!(
        "{a}\n[[certificate]]\nname = \"b\"\ndomains = [\"b.example.com\"]\n"
    ));
    daemon.signal(Signal::SIGHUP);
    let names = ["a".to_owned(), "b".to_owned()];
    wait_until(MINUTE, "a renewed and b issued", || {
        versions(&env, &names) == [2, 1]
    });
    let log = daemon.log_text();
    assert!(log.contains("config reloaded"), "{log}");
    assert!(!log.contains("renewal failed"), "{log}");
}

#[test]
fn ari_polls_that_come_due_together_are_bounded_in_flight() {
    let env = Env::new();
    let (names, certs) = many_certificates(150);
    env.write_config_with("check_interval = \"2s\"\nmax_concurrent = 3", &certs);
    let mut daemon = Daemon::start(&env);
    wait_until(2 * MINUTE, "150 certificates issued", || {
        all_at(&env, &names, 1)
    });
    assert_eq!(daemon.stop(), Some(0));
    // Stopped for longer than check_interval: every poll is overdue at start.
    std::thread::sleep(Duration::from_secs(3));
    let daemon = Daemon::start_logging(&env, "renewd=debug");
    let polls = |log: &str| in_flight_of(log, "ARI poll");
    wait_until(MINUTE, "every certificate polled", || {
        polls(&daemon.log_text()).len() >= 150
    });
    let flights = polls(&daemon.log_text());
    assert!(
        flights.iter().all(|n| (1..=3).contains(n)),
        "more than 3 in flight: {flights:?}"
    );
    assert!(flights.contains(&3), "polls ran in parallel: {flights:?}");
}

#[test]
fn a_certificate_dropped_into_renewd_d_is_issued_after_sighup() {
    let env = Env::new();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "a issued", || all_at(&env, &["a".to_owned()], 1));

    let drop_ins = env.dir.path().join("renewd.d");
    std::fs::create_dir(&drop_ins).unwrap();
    std::fs::write(
        drop_ins.join("50-b.toml"),
        "[[certificate]]\nname = \"b\"\ndomains = [\"b.example.com\"]\n",
    )
    .unwrap();
    let check = env.renewd(&["check-config"]);
    assert!(check.stdout.contains("2 certificate(s)"), "{check:?}");
    daemon.signal(Signal::SIGHUP);
    wait_until(MINUTE, "b issued", || all_at(&env, &["b".to_owned()], 1));
    let status = daemon.control(r#"{"cmd":"status"}"#);
    assert_eq!(
        status[0]["certificates"].as_array().unwrap().len(),
        2,
        "{status:?}"
    );

    // The same name in a second drop-in: the reload is refused naming both.
    std::fs::write(
        drop_ins.join("60-b-again.toml"),
        "[[certificate]]\nname = \"b\"\ndomains = [\"c.example.com\"]\n",
    )
    .unwrap();
    let reply = daemon.control(r#"{"cmd":"reload-config"}"#);
    let error = reply[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("60-b-again.toml line 1: certificate \"b\": already defined in")
            && error.contains("50-b.toml line 1"),
        "{reply:?}"
    );
}

#[test]
fn sighup_keeps_running_on_a_broken_config_and_applies_a_fixed_one() {
    let env = Env::new();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    let mut daemon = Daemon::start(&env);
    wait_until(MINUTE, "a issued", || all_at(&env, &["a".into()], 1));

    let good = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(env.config_path(), format!("{good}\n[daemon]\nbogus = 1\n")).unwrap();
    daemon.signal(Signal::SIGHUP);
    wait_until(MINUTE, "the reload error", || {
        daemon.log_text().contains("config reload failed")
    });
    assert!(daemon.is_running());
    let reply = daemon.control(r#"{"cmd":"reload-config"}"#);
    assert_eq!(reply[0]["ok"], false, "{reply:?}");
    assert!(
        reply[0]["error"].as_str().unwrap().contains("renewd.toml"),
        "{reply:?}"
    );
    let status = env.renewd(&["status"]);
    assert_eq!(status.code, 0, "still serving the old config: {status:?}");

    std::fs::write(
        env.config_path(),
        format!("{good}\n[[certificate]]\nname = \"b\"\ndomains = [\"b.example.com\"]\n"),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    wait_until(MINUTE, "b issued after reload", || {
        all_at(&env, &["b".into()], 1)
    });
    assert!(
        daemon
            .log_text()
            .contains("renewd_event=\"config-reloaded\" added=1")
    );
    assert_eq!(daemon.stop(), Some(0), "graceful stop");
}

#[test]
fn kill_9_during_a_mass_renewal_never_leaves_a_broken_pair_and_restart_finishes() {
    let env = Env::new();
    let (names, certs) = many_certificates(12);
    env.write_config_with("max_concurrent = 3", &certs);
    let mut daemon = Daemon::start(&env);
    wait_until(MINUTE, "12 certificates issued", || all_at(&env, &names, 1));

    daemon.signal(Signal::SIGUSR1);
    for delay_ms in [150, 400, 250, 600] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        daemon.kill9();
        let store = env.store();
        for name in &names {
            let lineage = store
                .lineage(name)
                .unwrap()
                .unwrap_or_else(|| panic!("{name} lost"));
            assert!(
                lineage.key_matches,
                "{name}: key does not match after kill -9"
            );
        }
        daemon = Daemon::start(&env);
    }
    // The forced renewal was persisted: the restarted daemon finishes it unasked.
    wait_until(MINUTE, "the interrupted mass renewal to finish", || {
        all_at(&env, &names, 2)
    });
    for name in &names {
        let archive = env.state_dir().join("archive").join(name);
        let stray: Vec<_> = std::fs::read_dir(&archive)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(stray.is_empty(), "{name}: leftovers {stray:?}");
    }
}

#[test]
fn renewals_survive_a_ca_that_rejects_half_the_nonces() {
    let env = Env::with_pebble_env(&[("PEBBLE_WFE_NONCEREJECT", "50")]);
    let (names, certs) = many_certificates(6);
    env.write_config(&certs);
    let daemon = Daemon::start(&env);
    wait_until(2 * MINUTE, "6 certificates issued", || {
        all_at(&env, &names, 1)
    });
    daemon.signal(Signal::SIGUSR1);
    wait_until(2 * MINUTE, "6 certificates renewed", || {
        all_at(&env, &names, 2)
    });
    let log = daemon.log_text();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("failed")).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn an_unreachable_ca_is_retried_with_backoff_and_renewal_resumes_when_it_returns() {
    let env = Env::new();
    let relay = crate::fixture::Relay::start(env.pebble.port(), false);
    // The CA is reached through the relay, which starts unplugged. The verify
    // target has nothing to check until there is a certificate.
    let verify_port = crate::fixture::free_port();
    let config = format!(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n\
         verify = [\"127.0.0.1:{verify_port}\"]\n"
    );
    env.write_config(&config);
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        &env.pebble.dir_url,
        &format!("https://127.0.0.1:{}/dir", relay.port),
    );
    std::fs::write(env.config_path(), text).unwrap();
    let daemon = Daemon::start(&env);

    wait_until(MINUTE, "the first failed attempt", || {
        daemon.log_text().contains("renewal failed")
    });
    // The retry is planned exactly: the first backoff is a minute, jittered
    // by at most half (the scheduler's paused-time tests prove it is kept).
    wait_until(MINUTE, "the failure in state.json", || {
        state_time(&env, "a", "retry_at").is_some()
    });
    let attempt = state_time(&env, "a", "last_attempt").unwrap();
    let retry = state_time(&env, "a", "retry_at").unwrap();
    let delay = (retry - attempt).whole_seconds();
    assert!((30..=90).contains(&delay), "first retry after {delay} s");
    // Waiting costs nothing: no busy loop while the CA is away.
    let cpu_before = daemon.cpu_seconds();
    std::thread::sleep(Duration::from_secs(10));
    let busy = daemon.cpu_seconds() - cpu_before;
    assert!(
        busy < 0.5,
        "{busy:.2} s of CPU in 10 s of waiting: a busy loop"
    );
    let status = daemon.control(r#"{"cmd":"status"}"#);
    let cert = &status[0]["certificates"][0];
    assert_eq!(cert["healthy"], false, "{cert}");
    assert!(
        cert["last_result"]
            .as_str()
            .unwrap()
            .starts_with("error: CA pebble:"),
        "{cert}"
    );
    assert_eq!(cert["failure"]["kind"], "ca-unreachable", "{cert}");

    relay.set_open(true);
    wait_until(2 * MINUTE, "the certificate once the CA is back", || {
        all_at(&env, &["a".into()], 1)
    });
    assert_eq!(
        daemon.log_text().matches("renewal failed").count(),
        1,
        "{}",
        daemon.log_text()
    );
}

/// A time field of certificate `name` in state.json.
fn state_time(env: &Env, name: &str, field: &str) -> Option<OffsetDateTime> {
    let state = state_json(env)?;
    OffsetDateTime::parse(state["certificates"][name][field].as_str()?, &Rfc3339).ok()
}

/// The state as it is on disk now, if it is there.
fn state_json(env: &Env) -> Option<serde_json::Value> {
    env.state()
}

/// A plain HTTP/1.0 GET on loopback; the response body.
#[test]
fn idle_control_clients_neither_block_status_nor_stay_forever() {
    let env = Env::new();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "a issued", || all_at(&env, &["a".to_owned()], 1));
    let socket = env.control_socket();
    let idle: Vec<UnixStream> = (0..500)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let started = std::time::Instant::now();
    let status = env.renewd(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "status took {:?}",
        started.elapsed()
    );

    // Past the limit of waiting clients, a new one is told so at once.
    let extra: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let mut reply = String::new();
    let mut last = extra.last().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    last.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("too many clients"), "{reply}");

    // An idle client is answered and dropped after the request timeout.
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reply = String::new();
    first.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("no request within 5 s"), "{reply}");
    drop((idle, extra, daemon));
}

#[test]
fn a_user_who_is_not_root_nor_in_control_group_is_refused_with_exit_4() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a command as nobody");
        return;
    }
    let env = Env::new();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    let daemon = Daemon::start(&env);
    // nobody may read the config (so the refusal is the socket's), not more.
    use std::os::unix::fs::PermissionsExt;
    let open = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    open(env.dir.path(), 0o755);
    open(&env.config_path(), 0o644);
    let run = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_renewd"))
        .arg("--config")
        .arg(env.config_path())
        .arg("status")
        .env_remove("RENEWD_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    // The daemon saw the peer (the socket lets anyone connect; SO_PEERCRED
    // decides) and says who was refused.
    let refused = |log: &str| {
        log.lines().any(|l| {
            l.contains("control socket: permission denied")
                && l.contains("uid=65534")
                && l.contains("nobody")
                && l.contains("pid=")
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !refused(&daemon.log_text()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused(&daemon.log_text()), "{}", daemon.log_text());
}

#[test]
fn the_control_socket_survives_malformed_and_oversized_requests() {
    let env = Env::new();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    let mut daemon = Daemon::start(&env);
    let reply = daemon.control("this is not json");
    assert_eq!(reply[0]["ok"], false, "{reply:?}");
    assert!(
        reply[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed request"),
        "{reply:?}"
    );
    let reply = daemon.control(r#"{"cmd":"launch-missiles"}"#);
    assert_eq!(reply[0]["ok"], false, "{reply:?}");
    let huge = format!(
        r#"{{"cmd":"status","names":["{}"]}}"#,
        "x".repeat(100 * 1024)
    );
    let reply = daemon.control(&huge);
    assert_eq!(reply[0]["error"], "request larger than 64 KiB", "{reply:?}");
    let reply = daemon.control(r#"{"cmd":"renew","names":["nope"]}"#);
    assert_eq!(reply[0]["ok"], false, "{reply:?}");
    assert!(daemon.is_running());
    let run = env.renewd(&["renew", "--force", "a"]);
    assert_eq!(run.code, 0, "still serving: {run:?}");
    assert!(run.stdout.starts_with("a: renewed: "), "{run:?}");
    let run = env.renewd(&["renew", "--no-wait", "--force", "--all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("queued: a"), "{run:?}");
    assert_eq!(daemon.stop(), Some(0));
    // Without a daemon, --no-wait has nobody to queue with.
    let run = env.renewd(&["renew", "--no-wait"]);
    assert_eq!(run.code, 3, "{run:?}");
}
