//! Certificates for IP addresses (RFC 8738) against a real Pebble, which
//! validates an `ip` identifier by connecting to the address itself: http-01,
//! tls-alpn-01 (asked for by the reverse-DNS name), a name and an address in
//! one certificate, IPv6 loopback, and nginx serving one to a client that
//! sends no SNI.

use crate::fixture::{Env, Nginx, verify_chain};

fn status_json(env: &Env) -> (i32, serde_json::Value) {
    let run = env.renewd(&["status", "--json"]);
    (
        run.code,
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}")),
    )
}

/// Issues everything in the config, then checks that `name` holds exactly
/// `sans` (sorted), chains to Pebble's root, and is neither due again nor unhealthy —
/// which needs the addresses read back from the certificate to match the
/// configured ones.
fn issued_with(env: &Env, name: &str, solver: &str, sans: &[&str]) {
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("(CA pebble, solver {solver})")),
        "{run:?}"
    );
    // The CA puts names before addresses, whatever the order asked.
    let mut issued = env.store().lineage(name).unwrap().unwrap().cert.domains;
    issued.sort();
    assert_eq!(issued, sans);
    verify_chain(&env.pebble.root, &env.store().live_dir(name)).unwrap();
    let again = env.renewd(&["renew", name]);
    assert!(
        again.stdout.contains(&format!("{name}: not due")),
        "{again:?}"
    );
    let (code, json) = status_json(env);
    assert_eq!(code, 0, "{json}");
}

#[test]
fn a_name_and_an_address_are_issued_in_one_certificate_through_http_01() {
    let env = Env::new();
    env.write_config(
        "[[certificate]]\nname = \"mixed\"\ndomains = [\"127.0.0.1\", \"ip.example.com\"]\n",
    );
    issued_with(&env, "mixed", "web", &["127.0.0.1", "ip.example.com"]);
    let (_, json) = status_json(&env);
    assert_eq!(
        json["certificates"][0]["domains"],
        serde_json::json!(["127.0.0.1", "ip.example.com"]),
        "{json}"
    );
}

#[test]
fn an_address_is_issued_through_tls_alpn_01_answering_its_reverse_dns_name() {
    let env = Env::new();
    env.write_config_raw(&format!(
        "{}\n{}\n[[certificate]]\nname = \"ip\"\ndomains = [\"127.0.0.1\"]\n",
        env.pebble.ca_toml("pebble"),
        env.pebble.tlsalpn01_solver_toml("alpn"),
    ));
    issued_with(&env, "ip", "alpn", &["127.0.0.1"]);
}

/// Whether this machine has IPv6 loopback (CI machines without IPv6 skip the
/// IPv6 test; the reverse name and the IPv6 SANs are unit-tested too).
fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn ipv6_loopback_is_issued_through_http_01_and_tls_alpn_01() {
    if !ipv6_loopback() {
        eprintln!("skipped: no IPv6 loopback (::1) on this machine");
        return;
    }
    let env = Env::new();
    let ca = env.pebble.ca_toml("pebble");
    // Written the long way: the certificate must still match it.
    let certificate = |solver: &str| {
        format!("[[certificate]]\nname = \"{solver}\"\ndomains = [\"0:0:0:0:0:0:0:1\"]\n")
    };
    env.write_config_raw(&format!(
        "{ca}\n[solver.web6]\ntype = \"http-01\"\nlisten = \"[::1]:{}\"\n\n{}",
        env.pebble.http01_port,
        certificate("web6"),
    ));
    issued_with(&env, "web6", "web6", &["::1"]);
    env.write_config_raw(&format!(
        "{ca}\n[solver.alpn6]\ntype = \"tls-alpn-01\"\nlisten = \"[::1]:{}\"\n\n{}",
        env.pebble.tlsalpn01_port,
        certificate("alpn6"),
    ));
    issued_with(&env, "alpn6", "alpn6", &["::1"]);
}

#[test]
fn an_address_certificate_is_verified_without_sni_beside_a_named_one() {
    let env = Env::new();
    let certificates = |extra: &str| {
        format!(
            "[[certificate]]\nname = \"ip\"\ndomains = [\"127.0.0.1\"]\n{extra}\n\
             [[certificate]]\nname = \"named\"\ndomains = [\"named.example.com\"]\n{extra}"
        )
    };
    env.write_config(&certificates(""));
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    // The address's server comes first: nginx's default, which is what a
    // client sending no SNI gets; the named one is chosen by its SNI.
    let nginx = Nginx::start(
        env.dir.path(),
        &env.store(),
        &[("ip", "127.0.0.1"), ("named", "named.example.com")],
    );
    env.write_config(&certificates(&format!(
        "reload = [{{ signal = \"HUP\", pid_file = \"{}\" }}]\nverify = [\"{}\"]\n",
        nginx.pid_file.display(),
        nginx.target()
    )));
    let run = env.renewd(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    for name in ["ip", "named"] {
        assert!(
            run.stdout
                .contains(&format!("{name}: served at {}", nginx.target())),
            "{run:?}"
        );
    }
    let (code, json) = status_json(&env);
    assert_eq!(code, 0, "{json}");
    for cert in json["certificates"].as_array().unwrap() {
        assert_eq!(cert["served"][0]["matches"], true, "{cert}");
    }
}
