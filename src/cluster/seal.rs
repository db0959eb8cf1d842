//! Private keys at rest in etcd: sealed with ChaCha20-Poly1305 (RFC 8439,
//! aws-lc-rs's AEAD) under the fleet's `secret_key_file`, a random 96-bit
//! nonce per seal, and the certificate's name and serial as associated data,
//! so a sealed key cannot be passed off as another certificate's.

use std::path::Path;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::Error;

/// The fleet's key: seals and opens private keys.
pub(crate) struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Reads the 32-byte key at `path`: 32 raw bytes, or their base64.
    ///
    /// # Errors
    ///
    /// [`Error::SecretKey`] naming the file and what is wrong with it.
    pub(crate) fn load(path: &Path) -> Result<Self, Error> {
        let bad = |why: String| Error::SecretKey(format!("{}: {why}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let raw = if bytes.len() == 32 {
            bytes
        } else {
            let text = String::from_utf8_lossy(&bytes);
            STANDARD
                .decode(text.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .ok_or_else(|| {
                    bad(format!(
                        "{} bytes; expected 32 random bytes or their base64 \
                         (head -c 32 /dev/urandom > {})",
                        bytes.len(),
                        path.display()
                    ))
                })?
        };
        Self::from_bytes(&raw).map_err(bad)
    }

    fn from_bytes(raw: &[u8]) -> Result<Self, String> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, raw).map_err(|e| e.to_string())?;
        Ok(Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        })
    }

    /// `plain` sealed for `context`: base64 of nonce, ciphertext and tag.
    ///
    /// # Errors
    ///
    /// [`Error::Seal`] when no random nonce could be drawn.
    pub(crate) fn seal(&self, context: &str, plain: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| Error::Seal("no random nonce".to_owned()))?;
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| Error::Seal("sealing failed".to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Opens what [`Sealer::seal`] sealed for `context`.
    ///
    /// # Errors
    ///
    /// [`Error::Seal`] when it is not base64, was sealed under another key
    /// (a node whose `secret_key_file` differs) or for another context.
    pub(crate) fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, Error> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|e| Error::Seal(format!("sealed key is not base64: {e}")))?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::Seal("sealed key too short".to_owned()));
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Error::Seal("bad nonce".to_owned()))?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| {
                Error::Seal(
                    "cannot open the sealed key: this node's secret_key_file differs from \
                     the node that sealed it (every node needs the same file)"
                        .to_owned(),
                )
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_the_same_key_and_context() {
        let sealer = Sealer::from_bytes(&[7; 32]).unwrap();
        let sealed = sealer.seal("a 01", b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            sealer.open("a 01", &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert!(sealer.open("b 01", &sealed).is_err(), "another certificate");
        let other = Sealer::from_bytes(&[8; 32]).unwrap();
        assert!(other.open("a 01", &sealed).is_err(), "another key");
    }

    #[test]
    fn key_files_of_the_wrong_size_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        std::fs::write(&path, b"short").unwrap();
        let err = Sealer::load(&path).unwrap_err().to_string();
        assert!(err.contains("cluster.key") && err.contains("32"), "{err}");
        std::fs::write(&path, STANDARD.encode([1u8; 32])).unwrap();
        assert!(Sealer::load(&path).is_ok(), "base64 of 32 bytes");
        std::fs::write(&path, [1u8; 32]).unwrap();
        assert!(Sealer::load(&path).is_ok(), "32 raw bytes");
    }
}
