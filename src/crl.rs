//! Revocation seen on the CA's certificate revocation list (RFC 5280 §5).
//!
//! ARI tells renewd about a revocation when the CA moves the renewal window into
//! the past; a CA without ARI, or one that revokes without touching ARI, still
//! lists the serial on the CRL named in the certificate's CRL Distribution
//! Points. The daemon checks it whenever it polls ARI (every `check_interval`),
//! so a revoked certificate is renewed at once either way.
//!
//! The CRL is trusted only when the issuer in `chain.pem` signed it; an unsigned,
//! foreign or unreadable list is an error, never a revocation.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use x509_parser::error::X509Error;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// Largest CRL accepted. CAs shard their lists (Let's Encrypt's are well under
/// 1 MiB); this only stops a runaway download.
const MAX_SIZE: usize = 16 << 20;

/// How long fetching one CRL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a fetched CRL is used: the certificates of one issuer share a few
/// CRL shards, and each certificate is checked at every ARI poll.
const FRESH: Duration = Duration::from_secs(3600);

/// Serial numbers (DER contents) listed on one CRL.
type Serials = Arc<HashSet<Vec<u8>>>;
/// A CRL's URL and the issuer certificate (DER) it was verified with.
type CrlKey = (String, Vec<u8>);

/// Verified CRLs: when fetched and the serials listed.
static CACHE: Mutex<BTreeMap<CrlKey, (Instant, Serials)>> = Mutex::new(BTreeMap::new());

/// x509-parser's error for DER that does not parse.
pub type ParseError = x509_parser::nom::Err<X509Error>;

/// Why the CRL could not tell.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate could not be parsed.
    #[error(transparent)]
    Certificate(ParseError),
    /// The issuer certificate could not be parsed.
    #[error("issuer: {0}")]
    Issuer(#[source] ParseError),
    /// The CRL could not be downloaded.
    #[error("CRL {url}: {source}")]
    Fetch {
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        #[source]
        source: FetchError,
    },
    /// The CRL is not a CRL signed by the certificate's issuer.
    #[error("CRL {url}: {source}")]
    Invalid {
        /// Where it was fetched from.
        url: String,
        /// What is wrong with it.
        #[source]
        source: InvalidCrl,
    },
}

/// Why a CRL could not be downloaded.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The distribution point is not a valid URI.
    #[error(transparent)]
    Uri(#[from] http::uri::InvalidUri),
    /// The platform's trust store cannot be loaded.
    #[error("system trust store: {0}")]
    TrustStore(#[source] rustls::Error),
    /// The request failed (connect, TLS, protocol).
    #[error(transparent)]
    Request(#[from] hyper_util::client::legacy::Error),
    /// The server answered with a status other than success.
    #[error("HTTP {0}")]
    Status(http::StatusCode),
    /// The body could not be read, or is larger than allowed.
    #[error("reading the body: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No complete answer in time.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// Why a downloaded CRL is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum InvalidCrl {
    /// It does not parse as a CRL.
    #[error("not a CRL: {0}")]
    Parse(#[source] ParseError),
    /// Another CA issued it.
    #[error("issued by {crl_issuer}, not by the certificate's issuer {issuer}")]
    Issuer {
        /// The CRL's issuer name.
        crl_issuer: String,
        /// The subject of the certificate's issuer.
        issuer: String,
    },
    /// The issuer's key did not sign it.
    #[error("signature does not verify with the issuer's key: {0}")]
    Signature(#[source] X509Error),
}

/// The http(s) URLs of the certificate's CRL Distribution Points.
///
/// # Errors
///
/// [`Error::Certificate`] when `cert_der` does not parse.
pub fn distribution_points(cert_der: &[u8]) -> Result<Vec<String>, Error> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(Error::Certificate)?;
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                continue;
            };
            urls.extend(names.iter().filter_map(|name| match name {
                GeneralName::URI(uri)
                    if uri.starts_with("http://") || uri.starts_with("https://") =>
                {
                    Some((*uri).to_owned())
                }
                _ => None,
            }));
        }
    }
    Ok(urls)
}

