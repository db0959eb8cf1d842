//! One certbot lineage's certificates into renewd's store: its archive
//! history in order (`archive/<name>/cert1.pem`, `cert2.pem`, ... up to the
//! version `live/` points at), each version a new version of renewd's lineage,
//! without ever replacing a live certificate that is at least as new.

use std::path::{Path, PathBuf};

use super::conf::RenewalConf;
use crate::store::{CertInfo, Issued, Store};

/// What became of a lineage's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Published as these versions of renewd's lineage (the last is live).
    Versions(Vec<u32>),
    /// renewd's live certificate is certbot's current one already.
    AlreadyLive(u32),
    /// renewd's live certificate expires no earlier than certbot's: kept.
    KeptNewer {
        /// Its serial.
        serial: String,
        /// Its expiry.
        not_after: time::OffsetDateTime,
    },
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Versions(v) if v.len() == 1 => write!(f, "imported as version {}", v[0]),
            Self::Versions(v) => write!(
                f,
                "imported as versions {}-{} (certbot's archive history), the last live",
                v[0],
                v[v.len() - 1]
            ),
            Self::AlreadyLive(v) => write!(f, "already imported (version {v} is live)"),
            Self::KeptNewer { serial, not_after } => write!(
                f,
                "renewd's live certificate (serial {serial}, expires {}) is at least as new \
                 as certbot's; kept",
                not_after.date()
            ),
        }
    }
}

/// One version: the PEM files and the parsed leaf.
struct Version {
    issued: Issued,
    info: CertInfo,
}

/// Publishes lineage `name` of certbot's config dir `dir` into `store`; returns
/// certbot's current leaf and what was published.
pub(super) fn import(
    name: &str,
    conf: &RenewalConf,
    dir: &Path,
    store: &Store,
) -> Result<(CertInfo, Published), String> {
    let path = |p: &Option<PathBuf>, what: &str| {
        p.as_deref()
            .map(|p| conf.rebase(p, dir))
            .ok_or_else(|| format!("no `{what}` line"))
    };
    let files = [
        path(&conf.cert, "cert")?,
        path(&conf.chain, "chain")?,
        path(&conf.fullchain, "fullchain")?,
        path(&conf.privkey, "privkey")?,
    ];
    let current = read_version(&files)?;
    let mut versions = history(&files[0]);
    versions.push(current);
    let live = store.lineage(name).map_err(|e| e.to_string())?;
    let current = &versions[versions.len() - 1].info;
    if let Some(live) = &live {
        if live.cert.serial == current.serial {
            return Ok((current.clone(), Published::AlreadyLive(live.version)));
        }
        if live.cert.not_after >= current.not_after {
            return Ok((
                current.clone(),
                Published::KeptNewer {
                    serial: live.cert.serial.clone(),
                    not_after: live.cert.not_after,
                },
            ));
        }
    }
    let newer = |v: &&Version| {
        live.as_ref()
            .is_none_or(|l| v.info.not_after > l.cert.not_after)
    };
    let mut published = Vec::new();
    for version in versions.iter().filter(newer) {
        published.push(
            store
                .publish(name, &version.issued)
                .map_err(|e| e.to_string())?,
        );
    }
    let info = versions.pop().map(|v| v.info).ok_or("no version")?;
    Ok((info, Published::Versions(published)))
}

/// Reads `[cert, chain, fullchain, privkey]` and checks that they belong together.
fn read_version(files: &[PathBuf; 4]) -> Result<Version, String> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let [cert_pem, chain_pem, fullchain_pem, key_pem] = [
        read(&files[0])?,
        read(&files[1])?,
        read(&files[2])?,
        read(&files[3])?,
    ];
    let info = CertInfo::from_pem(cert_pem.as_bytes())
        .map_err(|e| format!("{}: {e}", files[0].display()))?;
    if !info.matches_key(&key_pem) {
        return Err(format!(
            "{} does not belong to {}; not imported",
            files[3].display(),
            files[0].display()
        ));
    }
    Ok(Version {
        issued: Issued {
            cert_pem,
            chain_pem,
            fullchain_pem,
            key_pem,
        },
        info,
    })
}

/// The archive versions before the live one, oldest first: `live/<name>/cert.pem`
/// links (relatively, as certbot makes it, or absolutely) to
/// `archive/<name>/cert<N>.pem`; versions 1..N-1 whose four files are all there
/// and match are history. A `cert.pem` that is no link has none.
fn history(live_cert: &Path) -> Vec<Version> {
    let Ok(target) = std::fs::canonicalize(live_cert) else {
        return Vec::new();
    };
    let current: Option<u32> = target
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_prefix("cert")?.strip_suffix(".pem")?.parse().ok());
    let (Some(current), Some(archive)) = (current, target.parent()) else {
        return Vec::new();
    };
    (1..current)
        .filter_map(|n| {
            let file = |kind: &str| archive.join(format!("{kind}{n}.pem"));
            read_version(&[
                file("cert"),
                file("chain"),
                file("fullchain"),
                file("privkey"),
            ])
            .ok()
        })
        .collect()
}
