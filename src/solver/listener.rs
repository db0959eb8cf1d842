//! A listener bound only while something is presented on it, so the port (80 or
//! 443, usually a web server's too) is free the rest of the time, as with
//! certbot's standalone mode. Shared by the http-01 and tls-alpn-01 solvers.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::Error;

/// What the listener serves, by key (token or domain).
pub(super) type Entries<T> = Arc<RwLock<HashMap<String, T>>>;

/// Accept loop run while the listener is bound.
pub(super) type Serve<T> = fn(TcpListener, Entries<T>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// See the module docs.
#[derive(Debug)]
pub(super) struct OnDemand<T> {
    addr: SocketAddr,
    entries: Entries<T>,
    server: Mutex<Option<JoinHandle<()>>>,
    serve: Serve<T>,
}

impl<T: Send + Sync + 'static> OnDemand<T> {
    pub(super) fn new(addr: SocketAddr, serve: Serve<T>) -> Self {
        Self {
            addr,
            entries: Entries::default(),
            server: Mutex::new(None),
            serve,
        }
    }

    /// Serves `value` under `key`, binding the listener if it is not yet.
    pub(super) async fn add(&self, solver: &str, key: &str, value: T) -> Result<(), Error> {
        self.entries_mut().insert(key.to_owned(), value);
        let mut server = self.server.lock().await;
        if server.is_none() {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    *server = Some(tokio::spawn((self.serve)(
                        listener,
                        Arc::clone(&self.entries),
                    )));
                }
                Err(source) => {
                    self.entries_mut().remove(key);
                    return Err(Error::Bind {
                        solver: solver.to_owned(),
                        addr: self.addr,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Stops serving `key`; unbinds when nothing is left.
    pub(super) async fn remove(&self, key: &str) {
        self.entries_mut().remove(key);
        // Checked under the server lock, so a concurrent `add` either sees the
        // listener still running or starts a new one.
        let mut server = self.server.lock().await;
        if self.entries.read().is_ok_and(|e| e.is_empty()) {
            if let Some(handle) = server.take() {
                handle.abort();
                // Wait until the listener is dropped so the port is free on return.
                let _ = handle.await;
            }
        }
    }

    fn entries_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, T>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}
