//! Never one point of failure: tls-alpn-01, fallback between solvers and between
//! CAs, and ACME profiles, against real Pebbles.

use crate::fixture::{Env, Pebble};

fn validity_days(env: &Env, name: &str) -> i64 {
    let lineage = env.store().lineage(name).unwrap().unwrap();
    (lineage.cert.lifetime() + time::Duration::hours(1)).whole_days()
}

#[test]
fn tls_alpn_01_issues_a_certificate() {
    let env = Env::new();
    env.write_config_raw(&format!(
        "{}\n{}\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\", \"b.example.com\"]\n",
        env.pebble.ca_toml("pebble"),
        env.pebble.tlsalpn01_solver_toml("alpn"),
    ));
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(CA pebble, solver alpn)"), "{run:?}");
    crate::fixture::verify_chain(&env.pebble.root, &env.store().live_dir("a")).unwrap();
}

#[test]
fn a_solver_that_fails_validation_falls_back_to_the_next_with_a_fresh_order() {
    let env = Env::new();
    // `wrong` listens where Pebble's validator never connects: the CA marks the
    // authorization invalid, and only a new order can try another challenge.
    let elsewhere = crate::fixture::free_port();
    env.write_config_raw(&format!(
        "{}\n[solver.wrong]\ntype = \"http-01\"\nlisten = \"127.0.0.1:{elsewhere}\"\n\n{}\n\
         [[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nsolvers = [\"wrong\", \"alpn\"]\n",
        env.pebble.ca_toml("pebble"),
        env.pebble.tlsalpn01_solver_toml("alpn"),
    ));
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(CA pebble, solver alpn)"), "{run:?}");
    assert!(
        run.stderr.contains("solver=\"wrong\"") || run.stderr.contains("solver=wrong"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("validation with solver wrong failed"),
        "{run:?}"
    );
    let status = env.renewd(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["certificates"][0]["solver"], "alpn", "{json}");
}

#[test]
fn a_solver_whose_port_is_taken_falls_back_to_the_next() {
    let env = Env::new();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", env.pebble.tlsalpn01_port)).unwrap();
    env.write_config_raw(&format!(
        "{}\n{}\n{}\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nsolvers = [\"alpn\", \"web\"]\n",
        env.pebble.ca_toml("pebble"),
        env.pebble.tlsalpn01_solver_toml("alpn"),
        env.pebble.http01_solver_toml("web"),
    ));
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(CA pebble, solver web)"), "{run:?}");
    assert!(
        run.stderr.contains("solver alpn: cannot listen on"),
        "{run:?}"
    );
}

#[test]
fn an_unreachable_ca_falls_back_to_the_next_ca() {
    let env = Env::new();
    // The second CA's validator dials the same http-01 port as the first's.
    let http01 = env.pebble.http01_port.to_string();
    let second = Pebble::start_with(
        &env.dir.path().join("pebble2"),
        &[
            ("PEBBLE_PROFILES", "default"),
            ("PEBBLE_HTTP01_PORT", &http01),
        ],
    );
    env.write_config_raw(&format!(
        "{}\n{}\n{}\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nca = [\"first\", \"second\"]\n",
        env.pebble.ca_toml("first"),
        second.ca_toml("second"),
        env.pebble.http01_solver_toml("web"),
    ));
    env.pebble.stop();
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(CA second, solver web)"), "{run:?}");
    crate::fixture::verify_chain(&second.root, &env.store().live_dir("a")).unwrap();
    let status = env.renewd(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["certificates"][0]["ca"], "second", "{json}");
}

#[test]
fn profiles_are_requested_per_ca_and_per_certificate() {
    let env = Env::with_pebble_env(&[("PEBBLE_PROFILES", "default shortlived")]);
    let ca = env
        .pebble
        .ca_toml("pebble")
        .replace("[ca.pebble]\n", "[ca.pebble]\nprofile = \"shortlived\"\n");
    env.write_config_raw(&format!(
        "{ca}\n{}\n[[certificate]]\nname = \"short\"\ndomains = [\"short.example.com\"]\n\n\
         [[certificate]]\nname = \"long\"\ndomains = [\"long.example.com\"]\nprofile = \"default\"\n",
        env.pebble.http01_solver_toml("web"),
    ));
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(validity_days(&env, "short"), 6);
    assert_eq!(validity_days(&env, "long"), 90);
    // A 6-day certificate is not due again at once (no renewal loop).
    let run = env.renewd(&["renew"]);
    assert_eq!(run.stdout.matches("not due").count(), 2, "{run:?}");
}

#[test]
fn external_account_binding_is_sent_when_the_ca_requires_it() {
    let env = Env::new();
    const KID: &str = "kid-1";
    const MAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    env.pebble.restart(|config| {
        config["pebble"]["externalAccountBindingRequired"] = true.into();
        config["pebble"]["externalAccountMACKeys"] = serde_json::json!({ KID: MAC });
    });
    let cert = "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n";
    env.write_config(cert);
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("externalAccountRequired"), "{run:?}");

    let key_file = env.dir.path().join("eab.key");
    std::fs::write(&key_file, format!("{MAC}\n")).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let ca = env.pebble.ca_toml("pebble").replace(
        "[ca.pebble]\n",
        &format!(
            "[ca.pebble]\neab_kid = \"{KID}\"\neab_hmac_key_file = \"{}\"\n",
            key_file.display()
        ),
    );
    env.write_config_raw(&format!(
        "{ca}\n{}\n{cert}",
        env.pebble.http01_solver_toml("web")
    ));
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    crate::fixture::verify_chain(&env.pebble.root, &env.store().live_dir("a")).unwrap();
}
