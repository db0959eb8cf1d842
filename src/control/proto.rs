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
    /// Revoke the live certificate of `name` at the CA that issued it, then
    /// replace it at once (with a new key).
    Revoke {
        /// The certificate.
        name: String,
        /// Why (RFC 5280).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<RevokeReason>,
    },
}

/// RFC 5280 revocation reasons, spelled as ACME CAs document them (on the
/// command line and on the socket alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
#[value(rename_all = "camelCase")]
pub enum RevokeReason {
    /// No reason given.
    Unspecified,
    /// The private key is compromised: the next certificate gets a new key.
    KeyCompromise,
    /// The subscriber's affiliation changed.
    AffiliationChanged,
    /// The certificate was replaced.
    Superseded,
    /// The certificate is no longer needed.
    CessationOfOperation,
}

impl From<RevokeReason> for instant_acme::RevocationReason {
    fn from(r: RevokeReason) -> Self {
        match r {
            RevokeReason::Unspecified => Self::Unspecified,
            RevokeReason::KeyCompromise => Self::KeyCompromise,
            RevokeReason::AffiliationChanged => Self::AffiliationChanged,
            RevokeReason::Superseded => Self::Superseded,
            RevokeReason::CessationOfOperation => Self::CessationOfOperation,
        }
    }
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
