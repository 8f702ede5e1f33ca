//! DPVS's per-service additions beyond the protections: `quic`,
//! `hash_target`, `proxy_protocol`, `bps` and `limit_proportion`; and
//! keepalived's `ha_suspend`.

use dataplane::{ProxyProtocol, ProxyVersion, Quic};
use keepalived_parser::model::{self, HashTarget, LbAlgo};

use super::{err, ignored, AssembleError, AssembleWarning};

/// The service's [`Quic`] options; what cannot be honoured is an error
/// (it would refuse every connection) or a warning (DPVS ignores it too).
pub(super) fn quic(
    vs: &model::VirtualServer,
    errors: &mut Vec<AssembleError>,
    warnings: &mut Vec<AssembleWarning>,
) -> Quic {
    let d = &vs.dpvs;
    let udp = vs.protocol == model::Protocol::Udp;
    let qid = d.hash_target == HashTarget::Qid;
    let conhash = vs.lb_algo == LbAlgo::Conhash;
    if d.quic && !udp {
        warnings.push(ignored(&vs.location, "quic on a service that is not UDP"));
    }
    if qid && conhash && !udp {
        // DPVS's conhash then finds no server for any packet.
        errors.push(err(
            &vs.location,
            "hash_target qid needs a UDP service (it hashes QUIC connection IDs)".into(),
        ));
    } else if qid && !conhash {
        warnings.push(ignored(
            &vs.location,
            "hash_target qid without lb_algo conhash",
        ));
    }
    Quic {
        migrate: d.quic && udp,
        cid_hash: qid && conhash && udp,
    }
}

/// `proxy_protocol` on an FNAT TCP service ([`ProxyProtocol`]); on other
/// forwarding methods DPVS sends no header, so it is ignored with a
/// warning; what dpvsd cannot send (UDP, NAT64) is an error.
pub(super) fn proxy_protocol(
    vs: &model::VirtualServer,
    errors: &mut Vec<AssembleError>,
    warnings: &mut Vec<AssembleWarning>,
) -> Option<ProxyProtocol> {
    let (version, insecure) = match vs.dpvs.proxy_protocol {
        model::ProxyProtocol::Disabled => return None,
        model::ProxyProtocol::V1 => (ProxyVersion::V1, false),
        model::ProxyProtocol::V2 => (ProxyVersion::V2, false),
        model::ProxyProtocol::V1Insecure => (ProxyVersion::V1, true),
        model::ProxyProtocol::V2Insecure => (ProxyVersion::V2, true),
    };
    if vs.lb_kind != model::LbKind::Fnat {
        warnings.push(ignored(&vs.location, "proxy_protocol without lb_kind FNAT"));
        return None;
    }
    let nat64 = vs.addr.is_ipv6() && vs.real_servers.iter().any(|rs| rs.addr.is_ipv4());
    let refusal = if vs.protocol != model::Protocol::Tcp {
        "proxy_protocol on a UDP service is not supported by dpvsd yet (TCP is)"
    } else if nat64 {
        "proxy_protocol with IPv4 real servers behind an IPv6 VIP (NAT64) is not supported by dpvsd yet"
    } else {
        return Some(ProxyProtocol { version, insecure });
    };
    errors.push(err(&vs.location, refusal.into()));
    None
}

