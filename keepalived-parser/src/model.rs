//! The typed, validated configuration: what keepalived would run.
//!
//! Values here are *effective*: keepalived's inheritance (checker ← real
//! server ← virtual server ← checker-type default) and defaults are already
//! applied by lowering, so consumers never re-implement them.

use std::net::IpAddr;
use std::time::Duration;

use crate::diag::Location;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    pub global_defs: GlobalDefs,
    /// DPVS `local_address_group NAME { IP[-LAST] IFNAME ... }`, in file order.
    pub local_address_groups: Vec<LocalAddressGroup>,
    /// DPVS `deny_address_group NAME { ... }` (client blacklists), in file order.
    pub deny_address_groups: Vec<AccessGroup>,
    /// DPVS `allow_address_group NAME { ... }` (client whitelists), in file order.
    pub allow_address_groups: Vec<AccessGroup>,
    /// DPVS `tunnel_group NAME { tunnel_entry IFNAME { ... } ... }`, in file order.
    pub tunnel_groups: Vec<TunnelGroup>,
    /// Virtual servers that survived validation, in file order.
    pub virtual_servers: Vec<VirtualServer>,
    /// Non-empty `virtual_server_group`s, in file order.
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    /// Valid `vrrp_script`s, in file order.
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `track_file` blocks, in file order.
    pub track_files: Vec<TrackFile>,
    /// Valid `vrrp_instance`s, in file order.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `vrrp_sync_group`s with members, in file order.
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    /// `static_ipaddress { }` lines.
    pub static_ipaddresses: Vec<IpAddress>,
    /// `static_routes { }` lines.
    pub static_routes: Vec<Route>,
    /// `static_rules { }` lines.
    pub static_rules: Vec<Rule>,
    /// dpvsd's `ospf_announcer { }` (issue 8).
    pub ospf_announcer: Option<OspfAnnouncer>,
    /// `vrrp_track_process NAME { }` (kept; dpvsd does not run them), in file order.
    pub vrrp_track_processes: Vec<VrrpTrackProcess>,
    /// `bfd_instance NAME { }` (kept; dpvsd does not run them), in file order.
    pub bfd_instances: Vec<BfdInstance>,
    /// `garp_group { }` blocks with a delay set (kept; dpvsd ignores them), in file order.
    pub garp_groups: Vec<GarpGroup>,
    /// The top-level `SSL { }` context for SSL_GET (the last one wins, as in keepalived).
    pub ssl: Option<SslContext>,
    /// Top-level keywords dpvsd does not implement, kept as written.
    pub ignored: Vec<Ignored>,
}

/// A keyword dpvsd accepts but does not implement ("not supported by
/// dpvsd, ignored"), kept as written so `dpvsd -d` loses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub keyword: String,
    /// The words after the keyword.
    pub args: Vec<String>,
    /// The lines of its `{ }` block (nested blocks as children), or `None`
    /// when it has no block.
    pub block: Option<Vec<Ignored>>,
    pub location: Location,
}

/// `param_match` of a `vrrp_track_process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamMatch {
    /// `param_match` with no value, or parameters given with `process`.
    Exact,
    Initial,
    Partial,
}

/// `vrrp_track_process NAME { ... }` (KEEPALIVED.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpTrackProcess {
    pub name: String,
    /// `process PATH [PARAM ...]`: the process name or path.
    pub process: String,
    pub params: Vec<String>,
    /// `None`: the command name alone is matched.
    pub param_match: Option<ParamMatch>,
    /// `weight` (default 0) (-254..254) and `reverse`.
    pub weight: i32,
    pub reverse: bool,
    /// `quorum` (default 1) (0 only with `quorum_max 0`).
    pub quorum: u32,
    /// `quorum_max` [unlimited = `u32::MAX`].
    pub quorum_max: u32,
    /// `fork_delay` / `delay` (default 0) (up to 3600 s).
    pub fork_delay: Duration,
    /// `terminate_delay` / `delay` (default 0).
    pub terminate_delay: Duration,
    /// `full_command` (also implied by parameters and `param_match`).
    pub full_command: bool,
    pub location: Location,
}

