//! Stage 3: AST → [`Model`], reporting every problem in one pass.
//!
//! Two steps:
//! 1. **Block engine** ([`normalize`]): the AST is flattened back into its
//!    keyword / `{` / `}` stream and re-read against keepalived's keyword tree
//!    exactly as `lib/parser.c` does (KEEPALIVED.md §1.5): an unknown
//!    keyword's `{` is ignored, its contents land at the current level and its
//!    `}` closes the *enclosing* block; value blocks are line lists; keywords
//!    of features dpvsd does not implement are kept as written (with their
//!    whole block, in [`Ignored`] lists) and warned about once per keyword.
//! 2. **Typed lowering** of the resulting tree: value checks, defaults and
//!    inheritance (checker ← real server ← virtual server ← checker default).
//!
//! Invariant: the [`Model`] only holds effective, validated values; anything
//! dropped or defaulted has a diagnostic at the offending token. Blocks
//! dpvsd does not run are still typed when keepalived types them
//! (`vrrp_track_process`, `bfd_instance`, `garp_group`, `SSL`, `BFD_CHECK`:
//! see `lower/extra.rs`), else kept as written.

use std::net::IpAddr;
use std::time::Duration;

use crate::ast::{members, Members, Stmt};
use crate::diag::{DiagClass, Diagnostic, Location, Severity};
use crate::model::{
    AccessEntry, AccessGroup, BfdCheck, Checker, CheckerKind, DnsCheck, DnsType, DpvsVsOptions,
    FileCheck, HashTarget, HttpCheck, HttpProtocol, HttpUrl, Ignored, LbAlgo, LbKind, LocalAddress,
    LocalAddressGroup, MiscCheck, Model, Protocol, ProxyProtocol, RealServer, Script, SmtpCheck,
    SorryServer, TunnelEntry, TunnelGroup, TunnelKind, UdpCheck, UdpReply, VirtualServer,
    VirtualServerGroup, VsgEntry,
};
use crate::preprocess::{Pos, Sources, Tok};
use crate::values;
use crate::{Dialect, ParseMode};

mod extra;
mod vrrp;

const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RETRY: u32 = 1;
const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
/// `persistence_timeout` with no value, and the one forced on zero-port services.
const DEFAULT_PERSISTENCE: u32 = 360;
/// keepalived's `LVS_MAX_TIMEOUT` (31 days).
const LVS_MAX_TIMEOUT: u64 = 86400 * 31;
/// keepalived's `SMTP_DEFAULT_HELO`.
const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";
/// Real-server weight limit of keepalived ≥ 2.2 (`INT32_MAX`).
const MAX_WEIGHT: u64 = i32::MAX as u64;
/// At most this many unknown keywords get a "did you mean" hint per load.
const MAX_HINTS: usize = 1000;
/// Real-server weight limit of keepalived 2.0.19 and DPVS.
const MAX_WEIGHT_DPVS: u64 = 65535;

/// A level of keepalived's keyword tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    GlobalDefs,
    VirtualServer,
    RealServer,
    Checker(Ck),
    /// `url { }` of HTTP_GET / SSL_GET.
    Url,
    /// The deprecated `host { }` of SMTP_CHECK.
    SmtpHost,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
    TrackFile,
    /// `authentication { }` of a VRRP instance.
    VrrpAuth,
    /// dpvsd's `ospf_announcer { }`.
    Ospf,
    /// DPVS `tunnel_group NAME { }`.
    TunnelGroup,
    /// `tunnel_entry IFNAME { }` of a `tunnel_group`.
    TunnelEntry,
    /// `interface NAME { }` of `ospf_announcer`.
    OspfInterface,
    /// `garp_group { }`.
    GarpGroup,
    /// `vrrp_track_process NAME { }`.
    TrackProcess,
    /// `bfd_instance NAME { }`.
    BfdInstance,
    /// The top-level `SSL { }`.
    Ssl,
    /// `BFD_CHECK { }` of a real server.
    BfdCheck,
}

/// The checker blocks of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ck {
    Tcp,
    Http,
    Ssl,
    Misc,
    Smtp,
    Dns,
    Udp,
    Ping,
    File,
}

impl Ck {
    fn from_keyword(kw: &str) -> Option<Ck> {
        Some(match kw {
            "TCP_CHECK" => Ck::Tcp,
            "HTTP_GET" => Ck::Http,
            "SSL_GET" => Ck::Ssl,
            "MISC_CHECK" => Ck::Misc,
            "SMTP_CHECK" => Ck::Smtp,
            "DNS_CHECK" => Ck::Dns,
            "UDP_CHECK" => Ck::Udp,
            "PING_CHECK" => Ck::Ping,
            "FILE_CHECK" => Ck::File,
            _ => return None,
        })
    }

    fn keyword(self) -> &'static str {
        match self {
            Ck::Tcp => "TCP_CHECK",
            Ck::Http => "HTTP_GET",
            Ck::Ssl => "SSL_GET",
            Ck::Misc => "MISC_CHECK",
            Ck::Smtp => "SMTP_CHECK",
            Ck::Dns => "DNS_CHECK",
            Ck::Udp => "UDP_CHECK",
            Ck::Ping => "PING_CHECK",
            Ck::File => "FILE_CHECK",
        }
    }

    /// The connection keywords (`connect_ip`, ...) exist in all but MISC and FILE.
    fn has_connection(self) -> bool {
        !matches!(self, Ck::Misc | Ck::File)
    }

    /// Type-specific leaf keywords.
    fn leaves(self) -> &'static [&'static str] {
        match self {
            Ck::Tcp | Ck::Ping => &[],
            Ck::Http | Ck::Ssl => &[
                "nb_get_retry",
                "virtualhost",
                "http_protocol",
                "enable_sni",
                "fast_recovery",
            ],
            Ck::Misc => &["misc_path", "misc_timeout", "misc_dynamic", "user"],
            Ck::Smtp => &["helo_name"],
            Ck::Dns => &["type", "name"],
            Ck::Udp => &[
                "payload",
                "require_reply",
                "min_reply_length",
                "max_reply_length",
            ],
            Ck::File => &["track_file", "weight"],
        }
    }
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Top => "top level",
            Level::GlobalDefs => "global_defs",
            Level::VirtualServer => "virtual_server",
            Level::RealServer => "real_server",
            Level::Checker(ck) => ck.keyword(),
            Level::Url => "url",
            Level::SmtpHost => "host",
            Level::VrrpInstance => "vrrp_instance",
            Level::VrrpScript => "vrrp_script",
            Level::VrrpSyncGroup => "vrrp_sync_group",
            Level::TrackFile => "track_file",
            Level::VrrpAuth => "authentication",
            Level::Ospf => "ospf_announcer",
            Level::TunnelGroup => "tunnel_group",
            Level::TunnelEntry => "tunnel_entry",
            Level::OspfInterface => "interface",
            Level::GarpGroup => "garp_group",
            Level::TrackProcess => "vrrp_track_process",
            Level::BfdInstance => "bfd_instance",
            Level::Ssl => "SSL",
            Level::BfdCheck => "BFD_CHECK",
        }
    }
}

/// What a known keyword does in the block engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Handled by lowering; takes no block.
    Leaf,
    /// Opens a keyword sub-tree.
    Section(Level),
    /// Opens a block of lines handed whole to the keyword (`alloc_value_block`).
    Values,
    /// A keepalived feature dpvsd does not implement: kept as written (block
    /// included) in the level's [`Ignored`] list, with one warning per keyword.
    Unsupported,
}

const TOP_UNSUPPORTED: &[&str] = &[
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "child_wait_time",
    "linkbeat_use_polling",
    "linkbeat_interfaces",
    "interface_up_down_delays",
    "track_group",
];

const GLOBAL_UNSUPPORTED: &[&str] = &[
    "smtp_helo_name",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
    "no_email_faults",
    "no_checker_emails",
    "checker_log_all_failures",
    "rs_init_notifies",
    "set_supplementary_groups",
    "startup_script",
    "shutdown_script",
    "startup_script_timeout",
    "shutdown_script_timeout",
    "notify_fifo",
    "notify_fifo_script",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "fifo_write_vrrp_states_on_reload",
    "use_symlink_paths",
    "vrrp_garp_extra_if",
    "v3_checksum_as_v2",
    "vrrp_owner_ignore_adverts",
    "vrrp_delay_after_boot",
    "log_unknown_vrids",
    "vmac_prefix",
    "vmac_addr_prefix",
    "dynamic_interfaces",
    "vrrp_iptables",
    "vrrp_ipsets",
    "nftables",
    "nftables_priority",
    "nftables_counters",
    "nftables_ifindex",
    "disable_local_igmp",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "lvs_sync_daemon",
    "lvs_timeouts",
    "lvs_flush",
    "lvs_flush_on_stop",
    "lvs_flush_onstop",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "vrrp_priority",
    "checker_priority",
    "bfd_priority",
    "vrrp_no_swap",
    "checker_no_swap",
    "bfd_no_swap",
    "vrrp_rt_priority",
    "checker_rt_priority",
    "bfd_rt_priority",
    "vrrp_cpu_affinity",
    "checker_cpu_affinity",
    "bfd_cpu_affinity",
    "vrrp_rlimit_rttime",
    "checker_rlimit_rttime",
    "bfd_rlimit_rttime",
    "vrrp_rlimit_rtime",
    "checker_rlimit_rtime",
    "bfd_rlimit_rtime",
    "max_auto_priority",
    "min_auto_priority_delay",
    "process_names",
    "process_name",
    "vrrp_process_name",
    "checker_process_name",
    "lvs_process_name",
    "bfd_process_name",
    "umask",
    "tmp_config_directory",
    "config_save_dir",
    "include_check",
    "reload_check_config",
    "reload_time_file",
    "reload_repeat",
    "reload_file",
    "random_seed",
    "data_use_instance",
    "json_version",
    "json_dump_file",
    "state_file_location",
    "stats_file_location",
    "json_file_location",
    "iproute_usr_dir",
    "iproute_etc_dir",
    "snmp_socket",
    "enable_traps",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_checker",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "snmp_vs_stats_update_interval",
    "snmp_rs_stats_update_interval",
    "enable_dbus",
    "dbus_service_name",
    "dbus_no_interface_name",
    "lvs_sync_daemon_interface",
    "linkbeat_use_polling",
    "vrrp_garp_interval_delay",
];

const VS_LEAVES: &[&str] = &[
    "lb_algo",
    "lvs_sched",
    "lb_kind",
    "lvs_method",
    "protocol",
    "weight",
    "inhibit_on_failure",
    "laddr_group_name",
    "persistence_timeout",
    "persistence_granularity",
    "virtualhost",
    "omega",
    "quorum",
    "hysteresis",
    "quorum_up",
    "quorum_down",
    "sorry_server",
    "sorry_server_inhibit",
    "ha_suspend",
    "daddr_group_name",
    "waddr_group_name",
    "syn_proxy",
    "expire_quiescent_conn",
    "quic",
    "establish_timeout",
    "proxy_protocol",
    "hash_target",
    "bps",
    "limit_proportion",
    "vip_bind_dev",
    "src-range",
    "dst-range",
    "iif",
    "oif",
];

const VS_UNSUPPORTED: &[&str] = &[
    "ops",
    "flag-1",
    "flag-2",
    "flag-3",
    "sh-port",
    "sh-fallback",
    "mh-port",
    "mh-fallback",
    "hashed",
    "persistence_engine",
    "ip_family",
    "smtp_alert",
    "snmp_name",
    "sorry_server_lvs_method",
];

const RS_UNSUPPORTED: &[&str] = &["lvs_method", "smtp_alert", "snmp_name"];

/// HTTP_GET / SSL_GET keywords of newer keepalived versions (†).
const HTTP_UNSUPPORTED: &[&str] = &["sni_name", "tls_compliant"];

const URL_UNSUPPORTED: &[&str] = &[
    "regex_options",
    "regex_stack",
    "regex_min_offset",
    "regex_max_offset",
    "tls_compliant",
];

/// Keywords shared by virtual servers, real servers and checkers (inherited values).
const INHERITED: &[&str] = &[
    "connect_timeout",
    "retry",
    "delay_before_retry",
    "delay_loop",
    "warmup",
    "alpha",
];

/// The connection keywords of checkers (and of SMTP `host` blocks).
const CONNECTION: &[&str] = &[
    "connect_ip",
    "connect_port",
    "bindto",
    "bind_port",
    "bind_if",
    "connect_timeout",
    "fwmark",
];

