//! `bind_if` (`SO_BINDTODEVICE`): a target in a namespace is reachable only
//! through its veth pair; checkers bound to that veth reach it, checkers
//! bound to a veth into another namespace do not (finding no route through
//! it, the kernel assumes the target is on that link and its ARP request
//! goes unanswered). Runs TCP_CHECK (the pooled prober), HTTP_GET (tokio
//! sockets) and PING_CHECK (surge-ping) against Python's `http.server`
//! started in the namespace. Needs root (prints `SKIP:`).
//!
//! An interface that does not exist needs no root: the checker is down with
//! the reason.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use healthcheck::{
    CheckKind, CheckSpec, HealthChecker, HttpSpec, SubjectId, SubjectStatus, UrlSpec,
};
use tokio::sync::mpsc::unbounded_channel;

mod common;

use common::{have, NsHost, Server, BOUND, PYTHON};

/// A checker of `kind` to `target` through `bind_if`, every 200 ms; `alpha`
/// so that a checker that never succeeds is down.
fn check(kind: CheckKind, target: SocketAddr, bind_if: &str) -> CheckSpec {
    CheckSpec {
        bind_if: Some(bind_if.into()),
        connect_timeout: Duration::from_millis(500),
        alpha: true,
        ..common::fast(kind, target, Duration::from_millis(200))
    }
}

fn http() -> CheckKind {
    CheckKind::Http(HttpSpec {
        urls: vec![UrlSpec::new("/")],
        ..HttpSpec::default()
    })
}

