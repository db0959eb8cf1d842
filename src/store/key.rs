//! Telling whether a private key belongs to a certificate without computing its
//! public key.
//!
//! Loading a lineage checks that `privkey.pem` matches `cert.pem`. Parsing the key
//! with the crypto library recomputes its public key (a scalar multiplication for
//! EC), which made that check most of the daemon's startup with thousands of
//! certificates. A PKCS#8 key already carries its public key — EC keys in the
//! optional `publicKey` field that rcgen, OpenSSL and certbot write, RSA keys as
//! modulus and exponent — so it can be compared with the certificate's
//! SubjectPublicKeyInfo directly.

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::asn1_rs::{Any, Class, FromDer, Oid, Tag};
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};

/// The SubjectPublicKeyInfo (DER) of the PKCS#8 key in `key_pem`, rebuilt from
/// what the key file stores; `None` for other formats or when the key does not
/// carry its public key.
pub(super) fn embedded_spki(key_pem: &str) -> Option<Vec<u8>> {
    let PrivateKeyDer::Pkcs8(pkcs8) = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?
    else {
        return None;
    };
    // PrivateKeyInfo ::= SEQUENCE { version, algorithm AlgorithmIdentifier,
    //                               privateKey OCTET STRING, ... }
    let (_, info) = Any::from_der(pkcs8.secret_pkcs8_der()).ok()?;
    let (rest, _version) = Any::from_der(info.data).ok()?;
    let (after_algorithm, algorithm) = Any::from_der(rest).ok()?;
    let algorithm_der = &rest[..rest.len() - after_algorithm.len()];
    let (_, private) = Any::from_der(after_algorithm).ok()?;
    if private.tag() != Tag::OctetString {
        return None;
    }
    let (_, key) = Any::from_der(private.data).ok()?;
    let (_, oid) = Oid::from_der(algorithm.data).ok()?;
    let bit_string = if oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        ec_public_key(key.data)?
    } else if oid == OID_PKCS1_RSAENCRYPTION {
        let mut bits = vec![0]; // no unused bits
        bits.extend(rsa_public_key(key.data)?);
        bits
    } else {
        return None;
    };
    let mut spki = algorithm_der.to_vec();
    spki.extend(tlv(0x03, &bit_string));
    Some(tlv(0x30, &spki))
}

/// The `publicKey [1] BIT STRING` of an ECPrivateKey (RFC 5915), with its
/// unused-bits byte.
fn ec_public_key(sequence: &[u8]) -> Option<Vec<u8>> {
    let mut rest = sequence;
    while !rest.is_empty() {
        let (next, field) = Any::from_der(rest).ok()?;
        if field.class() == Class::ContextSpecific && field.tag() == Tag(1) {
            let (_, bits) = Any::from_der(field.data).ok()?;
            return (bits.tag() == Tag::BitString).then(|| bits.data.to_vec());
        }
        rest = next;
    }
    None
}

/// `RSAPublicKey ::= SEQUENCE { modulus, publicExponent }` taken from an
/// RSAPrivateKey (RFC 8017), which stores both right after its version.
fn rsa_public_key(sequence: &[u8]) -> Option<Vec<u8>> {
    let (rest, _version) = Any::from_der(sequence).ok()?;
    let (after_modulus, _) = Any::from_der(rest).ok()?;
    let (after_exponent, _) = Any::from_der(after_modulus).ok()?;
    Some(tlv(0x30, &rest[..rest.len() - after_exponent.len()]))
}

/// A DER tag-length-value with a single-byte `tag`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = &bytes[bytes.iter().take_while(|&&b| b == 0).count()..];
        out.push(0x80 | significant.len() as u8);
        out.extend(significant);
    }
    out.extend(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};

    #[test]
    fn generated_keys_carry_the_spki_of_their_certificate() {
        for key in [
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap(),
        ] {
            let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
            assert_eq!(embedded_spki(&key.serialize_pem()), Some(spki));
        }
    }

    #[test]
    fn other_formats_are_left_to_the_full_check() {
        assert_eq!(embedded_spki("not a key"), None);
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(embedded_spki(sec1), None);
    }

    #[test]
    fn long_lengths_are_encoded_in_long_form() {
        assert_eq!(tlv(0x04, &[7; 3]), [0x04, 3, 7, 7, 7]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
