//! Test support for the end-to-end tests of every crate (a dev-dependency
//! only): bounded polling, running commands, stopping children, and tcpdump
//! captures checked by `../shared/tools/pcapcheck.py`. The lab topologies
//! themselves stay with the tests that use them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `f` every 10 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends `sig` to `pid` (ignoring a process that is already gone).
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

/// Starts a real keepalived (`--vrrp --dont-fork`, console log) in `ns`
/// with `conf`, its files in `dir` (`keepalived.conf`, `keepalived.log`,
/// pid files), and waits (bounded) until it logs its first state. The
/// caller owns the child.
pub fn spawn_keepalived(ns: &str, dir: &Path, conf: &str) -> Child {
    std::fs::create_dir_all(dir).expect("keepalived dir");
    let cfg = dir.join("keepalived.conf");
    std::fs::write(&cfg, conf).expect("write keepalived.conf");
    let log_path = dir.join("keepalived.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "keepalived", "--vrrp", "--dont-fork"])
        .args(["--log-console", "--log-detail", "--no-syslog", "-f"])
        .arg(&cfg)
        .arg("-p")
        .arg(dir.join("keepalived.pid"))
        .arg("-r")
        .arg(dir.join("keepalived-vrrp.pid"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .expect("spawn keepalived");
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let started = wait_for(Duration::from_secs(10), || {
        read().contains("Entering").then_some(())
    });
    if started.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("keepalived did not start: {}", read());
    }
    child
}

/// Starts a real nginx (one process, in the foreground) in `ns` running
/// `servers` (its `server { … }` blocks), its files under `dir`, and waits
/// (bounded) until something in `ns` listens on TCP `port`. The caller
/// owns the child.
pub fn spawn_nginx(ns: &str, dir: &Path, servers: &str, port: u16) -> Child {
    std::fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\ndaemon off;\n\
         events {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n{servers}}}\n"
    );
    let cfg = dir.join("nginx.conf");
    std::fs::write(&cfg, conf).expect("nginx.conf");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nginx", "-c"])
        .arg(&cfg)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    let sport = format!("sport = :{port}");
    let up = wait_for(Duration::from_secs(5), || {
        let ss = output(&["ip", "netns", "exec", ns, "ss", "-Htln", &sport]);
        (!ss.is_empty()).then_some(())
    });
    if up.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        panic!("nginx in {ns} is not listening on :{port}: {log}");
    }
    child
}

/// tcpdump on eth0 of a namespace, writing a pcap; stopped on drop.
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    /// Starts tcpdump in `ns` with the pcap `filter` and waits until it
    /// listens.
    pub fn start(ns: &str, file: &Path, filter: &str) -> Capture {
        let err = file.with_extension("tcpdump.log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-i", "eth0", "-U"])
            .arg("--immediate-mode")
            .arg("-w")
            .arg(file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("tcpdump log"))
            .spawn()
            .expect("spawn tcpdump");
        let ready = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&err)
                .ok()
                .filter(|s| s.contains("listening on"))
                .map(|_| ())
        });
        assert!(ready.is_some(), "tcpdump did not start");
        Capture {
            child: Some(child),
            file: file.to_owned(),
        }
    }

    /// Stops the capture and returns the file.
    pub fn finish(mut self) -> PathBuf {
        self.end();
        self.file.clone()
    }

    fn end(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGINT makes tcpdump flush and close the file.
            finish(&mut c, nix::sys::signal::Signal::SIGINT);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.end();
    }
}

/// A script from the shared tools (`../shared/tools` beside the
/// repository; `$env` overrides where it is), if present.
pub fn shared_tool(env: &str, name: &str) -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        std::env::var_os(env).map(PathBuf::from),
        Some(manifest.join("../../shared/tools").join(name)),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.exists())
}

/// `pcapcheck.py` from the shared tools (or `$PCAPCHECK`), if present.
pub fn pcapcheck() -> Option<PathBuf> {
    shared_tool("PCAPCHECK", "pcapcheck.py")
}

/// Runs pcapcheck on `file` with `--require` for each of `require`; panics
/// if it fails. Prints a note and returns when the tool is not there.
pub fn check_capture(file: &Path, require: &[&str]) {
    check_capture_allowing(file, require, &[]);
}

/// As [`check_capture`], for unicast VRRP: pcapcheck insists on the
/// multicast group, so a VRRP packet may fail with exactly one complaint,
/// `dst D != 224.0.0.18 (unicast VRRP?)` for a `D` in `unicast_dsts`, and
/// must pass every other check (checksum, TTL, count, interval). At least
/// one such unicast advert must be in the capture.
pub fn check_capture_unicast(file: &Path, require: &[&str], unicast_dsts: &[&str]) {
    let n = check_capture_allowing(file, require, unicast_dsts);
    assert!(n > 0, "no unicast adverts in {file:?}");
}

/// Returns how many packets failed only by their unicast destination.
fn check_capture_allowing(file: &Path, require: &[&str], unicast_dsts: &[&str]) -> usize {
    let Some(tool) = pcapcheck() else {
        println!("note: pcapcheck.py not found, capture {file:?} not checked");
        return 0;
    };
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(&tool).arg("--quiet");
    for r in require {
        cmd.args(["--require", r]);
    }
    let out = cmd.arg(file).output().expect("run pcapcheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("pcapcheck {file:?}: {}", text.lines().last().unwrap_or(""));
    if unicast_dsts.is_empty() {
        assert!(
            out.status.success(),
            "pcapcheck failed on {file:?}:\n{text}"
        );
        return 0;
    }
    let mut unicast = 0;
    for line in text.lines().filter(|l| l.starts_with("FAIL ")) {
        let only_dst = line.contains(" VRRPv")
            && unicast_dsts.iter().any(|d| {
                line.ends_with(&format!(": dst {d} != 224.0.0.18 (unicast VRRP?)"))
                    || line.ends_with(&format!(": dst {d} != ff02::12 (unicast VRRP?)"))
            });
        assert!(only_dst, "pcapcheck on {file:?}: {line}\n{text}");
        unicast += 1;
    }
    println!("pcapcheck {file:?}: {unicast} unicast adverts pass every other check");
    unicast
}
