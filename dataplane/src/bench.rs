//! Benchmark building blocks shared by `benches/engine.rs` (criterion),
//! the DPDK benchmark ([`crate::io::dpdk::bench`]) and `dpvsd bench`:
//! one service on a VIP with 17 resolved real servers, 64-byte client
//! frames for N flows, and a [`Case`] that drives an [`Engine`] with them
//! (frame by frame or in bursts, as a worker does). Plain code: no
//! criterion, no allocator; callers that count allocations pass a counter.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Engine, ServerSnap, ServiceSnap, Snapshot, Snapshot4, Verdict};
use crate::io::Burst;
use crate::prefetch::prefetch;
use crate::sched::SchedTable;
use crate::wire::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, MacAddr};
use crate::{Forwarding, Protocol, Scheduler, ServiceKey};

pub const LB_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 1]);
pub const CLIENT_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 2]);
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
pub const LIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 200);
pub const SERVERS: u32 = 17;
pub const FRAME: usize = 64;
/// Frames per burst (the worker's).
pub const BURST: usize = crate::worker::BURST;
const SWEEP_BUDGET: usize = 1024;

/// Real server `i`.
pub fn rs(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 98, 0, 1)) + i)
}

/// Real server `addr:port` with fresh counters.
pub fn server<A>(addr: A, port: u16) -> ServerSnap<A> {
    ServerSnap {
        addr,
        port,
        stats: Arc::default(),
    }
}

/// Service `addr:port`/`protocol` with fresh counters, round robin over
/// `servers` (equal weights) and local addresses `lips`; shared by the
/// benchmarks, the engine's tests and the fuzz target.
pub fn service<A>(
    addr: impl Into<IpAddr>,
    (port, protocol): (u16, Protocol),
    servers: Vec<ServerSnap<A>>,
    lips: Vec<A>,
) -> ServiceSnap<A> {
    let weights = vec![1; servers.len()];
    ServiceSnap {
        key: ServiceKey {
            addr: addr.into(),
            port,
            protocol,
        },
        stats: Arc::default(),
        servers,
        table: SchedTable::build(Scheduler::Rr, &weights),
        local_addrs: lips,
    }
}

/// One TCP service VIP:80 forwarding with `mode` to [`SERVERS`] servers
/// on :8080 (round robin), LIP as local (FNAT) and tunnel source.
pub fn snapshot(mode: Forwarding) -> Arc<Snapshot> {
    let servers = (0..SERVERS).map(|i| server(rs(i), 8080)).collect();
    let mut v4 = Snapshot4 {
        services: vec![service(VIP, (80, Protocol::Tcp), servers, vec![LIP])],
        owned_vips: vec![VIP],
        local_addrs: vec![LIP],
        neighbours: (0..SERVERS).map(|i| (rs(i), LIP)).collect(),
        forwarding: vec![mode],
        nat_servers: if mode == Forwarding::Nat {
            (0..SERVERS).map(rs).collect()
        } else {
            Vec::new()
        },
        ..Snapshot4::default()
    };
    v4.lookup.insert((VIP, 80, 6), 0);
    Arc::new(Snapshot {
        v4,
        ..Snapshot::default()
    })
}

