//! Waiting until a TXT record is visible where the CA will look, polling
//! with backoff up to `propagation_timeout`.
//!
//! Where to look, first match wins: the configured `resolvers` (asked with
//! recursion); for rfc2136 the updated server itself; otherwise every
//! authoritative server of the zone, found through the system resolver
//! (`/etc/resolv.conf`): the zone from the SOA, its NS names, their A/AAAA
//! addresses. A name server counts as one target however many addresses it
//! has (the first that answers speaks for it), so a host without IPv6 still
//! gets through.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use super::query;
use super::{Record, joined, rcode};
use crate::config::ConfigDuration;

/// Delay before the second look; it doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Longest pause between two looks.
const MAX_DELAY: Duration = Duration::from_secs(8);
/// CNAMEs followed from `_acme-challenge.<domain>` before giving up (a loop).
const MAX_CNAME_HOPS: usize = 8;

/// Why waiting for a record failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Finding the zone's name servers took all of `propagation_timeout`.
    #[error(
        "cannot find the authoritative servers of {record} within {timeout} \
         (propagation_timeout); set resolvers to servers that see the zone"
    )]
    DiscoveryTimeout {
        /// The record.
        record: Record,
        /// `propagation_timeout`.
        timeout: ConfigDuration,
    },
    /// Some servers still did not show the record after `propagation_timeout`.
    #[error(
        "{record} still not visible after {timeout} (propagation_timeout) at {}; \
         raise propagation_timeout or check where resolvers point",
        joined(missing, "; ")
    )]
    NotVisible {
        /// The record.
        record: Record,
        /// `propagation_timeout`.
        timeout: ConfigDuration,
        /// Each server that did not show it, and what it answered.
        missing: Vec<Missing>,
    },
    /// The system resolver finds no SOA for the record or its parents.
    #[error("the system resolver names no zone (SOA) containing {record}; set resolvers")]
    NoZone {
        /// The record.
        record: Record,
    },
    /// A name server of the zone has no A or AAAA record.
    #[error(
        "name server {name} of zone {zone} has no address the system resolver knows; \
         set resolvers"
    )]
    NoAddress {
        /// The name server.
        name: Name,
        /// The zone it serves.
        zone: Name,
    },
    /// The zone has no NS records.
    #[error("the system resolver names no NS for zone {zone} (holding {record}); set resolvers")]
    NoNameServers {
        /// The zone.
        zone: Name,
        /// The record.
        record: Record,
    },
    /// No system resolver answered a lookup.
    #[error(
        "system resolver cannot look up {name} {rtype}: {}",
        joined(failures, ", ")
    )]
    Lookup {
        /// The name looked up.
        name: Name,
        /// The type looked up.
        rtype: RecordType,
        /// What each resolver failed with.
        failures: Vec<query::Error>,
    },
}

/// A server that does not show the record.
#[derive(Debug, thiserror::Error)]
#[error("{server}: {why}")]
pub struct Missing {
    /// The server, or a name server with its addresses.
    server: String,
    /// What it answered instead.
    #[source]
    why: Absence,
}

/// What a server answered instead of the record.
#[derive(Debug, thiserror::Error)]
pub enum Absence {
    /// An error response code (NXDOMAIN, SERVFAIL, ...).
    #[error("{}", rcode(*.0))]
    Rcode(ResponseCode),
    /// NOERROR without any TXT record.
    #[error("no TXT record")]
    NoRecord,
    /// TXT records, but not with our value.
    #[error("only other TXT values ({})", .0.join(", "))]
    OtherValues(Vec<String>),
    /// No answer from any of its addresses.
    #[error("{}", joined(.0, ", "))]
    Unreachable(Vec<query::Error>),
}

/// Where and how long to wait for one solver.
#[derive(Debug)]
pub(super) struct Propagation {
    timeout: ConfigDuration,
    resolvers: Vec<SocketAddr>,
    primary: Option<SocketAddr>,
}

/// One server (or name server with several addresses) that must show the record.
#[derive(Debug, Clone)]
struct Target {
    label: String,
    addresses: Vec<SocketAddr>,
    recursion: bool,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addresses.as_slice() {
            [only] if self.label == only.to_string() => write!(f, "{only}"),
            addresses => {
                let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                write!(f, "{} ({})", self.label, list.join(", "))
            }
        }
    }
}

impl Propagation {
    /// `primary` is the rfc2136 server, asked when no resolvers are configured.
    pub(super) fn new(
        timeout: ConfigDuration,
        resolvers: Vec<SocketAddr>,
        primary: Option<SocketAddr>,
    ) -> Self {
        Self {
            timeout,
            resolvers,
            primary,
        }
    }

