//! A two-host lab for driver tests: namespaces `<prefix>-a` and `<prefix>-b`
//! joined by a veth pair (`eth0` in each, 10.99.0.1/2, fd99::1/2, MAC
//! 02:99:00:00:00:0N), drivers run in a namespace on their own thread, real
//! keepalived peers and tcpdump captures. Everything started is stopped and
//! the namespaces are deleted on drop. Needs root.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use vrrp::driver::{Config, Driver};
use vrrp::instance::{InstanceStatus, State};
use vrrp::kernel::KernelVipOwner;

/// `Some(reason)` when the lab cannot run here (the test prints SKIP).
/// Under CI as root a missing package is a failure, not a skip.
pub fn unavailable(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for tool in ["ip"].iter().chain(tools) {
        if !testlab::have(tool) {
            let msg = format!("`{tool}` not found: install the Debian package `{tool}`");
            if std::env::var_os("CI").is_some() {
                panic!("{msg} (tests/install-deps.sh)");
            }
            return Some(msg);
        }
    }
    None
}

pub use testlab::{sh, wait_for};

/// What the VRRP captures record: adverts, GARPs and NAs.
pub const VRRP_FILTER: &str = "ip proto 112 or ip6 proto 112 or arp or icmp6";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The two namespaces and a work directory.
pub struct Lab {
    pub a: String,
    pub b: String,
    pub dir: PathBuf,
}

impl Lab {
    pub fn up() -> Lab {
        let prefix = format!(
            "vr{}n{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("work dir");
        let lab = Lab {
            a: format!("{prefix}-a"),
            b: format!("{prefix}-b"),
            dir,
        };
        for ns in [&lab.a, &lab.b] {
            sh(&["ip", "netns", "add", ns]);
            for (k, v) in [
                ("net.ipv6.conf.all.accept_dad", "0"),
                ("net.ipv6.conf.default.accept_dad", "0"),
                ("net.ipv6.conf.all.accept_ra", "0"),
                ("net.ipv6.conf.default.accept_ra", "0"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
                ("net.ipv4.ip_nonlocal_bind", "1"),
            ] {
                sh(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("{k}={v}"),
                ]);
            }
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "-n", &lab.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", &lab.b,
        ]);
        for (i, ns) in [(1, &lab.a), (2, &lab.b)] {
            let mac = format!("02:99:00:00:00:0{i}");
            sh(&["ip", "-n", ns, "link", "set", "eth0", "address", &mac]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.99.0.{i}/24"),
                "dev",
                "eth0",
            ]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("fd99::{i}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        for ns in [&lab.a, &lab.b] {
            let up = wait_for(Duration::from_secs(5), || {
                let out = sh(&["ip", "-n", ns, "-o", "addr", "show", "dev", "eth0"]);
                (out.contains("inet6 fe80::") && !out.contains("tentative")).then_some(())
            });
            assert!(up.is_some(), "{ns}: eth0 has no link-local address");
        }
        lab
    }

    /// Whether `ns` has `vip` on eth0.
    pub fn has(&self, ns: &str, vip: IpAddr) -> bool {
        let out = sh(&["ip", "-n", ns, "-o", "addr", "show", "dev", "eth0"]);
        out.contains(&format!(" {vip}/"))
    }

    /// Asserts that `vip` is on `holder` only (waiting up to 2 s for the
    /// kernel to settle).
    pub fn assert_held_by(&self, holder: &str, vip: IpAddr) {
        let other = if holder == self.a { &self.b } else { &self.a };
        let ok = wait_for(Duration::from_secs(2), || {
            (self.has(holder, vip) && !self.has(other, vip)).then_some(())
        });
        assert!(
            ok.is_some(),
            "{vip} should be on {holder} only: {holder}={} {other}={}",
            self.has(holder, vip),
            self.has(other, vip)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            // Anything still running in the namespace was started by this lab.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(p) = pid.parse() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if std::env::var_os("VRRP_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A driver with the kernel VIP owner running in a namespace on its own
/// thread (setns, then a current-thread runtime, so every socket is there).
pub struct DriverNode {
    status: watch::Receiver<Vec<InstanceStatus>>,
    stop: Option<oneshot::Sender<bool>>,
    reload: tokio::sync::mpsc::UnboundedSender<Config>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DriverNode {
    pub fn start(ns: &str, config: Config) -> DriverNode {
        let path = format!("/run/netns/{ns}");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = oneshot::channel::<bool>();
        let (reload_tx, mut reload_rx) = tokio::sync::mpsc::unbounded_channel::<Config>();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let owner = KernelVipOwner::new().expect("kernel VIP owner");
                let driver = Driver::spawn(config, owner);
                let _ = ready_tx.send(driver.subscribe());
                // true: graceful stop; false or dropped: crash (no priority 0,
                // VIPs stay), by dropping the runtime with the driver in it.
                let graceful = loop {
                    tokio::select! {
                        r = &mut stop_rx => break r.unwrap_or(false),
                        Some(c) = reload_rx.recv() => {
                            driver.reconfigure(c).await.expect("driver running");
                        }
                    }
                };
                if graceful {
                    driver.stop().await.expect("driver ran and stopped cleanly");
                }
            });
        });
        let status = ready_rx.recv().expect("driver thread started");
        DriverNode {
            status,
            stop: Some(stop_tx),
            reload: reload_tx,
            thread: Some(thread),
        }
    }

    pub fn state(&self) -> Option<State> {
        self.status.borrow().first().map(|s| s.state)
    }

    pub fn status(&self) -> Option<InstanceStatus> {
        self.status.borrow().first().cloned()
    }

    /// The status of the instance named `name`.
    pub fn status_of(&self, name: &str) -> Option<InstanceStatus> {
        self.status
            .borrow()
            .iter()
            .find(|s| s.name == name)
            .cloned()
    }

    /// Waits until instance `name` is in `state`.
    pub fn wait_state_of(&self, name: &str, state: State, timeout: Duration) -> bool {
        wait_for(timeout, || {
            (self.status_of(name).map(|s| s.state) == Some(state)).then_some(())
        })
        .is_some()
    }

    /// Hands the running driver a new config ([`Driver::reconfigure`]).
    pub fn reconfigure(&self, config: Config) {
        self.reload.send(config).expect("driver thread running");
    }

    /// Waits until the (first) instance is in `state`; returns how long it took.
    pub fn wait_state(&self, state: State, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        wait_for(timeout, || {
            (self.state() == Some(state)).then(|| t0.elapsed())
        })
    }

    fn finish(&mut self, graceful: bool) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(graceful);
        }
        if let Some(t) = self.thread.take() {
            if let Err(e) = t.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(e);
                }
            }
        }
    }

    /// Graceful stop: priority-0 advert, VIPs released.
    pub fn stop(mut self) {
        self.finish(true);
    }

    /// A crash: the driver vanishes without a priority-0 advert.
    pub fn kill(mut self) {
        self.finish(false);
    }
}

