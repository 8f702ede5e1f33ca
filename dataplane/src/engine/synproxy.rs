//! SYN proxy (DPVS's `syn_proxy`): the load balancer completes the client's
//! TCP handshake itself with a SYN cookie and opens the connection to the
//! real server only when the client's ACK proves the cookie.
//!
//! ```text
//!  client                     dpvsd                         real server
//!    SYN seq=c  ───────────►  no state; cookie k
//!               ◄───────────  SYN-ACK seq=k ack=c+1 (MSS)
//!    ACK ack=k+1 ──────────►  cookie ok → connection, SYN seq=c ──────►
//!                             (pending: client data is dropped,
//!                              our SYN is resent)
//!                                            ◄──────── SYN-ACK seq=r ack=c+1
//!                             delta = r − k; ACK seq=c+1 ack=r+1 ─────►
//!    data ack=a ───────────►  ack a + delta  ─────────────────────────►
//!               ◄───────────  seq s − delta  ◄──────── data seq=s
//! ```
//!
//! **Cookies** are Linux's (`secure_tcp_syn_cookie`): `h(tuple) + c +
//! (count << 24) + ((h(tuple, count) + data) & 0xffffff)` with a keyed
//! SipHash, `count` a 64-second clock; a cookie is valid for two counts.
//! The 24-bit `data` carries the client's SYN options laid out as DPVS's
//! (`syn_proxy_cookie_v4_init_sequence`): bits 12–15 the MSS as an index
//! into Linux's table (536, 1300, 1440, 1460: the largest entry not above
//! the client's MSS), 16–19 the client's window scale, 20 timestamps OK,
//! 21 SACK permitted; every other bit is zero, which is what a forged
//! cookie is checked against.
//!
//! **Options**: as DPVS, our SYN-ACK offers the MSS (less the TOA's length
//! when the service's servers get one), and SACK permitted,
//! timestamps and window scaling when the client offered them (our scale
//! is [`OUR_WSCALE`]; the timestamp echoes the client's). Our SYN to the
//! real server carries what the cookie kept (the client's MSS, window
//! scale and SACK permitted; timestamps with the client's value), so the
//! server's side of the connection has the client's options. What the two
//! handshakes agreed can differ, and is reconciled on every packet of the
//! connection: window fields are rescaled between the client's view and
//! the server's, timestamps shifted by the offset between our SYN-ACK's
//! and the server's clocks (Linux's SYNPROXY does the same), and the SACK
//! blocks of the client moved into the server's sequence space (DPVS's
//! `syn_proxy_filter_opt_outin`).
//!
//! **TOA** (FNAT without PROXY protocol): as DPVS's SYN to the real server
//! and its replay of the client's ACK go through its FNAT handler, our SYN
//! and our ACK carry the client's TOA, and so do the client's segments
//! acknowledging exactly the server's SYN-ACK (the TOA rules of
//! [`crate::conn::Conn::wants_toa`], after `translate_in`).
//!
//! **Pending data**: segments the client sends with its cookie ACK or
//! after it, before the real server's SYN-ACK arrives (a client sends its
//! request right after its ACK, one round trip to the server too early),
//! are held, as DPVS saves them: up to [`HELD_PER_CONN`] per connection
//! in a pool of [`HELD_FRAMES`] frames reserved with the SYN proxy. When
//! the server side is up they go through the engine again (translated and
//! sent to the server right after our ACK). A segment that finds no room
//! is dropped and counted (`synproxy_pending`); the client retransmits
//! it. Each pending segment makes us resend our SYN (it may have been
//! lost), and a resent SYN-ACK of the real server is ACKed again. Frames
//! are not held while VLANs are configured (they would leave untagged).
//!
//! **IPv6**: the same exchange over IPv6 (as DPVS); FNAT and NAT services.
//! NAT64 services (IPv6 VIP, IPv4 servers) are not proxied: their SYNs are
//! forwarded as usual.
//!
//! **State**: a worker keeps, per proxied connection, the sequence delta
//! in a side table keyed by both of the connection's keys; entries are
//! checked against the connection table (a stale entry of an expired
//! connection is ignored and overwritten). The table is reserved when a
//! snapshot first has a SYN-proxy service, so a dataplane without one
//! allocates nothing and the per-packet hooks are one branch.

use std::hash::{Hash, Hasher};

use super::proxyproto::Pp;
use super::*;
use crate::conn::{ConnIdx, FlowKey6};
use crate::io::FRAME_CAP;
use crate::wire::ipv6::HEADER_LEN as IPV6_HEADER_LEN;
use crate::wire::{Ipv6Packet, Ipv6Repr};

/// Our window scale towards clients that scale theirs.
pub const OUR_WSCALE: u8 = 7;
/// The largest window scale (RFC 7323).
pub const WSCALE_MAX: u8 = 14;
/// Linux's MSS table for cookies (`msstab`).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// A cookie's clock ticks every 64 s (Linux: `COUNTER_TRIES`/minute).
const COUNT_MS: u64 = 64_000;
/// Cookies older than this many ticks are refused (Linux's `MAX_SYNCOOKIE_AGE`).
const MAX_AGE: u32 = 2;
/// Proxied connections tracked per worker (two entries each).
pub const MAX_PROXIED: usize = 65_536;
/// Our SYN-ACK's TTL and window.
const SYNACK_TTL: u8 = 64;
const SYNACK_WINDOW: u16 = 65_535;

/// One proxied connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Proxied<A> {
    in_key: Key<A>,
    out_key: Key<A>,
    /// The client's ISN and the cookie (our ISN towards the client).
    client_isn: u32,
    cookie: u32,
    /// The client's window, for the ACK that completes the server side.
    window: u16,
    /// The client's options the cookie carried (for a resent SYN).
    opts: SynOptions,
    /// With timestamps: the client's value in its ACK, and ours (the
    /// SYN-ACK's, which that ACK echoed).
    ts: Option<(u32, u32)>,
    /// Real server ISN − cookie; valid once `pending` is false.
    delta: u32,
    /// Our SYN-ACK's timestamp − the server's; `None` without timestamps.
    ts_delta: Option<u32>,
    /// Window rescaling (shift left, shift right) client → server and
    /// server → client.
    win_in: (u8, u8),
    win_out: (u8, u8),
    /// The real server has not answered our SYN yet.
    pending: bool,
    /// Our SYN and our ACK to the real server carry the client's TOA (the
    /// server's destination sends TOA, [`crate::conn::Dest::toa`]).
    toa: bool,
}

