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
