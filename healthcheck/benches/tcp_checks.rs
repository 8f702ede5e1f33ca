//! Checker cost at scale: 10,000 subjects with `TCP_CHECK` and 1,000 with
//! `HTTP_GET`, all at `delay_loop 1`.
//!
//! # Where the servers are
//!
//! As root, the servers run in a network namespace the bench creates
//! (`hcb<pid>`), behind a veth pair (host 10.251.0.1, namespace
//! 10.251.0.2-17), so that every probe crosses a real link; the namespace is
//! deleted at the end. Not root (or `HC_BENCH_NET=loopback`), they listen on
//! 127.0.0.1-16 instead, with a printed notice. Either way they run in a
//! child process (this binary re-executed with `HC_BENCH_SERVER=1`), so the
//! CPU time measured with `getrusage` is the checker process's alone.
//!
//! # What is counted
//!
//! The bench prints whether the kernel has `CONFIG_IRQ_TIME_ACCOUNTING`.
//! Without it (the usual case, and this VM's), softirq work is charged to
//! whichever task it interrupts: a veth transmit queues the frame and runs
//! the receive softirq when the sender re-enables bottom halves, i.e. in
//! the checker's `connect`. So the listener's half of the handshake (SYN in,
//! SYN-ACK out) and the checker's own SYN-ACK processing are in the
//! checker's sys time, as on loopback. Case `tcp10k_rps` (root, 2+ CPUs)
//! pins the checker to CPU 0 and steers the namespace side's receive queue
//! (RPS) to CPU 1: the server side and the returning SYN-ACK are then
//! processed on CPU 1, as they would be on a remote server and a NIC
//! interrupt, and the checker pays for its system calls only. Each case
//! also prints the machine-wide softirq time from `/proc/stat` over its
//! window (shared with everything else on the machine).
//!
//! # Output
//!
//! Each case warms up for 2 s, then measures for `HC_BENCH_SECS` (default
//! 10) and prints one line:
//!
//! ```text
//! case=tcp10k subjects=10000 checks_per_s=... cpu_ms_per_1k=... (user ... sys ...) cpu_pct_of_core=... failed=... events=... peak_rss_mb=... softirq_ms_per_1k_machine=...
//! ```
//!
//! `peak_rss_mb` is the process's VmHWM so far (it includes earlier cases).
//!
//! Before each TCP case, case `floor` runs what a naive TCP_CHECK does
//! (socket, blocking connect, `SO_LINGER` 0, close) in a plain loop on one
//! thread against the same listeners and measures that thread's CPU alone;
//! the TCP case prints its ratio to it. The checker reuses its sockets
//! (connect, `connect(AF_UNSPEC)`), so it can go below this "floor"; case
//! `floor_reuse` runs that sequence (blocking connect, disconnect, one
//! socket) in a plain loop: the kernel's cost of one handshake and reset,
//! which no checker on this machine can go below.
//!
//! Run: `cargo bench -p healthcheck --bench tcp_checks [-- tcp10k|tcp10k_rps|http1k]`;
//! `HC_BENCH_RUNTIME=current` uses a current-thread runtime for the checkers.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use healthcheck::{CheckKind, CheckSpec, HealthChecker, HttpSpec, SubjectId, SubjectSpec, UrlSpec};
use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Addresses the TCP listeners are spread over, so that client ports do not
/// run out.
const TCP_LISTENERS: u8 = 16;
/// Listeners per address: every one of the 10,000 subjects gets a target of
/// its own (equal checkers would be probed once, see the driver).
const PORTS_PER_ADDR: usize = 625;
const WARMUP: Duration = Duration::from_secs(2);

