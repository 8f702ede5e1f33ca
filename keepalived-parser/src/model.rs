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
    /// Virtual servers that survived validation, in file order.
    pub virtual_servers: Vec<VirtualServer>,
    /// Non-empty `virtual_server_group`s, in file order.
    pub virtual_server_groups: Vec<VirtualServerGroup>,
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
    pub inhibit_on_failure: bool,
    pub checkers: Vec<Checker>,
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

/// The checker type and its type-specific, effective parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckerKind {
    /// `TCP_CHECK`: connect only.
    Tcp,
    /// `HTTP_GET`.
    Http(HttpCheck),
    /// `SSL_GET`: the same parameters as `HTTP_GET`, over TLS.
    Ssl(HttpCheck),
    /// `MISC_CHECK`.
    Misc(MiscCheck),
    /// `SMTP_CHECK`.
    Smtp(SmtpCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `PING_CHECK`: ICMP/ICMPv6 echo.
    Ping,
    /// `FILE_CHECK`.
    File(FileCheck),
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
