//! VRRP lowering: `global_defs` VRRP keys, `vrrp_script`, `track_file`,
//! `vrrp_instance`, `vrrp_sync_group`, `static_*` (KEEPALIVED.md §3–§6),
//! and dpvsd's `ospf_announcer` (issue 8).
//!
//! Invariant: instances hold the effective values of §6.3 (priority/state
//! derivation, strict mode, AH, nopreempt, accept mode); every fix-up has
//! a diagnostic with keepalived's wording.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use super::{Level, Lowerer, Node};
use crate::ast::Stmt;
use crate::diag::{DiagClass, Location, Severity};
use crate::model::{
    AuthType, GarpSettings, IpAddress, Nexthop, OspfAnnounceAs, OspfAnnouncer, OspfAuth,
    OspfInterface, Prefix, Route, Rule, Script, TrackFile, Tracked, UnicastPeer, VrrpAuth,
    VrrpInstance, VrrpNotify, VrrpScript, VrrpState, VrrpSyncGroup, VrrpTrackers,
};
use crate::preprocess::Tok;
use crate::values;

/// The `global_defs` VRRP keys lowered here.
pub(super) const GLOBAL_VRRP: &[&str] = &[
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "default_interface",
    "vrrp_version",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "vrrp_min_garp",
    "vrrp_down_timer_adverts",
    "vrrp_lower_prio_no_advert",
    "vrrp_higher_prio_send_advert",
    "vrrp_check_unicast_src",
    "vrrp_skip_check_adv_addr",
    "vrrp_strict",
    "vrrp_startup_delay",
    "vrrp_notify_priority_changes",
];

/// Leaf keywords of `vrrp_instance`.
pub(super) const INSTANCE_LEAVES: &[&str] = &[
    "state",
    "interface",
    "dpdk_interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "version",
    "mcast_src_ip",
    "unicast_src_ip",
    "mcast_dst_ip",
    "unicast_ttl",
    "dont_track_primary",
    "use_vmac",
    "nopreempt",
    "preempt",
    "preempt_delay",
    "accept",
    "no_accept",
    "strict_mode",
    "skip_check_adv_addr",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "down_timer_adverts",
    "lower_prio_no_advert",
    "higher_prio_send_advert",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify_deleted",
    "notify",
    "notify_master_rx_lower_pri",
    "smtp_alert",
];

/// `vrrp_instance` keywords keepalived knows that dpvsd does not implement.
pub(super) const INSTANCE_UNSUPPORTED: &[&str] = &[
    "vrf",
    "native_ipv6",
    "track_src_ip",
    "unicast_fault_no_peer",
    "check_unicast_src",
    "old_unicast_checksum",
    "v3_checksum_as_v2",
    "no_virtual_ipaddress",
    "promote_secondaries",
    "auth_hmac",
    "use_vmac_addr",
    "vmac_xmit_base",
    "use_ipvlan",
    "garp_extra_if",
    "vmac_garp_intvl",
    "timer_expired_backup",
    "thread_timer_expired",
    "owner_ignore_adverts",
    "notify_priority_changes",
    "debug",
    "kernel_rx_buf_size",
    "linkbeat_use_polling",
    "lvs_sync_daemon_interface",
];

/// Value blocks of `vrrp_instance`.
pub(super) const INSTANCE_VALUES: &[&str] = &[
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "virtual_routes",
    "virtual_rules",
    "unicast_peer",
    "track_interface",
    "track_script",
    "track_file",
    "track_process",
    "track_bfd",
];

pub(super) const SCRIPT_LEAVES: &[&str] = &[
    "script",
    "interval",
    "timeout",
    "weight",
    "rise",
    "fall",
    "user",
    "init_fail",
];

pub(super) const SYNC_LEAVES: &[&str] = &[
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify_deleted",
    "notify",
    "smtp_alert",
    "sync_group_tracking_weight",
];

pub(super) const SYNC_UNSUPPORTED: &[&str] = &["global_tracking", "notify_priority_changes"];

pub(super) const SYNC_VALUES: &[&str] = &[
    "group",
    "track_interface",
    "track_script",
    "track_file",
    "track_process",
    "track_bfd",
];

pub(super) const TRACK_FILE_LEAVES: &[&str] = &["file", "weight", "init_file"];

pub(super) const OSPF_LEAVES: &[&str] = &["router_id", "area", "announce_as", "metric"];

pub(super) const OSPF_IF_LEAVES: &[&str] = &[
    "hello_interval",
    "dead_interval",
    "priority",
    "cost",
    "authentication",
];

/// keepalived's first automatically assigned rule preference.
const FIRST_RULE_PREFERENCE: u32 = 16384;
/// `IFNAMSIZ - 1`.
const MAX_IFNAME: usize = 15;

/// What the VRRP pass collects from the top level before validating.
#[derive(Debug, Default)]
pub(super) struct VrrpNodes<'n, 'a> {
    pub scripts: Vec<&'n Node<'a>>,
    pub track_files: Vec<&'n Node<'a>>,
    pub instances: Vec<&'n Node<'a>>,
    pub sync_groups: Vec<&'n Node<'a>>,
    pub static_addresses: Vec<&'n Node<'a>>,
    pub static_routes: Vec<&'n Node<'a>>,
    pub static_rules: Vec<&'n Node<'a>>,
    pub ospf: Vec<&'n Node<'a>>,
}

/// Which optional GARP values were written (the lower-priority ones default
/// to the master ones).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct GarpSet {
    lower_delay: bool,
    lower_repeat: bool,
}

impl GarpSet {
    /// The lower-priority values that were not written follow the master ones.
    fn follow_master(self, garp: &mut GarpSettings) {
        if !self.lower_delay {
            garp.lower_prio_delay = garp.master_delay;
        }
        if !self.lower_repeat {
            garp.lower_prio_repeat = garp.master_repeat;
        }
    }
}

/// The scope names of `ip address` / `ip route`.
fn scope(s: &str) -> Result<u8, String> {
    Ok(match s {
        "global" | "universe" => 0,
        "site" => 200,
        "link" => 253,
        "host" => 254,
        "nowhere" => 255,
        n => {
            let v = values::uint(n, 0, 255).map_err(|_| format!("Invalid scope '{s}'"))?;
            u8::try_from(v).map_err(|e| e.to_string())?
        }
    })
}

/// `IP[/LEN]`; the default length is the full address.
fn prefix(s: &str) -> Result<Prefix, String> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = values::ip(a).map_err(|_| format!("Invalid address '{s}'"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => max,
        Some(l) => values::uint(l, 0, u64::from(max))
            .ok()
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| format!("Invalid address '{s}'"))?,
    };
    Ok(Prefix { addr, len })
}

/// Resolves a script's command as `execve` would find it (PATH search for a
/// bare name), so that only scripts that exist count for script security.
fn script_exists(cmd: &str) -> bool {
    if cmd.contains('/') {
        return Path::new(cmd).is_file();
    }
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .filter(|d| !d.is_empty())
        .any(|d| Path::new(d).join(cmd).is_file())
}

/// Whether the system has keepalived's default script user.
fn default_script_user_exists() -> bool {
    std::fs::read_to_string("/etc/passwd")
        .map(|p| p.lines().any(|l| l.starts_with("keepalived_script:")))
        .unwrap_or(false)
}

