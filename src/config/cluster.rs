//! `[cluster]`: fleet mode on etcd (`docs/reference/cluster.md`). Parsed here
//! into [`ClusterConfig`] and checked with every other problem of the file;
//! what it does is [`crate::cluster`]'s.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigDuration;

/// The serde shape of `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    #[serde(default)]
    etcd: Vec<String>,
    node: Option<String>,
    #[serde(default = "default_prefix")]
    prefix: String,
    secret_key_file: Option<PathBuf>,
    #[serde(default = "default_lease_ttl")]
    lease_ttl: ConfigDuration,
    etcd_ca: Option<PathBuf>,
    etcd_cert: Option<PathBuf>,
    etcd_key: Option<PathBuf>,
    etcd_user: Option<String>,
    etcd_password_file: Option<PathBuf>,
}

fn default_prefix() -> String {
    "/renewd/".to_owned()
}

fn default_lease_ttl() -> ConfigDuration {
    ConfigDuration::from_secs(15)
}

/// `[cluster]`, validated: every node of a fleet shares the certificates of
/// its config through etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd endpoints (`http://` or `https://`).
    pub etcd: Vec<String>,
    /// This node's name, unique in the fleet (default: the host name).
    pub node: String,
    /// Key prefix in etcd, ending in `/`.
    pub prefix: String,
    /// 32-byte key (raw, or base64 of 32 bytes) that seals private keys.
    pub secret_key_file: PathBuf,
    /// How long a node that stopped answering keeps its leases.
    pub lease_ttl: ConfigDuration,
    /// TLS to etcd, when the endpoints are `https://`.
    pub tls: Option<EtcdTls>,
    /// etcd authentication: user and the file holding the password.
    pub auth: Option<(String, PathBuf)>,
}

/// TLS to etcd: the CA that signed etcd's certificate, and a client
/// certificate for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Client certificate and key (PEM), for mTLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Records a problem with a `cluster.` field.
pub(super) type Push<'a> = &'a mut dyn FnMut(&str, String);

/// Checks `raw`, reporting every problem through `push`; the validated table
/// when there was none.
pub(super) fn validate(raw: RawCluster, push: Push<'_>) -> Option<ClusterConfig> {
    let mut count = 0usize;
    let mut report = |field: &str, message: String| {
        count += 1;
        push(field, message);
    };
    check_endpoints(&raw.etcd, &mut report);
    let node = raw.node.clone().unwrap_or_else(host_name);
    if node.is_empty()
        || !node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        report(
            "cluster.node",
            format!("{node:?}: use letters, digits, '-', '_' and '.' only (it names etcd keys)"),
        );
    }
    if !raw.prefix.starts_with('/') || !raw.prefix.ends_with('/') {
        report(
            "cluster.prefix",
            format!(
                "{:?}: must start and end with '/' (e.g. \"/renewd/\")",
                raw.prefix
            ),
        );
    }
    let secret_key_file = match &raw.secret_key_file {
        Some(path) => {
            check_secret(path, "cluster.secret_key_file", &mut report);
            path.clone()
        }
        None => {
            report(
                "cluster.secret_key_file",
                "missing: every node needs the same 32-byte key file, mode 0600 \
                 (head -c 32 /dev/urandom > /etc/renewd/cluster.key; chmod 600 it)"
                    .to_owned(),
            );
            PathBuf::new()
        }
    };
    if raw.lease_ttl.0.as_secs() < 2 {
        report(
            "cluster.lease_ttl",
            "must be at least 2s (etcd grants leases in whole seconds)".to_owned(),
        );
    }
    let tls = tls(&raw, &mut report);
    let auth = match (&raw.etcd_user, &raw.etcd_password_file) {
        (Some(user), Some(file)) => {
            check_secret(file, "cluster.etcd_password_file", &mut report);
            Some((user.clone(), file.clone()))
        }
        (None, None) => None,
        (Some(_), None) => {
            report(
                "cluster.etcd_user",
                "needs etcd_password_file too".to_owned(),
            );
            None
        }
        (None, Some(_)) => {
            report(
                "cluster.etcd_password_file",
                "needs etcd_user too".to_owned(),
            );
            None
        }
    };
    (count == 0).then_some(ClusterConfig {
        etcd: raw.etcd,
        node,
        prefix: raw.prefix,
        secret_key_file,
        lease_ttl: raw.lease_ttl,
        tls,
        auth,
    })
}

