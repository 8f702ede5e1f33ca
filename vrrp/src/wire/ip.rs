//! Just enough IPv4/IPv6 to read what a raw socket (or a capture) hands us and
//! to build the header keepalived puts on its adverts.

use super::{checksum, VrrpPacket, VrrpRepr, WireError, IP_PROTO_VRRP, VRRP_TOS, VRRP_TTL};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of the IPv6 fixed header.
pub const IPV6_HEADER_LEN: usize = 40;

/// What the receive checks need from the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMeta {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Protocol / next header.
    pub proto: u8,
}

/// Parses an IPv4 (with options) or IPv6 (without extension headers) packet
/// and returns its header fields and the payload, cut to the length the
/// header declares.
///
/// # Errors
/// [`WireError::Truncated`], [`WireError::BadVersion`] (neither 4 nor 6) or
/// [`WireError::Unsupported`] (fragments).
pub fn parse_ip(bytes: &[u8]) -> Result<(IpMeta, &[u8]), WireError> {
    let first = *bytes.first().ok_or(WireError::Truncated)?;
    match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < IPV4_HEADER_LEN || bytes.len() < ihl {
                return Err(WireError::Truncated);
            }
            let total = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            let frag = u16::from_be_bytes([bytes[6], bytes[7]]);
            if frag & 0x3fff != 0 {
                return Err(WireError::Unsupported);
            }
            // Some raw sockets report the total length in host order or
            // without the header; accept anything that fits the buffer.
            let end = if total >= ihl && total <= bytes.len() {
                total
            } else {
                bytes.len()
            };
            let src = Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]);
            let dst = Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]);
            Ok((
                IpMeta {
                    src: src.into(),
                    dst: dst.into(),
                    ttl: bytes[8],
                    proto: bytes[9],
                },
                &bytes[ihl..end],
            ))
        }
        6 => {
            if bytes.len() < IPV6_HEADER_LEN {
                return Err(WireError::Truncated);
            }
            let plen = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
            let end = IPV6_HEADER_LEN + plen;
            let payload = bytes
                .get(IPV6_HEADER_LEN..end)
                .ok_or(WireError::Truncated)?;
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&bytes[8..24]);
            d.copy_from_slice(&bytes[24..40]);
            Ok((
                IpMeta {
                    src: Ipv6Addr::from(s).into(),
                    dst: Ipv6Addr::from(d).into(),
                    ttl: bytes[7],
                    proto: bytes[6],
                },
                payload,
            ))
        }
        _ => Err(WireError::BadVersion),
    }
}

/// Builds the IP packet keepalived sends: IPv4 with TOS 0xc0, TTL 255, no
/// DF, the given identification; or IPv6 with traffic class 0xc0, the given
/// flow label (20 bits) and hop limit 255. `src` and `dst` must share a
/// family; otherwise `None`.
pub fn emit_ip_advert(
    src: IpAddr,
    dst: IpAddr,
    id_or_flow: u32,
    vrrp: &VrrpRepr,
) -> Option<Vec<u8>> {
    let vlen = vrrp.buffer_len();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(IPV4_HEADER_LEN + vlen).ok()?;
            let mut buf = vec![0u8; IPV4_HEADER_LEN + vlen];
            buf[0] = 0x45;
            buf[1] = VRRP_TOS;
            buf[2..4].copy_from_slice(&total.to_be_bytes());
            buf[4..6].copy_from_slice(&(id_or_flow as u16).to_be_bytes());
            buf[8] = VRRP_TTL;
            buf[9] = IP_PROTO_VRRP;
            buf[12..16].copy_from_slice(&s.octets());
            buf[16..20].copy_from_slice(&d.octets());
            let c = checksum::finish(&buf[..IPV4_HEADER_LEN], 0);
            buf[10..12].copy_from_slice(&c.to_be_bytes());
            let mut p = VrrpPacket::new_unchecked(&mut buf[IPV4_HEADER_LEN..], vrrp.family());
            vrrp.emit(&mut p, src, dst);
            Some(buf)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let plen = u16::try_from(vlen).ok()?;
            let mut buf = vec![0u8; IPV6_HEADER_LEN + vlen];
            let word = (6u32 << 28) | (u32::from(VRRP_TOS) << 20) | (id_or_flow & 0x000f_ffff);
            buf[0..4].copy_from_slice(&word.to_be_bytes());
            buf[4..6].copy_from_slice(&plen.to_be_bytes());
            buf[6] = IP_PROTO_VRRP;
            buf[7] = VRRP_TTL;
            buf[8..24].copy_from_slice(&s.octets());
            buf[24..40].copy_from_slice(&d.octets());
            let mut p = VrrpPacket::new_unchecked(&mut buf[IPV6_HEADER_LEN..], vrrp.family());
            vrrp.emit(&mut p, src, dst);
            Some(buf)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_garbage_without_panicking() {
        assert_eq!(parse_ip(&[]).err(), Some(WireError::Truncated));
        assert_eq!(parse_ip(&[0x45; 10]).err(), Some(WireError::Truncated));
        assert_eq!(parse_ip(&[0x60; 39]).err(), Some(WireError::Truncated));
        assert_eq!(parse_ip(&[0x10; 40]).err(), Some(WireError::BadVersion));
        for n in 0..64usize {
            let b: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x45).collect();
            let _ = parse_ip(&b);
        }
    }

    #[test]
    fn mixed_families_refused() {
        let r = VrrpRepr {
            version: crate::wire::Version::V3,
            msg_type: crate::wire::MessageType::Advertisement,
            vrid: 1,
            priority: 100,
            adver_int: 100,
            auth_type: crate::wire::AuthType::None,
            auth_data: [0; 8],
            addrs: vec![],
        };
        assert!(emit_ip_advert(
            Ipv4Addr::LOCALHOST.into(),
            Ipv6Addr::LOCALHOST.into(),
            0,
            &r
        )
        .is_none());
        let v4 = emit_ip_advert(
            Ipv4Addr::LOCALHOST.into(),
            Ipv4Addr::LOCALHOST.into(),
            7,
            &r,
        )
        .expect("v4");
        let (meta, payload) = parse_ip(&v4).expect("parses");
        assert_eq!((meta.ttl, meta.proto, payload.len()), (255, 112, 8));
    }
}
