//! Checker cost at scale: 10,000 subjects with `TCP_CHECK` and 1,000 with
//! `HTTP_GET`, all at `delay_loop 1`, against loopback servers.
//!
//! The servers run in a child process (this binary re-executed with
//! `HC_BENCH_SERVER=1`), so the CPU time measured with `getrusage` is the
//! checker's alone. Each case warms up for 2 s, then measures for
//! `HC_BENCH_SECS` (default 10) and prints one line:
//!
//! ```text
//! case=tcp10k subjects=10000 checks_per_s=... cpu_ms_per_1k=... (user ... sys ...) cpu_pct_of_core=... failed=... events=... peak_rss_mb=...
//! ```
//!
//! `peak_rss_mb` is the process's VmHWM so far (it includes earlier cases).
//!
//! Before `tcp10k`, case `floor` runs the same system calls as one TCP_CHECK
//! (socket, `SO_LINGER` 0, blocking connect, close) in a plain loop on one
//! thread and measures that thread's CPU alone. On loopback the kernel runs
//! both ends of the handshake in the connecting thread, so the floor is what
//! any checker would pay here; `tcp10k` prints its ratio to it.
//!
//! Run: `cargo bench -p healthcheck --bench tcp_checks [-- tcp10k|http1k]`;
//! `HC_BENCH_RUNTIME=current` uses a current-thread runtime for the checkers.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use healthcheck::{CheckKind, CheckSpec, HealthChecker, HttpSpec, SubjectId, SubjectSpec, UrlSpec};
use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// TCP listeners, spread over loopback addresses so that client ports in
/// TIME_WAIT do not run out.
const TCP_LISTENERS: u8 = 16;
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

    let (mut child, tcp, http) = start_servers();
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
    if run("tcp10k") {
        let floor_ms = floor(&tcp, 20_000);
        let targets: Vec<_> = (0..10_000).map(|i| tcp[i % tcp.len()]).collect();
        let cost = runtime.block_on(case("tcp10k", &targets, |_| CheckKind::Tcp, measure));
        if floor_ms > 0.0 {
            println!(
                "case=tcp10k ratio_to_floor={:.2} overhead_ms_per_1k={:.1}",
                cost / floor_ms,
                cost - floor_ms
            );
        }
    }
    if run("http1k") {
        let targets = vec![http; 1_000];
        let kind = |_| {
            CheckKind::Http(HttpSpec {
                urls: vec![UrlSpec::new("/health")],
                ..HttpSpec::default()
            })
        };
        let _cost = runtime.block_on(case("http1k", &targets, kind, measure));
    }
    if let Err(e) = child.kill() {
        eprintln!("cannot stop the server process: {e}");
    }
    let _status = child.wait();
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

/// Starts the server process; returns it, the TCP listener addresses and the
/// HTTP server address.
fn start_servers() -> (Child, Vec<SocketAddr>, SocketAddr) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .env("HC_BENCH_SERVER", "1")
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
/// server answering 200. Prints the addresses (HTTP last) on one line and
/// runs until killed.
fn serve() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut addrs = Vec::new();
        for i in 0..TCP_LISTENERS {
            let ip = IpAddr::from([127, 0, 0, i + 1]);
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
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
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
/// system calls on a fresh thread, closed with a RST. Prints and returns that
/// thread's CPU milliseconds per 1,000 connections.
fn floor(targets: &[SocketAddr], count: usize) -> f64 {
    let targets = targets.to_vec();
    let worker = std::thread::spawn(move || {
        let linger = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let (mut failed, start, t0) =
            (0usize, cpu_seconds(UsageWho::RUSAGE_THREAD), Instant::now());
        for i in 0..count {
            let target = targets[i % targets.len()];
            match std::net::TcpStream::connect(target) {
                Ok(stream) => {
                    if nix::sys::socket::setsockopt(
                        &stream,
                        nix::sys::socket::sockopt::Linger,
                        &linger,
                    )
                    .is_err()
                    {
                        failed += 1;
                    }
                }
                Err(_) => failed += 1,
            }
        }
        let end = cpu_seconds(UsageWho::RUSAGE_THREAD);
        (
            failed,
            end.0 - start.0,
            end.1 - start.1,
            t0.elapsed().as_secs_f64(),
        )
    });
    let Ok((failed, user, sys, elapsed)) = worker.join() else {
        eprintln!("the floor thread panicked");
        return 0.0;
    };
    let per_1k = |secs: f64| secs * 1e6 / count as f64;
    println!(
        "case=floor connections={count} per_s={:.0} cpu_ms_per_1k={:.1} (user {:.1} sys {:.1}) failed={failed}",
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
    tokio::time::sleep(WARMUP).await;

    let (run0, cpu0, t0) = (
        totals(&checker).0,
        cpu_seconds(UsageWho::RUSAGE_SELF),
        Instant::now(),
    );
    tokio::time::sleep(measure).await;
    let (run1, failed) = totals(&checker);
    let (cpu1, elapsed) = (
        cpu_seconds(UsageWho::RUSAGE_SELF),
        t0.elapsed().as_secs_f64(),
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
        "case={name} subjects={} checks_per_s={:.0} cpu_ms_per_1k={:.1} (user {:.1} sys {:.1}) cpu_pct_of_core={:.1} failed={failed} events={events} peak_rss_mb={:.1}",
        targets.len(),
        checks / elapsed,
        per_1k(cpu),
        per_1k(user),
        per_1k(sys),
        cpu / elapsed * 100.0,
        peak_rss_mb(),
    );
    checker.shutdown().await;
    per_1k(cpu)
}