/// A worker's SYN-proxy state.
#[derive(Debug, Default)]
pub(super) struct SynProxy {
    /// Some service of the snapshot proxies SYNs.
    pub(super) on: bool,
    v4: FastMap<FlowKey, Proxied<Ipv4Addr>>,
    v6: FastMap<FlowKey6, Proxied<Ipv6Addr>>,
    held: Held,
}

/// Client frames held per worker while their connection waits for the
/// real server's SYN-ACK.
pub const HELD_FRAMES: usize = 256;
/// Frames held per connection (DPVS saves 3 ACKs by default).
pub const HELD_PER_CONN: usize = 4;

/// Which connection a held frame belongs to: its client → VIP tuple.
type Owner = (IpAddr, u16, IpAddr, u16);

fn owner_of<A: Family>(k: &Key<A>) -> Owner {
    (k.src.into(), k.sport, k.dst.into(), k.dport)
}

/// Whether the proxied TCP connection `src → dst` of `table` waits for
/// its real server.
fn is_pending<A: Family>(
    table: &FastMap<Key<A>, Proxied<A>>,
    (src, sport): (A, u16),
    (dst, dport): (A, u16),
) -> bool {
    let k = Key {
        proto: 6,
        src,
        dst,
        sport,
        dport,
    };
    table.get(&k).is_some_and(|s| s.pending)
}

/// The held frames: fixed buffers reserved when a snapshot first has a
/// SYN-proxy service (nothing is allocated per packet).
#[derive(Debug, Default)]
struct Held {
    bufs: Vec<[u8; FRAME_CAP]>,
    /// Per buffer: its owner, frame length and arrival number; `None`: free.
    slots: Vec<Option<(Owner, usize, u64)>>,
    arrivals: u64,
}

impl Held {
    fn reserve(&mut self) {
        if self.bufs.is_empty() {
            self.bufs = vec![[0; FRAME_CAP]; HELD_FRAMES];
            self.slots = vec![None; HELD_FRAMES];
        }
    }

    /// Keeps a copy of `frame` for `owner`; false when the connection
    /// already holds its share, the frame is too long or no buffer is free.
    fn hold(&mut self, owner: Owner, frame: &[u8]) -> bool {
        let mine = self.slots.iter().flatten().filter(|s| s.0 == owner).count();
        let free = self.slots.iter().position(Option::is_none);
        let (Some(i), true, true) = (free, mine < HELD_PER_CONN, frame.len() <= FRAME_CAP) else {
            return false;
        };
        self.bufs[i][..frame.len()].copy_from_slice(frame);
        self.arrivals += 1;
        self.slots[i] = Some((owner, frame.len(), self.arrivals));
        true
    }

    /// The oldest frame `owner` holds, into `out`; its length.
    fn take(&mut self, owner: Owner, out: &mut [u8; FRAME_CAP]) -> Option<usize> {
        let (i, len) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|s| s.0 == owner).map(|s| (i, s.1, s.2)))
            .min_by_key(|s| s.2)
            .map(|(i, len, _)| (i, len))?;
        out[..len].copy_from_slice(&self.bufs[i][..len]);
        self.slots[i] = None;
        Some(len)
    }

    /// Frees the frames of owners `keep` says are gone.
    fn purge(&mut self, mut keep: impl FnMut(Owner) -> bool) {
        for s in &mut self.slots {
            if s.is_some_and(|(o, _, _)| !keep(o)) {
                *s = None;
            }
        }
    }
}

impl SynProxy {
    /// Takes a new snapshot's settings (off the hot path: may allocate).
    pub(super) fn set_snapshot(&mut self, snap: &Snapshot) {
        let v4 = snap.v4.synproxy.iter().any(|&b| b);
        let v6 = snap.v6.synproxy.iter().any(|&b| b);
        self.on = v4 || v6;
        if v4 && self.v4.capacity() < 2 * MAX_PROXIED {
            self.v4.reserve(2 * MAX_PROXIED);
        }
        if v6 && self.v6.capacity() < 2 * MAX_PROXIED {
            self.v6.reserve(2 * MAX_PROXIED);
        }
        if self.on {
            self.held.reserve();
        }
    }
}

/// What the SYN proxy needs of an address family beyond [`Family`]: how to
/// write a bare segment's IP header and TCP checksum, and where its state is.
pub(super) trait ProxyFamily: Family {
    /// The IP header length of segments we write, and their EtherType.
    const IP_LEN: usize;
    const ETHERTYPE: EtherType;
    /// Writes an IP header `src → dst` (TCP, `payload_len` bytes, `ttl`)
    /// over `l3`, the header's bytes.
    fn emit_ip(l3: &mut [u8], src: Self, dst: Self, payload_len: usize, ttl: u8);
    /// Fills the checksum of the TCP segment `tcp` sent `src → dst`.
    fn fill_tcp_checksum(tcp: &mut [u8], src: Self, dst: Self);
    /// The engine's state for this family: its side, the proxied
    /// connections, and the snapshot.
    fn split(e: &mut Engine) -> Split<'_, Self>;
    /// This family's side and PROXY protocol table ([`proxyproto`]).
    fn pp_split(e: &mut Engine) -> (&mut Side<Self>, &mut FastMap<Key<Self>, Pp<Self>>);
    /// Sets the length of IP packet `l3` (header length `hl`) to `tl`
    /// bytes, with the IPv4 header checksum.
    fn set_ip_len(l3: &mut [u8], hl: usize, tl: usize);
}

