//! IPv6 golden packet tests: every expected frame is built by etherparse
//! (its own checksum code is the oracle) and compared byte for byte.

use super::*;
use crate::engine::v6::{link_local, TOA6_LEN};
use crate::wire::icmpv6::{NEIGHBOR_ADVERT, NEIGHBOR_SOLICIT};
use crate::wire::Ipv6Packet;
use etherparse::NetSlice;

pub(super) const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub(super) const RS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
pub(super) const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
pub(super) const LIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x200);

pub(super) type End6 = (MacAddr, Ipv6Addr, u16);

/// VIP6:80/tcp and VIP6:53/udp with `mode` to RS6 (ports 8080/5353 for
/// FNAT and NAT, the VIP's ports otherwise).
pub(super) fn snapshot6(mode: Forwarding, lips: &[Ipv6Addr]) -> Arc<Snapshot> {
    let (tport, uport) = match mode {
        Forwarding::Fnat | Forwarding::Nat => (8080, 5353),
        _ => (80, 53),
    };
    let svc = |port, protocol, rs_port| {
        service(
            VIP6,
            (port, protocol),
            vec![server(RS6, rs_port)],
            lips.to_vec(),
        )
    };
    let mut v6 = Snapshot6 {
        services: vec![svc(80, Protocol::Tcp, tport), svc(53, Protocol::Udp, uport)],
        owned_vips: vec![VIP6],
        local_addrs: lips.to_vec(),
        neighbours: vec![(RS6, lips.first().copied().unwrap_or(Ipv6Addr::UNSPECIFIED))],
        forwarding: vec![mode; 2],
        nat_servers: if mode == Forwarding::Nat {
            vec![RS6]
        } else {
            vec![]
        },
        ..Snapshot6::default()
    };
    v6.lookup.insert((VIP6, 80, 6), 0);
    v6.lookup.insert((VIP6, 53, 17), 1);
    Arc::new(Snapshot {
        v6,
        ..Snapshot::default()
    })
}

/// An engine for `mode` over IPv6 whose real server is not resolved yet.
pub(super) fn engine6_unresolved(mode: Forwarding, lips: &[Ipv6Addr]) -> (Engine, Burst) {
    engine6_unresolved_sized(mode, lips, 1024)
}

/// [`engine6_unresolved`] holding `capacity` connections per family.
fn engine6_unresolved_sized(
    mode: Forwarding,
    lips: &[Ipv6Addr],
    capacity: usize,
) -> (Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, capacity, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(snapshot6(mode, lips), 0, &mut ctl);
    (e, ctl)
}

/// An engine for `mode` over IPv6 with RS6 resolved by a neighbor advertisement.
pub(super) fn engine6(mode: Forwarding, lips: &[Ipv6Addr]) -> (Engine, Burst) {
    engine6_sized(mode, lips, 1024)
}

/// [`engine6`] holding `capacity` connections per family.
fn engine6_sized(mode: Forwarding, lips: &[Ipv6Addr], capacity: usize) -> (Engine, Burst) {
    let (mut e, mut ctl) = engine6_unresolved_sized(mode, lips, capacity);
    let to = lips.first().copied().unwrap_or(link_local(LB_MAC));
    let mut na = nd(
        NEIGHBOR_ADVERT,
        0x60,
        (RS_MAC, LB_MAC),
        (RS6, to),
        RS6,
        2,
        RS_MAC,
    );
    assert_eq!(e.handle(&mut na, 1, &mut ctl), Verdict::Ignore);
    ctl.clear();
    (e, ctl)
}

