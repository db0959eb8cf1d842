//! The CLI side of the control socket.

use std::io;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::proto::Request;

/// Why the daemon could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No daemon listens on the socket.
    #[error("{0}: no renewd daemon is running")]
    NotRunning(String),
    /// The socket exists but we may not use it.
    #[error("{0}: permission denied (run as root or as a member of daemon.control_group)")]
    Denied(String),
    /// Anything else.
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    ///
    /// [`ConnectError::NotRunning`] when nothing listens there,
    /// [`ConnectError::Denied`] when the socket's mode keeps us out.
    pub async fn connect(path: &Path) -> Result<Self, ConnectError> {
        let shown = path.display().to_string();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ConnectError::NotRunning(shown)
                }
                io::ErrorKind::PermissionDenied => ConnectError::Denied(shown),
                _ => ConnectError::Io(shown, e),
            })?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::new(read),
            writer,
        })
    }

    /// Sends one request.
    ///
    /// # Errors
    ///
    /// The I/O error if the daemon went away.
    pub async fn send(&mut self, request: &Request) -> io::Result<()> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        match self.writer.write_all(&line).await {
            // The daemon answers a refused peer at once and closes: its answer
            // is waiting to be read, and says more than the broken pipe.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Reads the next reply line; `None` when the daemon closed the connection.
    ///
    /// # Errors
    ///
    /// I/O errors, or invalid JSON from the daemon.
    pub async fn next(&mut self) -> io::Result<Option<serde_json::Value>> {
        self.next_as().await
    }

    /// As [`Client::next`], read straight into `T`: a status reply about
    /// 100,000 certificates is tens of MB, too much to go through a
    /// [`serde_json::Value`] first.
    ///
    /// # Errors
    ///
    /// I/O errors, or JSON from the daemon that is not a `T`.
    pub async fn next_as<T: serde::de::DeserializeOwned>(&mut self) -> io::Result<Option<T>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(io::Error::other)
    }
}
