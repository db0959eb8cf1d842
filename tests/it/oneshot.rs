//! One-shot `renewd renew` / `renewd status` against a real Pebble.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use renewd::config::KeyType;

use crate::fixture::{Env, verify_chain};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const THREE: &str = r#"
[[certificate]]
name = "two-sans"
domains = ["example.com", "www.example.com"]

[[certificate]]
name = "p384"
domains = ["p384.example.com"]
key = "ecdsa-p384"

[[certificate]]
name = "rsa"
domains = ["rsa.example.com"]
key = "rsa2048"
"#;

#[test]
fn issues_verifies_skips_when_not_due_and_force_renews() {
    let env = Env::new();
    env.write_config(THREE);

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 3, "{run:?}");
    assert_eq!(
        run.stdout.matches(": renewed: version 1").count(),
        3,
        "{run:?}"
    );

    let store = env.store();
    for (name, domains, key) in [
        (
            "two-sans",
            &["example.com", "www.example.com"][..],
            KeyType::EcdsaP256,
        ),
        ("p384", &["p384.example.com"], KeyType::EcdsaP384),
        ("rsa", &["rsa.example.com"], KeyType::Rsa2048),
    ] {
        let lineage = store.lineage(name).unwrap().expect(name);
        assert!(lineage.key_matches, "{name}: key does not match");
        assert_eq!(lineage.cert.key_type, Some(key), "{name}");
        assert_eq!(lineage.cert.domains, domains, "{name}");
        let live = store.live_dir(name);
        verify_chain(&env.pebble.root, &live).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(mode(&live.join("privkey.pem")), 0o600, "{name}");
    }
    assert_eq!(mode(&env.state_dir()), 0o700);
    assert_eq!(
        mode(&env.state_dir().join("accounts/pebble/account.json")),
        0o600
    );

    // Nothing is due: no new versions.
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout.matches(": not due, renewal from ").count(),
        3,
        "{run:?}"
    );
    assert!(!env.state_dir().join("archive/rsa/2").exists());

    // --force makes version 2 and swaps live/, keeping version 1.
    let before = store.lineage("rsa").unwrap().unwrap().cert.serial;
    let run = env.renewd(&["renew", "--force", "rsa"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("rsa: renewed: version 2"), "{run:?}");
    let after = store.lineage("rsa").unwrap().unwrap();
    assert_eq!(after.version, 2);
    assert_ne!(after.cert.serial, before);
    assert_eq!(
        std::fs::read_link(store.live_dir("rsa")).unwrap(),
        Path::new("../archive/rsa/2")
    );
    assert!(env.state_dir().join("archive/rsa/1/cert.pem").exists());
    verify_chain(&env.pebble.root, &store.live_dir("rsa")).unwrap();

    // The account was reused, not registered again.
    let accounts = std::fs::read_dir(env.state_dir().join("accounts"))
        .unwrap()
        .count();
    assert_eq!(accounts, 1);
}

