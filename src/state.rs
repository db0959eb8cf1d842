//! `state.json`: what renewd remembers between runs about each certificate —
//! last attempt and its result, which CA and solver issued it. Losing the file is
//! harmless; it only makes `status` less informative until the next renewal.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::schedule::Window;
use crate::store::{self, Store};

const FILE: &str = "state.json";

/// Memory about one certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CertState {
    /// When renewal was last attempted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt: Option<OffsetDateTime>,
    /// `"ok"` or `"error: ..."`.
    pub last_result: Option<String>,
    /// CA that issued the live certificate.
    pub ca: Option<String>,
    /// Solver that validated the live certificate.
    pub solver: Option<String>,
    /// Last known ARI window.
    pub ari_window: Option<Window>,
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Per certificate name.
    pub certificates: BTreeMap<String, CertState>,
}

impl State {
    /// Reads `state.json`; a missing or unreadable file gives an empty state (and a
    /// warning for the latter), because the daemon must be correct without it.
    #[must_use]
    pub fn load(store: &Store) -> Self {
        match store.read_file(Path::new(FILE)) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: ignoring unreadable state: {e}",
                    store.root().join(FILE).display()
                );
                Self::default()
            }),
            Ok(None) => Self::default(),
            Err(e) => {
                tracing::warn!("ignoring unreadable state: {e}");
                Self::default()
            }
        }
    }

    /// Writes `state.json` atomically.
    ///
    /// # Errors
    ///
    /// [`store::Error`] when it cannot be written.
    pub fn save(&self, store: &Store) -> Result<(), store::Error> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        store.write_file(Path::new(FILE), &json)
    }

    /// The entry for `name`, created empty if needed.
    pub fn entry(&mut self, name: &str) -> &mut CertState {
        self.certificates.entry(name.to_owned()).or_default()
    }
}
