//! What reading a lineage found, kept so that it need not be read again.
//!
//! Reading `live/<name>` means resolving the link, opening, reading and
//! parsing `cert.pem` and `privkey.pem`: with 100,000 certificates, most of a
//! daemon's startup and of a `status` of all of them. [`Facts`] are what
//! that read found, with the identity of the `cert.pem` it was read from
//! (inode, size, modification time, through the link). One `stat(2)` of
//! `live/<name>/cert.pem` then tells whether they still hold: a new version is
//! another directory and so another file, and an archived version is never
//! rewritten in place (`docs/reference/files.md`). The state keeps them per
//! certificate (`crate::state::CertState::live`), so a restart reads only what
//! changed while it was down.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::cert::CertInfo;
use crate::config::KeyType;

/// The identity of a `cert.pem`: inode, size, modification time (ns since the
/// epoch). Copies, restores and new versions all change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp(u64, u64, i64);

impl Stamp {
    /// The stamp of the file `meta` describes.
    #[must_use]
    pub fn of(meta: &fs::Metadata) -> Self {
        let mtime = meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec();
        Self(meta.ino(), meta.size(), mtime)
    }

    /// The stamp of the file at `path` under the directory `dir`, following
    /// links (`fstatat(2)`).
    ///
    /// # Errors
    ///
    /// The `fstatat(2)` error.
    pub fn at_in(dir: &File, path: &Path) -> io::Result<Self> {
        let st = fstatat(dir, path, AtFlags::empty())?;
        let mtime = st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec;
        Ok(Self(
            st.st_ino,
            u64::try_from(st.st_size).unwrap_or(0),
            mtime,
        ))
    }
}

/// What renewd knows of one live version, as read from its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Archive version `live/<name>` pointed at.
    pub version: u32,
    /// Its `cert.pem`, when read.
    pub stamp: Stamp,
    /// Serial number, as [`CertInfo::serial`].
    pub serial: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Subject alternative names, as [`CertInfo::domains`].
    #[serde(deserialize_with = "exact_vec")]
    pub domains: Vec<String>,
    /// Key algorithm, if one renewd issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeyType>,
    /// RFC 9773 certificate identifier, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_id: Option<String>,
    /// Whether `privkey.pem` belongs to `cert.pem`.
    pub key_matches: bool,
}

impl Facts {
    /// The facts of `cert`, read from a file stamped `stamp`.
    #[must_use]
    pub fn new(version: u32, stamp: Stamp, cert: &CertInfo, key_matches: bool) -> Self {
        Self {
            version,
            stamp,
            serial: cert.serial.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            domains: cert.domains.clone(),
            key_type: cert.key_type,
            ari_id: cert.ari_id.clone(),
            key_matches,
        }
    }

    /// The leaf they describe, without its DER (see [`super::Lineage::der`]).
    #[must_use]
    pub fn cert(&self) -> CertInfo {
        CertInfo {
            serial: self.serial.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
            domains: self.domains.clone(),
            key_type: self.key_type,
            ari_id: self.ari_id.clone(),
            spki_der: Vec::new(),
            der: Vec::new(),
        }
    }
}

/// A list read without spare capacity: serde grows one from four slots, and
/// the state holds one per certificate (~7 MB with 100,000).
pub(crate) fn exact_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut v = Vec::<T>::deserialize(d)?;
    v.shrink_to_fit();
    Ok(v)
}

/// Reads `path` and returns its bytes with the stamp of the file read (taken
/// from the open file, so the two cannot describe different files).
///
/// # Errors
///
/// The I/O error.
pub fn read_stamped(path: &Path) -> io::Result<(Vec<u8>, Stamp)> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok((bytes, Stamp::of(&meta)))
}
