//! The OSPF announce rule (issue 8): a VIP is announced while at least one
//! virtual server on it has quorum (keepalived's: the weights of its healthy
//! real servers reach `quorum`, 1 by default) and, when the VIP belongs to a
//! VRRP instance, while that instance is MASTER.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use healthcheck::SubjectId;
use vrrp::instance::{InstanceStatus, State};

use dataplane::ServiceKey;

use crate::assemble::{ServicePlan, VrrpPlan};

/// The rule's verdict on one candidate VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub vip: IpAddr,
    pub announced: bool,
    pub reason: String,
}

/// Every VIP of `services`, in address order. `healthy` says whether a
/// real server (by health subject) is up with a weight above 0; `quorum`
/// whether a service has quorum now (`None`: not evaluated yet, then any
/// healthy server counts).
pub fn verdicts(
    services: &[ServicePlan],
    healthy: impl Fn(SubjectId) -> bool,
    quorum: impl Fn(ServiceKey) -> Option<bool>,
    vrrp: Option<&VrrpPlan>,
    states: &[InstanceStatus],
) -> Vec<Verdict> {
    // Per VIP: real servers, healthy ones, services with quorum.
    let mut servers: BTreeMap<IpAddr, (usize, usize, usize)> = BTreeMap::new();
    for svc in services {
        let e = servers.entry(svc.spec.key.addr).or_default();
        let up = svc.servers.iter().filter(|s| healthy(s.subject.id)).count();
        e.0 += svc.servers.len();
        e.1 += up;
        if quorum(svc.spec.key).unwrap_or(up > 0) {
            e.2 += 1;
        }
    }
    let owner: BTreeMap<IpAddr, &str> = vrrp.map(|p| p.vips().collect()).unwrap_or_default();
    servers
        .into_iter()
        .map(|(vip, (total, up, with_quorum))| {
            let verdict = |announced: bool, reason: String| Verdict {
                vip,
                announced,
                reason,
            };
            if vip.is_ipv6() {
                return verdict(false, "IPv6: OSPFv2 announces IPv4 only".into());
            }
            let health = format!("{up}/{total} real servers healthy");
            if with_quorum == 0 {
                return verdict(
                    false,
                    format!("withdrawn: {health}, no virtual server has quorum"),
                );
            }
            let Some(name) = owner.get(&vip) else {
                return verdict(true, format!("announced: {health}"));
            };
            let state = states
                .iter()
                .find(|s| s.name == *name)
                .map(|s| s.state)
                .unwrap_or(State::Init);
            let word = state.keyword().unwrap_or("INIT");
            if state == State::Master {
                verdict(
                    true,
                    format!("announced: {health}, VRRP instance {name} is MASTER"),
                )
            } else {
                verdict(
                    false,
                    format!("withdrawn: VRRP instance {name} is {word} ({health})"),
                )
            }
        })
        .collect()
}

/// The IPv4 VIPs the verdicts announce.
pub fn announced(verdicts: &[Verdict]) -> BTreeSet<Ipv4Addr> {
    verdicts
        .iter()
        .filter(|v| v.announced)
        .filter_map(|v| match v.vip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::assemble;
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;

    const CONF: &str = "local_address_group l {\n  10.0.0.200 eth0\n}\n\
        virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n\
        \x20 real_server 10.0.1.1 80 {\n  }\n  real_server 10.0.1.2 80 {\n  }\n}\n\
        virtual_server 10.0.0.2 80 {\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n\
        \x20 real_server 10.0.1.1 80 {\n  }\n}\n\
        vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    10.0.0.2\n  }\n}\n";

    fn status(name: &str, state: State) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            vrid: 51,
            state,
            base_priority: 100,
            effective_priority: 100,
            reasons: Vec::new(),
            master_addr: None,
            vips: Vec::new(),
            counters: Default::default(),
            last_transition: None,
        }
    }

    #[test]
    fn health_and_vrrp_mastership_decide() {
        let loaded = load_str(
            CONF,
            Path::new("t.conf"),
            &LoadOptions {
                config_id: Some("x".into()),
            },
        );
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let plan = assemble(&loaded.model).expect("assemble");
        let vip1: Ipv4Addr = "10.0.0.1".parse().expect("ip");
        let vip2: Ipv4Addr = "10.0.0.2".parse().expect("ip");
        let ids: Vec<SubjectId> = plan.services[0]
            .servers
            .iter()
            .map(|s| s.subject.id)
            .collect();
        let backup = [status("VI_1", State::Backup)];
        let master = [status("VI_1", State::Master)];
        let all_up = verdicts(
            &plan.services,
            |_| true,
            |_| None,
            plan.vrrp.as_ref(),
            &backup,
        );
        assert_eq!(announced(&all_up), [vip1].into());
        assert!(all_up[1].reason.contains("VI_1 is BACKUP"), "{all_up:?}");
        let v = verdicts(
            &plan.services,
            |_| true,
            |_| None,
            plan.vrrp.as_ref(),
            &master,
        );
        assert_eq!(announced(&v), [vip1, vip2].into());
        // One of 10.0.0.1's two servers down: still announced.
        let v = verdicts(
            &plan.services,
            |id| id != ids[0],
            |_| None,
            plan.vrrp.as_ref(),
            &master,
        );
        assert!(v[0].announced && v[0].reason.contains("1/2"), "{v:?}");
        let v = verdicts(
            &plan.services,
            |_| false,
            |_| None,
            plan.vrrp.as_ref(),
            &master,
        );
        assert!(announced(&v).is_empty(), "{v:?}");
        assert!(v[0].reason.starts_with("withdrawn: 0/2"), "{v:?}");
        // Healthy servers but no quorum (e.g. `quorum 3`): withdrawn.
        let key1 = plan.services[0].spec.key;
        let v = verdicts(
            &plan.services,
            |_| true,
            |k| Some(k != key1),
            plan.vrrp.as_ref(),
            &master,
        );
        assert_eq!(announced(&v), [vip2].into(), "{v:?}");
        assert!(
            v[0].reason.contains("no virtual server has quorum"),
            "{v:?}"
        );
    }
}
