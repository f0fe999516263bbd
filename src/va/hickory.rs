//! A [`Resolver`] backed by hickory-resolver, asking only the DNS servers it
//! is given.
//!
//! The VA must see what the world sees now, and nothing local: no
//! `/etc/resolv.conf`, no hosts file, no search domains (every name is asked
//! as a fully qualified name) and no answer cache. Queries go over UDP and
//! are retried over TCP when an answer is truncated. hickory follows CNAME
//! chains up to 8 links.
//!
//! Query names may carry randomized letter case (DNS 0x20): an answer that
//! does not echo it is treated as spoofed and asked again over TCP. 0x20
//! only earns its cost against off-path spoofing of UDP answers crossing a
//! network, so the server chooses it per setup (on when a DNS server is not
//! on loopback, see `validation.dns_case_randomization`). Names are
//! case-insensitive (RFC 4343) but some servers, pebble-challtestsrv among
//! them, match them byte for byte and answer "no records" to a mixed-case
//! name; so with 0x20 a negative answer (NXDOMAIN, or NOERROR without
//! records) is asked once more over TCP, in the name's own case and without
//! 0x20. TCP needs a completed handshake, which an off-path attacker cannot
//! forge, so the spoofing protection holds and a correct answer is never
//! turned into "no record"; the price is one TCP exchange per negative
//! answer (mostly the empty levels of a CAA tree climb).
//!
//! Answers are mapped onto [`DnsError`] precisely, so that validators can
//! tell a missing record (NXDOMAIN, NOERROR without records) from a broken
//! server (SERVFAIL, REFUSED, …), a timeout, or anything else; an answer
//! with more than [`MAX_ANSWERS`] records of the type asked is refused.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use crate::error::{Error, ErrorKind};
use crate::protocol::names::MAX_DOMAIN_NAME_LEN;
use crate::va::dns::{CaaRecord, DnsError, DnsFuture, Resolver};

/// The most records of the asked type accepted in one answer.
pub(crate) const MAX_ANSWERS: usize = 100;

/// A [`Resolver`] that asks a fixed list of DNS servers through
/// hickory-resolver.
pub(crate) struct HickoryResolver {
    resolver: TokioResolver,
    /// With 0x20 on: the same servers over TCP, names as given, for a
    /// second look at negative answers.
    recheck: Option<TokioResolver>,
    servers: Vec<SocketAddr>,
}

impl HickoryResolver {
    /// A resolver asking `servers` (recursive resolvers, tried in the order
    /// hickory finds fastest), giving up on one query after `timeout` and
    /// making at most `attempts` tries (at least one) before reporting a
    /// failure; `case_randomization` turns DNS 0x20 on (see the module
    /// documentation).
    ///
    /// Must be called within a Tokio runtime only when lookups run; building
    /// does no I/O.
    ///
    /// # Errors
    /// [`ErrorKind::ServerInternal`] if `servers` is empty or hickory refuses
    /// the configuration.
    pub(crate) fn new(
        servers: &[SocketAddr],
        timeout: Duration,
        attempts: usize,
        case_randomization: bool,
    ) -> Result<Self, Error> {
        if servers.is_empty() {
            return Err(Error::new(
                ErrorKind::ServerInternal,
                "the VA needs at least one DNS server",
            ));
        }
        let resolver = build(servers, true, timeout, attempts, case_randomization)?;
        let recheck = if case_randomization {
            Some(build(servers, false, timeout, attempts, false)?)
        } else {
            None
        };
        Ok(HickoryResolver {
            resolver,
            recheck,
            servers: servers.to_vec(),
        })
    }

    /// The records of type `rtype` at `name`, CNAMEs followed; never empty.
    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Vec<RData>, DnsError> {
        let fqdn = fqdn(name)?;
        let first = lookup_with(&self.resolver, fqdn.clone(), name, rtype).await;
        match (&first, &self.recheck) {
            (Err(DnsError::NoRecords | DnsError::NxDomain), Some(tcp)) => {
                lookup_with(tcp, fqdn, name, rtype).await
            }
            _ => first,
        }
    }

