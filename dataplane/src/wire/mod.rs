//! Zero-copy views of the packets the dataplane forwards.
//!
//! Every protocol module follows the same shape:
//!
//! * a private `field` module naming the byte ranges of the header;
//! * a `*Packet<T: AsRef<[u8]>>` *view* over a borrowed (or owned) buffer, with
//!   `new_unchecked`, `check_len`, `new_checked`, `into_inner`, getters, and `set_*`
//!   methods when `T: AsMut<[u8]>`;
//! * where the engine builds packets from scratch, a small `*Repr` with `parse`,
//!   `buffer_len` and `emit`.
//!
//! # The invariant
//!
//! Bytes from the network are untrusted. They enter through `new_checked`, which
//! validates every length the accessors rely on and returns a [`WireError`] otherwise.
//! **Once `new_checked` has succeeded, no getter, setter, `payload`/`options` accessor
//! or checksum routine of that view can panic** — whatever the bytes are, and even if the
//! caller later writes inconsistent length fields through a setter (variable-length
//! accessors clamp to the buffer instead of indexing past it).
//!
//! `new_unchecked` skips validation; accessors on such a view panic if the buffer is
//! shorter than the fixed header. It exists for `emit`, where the caller sized the buffer
//! with `buffer_len`.
//!
//! Nothing in this module allocates, locks or reads a clock: it is hot-path code.
//!
//! # Checksums
//!
//! [`checksum`] has the one's-complement primitives, including RFC 1624 incremental
//! update ([`checksum::adjust`]) that the NAT engine uses after rewriting addresses and
//! ports; the property tests in [`ipv4`], [`tcp`] and [`udp`] pin that an adjusted
//! checksum equals a full recomputation.

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use self::arp::{ArpOperation, ArpPacket, ArpRepr};
pub use self::ethernet::{EtherType, EthernetFrame};
pub use self::icmpv4::Icmpv4Packet;
pub use self::icmpv6::Icmpv6Packet;
pub use self::ipv4::{Ipv4Packet, Ipv4Repr};
pub use self::ipv6::{Ipv6Packet, Ipv6Repr, Ipv6Upper};
pub use self::tcp::TcpPacket;
pub use self::udp::UdpPacket;
pub use self::vlan::VlanTag;

/// Why a packet could not be parsed. Small and Copy: it doubles as a drop-counter index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than the header, or than a length field claims.
    Truncated,
    /// A field holds a value the protocol forbids (or this stack does not accept),
    /// e.g. IPv4 version ≠ 4, IHL < 5, an ARP packet that is not Ethernet/IPv4.
    Malformed,
    /// The checksum does not verify.
    BadChecksum,
}

impl WireError {
    /// Number of variants; sizes a counter array indexed by [`WireError::index`].
    pub const COUNT: usize = 3;

    /// Dense index in `0..COUNT`, for drop counters.
    pub const fn index(self) -> usize {
        match self {
            WireError::Truncated => 0,
            WireError::Malformed => 1,
            WireError::BadChecksum => 2,
        }
    }

