//! Semantic checks of a parsed config; every problem is collected, none stops the others.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use indexmap::IndexMap;
use toml::Spanned;

use super::{
    CaConfig, CertificateConfig, ChallengeKind, Config, Dns01Config, Dns01Provider, DnsProvider,
    Identifier, Problem, RawCertificate, RawConfig, RawReload, RawSolver, ReloadTarget, Shared,
    SolverConfig,
};

/// Collects problems with the line each one comes from.
struct Checker<'a> {
    text: &'a str,
    /// Byte offset of every newline, to turn spans into line numbers in
    /// O(log n) (counting from the start each time made 10,000 certificates slow).
    newlines: Vec<usize>,
    problems: Vec<Problem>,
    /// CA, solver and `verify` lists, each kept once.
    names: Shared<String>,
    /// Reload lists, each kept once.
    reloads: Shared<ReloadTarget>,
}

impl Checker<'_> {
    fn line_of<T>(&self, spanned: &Spanned<T>) -> usize {
        self.newlines
            .partition_point(|&nl| nl < spanned.span().start)
            + 1
    }

    /// Records a problem with `field` of the table that starts at `line`; the
    /// line reported is the key's own when the table spells it out.
    fn push(&mut self, line: usize, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        self.problems.push(Problem {
            file: None,
            line: Some(self.key_line(line, &field)),
            field,
            message: message.into(),
        });
    }

    /// The line of `field`'s key (`certificate[0].solvers` → `solvers = ...`)
    /// in the table that starts at `table_line`, or `table_line` itself.
    fn key_line(&self, table_line: usize, field: &str) -> usize {
        let last = field.rsplit('.').next().unwrap_or(field);
        let key = last.split('[').next().unwrap_or(last);
        let start = table_line
            .checked_sub(1)
            .and_then(|i| self.newlines.get(i.checked_sub(1)?).map(|nl| nl + 1))
            .unwrap_or(0);
        for (i, line) in self.text[start..].lines().enumerate() {
            let line = line.trim_start();
            if i > 0 && line.starts_with('[') {
                break;
            }
            let value = line.strip_prefix(key).map(str::trim_start);
            if value.is_some_and(|v| v.starts_with('=')) {
                return table_line + i;
            }
        }
        table_line
    }

    /// A secret must exist and be readable by its owner only.
    fn secret_file(&mut self, line: usize, field: &str, path: &Path) {
        match std::fs::metadata(path) {
            Err(e) => self.push(line, field, format!("{}: cannot read: {e}", path.display())),
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    self.push(
                        line,
                        field,
                        format!(
                            "{}: mode {mode:04o} lets group/others read a secret (chmod 600 {})",
                            path.display(),
                            path.display()
                        ),
                    );
                }
            }
        }
    }
}

/// Turns a parsed file into a [`Config`], or lists everything wrong with it.
pub(super) fn validate(raw: RawConfig, text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    let mut ck = Checker {
        text,
        newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
        problems: Vec::new(),
        names: Shared::default(),
        reloads: Shared::default(),
    };
    let daemon = match raw.daemon {
        Some(d) => {
            let line = ck.line_of(&d);
            let d = d.into_inner();
            check_daemon(&mut ck, line, &d);
            d
        }
        None => super::DaemonConfig::default(),
    };
    let cas = unspan(&mut ck, raw.ca, check_ca);
    // Certificates refer to solvers by name and need their type, even of one
    // that is broken (its problems are reported once, under its own table).
    let kinds: IndexMap<String, ChallengeKind> = raw
        .solver
        .iter()
        .map(|(name, s)| (name.clone(), s.get_ref().kind))
        .collect();
    let solvers: IndexMap<String, SolverConfig> = raw
        .solver
        .into_iter()
        .filter_map(|(name, raw)| {
            let line = ck.line_of(&raw);
            let solver = solver(&mut ck, line, &name, raw.into_inner())?;
            Some((name, solver))
        })
        .collect();
    let certificates = raw
        .certificate
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let line = ck.line_of(&c);
            check_certificate(&mut ck, &cas, &kinds, i, line, c.into_inner())
        })
        .collect::<Vec<_>>();
    check_unique_names(&mut ck, &certificates);
    let cluster = raw.cluster.and_then(|c| {
        let line = ck.line_of(&c);
        super::cluster::validate(c.into_inner(), &mut |field, message| {
            ck.push(line, field, message);
        })
    });
    if ck.problems.is_empty() {
        let mut config = Config::new(path.to_owned(), daemon, cas, solvers, certificates);
        config.cluster = cluster;
        Ok(config)
    } else {
        Err(ck.problems)
    }
}

