//! SNAT (`match` services) golden tests: input frame → exact output frame,
//! both directions, TCP / UDP / ICMP echo / ICMP errors, checked with
//! etherparse. The topology is the DPVS tutorial's: inside hosts in
//! 192.168.100.0/24, the SNAT (WAN) address 123.1.2.3, gateway 123.1.2.1.

use super::*;

const INSIDE_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 1, 2]);
const GW_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 1, 1]);
const INSIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 2);
const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 168, 200, 2);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(123, 1, 2, 9);
const FAR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const SNAT_ADDR: Ipv4Addr = Ipv4Addr::new(123, 1, 2, 3);
const GW: Ipv4Addr = Ipv4Addr::new(123, 1, 2, 1);
/// The engine's first local port ([`snat_engine`]).
const PORT0: u16 = 40000;

fn rule(
    svc: usize,
    proto: u8,
    dst: (Ipv4Addr, Ipv4Addr),
    dports: (u16, u16),
) -> SnatRule<Ipv4Addr> {
    SnatRule {
        svc,
        proto,
        src: (
            Ipv4Addr::new(192, 168, 100, 0),
            Ipv4Addr::new(192, 168, 100, 254),
        ),
        sports: (0, u16::MAX),
        dst,
        dports,
    }
}

/// Three match services on SNAT_ADDR (as the control plane builds them):
/// TCP to anywhere, UDP to port 53 only, ICMP to 123.1.2.0-123.1.2.254.
fn snat_snapshot() -> Arc<Snapshot> {
    let any = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    let wan = (Ipv4Addr::new(123, 1, 2, 0), Ipv4Addr::new(123, 1, 2, 254));
    let rules = vec![
        rule(0, 6, any, (0, u16::MAX)),
        rule(1, 17, any, (53, 53)),
        rule(2, 1, wan, (0, u16::MAX)),
    ];
    Arc::new(Snapshot {
        v4: snat_half(SNAT_ADDR, GW, Protocol::Icmp, rules),
        ..Snapshot::default()
    })
}

/// One family's match services (TCP, UDP, the family's ICMP `icmp`, as
/// the control plane builds them) on `snat_addr` via `gw`, matched by
/// `rules`.
fn snat_half<A: Family>(
    snat_addr: A,
    gw: A,
    icmp: Protocol,
    rules: Vec<SnatRule<A>>,
) -> FamilySnap<A> {
    let svc = |protocol| {
        service(
            A::UNSPECIFIED,
            (1, protocol),
            vec![server(snat_addr, 0)],
            vec![],
        )
    };
    FamilySnap {
        services: vec![svc(Protocol::Tcp), svc(Protocol::Udp), svc(icmp)],
        local_addrs: vec![snat_addr],
        neighbours: vec![(gw, snat_addr)],
        forwarding: vec![Forwarding::Snat; 3],
        next_hop: vec![Some(gw); 3],
        snat: rules,
        ..FamilySnap::default()
    }
}

/// An engine with [`snat_snapshot`] whose gateway is resolved.
fn snat_engine() -> (Engine, Burst) {
    worker_engine(snat_snapshot(), 0, (PORT0, PORT0 + 100))
}

