//! Fleet mode: three renewd processes on one real etcd cluster (three
//! members) and one Pebble.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::fixture::{
    EtcdSecure as Secure, Fleet, FleetSetup as Setup, FleetSolver, Nginx, RewritingProxy,
    WebrootServer, all_done, challtestsrv, many_certificates, run_renewd, toml_list, wait_until,
};

/// Orders in flight per node: Pebble 2.10 can deadlock under many concurrent
/// orders (docs/benchmarks.md), and three nodes add theirs up.
const FEW_IN_FLIGHT: &str = "max_concurrent = 3\n";

/// Waits until every node has every certificate of `names` live, with a
/// matching key, and the same serial on all nodes; the serials.
fn wait_in_step(fleet: &Fleet, names: &[String], timeout: Duration) -> Vec<String> {
    wait_renewed(fleet, &[0, 1, 2], names, &[], timeout)
}

/// Waits until `nodes` all have the same live serial (key matching) for every
/// certificate of `names`, none of them in `before`; the serials.
fn wait_renewed(
    fleet: &Fleet,
    nodes: &[usize],
    names: &[String],
    before: &[String],
    timeout: Duration,
) -> Vec<String> {
    let before: std::collections::HashSet<&String> = before.iter().collect();
    let in_step = |name: &String| {
        let here: Vec<Option<String>> = nodes.iter().map(|&i| fleet.serial(i, name)).collect();
        here[0].as_ref().is_some_and(|s| !before.contains(s)) && here.iter().all(|s| *s == here[0])
    };
    let deadline = std::time::Instant::now() + timeout;
    let mut all_in_step = all_done(names.len(), |i| in_step(&names[i]));
    while !all_in_step() {
        assert!(
            std::time::Instant::now() < deadline,
            "nodes not in step after {timeout:?}\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    names
        .iter()
        .map(|name| fleet.serial(nodes[0], name).unwrap())
        .collect()
}

/// The holders etcd records: certificate → node.
fn holders(fleet: &Fleet) -> Vec<(String, String)> {
    let out = fleet.etcd.etcdctl(&["get", "--prefix", "/renewd/holders/"]);
    let text = String::from_utf8_lossy(&out).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .filter_map(|kv| {
            let name = kv.first()?.strip_prefix("/renewd/holders/")?;
            Some((name.to_owned(), (*kv.get(1)?).to_owned()))
        })
        .collect()
}

#[test]
fn fifty_certificates_are_issued_once_each_and_live_on_every_node_with_no_clear_key_in_etcd() {
    let (names, certs) = many_certificates(50);
    let mut fleet = Fleet::new(FEW_IN_FLIGHT, &certs);
    // The CA reaches whichever node the "balancer" picks for a name.
    for (i, name) in names.iter().enumerate() {
        fleet.route(&format!("{name}.example.com"), i % 3);
    }
    fleet.start_all();

    wait_in_step(&fleet, &names, Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        fleet.issued(),
        50,
        "one order per certificate\n{}",
        fleet.logs()
    );

    // The renewals were spread: every node held some leases.
    let nodes: HashSet<String> = holders(&fleet).into_iter().map(|(_, n)| n).collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");

    // One ACME account for the fleet: every node's copy is the one in etcd.
    let urls: HashSet<String> = (0..3).map(|i| account_url(&fleet, i)).collect();
    assert_eq!(urls.len(), 1, "one account on every node: {urls:?}");

    // Nothing in etcd holds a private key in the clear.
    let all = fleet.etcd.etcdctl(&["get", "--prefix", ""]);
    let all = String::from_utf8_lossy(&all);
    assert!(all.contains("/renewd/certs/c0"), "versions are in etcd");
    assert!(
        all.contains("/renewd/accounts/pebble"),
        "the account is in etcd"
    );
    assert!(all.contains("BEGIN CERTIFICATE"));
    assert!(!all.contains("PRIVATE KEY"), "a clear private key in etcd");
    assert!(!all.contains("key_pkcs8"), "a clear account key in etcd");
}

#[test]
fn a_changed_ca_directory_gives_the_fleet_one_new_account() {
    let (names, certs) = many_certificates(12);
    let mut fleet = Fleet::new(FEW_IN_FLIGHT, &certs);
    fleet.start_all();
    let before = wait_in_step(&fleet, &names, Duration::from_secs(180));
    // A node that ordered nothing has no copy of the account yet.
    let accounts = |fleet: &Fleet| -> Vec<(String, serde_json::Value)> {
        (0..3)
            .filter_map(|i| {
                let path = fleet.state_dir(i).join("accounts/pebble/account.json");
                let stored: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(path).ok()?).unwrap();
                let url = stored["credentials"]["id"].as_str()?.to_owned();
                Some((url, stored["directory"].clone()))
            })
            .collect()
    };
    let old: HashSet<String> = accounts(&fleet).into_iter().map(|(url, _)| url).collect();
    assert_eq!(old.len(), 1, "{old:?}");

    // The same Pebble under another URL is another directory to renewd.
    let moved = fleet.pebble.dir_url.replace("127.0.0.1", "localhost");
    let ca = fleet
        .pebble
        .ca_toml("pebble")
        .replace(&fleet.pebble.dir_url, &moved);
    fleet.use_ca(ca, &certs);
    for i in 0..3 {
        drop(fleet.nodes[i].take());
        fleet.start(i);
    }
    let mut args = vec!["renew", "--force"];
    args.extend(names.iter().map(String::as_str));
    let run = run_renewd(&fleet.config(0), &args);
    assert_eq!(run.code, 0, "{run:?}\n{}", fleet.logs());
    wait_renewed(&fleet, &[0, 1, 2], &names, &before, Duration::from_secs(60));

    let now = accounts(&fleet);
    assert!(now.len() >= 2, "at least two nodes ordered: {now:?}");
    let new: HashSet<&String> = now.iter().map(|(url, _)| url).collect();
    assert_eq!(new.len(), 1, "one new account for the fleet: {now:?}");
    assert!(
        !old.contains(new.iter().next().unwrap().as_str()),
        "{now:?} {old:?}"
    );
    assert!(now.iter().all(|(_, dir)| dir == moved.as_str()), "{now:?}");
}

/// The URL of the ACME account node `i` uses at Pebble.
fn account_url(fleet: &Fleet, i: usize) -> String {
    let path = fleet.state_dir(i).join("accounts/pebble/account.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    stored["credentials"]["id"].as_str().unwrap().to_owned()
}

/// Waits until every node has `names` issued once each while the CA reached
/// web1 only (challtestsrv's default answer), and checks that web2 and web3
/// held and ordered some of them: their validations went through web1.
fn assert_validated_through_web1(fleet: &Fleet, names: &[String]) {
    wait_in_step(fleet, names, Duration::from_secs(180));
    assert_eq!(fleet.issued(), names.len(), "{}", fleet.logs());
    let held_elsewhere = holders(fleet)
        .iter()
        .filter(|(_, node)| node != "web1")
        .count();
    assert!(held_elsewhere > 0, "web2 and web3 ordered some");
}

#[test]
fn validation_succeeds_when_the_ca_reaches_only_one_node_while_others_hold_the_leases() {
    let (names, certs) = many_certificates(12);
    let mut fleet = Fleet::new(FEW_IN_FLIGHT, &certs);
    // challtestsrv answers 127.0.0.1 for every name: only web1 is reached.
    fleet.start_all();

    assert_validated_through_web1(&fleet, &names);
    let validated_by_web1 = fleet.node(0).log_text();
    assert!(
        !validated_by_web1.contains("not every node acknowledged"),
        "{validated_by_web1}"
    );
}

#[test]
fn tls_alpn_01_is_shared_by_the_fleet_over_an_etcd_with_mutual_tls_and_authentication() {
    let (names, certs) = many_certificates(6);
    let setup = Setup {
        solver: FleetSolver::TlsAlpn01,
        secure_etcd: true,
    };
    let mut fleet = Fleet::with_setup(&[], FEW_IN_FLIGHT, &certs, setup);
    // challtestsrv answers 127.0.0.1 for every name: the CA reaches web1's
    // tls-alpn-01 listener only.
    fleet.start_all();

    assert_validated_through_web1(&fleet, &names);
    for i in 0..3 {
        let (code, status) = fleet.status(i);
        assert_eq!(code, 0, "{status}");
        assert_eq!(status["cluster"]["connected"], true, "{status}");
    }

    // etcd enforces its users: renewd's may use /renewd/ and nothing else,
    // and the client certificate alone is no user.
    for (user, key) in [(Some(Secure::USER), "/elsewhere"), (None, "/renewd/force")] {
        let out = fleet.etcd.etcdctl_as(&["get", key], user).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("permission denied"),
            "{user:?} {key}: {stderr}"
        );
    }
}

#[test]
fn http_01_webroots_of_every_node_answer_for_the_fleet() {
    let (names, certs) = many_certificates(6);
    let setup = Setup {
        solver: FleetSolver::Webroot,
        ..Setup::default()
    };
    let mut fleet = Fleet::with_setup(&[], FEW_IN_FLIGHT, &certs, setup);
    // Each node's web server serves its own webroot; the CA reaches web1's.
    let _servers: Vec<WebrootServer> = (0..3)
        .map(|i| {
            std::fs::create_dir_all(fleet.webroot(i)).unwrap();
            WebrootServer::start_on(
                &fleet.webroot(i),
                &fleet.address(i),
                fleet.pebble.http01_port,
            )
        })
        .collect();
    fleet.start_all();

    assert_validated_through_web1(&fleet, &names);
    // Every node cleaned up what it wrote for the others.
    for i in 0..3 {
        let dir = fleet.webroot(i).join(".well-known/acme-challenge");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "web{}: {left:?}", i + 1);
    }
}

