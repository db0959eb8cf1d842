//! `renewd import-certbot`: adopt certbot's lineages (`/etc/letsencrypt`).
//!
//! For each `renewal/<name>.conf`, the certificate and key it points at are
//! checked (they must parse and match) and stored as a new version of the
//! lineage of the same name, and a `[[certificate]]` entry is suggested for
//! renewd.toml with what certbot knew: domains, key type, authenticator, CA.
//! Nothing of certbot's is changed, and renewd's config is left to the operator.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::KeyType;
use crate::store::{CertInfo, Issued, Store};

/// A lineage that could not be imported.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", conf.display())]
pub struct Error {
    /// certbot's renewal config for the lineage.
    pub conf: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// One imported lineage.
#[derive(Debug)]
pub struct Imported {
    /// Lineage name.
    pub name: String,
    /// Archive version it became in renewd's store.
    pub version: u32,
    /// Suggested `[[certificate]]` TOML.
    pub toml: String,
}

/// certbot's renewal conf: `key = value` lines, `[renewalparams]` and
/// `[[webroot_map]]` sections (configobj syntax, which this reads loosely).
#[derive(Debug, Default)]
struct RenewalConf {
    cert: Option<PathBuf>,
    privkey: Option<PathBuf>,
    chain: Option<PathBuf>,
    fullchain: Option<PathBuf>,
    authenticator: Option<String>,
    server: Option<String>,
    webroot: Option<String>,
}

fn parse(text: &str) -> RenewalConf {
    let mut conf = RenewalConf::default();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().to_owned());
        match (section.as_str(), key) {
            ("", "cert") => conf.cert = Some(value.into()),
            ("", "privkey") => conf.privkey = Some(value.into()),
            ("", "chain") => conf.chain = Some(value.into()),
            ("", "fullchain") => conf.fullchain = Some(value.into()),
            ("renewalparams", "authenticator") => conf.authenticator = Some(value),
            ("renewalparams", "server") => conf.server = Some(value),
            ("webroot_map", _) => conf.webroot = conf.webroot.or(Some(value)),
            _ => {}
        }
    }
    conf
}

/// Imports every lineage under `dir` (certbot's config dir) into `store`, which
/// the caller has locked.
///
/// # Errors
///
/// Per lineage, an [`Error`] naming its renewal conf; the others are still imported.
pub fn import(dir: &Path, store: &Store) -> Vec<Result<Imported, Error>> {
    let renewal = dir.join("renewal");
    let mut confs: Vec<PathBuf> = std::fs::read_dir(&renewal)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect()
        })
        .unwrap_or_default();
    confs.sort();
    if confs.is_empty() {
        return vec![Err(Error {
            conf: renewal,
            message: "no certbot renewal configs (*.conf) found".to_owned(),
        })];
    }
    confs.iter().map(|conf| import_one(conf, store)).collect()
}

fn import_one(conf_path: &Path, store: &Store) -> Result<Imported, Error> {
    let fail = |message: String| Error {
        conf: conf_path.to_owned(),
        message,
    };
    let name = conf_path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| fail("unusable file name".to_owned()))?
        .to_owned();
    let text = std::fs::read_to_string(conf_path).map_err(|e| fail(e.to_string()))?;
    let conf = parse(&text);
    let read = |path: &Option<PathBuf>, what: &str| -> Result<String, Error> {
        let path = path
            .as_ref()
            .ok_or_else(|| fail(format!("no `{what}` line")))?;
        std::fs::read_to_string(path).map_err(|e| fail(format!("{what} {}: {e}", path.display())))
    };
    let cert_pem = read(&conf.cert, "cert")?;
    let key_pem = read(&conf.privkey, "privkey")?;
    let fullchain_pem = read(&conf.fullchain, "fullchain")?;
    let chain_pem = read(&conf.chain, "chain")?;
    let info = CertInfo::from_pem(cert_pem.as_bytes()).map_err(|e| fail(format!("cert: {e}")))?;
    if !info.matches_key(&key_pem) {
        return Err(fail(
            "privkey does not belong to cert; not imported".to_owned(),
        ));
    }
    let issued = Issued {
        cert_pem,
        chain_pem,
        fullchain_pem,
        key_pem,
    };
    let version = store
        .publish(&name, &issued)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Imported {
        toml: suggestion(&name, &info, &conf),
        name,
        version,
    })
}

