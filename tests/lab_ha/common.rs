//! Lab for the VRRP and OSPF end-to-end tests (included with `#[path]`;
//! `keepalived.rs` and `bird.rs` beside it add the peers): two namespaces `<P>-a` and
//! `<P>-b` joined by a veth pair (`eth0` in each, 10.99.0.1/24 and
//! 10.99.0.2/24), dpvsd, keepalived, BIRD and nginx started inside them.
//! Everything started is stopped and the namespaces deleted on drop (prefix
//! `ha<pid><tag>`, so parallel tests never collide). Needs root.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use testlab::{finish, output, sh, signal, wait_for};

/// `Some(reason)` when the lab cannot run here (the test prints SKIP).
/// Under `CI`, a missing tool fails the test instead.
pub fn unavailable(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for tool in ["ip"].iter().chain(tools) {
        if !testlab::have(tool) {
            let msg = format!("`{tool}` not found");
            assert!(
                std::env::var_os("CI").is_none(),
                "{msg}: CI must install it (tests/install-deps.sh)"
            );
            return Some(msg);
        }
    }
    None
}

/// The namespaces and a work directory: `a` (10.99.0.1) and `b`
/// (10.99.0.2), and with [`Lab::bridged`] more hosts (10.99.0.3, …) on a
/// bridge in a switch namespace.
pub struct Lab {
    pub a: String,
    pub b: String,
    /// Hosts after `a` and `b` (10.99.0.3, 10.99.0.4, …).
    pub more: Vec<String>,
    /// The switch namespace of a bridged lab.
    switch: Option<String>,
    pub dir: PathBuf,
}

fn add_namespace(ns: &str) {
    if Path::new("/run/netns").join(ns).exists() {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    sh(&["ip", "netns", "add", ns]);
    for kv in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ] {
        sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", kv]);
    }
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
}

/// Gives host number `i` (1-based) its MAC and 10.99.0.i/24 on eth0.
fn address_host(ns: &str, i: usize) {
    let mac = format!("02:99:00:00:00:{i:02x}");
    sh(&["ip", "-n", ns, "link", "set", "eth0", "address", &mac]);
    let addr = format!("10.99.0.{i}/24");
    sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"]);
    sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
}

impl Lab {
    fn named(tag: &str, hosts: usize, switch: bool) -> Lab {
        let prefix = format!("ha{}{tag}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("dpvsd-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("work dir");
        Lab {
            a: format!("{prefix}-a"),
            b: format!("{prefix}-b"),
            more: (3..=hosts).map(|i| format!("{prefix}-h{i}")).collect(),
            switch: switch.then(|| format!("{prefix}-sw")),
            dir,
        }
    }

    fn hosts(&self) -> Vec<&String> {
        [&self.a, &self.b].into_iter().chain(&self.more).collect()
    }

    /// Two hosts joined by a veth pair.
    pub fn up(tag: &str) -> Lab {
        let lab = Lab::named(tag, 2, false);
        for ns in lab.hosts() {
            add_namespace(ns);
        }
        sh(&[
            "ip", "-n", &lab.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", &lab.b,
        ]);
        for (i, ns) in lab.hosts().into_iter().enumerate() {
            address_host(ns, i + 1);
        }
        lab
    }

    /// `hosts` (at least 2) hosts on one bridge, each with eth0 at
    /// 10.99.0.i/24.
    pub fn bridged(tag: &str, hosts: usize) -> Lab {
        let lab = Lab::named(tag, hosts.max(2), true);
        let sw = lab.switch.as_deref().expect("switch namespace");
        add_namespace(sw);
        sh(&["ip", "-n", sw, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", sw, "link", "set", "br0", "up"]);
        for (i, ns) in lab.hosts().into_iter().enumerate() {
            add_namespace(ns);
            let port = format!("p{}", i + 1);
            sh(&[
                "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", sw,
            ]);
            sh(&["ip", "-n", sw, "link", "set", &port, "master", "br0"]);
            sh(&["ip", "-n", sw, "link", "set", &port, "up"]);
            address_host(ns, i + 1);
        }
        lab
    }

    /// Writes `name` in the work directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.hosts().into_iter().chain(&self.switch) {
            // Anything still running in the namespace was started by this lab.
            for pid in output(&["ip", "netns", "pids", ns]).split_whitespace() {
                if let Ok(p) = pid.parse() {
                    signal(p, nix::sys::signal::Signal::SIGKILL);
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if std::thread::panicking() {
            let logs = std::fs::read_dir(&self.dir).into_iter().flatten().flatten();
            for log in logs.filter(|e| e.path().extension().is_some_and(|x| x == "log")) {
                if let Ok(text) = std::fs::read_to_string(log.path()) {
                    eprintln!("---- {} ----\n{text}", log.file_name().to_string_lossy());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// dpvsd in a namespace, with its control socket in the lab directory.
pub struct Dpvsd {
    child: Option<Child>,
    socket: PathBuf,
}

impl Dpvsd {
    /// Starts `dpvsd -n -f CONF` in `ns` and waits until it answers.
    pub fn start(lab: &Lab, ns: &str, conf: &Path, extra: &[&str]) -> Dpvsd {
        Dpvsd::start_named(lab, "dpvsd", ns, conf, extra)
    }

    /// As [`Dpvsd::start`], with the socket and log named `NAME.sock` and
    /// `NAME.log`, so several can run in one lab.
    pub fn start_named(lab: &Lab, name: &str, ns: &str, conf: &Path, extra: &[&str]) -> Dpvsd {
        let socket = lab.dir.join(format!("{name}.sock"));
        let log = std::fs::File::create(lab.dir.join(format!("{name}.log"))).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_dpvsd"), "-n", "-f"])
            .arg(conf)
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dpvsd");
        let mut d = Dpvsd {
            child: Some(child),
            socket,
        };
        let up = wait_for(Duration::from_secs(10), || d.ctl(&["status"]).map(|_| ()));
        if up.is_none() {
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            panic!("dpvsd did not answer on its socket (exit: {exited:?})");
        }
        d
    }

    /// `dpvsctl ARGS`: its stdout when it succeeded.
    pub fn ctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_dpvsctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `dpvsctl CMD --json`, parsed.
    pub fn json(&self, cmd: &str) -> serde_json::Value {
        let text = self
            .ctl(&[cmd, "--json"])
            .unwrap_or_else(|| panic!("dpvsctl {cmd} --json failed"));
        serde_json::from_str(&text).expect("dpvsctl prints JSON")
    }

    /// SIGTERM and wait (bounded) for the exit.
    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), nix::sys::signal::Signal::SIGTERM);
        let status = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }
}

impl Drop for Dpvsd {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            finish(c, nix::sys::signal::Signal::SIGTERM);
        }
    }
}
