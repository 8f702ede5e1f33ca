//! The established-flow fast path (`fast.rs`): which packets take it, and
//! that whatever takes it leaves exactly what the full path leaves.

use super::tcpstate::seg;
use super::*;
use crate::stats::TrafficSnapshot;

/// A MAC, address and port: one side of a packet.
type End = (MacAddr, Ipv4Addr, u16);

/// Client port `i`'s side.
fn client(i: u16) -> End {
    (CLIENT_MAC, CLIENT, 20_000 + i)
}

/// Opens connection `i` (TCP: SYN, SYN-ACK, ACK; UDP: one datagram) on
/// `e` and returns where the server's replies go (its source and
/// destination as the server sends them).
fn open(e: &mut Engine, ctl: &mut Burst, mode: Forwarding, i: u16, udp_flow: bool) -> (End, End) {
    let (vport, rs_port) = match (udp_flow, mode == Forwarding::Nat) {
        (false, true) => (80, 8080),
        (false, false) => (80, 80),
        (true, true) => (53, 5353),
        (true, false) => (53, 53),
    };
    let first = if udp_flow {
        udp(client(i), (LB_MAC, VIP, vport), b"q")
    } else {
        seg(client(i), (LB_MAC, VIP, vport), "S")
    };
    let (verdict, sent) = handle_grow(e, &first, 1, ctl);
    assert_eq!(verdict, Verdict::Forward);
    // TUN encapsulates: the inner addresses are the client's.
    let (src, sport) = if mode == Forwarding::Tun {
        (CLIENT, client(i).2)
    } else {
        let (_, _, src, _, sport, dport, _) = inspect(&sent);
        assert_eq!(dport, rs_port);
        (src, sport)
    };
    let server = (RS_MAC, RS, rs_port);
    let back = (LB_MAC, src, sport);
    if !udp_flow {
        let synack = seg(server, back, "SA");
        // DR: the server answers the client directly, not through us.
        let want = if mode.has_reply_path() {
            Verdict::Forward
        } else {
            Verdict::Ignore
        };
        assert_eq!(handle_grow(e, &synack, 1, ctl).0, want);
        let ack = seg(client(i), (LB_MAC, VIP, vport), "A");
        assert_eq!(handle_grow(e, &ack, 1, ctl).0, Verdict::Forward);
    }
    (server, back)
}

/// Offers `frame` to the fast path as [`Engine::handle_burst`] would (its
/// index entry prefetched) at `now`: whether it forwarded it, `None` when
/// it is no IPv4 forwarding work at all.
fn fast(e: &mut Engine, mut frame: Vec<u8>, now: u64) -> Option<bool> {
    let Stage::Ipv4(mut p) = e.classify(&frame) else {
        return None;
    };
    p.hint = e.v4.conns.prefetch_conn(p.hash);
    // Room to grow, as a frame buffer has (TUN).
    let len = frame.len();
    frame.resize(len + 64, 0);
    let done = e.v4.fast(&mut frame, len, &p, now);
    Some(matches!(done, Some((Verdict::Forward, _))))
}

fn engines(mode: Forwarding) -> ((Engine, Burst), (Engine, Burst)) {
    (
        mode_engine(mode, &[LIP], None),
        mode_engine(mode, &[LIP], None),
    )
}

/// Two engines alike: the first handles frames one by one, the second in
/// bursts (see [`same_in_a_burst`]).
type Pair = ((Engine, Burst), (Engine, Burst));

/// Opens flows `0..n` on both engines of `pair` with `open`, which must
/// return the same from each; returns what it did.
fn open_on_both<T: PartialEq + std::fmt::Debug>(
    pair: &mut Pair,
    n: u16,
    mut open: impl FnMut(&mut Engine, &mut Burst, u16) -> T,
) -> Vec<T> {
    (0..n)
        .map(|i| {
            let a = open(&mut pair.0 .0, &mut pair.0 .1, i);
            let b = open(&mut pair.1 .0, &mut pair.1 .1, i);
            assert_eq!(a, b);
            a
        })
        .collect()
}

