//! End to end: a keepalived.conf drives real traffic through a VIP.
//!
//! Lab (tests/lab.sh): client, load balancer (dpvsd, afpacket on eth0), two
//! real servers running nginx that answer with their own name. Needs root and
//! `ip`, `nginx`, `curl`; prints a SKIP line otherwise (but fails under CI,
//! where they must be installed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VIP_URL: &str = "http://10.99.0.100/";

fn repo() -> PathBuf {
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

/// Returns false (after printing SKIP) when the test cannot run here.
fn can_run(name: &str) -> bool {
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
            "CI must install {missing:?}"
        );
        println!("SKIP: {name}: missing {missing:?}");
        return false;
    }
    true
}

fn lab(args: &[&str]) {
    let st = Command::new("bash")
        .arg(repo().join("tests/lab.sh"))
        .args(args)
        .status()
        .expect("run lab.sh");
    assert!(st.success(), "lab.sh {args:?} failed");
}

/// Tears the lab down even when the test panics.
struct Lab {
    prefix: String,
    dir: PathBuf,
    daemon: Option<Child>,
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
            let _ = Command::new("bash")
                .arg(repo().join("tests/lab.sh"))
                .args(["webstop", &self.dir.join(rs).display().to_string()])
                .status();
        }
        let _ = Command::new("bash")
            .arg(repo().join("tests/lab.sh"))
            .args(["down", &self.prefix])
            .status();
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.dir.join("dpvsd.log")) {
                eprintln!("---- dpvsd.log ----\n{log}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("dpvsd.sock")
    }

    fn web(&self, host: &str) {
        lab(&[
            "web",
            &self.prefix,
            host,
            host,
            &self.dir.join(host).display().to_string(),
        ]);
    }

    fn webstop(&self, host: &str) {
        lab(&["webstop", &self.dir.join(host).display().to_string()]);
    }

    fn curl(&self) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("client"),
                "curl",
                "-s",
                "-m",
                "3",
                VIP_URL,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Sends `n` requests; returns (answers from rs1, from rs2, failures).
    fn traffic(&self, n: usize) -> (usize, usize, usize) {
        let (mut a, mut b, mut failed) = (0, 0, 0);
        for _ in 0..n {
            match self.curl().as_deref() {
                Some("rs1") => a += 1,
                Some("rs2") => b += 1,
                _ => failed += 1,
            }
        }
        (a, b, failed)
    }

    fn dpvsctl(&self, args: &[&str]) -> (bool, String) {
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

    fn list_json(&self) -> serde_json::Value {
        let (ok, out) = self.dpvsctl(&["list", "--json"]);
        assert!(ok, "dpvsctl list --json failed");
        serde_json::from_str(&out).expect("dpvsctl list --json prints JSON")
    }

    fn health(&self, rs: &str) -> String {
        let v = self.list_json();
        v["services"][0]["real_servers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["addr"] == rs))
            .and_then(|r| r["health"].as_str())
            .unwrap_or("?")
            .to_string()
    }

    fn wait_health(&self, rs: &str, want: &str, limit: Duration) -> Duration {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.health(rs) == want {
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{rs} not {want} after {limit:?}");
    }
}

#[test]
fn fnat_vip_traffic_and_health_checks() {
    if !can_run("fnat_vip_traffic_and_health_checks") {
        return;
    }
    let prefix = format!("dp{}", std::process::id() % 100_000);
    let dir = std::env::temp_dir().join(format!("dpvsd-e2e-{prefix}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut lab = Lab {
        prefix: prefix.clone(),
        dir: dir.clone(),
        daemon: None,
    };
    crate::lab(&["up", &prefix]);
    lab.web("rs1");
    lab.web("rs2");

    let log = std::fs::File::create(dir.join("dpvsd.log")).expect("log file");
    let conf = repo().join("samples/keepalived.conf");
    let daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("lb"),
            env!("CARGO_BIN_EXE_dpvsd"),
            "-n",
            "-f",
        ])
        .arg(&conf)
        .args(["--interface", "eth0", "--socket"])
        .arg(lab.socket())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start dpvsd");
    lab.daemon = Some(daemon);
    let t0 = Instant::now();
    while !lab.dpvsctl(&["status"]).0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "dpvsd did not answer on its socket"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mode = std::fs::metadata(lab.socket())
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(
        mode.map(|m| m & 0o777).ok(),
        Some(0o600),
        "control socket must be 0600"
    );

    // Weighted traffic: rs1 weight 2, rs2 weight 1.
    let (a, b, failed) = lab.traffic(60);
    assert_eq!(
        failed, 0,
        "requests through the VIP failed (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "both servers must answer (rs1={a} rs2={b})");
    let ratio = a as f64 / b as f64;
    assert!(
        (1.5..=2.5).contains(&ratio),
        "wrr 2:1 expected, got rs1={a} rs2={b}"
    );
    let (ok, text) = lab.dpvsctl(&["list"]);
    assert!(
        ok && text.contains("10.99.0.100:80") && text.contains("10.99.0.3:8080"),
        "dpvsctl list:\n{text}"
    );
    let v = lab.list_json();
    let conns: u64 = v["services"][0]["stats"]["conns"].as_u64().unwrap_or(0);
    assert!(conns >= 60, "service connection counter {conns} < 60");

    // Kill rs1: the TCP_CHECK takes it out within
    // delay_loop + connect_timeout × (retry + 1) + 2 s = 1 + 1×2 + 2 = 5 s.
    lab.webstop("rs1");
    let took = lab.wait_health("10.99.0.3:8080", "down", Duration::from_secs(10));
    println!("rs1 detected down after {took:?}");
    assert!(
        took <= Duration::from_secs(5),
        "down detection took {took:?} > 5 s"
    );
    let (a, b, failed) = lab.traffic(20);
    assert_eq!(
        (a, failed),
        (0, 0),
        "after rs1 went down all requests must go to rs2 (rs2={b})"
    );
    assert_eq!(b, 20);

    // Bring it back: it is used again.
    lab.web("rs1");
    let took = lab.wait_health("10.99.0.3:8080", "up", Duration::from_secs(10));
    println!("rs1 detected up after {took:?}");
    let (a, b, failed) = lab.traffic(30);
    assert_eq!(failed, 0);
    assert!(
        a > 0 && b > 0,
        "after recovery both must answer (rs1={a} rs2={b})"
    );

    let (ok, status) = lab.dpvsctl(&["status"]);
    assert!(
        ok && status.contains("afpacket"),
        "dpvsctl status:\n{status}"
    );
    println!("{}", lab.dpvsctl(&["list"]).1);
}
