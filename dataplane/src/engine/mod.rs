//! The per-worker forwarding engine, sans-IO: a frame and the time go in, a
//! [`Verdict`] comes out (the frame is rewritten in place) and control frames
//! the engine originates (ARP requests, gratuitous ARP, neighbor
//! solicitations and advertisements) are appended to a [`Burst`].
//!
//! Forwarding methods (per service, [`Forwarding`]), TCP/UDP over IPv4 and
//! IPv6 (TUN: IPIP / ip6ip6; TOA: DPVS's 8-byte IPv4 or 20-byte IPv6 option,
//! by the client's family, so NAT64 segments carry the IPv6 one):
//!
//! | mode | client → VIP becomes          | reply                              |
//! |------|-------------------------------|------------------------------------|
//! | FNAT | LIP:lport → RS:rport, TTL − 1 | RS → LIP becomes VIP → client      |
//! |      | (+ TOA, see below)            | (SYN-ACK: MSS − TOA length)        |
//! | NAT  | client → RS:rport, TTL − 1    | RS → client becomes VIP → client   |
//! | DR   | same packet, dst MAC = RS's   | RS → client directly               |
//! | TUN  | IPIP: outer src → RS, inner untouched | RS → client directly       |
//! | SNAT | inside → outside becomes SNAT:port → outside (`match` services, [`snat`]) | outside → SNAT:port becomes outside → inside |
//!
//! **TOA** goes where DPVS's `tcp_fnat_in_handler` puts it (FNAT without
//! PROXY protocol, [`crate::conn::Dest::toa`]): on the client's SYN, and on
//! every client segment acknowledging exactly the real server's SYN-ACK
//! (the handshake ACK and the data sent before the client acknowledged any
//! of the server's) but not on a FIN or RST ([`Conn::wants_toa`]); the
//! SYN-ACK's MSS is lowered by the option's length so that full-size
//! client segments still fit with it. A segment without room for it (TCP
//! header full, MTU, buffer) goes on without it. Unlike DPVS, the SYN's
//! timestamp option is kept: DPVS blanks it because clients behind one
//! local address had unrelated timestamp clocks, which broke servers with
//! `tcp_tw_recycle`; Linux randomises timestamp offsets per connection
//! since 4.10 and removed `tw_recycle` in 4.12, so blanking it would only
//! cost PAWS and RTT measurement.
//!
//! Both directions of a connection are indexed by the connection table: the
//! client's key (client, VIP, cport, vport) and the real server's (RS, LIP,
//! rport, lport) for FNAT or (RS, client, rport, cport) otherwise. NAT
//! replies are not addressed to us: a packet from a NAT real server to an
//! address we do not own is looked up by that key and, when no connection
//! knows it, left to the kernel ([`Verdict::Ignore`]).
//!
//! Each address family has its own `Side`: connection table, neighbours
//! and templates, generic over the [`Family`] (so the IPv4 path is
//! monomorphic and unchanged by IPv6). NAT64 (FNAT from an IPv6 VIP to IPv4
//! servers) keeps its connections in the IPv6 table with the servers and
//! local addresses as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, never
//! valid on the wire); the IPv6 rewrite translates the headers (RFC 7915)
//! and IPv4 replies to a NAT64 local address fall through to the IPv6 table.
//!
//! The hot path reads the published [`Snapshot`] and the worker's own
//! connection table; it takes no lock, makes no syscall and does not
//! allocate (the neighbour table is bounded and reserved up front).

mod family;
mod fast;
mod nat64;
mod port;
mod proxyproto;
mod snat;
mod synproxy;
mod v6;
mod vlan;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub use self::family::Family;
use self::proxyproto::{Hooked, ProxyProto};
pub use self::snat::SnatRule;
use self::synproxy::SynProxy;
use crate::acl::AccessList;
use crate::command::{Device, Forwarding, Persistence, ProxyProtocol, Quic, ServiceKey};
use crate::conn::{
    Conn, ConnIdx, ConnTable, Deltas, DestId, Dir, FlowKey, Key, TcpFlags, TcpState, NO_HINT,
};
use crate::fasthash::FastMap;
use crate::io::{Burst, Frame, FrameBuf};
use crate::quic;
use crate::sched::{least, SchedTable};
use crate::stats::{Drop, DropCounters, Traffic};
use crate::threshold::{self, ServerLimits};
use crate::wire::icmpv4::Quote;
use crate::wire::ipv4::HEADER_LEN as IPV4_HEADER_LEN;
use crate::wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv4Packet, IpProtocol,
    Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, UdpPacket, WireError,
};

const ETH_LEN: usize = 14;
/// Minimum Ethernet frame without FCS; shorter frames we build are padded.
const MIN_FRAME: usize = 60;
/// At most this many neighbours (real servers) are tracked per worker.
pub const MAX_NEIGHBOURS: usize = 4096;
/// At most this many persistence templates are kept per worker; when the
/// table is full, expired ones are purged, and if none expired a new client
/// is scheduled without a template.
pub const MAX_TEMPLATES: usize = 65_536;
/// Re-ARP every known neighbour this often.
pub const NEIGHBOUR_REFRESH_MS: u64 = 30_000;
/// Don't ask for the same unresolved neighbour more often than this.
const ARP_RETRY_MS: u64 = 200;
/// Local (FNAT) ports handed out by a worker.
pub const LOCAL_PORT_MIN: u16 = 1024;
const PORT_PROBES: usize = 64;
/// Opening an FNAT connection prefetches the reply-key bucket of the
/// connection this many opens later ([`Side::prefetch_next_local`]).
const LOCAL_PREFETCH_AHEAD: usize = 4;
/// TUN: largest outer IPv4 packet sent (the link MTU); bigger ones are
/// dropped as `tunnel_too_big`.
pub const TUNNEL_MTU: usize = 1500;
/// [`Engine::handle_burst`] parses and prefetches this many frames at a time.
pub const PIPELINE: usize = 64;
/// [`Engine::handle_burst`] prefetches a frame's connection line this many
/// frames after its index bucket, once the bucket has had time to arrive.
const PREFETCH_LAG: usize = 8;
/// [`Engine::housekeeping`] paces the expiry sweep to visit the whole
/// connection table once per this period (within its budget), so an idle
/// connection is freed at most this late and a busy worker does not rescan
/// the table every burst.
pub const SWEEP_PERIOD_MS: u64 = 1_000;
/// [`Engine::housekeeping`] adds the packets and bytes counted per
/// destination to the shared [`Traffic`] counters this often, so readers
/// (`ipvsadm --stats`, `dpvsctl`, the rate estimator) lag by at most this.
pub const STATS_FLUSH_MS: u64 = 10;

/// What to do with a frame after [`Engine::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place; transmit it.
    Forward,
    /// Not for the load balancer (the kernel's business); leave it alone.
    Ignore,
    /// For the load balancer, but dropped (and counted) for this reason.
    Drop(Drop),
}

/// A real server as workers see it.
#[derive(Debug)]
pub struct ServerSnap<A = Ipv4Addr> {
    pub addr: A,
    pub port: u16,
    pub stats: Arc<Traffic>,
}

/// A service as workers see it.
#[derive(Debug)]
pub struct ServiceSnap<A = Ipv4Addr> {
    pub key: ServiceKey,
    pub stats: Arc<Traffic>,
    pub servers: Vec<ServerSnap<A>>,
    pub table: SchedTable,
    pub local_addrs: Vec<A>,
}

/// How a service's connections live, as workers see it: its
/// `establish_timeout` and `expire_quiescent_conn`, and which of its
/// servers are quiescent. The default is DPVS's: protocol timeouts, and
/// connections to quiescent servers continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnPolicy {
    /// `establish_timeout` in seconds: the idle timeout of its ESTABLISHED
    /// TCP and of its UDP connections (`None`: 90 s and 300 s).
    pub establish_timeout_s: Option<u32>,
    /// `expire_quiescent_conn`: a packet of a connection whose server is
    /// quiescent or was removed expires the connection and is dropped.
    pub expire_quiescent: bool,
    /// Per server (same index as the service's `servers`): its weight is
    /// 0. A missing entry means not quiescent.
    pub quiescent: Box<[bool]>,
}

/// One address family's services, addresses and neighbours: the IPv4 or
/// IPv6 half of a [`Snapshot`].
#[derive(Debug)]
pub struct FamilySnap<A> {
    pub services: Vec<ServiceSnap<A>>,
    /// (VIP, port, IP protocol) → index in `services`.
    pub lookup: FastMap<(A, u16, u8), usize>,
    /// VIPs the dataplane answers ARP / neighbor solicitations for and
    /// forwards to (sorted).
    pub owned_vips: Vec<A>,
    /// FNAT local addresses (sorted). The IPv4 list also holds the NAT64
    /// local addresses.
    pub local_addrs: Vec<A>,
    /// Real servers to resolve, with the source address to ask from
    /// (0.0.0.0: an ARP probe; `::`: our link-local address).
    pub neighbours: Vec<(A, A)>,
    /// Per service (same index as `services`): its forwarding method. A
    /// missing entry means FNAT.
    pub forwarding: Vec<Forwarding>,
    /// Real servers of NAT services (sorted): their packets to addresses we
    /// do not own may be NAT replies.
    pub nat_servers: Vec<A>,
    /// The interface address ([`crate::Command::SetInterfaceAddr`]).
    pub interface: Option<A>,
    /// Per service: its persistence. A missing entry means none.
    pub persistence: Vec<Option<Persistence>>,
    /// Per service: its client access list ([`crate::acl`]). A missing
    /// entry means none.
    pub acl: Vec<Option<AccessList>>,
    /// Per service: its servers' connection limits ([`crate::threshold`]),
    /// `None` when no server of it has one.
    pub limits: Vec<Option<Box<ServerLimits>>>,
    /// Per service: whether it proxies SYNs ([`synproxy`]). A missing
    /// entry means no.
    pub synproxy: Vec<bool>,
    /// Per service: its QUIC options ([`crate::quic`]). A missing entry
    /// means none.
    pub quic: Vec<Quic>,
    /// Per service: its PROXY protocol ([`proxyproto`]). A missing entry
    /// means none.
    pub proxy_protocol: Vec<Option<ProxyProtocol>>,
    /// Per service: how its connections live. A missing entry means the
    /// defaults.
    pub conn_policy: Vec<ConnPolicy>,
    /// The match rules of SNAT services ([`snat`]), in match order.
    pub snat: Vec<SnatRule<A>>,
    /// Per service: where its packets towards servers go when that is not
    /// the server itself (SNAT: the gateway). A missing entry means the
    /// server.
    pub next_hop: Vec<Option<A>>,
}

impl<A> Default for FamilySnap<A> {
    fn default() -> FamilySnap<A> {
        FamilySnap {
            services: Vec::new(),
            lookup: FastMap::default(),
            owned_vips: Vec::new(),
            local_addrs: Vec::new(),
            neighbours: Vec::new(),
            forwarding: Vec::new(),
            nat_servers: Vec::new(),
            interface: None,
            persistence: Vec::new(),
            acl: Vec::new(),
            limits: Vec::new(),
            synproxy: Vec::new(),
            quic: Vec::new(),
            proxy_protocol: Vec::new(),
            conn_policy: Vec::new(),
            snat: Vec::new(),
            next_hop: Vec::new(),
        }
    }
}

/// The IPv4 half of a [`Snapshot`].
pub type Snapshot4 = FamilySnap<Ipv4Addr>;
/// The IPv6 half of a [`Snapshot`].
pub type Snapshot6 = FamilySnap<Ipv6Addr>;

