//! Per-worker connection table (VPP `lbhash.h` style).
//!
//! Fixed capacity, allocated once. Connections live in a slab of
//! cache-line-sized slots. The index is a power-of-two array of 64-byte
//! buckets, each holding seven `(hash, id)` ways and an overflow count; it
//! has two entries per connection, one per direction, so both the
//! client→VIP packet and the real server's reply find the connection. A
//! lookup reads one bucket line (the full 32-bit hash is the fingerprint)
//! and then exactly the connection's line to confirm the key. A full bucket
//! spills to the next one and counts the spill in its `overflow`, so a
//! lookup stops at the first bucket that never overflowed and deletion needs
//! no tombstones (F14 style). With at most four entries per bucket on
//! average, spills are rare.
//!
//! Connections name their (service, real server) pair by a small
//! [`DestId`] into the table's [`Dest`] list instead of holding `Arc`s, so
//! creating and freeing a connection touches no shared reference count.
//!
//! Expiry has no timer heap: a lookup that finds an expired connection
//! frees it, and [`ConnTable::sweep`] walks a compact array of per-slot
//! deadlines (4 bytes a connection) a bounded number of slots per call. A
//! deadline is a lower bound of the connection's expiry (packets push the
//! expiry out without touching the array); the sweep reads the connection
//! only when its deadline passed, and refreshes the deadline when the
//! connection is still alive. Times are wrapping millisecond ticks
//! (`now_ms as u32`): every timeout is far below the 24-day wrap horizon.
//!
//! A full table refuses new connections ([`ConnTable::insert`] returns
//! `None`); established flows are never evicted by new ones.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::command::{Forwarding, Persistence, ServiceKey};
use crate::engine::{ConnPolicy, Family, Snapshot};
use crate::fasthash::FastMap;
use crate::hugemem;
use crate::prefetch::prefetch;
use crate::stats::{Pending, Traffic};
use crate::wire::checksum;
use crate::wire::MacAddr;

/// An address family's address: [`Ipv4Addr`] or [`Ipv6Addr`]. The
/// connection table, its keys and the engine are generic over it, so each
/// family gets its own monomorphic (and for IPv4 unchanged) hot path.
pub trait IpAddress: Copy + Eq + Ord + Hash + Debug + Into<IpAddr> + 'static {
    /// `0.0.0.0` / `::`.
    const UNSPECIFIED: Self;
    /// `ip` when it is of this family.
    fn from_ip(ip: IpAddr) -> Option<Self>;
    /// A 64-bit digest of the address for [`Key::hash`].
    fn digest(self) -> u64;
    /// The sum of the address's big-endian 32-bit words: its part of a
    /// one's complement checksum partial sum (2¹⁶ ≡ 1, so 32-bit words
    /// sum as their two halves do).
    fn word_sum(self) -> u64;
}

impl IpAddress for Ipv4Addr {
    const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    fn from_ip(ip: IpAddr) -> Option<Ipv4Addr> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    #[inline]
    fn digest(self) -> u64 {
        u64::from(u32::from(self))
    }
    #[inline(always)]
    fn word_sum(self) -> u64 {
        u64::from(u32::from(self))
    }
}

impl IpAddress for Ipv6Addr {
    const UNSPECIFIED: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
    fn from_ip(ip: IpAddr) -> Option<Ipv6Addr> {
        match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    #[inline]
    fn digest(self) -> u64 {
        let v = u128::from(self);
        let (hi, lo) = ((v >> 64) as u64, v as u64);
        hi.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(31) ^ lo
    }
    #[inline(always)]
    fn word_sum(self) -> u64 {
        let v = u128::from(self);
        (0..4).map(|i| u64::from((v >> (32 * i)) as u32)).sum()
    }
}

/// A 5-tuple as seen in one direction; [`FlowKey`] (IPv4) or [`FlowKey6`].
///
/// Aligned to 4 bytes so that the addresses are aligned words: keys are
/// copied and compared on the hot path, and a byte-aligned layout makes
/// the compiler copy them with overlapping unaligned moves whose later
/// word loads cannot be store-forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(4))]
pub struct Key<A> {
    pub src: A,
    pub dst: A,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// An IPv4 5-tuple.
pub type FlowKey = Key<Ipv4Addr>;
/// An IPv6 5-tuple.
pub type FlowKey6 = Key<Ipv6Addr>;

impl<A: IpAddress> Key<A> {
    /// A fast, well-mixed 32-bit hash, never 0 (0 marks a free way). The
    /// low bits pick the home bucket, so the bit forced on to make it
    /// non-zero is the top one, which no index is large enough to use.
    #[inline]
    pub fn hash(&self) -> u32 {
        let a = self.src.digest() << 32 ^ self.dst.digest();
        let b = u64::from(self.sport) << 24 | u64::from(self.dport) << 8 | u64::from(self.proto);
        let mut h = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= h >> 29;
        h = h.wrapping_mul(0x1656_67B1_9E37_79F9);
        ((h >> 32) as u32) | 1 << 31
    }

    /// The key of the opposite direction (source and destination swapped).
    #[inline]
    pub fn reversed(&self) -> Key<A> {
        Key {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// The one's complement checksum differences of a connection's rewrite
/// (FNAT, NAT, SNAT), computed once when it opens rather than per packet:
/// of its addresses (the IPv4 header checksum's part, and the TCP/UDP
/// pseudo-header's) and of its ports. Each is a folded partial sum in
/// `1..=0xffff` (never zero; see [`checksum::adjust_by`]), so adding two
/// of them and a constant stays far below 2³², for a single 32-bit fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deltas {
    pub addrs: u16,
    pub ports: u16,
}

impl Deltas {
    /// The differences of rewriting 5-tuple `old` to `new`.
    #[inline]
    pub fn of<A: IpAddress>(old: &Key<A>, new: &Key<A>) -> Deltas {
        let port = u64::from;
        Deltas {
            addrs: checksum::fold64(checksum::delta(
                old.src.word_sum() + old.dst.word_sum(),
                new.src.word_sum() + new.dst.word_sum(),
            )),
            ports: checksum::fold64(checksum::delta(
                port(old.sport) + port(old.dport),
                port(new.sport) + port(new.dport),
            )),
        }
    }

    /// The differences of the opposite rewrite (`new` back to `old`):
    /// each negated (one's complement: inverted; a zero change stays the
    /// non-zero 0xffff).
    #[inline(always)]
    pub fn reversed(self) -> Deltas {
        let neg = |d: u16| match !d {
            0 => 0xffff,
            n => n,
        };
        Deltas {
            addrs: neg(self.addrs),
            ports: neg(self.ports),
        }
    }
}

/// Which side of a connection a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → VIP.
    In = 0,
    /// Real server → LIP (FNAT) or → client (NAT): the reply.
    Out = 1,
}

/// The TCP flags the connection tracking reads (SYN, ACK, FIN, RST; none
/// for UDP), kept where the TCP header's flag byte has them, so parsing
/// stores one masked byte and a test of several flags is one compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags(u8);

impl TcpFlags {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;

    /// The flags of a TCP header's flag byte (its 14th); the others
    /// (PSH, URG, ECE, CWR) are dropped.
    #[inline(always)]
    pub fn from_header(byte: u8) -> TcpFlags {
        TcpFlags(byte & (Self::FIN | Self::SYN | Self::RST | Self::ACK))
    }

    pub fn new(syn: bool, ack: bool, fin: bool, rst: bool) -> TcpFlags {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        TcpFlags(
            bit(syn, Self::SYN) | bit(ack, Self::ACK) | bit(fin, Self::FIN) | bit(rst, Self::RST),
        )
    }

    #[inline(always)]
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }

    #[inline(always)]
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }

    #[inline(always)]
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }

    #[inline(always)]
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }

    /// ACK and none of SYN, FIN, RST.
    #[inline(always)]
    pub fn ack_only(self) -> bool {
        self.0 == Self::ACK
    }

    /// SYN without ACK (nor RST): a connection request.
    #[inline(always)]
    pub fn syn_only(self) -> bool {
        self.0 & (Self::SYN | Self::ACK | Self::RST) == Self::SYN
    }

    /// `fin | syn << 1 | rst << 2 | ack << 3`: the header's low three bits
    /// and ACK moved next to them.
    #[inline(always)]
    pub fn bits(self) -> usize {
        usize::from(self.0 & 0x07 | (self.0 >> 1) & 0x08)
    }
}

/// TCP state as LVS/DPVS track it (`DPVS_TCP_S_*`, in their order).
///
/// The load balancer sees a connection from the middle: it moves from
/// state to state by the flags of the packets passing through, with one
/// transition table per kind of packet ([`Row`]), and idles out after the
/// state's timeout ([`TcpState::timeout_ms`], DPVS's defaults). `None` is
/// where a connection starts before its first packet. `Listen` and
/// `SynAck` have columns in DPVS's tables but no transition leads to them
/// (nor does anything else in DPVS set them); they are kept so the table
/// reads as DPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of [`TcpState`]s.
const TCP_STATES: usize = 11;

/// Which transition table a TCP packet moves its connection by
/// (`tcp_state_trans`'s offset into `tcp_states`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Row {
    /// Client → VIP packets of connections whose replies pass through us
    /// (FNAT, NAT).
    Input = 0,
    /// The real server's replies (FNAT, NAT).
    Output = 1,
    /// Client → VIP packets of connections whose replies bypass us (DR,
    /// TUN): both FINs are seen as the client's.
    InputOnly = 2,
}

impl Row {
    /// The row of client packets of a service forwarding by `mode`.
    pub fn client(mode: Forwarding) -> Row {
        if mode.has_reply_path() {
            Row::Input
        } else {
            Row::InputOnly
        }
    }

