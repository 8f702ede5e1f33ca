//! Text output of `dpvsctl`, in the spirit of `ipvsadm -ln --stats`.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::ctl::{
    CheckInfo, ListInfo, LogLevelInfo, OspfInfo, ReloadInfo, StatusInfo, VrrpInfo, WeightInfo,
};

/// `ADDR:PORT`, with an IPv6 address in brackets.
fn vip_port(vip: &str, port: u16) -> String {
    if vip.contains(':') {
        format!("[{vip}]:{port}")
    } else {
        format!("{vip}:{port}")
    }
}

/// `dpvsctl list` (the layout of `ipvsadm -ln`, plus health).
pub fn list(info: &ListInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Prot LocalAddress:Port Scheduler Flags");
    let _ = writeln!(
        out,
        "  -> RemoteAddress:Port           Forward Weight ActiveConn Health"
    );
    for s in &info.services {
        // A match (SNAT) service shows its match, as DPVS's ipvsadm does.
        let vip = match &s.snat_match {
            Some(m) => format!("MATCH#{} {m}", s.port),
            None => vip_port(&s.vip, s.port),
        };
        let _ = writeln!(
            out,
            "{:<4} {:<22} {}",
            s.protocol,
            vip,
            [std::slice::from_ref(&s.scheduler), &s.flags]
                .concat()
                .join(" ")
        );
        for r in &s.real_servers {
            let weight = r
                .current_weight
                .map_or_else(|| "-".to_string(), |w| w.to_string());
            let flag = if r.weight_override.is_some() {
                " (override)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  -> {:<27} {:<7} {:>6} {:>10} {}{flag}",
                r.addr, s.forwarding, weight, r.stats.active_conns, r.health
            );
        }
        if let Some(sorry) = &s.sorry_server {
            let weight = sorry
                .current_weight
                .map_or_else(|| "-".to_string(), |w| w.to_string());
            let state = if sorry.in_service {
                "sorry server, in service (quorum down)"
            } else {
                "sorry server, standby"
            };
            let _ = writeln!(
                out,
                "  -> {:<27} {:<7} {:>6} {:>10} {state}",
                sorry.addr, s.forwarding, weight, sorry.stats.active_conns
            );
        }
    }
    out
}

/// Per-second rates of one row: the dataplane's estimator (LVS's 2 s EWMA).
pub use dataplane::rate::Rates;

/// One real server's rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRates {
    pub addr: String,
    pub rates: Rates,
}

/// One virtual server's rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRates {
    pub protocol: String,
    pub vip: String,
    pub port: u16,
    pub rates: Rates,
    pub real_servers: Vec<ServerRates>,
}

/// `dpvsctl list --rate`: the dataplane's rates, estimated every
/// `interval_secs` (LVS's estimator period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateInfo {
    pub interval_secs: f64,
    pub services: Vec<ServiceRates>,
}

impl RateInfo {
    /// The rates of every service and server of a `list` answer.
    pub fn of(info: &ListInfo) -> RateInfo {
        let services = info
            .services
            .iter()
            .map(|s| ServiceRates {
                protocol: s.protocol.clone(),
                vip: s.vip.clone(),
                port: s.port,
                rates: s.stats.rates,
                real_servers: s
                    .real_servers
                    .iter()
                    .map(|r| ServerRates {
                        addr: r.addr.clone(),
                        rates: r.stats.rates,
                    })
                    .collect(),
            })
            .collect();
        RateInfo {
            interval_secs: dataplane::rate::PERIOD_MS as f64 / 1000.0,
            services,
        }
    }
}

/// `dpvsctl list --rate` (the layout of `ipvsadm -ln --rate`).
pub fn rates(info: &RateInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    );
    let _ = writeln!(out, "  -> RemoteAddress:Port");
    for s in &info.services {
        let r = &s.rates;
        let vip = vip_port(&s.vip, s.port);
        let _ = writeln!(
            out,
            "{:<4} {:<27} {:>8} {:>8} {:>8} {:>8} {:>8}",
            s.protocol, vip, r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps
        );
        for rs in &s.real_servers {
            let r = &rs.rates;
            let _ = writeln!(
                out,
                "  -> {:<27} {:>8} {:>8} {:>8} {:>8} {:>8}",
                rs.addr, r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps
            );
        }
    }
    out
}