/// Replays `steps` seven at a time, frame by frame and as bursts
/// (`frame` builds a step's frame; `pause`, the milliseconds a step moves
/// the clock on before its chunk): the same verdicts, frames, connection
/// counts and drop counters.
fn replay<S>(
    pair: &mut Pair,
    steps: &[S],
    pause: impl Fn(&S) -> u64,
    frame: impl Fn(&S) -> Vec<u8>,
) {
    let ((single, ctl), (burst, burst_ctl)) = pair;
    let mut now = 2;
    for chunk in steps.chunks(7) {
        let frames: Vec<Vec<u8>> = chunk.iter().map(&frame).collect();
        now += chunk.iter().map(&pause).sum::<u64>();
        same_in_a_burst(&frames, now, (single, ctl), (burst, burst_ctl));
        assert_eq!(single.conn_count(), burst.conn_count());
        assert_eq!(single.drops.snapshot(), burst.drops.snapshot());
    }
}

fn traffic(e: &mut Engine) -> TrafficSnapshot {
    e.flush_stats();
    e.snap.v4.services[0].servers[0].stats.snapshot()
}

#[test]
fn steady_packets_of_established_connections_take_it() {
    for mode in [
        Forwarding::Fnat,
        Forwarding::Nat,
        Forwarding::Dr,
        Forwarding::Tun,
    ] {
        let (mut e, mut ctl) = mode_engine(mode, &[LIP], None);
        let (server, back) = open(&mut e, &mut ctl, mode, 1, false);
        let vip = (LB_MAC, VIP, 80);
        assert_eq!(
            fast(&mut e, seg(client(1), vip, "A"), 2),
            Some(true),
            "{mode:?}: client ACK"
        );
        // DR: the server's packets are not ours at all.
        let server_side = mode.has_reply_path().then_some(true);
        assert_eq!(
            fast(&mut e, seg(server, back, "A"), 2),
            server_side,
            "{mode:?}: server ACK"
        );
        // What changes the state, or was never seen, takes the full path.
        for f in ["S", "SA", "F", "FA", "R", "RA", ""] {
            assert_eq!(
                fast(&mut e, seg(client(1), vip, f), 2),
                Some(false),
                "{mode:?}: {f}"
            );
        }
        assert_eq!(
            fast(&mut e, seg(client(2), vip, "A"), 2),
            Some(false),
            "{mode:?}: unknown"
        );
        // A UDP flow's datagrams take it once it is open.
        let (userver, uback) = open(&mut e, &mut ctl, mode, 3, true);
        assert_eq!(
            fast(&mut e, udp(client(3), (LB_MAC, VIP, 53), b"x"), 2),
            Some(true)
        );
        assert_eq!(fast(&mut e, udp(userver, uback, b"y"), 2), server_side);
    }
}

