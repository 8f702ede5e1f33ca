//! IPv6 headers (RFC 8200), with the extension headers the dataplane
//! skips to find the upper-layer protocol.
//!
//! Invariant: after [`Ipv6Packet::new_checked`] succeeds the buffer holds
//! the 40-byte header and the payload its length field announces, so no
//! accessor can panic. [`Ipv6Packet::upper_layer`] reads extension headers
//! with checked slicing: malformed chains are errors, never panics.
//!
//! Extension headers skipped: hop-by-hop options (0), routing (43) and
//! destination options (60), at most [`MAX_EXT_HEADERS`] of them. A fragment
//! header (44) ends the walk with [`Ipv6Upper::Fragment`]: fragments are not
//! supported (as in DPVS) and are counted and dropped by the engine.

use super::bytes::{clamp, read_u16, write_u16, Field, Rest};
use super::{IpProtocol, Result, WireError};
use core::fmt;
use core::net::Ipv6Addr;

mod field {
    use super::{Field, Rest};

    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const PAYLOAD: Rest = 40..;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// The mask of a `len`-bit IPv6 prefix (a longer `len` counts as 128).
pub fn netmask(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// At most this many extension headers are skipped; a longer chain is
/// [`WireError::Malformed`] (bounded work per packet).
pub const MAX_EXT_HEADERS: usize = 8;

/// Where [`Ipv6Packet::upper_layer`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Upper {
    /// The upper-layer header (`protocol`) starts at `offset` bytes from the
    /// start of the IPv6 header.
    Upper { protocol: IpProtocol, offset: usize },
    /// A fragment header: the packet is a fragment.
    Fragment,
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr(data: &[u8], f: Field) -> Ipv6Addr {
    let mut b = [0u8; 16];
    b.copy_from_slice(&data[f]);
    Ipv6Addr::from(b)
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// Fixed-field accessors panic if the buffer is shorter than 40 bytes.
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than the header or
    /// than `40 + payload_len`; [`WireError::Malformed`] if the version is
    /// not 6 or the payload length is 0 (jumbograms are not supported).
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the lengths every accessor relies on.
    ///
    /// # Errors
    /// As for [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 || self.payload_len() == 0 {
            return Err(WireError::Malformed);
        }
        if len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Version (6 for a valid packet).
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length: everything after the fixed header, extension
    /// headers included.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The header following the fixed one.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Payload (`40..40 + payload_len`, clamped to the buffer): extension
    /// headers and the upper layer.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = HEADER_LEN + usize::from(self.payload_len());
        &data[clamp(HEADER_LEN, end, data.len())]
    }

    /// Skips hop-by-hop, routing and destination options headers to the
    /// upper-layer protocol, or stops at a fragment header.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if an extension header runs past the
    /// payload; [`WireError::Malformed`] if the chain is longer than
    /// [`MAX_EXT_HEADERS`].
    pub fn upper_layer(&self) -> Result<Ipv6Upper> {
        let payload = self.payload();
        let mut protocol = self.next_header();
        let mut at = 0usize;
        for _ in 0..=MAX_EXT_HEADERS {
            match protocol {
                IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                    let hdr = payload.get(at..at + 2).ok_or(WireError::Truncated)?;
                    let len = (usize::from(hdr[1]) + 1) * 8;
                    if payload.len() < at + len {
                        return Err(WireError::Truncated);
                    }
                    protocol = IpProtocol::from(hdr[0]);
                    at += len;
                }
                IpProtocol::Ipv6Frag => return Ok(Ipv6Upper::Fragment),
                protocol => {
                    return Ok(Ipv6Upper::Upper {
                        protocol,
                        offset: HEADER_LEN + at,
                    })
                }
            }
        }
        Err(WireError::Malformed)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version.
    pub fn set_version(&mut self, value: u8) {
        let v = self.ver_tc_flow() & 0x0fff_ffff | u32::from(value & 0xf) << 28;
        self.set_ver_tc_flow(v);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, value: u8) {
        let v = self.ver_tc_flow() & 0xf00f_ffff | u32::from(value) << 20;
        self.set_ver_tc_flow(v);
    }

