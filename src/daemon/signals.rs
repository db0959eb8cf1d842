//! Turns Unix signals into daemon [`Event`]s; nothing else in renewd touches
//! signals, so tests can inject the same events directly.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::Event;

/// Listens for SIGUSR1 (renew all), SIGHUP (reload), SIGTERM/SIGINT (stop) and
/// forwards them until the receiver is gone.
///
/// # Errors
///
/// When a signal handler cannot be installed.
pub fn spawn(events: mpsc::Sender<Event>) -> std::io::Result<()> {
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = usr1.recv() => Event::RenewAll,
                _ = hup.recv() => Event::Reload(None),
                _ = term.recv() => Event::Shutdown,
                _ = int.recv() => Event::Shutdown,
            };
            if events.send(event).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}
