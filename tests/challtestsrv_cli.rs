//! `acme-ca challtestsrv` as a process: pebble-challtestsrv's Go-style flags,
//! its management API and its HTTP-01 and DNS servers, then a clean SIGTERM
//! shutdown.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port on 127.0.0.1 free for both UDP and TCP (the DNS server uses both).
fn free_udp_tcp_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// Kills the server if the test fails half way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dns_a_query(port: u16, name: &str) -> Message {
    let mut msg = Message::query();
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&msg.to_vec().unwrap(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("DNS answer");
    Message::from_vec(&buf[..n]).unwrap()
}

#[tokio::test]
async fn acme_ca_challtestsrv_serves_http01_and_dns_set_through_management() {
    let http01 = free_tcp_port();
    let management = free_tcp_port();
    let dns01 = free_udp_tcp_port();
    let child = Command::new(env!("CARGO_BIN_EXE_acme-ca"))
        .args([
            "challtestsrv",
            "-http01",
            &format!("127.0.0.1:{http01}"),
            // certbot-ci passes the two characters `""`: those servers are
            // left out with a warning and the rest serve.
            "-https01",
            "\"\"",
            "-tlsalpn01=\"\"",
            "-dns01",
            &format!("127.0.0.1:{dns01}"),
            &format!("-management=127.0.0.1:{management}"),
            "-defaultIPv4",
            "10.1.2.3",
            "-defaultIPv6",
            "\"\"",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn acme-ca challtestsrv");
    let mut server = Server(child);

    // Standard output, line by line, until the server is up.
    let stdout = server.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let ready = line.contains("answering A queries with 10.1.2.3");
                output.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let mut stderr = String::new();
                if let Some(mut e) = server.0.stderr.take() {
                    let _ = server.0.kill();
                    let _ = e.read_to_string(&mut stderr);
                }
                panic!("challtestsrv did not start; stdout: {output:?}; stderr: {stderr}");
            }
        }
    }
    assert!(
        output
            .iter()
            .any(|l| l.contains(&format!("HTTP-01 server on 127.0.0.1:{http01}"))),
        "{output:?}"
    );
    assert!(
        !output.iter().any(|l| l.contains("TLS-ALPN-01 server")),
        "an unusable -tlsalpn01 disables it: {output:?}"
    );
    let warnings = output.iter().filter(|l| l.contains("warning: -")).count();
    assert_eq!(warnings, 3, "one warning per unusable value: {output:?}");

    // Management API → HTTP-01 server.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://127.0.0.1:{management}/add-http01"))
        .body(r#"{"token":"tok-123","content":"tok-123.thumbprint"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!(
            "http://127.0.0.1:{http01}/.well-known/acme-challenge/tok-123"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "tok-123.thumbprint");

    // -defaultIPv4 reached the DNS server.
    let answer = tokio::task::spawn_blocking(move || dns_a_query(dns01, "example.test."))
        .await
        .unwrap();
    let addrs: Vec<_> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(addrs, [Ipv4Addr::new(10, 1, 2, 3)]);

    // SIGTERM: a clean shutdown with exit status 0.
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "challtestsrv ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");
    reader.join().unwrap();
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("challtestsrv - shutting down")),
        "{rest:?}"
    );
}

#[test]
fn acme_ca_challtestsrv_help_and_bad_flags() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_acme-ca"))
            .args(args)
            .output()
            .expect("run acme-ca")
    };
    let help = run(&["challtestsrv", "-help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: acme-ca challtestsrv"), "{text}");
    for flag in [
        "--dns01",
        "--http01",
        "--https01",
        "--tlsalpn01",
        "--management",
        "--defaultIPv4",
        "--defaultIPv6",
    ] {
        assert!(text.contains(flag), "{flag} missing from {text}");
    }
    let version = run(&["challtestsrv", "-version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("challtestsrv "));
    let bad = run(&["challtestsrv", "-bogus"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unexpected argument"));
}