fn csum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Client `i`'s 64-byte frame to VIP:80 (a SYN or a bare ACK), checksums
/// set. Clients are 11.0.0.0 + i/1024, ports 10000 + i%1024.
pub fn client_frame(i: u32, syn: bool) -> [u8; FRAME] {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(11, 0, 0, 0)) + (i >> 10));
    let sport = 10_000 + (i & 1023) as u16;
    let mut f = [0u8; FRAME];
    f[..6].copy_from_slice(&LB_MAC.0);
    f[6..12].copy_from_slice(&CLIENT_MAC.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&VIP.octets());
    let c = csum(ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    if !syn {
        tcp[8..12].copy_from_slice(&1u32.to_be_bytes());
    }
    tcp[12] = 5 << 4;
    tcp[13] = if syn { 0x02 } else { 0x10 };
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let mut pseudo = 0u32;
    for w in [src.octets(), VIP.octets()] {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
        pseudo += u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    pseudo += 6 + 20;
    let c = csum(&f[34..54], pseudo);
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ARP reply from `from` (`mac`) to the LIP.
pub fn arp_reply(from: Ipv4Addr, mac: MacAddr) -> [u8; FRAME] {
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

/// An engine (worker 0, all local ports) with [`snapshot`]`(mode)`
/// published and every real server resolved.
pub fn engine(mode: Forwarding, capacity: usize) -> (Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, capacity, (1024, 65535), Arc::default());
    let mut ctl = Burst::new(64);
    e.set_snapshot(snapshot(mode), 0, &mut ctl);
    for i in 0..SERVERS {
        let mut f = arp_reply(rs(i), MacAddr([2, 0x98, 0, 0, 0, i as u8]));
        e.handle(&mut f, 0, &mut ctl);
    }
    ctl.clear();
    (e, ctl)
}

/// What a case sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Parse Ethernet and swap MACs: the baseline.
    Null,
    /// Data packets of established connections.
    Established,
    /// SYNs of new flows, time advancing and the expiry sweep running.
    New,
}

/// The baseline: parse Ethernet and send the frame back where it came from.
#[inline]
pub fn null(frame: &mut [u8]) -> bool {
    let Ok(mut eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
    true
}

/// This thread's on-CPU time so far (`/proc/thread-self/schedstat`).
pub fn on_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

/// A prebuilt frame on its own cache line (as a NIC's receive buffer), so
/// receiving it reads one line, not two.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct RxFrame([u8; FRAME]);

/// One case's state, kept across measurements so flows stay established
/// and time keeps moving forward.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub kind: Kind,
    /// Through [`Engine::handle_burst`] rather than frame by frame.
    pub burst: bool,
    pub engine: Engine,
    ctl: Burst,
    rx: Burst,
    /// One frame buffer, with room to grow (TUN), for frame-by-frame cases.
    one: Burst,
    frames: Vec<RxFrame>,
    next: usize,
    now_ms: u64,
    pub not_forwarded: u64,
    pub packets: u64,
    pub elapsed: Duration,
    /// On-CPU time of the measured loops, when the kernel reports it.
    pub on_cpu: Option<Duration>,
    pub allocs: u64,
}

impl Case {
    /// `flows` flows of `mode` traffic in a table of `capacity`.
    ///
    /// # Panics
    /// Setting up the established flows failed (a bug in the engine).
    pub fn new(
        name: &str,
        kind: Kind,
        mode: Forwarding,
        burst: bool,
        flows: u32,
        capacity: usize,
    ) -> Case {
        let (engine, ctl) = engine(mode, capacity);
        let frames = (0..flows)
            .map(|i| RxFrame(client_frame(i, kind == Kind::New)))
            .collect();
        let mut case = Case {
            name: name.to_string(),
            kind,
            burst,
            engine,
            ctl,
            rx: Burst::new(BURST),
            one: Burst::new(1),
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
                case.one.clear();
                case.one.push(&client_frame(i, true));
                let f = &mut case.one.frames_mut()[0];
                let v = case.engine.handle_frame(f, case.now_ms, &mut case.ctl);
                assert_eq!(v, Verdict::Forward, "{name}: SYN {i}");
            }
            assert_eq!(case.engine.conn_count(), flows as usize);
            case.step(u64::from(flows));
            case.not_forwarded = 0;
        }
        case
    }

    #[inline]
    fn packet(&mut self) {
        self.one.clear();
        self.one.push(&self.frames[self.next].0);
        self.next += 1;
        if self.next == self.frames.len() {
            self.next = 0;
        }
        let f = &mut self.one.frames_mut()[0];
        let forwarded = match self.kind {
            Kind::Null => null(f.data_mut()),
            Kind::Established | Kind::New => {
                self.engine.handle_frame(f, self.now_ms, &mut self.ctl) == Verdict::Forward
            }
        };
        self.not_forwarded += u64::from(!black_box(forwarded));
    }

    /// Receives the next `n` frames into `rx` (a copy, as a receive does)
    /// and handles them as a burst.
    #[inline]
    fn burst(&mut self, n: usize) {
        self.rx.clear();
        let ahead = self.kind == Kind::New && self.frames.len() > 2 * n;
        for _ in 0..n {
            self.rx.push(&self.frames[self.next].0);
            if ahead {
                // New flows stream from a 64 MiB array: start loading the
                // next burst's frames, as a NIC's DMA (DDIO) or a driver's
                // receive prefetch delivers them, so the case measures
                // opening connections rather than this copy's DRAM misses.
                prefetch(&self.frames[(self.next + n) % self.frames.len()].0);
            }
            self.next += 1;
            if self.next == self.frames.len() {
                self.next = 0;
            }
        }
        let mut not_forwarded = 0;
        if self.kind == Kind::Null {
            for f in self.rx.frames_mut() {
                not_forwarded += u64::from(!null(f.data_mut()));
            }
            self.not_forwarded += black_box(not_forwarded);
            return;
        }
        self.engine.handle_burst(
            self.rx.frames_mut(),
            self.now_ms,
            &mut self.ctl,
            |_, verdict| not_forwarded += u64::from(verdict != Verdict::Forward),
        );
        self.not_forwarded += black_box(not_forwarded);
    }

    /// Handles `n` packets; for [`Kind::New`] in bursts with housekeeping.
    pub fn step(&mut self, n: u64) {
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

    /// Runs `iters` packets and returns the wall time; `allocs` reads the
    /// caller's allocation counter (before and after).
    pub fn measure(&mut self, iters: u64, allocs: &dyn Fn() -> u64) -> Duration {
        let cpu_start = on_cpu();
        let a0 = allocs();
        let start = Instant::now();
        self.step(iters);
        let elapsed = start.elapsed();
        self.allocs += allocs().saturating_sub(a0);
        let cpu = cpu_start.zip(on_cpu()).map(|(a, b)| b.saturating_sub(a));
        self.on_cpu = self.on_cpu.zip(cpu).map(|(a, b)| a + b);
        self.packets += iters;
        self.elapsed += elapsed;
        elapsed
    }

    /// Measures for about `secs` seconds (in rounds of 64 Ki packets).
    pub fn run_for(&mut self, secs: f64, allocs: &dyn Fn() -> u64) {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            self.measure(1 << 16, allocs);
        }
    }

    pub fn mpps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    /// Throughput per second of on-CPU time: what the core does when it is
    /// not shared with other processes.
    pub fn cpu_mpps(&self) -> Option<f64> {
        let t = self.on_cpu?.as_secs_f64();
        (t > 0.0).then(|| self.packets as f64 / t / 1e6)
    }

    /// `case=NAME mpps=… ratio=… allocs=… cpu_mpps=…` (`ratio` against
    /// `null_mpps`; `cps=` instead of `mpps=` for new connections).
    pub fn line(&self, null_mpps: Option<f64>) -> String {
        let ratio = null_mpps.map_or(String::from("n/a"), |n| format!("{:.3}", self.mpps() / n));
        let cpu = self
            .cpu_mpps()
            .map_or(String::new(), |c| format!(" cpu_mpps={c:.2}"));
        let rate = if self.kind == Kind::New {
            format!("cps={:.0}", self.mpps() * 1e6)
        } else {
            format!("mpps={:.2}", self.mpps())
        };
        format!(
            "case={} {rate} ratio={ratio} allocs={}{cpu}",
            self.name, self.allocs
        )
    }
}