/// The keywords every checker but FILE_CHECK has.
const CHECKER_COMMON: &[&str] = &[
    "retry",
    "delay_before_retry",
    "warmup",
    "delay_loop",
    "alpha",
    "log_all_failures",
];

/// The blocks of a real server: the checkers and `BFD_CHECK`.
const RS_SECTIONS: &[(&str, Level)] = &[
    ("TCP_CHECK", Level::Checker(Ck::Tcp)),
    ("HTTP_GET", Level::Checker(Ck::Http)),
    ("SSL_GET", Level::Checker(Ck::Ssl)),
    ("MISC_CHECK", Level::Checker(Ck::Misc)),
    ("SMTP_CHECK", Level::Checker(Ck::Smtp)),
    ("DNS_CHECK", Level::Checker(Ck::Dns)),
    ("UDP_CHECK", Level::Checker(Ck::Udp)),
    ("PING_CHECK", Level::Checker(Ck::Ping)),
    ("FILE_CHECK", Level::Checker(Ck::File)),
    ("BFD_CHECK", Level::BfdCheck),
];

const GLOBAL_LEAVES: &[&str] = &[
    "router_id",
    "notification_email_from",
    "smtp_server",
    "smtp_connect_timeout",
    "enable_script_security",
    "state_dump_file",
    "stats_dump_file",
    "script_user",
];

const RS_LEAVES: &[&str] = &[
    "weight",
    "uthreshold",
    "lthreshold",
    "inhibit_on_failure",
    "virtualhost",
    "notify_up",
    "notify_down",
];

const URL_LEAVES: &[&str] = &[
    "path",
    "digest",
    "status_code",
    "virtualhost",
    "regex",
    "regex_no_match",
];

const TOP_SECTIONS: &[(&str, Level)] = &[
    ("global_defs", Level::GlobalDefs),
    ("virtual_server", Level::VirtualServer),
    ("vrrp_instance", Level::VrrpInstance),
    ("vrrp_script", Level::VrrpScript),
    ("vrrp_sync_group", Level::VrrpSyncGroup),
    ("track_file", Level::TrackFile),
    ("vrrp_track_file", Level::TrackFile),
    ("ospf_announcer", Level::Ospf),
    ("tunnel_group", Level::TunnelGroup),
    ("garp_group", Level::GarpGroup),
    ("vrrp_track_process", Level::TrackProcess),
    ("bfd_instance", Level::BfdInstance),
    ("SSL", Level::Ssl),
];

const TOP_VALUES: &[&str] = &[
    "local_address_group",
    "deny_address_group",
    "allow_address_group",
    "virtual_server_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
];

/// The leaf keywords of a level, as up to three lists.
fn leaves(level: Level) -> [&'static [&'static str]; 3] {
    const NONE: &[&str] = &[];
    match level {
        Level::Top => [NONE; 3],
        Level::GlobalDefs => [GLOBAL_LEAVES, vrrp::GLOBAL_VRRP, NONE],
        Level::VirtualServer => [VS_LEAVES, INHERITED, NONE],
        Level::RealServer => [RS_LEAVES, INHERITED, NONE],
        Level::Checker(ck) => [
            ck.leaves(),
            if ck.has_connection() {
                CONNECTION
            } else {
                NONE
            },
            if ck == Ck::File { NONE } else { CHECKER_COMMON },
        ],
        Level::Url => [URL_LEAVES, NONE, NONE],
        Level::TunnelEntry => [&["kind", "local", "remote", "if"], NONE, NONE],
        Level::SmtpHost => [CONNECTION, CHECKER_COMMON, NONE],
        Level::GarpGroup => [&["garp_interval", "gna_interval", "interface"], NONE, NONE],
        Level::TrackProcess => [extra::TRACK_PROCESS, NONE, NONE],
        Level::BfdInstance => [extra::BFD_INSTANCE, NONE, NONE],
        Level::Ssl => [&["password", "ca", "certificate", "key"], NONE, NONE],
        Level::BfdCheck => [&["name", "alpha"], NONE, NONE],
        _ => [vrrp::leaves(level), NONE, NONE],
    }
}

/// The block keywords of a level: sections, value blocks and known but
/// unsupported keywords.
type Blocks = (
    &'static [(&'static str, Level)],
    &'static [&'static str],
    &'static [&'static str],
);

fn blocks(level: Level) -> Blocks {
    match level {
        Level::Top => (TOP_SECTIONS, TOP_VALUES, TOP_UNSUPPORTED),
        Level::GlobalDefs => (&[], &["notification_email"], GLOBAL_UNSUPPORTED),
        Level::VrrpInstance => (
            &[("authentication", Level::VrrpAuth)],
            vrrp::INSTANCE_VALUES,
            vrrp::INSTANCE_UNSUPPORTED,
        ),
        Level::VrrpSyncGroup => (&[], vrrp::SYNC_VALUES, vrrp::SYNC_UNSUPPORTED),
        Level::Ospf => (&[("interface", Level::OspfInterface)], &[], &[]),
        Level::TunnelGroup => (&[("tunnel_entry", Level::TunnelEntry)], &[], &[]),
        Level::TunnelEntry => (&[], &[], &[]),
        Level::VrrpScript | Level::TrackFile | Level::VrrpAuth | Level::OspfInterface => {
            (&[], &[], &[])
        }
        Level::VirtualServer => (&[("real_server", Level::RealServer)], &[], VS_UNSUPPORTED),
        Level::RealServer => (RS_SECTIONS, &[], RS_UNSUPPORTED),
        Level::GarpGroup => (&[], &["interfaces"], &[]),
        Level::TrackProcess | Level::BfdInstance | Level::Ssl | Level::BfdCheck => (&[], &[], &[]),
        Level::Checker(Ck::Http | Ck::Ssl) => (&[("url", Level::Url)], &[], HTTP_UNSUPPORTED),
        Level::Checker(Ck::Smtp) => (&[("host", Level::SmtpHost)], &[], &[]),
        Level::Checker(_) | Level::SmtpHost => (&[], &[], &[]),
        Level::Url => (&[], &[], URL_UNSUPPORTED),
    }
}

fn lookup(level: Level, kw: &str) -> Option<(Kind, &'static str)> {
    let find = |table: &[&'static str]| table.iter().copied().find(|k| *k == kw);
    if let Some(k) = leaves(level).into_iter().find_map(find) {
        return Some((Kind::Leaf, k));
    }
    let (sections, values, unsupported) = blocks(level);
    if let Some((k, l)) = sections.iter().find(|(k, _)| *k == kw) {
        Some((Kind::Section(*l), k))
    } else if let Some(k) = find(values) {
        Some((Kind::Values, k))
    } else {
        find(unsupported).map(|k| (Kind::Unsupported, k))
    }
}

/// A small direct-mapped memo of [`lookup`] (the same keywords come back
/// at the same levels, and a table scan compares dozens of strings).
#[derive(Debug)]
struct KindCache([Option<(Level, &'static str, Kind)>; 64]);

impl KindCache {
    fn new() -> Self {
        KindCache([None; 64])
    }

    fn lookup(&mut self, level: Level, kw: &str) -> Option<Kind> {
        let b = kw.as_bytes();
        let first = usize::from(b.first().copied().unwrap_or(0));
        let last = usize::from(b.last().copied().unwrap_or(0));
        let slot = (b.len() ^ (first << 1) ^ (last << 3)) & 63;
        if let Some((l, k, kind)) = self.0[slot] {
            if l == level && k == kw {
                return Some(kind);
            }
        }
        let (kind, k) = lookup(level, kw)?;
        self.0[slot] = Some((level, k, kind));
        Some(kind)
    }
}

/// Every keyword known at a level.
fn keywords(level: Level) -> impl Iterator<Item = &'static str> {
    let (sections, values, unsupported) = blocks(level);
    leaves(level)
        .into_iter()
        .flatten()
        .chain(values)
        .chain(unsupported)
        .copied()
        .chain(sections.iter().map(|(k, _)| *k))
}

/// The known keyword of `level` closest to a misspelt one, when one is
/// close enough to be a likely typo: within edit distance 1 for words of
/// up to 4 characters, 2 up to 8, else 3 (case differences count half).
fn did_you_mean(level: Level, kw: &str) -> Option<&'static str> {
    let len = kw.chars().count();
    let limit = match len {
        0..=4 => 2,
        5..=8 => 4,
        _ => 6,
    };
    keywords(level)
        // Each insertion or deletion costs 2: a length difference alone can
        // rule a keyword out without computing the distance.
        .filter(|k| 2 * k.len().abs_diff(len) <= limit)
        .map(|k| (values::edit_distance(kw, k), k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// A statement placed where keepalived's block engine puts it.
#[derive(Debug)]
struct Node<'a> {
    stmt: &'a Stmt<'a>,
    /// Members of a section, or the lines of a value block.
    children: Vec<Node<'a>>,
}

impl<'a> Node<'a> {
    fn leaf(stmt: &'a Stmt<'a>) -> Self {
        Node {
            stmt,
            children: Vec::new(),
        }
    }
}

/// The identity of a statement (its address in the AST), to find the
/// keywords kept for its section (`Lowerer::kept`) without making every
/// [`Node`] bigger.
fn stmt_id(s: &Stmt<'_>) -> usize {
    std::ptr::from_ref(s).addr()
}

#[derive(Debug, Clone, Copy)]
enum Event<'a> {
    Line(&'a Stmt<'a>),
    Open(Pos),
    Close(Pos),
}

/// The AST flattened back into its keyword / `{` / `}` stream, in file order.
#[derive(Debug)]
struct Flatten<'a> {
    /// The statements still to visit at each depth, with the `}` that ends it.
    stack: Vec<(Members<'a, 'a>, Option<Pos>)>,
    /// The statement just visited, with its block, which comes next.
    pending: Option<(&'a Stmt<'a>, &'a [Stmt<'a>])>,
}

impl<'a> Iterator for Flatten<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        loop {
            if let Some((s, block)) = self.pending.take() {
                if let Some(open) = s.open_brace() {
                    self.stack.push((members(block), s.close_brace()));
                    return Some(Event::Open(open));
                }
            }
            let (stmts, close) = self.stack.last_mut()?;
            match stmts.next() {
                Some((s, block)) => {
                    self.pending = Some((s, block));
                    if !s.is_bare_block() {
                        return Some(Event::Line(s));
                    }
                }
                None => {
                    let close = *close;
                    self.stack.pop();
                    if let Some(close) = close {
                        return Some(Event::Close(close));
                    }
                }
            }
        }
    }
}

/// Lowers a parsed configuration. Diagnostics are appended to `diags`.
pub(crate) fn lower(
    ast: &[Stmt<'_>],
    sources: &Sources,
    mode: ParseMode,
    diags: &mut Vec<Diagnostic>,
) -> Model {
    let mut lw = Lowerer {
        sources,
        mode,
        hints: 0,
        diags,
        model: Model::default(),
        track_files: Vec::new(),
        garp_lower_set: vrrp::GarpSet::default(),
        kinds: KindCache::new(),
        warned: Vec::new(),
        checker_bfds: Vec::new(),
        kept: std::collections::HashMap::new(),
    };
    let mut events = Flatten {
        stack: vec![(members(ast), None)],
        pending: None,
    }
    .peekable();
    let (top, ignored) = lw.level(&mut events, Level::Top, None);
    lw.model.ignored = ignored;
    lw.top(top);
    lw.model
}

type Events<'a> = std::iter::Peekable<Flatten<'a>>;

#[derive(Debug)]
struct Lowerer<'d> {
    /// The files read, to turn positions into locations.
    sources: &'d Sources,
    mode: ParseMode,
    /// How many unknown keywords were looked up for a "did you mean" hint.
    hints: usize,
    diags: &'d mut Vec<Diagnostic>,
    model: Model,
    /// Names of the top-level `track_file` blocks (for FILE_CHECK).
    track_files: Vec<String>,
    /// Whether `vrrp_garp_lower_prio_delay` / `_repeat` were written (else
    /// they follow the master values).
    garp_lower_set: vrrp::GarpSet,
    /// Memo of the keyword tables.
    kinds: KindCache,
    /// The keywords already reported as not supported by dpvsd.
    warned: Vec<String>,
    /// The `bfd_instance`s defined so far that report to the checker (for `BFD_CHECK`).
    checker_bfds: Vec<String>,
    /// The keywords dpvsd keeps as written, by the section (see [`stmt_id`]) they stand in.
    kept: std::collections::HashMap<usize, Vec<Ignored>>,
}

