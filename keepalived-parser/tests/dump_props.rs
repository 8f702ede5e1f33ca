//! Property: for generated configurations (global_defs, DPVS groups,
//! virtual servers with real servers and checkers, VRRP instances), the
//! dump of the loaded model loads back into an equal model.

use keepalived_parser::{dump, load_str, without_locations, LoadOptions};
use proptest::prelude::*;
use std::path::Path;

fn opts() -> LoadOptions {
    LoadOptions {
        config_id: Some("main".into()),
    }
}

fn pick(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(choices).prop_map(str::to_string)
}

/// Zero or one line.
fn maybe(s: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::option::of(s).prop_map(Option::unwrap_or_default)
}

fn global_defs() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9_]{0,8}",
        maybe((1u32..20).prop_map(|n| format!(" vrrp_garp_master_delay {n}\n"))),
        maybe((0u32..5).prop_map(|n| format!(" vrrp_garp_lower_prio_repeat {n}\n"))),
        maybe(Just(" enable_script_security\n".to_string())),
    )
        .prop_map(|(id, a, b, c)| format!("global_defs {{\n router_id {id}\n{a}{b}{c}}}\n"))
}

fn groups() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((1u8..250, pick(&["dpdk0", "dpdk1.102", "bond0"])), 1..3),
        prop::collection::vec(
            prop_oneof![
                (1u8..250).prop_map(|o| format!("192.0.2.{o}")),
                (1u8..200).prop_map(|o| format!("198.51.100.{o}-{}", o + 2)),
                "[a-z]{1,6}".prop_map(|s| format!("ipset:{s}")),
            ],
            0..4,
        ),
        prop::option::of((pick(&["gre", "ipip"]), 1u8..250, 1u8..250)),
    )
        .prop_map(|(laddrs, access, tunnel)| {
            let mut t = String::from("local_address_group lg {\n");
            for (o, ifname) in laddrs {
                t += &format!(" 10.9.0.{o} {ifname}\n");
            }
            t += "}\ndeny_address_group dg {\n";
            for e in &access {
                t += &format!(" {e}\n");
            }
            t += "}\nallow_address_group ag {\n";
            for e in access.iter().rev() {
                t += &format!(" {e}\n");
            }
            t += "}\n";
            if let Some((kind, l, r)) = tunnel {
                t += &format!(
                    "tunnel_group tg {{\n tunnel_entry t0 {{\n  kind {kind}\n  local 10.8.0.{l}\n  remote 10.8.1.{r}\n }}\n}}\n"
                );
            }
            t
        })
}

fn checker() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u16..65535, 1u32..10, 0u32..5).prop_map(|(p, t, r)| format!(
            "  TCP_CHECK {{\n   connect_port {p}\n   connect_timeout {t}\n   retry {r}\n  }}\n"
        )),
        ("/[a-z]{1,8}", pick(&["200", "200-299", "301"]), 1u32..9).prop_map(|(path, code, d)| {
            format!(
                "  HTTP_GET {{\n   url {{\n    path {path}\n    status_code {code}\n   }}\n   delay_before_retry {d}\n  }}\n"
            )
        }),
        (prop::bool::ANY, 0u32..10).prop_map(|(dynamic, t)| format!(
            "  MISC_CHECK {{\n   misc_path \"/bin/true {t}\"\n   misc_timeout {t}\n{}  }}\n",
            if dynamic { "   misc_dynamic\n" } else { "" }
        )),
        "[a-z0-9]{1,8}".prop_map(|p| format!(
            "  UDP_CHECK {{\n   payload {}\n   require_reply\n  }}\n",
            p.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        )),
    ]
}

fn real_server(n: usize) -> impl Strategy<Value = String> {
    (
        0u32..100,
        maybe(Just("  inhibit_on_failure\n".to_string())),
        prop::collection::vec(checker(), 0..3),
    )
        .prop_map(move |(w, inhibit, checkers)| {
            format!(
                " real_server 172.16.0.{} 8080 {{\n  weight {w}\n{inhibit}{}}}\n",
                n + 1,
                checkers.concat()
            )
        })
}

fn virtual_server(n: usize) -> impl Strategy<Value = String> {
    (
        pick(&["rr", "wrr", "lc", "wlc", "sh", "mh", "conhash"]),
        pick(&["NAT", "DR", "TUN", "FNAT"]),
        pick(&["TCP", "UDP"]),
        maybe((1u32..1000).prop_map(|t| format!(" persistence_timeout {t}\n"))),
        maybe((1u32..60).prop_map(|t| format!(" delay_loop {t}\n"))),
        maybe(pick(&[" syn_proxy\n", " quic\n", " expire_quiescent_conn\n"])),
        maybe((1u32..3600).prop_map(|t| format!(" establish_timeout {t}\n"))),
        maybe(pick(&[" proxy_protocol v1\n", " proxy_protocol v2\n"])),
        prop::bool::ANY,
        prop::collection::vec(0..3usize, 1..4),
    )
        .prop_flat_map(
            move |(algo, kind, proto, pers, delay, flag, est, pp, laddr, rs)| {
                let head = format!(
                    "virtual_server 10.0.0.{} {} {{\n lb_algo {algo}\n lb_kind {kind}\n protocol {proto}\n{pers}{delay}{flag}{est}{pp}{}",
                    n + 1,
                    80 + n,
                    if laddr && kind == "FNAT" { " laddr_group_name lg\n daddr_group_name dg\n" } else { "" }
                );
                let servers: Vec<_> = rs.iter().enumerate().map(|(i, _)| real_server(i)).collect();
                (Just(head), servers).prop_map(|(head, servers)| format!("{head}{}}}\n", servers.concat()))
            },
        )
}

fn vrrp_instance(n: usize) -> impl Strategy<Value = String> {
    (
        pick(&["MASTER", "BACKUP"]),
        1u8..255,
        1u8..255,
        1u32..5,
        prop::collection::vec(1u8..250, 1..4),
        maybe(Just(" nopreempt\n".to_string())),
        maybe((1u32..10).prop_map(|d| format!(" garp_master_delay {d}\n"))),
    )
        .prop_map(move |(state, vrid, prio, advert, vips, nopreempt, garp)| {
            let vips: String = vips.iter().map(|o| format!("  192.168.{n}.{o}/24\n")).collect();
            format!(
                "vrrp_instance VI_{n} {{\n state {state}\n interface eth0\n virtual_router_id {vrid}\n priority {prio}\n advert_int {advert}\n{nopreempt}{garp} virtual_ipaddress {{\n{vips} }}\n}}\n"
            )
        })
}

fn config() -> impl Strategy<Value = String> {
    (
        global_defs(),
        groups(),
        (0..3usize).prop_flat_map(|k| (0..k).map(virtual_server).collect::<Vec<_>>()),
        (0..3usize).prop_flat_map(|k| (0..k).map(vrrp_instance).collect::<Vec<_>>()),
    )
        .prop_map(|(g, groups, vss, vis)| format!("{g}{groups}{}{}", vss.concat(), vis.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn dump_then_reparse_gives_an_equal_model(text in config()) {
        let first = load_str(&text, Path::new("/nonexistent/g.conf"), &opts());
        let dumped = dump(&first.model);
        let second = load_str(&dumped, Path::new("/nonexistent/d.conf"), &opts());
        prop_assert_eq!(
            without_locations(&second.model),
            without_locations(&first.model),
            "config:\n{}\ndump:\n{}", text, dumped
        );
        // The generated configurations are meant to be rich, not broken.
        prop_assert!(first.model.global_defs.router_id.is_some(), "{}", text);
    }
}
