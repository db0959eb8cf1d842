//! The resident scheduler: one loop that owns every per-certificate decision.
//!
//! It sleeps until the earliest of: a planned renewal, an ARI poll, a pending
//! state save or `STATUS=` line, the watchdog — or until an [`Event`] arrives or
//! a renewal or poll finishes. There is no fixed polling period. Renewals run as
//! tasks bounded by `daemon.max_concurrent`; a certificate already renewing is
//! never started twice, which is what makes repeated SIGUSR1 harmless.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tracing::{error, info, warn};

mod ari;
mod deploy;
mod tasks;

use tasks::Tasks;

use super::Event;
use crate::acme::{self, RenewalInfo};
use crate::config::{Config, ReloadTarget};
use crate::control::proto::RenewEvent;
use crate::reload;
use crate::renew::{Context, Outcome};
use crate::schedule::{self, Facts, Plan};
use crate::status::Served;
use crate::systemd::notify;

/// How long in-flight renewals may finish after SIGTERM before they are abandoned.
const DRAIN: StdDuration = StdDuration::from_secs(5);
/// Coalesces state writes during a mass renewal.
const SAVE_DELAY: StdDuration = StdDuration::from_secs(1);
/// At most one `STATUS=` a second: a mass renewal finishes hundreds of
/// certificates a second, and each line costs a pass over all of them.
const STATUS_INTERVAL: StdDuration = StdDuration::from_secs(1);
/// Never poll ARI more often than this (or `check_interval`, if shorter),
/// whatever Retry-After says.
const MIN_ARI_INTERVAL: StdDuration = StdDuration::from_secs(60);

/// How long a check right after a reload waits for the service to serve the new
/// certificate (services reload asynchronously).
const VERIFY_PATIENCE: StdDuration = StdDuration::from_secs(15);
/// How long a periodic re-check retries.
const REVERIFY_PATIENCE: StdDuration = StdDuration::from_secs(5);

/// Serial polled for, the ARI answer, whether the CRL lists the serial, and the
/// middle of the live certificate's lifetime.
type PollResult = (
    String,
    Result<RenewalInfo, acme::Error>,
    Option<bool>,
    Option<OffsetDateTime>,
);
type ReloadResult = (ReloadTarget, Vec<String>, Result<(), reload::Error>);
/// Serial checked for, and what each target serves.
type VerifyResult = (String, Vec<Served>);

/// What the scheduler knows about one certificate between decisions.
#[derive(Debug, Default)]
struct Entry {
    plan: Option<Plan>,
    serial: Option<String>,
    ari_id: Option<String>,
    ari_poll_at: Option<OffsetDateTime>,
    ari_failures: u32,
    verify_at: Option<OffsetDateTime>,
    running: bool,
    /// The reload targets a running renewal holds back (those of the config it
    /// started with), released when it finishes.
    holds: Vec<ReloadTarget>,
    polling: bool,
    verifying: bool,
}

impl Entry {
    /// The earliest time something is planned for this certificate that is not
    /// already under way.
    fn earliest(&self) -> Option<OffsetDateTime> {
        if self.running {
            return None;
        }
        let plan = self.plan.as_ref().map(|p| p.at);
        let poll = self.ari_poll_at.filter(|_| !self.polling);
        let verify = self.verify_at.filter(|_| !self.verifying);
        plan.into_iter().chain(poll).chain(verify).min()
    }
}

pub(super) struct Scheduler {
    config_path: PathBuf,
    ctx: Arc<Context>,
    ctx_tx: watch::Sender<Arc<Context>>,
    entries: HashMap<String, Entry>,
    permits: Arc<Semaphore>,
    renewals: Tasks<Outcome>,
    polls: Tasks<PollResult>,
    reloads: JoinSet<ReloadResult>,
    verifies: Tasks<VerifyResult>,
    /// Reload targets waiting for the renewals of their batch to finish, with
    /// the certificates they are for.
    pending_reloads: Vec<(ReloadTarget, Vec<String>)>,
    /// Per certificate, reloads still to run before it is verified.
    outstanding: HashMap<String, usize>,
    /// Per reload target, the running renewals of certificates that use it: a
    /// target's batch is complete when none is left.
    held: HashMap<ReloadTarget, usize>,
    waiters: HashMap<String, Vec<oneshot::Sender<RenewEvent>>>,
    /// Certificates of the forced mass renewal in progress that have not
    /// finished yet; a second SIGUSR1 meanwhile adds nothing.
    batch: std::collections::HashSet<String>,
    save_at: Option<Instant>,
    /// Nothing is planned before this (`None`: nothing at all), so until then
    /// there is nothing to start and no need to look at every certificate. A
    /// lower bound: lowered whenever an entry's times change, made exact by each
    /// look. Without it each of a mass renewal's completions cost a pass over
    /// all certificates.
    horizon: Option<OffsetDateTime>,
    /// When the next `STATUS=` is due, if anything changed.
    status_at: Option<Instant>,
    status_sent: Instant,
}

