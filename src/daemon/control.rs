//! The daemon side of the control socket ([`crate::control`] has the protocol
//! and the client): binds it, checks each peer with `SO_PEERCRED`, and turns
//! requests into [`Event`]s or answers them from the [`View`].
//!
//! The peer check is the only gate: the socket is world-connectable (0666), so
//! that every refused user reaches the daemon and is logged, which a file mode
//! refusing at `connect(2)` would hide. A refused peer gets its answer before
//! the daemon reads a byte from it, and the log lines are rate-limited.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Group, Uid, User};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Event, View};
use crate::cluster::FleetStatus;
use crate::control::proto::{MAX_REQUEST, RenewEvent, Request, RevokeReason};
use crate::status::CertStatus;

/// The socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another daemon answers on the socket.
    #[error("{}: another renewd is already running", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Binding or setting permissions failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `control_group` does not exist.
    #[error("daemon.control_group: no group named {0:?}")]
    NoGroup(String),
}

/// Who may talk to the daemon besides root.
#[derive(Debug, Clone, Copy)]
struct Access {
    own_uid: Uid,
    group: Option<Gid>,
}

impl Access {
    fn allows(self, uid: u32, gid: u32) -> bool {
        let uid = Uid::from_raw(uid);
        if uid.is_root() || uid == self.own_uid {
            return true;
        }
        let Some(group) = self.group else {
            return false;
        };
        if Gid::from_raw(gid) == group {
            return true;
        }
        // Supplementary groups of the peer's user.
        User::from_uid(uid).ok().flatten().is_some_and(|user| {
            std::ffi::CString::new(user.name)
                .ok()
                .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
                .is_some_and(|groups| groups.contains(&group))
        })
    }
}

/// A bound control socket.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    access: Access,
}

impl Server {
    /// Binds `path` (mode 0666: anyone may connect, the peer check decides;
    /// group `control_group`), replacing a stale socket left by a crash but
    /// refusing to steal one a live daemon answers on.
    ///
    /// # Errors
    ///
    /// [`Error`] naming the path or group.
    pub async fn bind(path: &Path, control_group: Option<&str>) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let group = control_group
            .map(|name| match Group::from_name(name) {
                Ok(Some(g)) => Ok(g.gid),
                _ => Err(Error::NoGroup(name.to_owned())),
            })
            .transpose()?;
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(Error::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(io)?;
        if let Some(gid) = group {
            nix::unistd::chown(path, None, Some(gid)).map_err(|e| io(e.into()))?;
        }
        Ok(Self {
            listener,
            path: path.to_owned(),
            access: Access {
                own_uid: Uid::effective(),
                group,
            },
        })
    }

    /// Serves clients until `cancel`, then removes the socket file.
    ///
    /// A local peer cannot exhaust the daemon: at most [`MAX_WAITING`] clients
    /// may be connected without having sent their request (more are told so and
    /// dropped), each has [`REQUEST_TIMEOUT`] to send it, and a failing accept
    /// (out of file descriptors) pauses instead of spinning.
    pub async fn serve(
        self,
        events: mpsc::Sender<Event>,
        view: watch::Receiver<View>,
        cancel: CancellationToken,
    ) {
        let waiting = Arc::new(Semaphore::new(MAX_WAITING));
        let refusals = Arc::new(Mutex::new(RefusalLog::default()));
        loop {
            let stream = tokio::select! {
                () = cancel.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        warn!("control socket: accept failed: {e}");
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                        continue;
                    }
                },
            };
            let (events, view) = (events.clone(), view.clone());
            let peer = Peer {
                access: self.access,
                refusals: Arc::clone(&refusals),
            };
            let slot = Arc::clone(&waiting).try_acquire_owned();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, slot.ok(), peer, events, view).await {
                    debug!("control client: {e}");
                }
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How each connection's peer is checked, and where refusals are counted.
struct Peer {
    access: Access,
    refusals: Arc<Mutex<RefusalLog>>,
}

impl Peer {
    /// Whether the peer `uid`/`gid` may use the socket; a refusal is logged
    /// (rate-limited) with its uid, user name and `pid`. The check may ask NSS
    /// (supplementary groups, the name to log), which can block: it runs off
    /// the runtime, at most `MAX_WAITING` at once.
    async fn admits(&self, uid: u32, gid: u32, pid: Option<i32>) -> bool {
        let access = self.access;
        let refused = tokio::task::spawn_blocking(move || {
            (!access.allows(uid, gid)).then(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map_or_else(|| "?".to_owned(), |u| u.name)
            })
        })
        .await
        .unwrap_or_else(|_| Some("?".to_owned()));
        let Some(user) = refused else {
            return true;
        };
        let logged = self
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .should_log(Instant::now());
        if let Some(left_out) = logged {
            warn!(
                uid,
                user,
                pid,
                left_out,
                "control socket: permission denied (not root, the daemon's user or in \
                 control_group)"
            );
        }
        false
    }
}

