//! IPv6: classification, neighbor discovery (answering NS for our
//! addresses, resolving real servers), header rewrite, TOA, ip6ip6 and
//! ICMPv6 error translation. The connection logic is shared with IPv4
//! ([`super::Side`] is generic over the [`super::Family`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::nat64::Icmp6Error;
use super::{
    adjust_l4, adjust_l4_by, toa_room, wire_drop, Dir, Engine, Family, Parsed, Stage, Verdict,
    ETH_LEN, IPV4_HEADER_LEN,
};
use crate::conn::{Deltas, FlowKey6, Key, TcpFlags, NO_HINT};
use crate::io::Burst;
use crate::stats::Drop;
use crate::wire::icmpv6::{
    self, emit_lladdr_option, Quote6, NA_OVERRIDE, NA_SOLICITED, ND_LEN, NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT, OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR,
};
use crate::wire::ipv6::HEADER_LEN as IPV6_HEADER_LEN;
use crate::wire::{
    checksum, EtherType, EthernetFrame, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet,
    Ipv6Repr, Ipv6Upper, MacAddr, TcpPacket, UdpPacket,
};

/// ND messages travel with hop limit 255 (RFC 4861 §7.1).
const ND_HOP_LIMIT: u8 = 255;
/// An NS or NA with one link-layer address option.
const ND_MSG_LEN: usize = ND_LEN + 8;
/// Length of DPVS's IPv6 TOA option (`struct tcpopt_ip6_addr`).
pub const TOA6_LEN: usize = 20;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The IPv6 address at `at` of an unvalidated header, if the bytes are there.
#[inline]
fn peek_ipv6(l3: &[u8], at: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = l3.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

/// Our link-local address (modified EUI-64 of `mac`, RFC 4291 app. A):
/// the source of neighbor solicitations when no address of ours is set.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.as_bytes();
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The solicited-node multicast address of `ip` and its MAC.
fn solicited_node(ip: Ipv6Addr) -> (Ipv6Addr, MacAddr) {
    let o = ip.octets();
    let addr = Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ]);
    (addr, multicast_mac(addr))
}

/// The Ethernet address of IPv6 multicast `ip` (RFC 2464 §7).
fn multicast_mac(ip: Ipv6Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Writes an Ethernet + IPv6 + NS/NA frame with one link-layer address
/// option into `buf`; returns its length, `None` when `buf` is too short.
#[allow(clippy::too_many_arguments)]
fn write_nd(
    buf: &mut [u8],
    (eth_src, eth_dst): (MacAddr, MacAddr),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    msg_type: u8,
    flags: u8,
    target: Ipv6Addr,
    option: u8,
) -> Option<usize> {
    let len = ETH_LEN + IPV6_HEADER_LEN + ND_MSG_LEN;
    let frame = buf.get_mut(..len)?;
    frame.fill(0);
    {
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        eth.set_dst_addr(eth_dst);
        eth.set_src_addr(eth_src);
        eth.set_ethertype(EtherType::Ipv6);
    }
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: ND_MSG_LEN,
        hop_limit: ND_HOP_LIMIT,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut frame[ETH_LEN..]));
    let mut msg = Icmpv6Packet::new_unchecked(&mut frame[ETH_LEN + IPV6_HEADER_LEN..]);
    msg.set_msg_type(msg_type);
    msg.set_code(0);
    msg.set_rest(u32::from(flags) << 24);
    msg.set_nd_target(target);
    emit_lladdr_option(
        &mut msg.payload_mut()[ND_LEN - icmpv6::HEADER_LEN..],
        option,
        eth_src,
    );
    msg.fill_checksum(src, dst);
    Some(len)
}

/// Pushes a neighbor solicitation for `target` from `source` (our
/// link-local address when unspecified) to its solicited-node group.
pub fn push_ns(ctl: &mut Burst, mac: MacAddr, source: Ipv6Addr, target: Ipv6Addr) -> bool {
    let source = if source.is_unspecified() {
        link_local(mac)
    } else {
        source
    };
    let (group, group_mac) = solicited_node(target);
    push_nd(
        ctl,
        (mac, group_mac),
        (source, group),
        NEIGHBOR_SOLICIT,
        0,
        target,
    )
}

/// Pushes an unsolicited neighbor advertisement of `ip` (override set) to
/// all nodes.
pub fn push_unsolicited_na(ctl: &mut Burst, mac: MacAddr, ip: Ipv6Addr) -> bool {
    let eth = (mac, multicast_mac(ALL_NODES));
    push_nd(ctl, eth, (ip, ALL_NODES), NEIGHBOR_ADVERT, NA_OVERRIDE, ip)
}

