//! Wire formats: VRRPv2/v3 adverts, the IPv4/IPv6 headers that carry them,
//! and the gratuitous ARP / unsolicited NA frames a new master sends.
//!
//! Every format follows the same contract (smoltcp's): a `*Packet<T>` view over
//! bytes with `new_unchecked`, `check_len` and `new_checked`; once
//! `new_checked` succeeded no accessor panics. A `*Repr` is the parsed,
//! owned form with `parse`, `buffer_len` and `emit`.
//!
//! Errors are [`WireError`], a small `Copy` value that the instance uses as a
//! drop-counter index.

mod garp;
mod ip;
mod vrrp;

pub use garp::{gratuitous_arp, unsolicited_na, ARP_FRAME_LEN, NA_FRAME_LEN};
pub use ip::{emit_ip_advert, parse_ip, IpMeta, IPV4_HEADER_LEN, IPV6_HEADER_LEN};
pub use vrrp::{
    AuthType, Family, MessageType, Version, VrrpPacket, VrrpRepr, AUTH_DATA_LEN, HEADER_LEN,
};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IP_PROTO_VRRP: u8 = 112;
/// IPv4 multicast group of VRRP.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP.
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit VRRP sends and requires.
pub const VRRP_TTL: u8 = 255;
/// TOS / traffic class keepalived uses (internetwork control).
pub const VRRP_TOS: u8 = 0xc0;

/// Why bytes could not be parsed or were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// Shorter than the header or the addresses it announces.
    Truncated,
    /// Version field is neither 2 nor 3 (or not the IP version expected).
    BadVersion,
    /// The checksum does not verify.
    BadChecksum,
    /// Something other than what the parser handles (IP options, protocol).
    Unsupported,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::BadVersion => "bad version",
            WireError::BadChecksum => "bad checksum",
            WireError::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for WireError {}

/// Internet checksum helpers (RFC 1071).
pub mod checksum {
    use super::*;

    /// One's-complement sum of `data` (not folded, not inverted).
    pub fn sum(data: &[u8]) -> u32 {
        let mut acc: u32 = 0;
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            acc += u32::from(*last) << 8;
        }
        acc
    }

    /// Folds a sum to 16 bits.
    pub fn fold(mut acc: u32) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// The sum of the IPv4 or IPv6 pseudo-header. Mixed families sum as zero
    /// addresses of the destination's family (a caller error; never panics).
    pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> u32 {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                sum(&s.octets()) + sum(&d.octets()) + u32::from(proto) + len
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                sum(&s.octets())
                    + sum(&d.octets())
                    + u32::from(proto)
                    + (len >> 16)
                    + (len & 0xffff)
            }
            (_, IpAddr::V4(d)) => sum(&d.octets()) + u32::from(proto) + len,
            (_, IpAddr::V6(d)) => {
                sum(&d.octets()) + u32::from(proto) + (len >> 16) + (len & 0xffff)
            }
        }
    }

    /// The checksum field value for `data` plus an initial `acc`.
    pub fn finish(data: &[u8], acc: u32) -> u16 {
        !fold(acc + sum(data))
    }
}