/// The parts of an [`Engine`] one family's hooks use at once.
pub(super) struct Split<'a, A: Family> {
    side: &'a mut Side<A>,
    table: &'a mut FastMap<Key<A>, Proxied<A>>,
    snap: &'a Snapshot,
    /// The other family's connections (NAT64 shares local ports with them).
    peer: &'a ConnTable<A::Peer>,
}

impl ProxyFamily for Ipv4Addr {
    const IP_LEN: usize = IPV4_HEADER_LEN;
    const ETHERTYPE: EtherType = EtherType::Ipv4;
    fn emit_ip(l3: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize, ttl: u8) {
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::Tcp,
            payload_len,
            ttl,
        };
        repr.emit(&mut Ipv4Packet::new_unchecked(l3));
    }
    fn fill_tcp_checksum(tcp: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        TcpPacket::new_unchecked(tcp).fill_checksum(src, dst);
    }
    fn pp_split(e: &mut Engine) -> (&mut Side<Ipv4Addr>, &mut FastMap<FlowKey, Pp<Ipv4Addr>>) {
        (&mut e.v4, &mut e.pp.v4)
    }
    fn set_ip_len(l3: &mut [u8], _: usize, tl: usize) {
        let mut ip = Ipv4Packet::new_unchecked(l3);
        ip.set_total_len(tl as u16);
        ip.fill_checksum();
    }
    fn split(e: &mut Engine) -> Split<'_, Ipv4Addr> {
        Split {
            side: &mut e.v4,
            table: &mut e.sp.v4,
            snap: &e.snap,
            peer: &e.v6.conns,
        }
    }
}

impl ProxyFamily for Ipv6Addr {
    const IP_LEN: usize = IPV6_HEADER_LEN;
    const ETHERTYPE: EtherType = EtherType::Ipv6;
    fn emit_ip(l3: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, payload_len: usize, ttl: u8) {
        let repr = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len,
            hop_limit: ttl,
        };
        repr.emit(&mut Ipv6Packet::new_unchecked(l3));
    }
    fn fill_tcp_checksum(tcp: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        v6::fill_tcp_checksum(tcp, src, dst);
    }
    fn pp_split(e: &mut Engine) -> (&mut Side<Ipv6Addr>, &mut FastMap<FlowKey6, Pp<Ipv6Addr>>) {
        (&mut e.v6, &mut e.pp.v6)
    }
    fn set_ip_len(l3: &mut [u8], _: usize, tl: usize) {
        Ipv6Packet::new_unchecked(l3).set_payload_len((tl - IPV6_HEADER_LEN) as u16);
    }
    fn split(e: &mut Engine) -> Split<'_, Ipv6Addr> {
        Split {
            side: &mut e.v6,
            table: &mut e.sp.v6,
            snap: &e.snap,
            peer: &e.v4.conns,
        }
    }
}

/// The keyed hash of a client → VIP tuple (and a count and a salt).
fn cookie_hash<A: Family>(key: &[u64; 2], k: &Key<A>, count: u32, salt: u8) -> u32 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (k.src, k.dst, k.sport, k.dport).hash(&mut h);
    (count, salt).hash(&mut h);
    h.finish() as u32
}

fn count_of(now_ms: u64) -> u32 {
    (now_ms / COUNT_MS) as u32
}

/// The index in [`MSS_TABLE`] of the largest entry not above `mss`.
pub fn mss_index(mss: u16) -> u32 {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
}

/// The options of a client's SYN that its cookie carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynOptions {
    /// An entry of [`MSS_TABLE`].
    pub mss: u16,
    /// The client's window scale (1..=14; as DPVS, a scale of 0 is none).
    pub wscale: Option<u8>,
    pub sack: bool,
    pub timestamps: bool,
}

impl SynOptions {
    /// The options of a SYN that offered `o`.
    fn of(o: &Offered) -> SynOptions {
        SynOptions {
            mss: MSS_TABLE[mss_index(o.mss.unwrap_or(536)) as usize],
            wscale: o.wscale.filter(|&w| w > 0).map(|w| w.min(WSCALE_MAX)),
            sack: o.sack,
            timestamps: o.ts.is_some(),
        }
    }

    /// The cookie's data bits (DPVS's layout).
    fn encode(self) -> u32 {
        mss_index(self.mss) << 12
            | u32::from(self.wscale.unwrap_or(0)) << 16
            | u32::from(self.timestamps) << 20
            | u32::from(self.sack) << 21
    }

    /// The options of a cookie's data bits; `None` when a bit that must be
    /// zero is not, or a field is out of range (a forged cookie).
    fn decode(data: u32) -> Option<SynOptions> {
        if data & !0x003f_f000 != 0 {
            return None;
        }
        let mss = *MSS_TABLE.get((data >> 12 & 0xf) as usize)?;
        let w = (data >> 16 & 0xf) as u8;
        if w > WSCALE_MAX {
            return None;
        }
        Some(SynOptions {
            mss,
            wscale: (w > 0).then_some(w),
            timestamps: data >> 20 & 1 == 1,
            sack: data >> 21 & 1 == 1,
        })
    }
}

/// The cookie (our ISN) for a client SYN `k` with ISN `client_isn` and
/// options `opts`.
pub fn make_cookie<A: Family>(
    key: &[u64; 2],
    k: &Key<A>,
    client_isn: u32,
    opts: SynOptions,
    now_ms: u64,
) -> u32 {
    let count = count_of(now_ms);
    cookie_hash(key, k, 0, 0)
        .wrapping_add(client_isn)
        .wrapping_add(count << 24)
        .wrapping_add(cookie_hash(key, k, count, 1).wrapping_add(opts.encode()) & 0x00ff_ffff)
}

/// The options a valid cookie carries; `None` for a forged or expired one.
pub fn check_cookie<A: Family>(
    key: &[u64; 2],
    k: &Key<A>,
    client_isn: u32,
    cookie: u32,
    now_ms: u64,
) -> Option<SynOptions> {
    let count = count_of(now_ms);
    let c = cookie
        .wrapping_sub(cookie_hash(key, k, 0, 0))
        .wrapping_sub(client_isn);
    let age = count.wrapping_sub(c >> 24) & 0xff;
    if age > MAX_AGE {
        return None;
    }
    let sent = count.wrapping_sub(age);
    SynOptions::decode(c.wrapping_sub(cookie_hash(key, k, sent, 1)) & 0x00ff_ffff)
}

