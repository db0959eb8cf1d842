//! One ACME account per configured CA, created on first use and stored as
//! `accounts/<ca>/account.json` (0600). In fleet mode the fleet keeps one
//! account per CA ([`SharedAccounts`]) and each node's file is its copy.

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

/// Where a fleet keeps its ACME accounts ([`crate::cluster`]: etcd), so that
/// every node orders with the same account at each CA. The bytes are those of
/// `account.json`. Failures (etcd unreachable) are logged by the
/// implementation and answered with `None`: the node then uses its own file.
pub trait SharedAccounts: Send + Sync + std::fmt::Debug {
    /// The fleet's account for CA `ca`, if it has one.
    fn get<'a>(&'a self, ca: &'a str) -> BoxFuture<'a, Option<Vec<u8>>>;

    /// Stores `account` as the fleet's account for `ca` unless one for the
    /// same directory is stored already (one for another directory — the
    /// CA's URL changed — is replaced, once); the fleet's account afterwards
    /// (`account` or the one another node stored first).
    fn put_first<'a>(&'a self, ca: &'a str, account: &'a [u8]) -> BoxFuture<'a, Option<Vec<u8>>>;
}

/// Whether `account` (the bytes of an `account.json`) and `other` belong to
/// the same ACME directory.
#[must_use]
pub fn same_directory(account: &[u8], other: &[u8]) -> bool {
    let directory = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v["directory"].as_str().map(str::to_owned))
    };
    directory(account).is_some_and(|d| Some(d) == directory(other))
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The account URL in `account.json`'s bytes, if they are one for `directory`.
fn account_url(bytes: &[u8], directory: &str) -> Option<String> {
    let stored: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if stored["directory"] != directory {
        return None;
    }
    stored["credentials"]["id"].as_str().map(str::to_owned)
}

/// Settles which stored account CA `name` is used with: `local` (this node's
/// file) unless the fleet has another, which then replaces the file. Without
/// a fleet, `local`.
async fn settle(
    store: &Store,
    name: &str,
    directory: &str,
    local: Option<Vec<u8>>,
    shared: Option<&dyn SharedAccounts>,
) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
    let Some(shared) = shared else {
        return Ok(local);
    };
    // `local` is for `directory`; the fleet's may be for an old one.
    let fleet = match (shared.get(name).await, &local) {
        (Some(theirs), _) if account_url(&theirs, directory).is_some() => Some(theirs),
        (_, Some(mine)) => shared.put_first(name, mine).await,
        (theirs, None) => theirs,
    };
    let Some(fleet) = fleet.filter(|f| account_url(f, directory).is_some()) else {
        return Ok(local);
    };
    let differs = local
        .as_deref()
        .is_none_or(|l| account_url(l, directory) != account_url(&fleet, directory));
    if differs {
        store.write_file(&path(name), &fleet)?;
        tracing::info!(
            ca = name,
            id = account_url(&fleet, directory),
            "using the fleet's ACME account"
        );
    }
    Ok(Some(fleet))
}

/// Loads the account for CA `name`, registering a new one if none is stored.
/// In a fleet (`shared`), the fleet's account wins over this node's file, and
/// an account this node registers becomes the fleet's unless another node's
/// got there first.
///
/// # Errors
///
/// [`Error::Acme`] when the CA cannot be reached or refuses the account,
/// [`Error::ContactRequired`] when it refuses one without a contact address and
/// the config gives none, [`Error::Account`] when the stored account cannot be
/// read or written.
pub(super) async fn load_or_create(
    store: &Store,
    name: &str,
    ca: &CaConfig,
    metrics: &Metrics,
    (notes, created): (&Arc<RetryAfterNotes>, &Arc<CreatedOrders>),
    shared: Option<&dyn SharedAccounts>,
) -> Result<Account, Error> {
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
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<Stored>(bytes)
            .map_err(|e| account_err(format!("{}: {e}", path(name).display()).into()))
    };
    let from_stored = async |bytes: &[u8]| {
        let stored = parse(bytes)?;
        builder()?
            .from_credentials(stored.credentials)
            .await
            .map_err(|source| Error::Acme {
                ca: name.to_owned(),
                source,
            })
    };
    // A file that does not parse is an error, not a reason to register
    // anew over it; one for another directory is replaced.
    let local = match store
        .read_file(&path(name))
        .map_err(|e| account_err(e.into()))?
    {
        Some(bytes) => (parse(&bytes)?.directory == ca.directory).then_some(bytes),
        None => None,
    };
    if let Some(bytes) = settle(store, name, &ca.directory, local, shared)
        .await
        .map_err(account_err)?
    {
        return from_stored(&bytes).await;
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
    .map_err(|source| refused(name, ca, source))?;
    let stored = Stored {
        directory: ca.directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| account_err(e.into()))?;
    if let Some(shared) = shared
        && let Some(fleet) = shared.put_first(name, &json).await
        && account_url(&fleet, &ca.directory).is_some_and(|url| url != account.id())
    {
        // Another node registered at the same time and stored its account
        // first: the fleet uses that one, this one stays unused.
        store
            .write_file(&path(name), &fleet)
            .map_err(|e| account_err(e.into()))?;
        tracing::info!(
            ca = name,
            "using the ACME account another node of the fleet registered"
        );
        return from_stored(&fleet).await;
    }
    store
        .write_file(&path(name), &json)
        .map_err(|e| account_err(e.into()))?;
    tracing::info!(ca = name, id = account.id(), "registered ACME account");
    Ok(account)
}

