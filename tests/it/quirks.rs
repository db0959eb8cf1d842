//! Other CAs' quirks, reproduced with a rewriting proxy in front of Pebble.

use crate::fixture::{Env, RewritingProxy};

/// A config whose CA `quirky` is `proxy` in front of `env`'s Pebble, plus `rest`.
fn through(env: &Env, proxy: &RewritingProxy, rest: &str) {
    through_with(env, proxy, "", rest);
}

/// As [`through`], with extra `[daemon]` lines.
fn through_with(env: &Env, proxy: &RewritingProxy, daemon: &str, rest: &str) {
    env.write_config_raw(&format!(
        "{daemon}\n[ca.quirky]\ndirectory = \"{}\"\ntrust = \"{}\"\n\n{}\n{rest}",
        proxy.dir_url(),
        proxy.trust.display(),
        env.pebble.http01_solver_toml("web")
    ));
}

#[test]
fn an_authorization_the_ca_marks_invalid_ends_the_attempt_at_once() {
    let env = Env::new();
    // The CA leaves the order "pending" though its authorization is invalid.
    let proxy = RewritingProxy::start(&env.pebble, env.dir.path(), |_, _, json| {
        if json.get("finalize").is_some() && json["status"] == "invalid" {
            json["status"] = "pending".into();
            if let Some(order) = json.as_object_mut() {
                order.remove("error");
            }
        }
    });
    // A solver on a port Pebble's validator does not dial: validation fails.
    let elsewhere = crate::fixture::free_port();
    through(
        &env,
        &proxy,
        &format!(
            "[solver.nowhere]\ntype = \"http-01\"\nlisten = \"127.0.0.1:{elsewhere}\"\n\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nsolvers = [\"nowhere\"]\n"
        ),
    );
    let started = std::time::Instant::now();
    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "waited for the order: {:?}",
        started.elapsed()
    );
    assert!(
        run.stdout
            .contains("a.example.com: http-01 validation with solver nowhere failed"),
        "{run:?}"
    );
}

#[test]
fn an_order_whose_answer_omits_replaces_is_used_not_abandoned() {
    let env = Env::new();
    // The CA accepts `replaces` but does not echo it in the order object.
    let proxy = RewritingProxy::start(&env.pebble, env.dir.path(), |_, _, json| {
        if json.get("finalize").is_some() {
            if let Some(order) = json.as_object_mut() {
                order.remove("replaces");
            }
        }
    });
    through(
        &env,
        &proxy,
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n",
    );
    assert_eq!(env.renewd(&["renew"]).code, 0, "first issuance");
    let run = env.renewd(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("a: renewed: version 2"), "{run:?}");
    let orders: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r == "POST /order-plz")
        .collect();
    assert_eq!(orders.len(), 2, "one order per renewal, none orphaned");
    assert!(
        run.stderr
            .contains("the CA created the order but its answer was refused"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("retrying without"), "{run:?}");
}

#[test]
fn a_revocation_through_renewd_replaces_even_when_ari_never_shows_it() {
    let env = Env::new();
    // The CA's ARI window never moves, revoked or not.
    let proxy = RewritingProxy::start(&env.pebble, env.dir.path(), |_, path, json| {
        if path.contains("renewalInfo") {
            json["suggestedWindow"] = serde_json::json!({
                "start": "2099-01-01T00:00:00Z",
                "end": "2099-01-02T00:00:00Z"
            });
        }
    });
    through_with(
        &env,
        &proxy,
        "check_interval = \"2s\"\n",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n",
    );
    let daemon = crate::fixture::Daemon::start(&env);
    let minute = std::time::Duration::from_secs(60);
    let version = |env: &Env| crate::fixture::versions(env, &["a".to_owned()])[0];
    crate::fixture::wait_until(minute, "a issued", || version(&env) == 1);
    let run = env.renewd(&["revoke", "a"]);
    assert_eq!(run.code, 0, "{run:?}");
    crate::fixture::wait_until(minute, "a replaced", || version(&env) == 2);
    assert!(
        !daemon.log_text().contains("revoked-detected"),
        "ARI never showed it: {}",
        daemon.log_text()
    );
}