fn main() {
    if std::env::var_os("HC_BENCH_SERVER").is_some() {
        serve();
        return;
    }
    raise_fd_limit();
    let secs = std::env::var("HC_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |case: &str| wanted.is_empty() || wanted.iter().any(|w| w == case);

    let net = Net::setup();
    println!("net={}", net.describe());
    println!("accounting: {}", accounting());
    let (mut child, tcp, http) = start_servers(&net);
    assert_eq!(tcp.len(), 10_000, "one listener per TCP subject");
    // HC_BENCH_RUNTIME=current runs the checkers on a current-thread
    // runtime instead of dpvsd's two-worker multi-thread one.
    let runtime = if std::env::var("HC_BENCH_RUNTIME").is_ok_and(|r| r == "current") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    }
    .enable_all()
    .build()
    .expect("runtime");
    let measure = Duration::from_secs(secs);
    let tcp_case = |name: &str| {
        let floor_ms = floor(&tcp, 20_000);
        let reuse_ms = floor_reuse(&tcp, 20_000);
        let targets: Vec<_> = (0..10_000).map(|i| tcp[i % tcp.len()]).collect();
        let cost = runtime.block_on(case(name, &targets, |_| CheckKind::Tcp, measure));
        if floor_ms > 0.0 && reuse_ms > 0.0 {
            println!(
                "case={name} ratio_to_floor={:.2} ratio_to_floor_reuse={:.2} overhead_over_floor_reuse_ms_per_1k={:.1}",
                cost / floor_ms,
                cost / reuse_ms,
                cost - reuse_ms
            );
        }
    };
    if run("tcp10k") {
        tcp_case("tcp10k");
    }
    if run("http1k") {
        let targets = vec![http; 1_000];
        // A path of its own per subject, so that no two checkers are equal.
        let kind = |i| {
            CheckKind::Http(HttpSpec {
                urls: vec![UrlSpec::new(format!("/health/{i}"))],
                ..HttpSpec::default()
            })
        };
        let _cost = runtime.block_on(case("http1k", &targets, kind, measure));
    }
    if run("tcp10k_rps") {
        match net.steer_to_other_cpu() {
            Ok(()) => tcp_case("tcp10k_rps"),
            Err(why) => println!("case=tcp10k_rps skipped: {why}"),
        }
    }
    drop(runtime);
    if let Err(e) = child.kill() {
        eprintln!("cannot stop the server process: {e}");
    }
    let _status = child.wait();
    drop(net);
}

/// Where the servers listen: a namespace behind a veth pair, or loopback.
enum Net {
    Loopback {
        why: String,
    },
    Namespace {
        name: String,
        host_if: String,
        ns_if: String,
    },
}

const NS_PREFIX: [u8; 3] = [10, 251, 0];

