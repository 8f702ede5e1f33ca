//! HTTP_GET and MISC_CHECK through the driver, against a loopback server and
//! shell scripts created by each test. Bounds are generous; tests assert
//! outcomes, not timings.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use healthcheck::{
    CheckKind, CheckSpec, FileSpec, HealthChecker, HttpSpec, MiscSpec, SubjectSpec, UrlSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::unbounded_channel;

mod common;

use common::{next_event, wait_checks};

/// This file's checkers run every 200 ms.
fn fast(kind: CheckKind, target: SocketAddr) -> CheckSpec {
    common::fast(kind, target, Duration::from_millis(200))
}

/// This file's subject.
fn subject(checks: Vec<CheckSpec>) -> SubjectSpec {
    common::subject(7, checks)
}

/// An HTTP server answering every request with the current `status`.
async fn status_server(status: Arc<AtomicU16>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        // Bounded: the test needs a handful of connections.
        for _ in 0..1000 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let code = status.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let reply = format!("HTTP/1.0 {code} X\r\nContent-Length: 2\r\n\r\nok");
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_get_goes_down_on_a_bad_status_and_back_up() {
    let status = Arc::new(AtomicU16::new(200));
    let addr = status_server(Arc::clone(&status)).await;
    let http = HttpSpec {
        urls: vec![UrlSpec::new("/health")],
        ..HttpSpec::default()
    };
    let (tx, mut rx) = unbounded_channel();
    let checker = HealthChecker::start(vec![subject(vec![fast(CheckKind::Http(http), addr)])], tx);

    status.store(500, Ordering::SeqCst);
    let down = next_event(&mut rx).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("HTTP_GET {addr}: GET /health: unexpected HTTP status 500")
    );
    assert_eq!(down.weight_delta, None);
    let snapshot = checker.status();
    assert_eq!(snapshot[0].checks[0].kind, "HTTP_GET");
    assert_eq!(snapshot[0].checks[0].target, addr.to_string());

    status.store(204, Ordering::SeqCst);
    let up = next_event(&mut rx).await;
    assert!(up.up);
    assert!(up.reason.ends_with("all checkers up"), "{}", up.reason);
    checker.shutdown().await;
}

/// Replaces `path` atomically, so the script never reads a half-written file.
fn set_code(path: &std::path::Path, code: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, code).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn misc_dynamic_reports_weight_changes() {
    let dir = std::env::temp_dir().join(format!("healthcheck-it-misc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let code_file = dir.join("code");
    set_code(&code_file, "0");
    let misc = MiscSpec {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("exit $(cat {})", code_file.display()),
        ],
        dynamic: true,
        weight: 3,
        ..MiscSpec::default()
    };
    let target: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let (tx, mut rx) = unbounded_channel();
    let checker =
        HealthChecker::start(vec![subject(vec![fast(CheckKind::Misc(misc), target)])], tx);

    // Exit 12: weight becomes 10, i.e. delta 10 - 3 = 7; still up, no flip.
    set_code(&code_file, "12");
    let event = next_event(&mut rx).await;
    assert_eq!((event.up, event.weight_delta), (true, Some(7)));
    assert!(
        event.reason.starts_with("MISC_CHECK /bin/sh -c exit"),
        "{}",
        event.reason
    );
    let status = &checker.status()[0];
    assert_eq!(status.weight_delta, 7);
    assert_eq!(status.checks[0].weight_delta, 7);

    // Exit 1: down, and the delta goes back to 0 with it.
    set_code(&code_file, "1");
    let event = next_event(&mut rx).await;
    assert_eq!((event.up, event.weight_delta), (false, Some(0)));
    assert!(
        event.reason.ends_with(": exit status 1"),
        "{}",
        event.reason
    );

    // Exit 0: up again with delta 0 (unchanged, so no weight in the event).
    set_code(&code_file, "0");
    let event = next_event(&mut rx).await;
    assert_eq!((event.up, event.weight_delta), (true, None));
    checker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `misc_dynamic` under `--dialect dpvs` (`absolute_weight`): the script's
/// exit status sets the weight to `status - 2` whatever the other checkers'
/// deltas; keepalived 2.2.7's relative rule adds them up. A real script
/// (exit 12, configured weight 3) next to a FILE_CHECK whose delta is +10.
#[tokio::test]
async fn misc_dynamic_absolute_weight_overrides_other_deltas() {
    let dir = std::env::temp_dir().join(format!("healthcheck-it-abs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let track = dir.join("track");
    set_code(&track, "2");
    let script = dir.join("weight.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 12\n").expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let target: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let checks = |absolute_weight: bool| {
        vec![
            fast(
                CheckKind::Misc(MiscSpec {
                    argv: vec![script.display().to_string()],
                    dynamic: true,
                    absolute_weight,
                    weight: 3,
                    ..MiscSpec::default()
                }),
                target,
            ),
            fast(
                CheckKind::File(FileSpec {
                    path: track.clone(),
                    weight: 5,
                    reverse: false,
                }),
                target,
            ),
        ]
    };
    for (absolute, want) in [(false, (12 - 2 - 3) + 2 * 5), (true, 12 - 2 - 3)] {
        let (tx, _rx) = unbounded_channel();
        let checker = HealthChecker::start(vec![subject(checks(absolute))], tx);
        // Both checkers have reported at least twice, in either order.
        let status = wait_checks(&checker, 2).await;
        assert!(status.up, "{status:?}");
        assert_eq!(status.checks[0].weight_delta, 7, "{status:?}");
        assert_eq!(status.checks[1].weight_delta, 10, "{status:?}");
        assert_eq!(
            status.weight_delta, want,
            "absolute_weight {absolute}: {status:?}"
        );
        checker.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
