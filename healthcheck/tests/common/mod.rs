//! Helpers shared by the checker integration tests.

use std::net::SocketAddr;
use std::process::{Child, Command};
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
#[allow(dead_code)] // Not every test binary uses it.
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

/// Whether `program` can be found; prints `SKIP:` when it cannot, and fails
/// under CI, which installs it.
#[allow(dead_code)] // Not every test binary uses it.
pub fn have(program: &str, package: &str) -> bool {
    if std::path::Path::new(program).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install {package} (tests/install-deps.sh)"
    );
    println!("SKIP: {program} missing (Debian package {package}, tests/install-deps.sh)");
    false
}

/// A namespace with one end of a veth pair (`eth0`, 10.(90+tag).N.2/30);
/// the other end (`outer`, 10.(90+tag).N.1/30) stays in this namespace.
/// Tests of one binary that run at once use different `tag`s. Deleted
/// (with the veth pair) when dropped.
#[allow(dead_code)] // Not every test binary uses it.
pub struct NsHost {
    pub ns: String,
    /// The namespace's address.
    pub ip: String,
    /// The veth end in this namespace.
    pub outer: String,
}

#[allow(dead_code)] // Not every test binary uses it.
impl NsHost {
    /// `None` (after printing `SKIP:` for `what`) when not root or without
    /// iproute2.
    pub fn new(tag: u8, what: &str) -> Option<NsHost> {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP: {what} needs root");
            return None;
        }
        if !have("/usr/sbin/ip", "iproute2") {
            return None;
        }
        let pid = std::process::id();
        let (net, id) = (90 + u32::from(tag % 10), pid % 250);
        let host = NsHost {
            ns: format!("hc{tag}n{pid}"),
            ip: format!("10.{net}.{id}.2"),
            outer: format!("hc{tag}v{}", pid % 10_000_000),
        };
        ip(&["netns", "add", &host.ns]);
        ip(&[
            "link",
            "add",
            &host.outer,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.ns,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("10.{net}.{id}.1/30"),
            "dev",
            &host.outer,
        ]);
        ip(&["link", "set", &host.outer, "up"]);
        host.ip_in(&["addr", "add", &format!("{}/30", host.ip), "dev", "eth0"]);
        host.ip_in(&["link", "set", "lo", "up"]);
        host.ip_in(&["link", "set", "eth0", "up"]);
        Some(host)
    }

    /// Runs `ip -n NS ARGS...`.
    pub fn ip_in(&self, args: &[&str]) {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for NsHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Runs `ip ARGS...`, which must succeed.
#[allow(dead_code)] // Not every test binary uses it.
pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Debian's Python (tests/install-deps.sh pulls it in).
#[allow(dead_code)] // Not every test binary uses it.
pub const PYTHON: &str = "/usr/bin/python3";

/// A server process, killed and reaped when dropped.
#[allow(dead_code)] // Not every test binary uses it.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
