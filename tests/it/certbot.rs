//! `renewd import-certbot`: on what the real certbot leaves behind after
//! issuing from Pebble, then renewing what was imported; and on a hand-made
//! layout with a broken lineage.

use std::path::Path;

use crate::fixture::{Certbot, Env, WebrootServer, run_renewd, verify_chain};

/// Writes `/etc/letsencrypt`-style files for lineage `name` under `root`.
fn certbot_lineage(root: &Path, name: &str, domains: &[&str], matching_key: bool) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let params =
        rcgen::CertificateParams::new(domains.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap().pem();
    let key_pem = if matching_key {
        key.serialize_pem()
    } else {
        rcgen::KeyPair::generate().unwrap().serialize_pem()
    };
    let archive = root.join("archive").join(name);
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(root.join("live").join(name)).unwrap();
    std::fs::create_dir_all(root.join("renewal")).unwrap();
    for (file, content) in [
        ("cert1.pem", &cert),
        ("chain1.pem", &cert),
        ("fullchain1.pem", &format!("{cert}{cert}")),
        ("privkey1.pem", &key_pem),
    ] {
        std::fs::write(archive.join(file), content).unwrap();
        let link = root.join("live").join(name).join(file.replace('1', ""));
        std::os::unix::fs::symlink(archive.join(file), link).unwrap();
    }
    let live = root.join("live").join(name);
    std::fs::write(
        root.join("renewal").join(format!("{name}.conf")),
        format!(
            "version = 2.11.0\narchive_dir = {archive}\ncert = {live}/cert.pem\nprivkey = {live}/privkey.pem\n\
             chain = {live}/chain.pem\nfullchain = {live}/fullchain.pem\n\n[renewalparams]\n\
             authenticator = webroot\nserver = https://acme-v02.api.letsencrypt.org/directory\n\
             [[webroot_map]]\n{domain} = /var/www/html\n",
            archive = archive.display(),
            live = live.display(),
            domain = domains[0],
        ),
    )
    .unwrap();
}

