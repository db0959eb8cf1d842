//! Reload and served-certificate checks with a real nginx on loopback ports.

use nix::sys::signal::Signal;

use crate::fixture::{Daemon, Env, Nginx, many_certificates, toml_list, versions, wait_until};

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Issues `name` (no reload yet), then starts nginx serving it.
fn issued_and_served(env: &Env, name: &str) -> Nginx {
    env.write_config(&format!(
        "[[certificate]]\nname = \"{name}\"\ndomains = [\"{name}.example.com\"]\n"
    ));
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    Nginx::start(
        env.dir.path(),
        &env.store(),
        &[(name, &format!("{name}.example.com"))],
    )
}

fn certificate(name: &str, reload: &str, verify: &str) -> String {
    format!(
        "[[certificate]]\nname = \"{name}\"\ndomains = [\"{name}.example.com\"]\nreload = {reload}\nverify = [\"{verify}\"]\n"
    )
}

fn status_json(env: &Env) -> (i32, serde_json::Value) {
    let run = env.renewd(&["status", "--json"]);
    (
        run.code,
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}")),
    )
}

#[test]
fn a_signal_to_nginx_by_pid_file_ends_with_the_new_certificate_served() {
    let env = Env::new();
    let nginx = issued_and_served(&env, "web");
    let reload = format!(
        "[{{ signal = \"HUP\", pid_file = \"{}\" }}]",
        nginx.pid_file.display()
    );
    env.write_config(&certificate("web", &reload, &nginx.target()));

    let run = env.renewd(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "reload SIGHUP to pid in {}: ok",
            nginx.pid_file.display()
        )),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains(&format!("web: served at {}", nginx.target())),
        "{run:?}"
    );
    let (code, json) = status_json(&env);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        json["certificates"][0]["served"][0]["matches"], true,
        "{json}"
    );
}

#[test]
fn an_exec_hook_reloading_nginx_through_the_daemon_ends_verified() {
    let env = Env::new();
    let nginx = issued_and_served(&env, "web");
    let reload = format!(
        "[{{ exec = {} }}]",
        toml_list(&nginx.argv(&["-s", "reload"]))
    );
    env.write_config(&certificate("web", &reload, &nginx.target()));
    let daemon = Daemon::start(&env);
    daemon.signal(Signal::SIGUSR1);
    // One check at startup, one after the reload.
    wait_until(MINUTE, "verification after the reload", || {
        daemon
            .log_text()
            .matches("renewd_event=\"verified\"")
            .count()
            >= 2
    });
    assert_eq!(versions(&env, &["web".into()]), [2]);
    let log = daemon.log_text();
    assert!(log.contains("renewd_event=\"reloaded\""), "{log}");
    assert!(!log.contains("verify-failed"), "{log}");
    let (code, json) = status_json(&env);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        json["certificates"][0]["served"][0]["matches"], true,
        "{json}"
    );
}

#[test]
fn a_failing_hook_or_a_service_never_reloaded_leaves_the_certificate_unhealthy() {
    let env = Env::new();
    let nginx = issued_and_served(&env, "web");
    for reload in [
        "[{ exec = [\"sh\", \"-c\", \"echo cannot deploy >&2; exit 1\"] }]",
        "[]",
    ] {
        env.write_config(&certificate("web", reload, &nginx.target()));
        let run = env.renewd(&["renew", "--force"]);
        assert_eq!(run.code, 1, "{reload}: {run:?}");
        assert!(
            run.stdout.contains("web: renewed: "),
            "stored anyway: {run:?}"
        );
        assert!(
            run.stdout.contains(&format!(
                "web: verify-failed: {} does not serve it",
                nginx.target()
            )),
            "{reload}: {run:?}"
        );
        if reload != "[]" {
            assert!(
                run.stdout
                    .contains("reload exec sh -c echo cannot deploy >&2; exit 1: failed: "),
                "{run:?}"
            );
            assert!(run.stdout.contains("cannot deploy"), "{run:?}");
        }
        let (code, json) = status_json(&env);
        assert_eq!(code, 1, "{json}");
        let cert = &json["certificates"][0];
        assert_eq!(cert["healthy"], false, "{cert}");
        assert_eq!(cert["served"][0]["matches"], false, "{cert}");
    }
    // No renewal loop: a later run has nothing to do.
    let run = env.renewd(&["renew"]);
    assert!(run.stdout.contains("web: not due"), "{run:?}");
}

