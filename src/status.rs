//! What `renewd status` reports (`docs/reference/cli.md`): per certificate, what is live,
//! when it renews next, how the last attempt went, and whether it is healthy.
//! Built from config + store + state; the daemon adds served checks and ARI.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{CertificateConfig, Config};
use crate::schedule;
use crate::state::{CertState, State, Window};
use crate::store::Store;
use crate::verify::Served;

/// The status of one configured certificate; field names are the JSON contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertStatus {
    /// Configured name.
    pub name: String,
    /// Configured domains, IP addresses in canonical form.
    pub domains: Vec<String>,
    /// Serial of the live certificate (hex).
    pub serial: Option<String>,
    /// Start of validity (RFC 3339).
    pub not_before: Option<String>,
    /// End of validity (RFC 3339).
    pub not_after: Option<String>,
    /// When the next renewal is planned (RFC 3339).
    pub next_renewal: Option<String>,
    /// Last known ARI window.
    pub ari_window: Option<Window>,
    /// When renewal was last attempted (RFC 3339).
    pub last_attempt: Option<String>,
    /// `"ok"` or `"error: ..."`.
    pub last_result: Option<String>,
    /// While renewals keep failing, the kind of the last failure
    /// (`{"kind": "rate-limited", "until": ...}`, `{"kind": "ca-unreachable"}`, ...).
    #[serde(default)]
    pub failure: Option<crate::failure::Kind>,
    /// Whether the CA says it is revoked.
    pub revoked: bool,
    /// Served-certificate checks.
    pub served: Vec<Served>,
    /// CA that issued the live certificate, if known.
    pub ca: Option<String>,
    /// Solver that validated it, if known.
    #[serde(default)]
    pub solver: Option<String>,
    /// Days until expiry (negative when expired).
    pub days_left: Option<i64>,
    /// Everything that makes it unhealthy; empty when healthy.
    pub problems: Vec<String>,
    /// Whether the certificate is healthy (`docs/reference/cli.md`, "Health").
    pub healthy: bool,
    /// Fleet mode: the node that holds its lease (renews it), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Fleet mode: what each node has deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployed: Vec<Deployed>,
}

/// Fleet mode: the version one node has live, and whether its `verify`
/// targets serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// The node.
    pub node: String,
    /// Serial of its live certificate.
    pub serial: String,
    /// Whether every `verify` target serves it (`None`: nothing to check).
    pub verified: Option<bool>,
}

impl CertStatus {
    /// What this node has deployed of it, as [`Deployed`] (no serial: nothing).
    #[must_use]
    pub fn deployed_here(&self, node: &str) -> Option<Deployed> {
        let verified = (!self.served.is_empty()).then(|| self.served.iter().all(|s| s.matches));
        Some(Deployed {
            node: node.to_owned(),
            serial: self.serial.clone()?,
            verified,
        })
    }
}

/// Formats a timestamp as RFC 3339 (UTC, seconds).
#[must_use]
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Builds the status of every configured certificate, or of those in `names`
/// (in config order either way): each reads its certificate from the store, so
/// asking for one among 100,000 reads one.
#[must_use]
pub fn collect(
    config: &Config,
    store: &Store,
    state: &State,
    now: OffsetDateTime,
    names: &[String],
) -> Vec<CertStatus> {
    of(config, store, &selected(config, names), state, now)
}

/// The configured certificates `names` asks for (all when empty), in config
/// order.
#[must_use]
pub fn selected<'a>(config: &'a Config, names: &[String]) -> Vec<&'a CertificateConfig> {
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    config
        .certificates
        .iter()
        .filter(|cert| wanted.is_empty() || wanted.contains(&*cert.name))
        .collect()
}

/// The status of each of `certs`, in order, from what `state` remembers of
/// each (the certificates are read on one thread per CPU).
#[must_use]
pub fn of(
    config: &Config,
    store: &Store,
    certs: &[&CertificateConfig],
    state: &State,
    now: OffsetDateTime,
) -> Vec<CertStatus> {
    crate::parallel::map(certs, |cert| one(config, cert, store, state, now))
}