/// Worker `worker`'s engine with local ports `ports` and snapshot `snap`
/// (IPv4 and IPv6 match services of this file), whose gateways answered
/// ARP and neighbor solicitation.
fn worker_engine(snap: Arc<Snapshot>, worker: usize, ports: (u16, u16)) -> (Engine, Burst) {
    let mut e = Engine::new(worker, LB_MAC, 1024, ports, Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(snap, 0, &mut ctl);
    let mut reply = arp(ArpOperation::Reply, GW_MAC, GW, SNAT_ADDR);
    assert_eq!(e.handle(&mut reply, 1, &mut ctl), Verdict::Ignore);
    let na = nd(
        NEIGHBOR_ADVERT,
        0x60,
        (GW_MAC, LB_MAC),
        (GW6, SNAT6),
        GW6,
        2,
        GW_MAC,
    );
    assert_eq!(handle_grow(&mut e, &na, 1, &mut ctl).0, Verdict::Ignore);
    ctl.clear();
    (e, ctl)
}

fn no_drops(e: &Engine) {
    let drops: u64 = Drop::ALL.iter().map(|&d| e.drops.get(d)).sum();
    assert_eq!(drops, 0);
}

#[test]
fn snat_owns_its_address_and_asks_for_the_gateway_from_it() {
    let mut e = Engine::new(0, LB_MAC, 1024, (PORT0, PORT0 + 100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(snat_snapshot(), 0, &mut ctl);
    let arps: Vec<ArpRepr> = ctl
        .frames()
        .iter()
        .map(|f| {
            ArpRepr::parse(&ArpPacket::new_checked(&f.data()[ETH_LEN..]).expect("arp"))
                .expect("repr")
        })
        .collect();
    // Gratuitous ARP for the SNAT address, a request for the gateway.
    assert!(arps
        .iter()
        .any(|a| a.source_protocol_addr == SNAT_ADDR && a.target_protocol_addr == SNAT_ADDR));
    assert!(arps.iter().any(|a| a.operation == ArpOperation::Request
        && a.source_protocol_addr == SNAT_ADDR
        && a.target_protocol_addr == GW));
    // Before the gateway answers, outbound packets wait for it.
    let mut syn = tcp(
        (INSIDE_MAC, INSIDE, 5000),
        (LB_MAC, FAR, 80),
        true,
        false,
        b"",
    );
    assert_eq!(
        e.handle(&mut syn, 1, &mut ctl),
        Verdict::Drop(Drop::NeighbourUnresolved)
    );
    // ARP for the SNAT address is answered.
    let mut who = arp(ArpOperation::Request, GW_MAC, GW, SNAT_ADDR);
    assert_eq!(e.handle(&mut who, 2, &mut ctl), Verdict::Forward);
    let r = ArpRepr::parse(&ArpPacket::new_checked(&who[ETH_LEN..]).expect("arp")).expect("repr");
    assert_eq!(r.operation, ArpOperation::Reply);
    assert_eq!(r.source_hardware_addr, LB_MAC);
    assert_eq!(r.source_protocol_addr, SNAT_ADDR);
}

#[test]
fn snat_tcp_golden_both_directions() {
    let (mut e, mut ctl) = snat_engine();
    let mut syn = tcp(
        (INSIDE_MAC, INSIDE, 5000),
        (LB_MAC, FAR, 80),
        true,
        false,
        b"",
    );
    assert_eq!(e.handle(&mut syn, 10, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, SNAT_ADDR, PORT0),
        (GW_MAC, FAR, 80),
        true,
        false,
        b"",
        63,
    );
    assert_eq!(syn, want);
    inspect(&syn);
    let mut synack = tcp(
        (GW_MAC, FAR, 80),
        (LB_MAC, SNAT_ADDR, PORT0),
        true,
        true,
        b"",
    );
    assert_eq!(e.handle(&mut synack, 11, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, FAR, 80),
        (INSIDE_MAC, INSIDE, 5000),
        true,
        true,
        b"",
        63,
    );
    assert_eq!(synack, want);
    inspect(&synack);
    // Established: data both ways on the same connection.
    let mut data = tcp(
        (INSIDE_MAC, INSIDE, 5000),
        (LB_MAC, FAR, 80),
        false,
        true,
        b"GET /",
    );
    assert_eq!(e.handle(&mut data, 12, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, SNAT_ADDR, PORT0),
        (GW_MAC, FAR, 80),
        false,
        true,
        b"GET /",
        63,
    );
    assert_eq!(data, want);
    let mut back = tcp(
        (GW_MAC, FAR, 80),
        (LB_MAC, SNAT_ADDR, PORT0),
        false,
        true,
        b"200 OK",
    );
    assert_eq!(e.handle(&mut back, 13, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, FAR, 80),
        (INSIDE_MAC, INSIDE, 5000),
        false,
        true,
        b"200 OK",
        63,
    );
    assert_eq!(back, want);
    assert_eq!(e.conn_count(), 1);
    // A second inside host with the same port gets another SNAT port.
    let other = Ipv4Addr::new(192, 168, 100, 3);
    let mut syn2 = tcp(
        (INSIDE_MAC, other, 5000),
        (LB_MAC, FAR, 80),
        true,
        false,
        b"",
    );
    assert_eq!(e.handle(&mut syn2, 14, &mut ctl), Verdict::Forward);
    let want = tcp_ttl(
        (LB_MAC, SNAT_ADDR, PORT0 + 1),
        (GW_MAC, FAR, 80),
        true,
        false,
        b"",
        63,
    );
    assert_eq!(syn2, want);
    // Per-packet counts reach the shared counters in housekeeping.
    e.flush_stats();
    let svc = &e.snap.v4.services[0];
    assert_eq!(svc.stats.snapshot().conns, 2);
    assert_eq!(svc.stats.snapshot().in_pkts, 3);
    assert_eq!(svc.stats.snapshot().out_pkts, 2);
    no_drops(&e);
}

#[test]
fn snat_udp_golden_both_directions() {
    let (mut e, mut ctl) = snat_engine();
    let mut q = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"query!");
    assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
    let want = udp_ttl((LB_MAC, SNAT_ADDR, PORT0), (GW_MAC, FAR, 53), b"query!", 63);
    assert_eq!(q, want);
    inspect(&q);
    let mut a = udp((GW_MAC, FAR, 53), (LB_MAC, SNAT_ADDR, PORT0), b"answer");
    assert_eq!(e.handle(&mut a, 11, &mut ctl), Verdict::Forward);
    let want = udp_ttl((LB_MAC, FAR, 53), (INSIDE_MAC, INSIDE, 5353), b"answer", 63);
    assert_eq!(a, want);
    inspect(&a);
    no_drops(&e);
}

#[test]
fn traffic_outside_the_match_is_not_snatted_but_left_to_the_kernel() {
    let (mut e, mut ctl) = snat_engine();
    let cases = [
        // UDP to a port the match does not take.
        udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 54), b"x"),
        // A source outside src-range.
        udp((INSIDE_MAC, STRANGER, 5353), (LB_MAC, FAR, 53), b"x"),
        tcp(
            (INSIDE_MAC, STRANGER, 5000),
            (LB_MAC, FAR, 80),
            true,
            false,
            b"",
        ),
        // TCP that is not the SYN of a new flow.
        tcp(
            (INSIDE_MAC, INSIDE, 5000),
            (LB_MAC, FAR, 80),
            false,
            true,
            b"data",
        ),
        // The outside talking to an inside host directly.
        tcp((GW_MAC, FAR, 80), (LB_MAC, INSIDE, 5000), true, false, b""),
    ];
    for mut f in cases {
        let before = f.clone();
        assert_eq!(e.handle(&mut f, 10, &mut ctl), Verdict::Ignore);
        assert_eq!(f, before, "left untouched");
    }
    // Echo outside dst-range.
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(INSIDE_MAC.0, LB_MAC.0)
        .ipv4(INSIDE.octets(), FAR.octets(), 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, b"ping")
        .expect("echo");
    assert_eq!(e.handle(&mut ping, 10, &mut ctl), Verdict::Ignore);
    assert_eq!(e.conn_count(), 0);
    no_drops(&e);
    // A reply to the SNAT address no connection knows is ours and dropped.
    let mut stray = udp((GW_MAC, FAR, 53), (LB_MAC, SNAT_ADDR, PORT0), b"x");
    assert_eq!(
        e.handle(&mut stray, 11, &mut ctl),
        Verdict::Drop(Drop::NoConnection)
    );
    // TTL 1 cannot be routed.
    let mut ttl1 = udp_ttl((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"x", 1);
    assert_eq!(
        e.handle(&mut ttl1, 12, &mut ctl),
        Verdict::Drop(Drop::TtlExceeded)
    );
}

/// An echo request (`reply` false) or reply `src → dst` with `id`, seq 9.
fn echo(mac: (MacAddr, MacAddr), src: Ipv4Addr, dst: Ipv4Addr, id: u16, reply: bool) -> Vec<u8> {
    echo_ttl(mac, src, dst, id, reply, 64)
}

fn echo_ttl(
    mac: (MacAddr, MacAddr),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    reply: bool,
    ttl: u8,
) -> Vec<u8> {
    echo_any(mac, (src.into(), dst.into()), id, reply, ttl)
}

/// An ICMP (IPv4) or ICMPv6 (IPv6) echo request (`reply` false) or reply
/// `src → dst` with `id`, seq 9, TTL (hop limit) `ttl`, built by etherparse.
fn echo_any(
    (smac, dmac): (MacAddr, MacAddr),
    (src, dst): (IpAddr, IpAddr),
    id: u16,
    reply: bool,
    ttl: u8,
) -> Vec<u8> {
    use etherparse::{IcmpEchoHeader, Icmpv4Type, Icmpv6Type};
    let b = PacketBuilder::ethernet2(smac.0, dmac.0);
    let h = IcmpEchoHeader { id, seq: 9 };
    let (mut out, payload) = (Vec::new(), b"ping payload");
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b
            .ipv4(s.octets(), d.octets(), ttl)
            .icmpv4(match reply {
                true => Icmpv4Type::EchoReply(h),
                false => Icmpv4Type::EchoRequest(h),
            })
            .write(&mut out, payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => b
            .ipv6(s.octets(), d.octets(), ttl)
            .icmpv6(match reply {
                true => Icmpv6Type::EchoReply(h),
                false => Icmpv6Type::EchoRequest(h),
            })
            .write(&mut out, payload),
        _ => panic!("{src} → {dst}: one family"),
    }
    .expect("echo");
    out
}

/// etherparse's view of an echo frame: its ICMP checksum must be right.
fn check_echo(frame: &[u8]) {
    let (p, _, _) = checked_ipv4(frame);
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not icmp")
    };
    let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
    assert_eq!(want, icmp.checksum(), "ICMP checksum");
}