#[test]
fn status_reports_json_fields_and_unhealthy_exit_code() {
    let env = Env::new();
    env.write_config(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n\n\
         [[certificate]]\nname = \"never\"\ndomains = [\"never.example.com\"]\n",
    );
    let run = env.renewd(&["renew", "a"]);
    assert_eq!(run.code, 0, "{run:?}");

    let run = env.renewd(&["status", "--json"]);
    assert_eq!(run.code, 1, "a missing certificate is unhealthy: {run:?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let certs = json["certificates"].as_array().unwrap();
    let a = certs.iter().find(|c| c["name"] == "a").unwrap();
    for field in [
        "name",
        "domains",
        "serial",
        "not_before",
        "not_after",
        "next_renewal",
        "ari_window",
        "last_attempt",
        "last_result",
        "revoked",
        "served",
        "healthy",
    ] {
        assert!(a.get(field).is_some(), "missing {field} in {a}");
    }
    assert_eq!(a["healthy"], true);
    assert_eq!(a["last_result"], "ok");
    assert_eq!(a["revoked"], false);
    assert_eq!(
        a["serial"],
        env.store().lineage("a").unwrap().unwrap().cert.serial
    );
    let never = certs.iter().find(|c| c["name"] == "never").unwrap();
    assert_eq!(never["healthy"], false);
    assert_eq!(never["serial"], serde_json::Value::Null);

    let run = env.renewd(&["status", "a"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("1 certificate: 1 healthy, 0 unhealthy\nNAME"),
        "{run:?}"
    );
    assert!(run.stdout.contains("a "), "{run:?}");
}

#[test]
fn acme_failure_never_touches_live() {
    let env = Env::new();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    assert_eq!(env.renewd(&["renew"]).code, 0);
    let before = env.store().lineage("a").unwrap().unwrap();

    env.pebble.stop();
    let run = env.renewd(&["renew", "--force"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.starts_with("a: failed: CA pebble:"), "{run:?}");

    let after = env.store().lineage("a").unwrap().unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(after.cert.serial, before.cert.serial);
    assert!(after.key_matches);
    let status = env.renewd(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let last = json["certificates"][0]["last_result"].as_str().unwrap();
    assert!(last.starts_with("error: CA pebble:"), "{last}");
    assert_eq!(
        json["certificates"][0]["failure"],
        serde_json::json!({"kind": "ca-unreachable"}),
        "{json}"
    );
}

#[test]
fn a_solver_that_cannot_listen_is_named_and_nothing_is_stored() {
    let env = Env::new();
    // Something else holds the port the solver must listen on.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", env.pebble.http01_port)).unwrap();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    let port = env.pebble.http01_port;
    assert!(
        run.stdout
            .contains(&format!("solver web: cannot listen on 127.0.0.1:{port}")),
        "{run:?}"
    );
    assert!(env.store().lineage("a").unwrap().is_none());
}

#[test]
fn affected_serials_renew_only_those_certificates() {
    let env = Env::new();
    env.write_config(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n\n\
         [[certificate]]\nname = \"b\"\ndomains = [\"b.example.com\"]\n",
    );
    assert_eq!(env.renewd(&["renew"]).code, 0);
    let serial = env.store().lineage("b").unwrap().unwrap().cert.serial;
    let list = env.dir.path().join("affected.txt");
    // As CAs publish them: upper case with colons, among unrelated serials.
    let colons: Vec<String> = serial
        .to_uppercase()
        .as_bytes()
        .rchunks(2)
        .rev()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    std::fs::write(
        &list,
        format!("# incident 42\n0badc0ffee\n{}\n", colons.join(":")),
    )
    .unwrap();

    let run = env.renewd(&["renew", "--affected", list.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("b: renewed: version 2"), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
    assert_eq!(env.store().lineage("a").unwrap().unwrap().version, 1);
}

/// Rewrites `name`'s entry in the state with `edit`.
fn edit_state(env: &Env, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    env.edit_state(name, edit);
}

#[test]
fn one_shot_renew_decides_like_the_daemon_from_the_state() {
    let env = Env::new();
    env.write_config(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nreuse_key = true\n",
    );
    assert_eq!(env.renewd(&["renew"]).code, 0);
    let key = |env: &Env| env.store().lineage("a").unwrap().unwrap().cert.spki_der;
    let first = key(&env);

    // A time drawn in an ARI window that has passed: due, though the fallback
    // rule would wait two months.
    edit_state(&env, "a", |cs| {
        let window =
            serde_json::json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-03T00:00:00Z"});
        cs["ari_window"] = window.clone();
        cs["next_renewal_for"] = window;
        cs["next_renewal"] = "2026-01-02T00:00:00Z".into();
    });
    let run = env.renewd(&["renew"]);
    assert!(run.stdout.contains("a: renewed: version 2"), "{run:?}");
    assert_eq!(key(&env), first, "reuse_key keeps the key");

    // A forced renewal a daemon recorded and did not finish.
    edit_state(&env, "a", |cs| cs["force_pending"] = true.into());
    let run = env.renewd(&["renew"]);
    assert!(run.stdout.contains("a: renewed: version 3"), "{run:?}");

    // A revocation the daemon noticed: renewed at once, with a new key.
    edit_state(&env, "a", |cs| cs["revoked"] = true.into());
    let run = env.renewd(&["renew"]);
    assert!(run.stdout.contains("a: renewed: version 4"), "{run:?}");
    assert_ne!(
        key(&env),
        first,
        "a revoked certificate's key is not reused"
    );

    let run = env.renewd(&["renew"]);
    assert!(run.stdout.contains("a: not due"), "{run:?}");
}

#[test]
fn a_dry_run_issues_from_staging_and_changes_nothing() {
    let env = Env::new();
    // A second Pebble plays the CA's staging directory; its validator dials the
    // same http-01 port.
    let http01 = env.pebble.http01_port.to_string();
    let staging = crate::fixture::Pebble::start_with(
        &env.dir.path().join("staging"),
        &[
            ("PEBBLE_PROFILES", "default"),
            ("PEBBLE_HTTP01_PORT", &http01),
        ],
    );
    let trust = env.dir.path().join("listener-cas.pem");
    let both = [&env.pebble.listener_ca, &staging.listener_ca]
        .map(|p| std::fs::read_to_string(p).unwrap())
        .concat();
    std::fs::write(&trust, both).unwrap();
    let marks = env.dir.path().join("reloads");
    env.write_config_raw(&format!(
        "[ca.pebble]\ndirectory = \"{}\"\nstaging = \"{}\"\ntrust = \"{}\"\n\n\
         [ca.other]\ndirectory = \"{}\"\ntrust = \"{}\"\n\n{}\n\
         [[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nca = [\"pebble\"]\n\
         reload = [{{ exec = [\"sh\", \"-c\", \"echo reload >> {}\"] }}]\n\n\
         [[certificate]]\nname = \"b\"\ndomains = [\"b.example.com\"]\nca = [\"other\"]\n",
        env.pebble.dir_url,
        staging.dir_url,
        trust.display(),
        env.pebble.dir_url,
        trust.display(),
        env.pebble.http01_solver_toml("web"),
        marks.display()
    ));
    assert_eq!(env.renewd(&["renew"]).code, 0);
    let snapshot = || {
        let store = env.store();
        let live: Vec<String> = ["a", "b"]
            .iter()
            .map(|n| store.lineage(n).unwrap().unwrap().cert.serial)
            .collect();
        let state = env.state();
        let reloads = std::fs::read_to_string(&marks).unwrap_or_default();
        (live, state, reloads)
    };
    let before = snapshot();

    let run = env.renewd(&["renew", "--dry-run", "a"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
    assert!(
        run.stdout.starts_with("a: dry run ok: serial ")
            && run
                .stdout
                .contains("(CA pebble staging, solver web); nothing stored"),
        "{run:?}"
    );
    // Without names, every certificate; b's CA has no staging directory.
    let run = env.renewd(&["renew", "--dry-run"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("a: dry run ok: "), "{run:?}");
    assert!(
        run.stdout
            .contains("b: dry run failed: no CA of this certificate has a staging directory"),
        "{run:?}"
    );
    assert_eq!(
        snapshot(),
        before,
        "live/, state.json and reloads untouched"
    );
}

#[test]
fn keys_and_state_are_private_even_under_umask_000() {
    let env = Env::new();
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 000; exec \"$@\"",
            "sh",
            env!("CARGO_BIN_EXE_renewd"),
        ])
        .arg("--config")
        .arg(env.config_path())
        .arg("renew")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let state = env.state_dir();
    let live = env.store().live_dir("a");
    assert_eq!(mode(&state), 0o700, "state directory");
    assert_eq!(mode(&live.join("privkey.pem")), 0o600, "private key");
    let files: Vec<_> = ["state.json", "state.journal"]
        .iter()
        .map(|f| state.join(f))
        .filter(|p| p.exists())
        .collect();
    assert!(!files.is_empty(), "no state written");
    for file in files {
        assert_eq!(mode(&file) & 0o077, 0, "{}", file.display());
    }
    assert_eq!(
        mode(&state.join("accounts/pebble/account.json")),
        0o600,
        "account key"
    );
    for file in ["cert.pem", "chain.pem", "fullchain.pem"] {
        assert_eq!(
            mode(&live.join(file)) & 0o022,
            0,
            "{file} writable by others"
        );
    }
}

#[test]
fn serials_read_as_openssl_prints_them_and_an_empty_config_says_so() {
    let env = Env::new();
    env.write_config("");
    let run = env.renewd(&["renew", "--all", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("nothing to renew: no certificate is configured"),
        "{run:?}"
    );

    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    assert_eq!(env.renewd(&["renew"]).code, 0);
    let cert = env.store().live_dir("a").join("cert.pem");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let openssl = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let status = env.renewd(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        json["certificates"][0]["serial"],
        openssl.as_str(),
        "{json}"
    );
}

#[test]
fn status_opens_with_a_summary_and_problems_shows_only_the_unhealthy() {
    let env = Env::new();
    env.write_config(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n\n\
         [[certificate]]\nname = \"b\"\ndomains = [\"b.example.com\"]\n",
    );
    assert_eq!(env.renewd(&["renew", "a"]).code, 0);
    let all = env.renewd(&["status"]);
    assert_eq!(all.code, 1, "b has no certificate: {all:?}");
    assert_eq!(
        all.stdout.lines().next(),
        Some("2 certificates: 1 healthy, 1 unhealthy"),
        "{all:?}"
    );
    let problems = env.renewd(&["status", "--problems"]);
    assert_eq!(problems.code, 1, "{problems:?}");
    assert!(
        problems
            .stdout
            .starts_with("2 certificates: 1 healthy, 1 unhealthy\n"),
        "{problems:?}"
    );
    let rows: Vec<&str> = problems.stdout.lines().skip(2).collect();
    assert_eq!(rows.len(), 1, "{problems:?}");
    assert!(rows[0].starts_with("b "), "{problems:?}");
    let json = env.renewd(&["status", "--problems", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(json["certificates"][0]["name"], "b");
}