/// One real server in `dpvsctl health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEntry {
    /// `PROTO VIP:PORT`.
    pub service: String,
    pub server: String,
    pub health: String,
    pub weight: u32,
    pub current_weight: Option<u32>,
    pub weight_override: Option<u32>,
    pub checks: Vec<CheckInfo>,
}

/// `dpvsctl health` from a `list` answer.
pub fn health_entries(info: &ListInfo) -> Vec<HealthEntry> {
    info.services
        .iter()
        .flat_map(|s| {
            s.real_servers.iter().map(move |r| HealthEntry {
                service: format!("{} {}", s.protocol, vip_port(&s.vip, s.port)),
                server: r.addr.clone(),
                health: r.health.clone(),
                weight: r.weight,
                current_weight: r.current_weight,
                weight_override: r.weight_override,
                checks: r.checks.clone(),
            })
        })
        .collect()
}

/// `dpvsctl health`.
pub fn health(entries: &[HealthEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let weight = match (e.current_weight, e.weight_override) {
            (Some(w), Some(_)) => format!("weight {w} (override; configured {})", e.weight),
            (Some(w), None) => format!("weight {w}"),
            (None, _) => "not in the table".to_string(),
        };
        let _ = writeln!(out, "{} -> {}  {}  {weight}", e.service, e.server, e.health);
        if e.checks.is_empty() {
            let _ = writeln!(out, "    (no checkers: always up)");
        }
        for c in &e.checks {
            let last = match c.last_ok {
                None => "not run yet",
                Some(true) => "ok",
                Some(false) => "failed",
            };
            let mean = if c.latency.count > 0 {
                format!(
                    ", mean {:.1} ms",
                    c.latency.sum_us as f64 / c.latency.count as f64 / 1000.0
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "    {} {}: {} (last {last}, {} consecutive failure(s), {} run{mean})",
                c.kind,
                c.target,
                if c.up { "up" } else { "down" },
                c.consecutive_failures,
                c.checks_run
            );
            if let Some(err) = &c.last_error {
                let _ = writeln!(out, "      last error: {err}");
            }
            if let Some(ms) = c.last_transition_unix_ms {
                let _ = writeln!(
                    out,
                    "      last transition: unix {}.{:03}",
                    ms / 1000,
                    ms % 1000
                );
            }
        }
    }
    out
}

/// `dpvsctl weight|drain|enable`.
pub fn weight(w: &WeightInfo) -> String {
    let now = w.current_weight.map_or_else(
        || "not in the table (down)".to_string(),
        |c| format!("weight {c}"),
    );
    match w.weight_override {
        Some(o) => format!("{} -> {}: override {o}, now {now}\n", w.service, w.server),
        None => format!("{} -> {}: no override, now {now}\n", w.service, w.server),
    }
}

/// `dpvsctl conns` (the layout of `ipvsadm -lnc`, plus the local address).
pub fn conns(c: &crate::ctl::ConnsInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dpvsd connection entries ({} shown of {}{})",
        c.conns.len(),
        c.total,
        if c.truncated { ", truncated" } else { "" }
    );
    let _ = writeln!(
        out,
        "pro expire state       source                virtual               local                 destination"
    );
    for e in &c.conns {
        let secs = e.expires_in_ms / 1000;
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<21} {:<21} {:<21} {}",
            e.protocol,
            secs / 60,
            secs % 60,
            e.state,
            e.client,
            e.virtual_server,
            e.local,
            e.real_server
        );
    }
    out
}

/// `dpvsctl log-level`.
pub fn log_level(l: &LogLevelInfo) -> String {
    format!("log level: {}\n", l.level)
}

