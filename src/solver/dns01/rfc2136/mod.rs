//! rfc2136: add and delete the TXT record on the zone's primary with a DNS
//! UPDATE ([RFC 2136]) signed with a TSIG key ([RFC 8945]) in BIND's format,
//! as `tsig-keygen` writes it.
//!
//! The zone is found by asking the same server, with signed queries, for the
//! SOA of `_acme-challenge.<domain>` and its parents. Records are added to
//! the RRset, never replacing it, so a wildcard and its base domain can hold
//! their two values at once; a delete removes only its own value.
//!
//! Replies are read here rather than through a DNS client library so that a
//! rejected key (an unsigned NOTAUTH carrying BADSIG/BADKEY/BADTIME) is
//! reported as such; the signature of every accepted reply is verified.
//!
//! [RFC 2136]: https://www.rfc-editor.org/rfc/rfc2136
//! [RFC 8945]: https://www.rfc-editor.org/rfc/rfc8945

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

mod error;
mod key;

pub use error::{Error, ExchangeError};
pub(in crate::solver::dns01) use key::TsigKey;

use super::query::{self, Transport};
use super::{Record, TTL};

/// Allowed clock difference to the server (BIND's default too).
pub(super) const FUDGE: u16 = 300;

/// The rfc2136 provider of one solver.
#[derive(Debug)]
pub(super) struct Rfc2136 {
    server: SocketAddr,
    key_file: PathBuf,
}

impl Rfc2136 {
    pub(super) fn new(server: SocketAddr, key_file: PathBuf) -> Self {
        Self { server, key_file }
    }

    /// The primary that is updated (and asked for the record by default).
    pub(super) fn server(&self) -> SocketAddr {
        self.server
    }

    /// Adds `record` to its RRset.
    pub(super) async fn add(&self, record: &Record) -> Result<(), Error> {
        self.update(record, true).await
    }

    /// Deletes `record`'s value, and only it, from its RRset.
    pub(super) async fn delete(&self, record: &Record) -> Result<(), Error> {
        self.update(record, false).await
    }

    async fn update(&self, record: &Record, add: bool) -> Result<(), Error> {
        let key = TsigKey::read(&self.key_file).await?;
        let zone = self.find_zone(&key, record).await?;
        let txt = hickory_proto::rr::Record::from_rdata(
            record.name.clone(),
            TTL,
            RData::TXT(TXT::new(vec![record.value.clone()])),
        );
        let rrset = RecordSet::from(txt);
        let request = if add {
            update_message::append(rrset, zone.clone(), false, false)
        } else {
            update_message::delete_by_rdata(rrset, zone.clone(), false)
        };
        let (verb, server) = (if add { "add" } else { "delete" }, self.server);
        let reply = self
            .signed(&key, request)
            .await
            .map_err(|source| Error::Update {
                verb,
                record: record.clone(),
                source,
            })?;
        let record = record.clone();
        match reply.response_code() {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused => Err(Error::Refused {
                server,
                verb,
                record,
                zone,
                key: key.name,
            }),
            ResponseCode::NotAuth => Err(Error::NotAuth {
                server,
                zone,
                verb,
                record,
            }),
            code => Err(Error::UpdateFailed {
                server,
                code,
                verb,
                record,
                zone,
            }),
        }
    }

    /// The zone containing `record`, from the SOA the server names for it or
    /// one of its parents.
    async fn find_zone(&self, key: &TsigKey, record: &Record) -> Result<Name, Error> {
        let server = self.server;
        for candidate in query::ancestors(&record.name) {
            let request = query::request(&candidate, RecordType::SOA, false);
            let reply = self
                .signed(key, request)
                .await
                .map_err(|source| Error::ZoneLookup {
                    record: record.clone(),
                    source,
                })?;
            match reply.response_code() {
                ResponseCode::NoError | ResponseCode::NXDomain => {}
                code @ (ResponseCode::Refused | ResponseCode::NotAuth) => {
                    return Err(Error::ZoneNotServed {
                        server,
                        record: record.clone(),
                        code,
                        candidate,
                    });
                }
                code => {
                    return Err(Error::ZoneQueryFailed {
                        server,
                        code,
                        candidate,
                        record: record.clone(),
                    });
                }
            }
            if let Some(zone) = query::zone_in_reply(&reply) {
                if zone.zone_of(&record.name) {
                    return Ok(zone);
                }
            }
        }
        Err(Error::NoZone {
            server,
            record: record.clone(),
        })
    }

