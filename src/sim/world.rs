//! The simulated world the real scheduler runs in: orders and ARI polls go to
//! the simulated CA, publishing and `state.json` to the simulated disk,
//! reloads and checks to the simulated services. Each takes simulated time
//! (tokio's paused clock), so a crash can fall in the middle of any of them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration as StdDuration;

use rand::Rng;
use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex as AsyncMutex;

use super::faults::Fault;
use super::model::{HoldOff, Live, Note, Sim};
use crate::acme::{self, RenewalInfo};
use crate::config::{CertificateConfig, Config, ReloadTarget};
use crate::daemon::scheduler::{Polled, Work, World};
use crate::deploy::Check;
use crate::failure::{Failure, Kind};
use crate::reload;
use crate::renew::{Attempt, Outcome, Slot};
use crate::schedule;
use crate::state::{CertState, Snapshot, State};
use crate::status::rfc3339;
use crate::store::{self, Lineage};
use crate::verify::Served;

/// The simulation, shared by the world's tasks and the driver.
pub(super) type Shared = Arc<Mutex<Sim>>;

pub(super) fn lock(sim: &Shared) -> MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The world of one daemon process, with the config it loaded.
pub(super) struct SimWorld {
    config: Arc<Config>,
    sim: Shared,
}

impl SimWorld {
    pub(super) fn new(sim: &Shared) -> Self {
        let config = Arc::clone(&lock(sim).config);
        Self {
            config,
            sim: Arc::clone(sim),
        }
    }
}

/// How an order will go, decided when it is placed.
enum Fate {
    Issued,
    Failed(Failure),
}

/// Takes an order or poll out of the CA's count when it ends, also when the
/// daemon is killed in the middle of it.
struct InFlight {
    sim: Shared,
    name: String,
    order: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut sim = lock(&self.sim);
        if self.order {
            sim.orders_in_flight -= 1;
            sim.ordering.remove(&self.name);
        } else {
            sim.polls_in_flight -= 1;
        }
    }
}

fn seconds(s: f64) -> StdDuration {
    StdDuration::from_secs_f64(s)
}

impl World for SimWorld {
    fn config(&self) -> &Arc<Config> {
        &self.config
    }

    fn lineage(&self, name: &str) -> Result<Option<Lineage>, String> {
        Ok(lock(&self.sim).live(name).map(|l| l.lineage(name)))
    }

    fn renew(
        &self,
        cert: CertificateConfig,
        reason: String,
        fresh_key: bool,
        slot: Slot,
    ) -> Work<Outcome> {
        let sim = Arc::clone(&self.sim);
        Box::pin(async move {
            let (latency, fate, key) = lock(&sim).place_order(&cert, &reason, fresh_key);
            let in_flight = InFlight {
                sim: Arc::clone(&sim),
                name: cert.name.to_string(),
                order: true,
            };
            tokio::time::sleep(latency).await;
            drop(in_flight);
            drop(slot);
            match fate {
                Fate::Failed(failure) => {
                    lock(&sim).event(&cert.name, format!("order failed: {failure}"));
                    Outcome::Failed(failure)
                }
                Fate::Issued => {
                    let (serial, issued) = {
                        let mut sim = lock(&sim);
                        let now = sim.now();
                        let profile = cert.profile.as_deref();
                        let names: Vec<String> =
                            cert.domains.iter().map(ToString::to_string).collect();
                        sim.ca.issue(&names, profile, key, now)
                    };
                    // Writing archive/ and live/: a crash meanwhile loses it.
                    tokio::time::sleep(seconds(0.02)).await;
                    let mut sim = lock(&sim);
                    let live = sim.publish(&cert, &serial, issued, &reason);
                    Outcome::Renewed {
                        version: live.version,
                        serial,
                        not_after: live.issued.not_after,
                        ca: cert.ca.first().cloned().unwrap_or_default(),
                        solver: cert.solvers.first().cloned().unwrap_or_default(),
                    }
                }
            }
        })
    }

