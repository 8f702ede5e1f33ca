//! `diff` on pairs of configurations.

mod common;
use common::load;
use keepalived_parser::diff::{Item, VsKey};
use keepalived_parser::model::Protocol;
use keepalived_parser::{diff, ChangeSet};
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

const BASE: &str = "vrrp_instance V {\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n\
virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n\
 real_server 10.0.1.1 80 {\n  weight 1\n  TCP_CHECK {\n  }\n }\n\
 real_server 10.0.1.2 80 {\n  weight 1\n }\n}\n\
virtual_server fwmark 7 {\n lb_algo rr\n lb_kind DR\n real_server 10.0.2.1 0 {\n }\n}\n";

fn d(new: &str) -> ChangeSet {
    diff(&load(BASE).model, &load(new).model)
}

fn vs80() -> VsKey {
    VsKey::Addr {
        addr: ip("10.0.0.1"),
        port: 80,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn identical_texts_and_moved_lines_are_no_change() {
    assert!(d(BASE).is_empty());
    // Only locations differ: a comment pushes every line down.
    assert!(d(&format!("# header\n\n{BASE}")).is_empty());
}

#[test]
fn real_server_weight_and_checker_changes() {
    let new = BASE
        .replace(
            "real_server 10.0.1.1 80 {\n  weight 1\n",
            "real_server 10.0.1.1 80 {\n  weight 5\n",
        )
        .replace(
            "real_server 10.0.1.2 80 {\n  weight 1\n }",
            "real_server 10.0.1.2 80 {\n  weight 1\n  PING_CHECK {\n  }\n }",
        );
    let cs = d(&new);
    assert!(cs.added.is_empty() && cs.removed.is_empty(), "{cs:#?}");
    assert_eq!(cs.changed.len(), 2, "{cs:#?}");
    assert_eq!(
        cs.changed[0].item,
        Item::RealServer {
            vs: vs80(),
            addr: ip("10.0.1.1"),
            port: 80
        }
    );
    assert_eq!(cs.changed[0].fields, ["weight"]);
    assert_eq!(cs.changed[1].fields, ["checkers"]);
}

#[test]
fn scheduler_change_and_added_removed_servers() {
    let new = BASE
        .replace("lb_algo rr\n lb_kind NAT", "lb_algo wlc\n lb_kind NAT")
        .replace("real_server 10.0.1.2 80", "real_server 10.0.1.3 80")
        .replace("virtual_server fwmark 7", "virtual_server fwmark 8");
    let cs = d(&new);
    let vs_change = cs
        .changed
        .iter()
        .find(|c| c.item == Item::VirtualServer(vs80()))
        .expect("VS changed");
    assert_eq!(vs_change.fields, ["lb_algo"]);
    let rs = |a: &str| Item::RealServer {
        vs: vs80(),
        addr: ip(a),
        port: 80,
    };
    assert!(cs.added.contains(&rs("10.0.1.3")), "{cs:#?}");
    assert!(cs.removed.contains(&rs("10.0.1.2")), "{cs:#?}");
    assert!(cs.added.contains(&Item::VirtualServer(VsKey::Fwmark(8))));
    assert!(cs.removed.contains(&Item::VirtualServer(VsKey::Fwmark(7))));
    // The protocol is part of the identity: TCP→UDP is remove + add.
    let cs = d(&BASE.replace("protocol TCP", "protocol UDP"));
    assert!(cs.removed.contains(&Item::VirtualServer(vs80())));
    assert_eq!(cs.added.len(), 1);
}

#[test]
fn vrrp_instances_by_name() {
    let cs = d(&BASE.replace("priority 100", "priority 120"));
    assert_eq!(cs.changed.len(), 1);
    assert_eq!(cs.changed[0].item, Item::VrrpInstance("V".into()));
    assert_eq!(cs.changed[0].fields, ["priority"]);
    let cs = d(&BASE.replace("vrrp_instance V {", "vrrp_instance W {"));
    assert_eq!(cs.added, [Item::VrrpInstance("W".into())]);
    assert_eq!(cs.removed, [Item::VrrpInstance("V".into())]);
}