/// The next option at or after offset `i` of a TCP options area `opts`:
/// (offset, kind, length). `None` at the end-of-list option, the end, or
/// a malformed option.
pub(super) fn next_option(opts: &[u8], mut i: usize) -> Option<(usize, u8, usize)> {
    loop {
        match *opts.get(i)? {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                return (len >= 2 && i + len <= opts.len()).then_some((i, kind, len));
            }
        }
    }
}

/// The options a SYN, SYN-ACK or ACK offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Offered {
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: bool,
    /// (value, echo reply).
    ts: Option<(u32, u32)>,
}

pub(super) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads the options of a TCP header's options area.
fn offered(opts: &[u8]) -> Offered {
    let mut o = Offered::default();
    let mut i = 0;
    while let Some((at, kind, len)) = next_option(opts, i) {
        let v = &opts[at + 2..at + len];
        match (kind, len) {
            (2, 4) => o.mss = Some(u16::from_be_bytes([v[0], v[1]])),
            (3, 3) => o.wscale = Some(v[0]),
            (4, 2) => o.sack = true,
            (8, 10) => o.ts = Some((be32(v), be32(&v[4..]))),
            _ => {}
        }
        i = at + len;
    }
    o
}

/// The options of a SYN or SYN-ACK we write, laid out as DPVS's: the MSS;
/// SACK permitted and the timestamps (value, echo reply) NOP-padded to
/// words; the window scale. Returns the area and its length.
fn syn_options(
    mss: u16,
    sack: bool,
    ts: Option<(u32, u32)>,
    wscale: Option<u8>,
) -> ([u8; 20], usize) {
    let mut o = [0u8; 20];
    let [a, b] = mss.to_be_bytes();
    o[..4].copy_from_slice(&[2, 4, a, b]);
    let mut n = 4;
    if let Some((val, ecr)) = ts {
        o[n..n + 2].copy_from_slice(if sack { &[4, 2] } else { &[1, 1] });
        o[n + 2..n + 4].copy_from_slice(&[8, 10]);
        o[n + 4..n + 8].copy_from_slice(&val.to_be_bytes());
        o[n + 8..n + 12].copy_from_slice(&ecr.to_be_bytes());
        n += 12;
    } else if sack {
        o[n..n + 4].copy_from_slice(&[1, 1, 4, 2]);
        n += 4;
    }
    if let Some(w) = wscale {
        o[n..n + 4].copy_from_slice(&[1, 3, 3, w]);
        n += 4;
    }
    (o, n)
}

/// A window field `win` scaled by `from` as seen by a peer that scales by
/// `to`.
fn rescale(win: u16, (from, to): (u8, u8)) -> u16 {
    ((u32::from(win) << from) >> to).min(0xffff) as u16
}

/// What the hook decided.
type Handled = Option<(Verdict, usize)>;

/// Writes a bare TCP segment `src:sport → dst:dport` with options `opts`
/// (whole words) as the whole frame `buf[..]`, Ethernet addresses left to
/// the caller; returns the frame length.
#[allow(clippy::too_many_arguments)]
fn emit_segment<A: ProxyFamily>(
    buf: &mut [u8],
    (src, sport): (A, u16),
    (dst, dport): (A, u16),
    (seq, ack): (u32, Option<u32>),
    syn: bool,
    window: u16,
    opts: &[u8],
    ttl: u8,
) -> Option<usize> {
    let tcp_len = 20 + opts.len();
    let l4_at = ETH_LEN + A::IP_LEN;
    let end = l4_at + tcp_len;
    let frame_len = end.max(MIN_FRAME);
    let frame = buf.get_mut(..frame_len)?;
    frame[ETH_LEN..].fill(0);
    EthernetFrame::new_unchecked(&mut *frame).set_ethertype(A::ETHERTYPE);
    A::emit_ip(&mut frame[ETH_LEN..l4_at], src, dst, tcp_len, ttl);
    let mut t = TcpPacket::new_unchecked(&mut frame[l4_at..end]);
    t.set_src_port(sport);
    t.set_dst_port(dport);
    t.set_seq_number(seq);
    t.set_ack_number(ack.unwrap_or(0));
    t.set_header_len(tcp_len);
    t.clear_flags();
    t.set_syn(syn);
    t.set_ack(ack.is_some());
    t.set_window_len(window);
    t.options_mut().copy_from_slice(opts);
    A::fill_tcp_checksum(&mut frame[l4_at..end], src, dst);
    Some(frame_len)
}

/// Our segment `buf[..n]` `src → dst` (as [`emit_segment`] wrote it) of
/// proxied connection `s`, with the client's TOA when `s` has one and the
/// buffer room. Returns the frame length.
fn with_toa<A: ProxyFamily>(buf: &mut [u8], n: usize, s: &Proxied<A>) -> usize {
    if !s.toa {
        return n;
    }
    let tl = {
        let t = TcpPacket::new_unchecked(&buf[ETH_LEN + A::IP_LEN..]);
        A::IP_LEN + t.header_len()
    };
    A::insert_toa(buf, A::IP_LEN, tl, (s.in_key.src, s.in_key.sport)).unwrap_or(n)
}

/// Overwrites the bytes at `at` of TCP segment `l4` with `new` (at most 4
/// bytes), adjusting the checksum incrementally over the 16-bit words the
/// change touches.
pub(super) fn patch(l4: &mut [u8], at: usize, new: &[u8]) {
    let (start, end) = (at & !1, (at + new.len() + 1) & !1);
    let Some(old) = l4.get(start..end) else {
        return;
    };
    let mut before = [0u8; 6];
    let before = &mut before[..end - start];
    before.copy_from_slice(old);
    l4[at..at + new.len()].copy_from_slice(new);
    let c = checksum::adjust(
        TcpPacket::new_unchecked(&*l4).checksum(),
        before,
        &l4[start..end],
    );
    TcpPacket::new_unchecked(&mut *l4).set_checksum(c);
}

