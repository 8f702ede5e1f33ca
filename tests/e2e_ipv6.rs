//! End to end over IPv6: `lb_kind FNAT`, `DR` and `NAT` with an IPv6 VIP,
//! IPv6 real servers (nginx on [::]:8080) and, for FNAT, an IPv6
//! local_address_group, in the lab of tests/lab.sh built with `v6`
//! (fd99::N/64 without DAD besides 10.99.0.N).
//!
//! dpvsd answers neighbor solicitations for the VIP and the LIP and
//! resolves the real servers by NS; the client reaches the VIP through it.
//! NAT64: an IPv6 VIP in front of the IPv4 nginx servers, FNAT from an IPv4
//! local address.

mod common;

use common::{can_run, mode_config_for, Lab, RS1_V6, RS2_V6, VIP6};

const LB_MAC: &str = "02:99:00:00:00:01";
const LIP6: &str = "fd99::200";

/// A keepalived.conf with one TCP virtual server [VIP6]:`vport` of kind
/// `kind` (with `extra` lines), both lab real servers on :8080 with
/// TCP_CHECK, and the local address group lg6.
fn config(kind: &str, vport: u16, extra: &str) -> String {
    let lg6 = format!("local_address_group lg6 {{\n    {LIP6} eth0\n    10.99.0.200 eth0\n}}\n");
    lg6 + &mode_config_for(VIP6, ["fd99::3", "fd99::4"], kind, vport, extra)
}

fn start(lab: &mut Lab, kind: &str, vport: u16, extra: &str) {
    lab.start_conf(&config(kind, vport, extra), [RS1_V6, RS2_V6]);
}

#[test]
fn fnat_over_ipv6_with_an_ipv6_local_address() {
    if !can_run("fnat_over_ipv6_with_an_ipv6_local_address") {
        return;
    }
    let mut lab = Lab::up_v6("f6");
    start(&mut lab, "FNAT", 80, "    laddr_group_name lg6\n");
    let (conns, inp, outp) = lab.balanced("FNAT6", &format!("http://[{VIP6}]/"), 30);
    assert!(
        inp > 0 && outp >= conns,
        "in={inp} out={outp} conns={conns}"
    );
    // dpvsd answered NS for the VIP (client) and the LIP (real servers).
    assert!(
        lab.neigh("client", VIP6).contains(LB_MAC),
        "{}",
        lab.neigh("client", VIP6)
    );
    assert!(
        lab.neigh("rs1", LIP6).contains(LB_MAC),
        "{}",
        lab.neigh("rs1", LIP6)
    );
}

#[test]
fn dr_over_ipv6_replies_go_straight_to_the_client() {
    if !can_run("dr_over_ipv6_replies_go_straight_to_the_client") {
        return;
    }
    let mut lab = Lab::up_v6("d6");
    // The real servers hold the VIP on lo; IPv6 has no ARP to silence, and
    // an address on lo is not announced or answered for on eth0.
    let vip = format!("{VIP6}/128");
    lab.exec_servers(&["ip", "-6", "addr", "add", &vip, "dev", "lo", "nodad"]);
    start(&mut lab, "DR", 8080, "");
    let (conns, inp, outp) = lab.balanced("DR6", &format!("http://[{VIP6}]:8080/"), 30);
    assert!(inp >= 3 * conns, "in={inp} conns={conns}");
    assert_eq!(outp, 0, "DR replies must bypass the director");
    assert!(
        lab.neigh("client", VIP6).contains(LB_MAC),
        "{}",
        lab.neigh("client", VIP6)
    );
}

#[test]
fn nat_over_ipv6_through_the_director() {
    if !can_run("nat_over_ipv6_through_the_director") {
        return;
    }
    let mut lab = Lab::up_v6("n6");
    // Route the client through the director, as a NAT real server's
    // default route would.
    lab.exec_servers(&["ip", "-6", "route", "add", "fd99::2/128", "via", "fd99::1"]);
    start(&mut lab, "NAT", 80, "");
    let (conns, _, outp) = lab.balanced("NAT6", &format!("http://[{VIP6}]/"), 30);
    assert!(outp >= conns, "conns={conns} out={outp}");
}

#[test]
fn nat64_ipv6_clients_reach_ipv4_real_servers_through_fnat() {
    if !can_run("nat64_ipv6_clients_reach_ipv4_real_servers_through_fnat") {
        return;
    }
    let mut lab = Lab::up_v6("x6");
    // The group has only an IPv4 address: the IPv6 service uses it (NAT64).
    let conf = "local_address_group lg4 {\n    10.99.0.200 eth0\n}\n".to_string()
        + &mode_config_for(
            VIP6,
            ["10.99.0.3", "10.99.0.4"],
            "FNAT",
            80,
            "    laddr_group_name lg4\n",
        );
    lab.start_conf(&conf, [common::RS1, common::RS2]);
    let (conns, _, outp) = lab.balanced("NAT64", &format!("http://[{VIP6}]/"), 20);
    assert!(outp >= conns, "conns={conns} out={outp}");
}