/// `bfd_instance NAME { ... }` (KEEPALIVED.md §4, keepalived bfd_parser.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdInstance {
    /// At most 31 characters.
    pub name: String,
    /// `neighbor_ip` / `neighbour_ip` (required).
    pub neighbor: IpAddr,
    /// `source_ip` (same family as the neighbour).
    pub source: Option<IpAddr>,
    /// `min_rx` [10 ms], milliseconds with up to 3 decimals.
    pub min_rx: Duration,
    /// `min_tx` [10 ms].
    pub min_tx: Duration,
    /// `idle_tx` [1000 ms] (at least 1000 ms).
    pub idle_tx: Duration,
    /// `multiplier` (default 5) (1..255).
    pub multiplier: u8,
    pub passive: bool,
    /// `ttl` / `hoplimit` [255 for IPv4, 64 for IPv6] (1..255).
    pub ttl: u8,
    /// `max_hops` (default 0) (-1..255, at most `ttl`).
    pub max_hops: i16,
    /// `weight` (default 0) (-253..253) and `reverse`, for tracking VRRP instances.
    pub weight: i32,
    pub reverse: bool,
    /// Reported to the VRRP process (`vrrp`; both when neither is written).
    pub vrrp: bool,
    /// Reported to the checker process (`checker`).
    pub checker: bool,
    pub location: Location,
}

/// `garp_group { garp_interval S; gna_interval S; interface IF | interfaces { IF ... } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpGroup {
    pub garp_interval: Option<Duration>,
    pub gna_interval: Option<Duration>,
    /// `interface IF` lines and `interfaces { }` entries, in order.
    pub interfaces: Vec<String>,
    /// Written with an `interfaces { }` block (an aggregation group).
    pub aggregate: bool,
    pub location: Location,
}

/// `SSL { password STR; ca FILE; certificate FILE; key FILE }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SslContext {
    pub password: Option<String>,
    pub ca: Option<String>,
    pub certificate: Option<String>,
    pub key: Option<String>,
    pub location: Location,
}

/// `BFD_CHECK { name BFD_INSTANCE; alpha [BOOL] }` of a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdCheck {
    /// The `bfd_instance` followed (one that reports to the checker).
    pub name: String,
    pub alpha: bool,
    pub location: Location,
}

/// `global_defs { ... }`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<String>,
    /// The `smtp_server` port (25 when the server is given without one).
    pub smtp_port: Option<u16>,
    pub smtp_connect_timeout: Option<Duration>,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `script_user USER [GROUP]`.
    pub script_user: Option<String>,
    pub script_group: Option<String>,
    /// `state_dump_file`: where SIGUSR1 writes the data dump.
    pub state_dump_file: Option<String>,
    /// `stats_dump_file`: where SIGUSR2 writes the stats dump.
    pub stats_dump_file: Option<String>,
    /// The VRRP keys (`vrrp_*`, `default_interface`, ...).
    pub vrrp: VrrpGlobals,
    /// global_defs keywords dpvsd does not implement, kept as written.
    pub ignored: Vec<Ignored>,
}

/// One entry of a `local_address_group`; a range `a.b.c.d-e` is expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress {
    pub addr: IpAddr,
    /// The interface (DPVS port) word; mandatory in DPVS's grammar.
    pub ifname: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddressGroup {
    pub name: String,
    pub addresses: Vec<LocalAddress>,
    pub location: Location,
}

/// One entry of a DPVS `deny_address_group` / `allow_address_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessEntry {
    /// `IP`, or one address of a range `a.b.c.d-e` (expanded).
    Addr(IpAddr),
    /// `ipset:NAME`.
    Ipset(String),
}

/// A DPVS `deny_address_group` or `allow_address_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGroup {
    pub name: String,
    pub entries: Vec<AccessEntry>,
    pub location: Location,
}

/// The `kind` of a DPVS tunnel device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    Ipip,
    Gre,
}