/// Everything a worker needs to forward, immutable once published.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The IPv4 services, addresses and neighbours.
    pub v4: Snapshot4,
    /// The IPv6 ones (NAT64 services included).
    pub v6: Snapshot6,
    /// The IPv4 local addresses of NAT64 services (sorted; also in the
    /// IPv4 `local_addrs`): replies to them belong to IPv6 connections.
    pub nat64_lips: Vec<Ipv4Addr>,
    /// The SYN-cookie secret (shared by all workers).
    pub syn_cookie_key: [u64; 2],
    /// VIPs and local addresses bound to an 802.1Q VLAN (`vip_bind_dev
    /// dpdk0.100`), with its id, sorted by address. Addresses not listed
    /// are on the untagged port.
    pub addr_vlans: Vec<(IpAddr, u16)>,
    /// The VLAN ids of `addr_vlans` (sorted, deduplicated): tagged frames
    /// on other VLANs are dropped as `unknown_vlan`.
    pub vlan_ids: Vec<u16>,
    /// VIPs and local addresses bound to a port other than the first
    /// (`vip_bind_dev dpdk1`), with its index, sorted by address (`port.rs`).
    /// Addresses not listed are on port 0.
    pub addr_ports: Vec<(IpAddr, u16)>,
    /// The networks of the devices other than the untagged first port
    /// (their interface addresses' with prefix lengths,
    /// [`crate::Command::SetInterfaceAddr`]): an IP packet to an address in
    /// one that is not a neighbour's (an inside host SNAT replies to)
    /// leaves on that port (`port.rs`) and VLAN (`vlan.rs`).
    pub port_nets: Vec<(IpAddr, u8, Device)>,
}

impl Snapshot {
    fn owns_vip<A: Family>(&self, ip: A) -> bool {
        A::owned_vips(self).binary_search(&ip).is_ok()
    }

    fn is_local<A: Family>(&self, ip: A) -> bool {
        A::local_addrs(self).binary_search(&ip).is_ok()
    }

    fn is_nat_server<A: Family>(&self, ip: A) -> bool {
        A::nat_servers(self).binary_search(&ip).is_ok()
    }

    /// The VLAN `ip` (a VIP or local address) is bound to; 0: untagged.
    pub fn vlan_of(&self, ip: impl Into<IpAddr>) -> u16 {
        bound_to(&self.addr_vlans, ip.into())
    }

    /// The port `ip` (a VIP or local address) is bound to; 0: the first.
    pub fn port_of(&self, ip: impl Into<IpAddr>) -> u16 {
        bound_to(&self.addr_ports, ip.into())
    }

    /// The device whose network ([`Snapshot::port_nets`]) holds `ip` (the
    /// longest prefix), if any.
    pub fn port_net_of(&self, ip: IpAddr) -> Option<Device> {
        longest_match(&self.port_nets, ip).map(|&(_, _, device)| device)
    }

    /// The persistence of IPv4 service number `i`.
    pub fn persistence_of(&self, i: usize) -> Option<Persistence> {
        Ipv4Addr::persistence_of(self, i)
    }

    /// The forwarding method of IPv4 service number `i`.
    pub fn forwarding_of(&self, i: usize) -> Forwarding {
        Ipv4Addr::forwarding_of(self, i)
    }

    /// The access list of IPv4 service number `i`.
    #[inline]
    pub fn acl_of(&self, i: usize) -> Option<&AccessList> {
        Ipv4Addr::acl_of(self, i)
    }

    /// Whether IPv4 service number `i` proxies SYNs.
    #[inline]
    pub fn synproxy_of(&self, i: usize) -> bool {
        Ipv4Addr::synproxy_of(self, i)
    }

    /// The server limits of IPv4 service number `i`.
    #[inline]
    pub fn limits_of(&self, i: usize) -> Option<&ServerLimits> {
        Ipv4Addr::limits_of(self, i)
    }
}

/// The network of `nets` ((address, prefix length, device)) that holds
/// `ip`: the longest prefix, then the lowest device (port, then VLAN).
pub(crate) fn longest_match(
    nets: &[(IpAddr, u8, Device)],
    ip: IpAddr,
) -> Option<&(IpAddr, u8, Device)> {
    let holding = nets.iter().filter(|&&(a, len, _)| in_network(ip, a, len));
    holding.max_by_key(|&&(_, len, device)| (len, std::cmp::Reverse(device)))
}

/// Whether `ip` is in the network `addr`/`len` (same family).
fn in_network(ip: IpAddr, addr: IpAddr, len: u8) -> bool {
    match (ip, addr) {
        (IpAddr::V4(ip), IpAddr::V4(a)) => {
            (u32::from(ip) ^ u32::from(a)) & crate::wire::ipv4::netmask(len) == 0
        }
        (IpAddr::V6(ip), IpAddr::V6(a)) => {
            (u128::from(ip) ^ u128::from(a)) & crate::wire::ipv6::netmask(len) == 0
        }
        _ => false,
    }
}

/// What `ip` is bound to in `list` (sorted by address); 0 when unlisted.
fn bound_to(list: &[(IpAddr, u16)], ip: IpAddr) -> u16 {
    match list.binary_search_by(|(a, _)| a.cmp(&ip)) {
        Ok(i) => list[i].1,
        Err(_) => 0,
    }
}

/// A persistence template's key: the service and the client network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TemplateKey<A> {
    vip: A,
    vport: u16,
    proto: u8,
    network: A,
}

impl<A: Family> TemplateKey<A> {
    /// The template of the connection a client packet `key` belongs to.
    fn of(key: &Key<A>, p: Persistence) -> TemplateKey<A> {
        TemplateKey {
            vip: key.dst,
            vport: key.dport,
            proto: key.proto,
            network: key.src.network(p),
        }
    }
}

/// Where a client network's connections go, until `expires_ms`.
#[derive(Debug, Clone, Copy)]
struct Template<A> {
    addr: A,
    port: u16,
    expires_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Neighbour<A> {
    mac: Option<MacAddr>,
    source: A,
    requested_ms: Option<u64>,
    /// The VLAN it is asked on: its source address's, then the one its
    /// last ARP / neighbor advertisement came on (0: untagged).
    vlan: u16,
    /// The port it is asked on: its source address's ([`port`]).
    port: u16,
}

/// A TCP/UDP packet to one of our addresses, parsed and validated.
#[derive(Debug, Clone, Copy)]
struct Parsed<A> {
    key: Key<A>,
    /// `key.hash()`.
    hash: u32,
    /// The index entry [`Engine::handle_burst`] prefetched the connection
    /// of ([`ConnTable::lookup_hinted`]), else [`NO_HINT`].
    hint: u32,
    dir: Dir,
    /// Not addressed to us: a possible NAT reply (real server → client).
    /// Anything but a known connection is the kernel's business.
    transit: bool,
    flags: TcpFlags,
    /// The TCP acknowledgment number as received (0 for UDP), before any
    /// hook (SYN proxy, PROXY protocol) shifts it: the fast path's (the
    /// full path reads the frame).
    ack: u32,
    /// TTL or hop limit.
    ttl: u8,
    /// Offset of the TCP/UDP header in the IP packet (the IPv4 header
    /// length; for IPv6 past the extension headers) and the IP packet's
    /// total length.
    hl: usize,
    tl: usize,
}

/// How a packet of a connection is rewritten.
#[derive(Debug, Clone, Copy)]
enum Action<A> {
    /// Rewrite the 5-tuple to this key, TTL − 1 (FNAT, NAT).
    Nat(Key<A>),
    /// FNAT's first ACK of a connection: as `Nat`, and insert the client's
    /// address and port as a TOA option when there is room.
    NatToa(Key<A>),
    /// MAC addresses only (DR).
    Mac,
    /// IPIP / ip6ip6 encapsulation `src → dst` (TUN).
    Tunnel { src: A, dst: A },
}

/// What the first look at a frame found.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Forwarding work: look the connection up.
    Ipv4(Parsed<Ipv4Addr>),
    /// IPv6 forwarding work.
    Ipv6(Parsed<Ipv6Addr>),
    /// ARP for us (or broadcast).
    Arp,
    /// A neighbor solicitation or advertisement.
    Nd,
    /// An ICMPv6 message to one of our IPv6 addresses (or through an
    /// SNAT match, or from a NAT real server).
    Icmp6 { dir: Dir, transit: bool },
    /// ICMP to one of our addresses (or from a NAT real server).
    Icmp { dir: Dir, transit: bool },
    /// An 802.1Q-tagged frame: untagged and classified again in
    /// [`Engine::finish_vlan`].
    Vlan,
    /// Decided already.
    Done(Verdict),
}

/// One address family's forwarding state in a worker: its connection table,
/// neighbours and persistence templates.
#[derive(Debug)]
struct Side<A: Family> {
    mac: MacAddr,
    /// Every port's MAC (index = port; `[mac]` with one port).
    macs: Vec<MacAddr>,
    /// This worker's number (its slot in the traffic counters).
    worker: usize,
    conns: ConnTable<A>,
    /// Per service of the snapshot, per server: its destination in `conns`.
    dests: Vec<Vec<DestId>>,
    neighbours: FastMap<A, Neighbour<A>>,
    /// Persistence templates (bounded by [`MAX_TEMPLATES`], reserved up
    /// front). A template lives `persistence_timeout` after the last packet
    /// a client sent on a connection it placed. Templates are per worker,
    /// like connections: a client network whose connections are spread over
    /// several workers may get one real server per worker.
    templates: Templates<A>,
    /// Bumped whenever a neighbour's MAC changes; destinations cache the
    /// server's MAC together with the generation they saw.
    neigh_gen: u32,
    /// Per-service scheduler cursor (index = service index in the snapshot).
    cursors: Vec<u64>,
    next_port: u16,
    port_min: u16,
    port_max: u16,
    /// Slots the expiry sweep has visited (paced by [`SWEEP_PERIOD_MS`]).
    swept: u128,
}

/// One worker's forwarding state.
#[derive(Debug)]
pub struct Engine {
    mac: MacAddr,
    snap: Arc<Snapshot>,
    v4: Side<Ipv4Addr>,
    v6: Side<Ipv6Addr>,
    drops: Arc<DropCounters>,
    last_refresh_ms: u64,
    last_flush_ms: u64,
    /// [`Engine::handle_burst`]'s per-frame scratch ([`PIPELINE`] long).
    stages: Vec<Stage>,
    /// SYN-proxy state ([`synproxy`]).
    sp: SynProxy,
    /// PROXY protocol state ([`proxyproto`]).
    pp: ProxyProto,
    /// The VLAN of the frame being handled (0: untagged).
    rx_vlan: u16,
    /// Neighbours' MACs → the VLAN they answered on (bounded; only filled
    /// while VLANs are configured): forwarded frames to them leave there.
    neigh_vlans: FastMap<MacAddr, u16>,
    /// Every port's MAC (index = port; `[mac]` with one port, [`port`]).
    /// `mac` is the one of the port being received from.
    macs: Vec<MacAddr>,
    /// The port of the burst being handled.
    rx_port: u16,
    /// Neighbours' MACs → the port they answered on (bounded; only filled
    /// with several ports): forwarded frames to them leave there.
    neigh_ports: FastMap<MacAddr, u16>,
}

impl Engine {
    /// The engine of worker number `worker` for a port with `mac`, holding
    /// at most `conn_capacity` IPv4 connections and as many IPv6 ones
    /// (each family has its own table, allocated up front: roughly
    /// 100-140 bytes per IPv4 and 170-200 per IPv6 connection, slot plus
    /// index), and using FNAT local ports
    /// `port_min..=port_max`. The IPv6 table is not smaller: an IPv6-only
    /// or NAT64 deployment (whose connections all live there) must get
    /// the capacity it was configured with.
    pub fn new(
        worker: usize,
        mac: MacAddr,
        conn_capacity: usize,
        ports: (u16, u16),
        drops: Arc<DropCounters>,
    ) -> Engine {
        Engine {
            mac,
            snap: Arc::default(),
            v4: Side::new(worker, mac, conn_capacity, ports),
            v6: Side::new(worker, mac, conn_capacity, ports),
            drops,
            last_refresh_ms: 0,
            last_flush_ms: 0,
            stages: vec![Stage::Done(Verdict::Ignore); PIPELINE],
            sp: SynProxy::default(),
            pp: ProxyProto::default(),
            rx_vlan: 0,
            neigh_vlans: vlan::neighbour_map(),
            macs: vec![mac],
            rx_port: 0,
            neigh_ports: FastMap::default(),
        }
    }

