//! systemd's `Manager.ReloadUnit(name, "replace")` over the system bus, waiting
//! for the job to finish (org.freedesktop.systemd1(5)).

use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::OwnedObjectPath;

use super::Error;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    /// Ask for job signals (systemd sends most signals only to subscribers).
    fn subscribe(&self) -> zbus::Result<()>;

    /// Queue a reload job.
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// A job finished; `result` is `done`, `failed`, `timeout`, `canceled`, ...
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// Reloads `unit` and waits (at most `timeout`) for the job's result.
pub(super) async fn reload_unit(unit: &str, timeout: Duration) -> Result<(), Error> {
    let fail = |message: String| Error::Unit {
        unit: unit.to_owned(),
        message,
    };
    let connection = zbus::Connection::system()
        .await
        .map_err(|e| fail(format!("no system bus: {e}")))?;
    let manager = ManagerProxy::new(&connection)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut removed = manager
        .receive_job_removed()
        .await
        .map_err(|e| fail(e.to_string()))?;
    manager.subscribe().await.map_err(|e| fail(describe(&e)))?;
    let job = manager
        .reload_unit(unit, "replace")
        .await
        .map_err(|e| fail(describe(&e)))?;
    let wait = async {
        while let Some(signal) = removed.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job == job {
                return Some(args.result);
            }
        }
        None
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Some(result)) if result == "done" => Ok(()),
        Ok(Some(result)) => Err(fail(format!("reload job {result}"))),
        Ok(None) => Err(fail(
            "lost the system bus while waiting for the job".to_owned(),
        )),
        Err(_) => Err(fail(format!(
            "reload job did not finish within {}s",
            timeout.as_secs()
        ))),
    }
}

/// Turns systemd's refusals into advice.
fn describe(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, message, _)
            if name.as_str().ends_with("AccessDenied")
                || name.as_str().ends_with("InteractiveAuthorizationRequired") =>
        {
            format!(
                "permission denied ({}): reloading units needs root or a polkit rule",
                message.as_deref().unwrap_or(name.as_str())
            )
        }
        zbus::Error::MethodError(name, Some(message), _) => format!("{message} ({name})"),
        other => other.to_string(),
    }
}
