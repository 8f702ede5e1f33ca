//! VRRP, track_file, static_* and ospf_announcer lowering (KEEPALIVED.md §3–§6, issue 8).

mod common;
use common::{diags, find, load};
use keepalived_parser::model::{AuthType, OspfAnnounceAs, OspfAuth, VrrpState};
use keepalived_parser::{config_test_exit_code, DiagClass, Severity};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

#[test]
fn priority_and_state_derive_from_each_other() {
    let l = load(
        "vrrp_instance A {\n state MASTER\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n\
         vrrp_instance B {\n interface eth0\n virtual_router_id 2\n priority 255\n virtual_ipaddress {\n  10.0.0.2\n }\n}\n\
         vrrp_instance C {\n virtual_router_id 3\n virtual_ipaddress {\n  10.0.0.3\n }\n}\n",
    );
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
    let v = &l.model.vrrp_instances;
    assert_eq!((v[0].state, v[0].priority), (VrrpState::Master, 255));
    assert_eq!((v[1].state, v[1].priority), (VrrpState::Master, 255));
    assert_eq!((v[2].state, v[2].priority), (VrrpState::Backup, 100));
    // No interface: default_interface.
    assert_eq!(v[2].interface.as_deref(), Some("eth0"));
    assert_eq!(v[2].advert_int, Duration::from_secs(1));
    assert!(v[2].accept);
}

#[test]
fn ah_authentication_downgrades_a_non_owner_master() {
    let l = load("vrrp_instance VI_1 {\n state MASTER\n interface eth0\n virtual_router_id 51\n priority 100\n authentication {\n  auth_type AH\n  auth_pass 123456789\n }\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n");
    let d = find(
        &l,
        "Initial state master is incompatible with AH authentication - clearing",
    );
    assert_eq!(d.location.line, 1);
    find(&l, "Truncating auth_pass to 8 characters");
    let vi = &l.model.vrrp_instances[0];
    assert_eq!(vi.state, VrrpState::Backup);
    let auth = vi.authentication.as_ref().expect("auth kept");
    assert_eq!(
        (auth.auth_type, auth.password.as_str()),
        (AuthType::Ah, "12345678")
    );
    assert_eq!(config_test_exit_code(&l), 5);
}

#[test]
fn missing_virtual_router_id_drops_the_instance() {
    let l = load("vrrp_instance X {\n interface eth0\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n");
    assert_eq!(
        find(&l, "the virtual router id must be set").severity,
        Severity::Error
    );
    assert!(l.model.vrrp_instances.is_empty());
}

#[test]
fn bad_values_keep_keepalived_defaults() {
    let l = load("vrrp_instance X {\n state FOO\n virtual_router_id 300\n virtual_router_id 7\n priority 0\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n");
    assert_eq!(find(&l, "unknown state 'FOO'").location.line, 2);
    assert_eq!(find(&l, "VRID '300' not valid").location.line, 3);
    assert_eq!(find(&l, "Priority not valid!").location.line, 5);
    let vi = &l.model.vrrp_instances[0];
    assert_eq!(
        (vi.virtual_router_id, vi.priority, vi.state),
        (7, 100, VrrpState::Backup)
    );
}