#[test]
fn sigusr1_on_one_node_renews_each_certificate_once_deploys_and_verifies_it_everywhere() {
    let (names, certs) = many_certificates(9);
    let mut fleet = Fleet::new(FEW_IN_FLIGHT, &certs);
    fleet.start_all();
    wait_in_step(&fleet, &names, Duration::from_secs(120));
    // Each node serves every certificate with its own nginx, reloaded by a
    // hook that counts its runs.
    let mut nginxes = Vec::new();
    for i in 0..3 {
        let sites: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.clone(), format!("{n}.example.com")))
            .collect();
        let sites: Vec<(&str, &str)> = sites
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let nginx = Nginx::start(&fleet.node_dir(i), &fleet.store(i), &sites);
        let counter = fleet.node_dir(i).join("reloads");
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("echo reload >> {}; exec \"$0\" \"$@\"", counter.display()),
        ];
        argv.extend(nginx.argv(&["-s", "reload"]));
        let with_deploy: String = names
            .iter()
            .map(|n| {
                format!(
                    "[[certificate]]\nname = \"{n}\"\ndomains = [\"{n}.example.com\"]\n\
                     reload = [{{ exec = {} }}]\nverify = [\"{}\"]\n\n",
                    toml_list(&argv),
                    nginx.target()
                )
            })
            .collect();
        fleet.write_config(i, &with_deploy);
        fleet.node(i).signal(Signal::SIGHUP);
        nginxes.push(nginx);
    }
    for i in 0..3 {
        wait_until(Duration::from_secs(30), "the config reload", || {
            fleet.node(i).log_text().contains("config reloaded")
        });
    }
    let before = wait_in_step(&fleet, &names, Duration::from_secs(10));
    let issued = fleet.issued();

    fleet.node(1).signal(Signal::SIGUSR1);

    let after = wait_renewed(
        &fleet,
        &[0, 1, 2],
        &names,
        &before,
        Duration::from_secs(120),
    );
    // Deployed and verified on every node, as any node's status shows.
    wait_until(
        Duration::from_secs(60),
        "every node to verify the new certificates",
        || {
            let (_, json) = fleet.status(2);
            json["certificates"].as_array().is_some_and(|certs| {
                certs.len() == names.len()
                    && certs.iter().all(|c| {
                        let deployed = c["deployed"].as_array().cloned().unwrap_or_default();
                        deployed.len() == 3
                            && deployed.iter().all(|d| {
                                d["verified"] == true && after.iter().any(|s| d["serial"] == *s)
                            })
                    })
            })
        },
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        fleet.issued() - issued,
        names.len(),
        "each renewed once\n{}",
        fleet.logs()
    );
    for i in 0..3 {
        let reloads =
            std::fs::read_to_string(fleet.node_dir(i).join("reloads")).unwrap_or_default();
        assert_eq!(
            reloads.lines().count(),
            1,
            "web{}: nginx reloaded once\n{}",
            i + 1,
            fleet.logs()
        );
        let (code, json) = fleet.status(i);
        assert_eq!(code, 0, "web{}: {json}", i + 1);
        assert_eq!(json["cluster"]["connected"], true, "{json}");
        assert!(json["certificates"][0]["holder"].is_string(), "{json}");
    }
}