impl Net {
    fn setup() -> Net {
        if std::env::var("HC_BENCH_NET").is_ok_and(|n| n == "loopback") {
            return Net::Loopback {
                why: "HC_BENCH_NET=loopback".into(),
            };
        }
        if !nix::unistd::geteuid().is_root() {
            return Net::Loopback {
                why: "not root: cannot create a namespace".into(),
            };
        }
        let pid = std::process::id();
        let name = format!("hcb{pid}");
        let (host_if, ns_if) = (format!("hcb{pid}a"), format!("hcb{pid}b"));
        let net = Net::Namespace {
            name: name.clone(),
            host_if: host_if.clone(),
            ns_if: ns_if.clone(),
        };
        let [a, b, c] = NS_PREFIX;
        let mut steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), name.clone()],
            vec![
                "link".into(),
                "add".into(),
                host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                ns_if.clone(),
                "netns".into(),
                name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{a}.{b}.{c}.1/24"),
                "dev".into(),
                host_if.clone(),
            ],
            vec!["link".into(), "set".into(), host_if.clone(), "up".into()],
        ];
        let ns = |args: &[&str]| -> Vec<String> {
            let mut v = vec!["-n".to_string(), name.clone()];
            v.extend(args.iter().map(|s| s.to_string()));
            v
        };
        for i in 0..TCP_LISTENERS {
            let addr = format!("{a}.{b}.{c}.{}/24", i + 2);
            steps.push(ns(&["addr", "add", &addr, "dev", &ns_if]));
        }
        steps.push(ns(&["link", "set", &ns_if, "up"]));
        steps.push(ns(&["link", "set", "lo", "up"]));
        for step in steps {
            let status = Command::new("ip").args(&step).status();
            if !status.is_ok_and(|s| s.success()) {
                drop(net);
                return Net::Loopback {
                    why: format!("`ip {}` failed", step.join(" ")),
                };
            }
        }
        net
    }

    fn describe(&self) -> String {
        match self {
            Net::Loopback { why } => format!(
                "loopback (NOTICE: {why}; the kernel runs both ends of every handshake in the checker's thread)"
            ),
            Net::Namespace { name, host_if, .. } => format!(
                "veth {host_if} <-> namespace {name} ({}.{}.{}.2-{})",
                NS_PREFIX[0],
                NS_PREFIX[1],
                NS_PREFIX[2],
                TCP_LISTENERS + 1
            ),
        }
    }

    /// The server addresses: one per listener, then the HTTP server's.
    fn addrs(&self) -> Vec<IpAddr> {
        let [a, b, c] = NS_PREFIX;
        (0..=TCP_LISTENERS)
            .map(|i| match self {
                Net::Loopback { .. } => IpAddr::from([127, 0, 0, (i % TCP_LISTENERS) + 1]),
                Net::Namespace { .. } => IpAddr::from([a, b, c, (i % TCP_LISTENERS) + 2]),
            })
            .collect()
    }

    /// Pins this process to CPU 0 and steers the namespace side's receive
    /// queue to CPU 1 (see the module docs).
    fn steer_to_other_cpu(&self) -> Result<(), String> {
        let Net::Namespace { name, ns_if, .. } = self else {
            return Err("needs the namespace (root)".into());
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            return Err("needs 2 CPUs".into());
        }
        let mut set = nix::sched::CpuSet::new();
        set.set(0).map_err(|e| e.to_string())?;
        // Every thread of the process, including the runtime's and the
        // TCP_CHECK thread (started per case).
        let task_dir = std::fs::read_dir("/proc/self/task").map_err(|e| e.to_string())?;
        for task in task_dir.flatten() {
            if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set)
                    .map_err(|e| format!("sched_setaffinity: {e}"))?;
            }
        }
        let path = format!("/sys/class/net/{ns_if}/queues/rx-0/rps_cpus");
        let status = Command::new("ip")
            .args([
                "netns",
                "exec",
                name,
                "sh",
                "-c",
                &format!("echo 2 > {path}"),
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("cannot write {path} in the namespace"));
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Net::Namespace { name, .. } = self {
            // Deleting the namespace deletes the veth pair too.
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
    }
}

/// What this kernel charges to the task, from its build config.
fn accounting() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let config =
        std::fs::read_to_string(format!("/boot/config-{}", release.trim())).or_else(|_| {
            Command::new("zcat")
                .arg("/proc/config.gz")
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    if o.status.success() {
                        String::from_utf8(o.stdout).map_err(|e| e.to_string())
                    } else {
                        Err("zcat /proc/config.gz failed".into())
                    }
                })
        });
    match config {
        Ok(text) if text.lines().any(|l| l == "CONFIG_IRQ_TIME_ACCOUNTING=y") => {
            "CONFIG_IRQ_TIME_ACCOUNTING=y: softirq time is accounted apart and NOT in the checker's sys time (the machine-wide softirq figure shows it)".into()
        }
        Ok(_) => "CONFIG_IRQ_TIME_ACCOUNTING is not set: softirq work run in the checker's context (veth/loopback receive of both ends, unless steered to another CPU) IS in its sys time; softirq run on other CPUs or in ksoftirqd is not".into(),
        Err(_) => "kernel config not readable: unknown whether softirq time is in the checker's sys time".into(),
    }
}

/// Machine-wide softirq time so far (`/proc/stat`, all CPUs), in seconds.
fn softirq_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .and_then(|l| l.split_whitespace().nth(7))
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