fn unspan<T>(
    ck: &mut Checker<'_>,
    map: IndexMap<String, Spanned<T>>,
    check: fn(&mut Checker<'_>, usize, &str, &T),
) -> IndexMap<String, T> {
    map.into_iter()
        .map(|(name, value)| {
            let line = ck.line_of(&value);
            check(ck, line, &name, value.get_ref());
            (name, value.into_inner())
        })
        .collect()
}

fn check_daemon(ck: &mut Checker<'_>, line: usize, d: &super::DaemonConfig) {
    if d.max_concurrent == 0 {
        ck.push(line, "daemon.max_concurrent", "must be at least 1");
    }
    if d.check_interval.0.is_zero() {
        ck.push(line, "daemon.check_interval", "must be longer than 0s");
    }
    if !d.state_dir.is_absolute() {
        ck.push(line, "daemon.state_dir", "must be an absolute path");
    }
    if let Some(group) = &d.control_group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(_)) => {}
            Ok(None) => ck.push(
                line,
                "daemon.control_group",
                format!("no group named {group:?} on this system (groupadd --system {group})"),
            ),
            Err(e) => ck.push(
                line,
                "daemon.control_group",
                format!("cannot look up group {group:?}: {e}"),
            ),
        }
    }
}

fn check_ca(ck: &mut Checker<'_>, line: usize, name: &str, ca: &CaConfig) {
    let field = |f: &str| format!("ca.{name}.{f}");
    if !ca.directory.starts_with("https://") {
        ck.push(
            line,
            field("directory"),
            format!(
                "{:?} is not an https:// URL (ACME requires HTTPS)",
                ca.directory
            ),
        );
    }
    if let Some(staging) = ca.staging.as_ref().filter(|s| !s.starts_with("https://")) {
        ck.push(
            line,
            field("staging"),
            format!("{staging:?} is not an https:// URL (ACME requires HTTPS)"),
        );
    }
    for contact in &ca.contact {
        if !contact.contains(':') {
            ck.push(
                line,
                field("contact"),
                format!("{contact:?} is not a URI (write \"mailto:{contact}\")"),
            );
        }
    }
    if let Some(trust) = &ca.trust {
        if let Err(e) = std::fs::metadata(trust) {
            ck.push(
                line,
                field("trust"),
                format!("{}: cannot read: {e}", trust.display()),
            );
        }
    }
    match (&ca.eab_kid, &ca.eab_hmac_key_file) {
        (Some(_), Some(file)) => ck.secret_file(line, &field("eab_hmac_key_file"), file),
        (None, None) => {}
        _ => ck.push(
            line,
            field("eab_kid"),
            "External Account Binding needs both eab_kid and eab_hmac_key_file",
        ),
    }
}

