//! NAT64 ICMP errors (RFC 7915 §4.2, §5.2), for connections from an IPv6
//! client to an IPv6 VIP served by an IPv4 real server (FNAT).
//!
//! - An ICMPv4 error from the real server's side (to the IPv4 local
//!   address, quoting LIP:lport → RS:rport) becomes the matching ICMPv6
//!   error from the VIP to the client, quoting the client's packet as the
//!   client sent it (client:cport → VIP:vport, IPv6). "Fragmentation
//!   needed" becomes "packet too big" with the MTU + 20 (the IPv6 header is
//!   20 bytes longer), at most our link MTU and at least 1280.
//! - An ICMPv6 error from the client's side (to the VIP, quoting VIP:vport
//!   → client:cport) becomes the matching ICMPv4 error from the local
//!   address to the real server, quoting RS:rport → LIP:lport (IPv4).
//!   "Packet too big" becomes "fragmentation needed" with the MTU − 20.
//!
//! Messages RFC 7915 says to drop (redirects, source quench, unknown
//! codes, …) are counted as `icmp_unhandled`. The translated error is at
//! most 1280 bytes (IPv6, RFC 4443 §2.4) or 576 bytes (IPv4, RFC 1812
//! §4.3.2.3): the quote is cut to fit. Growing to IPv6 needs room in the
//! frame buffer, as TUN does.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::v6::tuple_bytes as tuple_bytes6;
use super::{adjust_l4, tuple_bytes, Burst, Dir, Engine, Forwarding, Verdict, ETH_LEN, TUNNEL_MTU};
use crate::conn::{FlowKey, FlowKey6, Key};
use crate::stats::Drop;
use crate::wire::icmpv4::{self, Quote};
use crate::wire::icmpv6::{self, Quote6};
use crate::wire::ipv4::HEADER_LEN as IPV4_HEADER_LEN;
use crate::wire::ipv6::HEADER_LEN as IPV6_HEADER_LEN;
use crate::wire::{
    EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr,
};

