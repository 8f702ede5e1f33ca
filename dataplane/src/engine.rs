//! The per-worker forwarding engine, sans-IO: a frame and the time go in, a
//! [`Verdict`] comes out (the frame is rewritten in place) and control frames
//! the engine originates (ARP requests, gratuitous ARP) are appended to a
//! [`Burst`].
//!
//! Forwarding methods (per service, [`Forwarding`]), IPv4 TCP/UDP:
//!
//! | mode | client → VIP becomes          | reply                              |
//! |------|-------------------------------|------------------------------------|
//! | FNAT | LIP:lport → RS:rport, TTL − 1 | RS → LIP becomes VIP → client      |
//! |      | (+ TOA on the first ACK)      |                                    |
//! | NAT  | client → RS:rport, TTL − 1    | RS → client becomes VIP → client   |
//! | DR   | same packet, dst MAC = RS's   | RS → client directly               |
//! | TUN  | IPIP: outer src → RS, inner untouched | RS → client directly       |
//!
//! Both directions of a connection are indexed by the connection table: the
//! client's key (client, VIP, cport, vport) and the real server's (RS, LIP,
//! rport, lport) for FNAT or (RS, client, rport, cport) otherwise. NAT
//! replies are not addressed to us: a packet from a NAT real server to an
//! address we do not own is looked up by that key and, when no connection
//! knows it, left to the kernel ([`Verdict::Ignore`]).
//!
//! The hot path reads the published [`Snapshot`] and the worker's own
//! connection table; it takes no lock, makes no syscall and does not
//! allocate (the neighbour table is bounded and reserved up front).

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::acl::AccessList;
use crate::command::{Forwarding, Persistence, ServiceKey};
use crate::conn::{Conn, ConnTable, DestId, Dir, FlowKey, TcpFlags, TcpState};
use crate::fasthash::FastMap;
use crate::io::{Burst, Frame};
use crate::sched::SchedTable;
use crate::stats::{Drop, DropCounters, Traffic};
use crate::threshold::{self, ServerLimits};
use crate::wire::icmpv4::Quote;
use crate::wire::ipv4::HEADER_LEN as IPV4_HEADER_LEN;
use crate::wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv4Packet, IpProtocol,
    Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, UdpPacket, WireError,
};

mod synproxy;

use self::synproxy::SynProxy;

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
/// TUN: largest outer IPv4 packet sent (the link MTU); bigger ones are
/// dropped as `tunnel_too_big`.
pub const TUNNEL_MTU: usize = 1500;
/// [`Engine::handle_burst`] parses and prefetches this many frames at a time.
pub const PIPELINE: usize = 64;
/// [`Engine::housekeeping`] paces the expiry sweep to visit the whole
/// connection table once per this period (within its budget), so an idle
/// connection is freed at most this late and a busy worker does not rescan
/// the table every burst.
pub const SWEEP_PERIOD_MS: u64 = 1_000;

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
pub struct ServerSnap {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub stats: Arc<Traffic>,
}

/// A service as workers see it.
#[derive(Debug)]
pub struct ServiceSnap {
    pub key: ServiceKey,
    pub stats: Arc<Traffic>,
    pub servers: Vec<ServerSnap>,
    pub table: SchedTable,
    pub local_addrs: Vec<Ipv4Addr>,
}

/// Everything a worker needs to forward, immutable once published.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub services: Vec<ServiceSnap>,
    /// (VIP, port, IP protocol) → index in `services`.
    pub lookup: FastMap<(Ipv4Addr, u16, u8), usize>,
    /// VIPs the dataplane answers ARP for and forwards to (sorted).
    pub owned_vips: Vec<Ipv4Addr>,
    /// FNAT local addresses (sorted).
    pub local_addrs: Vec<Ipv4Addr>,
    /// Real servers to resolve, with the source address to ask from
    /// (0.0.0.0: an ARP probe).
    pub neighbours: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Per service (same index as `services`): its forwarding method. A
    /// missing entry means FNAT.
    pub forwarding: Vec<Forwarding>,
    /// Real servers of NAT services (sorted): their packets to addresses we
    /// do not own may be NAT replies.
    pub nat_servers: Vec<Ipv4Addr>,
    /// The interface address ([`crate::Command::SetInterfaceAddr`]).
    pub interface_v4: Option<Ipv4Addr>,
    /// Per service (same index as `services`): its persistence. A missing
    /// entry means none.
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
    /// The SYN-cookie secret (shared by all workers).
    pub syn_cookie_key: [u64; 2],
}

impl Snapshot {
    fn owns_vip(&self, ip: Ipv4Addr) -> bool {
        self.owned_vips.binary_search(&ip).is_ok()
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.local_addrs.binary_search(&ip).is_ok()
    }

    fn is_nat_server(&self, ip: Ipv4Addr) -> bool {
        self.nat_servers.binary_search(&ip).is_ok()
    }

    /// The persistence of service number `i`.
    pub fn persistence_of(&self, i: usize) -> Option<Persistence> {
        self.persistence.get(i).copied().flatten()
    }

    /// The forwarding method of service number `i`.
    pub fn forwarding_of(&self, i: usize) -> Forwarding {
        self.forwarding.get(i).copied().unwrap_or(Forwarding::Fnat)
    }

    /// The access list of service number `i`.
    #[inline]
    pub fn acl_of(&self, i: usize) -> Option<&AccessList> {
        self.acl.get(i)?.as_ref()
    }

    /// Whether service number `i` proxies SYNs.
    #[inline]
    pub fn synproxy_of(&self, i: usize) -> bool {
        self.synproxy.get(i).copied().unwrap_or(false)
    }

    /// The server limits of service number `i`.
    #[inline]
    pub fn limits_of(&self, i: usize) -> Option<&ServerLimits> {
        self.limits.get(i)?.as_deref()
    }
}

/// A persistence template's key: the service and the client network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TemplateKey {
    vip: Ipv4Addr,
    vport: u16,
    proto: u8,
    network: Ipv4Addr,
}

impl TemplateKey {
    /// The template of the connection a client packet `key` belongs to.
    fn of(key: &FlowKey, p: Persistence) -> TemplateKey {
        TemplateKey {
            vip: key.dst,
            vport: key.dport,
            proto: key.proto,
            network: p.network(key.src),
        }
    }
}

/// Where a client network's connections go, until `expires_ms`.
#[derive(Debug, Clone, Copy)]
struct Template {
    addr: Ipv4Addr,
    port: u16,
    expires_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Neighbour {
    mac: Option<MacAddr>,
    source: Ipv4Addr,
    requested_ms: Option<u64>,
}

/// An IPv4 TCP/UDP packet to one of our addresses, parsed and validated.
#[derive(Debug, Clone, Copy)]
struct Parsed {
    key: FlowKey,
    /// `key.hash()`.
    hash: u32,
    dir: Dir,
    /// Not addressed to us: a possible NAT reply (real server → client).
    /// Anything but a known connection is the kernel's business.
    transit: bool,
    flags: TcpFlags,
    ttl: u8,
    /// IPv4 header and total length.
    hl: usize,
    tl: usize,
}

/// How a packet of a connection is rewritten.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Rewrite the 5-tuple to this key, TTL − 1 (FNAT, NAT).
    Nat(FlowKey),
    /// FNAT's first ACK of a connection: as `Nat`, and insert the client's
    /// address and port as a TOA option when there is room.
    NatToa(FlowKey),
    /// MAC addresses only (DR).
    Mac,
    /// IPIP encapsulation `src → dst` (TUN).
    Tunnel { src: Ipv4Addr, dst: Ipv4Addr },
}

/// What the first look at a frame found.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Forwarding work: look the connection up.
    Ipv4(Parsed),
    /// ARP for us (or broadcast).
    Arp,
    /// ICMP to one of our addresses (or from a NAT real server).
    Icmp { dir: Dir, transit: bool },
    /// Decided already.
    Done(Verdict),
}

/// One worker's forwarding state.
#[derive(Debug)]
pub struct Engine {
    mac: MacAddr,
    snap: Arc<Snapshot>,
    conns: ConnTable,
    /// Per service of `snap`, per server: its destination in `conns`.
    dests: Vec<Vec<DestId>>,
    neighbours: FastMap<Ipv4Addr, Neighbour>,
    /// Persistence templates (bounded by [`MAX_TEMPLATES`], reserved up
    /// front). A template lives `persistence_timeout` after the last packet
    /// a client sent on a connection it placed. Templates are per worker,
    /// like connections: a client network whose connections are spread over
    /// several workers may get one real server per worker.
    templates: FastMap<TemplateKey, Template>,
    /// Bumped whenever a neighbour's MAC changes; destinations cache the
    /// server's MAC together with the generation they saw.
    neigh_gen: u32,
    /// This worker's number (its slot in the traffic counters).
    worker: usize,
    /// Per-service scheduler cursor (index = service index in `snap`).
    cursors: Vec<u64>,
    next_port: u16,
    port_min: u16,
    port_max: u16,
    drops: Arc<DropCounters>,
    last_refresh_ms: u64,
    /// Slots the expiry sweep has visited (paced by [`SWEEP_PERIOD_MS`]).
    swept: u128,
    /// [`Engine::handle_burst`]'s per-frame scratch (capacity [`PIPELINE`]).
    stages: Vec<Stage>,
    /// SYN-proxy state ([`synproxy`]).
    sp: SynProxy,
}

impl Engine {
    /// The engine of worker number `worker` for a port with `mac`, holding
    /// at most `conn_capacity` connections and using FNAT local ports
    /// `port_min..=port_max`.
    pub fn new(
        worker: usize,
        mac: MacAddr,
        conn_capacity: usize,
        (port_min, port_max): (u16, u16),
        drops: Arc<DropCounters>,
    ) -> Engine {
        let (port_min, port_max) = (port_min.max(1), port_max.max(port_min.max(1)));
        let mut neighbours = FastMap::default();
        neighbours.reserve(MAX_NEIGHBOURS);
        let mut templates = FastMap::default();
        templates.reserve(MAX_TEMPLATES);
        Engine {
            mac,
            snap: Arc::default(),
            conns: ConnTable::new(conn_capacity, worker),
            dests: Vec::new(),
            neighbours,
            templates,
            neigh_gen: 0,
            worker,
            cursors: Vec::new(),
            next_port: port_min,
            port_min,
            port_max,
            drops,
            last_refresh_ms: 0,
            swept: 0,
            stages: Vec::with_capacity(PIPELINE),
            sp: SynProxy::default(),
        }
    }

    /// Connections currently tracked.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// See [`crate::conn::ConnTable::scan`].
    pub fn scan_conns(
        &self,
        from: usize,
        budget: usize,
        now_ms: u64,
        out: &mut Vec<crate::conn::ConnView>,
    ) -> Option<usize> {
        self.conns.scan(from, budget, now_ms, out)
    }