#[test]
fn snat_icmp_echo_maps_the_identifier_both_ways() {
    let (mut e, mut ctl) = snat_engine();
    let mut req = echo((INSIDE_MAC, LB_MAC), INSIDE, OUTSIDE, 0x1234, false);
    assert_eq!(e.handle(&mut req, 10, &mut ctl), Verdict::Forward);
    let want = echo_ttl((LB_MAC, GW_MAC), SNAT_ADDR, OUTSIDE, PORT0, false, 63);
    assert_eq!(req, want);
    check_echo(&req);
    // Another host with the same identifier gets another one.
    let other = Ipv4Addr::new(192, 168, 100, 3);
    let mut req2 = echo((INSIDE_MAC, LB_MAC), other, OUTSIDE, 0x1234, false);
    assert_eq!(e.handle(&mut req2, 10, &mut ctl), Verdict::Forward);
    let want = echo_ttl((LB_MAC, GW_MAC), SNAT_ADDR, OUTSIDE, PORT0 + 1, false, 63);
    assert_eq!(req2, want);
    let mut rep = echo((GW_MAC, LB_MAC), OUTSIDE, SNAT_ADDR, PORT0, true);
    assert_eq!(e.handle(&mut rep, 11, &mut ctl), Verdict::Forward);
    let want = echo_ttl((LB_MAC, INSIDE_MAC), OUTSIDE, INSIDE, 0x1234, true, 63);
    assert_eq!(rep, want);
    check_echo(&rep);
    // The same ping again uses its connection.
    let mut again = echo((INSIDE_MAC, LB_MAC), INSIDE, OUTSIDE, 0x1234, false);
    assert_eq!(e.handle(&mut again, 12, &mut ctl), Verdict::Forward);
    assert_eq!(
        again,
        echo_ttl((LB_MAC, GW_MAC), SNAT_ADDR, OUTSIDE, PORT0, false, 63)
    );
    assert_eq!(e.conn_count(), 2);
    let svc = &e.snap.v4.services[2];
    assert_eq!(svc.stats.snapshot().conns, 2);
    no_drops(&e);
    // A reply with an identifier nobody was given is dropped.
    let mut stray = echo((GW_MAC, LB_MAC), OUTSIDE, SNAT_ADDR, 7, true);
    assert_eq!(
        e.handle(&mut stray, 13, &mut ctl),
        Verdict::Drop(Drop::NoConnection)
    );
    // A request to the SNAT address itself is not ours to answer.
    let mut to_us = echo((GW_MAC, LB_MAC), OUTSIDE, SNAT_ADDR, 7, false);
    assert_eq!(
        e.handle(&mut to_us, 13, &mut ctl),
        Verdict::Drop(Drop::IcmpUnhandled)
    );
}

