//! `vrrp_instance`, `vrrp_script`, `track_file`, `vrrp_sync_group` and the
//! global `vrrp_*` keys → the vrrp crate's specs. Whatever the vrrp crate
//! cannot do is an [`AssembleError`] at the keyword's location.

use std::net::IpAddr;

use keepalived_parser::model::{self, AuthType, Model, VrrpGlobals};
use keepalived_parser::Location;
use vrrp::driver::Config;
use vrrp::group::SyncGroupSpec;
use vrrp::instance::{
    Auth, GarpSpec, InstanceSpec, NotifySpec, RouteKind, RouteSpec, RuleSpec, VipSpec,
};
use vrrp::track::{FileSpec, ScriptSpec, TrackKind, TrackSpec};
use vrrp::wire::Version;

use super::{err, AssembleError};

/// The VRRP part of a plan (`vrrp::driver::Config` with equality, so
/// reload can tell whether it changed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VrrpPlan {
    pub instances: Vec<InstanceSpec>,
    pub groups: Vec<SyncGroupSpec>,
    pub scripts: Vec<ScriptSpec>,
    pub files: Vec<FileSpec>,
}

impl VrrpPlan {
    /// What the driver runs.
    pub fn config(&self) -> Config {
        Config {
            instances: self.instances.clone(),
            groups: self.groups.clone(),
            scripts: self.scripts.clone(),
            files: self.files.clone(),
        }
    }

    /// Every address a VRRP instance holds (advertised and excluded), with
    /// the instance's name.
    pub fn vips(&self) -> impl Iterator<Item = (IpAddr, &str)> + '_ {
        self.instances.iter().flat_map(|i| {
            i.vips
                .iter()
                .chain(&i.excluded_vips)
                .map(move |v| (v.addr, i.name.as_str()))
        })
    }
}

/// Maps the VRRP blocks; `None` when the file has no `vrrp_instance`.
pub fn plan(
    model: &Model,
    errors: &mut Vec<AssembleError>,
    warnings: &mut Vec<super::AssembleWarning>,
) -> Option<VrrpPlan> {
    if model.vrrp_instances.is_empty() {
        return None;
    }
    let first = &model.vrrp_instances[0].location;
    globals(&model.global_defs.vrrp, first, errors);
    let mut plan = VrrpPlan::default();
    for vi in &model.vrrp_instances {
        if vi.smtp_alert {
            warnings.push(super::ignored(&vi.location, "smtp_alert (email alerts)"));
        }
        if let Some(spec) = instance(model, vi, errors) {
            plan.instances.push(spec);
        }
    }
    for g in &model.vrrp_sync_groups {
        let loc = &g.location;
        notify_unsupported(&g.notify, loc, errors);
        if g.smtp_alert {
            warnings.push(super::ignored(loc, "smtp_alert (email alerts)"));
        }
        plan.groups.push(SyncGroupSpec {
            name: g.name.clone(),
            members: g.instances.clone(),
            tracks: tracks(model, &g.track, loc, errors),
            tracking_weight: g.sync_group_tracking_weight,
        });
    }
    let tracked = |kind: TrackKind, name: &str| {
        plan.instances
            .iter()
            .flat_map(|i| &i.tracks)
            .chain(plan.groups.iter().flat_map(|g| &g.tracks))
            .any(|t| t.kind == kind && t.name == name)
    };
    let mut scripts = Vec::new();
    for s in &model.vrrp_scripts {
        if !tracked(TrackKind::Script, &s.name) {
            continue;
        }
        scripts.push(ScriptSpec {
            name: s.name.clone(),
            command: s.script.argv.clone(),
            interval: s.interval,
            timeout: Some(s.timeout),
            weight: s.weight,
            reverse: s.reverse,
            rise: s.rise,
            fall: s.fall,
            user: s.script.user.clone().map(|u| (u, s.script.group.clone())),
            init_fail: s.init_fail,
        });
    }
    let mut files = Vec::new();
    for f in &model.track_files {
        if !tracked(TrackKind::File, &f.name) {
            continue;
        }
        if f.init_file.is_some() {
            errors.push(err(
                &f.location,
                "init_file is not supported by dpvsd's VRRP yet".into(),
            ));
        }
        files.push(FileSpec {
            name: f.name.clone(),
            path: f.path.clone().into(),
        });
    }
    plan.scripts = scripts;
    plan.files = files;
    Some(plan)
}

