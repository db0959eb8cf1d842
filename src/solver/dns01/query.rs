//! DNS messages on the wire: one request, one reply, over UDP (TCP when the
//! reply is truncated, or always for updates). Also the small helpers every
//! provider needs to find a zone and the system's resolvers.
//!
//! This is deliberately not a resolver: it asks exactly the server it is told
//! to ask, so the caller decides whom to trust (the primary for an update, the
//! authoritative servers or the configured resolvers for propagation).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one UDP try waits for its reply; a second try follows.
const UDP_WAIT: Duration = Duration::from_secs(2);
/// How long a whole TCP exchange may take.
const TCP_WAIT: Duration = Duration::from_secs(10);

/// How a request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// UDP, retried once, then TCP if the reply was truncated.
    Udp,
    /// TCP only (dynamic updates: no retransmission, no size limit).
    Tcp,
}

/// Sends `request` to `server` and returns the raw reply (the raw bytes are
/// what a TSIG signature covers).
///
/// # Errors
///
/// A message naming the server when it cannot be reached or does not answer.
pub(super) async fn exchange(
    server: SocketAddr,
    request: &Message,
    transport: Transport,
) -> Result<Vec<u8>, String> {
    let bytes = request
        .to_vec()
        .map_err(|e| format!("cannot encode a DNS message for {server}: {e}"))?;
    if transport == Transport::Udp {
        let reply = udp(server, &bytes, request.id()).await?;
        // The TC bit is bit 1 of the third header byte.
        if reply.get(2).is_none_or(|flags| flags & 0x02 == 0) {
            return Ok(reply);
        }
    }
    tokio::time::timeout(TCP_WAIT, tcp(server, &bytes, request.id()))
        .await
        .map_err(|_| {
            format!(
                "no answer from {server} (TCP) within {}s",
                TCP_WAIT.as_secs()
            )
        })?
}

async fn udp(server: SocketAddr, request: &[u8], id: u16) -> Result<Vec<u8>, String> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |e: std::io::Error| format!("cannot reach {server} (UDP): {e}");
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let mut buf = vec![0u8; 65_535];
    for _ in 0..2 {
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
    Err(format!(
        "no answer from {server} (UDP, 2 tries of {}s)",
        UDP_WAIT.as_secs()
    ))
}

async fn tcp(server: SocketAddr, request: &[u8], id: u16) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("cannot reach {server} (TCP): {e}");
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let len =
        u16::try_from(request.len()).map_err(|_| format!("DNS message for {server} too large"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut reply = vec![0u8; usize::from(len)];
    stream.read_exact(&mut reply).await.map_err(io)?;
    if reply.len() < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id {
        return Err(format!("{server} sent a reply to another request (TCP)"));
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
/// As [`exchange`], or a message if the reply does not decode.
pub(super) async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recursion: bool,
) -> Result<Message, String> {
    let reply = exchange(server, &request(name, rtype, recursion), Transport::Udp).await?;
    Message::from_vec(&reply).map_err(|e| format!("undecodable reply from {server}: {e}"))
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
            .unwrap_err();
        assert!(err.contains(&server.to_string()), "{err}");
    }
}
