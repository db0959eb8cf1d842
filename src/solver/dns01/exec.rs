//! exec: an operator's hook publishes the record, called without a shell as
//! `COMMAND... set|unset RECORD VALUE` with RECORD = `_acme-challenge.<domain>.`
//! (trailing dot) and VALUE = the TXT value. Exit 0 means done; anything else,
//! or running past [`TIMEOUT`], is a failure that quotes the hook's stderr.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::Record;

/// How long one hook call may take before it is killed.
pub(super) const TIMEOUT: Duration = Duration::from_secs(120);

/// The exec provider of one solver.
#[derive(Debug)]
pub(super) struct Exec {
    command: Vec<String>,
    timeout: Duration,
}

impl Exec {
    pub(super) fn new(command: Vec<String>, timeout: Duration) -> Self {
        Self { command, timeout }
    }

    /// `COMMAND set RECORD VALUE`.
    pub(super) async fn set(&self, record: &Record) -> Result<(), String> {
        self.run("set", record).await
    }

    /// `COMMAND unset RECORD VALUE`.
    pub(super) async fn unset(&self, record: &Record) -> Result<(), String> {
        self.run("unset", record).await
    }

    async fn run(&self, action: &str, record: &Record) -> Result<(), String> {
        let shown = format!(
            "hook {} {action} {} {}",
            self.command.join(" "),
            record.fqdn,
            record.value
        );
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| "exec needs command = [\"/path/to/hook\"]".to_owned())?;
        let mut child = Command::new(program)
            .args(args)
            .args([action, &record.fqdn, &record.value])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{shown}: cannot start: {e}"))?;
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let run = async {
            let (mut out, mut err) = (String::new(), String::new());
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_string(&mut out).await;
            }
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_string(&mut err).await;
            }
            (child.wait().await, out, err)
        };
        let (status, out, err) = tokio::time::timeout(self.timeout, run).await.map_err(|_| {
            format!(
                "{shown}: still running after {}s, killed",
                self.timeout.as_secs()
            )
        })?;
        for line in out.lines().chain(err.lines()) {
            tracing::info!(hook = %program, "{line}");
        }
        let status = status.map_err(|e| format!("{shown}: {e}"))?;
        if status.success() {
            return Ok(());
        }
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
        Err(if tail.is_empty() {
            format!("{shown} failed ({status}, nothing on stderr)")
        } else {
            format!("{shown} failed ({status}): {tail}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record::new("www.example.com", "abc").unwrap()
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into(), "hook".into()]
    }

    #[tokio::test]
    async fn the_hook_gets_action_fqdn_and_value_as_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("args");
        let hook = Exec::new(
            sh(&format!("echo \"$@\" >> {}", out.display())),
            Duration::from_secs(10),
        );
        hook.set(&record()).await.unwrap();
        hook.unset(&record()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "set _acme-challenge.www.example.com. abc\n\
             unset _acme-challenge.www.example.com. abc\n"
        );
    }

    #[tokio::test]
    async fn a_failing_hook_is_named_with_its_stderr() {
        let hook = Exec::new(
            sh("echo stdout-$1; echo \"zone locked for $1\" >&2; exit 1"),
            Duration::from_secs(10),
        );
        let err = hook.set(&record()).await.unwrap_err();
        assert!(
            err.contains("hook sh -c")
                && err.contains("set _acme-challenge.www.example.com. abc")
                && err.contains("exit status: 1")
                && err.contains("zone locked for set")
                && !err.contains("stdout-set"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_hanging_hook_is_killed() {
        let hook = Exec::new(sh("exec sleep 30"), Duration::from_millis(200));
        let err = hook.set(&record()).await.unwrap_err();
        assert!(err.contains("killed"), "{err}");
    }
}
