//! `diff`: what changed between two models, keyed by stable identities
//! (virtual server address:port:protocol / fwmark / group / match name; real
//! server address:port within its virtual server; VRRP instance, sync group,
//! script, address-group, vrrp_track_process and bfd_instance names).
//!
//! Invariant: an item is in exactly one of added / removed / changed, and
//! `changed` names the fields that differ (locations never count).

use std::net::IpAddr;

use crate::dump::without_locations;
use crate::model::{Model, Protocol, RealServer, VirtualServer, VrrpInstance};

/// The stable identity of a virtual server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VsKey {
    Addr {
        addr: IpAddr,
        port: u16,
        protocol: Protocol,
    },
    Fwmark(u32),
    Group(String),
    Match(String),
}

impl VsKey {
    pub fn of(vs: &VirtualServer) -> VsKey {
        if let Some(f) = vs.fwmark {
            VsKey::Fwmark(f)
        } else if let Some(g) = &vs.group {
            VsKey::Group(g.clone())
        } else if let Some(m) = &vs.match_name {
            VsKey::Match(m.clone())
        } else {
            VsKey::Addr {
                addr: vs.addr,
                port: vs.port,
                protocol: vs.protocol,
            }
        }
    }
}

/// What a change is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    GlobalDefs,
    LocalAddressGroup(String),
    VirtualServerGroup(String),
    VirtualServer(VsKey),
    RealServer {
        vs: VsKey,
        addr: IpAddr,
        port: u16,
    },
    VrrpInstance(String),
    VrrpSyncGroup(String),
    VrrpScript(String),
    TrackFile(String),
    StaticAddressing,
    OspfAnnouncer,
    /// `vrrp_track_process NAME`.
    VrrpTrackProcess(String),
    /// `bfd_instance NAME`.
    BfdInstance(String),
    /// The `garp_group` blocks (they have no names).
    GarpGroups,
    /// The top-level `SSL` block.
    Ssl,
    /// The top-level keywords dpvsd keeps but does not implement.
    IgnoredKeywords,
}

/// A changed item and the names of the fields that differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub item: Item,
    pub fields: Vec<&'static str>,
}

/// The difference between two models.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    pub added: Vec<Item>,
    pub removed: Vec<Item>,
    pub changed: Vec<Change>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Field names whose values differ, from `(name, equal)` pairs.