    /// The row of a packet from `dir` when client packets use `client`.
    #[inline(always)]
    pub fn of(dir: Dir, client: Row) -> Row {
        match dir {
            Dir::In => client,
            Dir::Out => Row::Output,
        }
    }
}

/// The flag columns of the transition table: the first of RST, SYN, FIN,
/// ACK a packet carries (DPVS's `tcp_state_idx` priority), or none.
const FLAG_SYN: usize = 0;
const FLAG_FIN: usize = 1;
const FLAG_ACK: usize = 2;
const FLAG_RST: usize = 3;
const FLAG_NONE: usize = 4;
const FLAG_KINDS: usize = 5;

/// Flag column by [`TcpFlags::bits`] (`fin | syn << 1 | rst << 2 | ack << 3`).
const FLAG_COLUMN: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut m = 0;
    while m < 16 {
        t[m] = if m & 4 != 0 {
            FLAG_RST
        } else if m & 2 != 0 {
            FLAG_SYN
        } else if m & 1 != 0 {
            FLAG_FIN
        } else if m & 8 != 0 {
            FLAG_ACK
        } else {
            FLAG_NONE
        } as u8;
        m += 1;
    }
    t
};

/// The transition tables of LVS/DPVS (`tcp_states` in DPVS's
/// `ip_vs_proto_tcp.c`, Linux's `tcp_states` in `ip_vs_proto_tcp.c`):
/// `[row][flag column][state]` → next state. A packet with none of the four
/// flags closes the connection, as in both.
const TRANSITIONS: [[[TcpState; TCP_STATES]; FLAG_KINDS]; 3] = {
    use TcpState::{
        Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA,
        Listen as LI, SynRecv as SR, SynSent as SS, TimeWait as TW,
    };
    const NONE: [TcpState; TCP_STATES] = [CL; TCP_STATES];
    [
        // Input: client → VIP, replies pass through us.
        //  NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], // syn
            [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW], // fin
            [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], // ack
            [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR], // rst
            NONE,
        ],
        // Output: the real server's replies.
        [
            [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR], // syn
            [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW], // fin
            [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES], // ack
            [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL], // rst
            NONE,
        ],
        // InputOnly: client → VIP, replies bypass us (DR, TUN).
        [
            [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], // syn
            [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW], // fin
            [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], // ack
            [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL], // rst
            NONE,
        ],
    ]
};

/// Idle timeout per state, DPVS's defaults (`tcp_timeouts`, seconds there).
const TCP_TIMEOUT_MS: [u32; TCP_STATES] = [
    2_000,   // None
    90_000,  // Established
    3_000,   // SynSent
    30_000,  // SynRecv
    7_000,   // FinWait
    7_000,   // TimeWait
    3_000,   // Close
    7_000,   // CloseWait
    7_000,   // LastAck
    120_000, // Listen
    30_000,  // SynAck
];

impl TcpState {
    /// The idle timeout of the state (DPVS's default; a service's
    /// `establish_timeout` replaces ESTABLISHED's, see [`Aging`]).
    #[inline]
    pub fn timeout_ms(self) -> u32 {
        TCP_TIMEOUT_MS[self as usize]
    }

    /// The next state after a packet with flags `f` moving by `row`.
    #[inline]
    pub fn next(self, row: Row, f: TcpFlags) -> TcpState {
        let column = usize::from(FLAG_COLUMN[f.bits()]);
        TRANSITIONS[row as usize][column][self as usize]
    }

    /// After a FIN or RST: a client SYN on the same port opens a new
    /// connection instead of joining this one.
    pub fn is_closing(self) -> bool {
        matches!(
            self,
            TcpState::FinWait
                | TcpState::TimeWait
                | TcpState::Close
                | TcpState::CloseWait
                | TcpState::LastAck
        )
    }

    /// The state's name as `ipvsadm -lnc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

/// UDP "connection" timeout (DPVS default).
pub const UDP_TIMEOUT_MS: u32 = 300_000;

/// How a service's connections age: the [`Row`] their client packets move
/// by and the idle timeout of an ESTABLISHED TCP connection or of any UDP
/// one (the service's `establish_timeout`, else 90 s for TCP and 300 s for
/// UDP), as DPVS's `dp_vs_conn_set_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aging {
    pub client_row: Row,
    pub established_ms: u32,
}

impl Aging {
    /// The aging of a service forwarding by `mode`, of IP protocol `proto`,
    /// with `establish_timeout` `establish_s` seconds (`None`: the default).
    pub fn new(mode: Forwarding, proto: u8, establish_s: Option<u32>) -> Aging {
        let default = if proto == 6 {
            TcpState::Established.timeout_ms()
        } else {
            UDP_TIMEOUT_MS
        };
        Aging {
            client_row: Row::client(mode),
            established_ms: establish_s.map_or(default, |s| s.saturating_mul(1000)),
        }
    }
}

/// The wrapping millisecond tick of `now_ms`.
#[inline]
pub fn tick(now_ms: u64) -> u32 {
    now_ms as u32
}

/// Whether wrapping tick `deadline` is at or before `now`.
#[inline]
fn passed(deadline: u32, now: u32) -> bool {
    (deadline.wrapping_sub(now) as i32) <= 0
}

/// A (service, real server) pair in a worker's [`ConnTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestId(u32);

/// What connections to one real server of one service share: the traffic
/// counters, the server's address and its cached MAC.
#[derive(Debug)]
pub struct Dest<A = Ipv4Addr> {
    pub service: Arc<Traffic>,
    pub server: Arc<Traffic>,
    pub addr: A,
    pub port: u16,
    /// Where its packets go: the server, or the SNAT service's gateway
    /// (whose MAC `mac` then caches).
    pub next_hop: A,
    /// The service's forwarding method.
    pub forwarding: Forwarding,
    /// TUN: the outer source address (the service's first local address,
    /// else the interface address); `None` when neither is configured.
    pub tunnel_src: Option<A>,
    /// FNAT without a PROXY protocol header: the client's first ACK carries
    /// the client's address as a TOA option (with PROXY protocol, the
    /// header tells the server instead, and DPVS adds no TOA).
    pub toa: bool,
    /// The service's persistence (its client packets refresh templates).
    pub persistence: Option<Persistence>,
    /// How the service's new connections age (forwarding, `establish_timeout`).
    pub aging: Aging,
    /// The service has `expire_quiescent_conn` and the server is quiescent
    /// (weight 0) or no longer in it: a packet of a connection to it
    /// expires the connection and is dropped.
    pub expire_quiescent: bool,
    /// The service (with `expire_quiescent_conn` set?) and the server as
    /// last published: a pair left behind by a reload that re-created its
    /// service follows the server's state in the new one.
    origin: (ServiceKey, bool),
    /// The server's MAC, valid while `neigh_gen` equals the engine's
    /// neighbour generation (saves a neighbour lookup per packet).
    pub mac: MacAddr,
    pub neigh_gen: u32,
    /// Packets counted since the last [`ConnTable::flush_stats`], for
    /// both `service` and `server`.
    pub pending: Pending,
    /// Connections using this pair.
    refs: u32,
    /// Part of the current snapshot.
    published: bool,
}

/// One tracked connection.
#[derive(Debug, Clone, Copy)]
pub struct Conn<A = Ipv4Addr> {
    /// Client → VIP.
    pub in_key: Key<A>,
    /// The reply's key: real server → LIP (FNAT) or → client (NAT; DR and
    /// TUN index it too, though no reply passes through us).
    pub out_key: Key<A>,
    /// Where replies to the client go (learned from its first packet).
    pub client_mac: MacAddr,
    /// The TCP state (TCP only; UDP connections stay [`TcpState::None`]).
    pub tcp: TcpState,
    /// The row client packets move the TCP state by ([`Aging::client_row`]).
    pub client_row: Row,
    /// Idle timeout when ESTABLISHED (TCP) or always (UDP), from
    /// [`Aging::established_ms`]: kept per connection, so a connection ages
    /// by its service's options at its opening (as DPVS, which sets a
    /// connection's timeout on its state changes).
    pub established_ms: u32,
    /// Tick ([`tick`]) at which the connection expires when idle.
    pub expires: u32,
    pub dest: DestId,
    /// DPVS's `fdata_seq`: the real server's SYN-ACK sequence number + 1
    /// (recorded as that SYN-ACK passes out; 0 = none yet), the
    /// acknowledgment number of the client segments that carry a TOA
    /// ([`Conn::wants_toa`]).
    pub fdata_seq: u32,
    /// The checksum differences of rewriting a client packet (`in_key` to
    /// `out_key` reversed; [`Conn::deltas`]). With it the IPv4 slot is
    /// full.
    pub deltas: Deltas,
}

impl<A: IpAddress> Conn<A> {
    /// A connection of a service aging by `aging`, opened by a client
    /// packet with flags `f` at `now_ms`.
    pub fn open(
        in_key: Key<A>,
        out_key: Key<A>,
        client_mac: MacAddr,
        dest: DestId,
        aging: Aging,
        f: TcpFlags,
        now_ms: u64,
    ) -> Conn<A> {
        let mut conn = Conn {
            in_key,
            out_key,
            client_mac,
            tcp: TcpState::None,
            client_row: aging.client_row,
            established_ms: aging.established_ms,
            expires: 0,
            dest,
            fdata_seq: 0,
            deltas: Deltas::of(&in_key, &out_key.reversed()),
        };
        if in_key.proto == 6 {
            conn.tcp = conn.tcp.next(aging.client_row, f);
        }
        conn.expires = tick(now_ms).wrapping_add(conn.timeout_ms());
        conn
    }