    /// Signs `request` with `key`, sends it over TCP and returns the reply.
    /// A reply refusing the key is an error; a successful one must carry a
    /// valid signature.
    async fn signed(&self, key: &TsigKey, mut request: Message) -> Result<Message, ExchangeError> {
        let server = self.server;
        let signer = key.signer().map_err(|source| ExchangeError::Signer {
            path: self.key_file.clone(),
            source,
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u32::try_from(d.as_secs()).ok())
            .unwrap_or_default();
        let verifier = request
            .finalize(&signer, now)
            .map_err(|source| ExchangeError::Sign {
                key: key.name.clone(),
                source,
            })?;
        let raw = query::exchange(server, &request, Transport::Tcp).await?;
        let reply = query::decode(server, &raw)?;
        if let Some(tsig_error) = tsig_error(&reply).filter(|e| *e != 0) {
            return Err(ExchangeError::KeyRejected {
                key: key.name.clone(),
                server,
                code: reply.response_code(),
                tsig_error,
                path: self.key_file.clone(),
            });
        }
        if matches!(
            reply.response_code(),
            ResponseCode::NoError | ResponseCode::NXDomain
        ) {
            let mut verify = verifier.ok_or(ExchangeError::NoVerifier)?;
            verify(&raw).map_err(|source| ExchangeError::Unsigned {
                server,
                key: key.name.clone(),
                path: self.key_file.clone(),
                source,
            })?;
        }
        Ok(reply)
    }
}

/// The `dns_reply` fuzz target's TSIG part: `reply` as the answer to an
/// update signed with a fixed key (its TSIG error read, its signature
/// checked), and as a BIND key file.
#[cfg(fuzzing)]
pub(in crate::solver::dns01) fn fuzz(reply: &[u8]) {
    if let Ok(text) = std::str::from_utf8(reply) {
        if let Err(e) = TsigKey::parse(text) {
            let _ = e.to_string();
        }
    }
    // Signing costs more than what is fuzzed: one request, signed once.
    static VERIFIER: std::sync::LazyLock<std::sync::Mutex<hickory_proto::op::MessageVerifier>> =
        std::sync::LazyLock::new(|| {
            let key = TsigKey {
                name: Name::from_ascii("renewd.").expect("a valid name"),
                algorithm: hickory_proto::dnssec::rdata::tsig::TsigAlgorithm::HmacSha256,
                secret: b"fuzz-fuzz-fuzz-fuzz".to_vec(),
            };
            let signer = key.signer().expect("a valid key");
            let mut request = query::request(&key.name, RecordType::SOA, false);
            request.set_id(0x5eed);
            let Ok(Some(verify)) = request.finalize(&signer, 1_700_000_000) else {
                panic!("signing a query failed");
            };
            std::sync::Mutex::new(verify)
        });
    if let Ok(message) = query::decode("192.0.2.53:53".parse().expect("an address"), reply) {
        let _ = tsig_error(&message);
    }
    let mut verify = VERIFIER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(e) = verify(reply) {
        let _ = e.to_string();
    }
}

/// The error field of the reply's TSIG record, if it has one.
fn tsig_error(reply: &Message) -> Option<u16> {
    let tsig = reply.signature().iter().find_map(|r| match r.data() {
        RData::DNSSEC(DNSSECRData::TSIG(tsig)) => Some(tsig),
        _ => None,
    })?;
    // RFC 8945 §4.2: algorithm name, time (48 bits), fudge, MAC size, MAC,
    // original id, error, ...; hickory has no accessor for the error.
    let rdata = tsig.to_bytes().ok()?;
    let mut at = 0;
    while *rdata.get(at)? != 0 {
        at += usize::from(rdata[at]) + 1;
    }
    at += 1 + 6 + 2;
    let mac_len = u16::from_be_bytes([*rdata.get(at)?, *rdata.get(at + 1)?]);
    at += 2 + usize::from(mac_len) + 2;
    Some(u16::from_be_bytes([*rdata.get(at)?, *rdata.get(at + 1)?]))
}

#[cfg(test)]
mod tests {
    use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;

    use super::*;

    #[test]
    fn the_debug_of_a_key_hides_its_secret() {
        let text = "key \"renewd\" { algorithm hmac-sha256; secret \"c2VjcmV0LXNlY3JldA==\"; };";
        let shown = format!("{:?}", TsigKey::parse(text).unwrap());
        assert!(
            shown.contains("<redacted>") && shown.contains("renewd"),
            "{shown}"
        );
        assert!(!shown.contains("115, 101, 99"), "{shown}"); // b"sec"
        // A secret that is not base64 is not quoted in the error either.
        let text = "key \"k\" { algorithm hmac-sha256; secret \"s3cr+t!\"; };";
        let err = TsigKey::parse(text).unwrap_err().to_string();
        assert_eq!(
            err,
            "secret is not base64: the character at offset 6 is not allowed"
        );
    }

    #[test]
    fn reads_the_key_tsig_keygen_writes() {
        let text = "key \"renewd\" {\n\talgorithm hmac-sha256;\n\
                    \tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQ=\";\n};\n";
        let key = TsigKey::parse(text).unwrap();
        assert_eq!(key.name, Name::from_ascii("renewd").unwrap());
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(key.secret, b"secret-secret-secret");
    }