/// Sets the 32-bit TCP field at `at` of segment `l4` (seq 4, ack 8) to
/// `value`, adjusting the checksum.
pub(super) fn set_tcp_u32(l4: &mut [u8], at: usize, value: u32) {
    patch(l4, at, &value.to_be_bytes());
}

/// Client → server, established: the ACK and the SACK blocks move by
/// `s.delta` into the server's sequence space, the timestamp echo by
/// `s.ts_delta` into the server's clock, the window into its scale.
fn translate_in<A>(l4: &mut [u8], s: &Proxied<A>) {
    let t = TcpPacket::new_unchecked(&*l4);
    let (ack, win, hl) = (t.ack_number(), t.window_len(), t.header_len().min(l4.len()));
    set_tcp_u32(l4, 8, ack.wrapping_add(s.delta));
    if s.win_in.0 != s.win_in.1 {
        patch(l4, 14, &rescale(win, s.win_in).to_be_bytes());
    }
    let mut i = 20;
    while let Some((at, kind, len)) = next_option(&l4[..hl], i) {
        match kind {
            5 if (len - 2) % 8 == 0 => {
                for edge in (at + 2..at + len - 3).step_by(4) {
                    let v = be32(&l4[edge..]).wrapping_add(s.delta);
                    patch(l4, edge, &v.to_be_bytes());
                }
            }
            8 if len == 10 => {
                if let Some(d) = s.ts_delta {
                    let ecr = be32(&l4[at + 6..]).wrapping_sub(d);
                    patch(l4, at + 6, &ecr.to_be_bytes());
                }
            }
            _ => {}
        }
        i = at + len;
    }
}

/// Server → client, established: the sequence number moves by `s.delta`
/// into the cookie's space, the timestamp value by `s.ts_delta` into our
/// SYN-ACK's clock, the window into the scale the client knows.
fn translate_out<A>(l4: &mut [u8], s: &Proxied<A>) {
    let t = TcpPacket::new_unchecked(&*l4);
    let (seq, win, hl) = (t.seq_number(), t.window_len(), t.header_len().min(l4.len()));
    set_tcp_u32(l4, 4, seq.wrapping_sub(s.delta));
    if s.win_out.0 != s.win_out.1 {
        patch(l4, 14, &rescale(win, s.win_out).to_be_bytes());
    }
    let Some(d) = s.ts_delta else {
        return;
    };
    let mut i = 20;
    while let Some((at, kind, len)) = next_option(&l4[..hl], i) {
        if kind == 8 && len == 10 {
            let val = be32(&l4[at + 2..]).wrapping_add(d);
            patch(l4, at + 2, &val.to_be_bytes());
        }
        i = at + len;
    }
}

impl Engine {
    /// The SYN-proxy hooks of a packet (see [`Engine::synproxy_in`] and
    /// [`Engine::synproxy_out`]). `None`: forward it as usual. Called from
    /// [`Engine::hooks`], which is out of line.
    pub(super) fn synproxy<A: ProxyFamily>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Handled {
        match p.dir {
            Dir::In => {
                let client_mac = EthernetFrame::new_unchecked(buf.get(..len)?).src_addr();
                self.synproxy_in(buf, len, p, client_mac, now_ms, ctl)
            }
            // The real server's SYN-ACK, seq shift.
            Dir::Out => self.synproxy_out(buf, len, p, now_ms, ctl),
        }
    }

    /// The entry of a proxied connection for key `k`, if `k` indexes a
    /// live connection this entry was made for.
    fn proxied<A: ProxyFamily>(
        &mut self,
        k: &Key<A>,
        hash: u32,
        now_ms: u64,
    ) -> Option<(ConnIdx, Dir, Proxied<A>)> {
        let Split { side, table, .. } = A::split(self);
        let s = *table.get(k)?;
        let (idx, dir) = side.conns.lookup_hashed(k, hash, now_ms)?;
        let c = side.conns.get(idx)?;
        (c.in_key == s.in_key && c.out_key == s.out_key).then_some((idx, dir, s))
    }

    /// Records a proxied connection; false when the side table is full
    /// even after purging entries of expired connections.
    fn remember<A: ProxyFamily>(&mut self, s: Proxied<A>) -> bool {
        let Split { side, table, .. } = A::split(self);
        if table.len() + 2 > 2 * MAX_PROXIED {
            let conns = &side.conns;
            table.retain(|_, p| conns.contains(&p.in_key));
            if table.len() + 2 > 2 * MAX_PROXIED {
                return false;
            }
        }
        table.insert(s.in_key, s);
        table.insert(s.out_key, s);
        true
    }

