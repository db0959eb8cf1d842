//! certbot's `renewal/<name>.conf`: what a lineage is made of and how certbot
//! renews it. The files are in configobj syntax: `key = value` lines, a
//! `[renewalparams]` section with a `[[webroot_map]]` subsection, values
//! optionally quoted, a trailing comma making a one-element list.

use std::path::{Path, PathBuf};

/// certbot's default CA, used when a conf names none.
pub(super) const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The parts of a renewal conf that renewd can use.
#[derive(Debug, Default, Clone)]
pub(super) struct RenewalConf {
    /// `cert`, `privkey`, `chain`, `fullchain`: paths under `live/<name>/`.
    pub cert: Option<PathBuf>,
    pub privkey: Option<PathBuf>,
    pub chain: Option<PathBuf>,
    pub fullchain: Option<PathBuf>,
    /// `[renewalparams]`.
    pub params: Params,
}

/// `[renewalparams]`.
#[derive(Debug, Default, Clone)]
pub(super) struct Params {
    /// certbot's config dir when the lineage was made (paths above start with it).
    pub config_dir: Option<PathBuf>,
    /// Account id: `accounts/<server host and path>/<account>/`.
    pub account: Option<String>,
    /// ACME directory URL.
    pub server: Option<String>,
    /// `standalone`, `webroot`, `nginx`, `manual`, `dns-*`, ...
    pub authenticator: Option<String>,
    /// Port the standalone authenticator bound (`--http-01-port`, default 80).
    pub http01_port: Option<u16>,
    /// Address it bound (`--http-01-address`, default all).
    pub http01_address: Option<String>,
    /// `--webroot-path`, the default webroot of domains not in `webroot_map`.
    pub webroot_path: Vec<String>,
    /// `[[webroot_map]]`: domain = webroot.
    pub webroot_map: Vec<(String, String)>,
    /// `--deploy-hook` (certbot's name for it is `renew_hook`).
    pub deploy_hook: Option<String>,
    /// `--post-hook`.
    pub post_hook: Option<String>,
    /// `--pre-hook`.
    pub pre_hook: Option<String>,
    /// `--reuse-key`.
    pub reuse_key: bool,
}

impl RenewalConf {
    /// The CA's directory URL (certbot's default when none is named).
    pub fn server(&self) -> &str {
        self.params.server.as_deref().unwrap_or(LETSENCRYPT)
    }

    /// The webroot for `domain`: its `webroot_map` entry, else the first
    /// `webroot_path`.
    pub fn webroot_for(&self, domain: &str) -> Option<&str> {
        self.params
            .webroot_map
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map(|(_, root)| root.as_str())
            .or_else(|| self.params.webroot_path.first().map(String::as_str))
    }

    /// `path` moved from the config dir certbot wrote it for to `dir`, where it
    /// is being read now (a copy of `/etc/letsencrypt` elsewhere).
    pub fn rebase(&self, path: &Path, dir: &Path) -> PathBuf {
        let from = self
            .params
            .config_dir
            .as_deref()
            .unwrap_or(Path::new("/etc/letsencrypt"));
        match path.strip_prefix(from) {
            Ok(rest) if from != dir => dir.join(rest),
            _ => path.to_owned(),
        }
    }
}

/// Parses a renewal conf; unknown keys are ignored (certbot has many).
pub(super) fn parse(text: &str) -> RenewalConf {
    let mut conf = RenewalConf::default();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let values = values(value);
        let first = values.first().cloned().unwrap_or_default();
        let p = &mut conf.params;
        match (section.as_str(), key) {
            ("", "cert") => conf.cert = Some(first.into()),
            ("", "privkey") => conf.privkey = Some(first.into()),
            ("", "chain") => conf.chain = Some(first.into()),
            ("", "fullchain") => conf.fullchain = Some(first.into()),
            ("renewalparams", "config_dir") => p.config_dir = Some(first.into()),
            ("renewalparams", "account") => p.account = Some(first),
            ("renewalparams", "server") => p.server = Some(first),
            ("renewalparams", "authenticator") => p.authenticator = Some(first),
            ("renewalparams", "http01_port") => p.http01_port = first.parse().ok(),
            ("renewalparams", "http01_address") => p.http01_address = Some(first),
            ("renewalparams", "webroot_path") => p.webroot_path = values,
            ("renewalparams", "renew_hook") => p.deploy_hook = Some(first),
            ("renewalparams", "post_hook") => p.post_hook = Some(first),
            ("renewalparams", "pre_hook") => p.pre_hook = Some(first),
            ("renewalparams", "reuse_key") => p.reuse_key = first == "True",
            ("webroot_map", domain) => p.webroot_map.push((domain.to_owned(), first)),
            _ => {}
        }
    }
    conf
}

