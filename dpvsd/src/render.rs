//! Text output of `dpvsctl`, in the spirit of `ipvsadm -ln --stats`.

use std::fmt::Write;

use crate::ctl::{ListInfo, OspfInfo, ReloadInfo, StatusInfo, VrrpInfo};

/// `dpvsctl list`.
pub fn list(info: &ListInfo) -> String {
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
        let vip = if s.vip.contains(':') {
            format!("[{}]:{}", s.vip, s.port)
        } else {
            format!("{}:{}", s.vip, s.port)
        };
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
    let _ = writeln!(
        out,
        "backend:  {}{} with {} worker(s)",
        s.backend,
        s.interface
            .as_deref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default(),
        s.workers
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
                "  worker {}: rx {}, tx {}, tx dropped {}, empty polls {}, to kernel {}, from kernel {}",
                q.worker, q.rx_packets, q.tx_packets, q.tx_dropped, q.empty_polls, q.to_kernel, q.from_kernel
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