fn push_nd(
    ctl: &mut Burst,
    eth: (MacAddr, MacAddr),
    ip: (Ipv6Addr, Ipv6Addr),
    msg_type: u8,
    flags: u8,
    target: Ipv6Addr,
) -> bool {
    let Some(f) = ctl.next_free() else {
        return false;
    };
    let option = if msg_type == NEIGHBOR_SOLICIT {
        OPT_SOURCE_LLADDR
    } else {
        OPT_TARGET_LLADDR
    };
    let Some(len) = write_nd(f.buffer_mut(), eth, ip, msg_type, flags, target, option) else {
        return false;
    };
    f.set_len(len);
    ctl.commit();
    true
}

impl Engine {
    /// An IPv4 reply (`p`) to a NAT64 local address: forwarded by its IPv6
    /// connection, whose server side is the mapped IPv4 key.
    pub(super) fn nat64_reply(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<Ipv4Addr>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        let key = Key {
            proto: p.key.proto,
            src: p.key.src.to_ipv6_mapped(),
            dst: p.key.dst.to_ipv6_mapped(),
            sport: p.key.sport,
            dport: p.key.dport,
        };
        let p6 = Parsed {
            key,
            hash: key.hash(),
            hint: NO_HINT,
            dir: p.dir,
            transit: p.transit,
            flags: p.flags,
            ack: p.ack,
            ttl: p.ttl,
            hl: p.hl,
            tl: p.tl,
        };
        self.v6
            .forward(&self.snap, &self.v4.conns, buf, len, &p6, now_ms, ctl)
    }

    /// First look at an IPv6 frame (`multicast`: sent to a multicast MAC,
    /// only neighbor discovery is ours then).
    pub(super) fn classify_ipv6(&self, frame: &[u8], multicast: bool) -> Stage {
        let Some(l3) = frame.get(ETH_LEN..) else {
            return Stage::Done(Verdict::Ignore);
        };
        let (Some(src), Some(dst)) = (peek_ipv6(l3, 8), peek_ipv6(l3, 24)) else {
            return Stage::Done(Verdict::Ignore);
        };
        let ours = if multicast {
            None
        } else {
            self.direction(src, dst)
        };
        // Anything addressed to us that is broken is counted; anything else
        // (neighbor discovery aside) is the kernel's.
        let fail = |d: Drop| match ours {
            Some((_, false)) => Stage::Done(Verdict::Drop(d)),
            _ => Stage::Done(Verdict::Ignore),
        };
        let ip = match Ipv6Packet::new_checked(l3) {
            Ok(ip) => ip,
            Err(e) => return fail(wire_drop(e)),
        };
        // Mapped IPv4 addresses name NAT64 servers inside the engine; on
        // the wire they are bogus.
        if src.is_mapped() || dst.is_mapped() {
            return fail(Drop::Malformed);
        }
        let (protocol, offset) = match ip.upper_layer() {
            Ok(Ipv6Upper::Upper { protocol, offset }) => (protocol, offset),
            Ok(Ipv6Upper::Fragment) => return fail(Drop::Fragment),
            Err(e) => return fail(wire_drop(e)),
        };
        let tl = IPV6_HEADER_LEN + usize::from(ip.payload_len());
        if protocol == IpProtocol::Icmpv6 {
            if matches!(l3.get(offset), Some(&(NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT))) {
                return Stage::Nd;
            }
            return match ours {
                Some((dir, transit)) => Stage::Icmp6 { dir, transit },
                None => Stage::Done(Verdict::Ignore),
            };
        }
        let Some((dir, transit)) = ours else {
            return Stage::Done(Verdict::Ignore);
        };
        let l4 = &l3[offset..tl];
        let parsed = match protocol {
            IpProtocol::Tcp => TcpPacket::new_checked(l4).map(|t| {
                let flags = TcpFlags::new(t.syn(), t.ack(), t.fin(), t.rst());
                (t.src_port(), t.dst_port(), flags, t.ack_number())
            }),
            IpProtocol::Udp => UdpPacket::new_checked(l4)
                .map(|u| (u.src_port(), u.dst_port(), TcpFlags::default(), 0)),
            _ => return fail(Drop::NoService),
        };
        let (sport, dport, flags, ack) = match parsed {
            Ok(x) => x,
            Err(e) => return fail(wire_drop(e)),
        };
        let key = Key {
            proto: protocol.into(),
            src,
            dst,
            sport,
            dport,
        };
        Stage::Ipv6(Parsed {
            key,
            hash: key.hash(),
            hint: NO_HINT,
            dir,
            transit,
            flags,
            ack,
            ttl: ip.hop_limit(),
            hl: offset,
            tl,
        })
    }

