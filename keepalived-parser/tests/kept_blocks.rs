//! Blocks and keywords dpvsd does not run are still typed and kept in the
//! model (vrrp_track_process, bfd_instance, garp_group, SSL, BFD_CHECK and
//! the generic "not supported by dpvsd" keywords), re-dumped, diffed by
//! name, and warned about once per kind.

mod common;
use common::{diags, find, load};
use keepalived_parser::diff::{diff, Item};
use keepalived_parser::model::{Ignored, ParamMatch};
use keepalived_parser::{dump, without_locations, Severity};
use std::time::Duration;

const CONF: &str = r#"global_defs {
    router_id r1
    enable_snmp_vrrp
    vrrp_garp_extra_if 5 sync
}
net_namespace blue
linkbeat_interfaces {
    eth0 MII
    eth1
}
SSL {
    password secret
    ca /etc/ca.pem
    certificate /etc/c.pem
    key /etc/k.pem
}
garp_group {
    garp_interval 0.001
    gna_interval 0.5
    interfaces {
        eth0 eth1
    }
}
garp_group {
    garp_interval 0.002
    interface eth1
    interface eth2
}
garp_group {
    interface eth3
}
vrrp_track_process nginx {
    process nginx -g "daemon off;"
    weight -10 reverse
    quorum_max 4
    quorum 2
    delay 1.5
}
vrrp_track_process bad {
    weight 300
}
bfd_instance b1 {
    neighbor_ip 10.0.0.2
    source_ip 10.0.0.1
    min_rx 50.5
    min_tx 20000
    idle_tx 999
    multiplier 3
    max_hops 300
    ttl 20
    weight 10 reverse
    checker
}
bfd_instance b6 {
    neighbour_ip fe80::1
}
bfd_instance onlyvrrp {
    neighbor_ip 10.0.0.9
    vrrp
}
bfd_instance nonbr {
    min_rx 20
}
virtual_server 10.0.0.1 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    snmp_name web
    real_server 10.0.1.1 80 {
        smtp_alert
        BFD_CHECK {
            name b1
            alpha
        }
        BFD_CHECK {
            name b6
        }
        BFD_CHECK {
            name onlyvrrp
        }
        BFD_CHECK {
            name b1
        }
        TCP_CHECK {
        }
    }
}
"#;

/// The diagnostic whose message contains `needle`, as `line:col severity`.
fn at(l: &keepalived_parser::Loaded, needle: &str) -> String {
    let d = find(l, needle);
    format!("{}:{} {}", d.location.line, d.location.col, d.severity)
}

