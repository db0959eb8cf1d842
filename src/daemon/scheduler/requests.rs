//! What reaches the scheduler from outside: SIGUSR1 and SIGHUP, the control
//! socket's `renew` and `reload-config`, and a revocation the socket made. A
//! config reload swaps in a new [`Renewer`]; an invalid config is reported and
//! the old one kept.

use std::sync::Arc;

use tokio::sync::{Semaphore, oneshot};
use tracing::{error, info, warn};

use super::Scheduler;
use crate::config::Config;
use crate::control::proto::RenewEvent;
use crate::daemon::{Event, Pending};
use crate::intern;
use crate::renew::Outcome;
use crate::systemd::notify;

impl Scheduler {
    pub(super) async fn handle(&mut self, event: Event) {
        match event {
            Event::Shutdown => {}
            Event::RenewAll => {
                let names = self.config().names();
                info!(
                    renewd_event = "renew-all",
                    certificates = names.len(),
                    "forced renewal of every certificate"
                );
                match self.world.fleet_force(&[]).await {
                    None => self.force(&names).await,
                    Some(Ok(())) => {}
                    Some(Err(e)) => error!("cannot ask the fleet to renew everything: {e}"),
                }
            }
            Event::Replan(names) => {
                for name in &names {
                    self.replan(name).await;
                }
                self.status_changed();
            }
            Event::FleetForce(names) => self.force(&names).await,
            Event::Published { name, serial, ca } => self.published(&name, &serial, ca).await,
            Event::FleetFailed { name, at, detail } => {
                self.fleet_outcome(&name, Some(at), "failed", &format!("failed: {detail}"));
            }
            Event::Renew {
                names,
                force,
                reply,
            } => {
                let result = self.renew_request(names, force).await;
                let _ = reply.send(result);
            }
            Event::Revoked { name, serial } => self.revoked(&name, &serial).await,
            Event::Reload(reply) => {
                let result = self.reload().await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
    }

    async fn renew_request(
        &mut self,
        names: Vec<String>,
        force: bool,
    ) -> Result<Vec<Pending>, String> {
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| self.config().certificate(n).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(format!("no certificate named {}", unknown.join(", ")));
        }
        let names = if names.is_empty() {
            self.config().names()
        } else {
            names
        };
        if force {
            let all = names.len() == self.entries.len();
            let fleet = if all { Vec::new() } else { names.clone() };
            match self.world.fleet_force(&fleet).await {
                None => self.force(&names).await,
                Some(Ok(())) => return Ok(self.wait_for_fleet(names)),
                Some(Err(e)) => return Err(format!("cannot ask the fleet to renew: {e}")),
            }
        }
        let now = self.clock.now();
        let mut pending = Vec::with_capacity(names.len());
        for name in names {
            let (tx, rx) = oneshot::channel();
            let entry = &self.entries[name.as_str()];
            match entry.plan.as_ref() {
                _ if entry.running => self.waiters.entry(name.clone()).or_default().push(tx),
                _ if force && self.renewed_in_batch(&name) => {
                    let _ = tx.send(RenewEvent {
                        event: "not-due".to_owned(),
                        name: name.clone(),
                        detail: "already renewed in the mass renewal in progress".to_owned(),
                    });
                }
                _ if !self.world.holds(&name) => {
                    let _ = tx.send(RenewEvent {
                        event: "not-due".to_owned(),
                        name: name.clone(),
                        detail: "another node of the fleet holds it and renews it when it is \
                                 due (renew --force renews it now, from any node)"
                            .to_owned(),
                    });
                }
                Some(plan) if plan.at.time() <= now => {
                    let reason = plan.reason.to_string();
                    self.start_renewal(&name, reason);
                    self.waiters.entry(name.clone()).or_default().push(tx);
                }
                plan => {
                    let at = plan.map_or(now, |p| p.at.time());
                    let _ = tx.send(RenewEvent {
                        event: "not-due".to_owned(),
                        name: name.clone(),
                        detail: Outcome::NotDue { at }.to_string(),
                    });
                }
            }
            pending.push((name, rx));
        }
        Ok(pending)
    }

    /// Fleet mode: another node's version of `name` is live here now; it is
    /// recorded and deployed like one renewed here.
    async fn published(&mut self, name: &str, serial: &str, ca: Option<String>) {
        if !self.entries.contains_key(name) {
            return;
        }
        {
            let mut state = self.state.lock().await;
            let cs = state.entry(name);
            if cs.is_for(serial) {
                return;
            }
            cs.renewed(serial);
            cs.ca = ca.as_deref().map(intern::shared);
            cs.last_result = Some(intern::shared("ok"));
            cs.deploy_pending = true;
        }
        if self.fleet_waiters.contains_key(name)
            && let Ok(Some(lineage)) = self.world.lineage(name)
        {
            let detail = format!(
                "renewed: version {}, serial {serial}, valid until {} (CA {}, by another node)",
                lineage.version,
                crate::status::rfc3339(lineage.cert.not_after),
                ca.as_deref().unwrap_or("?"),
            );
            self.fleet_outcome(name, None, "renewed", &detail);
        }
        self.replan(name).await;
        self.deploy(name, false).await;
        self.hold_reloads_briefly();
        self.dispatch_reloads().await;
        self.schedule_save();
        self.status_changed();
    }

    /// The reply to a forced `renew` in fleet mode: each certificate is
    /// renewed by the node that holds its lease; its line comes with the
    /// first outcome of an attempt started from now on, here or elsewhere.
    fn wait_for_fleet(&mut self, names: Vec<String>) -> Vec<Pending> {
        let since = self.clock.now();
        names
            .into_iter()
            .map(|name| {
                let (tx, rx) = oneshot::channel();
                self.fleet_waiters
                    .entry(name.clone())
                    .or_default()
                    .push((since, tx));
                (name, rx)
            })
            .collect()
    }

    /// Answers the fleet waiters of `name` with an outcome (`event`,
    /// `detail`) of an attempt started `at`. `None` counts for every request:
    /// a version another node published just now, whose order's start this
    /// node does not know (one that started a moment before the request
    /// answers it too; the fleet still renews once more for the request).
    pub(super) fn fleet_outcome(
        &mut self,
        name: &str,
        at: Option<time::OffsetDateTime>,
        event: &str,
        detail: &str,
    ) {
        let Some(waiters) = self.fleet_waiters.get_mut(name) else {
            return;
        };
        let (answered, waiting): (Vec<_>, Vec<_>) = std::mem::take(waiters)
            .into_iter()
            .partition(|(since, _)| at.is_none_or(|at| at >= *since));
        for (_, tx) in answered {
            let _ = tx.send(RenewEvent {
                event: event.to_owned(),
                name: name.to_owned(),
                detail: detail.to_owned(),
            });
        }
        if waiting.is_empty() {
            self.fleet_waiters.remove(name);
        } else {
            *waiters = waiting;
        }
    }

    /// Re-reads the config; an invalid one is reported and the old one kept.
    async fn reload(&mut self) -> Result<(), String> {
        notify::reloading();
        let result = self.try_reload().await;
        if let Err(e) = &result {
            error!(
                renewd_event = "config-invalid",
                "config reload failed, keeping the running config: {e}"
            );
        }
        notify::ready(&self.status_line().await);
        result
    }

    async fn try_reload(&mut self) -> Result<(), String> {
        let world = self.world.reconfigure(&self.state)?;
        let config = Arc::clone(world.config());
        let old = &self.config().daemon;
        if config.daemon.control_socket != old.control_socket
            || config.daemon.control_group != old.control_group
        {
            warn!("daemon.control_socket / control_group changes take effect at the next restart");
        }
        if config.daemon.state_dir != old.state_dir {
            warn!("daemon.state_dir changes take effect at the next restart");
        }
        if config.daemon.max_concurrent != old.max_concurrent {
            self.permits = Arc::new(Semaphore::new(config.daemon.max_concurrent));
            self.poll_permits = Arc::new(Semaphore::new(config.daemon.max_concurrent));
        }
        let before = self.entries.len();
        self.entries
            .retain(|name, _| config.certificate(name).is_some());
        let gone: Vec<String> = self
            .holding
            .keys()
            .filter(|name| config.certificate(name).is_none())
            .cloned()
            .collect();
        for name in gone {
            if let Some(holds) = self.holding.remove(&name) {
                self.release(&holds);
            }
        }
        self.dispatch_reloads().await;
        let removed = before - self.entries.len();
        let added = config
            .certificates
            .iter()
            .filter(|c| !self.entries.contains_key(&*c.name))
            .count();
        let replan = changed_certificates(self.config(), &config);
        self.world = world;
        self.replan_these(replan).await;
        self.save_state().await;
        info!(
            renewd_event = "config-reloaded",
            added, removed, "config reloaded"
        );
        Ok(())
    }

    /// The CA accepted a revocation made through renewd: the certificate is
    /// marked revoked (durably, so a crash still replaces it) and replaced now.
    async fn revoked(&mut self, name: &str, serial: &str) {
        if !self.entries.get(name).is_some_and(|e| e.live) {
            return;
        }
        {
            let mut state = self.state.lock().await;
            if !state
                .certificates
                .get(name)
                .is_some_and(|cs| cs.is_for(serial))
            {
                return; // Replaced meanwhile.
            }
            state.entry(name).revoked = true;
        }
        self.save_state().await;
        self.replan(name).await;
        self.status_changed();
    }
}

/// The certificates of `new` whose plan may differ from the one made under
/// `old`: new ones and changed ones, or all of them when the daemon-wide
/// renewal settings changed. A plan depends on nothing else that a reload
/// changes (the live certificate and the state stay as they are), and
/// re-reading 100,000 certificates for one edit took seconds.
fn changed_certificates(old: &Config, new: &Config) -> Vec<Arc<str>> {
    let (was, is) = (&old.daemon, &new.daemon);
    let everything = was.renew_before != is.renew_before
        || was.jitter != is.jitter
        || was.check_interval != is.check_interval;
    new.certificates
        .iter()
        .filter(|c| everything || old.certificate(&c.name).is_none_or(|o| !o.same_as(c)))
        .map(|c| Arc::clone(&c.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(daemon: &str, certs: &[(&str, &str)]) -> Config {
        let mut text = format!(
            "[daemon]\nstate_dir = \"/nonexistent\"\n{daemon}\n\n[ca.test]\n\
             directory = \"https://127.0.0.1:1/dir\"\n\n[solver.web]\ntype = \"http-01\"\n\
             listen = \"127.0.0.1:1\"\n"
        );
        for (name, domain) in certs {
            text += &format!("\n[[certificate]]\nname = \"{name}\"\ndomains = [\"{domain}\"]\n");
        }
        Config::from_str(&text, Path::new("/renewd.toml")).unwrap()
    }

    #[test]
    fn a_reload_replans_new_and_changed_certificates_only() {
        let old = config("", &[("a", "a.example.com"), ("b", "b.example.com")]);
        // `a` moved down a line: its settings are the same.
        let new = config(
            "",
            &[
                ("c", "c.example.com"),
                ("a", "a.example.com"),
                ("b", "www.b.example.com"),
            ],
        );
        assert_eq!(changed_certificates(&old, &new), ["c".into(), "b".into()]);
        assert!(changed_certificates(&old, &old).is_empty());
    }

    #[test]
    fn a_reload_that_changes_renewal_settings_replans_everything() {
        let certs = [("a", "a.example.com"), ("b", "b.example.com")];
        let old = config("", &certs);
        for daemon in [
            "jitter = \"2h\"",
            "renew_before = \"20d\"",
            "check_interval = \"1h\"",
        ] {
            let new = config(daemon, &certs);
            assert_eq!(
                changed_certificates(&old, &new),
                ["a".into(), "b".into()],
                "{daemon}"
            );
        }
    }
}
