//! The invariants (`docs/simulation.md`), checked as the run goes — orders
//! and polls when they are placed ([`super::world`]), the rest here, hourly
//! and at the end.

use time::{Duration, OffsetDateTime};

use super::model::{Live, Revoked, Sim};
use crate::status::rfc3339;

/// How long a deployment may take after its publish before "its reload
/// targets ran" must hold: the batch waits for every renewal of certificates
/// sharing a target, and a hung target holds its chain for 10 minutes.
const DEPLOY_WITHIN: Duration = Duration::hours(6);
/// The slowest order the CA model makes, for the revocation bound.
const SLOWEST_ORDER: Duration = Duration::seconds(70);
/// `D·√n` of a Kolmogorov–Smirnov test of renewal times against a uniform
/// spread over their window; above it, p < 10⁻⁵.
const KS_LIMIT: f64 = 2.5;

impl Sim {
    /// `live` replaced certificate `name`: revocations of the one before are
    /// answered (with a new key after keyCompromise).
    pub(super) fn replaced(&mut self, name: &str, live: &Live) {
        let answered: Vec<Revoked> = self
            .revocations
            .iter()
            .filter(|r| r.name == name && r.serial != live.serial)
            .cloned()
            .collect();
        self.revocations
            .retain(|r| r.name != name || r.serial == live.serial);
        for r in answered {
            if r.key_compromise && live.issued.key == r.key {
                self.violated(2, name, "replaced after keyCompromise with the same key");
            }
        }
    }

    /// The CA revoked the live certificates of `names`.
    pub(super) fn revoke(&mut self, names: &[String], key_compromise: bool) {
        let now = self.now();
        let batch = names.len();
        for name in names {
            let Some(live) = self.live(name).cloned() else {
                continue;
            };
            self.ca.revoke(&live.serial, key_compromise);
            let why = if key_compromise {
                " (keyCompromise)"
            } else {
                ""
            };
            self.event(name, format!("CA revoked serial {}{why}", live.serial));
            self.revocations.push(Revoked {
                name: name.clone(),
                serial: live.serial.clone(),
                key: live.issued.key,
                key_compromise,
                at: now,
                batch,
            });
        }
    }

    /// The hourly look: expiries, revocations not answered in time,
    /// deployments not done.
    pub(super) fn check_hourly(&mut self) {
        self.check_expiries();
        self.check_revocations();
        self.check_deployments();
    }

    /// 1: no certificate expires while the CA was reachable for the last
    /// third of its lifetime.
    fn check_expiries(&mut self) {
        let now = self.now();
        let expired: Vec<(String, OffsetDateTime, OffsetDateTime)> = self
            .disk
            .live
            .iter()
            .filter(|(name, l)| {
                l.issued.not_after <= now
                    && self.expired_seen.get(*name) != Some(&l.issued.not_after)
            })
            .map(|(name, l)| (name.clone(), l.issued.not_before, l.issued.not_after))
            .collect();
        for (name, not_before, not_after) in expired {
            self.expired_seen.insert(name.clone(), not_after);
            if self.config.certificate(&name).is_none() {
                continue; // Removed from the config: nobody renews it.
            }
            let last_third = not_after - (not_after - not_before) / 3;
            if self.ca.down_during(last_third, not_after) == Duration::ZERO {
                let what = format!(
                    "expired at {} although the CA was reachable since {}",
                    rfc3339(not_after),
                    rfc3339(last_third)
                );
                self.violated(1, &name, &what);
            }
        }
    }