#[test]
fn typed_blocks_take_keepalived_defaults_and_ranges() {
    let l = load(CONF);
    let m = &l.model;

    let ssl = m.ssl.as_ref().expect("SSL kept");
    assert_eq!(ssl.password.as_deref(), Some("secret"));
    assert_eq!(ssl.key.as_deref(), Some("/etc/k.pem"));

    // The third group has no delay: removed, as keepalived does; eth1 is
    // already in the first group.
    assert_eq!(m.garp_groups.len(), 2, "{:#?}", diags(&l));
    assert_eq!(m.garp_groups[0].interfaces, ["eth0", "eth1"]);
    assert!(m.garp_groups[0].aggregate);
    assert_eq!(
        m.garp_groups[0].garp_interval,
        Some(Duration::from_millis(1))
    );
    assert_eq!(m.garp_groups[1].interfaces, ["eth2"]);
    assert_eq!(
        at(&l, "garp_group already specified for eth1"),
        "26:15 error"
    );
    assert_eq!(at(&l, "garp group 3 does not have any delay"), "29:1 error");

    let [tp] = &m.vrrp_track_processes[..] else {
        panic!("{:#?}", m.vrrp_track_processes)
    };
    assert_eq!((tp.name.as_str(), tp.process.as_str()), ("nginx", "nginx"));
    assert_eq!(tp.params, ["-g", "daemon off;"]);
    assert_eq!(tp.param_match, Some(ParamMatch::Exact));
    assert!(tp.full_command && tp.reverse);
    assert_eq!((tp.weight, tp.quorum, tp.quorum_max), (-10, 2, 4));
    assert_eq!(tp.fork_delay, Duration::from_millis(1500));
    assert_eq!(tp.terminate_delay, Duration::from_millis(1500));
    assert_eq!(
        at(&l, "Weight (300) for vrrp_track_process bad"),
        "40:12 error"
    );
    assert_eq!(
        at(&l, "track process 'bad' process name not specified"),
        "39:1 error"
    );

    let names: Vec<_> = m.bfd_instances.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["b1", "b6", "onlyvrrp"]);
    let b1 = &m.bfd_instances[0];
    assert_eq!(b1.min_rx, Duration::from_micros(50_500));
    assert_eq!(b1.min_tx, Duration::from_secs(20));
    assert_eq!(b1.idle_tx, Duration::from_millis(1000), "999 is refused");
    assert_eq!((b1.multiplier, b1.ttl, b1.max_hops), (3, 20, 0));
    assert_eq!((b1.weight, b1.reverse), (10, true));
    assert_eq!((b1.vrrp, b1.checker), (false, true));
    assert_eq!(
        at(&l, "b1 min_tx value 20000 is larger than max sensible"),
        "46:12 warning"
    );
    assert_eq!(at(&l, "b1 idle_tx value 999 is not valid"), "47:13 error");
    assert_eq!(at(&l, "b1 max_hops value 300 not valid"), "49:14 error");
    let b6 = &m.bfd_instances[1];
    assert_eq!(b6.min_rx, Duration::from_millis(10));
    assert_eq!(b6.idle_tx, Duration::from_millis(1000));
    assert_eq!(
        (b6.multiplier, b6.ttl, b6.max_hops),
        (5, 64, 0),
        "IPv6 hoplimit 64"
    );
    assert!(b6.vrrp && b6.checker, "neither written: both");
    assert_eq!(at(&l, "nonbr has no neighbor address set"), "61:1 error");

    let rs = &m.virtual_servers[0].real_servers[0];
    let checks: Vec<_> = rs
        .bfd_checks
        .iter()
        .map(|c| (c.name.as_str(), c.alpha))
        .collect();
    assert_eq!(checks, [("b1", true), ("b6", false)]);
    assert_eq!(
        at(&l, "BFD_CHECK - BFD onlyvrrp not configured"),
        "79:13 error"
    );
    assert_eq!(
        at(&l, "BFD_CHECK - RS already monitoring b1"),
        "82:13 error"
    );
    assert_eq!(rs.checkers.len(), 1);
}

#[test]
fn one_not_supported_warning_per_kind() {
    let l = load(CONF);
    for kw in [
        "SSL",
        "garp_group",
        "vrrp_track_process",
        "bfd_instance",
        "BFD_CHECK",
        "net_namespace",
        "enable_snmp_vrrp",
        "smtp_alert",
    ] {
        let needle = format!("keyword '{kw}' is not supported by dpvsd, ignored");
        let n = l
            .diagnostics
            .iter()
            .filter(|d| d.message.contains(&needle))
            .inspect(|d| assert_eq!(d.severity, Severity::Warning))
            .count();
        assert_eq!(n, 1, "{kw}: {:#?}", diags(&l));
    }
    // The first use is the one reported.
    assert_eq!(
        at(&l, "keyword 'garp_group' is not supported"),
        "17:1 warning"
    );
    assert_eq!(
        at(&l, "keyword 'bfd_instance' is not supported"),
        "42:1 warning"
    );
}

