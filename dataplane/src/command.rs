//! The one mutation API of the dataplane.
//!
//! The config loader, reload, health checkers, VRRP, the control socket and
//! the tests all change forwarding only through [`Command`]s applied with
//! [`crate::Dataplane::apply`]. Nothing reaches into engine internals.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// L4 protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP echo (IPv4), for SNAT `match` services only: the echo
    /// identifier is mapped like a port.
    Icmp,
    /// ICMPv6 echo, likewise (IPv6 SNAT `match` services).
    Icmpv6,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmp => 1,
            Protocol::Icmpv6 => 58,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Icmp => "ICMP",
            Protocol::Icmpv6 => "ICMPV6",
        })
    }
}

/// Stable identity of a virtual service: VIP, port and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ServiceKey {
    pub addr: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol,
            SocketAddr::new(self.addr, self.port)
        )
    }
}

/// Scheduling algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Round robin over servers with weight > 0.
    Rr,
    /// Weighted round robin (IPVS's interleaved sequence).
    Wrr,
    /// Maglev hashing of the client address (minimal disruption on changes).
    Mh,
    /// Source hashing: the client address picks a bucket of a weighted table.
    Sh,
    /// Destination hashing: the destination address picks a bucket.
    Dh,
    /// Consistent hashing ring of the client address (`hash_target sip`),
    /// virtual nodes proportional to weight.
    Conhash,
    /// Weighted failover: the available server with the highest weight.
    Fo,
    /// Least connections.
    Lc,
    /// Weighted least connections (keepalived's default).
    Wlc,
}

/// Forwarding method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Forwarding {
    /// Full NAT: client→VIP becomes LIP→RS, and back.
    Fnat,
    /// NAT (masquerading): client→VIP becomes client→RS (DNAT); the real
    /// server's default route points at the load balancer, so its reply
    /// RS→client passes through and leaves as VIP→client (SNAT).
    Nat,
    /// Direct routing: only the MAC addresses change (dst = real server's);
    /// the real server holds the VIP itself and replies straight to the client.
    Dr,
    /// IP tunnelling: the packet is wrapped in an outer IPv4 header (IPIP,
    /// protocol 4) towards the real server, which replies straight to the client.
    Tun,
    /// Source NAT (DPVS's `match` services, [`SnatMatch`]): an inside
    /// host's packet to an outside address leaves from an SNAT address (a
    /// "real server" of the service, owned by the dataplane) and a port
    /// allocated on it; replies are translated back to the inside host.
    Snat,
}

impl Forwarding {
    /// Whether the mode needs local addresses (LIPs): only FNAT does. Other
    /// modes use their first local address, if any, as the source of ARP
    /// requests and (TUN) of the outer header.
    pub fn needs_local_addrs(self) -> bool {
        self == Forwarding::Fnat
    }

    /// Whether replies from real servers come back through the load balancer.
    pub fn has_reply_path(self) -> bool {
        matches!(self, Forwarding::Fnat | Forwarding::Nat | Forwarding::Snat)
    }
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forwarding::Fnat => "FNAT",
            Forwarding::Nat => "NAT",
            Forwarding::Dr => "DR",
            Forwarding::Tun => "TUN",
            Forwarding::Snat => "SNAT",
        })
    }
}