fn check_endpoints(endpoints: &[String], report: &mut dyn FnMut(&str, String)) {
    if endpoints.is_empty() {
        report(
            "cluster.etcd",
            "list at least one etcd endpoint (e.g. [\"http://127.0.0.1:2379\"])".to_owned(),
        );
    }
    for endpoint in endpoints {
        let ok = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
        if !ok {
            report(
                "cluster.etcd",
                format!("{endpoint:?}: expected http://HOST:PORT or https://HOST:PORT"),
            );
        }
    }
}

fn tls(raw: &RawCluster, report: &mut dyn FnMut(&str, String)) -> Option<EtcdTls> {
    let https = raw.etcd.iter().any(|e| e.starts_with("https://"));
    let http = raw.etcd.iter().any(|e| e.starts_with("http://"));
    if https && http {
        report(
            "cluster.etcd",
            "mixes http:// and https:// endpoints; use one scheme".to_owned(),
        );
    }
    let identity = match (&raw.etcd_cert, &raw.etcd_key) {
        (Some(cert), Some(key)) => {
            check_secret(key, "cluster.etcd_key", report);
            Some((cert.clone(), key.clone()))
        }
        (None, None) => None,
        (Some(_), None) => {
            report("cluster.etcd_cert", "needs etcd_key too".to_owned());
            None
        }
        (None, Some(_)) => {
            report("cluster.etcd_key", "needs etcd_cert too".to_owned());
            None
        }
    };
    match &raw.etcd_ca {
        Some(ca) if https => Some(EtcdTls {
            ca: ca.clone(),
            identity,
        }),
        Some(_) => {
            report(
                "cluster.etcd_ca",
                "set, but the endpoints are http://; use https:// endpoints".to_owned(),
            );
            None
        }
        None if https => {
            report(
                "cluster.etcd_ca",
                "https:// endpoints need etcd_ca, the CA that signed etcd's certificate".to_owned(),
            );
            None
        }
        None => {
            if identity.is_some() {
                report(
                    "cluster.etcd_cert",
                    "a client certificate needs https:// endpoints and etcd_ca".to_owned(),
                );
            }
            None
        }
    }
}

/// A secret must exist and be readable by its owner only.
fn check_secret(path: &Path, field: &str, report: &mut dyn FnMut(&str, String)) {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) => report(field, format!("{}: cannot read: {e}", path.display())),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => report(
            field,
            format!(
                "{}: mode {:04o} lets group/others read a secret (chmod 600 {})",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            ),
        ),
        Ok(_) => {}
    }
}

/// The host name, the default node name.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::super::Config;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_str(text, &PathBuf::from("/etc/renewd/renewd.toml")).map_err(|e| e.to_string())
    }

    fn key_file(dir: &std::path::Path, mode: u32) -> PathBuf {
        let path = dir.join("cluster.key");
        std::fs::write(&path, [0u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_minimal_cluster_table_gets_its_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path(), 0o600);
        let text = format!(
            "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nsecret_key_file = \"{}\"\n",
            key.display()
        );
        let cluster = load(&text).unwrap().cluster.unwrap();
        assert_eq!(cluster.prefix, "/renewd/");
        assert_eq!(cluster.lease_ttl.0.as_secs(), 15);
        assert!(!cluster.node.is_empty(), "the host name");
        assert!(cluster.tls.is_none() && cluster.auth.is_none());
        assert!(
            load("").unwrap().cluster.is_none(),
            "single host by default"
        );
    }

    #[test]
    fn every_problem_of_the_cluster_table_is_named_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path(), 0o644);
        let text = format!(
            "[cluster]\netcd = [\"127.0.0.1:2379\", \"https://a:2379\"]\nnode = \"web 1\"\n\
             prefix = \"renewd\"\nsecret_key_file = \"{}\"\nlease_ttl = \"1s\"\n\
             etcd_user = \"renewd\"\n",
            key.display()
        );
        let problems = load(&text).unwrap_err();
        for expected in [
            "cluster.etcd: \"127.0.0.1:2379\": expected http://HOST:PORT",
            "cluster.node: \"web 1\"",
            "cluster.prefix",
            "cluster.secret_key_file",
            "chmod 600",
            "cluster.lease_ttl: must be at least 2s",
            "cluster.etcd_user: needs etcd_password_file too",
            "cluster.etcd_ca: https:// endpoints need etcd_ca",
        ] {
            assert!(problems.contains(expected), "{expected:?} in\n{problems}");
        }
        let unknown = load("[cluster]\netcd = [\"http://e:2379\"]\nsecret = 1\n").unwrap_err();
        assert!(unknown.contains("secret"), "{unknown}");
        let missing = load("[cluster]\netcd = [\"http://e:2379\"]\n").unwrap_err();
        assert!(
            missing.contains("cluster.secret_key_file: missing"),
            "{missing}"
        );
    }
}