/// `dpvsctl list --stats`.
pub fn list_stats(info: &ListInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Prot LocalAddress:Port Scheduler Forward        ActConn    Conns   InPkts  OutPkts  InBytes OutBytes"
    );
    let _ = writeln!(
        out,
        "  -> RemoteAddress:Port          Health Weight  ActConn    Conns   InPkts  OutPkts  InBytes OutBytes"
    );
    for s in &info.services {
        let vip = vip_port(&s.vip, s.port);
        let _ = writeln!(
            out,
            "{:<4} {:<22} {:<4} {:<7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            s.protocol,
            vip,
            s.scheduler,
            s.forwarding,
            s.stats.active_conns,
            s.stats.conns,
            s.stats.in_pkts,
            s.stats.out_pkts,
            s.stats.in_bytes,
            s.stats.out_bytes
        );
        for r in &s.real_servers {
            let weight = match r.current_weight {
                Some(w) if w == r.weight => w.to_string(),
                Some(w) => format!("{w}/{}", r.weight),
                None => format!("-/{}", r.weight),
            };
            let _ = writeln!(
                out,
                "  -> {:<26} {:<6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                r.addr,
                r.health,
                weight,
                r.stats.active_conns,
                r.stats.conns,
                r.stats.in_pkts,
                r.stats.out_pkts,
                r.stats.in_bytes,
                r.stats.out_bytes
            );
            for c in r.checks.iter().filter(|c| !c.up) {
                let why = c.last_error.as_deref().unwrap_or("failing");
                let _ = writeln!(out, "       {} {}: {why}", c.kind, c.target);
            }
        }
    }
    out
}

/// `dpvsctl status`.
pub fn status(s: &StatusInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dpvsd {} (pid {}), up {}s",
        s.version, s.pid, s.uptime_secs
    );
    let _ = writeln!(
        out,
        "config:   {} (loaded at unix {})",
        s.config_file, s.config_loaded_unix
    );
    // DPDK: every port, in order (dpdk0, dpdk1, …); else the interface.
    let on: Vec<&str> = if s.ports.is_empty() {
        s.interface.iter().map(String::as_str).collect()
    } else {
        s.ports.iter().map(|p| p.name.as_str()).collect()
    };
    let on = if on.is_empty() {
        String::new()
    } else {
        format!(" on {}", on.join(", "))
    };
    let _ = writeln!(
        out,
        "backend:  {}{on} with {} worker(s)",
        s.backend, s.workers
    );
    for p in &s.ports {
        let _ = writeln!(
            out,
            "port:     {}{}: rx {} pkts {} B, tx {} pkts {} B, missed {}, errors {}/{}, no mbuf {}, mbufs {}/{}",
            p.name,
            p.kni.as_deref().map(|k| format!(" (kernel via {k})")).unwrap_or_default(),
            p.rx_packets,
            p.rx_bytes,
            p.tx_packets,
            p.tx_bytes,
            p.rx_missed,
            p.rx_errors,
            p.tx_errors,
            p.rx_nombuf,
            p.mbufs_in_use,
            p.mbufs_total
        );
        for q in &p.queues {
            let _ = writeln!(
                out,
                "  worker {}: rx {}, tx {}, tx dropped {}, empty polls {}, to kernel {}, from kernel {}, redirected out {} in {} dropped {}",
                q.worker, q.rx_packets, q.tx_packets, q.tx_dropped, q.empty_polls, q.to_kernel, q.from_kernel,
                q.redirected_out, q.redirected_in, q.redirect_dropped
            );
        }
    }
    let _ = writeln!(
        out,
        "services: {} virtual, {} real ({} up)",
        s.virtual_servers, s.real_servers, s.real_servers_up
    );
    let _ = writeln!(
        out,
        "traffic:  {} connections, {} frames in, {} frames out",
        s.conns, s.rx_frames, s.tx_frames
    );
    if s.vrrp_instances > 0 {
        let _ = writeln!(
            out,
            "vrrp:     {} instance(s), {} MASTER",
            s.vrrp_instances, s.vrrp_master
        );
    }
    if let Some(n) = s.ospf_announced {
        let _ = writeln!(out, "ospf:     {n} VIP(s) announced");
    }
    for o in &s.weight_overrides {
        let _ = writeln!(
            out,
            "override: {} -> {} weight {}",
            o.service, o.server, o.weight
        );
    }
    if !s.drops.is_empty() {
        let _ = writeln!(out, "drops:");
        for (name, n) in &s.drops {
            let _ = writeln!(out, "  {name:<22} {n}");
        }
    }
    out
}