#[test]
fn snat_icmp_errors_are_translated_both_ways() {
    let (mut e, mut ctl) = snat_engine();
    let mut q = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"query!");
    assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
    // A router (the gateway) says the outbound packet was too big: it
    // quotes SNAT:port → FAR:53 and reaches the inside host about
    // INSIDE:5353 → FAR:53, still from the router.
    let mut err = frag_needed(GW_MAC, GW, SNAT_ADDR, &ip_of(&q));
    assert_eq!(e.handle(&mut err, 11, &mut ctl), Verdict::Forward);
    let (mac, src, dst, ttl, quoted) = inspect_icmp(&err);
    assert_eq!((mac, src, dst, ttl), (INSIDE_MAC, GW, INSIDE, 63));
    let sent = udp_ttl((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"query!", 63);
    assert_eq!(
        quoted,
        ip_of(&sent),
        "the quote is what the inside host sent (TTL aside)"
    );
    // The inside host says the reply was too big: it quotes FAR:53 →
    // INSIDE:5353 and reaches FAR from the SNAT address about FAR:53 →
    // SNAT:port, via the gateway.
    let mut a = udp((GW_MAC, FAR, 53), (LB_MAC, SNAT_ADDR, PORT0), b"answer");
    assert_eq!(e.handle(&mut a, 12, &mut ctl), Verdict::Forward);
    let mut err = frag_needed(INSIDE_MAC, INSIDE, FAR, &ip_of(&a));
    assert_eq!(e.handle(&mut err, 13, &mut ctl), Verdict::Forward);
    let (mac, src, dst, ttl, quoted) = inspect_icmp(&err);
    assert_eq!((mac, src, dst, ttl), (GW_MAC, SNAT_ADDR, FAR, 63));
    let got = udp_ttl((GW_MAC, FAR, 53), (LB_MAC, SNAT_ADDR, PORT0), b"answer", 63);
    assert_eq!(quoted, ip_of(&got));
    no_drops(&e);
}

#[test]
fn snat_connections_expire_like_others_and_free_their_port() {
    let (mut e, mut ctl) = snat_engine();
    let mut q = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"q");
    assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
    assert_eq!(e.conn_count(), 1);
    let later = 10 + u64::from(crate::conn::UDP_TIMEOUT_MS) + 2 * SWEEP_PERIOD_MS;
    e.housekeeping(later, usize::MAX, &mut ctl);
    assert_eq!(e.conn_count(), 0);
    let mut a = udp((GW_MAC, FAR, 53), (LB_MAC, SNAT_ADDR, PORT0), b"late");
    assert_eq!(
        e.handle(&mut a, later + 1, &mut ctl),
        Verdict::Drop(Drop::NoConnection)
    );
}

// IPv6: the same services over IPv6 (ICMPv6 echo instead of ICMP), the
// inside network fd00:100::/64, the SNAT address 2001:db8:1::3 and the
// gateway 2001:db8:1::1.

use super::v6::{checked6, icmp6_error, nd, tcp6, udp6, End6};
use crate::wire::icmpv6::NEIGHBOR_ADVERT;
use crate::wire::icmpv6::NEIGHBOR_SOLICIT;

