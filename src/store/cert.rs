//! What renewd needs to know about an issued certificate, read with x509-parser.

use std::net::IpAddr;

use instant_acme::CertificateIdentifier;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::config::{Identifier, KeyType};

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// No `-----BEGIN CERTIFICATE-----` block.
    #[error("no PEM certificate found")]
    NoPem,
    /// PEM or DER could not be decoded.
    #[error("not a valid X.509 certificate: {0}")]
    Parse(String),
}

/// The parsed leaf of a lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lowercase hex without separators or leading zero bytes.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Subject alternative names, in the certificate's order: DNS names as
    /// issued, IP addresses (RFC 8738) in canonical form (`2001:db8::1`), the
    /// form [`crate::config::Identifier`] writes them in.
    pub domains: Vec<String>,
    /// Key algorithm of the subject public key, if it is one renewd issues.
    pub key_type: Option<KeyType>,
    /// RFC 9773 certificate identifier (`base64url(AKI).base64url(serial)`), if the
    /// certificate has an Authority Key Identifier.
    pub ari_id: Option<String>,
    /// DER of the SubjectPublicKeyInfo, to match against the private key.
    pub spki_der: Vec<u8>,
    /// DER of the whole certificate.
    pub der: Vec<u8>,
}

impl CertInfo {
    /// Parses the first certificate in `pem`.
    ///
    /// # Errors
    ///
    /// [`CertError`] when there is no PEM certificate or it does not parse.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let block = x509_parser::pem::Pem::iter_from_buffer(pem)
            .next()
            .ok_or(CertError::NoPem)?
            .map_err(|e| CertError::Parse(e.to_string()))?;
        Self::from_der(&block.contents)
    }

    /// Parses a DER certificate.
    ///
    /// # Errors
    ///
    /// [`CertError::Parse`] when it does not parse.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
        let domains = cert
            .iter_extensions()
            .filter_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => Some(san),
                _ => None,
            })
            .flat_map(|san| san.general_names.iter())
            .filter_map(san_text)
            .collect();
        let ari_id = CertificateIdentifier::try_from(&CertificateDer::from(der))
            .ok()
            .map(|id| id.to_string());
        Ok(Self {
            serial: serial_hex(cert.tbs_certificate.raw_serial()),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            domains,
            key_type: key_type(&cert),
            ari_id,
            spki_der: cert.public_key().raw.to_vec(),
            der: der.to_vec(),
        })
    }

    /// Total validity period.
    #[must_use]
    pub fn lifetime(&self) -> time::Duration {
        self.not_after - self.not_before
    }

    /// Whether `key_pem` is the private key of this certificate: from the public
    /// key the key file carries when it does (see `store::key`), else by parsing
    /// the key with the crypto library.
    #[must_use]
    pub fn matches_key(&self, key_pem: &str) -> bool {
        super::key::embedded_spki(key_pem).is_some_and(|spki| spki == self.spki_der)
            || rcgen::KeyPair::from_pem(key_pem).is_ok_and(|key| {
                rcgen::PublicKeyData::subject_public_key_info(&key) == self.spki_der
            })
    }

    /// Whether the certificate covers exactly `domains`, names and addresses
    /// (order and case do not matter).
    #[must_use]
    pub fn covers_exactly(&self, domains: &[Identifier]) -> bool {
        let normalize = |d: &mut dyn Iterator<Item = String>| {
            let mut v: Vec<String> = d.map(|s| s.to_ascii_lowercase()).collect();
            v.sort();
            v.dedup();
            v
        };
        normalize(&mut self.domains.iter().cloned())
            == normalize(&mut domains.iter().map(ToString::to_string))
    }
}

/// Whether two serials are the same number, as [`normalize_serial`] would
/// have them, without allocating (the scheduler and `status` compare one per
/// certificate).
#[must_use]
pub fn same_serial(a: &str, b: &str) -> bool {
    a == b || significant_digits(a).eq(significant_digits(b))
}

/// Normalizes a serial as CAs publish them (`03:AB:…`, `0x03ab…`, `3ab…`) for comparison.
#[must_use]
pub fn normalize_serial(serial: &str) -> String {
    let digits: String = significant_digits(serial).map(char::from).collect();
    if digits.is_empty() {
        "0".to_owned()
    } else {
        digits
    }
}

