//! 802.1Q golden tests: each tagged case is compared byte for byte with
//! what an engine without VLANs makes of the same frame untagged (itself
//! checked against etherparse by the untagged tests), with the tag the
//! frame must leave with.

use super::*;

const VIP_VLAN: u16 = 100;
const LIP_VLAN: u16 = 200;

/// `frame` with an 802.1Q tag `vid` (priority 0) after the MAC addresses.
pub(super) fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&[0x81, 0x00]);
    out.extend_from_slice(&vid.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// [`mode_snapshot`] with the VIPs on `vip_vlan` and the first LIP (or the
/// interface address) on `lip_vlan` (0: untagged).
fn vlan_snapshot(
    mode: Forwarding,
    lips: &[Ipv4Addr],
    iface: Option<Ipv4Addr>,
    vip_vlan: u16,
    lip_vlan: u16,
) -> Arc<Snapshot> {
    let mut snap = Arc::try_unwrap(mode_snapshot(mode, lips, iface)).expect("unique");
    let mut vlans = vec![];
    if vip_vlan != 0 {
        vlans.push((IpAddr::from(VIP), vip_vlan));
        vlans.push((IpAddr::from(VIP2), vip_vlan));
    }
    if let (Some(a), true) = (lips.first().copied().or(iface), lip_vlan != 0) {
        vlans.push((IpAddr::from(a), lip_vlan));
    }
    vlans.sort();
    snap.vlan_ids = vlans.iter().map(|v| v.1).collect();
    snap.vlan_ids.sort_unstable();
    snap.vlan_ids.dedup();
    snap.addr_vlans = vlans;
    Arc::new(snap)
}

/// A VLAN engine whose real server answered ARP on `rs_vlan`, and its
/// twin without VLANs (the oracle).
fn engines(
    mode: Forwarding,
    lips: &[Ipv4Addr],
    vip_vlan: u16,
    lip_vlan: u16,
    rs_vlan: u16,
) -> (Engine, Engine, Burst) {
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    let snap = vlan_snapshot(mode, lips, Some(IFACE), vip_vlan, lip_vlan);
    e.set_snapshot(snap, 0, &mut ctl);
    let asked = lips.first().copied().unwrap_or(IFACE);
    let mut reply = arp(ArpOperation::Reply, RS_MAC, RS, asked);
    if rs_vlan != 0 {
        reply = tagged(&reply, rs_vlan);
    }
    let (v, _) = handle_grow(&mut e, &reply, 1, &mut ctl);
    assert_eq!(v, Verdict::Ignore);
    ctl.clear();
    let (oracle, _) = mode_engine(mode, lips, Some(IFACE));
    (e, oracle, ctl)
}

/// Runs `frame` tagged with `vid_in` (0: untagged) through the VLAN engine
/// and untagged through the oracle; the results must match, tagged with
/// `vid_out`.
fn golden(
    e: &mut Engine,
    oracle: &mut Engine,
    ctl: &mut Burst,
    frame: &[u8],
    vid_in: u16,
    vid_out: u16,
) {
    let input = if vid_in == 0 {
        frame.to_vec()
    } else {
        tagged(frame, vid_in)
    };
    let (v, got) = handle_grow(e, &input, 5, ctl);
    let (ov, want) = handle_grow(oracle, frame, 5, ctl);
    assert_eq!((v, ov), (Verdict::Forward, Verdict::Forward));
    let want = if vid_out == 0 {
        want
    } else {
        tagged(&want, vid_out)
    };
    assert_eq!(got, want, "in on {vid_in}, out on {vid_out}");
}

#[test]
fn fnat_tagged_client_to_tagged_or_untagged_real_server_both_ways() {
    for (lip_vlan, rs_vlan) in [(LIP_VLAN, LIP_VLAN), (0, 0), (LIP_VLAN, VIP_VLAN)] {
        let (mut e, mut o, mut ctl) =
            engines(Forwarding::Fnat, &[LIP], VIP_VLAN, lip_vlan, rs_vlan);
        let client = (CLIENT_MAC, CLIENT, 33000);
        let syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
        golden(&mut e, &mut o, &mut ctl, &syn, VIP_VLAN, rs_vlan);
        let (_, out) = handle_grow(
            &mut o,
            &tcp(client, (LB_MAC, VIP, 80), false, true, b"x"),
            6,
            &mut ctl,
        );
        let lport = inspect(&out).4;
        // Keep the VLAN engine's connection state in step.
        let ack = tcp(client, (LB_MAC, VIP, 80), false, true, b"x");
        let (v, _) = handle_grow(&mut e, &tagged(&ack, VIP_VLAN), 6, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        // mode_snapshot's FNAT servers listen on the VIP's ports.
        let synack = tcp((RS_MAC, RS, 80), (LB_MAC, LIP, lport), false, true, b"ok");
        golden(&mut e, &mut o, &mut ctl, &synack, rs_vlan, VIP_VLAN);
        let q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query");
        golden(&mut e, &mut o, &mut ctl, &q, VIP_VLAN, rs_vlan);
    }
}

#[test]
fn untagged_client_to_real_server_on_a_vlan() {
    let (mut e, mut o, mut ctl) = engines(Forwarding::Fnat, &[LIP], 0, LIP_VLAN, LIP_VLAN);
    let syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    golden(&mut e, &mut o, &mut ctl, &syn, 0, LIP_VLAN);
    // Without room to grow (a bare slice) the tag cannot be inserted.
    let mut f = tcp((CLIENT_MAC, CLIENT, 2), (LB_MAC, VIP, 80), true, false, b"");
    assert_eq!(e.handle(&mut f, 7, &mut ctl), Verdict::Drop(Drop::NoRoom));
}

#[test]
fn dr_tagged_client_to_tagged_or_untagged_real_server() {
    for rs_vlan in [VIP_VLAN, 0] {
        let (mut e, mut o, mut ctl) = engines(Forwarding::Dr, &[], VIP_VLAN, 0, rs_vlan);
        for (syn, ack) in [(true, false), (false, true)] {
            let f = tcp(
                (CLIENT_MAC, CLIENT, 33000),
                (LB_MAC, VIP, 80),
                syn,
                ack,
                b"",
            );
            golden(&mut e, &mut o, &mut ctl, &f, VIP_VLAN, rs_vlan);
        }
        let q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"q");
        golden(&mut e, &mut o, &mut ctl, &q, VIP_VLAN, rs_vlan);
    }
}

#[test]
fn nat_reply_from_untagged_server_leaves_on_the_vips_vlan() {
    let (mut e, mut o, mut ctl) = engines(Forwarding::Nat, &[], VIP_VLAN, 0, 0);
    let syn = tcp(
        (CLIENT_MAC, CLIENT, 33000),
        (LB_MAC, VIP, 80),
        true,
        false,
        b"",
    );
    golden(&mut e, &mut o, &mut ctl, &syn, VIP_VLAN, 0);
    let reply = tcp((RS_MAC, RS, 8080), (LB_MAC, CLIENT, 33000), true, true, b"");
    golden(&mut e, &mut o, &mut ctl, &reply, 0, VIP_VLAN);
}

#[test]
fn arp_on_a_vlan_carries_its_tag() {
    let mut e = Engine::new(0, LB_MAC, 64, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    let snap = vlan_snapshot(Forwarding::Fnat, &[LIP], None, VIP_VLAN, LIP_VLAN);
    e.set_snapshot(snap, 0, &mut ctl);
    // Gratuitous ARP for the VIPs on 100, the LIP on 200; RS asked on 200.
    let mut seen = vec![];
    for f in ctl.frames() {
        let d = f.data();
        assert_eq!(&d[12..14], &[0x81, 0x00], "every ARP is tagged");
        let vid = u16::from_be_bytes([d[14], d[15]]) & 0xfff;
        let arp = ArpRepr::parse(&ArpPacket::new_checked(&d[18..]).expect("arp")).expect("repr");
        seen.push((arp.source_protocol_addr, arp.target_protocol_addr, vid));
    }
    seen.sort();
    let mut want = vec![
        (VIP, VIP, VIP_VLAN),
        (VIP2, VIP2, VIP_VLAN),
        (LIP, LIP, LIP_VLAN),
        (LIP, RS, LIP_VLAN),
    ];
    want.sort();
    assert_eq!(seen, want);

    // A request for the VIP on its VLAN is answered there, as the untagged
    // engine answers it untagged.
    let req = arp(ArpOperation::Request, CLIENT_MAC, CLIENT, VIP);
    let (mut o, mut octl) = engine();
    let (ov, want) = handle_grow(&mut o, &req, 1, &mut octl);
    assert_eq!(ov, Verdict::Forward);
    let (v, got) = handle_grow(&mut e, &tagged(&req, VIP_VLAN), 1, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(got, tagged(&want, VIP_VLAN));
    // Not on another VLAN, nor untagged: left alone, unchanged.
    for frame in [tagged(&req, LIP_VLAN), req.clone()] {
        let (v, got) = handle_grow(&mut e, &frame, 1, &mut ctl);
        assert_eq!((v, &got), (Verdict::Ignore, &frame));
    }
}

#[test]
fn unknown_stacked_and_truncated_tags_are_counted() {
    let (mut e, _, mut ctl) = engines(Forwarding::Fnat, &[LIP], VIP_VLAN, LIP_VLAN, LIP_VLAN);
    let syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    let double = tagged(&tagged(&syn, VIP_VLAN), VIP_VLAN);
    let mut qinq = tagged(&syn, VIP_VLAN);
    qinq[16..18].copy_from_slice(&[0x88, 0xa8]);
    for (frame, reason) in [
        (tagged(&syn, 555), Drop::UnknownVlan),
        (tagged(&syn, 0), Drop::UnknownVlan),
        (double, Drop::VlanStacked),
        (qinq, Drop::VlanStacked),
    ] {
        let before = e.drops.get(reason);
        let (v, got) = handle_grow(&mut e, &frame, 1, &mut ctl);
        assert_eq!(v, Verdict::Drop(reason));
        assert_eq!(got, frame, "dropped frames are not rewritten");
        assert_eq!(e.drops.get(reason), before + 1);
    }
    // Every truncation of a tagged frame: counted or ignored, no panic.
    let full = tagged(&syn, VIP_VLAN);
    for n in 0..full.len() {
        let (v, _) = handle_grow(&mut e, &full[..n], 1, &mut ctl);
        assert_ne!(v, Verdict::Forward, "{n} bytes");
        let mut s = full[..n].to_vec();
        let _ = e.handle(&mut s, 1, &mut ctl);
    }
    assert!(e.drops.get(Drop::Truncated) >= 4);
}

#[test]
fn tagged_bursts_match_frame_by_frame() {
    let (mut e, _, mut ctl) = engines(Forwarding::Fnat, &[LIP], VIP_VLAN, LIP_VLAN, LIP_VLAN);
    let (mut e2, _, mut ctl2) = engines(Forwarding::Fnat, &[LIP], VIP_VLAN, LIP_VLAN, LIP_VLAN);
    let frames: Vec<Vec<u8>> = (0..8u16)
        .map(|i| {
            let f = tcp(
                (CLIENT_MAC, CLIENT, 1000 + i),
                (LB_MAC, VIP, 80),
                true,
                false,
                b"",
            );
            match i % 3 {
                0 => f,
                1 => tagged(&f, VIP_VLAN),
                _ => tagged(&f, 999),
            }
        })
        .collect();
    same_in_a_burst(&frames, 9, (&mut e2, &mut ctl2), (&mut e, &mut ctl));
}

#[test]
fn untagged_frames_to_a_vip_on_a_vlan_are_counted_and_dropped() {
    let (mut e, mut o, mut ctl) = engines(Forwarding::Fnat, &[LIP], VIP_VLAN, 0, 0);
    let client = (CLIENT_MAC, CLIENT, 33000);
    let syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
    let (v, got) = handle_grow(&mut e, &syn, 2, &mut ctl);
    assert_eq!((v, &got), (Verdict::Drop(Drop::VlanMismatch), &syn));
    assert_eq!(e.drops.get(Drop::VlanMismatch), 1);
    assert_eq!(e.conn_count(), 0);
    // ICMP to the VIP untagged, too.
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"")
        .expect("ping");
    let (v, _) = handle_grow(&mut e, &ping, 2, &mut ctl);
    assert_eq!(v, Verdict::Drop(Drop::VlanMismatch));
    // On its VLAN the same SYN opens the connection, and the real
    // server's (untagged) replies to the untagged LIP still go back.
    golden(&mut e, &mut o, &mut ctl, &syn, VIP_VLAN, 0);
    let lport = {
        let (_, out) = handle_grow(&mut o, &syn, 3, &mut ctl);
        inspect(&out).4
    };
    let synack = tcp((RS_MAC, RS, 80), (LB_MAC, LIP, lport), true, true, b"");
    golden(&mut e, &mut o, &mut ctl, &synack, 0, VIP_VLAN);
    assert_eq!(e.drops.get(Drop::VlanMismatch), 2);
}

#[test]
fn a_reload_that_removes_a_vlan_binding_leaves_no_stale_vlan() {
    // VIPs on 100, the LIP on 200 and the real server learnt there.
    let (mut e, mut o, mut ctl) = engines(Forwarding::Fnat, &[LIP], VIP_VLAN, LIP_VLAN, LIP_VLAN);
    let syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
    golden(&mut e, &mut o, &mut ctl, &syn, VIP_VLAN, LIP_VLAN);
    // The reload unbinds the LIP (SetDevice to the default): the real server is reached
    // untagged from then on, and asked untagged.
    let snap = vlan_snapshot(Forwarding::Fnat, &[LIP], Some(IFACE), VIP_VLAN, 0);
    e.set_snapshot(snap, 10, &mut ctl);
    ctl.clear();
    let syn = tcp((CLIENT_MAC, CLIENT, 2), (LB_MAC, VIP, 80), true, false, b"");
    golden(&mut e, &mut o, &mut ctl, &syn, VIP_VLAN, 0);
    e.housekeeping(NEIGHBOUR_REFRESH_MS + 20, 0, &mut ctl);
    let asks: Vec<_> = ctl
        .frames()
        .iter()
        .map(|f| f.data()[12..14].to_vec())
        .collect();
    assert_eq!(asks, [vec![0x08, 0x06]], "one untagged ARP request");
    // A server learnt on a VLAN whose binding did not change keeps it.
    let (mut e, mut o, mut ctl) = engines(Forwarding::Fnat, &[LIP], VIP_VLAN, LIP_VLAN, VIP_VLAN);
    let mut snap = Arc::try_unwrap(vlan_snapshot(
        Forwarding::Fnat,
        &[LIP],
        Some(IFACE),
        VIP_VLAN,
        LIP_VLAN,
    ))
    .expect("unique");
    snap.addr_vlans.push((IpAddr::from(IFACE), 300));
    snap.addr_vlans.sort();
    snap.vlan_ids.push(300);
    e.set_snapshot(Arc::new(snap), 10, &mut ctl);
    let syn = tcp((CLIENT_MAC, CLIENT, 3), (LB_MAC, VIP, 80), true, false, b"");
    golden(&mut e, &mut o, &mut ctl, &syn, VIP_VLAN, VIP_VLAN);
}