const INSIDE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 2);
const FAR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 7);
const SNAT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
const GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

fn rule6(svc: usize, proto: u8, dports: (u16, u16)) -> SnatRule<Ipv6Addr> {
    SnatRule {
        svc,
        proto,
        src: (
            Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 0),
            Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff),
        ),
        sports: (0, u16::MAX),
        dst: (Ipv6Addr::UNSPECIFIED, Ipv6Addr::from(u128::MAX)),
        dports,
    }
}

/// TCP to anywhere, UDP to port 53, ICMPv6 echo to anywhere, from the
/// inside network through SNAT6.
fn snat_snapshot6() -> Arc<Snapshot> {
    let rules = vec![
        rule6(0, 6, (0, u16::MAX)),
        rule6(1, 17, (53, 53)),
        rule6(2, 58, (0, u16::MAX)),
    ];
    Arc::new(Snapshot {
        v6: snat_half(SNAT6, GW6, Protocol::Icmpv6, rules),
        ..Snapshot::default()
    })
}

/// An engine with [`snat_snapshot6`] whose gateway is resolved.
fn snat_engine6() -> (Engine, Burst) {
    worker_engine(snat_snapshot6(), 0, (PORT0, PORT0 + 100))
}

#[test]
fn snat6_answers_neighbor_solicitations_for_its_address() {
    let (mut e, mut ctl) = snat_engine6();
    let ns = nd(
        NEIGHBOR_SOLICIT,
        0,
        (GW_MAC, LB_MAC),
        (GW6, SNAT6),
        SNAT6,
        1,
        GW_MAC,
    );
    let (v, out) = handle_grow(&mut e, &ns, 2, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let want = nd(
        NEIGHBOR_ADVERT,
        0x60,
        (LB_MAC, GW_MAC),
        (SNAT6, GW6),
        SNAT6,
        2,
        LB_MAC,
    );
    assert_eq!(out, want);
    // Not for the inside or outside hosts' addresses.
    let ns = nd(
        NEIGHBOR_SOLICIT,
        0,
        (INSIDE_MAC, LB_MAC),
        (INSIDE6, FAR6),
        FAR6,
        1,
        INSIDE_MAC,
    );
    assert_eq!(handle_grow(&mut e, &ns, 3, &mut ctl).0, Verdict::Ignore);
}

/// Handles `frame` at `now`: it must be forwarded as exactly `want`,
/// with checksums etherparse agrees with.
fn forwards6(e: &mut Engine, ctl: &mut Burst, now: u64, frame: &[u8], want: &[u8]) {
    let (v, out) = handle_grow(e, frame, now, ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(out, want);
    checked6(&out);
}

#[test]
fn snat6_tcp_golden_both_directions() {
    let (mut e, mut ctl) = snat_engine6();
    let inside = (INSIDE_MAC, INSIDE6, 5000);
    let (far_in, far_out) = ((LB_MAC, FAR6, 80), (GW_MAC, FAR6, 80));
    let snat_in = (LB_MAC, SNAT6, PORT0);
    // (flags, payload) of the inside host's packets and the replies.
    let out = [((true, false), &b""[..]), ((false, true), b"GET /")];
    let back = [((true, true), &b""[..]), ((false, true), b"200 OK")];
    for (i, ((f, data), (rf, rdata))) in out.into_iter().zip(back).enumerate() {
        let now = 10 + 2 * i as u64;
        let sent = tcp6(inside, far_in, f, data, 64);
        forwards6(
            &mut e,
            &mut ctl,
            now,
            &sent,
            &tcp6(snat_in, far_out, f, data, 63),
        );
        let reply = tcp6(far_out, snat_in, rf, rdata, 64);
        let theirs = tcp6(far_in, (INSIDE_MAC, INSIDE6, 5000), rf, rdata, 63);
        forwards6(&mut e, &mut ctl, now + 1, &reply, &theirs);
    }
    assert_eq!(e.conn_count(), 1);
    // Another inside host with the same port: another SNAT port.
    let other = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 3);
    let syn2 = tcp6((INSIDE_MAC, other, 5000), far_in, (true, false), b"", 64);
    let want = tcp6((LB_MAC, SNAT6, PORT0 + 1), far_out, (true, false), b"", 63);
    forwards6(&mut e, &mut ctl, 14, &syn2, &want);
    e.flush_stats();
    let stats = e.snap.v6.services[0].stats.snapshot();
    assert_eq!((stats.conns, stats.in_pkts, stats.out_pkts), (2, 3, 2));
    no_drops(&e);
}

/// The UDP ends of the IPv6 tests: the inside host, and the outside
/// host as the inside host and the gateway's side see it.
const INSIDE6_UDP: End6 = (INSIDE_MAC, INSIDE6, 5353);
const FAR6_IN: End6 = (LB_MAC, FAR6, 53);
const FAR6_OUT: End6 = (GW_MAC, FAR6, 53);

/// An inside host's UDP query through SNAT6, checked (golden): returns
/// what went to the gateway.
fn query6(e: &mut Engine, ctl: &mut Burst) -> Vec<u8> {
    let q = udp6(INSIDE6_UDP, FAR6_IN, b"query!", 64);
    let sent = udp6((LB_MAC, SNAT6, PORT0), FAR6_OUT, b"query!", 63);
    forwards6(e, ctl, 10, &q, &sent);
    sent
}

#[test]
fn snat6_udp_golden_both_directions_and_what_it_does_not_take() {
    let (mut e, mut ctl) = snat_engine6();
    let (inside, far_in, far_out) = (INSIDE6_UDP, FAR6_IN, FAR6_OUT);
    query6(&mut e, &mut ctl);
    let a = udp6(far_out, (LB_MAC, SNAT6, PORT0), b"answer", 64);
    let want = udp6(far_in, inside, b"answer", 63);
    forwards6(&mut e, &mut ctl, 11, &a, &want);
    no_drops(&e);
    // Another port, a source outside src-range: the kernel's, untouched.
    let stranger = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 2);
    for f in [
        udp6(inside, (LB_MAC, FAR6, 54), b"x", 64),
        udp6((INSIDE_MAC, stranger, 5353), far_in, b"x", 64),
    ] {
        assert_eq!(handle_grow(&mut e, &f, 12, &mut ctl), (Verdict::Ignore, f));
    }
    // A stray reply to the SNAT address is ours and dropped.
    let stray = udp6(far_out, (LB_MAC, SNAT6, PORT0 + 7), b"x", 64);
    assert_eq!(
        handle_grow(&mut e, &stray, 13, &mut ctl).0,
        Verdict::Drop(Drop::NoConnection)
    );
}

