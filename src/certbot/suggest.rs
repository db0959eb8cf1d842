//! The renewd config that takes over certbot's lineages: `[ca.NAME]` and
//! `[solver.NAME]` tables for what the existing config lacks, and one
//! `[[certificate]]` per lineage with certbot's CA, challenge and hooks. The
//! text is meant to pass `renewd check-config` as it is, as a drop-in or
//! appended to the config it was made for.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::conf::RenewalConf;
use crate::config::{CaConfig, Config, KeyType, SolverConfig};
use crate::store::CertInfo;

/// The suggestion being built, lineage by lineage.
pub(super) struct Suggestion<'a> {
    config: &'a Config,
    /// Executable scripts of `renewal-hooks/deploy/` then `renewal-hooks/post/`.
    global_hooks: Vec<PathBuf>,
    /// `(directory, name)` of each CA proposed here.
    new_cas: Vec<(String, String)>,
    /// Each solver proposed here.
    new_solvers: Vec<(String, SolverConfig)>,
    certificates: String,
    notes: Vec<String>,
}

impl<'a> Suggestion<'a> {
    /// A suggestion to add to `config`; `global_hooks` run for every certificate.
    pub fn new(config: &'a Config, global_hooks: Vec<PathBuf>) -> Self {
        Self {
            config,
            global_hooks,
            new_cas: Vec::new(),
            new_solvers: Vec::new(),
            certificates: String::new(),
            notes: Vec::new(),
        }
    }

    /// The name of the CA at `directory`: a configured one, else one proposed.
    pub fn ca_for(&mut self, directory: &str) -> String {
        let same = |d: &str| d.trim_end_matches('/') == directory.trim_end_matches('/');
        if let Some((name, _)) = self.config.cas.iter().find(|(_, ca)| same(&ca.directory)) {
            return name.clone();
        }
        if let Some((_, name)) = self.new_cas.iter().find(|(d, _)| same(d)) {
            return name.clone();
        }
        let base = match directory {
            super::conf::LETSENCRYPT => "letsencrypt",
            d if d.contains("acme-staging-v02.api.letsencrypt.org") => "letsencrypt-staging",
            _ => "certbot",
        };
        let name = self.unused(base, |s, n| {
            s.config.cas.contains_key(n) || s.new_cas.iter().any(|(_, c)| c == n)
        });
        self.new_cas.push((directory.to_owned(), name.clone()));
        name
    }

    /// The settings of CA `name` ([`Suggestion::ca_for`]): configured, or what
    /// is proposed (the directory alone).
    pub fn ca_config(&self, name: &str) -> Option<CaConfig> {
        if let Some(ca) = self.config.cas.get(name) {
            return Some(ca.clone());
        }
        let (directory, _) = self.new_cas.iter().find(|(_, n)| n == name)?;
        Some(CaConfig {
            directory: directory.clone(),
            staging: None,
            contact: Vec::new(),
            profile: None,
            trust: None,
            eab_kid: None,
            eab_hmac_key_file: None,
        })
    }

    /// Adds lineage `name` (its leaf `info`) at CA `ca`.
    pub fn certificate(&mut self, name: &str, conf: &RenewalConf, info: &CertInfo, ca: &str) {
        if self.config.certificate(name).is_some() {
            self.notes.push(format!(
                "{name}: already configured; its entry in {} is kept",
                self.config.path.display()
            ));
            return;
        }
        let solvers = self.solvers(name, conf, info);
        let reload = self.reload(conf);
        let t = &mut self.certificates;
        let _ = writeln!(t, "\n[[certificate]]\nname = {}", quote(name));
        let _ = writeln!(t, "domains = {}", list(&info.domains));
        let _ = writeln!(t, "ca = {}", list(&[ca.to_owned()]));
        if !solvers.is_empty() {
            let _ = writeln!(t, "solvers = {}", list(&solvers));
        }
        if let Some(key) = info.key_type.filter(|k| *k != KeyType::default()) {
            let _ = writeln!(t, "key = \"{key}\"");
        }
        if conf.params.reuse_key {
            t.push_str("reuse_key = true\n");
        }
        if !reload.is_empty() {
            t.push_str("reload = [\n");
            for (argv, why) in reload {
                let _ = writeln!(t, "  {{ exec = {} }},  # {why}", list(&argv));
            }
            t.push_str("]\n");
        }
        if let Some(pre) = &conf.params.pre_hook {
            self.notes.push(format!(
                "{name}: certbot's pre-hook `{pre}` has no renewd equivalent and is not imported"
            ));
        }
    }

