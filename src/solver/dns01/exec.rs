//! exec: an operator's hook publishes the record, called without a shell as
//! `COMMAND... set|unset RECORD VALUE` with RECORD = `_acme-challenge.<domain>.`
//! (trailing dot) and VALUE = the TXT value. Exit 0 means done; anything else,
//! or running past [`TIMEOUT`], is a failure that quotes the hook's stderr.

use std::time::Duration;

use super::Record;

/// How long one hook call may take before it is killed.
pub(super) const TIMEOUT: Duration = Duration::from_secs(120);

/// A hook call that did not succeed: the command line it ran and why it failed
/// (could not start, killed after the timeout, or its exit status and the end
/// of its stderr).
#[derive(Debug, thiserror::Error)]
#[error(
    "hook {} {action} {} {} failed: {source}",
    command.join(" "),
    record.fqdn,
    record.value
)]
pub struct Error {
    /// The configured command.
    command: Vec<String>,
    /// `set` or `unset`.
    action: &'static str,
    /// The record it was called for.
    record: Record,
    /// What went wrong.
    #[source]
    source: crate::hook::Error,
}

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
    pub(super) async fn set(&self, record: &Record) -> Result<(), Error> {
        self.run("set", record).await
    }

    /// `COMMAND unset RECORD VALUE`.
    pub(super) async fn unset(&self, record: &Record) -> Result<(), Error> {
        self.run("unset", record).await
    }

    async fn run(&self, action: &'static str, record: &Record) -> Result<(), Error> {
        crate::hook::run(
            &self.command,
            &[action, &record.fqdn, &record.value],
            &[],
            self.timeout,
        )
        .await
        .map_err(|source| Error {
            command: self.command.clone(),
            action,
            record: record.clone(),
            source,
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
        let err = hook.set(&record()).await.unwrap_err().to_string();
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
    async fn a_failure_reads_as_the_command_line_then_why_and_keeps_the_cause() {
        let hook = Exec::new(vec!["false".into()], Duration::from_secs(10));
        let err = hook.unset(&record()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "hook false unset _acme-challenge.www.example.com. abc failed: exit status: 1"
        );
        let cause = std::error::Error::source(&err).and_then(|s| s.downcast_ref());
        assert!(
            matches!(cause, Some(crate::hook::Error::Failed { status, .. }) if status.code() == Some(1)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_hanging_hook_is_killed() {
        let hook = Exec::new(sh("exec sleep 30"), Duration::from_millis(200));
        let err = hook.set(&record()).await.unwrap_err().to_string();
        assert!(err.contains("killed"), "{err}");
    }
}
