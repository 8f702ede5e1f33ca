//! The sans-IO OSPFv2 speaker: time is passed in, packets come in as bytes
//! and leave as [`Action`]s; the driver does all I/O.
//!
//! Invariants:
//! * every LSA in the database passed its Fletcher checksum or was built here;
//! * our own LSAs are whatever `wanted_lsas` says, re-originated at most once
//!   per MinLSInterval, refreshed every LSRefreshTime, and flushed (MaxAge)
//!   when no longer wanted or on [`Speaker::shutdown`];
//! * a packet refused before reaching the state machines bumps exactly one
//!   [`DropCause`] counter.

mod interface;
mod lsdb;
mod spec;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

pub use interface::{IfaceState, NeighborState};
pub use lsdb::{compare, LsaKey, INITIAL_SEQ, MAX_AGE, MIN_LS_INTERVAL};
pub use spec::{AnnounceAs, AuthSpec, InterfaceSpec, NetworkType, SpeakerSpec};

use interface::{elect, Candidate, Interface, Neighbor};
use lsdb::{Lsdb, LS_REFRESH_TIME, MAX_SEQ, MIN_LS_ARRIVAL};

use crate::wire::{
    self, AuthRepr, Body, DbDescRepr, ExternalLsaRepr, ExternalMetric, HelloRepr, LsRequestEntry,
    LsType, LsaBody, LsaHeaderRepr, LsaRepr, NetworkLsaRepr, Packet, PacketRepr, RouterLink,
    RouterLinkType, RouterLsaRepr, DBD_FLAG_I, DBD_FLAG_M, DBD_FLAG_MS, HEADER_LEN, LSA_HEADER_LEN,
    MD5_DIGEST_LEN, OPTION_E, ROUTER_FLAG_E,
};

/// AllSPFRouters.
pub const ALL_SPF_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 5);
/// AllDRouters.
pub const ALL_D_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 6);

const IP_HEADER_LEN: usize = 20;

/// Index of an interface in [`SpeakerSpec::interfaces`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceIdx(pub usize);

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `bytes` (an OSPF packet, the IP payload) out of `iface` to `dst`.
    Send {
        /// Interface.
        iface: IfaceIdx,
        /// IP destination (AllSPFRouters, AllDRouters or a neighbour).
        dst: Ipv4Addr,
        /// The OSPF packet.
        bytes: Vec<u8>,
    },
}

/// Why a received packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropCause {
    /// Header or LSA checksum wrong.
    BadChecksum,
    /// Area ID is not ours.
    WrongArea,
    /// Authentication type, password, key ID, digest or sequence wrong.
    AuthMismatch,
    /// A DBD announced a larger MTU than ours.
    MtuMismatch,
    /// Could not be decoded.
    Malformed,
    /// Hello parameters (mask, intervals, options) differ from ours.
    HelloMismatch,
    /// A non-Hello packet from a router we have no neighbour for.
    UnknownNeighbor,
}

impl DropCause {
    /// Every cause, in counter order.
    pub const ALL: [DropCause; 7] = [
        DropCause::BadChecksum,
        DropCause::WrongArea,
        DropCause::AuthMismatch,
        DropCause::MtuMismatch,
        DropCause::Malformed,
        DropCause::HelloMismatch,
        DropCause::UnknownNeighbor,
    ];

    /// Stable name (logs, control socket, metrics).
    pub fn name(self) -> &'static str {
        match self {
            DropCause::BadChecksum => "bad_checksum",
            DropCause::WrongArea => "wrong_area",
            DropCause::AuthMismatch => "auth_mismatch",
            DropCause::MtuMismatch => "mtu_mismatch",
            DropCause::Malformed => "malformed",
            DropCause::HelloMismatch => "hello_mismatch",
            DropCause::UnknownNeighbor => "unknown_neighbor",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A neighbour in the status snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborStatus {
    /// Router ID.
    pub router_id: Ipv4Addr,
    /// Interface address.
    pub addr: Ipv4Addr,
    /// Priority.
    pub priority: u8,
    /// State.
    pub state: NeighborState,
}

/// An interface in the status snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceStatus {
    /// Name.
    pub name: String,
    /// State.
    pub state: IfaceState,
    /// DR interface address.
    pub dr: Ipv4Addr,
    /// BDR interface address.
    pub bdr: Ipv4Addr,
    /// Neighbours.
    pub neighbors: Vec<NeighborStatus>,
}

/// What `dpvsctl ospf` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Our router ID.
    pub router_id: Ipv4Addr,
    /// Interfaces and their neighbours.
    pub interfaces: Vec<InterfaceStatus>,
    /// Headers (current age) of the LSAs we originated and still hold.
    pub originated: Vec<LsaHeaderRepr>,
    /// VIPs we are asked to announce.
    pub announced: Vec<Ipv4Addr>,
    /// Drop counters.
    pub drops: Vec<(DropCause, u64)>,
    /// Whether [`Speaker::shutdown`] ran.
    pub shut_down: bool,
}

/// The OSPFv2 speaker of one area.
#[derive(Debug)]
pub struct Speaker {
    spec: SpeakerSpec,
    ifaces: Vec<Interface>,
    lsdb: Lsdb,
    announced: BTreeSet<Ipv4Addr>,
    last_orig: BTreeMap<LsaKey, Duration>,
    last_seq: BTreeMap<LsaKey, i32>,
    force: BTreeSet<LsaKey>,
    deferred_at: Option<Duration>,
    drops: [u64; DropCause::ALL.len()],
    shut: bool,
}

type Out = Vec<Action>;

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn secs(s: impl Into<u64>) -> Duration {
    Duration::from_secs(s.into())
}

/// Room for an OSPF body in one packet on `spec`.
fn body_room(spec: &InterfaceSpec) -> usize {
    usize::from(spec.mtu).saturating_sub(IP_HEADER_LEN + HEADER_LEN + MD5_DIGEST_LEN)
}