    fn record(
        &self,
        cert: &CertificateConfig,
        outcome: &Outcome,
        cs: &mut CertState,
        (started, now): (OffsetDateTime, OffsetDateTime),
        random: f64,
    ) {
        let mut sim = lock(&self.sim);
        let told = sim
            .told
            .get(&*cert.name)
            .filter(|(sent, _)| *sent >= started)
            .map(|(_, at)| *at);
        let attempt = Attempt {
            started,
            now,
            check_interval: self.config.daemon.check_interval.0,
            told,
            random,
        };
        outcome.record(cs, &attempt);
        if let (Outcome::Failed(_), Some(retry_at)) = (outcome, cs.retry_at) {
            // Checked at the next order: never before the shortest backoff
            // (unless forced), nor before the CA said.
            let hold = HoldOff {
                backoff: now + Duration::seconds(30),
                ca: told,
                retry_at: retry_at.time(),
            };
            sim.hold_off.insert(cert.name.to_string(), hold);
        }
    }

    fn poll(&self, name: String, ca: String) -> Work<Polled> {
        let sim = Arc::clone(&self.sim);
        Box::pin(async move {
            // What renewd reads from live/ before asking: the serial (its ARI
            // identifier is "sim.<serial>") and the middle of its lifetime.
            let live = lock(&sim).live(&name).map(|l| {
                let issued = &l.issued;
                let mid = issued.not_before + (issued.not_after - issued.not_before) / 2;
                (l.serial.clone(), mid)
            });
            let Some((serial, _)) = live.clone() else {
                return Polled::nothing_live();
            };
            let latency = lock(&sim).start_poll(&name);
            let in_flight = InFlight {
                sim: Arc::clone(&sim),
                name: name.clone(),
                order: false,
            };
            tokio::time::sleep(latency).await;
            drop(in_flight);
            let mut sim = lock(&sim);
            let now = sim.now();
            let Some(issued) = sim.ca.issued.get(&serial) else {
                return Polled {
                    live,
                    ..Polled::nothing_live()
                };
            };
            let window = issued.window;
            // Half the certificates name a CRL; renewd reads it at each poll.
            let on_crl = (serial.len() % 2 == 0).then_some(issued.revoked.is_some());
            if let Some(down) = sim.ca.down_at(now) {
                sim.event(&name, "ARI poll: CA down");
                let error = match down.retry_after {
                    None => "connection refused",
                    Some(_) => "503 Service Unavailable",
                };
                let source = instant_acme::Error::Str(error);
                return Polled {
                    answer: Err(acme::Error::Acme { ca, source }),
                    on_crl: None,
                    live,
                };
            }
            sim.event(&name, Note::Poll(window));
            // Let's Encrypt asks again after 6 hours.
            let retry_after = StdDuration::from_secs(6 * 3600);
            Polled {
                answer: Ok(RenewalInfo::Window(window, retry_after)),
                on_crl,
                live,
            }
        })
    }

    fn issuer(&self, cert: &CertificateConfig, issued_by: Option<&str>) -> String {
        issued_by
            .map(str::to_owned)
            .or_else(|| cert.ca.first().cloned())
            .unwrap_or_default()
    }

    fn reload(&self, target: ReloadTarget, names: Vec<String>) -> Work<Result<(), reload::Error>> {
        let sim = Arc::clone(&self.sim);
        Box::pin(async move {
            let (latency, fails) = lock(&sim).start_reload(&target, &names);
            tokio::time::sleep(latency).await;
            match target {
                // The simulated fleet's reload targets are systemd units.
                ReloadTarget::Unit(unit) if fails => Err(reload::Error::Unit {
                    unit,
                    message: "Job for the unit failed".to_owned(),
                }),
                _ => Ok(()),
            }
        })
    }