    /// Idle timeout in the current state.
    #[inline]
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_in(self.tcp)
    }

    /// Idle timeout in TCP state `tcp`.
    #[inline]
    fn timeout_in(&self, tcp: TcpState) -> u32 {
        if self.in_key.proto == 6 && tcp != TcpState::Established {
            tcp.timeout_ms()
        } else {
            self.established_ms
        }
    }

    /// Whether a client segment with flags `f` and acknowledgment number
    /// `ack` gets a TOA (when its destination sends TOA at all,
    /// [`Dest::toa`]), as DPVS's `tcp_fnat_in_handler` decides: a SYN
    /// without ACK, and every segment acknowledging exactly the real
    /// server's SYN-ACK ([`Conn::fdata_seq`]) that is not a SYN, RST or FIN
    /// — the handshake's ACK and the client's data before it has
    /// acknowledged any of the server's, so a lost handshake ACK or a
    /// server whose TOA module reads the first data segment still learns
    /// the client. Unlike DPVS the ACK flag is required (an
    /// acknowledgment number means nothing without it), which also keeps
    /// UDP (no flags) out. On an established connection this is one
    /// compare of the flags word and one of the number.
    #[inline]
    pub fn wants_toa(&self, ack: u32, f: TcpFlags) -> bool {
        if f.ack_only() {
            ack == self.fdata_seq
        } else {
            f.syn() && !f.ack()
        }
    }

    /// Whether a packet with flags `f` leaves the connection's state, and so
    /// its idle timeout, as they are: a UDP connection, or an ESTABLISHED
    /// TCP one and an ACK without SYN, FIN or RST (every row of the
    /// transition table keeps ESTABLISHED on an ACK; a segment without any
    /// of the four flags closes it, as DPVS). Such a packet only restarts
    /// the idle timer: [`Conn::restart_steady`].
    #[inline(always)]
    pub fn steady(&self, f: TcpFlags) -> bool {
        match self.in_key.proto {
            6 => self.tcp == TcpState::Established && f.ack_only(),
            17 => true,
            _ => false,
        }
    }

    /// The checksum differences of the rewrite of a packet from side
    /// `dir` (the reply's rewrite is the client's reversed).
    #[inline(always)]
    pub fn deltas(&self, dir: Dir) -> Deltas {
        match dir {
            Dir::In => self.deltas,
            Dir::Out => self.deltas.reversed(),
        }
    }

    /// What [`ConnTable::touch`] does for a [`Conn::steady`] packet: the
    /// idle timer restarts at `now_ms`, with the established timeout.
    #[inline(always)]
    pub fn restart_steady(&mut self, now_ms: u64) {
        self.expires = tick(now_ms).wrapping_add(self.established_ms);
    }

    /// Moves the TCP state by a packet with flags `f` from `dir` (TCP only).
    #[inline]
    fn advance(&mut self, dir: Dir, f: TcpFlags) {
        if self.in_key.proto == 6 {
            self.tcp = self.tcp.next(Row::of(dir, self.client_row), f);
        }
    }
}

/// A connection as the control plane lists it (`dpvsctl conns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnView {
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    pub client: (IpAddr, u16),
    pub vip: (IpAddr, u16),
    /// The real server.
    pub server: (IpAddr, u16),
    /// Where the server's replies go: the local address (FNAT) or the client.
    pub local: (IpAddr, u16),
    pub tcp: TcpState,
    /// Idle time left (0 once expired and not yet swept).
    pub expires_in_ms: u32,
}

/// Ways per index bucket.
const WAYS: usize = 7;

/// One cache line of the index.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// Each way's key hash (0 = free way), then in lane [`WAYS`] the
    /// overflow count: entries stored further on because this bucket was
    /// full. The eight lanes compare at once ([`Bucket::ways_of`]).
    hash: [u32; WAYS + 1],
    /// Each way's `conn_index << 1 | dir`.
    id: [u32; WAYS],
    _pad: u32,
}

impl Bucket {
    /// Bit `w` set for each way `w` whose hash is `h` (0: the free ways):
    /// two SIMD compares and their masks, the overflow lane masked off.
    #[inline(always)]
    fn ways_of(&self, h: u32) -> u32 {
        let lanes = wide::u32x8::new(self.hash);
        lanes.simd_eq(wide::u32x8::splat(h)).to_bitmask() & ((1 << WAYS) - 1)
    }

    fn overflow(&self) -> u32 {
        self.hash[WAYS]
    }

    fn overflow_mut(&mut self) -> &mut u32 {
        &mut self.hash[WAYS]
    }
}

const EMPTY_BUCKET: Bucket = Bucket {
    hash: [0; WAYS + 1],
    id: [0; WAYS],
    _pad: 0,
};

/// A connection slot, alone on its cache line (an IPv6 one takes two).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Slot<A = Ipv4Addr> {
    conn: Option<Conn<A>>,
}

impl<A: IpAddress> Slot<A> {
    /// The hashes of the connection's two keys (freeing it unindexes
    /// both), when it holds one.
    #[inline]
    fn hashes(&self) -> Option<[u32; 2]> {
        let c = self.conn.as_ref()?;
        Some([c.in_key.hash(), c.out_key.hash()])
    }
}

/// The expiry sweep handles expired connections this many at a time: it
/// prefetches their slots, then their index buckets, then frees them, so
/// the cache misses of a batch overlap.
const SWEEP_BATCH: usize = 32;

/// Deadline of a free slot.
const FREE: u32 = 0;

/// Whether the sweep must look at a slot with deadline `d` at tick `now`
/// (not free, deadline passed); no branch, so a run of them vectorises.
#[inline]
fn is_due(d: u32, now: u32) -> bool {
    (d != FREE) & passed(d, now)
}

/// The sweep tests this many deadlines at once (a cache line of them).
const SCAN_CHUNK: usize = 16;

/// The sweep prefetches deadlines this many chunks ahead of its scan.
const DEADLINES_AHEAD: usize = 4;

/// `expires` as a sweep deadline: never [`FREE`], never later than `expires`.
#[inline]
fn deadline_of(expires: u32) -> u32 {
    if expires == FREE {
        expires.wrapping_sub(1)
    } else {
        expires
    }
}

/// [`ConnTable::prefetch_conn`] found no entry to hint at (never a valid
/// entry: the capacity is below `u32::MAX >> 2`).
pub const NO_HINT: u32 = u32::MAX;

/// Index of a connection in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnIdx(u32);

#[derive(Debug)]
pub struct ConnTable<A = Ipv4Addr> {
    index: Vec<Bucket>,
    mask: usize,
    slab: Vec<Slot<A>>,
    /// Per slot: [`FREE`] or a lower bound of the connection's expiry.
    deadline: Vec<u32>,
    free: Vec<u32>,
    len: usize,
    sweep_pos: usize,
    dests: Vec<Option<Dest<A>>>,
    free_dests: Vec<u32>,
    /// (service counters, server counters, address, port) → dest.
    dest_ids: FastMap<(usize, usize, A, u16), u32>,
    /// The owning worker (its counter slot in [`Traffic`]).
    worker: usize,
}

