//! One order, from `newOrder` to the downloaded chain ([RFC 8555 §7.4]).
//!
//! [RFC 8555 §7.4]: https://www.rfc-editor.org/rfc/rfc8555#section-7.4

use std::borrow::Cow;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, Identifier, NewOrder, OrderStatus,
    RetryPolicy,
};

use super::{Cas, Error};
use crate::config::{self, KeyType};
use crate::solver::{Response, Solver};

/// What to order.
#[derive(Clone)]
pub struct Order<'a> {
    /// CA name, for messages.
    pub ca: &'a str,
    /// Identifiers for the certificate: names, wildcards, IP addresses.
    pub domains: &'a [config::Identifier],
    /// ACME profile to request.
    pub profile: Option<&'a str>,
    /// RFC 9773 identifier of the certificate this one replaces.
    pub replaces: Option<&'a str>,
    /// PEM private key whose public key goes into the CSR.
    pub key_pem: &'a str,
}

impl std::fmt::Debug for Order<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Order")
            .field("ca", &self.ca)
            .field("domains", &self.domains)
            .field("profile", &self.profile)
            .field("replaces", &self.replaces)
            .field("key_pem", &crate::secret::Redacted(self.key_pem))
            .finish()
    }
}

/// How to wait for the CA to issue after finalizing (validation is waited for
/// by `wait_ready`, with the same first look and doubling). The first look is
/// early — a CA that validates and signs on the spot (an internal one, or
/// Pebble) is done within milliseconds, and an order waits for two such looks —
/// and the delay doubles, so a CA that takes seconds costs a few more cheap
/// requests; a CA's Retry-After is honoured by instant-acme.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(POLL_FIRST)
    .backoff(2.0)
    .timeout(POLL_TIMEOUT);
/// The first look at an order (see [`POLL`]).
const POLL_FIRST: Duration = Duration::from_millis(10);
/// The longest pause between looks while waiting for validation.
const POLL_LONGEST: Duration = Duration::from_secs(10);
/// How long to wait for validation, and then for issuance.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// Places `order` with `account`, answers its challenges with `solver`, finalizes
/// and returns the PEM chain (leaf first). Challenge responses are cleaned up
/// whatever happens.
///
/// # Errors
///
/// [`Error::Acme`] for CA errors, [`Error::Validation`] when the CA could not
/// validate a domain (see [`Error::is_challenge_failure`]), [`Error::Solver`] when
/// the response could not be presented.
pub async fn issue(
    cas: &Cas,
    account: &Account,
    order: &Order<'_>,
    solver: &Solver,
) -> Result<Delivered, Error> {
    let acme = |source| Error::Acme {
        ca: order.ca.to_owned(),
        source,
    };
    let identifiers: Vec<Identifier> = order.domains.iter().map(acme_identifier).collect();
    let mut acme_order = new_order(cas, account, order, &identifiers).await?;
    let replaces = acme_order
        .state()
        .replaces
        .as_ref()
        .map(ToString::to_string);
    let mut presented = Vec::new();
    let result = async {
        authorize(&mut acme_order, order.ca, solver, &mut presented).await?;
        wait_ready(&mut acme_order, order.ca, solver).await?;
        let csr = csr(order.domains, order.key_pem)?;
        retry_bad_nonce!(acme_order.finalize_csr(&csr).await).map_err(acme)?;
        retry_bad_nonce!(acme_order.poll_certificate(&POLL).await).map_err(acme)
    }
    .await;
    for response in &presented {
        solver.cleanup(response).await;
    }
    result.map(|fullchain| Delivered {
        fullchain,
        replaces,
    })
}

/// What an order delivered.
#[derive(Debug)]
pub struct Delivered {
    /// The PEM chain, leaf first.
    pub fullchain: String,
    /// The certificate the order replaced, as the CA's order object said
    /// (RFC 9773 identifier), if any.
    pub replaces: Option<String>,
}

