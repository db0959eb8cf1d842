//! dns-01 end to end, Pebble validating for real each time: rfc2136 against a
//! real BIND with a TSIG key from `tsig-keygen`, cloudflare against a local
//! fake of its API that publishes through challtestsrv, and exec with a hook
//! that does the same.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use hickory_proto::rr::{RData, RecordType};

use crate::fixture::{
    Bind, CLOUDFLARE_TOKEN as TOKEN, Env, FakeCloudflare, TSIG_KEY_NAME as KEY_NAME, dns_query,
    verify_chain, write_secret,
};

/// Writes an executable script.
fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The TXT values at `name` as `server` answers them.
fn txt_values(server: SocketAddr, name: &str) -> Vec<String> {
    let reply = dns_query(server, name, RecordType::TXT).expect("DNS answer");
    reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(txt) => Some(txt.to_string()),
            _ => None,
        })
        .collect()
}

/// The certificate's domains, sorted.
fn issued_domains(env: &Env, name: &str) -> Vec<String> {
    let lineage = env.store().lineage(name).unwrap().expect("a lineage");
    assert!(lineage.key_matches, "key does not match");
    let mut domains = lineage.cert.domains.clone();
    domains.sort();
    domains
}

fn sorted(domains: &[&str]) -> Vec<String> {
    let mut domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
    domains.sort();
    domains
}

// ---------------------------------------------------------------- rfc2136

const WILDCARD_DNS_TEST: &str = r#"
[[certificate]]
name = "wild"
domains = ["*.dns.test", "dns.test"]
solvers = ["dns"]
"#;

#[test]
fn rfc2136_gets_a_wildcard_from_bind_and_removes_its_records() {
    let env = Env::new();
    let bind = Bind::start(env.dir.path());
    env.pebble.restart_with_dns_server(bind.addr());
    env.write_config(&format!(
        "{}{WILDCARD_DNS_TEST}",
        bind.solver_toml(&bind.key_file)
    ));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}\n--- named\n{}", bind.log());
    assert!(run.stdout.contains("wild: renewed: version 1"), "{run:?}");
    assert_eq!(
        issued_domains(&env, "wild"),
        sorted(&["*.dns.test", "dns.test"])
    );
    verify_chain(&env.pebble.root, &env.store().live_dir("wild")).unwrap();

    // Both values were added beside each other (the wildcard's and the base
    // domain's live at the same name), then each deleted on its own.
    let log = bind.log();
    let added = "adding an RR at '_acme-challenge.dns.test' TXT";
    let deleted = "deleting an RR at _acme-challenge.dns.test TXT";
    assert_eq!(log.matches(added).count(), 2, "{log}");
    assert_eq!(log.matches(deleted).count(), 2, "{log}");
    assert!(!log.contains("deleting rrset"), "{log}");
    assert_eq!(
        txt_values(bind.addr(), "_acme-challenge.dns.test."),
        Vec::<String>::new()
    );
}

#[test]
fn rfc2136_follows_a_cname_from_acme_challenge_to_the_delegated_zone() {
    let env = Env::new();
    let bind = Bind::start(env.dir.path());
    env.pebble.restart_with_dns_server(bind.addr());
    env.write_config(&format!(
        "{}\n[[certificate]]\nname = \"alias\"\ndomains = [\"alias.dns.test\"]\n\
         solvers = [\"dns\"]\n",
        bind.solver_toml(&bind.key_file)
    ));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}\n--- named\n{}", bind.log());
    assert_eq!(issued_domains(&env, "alias"), sorted(&["alias.dns.test"]));
    // Added and removed at the CNAME's target only.
    let log = bind.log();
    let target = "at '_acme-challenge.alias.acme.test' TXT";
    assert_eq!(
        log.matches(&format!("adding an RR {target}")).count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("adding an RR at '_acme-challenge.alias.dns.test'"),
        "{log}"
    );
    assert_eq!(
        txt_values(bind.addr(), "_acme-challenge.alias.acme.test."),
        Vec::<String>::new()
    );
}