    fn check(&self, cert: CertificateConfig, _patience: StdDuration) -> Work<Option<Check>> {
        let sim = Arc::clone(&self.sim);
        Box::pin(async move {
            tokio::time::sleep(seconds(0.05)).await;
            let mut sim = lock(&sim);
            let serial = sim.live(&cert.name)?.serial.clone();
            let wrong = sim.faults.has(Fault::Verify) && sim.rng.random_bool(0.03);
            let served = cert
                .verify
                .iter()
                .map(|target| Served {
                    target: target.clone(),
                    matches: !wrong,
                })
                .collect();
            Some(Check { serial, served })
        })
    }

    fn save(&self, snapshot: Snapshot) -> Work<Result<(), store::Error>> {
        let sim = Arc::clone(&self.sim);
        Box::pin(async move {
            // fsync, rename, fsync: a crash meanwhile leaves the old file.
            tokio::time::sleep(seconds(0.005)).await;
            // Whether it loads is checked at each restart and at the end.
            snapshot.write_to(&mut lock(&sim).disk.state)
        })
    }

    fn reconfigure(&self, _state: &Arc<AsyncMutex<State>>) -> Result<Arc<dyn World>, String> {
        Ok(Arc::new(Self::new(&self.sim)))
    }

    fn cleanup_abandoned(&self) -> Work<()> {
        Box::pin(async {})
    }
}

impl Sim {
    /// An order for `cert` is placed: checks the invariants that say when
    /// and how often it may be, and decides how it goes.
    fn place_order(
        &mut self,
        cert: &CertificateConfig,
        reason: &str,
        fresh_key: bool,
    ) -> (StdDuration, Fate, u64) {
        let name = &cert.name;
        let now = self.now();
        self.counts.orders += 1;
        self.orders_in_flight += 1;
        self.event(name, format!("order placed ({reason})"));
        if self.orders_in_flight > self.max_concurrent() {
            let what = format!("{} orders in flight", self.orders_in_flight);
            self.violated(3, name, &what);
        }
        if !self.ordering.insert(name.to_string()) {
            self.violated(5, name, "a second order while one is in flight");
        }
        if let Some(hold) = self.hold_off.remove(&**name) {
            let forced = reason.starts_with("forced");
            let early = match hold.ca {
                Some(ca) if now < ca => Some(("the CA's Retry-After", ca)),
                _ if now < hold.backoff && !forced => Some(("the backoff", hold.backoff)),
                _ => None,
            };
            if let Some((what, at)) = early {
                let what = format!(
                    "order placed before {} ({what}; retry_at {})",
                    rfc3339(at),
                    rfc3339(hold.retry_at)
                );
                self.violated(3, name, &what);
            }
        }
        self.sample_spread(name, reason, now);
        let key = self.key_for(cert, fresh_key, now);
        let (latency, fate) = if self.ca.blocked_keys.contains(&key) {
            let failure = Failure::new(
                Kind::KeyRefused,
                "CA sim: badCSR: public key is forbidden (revoked for keyCompromise)",
            );
            (seconds(1.0), Fate::Failed(failure))
        } else {
            self.fate(name, now)
        };
        (latency, fate, key)
    }

    /// Where in its ARI window a renewal that window planned started.
    fn sample_spread(&mut self, name: &str, reason: &str, now: OffsetDateTime) {
        if reason != "inside ARI window" {
            return;
        }
        let Some(live) = self.live(name) else {
            return;
        };
        let Some(issued) = self.ca.issued.get(&live.serial) else {
            return;
        };
        if issued.window_moved {
            return;
        }
        let w = issued.window;
        let fraction = (now - w.start.time()) / (w.end.time() - w.start.time());
        if (0.0..=1.0).contains(&fraction) {
            self.spread.push(fraction);
        }
    }

    /// The key the new certificate is for: the live one where renewd may
    /// reuse it, as the renewer decides.
    fn key_for(&mut self, cert: &CertificateConfig, fresh_key: bool, now: OffsetDateTime) -> u64 {
        let lineage = Ok(self.live(&cert.name).map(|l| l.lineage(&cert.name)));
        let urgent = schedule::urgent(cert, &lineage, now);
        match self.live(&cert.name) {
            Some(live) if cert.reuse_key && !fresh_key && urgent.is_none() => live.issued.key,
            _ => self.new_key(),
        }
    }