/// Waits (within [`BOUND`]) until every checker of every subject has run at
/// least `n` times.
async fn wait_runs(checker: &HealthChecker, n: u64) -> Vec<SubjectStatus> {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let all = checker.status();
        if all
            .iter()
            .all(|s| s.checks.iter().all(|c| c.checks_run >= n))
        {
            return all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "checks did not run: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bind_if_picks_the_interface_the_target_is_reachable_through() {
    let Some(host) = NsHost::new(1, "bind_if between two interfaces") else {
        return;
    };
    if !have(PYTHON, "python3") {
        return;
    }
    // The wrong interface: a veth to another namespace, which does not have
    // the target's address.
    let Some(other) = NsHost::new(2, "bind_if between two interfaces") else {
        return;
    };
    let target = SocketAddr::new(host.ip.parse().expect("ip"), 8000);
    let dir = std::env::temp_dir();
    let _server = Server(
        Command::new("ip")
            .args(["netns", "exec", &host.ns, PYTHON, "-m", "http.server"])
            .args(["--bind", &host.ip, "8000", "--directory"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn http.server"),
    );
    // Reachable (without bind_if) once it listens.
    let start = Instant::now();
    while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
        assert!(start.elapsed() < BOUND, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let subjects = vec![
        common::subject(1, vec![check(CheckKind::Tcp, target, &host.outer)]),
        common::subject(2, vec![check(CheckKind::Tcp, target, &other.outer)]),
        common::subject(3, vec![check(http(), target, &host.outer)]),
        common::subject(4, vec![check(http(), target, &other.outer)]),
        common::subject(5, vec![check(CheckKind::Ping, target, &host.outer)]),
        common::subject(6, vec![check(CheckKind::Ping, target, &other.outer)]),
    ];
    let (tx, _rx) = unbounded_channel();
    let checker = HealthChecker::start(subjects, tx);
    let status = wait_runs(&checker, 3).await;
    let by_id = |id: u64| {
        status
            .iter()
            .find(|s| s.id == SubjectId(id))
            .expect("subject")
    };
    for id in [1, 3, 5] {
        let s = by_id(id);
        assert!(s.up, "bound to the veth: {s:?}");
        assert_eq!(s.checks[0].last_ok, Some(true), "{s:?}");
    }
    let (tcp, http) = (by_id(2), by_id(4));
    assert!(
        !tcp.up && !http.up,
        "bound to the other veth: {tcp:?} {http:?}"
    );
    assert_eq!(
        tcp.checks[0].last_error.as_deref(),
        Some("connect timeout after 500ms"),
        "{tcp:?}"
    );
    assert_eq!(
        http.checks[0].last_error.as_deref(),
        Some("GET /: no complete response within 500ms"),
        "{http:?}"
    );
    let ping = by_id(6);
    assert!(!ping.up, "{ping:?}");
    assert_eq!(
        ping.checks[0].last_error.as_deref(),
        Some("no reply within 500ms"),
        "{ping:?}"
    );
    checker.shutdown().await;
}

#[tokio::test]
async fn an_unknown_interface_is_a_down_state_with_the_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let subjects = vec![
        common::subject(1, vec![check(CheckKind::Tcp, addr, "nosuchif0")]),
        common::subject(2, vec![check(http(), addr, "nosuchif0")]),
        common::subject(
            3,
            vec![check(CheckKind::Tcp, addr, "a-name-longer-than-15")],
        ),
        common::subject(4, vec![check(CheckKind::Ping, addr, "nosuchif0")]),
    ];
    let (tx, _rx) = unbounded_channel();
    let checker = HealthChecker::start(subjects, tx);
    let status = wait_runs(&checker, 2).await;
    let root = nix::unistd::geteuid().is_root();
    assert_eq!(status.len(), 4);
    for s in &status {
        assert!(!s.up, "{s:?}");
        let error = s.checks[0].last_error.as_deref().unwrap_or_default();
        let want = match s.id {
            SubjectId(1 | 2 | 4) if root => {
                "cannot bind to interface nosuchif0: No such device (os error 19)"
            }
            // Without CAP_NET_RAW the kernel refuses any interface (and
            // may refuse the ICMP socket: then the reason is that).
            SubjectId(4) => "",
            SubjectId(1 | 2) => "cannot bind to interface nosuchif0: ",
            _ => {
                "cannot bind to interface a-name-longer-t...: interface names are at most 15 bytes"
            }
        };
        assert!(
            error.starts_with(want),
            "{error:?} should start with {want:?}"
        );
    }
    checker.shutdown().await;
}

/// The link-local address of `eth0` in `host`'s namespace once duplicate
/// address detection has passed, within [`BOUND`].
fn link_local(host: &NsHost) -> std::net::Ipv6Addr {
    let start = Instant::now();
    loop {
        let out = Command::new("ip")
            .args([
                "-n", &host.ns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
            ])
            .output()
            .expect("run ip");
        let text = String::from_utf8_lossy(&out.stdout);
        let addr = text
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) if !text.contains("tentative") => return addr,
            _ => {}
        }
        assert!(start.elapsed() < BOUND, "no link-local address: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `bind_if` is for: a link-local `connect_ip` has no scope in
/// keepalived.conf; the interface comes from `bind_if`, and without it the
/// connect is refused by the kernel.
#[tokio::test]
async fn bind_if_reaches_an_ipv6_link_local_target() {
    let Some(host) = NsHost::new(3, "bind_if to an IPv6 link-local address") else {
        return;
    };
    if !have(PYTHON, "python3") {
        return;
    }
    let target = SocketAddr::new(link_local(&host).into(), 8000);
    let _server = Server(
        Command::new("ip")
            .args(["netns", "exec", &host.ns, PYTHON, "-m", "http.server"])
            .args(["--bind", "::", "8000", "--directory"])
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn http.server"),
    );
    let unbound = CheckSpec {
        bind_if: None,
        ..check(CheckKind::Tcp, target, "")
    };
    let subjects = vec![
        common::subject(1, vec![check(CheckKind::Tcp, target, &host.outer)]),
        common::subject(2, vec![check(http(), target, &host.outer)]),
        common::subject(3, vec![unbound]),
    ];
    let (tx, _rx) = unbounded_channel();
    let checker = HealthChecker::start(subjects, tx);
    // Up once http.server listens; the unbound checker has run by then.
    let deadline = tokio::time::Instant::now() + BOUND;
    let status = loop {
        let status = checker.status();
        let settled = status.iter().filter(|s| s.up).count() == 2
            && status.iter().all(|s| s.checks[0].checks_run > 0);
        if settled || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for s in &status {
        if s.id == SubjectId(3) {
            assert!(!s.up, "{s:?}");
            assert_eq!(
                s.checks[0].last_error.as_deref(),
                Some("connect: Invalid argument (os error 22)"),
                "{s:?}"
            );
        } else {
            assert!(s.up, "{s:?}");
        }
    }
    checker.shutdown().await;
}
