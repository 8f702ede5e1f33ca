//! ICMPv6 messages (RFC 4443) and Neighbor Discovery (RFC 4861):
//! neighbor solicitations and advertisements with their link-layer address
//! options.
//!
//! Invariant: after [`Icmpv6Packet::new_checked`] succeeds the buffer holds
//! at least the 8-byte header (the message is the whole buffer), so no
//! accessor can panic; the ND accessors return `None` when the message is
//! not NS/NA or too short for its target, and [`NdOptions`] stops at the
//! first truncated or zero-length option (RFC 4861 §4.6: a zero length is
//! invalid) without reading past the buffer.

use super::bytes::{read_u16, read_u32, write_u16, write_u32, Field};
use super::{checksum, IpProtocol, MacAddr, Result, WireError};
use core::net::Ipv6Addr;

mod field {
    use super::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// Type-specific word: MTU (packet too big), pointer, ND flags, …
    pub const REST: Field = 4..8;
    /// NS/NA: the target address.
    pub const TARGET: Field = 8..24;
}

/// Length of the ICMPv6 header.
pub const HEADER_LEN: usize = field::REST.end;
/// Length of an NS or NA without options.
pub const ND_LEN: usize = field::TARGET.end;

pub const DEST_UNREACHABLE: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAMETER_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;

/// ND option: source link-layer address.
pub const OPT_SOURCE_LLADDR: u8 = 1;
/// ND option: target link-layer address.
pub const OPT_TARGET_LLADDR: u8 = 2;

/// NA flags (in the first byte of the type-specific word).
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;

/// A read/write view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// Accessors panic if the buffer is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Icmpv6Packet<T> {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Icmpv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the length every accessor relies on.
    ///
    /// # Errors
    /// As for [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The type-specific word (the MTU of a "packet too big").
    pub fn rest(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST)
    }

    /// Whether the message is an error (types below 128) quoting a packet.
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Everything after the 8-byte header (for errors: the quoted packet).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }

    /// Whether the message is a neighbor solicitation or advertisement
    /// long enough to hold its target.
    fn is_nd(&self) -> bool {
        matches!(self.msg_type(), NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT)
            && self.buffer.as_ref().len() >= ND_LEN
    }

    /// The target address of an NS or NA.
    pub fn nd_target(&self) -> Option<Ipv6Addr> {
        if !self.is_nd() {
            return None;
        }
        let b: [u8; 16] = self.buffer.as_ref().get(field::TARGET)?.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    /// The R/S/O flags of an NA (`NA_*` bits).
    pub fn na_flags(&self) -> Option<u8> {
        (self.msg_type() == NEIGHBOR_ADVERT && self.is_nd())
            .then(|| self.buffer.as_ref()[field::REST.start])
    }

    /// The options of an NS or NA (empty for other messages).
    pub fn nd_options(&self) -> NdOptions<'_> {
        let data = if self.is_nd() {
            self.buffer.as_ref().get(ND_LEN..).unwrap_or_default()
        } else {
            &[]
        };
        NdOptions { data }
    }

    /// The first link-layer address option of type `kind`
    /// ([`OPT_SOURCE_LLADDR`] or [`OPT_TARGET_LLADDR`]) of an NS or NA.
    pub fn nd_lladdr(&self, kind: u8) -> Option<MacAddr> {
        self.nd_options()
            .find(|o| o.kind == kind)
            .and_then(|o| o.data.get(..6))
            .map(MacAddr::from_bytes)
    }

    fn full_sum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        checksum::pseudo_v6(src, dst, IpProtocol::Icmpv6, len) + checksum::sum(data)
    }

    /// Whether the checksum is correct for a message from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::fold(self.full_sum(src, dst)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the type-specific word.
    pub fn set_rest(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REST, value);
    }

    /// Sets the target of an NS/NA; false (nothing written) when the buffer
    /// is shorter than [`ND_LEN`].
    pub fn set_nd_target(&mut self, addr: Ipv6Addr) -> bool {
        match self.buffer.as_mut().get_mut(field::TARGET) {
            Some(b) => {
                b.copy_from_slice(&addr.octets());
                true
            }
            None => false,
        }
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or_default()
    }

    /// Computes and stores the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.full_sum(src, dst));
        self.set_checksum(c);
    }
}

