//! What `renewd status` reports (spec section 3): per certificate, what is live,
//! when it renews next, how the last attempt went, and whether it is healthy.
//! Built from config + store + state; the daemon adds served checks and ARI.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{CertificateConfig, Config};
use crate::schedule::{self, Window};
use crate::state::State;
use crate::store::Store;

/// One served-certificate check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// `host:port` checked.
    pub target: String,
    /// Whether it served the live certificate.
    pub matches: bool,
}

/// The status of one configured certificate; field names are the JSON contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertStatus {
    /// Configured name.
    pub name: String,
    /// Configured domains.
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
    /// Whether the certificate is healthy (spec section 3).
    pub healthy: bool,
}

/// Formats a timestamp as RFC 3339 (UTC, seconds).
#[must_use]
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Builds the status of every configured certificate (or those in `names`).
#[must_use]
pub fn collect(
    config: &Config,
    store: &Store,
    state: &State,
    now: OffsetDateTime,
) -> Vec<CertStatus> {
    config
        .certificates
        .iter()
        .map(|cert| one(config, cert, store, state, now))
        .collect()
}

fn one(
    config: &Config,
    cert: &CertificateConfig,
    store: &Store,
    state: &State,
    now: OffsetDateTime,
) -> CertStatus {
    let remembered = state
        .certificates
        .get(&cert.name)
        .cloned()
        .unwrap_or_default();
    let lineage = store.lineage(&cert.name).map_err(|e| e.to_string());
    let mut problems = Vec::new();
    if let Some(urgent) = schedule::urgent(cert, &lineage, now) {
        problems.push(urgent.to_string());
    }
    let mut status = CertStatus {
        name: cert.name.clone(),
        domains: cert.domains.clone(),
        serial: None,
        not_before: None,
        not_after: None,
        next_renewal: None,
        ari_window: remembered.ari_window,
        last_attempt: remembered.last_attempt.map(rfc3339),
        last_result: remembered.last_result.clone(),
        revoked: false,
        served: Vec::new(),
        ca: remembered.ca.clone(),
        solver: remembered.solver.clone(),
        days_left: None,
        problems: Vec::new(),
        healthy: false,
    };
    if let Ok(Some(lineage)) = &lineage {
        let c = &lineage.cert;
        let renew_before = config.daemon.renew_before.0;
        let facts = schedule::Facts {
            lineage: &Ok(Some(lineage.clone())),
            state: &remembered,
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
            if let Some(error) = &remembered.reload_error {
                problems.push(format!("reload failed: {error}"));
            }
            status.served.clone_from(&remembered.served);
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

/// Renders statuses as the table `renewd status` prints.
#[must_use]
pub fn table(statuses: &[CertStatus]) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "DAYS LEFT".to_owned(),
        "NEXT RENEWAL".to_owned(),
        "LAST RESULT".to_owned(),
        "CA".to_owned(),
        "HEALTH".to_owned(),
    ]];
    for s in statuses {
        rows.push([
            s.name.clone(),
            s.days_left
                .map_or_else(|| "-".to_owned(), |d| d.to_string()),
            s.next_renewal.clone().unwrap_or_else(|| "now".to_owned()),
            s.last_result.clone().unwrap_or_else(|| "-".to_owned()),
            s.ca.clone().unwrap_or_else(|| "-".to_owned()),
            if s.healthy {
                "ok".to_owned()
            } else {
                format!("UNHEALTHY: {}", s.problems.join(", "))
            },
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count().min(60))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}
