//! `renewd import-certbot`: take over what certbot manages (`/etc/letsencrypt`).
//!
//! For each `renewal/<name>.conf` (`conf`) the lineage's certificates — its
//! archive history and the version `live/` points at — become versions of
//! renewd's lineage of the same name (`lineage`), unless renewd's live
//! certificate is at least as new. certbot's ACME account at each CA becomes
//! renewd's account there (`account`, [`crate::acme::adopt`]), so nothing is
//! registered anew. And a config is suggested (`suggest`): CAs and solvers
//! the existing config lacks, one `[[certificate]]` per lineage with certbot's
//! challenge and hooks as reload targets.
//!
//! certbot's files are only read; renewd's config is left to the operator. An
//! RSA account key is the exception to "nothing of certbot's changes": it is
//! rolled over at the CA, which certbot then no longer can use.

mod account;
mod conf;
mod lineage;
mod suggest;

use std::path::{Path, PathBuf};

pub use lineage::Published;

use crate::acme::{self, Adopted};
use crate::config::Config;
use crate::store::Store;

/// The command that stops certbot's own renewals (Debian's package and
/// certbot's snap both run them from `certbot.timer`).
pub const DISABLE_CERTBOT: &str = "systemctl disable --now certbot.timer";

/// Something of certbot's that could not be taken over.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct Error {
    /// certbot's file it is about (a renewal conf, an account directory).
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// One imported lineage.
#[derive(Debug)]
pub struct Imported {
    /// Lineage name.
    pub name: String,
    /// What became of its certificates.
    pub published: Published,
}

/// What an import did and suggests.
#[derive(Debug)]
pub struct Report {
    /// Each lineage, in name order.
    pub lineages: Vec<Result<Imported, Error>>,
    /// What became of certbot's accounts, one line each (errors separately).
    pub accounts: Vec<Result<String, Error>>,
    /// TOML to add to the config.
    pub config: String,
    /// What the operator must know or do beyond adding the TOML.
    pub notes: Vec<String>,
}

/// Imports everything under `dir` (certbot's config dir) into `store`, which
/// the caller has locked, and suggests how `config` takes it over.
pub async fn import(dir: &Path, config: &Config, store: &Store) -> Report {
    let renewal = dir.join("renewal");
    let confs = renewal_confs(&renewal);
    let mut suggestion = suggest::Suggestion::new(config, global_hooks(dir));
    let mut lineages = Vec::new();
    // (CA name, certbot's server, certbot's account id) of each lineage.
    let mut used = Vec::new();
    if confs.is_empty() {
        lineages.push(Err(Error {
            path: renewal,
            message: "no certbot renewal configs (*.conf) found".to_owned(),
        }));
    }
    for (name, path) in confs {
        let fail = |message: String| Error {
            path: path.clone(),
            message,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                lineages.push(Err(fail(e.to_string())));
                continue;
            }
        };
        let conf = conf::parse(&text);
        match lineage::import(&name, &conf, dir, store) {
            Ok((info, published)) => {
                let ca = suggestion.ca_for(conf.server());
                suggestion.certificate(&name, &conf, &info, &ca);
                if let Some(id) = &conf.params.account {
                    used.push((ca, conf.server().to_owned(), id.clone()));
                }
                lineages.push(Ok(Imported { name, published }));
            }
            Err(message) => lineages.push(Err(fail(message))),
        }
    }
    let accounts = adopt_accounts(dir, store, &suggestion, &used).await;
    let mut notes = suggestion.notes().to_vec();
    notes.push(format!(
        "certbot still renews these certificates on its own: stop it before renewd takes \
         over, with `{DISABLE_CERTBOT}` (and remove any cron job that runs `certbot renew`)"
    ));
    Report {
        lineages,
        accounts,
        config: suggestion.toml(dir),
        notes,
    }
}

/// `(name, path)` of each `*.conf` under `renewal`, by name.
fn renewal_confs(renewal: &Path) -> Vec<(String, PathBuf)> {
    let mut confs: Vec<(String, PathBuf)> = std::fs::read_dir(renewal)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .filter_map(|p| Some((p.file_stem()?.to_str()?.to_owned(), p.clone())))
                .collect()
        })
        .unwrap_or_default();
    confs.sort();
    confs
}

