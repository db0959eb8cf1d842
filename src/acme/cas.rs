//! The configured CAs as renewd talks to them outside an order: one account per
//! CA (loaded or registered on first use, then cached), renewal windows (ARI),
//! revocation, the CA's CRL, and what each CA said about waiting (`Retry-After`).

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use instant_acme::{Account, RevocationReason};
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tracing::warn;

use super::http::{CreatedOrders, RetryAfterNotes};
use super::{Error, RenewalInfo, SharedAccounts, account, ari};
use crate::config::CaConfig;
use crate::metrics::Metrics;
use crate::store::{Lineage, Store};

/// The CAs of one config and their accounts.
pub struct Cas {
    cas: IndexMap<String, CaConfig>,
    store: Store,
    metrics: Metrics,
    accounts: Mutex<HashMap<String, Account>>,
    notes: Arc<RetryAfterNotes>,
    created: Arc<CreatedOrders>,
    /// CAs whose quirk was logged already.
    quirky: std::sync::Mutex<std::collections::HashSet<String>>,
    /// In fleet mode, where the fleet's accounts are.
    shared: Option<Arc<dyn SharedAccounts>>,
}

impl Cas {
    /// The CAs in `cas`, with accounts stored in `store` and requests counted in
    /// `metrics`. Nothing is contacted yet.
    #[must_use]
    pub fn new(cas: IndexMap<String, CaConfig>, store: Store, metrics: Metrics) -> Self {
        Self {
            cas,
            store,
            metrics,
            accounts: Mutex::new(HashMap::new()),
            notes: Arc::default(),
            created: Arc::default(),
            quirky: std::sync::Mutex::default(),
            shared: None,
        }
    }

    /// As [`Cas::new`], for a node of a fleet: the accounts are the fleet's.
    #[must_use]
    pub fn shared(mut self, shared: Option<Arc<dyn SharedAccounts>>) -> Self {
        self.shared = shared;
        self
    }

    /// The account at CA `ca`, registered if none is stored.
    ///
    /// # Errors
    ///
    /// [`Error::Acme`] when the CA cannot be reached or refuses the account,
    /// [`Error::Account`] when the stored account cannot be used or `ca` is not
    /// configured.
    pub async fn account(&self, ca: &str) -> Result<Account, Error> {
        let mut accounts = self.accounts.lock().await;
        if let Some(account) = accounts.get(ca) {
            return Ok(account.clone());
        }
        let config = self.cas.get(ca).ok_or_else(|| Error::Account {
            ca: ca.to_owned(),
            source: "not in the config".into(),
        })?;
        let account = account::load_or_create(
            &self.store,
            ca,
            config,
            &self.metrics,
            (&self.notes, &self.created),
            self.shared.as_deref(),
        )
        .await?;
        accounts.insert(ca.to_owned(), account.clone());
        Ok(account)
    }

    /// The settings of CA `ca`, if it is one of these.
    #[must_use]
    pub fn config(&self, ca: &str) -> Option<&CaConfig> {
        self.cas.get(ca)
    }

    /// Drops the cached account of a CA that could not be reached, so the next
    /// attempt rebuilds its HTTP client (re-reading `trust` and the directory).
    pub async fn forget_if_unreachable(&self, ca: &str, e: &Error) {
        if e.is_transport() {
            self.accounts.lock().await.remove(ca);
        }
    }

    /// Asks CA `ca` for the renewal window of the certificate with RFC 9773
    /// identifier `ari_id`.
    ///
    /// # Errors
    ///
    /// [`Error`] when the account cannot be loaded or the CA not reached.
    pub async fn renewal_info(&self, ca: &str, ari_id: &str) -> Result<RenewalInfo, Error> {
        let account = self.account(ca).await?;
        let result = ari::renewal_info(&account, ca, ari_id).await;
        if let Err(e) = &result {
            self.forget_if_unreachable(ca, e).await;
        }
        result
    }

    /// Revokes the certificate `der` at CA `ca`, which issued it.
    ///
    /// # Errors
    ///
    /// [`Error`] when the account cannot be loaded or the CA refuses.
    pub async fn revoke(
        &self,
        ca: &str,
        der: &[u8],
        reason: Option<RevocationReason>,
    ) -> Result<(), Error> {
        let account = self.account(ca).await?;
        ari::revoke(&account, ca, der, reason).await
    }

    /// Whether the CRL of `lineage`'s issuer lists it: `None` when it names no
    /// CRL or the CRL cannot tell (logged).
    pub async fn crl_revoked(&self, name: &str, lineage: &Lineage) -> Option<bool> {
        let chain = std::fs::read(lineage.dir.join("chain.pem")).ok()?;
        let issuer = rustls_pki_types::CertificateDer::pem_slice_iter(&chain)
            .next()?
            .ok()?;
        match crate::crl::is_revoked(&lineage.cert.der, &issuer).await {
            Ok(listed) => listed,
            Err(e) => {
                warn!(cert_name = name, "CRL check failed: {e}");
                None
            }
        }
    }

    /// The URL of an order CA `ca` created since `since` for exactly
    /// `domains`, though the ACME library refused the answer (see
    /// `http::CreatedOrders`).
    #[must_use]
    pub fn created_order(
        &self,
        ca: &str,
        since: OffsetDateTime,
        domains: &[String],
    ) -> Option<String> {
        self.created.take(ca, since, domains)
    }

    /// Whether this is the first quirk seen of CA `ca` (to log it once).
    pub(super) fn first_quirk(&self, ca: &str) -> bool {
        self.quirky
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ca.to_owned())
    }

    /// The time CA `ca` named in a `Retry-After` (with a 429 or 503) received
    /// since `since`, if any.
    #[must_use]
    pub fn retry_after(&self, ca: &str, since: OffsetDateTime) -> Option<OffsetDateTime> {
        self.notes.since(ca, since)
    }
}