/// Whether the CA lists `cert_der` as revoked on its CRL: `None` when the
/// certificate names no CRL. The first distribution point that yields a valid
/// CRL decides.
///
/// # Errors
///
/// [`Error`] when no distribution point yields a CRL signed by `issuer_der`.
pub async fn is_revoked(cert_der: &[u8], issuer_der: &[u8]) -> Result<Option<bool>, Error> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(Error::Certificate)?;
    let mut last_error = None;
    for url in distribution_points(cert_der)? {
        match revoked_serials(&url, issuer_der).await {
            Ok(serials) => return Ok(Some(serials.contains(cert.raw_serial()))),
            Err(e) => last_error = Some(e),
        }
    }
    last_error.map_or(Ok(None), Err)
}

/// The serials revoked on the CRL at `url`, from [`CACHE`] or fetched.
async fn revoked_serials(url: &str, issuer_der: &[u8]) -> Result<Serials, Error> {
    let key = (url.to_owned(), issuer_der.to_vec());
    if let Some(serials) = cached(&key) {
        return Ok(serials);
    }
    let crl = fetch(url).await.map_err(|source| Error::Fetch {
        url: url.to_owned(),
        source,
    })?;
    let serials = Arc::new(verified_serials(url, &crl, issuer_der)?);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    cache.retain(|_, (at, _)| at.elapsed() < FRESH);
    cache.insert(key, (Instant::now(), Arc::clone(&serials)));
    Ok(serials)
}

fn cached(key: &CrlKey) -> Option<Serials> {
    let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    cache
        .get(key)
        .filter(|(at, _)| at.elapsed() < FRESH)
        .map(|(_, serials)| Arc::clone(serials))
}

/// The serials listed on `crl_der` (from `url`), once it is known to be a CRL
/// that `issuer_der` issued and signed.
fn verified_serials(
    url: &str,
    crl_der: &[u8],
    issuer_der: &[u8],
) -> Result<HashSet<Vec<u8>>, Error> {
    let invalid = |source| Error::Invalid {
        url: url.to_owned(),
        source,
    };
    let (_, issuer) = X509Certificate::from_der(issuer_der).map_err(Error::Issuer)?;
    let (_, crl) =
        CertificateRevocationList::from_der(crl_der).map_err(|e| invalid(InvalidCrl::Parse(e)))?;
    if crl.issuer() != issuer.subject() {
        return Err(invalid(InvalidCrl::Issuer {
            crl_issuer: crl.issuer().to_string(),
            issuer: issuer.subject().to_string(),
        }));
    }
    crl.verify_signature(issuer.public_key())
        .map_err(|e| invalid(InvalidCrl::Signature(e)))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|revoked| revoked.raw_serial().to_vec())
        .collect())
}

/// The `crl` fuzz target: `crl_der` as a downloaded CRL checked against the
/// issuer `issuer_der`. Every refusal must render.
#[cfg(fuzzing)]
pub(crate) fn fuzz(issuer_der: &[u8], crl_der: &[u8]) {
    if let Err(e) = verified_serials("http://crl.example/1.crl", crl_der, issuer_der) {
        let _ = e.to_string();
    }
}