/// `tunnel_entry IFNAME { kind ipip|gre; local IP; remote IP; if LINKDEV }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelEntry {
    /// The tunnel device to create.
    pub ifname: String,
    pub kind: Option<TunnelKind>,
    pub local: Option<IpAddr>,
    pub remote: Option<IpAddr>,
    /// `if LINKDEV`: the device the tunnel runs over.
    pub link: Option<String>,
    pub location: Location,
}

/// A DPVS `tunnel_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelGroup {
    pub name: String,
    pub entries: Vec<TunnelEntry>,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    /// DPVS addition.
    Icmp,
    /// DPVS addition.
    Icmpv6,
}

/// `lb_algo` / `lvs_sched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LbAlgo {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Sh,
    Mh,
    Dh,
    Fo,
    Ovf,
    Lblcr,
    Sed,
    Nq,
    Twos,
    /// DPVS addition.
    Conhash,
}

/// `lb_kind` / `lvs_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LbKind {
    Nat,
    Dr,
    Tun,
    /// DPVS addition: full NAT.
    Fnat,
    /// DPVS addition: source NAT (`match` services).
    Snat,
}

/// `virtual_server IP PORT { ... }` (other header forms come with the parser issue).
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    pub addr: IpAddr,
    /// 0 means "no port".
    pub port: u16,
    pub protocol: Protocol,
    pub lb_algo: LbAlgo,
    pub lb_kind: LbKind,
    pub delay_loop: Duration,
    /// `laddr_group_name` (DPVS), the name of a `local_address_group`.
    pub laddr_group_name: Option<String>,
    pub real_servers: Vec<RealServer>,
    /// Where the `virtual_server` keyword stands.
    pub location: Location,
    /// `virtual_server fwmark N`: the firewall mark (`addr` is then the
    /// unspecified IPv4 address and `port` 0).
    pub fwmark: Option<u32>,
    /// `virtual_server group NAME`: a [`VirtualServerGroup`] of the model
    /// (`addr` unspecified, `port` 0).
    pub group: Option<String>,
    /// DPVS `virtual_server match NAME` (an SNAT service; NAME is only a
    /// label; `addr` unspecified, `port` 0).
    pub match_name: Option<String>,
    /// `persistence_timeout [N]` in seconds (360 with no value, or forced for
    /// a zero-port address service); `None`: not persistent.
    pub persistence_timeout: Option<u32>,
    /// `persistence_granularity` as a prefix length (an IPv4 netmask is converted).
    pub persistence_granularity: Option<u8>,
    /// `virtualhost` (default for HTTP_GET/SSL_GET).
    pub virtualhost: Option<String>,
    /// `alpha`.
    pub alpha: bool,
    /// `omega`.
    pub omega: bool,
    /// `quorum` [1], already lowered to the total real-server weight when larger.
    pub quorum: u32,
    /// `hysteresis` [0], already lowered below `quorum`.
    pub hysteresis: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub sorry_server: Option<SorryServer>,
    /// `ha_suspend` (cleared for fwmark services).
    pub ha_suspend: bool,
    /// DPVS additions.
    pub dpvs: DpvsVsOptions,
    /// Virtual-server keywords dpvsd does not implement, kept as written.
    pub ignored: Vec<Ignored>,
}

/// A script with its arguments, as keepalived's script tokeniser splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Never empty.
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub group: Option<String>,
}

/// `sorry_server IP [PORT]` and `sorry_server_inhibit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorryServer {
    pub addr: IpAddr,
    /// After keepalived's port rules (0 for fwmark services).
    pub port: u16,
    pub inhibit: bool,
}

/// DPVS `proxy_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyProtocol {
    /// Unset, or any unrecognised value (DPVS silently disables it).
    #[default]
    Disabled,
    V1,
    V2,
    V1Insecure,
    V2Insecure,
}

/// DPVS `hash_target` (for `conhash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashTarget {
    /// Source IP (the default).
    #[default]
    Sip,
    /// QUIC connection id (UDP only).
    Qid,
}