fn globals(g: &VrrpGlobals, loc: &Location, errors: &mut Vec<AssembleError>) {
    let d = VrrpGlobals::default();
    let unsupported = [
        (g.mcast_group4 != d.mcast_group4, "vrrp_mcast_group4"),
        (g.mcast_group6 != d.mcast_group6, "vrrp_mcast_group6"),
        (!g.garp_interval.is_zero(), "vrrp_garp_interval"),
        (!g.gna_interval.is_zero(), "vrrp_gna_interval"),
        (g.check_unicast_src, "vrrp_check_unicast_src"),
        (g.strict, "vrrp_strict"),
        (!g.startup_delay.is_zero(), "vrrp_startup_delay"),
        (g.notify_priority_changes, "vrrp_notify_priority_changes"),
    ];
    for (_, what) in unsupported.iter().filter(|(used, _)| *used) {
        errors.push(err(
            loc,
            format!("global_defs {what} is not supported by dpvsd's VRRP yet"),
        ));
    }
}

fn instance(
    model: &Model,
    vi: &model::VrrpInstance,
    errors: &mut Vec<AssembleError>,
) -> Option<InstanceSpec> {
    let loc = &vi.location;
    let before = errors.len();
    let mut no = |what: &str| {
        errors.push(err(
            loc,
            format!(
                "vrrp_instance {}: {what} is not supported by dpvsd yet",
                vi.name
            ),
        ))
    };
    let default_mcast: IpAddr = match vi.virtual_ipaddresses.first().map(|v| v.addr) {
        Some(IpAddr::V6(_)) => IpAddr::V6(model.global_defs.vrrp.mcast_group6),
        _ => IpAddr::V4(model.global_defs.vrrp.mcast_group4),
    };
    let flags = [
        (
            vi.mcast_dst_ip.is_some_and(|a| a != default_mcast),
            "mcast_dst_ip",
        ),
        (vi.unicast_ttl.is_some_and(|t| t != 255), "unicast_ttl"),
        (
            vi.unicast_peers
                .iter()
                .any(|p| p.min_ttl.is_some() || p.max_ttl.is_some()),
            "unicast_peer min_ttl/max_ttl",
        ),
        (vi.dont_track_primary, "dont_track_primary"),
        (vi.use_vmac, "use_vmac"),
        (vi.strict_mode, "strict_mode"),
        (vi.skip_check_adv_addr, "skip_check_adv_addr"),
        (
            vi.garp.lower_prio_delay != vi.garp.master_delay
                || vi.garp.lower_prio_repeat != vi.garp.master_repeat,
            "garp_lower_prio_delay/garp_lower_prio_repeat",
        ),
        (
            vi.authentication
                .as_ref()
                .is_some_and(|a| a.auth_type == AuthType::Ah),
            "auth_type AH",
        ),
        (!vi.track.processes.is_empty(), "track_process"),
        (!vi.track.bfds.is_empty(), "track_bfd"),
    ];
    for (_, what) in flags.iter().filter(|(used, _)| *used) {
        no(what);
    }
    let Some(interface) = vi.interface.clone() else {
        no("an instance without `interface`");
        return None;
    };
    let version = match vi.version {
        2 => Version::V2,
        3 => Version::V3,
        v => {
            no(&format!("version {v}"));
            return None;
        }
    };
    notify_unsupported(&vi.notify, loc, errors);
    let vips = addresses(&vi.virtual_ipaddresses, errors);
    let excluded_vips = addresses(&vi.virtual_ipaddresses_excluded, errors);
    let tracks = tracks(model, &vi.track, loc, errors);
    let routes = routes(&vi.virtual_routes, errors);
    let rules = rules(&vi.virtual_rules, errors);
    if errors.len() > before {
        return None;
    }
    let mut spec = InstanceSpec::new(vi.name.clone(), interface, vi.virtual_router_id);
    spec.version = version;
    spec.priority = vi.priority;
    spec.advert_int = vi.advert_int;
    spec.start_master = vi.state == model::VrrpState::Master;
    spec.preempt = !vi.nopreempt;
    spec.preempt_delay = vi.preempt_delay;
    spec.accept = vi.accept;
    spec.auth = match &vi.authentication {
        Some(a) if version == Version::V2 => Auth::pass(&a.password),
        _ => Auth::None,
    };
    spec.vips = vips;
    spec.excluded_vips = excluded_vips;
    spec.routes = routes;
    spec.rules = rules;
    spec.src_addr = vi.src_ip;
    spec.unicast_peers = vi.unicast_peers.iter().map(|p| p.addr).collect();
    spec.higher_prio_send_advert = vi.higher_prio_send_advert;
    spec.lower_prio_no_advert = vi.lower_prio_no_advert;
    spec.down_timer_adverts = vi.down_timer_adverts;
    spec.garp = GarpSpec {
        master_delay: vi.garp.master_delay,
        master_repeat: vi.garp.master_repeat,
        master_refresh: vi.garp.master_refresh,
        master_refresh_repeat: vi.garp.master_refresh_repeat,
    };
    spec.tracks = tracks;
    spec.notify = NotifySpec {
        master: vi.notify.master.as_ref().map(|s| s.argv.clone()),
        backup: vi.notify.backup.as_ref().map(|s| s.argv.clone()),
        fault: vi.notify.fault.as_ref().map(|s| s.argv.clone()),
        stop: vi.notify.stop.as_ref().map(|s| s.argv.clone()),
        generic: vi.notify.any.as_ref().map(|s| s.argv.clone()),
    };
    Some(spec)
}

