//! The configuration file, `/etc/renewd/renewd.toml` (`docs/reference/config.md`,
//! renewd.toml(5)).
//!
//! Loading happens in two phases: a strict serde parse (unknown keys are errors,
//! defaults live here and nowhere else), then `validate` which collects *every*
//! problem at once — undefined CA or solver names, duplicate certificates, bad
//! domains, secret files readable by others — each with the line it comes from.
//! This module only reads; it never touches the state directory.

mod cluster;
mod dropin;
mod duration;
mod identifier;
mod split;
mod validate;

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

pub use cluster::{ClusterConfig, EtcdTls};
pub use dropin::Location;
pub use duration::ConfigDuration;
pub use identifier::{Error as IdentifierError, Identifier};

/// Where the daemon and the CLI look for the config when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/renewd/renewd.toml";

/// A config file that parsed and validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (for messages).
    pub path: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[ca.NAME]`, in declaration order (the default fallback order).
    pub cas: IndexMap<String, CaConfig>,
    /// `[solver.NAME]`, in declaration order.
    pub solvers: IndexMap<String, SolverConfig>,
    /// `[[certificate]]`, with CA and solver lists resolved to defaults.
    pub certificates: Vec<CertificateConfig>,
    /// `[cluster]`: fleet mode on etcd; `None` runs one host alone.
    pub cluster: Option<ClusterConfig>,
    /// Position of each certificate in `certificates`, found by its name's
    /// hash: the scheduler looks certificates up by name (a linear search
    /// made 10,000 of them quadratic), and a map keyed by a copy of each name
    /// took ~85 bytes a certificate.
    by_name: hashbrown::HashTable<u32>,
    hasher: RandomState,
}

/// `[daemon]`: process-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Root of the store (`docs/reference/files.md`).
    pub state_dir: PathBuf,
    /// Unix socket for `renewd status` / `renewd renew`
    /// (`docs/reference/control-socket.md`).
    pub control_socket: PathBuf,
    /// Group whose members may use the control socket besides root.
    pub control_group: Option<String>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Orders in flight at once.
    pub max_concurrent: usize,
    /// Max random delay added to a fallback-scheduled renewal.
    pub jitter: ConfigDuration,
    /// Max time between ARI polls and served-certificate checks.
    pub check_interval: ConfigDuration,
    /// Fallback renewal point when the CA has no ARI.
    pub renew_before: ConfigDuration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/renewd"),
            control_socket: PathBuf::from("/run/renewd/control.sock"),
            control_group: None,
            metrics_listen: None,
            max_concurrent: 8,
            jitter: ConfigDuration::from_secs(3600),
            check_interval: ConfigDuration::from_secs(6 * 3600),
            renew_before: ConfigDuration::from_secs(30 * 86_400),
        }
    }
}

/// `[ca.NAME]`: one ACME CA and the account renewd keeps there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// ACME directory URL.
    pub directory: String,
    /// The CA's staging directory URL, for `renewd renew --dry-run`.
    pub staging: Option<String>,
    /// Account contact URIs (`mailto:`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// ACME profile to request (draft-ietf-acme-profiles).
    pub profile: Option<String>,
    /// Extra root certificate for the ACME server's own TLS (test CAs only).
    pub trust: Option<PathBuf>,
    /// External Account Binding key id.
    pub eab_kid: Option<String>,
    /// File holding the base64url EAB HMAC key.
    pub eab_hmac_key_file: Option<PathBuf>,
}

/// Challenge type a solver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ChallengeKind {
    /// RFC 8555 section 8.3.
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 section 8.4.
    #[serde(rename = "dns-01")]
    Dns01,
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Dns01 => "dns-01",
        })
    }
}

/// DNS providers for dns-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProvider {
    /// RFC 2136 dynamic updates signed with TSIG.
    Rfc2136,
    /// Cloudflare's API.
    Cloudflare,
    /// An external hook: `command set|unset RECORD VALUE`.
    Exec,
}

/// `[solver.NAME]` as written. Which keys apply depends on `type` (and
/// `provider`); `validate` turns it into a [`SolverConfig`] or says what is wrong.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSolver {
    #[serde(rename = "type")]
    kind: ChallengeKind,
    listen: Option<SocketAddr>,
    webroot: Option<PathBuf>,
    provider: Option<DnsProvider>,
    server: Option<SocketAddr>,
    tsig_key_file: Option<PathBuf>,
    api_token_file: Option<PathBuf>,
    api_url: Option<String>,
    command: Option<Vec<String>>,
    propagation_timeout: Option<ConfigDuration>,
    resolvers: Option<Vec<SocketAddr>>,
}

/// A solver, parsed once: each challenge type with exactly what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolverConfig {
    /// http-01 answered by a listener of renewd's own (`listen`).
    Http01Standalone(SocketAddr),
    /// http-01 answered by files under `<webroot>/.well-known/acme-challenge/`.
    Http01Webroot(PathBuf),
    /// tls-alpn-01 answered by a listener of renewd's own (`listen`).
    TlsAlpn01(SocketAddr),
    /// dns-01 through a provider.
    Dns01(Dns01Config),
}

impl SolverConfig {
    /// The challenge type it answers.
    #[must_use]
    pub fn kind(&self) -> ChallengeKind {
        match self {
            Self::Http01Standalone(_) | Self::Http01Webroot(_) => ChallengeKind::Http01,
            Self::TlsAlpn01(_) => ChallengeKind::TlsAlpn01,
            Self::Dns01(_) => ChallengeKind::Dns01,
        }
    }
}

/// A dns-01 solver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns01Config {
    /// Where the TXT record is published.
    pub provider: Dns01Provider,
    /// How long to wait for the TXT record to become visible.
    pub propagation_timeout: ConfigDuration,
    /// Where to look for the TXT record (empty: the zone's name servers).
    pub resolvers: Vec<SocketAddr>,
}

/// A dns-01 provider with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dns01Provider {
    /// RFC 2136 dynamic updates to `server`, signed with the TSIG key in BIND's
    /// format.
    Rfc2136 {
        /// The primary name server to update.
        server: SocketAddr,
        /// The TSIG key file.
        tsig_key_file: PathBuf,
    },
    /// Cloudflare's API.
    Cloudflare {
        /// The API token file.
        api_token_file: PathBuf,
        /// API base URL (default `https://api.cloudflare.com/client/v4`; for
        /// API gateways and tests).
        api_url: Option<String>,
    },
    /// An external hook: `command… set|unset RECORD VALUE`.
    Exec {
        /// Hook command and leading arguments.
        command: Vec<String>,
    },
}