    async fn lookup_ips(&self, name: &str, rtype: RecordType) -> Result<Vec<IpAddr>, DnsError> {
        let records = self.lookup(name, rtype).await?;
        Ok(records.iter().filter_map(RData::ip_addr).collect())
    }
}

/// A hickory resolver asking `servers` over UDP then TCP (or TCP alone).
fn build(
    servers: &[SocketAddr],
    udp: bool,
    timeout: Duration,
    attempts: usize,
    case_randomization: bool,
) -> Result<TokioResolver, Error> {
    let name_servers = servers
        .iter()
        .map(|addr| {
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let mut connections = vec![tcp];
            if udp {
                let mut u = ConnectionConfig::udp();
                u.port = addr.port();
                connections.insert(0, u);
            }
            NameServerConfig::new(addr.ip(), true, connections)
        })
        .collect();
    let config = ResolverConfig::from_name_servers(name_servers);

    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    // hickory counts retries after the first try.
    opts.attempts = attempts.max(1) - 1;
    opts.ndots = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    // No caching: every validation sees fresh answers.
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.edns0 = true;
    opts.recursion_desired = true;
    opts.case_randomization = case_randomization;
    opts.preserve_intermediates = true;

    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::ServerInternal,
                format!("cannot build the DNS resolver: {e}"),
            )
        })
}

/// The records of type `rtype` at `fqdn` (`name` as given, for messages)
/// through `resolver`, CNAMEs followed; never empty.
async fn lookup_with(
    resolver: &TokioResolver,
    fqdn: Name,
    name: &str,
    rtype: RecordType,
) -> Result<Vec<RData>, DnsError> {
    let lookup = resolver
        .lookup(fqdn, rtype)
        .await
        .map_err(|e| map_error(&e))?;
    let mut out = Vec::new();
    for record in lookup.answers() {
        if record.record_type() != rtype {
            // CNAMEs of the chain, kept by hickory as intermediates.
            continue;
        }
        if out.len() == MAX_ANSWERS {
            return Err(DnsError::Other(format!(
                "more than {MAX_ANSWERS} {rtype} records for {name}"
            )));
        }
        out.push(record.data.clone());
    }
    if out.is_empty() {
        return Err(DnsError::NoRecords);
    }
    Ok(out)
}

/// `name` as a fully qualified hickory name (no search domains apply).
fn fqdn(name: &str) -> Result<Name, DnsError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > MAX_DOMAIN_NAME_LEN || !trimmed.is_ascii() {
        return Err(DnsError::Other(format!(
            "cannot look up {name:?}: not a DNS name"
        )));
    }
    let mut n = Name::from_ascii(trimmed)
        .map_err(|e| DnsError::Other(format!("cannot look up {name:?}: {e}")))?;
    n.set_fqdn(true);
    Ok(n)
}

/// The conventional mnemonic of a response code (RFC 1035 §4.1.1, RFC 6895).
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::YXDomain => "YXDOMAIN".to_owned(),
        ResponseCode::YXRRSet => "YXRRSET".to_owned(),
        ResponseCode::NXRRSet => "NXRRSET".to_owned(),
        ResponseCode::NotAuth => "NOTAUTH".to_owned(),
        ResponseCode::NotZone => "NOTZONE".to_owned(),
        ResponseCode::BADVERS => "BADVERS".to_owned(),
        ResponseCode::BADCOOKIE => "BADCOOKIE".to_owned(),
        other => format!("RCODE {}", u16::from(other)),
    }
}

