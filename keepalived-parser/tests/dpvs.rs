//! DPVS blocks lowered into the model: `deny_address_group`,
//! `allow_address_group`, `tunnel_group`; their dump round trip.

use keepalived_parser::model::{AccessEntry, TunnelKind};
use keepalived_parser::{
    config_test_exit_code, dump, load_str, without_locations, DiagClass, LoadOptions, Loaded,
    Severity,
};
use std::net::IpAddr;
use std::path::Path;

fn load(text: &str) -> Loaded {
    load_str(text, Path::new("d.conf"), &LoadOptions::default())
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

const CONF: &str = "deny_address_group deny1 {\n 10.0.0.1\n 10.0.1.1-3\n ipset:bad\n}\n\
allow_address_group allow1 {\n 2001:db8::1\n}\n\
deny_address_group empty {\n}\n\
tunnel_group tg {\n tunnel_entry gre100 {\n  kind gre\n  local 10.62.5.10\n  remote 10.62.5.20\n  if dpdk0\n }\n tunnel_entry ipip1 {\n  kind ipip\n }\n}\n";

#[test]
fn access_and_tunnel_groups_are_lowered() {
    let l = load(CONF);
    // Each block is read; dpvsd acts on the address groups (virtual
    // servers use them), and says once that it does not act on the tunnel
    // group. keepalived's DPVS fork accepts them, so -t stays clean.
    let d: Vec<_> = l
        .diagnostics
        .iter()
        .map(|d| (d.location.line, d.class, d.severity))
        .collect();
    assert_eq!(
        d,
        [(11, DiagClass::Dpvsd, Severity::Warning)],
        "{:#?}",
        l.diagnostics
    );
    assert_eq!(config_test_exit_code(&l), 0);
    let m = &l.model;
    assert_eq!(m.deny_address_groups.len(), 2);
    let deny = &m.deny_address_groups[0];
    assert_eq!(deny.name, "deny1");
    assert_eq!(
        deny.entries,
        [
            AccessEntry::Addr(ip("10.0.0.1")),
            AccessEntry::Addr(ip("10.0.1.1")),
            AccessEntry::Addr(ip("10.0.1.2")),
            AccessEntry::Addr(ip("10.0.1.3")),
            AccessEntry::Ipset("bad".into()),
        ]
    );
    assert!(m.deny_address_groups[1].entries.is_empty());
    assert_eq!(
        m.allow_address_groups[0].entries,
        [AccessEntry::Addr(ip("2001:db8::1"))]
    );
    let tg = &m.tunnel_groups[0];
    assert_eq!((tg.name.as_str(), tg.entries.len()), ("tg", 2));
    let e = &tg.entries[0];
    assert_eq!(e.ifname, "gre100");
    assert_eq!(e.kind, Some(TunnelKind::Gre));
    assert_eq!(
        (e.local, e.remote),
        (Some(ip("10.62.5.10")), Some(ip("10.62.5.20")))
    );
    assert_eq!(e.link.as_deref(), Some("dpdk0"));
    assert_eq!(tg.entries[1].kind, Some(TunnelKind::Ipip));
    assert_eq!(tg.entries[1].local, None);

    let again = load(&dump(m));
    assert_eq!(without_locations(&again.model), without_locations(m));
}

#[test]
fn bad_entries_are_located_errors() {
    let l = load(
        "deny_address_group d {\n 10.0.0.300\n}\ndeny_address_group d {\n}\n\
tunnel_group t {\n tunnel_entry x {\n  kind vxlan\n  local nowhere\n  mtu 1400\n }\n}\n",
    );
    let got: Vec<_> = l
        .diagnostics
        .iter()
        .filter(|d| d.class != DiagClass::Dpvsd)
        .map(|d| (d.location.line, d.location.col, d.severity))
        .collect();
    assert_eq!(
        got,
        [
            // The block engine runs first: 'mtu' is no tunnel_entry keyword.
            (10, 3, Severity::Warning),
            (2, 2, Severity::Error),
            (4, 20, Severity::Error),
            (8, 8, Severity::Error),
            (9, 9, Severity::Error),
        ],
        "{:#?}",
        l.diagnostics
    );
    assert!(l
        .diagnostics
        .iter()
        .any(|d| d.message.contains("invalid tunnel kind 'vxlan'")));
    assert_eq!(l.model.deny_address_groups.len(), 1);
    assert!(l.model.deny_address_groups[0].entries.is_empty());
    assert_eq!(config_test_exit_code(&l), 5);
}

/// Issue 3 item 3, one keyword at a time: every DPVS virtual-server keyword
/// and value extension is lowered into the model (not merely accepted), and
/// a config using all of them is clean for `-t`, as in DPVS's fork.
#[test]
fn every_dpvs_virtual_server_keyword_is_lowered() {
    use keepalived_parser::model::{HashTarget, LbAlgo, LbKind, Protocol, ProxyProtocol};
    let text = "local_address_group L {\n 192.168.100.200-201 dpdk0\n}\n\
        deny_address_group D {\n 10.9.0.1\n}\n\
        allow_address_group W {\n 10.8.0.1\n}\n\
        virtual_server 10.0.0.1 443 {\n protocol UDP\n lb_algo conhash\n lb_kind FNAT\n\
         laddr_group_name L\n daddr_group_name D\n waddr_group_name W\n establish_timeout 77\n\
         syn_proxy\n expire_quiescent_conn\n quic\n proxy_protocol v2\n hash_target qid\n\
         bps 1000\n limit_proportion 40\n vip_bind_dev dpdk0.kni\n\
         real_server 10.0.1.1 443 {\n }\n}\n\
        virtual_server match M {\n protocol ICMPV6\n lb_algo mh\n lb_kind SNAT\n\
         src-range [2001:db8::1-2001:db8::9]\n dst-range [2001:db8:1::1]:80-90\n iif dpdk0\n oif dpdk1\n\
         real_server 2001:db8:2::1 0 {\n }\n}\n\
        virtual_server 10.0.0.2 0 {\n protocol ICMP\n persistence_timeout 5\n lb_algo rr\n lb_kind FNAT\n\
         real_server 10.0.1.2 0 {\n }\n}\n";
    let l = load(text);
    let problems: Vec<_> = l
        .diagnostics
        .iter()
        .filter(|d| d.class != DiagClass::Dpvsd)
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(config_test_exit_code(&l), 0);
    let [a, m, icmp] = &l.model.virtual_servers[..] else {
        panic!("three virtual servers: {:#?}", l.diagnostics)
    };
    assert_eq!(
        (a.protocol, a.lb_algo, a.lb_kind),
        (Protocol::Udp, LbAlgo::Conhash, LbKind::Fnat)
    );
    assert_eq!(a.laddr_group_name.as_deref(), Some("L"));
    let d = &a.dpvs;
    assert_eq!(d.daddr_group_name.as_deref(), Some("D"));
    assert_eq!(d.waddr_group_name.as_deref(), Some("W"));
    assert_eq!(d.establish_timeout, Some(77));
    assert!(d.syn_proxy && d.expire_quiescent_conn && d.quic);
    assert_eq!(d.proxy_protocol, ProxyProtocol::V2);
    assert_eq!(d.hash_target, HashTarget::Qid);
    assert_eq!((d.bps, d.limit_proportion), (1000, 40));
    assert_eq!(d.vip_bind_dev.as_deref(), Some("dpdk0.kni"));
    assert_eq!(m.match_name.as_deref(), Some("M"));
    assert_eq!(
        (m.protocol, m.lb_algo, m.lb_kind),
        (Protocol::Icmpv6, LbAlgo::Mh, LbKind::Snat)
    );
    let d = &m.dpvs;
    assert_eq!(d.src_range.as_deref(), Some("[2001:db8::1-2001:db8::9]"));
    assert_eq!(d.dst_range.as_deref(), Some("[2001:db8:1::1]:80-90"));
    assert_eq!(
        (d.iif.as_deref(), d.oif.as_deref()),
        (Some("dpdk0"), Some("dpdk1"))
    );
    assert_eq!(icmp.protocol, Protocol::Icmp);
    let g = &l.model.local_address_groups[0];
    assert_eq!((g.name.as_str(), g.addresses.len()), ("L", 2));
    assert_eq!(l.model.deny_address_groups[0].name, "D");
    assert_eq!(l.model.allow_address_groups[0].name, "W");
}