    /// Short stable name, for counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::Malformed => "malformed",
            WireError::BadChecksum => "bad_checksum",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for WireError {}

/// Result of parsing packet bytes.
pub type Result<T> = core::result::Result<T, WireError>;

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`, e.g. the unknown target of an ARP request.
    pub const UNSPECIFIED: MacAddr = MacAddr([0; 6]);

    /// Copies an address out of the first six bytes of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than six bytes.
    pub fn from_bytes(data: &[u8]) -> MacAddr {
        let mut bytes = [0; 6];
        bytes.copy_from_slice(&data[..6]);
        MacAddr(bytes)
    }

    /// The address as bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit is set (multicast, including broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is a unicast address (group bit clear).
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(bytes: [u8; 6]) -> Self {
        MacAddr(bytes)
    }
}

/// IP protocol number (IPv4 `protocol`, IPv6 `next header`). Unknown numbers are carried, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// 1
    Icmp,
    /// 4 (IPv4-in-IPv4, RFC 2003)
    IpIp,
    /// 6
    Tcp,
    /// 17
    Udp,
    /// 0: IPv6 hop-by-hop options
    HopByHop,
    /// 41: IPv6 encapsulation (6in4, ip6ip6)
    Ipv6,
    /// 43: IPv6 routing header
    Ipv6Route,
    /// 44: IPv6 fragment header
    Ipv6Frag,
    /// 58: ICMPv6
    Icmpv6,
    /// 60: IPv6 destination options
    Ipv6Opts,
    /// Any other protocol number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            1 => IpProtocol::Icmp,
            4 => IpProtocol::IpIp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            0 => IpProtocol::HopByHop,
            41 => IpProtocol::Ipv6,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            58 => IpProtocol::Icmpv6,
            60 => IpProtocol::Ipv6Opts,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::IpIp => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::HopByHop => 0,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("icmp"),
            IpProtocol::IpIp => f.write_str("ipip"),
            IpProtocol::Tcp => f.write_str("tcp"),
            IpProtocol::Udp => f.write_str("udp"),
            IpProtocol::HopByHop => f.write_str("hopopt"),
            IpProtocol::Ipv6 => f.write_str("ipv6"),
            IpProtocol::Ipv6Route => f.write_str("ipv6-route"),
            IpProtocol::Ipv6Frag => f.write_str("ipv6-frag"),
            IpProtocol::Icmpv6 => f.write_str("ipv6-icmp"),
            IpProtocol::Ipv6Opts => f.write_str("ipv6-opts"),
            IpProtocol::Unknown(n) => write!(f, "proto-{n}"),
        }
    }
}

/// Byte-range helpers shared by the `field` modules and accessors.
///
/// These index directly: callers only pass ranges that `check_len` has proven to lie
/// inside the buffer (fixed header fields).
pub(crate) mod bytes {
    use core::ops::{Range, RangeFrom};

    /// A fixed byte range of a header.
    pub type Field = Range<usize>;
    /// The bytes from an offset to the end.
    pub type Rest = RangeFrom<usize>;

    #[inline]
    pub fn read_u16(data: &[u8], field: Field) -> u16 {
        let b = &data[field];
        u16::from_be_bytes([b[0], b[1]])
    }

    #[inline]
    pub fn read_u32(data: &[u8], field: Field) -> u32 {
        let b = &data[field];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    pub fn write_u16(data: &mut [u8], field: Field, value: u16) {
        data[field].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn write_u32(data: &mut [u8], field: Field, value: u32) {
        data[field].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn read_ipv4(data: &[u8], field: Field) -> core::net::Ipv4Addr {
        let b = &data[field];
        core::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// `start..end` clamped to `0..len` so that slicing never panics, whatever length
    /// fields say. A range with `start > end` becomes empty.
    #[inline]
    pub fn clamp(start: usize, end: usize, len: usize) -> Range<usize> {
        let end = end.min(len);
        start.min(end)..end
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn mac_display_and_flags() {
        let mac = MacAddr([0x02, 0x99, 0x00, 0x0a, 0xbc, 0xff]);
        assert_eq!(mac.to_string(), "02:99:00:0a:bc:ff");
        assert!(mac.is_unicast());
        assert!(!mac.is_broadcast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x12]).is_multicast());
        assert_eq!(MacAddr::default(), MacAddr::UNSPECIFIED);
    }

    #[test]
    fn ip_protocol_round_trips_every_number() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(IpProtocol::from(n)), n);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(4), IpProtocol::IpIp);
        assert_eq!(IpProtocol::from(112), IpProtocol::Unknown(112));
    }

    #[test]
    fn wire_error_indices_are_dense() {
        let all = [
            WireError::Truncated,
            WireError::Malformed,
            WireError::BadChecksum,
        ];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        assert_eq!(all.len(), WireError::COUNT);
    }

    #[test]
    fn clamp_never_exceeds_buffer() {
        assert_eq!(bytes::clamp(2, 10, 5), 2..5);
        assert_eq!(bytes::clamp(8, 10, 5), 5..5);
        assert_eq!(bytes::clamp(6, 3, 10), 3..3);
    }
}