fn map_error(e: &NetError) -> DnsError {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
            match *response_code {
                ResponseCode::NXDomain => DnsError::NxDomain,
                ResponseCode::NoError => DnsError::NoRecords,
                other => DnsError::ServerFailure(rcode_name(other)),
            }
        }
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => match *code {
            ResponseCode::NXDomain => DnsError::NxDomain,
            other => DnsError::ServerFailure(rcode_name(other)),
        },
        NetError::Timeout => DnsError::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => DnsError::Timeout,
        NetError::Io(io) => DnsError::Other(format!("network error: {io}")),
        NetError::NoConnections => DnsError::Other("no DNS server could be reached".to_owned()),
        NetError::Truncated => DnsError::Other("the answer was truncated even over TCP".to_owned()),
        NetError::Proto(p) => DnsError::Other(format!("malformed answer: {p}")),
        other => DnsError::Other(other.to_string()),
    }
}

/// The A and AAAA answers combined (Boulder's rule): addresses if either
/// family has some, whatever happened to the other; else the more telling
/// failure.
fn combine(
    v4: Result<Vec<IpAddr>, DnsError>,
    v6: Result<Vec<IpAddr>, DnsError>,
) -> Result<Vec<IpAddr>, DnsError> {
    match (v4, v6) {
        (Ok(mut a), Ok(b)) => {
            a.extend(b);
            Ok(a)
        }
        (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(a),
        (Err(a), Err(b)) => {
            let hard = |e: &DnsError| !matches!(e, DnsError::NxDomain | DnsError::NoRecords);
            Err(if hard(&a) {
                a
            } else if hard(&b) {
                b
            } else if a == DnsError::NxDomain || b == DnsError::NxDomain {
                DnsError::NxDomain
            } else {
                DnsError::NoRecords
            })
        }
    }
}

impl Resolver for HickoryResolver {
    fn lookup_ip<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        Box::pin(async move {
            let (v4, v6) = tokio::join!(
                self.lookup_ips(name, RecordType::A),
                self.lookup_ips(name, RecordType::AAAA)
            );
            combine(v4, v6)
        })
    }

    fn lookup_txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move {
            let records = self.lookup(name, RecordType::TXT).await?;
            Ok(records
                .iter()
                .filter_map(|r| match r {
                    RData::TXT(txt) => {
                        let joined: Vec<u8> = txt.txt_data.iter().flatten().copied().collect();
                        Some(String::from_utf8_lossy(&joined).into_owned())
                    }
                    _ => None,
                })
                .collect())
        })
    }

    fn lookup_caa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<CaaRecord>> {
        Box::pin(async move {
            let records = self.lookup(name, RecordType::CAA).await?;
            Ok(records
                .iter()
                .filter_map(|r| match r {
                    // hickory keeps the tag and the value as received.
                    RData::CAA(caa) => Some(CaaRecord {
                        critical: caa.issuer_critical,
                        tag: caa.tag.to_ascii_lowercase(),
                        value: caa.value.clone(),
                    }),
                    RData::Unknown { rdata, .. } => parse_caa_rdata(&rdata.anything),
                    _ => None,
                })
                .collect())
        })
    }

    fn describe(&self) -> String {
        let addrs: Vec<String> = self.servers.iter().map(SocketAddr::to_string).collect();
        addrs.join(", ")
    }
}

