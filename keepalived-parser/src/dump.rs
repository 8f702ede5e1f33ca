//! `dump`: a [`Model`] as canonical keepalived text (`dpvsd -d`).
//!
//! Invariant: every effective value is written explicitly, so loading the
//! text gives back an equal model (compare with [`without_locations`]).
//! Scripts are written for keepalived's script tokeniser; arguments holding
//! blanks are single-quoted.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use crate::diag::Location;
use crate::model::{
    AccessEntry, AuthType, Checker, CheckerKind, DnsType, HashTarget, HttpCheck, HttpProtocol,
    IpAddress, LbAlgo, LbKind, Model, OspfAnnounceAs, OspfAuth, Protocol, ProxyProtocol, Route,
    Rule, Script, Tracked, TunnelKind, VrrpNotify, VrrpState, VrrpTrackers, VsgEntry,
};
use crate::model::{BfdInstance, GarpGroup, Ignored, ParamMatch, SslContext, VrrpTrackProcess};

/// Resets the locations of kept keywords, nested lines included.
fn strip_ignored(list: &mut [Ignored]) {
    for i in list {
        i.location = Location::default();
        if let Some(b) = &mut i.block {
            strip_ignored(b);
        }
    }
}

/// A copy of `m` with every [`Location`] reset, for comparing models that
/// came from different texts.
pub fn without_locations(m: &Model) -> Model {
    let mut m = m.clone();
    let z = Location::default;
    for g in &mut m.local_address_groups {
        g.location = z();
    }
    for g in m
        .deny_address_groups
        .iter_mut()
        .chain(&mut m.allow_address_groups)
    {
        g.location = z();
    }
    for g in &mut m.tunnel_groups {
        g.location = z();
        for e in &mut g.entries {
            e.location = z();
        }
    }
    for g in &mut m.virtual_server_groups {
        g.location = z();
    }
    strip_ignored(&mut m.ignored);
    strip_ignored(&mut m.global_defs.ignored);
    for t in &mut m.vrrp_track_processes {
        t.location = z();
    }
    for b in &mut m.bfd_instances {
        b.location = z();
    }
    for g in &mut m.garp_groups {
        g.location = z();
    }
    if let Some(s) = &mut m.ssl {
        s.location = z();
    }
    for vs in &mut m.virtual_servers {
        vs.location = z();
        strip_ignored(&mut vs.ignored);
        for rs in &mut vs.real_servers {
            rs.location = z();
            strip_ignored(&mut rs.ignored);
            for b in &mut rs.bfd_checks {
                b.location = z();
            }
            for c in &mut rs.checkers {
                c.location = z();
                if let CheckerKind::Http(h) | CheckerKind::Ssl(h) = &mut c.kind {
                    strip_ignored(&mut h.ignored);
                    for u in &mut h.urls {
                        strip_ignored(&mut u.ignored);
                    }
                }
            }
        }
    }
    for s in &mut m.vrrp_scripts {
        s.location = z();
    }
    for t in &mut m.track_files {
        t.location = z();
    }
    for g in &mut m.vrrp_sync_groups {
        g.location = z();
        strip_ignored(&mut g.ignored);
    }
    for a in &mut m.static_ipaddresses {
        a.location = z();
    }
    for r in &mut m.static_routes {
        r.location = z();
    }
    for r in &mut m.static_rules {
        r.location = z();
    }
    for i in &mut m.vrrp_instances {
        i.location = z();
        strip_ignored(&mut i.ignored);
        for a in i
            .virtual_ipaddresses
            .iter_mut()
            .chain(i.virtual_ipaddresses_excluded.iter_mut())
        {
            a.location = z();
        }
        for r in &mut i.virtual_routes {
            r.location = z();
        }
        for r in &mut i.virtual_rules {
            r.location = z();
        }
    }
    if let Some(o) = &mut m.ospf_announcer {
        o.location = z();
        for i in &mut o.interfaces {
            i.location = z();
        }
    }
    m
}

/// A word, double-quoted when keepalived's lexer would otherwise split or cut it.
fn w(s: &str) -> String {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '#' | '!' | '{' | '}' | '\''))
    {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_micros() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}.{:06}", d.as_secs(), d.subsec_micros())
    }
}

fn b(v: bool) -> &'static str {
    if v {
        "true"
    } else {
        "false"
    }
}

