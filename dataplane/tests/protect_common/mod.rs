//! A one-service FNAT engine fed real frames, for the protection tests.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::engine::{Engine, ServerSnap, Snapshot, Snapshot4, Verdict};
use dataplane::io::Burst;
use dataplane::stats::{DropCounters, Traffic};
use dataplane::wire::MacAddr;
use dataplane::Protocol;
use etherparse::{PacketBuilder, TransportSlice};

mod checked;
pub use checked::checked_ipv4;

use dataplane::bench::{arp_reply, server, service};
pub use dataplane::bench::{CLIENT_MAC, LB_MAC, LIP, VIP};

pub fn rs(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 98, 0, 1)) + i as u32)
}

pub fn rs_mac(i: usize) -> MacAddr {
    MacAddr([2, 0x98, 0, 0, 0, i as u8])
}

pub struct Lab {
    pub engine: Engine,
    pub ctl: Burst,
    pub drops: Arc<DropCounters>,
    pub now: u64,
    stats: Vec<Arc<Traffic>>,
}

fn snapshot(stats: &[Arc<Traffic>], edit: &dyn Fn(&mut Snapshot)) -> Arc<Snapshot> {
    let servers = stats
        .iter()
        .enumerate()
        .map(|(i, s)| ServerSnap {
            addr: rs(i),
            port: 8080,
            stats: Arc::clone(s),
        })
        .collect();
    let svc = |port, protocol, servers| service(VIP, (port, protocol), servers, vec![LIP]);
    let udp_servers = (0..stats.len()).map(|i| server(rs(i), 5353)).collect();
    let mut snap = Snapshot {
        v4: Snapshot4 {
            services: vec![
                svc(80, Protocol::Tcp, servers),
                svc(53, Protocol::Udp, udp_servers),
            ],
            owned_vips: vec![VIP],
            local_addrs: vec![LIP],
            neighbours: (0..stats.len()).map(|i| (rs(i), LIP)).collect(),
            ..Snapshot4::default()
        },
        ..Snapshot::default()
    };
    snap.v4.lookup.insert((VIP, 80, 6), 0);
    snap.v4.lookup.insert((VIP, 53, 17), 1);
    edit(&mut snap);
    // Per-service vectors given for the TCP service apply to UDP too.
    if let Some(a) = snap.v4.acl.first().cloned() {
        snap.v4.acl.resize(2, a);
    }
    Arc::new(snap)
}

impl Lab {
    /// `servers` real servers behind VIP:80/TCP (and VIP:53/UDP), rr.
    pub fn new(servers: usize, edit: impl Fn(&mut Snapshot)) -> Lab {
        let stats = (0..servers).map(|_| Arc::new(Traffic::new(1))).collect();
        Lab::build(0, stats, &edit)
    }

    /// Worker `worker` of two, one server counted in `stats`.
    pub fn with_stats(worker: usize, stats: Arc<Traffic>, edit: impl Fn(&mut Snapshot)) -> Lab {
        Lab::build(worker, vec![stats], &edit)
    }

    fn build(worker: usize, stats: Vec<Arc<Traffic>>, edit: &dyn Fn(&mut Snapshot)) -> Lab {
        let drops = Arc::new(DropCounters::default());
        let ports = (
            10_000 + worker as u16 * 10_000,
            19_999 + worker as u16 * 10_000,
        );
        let mut engine = Engine::new(worker, LB_MAC, 1024, ports, Arc::clone(&drops));
        let mut ctl = Burst::new(64);
        engine.set_snapshot(snapshot(&stats, edit), 0, &mut ctl);
        for i in 0..stats.len() {
            let mut f = arp_reply(rs(i), rs_mac(i));
            engine.handle(&mut f, 0, &mut ctl);
        }
        ctl.clear();
        Lab {
            engine,
            ctl,
            drops,
            now: 1,
            stats,
        }
    }

    /// Publishes the snapshot again with `edit` applied.
    pub fn republish(&mut self, edit: impl Fn(&mut Snapshot)) {
        let snap = snapshot(&self.stats, &edit);
        self.engine.set_snapshot(snap, self.now, &mut self.ctl);
        self.ctl.clear();
    }

    /// Handles one frame (it may grow); returns the verdict and the frame.
    pub fn send(&mut self, frame: Vec<u8>) -> (Verdict, Vec<u8>) {
        let mut b = Burst::new(1);
        assert!(b.push(&frame));
        let f = &mut b.frames_mut()[0];
        let v = self.engine.handle_frame(f, self.now, &mut self.ctl);
        (v, f.data().to_vec())
    }

