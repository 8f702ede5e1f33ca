//! keepalived's signal interface: SIGUSR1 writes the data dump
//! ([`DATA_FILE`]), SIGUSR2 the stats dump ([`STATS_FILE`]).
//!
//! The layout follows keepalived's (`------< Section >------` headers,
//! `key = value` lines indented by depth, the VRRP statistics block of
//! `vrrp_print_stats`) so that an operator's habits and greps carry over;
//! the values come from the same snapshots the control socket reports.
//!
//! Files are written to a temporary file in the same directory and renamed
//! into place: a reader never sees half a dump, and a symlink planted at the
//! path (the files live in `/tmp`) is replaced rather than followed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::ctl::{ListInfo, OspfInfo, StatusInfo, VrrpInfo};

/// keepalived's default data dump file (`state_dump_file`).
pub const DATA_FILE: &str = "/tmp/keepalived.data";
/// keepalived's default stats dump file (`stats_dump_file`).
pub const STATS_FILE: &str = "/tmp/keepalived.stats";

/// What a dump reports.
#[derive(Debug, Clone)]
pub struct DumpInput {
    pub status: StatusInfo,
    pub list: ListInfo,
    pub vrrp: VrrpInfo,
    pub ospf: OspfInfo,
}

fn unix_time(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "never".to_string(),
        |ms| format!("{}.{:03}", ms / 1000, ms % 1000),
    )
}