/// Refused peers are logged, at most [`RefusalLog::LINES`] per
/// [`RefusalLog::PERIOD`]: a local user looping on `connect(2)` must not fill
/// the journal. The next line logged says how many were left out.
#[derive(Debug, Default)]
struct RefusalLog {
    period_start: Option<Instant>,
    logged: u32,
    left_out: u64,
}

impl RefusalLog {
    const LINES: u32 = 10;
    const PERIOD: Duration = Duration::from_secs(60);

    /// Whether the refusal at `now` is logged; if so, how many before it were
    /// not.
    fn should_log(&mut self, now: Instant) -> Option<u64> {
        if self
            .period_start
            .is_none_or(|start| now.duration_since(start) >= Self::PERIOD)
        {
            self.period_start = Some(now);
            self.logged = 0;
        }
        if self.logged < Self::LINES {
            self.logged += 1;
            Some(std::mem::take(&mut self.left_out))
        } else {
            self.left_out += 1;
            None
        }
    }
}

/// Clients connected at once that have not sent their request yet.
const MAX_WAITING: usize = 512;
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (EMFILE and the like).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

async fn handle(
    stream: UnixStream,
    slot: Option<OwnedSemaphorePermit>,
    peer: Peer,
    events: mpsc::Sender<Event>,
    view: watch::Receiver<View>,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    let (uid, gid) = (cred.uid(), cred.gid());
    if slot.is_none() {
        warn!(
            uid,
            pid = cred.pid(),
            "control socket: too many clients waiting"
        );
        return send(
            &mut write,
            &json!({"ok": false, "error": "too many clients, try again"}),
        )
        .await;
    }
    if !peer.admits(uid, gid, cred.pid()).await {
        return send(
            &mut write,
            &json!({"ok": false, "error": "permission denied"}),
        )
        .await;
    }
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64 + 1);
    let mut line = String::new();
    if tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .is_err()
    {
        return send(
            &mut write,
            &json!({"ok": false, "error": format!("no request within {} s", REQUEST_TIMEOUT.as_secs())}),
        )
        .await;
    }
    drop(slot);
    if line.len() > MAX_REQUEST {
        return send(
            &mut write,
            &json!({"ok": false, "error": "request larger than 64 KiB"}),
        )
        .await;
    }
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(r) => r,
        Err(e) => {
            return send(
                &mut write,
                &json!({"ok": false, "error": format!("malformed request: {e}")}),
            )
            .await;
        }
    };
    match request {
        Request::Status { names } => {
            let view = view.borrow().clone();
            let Some(cluster) = &view.cluster else {
                return stream_status(&mut write, &view, &names).await;
            };
            let mut statuses = view.statuses(&names).await;
            let fleet = cluster.fill_status(&mut statuses).await;
            send_status(&mut write, &statuses, Some(&fleet)).await
        }
        Request::ReloadConfig => {
            let (tx, rx) = oneshot::channel();
            let _ = events.send(Event::Reload(Some(tx))).await;
            let reply = match rx.await {
                Ok(Ok(())) => json!({"ok": true}),
                Ok(Err(e)) => json!({"ok": false, "error": e}),
                Err(_) => json!({"ok": false, "error": "daemon is shutting down"}),
            };
            send(&mut write, &reply).await
        }
        Request::Renew {
            names,
            all,
            force,
            wait,
        } => renew(&mut write, &events, names, all, force, wait).await,
        Request::Revoke { name, reason } => {
            let view = view.borrow().clone();
            let reply = revoke(&view, &events, name, reason).await;
            send(&mut write, &reply).await
        }
    }
}

