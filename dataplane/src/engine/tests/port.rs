//! Two ports ("two-arm"): each case is compared byte for byte with what a
//! one-port engine makes of the same frame (itself checked against
//! etherparse by the one-port tests), with the port it must leave on and
//! that port's MAC as source.

use super::*;

/// The second port's MAC.
const PORT1_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 1, 1]);

/// [`mode_snapshot`] with the first LIP (or the interface address) on
/// port `lip_port` and the VIPs on port 0.
fn port_snapshot(mode: Forwarding, lips: &[Ipv4Addr], lip_port: u16) -> Arc<Snapshot> {
    let mut snap = Arc::try_unwrap(mode_snapshot(mode, lips, Some(IFACE))).expect("unique");
    if lip_port != 0 {
        let a = lips.first().copied().unwrap_or(IFACE);
        snap.addr_ports = vec![(IpAddr::from(a), lip_port)];
    }
    Arc::new(snap)
}

/// Runs `frame` through [`Engine::handle_burst_on`] as received on
/// `port`: the verdict, the frame, the port it leaves on.
fn on(
    e: &mut Engine,
    port: u16,
    frame: &[u8],
    now: u64,
    ctl: &mut Burst,
) -> (Verdict, Vec<u8>, u16) {
    let mut rx = Burst::new(1);
    assert!(rx.push(frame));
    let mut got = None;
    e.handle_burst_on(port, rx.frames_mut(), now, ctl, |f, v, to| {
        got = Some((v, f.data().to_vec(), to));
    });
    got.expect("one verdict")
}

/// `frame` with its destination MAC `dst` (when it was [`LB_MAC`]) and
/// its source MAC `src` (when it was [`LB_MAC`]).
fn macs(frame: &[u8], dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut out = frame.to_vec();
    if out[..6] == LB_MAC.0 {
        out[..6].copy_from_slice(&dst.0);
    }
    if out[6..12] == LB_MAC.0 {
        out[6..12].copy_from_slice(&src.0);
    }
    out
}

fn port_mac(port: u16) -> MacAddr {
    [LB_MAC, PORT1_MAC][usize::from(port)]
}

/// A two-port engine with `snap` published: its control frames (the
/// announcements and solicitations) are in the returned burst.
fn two_port(snap: Arc<Snapshot>) -> (Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    e.set_port_macs(&[LB_MAC, PORT1_MAC]);
    assert_eq!(e.port_count(), 2);
    let mut ctl = Burst::new(16);
    e.set_snapshot(snap, 0, &mut ctl);
    (e, ctl)
}

/// A two-port engine (the LIP on `lip_port`) whose real server answered
/// ARP on port `rs_port`, and its one-port twin (the oracle).
fn engines(
    mode: Forwarding,
    lips: &[Ipv4Addr],
    lip_port: u16,
    rs_port: u16,
) -> (Engine, Engine, Burst) {
    let (mut e, mut ctl) = two_port(port_snapshot(mode, lips, lip_port));
    let asked = lips.first().copied().unwrap_or(IFACE);
    let reply = arp(ArpOperation::Reply, RS_MAC, RS, asked);
    let reply = macs(&reply, port_mac(rs_port), port_mac(rs_port));
    let (v, _, _) = on(&mut e, rs_port, &reply, 1, &mut ctl);
    assert_eq!(v, Verdict::Ignore);
    ctl.clear();
    let (oracle, _) = mode_engine(mode, lips, Some(IFACE));
    (e, oracle, ctl)
}

/// Runs `frame` (addressed to [`LB_MAC`]) in on port `port_in` of the
/// two-port engine and through the oracle: the results must match, out
/// of `port_out` with its MAC. Returns the oracle's frame.
fn golden(
    e: &mut Engine,
    oracle: &mut Engine,
    ctl: &mut Burst,
    frame: &[u8],
    (port_in, port_out): (u16, u16),
) -> Vec<u8> {
    let input = macs(frame, port_mac(port_in), port_mac(port_in));
    let (v, got, to) = on(e, port_in, &input, 5, ctl);
    let (ov, want, oto) = on(oracle, 0, frame, 5, ctl);
    assert_eq!((v, ov), (Verdict::Forward, Verdict::Forward));
    assert_eq!(oto, 0, "one port: everything leaves on port 0");
    assert_eq!(to, port_out, "in on {port_in}");
    assert_eq!(
        got,
        macs(&want, LB_MAC, port_mac(port_out)),
        "in on {port_in}"
    );
    want
}