fn raise_fd_limit() {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((_soft, hard)) => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                eprintln!("cannot raise RLIMIT_NOFILE: {e}");
            }
        }
        Err(e) => eprintln!("cannot read RLIMIT_NOFILE: {e}"),
    }
}

/// Starts the server process (in the namespace, if any); returns it, the
/// TCP listener addresses and the HTTP server address.
fn start_servers(net: &Net) -> (Child, Vec<SocketAddr>, SocketAddr) {
    let exe = std::env::current_exe().expect("own path");
    let addrs: Vec<String> = net.addrs().iter().map(ToString::to_string).collect();
    let mut command = match net {
        Net::Loopback { .. } => Command::new(exe),
        Net::Namespace { name, .. } => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", name]).arg(exe);
            c
        }
    };
    let mut child = command
        .env("HC_BENCH_SERVER", "1")
        .env("HC_BENCH_ADDRS", addrs.join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server process");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("server addresses");
    let addrs: Vec<SocketAddr> = line
        .split_whitespace()
        .map(|a| a.parse().expect("address"))
        .collect();
    let (http, tcp) = addrs.split_last().expect("addresses");
    (child, tcp.to_vec(), *http)
}

/// The server process: TCP listeners that accept and close, and an HTTP
/// server answering 200, on the addresses in `HC_BENCH_ADDRS` (HTTP last).
/// Prints the bound addresses on one line and runs until killed.
fn serve() {
    let ips: Vec<IpAddr> = std::env::var("HC_BENCH_ADDRS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|a| a.parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let Some((http_ip, tcp_ips)) = ips.split_last() else {
            eprintln!("HC_BENCH_ADDRS is empty");
            return;
        };
        let mut addrs = Vec::new();
        for _ in 0..PORTS_PER_ADDR {
            for &ip in tcp_ips {
                let listener = TcpListener::bind((ip, 0)).await.expect("bind");
                addrs.push(listener.local_addr().expect("addr").to_string());
                tokio::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => drop(stream),
                            Err(e) => eprintln!("accept: {e}"),
                        }
                    }
                });
            }
        }
        let http = TcpListener::bind((*http_ip, 0)).await.expect("bind");
        addrs.push(http.local_addr().expect("addr").to_string());
        println!("{}", addrs.join(" "));
        loop {
            let Ok((mut stream, _)) = http.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if stream.read(&mut buf).await.is_ok() {
                    let _ = stream
                        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
}

/// The floor for one TCP_CHECK: `count` connections made with blocking
/// system calls (socket, connect, `SO_LINGER` 0, close: a RST) on a fresh
/// thread. Prints and returns that thread's CPU milliseconds per 1,000.
fn floor(targets: &[SocketAddr], count: usize) -> f64 {
    let targets = targets.to_vec();
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    thread_loop("floor", count, move |i| {
        let target = targets[i % targets.len()];
        std::net::TcpStream::connect(target).is_ok_and(|stream| {
            nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger)
                .is_ok()
        })
    })
}

/// The floor for the checker's own way: one blocking socket reused for
/// `count` connections (connect, then `connect(AF_UNSPEC)`, which resets the
/// connection), on a fresh thread. Prints and returns that thread's CPU
/// milliseconds per 1,000.
fn floor_reuse(targets: &[SocketAddr], count: usize) -> f64 {
    let targets = targets.to_vec();
    let socket = match socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    ) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("floor_reuse: socket: {e}");
            return 0.0;
        }
    };
    thread_loop("floor_reuse", count, move |i| {
        let target = targets[i % targets.len()];
        rustix::net::connect(&socket, &target).is_ok()
            && rustix::net::connect_unspec(&socket).is_ok()
    })
}

