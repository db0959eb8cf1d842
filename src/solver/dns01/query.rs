//! DNS messages on the wire: one request, one reply, over UDP (TCP when the
//! reply is truncated, or always for updates). Also the small helpers every
//! provider needs to find a zone and the system's resolvers.
//!
//! This is deliberately not a resolver: it asks exactly the server it is told
//! to ask, so the caller decides whom to trust (the primary for an update, the
//! authoritative servers or the configured resolvers for propagation).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::ProtoError;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one UDP try waits for its reply; a second try follows.
const UDP_WAIT: Duration = Duration::from_secs(2);
/// How many times a UDP request is sent before giving up.
const UDP_TRIES: u32 = 2;
/// How long a whole TCP exchange may take.
const TCP_WAIT: Duration = Duration::from_secs(10);

/// How a request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP, retried once, then TCP if the reply was truncated.
    Udp,
    /// TCP only (dynamic updates: no retransmission, no size limit).
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        })
    }
}

/// One DNS exchange with one server that gave no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be put on the wire.
    #[error("cannot encode a DNS message for {server}: {source}")]
    Encode {
        /// The server it was meant for.
        server: SocketAddr,
        /// hickory's encoding error.
        #[source]
        source: ProtoError,
    },
    /// Sending or receiving failed (connection refused, unreachable, reset).
    #[error("cannot reach {server} ({transport}): {source}")]
    Unreachable {
        /// The server asked.
        server: SocketAddr,
        /// The protocol the failure happened on.
        transport: Transport,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// No reply to any UDP try.
    #[error("no answer from {server} (UDP, {tries} tries of {}s)", wait.as_secs())]
    UdpTimeout {
        /// The server asked.
        server: SocketAddr,
        /// How many times the request was sent.
        tries: u32,
        /// How long each try waited.
        wait: Duration,
    },
    /// The TCP exchange did not finish in time.
    #[error("no answer from {server} (TCP) within {}s", wait.as_secs())]
    TcpTimeout {
        /// The server asked.
        server: SocketAddr,
        /// How long the exchange was given.
        wait: Duration,
    },
    /// The request does not fit a TCP length prefix.
    #[error("DNS message for {server} too large")]
    TooLarge {
        /// The server it was meant for.
        server: SocketAddr,
    },
    /// The TCP reply carries another request's id (or no DNS header at all).
    #[error("{server} sent a reply to another request (TCP)")]
    WrongReply {
        /// The server asked.
        server: SocketAddr,
    },
    /// The reply is not a DNS message.
    #[error("undecodable reply from {server}: {source}")]
    Decode {
        /// The server that sent it.
        server: SocketAddr,
        /// hickory's decoding error.
        #[source]
        source: ProtoError,
    },
}

/// Sends `request` to `server` and returns the raw reply (the raw bytes are
/// what a TSIG signature covers).
///
/// # Errors
///
/// [`Error`] naming the server when it cannot be reached or does not answer.
pub(super) async fn exchange(
    server: SocketAddr,
    request: &Message,
    transport: Transport,
) -> Result<Vec<u8>, Error> {
    let bytes = request
        .to_vec()
        .map_err(|source| Error::Encode { server, source })?;
    if transport == Transport::Udp {
        let reply = udp(server, &bytes, request.id()).await?;
        // The TC bit is bit 1 of the third header byte.
        if reply.get(2).is_none_or(|flags| flags & 0x02 == 0) {
            return Ok(reply);
        }
    }
    tokio::time::timeout(TCP_WAIT, tcp(server, &bytes, request.id()))
        .await
        .map_err(|_| Error::TcpTimeout {
            server,
            wait: TCP_WAIT,
        })?
}

async fn udp(server: SocketAddr, request: &[u8], id: u16) -> Result<Vec<u8>, Error> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |source| Error::Unreachable {
        server,
        transport: Transport::Udp,
        source,
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let mut buf = vec![0u8; 65_535];
    for _ in 0..UDP_TRIES {
        socket.send(request).await.map_err(io)?;
        let deadline = tokio::time::Instant::now() + UDP_WAIT;
        // Replies to an earlier try or garbage are skipped, not fatal.
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            let len = received.map_err(io)?;
            if len >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                buf.truncate(len);
                return Ok(buf);
            }
        }
    }
    Err(Error::UdpTimeout {
        server,
        tries: UDP_TRIES,
        wait: UDP_WAIT,
    })
}

