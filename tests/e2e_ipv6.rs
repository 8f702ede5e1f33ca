//! End to end over IPv6: `lb_kind FNAT`, `DR` and `NAT` with an IPv6 VIP,
//! IPv6 real servers (nginx on [::]:8080) and, for FNAT, an IPv6
//! local_address_group, in the lab of tests/lab.sh built with `v6`
//! (fd99::N/64 without DAD besides 10.99.0.N).
//!
//! dpvsd answers neighbor solicitations for the VIP and the LIP and
//! resolves the real servers by NS; the client reaches the VIP through it.
//! NAT64: an IPv6 VIP in front of the IPv4 nginx servers, FNAT from an IPv4
//! local address. `syn_proxy` on an IPv6 FNAT service.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::sniff::{self, Seen, Sniffer};
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

/// `syn_proxy` over IPv6: real clients are served through the proxy (their
/// handshake completed by dpvsd's SYN cookie, every segment translated).
/// The proof that dpvsd, not a server, answers the SYNs: a proxied service
/// whose server port is closed (its server can only reset) still sends
/// the client SYN-ACKs, offering the client's MSS less the IPv6 TOA, and
/// opens a connection for each cookie ACK.
#[test]
fn syn_proxy_over_ipv6_serves_real_clients() {
    if !can_run("syn_proxy_over_ipv6_serves_real_clients") {
        return;
    }
    let mut lab = Lab::up_v6("s6");
    let closed = format!(
        "virtual_server {VIP6} 81 {{\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name lg6\n    syn_proxy\n    real_server fd99::3 {CLOSED_PORT} {{\n        weight 1\n    }}\n}}\n"
    );
    let conf = config("FNAT", 80, "    laddr_group_name lg6\n    syn_proxy\n") + &closed;
    lab.start_conf(&conf, [RS1_V6, RS2_V6]);
    let (conns, inp, outp) = lab.balanced("SYNPROXY6", &format!("http://[{VIP6}]/"), 20);
    assert!(
        inp > 0 && outp >= conns,
        "in={inp} out={outp} conns={conns}"
    );
    // The lab's client offers MSS 1440 (MTU 1500); 20 bytes go to the TOA.
    let vip: std::net::IpAddr = VIP6.parse().expect("VIP6");
    let client = Sniffer::start(&lab, "client", move |f: &[u8]| {
        sniff::synack_mss(f, vip, 81, 1440 - 20)
    });
    let tries = 6;
    for _ in 0..tries {
        assert_eq!(
            lab.get(&format!("http://[{VIP6}]:81/")),
            None,
            "port closed"
        );
    }
    let seen = client.finish();
    assert!(seen.problems.is_empty(), "{seen:?}");
    assert!(seen.good >= tries, "SYN-ACKs from the proxy: {seen:?}");
    let v = lab.list_json();
    let opened = v["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["port"] == 81))
        .and_then(|s| s["stats"]["conns"].as_u64())
        .unwrap_or(0);
    assert!(
        opened >= tries as u64,
        "cookie ACKs opened {opened} connections"
    );
}

#[test]
fn nat64_ipv6_clients_reach_ipv4_real_servers_through_fnat() {
    if !can_run("nat64_ipv6_clients_reach_ipv4_real_servers_through_fnat") {
        return;
    }
    let mut lab = Lab::up_v6("x6");
    // The group has only an IPv4 address: the IPv6 service uses it (NAT64).
    let rs = |ip: &str| {
        format!("    real_server {ip} 8080 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n")
    };
    // And UDP to a port nobody listens on at rs1 (the ICMP error check).
    let conf = format!(
        "local_address_group lg4 {{\n    10.99.0.200 eth0\n}}\n\
         virtual_server {VIP6} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name lg4\n{}{}}}\n\
         virtual_server {VIP6} {CLOSED_PORT} {{\n    lb_algo rr\n    lb_kind FNAT\n    protocol UDP\n    laddr_group_name lg4\n    real_server 10.99.0.3 {CLOSED_PORT} {{\n        weight 1\n    }}\n}}\n",
        rs("10.99.0.3"),
        rs("10.99.0.4")
    );
    let rs1 = Sniffer::start(&lab, "rs1", toa64);
    let rs2 = Sniffer::start(&lab, "rs2", toa64);
    // The IPv4 nginx servers offer MSS 1460 (lab MTU 1500); the IPv6
    // client must be offered 20 less, room for the IPv6 TOA.
    let vip: std::net::IpAddr = VIP6.parse().expect("VIP6");
    let client = Sniffer::start(&lab, "client", move |f: &[u8]| {
        sniff::synack_mss(f, vip, 80, 1460 - 20)
    });
    let path = lab.dir.join("keepalived.conf");
    std::fs::write(&path, conf).expect("write config");
    lab.start_dpvsd(&path);
    lab.wait_health(common::RS1, "up", Duration::from_secs(10));
    lab.wait_health(common::RS2, "up", Duration::from_secs(10));
    let (a, b, failed) = lab.traffic_to(&format!("http://[{VIP6}]/"), 20);
    assert_eq!(failed, 0, "NAT64 requests failed (rs1={a} rs2={b})");
    assert!(a > 0 && b > 0, "rr must use both (rs1={a} rs2={b})");
    let v = lab.list_json();
    let s = v["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["port"] == 80))
        .map(|s| &s["stats"]);
    let n = |k: &str| s.and_then(|s| s[k].as_u64()).unwrap_or(0);
    let (conns, outp) = (n("conns"), n("out_pkts"));
    assert!(conns >= 20 && outp >= conns, "conns={conns} out={outp}");
    // Every NAT64 connection's SYN, handshake ACK and request carried the
    // client's IPv6 address in DPVS's 20-byte TOA, and its SYN-ACK reached
    // the client with the MSS lowered by as much.
    let (r1, r2, c) = (rs1.finish(), rs2.finish(), client.finish());
    sniff::assert_toa_per_connection([&r1, &r2], &c, conns);
    // rs1's ICMPv4 port unreachable reaches the IPv6 client as ICMPv6.
    let refused = udp_refused_in(&lab.ns("client"));
    assert_eq!(refused, Ok(()), "NAT64 port unreachable");
}

/// A UDP port the real servers do not listen on.
const CLOSED_PORT: u16 = 9999;
/// The client's IPv6 address in the lab.
const CLIENT6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2);

/// The NAT64 TOA sniffer: SYNs and the first segments from the IPv4
/// local address to :8080 carry DPVS's 20-byte IPv6 TOA with the client
/// ([`sniff::toa`]).
fn toa64(frame: &[u8]) -> Seen<'_> {
    sniff::toa(frame, Ipv4Addr::new(10, 99, 0, 200), 20, &CLIENT6.octets())
}

/// From the namespace `ns` (on a thread of its own): sends UDP datagrams
/// to [VIP6]:CLOSED_PORT on a connected socket until one is refused (the
/// kernel saw an ICMPv6 port unreachable quoting it), at most 5 tries.
fn udp_refused_in(ns: &str) -> Result<(), String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns: {e}"))?;
        let sock = std::net::UdpSocket::bind("[::]:0").map_err(|e| e.to_string())?;
        sock.connect((VIP6, CLOSED_PORT))
            .map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        let mut last = String::new();
        for _ in 0..5 {
            let mut buf = [0u8; 64];
            let res = sock.send(b"anyone?").and_then(|_| sock.recv(&mut buf));
            match res {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(()),
                other => last = format!("{other:?}"),
            }
        }
        Err(format!("never refused; last: {last}"))
    })
    .join()
    .unwrap_or_else(|_| Err("thread panicked".into()))
}
