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
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hickory_proto::ProtoError;
use hickory_proto::dnssec::DnsSecError;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{Message, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::query::{self, Transport};
use super::{Record, TTL, rcode};

/// Allowed clock difference to the server (BIND's default too).
const FUDGE: u16 = 300;

/// What a BIND key file must look like.
const EXPECTED: &str = "expected key \"NAME\" { algorithm ALG; secret \"BASE64\"; };";

/// Why the rfc2136 provider could not add or delete a record.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TSIG key file cannot be read.
    #[error("cannot read TSIG key {}: {source}", path.display())]
    ReadKey {
        /// `tsig_key_file`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TSIG key file is not a key in BIND's format.
    #[error("TSIG key {}: {source}", path.display())]
    ParseKey {
        /// `tsig_key_file`.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// The signed update got no usable reply.
    #[error("cannot {verb} {record}: {source}")]
    Update {
        /// `add` or `delete`.
        verb: &'static str,
        /// The record.
        record: Record,
        /// Why.
        #[source]
        source: ExchangeError,
    },
    /// A signed SOA query looking for the record's zone got no usable reply.
    #[error("looking up the zone of {}: {source}", record.fqdn)]
    ZoneLookup {
        /// The record.
        record: Record,
        /// Why.
        #[source]
        source: ExchangeError,
    },
    /// The server refused the update (REFUSED): the key may not change the name.
    #[error(
        "{server} refused to {verb} {record} in zone {zone} (REFUSED): let key \"{key}\" update \
         it (BIND: update-policy {{ grant {key} name {} TXT; }}; or allow-update)",
        record.name
    )]
    Refused {
        /// The server updated.
        server: SocketAddr,
        /// `add` or `delete`.
        verb: &'static str,
        /// The record.
        record: Record,
        /// The zone the update was for.
        zone: Name,
        /// The TSIG key's name.
        key: Name,
    },
    /// The server is not authoritative for the zone (NOTAUTH).
    #[error(
        "{server} is not authoritative for zone {zone} (NOTAUTH), so it cannot {verb} {record}: \
         set server to the zone's primary"
    )]
    NotAuth {
        /// The server updated.
        server: SocketAddr,
        /// The zone the update was for.
        zone: Name,
        /// `add` or `delete`.
        verb: &'static str,
        /// The record.
        record: Record,
    },
    /// The server answered the update with another error code.
    #[error(
        "{server} answered {} to the update that should {verb} {record} in zone {zone}",
        rcode(*code)
    )]
    UpdateFailed {
        /// The server updated.
        server: SocketAddr,
        /// Its response code.
        code: ResponseCode,
        /// `add` or `delete`.
        verb: &'static str,
        /// The record.
        record: Record,
        /// The zone the update was for.
        zone: Name,
    },
    /// The server refuses to answer for the record's name (REFUSED or NOTAUTH to
    /// the SOA query): it serves no zone containing it.
    #[error(
        "{server} does not serve a zone containing {record} ({} to the SOA query for \
         {candidate}): set server to the zone's primary",
        rcode(*code)
    )]
    ZoneNotServed {
        /// The server asked.
        server: SocketAddr,
        /// The record.
        record: Record,
        /// Its response code.
        code: ResponseCode,
        /// The name asked for.
        candidate: Name,
    },
    /// The server answered an SOA query with an unexpected error code.
    #[error(
        "{server} answered {} to the SOA query for {candidate} (looking for the zone of \
         {record})",
        rcode(*code)
    )]
    ZoneQueryFailed {
        /// The server asked.
        server: SocketAddr,
        /// Its response code.
        code: ResponseCode,
        /// The name asked for.
        candidate: Name,
        /// The record.
        record: Record,
    },
    /// No SOA for the record or any of its parents.
    #[error("{server} names no zone (SOA) containing {record}: set server to the zone's primary")]
    NoZone {
        /// The server asked.
        server: SocketAddr,
        /// The record.
        record: Record,
    },
}

/// Why a signed request got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The key cannot sign (e.g. an algorithm hickory does not support).
    #[error("TSIG key {}: {source}", path.display())]
    Signer {
        /// `tsig_key_file`.
        path: PathBuf,
        /// hickory's error.
        #[source]
        source: DnsSecError,
    },
    /// Signing the request failed.
    #[error("cannot sign with TSIG key \"{key}\": {source}")]
    Sign {
        /// The TSIG key's name.
        key: Name,
        /// hickory's error.
        #[source]
        source: ProtoError,
    },
    /// The server could not be reached, did not answer in time or sent garbage.
    #[error(transparent)]
    Query(#[from] query::Error),
    /// The server refused the key (BADSIG, BADKEY, BADTIME).
    #[error(
        "TSIG key \"{key}\" rejected by {server} ({}, {})",
        rcode(*code),
        explain_tsig_error(*tsig_error, key, path)
    )]
    KeyRejected {
        /// The TSIG key's name.
        key: Name,
        /// The server asked.
        server: SocketAddr,
        /// The reply's response code (NOTAUTH).
        code: ResponseCode,
        /// The error field of the reply's TSIG record.
        tsig_error: u16,
        /// `tsig_key_file`.
        path: PathBuf,
    },
    /// hickory signed the request but gave nothing to check the reply with.
    #[error("TSIG signer gave no verifier")]
    NoVerifier,
    /// A successful reply whose signature does not verify with the key.
    #[error(
        "the reply from {server} is not signed with TSIG key \"{key}\" ({source}): is {} the \
         key the server knows?",
        path.display()
    )]
    Unsigned {
        /// The server asked.
        server: SocketAddr,
        /// The TSIG key's name.
        key: Name,
        /// `tsig_key_file`.
        path: PathBuf,
        /// hickory's verification error.
        #[source]
        source: ProtoError,
    },
}