    /// Client → VIP hook: answers SYNs of proxied services with a cookie,
    /// turns a valid cookie ACK into the SYN to the real server, drops
    /// data while that handshake is pending and shifts the ACK numbers of
    /// established proxied connections. `None`: continue as usual.
    fn synproxy_in<A: ProxyFamily>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        client_mac: MacAddr,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Handled {
        if p.key.proto != 6 {
            return None;
        }
        let f = p.flags;
        let l4_at = ETH_LEN + p.hl;
        if let Some((idx, dir, s)) = self.proxied(&p.key, p.hash, now_ms) {
            let side = A::split(self).side;
            let tcp = side.conns.get(idx)?.tcp;
            let reuse = tcp.is_closing() && f.syn() && !f.ack();
            if dir != Dir::In {
                return None;
            }
            if !reuse {
                if s.pending {
                    // The client's data is held (or dropped: no room); as
                    // it may be resending because our SYN was lost, the
                    // SYN goes out again.
                    self.hold(buf, len, p);
                    let side = A::split(self).side;
                    let dest = side.conns.get(idx)?.dest;
                    let Ok(mac) = side.dest_mac(dest, now_ms, ctl) else {
                        return Some((Verdict::Drop(Drop::NeighbourUnresolved), len));
                    };
                    let to_rs = s.out_key.reversed();
                    let ttl = p.ttl.saturating_sub(1);
                    return self.emit_syn(buf, &to_rs, &s, mac, ttl);
                }
                if f.ack() {
                    translate_in(buf.get_mut(l4_at..ETH_LEN + p.tl)?, &s);
                }
                return None;
            }
            // The client reuses its port: a new proxied handshake.
            side.conns.remove(idx);
        } else if A::split(self).side.conns.contains(&p.key) {
            return None;
        }
        let snap = &self.snap;
        let svc_idx = *A::lookup(snap).get(&(p.key.dst, p.key.dport, 6))?;
        if !A::synproxy_of(snap, svc_idx) {
            return None;
        }
        let servers = &A::services(snap).get(svc_idx)?.servers;
        if servers.iter().any(|rs| rs.addr.is_mapped()) {
            // NAT64: not proxied (our SYN would have to be translated).
            return None;
        }
        if let Some(acl) = A::acl_of(snap, svc_idx) {
            if let Err(d) = A::admit(acl, p.key.src) {
                return Some((Verdict::Drop(d), len));
            }
        }
        let (seq, ack, window, offer) = {
            let t = TcpPacket::new_unchecked(buf.get(l4_at..ETH_LEN + p.tl)?);
            (
                t.seq_number(),
                t.ack_number(),
                t.window_len(),
                offered(t.options()),
            )
        };
        let k = p.key;
        if f.syn_only() {
            // Step 1: SYN-ACK with the cookie; no state.
            let opts = SynOptions::of(&offer);
            let cookie = make_cookie(&snap.syn_cookie_key, &k, seq, opts, now_ms);
            let ts = offer.ts.map(|(val, _)| (now_ms as u32, val));
            let wscale = opts.wscale.map(|_| OUR_WSCALE);
            // The MSS we offer leaves room for the TOA, as the real
            // server's SYN-ACK's does when it reaches the client unproxied
            // (DPVS offers 1452 here by default, 1460 − 8); the cookie keeps
            // the client's for the real server.
            let mss = match A::toa_of(snap, svc_idx) {
                true => opts.mss - A::TOA_LEN as u16,
                false => opts.mss,
            };
            let (o, n) = syn_options(mss, opts.sack, ts, wscale);
            let n = emit_segment(
                buf,
                (k.dst, k.dport),
                (k.src, k.sport),
                (cookie, Some(seq.wrapping_add(1))),
                true,
                SYNACK_WINDOW,
                &o[..n],
                SYNACK_TTL,
            )?;
            let mut eth = EthernetFrame::new_unchecked(&mut buf[..n]);
            eth.set_src_addr(self.mac);
            eth.set_dst_addr(client_mac);
            return Some((Verdict::Forward, n));
        }
        if !(f.ack() && !f.syn() && !f.rst()) {
            return None;
        }
        // Step 2: the client's ACK must carry a valid cookie.
        let (client_isn, cookie) = (seq.wrapping_sub(1), ack.wrapping_sub(1));
        let Some(opts) = check_cookie(&snap.syn_cookie_key, &k, client_isn, cookie, now_ms) else {
            return Some((Verdict::Drop(Drop::SynProxyBadCookie), len));
        };
        let with_data =
            ETH_LEN + p.tl > l4_at + TcpPacket::new_unchecked(&buf[l4_at..]).header_len();
        let mut syn = *p;
        syn.flags = TcpFlags::new(true, false, false, false);
        let Split {
            side, snap, peer, ..
        } = A::split(self);
        let (action, mac) = match side.open(snap, peer, &syn, client_mac, &[], len, now_ms, ctl) {
            Ok(x) => x,
            Err(d) => return Some((Verdict::Drop(d), len)),
        };
        // NatToa: the SYN (ours, in the client's place) carries the TOA.
        let (to_rs, toa) = match action {
            Action::Nat(k) => (k, false),
            Action::NatToa(k) => (k, true),
            // Only FNAT and NAT services may proxy (the control side checks).
            _ => return Some((Verdict::Drop(Drop::NoConnection), len)),
        };
        let (idx, _) = side.conns.lookup_hashed(&k, p.hash, now_ms)?;
        // As DPVS: SYN_SENT (3 s) until the real server answers.
        side.conns.set_tcp_state(idx, TcpState::SynSent, now_ms)?;
        let out_key = side.conns.get(idx)?.out_key;
        let s = Proxied {
            in_key: k,
            out_key,
            client_isn,
            cookie,
            window,
            opts,
            ts: offer.ts.filter(|_| opts.timestamps),
            delta: 0,
            ts_delta: None,
            win_in: (0, 0),
            win_out: (0, 0),
            pending: true,
            toa,
        };
        if !self.remember(s) {
            // Without its delta the connection could not be translated.
            A::split(self).side.conns.remove(idx);
            return Some((Verdict::Drop(Drop::ConnTableFull), len));
        }
        if with_data {
            // Data on the cookie ACK: held until the server side is up.
            self.hold(buf, len, p);
        }
        // Step 3: our SYN to the real server, with the client's ISN.
        self.emit_syn(buf, &to_rs, &s, mac, p.ttl.saturating_sub(1))
    }

    /// Holds client frame `buf[..len]` (packet `p`) of a pending
    /// connection; counts a drop when it cannot.
    fn hold<A: ProxyFamily>(&mut self, buf: &[u8], len: usize, p: &Parsed<A>) {
        let owner = owner_of(&p.key);
        let frame = &buf[..len.min(buf.len())];
        if self.snap.vlan_ids.is_empty() {
            if self.sp.held.hold(owner, frame) {
                return;
            }
            // Full: forget the frames of connections that are gone or up.
            let (v4, v6) = (&self.sp.v4, &self.sp.v6);
            self.sp.held.purge(|o| match o {
                (IpAddr::V4(src), sport, IpAddr::V4(dst), dport) => {
                    is_pending(v4, (src, sport), (dst, dport))
                }
                (IpAddr::V6(src), sport, IpAddr::V6(dst), dport) => {
                    is_pending(v6, (src, sport), (dst, dport))
                }
                _ => false,
            });
            if self.sp.held.hold(owner, frame) {
                return;
            }
        }
        self.drops.count(Drop::SynProxyPending);
    }