    #[test]
    fn reads_keys_with_comments_unquoted_names_and_sha512() {
        let text = "# made by hand\n/* primary\n key */ key acme.example. { // the name\n\
                    secret \"c2VjcmV0\"; algorithm HMAC-SHA512; };";
        let key = TsigKey::parse(text).unwrap();
        assert_eq!(key.name.to_ascii(), "acme.example.");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(key.secret, b"secret");
    }

    #[test]
    fn refuses_broken_keys_saying_why() {
        for (text, why) in [
            ("key \"k\" { secret \"c2VjcmV0\"; };", "no algorithm"),
            ("key \"k\" { algorithm hmac-sha256; };", "no secret"),
            (
                "key \"k\" { algorithm hmac-md5; secret \"c2VjcmV0\"; };",
                "hmac-md5 is not supported",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"!!\"; };",
                "not base64",
            ),
            ("key \"k\" { algorithm hmac-sha256", "unexpected end"),
            ("secret \"c2VjcmV0\";", "expected key"),
            ("key \"k\" { secret \"unterminated", "unterminated"),
        ] {
            let err = TsigKey::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    /// The texts of the update's failures, each checked against the `format!`
    /// they replaced.
    #[test]
    fn update_failures_read_as_before_with_the_bind_policy_to_add() {
        let server: SocketAddr = "192.0.2.53:53".parse().unwrap();
        let record = Record::new("www.example.com", "abc").unwrap();
        let zone = Name::from_ascii("example.com.").unwrap();
        let key = Name::from_ascii("renewd").unwrap();
        let verb = "add";
        let refused = Error::Refused {
            server,
            verb,
            record: record.clone(),
            zone: zone.clone(),
            key: key.clone(),
        };
        assert_eq!(
            refused.to_string(),
            format!(
                "{server} refused to {verb} {record} in zone {zone} (REFUSED): let key \"{}\" \
                 update it (BIND: update-policy {{ grant {} name {} TXT; }}; or allow-update)",
                key, key, record.name
            )
        );
        assert!(
            refused.to_string().ends_with(
                "let key \"renewd\" update it (BIND: update-policy { grant renewd name \
                 _acme-challenge.www.example.com. TXT; }; or allow-update)"
            ),
            "{refused}"
        );
        let not_auth = Error::NotAuth {
            server,
            zone: zone.clone(),
            verb,
            record: record.clone(),
        };
        assert_eq!(
            not_auth.to_string(),
            format!(
                "{server} is not authoritative for zone {zone} (NOTAUTH), so it cannot {verb} \
                 {record}: set server to the zone's primary"
            )
        );
        let failed = Error::UpdateFailed {
            server,
            code: ResponseCode::ServFail,
            verb,
            record: record.clone(),
            zone: zone.clone(),
        };
        assert_eq!(
            failed.to_string(),
            format!(
                "{server} answered SERVFAIL to the update that should {verb} {record} in zone \
                 {zone}"
            )
        );
        let rejected = Error::Update {
            verb,
            record: record.clone(),
            source: ExchangeError::KeyRejected {
                key: key.clone(),
                server,
                code: ResponseCode::NotAuth,
                tsig_error: 16,
                path: "/etc/renewd/tsig.key".into(),
            },
        };
        assert_eq!(
            rejected.to_string(),
            format!(
                "cannot {verb} {record}: TSIG key \"{key}\" rejected by {server} (NOTAUTH, \
                 BADSIG: the secret in /etc/renewd/tsig.key is not the one the server has for \
                 key \"{key}\")"
            )
        );
        let no_zone = Error::NoZone { server, record };
        assert_eq!(
            no_zone.to_string(),
            "192.0.2.53:53 names no zone (SOA) containing _acme-challenge.www.example.com. TXT \
             \"abc\": set server to the zone's primary"
        );
    }

    #[tokio::test]
    async fn an_unreadable_key_file_is_named_and_keeps_the_io_error() {
        let provider = Rfc2136::new("127.0.0.1:53".parse().unwrap(), "/nonexistent/k".into());
        let record = Record::new("example.com", "v").unwrap();
        let err = provider.add(&record).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read TSIG key /nonexistent/k: "),
            "{err}"
        );
        let io = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn a_broken_key_says_what_the_file_should_look_like() {
        let err = TsigKey::parse("key \"k\" { algorithm hmac-sha256").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected end, expected key \"NAME\" { algorithm ALG; secret \"BASE64\"; };"
        );
    }

    #[test]
    fn the_tsig_error_of_a_rejecting_reply_is_read() {
        use hickory_proto::dnssec::rdata::tsig::TSIG;
        use hickory_proto::dnssec::rdata::tsig::make_tsig_record;
        let mut reply = Message::new();
        assert_eq!(tsig_error(&reply), None);
        let tsig = TSIG::new(
            TsigAlgorithm::HmacSha256,
            1_700_000_000,
            300,
            vec![1, 2, 3],
            7,
            16,
            Vec::new(),
        );
        reply.add_tsig(make_tsig_record(Name::from_ascii("k.").unwrap(), tsig));
        assert_eq!(tsig_error(&reply), Some(16));
    }
}
