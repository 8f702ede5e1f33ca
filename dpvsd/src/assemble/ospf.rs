//! `ospf_announcer { }` → what the OSPF speaker runs. Interface addresses
//! are looked up by the daemon when it starts the speaker (assemble does no
//! I/O).

use std::net::Ipv4Addr;

use keepalived_parser::model::{self, Model, OspfAnnounceAs};
use ospf::{AnnounceAs, AuthSpec};

use super::{err, AssembleError};

/// One OSPF interface, without its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OspfInterfacePlan {
    pub name: String,
    pub hello_interval: u16,
    pub dead_interval: u32,
    pub priority: u8,
    pub cost: u16,
    pub auth: AuthSpec,
}

/// The OSPF announcer of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OspfPlan {
    pub router_id: Ipv4Addr,
    pub area: Ipv4Addr,
    pub interfaces: Vec<OspfInterfacePlan>,
    pub announce_as: AnnounceAs,
    pub metric: u32,
}

/// Maps `ospf_announcer`; `None` when the file has none.
pub fn plan(model: &Model, errors: &mut Vec<AssembleError>) -> Option<OspfPlan> {
    let o = model.ospf_announcer.as_ref()?;
    if o.interfaces.is_empty() {
        errors.push(err(
            &o.location,
            "ospf_announcer needs at least one interface".into(),
        ));
        return None;
    }
    Some(OspfPlan {
        router_id: o.router_id,
        area: o.area,
        interfaces: o.interfaces.iter().map(interface).collect(),
        announce_as: match o.announce_as {
            OspfAnnounceAs::Stub => AnnounceAs::Stub,
            OspfAnnounceAs::External => AnnounceAs::External,
        },
        metric: o.metric,
    })
}

fn interface(i: &model::OspfInterface) -> OspfInterfacePlan {
    OspfInterfacePlan {
        name: i.name.clone(),
        hello_interval: i.hello_interval,
        dead_interval: i.dead_interval,
        priority: i.priority,
        cost: i.cost,
        auth: match &i.authentication {
            model::OspfAuth::None => AuthSpec::None,
            model::OspfAuth::Simple(p) => AuthSpec::Simple(p.as_bytes().to_vec()),
            model::OspfAuth::Md5 { key_id, key } => AuthSpec::Md5 {
                key_id: *key_id,
                key: key.as_bytes().to_vec(),
            },
        },
    }
}
