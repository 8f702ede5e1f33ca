//! Brace errors and keepalived's block engine, observed through `load_str`.

mod common;
use common::{diags, find, load};
use keepalived_parser::Severity;

const RS: &str = "real_server 10.0.1.1 80 {\n  TCP_CHECK {\n  }\n}\n";

#[test]
fn extra_closing_brace_has_its_location() {
    let l = load("global_defs {\n  router_id a\n}\n  }\n");
    let d = find(&l, "Extra '}' found");
    assert_eq!((d.location.line, d.location.col), (4, 3));
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(l.model.global_defs.router_id.as_deref(), Some("a"));
}

#[test]
fn missing_closing_brace_points_at_the_open_brace() {
    let l = load("global_defs {\n  router_id a\n}\nvirtual_server 10.0.0.1 80 {\n  protocol TCP\n");
    let d = find(&l, "missing '}'");
    assert_eq!((d.location.line, d.location.col), (4, 28));
    assert_eq!(d.severity, Severity::Error);
    assert!(!l.is_runnable());
    // The Display form carries file:line:col, the source line and a caret.
    let shown = d.to_string();
    assert!(
        shown.starts_with("/etc/keepalived/keepalived.conf:4:28: error: missing '}'"),
        "{shown}"
    );
    assert!(shown.contains("virtual_server 10.0.0.1 80 {\n"), "{shown}");
}

#[test]
fn braces_may_sit_anywhere() {
    let text = format!(
        "virtual_server 10.0.0.1 80\n{{ protocol TCP\nlb_algo rr }} virtual_server 10.0.0.2 80 {{ lb_algo rr\n{}\n}}\n",
        "real_server 10.0.1.1 80 { TCP_CHECK { } }"
    );
    let l = load(&text);
    // The first VS has no real servers, the second one has one.
    let d = find(&l, "has no real servers");
    assert_eq!(d.location.line, 1);
    assert_eq!(l.model.virtual_servers.len(), 1);
    assert_eq!(l.model.virtual_servers[0].real_servers.len(), 1);
}

#[test]
fn unknown_keyword_block_closes_the_enclosing_block_early() {
    // keepalived: `real server` is unknown; its '{' is ignored, `weight 5` is
    // read as the VS weight, its '}' closes the virtual_server. The real_server
    // after it lands at top level (unknown there), and the VS's own '}' too.
    let text = format!(
        "virtual_server 10.0.0.1 80 {{\n  protocol TCP\n  real server 10.0.0.9 80 {{\n    weight 5\n  }}\n  {RS}}}\n"
    );
    let l = load(&text);
    let all = diags(&l);
    assert!(
        all.contains(&"3:3 warning unknown keyword 'real'".to_string()),
        "{all:#?}"
    );
    let loud = find(&l, "block of unknown keyword 'real'");
    assert_eq!((loud.location.line, loud.location.col), (3, 27));
    assert!(loud
        .message
        .contains("closes the enclosing 'virtual_server' block (line 1) early"));
    // real_server is unknown at top level: proof that the VS was closed.
    assert!(
        all.contains(&"6:3 warning unknown keyword 'real_server'".to_string()),
        "{all:#?}"
    );
    assert!(
        all.contains(&"10:1 warning unknown keyword '}'".to_string()),
        "{all:#?}"
    );
    let d = find(&l, "has no real servers");
    assert_eq!(d.location.line, 1);
    assert!(l.model.virtual_servers.is_empty());
}

#[test]
fn unknown_block_contents_are_read_at_the_current_level() {
    let text = format!(
        "virtual_server 10.0.0.1 80 {{\n  protocol TCP\n  lb_kind DR\n  {RS}  bogus {{\n    weight 7\n  }}\n}}\nglobal_defs {{\n router_id after\n}}\n"
    );
    let l = load(&text);
    let vs = &l.model.virtual_servers[0];
    // `weight 7` inside the unknown block set the VS default weight.
    assert_eq!(vs.real_servers[0].weight, 7);
    // The VS's own '}' (line 11) is now stray at top level; global_defs still parses.
    let all = diags(&l);
    assert!(
        all.contains(&"11:1 warning unknown keyword '}'".to_string()),
        "{all:#?}"
    );
    assert_eq!(l.model.global_defs.router_id.as_deref(), Some("after"));
}

