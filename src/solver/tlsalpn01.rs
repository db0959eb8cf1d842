//! tls-alpn-01 ([RFC 8737]): a TLS listener that, to a client offering ALPN
//! `acme-tls/1` with SNI = the domain, presents a self-signed certificate
//! for that domain carrying the critical acmeIdentifier extension (SHA-256 of
//! the key authorization). Nothing else is served.
//!
//! For an IP address ([RFC 8738 §6]) the validator sends the address's
//! reverse-DNS name as SNI (`1.0.0.127.in-addr.arpa` for 127.0.0.1) and the
//! certificate names the address itself, as an iPAddress SAN.
//!
//! [RFC 8737]: https://www.rfc-editor.org/rfc/rfc8737
//! [RFC 8738 §6]: https://www.rfc-editor.org/rfc/rfc8738#section-6

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::server::Acceptor;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use super::listener::{Entries, OnDemand};
use crate::config::Identifier;

/// The ALPN protocol of RFC 8737 §6.2.
const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// Why the validation certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen could not generate the key or build and sign the certificate.
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
    /// rustls could not load the generated key for signing.
    #[error(transparent)]
    SigningKey(#[from] rustls::Error),
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct Standalone(OnDemand<Arc<CertifiedKey>>);

impl Standalone {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self(OnDemand::new(addr, |listener, certs| {
            Box::pin(serve(listener, certs))
        }))
    }

    pub(super) async fn present(
        &self,
        solver: &str,
        identifier: &Identifier,
        digest: &[u8; 32],
    ) -> Result<(), super::Error> {
        let cert =
            challenge_certificate(identifier, digest).map_err(|source| super::Error::TlsAlpn {
                solver: solver.to_owned(),
                source,
            })?;
        self.0
            .add(solver, &sni_name(identifier), Arc::new(cert))
            .await
    }

    pub(super) async fn cleanup(&self, identifier: &Identifier) {
        self.0.remove(&sni_name(identifier)).await;
    }

    pub(super) fn listener(&self) -> &OnDemand<Arc<CertifiedKey>> {
        &self.0
    }
}

/// The SNI a validator sends for `identifier`, lowercase as the resolver looks
/// it up: the name itself, or an address's reverse-DNS name ([RFC 8738 §6]:
/// RFC 1035 §3.5 for IPv4, RFC 3596 §2.5 for IPv6).
///
/// [RFC 8738 §6]: https://www.rfc-editor.org/rfc/rfc8738#section-6
fn sni_name(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Ip(IpAddr::V4(v4)) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        Identifier::Ip(IpAddr::V6(v6)) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0xf, byte >> 4);
            }
            name + "ip6.arpa"
        }
        Identifier::Dns(name) | Identifier::Wildcard(name) => name.to_ascii_lowercase(),
    }
}

/// The self-signed validation certificate of RFC 8737 §3, naming only the
/// identifier: a dNSName, or an iPAddress for an address (RFC 8738 §6).
fn challenge_certificate(
    identifier: &Identifier,
    digest: &[u8; 32],
) -> Result<CertifiedKey, Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![match identifier {
        Identifier::Ip(ip) => rcgen::SanType::IpAddress(*ip),
        name => rcgen::SanType::DnsName(name.base().try_into()?),
    }];
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = provider().key_provider.load_private_key(key_der)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing_key))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Presents the one validation certificate chosen for a connection.
#[derive(Debug)]
struct Chosen(Arc<CertifiedKey>);

impl ResolvesServerCert for Chosen {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

async fn serve(listener: TcpListener, certs: Entries<Arc<CertifiedKey>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: pause instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let certs = Arc::clone(&certs);
        tokio::spawn(async move {
            // The handshake is the whole exchange; the validator then closes.
            if let Some(mut tls) = handshake(stream, &certs).await {
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
            }
        });
    }
}

/// Reads the ClientHello and, to an `acme-tls/1` client, presents the
/// validation certificate for its SNI — waited for in a fleet (see
/// [`super::listener`]), hence not a synchronous rustls resolver.
async fn handshake(
    stream: TcpStream,
    certs: &Entries<Arc<CertifiedKey>>,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), stream)
        .await
        .ok()?;
    let hello = start.client_hello();
    if !hello.alpn()?.any(|p| p == ACME_TLS_1) {
        return None;
    }
    // A fully qualified name may come with its root dot.
    let name = hello
        .server_name()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let cert = certs.get_or_wait(&name).await?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Chosen(cert)));
    config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
    start.into_stream(Arc::new(config)).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str) -> Identifier {
        Identifier::Dns(name.to_owned())
    }

    fn ip(address: &str) -> Identifier {
        Identifier::Ip(address.parse().unwrap())
    }

    #[test]
    fn an_address_is_asked_for_by_its_reverse_dns_name() {
        assert_eq!(sni_name(&ip("127.0.0.1")), "1.0.0.127.in-addr.arpa");
        assert_eq!(sni_name(&ip("192.0.2.10")), "10.2.0.192.in-addr.arpa");
        // RFC 3596 §2.5's example, 4321:0:1:2:3:4:567:89ab.
        assert_eq!(
            sni_name(&ip("4321:0:1:2:3:4:567:89ab")),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa"
        );
        assert_eq!(sni_name(&dns("A.Example")), "a.example");
    }

    #[test]
    fn the_validation_certificate_of_an_address_names_only_the_address() {
        for address in ["127.0.0.1", "2001:db8::1"] {
            let cert = challenge_certificate(&ip(address), &[7; 32]).unwrap();
            let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert[0].as_ref()).unwrap();
            let san = parsed.subject_alternative_name().unwrap().unwrap().value;
            let want: IpAddr = address.parse().unwrap();
            let octets = match want {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            assert_eq!(
                san.general_names,
                [x509_parser::extensions::GeneralName::IPAddress(&octets)],
                "{address}"
            );
        }
    }

    #[test]
    fn the_validation_certificate_carries_the_critical_acme_identifier() {
        let digest = [7u8; 32];
        let cert = challenge_certificate(&dns("a.example"), &digest).unwrap();
        let der = cert.cert[0].as_ref();
        let (_, parsed) = x509_parser::parse_x509_certificate(der).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // DER OCTET STRING (0x04, length 32) wrapping the digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
    }

    #[tokio::test]
    async fn a_name_rcgen_refuses_is_reported_in_its_words_after_the_solver() {
        let standalone = Standalone::new("127.0.0.1:0".parse().unwrap());
        let err = standalone
            .present("alpn", &dns("bücher.example"), &[0; 32])
            .await
            .unwrap_err();
        let rcgen = challenge_certificate(&dns("bücher.example"), &[0; 32]).unwrap_err();
        assert!(matches!(rcgen, Error::Certificate(_)), "{rcgen:?}");
        assert_eq!(err.to_string(), format!("solver alpn: {rcgen}"));
    }
}
