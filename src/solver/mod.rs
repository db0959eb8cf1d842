//! Challenge solvers: make the CA's validation request succeed for one authorization.
//!
//! A solver is configured once (`[solver.NAME]`) and shared by every certificate
//! that names it, so a standalone listener serves the tokens of all orders in
//! flight. This module presents and cleans up challenge responses; choosing the
//! challenge and talking to the CA is [`crate::acme`]'s job.
//!
//! Solvers: http-01 standalone and webroot ([RFC 8555 §8.3]), tls-alpn-01
//! standalone ([RFC 8737]), dns-01 ([RFC 8555 §8.4]) through RFC 2136 dynamic
//! updates, Cloudflare's API or an exec hook. IP addresses ([RFC 8738]) are
//! validated by http-01 (the CA connects to the address itself) and
//! tls-alpn-01 (it asks for the address's reverse-DNS name), never by dns-01.
//!
//! [RFC 8555 §8.3]: https://www.rfc-editor.org/rfc/rfc8555#section-8.3
//! [RFC 8555 §8.4]: https://www.rfc-editor.org/rfc/rfc8555#section-8.4
//! [RFC 8737]: https://www.rfc-editor.org/rfc/rfc8737
//! [RFC 8738]: https://www.rfc-editor.org/rfc/rfc8738

mod dns01;
mod http01;
mod listener;
mod tlsalpn01;

/// What a DNS server and the Cloudflare API answer, as the dns-01 solver reads
/// it (for the fuzz targets).
#[cfg(fuzzing)]
pub(crate) use dns01::{fuzz_cloudflare as fuzz_cloudflare_answer, fuzz_reply as fuzz_dns_reply};

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use instant_acme::ChallengeType;

use crate::config::{Identifier, SolverConfig};

/// Why a dns-01 record could not be published or did not become visible.
pub use dns01::Error as DnsError;
/// Why the tls-alpn-01 validation certificate could not be made.
pub use tlsalpn01::Error as TlsAlpnError;

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
    /// A DNS provider refused or failed, or the record never became visible.
    #[error("solver {solver}: {source}")]
    Dns {
        /// Solver name.
        solver: String,
        /// What went wrong, naming the record and server (boxed: it is large).
        source: Box<DnsError>,
    },
    /// The tls-alpn-01 certificate could not be made.
    #[error("solver {solver}: {source}")]
    TlsAlpn {
        /// Solver name.
        solver: String,
        /// What went wrong.
        source: TlsAlpnError,
    },
    /// The CA sent a token that is not base64url (RFC 8555 §8.3): it names a
    /// file under the webroot and a path on the listener, so `/` or `..` in
    /// it could reach elsewhere. Refused before anything is written.
    #[error(
        "solver {solver}: the CA sent the challenge token {token:?}, which is not base64url; refused"
    )]
    BadToken {
        /// Solver name.
        solver: String,
        /// The token (at most 64 characters of it).
        token: String,
    },
}

