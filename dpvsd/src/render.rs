//! Text output of `dpvsctl`, in the spirit of `ipvsadm -ln --stats`.

use std::fmt::Write;

use crate::ctl::{ListInfo, ReloadInfo, StatusInfo};

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
