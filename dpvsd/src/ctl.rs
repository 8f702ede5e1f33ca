//! The control-socket protocol shared by `dpvsd` and `dpvsctl`.
//!
//! A unix stream socket (default [`DEFAULT_SOCKET`], mode 0600). Each request
//! is one JSON object on one line, each response one JSON line:
//! `{"version":1,"cmd":"list"}` → `{"version":1,"ok":true,"data":{...}}` or
//! `{"version":1,"ok":false,"error":"..."}`. Requests with an unknown
//! version or command get an error response; the connection stays usable.

use serde::{Deserialize, Serialize};

/// Where the daemon listens unless `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/dpvsd/dpvsd.sock";
/// Protocol version spoken by this build.
pub const VERSION: u32 = 1;
/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: CtlCommand,
}

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum CtlCommand {
    /// Daemon summary.
    Status,
    /// Virtual servers, real servers, health and counters.
    List,
    /// Re-read the config file and apply only what changed. With
    /// `dry_run`, report the changes without applying them.
    Reload {
        #[serde(default)]
        dry_run: bool,
    },
    /// VRRP instances: state, priority and why, master, VIPs, counters.
    Vrrp,
    /// OSPF announcer: neighbours, originated LSAs, announced VIPs and why.
    Ospf,
    /// Override a real server's weight at runtime (`drain` is weight 0).
    /// The override holds while the server is healthy, survives reloads
    /// that leave the server unchanged, and is shown by `status` and `list`.
    Weight {
        #[serde(flatten)]
        target: ServerRef,
        weight: u32,
    },
    /// Drop a runtime override: back to the configured (or dynamic) weight.
    Enable {
        #[serde(flatten)]
        target: ServerRef,
    },
    /// Change the log filter (`info`, `debug`, `dpvsd=trace,info`, ...).
    LogLevel { level: String },
    /// The connection table (`ipvsadm -lnc`), optionally filtered. Each
    /// filter is an address (`10.0.0.1`) or `address:port`.
    Conns {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vs: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rs: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
}

/// One connection in `conns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// `TCP` / `UDP`.
    pub protocol: String,
    /// The TCP state as `ipvsadm -lnc` names it (`SYN_RECV`, `ESTABLISHED`,
    /// `FIN_WAIT`, `TIME_WAIT`, `CLOSE_WAIT`, `LAST_ACK`, `CLOSE`, ...) or `UDP`.
    pub state: String,
    pub expires_in_ms: u32,
    pub client: String,
    pub virtual_server: String,
    /// FNAT: the local address the server replies to; NAT/DR/TUN: the client.
    pub local: String,
    pub real_server: String,
}

/// `conns`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConnsInfo {
    /// Connections in the table (before filtering).
    pub total: usize,
    pub conns: Vec<ConnInfo>,
    /// True when a worker stopped listing at its limit.
    pub truncated: bool,
}

/// Whether `addr` matches a filter: an address, or `address:port`.
pub fn addr_matches(filter: &str, addr: std::net::SocketAddr) -> bool {
    match filter.parse::<std::net::SocketAddr>() {
        Ok(f) => f == addr,
        Err(_) => filter
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip == addr.ip()),
    }
}

/// A real server of a virtual server, as the operator names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRef {
    /// `VIP:PORT` (`[VIP]:PORT` for IPv6).
    pub vs: String,
    /// `TCP`, `UDP`, ...; needed only when the address has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `RIP:PORT`.
    pub rs: String,
}

/// Answer to `weight` / `enable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightInfo {
    /// `PROTO VIP:PORT`.
    pub service: String,
    pub server: String,
    /// The runtime override now (`None` after `enable`).
    pub weight_override: Option<u32>,
    /// The weight in the dataplane now (`None`: not in the table, e.g. down).
    pub current_weight: Option<u32>,
}

/// Answer to `log-level`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevelInfo {
    pub level: String,
}

/// A runtime weight override, as `status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideInfo {
    pub service: String,
    pub server: String,
    pub weight: u32,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Response {
        Response {
            version: VERSION,
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    pub fn error(msg: impl Into<String>) -> Response {
        Response {
            version: VERSION,
            ok: false,
            data: None,
            error: Some(msg.into()),
        }
    }
}

/// Packet/connection counters (IPVS `--stats` columns plus active connections).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub active_conns: u64,
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// The dataplane's estimated rates (LVS's 2 s EWMA).
    #[serde(default)]
    pub rates: dataplane::rate::Rates,
}

impl From<dataplane::stats::TrafficSnapshot> for Counters {
    fn from(t: dataplane::stats::TrafficSnapshot) -> Self {
        Counters {
            active_conns: t.active,
            conns: t.conns,
            in_pkts: t.in_pkts,
            out_pkts: t.out_pkts,
            in_bytes: t.in_bytes,
            out_bytes: t.out_bytes,
            rates: t.rates,
        }
    }
}