/// Values inherited checker ← real server ← virtual server.
#[derive(Debug, Default, Clone, Copy)]
struct Inherit {
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    delay_loop: Option<Duration>,
    warmup: Option<Duration>,
    alpha: Option<bool>,
}

impl Inherit {
    fn under(self, parent: Inherit) -> Inherit {
        Inherit {
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            delay_loop: self.delay_loop.or(parent.delay_loop),
            warmup: self.warmup.or(parent.warmup),
            alpha: self.alpha.or(parent.alpha),
        }
    }
}

/// A real server before the VS-level values it depends on are known.
#[derive(Debug)]
struct RawRealServer {
    addr: IpAddr,
    port: Option<u16>,
    port_token: Option<Pos>,
    weight: Option<u32>,
    uthreshold: Option<u32>,
    lthreshold: Option<u32>,
    inhibit_on_failure: Option<bool>,
    virtualhost: Option<String>,
    notify_up: Option<Box<Script>>,
    notify_down: Option<Box<Script>>,
    inherit: Inherit,
    checkers: RawCheckers,
    bfd_checks: Vec<BfdCheck>,
    ignored: Vec<Ignored>,
    location: Location,
}

/// The connection options of a checker (or of an SMTP `host` block).
#[derive(Debug, Default, Clone)]
struct RawConn {
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
    bind_if: Option<String>,
    connect_timeout: Option<Duration>,
    fwmark: Option<u32>,
}

impl RawConn {
    fn is_set(&self) -> bool {
        self.connect_ip.is_some()
            || self.connect_port.is_some()
            || self.bindto.is_some()
            || self.bind_port.is_some()
            || self.bind_if.is_some()
            || self.connect_timeout.is_some()
            || self.fwmark.is_some()
    }
}

/// The checkers of a real server, in order: nearly always one, kept
/// inline (no allocation for each of 100,000 real servers).
#[derive(Debug, Default)]
struct RawCheckers {
    first: Option<RawChecker>,
    more: Vec<RawChecker>,
}

impl RawCheckers {
    fn push(&mut self, c: RawChecker) {
        if self.first.is_none() {
            self.first = Some(c);
        } else {
            self.more.push(c);
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }
}

impl IntoIterator for RawCheckers {
    type Item = RawChecker;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<RawChecker>, std::vec::IntoIter<RawChecker>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.more)
    }
}

#[derive(Debug)]
struct RawChecker {
    kind: CheckerKind,
    conn: RawConn,
    /// SMTP `host` blocks: each one is a checker of its own.
    hosts: Vec<RawConn>,
    inherit: Inherit,
    log_all_failures: bool,
    /// MISC_CHECK `misc_timeout` seconds.
    misc_timeout: Option<u64>,
    location: Location,
}

/// Where a diagnostic points: a position in the files read, or a location
/// already kept in the model.
trait At {
    fn at(self, sources: &Sources) -> Location;
}

impl At for Pos {
    fn at(self, sources: &Sources) -> Location {
        sources.location(self)
    }
}

impl At for &Location {
    fn at(self, _: &Sources) -> Location {
        self.clone()
    }
}