/// `"arg0 arg1 ..." [user [group]]` for keepalived's script tokeniser.
fn script(s: &Script) -> String {
    let argv: Vec<String> = s
        .argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.chars().any(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    let mut out = format!("\"{}\"", argv.join(" "));
    if let Some(u) = &s.user {
        let _ = write!(out, " {}", w(u));
        if let Some(g) = &s.group {
            let _ = write!(out, " {}", w(g));
        }
    }
    out
}

struct Out {
    text: String,
    depth: usize,
}

impl Out {
    fn line(&mut self, l: impl AsRef<str>) {
        for _ in 0..self.depth {
            self.text.push_str("    ");
        }
        self.text.push_str(l.as_ref());
        self.text.push('\n');
    }

    fn open(&mut self, l: impl AsRef<str>) {
        self.line(format!("{} {{", l.as_ref()));
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.line("}");
    }

    fn opt<T: std::fmt::Display>(&mut self, kw: &str, v: Option<T>) {
        if let Some(v) = v {
            self.line(format!("{kw} {v}"));
        }
    }
}

/// The model as keepalived.conf text that loads back into an equal model.
pub fn dump(m: &Model) -> String {
    let mut o = Out {
        text: String::new(),
        depth: 0,
    };
    global_defs(&mut o, m);
    ignored(&mut o, &m.ignored);
    if let Some(s) = &m.ssl {
        ssl(&mut o, s);
    }
    for g in &m.garp_groups {
        garp_group(&mut o, g);
    }
    for t in &m.vrrp_track_processes {
        track_process(&mut o, t);
    }
    for b in &m.bfd_instances {
        bfd_instance(&mut o, b);
    }
    for g in &m.local_address_groups {
        o.open(format!("local_address_group {}", w(&g.name)));
        for a in &g.addresses {
            o.line(format!("{} {}", a.addr, w(&a.ifname)));
        }
        o.close();
    }
    for (kw, groups) in [
        ("deny_address_group", &m.deny_address_groups),
        ("allow_address_group", &m.allow_address_groups),
    ] {
        for g in groups {
            o.open(format!("{kw} {}", w(&g.name)));
            for e in &g.entries {
                match e {
                    AccessEntry::Addr(a) => o.line(a.to_string()),
                    AccessEntry::Ipset(set) => o.line(w(&format!("ipset:{set}"))),
                }
            }
            o.close();
        }
    }
    for g in &m.tunnel_groups {
        o.open(format!("tunnel_group {}", w(&g.name)));
        for e in &g.entries {
            o.open(format!("tunnel_entry {}", w(&e.ifname)));
            o.opt(
                "kind",
                e.kind.map(|k| match k {
                    TunnelKind::Ipip => "ipip",
                    TunnelKind::Gre => "gre",
                }),
            );
            o.opt("local", e.local);
            o.opt("remote", e.remote);
            o.opt("if", e.link.as_deref().map(w));
            o.close();
        }
        o.close();
    }
    for t in &m.track_files {
        o.open(format!("track_file {}", w(&t.name)));
        o.line(format!("file {}", w(&t.path)));
        o.line(format!(
            "weight {}{}",
            t.weight,
            if t.reverse { " reverse" } else { "" }
        ));
        if let Some((v, ow)) = t.init_file {
            o.line(format!(
                "init_file {v}{}",
                if ow { " overwrite" } else { "" }
            ));
        }
        o.close();
    }
    for s in &m.vrrp_scripts {
        o.open(format!("vrrp_script {}", w(&s.name)));
        o.line(format!("script \"{}\"", script_argv(&s.script)));
        if let Some(u) = &s.script.user {
            let g = s.script.group.as_deref().map(w).unwrap_or_default();
            o.line(format!("user {} {g}", w(u)).trim_end());
        }
        o.line(format!("interval {}", secs(s.interval)));
        o.line(format!("timeout {}", secs(s.timeout)));
        o.line(format!(
            "weight {}{}",
            s.weight,
            if s.reverse { " reverse" } else { "" }
        ));
        o.line(format!("rise {}", s.rise));
        o.line(format!("fall {}", s.fall));
        if s.init_fail {
            o.line("init_fail");
        }
        o.close();
    }
    if !m.static_ipaddresses.is_empty() {
        o.open("static_ipaddress");
        for a in &m.static_ipaddresses {
            o.line(ip_address(a));
        }
        o.close();
    }
    if !m.static_routes.is_empty() {
        o.open("static_routes");
        for r in &m.static_routes {
            o.line(route(r));
        }
        o.close();
    }
    if !m.static_rules.is_empty() {
        o.open("static_rules");
        for r in &m.static_rules {
            o.line(rule(r));
        }
        o.close();
    }
    for i in &m.vrrp_instances {
        vrrp_instance(&mut o, i);
    }
    for g in &m.vrrp_sync_groups {
        o.open(format!("vrrp_sync_group {}", w(&g.name)));
        o.open("group");
        for n in &g.instances {
            o.line(w(n));
        }
        o.close();
        trackers(&mut o, &g.track);
        notify(&mut o, &g.notify);
        o.line(format!("smtp_alert {}", b(g.smtp_alert)));
        if g.sync_group_tracking_weight {
            o.line("sync_group_tracking_weight");
        }
        ignored(&mut o, &g.ignored);
        o.close();
    }
    for g in &m.virtual_server_groups {
        o.open(format!("virtual_server_group {}", w(&g.name)));
        for e in &g.entries {
            match e {
                VsgEntry::Fwmark(f) => o.line(format!("fwmark {f}")),
                VsgEntry::Range { first, last, port } => {
                    let range = match (first, last) {
                        (a, l) if a == l => a.to_string(),
                        (IpAddr::V4(a), IpAddr::V4(l)) => format!("{a}-{}", l.octets()[3]),
                        (a, IpAddr::V6(l)) => format!("{a}-{:x}", l.segments()[7]),
                        (a, _) => a.to_string(),
                    };
                    o.line(format!("{range} {port}"));
                }
            }
        }
        o.close();
    }
    for vs in &m.virtual_servers {
        virtual_server(&mut o, vs);
    }
    if let Some(a) = &m.ospf_announcer {
        o.open("ospf_announcer");
        o.line(format!("router_id {}", a.router_id));
        o.line(format!("area {}", a.area));
        for i in &a.interfaces {
            o.open(format!("interface {}", w(&i.name)));
            o.line(format!("hello_interval {}", i.hello_interval));
            o.line(format!("dead_interval {}", i.dead_interval));
            o.line(format!("priority {}", i.priority));
            o.line(format!("cost {}", i.cost));
            o.line(match &i.authentication {
                OspfAuth::None => "authentication none".to_string(),
                OspfAuth::Simple(p) => format!("authentication simple {}", w(p)),
                OspfAuth::Md5 { key_id, key } => format!("authentication md5 {key_id} {}", w(key)),
            });
            o.close();
        }
        o.line(match a.announce_as {
            OspfAnnounceAs::Stub => "announce_as stub",
            OspfAnnounceAs::External => "announce_as external",
        });
        o.line(format!("metric {}", a.metric));
        o.close();
    }
    o.text
}

fn script_argv(s: &Script) -> String {
    let full = script(&Script {
        argv: s.argv.clone(),
        user: None,
        group: None,
    });
    full.trim_matches('"').to_string()
}

fn global_defs(o: &mut Out, m: &Model) {
    let g = &m.global_defs;
    o.open("global_defs");
    o.opt("router_id", g.router_id.as_deref().map(w));
    if !g.notification_email.is_empty() {
        o.open("notification_email");
        for e in &g.notification_email {
            o.line(w(e));
        }
        o.close();
    }
    o.opt(
        "notification_email_from",
        g.notification_email_from.as_deref().map(w),
    );
    if let Some(s) = &g.smtp_server {
        match g.smtp_port {
            Some(p) => o.line(format!("smtp_server {} {p}", w(s))),
            None => o.line(format!("smtp_server {}", w(s))),
        }
    }
    o.opt("smtp_connect_timeout", g.smtp_connect_timeout.map(secs));
    if g.enable_script_security {
        o.line("enable_script_security");
    }
    o.opt("state_dump_file", g.state_dump_file.as_deref().map(w));
    o.opt("stats_dump_file", g.stats_dump_file.as_deref().map(w));
    if let Some(u) = &g.script_user {
        let grp = g.script_group.as_deref().map(w).unwrap_or_default();
        o.line(format!("script_user {} {grp}", w(u)).trim_end());
    }
    let v = &g.vrrp;
    o.line(format!("vrrp_mcast_group4 {}", v.mcast_group4));
    o.line(format!("vrrp_mcast_group6 {}", v.mcast_group6));
    o.line(format!("default_interface {}", w(&v.default_interface)));
    o.line(format!("vrrp_version {}", v.version));
    o.line(format!(
        "vrrp_garp_master_delay {}",
        secs(v.garp.master_delay)
    ));
    o.line(format!("vrrp_garp_master_repeat {}", v.garp.master_repeat));
    o.line(format!(
        "vrrp_garp_master_refresh {}",
        secs(v.garp.master_refresh)
    ));
    o.line(format!(
        "vrrp_garp_master_refresh_repeat {}",
        v.garp.master_refresh_repeat
    ));
    o.line(format!(
        "vrrp_garp_lower_prio_delay {}",
        secs(v.garp.lower_prio_delay)
    ));
    o.line(format!(
        "vrrp_garp_lower_prio_repeat {}",
        v.garp.lower_prio_repeat
    ));
    if !v.garp_interval.is_zero() {
        o.line(format!("vrrp_garp_interval {}", secs(v.garp_interval)));
    }
    if !v.gna_interval.is_zero() {
        o.line(format!("vrrp_gna_interval {}", secs(v.gna_interval)));
    }
    o.line(format!("vrrp_min_garp {}", b(v.min_garp)));
    o.line(format!("vrrp_down_timer_adverts {}", v.down_timer_adverts));
    o.line(format!(
        "vrrp_lower_prio_no_advert {}",
        b(v.lower_prio_no_advert)
    ));
    o.line(format!(
        "vrrp_higher_prio_send_advert {}",
        b(v.higher_prio_send_advert)
    ));
    if v.check_unicast_src {
        o.line("vrrp_check_unicast_src");
    }
    o.line(format!(
        "vrrp_skip_check_adv_addr {}",
        b(v.skip_check_adv_addr)
    ));
    if v.strict {
        o.line("vrrp_strict");
    }
    o.line(format!("vrrp_startup_delay {}", secs(v.startup_delay)));
    o.line(format!(
        "vrrp_notify_priority_changes {}",
        b(v.notify_priority_changes)
    ));
    ignored(o, &g.ignored);
    o.close();
}

fn ip_address(a: &IpAddress) -> String {
    let mut l = format!("{}/{}", a.addr, a.prefix_len);
    if let Some(d) = &a.dev {
        let _ = write!(l, " dev {}", w(d));
    }
    if let Some(x) = &a.brd {
        let _ = write!(l, " brd {x}");
    }
    if let Some(x) = a.scope {
        let _ = write!(l, " scope {x}");
    }
    if let Some(x) = &a.label {
        let _ = write!(l, " label {}", w(x));
    }
    if let Some(x) = a.peer {
        let _ = write!(l, " peer {x}");
    }
    if let Some(x) = &a.preferred_lft {
        let _ = write!(l, " preferred_lft {}", w(x));
    }
    for f in &a.flags {
        let _ = write!(l, " {f}");
    }
    if a.no_track {
        l.push_str(" no_track");
    }
    l
}

fn route(r: &Route) -> String {
    let mut l = String::new();
    if let Some(t) = &r.route_type {
        let _ = write!(l, "{t} ");
    }
    let _ = write!(l, "{}/{}", r.dest.addr, r.dest.len);
    if let Some(x) = r.src {
        let _ = write!(l, " src {x}");
    }
    if let Some(x) = r.via {
        let _ = write!(l, " via {x}");
    }
    if let Some(x) = &r.dev {
        let _ = write!(l, " dev {}", w(x));
    }
    if let Some(x) = &r.table {
        let _ = write!(l, " table {}", w(x));
    }
    if let Some(x) = r.metric {
        let _ = write!(l, " metric {x}");
    }
    if let Some(x) = r.scope {
        let _ = write!(l, " scope {x}");
    }
    for (k, v) in &r.options {
        let _ = write!(l, " {k}");
        if !v.is_empty() {
            let _ = write!(l, " {}", w(v));
        }
    }
    if r.no_track {
        l.push_str(" no_track");
    }
    for n in &r.nexthops {
        l.push_str(" nexthop");
        if let Some(x) = n.via {
            let _ = write!(l, " via {x}");
        }
        if let Some(x) = &n.dev {
            let _ = write!(l, " dev {}", w(x));
        }
        if let Some(x) = n.weight {
            let _ = write!(l, " weight {x}");
        }
    }
    l
}

fn rule(r: &Rule) -> String {
    let mut l = String::new();
    if let Some(p) = r.from {
        let _ = write!(l, "from {}/{} ", p.addr, p.len);
    }
    if let Some(p) = r.to {
        let _ = write!(l, "to {}/{} ", p.addr, p.len);
    }
    if let Some(t) = &r.table {
        let _ = write!(l, "table {} ", w(t));
    }
    let _ = write!(l, "preference {}", r.preference);
    for (k, v) in &r.options {
        let _ = write!(l, " {k}");
        if !v.is_empty() {
            let _ = write!(l, " {}", w(v));
        }
    }
    if r.no_track {
        l.push_str(" no_track");
    }
    l
}

fn tracked_block(o: &mut Out, kw: &str, list: &[Tracked]) {
    if list.is_empty() {
        return;
    }
    o.open(kw);
    for t in list {
        match t.weight {
            Some(wt) => o.line(format!(
                "{} weight {wt}{}",
                w(&t.name),
                if t.reverse { " reverse" } else { "" }
            )),
            None => o.line(w(&t.name)),
        }
    }
    o.close();
}

fn trackers(o: &mut Out, t: &VrrpTrackers) {
    tracked_block(o, "track_interface", &t.interfaces);
    tracked_block(o, "track_script", &t.scripts);
    tracked_block(o, "track_file", &t.files);
    tracked_block(o, "track_process", &t.processes);
    tracked_block(o, "track_bfd", &t.bfds);
}

fn notify(o: &mut Out, n: &VrrpNotify) {
    for (kw, s) in [
        ("notify_master", &n.master),
        ("notify_backup", &n.backup),
        ("notify_fault", &n.fault),
        ("notify_stop", &n.stop),
        ("notify_deleted", &n.deleted),
        ("notify", &n.any),
        ("notify_master_rx_lower_pri", &n.master_rx_lower_pri),
    ] {
        if let Some(s) = s {
            o.line(format!("{kw} {}", script(s)));
        }
    }
}

fn vrrp_instance(o: &mut Out, i: &crate::model::VrrpInstance) {
    o.open(format!("vrrp_instance {}", w(&i.name)));
    o.line(match i.state {
        VrrpState::Master => "state MASTER",
        VrrpState::Backup => "state BACKUP",
    });
    o.opt("interface", i.interface.as_deref().map(w));
    o.opt("dpdk_interface", i.dpdk_interface.as_deref().map(w));
    o.line(format!("virtual_router_id {}", i.virtual_router_id));
    o.line(format!("priority {}", i.priority));
    o.line(format!("advert_int {}", secs(i.advert_int)));
    o.line(format!("version {}", i.version));
    if let Some(src) = i.src_ip {
        if i.interface.is_none() || !i.unicast_peers.is_empty() {
            o.line(format!("unicast_src_ip {src}"));
        } else {
            o.line(format!("mcast_src_ip {src}"));
        }
    }
    o.opt("mcast_dst_ip", i.mcast_dst_ip);
    if !i.unicast_peers.is_empty() {
        o.open("unicast_peer");
        for p in &i.unicast_peers {
            let mut l = p.addr.to_string();
            if let Some(t) = p.min_ttl {
                let _ = write!(l, " min_ttl {t}");
            }
            if let Some(t) = p.max_ttl {
                let _ = write!(l, " max_ttl {t}");
            }
            o.line(l);
        }
        o.close();
    }
    o.opt("unicast_ttl", i.unicast_ttl);
    if i.dont_track_primary {
        o.line("dont_track_primary");
    }
    if i.use_vmac {
        o.line("use_vmac");
    }
    for (kw, list) in [
        ("virtual_ipaddress", &i.virtual_ipaddresses),
        (
            "virtual_ipaddress_excluded",
            &i.virtual_ipaddresses_excluded,
        ),
    ] {
        if !list.is_empty() {
            o.open(kw);
            for a in list {
                o.line(ip_address(a));
            }
            o.close();
        }
    }
    if !i.virtual_routes.is_empty() {
        o.open("virtual_routes");
        for r in &i.virtual_routes {
            o.line(route(r));
        }
        o.close();
    }
    if !i.virtual_rules.is_empty() {
        o.open("virtual_rules");
        for r in &i.virtual_rules {
            o.line(rule(r));
        }
        o.close();
    }
    trackers(o, &i.track);
    if i.nopreempt {
        o.line("nopreempt");
    }
    if !i.preempt_delay.is_zero() {
        o.line(format!("preempt_delay {}", secs(i.preempt_delay)));
    }
    o.line(if i.accept { "accept" } else { "no_accept" });
    o.line(format!("strict_mode {}", b(i.strict_mode)));
    o.line(format!("skip_check_adv_addr {}", b(i.skip_check_adv_addr)));
    if let Some(a) = &i.authentication {
        o.open("authentication");
        o.line(match a.auth_type {
            AuthType::Pass => "auth_type PASS",
            AuthType::Ah => "auth_type AH",
        });
        if !a.password.is_empty() {
            o.line(format!("auth_pass {}", w(&a.password)));
        }
        o.close();
    }
    let g = &i.garp;
    o.line(format!("garp_master_delay {}", secs(g.master_delay)));
    o.line(format!("garp_master_repeat {}", g.master_repeat));
    o.line(format!("garp_master_refresh {}", secs(g.master_refresh)));
    o.line(format!(
        "garp_master_refresh_repeat {}",
        g.master_refresh_repeat
    ));
    o.line(format!(
        "garp_lower_prio_delay {}",
        secs(g.lower_prio_delay)
    ));
    o.line(format!("garp_lower_prio_repeat {}", g.lower_prio_repeat));
    o.line(format!("down_timer_adverts {}", i.down_timer_adverts));
    o.line(format!(
        "lower_prio_no_advert {}",
        b(i.lower_prio_no_advert)
    ));
    o.line(format!(
        "higher_prio_send_advert {}",
        b(i.higher_prio_send_advert)
    ));
    notify(o, &i.notify);
    o.line(format!("smtp_alert {}", b(i.smtp_alert)));
    ignored(o, &i.ignored);
    o.close();
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        Protocol::Icmp => "ICMP",
        Protocol::Icmpv6 => "ICMPV6",
    }
}

