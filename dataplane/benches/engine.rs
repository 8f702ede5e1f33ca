//! Engine and scheduler benchmarks, sans I/O: prebuilt 64-byte frames go
//! straight into [`Engine::handle`].
//!
//! Cases (one packet = one criterion element, so criterion reports pps):
//! * `null`: copy the frame, parse Ethernet, swap MACs — the baseline;
//! * `fnat/16k`, `fnat/1m`: data packets of established FNAT flows, cycling
//!   through 16 Ki / 1 Mi connections (created by SYNs beforehand);
//! * `fnat/new`: SYNs of flows not in the table, each creating a connection,
//!   with time advancing (16 packets per ms) and the expiry sweep running
//!   every 32-packet burst, as a worker does.
//! * `fnat/16k-burst`, `fnat/1m-burst`, `fnat/new-burst`: the same traffic in
//!   32-frame bursts through [`Engine::handle_burst`] (the worker's path,
//!   which prefetches a whole burst's table lines before using them); each
//!   burst is first copied into the burst's frame buffers, as a receive does.
//! * `sched/*`: one pick of a 16-server table per element.
//! * `steer/*`: one [`Steering::owner`] decision per element (two
//!   workers) over 64 frames: FNAT replies to a local address over IPv4,
//!   over IPv6, over IPv6 behind a destination options header, and IPv4
//!   client traffic that stays.
//!
//! A counting global allocator checks that the measured loops allocate
//! nothing; the run fails otherwise. After criterion's report a summary
//! prints `case=... mpps=... ratio=... allocs=0 cpu_mpps=...` (ratio:
//! throughput relative to `null`; for `fnat/new*`, mpps is millions of new
//! connections per second; `cpu_mpps` divides by the thread's on-CPU time
//! instead of wall time, which matters when other processes share the core), `sched=... ns_per_pick=... allocs=0`
//! and `steer=... ns_per_frame=... cpu_ns_per_frame=...`.
//!
//! `cargo bench -p dataplane --bench engine [-- <case name filter>]`

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dataplane::bench::{on_cpu, rs, Case, Kind};
use dataplane::engine::Snapshot;
use dataplane::sched::{addr_hash, SchedServer, SchedTable};
use dataplane::steer::{local_port_range, Steering};
use dataplane::{Forwarding, Scheduler};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Allocations (and reallocations) so far, for [`Case::measure`].
fn allocs() -> u64 {
    let s = GLOBAL.stats();
    (s.allocations + s.reallocations) as u64
}

struct SchedCase {
    name: &'static str,
    table: SchedTable,
    hashes: Vec<u32>,
    picks: u64,
    elapsed: Duration,
    allocs: usize,
}

impl SchedCase {
    fn new(name: &'static str, scheduler: Scheduler) -> SchedCase {
        let servers: Vec<SchedServer> = (1..=16)
            .map(|i| SchedServer {
                id: SocketAddr::new(rs(i).into(), 8080),
                weight: i,
            })
            .collect();
        SchedCase {
            name,
            table: SchedTable::build_servers(scheduler, &servers),
            hashes: (0..4096u32)
                .map(|i| addr_hash(Ipv4Addr::from(0x0b00_0000 + i * 7919)))
                .collect(),
            picks: 0,
            elapsed: Duration::ZERO,
            allocs: 0,
        }
    }

    fn measure(&mut self, iters: u64) -> Duration {
        let region = Region::new(GLOBAL);
        let start = Instant::now();
        for cursor in 0..iters {
            let h = self.hashes[cursor as usize & 4095];
            black_box(self.table.pick(black_box(cursor), h));
        }
        let elapsed = start.elapsed();
        let stats = region.change();
        self.allocs += stats.allocations + stats.reallocations;
        self.picks += iters;
        self.elapsed += elapsed;
        elapsed
    }
}