/// A serial's hex digits in lower case, without a `0x`, separators or
/// leading zeros (none at all for zero).
fn significant_digits(serial: &str) -> impl Iterator<Item = u8> + '_ {
    serial
        .trim()
        .trim_start_matches("0x")
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| b.to_ascii_lowercase())
        .skip_while(|b| *b == b'0')
}

/// A serial as openssl and CAs print it: every byte of the number in hex,
/// leading zero bytes kept (`0583…`), without the sign byte DER adds before a
/// high bit.
fn serial_hex(raw: &[u8]) -> String {
    let magnitude = match raw {
        [0, next, ..] if next & 0x80 != 0 => &raw[1..],
        _ => raw,
    };
    magnitude.iter().map(|b| format!("{b:02x}")).collect()
}

/// A DNS or IP subject alternative name as text; other kinds (e-mail, URI)
/// are not what renewd certifies.
fn san_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
        GeneralName::IPAddress(bytes) => {
            let ip = match *bytes {
                [a, b, c, d] => IpAddr::from([*a, *b, *c, *d]),
                _ => IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
            };
            Some(ip.to_string())
        }
        _ => None,
    }
}

fn key_type(cert: &X509Certificate<'_>) -> Option<KeyType> {
    match cert.public_key().parsed().ok()? {
        PublicKey::EC(ec) => match ec.key_size() {
            256 => Some(KeyType::EcdsaP256),
            384 => Some(KeyType::EcdsaP384),
            _ => None,
        },
        PublicKey::RSA(rsa) => match rsa.key_size() {
            2048 => Some(KeyType::Rsa2048),
            3072 => Some(KeyType::Rsa3072),
            4096 => Some(KeyType::Rsa4096),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_read_as_openssl_prints_them() {
        assert_eq!(serial_hex(&[0x05, 0x83, 0x1f]), "05831f");
        assert_eq!(serial_hex(&[0x00, 0x83, 0x1f]), "831f");
        assert_eq!(serial_hex(&[0x00, 0x03]), "0003");
    }

    #[test]
    fn serials_compare_however_they_are_written() {
        assert_eq!(normalize_serial("03:AB:0c"), "3ab0c");
        assert_eq!(normalize_serial("0x03ab0c\n"), "3ab0c");
        assert_eq!(normalize_serial("3AB0C"), "3ab0c");
        for (a, b) in [
            ("03:AB:0c", "3ab0c"),
            ("0x03ab0c\n", "3AB0C"),
            ("00", "0x0"),
        ] {
            assert!(same_serial(a, b), "{a} {b}");
            assert_eq!(normalize_serial(a), normalize_serial(b));
        }
        for (a, b) in [("3ab0c", "3ab0d"), ("3ab0c", "3ab0c0"), ("1", "")] {
            assert!(!same_serial(a, b), "{a} {b}");
            assert_ne!(normalize_serial(a), normalize_serial(b));
        }
    }

    #[test]
    fn self_signed_certificate_is_read_back() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["a.example".into(), "b.example".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_pem(cert.pem().as_bytes()).unwrap();
        assert_eq!(info.domains, ["a.example", "b.example"]);
        assert_eq!(info.key_type, Some(KeyType::EcdsaP384));
        assert!(info.matches_key(&key.serialize_pem()));
        let other = rcgen::KeyPair::generate().unwrap();
        assert!(!info.matches_key(&other.serialize_pem()));
        let ids = |d: &[&str]| d.iter().map(|d| d.parse().unwrap()).collect::<Vec<_>>();
        assert!(info.covers_exactly(&ids(&["B.example", "a.example"])));
        assert!(!info.covers_exactly(&ids(&["a.example"])));
    }

    #[test]
    fn ip_addresses_are_read_back_in_the_form_the_config_compares() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            "a.example".into(),
            "192.0.2.1".into(),
            "2001:db8::1".into(),
        ])
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_pem(cert.pem().as_bytes()).unwrap();
        assert_eq!(info.domains, ["a.example", "192.0.2.1", "2001:db8::1"]);
        let configured: Vec<Identifier> = ["2001:DB8:0::1", "a.example", "192.0.2.1"]
            .iter()
            .map(|d| d.parse().unwrap())
            .collect();
        assert!(info.covers_exactly(&configured));
        assert!(!info.covers_exactly(&configured[..2]));
    }
}
