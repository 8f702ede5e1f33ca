//! dpvsd and dpvsctl as a user runs them, without root: config test exit
//! codes and diagnostics, refusing bad configs before touching anything, and
//! the control socket (status, list, garbage, oversize requests, a second
//! daemon on the same socket). Real servers are loopback listeners.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dpvsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpvsd"))
        .args(args)
        .output()
        .expect("run dpvsd")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dpvsd-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/keepalived.conf")
        .display()
        .to_string()
}

#[test]
fn config_test_of_the_sample_is_clean() {
    let out = dpvsd(&["-t", "-f", &sample()]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "no diagnostics expected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn syntax_error_is_located_and_refuses_to_start() {
    let dir = tmpdir("syntax");
    let conf = dir.join("bad.conf");
    std::fs::write(
        &conf,
        "global_defs {\n    router_id x\n}\nvirtual_server 10.0.0.1 80 {\n    lb_kind FNAT\n",
    )
    .expect("write");
    let conf_s = conf.display().to_string();
    let out = dpvsd(&["-t", "-f", &conf_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(5),
        "keepalived -t exit code for errors: {err}"
    );
    assert!(
        err.contains(&format!("{conf_s}:4:28: error: missing '}}'")),
        "{err}"
    );

    // The daemon refuses too, before binding its socket or opening interfaces.
    let sock = dir.join("s.sock");
    let out = dpvsd(&[
        "-n",
        "-f",
        &conf_s,
        "--interface",
        "eth-none",
        "--socket",
        &sock.display().to_string(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not starting"));
    assert!(!sock.exists(), "nothing may be created for a bad config");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unsupported_features_are_errors_not_silence() {
    let dir = tmpdir("unsupported");
    let conf = dir.join("sed.conf");
    std::fs::write(
        &conf,
        "virtual_server 10.0.0.1 80 {\n  lb_algo sed\n  lb_kind DR\n  protocol TCP\n  real_server 10.0.0.2 80 {\n  }\n}\n",
    )
    .expect("write");
    let out = dpvsd(&["-t", "-f", &conf.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("sed.conf:1:1: error: lb_algo sed is not supported by dpvsd yet"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let out = dpvsd(&["-t", "-f", "/nonexistent/keepalived.conf"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/keepalived.conf: cannot read configuration"),
        "{err}"
    );
}

struct Daemon(Child);

/// Starts `dpvsd -n ARGS -f CONF --socket SOCK`, stderr to `log` (or
/// discarded), and waits (bounded) until it answers `status`.
fn start_daemon(conf: &Path, sock: &str, args: &[&str], log: Option<&Path>) -> Daemon {
    let stderr = log.map_or_else(Stdio::null, |l| {
        Stdio::from(std::fs::File::create(l).expect("log"))
    });
    let child = Command::new(env!("CARGO_BIN_EXE_dpvsd"))
        .arg("-n")
        .args(args)
        .arg("-f")
        .arg(conf)
        .args(["--socket", sock])
        .stderr(stderr)
        .spawn()
        .expect("start dpvsd");
    let daemon = Daemon(child);
    let t0 = Instant::now();
    while !ctl(sock, &["status"]).0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "dpvsd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn request(stream: &mut UnixStream, line: &[u8]) -> serde_json::Value {
    stream.write_all(line).expect("write request");
    let mut resp = String::new();
    BufReader::new(&*stream)
        .read_line(&mut resp)
        .expect("read response");
    serde_json::from_str(&resp).expect("response is JSON")
}

#[test]
fn control_socket_serves_status_and_survives_garbage() {
    let dir = tmpdir("socket");
    let rs = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = rs.local_addr().expect("addr").port();
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        format!(
            "local_address_group l {{\n  127.0.0.20 lo\n}}\nvirtual_server 127.0.0.10 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n  real_server 127.0.0.1 {port} {{\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n}}\n"
        ),
    )
    .expect("write");
    let sock = dir.join("dpvsd.sock");
    let sock_s = sock.display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_dpvsd"))
        .args(["-n", "-f", &conf.display().to_string(), "--socket", &sock_s])
        .stderr(Stdio::null())
        .spawn()
        .expect("start dpvsd");
    let _daemon = Daemon(child);
    let t0 = Instant::now();
    let mut stream = loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "dpvsd did not open its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&sock).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");

    let v = request(&mut stream, b"{\"version\":1,\"cmd\":\"status\"}\n");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["data"]["virtual_servers"], 1);
    assert_eq!(v["data"]["backend"], "none");

    // Garbage, an unknown command and a wrong version get errors; the
    // connection and the daemon keep working.
    for bad in [
        &b"hello\n"[..],
        b"{\"version\":1,\"cmd\":\"explode\"}\n",
        b"{\"version\":9,\"cmd\":\"list\"}\n",
    ] {
        let v = request(&mut stream, bad);
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let v = request(&mut stream, b"{\"version\":1,\"cmd\":\"list\"}\n");
    assert_eq!(v["ok"], true);
    let rs0 = &v["data"]["services"][0]["real_servers"][0];
    assert_eq!(rs0["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(rs0["health"], "up");

    // An oversize request is refused without buffering it all.
    let mut big = UnixStream::connect(&sock).expect("connect");
    big.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let v = request(&mut big, &vec![b'x'; 70 * 1024]);
    assert_eq!(v["ok"], false);

    // dpvsctl renders the same data; a second daemon on the socket refuses.
    let out = Command::new(env!("CARGO_BIN_EXE_dpvsctl"))
        .args(["--socket", &sock_s, "list"])
        .output()
        .expect("dpvsctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("127.0.0.10:80")
            && text.contains(&format!("127.0.0.1:{port}")),
        "{text}"
    );
    let out = dpvsd(&["-n", "-f", &conf.display().to_string(), "--socket", &sock_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another dpvsd is already listening"));

    // The health check notices the real server going away.
    drop(rs);
    let t0 = Instant::now();
    loop {
        let v = request(&mut stream, b"{\"version\":1,\"cmd\":\"list\"}\n");
        if v["data"]["services"][0]["real_servers"][0]["health"] == "down" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "real server never marked down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_dpvsctl"))
        .args(["--socket", "/nonexistent.sock", "status"])
        .output()
        .expect("dpvsctl");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is dpvsd running?"));
}

/// A dpvsd built without the `dpdk` feature refuses `--backend dpdk` with
/// the rebuild hint, before anything starts (no control socket is left).
#[test]
fn dpdk_backend_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "dpdk") {
        println!("SKIP: dpdk_backend_without_the_feature_is_a_clear_error: built with dpdk");
        return;
    }
    let d = tmpdir("nodpdk");
    let sock = d.join("dpvsd.sock").display().to_string();
    let out = dpvsd(&[
        "-n",
        "-f",
        &sample(),
        "--socket",
        &sock,
        "--backend",
        "dpdk",
        "--dpdk-port",
        "net_af_packet0,iface=lo",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr: {err}");
    assert!(err.contains("--features dpdk"), "stderr: {err}");
    assert!(!Path::new(&sock).exists(), "socket left behind");
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs dpvsctl against `sock`: (success, stdout, stderr).
fn ctl(sock: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dpvsctl"))
        .args(["--socket", sock])
        .args(args)
        .output()
        .expect("dpvsctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl_json(sock: &str, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (ok, out, err) = ctl(sock, &a);
    assert!(ok, "dpvsctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("dpvsctl {args:?} --json: {e}: {out}"))
}

/// Config with one FNAT service and two loopback real servers.
fn two_server_conf(pa: u16, wa: u32, pb: u16, wb: u32) -> String {
    let rs = |port: u16, w: u32| {
        format!("  real_server 127.0.0.1 {port} {{\n    weight {w}\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n")
    };
    format!(
        "local_address_group l {{\n  127.0.0.20 lo\n}}\nvirtual_server 127.0.0.10 80 {{\n  delay_loop 1\n  lb_algo wrr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n{}{}}}\n",
        rs(pa, wa),
        rs(pb, wb)
    )
}

#[test]
fn runtime_weight_drain_enable_health_list_and_log_level() {
    let dir = tmpdir("ops");
    let a = TcpListener::bind("127.0.0.1:0").expect("listener");
    let b = TcpListener::bind("127.0.0.1:0").expect("listener");
    let (pa, pb) = (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    );
    let (ra, rb) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let conf = dir.join("k.conf");
    std::fs::write(&conf, two_server_conf(pa, 3, pb, 1)).expect("write");
    let sock = dir.join("dpvsd.sock").display().to_string();
    let log = dir.join("dpvsd.log");
    let _daemon = start_daemon(&conf, &sock, &[], Some(&log));
    let server = |addr: &str| {
        let v = ctl_json(&sock, &["list"]);
        v["services"][0]["real_servers"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["addr"] == addr))
            .cloned()
            .unwrap_or_default()
    };
    let weights = || {
        (
            server(&ra)["current_weight"].clone(),
            server(&rb)["current_weight"].clone(),
        )
    };
    assert_eq!(weights(), (3.into(), 1.into()));

    // weight / drain change the dataplane at once and are reported.
    let (ok, out, err) = ctl(&sock, &["weight", "127.0.0.10:80", &ra, "7"]);
    assert!(ok, "{err}");
    assert!(out.contains("override 7, now weight 7"), "{out}");
    let v = ctl_json(&sock, &["drain", "127.0.0.10:80", &rb]);
    assert_eq!(
        (v["weight_override"].clone(), v["current_weight"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(weights(), (7.into(), 0.into()));
    let st = ctl_json(&sock, &["status"]);
    let overrides = st["weight_overrides"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(overrides.len(), 2, "{st}");
    assert!(ctl(&sock, &["status"])
        .1
        .contains(&format!("override: TCP 127.0.0.10:80 -> {ra} weight 7")));
    let (_, text, _) = ctl(&sock, &["list", "-n"]);
    assert!(
        text.starts_with("Prot LocalAddress:Port Scheduler Flags\n"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains(&ra)
            && l.contains("FNAT")
            && l.contains(" 7 ")
            && l.ends_with("up (override)")),
        "{text}"
    );
    assert!(ctl(&sock, &["list", "--stats"]).1.contains("InPkts"));

    // An unchanged reload keeps both overrides; changing rb's configured
    // weight drops its override (the file wins) and keeps ra's.
    let (ok, _, err) = ctl(&sock, &["reload"]);
    assert!(ok, "{err}");
    assert_eq!(weights(), (7.into(), 0.into()));
    std::fs::write(&conf, two_server_conf(pa, 3, pb, 2)).expect("write");
    let (ok, _, err) = ctl(&sock, &["reload"]);
    assert!(ok, "{err}");
    assert_eq!(weights(), (7.into(), 2.into()));
    assert_eq!(server(&rb)["weight_override"], serde_json::Value::Null);

    // enable returns to the configured weight.
    let v = ctl_json(&sock, &["enable", "127.0.0.10:80", &ra]);
    assert_eq!(v["current_weight"], 3);
    assert_eq!(weights(), (3.into(), 2.into()));
    assert!(ctl_json(&sock, &["status"])["weight_overrides"]
        .as_array()
        .is_some_and(|o| o.is_empty()));

    // Bad targets are errors naming the problem.
    for (args, want) in [
        (
            vec!["weight", "127.0.0.10:80", "127.0.0.1:1", "5"],
            "no real server 127.0.0.1:1",
        ),
        (
            vec!["drain", "127.0.0.11:80", &ra],
            "no virtual server 127.0.0.11:80",
        ),
        (vec!["enable", "nonsense", &ra], "bad virtual server"),
        (
            vec!["weight", "127.0.0.10:80", &ra, "3000000000"],
            "at most",
        ),
    ] {
        let (ok, _, err) = ctl(&sock, &args);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }

    // health: every checker with its state and counters.
    let t0 = Instant::now();
    let entry = loop {
        let h = ctl_json(&sock, &["health"]);
        let entry = h
            .as_array()
            .and_then(|e| e.iter().find(|e| e["server"] == ra.as_str()))
            .cloned()
            .unwrap_or_default();
        if entry["checks"][0]["checks_run"].as_u64().unwrap_or(0) >= 1 {
            break entry;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no check ran: {entry}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(entry["service"], "TCP 127.0.0.10:80");
    assert_eq!(entry["health"], "up");
    assert_eq!(entry["checks"][0]["kind"], "TCP_CHECK");
    assert!(entry["checks"][0]["checks_run"].as_u64().unwrap_or(0) >= 1);
    assert!(entry["checks"][0]["latency"]["count"].as_u64().unwrap_or(0) >= 1);
    drop(b);
    let t0 = Instant::now();
    let text = loop {
        let (_, text, _) = ctl(&sock, &["health"]);
        if text.contains(&format!("-> {rb}  down")) {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "rb never failed:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        text.contains(&format!(
            "TCP 127.0.0.10:80 -> {rb}  down  not in the table"
        )),
        "{text}"
    );
    // Per checker: state, last result, consecutive failures, the last
    // error's text and the time of the last transition.
    assert!(
        text.contains("TCP_CHECK") && text.contains(": down (last failed, "),
        "{text}"
    );
    assert!(text.contains("consecutive failure(s)"), "{text}");
    assert!(text.contains("last error: connection refused"), "{text}");
    assert!(text.contains("last transition: unix "), "{text}");

    // --rate: the dataplane's estimates per service and server.
    let r = ctl_json(&sock, &["list", "--rate"]);
    assert_eq!(r["interval_secs"].as_f64(), Some(2.0), "{r}");
    assert_eq!(r["services"][0]["rates"]["cps"], 0);
    assert!(ctl(&sock, &["list", "--rate"]).1.contains("CPS"));

    // log-level takes effect: at warn, an override is not logged; at info it is.
    let logged = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("runtime weight override")
            .count()
    };
    let v = ctl_json(&sock, &["log-level", "warn"]);
    assert_eq!(v["level"], "warn");
    let before = logged();
    assert!(ctl(&sock, &["weight", "127.0.0.10:80", &ra, "4"]).0);
    assert_eq!(logged(), before, "nothing logged at warn");
    assert!(ctl(&sock, &["log-level", "info"]).0);
    assert!(ctl(&sock, &["enable", "127.0.0.10:80", &ra]).0);
    assert_eq!(logged(), before + 1, "logged again at info");
    let (ok, _, err) = ctl(&sock, &["log-level", "info,[bad"]);
    assert!(!ok && err.contains("bad log level"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config with a misspelt keyword (`delay_lop`) and a weight that only
/// keepalived 2.2.7 accepts (DPVS's fork stops at 65535).
fn write_modes_conf(name: &str) -> String {
    let dir = tmpdir(name);
    let conf = dir.join("modes.conf");
    std::fs::write(
        &conf,
        "virtual_server 10.0.0.1 80 {\n    delay_lop 6\n    lb_algo rr\n    lb_kind NAT\n    \
         protocol TCP\n    real_server 10.0.1.1 80 {\n        weight 70000\n    }\n}\n",
    )
    .expect("write");
    conf.display().to_string()
}

#[test]
fn strict_makes_unknown_keywords_fatal_with_a_hint() {
    let conf = write_modes_conf("strict");
    let out = dpvsd(&["-t", "-f", &conf]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains(":2:5: warning: unknown keyword 'delay_lop' (did you mean 'delay_loop'?)"),
        "{err}"
    );
    let out = dpvsd(&["-t", "--strict", "-f", &conf]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains(":2:5: fatal: unknown keyword 'delay_lop' (did you mean 'delay_loop'?) - fatal with --strict"),
        "{err}"
    );
    // Without -t, a fatal diagnostic refuses to start (before anything is bound).
    let out = dpvsd(&[
        "--strict",
        "-n",
        "-f",
        &conf,
        "--socket",
        "/nonexistent/dpvsd.sock",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("configuration has errors; not starting"),
        "{err}"
    );
}

#[test]
fn dialect_dpvs_applies_the_dpvs_weight_limit() {
    let conf = write_modes_conf("dialect");
    let out = dpvsd(&["-t", "-f", &conf, "--dialect", "keepalived"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("70000"), "{err}");
    let out = dpvsd(&["-t", "-f", &conf, "--dialect", "dpvs"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains(":7:16: error:") && err.contains("70000"),
        "{err}"
    );
    let out = dpvsd(&["-t", "-f", &conf, "--dialect", "dpvs-2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dialect 'dpvs-2'"));
}

#[test]
fn generated_completions_and_man_pages_follow_the_clap_definitions() {
    let run = |bin: &str, args: &[&str]| {
        let out = Command::new(bin).args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{bin} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (d, c) = (env!("CARGO_BIN_EXE_dpvsd"), env!("CARGO_BIN_EXE_dpvsctl"));
    for shell in ["bash", "zsh", "fish"] {
        let s = run(d, &["--generate-completions", shell]);
        assert!(
            s.contains("metrics-listen") && s.contains("use-file"),
            "{shell}: {s}"
        );
        let s = run(c, &["generate-completions", shell]);
        assert!(s.contains("conns") && s.contains("drain"), "{shell}: {s}");
    }
    let man = run(d, &["--generate-man"]);
    assert!(
        man.starts_with(".ie") && man.contains(".TH dpvsd 8"),
        "{man}"
    );
    assert!(
        man.contains("metrics\\-listen") && man.contains("log\\-facility"),
        "{man}"
    );
    let man = run(c, &["generate-man"]);
    assert!(
        man.contains(".TH dpvsctl 8") && man.contains("log\\-level"),
        "{man}"
    );
}

#[test]
fn keepalived_options_backend_and_dump_conf() {
    let out = dpvsd(&["-S", "3", "-t", "-f", &sample()]);
    assert!(out.status.success(), "-S 3 is a valid facility");
    let out = dpvsd(&["-S", "8", "-t", "-f", &sample()]);
    assert!(!out.status.success(), "-S takes 0-7");
    let out = dpvsd(&["-d", "-t", "-f", &sample()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("virtual_server 10.99.0.100 80 {"),
        "{err}"
    );
    // The DPDK backend needs its port.
    let out = dpvsd(&["--backend", "dpdk", "-n", "-f", &sample()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--dpdk-port"),
        "{err}"
    );
    let out = dpvsd(&["--backend", "bogus", "-t", "-f", &sample()]);
    assert!(!out.status.success());
}

#[test]
fn pid_file_and_json_logs() {
    let dir = tmpdir("pid");
    let rs = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = rs.local_addr().expect("addr").port();
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        two_server_conf(port, 1, port, 1).replacen(
            &format!("  real_server 127.0.0.1 {port}"),
            "  real_server 127.0.0.2 1",
            1,
        ),
    )
    .expect("write");
    let (sock, pid, log) = (dir.join("s.sock"), dir.join("dpvsd.pid"), dir.join("log"));
    let sock_s = sock.display().to_string();
    let pid_s = pid.display().to_string();
    let mut daemon = start_daemon(
        &conf,
        &sock_s,
        &["--log-format", "json", "-p", &pid_s],
        Some(&log),
    );
    let id = daemon.0.id();
    assert_eq!(std::fs::read_to_string(&pid).ok(), Some(format!("{id}\n")));

    // A second daemon with the same pid file refuses and leaves it alone.
    let out = dpvsd(&[
        "-n",
        "-p",
        &pid.display().to_string(),
        "-f",
        &conf.display().to_string(),
        "--socket",
        &dir.join("other.sock").display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("process {id} is running")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&pid).ok(), Some(format!("{id}\n")));

    // Every log line is a JSON object with a level and a message.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["fields"]["message"] == "dpvsd running" && v["level"] == "INFO"),
        "{text}"
    );

    // SIGTERM: the pid file goes away with the daemon.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(id as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let t0 = Instant::now();
    while !matches!(daemon.0.try_wait(), Ok(Some(_))) {
        assert!(t0.elapsed() < Duration::from_secs(10), "dpvsd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pid.exists(), "pid file removed at exit");
    drop(rs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs dpvsctl as `nobody` (setpriv): (success, stdout, stderr).
fn ctl_as_nobody(sock: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_dpvsctl"))
        .args(["--socket", sock])
        .args(args)
        .output()
        .expect("setpriv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn non_root_clients_are_denied() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: non_root_clients_are_denied: needs root (runs dpvsctl as nobody)");
        return;
    }
    let dir = tmpdir("nobody");
    // nobody must reach the socket's directory to be turned away by its mode
    // or by the daemon, not by the path.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod dir");
    let conf = dir.join("k.conf");
    std::fs::write(&conf, two_server_conf(1, 1, 2, 1)).expect("write");
    let sock = dir.join("s.sock");
    let sock_s = sock.display().to_string();
    let _daemon = start_daemon(&conf, &sock_s, &[], None);
    // The setup works for a user that may: root gets an answer.
    assert!(ctl(&sock_s, &["status"]).0);

    // Layer 1: the socket is 0600 root, nobody cannot connect.
    let (ok, _, err) = ctl_as_nobody(&sock_s, &["status"]);
    assert!(
        !ok && err.contains("cannot connect to") && err.contains("Permission denied"),
        "{err}"
    );

    // Layer 2: even on a socket opened up by mistake, the daemon checks the
    // peer's credentials and refuses every command.
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod socket");
    for args in [
        &["status"][..],
        &["weight", "127.0.0.10:80", "127.0.0.1:1", "0"],
        &["reload"],
    ] {
        let (ok, out, err) = ctl_as_nobody(&sock_s, args);
        assert!(
            !ok && err.contains("permission denied"),
            "{args:?}: {out} {err}"
        );
    }
    // ... and still serves root.
    assert!(ctl(&sock_s, &["status"]).0);
    let _ = std::fs::remove_dir_all(&dir);
}