    /// Returns once every target shows `record`.
    ///
    /// # Errors
    ///
    /// After `propagation_timeout`, [`Error::NotVisible`] naming each target
    /// that still does not show the record and what it answered.
    pub(super) async fn wait(&self, record: &Record) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = started + self.timeout.0;
        let targets = tokio::time::timeout_at(deadline, self.targets(record))
            .await
            .map_err(|_| Error::DiscoveryTimeout {
                record: record.clone(),
                timeout: self.timeout,
            })??;
        let mut delay = FIRST_DELAY;
        loop {
            let mut missing = Vec::new();
            for target in &targets {
                if let Err(why) = shows(target, record).await {
                    missing.push(Missing {
                        server: target.to_string(),
                        why,
                    });
                }
            }
            if missing.is_empty() {
                tracing::info!(
                    record = %record.fqdn,
                    servers = targets.len(),
                    seconds = started.elapsed().as_secs_f32(),
                    "TXT record visible"
                );
                return Ok(());
            }
            if Instant::now() + delay > deadline {
                return Err(Error::NotVisible {
                    record: record.clone(),
                    timeout: self.timeout,
                    missing,
                });
            }
            tracing::debug!(record = %record.fqdn, "not visible yet: {}", joined(&missing, "; "));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// Where the TXT record for `name` belongs: the end of the CNAME chain that
    /// starts at `name`, or `name` itself. Delegating `_acme-challenge` by CNAME
    /// to a zone of its own is how operators let an ACME client update DNS
    /// without handing it their main zone; lego follows such CNAMEs too.
    ///
    /// Asked where propagation looks: the configured resolvers; otherwise the
    /// rfc2136 primary, then the system resolver when the primary does not
    /// answer for the name (it may serve only the delegated zone). When no
    /// server answers, `name` stays: publishing there is all that is left.
    pub(super) async fn follow_cnames(&self, name: &Name) -> Name {
        let sources = self.cname_sources();
        let mut current = name.clone();
        for _ in 0..MAX_CNAME_HOPS {
            match cname_of(&sources, &current).await {
                Some(target) if target != current => current = target,
                _ => break,
            }
        }
        current
    }

    /// Servers to ask for CNAMEs, with whether to ask for recursion.
    fn cname_sources(&self) -> Vec<(SocketAddr, bool)> {
        if !self.resolvers.is_empty() {
            return self.resolvers.iter().map(|r| (*r, true)).collect();
        }
        let primary = self.primary.map(|p| (p, false));
        let system = query::system_resolvers().into_iter().map(|r| (r, true));
        primary.into_iter().chain(system).collect()
    }

    async fn targets(&self, record: &Record) -> Result<Vec<Target>, Error> {
        let single = |address: &SocketAddr, recursion| Target {
            label: address.to_string(),
            addresses: vec![*address],
            recursion,
        };
        if !self.resolvers.is_empty() {
            return Ok(self.resolvers.iter().map(|r| single(r, true)).collect());
        }
        if let Some(primary) = &self.primary {
            return Ok(vec![single(primary, false)]);
        }
        authoritative(record, &query::system_resolvers()).await
    }
}

/// The CNAME target of `name` according to the first of `sources` that answers
/// for it: a resolver's NOERROR or NXDOMAIN, or the same from an authoritative
/// server with the AA bit (a REFUSED or a referral means it does not serve it).
async fn cname_of(sources: &[(SocketAddr, bool)], name: &Name) -> Option<Name> {
    for &(server, recursion) in sources {
        let reply = match query::query(server, name, RecordType::CNAME, recursion).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(%name, "CNAME lookup: {e}");
                continue;
            }
        };
        let definite = matches!(
            reply.response_code(),
            ResponseCode::NoError | ResponseCode::NXDomain
        );
        if definite && (recursion || reply.authoritative()) {
            return reply.answers().iter().find_map(|r| match r.data() {
                RData::CNAME(target) if r.name() == name => Some(target.0.clone()),
                _ => None,
            });
        }
    }
    None
}

/// Whether `target` answers the TXT query for `record` with its value;
/// otherwise what it said instead.
async fn shows(target: &Target, record: &Record) -> Result<(), Absence> {
    let mut failures = Vec::new();
    for address in &target.addresses {
        match query::query(*address, &record.name, RecordType::TXT, target.recursion).await {
            Ok(reply) => return contains(&reply, &record.value),
            Err(e) => failures.push(e),
        }
    }
    Err(Absence::Unreachable(failures))
}

