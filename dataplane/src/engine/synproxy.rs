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
//! (count << 24) + ((h(tuple, count) + mss_index) & 0xffffff)` with a
//! keyed SipHash, `count` a 64-second clock; a cookie is valid for two
//! counts. The MSS is encoded as an index into Linux's table (536, 1300,
//! 1440, 1460): the largest entry not above the client's MSS.
//!
//! **Options** (scope): like Linux's cookies for a client that sends no
//! timestamps, only the MSS is carried. Window scaling, SACK and
//! timestamps are neither offered to the client nor to the real server, so
//! both sides agree (a window of at most 64 KiB; no SACK blocks or
//! timestamps to translate). DPVS can carry them in the timestamp; that is
//! not done here.
//!
//! **Pending data**: packets the client sends after its ACK and before the
//! real server's SYN-ACK arrives are dropped and counted
//! (`synproxy_pending`); the client retransmits them. DPVS holds a few
//! instead. Each such packet makes us resend our SYN (it may have been
//! lost), and a resent SYN-ACK of the real server is ACKed again.
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

use super::*;
use crate::conn::{ConnIdx, FlowKey6};
use crate::wire::ipv6::HEADER_LEN as IPV6_HEADER_LEN;
use crate::wire::{Ipv6Packet, Ipv6Repr};

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
    /// The MSS the cookie carried (for a resent SYN).
    mss: u16,
    /// Real server ISN − cookie; valid once `pending` is false.
    delta: u32,
    /// The real server has not answered our SYN yet.
    pending: bool,
}

/// A worker's SYN-proxy state.
#[derive(Debug, Default)]
pub(super) struct SynProxy {
    /// Some service of the snapshot proxies SYNs.
    pub(super) on: bool,
    v4: FastMap<FlowKey, Proxied<Ipv4Addr>>,
    v6: FastMap<FlowKey6, Proxied<Ipv6Addr>>,
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
}

/// The parts of an [`Engine`] one family's hooks use at once.
pub(super) struct Split<'a, A: Family> {
    side: &'a mut Side<A>,
    table: &'a mut FastMap<Key<A>, Proxied<A>>,
    snap: &'a Snapshot,
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
    fn split(e: &mut Engine) -> Split<'_, Ipv4Addr> {
        Split {
            side: &mut e.v4,
            table: &mut e.sp.v4,
            snap: &e.snap,
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
    fn split(e: &mut Engine) -> Split<'_, Ipv6Addr> {
        Split {
            side: &mut e.v6,
            table: &mut e.sp.v6,
            snap: &e.snap,
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

/// The cookie (our ISN) for a client SYN `k` with ISN `client_isn`.
pub fn make_cookie<A: Family>(
    key: &[u64; 2],
    k: &Key<A>,
    client_isn: u32,
    mss: u16,
    now_ms: u64,
) -> u32 {
    let count = count_of(now_ms);
    cookie_hash(key, k, 0, 0)
        .wrapping_add(client_isn)
        .wrapping_add(count << 24)
        .wrapping_add(cookie_hash(key, k, count, 1).wrapping_add(mss_index(mss)) & 0x00ff_ffff)
}

/// The MSS a valid cookie encodes; `None` for a forged or expired one.
pub fn check_cookie<A: Family>(
    key: &[u64; 2],
    k: &Key<A>,
    client_isn: u32,
    cookie: u32,
    now_ms: u64,
) -> Option<u16> {
    let count = count_of(now_ms);
    let c = cookie
        .wrapping_sub(cookie_hash(key, k, 0, 0))
        .wrapping_sub(client_isn);
    let age = count.wrapping_sub(c >> 24) & 0xff;
    if age > MAX_AGE {
        return None;
    }
    let sent = count.wrapping_sub(age);
    let idx = c.wrapping_sub(cookie_hash(key, k, sent, 1)) & 0x00ff_ffff;
    MSS_TABLE.get(idx as usize).copied()
}

/// The MSS option of a TCP header's options, if any.
fn mss_option(opts: &[u8]) -> Option<u16> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                if kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([*opts.get(i + 2)?, *opts.get(i + 3)?]));
                }
                i += len;
            }
        }
    }
    None
}

/// What the hook decided.
type Handled = Option<(Verdict, usize)>;

/// Writes a bare TCP segment `src:sport → dst:dport` (one MSS option when
/// `mss` is set) as the whole frame `buf[..]`, Ethernet addresses left to
/// the caller; returns the frame length.
#[allow(clippy::too_many_arguments)]
fn emit_segment<A: ProxyFamily>(
    buf: &mut [u8],
    (src, sport): (A, u16),
    (dst, dport): (A, u16),
    (seq, ack): (u32, Option<u32>),
    syn: bool,
    window: u16,
    mss: Option<u16>,
    ttl: u8,
) -> Option<usize> {
    let tcp_len = if mss.is_some() { 24 } else { 20 };
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
    if let Some(m) = mss {
        let [a, b] = m.to_be_bytes();
        t.options_mut().copy_from_slice(&[2, 4, a, b]);
    }
    A::fill_tcp_checksum(&mut frame[l4_at..end], src, dst);
    Some(frame_len)
}