    fn fate(&mut self, name: &str, now: OffsetDateTime) -> (StdDuration, Fate) {
        let told = |sim: &mut Self, after: Duration| {
            let at = now + after;
            sim.told.insert(name.to_owned(), (now, at));
            at
        };
        if let Some(down) = self.ca.down_at(now) {
            let failure = match down.retry_after {
                None => Failure::new(Kind::CaUnreachable, "CA sim: connection refused"),
                Some(after) => {
                    told(self, after);
                    Failure::new(Kind::CaUnreachable, "CA sim: 503 Service Unavailable")
                }
            };
            return (seconds(0.2), Fate::Failed(failure));
        }
        let faults = self.faults;
        let mut latency = self.rng.random_range(1.0..6.0);
        if faults.has(Fault::RateLimit) && self.rng.random_bool(0.02) {
            let after = Duration::minutes(self.rng.random_range(10..180));
            let until = told(self, after);
            let failure = Failure::new(
                Kind::RateLimited { until: Some(until) },
                "CA sim: rateLimited: too many certificates",
            );
            return (seconds(0.3), Fate::Failed(failure));
        }
        if faults.has(Fault::BadNonce) && self.rng.random_bool(0.1) {
            latency += 0.1;
        }
        if faults.has(Fault::NoReplaces) && self.rng.random_bool(0.05) {
            latency += 0.3;
        }
        if faults.has(Fault::Validation) {
            if self.rng.random_bool(0.05) {
                latency += self.rng.random_range(10.0..60.0);
            }
            if self.rng.random_bool(0.03) {
                let failure = Failure::new(
                    Kind::ValidationFailed,
                    "sim.example: http-01 validation with solver web failed: connection reset",
                );
                return (seconds(latency), Fate::Failed(failure));
            }
        }
        (seconds(latency), Fate::Issued)
    }

    /// Writes the new certificate to `live/`, atomically.
    fn publish(
        &mut self,
        cert: &CertificateConfig,
        serial: &str,
        issued: super::ca::Issued,
        reason: &str,
    ) -> Live {
        let name = &cert.name;
        let now = self.now();
        let version = self.live(name).map_or(1, |l| l.version + 1);
        let live = Live {
            version,
            serial: serial.to_owned(),
            key_type: cert.key,
            issued,
        };
        self.counts.renewals += 1;
        self.event(
            name,
            format!("published version {version}, serial {serial}"),
        );
        self.disk.live.insert(name.to_string(), live.clone());
        self.published.insert(name.to_string(), now);
        self.reloads_since_publish.insert(name.to_string(), 0);
        if reason.starts_with("forced") {
            self.forced.entry(name.to_string()).or_default().push(now);
        }
        self.replaced(name, &live);
        live
    }

    fn start_poll(&mut self, name: &str) -> StdDuration {
        self.counts.ari_polls += 1;
        self.polls_in_flight += 1;
        if self.polls_in_flight > self.max_concurrent() {
            let what = format!("{} ARI polls in flight", self.polls_in_flight);
            self.violated(3, name, &what);
        }
        seconds(self.rng.random_range(0.05..0.3))
    }

    /// A reload of `target` for `names` starts: how long it takes and whether
    /// it fails.
    fn start_reload(&mut self, target: &ReloadTarget, names: &[String]) -> (StdDuration, bool) {
        let now = self.now();
        let target = reload::describe(target);
        for name in names {
            self.reloaded.insert((name.clone(), target.clone()), now);
            *self.reloads_since_publish.entry(name.clone()).or_default() += 1;
            self.event(name, format!("reload {target}"));
        }
        if !self.faults.has(Fault::Reload) {
            return (seconds(0.5), false);
        }
        if self.rng.random_bool(0.005) {
            // Hangs until the unit's job times out.
            return (StdDuration::from_secs(600), true);
        }
        (seconds(0.5), self.rng.random_bool(0.05))
    }
}
