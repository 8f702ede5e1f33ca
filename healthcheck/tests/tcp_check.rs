//! TCP_CHECK end to end against loopback listeners created by each test.
//!
//! Timing is generous on purpose (shared, noisy machines): tests assert
//! outcomes and their order, with a 5 s bound on anything that should take a
//! fraction of a second.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use healthcheck::{CheckSpec, HealthChecker, HealthEvent, SubjectId, SubjectSpec, SubjectStatus};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const BOUND: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

fn fast_check(target: SocketAddr) -> CheckSpec {
    CheckSpec {
        connect_timeout: Duration::from_secs(1),
        retry: 1,
        delay_before_retry: Duration::from_millis(100),
        delay_loop: Duration::from_millis(200),
        warmup: Duration::ZERO,
        ..CheckSpec::tcp(target)
    }
}

fn subject(id: u64, checks: Vec<CheckSpec>) -> SubjectSpec {
    SubjectSpec {
        id: SubjectId(id),
        name: format!("rs{id}"),
        checks,
    }
}

async fn listen(addr: &str) -> TcpListener {
    TcpListener::bind(addr)
        .await
        .expect("bind loopback listener")
}

/// Listens again on `addr` (a port we just released), retrying briefly.
async fn relisten(addr: SocketAddr) -> TcpListener {
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not listen on {addr} again");
}

/// A port on which nothing listens (connects are refused).
async fn closed_port() -> SocketAddr {
    let listener = listen("127.0.0.1:0").await;
    listener.local_addr().expect("local addr")
}

async fn next_event(rx: &mut UnboundedReceiver<HealthEvent>) -> HealthEvent {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("an event within the bound")
        .expect("channel open")
}

fn status_of(checker: &HealthChecker, id: u64) -> SubjectStatus {
    checker
        .status()
        .into_iter()
        .find(|s| s.id == SubjectId(id))
        .expect("subject in status")
}

/// Polls `status()` until `pred` holds for subject `id`, within the bound.
async fn wait_status(
    checker: &HealthChecker,
    id: u64,
    pred: impl Fn(&SubjectStatus) -> bool,
) -> SubjectStatus {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let status = status_of(checker, id);
        if pred(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status condition not reached: {status:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn up_then_down_on_refused_then_up_again() {
    let listener = listen("127.0.0.1:0").await;
    let addr = listener.local_addr().expect("local addr");
    let spec = subject(1, vec![fast_check(addr)]);
    assert!(spec.initially_up());
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![spec], tx);

    // Up from the start, and it stays up across several successful checks
    // without any event.
    let status = wait_status(&checker, 1, |s| s.checks[0].checks_run >= 3).await;
    assert!(status.up);
    assert_eq!(status.checks[0].last_ok, Some(true));
    assert_eq!(status.checks[0].last_error, None);
    assert_eq!(status.checks[0].last_transition_unix_ms, None);
    assert!(rx.try_recv().is_err(), "no event without a flip");

    drop(listener);
    let down = next_event(&mut rx).await;
    assert_eq!(down.subject, SubjectId(1));
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("TCP_CHECK {addr}: connection refused (failed after 1 retries)")
    );
    let status = status_of(&checker, 1);
    assert!(!status.up);
    let check = &status.checks[0];
    assert!(!check.up);
    assert_eq!(check.kind, "TCP_CHECK");
    assert_eq!(check.target, addr.to_string());
    assert_eq!(check.last_ok, Some(false));
    assert_eq!(check.last_error.as_deref(), Some("connection refused"));
    // retry 1: the initial failure plus one retry before going down.
    assert!(check.consecutive_failures >= 2, "{check:?}");
    assert!(check.last_transition_unix_ms.is_some());

    let _listener = relisten(addr).await;
    let up = next_event(&mut rx).await;
    assert!(up.up);
    assert_eq!(
        up.reason,
        format!("TCP_CHECK {addr}: success; all checkers up")
    );
    let status = status_of(&checker, 1);
    assert!(status.up);
    assert_eq!(status.checks[0].consecutive_failures, 0);
    // The failure text stays visible after recovery.
    assert_eq!(
        status.checks[0].last_error.as_deref(),
        Some("connection refused")
    );

    // The status serialises with the documented field names.
    let json = serde_json::to_value(checker.status()).expect("serialise");
    assert_eq!(json[0]["id"], 1);
    assert_eq!(json[0]["checks"][0]["kind"], "TCP_CHECK");
    assert_eq!(json[0]["checks"][0]["consecutive_failures"], 0);

    checker.shutdown().await;
    // Every task is gone, so the last sender is dropped.
    assert!(tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("channel closes")
        .is_none());
}

#[tokio::test]
async fn startup_single_failure_takes_it_down() {
    // retry 3, but nothing has run yet: keepalived presets the retry counter,
    // so the first failure is enough. A long delay_loop keeps it at one probe.
    let addr = closed_port().await;
    let check = CheckSpec {
        retry: 3,
        delay_before_retry: Duration::from_millis(100),
        delay_loop: Duration::from_secs(60),
        ..fast_check(addr)
    };
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(1, vec![check])], tx);
    let down = next_event(&mut rx).await;
    assert!(!down.up);
    assert_eq!(down.reason, format!("TCP_CHECK {addr}: connection refused"));
    let status = status_of(&checker, 1);
    assert_eq!(status.checks[0].checks_run, 1);
    assert_eq!(status.checks[0].consecutive_failures, 1);
    checker.shutdown().await;
}