#[test]
fn a_service_still_not_serving_after_one_more_reload_is_left_unhealthy() {
    let env = Env::new();
    let nginx = issued_and_served(&env, "web");
    // A hook that reloads nothing: nginx keeps serving the old certificate.
    let marks = env.dir.path().join("hook-runs");
    let hook = format!(
        "[{{ exec = [\"sh\", \"-c\", \"echo run >> {}\"] }}]",
        marks.display()
    );
    env.write_config(&certificate("web", &hook, &nginx.target()));
    let daemon = Daemon::start(&env);
    let run = env.renewd(&["renew", "--force", "web"]);
    assert!(run.stdout.contains("web: renewed: "), "{run:?}");

    let failed = || {
        daemon
            .log_text()
            .matches("renewd_event=\"verify-failed\"")
            .count()
    };
    wait_until(2 * MINUTE, "two failed checks", || failed() >= 2);
    // The socket's renew is handled by the scheduler after the second check's
    // outcome, so once it answers, every decision that check led to is logged.
    let run = env.renewd(&["renew", "web"]);
    assert!(run.stdout.contains("web: not due"), "{run:?}");
    let log = daemon.log_text();
    assert_eq!(log.matches("reloading once more").count(), 1, "{log}");
    assert_eq!(failed(), 2, "{log}");
    let runs = std::fs::read_to_string(&marks)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(runs, 2, "one reload, then one more:\n{log}");
    let (code, json) = status_json(&env);
    assert_eq!(code, 1, "{json}");
    assert_eq!(
        json["certificates"][0]["served"][0]["matches"], false,
        "{json}"
    );
}

#[test]
fn reload_targets_run_in_the_order_given_and_every_failure_is_kept() {
    let env = Env::new();
    let order = env.dir.path().join("order");
    let step = |name: &str, pause: &str, exit: u8| {
        format!(
            "{{ exec = [\"sh\", \"-c\", \"sleep {pause}; echo {name} >> {}; exit {exit}\"] }}",
            order.display()
        )
    };
    // The slow first target fails, the last one too; the middle one succeeds.
    let reload = format!(
        "[{}, {}, {}]",
        step("first", "1", 1),
        step("second", "0", 0),
        step("third", "0", 2)
    );
    env.write_config(&format!(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nreload = {reload}\n"
    ));
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "three reloads", || {
        daemon
            .log_text()
            .matches("renewd_event=\"reload-failed\"")
            .count()
            == 2
            && daemon.log_text().contains("renewd_event=\"reloaded\"")
    });
    let ran = std::fs::read_to_string(&order).unwrap();
    assert_eq!(ran, "first\nsecond\nthird\n", "in the order given");
    let (code, json) = status_json(&env);
    assert_eq!(code, 1, "{json}");
    let problems = json["certificates"][0]["problems"].to_string();
    assert!(
        problems.contains("sleep 1; echo first") && problems.contains("exit status: 1"),
        "{problems}"
    );
    assert!(
        problems.contains("echo third") && problems.contains("exit status: 2"),
        "{problems}"
    );
    assert!(!problems.contains("echo second"), "{problems}");
}

#[test]
fn a_mass_renewal_of_ten_certificates_reloads_their_nginx_once() {
    let env = Env::new();
    let (names, certs) = many_certificates(10);
    env.write_config(&certs);
    assert_eq!(env.renewd(&["renew"]).code, 0);
    let sites: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), format!("{n}.example.com")))
        .collect();
    let sites: Vec<(&str, &str)> = sites
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let nginx = Nginx::start(env.dir.path(), &env.store(), &sites);

    let counter = env.dir.path().join("reloads");
    let mut hook = vec!["sh".to_owned(), "-c".to_owned()];
    hook.push(format!(
        "echo \"$RENEWD_NAME\" >> {} && exec \"$@\"",
        counter.display()
    ));
    hook.push("hook".to_owned());
    hook.extend(nginx.argv(&["-s", "reload"]));
    let reload = format!("[{{ exec = {} }}]", toml_list(&hook));
    let config: String = names
        .iter()
        .map(|n| certificate(n, &reload, &nginx.target()))
        .collect();
    env.write_config_with("max_concurrent = 3", &config);

    let daemon = Daemon::start(&env);
    daemon.signal(Signal::SIGUSR1);
    // Generous: ten renewals, a reload and ten checks on a loaded machine.
    wait_until(3 * MINUTE, "all ten verified", || {
        daemon
            .log_text()
            .matches("renewd_event=\"verified\"")
            .count()
            >= 20
    });
    let reloads = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(
        reloads.lines().count(),
        1,
        "one reload for the batch: {reloads}"
    );
    assert_eq!(
        reloads.split_whitespace().count(),
        10,
        "for all ten certificates: {reloads}"
    );
    assert_eq!(versions(&env, &names), vec![2; 10]);
    let (code, json) = status_json(&env);
    assert_eq!(code, 0, "{json}");
}