/// A CAA record from raw RDATA (RFC 8659 §4.1), should hickory hand one
/// over undecoded.
fn parse_caa_rdata(rdata: &[u8]) -> Option<CaaRecord> {
    let (&flags, rest) = rdata.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if len == 0 || rest.len() < len {
        return None;
    }
    let (tag, value) = rest.split_at(len);
    Some(CaaRecord {
        critical: flags & 0x80 != 0,
        tag: String::from_utf8_lossy(tag).to_ascii_lowercase(),
        value: value.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use hickory_resolver::proto::op::{Message, OpCode};
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CAA, CNAME, TXT};
    use hickory_resolver::proto::rr::Record;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    use super::*;

    /// What the test server does with a query.
    enum Reply {
        Answer(Vec<Record>),
        Rcode(ResponseCode),
        Silent,
    }

    fn rec(name: &str, data: RData) -> Record {
        Record::from_rdata(Name::from_ascii(name).unwrap(), 60, data)
    }

    fn txt(name: &str, strings: &[&str]) -> Record {
        let data = TXT::new(strings.iter().map(|s| (*s).to_owned()).collect());
        rec(name, RData::TXT(data))
    }

    fn cname(name: &str, target: &str) -> Record {
        rec(name, RData::CNAME(CNAME(Name::from_ascii(target).unwrap())))
    }

    fn caa(name: &str, critical: bool, tag: &str, value: &[u8]) -> Record {
        let mut data = CAA::new_issue(critical, None, Vec::new());
        data.tag = tag.to_owned();
        data.value = value.to_vec();
        rec(name, RData::CAA(data))
    }

    /// The test zone. Names arrive lowercased, fully qualified.
    fn zone(name: &str, rtype: RecordType, counter: &AtomicUsize) -> Reply {
        use RecordType as T;
        match (name, rtype) {
            ("ip.example.test.", T::A) => Reply::Answer(vec![
                rec(name, RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))),
                rec(name, RData::A(A(Ipv4Addr::new(192, 0, 2, 2)))),
            ]),
            ("ip.example.test.", T::AAAA) => Reply::Answer(vec![rec(
                name,
                RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
            )]),
            ("v4.example.test.", T::A) | ("half.example.test.", T::A) => {
                Reply::Answer(vec![rec(name, RData::A(A(Ipv4Addr::new(192, 0, 2, 4))))])
            }
            ("v4.example.test.", _) => Reply::Answer(vec![]),
            ("half.example.test.", T::AAAA) => Reply::Rcode(ResponseCode::ServFail),
            ("txt.example.test.", T::TXT) => {
                Reply::Answer(vec![txt(name, &["abc", "def"]), txt(name, &["  token  "])])
            }
            ("txt.example.test.", _) => Reply::Answer(vec![]),
            ("_acme-challenge.exact.example.test.", T::TXT) => {
                Reply::Answer(vec![txt(name, &["exact"])])
            }
            ("exact.example.test.", T::CAA) => {
                Reply::Answer(vec![caa(name, false, "issue", b"other-ca.example")])
            }
            // An authoritative server's answer: the CNAME alone.
            ("alias.example.test.", _) => Reply::Answer(vec![cname(name, "txt.example.test.")]),
            // A recursive resolver's answer: the chain and the records.
            ("alias2.example.test.", T::TXT) => Reply::Answer(vec![
                cname(name, "alias3.example.test."),
                cname("alias3.example.test.", "txt.example.test."),
                txt("txt.example.test.", &["chained"]),
            ]),
            ("loop1.example.test.", _) => Reply::Answer(vec![cname(name, "loop2.example.test.")]),
            ("loop2.example.test.", _) => Reply::Answer(vec![cname(name, "loop1.example.test.")]),
            ("caa.example.test.", T::CAA) => Reply::Answer(vec![
                caa(
                    name,
                    false,
                    "issue",
                    b"acme-ca.test; accounturi=https://a/1",
                ),
                caa(name, true, "tbs", b"Unknown"),
                caa(name, false, "ISSUEWILD", b";"),
                caa(name, false, "issue", b"%%% not an issuer \xff"),
            ]),
            ("caa.example.test.", _) => Reply::Answer(vec![]),
            ("big.example.test.", T::TXT) => Reply::Answer(
                (0..20)
                    .map(|i| txt(name, &[&format!("{i:02}{}", "x".repeat(100))]))
                    .collect(),
            ),
            ("many.example.test.", T::A) => Reply::Answer(
                (0..=MAX_ANSWERS)
                    .map(|i| rec(name, RData::A(A(Ipv4Addr::new(192, 0, 2, i as u8)))))
                    .collect(),
            ),
            ("fresh.example.test.", T::TXT) => {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                Reply::Answer(vec![txt(name, &[&format!("answer {n}")])])
            }
            ("servfail.example.test.", _) => Reply::Rcode(ResponseCode::ServFail),
            ("refused.example.test.", _) => Reply::Rcode(ResponseCode::Refused),
            ("silent.example.test.", _) => Reply::Silent,
            (n, _) if n.ends_with(".example.test.") && !n.starts_with("nx.") => {
                Reply::Answer(vec![])
            }
            _ => Reply::Rcode(ResponseCode::NXDomain),
        }
    }

    /// The wire answer to `query`, or None to stay silent. Over UDP an
    /// answer longer than 512 octets is sent truncated (TC, no records).
    fn respond(query: &[u8], udp: bool, counter: &AtomicUsize) -> Option<Vec<u8>> {
        let request = Message::from_vec(query).ok()?;
        let q = request.queries.first()?.clone();
        let asked = q.name().to_ascii();
        let name = asked.to_ascii_lowercase();
        let mut response = Message::response(request.metadata.id, OpCode::Query);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        // Echo the query as asked, 0x20 case included.
        response.add_query(q.clone());
        // Like pebble-challtestsrv, this name is matched byte for byte.
        let reply = if name.ends_with("exact.example.test.") && asked != name {
            Reply::Answer(vec![])
        } else {
            zone(&name, q.query_type(), counter)
        };
        match reply {
            Reply::Silent => return None,
            Reply::Rcode(code) => response.metadata.response_code = code,
            Reply::Answer(records) => {
                response.add_answers(records);
            }
        }
        let bytes = response.to_vec().ok()?;
        if udp && bytes.len() > 512 {
            let mut truncated = Message::response(request.metadata.id, OpCode::Query);
            truncated.metadata.truncation = true;
            truncated.metadata.recursion_available = true;
            truncated.add_query(q);
            return truncated.to_vec().ok();
        }
        Some(bytes)
    }

    struct TestServer {
        addr: SocketAddr,
        tcp_queries: Arc<AtomicUsize>,
    }

    /// A tiny authoritative-looking server for [`zone`] on 127.0.0.1, UDP
    /// and TCP on the same port.
    async fn start_server() -> TestServer {
        // The OS picks a free UDP port; the same TCP port may be held by
        // some other connection, so pick again until both are ours.
        let mut tries = 0;
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            match TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, tcp, addr),
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("{addr} taken for TCP ({e}), picking another port");
                }
                Err(e) => panic!("no port free for both UDP and TCP: {e}"),
            }
        };
        let counter = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let c = counter.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                if let Some(answer) = respond(&buf[..n], true, &c) {
                    let _ = udp.send_to(&answer, peer).await;
                }
            }
        });
        let tq = tcp_queries.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let counter = counter.clone();
                let tq = tq.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if stream.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        tq.fetch_add(1, Ordering::SeqCst);
                        let Some(answer) = respond(&query, false, &counter) else {
                            continue;
                        };
                        let len = u16::try_from(answer.len()).unwrap().to_be_bytes();
                        if stream.write_all(&len).await.is_err()
                            || stream.write_all(&answer).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        TestServer { addr, tcp_queries }
    }

    async fn resolver() -> (HickoryResolver, TestServer) {
        let server = start_server().await;
        let r = HickoryResolver::new(&[server.addr], Duration::from_millis(500), 2, true).unwrap();
        (r, server)
    }

    #[tokio::test]
    async fn a_and_aaaa_are_both_asked() {
        let (r, _s) = resolver().await;
        let mut ips = r.lookup_ip("ip.example.test").await.unwrap();
        ips.sort();
        assert_eq!(
            ips,
            [
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "192.0.2.2".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ]
        );
        // Only A records: NOERROR without AAAA is fine.
        assert_eq!(
            r.lookup_ip("v4.example.test.").await.unwrap(),
            ["192.0.2.4".parse::<IpAddr>().unwrap()]
        );
        // AAAA fails with SERVFAIL, A succeeds: what succeeded.
        assert_eq!(
            r.lookup_ip("half.example.test").await.unwrap(),
            ["192.0.2.4".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            r.lookup_ip("nx.example.test").await,
            Err(DnsError::NxDomain)
        );
        assert_eq!(
            r.lookup_ip("txt.example.test").await,
            Err(DnsError::NoRecords)
        );
        assert_eq!(
            r.lookup_ip("servfail.example.test").await,
            Err(DnsError::ServerFailure("SERVFAIL".to_owned()))
        );
    }

    #[tokio::test]
    async fn txt_strings_are_joined_per_record() {
        let (r, s) = resolver().await;
        let mut found = r.lookup_txt("txt.example.test").await.unwrap();
        found.sort();
        assert_eq!(found, ["  token  ", "abcdef"]);
        // Small answers come over UDP, the 0x20 case echoed as asked.
        assert_eq!(s.tcp_queries.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn cname_chains_are_followed_and_bounded() {
        let (r, _s) = resolver().await;
        let mut found = r.lookup_txt("alias.example.test").await.unwrap();
        found.sort();
        assert_eq!(found, ["  token  ", "abcdef"]);
        assert_eq!(
            r.lookup_txt("alias2.example.test").await.unwrap(),
            ["chained"]
        );
        let started = Instant::now();
        // A loop ends after 8 links as an empty answer (a recursive
        // resolver in front would answer SERVFAIL first).
        assert_eq!(
            r.lookup_txt("loop1.example.test").await,
            Err(DnsError::NoRecords)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn caa_records_keep_raw_tags_and_values() {
        let (r, _s) = resolver().await;
        let found = r.lookup_caa("caa.example.test").await.unwrap();
        assert_eq!(
            found,
            [
                CaaRecord {
                    critical: false,
                    tag: "issue".to_owned(),
                    value: b"acme-ca.test; accounturi=https://a/1".to_vec(),
                },
                CaaRecord {
                    critical: true,
                    tag: "tbs".to_owned(),
                    value: b"Unknown".to_vec(),
                },
                CaaRecord {
                    critical: false,
                    tag: "issuewild".to_owned(),
                    value: b";".to_vec(),
                },
                CaaRecord {
                    critical: false,
                    tag: "issue".to_owned(),
                    value: b"%%% not an issuer \xff".to_vec(),
                },
            ]
        );
        assert_eq!(
            r.lookup_caa("txt.example.test").await,
            Err(DnsError::NoRecords)
        );
        assert_eq!(
            r.lookup_caa("nx.example.test").await,
            Err(DnsError::NxDomain)
        );
    }

    #[tokio::test]
    async fn failures_are_told_apart() {
        let (r, _s) = resolver().await;
        assert_eq!(
            r.lookup_txt("nx.example.test").await,
            Err(DnsError::NxDomain)
        );
        assert_eq!(
            r.lookup_txt("empty.example.test").await,
            Err(DnsError::NoRecords)
        );
        assert_eq!(
            r.lookup_txt("servfail.example.test").await,
            Err(DnsError::ServerFailure("SERVFAIL".to_owned()))
        );
        assert_eq!(
            r.lookup_caa("refused.example.test").await,
            Err(DnsError::ServerFailure("REFUSED".to_owned()))
        );
        assert!(matches!(
            r.lookup_txt("bad name.example.test").await,
            Err(DnsError::Other(_))
        ));
    }

    /// A server that matches names byte for byte still gets its records
    /// found with 0x20 on (the negative answer is asked again over TCP in
    /// the name's own case), and without 0x20 in one UDP query.
    #[tokio::test]
    async fn case_sensitive_servers_still_answer() {
        let server = start_server().await;
        for randomize in [true, false] {
            let r = HickoryResolver::new(&[server.addr], Duration::from_millis(500), 2, randomize)
                .unwrap();
            let before = server.tcp_queries.load(Ordering::SeqCst);
            for _ in 0..3 {
                assert_eq!(
                    r.lookup_txt("_acme-challenge.exact.example.test").await,
                    Ok(vec!["exact".to_owned()])
                );
                let caa = r.lookup_caa("exact.example.test").await.unwrap();
                assert_eq!(caa[0].value, b"other-ca.example");
            }
            let tcp = server.tcp_queries.load(Ordering::SeqCst) - before;
            if randomize {
                // 0x20 on a 20-letter name leaves it all lowercase only
                // by a rare chance; most answers needed the TCP look.
                assert!(tcp >= 1, "{tcp}");
            } else {
                assert_eq!(tcp, 0);
            }
            // A true negative answer stays negative.
            assert_eq!(
                r.lookup_txt("nothing.exact.example.test").await,
                Err(DnsError::NoRecords)
            );
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let server = start_server().await;
        let r = HickoryResolver::new(&[server.addr], Duration::from_millis(300), 2, true).unwrap();
        let started = Instant::now();
        assert_eq!(
            r.lookup_txt("silent.example.test").await,
            Err(DnsError::Timeout)
        );
        assert_eq!(
            r.lookup_ip("silent.example.test").await,
            Err(DnsError::Timeout)
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn truncated_answers_are_asked_again_over_tcp() {
        let (r, s) = resolver().await;
        let found = r.lookup_txt("big.example.test").await.unwrap();
        assert_eq!(found.len(), 20);
        assert!(s.tcp_queries.load(Ordering::SeqCst) > 0);
    }

    #[tokio::test]
    async fn oversized_answers_are_refused() {
        let (r, _s) = resolver().await;
        match r.lookup_ip("many.example.test").await {
            Err(DnsError::Other(why)) => assert!(why.contains("more than 100 A records"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn answers_are_never_cached() {
        let (r, _s) = resolver().await;
        let first = r.lookup_txt("fresh.example.test").await.unwrap();
        let second = r.lookup_txt("fresh.example.test").await.unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn describe_lists_the_servers_and_empty_lists_are_refused() {
        let servers: Vec<SocketAddr> = vec![
            "10.0.0.53:53".parse().unwrap(),
            "[2001:db8::53]:5353".parse().unwrap(),
        ];
        let r = HickoryResolver::new(&servers, Duration::from_secs(1), 1, true).unwrap();
        assert_eq!(r.describe(), "10.0.0.53:53, [2001:db8::53]:5353");
        let e = HickoryResolver::new(&[], Duration::from_secs(1), 1, false)
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::ServerInternal);
    }

    #[test]
    fn raw_caa_rdata_parses() {
        assert_eq!(
            parse_caa_rdata(b"\x80\x03TBSxyz"),
            Some(CaaRecord {
                critical: true,
                tag: "tbs".to_owned(),
                value: b"xyz".to_vec(),
            })
        );
        assert_eq!(parse_caa_rdata(b"\x00\x05abc"), None);
        assert_eq!(parse_caa_rdata(b""), None);
    }

    #[test]
    fn a_and_aaaa_outcomes_combine() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let sf = || Err(DnsError::ServerFailure("SERVFAIL".to_owned()));
        assert_eq!(combine(Ok(vec![ip]), sf()), Ok(vec![ip]));
        assert_eq!(combine(sf(), Ok(vec![ip])), Ok(vec![ip]));
        assert_eq!(combine(Err(DnsError::NoRecords), sf()), sf());
        assert_eq!(
            combine(Err(DnsError::NxDomain), Err(DnsError::NoRecords)),
            Err(DnsError::NxDomain)
        );
        assert_eq!(
            combine(Err(DnsError::NoRecords), Err(DnsError::NoRecords)),
            Err(DnsError::NoRecords)
        );
        assert_eq!(
            combine(Err(DnsError::Timeout), Err(DnsError::NxDomain)),
            Err(DnsError::Timeout)
        );
    }
}