#[test]
fn a_holder_killed_in_the_middle_of_a_mass_renewal_leaves_the_others_to_finish_it() {
    let (names, certs) = many_certificates(15);
    // Pebble validates after a random pause of up to 15 s: the mass renewal
    // lasts long enough to kill a node in its middle.
    let mut fleet = Fleet::with_pebble_env(&[("PEBBLE_VA_NOSLEEP", "0")], FEW_IN_FLIGHT, &certs);
    fleet.start_all();
    let before = wait_in_step(&fleet, &names, Duration::from_secs(180));
    let issued = fleet.issued();

    fleet.node(0).signal(Signal::SIGUSR1);
    wait_until(
        Duration::from_secs(30),
        "web2 to start forced orders",
        || fleet.node(1).log_text().contains("reason=\"forced\""),
    );
    fleet.nodes[1].as_mut().unwrap().kill9();

    wait_renewed(&fleet, &[0, 2], &names, &before, Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(4));
    let orders = fleet.issued() - issued;
    // web2's orders in flight may be issued and lost with it: at most
    // max_concurrent (3) extra.
    assert!(
        (names.len()..=names.len() + 3).contains(&orders),
        "{orders} orders for {} certificates\n{}",
        names.len(),
        fleet.logs()
    );
}

#[test]
fn a_node_that_takes_a_certificate_over_keeps_its_holders_backoff_and_renewal_time() {
    let (names, mut certs) = many_certificates(6);
    certs += "[[certificate]]\nname = \"bad\"\ndomains = [\"bad.example.com\"]\n";
    let fleet_setup = Fleet::new(FEW_IN_FLIGHT, &certs);
    let mut fleet = fleet_setup;
    // Nothing answers there: every validation of `bad` fails.
    challtestsrv(
        fleet.pebble.challtestsrv_mgmt_port(),
        "/add-a",
        &serde_json::json!({ "host": "bad.example.com.", "addresses": ["127.0.0.9"] }),
    )
    .unwrap();
    fleet.start_all();
    wait_in_step(&fleet, &names, Duration::from_secs(180));

    // `bad` failed once: its holder waits a minute before the next attempt.
    let holder = |fleet: &Fleet, name: &str| {
        holders(fleet)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
    };
    let node_index = |node: &str| node.trim_start_matches("web").parse::<usize>().unwrap() - 1;
    let status_of = |fleet: &Fleet, i: usize, name: &str| {
        let (_, json) = fleet.status(i);
        json["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    let mut old = None;
    wait_until(Duration::from_secs(60), "bad to fail once", || {
        let Some(node) = holder(&fleet, "bad") else {
            return false;
        };
        let status = status_of(&fleet, node_index(&node), "bad");
        let failed = status["last_attempt"].is_string();
        old = Some((node, status));
        failed
    });
    let (old_node, old_status) = old.unwrap();
    let i = node_index(&old_node);
    // A good certificate of the same holder, with the renewal time it drew.
    let good = holders(&fleet)
        .into_iter()
        .find(|(n, node)| *node == old_node && n != "bad")
        .map(|(n, _)| (n.clone(), status_of(&fleet, i, &n)["next_renewal"].clone()));
    std::thread::sleep(Duration::from_secs(2)); // a tick to write it to etcd
    fleet.nodes[i].as_mut().unwrap().kill9();

    let mut new_node = String::new();
    wait_until(
        Duration::from_secs(30),
        "another node to take bad over",
        || {
            holder(&fleet, "bad").is_some_and(|node| {
                new_node = node;
                new_node != old_node
            })
        },
    );
    let j = node_index(&new_node);
    let taken = status_of(&fleet, j, "bad");
    assert_eq!(taken["last_attempt"], old_status["last_attempt"], "{taken}");
    assert_eq!(taken["last_result"], old_status["last_result"], "{taken}");
    // Without the holder's backoff it would order at once.
    std::thread::sleep(Duration::from_secs(8));
    let log = fleet.node(j).log_text();
    assert!(
        !log.contains("certificate{cert_name=bad}: renewd::renew: renewing"),
        "{new_node} retried before the backoff ended:\n{log}"
    );
    if let Some((name, next_renewal)) = good {
        let mut took = false;
        wait_until(Duration::from_secs(30), "the good one taken over", || {
            took = holder(&fleet, &name).is_some_and(|node| node != old_node);
            took
        });
        let node = node_index(&holder(&fleet, &name).unwrap());
        assert_eq!(status_of(&fleet, node, &name)["next_renewal"], next_renewal);
    }
}

#[test]
fn renew_force_on_one_node_waits_for_the_outcomes_wherever_they_happen() {
    let (names, mut certs) = many_certificates(5);
    certs += "[[certificate]]\nname = \"bad\"\ndomains = [\"bad.example.com\"]\n";
    let mut fleet = Fleet::new(FEW_IN_FLIGHT, &certs);
    challtestsrv(
        fleet.pebble.challtestsrv_mgmt_port(),
        "/add-a",
        &serde_json::json!({ "host": "bad.example.com.", "addresses": ["127.0.0.9"] }),
    )
    .unwrap();
    fleet.start_all();
    let before = wait_in_step(&fleet, &names, Duration::from_secs(180));

    let mut args = vec!["renew", "--force"];
    args.extend(names.iter().map(String::as_str));
    args.push("bad");
    let run = run_renewd(&fleet.config(2), &args);
    assert_eq!(run.code, 1, "bad failed: {run:?}");
    for name in &names {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}: {run:?}"));
        assert!(line.contains("renewed: version 2"), "{line}");
    }
    assert!(
        run.stdout.contains("bad: failed: ") && run.stdout.contains("127.0.0.9"),
        "{run:?}"
    );
    // The versions it reported are live on every node.
    wait_renewed(&fleet, &[0, 1, 2], &names, &before, Duration::from_secs(30));

    // Without --force, a certificate another node holds is that node's to
    // renew when due, and the answer says so.
    let (elsewhere, _) = holders(&fleet)
        .into_iter()
        .find(|(name, node)| node != "web3" && names.contains(name))
        .expect("a certificate web3 does not hold");
    let run = run_renewd(&fleet.config(2), &["renew", &elsewhere]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("another node of the fleet holds it"),
        "{run:?}"
    );
}

#[test]
fn a_revocation_on_a_node_that_does_not_hold_the_certificate_is_replaced_by_its_holder() {
    let (names, certs) = many_certificates(3);
    let mut fleet = Fleet::new(FEW_IN_FLIGHT, &certs);
    fleet.start_all();
    let before = wait_in_step(&fleet, &names, Duration::from_secs(120));
    let holder = holders(&fleet)
        .into_iter()
        .find(|(name, _)| name == "c0")
        .map(|(_, node)| node)
        .unwrap();
    let other = (0..3).find(|i| format!("web{}", i + 1) != holder).unwrap();
    let old_key = std::fs::read(fleet.state_dir(0).join("live/c0/privkey.pem")).unwrap();

    let run = run_renewd(
        &fleet.config(other),
        &["revoke", "c0", "--reason", "keyCompromise"],
    );
    assert_eq!(run.code, 0, "{run:?}");

    let c0 = vec!["c0".to_owned()];
    wait_renewed(
        &fleet,
        &[0, 1, 2],
        &c0,
        &before[..1],
        Duration::from_secs(60),
    );
    let new_key = std::fs::read(fleet.state_dir(0).join("live/c0/privkey.pem")).unwrap();
    assert_ne!(old_key, new_key, "a new key after keyCompromise");
    assert!(
        fleet
            .node(other)
            .log_text()
            .contains("the fleet revoked a certificate"),
        "{}",
        fleet.logs()
    );
}

#[test]
fn etcd_without_quorum_stops_orders_but_not_serving_and_the_work_resumes_with_it() {
    let (names, certs) = many_certificates(6);
    let mut fleet = Fleet::new(FEW_IN_FLIGHT, &certs);
    fleet.start_all();
    let before = wait_in_step(&fleet, &names, Duration::from_secs(120));

    // One member down: no effect.
    fleet.etcd.stop_member(0);
    fleet.node(2).signal(Signal::SIGUSR1);
    let renewed = wait_renewed(
        &fleet,
        &[0, 1, 2],
        &names,
        &before,
        Duration::from_secs(120),
    );
    // A node whose connection was to the stopped member is back on another
    // within moments (etcd's client fails over); meanwhile it says so.
    for i in 0..3 {
        wait_until(Duration::from_secs(30), "status to report all well", || {
            fleet.status(i).0 == 0
        });
    }

    // Two down: no quorum. Status says so; a new certificate is not ordered;
    // the others stay served.
    fleet.etcd.stop_member(1);
    for i in 0..3 {
        wait_until(
            Duration::from_secs(30),
            "status to report etcd gone",
            || {
                let (code, json) = fleet.status(i);
                code == 1 && json["cluster"]["connected"] == false
            },
        );
    }
    let late =
        format!("{certs}[[certificate]]\nname = \"late\"\ndomains = [\"late.example.com\"]\n");
    let issued = fleet.issued();
    for i in 0..3 {
        fleet.write_config(i, &late);
        fleet.node(i).signal(Signal::SIGHUP);
    }
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        fleet.issued(),
        issued,
        "no order without etcd\n{}",
        fleet.logs()
    );
    for i in 0..3 {
        for (name, serial) in names.iter().zip(&renewed) {
            assert_eq!(fleet.serial(i, name).as_ref(), Some(serial), "still served");
        }
    }

    // Members back: the pending certificate is issued, once.
    fleet.etcd.start_member(0);
    fleet.etcd.start_member(1);
    fleet.etcd.wait_healthy();
    wait_in_step(&fleet, &["late".to_owned()], Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fleet.issued(), issued + 1, "{}", fleet.logs());
    for i in 0..3 {
        wait_until(Duration::from_secs(30), "status healthy again", || {
            fleet.status(i).0 == 0
        });
    }
}

