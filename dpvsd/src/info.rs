//! VRRP and OSPF runtime snapshots → the control protocol's answers.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use vrrp::instance::{DropCause, State};
use vrrp::track::{Effect, TrackKind};

use crate::announce::Verdict;
use crate::assemble::{OspfPlan, VrrpPlan};
use crate::ctl::{
    OspfInfo, OspfInterfaceInfo, OspfLsaInfo, OspfNeighborInfo, OspfVipInfo, VrrpCounters,
    VrrpInfo, VrrpInstanceInfo, VrrpReason,
};
use crate::ospf_rt::OspfSnapshot;
use crate::vrrp_rt::VrrpSnapshot;

fn state_word(s: State) -> &'static str {
    s.keyword().unwrap_or("INIT")
}

/// A monotonic instant as Unix milliseconds.
fn unix_ms(t: Instant) -> Option<u64> {
    let ago = Instant::now().checked_duration_since(t)?;
    let at = SystemTime::now().checked_sub(ago)?;
    at.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// `dpvsctl vrrp`.
pub fn vrrp(
    plan: Option<&VrrpPlan>,
    snapshot: &VrrpSnapshot,
    forwarded: &BTreeSet<IpAddr>,
) -> VrrpInfo {
    let Some(plan) = plan else {
        return VrrpInfo::default();
    };
    let instances = snapshot
        .instances
        .iter()
        .map(|st| {
            let interface = plan
                .instances
                .iter()
                .find(|i| i.name == st.name)
                .map(|i| i.interface.clone())
                .unwrap_or_default();
            let reasons = st
                .reasons
                .iter()
                .map(|r| VrrpReason {
                    kind: match r.kind {
                        TrackKind::Interface => "interface",
                        TrackKind::Script => "script",
                        TrackKind::File => "file",
                    }
                    .into(),
                    name: r.name.clone(),
                    effect: match r.effect {
                        Effect::Fault => "FAULT".into(),
                        Effect::Delta(d) => format!("{d:+}"),
                    },
                })
                .collect();
            let vips: Vec<String> = st.vips.iter().map(|v| v.to_string()).collect();
            let c = &st.counters;
            VrrpInstanceInfo {
                name: st.name.clone(),
                interface,
                vrid: st.vrid,
                state: state_word(st.state).into(),
                base_priority: st.base_priority,
                effective_priority: st.effective_priority,
                reasons,
                master_addr: st.master_addr.map(|a| a.to_string()),
                vips_held: if st.state == State::Master {
                    vips.clone()
                } else {
                    Vec::new()
                },
                vips,
                owners: st
                    .vips
                    .iter()
                    .map(|v| {
                        let who = if forwarded.contains(v) {
                            "dataplane"
                        } else {
                            "kernel"
                        };
                        (v.to_string(), who.to_string())
                    })
                    .collect(),
                counters: VrrpCounters {
                    adverts_sent: c.adverts_sent,
                    adverts_received: c.adverts_received,
                    prio0_sent: c.prio0_sent,
                    prio0_received: c.prio0_received,
                    became_master: c.became_master,
                    released_master: c.released_master,
                    drops: DropCause::ALL
                        .iter()
                        .map(|d| (d.name().to_string(), c.dropped(*d)))
                        .collect(),
                },
                last_transition_unix_ms: st.last_transition.and_then(unix_ms),
            }
        })
        .collect();
    VrrpInfo {
        running: snapshot.running,
        error: snapshot.error.clone(),
        instances,
    }
}

/// `dpvsctl ospf`.
pub fn ospf(plan: Option<&OspfPlan>, snapshot: &OspfSnapshot, verdicts: &[Verdict]) -> OspfInfo {
    let Some(plan) = plan else {
        return OspfInfo::default();
    };
    let status = snapshot.status.as_ref();
    let address = |name: &str| {
        snapshot
            .addresses
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.to_string())
            .unwrap_or_default()
    };
    OspfInfo {
        configured: true,
        running: snapshot.running,
        error: snapshot.error.clone(),
        router_id: Some(plan.router_id.to_string()),
        area: Some(plan.area.to_string()),
        interfaces: status
            .map(|s| {
                s.interfaces
                    .iter()
                    .map(|i| OspfInterfaceInfo {
                        name: i.name.clone(),
                        address: address(&i.name),
                        state: format!("{:?}", i.state),
                        dr: i.dr.to_string(),
                        bdr: i.bdr.to_string(),
                        neighbors: i
                            .neighbors
                            .iter()
                            .map(|n| OspfNeighborInfo {
                                router_id: n.router_id.to_string(),
                                addr: n.addr.to_string(),
                                priority: n.priority,
                                state: format!("{:?}", n.state),
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        originated: status
            .map(|s| {
                s.originated
                    .iter()
                    .map(|h| OspfLsaInfo {
                        ls_type: format!("{:?}", h.ls_type),
                        ls_id: h.ls_id.to_string(),
                        adv_router: h.adv_router.to_string(),
                        seq: format!("{:#010x}", h.seq),
                        age: h.age,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        announced: status
            .map(|s| s.announced.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default(),
        vips: verdicts
            .iter()
            .map(|v| OspfVipInfo {
                vip: v.vip.to_string(),
                announced: v.announced,
                reason: v.reason.clone(),
            })
            .collect(),
        drops: status
            .map(|s| {
                s.drops
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(c, n)| (c.name().to_string(), *n))
                    .collect()
            })
            .unwrap_or_default(),
    }
}