/// A virtual service as configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub forwarding: Forwarding,
    /// Local addresses (LIPs): for FNAT the sources towards real servers
    /// (required); for NAT, DR and TUN optional, the first one is the source
    /// of ARP requests to real servers and (TUN) of the outer IPv4 header.
    pub local_addrs: Vec<IpAddr>,
    /// `persistence_timeout` / `persistence_granularity`; `None`: every
    /// new connection is scheduled on its own.
    pub persistence: Option<Persistence>,
    /// Who may open connections, per-server connection limits, SYN proxy.
    pub protection: Protection,
    /// DPVS's `establish_timeout`, seconds ([`ESTABLISH_TIMEOUT_S`]): the
    /// idle timeout of the service's ESTABLISHED TCP connections and of
    /// its UDP ones. `None`: DPVS's defaults (90 s and 300 s).
    pub establish_timeout_s: Option<u32>,
    /// DPVS's `expire_quiescent_conn`: a packet of a connection whose real
    /// server is quiescent (weight 0) or was removed expires the
    /// connection and is dropped. Without it such connections continue.
    pub expire_quiescent: bool,
    /// DPVS's QUIC options (UDP services).
    pub quic: Quic,
    /// DPVS's `proxy_protocol` (FNAT TCP services): `None`: off.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// SNAT (`virtual_server match`): which packets the service takes;
    /// `Some` exactly when `forwarding` is [`Forwarding::Snat`]. The key of
    /// such a service is the unspecified address of its family, its port
    /// the service's ordinal among the match services of its protocol.
    pub snat: Option<Box<SnatMatch>>,
}

/// DPVS's `dp_vs_match` of an SNAT service, as the dataplane applies it:
/// a packet routed through the dataplane (not to one of its addresses)
/// whose protocol is the service's and whose source and destination fall
/// in the ranges opens a connection (the first matching service, in
/// ordinal order, takes it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnatMatch {
    /// `src-range`: inside hosts (any when `None`) and their ports.
    pub src: MatchRange,
    /// `dst-range`: outside destinations (any when `None`) and ports.
    pub dst: MatchRange,
    /// `iif` / `oif` as written (the dataplane forwards on one interface;
    /// the daemon checks that they name it).
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// The next hop of outbound packets (the WAN gateway, from the
    /// kernel's route on the forwarding interface); `None`: not resolved,
    /// outbound packets are dropped as `neighbour_unresolved`.
    pub gateway: Option<IpAddr>,
}

/// An address range and a port range (DPVS `IP[-IP][:PORT[-PORT]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MatchRange {
    /// `None`: any address of the service's family.
    pub addrs: Option<AddrRange>,
    /// Inclusive; `(0, 65535)` when not written. ICMP ignores ports.
    pub ports: (u16, u16),
}

impl Default for MatchRange {
    fn default() -> MatchRange {
        MatchRange {
            addrs: None,
            ports: (0, u16::MAX),
        }
    }
}

impl fmt::Display for MatchRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addrs {
            Some(r) if r.first == r.last => write!(f, "{}", r.first)?,
            Some(r) => write!(f, "{}-{}", r.first, r.last)?,
            None => f.write_str("any")?,
        }
        if self.ports != (0, u16::MAX) {
            write!(f, ":{}-{}", self.ports.0, self.ports.1)?;
        }
        Ok(())
    }
}

impl fmt::Display for SnatMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "src-range={},dst-range={}", self.src, self.dst)?;
        if let Some(i) = &self.iif {
            write!(f, ",iif={i}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, ",oif={o}")?;
        }
        Ok(())
    }
}

impl ServiceSpec {
    /// The service's options after its scheduler, as `ipvsadm -ln` (and
    /// DPVS's ipvsadm) print them: `persistent 360`, `mask 255.255.255.0`,
    /// `synproxy`, then dpvsd's `proxy-protocol v2[-insecure]`, `quic`,
    /// `qid`, `establish-timeout N`, `expire-quiescent`.
    pub fn flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = self.persistence {
            out.push(format!("persistent {}", p.timeout_s));
            if p.granularity < 32 {
                let mask = crate::wire::ipv4::netmask(p.granularity);
                out.push(format!("mask {}", Ipv4Addr::from(mask)));
            }
        }
        if self.protection.syn_proxy {
            out.push("synproxy".into());
        }
        if let Some(pp) = self.proxy_protocol {
            let v = match pp.version {
                ProxyVersion::V1 => "v1",
                ProxyVersion::V2 => "v2",
            };
            let insecure = if pp.insecure { "-insecure" } else { "" };
            out.push(format!("proxy-protocol {v}{insecure}"));
        }
        if self.quic.migrate {
            out.push("quic".into());
        }
        if self.quic.cid_hash {
            out.push("qid".into());
        }
        if let Some(t) = self.establish_timeout_s {
            out.push(format!("establish-timeout {t}"));
        }
        if self.expire_quiescent {
            out.push("expire-quiescent".into());
        }
        out
    }
}