/// A DPDK port's counters (from its PMD) and mbuf pool usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub name: String,
    /// The kernel exception TAP, if any.
    pub kni: Option<String>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC: rx ring full.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Receives that found no free mbuf.
    pub rx_nombuf: u64,
    pub mbufs_in_use: u32,
    pub mbufs_total: u32,
    /// Per worker (= rx/tx queue pair).
    pub queues: Vec<QueueInfo>,
}

/// One worker's queue pair on a DPDK port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub worker: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub empty_polls: u64,
    /// Frames copied to / received from the kernel exception TAP.
    pub to_kernel: u64,
    pub from_kernel: u64,
    /// Frames passed to / received from the worker owning their
    /// connection, and lost because its redirect ring was full.
    #[serde(default)]
    pub redirected_out: u64,
    #[serde(default)]
    pub redirected_in: u64,
    #[serde(default)]
    pub redirect_dropped: u64,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub config_file: String,
    pub config_loaded_unix: u64,
    /// Successful reloads since start.
    pub reloads: u64,
    pub backend: String,
    pub interface: Option<String>,
    pub workers: usize,
    pub virtual_servers: usize,
    pub real_servers: usize,
    pub real_servers_up: usize,
    pub conns: u64,
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Non-zero drop counters: (reason, count).
    pub drops: Vec<(String, u64)>,
    /// VRRP instances configured.
    #[serde(default)]
    pub vrrp_instances: usize,
    /// Of which MASTER now.
    #[serde(default)]
    pub vrrp_master: usize,
    /// VIPs announced by OSPF (`None`: no `ospf_announcer`).
    #[serde(default)]
    pub ospf_announced: Option<usize>,
    /// DPDK ports (empty for other backends).
    #[serde(default)]
    pub ports: Vec<PortInfo>,
    /// Runtime weight overrides (`dpvsctl weight` / `drain`).
    #[serde(default)]
    pub weight_overrides: Vec<OverrideInfo>,
}

/// One checker's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInfo {
    pub kind: String,
    pub target: String,
    pub up: bool,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub checks_run: u64,
    pub last_transition_unix_ms: Option<u64>,
    /// How long the probes took.
    #[serde(default)]
    pub latency: healthcheck::Latency,
}

/// One real server in `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealServerInfo {
    /// `ip:port` (`[ip]:port` for IPv6).
    pub addr: String,
    /// Configured weight.
    pub weight: u32,
    /// Weight in the dataplane now (0 when inhibited, None when removed).
    pub current_weight: Option<u32>,
    pub health: String,
    pub inhibit_on_failure: bool,
    /// Runtime override (`dpvsctl weight` / `drain`), if any.
    #[serde(default)]
    pub weight_override: Option<u32>,
    pub checks: Vec<CheckInfo>,
    pub stats: Counters,
}

/// One virtual server in `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub protocol: String,
    pub vip: String,
    pub port: u16,
    pub scheduler: String,
    /// The service's options ([`dataplane::ServiceSpec::flags`]).
    #[serde(default)]
    pub flags: Vec<String>,
    pub forwarding: String,
    pub local_addrs: Vec<String>,
    pub vip_owned: bool,
    pub stats: Counters,
    pub real_servers: Vec<RealServerInfo>,
    /// Whether quorum is up (`None` before the first evaluation).
    #[serde(default)]
    pub quorum_up: Option<bool>,
    /// The `sorry_server`, if configured.
    #[serde(default)]
    pub sorry_server: Option<SorryInfo>,
    /// SNAT `virtual_server match`: its match (`src-range=…,dst-range=…`);
    /// `vip`:`port` are then the unspecified address and the ordinal.
    #[serde(default)]
    pub snat_match: Option<String>,
}

/// A virtual server's `sorry_server` in `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SorryInfo {
    pub addr: String,
    /// `sorry_server_inhibit`: kept in the dataplane at weight 0 while
    /// quorum is up.
    pub inhibit: bool,
    /// Quorum is down and the sorry server serves.
    pub in_service: bool,
    /// Its weight in the dataplane; `None` when it is not there.
    pub current_weight: Option<u32>,
    pub stats: Counters,
}

/// `reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadInfo {
    /// True when the new configuration is now running.
    pub applied: bool,
    /// One line per change (also for a dry run).
    pub changes: Vec<String>,
    /// The new file's diagnostics (`file:line:col: severity: message`).
    pub diagnostics: Vec<String>,
    /// Why the file was rejected (the running configuration is unchanged).
    pub error: Option<String>,
}

/// `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListInfo {
    pub services: Vec<ServiceInfo>,
}

/// Why an instance's priority differs from its base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpReason {
    /// `interface`, `script` or `file`.
    pub kind: String,
    pub name: String,
    /// `FAULT`, or the signed priority delta (`+10`, `-20`).
    pub effect: String,
}

