use super::*;
use crate::bench::{server, service};
#[path = "../../tests/protect_common/checked.rs"]
mod checked;
use crate::command::{Protocol, Scheduler};
use checked::checked_ipv4;
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

const LB_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 1]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 2]);
const RS_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 3]);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const RS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 200);

fn snapshot() -> Arc<Snapshot> {
    let key = ServiceKey {
        addr: VIP.into(),
        port: 80,
        protocol: Protocol::Tcp,
    };
    let ukey = ServiceKey {
        addr: VIP.into(),
        port: 53,
        protocol: Protocol::Udp,
    };
    let svc = |key: ServiceKey, port| {
        service(
            key.addr,
            (key.port, key.protocol),
            vec![server(RS, port)],
            vec![LIP],
        )
    };
    let mut snap = Snapshot {
        v4: Snapshot4 {
            services: vec![svc(key, 8080), svc(ukey, 5353)],
            owned_vips: vec![VIP],
            local_addrs: vec![LIP],
            neighbours: vec![(RS, LIP)],
            ..Snapshot4::default()
        },
        ..Snapshot::default()
    };
    snap.v4.lookup.insert((VIP, 80, 6), 0);
    snap.v4.lookup.insert((VIP, 53, 17), 1);
    Arc::new(snap)
}

fn engine() -> (Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(snapshot(), 0, &mut ctl);
    (e, ctl)
}

fn arp(op: ArpOperation, smac: MacAddr, sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
    let mut ctl = Burst::new(1);
    push_arp(&mut ctl, smac, op, sip, MacAddr::default(), tip, LB_MAC);
    ctl.frames()[0].data().to_vec()
}

fn tcp(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    syn: bool,
    ack: bool,
    payload: &[u8],
) -> Vec<u8> {
    tcp_ttl(src, dst, syn, ack, payload, 64)
}

fn tcp_ttl(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    syn: bool,
    ack: bool,
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
        .ipv4(src.1.octets(), dst.1.octets(), ttl)
        .tcp(src.2, dst.2, 1000, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(7);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build tcp");
    out
}

/// The TCP header fields of a hand-made segment (`hop`: TTL or hop
/// limit).
pub(super) struct Seg<'a> {
    pub(super) seq: u32,
    pub(super) ack: Option<u32>,
    pub(super) syn: bool,
    pub(super) window: u16,
    pub(super) options: &'a [u8],
    pub(super) hop: u8,
}

/// An IPv4 TCP segment `src → dst` with header fields `s`.
fn seg4(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    s: &Seg,
    payload: &[u8],
) -> Vec<u8> {
    let ip =
        PacketBuilder::ethernet2(src.0 .0, dst.0 .0).ipv4(src.1.octets(), dst.1.octets(), s.hop);
    seg_on(ip, (src.2, dst.2), s, payload)
}

/// The TCP segment `ports` with header fields `s` on the IP header `ip`
/// (IPv4 or IPv6).
pub(super) fn seg_on(
    ip: etherparse::PacketBuilderStep<etherparse::IpHeaders>,
    (sport, dport): (u16, u16),
    s: &Seg,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = ip.tcp(sport, dport, s.seq, s.window);
    if s.syn {
        b = b.syn();
    }
    if let Some(a) = s.ack {
        b = b.ack(a);
    }
    if !s.options.is_empty() {
        b = b.options_raw(s.options).expect("options");
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build tcp");
    out
}

/// `frame` (a TCP segment at `l4_at`) with the TCP flag bits `bits` set
/// too (FIN 0x01, RST 0x04), its checksum adjusted.
pub(super) fn with_tcp_flags(mut frame: Vec<u8>, l4_at: usize, bits: u8) -> Vec<u8> {
    let l4 = &mut frame[l4_at..];
    let flags = l4[13] | bits;
    synproxy::patch(l4, 13, &[flags]);
    frame
}

fn udp(src: (MacAddr, Ipv4Addr, u16), dst: (MacAddr, Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    udp_ttl(src, dst, payload, 64)
}

fn udp_ttl(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
        .ipv4(src.1.octets(), dst.1.octets(), ttl)
        .udp(src.2, dst.2)
        .write(&mut out, payload)
        .expect("build udp");
    out
}

/// Checks the frame with etherparse (independent checksum code) and
/// returns (src mac, dst mac, src ip, dst ip, sport, dport, ttl).
fn inspect(frame: &[u8]) -> (MacAddr, MacAddr, Ipv4Addr, Ipv4Addr, u16, u16, u8) {
    let (p, eth, ip) = checked_ipv4(frame);
    let h = ip.header();
    let (sport, dport) = match p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv4(&h.to_header(), t.payload())
                .expect("csum");
            assert_eq!(want, t.checksum(), "TCP checksum");
            (t.source_port(), t.destination_port())
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u
                .to_header()
                .calc_checksum_ipv4(&h.to_header(), u.payload())
                .expect("csum");
            assert_eq!(want, u.checksum(), "UDP checksum");
            (u.source_port(), u.destination_port())
        }
        _ => panic!("no transport"),
    };
    (
        MacAddr(eth.source()),
        MacAddr(eth.destination()),
        Ipv4Addr::from(h.source()),
        Ipv4Addr::from(h.destination()),
        sport,
        dport,
        h.ttl(),
    )
}

fn resolve_rs(e: &mut Engine, ctl: &mut Burst) {
    let mut reply = arp(ArpOperation::Reply, RS_MAC, RS, LIP);
    assert_eq!(e.handle(&mut reply, 1, ctl), Verdict::Ignore);
}

#[test]
fn announces_addresses_and_resolves_real_servers_on_publish() {
    let (_, ctl) = engine();
    let arps: Vec<ArpRepr> = ctl
        .frames()
        .iter()
        .map(|f| {
            ArpRepr::parse(&ArpPacket::new_checked(&f.data()[ETH_LEN..]).expect("arp"))
                .expect("repr")
        })
        .collect();
    // Gratuitous ARP for the VIP and the LIP, and a request for the RS.
    assert!(arps
        .iter()
        .any(|a| a.source_protocol_addr == VIP && a.target_protocol_addr == VIP));
    assert!(arps
        .iter()
        .any(|a| a.source_protocol_addr == LIP && a.target_protocol_addr == LIP));
    assert!(arps
        .iter()
        .any(|a| a.source_protocol_addr == LIP && a.target_protocol_addr == RS));
}

#[test]
fn answers_arp_for_vip_and_lip_only() {
    let (mut e, mut ctl) = engine();
    for ip in [VIP, LIP] {
        let mut req = arp(ArpOperation::Request, CLIENT_MAC, CLIENT, ip);
        assert_eq!(e.handle(&mut req, 0, &mut ctl), Verdict::Forward);
        let eth = EthernetFrame::new_checked(&req[..]).expect("eth");
        assert_eq!(eth.dst_addr(), CLIENT_MAC);
        let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).expect("arp")).expect("repr");
        assert_eq!(r.operation, ArpOperation::Reply);
        assert_eq!(
            (r.source_hardware_addr, r.source_protocol_addr),
            (LB_MAC, ip)
        );
        assert_eq!(
            (r.target_hardware_addr, r.target_protocol_addr),
            (CLIENT_MAC, CLIENT)
        );
    }
    let mut other = arp(
        ArpOperation::Request,
        CLIENT_MAC,
        CLIENT,
        Ipv4Addr::new(10, 99, 0, 1),
    );
    assert_eq!(e.handle(&mut other, 0, &mut ctl), Verdict::Ignore);
}

