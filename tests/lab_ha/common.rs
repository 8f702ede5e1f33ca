//! Lab for the VRRP and OSPF end-to-end tests (included with `#[path]`;
//! `keepalived.rs` and `bird.rs` beside it add the peers): two namespaces `<P>-a` and
//! `<P>-b` joined by a veth pair (`eth0` in each, 10.99.0.1/24 and
//! 10.99.0.2/24), dpvsd, keepalived, BIRD and nginx started inside them.
//! Everything started is stopped and the namespaces deleted on drop (prefix
//! `ha<pid><tag>`, so parallel tests never collide). Needs root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `Some(reason)` when the lab cannot run here (the test prints SKIP).
/// Under `CI`, a missing tool fails the test instead.
pub fn unavailable(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for tool in ["ip"].iter().chain(tools) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
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

/// Runs a command; panics with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns its stdout, whatever its status.
pub fn output(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), sig);
    }
}

/// Stops a child: `sig`, then SIGKILL after 5 s.
pub fn finish(child: &mut Child, sig: nix::sys::signal::Signal) {
    signal(child.id(), sig);
    if wait_for(Duration::from_secs(5), || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The two namespaces and a work directory.
pub struct Lab {
    pub a: String,
    pub b: String,
    pub dir: PathBuf,
}

impl Lab {
    pub fn up(tag: &str) -> Lab {
        let prefix = format!("ha{}{tag}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("dpvsd-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("work dir");
        let lab = Lab {
            a: format!("{prefix}-a"),
            b: format!("{prefix}-b"),
            dir,
        };
        for ns in [&lab.a, &lab.b] {
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
        sh(&[
            "ip", "-n", &lab.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", &lab.b,
        ]);
        for (i, ns) in [(1, &lab.a), (2, &lab.b)] {
            let mac = format!("02:99:00:00:00:0{i}");
            sh(&["ip", "-n", ns, "link", "set", "eth0", "address", &mac]);
            let addr = format!("10.99.0.{i}/24");
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"]);
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
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
        for ns in [&self.a, &self.b] {
            // Anything still running in the namespace was started by this lab.
            for pid in output(&["ip", "netns", "pids", ns]).split_whitespace() {
                if let Ok(p) = pid.parse() {
                    signal(p, nix::sys::signal::Signal::SIGKILL);
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if std::thread::panicking() {
            for log in ["dpvsd.log", "keepalived.log", "bird.log"] {
                if let Ok(text) = std::fs::read_to_string(self.dir.join(log)) {
                    eprintln!("---- {log} ----\n{text}");
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
        let socket = lab.dir.join("dpvsd.sock");
        let log = std::fs::File::create(lab.dir.join("dpvsd.log")).expect("log file");
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