    /// Connections currently tracked (both families).
    pub fn conn_count(&self) -> usize {
        self.v4.conns.len() + self.v6.conns.len()
    }

    /// See [`crate::conn::ConnTable::scan`]; the IPv6 table's slots follow
    /// the IPv4 table's.
    pub fn scan_conns(
        &self,
        from: usize,
        budget: usize,
        now_ms: u64,
        out: &mut Vec<crate::conn::ConnView>,
    ) -> Option<usize> {
        let cap4 = self.v4.conns.capacity();
        if from < cap4 {
            return Some(
                self.v4
                    .conns
                    .scan(from, budget, now_ms, out)
                    .unwrap_or(cap4),
            );
        }
        let next = self.v6.conns.scan(from - cap4, budget, now_ms, out)?;
        Some(next + cap4)
    }

    /// Switches to a newly published snapshot (between bursts). Announces
    /// newly owned addresses (gratuitous ARP, unsolicited NA) and starts
    /// resolving new real servers.
    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>, now_ms: u64, ctl: &mut Burst) {
        let from = ctl.len();
        // Destinations the new snapshot drops take their counts with them.
        self.flush_stats();
        let old = std::mem::replace(&mut self.snap, snap);
        self.sp.set_snapshot(&self.snap);
        self.pp.set_snapshot(&self.snap);
        if old.addr_vlans != self.snap.addr_vlans {
            // vlan.rs: no neighbour stays on a VLAN binding that changed.
            self.revlan(&old);
        }
        self.v4.publish(&old, &self.snap, now_ms, ctl);
        self.v6.publish(&old, &self.snap, now_ms, ctl);
        self.route_ctl(ctl, from);
    }

    /// Periodic work between bursts: expire idle connections (at most
    /// `sweep_budget` table slots per family, paced to one pass per
    /// [`SWEEP_PERIOD_MS`]), refresh neighbours and, every
    /// [`STATS_FLUSH_MS`], [`Engine::flush_stats`].
    pub fn housekeeping(&mut self, now_ms: u64, sweep_budget: usize, ctl: &mut Burst) {
        let from = ctl.len();
        if now_ms.saturating_sub(self.last_flush_ms) >= STATS_FLUSH_MS {
            self.last_flush_ms = now_ms;
            self.flush_stats();
        }
        self.v4.sweep(now_ms, sweep_budget);
        self.v6.sweep(now_ms, sweep_budget);
        if now_ms.saturating_sub(self.last_refresh_ms) >= NEIGHBOUR_REFRESH_MS {
            self.last_refresh_ms = now_ms;
            if self.v4.refresh_neighbours(ctl) {
                self.v6.refresh_neighbours(ctl);
            }
        }
        self.route_ctl(ctl, from);
    }

    /// Adds the packets and bytes this worker counted since the last flush
    /// to the services' and real servers' shared [`Traffic`] counters (the
    /// hot path counts into plain per-destination counters).
    pub fn flush_stats(&mut self) {
        self.v4.conns.flush_stats();
        self.v6.conns.flush_stats();
    }

    /// Handles one received frame (of a one-port engine: see
    /// [`Engine::handle_burst_on`] for several), rewriting it in place. The frame cannot
    /// grow, so TUN packets (and untagged frames leaving on a VLAN) are
    /// dropped as `no_room`, and a frame that shrinks (NAT64 to IPv4, a
    /// tag removed) keeps stale bytes at its end: use
    /// [`Engine::handle_frame`] or [`Engine::handle_burst`] for those.
    pub fn handle(&mut self, frame: &mut [u8], now_ms: u64, ctl: &mut Burst) -> Verdict {
        let len = frame.len();
        let stage = self.classify(frame);
        self.finish(&stage, frame, len, now_ms, ctl).0
    }

    /// Handles one received frame in a frame buffer, which TUN encapsulation
    /// may lengthen (the frame's length is updated).
    pub fn handle_frame(&mut self, frame: &mut Frame, now_ms: u64, ctl: &mut Burst) -> Verdict {
        let len = frame.len();
        let stage = self.classify(frame.data());
        let (verdict, len) = self.finish(&stage, frame.buffer_mut(), len, now_ms, ctl);
        frame.set_len(len);
        verdict
    }

    /// Handles a burst of received frames and reports each frame's verdict
    /// to `out`, in order. Same results as [`Engine::handle`] per frame, but
    /// pipelined VPP style: first every frame is parsed and its index bucket
    /// prefetched, then each connection line is prefetched, then the frames
    /// are forwarded, so the cache misses of a burst overlap.
    pub fn handle_burst<F: FrameBuf>(
        &mut self,
        frames: &mut [F],
        now_ms: u64,
        ctl: &mut Burst,
        mut out: impl FnMut(&F, Verdict),
    ) {
        self.handle_burst_on(0, frames, now_ms, ctl, |f, v, _| out(f, v));
    }

    /// [`Engine::handle_burst`] of frames received on port number `port`
    /// (`port.rs`): `out` also gets the port a forwarded frame leaves on
    /// (always 0 with one port), and control frames appended to `ctl` are
    /// marked with theirs ([`Frame::port`]).
    #[inline]
    pub fn handle_burst_on<F: FrameBuf>(
        &mut self,
        port: u16,
        frames: &mut [F],
        now_ms: u64,
        ctl: &mut Burst,
        out: impl FnMut(&F, Verdict, u16),
    ) {
        if self.macs.len() > 1 {
            let from = ctl.len();
            self.receive_on(port);
            self.pipeline::<true, F>(frames, now_ms, ctl, out);
            self.route_ctl(ctl, from);
        } else {
            // One port: the same loop with the routing compiled out.
            self.pipeline::<false, F>(frames, now_ms, ctl, out);
        }
    }

    /// [`Engine::handle_burst_on`]'s pipeline; `MULTI`: several ports
    /// (each forwarded frame is routed, `port.rs`).
    #[inline(always)]
    fn pipeline<const MULTI: bool, F: FrameBuf>(
        &mut self,
        frames: &mut [F],
        now_ms: u64,
        ctl: &mut Burst,
        mut out: impl FnMut(&F, Verdict, u16),
    ) {
        for chunk in frames.chunks_mut(PIPELINE) {
            // Borrowed out of `self` (no allocation), `PIPELINE` long, so
            // each stage is written and read in place rather than copied.
            let mut taken = std::mem::take(&mut self.stages);
            let n = chunk.len().min(taken.len());
            let (stages, chunk) = (&mut taken[..n], &mut chunk[..n]);
            for i in 0..n {
                let stage = &mut stages[i];
                *stage = self.classify(chunk[i].data());
                match stage {
                    Stage::Ipv4(p) => self.v4.conns.prefetch_bucket(p.hash),
                    Stage::Ipv6(p) => self.v6.conns.prefetch_bucket(p.hash),
                    _ => {}
                }
                if let Some(back) = i.checked_sub(PREFETCH_LAG) {
                    prefetch_conn(&mut stages[back], &self.v4.conns, &self.v6.conns);
                }
            }
            let tail = n.saturating_sub(PREFETCH_LAG);
            for stage in stages.iter_mut().skip(tail) {
                prefetch_conn(stage, &self.v4.conns, &self.v6.conns);
            }
            let fast = self.fast_path_on();
            for (stage, f) in stages.iter().zip(chunk.iter_mut()) {
                let len = f.len();
                // fast.rs: a steady packet of an established connection.
                let done = match stage {
                    Stage::Ipv4(p) if fast => self.v4.fast(f.room_mut(), len, p, now_ms),
                    Stage::Ipv6(p) if fast => self.v6.fast(f.room_mut(), len, p, now_ms),
                    _ => None,
                };
                let (verdict, len) = match done {
                    Some((Verdict::Drop(reason), len)) => {
                        self.drops.count(reason);
                        (Verdict::Drop(reason), len)
                    }
                    Some(x) => x,
                    None => self.finish(stage, f.room_mut(), len, now_ms, ctl),
                };
                f.set_len(len);
                // port.rs: with several ports, where it leaves.
                let to = match verdict {
                    Verdict::Forward if MULTI => self.route(f.room_mut().get_mut(..len)),
                    _ => 0,
                };
                out(f, verdict, to);
            }
            self.stages = taken;
        }
    }

    /// First look at a frame: what it is, and for IP to us, its parsed
    /// and validated headers.
    #[inline(always)]
    fn classify(&self, frame: &[u8]) -> Stage {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Stage::Done(Verdict::Ignore);
        };
        let dst = eth.dst_addr();
        if dst == self.mac {
            return match eth.ethertype() {
                EtherType::Ipv4 => self.parse_ipv4(frame),
                EtherType::Ipv6 => self.classify_ipv6(frame, false),
                EtherType::Arp => Stage::Arp,
                EtherType::Vlan => Stage::Vlan,
                _ => Stage::Done(Verdict::Ignore),
            };
        }
        match eth.ethertype() {
            EtherType::Arp if dst.is_broadcast() => Stage::Arp,
            EtherType::Vlan if dst.is_multicast() => Stage::Vlan,
            // Solicited-node (and all-nodes) multicast: neighbor discovery.
            EtherType::Ipv6 if dst.as_bytes()[..2] == [0x33, 0x33] => {
                self.classify_ipv6(frame, true)
            }
            _ => Stage::Done(Verdict::Ignore),
        }
    }

    /// Does a classified frame's work and counts a drop. The frame is
    /// `buf[..len]`; the rest of `buf` is room to grow. Returns the verdict
    /// and the frame's new length.
    #[inline]
    fn finish(
        &mut self,
        stage: &Stage,
        buf: &mut [u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        if let Stage::Vlan = stage {
            return self.finish_vlan(buf, len, now_ms, ctl);
        }
        if !self.snap.vlan_ids.is_empty() {
            // vlan.rs: an untagged frame while VLANs are configured.
            return self.finish_untagged_on_vlans(stage, buf, len, now_ms, ctl);
        }
        self.finish_untagged(stage, buf, len, now_ms, ctl)
    }

    /// [`Engine::finish`] of an untagged frame (or a tagged one, untagged
    /// by [`Engine::finish_vlan`]), without the egress tag.
    #[inline]
    fn finish_untagged(
        &mut self,
        stage: &Stage,
        buf: &mut [u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        let len = len.min(buf.len());
        let (verdict, len) = match stage {
            // synproxy.rs: cookies, the proxied handshake, seq/ack shift;
            // proxyproto.rs: PROXY headers.
            Stage::Ipv4(p) if self.hooks_on() => match self.hooks(buf, len, p, now_ms, ctl) {
                Hooked::Done(done) => done,
                Hooked::Forward(q, len) => self.forward_v4(buf, len, &q, now_ms, ctl),
            },
            Stage::Ipv4(p) => self.forward_v4(buf, len, p, now_ms, ctl),
            Stage::Ipv6(p) if self.hooks_on() => match self.hooks(buf, len, p, now_ms, ctl) {
                Hooked::Done(done) => done,
                Hooked::Forward(q, len) => self.forward_v6(buf, len, &q, now_ms, ctl),
            },
            Stage::Ipv6(p) => self.forward_v6(buf, len, p, now_ms, ctl),
            Stage::Arp => (self.handle_arp(&mut buf[..len]), len),
            Stage::Nd => self.handle_nd(buf, len),
            &Stage::Icmp { dir, transit } => match self.icmp_error(buf, len, dir, now_ms, ctl) {
                Ok(x) => x,
                Err(_) if transit => (Verdict::Ignore, len),
                Err(reason) => (Verdict::Drop(reason), len),
            },
            &Stage::Icmp6 { dir, transit } => match self.icmp6_error(buf, len, dir, now_ms, ctl) {
                Ok(x) => x,
                Err(_) if transit => (Verdict::Ignore, len),
                Err(reason) => (Verdict::Drop(reason), len),
            },
            // Inside a tag: stacked tags are refused before this.
            Stage::Vlan => (Verdict::Drop(Drop::VlanStacked), len),
            &Stage::Done(v) => (v, len),
        };
        if let Verdict::Drop(reason) = verdict {
            self.drops.count(reason);
        }
        (verdict, len)
    }

    /// Forwards a parsed IPv6 packet (NAT64 connections share local ports
    /// with the IPv4 table).
    #[inline]
    fn forward_v6(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<Ipv6Addr>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        self.v6
            .forward(&self.snap, &self.v4.conns, buf, len, p, now_ms, ctl)
    }

    /// Forwards a parsed IPv4 packet; a reply to a NAT64 local address
    /// that no IPv4 connection knows is tried as an IPv6 connection's.
    #[inline]
    fn forward_v4(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<Ipv4Addr>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        match self
            .v4
            .forward(&self.snap, &self.v6.conns, buf, len, p, now_ms, ctl)
        {
            // A reply to a NAT64 local address: its connection is IPv6's.
            (Verdict::Drop(Drop::NoConnection), _)
                if p.dir == Dir::Out && self.snap.nat64_lips.binary_search(&p.key.dst).is_ok() =>
            {
                self.nat64_reply(buf, len, p, now_ms, ctl)
            }
            x => x,
        }
    }

    fn answers_for<A: Family>(&self, ip: A) -> bool {
        self.snap.owns_vip(ip) || self.snap.is_local(ip)
    }

    fn handle_arp(&mut self, frame: &mut [u8]) -> Verdict {
        let Some(payload) = frame.get_mut(ETH_LEN..) else {
            return Verdict::Ignore;
        };
        let Ok(mut arp) = ArpPacket::new_checked(payload) else {
            return Verdict::Ignore;
        };
        let Ok(req) = ArpRepr::parse(&arp) else {
            return Verdict::Ignore;
        };
        let (ip, mac) = (req.source_protocol_addr, req.source_hardware_addr);
        let known = self.v4.learn(ip, mac, self.rx_vlan);
        // A NAT64 real server (mapped on the IPv6 side) answers ARP too.
        let known = self.v6.learn(ip.to_ipv6_mapped(), mac, self.rx_vlan) || known;
        self.learn_vlan(known, mac);
        self.learn_port(known, mac);
        if req.operation != ArpOperation::Request
            || !self.answers_for(req.target_protocol_addr)
            || !self.on_rx_link(req.target_protocol_addr)
            || req.source_protocol_addr == req.target_protocol_addr
        {
            return Verdict::Ignore;
        }
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.mac,
            source_protocol_addr: req.target_protocol_addr,
            target_hardware_addr: req.source_hardware_addr,
            target_protocol_addr: req.source_protocol_addr,
        };
        reply.emit(&mut arp);
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        eth.set_dst_addr(req.source_hardware_addr);
        eth.set_src_addr(self.mac);
        Verdict::Forward
    }

    /// An IPv4 frame's stage: `Ipv4` for a TCP/UDP packet for us (parsed
    /// and validated), `Icmp` for ICMP, else the verdict (built in place:
    /// no intermediate `Result` of a `Parsed` to copy).
    #[inline(always)]
    fn parse_ipv4(&self, frame: &[u8]) -> Stage {
        let Some(l3) = frame.get(ETH_LEN..) else {
            return Stage::Done(Verdict::Ignore);
        };
        // Only packets to our own addresses (or NAT replies) are ours; peek
        // before validating.
        let (Some(src), Some(dst)) = (peek_ipv4(l3, 12), peek_ipv4(l3, 16)) else {
            return Stage::Done(Verdict::Ignore);
        };
        let Some((dir, transit)) = self.direction(src, dst) else {
            return Stage::Done(Verdict::Ignore);
        };
        if let Some(p) = parse_tcp_fast(l3, dir, transit) {
            return Stage::Ipv4(p);
        }
        if l3.get(9) == Some(&u8::from(IpProtocol::Icmp)) {
            return Stage::Icmp { dir, transit };
        }
        match parse_l4(l3, dir, transit) {
            Ok(p) => Stage::Ipv4(p),
            // A real server's own traffic through us (fragments, …).
            Err(_) if transit => Stage::Done(Verdict::Ignore),
            Err(d) => Stage::Done(Verdict::Drop(d)),
        }
    }

    /// Which side a packet `src → dst` comes from: `(dir, transit)`, or
    /// `None` when it is none of ours.
    #[inline]
    fn direction<A: Family>(&self, src: A, dst: A) -> Option<(Dir, bool)> {
        if self.snap.owns_vip(dst) {
            Some((Dir::In, false))
        } else if self.snap.is_local(dst) {
            Some((Dir::Out, false))
        } else if self.snap.is_nat_server(src) {
            Some((Dir::Out, true))
        } else if snat::candidate(A::snat_rules(&self.snap), src, dst) {
            // snat.rs: an inside host's packet to the outside, maybe.
            Some((Dir::In, true))
        } else {
            None
        }
    }

    /// An ICMP error (e.g. fragmentation needed) quoting a packet of a
    /// tracked connection, from either side: forwarded to the other side
    /// with the outer and the quoted headers translated as the
    /// connection's packets are (as LVS's `ip_vs_nat_icmp`). DR and TUN
    /// forward errors from the client side untouched (MAC rewrite, IPIP).
    /// Returns the verdict and the frame's new length.
    fn icmp_error(
        &mut self,
        buf: &mut [u8],
        len: usize,
        dir: Dir,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Verdict, usize), Drop> {
        let l3 = buf.get(ETH_LEN..len).ok_or(Drop::Truncated)?;
        let ip = Ipv4Packet::new_checked(l3).map_err(wire_drop)?;
        if !ip.verify_checksum() {
            return Err(Drop::BadChecksum);
        }
        if ip.is_fragment() {
            return Err(Drop::Fragment);
        }
        let (hl, tl, ttl, sender) = (
            ip.header_len(),
            usize::from(ip.total_len()),
            ip.ttl(),
            ip.src_addr(),
        );
        let icmp = Icmpv4Packet::new_checked(ip.payload()).map_err(wire_drop)?;
        if !icmp.is_error() {
            // snat.rs: echo through a match service.
            let ip = (sender, ip.dst_addr(), ttl);
            return self.snat_echo(buf, len, dir, ip, (hl, tl), now_ms, ctl);
        }
        if !icmp.verify_checksum() {
            return Err(Drop::BadChecksum);
        }
        let q = Quote::parse(icmp.payload()).map_err(wire_drop)?;
        if q.protocol != 6 && q.protocol != 17 {
            return Err(Drop::IcmpUnhandled);
        }
        let quoted = FlowKey {
            proto: q.protocol,
            src: q.src,
            dst: q.dst,
            sport: q.src_port,
            dport: q.dst_port,
        };
        let msg = (icmp.msg_type(), icmp.code(), icmp.rest());
        let found = match self.v4.quoted_conn(&quoted, dir, ttl, now_ms) {
            // nat64.rs: about a packet of a NAT64 connection (IPv6 client).
            Err(Drop::NoConnection)
                if dir == Dir::Out && self.snap.nat64_lips.binary_search(&quoted.src).is_ok() =>
            {
                let e = nat64::Icmp4Error { hl, tl, ttl, msg };
                return self.nat64_icmp4(buf, e, &q, &quoted, now_ms);
            }
            found => found?,
        };
        self.v4.icmp_onward(
            found,
            (dir, sender),
            (buf, len, tl),
            now_ms,
            ctl,
            |buf, outer, new| {
                let l3 = &mut buf[ETH_LEN..len];
                translate_icmp(l3, (hl, tl), outer, &q, &quoted, new);
            },
        )
    }
}