fn algo(a: LbAlgo) -> &'static str {
    match a {
        LbAlgo::Rr => "rr",
        LbAlgo::Wrr => "wrr",
        LbAlgo::Lc => "lc",
        LbAlgo::Wlc => "wlc",
        LbAlgo::Lblc => "lblc",
        LbAlgo::Sh => "sh",
        LbAlgo::Mh => "mh",
        LbAlgo::Dh => "dh",
        LbAlgo::Fo => "fo",
        LbAlgo::Ovf => "ovf",
        LbAlgo::Lblcr => "lblcr",
        LbAlgo::Sed => "sed",
        LbAlgo::Nq => "nq",
        LbAlgo::Twos => "twos",
        LbAlgo::Conhash => "conhash",
    }
}

fn kind(k: LbKind) -> &'static str {
    match k {
        LbKind::Nat => "NAT",
        LbKind::Dr => "DR",
        LbKind::Tun => "TUN",
        LbKind::Fnat => "FNAT",
        LbKind::Snat => "SNAT",
    }
}

fn virtual_server(o: &mut Out, vs: &crate::model::VirtualServer) {
    let header = if let Some(f) = vs.fwmark {
        format!("fwmark {f}")
    } else if let Some(g) = &vs.group {
        format!("group {}", w(g))
    } else if let Some(n) = &vs.match_name {
        format!("match {}", w(n))
    } else {
        format!("{} {}", vs.addr, vs.port)
    };
    o.open(format!("virtual_server {header}"));
    o.line(format!("protocol {}", protocol(vs.protocol)));
    o.line(format!("lb_algo {}", algo(vs.lb_algo)));
    o.line(format!("lb_kind {}", kind(vs.lb_kind)));
    o.line(format!("delay_loop {}", secs(vs.delay_loop)));
    o.opt("laddr_group_name", vs.laddr_group_name.as_deref().map(w));
    o.opt("persistence_timeout", vs.persistence_timeout);
    o.opt("persistence_granularity", vs.persistence_granularity);
    o.opt("virtualhost", vs.virtualhost.as_deref().map(w));
    if vs.alpha {
        o.line("alpha");
    }
    if vs.omega {
        o.line("omega");
    }
    o.line(format!("quorum {}", vs.quorum));
    o.line(format!("hysteresis {}", vs.hysteresis));
    if let Some(s) = &vs.quorum_up {
        o.line(format!("quorum_up {}", script(s)));
    }
    if let Some(s) = &vs.quorum_down {
        o.line(format!("quorum_down {}", script(s)));
    }
    if let Some(s) = &vs.sorry_server {
        o.line(format!("sorry_server {} {}", s.addr, s.port));
        if s.inhibit {
            o.line("sorry_server_inhibit");
        }
    }
    if vs.ha_suspend {
        o.line("ha_suspend");
    }
    let d = &vs.dpvs;
    o.opt("establish_timeout", d.establish_timeout);
    if d.syn_proxy {
        o.line("syn_proxy");
    }
    if d.expire_quiescent_conn {
        o.line("expire_quiescent_conn");
    }
    if d.quic {
        o.line("quic");
    }
    match d.proxy_protocol {
        ProxyProtocol::Disabled => {}
        ProxyProtocol::V1 => o.line("proxy_protocol v1"),
        ProxyProtocol::V2 => o.line("proxy_protocol v2"),
        ProxyProtocol::V1Insecure => o.line("proxy_protocol v1-insecure"),
        ProxyProtocol::V2Insecure => o.line("proxy_protocol v2-insecure"),
    }
    if d.hash_target == HashTarget::Qid {
        o.line("hash_target qid");
    }
    o.line(format!("bps {}", d.bps));
    o.line(format!("limit_proportion {}", d.limit_proportion));
    o.opt("vip_bind_dev", d.vip_bind_dev.as_deref().map(w));
    o.opt("daddr_group_name", d.daddr_group_name.as_deref().map(w));
    o.opt("waddr_group_name", d.waddr_group_name.as_deref().map(w));
    o.opt("src-range", d.src_range.as_deref().map(w));
    o.opt("dst-range", d.dst_range.as_deref().map(w));
    o.opt("iif", d.iif.as_deref().map(w));
    o.opt("oif", d.oif.as_deref().map(w));
    ignored(o, &vs.ignored);
    for rs in &vs.real_servers {
        o.open(format!("real_server {} {}", rs.addr, rs.port));
        o.line(format!("weight {}", rs.weight));
        if rs.uthreshold != 0 {
            o.line(format!("uthreshold {}", rs.uthreshold));
        }
        if rs.lthreshold != 0 {
            o.line(format!("lthreshold {}", rs.lthreshold));
        }
        if rs.inhibit_on_failure {
            o.line("inhibit_on_failure");
        }
        if let Some(s) = &rs.notify_up {
            o.line(format!("notify_up {}", script(s)));
        }
        if let Some(s) = &rs.notify_down {
            o.line(format!("notify_down {}", script(s)));
        }
        for c in &rs.checkers {
            checker(o, c);
        }
        for c in &rs.bfd_checks {
            o.open("BFD_CHECK");
            o.line(format!("name {}", w(&c.name)));
            o.line(format!("alpha {}", b(c.alpha)));
            o.close();
        }
        ignored(o, &rs.ignored);
        o.close();
    }
    o.close();
}