fn one(
    config: &Config,
    cert: &CertificateConfig,
    store: &Store,
    state: &State,
    now: OffsetDateTime,
) -> CertStatus {
    let unknown = CertState::default();
    let remembered = state.certificates.get(&*cert.name).unwrap_or(&unknown);
    // From what the state remembers of the live version while it holds: one
    // stat instead of reading and parsing the certificate and key.
    let (lineage, _) = store.lineage_known(&cert.name, remembered.live.as_ref());
    let lineage = lineage.map_err(|e| e.to_string());
    let mut problems = Vec::new();
    if let Some(urgent) = schedule::urgent(cert, &lineage, now) {
        problems.push(urgent.to_string());
    }
    let mut status = CertStatus {
        name: cert.name.to_string(),
        domains: cert.domains.iter().map(ToString::to_string).collect(),
        serial: None,
        not_before: None,
        not_after: None,
        next_renewal: None,
        ari_window: remembered.ari_window,
        last_attempt: remembered.last_attempt.map(|at| rfc3339(at.time())),
        last_result: remembered.last_result.as_deref().map(str::to_owned),
        failure: remembered.last_failure.filter(|_| remembered.failures > 0),
        revoked: false,
        served: Vec::new(),
        ca: remembered.ca.as_deref().map(str::to_owned),
        solver: remembered.solver.as_deref().map(str::to_owned),
        days_left: None,
        problems: Vec::new(),
        healthy: false,
        holder: None,
        deployed: Vec::new(),
    };
    if let Ok(Some(live)) = &lineage {
        let c = &live.cert;
        let renew_before = config.daemon.renew_before.0;
        let facts = schedule::Facts {
            lineage: &lineage,
            state: remembered,
            renew_before,
            jitter: config.daemon.jitter.0,
            now,
        };
        let next = schedule::plan(cert, &facts, 0.5).at.max(now);
        let current = remembered.is_for(&c.serial);
        status.revoked = remembered.revoked && current;
        if status.revoked {
            problems.push("revoked".to_owned());
        }
        if current {
            for (target, error) in remembered.reload_errors.iter() {
                problems.push(format!("reload {target} failed: {error}"));
            }
            status.served = remembered.served.to_vec();
            for served in status.served.iter().filter(|s| !s.matches) {
                problems.push(format!("{} does not serve it", served.target));
            }
        }
        status.serial = Some(c.serial.clone());
        status.not_before = Some(rfc3339(c.not_before));
        status.not_after = Some(rfc3339(c.not_after));
        status.next_renewal = Some(rfc3339(next));
        status.days_left = Some((c.not_after - now).whole_days());
        let left = c.not_after - now;
        if left <= time::Duration::ZERO {
            problems.push("expired".to_owned());
        } else if left < schedule::fallback_threshold(c.lifetime(), renew_before) / 3 {
            problems
                .push("renewal overdue: less than a third of the renewal period left".to_owned());
        }
    }
    status.healthy = problems.is_empty();
    status.problems = problems;
    status
}

/// The line `renewd status` prints first, about every certificate:
/// `12 certificates: 11 healthy, 1 unhealthy`.
#[must_use]
pub fn summary(statuses: &[CertStatus]) -> String {
    let healthy = statuses.iter().filter(|s| s.healthy).count();
    let (n, s) = (statuses.len(), if statuses.len() == 1 { "" } else { "s" });
    format!(
        "{n} certificate{s}: {healthy} healthy, {} unhealthy",
        n - healthy
    )
}