/// DPVS's `proxy_protocol`: each FNAT TCP connection's data starts with a
/// PROXY protocol header (HAProxy's specification) naming the client and
/// the VIP, so servers see the client without the TOA kernel module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProxyProtocol {
    pub version: ProxyVersion,
    /// `v1-insecure` / `v2-insecure`: a header of this version the client
    /// sent itself is passed on as it is (the client is trusted, e.g. a
    /// proxy in front). Otherwise it is replaced by ours.
    pub insecure: bool,
}

/// A PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ProxyVersion {
    /// The text form: `PROXY TCP4 client vip cport vport\r\n`.
    V1,
    /// The binary form.
    V2,
}

/// DPVS's QUIC options of a UDP service ([`crate::quic`]). The default is
/// none: QUIC packets are scheduled as any UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Quic {
    /// `quic`: a packet of no known connection whose destination
    /// connection ID names one of the service's servers (DPVS's format)
    /// goes to that server, so a QUIC connection survives a client's
    /// change of address (connection migration). Not with persistence.
    pub migrate: bool,
    /// `hash_target qid` (`conhash`): the consistent-hash ring is keyed by
    /// the gQUIC connection ID when the packet has one, else by the client
    /// address.
    pub cid_hash: bool,
}

/// The range of [`ServiceSpec::establish_timeout_s`] (DPVS's keepalived
/// clamps `establish_timeout` to it).
pub const ESTABLISH_TIMEOUT_S: std::ops::RangeInclusive<u32> = 1..=3600;

/// A service's protections (DPVS's blklst/whtlst, LVS's thresholds, DPVS's
/// `syn_proxy`). The default protects nothing and costs nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Protection {
    /// `allow_address_group` (DPVS whtlst): when not empty, only clients in
    /// these ranges may open connections.
    pub allow: Vec<AddrRange>,
    /// `deny_address_group` (DPVS blklst): clients in these ranges may not
    /// open connections.
    pub deny: Vec<AddrRange>,
    /// `uthreshold` / `lthreshold` of real servers, by address. Servers not
    /// listed have no limit.
    pub thresholds: Vec<(SocketAddr, Thresholds)>,
    /// `syn_proxy`: SYN cookies; the real server sees the connection only
    /// after the client's handshake completed (TCP services).
    pub syn_proxy: bool,
}

/// An inclusive range of client addresses (`first..=last`; one address when
/// both are equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct AddrRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl AddrRange {
    /// The range of one address.
    pub fn one(addr: IpAddr) -> AddrRange {
        AddrRange {
            first: addr,
            last: addr,
        }
    }
}

/// LVS's per-real-server connection limits: a server with `upper` or more
/// connections (active + inactive) is overloaded and gets no new ones until
/// it falls below `lower` (0: below 3/4 of `upper`, as `ip_vs_unbind_dest`).
/// `upper` 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Thresholds {
    pub upper: u32,
    pub lower: u32,
}

/// Client persistence, as LVS: new connections from one client network
/// (the client address masked to `granularity` bits) go to the real server
/// chosen for the first one, until no connection of theirs has been seen
/// for `timeout_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Persistence {
    pub timeout_s: u32,
    /// IPv4 prefix length (0..=32; larger values count as 32).
    pub granularity: u8,
}

impl Persistence {
    /// The client network a client address belongs to.
    pub fn network(self, client: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(client) & crate::wire::ipv4::netmask(self.granularity))
    }
}

/// A real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RealServerSpec {
    pub addr: SocketAddr,
    /// 0 = quiescent: existing connections continue, no new ones.
    pub weight: u32,
}

