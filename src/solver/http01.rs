//! http-01: answer `GET /.well-known/acme-challenge/<token>` with the key authorization.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::Error;
use super::listener::{Entries, OnDemand};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const PREFIX: &str = "/.well-known/acme-challenge/";

type Tokens = Entries<String>;

/// http-01 on a listener of our own, bound only while tokens are presented.
#[derive(Debug)]
pub(super) struct Standalone(OnDemand<String>);

impl Standalone {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self(OnDemand::new(addr, |listener, tokens| {
            Box::pin(serve(listener, tokens))
        }))
    }

    pub(super) async fn present(
        &self,
        solver: &str,
        token: &str,
        key_auth: &str,
    ) -> Result<(), Error> {
        self.0.add(solver, token, key_auth.to_owned()).await
    }

    pub(super) async fn cleanup(&self, token: &str) {
        self.0.remove(token).await;
    }

    pub(super) fn listener(&self) -> &OnDemand<String> {
        &self.0
    }
}

async fn serve(listener: TcpListener, tokens: Tokens) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: pause instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let tokens = tokens.clone();
                async move { Ok::<_, Infallible>(respond(&req, &tokens).await) }
            });
            // A client that misbehaves only loses its own connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(req: &Request<Incoming>, tokens: &Tokens) -> Response<Full<Bytes>> {
    let key_auth = match req.uri().path().strip_prefix(PREFIX) {
        Some(token) => tokens.get_or_wait(token).await,
        None => None,
    };
    let (status, body) = match key_auth {
        Some(key_auth) => (StatusCode::OK, key_auth),
        None => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// The error for a symbolic link (or other non-directory) where renewd writes.
fn not_followed(path: &std::path::Path) -> std::io::Error {
    std::io::Error::other(format!(
        "{} is a symbolic link or not a directory; refusing to follow it (whoever can \
         write the webroot could point it anywhere): remove it",
        path.display()
    ))
}

/// Writes challenge files under `<webroot>/.well-known/acme-challenge/` for an
/// existing web server to serve.
#[derive(Debug)]
pub(super) struct Webroot {
    root: PathBuf,
    /// Tokens whose files are in place.
    presented: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Webroot {
    pub(super) fn new(root: PathBuf) -> Self {
        Self {
            root,
            presented: std::sync::Mutex::default(),
        }
    }

    fn presented(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes every file still in place: those of orders abandoned when the
    /// daemon stopped.
    pub(super) async fn cleanup_all(&self, solver: &str) {
        let tokens: Vec<String> = self.presented().drain().collect();
        for token in tokens {
            self.cleanup(solver, &token).await;
        }
    }

    fn path(&self, token: &str) -> PathBuf {
        self.root.join(PREFIX.trim_start_matches('/')).join(token)
    }

    pub(super) async fn present(
        &self,
        solver: &str,
        token: &str,
        key_auth: &str,
    ) -> Result<(), Error> {
        let path = self.path(token);
        let write = async {
            // The web server (another user) must be able to traverse and read,
            // whatever our umask (the packaged unit runs with UMask=0077).
            let mut dir = self.root.clone();
            for part in [".well-known", "acme-challenge"] {
                dir.push(part);
                match tokio::fs::create_dir(&dir).await {
                    Ok(()) => {
                        tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                            .await?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // Whoever may write the webroot could have planted a
                        // link to anywhere root can write: never follow one.
                        if !tokio::fs::symlink_metadata(&dir).await?.is_dir() {
                            return Err(not_followed(&dir));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            self.presented().insert(token.to_owned());
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&path)
                .await
                .map_err(|e| {
                    if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                        not_followed(&path)
                    } else {
                        e
                    }
                })?;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, key_auth.as_bytes()).await?;
            // tokio's File writes in the background: done only once flushed.
            tokio::io::AsyncWriteExt::flush(&mut file).await
        };
        write.await.map_err(|source| Error::Write {
            solver: solver.to_owned(),
            path,
            source,
        })
    }

    pub(super) async fn cleanup(&self, solver: &str, token: &str) {
        self.presented().remove(token);
        let path = self.path(token);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::warn!(solver, path = %path.display(), "cannot remove challenge file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn standalone_serves_only_presented_tokens_and_frees_the_port() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let s = Standalone::new(addr);
        s.present("web", "tok1", "tok1.thumb").await.unwrap();
        let ok = get(addr, "/.well-known/acme-challenge/tok1").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("tok1.thumb"),
            "{ok}"
        );
        let missing = get(addr, "/.well-known/acme-challenge/other").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        s.cleanup("tok1").await;
        // The port is free again for someone else.
        std::net::TcpListener::bind(addr).unwrap();
    }

    #[tokio::test]
    async fn webroot_writes_readable_files_and_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        // Directories we create are readable by the web server even under a strict umask.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let w = Webroot::new(dir.path().to_owned());
        w.present("web", "tok", "tok.thumb").await.unwrap();
        let path = dir.path().join(".well-known/acme-challenge/tok");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "tok.thumb");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        w.cleanup("web", "tok").await;
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn links_planted_in_the_webroot_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let www = dir.path().join("www");
        let webroot = Webroot::new(www.clone());

        // .well-known as a link to another directory.
        std::fs::create_dir(&www).unwrap();
        std::os::unix::fs::symlink(&elsewhere, www.join(".well-known")).unwrap();
        let err = webroot
            .present("files", "tok1", "tok1.t")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refusing to follow it"), "{err}");
        std::fs::remove_file(www.join(".well-known")).unwrap();

        // acme-challenge as a link.
        std::fs::create_dir(www.join(".well-known")).unwrap();
        let challenges = www.join(".well-known/acme-challenge");
        std::os::unix::fs::symlink(&elsewhere, &challenges).unwrap();
        let err = webroot
            .present("files", "tok2", "tok2.t")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refusing to follow it"), "{err}");
        std::fs::remove_file(&challenges).unwrap();

        // The token's file as a link to a file root could write.
        std::fs::create_dir(&challenges).unwrap();
        let target = elsewhere.join("passwd");
        std::fs::write(&target, "root:x:0:0").unwrap();
        std::os::unix::fs::symlink(&target, challenges.join("tok3")).unwrap();
        let err = webroot
            .present("files", "tok3", "tok3.t")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refusing to follow it"), "{err}");

        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root:x:0:0");
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            1,
            "nothing written there"
        );
        // A plain token still works, readable by the web server.
        webroot.present("files", "tok4", "tok4.t").await.unwrap();
        let written = challenges.join("tok4");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "tok4.t");
        let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}