#[test]
fn fnat_tcp_round_trip_with_valid_checksums() {
    let (mut e, mut ctl) = engine();
    ctl.clear();
    let mut syn = tcp(
        (CLIENT_MAC, CLIENT, 33000),
        (LB_MAC, VIP, 80),
        true,
        false,
        b"",
    );
    // Real server not resolved yet: dropped, and an ARP request goes out.
    let mut early = syn.clone();
    assert_eq!(
        e.handle(&mut early, 500, &mut ctl),
        Verdict::Drop(Drop::NeighbourUnresolved)
    );
    assert_eq!(ctl.len(), 1);
    resolve_rs(&mut e, &mut ctl);

    assert_eq!(e.handle(&mut syn, 1000, &mut ctl), Verdict::Forward);
    let (smac, dmac, sip, dip, sport, dport, ttl) = inspect(&syn);
    assert_eq!((smac, dmac), (LB_MAC, RS_MAC));
    assert_eq!((sip, dip, dport, ttl), (LIP, RS, 8080, 63));
    assert!((40000..=40100).contains(&sport));
    assert_eq!(e.conn_count(), 1);

    // The reply comes back to the LIP and leaves as VIP → client.
    let mut synack = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, sport), true, true, b"");
    assert_eq!(e.handle(&mut synack, 1001, &mut ctl), Verdict::Forward);
    let (smac, dmac, sip, dip, sp, dp, _) = inspect(&synack);
    assert_eq!(
        (smac, dmac, sip, dip, sp, dp),
        (LB_MAC, CLIENT_MAC, VIP, CLIENT, 80, 33000)
    );

    // Data with payload keeps the same connection and valid checksums.
    let mut data = tcp(
        (CLIENT_MAC, CLIENT, 33000),
        (LB_MAC, VIP, 80),
        false,
        true,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(e.handle(&mut data, 1002, &mut ctl), Verdict::Forward);
    assert_eq!(inspect(&data).4, sport);
    // Per-packet counts reach the shared counters in housekeeping.
    e.housekeeping(1002 + STATS_FLUSH_MS, 0, &mut ctl);
    let svc = &e.snap.v4.services[0];
    assert_eq!(svc.stats.snapshot().conns, 1);
    assert_eq!(svc.stats.snapshot().in_pkts, 2);
    assert_eq!(svc.servers[0].stats.snapshot().out_pkts, 1);
}

#[test]
fn fnat_udp_round_trip() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let mut q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
    assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
    let (_, _, sip, dip, sport, dport, _) = inspect(&q);
    assert_eq!((sip, dip, dport), (LIP, RS, 5353));
    let mut a = udp((RS_MAC, RS, 5353), (LB_MAC, LIP, sport), b"answer");
    assert_eq!(e.handle(&mut a, 11, &mut ctl), Verdict::Forward);
    assert_eq!(inspect(&a).2, VIP);
}

/// Each case is dropped and counted under its reason, and no prefix of
/// the `good` frame is forwarded (nor panics).
fn assert_drops(e: &mut Engine, ctl: &mut Burst, cases: Vec<(Vec<u8>, Drop)>, good: &[u8]) {
    for (mut f, want) in cases {
        assert_eq!(e.handle(&mut f, 0, ctl), Verdict::Drop(want), "{want:?}");
        assert!(e.drops.get(want) >= 1);
    }
    for n in 0..good.len() {
        let mut f = good[..n].to_vec();
        assert_ne!(e.handle(&mut f, 0, ctl), Verdict::Forward, "prefix {n}");
    }
}

#[test]
fn bad_packets_are_counted_under_their_reason() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let good = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    let cases: Vec<(Vec<u8>, Drop)> = vec![
        (
            tcp((CLIENT_MAC, CLIENT, 2), (LB_MAC, VIP, 80), false, true, b""),
            Drop::NoConnection,
        ),
        (
            tcp((CLIENT_MAC, CLIENT, 3), (LB_MAC, VIP, 81), true, false, b""),
            Drop::NoService,
        ),
        (good[..ETH_LEN + 20 + 10].to_vec(), Drop::Truncated),
        (
            {
                let mut f = good.clone();
                f[ETH_LEN + 10] ^= 0xff;
                f
            },
            Drop::BadChecksum,
        ),
        (
            {
                let mut f = good.clone();
                f[ETH_LEN] = 0x65;
                f
            },
            Drop::Malformed,
        ),
        (
            tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, 40050), false, true, b""),
            Drop::NoConnection,
        ),
    ];
    assert_drops(&mut e, &mut ctl, cases, &good);
    // Traffic to addresses we do not own is the kernel's business.
    let mut other = tcp(
        (CLIENT_MAC, CLIENT, 1),
        (LB_MAC, Ipv4Addr::new(10, 99, 0, 1), 22),
        true,
        false,
        b"",
    );
    assert_eq!(e.handle(&mut other, 0, &mut ctl), Verdict::Ignore);
}

#[test]
fn fragments_and_expiring_ttl_are_dropped() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let mut frag = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frag[ETH_LEN..]);
        ip.set_more_frags(true);
        ip.fill_checksum();
    }
    assert_eq!(
        e.handle(&mut frag, 0, &mut ctl),
        Verdict::Drop(Drop::Fragment)
    );
    let mut low = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut low[ETH_LEN..]);
        ip.set_ttl(1);
        ip.fill_checksum();
    }
    assert_eq!(
        e.handle(&mut low, 0, &mut ctl),
        Verdict::Drop(Drop::TtlExceeded)
    );
}

#[test]
fn burst_gives_the_same_results_as_frame_by_frame() {
    let c = |port| (CLIENT_MAC, CLIENT, port);
    let v = (LB_MAC, VIP, 80);
    let mut frames = vec![
        // Unresolved server: dropped, then the ARP reply in the same
        // burst resolves it for the frames after it.
        tcp(c(1), v, true, false, b""),
        arp(ArpOperation::Reply, RS_MAC, RS, LIP),
        tcp(c(1), v, true, false, b""),
        tcp(c(1), v, false, true, b"data"),
        tcp(c(2), v, false, true, b""),
        tcp(c(1), v, true, false, b"")[..ETH_LEN + 20 + 10].to_vec(),
        udp(c(3), (LB_MAC, VIP, 53), b"q"),
    ];
    // More frames than one pipeline chunk.
    for port in 0..(PIPELINE as u16 + 10) {
        frames.push(tcp(c(1000 + port), v, true, false, b""));
    }
    // Frame by frame with room to grow (the SYN gets a TOA; the ACK does
    // not: no SYN-ACK has passed that it could acknowledge).
    let (mut single, mut ctl) = engine();
    let (mut burst, mut burst_ctl) = engine();
    let want = same_in_a_burst(
        &frames,
        5,
        (&mut single, &mut ctl),
        (&mut burst, &mut burst_ctl),
    );
    assert_eq!(want[0].0, Verdict::Drop(Drop::NeighbourUnresolved));
    assert_eq!(want[2].0, Verdict::Forward);
    assert_eq!(want[2].1.len(), frames[2].len() + TOA_LEN);
    assert_eq!(want[3].1.len(), frames[3].len());
    assert_eq!(want[4].0, Verdict::Drop(Drop::NoConnection));
    assert_eq!(want[5].0, Verdict::Drop(Drop::Truncated));
    assert_eq!(burst.conn_count(), single.conn_count());
    assert_eq!(burst.conn_count(), 2 + PIPELINE + 10);
}

#[test]
fn housekeeping_frees_idle_connections_within_a_sweep_period() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let mut syn = tcp((CLIENT_MAC, CLIENT, 7), (LB_MAC, VIP, 80), true, false, b"");
    assert_eq!(e.handle(&mut syn, 0, &mut ctl), Verdict::Forward);
    let timeout = u64::from(TcpState::SynRecv.timeout_ms());
    let mut now = 0;
    while now < timeout + SWEEP_PERIOD_MS {
        e.housekeeping(now, 64, &mut ctl);
        if now < timeout {
            assert_eq!(e.conn_count(), 1, "alive at {now} ms");
        }
        now += 10;
    }
    assert_eq!(e.conn_count(), 0);
    // Paced: a call right after visits (almost) nothing, not the budget.
    let before = e.v4.swept;
    e.housekeeping(now, 1 << 20, &mut ctl);
    assert!(e.v4.swept - before <= 1024 * 10 / SWEEP_PERIOD_MS as u128 + 1);
}

#[test]
fn port_reuse_after_close_opens_a_new_connection() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let c = (CLIENT_MAC, CLIENT, 4242);
    let v = (LB_MAC, VIP, 80);
    let mut syn = tcp(c, v, true, false, b"");
    assert_eq!(e.handle(&mut syn, 0, &mut ctl), Verdict::Forward);
    let first = inspect(&syn).4;
    // Established first: a RST in SYN_RECV leaves it there (LVS/DPVS).
    let mut ack = tcp(c, v, false, true, b"");
    assert_eq!(e.handle(&mut ack, 1, &mut ctl), Verdict::Forward);
    let mut rst = tcp(c, v, false, true, b"");
    rst[ETH_LEN + 20 + 13] |= 0x04; // RST
    Ipv4Packet::new_unchecked(&mut rst[ETH_LEN..]).fill_checksum();
    TcpPacket::new_unchecked(&mut rst[ETH_LEN + 20..]).fill_checksum(CLIENT, VIP);
    assert_eq!(e.handle(&mut rst, 1, &mut ctl), Verdict::Forward);
    let mut again = tcp(c, v, true, false, b"");
    assert_eq!(e.handle(&mut again, 2, &mut ctl), Verdict::Forward);
    assert_ne!(
        inspect(&again).4,
        first,
        "a new local port for the new connection"
    );
    assert_eq!(e.conn_count(), 1);
}

