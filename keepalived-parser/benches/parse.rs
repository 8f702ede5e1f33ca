//! Parse+validate time of dpvsd versus `keepalived -t` on the same generated
//! file (10,000 virtual servers × 10 real servers with TCP_CHECKs), in one
//! run: `cargo bench -p keepalived-parser --bench parse`.
//!
//! The machine may be loaded, so the runs of the two alternate (a change in
//! load affects both alike), each is repeated (`BENCH_RUNS`, default 7) and
//! the best is kept, and CPU time (user + system, from `getrusage`: this
//! thread for dpvsd, the waited-for child for keepalived) is reported next to
//! wall time, since it hardly depends on how busy the other cores are.
//! Prints `parse_ms=... keepalived_t_ms=... ratio=... parse_cpu_ms=...
//! keepalived_t_cpu_ms=... cpu_ratio=...` (ratios = keepalived / dpvsd; the
//! goal is ≥ 5); `n/a` for keepalived when it is not installed. `BENCH_VS` /
//! `BENCH_RS` change the size.

mod support {
    pub mod genconf;
}

use keepalived_parser::{config_test_exit_code, load_file, LoadOptions};
use nix::sys::resource::{getrusage, UsageWho};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `keepalived` on PATH or in the usual sbin directories.
fn keepalived_binary() -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join("keepalived"))
        .find(|p| p.is_file());
    found.map(|p| p.display().to_string())
}

/// User + system CPU time used so far by `who`.
fn cpu(who: UsageWho) -> Duration {
    let usage = getrusage(who).unwrap_or_else(|e| panic!("getrusage: {e}"));
    let d = |t: nix::sys::time::TimeVal| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let micros = u64::try_from(t.tv_usec()).unwrap_or(0);
        Duration::from_secs(secs) + Duration::from_micros(micros)
    };
    d(usage.user_time()) + d(usage.system_time())
}

/// The best (least) wall and CPU time seen.
#[derive(Debug, Clone, Copy)]
struct Best {
    wall: Duration,
    cpu: Duration,
}

impl Best {
    fn new() -> Self {
        Best {
            wall: Duration::MAX,
            cpu: Duration::MAX,
        }
    }

    fn add(&mut self, wall: Duration, cpu: Duration) {
        self.wall = self.wall.min(wall);
        self.cpu = self.cpu.min(cpu);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let (vs, rs) = (env_num("BENCH_VS", 10_000), env_num("BENCH_RS", 10));
    let runs = env_num("BENCH_RUNS", 7).max(1);
    let file = std::env::temp_dir().join(format!("dpvsd-bench-{vs}x{rs}.conf"));
    let text = support::genconf::generate(vs, rs);
    std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    println!(
        "config: {} ({vs} virtual servers x {rs} real servers with TCP_CHECK, {} lines, {} KiB)",
        file.display(),
        text.lines().count(),
        text.len() / 1024
    );

    let opts = LoadOptions {
        config_id: Some("bench".into()),
    };
    let kad = keepalived_binary();
    let (mut ours, mut theirs) = (Best::new(), Best::new());
    let (mut exit, mut kad_exit) = (0, None);
    for _ in 0..runs {
        let (start, cpu_start) = (Instant::now(), cpu(UsageWho::RUSAGE_THREAD));
        let loaded = load_file(&file, &opts).unwrap_or_else(|e| panic!("{e}"));
        exit = config_test_exit_code(&loaded);
        ours.add(start.elapsed(), cpu(UsageWho::RUSAGE_THREAD) - cpu_start);
        let real: usize = loaded
            .model
            .virtual_servers
            .iter()
            .map(|v| v.real_servers.len())
            .sum();
        assert_eq!(loaded.model.virtual_servers.len(), vs as usize);
        assert_eq!(real, (vs * rs) as usize);
        drop(loaded);
        if let Some(kad) = &kad {
            let (start, cpu_start) = (Instant::now(), cpu(UsageWho::RUSAGE_CHILDREN));
            let status = Command::new(kad)
                .arg("-t")
                .arg("-f")
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("{kad}: {e}"));
            theirs.add(start.elapsed(), cpu(UsageWho::RUSAGE_CHILDREN) - cpu_start);
            kad_exit = status.code();
        }
    }
    assert_eq!(exit, 0, "the generated config should be clean");
    let (parse_ms, parse_cpu_ms) = (ms(ours.wall), ms(ours.cpu));
    println!(
        "dpvsd load_file (parse+validate), best of {runs}: {parse_ms:.1} ms wall, {parse_cpu_ms:.1} ms CPU"
    );
    let Some(kad) = kad else {
        println!(
            "parse_ms={parse_ms:.1} keepalived_t_ms=n/a ratio=n/a \
             parse_cpu_ms={parse_cpu_ms:.1} keepalived_t_cpu_ms=n/a cpu_ratio=n/a"
        );
        return;
    };
    let (kad_ms, kad_cpu_ms) = (ms(theirs.wall), ms(theirs.cpu));
    println!(
        "{kad} -t -f FILE, best of {runs}: {kad_ms:.1} ms wall, {kad_cpu_ms:.1} ms CPU (exit {kad_exit:?})"
    );
    println!(
        "parse_ms={parse_ms:.1} keepalived_t_ms={kad_ms:.1} ratio={:.1} \
         parse_cpu_ms={parse_cpu_ms:.1} keepalived_t_cpu_ms={kad_cpu_ms:.1} cpu_ratio={:.1}",
        kad_ms / parse_ms,
        kad_cpu_ms / parse_cpu_ms
    );
}