/// DPVS's `bps` / `limit_proportion`, which DPVS's keepalived only prints,
/// and keepalived's `ha_suspend`, which dpvsd does not implement (the
/// checkers keep running on a backup): warned about and ignored.
pub(super) fn ignored_limits(vs: &model::VirtualServer, warnings: &mut Vec<AssembleWarning>) {
    if vs.ha_suspend {
        warnings.push(ignored(
            &vs.location,
            "ha_suspend (checkers keep running while the VIP is not owned)",
        ));
    }
    let d = &vs.dpvs;
    if d.bps != 0 {
        warnings.push(ignored(&vs.location, "bps"));
    }
    if d.limit_proportion != 100 {
        warnings.push(ignored(&vs.location, "limit_proportion"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assemble, AssembleError, Plan};
    use dataplane::{ProxyProtocol, ProxyVersion, Quic};
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;

    fn plan(protocol: &str, extra: &str) -> Result<Plan, Vec<AssembleError>> {
        let text = format!(
            "virtual_server 10.0.0.1 443 {{\n  lb_kind DR\n  protocol {protocol}\n{extra}  real_server 10.0.0.2 443 {{\n  }}\n}}\n"
        );
        let loaded = load_str(&text, Path::new("q.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        assemble(&loaded.model)
    }

    fn warnings(p: &Plan) -> Vec<String> {
        p.warnings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn quic_and_hash_target_qid_map_onto_udp_services() {
        let p = plan("UDP", "  lb_algo conhash\n  quic\n  hash_target qid\n").expect("plan");
        let want = Quic {
            migrate: true,
            cid_hash: true,
        };
        assert_eq!(p.services[0].spec.quic, want);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let p = plan("UDP", "  lb_algo rr\n").expect("plan");
        assert_eq!(p.services[0].spec.quic, Quic::default());
    }

    #[test]
    fn quic_options_that_cannot_apply_are_warned_about_or_refused() {
        // `quic` on TCP and `hash_target qid` without conhash: ignored, as
        // DPVS does, with a warning.
        let p = plan("TCP", "  lb_algo rr\n  quic\n").expect("plan");
        assert_eq!(p.services[0].spec.quic, Quic::default());
        assert_eq!(
            warnings(&p),
            ["q.conf:1:1: warning: quic on a service that is not UDP is not supported by dpvsd, ignored"]
        );
        let p = plan("UDP", "  lb_algo rr\n  hash_target qid\n").expect("plan");
        assert_eq!(p.services[0].spec.quic, Quic::default());
        assert_eq!(warnings(&p).len(), 1, "{:?}", p.warnings);
        // conhash keyed by QUIC IDs on TCP would find no server at all.
        let e = plan("TCP", "  lb_algo conhash\n  hash_target qid\n").expect_err("refused");
        assert_eq!(
            e[0].to_string(),
            "q.conf:1:1: error: hash_target qid needs a UDP service (it hashes QUIC connection IDs)"
        );
    }

    #[test]
    fn proxy_protocol_maps_onto_fnat_tcp_services() {
        let fnat = |protocol: &str, extra: &str, vip: &str, rs: &str| {
            let text = format!(
                "local_address_group l {{\n  10.0.0.9 eth0\n  fd00::9 eth0\n}}\nvirtual_server {vip} 80 {{\n  lb_algo rr\n  lb_kind FNAT\n  laddr_group_name l\n  protocol {protocol}\n{extra}  real_server {rs} 8080 {{\n  }}\n}}\n"
            );
            let loaded = load_str(&text, Path::new("q.conf"), &LoadOptions::default());
            assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
            assemble(&loaded.model)
        };
        for (kw, version, insecure) in [
            ("v1", ProxyVersion::V1, false),
            ("v2", ProxyVersion::V2, false),
            ("v1-insecure", ProxyVersion::V1, true),
            ("V2-Insecure", ProxyVersion::V2, true),
        ] {
            let p = fnat(
                "TCP",
                &format!("  proxy_protocol {kw}\n"),
                "10.0.0.1",
                "10.0.0.2",
            )
            .expect(kw);
            assert_eq!(
                p.services[0].spec.proxy_protocol,
                Some(ProxyProtocol { version, insecure }),
                "{kw}"
            );
        }
        let p = fnat("TCP", "", "10.0.0.1", "10.0.0.2").expect("plan");
        assert_eq!(p.services[0].spec.proxy_protocol, None);
        let e = fnat("UDP", "  proxy_protocol v2\n", "10.0.0.1", "10.0.0.2").expect_err("UDP");
        assert!(
            e[0].to_string()
                .contains("proxy_protocol on a UDP service is not supported"),
            "{e:?}"
        );
        let e = fnat("TCP", "  proxy_protocol v2\n", "fd00::1", "10.0.0.2").expect_err("NAT64");
        assert!(
            e[0].to_string().contains("(NAT64) is not supported"),
            "{e:?}"
        );
        // IPv6 to IPv6 is fine.
        let p = fnat("TCP", "  proxy_protocol v1\n", "fd00::1", "fd00::2").expect("v6");
        assert!(p.services[0].spec.proxy_protocol.is_some());
        // Other methods send no header in DPVS either: a warning.
        let p = plan("TCP", "  lb_algo rr\n  proxy_protocol v2\n").expect("DR");
        assert_eq!(p.services[0].spec.proxy_protocol, None);
        assert_eq!(
            warnings(&p),
            ["q.conf:1:1: warning: proxy_protocol without lb_kind FNAT is not supported by dpvsd, ignored"]
        );
    }

    #[test]
    fn least_connection_schedulers_map_and_wlc_is_the_default() {
        use dataplane::Scheduler;
        for (extra, want) in [
            ("", Scheduler::Wlc),
            ("  lb_algo wlc\n", Scheduler::Wlc),
            ("  lb_algo lc\n", Scheduler::Lc),
        ] {
            let p = plan("TCP", extra).expect(extra);
            assert_eq!(p.services[0].spec.scheduler, want, "{extra:?}");
        }
        let e = plan("TCP", "  lb_algo sed\n").expect_err("sed");
        assert!(
            e[0].to_string().contains("lb_algo sed is not supported"),
            "{e:?}"
        );
    }

    #[test]
    fn bfd_checks_are_refused_where_they_stand() {
        let text = "bfd_instance b0 {\n  neighbor_ip 10.0.0.2\n}\nvirtual_server 10.0.0.1 80 {\n  lb_kind DR\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    BFD_CHECK {\n      name b0\n    }\n  }\n}\n";
        let loaded = load_str(text, Path::new("b.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let e = assemble(&loaded.model).expect_err("refused");
        assert_eq!(
            e[0].to_string(),
            "b.conf:8:5: error: BFD_CHECK is not supported by dpvsd yet (dpvsd has no BFD sessions)"
        );
    }

    #[test]
    fn bps_limit_proportion_and_ha_suspend_are_warned_about() {
        let p = plan("TCP", "  lb_algo rr\n  bps 1000\n  limit_proportion 50\n").expect("plan");
        let w = warnings(&p);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("bps is not supported") && w[1].contains("limit_proportion"),
            "{w:?}"
        );
        let p = plan("TCP", "  lb_algo rr\n  ha_suspend\n").expect("plan");
        assert_eq!(
            warnings(&p),
            ["q.conf:1:1: warning: ha_suspend (checkers keep running while the VIP is not owned) is not supported by dpvsd, ignored"]
        );
    }
}