#[test]
fn fnat_client_on_port_0_server_on_port_1_both_ways() {
    let (mut e, mut o, mut ctl) = engines(Forwarding::Fnat, &[LIP], 1, 1);
    let client = (CLIENT_MAC, CLIENT, 33000);
    let syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
    let out = golden(&mut e, &mut o, &mut ctl, &syn, (0, 1));
    let (_, dst_mac, src, dst, _, _, _) = inspect(&out);
    assert_eq!((dst_mac, src, dst), (RS_MAC, LIP, RS));
    let lport = inspect(&out).4;
    // The real server's SYN-ACK to the LIP, in on port 1: out on port 0.
    let synack = tcp((RS_MAC, RS, 80), (LB_MAC, LIP, lport), true, true, b"");
    let back = golden(&mut e, &mut o, &mut ctl, &synack, (1, 0));
    assert_eq!(inspect(&back).1, CLIENT_MAC);
    // Established: the fast path (ACK and data) keeps to the same ports.
    let ack = tcp(client, (LB_MAC, VIP, 80), false, true, b"GET");
    golden(&mut e, &mut o, &mut ctl, &ack, (0, 1));
    let data = tcp((RS_MAC, RS, 80), (LB_MAC, LIP, lport), false, true, b"200");
    golden(&mut e, &mut o, &mut ctl, &data, (1, 0));
    // UDP as well.
    let q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query");
    golden(&mut e, &mut o, &mut ctl, &q, (0, 1));
}

#[test]
fn a_real_server_is_reached_where_its_arp_reply_came_from() {
    // The LIP is on port 1, but the server answered on port 0.
    let (mut e, mut o, mut ctl) = engines(Forwarding::Fnat, &[LIP], 1, 0);
    let syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    golden(&mut e, &mut o, &mut ctl, &syn, (0, 0));
    // DR: the client's frame goes to the server's MAC on its port.
    let (mut e, mut o, mut ctl) = engines(Forwarding::Dr, &[], 1, 1);
    let syn = tcp((CLIENT_MAC, CLIENT, 2), (LB_MAC, VIP, 80), true, false, b"");
    golden(&mut e, &mut o, &mut ctl, &syn, (0, 1));
}