fn hex(bytes: &[u8], wildcard: &[u8]) -> String {
    let mut s = String::new();
    for (i, byte) in bytes.iter().enumerate() {
        let wc = wildcard.get(i).copied().unwrap_or(0);
        for (shift, mask) in [(4u8, 0xf0u8), (0, 0x0f)] {
            if wc & mask == mask {
                s.push('X');
            } else {
                let _ = write!(s, "{:x}", (byte & mask) >> shift);
            }
        }
    }
    s
}

fn http(o: &mut Out, h: &HttpCheck) {
    o.line(match h.http_protocol {
        HttpProtocol::Http10 => "http_protocol 1.0",
        HttpProtocol::Http10C => "http_protocol 1.0C",
        HttpProtocol::Http11 => "http_protocol 1.1",
    });
    o.opt("virtualhost", h.virtualhost.as_deref().map(w));
    o.line(format!("enable_sni {}", b(h.enable_sni)));
    o.line(format!("fast_recovery {}", b(h.fast_recovery)));
    ignored(o, &h.ignored);
    for u in &h.urls {
        o.open("url");
        o.line(format!("path {}", w(&u.path)));
        for d in &u.digests {
            let mut x = String::new();
            for byte in d {
                let _ = write!(x, "{byte:02x}");
            }
            o.line(format!("digest {x}"));
        }
        let codes: Vec<String> = u
            .status_codes
            .iter()
            .map(|(a, z)| {
                if a == z {
                    a.to_string()
                } else {
                    format!("{a}-{z}")
                }
            })
            .collect();
        o.line(format!("status_code {}", codes.join(" ")));
        o.opt("virtualhost", u.virtualhost.as_deref().map(w));
        if let Some(r) = &u.regex {
            o.line(format!("regex \"{r}\""));
        }
        if u.regex_no_match {
            o.line("regex_no_match");
        }
        ignored(o, &u.ignored);
        o.close();
    }
}