/// One ND option: its type and its data (without the type/length bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// The options of an NS/NA, in order; ends at the first invalid one.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = NdOption<'a>;

    fn next(&mut self) -> Option<NdOption<'a>> {
        let (&kind, rest) = self.data.split_first()?;
        let units = usize::from(*rest.first()?);
        let len = units * 8;
        if units == 0 || len > self.data.len() {
            self.data = &[];
            return None;
        }
        let option = NdOption {
            kind,
            data: &self.data[2..len],
        };
        self.data = &self.data[len..];
        Some(option)
    }
}

/// Writes an ND link-layer address option (8 bytes) into `buf`; false
/// when `buf` is shorter.
pub fn emit_lladdr_option(buf: &mut [u8], kind: u8, mac: MacAddr) -> bool {
    let Some(b) = buf.get_mut(..8) else {
        return false;
    };
    b[0] = kind;
    b[1] = 1;
    b[2..8].copy_from_slice(mac.as_bytes());
    true
}

/// The addresses and ports of the IPv6 packet an ICMPv6 error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol (past any extension headers).
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// Where the quoted upper-layer header starts in the quote.
    pub l4_offset: usize,
}

impl Quote6 {
    /// Reads a quoted packet (which may be cut short after the ports).
    ///
    /// # Errors
    /// [`WireError::Truncated`] when the quote ends before the ports;
    /// [`WireError::Malformed`] when it is not IPv6, or quotes a fragment or
    /// an over-long extension header chain.
    pub fn parse(quote: &[u8]) -> Result<Quote6> {
        if quote.len() < super::ipv6::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let ip = super::Ipv6Packet::new_unchecked(quote);
        if ip.version() != 6 {
            return Err(WireError::Malformed);
        }
        let (protocol, at) = match ip.upper_layer()? {
            super::Ipv6Upper::Upper { protocol, offset } => (protocol, offset),
            super::Ipv6Upper::Fragment => return Err(WireError::Malformed),
        };
        let ports = quote.get(at..at + 4).ok_or(WireError::Truncated)?;
        Ok(Quote6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            protocol: protocol.into(),
            src_port: u16::from_be_bytes([ports[0], ports[1]]),
            dst_port: u16::from_be_bytes([ports[2], ports[3]]),
            l4_offset: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Type, PacketBuilder, SlicedPacket, TransportSlice};

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 100);
    const MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 2]);

    /// An NS for DST from SRC with a source link-layer option, as a
    /// (checksummed) ICMPv6 message built by etherparse.
    fn solicit() -> Vec<u8> {
        let mut body = vec![0u8; 16 + 8];
        body[..16].copy_from_slice(&DST.octets());
        assert!(emit_lladdr_option(&mut body[16..], OPT_SOURCE_LLADDR, MAC));
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(SRC.octets(), DST.octets(), 255)
            .icmpv6(Icmpv6Type::Unknown {
                type_u8: NEIGHBOR_SOLICIT,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut frame, &body)
            .expect("build");
        frame[14 + 40..].to_vec()
    }

    #[test]
    fn deconstruct_neighbor_solicitation() {
        let msg = solicit();
        let p = Icmpv6Packet::new_checked(&msg[..]).expect("valid");
        assert_eq!(p.msg_type(), NEIGHBOR_SOLICIT);
        assert!(!p.is_error());
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv6Addr::LOCALHOST));
        assert_eq!(p.nd_target(), Some(DST));
        assert_eq!(p.na_flags(), None);
        assert_eq!(p.nd_lladdr(OPT_SOURCE_LLADDR), Some(MAC));
        assert_eq!(p.nd_lladdr(OPT_TARGET_LLADDR), None);
    }

    #[test]
    fn construct_neighbor_advertisement_checked_by_etherparse() {
        let mut msg = vec![0u8; ND_LEN + 8];
        let mut p = Icmpv6Packet::new_unchecked(&mut msg[..]);
        p.set_msg_type(NEIGHBOR_ADVERT);
        p.set_rest(u32::from(NA_SOLICITED | NA_OVERRIDE) << 24);
        assert!(p.set_nd_target(DST));
        assert!(emit_lladdr_option(
            &mut p.payload_mut()[16..],
            OPT_TARGET_LLADDR,
            MAC
        ));
        p.fill_checksum(DST, SRC);
        assert_eq!(p.na_flags(), Some(NA_SOLICITED | NA_OVERRIDE));
        assert_eq!(p.nd_lladdr(OPT_TARGET_LLADDR), Some(MAC));
        // etherparse agrees on the checksum and the NA fields.
        let mut frame = Vec::new();
        etherparse::Ethernet2Header {
            source: [2, 0, 0, 0, 0, 1],
            destination: [2, 0, 0, 0, 0, 2],
            ether_type: etherparse::EtherType::IPV6,
        }
        .write(&mut frame)
        .expect("eth");
        etherparse::Ipv6Header {
            payload_length: msg.len() as u16,
            next_header: etherparse::IpNumber::IPV6_ICMP,
            hop_limit: 255,
            source: DST.octets(),
            destination: SRC.octets(),
            ..Default::default()
        }
        .write(&mut frame)
        .expect("ipv6");
        frame.extend_from_slice(&msg);
        let s = SlicedPacket::from_ethernet(&frame).expect("etherparse");
        let Some(TransportSlice::Icmpv6(icmp)) = s.transport else {
            panic!("not icmpv6")
        };
        let want = icmp
            .header()
            .icmp_type
            .calc_checksum(DST.octets(), SRC.octets(), icmp.payload())
            .expect("csum");
        assert_eq!(want, icmp.checksum());
        match icmp.header().icmp_type {
            Icmpv6Type::Unknown {
                type_u8: NEIGHBOR_ADVERT,
                code_u8: 0,
                bytes5to8,
            } => assert_eq!(bytes5to8, [NA_SOLICITED | NA_OVERRIDE, 0, 0, 0]),
            other => panic!("etherparse sees {other:?}"),
        }
    }

    #[test]
    fn packet_too_big_carries_mtu_and_quote() {
        let quoted = [0x60u8; 48];
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6(SRC.octets(), DST.octets(), 64)
            .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut frame, &quoted)
            .expect("build");
        let p = Icmpv6Packet::new_checked(&frame[54..]).expect("valid");
        assert!(p.is_error());
        assert_eq!((p.msg_type(), p.rest()), (PACKET_TOO_BIG, 1280));
        assert_eq!(p.payload(), &quoted[..]);
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.nd_target(), None);
        assert_eq!(p.nd_options().count(), 0);
    }

    #[test]
    fn truncated_and_invalid_options() {
        let msg = solicit();
        for n in 0..HEADER_LEN {
            assert_eq!(
                Icmpv6Packet::new_checked(&msg[..n]).err(),
                Some(WireError::Truncated)
            );
        }
        // Cut inside the target: no target, no options.
        let p = Icmpv6Packet::new_checked(&msg[..20]).expect("header");
        assert_eq!((p.nd_target(), p.nd_options().count()), (None, 0));
        // Cut inside the option: no option.
        let p = Icmpv6Packet::new_checked(&msg[..ND_LEN + 5]).expect("header");
        assert_eq!(p.nd_options().count(), 0);
        // A zero-length option ends the list.
        let mut bad = msg.clone();
        bad[ND_LEN + 1] = 0;
        let p = Icmpv6Packet::new_checked(&bad[..]).expect("header");
        assert_eq!(p.nd_options().count(), 0);
    }

    mod prop {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(mut data in vec(any::<u8>(), 0..80), nd in any::<bool>()) {
                if nd && !data.is_empty() {
                    data[0] = NEIGHBOR_SOLICIT;
                }
                if let Ok(mut p) = Icmpv6Packet::new_checked(&mut data[..]) {
                    let _ = (p.msg_type(), p.code(), p.rest(), p.is_error(), p.payload().len());
                    let _ = (p.nd_target(), p.na_flags(), p.nd_lladdr(OPT_SOURCE_LLADDR));
                    prop_assert!(p.nd_options().count() <= 80 / 8);
                    let _ = p.set_nd_target(DST);
                    p.fill_checksum(SRC, DST);
                    prop_assert!(p.verify_checksum(SRC, DST));
                }
            }

            #[test]
            fn checksum_matches_etherparse(
                rest in any::<[u8; 4]>(), payload in vec(any::<u8>(), 0..64),
            ) {
                // An unknown type: etherparse keeps the second word as sent.
                let mut msg = vec![200, 7, 0, 0];
                msg.extend_from_slice(&rest);
                msg.extend_from_slice(&payload);
                let mut p = Icmpv6Packet::new_checked(&mut msg[..]).expect("len");
                p.fill_checksum(SRC, DST);
                let ours = p.checksum();
                let s = etherparse::Icmpv6Slice::from_slice(&msg).expect("etherparse");
                let want = s
                    .header()
                    .icmp_type
                    .calc_checksum(SRC.octets(), DST.octets(), s.payload())
                    .expect("csum");
                prop_assert_eq!(ours, want);
            }
        }
    }
}