#[test]
fn rfc2136_with_a_wrong_tsig_secret_fails_naming_the_server() {
    let env = Env::new();
    let bind = Bind::start(env.dir.path());
    let wrong = env.dir.path().join("wrong.key");
    let secret = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    write_secret(
        &wrong,
        &format!("key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
    );
    env.write_config(&format!("{}{WILDCARD_DNS_TEST}", bind.solver_toml(&wrong)));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!(
        "TSIG key \"{KEY_NAME}\" rejected by {} (NOTAUTH, BADSIG: the secret in {} is not the \
         one the server has",
        bind.addr(),
        wrong.display()
    );
    assert!(run.stdout.contains(&expected), "{run:?}");
    assert!(!env.store().live_dir("wild").exists());
}

// ------------------------------------------------------------- cloudflare

fn cloudflare_config(env: &Env, api: &FakeCloudflare, token: &str) -> String {
    let token_file = env.dir.path().join("cloudflare.token");
    write_secret(&token_file, &format!("{token}\n"));
    format!(
        "[solver.dns]\ntype = \"dns-01\"\nprovider = \"cloudflare\"\napi_token_file = \"{}\"\n\
         api_url = \"{}\"\npropagation_timeout = \"20s\"\nresolvers = [\"127.0.0.1:{}\"]\n\n\
         [[certificate]]\nname = \"cf\"\ndomains = [\"*.cf.example.com\", \"cf.example.com\"]\n\
         solvers = [\"dns\"]\n",
        token_file.display(),
        api.api_url(),
        env.pebble.challtestsrv_dns_port()
    )
}

#[test]
fn cloudflare_gets_a_wildcard_through_the_api_and_deletes_its_records() {
    let env = Env::new();
    let api = FakeCloudflare::start(env.pebble.challtestsrv_mgmt_port());
    env.write_config(&cloudflare_config(&env, &api, TOKEN));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        issued_domains(&env, "cf"),
        sorted(&["*.cf.example.com", "cf.example.com"])
    );
    verify_chain(&env.pebble.root, &env.store().live_dir("cf")).unwrap();

    let state = api.state.lock().unwrap();
    assert!(
        state.requests.iter().all(|(_, authorized)| *authorized),
        "a request without the Bearer token: {:?}",
        state.requests
    );
    // The zone was found by walking up from cf.example.com.
    let asked: Vec<&str> = state.requests.iter().map(|(r, _)| r.as_str()).collect();
    assert!(
        asked.contains(&"GET /client/v4/zones?name=cf.example.com"),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"GET /client/v4/zones?name=example.com"),
        "{asked:?}"
    );
    assert_eq!((state.created, state.deleted), (2, 2), "{asked:?}");
    assert!(state.records.is_empty());
    let dns = SocketAddr::from(([127, 0, 0, 1], env.pebble.challtestsrv_dns_port()));
    assert_eq!(
        txt_values(dns, "_acme-challenge.cf.example.com."),
        Vec::<String>::new()
    );
}

#[test]
fn cloudflare_with_a_rejected_token_fails_naming_the_token_file() {
    let env = Env::new();
    let api = FakeCloudflare::start(env.pebble.challtestsrv_mgmt_port());
    env.write_config(&cloudflare_config(&env, &api, "revoked-token"));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    let token_file = env.dir.path().join("cloudflare.token");
    for expected in [
        "HTTP 403 Forbidden: [9109] Invalid access token".to_owned(),
        format!("check the token in {}", token_file.display()),
    ] {
        assert!(run.stdout.contains(&expected), "{expected}\n{run:?}");
    }
}

// ------------------------------------------------------------------- exec