fn checker(o: &mut Out, c: &Checker) {
    let kw = match &c.kind {
        CheckerKind::Tcp => "TCP_CHECK",
        CheckerKind::Http(_) => "HTTP_GET",
        CheckerKind::Ssl(_) => "SSL_GET",
        CheckerKind::Misc(_) => "MISC_CHECK",
        CheckerKind::Smtp(_) => "SMTP_CHECK",
        CheckerKind::Dns(_) => "DNS_CHECK",
        CheckerKind::Udp(_) => "UDP_CHECK",
        CheckerKind::Ping => "PING_CHECK",
        CheckerKind::File(_) => "FILE_CHECK",
    };
    o.open(kw);
    let conn = !matches!(c.kind, CheckerKind::Misc(_) | CheckerKind::File(_));
    if conn {
        o.line(format!("connect_ip {}", c.connect_ip));
        o.line(format!("connect_port {}", c.connect_port));
        o.opt("bindto", c.bindto);
        o.opt("bind_port", c.bind_port);
        o.opt("bind_if", c.bind_if.as_deref().map(w));
        o.opt("fwmark", c.fwmark);
        o.line(format!("connect_timeout {}", secs(c.connect_timeout)));
    }
    if !matches!(c.kind, CheckerKind::File(_)) {
        o.line(format!("retry {}", c.retry));
        o.line(format!("delay_before_retry {}", secs(c.delay_before_retry)));
        o.line(format!("delay_loop {}", secs(c.delay_loop)));
        o.line(format!("warmup {}", secs(c.warmup)));
        o.line(format!("alpha {}", b(c.alpha)));
        o.line(format!("log_all_failures {}", b(c.log_all_failures)));
    }
    match &c.kind {
        CheckerKind::Tcp | CheckerKind::Ping => {}
        CheckerKind::Http(h) | CheckerKind::Ssl(h) => http(o, h),
        CheckerKind::Misc(m) => {
            o.line(format!(
                "misc_path {}",
                script(&Script {
                    argv: m.argv.clone(),
                    user: None,
                    group: None,
                })
            ));
            if m.timeout != c.delay_loop && m.timeout.subsec_nanos() == 0 {
                o.line(format!("misc_timeout {}", m.timeout.as_secs()));
            }
            if m.dynamic {
                o.line("misc_dynamic");
            }
            if let Some(u) = &m.user {
                let g = m.group.as_deref().map(w).unwrap_or_default();
                o.line(format!("user {} {g}", w(u)).trim_end());
            }
        }
        CheckerKind::Smtp(s) => o.line(format!("helo_name {}", w(&s.helo_name))),
        CheckerKind::Dns(d) => {
            o.line(match d.qtype {
                DnsType::A => "type A",
                DnsType::Ns => "type NS",
                DnsType::Cname => "type CNAME",
                DnsType::Soa => "type SOA",
                DnsType::Mx => "type MX",
                DnsType::Txt => "type TXT",
                DnsType::Aaaa => "type AAAA",
            });
            o.line(format!("name {}", w(&d.name)));
        }
        CheckerKind::Udp(u) => {
            if !u.payload.is_empty() {
                o.line(format!("payload {}", hex(&u.payload, &[])));
            }
            if let Some(r) = &u.require_reply {
                o.line(format!("require_reply {}", hex(&r.data, &r.wildcard)).trim_end());
            }
            o.line(format!("min_reply_length {}", u.min_reply_length));
            o.line(format!("max_reply_length {}", u.max_reply_length));
        }
        CheckerKind::File(f) => {
            o.line(format!("track_file {}", w(&f.track_file)));
            if let Some(wt) = f.weight {
                o.line(format!(
                    "weight {wt}{}",
                    if f.reverse { " reverse" } else { "" }
                ));
            }
        }
    }
    o.close();
}