impl<A: IpAddress> ConnTable<A> {
    /// A table for at most `capacity` connections (all memory allocated
    /// now), owned by worker number `worker`.
    pub fn new(capacity: usize, worker: usize) -> ConnTable<A> {
        let capacity = capacity.clamp(1, (u32::MAX >> 2) as usize);
        // Two entries per connection, at most four per 7-way bucket on average.
        let buckets = (capacity * 2).div_ceil(4).next_power_of_two();
        ConnTable {
            index: hugemem::vec_filled(buckets, EMPTY_BUCKET),
            mask: buckets - 1,
            slab: hugemem::vec_filled(capacity, Slot { conn: None }),
            deadline: hugemem::vec_filled(capacity, FREE),
            free: (0..capacity as u32).rev().collect(),
            len: 0,
            sweep_pos: 0,
            dests: Vec::new(),
            free_dests: Vec::new(),
            dest_ids: FastMap::default(),
            worker,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slab.len()
    }

    #[inline]
    fn key_of(&self, id: u32) -> Option<&Key<A>> {
        let conn = self.slab.get((id >> 1) as usize)?.conn.as_ref()?;
        Some(if id & 1 == 0 {
            &conn.in_key
        } else {
            &conn.out_key
        })
    }

    /// The id of the index entry for `key` (hash `h`).
    #[inline(always)]
    fn find(&self, key: &Key<A>, h: u32) -> Option<u32> {
        let mut b = h as usize & self.mask;
        for _ in 0..=self.mask {
            let bucket = &self.index[b];
            // The ways carrying `h` as a bit mask (one vector compare), so
            // the usual single match costs no mispredicted way loop.
            let mut ways = bucket.ways_of(h);
            while ways != 0 {
                let w = ways.trailing_zeros() as usize;
                ways &= ways - 1;
                let id = bucket.id.get(w).copied().unwrap_or(0);
                if self.key_of(id) == Some(key) {
                    return Some(id);
                }
            }
            if bucket.overflow() == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
        None
    }

    /// Starts loading the index bucket of hash `h` (first pipeline stage).
    #[inline]
    pub fn prefetch_bucket(&self, h: u32) {
        prefetch(&self.index[h as usize & self.mask]);
    }

    /// Starts loading the connection whose entry in the (already loaded)
    /// home bucket of `h` carries hash `h` (second pipeline stage), and
    /// returns that entry's id as a hint for [`Self::lookup_hinted`]
    /// ([`NO_HINT`] when the home bucket has none).
    #[inline]
    pub fn prefetch_conn(&self, h: u32) -> u32 {
        let bucket = &self.index[h as usize & self.mask];
        let w = bucket.ways_of(h).trailing_zeros() as usize;
        let Some(&id) = bucket.id.get(w) else {
            return NO_HINT;
        };
        if let Some(slot) = self.slab.get((id >> 1) as usize) {
            prefetch(slot);
        }
        id
    }

    /// Finds the live connection for `key`; an expired one is freed and not returned.
    #[inline]
    pub fn lookup(&mut self, key: &Key<A>, now_ms: u64) -> Option<(ConnIdx, Dir)> {
        self.lookup_hashed(key, key.hash(), now_ms)
    }

    /// [`Self::lookup`] with `h == key.hash()` already computed.
    #[inline]
    pub fn lookup_hashed(&mut self, key: &Key<A>, h: u32, now_ms: u64) -> Option<(ConnIdx, Dir)> {
        self.lookup_hinted(key, h, NO_HINT, now_ms)
    }

    /// [`Self::lookup_hashed`] trying first the entry `hint` that
    /// [`Self::prefetch_conn`] returned: when that entry's connection still
    /// carries `key` it is the one entry for `key` (each key is indexed
    /// once, and a slot holding a connection is indexed), so the index
    /// bucket is not read again. Any other hint falls back to the index.
    #[inline(always)]
    pub fn lookup_hinted(
        &mut self,
        key: &Key<A>,
        h: u32,
        hint: u32,
        now_ms: u64,
    ) -> Option<(ConnIdx, Dir)> {
        let id = if self.key_of(hint) == Some(key) {
            hint
        } else {
            self.find(key, h)?
        };
        let idx = ConnIdx(id >> 1);
        let expired = self
            .get(idx)
            .is_none_or(|c| passed(c.expires, tick(now_ms)));
        if expired {
            self.remove(idx);
            return None;
        }
        let dir = if id & 1 == 0 { Dir::In } else { Dir::Out };
        Some((idx, dir))
    }

    /// The established-flow fast path's lookup ([`crate::engine`]'s
    /// `fast.rs`): the connection the prefetched index entry `hint` names
    /// (see [`Self::prefetch_conn`]) when it carries `key` and is live at
    /// `now_ms`, with its destination and the side `key` is of. `None` for
    /// anything else (no hint, another key, expired, no destination): the
    /// caller then takes [`Self::lookup_hinted`]'s full path, which also
    /// frees an expired connection.
    #[inline(always)]
    pub fn hinted_mut(
        &mut self,
        key: &Key<A>,
        hint: u32,
        now_ms: u64,
    ) -> Option<(&mut Conn<A>, &mut Dest<A>, Dir)> {
        let conn = self.slab.get_mut((hint >> 1) as usize)?.conn.as_mut()?;
        let (found, dir) = if hint & 1 == 0 {
            (&conn.in_key, Dir::In)
        } else {
            (&conn.out_key, Dir::Out)
        };
        if found != key || passed(conn.expires, tick(now_ms)) {
            return None;
        }
        let dest = self.dests.get_mut(conn.dest.0 as usize)?.as_mut()?;
        Some((conn, dest, dir))
    }

    /// Whether a connection (possibly expired, not yet freed) uses `key`.
    pub fn contains(&self, key: &Key<A>) -> bool {
        self.find(key, key.hash()).is_some()
    }

    /// [`Self::contains`] with `h == key.hash()` already computed.
    #[inline]
    pub fn contains_hashed(&self, key: &Key<A>, h: u32) -> bool {
        self.find(key, h).is_some()
    }

    pub fn get(&self, idx: ConnIdx) -> Option<&Conn<A>> {
        self.slab.get(idx.0 as usize)?.conn.as_ref()
    }

    /// Appends views of the connections in slots `from..from + budget` to
    /// `out` and returns where to continue, or `None` after the last slot.
    /// Used to list connections a budget at a time between bursts.
    pub fn scan(
        &self,
        from: usize,
        budget: usize,
        now_ms: u64,
        out: &mut Vec<ConnView>,
    ) -> Option<usize> {
        let now = tick(now_ms);
        let end = from.saturating_add(budget).min(self.slab.len());
        for slot in self.slab.get(from..end).unwrap_or_default() {
            if let Some(c) = &slot.conn {
                out.push(ConnView {
                    proto: c.in_key.proto,
                    client: (c.in_key.src.into(), c.in_key.sport),
                    vip: (c.in_key.dst.into(), c.in_key.dport),
                    server: (c.out_key.src.into(), c.out_key.sport),
                    local: (c.out_key.dst.into(), c.out_key.dport),
                    tcp: c.tcp,
                    expires_in_ms: c.expires.wrapping_sub(now).min(i32::MAX as u32),
                });
            }
        }
        (end < self.slab.len()).then_some(end)
    }

    /// Advances the connection's TCP state for a packet with flags `f` from
    /// `dir` and restarts its idle timer at `now_ms`.
    #[inline(always)]
    pub fn touch(&mut self, idx: ConnIdx, dir: Dir, f: TcpFlags, now_ms: u64) -> Option<&Conn<A>> {
        let i = idx.0 as usize;
        let conn = self.slab.get_mut(i)?.conn.as_mut()?;
        if conn.steady(f) {
            conn.restart_steady(now_ms);
            return Some(conn);
        }
        let old = conn.tcp;
        conn.advance(dir, f);
        let timeout = conn.timeout_ms();
        conn.expires = tick(now_ms).wrapping_add(timeout);
        // The usual packet leaves the state (so the timeout) as it was.
        if conn.tcp != old && timeout < conn.timeout_in(old) {
            // A shorter timeout: the sweep's deadline may now be too late.
            if let Some(d) = self.deadline.get_mut(i) {
                *d = deadline_of(conn.expires);
            }
        }
        Some(conn)
    }

    /// Records the sequence number `synack_seq` of the real server's
    /// SYN-ACK: [`Conn::fdata_seq`] becomes `synack_seq + 1`.
    pub fn record_synack(&mut self, idx: ConnIdx, synack_seq: u32) -> Option<()> {
        let conn = self.slab.get_mut(idx.0 as usize)?.conn.as_mut()?;
        conn.fdata_seq = synack_seq.wrapping_add(1);
        Some(())
    }

    /// Puts the connection in TCP state `state` (a transition the tables do
    /// not make: the SYN proxy's handshake) and restarts its idle timer.
    pub fn set_tcp_state(&mut self, idx: ConnIdx, state: TcpState, now_ms: u64) -> Option<()> {
        let i = idx.0 as usize;
        let conn = self.slab.get_mut(i)?.conn.as_mut()?;
        conn.tcp = state;
        conn.expires = tick(now_ms).wrapping_add(conn.timeout_ms());
        let d = self.deadline.get_mut(i)?;
        if passed(conn.expires, *d) {
            *d = deadline_of(conn.expires);
        }
        Some(())
    }

    #[inline]
    fn place(&mut self, h: u32, id: u32) {
        // Entries ≤ 2 × capacity < 7 × buckets: some bucket has a free way.
        let mut b = h as usize & self.mask;
        loop {
            let bucket = &mut self.index[b];
            let free = bucket.ways_of(0);
            if free != 0 {
                let w = free.trailing_zeros() as usize;
                bucket.hash[w] = h;
                bucket.id[w] = id;
                return;
            }
            *bucket.overflow_mut() += 1;
            b = (b + 1) & self.mask;
        }
    }

    /// Inserts a new connection; `None` when the table is full. The caller
    /// guarantees neither key is in use (its lookup of `in_key` missed and
    /// [`Self::contains`] said no for `out_key`), so no probe is repeated.
    pub fn insert(&mut self, conn: Conn<A>) -> Option<ConnIdx> {
        self.insert_hashed(conn, conn.in_key.hash(), conn.out_key.hash())
    }

    /// [`Self::insert`] with `hin == conn.in_key.hash()` and `hout ==
    /// conn.out_key.hash()` already computed.
    #[inline]
    pub fn insert_hashed(&mut self, conn: Conn<A>, hin: u32, hout: u32) -> Option<ConnIdx> {
        debug_assert!(!self.contains(&conn.in_key) && !self.contains(&conn.out_key));
        debug_assert_eq!((hin, hout), (conn.in_key.hash(), conn.out_key.hash()));
        let dest = self.dests.get_mut(conn.dest.0 as usize)?.as_mut()?;
        let slot = self.free.pop()?;
        dest.refs += 1;
        dest.server.count_active(self.worker, 1);
        let expires = conn.expires;
        let s = self.slab.get_mut(slot as usize)?;
        s.conn = Some(conn);
        if let Some(d) = self.deadline.get_mut(slot as usize) {
            *d = deadline_of(expires);
        }
        self.place(hin, slot << 1);
        self.place(hout, slot << 1 | 1);
        self.len += 1;
        Some(ConnIdx(slot))
    }

    /// Removes the index entry `id` of hash `h` and the overflow marks its
    /// probe left on the buckets before it.
    fn unindex(&mut self, h: u32, id: u32) {
        let home = h as usize & self.mask;
        let mut b = home;
        for _ in 0..=self.mask {
            let bucket = &mut self.index[b];
            if let Some(w) = (0..WAYS).find(|&w| bucket.hash[w] == h && bucket.id[w] == id) {
                bucket.hash[w] = 0;
                while b != home {
                    b = (b + self.mask) & self.mask;
                    *self.index[b].overflow_mut() -= 1;
                }
                return;
            }
            b = (b + 1) & self.mask;
        }
    }

    /// Frees a connection and both its index entries.
    pub fn remove(&mut self, idx: ConnIdx) -> Option<Conn<A>> {
        let hashes = self.slab.get(idx.0 as usize)?.hashes()?;
        self.remove_hashed(idx, hashes)
    }

    /// [`Self::remove`] with `[hin, hout]` the hashes of the connection's
    /// keys, already computed.
    fn remove_hashed(&mut self, idx: ConnIdx, [hin, hout]: [u32; 2]) -> Option<Conn<A>> {
        let i = idx.0 as usize;
        let conn = self.slab.get_mut(i)?.conn.take()?;
        self.unindex(hin, idx.0 << 1);
        self.unindex(hout, idx.0 << 1 | 1);
        self.deadline[i] = FREE;
        if let Some(dest) = self
            .dests
            .get_mut(conn.dest.0 as usize)
            .and_then(Option::as_mut)
        {
            dest.refs -= 1;
            dest.server.count_active(self.worker, -1);
        }
        self.free.push(idx.0);
        self.len -= 1;
        Some(conn)
    }

    /// Visits up to `budget` slots from where the last sweep stopped and
    /// frees expired connections (an empty table is not visited). Returns
    /// how many were freed.
    pub fn sweep(&mut self, now_ms: u64, budget: usize) -> usize {
        if self.len == 0 {
            // Every deadline is free: nothing to visit.
            return 0;
        }
        let (now, n) = (tick(now_ms), self.deadline.len());
        let (mut freed, mut left) = (0, budget.min(n));
        // Slots whose deadline passed, a batch at a time (their lines are
        // prefetched as they are found).
        let mut due = [0u32; SWEEP_BATCH];
        while left > 0 {
            let mut found = 0;
            while left > 0 && found < SWEEP_BATCH {
                // The slots up to the table's end or the budget, whichever
                // comes first: a plain slice walk.
                let pos = self.sweep_pos;
                let end = n.min(pos + left);
                let Some(deadlines) = self.deadline.get(pos..end) else {
                    self.sweep_pos = 0;
                    break;
                };
                let mut next = end;
                'scan: for (c, chunk) in deadlines.chunks(SCAN_CHUNK).enumerate() {
                    // The walk is sequential but short and interleaved with
                    // other misses: load the deadlines a few lines ahead.
                    if let Some(d) = deadlines.get((c + DEADLINES_AHEAD) * SCAN_CHUNK) {
                        prefetch(d);
                    }
                    // Most slots are free or not due yet: test a chunk at
                    // once (branch-free, vectorised) before looking closer.
                    if !chunk.iter().fold(false, |any, &d| any | is_due(d, now)) {
                        continue;
                    }
                    for (j, &d) in chunk.iter().enumerate() {
                        if !is_due(d, now) {
                            continue;
                        }
                        let i = pos + c * SCAN_CHUNK + j;
                        if let Some(slot) = self.slab.get(i) {
                            prefetch(slot);
                        }
                        due[found] = i as u32;
                        found += 1;
                        if found == SWEEP_BATCH {
                            next = i + 1;
                            break 'scan;
                        }
                    }
                }
                left -= next - pos;
                self.sweep_pos = if next == n { 0 } else { next };
            }
            freed += self.expire_batch(&due[..found], now);
        }
        // The next call starts here: its first deadlines load meanwhile.
        for l in 0..DEADLINES_AHEAD {
            if let Some(d) = self.deadline.get(self.sweep_pos + l * SCAN_CHUNK) {
                prefetch(d);
            }
        }
        freed
    }

    /// Frees the expired connections among the slots `due` (deadlines
    /// passed) and refreshes the deadlines of the others. Their index
    /// buckets are prefetched first.
    fn expire_batch(&mut self, due: &[u32], now: u32) -> usize {
        // The expired ones' key hashes (zero: not expired), each computed once.
        let mut hashes = [[0u32; 2]; SWEEP_BATCH];
        for (&i, hs) in due.iter().zip(hashes.iter_mut()) {
            let Some(slot) = self.slab.get(i as usize) else {
                continue;
            };
            if slot.conn.as_ref().is_some_and(|c| passed(c.expires, now)) {
                *hs = slot.hashes().unwrap_or_default();
                for h in *hs {
                    prefetch(&self.index[h as usize & self.mask]);
                }
            }
        }
        let mut freed = 0;
        for (&i, &hs) in due.iter().zip(hashes.iter()) {
            let i = i as usize;
            let Some(slot) = self.slab.get(i) else {
                continue;
            };
            let deadline = match &slot.conn {
                Some(c) if passed(c.expires, now) => {
                    self.remove_hashed(ConnIdx(i as u32), hs);
                    freed += 1;
                    continue;
                }
                Some(c) => deadline_of(c.expires),
                None => FREE,
            };
            self.deadline[i] = deadline;
        }
        freed
    }

    /// Adds every destination's [`Pending`] counts to its service's and
    /// server's [`Traffic`] (housekeeping, and before a snapshot may drop
    /// destinations).
    pub fn flush_stats(&mut self) {
        for d in self.dests.iter_mut().flatten() {
            if !d.pending.is_empty() {
                d.service.add(self.worker, &d.pending);
                d.server.add(self.worker, &d.pending);
                d.pending = Pending::default();
            }
        }
    }

    pub fn dest(&self, id: DestId) -> Option<&Dest<A>> {
        self.dests.get(id.0 as usize)?.as_ref()
    }

    pub fn dest_mut(&mut self, id: DestId) -> Option<&mut Dest<A>> {
        self.dests.get_mut(id.0 as usize)?.as_mut()
    }

    /// Takes the (service, real server) pairs of a newly published
    /// snapshot: returns their ids, per service in server order. Pairs no
    /// longer published are dropped once no connection uses them.
    pub fn publish(&mut self, snap: &Snapshot, neigh_gen: u32) -> Vec<Vec<DestId>>
    where
        A: Family,
    {
        for d in self.dests.iter_mut().flatten() {
            d.published = false;
        }
        let services = A::services(snap);
        let mut ids = Vec::with_capacity(services.len());
        // Whether connections to (service, server) expire on their next
        // packet, for the pairs left behind below.
        let mut expire = FastMap::default();
        let default_policy = ConnPolicy::default();
        for (i, svc) in services.iter().enumerate() {
            let forwarding = A::forwarding_of(snap, i);
            let lip = svc.local_addrs.first().copied();
            // The address the server is asked from (its port's interface
            // address), else port 0's.
            let asked_from = |server: A| {
                let n = A::neighbours(snap);
                let asked = n.binary_search_by_key(&server, |&(s, _)| s).ok();
                asked
                    .map(|i| n[i].1)
                    .filter(|&a| a != A::UNSPECIFIED)
                    .or(A::interface(snap))
            };
            let persistence = A::persistence_of(snap, i);
            let policy = A::conn_policy_of(snap, i).unwrap_or(&default_policy);
            let aging = Aging::new(
                forwarding,
                svc.key.protocol.number(),
                policy.establish_timeout_s,
            );
            let next_hop = A::next_hop_of(snap, i);
            let toa = A::toa_of(snap, i);
            let mut per = Vec::with_capacity(svc.servers.len());
            for (j, rs) in svc.servers.iter().enumerate() {
                let tunnel_src = lip.or_else(|| asked_from(rs.addr));
                let key = (
                    Arc::as_ptr(&svc.stats) as usize,
                    Arc::as_ptr(&rs.stats) as usize,
                    rs.addr,
                    rs.port,
                );
                let id = match self.dest_ids.get(&key) {
                    Some(&id) => id,
                    None => {
                        let dest = Dest {
                            service: Arc::clone(&svc.stats),
                            server: Arc::clone(&rs.stats),
                            addr: rs.addr,
                            port: rs.port,
                            next_hop: next_hop.unwrap_or(rs.addr),
                            forwarding,
                            tunnel_src,
                            toa,
                            persistence,
                            aging,
                            expire_quiescent: false,
                            origin: (svc.key, false),
                            mac: MacAddr::default(),
                            // Differs from the engine's: resolve on first use.
                            neigh_gen: neigh_gen.wrapping_sub(1),
                            pending: Pending::default(),
                            refs: 0,
                            published: false,
                        };
                        let id = match self.free_dests.pop() {
                            Some(id) => {
                                self.dests[id as usize] = Some(dest);
                                id
                            }
                            None => {
                                self.dests.push(Some(dest));
                                (self.dests.len() - 1) as u32
                            }
                        };
                        self.dest_ids.insert(key, id);
                        id
                    }
                };
                let quiescent = policy.quiescent.get(j).copied().unwrap_or(false);
                let expires = policy.expire_quiescent && quiescent;
                expire.insert((svc.key, rs.addr, rs.port), expires);
                if let Some(d) = self.dests[id as usize].as_mut() {
                    d.published = true;
                    d.tunnel_src = tunnel_src;
                    d.toa = toa;
                    d.persistence = persistence;
                    d.aging = aging;
                    d.expire_quiescent = expires;
                    d.origin = (svc.key, policy.expire_quiescent);
                    let hop = next_hop.unwrap_or(rs.addr);
                    if d.next_hop != hop {
                        d.next_hop = hop;
                        // Resolve the new next hop on first use.
                        d.neigh_gen = neigh_gen.wrapping_sub(1);
                    }
                }
                per.push(DestId(id));
            }
            ids.push(per);
        }
        for (id, slot) in self.dests.iter_mut().enumerate() {
            let Some(d) = slot.as_mut().filter(|d| !d.published) else {
                continue;
            };
            if d.refs == 0 {
                *slot = None;
                self.free_dests.push(id as u32);
                continue;
            }
            // Removed: unavailable, unless its service was re-created with
            // the server in it (a reload changing the service's options).
            let (svc, flag) = d.origin;
            d.expire_quiescent = expire.get(&(svc, d.addr, d.port)).copied().unwrap_or(flag);
        }
        let dests = &self.dests;
        self.dest_ids.retain(|_, id| dests[*id as usize].is_some());
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_bits_gather_each_flag() {
        for m in 0..16usize {
            let f = TcpFlags::new(m & 2 != 0, m & 8 != 0, m & 1 != 0, m & 4 != 0);
            assert_eq!(f.bits(), m, "{f:?}");
            assert_eq!(
                (f.syn(), f.ack(), f.fin(), f.rst()),
                (m & 2 != 0, m & 8 != 0, m & 1 != 0, m & 4 != 0)
            );
            // From the header byte, PSH (0x08) and the rest ignored.
            let byte = (m & 7) as u8 | ((m & 8) as u8) << 1 | 0xe8;
            assert_eq!(TcpFlags::from_header(byte), f);
        }
    }

    #[test]
    fn ways_of_marks_exactly_the_matching_ways() {
        let h = 0x8000_1234;
        for pattern in 0u32..1 << WAYS {
            let mut b = EMPTY_BUCKET;
            for w in 0..WAYS {
                b.hash[w] = if pattern & 1 << w != 0 {
                    h
                } else {
                    0x8000_0000 + w as u32
                };
            }
            // The overflow word next to the ways never counts as one.
            *b.overflow_mut() = h;
            assert_eq!(b.ways_of(h), pattern);
            assert_eq!(b.ways_of(h ^ 1), 0);
        }
        // Free ways are those of hash 0; an empty overflow count is none.
        assert_eq!(EMPTY_BUCKET.ways_of(0), (1 << WAYS) - 1);
    }
    use crate::command::{Protocol, Scheduler, ServiceKey};
    use crate::engine::{ServerSnap, ServiceSnap, Snapshot4};
    use crate::sched::SchedTable;

    fn key(i: u32, port: u16) -> FlowKey {
        FlowKey {
            proto: 6,
            src: Ipv4Addr::from(0x0a00_0000 + i),
            dst: Ipv4Addr::new(10, 99, 0, 100),
            sport: port,
            dport: 80,
        }
    }

    fn snapshot(servers: u32) -> Snapshot {
        Snapshot {
            v4: Snapshot4 {
                services: vec![ServiceSnap {
                    key: ServiceKey {
                        addr: Ipv4Addr::new(10, 99, 0, 100).into(),
                        port: 80,
                        protocol: Protocol::Tcp,
                    },
                    stats: Arc::default(),
                    servers: (0..servers)
                        .map(|i| ServerSnap {
                            addr: Ipv4Addr::new(10, 99, 1, i as u8),
                            port: 8080,
                            stats: Arc::default(),
                        })
                        .collect(),
                    table: SchedTable::build(Scheduler::Rr, &vec![1; servers as usize]),
                    local_addrs: vec![],
                }],
                ..Snapshot4::default()
            },
            ..Snapshot::default()
        }
    }

    /// A table with one published destination.
    fn table(capacity: usize) -> (ConnTable, DestId) {
        let mut t = ConnTable::new(capacity, 0);
        let ids = t.publish(&snapshot(1), 0);
        (t, ids[0][0])
    }

    fn conn(i: u32, expires: u32, dest: DestId) -> Conn {
        let in_key = key(i, 1000 + (i % 50000) as u16);
        let out_key = FlowKey {
            proto: 6,
            src: Ipv4Addr::new(10, 99, 0, 3),
            dst: Ipv4Addr::new(10, 99, 0, 200),
            sport: 8080,
            dport: (i % 60000) as u16 + 1024,
        };
        Conn {
            in_key,
            out_key,
            client_mac: MacAddr::default(),
            tcp: TcpState::SynRecv,
            client_row: Row::Input,
            established_ms: TcpState::Established.timeout_ms(),
            expires,
            dest,
            fdata_seq: 0,
            deltas: Deltas::of(&in_key, &out_key.reversed()),
        }
    }

    proptest::proptest! {
        /// A connection's reply rewrite uses its client rewrite's
        /// differences reversed: exactly the differences computed the
        /// other way, for IPv4 and IPv6 keys alike; and both apply to a
        /// checksum as recomputing over the rewritten words does.
        #[test]
        fn reversed_deltas_are_the_deltas_of_the_way_back(
            a in proptest::prelude::any::<(u32, u32, u16, u16)>(),
            b in proptest::prelude::any::<(u32, u32, u16, u16)>(),
            c in proptest::prelude::any::<(u128, u128, u16, u16)>(),
            d in proptest::prelude::any::<(u128, u128, u16, u16)>(),
            sum in 1u32..0xffff,
        ) {
            let k4 = |(s, d, sp, dp): (u32, u32, u16, u16)| Key {
                proto: 6, src: Ipv4Addr::from(s), dst: Ipv4Addr::from(d), sport: sp, dport: dp,
            };
            let k6 = |(s, d, sp, dp): (u128, u128, u16, u16)| Key {
                proto: 17, src: Ipv6Addr::from(s), dst: Ipv6Addr::from(d), sport: sp, dport: dp,
            };
            let (a, b, c, d) = (k4(a), k4(b), k6(c), k6(d));
            proptest::prop_assert_eq!(Deltas::of(&a, &b).reversed(), Deltas::of(&b, &a));
            proptest::prop_assert_eq!(Deltas::of(&c, &d).reversed(), Deltas::of(&d, &c));
            // A checksum over the old words (plus `sum` of the rest),
            // adjusted, is the checksum over the new words.
            let words = |k: &Key<Ipv4Addr>| {
                let mut b = [0u8; 12];
                b[..4].copy_from_slice(&k.src.octets());
                b[4..8].copy_from_slice(&k.dst.octets());
                b[8..10].copy_from_slice(&k.sport.to_be_bytes());
                b[10..].copy_from_slice(&k.dport.to_be_bytes());
                checksum::sum(&b)
            };
            let before = checksum::finish(words(&a) + sum);
            let dl = Deltas::of(&a, &b);
            let after = checksum::adjust_folded(before, u32::from(dl.addrs) + u32::from(dl.ports));
            proptest::prop_assert_eq!(after, checksum::finish(words(&b) + sum));
        }
    }

    #[test]
    fn toa_goes_on_syns_and_on_segments_acking_the_servers_syn_ack_only() {
        let (mut t, d) = table(8);
        let idx = t.insert(conn(1, 5000, d)).expect("room");
        let f = TcpFlags::new;
        let c = *t.get(idx).expect("conn");
        assert!(c.wants_toa(0, f(true, false, false, false)), "SYN");
        assert!(
            c.wants_toa(99, f(true, false, false, false)),
            "SYN, any ack"
        );
        assert!(!c.wants_toa(0, f(true, true, false, false)), "SYN-ACK");
        assert!(!c.wants_toa(0, TcpFlags::default()), "UDP, no flags");
        t.record_synack(idx, u32::MAX).expect("conn");
        let c = *t.get(idx).expect("conn");
        assert_eq!(c.fdata_seq, 0, "SYN-ACK seq + 1 wraps");
        t.record_synack(idx, 7000).expect("conn");
        let c = *t.get(idx).expect("conn");
        assert_eq!(c.fdata_seq, 7001);
        assert!(
            c.wants_toa(7001, f(false, true, false, false)),
            "ACK / data"
        );
        assert!(
            !c.wants_toa(7002, f(false, true, false, false)),
            "acks data"
        );
        assert!(!c.wants_toa(7001, f(false, true, true, false)), "FIN");
        assert!(!c.wants_toa(7001, f(false, true, false, true)), "RST");
        assert!(!c.wants_toa(7001, f(false, false, false, true)), "bare RST");
        assert!(!c.wants_toa(7001, TcpFlags::default()), "no ACK flag");
    }

    #[test]
    fn a_lookup_hint_is_only_taken_when_its_slot_still_holds_the_key() {
        let (mut t, d) = table(8);
        let a = conn(1, 5000, d);
        let ia = t.insert(a).expect("room");
        let hint_a = t.prefetch_conn(a.in_key.hash());
        let hint_a_out = t.prefetch_conn(a.out_key.hash());
        assert_eq!(hint_a >> 1, ia.0);
        assert_eq!(
            t.lookup_hinted(&a.in_key, a.in_key.hash(), hint_a, 1),
            Some((ia, Dir::In))
        );
        // A hint for the other direction (or none, or a wild one) is
        // not taken: the index answers.
        for hint in [hint_a_out, NO_HINT, 12345] {
            assert_eq!(
                t.lookup_hinted(&a.in_key, a.in_key.hash(), hint, 1),
                Some((ia, Dir::In))
            );
        }
        // The slot freed and reused by another connection: the stale
        // hint finds neither the old key nor misleads the new one.
        t.remove(ia);
        let b = conn(2, 5000, d);
        let ib = t.insert(b).expect("room");
        assert_eq!(ib, ia);
        assert_eq!(t.lookup_hinted(&a.in_key, a.in_key.hash(), hint_a, 1), None);
        assert_eq!(
            t.lookup_hinted(&b.out_key, b.out_key.hash(), hint_a, 1),
            Some((ib, Dir::Out))
        );
    }

    #[test]
    fn scan_lists_every_connection_a_budget_at_a_time() {
        let (mut t, d) = table(100);
        for i in 0..37 {
            t.insert(conn(i, 5000, d)).expect("room");
        }
        let (mut out, mut from, mut rounds) = (Vec::new(), Some(0), 0);
        while let Some(f) = from {
            from = t.scan(f, 16, 1000, &mut out);
            rounds += 1;
            assert!(rounds <= 10, "scan does not finish");
        }
        assert_eq!(rounds, 7, "100 slots, 16 per round");
        assert_eq!(out.len(), 37);
        let v = out
            .iter()
            .find(|v| v.client == (key(5, 0).src.into(), 1005))
            .expect("conn 5 listed");
        assert_eq!(v.vip, (Ipv4Addr::new(10, 99, 0, 100).into(), 80));
        assert_eq!(v.server, (Ipv4Addr::new(10, 99, 0, 3).into(), 8080));
        assert_eq!(v.local, (Ipv4Addr::new(10, 99, 0, 200).into(), 1029));
        assert_eq!(
            (v.proto, v.tcp, v.expires_in_ms),
            (6, TcpState::SynRecv, 4000)
        );
    }

    #[test]
    fn layout_is_one_cache_line_per_bucket_and_per_connection() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::size_of::<Slot>(), 64);
        assert_eq!(std::mem::size_of::<Slot<Ipv6Addr>>(), 128);
    }