/// The DPVS virtual-server keywords (KEEPALIVED.md §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpvsVsOptions {
    /// `establish_timeout` seconds, clamped to 1..=3600; `None`: DPVS's default.
    pub establish_timeout: Option<u32>,
    pub syn_proxy: bool,
    pub expire_quiescent_conn: bool,
    pub quic: bool,
    pub proxy_protocol: ProxyProtocol,
    pub hash_target: HashTarget,
    /// `bps` [0].
    pub bps: u32,
    /// `limit_proportion` [100].
    pub limit_proportion: u32,
    pub vip_bind_dev: Option<String>,
    /// `daddr_group_name`: the deny (blacklist) address group.
    pub daddr_group_name: Option<String>,
    /// `waddr_group_name`: the allow (whitelist) address group.
    pub waddr_group_name: Option<String>,
    /// `src-range` / `dst-range` of `match` services, as written.
    pub src_range: Option<String>,
    pub dst_range: Option<String>,
    pub iif: Option<String>,
    pub oif: Option<String>,
}

impl Default for DpvsVsOptions {
    fn default() -> Self {
        DpvsVsOptions {
            establish_timeout: None,
            syn_proxy: false,
            expire_quiescent_conn: false,
            quic: false,
            proxy_protocol: ProxyProtocol::Disabled,
            hash_target: HashTarget::Sip,
            bps: 0,
            limit_proportion: 100,
            vip_bind_dev: None,
            daddr_group_name: None,
            waddr_group_name: None,
            src_range: None,
            dst_range: None,
            iif: None,
            oif: None,
        }
    }
}

/// `virtual_server_group NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServerGroup {
    pub name: String,
    pub entries: Vec<VsgEntry>,
    pub location: Location,
}

/// One line of a `virtual_server_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VsgEntry {
    /// `IP [PORT]` or `IP-LAST [PORT]` (`first == last` for a single address).
    Range {
        first: IpAddr,
        last: IpAddr,
        port: u16,
    },
    /// `fwmark N`.
    Fwmark(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    /// Configured weight (`iweight`), after the VS default is applied.
    pub weight: u32,
    /// `uthreshold`: at this many connections the server gets no new ones
    /// (0: no limit).
    pub uthreshold: u32,
    /// `lthreshold`: an overloaded server takes new connections again below
    /// this many (0: below 3/4 of `uthreshold`, as LVS).
    pub lthreshold: u32,
    pub inhibit_on_failure: bool,
    /// `notify_up`: run when the real server is put into service (boxed,
    /// as `notify_down`: few real servers have one, and a `Script` is 72 bytes).
    pub notify_up: Option<Box<Script>>,
    /// `notify_down`: run when it is taken out of service.
    pub notify_down: Option<Box<Script>>,
    pub checkers: Vec<Checker>,
    /// `BFD_CHECK` blocks (kept; dpvsd does not run BFD).
    pub bfd_checks: Vec<BfdCheck>,
    /// Real-server keywords dpvsd does not implement, kept as written.
    pub ignored: Vec<Ignored>,
    pub location: Location,
}

/// A health checker with its effective parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    pub kind: CheckerKind,
    /// `connect_ip` (default: the real server's address).
    pub connect_ip: IpAddr,
    /// `connect_port` (default: the real server's port).
    pub connect_port: u16,
    /// `bindto`.
    pub bindto: Option<IpAddr>,
    pub connect_timeout: Duration,
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub delay_loop: Duration,
    pub warmup: Duration,
    pub alpha: bool,
    /// `bind_port`.
    pub bind_port: Option<u16>,
    /// `bind_if`.
    pub bind_if: Option<String>,
    /// `fwmark` put on the checker's packets.
    pub fwmark: Option<u32>,
    /// `log_all_failures`.
    pub log_all_failures: bool,
    pub location: Location,
}

