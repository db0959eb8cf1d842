//! Messages on the control socket.

use serde::{Deserialize, Serialize};

/// Largest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request from a client (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Report every certificate (or those in `names`).
    Status {
        /// Only these certificates.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    /// Renew certificates.
    Renew {
        /// Certificates to renew (ignored with `all`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        /// Every configured certificate.
        #[serde(default)]
        all: bool,
        /// Renew even if not due.
        #[serde(default)]
        force: bool,
        /// Stream one event per certificate, then the final reply.
        #[serde(default)]
        wait: bool,
    },
    /// Re-read the config file (as SIGHUP).
    ReloadConfig,
}

/// One line of a `renew` reply stream, before the final `{"ok":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewEvent {
    /// `renewed`, `failed` or `not-due`.
    pub event: String,
    /// Certificate name.
    pub name: String,
    /// The outcome as one-shot mode prints it (`renewed: version 2, ...`).
    pub detail: String,
}