// ── NAT, DR and TUN ────────────────────────────────────────────────

const VIP2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 101);
const IFACE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// VIP:80/tcp, VIP:53/udp and VIP2:80/tcp, all with `mode` to the one
/// real server RS (ports 8080/5353 for NAT, the VIP's ports otherwise).
fn mode_snapshot(
    mode: Forwarding,
    lips: &[Ipv4Addr],
    interface: Option<Ipv4Addr>,
) -> Arc<Snapshot> {
    let nat = mode == Forwarding::Nat;
    let (tport, uport) = if nat { (8080, 5353) } else { (80, 53) };
    let svc = |addr: Ipv4Addr, port, protocol, rs_port| {
        service(
            addr,
            (port, protocol),
            vec![server(RS, rs_port)],
            lips.to_vec(),
        )
    };
    let source = lips
        .first()
        .copied()
        .or(interface)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut snap = Snapshot {
        v4: Snapshot4 {
            services: vec![
                svc(VIP, 80, Protocol::Tcp, tport),
                svc(VIP, 53, Protocol::Udp, uport),
                svc(VIP2, 80, Protocol::Tcp, tport),
            ],
            owned_vips: vec![VIP, VIP2],
            local_addrs: lips.to_vec(),
            neighbours: vec![(RS, source)],
            forwarding: vec![mode; 3],
            nat_servers: if nat { vec![RS] } else { vec![] },
            interface,
            ..Snapshot4::default()
        },
        ..Snapshot::default()
    };
    snap.v4.lookup.insert((VIP, 80, 6), 0);
    snap.v4.lookup.insert((VIP, 53, 17), 1);
    snap.v4.lookup.insert((VIP2, 80, 6), 2);
    Arc::new(snap)
}

/// An engine for `mode` with RS resolved (asked from `source`).
fn mode_engine(
    mode: Forwarding,
    lips: &[Ipv4Addr],
    interface: Option<Ipv4Addr>,
) -> (Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(mode_snapshot(mode, lips, interface), 0, &mut ctl);
    resolve_rs(&mut e, &mut ctl);
    ctl.clear();
    (e, ctl)
}

/// Runs `frame` through [`Engine::handle_frame`] (which TUN can grow).
/// Handles `frames` at time `now` frame by frame on `single` and as one
/// burst on `burst`; asserts both give the same verdicts and frames, and
/// returns them.
fn same_in_a_burst(
    frames: &[Vec<u8>],
    now: u64,
    (single, ctl): (&mut Engine, &mut Burst),
    (burst, burst_ctl): (&mut Engine, &mut Burst),
) -> Vec<(Verdict, Vec<u8>)> {
    let want: Vec<(Verdict, Vec<u8>)> = frames
        .iter()
        .map(|f| handle_grow(single, f, now, ctl))
        .collect();
    let mut rx = Burst::new(frames.len());
    for f in frames {
        assert!(rx.push(f));
    }
    let mut got = Vec::new();
    burst.handle_burst(rx.frames_mut(), now, burst_ctl, |f, v| {
        got.push((v, f.data().to_vec()));
    });
    assert_eq!(got, want);
    want
}

fn handle_grow(e: &mut Engine, frame: &[u8], now: u64, ctl: &mut Burst) -> (Verdict, Vec<u8>) {
    let mut rx = Burst::new(1);
    assert!(rx.push(frame));
    let f = &mut rx.frames_mut()[0];
    let v = e.handle_frame(f, now, ctl);
    (v, f.data().to_vec())
}

#[test]
fn nat_tcp_golden_both_directions() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let client = (CLIENT_MAC, CLIENT, 33000);
    // DNAT: client → VIP:80 leaves as client → RS:8080, TTL − 1.
    let mut syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
    assert_eq!(e.handle(&mut syn, 10, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, CLIENT, 33000),
        (RS_MAC, RS, 8080),
        true,
        false,
        b"",
        63,
    );
    assert_eq!(syn, want);
    inspect(&syn);
    // SNAT: the reply RS:8080 → client (routed via us) leaves as VIP:80 → client.
    let mut synack = tcp((RS_MAC, RS, 8080), (LB_MAC, CLIENT, 33000), true, true, b"");
    assert_eq!(e.handle(&mut synack, 11, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, VIP, 80),
        (CLIENT_MAC, CLIENT, 33000),
        true,
        true,
        b"",
        63,
    );
    assert_eq!(synack, want);
    inspect(&synack);
    // Data with payload, both ways.
    let body = b"GET / HTTP/1.0\r\n\r\n";
    let mut data = tcp(client, (LB_MAC, VIP, 80), false, true, body);
    assert_eq!(e.handle(&mut data, 12, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, CLIENT, 33000),
        (RS_MAC, RS, 8080),
        false,
        true,
        body,
        63,
    );
    assert_eq!(data, want);
    let mut resp = tcp(
        (RS_MAC, RS, 8080),
        (LB_MAC, CLIENT, 33000),
        false,
        true,
        b"200 OK",
    );
    assert_eq!(e.handle(&mut resp, 13, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, VIP, 80),
        (CLIENT_MAC, CLIENT, 33000),
        false,
        true,
        b"200 OK",
        63,
    );
    assert_eq!(resp, want);
    assert_eq!(e.conn_count(), 1);
    e.flush_stats();
    let svc = &e.snap.v4.services[0];
    assert_eq!(svc.stats.snapshot().in_pkts, 2);
    assert_eq!(svc.stats.snapshot().out_pkts, 2);
}

#[test]
fn nat_udp_golden_both_directions() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let mut q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
    assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
    let want = udp_ttl((LB_MAC, CLIENT, 5000), (RS_MAC, RS, 5353), b"query!", 63);
    assert_eq!(q, want);
    inspect(&q);
    let mut a = udp((RS_MAC, RS, 5353), (LB_MAC, CLIENT, 5000), b"answer");
    assert_eq!(e.handle(&mut a, 11, &mut ctl), Verdict::Forward);
    let want = udp_ttl((LB_MAC, VIP, 53), (CLIENT_MAC, CLIENT, 5000), b"answer", 63);
    assert_eq!(a, want);
    inspect(&a);
}

#[test]
fn nat_real_servers_own_traffic_is_the_kernels() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let elsewhere = Ipv4Addr::new(192, 0, 2, 7);
    // No connection: the real server talking to some host through us.
    let mut other = tcp(
        (RS_MAC, RS, 8080),
        (LB_MAC, elsewhere, 443),
        true,
        false,
        b"",
    );
    assert_eq!(e.handle(&mut other, 1, &mut ctl), Verdict::Ignore);
    // Not TCP/UDP, bad checksum, fragments: not ours to judge either.
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(RS_MAC.0, LB_MAC.0)
        .ipv4(RS.octets(), elsewhere.octets(), 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut icmp, b"ping")
        .expect("icmp");
    assert_eq!(e.handle(&mut icmp, 1, &mut ctl), Verdict::Ignore);
    let mut bad = other.clone();
    bad[ETH_LEN + 10] ^= 0xff;
    assert_eq!(e.handle(&mut bad, 1, &mut ctl), Verdict::Ignore);
    // Someone else's traffic to the client is not looked at.
    let stranger = Ipv4Addr::new(10, 99, 0, 50);
    let mut s = tcp(
        (RS_MAC, stranger, 8080),
        (LB_MAC, CLIENT, 33000),
        true,
        true,
        b"",
    );
    assert_eq!(e.handle(&mut s, 1, &mut ctl), Verdict::Ignore);
    let drops: u64 = Drop::ALL.iter().map(|&d| e.drops.get(d)).sum();
    assert_eq!(drops, 0);
}

#[test]
fn nat_same_client_port_through_two_vips_conflicts() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let client = (CLIENT_MAC, CLIENT, 33000);
    let mut a = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
    assert_eq!(e.handle(&mut a, 1, &mut ctl), Verdict::Forward);
    // Same RS:8080 and client:33000 behind VIP2: the replies could not
    // be told apart.
    let mut b = tcp(client, (LB_MAC, VIP2, 80), true, false, b"");
    assert_eq!(
        e.handle(&mut b, 2, &mut ctl),
        Verdict::Drop(Drop::ConnConflict)
    );
    assert_eq!(e.drops.get(Drop::ConnConflict), 1);
    assert_eq!(e.conn_count(), 1);
}

