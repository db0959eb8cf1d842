//! exec: an operator's hook publishes the record, called without a shell as
//! `COMMAND... set|unset RECORD VALUE` with RECORD = `_acme-challenge.<domain>.`
//! (trailing dot) and VALUE = the TXT value. Exit 0 means done; anything else,
//! or running past [`TIMEOUT`], is a failure that quotes the hook's stderr.

use std::time::Duration;

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
        crate::hook::run(
            &self.command,
            &[action, &record.fqdn, &record.value],
            &[],
            self.timeout,
        )
        .await
        .map_err(|e| {
            format!(
                "hook {} {action} {} {} failed: {e}",
                self.command.join(" "),
                record.fqdn,
                record.value
            )
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