impl Lowerer<'_> {
    fn max_weight(&self) -> u64 {
        match self.mode.dialect {
            Dialect::Keepalived => MAX_WEIGHT,
            Dialect::Dpvs => MAX_WEIGHT_DPVS,
        }
    }

    /// The full location of a position, for the model.
    fn loc(&self, p: Pos) -> Location {
        self.sources.location(p)
    }

    fn diag(&mut self, severity: Severity, location: impl At, message: impl Into<String>) {
        let location = location.at(self.sources);
        self.diags.push(Diagnostic {
            severity,
            location,
            message: message.into(),
            source_line: None,
            class: DiagClass::Config,
        });
    }

    /// A diagnostic of another class than [`DiagClass::Config`].
    fn diag_class(
        &mut self,
        class: DiagClass,
        severity: Severity,
        location: impl At,
        message: impl Into<String>,
    ) {
        self.diag(severity, location, message);
        if let Some(d) = self.diags.last_mut() {
            d.class = class;
        }
    }

    // ---------------------------------------------------------------- block engine

    /// Reads the members of one level until its `}` (or the end of input).
    fn level<'a>(
        &mut self,
        ev: &mut Events<'a>,
        level: Level,
        parent: Option<&'a Stmt<'a>>,
    ) -> (Vec<Node<'a>>, Vec<Ignored>) {
        // Usually one member per statement of the block.
        let members = parent.map_or(0, |p| p.members as usize);
        let mut nodes = Vec::with_capacity(members);
        let mut ignored = Vec::new();
        while let Some(e) = ev.next() {
            match e {
                Event::Close(loc) => {
                    if parent.is_some() {
                        return (nodes, ignored);
                    }
                    self.diag(Severity::Warning, loc, "unknown keyword '}'");
                }
                Event::Open(loc) => {
                    self.diag(Severity::Warning, loc, "Unexpected '{' - ignoring");
                }
                Event::Line(s) => match self.kinds.lookup(level, s.keyword().text()) {
                    None => self.unknown(ev, s, level, parent),
                    Some(Kind::Leaf) => nodes.push(Node::leaf(s)),
                    Some(Kind::Section(sub)) => {
                        if sub == Level::TrackFile {
                            // FILE_CHECK may name a track_file defined anywhere in the file.
                            self.track_files
                                .extend(s.args().first().map(|t| t.text().to_string()));
                        }
                        self.expect_open(ev, s);
                        let (children, ignored) = self.level(ev, sub, Some(s));
                        if !ignored.is_empty() {
                            self.kept.insert(stmt_id(s), ignored);
                        }
                        nodes.push(Node { stmt: s, children });
                    }
                    Some(Kind::Values) => {
                        self.expect_open(ev, s);
                        let children = self.value_lines(ev);
                        nodes.push(Node { stmt: s, children });
                    }
                    Some(Kind::Unsupported) => {
                        self.not_supported(s.keyword());
                        let block = self.raw_block(ev);
                        ignored.push(Ignored {
                            keyword: s.keyword().text().to_string(),
                            args: s.args().iter().map(|t| t.text().to_string()).collect(),
                            block,
                            location: self.loc(s.keyword().location),
                        });
                    }
                },
            }
        }
        (nodes, ignored)
    }

    /// The keywords kept for the section `n` (taken: each section is lowered once).
    fn kept_of(&mut self, n: &Node<'_>) -> Vec<Ignored> {
        if self.kept.is_empty() {
            return Vec::new();
        }
        self.kept.remove(&stmt_id(n.stmt)).unwrap_or_default()
    }

    /// The one "not supported by dpvsd, ignored" warning of a keyword (at
    /// its first use): the model keeps it, dpvsd does not act on it.
    fn not_supported(&mut self, kw: &Tok<'_>) {
        if self.warned.iter().any(|k| *k == kw.text()) {
            return;
        }
        self.warned.push(kw.text().to_string());
        self.diag_class(
            DiagClass::Dpvsd,
            Severity::Warning,
            kw.location,
            format!(
                "keyword '{}' is not supported by dpvsd, ignored (kept in the configuration model; further uses are not reported)",
                kw.text()
            ),
        );
    }

    /// The block of a keyword dpvsd keeps as written: its lines, nested
    /// blocks as children (`None` when no `{` follows).
    fn raw_block(&mut self, ev: &mut Events<'_>) -> Option<Vec<Ignored>> {
        if !matches!(ev.peek(), Some(Event::Open(_))) {
            return None;
        }
        ev.next();
        let mut stack: Vec<Vec<Ignored>> = vec![Vec::new()];
        for e in ev.by_ref() {
            match e {
                Event::Line(s) => {
                    let line = Ignored {
                        keyword: s.keyword().text().to_string(),
                        args: s.args().iter().map(|t| t.text().to_string()).collect(),
                        block: None,
                        location: self.sources.location(s.keyword().location),
                    };
                    if let Some(top) = stack.last_mut() {
                        top.push(line);
                    }
                }
                Event::Open(_) => stack.push(Vec::new()),
                Event::Close(_) => {
                    let Some(done) = stack.pop() else { break };
                    match stack.last_mut() {
                        // A nested block belongs to the line before it.
                        Some(outer) => match outer.last_mut() {
                            Some(owner) if owner.block.is_none() => owner.block = Some(done),
                            _ => outer.extend(done),
                        },
                        None => return Some(done),
                    }
                }
            }
        }
        stack.into_iter().next()
    }

    fn unknown<'a>(
        &mut self,
        ev: &mut Events<'a>,
        s: &'a Stmt<'a>,
        level: Level,
        parent: Option<&'a Stmt<'a>>,
    ) {
        let kw = &s.keyword().text();
        // Hints are for typos; a flood of unknown words (a runaway ~SEQ)
        // gets no more than MAX_HINTS of them.
        let hint = if self.hints < MAX_HINTS {
            self.hints += 1;
            did_you_mean(level, kw)
        } else {
            None
        };
        let hint = hint
            .map(|k| format!(" (did you mean '{k}'?)"))
            .unwrap_or_default();
        let (severity, strict) = if self.mode.strict {
            (Severity::Fatal, " - fatal with --strict")
        } else {
            (Severity::Warning, "")
        };
        self.diag(
            severity,
            s.keyword().location,
            format!("unknown keyword '{kw}'{hint}{strict}"),
        );
        if let Some(Event::Open(open)) = ev.peek().copied() {
            ev.next();
            let effect = match parent {
                Some(p) => format!(
                    "its '}}' closes the enclosing '{}' block (line {}) early, so what follows it belongs to the level above",
                    p.keyword().text(), p.location().line
                ),
                None => "its '}' is ignored".to_string(),
            };
            self.diag(
                Severity::Warning,
                open,
                format!(
                    "block of unknown keyword '{kw}' is not skipped (as in keepalived): its '{{' is ignored, its contents are read as part of {}, and {effect}",
                    level.name()
                ),
            );
        }
    }

    fn expect_open(&mut self, ev: &mut Events<'_>, s: &Stmt<'_>) {
        if let Some(Event::Open(_)) = ev.peek() {
            ev.next();
        } else {
            self.diag(
                Severity::Warning,
                s.keyword().location,
                format!(
                    "Missing '{{' at beginning of configuration block '{}'",
                    s.keyword().text()
                ),
            );
        }
    }

    /// A value block: every line up to the first `}` (value blocks do not nest).
    fn value_lines<'a>(&mut self, ev: &mut Events<'a>) -> Vec<Node<'a>> {
        let mut lines = Vec::new();
        for e in ev.by_ref() {
            match e {
                Event::Close(_) => break,
                Event::Open(loc) => {
                    self.diag(
                        Severity::Warning,
                        loc,
                        "Unexpected '{' in a value block - ignoring",
                    );
                }
                Event::Line(s) => lines.push(Node::leaf(s)),
            }
        }
        lines
    }

    // ---------------------------------------------------------------- arguments

    /// Argument `n` (0 = first after the keyword); a missing one is fatal, as in keepalived.
    fn arg<'a>(&mut self, s: &'a Stmt<'a>, n: usize) -> Option<&'a Tok<'a>> {
        let a = s.args().get(n);
        if a.is_none() {
            self.diag_class(
                DiagClass::MissingParameter,
                Severity::Fatal,
                s.keyword().location,
                format!(
                    "Configuration line starting `{}` is missing a parameter",
                    s.keyword().text()
                ),
            );
        }
        a
    }

    fn check<T>(&mut self, t: &Tok<'_>, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(msg) => {
                self.diag(Severity::Error, t.location, format!("{msg} - ignoring"));
                None
            }
        }
    }

    fn timer_arg(&mut self, s: &Stmt<'_>, min_us: u64) -> Option<Duration> {
        let t = self.arg(s, 0)?;
        let timer = self.check(t, values::timer(t.text(), min_us))?;
        if timer.rounded {
            self.diag(
                Severity::Warning,
                t.location,
                format!(
                    "number '{}' has more than 6 decimal places - rounding",
                    t.text()
                ),
            );
        }
        Some(timer.value)
    }

    fn uint_arg(&mut self, s: &Stmt<'_>, min: u64, max: u64) -> Option<u64> {
        let t = self.arg(s, 0)?;
        self.check(t, values::uint(t.text(), min, max))
    }

    fn ip_token(&mut self, t: &Tok<'_>) -> Option<IpAddr> {
        self.check(t, values::ip(t.text()))
    }

    fn port_token(&mut self, t: &Tok<'_>, min: u64) -> Option<u16> {
        let v = self.check(t, values::uint(t.text(), min, 65535))?;
        u16::try_from(v).ok()
    }

    /// `KEYWORD [BOOL]`: no argument means true.
    fn opt_bool(&mut self, s: &Stmt<'_>) -> Option<bool> {
        match s.args().first() {
            None => Some(true),
            Some(t) => self.check(t, values::boolean(t.text())),
        }
    }

    /// The inherited keywords, at `level`; returns false when `n` is not one.
    fn inherited(&mut self, n: &Node<'_>, level: Level, inh: &mut Inherit) -> bool {
        let s = n.stmt;
        match s.keyword().text() {
            "connect_timeout" => inh.connect_timeout = self.timer_arg(s, 1).or(inh.connect_timeout),
            "delay_loop" => inh.delay_loop = self.timer_arg(s, 1).or(inh.delay_loop),
            "delay_before_retry" => {
                inh.delay_before_retry = self.timer_arg(s, 0).or(inh.delay_before_retry);
            }
            "warmup" => inh.warmup = self.timer_arg(s, 0).or(inh.warmup),
            "retry" => {
                let min = if level == Level::VirtualServer { 1 } else { 0 };
                let v = self.uint_arg(s, min, u64::from(u32::MAX));
                inh.retry = v.and_then(|v| u32::try_from(v).ok()).or(inh.retry);
            }
            // The virtual-server `alpha` takes no argument.
            "alpha" if level == Level::VirtualServer => inh.alpha = Some(true),
            "alpha" => inh.alpha = self.opt_bool(s).or(inh.alpha),
            _ => return false,
        }
        true
    }

    // ---------------------------------------------------------------- typed lowering

    /// Lowers the top-level nodes. Each virtual server's subtree is freed
    /// as soon as it is lowered, so that the model's allocations reuse its
    /// memory (a large configuration is mostly virtual servers).
    fn top(&mut self, mut nodes: Vec<Node<'_>>) {
        let mut laddr_refs: Vec<(usize, Tok<'_>)> = Vec::new();
        let mut group_refs: Vec<(usize, Tok<'_>)> = Vec::new();
        let mut vrrp_nodes = vrrp::VrrpNodes::default();
        for n in &mut nodes {
            match n.stmt.keyword().text() {
                "global_defs" => self.global_defs(n),
                "vrrp_script" => vrrp_nodes.scripts.push(n),
                "track_file" | "vrrp_track_file" => vrrp_nodes.track_files.push(n),
                "vrrp_instance" => vrrp_nodes.instances.push(n),
                "vrrp_sync_group" => vrrp_nodes.sync_groups.push(n),
                "static_ipaddress" => vrrp_nodes.static_addresses.push(n),
                "static_routes" => vrrp_nodes.static_routes.push(n),
                "static_rules" => vrrp_nodes.static_rules.push(n),
                "ospf_announcer" => vrrp_nodes.ospf.push(n),
                "local_address_group" => self.local_address_group(n),
                "deny_address_group" | "allow_address_group" => self.access_group(n),
                "tunnel_group" => self.tunnel_group(n),
                "vrrp_track_process" => {
                    if let Some(tp) = self.track_process(n) {
                        self.model.vrrp_track_processes.push(tp);
                    }
                }
                "bfd_instance" => {
                    if let Some(b) = self.bfd_instance(n) {
                        if b.checker {
                            self.checker_bfds.push(b.name.clone());
                        }
                        self.model.bfd_instances.push(b);
                    }
                }
                "garp_group" => {
                    if let Some(g) = self.garp_group(n) {
                        self.model.garp_groups.push(g);
                    }
                }
                "SSL" => self.ssl(n),
                "virtual_server_group" => self.virtual_server_group(n),
                "virtual_server" => {
                    if let Some((vs, laddr, group)) = self.virtual_server(n) {
                        let idx = self.model.virtual_servers.len();
                        laddr_refs.extend(laddr.map(|t| (idx, t)));
                        group_refs.extend(group.map(|t| (idx, t)));
                        self.model.virtual_servers.push(vs);
                    }
                    drop(std::mem::take(&mut n.children));
                }
                _ => {}
            }
        }
        // Groups may be defined after the virtual servers that name them.
        for (idx, t) in laddr_refs {
            if !self
                .model
                .local_address_groups
                .iter()
                .any(|g| g.name == t.text())
            {
                self.diag(
                    Severity::Error,
                    t.location,
                    format!(
                        "laddr_group_name '{}' names no local_address_group",
                        t.text()
                    ),
                );
                if let Some(vs) = self.model.virtual_servers.get_mut(idx) {
                    vs.laddr_group_name = None;
                }
            }
        }
        let mut dropped = Vec::new();
        for (idx, t) in group_refs {
            if !self
                .model
                .virtual_server_groups
                .iter()
                .any(|g| g.name == t.text())
            {
                self.diag(
                    Severity::Error,
                    t.location,
                    format!(
                        "Virtual server group {} has no entries - removing virtual server",
                        t.text()
                    ),
                );
                dropped.push(idx);
            }
        }
        let mut idx = 0;
        self.model.virtual_servers.retain(|_| {
            idx += 1;
            !dropped.contains(&(idx - 1))
        });
        self.vrrp_pass(&vrrp_nodes);
    }

    fn global_defs(&mut self, n: &Node<'_>) {
        self.model
            .global_defs
            .ignored
            .extend(self.kept.remove(&stmt_id(n.stmt)).unwrap_or_default());
        for c in &n.children {
            let s = c.stmt;
            if self.global_vrrp(s) {
                continue;
            }
            match s.keyword().text() {
                "router_id" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.router_id = Some(t.text().to_string());
                    }
                }
                "notification_email" => {
                    for line in &c.children {
                        self.model
                            .global_defs
                            .notification_email
                            .push(line.stmt.keyword().text().to_string());
                    }
                }
                "notification_email_from" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.notification_email_from = Some(t.text().to_string());
                    }
                }
                "smtp_server" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.smtp_server = Some(t.text().to_string());
                        let port = match s.args().get(1) {
                            Some(p) => self.port_token(p, 1),
                            None => Some(25),
                        };
                        self.model.global_defs.smtp_port = port;
                    }
                }
                "enable_script_security" => {
                    self.model.global_defs.enable_script_security =
                        self.opt_bool(s).unwrap_or(true);
                }
                "state_dump_file" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.state_dump_file = Some(t.text().to_string());
                    }
                }
                "stats_dump_file" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.stats_dump_file = Some(t.text().to_string());
                    }
                }
                "script_user" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.script_user = Some(t.text().to_string());
                        self.model.global_defs.script_group =
                            s.args().get(1).map(|g| g.text().to_string());
                    }
                }
                "smtp_connect_timeout" => {
                    if let Some(d) = self.timer_arg(s, 1) {
                        self.model.global_defs.smtp_connect_timeout = Some(d);
                    }
                }
                _ => {}
            }
        }
    }

    fn local_address_group(&mut self, n: &Node<'_>) {
        let Some(name) = self.arg(n.stmt, 0) else {
            return;
        };
        if self
            .model
            .local_address_groups
            .iter()
            .any(|g| g.name == name.text())
        {
            self.diag(
                Severity::Error,
                name.location,
                format!(
                    "local_address_group '{}' is defined twice - ignoring this one",
                    name.text()
                ),
            );
            return;
        }
        let mut addresses = Vec::new();
        for line in &n.children {
            let s = line.stmt;
            let Some(ifname) = s.args().first() else {
                self.diag(
                    Severity::Error,
                    s.keyword().location,
                    format!(
                        "local address '{}' has no interface name - ignoring",
                        s.keyword().text()
                    ),
                );
                continue;
            };
            let Some(addrs) = self.check(s.keyword(), expand_range(s.keyword().text())) else {
                continue;
            };
            addresses.extend(addrs.into_iter().map(|addr| LocalAddress {
                addr,
                ifname: ifname.text().to_string(),
            }));
        }
        if addresses.is_empty() {
            self.diag(
                Severity::Warning,
                name.location,
                format!("local_address_group '{}' has no addresses", name.text()),
            );
        }
        self.model.local_address_groups.push(LocalAddressGroup {
            name: name.text().to_string(),
            addresses,
            location: self.loc(n.stmt.location()),
        });
    }

    /// DPVS `deny_address_group` / `allow_address_group NAME { IP | IP-LAST
    /// | ipset:SET ... }`, used by virtual servers' `daddr_group_name` /
    /// `waddr_group_name`.
    fn access_group(&mut self, n: &Node<'_>) {
        let kw = n.stmt.keyword().text();
        let Some(name) = self.arg(n.stmt, 0) else {
            return;
        };
        let deny = kw == "deny_address_group";
        let groups = if deny {
            &self.model.deny_address_groups
        } else {
            &self.model.allow_address_groups
        };
        if groups.iter().any(|g| g.name == name.text()) {
            self.diag(
                Severity::Error,
                name.location,
                format!(
                    "{kw} '{}' is defined twice - ignoring this one",
                    name.text()
                ),
            );
            return;
        }
        let mut entries = Vec::new();
        for line in &n.children {
            let t = &line.stmt.keyword();
            if let Some(set) = t.text().strip_prefix("ipset:") {
                entries.push(AccessEntry::Ipset(set.to_string()));
            } else if let Some(addrs) = self.check(t, expand_range(t.text())) {
                entries.extend(addrs.into_iter().map(AccessEntry::Addr));
            }
        }
        let group = AccessGroup {
            name: name.text().to_string(),
            entries,
            location: self.loc(n.stmt.location()),
        };
        if deny {
            self.model.deny_address_groups.push(group);
        } else {
            self.model.allow_address_groups.push(group);
        }
    }

    /// DPVS `tunnel_group NAME { tunnel_entry IFNAME { kind ipip|gre; local
    /// IP; remote IP; if LINKDEV } ... }`. Lowered into the model; dpvsd
    /// does not create tunnel devices, which a (dpvsd-class) warning says.
    fn tunnel_group(&mut self, n: &Node<'_>) {
        self.not_acted_on(n);
        let Some(name) = self.arg(n.stmt, 0) else {
            return;
        };
        let mut entries = Vec::new();
        for e in &n.children {
            let Some(ifname) = self.arg(e.stmt, 0) else {
                continue;
            };
            let mut entry = TunnelEntry {
                ifname: ifname.text().to_string(),
                kind: None,
                local: None,
                remote: None,
                link: None,
                location: self.loc(e.stmt.location()),
            };
            for c in &e.children {
                let s = c.stmt;
                let Some(t) = self.arg(s, 0) else {
                    continue;
                };
                match s.keyword().text() {
                    "kind" => {
                        let kind = match t.text() {
                            "ipip" => Ok(TunnelKind::Ipip),
                            "gre" => Ok(TunnelKind::Gre),
                            other => Err(format!("invalid tunnel kind '{other}' (ipip or gre)")),
                        };
                        entry.kind = self.check(t, kind).or(entry.kind);
                    }
                    "local" => entry.local = self.ip_token(t).or(entry.local),
                    "remote" => entry.remote = self.ip_token(t).or(entry.remote),
                    _ => entry.link = Some(t.text().to_string()),
                }
            }
            entries.push(entry);
        }
        self.model.tunnel_groups.push(TunnelGroup {
            name: name.text().to_string(),
            entries,
            location: self.loc(n.stmt.location()),
        });
    }

    /// The warning for a DPVS block that is read into the model but that
    /// dpvsd does not act on (it does not change `-t`'s exit code).
    fn not_acted_on(&mut self, n: &Node<'_>) {
        self.diag_class(
            DiagClass::Dpvsd,
            Severity::Warning,
            n.stmt.keyword().location,
            format!(
                "keyword '{}' is not yet supported by dpvsd, ignored",
                n.stmt.keyword().text()
            ),
        );
    }

    /// `virtual_server_group NAME { IP [PORT] | IP-LAST [PORT] | fwmark N }`.
    fn virtual_server_group(&mut self, n: &Node<'_>) {
        let Some(name) = self.arg(n.stmt, 0) else {
            return;
        };
        let mut entries = Vec::new();
        for line in &n.children {
            let s = line.stmt;
            if s.keyword().text() == "fwmark" {
                let Some(t) = s.args().first() else {
                    self.diag(
                        Severity::Error,
                        s.keyword().location,
                        format!("({}): fwmark has no value - ignoring", name.text()),
                    );
                    continue;
                };
                if let Some(m) = self.check(t, values::uint(t.text(), 0, u64::from(u32::MAX))) {
                    entries.extend(u32::try_from(m).ok().map(VsgEntry::Fwmark));
                }
                continue;
            }
            let addrs = match expand_range(s.keyword().text()) {
                Ok(a) => a,
                Err(_) => {
                    self.diag(
                        Severity::Error,
                        s.keyword().location,
                        format!(
                            "Invalid virtual server group IP address {} - skipping",
                            s.keyword().text()
                        ),
                    );
                    continue;
                }
            };
            let port = match s.args().first() {
                Some(t) => match self.port_token(t, 0) {
                    Some(p) => p,
                    None => continue,
                },
                None => 0,
            };
            if let (Some(&first), Some(&last)) = (addrs.first(), addrs.last()) {
                entries.push(VsgEntry::Range { first, last, port });
            }
        }
        if entries.is_empty() {
            // keepalived removes an empty group; a virtual server naming it is then dropped.
            return;
        }
        self.model.virtual_server_groups.push(VirtualServerGroup {
            name: name.text().to_string(),
            entries,
            location: self.loc(n.stmt.location()),
        });
    }

    /// The header of `virtual_server`; `None` when the block is to be skipped.
    fn vs_header<'a>(&mut self, s: &'a Stmt<'a>) -> Option<VsHeader<'a>> {
        let first = self.arg(s, 0)?;
        match first.text() {
            "fwmark" => {
                let t = self.arg(s, 1)?;
                let m = values::uint(t.text(), 0, u64::from(u32::MAX)).map_err(|_| {
                    format!(
                        "virtual server fwmark '{}' must be in [0, {}] - ignoring",
                        t.text(),
                        u32::MAX
                    )
                });
                let m = self.check(t, m)?;
                Some(VsHeader::Fwmark(u32::try_from(m).ok()?))
            }
            "group" => Some(VsHeader::Group(*self.arg(s, 1)?)),
            "match" => Some(VsHeader::Match(self.arg(s, 1)?.text().to_string())),
            text => {
                // A `-range` or `/prefix` suffix is stripped, as keepalived does.
                let addr_text = text.split(['/', '-']).next().unwrap_or_default();
                let addr = match values::ip(addr_text) {
                    Ok(a) => a,
                    Err(_) => {
                        self.diag(
                            Severity::Error,
                            first.location,
                            format!("Invalid virtual server IP address {text} - skipping"),
                        );
                        return None;
                    }
                };
                let port = match s.args().get(1) {
                    Some(t) => match self.port_token(t, 0) {
                        Some(p) => p,
                        None => {
                            self.diag(Severity::Error, t.location, "virtual server ignored");
                            return None;
                        }
                    },
                    None => 0,
                };
                Some(VsHeader::Addr(addr, port))
            }
        }
    }

    /// Returns the virtual server and its `laddr_group_name` and `group` tokens (checked later).
    fn virtual_server<'a>(&mut self, n: &Node<'a>) -> Option<LoweredVs<'a>> {
        let s = n.stmt;
        let header = self.vs_header(s)?;
        let (addr, port) = match header {
            VsHeader::Addr(a, p) => (a, p),
            _ => (IpAddr::from([0, 0, 0, 0]), 0),
        };
        let is_fwmark = matches!(header, VsHeader::Fwmark(_));
        let mut vs = VirtualServer {
            ignored: self.kept_of(n),
            addr,
            port,
            protocol: Protocol::Udp,
            lb_algo: LbAlgo::Wlc,
            lb_kind: if matches!(header, VsHeader::Match(_)) {
                LbKind::Snat
            } else {
                LbKind::Nat
            },
            delay_loop: DEFAULT_DELAY_LOOP,
            laddr_group_name: None,
            real_servers: Vec::new(),
            location: self.loc(s.location()),
            fwmark: match header {
                VsHeader::Fwmark(m) => Some(m),
                _ => None,
            },
            group: match &header {
                VsHeader::Group(t) => Some(t.text().to_string()),
                _ => None,
            },
            match_name: match &header {
                VsHeader::Match(name) => Some(name.clone()),
                _ => None,
            },
            persistence_timeout: None,
            persistence_granularity: None,
            virtualhost: None,
            alpha: false,
            omega: false,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            sorry_server: None,
            ha_suspend: false,
            dpvs: DpvsVsOptions::default(),
        };
        let vs_name = match &header {
            VsHeader::Addr(a, p) => format!("{} {p}", format_addr(*a)),
            VsHeader::Fwmark(m) => format!("FWM {m}"),
            VsHeader::Group(t) => format!("group {}", t.text()),
            VsHeader::Match(name) => format!("match {name}"),
        };
        let mut protocol = None;
        let mut lb_algo = None;
        let mut lb_kind = None;
        let mut weight = None;
        let mut inhibit = false;
        let mut laddr = None;
        let mut sorry: Option<(IpAddr, Option<u16>, Location)> = None;
        let mut sorry_inhibit = false;
        let mut ha_suspend_at = None;
        let mut inherit = Inherit::default();
        let mut raw_rs = Vec::with_capacity(n.children.len());
        for c in &n.children {
            if self.inherited(c, Level::VirtualServer, &mut inherit) {
                continue;
            }
            let cs = c.stmt;
            let kw = cs.keyword().text();
            match kw {
                "protocol" => {
                    if let Some(t) = self.arg(cs, 0) {
                        protocol = self.check(t, parse_protocol(t.text())).or(protocol);
                    }
                }
                "lb_algo" | "lvs_sched" => {
                    if let Some(t) = self.arg(cs, 0) {
                        lb_algo = self.check(t, parse_algo(t.text())).or(lb_algo);
                    }
                }
                "lb_kind" | "lvs_method" => {
                    if let Some(t) = self.arg(cs, 0) {
                        lb_kind = self.check(t, parse_kind(t.text())).or(lb_kind);
                    }
                }
                "weight" => {
                    let w = self.uint_arg(cs, 0, self.max_weight());
                    weight = w.and_then(|w| u32::try_from(w).ok()).or(weight);
                }
                "inhibit_on_failure" => inhibit = true,
                "laddr_group_name" => laddr = self.arg(cs, 0).cloned().or(laddr),
                "persistence_timeout" => match cs.args().first() {
                    None => vs.persistence_timeout = Some(DEFAULT_PERSISTENCE),
                    Some(t) => {
                        let v = self.check(t, values::uint(t.text(), 1, LVS_MAX_TIMEOUT));
                        if let Some(v) = v.and_then(|v| u32::try_from(v).ok()) {
                            vs.persistence_timeout = Some(v);
                        }
                    }
                },
                "persistence_granularity" => {
                    if let Some(t) = self.arg(cs, 0) {
                        if let Some(g) = self.check(t, granularity(t.text())) {
                            vs.persistence_granularity = Some(g);
                            vs.persistence_timeout =
                                vs.persistence_timeout.or(Some(DEFAULT_PERSISTENCE));
                        }
                    }
                }
                "virtualhost" => vs.virtualhost = self.arg(cs, 0).map(|t| t.text().to_string()),
                "omega" => vs.omega = true,
                "quorum" => {
                    let v = self.uint_arg(cs, 1, u64::from(u32::MAX));
                    vs.quorum = v.and_then(|v| u32::try_from(v).ok()).unwrap_or(vs.quorum);
                }
                "hysteresis" => {
                    let v = self.uint_arg(cs, 0, u64::from(u32::MAX));
                    vs.hysteresis = v
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(vs.hysteresis);
                }
                "quorum_up" => vs.quorum_up = self.script(cs).or(vs.quorum_up.take()),
                "quorum_down" => vs.quorum_down = self.script(cs).or(vs.quorum_down.take()),
                "sorry_server" => {
                    if let Some(t) = self.arg(cs, 0) {
                        let a = values::ip(t.text()).map_err(|_| {
                            format!("Invalid sorry server IP address {} - skipping", t.text())
                        });
                        if let Some(a) = self.check(t, a) {
                            let port = match cs.args().get(1) {
                                Some(p) => self.port_token(p, 0),
                                None => None,
                            };
                            sorry = Some((a, port, self.loc(cs.location())));
                        }
                    }
                }
                "sorry_server_inhibit" => sorry_inhibit = true,
                "ha_suspend" => ha_suspend_at = Some(self.loc(cs.location())),
                "real_server" => {
                    if let Some(rs) = self.real_server(c) {
                        raw_rs.push(rs);
                    }
                }
                _ => self.vs_dpvs_keyword(cs, &mut vs.dpvs),
            }
        }
        let has_addresses = match &header {
            VsHeader::Addr(..) => true,
            VsHeader::Group(t) => self.model.virtual_server_groups.iter().any(|g| {
                g.name == t.text()
                    && g.entries
                        .iter()
                        .any(|e| matches!(e, VsgEntry::Range { .. }))
            }),
            VsHeader::Fwmark(_) | VsHeader::Match(_) => false,
        };
        let fwmark_only = is_fwmark
            || matches!(&header, VsHeader::Group(t) if !has_addresses && self.model.virtual_server_groups.iter().any(|g| g.name == t.text()));
        if let Some(loc) = ha_suspend_at {
            if is_fwmark {
                self.diag(
                    Severity::Warning,
                    &loc,
                    format!(
                        "Virtual server {vs_name}: cannot use ha_suspend with fwmarks - clearing ha_suspend"
                    ),
                );
            } else {
                vs.ha_suspend = true;
            }
        }
        vs.protocol = match protocol {
            Some(p) if fwmark_only => {
                self.diag(
                    Severity::Warning,
                    s.location(),
                    format!(
                        "Warning: Virtual server {vs_name}: protocol specified for fwmark - protocol will be ignored"
                    ),
                );
                p
            }
            Some(p) => p,
            None if has_addresses => {
                self.diag(
                    Severity::Warning,
                    s.location(),
                    format!("Virtual server {vs_name}: no protocol set - defaulting to UDP"),
                );
                Protocol::Udp
            }
            None => Protocol::Udp,
        };
        if matches!(header, VsHeader::Addr(_, 0)) && vs.persistence_timeout.is_none() {
            self.diag(
                Severity::Warning,
                s.location(),
                format!(
                    "Virtual server {vs_name}: zero port only valid for persistent services - setting"
                ),
            );
            vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
        }
        vs.lb_algo = lb_algo.unwrap_or_else(|| {
            self.diag(
                Severity::Warning,
                s.location(),
                format!("Virtual server {vs_name}: no scheduler set, setting default 'wlc'"),
            );
            LbAlgo::Wlc
        });
        vs.lb_kind = match lb_kind {
            Some(k) => k,
            None if vs.match_name.is_some() => LbKind::Snat,
            None => {
                self.diag(
                    Severity::Warning,
                    s.location(),
                    format!(
                        "Virtual server {vs_name}: no forwarding method set, setting default NAT"
                    ),
                );
                LbKind::Nat
            }
        };
        if let Some(t) = &laddr {
            if !matches!(vs.lb_kind, LbKind::Fnat | LbKind::Snat) {
                self.diag_class(
                    DiagClass::Dpvsd,
                    Severity::Warning,
                    t.location,
                    "laddr_group_name is only used with FNAT or SNAT",
                );
            }
        }
        vs.laddr_group_name = laddr.as_ref().map(|t| t.text().to_string());
        inherit.delay_loop = inherit.delay_loop.or(Some(DEFAULT_DELAY_LOOP));
        vs.delay_loop = inherit.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
        vs.alpha = inherit.alpha.unwrap_or(false);
        let vs_defaults = VsDefaults {
            port,
            fwmark: vs.fwmark.is_some(),
            group: vs.group.is_some(),
            lb_kind: vs.lb_kind,
            weight: weight.unwrap_or(1),
            inhibit,
            virtualhost: vs.virtualhost.clone(),
            inherit,
        };
        // Exact capacities: a Vec grown by pushing holds at least 4
        // elements, which for 100,000 real servers of one checker each is
        // most of the model's memory.
        vs.real_servers.reserve_exact(raw_rs.len());
        for raw in raw_rs {
            let rs = self.finish_real_server(raw, &vs_defaults);
            if vs
                .real_servers
                .iter()
                .any(|o| o.addr == rs.addr && o.port == rs.port)
            {
                self.diag(
                    Severity::Warning,
                    &rs.location,
                    format!(
                        "VS {vs_name}: real server {} {} is duplicated - removing second rs",
                        format_addr(rs.addr),
                        rs.port
                    ),
                );
                continue;
            }
            vs.real_servers.push(rs);
        }
        if vs.real_servers.is_empty() {
            self.diag(
                Severity::Error,
                s.location(),
                format!("Virtual server {vs_name} has no real servers - ignoring"),
            );
            return None;
        }
        if let VsHeader::Group(t) = &header {
            if !matches!(vs.lb_kind, LbKind::Nat | LbKind::Fnat) {
                let sorry_port = sorry
                    .as_ref()
                    .and_then(|(_, p, l)| p.filter(|&p| p != 0).map(|p| (p, l.clone())));
                self.group_port_warnings(t.text(), &vs_name, &vs.real_servers, sorry_port);
            }
        }
        if let Some((addr, sport, loc)) = sorry {
            // The sorry server follows the virtual server's forwarding method
            // (`sorry_server_lvs_method` is not supported).
            let sport = match server_port(sport, &vs_defaults) {
                PortRule::Keep(p) => p,
                PortRule::Cleared(_) => {
                    self.diag(Severity::Warning, &loc, format!("WARNING - virtual server {vs_name}, sorry server has port specified - clearing"));
                    0
                }
                PortRule::Reset(_) => {
                    self.diag(Severity::Warning, &loc, format!("WARNING - virtual server {vs_name} and sorry server ports don't match - resetting"));
                    port
                }
            };
            vs.sorry_server = Some(SorryServer {
                addr,
                port: sport,
                inhibit: sorry_inhibit,
            });
        }
        let total: u64 = vs.real_servers.iter().map(|r| u64::from(r.weight)).sum();
        if u64::from(vs.quorum) > total {
            let t = u32::try_from(total).unwrap_or(u32::MAX);
            self.diag(
                Severity::Warning,
                s.location(),
                format!(
                    "Warning - quorum {} for {vs_name} exceeds total weight of real servers {t}, reducing quorum to {t}",
                    vs.quorum
                ),
            );
            vs.quorum = t;
        }
        if vs.hysteresis >= vs.quorum && vs.hysteresis > 0 {
            let h = vs.quorum.saturating_sub(1);
            self.diag(
                Severity::Warning,
                s.location(),
                format!(
                    "Virtual server {vs_name}: hysteresis {} >= quorum {}; setting hysteresis to {h}",
                    vs.hysteresis, vs.quorum
                ),
            );
            vs.hysteresis = h;
        }
        let group = match header {
            VsHeader::Group(t) => Some(t),
            _ => None,
        };
        Some((vs, laddr, group))
    }

    /// The DPVS virtual-server keywords (§10).
    fn vs_dpvs_keyword(&mut self, s: &Stmt<'_>, d: &mut DpvsVsOptions) {
        let text = |lw: &mut Self| lw.arg(s, 0).map(|t| t.text().to_string());
        match s.keyword().text() {
            "syn_proxy" => d.syn_proxy = true,
            "expire_quiescent_conn" => d.expire_quiescent_conn = true,
            "quic" => d.quic = true,
            "establish_timeout" => {
                // DPVS reads it with atoi and clamps it to 1..3600.
                if let Some(t) = self.arg(s, 0) {
                    let v = atoi(t.text()).clamp(1, 3600);
                    d.establish_timeout = u32::try_from(v).ok();
                }
            }
            "proxy_protocol" => {
                if let Some(t) = self.arg(s, 0) {
                    d.proxy_protocol = match t.text().to_ascii_lowercase().as_str() {
                        "v1" => ProxyProtocol::V1,
                        "v2" => ProxyProtocol::V2,
                        "v1-insecure" => ProxyProtocol::V1Insecure,
                        "v2-insecure" => ProxyProtocol::V2Insecure,
                        _ => ProxyProtocol::Disabled,
                    };
                }
            }
            "hash_target" => {
                if let Some(t) = self.arg(s, 0) {
                    d.hash_target = match t.text() {
                        "qid" => HashTarget::Qid,
                        "sip" => HashTarget::Sip,
                        other => {
                            self.diag(
                                Severity::Warning,
                                t.location,
                                format!("unknown hash_target '{other}' - using sip"),
                            );
                            HashTarget::Sip
                        }
                    };
                }
            }
            "bps" => {
                if let Some(t) = self.arg(s, 0) {
                    d.bps = u32::try_from(atoi(t.text()).max(0)).unwrap_or(u32::MAX);
                }
            }
            "limit_proportion" => {
                if let Some(t) = self.arg(s, 0) {
                    d.limit_proportion = u32::try_from(atoi(t.text()).max(0)).unwrap_or(u32::MAX);
                }
            }
            "vip_bind_dev" => d.vip_bind_dev = text(self),
            "daddr_group_name" => d.daddr_group_name = text(self),
            "waddr_group_name" => d.waddr_group_name = text(self),
            "src-range" | "dst-range" => {
                let Some(t) = self.arg(s, 0) else { return };
                if let Err(e) = values::match_range(t.text()) {
                    // DPVS drops the match silently; say so.
                    self.diag_class(
                        DiagClass::Dpvsd,
                        Severity::Error,
                        t.location,
                        format!("{e} - ignoring '{}', as DPVS would", s.keyword().text()),
                    );
                    return;
                }
                let v = Some(t.text().to_string());
                if s.keyword().text() == "src-range" {
                    d.src_range = v;
                } else {
                    d.dst_range = v;
                }
            }
            "iif" => d.iif = text(self),
            "oif" => d.oif = text(self),
            _ => {}
        }
    }

    /// `KEYWORD SCRIPT [USER [GROUP]]` read with keepalived's script tokeniser.
    fn script(&mut self, s: &Stmt<'_>) -> Option<Script> {
        let raw = s.keyword().rest().unwrap_or_default();
        let words = match values::script_words(raw) {
            Ok(w) => w,
            Err(msg) => {
                self.diag(Severity::Error, s.keyword().location, msg);
                return None;
            }
        };
        let Some(cmd) = words.first() else {
            self.arg(s, 0);
            return None;
        };
        let argv = match values::script_words(cmd) {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => {
                self.diag(
                    Severity::Error,
                    s.keyword().location,
                    format!("{}: empty script - ignoring", s.keyword().text()),
                );
                return None;
            }
            Err(msg) => {
                self.diag(Severity::Error, s.keyword().location, msg);
                return None;
            }
        };
        Some(Script {
            argv,
            user: words.get(1).cloned(),
            group: words.get(2).map(|g| g.trim_start_matches(':').to_string()),
        })
    }

    /// A connection keyword into `conn`; false when `s` is not one.
    fn connection(&mut self, s: &Stmt<'_>, conn: &mut RawConn) -> bool {
        match s.keyword().text() {
            "connect_ip" => {
                if let Some(t) = self.arg(s, 0) {
                    let r = values::ip(t.text())
                        .map_err(|_| format!("Invalid connect_ip address {}", t.text()));
                    conn.connect_ip = self.check(t, r).or(conn.connect_ip);
                }
            }
            "bindto" => {
                if let Some(t) = self.arg(s, 0) {
                    let r = values::ip(t.text())
                        .map_err(|_| format!("Invalid bindto address {}", t.text()));
                    conn.bindto = self.check(t, r).or(conn.bindto);
                }
            }
            "connect_port" => {
                if let Some(t) = self.arg(s, 0) {
                    conn.connect_port = self.port_token(t, 1).or(conn.connect_port);
                }
            }
            "bind_port" => {
                if let Some(t) = self.arg(s, 0) {
                    conn.bind_port = self.port_token(t, 1).or(conn.bind_port);
                }
            }
            "bind_if" => conn.bind_if = self.arg(s, 0).map(|t| t.text().to_string()),
            "connect_timeout" => {
                conn.connect_timeout = self.timer_arg(s, 1).or(conn.connect_timeout)
            }
            "fwmark" => {
                let v = self.uint_arg(s, 0, u64::from(u32::MAX));
                conn.fwmark = v.and_then(|v| u32::try_from(v).ok()).or(conn.fwmark);
            }
            _ => return false,
        }
        true
    }

    /// One checker block; `None` when keepalived drops it.
    fn checker(&mut self, n: &Node<'_>, ck: Ck) -> Option<RawChecker> {
        let loc = n.stmt.location();
        let mut chk = RawChecker {
            kind: CheckerKind::Tcp,
            conn: RawConn::default(),
            hosts: Vec::new(),
            inherit: Inherit::default(),
            log_all_failures: false,
            misc_timeout: None,
            location: self.loc(loc),
        };
        let mut http = HttpCheck {
            ignored: self.kept_of(n),
            urls: Vec::new(),
            http_protocol: HttpProtocol::Http10,
            virtualhost: None,
            enable_sni: false,
            fast_recovery: false,
        };
        let mut misc: Option<MiscCheck> = None;
        let mut misc_user: (Option<String>, Option<String>) = (None, None);
        let mut misc_dynamic = false;
        let mut helo = None;
        let mut dns_qtype = DnsType::Soa;
        let mut dns_name: Option<String> = None;
        let mut udp = UdpCheck {
            payload: Vec::new(),
            require_reply: None,
            min_reply_length: 0,
            max_reply_length: 255,
        };
        let mut file: Option<FileCheck> = None;
        let mut file_weight: (Option<i32>, bool) = (None, false);
        for c in &n.children {
            let s = c.stmt;
            if (ck.has_connection() && self.connection(s, &mut chk.conn))
                || self.inherited(c, Level::Checker(ck), &mut chk.inherit)
            {
                continue;
            }
            match (ck, s.keyword().text()) {
                (_, "log_all_failures") => {
                    chk.log_all_failures = self.opt_bool(s).unwrap_or(chk.log_all_failures)
                }
                (Ck::Http | Ck::Ssl, "nb_get_retry") => {
                    self.diag(
                        Severity::Warning,
                        s.keyword().location,
                        "nb_get_retry is deprecated - please use 'retry'",
                    );
                    let v = self.uint_arg(s, 0, u64::from(u32::MAX));
                    chk.inherit.retry = v.and_then(|v| u32::try_from(v).ok()).or(chk.inherit.retry);
                }
                (Ck::Http | Ck::Ssl, "virtualhost") => {
                    http.virtualhost = self
                        .arg(s, 0)
                        .map(|t| t.text().to_string())
                        .or(http.virtualhost.take());
                }
                (Ck::Http | Ck::Ssl, "http_protocol") => {
                    if let Some(t) = self.arg(s, 0) {
                        let p = match t.text() {
                            "1.0" => Ok(HttpProtocol::Http10),
                            "1.0C" | "1.0c" => Ok(HttpProtocol::Http10C),
                            "1.1" => Ok(HttpProtocol::Http11),
                            other => Err(format!("Invalid http_protocol version {other}")),
                        };
                        http.http_protocol = self.check(t, p).unwrap_or(http.http_protocol);
                    }
                }
                (Ck::Http | Ck::Ssl, "enable_sni") => {
                    http.enable_sni = self.opt_bool(s).unwrap_or(http.enable_sni)
                }
                (Ck::Http | Ck::Ssl, "fast_recovery") => {
                    http.fast_recovery = self.opt_bool(s).unwrap_or(http.fast_recovery)
                }
                (Ck::Http | Ck::Ssl, "url") => {
                    if let Some(u) = self.url(c) {
                        http.urls.push(u);
                    }
                }
                (Ck::Misc, "misc_path") => {
                    if let Some(script) = self.script(s) {
                        misc = Some(MiscCheck {
                            argv: script.argv,
                            timeout: Duration::ZERO,
                            dynamic: false,
                            absolute_weight: false,
                            user: None,
                            group: None,
                        });
                    }
                }
                (Ck::Misc, "misc_timeout") => {
                    if let Some(t) = self.arg(s, 0) {
                        let r = values::uint(t.text(), 0, u64::from(u32::MAX) / 1_000_000)
                            .map_err(|_| format!("Invalid misc_timeout value '{}'", t.text()));
                        chk.misc_timeout = self.check(t, r).or(chk.misc_timeout);
                    }
                }
                (Ck::Misc, "misc_dynamic") => misc_dynamic = true,
                (Ck::Misc, "user") => {
                    if let Some(t) = self.arg(s, 0) {
                        misc_user = (
                            Some(t.text().to_string()),
                            s.args().get(1).map(|g| g.text().to_string()),
                        );
                    }
                }
                (Ck::Smtp, "helo_name") => {
                    helo = self.arg(s, 0).map(|t| t.text().to_string()).or(helo)
                }
                (Ck::Smtp, "host") => {
                    let mut conn = RawConn::default();
                    for h in &c.children {
                        if !self.connection(h.stmt, &mut conn) {
                            self.inherited(h, Level::SmtpHost, &mut chk.inherit);
                        }
                    }
                    chk.hosts.push(conn);
                }
                (Ck::Dns, "type") => {
                    if let Some(t) = self.arg(s, 0) {
                        let q = match t.text().to_ascii_uppercase().as_str() {
                            "A" => Ok(DnsType::A),
                            "NS" => Ok(DnsType::Ns),
                            "CNAME" => Ok(DnsType::Cname),
                            "SOA" => Ok(DnsType::Soa),
                            "MX" => Ok(DnsType::Mx),
                            "TXT" => Ok(DnsType::Txt),
                            "AAAA" => Ok(DnsType::Aaaa),
                            other => Err(format!("Unknown DNS check type {other}")),
                        };
                        dns_qtype = self.check(t, q).unwrap_or(dns_qtype);
                    }
                }
                (Ck::Dns, "name") => {
                    if let Some(t) = self.arg(s, 0) {
                        if dns_name.is_some() {
                            self.diag(
                                Severity::Warning,
                                t.location,
                                "DNS_CHECK name already specified - ignoring",
                            );
                        } else if t.text() != "."
                            && t.text().trim_end_matches('.').split('.').any(str::is_empty)
                        {
                            self.diag(
                                Severity::Error,
                                t.location,
                                format!("DNS_CHECK name '{}' has empty label - ignoring", t.text()),
                            );
                        } else {
                            dns_name = Some(t.text().to_string());
                        }
                    }
                }
                (Ck::Udp, "payload") => {
                    let hex = join_args(s);
                    match values::hex_bytes(&hex, false) {
                        Some((data, _)) => udp.payload = data,
                        None => self.diag(
                            Severity::Error,
                            arg_location(s),
                            "Invalid hex string for UDP_CHECK payload",
                        ),
                    }
                }
                (Ck::Udp, "require_reply") => {
                    let hex = join_args(s);
                    if hex.is_empty() {
                        udp.require_reply = Some(UdpReply::default());
                    } else {
                        match values::hex_bytes(&hex, true) {
                            Some((data, wildcard)) => {
                                udp.require_reply = Some(UdpReply { data, wildcard })
                            }
                            None => {
                                udp.require_reply = Some(UdpReply::default());
                                self.diag(
                                    Severity::Error,
                                    arg_location(s),
                                    "Invalid hex string for UDP_CHECK reply",
                                );
                            }
                        }
                    }
                }
                (Ck::Udp, kw @ ("min_reply_length" | "max_reply_length")) => {
                    if let Some(t) = self.arg(s, 0) {
                        let which = if kw.starts_with("min") { "min" } else { "max" };
                        let r = values::uint(t.text(), 0, u64::from(u16::MAX)).map_err(|_| {
                            format!(
                                "UDP_CHECK {which} length {} not valid - must be between 0 & 65535",
                                t.text()
                            )
                        });
                        if let Some(v) = self.check(t, r).and_then(|v| u16::try_from(v).ok()) {
                            if which == "min" {
                                udp.min_reply_length = v;
                            } else {
                                udp.max_reply_length = v;
                            }
                        }
                    }
                }
                (Ck::File, "track_file") => {
                    if let Some(t) = self.arg(s, 0) {
                        if self.track_files.iter().any(|f| f == t.text()) {
                            file = Some(FileCheck {
                                track_file: t.text().to_string(),
                                weight: None,
                                reverse: false,
                            });
                        } else {
                            self.diag(
                                Severity::Error,
                                t.location,
                                format!("track_file {} not found", t.text()),
                            );
                        }
                    }
                }
                (Ck::File, "weight") => {
                    if let Some(t) = self.arg(s, 0) {
                        let r = t.text().parse::<i32>().ok().filter(|w| (-254..=254).contains(w)).ok_or_else(|| {
                            format!("weight for track file must be in [-254, 254] - ignoring ('{}')", t.text())
                        });
                        if let Some(w) = self.check(t, r) {
                            let reverse = match s.args().get(1).map(|r| r.text()) {
                                None | Some("noreverse") => false,
                                Some("reverse") => true,
                                Some(other) => {
                                    if let Some(r) = s.args().get(1) {
                                        self.diag(Severity::Warning, r.location, format!("unknown track file weight option {other} - ignoring"));
                                    }
                                    false
                                }
                            };
                            file_weight = (Some(w), reverse);
                        }
                    }
                }
                _ => {}
            }
        }
        chk.kind = match ck {
            Ck::Tcp => CheckerKind::Tcp,
            Ck::Ping => CheckerKind::Ping,
            Ck::Http | Ck::Ssl => {
                if http.urls.is_empty() {
                    self.diag(
                        Severity::Error,
                        loc,
                        "HTTP/SSL_GET checker has no urls specified - ignoring",
                    );
                    return None;
                }
                if ck == Ck::Http {
                    CheckerKind::Http(Box::new(http))
                } else {
                    CheckerKind::Ssl(Box::new(http))
                }
            }
            Ck::Misc => {
                let Some(mut m) = misc else {
                    self.diag(
                        Severity::Error,
                        loc,
                        "No script path has been specified for MISC_CHECKER - skipping",
                    );
                    return None;
                };
                m.dynamic = misc_dynamic;
                m.absolute_weight = misc_dynamic && self.mode.dialect == Dialect::Dpvs;
                (m.user, m.group) = misc_user;
                CheckerKind::Misc(Box::new(m))
            }
            Ck::Smtp => CheckerKind::Smtp(Box::new(SmtpCheck {
                helo_name: helo.unwrap_or_else(|| SMTP_DEFAULT_HELO.to_string()),
            })),
            Ck::Dns => CheckerKind::Dns(Box::new(DnsCheck {
                qtype: dns_qtype,
                name: dns_name.unwrap_or_else(|| ".".into()),
            })),
            Ck::Udp => {
                if udp.min_reply_length > udp.max_reply_length {
                    self.diag(
                        Severity::Warning,
                        loc,
                        format!(
                            "UDP_CHECK min_reply length {} > max_reply_length {} - will always fail",
                            udp.min_reply_length, udp.max_reply_length
                        ),
                    );
                }
                CheckerKind::Udp(Box::new(udp))
            }
            Ck::File => {
                let Some(mut f) = file else {
                    self.diag(
                        Severity::Error,
                        loc,
                        "FILE_CHECK has no track_file specified - ignoring",
                    );
                    return None;
                };
                (f.weight, f.reverse) = file_weight;
                CheckerKind::File(Box::new(f))
            }
        };
        Some(chk)
    }

    /// `url { path; digest; status_code; virtualhost; regex; regex_no_match }`.
    fn url(&mut self, n: &Node<'_>) -> Option<HttpUrl> {
        let mut url = HttpUrl {
            ignored: self.kept_of(n),
            path: String::new(),
            digests: Vec::new(),
            status_codes: Vec::new(),
            virtualhost: None,
            regex: None,
            regex_no_match: false,
        };
        let mut has_path = false;
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "path" => {
                    if let Some(t) = self.arg(s, 0) {
                        url.path = t.text().to_string();
                        has_path = true;
                    }
                }
                "digest" => {
                    if let Some(t) = self.arg(s, 0) {
                        if let Some(d) = self.check(t, values::md5_digest(t.text())) {
                            if url.digests.contains(&d) {
                                self.diag(
                                    Severity::Warning,
                                    t.location,
                                    format!("Digest '{}' is a duplicate", t.text()),
                                );
                            } else {
                                url.digests.push(d);
                            }
                        }
                    }
                }
                "status_code" => {
                    if s.args().is_empty() {
                        self.arg(s, 0);
                    }
                    for t in s.args() {
                        if let Some(r) = self.check(t, values::status_range(t.text())) {
                            url.status_codes.push(r);
                        }
                    }
                }
                "virtualhost" => url.virtualhost = self.arg(s, 0).map(|t| t.text().to_string()),
                "regex" => {
                    let raw = s.keyword().rest().unwrap_or_default();
                    match values::script_words(raw) {
                        Ok(w) => match w.into_iter().next() {
                            Some(re) => url.regex = Some(re),
                            None => {
                                self.arg(s, 0);
                            }
                        },
                        Err(msg) => self.diag(Severity::Error, s.keyword().location, msg),
                    }
                }
                "regex_no_match" => url.regex_no_match = true,
                _ => {}
            }
        }
        if !has_path {
            self.diag(
                Severity::Error,
                n.stmt.location(),
                "HTTP/SSL_GET checker url has no path - ignoring",
            );
            return None;
        }
        if url.status_codes.is_empty() {
            url.status_codes.push((200, 299));
        }
        Some(url)
    }

    /// Applies inheritance and the checker type's defaults (§8); an SMTP
    /// checker with `host` blocks becomes one checker per connection.
    fn finish_checker(
        &mut self,
        c: RawChecker,
        rs_addr: IpAddr,
        rs_port: u16,
        rs_inherit: Inherit,
        virtualhost: Option<&str>,
        out: &mut Vec<Checker>,
    ) {
        let e = c.inherit.under(rs_inherit);
        let delay_loop = e.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
        let (retry, delay_before_retry) = match &c.kind {
            CheckerKind::Misc(_) => (0, DEFAULT_DELAY_BEFORE_RETRY),
            CheckerKind::Dns(_) => (3, delay_loop),
            CheckerKind::Http(_) | CheckerKind::Ssl(_) => (DEFAULT_RETRY, Duration::from_secs(3)),
            _ => (DEFAULT_RETRY, DEFAULT_DELAY_BEFORE_RETRY),
        };
        let mut kind = c.kind;
        match &mut kind {
            CheckerKind::Http(h) | CheckerKind::Ssl(h) => {
                h.virtualhost = h
                    .virtualhost
                    .take()
                    .or_else(|| virtualhost.map(str::to_string));
                for u in &mut h.urls {
                    u.virtualhost = u.virtualhost.take().or_else(|| h.virtualhost.clone());
                }
            }
            CheckerKind::Misc(m) => {
                m.timeout = match c.misc_timeout {
                    Some(t) if t > 0 => Duration::from_secs(t),
                    _ => delay_loop,
                };
            }
            _ => {}
        }
        let own = (c.conn.is_set() || c.hosts.is_empty()).then_some(c.conn);
        for conn in own.into_iter().chain(c.hosts) {
            out.push(Checker {
                kind: kind.clone(),
                connect_ip: conn.connect_ip.unwrap_or(rs_addr),
                connect_port: conn.connect_port.unwrap_or(rs_port),
                bindto: conn.bindto,
                connect_timeout: conn
                    .connect_timeout
                    .or(e.connect_timeout)
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                retry: e.retry.unwrap_or(retry),
                delay_before_retry: e.delay_before_retry.unwrap_or(delay_before_retry),
                delay_loop,
                warmup: e.warmup.unwrap_or(delay_loop),
                alpha: e.alpha.unwrap_or(false),
                bind_port: conn.bind_port,
                bind_if: conn.bind_if,
                fwmark: conn.fwmark,
                log_all_failures: c.log_all_failures,
                location: c.location.clone(),
            });
        }
    }

    fn real_server(&mut self, n: &Node<'_>) -> Option<RawRealServer> {
        let s = n.stmt;
        let first = self.arg(s, 0)?;
        let addr = self.ip_token(first)?;
        let port = match s.args().get(1) {
            Some(t) => Some(self.port_token(t, 0)?),
            None => None,
        };
        let mut rs = RawRealServer {
            addr,
            port,
            port_token: s.args().get(1).map(|t| t.location),
            weight: None,
            uthreshold: None,
            lthreshold: None,
            inhibit_on_failure: None,
            virtualhost: None,
            notify_up: None,
            notify_down: None,
            inherit: Inherit::default(),
            checkers: RawCheckers::default(),
            bfd_checks: Vec::new(),
            ignored: self.kept_of(n),
            location: self.loc(s.location()),
        };
        for c in &n.children {
            if self.inherited(c, Level::RealServer, &mut rs.inherit) {
                continue;
            }
            let cs = c.stmt;
            match cs.keyword().text() {
                "weight" => {
                    let w = self.uint_arg(cs, 0, self.max_weight());
                    rs.weight = w.and_then(|w| u32::try_from(w).ok()).or(rs.weight);
                }
                "uthreshold" | "lthreshold" => {
                    let v = self.uint_arg(cs, 0, u64::from(u32::MAX));
                    let v = v.and_then(|v| u32::try_from(v).ok());
                    if cs.keyword().text() == "uthreshold" {
                        rs.uthreshold = v.or(rs.uthreshold);
                    } else {
                        rs.lthreshold = v.or(rs.lthreshold);
                    }
                }
                "inhibit_on_failure" => {
                    rs.inhibit_on_failure = self.opt_bool(cs).or(rs.inhibit_on_failure);
                }
                "virtualhost" => rs.virtualhost = self.arg(cs, 0).map(|t| t.text().to_string()),
                "notify_up" => {
                    rs.notify_up = self.script(cs).map(Box::new).or(rs.notify_up.take());
                }
                "notify_down" => {
                    rs.notify_down = self.script(cs).map(Box::new).or(rs.notify_down.take());
                }
                "BFD_CHECK" => {
                    if let Some(b) = self.bfd_check(c, &rs.bfd_checks) {
                        rs.bfd_checks.push(b);
                    }
                }
                kw => {
                    if let Some(ck) = Ck::from_keyword(kw) {
                        if let Some(chk) = self.checker(c, ck) {
                            rs.checkers.push(chk);
                        }
                    }
                }
            }
        }
        Some(rs)
    }

    /// keepalived 2.2.7 leaves the ports of a `virtual_server group` as
    /// written, but unless the method can translate ports (NAT, or FNAT as
    /// in DPVS's fork) it warns about each real server (and the sorry
    /// server) whose port the group's entries would ignore or not match
    /// (`validate_check_config`; ordinary warnings, so `-t` exits 5). Only
    /// groups defined before the virtual server are seen.
    fn group_port_warnings(
        &mut self,
        group: &str,
        vs_name: &str,
        real_servers: &[RealServer],
        sorry: Option<(u16, Location)>,
    ) {
        let Some(g) = self
            .model
            .virtual_server_groups
            .iter()
            .find(|g| g.name == group)
        else {
            return;
        };
        let mut found = Vec::new();
        if g.entries.iter().any(|e| matches!(e, VsgEntry::Fwmark(_))) {
            for rs in real_servers.iter().filter(|rs| rs.port != 0) {
                found.push((rs.location.clone(), format!("WARNING - fwmark virtual server {vs_name}, real server {} {} has port specified - port will be ignored", format_addr(rs.addr), rs.port)));
            }
            if let Some((_, loc)) = &sorry {
                found.push((loc.clone(), format!("WARNING - fwmark virtual server {vs_name}, sorry server has port specified - port will be ignored")));
            }
        }
        for e in &g.entries {
            let VsgEntry::Range { first, last, port } = e else {
                continue;
            };
            let entry = if first == last {
                format!("{}:{port}", format_addr(*first))
            } else {
                format!("{}-{}:{port}", format_addr(*first), format_addr(*last))
            };
            for rs in real_servers
                .iter()
                .filter(|rs| rs.port != 0 && rs.port != *port)
            {
                found.push((rs.location.clone(), format!("virtual server {vs_name}:[{entry}] and real server {} {} ports don't match", format_addr(rs.addr), rs.port)));
            }
            if let Some((p, loc)) = &sorry {
                if p != port {
                    found.push((loc.clone(), format!("WARNING - virtual server {vs_name}, sorry server has port specified - port will be ignored")));
                }
            }
        }
        for (loc, message) in found {
            self.diag(Severity::Warning, &loc, message);
        }
    }

    fn finish_real_server(&mut self, raw: RawRealServer, vs: &VsDefaults) -> RealServer {
        let port = match server_port(raw.port, vs) {
            PortRule::Keep(p) => p,
            PortRule::Cleared(p) => {
                let loc = raw
                    .port_token
                    .map_or_else(|| raw.location.clone(), |p| self.loc(p));
                self.diag(
                    Severity::Warning,
                    &loc,
                    format!("WARNING - fwmark virtual server, real server {} {p} has port specified - clearing", format_addr(raw.addr)),
                );
                0
            }
            PortRule::Reset(p) => {
                let loc = raw
                    .port_token
                    .map_or_else(|| raw.location.clone(), |p| self.loc(p));
                self.diag(
                    Severity::Warning,
                    &loc,
                    format!(
                        "WARNING - virtual server port {} and real server {} {p} ports don't match - resetting",
                        vs.port,
                        format_addr(raw.addr)
                    ),
                );
                vs.port
            }
        };
        let rs_inherit = raw.inherit.under(vs.inherit);
        let virtualhost = raw.virtualhost.clone().or_else(|| vs.virtualhost.clone());
        let mut checkers = Vec::with_capacity(raw.checkers.len());
        for c in raw.checkers {
            self.finish_checker(
                c,
                raw.addr,
                port,
                rs_inherit,
                virtualhost.as_deref(),
                &mut checkers,
            );
        }
        RealServer {
            addr: raw.addr,
            port,
            weight: raw.weight.unwrap_or(vs.weight),
            uthreshold: raw.uthreshold.unwrap_or(0),
            lthreshold: raw.lthreshold.unwrap_or(0),
            inhibit_on_failure: raw.inhibit_on_failure.unwrap_or(vs.inhibit),
            notify_up: raw.notify_up,
            notify_down: raw.notify_down,
            checkers,
            bfd_checks: raw.bfd_checks,
            ignored: raw.ignored,
            location: raw.location,
        }
    }
}