#[test]
fn nat_and_fnat_drop_expiring_ttl_dr_does_not_touch_it() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let mut low = tcp_ttl(
        (CLIENT_MAC, CLIENT, 1),
        (LB_MAC, VIP, 80),
        true,
        false,
        b"",
        1,
    );
    assert_eq!(
        e.handle(&mut low, 0, &mut ctl),
        Verdict::Drop(Drop::TtlExceeded)
    );
    assert_eq!(e.conn_count(), 0, "no connection for a dropped SYN");
    let (mut e, mut ctl) = mode_engine(Forwarding::Dr, &[], None);
    let mut low = tcp_ttl(
        (CLIENT_MAC, CLIENT, 1),
        (LB_MAC, VIP, 80),
        true,
        false,
        b"",
        1,
    );
    assert_eq!(e.handle(&mut low, 0, &mut ctl), Verdict::Forward);
    assert_eq!(inspect(&low).6, 1);
}

#[test]
fn dr_tcp_and_udp_golden_mac_rewrite_only() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Dr, &[], None);
    let client = (CLIENT_MAC, CLIENT, 33000);
    for (syn, ack, body) in [(true, false, &b""[..]), (false, true, &b"GET /"[..])] {
        let mut f = tcp(client, (LB_MAC, VIP, 80), syn, ack, body);
        assert_eq!(e.handle(&mut f, 5, &mut ctl), Verdict::Forward);
        let want = tcp((LB_MAC, CLIENT, 33000), (RS_MAC, VIP, 80), syn, ack, body);
        assert_eq!(f, want);
        inspect(&f);
    }
    let mut q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
    assert_eq!(e.handle(&mut q, 6, &mut ctl), Verdict::Forward);
    assert_eq!(q, udp((LB_MAC, CLIENT, 5000), (RS_MAC, VIP, 53), b"query!"));
    assert_eq!(e.conn_count(), 2);
    // The ACK established the TCP connection (one-way state tracking).
    let (idx, _) =
        e.v4.conns
            .lookup(
                &FlowKey {
                    proto: 6,
                    src: CLIENT,
                    dst: VIP,
                    sport: 33000,
                    dport: 80,
                },
                7,
            )
            .expect("conn");
    assert_eq!(
        e.v4.conns.get(idx).map(|c| c.tcp),
        Some(TcpState::Established)
    );
    // Replies go straight to the client: one reaching us is nobody's.
    let mut reply = tcp((RS_MAC, RS, 80), (LB_MAC, CLIENT, 33000), false, true, b"");
    assert_eq!(e.handle(&mut reply, 8, &mut ctl), Verdict::Ignore);
}

/// The frame TUN must produce: Ethernet LB → RS, an outer IPv4 header
/// `src → RS` built by etherparse (protocol 4, DF, ident 0, TTL 64),
/// then the client's IP packet unchanged.
fn tunnelled(inner_frame: &[u8], src: Ipv4Addr) -> Vec<u8> {
    let inner = &inner_frame[ETH_LEN..];
    let mut outer = etherparse::Ipv4Header::new(
        inner.len() as u16,
        64,
        etherparse::IpNumber::IPV4,
        src.octets(),
        RS.octets(),
    )
    .expect("outer");
    outer.header_checksum = outer.calc_header_checksum();
    let mut out = Vec::new();
    etherparse::Ethernet2Header {
        source: LB_MAC.0,
        destination: RS_MAC.0,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut out)
    .expect("eth");
    outer.write(&mut out).expect("ip");
    out.extend_from_slice(inner);
    out
}

#[test]
fn tun_tcp_and_udp_golden_ipip() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[LIP], None);
    let syn = tcp(
        (CLIENT_MAC, CLIENT, 33000),
        (LB_MAC, VIP, 80),
        true,
        false,
        b"",
    );
    let (v, out) = handle_grow(&mut e, &syn, 5, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(out, tunnelled(&syn, LIP));
    let data = tcp(
        (CLIENT_MAC, CLIENT, 33000),
        (LB_MAC, VIP, 80),
        false,
        true,
        b"GET /",
    );
    let (v, out) = handle_grow(&mut e, &data, 6, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(out, tunnelled(&data, LIP));
    // etherparse agrees: IPv4 with protocol 4 carrying the untouched
    // client packet (its checksums still valid).
    let p = SlicedPacket::from_ethernet(&out).expect("parses");
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    assert_eq!(ip.header().protocol(), etherparse::IpNumber::IPV4);
    let mut inner = out[..ETH_LEN].to_vec();
    inner.extend_from_slice(ip.payload().payload);
    let (_, _, sip, dip, sport, dport, ttl) = inspect(&inner);
    assert_eq!((sip, dip, sport, dport, ttl), (CLIENT, VIP, 33000, 80, 64));

    let q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
    let (v, out) = handle_grow(&mut e, &q, 7, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(out, tunnelled(&q, LIP));
    assert_eq!(e.conn_count(), 2);
}

#[test]
fn tun_source_is_the_lip_else_the_interface_address() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[], Some(IFACE));
    let syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    let (v, out) = handle_grow(&mut e, &syn, 5, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(out, tunnelled(&syn, IFACE));

    let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[], None);
    let (v, _) = handle_grow(&mut e, &syn, 5, &mut ctl);
    assert_eq!(v, Verdict::Drop(Drop::NoTunnelSource));
    assert_eq!(e.conn_count(), 0);
}

#[test]
fn tun_needs_room_and_respects_the_mtu() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[LIP], None);
    // A plain slice cannot grow.
    let mut syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    assert_eq!(e.handle(&mut syn, 5, &mut ctl), Verdict::Drop(Drop::NoRoom));
    // A full-size datagram (1500 bytes of IP) plus 20 exceeds the MTU.
    let big = udp(
        (CLIENT_MAC, CLIENT, 5000),
        (LB_MAC, VIP, 53),
        &[0u8; 1500 - 28],
    );
    let (v, out) = handle_grow(&mut e, &big, 6, &mut ctl);
    assert_eq!(v, Verdict::Drop(Drop::TunnelTooBig));
    assert_eq!(out, big, "a dropped frame keeps its length");
    let fits = udp(
        (CLIENT_MAC, CLIENT, 5000),
        (LB_MAC, VIP, 53),
        &[0u8; 1480 - 28],
    );
    let (v, out) = handle_grow(&mut e, &fits, 7, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(out.len(), ETH_LEN + 1500);
}

#[test]
fn burst_grows_tunnelled_frames() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[LIP], None);
    let frames = [
        tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b""),
        udp((CLIENT_MAC, CLIENT, 2), (LB_MAC, VIP, 53), b"q"),
    ];
    let mut rx = Burst::new(2);
    for f in &frames {
        assert!(rx.push(f));
    }
    let mut got = Vec::new();
    e.handle_burst(rx.frames_mut(), 5, &mut ctl, |f, v| {
        got.push((v, f.data().to_vec()));
    });
    let want: Vec<(Verdict, Vec<u8>)> = frames
        .iter()
        .map(|f| (Verdict::Forward, tunnelled(f, LIP)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn real_servers_are_asked_from_the_lip_interface_or_as_a_probe() {
    for (lips, iface, want) in [
        (&[LIP][..], Some(IFACE), LIP),
        (&[][..], Some(IFACE), IFACE),
        (&[][..], None, Ipv4Addr::UNSPECIFIED),
    ] {
        let mut e = Engine::new(0, LB_MAC, 16, (40000, 40100), Arc::default());
        let mut ctl = Burst::new(16);
        e.set_snapshot(mode_snapshot(Forwarding::Dr, lips, iface), 0, &mut ctl);
        let asks: Vec<ArpRepr> = ctl
            .frames()
            .iter()
            .filter_map(|f| ArpPacket::new_checked(&f.data()[ETH_LEN..]).ok())
            .filter_map(|a| ArpRepr::parse(&a).ok())
            .filter(|a| a.target_protocol_addr == RS)
            .collect();
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].source_protocol_addr, want);
        // Linux answers a probe to our MAC with target 0.0.0.0: learnt.
        let mut reply = arp(ArpOperation::Reply, RS_MAC, RS, want);
        assert_eq!(e.handle(&mut reply, 1, &mut ctl), Verdict::Ignore);
        let mut syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
        assert_eq!(e.handle(&mut syn, 2, &mut ctl), Verdict::Forward);
        assert_eq!(inspect(&syn).1, RS_MAC);
    }
}

