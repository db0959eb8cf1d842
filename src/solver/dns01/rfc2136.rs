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
    pub(super) async fn add(&self, record: &Record) -> Result<(), String> {
        self.update(record, true).await
    }

    /// Deletes `record`'s value, and only it, from its RRset.
    pub(super) async fn delete(&self, record: &Record) -> Result<(), String> {
        self.update(record, false).await
    }

    async fn update(&self, record: &Record, add: bool) -> Result<(), String> {
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
            .map_err(|e| format!("cannot {verb} {record}: {e}"))?;
        match reply.response_code() {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused => Err(format!(
                "{server} refused to {verb} {record} in zone {zone} (REFUSED): let key \"{}\" \
                 update it (BIND: update-policy {{ grant {} name {} TXT; }}; or allow-update)",
                key.name, key.name, record.name
            )),
            ResponseCode::NotAuth => Err(format!(
                "{server} is not authoritative for zone {zone} (NOTAUTH), so it cannot {verb} \
                 {record}: set server to the zone's primary"
            )),
            other => Err(format!(
                "{server} answered {} to the update that should {verb} {record} in zone {zone}",
                rcode(other)
            )),
        }
    }

    /// The zone containing `record`, from the SOA the server names for it or
    /// one of its parents.
    async fn find_zone(&self, key: &TsigKey, record: &Record) -> Result<Name, String> {
        let server = self.server;
        for candidate in query::ancestors(&record.name) {
            let request = query::request(&candidate, RecordType::SOA, false);
            let reply = self
                .signed(key, request)
                .await
                .map_err(|e| format!("looking up the zone of {}: {e}", record.fqdn))?;
            match reply.response_code() {
                ResponseCode::NoError | ResponseCode::NXDomain => {}
                ResponseCode::Refused | ResponseCode::NotAuth => {
                    return Err(format!(
                        "{server} does not serve a zone containing {record} ({} to the SOA \
                         query for {candidate}): set server to the zone's primary",
                        rcode(reply.response_code())
                    ));
                }
                other => {
                    return Err(format!(
                        "{server} answered {} to the SOA query for {candidate} (looking for \
                         the zone of {record})",
                        rcode(other)
                    ));
                }
            }
            if let Some(zone) = query::zone_in_reply(&reply) {
                if zone.zone_of(&record.name) {
                    return Ok(zone);
                }
            }
        }
        Err(format!(
            "{server} names no zone (SOA) containing {record}: set server to the zone's primary"
        ))
    }

    /// Signs `request` with `key`, sends it over TCP and returns the reply.
    /// A reply refusing the key is an error; a successful one must carry a
    /// valid signature.
    async fn signed(&self, key: &TsigKey, mut request: Message) -> Result<Message, String> {
        let server = self.server;
        let signer = key.signer(&self.key_file)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u32::try_from(d.as_secs()).ok())
            .unwrap_or_default();
        let verifier = request
            .finalize(&signer, now)
            .map_err(|e| format!("cannot sign with TSIG key \"{}\": {e}", key.name))?;
        let raw = query::exchange(server, &request, Transport::Tcp).await?;
        let reply =
            Message::from_vec(&raw).map_err(|e| format!("undecodable reply from {server}: {e}"))?;
        if let Some(error) = tsig_error(&reply).filter(|e| *e != 0) {
            return Err(format!(
                "TSIG key \"{}\" rejected by {server} ({}, {})",
                key.name,
                rcode(reply.response_code()),
                explain_tsig_error(error, &key.name, &self.key_file)
            ));
        }
        if matches!(
            reply.response_code(),
            ResponseCode::NoError | ResponseCode::NXDomain
        ) {
            let mut verify = verifier.ok_or("TSIG signer gave no verifier")?;
            verify(&raw).map_err(|e| {
                format!(
                    "the reply from {server} is not signed with TSIG key \"{}\" ({e}): \
                     is {} the key the server knows?",
                    key.name,
                    self.key_file.display()
                )
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
    async fn read(path: &Path) -> Result<Self, String> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("cannot read TSIG key {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("TSIG key {}: {e}", path.display()))
    }

    fn signer(&self, path: &Path) -> Result<TSigner, String> {
        TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            FUDGE,
        )
        .map_err(|e| format!("TSIG key {}: {e}", path.display()))
    }

    /// Parses the first `key` statement of a BIND key file (comments allowed).
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected key \"NAME\" { algorithm ALG; secret \"BASE64\"; };";
        let mut tokens = tokens(text)?.into_iter();
        let mut next = || {
            tokens
                .next()
                .ok_or_else(|| format!("unexpected end, {expected}"))
        };
        if !matches!(next()?, Token::Word(w) if w.eq_ignore_ascii_case("key")) {
            return Err(expected.to_owned());
        }
        let Token::Word(name) = next()? else {
            return Err(expected.to_owned());
        };
        if next()? != Token::Open {
            return Err(expected.to_owned());
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            let statement = match next()? {
                Token::Close => break,
                Token::Word(w) => w.to_ascii_lowercase(),
                _ => return Err(expected.to_owned()),
            };
            let (Token::Word(value), Token::Semi) = (next()?, next()?) else {
                return Err(format!("{statement}: {expected}"));
            };
            match statement.as_str() {
                "algorithm" => algorithm = Some(value),
                "secret" => secret = Some(value),
                _ => {}
            }
        }
        let name = Name::from_ascii(&name).map_err(|e| format!("key name \"{name}\": {e}"))?;
        let algorithm = algorithm.ok_or("no algorithm in the key")?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.ok_or("no secret in the key")?.as_bytes())
            .map_err(|e| format!("secret is not base64: {e}"))?;
        Ok(Self {
            name,
            algorithm: algorithm_named(&algorithm)?,
            secret,
        })
    }
}

fn algorithm_named(name: &str) -> Result<TsigAlgorithm, String> {
    match name.to_ascii_lowercase().as_str() {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(format!(
            "algorithm {other} is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512: \
             tsig-keygen -a hmac-sha256 NAME)"
        )),
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
fn tokens(text: &str) -> Result<Vec<Token>, String> {
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
                        None => return Err("unterminated /* comment".to_owned()),
                    }
                }
            }
            '"' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated quoted string".to_owned()),
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
            let err = TsigKey::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
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