    /// A neighbor solicitation or advertisement: learn the sender of
    /// neighbours we asked about; answer solicitations for our addresses
    /// (in place, the frame may grow to hold the target's link-layer
    /// address). Returns the verdict and the frame's new length.
    pub(super) fn handle_nd(&mut self, buf: &mut [u8], len: usize) -> (Verdict, usize) {
        let Some(l3) = buf.get(ETH_LEN..len) else {
            return (Verdict::Ignore, len);
        };
        let Ok(ip) = Ipv6Packet::new_checked(l3) else {
            return (Verdict::Ignore, len);
        };
        let Ok(Ipv6Upper::Upper { offset, .. }) = ip.upper_layer() else {
            return (Verdict::Ignore, len);
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let tl = IPV6_HEADER_LEN + usize::from(ip.payload_len());
        let Some(msg) = l3.get(offset..tl).map(Icmpv6Packet::new_checked) else {
            return (Verdict::Ignore, len);
        };
        // Shorter than the ICMPv6 header: malformed, not an index panic.
        let Ok(msg) = msg else {
            return (Verdict::Drop(Drop::Malformed), len);
        };
        if ip.hop_limit() != ND_HOP_LIMIT || msg.code() != 0 || !msg.verify_checksum(src, dst) {
            return (Verdict::Drop(Drop::Malformed), len);
        }
        let Some(target) = msg.nd_target() else {
            return (Verdict::Drop(Drop::Truncated), len);
        };
        if msg.msg_type() == NEIGHBOR_ADVERT {
            if let Some(mac) = msg.nd_lladdr(OPT_TARGET_LLADDR) {
                let known = self.v6.learn(target, mac, self.rx_vlan);
                self.learn_vlan(known, mac);
                self.learn_port(known, mac);
            }
            return (Verdict::Ignore, len);
        }
        let from_mac = EthernetFrame::new_unchecked(&buf[..len]).src_addr();
        if let Some(mac) = msg.nd_lladdr(OPT_SOURCE_LLADDR) {
            if !src.is_unspecified() {
                let known = self.v6.learn(src, mac, self.rx_vlan);
                self.learn_vlan(known, mac);
                self.learn_port(known, mac);
            }
        }
        if !self.answers_for(target) || !self.on_rx_link(target) {
            return (Verdict::Ignore, len);
        }
        // RFC 4861 §7.2.4: to the soliciting node, or to all nodes when it
        // has no address yet (duplicate address detection: we defend).
        let (dst, eth_dst, flags) = if src.is_unspecified() {
            (ALL_NODES, multicast_mac(ALL_NODES), NA_OVERRIDE)
        } else {
            (src, from_mac, NA_SOLICITED | NA_OVERRIDE)
        };
        let ip = (target, dst);
        match write_nd(
            buf,
            (self.mac, eth_dst),
            ip,
            NEIGHBOR_ADVERT,
            flags,
            target,
            OPT_TARGET_LLADDR,
        ) {
            Some(n) => (Verdict::Forward, n),
            None => (Verdict::Drop(Drop::NoRoom), len),
        }
    }

    /// An ICMPv6 error quoting a packet of a tracked connection, from
    /// either side: forwarded to the other side translated as the
    /// connection's packets are (the IPv6 twin of [`Engine::icmp_error`]).
    pub(super) fn icmp6_error(
        &mut self,
        buf: &mut [u8],
        len: usize,
        dir: Dir,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Verdict, usize), Drop> {
        let l3 = buf.get(ETH_LEN..len).ok_or(Drop::Truncated)?;
        let ip = Ipv6Packet::new_checked(l3).map_err(wire_drop)?;
        let offset = match ip.upper_layer().map_err(wire_drop)? {
            Ipv6Upper::Upper { offset, .. } => offset,
            Ipv6Upper::Fragment => return Err(Drop::Fragment),
        };
        let (src, dst, hop) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        let tl = IPV6_HEADER_LEN + usize::from(ip.payload_len());
        let icmp = Icmpv6Packet::new_checked(&l3[offset..tl]).map_err(wire_drop)?;
        if !icmp.is_error() {
            // snat.rs: echo through a match service.
            let at = (offset, tl);
            return self.snat_echo(buf, len, dir, (src, dst, hop), at, now_ms, ctl);
        }
        if !icmp.verify_checksum(src, dst) {
            return Err(Drop::BadChecksum);
        }
        let q = Quote6::parse(icmp.payload()).map_err(wire_drop)?;
        if q.protocol != 6 && q.protocol != 17 {
            return Err(Drop::IcmpUnhandled);
        }
        let quoted = Key {
            proto: q.protocol,
            src: q.src,
            dst: q.dst,
            sport: q.src_port,
            dport: q.dst_port,
        };
        let found = self.v6.quoted_conn(&quoted, dir, hop, now_ms)?;
        if found.0.out_key.src.is_mapped() {
            // nat64.rs: the real server is IPv4 (only client-side errors
            // reach the IPv6 side).
            let msg = (icmp.msg_type(), icmp.code(), icmp.rest());
            let e = Icmp6Error {
                offset,
                tl,
                hop,
                msg,
            };
            return self.nat64_icmp6(buf, e, &q, &quoted, &found.0, now_ms, ctl);
        }
        let msg_len = tl - offset;
        self.v6.icmp_onward(
            found,
            (dir, src),
            (buf, len, tl),
            now_ms,
            ctl,
            |buf, outer, new| {
                let l3 = &mut buf[ETH_LEN..];
                translate_icmp6(l3, msg_len, offset, outer, &q, &quoted, new);
            },
        )
    }
}

/// The IPv6 4-tuple bytes (addresses, ports) of a key.
pub(super) fn tuple_bytes(k: &FlowKey6) -> [u8; 36] {
    let mut b = [0u8; 36];
    b[0..16].copy_from_slice(&k.src.octets());
    b[16..32].copy_from_slice(&k.dst.octets());
    b[32..34].copy_from_slice(&k.sport.to_be_bytes());
    b[34..36].copy_from_slice(&k.dport.to_be_bytes());
    b
}

/// Rewrites addresses and ports from `old` to `new` (L4 header at `hl`,
/// packet length `tl`), decrements the hop limit and updates the TCP/UDP
/// checksum incrementally (IPv6 has no header checksum). NAT64: when `new`
/// is between mapped IPv4 addresses the packet becomes IPv4, when `old` is
/// (an IPv4 reply) it becomes IPv6; the new length is returned then.
///
/// # Errors
/// `NoRoom` when `l3` has no room for the IPv6 header of a translated reply.
pub fn rewrite(
    l3: &mut [u8],
    hl: usize,
    tl: usize,
    old: &FlowKey6,
    new: &FlowKey6,
) -> Result<Option<usize>, Drop> {
    if let (Some(src), Some(dst)) = (new.src.to_ipv4_mapped(), new.dst.to_ipv4_mapped()) {
        return Ok(Some(to_ipv4(l3, hl, tl, old, (src, dst), new)));
    }
    if old.src.is_mapped() {
        return to_ipv6(l3, hl, tl, old, new).map(Some);
    }
    rewrite_by(l3, hl, tl, new, Deltas::of(old, new));
    Ok(None)
}

/// [`rewrite`] within IPv6 (no NAT64) by the checksum differences `d` of
/// the 5-tuple change (a connection's, precomputed:
/// [`crate::conn::Conn::deltas`]).
#[inline(always)]
pub fn rewrite_by(l3: &mut [u8], hl: usize, tl: usize, new: &FlowKey6, d: Deltas) {
    {
        let mut ip = Ipv6Packet::new_unchecked(&mut *l3);
        let hop = ip.hop_limit();
        ip.set_src_addr(new.src);
        ip.set_dst_addr(new.dst);
        ip.set_hop_limit(hop.saturating_sub(1));
    }
    if let Some(l4) = l3.get_mut(hl..tl) {
        let delta = u32::from(d.addrs) + u32::from(d.ports);
        adjust_l4_by(l4, new.proto, delta, (new.sport, new.dport));
    }
}

/// The IPv4 4-tuple bytes (addresses, ports) of a NAT64 key.
fn tuple_bytes4((src, dst): (Ipv4Addr, Ipv4Addr), k: &FlowKey6) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b[8..10].copy_from_slice(&k.sport.to_be_bytes());
    b[10..12].copy_from_slice(&k.dport.to_be_bytes());
    b
}