#[test]
fn certbot_lineages_are_adopted_and_a_config_is_suggested() {
    let dir = tempfile::tempdir().unwrap();
    let letsencrypt = dir.path().join("letsencrypt");
    certbot_lineage(
        &letsencrypt,
        "example.com",
        &["example.com", "www.example.com"],
        true,
    );
    certbot_lineage(&letsencrypt, "broken.example", &["broken.example"], false);
    let state = dir.path().join("state");
    let config = dir.path().join("renewd.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap();

    let run = run_renewd(&config, &["import-certbot", letsencrypt.to_str().unwrap()]);
    assert_eq!(run.code, 1, "one lineage is broken: {run:?}");
    assert!(
        run.stderr.contains("example.com: imported as version 1"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("broken.example.conf: ")
            && run.stderr.contains("privkey.pem does not belong to "),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(
            "name = \"example.com\"\ndomains = [\"example.com\", \"www.example.com\"]\n\
             ca = [\"letsencrypt\"]\nsolvers = [\"webroot\"]\nkey = \"ecdsa-p384\""
        ),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(
            "[ca.letsencrypt]\ndirectory = \"https://acme-v02.api.letsencrypt.org/directory\"\n"
        ),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("webroot = \"/var/www/html\""),
        "{run:?}"
    );

    let store = renewd::store::Store::open(&state).unwrap();
    let lineage = store.lineage("example.com").unwrap().unwrap();
    assert!(lineage.key_matches);
    assert!(store.lineage("broken.example").unwrap().is_none());
}

/// Lines of Pebble's log that announce a new account.
fn pebble_accounts(env: &Env) -> usize {
    std::fs::read_to_string(env.dir.path().join("pebble/pebble.log"))
        .unwrap_or_default()
        .matches("accounts in memory")
        .count()
}

/// Issues with the real certbot: `standalone` (two domains, a `--deploy-hook`)
/// and `webroot` (RSA, issued twice so its archive has history), plus a script
/// in `renewal-hooks/deploy/`. Returns certbot and the webroot.
fn certbot_lineages(env: &Env) -> (Certbot, std::path::PathBuf) {
    let certbot = Certbot::new(&env.dir.path().join("certbot"), &env.pebble);
    let marker = env.dir.path().join("deploy-hook");
    certbot.certonly(&[
        "--standalone",
        "--cert-name",
        "standalone",
        "-d",
        "a.example.com",
        "-d",
        "www.a.example.com",
        "--deploy-hook",
        &format!("echo \"$RENEWED_LINEAGE\" >> {}", marker.display()),
    ]);
    let webroot = env.dir.path().join("www");
    std::fs::create_dir_all(&webroot).unwrap();
    let server = WebrootServer::start(&webroot, env.pebble.http01_port);
    for extra in [&[][..], &["--force-renewal"][..]] {
        let mut args = vec!["--webroot", "-w", webroot.to_str().unwrap()];
        args.extend(["--cert-name", "webroot", "-d", "b.example.com"]);
        args.extend(["--key-type", "rsa"]);
        args.extend(extra);
        certbot.certonly(&args);
    }
    drop(server);
    let hooks = certbot.config_dir.join("renewal-hooks/deploy");
    std::fs::create_dir_all(&hooks).unwrap();
    let script = hooks.join("10-mark");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$RENEWED_LINEAGE\" >> {}\n",
            env.dir.path().join("global-hook").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (certbot, webroot)
}

#[test]
fn what_certbot_issued_is_taken_over_and_renewed_with_its_account_and_hooks() {
    let env = Env::new();
    let (certbot, webroot) = certbot_lineages(&env);
    assert_eq!(pebble_accounts(&env), 1, "certbot registered one account");
    env.write_config_raw(&env.pebble.ca_toml("pebble"));

    let le = certbot.config_dir.to_str().unwrap();
    let run = env.renewd(&["import-certbot", le]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("standalone: imported as version 1"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("webroot: imported as versions 1-2 (certbot's archive history)"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(
            "stop it before renewd takes over, with `systemctl disable --now certbot.timer`"
        ),
        "{run:?}"
    );

    // live/ is usable at once: the current certbot versions, chains that verify.
    let store = env.store();
    for (name, version) in [("standalone", 1), ("webroot", 2)] {
        let lineage = store.lineage(name).unwrap().unwrap();
        assert_eq!(lineage.version, version, "{name}");
        assert!(lineage.key_matches, "{name}");
        verify_chain(&env.pebble.root, &store.live_dir(name)).unwrap();
    }
    let certbot_live = std::fs::read(certbot.config_dir.join("live/webroot/cert.pem")).unwrap();
    assert_eq!(
        std::fs::read(store.live_dir("webroot").join("cert.pem")).unwrap(),
        certbot_live
    );

    // The account certbot registered is renewd's now, under the same URL.
    let regr = glob_one(&certbot.config_dir.join("accounts"), "regr.json");
    let regr: serde_json::Value = serde_json::from_slice(&std::fs::read(regr).unwrap()).unwrap();
    let account: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.state_dir().join("accounts/pebble/account.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(account["credentials"]["id"], regr["uri"], "{account}");
    assert!(
        run.stderr.contains("its RSA key was rolled over"),
        "{run:?}"
    );

    assert_suggestion(&env, &certbot, &webroot, &run.stdout);

    // As printed, a drop-in that check-config accepts.
    let drop_in = env.dir.path().join("renewd.d");
    std::fs::create_dir_all(&drop_in).unwrap();
    std::fs::write(drop_in.join("certbot.toml"), &run.stdout).unwrap();
    let check = env.renewd(&["check-config"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(check.stdout.contains("2 certificate(s)"), "{check:?}");

    renew_and_check_hooks(&env, &webroot);

    // Importing again rolls nothing back: renewd's certificates are newer.
    let again = env.renewd(&["import-certbot", le]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again
            .stderr
            .contains("standalone: renewd's live certificate")
            && again
                .stderr
                .contains("is at least as new as certbot's; kept"),
        "{again:?}"
    );
    assert!(
        again.stderr.contains("CA pebble: renewd's account"),
        "{again:?}"
    );
    assert_eq!(store.lineage("webroot").unwrap().unwrap().version, 3);
}

/// The one file named `name` under `dir`.
fn glob_one(dir: &Path, name: &str) -> std::path::PathBuf {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|f| f == name) {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// The suggested config: solvers for webroot and standalone, hooks as exec
/// targets, no CA (the config has Pebble's).
fn assert_suggestion(env: &Env, certbot: &Certbot, webroot: &Path, config: &str) {
    let port = env.pebble.http01_port;
    let hook = certbot.config_dir.join("renewal-hooks/deploy/10-mark");
    for expected in [
        format!("[solver.standalone-{port}]\ntype = \"http-01\"\nlisten = \"[::]:{port}\"\n"),
        format!(
            "[solver.webroot]\ntype = \"http-01\"\nwebroot = \"{}\"\n",
            webroot.display()
        ),
        format!(
            "name = \"standalone\"\ndomains = [\"a.example.com\", \"www.a.example.com\"]\n\
             ca = [\"pebble\"]\nsolvers = [\"standalone-{port}\"]\nreload = [\n  \
             {{ exec = [\"{}\"] }},  # certbot renewal-hooks\n  \
             {{ exec = [\"/bin/sh\", \"-c\", 'echo \"$RENEWED_LINEAGE\" >> {}'] }},  # certbot --deploy-hook\n]\n",
            hook.display(),
            env.dir.path().join("deploy-hook").display()
        ),
        format!(
            "name = \"webroot\"\ndomains = [\"b.example.com\"]\nca = [\"pebble\"]\n\
             solvers = [\"webroot\"]\nkey = \"rsa2048\"\nreload = [\n  \
             {{ exec = [\"{}\"] }},  # certbot renewal-hooks\n]\n",
            hook.display()
        ),
    ] {
        assert!(
            config.contains(&expected),
            "missing:\n{expected}\nin:\n{config}"
        );
    }
    assert!(
        !config.contains("[ca."),
        "the CA is configured already:\n{config}"
    );
}

/// `renew --force` of both: standalone on the port itself, webroot through the
/// web server; no new account, and the imported hooks ran.
fn renew_and_check_hooks(env: &Env, webroot: &Path) {
    let port = env.pebble.http01_port;
    let store = env.store();
    let renewed = env.renewd(&["renew", "--force", "standalone"]);
    assert_eq!(renewed.code, 0, "{renewed:?}");
    let server = WebrootServer::start(webroot, port);
    let renewed = env.renewd(&["renew", "--force", "webroot"]);
    assert_eq!(renewed.code, 0, "{renewed:?}");
    drop(server);
    for (name, version) in [("standalone", 2), ("webroot", 3)] {
        assert_eq!(
            store.lineage(name).unwrap().unwrap().version,
            version,
            "{name}"
        );
    }
    assert_eq!(pebble_accounts(env), 1, "no account was registered");
    let live = |name: &str| store.live_dir(name).display().to_string();
    let lines = |file: &str| {
        std::fs::read_to_string(env.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // certbot's own runs wrote certbot's paths; renewd's write renewd's.
    assert_eq!(lines("deploy-hook").last(), Some(&live("standalone")));
    assert_eq!(
        lines("global-hook"),
        [live("standalone"), live("webroot")],
        "the renewal-hooks script ran for both"
    );
}