/// Runs `one(i)` for `i` in `0..count` on a fresh thread and prints case
/// `name` with that thread's CPU per 1,000 runs (`one` returns false for a
/// failure); returns the milliseconds.
fn thread_loop(
    name: &str,
    count: usize,
    mut one: impl FnMut(usize) -> bool + Send + 'static,
) -> f64 {
    let worker = std::thread::spawn(move || {
        let (start, t0) = (cpu_seconds(UsageWho::RUSAGE_THREAD), Instant::now());
        let failed = (0..count).filter(|&i| !one(i)).count();
        let end = cpu_seconds(UsageWho::RUSAGE_THREAD);
        (
            failed,
            end.0 - start.0,
            end.1 - start.1,
            t0.elapsed().as_secs_f64(),
        )
    });
    let Ok((failed, user, sys, elapsed)) = worker.join() else {
        eprintln!("the {name} thread panicked");
        return 0.0;
    };
    let per_1k = |secs: f64| secs * 1e6 / count as f64;
    println!(
        "case={name} connections={count} per_s={:.0} cpu_ms_per_1k={:.1} (user {:.1} sys {:.1}) failed={failed}",
        count as f64 / elapsed,
        per_1k(user + sys),
        per_1k(user),
        per_1k(sys),
    );
    per_1k(user + sys)
}

/// (user, system) CPU seconds of this process (or thread) so far.
fn cpu_seconds(who: UsageWho) -> (f64, f64) {
    match getrusage(who) {
        Ok(usage) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            (secs(usage.user_time()), secs(usage.system_time()))
        }
        Err(e) => {
            eprintln!("getrusage: {e}");
            (0.0, 0.0)
        }
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// (checks run, checkers whose latest probe failed) over every subject.
fn totals(checker: &HealthChecker) -> (u64, usize) {
    let status = checker.status();
    let run = status
        .iter()
        .flat_map(|s| &s.checks)
        .map(|c| c.checks_run)
        .sum();
    let failed = status
        .iter()
        .flat_map(|s| &s.checks)
        .filter(|c| c.last_ok == Some(false))
        .count();
    (run, failed)
}

async fn case(
    name: &str,
    targets: &[SocketAddr],
    kind: impl Fn(usize) -> CheckKind,
    measure: Duration,
) -> f64 {
    let subjects = targets
        .iter()
        .enumerate()
        .map(|(i, &target)| SubjectSpec {
            id: SubjectId(i as u64),
            name: format!("rs{i}"),
            checks: vec![CheckSpec {
                kind: kind(i),
                delay_loop: Duration::from_secs(1),
                warmup: Duration::from_secs(1),
                ..CheckSpec::tcp(target)
            }],
        })
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let checker = HealthChecker::start(subjects, tx);
    let probes = checker.running_probes();
    assert_eq!(probes, targets.len(), "every subject's checker is distinct");
    tokio::time::sleep(WARMUP).await;

    let (run0, cpu0, t0, soft0) = (
        totals(&checker).0,
        cpu_seconds(UsageWho::RUSAGE_SELF),
        Instant::now(),
        softirq_seconds(),
    );
    tokio::time::sleep(measure).await;
    let (run1, failed) = totals(&checker);
    let (cpu1, elapsed, soft1) = (
        cpu_seconds(UsageWho::RUSAGE_SELF),
        t0.elapsed().as_secs_f64(),
        softirq_seconds(),
    );

    let checks = run1.saturating_sub(run0) as f64;
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    let cpu = user + sys;
    let per_1k = |secs: f64| {
        if checks > 0.0 {
            secs * 1e6 / checks
        } else {
            0.0
        }
    };
    let mut events = 0;
    while rx.try_recv().is_ok() {
        events += 1;
    }
    println!(
        "case={name} subjects={} probes={probes} checks_per_s={:.0} cpu_ms_per_1k={:.1} (user {:.1} sys {:.1}) cpu_pct_of_core={:.1} failed={failed} events={events} peak_rss_mb={:.1} softirq_ms_per_1k_machine={:.1}",
        targets.len(),
        checks / elapsed,
        per_1k(cpu),
        per_1k(user),
        per_1k(sys),
        cpu / elapsed * 100.0,
        peak_rss_mb(),
        per_1k(soft1 - soft0),
    );
    checker.shutdown().await;
    per_1k(cpu)
}
