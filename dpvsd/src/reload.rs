//! Reload as a diff of plans: `diff(old, new)` is pure and says, per stable
//! identity (service key; real server address within its service), what was
//! added, removed or changed. The daemon turns it into dataplane
//! [`dataplane::Command`]s and health-checker updates, so unchanged services
//! and servers are never touched: their connections and health state
//! survive.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use dataplane::{Device, ServiceKey};

use crate::assemble::{Plan, ServerPlan, ServicePlan, VrrpPlan};

/// What changed about one real server that exists in both plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChange {
    pub addr: SocketAddr,
    pub weight: Option<(u32, u32)>,
    pub inhibit: Option<(bool, bool)>,
    /// The checkers differ: the server's health checking restarts.
    pub checks: bool,
}

/// The changes of one service present in both plans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceChanges {
    /// Scheduler, forwarding method or local addresses differ.
    pub spec_changed: bool,
    pub added: Vec<ServerPlan>,
    pub removed: Vec<SocketAddr>,
    pub changed: Vec<ServerChange>,
}

impl ServiceChanges {
    pub fn is_empty(&self) -> bool {
        !self.spec_changed
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }
}

/// The difference between two plans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanDiff {
    pub added: Vec<ServicePlan>,
    pub removed: Vec<ServiceKey>,
    pub changed: BTreeMap<ServiceKey, ServiceChanges>,
    /// The VRRP part changed: the driver restarts (what changed, for the log).
    pub vrrp: Option<String>,
    /// The OSPF announcer changed: it restarts.
    pub ospf: Option<String>,
    /// VIPs and local addresses whose device (port, 802.1Q VLAN) binding
    /// changed, with the new device (the default: bound to none any more),
    /// sorted by address.
    pub devices: Vec<(IpAddr, Device)>,
}

impl PlanDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.vrrp.is_none()
            && self.ospf.is_none()
            && self.devices.is_empty()
    }

    /// One human-readable line per change (for logs and `dpvsctl reload --dry-run`).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.added {
            out.push(format!(
                "add service {} ({} real servers)",
                s.spec.key,
                s.servers.len()
            ));
        }
        for k in &self.removed {
            out.push(format!("remove service {k}"));
        }
        for (k, c) in &self.changed {
            if c.spec_changed {
                out.push(format!(
                    "change service {k}: scheduler/forwarding/local addresses/protection/connection options"
                ));
            }
            for s in &c.added {
                out.push(format!(
                    "add real server {} to {k} (weight {})",
                    s.spec.addr, s.spec.weight
                ));
            }
            for a in &c.removed {
                out.push(format!("remove real server {a} from {k}"));
            }
            for ch in &c.changed {
                out.push(format!("change real server {} of {k}: {ch}", ch.addr));
            }
        }
        for (addr, device) in &self.devices {
            out.push(if *device == Device::default() {
                format!("unbind {addr} from its device")
            } else {
                format!("bind {addr} to {device}")
            });
        }
        if let Some(v) = &self.vrrp {
            out.push(format!("restart VRRP: {v}"));
        }
        if let Some(o) = &self.ospf {
            out.push(format!("restart OSPF announcer: {o}"));
        }
        out
    }
}

impl fmt::Display for ServerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some((a, b)) = self.weight {
            parts.push(format!("weight {a} -> {b}"));
        }
        if let Some((a, b)) = self.inhibit {
            parts.push(format!("inhibit_on_failure {a} -> {b}"));
        }
        if self.checks {
            parts.push("checkers changed".to_string());
        }
        f.write_str(&parts.join(", "))
    }
}

fn server_changes(old: &ServicePlan, new: &ServicePlan) -> ServiceChanges {
    let old_by: BTreeMap<_, _> = old.servers.iter().map(|s| (s.spec.addr, s)).collect();
    let new_by: BTreeMap<_, _> = new.servers.iter().map(|s| (s.spec.addr, s)).collect();
    let mut c = ServiceChanges {
        spec_changed: old.spec != new.spec,
        ..Default::default()
    };
    for (addr, n) in &new_by {
        match old_by.get(addr) {
            None => c.added.push((*n).clone()),
            Some(o) => {
                let ch = ServerChange {
                    addr: *addr,
                    weight: (o.spec.weight != n.spec.weight)
                        .then_some((o.spec.weight, n.spec.weight)),
                    inhibit: (o.inhibit_on_failure != n.inhibit_on_failure)
                        .then_some((o.inhibit_on_failure, n.inhibit_on_failure)),
                    checks: o.subject.checks != n.subject.checks,
                };
                if ch.weight.is_some() || ch.inhibit.is_some() || ch.checks {
                    c.changed.push(ch);
                }
            }
        }
    }
    c.removed = old_by
        .keys()
        .filter(|a| !new_by.contains_key(a))
        .copied()
        .collect();
    c
}

