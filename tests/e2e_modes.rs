//! End to end: `lb_kind NAT`, `DR` and `TUN` in the lab of tests/lab.sh,
//! real nginx servers behind the VIP, configured by keepalived.conf.
//!
//! - NAT: the real servers route the client through the director (a host
//!   route via 10.99.0.1); dpvsd DNATs VIP:80 → RS:8080 and SNATs replies.
//! - DR: the real servers hold the VIP on lo (arp_ignore=1,
//!   arp_announce=2); dpvsd only rewrites MACs and replies go straight to
//!   the client.
//! - TUN: this kernel has no ipip module, so a helper thread in each real
//!   server's namespace captures what dpvsd sends (AF_PACKET), checks every
//!   IPIP packet (outer header and inner packet, checksums by etherparse)
//!   and hands the inner packet to the real server's stack (raw socket).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::sniff::{self, assert_tunnelled, decap, Seen, Sniffer, CLIENT, LB};
use common::{can_run, mode_config as config, service_stats, vip_on_lo, Lab, VIP};

const LB_MAC: &str = "02:99:00:00:00:01";

fn start(lab: &mut Lab, kind: &str, vport: u16, extra: &str) {
    lab.start_conf(&config(kind, vport, extra), [common::RS1, common::RS2]);
}

/// The MAC the client resolved the VIP to.
fn client_vip_mac(lab: &Lab) -> String {
    lab.neigh("client", VIP)
}

#[test]
fn nat_dnat_in_snat_back_through_the_director() {
    if !can_run("nat_dnat_in_snat_back_through_the_director") {
        return;
    }
    let mut lab = Lab::up("nat");
    // The client shares the subnet: route it through the director, as a
    // NAT real server's default route would.
    let route = format!("{CLIENT}/32");
    lab.exec_servers(&["ip", "route", "add", &route, "via", &LB.to_string()]);
    start(&mut lab, "NAT", 80, "");

    // VIP:80 → RS:8080 (the port is translated too).
    let (conns, inp, outp) = lab.balanced("NAT", &format!("http://{VIP}/"), 30);
    // Replies passed through dpvsd (SNAT): every connection had some.
    assert!(
        inp > 0 && outp >= conns,
        "in={inp} out={outp} conns={conns}"
    );
    assert!(
        client_vip_mac(&lab).contains(LB_MAC),
        "{}",
        client_vip_mac(&lab)
    );

    // Without the route back, replies bypass dpvsd and the client, which
    // talked to the VIP, gets nothing from the VIP: NAT really is in the path.
    lab.exec_servers(&["ip", "route", "del", &route]);
    let (a, b, failed) = lab.traffic(4);
    assert_eq!(
        (a, b, failed),
        (0, 0, 4),
        "replies that bypass the director cannot reach the client"
    );
}

#[test]
fn dr_rewrites_macs_and_replies_go_straight_to_the_client() {
    if !can_run("dr_rewrites_macs_and_replies_go_straight_to_the_client") {
        return;
    }
    let mut lab = Lab::up("dr");
    vip_on_lo(&lab);
    start(&mut lab, "DR", 8080, "");

    let (conns, inp, outp) = lab.balanced("DR", &format!("http://{VIP}:8080/"), 30);
    // Client → server packets went through dpvsd, replies did not.
    assert!(inp >= 3 * conns, "in={inp} conns={conns}");
    assert_eq!(outp, 0, "DR replies must bypass the director");
    // dpvsd, not a real server, answered ARP for the VIP.
    assert!(
        client_vip_mac(&lab).contains(LB_MAC),
        "{}",
        client_vip_mac(&lab)
    );
}

#[test]
fn persistence_keeps_a_client_on_one_server() {
    if !can_run("persistence_keeps_a_client_on_one_server") {
        return;
    }
    let mut lab = Lab::up("per");
    vip_on_lo(&lab);
    start(&mut lab, "DR", 8080, "    persistence_timeout 30\n");
    // rr alone alternates (the other tests); with persistence every
    // connection of the client goes to the server of its first one.
    let (a, b, failed) = lab.traffic_to(&format!("http://{VIP}:8080/"), 20);
    assert_eq!(failed, 0);
    assert!(
        (a, b) == (20, 0) || (a, b) == (0, 20),
        "one client, one server: rs1={a} rs2={b}"
    );
}