#[tokio::test]
async fn alpha_starts_down_and_comes_up_after_first_success() {
    let addr = closed_port().await;
    let check = CheckSpec {
        alpha: true,
        ..fast_check(addr)
    };
    let spec = subject(1, vec![check]);
    assert!(!spec.initially_up());
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![spec], tx);
    assert!(!status_of(&checker, 1).up);

    // Failing while down: no event, the failures are counted.
    let status = wait_status(&checker, 1, |s| s.checks[0].checks_run >= 2).await;
    assert!(!status.up);
    assert!(status.checks[0].consecutive_failures >= 2);
    assert_eq!(
        status.checks[0].last_error.as_deref(),
        Some("connection refused")
    );
    assert!(rx.try_recv().is_err(), "still down: no event");

    let _listener = relisten(addr).await;
    let up = next_event(&mut rx).await;
    assert!(up.up);
    assert!(up.reason.ends_with("all checkers up"), "{}", up.reason);
    assert!(status_of(&checker, 1).up);
    checker.shutdown().await;
}

#[tokio::test]
async fn subject_is_up_only_when_all_checkers_are() {
    let a = listen("127.0.0.1:0").await;
    let b = listen("127.0.0.1:0").await;
    let addr_a = a.local_addr().expect("addr");
    let addr_b = b.local_addr().expect("addr");
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(
        vec![subject(1, vec![fast_check(addr_a), fast_check(addr_b)])],
        tx,
    );
    wait_status(&checker, 1, |s| s.checks.iter().all(|c| c.checks_run >= 1)).await;

    drop(b);
    let down = next_event(&mut rx).await;
    assert!(!down.up);
    assert!(
        down.reason.starts_with(&format!("TCP_CHECK {addr_b}:")),
        "{}",
        down.reason
    );
    let status = status_of(&checker, 1);
    assert!(status.checks[0].up, "checker A is still up");
    assert!(!status.checks[1].up);

    // A going down too does not flip the subject again.
    drop(a);
    wait_status(&checker, 1, |s| !s.checks[0].up).await;
    assert!(rx.try_recv().is_err(), "no second down event");

    // One checker back is not enough; both are.
    let _b = relisten(addr_b).await;
    wait_status(&checker, 1, |s| s.checks[1].up).await;
    assert!(!status_of(&checker, 1).up);
    assert!(rx.try_recv().is_err(), "subject still down");
    let _a = relisten(addr_a).await;
    let up = next_event(&mut rx).await;
    assert!(up.up);
    assert!(status_of(&checker, 1).checks.iter().all(|c| c.up));
    checker.shutdown().await;
}

#[tokio::test]
async fn add_and_remove_subjects_without_touching_others() {
    let listener = listen("127.0.0.1:0").await;
    let addr = listener.local_addr().expect("addr");
    let refused = closed_port().await;
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(1, vec![fast_check(addr)])], tx);
    let before = wait_status(&checker, 1, |s| s.checks[0].checks_run >= 2).await;

    // A failing subject is added (it goes down at once: nothing has run yet),
    // then removed; no event for it arrives afterwards.
    checker.add_subject(subject(2, vec![fast_check(refused)]));
    let ids: Vec<u64> = checker.status().iter().map(|s| s.id.0).collect();
    assert_eq!(ids, vec![1, 2]);
    let down = next_event(&mut rx).await;
    assert_eq!((down.subject, down.up), (SubjectId(2), false));
    checker.remove_subject(SubjectId(2));
    checker.remove_subject(SubjectId(99)); // unknown: ignored
    let ids: Vec<u64> = checker.status().iter().map(|s| s.id.0).collect();
    assert_eq!(ids, vec![1]);

    // Subject 1 was never restarted: its counter kept growing and it never
    // flipped.
    let after = wait_status(&checker, 1, |s| {
        s.checks[0].checks_run > before.checks[0].checks_run + 2
    })
    .await;
    assert!(after.up);
    assert_eq!(after.checks[0].last_transition_unix_ms, None);
    assert!(rx.try_recv().is_err(), "no events after removal");

    // A subject without checkers is always up and never sends events.
    checker.add_subject(subject(3, Vec::new()));
    assert!(status_of(&checker, 3).up);

    // Replacing subject 1 restarts only it, from its initial state.
    checker.add_subject(subject(1, vec![fast_check(refused)]));
    let down = next_event(&mut rx).await;
    assert_eq!((down.subject, down.up), (SubjectId(1), false));
    assert!(status_of(&checker, 3).up);
    checker.shutdown().await;
}