/// The changes that turn `old` into `new`.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let old_by: BTreeMap<_, _> = old.services.iter().map(|s| (s.spec.key, s)).collect();
    let new_by: BTreeMap<_, _> = new.services.iter().map(|s| (s.spec.key, s)).collect();
    let mut d = PlanDiff::default();
    for s in &new.services {
        match old_by.get(&s.spec.key) {
            None => d.added.push(s.clone()),
            Some(o) => {
                let c = server_changes(o, s);
                if !c.is_empty() {
                    d.changed.insert(s.spec.key, c);
                }
            }
        }
    }
    d.removed = old
        .services
        .iter()
        .map(|s| s.spec.key)
        .filter(|k| !new_by.contains_key(k))
        .collect();
    d.devices = device_changes(old, new);
    d.vrrp = vrrp_change(old.vrrp.as_ref(), new.vrrp.as_ref());
    d.ospf = match (&old.ospf, &new.ospf) {
        (a, b) if a == b => None,
        (None, Some(_)) => Some("ospf_announcer added".into()),
        (Some(_), None) => Some("ospf_announcer removed".into()),
        _ => Some("ospf_announcer changed".into()),
    };
    d
}

/// Every address's device binding in `plan` (as the daemon installs them:
/// service by service, a later service's binding of the same address wins).
fn device_map(plan: &Plan) -> BTreeMap<IpAddr, Device> {
    plan.services
        .iter()
        .flat_map(|s| s.devices.iter().copied())
        .collect()
}

/// The device bindings that differ between `old` and `new`: the new
/// device, the default where a binding went away (the dataplane would
/// keep it otherwise).
fn device_changes(old: &Plan, new: &Plan) -> Vec<(IpAddr, Device)> {
    let (o, n) = (device_map(old), device_map(new));
    let mut out: Vec<(IpAddr, Device)> = n
        .iter()
        .filter(|(a, v)| o.get(*a) != Some(*v))
        .map(|(&a, &v)| (a, v))
        .collect();
    out.extend(
        o.keys()
            .filter(|a| !n.contains_key(*a))
            .map(|&a| (a, Device::default())),
    );
    out.sort_unstable();
    out
}