fn build(spec: &SpeakerSpec, ifs: &InterfaceSpec, body: Body, now: Duration) -> Vec<u8> {
    let (auth, key): (AuthRepr, &[u8]) = match &ifs.auth {
        AuthSpec::None => (AuthRepr::None, &[]),
        AuthSpec::Simple(pw) => {
            let mut a = [0u8; 8];
            let n = pw.len().min(8);
            a[..n].copy_from_slice(&pw[..n]);
            (AuthRepr::Simple(a), &[])
        }
        AuthSpec::Md5 { key_id, key } => (
            AuthRepr::Md5 {
                key_id: *key_id,
                seq: spec.crypto_seq_base.wrapping_add(now.as_secs() as u32),
            },
            key,
        ),
    };
    PacketRepr {
        router_id: spec.router_id,
        area_id: spec.area,
        auth,
        body,
    }
    .to_bytes(key)
}

fn flood_dst(ifc: &Interface) -> Ipv4Addr {
    match (ifc.spec.network, ifc.state) {
        (NetworkType::PointToPoint, _) | (_, IfaceState::Dr | IfaceState::Backup) => {
            ALL_SPF_ROUTERS
        }
        _ => ALL_D_ROUTERS,
    }
}

/// Split LSAs into LSUs that fit the interface and queue them.
fn send_lsus(
    spec: &SpeakerSpec,
    i: usize,
    ifs: &InterfaceSpec,
    dst: Ipv4Addr,
    lsas: Vec<LsaRepr>,
    now: Duration,
    out: &mut Out,
) {
    let room = body_room(ifs).saturating_sub(4);
    let mut batch: Vec<LsaRepr> = Vec::new();
    let mut size = 0;
    for lsa in lsas {
        let len = lsa.buffer_len();
        if !batch.is_empty() && size + len > room {
            let bytes = build(spec, ifs, Body::LsUpdate(std::mem::take(&mut batch)), now);
            out.push(Action::Send {
                iface: IfaceIdx(i),
                dst,
                bytes,
            });
            size = 0;
        }
        size += len;
        batch.push(lsa);
    }
    if !batch.is_empty() {
        let bytes = build(spec, ifs, Body::LsUpdate(batch), now);
        out.push(Action::Send {
            iface: IfaceIdx(i),
            dst,
            bytes,
        });
    }
}

fn send_acks(
    spec: &SpeakerSpec,
    i: usize,
    ifs: &InterfaceSpec,
    dst: Ipv4Addr,
    acks: Vec<LsaHeaderRepr>,
    now: Duration,
    out: &mut Out,
) {
    let per = (body_room(ifs) / LSA_HEADER_LEN).max(1);
    for chunk in acks.chunks(per) {
        let bytes = build(spec, ifs, Body::LsAck(chunk.to_vec()), now);
        out.push(Action::Send {
            iface: IfaceIdx(i),
            dst,
            bytes,
        });
    }
}

fn send_dbd(
    spec: &SpeakerSpec,
    i: usize,
    ifs: &InterfaceSpec,
    nbr: &mut Neighbor,
    init: bool,
    now: Duration,
    out: &mut Out,
) {
    let mut flags = if nbr.master { DBD_FLAG_MS } else { 0 };
    let mut lsas = Vec::new();
    if init {
        flags |= DBD_FLAG_I | DBD_FLAG_M | DBD_FLAG_MS;
    } else {
        let per = ((body_room(ifs).saturating_sub(8)) / LSA_HEADER_LEN).max(1);
        while lsas.len() < per {
            match nbr.summary.pop_front() {
                Some(h) => lsas.push(h),
                None => break,
            }
        }
        if !nbr.summary.is_empty() {
            flags |= DBD_FLAG_M;
        }
    }
    let bytes = build(
        spec,
        ifs,
        Body::DbDesc(DbDescRepr {
            mtu: ifs.mtu,
            options: OPTION_E,
            flags,
            seq: nbr.dd_seq,
            lsas,
        }),
        now,
    );
    nbr.last_tx_more = flags & DBD_FLAG_M != 0;
    nbr.last_tx_dbd = Some(bytes.clone());
    out.push(Action::Send {
        iface: IfaceIdx(i),
        dst: nbr.addr,
        bytes,
    });
}

fn send_lsr(
    spec: &SpeakerSpec,
    i: usize,
    ifs: &InterfaceSpec,
    nbr: &mut Neighbor,
    now: Duration,
    out: &mut Out,
) {
    if nbr.requests.is_empty() {
        nbr.lsr_rxmt_at = None;
        return;
    }
    let per = (body_room(ifs) / 12).max(1);
    let entries = nbr
        .requests
        .keys()
        .take(per)
        .map(|&(ls_type, ls_id, adv_router)| LsRequestEntry {
            ls_type,
            ls_id,
            adv_router,
        })
        .collect();
    let bytes = build(spec, ifs, Body::LsRequest(entries), now);
    out.push(Action::Send {
        iface: IfaceIdx(i),
        dst: nbr.addr,
        bytes,
    });
    nbr.lsr_rxmt_at = Some(now + secs(ifs.retransmit_interval));
}

fn enter_exstart(
    spec: &SpeakerSpec,
    i: usize,
    ifs: &InterfaceSpec,
    nbr: &mut Neighbor,
    now: Duration,
    out: &mut Out,
) {
    nbr.reset_adjacency(NeighborState::ExStart);
    nbr.dd_seq = nbr.dd_seq.wrapping_add(1);
    nbr.master = true;
    send_dbd(spec, i, ifs, nbr, true, now, out);
    nbr.dbd_rxmt_at = Some(now + secs(ifs.retransmit_interval));
}

fn should_be_adjacent(ifc: &Interface, nbr: &Neighbor) -> bool {
    match ifc.spec.network {
        NetworkType::PointToPoint => true,
        NetworkType::Broadcast => {
            let me = ifc.spec.address;
            let routers = [me, nbr.addr];
            ifc.state != IfaceState::Waiting
                && routers
                    .iter()
                    .any(|a| !a.is_unspecified() && (*a == ifc.dr || *a == ifc.bdr))
        }
    }
}