/// The solver `name`, or `None` with its problems reported: the keys its type
/// needs, and none that it does not use.
fn solver(ck: &mut Checker<'_>, line: usize, name: &str, s: RawSolver) -> Option<SolverConfig> {
    let field = |f: &str| format!("solver.{name}.{f}");
    let before = ck.problems.len();
    let is_dns = s.kind == ChallengeKind::Dns01;
    let provider = s.provider.filter(|_| is_dns);
    let mut only_for = |present: bool, key: &str, kinds: &str| {
        if present {
            ck.push(
                line,
                field(key),
                format!("only applies to {kinds} solvers, this one is {}", s.kind),
            );
        }
    };
    only_for(
        s.webroot.is_some() && s.kind != ChallengeKind::Http01,
        "webroot",
        "http-01",
    );
    only_for(
        s.listen.is_some() && is_dns,
        "listen",
        "http-01 and tls-alpn-01",
    );
    only_for(s.provider.is_some() && !is_dns, "provider", "dns-01");
    only_for(
        s.propagation_timeout.is_some() && !is_dns,
        "propagation_timeout",
        "dns-01",
    );
    only_for(s.resolvers.is_some() && !is_dns, "resolvers", "dns-01");
    let rfc2136 = provider == Some(DnsProvider::Rfc2136);
    let cloudflare = provider == Some(DnsProvider::Cloudflare);
    only_for(s.server.is_some() && !rfc2136, "server", "dns-01 rfc2136");
    only_for(
        s.tsig_key_file.is_some() && !rfc2136,
        "tsig_key_file",
        "dns-01 rfc2136",
    );
    only_for(
        s.api_token_file.is_some() && !cloudflare,
        "api_token_file",
        "dns-01 cloudflare",
    );
    only_for(
        s.api_url.is_some() && !cloudflare,
        "api_url",
        "dns-01 cloudflare",
    );
    only_for(
        s.command.is_some() && provider != Some(DnsProvider::Exec),
        "command",
        "dns-01 exec",
    );
    let solver = match (s.kind, s.listen, s.webroot.clone()) {
        (ChallengeKind::Http01, Some(listen), None) => Some(SolverConfig::Http01Standalone(listen)),
        (ChallengeKind::Http01, None, Some(webroot)) => Some(SolverConfig::Http01Webroot(webroot)),
        (ChallengeKind::Http01, ..) => {
            ck.push(
                line,
                field("type"),
                "an http-01 solver needs exactly one of listen (standalone) or webroot",
            );
            None
        }
        (ChallengeKind::TlsAlpn01, Some(listen), _) => Some(SolverConfig::TlsAlpn01(listen)),
        (ChallengeKind::TlsAlpn01, None, _) => {
            ck.push(
                line,
                field("listen"),
                "a tls-alpn-01 solver needs listen, e.g. \"[::]:443\"",
            );
            None
        }
        (ChallengeKind::Dns01, ..) => dns_solver(ck, line, name, s).map(SolverConfig::Dns01),
    };
    solver.filter(|_| ck.problems.len() == before)
}

fn dns_solver(ck: &mut Checker<'_>, line: usize, name: &str, s: RawSolver) -> Option<Dns01Config> {
    let field = |f: &str| format!("solver.{name}.{f}");
    let Some(provider) = s.provider else {
        ck.push(
            line,
            field("provider"),
            "a dns-01 solver needs provider = \"rfc2136\" | \"cloudflare\" | \"exec\"",
        );
        return None;
    };
    let provider = match provider {
        DnsProvider::Rfc2136 => {
            if s.server.is_none() {
                ck.push(
                    line,
                    field("server"),
                    "rfc2136 needs server = \"HOST:PORT\"",
                );
            }
            match &s.tsig_key_file {
                Some(f) => ck.secret_file(line, &field("tsig_key_file"), f),
                None => ck.push(line, field("tsig_key_file"), "rfc2136 needs tsig_key_file"),
            }
            Dns01Provider::Rfc2136 {
                server: s.server?,
                tsig_key_file: s.tsig_key_file?,
            }
        }
        DnsProvider::Cloudflare => {
            match &s.api_token_file {
                Some(f) => ck.secret_file(line, &field("api_token_file"), f),
                None => ck.push(
                    line,
                    field("api_token_file"),
                    "cloudflare needs api_token_file",
                ),
            }
            Dns01Provider::Cloudflare {
                api_token_file: s.api_token_file?,
                api_url: s.api_url,
            }
        }
        DnsProvider::Exec => match s.command {
            Some(command) if !command.is_empty() => Dns01Provider::Exec { command },
            _ => {
                ck.push(
                    line,
                    field("command"),
                    "exec needs command = [\"/path/to/hook\"]",
                );
                return None;
            }
        },
    };
    Some(Dns01Config {
        provider,
        propagation_timeout: s
            .propagation_timeout
            .unwrap_or_else(super::default_propagation_timeout),
        resolvers: s.resolvers.unwrap_or_default(),
    })
}