/// [`Engine::handle_burst`]'s second stage for a classified frame: start
/// loading its connection line (its index bucket was prefetched) and keep
/// the entry as the lookup's hint.
#[inline(always)]
fn prefetch_conn(stage: &mut Stage, v4: &ConnTable<Ipv4Addr>, v6: &ConnTable<Ipv6Addr>) {
    match stage {
        Stage::Ipv4(p) => p.hint = v4.prefetch_conn(p.hash),
        Stage::Ipv6(p) => p.hint = v6.prefetch_conn(p.hash),
        _ => {}
    }
}

/// After NAT64 changed the frame's IP packet to `l3_len` bytes of another
/// version: the EtherType that goes with it, and the frame's new length.
fn translated(buf: &mut [u8], l3_len: usize) -> usize {
    let ethertype = match buf.get(ETH_LEN).map(|b| b >> 4) {
        Some(4) => EtherType::Ipv4,
        _ => EtherType::Ipv6,
    };
    EthernetFrame::new_unchecked(&mut *buf).set_ethertype(ethertype);
    ETH_LEN + l3_len
}

/// The sweep slots due at `now_ms` for a table of `cap` slots of which
/// `swept` were visited: one pass per [`SWEEP_PERIOD_MS`], falling at most
/// one pass behind, at most `budget` a call.
fn sweep_due(cap: usize, now_ms: u64, swept: &mut u128, budget: usize) -> usize {
    let cap = cap as u128;
    let target = cap * u128::from(now_ms) / u128::from(SWEEP_PERIOD_MS);
    let lag = target.saturating_sub(*swept).min(cap);
    let due = lag.min(budget as u128);
    *swept = target - lag + due;
    due as usize
}

impl<A: Family> Side<A> {
    fn new(
        worker: usize,
        mac: MacAddr,
        conn_capacity: usize,
        (port_min, port_max): (u16, u16),
    ) -> Side<A> {
        let (port_min, port_max) = (port_min.max(1), port_max.max(port_min.max(1)));
        let mut neighbours = FastMap::default();
        neighbours.reserve(MAX_NEIGHBOURS);
        Side {
            mac,
            macs: vec![mac],
            worker,
            conns: ConnTable::new(conn_capacity, worker),
            dests: Vec::new(),
            neighbours,
            templates: Templates::new(),
            neigh_gen: 0,
            cursors: Vec::new(),
            next_port: port_min,
            port_min,
            port_max,
            swept: 0,
        }
    }

    /// Takes this family's part of a new snapshot `snap` (replacing `old`).
    fn publish(&mut self, old: &Snapshot, snap: &Snapshot, now_ms: u64, ctl: &mut Burst) {
        self.dests = self.conns.publish(snap, self.neigh_gen);
        self.cursors.clear();
        self.cursors.resize(A::services(snap).len(), 0);
        for &ip in A::owned_vips(snap).iter().chain(A::local_addrs(snap)) {
            let mac = self.port_mac(snap.port_of(ip));
            if !old.owns_vip(ip) && !old.is_local(ip) && A::announce(ctl, mac, ip) {
                vlan::tag_last(ctl, snap.vlan_of(ip));
            }
        }
        for &(ip, source) in A::neighbours(snap) {
            if self.neighbours.len() >= MAX_NEIGHBOURS && !self.neighbours.contains_key(&ip) {
                continue;
            }
            let (vlan, port) = (snap.vlan_of(source), snap.port_of(source));
            let n = self.neighbours.entry(ip).or_insert(Neighbour {
                mac: None,
                source,
                requested_ms: None,
                vlan,
                port,
            });
            if n.source != source {
                n.vlan = vlan;
            }
            n.source = source;
            n.port = port;
            if n.mac.is_none() {
                n.requested_ms = Some(now_ms);
                let mac = self
                    .macs
                    .get(usize::from(port))
                    .copied()
                    .unwrap_or(self.mac);
                vlan::solicit(ctl, mac, source, ip, n.vlan);
            }
        }
    }