fn loading_done(nbr: &mut Neighbor) {
    if nbr.requests.is_empty() {
        nbr.lsr_rxmt_at = None;
        if nbr.state == NeighborState::Loading {
            nbr.state = NeighborState::Full;
        }
    }
}

impl Speaker {
    /// A speaker whose interfaces come up at `now` (broadcast ones in
    /// Waiting unless their priority is 0).
    pub fn new(spec: SpeakerSpec, now: Duration) -> Self {
        let ifaces = spec
            .interfaces
            .iter()
            .map(|s| {
                let (state, wait_at) = match s.network {
                    NetworkType::PointToPoint => (IfaceState::PointToPoint, None),
                    NetworkType::Broadcast if s.priority == 0 => (IfaceState::DrOther, None),
                    NetworkType::Broadcast => {
                        (IfaceState::Waiting, Some(now + secs(s.dead_interval)))
                    }
                };
                Interface {
                    spec: s.clone(),
                    state,
                    dr: Ipv4Addr::UNSPECIFIED,
                    bdr: Ipv4Addr::UNSPECIFIED,
                    hello_at: now,
                    wait_at,
                    neighbors: BTreeMap::new(),
                }
            })
            .collect();
        Speaker {
            spec,
            ifaces,
            lsdb: Lsdb::default(),
            announced: BTreeSet::new(),
            last_orig: BTreeMap::new(),
            last_seq: BTreeMap::new(),
            force: BTreeSet::new(),
            deferred_at: None,
            drops: [0; DropCause::ALL.len()],
            shut: false,
        }
    }

    /// The configuration.
    pub fn spec(&self) -> &SpeakerSpec {
        &self.spec
    }

    /// Packets dropped for `cause`.
    pub fn drops(&self, cause: DropCause) -> u64 {
        self.drops[cause.index()]
    }

    /// The whole database with current ages.
    pub fn lsdb(&self, now: Duration) -> Vec<LsaRepr> {
        self.lsdb
            .entries
            .values()
            .map(|e| {
                let mut l = e.lsa.clone();
                l.header.age = e.age(now);
                l
            })
            .collect()
    }

    /// State of the neighbour with `router_id` on `iface`.
    pub fn neighbor_state(&self, iface: IfaceIdx, router_id: Ipv4Addr) -> Option<NeighborState> {
        self.ifaces
            .get(iface.0)
            .and_then(|i| i.neighbors.get(&router_id))
            .map(|n| n.state)
    }

    /// A snapshot for the control socket.
    pub fn status(&self, now: Duration) -> Status {
        Status {
            router_id: self.spec.router_id,
            interfaces: self
                .ifaces
                .iter()
                .map(|i| InterfaceStatus {
                    name: i.spec.name.clone(),
                    state: i.state,
                    dr: i.dr,
                    bdr: i.bdr,
                    neighbors: i
                        .neighbors
                        .values()
                        .map(|n| NeighborStatus {
                            router_id: n.router_id,
                            addr: n.addr,
                            priority: n.priority,
                            state: n.state,
                        })
                        .collect(),
                })
                .collect(),
            originated: self
                .lsdb
                .entries
                .values()
                .filter(|e| e.lsa.header.adv_router == self.spec.router_id)
                .map(|e| e.header(now))
                .collect(),
            announced: self.announced.iter().copied().collect(),
            drops: DropCause::ALL
                .iter()
                .map(|&c| (c, self.drops[c.index()]))
                .collect(),
            shut_down: self.shut,
        }
    }

    /// Replace the set of announced VIPs (each a /32).
    pub fn set_announced(&mut self, vips: BTreeSet<Ipv4Addr>, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.shut {
            return out;
        }
        self.announced = vips;
        self.reconcile(now, &mut out);
        out
    }

    /// The earliest time [`Self::on_timer`] has work, if any.
    pub fn poll_at(&self) -> Option<Duration> {
        if self.shut {
            return None;
        }
        let mut at = self.deferred_at;
        for ifc in &self.ifaces {
            at = min_opt(at, Some(ifc.hello_at));
            at = min_opt(at, ifc.wait_at);
            for n in ifc.neighbors.values() {
                at = min_opt(at, Some(n.inactivity_at));
                at = min_opt(at, n.dbd_rxmt_at);
                at = min_opt(at, n.lsr_rxmt_at);
                at = min_opt(at, n.lsu_rxmt_at);
            }
        }
        for e in self.lsdb.entries.values() {
            let target = if e.lsa.header.adv_router == self.spec.router_id {
                LS_REFRESH_TIME
            } else {
                MAX_AGE
            };
            at = min_opt(at, e.when_age(target));
        }
        at
    }

    /// Handle one received OSPF packet (the IP payload) from `src` on `iface`.
    pub fn handle_packet(
        &mut self,
        iface: IfaceIdx,
        src: Ipv4Addr,
        bytes: &[u8],
        now: Duration,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.shut || iface.0 >= self.ifaces.len() {
            return out;
        }
        if let Err(cause) = self.receive(iface.0, src, bytes, now, &mut out) {
            self.count(cause);
        }
        self.cleanup_maxage(now);
        self.reconcile(now, &mut out);
        out
    }

    fn count(&mut self, cause: DropCause) {
        let c = &mut self.drops[cause.index()];
        if *c == 0 {
            tracing::warn!(
                cause = cause.name(),
                "ospf: dropping packet (logged once per cause)"
            );
        }
        *c += 1;
    }

    fn check_auth<T: AsRef<[u8]>>(ifs: &InterfaceSpec, p: &Packet<T>) -> bool {
        match &ifs.auth {
            AuthSpec::None => p.au_type() == 0,
            AuthSpec::Simple(pw) => {
                let mut a = [0u8; 8];
                let n = pw.len().min(8);
                a[..n].copy_from_slice(&pw[..n]);
                p.au_type() == 1 && p.auth() == a
            }
            AuthSpec::Md5 { key_id, key } => {
                p.au_type() == 2 && p.key_id() == *key_id && p.verify_md5(key)
            }
        }
    }

