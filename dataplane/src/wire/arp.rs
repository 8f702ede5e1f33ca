//! ARP for Ethernet/IPv4 (RFC 826), the only combination the dataplane speaks.
//!
//! Invariant: after [`ArpPacket::new_checked`] succeeds the buffer holds at least
//! [`ArpPacket::HEADER_LEN`] (28) bytes and the hardware/protocol types and lengths are
//! Ethernet/IPv4, so no accessor can panic and every address field is where the
//! accessors expect it.

use super::bytes::{read_ipv4, read_u16, write_u16, Field};
use super::{MacAddr, Result, WireError};
use core::fmt;
use core::net::Ipv4Addr;

mod field {
    use super::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Hardware type Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4.
const PTYPE_IPV4: u16 = 0x0800;

/// ARP operation code. Unknown values are carried, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1
    Request,
    /// 2
    Reply,
    /// Anything else (e.g. RARP codes).
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

impl fmt::Display for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArpOperation::Request => f.write_str("request"),
            ArpOperation::Reply => f.write_str("reply"),
            ArpOperation::Unknown(n) => write!(f, "op-{n}"),
        }
    }
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const HEADER_LEN: usize = field::TPA.end;

    /// Wraps a buffer without checking it.
    ///
    /// Accessors panic if the buffer is shorter than [`Self::HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after checking its length and that it is Ethernet/IPv4 ARP.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if shorter than 28 bytes; [`WireError::Malformed`] unless
    /// htype = 1, ptype = 0x0800, hlen = 6 and plen = 4.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        packet.check_types()?;
        Ok(packet)
    }

    /// Checks that every accessor is in bounds.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if shorter than 28 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Checks that this is Ethernet/IPv4 ARP. Call after [`check_len`](Self::check_len).
    fn check_types(&self) -> Result<()> {
        if self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == PTYPE_IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
        {
            Ok(())
        } else {
            Err(WireError::Malformed)
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value);
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, op.into());
    }

    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request, reply, or an unknown code carried as is.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: MacAddr,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: MacAddr,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an ARP packet. Safe on an unchecked view: it repeats the checks of
    /// [`ArpPacket::new_checked`].
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Malformed`] as for `new_checked`.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        packet.check_types()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 28.
    pub const fn buffer_len(&self) -> usize {
        field::TPA.end
    }

    /// Writes the whole packet, including htype/ptype/hlen/plen.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

impl fmt::Display for ArpRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ARP {} {}/{} -> {}/{}",
            self.operation,
            self.source_protocol_addr,
            self.source_hardware_addr,
            self.target_protocol_addr,
            self.target_hardware_addr
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// ARP payload of the first frame of `shared/captures/vrrp2-garp.pcap`: keepalived's
    /// gratuitous ARP for VIP 10.99.0.100 (request, target MAC broadcast).
    static GARP: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x99, 0x00, 0x00, 0x00, 0x02, 0x0a,
        0x63, 0x00, 0x64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x63, 0x00, 0x64,
    ];

    fn garp_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: MacAddr([0x02, 0x99, 0, 0, 0, 0x02]),
            source_protocol_addr: Ipv4Addr::new(10, 99, 0, 100),
            target_hardware_addr: MacAddr::BROADCAST,
            target_protocol_addr: Ipv4Addr::new(10, 99, 0, 100),
        }
    }

    #[test]
    fn deconstruct() {
        let packet = ArpPacket::new_checked(&GARP[..]).expect("valid ARP");
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), 0x0800);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), ArpOperation::Request);
        assert_eq!(
            packet.source_hardware_addr(),
            MacAddr([0x02, 0x99, 0, 0, 0, 0x02])
        );
        assert_eq!(packet.source_protocol_addr(), Ipv4Addr::new(10, 99, 0, 100));
        assert_eq!(packet.target_hardware_addr(), MacAddr::BROADCAST);
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(10, 99, 0, 100));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = ArpPacket::new_unchecked(&mut bytes[..]);
        packet.set_hardware_type(1);
        packet.set_protocol_type(0x0800);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(ArpOperation::Request);
        packet.set_source_hardware_addr(MacAddr([0x02, 0x99, 0, 0, 0, 0x02]));
        packet.set_source_protocol_addr(Ipv4Addr::new(10, 99, 0, 100));
        packet.set_target_hardware_addr(MacAddr::BROADCAST);
        packet.set_target_protocol_addr(Ipv4Addr::new(10, 99, 0, 100));
        assert_eq!(bytes, GARP);
    }

    #[test]
    fn parse() {
        let packet = ArpPacket::new_unchecked(&GARP[..]);
        assert_eq!(ArpRepr::parse(&packet), Ok(garp_repr()));
    }

    #[test]
    fn emit() {
        let repr = garp_repr();
        let mut bytes = [0xa5u8; 28];
        assert_eq!(repr.buffer_len(), bytes.len());
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, GARP);
    }

    #[test]
    fn reply_round_trip() {
        let repr = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            source_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
            target_hardware_addr: MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0xef]),
            target_protocol_addr: Ipv4Addr::new(192, 0, 2, 77),
        };
        let mut bytes = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        let packet = ArpPacket::new_checked(&bytes[..]).expect("emitted ARP is valid");
        assert_eq!(ArpRepr::parse(&packet), Ok(repr));
    }

    #[test]
    fn unknown_operation_is_carried() {
        let mut bytes = GARP;
        bytes[6..8].copy_from_slice(&3u16.to_be_bytes());
        let packet = ArpPacket::new_checked(&bytes[..]).expect("valid ARP");
        let repr = ArpRepr::parse(&packet).expect("parses");
        assert_eq!(repr.operation, ArpOperation::Unknown(3));
        let mut out = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..GARP.len() {
            assert_eq!(
                ArpPacket::new_checked(&GARP[..len]).err(),
                Some(WireError::Truncated),
                "len {len}"
            );
            assert_eq!(
                ArpRepr::parse(&ArpPacket::new_unchecked(&GARP[..len])),
                Err(WireError::Truncated)
            );
        }
        // Trailing bytes (Ethernet padding) are fine.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&GARP);
        let packet = ArpPacket::new_checked(&padded[..]).expect("padding is allowed");
        assert_eq!(ArpRepr::parse(&packet), Ok(garp_repr()));
    }

    #[test]
    fn malformed_types() {
        // (offset, value) pairs that make it something other than Ethernet/IPv4.
        for (at, value) in [(1, 6u8), (2, 0x86), (3, 0x06), (4, 8), (5, 16)] {
            let mut bytes = GARP;
            bytes[at] = value;
            assert_eq!(
                ArpPacket::new_checked(&bytes[..]).err(),
                Some(WireError::Malformed),
                "byte {at} = {value}"
            );
            assert_eq!(
                ArpRepr::parse(&ArpPacket::new_unchecked(&bytes[..])),
                Err(WireError::Malformed)
            );
        }
    }
}