#[test]
fn value_blocks_are_typed() {
    let l = load(
        "vrrp_instance V {\n interface eth0\n dpdk_interface dpdk0\n virtual_router_id 9\n unicast_src_ip 10.0.0.9\n\
         unicast_peer {\n  10.0.0.10 min_ttl 5 max_ttl 64\n  10.0.0.11\n }\n\
         virtual_ipaddress {\n  10.0.0.1/24 dev eth1 brd + scope link label eth1:v\n  10.0.0.2\n  2001:db8::1\n }\n\
         virtual_ipaddress_excluded {\n  2001:db8::2/64\n }\n\
         virtual_routes {\n  10.1.0.0/16 via 10.0.0.254 dev eth1 table 100 metric 5\n  blackhole 10.9.0.0/16 no_track\n }\n\
         virtual_rules {\n  from 10.0.0.0/24 table 100 preference 200\n }\n\
         track_interface {\n  eth1 weight -20 reverse\n  eth2\n }\n\
         garp_master_delay 2\n nopreempt\n notify_master \"/bin/echo master\" nobody\n}\n",
    );
    let vi = &l.model.vrrp_instances[0];
    assert_eq!(vi.dpdk_interface.as_deref(), Some("dpdk0"));
    assert_eq!(vi.src_ip, Some(ip("10.0.0.9")));
    assert_eq!(vi.unicast_peers.len(), 2);
    assert_eq!(
        (vi.unicast_peers[0].min_ttl, vi.unicast_peers[0].max_ttl),
        (Some(5), Some(64))
    );
    // The IPv6 VIP does not match the instance's family and is dropped.
    assert_eq!(vi.virtual_ipaddresses.len(), 2);
    find(&l, "address family must match VRRP instance [IPv4]");
    let a = &vi.virtual_ipaddresses[0];
    assert_eq!(
        (
            a.prefix_len,
            a.dev.as_deref(),
            a.brd.as_deref(),
            a.scope,
            a.label.as_deref()
        ),
        (24, Some("eth1"), Some("+"), Some(253), Some("eth1:v"))
    );
    assert_eq!(vi.virtual_ipaddresses[1].dev.as_deref(), Some("eth0"));
    assert_eq!(vi.virtual_ipaddresses_excluded[0].prefix_len, 64);
    let r = &vi.virtual_routes[0];
    assert_eq!(
        (
            r.dest.len,
            r.via,
            r.dev.as_deref(),
            r.table.as_deref(),
            r.metric
        ),
        (
            16,
            Some(ip("10.0.0.254")),
            Some("eth1"),
            Some("100"),
            Some(5)
        )
    );
    assert_eq!(
        vi.virtual_routes[1].route_type.as_deref(),
        Some("blackhole")
    );
    assert_eq!(vi.virtual_rules[0].preference, 200);
    assert_eq!(vi.track.interfaces[0].weight, Some(-20));
    assert!(vi.track.interfaces[0].reverse);
    assert_eq!(vi.track.interfaces[1].weight, None);
    assert_eq!(vi.garp.master_delay, Duration::from_secs(2));
    // lower_prio_delay follows the master delay when not written.
    assert_eq!(vi.garp.lower_prio_delay, Duration::from_secs(2));
    assert!(vi.nopreempt);
    let n = vi.notify.master.as_ref().expect("notify_master");
    assert_eq!(
        (n.argv.as_slice(), n.user.as_deref()),
        (
            &["/bin/echo".to_string(), "master".to_string()][..],
            Some("nobody")
        )
    );
}

#[test]
fn scripts_and_trackers_resolve_by_name() {
    let l = load(
        "global_defs {\n enable_script_security\n}\n\
         vrrp_script chk {\n script \"/bin/true\"\n interval 2\n weight -10\n fall 3\n}\n\
         vrrp_script empty {\n interval 1\n}\n\
         track_file tf {\n file /run/x\n weight 3 reverse\n init_file 5 overwrite\n}\n\
         vrrp_instance V {\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n\
         track_script {\n  chk weight 5\n  nope\n }\n track_file {\n  tf\n }\n}\n",
    );
    assert_eq!(
        find(&l, "No script set for vrrp_script empty - removing")
            .location
            .line,
        10
    );
    find(&l, "(V) track_script nope not found, ignoring...");
    let s = &l.model.vrrp_scripts[0];
    assert_eq!(
        (s.interval, s.timeout, s.weight, s.fall, s.rise),
        (Duration::from_secs(2), Duration::from_secs(2), -10, 3, 1)
    );
    let tf = &l.model.track_files[0];
    assert_eq!(
        (tf.path.as_str(), tf.weight, tf.reverse, tf.init_file),
        ("/run/x", 3, true, Some((5, true)))
    );
    let vi = &l.model.vrrp_instances[0];
    assert_eq!(vi.track.scripts.len(), 1);
    assert_eq!(vi.track.scripts[0].weight, Some(5));
    assert_eq!(vi.track.files[0].name, "tf");
}

