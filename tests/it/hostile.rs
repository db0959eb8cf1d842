//! Hostile surroundings: secrets that must never be shown, a disk that fills
//! up in the middle of a mass renewal, a state directory that cannot be
//! written. (Hostile peers on the control socket are in `daemon.rs`; hostile
//! bytes from the network are fuzzed, see `docs/fuzzing.md`.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::fixture::{
    Bind, CLOUDFLARE_TOKEN, Daemon, Env, FakeCloudflare, TSIG_KEY_NAME, free_port, http_get,
    many_certificates, versions, wait_until, write_secret,
};

const MINUTE: Duration = Duration::from_secs(60);

/// Whether the tests may mount file systems; says why not when they may not.
fn can_mount() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root to mount a tmpfs as the state directory");
    false
}

// ---------------------------------------------------------------- secrets

/// Every secret the run below handles, as text that must appear nowhere.
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, secret: &str) {
        assert!(secret.len() >= 8, "{what}: too short to search for");
        self.0.push((what.to_owned(), secret.to_owned()));
    }

    /// Adds every private key of the store: the certificates' and the ACME
    /// account's, each base64 line of them.
    fn add_store_keys(&mut self, state_dir: &Path) {
        let mut keys = 0;
        for entry in walk(&state_dir.join("archive")) {
            if entry.file_name().is_some_and(|n| n == "privkey.pem") {
                let pem = std::fs::read_to_string(&entry).unwrap();
                for line in pem.lines().filter(|l| !l.starts_with("-----")) {
                    if line.len() >= 16 {
                        self.add(&entry.display().to_string(), line);
                    }
                }
                keys += 1;
            }
        }
        assert!(keys >= 2, "only {keys} private keys in the store");
        let account = state_dir.join("accounts/pebble/account.json");
        let account: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&account).unwrap()).unwrap();
        let key = account["credentials"]["key_pkcs8"]
            .as_str()
            .expect("the account key in account.json");
        self.add("the ACME account key", key);
    }

    /// Asserts that `text` (from `place`) holds none of the secrets.
    fn assert_absent_from(&self, place: &str, text: &str) {
        assert!(!text.is_empty(), "{place} is empty: nothing was checked");
        assert!(
            !text.contains("PRIVATE KEY"),
            "{place} shows a private key:\n{text}"
        );
        for (what, secret) in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{place} shows {what}:\n{text}"
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The `secret "..."` of a BIND key file.
fn tsig_secret(key_file: &Path) -> String {
    let text = std::fs::read_to_string(key_file).unwrap();
    let start = text.find("secret \"").expect("a secret") + "secret \"".len();
    text[start..].split('"').next().unwrap().to_owned()
}

const KID: &str = "kid-secrets";
const MAC: &str = "c2VjcmV0LW1hYy1rZXktdGhhdC1tdXN0LW5vdC1sZWFrLWFueXdoZXJlLTEyMzQ1";
const BAD_EAB: &str = "not+base64url/eab-secret!";
const BAD_TOKEN: &str = "revoked-cloudflare-token-secret";
const WRONG_TSIG_SECRET: &str = "d3JvbmctdHNpZy1zZWNyZXQtdGhhdC1tdXN0LW5vdC1sZWFr";

/// A config using every kind of secret, each also in a form that fails:
/// certificates `web` (http-01), `cf` (Cloudflare), `tsig` (rfc2136), and
/// `cf-bad`, `tsig-bad`, `eab-bad` with a rejected token, a wrong TSIG
/// secret and an EAB key that is not base64url.
fn write_config_with_secrets(env: &Env, bind: &Bind, api: &FakeCloudflare, metrics_port: u16) {
    let file = |name: &str, text: &str| {
        let path = env.dir.path().join(name);
        write_secret(&path, text);
        path
    };
    let eab = file("eab.key", &format!("{MAC}\n"));
    let bad_eab = file("bad-eab.key", &format!("{BAD_EAB}\n"));
    let token = file("cf.token", &format!("{CLOUDFLARE_TOKEN}\n"));
    let bad_token = file("bad-cf.token", &format!("{BAD_TOKEN}\n"));
    let wrong_tsig = file(
        "wrong-tsig.key",
        &format!(
            "key \"{TSIG_KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{WRONG_TSIG_SECRET}\";\n}};\n"
        ),
    );
    let ca = |name: &str, key: &Path| {
        env.pebble.ca_toml(name).replace(
            &format!("[ca.{name}]\n"),
            &format!(
                "[ca.{name}]\neab_kid = \"{KID}\"\neab_hmac_key_file = \"{}\"\n",
                key.display()
            ),
        )
    };
    let cloudflare = |name: &str, token: &Path| {
        format!(
            "[solver.{name}]\ntype = \"dns-01\"\nprovider = \"cloudflare\"\n\
             api_token_file = \"{}\"\napi_url = \"{}\"\npropagation_timeout = \"20s\"\n\
             resolvers = [\"127.0.0.1:{}\"]\n",
            token.display(),
            api.api_url(),
            env.pebble.challtestsrv_dns_port()
        )
    };
    env.write_config_raw(&format!(
        "metrics_listen = \"127.0.0.1:{metrics_port}\"\n\n{}\n{}\n{}\n{}\n{}\n{}\n\
         [solver.badtsig]\ntype = \"dns-01\"\nprovider = \"rfc2136\"\nserver = \"{}\"\n\
         tsig_key_file = \"{}\"\n\n\
         [[certificate]]\nname = \"web\"\ndomains = [\"web.example.com\"]\nca = [\"pebble\"]\nsolvers = [\"web\"]\n\n\
         [[certificate]]\nname = \"cf\"\ndomains = [\"*.cf.example.com\"]\nca = [\"pebble\"]\nsolvers = [\"cf\"]\n\n\
         [[certificate]]\nname = \"cf-bad\"\ndomains = [\"bad.cf.example.com\"]\nca = [\"pebble\"]\nsolvers = [\"cfbad\"]\n\n\
         [[certificate]]\nname = \"tsig\"\ndomains = [\"tsig.dns.test\"]\nca = [\"pebble\"]\nsolvers = [\"dns\"]\n\n\
         [[certificate]]\nname = \"tsig-bad\"\ndomains = [\"bad.dns.test\"]\nca = [\"pebble\"]\nsolvers = [\"badtsig\"]\n\n\
         [[certificate]]\nname = \"eab-bad\"\ndomains = [\"eab.example.com\"]\nca = [\"badeab\"]\nsolvers = [\"web\"]\n",
        ca("pebble", &eab),
        ca("badeab", &bad_eab),
        env.pebble.http01_solver_toml("web"),
        cloudflare("cf", &token),
        cloudflare("cfbad", &bad_token),
        bind.solver_toml(&bind.key_file),
        bind.addr(),
        wrong_tsig.display(),
    ));
}

#[test]
fn no_secret_reaches_a_log_line_an_error_the_status_or_the_metrics() {
    let env = Env::new();
    env.pebble.restart(|config| {
        config["pebble"]["externalAccountBindingRequired"] = true.into();
        config["pebble"]["externalAccountMACKeys"] = serde_json::json!({ KID: MAC });
    });
    let bind = Bind::start(env.dir.path());
    let api = FakeCloudflare::start(env.pebble.challtestsrv_mgmt_port());
    let metrics_port = free_port();
    write_config_with_secrets(&env, &bind, &api, metrics_port);
    let check = env.renewd(&["check-config"]);
    assert_eq!(check.code, 0, "{check:?}");

    let daemon = Daemon::start_logging(&env, "debug");
    let renew = env.renewd(&["renew", "--force"]);
    // Each failure is reported; `tsig` fails at Pebble, which resolves
    // through challtestsrv, after renewd updated BIND with the key.
    for expected in [
        "web: renewed",
        "cf: renewed",
        "cf-bad: failed",
        "tsig-bad: failed",
        "eab-bad: failed",
        "bad-eab.key: not a base64url EAB HMAC key: the character at offset",
        "BADSIG",
    ] {
        assert!(renew.stdout.contains(expected), "{expected}\n{renew:?}");
    }
    assert!(
        bind.log()
            .contains("adding an RR at '_acme-challenge.tsig.dns.test' TXT"),
        "the TSIG key was not used:\n{}",
        bind.log()
    );
    let status = env.renewd(&["status", "--json"]);
    let status_text = env.renewd(&["status"]);
    let metrics = http_get(metrics_port, "/metrics");
    let log_path = daemon.log.clone();
    drop(daemon);

    let mut secrets = Secrets(Vec::new());
    secrets.add("the EAB key", MAC);
    secrets.add("a malformed EAB key", BAD_EAB);
    secrets.add("the Cloudflare token", CLOUDFLARE_TOKEN);
    secrets.add("a rejected Cloudflare token", BAD_TOKEN);
    secrets.add("the TSIG secret", &tsig_secret(&bind.key_file));
    secrets.add("a wrong TSIG secret", WRONG_TSIG_SECRET);
    secrets.add_store_keys(&env.state_dir());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("DEBUG"), "not a debug log:\n{log}");
    for (place, text) in [
        ("check-config", format!("{}{}", check.stdout, check.stderr)),
        ("the daemon's debug log", log),
        (
            "renew's output",
            format!("{}{}", renew.stdout, renew.stderr),
        ),
        (
            "status --json",
            format!("{}{}", status.stdout, status.stderr),
        ),
        (
            "status",
            format!("{}{}", status_text.stdout, status_text.stderr),
        ),
        ("/metrics", metrics),
        (
            "the state (state.json and state.journal)",
            ["state.json", "state.journal"]
                .iter()
                .filter_map(|f| std::fs::read_to_string(env.state_dir().join(f)).ok())
                .collect::<String>(),
        ),
    ] {
        secrets.assert_absent_from(place, &text);
    }
}