    /// Sends the frames held for the connection of client key `k` through
    /// the engine again, now that its server side is up; what they become
    /// goes out with `ctl`.
    fn release<A: ProxyFamily>(&mut self, k: &Key<A>, now_ms: u64, ctl: &mut Burst) {
        let owner = owner_of(k);
        let mut frame = [0u8; FRAME_CAP];
        while let Some(len) = self.sp.held.take(owner, &mut frame) {
            let stage = self.classify(&frame[..len]);
            let (verdict, len) = self.finish_untagged(&stage, &mut frame, len, now_ms, ctl);
            if verdict == Verdict::Forward && !ctl.push(&frame[..len]) {
                self.drops.count(Drop::TxFull);
            }
        }
    }

    /// Our SYN to the real server (`to_rs`: LIP or client → RS), with the
    /// client's TOA when the connection has one: DPVS builds this SYN from
    /// the client's ACK and sends it through its FNAT handler, which adds
    /// a TOA to every SYN.
    fn emit_syn<A: ProxyFamily>(
        &self,
        buf: &mut [u8],
        to_rs: &Key<A>,
        s: &Proxied<A>,
        mac: MacAddr,
        ttl: u8,
    ) -> Handled {
        let o = &s.opts;
        let ts = s.ts.map(|(val, _)| (val, 0));
        let (opts, n) = syn_options(o.mss, o.sack, ts, o.wscale);
        // A SYN's window is not scaled.
        let window = rescale(s.window, (o.wscale.unwrap_or(0), 0));
        let n = emit_segment(
            buf,
            (to_rs.src, to_rs.sport),
            (to_rs.dst, to_rs.dport),
            (s.client_isn, None),
            true,
            window,
            &opts[..n],
            ttl,
        )?;
        let n = with_toa(buf, n, s);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..n]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(mac);
        Some((Verdict::Forward, n))
    }

    /// Our ACK of the real server's SYN-ACK `p` (ISN `rs_isn`, timestamp
    /// `rs_ts`), in place. It stands for the client's ACK, which DPVS
    /// replays here through its FNAT handler; as that one acknowledges the
    /// SYN-ACK exactly, it carries the client's TOA when the connection
    /// has one.
    fn ack_server<A: ProxyFamily>(
        &self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        s: &Proxied<A>,
        (rs_isn, rs_ts): (u32, u32),
    ) -> Handled {
        let rs_mac = EthernetFrame::new_unchecked(buf.get(..len)?).src_addr();
        let mut opts = [1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
        let opts = match (s.ts, s.ts_delta) {
            (Some((val, _)), Some(_)) => {
                opts[4..8].copy_from_slice(&val.to_be_bytes());
                opts[8..].copy_from_slice(&rs_ts.to_be_bytes());
                &opts[..]
            }
            _ => &[],
        };
        let n = emit_segment(
            buf,
            (p.key.dst, p.key.dport),
            (p.key.src, p.key.sport),
            (s.client_isn.wrapping_add(1), Some(rs_isn.wrapping_add(1))),
            false,
            rescale(s.window, s.win_in),
            opts,
            SYNACK_TTL,
        )?;
        let n = with_toa(buf, n, s);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..n]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(rs_mac);
        Some((Verdict::Forward, n))
    }

    /// Real server → LIP/client hook: the real server's SYN-ACK completes
    /// the proxied handshake (we ACK it; the client hears nothing), later
    /// segments get their sequence numbers shifted into the cookie's
    /// space. `None`: continue as usual.
    fn synproxy_out<A: ProxyFamily>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Handled {
        if p.key.proto != 6 {
            return None;
        }
        let (idx, dir, s) = self.proxied(&p.key, p.hash, now_ms)?;
        if dir != Dir::Out {
            return None;
        }
        let f = p.flags;
        let l4_at = ETH_LEN + p.hl;
        let l4 = buf.get_mut(l4_at..ETH_LEN + p.tl)?;
        let (seq, ack, rs_offer) = {
            let t = TcpPacket::new_unchecked(&*l4);
            (t.seq_number(), t.ack_number(), offered(t.options()))
        };
        let rs_ts = rs_offer.ts.map_or(0, |(val, _)| val);
        if !s.pending {
            if f.syn() && f.ack() && seq.wrapping_sub(s.delta) == s.cookie {
                // A resent SYN-ACK (our ACK was lost): ACK it again.
                return self.ack_server(buf, len, p, &s, (seq, rs_ts));
            }
            translate_out(l4, &s);
            return None;
        }
        if f.rst() {
            // Refused: the client hears a RST in its own sequence space.
            set_tcp_u32(l4, 4, s.cookie.wrapping_add(1));
            A::split(self)
                .side
                .conns
                .set_tcp_state(idx, TcpState::Close, now_ms)?;
            return None;
        }
        if !(f.syn() && f.ack()) || ack != s.client_isn.wrapping_add(1) {
            return Some((Verdict::Drop(Drop::SynProxyPending), len));
        }
        // Step 4: the server side is up; ACK it and start translating.
        // Window scaling holds on the server's side when both offered it;
        // on the client's when it offered a scale (we answered ours).
        let client_ws = s.opts.wscale.unwrap_or(0);
        let (client_view, server_view) = match (s.opts.wscale, rs_offer.wscale) {
            (Some(_), Some(w)) => (OUR_WSCALE, (w.min(WSCALE_MAX), client_ws)),
            (Some(_), None) => (OUR_WSCALE, (0, 0)),
            _ => (0, (0, 0)),
        };
        let done = Proxied {
            delta: seq.wrapping_sub(s.cookie),
            ts_delta: match (s.ts, rs_offer.ts) {
                (Some((_, ours)), Some((theirs, _))) => Some(ours.wrapping_sub(theirs)),
                _ => None,
            },
            win_in: (client_ws, server_view.1),
            win_out: (server_view.0, client_view),
            pending: false,
            ..s
        };
        let Split { side, table, .. } = A::split(self);
        table.insert(s.in_key, done);
        table.insert(s.out_key, done);
        // SYN_RECV, where an unproxied connection is after the server's
        // SYN-ACK: the client's next segment establishes it. The client
        // segments acknowledging exactly this SYN-ACK (their ACK moved into
        // the server's space by `translate_in` first) carry the TOA, as
        // DPVS's (it records the cookie ACK's number, the same segments in
        // the client's space).
        side.conns.set_tcp_state(idx, TcpState::SynRecv, now_ms)?;
        side.conns.record_synack(idx, seq)?;
        let acked = self.ack_server(buf, len, p, &done, (seq, rs_ts));
        self.release(&s.in_key, now_ms, ctl);
        acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u64; 2] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];

    fn flow() -> FlowKey {
        FlowKey {
            proto: 6,
            src: Ipv4Addr::new(10, 0, 0, 2),
            dst: Ipv4Addr::new(10, 0, 0, 100),
            sport: 40_000,
            dport: 80,
        }
    }

    #[test]
    fn cookies_round_trip_their_mss_within_their_age() {
        for (mss, want) in [
            (1460, 1460),
            (1500, 1460),
            (1400, 1300),
            (536, 536),
            (100, 536),
        ] {
            let opts = SynOptions::of(&Offered {
                mss: Some(mss),
                ..Offered::default()
            });
            let c = make_cookie(&KEY, &flow(), 777, opts, 1_000);
            let mss_of = |now| check_cookie(&KEY, &flow(), 777, c, now).map(|o| o.mss);
            assert_eq!(mss_of(1_000), Some(want));
            // Still valid two counts later, not three.
            assert_eq!(mss_of(1_000 + 2 * COUNT_MS), Some(want));
            assert_eq!(mss_of(1_000 + 3 * COUNT_MS), None);
        }
    }

    #[test]
    fn cookies_bind_tuple_isn_and_key() {
        let opts = SynOptions {
            mss: 1460,
            wscale: None,
            sack: false,
            timestamps: false,
        };
        let c = make_cookie(&KEY, &flow(), 777, opts, 5);
        let mut other = flow();
        other.sport += 1;
        assert_eq!(check_cookie(&KEY, &other, 777, c, 5), None);
        // (Like DPVS's, the check cannot tell ISNs a few apart: the data's
        // zero bits absorb them. Farther ones fail.)
        assert_eq!(check_cookie(&KEY, &flow(), 777 + 0x0012_3400, c, 5), None);
        assert_eq!(check_cookie(&[1, 2], &flow(), 777, c, 5), None);
        // Random guesses almost never pass: about 2^16 valid data values
        // in 2^24, and only 4 MSS indexes of 16.
        let forged = (0..10_000u32)
            .filter(|i| {
                check_cookie(&KEY, &flow(), 777, i.wrapping_mul(2_654_435_761), 5).is_some()
            })
            .count();
        assert!(forged <= 2, "{forged} forged cookies accepted");
    }

    #[test]
    fn options_are_found_among_others_and_malformed_ones_end_the_list() {
        let mss = |o: &[u8]| offered(o).mss;
        assert_eq!(mss(&[1, 1, 2, 4, 5, 0xb4]), Some(1460));
        assert_eq!(mss(&[3, 3, 7, 2, 4, 2, 0x18]), Some(536));
        assert_eq!(mss(&[0, 2, 4, 5, 0xb4]), None);
        assert_eq!(mss(&[2]), None);
        assert_eq!(mss(&[8, 0]), None);
        assert_eq!(mss(&[2, 4, 5]), None, "partial");
        let all = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 3, 3, 8,
        ];
        assert_eq!(
            offered(&all),
            Offered {
                mss: Some(1460),
                wscale: Some(8),
                sack: true,
                ts: Some((9, 0)),
            }
        );
    }

    #[test]
    fn cookies_carry_window_scale_sack_and_timestamps() {
        for (wscale, sack, timestamps) in [
            (None, false, false),
            (Some(1), true, false),
            (Some(7), false, true),
            (Some(14), true, true),
        ] {
            let opts = SynOptions {
                mss: 1440,
                wscale,
                sack,
                timestamps,
            };
            let c = make_cookie(&KEY, &flow(), 9, opts, 70_000);
            assert_eq!(check_cookie(&KEY, &flow(), 9, c, 70_000), Some(opts));
        }
        // A scale above 14 is carried as 14; a scale of 0 as none.
        let of = |w| {
            SynOptions::of(&Offered {
                wscale: Some(w),
                ..Offered::default()
            })
        };
        assert_eq!(of(15).wscale, Some(14));
        assert_eq!(of(0).wscale, None);
        assert_eq!(SynOptions::decode(0x0f << 16), None, "scale 15");
        assert_eq!(SynOptions::decode(1), None, "low bits set");
    }

    #[test]
    fn our_syn_options_are_laid_out_as_dpvs() {
        let (o, n) = syn_options(1460, true, Some((1, 2)), Some(7));
        assert_eq!(
            &o[..n],
            [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7]
        );
        let (o, n) = syn_options(536, true, None, None);
        assert_eq!(&o[..n], [2, 4, 2, 0x18, 1, 1, 4, 2]);
        let (o, n) = syn_options(536, false, Some((5, 6)), None);
        assert_eq!(
            &o[..n],
            [2, 4, 2, 0x18, 1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]
        );
    }

    #[test]
    fn patching_at_odd_offsets_keeps_the_checksum_right() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut seg = [0u8; 33];
        seg[12] = 0x50;
        seg[20..].copy_from_slice(b"hello, world!");
        TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(src, dst);
        for at in [4, 9, 15, 27] {
            patch(&mut seg, at, &[0xde, 0xad, 0xbe]);
            assert!(
                TcpPacket::new_unchecked(&seg[..]).verify_checksum(src, dst),
                "at {at}"
            );
        }
    }

    #[test]
    fn windows_rescale_and_saturate() {
        assert_eq!(rescale(1000, (0, 0)), 1000);
        assert_eq!(rescale(1000, (2, 7)), 31);
        assert_eq!(rescale(1000, (7, 0)), 0xffff);
        assert_eq!(rescale(64, (8, 7)), 128);
    }
}