fn check_certificate(
    ck: &mut Checker<'_>,
    cas: &IndexMap<String, CaConfig>,
    solvers: &IndexMap<String, ChallengeKind>,
    index: usize,
    line: usize,
    raw: RawCertificate,
) -> Option<CertificateConfig> {
    let field = |f: &str| format!("certificate[{index}].{f}");
    if let Err(why) = check_name(&raw.name) {
        ck.push(line, field("name"), why);
    }
    if raw.domains.is_empty() {
        ck.push(line, field("domains"), "must list at least one domain");
    }
    let domains = identifiers(ck, line, &field("domains"), &raw.domains);
    let ca = resolve_names(ck, line, &field("ca"), "CA", raw.ca, cas);
    let explicit = raw.solvers.is_some();
    let mut solver_names =
        resolve_names(ck, line, &field("solvers"), "solver", raw.solvers, solvers);
    if cas.is_empty() {
        ck.push(line, field("ca"), "no [ca.NAME] is defined");
    }
    if solvers.is_empty() {
        ck.push(line, field("solvers"), "no [solver.NAME] is defined");
    } else {
        fit_solvers(
            ck,
            line,
            &field,
            &domains,
            &mut solver_names,
            explicit,
            solvers,
        );
    }
    let reload: Vec<ReloadTarget> = raw
        .reload
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| match reload_target(r) {
            Ok(t) => Some(t),
            Err(why) => {
                ck.push(line, field(&format!("reload[{i}]")), why);
                None
            }
        })
        .collect();
    for target in &raw.verify {
        if !is_host_port(target) {
            ck.push(
                line,
                field("verify"),
                format!("{target:?} is not HOST:PORT (e.g. \"127.0.0.1:443\")"),
            );
        }
    }
    Some(CertificateConfig {
        name: raw.name.into(),
        domains: domains.into(),
        ca: ck.names.get(ca),
        solvers: ck.names.get(solver_names),
        key: raw.key,
        reuse_key: raw.reuse_key,
        profile: raw.profile.as_deref().map(crate::intern::shared),
        reload: ck.reloads.get(reload),
        verify: ck.names.get(raw.verify),
        line: u32::try_from(line).unwrap_or(u32::MAX),
    })
}

/// The `domains` entries parsed, each problem (a bad entry, one listed twice)
/// reported; bad entries are left out.
fn identifiers(
    ck: &mut Checker<'_>,
    line: usize,
    field: &str,
    domains: &[String],
) -> Vec<Identifier> {
    let mut seen = HashSet::new();
    let mut parsed = Vec::with_capacity(domains.len());
    for domain in domains {
        match domain.parse::<Identifier>() {
            Ok(id) => {
                // Canonical text, so `2001:DB8::1` and `2001:db8::1` are one entry.
                if !seen.insert(id.to_string().to_ascii_lowercase()) {
                    ck.push(line, field, format!("{domain:?} is listed twice"));
                }
                parsed.push(id);
            }
            Err(why) => ck.push(line, field, why.to_string()),
        }
    }
    parsed
}

