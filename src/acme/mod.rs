//! ACME ([RFC 8555]) through instant-acme: accounts per CA, orders, ARI.
//!
//! This module turns "issue this certificate from that CA with that solver" into
//! a PEM chain. It owns the account files under `accounts/` (through the store)
//! but never writes certificates: publishing is the caller's decision.
//!
//! [RFC 8555]: https://www.rfc-editor.org/rfc/rfc8555

mod account;
mod order;

pub use account::load_or_create as account;
pub use order::{Order, generate_key, issue};

/// An ACME operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CA answered with an error or could not be reached.
    #[error("CA {ca}: {source}")]
    Acme {
        /// CA name in the config.
        ca: String,
        /// instant-acme's error (an RFC 7807 problem for CA-side errors).
        source: instant_acme::Error,
    },
    /// The stored account could not be read or written.
    #[error("CA {ca}: account: {source}")]
    Account {
        /// CA name in the config.
        ca: String,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A challenge response could not be presented.
    #[error(transparent)]
    Solver(#[from] crate::solver::Error),
    /// The CA offers no challenge the chosen solver can answer.
    #[error("{domain}: CA {ca} offers no {challenge} challenge")]
    NoChallenge {
        /// CA name.
        ca: String,
        /// The identifier.
        domain: String,
        /// The challenge type wanted.
        challenge: String,
    },
    /// The CA tried the challenge and it failed.
    #[error("{domain}: validation with solver {solver} failed: {detail}")]
    Validation {
        /// The identifier.
        domain: String,
        /// Solver name.
        solver: String,
        /// The CA's explanation.
        detail: String,
    },
    /// The private key or CSR could not be made.
    #[error("key: {0}")]
    Key(String),
}

impl Error {
    /// Whether a different solver could succeed where this one failed.
    #[must_use]
    pub fn is_challenge_failure(&self) -> bool {
        matches!(
            self,
            Self::Solver(_) | Self::NoChallenge { .. } | Self::Validation { .. }
        )
    }
}
