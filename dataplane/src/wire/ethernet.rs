//! Ethernet II frames (no FCS: NICs strip it).
//!
//! Invariant: after [`EthernetFrame::new_checked`] succeeds the buffer holds at least
//! [`EthernetFrame::HEADER_LEN`] bytes, so no accessor can panic.

use super::bytes::{read_u16, write_u16, Field, Rest};
use super::{MacAddr, Result, WireError};
use core::fmt;

mod field {
    use super::{Field, Rest};

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// The EtherType of a frame. Unknown values are carried, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800
    Ipv4,
    /// 0x0806
    Arp,
    /// 0x86dd
    Ipv6,
    /// 0x8100 (802.1Q tag, see [`super::vlan`])
    Vlan,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("ipv4"),
            EtherType::Arp => f.write_str("arp"),
            EtherType::Ipv6 => f.write_str("ipv6"),
            EtherType::Vlan => f.write_str("vlan"),
            EtherType::Unknown(n) => write!(f, "0x{n:04x}"),
        }
    }
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the Ethernet II header.
    pub const HEADER_LEN: usize = field::PAYLOAD.start;

    /// Wraps a buffer without checking it.
    ///
    /// Accessors panic if the buffer is shorter than [`Self::HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than the header.
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that every accessor is in bounds.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than the header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source address.
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// EtherType.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the header (may include Ethernet padding; the IPv4 view excludes
    /// it using its total length).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.into());
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// First frame of `shared/captures/vrrp2-garp.pcap`: a gratuitous ARP.
    static GARP_FRAME: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x99, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x99, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x63,
        0x00, 0x64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x63, 0x00, 0x64,
    ];

    #[test]
    fn deconstruct() {
        let frame = EthernetFrame::new_checked(&GARP_FRAME[..]).expect("valid frame");
        assert_eq!(frame.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(frame.src_addr(), MacAddr([0x02, 0x99, 0, 0, 0, 0x02]));
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.payload(), &GARP_FRAME[14..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 42];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(MacAddr::BROADCAST);
        frame.set_src_addr(MacAddr([0x02, 0x99, 0, 0, 0, 0x02]));
        frame.set_ethertype(EtherType::Arp);
        frame.payload_mut().copy_from_slice(&GARP_FRAME[14..]);
        assert_eq!(&frame.into_inner()[..], &GARP_FRAME[..]);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..EthernetFrame::<&[u8]>::HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&GARP_FRAME[..len]).err(),
                Some(WireError::Truncated),
                "len {len}"
            );
        }
        for len in EthernetFrame::<&[u8]>::HEADER_LEN..=GARP_FRAME.len() {
            let frame = EthernetFrame::new_checked(&GARP_FRAME[..len]).expect("long enough");
            assert_eq!(frame.payload().len(), len - 14);
        }
    }

    #[test]
    fn ethertype_round_trips() {
        for n in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88cc, 0] {
            assert_eq!(u16::from(EtherType::from(n)), n);
        }
        assert_eq!(EtherType::from(0x88cc), EtherType::Unknown(0x88cc));
    }

    #[test]
    fn agrees_with_etherparse() {
        let (hdr, rest) =
            etherparse::Ethernet2Header::from_slice(&GARP_FRAME).expect("etherparse parses");
        let frame = EthernetFrame::new_checked(&GARP_FRAME[..]).expect("valid frame");
        assert_eq!(frame.dst_addr().0, hdr.destination);
        assert_eq!(frame.src_addr().0, hdr.source);
        assert_eq!(u16::from(frame.ethertype()), hdr.ether_type.0);
        assert_eq!(frame.payload(), rest);
    }
}
