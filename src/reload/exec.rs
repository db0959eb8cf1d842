//! Exec hooks: run without a shell, with certbot-compatible environment.

use std::time::Duration;

use super::{Error, Renewed};

/// Runs `command` with `RENEWED_LINEAGE`, `RENEWED_DOMAINS` and `RENEWD_NAME`
/// set; its output goes to the log.
pub(super) async fn run(
    command: &[String],
    renewed: &Renewed,
    timeout: Duration,
) -> Result<(), Error> {
    let env = [
        ("RENEWED_LINEAGE", renewed.lineage.display().to_string()),
        ("RENEWED_DOMAINS", renewed.domains.join(" ")),
        ("RENEWD_NAME", renewed.names.join(" ")),
    ];
    crate::hook::run(command, &[], &env, timeout)
        .await
        .map_err(|e| Error::Exec {
            command: command.join(" "),
            message: e.to_string(),
        })
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
        assert!(err.contains("killed"), "{err}");
    }
}
