//! Helpers shared by the checker integration tests.

use std::net::SocketAddr;
use std::time::Duration;

use healthcheck::{
    CheckKind, CheckSpec, HealthChecker, HealthEvent, SubjectId, SubjectSpec, SubjectStatus,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a test waits for anything.
pub const BOUND: Duration = Duration::from_secs(10);

/// A checker that runs every `delay_loop`, with no retries and no warmup.
pub fn fast(kind: CheckKind, target: SocketAddr, delay_loop: Duration) -> CheckSpec {
    CheckSpec {
        kind,
        connect_timeout: Duration::from_secs(2),
        retry: 0,
        delay_before_retry: Duration::from_millis(100),
        delay_loop,
        warmup: Duration::ZERO,
        ..CheckSpec::tcp(target)
    }
}

/// A subject `id` named `rs{id}`.
pub fn subject(id: u64, checks: Vec<CheckSpec>) -> SubjectSpec {
    SubjectSpec {
        id: SubjectId(id),
        name: format!("rs{id}"),
        checks,
    }
}

/// The next health event, within [`BOUND`].
pub async fn next_event(rx: &mut UnboundedReceiver<HealthEvent>) -> HealthEvent {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("an event within the bound")
        .expect("channel open")
}

/// Waits (within [`BOUND`]) until every checker of the only subject has run
/// at least `n` times, and returns its status.
#[allow(dead_code)] // Not every test binary uses it.
pub async fn wait_checks(checker: &HealthChecker, n: u64) -> SubjectStatus {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let status = checker.status().pop().expect("one subject");
        if status.checks.iter().all(|c| c.checks_run >= n) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "checks did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