/// Notify scripts the vrrp crate cannot run.
fn notify_unsupported(n: &model::VrrpNotify, loc: &Location, errors: &mut Vec<AssembleError>) {
    let scripts = [
        (&n.master, "notify_master"),
        (&n.backup, "notify_backup"),
        (&n.fault, "notify_fault"),
        (&n.stop, "notify_stop"),
        (&n.any, "notify"),
    ];
    for (s, what) in scripts {
        if s.as_ref()
            .is_some_and(|s| s.user.is_some() || s.group.is_some())
        {
            errors.push(err(
                loc,
                format!("{what} with a user/group is not supported by dpvsd yet"),
            ));
        }
    }
    if n.deleted.is_some() {
        errors.push(err(
            loc,
            "notify_deleted is not supported by dpvsd yet".into(),
        ));
    }
    if n.master_rx_lower_pri.is_some() {
        errors.push(err(
            loc,
            "notify_master_rx_lower_pri is not supported by dpvsd yet".into(),
        ));
    }
}

/// A reporter for what a block's line uses that dpvsd cannot do: each call
/// adds an error and clears `ok`.
fn unsupported<'a>(
    errors: &'a mut Vec<AssembleError>,
    loc: &'a Location,
    block: &'a str,
    ok: &'a mut bool,
) -> impl FnMut(&str) + 'a {
    move |what: &str| {
        *ok = false;
        errors.push(err(
            loc,
            format!("{block} {what} is not supported by dpvsd yet"),
        ));
    }
}

/// A routing table by number or by the names every system has; anything
/// else is reported through `no`.
fn table_id(name: Option<&str>, no: &mut dyn FnMut(&str)) -> Option<u32> {
    let id = match name? {
        "main" => Some(254),
        "local" => Some(255),
        "default" => Some(253),
        n => n.parse().ok(),
    };
    if id.is_none() {
        no(&format!(
            "table {} (use its number)",
            name.unwrap_or_default()
        ));
    }
    id
}

/// `virtual_routes`: single-path routes with `via`, `dev`, `src`, `table`,
/// `metric`, `scope` and the types blackhole, unreachable and prohibit.
fn routes(list: &[model::Route], errors: &mut Vec<AssembleError>) -> Vec<RouteSpec> {
    let mut out = Vec::new();
    for r in list {
        let mut ok = true;
        let mut no = unsupported(errors, &r.location, "virtual_routes", &mut ok);
        let kind = match r.route_type.as_deref() {
            None | Some("unicast") => RouteKind::Unicast,
            Some("blackhole") => RouteKind::Blackhole,
            Some("unreachable") => RouteKind::Unreachable,
            Some("prohibit") => RouteKind::Prohibit,
            Some(t) => {
                no(&format!("route type {t}"));
                RouteKind::Unicast
            }
        };
        if !r.nexthops.is_empty() {
            no("nexthop (multipath)");
        }
        if let Some((k, _)) = r.options.first() {
            no(k);
        }
        let table = table_id(r.table.as_deref(), &mut no);
        drop(no);
        if ok {
            out.push(RouteSpec {
                kind,
                dest: r.dest.addr,
                prefix_len: r.dest.len,
                via: r.via,
                dev: r.dev.clone(),
                src: r.src,
                table,
                metric: r.metric,
                scope: r.scope,
            });
        }
    }
    out
}