    fn receive(
        &mut self,
        i: usize,
        src: Ipv4Addr,
        bytes: &[u8],
        now: Duration,
        out: &mut Out,
    ) -> Result<(), DropCause> {
        let p = Packet::new_checked(bytes).map_err(|_| DropCause::Malformed)?;
        if p.router_id() == self.spec.router_id {
            return Ok(());
        }
        if p.area_id() != self.spec.area {
            return Err(DropCause::WrongArea);
        }
        if !Self::check_auth(&self.ifaces[i].spec, &p) {
            return Err(DropCause::AuthMismatch);
        }
        let repr = PacketRepr::parse(&p).map_err(|e| match e {
            wire::Error::Checksum => DropCause::BadChecksum,
            _ => DropCause::Malformed,
        })?;
        let rid = repr.router_id;
        if let AuthRepr::Md5 { seq, .. } = repr.auth {
            if let Some(n) = self.ifaces[i].neighbors.get_mut(&rid) {
                if n.crypto_seq.is_some_and(|last| seq < last) {
                    return Err(DropCause::AuthMismatch);
                }
                n.crypto_seq = Some(seq);
            }
        }
        match repr.body {
            Body::Hello(h) => self.rx_hello(i, src, rid, &h, now, out),
            body => {
                if !self.ifaces[i].neighbors.contains_key(&rid) {
                    return Err(DropCause::UnknownNeighbor);
                }
                match body {
                    Body::DbDesc(d) => self.rx_dbd(i, rid, d, now, out),
                    Body::LsRequest(r) => {
                        self.rx_lsr(i, rid, &r, now, out);
                        Ok(())
                    }
                    Body::LsUpdate(u) => {
                        self.rx_lsu(i, rid, src, u, now, out);
                        Ok(())
                    }
                    Body::LsAck(a) => {
                        self.rx_lsack(i, rid, &a, now);
                        Ok(())
                    }
                    Body::Hello(_) => Ok(()),
                }
            }
        }
    }

    fn send_hello(&mut self, i: usize, now: Duration, out: &mut Out, neighbors: bool) {
        let ifc = &mut self.ifaces[i];
        let s = &ifc.spec;
        let hello = HelloRepr {
            mask: match s.network {
                NetworkType::Broadcast => s.mask(),
                NetworkType::PointToPoint => Ipv4Addr::UNSPECIFIED,
            },
            hello_interval: s.hello_interval,
            options: OPTION_E,
            priority: s.priority,
            dead_interval: s.dead_interval,
            dr: ifc.dr,
            bdr: ifc.bdr,
            neighbors: if neighbors {
                ifc.neighbors
                    .values()
                    .filter(|n| n.state >= NeighborState::Init)
                    .map(|n| n.router_id)
                    .collect()
            } else {
                Vec::new()
            },
        };
        let bytes = build(&self.spec, s, Body::Hello(hello), now);
        out.push(Action::Send {
            iface: IfaceIdx(i),
            dst: ALL_SPF_ROUTERS,
            bytes,
        });
        ifc.hello_at = now + secs(s.hello_interval.max(1));
    }

    fn rx_hello(
        &mut self,
        i: usize,
        src: Ipv4Addr,
        rid: Ipv4Addr,
        h: &HelloRepr,
        now: Duration,
        out: &mut Out,
    ) -> Result<(), DropCause> {
        let my_rid = self.spec.router_id;
        let ifc = &mut self.ifaces[i];
        let broadcast = ifc.spec.network == NetworkType::Broadcast;
        if (broadcast && h.mask != ifc.spec.mask())
            || h.hello_interval != ifc.spec.hello_interval
            || h.dead_interval != ifc.spec.dead_interval
            || h.options & OPTION_E != OPTION_E
        {
            return Err(DropCause::HelloMismatch);
        }
        let is_new = !ifc.neighbors.contains_key(&rid);
        let nbr = ifc
            .neighbors
            .entry(rid)
            .or_insert_with(|| Neighbor::new(rid, src, now));
        nbr.addr = src;
        nbr.inactivity_at = now + secs(ifc.spec.dead_interval);
        let mut changed = false;
        let mut backup_seen = false;
        if nbr.state == NeighborState::Down {
            nbr.state = NeighborState::Init;
        }
        let (old_prio, old_dr, old_bdr) = (nbr.priority, nbr.dr, nbr.bdr);
        nbr.priority = h.priority;
        nbr.dr = h.dr;
        nbr.bdr = h.bdr;
        if h.neighbors.contains(&my_rid) {
            if nbr.state == NeighborState::Init {
                nbr.state = NeighborState::TwoWay;
                changed = true;
            }
        } else if nbr.state >= NeighborState::TwoWay {
            nbr.reset_adjacency(NeighborState::Init);
            changed = true;
        }
        if broadcast {
            if !is_new && old_prio != h.priority {
                changed = true;
            }
            let declares_dr = h.dr == src;
            let declares_bdr = h.bdr == src;
            if ifc.state == IfaceState::Waiting
                && ((declares_dr && h.bdr.is_unspecified()) || declares_bdr)
            {
                backup_seen = true;
            }
            if (old_dr == src) != declares_dr || (old_bdr == src) != declares_bdr {
                changed = true;
            }
        }
        let state = ifc.state;
        if backup_seen
            || (changed
                && matches!(
                    state,
                    IfaceState::DrOther | IfaceState::Backup | IfaceState::Dr
                ))
        {
            self.elect(i);
        }
        self.adj_ok(i, now, out);
        if is_new {
            self.send_hello(i, now, out, true);
        }
        Ok(())
    }

