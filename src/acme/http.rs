//! The HTTP client instant-acme talks through: hyper + rustls like its default,
//! plus our own trust roots for test CAs and a count of every request per CA
//! and result (`renewd_acme_requests_total`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

type Hyper = Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// An instant-acme HTTP client for one CA.
pub(super) struct CountingClient {
    inner: Hyper,
    ca: String,
}

impl CountingClient {
    /// Trusts the platform's roots, or only the roots in `trust` when given.
    pub(super) fn new(ca: &str, trust: Option<&Path>) -> Result<Self, String> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match trust {
            None => builder
                .try_with_platform_verifier()
                .map_err(|e| format!("system trust store: {e}"))?,
            Some(path) => builder.with_tls_config(
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots(path)?)
                .with_no_client_auth(),
            ),
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            ca: ca.to_owned(),
        })
    }
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("trust {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("trust {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("trust {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "trust {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(roots)
}

impl HttpClient for CountingClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = HttpClient::request(&self.inner, req);
        let ca = self.ca.clone();
        Box::pin(async move {
            let response = response.await;
            let result = match &response {
                Ok(r) if r.parts.status.is_success() || r.parts.status.is_redirection() => {
                    "success"
                }
                Ok(r) if r.parts.status.is_client_error() => "client_error",
                Ok(_) => "server_error",
                Err(_) => "unreachable",
            };
            crate::metrics::acme_request(&ca, result);
            response
        })
    }
}