async fn tcp(server: SocketAddr, request: &[u8], id: u16) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Unreachable {
        server,
        transport: Transport::Tcp,
        source,
    };
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(request.len()).map_err(|_| Error::TooLarge { server })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut reply = vec![0u8; usize::from(len)];
    stream.read_exact(&mut reply).await.map_err(io)?;
    if reply.len() < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id {
        return Err(Error::WrongReply { server });
    }
    Ok(reply)
}

/// A query for `name`/`rtype` with a fresh id; `recursion` sets the RD bit
/// (on for resolvers, off for authoritative servers).
pub(super) fn request(name: &Name, rtype: RecordType, recursion: bool) -> Message {
    let mut message = Message::new();
    message
        .set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(recursion)
        .add_query(Query::query(name.clone(), rtype));
    message
}

/// Asks `server` for `name`/`rtype` and decodes the reply.
///
/// # Errors
///
/// As [`exchange`], or [`Error::Decode`] if the reply does not decode.
pub(super) async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recursion: bool,
) -> Result<Message, Error> {
    let reply = exchange(server, &request(name, rtype, recursion), Transport::Udp).await?;
    decode(server, &reply)
}

/// The reply `server` sent, decoded.
///
/// # Errors
///
/// [`Error::Decode`] when it is not a DNS message.
pub(super) fn decode(server: SocketAddr, reply: &[u8]) -> Result<Message, Error> {
    Message::from_vec(reply).map_err(|source| Error::Decode { server, source })
}

/// `name` and each of its ancestors, nearest first, down to (not including)
/// the top-level domain: the names that may be the apex of its zone.
pub(super) fn ancestors(name: &Name) -> Vec<Name> {
    let mut names = Vec::new();
    let mut current = name.clone();
    while current.num_labels() >= 2 {
        let parent = current.base_name();
        names.push(current);
        current = parent;
    }
    names
}

/// The zone a reply to an SOA query names: the owner of the SOA record in the
/// answer (the name is the apex) or authority section (the name is inside).
pub(super) fn zone_in_reply(reply: &Message) -> Option<Name> {
    reply
        .answers()
        .iter()
        .chain(reply.name_servers())
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.name().clone())
}

/// The resolvers of `/etc/resolv.conf` (127.0.0.1 when it names none, as libc does).
pub(super) fn system_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut resolvers = parse_resolv_conf(&text);
    if resolvers.is_empty() {
        resolvers.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53));
    }
    resolvers
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // Link-local IPv6 resolvers carry a %scope that IpAddr cannot hold.
            let address = words.next()?.split('%').next()?;
            let ip: IpAddr = address.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_stop_above_the_top_level_domain() {
        let name = Name::from_ascii("_acme-challenge.a.example.com.").unwrap();
        let names: Vec<String> = ancestors(&name).iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "_acme-challenge.a.example.com.",
                "a.example.com.",
                "example.com."
            ]
        );
    }

    #[test]
    fn resolv_conf_nameservers_are_read_with_port_53() {
        let text = "# comment\nsearch example.com\nnameserver 192.0.2.1\n\
                    nameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n";
        assert_eq!(
            parse_resolv_conf(text),
            [
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        // Bound then released: nothing listens there, the kernel refuses.
        let server = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let name = Name::from_ascii("example.com.").unwrap();
        let err = query(server, &name, RecordType::SOA, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&server.to_string()), "{err}");
    }

    #[test]
    fn exchange_failures_read_as_before() {
        let server: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases = [
            (
                Error::UdpTimeout {
                    server,
                    tries: UDP_TRIES,
                    wait: UDP_WAIT,
                },
                "no answer from 192.0.2.1:53 (UDP, 2 tries of 2s)",
            ),
            (
                Error::TcpTimeout {
                    server,
                    wait: TCP_WAIT,
                },
                "no answer from 192.0.2.1:53 (TCP) within 10s",
            ),
            (
                Error::Unreachable {
                    server,
                    transport: Transport::Tcp,
                    source: refused,
                },
                "cannot reach 192.0.2.1:53 (TCP): connection refused",
            ),
            (
                Error::WrongReply { server },
                "192.0.2.1:53 sent a reply to another request (TCP)",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