/// An ICMPv6 echo request (`reply` false) or reply `src → dst` with `id`.
fn echo6(
    macs: (MacAddr, MacAddr),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    id: u16,
    reply: bool,
    hop: u8,
) -> Vec<u8> {
    echo_any(macs, (src.into(), dst.into()), id, reply, hop)
}

#[test]
fn snat6_icmpv6_echo_maps_the_identifier_both_ways() {
    let (mut e, mut ctl) = snat_engine6();
    let (inside, outside) = ((INSIDE_MAC, LB_MAC), (GW_MAC, LB_MAC));
    let req = echo6(inside, (INSIDE6, FAR6), 0x1234, false, 64);
    let want = echo6((LB_MAC, GW_MAC), (SNAT6, FAR6), PORT0, false, 63);
    forwards6(&mut e, &mut ctl, 10, &req, &want);
    // Another host, same identifier: another one.
    let other = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 3);
    let req2 = echo6(inside, (other, FAR6), 0x1234, false, 64);
    let want = echo6((LB_MAC, GW_MAC), (SNAT6, FAR6), PORT0 + 1, false, 63);
    forwards6(&mut e, &mut ctl, 10, &req2, &want);
    let rep = echo6(outside, (FAR6, SNAT6), PORT0, true, 64);
    let want = echo6((LB_MAC, INSIDE_MAC), (FAR6, INSIDE6), 0x1234, true, 63);
    forwards6(&mut e, &mut ctl, 11, &rep, &want);
    assert_eq!(e.conn_count(), 2);
    assert_eq!(e.snap.v6.services[2].stats.snapshot().conns, 2);
    no_drops(&e);
    // A reply nobody was given, a request to the SNAT address: ours, dropped.
    let verdict = |e: &mut Engine, ctl: &mut Burst, f: &[u8]| handle_grow(e, f, 12, ctl).0;
    let stray = echo6(outside, (FAR6, SNAT6), 7, true, 64);
    let dropped = |d| Verdict::Drop(d);
    assert_eq!(
        verdict(&mut e, &mut ctl, &stray),
        dropped(Drop::NoConnection)
    );
    let to_us = echo6(outside, (FAR6, SNAT6), 7, false, 64);
    assert_eq!(
        verdict(&mut e, &mut ctl, &to_us),
        dropped(Drop::IcmpUnhandled)
    );
    // A bad checksum: not mapped; an inside host's packet is the
    // kernel's then (as IPv4's), a reply to the SNAT address is counted.
    let mut bad = echo6(inside, (INSIDE6, FAR6), 0x99, false, 64);
    bad[ETH_LEN + 40 + 2] ^= 0xff;
    assert_eq!(verdict(&mut e, &mut ctl, &bad), Verdict::Ignore);
    let mut bad = echo6(outside, (FAR6, SNAT6), PORT0, true, 64);
    bad[ETH_LEN + 40 + 2] ^= 0xff;
    assert_eq!(verdict(&mut e, &mut ctl, &bad), dropped(Drop::BadChecksum));
    assert_eq!(e.conn_count(), 2);
}