    /// Switches to a newly published snapshot (between bursts). Announces
    /// newly owned addresses with gratuitous ARP and starts resolving new
    /// real servers.
    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>, now_ms: u64, ctl: &mut Burst) {
        let old = std::mem::replace(&mut self.snap, snap);
        self.sp.set_snapshot(&self.snap);
        self.dests = self.conns.publish(&self.snap, self.neigh_gen);
        self.cursors.clear();
        self.cursors.resize(self.snap.services.len(), 0);
        let announce = self.snap.owned_vips.iter().chain(&self.snap.local_addrs);
        for &ip in announce {
            if !old.owns_vip(ip) && !old.is_local(ip) {
                push_arp(
                    ctl,
                    self.mac,
                    ArpOperation::Request,
                    ip,
                    MacAddr::default(),
                    ip,
                    MacAddr::BROADCAST,
                );
            }
        }
        for &(ip, source) in &self.snap.neighbours {
            if self.neighbours.len() >= MAX_NEIGHBOURS && !self.neighbours.contains_key(&ip) {
                continue;
            }
            let n = self.neighbours.entry(ip).or_insert(Neighbour {
                mac: None,
                source,
                requested_ms: None,
            });
            n.source = source;
            if n.mac.is_none() {
                n.requested_ms = Some(now_ms);
                push_arp_request(ctl, self.mac, source, ip);
            }
        }
    }

    /// Periodic work between bursts: expire idle connections (at most
    /// `sweep_budget` table slots, paced to one pass per
    /// [`SWEEP_PERIOD_MS`]) and refresh neighbours.
    pub fn housekeeping(&mut self, now_ms: u64, sweep_budget: usize, ctl: &mut Burst) {
        let cap = self.conns.capacity() as u128;
        let target = cap * u128::from(now_ms) / u128::from(SWEEP_PERIOD_MS);
        // Fall at most one pass behind; catch up at most `sweep_budget` a call.
        let lag = target.saturating_sub(self.swept).min(cap);
        let due = lag.min(sweep_budget as u128);
        self.swept = target - lag + due;
        self.conns.sweep(now_ms, due as usize);
        if now_ms.saturating_sub(self.last_refresh_ms) >= NEIGHBOUR_REFRESH_MS {
            self.last_refresh_ms = now_ms;
            for (&ip, n) in &self.neighbours {
                if !push_arp_request(ctl, self.mac, n.source, ip) {
                    break;
                }
            }
        }
    }

    /// Handles one received frame, rewriting it in place. The frame cannot
    /// grow, so TUN packets are dropped as `no_room`: use
    /// [`Engine::handle_frame`] or [`Engine::handle_burst`] for those.
    pub fn handle(&mut self, frame: &mut [u8], now_ms: u64, ctl: &mut Burst) -> Verdict {
        let len = frame.len();
        let stage = self.classify(frame);
        self.finish(stage, frame, len, now_ms, ctl).0
    }

    /// Handles one received frame in a frame buffer, which TUN encapsulation
    /// may lengthen (the frame's length is updated).
    pub fn handle_frame(&mut self, frame: &mut Frame, now_ms: u64, ctl: &mut Burst) -> Verdict {
        let len = frame.len();
        let stage = self.classify(frame.data());
        let (verdict, len) = self.finish(stage, frame.buffer_mut(), len, now_ms, ctl);
        frame.set_len(len);
        verdict
    }

    /// Handles a burst of received frames and reports each frame's verdict
    /// to `out`, in order. Same results as [`Engine::handle`] per frame, but
    /// pipelined VPP style: first every frame is parsed and its index bucket
    /// prefetched, then each connection line is prefetched, then the frames
    /// are forwarded, so the cache misses of a burst overlap.
    pub fn handle_burst(
        &mut self,
        frames: &mut [Frame],
        now_ms: u64,
        ctl: &mut Burst,
        mut out: impl FnMut(&Frame, Verdict),
    ) {
        for chunk in frames.chunks_mut(PIPELINE) {
            self.stages.clear();
            for f in chunk.iter() {
                let stage = self.classify(f.data());
                if let Stage::Ipv4(p) = &stage {
                    self.conns.prefetch_bucket(p.hash);
                }
                self.stages.push(stage);
            }
            for stage in &self.stages {
                if let Stage::Ipv4(p) = stage {
                    self.conns.prefetch_conn(p.hash);
                }
            }
            for (i, f) in chunk.iter_mut().enumerate() {
                let stage = self.stages[i];
                let len = f.len();
                let (verdict, len) = self.finish(stage, f.buffer_mut(), len, now_ms, ctl);
                f.set_len(len);
                out(f, verdict);
            }
        }
    }

    /// First look at a frame: what it is, and for IPv4 to us, its parsed
    /// and validated headers.
    #[inline]
    fn classify(&self, frame: &[u8]) -> Stage {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Stage::Done(Verdict::Ignore);
        };
        let dst = eth.dst_addr();
        if dst != self.mac && !dst.is_broadcast() {
            return Stage::Done(Verdict::Ignore);
        }
        match eth.ethertype() {
            EtherType::Arp => Stage::Arp,
            EtherType::Ipv4 if dst == self.mac => match self.parse_ipv4(frame) {
                Ok(p) => Stage::Ipv4(p),
                Err(Err(v)) => Stage::Done(v),
                Err(Ok((dir, transit))) => Stage::Icmp { dir, transit },
            },
            _ => Stage::Done(Verdict::Ignore),
        }
    }

    /// Does a classified frame's work and counts a drop. The frame is
    /// `buf[..len]`; the rest of `buf` is room to grow. Returns the verdict
    /// and the frame's new length.
    #[inline]
    fn finish(
        &mut self,
        stage: Stage,
        buf: &mut [u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        let len = len.min(buf.len());
        let (verdict, len) = match stage {
            Stage::Ipv4(p) => self.forward(buf, len, &p, now_ms, ctl),
            Stage::Arp => (self.handle_arp(&mut buf[..len]), len),
            Stage::Icmp { dir, transit } => match self.icmp_error(buf, len, dir, now_ms, ctl) {
                Ok(x) => x,
                Err(_) if transit => (Verdict::Ignore, len),
                Err(reason) => (Verdict::Drop(reason), len),
            },
            Stage::Done(v) => (v, len),
        };
        if let Verdict::Drop(reason) = verdict {
            self.drops.count(reason);
        }
        (verdict, len)
    }

    fn answers_arp_for(&self, ip: Ipv4Addr) -> bool {
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
        // Learn only neighbours we asked about: strangers cannot fill the table.
        if let Some(n) = self.neighbours.get_mut(&req.source_protocol_addr) {
            let mac = req.source_hardware_addr;
            if !mac.is_multicast() && n.mac != Some(mac) {
                n.mac = Some(mac);
                self.neigh_gen = self.neigh_gen.wrapping_add(1);
            }
        }
        if req.operation != ArpOperation::Request
            || !self.answers_arp_for(req.target_protocol_addr)
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

    #[inline]
    /// An IPv4 TCP/UDP packet for us, parsed; else `Err(Ok((dir, transit)))`
    /// for ICMP, `Err(Err(verdict))` for anything else.
    #[allow(clippy::type_complexity)]
    fn parse_ipv4(&self, frame: &[u8]) -> Result<Parsed, Result<(Dir, bool), Verdict>> {
        let Some(l3) = frame.get(ETH_LEN..) else {
            return Err(Err(Verdict::Ignore));
        };
        // Only packets to our own addresses (or NAT replies) are ours; peek
        // before validating.
        let (Some(src), Some(dst)) = (peek_ipv4(l3, 12), peek_ipv4(l3, 16)) else {
            return Err(Err(Verdict::Ignore));
        };
        let (dir, transit) = if self.snap.owns_vip(dst) {
            (Dir::In, false)
        } else if self.snap.is_local(dst) {
            (Dir::Out, false)
        } else if self.snap.is_nat_server(src) {
            (Dir::Out, true)
        } else {
            return Err(Err(Verdict::Ignore));
        };
        if l3.get(9) == Some(&u8::from(IpProtocol::Icmp)) {
            return Err(Ok((dir, transit)));
        }
        parse_l4(l3, dir, transit).map_err(|d| {
            Err(if transit {
                // A real server's own traffic through us (fragments, …).
                Verdict::Ignore
            } else {
                Verdict::Drop(d)
            })
        })
    }

    /// Forwards a parsed packet (the frame is `buf[..len]`): connection
    /// lookup (or creation), rewrite. Returns the frame's new length.
    #[inline]
    fn forward(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        let res = match p.dir {
            Dir::In => {
                let client_mac = EthernetFrame::new_unchecked(&buf[..len]).src_addr();
                // synproxy.rs: cookies, the proxied handshake, ack shift.
                if self.sp.on {
                    if let Some(done) = self.synproxy_in(buf, len, p, client_mac, now_ms, ctl) {
                        return done;
                    }
                }
                self.forward_in(p, client_mac, len, now_ms, ctl)
            }
            Dir::Out => {
                // synproxy.rs: the real server's SYN-ACK, seq shift.
                if self.sp.on {
                    if let Some(done) = self.synproxy_out(buf, len, p, now_ms) {
                        return done;
                    }
                }
                self.forward_out(p, len, now_ms)
            }
        };
        let (action, dst_mac) = match res {
            Ok(x) => x,
            Err(_) if p.transit => return (Verdict::Ignore, len),
            Err(reason) => return (Verdict::Drop(reason), len),
        };
        let len = match action {
            Action::Nat(new) => {
                rewrite(&mut buf[ETH_LEN..len], p.hl, p.tl, &p.key, &new);
                len
            }
            Action::NatToa(new) => {
                rewrite(&mut buf[ETH_LEN..len], p.hl, p.tl, &p.key, &new);
                let client = (p.key.src, p.key.sport);
                insert_toa(buf, p.hl, p.tl, (new.src, new.dst), client).unwrap_or(len)
            }
            Action::Mac => len,
            Action::Tunnel { src, dst } => match encapsulate(buf, p.tl, src, dst) {
                Ok(n) => n,
                Err(reason) => return (Verdict::Drop(reason), len),
            },
        };
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..len]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(dst_mac);
        (Verdict::Forward, len)
    }

    /// Client → VIP: find or create the connection; returns the rewrite
    /// towards the real server and the real server's MAC.
    #[inline]
    fn forward_in(
        &mut self,
        p: &Parsed,
        client_mac: MacAddr,
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Action, MacAddr), Drop> {
        let Some((idx, dir)) = self.conns.lookup_hashed(&p.key, p.hash, now_ms) else {
            return self.open(p, client_mac, len, now_ms, ctl);
        };
        if dir != Dir::In {
            return Err(Drop::NoConnection);
        }
        let conn = self.conns.get(idx).ok_or(Drop::NoConnection)?;
        let closing = matches!(conn.tcp, TcpState::FinWait | TcpState::Close);
        // The client's ACK completing the handshake (TOA goes there).
        let f = p.flags;
        let first_ack =
            p.key.proto == 6 && conn.tcp == TcpState::SynRecv && f.ack && !f.syn && !f.rst;
        if closing && p.flags.syn && !p.flags.ack {
            // The client reuses its port after closing: a new connection,
            // scheduled afresh (IPVS's conn_reuse_mode).
            self.conns.remove(idx);
            return self.open(p, client_mac, len, now_ms, ctl);
        }
        let dest = conn.dest;
        let mac = self.dest_mac(dest, now_ms, ctl)?;
        let d = self.conns.dest(dest).ok_or(Drop::NoRealServer)?;
        let (mode, tunnel_src) = (d.forwarding, d.tunnel_src);
        check_ttl(mode, p.ttl)?;
        let conn = self
            .conns
            .touch(idx, Dir::In, p.flags, now_ms)
            .ok_or(Drop::NoConnection)?;
        let action = match action_in(mode, &conn.out_key, tunnel_src)? {
            Action::Nat(k) if first_ack && mode == Forwarding::Fnat => Action::NatToa(k),
            a => a,
        };
        let in_key = conn.in_key;
        if let Some(d) = self.conns.dest(dest) {
            if let Some(p) = d.persistence {
                refresh_template(&mut self.templates, &in_key, p, d.addr, d.port, now_ms);
            }
            d.service.count_in(self.worker, len);
            d.server.count_in(self.worker, len);
        }
        Ok((action, mac))
    }

    /// A new connection for a client packet no connection knows.
    fn open(
        &mut self,
        p: &Parsed,
        client_mac: MacAddr,
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Action, MacAddr), Drop> {
        let key = &p.key;
        let svc_idx = *self
            .snap
            .lookup
            .get(&(key.dst, key.dport, key.proto))
            .ok_or(Drop::NoService)?;
        let f = p.flags;
        if key.proto == 6 && !(f.syn && !f.ack && !f.rst) {
            return Err(Drop::NoConnection);
        }
        // acl.rs: who may open connections (new ones only).
        if let Some(acl) = self.snap.acl_of(svc_idx) {
            acl.admit_v4(key.src)?;
        }
        if self.conns.len() >= self.conns.capacity() {
            return Err(Drop::ConnTableFull);
        }
        let svc = self.snap.services.get(svc_idx).ok_or(Drop::NoService)?;
        let persistence = self.snap.persistence_of(svc_idx);
        // A live template of the client's network decides, as long as its
        // server is still in the service (even quiescent, as LVS).
        let placed = persistence.and_then(|p| {
            let t = self.templates.get(&TemplateKey::of(key, p))?;
            if t.expires_ms <= now_ms {
                return None;
            }
            svc.servers
                .iter()
                .position(|s| s.addr == t.addr && s.port == t.port)
        });
        let rs_idx = match placed {
            Some(i) => i,
            None => {
                let cursor = self.cursors.get_mut(svc_idx).ok_or(Drop::NoService)?;
                let hash = svc.table.flow_hash(key.src, key.dst);
                if let Some(limits) = self.snap.limits_of(svc_idx) {
                    // threshold.rs: skip (or refuse) overloaded servers.
                    threshold::pick(&svc.table, cursor, hash, limits, &svc.servers)?
                } else {
                    let i = svc.table.pick(*cursor, hash).ok_or(Drop::NoRealServer)? as usize;
                    *cursor = cursor.wrapping_add(1);
                    i
                }
            }
        };
        let dest = *self
            .dests
            .get(svc_idx)
            .and_then(|d| d.get(rs_idx))
            .ok_or(Drop::NoRealServer)?;
        let mac = self.dest_mac(dest, now_ms, ctl)?;
        let d = self.conns.dest(dest).ok_or(Drop::NoRealServer)?;
        let (mode, tunnel_src) = (d.forwarding, d.tunnel_src);
        check_ttl(mode, p.ttl)?;
        let svc = self.snap.services.get(svc_idx).ok_or(Drop::NoService)?;
        let rs = svc.servers.get(rs_idx).ok_or(Drop::NoRealServer)?;
        let out_key = if mode == Forwarding::Fnat {
            alloc_local(
                &mut self.next_port,
                (self.port_min, self.port_max),
                &self.conns,
                &svc.local_addrs,
                rs,
                key.proto,
            )
            .ok_or(Drop::NoLocalPort)?
        } else {
            // The real server sees (or, DR/TUN, would see) the client itself.
            let out_key = FlowKey {
                proto: key.proto,
                src: rs.addr,
                dst: key.src,
                sport: rs.port,
                dport: key.sport,
            };
            if self.conns.contains(&out_key) {
                return Err(Drop::ConnConflict);
            }
            out_key
        };
        let action = action_in(mode, &out_key, tunnel_src)?;
        let conn = Conn::open(*key, out_key, client_mac, dest, f, now_ms);
        self.conns.insert(conn).ok_or(Drop::ConnTableFull)?;
        if let Some(p) = persistence {
            // No room for a template: the client is simply not persistent.
            let _ = refresh_template(&mut self.templates, key, p, rs.addr, rs.port, now_ms);
        }
        if let Some(d) = self.conns.dest(dest) {
            let w = self.worker;
            d.service.count_conn(w);
            d.server.count_conn(w);
            d.service.count_in(w, len);
            d.server.count_in(w, len);
        }
        Ok((action, mac))
    }

    /// Real server → LIP (FNAT) or → client (NAT): the reply goes back as
    /// VIP → client.
    #[inline]
    fn forward_out(
        &mut self,
        p: &Parsed,
        len: usize,
        now_ms: u64,
    ) -> Result<(Action, MacAddr), Drop> {
        let (idx, dir) = self
            .conns
            .lookup_hashed(&p.key, p.hash, now_ms)
            .ok_or(Drop::NoConnection)?;
        if dir != Dir::Out {
            return Err(Drop::NoConnection);
        }
        let dest = self.conns.get(idx).ok_or(Drop::NoConnection)?.dest;
        let mode = self.conns.dest(dest).ok_or(Drop::NoConnection)?.forwarding;
        if !mode.has_reply_path() {
            // DR/TUN connections are not reachable by replies.
            return Err(Drop::NoConnection);
        }
        check_ttl(mode, p.ttl)?;
        let conn = self
            .conns
            .touch(idx, Dir::Out, p.flags, now_ms)
            .ok_or(Drop::NoConnection)?;
        let back = FlowKey {
            proto: p.key.proto,
            src: conn.in_key.dst,
            dst: conn.in_key.src,
            sport: conn.in_key.dport,
            dport: conn.in_key.sport,
        };
        let mac = conn.client_mac;
        if let Some(d) = self.conns.dest(dest) {
            d.service.count_out(self.worker, len);
            d.server.count_out(self.worker, len);
        }
        Ok((Action::Nat(back), mac))
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
            return Err(Drop::IcmpUnhandled);
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
        // The quoted packet went the other way: its reverse is the key of
        // the direction the error comes from.
        let key = FlowKey {
            proto: q.protocol,
            src: q.dst,
            dst: q.src,
            sport: q.dst_port,
            dport: q.src_port,
        };
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
        let l3 = &mut buf[ETH_LEN..len];
        let (len, mac) = match (dir, mode) {
            (Dir::In, Forwarding::Fnat | Forwarding::Nat) => {
                let mac = self.dest_mac(conn.dest, now_ms, ctl)?;
                // To the real server, about what it sent: RS → LIP (FNAT)
                // or RS → client (NAT), the connection's reply key.
                let src = if mode == Forwarding::Fnat {
                    conn.out_key.dst
                } else {
                    sender
                };
                translate_icmp(
                    l3,
                    (hl, tl),
                    (src, conn.out_key.src),
                    &q,
                    &quoted,
                    &conn.out_key,
                );
                (len, mac)
            }
            (Dir::In, Forwarding::Dr) => (len, self.dest_mac(conn.dest, now_ms, ctl)?),
            (Dir::In, Forwarding::Tun) => {
                let mac = self.dest_mac(conn.dest, now_ms, ctl)?;
                let src = tunnel_src.ok_or(Drop::NoTunnelSource)?;
                (encapsulate(buf, tl, src, conn.out_key.src)?, mac)
            }
            (Dir::Out, Forwarding::Fnat | Forwarding::Nat) => {
                // To the client, about what it sent: client → VIP.
                let outer = (conn.in_key.dst, conn.in_key.src);
                translate_icmp(l3, (hl, tl), outer, &q, &quoted, &conn.in_key);
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
    #[inline]
    fn dest_mac(&mut self, dest: DestId, now_ms: u64, ctl: &mut Burst) -> Result<MacAddr, Drop> {
        let gen = self.neigh_gen;
        let d = self.conns.dest(dest).ok_or(Drop::NoRealServer)?;
        if d.neigh_gen == gen {
            return Ok(d.mac);
        }
        let addr = d.addr;
        let mac = self.resolve(addr, now_ms, ctl)?;
        if let Some(d) = self.conns.dest_mut(dest) {
            d.mac = mac;
            d.neigh_gen = gen;
        }
        Ok(mac)
    }

    /// The MAC of `ip`, or a (rate-limited) ARP request and `NeighbourUnresolved`.
    fn resolve(&mut self, ip: Ipv4Addr, now_ms: u64, ctl: &mut Burst) -> Result<MacAddr, Drop> {
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
            push_arp_request(ctl, self.mac, n.source, ip);
        }
        Err(Drop::NeighbourUnresolved)
    }
}

/// Points the template of client packet `key`'s network at `addr:port` and
/// pushes its expiry to `now_ms` + the persistence timeout. When the table
/// is full, expired templates are purged first; false when there is still
/// no room (the client is then scheduled without a template).
fn refresh_template(
    templates: &mut FastMap<TemplateKey, Template>,
    key: &FlowKey,
    p: Persistence,
    addr: Ipv4Addr,
    port: u16,
    now_ms: u64,
) -> bool {
    let tk = TemplateKey::of(key, p);
    let expires_ms = now_ms.saturating_add(u64::from(p.timeout_s) * 1000);
    if let Some(t) = templates.get_mut(&tk) {
        if t.expires_ms <= now_ms || (t.addr, t.port) == (addr, port) {
            *t = Template {
                addr,
                port,
                expires_ms,
            };
        }
        return true;
    }
    if templates.len() >= MAX_TEMPLATES {
        templates.retain(|_, t| t.expires_ms > now_ms);
        if templates.len() >= MAX_TEMPLATES {
            return false;
        }
    }
    templates.insert(
        tk,
        Template {
            addr,
            port,
            expires_ms,
        },
    );
    true
}

/// Picks a free (LIP, port) for a new connection to `rs`, advancing the
/// worker's port cursor `next` through `min..=max`.
fn alloc_local(
    next: &mut u16,
    (min, max): (u16, u16),
    conns: &ConnTable,
    local_addrs: &[Ipv4Addr],
    rs: &ServerSnap,
    proto: u8,
) -> Option<FlowKey> {
    let n = local_addrs.len();
    if n == 0 {
        return None;
    }
    for probe in 0..PORT_PROBES {
        let port = *next;
        *next = if port >= max { min } else { port + 1 };
        let key = FlowKey {
            proto,
            src: rs.addr,
            dst: local_addrs[(usize::from(port) + probe) % n],
            sport: rs.port,
            dport: port,
        };
        if !conns.contains(&key) {
            return Some(key);
        }
    }
    None
}

/// The 5-tuple a packet towards the real server carries, from the conn's
/// reply key (RS → LIP).
fn to_server(out_key: &FlowKey) -> FlowKey {
    FlowKey {
        proto: out_key.proto,
        src: out_key.dst,
        dst: out_key.src,
        sport: out_key.dport,
        dport: out_key.sport,
    }
}

/// The IPv4 address at `at` of an unvalidated header, if the bytes are there.
#[inline]
fn peek_ipv4(l3: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = l3.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// Validates an IPv4 TCP/UDP packet (`l3`) whose direction is known.
#[inline]
fn parse_l4(l3: &[u8], dir: Dir, transit: bool) -> Result<Parsed, Drop> {
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
    let (sport, dport, flags) = match proto {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(l4).map_err(wire_drop)?;
            let flags = TcpFlags {
                syn: t.syn(),
                ack: t.ack(),
                fin: t.fin(),
                rst: t.rst(),
            };
            (t.src_port(), t.dst_port(), flags)
        }
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(l4).map_err(wire_drop)?;
            (u.src_port(), u.dst_port(), TcpFlags::default())
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
        dir,
        transit,
        flags,
        ttl: ip.ttl(),
        hl,
        tl,
    })
}

/// FNAT and NAT route the packet (TTL − 1): it must not expire here. DR
/// and TUN leave the packet's TTL alone.
#[inline]
fn check_ttl(mode: Forwarding, ttl: u8) -> Result<(), Drop> {
    if matches!(mode, Forwarding::Fnat | Forwarding::Nat) && ttl <= 1 {
        return Err(Drop::TtlExceeded);
    }
    Ok(())
}

/// How a client packet of a connection with reply key `out_key` (whose
/// source is the real server) is rewritten.
#[inline]
fn action_in(
    mode: Forwarding,
    out_key: &FlowKey,
    tunnel_src: Option<Ipv4Addr>,
) -> Result<Action, Drop> {
    Ok(match mode {
        Forwarding::Fnat | Forwarding::Nat => Action::Nat(to_server(out_key)),
        Forwarding::Dr => Action::Mac,
        Forwarding::Tun => Action::Tunnel {
            src: tunnel_src.ok_or(Drop::NoTunnelSource)?,
            dst: out_key.src,
        },
    })
}

/// TCP option kind of DPVS's TOA ("TCP option address").
pub const TOA_KIND: u8 = 254;
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
    (src, dst): (Ipv4Addr, Ipv4Addr),
    (client, client_port): (Ipv4Addr, u16),
) -> Option<usize> {
    let tcp_at = ETH_LEN + hl;
    let doff = TcpPacket::new_checked(buf.get(tcp_at..ETH_LEN + tl)?)
        .ok()?
        .header_len();
    let new_len = ETH_LEN + tl + TOA_LEN;
    if doff + TOA_LEN > 60 || tl + TOA_LEN > TUNNEL_MTU || new_len > buf.len() {
        return None;
    }
    let opt_at = tcp_at + doff;
    buf.copy_within(opt_at..ETH_LEN + tl, opt_at + TOA_LEN);
    let opt = &mut buf[opt_at..opt_at + TOA_LEN];
    opt[0] = TOA_KIND;
    opt[1] = TOA_LEN as u8;
    opt[2..4].copy_from_slice(&client_port.to_be_bytes());
    opt[4..8].copy_from_slice(&client.octets());
    {
        let mut tcp = TcpPacket::new_unchecked(&mut buf[tcp_at..new_len]);
        tcp.set_header_len(doff + TOA_LEN);
        tcp.fill_checksum(src, dst);
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[ETH_LEN..new_len]);
    ip.set_total_len((tl + TOA_LEN) as u16);
    ip.fill_checksum();
    Some(new_len)
}