/// A request to change the dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddService(ServiceSpec),
    DelService(ServiceKey),
    AddRealServer {
        service: ServiceKey,
        server: RealServerSpec,
    },
    DelRealServer {
        service: ServiceKey,
        server: SocketAddr,
    },
    SetWeight {
        service: ServiceKey,
        server: SocketAddr,
        weight: u32,
    },
    /// Whether the dataplane owns (answers ARP for, forwards to) a VIP.
    /// VIPs of added services are owned unless set otherwise (VRRP does).
    SetVipOwned {
        vip: IpAddr,
        owned: bool,
    },
    /// The load balancer's own addresses on `device` (the kernel's, on the
    /// forwarding interface, a port's exception TAP (`dpdk1`) or a VLAN
    /// device on it (`dpdk1.100`); the dataplane does not answer for
    /// them), each with its prefix length. For services without local
    /// addresses, a real server is asked for (ARP, neighbor solicitation)
    /// from the address of the device whose network holds it (the longest
    /// prefix; else the untagged port 0's address of its family; else an
    /// ARP probe from 0.0.0.0 or a solicitation from our link-local
    /// address), on that port and VLAN; that address is also the outer
    /// source of its TUN packets (none: dropped as `no_tunnel_source`).
    /// Packets to other hosts on a device's network (an inside host SNAT
    /// replies to) leave on its port and VLAN. Setting replaces the
    /// device's; `None` clears.
    SetInterfaceAddr {
        device: Device,
        v4: Option<(Ipv4Addr, u8)>,
        v6: Option<(Ipv6Addr, u8)>,
    },
    /// The device a VIP or local address is bound to (DPVS's
    /// `vip_bind_dev dpdk1.100`, a local address on `dpdk1.100`): it is
    /// answered for and sent from on that port with that 802.1Q tag.
    /// [`Device::default`] (port 0, untagged) clears.
    SetDevice {
        addr: IpAddr,
        device: Device,
    },
}

/// Where an address lives: a port (index in the order the ports were
/// given, DPVS's `dpdk0`, `dpdk1`, …) and an 802.1Q VLAN on it (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Device {
    pub port: u16,
    pub vlan: u16,
}

impl std::fmt::Display for Device {
    /// DPVS's device name: `dpdk1`, `dpdk1.100`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.vlan {
            0 => write!(f, "dpdk{}", self.port),
            v => write!(f, "dpdk{}.{v}", self.port),
        }
    }
}

/// Why a [`Command`] was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("service {0} already exists")]
    ServiceExists(ServiceKey),
    #[error("no service {0}")]
    NoSuchService(ServiceKey),
    #[error("real server {server} already exists in service {service}")]
    ServerExists {
        service: ServiceKey,
        server: SocketAddr,
    },
    #[error("no real server {server} in service {service}")]
    NoSuchServer {
        service: ServiceKey,
        server: SocketAddr,
    },
    #[error("{what} is not supported yet by the dataplane")]
    Unsupported { what: String },
    #[error("invalid command: {reason}")]
    Invalid { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_list_the_options_a_service_has() {
        let mut spec = ServiceSpec {
            key: ServiceKey {
                addr: Ipv4Addr::new(10, 0, 0, 1).into(),
                port: 443,
                protocol: Protocol::Udp,
            },
            scheduler: Scheduler::Conhash,
            forwarding: Forwarding::Fnat,
            local_addrs: Vec::new(),
            persistence: None,
            protection: Protection::default(),
            quic: Quic::default(),
            proxy_protocol: None,
            establish_timeout_s: None,
            expire_quiescent: false,
            snat: None,
        };
        assert!(spec.flags().is_empty());
        spec.persistence = Some(Persistence {
            timeout_s: 360,
            granularity: 24,
        });
        spec.protection.syn_proxy = true;
        spec.proxy_protocol = Some(ProxyProtocol {
            version: ProxyVersion::V2,
            insecure: true,
        });
        spec.quic = Quic {
            migrate: true,
            cid_hash: true,
        };
        spec.establish_timeout_s = Some(60);
        spec.expire_quiescent = true;
        assert_eq!(
            spec.flags(),
            [
                "persistent 360",
                "mask 255.255.255.0",
                "synproxy",
                "proxy-protocol v2-insecure",
                "quic",
                "qid",
                "establish-timeout 60",
                "expire-quiescent"
            ]
        );
    }
}