#[test]
fn existing_root_scripts_without_script_security_are_a_violation() {
    let conf = "vrrp_script chk {\n script \"/bin/sh -c true\"\n}\nvrrp_instance V {\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n track_script {\n  chk\n }\n}\n";
    let l = load(conf);
    let d = find(&l, "SECURITY VIOLATION");
    assert_eq!(d.class, DiagClass::Security);
    assert_eq!(config_test_exit_code(&l), 6);
    // A script that does not exist is not executed, so it is no violation.
    let l = load(&conf.replace("/bin/sh -c true", "/nonexistent/chk.sh"));
    assert_eq!(config_test_exit_code(&l), 0, "{:#?}", diags(&l));
    // Nor is one that runs as another user.
    let l = load(&format!("global_defs {{\n script_user nobody\n}}\n{conf}"));
    assert_eq!(config_test_exit_code(&l), 0, "{:#?}", diags(&l));
}

#[test]
fn strict_mode_and_global_garp_values() {
    let l = load(
        "global_defs {\n vrrp_strict\n vrrp_garp_interval 0\n vrrp_garp_master_repeat 2\n vrrp_version 3\n vrrp_garp_lower_prio_delay 9\n}\n\
         vrrp_instance V {\n state MASTER\n virtual_router_id 1\n priority 100\n preempt_delay 10\n\
         authentication {\n  auth_type PASS\n  auth_pass x\n }\n unicast_peer {\n  10.0.0.2\n }\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
    );
    assert_eq!(
        find(&l, "number '0' outside range [0.000001, 4294.967295]")
            .location
            .line,
        3
    );
    find(&l, "(V) Cannot start in MASTER state if not address owner");
    find(&l, "(V) Unicast peers are not supported in strict mode");
    find(
        &l,
        "(V) Strict mode does not support authentication. Ignoring.",
    );
    let g = &l.model.global_defs.vrrp;
    assert!(g.strict);
    assert_eq!(g.garp_interval, Duration::ZERO);
    assert_eq!(
        (g.version, g.garp.master_repeat, g.garp.lower_prio_repeat),
        (3, 2, 2)
    );
    let vi = &l.model.vrrp_instances[0];
    assert_eq!(vi.state, VrrpState::Backup);
    assert!(vi.authentication.is_none() && vi.unicast_peers.is_empty());
    assert!(!vi.accept);
    assert_eq!(vi.preempt_delay, Duration::ZERO);
    assert_eq!(
        (vi.version, vi.garp.lower_prio_delay),
        (3, Duration::from_secs(9))
    );
}

#[test]
fn advert_int_rounds_per_version() {
    let l = load("vrrp_instance A {\n virtual_router_id 1\n advert_int 1.4\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n\
                  vrrp_instance B {\n virtual_router_id 2\n version 3\n advert_int 0.123\n virtual_ipaddress {\n  10.0.0.2\n }\n}\n");
    let v = &l.model.vrrp_instances;
    assert_eq!(v[0].advert_int, Duration::from_secs(1));
    assert_eq!(v[1].advert_int, Duration::from_millis(120));
    assert_eq!(find(&l, "(A) Advert interval").location.line, 3);
}

#[test]
fn sync_groups_need_existing_members() {
    let l = load(
        "vrrp_sync_group G {\n group {\n  A\n  ghost\n }\n notify_master /bin/x\n}\nvrrp_sync_group OLD {\n  A\n}\n\
         vrrp_instance A {\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
    );
    let g = &l.model.vrrp_sync_groups;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].instances, vec!["A".to_string()]);
    assert!(g[0].notify.master.is_some());
    assert_eq!(
        find(&l, "Virtual router ghost specified in sync group G")
            .location
            .line,
        4
    );
    // The old syntax lists members without `group { }`: unknown keywords.
    assert_eq!(find(&l, "unknown keyword 'A'").location.line, 9);
    find(&l, "Sync group OLD has no virtual router(s) - removing");
}