    /// Sets the flow label (the low 20 bits of `value`).
    pub fn set_flow_label(&mut self, value: u32) {
        let v = self.ver_tc_flow() & 0xfff0_0000 | value & 0x000f_ffff;
        self.set_ver_tc_flow(v);
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into();
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Payload, mutable (clamped like [`payload`](Self::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let data = self.buffer.as_mut();
        let range = clamp(HEADER_LEN, end, data.len());
        &mut data[range]
    }
}

/// The parts of an IPv6 header the engine builds packets from (traffic
/// class and flow label are written as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    /// Payload length in bytes (≤ 65535).
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Reads a packet's fixed header. Safe on an unchecked view: it repeats
    /// the checks of [`Ipv6Packet::new_checked`].
    ///
    /// # Errors
    /// As for `new_checked`.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes: 40.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header; the payload is not touched.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_ver_tc_flow(6 << 28);
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

impl fmt::Display for Ipv6Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv6 {} -> {} {} len={} hop_limit={}",
            self.src_addr, self.dst_addr, self.next_header, self.payload_len, self.hop_limit
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn netmasks_of_every_prefix_length() {
        assert_eq!(netmask(0), 0);
        assert_eq!(netmask(64), u128::MAX << 64);
        assert_eq!(netmask(128), u128::MAX);
        assert_eq!(netmask(200), u128::MAX);
        for len in 0..=128u8 {
            assert_eq!(netmask(len).leading_ones(), u32::from(len));
            assert_eq!(netmask(len).count_ones(), u32::from(len));
        }
    }

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

    /// 2001:db8::2 → 2001:db8::100, TC 0xb8, flow 0x12345, hop limit 64,
    /// next header UDP, payload: an 8-byte UDP header 1234 → 53 (checksum 0).
    static UDP_PACKET: [u8; 48] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, 0x11, 0x40, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, //
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
    ];

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(&UDP_PACKET[..]).expect("valid");
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!((p.src_addr(), p.dst_addr()), (SRC, DST));
        assert_eq!(p.payload(), &UDP_PACKET[40..]);
        assert_eq!(
            p.upper_layer(),
            Ok(Ipv6Upper::Upper {
                protocol: IpProtocol::Udp,
                offset: 40
            })
        );
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 48];
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0x12345);
        p.set_payload_len(8);
        p.set_next_header(IpProtocol::Udp);
        p.set_hop_limit(64);
        p.set_src_addr(SRC);
        p.set_dst_addr(DST);
        p.payload_mut().copy_from_slice(&UDP_PACKET[40..]);
        assert_eq!(buf, UDP_PACKET);
    }

    #[test]
    fn parse_and_emit() {
        let repr = Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&UDP_PACKET[..])).expect("repr");
        assert_eq!(
            repr,
            Ipv6Repr {
                src_addr: SRC,
                dst_addr: DST,
                next_header: IpProtocol::Udp,
                payload_len: 8,
                hop_limit: 64,
            }
        );
        let mut buf = UDP_PACKET;
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        // Traffic class and flow label are not represented: written as 0.
        assert_eq!(buf[4..], UDP_PACKET[4..]);
        assert_eq!(buf[..4], [0x60, 0, 0, 0]);
        assert_eq!(repr.buffer_len(), HEADER_LEN);
    }

    #[test]
    fn etherparse_agrees() {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv6(SRC.octets(), DST.octets(), 7)
            .tcp(1000, 80, 1, 1024)
            .write(&mut out, b"hi")
            .expect("build");
        let p = Ipv6Packet::new_checked(&out[..]).expect("valid");
        assert_eq!((p.src_addr(), p.dst_addr(), p.hop_limit()), (SRC, DST, 7));
        assert_eq!(usize::from(p.payload_len()), out.len() - 40);
        assert_eq!(
            p.upper_layer(),
            Ok(Ipv6Upper::Upper {
                protocol: IpProtocol::Tcp,
                offset: 40
            })
        );
    }

    /// `UDP_PACKET` with `ext` (a chain ending in next header UDP) inserted
    /// after the fixed header, which names `first`.
    fn with_ext(first: u8, ext: &[u8]) -> Vec<u8> {
        let mut v = UDP_PACKET[..40].to_vec();
        v[6] = first;
        let len = (8 + ext.len()) as u16;
        v[4..6].copy_from_slice(&len.to_be_bytes());
        v.extend_from_slice(ext);
        v.extend_from_slice(&UDP_PACKET[40..]);
        v
    }

    #[test]
    fn extension_headers_are_skipped() {
        // Hop-by-hop (8 bytes, PadN) → routing (24 bytes) → destination
        // options (8 bytes) → UDP.
        let mut ext = vec![43, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[60, 2, 0, 1, 0, 0, 0, 0]);
        ext.extend_from_slice(&[0u8; 16]);
        ext.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        let pkt = with_ext(0, &ext);
        let p = Ipv6Packet::new_checked(&pkt[..]).expect("valid");
        assert_eq!(
            p.upper_layer(),
            Ok(Ipv6Upper::Upper {
                protocol: IpProtocol::Udp,
                offset: 40 + 40
            })
        );
        // Cross-check the offset with etherparse.
        let e = etherparse::SlicedPacket::from_ip(&pkt).expect("etherparse");
        let Some(etherparse::TransportSlice::Udp(u)) = e.transport else {
            panic!("etherparse found no UDP")
        };
        assert_eq!((u.source_port(), u.destination_port()), (1234, 53));
    }

    #[test]
    fn fragment_header_stops_the_walk() {
        let pkt = with_ext(0, &[44, 0, 1, 4, 0, 0, 0, 0, 17, 0, 0, 1, 0, 0, 0, 7]);
        let p = Ipv6Packet::new_checked(&pkt[..]).expect("valid");
        assert_eq!(p.upper_layer(), Ok(Ipv6Upper::Fragment));
    }

    #[test]
    fn bad_chains_are_errors() {
        // A destination options header claiming 16 bytes in an 8-byte payload.
        let mut pkt = UDP_PACKET;
        pkt[6] = 60;
        pkt[41] = 1;
        let p = Ipv6Packet::new_checked(&pkt[..]).expect("valid header");
        assert_eq!(p.upper_layer(), Err(WireError::Truncated));
        // Nine destination options headers in a row: too long a chain.
        let mut ext = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            ext.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        let n = ext.len();
        ext[n - 8] = 17;
        let pkt = with_ext(60, &ext);
        let p = Ipv6Packet::new_checked(&pkt[..]).expect("valid header");
        assert_eq!(p.upper_layer(), Err(WireError::Malformed));
    }

    #[test]
    fn check_len_rejects_bad_headers() {
        assert_eq!(
            Ipv6Packet::new_checked(&UDP_PACKET[..39]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&UDP_PACKET[..47]),
            Err(WireError::Truncated)
        );
        let mut v4 = UDP_PACKET;
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]), Err(WireError::Malformed));
        let mut jumbo = UDP_PACKET;
        jumbo[4..6].fill(0);
        assert_eq!(
            Ipv6Packet::new_checked(&jumbo[..]),
            Err(WireError::Malformed)
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes: `new_checked` either fails or every accessor,
            /// including the extension-header walk, returns without panicking.
            #[test]
            fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
                if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                    let _ = (p.src_addr(), p.dst_addr(), p.flow_label(), p.payload());
                    if let Ok(Ipv6Upper::Upper { offset, .. }) = p.upper_layer() {
                        prop_assert!(offset <= data.len());
                    }
                }
            }
        }
    }
}
