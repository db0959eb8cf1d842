//! Why the rfc2136 provider failed: the key file, the server's answers, the
//! exchange with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::ProtoError;
use hickory_proto::dnssec::DnsSecError;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use super::super::{Record, query, rcode};

/// What a BIND key file must look like.
pub(super) const EXPECTED: &str = "expected key \"NAME\" { algorithm ALG; secret \"BASE64\"; };";

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
    #[error("secret is not base64: {}", crate::secret::decode_problem(.0))]
    Secret(base64::DecodeError),
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

pub(super) fn explain_tsig_error(error: u16, key: &Name, file: &Path) -> String {
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
