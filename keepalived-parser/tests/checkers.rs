//! Every checker type, its keepalived defaults (§8), inheritance and value errors;
//! the virtual_server header forms and keywords (§7, §10); `-t` exit codes (§1.9).

mod common;
use common::{diags, find, load};
use keepalived_parser::config_test_exit_code;
use keepalived_parser::model::{
    CheckerKind, DnsType, HashTarget, HttpProtocol, LbKind, ProxyProtocol, VsgEntry,
};
use keepalived_parser::{DiagClass, Severity};
use std::time::Duration;

/// One NAT TCP virtual server with one real server holding `body`.
fn vs(body: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n delay_loop 10\n real_server 10.0.1.1 8080 {{\n{body}\n }}\n}}\n"
    )
}

const S: Duration = Duration::from_secs(1);

#[test]
fn http_get_defaults_urls_and_virtualhost_inheritance() {
    let l = load(&vs("  virtualhost rs.example\n  HTTP_GET {\n   url {\n    path /a\n    digest 640205b7b0fc66c1ea91c463fac6334d\n    status_code 200 301-302\n   }\n   url {\n    path /b\n    virtualhost u.example\n   }\n   http_protocol 1.1\n  }"));
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
    let c = &l.model.virtual_servers[0].real_servers[0].checkers[0];
    let CheckerKind::Http(h) = &c.kind else {
        panic!("{:?}", c.kind)
    };
    assert_eq!(h.http_protocol, HttpProtocol::Http11);
    assert_eq!(h.virtualhost.as_deref(), Some("rs.example"));
    assert_eq!(h.urls[0].status_codes, [(200, 200), (301, 302)]);
    assert_eq!(h.urls[0].digests[0][0], 0x64);
    assert_eq!(h.urls[0].virtualhost.as_deref(), Some("rs.example"));
    assert_eq!(h.urls[1].status_codes, [(200, 299)]);
    assert_eq!(h.urls[1].virtualhost.as_deref(), Some("u.example"));
    // HTTP defaults: retry 1, delay_before_retry 3 s, warmup = delay_loop (VS 10 s).
    assert_eq!(
        (c.retry, c.delay_before_retry, c.delay_loop, c.warmup),
        (1, 3 * S, 10 * S, 10 * S)
    );
    assert_eq!((c.connect_port, c.connect_timeout), (8080, 5 * S));
}

#[test]
fn ssl_get_without_url_is_dropped_and_bad_digest_is_located() {
    let l = load(&vs("  SSL_GET {\n   enable_sni\n   nb_get_retry 4\n  }\n  SSL_GET {\n   url {\n    path /\n    digest 12zz\n   }\n  }"));
    let rs = &l.model.virtual_servers[0].real_servers[0];
    assert_eq!(rs.checkers.len(), 1);
    assert!(matches!(rs.checkers[0].kind, CheckerKind::Ssl(_)));
    let d = find(&l, "HTTP/SSL_GET checker has no urls");
    assert_eq!(
        (d.severity, d.location.line, d.location.col),
        (Severity::Error, 7, 3)
    );
    let d = find(&l, "digest '12zz' character length should be 32");
    assert_eq!((d.location.line, d.location.col), (14, 12));
    find(&l, "nb_get_retry is deprecated");
}

#[test]
fn misc_check_uses_the_script_tokeniser() {
    let l = load(&vs("  retry 5\n  MISC_CHECK {\n   misc_path \"/bin/chk 'a b'\" ignored\n   misc_dynamic\n   user nobody nogroup\n  }\n  MISC_CHECK {\n   misc_path /bin/x' y'\"z\"\n   misc_timeout 3\n   delay_before_retry 2\n  }\n  MISC_CHECK {\n   misc_timeout x\n  }"));
    let cs = &l.model.virtual_servers[0].real_servers[0].checkers;
    assert_eq!(cs.len(), 2);
    let CheckerKind::Misc(m) = &cs[0].kind else {
        panic!()
    };
    assert_eq!(m.argv, ["/bin/chk", "a b"]);
    assert!(m.dynamic);
    assert_eq!(
        (m.user.as_deref(), m.group.as_deref()),
        (Some("nobody"), Some("nogroup"))
    );
    // misc_timeout unset: the delay_loop; retry inherited from the RS.
    assert_eq!((m.timeout, cs[0].retry), (10 * S, 5));
    let CheckerKind::Misc(m) = &cs[1].kind else {
        panic!()
    };
    // The command string is split again (set_script_params_array).
    assert_eq!(m.argv, ["/bin/x", "yz"]);
    assert_eq!((m.timeout, cs[1].delay_before_retry), (3 * S, 2 * S));
    let d = find(&l, "Invalid misc_timeout value 'x'");
    assert_eq!((d.location.line, d.location.col), (19, 17));
    let d = find(&l, "No script path has been specified");
    assert_eq!((d.location.line, d.location.col), (18, 3));
}