/// The `virtual_server` header forms.
#[derive(Debug, Clone)]
enum VsHeader<'a> {
    Addr(IpAddr, u16),
    Fwmark(u32),
    Group(Tok<'a>),
    Match(String),
}

/// A lowered virtual server with its `laddr_group_name` and `group` tokens.
type LoweredVs<'a> = (VirtualServer, Option<Tok<'a>>, Option<Tok<'a>>);

/// Virtual-server values a real server depends on.
#[derive(Debug)]
struct VsDefaults {
    port: u16,
    fwmark: bool,
    /// `virtual_server group NAME`.
    group: bool,
    lb_kind: LbKind,
    weight: u32,
    inhibit: bool,
    virtualhost: Option<String>,
    inherit: Inherit,
}

/// What keepalived's port rules do to a real or sorry server's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    /// The effective port (nothing to report).
    Keep(u16),
    /// A port written for a fwmark service, cleared to 0 (warning).
    Cleared(u16),
    /// A port that differs from the virtual server's, reset to it (warning).
    Reset(u16),
}

/// The port rules of keepalived 2.2.7's `validate_check_config`
/// (check_data.c), which are the same for real servers and the sorry server:
///
/// * virtual_server group: the port is left as written (keepalived only
///   warns about mismatches there); none means 0, which IPVS reads as "the
///   packet's port";
/// * NAT (`IP_VS_CONN_F_MASQ`) may translate the port: a written port is
///   kept; none means the virtual server's port (keepalived fills it in for
///   real servers; for a sorry server it leaves 0, which IPVS turns into the
///   virtual server's port, so the effect is the same), or 0 for fwmark;
/// * FNAT is treated as NAT, as DPVS's fork does
///   (`!= IP_VS_CONN_F_MASQ && != IP_VS_CONN_F_FULLNAT`);
/// * every other method (DR, TUN, and DPVS's SNAT) cannot change the port:
///   with fwmark a written port is cleared; otherwise none means the virtual
///   server's port and a different one is reset to it.
fn server_port(written: Option<u16>, vs: &VsDefaults) -> PortRule {
    let written = written.unwrap_or(0);
    if vs.group {
        return PortRule::Keep(written);
    }
    let translates = matches!(vs.lb_kind, LbKind::Nat | LbKind::Fnat);
    match (translates, vs.fwmark, written) {
        (_, true, 0) => PortRule::Keep(0),
        (true, true, p) => PortRule::Keep(p),
        (false, true, p) => PortRule::Cleared(p),
        (_, false, 0) => PortRule::Keep(vs.port),
        (true, false, p) => PortRule::Keep(p),
        (false, false, p) if p == vs.port => PortRule::Keep(p),
        (false, false, p) => PortRule::Reset(p),
    }
}