fn default_propagation_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(120)
}

/// Private key algorithm of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// NIST P-256 (the default).
    #[default]
    EcdsaP256,
    /// NIST P-384.
    EcdsaP384,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Rsa2048 => "rsa2048",
            Self::Rsa3072 => "rsa3072",
            Self::Rsa4096 => "rsa4096",
        })
    }
}

/// One entry of a certificate's `reload` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReloadTarget {
    /// systemd `ReloadUnit(unit, "replace")` over D-Bus.
    Unit(String),
    /// Send a signal to the pid in a pid file.
    Signal {
        /// Signal name without the `SIG` prefix, e.g. `HUP`.
        signal: String,
        /// File holding the pid.
        pid_file: PathBuf,
    },
    /// Run a command (no shell).
    Exec(Vec<String>),
}

/// The serde shape of a `reload` entry; exactly one form must be used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    unit: Option<String>,
    signal: Option<String>,
    pid_file: Option<PathBuf>,
    exec: Option<Vec<String>>,
}

/// `[[certificate]]`: one lineage renewd keeps valid.
#[derive(Debug, Clone)]
pub struct CertificateConfig {
    /// Unique name; the directory under `live/` and `archive/`.
    pub name: Arc<str>,
    /// Subject alternative names: DNS names, wildcards and IP addresses, in
    /// the order written.
    pub domains: Box<[Identifier]>,
    /// CA names in fallback order. Lists many certificates share (the
    /// defaults, a reload target for all) are held once: with 100,000
    /// certificates a copy each took ~15 MB.
    pub ca: Arc<[String]>,
    /// Solver names in fallback order.
    pub solvers: Arc<[String]>,
    /// Key algorithm.
    pub key: KeyType,
    /// Keep the private key across renewals.
    pub reuse_key: bool,
    /// ACME profile overriding the CA's ([`crate::intern::shared`]: a
    /// handful of values among many certificates).
    pub profile: Option<Arc<str>>,
    /// What to reload after a renewal, in order.
    pub reload: Arc<[ReloadTarget]>,
    /// `host:port` endpoints that must serve the certificate.
    pub verify: Arc<[String]>,
    /// Line of the `[[certificate]]` entry in the config file.
    pub line: u32,
}

impl CertificateConfig {
    /// Whether `other` asks for the same certificate in the same way: every
    /// setting but the line it is written on. A config reload re-plans only
    /// the certificates this is false for.
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        let Self {
            name,
            domains,
            ca,
            solvers,
            key,
            reuse_key,
            profile,
            reload,
            verify,
            line: _,
        } = self;
        *name == other.name
            && *domains == other.domains
            && *ca == other.ca
            && *solvers == other.solvers
            && *key == other.key
            && *reuse_key == other.reuse_key
            && *profile == other.profile
            && *reload == other.reload
            && *verify == other.verify
    }
}