/// NAT64, client → real server (RFC 7915 §5.1): replaces the IPv6 header
/// and its extension headers (L4 at `hl`, length `tl`) by an IPv4 header
/// `src → dst` (TOS = traffic class, TTL = hop limit − 1, DF set, as
/// DPVS), the L4 ports by `new`'s and adjusts the TCP/UDP checksum for the
/// new pseudo-header (protocol and length sum the same in both). Returns
/// the IPv4 packet's length.
fn to_ipv4(
    l3: &mut [u8],
    hl: usize,
    tl: usize,
    old: &FlowKey6,
    addrs: (Ipv4Addr, Ipv4Addr),
    new: &FlowKey6,
) -> usize {
    let (tc, hop) = {
        let ip = Ipv6Packet::new_unchecked(&*l3);
        (ip.traffic_class(), ip.hop_limit())
    };
    let l4_len = tl - hl;
    let new_tl = IPV4_HEADER_LEN + l4_len;
    l3.copy_within(hl..tl, IPV4_HEADER_LEN);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut l3[..new_tl]);
        let repr = Ipv4Repr {
            src_addr: addrs.0,
            dst_addr: addrs.1,
            protocol: IpProtocol::from(old.proto),
            payload_len: l4_len,
            ttl: hop.saturating_sub(1),
        };
        repr.emit(&mut ip);
        ip.set_dscp_ecn(tc);
        ip.fill_checksum();
    }
    let (ob, nb) = (tuple_bytes(old), tuple_bytes4(addrs, new));
    adjust_l4(
        &mut l3[IPV4_HEADER_LEN..new_tl],
        old.proto,
        &ob,
        &nb,
        (new.sport, new.dport),
    );
    new_tl
}