#[test]
fn arp_is_answered_only_on_the_addresss_port() {
    let (mut e, _, mut ctl) = engines(Forwarding::Fnat, &[LIP], 1, 1);
    let (mut o, mut octl) = engine();
    for (ip, port, other) in [(LIP, 1, 0), (VIP, 0, 1)] {
        let mut req = arp(ArpOperation::Request, CLIENT_MAC, CLIENT, ip);
        req[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        let (ov, want, _) = on(&mut o, 0, &req, 1, &mut octl);
        assert_eq!(ov, Verdict::Forward);
        let (v, got, to) = on(&mut e, port, &req, 1, &mut ctl);
        assert_eq!((v, to), (Verdict::Forward, port), "{ip}");
        let answer =
            ArpRepr::parse(&ArpPacket::new_checked(&got[14..]).expect("arp")).expect("repr");
        assert_eq!(answer.source_hardware_addr, port_mac(port), "{ip}");
        let mut want = macs(&want, LB_MAC, port_mac(port));
        want[22..28].copy_from_slice(&port_mac(port).0);
        assert_eq!(got, want, "{ip}");
        // Not on the other port: left alone, unchanged.
        let (v, got, _) = on(&mut e, other, &req, 1, &mut ctl);
        assert_eq!((v, &got), (Verdict::Ignore, &req), "{ip} on port {other}");
    }
}

#[test]
fn announcements_and_solicitations_leave_on_their_addresss_port() {
    let (mut e, mut ctl) = two_port(port_snapshot(Forwarding::Fnat, &[LIP], 1));
    let sent = |ctl: &Burst| {
        let mut seen: Vec<_> = ctl
            .frames()
            .iter()
            .map(|f| {
                let d = f.data();
                let arp =
                    ArpRepr::parse(&ArpPacket::new_checked(&d[14..]).expect("arp")).expect("repr");
                assert_eq!(
                    d[6..12],
                    arp.source_hardware_addr.0,
                    "Ethernet and ARP source agree"
                );
                let mac = arp.source_hardware_addr;
                (
                    arp.source_protocol_addr,
                    arp.target_protocol_addr,
                    f.port(),
                    mac,
                )
            })
            .collect();
        seen.sort();
        seen
    };
    // Gratuitous ARP for the VIPs on port 0, the LIP on 1; RS asked on 1.
    let mut want = vec![
        (VIP, VIP, 0, LB_MAC),
        (VIP2, VIP2, 0, LB_MAC),
        (LIP, LIP, 1, PORT1_MAC),
        (LIP, RS, 1, PORT1_MAC),
    ];
    want.sort();
    assert_eq!(sent(&ctl), want);
    // The refresh asks again from the LIP, on its port, even after the
    // server answered on port 0.
    ctl.clear();
    let reply = macs(&arp(ArpOperation::Reply, RS_MAC, RS, LIP), LB_MAC, LB_MAC);
    on(&mut e, 0, &reply, 1, &mut ctl);
    e.housekeeping(NEIGHBOUR_REFRESH_MS + 10, 0, &mut ctl);
    assert_eq!(sent(&ctl), [(LIP, RS, 1, PORT1_MAC)]);
}

#[test]
fn one_port_is_unchanged() {
    // An engine told of its one port behaves as one never told: same
    // frames, all on port 0, control frames included.
    let (mut o, mut octl) = mode_engine(Forwarding::Fnat, &[LIP], Some(IFACE));
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    e.set_port_macs(&[LB_MAC]);
    let mut ctl = Burst::new(16);
    e.set_snapshot(
        mode_snapshot(Forwarding::Fnat, &[LIP], Some(IFACE)),
        0,
        &mut ctl,
    );
    assert!(ctl.frames().iter().all(|f| f.port() == 0));
    resolve_rs(&mut e, &mut ctl);
    ctl.clear();
    let syn = tcp((CLIENT_MAC, CLIENT, 7), (LB_MAC, VIP, 80), true, false, b"");
    // Received on a port the engine does not have: as port 0.
    for port in [0, 1] {
        let (v, got, to) = on(&mut e, port, &syn, 5, &mut ctl);
        let (ov, want, _) = on(&mut o, 0, &syn, 5, &mut octl);
        assert_eq!((v, &got, to), (ov, &want, 0));
    }
}

#[test]
fn fnat6_and_nd_on_two_ports() {
    use super::v6::{
        checked6, engine6_unresolved, nd, snapshot6, solicitation, tcp6, CLIENT6, LIP6, RS6, VIP6,
    };
    use crate::wire::icmpv6::NEIGHBOR_ADVERT;
    use crate::wire::Ipv6Packet;
    let mut snap = Arc::try_unwrap(snapshot6(Forwarding::Fnat, &[LIP6])).expect("unique");
    snap.addr_ports = vec![(LIP6.into(), 1)];
    let (mut e, mut ctl) = two_port(Arc::new(snap));
    // Unsolicited NAs (VIP on 0, LIP on 1) and the NS for the real server
    // (from the LIP: on 1), each with its port's MAC as Ethernet source and
    // link-layer address option (the last 6 bytes).
    assert_eq!(ctl.len(), 3);
    for f in ctl.frames() {
        let d = f.data();
        let src = Ipv6Packet::new_checked(&d[ETH_LEN..])
            .expect("ipv6")
            .src_addr();
        let port = u16::from(src == LIP6);
        assert_eq!(f.port(), port, "{src}");
        assert_eq!(d[6..12], port_mac(port).0, "{src}");
        assert_eq!(d[d.len() - 6..], port_mac(port).0, "{src}");
    }
    ctl.clear();
    let (mut o, mut octl) = engine6_unresolved(Forwarding::Fnat, &[LIP6]);
    // The real server answers on port 1.
    let na = nd(
        NEIGHBOR_ADVERT,
        0x60,
        (RS_MAC, LB_MAC),
        (RS6, LIP6),
        RS6,
        2,
        RS_MAC,
    );
    let na1 = macs(&na, PORT1_MAC, PORT1_MAC);
    assert_eq!(on(&mut e, 1, &na1, 1, &mut ctl).0, Verdict::Ignore);
    assert_eq!(on(&mut o, 0, &na, 1, &mut octl).0, Verdict::Ignore);
    let client = (CLIENT_MAC, CLIENT6, 33000);
    let syn = tcp6(client, (LB_MAC, VIP6, 80), (true, false), b"", 64);
    let out = golden(&mut e, &mut o, &mut ctl, &syn, (0, 1));
    let lport = checked6(&out);
    let synack = tcp6(
        (RS_MAC, RS6, 8080),
        (LB_MAC, LIP6, lport),
        (true, true),
        b"",
        64,
    );
    golden(&mut e, &mut o, &mut ctl, &synack, (1, 0));
    // A solicitation is answered only on its target's port, with its MAC.
    for (target, port) in [(VIP6, 0), (LIP6, 1)] {
        let ns = solicitation(target);
        let (v, got, to) = on(&mut e, port, &ns, 7, &mut ctl);
        assert_eq!((v, to), (Verdict::Forward, port), "{target}");
        assert_eq!(got[6..12], port_mac(port).0, "{target}");
        assert_eq!(got[got.len() - 6..], port_mac(port).0, "{target}");
        let (v, _, _) = on(&mut e, 1 - port, &ns, 7, &mut ctl);
        assert_eq!(v, Verdict::Ignore, "{target} on the other port");
    }
}

#[test]
fn a_vlan_on_the_second_port() {
    use super::vlan::tagged;
    // The LIP on dpdk1.200: the real server is asked, reached and heard
    // on port 1 with tag 200; the client untagged on port 0.
    let mut snap = Arc::try_unwrap(port_snapshot(Forwarding::Fnat, &[LIP], 1)).expect("unique");
    snap.addr_vlans = vec![(IpAddr::from(LIP), 200)];
    snap.vlan_ids = vec![200];
    let (mut e, mut ctl) = two_port(Arc::new(snap));
    let ask = ctl
        .frames()
        .iter()
        .find(|f| f.data().len() >= 46 && f.data()[42..46] == RS.octets())
        .expect("ARP request for the real server");
    assert_eq!(
        (ask.port(), &ask.data()[12..16]),
        (1, &[0x81, 0, 0, 200][..])
    );
    ctl.clear();
    let reply = macs(
        &arp(ArpOperation::Reply, RS_MAC, RS, LIP),
        PORT1_MAC,
        PORT1_MAC,
    );
    assert_eq!(
        on(&mut e, 1, &tagged(&reply, 200), 1, &mut ctl).0,
        Verdict::Ignore
    );
    let (mut o, mut octl) = mode_engine(Forwarding::Fnat, &[LIP], Some(IFACE));
    let client = (CLIENT_MAC, CLIENT, 4000);
    let syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
    let (v, got, to) = on(&mut e, 0, &syn, 5, &mut ctl);
    let (_, want, _) = on(&mut o, 0, &syn, 5, &mut octl);
    assert_eq!((v, to), (Verdict::Forward, 1));
    assert_eq!(got, tagged(&macs(&want, LB_MAC, PORT1_MAC), 200));
    let lport = inspect(&want).4;
    let synack = tcp((RS_MAC, RS, 80), (LB_MAC, LIP, lport), true, true, b"");
    let input = tagged(&macs(&synack, PORT1_MAC, PORT1_MAC), 200);
    let (v, got, to) = on(&mut e, 1, &input, 6, &mut ctl);
    let (_, want, _) = on(&mut o, 0, &synack, 6, &mut octl);
    assert_eq!((v, to, got), (Verdict::Forward, 0, want));
}

#[test]
fn nat_and_tun_reach_servers_behind_the_second_port() {
    // NAT without local addresses, the interface address on port 1 (the
    // servers' network): requests leave there, the server's replies on 0.
    let (mut e, mut o, mut ctl) = engines(Forwarding::Nat, &[], 1, 1);
    let client = (CLIENT_MAC, CLIENT, 33001);
    let syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
    let out = golden(&mut e, &mut o, &mut ctl, &syn, (0, 1));
    let (_, dst_mac, src, dst, _, dport, _) = inspect(&out);
    assert_eq!((dst_mac, src, dst, dport), (RS_MAC, CLIENT, RS, 8080));
    let reply = tcp((RS_MAC, RS, 8080), (LB_MAC, CLIENT, 33001), true, true, b"");
    let back = golden(&mut e, &mut o, &mut ctl, &reply, (1, 0));
    let (_, dst_mac, src, _, sport, _, _) = inspect(&back);
    assert_eq!((dst_mac, src, sport), (CLIENT_MAC, VIP, 80));

    // TUN: a server asked from port 1's interface address (not port 0's)
    // is asked on port 1 and tunnelled to from that address, on port 1.
    let iface1 = Ipv4Addr::new(10, 99, 1, 1);
    let snap = mode_snapshot(Forwarding::Tun, &[], Some(IFACE));
    let mut snap = Arc::try_unwrap(snap).expect("unique");
    snap.v4.neighbours = vec![(RS, iface1)];
    snap.addr_ports = vec![(iface1.into(), 1)];
    let (mut e, mut ctl) = two_port(Arc::new(snap));
    let ask = ctl
        .frames()
        .iter()
        .find(|f| f.data().len() >= 42 && f.data()[38..42] == RS.octets())
        .expect("ARP request for the real server");
    assert_eq!((ask.port(), &ask.data()[28..32]), (1, &iface1.octets()[..]));
    ctl.clear();
    let answer = arp(ArpOperation::Reply, RS_MAC, RS, iface1);
    let answer = macs(&answer, PORT1_MAC, PORT1_MAC);
    assert_eq!(on(&mut e, 1, &answer, 1, &mut ctl).0, Verdict::Ignore);
    let (v, out, to) = on(&mut e, 0, &syn, 5, &mut ctl);
    assert_eq!((v, to), (Verdict::Forward, 1));
    assert_eq!(out, macs(&tunnelled(&syn, iface1), LB_MAC, PORT1_MAC));
}