fn exec_config(env: &Env, hook: &Path) -> String {
    format!(
        "[solver.dns]\ntype = \"dns-01\"\nprovider = \"exec\"\ncommand = [\"{}\"]\n\
         propagation_timeout = \"20s\"\nresolvers = [\"127.0.0.1:{}\"]\n\n\
         [[certificate]]\nname = \"hooked\"\n\
         domains = [\"exec.example.com\", \"*.exec.example.com\"]\nsolvers = [\"dns\"]\n",
        hook.display(),
        env.pebble.challtestsrv_dns_port()
    )
}

#[test]
fn exec_hook_publishes_through_challtestsrv_and_gets_a_certificate() {
    let env = Env::new();
    let calls = env.dir.path().join("hook-calls");
    let hook = env.dir.path().join("dns-hook");
    write_script(
        &hook,
        &format!(
            "#!/bin/sh\nset -eu\necho \"$*\" >> {calls}\nurl=http://127.0.0.1:{port}\n\
             case \"$1\" in\n  \
             set) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2\\\",\\\"value\\\":\\\"$3\\\"}}\" $url/set-txt ;;\n  \
             unset) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2\\\"}}\" $url/clear-txt ;;\n\
             esac\n",
            calls = calls.display(),
            port = env.pebble.challtestsrv_mgmt_port()
        ),
    );
    env.write_config(&exec_config(&env, &hook));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        issued_domains(&env, "hooked"),
        sorted(&["*.exec.example.com", "exec.example.com"])
    );
    verify_chain(&env.pebble.root, &env.store().live_dir("hooked")).unwrap();

    let calls = std::fs::read_to_string(calls).unwrap();
    let calls: Vec<Vec<&str>> = calls.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    for (i, call) in calls.iter().enumerate() {
        let action = if i < 2 { "set" } else { "unset" };
        assert_eq!(
            call[..2],
            [action, "_acme-challenge.exec.example.com."],
            "{calls:?}"
        );
        assert_eq!(call.len(), 3, "{calls:?}");
    }
    // Two authorizations, two different values; each unset names its own.
    assert_ne!(calls[0][2], calls[1][2]);
    let mut set: Vec<&str> = calls[..2].iter().map(|c| c[2]).collect();
    let mut unset: Vec<&str> = calls[2..].iter().map(|c| c[2]).collect();
    set.sort_unstable();
    unset.sort_unstable();
    assert_eq!(set, unset);
}

#[test]
fn a_failing_exec_hook_is_reported_with_its_stderr() {
    let env = Env::new();
    let hook = env.dir.path().join("dns-hook");
    write_script(
        &hook,
        "#!/bin/sh\necho 'zone exec.example.com is locked by another deploy' >&2\nexit 1\n",
    );
    env.write_config(&exec_config(&env, &hook));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!(
        "solver dns: hook {} set _acme-challenge.exec.example.com. ",
        hook.display()
    );
    assert!(run.stdout.contains(&expected), "{run:?}");
    assert!(
        run.stdout
            .contains("failed: exit status: 1: zone exec.example.com is locked by another deploy"),
        "{run:?}"
    );
}

#[test]
fn records_of_an_order_abandoned_at_stop_are_removed() {
    let env = Env::new();
    let calls = env.dir.path().join("hook-calls");
    let hook = env.dir.path().join("dns-hook");
    // Publishes nowhere: the record never becomes visible, so the renewal
    // waits (20 s) for it, longer than a stop lets renewals finish (5 s).
    write_script(
        &hook,
        &format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display()),
    );
    env.write_config(&exec_config(&env, &hook));
    let mut daemon = crate::fixture::Daemon::start(&env);
    crate::fixture::wait_until(std::time::Duration::from_secs(60), "a record set", || {
        std::fs::read_to_string(&calls).is_ok_and(|c| c.starts_with("set "))
    });
    assert_eq!(daemon.stop(), Some(0), "graceful stop");
    let calls = std::fs::read_to_string(&calls).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    assert_eq!(
        lines[1],
        lines[0].replacen("set ", "unset ", 1),
        "the record removed before exit"
    );
}