    fn sweep(&mut self, now_ms: u64, budget: usize) {
        let due = sweep_due(self.conns.capacity(), now_ms, &mut self.swept, budget);
        self.conns.sweep(now_ms, due);
    }

    /// Asks every known neighbour again; false when `ctl` filled up.
    fn refresh_neighbours(&self, ctl: &mut Burst) -> bool {
        for (&ip, n) in &self.neighbours {
            if !vlan::solicit(ctl, self.port_mac(n.port), n.source, ip, n.vlan) {
                return false;
            }
        }
        true
    }

    /// `ip` is at `mac` on `vlan` (from an ARP packet or a neighbor
    /// advertisement). Only neighbours we asked about are learnt: strangers
    /// cannot fill the table. True when `ip` is such a neighbour.
    fn learn(&mut self, ip: A, mac: MacAddr, vlan: u16) -> bool {
        let Some(n) = self.neighbours.get_mut(&ip) else {
            return false;
        };
        if !mac.is_multicast() && n.mac != Some(mac) {
            n.mac = Some(mac);
            self.neigh_gen = self.neigh_gen.wrapping_add(1);
        }
        n.vlan = vlan;
        true
    }

    /// Forwards a parsed packet (the frame is `buf[..len]`): connection
    /// lookup (or creation), rewrite. Returns the frame's new length.
    /// `peer` is the other family's table: NAT64 connections use IPv4
    /// local addresses too, so their local ports come from one space.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        snap: &Snapshot,
        peer: &ConnTable<A::Peer>,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        // Each outcome is applied where it is made (not merged into one
        // value first), so an established packet's rewrite stays in
        // registers instead of going through a stack copy.
        match p.dir {
            Dir::In => match self.forward_in(p, buf, len, now_ms, ctl) {
                Some(res) => self.apply(buf, len, p, res),
                None => {
                    let client_mac = EthernetFrame::new_unchecked(&buf[..len]).src_addr();
                    // A UDP packet's payload (QUIC services look into it).
                    let payload = match p.key.proto {
                        17 => buf.get(ETH_LEN + p.hl + 8..ETH_LEN + p.tl).unwrap_or(&[]),
                        _ => &[],
                    };
                    let res = if p.transit {
                        // snat.rs: not to a VIP, so an SNAT match's.
                        self.snat_open(snap, peer, p, client_mac, len, now_ms, ctl)
                    } else {
                        self.open(snap, peer, p, client_mac, payload, len, now_ms, ctl)
                    };
                    self.apply(buf, len, p, res)
                }
            },
            Dir::Out => {
                let res = self.forward_out(p, buf, len, now_ms);
                self.apply(buf, len, p, res)
            }
        }
    }

    /// Rewrites the frame `buf[..len]` of packet `p` as `res` says (or
    /// drops it). Returns the verdict and the frame's new length.
    #[inline(always)]
    fn apply(
        &self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        res: Result<(Action<A>, MacAddr), Drop>,
    ) -> (Verdict, usize) {
        let (action, dst_mac) = match res {
            Ok(x) => x,
            // snat.rs: a packet an SNAT match took (a new flow's or a
            // tracked one's) that cannot be sent is ours to count.
            Err(reason) if p.transit && !(p.dir == Dir::In && snat::taken(reason)) => {
                return (Verdict::Ignore, len)
            }
            Err(reason) => return (Verdict::Drop(reason), len),
        };
        let len = match action {
            Action::Nat(new) => match A::rewrite(&mut buf[ETH_LEN..], p.hl, p.tl, &p.key, new) {
                Ok(None) => len,
                Ok(Some(n)) => translated(buf, n),
                Err(reason) => return (Verdict::Drop(reason), len),
            },
            Action::NatToa(new) => {
                match A::rewrite(&mut buf[ETH_LEN..], p.hl, p.tl, &p.key, new) {
                    Ok(None) => {
                        let client = (p.key.src, p.key.sport);
                        A::insert_toa(buf, p.hl, p.tl, client).unwrap_or(len)
                    }
                    // NAT64: the IPv4 segment carries the IPv6 TOA (v6.rs).
                    Ok(Some(n)) => {
                        let len = translated(buf, n);
                        A::insert_toa64(buf, n, (p.key.src, p.key.sport)).unwrap_or(len)
                    }
                    Err(reason) => return (Verdict::Drop(reason), len),
                }
            }
            Action::Mac => len,
            Action::Tunnel { src, dst } => match A::encapsulate(buf, p.tl, src, dst) {
                Ok(n) => n,
                Err(reason) => return (Verdict::Drop(reason), len),
            },
        };
        self.send(buf, len, dst_mac)
    }

    /// Addresses the rewritten frame `buf[..len]` from us to `dst_mac`
    /// and forwards it.
    #[inline(always)]
    fn send(&self, buf: &mut [u8], len: usize, dst_mac: MacAddr) -> (Verdict, usize) {
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..len]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(dst_mac);
        (Verdict::Forward, len)
    }

    /// Client → VIP of an existing connection (frame `buf[..len]`):
    /// returns the rewrite towards the real server and the real server's
    /// MAC; `None` when a new connection must be opened (none found, or
    /// the client reuses the port of a closing one).
    #[inline(always)]
    fn forward_in(
        &mut self,
        p: &Parsed<A>,
        buf: &[u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Option<Result<(Action<A>, MacAddr), Drop>> {
        let (idx, dir) = self.conns.lookup_hinted(&p.key, p.hash, p.hint, now_ms)?;
        self.established_in(idx, dir, p, buf, len, now_ms, ctl)
    }

    /// [`Side::forward_in`] of connection `idx`, found in direction `dir`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn established_in(
        &mut self,
        idx: ConnIdx,
        dir: Dir,
        p: &Parsed<A>,
        buf: &[u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Option<Result<(Action<A>, MacAddr), Drop>> {
        if dir != Dir::In {
            return Some(Err(Drop::NoConnection));
        }
        let Some(conn) = self.conns.get(idx) else {
            return Some(Err(Drop::NoConnection));
        };
        if p.flags.syn() && !p.flags.ack() && conn.tcp.is_closing() {
            // The client reuses its port after closing: a new connection,
            // scheduled afresh (IPVS's conn_reuse_mode).
            self.conns.remove(idx);
            return None;
        }
        Some(self.rewrite_in(idx, p, buf, len, now_ms, ctl))
    }

    /// `expire_quiescent_conn` (DPVS): a connection whose server is
    /// quiescent or gone is expired by its next packet, which is dropped.
    #[inline(always)]
    fn expire_quiescent(&mut self, idx: ConnIdx, dest: DestId) -> Result<(), Drop> {
        if self.conns.dest(dest).is_some_and(|d| d.expire_quiescent) {
            self.conns.remove(idx);
            return Err(Drop::QuiescentExpired);
        }
        Ok(())
    }

    /// The rewrite of a client packet (frame `buf[..len]`) of established
    /// connection `idx`.
    #[inline(always)]
    fn rewrite_in(
        &mut self,
        idx: ConnIdx,
        p: &Parsed<A>,
        buf: &[u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Action<A>, MacAddr), Drop> {
        let dest = self.conns.get(idx).ok_or(Drop::NoConnection)?.dest;
        // One look at the destination for everything the packet needs.
        let d = self.conns.dest(dest).ok_or(Drop::NoRealServer)?;
        let (cached, mode, tunnel_src, toa, persistence) = (
            d.neigh_gen == self.neigh_gen,
            d.forwarding,
            d.tunnel_src,
            d.toa,
            d.persistence,
        );
        if d.expire_quiescent {
            // expire_quiescent_conn: the server is quiescent or gone.
            self.conns.remove(idx);
            return Err(Drop::QuiescentExpired);
        }
        let (mac, server) = (d.mac, (d.addr, d.port));
        let mac = if cached {
            mac
        } else {
            self.dest_mac(dest, now_ms, ctl)?
        };
        check_ttl(mode, p.ttl)?;
        let conn = self
            .conns
            .touch(idx, Dir::In, p.flags, now_ms)
            .ok_or(Drop::NoConnection)?;
        let action = match action_in(mode, &conn.out_key, tunnel_src)? {
            Action::Nat(k) if toa && conn.wants_toa(tcp_ack(buf, p.hl), p.flags) => {
                Action::NatToa(k)
            }
            a => a,
        };
        if let Some(per) = persistence {
            let in_key = conn.in_key;
            self.templates
                .refresh(&in_key, per, server.0, server.1, now_ms);
        }
        if let Some(d) = self.conns.dest_mut(dest) {
            d.pending.count_in(len);
        }
        Ok((action, mac))
    }

    /// A new connection for a client packet no connection knows (`peer`:
    /// see [`Side::forward`]; `payload`: a UDP packet's payload, else
    /// empty).
    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        snap: &Snapshot,
        peer: &ConnTable<A::Peer>,
        p: &Parsed<A>,
        client_mac: MacAddr,
        payload: &[u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Action<A>, MacAddr), Drop> {
        let key = &p.key;
        let svc_idx = *A::lookup(snap)
            .get(&(key.dst, key.dport, key.proto))
            .ok_or(Drop::NoService)?;
        let f = p.flags;
        self.may_open(snap, p, svc_idx)?;
        let svc = A::services(snap).get(svc_idx).ok_or(Drop::NoService)?;
        let persistence = A::persistence_of(snap, svc_idx);
        let quic = A::quic_of(snap, svc_idx);
        let placed = match persistence {
            // A live template of the client's network decides, as long as
            // its server is still in the service (even quiescent, as LVS).
            Some(p) => self
                .templates
                .get(&TemplateKey::of(key, p))
                .filter(|t| t.expires_ms > now_ms)
                .and_then(|t| {
                    svc.servers
                        .iter()
                        .position(|s| s.addr == t.addr && s.port == t.port)
                }),
            // quic.rs: a migrating QUIC connection's ID names its server
            // (any server still in the service, as DPVS).
            None if quic.migrate => quic::server_hint(payload).and_then(|h| {
                svc.servers
                    .iter()
                    .position(|s| h.names(s.addr.into(), s.port))
            }),
            None => None,
        };
        let rs_idx = match placed {
            Some(i) => i,
            None => {
                let cid = quic.cid_hash.then(|| quic::gquic_cid(payload)).flatten();
                let hash = match cid {
                    Some(cid) => quic::cid_hash(cid),
                    None => A::flow_hash(&svc.table, key.src, key.dst),
                };
                self.pick_server(snap, svc, svc_idx, hash)?
            }
        };
        let dest = self.dest_id(svc_idx, rs_idx)?;
        let mac = self.dest_mac(dest, now_ms, ctl)?;
        let d = self.conns.dest(dest).ok_or(Drop::NoRealServer)?;
        let (mode, tunnel_src, aging, toa) = (d.forwarding, d.tunnel_src, d.aging, d.toa);
        check_ttl(mode, p.ttl)?;
        let rs = svc.servers.get(rs_idx).ok_or(Drop::NoRealServer)?;
        let (out_key, out_hash) = if mode == Forwarding::Fnat {
            alloc_local(
                &mut self.next_port,
                (self.port_min, self.port_max),
                &self.conns,
                &svc.local_addrs,
                rs,
                key.proto,
                |k| A::peer_holds(snap, peer, k),
            )
            .ok_or(Drop::NoLocalPort)?
        } else {
            // The real server sees (or, DR/TUN, would see) the client itself.
            let out_key = Key {
                proto: key.proto,
                src: rs.addr,
                dst: key.src,
                sport: rs.port,
                dport: key.sport,
            };
            let out_hash = out_key.hash();
            if self.conns.contains_hashed(&out_key, out_hash) {
                return Err(Drop::ConnConflict);
            }
            (out_key, out_hash)
        };
        let conn = Conn::open(*key, out_key, client_mac, dest, aging, f, now_ms);
        let action = match action_in(mode, &out_key, tunnel_src)? {
            // The client's SYN (the only TCP packet opening a connection).
            Action::Nat(k) if toa && conn.wants_toa(0, f) => Action::NatToa(k),
            a => a,
        };
        self.conns
            .insert_hashed(conn, p.hash, out_hash)
            .ok_or(Drop::ConnTableFull)?;
        if let Some(p) = persistence {
            // No room for a template: the client is simply not persistent.
            let _ = self.templates.refresh(key, p, rs.addr, rs.port, now_ms);
        }
        self.count_opened(dest, len);
        if mode == Forwarding::Fnat && svc.table.is_cycle() {
            self.prefetch_next_local(svc, svc_idx, key.proto);
        }
        Ok((action, mac))
    }

    /// Counts a new connection of `dest` and its first packet (`len`
    /// bytes) for the service and the server.
    fn count_opened(&self, dest: DestId, len: usize) {
        if let Some(d) = self.conns.dest(dest) {
            let w = self.worker;
            d.service.count_conn(w);
            d.server.count_conn(w);
            d.service.count_in(w, len);
            d.server.count_in(w, len);
        }
    }

    /// The destination (service number `svc_idx`, its server `rs_idx`)
    /// of this worker's table.
    fn dest_id(&self, svc_idx: usize, rs_idx: usize) -> Result<DestId, Drop> {
        self.dests
            .get(svc_idx)
            .and_then(|d| d.get(rs_idx))
            .copied()
            .ok_or(Drop::NoRealServer)
    }

    /// What any packet opening a connection of service number `svc_idx`
    /// must pass: a TCP one is a SYN, the service's access list
    /// ([`crate::acl`]) admits the client, the table has room.
    fn may_open(&self, snap: &Snapshot, p: &Parsed<A>, svc_idx: usize) -> Result<(), Drop> {
        let f = p.flags;
        if p.key.proto == 6 && !f.syn_only() {
            return Err(Drop::NoConnection);
        }
        if let Some(acl) = A::acl_of(snap, svc_idx) {
            A::admit(acl, p.key.src)?;
        }
        if self.conns.len() >= self.conns.capacity() {
            return Err(Drop::ConnTableFull);
        }
        Ok(())
    }

    /// The server (index into `svc.servers`) a new connection of service
    /// number `svc_idx` goes to when no template places it: `lc`/`wlc`
    /// from the servers' live counts ([`least`]), else the table's pick
    /// with this worker's cursor and the flow's `hash`; overloaded servers
    /// are skipped or refused ([`threshold`]).
    fn pick_server(
        &mut self,
        snap: &Snapshot,
        svc: &ServiceSnap<A>,
        svc_idx: usize,
        hash: u32,
    ) -> Result<usize, Drop> {
        let limits = A::limits_of(snap, svc_idx);
        if let Some((weights, weighted)) = svc.table.least() {
            return least::pick(weights, weighted, &svc.servers, limits);
        }
        let cursor = self.cursors.get_mut(svc_idx).ok_or(Drop::NoService)?;
        if let Some(limits) = limits {
            return threshold::pick(&svc.table, cursor, hash, limits, &svc.servers);
        }
        let i = svc.table.pick(*cursor, hash).ok_or(Drop::NoRealServer)? as usize;
        *cursor = svc.table.advance(*cursor);
        Ok(i)
    }

    /// Starts loading the index bucket that FNAT connection number
    /// [`LOCAL_PREFETCH_AHEAD`] from now of service `svc` (number
    /// `svc_idx`, a cycle scheduler: rr, wrr, fo) will most likely probe:
    /// the reply key of the cycle's server that many picks on, on the local
    /// port that many ports on. That probe is the one cache miss of opening
    /// a connection nothing else prefetches (the client's key was
    /// prefetched with its burst); one connection's work is shorter than a
    /// miss (a TLB miss too, under a VM), so the load starts several
    /// connections ahead and each open finds its bucket arrived. A wrong
    /// guess (another service, a hashing scheduler, an overloaded server, a
    /// port in use) only wastes the prefetch.
    #[inline]
    fn prefetch_next_local(&self, svc: &ServiceSnap<A>, svc_idx: usize, proto: u8) {
        let Some(&cursor) = self.cursors.get(svc_idx) else {
            return;
        };
        let ahead = LOCAL_PREFETCH_AHEAD - 1;
        let next = svc.table.pick(cursor.wrapping_add(ahead as u64), 0);
        let Some(rs) = next.and_then(|i| svc.servers.get(i as usize)) else {
            return;
        };
        let port = port_after(self.next_port, ahead, (self.port_min, self.port_max));
        if let Some(k) = local_key(port, &svc.local_addrs, rs, proto, 0) {
            self.conns.prefetch_bucket(k.hash());
        }
    }

    /// Real server → LIP (FNAT) or → client (NAT): the reply (frame
    /// `buf[..len]`) goes back as VIP → client.
    #[inline(always)]
    fn forward_out(
        &mut self,
        p: &Parsed<A>,
        buf: &mut [u8],
        len: usize,
        now_ms: u64,
    ) -> Result<(Action<A>, MacAddr), Drop> {
        let (idx, dir) = self
            .conns
            .lookup_hinted(&p.key, p.hash, p.hint, now_ms)
            .ok_or(Drop::NoConnection)?;
        if dir != Dir::Out {
            return Err(Drop::NoConnection);
        }
        let dest = self.conns.get(idx).ok_or(Drop::NoConnection)?.dest;
        let d = self.conns.dest(dest).ok_or(Drop::NoConnection)?;
        let (mode, toa) = (d.forwarding, d.toa);
        if !mode.has_reply_path() {
            // DR/TUN connections are not reachable by replies.
            return Err(Drop::NoConnection);
        }
        self.expire_quiescent(idx, dest)?;
        check_ttl(mode, p.ttl)?;
        let conn = self
            .conns
            .touch(idx, Dir::Out, p.flags, now_ms)
            .ok_or(Drop::NoConnection)?;
        let back = conn.in_key.reversed();
        let mac = conn.client_mac;
        if toa && p.flags.syn() && p.flags.ack() {
            self.toa_synack(idx, p, buf);
        }
        if let Some(d) = self.conns.dest_mut(dest) {
            d.pending.count_out(len);
        }
        Ok((Action::Nat(back), mac))
    }

    /// The real server's SYN-ACK `p` (frame `buf`) of connection `idx`,
    /// whose client segments carry TOA, as DPVS's `tcp_fnat_out_handler`
    /// treats it: its sequence number is recorded ([`Conn::fdata_seq`],
    /// which picks the client segments that get a TOA), and its MSS option
    /// is lowered by the length of the TOA the client's side needs
    /// ([`Family::TOA_LEN`]: NAT64 connections, in the IPv6 table, insert
    /// the IPv6 option) so that the client's full-size segments still fit
    /// the path with the option added.
    #[cold]
    #[inline(never)]
    fn toa_synack(&mut self, idx: ConnIdx, p: &Parsed<A>, buf: &mut [u8]) {
        let Some(l4) = buf.get_mut(ETH_LEN + p.hl..ETH_LEN + p.tl) else {
            return;
        };
        let Some(seq) = l4.get(4..8).map(synproxy::be32) else {
            return;
        };
        let _ = self.conns.record_synack(idx, seq);
        lower_mss(l4, A::TOA_LEN as u16);
    }

    /// The connection an ICMP error from side `dir` (outer TTL or hop
    /// limit `ttl`) is about, by the 5-tuple `quoted` of the packet it
    /// quotes, with its forwarding method and tunnel source.
    fn quoted_conn(
        &mut self,
        quoted: &Key<A>,
        dir: Dir,
        ttl: u8,
        now_ms: u64,
    ) -> Result<(Conn<A>, Forwarding, Option<A>), Drop> {
        // The quoted packet went the other way: its reverse is the key of
        // the direction the error comes from.
        let key = quoted.reversed();
        let (idx, found) = self
            .conns
            .lookup_hashed(&key, key.hash(), now_ms)
            .ok_or(Drop::NoConnection)?;
        if found != dir {
            return Err(Drop::NoConnection);
        }
        let conn = *self.conns.get(idx).ok_or(Drop::NoConnection)?;
        let d = self.conns.dest(conn.dest).ok_or(Drop::NoConnection)?;
        let (mode, tunnel_src) = (d.forwarding, d.tunnel_src);
        check_ttl(mode, ttl)?;
        Ok((conn, mode, tunnel_src))
    }

    /// Sends on an ICMP error from side `dir` (outer source `sender`)
    /// about connection `conn` (found by [`Side::quoted_conn`], with its
    /// forwarding method and tunnel source), as LVS's `ip_vs_nat_icmp`:
    /// FNAT and NAT translate it with `translate(buf, (src, dst), key)`
    /// (outer addresses, the quoted packet's new 5-tuple): to the real
    /// server about what it sent (the reply key; from the LIP for FNAT, from
    /// the sender for NAT), or to the client about what it sent (client →
    /// VIP, from the VIP). DR and TUN pass client-side errors on untouched
    /// (MAC rewrite, encapsulation). The frame is `buf[..len]`, its IP
    /// packet `tl` long. Returns the verdict and the frame's new length.
    #[allow(clippy::type_complexity)]
    fn icmp_onward(
        &mut self,
        (conn, mode, tunnel_src): (Conn<A>, Forwarding, Option<A>),
        (dir, sender): (Dir, A),
        (buf, len, tl): (&mut [u8], usize, usize),
        now_ms: u64,
        ctl: &mut Burst,
        translate: impl FnOnce(&mut [u8], (A, A), &Key<A>),
    ) -> Result<(Verdict, usize), Drop> {
        let (len, mac) = match (dir, mode) {
            (Dir::In, Forwarding::Fnat | Forwarding::Nat | Forwarding::Snat) => {
                let mac = self.dest_mac(conn.dest, now_ms, ctl)?;
                let src = if mode == Forwarding::Nat {
                    sender
                } else {
                    conn.out_key.dst
                };
                translate(buf, (src, conn.out_key.src), &conn.out_key);
                (len, mac)
            }
            (Dir::In, Forwarding::Dr) => (len, self.dest_mac(conn.dest, now_ms, ctl)?),
            (Dir::In, Forwarding::Tun) => {
                let mac = self.dest_mac(conn.dest, now_ms, ctl)?;
                let src = tunnel_src.ok_or(Drop::NoTunnelSource)?;
                (A::encapsulate(buf, tl, src, conn.out_key.src)?, mac)
            }
            (Dir::Out, Forwarding::Fnat | Forwarding::Nat) => {
                let outer = (conn.in_key.dst, conn.in_key.src);
                translate(buf, outer, &conn.in_key);
                (len, conn.client_mac)
            }
            // snat.rs: the sender (a router, the outside host) stays.
            (Dir::Out, Forwarding::Snat) => {
                translate(buf, (sender, conn.in_key.src), &conn.in_key);
                (len, conn.client_mac)
            }
            (Dir::Out, Forwarding::Dr | Forwarding::Tun) => return Err(Drop::NoConnection),
        };
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..len]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(mac);
        Ok((Verdict::Forward, len))
    }

    /// The MAC of a destination's server: cached while no neighbour
    /// changed, else resolved (and cached again).
    #[inline(always)]
    fn dest_mac(&mut self, dest: DestId, now_ms: u64, ctl: &mut Burst) -> Result<MacAddr, Drop> {
        let gen = self.neigh_gen;
        let d = self.conns.dest(dest).ok_or(Drop::NoRealServer)?;
        if d.neigh_gen == gen {
            return Ok(d.mac);
        }
        let addr = d.next_hop;
        let mac = self.resolve(addr, now_ms, ctl)?;
        if let Some(d) = self.conns.dest_mut(dest) {
            d.mac = mac;
            d.neigh_gen = gen;
        }
        Ok(mac)
    }

    /// The MAC of `ip`, or a (rate-limited) ARP request / neighbor
    /// solicitation and `NeighbourUnresolved`.
    fn resolve(&mut self, ip: A, now_ms: u64, ctl: &mut Burst) -> Result<MacAddr, Drop> {
        let Some(n) = self.neighbours.get_mut(&ip) else {
            return Err(Drop::NeighbourUnresolved);
        };
        if let Some(mac) = n.mac {
            return Ok(mac);
        }
        let due = n
            .requested_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= ARP_RETRY_MS);
        if due {
            n.requested_ms = Some(now_ms);
            let mac = self
                .macs
                .get(usize::from(n.port))
                .copied()
                .unwrap_or(self.mac);
            vlan::solicit(ctl, mac, n.source, ip, n.vlan);
        }
        Err(Drop::NeighbourUnresolved)
    }
}

/// A worker's persistence templates of one family: at most
/// [`MAX_TEMPLATES`] (reserved up front). When full, expired templates are
/// purged; the purge (a walk over the whole table) runs only once some
/// template may have expired, so a full table of live templates costs a
/// new client one failed lookup, not a scan.
#[derive(Debug)]
struct Templates<A> {
    map: FastMap<TemplateKey<A>, Template<A>>,
    /// No template expires before this (a lower bound of the earliest
    /// `expires_ms`).
    purge_at_ms: u64,
}

impl<A: Family> Templates<A> {
    fn new() -> Templates<A> {
        let mut map = FastMap::default();
        map.reserve(MAX_TEMPLATES);
        Templates {
            map,
            purge_at_ms: u64::MAX,
        }
    }

    fn get(&self, tk: &TemplateKey<A>) -> Option<&Template<A>> {
        self.map.get(tk)
    }

    /// Points the template of client packet `key`'s network at `addr:port`
    /// and pushes its expiry to `now_ms` + the persistence timeout. When the
    /// table is full, expired templates are purged first; false when there
    /// is still no room (the client is then scheduled without a template).
    fn refresh(&mut self, key: &Key<A>, p: Persistence, addr: A, port: u16, now_ms: u64) -> bool {
        let tk = TemplateKey::of(key, p);
        let expires_ms = now_ms.saturating_add(u64::from(p.timeout_s) * 1000);
        let fresh = Template {
            addr,
            port,
            expires_ms,
        };
        if let Some(t) = self.map.get_mut(&tk) {
            if t.expires_ms <= now_ms || (t.addr, t.port) == (addr, port) {
                *t = fresh;
                // A shorter timeout (the service changed) moves it earlier.
                self.purge_at_ms = self.purge_at_ms.min(expires_ms);
            }
            return true;
        }
        if self.map.len() >= MAX_TEMPLATES {
            if now_ms < self.purge_at_ms {
                return false;
            }
            let mut earliest = u64::MAX;
            self.map.retain(|_, t| {
                let live = t.expires_ms > now_ms;
                if live {
                    earliest = earliest.min(t.expires_ms);
                }
                live
            });
            self.purge_at_ms = earliest;
            if self.map.len() >= MAX_TEMPLATES {
                return false;
            }
        }
        self.map.insert(tk, fresh);
        self.purge_at_ms = self.purge_at_ms.min(expires_ms);
        true
    }
}

/// Picks a free (LIP, port) for a new connection to `rs`, advancing the
/// worker's port cursor `next` through `min..=max`: free when no
/// connection in `conns` has that reply key and `held` (the other
/// family's connections on a shared local address, NAT64) says no.
/// Returns the reply key and its hash.
fn alloc_local<A: Family>(
    next: &mut u16,
    (min, max): (u16, u16),
    conns: &ConnTable<A>,
    local_addrs: &[A],
    rs: &ServerSnap<A>,
    proto: u8,
    held: impl Fn(&Key<A>) -> bool,
) -> Option<(Key<A>, u32)> {
    if local_addrs.is_empty() {
        return None;
    }
    for probe in 0..PORT_PROBES {
        let port = *next;
        *next = if port >= max { min } else { port + 1 };
        let key = local_key(port, local_addrs, rs, proto, probe)?;
        let h = key.hash();
        if !conns.contains_hashed(&key, h) && !held(&key) {
            return Some((key, h));
        }
    }
    None
}

/// The local port [`alloc_local`]'s cursor reaches from `port` after
/// `n` steps through `min..=max` (`port` in that range).
#[inline]
fn port_after(port: u16, n: usize, (min, max): (u16, u16)) -> u16 {
    let span = usize::from(max.saturating_sub(min)) + 1;
    let off = (usize::from(port.saturating_sub(min)) + n) % span;
    min + off as u16
}

/// The reply key of a connection to `rs` from local port `port` on probe
/// number `probe` of [`alloc_local`] (which spreads ports over the local
/// addresses); `None` without local addresses.
#[inline]
fn local_key<A: Family>(
    port: u16,
    local_addrs: &[A],
    rs: &ServerSnap<A>,
    proto: u8,
    probe: usize,
) -> Option<Key<A>> {
    let n = local_addrs.len();
    let lip = *local_addrs.get((usize::from(port) + probe) % n.max(1))?;
    Some(Key {
        proto,
        src: rs.addr,
        dst: lip,
        sport: rs.port,
        dport: port,
    })
}

/// The IPv4 address at `at` of an unvalidated header, if the bytes are there.
#[inline]
fn peek_ipv4(l3: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = l3.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// [`parse_l4`]'s fast path for the usual packet: an option-less IPv4
/// header (IHL 5) with a valid checksum, not a fragment, carrying a TCP
/// segment whose header fits. Fixed-size headers, so no bounds checks and
/// one header-checksum sum of five words. `None` for anything else, which
/// [`parse_l4`] then validates (and names the drop reason of).
#[inline(always)]
fn parse_tcp_fast(l3: &[u8], dir: Dir, transit: bool) -> Option<Parsed<Ipv4Addr>> {
    let (h, rest) = l3.split_first_chunk::<IPV4_HEADER_LEN>()?;
    // Version 4, IHL 5, TCP, neither MF nor a fragment offset.
    if h[0] != 0x45 || h[9] != 6 || h[6] & 0x3f != 0 || h[7] != 0 {
        return None;
    }
    let tl = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let l4 = rest.get(..tl.checked_sub(IPV4_HEADER_LEN)?)?;
    let t = l4.first_chunk::<TCP_HEADER_LEN>()?;
    let thl = usize::from(t[12] >> 4) * 4;
    if thl < TCP_HEADER_LEN || thl > l4.len() || !checksum::header20_ok(h) {
        return None;
    }
    let key = FlowKey {
        proto: 6,
        src: Ipv4Addr::from([h[12], h[13], h[14], h[15]]),
        dst: Ipv4Addr::from([h[16], h[17], h[18], h[19]]),
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
    };
    Some(Parsed {
        key,
        hash: key.hash(),
        hint: NO_HINT,
        dir,
        transit,
        flags: TcpFlags::from_header(t[13]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        ttl: h[8],
        hl: IPV4_HEADER_LEN,
        tl,
    })
}

/// Validates an IPv4 TCP/UDP packet (`l3`) whose direction is known.
#[inline]
fn parse_l4(l3: &[u8], dir: Dir, transit: bool) -> Result<Parsed<Ipv4Addr>, Drop> {
    let ip = Ipv4Packet::new_checked(l3).map_err(wire_drop)?;
    if !ip.verify_checksum() {
        return Err(Drop::BadChecksum);
    }
    if ip.is_fragment() {
        return Err(Drop::Fragment);
    }
    let (hl, tl) = (ip.header_len(), usize::from(ip.total_len()));
    let (proto, src, dst) = (ip.protocol(), ip.src_addr(), ip.dst_addr());
    let l4 = ip.payload();
    let (sport, dport, flags, ack) = match proto {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(l4).map_err(wire_drop)?;
            let flags = TcpFlags::new(t.syn(), t.ack(), t.fin(), t.rst());
            (t.src_port(), t.dst_port(), flags, t.ack_number())
        }
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(l4).map_err(wire_drop)?;
            (u.src_port(), u.dst_port(), TcpFlags::default(), 0)
        }
        _ => return Err(Drop::NoService),
    };
    let key = FlowKey {
        proto: proto.into(),
        src,
        dst,
        sport,
        dport,
    };
    Ok(Parsed {
        key,
        hash: key.hash(),
        hint: NO_HINT,
        dir,
        transit,
        flags,
        ack,
        ttl: ip.ttl(),
        hl,
        tl,
    })
}

/// FNAT and NAT route the packet (TTL − 1): it must not expire here. DR
/// and TUN leave the packet's TTL alone.
#[inline(always)]
fn check_ttl(mode: Forwarding, ttl: u8) -> Result<(), Drop> {
    if matches!(mode, Forwarding::Fnat | Forwarding::Nat | Forwarding::Snat) && ttl <= 1 {
        return Err(Drop::TtlExceeded);
    }
    Ok(())
}

/// How a client packet of a connection with reply key `out_key` (whose
/// source is the real server) is rewritten.
#[inline(always)]
fn action_in<A: Family>(
    mode: Forwarding,
    out_key: &Key<A>,
    tunnel_src: Option<A>,
) -> Result<Action<A>, Drop> {
    Ok(match mode {
        // The 5-tuple towards the real server: the reply key reversed.
        Forwarding::Fnat | Forwarding::Nat | Forwarding::Snat => Action::Nat(out_key.reversed()),
        Forwarding::Dr => Action::Mac,
        Forwarding::Tun => Action::Tunnel {
            src: tunnel_src.ok_or(Drop::NoTunnelSource)?,
            dst: out_key.src,
        },
    })
}

/// The acknowledgment number of the TCP segment at `hl` in the frame's IP
/// packet (0 when the frame is too short: the flags of such a packet
/// select no TOA anyway).
#[inline(always)]
fn tcp_ack(buf: &[u8], hl: usize) -> u32 {
    buf.get(ETH_LEN + hl + 8..ETH_LEN + hl + 12)
        .map_or(0, synproxy::be32)
}

/// Lowers the MSS option of the TCP segment `l4` (a SYN-ACK) by `by`
/// (DPVS's `tcp_out_adjust_mss`), adjusting the checksum; an MSS not
/// above `by` is left alone (DPVS would wrap it). Nothing else changes.
fn lower_mss(l4: &mut [u8], by: u16) {
    if l4.len() < TCP_HEADER_LEN {
        return;
    }
    let hl = TcpPacket::new_unchecked(&*l4).header_len().min(l4.len());
    let mut i = TCP_HEADER_LEN;
    while let Some((at, kind, len)) = synproxy::next_option(&l4[..hl], i) {
        if kind == 2 && len == 4 {
            let mss = u16::from_be_bytes([l4[at + 2], l4[at + 3]]);
            if mss > by {
                synproxy::patch(l4, at + 2, &(mss - by).to_be_bytes());
            }
            return;
        }
        i = at + len;
    }
}

/// TCP option kind of DPVS's TOA ("TCP option address").
pub const TOA_KIND: u8 = 254;
/// The TCP header without options.
const TCP_HEADER_LEN: usize = 20;
/// Length of an IPv4 TOA option: kind, length, port, address.
pub const TOA_LEN: usize = 8;

/// Inserts a TOA option (DPVS's `struct tcpopt_addr`: kind 254, length 8,
/// the client's port and IPv4 address in network order) after the TCP
/// options of the FNAT-rewritten segment `src → dst` in `buf` (IPv4 header
/// and total length `hl`, `tl`), so that a real server with the TOA module
/// sees the client. The sequence space is unchanged (options take none);
/// lengths and checksums are updated. `None` (nothing changed) when the TCP
/// header has no room for 8 more option bytes, the packet would exceed the
/// MTU, or the buffer has no room. Returns the new frame length.
fn insert_toa(
    buf: &mut [u8],
    hl: usize,
    tl: usize,
    (client, client_port): (Ipv4Addr, u16),
) -> Option<usize> {
    let mut opt = [0u8; TOA_LEN];
    opt[0] = TOA_KIND;
    opt[1] = TOA_LEN as u8;
    opt[2..4].copy_from_slice(&client_port.to_be_bytes());
    opt[4..8].copy_from_slice(&client.octets());
    insert_option_v4(buf, hl, tl, &opt)
}

/// [`toa_room`] for an IPv4 segment, then its total length and header
/// checksum (incrementally: the length word grew by the option's).
/// Returns the new frame length.
fn insert_option_v4(buf: &mut [u8], hl: usize, tl: usize, opt: &[u8]) -> Option<usize> {
    let new_len = toa_room(buf, hl, tl, opt)?;
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[ETH_LEN..new_len]);
    // toa_room kept the packet within the MTU.
    ip.set_total_len((tl + opt.len()) as u16);
    let c = checksum::adjust_folded(ip.checksum(), opt.len() as u32);
    ip.set_checksum(c);
    Some(new_len)
}

