//! IPv4 (RFC 791).
//!
//! Invariant: after [`Ipv4Packet::new_checked`] succeeds the version is 4, the buffer
//! holds at least 20 bytes, `20 ≤ header_len ≤ total_len ≤ buffer.len()`, so no
//! accessor can panic. The variable-length accessors ([`Ipv4Packet::payload`],
//! [`Ipv4Packet::options`], the checksum routines) also clamp to the buffer, so they stay
//! panic-free even after a caller writes an inconsistent `total_len` or `header_len`.
//!
//! `payload()` ends at `total_len`, so Ethernet padding after a short datagram is never
//! mistaken for transport payload.

use super::bytes::{clamp, read_ipv4, read_u16, write_u16, Field};
use super::{checksum, IpProtocol, Result, WireError};
use core::fmt;
use core::net::Ipv4Addr;

mod field {
    use super::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The mask of a `len`-bit IPv4 prefix (a longer `len` counts as 32).
pub fn netmask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

/// A read/write view of an IPv4 datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// Fixed-field accessors panic if the buffer is shorter than 20 bytes.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) and a version check.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than the header or than
    /// `total_len`; [`WireError::Malformed`] if the version is not 4, IHL < 5 or
    /// `total_len < header_len`. The checksum is not verified here (see
    /// [`verify_checksum`](Self::verify_checksum) and [`Ipv4Repr::parse`]).
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(WireError::Malformed);
        }
        Ok(packet)
    }

    /// Checks the lengths every accessor relies on.
    ///
    /// # Errors
    /// As for [`new_checked`](Self::new_checked), except the version check.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len < header_len {
            return Err(WireError::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(WireError::Malformed);
        }
        if len < total_len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 after `new_checked`).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), 20..=60.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN byte (formerly TOS).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of the datagram (header + payload).
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (MF set or offset ≠ 0): its transport header may be
    /// absent or incomplete.
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Whether the header checksum is correct.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        let header = self.header();
        // The common option-less header: a fixed-size sum the compiler
        // unrolls into five adds.
        match <&[u8; HEADER_LEN]>::try_from(header) {
            Ok(h) => checksum::header20_ok(h),
            Err(_) => checksum::fold(checksum::sum(header)) == 0xffff,
        }
    }

    /// The header, options included (clamped to the buffer).
    fn header(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(0, self.header_len(), data.len())]
    }

    /// Header options (bytes 20..header_len), uninterpreted.
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(HEADER_LEN, self.header_len(), data.len())]
    }

    /// The payload: `header_len..total_len`, so Ethernet padding is excluded.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let range = clamp(self.header_len(), usize::from(self.total_len()), data.len());
        &data[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version and header length together (`header_len` in bytes, a multiple of 4).
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        // IHL is 4 bits; masking keeps an out-of-range argument from touching the version.
        let ihl = ((header_len / 4) & 0x0f) as u8;
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ihl;
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    fn set_flags_offset(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    /// Clears the three flag bits (reserved, DF, MF), keeping the fragment offset.
    pub fn clear_flags(&mut self) {
        let v = self.flags_offset() & OFFSET_MASK;
        self.set_flags_offset(v);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, value: bool) {
        let v = self.flags_offset() & !FLAG_DF;
        self.set_flags_offset(if value { v | FLAG_DF } else { v });
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, value: bool) {
        let v = self.flags_offset() & !FLAG_MF;
        self.set_flags_offset(if value { v | FLAG_MF } else { v });
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let v = self.flags_offset() & !OFFSET_MASK;
        self.set_flags_offset(v | (bytes >> 3));
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Sets the stored checksum (e.g. after [`checksum::adjust`]).
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::sum(self.header());
        self.set_checksum(checksum::finish(sum));
    }

    /// Mutable options (clamped to the buffer).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        let data = self.buffer.as_mut();
        let range = clamp(HEADER_LEN, header_len, data.len());
        &mut data[range]
    }

    /// Mutable payload: `header_len..total_len`, clamped to the buffer.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        let data = self.buffer.as_mut();
        let range = clamp(start, end, data.len());
        &mut data[range]
    }

    /// Writes a 20-byte header for `repr` (see [`Ipv4Repr::emit`]).
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes.
    pub fn emit_header(&mut self, repr: &Ipv4Repr) {
        self.set_version_and_header_len(4, HEADER_LEN);
        self.set_dscp_ecn(0);
        self.set_total_len(repr.total_len());
        self.set_ident(0);
        self.set_flags_offset(FLAG_DF);
        self.set_ttl(repr.ttl);
        self.set_protocol(repr.protocol);
        self.set_src_addr(repr.src_addr);
        self.set_dst_addr(repr.dst_addr);
        self.fill_checksum();
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The parts of an IPv4 header the engine builds packets from.
///
/// Lossy on purpose: DSCP/ECN, identification, fragmentation and options are not
/// represented; [`emit`](Self::emit) writes a plain 20-byte header with DF set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length in bytes (≤ 65515).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Reads a datagram's header. Safe on an unchecked view: it repeats the checks of
    /// [`Ipv4Packet::new_checked`].
    ///
    /// # Errors
    /// As for `new_checked`, plus [`WireError::BadChecksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(WireError::Malformed);
        }
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes: 20.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// `20 + payload_len`, saturating at `u16::MAX` (never reached by a valid repr).
    fn total_len(&self) -> u16 {
        u16::try_from(HEADER_LEN + self.payload_len).unwrap_or(u16::MAX)
    }

    /// Writes a 20-byte header: version 4, DSCP 0, ident 0, DF set, checksum filled.
    /// The payload is not touched.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.emit_header(self);
    }
}

