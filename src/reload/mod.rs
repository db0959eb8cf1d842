//! Reloading what uses a renewed certificate: systemd units over D-Bus
//! (`dbus`), a signal to the pid in a pid file, or an exec hook.
//!
//! A target runs once per batch however many of the batch's certificates use it
//! (the scheduler coalesces, one-shot runs use [`coalesce`]). A failure here never rolls back the
//! stored certificate; it makes the certificate unhealthy until a later reload
//! or verification succeeds.

mod dbus;
mod exec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::ReloadTarget;

/// How long an exec hook or a unit's reload job may take.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A reload that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No system bus, or systemd refused.
    #[error("unit {unit}: {message}")]
    Unit {
        /// The unit.
        unit: String,
        /// What went wrong.
        message: String,
    },
    /// The pid file could not be read or holds no pid.
    #[error("pid file {}: {message}", path.display())]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The process could not be signalled.
    #[error("signal {signal} to pid {pid} (from {}): {message}", path.display())]
    Signal {
        /// Signal name.
        signal: String,
        /// Target pid.
        pid: i32,
        /// Where the pid came from.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The hook could not run, timed out or exited non-zero.
    #[error("exec {command}: {message}")]
    Exec {
        /// The command line.
        command: String,
        /// What went wrong (exit status and the end of stderr).
        message: String,
    },
}

/// The certificates a reload is for, as exec hooks see them.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// Certificate names.
    pub names: Vec<String>,
    /// `live/<name>` of the first certificate (certbot's `RENEWED_LINEAGE`).
    pub lineage: PathBuf,
    /// Every domain of every certificate.
    pub domains: Vec<String>,
}

impl Renewed {
    /// What exec hooks are told about `certs` (all stored in `store`).
    #[must_use]
    pub fn new(store: &crate::store::Store, certs: &[&crate::config::CertificateConfig]) -> Self {
        Self {
            names: certs.iter().map(|c| c.name.to_string()).collect(),
            lineage: certs
                .first()
                .map(|c| store.live_dir(&c.name))
                .unwrap_or_default(),
            domains: certs
                .iter()
                .flat_map(|c| c.domains.iter().map(ToString::to_string))
                .collect(),
        }
    }
}

/// Groups the reload targets of `certs` so each distinct target runs once, for
/// all the certificates that use it, in first-use order.
#[must_use]
pub fn coalesce<'a>(
    certs: &[&'a crate::config::CertificateConfig],
) -> Vec<(ReloadTarget, Vec<&'a crate::config::CertificateConfig>)> {
    let mut targets: Vec<(ReloadTarget, Vec<&crate::config::CertificateConfig>)> = Vec::new();
    for cert in certs {
        for target in cert.reload.iter() {
            match targets.iter_mut().find(|(t, _)| t == target) {
                Some((_, users)) => users.push(cert),
                None => targets.push((target.clone(), vec![cert])),
            }
        }
    }
    targets
}

/// Runs one reload target.
///
/// # Errors
///
/// [`Error`] saying what failed; the caller logs it and marks the certificates.
pub async fn run(target: &ReloadTarget, renewed: &Renewed) -> Result<(), Error> {
    match target {
        ReloadTarget::Unit(unit) => dbus::reload_unit(unit, TIMEOUT).await,
        ReloadTarget::Signal { signal, pid_file } => send_signal(signal, pid_file),
        ReloadTarget::Exec(command) => exec::run(command, renewed, TIMEOUT).await,
    }
}

/// A short description for logs and status.
#[must_use]
pub fn describe(target: &ReloadTarget) -> String {
    match target {
        ReloadTarget::Unit(unit) => format!("unit {unit}"),
        ReloadTarget::Signal { signal, pid_file } => {
            format!("SIG{signal} to pid in {}", pid_file.display())
        }
        ReloadTarget::Exec(command) => format!("exec {}", command.join(" ")),
    }
}

fn send_signal(signal: &str, pid_file: &Path) -> Result<(), Error> {
    let pid_err = |message: String| Error::PidFile {
        path: pid_file.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(pid_file).map_err(|e| pid_err(e.to_string()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 1)
        .ok_or_else(|| pid_err(format!("{:?} is not a process id", text.trim())))?;
    let sig_err = |message: String| Error::Signal {
        signal: signal.to_owned(),
        pid,
        path: pid_file.to_owned(),
        message,
    };
    let sig: Signal = format!("SIG{signal}")
        .parse()
        .map_err(|_| sig_err("unknown signal".to_owned()))?;
    kill(Pid::from_raw(pid), None).map_err(|e| sig_err(format!("process not running ({e})")))?;
    kill(Pid::from_raw(pid), sig).map_err(|e| sig_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renewed() -> Renewed {
        Renewed {
            names: vec!["a".into()],
            lineage: "/var/lib/renewd/live/a".into(),
            domains: vec!["a.example".into()],
        }
    }

    #[tokio::test]
    async fn a_stale_pid_file_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("x.pid");
        let target = ReloadTarget::Signal {
            signal: "HUP".into(),
            pid_file: pid_file.clone(),
        };
        let err = run(&target, &renewed()).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("pid file {}", pid_file.display())),
            "{err}"
        );
        std::fs::write(&pid_file, "999999999\n").unwrap();
        let err = run(&target, &renewed()).await.unwrap_err().to_string();
        assert!(err.contains("process not running"), "{err}");
    }

    #[tokio::test]
    async fn a_signal_reaches_a_live_process() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("x.pid");
        std::fs::write(&pid_file, child.id().unwrap().to_string()).unwrap();
        let target = ReloadTarget::Signal {
            signal: "TERM".into(),
            pid_file,
        };
        run(&target, &renewed()).await.unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success());
    }
}