/// Keywords kept as written (dpvsd does not implement them).
fn ignored(o: &mut Out, list: &[Ignored]) {
    for i in list {
        let mut l = i.keyword.clone();
        for a in &i.args {
            l.push(' ');
            l.push_str(&w(a));
        }
        match &i.block {
            None => o.line(l),
            Some(block) => {
                o.open(l);
                ignored(o, block);
                o.close();
            }
        }
    }
}

/// Milliseconds with up to 3 decimals (the BFD intervals).
fn millis(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1000 == 0 {
        (us / 1000).to_string()
    } else {
        format!("{}.{:03}", us / 1000, us % 1000)
    }
}

fn ssl(o: &mut Out, s: &SslContext) {
    o.open("SSL");
    o.opt("password", s.password.as_deref().map(w));
    o.opt("ca", s.ca.as_deref().map(w));
    o.opt("certificate", s.certificate.as_deref().map(w));
    o.opt("key", s.key.as_deref().map(w));
    o.close();
}

fn garp_group(o: &mut Out, g: &GarpGroup) {
    o.open("garp_group");
    o.opt("garp_interval", g.garp_interval.map(secs));
    o.opt("gna_interval", g.gna_interval.map(secs));
    if g.aggregate {
        o.open("interfaces");
        for i in &g.interfaces {
            o.line(w(i));
        }
        o.close();
    } else {
        for i in &g.interfaces {
            o.line(format!("interface {}", w(i)));
        }
    }
    o.close();
}