impl Scheduler {
    pub(super) fn new(
        config_path: PathBuf,
        ctx: Arc<Context>,
        ctx_tx: watch::Sender<Arc<Context>>,
    ) -> Self {
        Self {
            config_path,
            permits: Arc::new(Semaphore::new(ctx.config.daemon.max_concurrent)),
            ctx,
            ctx_tx,
            entries: HashMap::new(),
            renewals: Tasks::new(),
            polls: Tasks::new(),
            reloads: JoinSet::new(),
            verifies: Tasks::new(),
            pending_reloads: Vec::new(),
            outstanding: HashMap::new(),
            held: HashMap::new(),
            waiters: HashMap::new(),
            batch: std::collections::HashSet::new(),
            save_at: None,
            horizon: Some(OffsetDateTime::UNIX_EPOCH),
            status_at: None,
            status_sent: Instant::now(),
        }
    }

    fn config(&self) -> &Config {
        &self.ctx.config
    }

    pub(super) async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        self.replan_all().await;
        self.save_state().await;
        let status = self.status_line().await;
        info!(
            certificates = self.entries.len(),
            "renewd started: {status}"
        );
        notify::ready(&status);
        let mut watchdog = notify::watchdog_interval().map(tokio::time::interval);
        loop {
            self.start_due();
            let wake = self.next_wake();
            tokio::select! {
                event = events.recv() => match event {
                    None | Some(Event::Shutdown) => break,
                    Some(event) => self.handle(event).await,
                },
                Some((name, done)) = self.renewals.join_next() => {
                    self.renewal_ended(name, done).await;
                }
                Some((name, done)) = self.polls.join_next() => match done {
                    Ok(result) => self.polled(name, result).await,
                    Err(e) => self.poll_died(name, &e).await,
                },
                Some(done) = self.reloads.join_next() => match done {
                    Ok(result) => self.reloaded(result).await,
                    Err(e) => error!("reload task failed: {e}"),
                },
                Some((name, done)) = self.verifies.join_next() => match done {
                    Ok(result) => self.verified(name, result).await,
                    Err(e) => self.verify_died(&name, &e),
                },
                () = tokio::time::sleep_until(wake) => {}
                () = tick(&mut watchdog) => notify::watchdog(),
            }
            let now = Instant::now();
            if self.save_at.is_some_and(|at| at <= now) {
                self.save_state().await;
            }
            if self.status_at.is_some_and(|at| at <= now) {
                self.send_status().await;
            }
        }
        self.shutdown().await;
    }

    /// Starts every renewal and ARI poll whose time has come.
    fn start_due(&mut self) {
        let now = OffsetDateTime::now_utc();
        if self.horizon.is_none_or(|at| now < at) {
            return;
        }
        let mut renew = Vec::new();
        let mut poll = Vec::new();
        let mut verify = Vec::new();
        for (name, entry) in &self.entries {
            if entry.running {
                continue;
            }
            if let Some(plan) = entry.plan.as_ref().filter(|p| p.at <= now) {
                renew.push((name.clone(), plan.reason.clone()));
                continue;
            }
            if !entry.polling && entry.ari_poll_at.is_some_and(|at| at <= now) {
                poll.push(name.clone());
            }
            if !entry.verifying && entry.verify_at.is_some_and(|at| at <= now) {
                verify.push(name.clone());
            }
        }
        for (name, reason) in renew {
            self.start_renewal(&name, &reason);
        }
        for name in poll {
            self.start_poll(&name);
        }
        for name in verify {
            self.start_verify(&name, REVERIFY_PATIENCE);
        }
        self.horizon = self.entries.values().filter_map(Entry::earliest).min();
    }

    /// Lowers the horizon to `name`'s planned times, after they changed or it
    /// stopped renewing, polling or verifying.
    fn touched(&mut self, name: &str) {
        if let Some(at) = self.entries.get(name).and_then(Entry::earliest) {
            self.horizon = Some(self.horizon.map_or(at, |h| h.min(at)));
        }
    }

    /// The earliest instant anything is planned.
    fn next_wake(&self) -> Instant {
        let now = OffsetDateTime::now_utc();
        let cap = self.config().daemon.check_interval.0;
        let until = self.horizon.map_or(cap, |at| {
            StdDuration::try_from(at - now)
                .unwrap_or(StdDuration::ZERO)
                .min(cap)
        });
        let wake = Instant::now() + until;
        [self.save_at, self.status_at]
            .into_iter()
            .flatten()
            .fold(wake, Instant::min)
    }

    fn start_renewal(&mut self, name: &str, reason: &str) {
        let Some(cert) = self.config().certificate(name).cloned() else {
            return;
        };
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        entry.running = true;
        entry.holds.clone_from(&cert.reload);
        for target in &entry.holds {
            *self.held.entry(target.clone()).or_default() += 1;
        }
        let ctx = Arc::clone(&self.ctx);
        let permits = Arc::clone(&self.permits);
        let max = self.config().daemon.max_concurrent;
        let reason = reason.to_owned();
        self.renewals.spawn(name, async move {
            let slot = Arc::clone(&permits).acquire_owned().await.ok();
            let in_flight = max.saturating_sub(permits.available_permits());
            info!(cert_name = %cert.name, in_flight, reason, "order started");
            ctx.renew_now(&cert, &reason, slot).await
        });
    }

    /// A renewal task ended; one that panicked ends its renewal as a failure.
    async fn renewal_ended(&mut self, name: String, done: Result<Outcome, JoinError>) {
        let outcome = match done {
            Ok(outcome) => outcome,
            Err(e) => {
                // The task died before recording its attempt: record it here, so
                // that the retry waits for the backoff instead of looping.
                error!(cert_name = %name, "renewal task failed: {e}");
                let outcome = Outcome::Failed(format!("internal error: {e}"));
                let now = OffsetDateTime::now_utc();
                self.ctx.record(&name, now, &outcome).await;
                outcome
            }
        };
        self.finished(name, outcome).await;
    }

    async fn finished(&mut self, name: String, outcome: Outcome) {
        let event = match &outcome {
            Outcome::Renewed { .. } => "renewed",
            Outcome::Failed(_) => "failed",
            Outcome::NotDue { .. } => "not-due",
        };
        for waiter in self.waiters.remove(&name).unwrap_or_default() {
            let _ = waiter.send(RenewEvent {
                event: event.to_owned(),
                name: name.clone(),
                detail: outcome.to_string(),
            });
        }
        self.batch.remove(&name);
        if let Some(entry) = self.entries.get_mut(&name) {
            entry.running = false;
            let holds = std::mem::take(&mut entry.holds);
            self.release(&holds);
            if matches!(outcome, Outcome::Renewed { .. }) {
                self.deploy(&name);
            }
            self.dispatch_reloads();
            self.replan(&name).await;
            self.schedule_save();
            self.status_changed();
        }
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Shutdown => {}
            Event::RenewAll => {
                let names = self.config().names();
                info!(
                    renewd_event = "renew-all",
                    certificates = names.len(),
                    "forced renewal of every certificate"
                );
                self.force(&names).await;
            }
            Event::Renew {
                names,
                force,
                reply,
            } => {
                let result = self.renew_request(names, force).await;
                let _ = reply.send(result);
            }
            Event::Reload(reply) => {
                let result = self.reload().await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Marks `names` as forced, starts those not already renewing and persists
    /// the marks, so a daemon restarted after a crash finishes the job. The orders
    /// need several round trips to the CA, so the write lands long before any of
    /// them can finish; it does not hold them up.
    async fn force(&mut self, names: &[String]) {
        {
            let mut state = self.ctx.state().lock().await;
            for name in names {
                state.entry(name).force_pending = true;
            }
        }
        for name in names {
            if self.entries.get(name).is_some_and(|e| !e.running) {
                self.start_renewal(name, "forced");
            }
        }
        self.save_state().await;
    }

    async fn renew_request(
        &mut self,
        names: Vec<String>,
        force: bool,
    ) -> Result<Vec<super::Pending>, String> {
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
            self.force(&names).await;
        }
        let now = OffsetDateTime::now_utc();
        let mut pending = Vec::with_capacity(names.len());
        for name in names {
            let (tx, rx) = oneshot::channel();
            let entry = &self.entries[&name];
            match entry.plan.as_ref() {
                _ if entry.running => self.waiters.entry(name.clone()).or_default().push(tx),
                Some(plan) if plan.at <= now => {
                    let reason = plan.reason.clone();
                    self.start_renewal(&name, &reason);
                    self.waiters.entry(name.clone()).or_default().push(tx);
                }
                plan => {
                    let at = plan.map_or(now, |p| p.at);
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
        let config = Arc::new(Config::load(&self.config_path).map_err(|e| e.to_string())?);
        let old = &self.ctx.config.daemon;
        if config.daemon.control_socket != old.control_socket
            || config.daemon.control_group != old.control_group
        {
            warn!("daemon.control_socket / control_group changes take effect at the next restart");
        }
        if config.daemon.state_dir != old.state_dir {
            warn!("daemon.state_dir changes take effect at the next restart");
        }
        let ctx = Context::with_state(
            Arc::clone(&config),
            self.ctx.store.clone(),
            Arc::clone(self.ctx.state()),
        );
        if config.daemon.max_concurrent != old.max_concurrent {
            self.permits = Arc::new(Semaphore::new(config.daemon.max_concurrent));
        }
        let before = self.entries.len();
        let mut released = Vec::new();
        self.entries.retain(|name, entry| {
            let keep = config.certificate(name).is_some();
            if !keep {
                released.append(&mut entry.holds);
            }
            keep
        });
        self.release(&released);
        self.dispatch_reloads();
        let removed = before - self.entries.len();
        let added = config
            .certificates
            .iter()
            .filter(|c| !self.entries.contains_key(&c.name))
            .count();
        self.ctx = Arc::new(ctx);
        let _ = self.ctx_tx.send(Arc::clone(&self.ctx));
        self.replan_all().await;
        self.save_state().await;
        info!(
            renewd_event = "config-reloaded",
            added, removed, "config reloaded"
        );
        Ok(())
    }

    async fn replan_all(&mut self) {
        let names: Vec<String> = self.config().names();
        for name in names {
            self.entries.entry(name.clone()).or_default();
            self.replan(&name).await;
        }
    }

    /// Re-reads `live/<name>` and decides anew when to renew and poll it.
    async fn replan(&mut self, name: &str) {
        let Some(cert) = self.ctx.config.certificate(name) else {
            return;
        };
        let now = OffsetDateTime::now_utc();
        let lineage = self.ctx.store.lineage(name).map_err(|e| e.to_string());
        let live = lineage.as_ref().ok().and_then(Option::as_ref);
        let serial = live.map(|l| l.cert.serial.clone());
        let ari_id = live.and_then(|l| l.cert.ari_id.clone());
        let state = Arc::clone(self.ctx.state());
        let mut state = state.lock().await;
        let cs = state.entry(name);
        if let Some(serial) = &serial {
            if !cs.is_for(serial) {
                // Renewed behind our back (one-shot run, crash before a save):
                // what we knew is about another certificate.
                cs.renewed(serial);
            }
        }
        let daemon = &self.ctx.config.daemon;
        let facts = Facts {
            lineage: &lineage,
            state: cs,
            renew_before: daemon.renew_before.0,
            jitter: daemon.jitter.0,
            now,
        };
        let plan = schedule::plan(cert, &facts, rand::random());
        if let Some(chosen) = plan.chosen {
            cs.next_renewal = Some(chosen);
            self.save_at
                .get_or_insert_with(|| Instant::now() + SAVE_DELAY);
        }
        let ari_poll_at = ari_id.as_ref().map(|_| cs.ari_poll_at.unwrap_or(now));
        drop(state);
        let verifies = !cert.verify.is_empty();
        let entry = self.entries.entry(name.to_owned()).or_default();
        if verifies && entry.verify_at.is_none() {
            entry.verify_at = Some(now);
        } else if !verifies {
            entry.verify_at = None;
        }
        entry.plan = Some(plan);
        entry.serial = serial;
        entry.ari_id = ari_id;
        entry.ari_poll_at = ari_poll_at;
        self.touched(name);
    }

    fn schedule_save(&mut self) {
        self.save_at
            .get_or_insert_with(|| Instant::now() + SAVE_DELAY);
    }

    async fn save_state(&mut self) {
        self.save_at = None;
        self.ctx.save_state().await;
    }

    /// Sends `STATUS=` now, or a second after the last one.
    fn status_changed(&mut self) {
        let at = (self.status_sent + STATUS_INTERVAL).max(Instant::now());
        self.status_at.get_or_insert(at);
    }

    async fn send_status(&mut self) {
        self.status_at = None;
        self.status_sent = Instant::now();
        notify::status(&self.status_line().await);
    }

    /// `N certificates, next: NAME in 21d 3h[, K renewing][, F failing]`.
    async fn status_line(&self) -> String {
        let now = OffsetDateTime::now_utc();
        let next = self
            .entries
            .iter()
            .filter(|(_, e)| !e.running)
            .filter_map(|(name, e)| e.plan.as_ref().map(|p| (p.at, name)))
            .min();
        let mut line = format!("{} certificates", self.entries.len());
        if let Some((at, name)) = next {
            let when = match crate::status::human_duration(at - now) {
                now if now == "now" => now,
                later => format!("in {later}"),
            };
            line.push_str(&format!(", next: {name} {when}"));
        }
        let renewing = self.entries.values().filter(|e| e.running).count();
        if renewing > 0 {
            line.push_str(&format!(", {renewing} renewing"));
        }
        let state = self.ctx.state().lock().await;
        let failing = self
            .entries
            .keys()
            .filter(|n| state.certificates.get(*n).is_some_and(|s| s.failures > 0))
            .count();
        if failing > 0 {
            line.push_str(&format!(", {failing} failing"));
        }
        line
    }

    async fn shutdown(mut self) {
        notify::stopping();
        info!(in_flight = self.renewals.len(), "stopping");
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some((name, done)) = self.renewals.join_next().await {
                if let Ok(outcome) = done {
                    info!(cert_name = %name, "finished before stop: {outcome}");
                }
            }
        })
        .await;
        if drained.is_err() {
            // Publishing runs on a blocking thread that finishes even when its
            // renewal is aborted, so aborting never splits a store write.
            warn!(
                abandoned = self.renewals.len(),
                "abandoning renewals still in flight"
            );
            self.renewals.abort_all();
        }
        self.polls.abort_all();
        self.verifies.abort_all();
        self.save_state().await;
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scheduler for one certificate, `a`, over a fresh state directory.
    fn scheduler(dir: &std::path::Path) -> Scheduler {
        let path = dir.join("renewd.toml");
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n\n[ca.test]\ndirectory = \"https://127.0.0.1:1/dir\"\n\n\
             [solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:1\"\n\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\nca = [\"test\"]\n\
             solvers = [\"web\"]\n",
            dir.join("state").display()
        );
        let config = Arc::new(Config::from_str(&text, &path).unwrap());
        let store = crate::store::Store::open(&config.daemon.state_dir).unwrap();
        let ctx = Arc::new(Context::new(config, store));
        let (ctx_tx, _) = watch::channel(Arc::clone(&ctx));
        Scheduler::new(path, ctx, ctx_tx)
    }

    #[tokio::test]
    async fn a_renewal_task_that_panics_ends_as_a_failure_not_running_forever() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        scheduler.entries.entry("a".to_owned()).or_default().running = true;
        scheduler
            .renewals
            .spawn("a", async { panic!("a bug in a renewal") });

        let (name, done) = scheduler.renewals.join_next().await.unwrap();
        scheduler.renewal_ended(name, done).await;

        let entry = &scheduler.entries["a"];
        assert!(!entry.running, "free to be renewed again");
        let retry = entry.plan.as_ref().unwrap().at;
        assert!(retry > OffsetDateTime::now_utc(), "retried after a backoff");
        let state = scheduler.ctx.state().lock().await;
        let a = &state.certificates["a"];
        assert_eq!(a.failures, 1);
        assert!(
            a.last_result
                .as_deref()
                .unwrap()
                .contains("a bug in a renewal"),
            "{a:?}"
        );
    }

    #[tokio::test]
    async fn a_poll_or_check_task_that_panics_is_retried_later() {
        let dir = tempfile::tempdir().unwrap();
        let mut scheduler = scheduler(dir.path());
        let entry = scheduler.entries.entry("a".to_owned()).or_default();
        entry.polling = true;
        entry.verifying = true;
        scheduler
            .polls
            .spawn("a", async { panic!("a bug in a poll") });
        scheduler
            .verifies
            .spawn("a", async { panic!("a bug in a check") });

        let (name, done) = scheduler.polls.join_next().await.unwrap();
        scheduler.poll_died(name, &done.unwrap_err()).await;
        let (name, done) = scheduler.verifies.join_next().await.unwrap();
        scheduler.verify_died(&name, &done.unwrap_err());

        let now = OffsetDateTime::now_utc();
        let entry = &scheduler.entries["a"];
        assert!(!entry.polling && !entry.verifying);
        assert_eq!(entry.ari_failures, 1);
        let state = scheduler.ctx.state().lock().await;
        assert!(
            state.certificates["a"].ari_poll_at.unwrap() > now,
            "poll backs off"
        );
        assert!(
            entry.verify_at.unwrap() > now,
            "check waits a check interval"
        );
    }
}