/// NAT64, real server → client (RFC 7915 §4.1): replaces the IPv4 header
/// (and options; L4 at `hl`, length `tl`) of a reply whose mapped key is
/// `old` by an IPv6 header `new.src → new.dst` (traffic class = TOS, hop
/// limit = TTL − 1), the ports by `new`'s and adjusts the TCP/UDP checksum
/// (a UDP datagram without one gets one, IPv6 requires it). Returns the
/// IPv6 packet's length.
fn to_ipv6(
    l3: &mut [u8],
    hl: usize,
    tl: usize,
    old: &FlowKey6,
    new: &FlowKey6,
) -> Result<usize, Drop> {
    let l4_len = tl - hl;
    let new_tl = IPV6_HEADER_LEN + l4_len;
    if new_tl > l3.len() {
        return Err(Drop::NoRoom);
    }
    let (tos, ttl) = {
        let ip = Ipv4Packet::new_unchecked(&*l3);
        (ip.dscp_ecn(), ip.ttl())
    };
    let unmap = |a: Ipv6Addr| a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
    let ob = tuple_bytes4((unmap(old.src), unmap(old.dst)), old);
    l3.copy_within(hl..tl, IPV6_HEADER_LEN);
    {
        let mut ip = Ipv6Packet::new_unchecked(&mut l3[..new_tl]);
        let repr = Ipv6Repr {
            src_addr: new.src,
            dst_addr: new.dst,
            next_header: IpProtocol::from(old.proto),
            payload_len: l4_len,
            hop_limit: ttl.saturating_sub(1),
        };
        repr.emit(&mut ip);
        ip.set_traffic_class(tos);
    }
    let l4 = &mut l3[IPV6_HEADER_LEN..new_tl];
    if old.proto == 17 && l4.get(6..8) == Some(&[0, 0]) {
        l4[..2].copy_from_slice(&new.sport.to_be_bytes());
        l4[2..4].copy_from_slice(&new.dport.to_be_bytes());
        let len = u32::try_from(l4_len).unwrap_or(u32::MAX);
        let c = checksum::finish(
            checksum::pseudo_v6(new.src, new.dst, IpProtocol::Udp, len) + checksum::sum(l4),
        );
        let c = if c == 0 { 0xffff } else { c };
        l4[6..8].copy_from_slice(&c.to_be_bytes());
    } else {
        adjust_l4(
            l4,
            old.proto,
            &ob,
            &tuple_bytes(new),
            (new.sport, new.dport),
        );
    }
    Ok(new_tl)
}

/// DPVS's IPv6 TOA option (`struct tcpopt_ip6_addr`, kmod/toa `struct
/// toa_ip6_data`): kind 254, length 20, the client's port and IPv6 address
/// in network order.
fn toa6_option(client: Ipv6Addr, client_port: u16) -> [u8; TOA6_LEN] {
    let mut opt = [0u8; TOA6_LEN];
    opt[0] = super::TOA_KIND;
    opt[1] = TOA6_LEN as u8;
    opt[2..4].copy_from_slice(&client_port.to_be_bytes());
    opt[4..].copy_from_slice(&client.octets());
    opt
}