// ------------------------------------------------------------- a full disk

/// A tmpfs mounted at a directory; unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("mode=0700,{options}"),
                "tmpfs",
            ],
            dir,
        );
        Self(dir.to_owned())
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}")], &self.0);
    }
}

fn mount(args: &[&str], dir: &Path) {
    let out = Command::new("mount").args(args).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with 64 KiB files until it is full.
fn fill(dir: &Path) -> Vec<PathBuf> {
    let chunk = vec![0x5au8; 64 << 10];
    let mut files = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("filler-{i}"));
        let written = std::fs::write(&path, &chunk);
        files.push(path);
        if let Err(e) = written {
            assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
            break;
        }
    }
    files
}

/// Whether log `line` is about certificate `name` (not `name` followed by more).
fn is_about(line: &str, name: &str) -> bool {
    line.match_indices(&format!("cert_name={name}"))
        .any(|(at, m)| {
            line[at + m.len()..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric())
        })
}

/// Every live certificate with its key, and the state loads.
fn assert_intact(env: &Env, names: &[String]) {
    let store = env.store();
    for name in names {
        let lineage = store.lineage(name).unwrap().expect("a live certificate");
        assert!(lineage.key_matches, "{name}: cert and key do not match");
        crate::fixture::verify_chain(&env.pebble.root, &store.live_dir(name)).unwrap();
    }
    let state = env.state().expect("the state loads");
    assert!(state["certificates"].is_object(), "{state}");
}