    #[test]
    fn both_directions_find_the_connection() {
        let (mut t, d) = table(16);
        let c = conn(1, 100, d);
        let idx = t.insert(c).expect("room");
        assert_eq!(t.lookup(&c.in_key, 0), Some((idx, Dir::In)));
        assert_eq!(t.lookup(&c.out_key, 0), Some((idx, Dir::Out)));
        assert_eq!(t.lookup(&key(2, 5), 0), None);
    }

    #[test]
    fn full_table_refuses_new_and_keeps_old() {
        let (mut t, d) = table(8);
        for i in 0..8 {
            assert!(t.insert(conn(i, 1000, d)).is_some());
        }
        assert!(t.insert(conn(100, 1000, d)).is_none());
        for i in 0..8 {
            assert!(
                t.lookup(&conn(i, 0, d).in_key, 10).is_some(),
                "conn {i} evicted"
            );
        }
    }

    #[test]
    fn expired_connections_are_freed_by_lookup_and_sweep() {
        let (mut t, d) = table(64);
        for i in 0..40 {
            t.insert(conn(i, if i % 2 == 0 { 50 } else { 500 }, d));
        }
        assert_eq!(t.lookup(&conn(0, 0, d).in_key, 60), None);
        assert_eq!(t.len(), 39);
        let freed = t.sweep(60, 64);
        assert_eq!(freed, 19);
        assert_eq!(t.len(), 20);
        for i in (1..40).step_by(2) {
            assert!(t.lookup(&conn(i, 0, d).out_key, 60).is_some());
        }
    }