/// What is wrong with a TSIG key file's text.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text ends inside the key statement.
    #[error("unexpected end, {EXPECTED}")]
    UnexpectedEnd,
    /// Something else than the key statement's shape.
    #[error("{EXPECTED}")]
    Syntax,
    /// A statement inside the braces is not `WORD VALUE;`.
    #[error("{statement}: {EXPECTED}")]
    Statement {
        /// The statement's (lowercased) keyword.
        statement: String,
    },
    /// The key's name is not a DNS name.
    #[error("key name \"{name}\": {source}")]
    Name {
        /// The name as written.
        name: String,
        /// hickory's parse error.
        #[source]
        source: ProtoError,
    },
    /// No `algorithm` statement.
    #[error("no algorithm in the key")]
    NoAlgorithm,
    /// No `secret` statement.
    #[error("no secret in the key")]
    NoSecret,
    /// The secret does not decode.
    #[error("secret is not base64: {0}")]
    Secret(#[source] base64::DecodeError),
    /// An algorithm other than HMAC-SHA256/384/512.
    #[error(
        "algorithm {0} is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512: \
         tsig-keygen -a hmac-sha256 NAME)"
    )]
    Algorithm(String),
    /// A `/*` comment that is never closed.
    #[error("unterminated /* comment")]
    UnterminatedComment,
    /// A `"` string that is never closed.
    #[error("unterminated quoted string")]
    UnterminatedString,
}

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

fn explain_tsig_error(error: u16, key: &Name, file: &Path) -> String {
    let file = file.display();
    match error {
        16 => {
            format!("BADSIG: the secret in {file} is not the one the server has for key \"{key}\"")
        }
        17 => format!(
            "BADKEY: the server has no key \"{key}\" with that algorithm; add the key of {file} \
             to its configuration"
        ),
        18 => "BADTIME: this machine's clock and the server's differ by more than 5 minutes"
            .to_owned(),
        other => format!("TSIG error {other}"),
    }
}

/// A TSIG key as BIND writes it: `key "name" { algorithm hmac-sha256; secret "base64"; };`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TsigKey {
    /// Key name, as the server knows it.
    pub(super) name: Name,
    algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl TsigKey {
    async fn read(path: &Path) -> Result<Self, Error> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|source| Error::ReadKey {
                path: path.to_owned(),
                source,
            })?;
        Self::parse(&text).map_err(|source| Error::ParseKey {
            path: path.to_owned(),
            source,
        })
    }

    fn signer(&self) -> Result<TSigner, DnsSecError> {
        TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            FUDGE,
        )
    }

    /// Parses the first `key` statement of a BIND key file (comments allowed).
    pub(super) fn parse(text: &str) -> Result<Self, KeyError> {
        let mut tokens = tokens(text)?.into_iter();
        let mut next = || tokens.next().ok_or(KeyError::UnexpectedEnd);
        if !matches!(next()?, Token::Word(w) if w.eq_ignore_ascii_case("key")) {
            return Err(KeyError::Syntax);
        }
        let Token::Word(name) = next()? else {
            return Err(KeyError::Syntax);
        };
        if next()? != Token::Open {
            return Err(KeyError::Syntax);
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            let statement = match next()? {
                Token::Close => break,
                Token::Word(w) => w.to_ascii_lowercase(),
                _ => return Err(KeyError::Syntax),
            };
            let (Token::Word(value), Token::Semi) = (next()?, next()?) else {
                return Err(KeyError::Statement { statement });
            };
            match statement.as_str() {
                "algorithm" => algorithm = Some(value),
                "secret" => secret = Some(value),
                _ => {}
            }
        }
        let name = match Name::from_ascii(&name) {
            Ok(parsed) => parsed,
            Err(source) => return Err(KeyError::Name { name, source }),
        };
        let algorithm = algorithm.ok_or(KeyError::NoAlgorithm)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.ok_or(KeyError::NoSecret)?.as_bytes())
            .map_err(KeyError::Secret)?;
        Ok(Self {
            name,
            algorithm: algorithm_named(&algorithm)?,
            secret,
        })
    }
}

fn algorithm_named(name: &str) -> Result<TsigAlgorithm, KeyError> {
    match name.to_ascii_lowercase().as_str() {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(KeyError::Algorithm(other.to_owned())),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
    Semi,
}

/// BIND config tokens: words or quoted strings, braces, semicolons; `#`,
/// `//` and `/* */` comments are skipped.
fn tokens(text: &str) -> Result<Vec<Token>, KeyError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => tokens.push(Token::Open),
            '}' => tokens.push(Token::Close),
            ';' => tokens.push(Token::Semi),
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err(KeyError::UnterminatedComment),
                    }
                }
            }
            '"' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => return Err(KeyError::UnterminatedString),
                    }
                }
                tokens.push(Token::Word(word));
            }
            c if c.is_whitespace() => {}
            c => {
                let mut word = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "{};\"#".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
