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
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use serde::{Deserialize, Serialize};

use super::Serial;
use super::cert::CertInfo;
use crate::clock::Moment;
use crate::config::KeyType;
use crate::intern::shared;

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
    pub serial: Serial,
    /// Start of validity.
    pub not_before: Moment,
    /// End of validity.
    pub not_after: Moment,
    /// Subject alternative names, as [`CertInfo::domains`], one to a line:
    /// one allocation, where a list of strings was one per name and one for
    /// the list (5 MB with 100,000 certificates). Read and written as a list.
    #[serde(with = "lines")]
    domains: Box<str>,
    /// Key algorithm, if one renewd issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeyType>,
    /// The RFC 9773 certificate identifier, if any, as [`Facts::ari_id`]
    /// makes it: its first part (the issuer's key identifier, one value
    /// shared by every certificate of the issuer) when the second can be
    /// made from the serial — as a string each, it was 7 MB with 100,000
    /// certificates — or else the whole identifier. (Versions before wrote
    /// the whole identifier as `ari_id`.)
    #[serde(
        default,
        alias = "ari_id",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "ari_opt"
    )]
    ari: Option<Arc<str>>,
    /// Whether `privkey.pem` belongs to `cert.pem`.
    pub key_matches: bool,
}

impl Facts {
    /// The facts of `cert`, read from a file stamped `stamp`.
    #[must_use]
    pub fn new(version: u32, stamp: Stamp, cert: &CertInfo, key_matches: bool) -> Self {
        let serial = Serial::new(&cert.serial);
        let ari = cert.ari_id.as_deref().map(|id| ari_part(id, &serial));
        Self {
            version,
            stamp,
            serial,
            not_before: cert.not_before.into(),
            not_after: cert.not_after.into(),
            domains: cert.domains.join("\n").into(),
            key_type: cert.key_type,
            ari,
            key_matches,
        }
    }

    /// The leaf they describe, without its DER (see [`super::Lineage::der`]).
    #[must_use]
    pub fn cert(&self) -> CertInfo {
        CertInfo {
            serial: self.serial.to_string(),
            not_before: self.not_before.time(),
            not_after: self.not_after.time(),
            domains: self.domains.lines().map(str::to_owned).collect(),
            key_type: self.key_type,
            ari_id: self.ari_id(),
            spki_der: Vec::new(),
            der: Vec::new(),
        }
    }

    /// Keeps of a whole identifier read from the state only what
    /// [`Facts::new`] would.
    pub fn compact(&mut self) {
        if let Some(whole) = self.ari.take_if(|a| a.contains('.')) {
            self.ari = Some(ari_part(&whole, &self.serial));
        }
    }

    /// The RFC 9773 certificate identifier, if the certificate has one.
    #[must_use]
    pub fn ari_id(&self) -> Option<String> {
        let ari = self.ari.as_deref()?;
        if ari.contains('.') {
            return Some(ari.to_owned());
        }
        Some(format!("{ari}.{}", serial_part(&self.serial)?))
    }
}

/// What [`Facts`] keep of the identifier `id` of the certificate `serial`:
/// its first part, [`shared`] with every other certificate of the issuer,
/// when the second is what [`serial_part`] makes of `serial`.
fn ari_part(id: &str, serial: &Serial) -> Arc<str> {
    match id.split_once('.') {
        Some((first, second)) if serial_part(serial).as_deref() == Some(second) => shared(first),
        _ => Arc::from(id),
    }
}

/// Reads [`Facts::ari`]: a first part [`shared`], a whole identifier (as
/// versions before wrote them all) as it is, until [`Facts::compact`].
fn ari_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    Ok(text.map(|t| {
        if t.contains('.') {
            Arc::from(t)
        } else {
            shared(&t)
        }
    }))
}

/// The second part of an identifier: base64url of the serial's DER
/// content, the sign byte included, which [`CertInfo::serial`] leaves out.
fn serial_part(serial: &Serial) -> Option<String> {
    let mut der = serial.bytes()?;
    if der.first().is_some_and(|b| b & 0x80 != 0) {
        der.insert(0, 0);
    }
    Some(URL_SAFE_NO_PAD.encode(der))
}

/// [`Facts::domains`] as the list of names it holds.
mod lines {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(lines: &str, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(lines.lines())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<str>, D::Error> {
        // A name with a line break in it (no CA issues one) reads as two,
        // which do not match the config's, so the certificate is renewed.
        let names = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(names.join("\n").into())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};

    /// A leaf with an Authority Key Identifier and the serial `serial`.
    fn leaf(serial: &[u8]) -> CertInfo {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = Issuer::new(ca, KeyPair::generate().unwrap());
        let mut leaf = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        leaf.serial_number = Some(SerialNumber::from(serial.to_vec()));
        leaf.use_authority_key_identifier_extension = true;
        let leaf = leaf
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        CertInfo::from_der(leaf.der()).unwrap()
    }

    fn stamp() -> Stamp {
        Stamp(1, 2, 3)
    }

    #[test]
    fn the_ari_identifier_is_made_again_from_the_issuers_part_and_the_serial() {
        for serial in [&[0x8a, 0x01][..], &[0x05, 0x83, 0x1f], &[0x7f; 20]] {
            let cert = leaf(serial);
            let id = cert.ari_id.clone().unwrap();
            let facts = Facts::new(1, stamp(), &cert, true);
            assert_eq!(facts.ari_id().as_deref(), Some(&*id));
            assert_eq!(facts.cert().ari_id.as_deref(), Some(&*id));
            let (first, _) = id.split_once('.').unwrap();
            assert_eq!(
                facts.ari.as_deref(),
                Some(first),
                "only the first part is kept"
            );
            let json = serde_json::to_string(&facts).unwrap();
            assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), facts);
            // What versions before wrote: the whole identifier as `ari_id`.
            let old = json.replace(
                &format!("\"ari\":\"{first}\""),
                &format!("\"ari_id\":\"{id}\""),
            );
            let mut read: Facts = serde_json::from_str(&old).unwrap();
            assert_eq!(read.ari_id().as_deref(), Some(&*id));
            read.compact();
            assert_eq!(read, facts);
        }
    }

    #[test]
    fn the_names_are_kept_as_one_string_and_read_and_written_as_a_list() {
        let mut cert = leaf(&[0x01]);
        cert.domains = vec![
            "a.example".into(),
            "*.b.example".into(),
            "2001:db8::1".into(),
        ];
        let facts = Facts::new(1, stamp(), &cert, true);
        assert_eq!(facts.cert().domains, cert.domains);
        let json = serde_json::to_string(&facts).unwrap();
        assert!(
            json.contains(r#""domains":["a.example","*.b.example","2001:db8::1"]"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), facts);
        cert.domains.clear();
        assert!(
            Facts::new(1, stamp(), &cert, true)
                .cert()
                .domains
                .is_empty()
        );
    }

    #[test]
    fn an_identifier_the_serial_does_not_make_is_kept_whole() {
        let mut cert = leaf(&[0x01, 0x02]);
        cert.ari_id = Some("aXNzdWVy.c29tZXRoaW5nIGVsc2U".to_owned());
        let facts = Facts::new(1, stamp(), &cert, true);
        assert_eq!(facts.ari_id(), cert.ari_id);
        cert.ari_id = None;
        assert_eq!(Facts::new(1, stamp(), &cert, true).ari_id(), None);
    }
}