/// `newOrder`, retried once without `replaces` if the CA refuses it for that
/// (e.g. the replaced certificate was already replaced), as
/// `docs/reference/daemon.md` ("One renewal") says.
async fn new_order(
    cas: &Cas,
    account: &Account,
    order: &Order<'_>,
    identifiers: &[Identifier],
) -> Result<instant_acme::Order, Error> {
    let acme = |source| Error::Acme {
        ca: order.ca.to_owned(),
        source,
    };
    let request = || {
        let request = NewOrder::new(identifiers);
        match order.profile {
            Some(profile) => request.profile(profile),
            None => request,
        }
    };
    if let Some(replaces) = order.replaces.and_then(certificate_identifier) {
        let started = time::OffsetDateTime::now_utc();
        match retry_bad_nonce!(
            account
                .new_order(&request().replaces(replaces.clone()))
                .await
        ) {
            Ok(o) => return Ok(o),
            Err(e) => {
                // The CA may have created the order all the same and only
                // answered in a way the library refuses (not echoing
                // `replaces`, say): use that order, placing no second one.
                let domains: Vec<String> = order.domains.iter().map(ToString::to_string).collect();
                if let Some(url) = cas.created_order(order.ca, started, &domains) {
                    if cas.first_quirk(order.ca) {
                        // The library's message would print Rust structures;
                        // it is kept for debugging only.
                        tracing::debug!(ca = order.ca, "newOrder answer refused: {e}");
                        tracing::warn!(
                            ca = order.ca,
                            "the CA created the order but its answer was refused (it does not \
                             echo replaces, for one); using the order it created (logged once \
                             per CA)"
                        );
                    }
                    return retry_bad_nonce!(account.order(url.clone()).await).map_err(acme);
                }
                tracing::warn!(
                    ca = order.ca,
                    "order with replaces refused, retrying without: {e}"
                );
            }
        }
    }
    retry_bad_nonce!(account.new_order(&request()).await).map_err(|source| Error::Acme {
        ca: order.ca.to_owned(),
        source,
    })
}

pub(super) fn certificate_identifier(id: &str) -> Option<CertificateIdentifier<'static>> {
    let (aki, serial) = id.split_once('.')?;
    Some(CertificateIdentifier {
        authority_key_identifier: Cow::Owned(aki.to_owned()),
        serial: Cow::Owned(serial.to_owned()),
    })
}

/// Waits until the order is ready to finalize. The authorizations are looked
/// at too: a CA may mark an authorization (and its challenge) invalid but leave
/// the order "pending", and the attempt must then end at once, saying which
/// domain failed and why, not after the timeout. An order that fails ends
/// `invalid`, or with its error as a problem document; either way the failed
/// authorization says why.
async fn wait_ready(
    acme_order: &mut instant_acme::Order,
    ca: &str,
    solver: &Solver,
) -> Result<(), Error> {
    let acme = |source| Error::Acme {
        ca: ca.to_owned(),
        source,
    };
    let deadline = tokio::time::Instant::now() + POLL_TIMEOUT;
    let mut delay = POLL_FIRST;
    loop {
        tokio::time::sleep(delay).await;
        let seen = retry_bad_nonce!(
            acme_order
                .refresh()
                .await
                .map(|state| (state.status, state.error.clone()))
        );
        let failed = match seen {
            Ok((OrderStatus::Ready, None)) => return Ok(()),
            Ok((OrderStatus::Invalid, None)) => Some(Error::Validation {
                domain: "order".to_owned(),
                solver: solver.name().to_owned(),
                challenge: challenge_name(solver),
                detail: format!("CA {ca} marked the order invalid"),
            }),
            Ok((_, Some(problem))) => Some(acme(instant_acme::Error::Api(problem))),
            Ok(_) => None,
            Err(e @ instant_acme::Error::Api(_)) => Some(acme(e)),
            Err(e) => return Err(acme(e)),
        };
        if let Some(invalid) = validation_error(acme_order, solver).await {
            return Err(invalid);
        }
        if let Some(failed) = failed {
            return Err(failed);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(acme(instant_acme::Error::Timeout(None)));
        }
        delay = (delay * 2).min(POLL_LONGEST);
    }
}