/// `virtual_rules`: `from`, `to`, `table` and `preference`.
fn rules(list: &[model::Rule], errors: &mut Vec<AssembleError>) -> Vec<RuleSpec> {
    let mut out = Vec::new();
    for r in list {
        let mut ok = true;
        let mut no = unsupported(errors, &r.location, "virtual_rules", &mut ok);
        if let Some((k, _)) = r.options.first() {
            no(k);
        }
        if r.table.is_none() {
            no("without table");
        }
        let table = table_id(r.table.as_deref(), &mut no);
        drop(no);
        let v6 = [r.from, r.to].iter().flatten().any(|p| p.addr.is_ipv6());
        if let (true, Some(table)) = (ok, table) {
            out.push(RuleSpec {
                from: r.from.map(|p| (p.addr, p.len)),
                to: r.to.map(|p| (p.addr, p.len)),
                table,
                preference: r.preference,
                v6,
            });
        }
    }
    out
}

fn addresses(list: &[model::IpAddress], errors: &mut Vec<AssembleError>) -> Vec<VipSpec> {
    let mut out = Vec::new();
    for a in list {
        let loc = &a.location;
        let mut ok = true;
        let mut no = |what: &str| {
            ok = false;
            errors.push(err(
                loc,
                format!("virtual_ipaddress {what} is not supported by dpvsd yet"),
            ));
        };
        if a.peer.is_some() {
            no("peer");
        }
        if a.preferred_lft.is_some() {
            no("preferred_lft");
        }
        if let Some(f) = a.flags.first() {
            no(f);
        }
        let broadcast = match a.brd.as_deref() {
            None => None,
            Some(b) => match b.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    no(&format!("brd {b}"));
                    None
                }
            },
        };
        if !ok {
            continue;
        }
        let mut v = VipSpec::new(a.addr);
        v.prefix_len = a.prefix_len;
        v.dev = a.dev.clone();
        v.label = a.label.clone();
        v.scope = a.scope;
        v.broadcast = broadcast;
        out.push(v);
    }
    out
}

