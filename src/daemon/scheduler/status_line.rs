//! systemd's status line: `N certificates, next: NAME in 21d 3h[, K renewing][,
//! F failing]`, sent at most once a second (a mass renewal finishes hundreds of
//! certificates a second, and each line costs a pass over all of them).

use tokio::time::Instant;

use super::{STATUS_INTERVAL, Scheduler};
use crate::systemd::notify;

impl Scheduler {
    /// Sends `STATUS=` now, or a second after the last one — when systemd
    /// listens: the line is a pass over every certificate.
    pub(super) fn status_changed(&mut self) {
        if !self.notify {
            return;
        }
        let at = (self.status_sent + STATUS_INTERVAL).max(Instant::now());
        self.status_at.get_or_insert(at);
    }

    pub(super) async fn send_status(&mut self) {
        self.status_at = None;
        self.status_sent = Instant::now();
        notify::status(&self.status_line().await);
    }

    /// `N certificates, next: NAME in 21d 3h[, K renewing][, F failing]`.
    pub(super) async fn status_line(&self) -> String {
        let now = self.clock.now();
        let next = self
            .entries
            .iter()
            .filter(|(_, e)| !e.running)
            .filter_map(|(name, e)| e.plan.as_ref().map(|p| (p.at, name)))
            .min();
        let mut line = format!("{} certificates", self.entries.len());
        if let Some((at, name)) = next {
            let when = match crate::status::human_duration(at.time() - now) {
                now if now == "now" => now,
                later => format!("in {later}"),
            };
            line.push_str(&format!(", next: {name} {when}"));
        }
        let renewing = self.entries.values().filter(|e| e.running).count();
        if renewing > 0 {
            line.push_str(&format!(", {renewing} renewing"));
        }
        let state = self.state.lock().await;
        let failing = self
            .entries
            .keys()
            .filter(|n| {
                state
                    .certificates
                    .get::<str>(n)
                    .is_some_and(|s| s.failures > 0)
            })
            .count();
        if failing > 0 {
            line.push_str(&format!(", {failing} failing"));
        }
        line
    }
}