/// Inserts TCP option `opt` into the segment at `hl` in the frame's IP
/// packet (total length `tl`) right after the basic TCP header, before
/// the segment's own options, as DPVS's `tcp_in_add_toa` does, and grows
/// the data offset; the TCP checksum is adjusted (RFC 1624) by the
/// option's words, the data offset's growth and the pseudo-header length's
/// (the payload moves by a multiple of 4 bytes, so its words sum as
/// before): no pass over the payload, and a checksum that was wrong stays
/// wrong rather than being laundered. The IP length is the caller's. `None` (nothing changed)
/// when the TCP header has no room, the packet would exceed the MTU or the
/// buffer has no room. Returns the new frame length.
fn toa_room(buf: &mut [u8], hl: usize, tl: usize, opt: &[u8]) -> Option<usize> {
    let tcp_at = ETH_LEN + hl;
    let doff = TcpPacket::new_checked(buf.get(tcp_at..ETH_LEN + tl)?)
        .ok()?
        .header_len();
    let new_len = ETH_LEN + tl + opt.len();
    if doff + opt.len() > 60 || tl + opt.len() > TUNNEL_MTU || new_len > buf.len() {
        return None;
    }
    let opt_at = tcp_at + TCP_HEADER_LEN;
    buf.copy_within(opt_at..ETH_LEN + tl, opt_at + opt.len());
    buf[opt_at..opt_at + opt.len()].copy_from_slice(opt);
    let mut tcp = TcpPacket::new_unchecked(&mut buf[tcp_at..new_len]);
    tcp.set_header_len(doff + opt.len());
    // Options are whole 32-bit words (the data offset counts them).
    let grown = opt.len() as u32;
    let delta = checksum::sum(opt) + ((grown / 4) << 12) + grown;
    tcp.set_checksum(checksum::adjust_folded(tcp.checksum(), delta));
    Some(new_len)
}