/// Fleet mode: the line `status` prints about this node and the fleet, from
/// the daemon's `cluster` object.
#[must_use]
pub fn fleet_line(fleet: &serde_json::Value) -> String {
    let node = fleet["node"].as_str().unwrap_or("?");
    let nodes: Vec<&str> = fleet["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .collect();
    if fleet["connected"].as_bool() == Some(true) {
        format!(
            "fleet: node {node}, connected to etcd, holds {} lease(s); live nodes: {}",
            fleet["leases_held"],
            nodes.join(" ")
        )
    } else {
        let why = fleet["error"].as_str().unwrap_or("no quorum or no lease");
        format!(
            "fleet: node {node}, NOT connected to etcd ({why}): no orders; \
             certificates stay served"
        )
    }
}

/// Fleet mode: per certificate, the holder and what each node has deployed
/// (`SERIAL` tail, `+` verified, `!` served wrong, nothing: no check).
#[must_use]
pub fn fleet_table(statuses: &[CertStatus]) -> String {
    let mut out = String::new();
    for s in statuses
        .iter()
        .filter(|s| s.holder.is_some() || !s.deployed.is_empty())
    {
        let deployed: Vec<String> = s
            .deployed
            .iter()
            .map(|d| {
                let tail = &d.serial[d.serial.len().saturating_sub(8)..];
                let mark = match d.verified {
                    Some(true) => "+",
                    Some(false) => "!",
                    None => "",
                };
                format!("{}={tail}{mark}", d.node)
            })
            .collect();
        out.push_str(&format!(
            "{}: holder {}; deployed {}\n",
            s.name,
            s.holder.as_deref().unwrap_or("-"),
            deployed.join(" ")
        ));
    }
    out
}

/// Renders statuses as the table `renewd status` prints; `colour` marks health
/// and short remaining lifetimes with ANSI colours (only for a terminal).
#[must_use]
pub fn table(statuses: &[CertStatus], colour: bool) -> String {
    const HEADER: [&str; 7] = [
        "NAME",
        "DAYS LEFT",
        "NEXT RENEWAL",
        "LAST RESULT",
        "SERVED",
        "CA",
        "HEALTH",
    ];
    let now = OffsetDateTime::now_utc();
    let rows: Vec<[String; 7]> = statuses.iter().map(|s| row(s, now)).collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([HEADER[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| format!("{}\n", cells.join("  ").trim_end());
    let mut out = line(
        HEADER
            .iter()
            .zip(&widths)
            .map(|(h, w)| format!("{h:<w$}"))
            .collect(),
    );
    for (s, r) in statuses.iter().zip(&rows) {
        let cells = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let padded = format!("{cell:<w$}");
                match (colour, i) {
                    (true, 1) if s.days_left.is_some_and(|d| d < 7) => paint(&padded, RED),
                    (true, 6) if s.healthy => paint(&padded, GREEN),
                    (true, 6) => paint(&padded, RED),
                    _ => padded,
                }
            })
            .collect();
        out.push_str(&line(cells));
    }
    out
}

const RED: &str = "31";
const GREEN: &str = "32";

fn paint(text: &str, colour: &str) -> String {
    format!("\x1b[{colour}m{text}\x1b[0m")
}

fn row(s: &CertStatus, now: OffsetDateTime) -> [String; 7] {
    let dash = || "-".to_owned();
    let next = s.next_renewal.as_deref().map_or_else(
        || "now".to_owned(),
        |at| match OffsetDateTime::parse(at, &Rfc3339) {
            Ok(t) if t > now => format!(
                "{} (in {})",
                &at[..10.min(at.len())],
                human_duration(t - now)
            ),
            _ => "now".to_owned(),
        },
    );
    let served = if s.served.is_empty() {
        dash()
    } else if s.served.iter().all(|t| t.matches) {
        "ok".to_owned()
    } else {
        "MISMATCH".to_owned()
    };
    let last = s.last_result.as_deref().map_or_else(dash, |r| {
        let mut r = r.to_owned();
        if r.chars().count() > 40 {
            r = r.chars().take(39).collect::<String>() + "…";
        }
        r
    });
    [
        s.name.clone(),
        s.days_left.map_or_else(dash, |d| d.to_string()),
        next,
        last,
        served,
        s.ca.clone().unwrap_or_else(dash),
        if s.healthy {
            "ok".to_owned()
        } else {
            format!("UNHEALTHY: {}", s.problems.join(", "))
        },
    ]
}

/// `21d 3h`, `3h 5m`, `5m`, `now`: a duration read at a glance.
#[must_use]
pub fn human_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    if secs <= 0 {
        return "now".to_owned();
    }
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (days, hours) {
        (0, 0) => format!("{}m", minutes.max(1)),
        (0, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_asked_for_are_the_only_ones_collected_in_config_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "[daemon]\nstate_dir = \"{}\"\n\n[ca.test]\ndirectory = \"https://127.0.0.1:1/dir\"\n\n\
             [solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:1\"\n",
            dir.path().join("state").display()
        );
        for name in ["c", "a", "b"] {
            text += &format!(
                "\n[[certificate]]\nname = \"{name}\"\ndomains = [\"{name}.example.com\"]\n"
            );
        }
        let config = Config::from_str(&text, &dir.path().join("renewd.toml")).unwrap();
        let store = Store::open(&config.daemon.state_dir).unwrap();
        let now = OffsetDateTime::now_utc();
        let names = |statuses: Vec<CertStatus>| -> Vec<String> {
            statuses.into_iter().map(|s| s.name).collect()
        };
        let state = State::default();
        assert_eq!(
            names(collect(&config, &store, &state, now, &[])),
            ["c", "a", "b"]
        );
        let asked = ["b".to_owned(), "c".to_owned()];
        assert_eq!(
            names(collect(&config, &store, &state, now, &asked)),
            ["c", "b"]
        );
        let unknown = ["nope".to_owned()];
        assert!(collect(&config, &store, &state, now, &unknown).is_empty());
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(
            human_duration(time::Duration::seconds(21 * 86_400 + 3 * 3600 + 59)),
            "21d 3h"
        );
        assert_eq!(
            human_duration(time::Duration::seconds(3 * 3600 + 5 * 60)),
            "3h 5m"
        );
        assert_eq!(human_duration(time::Duration::seconds(20)), "1m");
        assert_eq!(human_duration(time::Duration::seconds(-5)), "now");
    }
}