#[test]
fn misc_check_default_retry_is_zero() {
    let l = load(&vs("  MISC_CHECK {\n   misc_path /bin/true\n  }"));
    let c = &l.model.virtual_servers[0].real_servers[0].checkers[0];
    assert_eq!((c.retry, c.delay_before_retry), (0, S));
}

#[test]
fn smtp_check_helo_and_host_blocks() {
    let l = load(&vs("  SMTP_CHECK {\n  }\n  SMTP_CHECK {\n   helo_name mx.example\n   host {\n    connect_ip 10.0.9.9\n    connect_port 25\n   }\n   host {\n    connect_port 2525\n   }\n  }"));
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
    let cs = &l.model.virtual_servers[0].real_servers[0].checkers;
    assert_eq!(cs.len(), 3);
    let CheckerKind::Smtp(s) = &cs[0].kind else {
        panic!()
    };
    assert_eq!(s.helo_name, "smtpchecker.keepalived.org");
    let CheckerKind::Smtp(s) = &cs[1].kind else {
        panic!()
    };
    assert_eq!(s.helo_name, "mx.example");
    assert_eq!(
        (cs[1].connect_ip.to_string(), cs[1].connect_port),
        ("10.0.9.9".into(), 25)
    );
    assert_eq!(
        (cs[2].connect_ip.to_string(), cs[2].connect_port),
        ("10.0.1.1".into(), 2525)
    );
}

#[test]
fn dns_check_defaults_and_bad_type() {
    let l = load(&vs(
        "  DNS_CHECK {\n  }\n  DNS_CHECK {\n   type aaaa\n   name example.org\n   type BOGUS\n  }",
    ));
    let cs = &l.model.virtual_servers[0].real_servers[0].checkers;
    let CheckerKind::Dns(d) = &cs[0].kind else {
        panic!()
    };
    assert_eq!((d.qtype, d.name.as_str()), (DnsType::Soa, "."));
    // DNS: retry 3, delay_before_retry = delay_loop.
    assert_eq!((cs[0].retry, cs[0].delay_before_retry), (3, 10 * S));
    let CheckerKind::Dns(d) = &cs[1].kind else {
        panic!()
    };
    assert_eq!((d.qtype, d.name.as_str()), (DnsType::Aaaa, "example.org"));
    let e = find(&l, "Unknown DNS check type BOGUS");
    assert_eq!((e.location.line, e.location.col), (12, 9));
}

#[test]
fn udp_check_hex_payload_and_wildcard_reply() {
    let l = load(&vs("  UDP_CHECK {\n   payload 01 0203 f\n   require_reply 4x X1\n   min_reply_length 2\n  }\n  UDP_CHECK {\n   require_reply\n   max_reply_length 70000\n   payload zz\n  }"));
    let cs = &l.model.virtual_servers[0].real_servers[0].checkers;
    let CheckerKind::Udp(u) = &cs[0].kind else {
        panic!()
    };
    assert_eq!(u.payload, [0x01, 0x02, 0x03, 0x0f]);
    let r = u.require_reply.as_ref().expect("required");
    assert_eq!(
        (r.data.as_slice(), r.wildcard.as_slice()),
        (&[0x40, 0x01][..], &[0x0f, 0xf0][..])
    );
    assert_eq!((u.min_reply_length, u.max_reply_length), (2, 255));
    let CheckerKind::Udp(u) = &cs[1].kind else {
        panic!()
    };
    assert_eq!(u.require_reply.as_ref().map(|r| r.data.len()), Some(0));
    let e = find(&l, "UDP_CHECK max length 70000 not valid");
    assert_eq!((e.location.line, e.location.col), (14, 21));
    let e = find(&l, "Invalid hex string for UDP_CHECK payload");
    assert_eq!((e.location.line, e.location.col), (15, 12));
}