impl fmt::Display for Ipv4Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv4 {} -> {} {} len={} ttl={}",
            self.src_addr, self.dst_addr, self.protocol, self.payload_len, self.ttl
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn netmasks_of_every_prefix_length() {
        assert_eq!(netmask(0), 0);
        assert_eq!(netmask(1), 0x8000_0000);
        assert_eq!(netmask(24), 0xffff_ff00);
        assert_eq!(netmask(32), u32::MAX);
        // Longer than the family's counts as a host.
        assert_eq!(netmask(33), u32::MAX);
        for len in 0..=32u8 {
            assert_eq!(netmask(len).count_ones(), u32::from(len));
            assert_eq!(netmask(len).leading_ones(), u32::from(len));
        }
    }

    /// IPv4 part of the first frame of `shared/captures/vrrp2-advert.pcap`: a VRRPv2
    /// advertisement 10.99.0.1 → 224.0.0.18, TOS 0xc0, ident 1, TTL 255, proto 112.
    static VRRP_ADVERT: [u8; 40] = [
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x2e, 0x0a, 0x63, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12, // header
        0x21, 0x33, 0x96, 0x01, 0x00, 0x01, 0x3e, 0x03, 0x0a, 0x63, 0x00, 0x64, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, // VRRP
    ];

    /// A header we emit: 192.0.2.1 → 198.51.100.7, TCP, 12 bytes payload, TTL 64, DF.
    /// Checksum 0x4e9c computed independently (see `agrees_with_etherparse`).
    static EMITTED: [u8; 20] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x4e, 0x9c, 0xc0, 0x00, 0x02,
        0x01, 0xc6, 0x33, 0x64, 0x07,
    ];

    fn emitted_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: IpProtocol::Tcp,
            payload_len: 12,
            ttl: 64,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv4Packet::new_checked(&VRRP_ADVERT[..]).expect("valid IPv4");
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0xc0);
        assert_eq!(packet.total_len(), 40);
        assert_eq!(packet.ident(), 1);
        assert!(!packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 255);
        assert_eq!(packet.protocol(), IpProtocol::Unknown(112));
        assert_eq!(packet.checksum(), 0xd02e);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(224, 0, 0, 18));
        assert!(packet.verify_checksum());
        assert_eq!(packet.options(), &[] as &[u8]);
        assert_eq!(packet.payload(), &VRRP_ADVERT[20..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 40];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version_and_header_len(4, 20);
        packet.set_dscp_ecn(0xc0);
        packet.set_total_len(40);
        packet.set_ident(1);
        packet.clear_flags();
        packet.set_dont_frag(false);
        packet.set_more_frags(false);
        packet.set_frag_offset(0);
        packet.set_ttl(255);
        packet.set_protocol(IpProtocol::Unknown(112));
        packet.set_src_addr(Ipv4Addr::new(10, 99, 0, 1));
        packet.set_dst_addr(Ipv4Addr::new(224, 0, 0, 18));
        packet.payload_mut().copy_from_slice(&VRRP_ADVERT[20..]);
        packet.fill_checksum();
        assert_eq!(bytes, VRRP_ADVERT);
    }

    #[test]
    fn parse() {
        let repr = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&VRRP_ADVERT[..]));
        assert_eq!(
            repr,
            Ok(Ipv4Repr {
                src_addr: Ipv4Addr::new(10, 99, 0, 1),
                dst_addr: Ipv4Addr::new(224, 0, 0, 18),
                protocol: IpProtocol::Unknown(112),
                payload_len: 20,
                ttl: 255,
            })
        );
    }

    #[test]
    fn emit() {
        let repr = emitted_repr();
        let mut bytes = [0xa5u8; 32];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[..repr.buffer_len()], &EMITTED[..]);
        let packet = Ipv4Packet::new_checked(&bytes[..]).expect("emitted header is valid");
        assert!(packet.dont_frag());
        assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
        assert_eq!(packet.payload().len(), 12);
    }

    #[test]
    fn padding_is_not_payload() {
        // A 40-byte datagram in a minimum-size Ethernet payload of 46 bytes.
        let mut padded = [0u8; 46];
        padded[..40].copy_from_slice(&VRRP_ADVERT);
        let packet = Ipv4Packet::new_checked(&padded[..]).expect("padding is allowed");
        assert_eq!(packet.payload(), &VRRP_ADVERT[20..]);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..VRRP_ADVERT.len() {
            let bytes = &VRRP_ADVERT[..len];
            assert_eq!(
                Ipv4Packet::new_checked(bytes).err(),
                Some(WireError::Truncated),
                "len {len}"
            );
            assert_eq!(
                Ipv4Repr::parse(&Ipv4Packet::new_unchecked(bytes)),
                Err(WireError::Truncated)
            );
        }
        assert!(Ipv4Packet::new_checked(&VRRP_ADVERT[..]).is_ok());
    }

    #[test]
    fn truncated_options() {
        // IHL 15 (60 bytes) in a 40-byte buffer.
        let mut bytes = VRRP_ADVERT;
        bytes[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).err(),
            Some(WireError::Truncated)
        );
    }

    #[test]
    fn malformed() {
        let mut bad_version = VRRP_ADVERT;
        bad_version[0] = 0x65;
        let mut short_ihl = VRRP_ADVERT;
        short_ihl[0] = 0x44;
        let mut short_total = VRRP_ADVERT;
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        for bytes in [bad_version, short_ihl, short_total] {
            assert_eq!(
                Ipv4Packet::new_checked(&bytes[..]).err(),
                Some(WireError::Malformed)
            );
            assert_eq!(
                Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..])),
                Err(WireError::Malformed)
            );
        }
        // Every truncation of a malformed-version packet is Truncated or Malformed,
        // never a panic.
        for len in 0..=bad_version.len() {
            assert!(Ipv4Packet::new_checked(&bad_version[..len]).is_err());
        }
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = VRRP_ADVERT;
        bytes[11] ^= 1;
        let packet = Ipv4Packet::new_checked(&bytes[..]).expect("checksum is not checked here");
        assert!(!packet.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&packet), Err(WireError::BadChecksum));
    }

    #[test]
    fn fragments() {
        let mut bytes = VRRP_ADVERT;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_more_frags(true);
        assert!(packet.is_fragment());
        packet.set_more_frags(false);
        packet.set_frag_offset(1480);
        assert!(packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_dont_frag(true);
        assert!(packet.dont_frag() && !packet.more_frags());
        assert_eq!(packet.frag_offset(), 1480);
    }

    #[test]
    fn options_are_exposed() {
        // 24-byte header carrying a Router Alert option (RFC 2113).
        let mut bytes = [0u8; 28];
        {
            let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
            packet.set_version_and_header_len(4, 24);
            packet.set_total_len(28);
            packet
                .options_mut()
                .copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
            packet.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
            packet.fill_checksum();
        }
        let packet = Ipv4Packet::new_checked(&bytes[..]).expect("valid IPv4 with options");
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(packet.payload(), &[1, 2, 3, 4]);
        assert!(packet.verify_checksum());
        let (hdr, _) = etherparse::Ipv4Header::from_slice(&bytes).expect("etherparse parses");
        assert_eq!(hdr.calc_header_checksum(), packet.checksum());
    }

    #[test]
    fn setters_cannot_break_accessors() {
        let mut bytes = VRRP_ADVERT;
        let mut packet = Ipv4Packet::new_checked(&mut bytes[..]).expect("valid IPv4");
        packet.set_total_len(u16::MAX);
        assert_eq!(packet.payload().len(), 20);
        packet.set_version_and_header_len(4, 60);
        assert_eq!(packet.payload(), &[] as &[u8]);
        assert_eq!(packet.options().len(), 20);
        packet.set_total_len(0);
        assert_eq!(packet.payload_mut(), &mut [] as &mut [u8]);
        packet.fill_checksum();
        let _ = packet.verify_checksum();
    }

    #[test]
    fn agrees_with_etherparse() {
        // etherparse builds, we verify.
        let mut hdr = etherparse::Ipv4Header::new(
            12,
            64,
            etherparse::IpNumber::TCP,
            [192, 0, 2, 1],
            [198, 51, 100, 7],
        )
        .expect("valid etherparse header");
        hdr.dont_fragment = true;
        hdr.header_checksum = hdr.calc_header_checksum();
        let mut theirs = Vec::new();
        hdr.write(&mut theirs).expect("write to Vec");
        let packet = Ipv4Packet::new_unchecked(&theirs[..]);
        assert!(packet.verify_checksum());
        assert_eq!(&theirs[..], &EMITTED[..]);

        // We build, etherparse computes the same checksum.
        let mut ours = [0u8; 32];
        emitted_repr().emit(&mut Ipv4Packet::new_unchecked(&mut ours[..]));
        let (parsed, _) = etherparse::Ipv4Header::from_slice(&ours).expect("etherparse parses");
        assert_eq!(
            parsed.calc_header_checksum(),
            u16::from_be_bytes([ours[10], ours[11]])
        );
        assert_eq!(parsed.source, [192, 0, 2, 1]);
        assert_eq!(usize::from(parsed.payload_len().expect("len")), 12);
    }

    mod prop {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        fn addr() -> impl Strategy<Value = Ipv4Addr> {
            any::<[u8; 4]>().prop_map(Ipv4Addr::from)
        }

        proptest! {
            /// Untrusted bytes: `new_checked` either fails or yields a view whose every
            /// accessor returns without panicking.
            #[test]
            fn arbitrary_bytes_never_panic(mut data in vec(any::<u8>(), 0..80)) {
                if let Some(b) = data.first_mut() {
                    *b = (*b & 0x0f) | 0x40; // mostly version 4, to get past the first check
                }
                if let Ok(mut packet) = Ipv4Packet::new_checked(&mut data[..]) {
                    let _ = (packet.header_len(), packet.total_len(), packet.ident());
                    let _ = (packet.dont_frag(), packet.more_frags(), packet.frag_offset());
                    let _ = (packet.is_fragment(), packet.ttl(), packet.protocol());
                    let _ = (packet.checksum(), packet.src_addr(), packet.dst_addr());
                    let _ = (packet.verify_checksum(), packet.options().len());
                    prop_assert!(packet.payload().len() <= usize::from(packet.total_len()));
                    packet.fill_checksum();
                    prop_assert!(packet.verify_checksum());
                    let _ = packet.payload_mut().len();
                    let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(packet.as_ref()));
                }
            }

            #[test]
            fn parse_emit_round_trip(
                src in addr(), dst in addr(), proto in any::<u8>(),
                payload_len in 0usize..1500, ttl in any::<u8>(),
            ) {
                let repr = Ipv4Repr {
                    src_addr: src, dst_addr: dst, protocol: IpProtocol::from(proto),
                    payload_len, ttl,
                };
                let mut buf = vec![0u8; HEADER_LEN + payload_len];
                repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
                let packet = Ipv4Packet::new_checked(&buf[..]).expect("emitted is valid");
                prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
            }

            /// RFC 1624: rewriting addresses and decrementing TTL, then adjusting the
            /// stored checksum, equals recomputing it.
            #[test]
            fn adjust_equals_recompute(
                src in addr(), dst in addr(), proto in any::<u8>(), ttl in 1u8..,
                ident in any::<u16>(), tos in any::<u8>(),
                new_src in addr(), new_dst in addr(),
                options in vec(any::<u8>(), 0..=10).prop_map(|mut o| { o.truncate(o.len() / 4 * 4); o }),
            ) {
                let header_len = HEADER_LEN + options.len();
                let mut buf = vec![0u8; header_len + 8];
                let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
                packet.set_version_and_header_len(4, header_len);
                packet.set_dscp_ecn(tos);
                packet.set_total_len(u16::try_from(header_len + 8).expect("small"));
                packet.set_ident(ident);
                packet.set_ttl(ttl);
                packet.set_protocol(IpProtocol::from(proto));
                packet.set_src_addr(src);
                packet.set_dst_addr(dst);
                packet.options_mut().copy_from_slice(&options);
                packet.fill_checksum();

                let old_ttl_proto = [ttl, proto];
                let new_ttl_proto = [ttl - 1, proto];
                let mut sum = packet.checksum();
                sum = checksum::adjust(sum, &src.octets(), &new_src.octets());
                sum = checksum::adjust(sum, &dst.octets(), &new_dst.octets());
                sum = checksum::adjust(sum, &old_ttl_proto, &new_ttl_proto);
                packet.set_src_addr(new_src);
                packet.set_dst_addr(new_dst);
                packet.set_ttl(ttl - 1);
                packet.set_checksum(sum);
                prop_assert!(packet.verify_checksum());
                packet.fill_checksum();
                prop_assert_eq!(sum, packet.checksum());
            }
        }
    }
}