fn differing(pairs: &[(&'static str, bool)]) -> Vec<&'static str> {
    pairs
        .iter()
        .filter(|(_, eq)| !eq)
        .map(|(n, _)| *n)
        .collect()
}

fn vs_fields(a: &VirtualServer, b: &VirtualServer) -> Vec<&'static str> {
    differing(&[
        ("protocol", a.protocol == b.protocol),
        ("lb_algo", a.lb_algo == b.lb_algo),
        ("lb_kind", a.lb_kind == b.lb_kind),
        ("delay_loop", a.delay_loop == b.delay_loop),
        ("laddr_group_name", a.laddr_group_name == b.laddr_group_name),
        (
            "persistence_timeout",
            a.persistence_timeout == b.persistence_timeout,
        ),
        (
            "persistence_granularity",
            a.persistence_granularity == b.persistence_granularity,
        ),
        ("virtualhost", a.virtualhost == b.virtualhost),
        ("alpha", a.alpha == b.alpha),
        ("omega", a.omega == b.omega),
        ("quorum", a.quorum == b.quorum),
        ("hysteresis", a.hysteresis == b.hysteresis),
        ("quorum_up", a.quorum_up == b.quorum_up),
        ("quorum_down", a.quorum_down == b.quorum_down),
        ("sorry_server", a.sorry_server == b.sorry_server),
        ("ha_suspend", a.ha_suspend == b.ha_suspend),
        ("dpvs", a.dpvs == b.dpvs),
        ("ignored", a.ignored == b.ignored),
    ])
}

fn rs_fields(a: &RealServer, b: &RealServer) -> Vec<&'static str> {
    differing(&[
        ("weight", a.weight == b.weight),
        (
            "inhibit_on_failure",
            a.inhibit_on_failure == b.inhibit_on_failure,
        ),
        ("notify_up", a.notify_up == b.notify_up),
        ("notify_down", a.notify_down == b.notify_down),
        ("checkers", a.checkers == b.checkers),
        ("bfd_checks", a.bfd_checks == b.bfd_checks),
        ("ignored", a.ignored == b.ignored),
    ])
}

fn vrrp_fields(a: &VrrpInstance, b: &VrrpInstance) -> Vec<&'static str> {
    differing(&[
        ("state", a.state == b.state),
        ("interface", a.interface == b.interface),
        ("dpdk_interface", a.dpdk_interface == b.dpdk_interface),
        (
            "virtual_router_id",
            a.virtual_router_id == b.virtual_router_id,
        ),
        ("priority", a.priority == b.priority),
        ("advert_int", a.advert_int == b.advert_int),
        ("version", a.version == b.version),
        ("src_ip", a.src_ip == b.src_ip),
        ("mcast_dst_ip", a.mcast_dst_ip == b.mcast_dst_ip),
        ("unicast_peers", a.unicast_peers == b.unicast_peers),
        ("unicast_ttl", a.unicast_ttl == b.unicast_ttl),
        (
            "dont_track_primary",
            a.dont_track_primary == b.dont_track_primary,
        ),
        ("use_vmac", a.use_vmac == b.use_vmac),
        (
            "virtual_ipaddress",
            a.virtual_ipaddresses == b.virtual_ipaddresses,
        ),
        (
            "virtual_ipaddress_excluded",
            a.virtual_ipaddresses_excluded == b.virtual_ipaddresses_excluded,
        ),
        ("virtual_routes", a.virtual_routes == b.virtual_routes),
        ("virtual_rules", a.virtual_rules == b.virtual_rules),
        ("track", a.track == b.track),
        ("nopreempt", a.nopreempt == b.nopreempt),
        ("preempt_delay", a.preempt_delay == b.preempt_delay),
        ("accept", a.accept == b.accept),
        ("strict_mode", a.strict_mode == b.strict_mode),
        (
            "skip_check_adv_addr",
            a.skip_check_adv_addr == b.skip_check_adv_addr,
        ),
        ("authentication", a.authentication == b.authentication),
        ("garp", a.garp == b.garp),
        (
            "down_timer_adverts",
            a.down_timer_adverts == b.down_timer_adverts,
        ),
        (
            "lower_prio_no_advert",
            a.lower_prio_no_advert == b.lower_prio_no_advert,
        ),
        (
            "higher_prio_send_advert",
            a.higher_prio_send_advert == b.higher_prio_send_advert,
        ),
        ("notify", a.notify == b.notify),
        ("smtp_alert", a.smtp_alert == b.smtp_alert),
        ("ignored", a.ignored == b.ignored),
    ])
}

/// Matches two keyed lists: added, removed, and changed (with `fields`).
fn keyed<T, K: PartialEq + Clone>(
    cs: &mut ChangeSet,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> K,
    item: impl Fn(K) -> Item,
    fields: impl Fn(&T, &T) -> Vec<&'static str>,
) {
    for o in old {
        if !new.iter().any(|n| key(n) == key(o)) {
            cs.removed.push(item(key(o)));
        }
    }
    for n in new {
        match old.iter().find(|o| key(o) == key(n)) {
            None => cs.added.push(item(key(n))),
            Some(o) => {
                let f = fields(o, n);
                if !f.is_empty() {
                    cs.changed.push(Change {
                        item: item(key(n)),
                        fields: f,
                    });
                }
            }
        }
    }
}

/// Whole-item equality as a one-field change list.
fn whole<T: PartialEq>(a: &T, b: &T) -> Vec<&'static str> {
    if a == b {
        Vec::new()
    } else {
        vec!["definition"]
    }
}

