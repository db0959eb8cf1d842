//! Exec hooks: run without a shell, with certbot-compatible environment.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{Error, Renewed};

/// Runs `command` with `RENEWED_LINEAGE`, `RENEWED_DOMAINS` and `RENEWD_NAME`
/// set; its output goes to the log.
pub(super) async fn run(
    command: &[String],
    renewed: &Renewed,
    timeout: Duration,
) -> Result<(), Error> {
    let shown = command.join(" ");
    let fail = |message: String| Error::Exec {
        command: shown.clone(),
        message,
    };
    let (program, args) = command
        .split_first()
        .ok_or_else(|| fail("empty command".to_owned()))?;
    let mut child = Command::new(program)
        .args(args)
        .env("RENEWED_LINEAGE", &renewed.lineage)
        .env("RENEWED_DOMAINS", renewed.domains.join(" "))
        .env("RENEWD_NAME", renewed.names.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
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
    let (status, out, err) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| fail(format!("timed out after {}s (killed)", timeout.as_secs())))?;
    for line in out.lines().chain(err.lines()) {
        tracing::info!(hook = %shown, "{line}");
    }
    let status = status.map_err(|e| fail(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        let tail: Vec<&str> = err
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(fail(format!(
            "{status}{}",
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.join(" / "))
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renewed() -> Renewed {
        Renewed {
            names: vec!["a".into(), "b".into()],
            lineage: "/var/lib/renewd/live/a".into(),
            domains: vec!["a.example".into(), "www.a.example".into()],
        }
    }

    #[tokio::test]
    async fn hooks_get_certbot_compatible_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let script = format!(
            "echo \"$RENEWED_LINEAGE|$RENEWED_DOMAINS|$RENEWD_NAME\" > {}",
            out.display()
        );
        let command = vec!["sh".to_owned(), "-c".to_owned(), script];
        run(&command, &renewed(), Duration::from_secs(10))
            .await
            .unwrap();
        let env = std::fs::read_to_string(out).unwrap();
        assert_eq!(
            env.trim(),
            "/var/lib/renewd/live/a|a.example www.a.example|a b"
        );
    }

    #[tokio::test]
    async fn a_failing_hook_reports_status_and_stderr() {
        let command = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "echo broken >&2; exit 3".to_owned(),
        ];
        let err = run(&command, &renewed(), Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("broken"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_hanging_hook_is_killed() {
        let command = vec!["sleep".to_owned(), "30".to_owned()];
        let err = run(&command, &renewed(), Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out"), "{err}");
    }
}
