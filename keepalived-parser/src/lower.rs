//! Stage 3: AST → [`Model`], reporting every problem in one pass.
//!
//! Two steps:
//! 1. **Block engine** ([`normalize`]): the AST is flattened back into its
//!    keyword / `{` / `}` stream and re-read against keepalived's keyword tree
//!    exactly as `lib/parser.c` does (KEEPALIVED.md §1.5): an unknown
//!    keyword's `{` is ignored, its contents land at the current level and its
//!    `}` closes the *enclosing* block; value blocks are line lists; known but
//!    not-yet-lowered keywords are skipped whole with one warning.
//! 2. **Typed lowering** of the resulting tree: value checks, defaults and
//!    inheritance (checker ← real server ← virtual server ← checker default).
//!
//! Invariant: the [`Model`] only holds effective, validated values; anything
//! dropped or defaulted has a diagnostic at the offending token.

use std::net::IpAddr;
use std::time::Duration;

use crate::ast::Statement;
use crate::diag::{Diagnostic, Location, Severity};
use crate::model::{
    Checker, CheckerKind, LbAlgo, LbKind, LocalAddress, LocalAddressGroup, Model, Protocol,
    RealServer, VirtualServer,
};
use crate::preprocess::Token;
use crate::values;

const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RETRY: u32 = 1;
const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
/// Real-server weight limit of keepalived ≥ 2.2 (`INT32_MAX`).
const MAX_WEIGHT: u64 = i32::MAX as u64;

/// A level of keepalived's keyword tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    GlobalDefs,
    VirtualServer,
    RealServer,
    TcpCheck,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Top => "top level",
            Level::GlobalDefs => "global_defs",
            Level::VirtualServer => "virtual_server",
            Level::RealServer => "real_server",
            Level::TcpCheck => "TCP_CHECK",
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
    /// Known to keepalived but not lowered yet: skipped whole, with a warning.
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
    "vrrp_script",
    "vrrp_sync_group",
    "vrrp_instance",
    "garp_group",
    "linkbeat_interfaces",
    "interface_up_down_delays",
    "track_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "vrrp_track_process",
    "track_file",
    "vrrp_track_file",
    "bfd_instance",
    "virtual_server_group",
    "SSL",
    "deny_address_group",
    "allow_address_group",
    "tunnel_group",
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
    "script_user",
    "enable_script_security",
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
    "vrrp_notify_priority_changes",
    "use_symlink_paths",
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
    "vrrp_garp_extra_if",
    "vrrp_down_timer_adverts",
    "vrrp_lower_prio_no_advert",
    "vrrp_higher_prio_send_advert",
    "vrrp_check_unicast_src",
    "vrrp_skip_check_adv_addr",
    "vrrp_strict",
    "v3_checksum_as_v2",
    "vrrp_owner_ignore_adverts",
    "vrrp_startup_delay",
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
    "state_dump_file",
    "stats_dump_file",
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
    "persistence_timeout",
    "persistence_granularity",
    "persistence_engine",
    "ip_family",
    "smtp_alert",
    "virtualhost",
    "snmp_name",
    "omega",
    "quorum",
    "hysteresis",
    "quorum_up",
    "quorum_down",
    "sorry_server",
    "sorry_server_inhibit",
    "sorry_server_lvs_method",
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

const RS_UNSUPPORTED: &[&str] = &[
    "lvs_method",
    "smtp_alert",
    "notify_up",
    "notify_down",
    "uthreshold",
    "lthreshold",
    "virtualhost",
    "snmp_name",
    "HTTP_GET",
    "SSL_GET",
    "SMTP_CHECK",
    "DNS_CHECK",
    "MISC_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
];

const CHECK_UNSUPPORTED: &[&str] = &["bind_port", "bind_if", "fwmark", "log_all_failures"];

/// Keywords shared by virtual servers, real servers and checkers (inherited values).
const INHERITED: &[&str] = &[
    "connect_timeout",
    "retry",
    "delay_before_retry",
    "delay_loop",
    "warmup",
    "alpha",
];

/// Leaf keywords, sections, value blocks and not-yet-supported keywords of a level.
type Schema = (
    &'static [&'static str],
    &'static [(&'static str, Level)],
    &'static [&'static str],
    &'static [&'static str],
);

