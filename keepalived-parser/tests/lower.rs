//! Lowering: defaults, inheritance, value checks and their diagnostics.

mod common;
use common::{count, diags, find, load};
use keepalived_parser::model::{LbAlgo, LbKind, Protocol};
use keepalived_parser::Severity;
use std::net::IpAddr;
use std::time::Duration;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

#[test]
fn defaults_apply_with_warnings() {
    let l = load("virtual_server 10.0.0.1 80 {\n  real_server 10.0.1.1 8080 {\n    TCP_CHECK {\n    }\n  }\n}\n");
    let vs = &l.model.virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Udp);
    assert_eq!(vs.lb_algo, LbAlgo::Wlc);
    assert_eq!(vs.lb_kind, LbKind::Nat);
    assert_eq!(vs.delay_loop, Duration::from_secs(60));
    assert_eq!(count(&l, Severity::Warning), 3);
    assert!(l.is_runnable());
    let rs = &vs.real_servers[0];
    assert_eq!(
        (rs.weight, rs.inhibit_on_failure, rs.port),
        (1, false, 8080)
    );
    let c = &rs.checkers[0];
    assert_eq!(c.connect_ip, ip("10.0.1.1"));
    assert_eq!(c.connect_port, 8080);
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.retry, 1);
    assert_eq!(c.delay_before_retry, Duration::from_secs(1));
    assert_eq!(c.delay_loop, Duration::from_secs(60));
    assert_eq!(c.warmup, Duration::from_secs(60));
    assert!(!c.alpha);
    assert_eq!((c.location.line, c.location.col), (3, 5));
}

#[test]
fn checker_inherits_from_real_server_which_inherits_from_virtual_server() {
    let text = "virtual_server 10.0.0.1 80 {
  protocol TCP
  lb_algo rr
  lb_kind FNAT
  delay_loop 6
  connect_timeout 2
  retry 4
  weight 9
  inhibit_on_failure
  alpha
  real_server 10.0.1.1 80 {
    delay_before_retry 0.5
    retry 2
    TCP_CHECK {
      connect_timeout 1.25
      connect_port 81
      connect_ip 10.0.2.2
      bindto 10.0.3.3
    }
  }
  real_server 10.0.1.2 80 {
    weight 0
    inhibit_on_failure no
    alpha off
    delay_loop 3
    TCP_CHECK {
      warmup 0
    }
  }
}
";
    let l = load(text);
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
    let vs = &l.model.virtual_servers[0];
    assert_eq!(
        (vs.protocol, vs.lb_algo, vs.lb_kind),
        (Protocol::Tcp, LbAlgo::Rr, LbKind::Fnat)
    );
    assert_eq!(vs.delay_loop, Duration::from_secs(6));
    let a = &vs.real_servers[0];
    assert_eq!((a.weight, a.inhibit_on_failure), (9, true));
    let c = &a.checkers[0];
    assert_eq!(c.connect_timeout, Duration::from_millis(1250));
    assert_eq!(c.retry, 2);
    assert_eq!(c.delay_before_retry, Duration::from_millis(500));
    assert_eq!(c.delay_loop, Duration::from_secs(6));
    assert_eq!(c.warmup, Duration::from_secs(6));
    assert!(c.alpha);
    assert_eq!(
        (c.connect_ip, c.connect_port, c.bindto),
        (ip("10.0.2.2"), 81, Some(ip("10.0.3.3")))
    );
    let b = &vs.real_servers[1];
    assert_eq!((b.weight, b.inhibit_on_failure), (0, false));
    let c = &b.checkers[0];
    assert_eq!(c.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.retry, 4);
    assert_eq!(c.delay_loop, Duration::from_secs(3));
    assert_eq!(c.warmup, Duration::ZERO);
    assert!(!c.alpha);
}

#[test]
fn missing_parameter_is_fatal_at_the_keyword() {
    let l = load("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    weight\n  }\n}\n");
    let d = find(&l, "missing a parameter");
    assert_eq!(d.severity, Severity::Fatal);
    assert_eq!((d.location.line, d.location.col), (4, 5));
    assert_eq!(
        d.message,
        "Configuration line starting `weight` is missing a parameter"
    );
    assert_eq!(l.max_severity(), Some(Severity::Fatal));
    assert!(!l.is_runnable());
}