/// Counters of one VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VrrpCounters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub prio0_sent: u64,
    pub prio0_received: u64,
    pub became_master: u64,
    pub released_master: u64,
    /// Dropped adverts by cause (every cause, zero included).
    pub drops: Vec<(String, u64)>,
}

/// One `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstanceInfo {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// `INIT`, `BACKUP`, `MASTER`, `FAULT` or `STOP`.
    pub state: String,
    pub base_priority: u8,
    pub effective_priority: u8,
    pub reasons: Vec<VrrpReason>,
    /// The current master's address (ours when MASTER).
    pub master_addr: Option<String>,
    /// Every VIP of the instance (advertised and excluded).
    pub vips: Vec<String>,
    /// The VIPs held now (all of them when MASTER, none otherwise).
    pub vips_held: Vec<String>,
    /// Who holds the VIPs when MASTER: `dataplane` or `kernel` (per VIP).
    pub owners: Vec<(String, String)>,
    pub counters: VrrpCounters,
    /// Unix time (ms) of the last state change.
    pub last_transition_unix_ms: Option<u64>,
}

/// `vrrp`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VrrpInfo {
    /// Whether the VRRP driver runs.
    pub running: bool,
    /// Why it stopped, if it failed.
    pub error: Option<String>,
    pub instances: Vec<VrrpInstanceInfo>,
}

/// An OSPF neighbour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OspfNeighborInfo {
    pub router_id: String,
    pub addr: String,
    pub priority: u8,
    pub state: String,
}

/// An OSPF interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OspfInterfaceInfo {
    pub name: String,
    pub address: String,
    pub state: String,
    pub dr: String,
    pub bdr: String,
    pub neighbors: Vec<OspfNeighborInfo>,
}

/// An LSA we originate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OspfLsaInfo {
    pub ls_type: String,
    pub ls_id: String,
    pub adv_router: String,
    /// Sequence number (hex, as routers print it).
    pub seq: String,
    pub age: u16,
}

/// A candidate VIP and whether (and why) it is announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OspfVipInfo {
    pub vip: String,
    pub announced: bool,
    pub reason: String,
}

/// `ospf`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OspfInfo {
    /// Whether an `ospf_announcer` is configured.
    pub configured: bool,
    /// Whether the speaker runs.
    pub running: bool,
    pub error: Option<String>,
    pub router_id: Option<String>,
    pub area: Option<String>,
    pub interfaces: Vec<OspfInterfaceInfo>,
    pub originated: Vec<OspfLsaInfo>,
    /// VIPs the speaker announces now.
    pub announced: Vec<String>,
    /// Every candidate VIP with the announce rule's verdict.
    pub vips: Vec<OspfVipInfo>,
    /// Non-zero drop counters.
    pub drops: Vec<(String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = Request {
            version: 1,
            command: CtlCommand::List,
        };
        let s = serde_json::to_string(&r).expect("serialize");
        assert_eq!(s, r#"{"version":1,"cmd":"list"}"#);
        let back: Request = serde_json::from_str(&s).expect("parse");
        assert_eq!(back, r);
        assert!(serde_json::from_str::<Request>(r#"{"version":1,"cmd":"rm-rf"}"#).is_err());
        let r: Request =
            serde_json::from_str(r#"{"version":1,"cmd":"reload","dry_run":true}"#).expect("parse");
        assert_eq!(r.command, CtlCommand::Reload { dry_run: true });
        let r: Request = serde_json::from_str(r#"{"version":1,"cmd":"reload"}"#).expect("parse");
        assert_eq!(r.command, CtlCommand::Reload { dry_run: false });
        let r: Request = serde_json::from_str(r#"{"version":1,"cmd":"vrrp"}"#).expect("parse");
        assert_eq!(r.command, CtlCommand::Vrrp);
        let r: Request = serde_json::from_str(r#"{"version":1,"cmd":"ospf"}"#).expect("parse");
        assert_eq!(r.command, CtlCommand::Ospf);
        let r: Request = serde_json::from_str(
            r#"{"version":1,"cmd":"weight","vs":"10.0.0.1:80","rs":"10.0.0.2:80","weight":0}"#,
        )
        .expect("parse");
        assert_eq!(
            r.command,
            CtlCommand::Weight {
                target: ServerRef {
                    vs: "10.0.0.1:80".into(),
                    protocol: None,
                    rs: "10.0.0.2:80".into()
                },
                weight: 0
            }
        );
        let r: Request = serde_json::from_str(r#"{"version":1,"cmd":"log-level","level":"debug"}"#)
            .expect("parse");
        assert_eq!(
            r.command,
            CtlCommand::LogLevel {
                level: "debug".into()
            }
        );
    }
}
