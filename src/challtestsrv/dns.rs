//! The mock DNS server (UDP and TCP).
//!
//! Answers as `pebble-challtestsrv` does: `A`/`AAAA` from mocks or the
//! defaults, `TXT` from DNS-01 responses, `CAA` and `CNAME` from mocks (one
//! level of CNAME aliasing is followed), SERVFAIL for names set to fail,
//! NOTIMP for other query types, never NXDOMAIN, and a fake SOA record in the
//! authority section of every answer.
//!
//! Bounded: queries longer than [`MAX_QUERY_LEN`] are dropped, UDP answers
//! larger than the client's limit (512 bytes, or its EDNS payload size up to
//! [`MAX_UDP_PAYLOAD`]) are truncated (TC set) so the client retries over TCP,
//! and TCP connections are limited in number and idle time.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use super::{accept_loop, dns_key, stopped, ChallTestSrv, DnsQuestion, DnsRequestEvent};

/// Largest query accepted (UDP datagram or TCP message); larger ones are
/// dropped.
pub const MAX_QUERY_LEN: usize = 4096;

/// Largest UDP answer sent, whatever EDNS payload size the client offers.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// How long a TCP connection may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// How long a TCP connection may stay open at all.
const TCP_MAX_LIFETIME: Duration = Duration::from_secs(120);

/// Binds the UDP socket and a TCP listener on the same port.
pub(crate) async fn bind(addr: &str) -> io::Result<(UdpSocket, TcpListener)> {
    // With port 0 the OS picks the UDP port, which may be taken for TCP:
    // try a few times.
    let mut last = None;
    for _ in 0..8 {
        let udp = super::bind_udp(addr).await?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::other("no address"));
    Err(io::Error::new(
        e.kind(),
        format!("binding {addr} (TCP): {e}"),
    ))
}

/// Serves DNS over UDP until `stop`.
pub(crate) async fn serve_udp(
    srv: ChallTestSrv,
    socket: UdpSocket,
    ttl: u32,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // E.g. ICMP port unreachable reported on Linux: keep serving.
                Err(_) => continue,
            },
        };
        if n > MAX_QUERY_LEN {
            continue;
        }
        if let Some(answer) = srv.answer(&buf[..n], Transport::Udp, ttl) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

/// Serves DNS over TCP until `stop`.
pub(crate) async fn serve_tcp(
    srv: ChallTestSrv,
    listener: TcpListener,
    ttl: u32,
    stop: watch::Receiver<bool>,
) {
    accept_loop(listener, stop, TCP_MAX_LIFETIME, move |stream, _| {
        let srv = srv.clone();
        async move {
            let _ = serve_tcp_conn(&srv, stream, ttl).await;
        }
    })
    .await
}

async fn serve_tcp_conn(srv: &ChallTestSrv, mut stream: TcpStream, ttl: u32) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len > MAX_QUERY_LEN {
            return Ok(());
        }
        let mut query = vec![0u8; len];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let Some(answer) = srv.answer(&query, Transport::Tcp, ttl) else {
            return Ok(());
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(answer.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&answer);
        tokio::time::timeout(TCP_IDLE, stream.write_all(&out))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    }
}

/// How an answer will be sent, which bounds its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: answers beyond the client's payload size are truncated.
    Udp,
    /// TCP (or DoH): answers up to 65535 bytes.
    Tcp,
}

/// The fake SOA record `pebble-challtestsrv` puts in every answer.
fn mock_soa(ttl: u32) -> Option<Record> {
    let soa = SOA::new(
        Name::from_ascii("ns.challtestsrv.invalid.").ok()?,
        Name::from_ascii("master.challtestsrv.invalid.").ok()?,
        1,
        1,
        1,
        1,
        1,
    );
    Some(Record::from_rdata(
        Name::from_ascii("challtestsrv.invalid.").ok()?,
        ttl,
        RData::SOA(soa),
    ))
}

fn name_from(key: &str) -> Option<Name> {
    Name::from_ascii(key).ok()
}