#[test]
fn quiescent_servers_persistence_expiry_and_dying_ttls_take_the_full_path() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Fnat, &[LIP], None);
    open(&mut e, &mut ctl, Forwarding::Fnat, 1, false);
    let vip = (LB_MAC, VIP, 80);
    let dying = tcp_ttl(client(1), vip, false, true, b"", 1);
    assert_eq!(fast(&mut e, dying, 2), Some(false), "TTL 1");
    // Past the established timeout: the full path frees it.
    assert_eq!(
        fast(&mut e, seg(client(1), vip, "A"), 1 + 900_000),
        Some(false)
    );
    assert_eq!(fast(&mut e, seg(client(1), vip, "A"), 3), Some(true));
    let Stage::Ipv4(p) = e.classify(&seg(client(1), vip, "A")) else {
        panic!("stage")
    };
    let (idx, _) = e.v4.conns.lookup(&p.key, 3).expect("open");
    let dest = e.v4.conns.get(idx).expect("conn").dest;
    fn d(e: &mut Engine, dest: crate::conn::DestId) -> &mut crate::conn::Dest<Ipv4Addr> {
        e.v4.conns.dest_mut(dest).expect("dest")
    }
    d(&mut e, dest).expire_quiescent = true;
    assert_eq!(
        fast(&mut e, seg(client(1), vip, "A"), 4),
        Some(false),
        "quiescent"
    );
    d(&mut e, dest).expire_quiescent = false;
    d(&mut e, dest).persistence = Some(Persistence {
        timeout_s: 300,
        granularity: 32,
    });
    assert_eq!(
        fast(&mut e, seg(client(1), vip, "A"), 5),
        Some(false),
        "persistence"
    );
    d(&mut e, dest).persistence = None;
    d(&mut e, dest).neigh_gen = d(&mut e, dest).neigh_gen.wrapping_add(1);
    assert_eq!(
        fast(&mut e, seg(client(1), vip, "A"), 6),
        Some(false),
        "MAC not cached"
    );
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// One packet of the generated traffic: flow, side, flags, payload
    /// length, TTL, time step.
    type Step = (u16, bool, u8, usize, u8, u64);

    fn flags(bits: u8) -> &'static str {
        [
            "A", "A", "A", "A", "PA", "S", "SA", "F", "FA", "R", "RA", "",
        ][usize::from(bits) % 12]
    }

    /// The packet `step` of flow `i` (TCP flows even, UDP odd).
    fn frame(flows: &[(End, End)], (i, from_server, bits, len, ttl, _): Step) -> Vec<u8> {
        let i = usize::from(i) % flows.len();
        let (server, back) = flows[i];
        let udp_flow = i % 2 == 1;
        let vport = if udp_flow { 53 } else { 80 };
        let (src, dst) = if from_server {
            (server, back)
        } else {
            (client(i as u16), (LB_MAC, VIP, vport))
        };
        let payload = vec![0x5a; len];
        let mut out = Vec::new();
        let b =
            PacketBuilder::ethernet2(src.0 .0, dst.0 .0).ipv4(src.1.octets(), dst.1.octets(), ttl);
        if udp_flow {
            b.udp(src.2, dst.2).write(&mut out, &payload).expect("udp");
        } else {
            let f = flags(bits);
            let mut t = b.tcp(src.2, dst.2, 1000, 65535);
            if f.contains('S') {
                t = t.syn();
            }
            if f.contains('A') {
                // Half the time the ACK number still acknowledges just the
                // server's SYN-ACK (sequence 1000): a TOA goes there.
                t = t.ack(if bits & 0x80 != 0 { 1001 } else { 7 });
            }
            if f.contains('P') {
                t = t.psh();
            }
            if f.contains('F') {
                t = t.fin();
            }
            if f.contains('R') {
                t = t.rst();
            }
            t.write(&mut out, &payload).expect("tcp");
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Established TCP and UDP flows in FNAT, NAT and DR, packets from
        /// both sides with any flags, lengths, TTLs and pauses (some past
        /// the timeouts): handled in bursts (fast path) and frame by frame
        /// (full path), the verdicts, frames, connection counts and
        /// per-server counters are identical.
        #[test]
        fn fast_path_forwards_as_the_full_path(
            mode in prop_oneof![Just(Forwarding::Fnat), Just(Forwarding::Nat), Just(Forwarding::Dr), Just(Forwarding::Tun)],
            steps in proptest::collection::vec(
                // Some payloads too big to tunnel (TUN drops them).
                (0u16..6, any::<bool>(), any::<u8>(), prop_oneof![9 => 0usize..64, 1 => 1430usize..1460], 1u8..4, prop_oneof![9 => Just(0u64), 1 => 0u64..200_000]),
                1..80,
            ),
        ) {
            let mut pair = engines(mode);
            let flows = open_on_both(&mut pair, 6, |e, ctl, i| open(e, ctl, mode, i, i % 2 == 1));
            // TTL 1..4 as generated; most steps keep the clock still.
            replay(&mut pair, &steps, |s| s.5, |&s| frame(&flows, s));
            let ((mut single, _), (mut burst, _)) = pair;
            prop_assert_eq!(traffic(&mut single), traffic(&mut burst));
        }
    }
}

/// The same over IPv6, NAT64 connections included (which decline).
mod prop6 {
    use super::super::v6::{engine6, nat64_engine, CLIENT6, LIP6, VIP6};
    use super::*;
    use etherparse::NetSlice;
    use proptest::prelude::*;
    use std::net::IpAddr;

    /// A MAC, address and port of either family.
    type Side = (MacAddr, IpAddr, u16);