/// The checker type and its type-specific, effective parameters (boxed:
/// a large configuration has one checker per real server, mostly
/// `TCP_CHECK`s, which then take 16 bytes here instead of 96).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckerKind {
    /// `TCP_CHECK`: connect only.
    Tcp,
    /// `HTTP_GET`.
    Http(Box<HttpCheck>),
    /// `SSL_GET`: the same parameters as `HTTP_GET`, over TLS.
    Ssl(Box<HttpCheck>),
    /// `MISC_CHECK`.
    Misc(Box<MiscCheck>),
    /// `SMTP_CHECK`.
    Smtp(Box<SmtpCheck>),
    /// `DNS_CHECK`.
    Dns(Box<DnsCheck>),
    /// `UDP_CHECK`.
    Udp(Box<UdpCheck>),
    /// `PING_CHECK`: ICMP/ICMPv6 echo.
    Ping,
    /// `FILE_CHECK`.
    File(Box<FileCheck>),
}

/// `http_protocol` of `HTTP_GET`/`SSL_GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpProtocol {
    /// `1.0` (the default).
    #[default]
    Http10,
    /// `1.0C`: HTTP/1.0 with `Connection: close`.
    Http10C,
    /// `1.1` (sends `Connection: close`).
    Http11,
}

/// `HTTP_GET { ... }` / `SSL_GET { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// At least one (a checker without `url` is dropped).
    pub urls: Vec<HttpUrl>,
    pub http_protocol: HttpProtocol,
    /// `virtualhost` of the checker, else of the real server, else of the virtual server.
    pub virtualhost: Option<String>,
    /// `enable_sni` (SSL_GET).
    pub enable_sni: bool,
    /// `fast_recovery`.
    pub fast_recovery: bool,
    /// Checker keywords dpvsd does not implement (`sni_name`, ...), kept as written.
    pub ignored: Vec<Ignored>,
}

/// `url { path ...; digest ...; status_code ...; virtualhost ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub path: String,
    /// `digest`: MD5 digests of the body, any of which matches.
    pub digests: Vec<[u8; 16]>,
    /// Accepted status codes as inclusive ranges in 100..=599 (default `[(200, 299)]`).
    pub status_codes: Vec<(u16, u16)>,
    /// The url's `virtualhost`, else the checker's effective one.
    pub virtualhost: Option<String>,
    /// `regex "RE"` (matched against the body).
    pub regex: Option<String>,
    /// `regex_no_match`: the check succeeds when the regex does *not* match.
    pub regex_no_match: bool,
    /// url keywords dpvsd does not implement (`regex_options`, ...), kept as written.
    pub ignored: Vec<Ignored>,
}

/// `MISC_CHECK { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscCheck {
    /// `misc_path` split into argv by keepalived's script tokeniser (never empty).
    pub argv: Vec<String>,
    /// `misc_timeout` (whole seconds); 0 or unset means the checker's delay_loop.
    pub timeout: std::time::Duration,
    /// `misc_dynamic`: exit codes 2..255 set the weight.
    pub dynamic: bool,
    /// With `misc_dynamic` in the DPVS dialect (keepalived 2.0.19): an exit
    /// code 2..255 sets the weight absolutely to `status - 2` (replacing
    /// every other checker's delta) and exit 0 restores the configured
    /// weight, instead of 2.2.7's per-checker delta `status - 2 - iweight`.
    pub absolute_weight: bool,
    /// `user USER [GROUP]`; `None` means keepalived's default script user.
    pub user: Option<String>,
    pub group: Option<String>,
}

/// `SMTP_CHECK { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpCheck {
    /// `helo_name` (default `smtpchecker.keepalived.org`).
    pub helo_name: String,
}

/// `DNS_CHECK` query `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DnsType {
    A,
    Ns,
    Cname,
    #[default]
    Soa,
    Mx,
    Txt,
    Aaaa,
}

/// `DNS_CHECK { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// `type` (default SOA).
    pub qtype: DnsType,
    /// `name` (default `.`).
    pub name: String,
}

