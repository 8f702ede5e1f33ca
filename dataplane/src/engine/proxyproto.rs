//! PROXY protocol (DPVS's `proxy_protocol v1|v2|v1-insecure|v2-insecure`)
//! on FNAT TCP services: the real server learns the client's address from
//! a header at the start of the connection's data (HAProxy's
//! specification), instead of from the TOA option, which needs a kernel
//! module.
//!
//! ```text
//!  client                      dpvsd                        real server
//!    SYN seq=c ────────────►   first data byte is c+1
//!    data seq=c+1 (k bytes) ►  PROXY header (n bytes) + data ──────────►
//!                              delta = n (the server's bytes run n ahead)
//!    data seq=s ───────────►   seq s + n ──────────────────────────────►
//!               ◄───────────   ack a − n, SACK − n ◄──── ack=a, SACK
//! ```
//!
//! As DPVS does, the header goes into the first segment that carries data
//! (a pure ACK gets none), and a client's own header at the start of its
//! data is replaced by ours, unless the service is `-insecure` and the
//! header is of the configured version: then it is passed on as it is.
//! Unlike DPVS, a retransmission of that first segment gets the header
//! again (the first copy may have been lost; the server's sequence numbers
//! make a duplicate harmless), and a segment that would exceed the MTU
//! with the header is shortened rather than sent as a separate segment:
//! the server acknowledges the part it got and the client resends the
//! rest, as for any partial acknowledgement.
//!
//! **State**: per connection, a side table (keyed by both keys) holds the
//! client's first data sequence number (learnt from its SYN, else from its
//! first packet) and the delta; entries are checked against the connection
//! table. Only snapshots with a `proxy_protocol` service reserve it, so the
//! hooks cost one branch otherwise. NAT64 services and UDP are refused by
//! the control plane (dpvsd's assembler).

use super::synproxy::{be32, next_option, patch, set_tcp_u32, ProxyFamily};
use super::*;
use crate::command::ProxyVersion;
use crate::conn::FlowKey6;

/// Connections with a PROXY header tracked per worker (two entries each).
pub const MAX_TRACKED: usize = 65_536;

/// The v2 signature (12 bytes).
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header's longest form (HAProxy's specification).
const V1_MAX: usize = 107;

/// One connection's PROXY protocol state.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pp<A> {
    in_key: Key<A>,
    /// The connection's reply key once it is known (`None`: recorded at
    /// the client's SYN, before the connection existed).
    out_key: Option<Key<A>>,
    /// The client's first data sequence number.
    first_seq: u32,
    /// Bytes the server's sequence space runs ahead of the client's.
    delta: u32,
    /// The first data segment went out (with its header).
    sent: bool,
    cfg: ProxyProtocol,
}

/// A worker's PROXY protocol state.
#[derive(Debug, Default)]
pub(super) struct ProxyProto {
    /// Some service of the snapshot sends PROXY headers.
    pub(super) on: bool,
    pub(super) v4: FastMap<FlowKey, Pp<Ipv4Addr>>,
    pub(super) v6: FastMap<FlowKey6, Pp<Ipv6Addr>>,
}

impl ProxyProto {
    /// Takes a new snapshot's settings (off the hot path: may allocate).
    pub(super) fn set_snapshot(&mut self, snap: &Snapshot) {
        let v4 = snap.v4.proxy_protocol.iter().any(Option::is_some);
        let v6 = snap.v6.proxy_protocol.iter().any(Option::is_some);
        self.on = v4 || v6;
        if v4 && self.v4.capacity() < 2 * MAX_TRACKED {
            self.v4.reserve(2 * MAX_TRACKED);
        }
        if v6 && self.v6.capacity() < 2 * MAX_TRACKED {
            self.v6.reserve(2 * MAX_TRACKED);
        }
    }
}

/// What the packet hooks decided.
pub(super) enum Hooked<A> {
    /// Handled (answered, dropped or sent): the verdict and frame length.
    Done((Verdict, usize)),
    /// Forward packet `p` as usual; its frame is now `len` bytes.
    Forward(Parsed<A>, usize),
}