/// The error for a `newAccount` that failed: [`Error::ContactRequired`] when
/// the config names no contact and the CA's problem is about the contact
/// (acme2certifier answers `malformed`, "Contact information is missing"), so
/// the message says what to add; else the CA's error as it is.
fn refused(name: &str, ca: &CaConfig, source: instant_acme::Error) -> Error {
    if let instant_acme::Error::Api(problem) = &source {
        let about_contact =
            problem.r#type.as_deref().is_some_and(|t| {
                t.ends_with(":invalidContact") || t.ends_with(":unsupportedContact")
            }) || problem
                .detail
                .as_deref()
                .is_some_and(|d| d.to_ascii_lowercase().contains("contact"));
        if ca.contact.is_empty() && about_contact {
            return Error::ContactRequired {
                ca: name.to_owned(),
                detail: problem.detail.clone().unwrap_or_default(),
            };
        }
    }
    Error::Acme {
        ca: name.to_owned(),
        source,
    }
}

/// Stores an account renewd did not register ([`super::adopt`]): `key_pkcs8`
/// (ECDSA P-256) is the account's key at `directory`, `account_url` its URL.
pub(super) fn store_adopted(
    store: &Store,
    name: &str,
    directory: &str,
    account_url: &str,
    key_pkcs8: &[u8],
) -> Result<(), Error> {
    let account_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Account {
        ca: name.to_owned(),
        source,
    };
    // The credentials type is opaque; its serialized form is the way in.
    let credentials: AccountCredentials = serde_json::from_value(serde_json::json!({
        "id": account_url,
        "key_pkcs8": URL_SAFE_NO_PAD.encode(key_pkcs8),
        "directory": directory,
    }))
    .map_err(|e| account_err(e.into()))?;
    let stored = Stored {
        directory: directory.to_owned(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| account_err(e.into()))?;
    store
        .write_file(&path(name), &json)
        .map_err(|e| account_err(e.into()))
}

/// The URL of the account stored for CA `name`, if one is stored for
/// `directory` (one for another directory would be replaced on first use).
#[must_use]
pub fn stored_account_url(store: &Store, name: &str, directory: &str) -> Option<String> {
    account_url(&store.read_file(&path(name)).ok()??, directory)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, detail: &str) -> instant_acme::Error {
        instant_acme::Error::Api(
            serde_json::from_value(serde_json::json!({
                "type": kind, "detail": detail, "status": 400
            }))
            .unwrap(),
        )
    }

    fn ca(contact: &[&str]) -> CaConfig {
        let toml = format!("directory = \"https://ca.example/dir\"\ncontact = {contact:?}\n");
        toml::from_str(&toml).unwrap()
    }

    #[tokio::test]
    async fn an_account_file_that_does_not_parse_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write_file(&path("a"), b"{not json").unwrap();
        let http = (&Arc::default(), &Arc::default());
        let result = load_or_create(&store, "a", &ca(&[]), &Metrics::new(), http, None).await;
        let error = result.err().expect("an error");
        assert!(matches!(error, Error::Account { .. }), "{error}");
        assert!(error.to_string().contains("account.json"), "{error}");
        assert_eq!(store.read_file(&path("a")).unwrap().unwrap(), b"{not json");
    }

    #[test]
    fn a_ca_that_wants_a_contact_gets_a_message_saying_what_to_add() {
        let missing = problem(
            "urn:ietf:params:acme:error:malformed",
            "Contact information is missing",
        );
        let error = refused("a2c", &ca(&[]), missing);
        assert!(matches!(error, Error::ContactRequired { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            "CA a2c refused the account: Contact information is missing (this CA requires a \
             contact address: add contact = [\"mailto:you@example.com\"] to [ca.a2c])"
        );
        let invalid = problem("urn:ietf:params:acme:error:invalidContact", "no");
        assert!(matches!(
            refused("a2c", &ca(&[]), invalid),
            Error::ContactRequired { .. }
        ));
    }

    #[test]
    fn other_refusals_and_configured_contacts_keep_the_cas_error() {
        let bad = problem(
            "urn:ietf:params:acme:error:invalidContact",
            "contact domain is invalid",
        );
        let error = refused("le", &ca(&["mailto:ops@example.com"]), bad);
        assert!(matches!(error, Error::Acme { .. }), "{error}");
        let other = problem("urn:ietf:params:acme:error:malformed", "bad JWS");
        assert!(matches!(refused("le", &ca(&[]), other), Error::Acme { .. }));
    }
}