// ── Persistence and quiescent servers ──────────────────────────────

const RS2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 4);
const RS2_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 4]);

/// Counters kept across snapshots, so connections keep their
/// destinations (as the control plane does).
struct Stats {
    svc: Arc<Traffic>,
    rs: [Arc<Traffic>; 2],
}

impl Stats {
    fn new() -> Stats {
        Stats {
            svc: Arc::default(),
            rs: [Arc::default(), Arc::default()],
        }
    }
}

/// FNAT VIP:80/tcp, rr over RS and RS2 (both :8080) with `weights`.
fn rr_snapshot(stats: &Stats, weights: &[u32; 2], p: Option<Persistence>) -> Arc<Snapshot> {
    let server = |addr, i: usize| ServerSnap {
        addr,
        port: 8080,
        stats: Arc::clone(&stats.rs[i]),
    };
    let mut snap = Snapshot {
        v4: Snapshot4 {
            services: vec![ServiceSnap {
                key: ServiceKey {
                    addr: VIP.into(),
                    port: 80,
                    protocol: Protocol::Tcp,
                },
                stats: Arc::clone(&stats.svc),
                servers: vec![server(RS, 0), server(RS2, 1)],
                table: SchedTable::build(Scheduler::Rr, weights),
                local_addrs: vec![LIP],
            }],
            owned_vips: vec![VIP],
            local_addrs: vec![LIP],
            neighbours: vec![(RS, LIP), (RS2, LIP)],
            persistence: vec![p],
            ..Snapshot4::default()
        },
        ..Snapshot::default()
    };
    snap.v4.lookup.insert((VIP, 80, 6), 0);
    Arc::new(snap)
}

fn rr_engine(stats: &Stats, p: Option<Persistence>) -> (Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(rr_snapshot(stats, &[1, 1], p), 0, &mut ctl);
    for (mac, ip) in [(RS_MAC, RS), (RS2_MAC, RS2)] {
        let mut reply = arp(ArpOperation::Reply, mac, ip, LIP);
        assert_eq!(e.handle(&mut reply, 0, &mut ctl), Verdict::Ignore);
    }
    ctl.clear();
    (e, ctl)
}

/// Sends `frame` at `now`; returns the real server it went to.
fn sent_to(e: &mut Engine, mut frame: Vec<u8>, now: u64, ctl: &mut Burst) -> Ipv4Addr {
    assert_eq!(e.handle(&mut frame, now, ctl), Verdict::Forward);
    inspect(&frame).3
}

/// A SYN from `client:port` to VIP:80.
fn syn_from(client: Ipv4Addr, port: u16) -> Vec<u8> {
    tcp(
        (CLIENT_MAC, client, port),
        (LB_MAC, VIP, 80),
        true,
        false,
        b"",
    )
}

const PERSIST: Persistence = Persistence {
    timeout_s: 10,
    granularity: 32,
};

#[test]
fn without_persistence_rr_alternates_between_servers() {
    let stats = Stats::new();
    let (mut e, mut ctl) = rr_engine(&stats, None);
    let to: Vec<_> = (0..4)
        .map(|i| sent_to(&mut e, syn_from(CLIENT, 1000 + i), 1, &mut ctl))
        .collect();
    assert_eq!(to, [RS, RS2, RS, RS2]);
}

#[test]
fn persistence_keeps_a_client_on_its_first_server() {
    let stats = Stats::new();
    let (mut e, mut ctl) = rr_engine(&stats, Some(PERSIST));
    let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
    for i in 1..6 {
        assert_eq!(
            sent_to(
                &mut e,
                syn_from(CLIENT, 1000 + i),
                1 + u64::from(i),
                &mut ctl
            ),
            first,
            "connection {i} of the same client"
        );
    }
    // Another client is scheduled (rr moved on once only).
    let other = Ipv4Addr::new(10, 99, 0, 77);
    assert_ne!(sent_to(&mut e, syn_from(other, 1000), 10, &mut ctl), first);
    assert_eq!(e.conn_count(), 7);
}

#[test]
fn persistence_granularity_groups_client_networks() {
    let near = Ipv4Addr::new(10, 99, 0, 77);
    let far = Ipv4Addr::new(10, 98, 0, 2);
    let stats = Stats::new();
    let p24 = Persistence {
        granularity: 24,
        ..PERSIST
    };
    let (mut e, mut ctl) = rr_engine(&stats, Some(p24));
    let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
    assert_eq!(sent_to(&mut e, syn_from(near, 1000), 2, &mut ctl), first);
    assert_ne!(sent_to(&mut e, syn_from(far, 1000), 3, &mut ctl), first);
    // /32: the neighbour is a client of its own.
    let (mut e, mut ctl) = rr_engine(&Stats::new(), Some(PERSIST));
    let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
    assert_ne!(sent_to(&mut e, syn_from(near, 1000), 2, &mut ctl), first);
    assert_eq!(
        Persistence {
            granularity: 0,
            ..PERSIST
        }
        .network(CLIENT),
        Ipv4Addr::UNSPECIFIED
    );
    assert_eq!(
        Persistence {
            granularity: 200,
            ..PERSIST
        }
        .network(CLIENT),
        CLIENT
    );
}

#[test]
fn templates_live_timeout_after_the_clients_last_packet() {
    let stats = Stats::new();
    let (mut e, mut ctl) = rr_engine(&stats, Some(PERSIST));
    let t = u64::from(PERSIST.timeout_s) * 1000;
    let c = (CLIENT_MAC, CLIENT, 1000);
    let v = (LB_MAC, VIP, 80);
    let first = sent_to(&mut e, tcp(c, v, true, false, b""), 0, &mut ctl);
    // The client keeps talking on its connection past the timeout...
    for now in [t / 2, t - 1, t + t / 2] {
        assert_eq!(
            sent_to(&mut e, tcp(c, v, false, true, b"x"), now, &mut ctl),
            first
        );
    }
    // ...so its new connections still go to the same server,
    let last = t + t / 2;
    assert_eq!(
        sent_to(&mut e, syn_from(CLIENT, 1001), last + t - 1, &mut ctl),
        first
    );
    // until it has been silent for the whole timeout: rescheduled (rr's
    // next pick is the other server).
    let quiet = last + t - 1 + t;
    assert_ne!(
        sent_to(&mut e, syn_from(CLIENT, 1002), quiet, &mut ctl),
        first
    );
}

#[test]
fn persistent_client_stays_on_a_quiescent_server_until_it_is_removed() {
    let stats = Stats::new();
    let (mut e, mut ctl) = rr_engine(&stats, Some(PERSIST));
    let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
    let weights = if first == RS { [0, 1] } else { [1, 0] };
    e.set_snapshot(rr_snapshot(&stats, &weights, Some(PERSIST)), 2, &mut ctl);
    // As LVS: the template still places the client on its server.
    assert_eq!(sent_to(&mut e, syn_from(CLIENT, 1001), 3, &mut ctl), first);
    // A new client never gets the quiescent server.
    let other = Ipv4Addr::new(10, 99, 0, 77);
    assert_ne!(sent_to(&mut e, syn_from(other, 1000), 4, &mut ctl), first);
    // Removed from the service: the template no longer applies.
    let mut snap = rr_snapshot(&stats, &[1, 1], Some(PERSIST));
    let keep = usize::from(first == RS);
    if let Some(s) = Arc::get_mut(&mut snap) {
        let svc = &mut s.v4.services[0];
        svc.servers = vec![svc.servers.remove(keep)];
        svc.table = SchedTable::build(Scheduler::Rr, &[1]);
    }
    e.set_snapshot(snap, 5, &mut ctl);
    assert_ne!(sent_to(&mut e, syn_from(CLIENT, 1002), 6, &mut ctl), first);
}