#[test]
fn bad_values_are_errors_at_the_value() {
    let text = "virtual_server 10.0.0.1 80 {
  protocol tcpx
  lb_kind fnat
  lb_algo RR
  delay_loop -1
  real_server 10.0.1.1 80 {
    weight 12abc
    TCP_CHECK {
      connect_port 0
      connect_ip 10.0.0
      connect_timeout 1.2.3
    }
  }
}
";
    let l = load(text);
    let errs: Vec<_> = l
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.location.line, d.location.col, d.message.as_str()))
        .collect();
    assert_eq!(
        errs,
        [
            (2, 12, "unknown protocol 'tcpx' - ignoring"),
            (3, 11, "unknown [fnat] routing method - ignoring"),
            (4, 11, "Invalid lvs_scheduler 'RR' - ignoring"),
            (
                5,
                14,
                "number '-1' outside range [0.000001, 4294.967295] - ignoring"
            ),
            (7, 12, "invalid number '12abc' - ignoring"),
            (9, 20, "number '0' outside range [1, 65535] - ignoring"),
            (10, 18, "Invalid connect_ip address 10.0.0 - ignoring"),
            (11, 23, "invalid number '1.2.3' - ignoring"),
        ]
    );
    // The bad values were dropped; defaults stand.
    let vs = &l.model.virtual_servers[0];
    assert_eq!(
        (vs.protocol, vs.lb_kind, vs.lb_algo),
        (Protocol::Udp, LbKind::Nat, LbAlgo::Wlc)
    );
    assert_eq!(vs.real_servers[0].weight, 1);
    assert_eq!(vs.real_servers[0].checkers[0].connect_port, 80);
}

#[test]
fn virtual_server_without_real_servers_is_dropped() {
    let l = load("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n}\n");
    assert!(l.model.virtual_servers.is_empty());
    let d = find(&l, "has no real servers - ignoring");
    assert_eq!(
        (d.severity, d.location.line, d.location.col),
        (Severity::Error, 1, 1)
    );
}

#[test]
fn duplicate_real_servers_are_removed() {
    let l = load("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n  real_server 10.0.1.1 80 {\n  }\n  real_server 10.0.1.1 80 {\n    weight 5\n  }\n}\n");
    let rs = &l.model.virtual_servers[0].real_servers;
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].weight, 1);
    let d = find(&l, "real server 10.0.1.1 80 is duplicated");
    assert_eq!((d.severity, d.location.line), (Severity::Warning, 7));
}

#[test]
fn real_server_ports_follow_the_forwarding_method() {
    let l = load("virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.1.1 8080 {\n }\n real_server 10.0.1.2 {\n }\n}\n");
    let rs = &l.model.virtual_servers[0].real_servers;
    assert_eq!((rs[0].port, rs[1].port), (80, 80));
    let d = find(&l, "ports don't match - resetting");
    assert_eq!((d.location.line, d.location.col), (5, 23));
}