    #[test]
    fn sweep_visits_exactly_its_budget_in_batches_and_wraps() {
        // More expired connections than one batch, budgets that stop
        // mid-table and one that wraps: each call visits exactly `budget`
        // slots from where the last one stopped, freeing what expired there.
        let cap = 300;
        let (mut t, d) = table(cap);
        let expired = |i: u32| i % 3 != 1;
        for i in 0..cap as u32 {
            let idx = t
                .insert(conn(i, if expired(i) { 50 } else { 5_000 }, d))
                .expect("room");
            assert_eq!(idx, ConnIdx(i), "slots are handed out in order");
        }
        let in_range = |r: std::ops::Range<u32>| r.filter(|&i| expired(i)).count();
        assert_eq!(t.sweep(100, 70), in_range(0..70));
        assert_eq!(t.sweep(100, 200), in_range(70..270));
        assert_eq!(t.sweep_pos, 270);
        // Wraps: slots 270..300, then 0..50 (already swept there).
        assert_eq!(t.sweep(100, 80), in_range(270..300));
        assert_eq!(t.sweep_pos, 50);
        assert_eq!(t.len(), (0..cap as u32).filter(|&i| !expired(i)).count());
        for i in 0..cap as u32 {
            let found = t.lookup(&conn(i, 0, d).out_key, 100).is_some();
            assert_eq!(found, !expired(i), "conn {i}");
        }
        // A budget beyond the table visits each slot once.
        assert_eq!(t.sweep(6_000, 10_000), 100);
        assert!(t.is_empty());
    }