#[test]
fn wlc_spreads_connections_by_weight() {
    if !can_run("wlc_spreads_connections_by_weight") {
        return;
    }
    let mut lab = Lab::up("wlc");
    // The sample (rs1 weight 2, rs2 weight 1) with keepalived's default
    // scheduler: no lb_algo line at all.
    let sample =
        std::fs::read_to_string(common::repo().join("samples/keepalived.conf")).expect("sample");
    assert!(sample.contains("    lb_algo wrr\n"));
    lab.start_conf(
        &sample.replace("    lb_algo wrr\n", ""),
        [common::RS1, common::RS2],
    );
    let (_, text) = lab.dpvsctl(&["list"]);
    assert!(text.contains(" wlc"), "{text}");
    // Closed connections stay in the table for their state's timeout, so
    // every request of the test still counts: 2 : 1.
    let (a, b, failed) = lab.traffic(30);
    assert_eq!(failed, 0);
    assert!(
        (18..=22).contains(&a) && (8..=12).contains(&b),
        "wlc with weights 2 and 1: rs1={a} rs2={b}"
    );
}

/// The TOA sniffer: FNAT segments LIP → :8080 ([`sniff::toa`], 8 bytes):
/// SYNs and the client's segments acknowledging the SYN-ACK exactly.
fn toa(frame: &[u8]) -> Seen<'_> {
    sniff::toa(frame, Ipv4Addr::new(10, 99, 0, 200), 8, &CLIENT.octets())
}

#[test]
fn tun_encapsulates_ipip_proven_on_the_wire() {
    if !can_run("tun_encapsulates_ipip_proven_on_the_wire") {
        return;
    }
    let mut lab = Lab::up("tun");
    vip_on_lo(&lab);
    let (ip1, ip2) = (Ipv4Addr::new(10, 99, 0, 3), Ipv4Addr::new(10, 99, 0, 4));
    let rs1 = Sniffer::start(&lab, "rs1", move |f: &[u8]| decap(f, ip1));
    let rs2 = Sniffer::start(&lab, "rs2", move |f: &[u8]| decap(f, ip2));
    start(&mut lab, "TUN", 8080, "");

    let url = format!("http://{VIP}:8080/");
    assert_tunnelled(&lab, (rs1, rs2), &url, 20);

    // Without the decapsulating helpers nothing answers: the traffic really
    // depended on the tunnel.
    let (a, b, failed) = lab.traffic_to(&url, 2);
    assert_eq!((a, b, failed), (0, 0, 2));
}

#[test]
fn fnat_syn_and_first_segments_carry_toa_on_the_wire() {
    if !can_run("fnat_syn_and_first_segments_carry_toa_on_the_wire") {
        return;
    }
    let mut lab = Lab::up("toa");
    let rs1 = Sniffer::start(&lab, "rs1", toa);
    let rs2 = Sniffer::start(&lab, "rs2", toa);
    // The nginx servers offer MSS 1460 (lab MTU 1500); the client must be
    // offered 8 less, room for the TOA on its full-size segments.
    let vip: std::net::IpAddr = VIP.parse().expect("VIP");
    let client = Sniffer::start(&lab, "client", move |f: &[u8]| {
        sniff::synack_mss(f, vip, 80, 1460 - 8)
    });
    lab.start_dpvsd(&common::repo().join("samples/keepalived.conf"));
    lab.wait_health(common::RS1, "up", Duration::from_secs(10));
    lab.wait_health(common::RS2, "up", Duration::from_secs(10));
    let (a, b, failed) = lab.traffic(10);
    std::thread::sleep(Duration::from_millis(300));
    let (r1, r2, c) = (rs1.finish(), rs2.finish(), client.finish());
    println!("rs1 {r1:?}\nrs2 {r2:?}\nclient {c:?}");
    assert_eq!(failed, 0, "FNAT requests failed (rs1={a} rs2={b})");
    let (conns, _, _) = service_stats(&lab);
    sniff::assert_toa_per_connection([&r1, &r2], &c, conns);
    assert!(conns >= 10);
}
