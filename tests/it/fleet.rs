//! Fleet mode: three renewd processes on one real etcd cluster (three
//! members) and one Pebble.

use std::collections::HashSet;
use std::time::Duration;

use crate::fixture::{Fleet, many_certificates};

/// Waits until every node has every certificate of `names` live, with a
/// matching key, and the same serial on all nodes; the serials.
fn wait_in_step(fleet: &Fleet, names: &[String], timeout: Duration) -> Vec<String> {
    let mut serials = Vec::new();
    let in_step = || {
        names.iter().all(|name| {
            let here: Vec<Option<String>> = (0..3).map(|i| fleet.serial(i, name)).collect();
            here[0].is_some() && here.iter().all(|s| *s == here[0])
        })
    };
    let deadline = std::time::Instant::now() + timeout;
    while !in_step() {
        assert!(
            std::time::Instant::now() < deadline,
            "nodes not in step after {timeout:?}\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in names {
        serials.push(fleet.serial(0, name).unwrap());
    }
    serials
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
    let mut fleet = Fleet::new("", &certs);
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

    // Nothing in etcd holds a private key in the clear.
    let all = fleet.etcd.etcdctl(&["get", "--prefix", ""]);
    let all = String::from_utf8_lossy(&all);
    assert!(all.contains("/renewd/certs/c0"), "versions are in etcd");
    assert!(all.contains("BEGIN CERTIFICATE"));
    assert!(!all.contains("PRIVATE KEY"), "a clear private key in etcd");
}

#[test]
fn validation_succeeds_when_the_ca_reaches_only_one_node_while_others_hold_the_leases() {
    let (names, certs) = many_certificates(12);
    let mut fleet = Fleet::new("", &certs);
    // challtestsrv answers 127.0.0.1 for every name: only web1 is reached.
    fleet.start_all();

    wait_in_step(&fleet, &names, Duration::from_secs(180));
    let held_elsewhere = holders(&fleet)
        .iter()
        .filter(|(_, node)| node != "web1")
        .count();
    assert!(held_elsewhere > 0, "web2 and web3 ordered some");
    assert_eq!(fleet.issued(), 12, "{}", fleet.logs());
    let validated_by_web1 = fleet.node(0).log_text();
    assert!(
        !validated_by_web1.contains("not every node acknowledged"),
        "{validated_by_web1}"
    );
}