/// The cases `dpvsd bench --backend mem` knows: (name, kind, mode, flows).
pub const MEM_CASES: [(&str, Kind, Forwarding, u32); 10] = [
    ("null", Kind::Null, Forwarding::Fnat, 1 << 14),
    ("fnat/16k", Kind::Established, Forwarding::Fnat, 1 << 14),
    ("fnat/1m", Kind::Established, Forwarding::Fnat, 1 << 20),
    ("fnat/new", Kind::New, Forwarding::Fnat, 1 << 20),
    ("dr/16k", Kind::Established, Forwarding::Dr, 1 << 14),
    ("dr/1m", Kind::Established, Forwarding::Dr, 1 << 20),
    ("nat/16k", Kind::Established, Forwarding::Nat, 1 << 14),
    ("nat/1m", Kind::Established, Forwarding::Nat, 1 << 20),
    ("tun/16k", Kind::Established, Forwarding::Tun, 1 << 14),
    ("tun/1m", Kind::Established, Forwarding::Tun, 1 << 20),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mem_case_forwards_everything() {
        for (name, kind, mode, _) in MEM_CASES {
            let mut c = Case::new(name, kind, mode, true, 256, 1024);
            c.measure(2048, &|| 0);
            assert_eq!(c.not_forwarded, 0, "{name}");
            assert!(c.line(Some(1.0)).starts_with(&format!("case={name} ")));
        }
    }
}