/// The executable files of `renewal-hooks/deploy/` and `renewal-hooks/post/`,
/// each directory in name order as certbot runs them.
fn global_hooks(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut hooks = Vec::new();
    for kind in ["deploy", "post"] {
        let Ok(entries) = std::fs::read_dir(dir.join("renewal-hooks").join(kind)) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .collect();
        found.sort();
        hooks.extend(found);
    }
    hooks
}

/// Makes certbot's account renewd's at each CA the lineages use (the first
/// lineage's account when they use several), unless renewd has one there.
async fn adopt_accounts(
    dir: &Path,
    store: &Store,
    suggestion: &suggest::Suggestion<'_>,
    used: &[(String, String, String)],
) -> Vec<Result<String, Error>> {
    let mut lines = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for (ca, server, id) in used {
        if done.contains(&ca.as_str()) {
            continue;
        }
        done.push(ca);
        let Some(ca_config) = suggestion.ca_config(ca) else {
            continue;
        };
        if let Some(url) = acme::stored_account_url(store, ca, &ca_config.directory) {
            lines.push(Ok(format!("CA {ca}: renewd's account {url} is kept")));
            continue;
        }
        let account = match account::read(dir, server, id) {
            Ok(account) => account,
            Err(message) => {
                lines.push(Err(Error {
                    path: account::server_dir(dir, server).join(id),
                    message,
                }));
                continue;
            }
        };
        let line = match acme::adopt(store, ca, &ca_config, &account.url, account.key).await {
            Ok(Adopted::AsIs) => Ok(format!(
                "CA {ca}: certbot's account {} adopted",
                account.url
            )),
            Ok(Adopted::RolledOver) => Ok(format!(
                "CA {ca}: certbot's account {} adopted; its RSA key was rolled over to a new \
                 ECDSA P-256 key at the CA, so certbot can no longer use this account",
                account.url
            )),
            Err(e) => Err(Error {
                path: account.dir,
                message: e.to_string(),
            }),
        };
        lines.push(line);
    }
    lines
}

/// The config suggested for one lineage named `name` with the certificate's
/// `domains` and certbot's renewal conf `conf_text`, against an empty config.
#[cfg(any(test, fuzzing))]
fn suggested_toml(name: &str, domains: Vec<String>, conf_text: &str) -> Option<String> {
    let conf = conf::parse(conf_text);
    let config = Config::from_str("", Path::new("/etc/renewd/renewd.toml")).ok()?;
    let info = crate::store::CertInfo {
        serial: "01".to_owned(),
        not_before: time::OffsetDateTime::UNIX_EPOCH,
        not_after: time::OffsetDateTime::UNIX_EPOCH,
        domains,
        key_type: None,
        ari_id: None,
        spki_der: Vec::new(),
        der: Vec::new(),
    };
    let mut suggestion = suggest::Suggestion::new(&config, Vec::new());
    let ca = suggestion.ca_for(conf.server());
    suggestion.certificate(name, &conf, &info, &ca);
    Some(suggestion.toml(Path::new("/etc/letsencrypt")))
}

/// The `certbot_renewal` fuzz target: the first line is the lineage name, the
/// second the certificate's domains, the rest the renewal conf. The suggested
/// TOML must always parse and name that certificate.
#[cfg(fuzzing)]
pub(crate) fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (name, domains, conf) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let domains = domains.split(',').map(str::to_owned).collect();
    let Some(toml) = suggested_toml(name, domains, conf) else {
        return;
    };
    let table: toml::Table = toml::from_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let certificate = &table["certificate"][0];
    assert_eq!(certificate["name"].as_str(), Some(name), "{toml}");
}

#[cfg(test)]
mod fuzzed {
    /// Control characters in names, domains and certbot's values once made
    /// the suggestion unparsable TOML (the `certbot_renewal` fuzz target
    /// checks that it always parses).
    #[test]
    fn the_suggestion_is_valid_toml_whatever_the_names_hold() {
        let conf = "[renewalparams]\nauthenticator = webroot\nserver = https://ca\u{1}/dir\n\
                    deploy_hook = echo \u{7}\n[[webroot_map]]\na\u{1b}.example = /var/\u{7f}www\n";
        let domains = vec!["a\u{1b}.example".to_owned(), "b\"\\.example".to_owned()];
        let toml = super::suggested_toml("a\u{1b}\"b", domains, conf).unwrap();
        let table: toml::Table = toml::from_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(table["certificate"][0]["name"].as_str(), Some("a\u{1b}\"b"));
    }
}