/// The client's neighbor solicitation for `target`, to its
/// solicited-node multicast group.
pub(super) fn solicitation(target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::from([
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15],
    ]);
    let mac = MacAddr([0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    let ends = ((CLIENT_MAC, mac), (CLIENT6, group));
    nd(NEIGHBOR_SOLICIT, 0, ends.0, ends.1, target, 1, CLIENT_MAC)
}

/// An NS or NA built by etherparse: `target`, one link-layer address
/// option of `kind` carrying `ll`.
pub(super) fn nd(
    msg_type: u8,
    flags: u8,
    (smac, dmac): (MacAddr, MacAddr),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    target: Ipv6Addr,
    kind: u8,
    ll: MacAddr,
) -> Vec<u8> {
    let mut body = target.octets().to_vec();
    body.extend_from_slice(&[kind, 1]);
    body.extend_from_slice(ll.as_bytes());
    let mut out = Vec::new();
    PacketBuilder::ethernet2(smac.0, dmac.0)
        .ipv6(src.octets(), dst.octets(), 255)
        .icmpv6_raw(msg_type, 0, [flags, 0, 0, 0])
        .write(&mut out, &body)
        .expect("build nd");
    out
}

pub(super) fn tcp6(src: End6, dst: End6, flags: (bool, bool), payload: &[u8], hop: u8) -> Vec<u8> {
    tcp6_opts(src, dst, flags, payload, hop, &[])
}

fn tcp6_opts(
    src: End6,
    dst: End6,
    (syn, ack): (bool, bool),
    payload: &[u8],
    hop: u8,
    options: &[u8],
) -> Vec<u8> {
    let seg = Seg {
        seq: 1000,
        ack: ack.then_some(7),
        syn,
        window: 65535,
        options,
        hop,
    };
    seg6(src, dst, &seg, payload)
}

/// Where the TCP header of a [`seg6`] frame starts.
const L4_AT6: usize = ETH_LEN + 40;

fn seg6(src: End6, dst: End6, s: &Seg, payload: &[u8]) -> Vec<u8> {
    let ip =
        PacketBuilder::ethernet2(src.0 .0, dst.0 .0).ipv6(src.1.octets(), dst.1.octets(), s.hop);
    seg_on(ip, (src.2, dst.2), s, payload)
}

pub(super) fn udp6(src: End6, dst: End6, payload: &[u8], hop: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
        .ipv6(src.1.octets(), dst.1.octets(), hop)
        .udp(src.2, dst.2)
        .write(&mut out, payload)
        .expect("build udp6");
    out
}

/// Checks an IPv6 frame's TCP/UDP/ICMPv6 checksum with etherparse (it
/// walks extension headers itself) and returns its source port.
pub(super) fn checked6(frame: &[u8]) -> u16 {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses our output");
    let Some(NetSlice::Ipv6(ip)) = p.net.clone() else {
        panic!("not ipv6")
    };
    let (s, d) = (ip.header().source(), ip.header().destination());
    match p.transport {
        Some(TransportSlice::Tcp(t)) => {
            assert_eq!(
                t.calc_checksum_ipv6(s, d).expect("csum"),
                t.checksum(),
                "TCP checksum"
            );
            t.source_port()
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u
                .to_header()
                .calc_checksum_ipv6_raw(s, d, u.payload())
                .expect("csum");
            assert_eq!(want, u.checksum(), "UDP checksum");
            u.source_port()
        }
        Some(TransportSlice::Icmpv6(m)) => {
            assert!(m.is_checksum_valid(s, d), "ICMPv6 checksum");
            0
        }
        _ => panic!("no transport"),
    }
}

#[test]
fn ns_for_real_servers_on_publish_and_na_for_our_addresses() {
    let (e, ctl) = engine6_unresolved(Forwarding::Fnat, &[LIP6]);
    drop(e);
    // Unsolicited NAs for the VIP and the LIP, an NS for the real server
    // to its solicited-node group, from the LIP.
    let frames: Vec<Vec<u8>> = ctl.frames().iter().map(|f| f.data().to_vec()).collect();
    let na = |ip: Ipv6Addr| {
        nd(
            NEIGHBOR_ADVERT,
            0x20,
            (LB_MAC, MacAddr([0x33, 0x33, 0, 0, 0, 1])),
            (ip, "ff02::1".parse().expect("ip")),
            ip,
            2,
            LB_MAC,
        )
    };
    let (want_vip, want_lip) = (na(VIP6), na(LIP6));
    let want_ns = nd(
        NEIGHBOR_SOLICIT,
        0,
        (LB_MAC, MacAddr([0x33, 0x33, 0xff, 0, 0, 3])),
        (LIP6, "ff02::1:ff00:3".parse().expect("ip")),
        RS6,
        1,
        LB_MAC,
    );
    for f in &frames {
        checked6(f);
    }
    assert!(frames.contains(&want_vip), "NA for the VIP");
    assert!(frames.contains(&want_lip), "NA for the LIP");
    assert!(frames.contains(&want_ns), "NS for the real server");
}

#[test]
fn answers_ns_for_vip_and_lip_only() {
    let (mut e, mut ctl) = engine6(Forwarding::Fnat, &[LIP6]);
    let group = |ip: Ipv6Addr| {
        let o = ip.octets();
        (
            Ipv6Addr::from([
                0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
            ]),
            MacAddr([0x33, 0x33, 0xff, o[13], o[14], o[15]]),
        )
    };
    for ip in [VIP6, LIP6] {
        let (g, gmac) = group(ip);
        let mut ns = nd(
            NEIGHBOR_SOLICIT,
            0,
            (CLIENT_MAC, gmac),
            (CLIENT6, g),
            ip,
            1,
            CLIENT_MAC,
        );
        let (v, out) = handle_grow(&mut e, &ns, 2, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        // Solicited + override.
        let want = nd(
            NEIGHBOR_ADVERT,
            0x60,
            (LB_MAC, CLIENT_MAC),
            (ip, CLIENT6),
            ip,
            2,
            LB_MAC,
        );
        assert_eq!(out, want, "NA for {ip}");
        // Without room to grow (`handle`), the NA still fits an NS with an option.
        assert_eq!(e.handle(&mut ns, 2, &mut ctl), Verdict::Forward);
    }
    // Duplicate address detection of our VIP (from ::): defended to all nodes.
    let (g, gmac) = group(VIP6);
    let dad = nd(
        NEIGHBOR_SOLICIT,
        0,
        (CLIENT_MAC, gmac),
        (Ipv6Addr::UNSPECIFIED, g),
        VIP6,
        1,
        CLIENT_MAC,
    );
    let (v, out) = handle_grow(&mut e, &dad, 2, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    checked6(&out);
    let ip = Ipv6Packet::new_checked(&out[ETH_LEN..]).expect("ipv6");
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (VIP6, "ff02::1".parse().expect("ip"))
    );
    // Someone else's address: not ours to answer.
    let other: Ipv6Addr = "2001:db8::1".parse().expect("ip");
    let (g, gmac) = group(other);
    let mut ns = nd(
        NEIGHBOR_SOLICIT,
        0,
        (CLIENT_MAC, gmac),
        (CLIENT6, g),
        other,
        1,
        CLIENT_MAC,
    );
    assert_eq!(e.handle(&mut ns, 2, &mut ctl), Verdict::Ignore);
    // A forged hop limit is not neighbor discovery.
    let (g, gmac) = group(VIP6);
    let mut ns = nd(
        NEIGHBOR_SOLICIT,
        0,
        (CLIENT_MAC, gmac),
        (CLIENT6, g),
        VIP6,
        1,
        CLIENT_MAC,
    );
    ns[ETH_LEN + 7] = 64;
    assert_eq!(
        e.handle(&mut ns, 2, &mut ctl),
        Verdict::Drop(Drop::Malformed)
    );
}

#[test]
fn fnat6_tcp_golden_both_directions_with_toa() {
    let (mut e, mut ctl) = engine6_unresolved(Forwarding::Fnat, &[LIP6]);
    ctl.clear();
    let client = (CLIENT_MAC, CLIENT6, 33000);
    let vip = (LB_MAC, VIP6, 80);
    let syn = tcp6(client, vip, (true, false), b"", 64);
    // Unresolved: dropped, and an NS goes out.
    let mut early = syn.clone();
    assert_eq!(
        e.handle(&mut early, 500, &mut ctl),
        Verdict::Drop(Drop::NeighbourUnresolved)
    );
    assert_eq!(ctl.len(), 1);
    let mut na = nd(
        NEIGHBOR_ADVERT,
        0x60,
        (RS_MAC, LB_MAC),
        (RS6, LIP6),
        RS6,
        2,
        RS_MAC,
    );
    assert_eq!(e.handle(&mut na, 1, &mut ctl), Verdict::Ignore);

    // The SYN carries the client as DPVS's IPv6 TOA (kind 254, 20 bytes).
    let (v, out) = handle_grow(&mut e, &syn, 10, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let lport = checked6(&out);
    assert!((40000..=40100).contains(&lport));
    let toa = toa_opt(CLIENT6, 33000);
    let (lip, rs) = ((LB_MAC, LIP6, lport), (RS_MAC, RS6, 8080));
    assert_eq!(out, tcp6_opts(lip, rs, (true, false), b"", 63, &toa));

    // The SYN-ACK (sequence number 6: `tcp6` frames acknowledge 7)
    // reaches the client with its MSS 20 lower.
    let (mss_1460, mss_1440) = (mss(1460), mss(1440));
    let synack = seg6(rs, lip, &fields(6, Some(1001), true, &mss_1460, 64), b"");
    let (v, out) = handle_grow(&mut e, &synack, 11, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let want = fields(6, Some(1001), true, &mss_1440, 63);
    assert_eq!(out, seg6(vip, client, &want, b""));

    // The first ACK and the data before the client acknowledges any of
    // the server's carry the TOA too.
    for data in [&b"hello"[..], b"more"] {
        let ack = tcp6(client, vip, (false, true), data, 64);
        let (v, out) = handle_grow(&mut e, &ack, 12, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out, tcp6_opts(lip, rs, (false, true), data, 63, &toa));
    }
    // Data acknowledging the server's: no TOA.
    let data = seg6(
        client,
        vip,
        &fields(1000, Some(20), false, &[], 64),
        b"again",
    );
    let (_, out) = handle_grow(&mut e, &data, 13, &mut ctl);
    assert_eq!(
        out,
        seg6(lip, rs, &fields(1000, Some(20), false, &[], 63), b"again")
    );
    // FIN and RST acknowledging the SYN-ACK: no TOA.
    for bits in [0x01, 0x04] {
        let seg = with_tcp_flags(tcp6(client, vip, (false, true), b"", 64), L4_AT6, bits);
        let (v, out) = handle_grow(&mut e, &seg, 14, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        let want = tcp6(lip, rs, (false, true), b"", 63);
        assert_eq!(out, with_tcp_flags(want, L4_AT6, bits));
    }
    assert_eq!(e.conn_count(), 1);
    e.flush_stats();
    let svc = &e.snap.v6.services[0];
    assert_eq!(svc.stats.snapshot().conns, 1);
    assert_eq!(svc.servers[0].stats.snapshot().out_pkts, 1);
}

#[test]
fn fnat6_udp_golden_both_directions() {
    let (mut e, mut ctl) = engine6(Forwarding::Fnat, &[LIP6]);
    let mut q = udp6(
        (CLIENT_MAC, CLIENT6, 5000),
        (LB_MAC, VIP6, 53),
        b"query!",
        64,
    );
    assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
    let lport = checked6(&q);
    assert_eq!(
        q,
        udp6((LB_MAC, LIP6, lport), (RS_MAC, RS6, 5353), b"query!", 63)
    );
    let mut a = udp6((RS_MAC, RS6, 5353), (LB_MAC, LIP6, lport), b"answer", 64);
    assert_eq!(e.handle(&mut a, 11, &mut ctl), Verdict::Forward);
    assert_eq!(
        a,
        udp6(
            (LB_MAC, VIP6, 53),
            (CLIENT_MAC, CLIENT6, 5000),
            b"answer",
            63
        )
    );
}

#[test]
fn nat6_tcp_and_udp_golden_both_directions() {
    let (mut e, mut ctl) = engine6(Forwarding::Nat, &[]);
    let client = (CLIENT_MAC, CLIENT6, 33000);
    let mut syn = tcp6(client, (LB_MAC, VIP6, 80), (true, false), b"", 64);
    assert_eq!(e.handle(&mut syn, 10, &mut ctl), Verdict::Forward);
    assert_eq!(
        syn,
        tcp6(
            (LB_MAC, CLIENT6, 33000),
            (RS_MAC, RS6, 8080),
            (true, false),
            b"",
            63
        )
    );
    checked6(&syn);
    // The reply is addressed to the client, not to us.
    let mut synack = tcp6(
        (RS_MAC, RS6, 8080),
        (LB_MAC, CLIENT6, 33000),
        (true, true),
        b"",
        64,
    );
    assert_eq!(e.handle(&mut synack, 11, &mut ctl), Verdict::Forward);
    assert_eq!(
        synack,
        tcp6(
            (LB_MAC, VIP6, 80),
            (CLIENT_MAC, CLIENT6, 33000),
            (true, true),
            b"",
            63
        )
    );
    let mut q = udp6((CLIENT_MAC, CLIENT6, 5000), (LB_MAC, VIP6, 53), b"q", 64);
    assert_eq!(e.handle(&mut q, 12, &mut ctl), Verdict::Forward);
    assert_eq!(
        q,
        udp6((LB_MAC, CLIENT6, 5000), (RS_MAC, RS6, 5353), b"q", 63)
    );
    let mut a = udp6((RS_MAC, RS6, 5353), (LB_MAC, CLIENT6, 5000), b"a", 64);
    assert_eq!(e.handle(&mut a, 13, &mut ctl), Verdict::Forward);
    assert_eq!(
        a,
        udp6((LB_MAC, VIP6, 53), (CLIENT_MAC, CLIENT6, 5000), b"a", 63)
    );
    // The NAT real server's own traffic is the kernel's.
    let mut own = tcp6(
        (RS_MAC, RS6, 22),
        (LB_MAC, CLIENT6, 999),
        (true, false),
        b"",
        64,
    );
    assert_eq!(e.handle(&mut own, 14, &mut ctl), Verdict::Ignore);
}

#[test]
fn dr6_tcp_and_udp_golden_mac_rewrite_only() {
    let (mut e, mut ctl) = engine6(Forwarding::Dr, &[]);
    for hop in [64, 1] {
        let syn = tcp6(
            (CLIENT_MAC, CLIENT6, 1000 + u16::from(hop)),
            (LB_MAC, VIP6, 80),
            (true, false),
            b"",
            hop,
        );
        let mut out = syn.clone();
        assert_eq!(e.handle(&mut out, 10, &mut ctl), Verdict::Forward);
        let mut want = syn;
        want[..6].copy_from_slice(RS_MAC.as_bytes());
        want[6..12].copy_from_slice(LB_MAC.as_bytes());
        assert_eq!(out, want, "hop limit {hop} untouched");
    }
    let q = udp6((CLIENT_MAC, CLIENT6, 5000), (LB_MAC, VIP6, 53), b"q", 64);
    let mut out = q.clone();
    assert_eq!(e.handle(&mut out, 11, &mut ctl), Verdict::Forward);
    assert_eq!(out[12..], q[12..]);
    assert_eq!(out[..6], RS_MAC.0);
}

#[test]
fn tun6_golden_ip6ip6() {
    let (mut e, mut ctl) = engine6(Forwarding::Tun, &[LIP6]);
    let syn = tcp6(
        (CLIENT_MAC, CLIENT6, 1000),
        (LB_MAC, VIP6, 80),
        (true, false),
        b"x",
        64,
    );
    let (v, out) = handle_grow(&mut e, &syn, 10, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    // Outer IPv6 LIP → RS, next header 41, hop limit copied; inner untouched.
    let inner = &syn[ETH_LEN..];
    let mut want = Vec::new();
    PacketBuilder::ethernet2(LB_MAC.0, RS_MAC.0)
        .ipv6(LIP6.octets(), RS6.octets(), 64)
        .write(&mut want, etherparse::IpNumber(41), inner)
        .expect("build ip6ip6");
    assert_eq!(out, want);
    // No room for 40 more bytes in `handle`.
    let mut fixed = syn.clone();
    assert_eq!(
        e.handle(&mut fixed, 11, &mut ctl),
        Verdict::Drop(Drop::NoRoom)
    );
    // Too big for the MTU once encapsulated.
    let big = tcp6(
        (CLIENT_MAC, CLIENT6, 1000),
        (LB_MAC, VIP6, 80),
        (false, true),
        &[0; 1500 - 60 - 10],
        64,
    );
    let (v, _) = handle_grow(&mut e, &big, 12, &mut ctl);
    assert_eq!(v, Verdict::Drop(Drop::TunnelTooBig));
}

/// `frame` with an 8-byte extension header of type `ext` (hop-by-hop 0,
/// destination options 60, fragment 44) inserted after the IPv6 header.
fn with_ext(frame: &[u8], ext: u8) -> Vec<u8> {
    let at = ETH_LEN + 40;
    let mut out = frame[..at].to_vec();
    let next = out[ETH_LEN + 6];
    out[ETH_LEN + 6] = ext;
    let plen = u16::from_be_bytes([out[ETH_LEN + 4], out[ETH_LEN + 5]]) + 8;
    out[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&plen.to_be_bytes());
    // Next header, length 0 (8 bytes), PadN padding (or a fragment offset 0
    // with more fragments).
    if ext == 44 {
        out.extend_from_slice(&[next, 0, 0, 1, 0, 0, 0, 7]);
    } else {
        out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    out.extend_from_slice(&frame[at..]);
    out
}

#[test]
fn extension_headers_are_skipped_and_fragments_dropped() {
    let (mut e, mut ctl) = engine6(Forwarding::Fnat, &[LIP6]);
    let syn = tcp6(
        (CLIENT_MAC, CLIENT6, 7),
        (LB_MAC, VIP6, 80),
        (true, false),
        b"",
        64,
    );
    let mut two = with_ext(&with_ext(&syn, 60), 0);
    assert_eq!(e.handle(&mut two, 10, &mut ctl), Verdict::Forward);
    let lport = checked6(&two);
    let plain = tcp6(
        (LB_MAC, LIP6, lport),
        (RS_MAC, RS6, 8080),
        (true, false),
        b"",
        63,
    );
    assert_eq!(
        two,
        with_ext(&with_ext(&plain, 60), 0),
        "headers kept, TCP rewritten"
    );
    let mut frag = with_ext(
        &tcp6(
            (CLIENT_MAC, CLIENT6, 8),
            (LB_MAC, VIP6, 80),
            (true, false),
            b"",
            64,
        ),
        44,
    );
    assert_eq!(
        e.handle(&mut frag, 11, &mut ctl),
        Verdict::Drop(Drop::Fragment)
    );
    assert_eq!(e.drops.get(Drop::Fragment), 1);
}

#[test]
fn bad_ipv6_packets_are_counted_under_their_reason() {
    let (mut e, mut ctl) = engine6(Forwarding::Fnat, &[LIP6]);
    let good = tcp6(
        (CLIENT_MAC, CLIENT6, 1),
        (LB_MAC, VIP6, 80),
        (true, false),
        b"",
        64,
    );
    let cases: Vec<(Vec<u8>, Drop)> = vec![
        (
            tcp6(
                (CLIENT_MAC, CLIENT6, 2),
                (LB_MAC, VIP6, 80),
                (false, true),
                b"",
                64,
            ),
            Drop::NoConnection,
        ),
        (
            tcp6(
                (CLIENT_MAC, CLIENT6, 3),
                (LB_MAC, VIP6, 81),
                (true, false),
                b"",
                64,
            ),
            Drop::NoService,
        ),
        (
            tcp6(
                (CLIENT_MAC, CLIENT6, 4),
                (LB_MAC, VIP6, 80),
                (true, false),
                b"",
                1,
            ),
            Drop::TtlExceeded,
        ),
        // Payload length past the frame.
        (good[..good.len() - 4].to_vec(), Drop::Truncated),
        // TCP header cut short (payload length says so too).
        (
            {
                let mut f = good[..ETH_LEN + 40 + 10].to_vec();
                f[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&10u16.to_be_bytes());
                f
            },
            Drop::Truncated,
        ),
        // Extension header running past the payload.
        (
            {
                let mut f = with_ext(&good, 0);
                f[ETH_LEN + 41] = 200;
                f
            },
            Drop::Truncated,
        ),
        (
            tcp6(
                (RS_MAC, RS6, 8080),
                (LB_MAC, LIP6, 40050),
                (false, true),
                b"",
                64,
            ),
            Drop::NoConnection,
        ),
    ];
    assert_drops(&mut e, &mut ctl, cases, &good);
    // Not our address: the kernel's.
    let mut other = tcp6(
        (CLIENT_MAC, CLIENT6, 1),
        (LB_MAC, CLIENT6, 22),
        (true, false),
        b"",
        64,
    );
    assert_eq!(e.handle(&mut other, 0, &mut ctl), Verdict::Ignore);
    // IPv4 and IPv6 connections live side by side.
    assert_eq!(e.conn_count(), 0);
    let mut ok = good.clone();
    assert_eq!(e.handle(&mut ok, 0, &mut ctl), Verdict::Forward);
    assert_eq!(e.conn_count(), 1);
}

/// An ICMPv6 error (`msg_type`, `code`, type-specific word `rest`)
/// `src → dst` quoting the IPv6 packet of `quoted_frame`, built by etherparse.
pub(super) fn icmp6_error(
    macs: (MacAddr, MacAddr),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hop: u8,
    (msg_type, code, rest): (u8, u8, u32),
    quoted_frame: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0 .0, macs.1 .0)
        .ipv6(src.octets(), dst.octets(), hop)
        .icmpv6_raw(msg_type, code, rest.to_be_bytes())
        .write(&mut out, &quoted_frame[ETH_LEN..])
        .expect("build icmpv6");
    out
}

/// A FNAT (or NAT) engine with one TCP connection CLIENT6:33000 → VIP6:80;
/// returns the engine and the local port (FNAT) or 33000 (NAT).
fn connected6(mode: Forwarding) -> (Engine, Burst, u16) {
    let lips: &[Ipv6Addr] = if mode == Forwarding::Fnat {
        &[LIP6]
    } else {
        &[]
    };
    let (mut e, mut ctl) = engine6(mode, lips);
    let syn = tcp6(
        (CLIENT_MAC, CLIENT6, 33000),
        (LB_MAC, VIP6, 80),
        (true, false),
        b"",
        64,
    );
    let (v, out) = handle_grow(&mut e, &syn, 10, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let lport = checked6(&out);
    (e, ctl, lport)
}

const PACKET_TOO_BIG: (u8, u8, u32) = (2, 0, 1280);
const PORT_UNREACHABLE: (u8, u8, u32) = (1, 4, 0);
const HOP_LIMIT_EXCEEDED: (u8, u8, u32) = (3, 0, 0);

#[test]
fn fnat6_icmp_errors_are_translated_both_ways_golden() {
    let (mut e, mut ctl, lport) = connected6(Forwarding::Fnat);
    // A router on the server side: our LIP → RS packet is too big. The
    // client gets it about its own packet, from the VIP.
    let sent = tcp6(
        (LB_MAC, LIP6, lport),
        (RS_MAC, RS6, 8080),
        (false, true),
        b"big",
        63,
    );
    let router: Ipv6Addr = "fd00::fe".parse().expect("ip");
    let mut err = icmp6_error((RS_MAC, LB_MAC), (router, LIP6), 64, PACKET_TOO_BIG, &sent);
    let (v, out) = handle_grow(&mut e, &err, 20, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let theirs = tcp6(
        (CLIENT_MAC, CLIENT6, 33000),
        (LB_MAC, VIP6, 80),
        (false, true),
        b"big",
        63,
    );
    let want = icmp6_error(
        (LB_MAC, CLIENT_MAC),
        (VIP6, CLIENT6),
        63,
        PACKET_TOO_BIG,
        &theirs,
    );
    assert_eq!(out, want);
    checked6(&out);
    // The client side: our VIP → client reply is unreachable. The real
    // server gets it about its own packet, from the LIP.
    let reply = tcp6(
        (LB_MAC, VIP6, 80),
        (CLIENT_MAC, CLIENT6, 33000),
        (true, true),
        b"",
        63,
    );
    let mut back = icmp6_error(
        (CLIENT_MAC, LB_MAC),
        (CLIENT6, VIP6),
        64,
        PORT_UNREACHABLE,
        &reply,
    );
    let (v, out) = handle_grow(&mut e, &back, 21, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let rs_sent = tcp6(
        (RS_MAC, RS6, 8080),
        (LB_MAC, LIP6, lport),
        (true, true),
        b"",
        63,
    );
    let want = icmp6_error(
        (LB_MAC, RS_MAC),
        (LIP6, RS6),
        63,
        PORT_UNREACHABLE,
        &rs_sent,
    );
    assert_eq!(out, want);
    // Corrupted: counted, not forwarded.
    let n = err.len();
    err[n - 1] ^= 0xff;
    assert_eq!(
        e.handle(&mut err, 22, &mut ctl),
        Verdict::Drop(Drop::BadChecksum)
    );
    // About no connection we know.
    let stranger = tcp6(
        (LB_MAC, VIP6, 80),
        (CLIENT_MAC, CLIENT6, 1),
        (true, true),
        b"",
        63,
    );
    let mut unknown = icmp6_error(
        (CLIENT_MAC, LB_MAC),
        (CLIENT6, VIP6),
        64,
        PORT_UNREACHABLE,
        &stranger,
    );
    assert_eq!(
        e.handle(&mut unknown, 23, &mut ctl),
        Verdict::Drop(Drop::NoConnection)
    );
    // Not an error: an echo request to the VIP.
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
        .ipv6(CLIENT6.octets(), VIP6.octets(), 64)
        .icmpv6_raw(128, 0, [0, 1, 0, 1])
        .write(&mut echo, b"ping")
        .expect("echo");
    assert_eq!(
        e.handle(&mut echo, 24, &mut ctl),
        Verdict::Drop(Drop::IcmpUnhandled)
    );
    // Without room to grow nothing is needed: errors keep their length.
    assert_eq!(e.handle(&mut back, 25, &mut ctl), Verdict::Forward);
}

#[test]
fn nat6_icmp_errors_keep_the_sender_towards_the_real_server_golden() {
    let (mut e, mut ctl, _) = connected6(Forwarding::Nat);
    // A router on the client side: our reply VIP6 → client ran out of hops.
    let router: Ipv6Addr = "2001:db8::fe".parse().expect("ip");
    let reply = tcp6(
        (LB_MAC, VIP6, 80),
        (CLIENT_MAC, CLIENT6, 33000),
        (true, true),
        b"",
        63,
    );
    let err = icmp6_error(
        (CLIENT_MAC, LB_MAC),
        (router, VIP6),
        64,
        HOP_LIMIT_EXCEEDED,
        &reply,
    );
    let (v, out) = handle_grow(&mut e, &err, 20, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let rs_sent = tcp6(
        (RS_MAC, RS6, 8080),
        (LB_MAC, CLIENT6, 33000),
        (true, true),
        b"",
        63,
    );
    let want = icmp6_error(
        (LB_MAC, RS_MAC),
        (router, RS6),
        63,
        HOP_LIMIT_EXCEEDED,
        &rs_sent,
    );
    assert_eq!(out, want);
}

#[test]
fn dr6_and_tun6_pass_client_side_icmp_errors_to_the_real_server() {
    for mode in [Forwarding::Dr, Forwarding::Tun] {
        let (mut e, mut ctl) = engine6(mode, &[LIP6]);
        let syn = tcp6(
            (CLIENT_MAC, CLIENT6, 33000),
            (LB_MAC, VIP6, 80),
            (true, false),
            b"",
            64,
        );
        assert_eq!(handle_grow(&mut e, &syn, 10, &mut ctl).0, Verdict::Forward);
        let reply = tcp6(
            (RS_MAC, VIP6, 80),
            (CLIENT_MAC, CLIENT6, 33000),
            (true, true),
            b"",
            64,
        );
        let err = icmp6_error(
            (CLIENT_MAC, LB_MAC),
            (CLIENT6, VIP6),
            64,
            PACKET_TOO_BIG,
            &reply,
        );
        let (v, out) = handle_grow(&mut e, &err, 20, &mut ctl);
        assert_eq!(v, Verdict::Forward, "{mode:?}");
        let mut want = Vec::new();
        if mode == Forwarding::Dr {
            want = err.clone();
            want[..6].copy_from_slice(RS_MAC.as_bytes());
            want[6..12].copy_from_slice(LB_MAC.as_bytes());
        } else {
            PacketBuilder::ethernet2(LB_MAC.0, RS_MAC.0)
                .ipv6(LIP6.octets(), RS6.octets(), 64)
                .write(&mut want, etherparse::IpNumber(41), &err[ETH_LEN..])
                .expect("ip6ip6");
        }
        assert_eq!(out, want, "{mode:?}");
    }
}

mod prop {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes after a valid Ethernet + IPv6 start to the VIP,
        /// the LIP or the solicited-node group, from the client or the real
        /// server, through every mode, and ICMPv6 errors quoting a tracked
        /// connection cut anywhere: nothing panics, and whatever is
        /// forwarded has valid checksums.
        #[test]
        fn ipv6_never_panics(
            mode in 0usize..4,
            to in 0usize..3,
            from_rs in any::<bool>(),
            body in vec(any::<u8>(), 0..120),
            cut in 0usize..100,
        ) {
            let modes = [Forwarding::Fnat, Forwarding::Nat, Forwarding::Dr, Forwarding::Tun];
            let (mut e, mut ctl, _) = match modes[mode] {
                m @ (Forwarding::Fnat | Forwarding::Nat) => connected6(m),
                m => {
                    let (e, ctl) = engine6(m, &[LIP6]);
                    (e, ctl, 0)
                }
            };
            let dst = [VIP6, LIP6, "ff02::1:ff00:100".parse().expect("ip")][to];
            let src = if from_rs { RS6 } else { CLIENT6 };
            let mut frame = Vec::new();
            frame.extend_from_slice(&LB_MAC.0);
            frame.extend_from_slice(&CLIENT_MAC.0);
            frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            frame.extend_from_slice(&(body.len() as u16).to_be_bytes());
            frame.push(body.first().copied().unwrap_or(6));
            frame.push(64);
            frame.extend_from_slice(&src.octets());
            frame.extend_from_slice(&dst.octets());
            frame.extend_from_slice(&body);
            let reply = tcp6((LB_MAC, VIP6, 80), (CLIENT_MAC, CLIENT6, 33000), (true, true), b"", 63);
            let mut quote = reply.clone();
            quote.truncate((ETH_LEN + cut).max(ETH_LEN + 1));
            let err = icmp6_error((CLIENT_MAC, LB_MAC), (CLIENT6, VIP6), 64, PACKET_TOO_BIG, &quote);
            // What we build (NA) or translate from a valid input (errors,
            // not tunnelled) must come out valid.
            let tunnel = modes[mode] == Forwarding::Tun;
            for (i, f) in [frame, err].into_iter().enumerate() {
                let (v, out) = handle_grow(&mut e, &f, 30, &mut ctl);
                if v == Verdict::Forward && ((i == 0 && to == 2) || (i == 1 && !tunnel)) {
                    checked6(&out);
                }
                let mut fixed = f.clone();
                let _ = e.handle(&mut fixed, 31, &mut ctl);
            }
        }
    }
}

#[test]
fn burst_of_ipv4_and_ipv6_gives_the_same_results_as_frame_by_frame() {
    let both = || {
        let v4 = Arc::try_unwrap(snapshot()).expect("sole owner");
        let v6 = Arc::try_unwrap(snapshot6(Forwarding::Fnat, &[LIP6]))
            .expect("sole owner")
            .v6;
        Arc::new(Snapshot { v6, ..v4 })
    };
    let c6 = |port| (CLIENT_MAC, CLIENT6, port);
    let v6 = (LB_MAC, VIP6, 80);
    let mut frames = vec![
        // Unresolved IPv6 server: dropped, then the NA in the same burst
        // resolves it for the frames after it.
        tcp6(c6(1), v6, (true, false), b"", 64),
        nd(
            NEIGHBOR_ADVERT,
            0x60,
            (RS_MAC, LB_MAC),
            (RS6, LIP6),
            RS6,
            2,
            RS_MAC,
        ),
        arp(ArpOperation::Reply, RS_MAC, RS, LIP),
        tcp6(c6(1), v6, (true, false), b"", 64),
        tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b""),
        tcp6(c6(1), v6, (false, true), b"data", 64),
        udp6(c6(3), (LB_MAC, VIP6, 53), b"q", 64),
        tcp6(c6(2), v6, (false, true), b"", 64),
    ];
    for port in 0..(PIPELINE as u16 + 10) {
        frames.push(tcp6(c6(1000 + port), v6, (true, false), b"", 64));
    }
    let mut single = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    single.set_snapshot(both(), 0, &mut ctl);
    let mut burst = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut burst_ctl = Burst::new(16);
    burst.set_snapshot(both(), 0, &mut burst_ctl);
    let want = same_in_a_burst(
        &frames,
        5,
        (&mut single, &mut ctl),
        (&mut burst, &mut burst_ctl),
    );
    assert_eq!(want[0].0, Verdict::Drop(Drop::NeighbourUnresolved));
    assert_eq!(want[3].0, Verdict::Forward);
    assert_eq!(want[3].1.len(), frames[3].len() + TOA6_LEN, "the SYN's TOA");
    assert_eq!(want[4].0, Verdict::Forward, "IPv4 alongside");
    assert_eq!(want[4].1.len(), frames[4].len() + TOA_LEN);
    // No SYN-ACK has passed that this ACK could acknowledge: no TOA.
    assert_eq!(want[5].1.len(), frames[5].len());
    assert_eq!(want[7].0, Verdict::Drop(Drop::NoConnection));
    assert_eq!(burst.conn_count(), 3 + PIPELINE + 10);
    // Both tables are listed.
    let (mut views, mut from) = (Vec::new(), Some(0));
    while let Some(f) = from {
        from = burst.scan_conns(f, 256, 5, &mut views);
    }
    assert_eq!(views.len(), burst.conn_count());
    assert!(views.iter().any(|v| v.vip == (VIP6.into(), 80)));
    assert!(views.iter().any(|v| v.vip == (VIP.into(), 80)));
}

#[test]
fn ipv6_persistence_keeps_a_client_network_on_one_server() {
    let rs2: Ipv6Addr = "fd00::4".parse().expect("ip");
    let server = |addr| ServerSnap {
        addr,
        port: 8080,
        stats: Arc::default(),
    };
    let persistence = |granularity| Persistence {
        timeout_s: 60,
        granularity,
    };
    for (granularity, other_client_same_server) in [(32, false), (64, true)] {
        let mut v6 = Snapshot6 {
            services: vec![ServiceSnap {
                key: ServiceKey {
                    addr: VIP6.into(),
                    port: 80,
                    protocol: Protocol::Tcp,
                },
                stats: Arc::default(),
                servers: vec![server(RS6), server(rs2)],
                table: SchedTable::build(Scheduler::Rr, &[1, 1]),
                local_addrs: vec![LIP6],
            }],
            owned_vips: vec![VIP6],
            local_addrs: vec![LIP6],
            neighbours: vec![(RS6, LIP6), (rs2, LIP6)],
            persistence: vec![Some(persistence(granularity))],
            ..Snapshot6::default()
        };
        v6.lookup.insert((VIP6, 80, 6), 0);
        let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
        let mut ctl = Burst::new(16);
        e.set_snapshot(
            Arc::new(Snapshot {
                v6,
                ..Snapshot::default()
            }),
            0,
            &mut ctl,
        );
        for ip in [RS6, rs2] {
            let mut na = nd(
                NEIGHBOR_ADVERT,
                0x60,
                (RS_MAC, LB_MAC),
                (ip, LIP6),
                ip,
                2,
                RS_MAC,
            );
            e.handle(&mut na, 1, &mut ctl);
        }
        let mut sent_to = |client: Ipv6Addr, port| {
            let mut syn = tcp6(
                (CLIENT_MAC, client, port),
                (LB_MAC, VIP6, 80),
                (true, false),
                b"",
                64,
            );
            assert_eq!(e.handle(&mut syn, 10, &mut ctl), Verdict::Forward);
            Ipv6Packet::new_checked(&syn[ETH_LEN..])
                .expect("ipv6")
                .dst_addr()
        };
        let first = sent_to(CLIENT6, 1);
        for port in 2..6 {
            assert_eq!(sent_to(CLIENT6, port), first, "/{granularity}: same client");
        }
        // A neighbour in the same /64: rr would pick the other server next.
        let neighbour: Ipv6Addr = "2001:db8::3".parse().expect("ip");
        let got = sent_to(neighbour, 1);
        assert_eq!(
            got == first,
            other_client_same_server,
            "/{granularity}: {got}"
        );
    }
}

// ── NAT64 (FNAT: IPv6 VIP, IPv4 local address and real server) ─────

/// VIP6:80/tcp and VIP6:53/udp to RS:8080/5353 over IPv4 from LIP.
pub(super) fn nat64_engine() -> (Engine, Burst) {
    let (rs, lip) = (RS.to_ipv6_mapped(), LIP.to_ipv6_mapped());
    let svc = |port, protocol, rs_port| {
        service(VIP6, (port, protocol), vec![server(rs, rs_port)], vec![lip])
    };
    let mut v6 = Snapshot6 {
        services: vec![svc(80, Protocol::Tcp, 8080), svc(53, Protocol::Udp, 5353)],
        owned_vips: vec![VIP6],
        neighbours: vec![(rs, lip)],
        forwarding: vec![Forwarding::Fnat; 2],
        ..Snapshot6::default()
    };
    v6.lookup.insert((VIP6, 80, 6), 0);
    v6.lookup.insert((VIP6, 53, 17), 1);
    let snap = Snapshot {
        v4: Snapshot4 {
            local_addrs: vec![LIP],
            ..Snapshot4::default()
        },
        v6,
        nat64_lips: vec![LIP],
        ..Snapshot::default()
    };
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(Arc::new(snap), 0, &mut ctl);
    // The real server is asked by ARP, from the IPv4 local address.
    let arps: Vec<ArpRepr> = ctl
        .frames()
        .iter()
        .filter_map(|f| {
            ArpRepr::parse(&ArpPacket::new_checked(f.data().get(ETH_LEN..)?).ok()?).ok()
        })
        .collect();
    assert!(arps
        .iter()
        .any(|a| (a.source_protocol_addr, a.target_protocol_addr) == (LIP, RS)));
    resolve_rs(&mut e, &mut ctl);
    ctl.clear();
    (e, ctl)
}

#[test]
fn nat64_tcp_golden_both_directions() {
    let (mut e, mut ctl) = nat64_engine();
    let client = (CLIENT_MAC, CLIENT6, 33000);
    let vip = (LB_MAC, VIP6, 80);
    // The SYN, the first ACK and the data before the client acknowledges
    // any of the server's carry the IPv6 client in DPVS's 20-byte TOA,
    // inside the IPv4 segment (as DPVS: the option is sized by the
    // client's family).
    let toa = toa_opt(CLIENT6, 33000);
    let syn = tcp6(client, vip, (true, false), b"", 64);
    let (v, out) = handle_grow(&mut e, &syn, 10, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let lport = inspect(&out).4;
    let (lip, rs) = ((LB_MAC, LIP, lport), (RS_MAC, RS, 8080));
    let want = seg4(lip, rs, &fields(1000, None, true, &toa, 63), b"");
    assert_eq!(out, want, "IPv6 SYN becomes IPv4");
    // The reply to the (IPv4) local address goes back as IPv6, its MSS
    // lowered by the IPv6 TOA's 20 bytes.
    let (mss_1460, mss_1440) = (mss(1460), mss(1440));
    let synack = seg4(rs, lip, &fields(6, Some(1001), true, &mss_1460, 64), b"");
    let (v, out) = handle_grow(&mut e, &synack, 11, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let want = seg6(
        vip,
        client,
        &fields(6, Some(1001), true, &mss_1440, 63),
        b"",
    );
    assert_eq!(out, want, "IPv4 SYN-ACK becomes IPv6");
    for data in [&b"hello"[..], b"more"] {
        let ack = tcp6(client, vip, (false, true), data, 64);
        let (_, out) = handle_grow(&mut e, &ack, 12, &mut ctl);
        inspect(&out);
        assert_eq!(
            out,
            seg4(lip, rs, &fields(1000, Some(7), false, &toa, 63), data)
        );
    }
    // Data acknowledging the server's: no TOA.
    let data = seg6(
        client,
        vip,
        &fields(1000, Some(20), false, &[], 64),
        b"again",
    );
    let (_, out) = handle_grow(&mut e, &data, 12, &mut ctl);
    assert_eq!(
        out,
        seg4(lip, rs, &fields(1000, Some(20), false, &[], 63), b"again")
    );
    e.flush_stats();
    let svc = &e.snap.v6.services[0];
    assert_eq!(svc.stats.snapshot().conns, 1);
    assert_eq!(svc.stats.snapshot().out_pkts, 1);
    // Growing needs room: `handle` cannot.
    let mut data = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, lport), false, true, b"x");
    assert_eq!(
        e.handle(&mut data, 13, &mut ctl),
        Verdict::Drop(Drop::NoRoom)
    );
    // An IPv4 reply nobody knows is still dropped as such.
    let mut stray = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, 40077), false, true, b"");
    assert_eq!(
        e.handle(&mut stray, 14, &mut ctl),
        Verdict::Drop(Drop::NoConnection)
    );
}

#[test]
fn nat64_udp_golden_both_directions_and_a_missing_checksum_is_computed() {
    let (mut e, mut ctl) = nat64_engine();
    let q = udp6(
        (CLIENT_MAC, CLIENT6, 5000),
        (LB_MAC, VIP6, 53),
        b"query!",
        64,
    );
    let (v, out) = handle_grow(&mut e, &q, 10, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let lport = inspect(&out).4;
    assert_eq!(
        out,
        udp_ttl((LB_MAC, LIP, lport), (RS_MAC, RS, 5353), b"query!", 63)
    );
    for zero in [false, true] {
        let mut a = udp((RS_MAC, RS, 5353), (LB_MAC, LIP, lport), b"answer");
        if zero {
            // IPv4 UDP without checksum: IPv6 needs one.
            a[ETH_LEN + 20 + 6..ETH_LEN + 20 + 8].fill(0);
        }
        let (v, out) = handle_grow(&mut e, &a, 11, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        let want = udp6(
            (LB_MAC, VIP6, 53),
            (CLIENT_MAC, CLIENT6, 5000),
            b"answer",
            63,
        );
        assert_eq!(out, want, "zero checksum: {zero}");
    }
}

#[test]
fn mapped_addresses_on_the_wire_are_malformed() {
    let (mut e, mut ctl) = nat64_engine();
    let mut bogus = tcp6(
        (CLIENT_MAC, RS.to_ipv6_mapped(), 1),
        (LB_MAC, VIP6, 80),
        (true, false),
        b"",
        64,
    );
    assert_eq!(
        e.handle(&mut bogus, 1, &mut ctl),
        Verdict::Drop(Drop::Malformed)
    );
}

#[test]
fn ipv6_access_lists_and_thresholds_are_checked_when_a_connection_opens() {
    use crate::acl::AccessList;
    use crate::command::{AddrRange, Protection, Thresholds};
    use crate::threshold::Threshold;
    let (mut e, mut ctl) = engine6(Forwarding::Fnat, &[LIP6]);
    let mut snap = Arc::try_unwrap(snapshot6(Forwarding::Fnat, &[LIP6])).expect("unshared");
    let denied = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x66);
    let acl = AccessList::new(&Protection {
        deny: vec![AddrRange::one(denied.into())],
        ..Protection::default()
    });
    assert!(acl.is_some());
    snap.v6.acl = vec![acl, None];
    let limit = Threshold::new(Thresholds { upper: 1, lower: 0 }).map(Arc::new);
    snap.v6.limits = vec![Some(vec![limit].into_boxed_slice()), None];
    e.set_snapshot(Arc::new(snap), 2, &mut ctl);
    let vip = (LB_MAC, VIP6, 80);
    let mut syn = tcp6((CLIENT_MAC, denied, 33000), vip, (true, false), b"", 64);
    assert_eq!(
        e.handle(&mut syn, 3, &mut ctl),
        Verdict::Drop(Drop::AclDenied)
    );
    let mut syn = tcp6((CLIENT_MAC, CLIENT6, 33000), vip, (true, false), b"", 64);
    assert_eq!(e.handle(&mut syn, 4, &mut ctl), Verdict::Forward);
    // RS6 has its one connection: the next client finds it overloaded.
    let mut syn = tcp6((CLIENT_MAC, CLIENT6, 33001), vip, (true, false), b"", 64);
    assert_eq!(
        e.handle(&mut syn, 5, &mut ctl),
        Verdict::Drop(Drop::ServerOverloaded)
    );
}

/// IPv6 on VLANs: the VIP on 100, the LIP (and so the real server) on
/// 200. Every frame is what the untagged engine makes of the frame
/// untagged, with the VLAN's tag.
#[test]
fn fnat6_and_nd_on_vlans_golden() {
    use super::vlan::tagged;
    let (vip_vlan, lip_vlan) = (100, 200);
    let mut snap = Arc::try_unwrap(snapshot6(Forwarding::Fnat, &[LIP6])).expect("unique");
    snap.addr_vlans = vec![(VIP6.into(), vip_vlan), (LIP6.into(), lip_vlan)];
    snap.vlan_ids = vec![vip_vlan, lip_vlan];
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(Arc::new(snap), 0, &mut ctl);
    let (mut o, mut octl) = engine6_unresolved(Forwarding::Fnat, &[LIP6]);
    // Unsolicited NAs and the NS for the real server, tagged.
    let want: Vec<Vec<u8>> = octl.frames().iter().map(|f| f.data().to_vec()).collect();
    let got: Vec<Vec<u8>> = ctl.frames().iter().map(|f| f.data().to_vec()).collect();
    assert_eq!(got.len(), want.len());
    for w in &want {
        let src = Ipv6Packet::new_checked(&w[ETH_LEN..])
            .expect("ipv6")
            .src_addr();
        let vid = if src == VIP6 { vip_vlan } else { lip_vlan };
        assert!(got.contains(&tagged(w, vid)), "{src} on {vid}");
    }
    ctl.clear();
    octl.clear();
    // The real server answers on the LIP's VLAN.
    let na = nd(
        NEIGHBOR_ADVERT,
        0x60,
        (RS_MAC, LB_MAC),
        (RS6, LIP6),
        RS6,
        2,
        RS_MAC,
    );
    assert_eq!(
        handle_grow(&mut e, &tagged(&na, lip_vlan), 1, &mut ctl).0,
        Verdict::Ignore
    );
    assert_eq!(handle_grow(&mut o, &na, 1, &mut octl).0, Verdict::Ignore);
    let mut golden = |frame: &[u8], vin: u16, vout: u16| {
        let (v, got) = handle_grow(&mut e, &tagged(frame, vin), 5, &mut ctl);
        let (ov, want) = handle_grow(&mut o, frame, 5, &mut octl);
        assert_eq!((v, ov), (Verdict::Forward, Verdict::Forward));
        assert_eq!(got, tagged(&want, vout));
        want
    };
    let client = (CLIENT_MAC, CLIENT6, 33000);
    let out = golden(
        &tcp6(client, (LB_MAC, VIP6, 80), (true, false), b"", 64),
        vip_vlan,
        lip_vlan,
    );
    let lport = checked6(&out);
    let synack = tcp6(
        (RS_MAC, RS6, 8080),
        (LB_MAC, LIP6, lport),
        (true, true),
        b"",
        64,
    );
    golden(&synack, lip_vlan, vip_vlan);
    golden(
        &udp6(client, (LB_MAC, VIP6, 53), b"q", 64),
        vip_vlan,
        lip_vlan,
    );
    // A solicitation for the VIP on its VLAN is answered there.
    let ns = solicitation(VIP6);
    golden(&ns, vip_vlan, vip_vlan);
    // … and not on the LIP's VLAN.
    let (v, _) = handle_grow(&mut e, &tagged(&ns, lip_vlan), 6, &mut ctl);
    assert_eq!(v, Verdict::Ignore);
}

#[test]
fn the_ipv6_table_has_the_configured_capacity() {
    // Capacity 16: sixteen IPv6 connections fit (it was a quarter), the
    // seventeenth is refused as a full table.
    let (mut e, mut ctl) = engine6_sized(Forwarding::Fnat, &[LIP6], 16);
    for port in 0..16 {
        let syn = tcp6(
            (CLIENT_MAC, CLIENT6, 30000 + port),
            (LB_MAC, VIP6, 80),
            (true, false),
            b"",
            64,
        );
        let (v, _) = handle_grow(&mut e, &syn, 2, &mut ctl);
        assert_eq!(v, Verdict::Forward, "connection {port}");
    }
    assert_eq!(e.conn_count(), 16);
    let syn = tcp6(
        (CLIENT_MAC, CLIENT6, 31000),
        (LB_MAC, VIP6, 80),
        (true, false),
        b"",
        64,
    );
    let (v, _) = handle_grow(&mut e, &syn, 2, &mut ctl);
    assert_eq!(v, Verdict::Drop(Drop::ConnTableFull));
}

// ── NAT64 ICMP errors (RFC 7915) ───────────────────────────────────

/// An ICMPv4 error (`msg_type`, `code`, last word `rest`) `src → LIP`
/// quoting the IPv4 packet `quoted`, built by etherparse.
fn icmp4_error(src: Ipv4Addr, (msg_type, code, rest): (u8, u8, u32), quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(RS_MAC.0, LB_MAC.0)
        .ipv4(src.octets(), LIP.octets(), 64)
        .icmpv4_raw(msg_type, code, rest.to_be_bytes())
        .write(&mut out, quoted)
        .expect("build icmpv4");
    out
}

/// The IPv6 packet of an Ethernet frame.
fn ip6_of(frame: &[u8]) -> Vec<u8> {
    let ip = Ipv6Packet::new_checked(&frame[ETH_LEN..]).expect("ipv6");
    frame[ETH_LEN..ETH_LEN + 40 + usize::from(ip.payload_len())].to_vec()
}

/// `ip6` with its hop limit set to `hop`.
fn with_hop(mut ip6: Vec<u8>, hop: u8) -> Vec<u8> {
    ip6[7] = hop;
    ip6
}

#[test]
fn nat64_icmpv4_errors_reach_the_client_as_icmpv6_golden() {
    let (mut e, mut ctl) = nat64_engine();
    let router = Ipv4Addr::new(10, 99, 0, 254);
    // TCP: "fragmentation needed" (MTU 1400) about our LIP → RS segment
    // becomes "packet too big" (MTU 1420) about the client's own segment.
    let client = (CLIENT_MAC, CLIENT6, 33000);
    let syn6 = tcp6(client, (LB_MAC, VIP6, 80), (true, false), b"", 64);
    handle_grow(&mut e, &syn6, 10, &mut ctl);
    // A segment without TOA (the SYN has one; no SYN-ACK has passed that
    // this one could acknowledge).
    let ack6 = tcp6(client, (LB_MAC, VIP6, 80), (false, true), b"", 64);
    let (_, ack4) = handle_grow(&mut e, &ack6, 10, &mut ctl);
    assert!(tcp_options(&ack4).is_empty());
    let err = icmp4_error(router, (3, 4, 1400), &ip_of(&ack4));
    let (v, out) = handle_grow(&mut e, &err, 11, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let mut want = Vec::new();
    PacketBuilder::ethernet2(LB_MAC.0, CLIENT_MAC.0)
        .ipv6(VIP6.octets(), CLIENT6.octets(), 63)
        .icmpv6_raw(2, 0, 1420u32.to_be_bytes())
        .write(&mut want, &with_hop(ip6_of(&ack6), 63))
        .expect("build");
    checked6(&out);
    assert_eq!(out, want);
    // UDP: port unreachable (3/3) becomes port unreachable (1/4); a
    // quote cut after the UDP header stays cut.
    let q6 = udp6(
        (CLIENT_MAC, CLIENT6, 5000),
        (LB_MAC, VIP6, 53),
        b"query!",
        64,
    );
    let (_, q4) = handle_grow(&mut e, &q6, 12, &mut ctl);
    let quote = ip_of(&q4);
    let err = icmp4_error(RS, (3, 3, 0), &quote[..28]);
    let (v, out) = handle_grow(&mut e, &err, 13, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let mut want = Vec::new();
    PacketBuilder::ethernet2(LB_MAC.0, CLIENT_MAC.0)
        .ipv6(VIP6.octets(), CLIENT6.octets(), 63)
        .icmpv6_raw(1, 4, [0; 4])
        .write(&mut want, &with_hop(ip6_of(&q6), 63)[..48])
        .expect("build");
    checked6(&out);
    assert_eq!(out, want);
    // Errors RFC 7915 drops (redirect, source quench) and errors about no
    // connection are counted; `handle` cannot grow the frame.
    for (msg, reason) in [
        ((5, 1, 0), Drop::IcmpUnhandled),
        ((4, 0, 0), Drop::IcmpUnhandled),
        ((3, 14, 0), Drop::IcmpUnhandled),
    ] {
        let err = icmp4_error(RS, msg, &ip_of(&ack4));
        assert_eq!(
            handle_grow(&mut e, &err, 14, &mut ctl).0,
            Verdict::Drop(reason)
        );
    }
    let mut stray = ip_of(&ack4);
    stray[22..24].copy_from_slice(&40099u16.to_be_bytes());
    let err = icmp4_error(RS, (3, 3, 0), &stray);
    assert_eq!(
        handle_grow(&mut e, &err, 15, &mut ctl).0,
        Verdict::Drop(Drop::NoConnection)
    );
    let mut err = icmp4_error(router, (3, 4, 1400), &ip_of(&ack4));
    assert_eq!(
        e.handle(&mut err, 16, &mut ctl),
        Verdict::Drop(Drop::NoRoom)
    );
    // Quotes cut anywhere: nothing panics, what is forwarded checks out.
    for cut in 0..60 {
        let mut quote = ip_of(&ack4);
        quote.truncate(cut);
        let err = icmp4_error(router, (3, 4, 1400), &quote);
        if let (Verdict::Forward, out) = handle_grow(&mut e, &err, 17, &mut ctl) {
            assert!(cut >= 24, "forwarded a quote without ports ({cut})");
            checked6(&out);
        }
    }
}

#[test]
fn nat64_icmpv6_errors_reach_the_real_server_as_icmpv4_golden() {
    let (mut e, mut ctl) = nat64_engine();
    let client = (CLIENT_MAC, CLIENT6, 33000);
    let syn6 = tcp6(client, (LB_MAC, VIP6, 80), (true, false), b"", 64);
    let (_, syn4) = handle_grow(&mut e, &syn6, 10, &mut ctl);
    let lport = inspect(&syn4).4;
    let synack4 = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, lport), true, true, b"");
    let (v, synack6) = handle_grow(&mut e, &synack4, 11, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    // The client cannot take the size of VIP → client: "packet too big"
    // (1280) becomes "fragmentation needed" (1260) about RS → LIP.
    for ((t, c, rest), want_msg) in [
        (PACKET_TOO_BIG, (3u8, 4u8, 1260u32)),
        (PORT_UNREACHABLE, (3, 3, 0)),
        (HOP_LIMIT_EXCEEDED, (11, 0, 0)),
    ] {
        let err = icmp6_error(
            (CLIENT_MAC, LB_MAC),
            (CLIENT6, VIP6),
            64,
            (t, c, rest),
            &synack6,
        );
        let (v, out) = handle_grow(&mut e, &err, 12, &mut ctl);
        assert_eq!(v, Verdict::Forward, "{t}/{c}");
        let mut want = Vec::new();
        PacketBuilder::ethernet2(LB_MAC.0, RS_MAC.0)
            .ipv4(LIP.octets(), RS.octets(), 63)
            .icmpv4_raw(want_msg.0, want_msg.1, want_msg.2.to_be_bytes())
            .write(&mut want, &with_ttl(ip_of(&synack4), 63))
            .expect("build");
        checked_ipv4(&out);
        assert_eq!(out, want, "{t}/{c}");
    }
    // Not translated (unrecognized IPv6 option): counted.
    let err = icmp6_error(
        (CLIENT_MAC, LB_MAC),
        (CLIENT6, VIP6),
        64,
        (4, 2, 0),
        &synack6,
    );
    assert_eq!(
        handle_grow(&mut e, &err, 13, &mut ctl).0,
        Verdict::Drop(Drop::IcmpUnhandled)
    );
    // Quotes cut anywhere: nothing panics, what is forwarded checks out.
    for cut in 0..70 {
        let mut quoted = synack6.clone();
        quoted.truncate(ETH_LEN + cut);
        let err = icmp6_error(
            (CLIENT_MAC, LB_MAC),
            (CLIENT6, VIP6),
            64,
            PACKET_TOO_BIG,
            &quoted,
        );
        if let (Verdict::Forward, out) = handle_grow(&mut e, &err, 14, &mut ctl) {
            assert!(cut >= 44, "forwarded a quote without ports ({cut})");
            checked_ipv4(&out);
        }
    }
}

// ── NAT64 and IPv4 FNAT share local ports ─────────────────────────

/// An engine with IPv4 FNAT VIP:80 and NAT64 VIP6:80, both to RS:8080
/// from the one local address LIP, handing out local ports `ports`.
fn shared_lip_engine(ports: (u16, u16)) -> (Engine, Burst) {
    let (rs, lip) = (RS.to_ipv6_mapped(), LIP.to_ipv6_mapped());
    let tcp80 = (80, Protocol::Tcp);
    let mut v6 = Snapshot6 {
        services: vec![service(VIP6, tcp80, vec![server(rs, 8080)], vec![lip])],
        owned_vips: vec![VIP6],
        neighbours: vec![(rs, lip)],
        forwarding: vec![Forwarding::Fnat],
        ..Snapshot6::default()
    };
    v6.lookup.insert((VIP6, 80, 6), 0);
    let mut v4 = Snapshot4 {
        services: vec![service(VIP, tcp80, vec![server(RS, 8080)], vec![LIP])],
        owned_vips: vec![VIP],
        local_addrs: vec![LIP],
        neighbours: vec![(RS, LIP)],
        ..Snapshot4::default()
    };
    v4.lookup.insert((VIP, 80, 6), 0);
    let snap = Snapshot {
        v4,
        v6,
        nat64_lips: vec![LIP],
        ..Snapshot::default()
    };
    let mut e = Engine::new(0, LB_MAC, 1024, ports, Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(Arc::new(snap), 0, &mut ctl);
    resolve_rs(&mut e, &mut ctl);
    ctl.clear();
    (e, ctl)
}

/// A SYN from IPv4 client port `port` (`v6`: from CLIENT6 to VIP6) and
/// the local port it got, or the drop.
fn open_from(e: &mut Engine, ctl: &mut Burst, v6: bool, port: u16) -> Result<u16, Drop> {
    let syn = if v6 {
        tcp6(
            (CLIENT_MAC, CLIENT6, port),
            (LB_MAC, VIP6, 80),
            (true, false),
            b"",
            64,
        )
    } else {
        tcp(
            (CLIENT_MAC, CLIENT, port),
            (LB_MAC, VIP, 80),
            true,
            false,
            b"",
        )
    };
    match handle_grow(e, &syn, 5, ctl) {
        (Verdict::Forward, out) => {
            let (_, _, src, dst, lport, rport, _) = inspect(&out);
            assert_eq!((src, dst, rport), (LIP, RS, 8080));
            Ok(lport)
        }
        (Verdict::Drop(d), _) => Err(d),
        (v, _) => panic!("{v:?}"),
    }
}

#[test]
fn nat64_and_ipv4_fnat_draw_local_ports_from_one_space() {
    // Two ports, taken by IPv4 connections: NAT64 finds none free (it
    // used to take 40000 again, and the replies went to the IPv4 one).
    let (mut e, mut ctl) = shared_lip_engine((40000, 40001));
    let mut got = vec![
        open_from(&mut e, &mut ctl, false, 1000).expect("port"),
        open_from(&mut e, &mut ctl, false, 1001).expect("port"),
    ];
    got.sort_unstable();
    assert_eq!(got, [40000, 40001]);
    assert_eq!(
        open_from(&mut e, &mut ctl, true, 1000),
        Err(Drop::NoLocalPort)
    );
    // The other way round.
    let (mut e, mut ctl) = shared_lip_engine((40000, 40001));
    assert!(open_from(&mut e, &mut ctl, true, 1000).is_ok());
    assert!(open_from(&mut e, &mut ctl, true, 1001).is_ok());
    assert_eq!(
        open_from(&mut e, &mut ctl, false, 1000),
        Err(Drop::NoLocalPort)
    );
    // Interleaved over four ports: four different local ports, and each
    // reply reaches its own client (IPv4 or IPv6).
    let (mut e, mut ctl) = shared_lip_engine((40000, 40003));
    let mut lports = Vec::new();
    for (i, v6) in [false, true, false, true].into_iter().enumerate() {
        let cport = 2000 + i as u16;
        let lport = open_from(&mut e, &mut ctl, v6, cport).expect("a free port");
        lports.push(lport);
        let synack = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, lport), true, true, b"");
        let (v, out) = handle_grow(&mut e, &synack, 6, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        if v6 {
            assert_eq!(checked6(&out), 80);
            assert_eq!(&out[ETH_LEN + 24..ETH_LEN + 40], &CLIENT6.octets());
        } else {
            assert_eq!(inspect(&out).5, cport);
        }
    }
    lports.sort();
    lports.dedup();
    assert_eq!(lports.len(), 4);
}

/// SYN proxy over IPv6 (FNAT): the client's handshake is answered with a
/// cookie, the real server's opened on the cookie ACK with the client's
/// ISN, MSS and window, and sequence numbers shifted both ways. Every
/// frame we originate is compared with etherparse's.
#[test]
fn synproxy6_fnat_whole_exchange_golden() {
    const ISN: u32 = 1000;
    const RS_ISN: u32 = 5_000_000;
    const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];
    let (mut e, mut ctl) = engine6(Forwarding::Fnat, &[LIP6]);
    let mut snap = snapshot6(Forwarding::Fnat, &[LIP6]);
    let s = Arc::get_mut(&mut snap).expect("unshared");
    s.v6.synproxy = vec![true, false];
    s.syn_cookie_key = [7, 11];
    e.set_snapshot(snap, 2, &mut ctl);
    ctl.clear();
    let client = (CLIENT_MAC, CLIENT6, 40000);
    let vip = (LB_MAC, VIP6, 80);
    let from_client = |seq, ack, syn, options: &[u8], payload: &[u8]| {
        let seg = Seg {
            seq,
            ack,
            syn,
            window: 29200,
            options,
            hop: 64,
        };
        seg6(client, vip, &seg, payload)
    };

    // Step 1: SYN → SYN-ACK carrying the cookie, no state.
    let syn = from_client(ISN, None, true, &MSS_1460, b"");
    let (v, n) = handle_grow(&mut e, &syn, 10, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    checked6(&n);
    let cookie = u32::from_be_bytes(n[58..62].try_into().expect("seq"));
    // Our MSS leaves room for the IPv6 TOA: 1460 − 20.
    let mss_1440 = mss(1440);
    let synack = Seg {
        seq: cookie,
        ack: Some(ISN + 1),
        syn: true,
        window: 65535,
        options: &mss_1440,
        hop: 64,
    };
    assert_eq!(n, seg6((LB_MAC, VIP6, 80), client, &synack, b""));
    assert_eq!(e.conn_count(), 0, "a SYN creates no state");

    // A forged cookie is dropped and counted.
    let forged = from_client(ISN + 1, Some(0x1234_5678), false, &[], b"");
    let (v, _) = handle_grow(&mut e, &forged, 11, &mut ctl);
    assert_eq!(v, Verdict::Drop(Drop::SynProxyBadCookie));
    assert_eq!(e.conn_count(), 0);

    // Steps 2-3: the cookie ACK opens the connection; our SYN to the real
    // server carries the client's ISN, MSS and window, and its TOA (DPVS's
    // SYN goes through its FNAT handler, which gives every SYN one).
    let ack = from_client(ISN + 1, Some(cookie.wrapping_add(1)), false, &[], b"");
    let (v, n) = handle_grow(&mut e, &ack, 12, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let lport = checked6(&n);
    let toa = toa_opt(CLIENT6, 40000);
    let syn_opts = [&toa[..], &MSS_1460].concat();
    let syn = Seg {
        seq: ISN,
        ack: None,
        syn: true,
        window: 29200,
        options: &syn_opts,
        hop: 63,
    };
    assert_eq!(
        n,
        seg6((LB_MAC, LIP6, lport), (RS_MAC, RS6, 8080), &syn, b"")
    );
    assert_eq!(e.conn_count(), 1);

    // Step 4: the real server's SYN-ACK is answered by us, in the client's
    // place: our ACK carries the TOA as DPVS's replayed client ACK does.
    let from_rs = |seq, ack, syn, payload: &[u8]| {
        let seg = Seg {
            seq,
            ack: Some(ack),
            syn,
            window: 29200,
            options: &[],
            hop: 64,
        };
        seg6((RS_MAC, RS6, 8080), (LB_MAC, LIP6, lport), &seg, payload)
    };
    let (v, n) = handle_grow(&mut e, &from_rs(RS_ISN, ISN + 1, true, b""), 13, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let our_ack = Seg {
        seq: ISN + 1,
        ack: Some(RS_ISN + 1),
        syn: false,
        window: 29200,
        options: &toa,
        hop: 64,
    };
    assert_eq!(
        n,
        seg6((LB_MAC, LIP6, lport), (RS_MAC, RS6, 8080), &our_ack, b"")
    );

    // Client data: its ACK moves into the real server's space; it
    // acknowledges the SYN-ACK exactly, so it carries the TOA.
    let data = from_client(ISN + 1, Some(cookie.wrapping_add(1)), false, &[], b"GET");
    let (v, n) = handle_grow(&mut e, &data, 14, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(checked6(&n), lport);
    let t = etherparse::TcpSlice::from_slice(&n[54..]).expect("tcp");
    assert_eq!(t.destination_port(), 8080);
    assert_eq!(
        (t.sequence_number(), t.acknowledgment_number()),
        (ISN + 1, RS_ISN + 1)
    );
    assert_eq!(t.options(), &toa[..]);
    assert_eq!(t.payload(), b"GET");

    // Server data: its sequence numbers move into the cookie's space.
    let reply = from_rs(RS_ISN + 1, ISN + 4, false, b"200 OK");
    let (v, n) = handle_grow(&mut e, &reply, 15, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(checked6(&n), 80);
    let t = etherparse::TcpSlice::from_slice(&n[54..]).expect("tcp");
    assert_eq!(t.destination_port(), 40000);
    assert_eq!(
        (t.sequence_number(), t.acknowledgment_number()),
        (cookie.wrapping_add(1), ISN + 4)
    );
    assert_eq!(t.payload(), b"200 OK");
    assert_eq!(&n[22..54], &[VIP6.octets(), CLIENT6.octets()].concat()[..]);

    // The client acknowledges it: no more TOA.
    let more = from_client(ISN + 4, Some(cookie.wrapping_add(7)), false, &[], b"bye");
    let (v, n) = handle_grow(&mut e, &more, 16, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    checked6(&n);
    let t = etherparse::TcpSlice::from_slice(&n[54..]).expect("tcp");
    assert_eq!(t.acknowledgment_number(), RS_ISN + 7);
    assert!(t.options().is_empty());
    assert_eq!(t.payload(), b"bye");
}