/// keepalived 2.2.7 `validate_check_config` (check/check_data.c): "unless
/// using NAT, real and virtual servers have the same port", and the same
/// rule for the sorry server. NAT keeps a written port and fills a missing
/// one with the VS port (IPVS does the same for a sorry server's port 0);
/// DR/TUN reset a different port to the VS port and clear any port of a
/// fwmark service, with a warning; DPVS's fork exempts FNAT like NAT and
/// treats SNAT like DR. One case per method and header form, for a real
/// server and a sorry server written alike.
#[test]
fn real_and_sorry_server_ports_follow_keepalived_2_2_7() {
    // (method, header, written port, effective port, warning)
    let cases: &[(&str, &str, &str, u16, Option<&str>)] = &[
        ("NAT", "10.0.0.1 80", "8080", 8080, None),
        ("NAT", "10.0.0.1 80", "", 80, None),
        ("NAT", "fwmark 7", "8080", 8080, None),
        ("NAT", "fwmark 7", "", 0, None),
        ("FNAT", "10.0.0.1 80", "8080", 8080, None),
        ("FNAT", "10.0.0.1 80", "", 80, None),
        ("FNAT", "fwmark 7", "8080", 8080, None),
        (
            "DR",
            "10.0.0.1 80",
            "8080",
            80,
            Some("ports don't match - resetting"),
        ),
        ("DR", "10.0.0.1 80", "", 80, None),
        ("DR", "10.0.0.1 80", "80", 80, None),
        (
            "DR",
            "fwmark 7",
            "8080",
            0,
            Some("has port specified - clearing"),
        ),
        ("DR", "fwmark 7", "", 0, None),
        (
            "TUN",
            "10.0.0.1 80",
            "8080",
            80,
            Some("ports don't match - resetting"),
        ),
        (
            "TUN",
            "fwmark 7",
            "8080",
            0,
            Some("has port specified - clearing"),
        ),
        (
            "SNAT",
            "10.0.0.1 80",
            "8080",
            80,
            Some("ports don't match - resetting"),
        ),
        // Left as written, with a warning (see the next test).
        ("DR", "group G", "8080", 8080, Some("group G")),
        ("DR", "group G", "", 0, None),
        ("NAT", "group G", "8080", 8080, None),
    ];
    for &(kind, header, written, want, warning) in cases {
        let text = format!(
            "virtual_server_group G {{\n 10.0.0.1 80\n}}\n\
             virtual_server {header} {{\n protocol TCP\n lb_algo rr\n lb_kind {kind}\n \
             sorry_server 10.0.9.9 {written}\n real_server 10.0.1.1 {written} {{\n }}\n}}\n"
        );
        let l = load(&text);
        let case = format!("{kind} {header} port '{written}'");
        let vs = l
            .model
            .virtual_servers
            .first()
            .unwrap_or_else(|| panic!("{case}: no virtual server: {:#?}", l.diagnostics));
        assert_eq!(vs.real_servers[0].port, want, "{case}: real server");
        let sorry = vs.sorry_server.as_ref().expect("sorry server");
        assert_eq!(sorry.port, want, "{case}: sorry server");
        let warned: Vec<_> = l
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("port"))
            .map(|d| (d.location.line, d.message.as_str()))
            .collect();
        match warning {
            Some(w) => {
                assert_eq!(warned.len(), 2, "{case}: {warned:#?}");
                assert!(
                    warned.iter().all(|(_, m)| m.contains(w)),
                    "{case}: {warned:#?}"
                );
                assert!(
                    warned[0].1.contains("sorry server") || warned[1].1.contains("sorry server")
                );
                assert!(
                    warned.iter().all(|&(line, _)| line == 8 || line == 9),
                    "{case}: {warned:#?}"
                );
            }
            None => assert!(warned.is_empty(), "{case}: {warned:#?}"),
        }
    }
}

/// keepalived 2.2.7 leaves a group's real and sorry server ports as
/// written but, for DR/TUN, warns about ports the group's entries do not
/// match or (fwmark entries) ignore: ordinary warnings, so `-t` exits 5.
#[test]
fn group_ports_that_dr_cannot_honour_are_warnings() {
    let text = "virtual_server_group G {\n 10.0.0.1 80\n 10.0.0.2-3 8080\n fwmark 7\n}\n\
        virtual_server group G {\n protocol TCP\n lb_algo rr\n lb_kind DR\n \
        sorry_server 10.0.9.9 8080\n real_server 10.0.1.1 80 {\n }\n real_server 10.0.1.2 {\n }\n}\n";
    let l = load(text);
    let got: Vec<_> = l
        .diagnostics
        .iter()
        .map(|d| (d.location.line, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (11, "WARNING - fwmark virtual server group G, real server 10.0.1.1 80 has port specified - port will be ignored"),
            (10, "WARNING - fwmark virtual server group G, sorry server has port specified - port will be ignored"),
            (10, "WARNING - virtual server group G, sorry server has port specified - port will be ignored"),
            (11, "virtual server group G:[10.0.0.2-10.0.0.3:8080] and real server 10.0.1.1 80 ports don't match"),
        ],
        "{got:#?}"
    );
    assert_eq!(keepalived_parser::config_test_exit_code(&l), 5);
    let vs = &l.model.virtual_servers[0];
    assert_eq!((vs.real_servers[0].port, vs.real_servers[1].port), (80, 0));
    assert_eq!(vs.sorry_server.as_ref().map(|s| s.port), Some(8080));
    // NAT translates ports: nothing to say.
    let l = load(&text.replace("lb_kind DR", "lb_kind NAT"));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
}