fn suggestion(name: &str, info: &CertInfo, conf: &RenewalConf) -> String {
    let mut toml = String::new();
    let domains: Vec<String> = info.domains.iter().map(|d| quoted(d)).collect();
    let _ = writeln!(
        toml,
        "[[certificate]]\nname = {}\ndomains = [{}]",
        quoted(name),
        domains.join(", ")
    );
    if let Some(key) = info.key_type.filter(|k| *k != KeyType::default()) {
        let _ = writeln!(toml, "key = \"{key}\"");
    }
    if let Some(server) = &conf.server {
        let _ = writeln!(toml, "# certbot used CA {}", plain(server));
    }
    match (conf.authenticator.as_deref(), &conf.webroot) {
        (Some("webroot"), Some(root)) => {
            let _ = writeln!(
                toml,
                "# certbot validated through webroot {} (an http-01 solver with webroot = {})",
                plain(root),
                quoted(root)
            );
        }
        (Some(other), _) => {
            let _ = writeln!(toml, "# certbot's authenticator was {}", plain(other));
        }
        _ => {}
    }
    toml
}

/// `text` fit for a TOML comment, which may hold no control character.
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// `text` as a TOML string. Rust's `{:?}` is not TOML: it writes a control
/// character as `\u{1b}`, which TOML refuses, and what certbot's files and
/// the certificate say is outside data.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
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
    let conf = parse(conf);
    let info = CertInfo {
        serial: "01".to_owned(),
        not_before: time::OffsetDateTime::UNIX_EPOCH,
        not_after: time::OffsetDateTime::UNIX_EPOCH,
        domains: domains.split(',').map(str::to_owned).collect(),
        key_type: None,
        ari_id: None,
        spki_der: Vec::new(),
        der: Vec::new(),
    };
    let toml = suggestion(name, &info, &conf);
    let table: toml::Table = toml::from_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let certificate = &table["certificate"][0];
    assert_eq!(certificate["name"].as_str(), Some(name), "{toml}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_certbot_writes() {
        let conf = parse(
            "# renew_before_expiry = 30 days\nversion = 2.1.0\narchive_dir = /etc/letsencrypt/archive/x\n\
             cert = /etc/letsencrypt/live/x/cert.pem\nprivkey = /etc/letsencrypt/live/x/privkey.pem\n\n\
             [renewalparams]\naccount = abc\nauthenticator = webroot\n\
             server = https://acme-v02.api.letsencrypt.org/directory\n[[webroot_map]]\nx.example = /var/www/html\n",
        );
        assert_eq!(
            conf.cert.unwrap(),
            Path::new("/etc/letsencrypt/live/x/cert.pem")
        );
        assert_eq!(conf.authenticator.as_deref(), Some("webroot"));
        assert_eq!(conf.webroot.as_deref(), Some("/var/www/html"));
        assert_eq!(
            conf.server.as_deref(),
            Some("https://acme-v02.api.letsencrypt.org/directory")
        );
    }

    /// A name or domain with a control character made `{:?}` write `\u{1b}`,
    /// and a control character in a comment is not TOML either: the suggested
    /// TOML did not parse (the `certbot_renewal` fuzz target checks that it does).
    #[test]
    fn the_suggestion_is_valid_toml_whatever_the_names_hold() {
        let conf = parse(
            "[renewalparams]\nauthenticator = webroot\nserver = https://ca\u{1}/dir\n\
             [[webroot_map]]\nx = /var/\u{7f}www\n",
        );
        let info = CertInfo {
            serial: "01".to_owned(),
            not_before: time::OffsetDateTime::UNIX_EPOCH,
            not_after: time::OffsetDateTime::UNIX_EPOCH,
            domains: vec!["a\u{1b}.example".to_owned(), "b\"\\.example".to_owned()],
            key_type: None,
            ari_id: None,
            spki_der: Vec::new(),
            der: Vec::new(),
        };
        let toml = suggestion("x\u{1}y", &info, &conf);
        let table: toml::Table = toml::from_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let certificate = &table["certificate"][0];
        assert_eq!(certificate["name"].as_str(), Some("x\u{1}y"));
        assert_eq!(
            certificate["domains"][0].as_str(),
            Some("a\u{1b}.example"),
            "{toml}"
        );
    }
}