#[test]
fn snat6_icmpv6_errors_are_translated_both_ways() {
    let (mut e, mut ctl) = snat_engine6();
    let (inside, far_in, far_out) = (INSIDE6_UDP, FAR6_IN, FAR6_OUT);
    let sent = query6(&mut e, &mut ctl);
    // The gateway: the outbound packet was too big. The inside host hears
    // it about its own packet, still from the gateway.
    let too_big = (2, 0, 1280);
    let err = icmp6_error((GW_MAC, LB_MAC), (GW6, SNAT6), 64, too_big, &sent);
    let theirs = udp6(inside, far_in, b"query!", 63);
    let want = icmp6_error((LB_MAC, INSIDE_MAC), (GW6, INSIDE6), 63, too_big, &theirs);
    forwards6(&mut e, &mut ctl, 11, &err, &want);
    // The inside host: the reply's port is unreachable. FAR6 hears it
    // from the SNAT address about what it sent.
    let a = udp6(far_out, (LB_MAC, SNAT6, PORT0), b"answer", 64);
    let got = udp6(far_in, inside, b"answer", 63);
    forwards6(&mut e, &mut ctl, 12, &a, &got);
    let unreachable = (1, 4, 0);
    let err = icmp6_error((INSIDE_MAC, LB_MAC), (INSIDE6, FAR6), 64, unreachable, &got);
    let theirs = udp6(far_out, (LB_MAC, SNAT6, PORT0), b"answer", 63);
    let want = icmp6_error((LB_MAC, GW_MAC), (SNAT6, FAR6), 63, unreachable, &theirs);
    forwards6(&mut e, &mut ctl, 13, &err, &want);
    no_drops(&e);
    // An inside host's error about nothing tracked is the kernel's.
    let other = udp6(far_out, (LB_MAC, SNAT6, PORT0 + 9), b"?", 64);
    let lost = icmp6_error(
        (INSIDE_MAC, LB_MAC),
        (INSIDE6, FAR6),
        64,
        unreachable,
        &other,
    );
    assert_eq!(handle_grow(&mut e, &lost, 15, &mut ctl).0, Verdict::Ignore);
    no_drops(&e);
}

#[test]
fn a_tracked_snat_flow_that_cannot_be_sent_is_counted_not_the_kernels() {
    let (mut e, mut ctl) = snat_engine();
    let mut q = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"q1");
    assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
    // The gateway moves to an address nobody answered for yet: the same
    // services and SNAT address (their counters, so the connection's
    // destination stays), another next hop.
    let old = Arc::clone(&e.snap);
    let moved = Ipv4Addr::new(123, 1, 2, 254);
    let mut snap = Arc::into_inner(snat_snapshot()).expect("fresh");
    for (new, old) in snap.v4.services.iter_mut().zip(&old.v4.services) {
        new.stats = Arc::clone(&old.stats);
        for (n, o) in new.servers.iter_mut().zip(&old.servers) {
            n.stats = Arc::clone(&o.stats);
        }
    }
    snap.v4.next_hop = vec![Some(moved); 3];
    snap.v4.neighbours = vec![(moved, SNAT_ADDR)];
    e.set_snapshot(Arc::new(snap), 20, &mut ctl);
    let mut q = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"q2");
    let before = q.clone();
    assert_eq!(
        e.handle(&mut q, 21, &mut ctl),
        Verdict::Drop(Drop::NeighbourUnresolved)
    );
    assert_eq!(q, before, "not rewritten");
    assert_eq!(e.drops.get(Drop::NeighbourUnresolved), 1);
    assert_eq!(e.conn_count(), 1, "the flow stays");
    // Traffic no match service takes is still the kernel's, uncounted.
    let mut other = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 54), b"x");
    assert_eq!(e.handle(&mut other, 22, &mut ctl), Verdict::Ignore);
    assert_eq!(e.drops.get(Drop::NeighbourUnresolved), 1);
    // Once the new gateway answers, the flow goes on.
    let mut reply = arp(ArpOperation::Reply, GW_MAC, moved, SNAT_ADDR);
    assert_eq!(e.handle(&mut reply, 23, &mut ctl), Verdict::Ignore);
    let mut q = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"q3");
    assert_eq!(e.handle(&mut q, 24, &mut ctl), Verdict::Forward);
}