    #[test]
    fn sweep_refreshes_stale_deadlines_and_honours_shorter_timeouts() {
        let (mut t, d) = table(4);
        let flags = TcpFlags::new;
        let a = t.insert(Conn::open(
            conn(1, 0, d).in_key,
            conn(1, 0, d).out_key,
            MacAddr::default(),
            d,
            Aging::new(Forwarding::Fnat, 6, None),
            flags(true, false, false, false),
            0,
        ));
        let a = a.expect("room");
        // An ACK at 20 s establishes it: expiry moves to 110 s without the
        // sweep's deadline (30 s) being rewritten.
        t.touch(a, Dir::In, flags(false, true, false, false), 20_000);
        assert_eq!(t.sweep(40_000, 4), 0, "alive: deadline refreshed");
        assert_eq!(t.deadline[0], 110_000);
        // A RST shortens the timeout to 3 s: the sweep must not wait 110 s.
        t.touch(a, Dir::Out, flags(false, false, false, true), 41_000);
        assert_eq!(t.get(a).map(|c| c.tcp), Some(TcpState::Close));
        assert_eq!(t.sweep(44_000, 4), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn ticks_wrap() {
        let (mut t, d) = table(4);
        let start = u64::from(u32::MAX) - 1_000;
        let idx = t
            .insert(conn(1, tick(start).wrapping_add(5_000), d))
            .expect("room");
        assert!(t.lookup(&conn(1, 0, d).in_key, start + 4_000).is_some());
        assert_eq!(t.sweep(start + 4_999, 4), 0);
        assert_eq!(t.sweep(start + 5_000, 4), 1);
        assert!(t.get(idx).is_none());
    }

    #[test]
    fn active_gauge_follows_inserts_and_removals() {
        let (mut t, d) = table(4);
        let server = Arc::clone(&t.dest(d).expect("dest").server);
        let idx = t.insert(conn(1, 100, d)).expect("room");
        t.insert(conn(2, 100, d)).expect("room");
        assert_eq!(server.snapshot().active, 2);
        t.remove(idx);
        assert_eq!(server.snapshot().active, 1);
    }

    #[test]
    fn unpublished_destinations_live_while_connections_use_them() {
        let mut t = ConnTable::new(4, 0);
        let two = snapshot(2);
        let ids = t.publish(&two, 0);
        let (d0, d1) = (ids[0][0], ids[0][1]);
        let idx = t.insert(conn(1, 100, d1)).expect("room");
        // Republishing the same snapshot keeps the ids.
        assert_eq!(t.publish(&two, 0), ids);
        // A snapshot without the servers: d0 is unused and goes, d1 stays.
        let none = snapshot(0);
        assert_eq!(t.publish(&none, 0), vec![Vec::new()]);
        assert!(t.dest(d0).is_none());
        assert!(t.dest(d1).is_some());
        t.remove(idx);
        t.publish(&none, 0);
        assert!(t.dest(d1).is_none());
    }

    #[test]
    fn churn_keeps_index_consistent() {
        // Insert and remove many times in a small table with colliding
        // buckets so ways fill up, entries spill and overflow counts are
        // undone; every live key must stay findable.
        let (mut t, d) = table(32);
        let mut live: Vec<(u32, ConnIdx)> = Vec::new();
        let mut state = 12345u32;
        for step in 0..20_000u32 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if live.len() < 32 && !(state >> 16).is_multiple_of(3) {
                if let Some(idx) = t.insert(conn(step, 1 << 30, d)) {
                    live.push((step, idx));
                }
            } else if !live.is_empty() {
                let (i, idx) = live.swap_remove((state >> 8) as usize % live.len());
                assert!(t.remove(idx).is_some());
                assert!(!t.contains(&conn(i, 0, d).in_key));
            }
            if step % 997 == 0 {
                for (i, idx) in &live {
                    let c = conn(*i, 0, d);
                    assert_eq!(t.lookup(&c.in_key, 0).map(|x| x.0), Some(*idx));
                    assert_eq!(t.lookup(&c.out_key, 0).map(|x| x.0), Some(*idx));
                }
            }
        }
        assert_eq!(t.len(), live.len());
        let entries: usize = t
            .index
            .iter()
            .map(|b| b.hash[..WAYS].iter().filter(|&&h| h != 0).count())
            .sum();
        assert_eq!(entries, 2 * live.len());
    }

    #[test]
    fn keys_spread_over_every_home_bucket() {
        // The bit that keeps hashes non-zero must not pin the home bucket
        // (a forced low bit left half the buckets unused and most
        // entries spilled at four per bucket).
        let (t, d) = table(1 << 12);
        let mut used = vec![false; t.mask + 1];
        for i in 0..1 << 14 {
            let c = conn(i, 0, d);
            for h in [c.in_key.hash(), c.out_key.hash()] {
                used[h as usize & t.mask] = true;
            }
        }
        let unused = used.iter().filter(|&&u| !u).count();
        assert!(
            unused * 100 < used.len(),
            "{unused} of {} home buckets unused",
            used.len()
        );
    }

    #[test]
    fn spilled_entries_are_found_and_overflow_is_undone() {
        // A one-bucket-heavy load: a 16-connection table has 8 buckets; put
        // many keys whose hashes share a home bucket.
        let (mut t, d) = table(16);
        let home = |c: &Conn| c.in_key.hash() as usize & t.mask;
        let target = home(&conn(0, 0, d));
        let same: Vec<Conn> = (0..100_000)
            .map(|i| conn(i, 1 << 30, d))
            .filter(|c| home(c) == target)
            .take(9)
            .collect();
        assert_eq!(same.len(), 9);
        let idxs: Vec<ConnIdx> = same.iter().map(|c| t.insert(*c).expect("room")).collect();
        assert!(t.index[target].overflow() > 0, "the home bucket spilled");
        for (c, idx) in same.iter().zip(&idxs) {
            assert_eq!(t.lookup(&c.in_key, 0), Some((*idx, Dir::In)));
        }
        for idx in idxs {
            t.remove(idx);
        }
        assert!(t
            .index
            .iter()
            .all(|b| b.overflow() == 0 && b.hash == [0; WAYS + 1]));
    }

    /// Flags of a packet: `S` SYN, `F` FIN, `A` ACK, `R` RST.
    fn flags(s: &str) -> TcpFlags {
        TcpFlags::new(
            s.contains('S'),
            s.contains('A'),
            s.contains('F'),
            s.contains('R'),
        )
    }

    /// The states a connection whose client packets use `client` goes
    /// through, from NONE, for `packets` (direction, flags).
    fn walk(client: Row, packets: &[(Dir, &str)]) -> Vec<TcpState> {
        let mut s = TcpState::None;
        packets
            .iter()
            .map(|&(dir, f)| {
                s = s.next(Row::of(dir, client), flags(f));
                s
            })
            .collect()
    }

    #[test]
    fn a_steady_packet_changes_nothing_but_the_idle_timer() {
        let (mut t, d) = table(4);
        let mut steady = 0;
        for row in [Row::Input, Row::Output, Row::InputOnly] {
            for dir in [Dir::In, Dir::Out] {
                for bits in 0..16u8 {
                    let f =
                        TcpFlags::new(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0);
                    let mut c = conn(1, 100, d);
                    c.tcp = TcpState::Established;
                    c.client_row = row;
                    c.established_ms = 90_000;
                    if !c.steady(f) {
                        continue;
                    }
                    steady += 1;
                    // The full transition agrees: the state stays and the
                    // timeout is the established one.
                    assert_eq!(c.tcp.next(Row::of(dir, row), f), TcpState::Established);
                    let idx = t.insert(c).expect("room");
                    let touched = *t.touch(idx, dir, f, 5_000).expect("live");
                    let mut expected = c;
                    expected.restart_steady(5_000);
                    assert_eq!(touched.expires, tick(5_000) + 90_000);
                    assert_eq!(
                        (touched.tcp, touched.expires),
                        (expected.tcp, expected.expires)
                    );
                    t.remove(idx);
                }
            }
        }
        // Exactly the bare ACK, from either side, in each row.
        assert_eq!(steady, 6);
        let mut udp = conn(2, 100, d);
        udp.in_key.proto = 17;
        assert!(udp.steady(TcpFlags::default()));
        let mut closing = conn(3, 100, d);
        closing.tcp = TcpState::FinWait;
        assert!(!closing.steady(flags("A")));
    }

    #[test]
    fn fnat_handshake_and_client_close_follow_dpvs_rows() {
        use Dir::{In, Out};
        use TcpState::*;
        // Client SYN, server SYN-ACK, client ACK, data both ways; the
        // client closes first: FIN, server ACK, server FIN, client ACK.
        let seq = [
            (In, "S"),
            (Out, "SA"),
            (In, "A"),
            (Out, "A"),
            (In, "FA"),
            (Out, "A"),
            (Out, "FA"),
            (In, "A"),
        ];
        assert_eq!(
            walk(Row::Input, &seq),
            [
                SynRecv,
                SynRecv,
                Established,
                Established,
                CloseWait,
                CloseWait,
                TimeWait,
                TimeWait
            ]
        );
        assert_eq!(TimeWait.timeout_ms(), 7_000);
        assert_eq!(CloseWait.timeout_ms(), 7_000);
        // The server closes first: its FIN (OUTPUT) → FIN_WAIT, the
        // client's FIN then → TIME_WAIT.
        let seq = [(In, "S"), (Out, "SA"), (In, "A"), (Out, "FA"), (In, "FA")];
        assert_eq!(
            walk(Row::Input, &seq),
            [SynRecv, SynRecv, Established, FinWait, TimeWait]
        );
        // The server answers the SYN with a RST: CLOSE (3 s).
        assert_eq!(
            walk(Row::Input, &[(In, "S"), (Out, "RA")]),
            [SynRecv, Close]
        );
        assert_eq!(Close.timeout_ms(), 3_000);
        // A RST from either side of an established connection closes it.
        for dir in [In, Out] {
            let seq = [(In, "S"), (In, "A"), (dir, "R")];
            assert_eq!(walk(Row::Input, &seq)[2], Close, "{dir:?}");
        }
    }

    #[test]
    fn flag_priority_is_rst_syn_fin_ack_and_no_flag_closes() {
        use TcpState::*;
        // RST wins over everything, SYN over FIN and ACK, FIN over ACK.
        assert_eq!(Established.next(Row::Input, flags("SFAR")), Close);
        assert_eq!(Established.next(Row::Input, flags("SFA")), Established);
        assert_eq!(Established.next(Row::Input, flags("FA")), CloseWait);
        // A segment with none of them: CLOSE, as DPVS and Linux.
        assert_eq!(Established.next(Row::Output, flags("")), Close);
        // A few cells of each row, read off DPVS's table.
        let cells = [
            (Row::Input, "R", SynRecv, SynRecv),
            (Row::Input, "R", LastAck, LastAck),
            (Row::Input, "A", LastAck, Close),
            (Row::Input, "S", TimeWait, SynRecv),
            (Row::Input, "F", SynSent, SynSent),
            (Row::Output, "S", None, SynSent),
            (Row::Output, "A", None, Established),
            (Row::Output, "A", Listen, Established),
            (Row::Output, "F", CloseWait, TimeWait),
            (Row::Output, "R", TimeWait, TimeWait),
            (Row::Output, "A", LastAck, LastAck),
            (Row::InputOnly, "F", Established, FinWait),
            (Row::InputOnly, "F", FinWait, FinWait),
            (Row::InputOnly, "R", SynAck, Close),
            (Row::Input, "R", SynAck, SynRecv),
            (Row::Input, "A", SynAck, Established),
        ];
        for (row, f, from, to) in cells {
            assert_eq!(from.next(row, flags(f)), to, "{row:?} {f} from {from:?}");
        }
    }

    #[test]
    fn dr_and_tun_connections_use_the_input_only_row() {
        use Dir::In;
        use TcpState::*;
        assert_eq!(Row::client(Forwarding::Dr), Row::InputOnly);
        assert_eq!(Row::client(Forwarding::Tun), Row::InputOnly);
        assert_eq!(Row::client(Forwarding::Fnat), Row::Input);
        assert_eq!(Row::client(Forwarding::Nat), Row::Input);
        // Only the client's packets are seen: its FIN means FIN_WAIT (not
        // CLOSE_WAIT), and the last ACK keeps it there (7 s).
        let seq = [(In, "S"), (In, "A"), (In, "A"), (In, "FA"), (In, "A")];
        assert_eq!(
            walk(Row::InputOnly, &seq),
            [SynRecv, Established, Established, FinWait, FinWait]
        );
        assert_eq!(walk(Row::InputOnly, &[(In, "S"), (In, "R")])[1], SynRecv);
        assert_eq!(FinWait.timeout_ms(), 7_000);
    }

    #[test]
    fn timeouts_are_dpvs_defaults_and_establish_timeout_replaces_established_and_udp() {
        use TcpState::{
            Close, CloseWait, Established, FinWait, LastAck, Listen, SynAck, SynRecv, SynSent,
            TimeWait,
        };
        let want = [
            (TcpState::None, 2),
            (Established, 90),
            (SynSent, 3),
            (SynRecv, 30),
            (FinWait, 7),
            (TimeWait, 7),
            (Close, 3),
            (CloseWait, 7),
            (LastAck, 7),
            (Listen, 120),
            (SynAck, 30),
        ];
        for (s, secs) in want {
            assert_eq!(s.timeout_ms(), secs * 1000, "{s:?}");
        }
        let (_, d) = table(1);
        let open = |proto, aging, f| {
            let mut c = conn(1, 0, d);
            c.in_key.proto = proto;
            Conn::open(c.in_key, c.out_key, MacAddr::default(), d, aging, f, 0)
        };
        let custom = Aging::new(Forwarding::Fnat, 6, Some(600));
        let mut c = open(6, custom, flags("S"));
        assert_eq!((c.tcp, c.timeout_ms()), (SynRecv, 30_000));
        c.advance(Dir::In, flags("A"));
        assert_eq!((c.tcp, c.timeout_ms()), (Established, 600_000));
        c.advance(Dir::In, flags("FA"));
        assert_eq!((c.tcp, c.timeout_ms()), (CloseWait, 7_000));
        // UDP: 300 s, or the establish_timeout.
        let udp = open(17, Aging::new(Forwarding::Fnat, 17, None), flags(""));
        assert_eq!(
            (udp.tcp, udp.timeout_ms()),
            (TcpState::None, UDP_TIMEOUT_MS)
        );
        let udp = open(17, Aging::new(Forwarding::Dr, 17, Some(5)), flags(""));
        assert_eq!(udp.timeout_ms(), 5_000);
        assert_eq!(udp.expires, 5_000);
    }

    #[test]
    fn state_names_are_ipvsadms() {
        assert_eq!(TcpState::SynRecv.name(), "SYN_RECV");
        assert_eq!(TcpState::TimeWait.name(), "TIME_WAIT");
        assert_eq!(TcpState::CloseWait.name(), "CLOSE_WAIT");
        assert_eq!(TcpState::LastAck.name(), "LAST_ACK");
        assert_eq!(TcpState::Established.name(), "ESTABLISHED");
    }
}
