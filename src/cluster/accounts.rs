//! The fleet's ACME accounts: one per CA for every node, in
//! `accounts/<ca>` — the node's `account.json`, sealed (it holds the
//! account's private key). The first node to store one wins, in a
//! transaction that succeeds only when the key does not exist; the others
//! adopt it, and each node's file is its copy. No lease: an account outlives
//! the node that registered it. When the CA's directory URL changes, the
//! first node to register at the new one replaces the stored account (a
//! transaction on its revision, so only one node does), and the others adopt
//! that.

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use tracing::{info, warn};

use super::{Cluster, Error};
use crate::acme::{SharedAccounts, same_directory};

/// What the sealed value of `accounts/<ca>` is bound to: it opens only there.
fn context(ca: &str) -> String {
    format!("account {ca}")
}

impl Cluster {
    async fn read_account(&self, ca: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut client = self.client()?;
        let response = client
            .get(self.key(&format!("accounts/{ca}")), None)
            .await?;
        response
            .kvs()
            .first()
            .map(|kv| self.open_account(ca, kv.value()))
            .transpose()
    }

    async fn put_first_account(&self, ca: &str, account: &[u8]) -> Result<Vec<u8>, Error> {
        let key = self.key(&format!("accounts/{ca}"));
        let sealed = self.sealer.seal(&context(ca), account)?;
        let mut client = self.client()?;
        let absent = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
        let (stored, revision) = match self.put_when(&mut client, absent, &key, &sealed).await? {
            None => return Ok(account.to_vec()),
            Some(theirs) => theirs,
        };
        let theirs = self.open_account(ca, &stored)?;
        if same_directory(&theirs, account) {
            return Ok(theirs);
        }
        // An account at the CA's old directory: replaced, unless another
        // node replaced it first.
        let unchanged = Compare::mod_revision(key.clone(), CompareOp::Equal, revision);
        match self.put_when(&mut client, unchanged, &key, &sealed).await? {
            None => {
                info!(
                    ca,
                    "replaced the fleet's ACME account at the CA's old directory"
                );
                Ok(account.to_vec())
            }
            Some((stored, _)) => self.open_account(ca, &stored),
        }
    }

    /// Puts `sealed` under `key` if `compare` holds; else what is there and
    /// its revision.
    async fn put_when(
        &self,
        client: &mut etcd_client::Client,
        compare: Compare,
        key: &str,
        sealed: &str,
    ) -> Result<Option<(Vec<u8>, i64)>, Error> {
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, sealed, None)])
            .or_else([TxnOp::get(key, None)]);
        let response = client.txn(txn).await?;
        if response.succeeded() {
            return Ok(None);
        }
        let theirs = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
            _ => None,
        });
        theirs.map(Some).ok_or_else(|| Error::Corrupt {
            key: key.to_owned(),
            why: "neither written nor there".to_owned(),
        })
    }

    fn open_account(&self, ca: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let corrupt = |why: String| Error::Corrupt {
            key: self.key(&format!("accounts/{ca}")),
            why,
        };
        let sealed = std::str::from_utf8(sealed).map_err(|e| corrupt(e.to_string()))?;
        self.sealer.open(&context(ca), sealed)
    }
}

impl SharedAccounts for Cluster {
    fn get<'a>(
        &'a self,
        ca: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'a>> {
        Box::pin(async move {
            self.read_account(ca)
                .await
                .inspect_err(|e| warn!(ca, "cannot read the fleet's ACME account: {e}"))
                .ok()
                .flatten()
        })
    }

    fn put_first<'a>(
        &'a self,
        ca: &'a str,
        account: &'a [u8],
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'a>> {
        Box::pin(async move {
            self.put_first_account(ca, account)
                .await
                .inspect_err(|e| warn!(ca, "cannot store the fleet's ACME account: {e}"))
                .ok()
        })
    }
}