/// The challenge type `solver` answers, as ACME names it.
fn challenge_name(solver: &Solver) -> String {
    match solver.challenge_type() {
        instant_acme::ChallengeType::Http01 => "http-01".to_owned(),
        instant_acme::ChallengeType::TlsAlpn01 => "tls-alpn-01".to_owned(),
        instant_acme::ChallengeType::Dns01 => "dns-01".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Presents a response for every pending authorization and tells the CA to validate.
async fn authorize(
    acme_order: &mut instant_acme::Order,
    ca: &str,
    solver: &Solver,
    presented: &mut Vec<Response>,
) -> Result<(), Error> {
    let acme = |source| Error::Acme {
        ca: ca.to_owned(),
        source,
    };
    fetch_authorizations(acme_order).await.map_err(acme)?;
    let mut authorizations = acme_order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(acme)?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let domain = authz.identifier().to_string();
        let Some(identifier) = config_identifier(&authz.identifier()) else {
            return Err(Error::NoChallenge {
                ca: ca.to_owned(),
                domain,
                challenge: challenge_name(solver),
            });
        };
        let Some(mut challenge) = authz.challenge(solver.challenge_type()) else {
            return Err(Error::NoChallenge {
                ca: ca.to_owned(),
                domain,
                challenge: challenge_name(solver),
            });
        };
        let key_authorization = challenge.key_authorization();
        let mut digest = [0u8; 32];
        digest.copy_from_slice(key_authorization.digest().as_ref());
        let response = Response {
            identifier,
            token: challenge.token.clone(),
            key_authorization: key_authorization.as_str().to_owned(),
            digest,
            dns_value: key_authorization.dns_value(),
        };
        solver.present(&response).await?;
        presented.push(response);
        retry_bad_nonce!(challenge.set_ready().await).map_err(acme)?;
    }
    Ok(())
}

/// Fetches every authorization of the order. instant-acme caches the ones it got,
/// so a pass that failed on a rejected nonce is simply repeated.
async fn fetch_authorizations(
    acme_order: &mut instant_acme::Order,
) -> Result<(), instant_acme::Error> {
    retry_bad_nonce!({
        let mut authorizations = acme_order.authorizations();
        let mut result = Ok(());
        while let Some(authz) = authorizations.next().await {
            if let Err(e) = authz {
                result = Err(e);
            }
        }
        result
    })
}

/// Finds out which authorization failed and why, for a message that names the domain.
async fn validation_error(acme_order: &mut instant_acme::Order, solver: &Solver) -> Option<Error> {
    let mut authorizations = acme_order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if retry_bad_nonce!(authz.refresh().await).is_err()
            || authz.status != AuthorizationStatus::Invalid
        {
            continue;
        }
        let detail = authz
            .challenges
            .iter()
            .find_map(|c| c.error.as_ref())
            .map_or_else(|| "the CA gave no reason".to_owned(), ToString::to_string);
        return Some(Error::Validation {
            domain: authz.identifier().to_string(),
            solver: solver.name().to_owned(),
            challenge: challenge_name(solver),
            detail,
        });
    }
    None
}

/// The ACME identifier for one `domains` entry: an IP address as an `ip`
/// identifier ([RFC 8738 §3]), a wildcard as a `dns` identifier with its `*.`
/// ([RFC 8555 §7.1.3]).
///
/// [RFC 8738 §3]: https://www.rfc-editor.org/rfc/rfc8738#section-3
/// [RFC 8555 §7.1.3]: https://www.rfc-editor.org/rfc/rfc8555#section-7.1.3
fn acme_identifier(id: &config::Identifier) -> Identifier {
    match id {
        config::Identifier::Ip(ip) => Identifier::Ip(*ip),
        dns => Identifier::Dns(dns.to_string()),
    }
}