fn track_process(o: &mut Out, t: &VrrpTrackProcess) {
    o.open(format!("vrrp_track_process {}", w(&t.name)));
    let mut p = format!("process {}", w(&t.process));
    for a in &t.params {
        p.push(' ');
        p.push_str(&w(a));
    }
    o.line(p);
    match t.param_match {
        // Parameters imply exact matching.
        Some(ParamMatch::Exact) if !t.params.is_empty() => {}
        Some(ParamMatch::Exact) => o.line("param_match"),
        Some(ParamMatch::Initial) => o.line("param_match initial"),
        Some(ParamMatch::Partial) => o.line("param_match partial"),
        None => {}
    }
    o.line(format!(
        "weight {}{}",
        t.weight,
        if t.reverse { " reverse" } else { "" }
    ));
    if t.quorum_max != u32::MAX {
        o.line(format!("quorum_max {}", t.quorum_max));
    }
    if t.quorum_max != 0 {
        o.line(format!("quorum {}", t.quorum));
    }
    if !t.fork_delay.is_zero() {
        o.line(format!("fork_delay {}", secs(t.fork_delay)));
    }
    if !t.terminate_delay.is_zero() {
        o.line(format!("terminate_delay {}", secs(t.terminate_delay)));
    }
    if t.full_command {
        o.line("full_command");
    }
    o.close();
}

fn bfd_instance(o: &mut Out, bi: &BfdInstance) {
    o.open(format!("bfd_instance {}", w(&bi.name)));
    o.line(format!("neighbor_ip {}", bi.neighbor));
    o.opt("source_ip", bi.source);
    o.line(format!("min_rx {}", millis(bi.min_rx)));
    o.line(format!("min_tx {}", millis(bi.min_tx)));
    o.line(format!("idle_tx {}", millis(bi.idle_tx)));
    o.line(format!("multiplier {}", bi.multiplier));
    if bi.passive {
        o.line("passive");
    }
    o.line(format!("ttl {}", bi.ttl));
    o.line(format!("max_hops {}", bi.max_hops));
    o.line(format!(
        "weight {}{}",
        bi.weight,
        if bi.reverse { " reverse" } else { "" }
    ));
    if bi.vrrp {
        o.line("vrrp");
    }
    if bi.checker {
        o.line("checker");
    }
    o.close();
}
