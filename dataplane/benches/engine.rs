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
//!
//! A counting global allocator checks that the measured loops allocate
//! nothing; the run fails otherwise. After criterion's report a summary
//! prints `case=... mpps=... ratio=... allocs=0 cpu_mpps=...` (ratio:
//! throughput relative to `null`; for `fnat/new*`, mpps is millions of new
//! connections per second; `cpu_mpps` divides by the thread's on-CPU time
//! instead of wall time, which matters when other processes share the core) and `sched=... ns_per_pick=... allocs=0`.
//!
//! `cargo bench -p dataplane --bench engine [-- <case name filter>]`

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dataplane::engine::{Engine, ServerSnap, ServiceSnap, Snapshot, Verdict};
use dataplane::io::Burst;
use dataplane::sched::{addr_hash, SchedServer, SchedTable};
use dataplane::wire::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, MacAddr};
use dataplane::{Protocol, Scheduler, ServiceKey};
use etherparse::PacketBuilder;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const LB_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 1]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 2]);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 200);
/// 17 real servers: with 64 512 local ports per server, 1 Mi flows fit and
/// the round-robin and port sequences do not collide.
const SERVERS: u32 = 17;
const FRAME: usize = 64;
const BURST: usize = 32;
const SWEEP_BUDGET: usize = 1024;

fn rs(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 98, 0, 1)) + i)
}

fn snapshot() -> Arc<Snapshot> {
    let servers = (0..SERVERS)
        .map(|i| ServerSnap {
            addr: rs(i),
            port: 8080,
            stats: Arc::default(),
        })
        .collect();
    let mut snap = Snapshot {
        services: vec![ServiceSnap {
            key: ServiceKey {
                addr: VIP.into(),
                port: 80,
                protocol: Protocol::Tcp,
            },
            stats: Arc::default(),
            servers,
            table: SchedTable::build(Scheduler::Rr, &[1; SERVERS as usize]),
            local_addrs: vec![LIP],
        }],
        owned_vips: vec![VIP],
        local_addrs: vec![LIP],
        neighbours: (0..SERVERS).map(|i| (rs(i), LIP)).collect(),
        ..Snapshot::default()
    };
    snap.lookup.insert((VIP, 80, 6), 0);
    Arc::new(snap)
}

/// Client `i`'s frame to the VIP: a SYN or a bare ACK, padded to 64 bytes.
fn client_frame(i: u32, syn: bool) -> [u8; FRAME] {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(11, 0, 0, 0)) + (i >> 10));
    let sport = 10_000 + (i & 1023) as u16;
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
        .ipv4(src.octets(), VIP.octets(), 64)
        .tcp(sport, 80, 1000, 65535);
    b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::with_capacity(FRAME);
    b.write(&mut out, &[]).expect("build tcp");
    let mut f = [0u8; FRAME];
    f[..out.len()].copy_from_slice(&out);
    f
}

fn arp_reply(from: Ipv4Addr, mac: MacAddr) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(LB_MAC);
    eth.set_src_addr(mac);
    eth.set_ethertype(EtherType::Arp);
    let repr = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: from,
        target_hardware_addr: LB_MAC,
        target_protocol_addr: LIP,
    };
    repr.emit(&mut ArpPacket::new_unchecked(
        &mut f[14..14 + repr.buffer_len()],
    ));
    f
}

/// An engine with the service published and every real server resolved.
fn engine(capacity: usize) -> (Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, capacity, (1024, 65535), Arc::default());
    let mut ctl = Burst::new(64);
    e.set_snapshot(snapshot(), 0, &mut ctl);
    for i in 0..SERVERS {
        let mut f = arp_reply(rs(i), MacAddr([2, 0x98, 0, 0, 0, i as u8]));
        e.handle(&mut f, 0, &mut ctl);
    }
    ctl.clear();
    (e, ctl)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Established,
    New,
}

/// One case's state, kept across criterion's calls so flows stay established
/// and time keeps moving forward.
struct Case {
    name: &'static str,
    kind: Kind,
    /// Through [`Engine::handle_burst`] rather than frame by frame.
    burst: bool,
    engine: Engine,
    ctl: Burst,
    rx: Burst,
    frames: Vec<[u8; FRAME]>,
    next: usize,
    now_ms: u64,
    not_forwarded: u64,
    packets: u64,
    elapsed: Duration,
    /// On-CPU time of the measured loops (excludes time other processes
    /// ran on this core), when the kernel reports it.
    on_cpu: Option<Duration>,
    allocs: usize,
}

