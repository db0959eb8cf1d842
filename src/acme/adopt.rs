//! Adopting an ACME account that another client registered (certbot's), so a
//! migration keeps the account — its URL, its history at the CA — instead of
//! registering a new one.
//!
//! The account's key arrives as a JWK ([RFC 7517]). renewd signs with ECDSA
//! P-256 only (the ACME library's one key type): a P-256 key is stored as it
//! is, anything else (certbot's RSA keys) is first rolled over to a new P-256
//! key with the CA's `keyChange` ([RFC 8555 §7.3.5]). The account URL stays the
//! same; the old key stops working at the CA, so the other client can no longer
//! use the account.
//!
//! [RFC 7517]: https://www.rfc-editor.org/rfc/rfc7517
//! [RFC 8555 §7.3.5]: https://www.rfc-editor.org/rfc/rfc8555#section-7.3.5

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use instant_acme::{BodyWrapper, HttpClient as _};
use serde_json::{Value, json};

use super::Error;
use super::http::CountingClient;
use crate::config::CaConfig;
use crate::metrics::Metrics;
use crate::store::Store;

/// ACME servers require one (RFC 8555 §6.1).
const USER_AGENT: &str = concat!("renewd/", env!("CARGO_PKG_VERSION"));

/// An account key in a form renewd can use or roll over.
pub enum ForeignKey {
    /// ECDSA P-256, PKCS#8 DER: renewd signs with it as it is.
    EcdsaP256(Vec<u8>),
    /// RSA: the PKCS#1 `RSAPrivateKey` DER and the public JWK (`kty`, `n`, `e`).
    Rsa {
        /// PKCS#1 DER.
        pkcs1: Vec<u8>,
        /// The public part as a JWK, for the rollover's `oldKey`.
        public_jwk: Value,
    },
}

impl ForeignKey {
    /// Reads a private JWK: RSA (`n e d p q dp dq qi`) or EC P-256 (`x y d`).
    ///
    /// # Errors
    ///
    /// What is missing or unsupported (another curve, a key type other than
    /// RSA and EC), in words.
    pub fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let text = jwk[name]
                .as_str()
                .ok_or_else(|| format!("JWK has no \"{name}\""))?;
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|e| format!("JWK \"{name}\": not base64url: {e}"))
        };
        match jwk["kty"].as_str() {
            Some("RSA") => {
                let parts = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
                    .iter()
                    .map(|name| field(name))
                    .collect::<Result<Vec<_>, _>>()?;
                let pkcs1 = rsa_private_key_der(&parts);
                RsaKeyPair::from_der(&pkcs1).map_err(|e| format!("RSA JWK rejected: {e}"))?;
                Ok(Self::Rsa {
                    pkcs1,
                    public_jwk: json!({ "e": jwk["e"], "kty": "RSA", "n": jwk["n"] }),
                })
            }
            Some("EC") if jwk["crv"] == "P-256" => {
                let public = [vec![4], field("x")?, field("y")?].concat();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &field("d")?,
                    &public,
                )
                .map_err(|e| format!("EC JWK rejected: {e}"))?;
                let pkcs8 = pair
                    .to_pkcs8v1()
                    .map_err(|_| "EC JWK: cannot encode as PKCS#8".to_owned())?;
                Ok(Self::EcdsaP256(pkcs8.as_ref().to_vec()))
            }
            Some("EC") => Err(format!(
                "EC key on curve {}: only P-256 is supported",
                jwk["crv"]
            )),
            other => Err(format!("unsupported JWK key type {other:?}")),
        }
    }
}

/// How an account was adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// The key was stored as it is.
    AsIs,
    /// The key was rolled over to a new ECDSA P-256 key at the CA.
    RolledOver,
}