/// What an authorization is for, as the config would say it; `None` for an
/// identifier type renewd never orders.
fn config_identifier(
    authorized: &instant_acme::AuthorizedIdentifier<'_>,
) -> Option<config::Identifier> {
    use config::Identifier as Id;
    match authorized.identifier {
        Identifier::Dns(name) if authorized.wildcard => Some(Id::Wildcard(name.clone())),
        Identifier::Dns(name) => Some(Id::Dns(name.clone())),
        Identifier::Ip(ip) => Some(Id::Ip(*ip)),
        _ => None,
    }
}

/// A CSR for `domains` signed with `key_pem`, subject left empty as CAs ignore
/// it: DNS names as dNSName, IP addresses as iPAddress subject alternative
/// names ([RFC 8738 §4]).
///
/// [RFC 8738 §4]: https://www.rfc-editor.org/rfc/rfc8738#section-4
fn csr(domains: &[config::Identifier], key_pem: &str) -> Result<Vec<u8>, Error> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| Error::Key(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = domains
        .iter()
        .map(|id| match id {
            config::Identifier::Ip(ip) => Ok(rcgen::SanType::IpAddress(*ip)),
            dns => rcgen::string::Ia5String::try_from(dns.to_string()).map(rcgen::SanType::DnsName),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Key(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| Error::Key(e.to_string()))?;
    Ok(csr.der().to_vec())
}

/// Generates a new private key of `key_type`, PEM (PKCS#8).
///
/// # Errors
///
/// [`Error::Key`] if the crypto backend fails.
pub fn generate_key(key_type: KeyType) -> Result<String, Error> {
    use rcgen::{
        KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize,
    };
    let key = match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
    };
    key.map(|k| k.serialize_pem())
        .map_err(|e| Error::Key(e.to_string()))
}

/// Readies the crypto backend's random number generator. Its first use seeds
/// aws-lc's CPU-jitter entropy source, 35–140 ms of CPU time: the daemon pays that
/// at startup rather than in the first renewal after a mass revocation.
pub fn prime_key_generator() {
    let _ = generate_key(KeyType::EcdsaP256);
}

#[cfg(test)]
mod tests {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::FromDer;

    use super::*;
    use crate::store::CertInfo;

    #[test]
    fn generated_keys_have_the_configured_type() {
        for key_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let pem = generate_key(key_type).unwrap();
            let key = rcgen::KeyPair::from_pem(&pem).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let info = CertInfo::from_pem(cert.pem().as_bytes()).unwrap();
            assert_eq!(info.key_type, Some(key_type));
            assert!(info.matches_key(&pem));
        }
    }

    #[test]
    fn ari_identifier_round_trips() {
        let id = certificate_identifier("aki.serial").unwrap();
        assert_eq!(id.to_string(), "aki.serial");
        assert!(certificate_identifier("nodot").is_none());
    }

    #[test]
    fn ip_addresses_are_ordered_as_ip_identifiers_and_requested_as_ip_sans() {
        let domains: Vec<config::Identifier> =
            ["a.example", "*.b.example", "192.0.2.1", "2001:db8::1"]
                .iter()
                .map(|d| d.parse().unwrap())
                .collect();
        let identifiers: Vec<Identifier> = domains.iter().map(acme_identifier).collect();
        assert_eq!(
            identifiers,
            [
                Identifier::Dns("a.example".into()),
                Identifier::Dns("*.b.example".into()),
                Identifier::Ip("192.0.2.1".parse().unwrap()),
                Identifier::Ip("2001:db8::1".parse().unwrap()),
            ]
        );
        let key = generate_key(KeyType::EcdsaP256).unwrap();
        let der = csr(&domains, &key).unwrap();
        let (_, request) = X509CertificationRequest::from_der(&der).unwrap();
        let sans: Vec<String> = request
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|ext| match ext {
                ParsedExtension::SubjectAlternativeName(san) => Some(san),
                _ => None,
            })
            .flat_map(|san| san.general_names.iter().map(|n| format!("{n:?}")))
            .collect();
        assert_eq!(
            sans,
            [
                "DNSName(\"a.example\")",
                "DNSName(\"*.b.example\")",
                "IPAddress([192, 0, 2, 1])",
                "IPAddress([32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])",
            ]
        );
    }
}