/// Wraps the IPv4 packet of the frame in `buf` (total length `tl`, after
/// the Ethernet header) in an outer IPv4 header `src → dst`, protocol 4
/// (IPIP, RFC 2003). As LVS does, the outer header copies the inner TOS,
/// DF flag and TTL; its identification is 0. The inner packet is untouched
/// (Ethernet padding after it is dropped). Returns the new frame length.
fn encapsulate(buf: &mut [u8], tl: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize, Drop> {
    let new_len = tunnel_room(buf, tl, IPV4_HEADER_LEN)?;
    let (tos, df, ttl) = {
        let ip = Ipv4Packet::new_unchecked(&buf[ETH_LEN + IPV4_HEADER_LEN..new_len]);
        (ip.dscp_ecn(), ip.dont_frag(), ip.ttl())
    };
    let mut outer = Ipv4Packet::new_unchecked(&mut buf[ETH_LEN..new_len]);
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::IpIp,
        payload_len: tl,
        ttl,
    };
    repr.emit(&mut outer);
    outer.set_dscp_ecn(tos);
    outer.set_dont_frag(df);
    outer.fill_checksum();
    Ok(new_len)
}

/// Moves the packet of the frame in `buf` (total length `tl`, after the
/// Ethernet header) `outer` bytes on, making room for an outer header of
/// that size (IPIP / ip6ip6); the room keeps stale bytes for the caller to
/// overwrite. Fails (nothing changed) when the outer packet would exceed
/// [`TUNNEL_MTU`] or the buffer. Returns the new frame length.
fn tunnel_room(buf: &mut [u8], tl: usize, outer: usize) -> Result<usize, Drop> {
    if tl + outer > TUNNEL_MTU {
        return Err(Drop::TunnelTooBig);
    }
    let inner = ETH_LEN..ETH_LEN + tl;
    let new_len = inner.end + outer;
    if new_len > buf.len() {
        return Err(Drop::NoRoom);
    }
    buf.copy_within(inner, ETH_LEN + outer);
    Ok(new_len)
}