/// This thread's on-CPU time so far (`/proc/thread-self/schedstat`).
fn on_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

impl Case {
    fn new(name: &'static str, kind: Kind, burst: bool, flows: u32, capacity: usize) -> Case {
        let (engine, ctl) = engine(capacity);
        let frames = (0..flows)
            .map(|i| client_frame(i, kind == Kind::New))
            .collect();
        let mut case = Case {
            name,
            kind,
            burst,
            engine,
            ctl,
            rx: Burst::new(BURST),
            frames,
            next: 0,
            now_ms: 1,
            not_forwarded: 0,
            packets: 0,
            elapsed: Duration::ZERO,
            on_cpu: Some(Duration::ZERO),
            allocs: 0,
        };
        if kind == Kind::Established {
            // SYNs create the connections; one round of data establishes them.
            for i in 0..flows {
                let mut syn = client_frame(i, true);
                let v = case.engine.handle(&mut syn, case.now_ms, &mut case.ctl);
                assert_eq!(v, Verdict::Forward, "{name}: SYN {i}");
            }
            assert_eq!(case.engine.conn_count(), flows as usize);
            case.step(flows as u64);
            case.not_forwarded = 0;
        }
        case
    }

    #[inline]
    fn packet(&mut self) {
        let mut buf = self.frames[self.next];
        self.next += 1;
        if self.next == self.frames.len() {
            self.next = 0;
        }
        let forwarded = match self.kind {
            Kind::Null => null(&mut buf),
            Kind::Established | Kind::New => {
                self.engine.handle(&mut buf, self.now_ms, &mut self.ctl) == Verdict::Forward
            }
        };
        self.not_forwarded += u64::from(!black_box(forwarded));
    }

    /// Receives the next `n` frames into `rx` and handles them as a burst.
    #[inline]
    fn burst(&mut self, n: usize) {
        self.rx.clear();
        for _ in 0..n {
            self.rx.push(&self.frames[self.next]);
            self.next += 1;
            if self.next == self.frames.len() {
                self.next = 0;
            }
        }
        let mut not_forwarded = 0;
        self.engine.handle_burst(
            self.rx.frames_mut(),
            self.now_ms,
            &mut self.ctl,
            |_, verdict| not_forwarded += u64::from(verdict != Verdict::Forward),
        );
        self.not_forwarded += black_box(not_forwarded);
    }

    /// Handles `n` packets; for `fnat/new` in bursts with housekeeping.
    fn step(&mut self, n: u64) {
        if self.kind != Kind::New && !self.burst {
            (0..n).for_each(|_| self.packet());
            return;
        }
        let mut left = n;
        while left > 0 {
            let burst = left.min(BURST as u64);
            if self.burst {
                self.burst(burst as usize);
            } else {
                (0..burst).for_each(|_| self.packet());
            }
            left -= burst;
            if self.kind != Kind::New {
                continue;
            }
            self.now_ms += 2;
            self.engine
                .housekeeping(self.now_ms, SWEEP_BUDGET, &mut self.ctl);
            self.ctl.clear();
        }
    }

    /// Criterion's measured loop: counts allocations while it runs.
    fn measure(&mut self, iters: u64) -> Duration {
        let cpu_start = on_cpu();
        let region = Region::new(GLOBAL);
        let start = Instant::now();
        self.step(iters);
        let elapsed = start.elapsed();
        let stats = region.change();
        let cpu = cpu_start.zip(on_cpu()).map(|(a, b)| b.saturating_sub(a));
        self.on_cpu = self.on_cpu.zip(cpu).map(|(a, b)| a + b);
        self.allocs += stats.allocations + stats.reallocations;
        self.packets += iters;
        self.elapsed += elapsed;
        elapsed
    }

    fn mpps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    /// Throughput per second of on-CPU time: what the core does when it is
    /// not shared (other helpers compile on this VM's two cores).
    fn cpu_mpps(&self) -> Option<f64> {
        let t = self.on_cpu?.as_secs_f64();
        (t > 0.0).then(|| self.packets as f64 / t / 1e6)
    }
}

/// The baseline: parse Ethernet and send the frame back where it came from.
#[inline]
fn null(frame: &mut [u8]) -> bool {
    let Ok(mut eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
    true
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
        let mut case = Case::new(name, kind, burst, flows, capacity);
        group.bench_function(name, |b| b.iter_custom(|iters| case.measure(iters)));
        if case.packets > 0 {
            assert_eq!(case.not_forwarded, 0, "{name}: packets not forwarded");
            results.push((case.name, case.mpps(), case.cpu_mpps(), case.allocs));
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