#[test]
fn unsupported_keywords_are_kept_and_dumped() {
    let l = load(CONF);
    let m = &l.model;
    let kw = |list: &[Ignored]| list.iter().map(|i| i.keyword.clone()).collect::<Vec<_>>();
    assert_eq!(kw(&m.ignored), ["net_namespace", "linkbeat_interfaces"]);
    assert_eq!(m.ignored[0].args, ["blue"]);
    assert_eq!(m.ignored[0].location.line, 6);
    let block = m.ignored[1].block.as_ref().expect("block kept");
    assert_eq!(block[0].keyword, "eth0");
    assert_eq!(block[0].args, ["MII"]);
    assert_eq!(block[1].keyword, "eth1");
    assert_eq!(
        kw(&m.global_defs.ignored),
        ["enable_snmp_vrrp", "vrrp_garp_extra_if"]
    );
    assert_eq!(m.global_defs.ignored[1].args, ["5", "sync"]);
    assert_eq!(kw(&m.virtual_servers[0].ignored), ["snmp_name"]);
    assert_eq!(
        kw(&m.virtual_servers[0].real_servers[0].ignored),
        ["smtp_alert"]
    );

    let text = dump(m);
    for needle in [
        "net_namespace blue\n",
        "linkbeat_interfaces {\n    eth0 MII\n    eth1\n}\n",
        "    vrrp_garp_extra_if 5 sync\n",
        "    snmp_name web\n",
        "        smtp_alert\n",
        "    process nginx -g \"daemon off;\"\n",
        "bfd_instance b6 {\n    neighbor_ip fe80::1\n",
        "    min_rx 50.500\n",
        "        BFD_CHECK {\n            name b1\n            alpha true\n",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    let again = load(&text);
    assert_eq!(
        without_locations(&again.model),
        without_locations(m),
        "{text}\n{:#?}",
        diags(&again)
    );
}

#[test]
fn unsupported_blocks_nested_in_vrrp_and_http_are_kept() {
    let text = "vrrp_instance VI {\n state MASTER\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  10.0.0.1\n }\n vrf blue\n promote_secondaries\n}\n\
vrrp_sync_group G {\n group {\n  VI\n }\n global_tracking\n}\n\
virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  HTTP_GET {\n   sni_name example.org\n   url {\n    path /\n    regex_options caseless\n   }\n  }\n }\n}\n";
    let l = load(text);
    let http = match &l.model.virtual_servers[0].real_servers[0].checkers[0].kind {
        keepalived_parser::model::CheckerKind::Http(h) => h,
        k => panic!("{k:?}"),
    };
    assert_eq!(http.ignored[0].keyword, "sni_name");
    assert_eq!(http.urls[0].ignored[0].keyword, "regex_options");
    assert_eq!(http.urls[0].ignored[0].args, ["caseless"]);
    let vi = &l.model.vrrp_instances[0];
    let kws: Vec<_> = vi.ignored.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(kws, ["vrf", "promote_secondaries"]);
    assert_eq!(vi.ignored[0].args, ["blue"]);
    assert_eq!(
        l.model.vrrp_sync_groups[0].ignored[0].keyword,
        "global_tracking"
    );
    let text = dump(&l.model);
    assert!(
        text.contains("    vrf blue\n    promote_secondaries\n"),
        "{text}"
    );
    assert!(text.contains("    global_tracking\n"), "{text}");
    assert!(
        text.contains("            sni_name example.org\n"),
        "{text}"
    );
    let again = load(&text);
    assert_eq!(without_locations(&again.model), without_locations(&l.model));
}

#[test]
fn diff_names_track_processes_and_bfd_instances() {
    let old = load(CONF).model;
    let changed = CONF
        .replace("min_rx 50.5", "min_rx 60")
        .replace("vrrp_track_process nginx", "vrrp_track_process web")
        .replace("net_namespace blue", "net_namespace red")
        .replace("password secret", "password other");
    let new = load(&changed).model;
    let cs = diff(&old, &new);
    assert!(
        cs.added.contains(&Item::VrrpTrackProcess("web".into())),
        "{cs:#?}"
    );
    assert!(
        cs.removed.contains(&Item::VrrpTrackProcess("nginx".into())),
        "{cs:#?}"
    );
    let changed_items: Vec<_> = cs.changed.iter().map(|c| c.item.clone()).collect();
    assert!(
        changed_items.contains(&Item::BfdInstance("b1".into())),
        "{cs:#?}"
    );
    assert!(changed_items.contains(&Item::IgnoredKeywords), "{cs:#?}");
    assert!(changed_items.contains(&Item::Ssl), "{cs:#?}");
    assert!(
        !changed_items.contains(&Item::BfdInstance("b6".into())),
        "{cs:#?}"
    );
    assert!(diff(&old, &load(CONF).model).is_empty());
}

#[test]
fn vrrp_trackers_resolve_against_track_processes_and_bfd_instances() {
    let text = format!(
        "{CONF}vrrp_instance VI {{\n state BACKUP\n interface eth0\n virtual_router_id 7\n priority 50\n\
         virtual_ipaddress {{\n  10.0.0.7\n }}\n track_process {{\n  nginx weight 5\n  bad\n  nosuch\n }}\n\
         track_bfd {{\n  onlyvrrp\n  b1\n }}\n}}\n"
    );
    let l = load(&text);
    let vi = &l.model.vrrp_instances[0];
    let names = |t: &[keepalived_parser::model::Tracked]| {
        t.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&vi.track.processes), ["nginx"]);
    assert_eq!(vi.track.processes[0].weight, Some(5));
    // b1 reports to the checker only.
    assert_eq!(names(&vi.track.bfds), ["onlyvrrp"]);
    for missing in [
        "(VI) track process bad not found",
        "(VI) track process nosuch not found",
        "(VI) track bfd b1 not found",
    ] {
        find(&l, missing);
    }
    let again = load(&dump(&l.model));
    assert_eq!(without_locations(&again.model), without_locations(&l.model));
}