/// C `atoi`: optional blanks and sign, then the leading digits (0 when none).
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = digits
        .chars()
        .take_while(char::is_ascii_digit)
        .fold(0i64, |acc, c| {
            acc.saturating_mul(10)
                .saturating_add(i64::from(c.to_digit(10).unwrap_or(0)))
        });
    if neg {
        -v
    } else {
        v
    }
}

/// `persistence_granularity`: an IPv4 netmask or an IPv6 prefix length (1..128).
fn granularity(s: &str) -> Result<u8, String> {
    if s.contains('.') {
        let mask: std::net::Ipv4Addr = s
            .parse()
            .map_err(|_| format!("invalid persistence_granularity '{s}'"))?;
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(format!("invalid persistence_granularity '{s}'"));
        }
        return u8::try_from(bits.leading_ones()).map_err(|e| e.to_string());
    }
    let v = values::uint(s, 1, 128)?;
    u8::try_from(v).map_err(|e| e.to_string())
}

/// The arguments joined by single spaces (keepalived's `make_strvec_str`).
fn join_args(s: &Stmt<'_>) -> String {
    s.args()
        .iter()
        .map(|t| t.text())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the first argument stands, else the keyword.
fn arg_location(s: &Stmt<'_>) -> Pos {
    s.args()
        .first()
        .map_or(s.keyword().location, |t| t.location)
}

fn format_addr(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    }
}