    /// Solver names for a lineage, proposing solvers the config lacks.
    fn solvers(&mut self, name: &str, conf: &RenewalConf, info: &CertInfo) -> Vec<String> {
        let wanted: Vec<SolverConfig> = match conf.params.authenticator.as_deref() {
            Some("standalone") => vec![SolverConfig::Http01Standalone(standalone_listen(conf))],
            Some("webroot") => {
                let mut roots: Vec<SolverConfig> = Vec::new();
                for domain in &info.domains {
                    match conf.webroot_for(domain) {
                        Some(root) => {
                            let solver = SolverConfig::Http01Webroot(root.into());
                            if !roots.contains(&solver) {
                                roots.push(solver);
                            }
                        }
                        None => self
                            .notes
                            .push(format!("{name}: {domain} has no webroot in certbot's conf")),
                    }
                }
                if roots.len() > 1 {
                    self.notes.push(format!(
                        "{name}: its domains use {} webroots; renewd answers all of an order's \
                         challenges with one solver, so every domain must be served from the \
                         first webroot that works",
                        roots.len()
                    ));
                }
                roots
            }
            other => {
                self.notes.push(format!(
                    "{name}: certbot's authenticator {} has no renewd equivalent; add a solver \
                     and list it in the certificate's `solvers`",
                    other.unwrap_or("(none)")
                ));
                Vec::new()
            }
        };
        wanted.into_iter().map(|s| self.solver_name(s)).collect()
    }

    /// The name of a solver with exactly these settings, proposing one if needed.
    fn solver_name(&mut self, solver: SolverConfig) -> String {
        let found = self
            .config
            .solvers
            .iter()
            .find(|(_, s)| **s == solver)
            .or_else(|| {
                self.new_solvers
                    .iter()
                    .find(|(_, s)| *s == solver)
                    .map(|(n, s)| (n, s))
            });
        if let Some((name, _)) = found {
            return name.clone();
        }
        let base = match &solver {
            SolverConfig::Http01Standalone(addr) if addr.port() == 80 => "standalone".to_owned(),
            SolverConfig::Http01Standalone(addr) => format!("standalone-{}", addr.port()),
            _ => "webroot".to_owned(),
        };
        let name = self.unused(&base, |s, n| {
            s.config.solvers.contains_key(n) || s.new_solvers.iter().any(|(m, _)| m == n)
        });
        self.new_solvers.push((name.clone(), solver));
        name
    }

    /// `base`, or `base-2`, `base-3`, ... whichever `taken` says is free.
    fn unused(&self, base: &str, taken: impl Fn(&Self, &str) -> bool) -> String {
        std::iter::once(base.to_owned())
            .chain((2..).map(|n| format!("{base}-{n}")))
            .find(|n| !taken(self, n))
            .unwrap_or_default()
    }

    /// Reload targets in certbot's order: deploy hooks (the directory's, then
    /// the lineage's), then post hooks.
    fn reload(&self, conf: &RenewalConf) -> Vec<(Vec<String>, &'static str)> {
        let shell = |command: &str| vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()];
        let global = |kind: &'static str| {
            self.global_hooks
                .iter()
                .filter(move |p| p.parent().and_then(Path::file_name) == Some(kind.as_ref()))
                .map(|p| (vec![p.display().to_string()], "certbot renewal-hooks"))
        };
        let mut targets: Vec<(Vec<String>, &'static str)> = global("deploy").collect();
        if let Some(hook) = &conf.params.deploy_hook {
            targets.push((shell(hook), "certbot --deploy-hook"));
        }
        targets.extend(global("post"));
        if let Some(hook) = &conf.params.post_hook {
            targets.push((shell(hook), "certbot --post-hook"));
        }
        targets
    }

    /// What the operator should know that the TOML cannot say.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The whole suggestion as TOML, headed by where it came from.
    pub fn toml(&self, dir: &Path) -> String {
        let mut t = format!(
            "# Taken over from certbot ({}) by renewd import-certbot.\n\
             # Save as a drop-in (renewd.d/certbot.toml) or append to {}, then: renewd check-config\n\
             # Exec reload targets run once per renewal batch (RENEWD_NAME lists the \
             certificates);\n# certbot ran deploy hooks once per certificate.\n",
            dir.display(),
            self.config.path.display()
        );
        for (directory, name) in &self.new_cas {
            let _ = writeln!(
                t,
                "\n[ca.{name}]\ndirectory = {}\n# contact = [\"mailto:you@example.com\"]",
                quote(directory)
            );
        }
        for (name, solver) in &self.new_solvers {
            let _ = write!(t, "\n[solver.{name}]\ntype = \"http-01\"\n");
            let _ = match solver {
                SolverConfig::Http01Standalone(addr) => writeln!(t, "listen = \"{addr}\""),
                SolverConfig::Http01Webroot(root) => {
                    writeln!(t, "webroot = {}", quote(&root.display().to_string()))
                }
                _ => Ok(()),
            };
        }
        t.push_str(&self.certificates);
        t
    }
}

/// Where certbot's standalone authenticator listened: its address (all by
/// default) and port (80 by default).
fn standalone_listen(conf: &RenewalConf) -> SocketAddr {
    let ip = conf
        .params
        .http01_address
        .as_deref()
        .and_then(|a| {
            a.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .ok()
        })
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    SocketAddr::new(ip, conf.params.http01_port.unwrap_or(80))
}

