//! PING_CHECK, FILE_CHECK, DNS_CHECK and SMTP_CHECK through the driver,
//! against loopback and files created by each test. Bounds are generous;
//! tests assert outcomes, not timings.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use healthcheck::{
    CheckKind, CheckSpec, DnsSpec, DnsType, FileSpec, HealthChecker, SmtpSpec, SubjectSpec,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::unbounded_channel;

mod common;

use common::{next_event, wait_checks};

/// This file's checkers run every 100 ms.
fn fast(kind: CheckKind, target: SocketAddr) -> CheckSpec {
    common::fast(kind, target, Duration::from_millis(100))
}

/// This file's subject.
fn subject(checks: Vec<CheckSpec>) -> SubjectSpec {
    common::subject(9, checks)
}

/// Whether this process may open an ICMP socket of the family of `ip`.
fn icmp_allowed(ip: &str) -> bool {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    let (family, proto) = if ip.contains(':') {
        (AddressFamily::Inet6, SockProtocol::IcmpV6)
    } else {
        (AddressFamily::Inet, SockProtocol::Icmp)
    };
    [SockType::Datagram, SockType::Raw]
        .into_iter()
        .any(|ty| socket(family, ty, SockFlag::empty(), proto).is_ok())
}

async fn ping_stays_up(ip: &str) {
    if !icmp_allowed(ip) {
        println!("SKIP: no ICMP socket for {ip} (not root and ping_group_range excludes us)");
        return;
    }
    let target = SocketAddr::new(ip.parse().expect("ip"), 0);
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![fast(CheckKind::Ping, target)])], tx);
    let status = wait_checks(&checker, 2).await;
    assert!(status.up, "{status:?}");
    assert_eq!(status.checks[0].kind, "PING_CHECK");
    assert_eq!(status.checks[0].target, ip);
    assert_eq!(status.checks[0].last_ok, Some(true), "{status:?}");
    assert!(rx.try_recv().is_err(), "no flip while the echo is answered");
    checker.shutdown().await;
}

#[tokio::test]
async fn ping_check_ipv4_loopback() {
    ping_stays_up("127.0.0.1").await;
}

#[tokio::test]
async fn ping_check_ipv6_loopback() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        println!("SKIP: no IPv6 loopback");
        return;
    }
    ping_stays_up("::1").await;
}

fn write(path: &Path, text: &str) {
    // Write then rename, so the checker never reads a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn file_check(path: &Path, weight: i64, reverse: bool) -> CheckSpec {
    fast(
        CheckKind::File(FileSpec {
            path: path.to_owned(),
            weight,
            reverse,
        }),
        "127.0.0.1:0".parse().expect("addr"),
    )
}

#[tokio::test]
async fn file_check_weight_and_fault() {
    let dir = std::env::temp_dir().join(format!("hc-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("weight");
    write(&path, "3\n");

    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![file_check(&path, -10, false)])], tx);
    let event = next_event(&mut rx).await;
    assert_eq!(
        (event.up, event.weight_delta),
        (true, Some(-30)),
        "{event:?}"
    );

    // -300 × 10_000_000 clamps to i32::MIN: a fault. (The replacement
    // starts up with no delta and sends no event for that.)
    write(&path, "-300");
    checker.add_subject(subject(vec![file_check(&path, 10_000_000, false)]));
    let event = next_event(&mut rx).await;
    assert!(!event.up, "{event:?}");
    assert!(
        event.reason.contains("is a fault"),
        "reason names the fault: {}",
        event.reason
    );

    // A missing file reads as 0: up again with no delta.
    std::fs::remove_file(&path).expect("remove");
    let event = next_event(&mut rx).await;
    assert!(event.up, "{event:?}");
    let status = checker.status().pop().expect("subject");
    assert_eq!(status.weight_delta, 0);
    assert_eq!(status.checks[0].kind, "FILE_CHECK");
    assert_eq!(status.checks[0].target, path.display().to_string());
    checker.shutdown().await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn file_check_weight_zero_goes_down_without_retries() {
    let dir = std::env::temp_dir().join(format!("hc-file0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("flag");
    write(&path, "0");
    let mut check = file_check(&path, 0, false);
    check.retry = 5; // FILE_CHECK ignores retry, as keepalived does.
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![check])], tx);
    wait_checks(&checker, 2).await;
    write(&path, "1");
    let event = next_event(&mut rx).await;
    assert!(!event.up);
    let status = checker.status().pop().expect("subject");
    assert_eq!(status.checks[0].consecutive_failures, 1, "no retries");
    assert_eq!(
        status.checks[0].last_error.as_deref(),
        Some(
            format!(
                "track file {}: value 1 with weight 0 is a fault",
                path.display()
            )
            .as_str()
        )
    );
    checker.shutdown().await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A DNS server answering with `rcode` while `rcode` is set; bounded.
async fn dns_server(rcodes: Vec<u8>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        for rcode in rcodes {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80;
            reply[3] = 0x80 | rcode;
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    addr
}

#[tokio::test]
async fn dns_check_flips_on_servfail_and_recovers() {
    // Two good answers, then SERVFAIL, then good ones again.
    let mut codes = vec![0, 0, 2];
    codes.extend([0; 200]);
    let addr = dns_server(codes).await;
    let spec = DnsSpec {
        qtype: DnsType::parse("mx").expect("type"),
        name: "example.org".into(),
    };
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![fast(CheckKind::Dns(spec), addr)])], tx);
    let down = next_event(&mut rx).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("DNS_CHECK {addr}: DNS: response code Server Failure (2)")
    );
    let up = next_event(&mut rx).await;
    assert!(up.up, "{up:?}");
    checker.shutdown().await;
}

#[tokio::test]
async fn smtp_check_goes_down_when_the_server_rejects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        // Bounded: the first three connections are served well, then 421.
        for i in 0..200 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let banner: &[u8] = if i < 3 {
                b"220 ok\r\n"
            } else {
                b"421 busy\r\n"
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                let _ = write.write_all(banner).await;
                for reply in [&b"250 hi\r\n"[..], b"221 bye\r\n"] {
                    let mut line = String::new();
                    if !matches!(read.read_line(&mut line).await, Ok(n) if n > 0) {
                        return;
                    }
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    let (tx, mut rx) = unbounded_channel();
    let check = fast(CheckKind::Smtp(SmtpSpec::default()), addr);
    let checker = HealthChecker::start(vec![subject(vec![check])], tx);
    let down = next_event(&mut rx).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("SMTP_CHECK {addr}: SMTP: greeting 421 (expected 220)")
    );
    let status = checker.status().pop().expect("subject");
    assert!(status.checks[0].checks_run >= 4, "three good checks first");
    checker.shutdown().await;
}