/// What differs between two VRRP plans, or `None` when they are equal.
fn vrrp_change(old: Option<&VrrpPlan>, new: Option<&VrrpPlan>) -> Option<String> {
    if old == new {
        return None;
    }
    let empty = VrrpPlan::default();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let by = |p: &VrrpPlan| -> BTreeMap<String, vrrp::instance::InstanceSpec> {
        p.instances
            .iter()
            .map(|i| (i.name.clone(), i.clone()))
            .collect()
    };
    let (o, n) = (by(old), by(new));
    let mut parts = Vec::new();
    for (name, spec) in &n {
        match o.get(name) {
            None => parts.push(format!("instance {name} added")),
            Some(x) if x != spec => parts.push(format!("instance {name} changed")),
            Some(_) => {}
        }
    }
    parts.extend(
        o.keys()
            .filter(|k| !n.contains_key(*k))
            .map(|k| format!("instance {k} removed")),
    );
    if old.groups != new.groups {
        parts.push("sync groups changed".into());
    }
    if old.scripts != new.scripts || old.files != new.files {
        parts.push("vrrp_script/track_file changed".into());
    }
    if parts.is_empty() {
        parts.push("instance order changed".into());
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::assemble;
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;

    fn plan(text: &str) -> Plan {
        let loaded = load_str(
            text,
            Path::new("t.conf"),
            &LoadOptions {
                config_id: Some("x".into()),
            },
        );
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        assemble(&loaded.model).expect("assemble")
    }

    /// (real server address, weight, connect_timeout)
    type Rs<'a> = (&'a str, u32, u32);

    fn conf(vs: &[(&str, &[Rs])]) -> String {
        let mut s = String::from("local_address_group l {\n  10.0.0.200 eth0\n}\n");
        for (vip, servers) in vs {
            s.push_str(&format!(
                "virtual_server {vip} 80 {{\n  lb_algo wrr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n"
            ));
            for (ip, w, timeout) in *servers {
                s.push_str(&format!(
                    "  real_server {ip} 8080 {{\n    weight {w}\n    TCP_CHECK {{\n      connect_timeout {timeout}\n    }}\n  }}\n"
                ));
            }
            s.push_str("}\n");
        }
        s
    }

    #[test]
    fn vlan_bindings_that_change_or_go_away_are_in_the_diff() {
        let vs = |vip: &str, bind: &str| {
            format!(
                "virtual_server {vip} 80 {{\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n{bind}  real_server 10.0.0.2 8080 {{\n  }}\n}}\n"
            )
        };
        let group = |dev: &str| format!("local_address_group l {{\n  10.0.0.200 {dev}\n}}\n");
        let bound = "  vip_bind_dev dpdk0.100\n";
        let a = plan(&format!(
            "{}{}{}",
            group("dpdk0.200"),
            vs("10.0.0.1", bound),
            vs("10.0.0.9", bound)
        ));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        // Same file: nothing.
        assert!(diff(&a, &a.clone()).is_empty());
        // 10.0.0.1 loses vip_bind_dev, 10.0.0.9 is removed, the local
        // address moves to VLAN 300.
        let b = plan(&format!("{}{}", group("dpdk0.300"), vs("10.0.0.1", "")));
        let d = diff(&a, &b);
        let vlan = |vlan| Device { port: 0, vlan };
        assert_eq!(
            d.devices,
            [
                (ip("10.0.0.1"), vlan(0)),
                (ip("10.0.0.9"), vlan(0)),
                (ip("10.0.0.200"), vlan(300))
            ]
        );
        assert!(d
            .lines()
            .contains(&"unbind 10.0.0.1 from its device".to_string()));
        assert!(d
            .lines()
            .contains(&"bind 10.0.0.200 to dpdk0.300".to_string()));
        // Only the binding changed: still a change to apply.
        let c = plan(&format!("{}{}", group("dpdk0.300"), vs("10.0.0.1", bound)));
        let d = diff(&b, &c);
        assert!(!d.is_empty());
        assert_eq!(d.devices, [(ip("10.0.0.1"), vlan(100))]);
        assert!(d.changed.is_empty() && d.added.is_empty());
    }

    #[test]
    fn identical_plans_have_no_changes_even_reordered() {
        let a = plan(&conf(&[
            ("10.0.0.1", &[("10.0.0.2", 1, 3), ("10.0.0.3", 2, 3)]),
            ("10.0.0.9", &[("10.0.0.2", 1, 3)]),
        ]));
        let b = plan(&conf(&[
            ("10.0.0.9", &[("10.0.0.2", 1, 3)]),
            ("10.0.0.1", &[("10.0.0.3", 2, 3), ("10.0.0.2", 1, 3)]),
        ]));
        let d = diff(&a, &b);
        assert!(d.is_empty(), "{:?}", d.lines());
    }

    #[test]
    fn weight_checker_add_remove_are_keyed_by_identity() {
        let a = plan(&conf(&[
            ("10.0.0.1", &[("10.0.0.2", 1, 3), ("10.0.0.3", 2, 3)]),
            ("10.0.0.9", &[("10.0.0.2", 1, 3)]),
        ]));
        let b = plan(&conf(&[
            (
                "10.0.0.1",
                &[("10.0.0.2", 5, 3), ("10.0.0.4", 1, 3), ("10.0.0.3", 2, 4)],
            ),
            ("10.0.0.8", &[("10.0.0.2", 1, 3)]),
        ]));
        let d = diff(&a, &b);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].spec.key.addr.to_string(), "10.0.0.8");
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].addr.to_string(), "10.0.0.9");
        let c = d.changed.values().next().expect("one changed service");
        assert!(!c.spec_changed);
        assert_eq!(c.added.len(), 1);
        assert!(c.removed.is_empty());
        let by: BTreeMap<String, &ServerChange> = c
            .changed
            .iter()
            .map(|x| (x.addr.ip().to_string(), x))
            .collect();
        assert_eq!(by["10.0.0.2"].weight, Some((1, 5)));
        assert!(!by["10.0.0.2"].checks);
        assert!(by["10.0.0.3"].checks && by["10.0.0.3"].weight.is_none());
        assert_eq!(d.lines().len(), 5);
    }

    const VI: &str = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority 100\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n";

    #[test]
    fn vrrp_changes_restart_the_driver_and_say_so() {
        let base = conf(&[("10.0.0.1", &[("10.0.0.2", 1, 3)])]);
        let a = plan(&format!("{base}{VI}"));
        assert!(a.vrrp.is_some());
        let same = diff(&a, &plan(&format!("{base}{VI}")));
        assert!(same.is_empty(), "{:?}", same.lines());
        let b = plan(&format!(
            "{base}{}",
            VI.replace("priority 100", "priority 90")
        ));
        let d = diff(&a, &b);
        assert_eq!(d.lines(), vec!["restart VRRP: instance VI_1 changed"]);
        let d = diff(&a, &plan(&base));
        assert_eq!(d.lines(), vec!["restart VRRP: instance VI_1 removed"]);
    }

    #[test]
    fn scheduler_change_is_a_spec_change() {
        let a = plan(&conf(&[("10.0.0.1", &[("10.0.0.2", 1, 3)])]));
        let b = plan(
            &conf(&[("10.0.0.1", &[("10.0.0.2", 1, 3)])]).replace("lb_algo wrr", "lb_algo rr"),
        );
        let d = diff(&a, &b);
        assert!(d
            .changed
            .values()
            .all(|c| c.spec_changed && c.changed.is_empty()));
        assert_eq!(d.changed.len(), 1);
    }
}
