//! `renewd run`: the resident daemon (spec sections 1, 4, 6, 7).
//!
//! Wiring only: load the config, open the store, bind the control socket, install
//! signal handlers, tell systemd we are ready, then hand over to the
//! `scheduler`, which owns every per-certificate decision. All outside stimuli
//! — signals, control-socket commands — arrive as [`Event`]s on one channel.

mod scheduler;
mod signals;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::control::proto::RenewEvent;
use crate::control::server::{self, Server};
use crate::renew::Context;
use crate::store::{self, Store};

/// Something the daemon must react to.
#[derive(Debug)]
pub enum Event {
    /// SIGTERM / SIGINT: stop gracefully.
    Shutdown,
    /// SIGHUP or `reload-config`: re-read the config; the sender, if any, gets
    /// the outcome.
    Reload(Option<oneshot::Sender<Result<(), String>>>),
    /// SIGUSR1: force-renew every certificate.
    RenewAll,
    /// A control-socket `renew`: `names` empty means all. The reply lists each
    /// certificate with a channel that yields its outcome.
    Renew {
        /// Certificates to renew; empty for all.
        names: Vec<String>,
        /// Renew even if not due.
        force: bool,
        /// Where to send the per-certificate channels.
        reply: oneshot::Sender<Result<Vec<Pending>, String>>,
    },
}

/// A certificate a `renew` request covers, and where its outcome will arrive.
pub type Pending = (String, oneshot::Receiver<RenewEvent>);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is invalid (exit 2).
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// The state directory cannot be used.
    #[error("state directory: {0}")]
    Store(#[from] store::Error),
    /// The control socket cannot be bound.
    #[error("control socket: {0}")]
    Control(#[from] server::Error),
    /// The metrics listener cannot be bound.
    #[error("metrics_listen {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
    /// Signal handlers cannot be installed.
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// Runs the daemon until SIGTERM/SIGINT.
///
/// # Errors
///
/// [`Error`] when startup fails; after startup, failures are per certificate
/// and logged, never fatal.
pub async fn run(config_path: &Path) -> Result<(), Error> {
    let config = Arc::new(Config::load(config_path)?);
    let store = Store::open(&config.daemon.state_dir)?;
    // Held for the daemon's lifetime: no one-shot `renew` may write meanwhile.
    let _lock = store.lock()?;
    let server = Server::bind(
        &config.daemon.control_socket,
        config.daemon.control_group.as_deref(),
    )
    .await?;
    let (events_tx, events_rx) = mpsc::channel(64);
    signals::spawn(events_tx.clone()).map_err(Error::Signals)?;

    let ctx = Arc::new(Context::new(config, store));
    let (ctx_tx, ctx_rx) = watch::channel(Arc::clone(&ctx));
    let cancel = CancellationToken::new();
    if let Some(addr) = ctx.config.daemon.metrics_listen {
        crate::metrics::serve(addr, ctx_rx.clone(), cancel.clone())
            .await
            .map_err(|e| Error::Metrics(addr, e))?;
    }
    let control = tokio::spawn(server.serve(events_tx, ctx_rx, cancel.clone()));
    // A thread of its own that ends right away: a blocking-pool thread would
    // linger and wake up 10 s later just to exit.
    let _ = std::thread::Builder::new()
        .name("prime-rng".to_owned())
        .spawn(crate::acme::prime_key_generator);

    let scheduler = scheduler::Scheduler::new(config_path.to_owned(), ctx, ctx_tx);
    scheduler.run(events_rx).await;

    cancel.cancel();
    let _ = control.await;
    Ok(())
}