    /// Advances the clock to `now_ms` and sweeps the whole table.
    pub fn expire(&mut self, now_ms: u64) {
        self.now = now_ms;
        self.engine
            .housekeeping(now_ms, usize::MAX / 2, &mut self.ctl);
    }
}

/// A client TCP segment to VIP:80.
pub struct Seg {
    pub client: Ipv4Addr,
    pub port: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub rst: bool,
    pub fin: bool,
    pub payload: Vec<u8>,
}

pub fn seg(s: Seg) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
        .ipv4(s.client.octets(), VIP.octets(), 64)
        .tcp(s.port, 80, s.seq, 65535);
    let f = Flags {
        syn: s.syn,
        ack: s.ack,
        rst: s.rst,
        fin: s.fin,
    };
    finish(b, f, &s.payload)
}

/// Sets flags `f` on a segment under construction and writes it.
fn finish(
    mut b: etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    if f.syn {
        b = b.syn();
    }
    if let Some(a) = f.ack {
        b = b.ack(a);
    }
    if f.rst {
        b = b.rst();
    }
    if f.fin {
        b = b.fin();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build tcp");
    out
}

pub fn syn(client: Ipv4Addr, port: u16) -> Vec<u8> {
    seg(Seg {
        client,
        port,
        seq: 1000,
        ack: None,
        syn: true,
        rst: false,
        fin: false,
        payload: vec![],
    })
}

pub fn ack(client: Ipv4Addr, port: u16) -> Vec<u8> {
    second(client, port, false)
}

pub fn rst(client: Ipv4Addr, port: u16) -> Vec<u8> {
    second(client, port, true)
}

/// The client's second segment (after [`syn`]): an ACK, or a RST.
fn second(client: Ipv4Addr, port: u16, rst: bool) -> Vec<u8> {
    seg(Seg {
        client,
        port,
        seq: 1001,
        ack: Some(7),
        syn: false,
        rst,
        fin: false,
        payload: vec![],
    })
}

pub fn udp(client: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
        .ipv4(client.octets(), VIP.octets(), 64)
        .udp(port, 53)
        .write(&mut out, b"q")
        .expect("build udp");
    out
}

/// A forwarded TCP segment, with its checksums verified by etherparse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub rst: bool,
    pub fin: bool,
    pub window: u16,
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

pub fn tcp_of(frame: &[u8]) -> Tcp {
    let (p, eth, ip) = checked_ipv4(frame);
    let h = ip.header();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not tcp")
    };
    let want = t
        .to_header()
        .calc_checksum_ipv4(&h.to_header(), t.payload())
        .expect("csum");
    assert_eq!(want, t.checksum(), "TCP checksum");
    Tcp {
        src_mac: MacAddr(eth.source()),
        dst_mac: MacAddr(eth.destination()),
        src: Ipv4Addr::from(h.source()),
        dst: Ipv4Addr::from(h.destination()),
        sport: t.source_port(),
        dport: t.destination_port(),
        seq: t.sequence_number(),
        ack: t.ack().then(|| t.acknowledgment_number()),
        syn: t.syn(),
        rst: t.rst(),
        fin: t.fin(),
        window: t.window_size(),
        options: t.options().to_vec(),
        payload: t.payload().to_vec(),
    }
}

/// Flags of a hand-made segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: Option<u32>,
    pub rst: bool,
    pub fin: bool,
}

/// Any TCP segment `src → dst` to the load balancer's MAC, optionally with
/// an MSS option.
pub fn tcp_frame(
    src_mac: MacAddr,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    f: Flags,
    mss: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let opts = mss.map(|m| {
        let [a, b] = m.to_be_bytes();
        [2, 4, a, b]
    });
    let opts = opts.as_ref().map_or(&[][..], |o| &o[..]);
    tcp_frame_with(src_mac, src, dst, (seq, 29200), f, opts, payload)
}

/// [`tcp_frame`] with any options (whole words) and window.
pub fn tcp_frame_with(
    src_mac: MacAddr,
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    (seq, window): (u32, u16),
    f: Flags,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src_mac.0, LB_MAC.0)
        .ipv4(src.octets(), dst.octets(), 64)
        .tcp(sport, dport, seq, window);
    if !options.is_empty() {
        b = b.options_raw(options).expect("options");
    }
    finish(b, f, payload)
}