impl Lowerer<'_> {
    fn warn(&mut self, loc: impl super::At, msg: impl Into<String>) {
        self.diag(Severity::Warning, loc, msg);
    }

    fn err(&mut self, loc: impl super::At, msg: impl Into<String>) {
        self.diag(Severity::Error, loc, msg);
    }

    fn u32_arg(&mut self, s: &Stmt<'_>, min: u64, max: u64) -> Option<u32> {
        self.uint_arg(s, min, max)
            .and_then(|v| u32::try_from(v).ok())
    }

    fn ifname(&mut self, t: &Tok<'_>) -> Option<String> {
        if t.text().len() > MAX_IFNAME {
            self.err(
                t.location,
                format!("Interface name '{}' too long - ignoring", t.text()),
            );
            return None;
        }
        Some(t.text().to_string())
    }

    // ------------------------------------------------------------ global_defs

    /// One VRRP key of `global_defs`; false when `s` is not one.
    /// One GARP timing keyword, global (`vrrp_garp_*`, passed without its
    /// `vrrp_` prefix) or per instance (`garp_*`): the two sets take the
    /// same values. Records in `set` which lower-priority values were
    /// written. Returns false when `kw` is no such keyword.
    fn garp_keyword(
        &mut self,
        s: &Stmt<'_>,
        kw: &str,
        garp: &mut GarpSettings,
        set: &mut GarpSet,
    ) -> bool {
        let repeat = |lw: &mut Self| lw.u32_arg(s, 0, i32::MAX as u64);
        match kw {
            "garp_master_delay" => {
                garp.master_delay = self.timer_arg(s, 0).unwrap_or(garp.master_delay)
            }
            "garp_master_repeat" => garp.master_repeat = repeat(self).unwrap_or(garp.master_repeat),
            "garp_master_refresh" => {
                garp.master_refresh = self.timer_arg(s, 0).unwrap_or(garp.master_refresh);
            }
            "garp_master_refresh_repeat" => {
                garp.master_refresh_repeat = repeat(self).unwrap_or(garp.master_refresh_repeat);
            }
            "garp_lower_prio_delay" => {
                if let Some(d) = self.timer_arg(s, 0) {
                    garp.lower_prio_delay = d;
                    set.lower_delay = true;
                }
            }
            "garp_lower_prio_repeat" => {
                if let Some(v) = repeat(self) {
                    garp.lower_prio_repeat = v;
                    set.lower_repeat = true;
                }
            }
            _ => return false,
        }
        true
    }

    pub(super) fn global_vrrp(&mut self, s: &Stmt<'_>) -> bool {
        let kw = s.keyword().text();
        if !GLOBAL_VRRP.contains(&kw) {
            return false;
        }
        let mut g = self.model.global_defs.vrrp.clone();
        let mut set = self.garp_lower_set;
        if let Some(garp_kw) = kw.strip_prefix("vrrp_") {
            if self.garp_keyword(s, garp_kw, &mut g.garp, &mut set) {
                set.follow_master(&mut g.garp);
                self.garp_lower_set = set;
                self.model.global_defs.vrrp = g;
                return true;
            }
        }
        match kw {
            "vrrp_mcast_group4" => {
                if let Some(t) = self.arg(s, 0) {
                    match t.text().parse::<Ipv4Addr>() {
                        Ok(a) if a.is_multicast() => g.mcast_group4 = a,
                        _ => self.err(
                            t.location,
                            format!(
                                "vrrp_mcast_group4 '{}' is not a multicast address - ignoring",
                                t.text()
                            ),
                        ),
                    }
                }
            }
            "vrrp_mcast_group6" => {
                if let Some(t) = self.arg(s, 0) {
                    match t.text().parse::<std::net::Ipv6Addr>() {
                        Ok(a) if a.is_multicast() => g.mcast_group6 = a,
                        _ => self.err(
                            t.location,
                            format!(
                                "vrrp_mcast_group6 '{}' is not a multicast address - ignoring",
                                t.text()
                            ),
                        ),
                    }
                }
            }
            "default_interface" => {
                if let Some(t) = self.arg(s, 0) {
                    if let Some(i) = self.ifname(t) {
                        g.default_interface = i;
                    }
                }
            }
            "vrrp_version" => {
                if let Some(t) = self.arg(s, 0) {
                    match t.text() {
                        "2" => g.version = 2,
                        "3" => g.version = 3,
                        _ => self.err(
                            t.location,
                            "vrrp_version invalid (must be 2 or 3) - ignoring",
                        ),
                    }
                }
            }
            "vrrp_garp_interval" => {
                g.garp_interval = self.timer_arg(s, 1).unwrap_or(g.garp_interval)
            }
            "vrrp_gna_interval" => g.gna_interval = self.timer_arg(s, 1).unwrap_or(g.gna_interval),
            "vrrp_min_garp" => g.min_garp = self.opt_bool(s).unwrap_or(g.min_garp),
            "vrrp_down_timer_adverts" => {
                g.down_timer_adverts = self.u32_arg(s, 1, 100).unwrap_or(g.down_timer_adverts);
            }
            "vrrp_lower_prio_no_advert" => {
                g.lower_prio_no_advert = self.opt_bool(s).unwrap_or(g.lower_prio_no_advert);
            }
            "vrrp_higher_prio_send_advert" => {
                g.higher_prio_send_advert = self.opt_bool(s).unwrap_or(g.higher_prio_send_advert);
            }
            "vrrp_check_unicast_src" => g.check_unicast_src = true,
            "vrrp_skip_check_adv_addr" => {
                g.skip_check_adv_addr = self.opt_bool(s).unwrap_or(g.skip_check_adv_addr);
            }
            "vrrp_strict" => g.strict = true,
            "vrrp_startup_delay" => {
                g.startup_delay = self.timer_arg(s, 0).unwrap_or(g.startup_delay)
            }
            "vrrp_notify_priority_changes" => {
                g.notify_priority_changes = self.opt_bool(s).unwrap_or(g.notify_priority_changes);
            }
            _ => return false,
        }
        self.model.global_defs.vrrp = g;
        true
    }

    // ------------------------------------------------------------ the pass

    /// Lowers every VRRP and OSPF block, after the rest of the top level.
    pub(super) fn vrrp_pass(&mut self, v: &VrrpNodes<'_, '_>) {
        for n in &v.track_files {
            if let Some(tf) = self.track_file(n) {
                self.model.track_files.push(tf);
            }
        }
        for n in &v.scripts {
            if let Some(sc) = self.vrrp_script(n) {
                if self.model.vrrp_scripts.iter().any(|o| o.name == sc.name) {
                    self.err(
                        &sc.location,
                        format!(
                            "vrrp_script {} is defined twice - ignoring this one",
                            sc.name
                        ),
                    );
                    continue;
                }
                self.model.vrrp_scripts.push(sc);
            }
        }
        let default_if = self.model.global_defs.vrrp.default_interface.clone();
        for n in &v.static_addresses {
            for line in &n.children {
                if let Some(mut a) = self.ip_address(line.stmt, "static") {
                    a.dev = a.dev.or_else(|| Some(default_if.clone()));
                    self.model.static_ipaddresses.push(a);
                }
            }
        }
        for n in &v.static_routes {
            for line in &n.children {
                if let Some(r) = self.route(line.stmt) {
                    self.model.static_routes.push(r);
                }
            }
        }
        let mut next_pref = FIRST_RULE_PREFERENCE;
        for n in &v.static_rules {
            for line in &n.children {
                if let Some(r) = self.rule(line.stmt, &mut next_pref) {
                    self.model.static_rules.push(r);
                }
            }
        }
        for n in &v.instances {
            if let Some(vi) = self.vrrp_instance(n, &mut next_pref) {
                if self.model.vrrp_instances.iter().any(|o| o.name == vi.name) {
                    self.err(
                        &vi.location,
                        format!(
                            "vrrp_instance {} is defined twice - ignoring this one",
                            vi.name
                        ),
                    );
                    continue;
                }
                self.model.vrrp_instances.push(vi);
            }
        }
        for n in &v.sync_groups {
            if let Some(g) = self.sync_group(n) {
                self.model.vrrp_sync_groups.push(g);
            }
        }
        self.script_security();
        for n in &v.ospf {
            if self.model.ospf_announcer.is_some() {
                self.err(
                    n.stmt.keyword().location,
                    "ospf_announcer is defined twice - ignoring this one",
                );
                continue;
            }
            self.model.ospf_announcer = self.ospf(n);
        }
    }

    // ------------------------------------------------------------ track_file

    fn track_file(&mut self, n: &Node<'_>) -> Option<TrackFile> {
        let name = self.arg(n.stmt, 0)?.text().to_string();
        let mut tf = TrackFile {
            name,
            path: String::new(),
            weight: 1,
            reverse: false,
            init_file: None,
            location: self.loc(n.stmt.location()),
        };
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "file" => {
                    if let Some(t) = self.arg(s, 0) {
                        tf.path = t.text().to_string();
                    }
                }
                "weight" => {
                    if let Some(t) = self.arg(s, 0) {
                        let r = t
                            .text()
                            .parse::<i32>()
                            .ok()
                            .filter(|w| *w > i32::MIN)
                            .ok_or_else(|| {
                                format!("Track file {} weight {} invalid", tf.name, t.text())
                            });
                        if let Some(w) = self.check(t, r) {
                            tf.weight = w;
                            tf.reverse = self.reverse_word(s.args().get(1));
                        }
                    }
                }
                "init_file" => {
                    let mut value = 0i64;
                    let mut overwrite = false;
                    for t in s.args() {
                        if t.text() == "overwrite" {
                            overwrite = true;
                        } else {
                            match t.text().parse::<i64>() {
                                Ok(v) => value = v,
                                Err(_) => self.err(
                                    t.location,
                                    format!("track file init value {} is invalid", t.text()),
                                ),
                            }
                        }
                    }
                    tf.init_file = Some((value, overwrite));
                }
                _ => {}
            }
        }
        if tf.path.is_empty() {
            self.err(
                &tf.location,
                format!("No file set for track_file {} - removing", tf.name),
            );
            return None;
        }
        Some(tf)
    }

    /// `[reverse|noreverse]` after a weight.
    pub(super) fn reverse_word(&mut self, t: Option<&Tok<'_>>) -> bool {
        match t.map(|t| (t, t.text())) {
            None | Some((_, "noreverse")) => false,
            Some((_, "reverse")) => true,
            Some((t, other)) => {
                self.warn(
                    t.location,
                    format!("unknown weight option '{other}' - ignoring"),
                );
                false
            }
        }
    }

    // ------------------------------------------------------------ vrrp_script

    fn vrrp_script(&mut self, n: &Node<'_>) -> Option<VrrpScript> {
        let name = self.arg(n.stmt, 0)?.text().to_string();
        let mut script: Option<Script> = None;
        let mut user: Option<(String, Option<String>)> = None;
        let mut vs = VrrpScript {
            name,
            script: Script {
                argv: Vec::new(),
                user: None,
                group: None,
            },
            interval: Duration::from_secs(1),
            timeout: Duration::ZERO,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            init_fail: false,
            location: self.loc(n.stmt.location()),
        };
        let mut timeout = None;
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "script" => script = self.script(s).or(script),
                "interval" => {
                    if let Some(d) = self.timer_arg(s, 0) {
                        // Millisecond resolution; 0 becomes 1 s.
                        let ms = d.as_millis();
                        vs.interval = if ms == 0 {
                            Duration::from_secs(1)
                        } else {
                            Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
                        };
                    }
                }
                "timeout" => timeout = self.timer_arg(s, 0).or(timeout),
                "weight" => {
                    if let Some(t) = self.arg(s, 0) {
                        let r = t
                            .text()
                            .parse::<i32>()
                            .ok()
                            .filter(|w| (-253..=253).contains(w))
                            .ok_or_else(|| {
                                format!(
                                    "vrrp_script {} weight {} must be in [-253, 253]",
                                    vs.name,
                                    t.text()
                                )
                            });
                        if let Some(w) = self.check(t, r) {
                            vs.weight = w;
                            vs.reverse = self.reverse_word(s.args().get(1));
                        }
                    }
                }
                kw @ ("rise" | "fall") => {
                    if let Some(t) = self.arg(s, 0) {
                        let v = match values::uint(t.text(), 1, i32::MAX as u64) {
                            Ok(v) => u32::try_from(v).unwrap_or(1),
                            Err(_) => {
                                self.err(
                                    t.location,
                                    format!(
                                        "vrrp_script {} {kw} value '{}' invalid - setting to 1",
                                        vs.name,
                                        t.text()
                                    ),
                                );
                                1
                            }
                        };
                        if kw == "rise" {
                            vs.rise = v;
                        } else {
                            vs.fall = v;
                        }
                    }
                }
                "user" => {
                    if let Some(t) = self.arg(s, 0) {
                        user = Some((
                            t.text().to_string(),
                            s.args().get(1).map(|g| g.text().to_string()),
                        ));
                    }
                }
                "init_fail" => vs.init_fail = true,
                _ => {}
            }
        }
        let Some(mut script) = script else {
            self.err(
                n.stmt.location(),
                format!("No script set for vrrp_script {} - removing", vs.name),
            );
            return None;
        };
        if let Some((u, g)) = user {
            script.user = Some(u);
            script.group = g;
        }
        vs.script = script;
        vs.timeout = match timeout {
            Some(t) if !t.is_zero() => t,
            _ => vs.interval,
        };
        Some(vs)
    }

    // ------------------------------------------------------------ value lines

    /// `NAME [weight W [reverse|noreverse]]` lines of a `track_*` block.
    fn tracked(&mut self, n: &Node<'_>, owner: &str, max: i32) -> Vec<Tracked> {
        let what = n.stmt.keyword().text().to_string();
        let mut out = Vec::new();
        for line in &n.children {
            let s = line.stmt;
            let mut t = Tracked {
                name: s.keyword().text().to_string(),
                weight: None,
                reverse: false,
            };
            if what == "track_interface" && t.name.len() > MAX_IFNAME {
                self.err(
                    s.keyword().location,
                    format!(
                        "({owner}) tracked interface name '{}' too long - ignoring",
                        t.name
                    ),
                );
                continue;
            }
            match s.args().first().map(|a| (a, a.text())) {
                None => {}
                Some((_, "weight")) => {
                    let Some(w) = s.args().get(1) else {
                        self.err(
                            s.keyword().location,
                            format!("({owner}) {what} {} weight missing - ignoring", t.name),
                        );
                        continue;
                    };
                    match w.text().parse::<i32>() {
                        Ok(v) if (-max..=max).contains(&v) => t.weight = Some(v),
                        _ => {
                            self.err(
                                w.location,
                                format!(
                                    "({owner}) weight for {} must be between [{}..{max}] inclusive. Ignoring...",
                                    t.name, -max
                                ),
                            );
                            continue;
                        }
                    }
                    t.reverse = self.reverse_word(s.args().get(2));
                }
                Some((a, other)) => {
                    self.warn(
                        a.location,
                        format!(
                            "({owner}) unknown option '{other}' for {what} {} - ignoring",
                            t.name
                        ),
                    );
                }
            }
            out.push(t);
        }
        out
    }

    /// One `IP[/len] [dev IF] [brd ..] [scope ..] [label L] ...` line.
    fn ip_address(&mut self, s: &Stmt<'_>, owner: &str) -> Option<IpAddress> {
        let p = match prefix(s.keyword().text()) {
            Ok(p) => p,
            Err(_) => {
                self.err(
                    s.keyword().location,
                    format!(
                        "({owner}) Invalid address {} - ignoring",
                        s.keyword().text()
                    ),
                );
                return None;
            }
        };
        let mut a = IpAddress {
            addr: p.addr,
            prefix_len: p.len,
            dev: None,
            brd: None,
            scope: None,
            label: None,
            peer: None,
            no_track: false,
            preferred_lft: None,
            flags: Vec::new(),
            location: self.loc(s.location()),
        };
        let mut it = s.args().iter();
        while let Some(t) = it.next() {
            let word = t.text();
            let takes_value = matches!(
                word,
                "dev" | "brd" | "broadcast" | "scope" | "label" | "peer" | "preferred_lft"
            );
            if !takes_value {
                match word {
                    "home" | "-nodad" | "nodad" | "mngtmpaddr" | "noprefixroute" | "autojoin"
                    | "use_vmac" => a.flags.push(word.to_string()),
                    "no_track" => a.no_track = true,
                    _ => self.warn(
                        t.location,
                        format!("Unknown configuration entry '{word}' for ip address - ignoring"),
                    ),
                }
                continue;
            }
            let Some(v) = it.next() else {
                self.err(
                    t.location,
                    format!("({owner}) {word} requires a value - ignoring"),
                );
                break;
            };
            match word {
                "dev" => a.dev = self.ifname(v),
                "brd" | "broadcast" => {
                    if v.text() == "+" || v.text() == "-" || values::ip(v.text()).is_ok() {
                        a.brd = Some(v.text().to_string());
                    } else {
                        self.err(
                            v.location,
                            format!("Invalid broadcast address {}", v.text()),
                        );
                    }
                }
                "scope" => a.scope = self.check(v, scope(v.text())),
                "label" => a.label = Some(v.text().to_string()),
                "peer" => {
                    let r = prefix(v.text()).map(|p| p.addr);
                    a.peer = self.check(v, r);
                }
                _ => a.preferred_lft = Some(v.text().to_string()),
            }
        }
        Some(a)
    }

    /// One `ip route`-style line.
    fn route(&mut self, s: &Stmt<'_>) -> Option<Route> {
        let words: Vec<&Tok<'_>> = std::iter::once(s.keyword())
            .chain(s.args().iter())
            .collect();
        let mut r = Route {
            route_type: None,
            dest: Prefix {
                addr: IpAddr::from([0, 0, 0, 0]),
                len: 0,
            },
            src: None,
            via: None,
            dev: None,
            table: None,
            metric: None,
            scope: None,
            nexthops: Vec::new(),
            options: Vec::new(),
            no_track: false,
            location: self.loc(s.location()),
        };
        let mut dest_set = false;
        let mut i = 0;
        while let Some(t) = words.get(i) {
            let w = t.text();
            i += 1;
            let value = |i: &mut usize| -> Option<&Tok<'_>> {
                let v = words.get(*i).copied();
                *i += 1;
                v
            };
            match w {
                "blackhole" | "unreachable" | "prohibit" | "throw" | "local" | "broadcast"
                | "anycast" | "multicast" | "unicast"
                    if !dest_set =>
                {
                    r.route_type = Some(w.to_string());
                }
                "no_track" => r.no_track = true,
                "inet6" | "append" | "onlink" | "pervasive" => {
                    r.options.push((w.to_string(), String::new()));
                }
                "src" | "via" | "gw" | "or" | "dev" | "oif" | "table" | "metric" | "priority"
                | "preference" | "scope" | "to" | "nexthop" | "proto" | "protocol" | "tos"
                | "dsfield" | "mtu" | "advmss" | "rtt" | "rttvar" | "reordering" | "window"
                | "cwnd" | "ssthresh" | "realms" | "rto_min" | "initcwnd" | "initrwnd"
                | "features" | "quickack" | "congctl" | "pref" | "expires"
                | "fastopen_no_cookie" | "hoplimit" | "encap" | "weight" => {
                    if w == "nexthop" {
                        r.nexthops.push(Nexthop {
                            via: None,
                            dev: None,
                            weight: None,
                        });
                        continue;
                    }
                    let Some(v) = value(&mut i) else {
                        self.err(t.location, format!("route option {w} requires a value"));
                        return None;
                    };
                    match w {
                        "src" => r.src = self.check(v, values::ip(v.text())),
                        "via" | "gw" => {
                            if w == "gw" {
                                self.warn(t.location, "'gw' is deprecated - please use 'via'");
                            }
                            let a = self.check(v, values::ip(v.text()))?;
                            match r.nexthops.last_mut() {
                                Some(nh) => nh.via = Some(a),
                                None => r.via = Some(a),
                            }
                        }
                        "or" => {
                            self.warn(t.location, "'or' is deprecated - please use 'nexthop'");
                            let a = self.check(v, values::ip(v.text()))?;
                            if r.nexthops.is_empty() {
                                r.nexthops.push(Nexthop {
                                    via: r.via.take(),
                                    dev: r.dev.clone(),
                                    weight: None,
                                });
                            }
                            r.nexthops.push(Nexthop {
                                via: Some(a),
                                dev: None,
                                weight: None,
                            });
                        }
                        "dev" | "oif" => {
                            let d = self.ifname(v)?;
                            match r.nexthops.last_mut() {
                                Some(nh) => nh.dev = Some(d),
                                None => r.dev = Some(d),
                            }
                        }
                        "weight" => {
                            let wt = self
                                .check(v, values::uint(v.text(), 1, 256))
                                .and_then(|x| u32::try_from(x).ok());
                            if let Some(nh) = r.nexthops.last_mut() {
                                nh.weight = wt;
                            }
                        }
                        "table" => r.table = Some(v.text().to_string()),
                        "metric" | "priority" | "preference" => {
                            r.metric = self
                                .check(v, values::uint(v.text(), 0, u64::from(u32::MAX)))
                                .and_then(|x| u32::try_from(x).ok());
                        }
                        "scope" => r.scope = self.check(v, scope(v.text())),
                        "to" => {
                            r.dest = self.check(v, prefix(v.text()))?;
                            dest_set = true;
                        }
                        _ => r.options.push((w.to_string(), v.text().to_string())),
                    }
                }
                _ if !dest_set => {
                    let p = if w == "default" {
                        Ok(Prefix {
                            addr: IpAddr::from([0, 0, 0, 0]),
                            len: 0,
                        })
                    } else {
                        prefix(w)
                    };
                    match p {
                        Ok(p) => {
                            r.dest = p;
                            dest_set = true;
                        }
                        Err(_) => {
                            self.err(
                                t.location,
                                format!("Invalid route destination {w} - ignoring route"),
                            );
                            return None;
                        }
                    }
                }
                _ => {
                    self.warn(t.location, format!("Unknown route option '{w}' - ignoring"));
                }
            }
        }
        if !dest_set {
            self.err(s.location(), "Route has no destination - ignoring");
            return None;
        }
        Some(r)
    }

    /// One `ip rule`-style line; a missing preference is assigned.
    fn rule(&mut self, s: &Stmt<'_>, next_pref: &mut u32) -> Option<Rule> {
        let words: Vec<&Tok<'_>> = std::iter::once(s.keyword())
            .chain(s.args().iter())
            .collect();
        let mut r = Rule {
            from: None,
            to: None,
            table: None,
            preference: 0,
            options: Vec::new(),
            no_track: false,
            location: self.loc(s.location()),
        };
        let mut pref = None;
        let mut i = 0;
        while let Some(t) = words.get(i) {
            let w = t.text();
            i += 1;
            match w {
                "no_track" => r.no_track = true,
                "not" | "l3mdev" | "blackhole" | "prohibit" | "unreachable" | "nop" | "inet6" => {
                    r.options.push((w.to_string(), String::new()));
                }
                _ => {
                    let Some(v) = words.get(i) else {
                        self.err(t.location, format!("rule option {w} requires a value"));
                        return None;
                    };
                    i += 1;
                    match w {
                        "from" | "to" => {
                            let p = if v.text() == "all" {
                                Ok(None)
                            } else {
                                prefix(v.text())
                                    .map(Some)
                                    .map_err(|_| format!("Invalid rule {w} address {}", v.text()))
                            };
                            let p = self.check(v, p)?;
                            if w == "from" {
                                r.from = p;
                            } else {
                                r.to = p;
                            }
                        }
                        "table" | "lookup" => r.table = Some(v.text().to_string()),
                        "preference" | "priority" | "order" | "pref" => {
                            pref = self
                                .check(v, values::uint(v.text(), 0, u64::from(u32::MAX)))
                                .and_then(|x| u32::try_from(x).ok());
                        }
                        "fwmark"
                        | "iif"
                        | "oif"
                        | "uidrange"
                        | "sport"
                        | "dport"
                        | "ip_proto"
                        | "ipproto"
                        | "tos"
                        | "dsfield"
                        | "realms"
                        | "suppress_prefixlength"
                        | "suppress_ifgroup"
                        | "goto"
                        | "protocol"
                        | "group"
                        | "type" => {
                            r.options.push((w.to_string(), v.text().to_string()));
                        }
                        _ => {
                            self.err(
                                t.location,
                                format!("Unknown rule option '{w}' - ignoring rule"),
                            );
                            return None;
                        }
                    }
                }
            }
        }
        r.preference = match pref {
            Some(p) => p,
            None => {
                let p = *next_pref;
                self.warn(
                    s.location(),
                    format!("Rule has no preference specified - setting to {p}. This is probably not what you want."),
                );
                *next_pref = next_pref.saturating_add(1);
                p
            }
        };
        Some(r)
    }

    // ------------------------------------------------------------ vrrp_instance

    fn notify_keyword(&mut self, s: &Stmt<'_>, n: &mut VrrpNotify) -> bool {
        let slot = match s.keyword().text() {
            "notify_master" => &mut n.master,
            "notify_backup" => &mut n.backup,
            "notify_fault" => &mut n.fault,
            "notify_stop" => &mut n.stop,
            "notify_deleted" => &mut n.deleted,
            "notify" => &mut n.any,
            "notify_master_rx_lower_pri" => &mut n.master_rx_lower_pri,
            _ => return false,
        };
        let old = slot.take();
        let new = self.script(s);
        // The borrow of `n` ended with `take`; re-borrow to store.
        let slot = match s.keyword().text() {
            "notify_master" => &mut n.master,
            "notify_backup" => &mut n.backup,
            "notify_fault" => &mut n.fault,
            "notify_stop" => &mut n.stop,
            "notify_deleted" => &mut n.deleted,
            "notify" => &mut n.any,
            _ => &mut n.master_rx_lower_pri,
        };
        *slot = new.or(old);
        true
    }

    fn trackers(&mut self, c: &Node<'_>, owner: &str, t: &mut VrrpTrackers) -> bool {
        match c.stmt.keyword().text() {
            "track_interface" => t.interfaces.extend(self.tracked(c, owner, 254)),
            "track_script" => t.scripts.extend(self.tracked(c, owner, 254)),
            "track_file" => t.files.extend(self.tracked(c, owner, 254)),
            "track_process" => t.processes.extend(self.tracked(c, owner, 254)),
            "track_bfd" => t.bfds.extend(self.tracked(c, owner, 254)),
            _ => return false,
        }
        true
    }

    /// Drops trackers naming undefined scripts, track files, track
    /// processes and BFD instances (those reporting to VRRP).
    fn resolve_trackers(&mut self, owner: &str, t: &mut VrrpTrackers, loc: impl super::At + Copy) {
        let m = &self.model;
        let scripts: Vec<&str> = m.vrrp_scripts.iter().map(|s| s.name.as_str()).collect();
        let files: Vec<&str> = m.track_files.iter().map(|s| s.name.as_str()).collect();
        let processes: Vec<&str> = (m.vrrp_track_processes.iter())
            .map(|p| p.name.as_str())
            .collect();
        // Only the BFD instances that report to the VRRP process.
        let bfds: Vec<&str> = (m.bfd_instances.iter())
            .filter(|b| b.vrrp)
            .map(|b| b.name.as_str())
            .collect();
        let mut missing = Vec::new();
        for (list, defined, what) in [
            (&mut t.scripts, &scripts, "track_script"),
            (&mut t.files, &files, "track_file"),
            (&mut t.processes, &processes, "track process"),
            (&mut t.bfds, &bfds, "track bfd"),
        ] {
            list.retain(|s| {
                let ok = defined.contains(&s.name.as_str());
                if !ok {
                    missing.push(format!(
                        "({owner}) {what} {} not found, ignoring...",
                        s.name
                    ));
                }
                ok
            });
        }
        for m in missing {
            self.warn(loc, m);
        }
    }

    fn vrrp_instance(&mut self, n: &Node<'_>, next_pref: &mut u32) -> Option<VrrpInstance> {
        let name = self.arg(n.stmt, 0)?.text().to_string();
        let g = self.model.global_defs.vrrp.clone();
        let loc = self.loc(n.stmt.location());
        let mut vi = VrrpInstance {
            ignored: self.kept_of(n),
            name: name.clone(),
            state: VrrpState::Backup,
            interface: None,
            dpdk_interface: None,
            virtual_router_id: 0,
            priority: 100,
            advert_int: Duration::from_secs(1),
            version: g.version,
            src_ip: None,
            mcast_dst_ip: None,
            unicast_peers: Vec::new(),
            unicast_ttl: None,
            dont_track_primary: false,
            use_vmac: false,
            virtual_ipaddresses: Vec::new(),
            virtual_ipaddresses_excluded: Vec::new(),
            virtual_routes: Vec::new(),
            virtual_rules: Vec::new(),
            track: VrrpTrackers::default(),
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            accept: true,
            strict_mode: g.strict,
            skip_check_adv_addr: g.skip_check_adv_addr,
            authentication: None,
            garp: g.garp,
            down_timer_adverts: g.down_timer_adverts,
            lower_prio_no_advert: g.lower_prio_no_advert,
            higher_prio_send_advert: g.higher_prio_send_advert,
            notify: VrrpNotify::default(),
            smtp_alert: false,
            location: loc.clone(),
        };
        let mut state: Option<(VrrpState, Location)> = None;
        let mut prio: Option<u8> = None;
        let mut vrid: Option<u8> = None;
        let mut unicast = false;
        let mut accept: Option<bool> = None;
        let mut preempt_delay_at = None;
        let mut nopreempt_at = None;
        let mut advert: Option<(Duration, Location)> = None;
        let mut garp_set = GarpSet::default();
        let mut route_nodes = Vec::new();
        for c in &n.children {
            let s = c.stmt;
            if self.notify_keyword(s, &mut vi.notify) || self.trackers(c, &name, &mut vi.track) {
                continue;
            }
            match s.keyword().text() {
                "state" => {
                    if let Some(t) = self.arg(s, 0) {
                        match t.text() {
                            "MASTER" => state = Some((VrrpState::Master, self.loc(t.location))),
                            "BACKUP" => {
                                if !matches!(state, Some((VrrpState::Master, _))) {
                                    state = Some((VrrpState::Backup, self.loc(t.location)));
                                }
                            }
                            other => {
                                self.err(
                                    t.location,
                                    format!(
                                        "({name}) unknown state '{other}', defaulting to BACKUP"
                                    ),
                                );
                                state = state.or(Some((VrrpState::Backup, self.loc(t.location))));
                            }
                        }
                    }
                }
                "interface" => {
                    if let Some(t) = self.arg(s, 0) {
                        vi.interface = self.ifname(t).or(vi.interface.take());
                    }
                }
                "dpdk_interface" => {
                    if let Some(t) = self.arg(s, 0) {
                        vi.dpdk_interface = Some(t.text().to_string());
                    }
                }
                "virtual_router_id" => {
                    if let Some(t) = self.arg(s, 0) {
                        let r = values::uint(t.text(), 1, 255).map_err(|_| {
                            format!(
                                "({name}) VRID '{}' not valid - must be between 1 & 255",
                                t.text()
                            )
                        });
                        vrid = self.check(t, r).and_then(|v| u8::try_from(v).ok()).or(vrid);
                    }
                }
                "priority" => {
                    if let Some(t) = self.arg(s, 0) {
                        match values::uint(t.text(), 1, 255) {
                            Ok(v) => prio = u8::try_from(v).ok(),
                            Err(_) => {
                                self.err(
                                    t.location,
                                    format!("({name}) Priority not valid! must be between 1 & 255. Reconfigure !"),
                                );
                                prio = Some(100);
                            }
                        }
                    }
                }
                "advert_int" => {
                    if let Some(d) = self.timer_arg(s, 0) {
                        advert = Some((d, self.loc(s.keyword().location)));
                    }
                }
                "version" => {
                    if let Some(t) = self.arg(s, 0) {
                        match t.text() {
                            "2" => vi.version = 2,
                            "3" => vi.version = 3,
                            _ => self.err(
                                t.location,
                                format!(
                                    "({name}) Version {} not supported! must be 2 or 3",
                                    t.text()
                                ),
                            ),
                        }
                    }
                }
                kw @ ("mcast_src_ip" | "unicast_src_ip") => {
                    if let Some(t) = self.arg(s, 0) {
                        let r = values::ip(t.text())
                            .map_err(|_| format!("({name}) invalid {kw} {}", t.text()));
                        vi.src_ip = self.check(t, r).or(vi.src_ip);
                        unicast |= kw == "unicast_src_ip";
                    }
                }
                "mcast_dst_ip" => {
                    if let Some(t) = self.arg(s, 0) {
                        match values::ip(t.text()) {
                            Ok(a) if a.is_multicast() => vi.mcast_dst_ip = Some(a),
                            _ => self.err(
                                t.location,
                                format!("({name}) mcast_dst_ip {} is not a multicast address - ignoring", t.text()),
                            ),
                        }
                    }
                }
                "unicast_ttl" => {
                    vi.unicast_ttl = self
                        .uint_arg(s, 0, 255)
                        .and_then(|v| u8::try_from(v).ok())
                        .or(vi.unicast_ttl);
                }
                "dont_track_primary" => vi.dont_track_primary = true,
                "use_vmac" => vi.use_vmac = true,
                "nopreempt" => nopreempt_at = Some(self.loc(s.keyword().location)),
                "preempt" => nopreempt_at = None,
                "preempt_delay" => {
                    if let Some(t) = self.arg(s, 0) {
                        let r = values::timer(t.text(), 0)
                            .ok()
                            .filter(|d| d.value <= Duration::from_secs(1000))
                            .map(|d| d.value)
                            .ok_or_else(|| {
                                format!("({name}) Preempt_delay not valid! must be between 0-1000")
                            });
                        if let Some(d) = self.check(t, r) {
                            vi.preempt_delay = d;
                            preempt_delay_at = Some(self.loc(s.keyword().location));
                        }
                    }
                }
                "accept" => accept = Some(true),
                "no_accept" => accept = Some(false),
                "strict_mode" => vi.strict_mode = self.opt_bool(s).unwrap_or(vi.strict_mode),
                "skip_check_adv_addr" => {
                    vi.skip_check_adv_addr = self.opt_bool(s).unwrap_or(vi.skip_check_adv_addr);
                }
                kw if kw.starts_with("garp_")
                    && self.garp_keyword(s, kw, &mut vi.garp, &mut garp_set) => {}
                "down_timer_adverts" => {
                    vi.down_timer_adverts =
                        self.u32_arg(s, 1, 100).unwrap_or(vi.down_timer_adverts);
                }
                "lower_prio_no_advert" => {
                    vi.lower_prio_no_advert = self.opt_bool(s).unwrap_or(vi.lower_prio_no_advert);
                }
                "higher_prio_send_advert" => {
                    vi.higher_prio_send_advert =
                        self.opt_bool(s).unwrap_or(vi.higher_prio_send_advert);
                }
                "smtp_alert" => vi.smtp_alert = self.opt_bool(s).unwrap_or(true),
                "authentication" => {
                    vi.authentication = self.auth(c, &name).or(vi.authentication.take())
                }
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    let excluded = s.keyword().text().ends_with("excluded");
                    for line in &c.children {
                        if let Some(a) = self.ip_address(line.stmt, &name) {
                            if excluded {
                                vi.virtual_ipaddresses_excluded.push(a);
                            } else {
                                vi.virtual_ipaddresses.push(a);
                            }
                        }
                    }
                }
                "virtual_routes" => route_nodes.extend(c.children.iter().map(|l| l.stmt)),
                "virtual_rules" => {
                    for line in &c.children {
                        if let Some(r) = self.rule(line.stmt, next_pref) {
                            vi.virtual_rules.push(r);
                        }
                    }
                }
                "unicast_peer" => {
                    for line in &c.children {
                        if let Some(p) = self.unicast_peer(line.stmt, &name) {
                            vi.unicast_peers.push(p);
                        }
                    }
                }
                _ => {}
            }
        }
        // ---- validation (§6.3), in keepalived's order where it matters
        let Some(vrid) = vrid else {
            self.err(&loc, format!("({name}) the virtual router id must be set"));
            return None;
        };
        vi.virtual_router_id = vrid;
        if !unicast && !vi.unicast_peers.is_empty() {
            unicast = true;
        }
        if vi.interface.is_none() && !unicast {
            vi.interface = Some(g.default_interface.clone());
        }
        // Address family: the first VIP decides; IPv6 means VRRPv3.
        let family_v6 = vi
            .virtual_ipaddresses
            .first()
            .map(|a| a.addr.is_ipv6())
            .or_else(|| vi.src_ip.map(|a| a.is_ipv6()))
            .unwrap_or(false);
        let mut dropped = Vec::new();
        vi.virtual_ipaddresses.retain(|a| {
            let ok = a.addr.is_ipv6() == family_v6;
            if !ok {
                dropped.push(a.location.clone());
            }
            ok
        });
        for l in dropped {
            self.err(
                &l,
                format!(
                    "({name}): address family must match VRRP instance [{}] - ignoring",
                    if family_v6 { "IPv6" } else { "IPv4" }
                ),
            );
        }
        let peers_before = vi.unicast_peers.len();
        vi.unicast_peers.retain(|p| p.addr.is_ipv6() == family_v6);
        if vi.unicast_peers.len() != peers_before {
            self.err(
                &loc,
                format!("({name}) unicast peer address family must match the instance - ignoring"),
            );
        }
        if family_v6 && vi.version == 2 {
            if vi.strict_mode {
                self.err(
                    &loc,
                    format!("({name}) cannot use IPv6 with VRRP version 2; setting version 3"),
                );
            }
            vi.version = 3;
        }
        if vi.virtual_ipaddresses.is_empty() {
            self.warn(
                &loc,
                format!("({name}) No VIP specified; at least one is required"),
            );
        }
        for a in vi
            .virtual_ipaddresses
            .iter_mut()
            .chain(vi.virtual_ipaddresses_excluded.iter_mut())
        {
            if a.dev.is_none() {
                a.dev.clone_from(&vi.interface);
            }
        }
        if let Some((d, at)) = advert {
            let us = d.as_micros();
            let rounded = if vi.version == 2 {
                let secs = ((us + 500_000) / 1_000_000).clamp(1, 255);
                Duration::from_secs(u64::try_from(secs).unwrap_or(1))
            } else {
                let cs = ((us + 5_000) / 10_000).clamp(1, 4095);
                Duration::from_millis(u64::try_from(cs * 10).unwrap_or(1000))
            };
            if rounded != d {
                self.warn(
                    &at,
                    format!(
                        "({name}) Advert interval {:?} rounded to {:?} for VRRPv{}",
                        d, rounded, vi.version
                    ),
                );
            }
            vi.advert_int = rounded;
        }
        let mut st = state.as_ref().map(|(s, _)| *s);
        vi.priority = prio.unwrap_or(if st == Some(VrrpState::Master) {
            255
        } else {
            100
        });
        if st.is_none() {
            st = Some(if vi.priority == 255 {
                VrrpState::Master
            } else {
                VrrpState::Backup
            });
        }
        vi.state = st.unwrap_or(VrrpState::Backup);
        let owner = vi.priority == 255;
        if vi.strict_mode {
            if vi.state == VrrpState::Master && !owner {
                self.err(
                    &loc,
                    format!("({name}) Cannot start in MASTER state if not address owner"),
                );
                vi.state = VrrpState::Backup;
            }
            if !vi.unicast_peers.is_empty() {
                self.err(
                    &loc,
                    format!("({name}) Unicast peers are not supported in strict mode"),
                );
                vi.unicast_peers.clear();
            }
            if vi.authentication.take().is_some() {
                self.warn(
                    &loc,
                    format!("({name}) Strict mode does not support authentication. Ignoring."),
                );
            }
            if preempt_delay_at.take().is_some() {
                self.warn(
                    &loc,
                    format!("({name}) preempt_delay is incompatible with strict mode - resetting"),
                );
                vi.preempt_delay = Duration::ZERO;
            }
        }
        if vi.version == 3 && vi.authentication.take().is_some() {
            self.warn(
                &loc,
                format!("({name}) Cannot use authentication with VRRPv3 - ignoring"),
            );
        }
        if let Some(a) = &vi.authentication {
            if a.auth_type == AuthType::Ah && vi.state == VrrpState::Master && !owner {
                self.warn(
                    &loc,
                    format!("({name}) Initial state master is incompatible with AH authentication - clearing"),
                );
                vi.state = VrrpState::Backup;
            }
        }
        if let Some(at) = nopreempt_at {
            if vi.state == VrrpState::Master || owner {
                self.warn(
                    &at,
                    format!("({name}) Warning - nopreempt will not work with initial state MASTER or priority 255 - clearing"),
                );
            } else {
                vi.nopreempt = true;
            }
        }
        if let Some(at) = preempt_delay_at {
            if vi.state == VrrpState::Master || vi.nopreempt {
                self.warn(
                    &at,
                    format!("({name}) Warning - preempt delay will not work with initial state MASTER or nopreempt - clearing"),
                );
                vi.preempt_delay = Duration::ZERO;
            }
        }
        vi.accept = match accept {
            Some(a) => a,
            None => !vi.strict_mode || owner,
        };
        if vi.strict_mode && vi.accept && !owner && accept == Some(true) {
            self.warn(
                &loc,
                format!("({name}) accept mode is not compatible with strict mode - clearing"),
            );
            vi.accept = false;
        }
        // The lower-priority values default to the instance's master ones
        // unless written here or globally.
        GarpSet {
            lower_delay: garp_set.lower_delay || self.garp_lower_set.lower_delay,
            lower_repeat: garp_set.lower_repeat || self.garp_lower_set.lower_repeat,
        }
        .follow_master(&mut vi.garp);
        for s in route_nodes {
            if let Some(mut r) = self.route(s) {
                let has_if = r.dev.is_some() || r.nexthops.iter().any(|n| n.dev.is_some());
                if !has_if && !r.no_track {
                    self.warn(
                        &r.location,
                        format!(
                            "Warning - cannot track route {}/{} with no interface specified, not tracking",
                            r.dest.addr, r.dest.len
                        ),
                    );
                    r.no_track = true;
                }
                vi.virtual_routes.push(r);
            }
        }
        self.resolve_trackers(&name, &mut vi.track, &loc);
        Some(vi)
    }

    /// `authentication { auth_type PASS|AH; auth_pass STR }`.
    fn auth(&mut self, n: &Node<'_>, owner: &str) -> Option<VrrpAuth> {
        let mut ty = None;
        let mut pass: Option<String> = None;
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "auth_type" => {
                    if let Some(t) = self.arg(s, 0) {
                        match t.text() {
                            "PASS" => ty = Some(AuthType::Pass),
                            "AH" => ty = Some(AuthType::Ah),
                            other => self.err(
                                t.location,
                                format!("({owner}) unknown authentication type '{other}'"),
                            ),
                        }
                    }
                }
                "auth_pass" => {
                    if let Some(t) = self.arg(s, 0) {
                        let mut p = t.text().to_string();
                        if p.len() > 8 {
                            self.warn(
                                t.location,
                                format!("({owner}) Truncating auth_pass to 8 characters"),
                            );
                            let mut end = 8;
                            while !p.is_char_boundary(end) {
                                end -= 1;
                            }
                            p.truncate(end);
                        }
                        pass = Some(p);
                    }
                }
                _ => {}
            }
        }
        match ty {
            Some(auth_type) => Some(VrrpAuth {
                auth_type,
                password: pass.unwrap_or_default(),
            }),
            None => {
                if pass.is_some() {
                    self.warn(
                        n.stmt.location(),
                        format!("({owner}) auth_pass without auth_type - ignoring authentication"),
                    );
                }
                None
            }
        }
    }

    fn unicast_peer(&mut self, s: &Stmt<'_>, owner: &str) -> Option<UnicastPeer> {
        let addr = match values::ip(s.keyword().text()) {
            Ok(a) => a,
            Err(_) => {
                self.err(
                    s.keyword().location,
                    format!(
                        "({owner}) Invalid unicast peer address {} - ignoring",
                        s.keyword().text()
                    ),
                );
                return None;
            }
        };
        let mut p = UnicastPeer {
            addr,
            min_ttl: None,
            max_ttl: None,
        };
        let mut it = s.args().iter();
        while let Some(t) = it.next() {
            match (t.text(), it.next()) {
                (kw @ ("min_ttl" | "max_ttl"), Some(v)) => {
                    let ttl = self
                        .check(v, values::uint(v.text(), 0, 255))
                        .and_then(|x| u8::try_from(x).ok());
                    if kw == "min_ttl" {
                        p.min_ttl = ttl;
                    } else {
                        p.max_ttl = ttl;
                    }
                }
                (other, _) => {
                    self.warn(
                        t.location,
                        format!("({owner}) unknown unicast_peer option {other} - ignoring"),
                    );
                    break;
                }
            }
        }
        Some(p)
    }

    // ------------------------------------------------------------ vrrp_sync_group

    fn sync_group(&mut self, n: &Node<'_>) -> Option<VrrpSyncGroup> {
        let name = self.arg(n.stmt, 0)?.text().to_string();
        let mut g = VrrpSyncGroup {
            ignored: self.kept_of(n),
            name: name.clone(),
            instances: Vec::new(),
            track: VrrpTrackers::default(),
            notify: VrrpNotify::default(),
            smtp_alert: false,
            sync_group_tracking_weight: false,
            location: self.loc(n.stmt.location()),
        };
        for c in &n.children {
            let s = c.stmt;
            if self.notify_keyword(s, &mut g.notify) || self.trackers(c, &name, &mut g.track) {
                continue;
            }
            match s.keyword().text() {
                "group" => {
                    for line in &c.children {
                        let m = &line.stmt.keyword();
                        if !self.model.vrrp_instances.iter().any(|i| i.name == m.text()) {
                            self.warn(
                                m.location,
                                format!("Virtual router {} specified in sync group {name} doesn't exist - ignoring", m.text()),
                            );
                        } else if self
                            .model
                            .vrrp_sync_groups
                            .iter()
                            .any(|o| o.instances.iter().any(|i| i == m.text()))
                        {
                            self.err(
                                m.location,
                                format!("Virtual router {} cannot exist in more than one sync group; ignoring {name}", m.text()),
                            );
                        } else if !g.instances.iter().any(|i| i == m.text()) {
                            g.instances.push(m.text().to_string());
                        }
                    }
                }
                "smtp_alert" => g.smtp_alert = self.opt_bool(s).unwrap_or(true),
                "sync_group_tracking_weight" => g.sync_group_tracking_weight = true,
                _ => {}
            }
        }
        if g.instances.is_empty() {
            self.warn(
                &g.location,
                format!("Sync group {name} has no virtual router(s) - removing"),
            );
            return None;
        }
        self.resolve_trackers(&name, &mut g.track, n.stmt.location());
        Some(g)
    }

    // ------------------------------------------------------------ script security

    /// keepalived's VRRP script-security check: a script that exists and
    /// would run as root without `enable_script_security` is a
    /// "SECURITY VIOLATION" (exit 6), reported once.
    fn script_security(&mut self) {
        let gd = &self.model.global_defs;
        if gd.enable_script_security {
            return;
        }
        let global_user = gd.script_user.clone();
        let mut scripts: Vec<(&Script, &Location)> = Vec::new();
        for s in &self.model.vrrp_scripts {
            scripts.push((&s.script, &s.location));
        }
        let notify = |n: &'_ VrrpNotify| {
            [
                &n.master,
                &n.backup,
                &n.fault,
                &n.stop,
                &n.deleted,
                &n.any,
                &n.master_rx_lower_pri,
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<Script>>()
        };
        let mut owned: Vec<(Script, Location)> = Vec::new();
        for i in &self.model.vrrp_instances {
            owned.extend(
                notify(&i.notify)
                    .into_iter()
                    .map(|s| (s, i.location.clone())),
            );
        }
        for g in &self.model.vrrp_sync_groups {
            owned.extend(
                notify(&g.notify)
                    .into_iter()
                    .map(|s| (s, g.location.clone())),
            );
        }
        for (s, l) in &owned {
            scripts.push((s, l));
        }
        let default_user_exists = default_script_user_exists();
        let violation = scripts.iter().find(|(s, _)| {
            let user = s
                .user
                .clone()
                .or_else(|| global_user.clone())
                .or_else(|| default_user_exists.then(|| "keepalived_script".to_string()))
                .unwrap_or_else(|| "root".to_string());
            user == "root" && s.argv.first().is_some_and(|c| script_exists(c))
        });
        if let Some((_, loc)) = violation {
            let loc = (*loc).clone();
            self.diag_class(
                DiagClass::Security,
                Severity::Error,
                &loc,
                "SECURITY VIOLATION - scripts are being executed but script_security not enabled.",
            );
        }
    }

    // ------------------------------------------------------------ ospf_announcer

    fn ipv4_arg(&mut self, s: &Stmt<'_>, what: &str) -> Option<Ipv4Addr> {
        let t = self.arg(s, 0)?;
        let r = match t.text().parse::<Ipv4Addr>() {
            Ok(a) => Ok(a),
            Err(_) => values::uint(t.text(), 0, u64::from(u32::MAX))
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .map(Ipv4Addr::from)
                .ok_or_else(|| format!("ospf_announcer: invalid {what} '{}'", t.text())),
        };
        self.check(t, r)
    }

    fn ospf(&mut self, n: &Node<'_>) -> Option<OspfAnnouncer> {
        let mut router_id = None;
        let mut o = OspfAnnouncer {
            router_id: Ipv4Addr::UNSPECIFIED,
            area: Ipv4Addr::UNSPECIFIED,
            interfaces: Vec::new(),
            announce_as: OspfAnnounceAs::Stub,
            metric: 10,
            location: self.loc(n.stmt.location()),
        };
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "router_id" => {
                    if let Some(a) = self.ipv4_arg(s, "router_id") {
                        if a.is_unspecified() {
                            self.err(
                                s.keyword().location,
                                "ospf_announcer: router_id must not be 0.0.0.0",
                            );
                        } else {
                            router_id = Some(a);
                        }
                    }
                }
                "area" => o.area = self.ipv4_arg(s, "area").unwrap_or(o.area),
                "announce_as" => {
                    if let Some(t) = self.arg(s, 0) {
                        match t.text() {
                            "stub" => o.announce_as = OspfAnnounceAs::Stub,
                            "external" => o.announce_as = OspfAnnounceAs::External,
                            other => self.err(
                                t.location,
                                format!("ospf_announcer: announce_as must be stub or external, not '{other}'"),
                            ),
                        }
                    }
                }
                "metric" => o.metric = self.u32_arg(s, 1, 16_777_214).unwrap_or(o.metric),
                "interface" => {
                    if let Some(i) = self.ospf_interface(c) {
                        if o.interfaces.iter().any(|x| x.name == i.name) {
                            self.err(
                                &i.location,
                                format!(
                                    "ospf_announcer: interface {} is configured twice - ignoring",
                                    i.name
                                ),
                            );
                        } else {
                            o.interfaces.push(i);
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(rid) = router_id else {
            self.err(
                &o.location,
                "ospf_announcer has no router_id - ignoring the block",
            );
            return None;
        };
        o.router_id = rid;
        if o.interfaces.is_empty() {
            self.err(
                &o.location,
                "ospf_announcer has no interface - ignoring the block",
            );
            return None;
        }
        Some(o)
    }

    fn ospf_interface(&mut self, n: &Node<'_>) -> Option<OspfInterface> {
        let t = self.arg(n.stmt, 0)?;
        let name = self.ifname(t)?;
        let mut i = OspfInterface {
            name,
            hello_interval: 10,
            dead_interval: 40,
            priority: 1,
            cost: 10,
            authentication: OspfAuth::None,
            location: self.loc(n.stmt.location()),
        };
        let mut dead = None;
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "hello_interval" => {
                    i.hello_interval = self
                        .uint_arg(s, 1, 65535)
                        .and_then(|v| u16::try_from(v).ok())
                        .unwrap_or(i.hello_interval);
                }
                "dead_interval" => {
                    dead = self
                        .u32_arg(s, 1, u64::from(u32::MAX))
                        .map(|d| (d, self.loc(s.keyword().location)))
                        .or(dead);
                }
                "priority" => {
                    i.priority = self
                        .uint_arg(s, 0, 255)
                        .and_then(|v| u8::try_from(v).ok())
                        .unwrap_or(i.priority);
                }
                "cost" => {
                    i.cost = self
                        .uint_arg(s, 1, 65535)
                        .and_then(|v| u16::try_from(v).ok())
                        .unwrap_or(i.cost);
                }
                "authentication" => {
                    if let Some(a) = self.ospf_auth(s) {
                        i.authentication = a;
                    }
                }
                _ => {}
            }
        }
        i.dead_interval = 4 * u32::from(i.hello_interval);
        if let Some((d, at)) = dead {
            if d <= u32::from(i.hello_interval) {
                self.err(
                    &at,
                    format!("ospf_announcer: dead_interval {d} must be greater than hello_interval {} - using {}", i.hello_interval, i.dead_interval),
                );
            } else {
                i.dead_interval = d;
            }
        }
        Some(i)
    }

    fn ospf_auth(&mut self, s: &Stmt<'_>) -> Option<OspfAuth> {
        let t = self.arg(s, 0)?;
        match t.text() {
            "none" => Some(OspfAuth::None),
            "simple" => {
                let p = self.arg(s, 1)?;
                if p.text().len() > 8 {
                    self.err(
                        p.location,
                        "ospf_announcer: a simple password has at most 8 bytes - ignoring",
                    );
                    return None;
                }
                Some(OspfAuth::Simple(p.text().to_string()))
            }
            "md5" => {
                let id = self.arg(s, 1)?;
                let key_id = self
                    .check(id, values::uint(id.text(), 0, 255))
                    .and_then(|v| u8::try_from(v).ok())?;
                let k = self.arg(s, 2)?;
                if k.text().len() > 16 {
                    self.err(
                        k.location,
                        "ospf_announcer: an md5 key has at most 16 bytes - ignoring",
                    );
                    return None;
                }
                Some(OspfAuth::Md5 {
                    key_id,
                    key: k.text().to_string(),
                })
            }
            other => {
                self.err(
                    t.location,
                    format!(
                        "ospf_announcer: authentication must be md5, simple or none, not '{other}'"
                    ),
                );
                None
            }
        }
    }
}

/// The keyword tree of the VRRP and OSPF levels (see `lookup`).
/// The leaf keywords of the VRRP (and OSPF) levels.
pub(super) fn leaves(level: Level) -> &'static [&'static str] {
    match level {
        Level::VrrpInstance => INSTANCE_LEAVES,
        Level::VrrpScript => SCRIPT_LEAVES,
        Level::VrrpSyncGroup => SYNC_LEAVES,
        Level::TrackFile => TRACK_FILE_LEAVES,
        Level::VrrpAuth => &["auth_type", "auth_pass"],
        Level::Ospf => OSPF_LEAVES,
        Level::OspfInterface => OSPF_IF_LEAVES,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_scopes() {
        assert_eq!(prefix("10.0.0.0/8").map(|p| p.len), Ok(8));
        assert_eq!(prefix("10.0.0.1").map(|p| p.len), Ok(32));
        assert_eq!(prefix("2001:db8::1").map(|p| p.len), Ok(128));
        assert!(prefix("192.168.100./24").is_err());
        assert!(prefix("10.0.0.0/33").is_err());
        assert_eq!(scope("link"), Ok(253));
        assert_eq!(scope("7"), Ok(7));
        assert!(scope("bogus").is_err());
    }
}