/// Downloads `url` (http or https, redirects not followed).
async fn fetch(url: &str) -> Result<Vec<u8>, FetchError> {
    let uri: http::Uri = url.parse()?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(FetchError::TrustStore)?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let download = async {
        let response = client.get(uri).await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        Limited::new(response.into_body(), MAX_SIZE)
            .collect()
            .await
            .map(|body| body.to_bytes().to_vec())
            .map_err(FetchError::Body)
    };
    tokio::time::timeout(FETCH_TIMEOUT, download)
        .await
        .map_err(|_| FetchError::Timeout(FETCH_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
        IsCa, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
    };

    /// A CA, and a leaf it issued naming `crl_url`.
    fn ca_and_leaf(crl_url: &str, serial: u8) -> (Issuer<'static, KeyPair>, Vec<u8>, Vec<u8>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut leaf = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        leaf.serial_number = Some(SerialNumber::from(vec![serial]));
        leaf.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![crl_url.to_owned()],
        }];
        let leaf = leaf
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        (issuer, ca_cert.der().to_vec(), leaf.der().to_vec())
    }

    fn crl(issuer: &Issuer<'_, KeyPair>, serials: &[u8]) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(vec![*s]),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(issuer).unwrap().der().to_vec()
    }

    #[test]
    fn the_distribution_point_is_read_from_the_certificate() {
        let (_, _, leaf) = ca_and_leaf("http://crl.example/1.crl", 5);
        assert_eq!(
            distribution_points(&leaf).unwrap(),
            ["http://crl.example/1.crl"]
        );
    }

    #[test]
    fn the_listed_serials_are_read_from_a_crl_the_issuer_signed() {
        let url = "http://crl.example/1.crl";
        let (issuer, ca, _) = ca_and_leaf(url, 5);
        let serials = verified_serials(url, &crl(&issuer, &[3, 5]), &ca).unwrap();
        assert_eq!(serials, HashSet::from([vec![3], vec![5]]));
    }

    #[test]
    fn a_crl_from_another_ca_is_refused() {
        let url = "http://crl.example/1.crl";
        let (_, ca, _) = ca_and_leaf(url, 5);
        let (other, _, _) = ca_and_leaf(url, 5);
        let err = verified_serials(url, &crl(&other, &[5]), &ca).unwrap_err();
        assert!(
            err.to_string().contains("signature does not verify"),
            "{err}"
        );
        let err = verified_serials(url, b"garbage", &ca).unwrap_err();
        assert!(err.to_string().contains("not a CRL"), "{err}");
    }

    #[test]
    fn failures_name_the_crl_and_what_is_wrong() {
        let url = "http://crl.example/1.crl";
        let (_, ca, _) = ca_and_leaf(url, 5);
        let (other, _, _) = ca_and_leaf(url, 5);
        let err = verified_serials(url, b"garbage", &ca).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CRL http://crl.example/1.crl: not a CRL: "),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some(), "{err:?}");
        let err = verified_serials(url, &crl(&other, &[5]), b"garbage").unwrap_err();
        assert!(err.to_string().starts_with("issuer: "), "{err}");
        let err = Error::Fetch {
            url: url.to_owned(),
            source: FetchError::Status(http::StatusCode::NOT_FOUND),
        };
        assert_eq!(
            err.to_string(),
            "CRL http://crl.example/1.crl: HTTP 404 Not Found"
        );
        let err = Error::Fetch {
            url: url.to_owned(),
            source: FetchError::Timeout(FETCH_TIMEOUT),
        };
        assert_eq!(
            err.to_string(),
            "CRL http://crl.example/1.crl: no answer within 30 s"
        );
    }

    #[tokio::test]
    async fn the_crl_is_fetched_over_http_once_for_all_certificates() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/1.crl", listener.local_addr().unwrap());
        let (issuer, ca, revoked) = ca_and_leaf(&url, 5);
        let mut valid = CertificateParams::new(vec!["b.example".to_owned()]).unwrap();
        valid.serial_number = Some(SerialNumber::from(vec![6]));
        valid.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![url.clone()],
        }];
        let valid = valid
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        let body = crl(&issuer, &[5]);
        // Answers one request only: the second certificate must use the cached CRL.
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(&body).unwrap();
        });
        assert_eq!(is_revoked(&revoked, &ca).await.unwrap(), Some(true));
        assert_eq!(is_revoked(valid.der(), &ca).await.unwrap(), Some(false));
    }
}
