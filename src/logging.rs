//! Log output: to journald with structured fields when systemd connected our
//! stderr to the journal, otherwise human-readable lines on stderr (colour only
//! on a terminal). `RENEWD_LOG` filters (`tracing_subscriber::EnvFilter` syntax,
//! e.g. `debug` or `renewd=debug`).
//!
//! Field names are chosen for journald: `cert_name` becomes `CERT_NAME` and
//! `renewd_event` becomes `RENEWD_EVENT` (`docs/reference/daemon.md` lists the
//! fields and event values).

use std::os::fd::AsFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber with `default` as the level when `RENEWD_LOG`
/// is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_env("RENEWD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = registry
                .with(
                    journald
                        .with_field_prefix(None)
                        .with_syslog_identifier("renewd".to_owned()),
                )
                .try_init();
            return;
        }
    }
    let _ = registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .try_init();
}

/// Whether `$JOURNAL_STREAM` names the file our stderr is (systemd.exec(5)).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", stat.st_dev, stat.st_ino)
}