#[test]
fn weight_zero_is_quiescent_existing_connections_continue() {
    let stats = Stats::new();
    let (mut e, mut ctl) = rr_engine(&stats, None);
    let c = (CLIENT_MAC, CLIENT, 1000);
    let v = (LB_MAC, VIP, 80);
    let first = sent_to(&mut e, tcp(c, v, true, false, b""), 1, &mut ctl);
    let weights = if first == RS { [0, 1] } else { [1, 0] };
    e.set_snapshot(rr_snapshot(&stats, &weights, None), 2, &mut ctl);
    // The established connection keeps its server...
    for now in 3..6 {
        assert_eq!(
            sent_to(&mut e, tcp(c, v, false, true, b"x"), now, &mut ctl),
            first
        );
    }
    // ...and every new one goes to the other.
    for i in 1..5 {
        assert_ne!(
            sent_to(&mut e, syn_from(CLIENT, 1000 + i), 10, &mut ctl),
            first
        );
    }
}

// ── ICMP errors ────────────────────────────────────────────────────

/// An ICMP "fragmentation needed" (MTU 1400) `src → dst` quoting `quoted`
/// (an IPv4 packet), built by etherparse.
fn frag_needed(mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
    let t = etherparse::Icmpv4Type::DestinationUnreachable(
        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
    );
    let mut out = Vec::new();
    PacketBuilder::ethernet2(mac.0, LB_MAC.0)
        .ipv4(src.octets(), dst.octets(), 64)
        .icmpv4(t)
        .write(&mut out, quoted)
        .expect("build icmp");
    out
}

/// The IPv4 packet of an Ethernet frame (without padding).
fn ip_of(frame: &[u8]) -> Vec<u8> {
    let tl = usize::from(
        Ipv4Packet::new_checked(&frame[ETH_LEN..])
            .expect("ipv4")
            .total_len(),
    );
    frame[ETH_LEN..ETH_LEN + tl].to_vec()
}

/// `ip` with its TTL set to `ttl` and its header checksum recomputed.
fn with_ttl(mut ip: Vec<u8>, ttl: u8) -> Vec<u8> {
    let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
    p.set_ttl(ttl);
    p.fill_checksum();
    ip
}

/// Checks an ICMP error frame with etherparse (outer IPv4 and ICMP
/// checksums, MTU kept); returns (dst mac, src, dst, ttl, quoted packet).
fn inspect_icmp(frame: &[u8]) -> (MacAddr, Ipv4Addr, Ipv4Addr, u8, Vec<u8>) {
    let (p, eth, ip) = checked_ipv4(frame);
    let h = ip.header();
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not icmp")
    };
    let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
    assert_eq!(want, icmp.checksum(), "ICMP checksum");
    assert_eq!(
        Icmpv4Packet::new_checked(icmp.slice())
            .expect("icmp")
            .next_hop_mtu(),
        1400
    );
    // The quote is a whole packet here: etherparse checks it too.
    let inner = etherparse::Ipv4Slice::from_slice(icmp.payload()).expect("quoted ipv4");
    let ih = inner.header();
    assert_eq!(
        ih.to_header().calc_header_checksum(),
        ih.header_checksum(),
        "quoted IPv4 checksum"
    );
    (
        MacAddr(eth.destination()),
        h.source_addr(),
        h.destination_addr(),
        h.ttl(),
        icmp.payload().to_vec(),
    )
}

#[test]
fn fnat_icmp_errors_are_translated_both_ways_golden() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let client = (CLIENT_MAC, CLIENT, 33000);
    let orig = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
    let mut syn = orig.clone();
    assert_eq!(e.handle(&mut syn, 1, &mut ctl), Verdict::Forward);
    let lport = inspect(&syn).4;

    // The real server (or a router on its side) cannot take the size of
    // LIP → RS: the client gets the error about its own packet.
    let mut err = frag_needed(RS_MAC, RS, LIP, &ip_of(&syn));
    assert_eq!(e.handle(&mut err, 2, &mut ctl), Verdict::Forward);
    let (mac, src, dst, ttl, quote) = inspect_icmp(&err);
    assert_eq!((mac, src, dst, ttl), (CLIENT_MAC, VIP, CLIENT, 63));
    // Golden: exactly the client's packet, as it left us (TTL 63).
    assert_eq!(quote, with_ttl(ip_of(&orig), 63));

    // The client side cannot take the size of a reply VIP → client: the
    // real server gets the error about what it sent, RS → LIP.
    let orig_reply = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, lport), true, true, b"");
    let mut reply = orig_reply.clone();
    assert_eq!(e.handle(&mut reply, 3, &mut ctl), Verdict::Forward);
    let mut err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&reply));
    assert_eq!(e.handle(&mut err, 4, &mut ctl), Verdict::Forward);
    let (mac, src, dst, ttl, quote) = inspect_icmp(&err);
    assert_eq!((mac, src, dst, ttl), (RS_MAC, LIP, RS, 63));
    assert_eq!(quote, with_ttl(ip_of(&orig_reply), 63));
}

#[test]
fn nat_icmp_errors_are_translated_both_ways_golden() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let client = (CLIENT_MAC, CLIENT, 33000);
    let orig = udp(client, (LB_MAC, VIP, 53), b"query");
    let mut q = orig.clone();
    assert_eq!(e.handle(&mut q, 1, &mut ctl), Verdict::Forward);
    // From the real server to the client (transit through us).
    let mut err = frag_needed(RS_MAC, RS, CLIENT, &ip_of(&q));
    err[..6].copy_from_slice(&LB_MAC.0);
    assert_eq!(e.handle(&mut err, 2, &mut ctl), Verdict::Forward);
    let (mac, src, dst, _, quote) = inspect_icmp(&err);
    assert_eq!((mac, src, dst), (CLIENT_MAC, VIP, CLIENT));
    assert_eq!(quote, with_ttl(ip_of(&orig), 63));

    // From the client about a reply VIP → client: to the real server,
    // about RS → client; the outer source (the client) is kept.
    let orig_reply = udp((RS_MAC, RS, 5353), (LB_MAC, CLIENT, 33000), b"answer");
    let mut reply = orig_reply.clone();
    assert_eq!(e.handle(&mut reply, 3, &mut ctl), Verdict::Forward);
    let mut err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&reply));
    assert_eq!(e.handle(&mut err, 4, &mut ctl), Verdict::Forward);
    let (mac, src, dst, _, quote) = inspect_icmp(&err);
    assert_eq!((mac, src, dst), (RS_MAC, CLIENT, RS));
    assert_eq!(quote, with_ttl(ip_of(&orig_reply), 63));
}

#[test]
fn dr_and_tun_pass_client_side_icmp_errors_to_the_real_server() {
    for mode in [Forwarding::Dr, Forwarding::Tun] {
        let (mut e, mut ctl) = mode_engine(mode, &[LIP], None);
        let client = (CLIENT_MAC, CLIENT, 33000);
        let mut syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
        assert_eq!(
            handle_grow(&mut e, &syn.clone(), 1, &mut ctl).0,
            Verdict::Forward
        );
        // The real server replied VIP → client directly; the client side
        // reports an error about that reply.
        let reply = tcp(
            (RS_MAC, VIP, 80),
            (CLIENT_MAC, CLIENT, 33000),
            true,
            true,
            b"",
        );
        let err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&reply));
        let (v, out) = handle_grow(&mut e, &err, 2, &mut ctl);
        assert_eq!(v, Verdict::Forward, "{mode}");
        assert_eq!(&out[..6], &RS_MAC.0, "{mode}");
        let body = &err[ETH_LEN..];
        if mode == Forwarding::Dr {
            assert_eq!(&out[ETH_LEN..], body, "DR: untouched");
        } else {
            assert_eq!(
                &out[ETH_LEN + 20..],
                body,
                "TUN: IPIP around the untouched error"
            );
            assert_eq!(out[ETH_LEN + 9], 4);
        }
        // Errors from the real server's side have no path through us.
        syn = with_ttl(ip_of(&syn), 64);
        let mut err = frag_needed(RS_MAC, RS, VIP, &syn);
        assert_eq!(
            e.handle(&mut err, 3, &mut ctl),
            Verdict::Drop(Drop::NoConnection)
        );
    }
}

