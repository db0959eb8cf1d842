//! One ACME account per configured CA, created on first use and stored as
//! `accounts/<ca>/account.json` (0600).

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use serde::{Deserialize, Serialize};

use super::Error;
use super::http::{CountingClient, CreatedOrders, RetryAfterNotes};
use crate::config::CaConfig;
use crate::metrics::Metrics;
use crate::store::Store;

/// What is kept on disk: the credentials and the directory they belong to, so a
/// changed `directory` in the config makes a new account instead of a confusing
/// "account does not exist" from another CA.
#[derive(Serialize, Deserialize)]
struct Stored {
    directory: String,
    credentials: AccountCredentials,
}

fn path(ca: &str) -> PathBuf {
    PathBuf::from("accounts").join(ca).join("account.json")
}

/// Loads the account for CA `name`, registering a new one if none is stored.
///
/// # Errors
///
/// [`Error::Acme`] when the CA cannot be reached or refuses the account,
/// [`Error::Account`] when the stored account cannot be read or written.
pub(super) async fn load_or_create(
    store: &Store,
    name: &str,
    ca: &CaConfig,
    metrics: &Metrics,
    (notes, created): (&Arc<RetryAfterNotes>, &Arc<CreatedOrders>),
) -> Result<Account, Error> {
    let acme = |source| Error::Acme {
        ca: name.to_owned(),
        source,
    };
    let account_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Account {
        ca: name.to_owned(),
        source,
    };
    let builder = || {
        CountingClient::new(
            name,
            ca.trust.as_deref(),
            metrics.clone(),
            (Arc::clone(notes), Arc::clone(created)),
        )
        .map(|client| Account::builder_with_http(Box::new(client)))
        .map_err(|e| account_err(e.into()))
    };
    let stored = store
        .read_file(&path(name))
        .map_err(|e| account_err(e.into()))?
        .map(|bytes| serde_json::from_slice::<Stored>(&bytes))
        .transpose()
        .map_err(|e| account_err(format!("{}: {e}", path(name).display()).into()))?;
    if let Some(stored) = stored.filter(|s| s.directory == ca.directory) {
        return builder()?
            .from_credentials(stored.credentials)
            .await
            .map_err(acme);
    }
    let contact: Vec<&str> = ca.contact.iter().map(String::as_str).collect();
    let eab = external_account_key(ca).map_err(account_err)?;
    let new_account = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = retry_bad_nonce!(
        builder()?
            .create(&new_account, ca.directory.clone(), eab.as_ref())
            .await
    )
    .map_err(acme)?;
    let stored = Stored {
        directory: ca.directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| account_err(e.into()))?;
    store
        .write_file(&path(name), &json)
        .map_err(|e| account_err(e.into()))?;
    tracing::info!(ca = name, id = account.id(), "registered ACME account");
    Ok(account)
}

fn external_account_key(
    ca: &CaConfig,
) -> Result<Option<ExternalAccountKey>, Box<dyn std::error::Error + Send + Sync>> {
    let (Some(kid), Some(file)) = (&ca.eab_kid, &ca.eab_hmac_key_file) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let key = URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|e| {
            format!(
                "{}: not a base64url EAB HMAC key: {}",
                file.display(),
                crate::secret::decode_problem(&e)
            )
        })?;
    Ok(Some(ExternalAccountKey::new(kid.clone(), &key)))
}
