//! The lab the end-to-end tests share: namespaces from tests/lab.sh (client
//! 10.99.0.2, load balancer 10.99.0.1 running dpvsd on eth0, real servers
//! rs1 10.99.0.3 and rs2 10.99.0.4 with nginx on :8080 answering their
//! name), a dpvsd process, and `dpvsctl` calls. Everything is torn down when
//! the [`Lab`] drops, even on panic.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code)]

pub mod sniff;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const VIP: &str = "10.99.0.100";
pub const RS1: &str = "10.99.0.3:8080";
pub const RS2: &str = "10.99.0.4:8080";
/// IPv6 lab ([`Lab::up_v6`]): hosts are fd99::N as 10.99.0.N.
pub const VIP6: &str = "fd99::100";
pub const RS1_V6: &str = "[fd99::3]:8080";
pub const RS2_V6: &str = "[fd99::4]:8080";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Returns false (after printing SKIP) when the test cannot run here; under
/// CI missing tools are a failure, not a skip.
pub fn can_run(name: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: {name}: needs root (network namespaces)");
        return false;
    }
    let missing: Vec<_> = ["ip", "nginx", "curl", "ethtool"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {missing:?} (tests/install-deps.sh)"
        );
        println!("SKIP: {name}: missing {missing:?}");
        return false;
    }
    true
}

fn lab_sh(args: &[&str]) -> bool {
    Command::new("bash")
        .arg(repo().join("tests/lab.sh"))
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A running lab.
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    daemon: Option<Child>,
    /// Built with IPv6 ([`Lab::up_v6`]).
    v6: bool,
}

impl Lab {
    /// Builds the namespaces and starts both nginx real servers.
    pub fn up(tag: &str) -> Lab {
        Lab::build(tag, false)
    }

    /// [`Lab::up`] with IPv6 on every host (fd99::N/64 besides 10.99.0.N)
    /// and nginx listening on IPv6 too.
    pub fn up_v6(tag: &str) -> Lab {
        Lab::build(tag, true)
    }