#[test]
fn icmp_that_is_not_a_tracked_error_is_counted() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    // Echo to the VIP.
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut echo, b"ping")
        .expect("echo");
    assert_eq!(
        e.handle(&mut echo, 1, &mut ctl),
        Verdict::Drop(Drop::IcmpUnhandled)
    );
    // An error about a connection nobody has.
    let stranger = tcp((LB_MAC, VIP, 80), (CLIENT_MAC, CLIENT, 1), true, true, b"");
    let mut err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&stranger));
    let good = err.clone();
    assert_eq!(
        e.handle(&mut err, 2, &mut ctl),
        Verdict::Drop(Drop::NoConnection)
    );
    // Bad ICMP checksum.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(
        e.handle(&mut bad, 3, &mut ctl),
        Verdict::Drop(Drop::BadChecksum)
    );
    // A quote cut inside the ports.
    let mut short = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&stranger)[..22]);
    assert_eq!(
        e.handle(&mut short, 4, &mut ctl),
        Verdict::Drop(Drop::Truncated)
    );
    // A NAT real server's own ICMP to elsewhere is the kernel's.
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(RS_MAC.0, LB_MAC.0)
        .ipv4(RS.octets(), [8, 8, 8, 8], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut echo, b"ping")
        .expect("echo");
    assert_eq!(e.handle(&mut echo, 1, &mut ctl), Verdict::Ignore);
}

// ── TOA ────────────────────────────────────────────────────────────

/// The TCP options of an IPv4 frame (etherparse).
fn tcp_options(frame: &[u8]) -> Vec<u8> {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not tcp")
    };
    t.options().to_vec()
}

/// An MSS option.
pub(super) fn mss(v: u16) -> [u8; 4] {
    let [a, b] = v.to_be_bytes();
    [2, 4, a, b]
}

/// DPVS's TOA carrying `client`: kind 254, length 8 (IPv4) or 20 (IPv6),
/// port, address.
fn toa_opt(client: impl Into<IpAddr>, port: u16) -> Vec<u8> {
    let addr = match client.into() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut toa = vec![TOA_KIND, (4 + addr.len()) as u8];
    toa.extend_from_slice(&port.to_be_bytes());
    toa.extend_from_slice(&addr);
    toa
}

/// A hand-made segment's header fields: sequence number, acknowledgment
/// (`None`: no ACK flag), SYN, options, TTL.
fn fields(seq: u32, ack: Option<u32>, syn: bool, options: &[u8], hop: u8) -> Seg<'_> {
    Seg {
        seq,
        ack,
        syn,
        window: 65535,
        options,
        hop,
    }
}