#[tokio::test]
async fn ipv6_loopback() {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let addr = listener.local_addr().expect("addr");
    let check = CheckSpec {
        alpha: true,
        bind: Some("::1".parse().expect("ip")),
        ..fast_check(addr)
    };
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(1, vec![check])], tx);
    let up = next_event(&mut rx).await;
    assert!(up.up);
    assert_eq!(status_of(&checker, 1).checks[0].target, addr.to_string());
    checker.shutdown().await;
}

/// Linux drops SYNs to a listener whose accept queue is full, so connects to
/// it hang: a reliable connect timeout on loopback. Returns the listener and
/// the connections that fill its queue (keep both alive), or `None` if the
/// queue could not be filled (then the test is skipped).
fn stuffed_listener() -> Option<(TcpListener, Vec<TcpStream>)> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind("127.0.0.1:0".parse().ok()?).ok()?;
    let listener = socket.listen(0).ok()?;
    let addr = listener.local_addr().ok()?;
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => fillers.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Some((listener, fillers)),
            Err(_) => return None,
        }
    }
    None
}

#[tokio::test]
async fn connect_timeout_on_a_full_accept_queue() {
    let Some((listener, _fillers)) = stuffed_listener() else {
        eprintln!("skipped: could not fill the accept queue");
        return;
    };
    let addr = listener.local_addr().expect("addr");
    let check = CheckSpec {
        connect_timeout: Duration::from_millis(300),
        retry: 0,
        delay_loop: Duration::from_secs(60),
        ..fast_check(addr)
    };
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(1, vec![check])], tx);
    let down = next_event(&mut rx).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("TCP_CHECK {addr}: connect timeout after 300ms")
    );
    assert_eq!(
        status_of(&checker, 1).checks[0].last_error.as_deref(),
        Some("connect timeout after 300ms")
    );
    checker.shutdown().await;
}

/// Equal checkers of different subjects (the same real server in two
/// virtual servers) are probed once and feed both; keepalived would probe
/// twice. Counts the connections that reach a real listener.
#[tokio::test]
async fn equal_checkers_are_probed_once_for_every_subject() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let check = fast_check(addr);
    let (tx, mut rx) = unbounded_channel();
    // Subjects 1 and 2 share one checker; subject 3's differs (its delay).
    let other = CheckSpec {
        delay_loop: Duration::from_millis(250),
        ..check.clone()
    };
    let checker = HealthChecker::start(
        vec![
            subject(1, vec![check.clone()]),
            subject(2, vec![check.clone()]),
            subject(3, vec![other]),
        ],
        tx,
    );
    assert_eq!(checker.running_probes(), 2);
    let mut accepted = 0u64;
    let deadline = tokio::time::Instant::now() + BOUND;
    let status = loop {
        while listener.accept().is_ok() {
            accepted += 1;
        }
        let status = checker.status();
        if status.iter().all(|s| s.checks[0].checks_run >= 4) {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "checks did not run");
        tokio::time::sleep(POLL).await;
    };
    // Let any handshake already counted by a subject reach the listener.
    tokio::time::sleep(Duration::from_millis(50)).await;
    while listener.accept().is_ok() {
        accepted += 1;
    }
    let runs: Vec<u64> = status.iter().map(|s| s.checks[0].checks_run).collect();
    assert_eq!(runs[0], runs[1], "the shared probe feeds both: {runs:?}");
    // One probe for subjects 1 and 2, one for subject 3 (a probe may have
    // completed after the snapshot).
    let probes = runs[0] + runs[2];
    assert!(
        accepted >= probes && accepted <= probes + 2,
        "{accepted} connections for {runs:?} checks"
    );
    assert!(status.iter().all(|s| s.up));
    assert!(rx.try_recv().is_err());

    // Removing one subject of the pair keeps the probe for the other; the
    // last one stops it.
    checker.remove_subject(SubjectId(1));
    assert_eq!(checker.running_probes(), 2);
    checker.remove_subject(SubjectId(2));
    assert_eq!(checker.running_probes(), 1);
    checker.shutdown().await;
}