    fn build(tag: &str, v6: bool) -> Lab {
        let prefix = format!("{tag}{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("dpvsd-e2e-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lab = Lab {
            prefix,
            dir,
            daemon: None,
            v6,
        };
        let family = if v6 { "v6" } else { "" };
        assert!(lab_sh(&["up", &lab.prefix, family]), "lab.sh up failed");
        lab.web("rs1");
        lab.web("rs2");
        lab
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("dpvsd.sock")
    }

    pub fn web(&self, host: &str) {
        let dir = self.dir.join(host).display().to_string();
        let family = if self.v6 { "v6" } else { "" };
        assert!(
            lab_sh(&["web", &self.prefix, host, host, &dir, family]),
            "nginx in {host} did not start"
        );
    }

    pub fn webstop(&self, host: &str) {
        assert!(lab_sh(&[
            "webstop",
            &self.dir.join(host).display().to_string()
        ]));
    }

    /// Starts dpvsd in the load balancer namespace with `conf` and waits
    /// until its control socket answers.
    pub fn start_dpvsd(&mut self, conf: &Path) {
        self.start_dpvsd_with(conf, &[]);
    }

    /// [`Lab::start_dpvsd`] with extra command-line arguments.
    pub fn start_dpvsd_with(&mut self, conf: &Path, extra: &[&str]) {
        let log = std::fs::File::create(self.dir.join("dpvsd.log")).expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("lb"),
                env!("CARGO_BIN_EXE_dpvsd"),
                "-n",
                "-f",
            ])
            .arg(conf)
            .args(["--interface", "eth0", "--socket"])
            .arg(self.socket())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dpvsd");
        self.daemon = Some(child);
        let t0 = Instant::now();
        while !self.dpvsctl(&["status"]).0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "dpvsd did not answer on its socket"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's pid (the `ip netns exec` process execs dpvsd).
    pub fn dpvsd_pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(|c| c.id() as i32)
    }

    /// Runs dpvsctl against the lab's daemon: (success, stdout).
    pub fn dpvsctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_dpvsctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run dpvsctl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub fn list_json(&self) -> serde_json::Value {
        let (ok, out) = self.dpvsctl(&["list", "--json"]);
        assert!(ok, "dpvsctl list --json failed");
        serde_json::from_str(&out).expect("dpvsctl list --json prints JSON")
    }

    /// The `list` entry of real server `rs` of the first service that has
    /// it.
    pub fn server(&self, rs: &str) -> serde_json::Value {
        let v = self.list_json();
        let services = v["services"].as_array().cloned().unwrap_or_default();
        services
            .iter()
            .filter_map(|s| s["real_servers"].as_array())
            .find_map(|a| a.iter().find(|r| r["addr"] == rs))
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn health(&self, rs: &str) -> String {
        self.server(rs)["health"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }

    /// Waits until `rs` has health `want`; returns how long it took.
    pub fn wait_health(&self, rs: &str, want: &str, limit: Duration) -> Duration {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.health(rs) == want {
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{rs} not {want} after {limit:?}");
    }

    /// Waits until `rs` is up and each of its checkers' last probe
    /// succeeded. Unlike [`Lab::wait_health`] this does not pass on the
    /// initial "up" of a server whose first probe is still running (e.g.
    /// started before the lab gave the kernel its address).
    pub fn wait_checks_ok(&self, rs: &str, limit: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            let s = self.server(rs);
            let checks = s["checks"].as_array().cloned().unwrap_or_default();
            if s["health"] == "up"
                && !checks.is_empty()
                && checks.iter().all(|c| c["last_ok"] == true)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{rs}: no successful check after {limit:?}: {}",
            self.server(rs)
        );
    }

    /// Runs `args` inside the namespace of `host`; panics with the output
    /// when it fails.
    pub fn exec(&self, host: &str, args: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{host}: {args:?}: {e}"));
        assert!(
            out.status.success(),
            "{host}: {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What `host` has in its neighbour table for `ip` (IPv4 or IPv6).
    pub fn neigh(&self, host: &str, ip: &str) -> String {
        let family = if ip.contains(':') { "-6" } else { "-4" };
        let out = Command::new("ip")
            .args(["-n", &self.ns(host), family, "neigh", "show", ip])
            .output()
            .expect("ip neigh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `args` inside both real servers' namespaces.
    pub fn exec_servers(&self, args: &[&str]) {
        for rs in ["rs1", "rs2"] {
            self.exec(rs, args);
        }
    }

    /// Starts dpvsd on keepalived.conf text `conf` and waits until both
    /// real servers (`servers`, as `dpvsctl` names them) are up.
    pub fn start_conf(&mut self, conf: &str, servers: [&str; 2]) {
        let path = self.dir.join("keepalived.conf");
        std::fs::write(&path, conf).expect("write config");
        self.start_dpvsd(&path);
        for rs in servers {
            self.wait_health(rs, "up", Duration::from_secs(10));
        }
    }

    /// Sends `n` requests to `url` and checks that none failed and both
    /// real servers answered (`what`: the mode, for messages); returns the
    /// service's (conns, in_pkts, out_pkts), conns checked to be ≥ `n`.
    pub fn balanced(&self, what: &str, url: &str, n: usize) -> (u64, u64, u64) {
        let (a, b, failed) = self.traffic_to(url, n);
        assert_eq!(failed, 0, "{what} requests failed (rs1={a} rs2={b})");
        assert!(a > 0 && b > 0, "rr must use both (rs1={a} rs2={b})");
        let (conns, inp, outp) = service_stats(self);
        assert!(conns >= n as u64, "connections {conns} < {n}");
        (conns, inp, outp)
    }

    /// One HTTP request through the VIP from the client namespace (curl).
    pub fn curl(&self) -> Option<String> {
        self.get(&format!("http://{VIP}/"))
    }

    /// One HTTP GET of `url` from the client namespace (curl, 3 s limit).
    pub fn get(&self, url: &str) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("client"),
                "curl",
                "-g",
                "-s",
                "-m",
                "3",
                url,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Sends `n` requests through the VIP; returns (answers from rs1, from
    /// rs2, failures).
    pub fn traffic(&self, n: usize) -> (usize, usize, usize) {
        self.traffic_to(&format!("http://{VIP}/"), n)
    }

    /// Sends `n` requests to `url`; returns (answers from rs1, from rs2,
    /// failures).
    pub fn traffic_to(&self, url: &str, n: usize) -> (usize, usize, usize) {
        let (mut a, mut b, mut failed) = (0, 0, 0);
        for _ in 0..n {
            match self.get(url).as_deref() {
                Some("rs1") => a += 1,
                Some("rs2") => b += 1,
                _ => failed += 1,
            }
        }
        (a, b, failed)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(d.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for rs in ["rs1", "rs2"] {
            let _ = lab_sh(&["webstop", &self.dir.join(rs).display().to_string()]);
        }
        let _ = lab_sh(&["down", &self.prefix]);
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.dir.join("dpvsd.log")) {
                eprintln!("---- dpvsd.log ----\n{log}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process killed (and reaped) when dropped, even when a test panics.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An nginx in `host` running `servers` (its `server { … }` blocks), its
/// files under `lab.dir/name`; waits until something listens on `port`.
pub fn nginx(lab: &Lab, host: &str, name: &str, servers: &str, port: u16) -> Killed {
    Killed(testlab::spawn_nginx(
        &lab.ns(host),
        &lab.dir.join(name),
        servers,
        port,
    ))
}

/// A keepalived.conf with one TCP virtual server VIP:`vport` of kind
/// `kind` (and `extra` virtual-server lines) and both lab real servers on
/// :8080 with TCP_CHECK.
pub fn mode_config(kind: &str, vport: u16, extra: &str) -> String {
    mode_config_for(VIP, ["10.99.0.3", "10.99.0.4"], kind, vport, extra)
}

/// [`mode_config`] for virtual server `vip` and real servers `servers`.
pub fn mode_config_for(
    vip: &str,
    servers: [&str; 2],
    kind: &str,
    vport: u16,
    extra: &str,
) -> String {
    let rs = |ip: &str| {
        format!(
            "    real_server {ip} 8080 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n"
        )
    };
    format!(
        "virtual_server {vip} {vport} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind {kind}\n    protocol TCP\n{extra}{}{}}}\n",
        rs(servers[0]),
        rs(servers[1])
    )
}

/// The real servers hold the VIP on lo and neither answer ARP for it nor
/// use it as an ARP source (as LVS DR/TUN real servers are set up).
pub fn vip_on_lo(lab: &Lab) {
    for rs in ["rs1", "rs2"] {
        lab.exec(
            rs,
            &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
        );
        for conf in ["all", "eth0"] {
            lab.exec(
                rs,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv4.conf.{conf}.arp_ignore=1"),
                ],
            );
            lab.exec(
                rs,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv4.conf.{conf}.arp_announce=2"),
                ],
            );
        }
    }
}

/// Service counters from `dpvsctl list --json`: (conns, in_pkts, out_pkts).
pub fn service_stats(lab: &Lab) -> (u64, u64, u64) {
    let v = lab.list_json();
    let s = &v["services"][0]["stats"];
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    (n("conns"), n("in_pkts"), n("out_pkts"))
}