/// Makes the account at `account_url`, whose key is `key`, renewd's account at
/// CA `name` (`accounts/<name>/account.json`), rolling an RSA key over first.
///
/// # Errors
///
/// [`Error::Account`] when the CA refuses the rollover or cannot be reached, or
/// the account cannot be stored.
pub async fn adopt(
    store: &Store,
    name: &str,
    ca: &CaConfig,
    account_url: &str,
    key: ForeignKey,
) -> Result<Adopted, Error> {
    let fail = |message: String| Error::Account {
        ca: name.to_owned(),
        source: message.into(),
    };
    let (pkcs8, how) = match key {
        ForeignKey::EcdsaP256(pkcs8) => (pkcs8, Adopted::AsIs),
        ForeignKey::Rsa { pkcs1, public_jwk } => {
            let client = CountingClient::new(
                name,
                ca.trust.as_deref(),
                Metrics::new(),
                (Arc::default(), Arc::default()),
            )
            .map_err(|e| fail(e.to_string()))?;
            let old = RsaKeyPair::from_der(&pkcs1).map_err(|e| fail(e.to_string()))?;
            let rollover = Rollover {
                client: &client,
                account_url,
                old: (&old, &public_jwk),
            };
            let pkcs8 = rollover
                .run(&ca.directory)
                .await
                .map_err(|e| fail(format!("key rollover at {}: {e}", ca.directory)))?;
            (pkcs8, Adopted::RolledOver)
        }
    };
    super::account::store_adopted(store, name, &ca.directory, account_url, &pkcs8)?;
    Ok(how)
}

/// One `keyChange` request: the old RSA key signs the outer JWS, the new
/// P-256 key the inner one.
struct Rollover<'a> {
    client: &'a CountingClient,
    account_url: &'a str,
    old: (&'a RsaKeyPair, &'a Value),
}

impl Rollover<'_> {
    /// Rolls the account over; returns the new key's PKCS#8 DER.
    async fn run(&self, directory_url: &str) -> Result<Vec<u8>, String> {
        let (parts, directory) = self.send(directory_url, None).await?;
        if !parts.status.is_success() {
            return Err(format!(
                "directory {directory_url}: {}: {}",
                parts.status,
                String::from_utf8_lossy(&directory)
            ));
        }
        let directory: Value = serde_json::from_slice(&directory)
            .map_err(|e| format!("directory {directory_url}: {e}"))?;
        let url = |name: &str| {
            directory[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("the directory has no {name}"))
        };
        let (key_change, new_nonce) = (url("keyChange")?, url("newNonce")?);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a P-256 key".to_owned())?;
        let new = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|e| e.to_string())?;
        let inner = jws(
            &json!({ "alg": "ES256", "jwk": ec_jwk(new.public_key().as_ref()), "url": key_change }),
            &json!({ "account": self.account_url, "oldKey": self.old.1 }),
            |data| {
                new.sign(&rng, data)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| "ES256 signing failed".to_owned())
            },
        )?;
        let mut nonce = self.nonce(&new_nonce).await?;
        // A CA may reject a nonce now and then (badNonce); its answer carries a fresh one.
        for _ in 0..5 {
            let outer = jws(
                &json!({ "alg": "RS256", "kid": self.account_url, "nonce": nonce, "url": key_change }),
                &inner,
                |data| self.sign_rsa(data),
            )?;
            let (parts, body) = self.send(&key_change, Some(outer.to_string())).await?;
            if parts.status.is_success() {
                return Ok(pkcs8.as_ref().to_vec());
            }
            let problem: Value = serde_json::from_slice(&body).unwrap_or_default();
            if problem["type"] != "urn:ietf:params:acme:error:badNonce" {
                return Err(format!(
                    "{}: {}",
                    parts.status,
                    problem["detail"].as_str().unwrap_or("no detail")
                ));
            }
            nonce = replay_nonce(&parts).ok_or("a badNonce answer without a new nonce")?;
        }
        Err("the CA rejected five nonces in a row".to_owned())
    }

    fn sign_rsa(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let key = self.old.0;
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            data,
            &mut signature,
        )
        .map_err(|_| "RS256 signing failed".to_owned())?;
        Ok(signature)
    }

    async fn nonce(&self, new_nonce: &str) -> Result<String, String> {
        let request = http::Request::head(new_nonce)
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(BodyWrapper::default())
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        replay_nonce(&response.parts).ok_or_else(|| format!("{new_nonce}: no Replay-Nonce"))
    }

    /// A GET (no body) or a JOSE POST; the status and the whole body.
    async fn send(
        &self,
        url: &str,
        body: Option<String>,
    ) -> Result<(http::response::Parts, Bytes), String> {
        let request = match body {
            None => http::Request::get(url)
                .header(http::header::USER_AGENT, USER_AGENT)
                .body(BodyWrapper::default()),
            Some(body) => http::Request::post(url)
                .header(http::header::USER_AGENT, USER_AGENT)
                .header(http::header::CONTENT_TYPE, "application/jose+json")
                .body(BodyWrapper::from(body.into_bytes())),
        }
        .map_err(|e| e.to_string())?;
        let mut response = self
            .client
            .request(request)
            .await
            .map_err(|e| super::with_causes(&e))?;
        let body = response
            .body
            .into_bytes()
            .await
            .map_err(|e| e.to_string())?;
        Ok((response.parts, body))
    }
}