    /// 2: a revoked certificate is replaced within `check_interval` plus the
    /// backoff bound once the CA is reachable — plus the time the CA needs to
    /// renew every certificate revoked with it, `max_concurrent` at a time.
    fn check_revocations(&mut self) {
        let now = self.now();
        let check = self.check_interval();
        let lanes = i32::try_from(self.max_concurrent())
            .unwrap_or(i32::MAX)
            .max(1);
        let late: Vec<Revoked> = self
            .revocations
            .iter()
            .filter(|r| self.config.certificate(&r.name).is_some())
            .filter(|r| {
                let batch = i32::try_from(r.batch).unwrap_or(i32::MAX);
                let bound = check * 2 + SLOWEST_ORDER * batch / lanes + Duration::HOUR;
                let down = self.ca.down_during(r.at, now);
                now > r.at + bound + down
            })
            .cloned()
            .collect();
        for r in late {
            self.revocations
                .retain(|x| !(x.name == r.name && x.serial == r.serial));
            let what = format!(
                "serial {} revoked at {} still live",
                r.serial,
                rfc3339(r.at)
            );
            self.violated(2, &r.name, &what);
        }
    }

    /// 6: every certificate published is deployed — each of its reload
    /// targets ran after its last publish, across crashes — and a
    /// deployment reloads at most twice (once more when not served).
    fn check_deployments(&mut self) {
        let now = self.now();
        let mut problems = Vec::new();
        for (name, published) in &self.published {
            let Some(cert) = self.config.certificate(name) else {
                continue;
            };
            if *published + DEPLOY_WITHIN > now {
                continue;
            }
            for target in cert.reload.iter() {
                let unit = crate::reload::describe(target);
                let ran = self.reloaded.get(&(name.clone(), unit.clone()));
                if ran.is_none_or(|at| at < published) {
                    problems.push((
                        name.clone(),
                        format!(
                            "{unit} did not run after the publish at {}",
                            rfc3339(*published)
                        ),
                    ));
                }
            }
            let crashes = self.restarts.iter().filter(|at| *at > published).count();
            let reloads = self.reloads_since_publish.get(name).copied().unwrap_or(0);
            let limit = 2 * cert.reload.len() * (1 + crashes);
            if usize::try_from(reloads).unwrap_or(usize::MAX) > limit {
                problems.push((name.clone(), format!("{reloads} reloads for one publish")));
            }
        }
        for (name, what) in problems {
            // Judged once per publish.
            self.published.remove(&name);
            self.violated(6, &name, &what);
        }
        let done: Vec<String> = self
            .published
            .iter()
            .filter(|(_, at)| **at + DEPLOY_WITHIN <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in done {
            self.published.remove(&name);
        }
    }

    /// The checks made once the run is over.
    pub(super) fn check_at_end(&mut self) {
        self.check_spread();
        self.check_mass_renewals();
    }

    /// 4: renewals planned in shared ARI windows are spread uniformly over
    /// them (one Kolmogorov–Smirnov test of every such renewal's place in
    /// its window).
    fn check_spread(&mut self) {
        let mut samples = std::mem::take(&mut self.spread);
        if samples.len() < 50 {
            return;
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len() as f64;
        let d = samples
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let i = i as f64;
                ((i + 1.0) / n - x).max(x - i / n)
            })
            .fold(0.0, f64::max);
        eprintln!(
            "spread over ARI windows: {} renewals, D·√n = {:.2} (limit {KS_LIMIT})",
            samples.len(),
            d * n.sqrt()
        );
        if d * n.sqrt() > KS_LIMIT {
            let what = format!(
                "{} renewals not uniform over their ARI windows: D = {d:.4}, D·√n = {:.2}",
                samples.len(),
                d * n.sqrt()
            );
            self.violated(4, "-", &what);
        }
    }

    /// 5: no certificate renewed twice by one mass renewal (storms are weeks
    /// apart; a forced renewal within a week of another, by one storm, is
    /// one too many).
    fn check_mass_renewals(&mut self) {
        let storms = self.storms.clone();
        let mut twice = Vec::new();
        for (name, times) in &self.forced {
            for storm in &storms {
                let by_storm = times
                    .iter()
                    .filter(|t| **t >= *storm && **t < *storm + Duration::days(7))
                    .count();
                if by_storm > 1 {
                    twice.push((name.clone(), *storm));
                }
            }
        }
        for (name, storm) in twice {
            let what = format!("renewed twice by the mass renewal of {}", rfc3339(storm));
            self.violated(5, &name, &what);
        }
    }
}