/// `track_interface`/`track_script`/`track_file` lines with keepalived's
/// weight resolution (the line's weight, else the object's own).
fn tracks(
    model: &Model,
    t: &model::VrrpTrackers,
    loc: &Location,
    errors: &mut Vec<AssembleError>,
) -> Vec<TrackSpec> {
    let mut out = Vec::new();
    for i in &t.interfaces {
        out.push(TrackSpec {
            kind: TrackKind::Interface,
            name: i.name.clone(),
            weight: i.weight.unwrap_or(0),
            reverse: i.reverse,
        });
    }
    for s in &t.scripts {
        let Some(script) = model.vrrp_scripts.iter().find(|x| x.name == s.name) else {
            errors.push(err(
                loc,
                format!("track_script {}: no such vrrp_script", s.name),
            ));
            continue;
        };
        let (weight, reverse) = match s.weight {
            Some(w) => (w, s.reverse),
            None => (script.weight, script.reverse),
        };
        out.push(TrackSpec {
            kind: TrackKind::Script,
            name: s.name.clone(),
            weight,
            reverse,
        });
    }
    for f in &t.files {
        let Some(file) = model.track_files.iter().find(|x| x.name == f.name) else {
            errors.push(err(
                loc,
                format!("track_file {}: no such track_file", f.name),
            ));
            continue;
        };
        let (weight, reverse) = match f.weight {
            Some(w) => (w, f.reverse),
            None => (file.weight, file.reverse),
        };
        out.push(TrackSpec {
            kind: TrackKind::File,
            name: f.name.clone(),
            weight,
            reverse,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::assemble::assemble;
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;
    use std::time::Duration;
    use vrrp::instance::Auth;
    use vrrp::track::TrackKind;

    fn load(text: &str) -> keepalived_parser::model::Model {
        let loaded = load_str(
            text,
            Path::new("t.conf"),
            &LoadOptions {
                config_id: Some("x".into()),
            },
        );
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        loaded.model
    }

    const FULL: &str = "global_defs {\n  enable_script_security\n  script_user root\n}\nvrrp_script chk {\n  script \"/bin/true\"\n  interval 2\n  weight -20\n  fall 3\n}\n\
        track_file tf {\n  file /tmp/x\n  weight 5\n}\n\
        vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 120\n\
        \x20 nopreempt\n  authentication {\n    auth_type PASS\n    auth_pass secret\n  }\n\
        \x20 unicast_peer {\n    10.0.0.9\n  }\n  virtual_ipaddress {\n    10.0.0.1/24 dev eth1 label eth1:vip\n  }\n\
        \x20 virtual_ipaddress_excluded {\n    10.0.0.2\n  }\n\
        \x20 track_script {\n    chk\n  }\n  track_file {\n    tf weight 2\n  }\n  track_interface {\n    eth1\n  }\n\
        \x20 notify_master \"/bin/echo master\"\n}\n\
        vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 52\n  virtual_ipaddress {\n    10.0.0.3\n  }\n}\n\
        vrrp_sync_group G {\n  group {\n    VI_1\n    VI_2\n  }\n}\n";

    #[test]
    fn virtual_routes_and_rules_map_onto_the_vrrp_crate() {
        let conf = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n\
            \x20 virtual_ipaddress {\n    10.0.0.1/24\n  }\n  virtual_routes {\n\
            \x20   10.1.0.0/16 via 10.0.0.254 metric 5\n    src 10.0.0.1 10.2.0.0/16 dev eth0 table 100\n\
            \x20   blackhole 10.3.0.0/16\n  }\n  virtual_rules {\n\
            \x20   from 10.0.0.1/32 table 100 priority 200\n  }\n}\n";
        let plan = assemble(&load(conf)).expect("assemble");
        let i = &plan.vrrp.expect("vrrp plan").instances[0];
        use std::net::IpAddr;
        use vrrp::instance::{RouteKind, RuleSpec};
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(i.routes.len(), 3, "{:?}", i.routes);
        assert_eq!(
            (i.routes[0].dest, i.routes[0].via, i.routes[0].metric),
            (ip("10.1.0.0"), Some(ip("10.0.0.254")), Some(5))
        );
        assert_eq!(
            (
                i.routes[1].src,
                i.routes[1].dev.as_deref(),
                i.routes[1].table
            ),
            (Some(ip("10.0.0.1")), Some("eth0"), Some(100))
        );
        assert_eq!(i.routes[2].kind, RouteKind::Blackhole);
        assert_eq!(
            i.rules,
            vec![RuleSpec {
                from: Some((ip("10.0.0.1"), 32)),
                to: None,
                table: 100,
                preference: 200,
                v6: false,
            }]
        );
    }

    #[test]
    fn instances_scripts_files_and_groups_map_onto_the_vrrp_crate() {
        let plan = assemble(&load(FULL)).expect("assemble");
        let v = plan.vrrp.expect("vrrp plan");
        assert_eq!(v.instances.len(), 2);
        let i = &v.instances[0];
        assert_eq!((i.name.as_str(), i.vrid, i.priority), ("VI_1", 51, 120));
        assert!(!i.start_master && !i.preempt);
        assert_eq!(i.auth, Auth::pass("secret"));
        assert_eq!(
            i.unicast_peers,
            vec!["10.0.0.9".parse::<std::net::IpAddr>().expect("ip")]
        );
        assert_eq!(i.vips[0].prefix_len, 24);
        assert_eq!(i.vips[0].dev.as_deref(), Some("eth1"));
        assert_eq!(i.vips[0].label.as_deref(), Some("eth1:vip"));
        assert_eq!(i.excluded_vips.len(), 1);
        let weights: Vec<(TrackKind, &str, i32)> = i
            .tracks
            .iter()
            .map(|t| (t.kind, t.name.as_str(), t.weight))
            .collect();
        assert!(
            weights.contains(&(TrackKind::Script, "chk", -20)),
            "{weights:?}"
        );
        assert!(weights.contains(&(TrackKind::File, "tf", 2)), "{weights:?}");
        assert!(
            weights.contains(&(TrackKind::Interface, "eth1", 0)),
            "{weights:?}"
        );
        assert_eq!(
            i.notify.master,
            Some(vec!["/bin/echo".to_string(), "master".to_string()])
        );
        assert_eq!(v.scripts.len(), 1);
        assert_eq!(v.scripts[0].interval, Duration::from_secs(2));
        assert_eq!(v.scripts[0].fall, 3);
        assert_eq!(v.files.len(), 1);
        assert_eq!(v.groups.len(), 1);
        assert_eq!(v.groups[0].members, vec!["VI_1", "VI_2"]);
    }

    #[test]
    fn what_the_vrrp_crate_cannot_do_is_an_error_with_its_location() {
        let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  use_vmac\n\
            \x20 virtual_ipaddress {\n    10.0.0.1\n  }\n  virtual_routes {\n    10.1.0.0/16 via 10.0.0.254 table mytable\n  }\n}\n";
        let errors = assemble(&load(text)).expect_err("unsupported");
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("t.conf:1:1: error:") && l.contains("use_vmac")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("virtual_routes")),
            "{lines:?}"
        );
    }
}
