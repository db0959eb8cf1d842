//! Running an operator's command: no shell, stdin closed, a timeout after which
//! it is killed, its output logged line by line, and the end of its stderr kept
//! for the error message. Used by exec reload targets and the dns-01 exec hook.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Why a hook did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command is empty.
    #[error("empty command")]
    Empty,
    /// It could not be started (not found, not executable, ...).
    #[error("cannot start: {0}")]
    Start(std::io::Error),
    /// It ran longer than allowed and was killed.
    #[error("still running after {}s, killed", .0.as_secs())]
    Timeout(Duration),
    /// Waiting for it failed.
    #[error("{0}")]
    Wait(std::io::Error),
    /// It exited unsuccessfully; `stderr` holds its last lines.
    #[error("{status}{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed {
        /// Exit status.
        status: ExitStatus,
        /// Last non-empty lines of stderr, joined with " / ".
        stderr: String,
    },
}

/// Runs `command` followed by `args`, with `env` added, for at most `timeout`.
///
/// # Errors
///
/// [`Error`] when it cannot start, times out or exits unsuccessfully.
pub async fn run(
    command: &[String],
    args: &[&str],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<(), Error> {
    let (program, leading) = command.split_first().ok_or(Error::Empty)?;
    let mut child = Command::new(program)
        .args(leading)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::Start)?;
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (mut out, mut err) = (String::new(), String::new());
        // Both pipes are read to the end before waiting, so a chatty hook never
        // blocks on a full pipe; stdout first is fine as hooks write little.
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out).await;
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut err).await;
        }
        (child.wait().await, out, err)
    };
    let (status, out, err) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| Error::Timeout(timeout))?;
    for line in out.lines().chain(err.lines()) {
        tracing::info!(hook = %program, "{line}");
    }
    let status = status.map_err(Error::Wait)?;
    if status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(Error::Failed {
        status,
        stderr: lines[lines.len().saturating_sub(3)..].join(" / "),
    })
}
