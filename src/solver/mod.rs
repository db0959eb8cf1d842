//! Challenge solvers: make the CA's validation request succeed for one authorization.
//!
//! A solver is configured once (`[solver.NAME]`) and shared by every certificate
//! that names it, so a standalone listener serves the tokens of all orders in
//! flight. This module presents and cleans up challenge responses; choosing the
//! challenge and talking to the CA is [`crate::acme`]'s job.
//!
//! Implemented: http-01 standalone ([RFC 8555 §8.3]) and http-01 webroot.
//! tls-alpn-01 and dns-01 are accepted by the config but refused at issuance with a
//! clear error until they land.
//!
//! [RFC 8555 §8.3]: https://www.rfc-editor.org/rfc/rfc8555#section-8.3

mod http01;

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use instant_acme::ChallengeType;

use crate::config::{ChallengeKind, SolverConfig};

/// A challenge response could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The standalone listener could not bind.
    #[error("solver {solver}: cannot listen on {addr}: {source}")]
    Bind {
        /// Solver name.
        solver: String,
        /// Configured address.
        addr: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// A webroot file could not be written.
    #[error("solver {solver}: cannot write {}: {source}", path.display())]
    Write {
        /// Solver name.
        solver: String,
        /// The challenge file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The solver's type or provider is not available in this build.
    #[error("solver {solver}: {what} is not supported yet")]
    Unsupported {
        /// Solver name.
        solver: String,
        /// What is missing.
        what: String,
    },
}

/// One configured solver, ready to present challenges.
#[derive(Debug)]
pub struct Solver {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Http01Standalone(http01::Standalone),
    Http01Webroot(http01::Webroot),
    Unsupported(ChallengeKind),
}

impl Solver {
    /// Builds the solver `name` from its config; nothing is bound until needed.
    #[must_use]
    pub fn new(name: &str, config: &SolverConfig) -> Self {
        let kind = match (config.kind, config.listen, &config.webroot) {
            (ChallengeKind::Http01, Some(addr), _) => {
                Kind::Http01Standalone(http01::Standalone::new(addr))
            }
            (ChallengeKind::Http01, None, Some(root)) => {
                Kind::Http01Webroot(http01::Webroot::new(root.clone()))
            }
            (other, _, _) => Kind::Unsupported(other),
        };
        Self {
            name: name.to_owned(),
            kind,
        }
    }

    /// The solver's name in the config.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ACME challenge type this solver answers.
    #[must_use]
    pub fn challenge_type(&self) -> ChallengeType {
        match &self.kind {
            Kind::Http01Standalone(_) | Kind::Http01Webroot(_) => ChallengeType::Http01,
            Kind::Unsupported(ChallengeKind::Http01) => ChallengeType::Http01,
            Kind::Unsupported(ChallengeKind::TlsAlpn01) => ChallengeType::TlsAlpn01,
            Kind::Unsupported(ChallengeKind::Dns01) => ChallengeType::Dns01,
        }
    }

    /// Puts the response for `token` in place so the CA can fetch it.
    ///
    /// # Errors
    ///
    /// [`Error`] naming the solver and what could not be done.
    pub async fn present(&self, token: &str, key_authorization: &str) -> Result<(), Error> {
        match &self.kind {
            Kind::Http01Standalone(s) => s.present(&self.name, token, key_authorization).await,
            Kind::Http01Webroot(w) => w.present(&self.name, token, key_authorization).await,
            Kind::Unsupported(kind) => Err(Error::Unsupported {
                solver: self.name.clone(),
                what: format!("{kind} (type = \"{kind}\")"),
            }),
        }
    }

    /// Removes what [`Solver::present`] put in place; failures are only logged.
    pub async fn cleanup(&self, token: &str) {
        match &self.kind {
            Kind::Http01Standalone(s) => s.cleanup(token).await,
            Kind::Http01Webroot(w) => w.cleanup(&self.name, token).await,
            Kind::Unsupported(_) => {}
        }
    }
}

/// All configured solvers by name.
#[derive(Debug, Clone, Default)]
pub struct Solvers(IndexMap<String, Arc<Solver>>);

impl Solvers {
    /// Builds every solver of the config.
    #[must_use]
    pub fn new(configs: &IndexMap<String, SolverConfig>) -> Self {
        Self(
            configs
                .iter()
                .map(|(name, c)| (name.clone(), Arc::new(Solver::new(name, c))))
                .collect(),
        )
    }

    /// The solver called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<Solver>> {
        self.0.get(name).cloned()
    }
}