/// Whether the answer of `reply` holds a TXT record whose text is `value`.
pub(super) fn contains(reply: &Message, value: &str) -> Result<(), Absence> {
    if reply.response_code() != ResponseCode::NoError {
        return Err(Absence::Rcode(reply.response_code()));
    }
    let texts: Vec<String> = reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(txt) => Some(
                txt.txt_data()
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect();
    if texts.iter().any(|t| t == value) {
        Ok(())
    } else if texts.is_empty() {
        Err(Absence::NoRecord)
    } else {
        // Shown in logs: a server's control characters must not forge lines.
        let shown = texts.iter().map(|t| t.escape_debug().to_string()).collect();
        Err(Absence::OtherValues(shown))
    }
}

/// Every name server of the zone holding `record`, asking `resolvers`.
async fn authoritative(record: &Record, resolvers: &[SocketAddr]) -> Result<Vec<Target>, Error> {
    let mut zone = None;
    for candidate in query::ancestors(&record.name) {
        let reply = ask(resolvers, &candidate, RecordType::SOA).await?;
        zone = query::zone_in_reply(&reply).filter(|z| z.zone_of(&record.name));
        if zone.is_some() {
            break;
        }
    }
    let zone = zone.ok_or_else(|| Error::NoZone {
        record: record.clone(),
    })?;
    let reply = ask(resolvers, &zone, RecordType::NS).await?;
    let names: Vec<Name> = reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::NS(ns) => Some(ns.0.clone()),
            _ => None,
        })
        .collect();
    let mut targets = Vec::new();
    for name in names {
        let mut addresses = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            // A name server without IPv6 (or v4) is fine; one without any address is not.
            let Ok(reply) = ask(resolvers, &name, rtype).await else {
                continue;
            };
            addresses.extend(reply.answers().iter().filter_map(|r| match r.data() {
                RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), 53)),
                RData::AAAA(aaaa) => Some(SocketAddr::new(IpAddr::V6(aaaa.0), 53)),
                _ => None,
            }));
        }
        if addresses.is_empty() {
            return Err(Error::NoAddress { name, zone });
        }
        targets.push(Target {
            label: name.to_string(),
            addresses,
            recursion: false,
        });
    }
    if targets.is_empty() {
        return Err(Error::NoNameServers {
            zone,
            record: record.clone(),
        });
    }
    tracing::debug!(zone = %zone, servers = targets.len(), "authoritative servers found");
    Ok(targets)
}

