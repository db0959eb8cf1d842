//! The certificates over time: `renewd status --timeline` on the terminal, and
//! the page the daemon serves at `/` as a real browser renders it.

use std::time::Duration;

use crate::fixture::{Chromium, Daemon, Env, wait_until};

const CERTS: &str = "[[certificate]]\nname = \"site-a\"\ndomains = [\"a.example.com\"]\n\n\
                     [[certificate]]\nname = \"site-b\"\ndomains = [\"b.example.com\"]\n";

/// The chart part of a `--timeline` row: between the name and the note.
fn chart(row: &str) -> &str {
    let start = row.find("  ").expect("name then chart") + 2;
    let end = row.find("  R ").expect("chart then note");
    &row[start..end]
}

#[test]
fn status_timeline_draws_when_each_certificate_renews_and_expires() {
    let env = Env::new();
    env.write_config(CERTS);
    let renewed = env.renewd(&["renew"]);
    assert_eq!(renewed.code, 0, "{renewed:?}");

    let run = env.renewd(&["status", "--timeline"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].contains(" days from ")
            && lines[0].contains("R renewal")
            && lines[0].contains("X expiry"),
        "{run:?}"
    );
    assert!(lines[1].starts_with("NAME    |"), "{run:?}");
    for (row, name) in lines[2..].iter().zip(["site-a", "site-b"]) {
        assert!(row.starts_with(name), "{run:?}");
        // Valid now, renewed before it expires, at the end of the picture.
        let chart = chart(row);
        let (r, x) = (chart.find('R').unwrap(), chart.find('X').unwrap());
        assert!(chart.starts_with('-') && r < x, "{run:?}");
        assert!(chart[r + 1..x].chars().all(|c| c == '~'), "{run:?}");
        assert!(row.contains("  X in 89d "), "90-day certificates: {run:?}");
    }
    assert_eq!(lines.len(), 4, "{run:?}");

    let only = env.renewd(&["status", "--timeline", "site-b"]);
    assert_eq!(only.stdout.lines().count(), 3, "{only:?}");
    let both = env.renewd(&["status", "--timeline", "--json"]);
    assert_eq!(
        both.code, 2,
        "--timeline draws, --json prints data: {both:?}"
    );
}

#[test]
fn the_daemon_serves_the_timeline_as_a_page_a_browser_renders() {
    let env = Env::new();
    let port = crate::fixture::free_port();
    env.write_config_with(&format!("metrics_listen = \"127.0.0.1:{port}\""), CERTS);
    let _daemon = Daemon::start(&env);
    wait_until(Duration::from_secs(60), "both issued", || {
        let store = env.store();
        ["site-a", "site-b"]
            .iter()
            .all(|n| store.lineage(n).ok().flatten().is_some())
    });

    let browser = Chromium::new(env.dir.path());
    let url = format!("http://127.0.0.1:{port}/");
    let dom = browser.dump_dom(&url);
    assert!(
        dom.contains("<h1>renewd: certificates over time</h1>"),
        "{dom}"
    );
    assert!(dom.contains("2 certificate(s)"), "{dom}");
    for name in ["site-a", "site-b"] {
        assert!(
            dom.contains(&format!("<g class=\"certificate\" data-name=\"{name}\">")),
            "{dom}"
        );
        assert!(dom.contains(&format!(">{name}</text>")), "{dom}");
    }
    assert_eq!(dom.matches("<rect class=\"renewal\"").count(), 2, "{dom}");
    assert_eq!(dom.matches("<rect class=\"expiry\"").count(), 2, "{dom}");
    assert_eq!(dom.matches("<rect class=\"valid\"").count(), 2, "{dom}");
    assert!(dom.contains("<title>renewal 20"), "{dom}");

    // What it looks like: more than an empty page's worth of picture.
    let page = env.dir.path().join("timeline.png");
    browser.screenshot(&url, &page, (1000, 300));
    let blank = env.dir.path().join("blank.png");
    browser.screenshot("about:blank", &blank, (1000, 300));
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&page) > 4 * size(&blank),
        "the page renders to {} bytes of PNG, a blank page to {}",
        size(&page),
        size(&blank)
    );
}