fn lookup(level: Level, kw: &str) -> Option<Kind> {
    let (leaves, sections, values, unsupported): Schema = match level {
        Level::Top => (
            &[],
            &[
                ("global_defs", Level::GlobalDefs),
                ("virtual_server", Level::VirtualServer),
            ],
            &["local_address_group"],
            TOP_UNSUPPORTED,
        ),
        Level::GlobalDefs => (
            &[
                "router_id",
                "notification_email_from",
                "smtp_server",
                "smtp_connect_timeout",
            ],
            &[],
            &["notification_email"],
            GLOBAL_UNSUPPORTED,
        ),
        Level::VirtualServer => (
            &[
                "lb_algo",
                "lvs_sched",
                "lb_kind",
                "lvs_method",
                "protocol",
                "weight",
                "inhibit_on_failure",
                "laddr_group_name",
            ],
            &[("real_server", Level::RealServer)],
            &[],
            VS_UNSUPPORTED,
        ),
        Level::RealServer => (
            &["weight", "inhibit_on_failure"],
            &[("TCP_CHECK", Level::TcpCheck)],
            &[],
            RS_UNSUPPORTED,
        ),
        Level::TcpCheck => (
            &["connect_ip", "connect_port", "bindto"],
            &[],
            &[],
            CHECK_UNSUPPORTED,
        ),
    };
    if leaves.contains(&kw)
        || (level != Level::Top && level != Level::GlobalDefs && INHERITED.contains(&kw))
    {
        Some(Kind::Leaf)
    } else if let Some((_, l)) = sections.iter().find(|(k, _)| *k == kw) {
        Some(Kind::Section(*l))
    } else if values.contains(&kw) {
        Some(Kind::Values)
    } else if unsupported.contains(&kw) {
        Some(Kind::Unsupported)
    } else {
        None
    }
}

/// A statement placed where keepalived's block engine puts it.
#[derive(Debug)]
struct Node<'a> {
    stmt: &'a Statement,
    /// Members of a section, or the lines of a value block.
    children: Vec<Node<'a>>,
}

#[derive(Debug, Clone, Copy)]
enum Event<'a> {
    Line(&'a Statement),
    Open(&'a Location),
    Close(&'a Location),
}

fn flatten<'a>(stmts: &'a [Statement], out: &mut Vec<Event<'a>>) {
    for s in stmts {
        if !s.is_bare_block() {
            out.push(Event::Line(s));
        }
        if let (Some(open), Some(block)) = (&s.open_brace, &s.block) {
            out.push(Event::Open(open));
            flatten(block, out);
            if let Some(close) = &s.close_brace {
                out.push(Event::Close(close));
            }
        }
    }
}

/// Lowers a parsed configuration. Diagnostics are appended to `diags`.
pub(crate) fn lower(ast: &[Statement], diags: &mut Vec<Diagnostic>) -> Model {
    let mut events = Vec::new();
    flatten(ast, &mut events);
    let mut lw = Lowerer {
        diags,
        model: Model::default(),
    };
    let mut it = events.into_iter().peekable();
    let top = lw.level(&mut it, Level::Top, None);
    lw.top(&top);
    lw.model
}

type Events<'a> = std::iter::Peekable<std::vec::IntoIter<Event<'a>>>;

#[derive(Debug)]
struct Lowerer<'d> {
    diags: &'d mut Vec<Diagnostic>,
    model: Model,
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
    port_token: Option<Location>,
    weight: Option<u32>,
    inhibit_on_failure: Option<bool>,
    inherit: Inherit,
    checkers: Vec<RawChecker>,
    location: Location,
}

#[derive(Debug)]
struct RawChecker {
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    inherit: Inherit,
    location: Location,
}