/// `IP` or `IP-LAST` (last IPv4 octet, or last IPv6 16-bit group in hex).
fn expand_range(s: &str) -> Result<Vec<IpAddr>, String> {
    let Some((base, last)) = s.rsplit_once('-') else {
        return Ok(vec![values::ip(s)?]);
    };
    let bad = || format!("invalid address range '{s}'");
    match values::ip(base)? {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let end: u8 = last.parse().map_err(|_| bad())?;
            if end < o[3] {
                return Err(bad());
            }
            Ok((o[3]..=end)
                .map(|x| IpAddr::from([o[0], o[1], o[2], x]))
                .collect())
        }
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            let end = u16::from_str_radix(last, 16).map_err(|_| bad())?;
            if end < seg[7] {
                return Err(bad());
            }
            Ok((seg[7]..=end)
                .map(|x| {
                    seg[7] = x;
                    IpAddr::from(seg)
                })
                .collect())
        }
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s.to_ascii_uppercase().as_str() {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        "ICMP" => Ok(Protocol::Icmp),
        "ICMPV6" => Ok(Protocol::Icmpv6),
        _ => Err(format!("unknown protocol '{s}'")),
    }
}

fn parse_algo(s: &str) -> Result<LbAlgo, String> {
    Ok(match s {
        "rr" => LbAlgo::Rr,
        "wrr" => LbAlgo::Wrr,
        "lc" => LbAlgo::Lc,
        "wlc" => LbAlgo::Wlc,
        "lblc" => LbAlgo::Lblc,
        "sh" => LbAlgo::Sh,
        "mh" => LbAlgo::Mh,
        "dh" => LbAlgo::Dh,
        "fo" => LbAlgo::Fo,
        "ovf" => LbAlgo::Ovf,
        "lblcr" => LbAlgo::Lblcr,
        "sed" => LbAlgo::Sed,
        "nq" => LbAlgo::Nq,
        "twos" => LbAlgo::Twos,
        "conhash" => LbAlgo::Conhash,
        _ => return Err(format!("Invalid lvs_scheduler '{s}'")),
    })
}

