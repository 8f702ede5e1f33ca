//! UDP datagrams (RFC 768).
//!
//! Invariant: after [`UdpPacket::new_checked`] succeeds the buffer holds at least 8
//! bytes and `8 ≤ len ≤ buffer.len()`, so no accessor can panic.
//! [`UdpPacket::payload`] and the checksum routines also clamp to the buffer, so they
//! stay panic-free after a caller writes an inconsistent length.
//!
//! Checksum 0 means "no checksum" over IPv4; a computed 0 is sent as `0xffff`.

use super::bytes::{clamp, read_u16, write_u16, Field};
use super::{checksum, IpProtocol, Result, WireError};
use core::net::Ipv4Addr;

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it.
    ///
    /// Fixed-field accessors panic if the buffer is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than 8 bytes or than the length
    /// field; [`WireError::Malformed`] if the length field is below 8.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the lengths every accessor relies on.
    ///
    /// # Errors
    /// As for [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<()> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if buffer_len < len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field: header + payload.
    #[allow(clippy::len_without_is_empty)] // a protocol field, not a container length
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Checksum as stored (0 = none).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram as the length field delimits it, clamped to the buffer.
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(0, usize::from(self.len()), data.len())]
    }

    /// Payload: `8..len`, so trailing bytes in the buffer are excluded.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(HEADER_LEN, usize::from(self.len()), data.len())]
    }

    fn full_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        checksum::pseudo_v4(src, dst, IpProtocol::Udp, self.len()) + checksum::sum(self.datagram())
    }

    /// Whether the checksum is correct for a datagram from `src` to `dst`. A checksum of
    /// 0 means the sender did not compute one and is accepted.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || checksum::fold(self.full_sum(src, dst)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the stored checksum (see [`adjust_checksum`] for NAT).
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes the checksum for a datagram from `src` to `dst`; a computed 0 is stored
    /// as `0xffff`.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let value = match checksum::finish(self.full_sum(src, dst)) {
            0 => 0xffff,
            other => other,
        };
        self.set_checksum(value);
    }

    /// Mutable payload (`8..len`, clamped to the buffer).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        let data = self.buffer.as_mut();
        let range = clamp(HEADER_LEN, len, data.len());
        &mut data[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// [`checksum::adjust`] with UDP's rules: a datagram without checksum (0) keeps none,
/// and an adjusted 0 is stored as `0xffff`.
#[inline]
pub fn adjust_checksum(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    let d = checksum::delta(checksum::sum(old).into(), checksum::sum(new).into());
    adjust_checksum_by(checksum, u32::from(checksum::fold64(d)))
}

/// [`adjust_checksum`] by a precomputed difference, folded (see
/// [`checksum::adjust_folded`]).
#[inline(always)]
pub fn adjust_checksum_by(checksum: u16, delta: u32) -> u16 {
    if checksum == 0 {
        return 0;
    }
    match checksum::adjust_folded(checksum, delta) {
        0 => 0xffff,
        other => other,
    }
}

#[cfg(test)]
mod test {
    use super::super::Ipv4Packet;
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);

    /// A DNS query for example.com A, built by hand, checksums computed with an
    /// independent script: 10.0.0.1:53000 → 10.0.0.53:53. The 29-byte payload has odd
    /// length, exercising the checksum's padding rule.
    static DNS_DATAGRAM: [u8; 57] = [
        // IPv4: id 0x0bad, DF, TTL 64, checksum 0x1ad2
        0x45, 0x00, 0x00, 0x39, 0x0b, 0xad, 0x40, 0x00, 0x40, 0x11, 0x1a, 0xd2, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x35, //
        // UDP: len 37, checksum 0xa0f5
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0xa0, 0xf5, //
        // DNS
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78,
        0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    fn dns_udp() -> &'static [u8] {
        &DNS_DATAGRAM[20..]
    }

    #[test]
    fn deconstruct() {
        let packet = UdpPacket::new_checked(dns_udp()).expect("valid UDP");
        assert_eq!(packet.src_port(), 53000);
        assert_eq!(packet.dst_port(), 53);
        assert_eq!(packet.len(), 37);
        assert_eq!(packet.checksum(), 0xa0f5);
        assert_eq!(packet.payload(), &DNS_DATAGRAM[28..]);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, DST));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 37];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(53000);
        packet.set_dst_port(53);
        packet.set_len(37);
        packet.payload_mut().copy_from_slice(&DNS_DATAGRAM[28..]);
        packet.fill_checksum(SRC, DST);
        assert_eq!(&bytes[..], dns_udp());
    }

    #[test]
    fn trailing_bytes_are_not_payload() {
        let mut bytes = [0u8; 45];
        bytes[..37].copy_from_slice(dns_udp());
        let packet = UdpPacket::new_checked(&bytes[..]).expect("valid UDP");
        assert_eq!(packet.payload(), &DNS_DATAGRAM[28..]);
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut bytes = [0u8; 37];
        bytes.copy_from_slice(dns_udp());
        let mut packet = UdpPacket::new_checked(&mut bytes[..]).expect("valid UDP");
        packet.set_checksum(0);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(packet.verify_checksum(DST, SRC));
        assert_eq!(adjust_checksum(0, &[1, 2], &[3, 4]), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the payload word so that the full sum is 0xffff (checksum 0).
        let mut bytes = [0u8; 10];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_len(10);
        let partial =
            checksum::pseudo_v4(SRC, DST, IpProtocol::Udp, 10) + checksum::sum(&[0, 0, 0, 10]);
        let word = !checksum::fold(partial);
        packet.payload_mut().copy_from_slice(&word.to_be_bytes());
        packet.fill_checksum(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(SRC, DST));
        let (hdr, payload) = etherparse::UdpHeader::from_slice(&bytes).expect("parses");
        assert_eq!(
            hdr.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload)
                .expect("small"),
            0xffff
        );
    }

    #[test]
    fn truncated_at_every_length() {
        let udp = dns_udp();
        for len in 0..udp.len() {
            assert_eq!(
                UdpPacket::new_checked(&udp[..len]).err(),
                Some(WireError::Truncated),
                "len {len}"
            );
        }
        assert!(UdpPacket::new_checked(udp).is_ok());
        for len in 0..=DNS_DATAGRAM.len() {
            if let Ok(ip) = Ipv4Packet::new_checked(&DNS_DATAGRAM[..len]) {
                assert!(UdpPacket::new_checked(ip.payload()).is_ok());
            }
        }
    }

    #[test]
    fn malformed_length() {
        for len in 0u16..8 {
            let mut bytes = [0u8; 37];
            bytes.copy_from_slice(dns_udp());
            bytes[4..6].copy_from_slice(&len.to_be_bytes());
            assert_eq!(
                UdpPacket::new_checked(&bytes[..]).err(),
                Some(WireError::Malformed),
                "len field {len}"
            );
        }
    }

    #[test]
    fn setters_cannot_break_accessors() {
        let mut bytes = [0u8; 37];
        bytes.copy_from_slice(dns_udp());
        let mut packet = UdpPacket::new_checked(&mut bytes[..]).expect("valid UDP");
        packet.set_len(u16::MAX);
        assert_eq!(packet.payload().len(), 29);
        packet.fill_checksum(SRC, DST);
        packet.set_len(3);
        assert_eq!(packet.payload(), &[] as &[u8]);
        assert_eq!(packet.payload_mut().len(), 0);
        let _ = packet.verify_checksum(SRC, DST);
    }

    #[test]
    fn agrees_with_etherparse() {
        let (hdr, payload) = etherparse::UdpHeader::from_slice(dns_udp()).expect("parses");
        assert_eq!(
            hdr.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload)
                .expect("small"),
            0xa0f5
        );

        let builder =
            etherparse::PacketBuilder::ipv4([198, 51, 100, 1], [198, 51, 100, 2], 3).udp(5353, 123);
        let mut datagram = Vec::new();
        builder
            .write(&mut datagram, b"odd!!")
            .expect("write to Vec");
        let ip = Ipv4Packet::new_checked(&datagram[..]).expect("valid IPv4");
        let udp = UdpPacket::new_checked(ip.payload()).expect("valid UDP");
        assert_ne!(udp.checksum(), 0);
        assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(udp.payload(), b"odd!!");
    }

    mod prop {
        use super::super::super::Ipv4Repr;
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        fn addr() -> impl Strategy<Value = Ipv4Addr> {
            any::<[u8; 4]>().prop_map(Ipv4Addr::from)
        }

        fn datagram(src: Ipv4Addr, dst: Ipv4Addr, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
            let repr = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: IpProtocol::Udp,
                payload_len: HEADER_LEN + payload.len(),
                ttl: 64,
            };
            let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut ip);
            let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
            udp.set_src_port(ports.0);
            udp.set_dst_port(ports.1);
            udp.set_len(u16::try_from(HEADER_LEN + payload.len()).expect("small"));
            udp.payload_mut().copy_from_slice(payload);
            udp.fill_checksum(src, dst);
            buf
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(mut data in vec(any::<u8>(), 0..40)) {
                if let Some(b) = data.get_mut(4) {
                    *b = 0; // keep the length field small enough to pass sometimes
                }
                if let Ok(mut packet) = UdpPacket::new_checked(&mut data[..]) {
                    let _ = (packet.src_port(), packet.dst_port(), packet.checksum());
                    prop_assert_eq!(packet.payload().len() + HEADER_LEN, usize::from(packet.len()));
                    packet.fill_checksum(SRC, DST);
                    prop_assert!(packet.checksum() != 0);
                    prop_assert!(packet.verify_checksum(SRC, DST));
                }
            }

            /// RFC 1624 with UDP's zero rule: NAT-adjusting equals recomputing.
            #[test]
            fn nat_adjust_equals_recompute(
                src in addr(), dst in addr(), new_src in addr(), new_dst in addr(),
                ports in any::<(u16, u16)>(), new_ports in any::<(u16, u16)>(),
                payload in vec(any::<u8>(), 0..64),
            ) {
                let mut buf = datagram(src, dst, ports, &payload);
                let mut udp = UdpPacket::new_checked(&mut buf[20..]).expect("valid UDP");
                let mut sum = udp.checksum();
                sum = adjust_checksum(sum, &src.octets(), &new_src.octets());
                sum = adjust_checksum(sum, &dst.octets(), &new_dst.octets());
                sum = adjust_checksum(sum, &ports.0.to_be_bytes(), &new_ports.0.to_be_bytes());
                sum = adjust_checksum(sum, &ports.1.to_be_bytes(), &new_ports.1.to_be_bytes());
                udp.set_src_port(new_ports.0);
                udp.set_dst_port(new_ports.1);
                udp.set_checksum(sum);
                prop_assert!(udp.verify_checksum(new_src, new_dst));
                udp.fill_checksum(new_src, new_dst);
                prop_assert_eq!(sum, udp.checksum());
            }

            #[test]
            fn checksum_matches_etherparse(
                src in addr(), dst in addr(), ports in any::<(u16, u16)>(),
                payload in vec(any::<u8>(), 0..64),
            ) {
                let buf = datagram(src, dst, ports, &payload);
                let (hdr, rest) = etherparse::UdpHeader::from_slice(&buf[20..]).expect("parses");
                let theirs = hdr
                    .calc_checksum_ipv4_raw(src.octets(), dst.octets(), rest)
                    .expect("small");
                prop_assert_eq!(theirs, hdr.checksum);
            }
        }
    }
}
