//! Running an operator's command: no shell between it and its arguments, stdin
//! closed, a timeout after which it is killed, its output logged line by line,
//! and the end of its stderr kept for the error message. Used by exec reload
//! targets and the dns-01 exec hook.
//!
//! A hook ignores SIGUSR1 and SIGHUP, the daemon's control signals: operators
//! type `systemctl kill -s USR1 renewd`, which signals every process of the
//! unit, and a hook in flight must not die of it. A `sh` that sets the
//! signals to be ignored and then `exec`s the command does that (an ignored
//! signal stays ignored across exec; Rust's own spawn would reset a blocked
//! mask), without any unsafe code here.

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

/// `sh -c` script that runs its arguments with SIGUSR1 and SIGHUP ignored.
const IGNORE_CONTROL_SIGNALS: &str = "trap '' USR1 HUP; exec \"$@\"";

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
    let (program, _) = command.split_first().ok_or(Error::Empty)?;
    let mut child = Command::new("/bin/sh")
        .args(["-c", IGNORE_CONTROL_SIGNALS, "renewd-hook"])
        .args(command)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        ["sh", "-c", script].map(str::to_owned).to_vec()
    }

    #[tokio::test]
    async fn a_hook_survives_the_daemons_control_signals() {
        let script = "kill -USR1 $$; kill -HUP $$; echo still here";
        run(&sh(script), &[], &[], Duration::from_secs(10))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn arguments_reach_the_command_as_given_and_failures_keep_stderr() {
        let script = "[ \"$1\" = 'a b' ] && [ \"$2\" = '$x' ] || exit 3; echo fine >&2; echo last >&2; exit 5";
        let mut command = sh(script);
        command.push("renewd-test".to_owned());
        let err = run(&command, &["a b", "$x"], &[], Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "exit status: 5: fine / last");
    }

    #[tokio::test]
    async fn a_missing_command_is_named() {
        let err = run(
            &["/nonexistent/hook".to_owned()],
            &[],
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/hook"), "{err}");
    }
}
