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
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckerKind {
    Tcp,
}
