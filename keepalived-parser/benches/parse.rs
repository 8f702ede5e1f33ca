//! Parse+validate time of dpvsd versus `keepalived -t` on the same generated
//! file (10,000 virtual servers × 10 real servers with TCP_CHECKs), best of
//! 7 each, alternating, in one run: `cargo bench -p keepalived-parser --bench parse`.
//! Prints `parse_ms=... keepalived_t_ms=... ratio=...` (ratio = keepalived /
//! dpvsd; the goal is ≥ 5); `keepalived_t_ms=n/a` when keepalived is not
//! installed. `BENCH_VS` / `BENCH_RS` change the size.

mod support {
    pub mod genconf;
}

use keepalived_parser::{config_test_exit_code, load_file, LoadOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 7;

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

fn main() {
    let (vs, rs) = (env_num("BENCH_VS", 10_000), env_num("BENCH_RS", 10));
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
    // The runs of the two alternate, so that a change in the machine's load
    // during the run affects both alike; the best of each is kept.
    let (mut parse, mut kad_t) = (Duration::MAX, Duration::MAX);
    let (mut exit, mut kad_exit) = (0, None);
    for _ in 0..RUNS {
        let start = Instant::now();
        let loaded = load_file(&file, &opts).unwrap_or_else(|e| panic!("{e}"));
        exit = config_test_exit_code(&loaded);
        parse = parse.min(start.elapsed());
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
            let start = Instant::now();
            let status = Command::new(kad)
                .arg("-t")
                .arg("-f")
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("{kad}: {e}"));
            kad_t = kad_t.min(start.elapsed());
            kad_exit = status.code();
        }
    }
    assert_eq!(exit, 0, "the generated config should be clean");
    let parse_ms = parse.as_secs_f64() * 1e3;
    println!("dpvsd load_file (parse+validate), best of {RUNS}: {parse_ms:.1} ms");
    let Some(kad) = kad else {
        println!("parse_ms={parse_ms:.1} keepalived_t_ms=n/a ratio=n/a");
        return;
    };
    let kad_ms = kad_t.as_secs_f64() * 1e3;
    println!("{kad} -t -f FILE, best of {RUNS}: {kad_ms:.1} ms (exit {kad_exit:?})");
    println!(
        "parse_ms={parse_ms:.1} keepalived_t_ms={kad_ms:.1} ratio={:.1}",
        kad_ms / parse_ms
    );
}
