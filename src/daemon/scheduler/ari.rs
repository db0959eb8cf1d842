//! ARI polling: ask the issuing CA for each certificate's renewal window
//! (RFC 9773) as `Retry-After` and `check_interval` say, and notice revocations,
//! there or on the CA's CRL (checked at the same time).

use std::sync::Arc;

use time::OffsetDateTime;
use tracing::warn;

use super::{MIN_ARI_INTERVAL, PollResult, Scheduler};
use crate::acme::RenewalInfo;
use crate::schedule;

impl Scheduler {
    pub(super) fn start_poll(&mut self, name: &str) {
        let (Some(cert), Some(entry)) = (
            self.config().certificate(name).cloned(),
            self.entries.get_mut(name),
        ) else {
            return;
        };
        let (Some(ari_id), Some(serial)) = (entry.ari_id.clone(), entry.serial.clone()) else {
            return;
        };
        entry.polling = true;
        let ctx = Arc::clone(&self.ctx);
        self.polls.spawn(async move {
            let result = ctx.renewal_info(&cert, &ari_id).await;
            let on_crl = ctx.crl_revoked(&cert.name).await;
            (cert.name, serial, result, on_crl)
        });
    }

    pub(super) async fn polled(&mut self, (name, serial, result, on_crl): PollResult) {
        let now = OffsetDateTime::now_utc();
        let check_interval = self.config().daemon.check_interval.0;
        let Some(entry) = self.entries.get_mut(&name) else {
            return;
        };
        entry.polling = false;
        let state = Arc::clone(self.ctx.state());
        let mut state = state.lock().await;
        let cs = state.entry(&name);
        if !cs.is_for(&serial) {
            // Renewed meanwhile: the renewal planned the new certificate's poll.
            drop(state);
            self.touched(&name);
            return;
        }
        if on_crl == Some(true) && !cs.revoked {
            warn!(cert_name = %name, renewd_event = "revoked-detected", serial,
                "serial listed on the CA's CRL: certificate revoked, renewing now");
            cs.revoked = true;
        }
        let next = match result {
            Ok(RenewalInfo::Window(window, retry_after)) => {
                entry.ari_failures = 0;
                let lineage_mid = self
                    .ctx
                    .store
                    .lineage(&name)
                    .ok()
                    .flatten()
                    .map(|l| l.cert.not_before + l.cert.lifetime() / 2);
                // A window that has passed before the middle of the lifetime is the
                // CA asking for early replacement: a revocation (RFC 9773 §4.2).
                if window.end <= now
                    && lineage_mid.is_some_and(|mid| window.end < mid)
                    && !cs.revoked
                {
                    warn!(cert_name = %name, renewd_event = "revoked-detected", serial,
                        "CA moved the renewal window into the past: certificate revoked, renewing now");
                    cs.revoked = true;
                }
                cs.ari_window = Some(window);
                now + retry_after.clamp(check_interval.min(MIN_ARI_INTERVAL), check_interval)
            }
            Ok(RenewalInfo::Unsupported) => now + check_interval,
            Err(e) => {
                entry.ari_failures += 1;
                warn!(cert_name = %name, "ARI poll failed: {e}");
                now + schedule::backoff(
                    entry.ari_failures,
                    check_interval,
                    rand::random_range(0.5..=1.0),
                )
            }
        };
        cs.ari_poll_at = Some(next);
        drop(state);
        self.replan(&name).await;
        self.schedule_save();
    }
}