    fn elect(&mut self, i: usize) {
        let my_rid = self.spec.router_id;
        let ifc = &mut self.ifaces[i];
        if ifc.spec.network != NetworkType::Broadcast {
            return;
        }
        let me = Candidate {
            router_id: my_rid,
            addr: ifc.spec.address,
            priority: ifc.spec.priority,
            dr: ifc.dr,
            bdr: ifc.bdr,
        };
        let others: Vec<Candidate> = ifc
            .neighbors
            .values()
            .filter(|n| n.state >= NeighborState::TwoWay)
            .map(|n| Candidate {
                router_id: n.router_id,
                addr: n.addr,
                priority: n.priority,
                dr: n.dr,
                bdr: n.bdr,
            })
            .collect();
        let (dr, bdr) = elect(me, &others);
        ifc.dr = dr;
        ifc.bdr = bdr;
        ifc.wait_at = None;
        ifc.state = if dr == ifc.spec.address {
            IfaceState::Dr
        } else if bdr == ifc.spec.address {
            IfaceState::Backup
        } else {
            IfaceState::DrOther
        };
    }

    /// AdjOK? for every neighbour of interface `i`.
    fn adj_ok(&mut self, i: usize, now: Duration, out: &mut Out) {
        let ifc = &mut self.ifaces[i];
        let wants: Vec<(Ipv4Addr, bool)> = ifc
            .neighbors
            .values()
            .map(|n| (n.router_id, should_be_adjacent(ifc, n)))
            .collect();
        for (rid, want) in wants {
            let Some(nbr) = ifc.neighbors.get_mut(&rid) else {
                continue;
            };
            if nbr.state == NeighborState::TwoWay && want {
                enter_exstart(&self.spec, i, &ifc.spec, nbr, now, out);
            } else if nbr.state >= NeighborState::ExStart && !want {
                nbr.reset_adjacency(NeighborState::TwoWay);
            }
        }
    }

    fn rx_dbd(
        &mut self,
        i: usize,
        rid: Ipv4Addr,
        d: DbDescRepr,
        now: Duration,
        out: &mut Out,
    ) -> Result<(), DropCause> {
        let my_rid = self.spec.router_id;
        let Self {
            spec, ifaces, lsdb, ..
        } = self;
        let ifc = &mut ifaces[i];
        if d.mtu > ifc.spec.mtu {
            return Err(DropCause::MtuMismatch);
        }
        let Some(nbr) = ifc.neighbors.get_mut(&rid) else {
            return Err(DropCause::UnknownNeighbor);
        };
        let ifs = &ifc.spec;
        let dup = nbr.last_rx_dbd == Some((d.flags, d.options, d.seq));
        match nbr.state {
            NeighborState::Down | NeighborState::Init | NeighborState::TwoWay => return Ok(()),
            NeighborState::ExStart => {
                let all = DBD_FLAG_I | DBD_FLAG_M | DBD_FLAG_MS;
                if d.flags & all == all && d.lsas.is_empty() && rid > my_rid {
                    nbr.master = false;
                    nbr.dd_seq = d.seq;
                } else if d.flags & (DBD_FLAG_I | DBD_FLAG_MS) == 0
                    && d.seq == nbr.dd_seq
                    && rid < my_rid
                {
                    nbr.master = true;
                } else {
                    return Ok(());
                }
                nbr.state = NeighborState::Exchange;
                nbr.options = d.options;
                nbr.dbd_rxmt_at = None;
                nbr.summary = lsdb
                    .entries
                    .values()
                    .filter(|e| e.age(now) < MAX_AGE)
                    .map(|e| e.header(now))
                    .collect();
            }
            NeighborState::Exchange => {
                if dup {
                    if !nbr.master {
                        if let Some(b) = nbr.last_tx_dbd.clone() {
                            out.push(Action::Send {
                                iface: IfaceIdx(i),
                                dst: nbr.addr,
                                bytes: b,
                            });
                        }
                    }
                    return Ok(());
                }
                let expected = if nbr.master {
                    nbr.dd_seq
                } else {
                    nbr.dd_seq.wrapping_add(1)
                };
                if (d.flags & DBD_FLAG_MS != 0) == nbr.master
                    || d.flags & DBD_FLAG_I != 0
                    || d.options != nbr.options
                    || d.seq != expected
                {
                    enter_exstart(spec, i, ifs, nbr, now, out);
                    return Ok(());
                }
            }
            NeighborState::Loading | NeighborState::Full => {
                if dup {
                    if !nbr.master {
                        if let Some(b) = nbr.last_tx_dbd.clone() {
                            out.push(Action::Send {
                                iface: IfaceIdx(i),
                                dst: nbr.addr,
                                bytes: b,
                            });
                        }
                    }
                } else {
                    enter_exstart(spec, i, ifs, nbr, now, out);
                }
                return Ok(());
            }
        }
        // Accept the packet as next in sequence.
        nbr.last_rx_dbd = Some((d.flags, d.options, d.seq));
        for h in &d.lsas {
            let newer = lsdb
                .get(&h.key())
                .is_none_or(|e| compare(h, &e.header(now)) == Ordering::Greater);
            if newer {
                nbr.requests.insert(h.key(), *h);
            }
        }
        let more = d.flags & DBD_FLAG_M != 0;
        let done = if nbr.master {
            nbr.dd_seq = nbr.dd_seq.wrapping_add(1);
            if nbr.summary.is_empty() && !nbr.last_tx_more && !more {
                nbr.dbd_rxmt_at = None;
                true
            } else {
                send_dbd(spec, i, ifs, nbr, false, now, out);
                nbr.dbd_rxmt_at = Some(now + secs(ifs.retransmit_interval));
                false
            }
        } else {
            nbr.dd_seq = d.seq;
            send_dbd(spec, i, ifs, nbr, false, now, out);
            !more && !nbr.last_tx_more
        };
        if done {
            nbr.state = NeighborState::Loading;
            loading_done(nbr);
        }
        if !nbr.requests.is_empty() && nbr.lsr_rxmt_at.is_none() {
            send_lsr(spec, i, ifs, nbr, now, out);
        }
        Ok(())
    }