/// Sets the 32-bit TCP field at `at` of segment `l4` (seq 4, ack 8) to
/// `value`, adjusting the checksum.
fn set_tcp_u32(l4: &mut [u8], at: usize, value: u32) {
    let Some(old) = l4.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return;
    };
    let new = value.to_be_bytes();
    let mut t = TcpPacket::new_unchecked(&mut *l4);
    let c = checksum::adjust(t.checksum(), &old, &new);
    t.set_checksum(c);
    l4[at..at + 4].copy_from_slice(&new);
}

impl Engine {
    /// The SYN-proxy hooks of a packet (see [`Engine::synproxy_in`] and
    /// [`Engine::synproxy_out`]). `None`: forward it as usual. Kept out of
    /// line: [`Engine::finish`] stays small for services that do not proxy.
    #[inline(never)]
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
            Dir::Out => self.synproxy_out(buf, len, p, now_ms),
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
            let reuse = matches!(tcp, TcpState::FinWait | TcpState::Close) && f.syn && !f.ack;
            if dir != Dir::In {
                return None;
            }
            if !reuse {
                if s.pending {
                    // The client's data is dropped; as it may be resending
                    // because our SYN was lost, the SYN goes out again.
                    self.drops.count(Drop::SynProxyPending);
                    let side = A::split(self).side;
                    let dest = side.conns.get(idx)?.dest;
                    let Ok(mac) = side.dest_mac(dest, now_ms, ctl) else {
                        return Some((Verdict::Drop(Drop::NeighbourUnresolved), len));
                    };
                    let to_rs = s.out_key.reversed();
                    let ttl = p.ttl.saturating_sub(1);
                    return self.emit_syn(buf, &to_rs, &s, mac, ttl);
                }
                if f.ack {
                    let l4 = buf.get_mut(l4_at..ETH_LEN + p.tl)?;
                    let ack = TcpPacket::new_unchecked(&*l4).ack_number();
                    set_tcp_u32(l4, 8, ack.wrapping_add(s.delta));
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
        let (seq, ack, window, mss) = {
            let t = TcpPacket::new_unchecked(buf.get(l4_at..ETH_LEN + p.tl)?);
            (
                t.seq_number(),
                t.ack_number(),
                t.window_len(),
                mss_option(t.options()),
            )
        };
        let k = p.key;
        if f.syn && !f.ack && !f.rst {
            // Step 1: SYN-ACK with the cookie; no state.
            let mss = MSS_TABLE[mss_index(mss.unwrap_or(536)) as usize];
            let cookie = make_cookie(&snap.syn_cookie_key, &k, seq, mss, now_ms);
            let n = emit_segment(
                buf,
                (k.dst, k.dport),
                (k.src, k.sport),
                (cookie, Some(seq.wrapping_add(1))),
                true,
                SYNACK_WINDOW,
                Some(mss),
                SYNACK_TTL,
            )?;
            let mut eth = EthernetFrame::new_unchecked(&mut buf[..n]);
            eth.set_src_addr(self.mac);
            eth.set_dst_addr(client_mac);
            return Some((Verdict::Forward, n));
        }
        if !(f.ack && !f.syn && !f.rst) {
            return None;
        }
        // Step 2: the client's ACK must carry a valid cookie.
        let (client_isn, cookie) = (seq.wrapping_sub(1), ack.wrapping_sub(1));
        let Some(mss) = check_cookie(&snap.syn_cookie_key, &k, client_isn, cookie, now_ms) else {
            return Some((Verdict::Drop(Drop::SynProxyBadCookie), len));
        };
        let mut syn = *p;
        syn.flags = TcpFlags {
            syn: true,
            ..TcpFlags::default()
        };
        let Split { side, snap, .. } = A::split(self);
        let (action, mac) = match side.open(snap, &syn, client_mac, len, now_ms, ctl) {
            Ok(x) => x,
            Err(d) => return Some((Verdict::Drop(d), len)),
        };
        let Action::Nat(to_rs) = action else {
            // Only FNAT and NAT services may proxy (the control side checks).
            return Some((Verdict::Drop(Drop::NoConnection), len));
        };
        let (idx, _) = side.conns.lookup_hashed(&k, p.hash, now_ms)?;
        let out_key = side.conns.get(idx)?.out_key;
        let s = Proxied {
            in_key: k,
            out_key,
            client_isn,
            cookie,
            window,
            mss,
            delta: 0,
            pending: true,
        };
        if !self.remember(s) {
            // Without its delta the connection could not be translated.
            A::split(self).side.conns.remove(idx);
            return Some((Verdict::Drop(Drop::ConnTableFull), len));
        }
        // Step 3: our SYN to the real server, with the client's ISN.
        self.emit_syn(buf, &to_rs, &s, mac, p.ttl.saturating_sub(1))
    }

    /// Our SYN to the real server (`to_rs`: LIP or client → RS).
    fn emit_syn<A: ProxyFamily>(
        &self,
        buf: &mut [u8],
        to_rs: &Key<A>,
        s: &Proxied<A>,
        mac: MacAddr,
        ttl: u8,
    ) -> Handled {
        let n = emit_segment(
            buf,
            (to_rs.src, to_rs.sport),
            (to_rs.dst, to_rs.dport),
            (s.client_isn, None),
            true,
            s.window,
            Some(s.mss),
            ttl,
        )?;
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..n]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(mac);
        Some((Verdict::Forward, n))
    }

