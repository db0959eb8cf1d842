//! certbot's ACME accounts: `accounts/<server host><server path>/<id>/` holding
//! `regr.json` (`uri`: the account URL), `private_key.json` (the key as a JWK)
//! and `meta.json`.

use std::path::{Path, PathBuf};

use crate::acme::ForeignKey;

/// A certbot account, read.
pub(super) struct CertbotAccount {
    /// Its directory.
    pub dir: PathBuf,
    /// The account URL (the `kid` of its requests).
    pub url: String,
    /// Its private key.
    pub key: ForeignKey,
}

/// Where certbot keeps the accounts for `server`: its host and path, as certbot
/// spells them (`acme-v02.api.letsencrypt.org/directory`).
pub(super) fn server_dir(dir: &Path, server: &str) -> PathBuf {
    let without_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
    dir.join("accounts").join(without_scheme)
}

/// Reads account `id` of `server` under certbot's config dir `dir`.
pub(super) fn read(dir: &Path, server: &str, id: &str) -> Result<CertbotAccount, String> {
    let account_dir = server_dir(dir, server).join(id);
    let json = |file: &str| -> Result<serde_json::Value, String> {
        let path = account_dir.join(file);
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let url = json("regr.json")?["uri"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: no \"uri\"", account_dir.join("regr.json").display()))?;
    let key = ForeignKey::from_jwk(&json("private_key.json")?)
        .map_err(|e| format!("{}: {e}", account_dir.join("private_key.json").display()))?;
    Ok(CertbotAccount {
        dir: account_dir,
        url,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_kept_by_server_host_and_path() {
        assert_eq!(
            server_dir(
                Path::new("/etc/letsencrypt"),
                "https://acme-v02.api.letsencrypt.org/directory"
            ),
            Path::new("/etc/letsencrypt/accounts/acme-v02.api.letsencrypt.org/directory")
        );
        assert_eq!(
            server_dir(Path::new("/le"), "https://127.0.0.1:14000/dir"),
            Path::new("/le/accounts/127.0.0.1:14000/dir")
        );
    }
}