/// DPVS's placement (`tcp_fnat_in_handler` / `tcp_fnat_out_handler`): the
/// client's SYN carries the TOA, the real server's SYN-ACK has its MSS
/// lowered by the option's length, and every client segment that
/// acknowledges exactly that SYN-ACK (handshake ACK, data before the
/// client has acknowledged any of the server's) carries it, except FIN
/// and RST. Each frame is compared with etherparse's, checksums included.
#[test]
fn fnat_toa_on_the_syn_and_on_segments_acking_the_syn_ack_golden() {
    const ISN: u32 = 1000;
    const RS_ISN: u32 = 70_000;
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let client = (CLIENT_MAC, CLIENT, 33000);
    let vip = (LB_MAC, VIP, 80);
    let toa = toa_opt(CLIENT, 33000);
    // The SYN: the TOA goes in front of the client's options.
    let syn = seg4(client, vip, &fields(ISN, None, true, &mss(1460), 64), b"");
    let (v, out) = handle_grow(&mut e, &syn, 1, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let lport = inspect(&out).4;
    let (lip, rs) = ((LB_MAC, LIP, lport), (RS_MAC, RS, 8080));
    let opts = [&toa[..], &mss(1460)].concat();
    assert_eq!(out, seg4(lip, rs, &fields(ISN, None, true, &opts, 63), b""));
    // A resent SYN (its connection known already) gets one too.
    let (v, again) = handle_grow(&mut e, &syn, 1, &mut ctl);
    assert_eq!((v, again), (Verdict::Forward, out));
    // The SYN-ACK reaches the client with its MSS 8 lower.
    let (mss_1460, mss_1452) = (mss(1460), mss(1452));
    let synack = fields(RS_ISN, Some(ISN + 1), true, &mss_1460, 64);
    let (v, out) = handle_grow(&mut e, &seg4(rs, lip, &synack, b""), 2, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let want = fields(RS_ISN, Some(ISN + 1), true, &mss_1452, 63);
    assert_eq!(out, seg4(vip, client, &want, b""));
    // The handshake ACK and the data after it acknowledge the SYN-ACK
    // exactly: both carry the TOA.
    let ack = |payload: &[u8], seq: u32, acked: u32| {
        seg4(
            client,
            vip,
            &fields(seq, Some(acked), false, &[], 64),
            payload,
        )
    };
    let fwd = |payload: &[u8], seq: u32, acked: u32, opts: &[u8]| {
        seg4(lip, rs, &fields(seq, Some(acked), false, opts, 63), payload)
    };
    for (i, data) in [&b""[..], b"GET / HTTP/1.0\r\n", b"\r\n"]
        .into_iter()
        .enumerate()
    {
        let seq = ISN + 1 + if i == 2 { 16 } else { 0 };
        let (v, out) = handle_grow(&mut e, &ack(data, seq, RS_ISN + 1), 3, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out, fwd(data, seq, RS_ISN + 1, &toa), "segment {i}");
    }
    // The client's FIN acknowledging the SYN-ACK: no TOA.
    let fin = with_tcp_flags(ack(b"", ISN + 19, RS_ISN + 1), ETH_LEN + 20, 0x01);
    let (v, out) = handle_grow(&mut e, &fin, 4, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let want = with_tcp_flags(fwd(b"", ISN + 19, RS_ISN + 1, &[]), ETH_LEN + 20, 0x01);
    assert_eq!(out, want);
    // Once the client acknowledges the server's data, no more TOA.
    let reply = seg4(
        rs,
        lip,
        &fields(RS_ISN + 1, Some(ISN + 20), false, &[], 64),
        b"200 OK",
    );
    assert_eq!(handle_grow(&mut e, &reply, 5, &mut ctl).0, Verdict::Forward);
    let (v, out) = handle_grow(&mut e, &ack(b"", ISN + 20, RS_ISN + 7), 6, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(out, fwd(b"", ISN + 20, RS_ISN + 7, &[]));

    // Another connection: its RST acknowledging the SYN-ACK has no TOA.
    let client = (CLIENT_MAC, CLIENT, 33001);
    let syn = seg4(client, vip, &fields(ISN, None, true, &[], 64), b"");
    let (_, out) = handle_grow(&mut e, &syn, 7, &mut ctl);
    let lip = (LB_MAC, LIP, inspect(&out).4);
    let synack = seg4(rs, lip, &fields(RS_ISN, Some(ISN + 1), true, &[], 64), b"");
    assert_eq!(
        handle_grow(&mut e, &synack, 8, &mut ctl).0,
        Verdict::Forward
    );
    let rst = seg4(
        client,
        vip,
        &fields(ISN + 1, Some(RS_ISN + 1), false, &[], 64),
        b"",
    );
    let (v, out) = handle_grow(
        &mut e,
        &with_tcp_flags(rst, ETH_LEN + 20, 0x04),
        9,
        &mut ctl,
    );
    assert_eq!(v, Verdict::Forward);
    let want = seg4(
        lip,
        rs,
        &fields(ISN + 1, Some(RS_ISN + 1), false, &[], 63),
        b"",
    );
    assert_eq!(out, with_tcp_flags(want, ETH_LEN + 20, 0x04));
}

/// A SYN-ACK's MSS option is found among others and lowered; one to a
/// NAT client (no TOA) is left as it is.
#[test]
fn syn_ack_mss_is_lowered_only_where_toa_goes() {
    let client = (CLIENT_MAC, CLIENT, 33000);
    let vip = (LB_MAC, VIP, 80);
    let rs = (RS_MAC, RS, 8080);
    // NOP, NOP, SACK permitted, MSS, window scale.
    let opts = |m: u16| [&[1, 1, 4, 2][..], &mss(m), &[1, 3, 3, 7]].concat();
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let (_, out) = handle_grow(&mut e, &tcp(client, vip, true, false, b""), 1, &mut ctl);
    let lip = (LB_MAC, LIP, inspect(&out).4);
    let synack = seg4(rs, lip, &fields(5, Some(1001), true, &opts(1400), 64), b"");
    let (_, out) = handle_grow(&mut e, &synack, 2, &mut ctl);
    assert_eq!(
        out,
        seg4(
            vip,
            client,
            &fields(5, Some(1001), true, &opts(1392), 63),
            b""
        )
    );
    // NAT: the server sees the client itself, no TOA, MSS unchanged.
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let (_, _) = handle_grow(&mut e, &tcp(client, vip, true, false, b""), 1, &mut ctl);
    let to_client = (LB_MAC, CLIENT, 33000);
    let synack = seg4(
        rs,
        to_client,
        &fields(5, Some(1001), true, &opts(1400), 64),
        b"",
    );
    let (v, out) = handle_grow(&mut e, &synack, 2, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(
        out,
        seg4(
            vip,
            client,
            &fields(5, Some(1001), true, &opts(1400), 63),
            b""
        )
    );
}

#[test]
fn toa_goes_before_the_segments_own_options_as_dpvs_puts_it() {
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let client = (CLIENT_MAC, CLIENT, 33000);
    let vip = (LB_MAC, VIP, 80);
    let (_, syn) = handle_grow(&mut e, &tcp(client, vip, true, false, b""), 1, &mut ctl);
    let lport = inspect(&syn).4;
    // Its SYN-ACK's sequence number is what `tcp` frames acknowledge (7).
    let synack = fields(6, Some(1001), true, &[], 64);
    let mut synack = seg4((RS_MAC, RS, 8080), (LB_MAC, LIP, lport), &synack, b"");
    assert_eq!(e.handle(&mut synack, 2, &mut ctl), Verdict::Forward);
    // NOP, NOP, timestamp: DPVS's tcp_in_add_toa puts the TOA in front.
    let ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let build = |src: (MacAddr, Ipv4Addr, u16), dst: (MacAddr, Ipv4Addr, u16), ttl, opts: &[u8]| {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
            .ipv4(src.1.octets(), dst.1.octets(), ttl)
            .tcp(src.2, dst.2, 1000, 65535)
            .ack(7)
            .options_raw(opts)
            .expect("options")
            .write(&mut out, b"data")
            .expect("build");
        out
    };
    let ack = build(client, vip, 64, &ts);
    let (v, out) = handle_grow(&mut e, &ack, 3, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let mut opts = toa_opt(CLIENT, 33000);
    opts.extend_from_slice(&ts);
    inspect(&out);
    assert_eq!(
        out,
        build((LB_MAC, LIP, lport), (RS_MAC, RS, 8080), 63, &opts)
    );
}

#[test]
fn toa_is_skipped_without_room_and_outside_fnat() {
    let client = (CLIENT_MAC, CLIENT, 33000);
    let vip = (LB_MAC, VIP, 80);
    // A frame that cannot grow (`handle`): forwarded without TOA, valid.
    let (mut e, mut ctl) = engine();
    resolve_rs(&mut e, &mut ctl);
    let mut syn = tcp(client, vip, true, false, b"");
    let n = syn.len();
    assert_eq!(e.handle(&mut syn, 1, &mut ctl), Verdict::Forward);
    assert_eq!(syn.len(), n);
    inspect(&syn);
    assert!(tcp_options(&syn).is_empty());
    let mut ack = tcp(client, vip, false, true, b"");
    let n = ack.len();
    assert_eq!(e.handle(&mut ack, 2, &mut ctl), Verdict::Forward);
    assert_eq!(ack.len(), n);
    inspect(&ack);
    assert!(tcp_options(&ack).is_empty());
    // NAT: never.
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
    let (_, out) = handle_grow(&mut e, &tcp(client, vip, true, false, b""), 1, &mut ctl);
    assert!(tcp_options(&out).is_empty());
    let (v, out) = handle_grow(&mut e, &tcp(client, vip, false, true, b""), 2, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert!(tcp_options(&out).is_empty());
    // No room in the TCP header (60 bytes of options already).
    let mut full = vec![0u8; ETH_LEN + 80 + 2 * TOA_LEN];
    full[ETH_LEN + 20 + 12] = 0xf0; // data offset 15: 40 bytes of options
    let before = full.clone();
    assert_eq!(insert_toa(&mut full, 20, 80, (CLIENT, 1)), None);
    assert_eq!(full, before);
    // With a 20-byte header the same buffer has room.
    full[ETH_LEN + 20 + 12] = 0x50;
    assert_eq!(
        insert_toa(&mut full, 20, 80, (CLIENT, 1)),
        Some(ETH_LEN + 80 + TOA_LEN)
    );
}

#[test]
fn port_after_follows_the_local_port_cursor() {
    // `alloc_local` steps its cursor through min..=max and wraps; the
    // prefetch's guess of the port k opens ahead must be where it lands.
    let range = (1024, 1030);
    let mut next = 1028;
    for k in 0..20 {
        assert_eq!(port_after(1028, k, range), next, "{k} steps");
        next = if next >= range.1 { range.0 } else { next + 1 };
    }
    assert_eq!(port_after(5, 3, (5, 5)), 5, "one-port range");
    assert_eq!(port_after(65535, 1, (1024, 65535)), 1024);
}

mod prop {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        /// Errors quoting a tracked connection, cut anywhere and with
        /// any bytes after the ports, and arbitrary ICMP messages to the
        /// VIP and the LIP: nothing panics, and what is forwarded has
        /// valid checksums.
        #[test]
        fn icmp_never_panics(
            cut in 0usize..80,
            tail in vec(any::<u8>(), 0..40),
            junk in vec(any::<u8>(), 0..80),
            to_lip in any::<bool>(),
        ) {
            let (mut e, mut ctl) = engine();
            resolve_rs(&mut e, &mut ctl);
            let mut syn = tcp((CLIENT_MAC, CLIENT, 33000), (LB_MAC, VIP, 80), true, false, b"");
            prop_assert_eq!(e.handle(&mut syn, 1, &mut ctl), Verdict::Forward);
            let mut quote = ip_of(&syn);
            quote.truncate(cut.max(1));
            if quote.len() > 24 {
                let n = (quote.len() - 24).min(tail.len());
                quote[24..24 + n].copy_from_slice(&tail[..n]);
            }
            let mut err = frag_needed(RS_MAC, RS, LIP, &quote);
            match e.handle(&mut err, 2, &mut ctl) {
                Verdict::Forward => {
                    let p = SlicedPacket::from_ethernet(&err).expect("parses");
                    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
                        panic!("not icmp")
                    };
                    let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
                    prop_assert_eq!(want, icmp.checksum());
                }
                Verdict::Drop(_) => {}
                Verdict::Ignore => prop_assert!(false, "an error to the LIP is ours"),
            }
            let dst = if to_lip { LIP } else { VIP };
            let mut raw = Vec::new();
            PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
                .ipv4(CLIENT.octets(), dst.octets(), 64)
                .write(&mut raw, etherparse::IpNumber::ICMP, &junk)
                .expect("raw");
            let _ = e.handle(&mut raw, 3, &mut ctl);
        }
    }
}

mod proxyproto;

mod scheduling;

mod tcpstate;

mod snat;

mod v6;

mod vlan;

mod port;

mod fast;

#[test]
fn a_full_template_table_purges_only_once_a_template_may_have_expired() {
    let mut t: Templates<Ipv4Addr> = Templates::new();
    let long = Persistence {
        timeout_s: 300,
        granularity: 32,
    };
    let short = Persistence {
        timeout_s: 1,
        ..long
    };
    let key = |i: u32| FlowKey {
        proto: 6,
        src: Ipv4Addr::from(0x0b00_0000 + i),
        dst: VIP,
        sport: 1000,
        dport: 80,
    };
    // Fill it: one template with a 1 s timeout among 300 s ones.
    assert!(t.refresh(&key(0), short, RS, 8080, 0));
    for i in 1..MAX_TEMPLATES as u32 {
        assert!(t.refresh(&key(i), long, RS, 8080, 0));
    }
    assert_eq!(t.purge_at_ms, 1_000, "the short template bounds the purge");
    let new = key(MAX_TEMPLATES as u32);
    // Full, nothing expired: refused without a purge.
    assert!(!t.refresh(&new, long, RS, 8080, 999));
    assert_eq!(t.map.len(), MAX_TEMPLATES);
    // The short one expired: purged, and the newcomer gets its place.
    assert!(t.refresh(&new, long, RS, 8080, 1_000));
    assert_eq!(t.map.len(), MAX_TEMPLATES);
    assert!(t.get(&TemplateKey::of(&key(0), short)).is_none());
    assert_eq!(t.purge_at_ms, 300_000);
    // Until then the next newcomer is refused at once, then admitted.
    let next = key(MAX_TEMPLATES as u32 + 1);
    assert!(!t.refresh(&next, long, RS, 8080, 299_999));
    assert!(t.refresh(&next, long, RS, 8080, 300_000));
    assert_eq!(t.map.len(), 2, "all but the two newest expired");
}