    /// A TCP segment (flags as [`super::prop`]'s `S`, `A`, `P`, `F`, `R`;
    /// `T`: acknowledging the server's SYN-ACK)
    /// or, with `udp`, a datagram `src → dst` of `len` bytes.
    fn frame(src: Side, dst: Side, (udp, f): (bool, &str), len: usize, ttl: u8) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(src.0 .0, dst.0 .0);
        let ip = match (src.1, dst.1) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), ttl),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), ttl),
            _ => panic!("mixed families"),
        };
        let payload = vec![0xa5; len];
        let mut out = Vec::new();
        if udp {
            ip.udp(src.2, dst.2).write(&mut out, &payload).expect("udp");
            return out;
        }
        let mut t = ip.tcp(src.2, dst.2, 1000, 65535);
        for (c, set) in [('S', 0), ('A', 1), ('P', 2), ('F', 3), ('R', 4)] {
            if f.contains(c) {
                t = match set {
                    0 => t.syn(),
                    // `T`: the ACK number still acknowledges just the
                    // server's SYN-ACK (sequence 1000): a TOA goes there.
                    1 => t.ack(if f.contains('T') { 1001 } else { 7 }),
                    2 => t.psh(),
                    3 => t.fin(),
                    _ => t.rst(),
                };
            }
        }
        t.write(&mut out, &payload).expect("tcp");
        out
    }

    /// The source address and port of a forwarded frame.
    fn source(frame: &[u8]) -> (IpAddr, u16) {
        let p = SlicedPacket::from_ethernet(frame).expect("parses");
        let ip = match p.net {
            Some(NetSlice::Ipv4(ip)) => IpAddr::V4(ip.header().source_addr()),
            Some(NetSlice::Ipv6(ip)) => IpAddr::V6(ip.header().source_addr()),
            _ => panic!("not IP"),
        };
        let port = match p.transport {
            Some(TransportSlice::Tcp(t)) => t.source_port(),
            Some(TransportSlice::Udp(u)) => u.source_port(),
            _ => panic!("no transport"),
        };
        (ip, port)
    }

    fn client(i: u16) -> Side {
        (CLIENT_MAC, CLIENT6.into(), 20_000 + i)
    }

    /// Opens flow `i` (odd: UDP) and returns the real server's side and
    /// where its replies go (`None` for DR: they do not pass through us).
    fn open(e: &mut Engine, ctl: &mut Burst, i: u16, rs_port: (u16, u16)) -> Option<(Side, Side)> {
        let udp = i % 2 == 1;
        let vip = (LB_MAC, VIP6.into(), if udp { 53 } else { 80 });
        let (v, sent) = handle_grow(e, &frame(client(i), vip, (udp, "S"), 0, 64), 1, ctl);
        assert_eq!(v, Verdict::Forward);
        let (src, sport) = source(&sent);
        let rs = match sent.get(12..14) {
            Some([0x08, 0x00]) => IpAddr::V4(RS),
            _ => IpAddr::V6(super::super::v6::RS6),
        };
        let server = (RS_MAC, rs, if udp { rs_port.1 } else { rs_port.0 });
        let back = (LB_MAC, src, sport);
        if !udp {
            let (v, _) = handle_grow(e, &frame(server, back, (false, "SA"), 0, 64), 1, ctl);
            if v != Verdict::Forward {
                return None;
            }
            let (v, _) = handle_grow(e, &frame(client(i), vip, (false, "A"), 0, 64), 1, ctl);
            assert_eq!(v, Verdict::Forward);
        }
        Some((server, back))
    }

    fn flags(bits: u8) -> &'static str {
        [
            "A", "A", "A", "A", "PA", "S", "SA", "F", "FA", "R", "RA", "",
        ][usize::from(bits) % 12]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn fast_path_forwards_ipv6_as_the_full_path(
            which in 0usize..4,
            steps in proptest::collection::vec(
                (0u16..4, any::<bool>(), any::<u8>(), 0usize..64, 1u8..4, prop_oneof![9 => Just(0u64), 1 => 0u64..200_000]),
                1..60,
            ),
        ) {
            let (mode, ports) = [
                (Some(Forwarding::Fnat), (8080, 5353)),
                (Some(Forwarding::Nat), (8080, 5353)),
                (Some(Forwarding::Dr), (80, 53)),
                (None, (8080, 5353)),
            ][which];
            let make = || match mode {
                Some(m) => engine6(m, &[LIP6]),
                None => nat64_engine(),
            };
            let mut pair = (make(), make());
            let flows = open_on_both(&mut pair, 4, |e, ctl, i| open(e, ctl, i, ports));
            replay(&mut pair, &steps, |s| s.5, |&(i, from_server, bits, len, ttl, _)| {
                let i = usize::from(i) % flows.len();
                let udp = i % 2 == 1;
                let vip = (LB_MAC, VIP6.into(), if udp { 53 } else { 80 });
                let (src, dst) = match flows[i] {
                    Some((server, back)) if from_server => (server, back),
                    _ => (client(i as u16), vip),
                };
                let f = flags(bits);
                let f = if bits & 0x80 != 0 { format!("{f}T") } else { f.to_string() };
                frame(src, dst, (udp, &f), len, ttl)
            });
        }
    }
}
