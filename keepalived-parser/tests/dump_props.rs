//! Property: for generated configurations (global_defs, DPVS groups,
//! virtual servers with real servers and checkers, VRRP instances, and the
//! blocks dpvsd keeps without running: vrrp_track_process, bfd_instance,
//! garp_group, SSL, BFD_CHECK and "not supported by dpvsd" keywords), the
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
        maybe(pick(&[
            " enable_snmp_vrrp\n",
            " vrrp_garp_extra_if 5 sync\n",
        ])),
    )
        .prop_map(|(id, a, b, c, d)| format!("global_defs {{\n router_id {id}\n{a}{b}{c}{d}}}\n"))
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

/// A decimal number with up to `decimals` decimals.
fn decimal(int: std::ops::Range<u32>, decimals: usize) -> impl Strategy<Value = String> {
    (int, "[0-9]{0,6}").prop_map(move |(i, f)| {
        let f = &f[..f.len().min(decimals)];
        if f.is_empty() {
            i.to_string()
        } else {
            format!("{i}.{f}")
        }
    })
}

fn track_process(n: usize) -> impl Strategy<Value = String> {
    (
        "[a-z]{1,8}",
        maybe(pick(&[" -g", " --conf /etc/x.conf", " \"daemon off;\""])),
        maybe(pick(&[
            " param_match\n",
            " param_match initial\n",
            " param_match partial\n",
        ])),
        maybe(
            (-254i32..=254, prop::bool::ANY)
                .prop_map(|(w, r)| format!(" weight {w}{}\n", if r { " reverse" } else { "" })),
        ),
        maybe((0u32..5, 1u32..5).prop_map(|(m, q)| format!(" quorum_max {m}\n quorum {q}\n"))),
        maybe(
            (
                pick(&["delay", "fork_delay", "terminate_delay"]),
                decimal(1..3600, 6),
            )
                .prop_map(|(k, d)| format!(" {k} {d}\n")),
        ),
        maybe(Just(" full_command\n".to_string())),
    )
        .prop_map(move |(p, params, pm, w, q, d, full)| {
            format!("vrrp_track_process tp{n} {{\n process {p}{params}\n{pm}{w}{q}{d}{full}}}\n")
        })
}

fn bfd_instance(n: usize) -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        maybe(
            (pick(&["min_rx", "min_tx", "idle_tx"]), decimal(1..20000, 4))
                .prop_map(|(k, v)| format!(" {k} {v}\n")),
        ),
        maybe((1u32..300).prop_map(|m| format!(" multiplier {m}\n"))),
        maybe((1u32..256).prop_map(|t| format!(" ttl {t}\n"))),
        maybe((-1i32..256).prop_map(|h| format!(" max_hops {h}\n"))),
        maybe(
            (-253i32..=253, prop::bool::ANY)
                .prop_map(|(w, r)| format!(" weight {w}{}\n", if r { " reverse" } else { "" })),
        ),
        maybe(pick(&[
            " passive\n",
            " vrrp\n",
            " checker\n",
            " vrrp\n checker\n",
        ])),
    )
        .prop_map(move |(v6, a, b, c, d, e, f)| {
            let (nbr, src) = if v6 {
                (format!("2001:db8::{}", n + 1), "")
            } else {
                (format!("10.7.0.{}", n + 1), " source_ip 10.7.1.1\n")
            };
            format!("bfd_instance bfd{n} {{\n neighbor_ip {nbr}\n{src}{a}{b}{c}{d}{e}{f}}}\n")
        })
}

/// The blocks dpvsd keeps in the model without running them.
fn kept() -> impl Strategy<Value = String> {
    (
        maybe(
            (prop::bool::ANY, prop::bool::ANY, "[a-z]{1,8}").prop_map(|(ca, key, pw)| {
                format!(
                    "SSL {{\n password {pw}\n{}{}}}\n",
                    if ca { " ca /etc/ssl/ca.pem\n" } else { "" },
                    if key {
                        " certificate /etc/ssl/c.pem\n key /etc/ssl/k.pem\n"
                    } else {
                        ""
                    }
                )
            }),
        ),
        maybe((decimal(0..3, 6), prop::bool::ANY).prop_map(|(i, agg)| {
            if agg {
                format!("garp_group {{\n garp_interval {i}\n interfaces {{\n  eth0 eth1\n }}\n}}\n")
            } else {
                format!("garp_group {{\n gna_interval {i}\n interface eth2\n}}\n")
            }
        })),
        (0..3usize).prop_flat_map(|k| (0..k).map(track_process).collect::<Vec<_>>()),
        (0..3usize).prop_flat_map(|k| (0..k).map(bfd_instance).collect::<Vec<_>>()),
        maybe(pick(&[
            "net_namespace blue\n",
            "linkbeat_interfaces {\n eth0 MII\n eth1\n}\n",
            "track_group TG {\n group {\n  VI_0\n }\n}\n",
        ])),
    )
        .prop_map(|(ssl, garp, tps, bfds, other)| {
            format!("{}{}{}{}{}", ssl, garp, tps.concat(), bfds.concat(), other)
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
        maybe(pick(&[
            "  BFD_CHECK {\n   name bfd0\n  }\n",
            "  BFD_CHECK {\n   name bfd1\n   alpha\n  }\n",
            "  snmp_name rs\n",
        ])),
    )
        .prop_map(move |(w, inhibit, checkers, kept)| {
            format!(
                " real_server 172.16.0.{} 8080 {{\n  weight {w}\n{inhibit}{}{kept}}}\n",
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
        kept(),
        (0..3usize).prop_flat_map(|k| (0..k).map(virtual_server).collect::<Vec<_>>()),
        (0..3usize).prop_flat_map(|k| (0..k).map(vrrp_instance).collect::<Vec<_>>()),
    )
        .prop_map(|(g, groups, kept, vss, vis)| {
            format!("{g}{groups}{kept}{}{}", vss.concat(), vis.concat())
        })
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