/// The SIGUSR1 data dump.
pub fn data(d: &DumpInput) -> String {
    let mut o = String::new();
    let s = &d.status;
    let _ = writeln!(o, "------< Global definitions >------");
    let _ = writeln!(o, " dpvsd version = {}", s.version);
    let _ = writeln!(o, " Pid = {}", s.pid);
    let _ = writeln!(o, " Uptime = {} s", s.uptime_secs);
    let _ = writeln!(o, " Config file = {}", s.config_file);
    let _ = writeln!(o, " Config loaded = {} (unix)", s.config_loaded_unix);
    let _ = writeln!(o, " Reloads = {}", s.reloads);
    let _ = writeln!(o, " Dataplane backend = {}", s.backend);
    let _ = writeln!(
        o,
        " Dataplane interface = {}",
        s.interface.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(o, " Dataplane workers = {}", s.workers);

    if !d.vrrp.instances.is_empty() || d.vrrp.error.is_some() {
        let _ = writeln!(o, "------< VRRP Topology >------");
        if let Some(e) = &d.vrrp.error {
            let _ = writeln!(o, " VRRP driver error = {e}");
        }
        for i in &d.vrrp.instances {
            let _ = writeln!(o, " VRRP Instance = {}", i.name);
            let _ = writeln!(o, "   State = {}", i.state);
            let _ = writeln!(o, "   Interface = {}", i.interface);
            let _ = writeln!(o, "   Virtual Router ID = {}", i.vrid);
            let _ = writeln!(o, "   Base priority = {}", i.base_priority);
            let _ = writeln!(o, "   Effective priority = {}", i.effective_priority);
            for r in &i.reasons {
                let _ = writeln!(o, "   Tracked {} {} = {}", r.kind, r.name, r.effect);
            }
            let _ = writeln!(
                o,
                "   Master router = {}",
                i.master_addr.as_deref().unwrap_or("(unknown)")
            );
            let _ = writeln!(
                o,
                "   Last transition = {}",
                unix_time(i.last_transition_unix_ms)
            );
            let _ = writeln!(o, "   Virtual IP = {}", i.vips.len());
            for (vip, owner) in &i.owners {
                let held = if i.vips_held.contains(vip) {
                    "held"
                } else {
                    "not held"
                };
                let _ = writeln!(o, "     {vip} ({owner}, {held})");
            }
        }
    }

    if !d.list.services.is_empty() {
        let _ = writeln!(o, "------< LVS Topology >------");
        let _ = writeln!(o, " System is dpvsd's own dataplane ({})", s.backend);
        for v in &d.list.services {
            let _ = writeln!(
                o,
                " VIP = {}, VPORT = {}, protocol = {}",
                v.vip, v.port, v.protocol
            );
            let _ = writeln!(
                o,
                "   lb_algo = {}, lb_kind = {}",
                v.scheduler, v.forwarding
            );
            let _ = writeln!(
                o,
                "   VIP owned by this node = {}",
                if v.vip_owned { "yes" } else { "no" }
            );
            if !v.local_addrs.is_empty() {
                let _ = writeln!(o, "   Local addresses = {}", v.local_addrs.join(" "));
            }
            for r in &v.real_servers {
                let current = r
                    .current_weight
                    .map_or_else(|| "removed".to_string(), |w| w.to_string());
                let _ = writeln!(
                    o,
                    "   RIP = {}, WEIGHT = {}, current weight = {}, {}",
                    r.addr,
                    r.weight,
                    current,
                    if r.health == "up" { "alive" } else { "failed" }
                );
                if r.inhibit_on_failure {
                    let _ = writeln!(o, "     Inhibit on failure = yes");
                }
            }
        }
        let _ = writeln!(o, "------< Health checkers >------");
        for v in &d.list.services {
            for r in &v.real_servers {
                for c in &r.checks {
                    let _ = writeln!(o, " {} (VS {}:{}) {}", r.addr, v.vip, v.port, c.kind);
                    let _ = writeln!(o, "   Target = {}", c.target);
                    let _ = writeln!(o, "   Is up = {}", if c.up { "yes" } else { "no" });
                    let last = match c.last_ok {
                        None => "not run yet",
                        Some(true) => "success",
                        Some(false) => "failure",
                    };
                    let _ = writeln!(o, "   Last result = {last}");
                    if let Some(e) = &c.last_error {
                        let _ = writeln!(o, "   Last error = {e}");
                    }
                    let _ = writeln!(o, "   Consecutive failures = {}", c.consecutive_failures);
                    let _ = writeln!(o, "   Checks run = {}", c.checks_run);
                    let _ = writeln!(
                        o,
                        "   Last transition = {}",
                        unix_time(c.last_transition_unix_ms)
                    );
                }
            }
        }
    }

    if d.ospf.configured {
        let _ = writeln!(o, "------< OSPF announcer >------");
        let _ = writeln!(
            o,
            " Router ID = {}, area = {}",
            d.ospf.router_id.as_deref().unwrap_or("?"),
            d.ospf.area.as_deref().unwrap_or("?")
        );
        let _ = writeln!(
            o,
            " Running = {}",
            if d.ospf.running { "yes" } else { "no" }
        );
        for v in &d.ospf.vips {
            let _ = writeln!(
                o,
                " VIP {} {} ({})",
                v.vip,
                if v.announced {
                    "announced"
                } else {
                    "withdrawn"
                },
                v.reason
            );
        }
    }
    o
}

/// The SIGUSR2 stats dump.
pub fn stats(d: &DumpInput) -> String {
    let mut o = String::new();
    for i in &d.vrrp.instances {
        let c = &i.counters;
        let _ = writeln!(o, "VRRP Instance: {}", i.name);
        let _ = writeln!(o, "  Advertisements:");
        let _ = writeln!(o, "    Received: {}", c.adverts_received);
        let _ = writeln!(o, "    Sent: {}", c.adverts_sent);
        let _ = writeln!(o, "  Became master: {}", c.became_master);
        let _ = writeln!(o, "  Released master: {}", c.released_master);
        let _ = writeln!(o, "  Packet Errors:");
        for (cause, n) in &c.drops {
            let _ = writeln!(o, "    {cause}: {n}");
        }
        let _ = writeln!(o, "  Priority Zero:");
        let _ = writeln!(o, "    Received: {}", c.prio0_received);
        let _ = writeln!(o, "    Sent: {}", c.prio0_sent);
    }
    let s = &d.status;
    let _ = writeln!(o, "Dataplane:");
    let _ = writeln!(o, "  Connections: {}", s.conns);
    let _ = writeln!(o, "  Frames received: {}", s.rx_frames);
    let _ = writeln!(o, "  Frames sent: {}", s.tx_frames);
    let _ = writeln!(o, "  Drops:");
    for (reason, n) in &s.drops {
        let _ = writeln!(o, "    {reason}: {n}");
    }
    for v in &d.list.services {
        let t = &v.stats;
        let _ = writeln!(o, "Virtual Server: {} {}:{}", v.protocol, v.vip, v.port);
        let _ = writeln!(o, "  Connections: {} (active {})", t.conns, t.active_conns);
        let _ = writeln!(o, "  Packets: in {} out {}", t.in_pkts, t.out_pkts);
        let _ = writeln!(o, "  Bytes: in {} out {}", t.in_bytes, t.out_bytes);
        for r in &v.real_servers {
            let t = &r.stats;
            let _ = writeln!(o, "  Real Server: {} ({})", r.addr, r.health);
            let _ = writeln!(
                o,
                "    Connections: {} (active {})",
                t.conns, t.active_conns
            );
            let _ = writeln!(o, "    Packets: in {} out {}", t.in_pkts, t.out_pkts);
            let _ = writeln!(o, "    Bytes: in {} out {}", t.in_bytes, t.out_bytes);
        }
    }
    o
}

/// Writes `text` to `path` through a temporary file renamed into place
/// (mode 0600).
///
/// # Errors
/// Creating, writing or renaming the file failed.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "dump".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_a_symlink_instead_of_following_it() {
        let dir = std::env::temp_dir().join(format!("dpvsd-dump-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").expect("victim");
        let path = dir.join("keepalived.data");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        write_file(&path, "dump\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(&victim).ok().as_deref(),
            Some("keep")
        );
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("dump\n")
        );
        assert!(!std::fs::symlink_metadata(&path)
            .expect("meta")
            .file_type()
            .is_symlink());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