/// Checks that one of the certificate's solvers can answer all its
/// identifiers — one solver answers a whole order (see [`crate::renew`]):
/// wildcards only through dns-01, IP addresses never through it (RFC 8738 §7).
/// With `solvers` left out (`explicit` false) a certificate with an IP address
/// gets every solver but the dns-01 ones, which could never answer.
fn fit_solvers(
    ck: &mut Checker<'_>,
    line: usize,
    field: &dyn Fn(&str) -> String,
    domains: &[Identifier],
    names: &mut Vec<String>,
    explicit: bool,
    kinds: &IndexMap<String, ChallengeKind>,
) {
    let wildcard = domains.iter().any(|d| matches!(d, Identifier::Wildcard(_)));
    let ip = domains.iter().any(Identifier::is_ip);
    let is_dns = |name: &String| kinds.get(name) == Some(&ChallengeKind::Dns01);
    if wildcard && ip {
        ck.push(
            line,
            field("domains"),
            "a wildcard (validated only with dns-01) and an IP address (never with dns-01, \
             RFC 8738 §7) cannot share a certificate; split them into two certificates",
        );
        return;
    }
    if ip && !explicit {
        names.retain(|name| !is_dns(name));
        if names.is_empty() {
            ck.push(
                line,
                field("solvers"),
                "IP addresses can only be validated with http-01 or tls-alpn-01 \
                 (RFC 8738 §7); define such a solver",
            );
        }
    }
    if wildcard && !names.iter().any(is_dns) && !names.is_empty() {
        ck.push(
            line,
            field("solvers"),
            "wildcard domains can only be validated with dns-01; add a dns-01 solver",
        );
    }
    if ip {
        for name in names.iter().filter(|n| is_dns(n)) {
            ck.push(
                line,
                field("solvers"),
                format!(
                    "solver {name:?} is dns-01, which cannot validate IP addresses \
                     (RFC 8738 §7); list only http-01 or tls-alpn-01 solvers"
                ),
            );
        }
    }
}

/// Resolves an optional list of names against the defined ones (default: all of them).
fn resolve_names<T>(
    ck: &mut Checker<'_>,
    line: usize,
    field: &str,
    what: &str,
    names: Option<Vec<String>>,
    defined: &IndexMap<String, T>,
) -> Vec<String> {
    let Some(names) = names else {
        return defined.keys().cloned().collect();
    };
    if names.is_empty() {
        ck.push(line, field, format!("must name at least one {what}"));
    }
    for name in &names {
        if !defined.contains_key(name) {
            let known = defined.keys().map(String::as_str).collect::<Vec<_>>();
            ck.push(
                line,
                field,
                format!(
                    "{what} {name:?} is not defined (defined: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
    names
}

fn check_unique_names(ck: &mut Checker<'_>, certificates: &[CertificateConfig]) {
    let mut seen = HashSet::with_capacity(certificates.len());
    for (i, cert) in certificates.iter().enumerate() {
        if !seen.insert(&*cert.name) {
            ck.push(
                cert.line as usize,
                format!("certificate[{i}].name"),
                format!(
                    "{:?} is used by another certificate; names must be unique",
                    cert.name
                ),
            );
        }
    }
}

/// A name becomes a directory under `live/` and `archive/`, so it must be a plain file name.
/// A certificate name becomes a directory under `live/` and `archive/`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains("..")
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a usable name: use letters, digits, '.', '-', '_', \
             not starting with '.' and without '..'"
        ))
    }
}