#[test]
fn unsupported_known_blocks_are_kept_whole_with_one_warning() {
    let text = "track_group TG {\n  group {\n    VI_1\n  }\n}\ntrack_group TG2 {\n  group {\n    VI_2\n  }\n}\nglobal_defs {\n  router_id r\n}\n";
    let l = load(text);
    assert_eq!(
        diags(&l),
        ["1:1 warning keyword 'track_group' is not supported by dpvsd, ignored (kept in the configuration model; further uses are not reported)"]
    );
    assert_eq!(l.model.global_defs.router_id.as_deref(), Some("r"));
    let kept = &l.model.ignored;
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1].args, ["TG2"]);
    let group = &kept[1].block.as_ref().expect("block")[0];
    assert_eq!(group.keyword, "group");
    assert_eq!(
        group.block.as_ref().expect("nested block")[0].keyword,
        "VI_2"
    );
}

#[test]
fn keywords_are_case_sensitive() {
    let l = load("Global_defs {\n router_id x\n}\n");
    let all = diags(&l);
    assert_eq!(
        all[0],
        "1:1 warning unknown keyword 'Global_defs' (did you mean 'global_defs'?)"
    );
    assert!(all[1].starts_with("1:13 warning block of unknown keyword 'Global_defs'"));
    assert_eq!(all[2], "2:2 warning unknown keyword 'router_id'");
    assert!(l.model.global_defs.router_id.is_none());
}

#[test]
fn leaf_followed_by_a_block_is_an_unexpected_brace() {
    // Probe p02: `weight 1 TCP_CHECK {` reads weight 1 and the '{' is unexpected.
    let l = load("virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.1.1 80 { weight 3 TCP_CHECK { } }\n}\n");
    let d = find(&l, "Unexpected '{'");
    assert_eq!((d.location.line, d.location.col), (3, 47));
    let vs = &l.model.virtual_servers[0];
    assert_eq!(vs.real_servers[0].weight, 3);
    assert!(vs.real_servers[0].checkers.is_empty());
}

/// Issue 3 item 3: the keywords only newer keepalived versions know (marked
/// † in KEEPALIVED.md §2, §6.1 and the checker table) are accepted where
/// they belong: each gets dpvsd's "not supported" note, none is an
/// unknown keyword, and `-t` stays clean.
#[test]
fn newer_keepalived_keywords_are_accepted() {
    let text = "global_defs {\n set_supplementary_groups\n use_symlink_paths\n v3_checksum_as_v2\n\
        vrrp_owner_ignore_adverts\n vrrp_delay_after_boot 5\n json_version 2\n json_dump_file /tmp/j\n\
        iproute_etc_dir /etc/iproute2\n snmp_vs_stats_update_interval 5\n snmp_rs_stats_update_interval 5\n\
        dbus_no_interface_name\n}\n\
        vrrp_instance V {\n interface lo\n virtual_router_id 9\n priority 100\n no_virtual_ipaddress\n\
        timer_expired_backup\n thread_timer_expired\n owner_ignore_adverts\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n\
        virtual_server 10.0.0.1 443 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n\
        real_server 10.0.1.1 443 {\n  SSL_GET {\n   sni_name www.example.com\n   tls_compliant\n\
        url {\n    path /\n    tls_compliant\n   }\n  }\n }\n}\n";
    let l = load(text);
    let unknown: Vec<_> = diags(&l)
        .into_iter()
        .filter(|d| d.contains("unknown keyword"))
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
    let supported = |kw: &str| {
        l.diagnostics.iter().any(|d| {
            d.message
                .contains(&format!("'{kw}' is not supported by dpvsd"))
        })
    };
    for kw in [
        "set_supplementary_groups",
        "use_symlink_paths",
        "vrrp_owner_ignore_adverts",
        "vrrp_delay_after_boot",
        "json_version",
        "json_dump_file",
        "iproute_etc_dir",
        "snmp_vs_stats_update_interval",
        "dbus_no_interface_name",
        "sni_name",
        "tls_compliant",
    ] {
        assert!(supported(kw), "{kw}: {:#?}", diags(&l));
    }
    assert_eq!(
        keepalived_parser::config_test_exit_code(&l),
        0,
        "{:#?}",
        diags(&l)
    );
}