    fn rx_lsr(
        &mut self,
        i: usize,
        rid: Ipv4Addr,
        entries: &[LsRequestEntry],
        now: Duration,
        out: &mut Out,
    ) {
        let Self {
            spec, ifaces, lsdb, ..
        } = self;
        let ifc = &mut ifaces[i];
        let Some(nbr) = ifc.neighbors.get_mut(&rid) else {
            return;
        };
        if nbr.state < NeighborState::Exchange {
            return;
        }
        let mut lsas = Vec::new();
        for e in entries {
            match lsdb.get(&(e.ls_type, e.ls_id, e.adv_router)) {
                Some(entry) => lsas.push(entry.for_flooding(now)),
                None => {
                    // BadLSReq.
                    enter_exstart(spec, i, &ifc.spec, nbr, now, out);
                    return;
                }
            }
        }
        let dst = nbr.addr;
        send_lsus(spec, i, &ifc.spec, dst, lsas, now, out);
    }

    fn rx_lsack(&mut self, i: usize, rid: Ipv4Addr, acks: &[LsaHeaderRepr], _now: Duration) {
        let Some(nbr) = self.ifaces[i].neighbors.get_mut(&rid) else {
            return;
        };
        if nbr.state < NeighborState::Exchange {
            return;
        }
        for h in acks {
            if nbr
                .rxmt
                .get(&h.key())
                .is_some_and(|inst| compare(h, inst) == Ordering::Equal)
            {
                nbr.rxmt.remove(&h.key());
            }
        }
        if nbr.rxmt.is_empty() {
            nbr.lsu_rxmt_at = None;
        }
    }

    fn any_exchanging(&self) -> bool {
        self.ifaces.iter().any(|ifc| {
            ifc.neighbors
                .values()
                .any(|n| matches!(n.state, NeighborState::Exchange | NeighborState::Loading))
        })
    }

    fn remove_from_all_rxmt(&mut self, key: &LsaKey) {
        for ifc in &mut self.ifaces {
            for n in ifc.neighbors.values_mut() {
                n.rxmt.remove(key);
            }
        }
    }

    fn rx_lsu(
        &mut self,
        i: usize,
        rid: Ipv4Addr,
        src: Ipv4Addr,
        lsas: Vec<LsaRepr>,
        now: Duration,
        out: &mut Out,
    ) {
        match self.ifaces[i].neighbors.get(&rid) {
            Some(n) if n.state >= NeighborState::Exchange => {}
            _ => return,
        }
        let mut acks = Vec::new();
        let mut direct = Vec::new();
        let mut send_back = Vec::new();
        for lsa in lsas {
            let key = lsa.header.key();
            let rx = lsa.header;
            if matches!(rx.ls_type, LsType::Unknown(_)) {
                continue;
            }
            let db = self.lsdb.get(&key).map(|e| (e.header(now), e.installed));
            if rx.age >= MAX_AGE && db.is_none() && !self.any_exchanging() {
                direct.push(rx);
                continue;
            }
            // A requested instance arrived (or a newer one).
            if let Some(nbr) = self.ifaces[i].neighbors.get_mut(&rid) {
                if nbr
                    .requests
                    .get(&key)
                    .is_some_and(|req| compare(&rx, req) != Ordering::Less)
                {
                    nbr.requests.remove(&key);
                    loading_done(nbr);
                }
            }
            match db.map(|(h, _)| compare(&rx, &h)) {
                None | Some(Ordering::Greater) => {
                    if let Some((_, installed)) = db {
                        if now.saturating_sub(installed) < MIN_LS_ARRIVAL {
                            continue;
                        }
                    }
                    self.remove_from_all_rxmt(&key);
                    self.lsdb.install(lsa, now);
                    if rx.adv_router == self.spec.router_id {
                        self.force.insert(key);
                    }
                    let back = self.flood(&key, Some((i, rid)), now, out);
                    if !back {
                        acks.push(rx);
                    }
                }
                Some(Ordering::Equal) => {
                    let implied = self.ifaces[i]
                        .neighbors
                        .get_mut(&rid)
                        .and_then(|n| n.rxmt.remove(&key))
                        .is_some();
                    if !implied {
                        direct.push(rx);
                    }
                }
                Some(Ordering::Less) => {
                    if let Some(e) = self.lsdb.get(&key) {
                        let h = e.header(now);
                        if !(h.age >= MAX_AGE && h.seq == MAX_SEQ) {
                            send_back.push(e.for_flooding(now));
                        }
                    }
                }
            }
        }
        let ifc = &self.ifaces[i];
        if let Some(n) = ifc.neighbors.get(&rid) {
            if n.rxmt.is_empty() {
                if let Some(n) = self.ifaces[i].neighbors.get_mut(&rid) {
                    n.lsu_rxmt_at = None;
                }
            }
        }
        let ifc = &self.ifaces[i];
        if !acks.is_empty() {
            send_acks(&self.spec, i, &ifc.spec, flood_dst(ifc), acks, now, out);
        }
        if !direct.is_empty() {
            send_acks(&self.spec, i, &ifc.spec, src, direct, now, out);
        }
        if !send_back.is_empty() {
            send_lsus(&self.spec, i, &ifc.spec, src, send_back, now, out);
        }
        if let Some(nbr) = self.ifaces[i].neighbors.get_mut(&rid) {
            if nbr.state >= NeighborState::Exchange
                && !nbr.requests.is_empty()
                && nbr.lsr_rxmt_at.is_none()
            {
                let Self { spec, ifaces, .. } = self;
                let ifc = &mut ifaces[i];
                if let Some(nbr) = ifc.neighbors.get_mut(&rid) {
                    send_lsr(spec, i, &ifc.spec, nbr, now, out);
                }
            }
        }
    }