/// The IPv6 minimum link MTU: the largest ICMPv6 error, and the smallest
/// MTU a "packet too big" may report (RFC 8200 §5).
const IPV6_MIN_MTU: usize = 1280;
/// The largest ICMPv4 error (RFC 1812 §4.3.2.3).
const IPV4_ERROR_MAX: usize = 576;
/// How much longer an IPv6 header is than an IPv4 one.
const HEADER_GROWTH: u32 = (IPV6_HEADER_LEN - IPV4_HEADER_LEN) as u32;
/// RFC 1191's MTU plateaus, for "fragmentation needed" without an MTU.
const PLATEAUS: [u32; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// RFC 7915 §4.2: an ICMPv4 error (`msg_type`, `code`, the header's last
/// word `rest`) about a packet of total length `quoted_len` as ICMPv6
/// (type, code, last word); `None` when it is not translated (dropped).
pub fn icmp4_to_6(msg_type: u8, code: u8, rest: u32, quoted_len: u16) -> Option<(u8, u8, u32)> {
    const UNREACH: u8 = icmpv6::DEST_UNREACHABLE;
    Some(match (msg_type, code) {
        (icmpv4::DEST_UNREACHABLE, 0 | 1 | 5..=8 | 11 | 12) => (UNREACH, 0, 0),
        // Protocol unreachable: unrecognized next header, pointing at it.
        (icmpv4::DEST_UNREACHABLE, 2) => (icmpv6::PARAMETER_PROBLEM, 1, 6),
        (icmpv4::DEST_UNREACHABLE, 3) => (UNREACH, 4, 0),
        (icmpv4::DEST_UNREACHABLE, icmpv4::CODE_FRAG_NEEDED) => (
            icmpv6::PACKET_TOO_BIG,
            0,
            packet_too_big_mtu(rest & 0xffff, quoted_len),
        ),
        (icmpv4::DEST_UNREACHABLE, 9 | 10 | 13 | 15) => (UNREACH, 1, 0),
        (icmpv4::TIME_EXCEEDED, 0 | 1) => (icmpv6::TIME_EXCEEDED, code, 0),
        // Pointer problem or bad length: the pointer moves to the IPv6
        // field (RFC 7915 figure 3); fields IPv6 does not have: dropped.
        (icmpv4::PARAMETER_PROBLEM, 0 | 2) => {
            let pointer = match rest >> 24 {
                0 => 0,
                1 => 1,
                2 | 3 => 4,
                8 => 7,
                9 => 6,
                12..=15 => 8,
                16..=19 => 24,
                _ => return None,
            };
            (icmpv6::PARAMETER_PROBLEM, 0, pointer)
        }
        _ => return None,
    })
}

/// The MTU of the ICMPv6 "packet too big" for an ICMPv4 "fragmentation
/// needed" reporting `mtu` (0: a router before RFC 1191, then the largest
/// plateau below the quoted packet's length `quoted_len`): + 20, at most our
/// link MTU, at least 1280.
fn packet_too_big_mtu(mtu: u32, quoted_len: u16) -> u32 {
    let mtu = if mtu == 0 {
        PLATEAUS
            .iter()
            .copied()
            .find(|&p| p < u32::from(quoted_len))
            .unwrap_or(68)
    } else {
        mtu
    };
    (mtu + HEADER_GROWTH)
        .min(TUNNEL_MTU as u32)
        .max(IPV6_MIN_MTU as u32)
}

/// RFC 7915 §5.2: an ICMPv6 error (`msg_type`, `code`, last word `rest`)
/// as ICMPv4 (type, code, last word); `None` when it is not translated.
pub fn icmp6_to_4(msg_type: u8, code: u8, rest: u32) -> Option<(u8, u8, u32)> {
    const UNREACH: u8 = icmpv4::DEST_UNREACHABLE;
    Some(match (msg_type, code) {
        (icmpv6::DEST_UNREACHABLE, 0 | 2 | 3) => (UNREACH, 1, 0),
        (icmpv6::DEST_UNREACHABLE, 1) => (UNREACH, 10, 0),
        (icmpv6::DEST_UNREACHABLE, 4) => (UNREACH, 3, 0),
        (icmpv6::PACKET_TOO_BIG, 0) => {
            // MTU − 20, at most the IPv4 link MTU (and what fits a u16).
            let mtu = rest
                .saturating_sub(HEADER_GROWTH)
                .min(TUNNEL_MTU as u32)
                .max(68);
            (UNREACH, icmpv4::CODE_FRAG_NEEDED, mtu)
        }
        (icmpv6::TIME_EXCEEDED, 0 | 1) => (icmpv4::TIME_EXCEEDED, code, 0),
        // Unrecognized next header: protocol unreachable.
        (icmpv6::PARAMETER_PROBLEM, 1) => (UNREACH, 2, 0),
        (icmpv6::PARAMETER_PROBLEM, 0) => {
            // RFC 7915 figure 6.
            let pointer = match rest {
                0 => 0,
                1 => 1,
                4 | 5 => 2,
                6 => 9,
                7 => 8,
                8..=23 => 12,
                24..=39 => 16,
                _ => return None,
            };
            (icmpv4::PARAMETER_PROBLEM, 0, pointer << 24)
        }
        _ => return None,
    })
}

/// The IPv4 key of a NAT64 key (mapped addresses).
fn unmapped(k: &FlowKey6) -> FlowKey {
    let v4 = |a: Ipv6Addr| a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
    Key {
        proto: k.proto,
        src: v4(k.src),
        dst: v4(k.dst),
        sport: k.sport,
        dport: k.dport,
    }
}

/// An ICMPv4 error as [`Engine::icmp_error`] read it: the outer IPv4
/// header and total length, TTL, and the message's type, code and last word.
#[derive(Debug, Clone, Copy)]
pub(super) struct Icmp4Error {
    pub hl: usize,
    pub tl: usize,
    pub ttl: u8,
    pub msg: (u8, u8, u32),
}

/// An ICMPv6 error as [`Engine::icmp6_error`] read it: where the message
/// starts in the IPv6 packet, the packet's length, the hop limit, and the
/// message's type, code and last word.
#[derive(Debug, Clone, Copy)]
pub(super) struct Icmp6Error {
    pub offset: usize,
    pub tl: usize,
    pub hop: u8,
    pub msg: (u8, u8, u32),
}

impl Engine {
    /// An ICMPv4 error to a NAT64 local address whose quoted packet
    /// (`q`, tuple `quoted`: LIP → RS) no IPv4 connection knows: when a
    /// NAT64 connection sent it, the client gets the ICMPv6 error (see the
    /// module docs). Returns the verdict and the frame's new length.
    pub(super) fn nat64_icmp4(
        &mut self,
        buf: &mut [u8],
        e: Icmp4Error,
        q: &Quote,
        quoted: &FlowKey,
        now_ms: u64,
    ) -> Result<(Verdict, usize), Drop> {
        let mapped = Key {
            proto: quoted.proto,
            src: quoted.src.to_ipv6_mapped(),
            dst: quoted.dst.to_ipv6_mapped(),
            sport: quoted.sport,
            dport: quoted.dport,
        };
        let (conn, mode, _) = self.v6.quoted_conn(&mapped, Dir::Out, e.ttl, now_ms)?;
        if mode != Forwarding::Fnat {
            return Err(Drop::NoConnection);
        }
        let at = ETH_LEN + e.hl + icmpv4::HEADER_LEN;
        let end = ETH_LEN + e.tl;
        let quote = buf.get(at..end).ok_or(Drop::Truncated)?;
        let ihl = q.header_len;
        // Quote::parse saw the header and the ports.
        let quoted_len = u16::from_be_bytes([quote[2], quote[3]]);
        let (qtos, qttl) = (quote[1], quote[8]);
        let (t, c, rest) = e.msg;
        let msg = icmp4_to_6(t, c, rest, quoted_len).ok_or(Drop::IcmpUnhandled)?;
        let tos = buf[ETH_LEN + 1];
        // The new packet: IPv6, ICMPv6 header, quoted IPv6 header, data.
        let head = IPV6_HEADER_LEN + icmpv6::HEADER_LEN + IPV6_HEADER_LEN;
        let data = (end - at - ihl).min(IPV6_MIN_MTU - head);
        let new_tl = head + data;
        if ETH_LEN + new_tl > buf.len() {
            return Err(Drop::NoRoom);
        }
        buf.copy_within(at + ihl..at + ihl + data, ETH_LEN + head);
        let (client, vip) = (conn.in_key.src, conn.in_key.dst);
        let l3 = &mut buf[ETH_LEN..ETH_LEN + new_tl];
        {
            let inner = &mut l3[IPV6_HEADER_LEN + icmpv6::HEADER_LEN..];
            let repr = Ipv6Repr {
                src_addr: client,
                dst_addr: vip,
                next_header: IpProtocol::from(quoted.proto),
                payload_len: usize::from(quoted_len).saturating_sub(ihl),
                hop_limit: qttl,
            };
            let mut ip = Ipv6Packet::new_unchecked(&mut *inner);
            repr.emit(&mut ip);
            ip.set_traffic_class(qtos);
            // The client's packet as it sent it: its ports, its addresses.
            let (ob, nb) = (tuple_bytes(quoted), tuple_bytes6(&conn.in_key));
            let ports = (conn.in_key.sport, conn.in_key.dport);
            adjust_l4(&mut inner[IPV6_HEADER_LEN..], quoted.proto, &ob, &nb, ports);
        }
        {
            let mut icmp = Icmpv6Packet::new_unchecked(&mut l3[IPV6_HEADER_LEN..]);
            icmp.set_msg_type(msg.0);
            icmp.set_code(msg.1);
            icmp.set_rest(msg.2);
            icmp.fill_checksum(vip, client);
        }
        let repr = Ipv6Repr {
            src_addr: vip,
            dst_addr: client,
            next_header: IpProtocol::Icmpv6,
            payload_len: new_tl - IPV6_HEADER_LEN,
            hop_limit: e.ttl.saturating_sub(1),
        };
        let mut ip = Ipv6Packet::new_unchecked(&mut *l3);
        repr.emit(&mut ip);
        ip.set_traffic_class(tos);
        let len = ETH_LEN + new_tl;
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..len]);
        eth.set_ethertype(EtherType::Ipv6);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(conn.client_mac);
        Ok((Verdict::Forward, len))
    }

    /// An ICMPv6 error from the client of NAT64 connection `conn` about a
    /// reply it got (`q`, tuple `quoted`: VIP → client): the real server
    /// gets the ICMPv4 error about what it sent (see the module docs).
    /// Returns the verdict and the frame's new length.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat64_icmp6(
        &mut self,
        buf: &mut [u8],
        e: Icmp6Error,
        q: &Quote6,
        quoted: &FlowKey6,
        conn: &crate::conn::Conn<Ipv6Addr>,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Verdict, usize), Drop> {
        let (t, c, rest) = e.msg;
        let msg = icmp6_to_4(t, c, rest).ok_or(Drop::IcmpUnhandled)?;
        let mac = self.v6.dest_mac(conn.dest, now_ms, ctl)?;
        let at = ETH_LEN + e.offset + icmpv6::HEADER_LEN;
        let end = ETH_LEN + e.tl;
        let quote = buf.get(at..end).ok_or(Drop::Truncated)?;
        // Quote6::parse saw the IPv6 header, the extension headers and the ports.
        let (qtc, qhop) = {
            let ip = Ipv6Packet::new_unchecked(quote);
            (ip.traffic_class(), ip.hop_limit())
        };
        let quoted_l4_len = (usize::from(u16::from_be_bytes([quote[4], quote[5]]))
            + IPV6_HEADER_LEN)
            .saturating_sub(q.l4_offset);
        let tc = Ipv6Packet::new_unchecked(&buf[ETH_LEN..end]).traffic_class();
        let head = IPV4_HEADER_LEN + icmpv4::HEADER_LEN + IPV4_HEADER_LEN;
        let data = (end - at - q.l4_offset).min(IPV4_ERROR_MAX - head);
        let new_tl = head + data;
        buf.copy_within(at + q.l4_offset..at + q.l4_offset + data, ETH_LEN + head);
        // What the real server sent: RS:rport → LIP:lport.
        let sent = unmapped(&conn.out_key);
        let l3 = &mut buf[ETH_LEN..ETH_LEN + new_tl];
        {
            let inner = &mut l3[IPV4_HEADER_LEN + icmpv4::HEADER_LEN..];
            let repr = Ipv4Repr {
                src_addr: sent.src,
                dst_addr: sent.dst,
                protocol: IpProtocol::from(quoted.proto),
                payload_len: quoted_l4_len,
                ttl: qhop,
            };
            let mut ip = Ipv4Packet::new_unchecked(&mut *inner);
            repr.emit(&mut ip);
            ip.set_dscp_ecn(qtc);
            ip.fill_checksum();
            let (ob, nb) = (tuple_bytes6(quoted), tuple_bytes(&sent));
            let ports = (sent.sport, sent.dport);
            adjust_l4(&mut inner[IPV4_HEADER_LEN..], quoted.proto, &ob, &nb, ports);
        }
        {
            let mut icmp = Icmpv4Packet::new_unchecked(&mut l3[IPV4_HEADER_LEN..]);
            icmp.set_msg_type(msg.0);
            icmp.set_code(msg.1);
            icmp.set_rest(msg.2);
            icmp.fill_checksum();
        }
        let repr = Ipv4Repr {
            src_addr: sent.dst,
            dst_addr: sent.src,
            protocol: IpProtocol::Icmp,
            payload_len: new_tl - IPV4_HEADER_LEN,
            ttl: e.hop.saturating_sub(1),
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut *l3);
        repr.emit(&mut ip);
        ip.set_dscp_ecn(tc);
        ip.fill_checksum();
        let len = ETH_LEN + new_tl;
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..len]);
        eth.set_ethertype(EtherType::Ipv4);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(mac);
        Ok((Verdict::Forward, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmpv4_errors_map_as_rfc_7915_section_4_2() {
        let cases = [
            ((3, 0, 0), Some((1, 0, 0))),
            ((3, 1, 0), Some((1, 0, 0))),
            ((3, 2, 0), Some((4, 1, 6))),
            ((3, 3, 0), Some((1, 4, 0))),
            ((3, 4, 1400), Some((2, 0, 1420))),
            // At most our link MTU, at least the IPv6 minimum.
            ((3, 4, 9000), Some((2, 0, 1500))),
            ((3, 4, 576), Some((2, 0, 1280))),
            ((3, 5, 0), Some((1, 0, 0))),
            ((3, 9, 0), Some((1, 1, 0))),
            ((3, 10, 0), Some((1, 1, 0))),
            ((3, 13, 0), Some((1, 1, 0))),
            ((3, 14, 0), None),
            ((3, 15, 0), Some((1, 1, 0))),
            ((3, 16, 0), None),
            ((11, 0, 0), Some((3, 0, 0))),
            ((11, 1, 0), Some((3, 1, 0))),
            ((12, 0, 8 << 24), Some((4, 0, 7))),
            ((12, 0, 9 << 24), Some((4, 0, 6))),
            ((12, 0, 13 << 24), Some((4, 0, 8))),
            ((12, 2, 17 << 24), Some((4, 0, 24))),
            ((12, 0, 10 << 24), None),
            ((12, 1, 0), None),
            ((4, 0, 0), None),
            ((5, 0, 0), None),
            ((0, 0, 0), None),
        ];
        for ((t, c, rest), want) in cases {
            assert_eq!(icmp4_to_6(t, c, rest, 1500), want, "{t}/{c}/{rest}");
        }
        // No MTU (before RFC 1191): the plateau below the quoted length.
        assert_eq!(icmp4_to_6(3, 4, 0, 1500), Some((2, 0, 1500)));
        assert_eq!(icmp4_to_6(3, 4, 0, 1400), Some((2, 0, 1280)));
        assert_eq!(icmp4_to_6(3, 4, 0, 4000), Some((2, 0, 1500)));
    }

    #[test]
    fn icmpv6_errors_map_as_rfc_7915_section_5_2() {
        let cases = [
            ((1, 0, 0), Some((3, 1, 0))),
            ((1, 1, 0), Some((3, 10, 0))),
            ((1, 2, 0), Some((3, 1, 0))),
            ((1, 3, 0), Some((3, 1, 0))),
            ((1, 4, 0), Some((3, 3, 0))),
            ((1, 5, 0), None),
            ((2, 0, 1280), Some((3, 4, 1260))),
            ((2, 0, 9000), Some((3, 4, 1500))),
            ((3, 0, 0), Some((11, 0, 0))),
            ((3, 1, 0), Some((11, 1, 0))),
            ((4, 1, 40), Some((3, 2, 0))),
            ((4, 0, 6), Some((12, 0, 9 << 24))),
            ((4, 0, 7), Some((12, 0, 8 << 24))),
            ((4, 0, 30), Some((12, 0, 16 << 24))),
            ((4, 0, 2), None),
            ((4, 2, 0), None),
            ((127, 0, 0), None),
        ];
        for ((t, c, rest), want) in cases {
            assert_eq!(icmp6_to_4(t, c, rest), want, "{t}/{c}/{rest}");
        }
    }
}