/// `UDP_CHECK { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpCheck {
    /// `payload HEX` (empty when unset).
    pub payload: Vec<u8>,
    /// `require_reply [HEX]`: `None` when not required.
    pub require_reply: Option<UdpReply>,
    /// `min_reply_length` (0).
    pub min_reply_length: u16,
    /// `max_reply_length` (255).
    pub max_reply_length: u16,
}

/// The reply an `UDP_CHECK` requires. An empty `data` means any reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpReply {
    pub data: Vec<u8>,
    /// Per byte of `data`: the bits set are wildcards (`X`/`x` nibbles), not compared.
    pub wildcard: Vec<u8>,
}

/// `FILE_CHECK { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// `track_file NAME`: the name of a top-level `track_file` block.
    pub track_file: String,
    /// `weight W`; `None` means the track_file's own weight.
    pub weight: Option<i32>,
    /// `weight W reverse`.
    pub reverse: bool,
}

// ------------------------------------------------------------------ VRRP

/// The VRRP keys of `global_defs` (KEEPALIVED.md §3), with keepalived's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpGlobals {
    /// `vrrp_mcast_group4` [224.0.0.18].
    pub mcast_group4: std::net::Ipv4Addr,
    /// `vrrp_mcast_group6` [ff02::12].
    pub mcast_group6: std::net::Ipv6Addr,
    /// `default_interface` [eth0].
    pub default_interface: String,
    /// `vrrp_version` [2].
    pub version: u8,
    /// `vrrp_garp_*` defaults inherited by every instance.
    pub garp: GarpSettings,
    /// `vrrp_garp_interval` [0 = none]; 0 itself is rejected as in keepalived.
    pub garp_interval: Duration,
    /// `vrrp_gna_interval` [0 = none].
    pub gna_interval: Duration,
    /// `vrrp_min_garp`.
    pub min_garp: bool,
    /// `vrrp_down_timer_adverts` [3].
    pub down_timer_adverts: u32,
    pub lower_prio_no_advert: bool,
    pub higher_prio_send_advert: bool,
    /// `vrrp_check_unicast_src`.
    pub check_unicast_src: bool,
    /// `vrrp_skip_check_adv_addr`.
    pub skip_check_adv_addr: bool,
    /// `vrrp_strict`.
    pub strict: bool,
    /// `vrrp_startup_delay` [0].
    pub startup_delay: Duration,
    /// `vrrp_notify_priority_changes`.
    pub notify_priority_changes: bool,
}

impl Default for VrrpGlobals {
    fn default() -> Self {
        VrrpGlobals {
            mcast_group4: std::net::Ipv4Addr::new(224, 0, 0, 18),
            mcast_group6: std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
            default_interface: "eth0".into(),
            version: 2,
            garp: GarpSettings::default(),
            garp_interval: Duration::ZERO,
            gna_interval: Duration::ZERO,
            min_garp: false,
            down_timer_adverts: 3,
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
            check_unicast_src: false,
            skip_check_adv_addr: false,
            strict: false,
            startup_delay: Duration::ZERO,
            notify_priority_changes: false,
        }
    }
}

/// Gratuitous ARP / unsolicited NA timing (global `vrrp_garp_*`, per instance `garp_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpSettings {
    /// `garp_master_delay` [5 s].
    pub master_delay: Duration,
    /// `garp_master_repeat` [5].
    pub master_repeat: u32,
    /// `garp_master_refresh` [0 = off].
    pub master_refresh: Duration,
    /// `garp_master_refresh_repeat` [1].
    pub master_refresh_repeat: u32,
    /// `garp_lower_prio_delay` [the master delay].
    pub lower_prio_delay: Duration,
    /// `garp_lower_prio_repeat` [the master repeat].
    pub lower_prio_repeat: u32,
}

impl Default for GarpSettings {
    fn default() -> Self {
        GarpSettings {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
            lower_prio_delay: Duration::from_secs(5),
            lower_prio_repeat: 5,
        }
    }
}

/// `state MASTER|BACKUP` (the effective initial state, §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpState {
    Master,
    Backup,
}