/// Inserts DPVS's IPv6 TOA option ([`toa6_option`]) into the rewritten
/// segment `src → dst` (as the IPv4 `insert_toa`). Returns the new frame
/// length.
pub fn insert_toa(
    buf: &mut [u8],
    hl: usize,
    tl: usize,
    (client, client_port): (Ipv6Addr, u16),
) -> Option<usize> {
    let opt = toa6_option(client, client_port);
    let new_len = toa_room(buf, hl, tl, &opt)?;
    let new_tl = tl + TOA6_LEN;
    let mut ip = Ipv6Packet::new_unchecked(&mut buf[ETH_LEN..new_len]);
    ip.set_payload_len((new_tl - IPV6_HEADER_LEN) as u16);
    Some(new_len)
}

/// Fills the checksum of the TCP segment `tcp` (header and payload, at
/// most 64 KiB) sent `src → dst`.
pub(super) fn fill_tcp_checksum(tcp: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    tcp[16..18].fill(0);
    let l4_len = tcp.len() as u32;
    let c = checksum::finish(
        checksum::pseudo_v6(src, dst, IpProtocol::Tcp, l4_len) + checksum::sum(tcp),
    );
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
}

/// NAT64's TOA: DPVS sizes the option by the client's family
/// (`tcp_in_add_toa`: `conn->af`, the IPv6 side), so the IPv4 segment to
/// the real server (IPv4 header as [`to_ipv4`] wrote it, total length
/// `tl`) carries the 20-byte IPv6 option ([`toa6_option`]), which the TOA
/// module reads with `TOA_NAT64_ENABLE`. Returns the new frame length.
pub fn insert_toa64(
    buf: &mut [u8],
    tl: usize,
    (client, client_port): (Ipv6Addr, u16),
) -> Option<usize> {
    let opt = toa6_option(client, client_port);
    super::insert_option_v4(buf, IPV4_HEADER_LEN, tl, &opt)
}

/// Wraps the IPv6 packet of the frame in `buf` (length `tl`) in an outer
/// IPv6 header `src → dst`, next header 41 (ip6ip6, RFC 2473), copying the
/// inner traffic class, flow label and hop limit. Returns the new frame
/// length.
pub fn encapsulate(buf: &mut [u8], tl: usize, src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize, Drop> {
    let new_len = super::tunnel_room(buf, tl, IPV6_HEADER_LEN)?;
    let (tc, flow, hop) = {
        let ip = Ipv6Packet::new_unchecked(&buf[ETH_LEN + IPV6_HEADER_LEN..new_len]);
        (ip.traffic_class(), ip.flow_label(), ip.hop_limit())
    };
    let mut outer = Ipv6Packet::new_unchecked(&mut buf[ETH_LEN..new_len]);
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Ipv6,
        payload_len: tl,
        hop_limit: hop,
    };
    repr.emit(&mut outer);
    outer.set_traffic_class(tc);
    outer.set_flow_label(flow);
    Ok(new_len)
}

/// Rewrites a validated ICMPv6 error (`l3`, ICMPv6 message of `msg_len`
/// bytes at `offset`): outer addresses to `src → dst` with hop limit − 1,
/// the quoted packet `q` (tuple `old`) to `new` (its TCP/UDP checksum
/// adjusted when quoted), then the ICMPv6 checksum recomputed.
fn translate_icmp6(
    l3: &mut [u8],
    msg_len: usize,
    offset: usize,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    q: &Quote6,
    old: &FlowKey6,
    new: &FlowKey6,
) {
    {
        let mut ip = Ipv6Packet::new_unchecked(&mut *l3);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.set_hop_limit(ip.hop_limit().saturating_sub(1));
    }
    let Some(msg) = l3.get_mut(offset..offset + msg_len) else {
        return;
    };
    let Some(quote) = msg.get_mut(icmpv6::HEADER_LEN..) else {
        return;
    };
    quote[8..24].copy_from_slice(&new.src.octets());
    quote[24..40].copy_from_slice(&new.dst.octets());
    let (ob, nb) = (tuple_bytes(old), tuple_bytes(new));
    let l4 = quote.get_mut(q.l4_offset..).unwrap_or_default();
    adjust_l4(l4, old.proto, &ob, &nb, (new.sport, new.dport));
    Icmpv6Packet::new_unchecked(msg).fill_checksum(src, dst);
}