/// Revokes at the CA here, in the connection's task, so the scheduler never
/// waits for the CA; it is told afterwards and replaces the certificate.
async fn revoke(
    view: &View,
    events: &mpsc::Sender<Event>,
    name: String,
    reason: Option<RevokeReason>,
) -> serde_json::Value {
    let renewer = &view.renewer;
    let Some(cert) = renewer.config.certificate(&name) else {
        return json!({"ok": false, "error": format!("no certificate named {name}")});
    };
    let issued_by = view.state.lock().await.issued_by(&name);
    let ca = renewer.issuer(cert, issued_by.as_deref());
    match renewer.revoke(cert, &ca, reason.map(Into::into)).await {
        Ok(serial) => {
            if let Some(cluster) = &view.cluster
                && let Err(e) = cluster.announce_revoked(&name, &serial).await
            {
                warn!(cert_name = %name, "cannot tell the fleet about the revocation: {e}");
            }
            let _ = events
                .send(Event::Revoked {
                    name,
                    serial: serial.clone(),
                })
                .await;
            json!({"ok": true, "serial": serial})
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// `{"ok":true,"certificates":[...]}` (and `"cluster"` in fleet mode),
/// serialized straight from the statuses:
/// going through a `serde_json::Value` first cost as much as collecting them
/// (a tree of small allocations per certificate).
async fn send_status(
    write: &mut (impl AsyncWriteExt + Unpin),
    statuses: &[CertStatus],
    fleet: Option<&FleetStatus>,
) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    struct Reply<'a> {
        ok: bool,
        certificates: &'a [CertStatus],
        #[serde(skip_serializing_if = "Option::is_none")]
        cluster: Option<&'a FleetStatus>,
    }
    let reply = Reply {
        ok: true,
        certificates: statuses,
        cluster: fleet,
    };
    let mut line = serde_json::to_vec(&reply).unwrap_or_default();
    line.push(b'\n');
    write.write_all(&line).await
}

/// [`send_status`] without a fleet, the same bytes written as the statuses
/// are collected, a chunk at a time: with 100,000 certificates the whole
/// reply is 40 MB, and building it first cost time and memory.
async fn stream_status(
    write: &mut (impl AsyncWriteExt + Unpin),
    view: &View,
    names: &[String],
) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(2);
    let mut first = true;
    let collect = view.each_status_chunk(names, move |chunk| {
        let mut bytes = Vec::with_capacity(chunk.len() * 512);
        for status in &chunk {
            if !std::mem::take(&mut first) {
                bytes.push(b',');
            }
            serde_json::to_writer(&mut bytes, status).unwrap_or_default();
        }
        tx.blocking_send(bytes).is_ok()
    });
    let send = async {
        // Owned here: a client gone drops it, which stops the collecting.
        let mut rx = rx;
        write.write_all(br#"{"ok":true,"certificates":["#).await?;
        while let Some(bytes) = rx.recv().await {
            write.write_all(&bytes).await?;
        }
        write.write_all(b"]}\n").await
    };
    let ((), sent) = tokio::join!(collect, send);
    sent
}

async fn renew(
    write: &mut (impl AsyncWriteExt + Unpin),
    events: &mpsc::Sender<Event>,
    names: Vec<String>,
    all: bool,
    force: bool,
    wait: bool,
) -> std::io::Result<()> {
    let (tx, rx) = oneshot::channel();
    let _ = events
        .send(Event::Renew {
            names: if all { Vec::new() } else { names },
            force,
            reply: tx,
        })
        .await;
    let pending = match rx.await {
        Ok(Ok(pending)) => pending,
        Ok(Err(e)) => return send(write, &json!({"ok": false, "error": e})).await,
        Err(_) => {
            return send(
                write,
                &json!({"ok": false, "error": "daemon is shutting down"}),
            )
            .await;
        }
    };
    if !wait {
        let queued: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
        return send(write, &json!({"ok": true, "queued": queued})).await;
    }
    let mut ok = true;
    for (name, done) in pending {
        let event = done.await.unwrap_or_else(|_| RenewEvent {
            event: "failed".to_owned(),
            name,
            detail: "failed: daemon stopped before the renewal finished".to_owned(),
        });
        ok &= event.event != "failed";
        send(write, &serde_json::to_value(&event).unwrap_or_default()).await?;
    }
    send(write, &json!({"ok": ok})).await
}

async fn send(
    write: &mut (impl AsyncWriteExt + Unpin),
    value: &serde_json::Value,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    write.write_all(&line).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_ten_a_minute_then_counted() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        for _ in 0..RefusalLog::LINES {
            assert_eq!(log.should_log(start), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(log.should_log(start + Duration::from_secs(30)), None);
        }
        // A new minute: the first line says how many were left out.
        let later = start + RefusalLog::PERIOD;
        assert_eq!(log.should_log(later), Some(5));
        assert_eq!(log.should_log(later), Some(0));
    }

    #[test]
    fn only_root_the_daemon_user_and_the_group_are_allowed() {
        let own = Uid::from_raw(4242);
        let alone = Access {
            own_uid: own,
            group: None,
        };
        assert!(alone.allows(0, 0));
        assert!(alone.allows(4242, 9999));
        assert!(!alone.allows(65534, 65534));
        let grouped = Access {
            own_uid: own,
            group: Some(Gid::from_raw(777)),
        };
        assert!(grouped.allows(65534, 777));
        assert!(!grouped.allows(65534, 65534));
    }
}
