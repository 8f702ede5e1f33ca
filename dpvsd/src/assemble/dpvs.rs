//! DPVS's per-service additions that are neither protections nor
//! forwarding: `quic`, `hash_target`, `proxy_protocol`, `bps` and
//! `limit_proportion`.

use dataplane::Quic;
use keepalived_parser::model::{self, HashTarget, LbAlgo, ProxyProtocol};

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

/// `proxy_protocol` (refused: real servers that expect the header would
/// get none) and DPVS's `bps` / `limit_proportion` (which DPVS's keepalived
/// only prints: warned about and ignored).
pub(super) fn unsupported(
    vs: &model::VirtualServer,
    errors: &mut Vec<AssembleError>,
    warnings: &mut Vec<AssembleWarning>,
) {
    let d = &vs.dpvs;
    if d.proxy_protocol != ProxyProtocol::Disabled {
        errors.push(err(
            &vs.location,
            "proxy_protocol is not supported by dpvsd yet (its real servers would get no PROXY header)"
                .into(),
        ));
    }
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
    use dataplane::Quic;
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
    fn proxy_protocol_is_refused_and_bps_limits_are_warned_about() {
        let e = plan("TCP", "  lb_algo rr\n  proxy_protocol v2\n").expect_err("refused");
        assert!(
            e[0].to_string()
                .starts_with("q.conf:1:1: error: proxy_protocol is not supported"),
            "{e:?}"
        );
        let p = plan("TCP", "  lb_algo rr\n  bps 1000\n  limit_proportion 50\n").expect("plan");
        let w = warnings(&p);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("bps is not supported") && w[1].contains("limit_proportion"),
            "{w:?}"
        );
    }
}