/// 64 frames of one `steer/*` case: `kind` 0 IPv4 FNAT replies to
/// 10.0.0.200, 1 the same over IPv6 to fd00::200, 2 with a destination
/// options header, 3 IPv4 client traffic to a VIP (stays).
fn steer_frames(kind: u8) -> Vec<Vec<u8>> {
    let (lo, _) = local_port_range(0, 1);
    (0..64u16)
        .map(|i| {
            let port = (lo + i * 1021 % (u16::MAX - lo)).to_be_bytes();
            let mut tcp = [0u8; 20];
            tcp[..4].copy_from_slice(&[0, 80, port[0], port[1]]);
            tcp[12] = 0x50;
            let mut f = vec![0u8; 12];
            if kind == 0 || kind == 3 {
                let dst = if kind == 0 { 200 } else { 100 };
                f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
                f.extend_from_slice(&[10, 1, 0, (i % 8) as u8, 10, 0, 0, dst]);
                f.extend_from_slice(&tcp);
                return f;
            }
            let ext: &[u8] = if kind == 2 {
                &[6, 0, 1, 4, 0, 0, 0, 0]
            } else {
                &[]
            };
            let len = (ext.len() + tcp.len()) as u16;
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&len.to_be_bytes());
            f.extend_from_slice(&[if kind == 2 { 60 } else { 6 }, 64]);
            f.extend_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, i % 8).octets());
            f.extend_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x200).octets());
            f.extend_from_slice(ext);
            f.extend_from_slice(&tcp);
            f
        })
        .collect()
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();

    let specs: [(&str, Kind, bool, u32, usize); 7] = [
        ("null", Kind::Null, false, 1 << 14, 16),
        ("fnat/16k", Kind::Established, false, 1 << 14, 1 << 14),
        ("fnat/1m", Kind::Established, false, 1 << 20, 1 << 20),
        ("fnat/new", Kind::New, false, 1 << 20, 1 << 20),
        ("fnat/16k-burst", Kind::Established, true, 1 << 14, 1 << 14),
        ("fnat/1m-burst", Kind::Established, true, 1 << 20, 1 << 20),
        ("fnat/new-burst", Kind::New, true, 1 << 20, 1 << 20),
    ];
    let mut results: Vec<(&str, f64, Option<f64>, usize)> = Vec::new();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    // Build only the cases criterion will run: with a filter (`-- fnat/1m`),
    // the others' million-flow setups are skipped.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    for (name, kind, burst, flows, capacity) in specs {
        if !format!("engine/{name}").contains(filter.trim_end_matches('$')) {
            continue;
        }
        let mut case = Case::new(name, kind, Forwarding::Fnat, burst, flows, capacity);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| case.measure(iters, &allocs))
        });
        if case.packets > 0 {
            assert_eq!(case.not_forwarded, 0, "{name}: packets not forwarded");
            results.push((name, case.mpps(), case.cpu_mpps(), case.allocs as usize));
        }
    }
    group.finish();

    let mut sched_results = Vec::new();
    let mut group = c.benchmark_group("sched");
    group.throughput(Throughput::Elements(1));
    for (name, scheduler) in [
        ("wrr", Scheduler::Wrr),
        ("sh", Scheduler::Sh),
        ("mh", Scheduler::Mh),
        ("conhash", Scheduler::Conhash),
    ] {
        let mut case = SchedCase::new(name, scheduler);
        group.bench_function(name, |b| b.iter_custom(|iters| case.measure(iters)));
        if case.picks > 0 {
            let ns = case.elapsed.as_secs_f64() * 1e9 / case.picks as f64;
            sched_results.push((case.name, ns, case.allocs));
        }
    }
    group.finish();

    let mut snap = Snapshot::default();
    snap.v4.local_addrs = vec![Ipv4Addr::new(10, 0, 0, 200)];
    snap.v6.local_addrs = vec![Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x200)];
    let rules = Steering::from_snapshot(&snap, 2);
    let mut steer_results = Vec::new();
    let mut group = c.benchmark_group("steer");
    group.throughput(Throughput::Elements(1));
    for (name, kind) in [("v4", 0), ("v6", 1), ("v6-ext", 2), ("v4-stays", 3)] {
        let frames = steer_frames(kind);
        let moved = frames
            .iter()
            .filter(|f| rules.owner(f, 0) != dataplane::steer::Owner::Here)
            .count();
        assert_eq!(moved > 0, kind != 3, "steer/{name}: {moved} of 64 moved");
        let (mut n, mut elapsed, mut cpu) = (0u64, Duration::ZERO, Some(Duration::ZERO));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let cpu_start = on_cpu();
                let start = Instant::now();
                for i in 0..iters {
                    let f = &frames[i as usize & 63];
                    black_box(rules.owner(black_box(f), 0));
                }
                let took = start.elapsed();
                let on = cpu_start.zip(on_cpu()).map(|(a, b)| b.saturating_sub(a));
                cpu = cpu.zip(on).map(|(a, b)| a + b);
                n += iters;
                elapsed += took;
                took
            })
        });
        if n > 0 {
            let ns = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
            steer_results.push((name, ns(elapsed), cpu.map(ns)));
        }
    }
    group.finish();

    let null_mpps = results.iter().find(|r| r.0 == "null").map(|r| r.1);
    println!();
    for (name, mpps, cpu_mpps, allocs) in &results {
        let ratio = null_mpps.map_or(String::from("n/a"), |n| format!("{:.3}", mpps / n));
        let cpu = cpu_mpps.map_or(String::new(), |c| format!(" cpu_mpps={c:.2}"));
        let unit = if name.starts_with("fnat/new") {
            " (new conns/s = pps)"
        } else {
            ""
        };
        println!("case={name} mpps={mpps:.2} ratio={ratio} allocs={allocs}{cpu}{unit}");
    }
    for (name, ns, allocs) in &sched_results {
        println!("sched={name} ns_per_pick={ns:.1} allocs={allocs}");
    }
    for (name, ns, cpu) in &steer_results {
        let cpu = cpu.map_or(String::new(), |c| format!(" cpu_ns_per_frame={c:.1}"));
        println!("steer={name} ns_per_frame={ns:.1}{cpu}");
    }
    let allocating: Vec<&str> = results
        .iter()
        .map(|r| (r.0, r.3))
        .chain(sched_results.iter().map(|r| (r.0, r.2)))
        .filter(|r| r.1 > 0)
        .map(|r| r.0)
        .collect();
    assert!(
        allocating.is_empty(),
        "the hot path allocated in {allocating:?}"
    );
    c.final_summary();
}