fn is_host_port(target: &str) -> bool {
    target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn reload_target(r: RawReload) -> Result<ReloadTarget, String> {
    match r {
        RawReload {
            unit: Some(unit),
            signal: None,
            pid_file: None,
            exec: None,
        } => Ok(ReloadTarget::Unit(unit)),
        RawReload {
            unit: None,
            signal: Some(signal),
            pid_file: Some(pid_file),
            exec: None,
        } => {
            let signal = signal.trim_start_matches("SIG").to_owned();
            if format!("SIG{signal}").parse::<nix::sys::signal::Signal>().is_err() {
                return Err(format!("unknown signal {signal:?} (e.g. \"HUP\", \"USR1\")"));
            }
            Ok(ReloadTarget::Signal { signal, pid_file })
        }
        RawReload {
            unit: None,
            signal: None,
            pid_file: None,
            exec: Some(exec),
        } if !exec.is_empty() => Ok(ReloadTarget::Exec(exec)),
        _ => Err(
            "use exactly one of { unit = \"x.service\" }, { signal = \"HUP\", pid_file = \"...\" } \
             or { exec = [\"cmd\", \"arg\"] }"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::super::{Config, Error, KeyType, ReloadTarget};

    fn load(text: &str) -> Result<Config, Error> {
        Config::from_str(text, &PathBuf::from("/etc/renewd/renewd.toml"))
    }

    fn problems(text: &str) -> String {
        match load(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("config unexpectedly valid:\n{text}"),
        }
    }

    const BASE: &str = r#"
[ca.le]
directory = "https://acme.example/dir"

[solver.web]
type = "http-01"
listen = "127.0.0.1:5002"
"#;

    #[test]
    fn empty_config_is_valid_and_has_defaults() {
        let config = load("").unwrap();
        assert_eq!(config.daemon.max_concurrent, 8);
        assert_eq!(config.daemon.renew_before.to_string(), "30d");
        assert!(config.certificates.is_empty());
    }

    #[test]
    fn defaults_fill_ca_and_solvers_in_declaration_order() {
        let text = format!(
            "{BASE}\n[ca.other]\ndirectory = \"https://b.example/dir\"\n\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.example\"]\n\
             reload = [{{ unit = \"nginx.service\" }}, {{ signal = \"SIGHUP\", pid_file = \"/run/x.pid\" }}]\n"
        );
        let config = load(&text).unwrap();
        let cert = &config.certificates[0];
        assert_eq!(*cert.ca, ["le", "other"]);
        assert_eq!(*cert.solvers, ["web"]);
        assert_eq!(cert.key, KeyType::EcdsaP256);
        assert_eq!(
            cert.reload[1],
            ReloadTarget::Signal {
                signal: "HUP".into(),
                pid_file: "/run/x.pid".into()
            }
        );
    }

    #[test]
    fn each_solver_is_parsed_into_its_type() {
        let text = format!(
            "{BASE}\n[solver.files]\ntype = \"http-01\"\nwebroot = \"/var/www\"\n\n\
             [solver.alpn]\ntype = \"tls-alpn-01\"\nlisten = \"[::]:443\"\n\n\
             [solver.hook]\ntype = \"dns-01\"\nprovider = \"exec\"\ncommand = [\"/bin/hook\"]\n"
        );
        let config = load(&text).unwrap();
        let kinds: Vec<String> = config.solvers.values().map(|s| format!("{s:?}")).collect();
        assert_eq!(
            kinds,
            [
                "Http01Standalone(127.0.0.1:5002)",
                "Http01Webroot(\"/var/www\")",
                "TlsAlpn01([::]:443)",
                "Dns01(Dns01Config { provider: Exec { command: [\"/bin/hook\"] }, \
                 propagation_timeout: ConfigDuration(120s), resolvers: [] })",
            ]
        );
    }

    #[test]
    fn solver_keys_of_another_type_or_provider_are_refused_by_name() {
        let err = problems(
            "[solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:80\"\n\
             server = \"127.0.0.1:53\"\nresolvers = [\"127.0.0.1:53\"]\n\n\
             [solver.hook]\ntype = \"dns-01\"\nprovider = \"exec\"\ncommand = [\"/bin/hook\"]\n\
             api_url = \"https://x.example\"\n",
        );
        for expected in [
            "solver.web.server: only applies to dns-01 rfc2136 solvers, this one is http-01",
            "solver.web.resolvers: only applies to dns-01 solvers, this one is http-01",
            "solver.hook.api_url: only applies to dns-01 cloudflare solvers, this one is dns-01",
        ] {
            assert!(err.contains(expected), "{expected:?} not in\n{err}");
        }
    }

    #[test]
    fn problems_point_at_the_offending_key_not_the_table_header() {
        let err = problems(&format!(
            "{BASE}\n[[certificate]]\nname = \"a\"\n# the domains\ndomains = [\"a.example\"]\nca = [\"nope\"]\n"
        ));
        assert!(err.contains("line 13: certificate[0].ca:"), "{err}");
        let err = problems("[daemon]\njitter = \"1h\"\n\nmax_concurrent = 0\n");
        assert!(err.contains("line 4: daemon.max_concurrent"), "{err}");
    }

    #[test]
    fn names_that_make_odd_directories_are_refused() {
        for (name, want) in [
            ("*", "\"*\" is not a usable name"),
            ("a..b", "\"a..b\" is not a usable name"),
        ] {
            let err = problems(&format!(
                "{BASE}[[certificate]]\nname = \"{name}\"\ndomains = [\"a.example\"]\n"
            ));
            assert!(err.contains(want), "{want:?} not in\n{err}");
        }
    }

    const SOLVERS: &str = "
[solver.alpn]
type = \"tls-alpn-01\"
listen = \"[::]:443\"

[solver.dns]
type = \"dns-01\"
provider = \"exec\"
command = [\"/bin/hook\"]
";

    fn certificate(domains: &str, solvers: Option<&str>) -> String {
        let solvers = solvers
            .map(|s| format!("solvers = {s}\n"))
            .unwrap_or_default();
        format!("{BASE}{SOLVERS}\n[[certificate]]\nname = \"c\"\ndomains = {domains}\n{solvers}")
    }

    #[test]
    fn ip_addresses_are_accepted_in_canonical_form_beside_names() {
        let text = certificate(
            r#"["192.0.2.1", "2001:DB8:0::1", "www.example.com"]"#,
            Some(r#"["web", "alpn"]"#),
        );
        let config = load(&text).unwrap();
        let domains: Vec<String> = config.certificates[0]
            .domains
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(domains, ["192.0.2.1", "2001:db8::1", "www.example.com"]);
    }

    #[test]
    fn ip_addresses_get_the_default_solvers_but_the_dns_01_ones() {
        let config = load(&certificate(r#"["192.0.2.1"]"#, None)).unwrap();
        assert_eq!(*config.certificates[0].solvers, ["web", "alpn"]);
        let err = problems(
            "[ca.le]\ndirectory = \"https://acme.example/dir\"\n\n\
             [solver.dns]\ntype = \"dns-01\"\nprovider = \"exec\"\ncommand = [\"/bin/hook\"]\n\n\
             [[certificate]]\nname = \"c\"\ndomains = [\"192.0.2.1\"]\n",
        );
        assert!(
            err.contains(
                "certificate[0].solvers: IP addresses can only be validated with http-01 or \
                 tls-alpn-01 (RFC 8738 §7); define such a solver"
            ),
            "{err}"
        );
    }

    #[test]
    fn ip_addresses_with_dns_01_or_wildcards_are_refused_naming_why() {
        for (domains, solvers, want) in [
            (
                r#"["192.0.2.1"]"#,
                Some(r#"["web", "dns"]"#),
                "line 21: certificate[0].solvers: solver \"dns\" is dns-01, which cannot \
                 validate IP addresses (RFC 8738 §7); list only http-01 or tls-alpn-01 solvers",
            ),
            (
                r#"["*.example.com", "2001:db8::1"]"#,
                Some(r#"["dns"]"#),
                "line 20: certificate[0].domains: a wildcard (validated only with dns-01) and an \
                 IP address (never with dns-01, RFC 8738 §7) cannot share a certificate; \
                 split them into two certificates",
            ),
            (
                r#"["*.192.0.2.1"]"#,
                None,
                "certificate[0].domains: \"*.192.0.2.1\": an IP address cannot be a wildcard",
            ),
            (
                r#"["[2001:db8::1]"]"#,
                None,
                "without brackets: \"2001:db8::1\"",
            ),
            (
                r#"["2001:db8::1", "2001:DB8:0::1"]"#,
                None,
                "\"2001:DB8:0::1\" is listed twice",
            ),
        ] {
            let err = problems(&certificate(domains, solvers));
            assert!(err.contains(want), "{want:?} not in\n{err}");
        }
    }

    #[test]
    fn a_control_group_that_does_not_exist_is_named() {
        let err = problems("[daemon]\ncontrol_group = \"no-such-group-renewd\"\n");
        assert!(
            err.contains("line 2: daemon.control_group: no group named \"no-such-group-renewd\""),
            "{err}"
        );
        load("[daemon]\ncontrol_group = \"root\"\n").unwrap();
    }

    #[test]
    fn unknown_key_names_line_and_field() {
        let err = problems("[daemon]\nmax_concurent = 4\n");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("max_concurent"), "{err}");
        assert!(err.starts_with("/etc/renewd/renewd.toml"), "{err}");
    }

    #[test]
    fn bad_duration_and_key_type_are_named() {
        let err = problems("[daemon]\njitter = \"1 hour\"\n");
        assert!(
            err.contains("jitter") || err.contains("invalid duration"),
            "{err}"
        );
        let err = problems(&format!(
            "{BASE}[[certificate]]\nname = \"a\"\ndomains = [\"a.example\"]\nkey = \"ed25519\"\n"
        ));
        assert!(
            err.contains("ed25519") && err.contains("ecdsa-p256"),
            "{err}"
        );
    }

    #[test]
    fn all_cross_check_problems_are_reported_at_once() {
        let text = format!(
            "{BASE}
[[certificate]]
name = \"a\"
domains = [\"a.example\"]
ca = [\"nope\"]
solvers = [\"missing\"]

[[certificate]]
name = \"a\"
domains = []

[[certificate]]
name = \"wild\"
domains = [\"*.example.com\"]
solvers = [\"web\"]
"
        );
        let err = problems(&text);
        assert!(
            err.contains("line 12: certificate[0].ca: CA \"nope\" is not defined (defined: le)"),
            "{err}"
        );
        assert!(
            err.contains("certificate[0].solvers: solver \"missing\" is not defined"),
            "{err}"
        );
        assert!(
            err.contains("line 17: certificate[1].domains: must list at least one domain"),
            "{err}"
        );
        assert!(
            err.contains("certificate[1].name: \"a\" is used by another certificate"),
            "{err}"
        );
        assert!(
            err.contains(
                "certificate[2].solvers: wildcard domains can only be validated with dns-01"
            ),
            "{err}"
        );
    }

    #[test]
    fn secret_files_readable_by_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tsig.key");
        std::fs::write(&key, "secret").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[solver.dns]\ntype = \"dns-01\"\nprovider = \"rfc2136\"\nserver = \"127.0.0.1:53\"\n\
             tsig_key_file = \"{}\"\n",
            key.display()
        );
        let err = problems(&text);
        assert!(err.contains("solver.dns.tsig_key_file"), "{err}");
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        load(&text).unwrap();
    }

    #[test]
    fn solver_shape_is_checked_per_type() {
        let err = problems("[solver.a]\ntype = \"http-01\"\n[solver.b]\ntype = \"dns-01\"\n");
        assert!(
            err.contains("solver.a.type: an http-01 solver needs exactly one of listen"),
            "{err}"
        );
        assert!(
            err.contains("solver.b.provider: a dns-01 solver needs provider"),
            "{err}"
        );
    }

    #[test]
    fn bad_reload_and_verify_entries_are_named() {
        let text = format!(
            "{BASE}[[certificate]]\nname = \"a\"\ndomains = [\"a.example\"]\n\
             reload = [{{ unit = \"x\", exec = [\"y\"] }}, {{ signal = \"BOGUS\", pid_file = \"/p\" }}]\n\
             verify = [\"localhost\"]\n"
        );
        let err = problems(&text);
        assert!(
            err.contains("certificate[0].reload[0]: use exactly one of"),
            "{err}"
        );
        assert!(
            err.contains("certificate[0].reload[1]: unknown signal \"BOGUS\""),
            "{err}"
        );
        assert!(
            err.contains("certificate[0].verify: \"localhost\" is not HOST:PORT"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_example_parses() {
        let example = include_str!("../../packaging/renewd.toml");
        load(example).unwrap();
    }

    #[test]
    fn the_reference_example_parses() {
        let example = include_str!("../../docs/reference/renewd.example.toml");
        let config = load(example).unwrap();
        assert!(config.cas["letsencrypt"].staging.is_some());
    }
}