/// The first reply any of `resolvers` gives (with recursion).
async fn ask(resolvers: &[SocketAddr], name: &Name, rtype: RecordType) -> Result<Message, Error> {
    let mut failures = Vec::new();
    for resolver in resolvers {
        match query::query(*resolver, name, rtype, true).await {
            Ok(reply) => return Ok(reply),
            Err(e) => failures.push(e),
        }
    }
    Err(Error::Lookup {
        name: name.clone(),
        rtype,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::TXT;

    use super::*;

    fn reply(rcode: ResponseCode, texts: &[&[&str]]) -> Message {
        let mut m = Message::new();
        m.set_response_code(rcode);
        for parts in texts {
            m.add_answer(hickory_proto::rr::Record::from_rdata(
                Name::from_ascii("_acme-challenge.example.com.").unwrap(),
                60,
                RData::TXT(TXT::new(parts.iter().map(|p| (*p).to_owned()).collect())),
            ));
        }
        m
    }

    /// [`contains`] with the absence as it is shown.
    fn shown(reply: &Message, value: &str) -> Result<(), String> {
        contains(reply, value).map_err(|e| e.to_string())
    }

    #[test]
    fn a_value_is_found_among_others_and_across_split_strings() {
        let r = reply(ResponseCode::NoError, &[&["other"], &["ab", "cd"]]);
        assert_eq!(shown(&r, "abcd"), Ok(()));
        assert_eq!(shown(&r, "other"), Ok(()));
        assert_eq!(
            shown(&r, "x"),
            Err("only other TXT values (other, abcd)".to_owned())
        );
    }

    #[test]
    fn a_server_cannot_forge_log_lines_with_its_txt_values() {
        let r = reply(
            ResponseCode::NoError,
            &[&["evil\n2026 INFO renewed\u{1b}[31m"]],
        );
        assert_eq!(
            shown(&r, "x"),
            Err("only other TXT values (evil\\n2026 INFO renewed\\u{1b}[31m)".to_owned())
        );
    }

    #[test]
    fn missing_records_say_what_the_server_answered() {
        assert_eq!(
            shown(&reply(ResponseCode::NXDomain, &[]), "x"),
            Err("NXDOMAIN".to_owned())
        );
        assert_eq!(
            shown(&reply(ResponseCode::NoError, &[]), "x"),
            Err("no TXT record".to_owned())
        );
    }

    #[test]
    fn a_timeout_names_every_server_that_did_not_show_the_record() {
        let server: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let err = Error::NotVisible {
            record: Record::new("example.com", "v").unwrap(),
            timeout: ConfigDuration::from_secs(120),
            missing: vec![
                Missing {
                    server: "ns1.example.com. (192.0.2.1:53, [2001:db8::1]:53)".to_owned(),
                    why: Absence::Rcode(ResponseCode::ServFail),
                },
                Missing {
                    server: "ns2.example.com. (192.0.2.2:53)".to_owned(),
                    why: Absence::Unreachable(vec![query::Error::TcpTimeout {
                        server,
                        wait: Duration::from_secs(10),
                    }]),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            format!(
                "_acme-challenge.example.com. TXT \"v\" still not visible after {} \
                 (propagation_timeout) at ns1.example.com. (192.0.2.1:53, [2001:db8::1]:53): \
                 SERVFAIL; ns2.example.com. (192.0.2.2:53): no answer from 192.0.2.1:53 (TCP) \
                 within 10s; raise propagation_timeout or check where resolvers point",
                ConfigDuration::from_secs(120)
            )
        );
    }

    /// A resolver for `example.com` served by ns1 (IPv4 and IPv6) and ns2 (IPv4 only).
    async fn fake_resolver() -> SocketAddr {
        use hickory_proto::op::MessageType;
        use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let n = |s: &str| Name::from_ascii(s).unwrap();
        let rr = move |name: &str, data| hickory_proto::rr::Record::from_rdata(n(name), 60, data);
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
                let request = Message::from_vec(&buf[..len]).unwrap();
                let query = request.queries()[0].clone();
                let mut reply = Message::new();
                reply
                    .set_id(request.id())
                    .set_message_type(MessageType::Response)
                    .add_query(query.clone());
                match (query.name().to_ascii().as_str(), query.query_type()) {
                    ("_acme-challenge.www.example.com.", RecordType::SOA) => {
                        let soa =
                            SOA::new(n("ns1.example.com."), n("h.example.com."), 1, 1, 1, 1, 1);
                        reply.set_response_code(ResponseCode::NXDomain);
                        reply.add_name_server(rr("example.com.", RData::SOA(soa)));
                    }
                    ("example.com.", RecordType::NS) => {
                        reply.add_answer(rr("example.com.", RData::NS(NS(n("ns1.example.com.")))));
                        reply.add_answer(rr("example.com.", RData::NS(NS(n("ns2.example.com.")))));
                    }
                    ("ns1.example.com.", RecordType::A) => {
                        reply.add_answer(rr("ns1.example.com.", RData::A(A::new(192, 0, 2, 1))));
                    }
                    ("ns1.example.com.", RecordType::AAAA) => {
                        let v6 = AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
                        reply.add_answer(rr("ns1.example.com.", RData::AAAA(v6)));
                    }
                    ("ns2.example.com.", RecordType::A) => {
                        reply.add_answer(rr("ns2.example.com.", RData::A(A::new(192, 0, 2, 2))));
                    }
                    _ => {}
                }
                let _ = socket.send_to(&reply.to_vec().unwrap(), peer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn every_authoritative_server_of_the_zone_is_found_with_all_its_addresses() {
        let resolver = fake_resolver().await;
        let record = Record::new("www.example.com", "v").unwrap();
        let targets = authoritative(&record, &[resolver]).await.unwrap();
        let shown: Vec<String> = targets.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "ns1.example.com. (192.0.2.1:53, [2001:db8::1]:53)",
                "ns2.example.com. (192.0.2.2:53)"
            ]
        );
        assert!(targets.iter().all(|t| !t.recursion));
    }

    #[tokio::test]
    async fn a_record_never_seen_fails_after_the_timeout_naming_the_server() {
        // Nothing listens on this port: every look fails at once.
        let server = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let propagation = Propagation::new(
            ConfigDuration(Duration::from_millis(1200)),
            vec![server],
            None,
        );
        let record = Record::new("example.com", "v").unwrap();
        let err = propagation.wait(&record).await.unwrap_err().to_string();
        assert!(
            err.contains("_acme-challenge.example.com. TXT \"v\" still not visible")
                && err.contains(&server.to_string()),
            "{err}"
        );
    }
}