/// What changed from `old` to `new`.
pub fn diff(old: &Model, new: &Model) -> ChangeSet {
    let old = without_locations(old);
    let new = without_locations(new);
    let mut cs = ChangeSet::default();
    if old.global_defs != new.global_defs {
        cs.changed.push(Change {
            item: Item::GlobalDefs,
            fields: vec!["global_defs"],
        });
    }
    keyed(
        &mut cs,
        &old.local_address_groups,
        &new.local_address_groups,
        |g| g.name.clone(),
        Item::LocalAddressGroup,
        |a, b| whole(&a.addresses, &b.addresses),
    );
    keyed(
        &mut cs,
        &old.virtual_server_groups,
        &new.virtual_server_groups,
        |g| g.name.clone(),
        Item::VirtualServerGroup,
        |a, b| whole(&a.entries, &b.entries),
    );
    keyed(
        &mut cs,
        &old.track_files,
        &new.track_files,
        |t| t.name.clone(),
        Item::TrackFile,
        whole,
    );
    keyed(
        &mut cs,
        &old.vrrp_scripts,
        &new.vrrp_scripts,
        |s| s.name.clone(),
        Item::VrrpScript,
        whole,
    );
    keyed(
        &mut cs,
        &old.virtual_servers,
        &new.virtual_servers,
        VsKey::of,
        Item::VirtualServer,
        vs_fields,
    );
    for n in &new.virtual_servers {
        let key = VsKey::of(n);
        if let Some(o) = old.virtual_servers.iter().find(|o| VsKey::of(o) == key) {
            keyed(
                &mut cs,
                &o.real_servers,
                &n.real_servers,
                |r| (r.addr, r.port),
                |(addr, port)| Item::RealServer {
                    vs: key.clone(),
                    addr,
                    port,
                },
                rs_fields,
            );
        }
    }
    keyed(
        &mut cs,
        &old.vrrp_instances,
        &new.vrrp_instances,
        |i| i.name.clone(),
        Item::VrrpInstance,
        vrrp_fields,
    );
    keyed(
        &mut cs,
        &old.vrrp_sync_groups,
        &new.vrrp_sync_groups,
        |g| g.name.clone(),
        Item::VrrpSyncGroup,
        whole,
    );
    if (
        &old.static_ipaddresses,
        &old.static_routes,
        &old.static_rules,
    ) != (
        &new.static_ipaddresses,
        &new.static_routes,
        &new.static_rules,
    ) {
        cs.changed.push(Change {
            item: Item::StaticAddressing,
            fields: vec!["static"],
        });
    }
    keyed(
        &mut cs,
        &old.vrrp_track_processes,
        &new.vrrp_track_processes,
        |t| t.name.clone(),
        Item::VrrpTrackProcess,
        whole,
    );
    keyed(
        &mut cs,
        &old.bfd_instances,
        &new.bfd_instances,
        |b| b.name.clone(),
        Item::BfdInstance,
        whole,
    );
    for (item, same) in [
        (Item::GarpGroups, old.garp_groups == new.garp_groups),
        (Item::IgnoredKeywords, old.ignored == new.ignored),
    ] {
        if !same {
            cs.changed.push(Change {
                item,
                fields: vec!["definition"],
            });
        }
    }
    match (&old.ssl, &new.ssl) {
        (None, Some(_)) => cs.added.push(Item::Ssl),
        (Some(_), None) => cs.removed.push(Item::Ssl),
        (Some(a), Some(b)) if a != b => cs.changed.push(Change {
            item: Item::Ssl,
            fields: vec!["definition"],
        }),
        _ => {}
    }
    match (&old.ospf_announcer, &new.ospf_announcer) {
        (None, Some(_)) => cs.added.push(Item::OspfAnnouncer),
        (Some(_), None) => cs.removed.push(Item::OspfAnnouncer),
        (Some(a), Some(b)) if a != b => cs.changed.push(Change {
            item: Item::OspfAnnouncer,
            fields: vec!["definition"],
        }),
        _ => {}
    }
    cs
}