fn replay_nonce(parts: &http::response::Parts) -> Option<String> {
    parts
        .headers
        .get("replay-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A flattened JWS (RFC 7515 §7.2.2) of `payload` under `protected`.
fn jws(
    protected: &Value,
    payload: &Value,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<Value, String> {
    let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signature = sign(format!("{protected}.{payload}").as_bytes())?;
    Ok(json!({
        "protected": protected,
        "payload": payload,
        "signature": URL_SAFE_NO_PAD.encode(signature),
    }))
}

/// The public JWK of an uncompressed P-256 point (`04 || x || y`).
fn ec_jwk(point: &[u8]) -> Value {
    json!({
        "crv": "P-256",
        "kty": "EC",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

/// PKCS#1 `RSAPrivateKey` (RFC 8017 appendix A.1.2): version 0, then the
/// eight big-endian integers in JWK order (n e d p q dp dq qi).
fn rsa_private_key_der(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut content = der_integer(&[0]);
    for part in parts {
        content.extend(der_integer(part));
    }
    der(0x30, &content)
}

fn der_integer(big_endian: &[u8]) -> Vec<u8> {
    let trimmed = match big_endian.iter().position(|&b| b != 0) {
        Some(first) => &big_endian[first..],
        None => &[0][..],
    };
    // A set high bit would make the integer negative.
    let mut bytes = if trimmed[0] & 0x80 == 0 {
        Vec::new()
    } else {
        vec![0]
    };
    bytes.extend_from_slice(trimmed);
    der(0x02, &bytes)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or_default());
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap_or_default());
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsBigEndian as _;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_integer(&[0, 0, 1]), [2, 1, 1]);
        assert_eq!(der_integer(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(der_integer(&[]), [2, 1, 0]);
        assert_eq!(der(0x30, &[0; 200])[..3], [0x30, 0x81, 200]);
    }

    #[test]
    fn an_ec_jwk_round_trips_through_pkcs8() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let mut jwk = ec_jwk(pair.public_key().as_ref());
        let d = pair.private_key().as_be_bytes().unwrap();
        jwk["d"] = URL_SAFE_NO_PAD.encode(d.as_ref()).into();
        let ForeignKey::EcdsaP256(der) = ForeignKey::from_jwk(&jwk).unwrap() else {
            panic!("not P-256");
        };
        let back = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
        assert_eq!(back.public_key().as_ref(), pair.public_key().as_ref());
    }

    #[test]
    fn unsupported_keys_are_named() {
        let p384 = json!({ "kty": "EC", "crv": "P-384", "x": "", "y": "", "d": "" });
        let error = ForeignKey::from_jwk(&p384).err().unwrap();
        assert!(error.contains("P-384"), "{error}");
        let error = ForeignKey::from_jwk(&json!({ "kty": "oct" }))
            .err()
            .unwrap();
        assert!(error.contains("\"oct\""), "{error}");
        let error = ForeignKey::from_jwk(&json!({ "kty": "RSA", "n": "AQAB" }))
            .err()
            .unwrap();
        assert!(error.contains("\"e\""), "{error}");
    }
}