/// Wraps the IPv4 packet of the frame in `buf` (total length `tl`, after
/// the Ethernet header) in an outer IPv4 header `src → dst`, protocol 4
/// (IPIP, RFC 2003). As LVS does, the outer header copies the inner TOS,
/// DF flag and TTL; its identification is 0. The inner packet is untouched
/// (Ethernet padding after it is dropped). Returns the new frame length.
fn encapsulate(buf: &mut [u8], tl: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize, Drop> {
    if tl + IPV4_HEADER_LEN > TUNNEL_MTU {
        return Err(Drop::TunnelTooBig);
    }
    let inner = ETH_LEN..ETH_LEN + tl;
    let new_len = inner.end + IPV4_HEADER_LEN;
    if new_len > buf.len() {
        return Err(Drop::NoRoom);
    }
    let (tos, df, ttl) = {
        let ip = Ipv4Packet::new_unchecked(&buf[inner.clone()]);
        (ip.dscp_ecn(), ip.dont_frag(), ip.ttl())
    };
    buf.copy_within(inner, ETH_LEN + IPV4_HEADER_LEN);
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
/// updates the IPv4 and TCP/UDP checksums incrementally (RFC 1624).
/// The packet was validated by the caller (`hl`/`tl` are its lengths).
fn rewrite(l3: &mut [u8], hl: usize, tl: usize, old: &FlowKey, new: &FlowKey) {
    let (ob, nb) = (tuple_bytes(old), tuple_bytes(new));
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut *l3);
        let ttl = ip.ttl();
        let proto = u8::from(ip.protocol());
        let c = checksum::adjust(ip.checksum(), &ob[..8], &nb[..8]);
        let c = checksum::adjust(c, &[ttl, proto], &[ttl - 1, proto]);
        ip.set_src_addr(new.src);
        ip.set_dst_addr(new.dst);
        ip.set_ttl(ttl - 1);
        ip.set_checksum(c);
    }
    let Some(l4) = l3.get_mut(hl..tl) else {
        return;
    };
    if old.proto == 6 {
        let mut tcp = TcpPacket::new_unchecked(l4);
        let c = checksum::adjust(tcp.checksum(), &ob, &nb);
        tcp.set_src_port(new.sport);
        tcp.set_dst_port(new.dport);
        tcp.set_checksum(c);
    } else {
        let mut udp = UdpPacket::new_unchecked(l4);
        let c = crate::wire::udp::adjust_checksum(udp.checksum(), &ob, &nb);
        udp.set_checksum(c);
        udp.set_src_port(new.sport);
        udp.set_dst_port(new.dport);
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
    let at = match old.proto {
        6 => ihl + 16,
        _ => ihl + 6,
    };
    if let Some(field) = quote.get_mut(at..at + 2) {
        let c = u16::from_be_bytes([field[0], field[1]]);
        let c = if old.proto == 6 {
            checksum::adjust(c, &ob, &nb)
        } else {
            crate::wire::udp::adjust_checksum(c, &ob, &nb)
        };
        field.copy_from_slice(&c.to_be_bytes());
    }
    quote[ihl..ihl + 2].copy_from_slice(&new.sport.to_be_bytes());
    quote[ihl + 2..ihl + 4].copy_from_slice(&new.dport.to_be_bytes());
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
mod tests {
    use super::*;
    use crate::command::{Protocol, Scheduler};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const LB_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 1]);
    const CLIENT_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 2]);
    const RS_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 3]);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
    const RS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
    const LIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 200);

    fn snapshot() -> Arc<Snapshot> {
        let key = ServiceKey {
            addr: VIP.into(),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let ukey = ServiceKey {
            addr: VIP.into(),
            port: 53,
            protocol: Protocol::Udp,
        };
        let svc = |key: ServiceKey, port| ServiceSnap {
            key,
            stats: Arc::default(),
            servers: vec![ServerSnap {
                addr: RS,
                port,
                stats: Arc::default(),
            }],
            table: SchedTable::build(Scheduler::Rr, &[1]),
            local_addrs: vec![LIP],
        };
        let mut snap = Snapshot {
            services: vec![svc(key, 8080), svc(ukey, 5353)],
            owned_vips: vec![VIP],
            local_addrs: vec![LIP],
            neighbours: vec![(RS, LIP)],
            ..Snapshot::default()
        };
        snap.lookup.insert((VIP, 80, 6), 0);
        snap.lookup.insert((VIP, 53, 17), 1);
        Arc::new(snap)
    }

    fn engine() -> (Engine, Burst) {
        let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
        let mut ctl = Burst::new(16);
        e.set_snapshot(snapshot(), 0, &mut ctl);
        (e, ctl)
    }

    fn arp(op: ArpOperation, smac: MacAddr, sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
        let mut ctl = Burst::new(1);
        push_arp(&mut ctl, smac, op, sip, MacAddr::default(), tip, LB_MAC);
        ctl.frames()[0].data().to_vec()
    }

    fn tcp(
        src: (MacAddr, Ipv4Addr, u16),
        dst: (MacAddr, Ipv4Addr, u16),
        syn: bool,
        ack: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        tcp_ttl(src, dst, syn, ack, payload, 64)
    }

    fn tcp_ttl(
        src: (MacAddr, Ipv4Addr, u16),
        dst: (MacAddr, Ipv4Addr, u16),
        syn: bool,
        ack: bool,
        payload: &[u8],
        ttl: u8,
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
            .ipv4(src.1.octets(), dst.1.octets(), ttl)
            .tcp(src.2, dst.2, 1000, 65535);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(7);
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("build tcp");
        out
    }

    fn udp(
        src: (MacAddr, Ipv4Addr, u16),
        dst: (MacAddr, Ipv4Addr, u16),
        payload: &[u8],
    ) -> Vec<u8> {
        udp_ttl(src, dst, payload, 64)
    }

    fn udp_ttl(
        src: (MacAddr, Ipv4Addr, u16),
        dst: (MacAddr, Ipv4Addr, u16),
        payload: &[u8],
        ttl: u8,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
            .ipv4(src.1.octets(), dst.1.octets(), ttl)
            .udp(src.2, dst.2)
            .write(&mut out, payload)
            .expect("build udp");
        out
    }

    /// Checks the frame with etherparse (independent checksum code) and
    /// returns (src mac, dst mac, src ip, dst ip, sport, dport, ttl).
    /// Parses an Ethernet + IPv4 frame with etherparse and checks the IPv4
    /// header checksum; returns the packet, its Ethernet and its IPv4 slices.
    fn checked_ipv4(
        frame: &[u8],
    ) -> (
        SlicedPacket<'_>,
        etherparse::Ethernet2Slice<'_>,
        etherparse::Ipv4Slice<'_>,
    ) {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses our output");
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link.clone() else {
            panic!("not ethernet")
        };
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net.clone() else {
            panic!("not ipv4")
        };
        let h = ip.header();
        assert_eq!(
            h.to_header().calc_header_checksum(),
            h.header_checksum(),
            "IPv4 checksum"
        );
        (p, eth, ip)
    }

    fn inspect(frame: &[u8]) -> (MacAddr, MacAddr, Ipv4Addr, Ipv4Addr, u16, u16, u8) {
        let (p, eth, ip) = checked_ipv4(frame);
        let h = ip.header();
        let (sport, dport) = match p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let want = t
                    .to_header()
                    .calc_checksum_ipv4(&h.to_header(), t.payload())
                    .expect("csum");
                assert_eq!(want, t.checksum(), "TCP checksum");
                (t.source_port(), t.destination_port())
            }
            Some(TransportSlice::Udp(u)) => {
                let want = u
                    .to_header()
                    .calc_checksum_ipv4(&h.to_header(), u.payload())
                    .expect("csum");
                assert_eq!(want, u.checksum(), "UDP checksum");
                (u.source_port(), u.destination_port())
            }
            _ => panic!("no transport"),
        };
        (
            MacAddr(eth.source()),
            MacAddr(eth.destination()),
            Ipv4Addr::from(h.source()),
            Ipv4Addr::from(h.destination()),
            sport,
            dport,
            h.ttl(),
        )
    }

    fn resolve_rs(e: &mut Engine, ctl: &mut Burst) {
        let mut reply = arp(ArpOperation::Reply, RS_MAC, RS, LIP);
        assert_eq!(e.handle(&mut reply, 1, ctl), Verdict::Ignore);
    }

    #[test]
    fn announces_addresses_and_resolves_real_servers_on_publish() {
        let (_, ctl) = engine();
        let arps: Vec<ArpRepr> = ctl
            .frames()
            .iter()
            .map(|f| {
                ArpRepr::parse(&ArpPacket::new_checked(&f.data()[ETH_LEN..]).expect("arp"))
                    .expect("repr")
            })
            .collect();
        // Gratuitous ARP for the VIP and the LIP, and a request for the RS.
        assert!(arps
            .iter()
            .any(|a| a.source_protocol_addr == VIP && a.target_protocol_addr == VIP));
        assert!(arps
            .iter()
            .any(|a| a.source_protocol_addr == LIP && a.target_protocol_addr == LIP));
        assert!(arps
            .iter()
            .any(|a| a.source_protocol_addr == LIP && a.target_protocol_addr == RS));
    }

    #[test]
    fn answers_arp_for_vip_and_lip_only() {
        let (mut e, mut ctl) = engine();
        for ip in [VIP, LIP] {
            let mut req = arp(ArpOperation::Request, CLIENT_MAC, CLIENT, ip);
            assert_eq!(e.handle(&mut req, 0, &mut ctl), Verdict::Forward);
            let eth = EthernetFrame::new_checked(&req[..]).expect("eth");
            assert_eq!(eth.dst_addr(), CLIENT_MAC);
            let r =
                ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).expect("arp")).expect("repr");
            assert_eq!(r.operation, ArpOperation::Reply);
            assert_eq!(
                (r.source_hardware_addr, r.source_protocol_addr),
                (LB_MAC, ip)
            );
            assert_eq!(
                (r.target_hardware_addr, r.target_protocol_addr),
                (CLIENT_MAC, CLIENT)
            );
        }
        let mut other = arp(
            ArpOperation::Request,
            CLIENT_MAC,
            CLIENT,
            Ipv4Addr::new(10, 99, 0, 1),
        );
        assert_eq!(e.handle(&mut other, 0, &mut ctl), Verdict::Ignore);
    }

    #[test]
    fn fnat_tcp_round_trip_with_valid_checksums() {
        let (mut e, mut ctl) = engine();
        ctl.clear();
        let mut syn = tcp(
            (CLIENT_MAC, CLIENT, 33000),
            (LB_MAC, VIP, 80),
            true,
            false,
            b"",
        );
        // Real server not resolved yet: dropped, and an ARP request goes out.
        let mut early = syn.clone();
        assert_eq!(
            e.handle(&mut early, 500, &mut ctl),
            Verdict::Drop(Drop::NeighbourUnresolved)
        );
        assert_eq!(ctl.len(), 1);
        resolve_rs(&mut e, &mut ctl);

        assert_eq!(e.handle(&mut syn, 1000, &mut ctl), Verdict::Forward);
        let (smac, dmac, sip, dip, sport, dport, ttl) = inspect(&syn);
        assert_eq!((smac, dmac), (LB_MAC, RS_MAC));
        assert_eq!((sip, dip, dport, ttl), (LIP, RS, 8080, 63));
        assert!((40000..=40100).contains(&sport));
        assert_eq!(e.conn_count(), 1);

        // The reply comes back to the LIP and leaves as VIP → client.
        let mut synack = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, sport), true, true, b"");
        assert_eq!(e.handle(&mut synack, 1001, &mut ctl), Verdict::Forward);
        let (smac, dmac, sip, dip, sp, dp, _) = inspect(&synack);
        assert_eq!(
            (smac, dmac, sip, dip, sp, dp),
            (LB_MAC, CLIENT_MAC, VIP, CLIENT, 80, 33000)
        );

        // Data with payload keeps the same connection and valid checksums.
        let mut data = tcp(
            (CLIENT_MAC, CLIENT, 33000),
            (LB_MAC, VIP, 80),
            false,
            true,
            b"GET / HTTP/1.0\r\n\r\n",
        );
        assert_eq!(e.handle(&mut data, 1002, &mut ctl), Verdict::Forward);
        assert_eq!(inspect(&data).4, sport);
        let svc = &e.snap.services[0];
        assert_eq!(svc.stats.snapshot().conns, 1);
        assert_eq!(svc.stats.snapshot().in_pkts, 2);
        assert_eq!(svc.servers[0].stats.snapshot().out_pkts, 1);
    }

    #[test]
    fn fnat_udp_round_trip() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let mut q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
        assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
        let (_, _, sip, dip, sport, dport, _) = inspect(&q);
        assert_eq!((sip, dip, dport), (LIP, RS, 5353));
        let mut a = udp((RS_MAC, RS, 5353), (LB_MAC, LIP, sport), b"answer");
        assert_eq!(e.handle(&mut a, 11, &mut ctl), Verdict::Forward);
        assert_eq!(inspect(&a).2, VIP);
    }

    #[test]
    fn bad_packets_are_counted_under_their_reason() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let good = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
        let cases: Vec<(Vec<u8>, Drop)> = vec![
            (
                tcp((CLIENT_MAC, CLIENT, 2), (LB_MAC, VIP, 80), false, true, b""),
                Drop::NoConnection,
            ),
            (
                tcp((CLIENT_MAC, CLIENT, 3), (LB_MAC, VIP, 81), true, false, b""),
                Drop::NoService,
            ),
            (good[..ETH_LEN + 20 + 10].to_vec(), Drop::Truncated),
            (
                {
                    let mut f = good.clone();
                    f[ETH_LEN + 10] ^= 0xff;
                    f
                },
                Drop::BadChecksum,
            ),
            (
                {
                    let mut f = good.clone();
                    f[ETH_LEN] = 0x65;
                    f
                },
                Drop::Malformed,
            ),
            (
                tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, 40050), false, true, b""),
                Drop::NoConnection,
            ),
        ];
        for (mut f, want) in cases {
            assert_eq!(e.handle(&mut f, 0, &mut ctl), Verdict::Drop(want));
            assert!(e.drops.get(want) >= 1);
        }
        // Every prefix of a good frame: never a panic, never forwarded.
        for n in 0..good.len() {
            let mut f = good[..n].to_vec();
            assert_ne!(
                e.handle(&mut f, 0, &mut ctl),
                Verdict::Forward,
                "prefix {n}"
            );
        }
        // Traffic to addresses we do not own is the kernel's business.
        let mut other = tcp(
            (CLIENT_MAC, CLIENT, 1),
            (LB_MAC, Ipv4Addr::new(10, 99, 0, 1), 22),
            true,
            false,
            b"",
        );
        assert_eq!(e.handle(&mut other, 0, &mut ctl), Verdict::Ignore);
    }

    #[test]
    fn fragments_and_expiring_ttl_are_dropped() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let mut frag = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut frag[ETH_LEN..]);
            ip.set_more_frags(true);
            ip.fill_checksum();
        }
        assert_eq!(
            e.handle(&mut frag, 0, &mut ctl),
            Verdict::Drop(Drop::Fragment)
        );
        let mut low = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut low[ETH_LEN..]);
            ip.set_ttl(1);
            ip.fill_checksum();
        }
        assert_eq!(
            e.handle(&mut low, 0, &mut ctl),
            Verdict::Drop(Drop::TtlExceeded)
        );
    }

    #[test]
    fn burst_gives_the_same_results_as_frame_by_frame() {
        let c = |port| (CLIENT_MAC, CLIENT, port);
        let v = (LB_MAC, VIP, 80);
        let mut frames = vec![
            // Unresolved server: dropped, then the ARP reply in the same
            // burst resolves it for the frames after it.
            tcp(c(1), v, true, false, b""),
            arp(ArpOperation::Reply, RS_MAC, RS, LIP),
            tcp(c(1), v, true, false, b""),
            tcp(c(1), v, false, true, b"data"),
            tcp(c(2), v, false, true, b""),
            tcp(c(1), v, true, false, b"")[..ETH_LEN + 20 + 10].to_vec(),
            udp(c(3), (LB_MAC, VIP, 53), b"q"),
        ];
        // More frames than one pipeline chunk.
        for port in 0..(PIPELINE as u16 + 10) {
            frames.push(tcp(c(1000 + port), v, true, false, b""));
        }
        // Frame by frame with room to grow (the first ACK gets a TOA).
        let (mut single, mut ctl) = engine();
        let want: Vec<(Verdict, Vec<u8>)> = frames
            .iter()
            .map(|f| handle_grow(&mut single, f, 5, &mut ctl))
            .collect();
        let (mut burst, mut ctl) = engine();
        let mut rx = Burst::new(frames.len());
        for f in &frames {
            assert!(rx.push(f));
        }
        let mut got = Vec::new();
        burst.handle_burst(rx.frames_mut(), 5, &mut ctl, |f, v| {
            got.push((v, f.data().to_vec()));
        });
        assert_eq!(got, want);
        assert_eq!(want[0].0, Verdict::Drop(Drop::NeighbourUnresolved));
        assert_eq!(want[2].0, Verdict::Forward);
        assert_eq!(want[3].1.len(), frames[3].len() + TOA_LEN);
        assert_eq!(want[4].0, Verdict::Drop(Drop::NoConnection));
        assert_eq!(want[5].0, Verdict::Drop(Drop::Truncated));
        assert_eq!(burst.conn_count(), single.conn_count());
        assert_eq!(burst.conn_count(), 2 + PIPELINE + 10);
    }

    #[test]
    fn housekeeping_frees_idle_connections_within_a_sweep_period() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let mut syn = tcp((CLIENT_MAC, CLIENT, 7), (LB_MAC, VIP, 80), true, false, b"");
        assert_eq!(e.handle(&mut syn, 0, &mut ctl), Verdict::Forward);
        let timeout = u64::from(TcpState::SynRecv.timeout_ms());
        let mut now = 0;
        while now < timeout + SWEEP_PERIOD_MS {
            e.housekeeping(now, 64, &mut ctl);
            if now < timeout {
                assert_eq!(e.conn_count(), 1, "alive at {now} ms");
            }
            now += 10;
        }
        assert_eq!(e.conn_count(), 0);
        // Paced: a call right after visits (almost) nothing, not the budget.
        let before = e.swept;
        e.housekeeping(now, 1 << 20, &mut ctl);
        assert!(e.swept - before <= 1024 * 10 / SWEEP_PERIOD_MS as u128 + 1);
    }

    #[test]
    fn port_reuse_after_close_opens_a_new_connection() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let c = (CLIENT_MAC, CLIENT, 4242);
        let v = (LB_MAC, VIP, 80);
        let mut syn = tcp(c, v, true, false, b"");
        assert_eq!(e.handle(&mut syn, 0, &mut ctl), Verdict::Forward);
        let first = inspect(&syn).4;
        let mut rst = tcp(c, v, false, true, b"");
        rst[ETH_LEN + 20 + 13] |= 0x04; // RST
        Ipv4Packet::new_unchecked(&mut rst[ETH_LEN..]).fill_checksum();
        TcpPacket::new_unchecked(&mut rst[ETH_LEN + 20..]).fill_checksum(CLIENT, VIP);
        assert_eq!(e.handle(&mut rst, 1, &mut ctl), Verdict::Forward);
        let mut again = tcp(c, v, true, false, b"");
        assert_eq!(e.handle(&mut again, 2, &mut ctl), Verdict::Forward);
        assert_ne!(
            inspect(&again).4,
            first,
            "a new local port for the new connection"
        );
        assert_eq!(e.conn_count(), 1);
    }

    // ── NAT, DR and TUN ────────────────────────────────────────────────

    const VIP2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 101);
    const IFACE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

    /// VIP:80/tcp, VIP:53/udp and VIP2:80/tcp, all with `mode` to the one
    /// real server RS (ports 8080/5353 for NAT, the VIP's ports otherwise).
    fn mode_snapshot(
        mode: Forwarding,
        lips: &[Ipv4Addr],
        interface: Option<Ipv4Addr>,
    ) -> Arc<Snapshot> {
        let nat = mode == Forwarding::Nat;
        let (tport, uport) = if nat { (8080, 5353) } else { (80, 53) };
        let svc = |addr: Ipv4Addr, port, protocol, rs_port| ServiceSnap {
            key: ServiceKey {
                addr: addr.into(),
                port,
                protocol,
            },
            stats: Arc::default(),
            servers: vec![ServerSnap {
                addr: RS,
                port: rs_port,
                stats: Arc::default(),
            }],
            table: SchedTable::build(Scheduler::Rr, &[1]),
            local_addrs: lips.to_vec(),
        };
        let source = lips
            .first()
            .copied()
            .or(interface)
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut snap = Snapshot {
            services: vec![
                svc(VIP, 80, Protocol::Tcp, tport),
                svc(VIP, 53, Protocol::Udp, uport),
                svc(VIP2, 80, Protocol::Tcp, tport),
            ],
            owned_vips: vec![VIP, VIP2],
            local_addrs: lips.to_vec(),
            neighbours: vec![(RS, source)],
            forwarding: vec![mode; 3],
            nat_servers: if nat { vec![RS] } else { vec![] },
            interface_v4: interface,
            ..Snapshot::default()
        };
        snap.lookup.insert((VIP, 80, 6), 0);
        snap.lookup.insert((VIP, 53, 17), 1);
        snap.lookup.insert((VIP2, 80, 6), 2);
        Arc::new(snap)
    }

    /// An engine for `mode` with RS resolved (asked from `source`).
    fn mode_engine(
        mode: Forwarding,
        lips: &[Ipv4Addr],
        interface: Option<Ipv4Addr>,
    ) -> (Engine, Burst) {
        let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
        let mut ctl = Burst::new(16);
        e.set_snapshot(mode_snapshot(mode, lips, interface), 0, &mut ctl);
        resolve_rs(&mut e, &mut ctl);
        ctl.clear();
        (e, ctl)
    }

    /// Runs `frame` through [`Engine::handle_frame`] (which TUN can grow).
    fn handle_grow(e: &mut Engine, frame: &[u8], now: u64, ctl: &mut Burst) -> (Verdict, Vec<u8>) {
        let mut rx = Burst::new(1);
        assert!(rx.push(frame));
        let f = &mut rx.frames_mut()[0];
        let v = e.handle_frame(f, now, ctl);
        (v, f.data().to_vec())
    }

    #[test]
    fn nat_tcp_golden_both_directions() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let client = (CLIENT_MAC, CLIENT, 33000);
        // DNAT: client → VIP:80 leaves as client → RS:8080, TTL − 1.
        let mut syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
        assert_eq!(e.handle(&mut syn, 10, &mut ctl), Verdict::Forward);
        let want = tcp_ttl(
            (LB_MAC, CLIENT, 33000),
            (RS_MAC, RS, 8080),
            true,
            false,
            b"",
            63,
        );
        assert_eq!(syn, want);
        inspect(&syn);
        // SNAT: the reply RS:8080 → client (routed via us) leaves as VIP:80 → client.
        let mut synack = tcp((RS_MAC, RS, 8080), (LB_MAC, CLIENT, 33000), true, true, b"");
        assert_eq!(e.handle(&mut synack, 11, &mut ctl), Verdict::Forward);
        let want = tcp_ttl(
            (LB_MAC, VIP, 80),
            (CLIENT_MAC, CLIENT, 33000),
            true,
            true,
            b"",
            63,
        );
        assert_eq!(synack, want);
        inspect(&synack);
        // Data with payload, both ways.
        let body = b"GET / HTTP/1.0\r\n\r\n";
        let mut data = tcp(client, (LB_MAC, VIP, 80), false, true, body);
        assert_eq!(e.handle(&mut data, 12, &mut ctl), Verdict::Forward);
        let want = tcp_ttl(
            (LB_MAC, CLIENT, 33000),
            (RS_MAC, RS, 8080),
            false,
            true,
            body,
            63,
        );
        assert_eq!(data, want);
        let mut resp = tcp(
            (RS_MAC, RS, 8080),
            (LB_MAC, CLIENT, 33000),
            false,
            true,
            b"200 OK",
        );
        assert_eq!(e.handle(&mut resp, 13, &mut ctl), Verdict::Forward);
        let want = tcp_ttl(
            (LB_MAC, VIP, 80),
            (CLIENT_MAC, CLIENT, 33000),
            false,
            true,
            b"200 OK",
            63,
        );
        assert_eq!(resp, want);
        assert_eq!(e.conn_count(), 1);
        let svc = &e.snap.services[0];
        assert_eq!(svc.stats.snapshot().in_pkts, 2);
        assert_eq!(svc.stats.snapshot().out_pkts, 2);
    }

    #[test]
    fn nat_udp_golden_both_directions() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let mut q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
        assert_eq!(e.handle(&mut q, 10, &mut ctl), Verdict::Forward);
        let want = udp_ttl((LB_MAC, CLIENT, 5000), (RS_MAC, RS, 5353), b"query!", 63);
        assert_eq!(q, want);
        inspect(&q);
        let mut a = udp((RS_MAC, RS, 5353), (LB_MAC, CLIENT, 5000), b"answer");
        assert_eq!(e.handle(&mut a, 11, &mut ctl), Verdict::Forward);
        let want = udp_ttl((LB_MAC, VIP, 53), (CLIENT_MAC, CLIENT, 5000), b"answer", 63);
        assert_eq!(a, want);
        inspect(&a);
    }

    #[test]
    fn nat_real_servers_own_traffic_is_the_kernels() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let elsewhere = Ipv4Addr::new(192, 0, 2, 7);
        // No connection: the real server talking to some host through us.
        let mut other = tcp(
            (RS_MAC, RS, 8080),
            (LB_MAC, elsewhere, 443),
            true,
            false,
            b"",
        );
        assert_eq!(e.handle(&mut other, 1, &mut ctl), Verdict::Ignore);
        // Not TCP/UDP, bad checksum, fragments: not ours to judge either.
        let mut icmp = Vec::new();
        PacketBuilder::ethernet2(RS_MAC.0, LB_MAC.0)
            .ipv4(RS.octets(), elsewhere.octets(), 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut icmp, b"ping")
            .expect("icmp");
        assert_eq!(e.handle(&mut icmp, 1, &mut ctl), Verdict::Ignore);
        let mut bad = other.clone();
        bad[ETH_LEN + 10] ^= 0xff;
        assert_eq!(e.handle(&mut bad, 1, &mut ctl), Verdict::Ignore);
        // Someone else's traffic to the client is not looked at.
        let stranger = Ipv4Addr::new(10, 99, 0, 50);
        let mut s = tcp(
            (RS_MAC, stranger, 8080),
            (LB_MAC, CLIENT, 33000),
            true,
            true,
            b"",
        );
        assert_eq!(e.handle(&mut s, 1, &mut ctl), Verdict::Ignore);
        let drops: u64 = Drop::ALL.iter().map(|&d| e.drops.get(d)).sum();
        assert_eq!(drops, 0);
    }

    #[test]
    fn nat_same_client_port_through_two_vips_conflicts() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let client = (CLIENT_MAC, CLIENT, 33000);
        let mut a = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
        assert_eq!(e.handle(&mut a, 1, &mut ctl), Verdict::Forward);
        // Same RS:8080 and client:33000 behind VIP2: the replies could not
        // be told apart.
        let mut b = tcp(client, (LB_MAC, VIP2, 80), true, false, b"");
        assert_eq!(
            e.handle(&mut b, 2, &mut ctl),
            Verdict::Drop(Drop::ConnConflict)
        );
        assert_eq!(e.drops.get(Drop::ConnConflict), 1);
        assert_eq!(e.conn_count(), 1);
    }

    #[test]
    fn nat_and_fnat_drop_expiring_ttl_dr_does_not_touch_it() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let mut low = tcp_ttl(
            (CLIENT_MAC, CLIENT, 1),
            (LB_MAC, VIP, 80),
            true,
            false,
            b"",
            1,
        );
        assert_eq!(
            e.handle(&mut low, 0, &mut ctl),
            Verdict::Drop(Drop::TtlExceeded)
        );
        assert_eq!(e.conn_count(), 0, "no connection for a dropped SYN");
        let (mut e, mut ctl) = mode_engine(Forwarding::Dr, &[], None);
        let mut low = tcp_ttl(
            (CLIENT_MAC, CLIENT, 1),
            (LB_MAC, VIP, 80),
            true,
            false,
            b"",
            1,
        );
        assert_eq!(e.handle(&mut low, 0, &mut ctl), Verdict::Forward);
        assert_eq!(inspect(&low).6, 1);
    }

    #[test]
    fn dr_tcp_and_udp_golden_mac_rewrite_only() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Dr, &[], None);
        let client = (CLIENT_MAC, CLIENT, 33000);
        for (syn, ack, body) in [(true, false, &b""[..]), (false, true, &b"GET /"[..])] {
            let mut f = tcp(client, (LB_MAC, VIP, 80), syn, ack, body);
            assert_eq!(e.handle(&mut f, 5, &mut ctl), Verdict::Forward);
            let want = tcp((LB_MAC, CLIENT, 33000), (RS_MAC, VIP, 80), syn, ack, body);
            assert_eq!(f, want);
            inspect(&f);
        }
        let mut q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
        assert_eq!(e.handle(&mut q, 6, &mut ctl), Verdict::Forward);
        assert_eq!(q, udp((LB_MAC, CLIENT, 5000), (RS_MAC, VIP, 53), b"query!"));
        assert_eq!(e.conn_count(), 2);
        // The ACK established the TCP connection (one-way state tracking).
        let (idx, _) = e
            .conns
            .lookup(
                &FlowKey {
                    proto: 6,
                    src: CLIENT,
                    dst: VIP,
                    sport: 33000,
                    dport: 80,
                },
                7,
            )
            .expect("conn");
        assert_eq!(e.conns.get(idx).map(|c| c.tcp), Some(TcpState::Established));
        // Replies go straight to the client: one reaching us is nobody's.
        let mut reply = tcp((RS_MAC, RS, 80), (LB_MAC, CLIENT, 33000), false, true, b"");
        assert_eq!(e.handle(&mut reply, 8, &mut ctl), Verdict::Ignore);
    }

    /// The frame TUN must produce: Ethernet LB → RS, an outer IPv4 header
    /// `src → RS` built by etherparse (protocol 4, DF, ident 0, TTL 64),
    /// then the client's IP packet unchanged.
    fn tunnelled(inner_frame: &[u8], src: Ipv4Addr) -> Vec<u8> {
        let inner = &inner_frame[ETH_LEN..];
        let mut outer = etherparse::Ipv4Header::new(
            inner.len() as u16,
            64,
            etherparse::IpNumber::IPV4,
            src.octets(),
            RS.octets(),
        )
        .expect("outer");
        outer.header_checksum = outer.calc_header_checksum();
        let mut out = Vec::new();
        etherparse::Ethernet2Header {
            source: LB_MAC.0,
            destination: RS_MAC.0,
            ether_type: etherparse::EtherType::IPV4,
        }
        .write(&mut out)
        .expect("eth");
        outer.write(&mut out).expect("ip");
        out.extend_from_slice(inner);
        out
    }

    #[test]
    fn tun_tcp_and_udp_golden_ipip() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[LIP], None);
        let syn = tcp(
            (CLIENT_MAC, CLIENT, 33000),
            (LB_MAC, VIP, 80),
            true,
            false,
            b"",
        );
        let (v, out) = handle_grow(&mut e, &syn, 5, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out, tunnelled(&syn, LIP));
        let data = tcp(
            (CLIENT_MAC, CLIENT, 33000),
            (LB_MAC, VIP, 80),
            false,
            true,
            b"GET /",
        );
        let (v, out) = handle_grow(&mut e, &data, 6, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out, tunnelled(&data, LIP));
        // etherparse agrees: IPv4 with protocol 4 carrying the untouched
        // client packet (its checksums still valid).
        let p = SlicedPacket::from_ethernet(&out).expect("parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header().protocol(), etherparse::IpNumber::IPV4);
        let mut inner = out[..ETH_LEN].to_vec();
        inner.extend_from_slice(ip.payload().payload);
        let (_, _, sip, dip, sport, dport, ttl) = inspect(&inner);
        assert_eq!((sip, dip, sport, dport, ttl), (CLIENT, VIP, 33000, 80, 64));

        let q = udp((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 53), b"query!");
        let (v, out) = handle_grow(&mut e, &q, 7, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out, tunnelled(&q, LIP));
        assert_eq!(e.conn_count(), 2);
    }

    #[test]
    fn tun_source_is_the_lip_else_the_interface_address() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[], Some(IFACE));
        let syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
        let (v, out) = handle_grow(&mut e, &syn, 5, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out, tunnelled(&syn, IFACE));

        let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[], None);
        let (v, _) = handle_grow(&mut e, &syn, 5, &mut ctl);
        assert_eq!(v, Verdict::Drop(Drop::NoTunnelSource));
        assert_eq!(e.conn_count(), 0);
    }

    #[test]
    fn tun_needs_room_and_respects_the_mtu() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[LIP], None);
        // A plain slice cannot grow.
        let mut syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
        assert_eq!(e.handle(&mut syn, 5, &mut ctl), Verdict::Drop(Drop::NoRoom));
        // A full-size datagram (1500 bytes of IP) plus 20 exceeds the MTU.
        let big = udp(
            (CLIENT_MAC, CLIENT, 5000),
            (LB_MAC, VIP, 53),
            &[0u8; 1500 - 28],
        );
        let (v, out) = handle_grow(&mut e, &big, 6, &mut ctl);
        assert_eq!(v, Verdict::Drop(Drop::TunnelTooBig));
        assert_eq!(out, big, "a dropped frame keeps its length");
        let fits = udp(
            (CLIENT_MAC, CLIENT, 5000),
            (LB_MAC, VIP, 53),
            &[0u8; 1480 - 28],
        );
        let (v, out) = handle_grow(&mut e, &fits, 7, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out.len(), ETH_LEN + 1500);
    }

    #[test]
    fn burst_grows_tunnelled_frames() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Tun, &[LIP], None);
        let frames = [
            tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b""),
            udp((CLIENT_MAC, CLIENT, 2), (LB_MAC, VIP, 53), b"q"),
        ];
        let mut rx = Burst::new(2);
        for f in &frames {
            assert!(rx.push(f));
        }
        let mut got = Vec::new();
        e.handle_burst(rx.frames_mut(), 5, &mut ctl, |f, v| {
            got.push((v, f.data().to_vec()));
        });
        let want: Vec<(Verdict, Vec<u8>)> = frames
            .iter()
            .map(|f| (Verdict::Forward, tunnelled(f, LIP)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn real_servers_are_asked_from_the_lip_interface_or_as_a_probe() {
        for (lips, iface, want) in [
            (&[LIP][..], Some(IFACE), LIP),
            (&[][..], Some(IFACE), IFACE),
            (&[][..], None, Ipv4Addr::UNSPECIFIED),
        ] {
            let mut e = Engine::new(0, LB_MAC, 16, (40000, 40100), Arc::default());
            let mut ctl = Burst::new(16);
            e.set_snapshot(mode_snapshot(Forwarding::Dr, lips, iface), 0, &mut ctl);
            let asks: Vec<ArpRepr> = ctl
                .frames()
                .iter()
                .filter_map(|f| ArpPacket::new_checked(&f.data()[ETH_LEN..]).ok())
                .filter_map(|a| ArpRepr::parse(&a).ok())
                .filter(|a| a.target_protocol_addr == RS)
                .collect();
            assert_eq!(asks.len(), 1);
            assert_eq!(asks[0].source_protocol_addr, want);
            // Linux answers a probe to our MAC with target 0.0.0.0: learnt.
            let mut reply = arp(ArpOperation::Reply, RS_MAC, RS, want);
            assert_eq!(e.handle(&mut reply, 1, &mut ctl), Verdict::Ignore);
            let mut syn = tcp((CLIENT_MAC, CLIENT, 1), (LB_MAC, VIP, 80), true, false, b"");
            assert_eq!(e.handle(&mut syn, 2, &mut ctl), Verdict::Forward);
            assert_eq!(inspect(&syn).1, RS_MAC);
        }
    }

    // ── Persistence and quiescent servers ──────────────────────────────

    const RS2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 4);
    const RS2_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 4]);

    /// Counters kept across snapshots, so connections keep their
    /// destinations (as the control plane does).
    struct Stats {
        svc: Arc<Traffic>,
        rs: [Arc<Traffic>; 2],
    }

    impl Stats {
        fn new() -> Stats {
            Stats {
                svc: Arc::default(),
                rs: [Arc::default(), Arc::default()],
            }
        }
    }

    /// FNAT VIP:80/tcp, rr over RS and RS2 (both :8080) with `weights`.
    fn rr_snapshot(stats: &Stats, weights: &[u32; 2], p: Option<Persistence>) -> Arc<Snapshot> {
        let server = |addr, i: usize| ServerSnap {
            addr,
            port: 8080,
            stats: Arc::clone(&stats.rs[i]),
        };
        let mut snap = Snapshot {
            services: vec![ServiceSnap {
                key: ServiceKey {
                    addr: VIP.into(),
                    port: 80,
                    protocol: Protocol::Tcp,
                },
                stats: Arc::clone(&stats.svc),
                servers: vec![server(RS, 0), server(RS2, 1)],
                table: SchedTable::build(Scheduler::Rr, weights),
                local_addrs: vec![LIP],
            }],
            owned_vips: vec![VIP],
            local_addrs: vec![LIP],
            neighbours: vec![(RS, LIP), (RS2, LIP)],
            persistence: vec![p],
            ..Snapshot::default()
        };
        snap.lookup.insert((VIP, 80, 6), 0);
        Arc::new(snap)
    }

    fn rr_engine(stats: &Stats, p: Option<Persistence>) -> (Engine, Burst) {
        let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
        let mut ctl = Burst::new(16);
        e.set_snapshot(rr_snapshot(stats, &[1, 1], p), 0, &mut ctl);
        for (mac, ip) in [(RS_MAC, RS), (RS2_MAC, RS2)] {
            let mut reply = arp(ArpOperation::Reply, mac, ip, LIP);
            assert_eq!(e.handle(&mut reply, 0, &mut ctl), Verdict::Ignore);
        }
        ctl.clear();
        (e, ctl)
    }

    /// Sends `frame` at `now`; returns the real server it went to.
    fn sent_to(e: &mut Engine, mut frame: Vec<u8>, now: u64, ctl: &mut Burst) -> Ipv4Addr {
        assert_eq!(e.handle(&mut frame, now, ctl), Verdict::Forward);
        inspect(&frame).3
    }

    /// A SYN from `client:port` to VIP:80.
    fn syn_from(client: Ipv4Addr, port: u16) -> Vec<u8> {
        tcp(
            (CLIENT_MAC, client, port),
            (LB_MAC, VIP, 80),
            true,
            false,
            b"",
        )
    }

    const PERSIST: Persistence = Persistence {
        timeout_s: 10,
        granularity: 32,
    };

    #[test]
    fn without_persistence_rr_alternates_between_servers() {
        let stats = Stats::new();
        let (mut e, mut ctl) = rr_engine(&stats, None);
        let to: Vec<_> = (0..4)
            .map(|i| sent_to(&mut e, syn_from(CLIENT, 1000 + i), 1, &mut ctl))
            .collect();
        assert_eq!(to, [RS, RS2, RS, RS2]);
    }

    #[test]
    fn persistence_keeps_a_client_on_its_first_server() {
        let stats = Stats::new();
        let (mut e, mut ctl) = rr_engine(&stats, Some(PERSIST));
        let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
        for i in 1..6 {
            assert_eq!(
                sent_to(
                    &mut e,
                    syn_from(CLIENT, 1000 + i),
                    1 + u64::from(i),
                    &mut ctl
                ),
                first,
                "connection {i} of the same client"
            );
        }
        // Another client is scheduled (rr moved on once only).
        let other = Ipv4Addr::new(10, 99, 0, 77);
        assert_ne!(sent_to(&mut e, syn_from(other, 1000), 10, &mut ctl), first);
        assert_eq!(e.conn_count(), 7);
    }

    #[test]
    fn persistence_granularity_groups_client_networks() {
        let near = Ipv4Addr::new(10, 99, 0, 77);
        let far = Ipv4Addr::new(10, 98, 0, 2);
        let stats = Stats::new();
        let p24 = Persistence {
            granularity: 24,
            ..PERSIST
        };
        let (mut e, mut ctl) = rr_engine(&stats, Some(p24));
        let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
        assert_eq!(sent_to(&mut e, syn_from(near, 1000), 2, &mut ctl), first);
        assert_ne!(sent_to(&mut e, syn_from(far, 1000), 3, &mut ctl), first);
        // /32: the neighbour is a client of its own.
        let (mut e, mut ctl) = rr_engine(&Stats::new(), Some(PERSIST));
        let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
        assert_ne!(sent_to(&mut e, syn_from(near, 1000), 2, &mut ctl), first);
        assert_eq!(
            Persistence {
                granularity: 0,
                ..PERSIST
            }
            .network(CLIENT),
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            Persistence {
                granularity: 200,
                ..PERSIST
            }
            .network(CLIENT),
            CLIENT
        );
    }

    #[test]
    fn templates_live_timeout_after_the_clients_last_packet() {
        let stats = Stats::new();
        let (mut e, mut ctl) = rr_engine(&stats, Some(PERSIST));
        let t = u64::from(PERSIST.timeout_s) * 1000;
        let c = (CLIENT_MAC, CLIENT, 1000);
        let v = (LB_MAC, VIP, 80);
        let first = sent_to(&mut e, tcp(c, v, true, false, b""), 0, &mut ctl);
        // The client keeps talking on its connection past the timeout...
        for now in [t / 2, t - 1, t + t / 2] {
            assert_eq!(
                sent_to(&mut e, tcp(c, v, false, true, b"x"), now, &mut ctl),
                first
            );
        }
        // ...so its new connections still go to the same server,
        let last = t + t / 2;
        assert_eq!(
            sent_to(&mut e, syn_from(CLIENT, 1001), last + t - 1, &mut ctl),
            first
        );
        // until it has been silent for the whole timeout: rescheduled (rr's
        // next pick is the other server).
        let quiet = last + t - 1 + t;
        assert_ne!(
            sent_to(&mut e, syn_from(CLIENT, 1002), quiet, &mut ctl),
            first
        );
    }

    #[test]
    fn persistent_client_stays_on_a_quiescent_server_until_it_is_removed() {
        let stats = Stats::new();
        let (mut e, mut ctl) = rr_engine(&stats, Some(PERSIST));
        let first = sent_to(&mut e, syn_from(CLIENT, 1000), 1, &mut ctl);
        let weights = if first == RS { [0, 1] } else { [1, 0] };
        e.set_snapshot(rr_snapshot(&stats, &weights, Some(PERSIST)), 2, &mut ctl);
        // As LVS: the template still places the client on its server.
        assert_eq!(sent_to(&mut e, syn_from(CLIENT, 1001), 3, &mut ctl), first);
        // A new client never gets the quiescent server.
        let other = Ipv4Addr::new(10, 99, 0, 77);
        assert_ne!(sent_to(&mut e, syn_from(other, 1000), 4, &mut ctl), first);
        // Removed from the service: the template no longer applies.
        let mut snap = rr_snapshot(&stats, &[1, 1], Some(PERSIST));
        let keep = usize::from(first == RS);
        if let Some(s) = Arc::get_mut(&mut snap) {
            let svc = &mut s.services[0];
            svc.servers = vec![svc.servers.remove(keep)];
            svc.table = SchedTable::build(Scheduler::Rr, &[1]);
        }
        e.set_snapshot(snap, 5, &mut ctl);
        assert_ne!(sent_to(&mut e, syn_from(CLIENT, 1002), 6, &mut ctl), first);
    }

    #[test]
    fn weight_zero_is_quiescent_existing_connections_continue() {
        let stats = Stats::new();
        let (mut e, mut ctl) = rr_engine(&stats, None);
        let c = (CLIENT_MAC, CLIENT, 1000);
        let v = (LB_MAC, VIP, 80);
        let first = sent_to(&mut e, tcp(c, v, true, false, b""), 1, &mut ctl);
        let weights = if first == RS { [0, 1] } else { [1, 0] };
        e.set_snapshot(rr_snapshot(&stats, &weights, None), 2, &mut ctl);
        // The established connection keeps its server...
        for now in 3..6 {
            assert_eq!(
                sent_to(&mut e, tcp(c, v, false, true, b"x"), now, &mut ctl),
                first
            );
        }
        // ...and every new one goes to the other.
        for i in 1..5 {
            assert_ne!(
                sent_to(&mut e, syn_from(CLIENT, 1000 + i), 10, &mut ctl),
                first
            );
        }
    }

    // ── ICMP errors ────────────────────────────────────────────────────

    /// An ICMP "fragmentation needed" (MTU 1400) `src → dst` quoting `quoted`
    /// (an IPv4 packet), built by etherparse.
    fn frag_needed(mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
        let t = etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        );
        let mut out = Vec::new();
        PacketBuilder::ethernet2(mac.0, LB_MAC.0)
            .ipv4(src.octets(), dst.octets(), 64)
            .icmpv4(t)
            .write(&mut out, quoted)
            .expect("build icmp");
        out
    }

    /// The IPv4 packet of an Ethernet frame (without padding).
    fn ip_of(frame: &[u8]) -> Vec<u8> {
        let tl = usize::from(
            Ipv4Packet::new_checked(&frame[ETH_LEN..])
                .expect("ipv4")
                .total_len(),
        );
        frame[ETH_LEN..ETH_LEN + tl].to_vec()
    }

    /// `ip` with its TTL set to `ttl` and its header checksum recomputed.
    fn with_ttl(mut ip: Vec<u8>, ttl: u8) -> Vec<u8> {
        let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
        p.set_ttl(ttl);
        p.fill_checksum();
        ip
    }

    /// Checks an ICMP error frame with etherparse (outer IPv4 and ICMP
    /// checksums, MTU kept); returns (dst mac, src, dst, ttl, quoted packet).
    fn inspect_icmp(frame: &[u8]) -> (MacAddr, Ipv4Addr, Ipv4Addr, u8, Vec<u8>) {
        let (p, eth, ip) = checked_ipv4(frame);
        let h = ip.header();
        let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
            panic!("not icmp")
        };
        let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
        assert_eq!(want, icmp.checksum(), "ICMP checksum");
        assert_eq!(
            Icmpv4Packet::new_checked(icmp.slice())
                .expect("icmp")
                .next_hop_mtu(),
            1400
        );
        // The quote is a whole packet here: etherparse checks it too.
        let inner = etherparse::Ipv4Slice::from_slice(icmp.payload()).expect("quoted ipv4");
        let ih = inner.header();
        assert_eq!(
            ih.to_header().calc_header_checksum(),
            ih.header_checksum(),
            "quoted IPv4 checksum"
        );
        (
            MacAddr(eth.destination()),
            h.source_addr(),
            h.destination_addr(),
            h.ttl(),
            icmp.payload().to_vec(),
        )
    }

    #[test]
    fn fnat_icmp_errors_are_translated_both_ways_golden() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let client = (CLIENT_MAC, CLIENT, 33000);
        let orig = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
        let mut syn = orig.clone();
        assert_eq!(e.handle(&mut syn, 1, &mut ctl), Verdict::Forward);
        let lport = inspect(&syn).4;

        // The real server (or a router on its side) cannot take the size of
        // LIP → RS: the client gets the error about its own packet.
        let mut err = frag_needed(RS_MAC, RS, LIP, &ip_of(&syn));
        assert_eq!(e.handle(&mut err, 2, &mut ctl), Verdict::Forward);
        let (mac, src, dst, ttl, quote) = inspect_icmp(&err);
        assert_eq!((mac, src, dst, ttl), (CLIENT_MAC, VIP, CLIENT, 63));
        // Golden: exactly the client's packet, as it left us (TTL 63).
        assert_eq!(quote, with_ttl(ip_of(&orig), 63));

        // The client side cannot take the size of a reply VIP → client: the
        // real server gets the error about what it sent, RS → LIP.
        let orig_reply = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, lport), true, true, b"");
        let mut reply = orig_reply.clone();
        assert_eq!(e.handle(&mut reply, 3, &mut ctl), Verdict::Forward);
        let mut err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&reply));
        assert_eq!(e.handle(&mut err, 4, &mut ctl), Verdict::Forward);
        let (mac, src, dst, ttl, quote) = inspect_icmp(&err);
        assert_eq!((mac, src, dst, ttl), (RS_MAC, LIP, RS, 63));
        assert_eq!(quote, with_ttl(ip_of(&orig_reply), 63));
    }

    #[test]
    fn nat_icmp_errors_are_translated_both_ways_golden() {
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let client = (CLIENT_MAC, CLIENT, 33000);
        let orig = udp(client, (LB_MAC, VIP, 53), b"query");
        let mut q = orig.clone();
        assert_eq!(e.handle(&mut q, 1, &mut ctl), Verdict::Forward);
        // From the real server to the client (transit through us).
        let mut err = frag_needed(RS_MAC, RS, CLIENT, &ip_of(&q));
        err[..6].copy_from_slice(&LB_MAC.0);
        assert_eq!(e.handle(&mut err, 2, &mut ctl), Verdict::Forward);
        let (mac, src, dst, _, quote) = inspect_icmp(&err);
        assert_eq!((mac, src, dst), (CLIENT_MAC, VIP, CLIENT));
        assert_eq!(quote, with_ttl(ip_of(&orig), 63));

        // From the client about a reply VIP → client: to the real server,
        // about RS → client; the outer source (the client) is kept.
        let orig_reply = udp((RS_MAC, RS, 5353), (LB_MAC, CLIENT, 33000), b"answer");
        let mut reply = orig_reply.clone();
        assert_eq!(e.handle(&mut reply, 3, &mut ctl), Verdict::Forward);
        let mut err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&reply));
        assert_eq!(e.handle(&mut err, 4, &mut ctl), Verdict::Forward);
        let (mac, src, dst, _, quote) = inspect_icmp(&err);
        assert_eq!((mac, src, dst), (RS_MAC, CLIENT, RS));
        assert_eq!(quote, with_ttl(ip_of(&orig_reply), 63));
    }

    #[test]
    fn dr_and_tun_pass_client_side_icmp_errors_to_the_real_server() {
        for mode in [Forwarding::Dr, Forwarding::Tun] {
            let (mut e, mut ctl) = mode_engine(mode, &[LIP], None);
            let client = (CLIENT_MAC, CLIENT, 33000);
            let mut syn = tcp(client, (LB_MAC, VIP, 80), true, false, b"");
            assert_eq!(
                handle_grow(&mut e, &syn.clone(), 1, &mut ctl).0,
                Verdict::Forward
            );
            // The real server replied VIP → client directly; the client side
            // reports an error about that reply.
            let reply = tcp(
                (RS_MAC, VIP, 80),
                (CLIENT_MAC, CLIENT, 33000),
                true,
                true,
                b"",
            );
            let err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&reply));
            let (v, out) = handle_grow(&mut e, &err, 2, &mut ctl);
            assert_eq!(v, Verdict::Forward, "{mode}");
            assert_eq!(&out[..6], &RS_MAC.0, "{mode}");
            let body = &err[ETH_LEN..];
            if mode == Forwarding::Dr {
                assert_eq!(&out[ETH_LEN..], body, "DR: untouched");
            } else {
                assert_eq!(
                    &out[ETH_LEN + 20..],
                    body,
                    "TUN: IPIP around the untouched error"
                );
                assert_eq!(out[ETH_LEN + 9], 4);
            }
            // Errors from the real server's side have no path through us.
            syn = with_ttl(ip_of(&syn), 64);
            let mut err = frag_needed(RS_MAC, RS, VIP, &syn);
            assert_eq!(
                e.handle(&mut err, 3, &mut ctl),
                Verdict::Drop(Drop::NoConnection)
            );
        }
    }

    #[test]
    fn icmp_that_is_not_a_tracked_error_is_counted() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        // Echo to the VIP.
        let mut echo = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
            .ipv4(CLIENT.octets(), VIP.octets(), 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut echo, b"ping")
            .expect("echo");
        assert_eq!(
            e.handle(&mut echo, 1, &mut ctl),
            Verdict::Drop(Drop::IcmpUnhandled)
        );
        // An error about a connection nobody has.
        let stranger = tcp((LB_MAC, VIP, 80), (CLIENT_MAC, CLIENT, 1), true, true, b"");
        let mut err = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&stranger));
        let good = err.clone();
        assert_eq!(
            e.handle(&mut err, 2, &mut ctl),
            Verdict::Drop(Drop::NoConnection)
        );
        // Bad ICMP checksum.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(
            e.handle(&mut bad, 3, &mut ctl),
            Verdict::Drop(Drop::BadChecksum)
        );
        // A quote cut inside the ports.
        let mut short = frag_needed(CLIENT_MAC, CLIENT, VIP, &ip_of(&stranger)[..22]);
        assert_eq!(
            e.handle(&mut short, 4, &mut ctl),
            Verdict::Drop(Drop::Truncated)
        );
        // A NAT real server's own ICMP to elsewhere is the kernel's.
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let mut echo = Vec::new();
        PacketBuilder::ethernet2(RS_MAC.0, LB_MAC.0)
            .ipv4(RS.octets(), [8, 8, 8, 8], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut echo, b"ping")
            .expect("echo");
        assert_eq!(e.handle(&mut echo, 1, &mut ctl), Verdict::Ignore);
    }

    // ── TOA ────────────────────────────────────────────────────────────

    /// The TCP options of an IPv4 frame (etherparse).
    fn tcp_options(frame: &[u8]) -> Vec<u8> {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("not tcp")
        };
        t.options().to_vec()
    }

    #[test]
    fn fnat_first_ack_carries_toa_golden() {
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let client = (CLIENT_MAC, CLIENT, 33000);
        let vip = (LB_MAC, VIP, 80);
        // The SYN carries no TOA.
        let (v, syn) = handle_grow(&mut e, &tcp(client, vip, true, false, b""), 1, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert!(tcp_options(&syn).is_empty());
        let lport = inspect(&syn).4;
        let mut synack = tcp((RS_MAC, RS, 8080), (LB_MAC, LIP, lport), true, true, b"");
        assert_eq!(e.handle(&mut synack, 2, &mut ctl), Verdict::Forward);
        // The ACK completing the handshake (with data): TOA inserted.
        let ack = tcp(client, vip, false, true, b"GET / HTTP/1.0\r\n\r\n");
        let (v, out) = handle_grow(&mut e, &ack, 3, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert_eq!(out.len(), ack.len() + TOA_LEN);
        // etherparse checks the IPv4 and TCP checksums of the result.
        let (_, dmac, src, dst, sport, dport, _) = inspect(&out);
        assert_eq!(
            (dmac, src, dst, sport, dport),
            (RS_MAC, LIP, RS, lport, 8080)
        );
        let mut toa = vec![TOA_KIND, 8];
        toa.extend_from_slice(&33000u16.to_be_bytes());
        toa.extend_from_slice(&CLIENT.octets());
        assert_eq!(tcp_options(&out), toa);
        // Golden: the segment without the option is the plain FNAT rewrite.
        let p = SlicedPacket::from_ethernet(&out).expect("etherparse");
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("not tcp")
        };
        assert_eq!(t.payload(), b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!((t.sequence_number(), t.acknowledgment_number()), (1000, 7));
        // Later packets carry no TOA.
        let (v, out) = handle_grow(&mut e, &tcp(client, vip, false, true, b"x"), 4, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert!(tcp_options(&out).is_empty());
    }

    #[test]
    fn toa_is_skipped_without_room_and_outside_fnat() {
        let client = (CLIENT_MAC, CLIENT, 33000);
        let vip = (LB_MAC, VIP, 80);
        // A frame that cannot grow (`handle`): forwarded without TOA, valid.
        let (mut e, mut ctl) = engine();
        resolve_rs(&mut e, &mut ctl);
        let mut syn = tcp(client, vip, true, false, b"");
        assert_eq!(e.handle(&mut syn, 1, &mut ctl), Verdict::Forward);
        let mut ack = tcp(client, vip, false, true, b"");
        let n = ack.len();
        assert_eq!(e.handle(&mut ack, 2, &mut ctl), Verdict::Forward);
        assert_eq!(ack.len(), n);
        inspect(&ack);
        assert!(tcp_options(&ack).is_empty());
        // NAT: never.
        let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], None);
        let (_, _) = handle_grow(&mut e, &tcp(client, vip, true, false, b""), 1, &mut ctl);
        let (v, out) = handle_grow(&mut e, &tcp(client, vip, false, true, b""), 2, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        assert!(tcp_options(&out).is_empty());
        // No room in the TCP header (60 bytes of options already).
        let mut full = vec![0u8; ETH_LEN + 80 + 2 * TOA_LEN];
        full[ETH_LEN + 20 + 12] = 0xf0; // data offset 15: 40 bytes of options
        let (src, dst) = (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2));
        let before = full.clone();
        assert_eq!(insert_toa(&mut full, 20, 80, (src, dst), (CLIENT, 1)), None);
        assert_eq!(full, before);
        // With a 20-byte header the same buffer has room.
        full[ETH_LEN + 20 + 12] = 0x50;
        assert_eq!(
            insert_toa(&mut full, 20, 80, (src, dst), (CLIENT, 1)),
            Some(ETH_LEN + 80 + TOA_LEN)
        );
    }

    mod prop {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            /// Errors quoting a tracked connection, cut anywhere and with
            /// any bytes after the ports, and arbitrary ICMP messages to the
            /// VIP and the LIP: nothing panics, and what is forwarded has
            /// valid checksums.
            #[test]
            fn icmp_never_panics(
                cut in 0usize..80,
                tail in vec(any::<u8>(), 0..40),
                junk in vec(any::<u8>(), 0..80),
                to_lip in any::<bool>(),
            ) {
                let (mut e, mut ctl) = engine();
                resolve_rs(&mut e, &mut ctl);
                let mut syn = tcp((CLIENT_MAC, CLIENT, 33000), (LB_MAC, VIP, 80), true, false, b"");
                prop_assert_eq!(e.handle(&mut syn, 1, &mut ctl), Verdict::Forward);
                let mut quote = ip_of(&syn);
                quote.truncate(cut.max(1));
                if quote.len() > 24 {
                    let n = (quote.len() - 24).min(tail.len());
                    quote[24..24 + n].copy_from_slice(&tail[..n]);
                }
                let mut err = frag_needed(RS_MAC, RS, LIP, &quote);
                match e.handle(&mut err, 2, &mut ctl) {
                    Verdict::Forward => {
                        let p = SlicedPacket::from_ethernet(&err).expect("parses");
                        let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
                            panic!("not icmp")
                        };
                        let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
                        prop_assert_eq!(want, icmp.checksum());
                    }
                    Verdict::Drop(_) => {}
                    Verdict::Ignore => prop_assert!(false, "an error to the LIP is ours"),
                }
                let dst = if to_lip { LIP } else { VIP };
                let mut raw = Vec::new();
                PacketBuilder::ethernet2(CLIENT_MAC.0, LB_MAC.0)
                    .ipv4(CLIENT.octets(), dst.octets(), 64)
                    .write(&mut raw, etherparse::IpNumber::ICMP, &junk)
                    .expect("raw");
                let _ = e.handle(&mut raw, 3, &mut ctl);
            }
        }
    }
}