impl ChallTestSrv {
    /// Answers one DNS query message (wire format) as the DNS server would,
    /// recording its question in the request history. `None` means no
    /// answer is to be sent (not a query, or too short to reply to).
    pub fn answer(&self, query: &[u8], transport: Transport, ttl: u32) -> Option<Vec<u8>> {
        let request = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) => return format_error(query),
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::new(0, MessageType::Response, OpCode::Query);
        response.metadata = Metadata::response_from_request(&request.metadata);
        response.add_queries(request.queries.iter().cloned());
        let client_payload = request.edns.as_ref().map(|e| e.max_payload().max(512));
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(MAX_UDP_PAYLOAD);
            edns.set_version(0);
            response.set_edns(edns);
        }
        if request.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
        } else if request.queries.len() != 1 {
            response.metadata.response_code = ResponseCode::FormErr;
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            response.metadata.response_code = ResponseCode::BADVERS;
        } else {
            let q = &request.queries[0];
            self.record_dns(DnsRequestEvent {
                question: DnsQuestion {
                    name: q.name().to_ascii(),
                    qtype: u16::from(q.query_type()),
                    qclass: u16::from(q.query_class()),
                },
            });
            self.answer_question(q.name(), q.query_type(), ttl, &mut response);
            response.authorities.extend(mock_soa(ttl));
        }
        let mut bytes = match response.to_vec() {
            Ok(b) => b,
            Err(_) => {
                let mut fail = response.truncate();
                fail.metadata.truncation = false;
                fail.metadata.response_code = ResponseCode::ServFail;
                fail.to_vec().ok()?
            }
        };
        let limit = match transport {
            Transport::Udp => usize::from(client_payload.unwrap_or(512).min(MAX_UDP_PAYLOAD)),
            Transport::Tcp => usize::from(u16::MAX),
        };
        if bytes.len() > limit {
            bytes = response.truncate().to_vec().ok()?;
        }
        Some(bytes)
    }

    fn answer_question(&self, qname: &Name, qtype: RecordType, ttl: u32, response: &mut Message) {
        let data = self.read();
        let mut key = dns_key(&qname.to_ascii());
        if data.servfail.contains(&key) {
            response.metadata.response_code = ResponseCode::ServFail;
            return;
        }
        let mut owner = qname.clone();
        if let Some(target) = data.cname.get(&key) {
            if let Some(t) = name_from(target) {
                response.add_answer(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::CNAME(CNAME(t.clone())),
                ));
                owner = t;
                key = target.clone();
            }
        }
        match qtype {
            RecordType::CNAME => {
                if let Some(t) = data.cname.get(&key).and_then(|t| name_from(t)) {
                    response.add_answer(Record::from_rdata(owner, ttl, RData::CNAME(CNAME(t))));
                }
            }
            RecordType::TXT => {
                for value in data.txt.get(&key).into_iter().flatten() {
                    let txt = TXT::new(character_strings(value));
                    response.add_answer(Record::from_rdata(owner.clone(), ttl, RData::TXT(txt)));
                }
            }
            RecordType::A => {
                // Names that are IP addresses get no fake answer.
                if IpAddr::from_str(key.trim_end_matches('.')).is_ok() {
                    return;
                }
                let ips: Vec<Ipv4Addr> = match data.a.get(&key) {
                    Some(ips) if !ips.is_empty() => ips.clone(),
                    _ => data.default_ipv4.into_iter().collect(),
                };
                for ip in ips {
                    response.add_answer(Record::from_rdata(owner.clone(), ttl, RData::A(A(ip))));
                }
            }
            RecordType::AAAA => {
                let ips: Vec<Ipv6Addr> = match data.aaaa.get(&key) {
                    Some(ips) if !ips.is_empty() => ips.clone(),
                    _ => data.default_ipv6.into_iter().collect(),
                };
                for ip in ips {
                    response.add_answer(Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::AAAA(AAAA(ip)),
                    ));
                }
            }
            RecordType::CAA => {
                for policy in data.caa.get(&key).into_iter().flatten() {
                    let mut caa = CAA::new_issue(false, None, Vec::new());
                    caa.tag = policy.tag.clone();
                    caa.value = policy.value.as_bytes().to_vec();
                    response.add_answer(Record::from_rdata(owner.clone(), ttl, RData::CAA(caa)));
                }
            }
            _ => response.metadata.response_code = ResponseCode::NotImp,
        }
    }
}

/// A FORMERR reply to an unparsable message, if it has a query header.
fn format_error(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    let op_code = OpCode::from_u8((query[2] >> 3) & 0x0f);
    Message::error_msg(id, op_code, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

/// `value` cut into the character-strings of one TXT record (RFC 1035
/// §3.3.14: at most 255 octets each), at character boundaries; resolvers
/// join them again. A long dns-persist-01 value needs more than one.
fn character_strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while rest.len() > 255 {
        let mut cut = 255;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    out.push(rest.to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::character_strings;

    #[test]
    fn long_values_become_several_character_strings() {
        assert_eq!(character_strings(""), [""]);
        assert_eq!(character_strings("abc"), ["abc"]);
        let exact = "a".repeat(255);
        assert_eq!(character_strings(&exact), [exact]);
        let long = "b".repeat(600);
        let parts = character_strings(&long);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(parts.concat(), long);
        // A cut never splits a character: "é" is two bytes.
        let mixed = format!("{}é{}", "c".repeat(254), "d".repeat(10));
        let parts = character_strings(&mixed);
        assert_eq!(parts[0].len(), 254);
        assert!(parts.iter().all(|p| p.len() <= 255));
        assert_eq!(parts.concat(), mixed);
    }
}
