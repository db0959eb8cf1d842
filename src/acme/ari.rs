//! ACME Renewal Information ([RFC 9773]): the CA's suggested renewal window;
//! and revocation, which is how that window is made to move.
//!
//! [RFC 9773]: https://www.rfc-editor.org/rfc/rfc9773

use std::time::Duration;

use instant_acme::Account;

use super::Error;
use super::order::certificate_identifier;
use crate::state::Window;

/// What the CA says about one certificate.
#[derive(Debug, Clone, Copy)]
pub enum RenewalInfo {
    /// A suggested window and how long to wait before asking again (`Retry-After`).
    Window(Window, Duration),
    /// The CA does not offer ARI.
    Unsupported,
}

/// Fetches the renewal window of the certificate with RFC 9773 identifier `ari_id`.
///
/// # Errors
///
/// [`Error::Acme`] when the CA cannot be reached or answers with an error.
pub(super) async fn renewal_info(
    account: &Account,
    ca: &str,
    ari_id: &str,
) -> Result<RenewalInfo, Error> {
    let Some(id) = certificate_identifier(ari_id) else {
        return Ok(RenewalInfo::Unsupported);
    };
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => Ok(RenewalInfo::Window(
            Window {
                start: info.suggested_window.start.into(),
                end: info.suggested_window.end.into(),
            },
            retry_after,
        )),
        Err(instant_acme::Error::Unsupported(_)) => Ok(RenewalInfo::Unsupported),
        Err(source) => Err(Error::Acme {
            ca: ca.to_owned(),
            source,
        }),
    }
}

/// Revokes the certificate `der` ([RFC 8555 §7.6]) with the account that ordered it.
///
/// # Errors
///
/// [`Error::Acme`] when the CA refuses or cannot be reached.
///
/// [RFC 8555 §7.6]: https://www.rfc-editor.org/rfc/rfc8555#section-7.6
pub(super) async fn revoke(
    account: &Account,
    ca: &str,
    der: &[u8],
    reason: Option<instant_acme::RevocationReason>,
) -> Result<(), Error> {
    let certificate = rustls_pki_types::CertificateDer::from(der);
    let request = instant_acme::RevocationRequest {
        certificate: &certificate,
        reason,
    };
    retry_bad_nonce!(account.revoke(&request).await).map_err(|source| Error::Acme {
        ca: ca.to_owned(),
        source,
    })
}
