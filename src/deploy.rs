//! After a renewal: reload what uses the certificate, then check that every
//! `verify` target serves it — and how both results are recorded. One path for
//! the daemon (which batches reloads across a mass renewal and re-checks every
//! `check_interval`) and for one-shot `renewd renew` (one batch, then exit).

use std::time::Duration;

use time::OffsetDateTime;
use tracing::{error, info, warn};

use crate::config::{CertificateConfig, ReloadTarget};
use crate::reload;
use crate::state::State;
use crate::store::Store;
use crate::verify::{self, Served};

/// How long a check right after a reload waits for the service to serve the new
/// certificate (services reload asynchronously).
pub const VERIFY_PATIENCE: Duration = Duration::from_secs(15);
/// How long a periodic re-check retries.
pub const REVERIFY_PATIENCE: Duration = Duration::from_secs(5);

/// Runs reload `target` once for the certificates `certs`, renewed in one batch.
///
/// # Errors
///
/// [`reload::Error`] saying what failed.
pub async fn reload(
    target: &ReloadTarget,
    store: &Store,
    certs: &[&CertificateConfig],
) -> Result<(), reload::Error> {
    reload::run(target, &reload::Renewed::new(store, certs)).await
}

/// Logs a reload's `result` and records it for each certificate in `names`.
pub fn record_reload(
    state: &mut State,
    target: &ReloadTarget,
    names: &[String],
    result: &Result<(), reload::Error>,
) {
    let what = reload::describe(target);
    match result {
        Ok(()) => {
            info!(renewd_event = "reloaded", target = %what, certificates = names.len(), "reloaded");
        }
        Err(e) => error!(renewd_event = "reload-failed", target = %what, "reload failed: {e}"),
    }
    for name in names {
        let errors = &mut state.entry(name).reload_errors;
        match result {
            Ok(()) => errors.remove(&what),
            Err(e) => errors.insert(what.clone(), e.to_string()),
        }
    }
}

/// What the `verify` targets of one certificate served.
#[derive(Debug)]
pub struct Check {
    /// Serial of the live certificate checked for.
    pub serial: String,
    /// Per target, whether it served it.
    pub served: Vec<Served>,
}

/// Checks that every `verify` target of `cert` serves its live certificate,
/// retrying each for up to `patience`; `None` when there is nothing to check
/// (no targets, or no certificate yet).
pub async fn check(cert: &CertificateConfig, store: &Store, patience: Duration) -> Option<Check> {
    if cert.verify.is_empty() {
        return None;
    }
    let lineage = store.lineage(&cert.name).ok().flatten()?;
    let sni = verify::sni_for(&cert.domains);
    let served = verify::check_all(&cert.verify, &sni, &lineage.cert.der, patience).await;
    Some(Check {
        serial: lineage.cert.serial,
        served,
    })
}

/// Logs `check` of certificate `name` and records it, unless the certificate
/// was renewed meanwhile (then it is about another certificate). A check
/// that found what the one before did is written with the certificate's
/// next change, not on its own: with 100,000 certificates checks end several
/// times a second, and a `served_at` lost in a crash costs nothing.
pub fn record_check(state: &mut State, name: &str, check: Check, now: OffsetDateTime) {
    let Check { serial, served } = check;
    for s in served.iter().filter(|s| !s.matches) {
        warn!(cert_name = %name, renewd_event = "verify-failed", target = %s.target, serial,
            "the service does not serve the current certificate");
    }
    if served.iter().all(|s| s.matches) {
        info!(cert_name = %name, renewd_event = "verified", serial, "served by every verify target");
    }
    let cs = state.unsaved_entry(name);
    if !cs.is_for(&serial) {
        return;
    }
    let changed = *cs.served != *served;
    cs.served = served.into();
    cs.served_at = Some(now.into());
    if changed {
        state.entry(name);
    }
}
