//! A listener bound only while something is presented on it, so the port (80 or
//! 443, usually a web server's too) is free the rest of the time, as with
//! certbot's standalone mode. Shared by the http-01 and tls-alpn-01 solvers.
//!
//! In a fleet the listener stays bound once bound ([`OnDemand::stay_bound`]):
//! the CA may reach this node before it has seen what another node shares,
//! so a request for something unknown waits a little for it instead of
//! failing ([`Table::get_or_wait`]), and a port bound only on notice would
//! refuse the connection outright.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use super::Error;

/// How long a fleet's listener waits for a key it does not know yet: what
/// another node shared reaches every node through an etcd watch, which is
/// about as fast as the CA's request, but may lose the race.
const FLEET_WAIT: Duration = Duration::from_secs(5);

/// What the listener serves, by key (token or domain).
#[derive(Debug)]
pub(super) struct Table<T> {
    entries: RwLock<HashMap<String, T>>,
    /// Woken whenever an entry is added.
    added: Notify,
    /// Whether a key not there yet may still come (a fleet's listener).
    wait: AtomicBool,
}

/// Shared between a solver and its listener's connections.
pub(super) type Entries<T> = Arc<Table<T>>;

impl<T: Clone> Table<T> {
    /// What is served under `key`, if anything.
    pub(super) fn get(&self, key: &str) -> Option<T> {
        self.entries.read().ok()?.get(key).cloned()
    }

    /// What is served under `key`; in a fleet, waits up to [`FLEET_WAIT`]
    /// for it to be added.
    pub(super) async fn get_or_wait(&self, key: &str) -> Option<T> {
        if !self.wait.load(Ordering::Relaxed) {
            return self.get(key);
        }
        let wait = async {
            loop {
                // Registered before looking, so an add in between wakes it.
                let added = self.added.notified();
                if let Some(value) = self.get(key) {
                    return value;
                }
                added.await;
            }
        };
        tokio::time::timeout(FLEET_WAIT, wait).await.ok()
    }

    fn insert(&self, key: &str, value: T) {
        self.write().insert(key.to_owned(), value);
        self.added.notify_waiters();
    }

    fn remove(&self, key: &str) {
        self.write().remove(key);
    }

    fn is_empty(&self) -> bool {
        self.entries.read().is_ok_and(|e| e.is_empty())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, T>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

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

impl<T: Clone + Send + Sync + 'static> OnDemand<T> {
    pub(super) fn new(addr: SocketAddr, serve: Serve<T>) -> Self {
        Self {
            addr,
            entries: Arc::new(Table {
                entries: RwLock::default(),
                added: Notify::new(),
                wait: AtomicBool::new(false),
            }),
            server: Mutex::new(None),
            serve,
        }
    }

    /// Keeps the listener bound once bound, and lets requests wait for keys
    /// not there yet (a fleet's listener: see the module docs).
    pub(super) fn stay_bound(&self) {
        self.entries.wait.store(true, Ordering::Relaxed);
    }

    /// Serves `value` under `key`, binding the listener if it is not yet.
    pub(super) async fn add(&self, solver: &str, key: &str, value: T) -> Result<(), Error> {
        self.entries.insert(key, value);
        let bound = self.listen(solver).await;
        if bound.is_err() {
            self.entries.remove(key);
        }
        bound
    }

    /// Binds the listener if it is not yet.
    pub(super) async fn listen(&self, solver: &str) -> Result<(), Error> {
        let mut server = self.server.lock().await;
        if server.is_none() {
            let listener = TcpListener::bind(self.addr)
                .await
                .map_err(|source| Error::Bind {
                    solver: solver.to_owned(),
                    addr: self.addr,
                    source,
                })?;
            *server = Some(tokio::spawn((self.serve)(
                listener,
                Arc::clone(&self.entries),
            )));
        }
        Ok(())
    }

    /// Stops serving `key`; unbinds when nothing is left, unless it stays
    /// bound.
    pub(super) async fn remove(&self, key: &str) {
        self.entries.remove(key);
        // Checked under the server lock, so a concurrent `add` either sees the
        // listener still running or starts a new one.
        let mut server = self.server.lock().await;
        if self.entries.is_empty() && !self.entries.wait.load(Ordering::Relaxed) {
            if let Some(handle) = server.take() {
                handle.abort();
                // Wait until the listener is dropped so the port is free on return.
                let _ = handle.await;
            }
        }
    }
}

impl<T> Drop for OnDemand<T> {
    /// A solver replaced on reload takes its listener with it.
    fn drop(&mut self) {
        if let Some(handle) = self.server.get_mut().take() {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the listener open and accepts nothing.
    fn idle(listener: TcpListener, _: Entries<String>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            std::future::pending::<()>().await;
            drop(listener);
        })
    }

    /// A loopback address nothing listens on.
    fn free_addr() -> SocketAddr {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleets_listener_waits_for_a_key_added_after_the_request() {
        let on = OnDemand::new(free_addr(), idle);
        assert_eq!(
            on.entries.get_or_wait("token").await,
            None,
            "alone: no wait"
        );
        on.stay_bound();
        let table = Arc::clone(&on.entries);
        let asked = tokio::spawn(async move { table.get_or_wait("token").await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        on.add("web", "token", "key authorization".to_owned())
            .await
            .unwrap();
        assert_eq!(asked.await.unwrap().as_deref(), Some("key authorization"));

        let started = tokio::time::Instant::now();
        assert_eq!(on.entries.get_or_wait("never").await, None);
        assert_eq!(started.elapsed(), FLEET_WAIT);
    }

    #[tokio::test]
    async fn a_fleets_listener_stays_bound_when_nothing_is_left() {
        let addr = free_addr();
        let alone = OnDemand::new(addr, idle);
        alone.add("web", "token", String::new()).await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok(), "bound");
        alone.remove("token").await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "unbound"
        );

        let fleet = OnDemand::new(addr, idle);
        fleet.stay_bound();
        fleet.listen("web").await.unwrap();
        fleet.add("web", "token", String::new()).await.unwrap();
        fleet.remove("token").await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok(), "bound");
        drop(fleet);
        let mut freed = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            freed = std::net::TcpListener::bind(addr).is_ok();
            if freed {
                break;
            }
        }
        assert!(freed, "unbound with the solver");
    }
}