/// `dpvsctl reload [--dry-run]`.
pub fn reload(r: &ReloadInfo) -> String {
    let mut out = String::new();
    for d in &r.diagnostics {
        let _ = writeln!(out, "{d}");
    }
    match (&r.error, r.applied) {
        (Some(e), false) => {
            let _ = writeln!(
                out,
                "reload rejected: {e}; the running configuration is unchanged"
            );
            return out;
        }
        (Some(e), true) => {
            let _ = writeln!(out, "reload applied with an error: {e}");
        }
        (None, true) => {
            let _ = writeln!(out, "reload applied: {} change(s)", r.changes.len());
        }
        (None, false) => {
            let _ = writeln!(
                out,
                "dry run: {} change(s) would be applied",
                r.changes.len()
            );
        }
    }
    for c in &r.changes {
        let _ = writeln!(out, "  {c}");
    }
    out
}

/// `dpvsctl vrrp`.
pub fn vrrp(v: &VrrpInfo) -> String {
    let mut out = String::new();
    if let Some(e) = &v.error {
        let _ = writeln!(out, "VRRP driver stopped: {e}");
    }
    if v.instances.is_empty() {
        let _ = writeln!(out, "no VRRP instances running");
    }
    for i in &v.instances {
        let _ = writeln!(
            out,
            "{} (vrid {} on {}): {}",
            i.name, i.vrid, i.interface, i.state
        );
        let why: Vec<String> = i
            .reasons
            .iter()
            .map(|r| format!("{} {} {}", r.kind, r.name, r.effect))
            .collect();
        let _ = writeln!(
            out,
            "  priority:   {} (base {}){}",
            i.effective_priority,
            i.base_priority,
            if why.is_empty() {
                String::new()
            } else {
                format!(": {}", why.join(", "))
            }
        );
        let _ = writeln!(
            out,
            "  master:     {}",
            i.master_addr.as_deref().unwrap_or("-")
        );
        let owners: Vec<String> = i.owners.iter().map(|(v, o)| format!("{v} ({o})")).collect();
        let _ = writeln!(out, "  vips:       {}", owners.join(", "));
        let _ = writeln!(
            out,
            "  held:       {}",
            if i.vips_held.is_empty() {
                "none".to_string()
            } else {
                i.vips_held.join(", ")
            }
        );
        let c = &i.counters;
        let _ = writeln!(
            out,
            "  adverts:    {} sent ({} priority 0), {} received ({} priority 0)",
            c.adverts_sent, c.prio0_sent, c.adverts_received, c.prio0_received
        );
        let drops: Vec<String> = c
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(d, n)| format!("{d} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  dropped:    {}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "  transition: {}",
            i.last_transition_unix_ms
                .map(|ms| format!("unix {}.{:03}", ms / 1000, ms % 1000))
                .unwrap_or_else(|| "never".into())
        );
    }
    out
}