#[test]
fn local_address_groups_and_laddr_group_name() {
    let text = "local_address_group g1 {
  192.168.100.200-202 dpdk0
  2001:db8::1 dpdk1
  10.0.0.9
}
virtual_server 10.0.0.1 80 {
  protocol TCP
  lb_algo rr
  lb_kind FNAT
  laddr_group_name g1
  real_server 10.0.1.1 80 {
  }
}
virtual_server 10.0.0.2 80 {
  protocol TCP
  lb_algo rr
  lb_kind FNAT
  laddr_group_name nope
  real_server 10.0.1.1 80 {
  }
}
";
    let l = load(text);
    let g = &l.model.local_address_groups[0];
    assert_eq!(g.name, "g1");
    let addrs: Vec<_> = g
        .addresses
        .iter()
        .map(|a| (a.addr, a.ifname.as_str()))
        .collect();
    assert_eq!(
        addrs,
        [
            (ip("192.168.100.200"), "dpdk0"),
            (ip("192.168.100.201"), "dpdk0"),
            (ip("192.168.100.202"), "dpdk0"),
            (ip("2001:db8::1"), "dpdk1"),
        ]
    );
    let d = find(&l, "has no interface name");
    assert_eq!(
        (d.severity, d.location.line, d.location.col),
        (Severity::Error, 4, 3)
    );
    let vss = &l.model.virtual_servers;
    assert_eq!(vss[0].laddr_group_name.as_deref(), Some("g1"));
    assert_eq!(vss[1].laddr_group_name, None);
    let d = find(&l, "laddr_group_name 'nope' names no local_address_group");
    assert_eq!(
        (d.severity, d.location.line, d.location.col),
        (Severity::Error, 18, 20)
    );
}

#[test]
fn global_defs() {
    let text = "global_defs {
  notification_email {
    a@example.com
    \"Ops <ops@example.com>\"
  }
  notification_email_from lb@example.com
  smtp_server 10.0.0.25 2525
  smtp_connect_timeout 30
  router_id LB1
  vrrp_strict
}
";
    let l = load(text);
    let g = &l.model.global_defs;
    assert_eq!(
        g.notification_email,
        ["a@example.com", "Ops <ops@example.com>"]
    );
    assert_eq!(g.notification_email_from.as_deref(), Some("lb@example.com"));
    assert_eq!(
        (g.smtp_server.as_deref(), g.smtp_port),
        (Some("10.0.0.25"), Some(2525))
    );
    assert_eq!(g.smtp_connect_timeout, Some(Duration::from_secs(30)));
    assert_eq!(g.router_id.as_deref(), Some("LB1"));
    assert!(g.vrrp.strict);
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
}

#[test]
fn ipv6_virtual_server_and_fwmark_header() {
    let l = load("virtual_server 2001:db8::10 443 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 2001:db8::20 443 {\n }\n}\nvirtual_server fwmark 1 {\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.1 80 {\n }\n}\n");
    assert_eq!(l.model.virtual_servers.len(), 2);
    assert_eq!(l.model.virtual_servers[0].addr, ip("2001:db8::10"));
    let fw = &l.model.virtual_servers[1];
    assert_eq!((fw.fwmark, fw.port), (Some(1), 0));
    // A non-NAT fwmark service clears the real-server port, with a warning.
    assert_eq!(fw.real_servers[0].port, 0);
    let d = find(&l, "has port specified - clearing");
    assert_eq!((d.location.line, d.location.col), (11, 23));
    // No protocol warning for fwmark services.
    assert_eq!(l.diagnostics.len(), 1, "{:#?}", diags(&l));
}

#[test]
fn multiline_definition_expands_to_nested_blocks() {
    // Every line of a multiline value gets the column of its `$`, so a
    // `TCP_CHECK {` line must still be a keyword with a block.
    let text = "$RS=\\\nreal_server $IP 80 { \\\n  weight 4 \\\n  TCP_CHECK { \\\n    connect_port 81 \\\n  } \\\n}\nvirtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n  $IP=10.0.1.1\n  $RS\n  $IP=10.0.1.2\n  $RS\n}\n";
    let l = load(text);
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
    let rs = &l.model.virtual_servers[0].real_servers;
    assert_eq!(rs.len(), 2);
    assert_eq!((rs[1].addr, rs[1].weight), (ip("10.0.1.2"), 4));
    assert_eq!(rs[1].checkers[0].connect_port, 81);
    assert_eq!((rs[1].location.line, rs[1].location.col), (15, 3));
}