impl Drop for DriverNode {
    fn drop(&mut self) {
        self.finish(true);
    }
}

/// A keepalived 2.2.7 peer (`--vrrp --dont-fork`) in a namespace.
pub struct Keepalived {
    child: Option<Child>,
    dir: PathBuf,
}

/// Settings of a keepalived peer, rendered as keepalived-peer.sh does.
pub struct KaConf<'a> {
    pub vrid: u8,
    pub prio: u8,
    pub version: u8,
    pub advert: &'a str,
    pub vip: &'a str,
    /// `authentication { auth_type PASS auth_pass .. }`.
    pub auth: Option<&'a str>,
    /// `unicast_src_ip` and one `unicast_peer`.
    pub unicast: Option<(&'a str, &'a str)>,
    pub nopreempt: bool,
}

impl<'a> KaConf<'a> {
    /// Multicast, no auth, preempt.
    pub fn new(vrid: u8, prio: u8, version: u8, advert: &'a str, vip: &'a str) -> KaConf<'a> {
        KaConf {
            vrid,
            prio,
            version,
            advert,
            vip,
            auth: None,
            unicast: None,
            nopreempt: false,
        }
    }

    pub fn render(&self, router_id: &str) -> String {
        let mut extra = String::new();
        if self.nopreempt {
            extra.push_str("    nopreempt\n");
        }
        if let Some(pw) = self.auth {
            extra.push_str(&format!(
                "    authentication {{\n        auth_type PASS\n        auth_pass {pw}\n    }}\n"
            ));
        }
        if let Some((src, peer)) = self.unicast {
            extra.push_str(&format!(
                "    unicast_src_ip {src}\n    unicast_peer {{\n        {peer}\n    }}\n"
            ));
        }
        format!(
            "global_defs {{\n    router_id {router_id}\n    vrrp_garp_master_repeat 1\n    vrrp_garp_master_delay 0\n}}\n\
             vrrp_instance VI_{vrid} {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {vrid}\n\
             \x20   priority {prio}\n    version {version}\n    advert_int {advert}\n{extra}\
             \x20   virtual_ipaddress {{\n        {vip}\n    }}\n}}\n",
            vrid = self.vrid,
            prio = self.prio,
            version = self.version,
            advert = self.advert,
            vip = self.vip,
        )
    }
}

impl Keepalived {
    pub fn start(ns: &str, dir: &Path, conf: &KaConf<'_>) -> Keepalived {
        Keepalived {
            child: Some(testlab::spawn_keepalived(ns, dir, &conf.render(ns))),
            dir: dir.to_owned(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("keepalived.log")).unwrap_or_default()
    }

    /// The last state keepalived logged.
    pub fn state(&self) -> Option<State> {
        let log = self.log();
        let pos = |w: &str| log.rfind(&format!("Entering {w} STATE"));
        [
            (State::Master, pos("MASTER")),
            (State::Backup, pos("BACKUP")),
            (State::Fault, pos("FAULT")),
        ]
        .into_iter()
        .filter_map(|(s, p)| p.map(|p| (p, s)))
        .max_by_key(|(p, _)| *p)
        .map(|(_, s)| s)
    }

    pub fn wait_state(&self, state: State, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        wait_for(timeout, || {
            (self.state() == Some(state)).then(|| t0.elapsed())
        })
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let mut pids = vec![child.id()];
        if sig == nix::sys::signal::Signal::SIGKILL {
            // The VRRP child first, so the parent cannot restart it.
            if let Some(p) = std::fs::read_to_string(self.dir.join("keepalived-vrrp.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                pids.insert(0, p);
            }
        }
        for pid in pids {
            if let Ok(p) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), sig);
            }
        }
        let done = wait_for(Duration::from_secs(10), || {
            child.try_wait().ok().flatten().map(|_| ())
        });
        if done.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = None;
    }

    /// Graceful stop (SIGTERM: priority-0 advert, VIPs removed).
    pub fn stop(mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// A crash (SIGKILL to child and parent).
    pub fn kill(mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }
}