/// `dpvsctl ospf`.
pub fn ospf(o: &OspfInfo) -> String {
    let mut out = String::new();
    if !o.configured {
        let _ = writeln!(out, "no ospf_announcer configured");
        return out;
    }
    let _ = writeln!(
        out,
        "router {} area {}: {}",
        o.router_id.as_deref().unwrap_or("-"),
        o.area.as_deref().unwrap_or("-"),
        if o.running { "running" } else { "not running" }
    );
    if let Some(e) = &o.error {
        let _ = writeln!(out, "error: {e}");
    }
    for i in &o.interfaces {
        let _ = writeln!(
            out,
            "interface {} {}: {} (DR {}, BDR {})",
            i.name, i.address, i.state, i.dr, i.bdr
        );
        for n in &i.neighbors {
            let _ = writeln!(
                out,
                "  neighbour {} at {} priority {}: {}",
                n.router_id, n.addr, n.priority, n.state
            );
        }
    }
    let _ = writeln!(out, "originated LSAs:");
    for l in &o.originated {
        let _ = writeln!(
            out,
            "  {:<10} id {:<15} adv {:<15} seq {} age {}",
            l.ls_type, l.ls_id, l.adv_router, l.seq, l.age
        );
    }
    let _ = writeln!(out, "VIPs:");
    for v in &o.vips {
        let _ = writeln!(out, "  {:<15} {}", v.vip, v.reason);
    }
    if !o.drops.is_empty() {
        let _ = writeln!(out, "drops:");
        for (name, n) in &o.drops {
            let _ = writeln!(out, "  {name:<22} {n}");
        }
    }
    out
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_come_from_the_dataplane_estimator() {
        let r = Rates {
            cps: 10,
            in_pps: 100,
            out_pps: 50,
            in_bps: 2000,
            out_bps: 10000,
        };
        let info = ListInfo {
            services: vec![crate::ctl::ServiceInfo {
                protocol: "TCP".into(),
                vip: "10.0.0.1".into(),
                port: 80,
                scheduler: "rr".into(),
                flags: Vec::new(),
                forwarding: "FNAT".into(),
                local_addrs: Vec::new(),
                vip_owned: true,
                stats: crate::ctl::Counters {
                    rates: r,
                    ..Default::default()
                },
                real_servers: Vec::new(),
                quorum_up: None,
                sorry_server: None,
                snat_match: None,
            }],
        };
        // Older daemons send no rates: zeros.
        let old: crate::ctl::Counters = serde_json::from_str(
            r#"{"active_conns":0,"conns":1,"in_pkts":0,"out_pkts":0,"in_bytes":0,"out_bytes":0}"#,
        )
        .expect("counters without rates");
        assert_eq!(old.rates, Rates::default());
        let ri = RateInfo::of(&info);
        assert_eq!(ri.interval_secs, 2.0);
        assert_eq!(ri.services[0].rates, r);
        assert!(rates(&ri).contains("      10      100       50     2000    10000"));
    }
}

#[cfg(test)]
mod list_tests {
    use super::*;
    use crate::ctl::{Counters, ServiceInfo, SorryInfo};

    fn service(sorry: Option<SorryInfo>) -> ListInfo {
        ListInfo {
            services: vec![ServiceInfo {
                protocol: "TCP".into(),
                vip: "10.0.0.1".into(),
                port: 80,
                scheduler: "rr".into(),
                flags: vec!["persistent 360".into(), "synproxy".into()],
                forwarding: "NAT".into(),
                local_addrs: vec![],
                vip_owned: true,
                stats: Counters::default(),
                real_servers: vec![],
                quorum_up: Some(sorry.as_ref().is_none_or(|s| !s.in_service)),
                sorry_server: sorry,
                snat_match: None,
            }],
        }
    }

    #[test]
    fn the_sorry_server_is_listed_with_its_state() {
        let sorry = |in_service, current_weight| SorryInfo {
            addr: "10.0.0.9:80".into(),
            inhibit: false,
            in_service,
            current_weight,
            stats: Counters::default(),
        };
        let text = list(&service(Some(sorry(true, Some(1)))));
        let line = text.lines().last().expect("a line");
        assert!(line.starts_with("  -> 10.0.0.9:80"), "{line}");
        assert!(line.contains(" 1 "), "weight 1: {line}");
        assert!(
            line.ends_with("sorry server, in service (quorum down)"),
            "{line}"
        );
        let text = list(&service(Some(sorry(false, None))));
        let line = text.lines().last().expect("a line");
        assert!(line.contains(" - "), "absent: {line}");
        assert!(line.ends_with("sorry server, standby"), "{line}");
        assert!(!list(&service(None)).contains("sorry"));
    }

    #[test]
    fn service_options_follow_the_scheduler_as_ipvsadm_prints_them() {
        let text = list(&service(None));
        let line = text.lines().nth(2).expect("the service line");
        assert_eq!(
            line,
            "TCP  10.0.0.1:80            rr persistent 360 synproxy"
        );
    }
}