/// `authentication { auth_type PASS|AH; auth_pass STR }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    Pass,
    Ah,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpAuth {
    pub auth_type: AuthType,
    /// At most 8 bytes (keepalived truncates longer passwords).
    pub password: String,
}

/// One line of `virtual_ipaddress`, `virtual_ipaddress_excluded` or `static_ipaddress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAddress {
    pub addr: IpAddr,
    /// /32 or /128 when not written.
    pub prefix_len: u8,
    /// `dev` (default: the instance's interface, or `default_interface` for static addresses).
    pub dev: Option<String>,
    /// `brd IP|+|-` as written.
    pub brd: Option<String>,
    /// `scope` as a number (global 0, site 200, link 253, host 254, nowhere 255).
    pub scope: Option<u8>,
    pub label: Option<String>,
    pub peer: Option<IpAddr>,
    /// `no_track`.
    pub no_track: bool,
    /// `preferred_lft N|forever` as written.
    pub preferred_lft: Option<String>,
    /// The flag words `home`, `-nodad`, `mngtmpaddr`, `noprefixroute`, `autojoin`, `use_vmac`.
    pub flags: Vec<String>,
    pub location: Location,
}

/// An IP prefix (`addr/len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

/// A `nexthop` of a multipath route (or the deprecated `or IP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nexthop {
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub weight: Option<u32>,
}

/// One line of `virtual_routes` / `static_routes` (`ip route` syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `blackhole`, `unreachable`, `prohibit`, `throw`, ... (`None`: unicast).
    pub route_type: Option<String>,
    pub dest: Prefix,
    pub src: Option<IpAddr>,
    /// `via` / `gw`.
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub table: Option<String>,
    /// `metric` / `priority`.
    pub metric: Option<u32>,
    pub scope: Option<u8>,
    pub nexthops: Vec<Nexthop>,
    /// Other `ip route` options as (name, value) pairs, as written.
    pub options: Vec<(String, String)>,
    /// `no_track`, or a route without an interface (which keepalived cannot track).
    pub no_track: bool,
    pub location: Location,
}

/// One line of `virtual_rules` / `static_rules` (`ip rule` syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub from: Option<Prefix>,
    pub to: Option<Prefix>,
    pub table: Option<String>,
    /// `preference` / `priority` / `order`; assigned from 16384 when missing.
    pub preference: u32,
    /// Other `ip rule` options as (name, value) pairs, as written.
    pub options: Vec<(String, String)>,
    pub no_track: bool,
    pub location: Location,
}

/// A tracked object with an optional weight (`track_interface`, `track_script`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub name: String,
    /// `weight W` (-254..254); `None`: the object's own weight (or FAULT on failure).
    pub weight: Option<i32>,
    pub reverse: bool,
}

/// `unicast_peer { IP [min_ttl N] [max_ttl N] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnicastPeer {
    pub addr: IpAddr,
    pub min_ttl: Option<u8>,
    pub max_ttl: Option<u8>,
}

/// The `notify*` scripts of an instance or sync group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VrrpNotify {
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
    pub deleted: Option<Script>,
    /// `notify`: called for every transition.
    pub any: Option<Script>,
    pub master_rx_lower_pri: Option<Script>,
}

/// The trackers of an instance or sync group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VrrpTrackers {
    pub interfaces: Vec<Tracked>,
    pub scripts: Vec<Tracked>,
    pub files: Vec<Tracked>,
    pub processes: Vec<Tracked>,
    pub bfds: Vec<Tracked>,
}

