//! renewd against a second, independent ACME server: acme2certifier (Python,
//! from PyPI), issuing from a CA of its own and validating every challenge for
//! real on the standard ports (see `fixture::acme2certifier`). Issuance and
//! forced renewal over http-01, tls-alpn-01 and dns-01, a validation that
//! fails, revocation, SIGUSR1 in the daemon, and ARI: the window it suggests,
//! and one it moves into the past. docs/acme-servers.md lists its quirks.

use std::time::Duration;

use crate::fixture::{A2cEnv, Daemon, verify_chain, wait_until};

/// Three certificates, one per solver: http-01 for two names, tls-alpn-01 with
/// an RSA key, dns-01 for a name and its wildcard.
const CERTIFICATES: &str = "\
[[certificate]]\nname = \"web\"\ndomains = [\"web.example.com\", \"www.web.example.com\"]\nsolvers = [\"web\"]\n\n\
[[certificate]]\nname = \"alpn\"\ndomains = [\"alpn.example.com\"]\nsolvers = [\"alpn\"]\nkey = \"rsa2048\"\n\n\
[[certificate]]\nname = \"dns\"\ndomains = [\"dns.example.com\", \"*.dns.example.com\"]\nsolvers = [\"dns\"]\nkey = \"ecdsa-p384\"\n";

const NAMES: [&str; 3] = ["web", "alpn", "dns"];

/// The live serial of certificate `name`.
fn serial(env: &A2cEnv, name: &str) -> String {
    let lineage = env.store().lineage(name).unwrap().expect("a lineage");
    assert!(lineage.key_matches, "{name}: key does not match");
    lineage.cert.serial
}