fn parse_kind(s: &str) -> Result<LbKind, String> {
    Ok(match s {
        "NAT" => LbKind::Nat,
        "DR" => LbKind::Dr,
        "TUN" => LbKind::Tun,
        "FNAT" => LbKind::Fnat,
        "SNAT" => LbKind::Snat,
        _ => return Err(format!("unknown [{s}] routing method")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_on_the_last_octet_or_group() {
        let v = expand_range("10.0.0.1-3").expect("valid range");
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], "10.0.0.3".parse::<IpAddr>().expect("literal"));
        let v = expand_range("2001:db8::a-c").expect("valid range");
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], "2001:db8::c".parse::<IpAddr>().expect("literal"));
        assert!(expand_range("10.0.0.5-3").is_err());
        assert!(expand_range("10.0.0.5-300").is_err());
    }

    #[test]
    fn lb_kind_is_case_sensitive_protocol_is_not() {
        assert_eq!(parse_kind("FNAT"), Ok(LbKind::Fnat));
        assert!(parse_kind("fnat").is_err());
        assert_eq!(parse_protocol("tcp"), Ok(Protocol::Tcp));
        assert_eq!(parse_protocol("IcmpV6"), Ok(Protocol::Icmpv6));
        assert_eq!(parse_algo("conhash"), Ok(LbAlgo::Conhash));
        assert!(parse_algo("RR").is_err());
    }
}