#[test]
fn ping_and_file_checks() {
    let text = format!(
        "track_file tf {{\n file /tmp/x\n}}\n{}",
        vs("  PING_CHECK {\n   connect_timeout 2\n  }\n  FILE_CHECK {\n   track_file tf\n   weight -10 reverse\n  }\n  FILE_CHECK {\n   track_file nope\n  }\n  FILE_CHECK {\n   connect_ip 1.2.3.4\n  }")
    );
    let l = load(&text);
    let cs = &l.model.virtual_servers[0].real_servers[0].checkers;
    assert_eq!(cs.len(), 2);
    assert_eq!(
        (&cs[0].kind, cs[0].connect_timeout),
        (&CheckerKind::Ping, 2 * S)
    );
    let CheckerKind::File(f) = &cs[1].kind else {
        panic!()
    };
    assert_eq!(
        (f.track_file.as_str(), f.weight, f.reverse),
        ("tf", Some(-10), true)
    );
    let e = find(&l, "track_file nope not found");
    assert_eq!((e.location.line, e.location.col), (18, 15));
    // FILE_CHECK has no connection keywords.
    let e = find(&l, "unknown keyword 'connect_ip'");
    assert_eq!((e.location.line, e.location.col), (21, 4));
}

#[test]
fn virtual_server_group_and_vs_keywords() {
    let text = "virtual_server_group G {\n 10.0.0.1-3 80\n fwmark 7\n}\nvirtual_server group G {\n protocol TCP\n lb_algo rr\n lb_kind DR\n persistence_timeout\n persistence_granularity 255.255.255.0\n quorum 50\n hysteresis 9\n alpha\n omega\n quorum_up \"/bin/up 'x y'\" root\n sorry_server 10.0.9.1 81\n sorry_server_inhibit\n ha_suspend\n real_server 10.0.1.1 80 {\n  weight 3\n }\n}\n";
    let l = load(text);
    let g = &l.model.virtual_server_groups[0];
    assert_eq!(g.entries.len(), 2);
    assert!(matches!(g.entries[0], VsgEntry::Range { port: 80, .. }));
    assert_eq!(g.entries[1], VsgEntry::Fwmark(7));
    let v = &l.model.virtual_servers[0];
    assert_eq!(v.group.as_deref(), Some("G"));
    assert_eq!(
        (v.persistence_timeout, v.persistence_granularity),
        (Some(360), Some(24))
    );
    // quorum is lowered to the total weight, then hysteresis below quorum.
    assert_eq!((v.quorum, v.hysteresis), (3, 2));
    assert!(v.alpha && v.omega && v.ha_suspend);
    let up = v.quorum_up.as_ref().expect("quorum_up");
    assert_eq!(
        (up.argv.as_slice(), up.user.as_deref()),
        (
            &["/bin/up".to_string(), "x y".to_string()][..],
            Some("root")
        )
    );
    let s = v.sorry_server.as_ref().expect("sorry server");
    assert_eq!((s.port, s.inhibit), (81, true));
    find(&l, "reducing quorum to 3");
    find(&l, "setting hysteresis to 2");
}

#[test]
fn dpvs_match_service_and_options() {
    let text = "virtual_server match SNAT1 {\n lb_algo conhash\n hash_target qid\n proxy_protocol V2\n establish_timeout 9999\n syn_proxy\n src-range 10.0.0.1-10.0.0.9\n oif dpdk1\n limit_proportion 50\n real_server 10.0.1.1 0 {\n }\n}\n";
    let l = load(text);
    let v = &l.model.virtual_servers[0];
    assert_eq!(
        (v.match_name.as_deref(), v.lb_kind),
        (Some("SNAT1"), LbKind::Snat)
    );
    assert_eq!(v.dpvs.hash_target, HashTarget::Qid);
    assert_eq!(v.dpvs.proxy_protocol, ProxyProtocol::V2);
    assert_eq!(v.dpvs.establish_timeout, Some(3600));
    assert!(v.dpvs.syn_proxy);
    assert_eq!(v.dpvs.src_range.as_deref(), Some("10.0.0.1-10.0.0.9"));
    assert_eq!(
        (v.dpvs.oif.as_deref(), v.dpvs.limit_proportion, v.dpvs.bps),
        (Some("dpdk1"), 50, 0)
    );
    // A match service needs neither protocol nor forwarding method.
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
}

#[test]
fn config_test_exit_codes() {
    let clean = vs("  TCP_CHECK {\n  }");
    assert_eq!(config_test_exit_code(&load(&clean)), 0);
    // dpvsd's own notes (a skipped, not yet supported block) do not count.
    let l = load(&format!(
        "bfd_instance B {{\n neighbor_ip 10.0.0.1\n}}\n{clean}"
    ));
    assert_eq!(l.diagnostics[0].class, DiagClass::Dpvsd);
    assert_eq!(config_test_exit_code(&l), 0);
    // An ordinary warning: 5.
    assert_eq!(config_test_exit_code(&load(&format!("bogus\n{clean}"))), 5);
    // A missing parameter: 2, whatever else.
    let l = load(&format!("bogus\n{}", vs("  weight\n  TCP_CHECK {\n  }")));
    assert_eq!(config_test_exit_code(&l), 2);
}