/// Whether `token` is what RFC 8555 §8.3 allows: base64url characters only
/// (no padding, no `/`, `.` or anything else a path could use), not empty.
fn is_base64url(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the CA expects for one authorization, in every form a solver may need.
#[derive(Debug, Clone)]
pub struct Response {
    /// What the authorization is for: a name (dns-01 and http-01), a
    /// wildcard (dns-01 only) or an IP address (http-01 and tls-alpn-01,
    /// RFC 8738 §7).
    pub identifier: Identifier,
    /// The challenge token (http-01 path).
    pub token: String,
    /// `token.thumbprint` (http-01 body).
    pub key_authorization: String,
    /// SHA-256 of the key authorization (tls-alpn-01 acmeIdentifier).
    pub digest: [u8; 32],
    /// base64url of that digest (dns-01 TXT value).
    pub dns_value: String,
}

/// Where a fleet of renewd nodes shares the http-01 and tls-alpn-01 responses
/// one node presents, so that every node answers the CA whichever one it
/// reaches ([`crate::cluster`] does it on etcd). Failures are logged, not
/// returned: the presenting node still answers itself.
pub trait Fleet: Send + Sync + std::fmt::Debug {
    /// Shares `response`, presented by solver `solver`, with the other nodes;
    /// with `wait`, waits (bounded) until they present it too (a webroot's
    /// file must be there before the CA asks the web server; a standalone
    /// listener waits for what it does not know yet instead).
    fn share<'a>(
        &'a self,
        solver: &'a str,
        response: &'a Response,
        wait: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    /// Withdraws what [`Fleet::share`] shared.
    fn withdraw<'a>(
        &'a self,
        response: &'a Response,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// One configured solver, ready to present challenges.
#[derive(Debug)]
pub struct Solver {
    name: String,
    config: SolverConfig,
    kind: Kind,
    fleet: Option<Arc<dyn Fleet>>,
}

#[derive(Debug)]
enum Kind {
    Http01Standalone(http01::Standalone),
    Http01Webroot(http01::Webroot),
    TlsAlpn01(tlsalpn01::Standalone),
    Dns01(dns01::Dns01),
}

impl Solver {
    /// Builds the solver `name` from its (validated) config; nothing is bound
    /// or contacted until needed.
    #[must_use]
    pub fn new(name: &str, config: &SolverConfig) -> Self {
        let kind = match config {
            SolverConfig::Http01Standalone(addr) => {
                Kind::Http01Standalone(http01::Standalone::new(*addr))
            }
            SolverConfig::Http01Webroot(root) => {
                Kind::Http01Webroot(http01::Webroot::new(root.clone()))
            }
            SolverConfig::TlsAlpn01(addr) => Kind::TlsAlpn01(tlsalpn01::Standalone::new(*addr)),
            SolverConfig::Dns01(dns) => Kind::Dns01(dns01::Dns01::new(dns)),
        };
        Self {
            name: name.to_owned(),
            config: config.clone(),
            kind,
            fleet: None,
        }
    }

    /// Whether the other nodes of a fleet must answer what this solver
    /// presents: the CA may reach any of them (not so for dns-01, whose
    /// records are global).
    fn fleet_wide(&self) -> Option<&Arc<dyn Fleet>> {
        self.fleet
            .as_ref()
            .filter(|_| !matches!(self.kind, Kind::Dns01(_)))
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
            Kind::TlsAlpn01(_) => ChallengeType::TlsAlpn01,
            Kind::Dns01(_) => ChallengeType::Dns01,
        }
    }

    /// Puts `response` in place so the CA can check it (on every node of a
    /// fleet, for http-01 and tls-alpn-01).
    ///
    /// # Errors
    ///
    /// [`Error`] naming the solver and what could not be done.
    pub async fn present(&self, response: &Response) -> Result<(), Error> {
        self.present_here(response).await?;
        if let Some(fleet) = self.fleet_wide() {
            let wait = matches!(self.kind, Kind::Http01Webroot(_));
            fleet.share(&self.name, response, wait).await;
        }
        Ok(())
    }

    /// Puts `response` in place on this host only (what a fleet's other
    /// nodes do for a response one of them shared).
    ///
    /// # Errors
    ///
    /// [`Error`] naming the solver and what could not be done.
    pub async fn present_here(&self, response: &Response) -> Result<(), Error> {
        let name = &self.name;
        if !is_base64url(&response.token) {
            return Err(Error::BadToken {
                solver: name.clone(),
                token: response.token.chars().take(64).collect(),
            });
        }
        match &self.kind {
            Kind::Http01Standalone(s) => {
                s.present(name, &response.token, &response.key_authorization)
                    .await
            }
            Kind::Http01Webroot(w) => {
                w.present(name, &response.token, &response.key_authorization)
                    .await
            }
            Kind::TlsAlpn01(t) => {
                t.present(name, &response.identifier, &response.digest)
                    .await
            }
            Kind::Dns01(d) => {
                let domain = response.identifier.base();
                d.present(name, &domain, &response.dns_value).await
            }
        }
    }

    /// Removes what [`Solver::present`] put in place; failures are only logged.
    pub async fn cleanup(&self, response: &Response) {
        if let Some(fleet) = self.fleet_wide() {
            fleet.withdraw(response).await;
        }
        self.cleanup_here(response).await;
    }

    /// Removes what [`Solver::present_here`] put in place.
    pub async fn cleanup_here(&self, response: &Response) {
        match &self.kind {
            Kind::Http01Standalone(s) => s.cleanup(&response.token).await,
            Kind::Http01Webroot(w) => w.cleanup(&self.name, &response.token).await,
            Kind::TlsAlpn01(t) => t.cleanup(&response.identifier).await,
            Kind::Dns01(d) => {
                let domain = response.identifier.base();
                d.cleanup(&self.name, &domain, &response.dns_value).await;
            }
        }
    }
}

impl Solver {
    /// Joins `fleet`: what this solver presents is shared, and a standalone
    /// listener, once bound, stays bound (see [`listener`]).
    fn join(&mut self, fleet: Arc<dyn Fleet>) {
        match &self.kind {
            Kind::Http01Standalone(s) => s.listener().stay_bound(),
            Kind::TlsAlpn01(t) => t.listener().stay_bound(),
            Kind::Http01Webroot(_) | Kind::Dns01(_) => {}
        }
        self.fleet = Some(fleet);
    }

    /// Binds a fleet's standalone listener now, so that the CA finds it
    /// whichever node it reaches, before this node hears of the challenge.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`].
    pub async fn listen_for_fleet(&self) -> Result<(), Error> {
        if self.fleet.is_none() {
            return Ok(());
        }
        match &self.kind {
            Kind::Http01Standalone(s) => s.listener().listen(&self.name).await,
            Kind::TlsAlpn01(t) => t.listener().listen(&self.name).await,
            Kind::Http01Webroot(_) | Kind::Dns01(_) => Ok(()),
        }
    }

    /// Removes what is still presented for orders that were abandoned (the
    /// daemon stopping): TXT records and webroot files. Listeners of renewd's
    /// own go with the process.
    pub async fn cleanup_abandoned(&self) {
        match &self.kind {
            Kind::Http01Webroot(w) => w.cleanup_all(&self.name).await,
            Kind::Dns01(d) => d.cleanup_all(&self.name).await,
            Kind::Http01Standalone(_) | Kind::TlsAlpn01(_) => {}
        }
    }
}

/// All configured solvers by name.
#[derive(Debug, Clone, Default)]
pub struct Solvers(IndexMap<String, Arc<Solver>>, Option<Arc<dyn Fleet>>);

impl Solvers {
    /// Builds every solver of the config, taking over from `previous` (the
    /// config before a reload) each one whose settings did not change: a
    /// renewal still in flight keeps presenting on its listener, and renewals
    /// started after the reload share that listener instead of failing to bind
    /// the same port.
    #[must_use]
    pub fn new(configs: &IndexMap<String, SolverConfig>, previous: Option<&Self>) -> Self {
        let fleet = previous.and_then(|p| p.1.clone());
        Self::in_fleet(configs, previous, fleet)
    }

    /// As [`Solvers::new`], sharing what they present with `fleet`.
    #[must_use]
    pub fn in_fleet(
        configs: &IndexMap<String, SolverConfig>,
        previous: Option<&Self>,
        fleet: Option<Arc<dyn Fleet>>,
    ) -> Self {
        let map = configs
            .iter()
            .map(|(name, c)| {
                let kept = previous
                    .and_then(|p| p.0.get(name))
                    .filter(|old| old.config == *c)
                    .map(Arc::clone);
                let solver = kept.unwrap_or_else(|| {
                    let mut solver = Solver::new(name, c);
                    if let Some(fleet) = &fleet {
                        solver.join(Arc::clone(fleet));
                    }
                    Arc::new(solver)
                });
                (name.clone(), solver)
            })
            .collect();
        Self(map, fleet)
    }

    /// The solver called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<Solver>> {
        self.0.get(name).cloned()
    }

    /// See [`Solver::listen_for_fleet`]; failures are logged: a listener
    /// is bound again when a challenge needs it.
    pub async fn listen_for_fleet(&self) {
        for solver in self.0.values() {
            if let Err(e) = solver.listen_for_fleet().await {
                tracing::warn!("{e}: the CA cannot validate the fleet's orders through this node");
            }
        }
    }

    /// See [`Solver::cleanup_abandoned`].
    pub async fn cleanup_abandoned(&self) {
        for solver in self.0.values() {
            solver.cleanup_abandoned().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(token: &str) -> Response {
        Response {
            identifier: Identifier::Dns("a.example".to_owned()),
            token: token.to_owned(),
            key_authorization: format!("{token}.thumbprint"),
            digest: [0; 32],
            dns_value: String::new(),
        }
    }

    #[tokio::test]
    async fn tokens_that_could_leave_the_webroot_are_refused_before_writing() {
        let root = tempfile::tempdir().unwrap();
        let webroot = root.path().join("www");
        std::fs::create_dir(&webroot).unwrap();
        let solver = Solver::new("files", &SolverConfig::Http01Webroot(webroot.clone()));
        for token in ["../../escape", "a/b", "..", "a.b", "", "tok\u{e9}n", "x y"] {
            let err = solver.present(&response(token)).await.unwrap_err();
            assert!(matches!(err, Error::BadToken { .. }), "{token:?}: {err}");
        }
        assert!(!webroot.join(".well-known").exists(), "nothing written");
        assert!(!root.path().join("escape").exists());
        solver
            .present(&response("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"))
            .await
            .unwrap();
        assert!(
            webroot
                .join(".well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0")
                .exists()
        );
    }
}