fn wire_drop(e: WireError) -> Drop {
    match e {
        WireError::Truncated => Drop::Truncated,
        WireError::Malformed => Drop::Malformed,
        WireError::BadChecksum => Drop::BadChecksum,
    }
}

fn tuple_bytes(k: &FlowKey) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&k.src.octets());
    b[4..8].copy_from_slice(&k.dst.octets());
    b[8..10].copy_from_slice(&k.sport.to_be_bytes());
    b[10..12].copy_from_slice(&k.dport.to_be_bytes());
    b
}

/// Rewrites addresses and ports from `old` to `new`, decrements the TTL and
/// updates the IPv4 and TCP/UDP checksums incrementally (RFC 1624). The
/// packet was validated by the caller (`hl`/`tl` are its lengths).
#[inline(always)]
fn rewrite(l3: &mut [u8], hl: usize, tl: usize, old: &FlowKey, new: FlowKey) {
    rewrite_by(l3, hl, tl, &new, Deltas::of(old, &new));
}

/// [`rewrite`] by the checksum differences `d` of the 5-tuple change (a
/// connection's, precomputed: [`crate::conn::Conn::deltas`]).
#[inline(always)]
fn rewrite_by(l3: &mut [u8], hl: usize, tl: usize, new: &FlowKey, d: Deltas) {
    let addrs = u32::from(d.addrs);
    if let Some(h) = l3.first_chunk_mut::<IPV4_HEADER_LEN>() {
        let ttl = h[8];
        // TTL − 1: the (TTL, protocol) word drops by 0x100 (≡ 0xfeff),
        // or wraps from 0 to 255 (+0xff00).
        let ttl_delta = if ttl == 0 { 0xff00 } else { 0xfeff };
        let c = u16::from_be_bytes([h[10], h[11]]);
        let c = checksum::adjust_folded(c, addrs + ttl_delta);
        h[8] = ttl.wrapping_sub(1);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h[12..16].copy_from_slice(&new.src.octets());
        h[16..20].copy_from_slice(&new.dst.octets());
    }
    if let Some(l4) = l3.get_mut(hl..tl) {
        adjust_l4_by(
            l4,
            new.proto,
            addrs + u32::from(d.ports),
            (new.sport, new.dport),
        );
    }
}

/// Sets the ports of a TCP (`proto` 6) or UDP header `l4` and adjusts its
/// checksum for the pseudo-header and port change `old` → `new` (address
/// and port bytes); a zero UDP checksum stays zero. A header cut short (as
/// in an ICMP quote) gets what fits.
#[inline]
fn adjust_l4(l4: &mut [u8], proto: u8, old: &[u8], new: &[u8], ports: (u16, u16)) {
    let d = checksum::delta(checksum::sum(old).into(), checksum::sum(new).into());
    adjust_l4_by(l4, proto, u32::from(checksum::fold64(d)), ports);
}

/// [`adjust_l4`] by the folded difference ([`checksum::adjust_folded`])
/// of the address and port words.
#[inline(always)]
fn adjust_l4_by(l4: &mut [u8], proto: u8, delta: u32, (sport, dport): (u16, u16)) {
    let at = if proto == 6 { 16 } else { 6 };
    if let Some(field) = l4.get_mut(at..at + 2) {
        let c = u16::from_be_bytes([field[0], field[1]]);
        let c = if proto == 6 {
            checksum::adjust_folded(c, delta)
        } else {
            crate::wire::udp::adjust_checksum_by(c, delta)
        };
        field.copy_from_slice(&c.to_be_bytes());
    }
    if let Some(ports) = l4.get_mut(..4) {
        ports[..2].copy_from_slice(&sport.to_be_bytes());
        ports[2..].copy_from_slice(&dport.to_be_bytes());
    }
}

/// Rewrites a validated ICMP error (`l3`, IPv4 header and total length
/// `hl`, `tl`): outer addresses to `src → dst` with TTL − 1, the quoted
/// packet `q` (whose tuple is `old`) to `new`. The quoted IPv4 checksum is
/// recomputed, the quoted TCP/UDP checksum adjusted when the quote holds it
/// (a zero UDP checksum stays zero), then the ICMP and outer checksums are
/// recomputed.
fn translate_icmp(
    l3: &mut [u8],
    (hl, tl): (usize, usize),
    (src, dst): (Ipv4Addr, Ipv4Addr),
    q: &Quote,
    old: &FlowKey,
    new: &FlowKey,
) {
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut *l3);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.set_ttl(ip.ttl().saturating_sub(1));
        ip.fill_checksum();
    }
    let Some(msg) = l3.get_mut(hl..tl) else {
        return;
    };
    let Some(quote) = msg.get_mut(crate::wire::icmpv4::HEADER_LEN..) else {
        return;
    };
    let ihl = q.header_len;
    if quote.len() < ihl + 4 {
        return;
    }
    quote[12..16].copy_from_slice(&new.src.octets());
    quote[16..20].copy_from_slice(&new.dst.octets());
    quote[10..12].fill(0);
    let c = checksum::finish(checksum::sum(&quote[..ihl]));
    quote[10..12].copy_from_slice(&c.to_be_bytes());
    let (ob, nb) = (tuple_bytes(old), tuple_bytes(new));
    adjust_l4(
        &mut quote[ihl..],
        old.proto,
        &ob,
        &nb,
        (new.sport, new.dport),
    );
    Icmpv4Packet::new_unchecked(msg).fill_checksum();
}

/// Appends an ARP frame to `ctl`; false when `ctl` is full.
fn push_arp(
    ctl: &mut Burst,
    mac: MacAddr,
    operation: ArpOperation,
    source_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
    eth_dst: MacAddr,
) -> bool {
    let Some(f) = ctl.next_free() else {
        return false;
    };
    let buf = f.buffer_mut();
    buf[..MIN_FRAME].fill(0);
    {
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(eth_dst);
        eth.set_src_addr(mac);
        eth.set_ethertype(EtherType::Arp);
    }
    let repr = ArpRepr {
        operation,
        source_hardware_addr: mac,
        source_protocol_addr: source_ip,
        target_hardware_addr: target_mac,
        target_protocol_addr: target_ip,
    };
    repr.emit(&mut ArpPacket::new_unchecked(
        &mut buf[ETH_LEN..ETH_LEN + repr.buffer_len()],
    ));
    f.set_len(MIN_FRAME);
    ctl.commit();
    true
}

fn push_arp_request(ctl: &mut Burst, mac: MacAddr, source: Ipv4Addr, target: Ipv4Addr) -> bool {
    push_arp(
        ctl,
        mac,
        ArpOperation::Request,
        source,
        MacAddr::default(),
        target,
        MacAddr::BROADCAST,
    )
}

#[cfg(test)]
mod tests;