    /// Flood the database copy of `key` (§13.3). `from` is the interface and
    /// neighbour it came from. Returns whether it went back out of that interface.
    fn flood(
        &mut self,
        key: &LsaKey,
        from: Option<(usize, Ipv4Addr)>,
        now: Duration,
        out: &mut Out,
    ) -> bool {
        let Some(entry) = self.lsdb.get(key) else {
            return false;
        };
        let header = entry.header(now);
        let lsa = entry.for_flooding(now);
        let mut back = false;
        for (i, ifc) in self.ifaces.iter_mut().enumerate() {
            let mut added = false;
            for nbr in ifc.neighbors.values_mut() {
                if nbr.state < NeighborState::Exchange {
                    continue;
                }
                if nbr.state < NeighborState::Full {
                    if let Some(req) = nbr.requests.get(key) {
                        match compare(&header, req) {
                            Ordering::Less => continue,
                            Ordering::Equal => {
                                nbr.requests.remove(key);
                                loading_done(nbr);
                                continue;
                            }
                            Ordering::Greater => {
                                nbr.requests.remove(key);
                                loading_done(nbr);
                            }
                        }
                    }
                }
                if from == Some((i, nbr.router_id)) {
                    continue;
                }
                nbr.rxmt.insert(*key, header);
                if nbr.lsu_rxmt_at.is_none() {
                    nbr.lsu_rxmt_at = Some(now + secs(ifc.spec.retransmit_interval));
                }
                added = true;
            }
            if !added {
                continue;
            }
            if let Some((fi, frid)) = from {
                if fi == i {
                    let sender = ifc.neighbors.get(&frid).map(|n| n.addr);
                    if sender.is_some_and(|a| a == ifc.dr || a == ifc.bdr)
                        || ifc.state == IfaceState::Backup
                    {
                        continue;
                    }
                    back = true;
                }
            }
            let dst = flood_dst(ifc);
            send_lsus(&self.spec, i, &ifc.spec, dst, vec![lsa.clone()], now, out);
        }
        back
    }

    /// The LSAs we should be originating now.
    fn wanted_lsas(&self) -> BTreeMap<LsaKey, LsaBody> {
        let rid = self.spec.router_id;
        let mut links = Vec::new();
        let mut wanted = BTreeMap::new();
        let stub = |id: Ipv4Addr, mask: Ipv4Addr, metric: u16| RouterLink {
            link_id: id,
            link_data: mask,
            link_type: RouterLinkType::Stub,
            metric,
            tos: Vec::new(),
        };
        for ifc in &self.ifaces {
            let s = &ifc.spec;
            let full = ifc
                .neighbors
                .values()
                .filter(|n| n.state == NeighborState::Full);
            match (s.network, ifc.state) {
                (_, IfaceState::Down) => {}
                (NetworkType::PointToPoint, _) => {
                    for n in full {
                        links.push(RouterLink {
                            link_id: n.router_id,
                            link_data: s.address,
                            link_type: RouterLinkType::PointToPoint,
                            metric: s.cost,
                            tos: Vec::new(),
                        });
                    }
                    links.push(stub(s.network_addr(), s.mask(), s.cost));
                }
                (NetworkType::Broadcast, state) => {
                    let full: Vec<&Neighbor> = full.collect();
                    let adjacent_to_dr = if state == IfaceState::Dr {
                        !full.is_empty()
                    } else {
                        full.iter().any(|n| n.addr == ifc.dr)
                    };
                    if state != IfaceState::Waiting && adjacent_to_dr {
                        links.push(RouterLink {
                            link_id: ifc.dr,
                            link_data: s.address,
                            link_type: RouterLinkType::Transit,
                            metric: s.cost,
                            tos: Vec::new(),
                        });
                    } else {
                        links.push(stub(s.network_addr(), s.mask(), s.cost));
                    }
                    if state == IfaceState::Dr && !full.is_empty() {
                        let mut routers: Vec<Ipv4Addr> = std::iter::once(rid)
                            .chain(full.iter().map(|n| n.router_id))
                            .collect();
                        routers.sort();
                        wanted.insert(
                            (LsType::Network, s.address, rid),
                            LsaBody::Network(NetworkLsaRepr {
                                mask: s.mask(),
                                routers,
                            }),
                        );
                    }
                }
            }
        }
        let metric = self.spec.metric.min(0x00ff_ffff);
        match self.spec.announce_as {
            AnnounceAs::Stub => {
                for vip in &self.announced {
                    links.push(stub(
                        *vip,
                        Ipv4Addr::BROADCAST,
                        u16::try_from(metric).unwrap_or(u16::MAX),
                    ));
                }
            }
            AnnounceAs::External => {
                for vip in &self.announced {
                    wanted.insert(
                        (LsType::AsExternal, *vip, rid),
                        LsaBody::External(ExternalLsaRepr {
                            mask: Ipv4Addr::BROADCAST,
                            metrics: vec![ExternalMetric {
                                e_bit: true,
                                tos: 0,
                                metric,
                                forwarding: Ipv4Addr::UNSPECIFIED,
                                tag: 0,
                            }],
                        }),
                    );
                }
            }
        }
        let flags = match self.spec.announce_as {
            AnnounceAs::External => ROUTER_FLAG_E,
            AnnounceAs::Stub => 0,
        };
        wanted.insert(
            (LsType::Router, rid, rid),
            LsaBody::Router(RouterLsaRepr { flags, links }),
        );
        wanted
    }