#[test]
fn with_two_workers_echo_replies_are_steered_to_the_mapping_owner() {
    use crate::steer::{local_port_range, Owner, Steering};
    // Worker 1 of 2, with its own local port range, IPv4 and IPv6.
    let both = Snapshot {
        v4: Arc::into_inner(snat_snapshot()).expect("fresh").v4,
        v6: Arc::into_inner(snat_snapshot6()).expect("fresh").v6,
        ..Snapshot::default()
    };
    let range = local_port_range(1, 2);
    let (mut e, mut ctl) = worker_engine(Arc::new(both), 1, range);
    let steering = Steering::from_snapshot(&e.snap, 2);
    let mut req = echo((INSIDE_MAC, LB_MAC), INSIDE, OUTSIDE, 0x1234, false);
    assert_eq!(e.handle(&mut req, 10, &mut ctl), Verdict::Forward);
    let id = u16::from_be_bytes([req[ETH_LEN + 24], req[ETH_LEN + 25]]);
    assert!((range.0..=range.1).contains(&id), "id {id} in {range:?}");
    // The reply lands on worker 0 (RSS) and is sent to worker 1, which
    // knows the mapping.
    let mut rep = echo((GW_MAC, LB_MAC), OUTSIDE, SNAT_ADDR, id, true);
    assert_eq!(steering.owner(&rep, 0), Owner::Worker(1));
    assert_eq!(steering.owner(&rep, 1), Owner::Here);
    assert_eq!(e.handle(&mut rep, 11, &mut ctl), Verdict::Forward);
    assert_eq!(
        rep,
        echo_ttl((LB_MAC, INSIDE_MAC), OUTSIDE, INSIDE, 0x1234, true, 63)
    );
    // UDP replies to the SNAT address likewise, by port.
    let mut q = udp((INSIDE_MAC, INSIDE, 5353), (LB_MAC, FAR, 53), b"q");
    assert_eq!(e.handle(&mut q, 12, &mut ctl), Verdict::Forward);
    let port = u16::from_be_bytes([q[ETH_LEN + 20], q[ETH_LEN + 21]]);
    let a = udp((GW_MAC, FAR, 53), (LB_MAC, SNAT_ADDR, port), b"a");
    assert_eq!(steering.owner(&a, 0), Owner::Worker(1));
    // ICMPv6 likewise.
    let req = echo6((INSIDE_MAC, LB_MAC), (INSIDE6, FAR6), 0x1234, false, 64);
    let (v, out) = handle_grow(&mut e, &req, 13, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    let id = u16::from_be_bytes([out[ETH_LEN + 44], out[ETH_LEN + 45]]);
    assert!((range.0..=range.1).contains(&id), "id {id} in {range:?}");
    let rep = echo6((GW_MAC, LB_MAC), (FAR6, SNAT6), id, true, 64);
    assert_eq!(steering.owner(&rep, 0), Owner::Worker(1));
    let want = echo6((LB_MAC, INSIDE_MAC), (FAR6, INSIDE6), 0x1234, true, 63);
    forwards6(&mut e, &mut ctl, 14, &rep, &want);
}

/// Two-arm SNAT, DPVS's usual layout: the inside hosts behind port 1
/// (its network 192.168.100.0/24, [`Snapshot::port_nets`]), the SNAT
/// address and the gateway on port 0. Outbound packets leave on port 0 to
/// the gateway; the replies on port 1 to the inside host, from its MAC.
#[test]
fn two_arm_snat_replies_leave_on_the_inside_hosts_port() {
    two_arm_snat(0);
}

/// [`two_arm_snat_replies_leave_on_the_inside_hosts_port`] with the inside
/// hosts on VLAN 100 of port 1 (`iif dpdk1.100`, the kernel's address on
/// `dpdk1.100`): their packets come tagged, the replies leave tagged.
#[test]
fn two_arm_snat_replies_to_inside_hosts_on_a_vlan_are_tagged() {
    two_arm_snat(100);
}

fn two_arm_snat(vlan: u16) {
    use super::vlan::tagged;
    let port1 = MacAddr([2, 0x99, 0, 0, 9, 9]);
    let mut snap = Arc::try_unwrap(snat_snapshot()).expect("unique");
    let inside_net = Device { port: 1, vlan };
    snap.port_nets = vec![(Ipv4Addr::new(192, 168, 100, 1).into(), 24, inside_net)];
    if vlan != 0 {
        snap.vlan_ids = vec![vlan];
    }
    let tag = |frame: &[u8]| match vlan {
        0 => frame.to_vec(),
        v => tagged(frame, v),
    };
    let mut e = Engine::new(0, LB_MAC, 1024, (PORT0, PORT0 + 100), Arc::default());
    e.set_port_macs(&[LB_MAC, port1]);
    let mut ctl = Burst::new(16);
    e.set_snapshot(Arc::new(snap), 0, &mut ctl);
    let mut run = |port: u16, frame: &[u8]| {
        let mut rx = Burst::new(1);
        assert!(rx.push(frame));
        let mut got = None;
        e.handle_burst_on(port, rx.frames_mut(), 10, &mut ctl, |f, v, to| {
            got = Some((v, f.data().to_vec(), to));
        });
        got.expect("one verdict")
    };
    let answer = arp(ArpOperation::Reply, GW_MAC, GW, SNAT_ADDR);
    assert_eq!(run(0, &answer).0, Verdict::Ignore);
    let client = (INSIDE_MAC, INSIDE, 5000);
    let syn = tcp(client, (port1, FAR, 80), true, false, b"");
    let wan = (LB_MAC, SNAT_ADDR, PORT0);
    let want = tcp_ttl(wan, (GW_MAC, FAR, 80), true, false, b"", 63);
    assert_eq!(run(1, &tag(&syn)), (Verdict::Forward, want, 0));
    let synack = tcp((GW_MAC, FAR, 80), wan, true, true, b"");
    let want = tcp_ttl((port1, FAR, 80), client, true, true, b"", 63);
    assert_eq!(run(0, &synack), (Verdict::Forward, tag(&want), 1));
}