/// `renewd status --json`'s entry for `name`.
fn status(env: &A2cEnv, name: &str) -> serde_json::Value {
    let run = env.renewd(&["status", "--json", name]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("status JSON");
    json["certificates"][0].clone()
}

/// An RFC 3339 time from `status --json`.
fn time(value: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        value.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
}

#[test]
fn issues_and_force_renews_over_every_challenge_type() {
    let env = A2cEnv::new();
    env.write_config("", CERTIFICATES);

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", env.a2c.log());
    for name in NAMES {
        assert!(
            run.stdout.contains(&format!("{name}: renewed: version 1")),
            "{run:?}"
        );
        verify_chain(&env.a2c.root, &env.store().live_dir(name)).unwrap();
    }
    let first: Vec<String> = NAMES.iter().map(|n| serial(&env, n)).collect();

    let run = env.renewd(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", env.a2c.log());
    assert_eq!(env.versions(&NAMES), [2, 2, 2], "{run:?}");
    for (name, old) in NAMES.iter().zip(&first) {
        verify_chain(&env.a2c.root, &env.store().live_dir(name)).unwrap();
        assert_ne!(
            &serial(&env, name),
            old,
            "{name}: the same certificate again"
        );
    }
    // acme2certifier does not echo `replaces` in the order: the quirk is logged
    // (once) and the order it created is used.
    assert!(
        run.stderr
            .contains("the CA created the order but its answer was refused"),
        "{run:?}"
    );
}

#[test]
fn a_challenge_nobody_answers_ends_the_attempt_without_a_reason_from_the_ca() {
    let env = A2cEnv::new();
    // Listening where acme2certifier's validator does not dial.
    let elsewhere = crate::fixture::free_port();
    env.write_config(
        "",
        &format!(
            "[solver.nowhere]\ntype = \"http-01\"\nlisten = \"127.0.0.1:{elsewhere}\"\n\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nsolvers = [\"nowhere\"]\n"
        ),
    );
    let started = std::time::Instant::now();
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited for the order: {:?}",
        started.elapsed()
    );
    assert!(
        // acme2certifier (with its SQLite database) keeps no error on the
        // invalid challenge.
        run.stdout.contains(
            "a.example.com: http-01 validation with solver nowhere failed: the CA gave no reason"
        ),
        "{run:?}"
    );
    assert_eq!(env.versions(&["a"]), [0]);
}

#[test]
fn a_revoked_certificate_is_on_the_cas_crl_and_replaced() {
    let env = A2cEnv::new();
    env.write_config(
        "",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nsolvers = [\"web\"]\n",
    );
    assert_eq!(env.renewd(&["renew"]).code, 0, "{}", env.a2c.log());
    let revoked = serial(&env, "a");

    let run = env.renewd(&["revoke", "a"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", env.a2c.log());
    assert_eq!(
        env.a2c.revoked_serials(),
        [revoked.trim_start_matches('0').to_owned()]
    );
    assert_eq!(env.versions(&["a"]), [2], "{run:?}");
    assert_ne!(serial(&env, "a"), revoked);
}

#[test]
fn sigusr1_renews_everything_and_ari_places_the_next_renewal() {
    let env = A2cEnv::new();
    env.write_config("check_interval = \"2s\"\n", CERTIFICATES);
    let daemon = Daemon::start_in(
        env.dir.path(),
        &env.config_path(),
        env.control_socket(),
        "info",
    );
    let minute = Duration::from_secs(60);
    wait_until(minute, "every certificate issued", || {
        env.versions(&NAMES) == [1, 1, 1]
    });

    // acme2certifier's window: from 85% of the lifetime to the end of it.
    wait_until(minute, "ARI windows", || {
        NAMES
            .iter()
            .all(|n| !status(&env, n)["ari_window"].is_null())
    });
    for name in NAMES {
        let entry = status(&env, name);
        let (not_before, not_after) = (time(&entry["not_before"]), time(&entry["not_after"]));
        let (start, end) = (
            time(&entry["ari_window"]["start"]),
            time(&entry["ari_window"]["end"]),
        );
        let expected_start: time::OffsetDateTime = not_before + (not_after - not_before) * 0.85;
        assert!(
            (start - expected_start).abs() < time::Duration::minutes(1) && end == not_after,
            "{name}: {entry:#}"
        );
        let next = time(&entry["next_renewal"]);
        assert!(start <= next && next <= end, "{name}: {entry:#}");
    }

    daemon.signal(nix::sys::signal::Signal::SIGUSR1);
    wait_until(minute, "every certificate renewed", || {
        env.versions(&NAMES) == [2, 2, 2]
    });
    assert!(
        daemon.log_text().contains("renew-all"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_window_the_ca_moves_into_the_past_renews_at_once() {
    let env = A2cEnv::new();
    env.write_config(
        "check_interval = \"2s\"\n",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nsolvers = [\"web\"]\n",
    );
    let daemon = Daemon::start_in(
        env.dir.path(),
        &env.config_path(),
        env.control_socket(),
        "info",
    );
    let minute = Duration::from_secs(60);
    wait_until(minute, "a issued", || env.versions(&["a"]) == [1]);
    wait_until(minute, "the first ARI window", || {
        !status(&env, "a")["ari_window"].is_null()
    });
    assert_eq!(env.versions(&["a"]), [1], "renewed before its window");

    // Windows from issuance to one second later: ended before anyone asks.
    env.a2c
        .restart_with("\n[Renewalinfo]\nrenewalthreshold_pctg: 0\nrenewal_window_duration: 1s\n");
    wait_until(minute, "a renewed", || env.versions(&["a"])[0] >= 2);
    assert!(
        daemon
            .log_text()
            .contains("CA moved the renewal window into the past"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_ca_that_requires_a_contact_says_what_to_add() {
    let env = A2cEnv::new();
    env.write_config("", "");
    // The same CA without `contact`, which acme2certifier requires.
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("contact = [\"mailto:ops@example.com\"]\n", "");
    std::fs::write(
        env.config_path(),
        format!(
            "{config}\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nsolvers = [\"web\"]\n"
        ),
    )
    .unwrap();
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(
            "a: failed: CA a2c refused the account: Contact information is missing (this CA \
             requires a contact address: add contact = [\"mailto:you@example.com\"] to [ca.a2c])"
        ),
        "{run:?}"
    );
}