/// A TOML string literal.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A TOML array of strings.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(domains: &[&str]) -> CertInfo {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        CertInfo::from_pem(cert.pem().as_bytes()).unwrap()
    }

    fn config(text: &str) -> Config {
        Config::from_str(text, Path::new("/etc/renewd/renewd.toml")).unwrap()
    }

    #[test]
    fn configured_cas_and_solvers_are_reused_and_names_never_clash() {
        let config = config(
            "[ca.le]\ndirectory = \"https://acme-v02.api.letsencrypt.org/directory/\"\n\
             [solver.web]\ntype = \"http-01\"\nwebroot = \"/srv/www\"\n\
             [solver.webroot]\ntype = \"http-01\"\nwebroot = \"/elsewhere\"\n\
             [solver.standalone]\ntype = \"http-01\"\nlisten = \"127.0.0.1:80\"\n",
        );
        let mut suggestion = Suggestion::new(&config, Vec::new());
        assert_eq!(suggestion.ca_for(super::super::conf::LETSENCRYPT), "le");
        assert_eq!(suggestion.ca_for("https://ca.example/dir"), "certbot");
        assert_eq!(suggestion.ca_for("https://ca.example/dir"), "certbot");
        assert_eq!(suggestion.ca_for("https://other.example/dir"), "certbot-2");

        let webroot = super::super::conf::parse(
            "[renewalparams]\nauthenticator = webroot\nwebroot_path = /srv/www,\n\
             [[webroot_map]]\nb.example = /srv/b\n",
        );
        suggestion.certificate("one", &webroot, &leaf(&["a.example", "b.example"]), "le");
        let standalone = super::super::conf::parse("[renewalparams]\nauthenticator = standalone\n");
        suggestion.certificate("two", &standalone, &leaf(&["c.example"]), "certbot");
        let toml = suggestion.toml(Path::new("/etc/letsencrypt"));
        // /srv/www is solver `web` already; /srv/b needs one, and `webroot` is taken.
        assert!(
            toml.contains("[solver.webroot-2]\ntype = \"http-01\"\nwebroot = \"/srv/b\"\n"),
            "{toml}"
        );
        assert!(
            toml.contains("solvers = [\"web\", \"webroot-2\"]"),
            "{toml}"
        );
        // certbot's standalone listens on every address: not the configured 127.0.0.1:80.
        assert!(
            toml.contains("[solver.standalone-2]\ntype = \"http-01\"\nlisten = \"[::]:80\"\n"),
            "{toml}"
        );
        assert!(
            toml.contains("[ca.certbot]\ndirectory = \"https://ca.example/dir\"\n"),
            "{toml}"
        );
        assert!(!toml.contains("[ca.le]"), "{toml}");
        assert!(
            suggestion.notes()[0].contains("2 webroots"),
            "{:?}",
            suggestion.notes()
        );

        let whole = format!(
            "[ca.le]\ndirectory = \"https://acme-v02.api.letsencrypt.org/directory/\"\n\
             [solver.web]\ntype = \"http-01\"\nwebroot = \"/srv/www\"\n\
             [solver.webroot]\ntype = \"http-01\"\nwebroot = \"/elsewhere\"\n\
             [solver.standalone]\ntype = \"http-01\"\nlisten = \"127.0.0.1:80\"\n{toml}"
        );
        let parsed = Config::from_str(&whole, Path::new("x.toml")).unwrap();
        assert_eq!(
            *parsed.certificate("two").unwrap().solvers,
            ["standalone-2"]
        );
    }

    #[test]
    fn configured_certificates_are_left_alone() {
        let config = config(
            "[ca.x]\ndirectory = \"https://ca.example/dir\"\n\
             [solver.dns]\ntype = \"dns-01\"\nprovider = \"exec\"\ncommand = [\"/bin/hook\"]\n\
             [[certificate]]\nname = \"one\"\ndomains = [\"a.example\"]\n",
        );
        let mut suggestion = Suggestion::new(&config, Vec::new());
        let conf = super::super::conf::parse("[renewalparams]\nauthenticator = nginx\n");
        suggestion.certificate("one", &conf, &leaf(&["a.example"]), "x");
        suggestion.certificate("two", &conf, &leaf(&["b.example"]), "x");
        let toml = suggestion.toml(Path::new("/etc/letsencrypt"));
        assert!(!toml.contains("name = \"one\""), "{toml}");
        assert!(
            toml.contains("name = \"two\"\ndomains = [\"b.example\"]\nca = [\"x\"]\n"),
            "{toml}"
        );
        let notes = suggestion.notes().join("\n");
        assert!(notes.contains("one: already configured"), "{notes}");
        assert!(
            notes.contains("two: certbot's authenticator nginx has no renewd equivalent"),
            "{notes}"
        );
    }
}