#[test]
fn a_disk_that_fills_up_mid_renewal_breaks_nothing_and_renewals_resume() {
    if !can_mount() {
        return;
    }
    let env = Env::new();
    let state = Tmpfs::mount(&env.state_dir(), "size=4m");
    let (names, certs) = many_certificates(12);
    env.write_config_with("max_concurrent = 4", &certs);
    let daemon = Daemon::start(&env);
    wait_until(MINUTE, "12 certificates issued", || {
        versions(&env, &names).iter().all(|v| *v >= 1)
    });
    // Let the state be saved, then leave room for a few versions only: the
    // mass renewal runs out of space in its middle.
    wait_until(MINUTE, "the state saved", || {
        env.state()
            .is_some_and(|s| names.iter().all(|n| s["certificates"][n].is_object()))
    });
    std::fs::create_dir(env.state_dir().join("filler")).unwrap();
    let files = fill(&env.state_dir().join("filler"));
    for file in files.iter().rev().take(2) {
        std::fs::remove_file(file).unwrap();
    }
    let before = daemon.log_text().len();
    daemon.signal(Signal::SIGUSR1);
    let full = "No space left on device";
    wait_until(2 * MINUTE, "renewals failing for lack of space", || {
        daemon.log_text()[before..].contains(full)
    });
    // The failure names the file and says what to do.
    let log = daemon.log_text()[before..].to_owned();
    let line = log
        .lines()
        .find(|l| l.contains(full))
        .expect("a line naming ENOSPC");
    assert!(
        line.contains(&env.state_dir().display().to_string()) && line.contains("free space there"),
        "{line}"
    );
    // Wait for the batch to settle (each certificate renewed or failed).
    wait_until(2 * MINUTE, "every forced renewal done", || {
        let log = &daemon.log_text()[before..];
        names.iter().all(|n| {
            log.lines()
                .any(|l| is_about(l, n) && (l.contains("renewed") || l.contains("renewal failed")))
        })
    });
    assert_intact(&env, &names);
    let renewed_while_full = versions(&env, &names).iter().filter(|v| **v >= 2).count();
    assert!(
        renewed_while_full < names.len(),
        "the disk never filled up: all renewed"
    );

    // Space returns: the failed renewals are retried on their own.
    for file in &files {
        let _ = std::fs::remove_file(file);
    }
    state.remount("size=8m");
    wait_until(
        4 * MINUTE,
        "every certificate renewed once space is back",
        || versions(&env, &names).iter().all(|v| *v >= 2),
    );
    assert_intact(&env, &names);
    drop(daemon);
}

#[test]
fn a_read_only_state_directory_is_refused_at_start_with_exit_4() {
    if !can_mount() {
        return;
    }
    let env = Env::new();
    let state = Tmpfs::mount(&env.state_dir(), "size=1m");
    env.write_config("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n");
    env.store(); // its directories exist; the next start cannot write there
    state.remount("ro");
    for args in [&["run"][..], &["renew"][..]] {
        let run = env.renewd(args);
        assert_eq!(run.code, 4, "{args:?}: {run:?}");
        for part in [
            env.state_dir().display().to_string(),
            "Read-only file system".to_owned(),
            "make it writable".to_owned(),
        ] {
            assert!(run.stderr.contains(&part), "{args:?}: {part}\n{run:?}");
        }
    }
}