    /// Make the database hold what we want to originate (§12.4), flooding
    /// each change; flush what we no longer want.
    fn reconcile(&mut self, now: Duration, out: &mut Out) {
        if self.shut {
            return;
        }
        let rid = self.spec.router_id;
        let wanted = self.wanted_lsas();
        let wanted_keys: BTreeSet<LsaKey> = wanted.keys().copied().collect();
        let mut deferred = None;
        for (key, body) in wanted {
            let cur = self.lsdb.get(&key);
            let needed = match cur {
                None => true,
                Some(e) => {
                    let age = e.age(now);
                    age >= LS_REFRESH_TIME || e.lsa.body != body || self.force.contains(&key)
                }
            };
            if !needed {
                continue;
            }
            if let Some(t) = self.last_orig.get(&key) {
                if now < *t + MIN_LS_INTERVAL {
                    deferred = min_opt(deferred, Some(*t + MIN_LS_INTERVAL));
                    continue;
                }
            }
            let seq = cur
                .map(|e| e.lsa.header.seq)
                .into_iter()
                .chain(self.last_seq.get(&key).copied())
                .max()
                .map_or(INITIAL_SEQ, |s| s.saturating_add(1).max(INITIAL_SEQ));
            let mut lsa = LsaRepr {
                header: LsaHeaderRepr {
                    age: 0,
                    options: OPTION_E,
                    ls_type: key.0,
                    ls_id: key.1,
                    adv_router: key.2,
                    seq,
                    checksum: 0,
                    length: 0,
                },
                body,
            };
            let bytes = lsa.to_bytes();
            let view = wire::LsaHeader::new_unchecked(&bytes[..]);
            lsa.header.checksum = view.checksum();
            lsa.header.length = view.length();
            self.force.remove(&key);
            self.last_orig.insert(key, now);
            self.last_seq.insert(key, seq);
            self.remove_from_all_rxmt(&key);
            self.lsdb.install(lsa, now);
            self.flood(&key, None, now, out);
        }
        self.deferred_at = deferred;
        let stale: Vec<LsaKey> = self
            .lsdb
            .entries
            .iter()
            .filter(|(k, e)| k.2 == rid && e.age(now) < MAX_AGE && !wanted_keys.contains(k))
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            self.flush(&key, now, out);
        }
    }

    /// Premature aging: set the LSA to MaxAge and flood it.
    fn flush(&mut self, key: &LsaKey, now: Duration, out: &mut Out) {
        self.force.remove(key);
        if let Some(e) = self.lsdb.entries.get_mut(key) {
            self.last_seq
                .entry(*key)
                .and_modify(|s| *s = (*s).max(e.lsa.header.seq))
                .or_insert(e.lsa.header.seq);
            e.lsa.header.age = MAX_AGE;
            e.installed = now;
        }
        self.remove_from_all_rxmt(key);
        self.flood(key, None, now, out);
    }

    /// Drop MaxAge LSAs nobody still has to acknowledge (§14).
    fn cleanup_maxage(&mut self, now: Duration) {
        if self.any_exchanging() {
            return;
        }
        let pending: BTreeSet<LsaKey> = self
            .ifaces
            .iter()
            .flat_map(|i| i.neighbors.values())
            .flat_map(|n| n.rxmt.keys().copied())
            .collect();
        self.lsdb
            .entries
            .retain(|k, e| e.age(now) < MAX_AGE || pending.contains(k));
    }

    /// Run every timer due at `now`.
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.shut {
            return out;
        }
        for i in 0..self.ifaces.len() {
            if self.ifaces[i].hello_at <= now {
                self.send_hello(i, now, &mut out, true);
            }
            if self.ifaces[i].wait_at.is_some_and(|t| t <= now) {
                self.elect(i);
                self.adj_ok(i, now, &mut out);
            }
            let ifc = &mut self.ifaces[i];
            let before = ifc.neighbors.len();
            ifc.neighbors.retain(|_, n| n.inactivity_at > now);
            if ifc.neighbors.len() != before {
                if matches!(
                    ifc.state,
                    IfaceState::DrOther | IfaceState::Backup | IfaceState::Dr
                ) {
                    self.elect(i);
                }
                self.adj_ok(i, now, &mut out);
            }
            let Self {
                spec, ifaces, lsdb, ..
            } = self;
            let ifc = &mut ifaces[i];
            let rxmt = secs(ifc.spec.retransmit_interval);
            for nbr in ifc.neighbors.values_mut() {
                if nbr.dbd_rxmt_at.is_some_and(|t| t <= now) {
                    if let Some(b) = nbr.last_tx_dbd.clone() {
                        out.push(Action::Send {
                            iface: IfaceIdx(i),
                            dst: nbr.addr,
                            bytes: b,
                        });
                    }
                    nbr.dbd_rxmt_at = Some(now + rxmt);
                }
                if nbr.lsr_rxmt_at.is_some_and(|t| t <= now) {
                    send_lsr(spec, i, &ifc.spec, nbr, now, &mut out);
                }
                if nbr.lsu_rxmt_at.is_some_and(|t| t <= now) {
                    let mut lsas = Vec::new();
                    nbr.rxmt.retain(|k, inst| match lsdb.get(k) {
                        Some(e) if compare(&e.header(now), inst) == Ordering::Equal => {
                            lsas.push(e.for_flooding(now));
                            true
                        }
                        _ => false,
                    });
                    nbr.lsu_rxmt_at = (!nbr.rxmt.is_empty()).then_some(now + rxmt);
                    send_lsus(spec, i, &ifc.spec, nbr.addr, lsas, now, &mut out);
                }
            }
        }
        // LSAs of others reaching MaxAge are flooded once and then removed.
        let rid = self.spec.router_id;
        let expired: Vec<LsaKey> = self
            .lsdb
            .entries
            .iter()
            .filter(|(k, e)| {
                k.2 != rid && e.lsa.header.age < MAX_AGE && e.when_age(MAX_AGE) <= Some(now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(e) = self.lsdb.entries.get_mut(&key) {
                e.lsa.header.age = MAX_AGE;
                e.installed = now;
            }
            self.flood(&key, None, now, &mut out);
        }
        self.cleanup_maxage(now);
        self.reconcile(now, &mut out);
        out
    }

    /// Flush every LSA we originated (MaxAge) and say goodbye with an empty
    /// Hello, so peers drop our routes at once. The speaker is inert afterwards.
    pub fn shutdown(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.shut {
            return out;
        }
        let rid = self.spec.router_id;
        let own: Vec<LsaKey> = self
            .lsdb
            .entries
            .iter()
            .filter(|(k, e)| k.2 == rid && e.age(now) < MAX_AGE)
            .map(|(k, _)| *k)
            .collect();
        for key in own {
            self.flush(&key, now, &mut out);
        }
        for i in 0..self.ifaces.len() {
            self.ifaces[i].dr = Ipv4Addr::UNSPECIFIED;
            self.ifaces[i].bdr = Ipv4Addr::UNSPECIFIED;
            self.send_hello(i, now, &mut out, false);
        }
        self.shut = true;
        out
    }
}