#[test]
fn static_blocks_and_route_tracking() {
    let l = load(
        "static_ipaddress {\n 10.0.0.5/24 scope link\n 10.0.0.6 bogus\n}\nstatic_routes {\n 10.2.0.0/16 via 10.0.0.1\n}\n\
         static_rules {\n from 10.0.0.0/24 table 5\n to 10.0.0./24 table 5\n}\n\
         vrrp_instance V {\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n virtual_routes {\n  10.3.0.0/16 via 10.0.0.1\n  10.4.0.0/16 via 10.0.0.1 or 10.0.0.2\n }\n}\n",
    );
    assert_eq!(l.model.static_ipaddresses.len(), 2);
    assert_eq!(l.model.static_ipaddresses[0].dev.as_deref(), Some("eth0"));
    assert_eq!(
        find(&l, "Unknown configuration entry 'bogus'")
            .location
            .line,
        3
    );
    assert_eq!(l.model.static_routes.len(), 1);
    assert!(!l.model.static_routes[0].no_track);
    assert_eq!(l.model.static_rules.len(), 1);
    assert_eq!(l.model.static_rules[0].preference, 16384);
    assert_eq!(
        find(&l, "Rule has no preference specified - setting to 16384")
            .location
            .line,
        9
    );
    assert_eq!(
        find(&l, "Invalid rule to address 10.0.0./24").location.line,
        10
    );
    let d = find(
        &l,
        "cannot track route 10.3.0.0/16 with no interface specified",
    );
    assert_eq!(d.location.line, 18);
    let vi = &l.model.vrrp_instances[0];
    assert!(vi.virtual_routes[0].no_track);
    assert_eq!(vi.virtual_routes[1].nexthops.len(), 2);
    find(&l, "'or' is deprecated");
}

#[test]
fn ospf_announcer_block() {
    let l = load(
        "ospf_announcer {\n router_id 10.99.0.1\n area 0.0.0.1\n interface eth0 {\n  hello_interval 1\n  dead_interval 4\n  priority 0\n  cost 10\n  authentication md5 1 secret\n }\n\
         interface eth1 {\n  authentication simple pw\n }\n announce_as external\n metric 20\n}\n",
    );
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
    let o = l.model.ospf_announcer.as_ref().expect("announcer");
    assert_eq!(
        (o.router_id, o.area, o.announce_as, o.metric),
        (
            Ipv4Addr::new(10, 99, 0, 1),
            Ipv4Addr::new(0, 0, 0, 1),
            OspfAnnounceAs::External,
            20
        )
    );
    let i = &o.interfaces[0];
    assert_eq!(
        (i.hello_interval, i.dead_interval, i.priority, i.cost),
        (1, 4, 0, 10)
    );
    assert_eq!(
        i.authentication,
        OspfAuth::Md5 {
            key_id: 1,
            key: "secret".into()
        }
    );
    let i = &o.interfaces[1];
    assert_eq!((i.hello_interval, i.dead_interval), (10, 40));
    assert_eq!(i.authentication, OspfAuth::Simple("pw".into()));
}

#[test]
fn ospf_announcer_diagnostics() {
    let l = load(
        "ospf_announcer {\n area 7\n interface eth0 {\n  hello_interval 5\n  dead_interval 5\n  authentication sha 1\n  bogus 1\n }\n announce_as nssa\n metric 0\n}\n",
    );
    assert_eq!(
        find(&l, "dead_interval 5 must be greater than hello_interval 5")
            .location
            .line,
        5
    );
    assert_eq!(
        find(&l, "authentication must be md5, simple or none")
            .location
            .line,
        6
    );
    assert_eq!(find(&l, "unknown keyword 'bogus'").location.line, 7);
    assert_eq!(
        find(&l, "announce_as must be stub or external")
            .location
            .line,
        9
    );
    assert_eq!(find(&l, "outside range [1, 16777214]").location.line, 10);
    assert_eq!(find(&l, "ospf_announcer has no router_id").location.line, 1);
    assert!(l.model.ospf_announcer.is_none());
    // `area 7` is the dotted quad 0.0.0.7.
    let l = load("ospf_announcer {\n router_id 1.1.1.1\n area 7\n interface e {\n }\n}\n");
    assert_eq!(
        l.model.ospf_announcer.map(|o| o.area),
        Some(Ipv4Addr::new(0, 0, 0, 7))
    );
}