/// A configobj value: a comma-separated list (a trailing comma makes a list of
/// one), each item optionally quoted; an unquoted item ends at ` #` (a
/// comment).
fn values(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    for quote in ["\"\"\"", "'''"] {
        if let Some(inner) = raw.strip_prefix(quote).and_then(|r| r.strip_suffix(quote)) {
            return vec![inner.to_owned()];
        }
    }
    let mut items = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let (item, after) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => match rest[1..].find(q) {
                Some(end) => (rest[1..=end].to_owned(), &rest[end + 2..]),
                None => (rest.to_owned(), ""),
            },
            _ => {
                let end = rest.find(',').unwrap_or(rest.len());
                let item = rest[..end].split(" #").next().unwrap_or_default();
                (item.trim().to_owned(), &rest[end..])
            }
        };
        items.push(item);
        let after = after.trim_start();
        if after.starts_with('#') {
            break;
        }
        rest = after.strip_prefix(',').unwrap_or(after).trim_start();
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What certbot 2.1 wrote for `certonly --webroot` and `--standalone` runs.
    const WEBROOT: &str = "# renew_before_expiry = 30 days\nversion = 2.1.0\n\
        archive_dir = /etc/letsencrypt/archive/b.example.com\n\
        cert = /etc/letsencrypt/live/b.example.com/cert.pem\n\
        privkey = /etc/letsencrypt/live/b.example.com/privkey.pem\n\
        chain = /etc/letsencrypt/live/b.example.com/chain.pem\n\
        fullchain = /etc/letsencrypt/live/b.example.com/fullchain.pem\n\n\
        # Options used in the renewal process\n[renewalparams]\n\
        account = 19804fb96771d329ec9e11a93ff42818\nkey_type = rsa\n\
        config_dir = /etc/letsencrypt\nserver = https://127.0.0.1:24000/dir\n\
        authenticator = webroot\nwebroot_path = /srv/www,\n\
        [[webroot_map]]\nb.example.com = /srv/www\nwww.b.example.com = /srv/other\n";

    const STANDALONE: &str = "[renewalparams]\naccount = abc\nhttp01_port = 24004\n\
        renew_hook = \"systemctl reload nginx, then more\"\npost_hook = touch /x # done\n\
        authenticator = standalone\nreuse_key = True\n";

    #[test]
    fn reads_a_webroot_lineage() {
        let conf = parse(WEBROOT);
        assert_eq!(
            conf.cert.as_deref(),
            Some(Path::new("/etc/letsencrypt/live/b.example.com/cert.pem"))
        );
        assert_eq!(conf.params.authenticator.as_deref(), Some("webroot"));
        assert_eq!(conf.server(), "https://127.0.0.1:24000/dir");
        assert_eq!(
            conf.params.account.as_deref(),
            Some("19804fb96771d329ec9e11a93ff42818")
        );
        assert_eq!(conf.params.webroot_path, ["/srv/www"]);
        assert_eq!(conf.webroot_for("WWW.b.example.com"), Some("/srv/other"));
        assert_eq!(conf.webroot_for("unmapped.example.com"), Some("/srv/www"));
        assert!(!conf.params.reuse_key);
    }

    #[test]
    fn reads_standalone_hooks_and_quoting() {
        let conf = parse(STANDALONE);
        assert_eq!(conf.params.http01_port, Some(24004));
        assert_eq!(
            conf.params.deploy_hook.as_deref(),
            Some("systemctl reload nginx, then more")
        );
        assert_eq!(conf.params.post_hook.as_deref(), Some("touch /x"));
        assert!(conf.params.reuse_key);
        assert_eq!(conf.server(), LETSENCRYPT);
    }

    #[test]
    fn paths_follow_a_moved_config_dir() {
        let conf = parse(WEBROOT);
        let cert = conf.cert.clone().unwrap();
        assert_eq!(
            conf.rebase(&cert, Path::new("/backup/le")),
            Path::new("/backup/le/live/b.example.com/cert.pem")
        );
        assert_eq!(conf.rebase(&cert, Path::new("/etc/letsencrypt")), cert);
    }

    #[test]
    fn configobj_lists() {
        assert_eq!(values("a, 'b, c',\"d\" # x"), ["a", "b, c", "d"]);
        assert_eq!(values("/srv/www,"), ["/srv/www"]);
        assert_eq!(values("'''it's'''"), ["it's"]);
    }
}