/// `vrrp_instance NAME { ... }` with the effective values of §6.3.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpInstance {
    pub name: String,
    pub state: VrrpState,
    /// `interface` (default `default_interface` unless the instance is unicast).
    pub interface: Option<String>,
    /// DPVS `dpdk_interface`: the DPDK port behind the KNI `interface`.
    pub dpdk_interface: Option<String>,
    pub virtual_router_id: u8,
    pub priority: u8,
    /// `advert_int`, rounded as keepalived does for the version.
    pub advert_int: Duration,
    /// 2 or 3 (IPv6 instances always 3).
    pub version: u8,
    /// `mcast_src_ip` / `unicast_src_ip`.
    pub src_ip: Option<IpAddr>,
    pub mcast_dst_ip: Option<IpAddr>,
    pub unicast_peers: Vec<UnicastPeer>,
    pub unicast_ttl: Option<u8>,
    pub dont_track_primary: bool,
    pub use_vmac: bool,
    pub virtual_ipaddresses: Vec<IpAddress>,
    pub virtual_ipaddresses_excluded: Vec<IpAddress>,
    pub virtual_routes: Vec<Route>,
    pub virtual_rules: Vec<Rule>,
    pub track: VrrpTrackers,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// Accept mode (default on unless strict and not the owner).
    pub accept: bool,
    pub strict_mode: bool,
    pub skip_check_adv_addr: bool,
    pub authentication: Option<VrrpAuth>,
    pub garp: GarpSettings,
    pub down_timer_adverts: u32,
    pub lower_prio_no_advert: bool,
    pub higher_prio_send_advert: bool,
    pub notify: VrrpNotify,
    pub smtp_alert: bool,
    /// Instance keywords dpvsd does not implement, kept as written.
    pub ignored: Vec<Ignored>,
    pub location: Location,
}

/// `vrrp_script NAME { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpScript {
    pub name: String,
    /// `script` with `user`.
    pub script: Script,
    /// `interval` [1 s].
    pub interval: Duration,
    /// `timeout` [the interval].
    pub timeout: Duration,
    /// `weight` [0] (-253..253).
    pub weight: i32,
    pub reverse: bool,
    /// `rise` / `fall` [1].
    pub rise: u32,
    pub fall: u32,
    pub init_fail: bool,
    pub location: Location,
}

/// `vrrp_sync_group NAME { group { ... } ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    pub name: String,
    /// The member instances (all defined).
    pub instances: Vec<String>,
    pub track: VrrpTrackers,
    pub notify: VrrpNotify,
    pub smtp_alert: bool,
    pub sync_group_tracking_weight: bool,
    /// Sync-group keywords dpvsd does not implement, kept as written.
    pub ignored: Vec<Ignored>,
    pub location: Location,
}

/// `track_file NAME { file PATH; weight W [reverse]; init_file [VAL] [overwrite] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    pub name: String,
    pub path: String,
    /// [1].
    pub weight: i32,
    pub reverse: bool,
    /// `init_file [VAL] [overwrite]`: the value to create the file with (0 by default).
    pub init_file: Option<(i64, bool)>,
    pub location: Location,
}

// ------------------------------------------------------------------ OSPF (dpvsd)

/// `announce_as stub|external`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OspfAnnounceAs {
    /// VIPs as stub links of our Router-LSA.
    #[default]
    Stub,
    /// VIPs as AS-external (type-5, E2) LSAs.
    External,
}

/// `authentication md5 ID KEY | simple PW | none`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OspfAuth {
    #[default]
    None,
    /// At most 8 bytes.
    Simple(String),
    /// Key id and key (at most 16 bytes).
    Md5 { key_id: u8, key: String },
}

/// `interface NAME { ... }` of `ospf_announcer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OspfInterface {
    pub name: String,
    /// `hello_interval` seconds [10].
    pub hello_interval: u16,
    /// `dead_interval` seconds [4 × hello_interval].
    pub dead_interval: u32,
    /// `priority` [1] (0: never DR).
    pub priority: u8,
    /// `cost` [10].
    pub cost: u16,
    pub authentication: OspfAuth,
    pub location: Location,
}

/// dpvsd's `ospf_announcer { ... }` (issue 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OspfAnnouncer {
    pub router_id: std::net::Ipv4Addr,
    /// `area` as a dotted quad (a plain number is converted) [0.0.0.0].
    pub area: std::net::Ipv4Addr,
    pub interfaces: Vec<OspfInterface>,
    pub announce_as: OspfAnnounceAs,
    /// `metric` [10] (1..16777214).
    pub metric: u32,
    pub location: Location,
}