impl Lowerer<'_> {
    fn diag(&mut self, severity: Severity, location: &Location, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            severity,
            location: location.clone(),
            message: message.into(),
            source_line: None,
        });
    }

    // ---------------------------------------------------------------- block engine

    /// Reads the members of one level until its `}` (or the end of input).
    fn level<'a>(
        &mut self,
        ev: &mut Events<'a>,
        level: Level,
        parent: Option<&'a Statement>,
    ) -> Vec<Node<'a>> {
        let mut nodes = Vec::new();
        while let Some(e) = ev.next() {
            match e {
                Event::Close(loc) => {
                    if parent.is_some() {
                        return nodes;
                    }
                    self.diag(Severity::Warning, loc, "unknown keyword '}'");
                }
                Event::Open(loc) => {
                    self.diag(Severity::Warning, loc, "Unexpected '{' - ignoring");
                }
                Event::Line(s) => match lookup(level, &s.keyword.text) {
                    None => self.unknown(ev, s, level, parent),
                    Some(Kind::Leaf) => nodes.push(Node {
                        stmt: s,
                        children: Vec::new(),
                    }),
                    Some(Kind::Section(sub)) => {
                        self.expect_open(ev, s);
                        let children = self.level(ev, sub, Some(s));
                        nodes.push(Node { stmt: s, children });
                    }
                    Some(Kind::Values) => {
                        self.expect_open(ev, s);
                        let children = self.value_lines(ev);
                        nodes.push(Node { stmt: s, children });
                    }
                    Some(Kind::Unsupported) => {
                        self.diag(
                            Severity::Warning,
                            &s.keyword.location,
                            format!(
                                "keyword '{}' is not yet supported by dpvsd, ignored",
                                s.keyword.text
                            ),
                        );
                        skip_block(ev);
                    }
                },
            }
        }
        nodes
    }

    fn unknown<'a>(
        &mut self,
        ev: &mut Events<'a>,
        s: &'a Statement,
        level: Level,
        parent: Option<&'a Statement>,
    ) {
        let kw = &s.keyword.text;
        self.diag(
            Severity::Warning,
            &s.keyword.location,
            format!("unknown keyword '{kw}'"),
        );
        if let Some(Event::Open(open)) = ev.peek().copied() {
            ev.next();
            let effect = match parent {
                Some(p) => format!(
                    "its '}}' closes the enclosing '{}' block (line {}) early, so what follows it belongs to the level above",
                    p.keyword.text, p.location.line
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

    fn expect_open(&mut self, ev: &mut Events<'_>, s: &Statement) {
        if let Some(Event::Open(_)) = ev.peek() {
            ev.next();
        } else {
            self.diag(
                Severity::Warning,
                &s.keyword.location,
                format!(
                    "Missing '{{' at beginning of configuration block '{}'",
                    s.keyword.text
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
                Event::Line(s) => lines.push(Node {
                    stmt: s,
                    children: Vec::new(),
                }),
            }
        }
        lines
    }

    // ---------------------------------------------------------------- arguments

    /// Argument `n` (0 = first after the keyword); a missing one is fatal, as in keepalived.
    fn arg<'a>(&mut self, s: &'a Statement, n: usize) -> Option<&'a Token> {
        let a = s.args.get(n);
        if a.is_none() {
            self.diag(
                Severity::Fatal,
                &s.keyword.location,
                format!(
                    "Configuration line starting `{}` is missing a parameter",
                    s.keyword.text
                ),
            );
        }
        a
    }

    fn check<T>(&mut self, t: &Token, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(msg) => {
                self.diag(Severity::Error, &t.location, format!("{msg} - ignoring"));
                None
            }
        }
    }

    fn timer_arg(&mut self, s: &Statement, min_us: u64) -> Option<Duration> {
        let t = self.arg(s, 0)?;
        let timer = self.check(t, values::timer(&t.text, min_us))?;
        if timer.rounded {
            self.diag(
                Severity::Warning,
                &t.location,
                format!(
                    "number '{}' has more than 6 decimal places - rounding",
                    t.text
                ),
            );
        }
        Some(timer.value)
    }

    fn uint_arg(&mut self, s: &Statement, min: u64, max: u64) -> Option<u64> {
        let t = self.arg(s, 0)?;
        self.check(t, values::uint(&t.text, min, max))
    }

    fn ip_token(&mut self, t: &Token) -> Option<IpAddr> {
        self.check(t, values::ip(&t.text))
    }

    fn port_token(&mut self, t: &Token, min: u64) -> Option<u16> {
        let v = self.check(t, values::uint(&t.text, min, 65535))?;
        u16::try_from(v).ok()
    }

    /// `KEYWORD [BOOL]`: no argument means true.
    fn opt_bool(&mut self, s: &Statement) -> Option<bool> {
        match s.args.first() {
            None => Some(true),
            Some(t) => self.check(t, values::boolean(&t.text)),
        }
    }

    /// The inherited keywords, at `level`; returns false when `n` is not one.
    fn inherited(&mut self, n: &Node<'_>, level: Level, inh: &mut Inherit) -> bool {
        let s = n.stmt;
        match s.keyword.text.as_str() {
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

    fn top(&mut self, nodes: &[Node<'_>]) {
        let mut laddr_refs: Vec<(usize, Token)> = Vec::new();
        for n in nodes {
            match n.stmt.keyword.text.as_str() {
                "global_defs" => self.global_defs(n),
                "local_address_group" => self.local_address_group(n),
                "virtual_server" => {
                    if let Some((vs, laddr)) = self.virtual_server(n) {
                        if let Some(t) = laddr {
                            laddr_refs.push((self.model.virtual_servers.len(), t));
                        }
                        self.model.virtual_servers.push(vs);
                    }
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
                .any(|g| g.name == t.text)
            {
                self.diag(
                    Severity::Error,
                    &t.location,
                    format!("laddr_group_name '{}' names no local_address_group", t.text),
                );
                if let Some(vs) = self.model.virtual_servers.get_mut(idx) {
                    vs.laddr_group_name = None;
                }
            }
        }
    }

    fn global_defs(&mut self, n: &Node<'_>) {
        for c in &n.children {
            let s = c.stmt;
            match s.keyword.text.as_str() {
                "router_id" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.router_id = Some(t.text.clone());
                    }
                }
                "notification_email" => {
                    for line in &c.children {
                        self.model
                            .global_defs
                            .notification_email
                            .push(line.stmt.keyword.text.clone());
                    }
                }
                "notification_email_from" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.notification_email_from = Some(t.text.clone());
                    }
                }
                "smtp_server" => {
                    if let Some(t) = self.arg(s, 0) {
                        self.model.global_defs.smtp_server = Some(t.text.clone());
                        let port = match s.args.get(1) {
                            Some(p) => self.port_token(p, 1),
                            None => Some(25),
                        };
                        self.model.global_defs.smtp_port = port;
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
            .any(|g| g.name == name.text)
        {
            self.diag(
                Severity::Error,
                &name.location,
                format!(
                    "local_address_group '{}' is defined twice - ignoring this one",
                    name.text
                ),
            );
            return;
        }
        let mut addresses = Vec::new();
        for line in &n.children {
            let s = line.stmt;
            let Some(ifname) = s.args.first() else {
                self.diag(
                    Severity::Error,
                    &s.keyword.location,
                    format!(
                        "local address '{}' has no interface name - ignoring",
                        s.keyword.text
                    ),
                );
                continue;
            };
            let Some(addrs) = self.check(&s.keyword, expand_range(&s.keyword.text)) else {
                continue;
            };
            addresses.extend(addrs.into_iter().map(|addr| LocalAddress {
                addr,
                ifname: ifname.text.clone(),
            }));
        }
        if addresses.is_empty() {
            self.diag(
                Severity::Warning,
                &name.location,
                format!("local_address_group '{}' has no addresses", name.text),
            );
        }
        self.model.local_address_groups.push(LocalAddressGroup {
            name: name.text.clone(),
            addresses,
            location: n.stmt.location.clone(),
        });
    }

    /// Returns the virtual server and its `laddr_group_name` token (checked later).
    fn virtual_server(&mut self, n: &Node<'_>) -> Option<(VirtualServer, Option<Token>)> {
        let s = n.stmt;
        let first = self.arg(s, 0)?;
        if matches!(first.text.as_str(), "group" | "fwmark" | "match") {
            self.diag(
                Severity::Warning,
                &first.location,
                format!(
                    "'virtual_server {} ...' is not yet supported by dpvsd, ignored",
                    first.text
                ),
            );
            return None;
        }
        // A `-range` or `/prefix` suffix is stripped, as keepalived does.
        let addr_text = first.text.split(['/', '-']).next().unwrap_or_default();
        let addr = match values::ip(addr_text) {
            Ok(a) => a,
            Err(msg) => {
                self.diag(
                    Severity::Error,
                    &first.location,
                    format!("{msg} - virtual server ignored"),
                );
                return None;
            }
        };
        let port = match s.args.get(1) {
            Some(t) => match self.port_token(t, 0) {
                Some(p) => p,
                None => {
                    self.diag(Severity::Error, &t.location, "virtual server ignored");
                    return None;
                }
            },
            None => {
                self.diag(
                    Severity::Warning,
                    &first.location,
                    "virtual server has no port; keepalived would force persistence, which dpvsd does not support yet",
                );
                0
            }
        };
        let mut protocol = None;
        let mut lb_algo = None;
        let mut lb_kind = None;
        let mut weight = None;
        let mut inhibit = false;
        let mut laddr = None;
        let mut inherit = Inherit::default();
        let mut raw_rs = Vec::new();
        for c in &n.children {
            if self.inherited(c, Level::VirtualServer, &mut inherit) {
                continue;
            }
            let cs = c.stmt;
            match cs.keyword.text.as_str() {
                "protocol" => {
                    if let Some(t) = self.arg(cs, 0) {
                        protocol = self.check(t, parse_protocol(&t.text)).or(protocol);
                    }
                }
                "lb_algo" | "lvs_sched" => {
                    if let Some(t) = self.arg(cs, 0) {
                        lb_algo = self.check(t, parse_algo(&t.text)).or(lb_algo);
                    }
                }
                "lb_kind" | "lvs_method" => {
                    if let Some(t) = self.arg(cs, 0) {
                        lb_kind = self.check(t, parse_kind(&t.text)).or(lb_kind);
                    }
                }
                "weight" => {
                    let w = self.uint_arg(cs, 0, MAX_WEIGHT);
                    weight = w.and_then(|w| u32::try_from(w).ok()).or(weight);
                }
                "inhibit_on_failure" => inhibit = true,
                "laddr_group_name" => laddr = self.arg(cs, 0).cloned().or(laddr),
                "real_server" => {
                    if let Some(rs) = self.real_server(c) {
                        raw_rs.push(rs);
                    }
                }
                _ => {}
            }
        }
        let vs_name = format!("{} {port}", format_addr(addr));
        let protocol = protocol.unwrap_or_else(|| {
            self.diag(
                Severity::Warning,
                &s.location,
                format!("virtual server {vs_name}: no protocol set - defaulting to UDP"),
            );
            Protocol::Udp
        });
        let lb_algo = lb_algo.unwrap_or_else(|| {
            self.diag(
                Severity::Warning,
                &s.location,
                format!("virtual server {vs_name}: no scheduler set - defaulting to wlc"),
            );
            LbAlgo::Wlc
        });
        let lb_kind = lb_kind.unwrap_or_else(|| {
            self.diag(
                Severity::Warning,
                &s.location,
                format!("virtual server {vs_name}: no forwarding method set - defaulting to NAT"),
            );
            LbKind::Nat
        });
        if let Some(t) = &laddr {
            if !matches!(lb_kind, LbKind::Fnat | LbKind::Snat) {
                self.diag(
                    Severity::Warning,
                    &t.location,
                    "laddr_group_name is only used with FNAT or SNAT",
                );
            }
        }
        inherit.delay_loop = inherit.delay_loop.or(Some(DEFAULT_DELAY_LOOP));
        let vs_defaults = VsDefaults {
            port,
            lb_kind,
            weight: weight.unwrap_or(1),
            inhibit,
            inherit,
        };
        let mut real_servers: Vec<RealServer> = Vec::new();
        for raw in raw_rs {
            let rs = self.finish_real_server(raw, &vs_defaults);
            if real_servers
                .iter()
                .any(|o| o.addr == rs.addr && o.port == rs.port)
            {
                self.diag(
                    Severity::Warning,
                    &rs.location,
                    format!(
                        "virtual server {vs_name}: duplicate real server {} {} - removing",
                        format_addr(rs.addr),
                        rs.port
                    ),
                );
                continue;
            }
            real_servers.push(rs);
        }
        if real_servers.is_empty() {
            self.diag(
                Severity::Error,
                &s.location,
                format!("virtual server {vs_name} has no real servers - ignoring"),
            );
            return None;
        }
        Some((
            VirtualServer {
                addr,
                port,
                protocol,
                lb_algo,
                lb_kind,
                delay_loop: inherit.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP),
                laddr_group_name: laddr.as_ref().map(|t| t.text.clone()),
                real_servers,
                location: s.location.clone(),
            },
            laddr,
        ))
    }

    fn real_server(&mut self, n: &Node<'_>) -> Option<RawRealServer> {
        let s = n.stmt;
        let first = self.arg(s, 0)?;
        let addr = self.ip_token(first)?;
        let port = match s.args.get(1) {
            Some(t) => Some(self.port_token(t, 0)?),
            None => None,
        };
        let mut rs = RawRealServer {
            addr,
            port,
            port_token: s.args.get(1).map(|t| t.location.clone()),
            weight: None,
            inhibit_on_failure: None,
            inherit: Inherit::default(),
            checkers: Vec::new(),
            location: s.location.clone(),
        };
        for c in &n.children {
            if self.inherited(c, Level::RealServer, &mut rs.inherit) {
                continue;
            }
            let cs = c.stmt;
            match cs.keyword.text.as_str() {
                "weight" => {
                    let w = self.uint_arg(cs, 0, MAX_WEIGHT);
                    rs.weight = w.and_then(|w| u32::try_from(w).ok()).or(rs.weight);
                }
                "inhibit_on_failure" => {
                    rs.inhibit_on_failure = self.opt_bool(cs).or(rs.inhibit_on_failure);
                }
                "TCP_CHECK" => rs.checkers.push(self.tcp_check(c)),
                _ => {}
            }
        }
        Some(rs)
    }

    fn tcp_check(&mut self, n: &Node<'_>) -> RawChecker {
        let mut chk = RawChecker {
            connect_ip: None,
            connect_port: None,
            bindto: None,
            inherit: Inherit::default(),
            location: n.stmt.location.clone(),
        };
        for c in &n.children {
            if self.inherited(c, Level::TcpCheck, &mut chk.inherit) {
                continue;
            }
            let cs = c.stmt;
            match cs.keyword.text.as_str() {
                "connect_ip" => {
                    if let Some(t) = self.arg(cs, 0) {
                        chk.connect_ip = self.ip_token(t).or(chk.connect_ip);
                    }
                }
                "bindto" => {
                    if let Some(t) = self.arg(cs, 0) {
                        chk.bindto = self.ip_token(t).or(chk.bindto);
                    }
                }
                "connect_port" => {
                    if let Some(t) = self.arg(cs, 0) {
                        chk.connect_port = self.port_token(t, 1).or(chk.connect_port);
                    }
                }
                _ => {}
            }
        }
        chk
    }

    fn finish_real_server(&mut self, raw: RawRealServer, vs: &VsDefaults) -> RealServer {
        let port = match raw.port {
            None => vs.port,
            Some(p) if p != vs.port && matches!(vs.lb_kind, LbKind::Dr | LbKind::Tun) => {
                let loc = raw.port_token.as_ref().unwrap_or(&raw.location);
                self.diag(
                    Severity::Warning,
                    loc,
                    format!(
                        "real server port {p} differs from the virtual server port {} with DR/TUN - using {}",
                        vs.port, vs.port
                    ),
                );
                vs.port
            }
            Some(p) => p,
        };
        let rs_inherit = raw.inherit.under(vs.inherit);
        let checkers = raw
            .checkers
            .into_iter()
            .map(|c| {
                let e = c.inherit.under(rs_inherit);
                let delay_loop = e.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
                Checker {
                    kind: CheckerKind::Tcp,
                    connect_ip: c.connect_ip.unwrap_or(raw.addr),
                    connect_port: c.connect_port.unwrap_or(port),
                    bindto: c.bindto,
                    connect_timeout: e.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                    retry: e.retry.unwrap_or(DEFAULT_RETRY),
                    delay_before_retry: e.delay_before_retry.unwrap_or(DEFAULT_DELAY_BEFORE_RETRY),
                    delay_loop,
                    warmup: e.warmup.unwrap_or(delay_loop),
                    alpha: e.alpha.unwrap_or(false),
                    location: c.location,
                }
            })
            .collect();
        RealServer {
            addr: raw.addr,
            port,
            weight: raw.weight.unwrap_or(vs.weight),
            inhibit_on_failure: raw.inhibit_on_failure.unwrap_or(vs.inhibit),
            checkers,
            location: raw.location,
        }
    }
}

/// Virtual-server values a real server depends on.
#[derive(Debug)]
struct VsDefaults {
    port: u16,
    lb_kind: LbKind,
    weight: u32,
    inhibit: bool,
    inherit: Inherit,
}

/// Skips the block that follows a skipped keyword, counting braces.
fn skip_block(ev: &mut Events<'_>) {
    if !matches!(ev.peek(), Some(Event::Open(_))) {
        return;
    }
    let mut depth = 0usize;
    for e in ev.by_ref() {
        match e {
            Event::Open(_) => depth += 1,
            Event::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            Event::Line(_) => {}
        }
    }
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