/// Lists that many certificates hold alike, each kept once.
#[derive(Debug)]
struct Shared<T> {
    seen: HashSet<Arc<[T]>>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self {
            seen: HashSet::new(),
        }
    }
}

impl<T: Eq + Hash> Shared<T> {
    /// `list`, or the same list met before.
    fn get(&mut self, list: Vec<T>) -> Arc<[T]> {
        if let Some(known) = self.seen.get(list.as_slice()) {
            return Arc::clone(known);
        }
        let list: Arc<[T]> = list.into();
        self.seen.insert(Arc::clone(&list));
        list
    }
}

/// The serde shape of a `[[certificate]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    name: String,
    domains: Vec<String>,
    ca: Option<Vec<String>>,
    solvers: Option<Vec<String>>,
    #[serde(default)]
    key: KeyType,
    #[serde(default)]
    reuse_key: bool,
    profile: Option<String>,
    #[serde(default)]
    reload: Vec<RawReload>,
    #[serde(default)]
    verify: Vec<String>,
}

/// The serde shape of the whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: Option<Spanned<DaemonConfig>>,
    #[serde(default)]
    ca: IndexMap<String, Spanned<CaConfig>>,
    #[serde(default)]
    solver: IndexMap<String, Spanned<RawSolver>>,
    #[serde(default)]
    certificate: Vec<Spanned<RawCertificate>>,
    #[serde(default)]
    cluster: Option<Spanned<cluster::RawCluster>>,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message, which names line, column and field.
        message: String,
    },
    /// The file parsed but its content is inconsistent.
    #[error("{path}: {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One thing wrong with a config, located by line and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The drop-in file it is in; `None` for the main file.
    pub file: Option<PathBuf>,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending field, e.g. `certificate[2].ca`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{} ", file.display())?;
        }
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl Config {
    /// Reads, parses and validates the config at `location`: the main file and
    /// its drop-ins.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if a file cannot be read, [`Error::Parse`] for TOML or
    /// schema errors (unknown keys, wrong types), [`Error::Invalid`] listing
    /// every semantic problem, each with its file and line.
    pub fn load(location: &Location) -> Result<Self, Error> {
        let sources = dropin::read(location)?;
        Self::from_sources(&sources)
    }

    /// Parses and validates the main file and drop-ins that [`dropin::read`]
    /// read (the main file first).
    fn from_sources(sources: &[dropin::Source]) -> Result<Self, Error> {
        let (text, spans) = dropin::join(sources)?;
        Self::from_str(&text, &sources[0].path).map_err(|e| match e {
            Error::Invalid { path, problems } => Error::Invalid {
                path,
                problems: problems
                    .into_iter()
                    .map(|p| dropin::locate(&spans, p))
                    .collect(),
            },
            other => other,
        })
    }

    /// Parses and validates config `text` that came from `path`.
    ///
    /// # Errors
    ///
    /// As [`Config::load`], minus the read error.
    pub fn from_str(text: &str, path: &Path) -> Result<Self, Error> {
        let raw = parse_raw(text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        validate::validate(raw, text, path).map_err(|problems| Error::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Names of all configured certificates, in config order.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.certificates
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    }

    /// A validated config (names are unique).
    fn new(
        path: PathBuf,
        daemon: DaemonConfig,
        cas: IndexMap<String, CaConfig>,
        solvers: IndexMap<String, SolverConfig>,
        mut certificates: Vec<CertificateConfig>,
    ) -> Self {
        // Collected in place from the parsed tables, the list kept their
        // larger capacity: ~10 MB more with 100,000 certificates.
        certificates.shrink_to_fit();
        let hasher = RandomState::new();
        let mut by_name = hashbrown::HashTable::with_capacity(certificates.len());
        for (i, c) in certificates.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 certificates");
            by_name.insert_unique(hasher.hash_one(&c.name), i, |&i| {
                hasher.hash_one(&certificates[i as usize].name)
            });
        }
        Self {
            path,
            daemon,
            cas,
            solvers,
            certificates,
            by_name,
            hasher,
            cluster: None,
        }
    }

    /// The certificate called `name`.
    #[must_use]
    pub fn certificate(&self, name: &str) -> Option<&CertificateConfig> {
        let found = self.by_name.find(self.hasher.hash_one(name), |&i| {
            *self.certificates[i as usize].name == *name
        })?;
        Some(&self.certificates[*found as usize])
    }
}

/// The `config` fuzz target: NUL-separated texts as the main file and its
/// drop-ins. Every error must render; every config that validates must name
/// its certificates uniquely; the main file parsed a certificate at a time
/// must read as it does whole.
#[cfg(fuzzing)]
pub(crate) fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<dropin::Source> = text
        .split('\0')
        .take(8)
        .enumerate()
        .map(|(i, text)| dropin::Source {
            path: PathBuf::from(format!("/etc/renewd/renewd.d/{i}.toml")),
            text: text.to_owned(),
        })
        .collect();
    // Parsed a certificate at a time, a config must read as the whole does.
    if let Some(split) = split::parse(&sources[0].text, 1) {
        let whole: RawConfig = toml::from_str(&sources[0].text).expect("the whole parses too");
        assert_eq!(format!("{split:?}"), format!("{whole:?}"));
    }
    match Config::from_sources(&sources) {
        Ok(config) => {
            for name in config.names() {
                assert!(config.certificate(&name).is_some(), "{name}");
            }
            let _ = format!("{config:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `text` in the serde shape of a config: a large one a certificate at a
/// time ([`split`]), else whole.
fn parse_raw(text: &str) -> Result<RawConfig, toml::de::Error> {
    match split::parse(text, split::MIN_CERTIFICATES) {
        Some(raw) => Ok(raw),
        None => toml::from_str(text),
    }
}

/// `daemon.control_socket` of the file at `path`, read as leniently as possible
/// — from the TOML if it parses, else from the first `control_socket = "..."`
/// line, else the default — so the CLI can still reach a daemon while the file on
/// disk is being edited into shape.
#[must_use]
pub fn control_socket_lenient(path: &Path) -> PathBuf {
    let Ok(text) = std::fs::read_to_string(path) else {
        return DaemonConfig::default().control_socket;
    };
    let from_toml = text.parse::<toml::Table>().ok().and_then(|table| {
        let socket = table.get("daemon")?.get("control_socket")?.as_str()?;
        Some(PathBuf::from(socket))
    });
    from_toml
        .or_else(|| control_socket_line(&text))
        .unwrap_or_else(|| DaemonConfig::default().control_socket)
}

/// The control socket as the file's `control_socket = "..."` line names it,
/// else the default, without parsing the file: a hint, to try before loading
/// a config of 100,000 certificates, which takes longer than asking the daemon.
#[must_use]
pub fn control_socket_quick(path: &Path) -> PathBuf {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| control_socket_line(&text))
        .unwrap_or_else(|| DaemonConfig::default().control_socket)
}

fn control_socket_line(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("control_socket")?
            .trim_start()
            .strip_prefix('=')?;
        let value = value.trim().strip_prefix('"')?;
        Some(PathBuf::from(&value[..value.find('"')?]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_socket_is_found_even_in_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("renewd.toml");
        std::fs::write(
            &path,
            "[daemon]\ncontrol_socket = \"/x/c.sock\"\n[daemon]\n",
        )
        .unwrap();
        assert_eq!(control_socket_lenient(&path), Path::new("/x/c.sock"));
        std::fs::write(&path, "[daemon]\nbogus = 1\n").unwrap();
        assert_eq!(
            control_socket_lenient(&path),
            Path::new("/run/renewd/control.sock")
        );
    }

    /// A config large enough to be parsed a certificate at a time, with
    /// `broken` put in as certificate 70's last line.
    fn large(broken: &str) -> String {
        let mut text = "[ca.le]\ndirectory = \"https://acme.example/dir\"\n\n\
                        [solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:80\"\n"
            .to_owned();
        for i in 0..100 {
            text += &format!("\n[[certificate]]\nname = \"c{i}\"\ndomains = [\"c{i}.example\"]\n");
            if i == 70 {
                text += broken;
            }
        }
        text
    }

    #[test]
    fn a_large_config_reports_problems_at_their_lines() {
        let path = Path::new("/etc/renewd/renewd.toml");
        let config = Config::from_str(&large(""), path).unwrap();
        assert_eq!(config.certificates.len(), 100);
        assert_eq!(config.certificate("c70").unwrap().line, 6 + 70 * 4 + 2);
        // The line after certificate 70's domains.
        let line = 6 + 70 * 4 + 5;
        let syntax = Config::from_str(&large("profile = \n"), path).unwrap_err();
        assert!(
            syntax.to_string().contains(&format!("line {line}")),
            "{syntax}"
        );
        let invalid = Config::from_str(&large("solvers = [\"dns\"]\n"), path).unwrap_err();
        assert!(
            invalid
                .to_string()
                .contains(&format!("line {line}: certificate[70]")),
            "{invalid}"
        );
    }
}
