//! Served-certificate checks: connect to each `verify` target with the
//! certificate's SNI (none for a certificate of IP addresses only) and compare
//! the leaf it presents with the stored one.
//!
//! The TLS handshake is verified cryptographically (the server must hold the key
//! for the certificate it shows) but the chain is not checked against any trust
//! store: we compare, we don't trust. Services reload asynchronously, so a check
//! retries for a bounded time before it reports a mismatch.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::Identifier;

/// How long one connection attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts while a service is still reloading.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// One served-certificate check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Served {
    /// `host:port` checked.
    pub target: String,
    /// Whether it served the live certificate.
    pub matches: bool,
}

/// Why a target could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TCP or TLS failed.
    #[error("{target}: {message}")]
    Connect {
        /// `host:port`.
        target: String,
        /// What went wrong.
        message: String,
    },
}

/// What to send as SNI for a certificate's `domains`: its first DNS name, else
/// a name its first wildcard covers (its base with a label in front), else its
/// first IP address. For an address no SNI is sent at all — RFC 6066 §3 allows
/// only host names, and rustls sends none for [`ServerName::IpAddress`] — so
/// the service answers as it does for clients that connect by address.
#[must_use]
pub fn sni_for(domains: &[Identifier]) -> String {
    let dns = domains.iter().find_map(|d| match d {
        Identifier::Dns(name) => Some(name.clone()),
        _ => None,
    });
    let wildcard = || {
        domains.iter().find_map(|d| match d {
            Identifier::Wildcard(base) => Some(format!("renewd-verify.{base}")),
            _ => None,
        })
    };
    dns.or_else(wildcard)
        .or_else(|| domains.first().map(ToString::to_string))
        .unwrap_or_default()
}

/// Checks every target (one after the other; there are few) until each serves
/// `expected` or `patience` runs out.
pub async fn check_all(
    targets: &[String],
    sni: &str,
    expected: &[u8],
    patience: Duration,
) -> Vec<Served> {
    let mut served = Vec::with_capacity(targets.len());
    for target in targets {
        let matches = check(target, sni, expected, patience).await;
        if let Err(e) = &matches {
            tracing::debug!(target, "verify: {e}");
        }
        served.push(Served {
            target: target.clone(),
            matches: matches.unwrap_or(false),
        });
    }
    served
}

/// Whether `target` serves `expected` (DER), retrying for up to `patience`.
///
/// # Errors
///
/// [`Error::Connect`] when the last attempt could not even complete a handshake.
pub async fn check(
    target: &str,
    sni: &str,
    expected: &[u8],
    patience: Duration,
) -> Result<bool, Error> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let served = served_leaf(target, sni).await;
        if let Ok(leaf) = &served {
            if leaf.as_slice() == expected {
                return Ok(true);
            }
        }
        if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
            return served.map(|_| false);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// The leaf certificate `target` presents for `sni` (a host name, or an IP
/// address to send no SNI).
///
/// # Errors
///
/// [`Error::Connect`] for connection, handshake or timeout failures.
pub async fn served_leaf(target: &str, sni: &str) -> Result<Vec<u8>, Error> {
    let fail = |message: String| Error::Connect {
        target: target.to_owned(),
        message,
    };
    let server_name =
        ServerName::try_from(sni.to_owned()).map_err(|e| fail(format!("SNI {sni:?}: {e}")))?;
    let attempt = async {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let tls = connector()
            .connect(server_name, tcp)
            .await
            .map_err(|e| fail(format!("TLS handshake: {e}")))?;
        let (_, session) = tls.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.to_vec())
            .ok_or_else(|| fail("no certificate presented".to_owned()))
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
        .await
        .map_err(|_| fail("timed out".to_owned()))?
}

fn connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CompareOnly(provider)))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Accepts any chain (we compare the leaf afterwards) but still checks the
/// handshake signature, so the server must hold the certificate's key.
#[derive(Debug)]
struct CompareOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for CompareOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(domains: &[&str]) -> Vec<Identifier> {
        domains.iter().map(|d| d.parse().unwrap()).collect()
    }

    #[test]
    fn sni_prefers_a_plain_name() {
        assert_eq!(sni_for(&ids(&["*.a.example", "b.example"])), "b.example");
        assert_eq!(sni_for(&ids(&["*.a.example"])), "renewd-verify.a.example");
        assert_eq!(sni_for(&ids(&["192.0.2.1", "b.example"])), "b.example");
    }

    #[test]
    fn a_certificate_of_addresses_only_is_checked_without_sni() {
        for domains in [["192.0.2.1", "2001:db8::1"], ["2001:DB8::1", "192.0.2.1"]] {
            let sni = sni_for(&ids(&domains));
            let name = ServerName::try_from(sni.clone()).unwrap();
            assert!(matches!(name, ServerName::IpAddress(_)), "{sni}");
        }
    }
}