/// The header we send for a connection `client → vip`, into `out`;
/// returns its length.
pub(super) fn header<A: Family>(
    version: ProxyVersion,
    (client, cport): (A, u16),
    (vip, vport): (A, u16),
    out: &mut [u8; V1_MAX],
) -> usize {
    let (client, vip): (IpAddr, IpAddr) = (client.into(), vip.into());
    match version {
        ProxyVersion::V1 => {
            use std::io::Write;
            let fam = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            let mut w = &mut out[..];
            let room = w.len();
            // At most 107 bytes for any address pair (the specification's
            // bound), so the write cannot fail.
            let _ = write!(w, "PROXY {fam} {client} {vip} {cport} {vport}\r\n");
            room - w.len()
        }
        ProxyVersion::V2 => {
            out[..12].copy_from_slice(&V2_SIG);
            // Version 2, command PROXY; TCP over IPv4 (0x11) or IPv6 (0x21).
            out[12] = 0x21;
            let n = match (client, vip) {
                (IpAddr::V4(c), IpAddr::V4(v)) => {
                    out[13] = 0x11;
                    out[16..20].copy_from_slice(&c.octets());
                    out[20..24].copy_from_slice(&v.octets());
                    8
                }
                (c, v) => {
                    out[13] = 0x21;
                    out[16..32].copy_from_slice(&to_v6(c).octets());
                    out[32..48].copy_from_slice(&to_v6(v).octets());
                    32
                }
            };
            out[16 + n..18 + n].copy_from_slice(&cport.to_be_bytes());
            out[18 + n..20 + n].copy_from_slice(&vport.to_be_bytes());
            out[14..16].copy_from_slice(&((n + 4) as u16).to_be_bytes());
            16 + n + 4
        }
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The version and length of a PROXY header at the start of `data`, if
/// one is there whole.
pub(super) fn client_header(data: &[u8]) -> Option<(ProxyVersion, usize)> {
    if data.starts_with(&V2_SIG) {
        let len = usize::from(u16::from_be_bytes([*data.get(14)?, *data.get(15)?]));
        return (data.len() >= 16 + len).then_some((ProxyVersion::V2, 16 + len));
    }
    if data.starts_with(b"PROXY ") {
        let end = data.iter().take(V1_MAX).position(|&b| b == b'\n')?;
        return (end > 0 && data[end - 1] == b'\r').then_some((ProxyVersion::V1, end + 1));
    }
    None
}

impl Engine {
    /// Whether packets go through [`Engine::hooks`].
    #[inline(always)]
    pub(super) fn hooks_on(&self) -> bool {
        self.sp.on || self.pp.on
    }

    /// The per-packet hooks of engines whose snapshot has a SYN-proxy or
    /// PROXY protocol service ([`synproxy`], [`proxyproto`]): the SYN proxy
    /// first, then the PROXY header. Kept out of line: other engines never
    /// get here.
    #[inline(never)]
    pub(super) fn hooks<A: ProxyFamily>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Hooked<A> {
        if self.pp.on && p.dir == Dir::In && p.key.proto == 6 && p.flags.syn() && !p.flags.ack() {
            self.pp_syn(buf, p);
        }
        if self.sp.on {
            if let Some(done) = self.synproxy(buf, len, p, now_ms, ctl) {
                return Hooked::Done(done);
            }
        }
        if !self.pp.on || p.key.proto != 6 {
            return Hooked::Forward(*p, len);
        }
        match p.dir {
            Dir::In => self.pp_in(buf, len, p, now_ms),
            Dir::Out => {
                self.pp_out(buf, p, now_ms);
                Hooked::Forward(*p, len)
            }
        }
    }

    /// A client's SYN to a PROXY protocol service: its first data byte
    /// will be ISN + 1.
    fn pp_syn<A: ProxyFamily>(&mut self, buf: &[u8], p: &Parsed<A>) {
        let snap = &self.snap;
        let Some(cfg) = A::lookup(snap)
            .get(&(p.key.dst, p.key.dport, 6))
            .and_then(|&i| A::proxy_protocol_of(snap, i))
        else {
            return;
        };
        let Some(seq) = buf.get(ETH_LEN + p.hl + 4..ETH_LEN + p.hl + 8).map(be32) else {
            return;
        };
        let entry = Pp {
            in_key: p.key,
            out_key: None,
            first_seq: seq.wrapping_add(1),
            delta: 0,
            sent: false,
            cfg,
        };
        // A full table: the entry is made at the first data instead.
        let _ = self.pp_remember(entry);
    }

    /// Records `e` under its keys; false when the table is full even
    /// after purging the entries of connections that are gone.
    fn pp_remember<A: ProxyFamily>(&mut self, e: Pp<A>) -> bool {
        let (side, table) = A::pp_split(self);
        if table.len() + 2 > 2 * MAX_TRACKED && !table.contains_key(&e.in_key) {
            let conns = &side.conns;
            table.retain(|_, t| conns.contains(&t.in_key));
            if table.len() + 2 > 2 * MAX_TRACKED {
                return false;
            }
        }
        table.insert(e.in_key, e);
        if let Some(k) = e.out_key {
            table.insert(k, e);
        }
        true
    }

    /// The PROXY protocol state of client packet `p`'s connection, made
    /// when the connection has none yet: `Err` with a drop when the table
    /// is full, `Ok(None)` for a connection without a header.
    fn pp_entry_in<A: ProxyFamily>(
        &mut self,
        buf: &[u8],
        p: &Parsed<A>,
        now_ms: u64,
    ) -> Result<Option<Pp<A>>, Drop> {
        let (side, table) = A::pp_split(self);
        let Some((idx, Dir::In)) = side.conns.lookup_hashed(&p.key, p.hash, now_ms) else {
            return Ok(None);
        };
        let Some(c) = side.conns.get(idx).copied() else {
            return Ok(None);
        };
        let fnat = side
            .conns
            .dest(c.dest)
            .is_some_and(|d| d.forwarding == Forwarding::Fnat);
        let known = table.get(&p.key).copied();
        if let Some(e) = known.filter(|e| e.in_key == c.in_key) {
            match e.out_key {
                Some(k) if k == c.out_key => return Ok(Some(e)),
                None if fnat => {
                    // Recorded at the SYN: the connection exists now.
                    let e = Pp {
                        out_key: Some(c.out_key),
                        ..e
                    };
                    return self
                        .pp_remember(e)
                        .then_some(Some(e))
                        .ok_or(Drop::ProxyProtocolFull);
                }
                _ => {}
            }
        }
        // No SYN seen (a full table then, or a connection older than the
        // service's setting): the first client packet after it starts the
        // data.
        let snap = &self.snap;
        let cfg = A::lookup(snap)
            .get(&(p.key.dst, p.key.dport, 6))
            .and_then(|&i| A::proxy_protocol_of(snap, i));
        let (Some(cfg), true) = (cfg, fnat) else {
            return Ok(None);
        };
        let Some(seq) = buf.get(ETH_LEN + p.hl + 4..ETH_LEN + p.hl + 8).map(be32) else {
            return Ok(None);
        };
        let e = Pp {
            in_key: c.in_key,
            out_key: Some(c.out_key),
            first_seq: seq,
            delta: 0,
            sent: false,
            cfg,
        };
        self.pp_remember(e)
            .then_some(Some(e))
            .ok_or(Drop::ProxyProtocolFull)
    }

    /// Client → server: the first data segment gets the header; later
    /// segments move by the delta into the server's sequence space.
    fn pp_in<A: ProxyFamily>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        now_ms: u64,
    ) -> Hooked<A> {
        if p.flags.syn() {
            return Hooked::Forward(*p, len);
        }
        let e = match self.pp_entry_in(buf, p, now_ms) {
            Ok(Some(e)) => e,
            Ok(None) => return Hooked::Forward(*p, len),
            Err(d) => return Hooked::Done((Verdict::Drop(d), len)),
        };
        let l4_at = ETH_LEN + p.hl;
        let Some(l4) = buf.get(l4_at..ETH_LEN + p.tl) else {
            return Hooked::Forward(*p, len);
        };
        let t = TcpPacket::new_unchecked(l4);
        let (seq, doff) = (t.seq_number(), t.header_len());
        let data_at = l4_at + doff;
        let has_data = ETH_LEN + p.tl > data_at;
        if has_data && seq == e.first_seq {
            return self.pp_insert(buf, len, p, e);
        }
        if e.sent && e.delta != 0 {
            if let Some(l4) = buf.get_mut(l4_at..ETH_LEN + p.tl) {
                set_tcp_u32(l4, 4, seq.wrapping_add(e.delta));
            }
        }
        Hooked::Forward(*p, len)
    }

    /// Puts our header in front of the first data segment of `e`'s
    /// connection (replacing the client's own, or keeping it when the
    /// service trusts it), shortening the data if the MTU requires.
    fn pp_insert<A: ProxyFamily>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        e: Pp<A>,
    ) -> Hooked<A> {
        let l4_at = ETH_LEN + p.hl;
        let end = ETH_LEN + p.tl;
        let doff = TcpPacket::new_unchecked(&buf[l4_at..end]).header_len();
        let data_at = l4_at + doff;
        let theirs = client_header(&buf[data_at..end]);
        let (delta, new_end, new_len) = match theirs {
            Some((v, _)) if e.cfg.insecure && v == e.cfg.version => (0, end, len),
            _ => {
                let old = theirs.map_or(0, |(_, n)| n);
                let mut ours = [0u8; V1_MAX];
                let n = header(
                    e.cfg.version,
                    (e.in_key.src, e.in_key.sport),
                    (e.in_key.dst, e.in_key.dport),
                    &mut ours,
                );
                let rest = end - data_at - old;
                let room = TUNNEL_MTU
                    .min(buf.len() - ETH_LEN)
                    .saturating_sub(p.hl + doff + n);
                let keep = rest.min(room);
                buf.copy_within(data_at + old..data_at + old + keep, data_at + n);
                buf[data_at..data_at + n].copy_from_slice(&ours[..n]);
                let new_end = data_at + n + keep;
                let tl = new_end - ETH_LEN;
                A::set_ip_len(&mut buf[ETH_LEN..new_end], p.hl, tl);
                A::fill_tcp_checksum(&mut buf[l4_at..new_end], p.key.src, p.key.dst);
                (n.wrapping_sub(old) as u32, new_end, new_end)
            }
        };
        let e = Pp {
            delta,
            sent: true,
            ..e
        };
        if !self.pp_remember(e) {
            return Hooked::Done((Verdict::Drop(Drop::ProxyProtocolFull), len));
        }
        let q = Parsed {
            tl: new_end - ETH_LEN,
            ..*p
        };
        Hooked::Forward(q, new_len)
    }

    /// Server → client: the acknowledgement and SACK blocks move back by
    /// the delta into the client's sequence space.
    fn pp_out<A: ProxyFamily>(&mut self, buf: &mut [u8], p: &Parsed<A>, now_ms: u64) {
        let (side, table) = A::pp_split(self);
        let Some(e) = table.get(&p.key).copied() else {
            return;
        };
        if !e.sent || e.delta == 0 || e.out_key != Some(p.key) {
            return;
        }
        let live = side
            .conns
            .lookup_hashed(&p.key, p.hash, now_ms)
            .and_then(|(idx, _)| side.conns.get(idx))
            .is_some_and(|c| c.in_key == e.in_key);
        let Some(l4) = buf.get_mut(ETH_LEN + p.hl..ETH_LEN + p.tl) else {
            return;
        };
        if !live || l4.len() < TCP_HEADER_LEN {
            return;
        }
        let t = TcpPacket::new_unchecked(&*l4);
        let (ack, has_ack, hl) = (t.ack_number(), t.ack(), t.header_len().min(l4.len()));
        if has_ack {
            set_tcp_u32(l4, 8, ack.wrapping_sub(e.delta));
        }
        let mut i = TCP_HEADER_LEN;
        while let Some((at, kind, len)) = next_option(&l4[..hl], i) {
            if kind == 5 && (len - 2) % 8 == 0 {
                for edge in (at + 2..at + len - 3).step_by(4) {
                    let v = be32(&l4[edge..]).wrapping_sub(e.delta);
                    patch(l4, edge, &v.to_be_bytes());
                }
            }
            i = at + len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_haproxys_forms() {
        let mut out = [0u8; V1_MAX];
        let c = (Ipv4Addr::new(192, 0, 2, 1), 56324);
        let v = (Ipv4Addr::new(10, 0, 0, 1), 443);
        let n = header(ProxyVersion::V1, c, v, &mut out);
        assert_eq!(&out[..n], b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n");
        let n = header(ProxyVersion::V2, c, v, &mut out);
        assert_eq!(n, 28);
        assert_eq!(&out[..16], b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c");
        assert_eq!(
            &out[16..28],
            &[192, 0, 2, 1, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb]
        );
        let c6: Ipv6Addr = "2001:db8::1".parse().expect("addr");
        let v6: Ipv6Addr = "fd00::100".parse().expect("addr");
        let n = header(ProxyVersion::V1, (c6, 1), (v6, 80), &mut out);
        assert_eq!(&out[..n], b"PROXY TCP6 2001:db8::1 fd00::100 1 80\r\n");
        let n = header(ProxyVersion::V2, (c6, 1), (v6, 80), &mut out);
        assert_eq!((n, out[13], out[15]), (52, 0x21, 36));
        // The longest v1 form fits.
        let big: Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            .parse()
            .expect("addr");
        let n = header(ProxyVersion::V1, (big, 65535), (big, 65535), &mut out);
        assert_eq!(n, V1_MAX - 3, "{:?}", std::str::from_utf8(&out[..n]));
    }

    #[test]
    fn a_clients_own_header_is_recognised_only_whole() {
        let mut out = [0u8; V1_MAX];
        let c = (Ipv4Addr::new(192, 0, 2, 1), 1);
        let v = (Ipv4Addr::new(10, 0, 0, 1), 2);
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let n = header(version, c, v, &mut out);
            let mut data = out[..n].to_vec();
            data.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
            assert_eq!(client_header(&data), Some((version, n)));
            assert_eq!(client_header(&data[..n - 1]), None, "{version:?} cut short");
        }
        assert_eq!(client_header(b"GET / HTTP/1.0\r\n"), None);
        assert_eq!(client_header(b"PROXY no end of line"), None);
        assert_eq!(client_header(&[]), None);
    }
}
