//! A virtual server's protections: `daddr_group_name` / `waddr_group_name`
//! (DPVS's deny and allow address groups), real servers' `uthreshold` /
//! `lthreshold`, and `syn_proxy`.

use std::net::SocketAddr;

use dataplane::{AddrRange, Protection, Thresholds};
use keepalived_parser::model::{self, AccessEntry, AccessGroup, Model};

use super::{err, AssembleError};

/// The address ranges of the group `name` of `groups`; an unknown group or
/// an `ipset:` entry is an error.
fn ranges(
    groups: &[AccessGroup],
    kw: &str,
    name: &str,
    vs: &model::VirtualServer,
    errors: &mut Vec<AssembleError>,
) -> Vec<AddrRange> {
    let Some(g) = groups.iter().find(|g| g.name == name) else {
        errors.push(err(&vs.location, format!("{kw} '{name}' is not defined")));
        return Vec::new();
    };
    g.entries
        .iter()
        .filter_map(|e| match e {
            AccessEntry::Addr(a) => Some(AddrRange::one(*a)),
            AccessEntry::Ipset(set) => {
                errors.push(err(
                    &g.location,
                    format!("{kw} '{name}': ipset:{set} is not supported by dpvsd (list addresses or ranges)"),
                ));
                None
            }
        })
        .collect()
}

/// The service's [`Protection`]; problems are pushed onto `errors`.
pub(super) fn protection(
    model: &Model,
    vs: &model::VirtualServer,
    errors: &mut Vec<AssembleError>,
) -> Protection {
    let d = &vs.dpvs;
    let deny = d.daddr_group_name.as_deref().map_or_else(Vec::new, |n| {
        ranges(
            &model.deny_address_groups,
            "deny_address_group",
            n,
            vs,
            errors,
        )
    });
    let allow = d.waddr_group_name.as_deref().map_or_else(Vec::new, |n| {
        ranges(
            &model.allow_address_groups,
            "allow_address_group",
            n,
            vs,
            errors,
        )
    });
    let thresholds = vs
        .real_servers
        .iter()
        .filter(|rs| rs.uthreshold > 0)
        .map(|rs| {
            (
                SocketAddr::new(rs.addr, rs.port),
                Thresholds {
                    upper: rs.uthreshold,
                    lower: rs.lthreshold,
                },
            )
        })
        .collect();
    let proxiable = vs.protocol == model::Protocol::Tcp
        && matches!(vs.lb_kind, model::LbKind::Fnat | model::LbKind::Nat);
    if d.syn_proxy && !proxiable {
        errors.push(err(
            &vs.location,
            "syn_proxy needs protocol TCP and lb_kind FNAT or NAT (the replies must pass through dpvsd)".into(),
        ));
    }
    // IPv6 is proxied as IPv4 is; NAT64 (IPv6 VIP, IPv4 real servers) not.
    let nat64 = vs.addr.is_ipv6() && vs.real_servers.iter().any(|rs| rs.addr.is_ipv4());
    if d.syn_proxy && nat64 {
        errors.push(err(
            &vs.location,
            "syn_proxy on a NAT64 virtual server (IPv6 VIP, IPv4 real servers) is not supported by dpvsd".into(),
        ));
    }
    Protection {
        allow,
        deny,
        thresholds,
        syn_proxy: d.syn_proxy,
    }
}

#[cfg(test)]
mod tests {
    use super::super::assemble;
    use super::*;
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;

    const GROUPS: &str = "deny_address_group bad {\n 10.1.0.1\n 10.1.0.5-7\n}\nallow_address_group good {\n 10.2.0.0-255\n}\ndeny_address_group set {\n ipset:blk\n}\n";

    fn plan(vs_extra: &str, rs_extra: &str) -> Result<super::super::Plan, Vec<AssembleError>> {
        let text = format!(
            "{GROUPS}virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{vs_extra}  real_server 10.0.0.2 80 {{\n{rs_extra}  }}\n  real_server 10.0.0.3 80 {{\n  }}\n}}\n"
        );
        let loaded = load_str(&text, Path::new("p.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        assert!(
            loaded.diagnostics.is_empty(),
            "groups and thresholds are used, not warned about: {:?}",
            loaded.diagnostics
        );
        assemble(&loaded.model)
    }

    fn one(a: [u8; 4]) -> AddrRange {
        AddrRange::one(std::net::Ipv4Addr::from(a).into())
    }

    #[test]
    fn nothing_configured_protects_nothing() {
        let p = plan("", "").expect("plan");
        assert_eq!(p.services[0].spec.protection, Protection::default());
    }

    #[test]
    fn groups_map_to_allow_and_deny_ranges() {
        let p = plan("  daddr_group_name bad\n  waddr_group_name good\n", "").expect("plan");
        let prot = &p.services[0].spec.protection;
        assert_eq!(
            prot.deny,
            [
                one([10, 1, 0, 1]),
                one([10, 1, 0, 5]),
                one([10, 1, 0, 6]),
                one([10, 1, 0, 7])
            ]
        );
        assert_eq!(prot.allow.len(), 256);
        assert_eq!(prot.allow[255], one([10, 2, 0, 255]));
    }

    #[test]
    fn unknown_groups_and_ipsets_are_errors_with_locations() {
        let e = plan("  daddr_group_name nope\n", "").expect_err("unknown group");
        assert_eq!(
            e[0].to_string(),
            "p.conf:11:1: error: deny_address_group 'nope' is not defined"
        );
        let e = plan("  daddr_group_name set\n", "").expect_err("ipset");
        assert!(
            e[0].to_string()
                .starts_with("p.conf:8:1: error: deny_address_group 'set': ipset:blk"),
            "{e:?}"
        );
    }

    #[test]
    fn syn_proxy_maps_for_nat_and_fnat_only() {
        let p = plan("  syn_proxy\n", "").expect_err("DR cannot proxy");
        assert!(p[0].message.starts_with("syn_proxy needs"), "{p:?}");
        // A `kind` virtual server `vip` → `rs` with syn_proxy, assembled.
        let proxied = |vip: &str, rs: &str, kind: &str| {
            let text = format!("virtual_server {vip} 80 {{\n  lb_algo rr\n  lb_kind {kind}\n  protocol TCP\n  syn_proxy\n  real_server {rs} 80 {{\n  }}\n}}\n");
            let loaded = load_str(&text, Path::new("s.conf"), &LoadOptions::default());
            assemble(&loaded.model)
        };
        for (vip, rs) in [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")] {
            let plan = proxied(vip, rs, "NAT").expect("NAT proxies, IPv4 and IPv6");
            assert!(plan.services[0].spec.protection.syn_proxy);
        }
        // NAT64: refused where it is written.
        let errors = proxied("fd00::1", "10.0.0.2", "FNAT").expect_err("NAT64 does not proxy");
        let e = errors
            .iter()
            .find(|e| e.message.starts_with("syn_proxy on a NAT64"))
            .expect("the NAT64 refusal");
        assert_eq!(e.to_string().split(": ").next(), Some("s.conf:1:1"));
    }

    #[test]
    fn thresholds_map_per_real_server() {
        let p = plan("", "    uthreshold 100\n    lthreshold 60\n").expect("plan");
        assert_eq!(
            p.services[0].spec.protection.thresholds,
            [(
                "10.0.0.2:80".parse().expect("addr"),
                Thresholds {
                    upper: 100,
                    lower: 60
                }
            )]
        );
        // lthreshold alone sets no limit.
        let p = plan("", "    lthreshold 60\n").expect("plan");
        assert!(p.services[0].spec.protection.thresholds.is_empty());
    }
}
