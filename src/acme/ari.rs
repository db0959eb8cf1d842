//! ACME Renewal Information ([RFC 9773]): the CA's suggested renewal window.
//!
//! [RFC 9773]: https://www.rfc-editor.org/rfc/rfc9773

use std::time::Duration;

use instant_acme::Account;

use super::Error;
use super::order::certificate_identifier;
use crate::schedule::Window;

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
pub async fn renewal_info(account: &Account, ca: &str, ari_id: &str) -> Result<RenewalInfo, Error> {
    let Some(id) = certificate_identifier(ari_id) else {
        return Ok(RenewalInfo::Unsupported);
    };
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => Ok(RenewalInfo::Window(
            Window {
                start: info.suggested_window.start,
                end: info.suggested_window.end,
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
