//! DNS_CHECK against Debian's dnsmasq, SMTP_CHECK against Python's aiosmtpd
//! and PING_CHECK to a host in a network namespace, each started by the test
//! and stopped when it ends (also on panic).
//!
//! dnsmasq runs with no configuration, no upstream servers and no hosts file
//! on a loopback address and a port of its own, so it touches nothing on the
//! machine. The packages come from `tests/install-deps.sh`; a test whose
//! server is missing prints `SKIP:` (and fails under CI). The ping test needs
//! root for the namespace and prints `SKIP:` otherwise.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use healthcheck::{CheckKind, CheckSpec, DnsSpec, DnsType, HealthChecker, SmtpSpec, SubjectSpec};
use tokio::sync::mpsc::unbounded_channel;

mod common;

use common::{have, next_event, wait_checks, NsHost, Server, BOUND, PYTHON};

/// This file's checkers run every 200 ms.
fn fast(kind: CheckKind, target: SocketAddr) -> CheckSpec {
    CheckSpec {
        connect_timeout: Duration::from_millis(500),
        ..common::fast(kind, target, Duration::from_millis(200))
    }
}

fn subject(checks: Vec<CheckSpec>) -> SubjectSpec {
    common::subject(7, checks)
}

/// A port of 127.0.0.1 that was free for UDP a moment ago.
fn free_port() -> u16 {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    udp.local_addr().expect("addr").port()
}

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// Starts dnsmasq on 127.0.0.1:<free port>: `ok.test` has an A record,
/// `nx.test` is NXDOMAIN, anything else is REFUSED (no upstream servers).
/// Returns once it answers.
fn dnsmasq() -> Option<(Server, SocketAddr)> {
    if !have(DNSMASQ, "dnsmasq-base") {
        return None;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new(DNSMASQ)
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--pid-file=",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--address=/ok.test/192.0.2.10",
            "--address=/nx.test/",
            "--user=root",
        ])
        .arg(format!("--port={}", addr.port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    let server = Server(child);
    // Wait until it answers a query (any answer).
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let query = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'o', b'k', 4, b't', b'e', b's', b't', 0, 0,
        1, 0, 1,
    ];
    let deadline = Instant::now() + BOUND;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        let _ = socket.send_to(&query, addr);
        if socket.recv_from(&mut buf).is_ok() {
            return Some((server, addr));
        }
    }
    panic!("dnsmasq did not answer within {BOUND:?}");
}

fn dns(qtype: &str, name: &str) -> CheckKind {
    CheckKind::Dns(DnsSpec {
        qtype: DnsType::parse(qtype).expect("type"),
        name: name.into(),
    })
}

#[tokio::test]
async fn dns_check_passes_against_dnsmasq_and_fails_when_it_stops() {
    let Some((server, addr)) = dnsmasq() else {
        return;
    };
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![fast(dns("A", "ok.test"), addr)])], tx);
    let status = wait_checks(&checker, 2).await;
    assert!(status.up, "{status:?}");
    assert_eq!(status.checks[0].last_ok, Some(true), "{status:?}");
    assert!(rx.try_recv().is_err(), "no flip while dnsmasq answers");

    // No answer at all: the port is closed (ICMP unreachable) or silent.
    drop(server);
    let down = next_event(&mut rx).await;
    assert!(!down.up, "{down:?}");
    assert!(
        down.reason.starts_with(&format!("DNS_CHECK {addr}: ")),
        "{down:?}"
    );
    checker.shutdown().await;
}

/// Starts a check of `name` against dnsmasq and returns the reason of its
/// first (down) event.
async fn dns_failure(qtype: &str, name: &str) -> Option<String> {
    let (_server, addr) = dnsmasq()?;
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![fast(dns(qtype, name), addr)])], tx);
    let down = next_event(&mut rx).await;
    assert!(!down.up, "{down:?}");
    checker.shutdown().await;
    Some(
        down.reason
            .strip_prefix(&format!("DNS_CHECK {addr}: "))
            .expect("reason names the checker")
            .to_owned(),
    )
}

#[tokio::test]
async fn dns_check_nxdomain_is_down() {
    if let Some(reason) = dns_failure("A", "nx.test").await {
        assert_eq!(reason, "DNS: response code Non-Existent Domain (3)");
    }
}

#[tokio::test]
async fn dns_check_refused_is_down() {
    if let Some(reason) = dns_failure("SOA", "elsewhere.test").await {
        assert_eq!(reason, "DNS: response code Query Refused (5)");
    }
}

/// Starts aiosmtpd on 127.0.0.1:<free port>; returns once it accepts.
fn aiosmtpd() -> Option<(Server, SocketAddr)> {
    if !have(PYTHON, "python3") {
        return None;
    }
    let has_module = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_module {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install python3-aiosmtpd (tests/install-deps.sh)"
        );
        println!("SKIP: aiosmtpd missing (Debian package python3-aiosmtpd)");
        return None;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new(PYTHON)
        .args(["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l"])
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let server = Server(child);
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Some((server, addr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("aiosmtpd did not accept within {BOUND:?}");
}

#[tokio::test]
async fn smtp_check_passes_against_aiosmtpd_and_fails_when_it_stops() {
    let Some((server, addr)) = aiosmtpd() else {
        return;
    };
    let (tx, mut rx) = unbounded_channel();
    let check = fast(
        CheckKind::Smtp(SmtpSpec {
            helo_name: "checker.example".into(),
        }),
        addr,
    );
    let checker = HealthChecker::start(vec![subject(vec![check])], tx);
    let status = wait_checks(&checker, 2).await;
    assert!(status.up, "{status:?}");
    assert_eq!(status.checks[0].last_ok, Some(true), "{status:?}");
    assert!(rx.try_recv().is_err(), "no flip while aiosmtpd answers");

    drop(server);
    let down = next_event(&mut rx).await;
    assert!(!down.up, "{down:?}");
    assert_eq!(
        down.reason,
        format!("SMTP_CHECK {addr}: connection refused")
    );
    checker.shutdown().await;
}

#[tokio::test]
async fn ping_check_to_a_namespace_host_flips_with_its_link() {
    let Some(host) = NsHost::new(8, "PING_CHECK to a namespace") else {
        return;
    };
    let target = SocketAddr::new(host.ip.parse().expect("ip"), 0);
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![fast(CheckKind::Ping, target)])], tx);
    let status = wait_checks(&checker, 2).await;
    assert!(status.up, "{status:?}");
    assert_eq!(status.checks[0].last_ok, Some(true), "{status:?}");

    // The host stops answering: down.
    host.ip_in(&["link", "set", "eth0", "down"]);
    let down = next_event(&mut rx).await;
    assert!(!down.up, "{down:?}");
    assert!(
        down.reason
            .starts_with(&format!("PING_CHECK {}: ", host.ip)),
        "{down:?}"
    );
    // And back.
    host.ip_in(&["link", "set", "eth0", "up"]);
    let up = next_event(&mut rx).await;
    assert!(up.up, "{up:?}");
    checker.shutdown().await;
}
