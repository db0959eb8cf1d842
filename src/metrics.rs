//! Prometheus metrics in the text exposition format (the daemon serves them at
//! `GET /metrics` on `daemon.metrics_listen`).
//!
//! Counters (renewals, ACME requests) are incremented where things happen,
//! through a [`Metrics`] handle. Per-certificate gauges are not kept up to date
//! continuously: they are recomputed from the same status `renewd status` shows
//! at each scrape, so metrics and status can never disagree.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::status::CertStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Name {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Renewal {
    name: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Served {
    name: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AcmeRequest {
    ca: String,
    result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A handle on the metrics of one daemon (or one-shot run): cheap to clone,
/// passed to whatever counts something.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    renewals: Family<Renewal, Counter>,
    acme_requests: Family<AcmeRequest, Counter>,
    not_after: Family<Name, FloatGauge>,
    next_renewal: Family<Name, FloatGauge>,
    healthy: Family<Name, Gauge>,
    revoked: Family<Name, Gauge>,
    served: Family<Served, Gauge>,
    /// Fleet mode only (registered on first use): connected, leases held.
    cluster: std::sync::OnceLock<(Gauge, Gauge)>,
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every renewd metric and the `process_*` ones.
    #[must_use]
    pub fn new() -> Self {
        let m = Inner {
            renewals: Family::default(),
            acme_requests: Family::default(),
            not_after: Family::default(),
            next_renewal: Family::default(),
            healthy: Family::default(),
            revoked: Family::default(),
            served: Family::default(),
            cluster: std::sync::OnceLock::new(),
            registry: Mutex::new(Registry::default()),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(PoisonError::into_inner);
            r.register(
                "renewd_renewals",
                "Renewal attempts by outcome",
                m.renewals.clone(),
            );
            r.register(
                "renewd_acme_requests",
                "HTTP requests to ACME CAs by outcome",
                m.acme_requests.clone(),
            );
            r.register(
                "renewd_certificate_not_after_seconds",
                "Expiry of the live certificate (Unix time)",
                m.not_after.clone(),
            );
            r.register(
                "renewd_certificate_next_renewal_seconds",
                "Planned renewal time (Unix time)",
                m.next_renewal.clone(),
            );
            r.register(
                "renewd_certificate_healthy",
                "1 when the certificate is healthy (see renewd status)",
                m.healthy.clone(),
            );
            r.register(
                "renewd_certificate_revoked",
                "1 when the CA reported the certificate revoked",
                m.revoked.clone(),
            );
            r.register(
                "renewd_served_certificate_matches",
                "1 when the verify target serves the live certificate",
                m.served.clone(),
            );
            r.register_collector(Box::new(ProcessCollector));
        }
        Self(Arc::new(m))
    }

    /// Counts one renewal attempt of `name` (`success` or `failure`).
    pub fn renewal(&self, name: &str, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.0
            .renewals
            .get_or_create(&Renewal {
                name: name.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Fleet mode: whether this node is connected to etcd, and how many
    /// certificate leases it holds (`renewd_cluster_*`, which exist only in
    /// fleet mode).
    pub fn cluster(&self, connected: bool, leases_held: usize) {
        let (up, held) = self.0.cluster.get_or_init(|| {
            let gauges = (Gauge::default(), Gauge::default());
            let mut r = self
                .0
                .registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            r.register(
                "renewd_cluster_connected",
                "1 when this node reaches an etcd quorum with a live lease",
                gauges.0.clone(),
            );
            r.register(
                "renewd_cluster_leases_held",
                "Certificate leases this node holds (it renews those)",
                gauges.1.clone(),
            );
            gauges
        });
        up.set(i64::from(connected));
        held.set(i64::try_from(leases_held).unwrap_or(i64::MAX));
    }

    /// Counts one HTTP request to CA `ca` with `result`.
    pub fn acme_request(&self, ca: &str, result: &str) {
        self.0
            .acme_requests
            .get_or_create(&AcmeRequest {
                ca: ca.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// The text exposition for the current `statuses`.
    #[must_use]
    pub fn render(&self, statuses: &[CertStatus]) -> String {
        let m = &*self.0;
        for family in [&m.not_after, &m.next_renewal] {
            family.clear();
        }
        for family in [&m.healthy, &m.revoked] {
            family.clear();
        }
        m.served.clear();
        for s in statuses {
            let name = Name {
                name: s.name.clone(),
            };
            if let Some(t) = s.not_after.as_deref().and_then(unix) {
                m.not_after.get_or_create(&name).set(t);
            }
            if let Some(t) = s.next_renewal.as_deref().and_then(unix) {
                m.next_renewal.get_or_create(&name).set(t);
            }
            m.healthy.get_or_create(&name).set(i64::from(s.healthy));
            m.revoked.get_or_create(&name).set(i64::from(s.revoked));
            for served in &s.served {
                let labels = Served {
                    name: s.name.clone(),
                    target: served.target.clone(),
                };
                m.served
                    .get_or_create(&labels)
                    .set(i64::from(served.matches));
            }
        }
        let mut out = String::new();
        let registry = m.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

fn unix(rfc3339: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "seconds since 1970 fit an f64 exactly"
    )]
    Some(t.unix_timestamp() as f64)
}

/// The standard `process_*` metrics, read from /proc (Linux) at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Page size and clock ticks of this machine, not constants.
        #[expect(clippy::cast_precision_loss, reason = "small positive numbers")]
        let sysconf = |var, default| {
            nix::unistd::sysconf(var)
                .ok()
                .flatten()
                .map_or(default, |v| v as f64)
        };
        let (page, ticks) = (
            sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096.0),
            sysconf(nix::unistd::SysconfVar::CLK_TCK, 100.0),
        );
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        if let Some(pages) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<f64>().ok())
        {
            let gauge = ConstGauge::new(pages * page);
            gauge.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the ")" that closes the command name; field n (1-based,
        // counting the pid as 1) is at index n - 3.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            let counter = ConstCounter::new((user + system) / ticks);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
        });
        if let (Some(start), Some(boot)) = (field(22), boot) {
            let gauge = ConstGauge::new(boot + start / ticks);
            gauge.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                None,
                gauge.metric_type(),
            )?)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let gauge = ConstGauge::new(i64::try_from(fds.count()).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CertStatus {
        serde_json::from_value(serde_json::json!({
            "name": "a", "domains": ["a.example"], "serial": "1", "not_before": null,
            "not_after": "2027-01-01T00:00:00Z", "next_renewal": "2026-12-01T00:00:00Z",
            "ari_window": null, "last_attempt": null, "last_result": "ok", "revoked": false,
            "served": [{"target": "127.0.0.1:443", "matches": true}], "ca": "le",
            "days_left": 30, "problems": [], "healthy": true
        }))
        .unwrap()
    }

    #[test]
    fn exposition_has_the_documented_metrics() {
        let metrics = Metrics::new();
        metrics.renewal("a", true);
        metrics.acme_request("le", "success");
        let text = metrics.render(&[sample()]);
        for line in [
            "renewd_certificate_not_after_seconds{name=\"a\"} 1798761600",
            "renewd_certificate_healthy{name=\"a\"} 1",
            "renewd_certificate_revoked{name=\"a\"} 0",
            "renewd_served_certificate_matches{name=\"a\",target=\"127.0.0.1:443\"} 1",
            "renewd_renewals_total{name=\"a\",result=\"success\"} 1",
            "renewd_acme_requests_total{ca=\"le\",result=\"success\"} 1",
            "# TYPE process_cpu_seconds counter",
            "# TYPE process_resident_memory_bytes gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_shipped_alert_rules_use_only_metrics_that_exist() {
        let metrics = Metrics::new();
        metrics.renewal("x", false);
        let text = metrics.render(&[sample()]);
        let rules = include_str!("../docs/prometheus-alerts.yml");
        let names = rules
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("renewd_"));
        for name in names {
            assert!(
                text.contains(&format!("# TYPE {}", name.trim_end_matches("_total"))),
                "{name} is not exported"
            );
        }
    }
}
