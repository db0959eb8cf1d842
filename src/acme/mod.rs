//! ACME ([RFC 8555]) through instant-acme: accounts per CA, orders, ARI,
//! revocation.
//!
//! This module turns "issue this certificate from that CA with that solver" into
//! a PEM chain ([`issue`]), and answers what else renewd asks a CA ([`Cas`]:
//! renewal windows, revocation, the CRL). It owns the account files under
//! `accounts/` (through the store) but never writes certificates: publishing is
//! the caller's decision.
//!
//! [RFC 8555]: https://www.rfc-editor.org/rfc/rfc8555

/// Re-runs an instant-acme call while the CA rejects its nonce.
///
/// instant-acme already retries a `badNonce` three times; a CA that rejects many
/// nonces (Pebble's `PEBBLE_WFE_NONCEREJECT=50`) defeats that one time in eight
/// per request, and an order makes about ten requests. Retrying each request
/// here keeps a whole renewal from failing over one unlucky nonce.
macro_rules! retry_bad_nonce {
    ($call:expr) => {{
        let mut attempts = 0;
        loop {
            match $call {
                Err(e) if $crate::acme::is_bad_nonce(&e) && attempts < 10 => attempts += 1,
                other => break other,
            }
        }
    }};
}

mod account;
mod adopt;
mod ari;
mod cas;
mod http;
mod order;

pub use account::{SharedAccounts, same_directory, stored_account_url};
pub use adopt::{Adopted, ForeignKey, adopt};
pub use ari::RenewalInfo;
pub use cas::Cas;
pub use order::{Delivered, Order, generate_key, issue, prime_key_generator};

/// An order answer and a `Retry-After` header as the HTTP client reads them
/// (for the fuzz targets).
#[cfg(fuzzing)]
pub(crate) use http::fuzz as fuzz_http;

/// An error followed by its causes: transport errors say "client error
/// (Connect)" at the top and what actually happened (DNS, refused, TLS) below.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether the CA rejected a request's anti-replay nonce (RFC 8555 §6.5).
pub(crate) fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce"))
}

/// An ACME operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CA answered with an error or could not be reached.
    #[error("CA {ca}: {}", with_causes(source))]
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
    /// The CA refused to open an account without a contact address, and the
    /// config names none (RFC 8555 makes `contact` optional; some CAs require
    /// it).
    #[error(
        "CA {ca} refused the account: {detail} (this CA requires a contact address: \
         add contact = [\"mailto:you@example.com\"] to [ca.{ca}])"
    )]
    ContactRequired {
        /// CA name in the config.
        ca: String,
        /// The CA's own words.
        detail: String,
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
    #[error("{domain}: {challenge} validation with solver {solver} failed: {detail}")]
    Validation {
        /// The identifier.
        domain: String,
        /// Solver name.
        solver: String,
        /// The challenge type (`http-01`, ...).
        challenge: String,
        /// The CA's explanation.
        detail: String,
    },
    /// The private key or CSR could not be made.
    #[error("key: {0}")]
    Key(String),
}

impl Error {
    /// Whether the CA could not be reached at all (as opposed to answering with
    /// an error): a cached account's HTTP client is then rebuilt next time.
    #[must_use]
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Self::Acme {
                source: instant_acme::Error::Hyper(_) | instant_acme::Error::Other(_),
                ..
            }
        )
    }

    /// Whether a different solver could succeed where this one failed.
    #[must_use]
    pub fn is_challenge_failure(&self) -> bool {
        matches!(
            self,
            Self::Solver(_) | Self::NoChallenge { .. } | Self::Validation { .. }
        )
    }
}