    /// Our ACK of the real server's SYN-ACK `p` (ISN `rs_isn`), in place.
    fn ack_server<A: ProxyFamily>(
        &self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        s: &Proxied<A>,
        rs_isn: u32,
    ) -> Handled {
        let rs_mac = EthernetFrame::new_unchecked(buf.get(..len)?).src_addr();
        let n = emit_segment(
            buf,
            (p.key.dst, p.key.dport),
            (p.key.src, p.key.sport),
            (s.client_isn.wrapping_add(1), Some(rs_isn.wrapping_add(1))),
            false,
            s.window,
            None,
            SYNACK_TTL,
        )?;
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
        let (seq, ack) = {
            let t = TcpPacket::new_unchecked(&*l4);
            (t.seq_number(), t.ack_number())
        };
        if !s.pending {
            if f.syn && f.ack && seq.wrapping_sub(s.delta) == s.cookie {
                // A resent SYN-ACK (our ACK was lost): ACK it again.
                return self.ack_server(buf, len, p, &s, seq);
            }
            set_tcp_u32(l4, 4, seq.wrapping_sub(s.delta));
            return None;
        }
        if f.rst {
            // Refused: the client hears a RST in its own sequence space.
            set_tcp_u32(l4, 4, s.cookie.wrapping_add(1));
            return None;
        }
        if !(f.syn && f.ack) || ack != s.client_isn.wrapping_add(1) {
            return Some((Verdict::Drop(Drop::SynProxyPending), len));
        }
        // Step 4: the server side is up; ACK it and start translating.
        let done = Proxied {
            delta: seq.wrapping_sub(s.cookie),
            pending: false,
            ..s
        };
        let Split { side, table, .. } = A::split(self);
        table.insert(s.in_key, done);
        table.insert(s.out_key, done);
        side.conns.touch(idx, Dir::Out, f, now_ms)?;
        self.ack_server(buf, len, p, &done, seq)
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
            let c = make_cookie(&KEY, &flow(), 777, mss, 1_000);
            assert_eq!(check_cookie(&KEY, &flow(), 777, c, 1_000), Some(want));
            // Still valid two counts later, not three.
            assert_eq!(
                check_cookie(&KEY, &flow(), 777, c, 1_000 + 2 * COUNT_MS),
                Some(want)
            );
            assert_eq!(
                check_cookie(&KEY, &flow(), 777, c, 1_000 + 3 * COUNT_MS),
                None
            );
        }
    }

    #[test]
    fn cookies_bind_tuple_isn_and_key() {
        let c = make_cookie(&KEY, &flow(), 777, 1460, 5);
        let mut other = flow();
        other.sport += 1;
        assert_eq!(check_cookie(&KEY, &other, 777, c, 5), None);
        // (Like Linux's, the check cannot tell ISNs a few apart: the MSS
        // index absorbs them. Farther ones fail.)
        assert_eq!(check_cookie(&KEY, &flow(), 777 + 0x0012_3400, c, 5), None);
        assert_eq!(check_cookie(&[1, 2], &flow(), 777, c, 5), None);
        // Random guesses almost never pass: 4 MSS values in 2^24.
        let forged = (0..10_000u32)
            .filter(|i| {
                check_cookie(&KEY, &flow(), 777, i.wrapping_mul(2_654_435_761), 5).is_some()
            })
            .count();
        assert!(forged <= 2, "{forged} forged cookies accepted");
    }

    #[test]
    fn mss_option_is_found_among_others() {
        assert_eq!(mss_option(&[1, 1, 2, 4, 5, 0xb4]), Some(1460));
        assert_eq!(mss_option(&[3, 3, 7, 2, 4, 2, 0x18]), Some(536));
        assert_eq!(mss_option(&[0, 2, 4, 5, 0xb4]), None);
        assert_eq!(mss_option(&[2]), None);
        assert_eq!(mss_option(&[8, 0]), None);
    }
}