/// The benchmark of docs/benchmarks.md ("Fleet mode"), not run by default:
/// a mass renewal of `RENEWD_FLEET_BENCH_N` (1000) certificates by a fleet of
/// three, against one renewd alone on the same Pebble; prints both
/// throughputs and etcd's writes per renewal.
///
/// `cargo test --release --test it fleet::mass_renewal_throughput -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: minutes of CPU"]
fn mass_renewal_throughput_of_a_fleet_against_one_node() {
    let n: usize = std::env::var("RENEWD_FLEET_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (names, certs) = many_certificates(n);
    // Few orders in flight: Pebble 2.10 deadlocks under concurrent orders
    // (docs/benchmarks.md), here with 6 in flight after a few hundred orders.
    // The node alone has 3; each node of the fleet RENEWD_FLEET_BENCH_PER_NODE
    // (3: the same config as the node alone; 1: as many in flight in all).
    let per_node: usize = std::env::var("RENEWD_FLEET_BENCH_PER_NODE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut fleet = Fleet::new(&format!("max_concurrent = {per_node}\n"), &certs);
    // RENEWD_FLEET_BENCH_GATE=1: both through a proxy that lets a new order
    // into Pebble only alone, which avoids its deadlock (for N = 1,000).
    let gate = std::env::var_os("RENEWD_FLEET_BENCH_GATE").is_some_and(|v| v == "1");
    let proxy = gate.then(|| {
        let proxy = RewritingProxy::one_new_order_at_a_time(&fleet.pebble, fleet.dir.path());
        fleet.use_ca(proxy.ca_toml("pebble"), &certs);
        proxy
    });
    let ca = proxy
        .as_ref()
        .map_or_else(|| fleet.pebble.ca_toml("pebble"), |p| p.ca_toml("pebble"));

    // One node alone (no [cluster]) on the same Pebble.
    let alone = fleet.dir.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    let config = alone.join("renewd.toml");
    std::fs::write(
        &config,
        format!(
            "{}max_concurrent = 3\n\n{}\n[solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:{}\"\n\n{certs}",
            crate::fixture::daemon_table(&alone.join("state"), &alone.join("control.sock")),
            ca,
            fleet.pebble.http01_port
        ),
    )
    .unwrap();
    let store = renewd::store::Store::open(&alone.join("state")).unwrap();
    let serials = |store: &renewd::store::Store| -> Vec<Option<String>> {
        names
            .iter()
            .map(|n| store.lineage(n).ok().flatten().map(|l| l.cert.serial))
            .collect()
    };
    let single = {
        let daemon =
            crate::fixture::Daemon::start_in(&alone, &config, alone.join("control.sock"), "warn");
        wait_until(
            Duration::from_secs(1200),
            "the single node's issuance",
            || serials(&store).iter().all(Option::is_some),
        );
        let before = serials(&store);
        let start = std::time::Instant::now();
        daemon.signal(Signal::SIGUSR1);
        let renewed = |i: usize| {
            let now = store.lineage(&names[i]).ok().flatten();
            now.is_some_and(|l| Some(l.cert.serial) != before[i])
        };
        wait_until(
            Duration::from_secs(1200),
            "the single node's mass renewal",
            all_done(n, renewed),
        );
        start.elapsed()
    };

    fleet.start_all();
    let before = wait_in_step(&fleet, &names, Duration::from_secs(1200));
    let writes_before = etcd_writes(&fleet);
    let start = std::time::Instant::now();
    fleet.node(0).signal(Signal::SIGUSR1);
    wait_renewed(
        &fleet,
        &[0, 1, 2],
        &names,
        &before,
        Duration::from_secs(1200),
    );
    let three = start.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let writes = etcd_writes(&fleet) - writes_before;

    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let (rate, fleet_rate, per) = (
        n as f64 / single.as_secs_f64(),
        n as f64 / three.as_secs_f64(),
        writes as f64 / n as f64,
    );
    println!(
        "fleet bench ({per_node} in flight per node{}): {n} certificates; one node alone {single:.1?} ({rate:.1}/s); \
         fleet of three, renewed and published on all nodes, {three:.1?} ({fleet_rate:.1}/s, \
         {:.2}x); etcd writes {writes} ({per:.1} per renewal)",
        if gate {
            ", one new order at a time"
        } else {
            ""
        },
        fleet_rate / rate
    );
}

/// Key writes etcd applied so far (puts and deletes, also those inside
/// transactions), from a member's metrics.
fn etcd_writes(fleet: &Fleet) -> u64 {
    use std::io::{Read, Write};
    let endpoint = &fleet.etcd.endpoints()[0];
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| {
            ["etcd_mvcc_put_total ", "etcd_mvcc_delete_total "]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|v| {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "counters"
            )]
            let v = v as u64;
            v
        })
        .sum()
}
