//! TCP segments (RFC 9293), as far as a layer-4 load balancer needs them: ports,
//! sequence numbers, flags, window, options as raw bytes, and the checksum.
//!
//! TCP has no length field: the segment is the whole buffer, so pass the view
//! [`Ipv4Packet::payload`](super::Ipv4Packet::payload), which ends at the IPv4 total
//! length.
//!
//! Invariant: after [`TcpPacket::new_checked`] succeeds the buffer holds at least 20
//! bytes and `20 ≤ header_len ≤ buffer.len()`, so no accessor can panic.
//! [`TcpPacket::options`] and [`TcpPacket::payload`] also clamp to the buffer, so they
//! stay panic-free after a caller writes an inconsistent data offset.

use super::bytes::{clamp, read_u16, read_u32, write_u16, write_u32, Field};
use super::{checksum, IpProtocol, Result, WireError};
use core::net::Ipv4Addr;

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (high nibble of byte 12) and the flag bits.
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;

    pub const FLG_FIN: u16 = 0x001;
    pub const FLG_SYN: u16 = 0x002;
    pub const FLG_RST: u16 = 0x004;
    pub const FLG_PSH: u16 = 0x008;
    pub const FLG_ACK: u16 = 0x010;
    pub const FLG_URG: u16 = 0x020;
    pub const FLG_ECE: u16 = 0x040;
    pub const FLG_CWR: u16 = 0x080;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

macro_rules! flag {
    ($(#[$doc:meta])* $get:ident, $set:ident, $bit:expr) => {
        impl<T: AsRef<[u8]>> TcpPacket<T> {
            $(#[$doc])*
            pub fn $get(&self) -> bool {
                self.raw_flags() & $bit != 0
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
            $(#[$doc])*
            ///
            /// Setter: sets or clears the flag.
            pub fn $set(&mut self, value: bool) {
                let raw = self.raw_flags() & !$bit;
                self.set_raw_flags(if value { raw | $bit } else { raw });
            }
        }
    };
}

flag!(
    /// FIN flag.
    fin, set_fin, field::FLG_FIN
);
flag!(
    /// SYN flag.
    syn, set_syn, field::FLG_SYN
);
flag!(
    /// RST flag.
    rst, set_rst, field::FLG_RST
);
flag!(
    /// PSH flag.
    psh, set_psh, field::FLG_PSH
);
flag!(
    /// ACK flag.
    ack, set_ack, field::FLG_ACK
);
flag!(
    /// URG flag.
    urg, set_urg, field::FLG_URG
);
flag!(
    /// ECE flag.
    ece, set_ece, field::FLG_ECE
);
flag!(
    /// CWR flag.
    cwr, set_cwr, field::FLG_CWR
);

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it.
    ///
    /// Fixed-field accessors panic if the buffer is shorter than 20 bytes.
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than 20 bytes or than the data
    /// offset; [`WireError::Malformed`] if the data offset is below 5.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
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
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len < header_len {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number (meaningful when [`ack`](Self::ack) is set).
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    fn raw_flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS)
    }

    /// The eight flag bits (CWR ECE URG ACK PSH RST SYN FIN) as in byte 13.
    pub fn flags(&self) -> u8 {
        // Low byte of the flags word.
        (self.raw_flags() & 0x00ff) as u8
    }

    /// Header length in bytes (data offset × 4), 20..=60.
    pub fn header_len(&self) -> usize {
        usize::from(self.raw_flags() >> 12) * 4
    }

    /// Advertised window (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Option bytes (20..header_len), uninterpreted.
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(HEADER_LEN, self.header_len(), data.len())]
    }

    /// Payload: header_len to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(self.header_len(), data.len(), data.len())]
    }

    /// Partial sum of the pseudo-header and the whole segment. The length is the buffer
    /// length; a buffer over 65535 bytes (impossible inside IPv4) gives a wrong but
    /// harmless sum.
    fn full_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let data = self.buffer.as_ref();
        let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
        checksum::pseudo_v4(src, dst, IpProtocol::Tcp, len) + checksum::sum(data)
    }

    /// Whether the checksum is correct for a segment carried from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::fold(self.full_sum(src, dst)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    fn set_raw_flags(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLAGS, value);
    }

    /// Clears all eight flag bits (and the reserved/NS bits), keeping the data offset.
    pub fn clear_flags(&mut self) {
        let raw = self.raw_flags() & 0xf000;
        self.set_raw_flags(raw);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60), keeping the flags.
    pub fn set_header_len(&mut self, header_len: usize) {
        // The data offset is 4 bits; masking keeps an out-of-range argument in its nibble.
        let offset = ((header_len / 4) & 0x0f) as u16;
        let raw = self.raw_flags() & 0x0fff;
        self.set_raw_flags(raw | (offset << 12));
    }

    /// Sets the advertised window.
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, value);
    }

    /// Sets the stored checksum (e.g. after [`checksum::adjust`]).
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Recomputes the checksum from scratch for a segment from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = self.full_sum(src, dst);
        self.set_checksum(checksum::finish(sum));
    }

    /// Mutable option bytes (e.g. to rewrite an MSS), clamped to the buffer.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        let data = self.buffer.as_mut();
        let range = clamp(HEADER_LEN, header_len, data.len());
        &mut data[range]
    }

    /// Mutable payload, clamped to the buffer.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        let data = self.buffer.as_mut();
        let len = data.len();
        &mut data[clamp(header_len, len, len)]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod test {
    use super::super::Ipv4Packet;
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// A Linux-style SYN built by hand, checksums computed with an independent script:
    /// 10.0.0.1:40000 → 10.0.0.2:80, seq 0x12345678, window 64240, options
    /// MSS 1460, SACK-permitted, timestamps (123456, 0), NOP, window scale 7.
    static SYN_DATAGRAM: [u8; 60] = [
        // IPv4: id 0x1c46, DF, TTL 64, checksum 0x0a74
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x74, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, //
        // TCP: data offset 10, SYN, checksum 0x518e
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x51, 0x8e, 0x00, 0x00, //
        // options
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    fn syn_segment() -> &'static [u8] {
        &SYN_DATAGRAM[20..]
    }

    #[test]
    fn deconstruct() {
        let packet = TcpPacket::new_checked(syn_segment()).expect("valid TCP");
        assert_eq!(packet.src_port(), 40000);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x1234_5678);
        assert_eq!(packet.ack_number(), 0);
        assert_eq!(packet.header_len(), 40);
        assert!(packet.syn());
        assert!(!packet.ack() && !packet.fin() && !packet.rst() && !packet.psh());
        assert!(!packet.urg() && !packet.ece() && !packet.cwr());
        assert_eq!(packet.flags(), 0x02);
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0x518e);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &SYN_DATAGRAM[40..]);
        assert_eq!(packet.payload(), &[] as &[u8]);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(SRC, Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 40];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(40000);
        packet.set_dst_port(80);
        packet.set_seq_number(0x1234_5678);
        packet.set_ack_number(0);
        packet.set_header_len(40);
        packet.clear_flags();
        packet.set_syn(true);
        packet.set_window_len(64240);
        packet.set_urgent_at(0);
        packet.options_mut().copy_from_slice(&SYN_DATAGRAM[40..]);
        packet.fill_checksum(SRC, DST);
        assert_eq!(&bytes[..], syn_segment());
    }

    #[test]
    fn flags_round_trip() {
        let mut bytes = [0u8; 20];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_header_len(20);
        packet.set_ack(true);
        packet.set_psh(true);
        packet.set_fin(true);
        packet.set_rst(true);
        packet.set_urg(true);
        packet.set_ece(true);
        packet.set_cwr(true);
        packet.set_syn(true);
        assert_eq!(packet.flags(), 0xff);
        packet.set_rst(false);
        assert_eq!(packet.flags(), 0xfb);
        assert_eq!(packet.header_len(), 20);
        packet.clear_flags();
        assert_eq!(packet.flags(), 0);
        assert_eq!(packet.header_len(), 20);
    }

    #[test]
    fn payload_after_options() {
        let mut bytes = [0u8; 28];
        bytes[..24].copy_from_slice(&[
            0x00, 0x50, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 2, 0x60, 0x18, 0x01, 0x00, 0, 0, 0, 0,
            0x01, 0x01, 0x01, 0x00,
        ]);
        bytes[24..].copy_from_slice(b"GET ");
        let packet = TcpPacket::new_checked(&bytes[..]).expect("valid TCP");
        assert!(packet.ack() && packet.psh());
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), b"GET ");
    }

    #[test]
    fn truncated_at_every_length() {
        let segment = syn_segment();
        for len in 0..segment.len() {
            assert_eq!(
                TcpPacket::new_checked(&segment[..len]).err(),
                Some(WireError::Truncated),
                "len {len}"
            );
        }
        assert!(TcpPacket::new_checked(segment).is_ok());
        // The whole datagram, truncated anywhere, never yields a view that could panic.
        for len in 0..=SYN_DATAGRAM.len() {
            if let Ok(ip) = Ipv4Packet::new_checked(&SYN_DATAGRAM[..len]) {
                assert!(TcpPacket::new_checked(ip.payload()).is_ok());
            }
        }
    }

    #[test]
    fn malformed_data_offset() {
        for offset in 0u8..5 {
            let mut bytes = [0u8; 40];
            bytes.copy_from_slice(syn_segment());
            bytes[12] = offset << 4;
            assert_eq!(
                TcpPacket::new_checked(&bytes[..]).err(),
                Some(WireError::Malformed),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn setters_cannot_break_accessors() {
        let mut bytes = [0u8; 40];
        bytes.copy_from_slice(syn_segment());
        let mut packet = TcpPacket::new_checked(&mut bytes[..]).expect("valid TCP");
        packet.set_header_len(60);
        assert_eq!(packet.options().len(), 20);
        assert_eq!(packet.payload(), &[] as &[u8]);
        packet.set_header_len(0);
        assert_eq!(packet.options(), &[] as &[u8]);
        assert_eq!(packet.payload().len(), 40);
        assert_eq!(packet.options_mut().len(), 0);
        packet.fill_checksum(SRC, DST);
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn agrees_with_etherparse() {
        // Our SYN: etherparse computes the checksum we stored.
        let (hdr, payload) =
            etherparse::TcpHeader::from_slice(syn_segment()).expect("etherparse parses");
        assert_eq!(
            hdr.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload)
                .expect("small"),
            0x518e
        );
        assert_eq!(hdr.options.as_slice(), &SYN_DATAGRAM[40..]);

        // etherparse builds a data segment with options; we verify it.
        let builder = etherparse::PacketBuilder::ipv4([192, 0, 2, 10], [203, 0, 113, 5], 61)
            .tcp(443, 51234, 0xdead_beef, 501)
            .ack(0x0102_0304)
            .psh()
            .options_raw(&[0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 9, 0, 0, 0, 7])
            .expect("options fit");
        let mut datagram = Vec::new();
        builder
            .write(&mut datagram, b"hello, odd payload")
            .expect("write to Vec");
        let ip = Ipv4Packet::new_checked(&datagram[..]).expect("valid IPv4");
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).expect("valid TCP");
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(tcp.ack_number(), 0x0102_0304);
        assert!(tcp.ack() && tcp.psh() && !tcp.syn());
        assert_eq!(tcp.options().len(), 12);
        assert_eq!(tcp.payload(), b"hello, odd payload");

        // Rewrite the ports with our code, etherparse agrees on the new checksum.
        let mut segment = ip.payload().to_vec();
        let mut tcp = TcpPacket::new_checked(&mut segment[..]).expect("valid TCP");
        tcp.set_src_port(8443);
        tcp.fill_checksum(ip.src_addr(), ip.dst_addr());
        let (hdr, payload) = etherparse::TcpHeader::from_slice(&segment).expect("parses");
        assert_eq!(
            hdr.calc_checksum_ipv4_raw(ip.src_addr().octets(), ip.dst_addr().octets(), payload)
                .expect("small"),
            hdr.checksum
        );
    }

    mod prop {
        use super::super::super::{checksum, Ipv4Repr};
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        fn addr() -> impl Strategy<Value = Ipv4Addr> {
            any::<[u8; 4]>().prop_map(Ipv4Addr::from)
        }

        /// An IPv4 datagram carrying a TCP segment with valid checksums.
        fn datagram(
            src: Ipv4Addr,
            dst: Ipv4Addr,
            ports: (u16, u16),
            seq: u32,
            options: &[u8],
            payload: &[u8],
        ) -> Vec<u8> {
            let header_len = HEADER_LEN + options.len();
            let repr = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: IpProtocol::Tcp,
                payload_len: header_len + payload.len(),
                ttl: 64,
            };
            let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut ip);
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            tcp.set_src_port(ports.0);
            tcp.set_dst_port(ports.1);
            tcp.set_seq_number(seq);
            tcp.set_header_len(header_len);
            tcp.set_ack(true);
            tcp.options_mut().copy_from_slice(options);
            tcp.payload_mut().copy_from_slice(payload);
            tcp.fill_checksum(src, dst);
            buf
        }

        fn options() -> impl Strategy<Value = Vec<u8>> {
            vec(any::<u8>(), 0..=40).prop_map(|mut o| {
                o.truncate(o.len() / 4 * 4);
                o
            })
        }

        proptest! {
            /// Untrusted bytes: `new_checked` either fails or yields a view whose every
            /// accessor returns without panicking.
            #[test]
            fn arbitrary_bytes_never_panic(mut data in vec(any::<u8>(), 0..80)) {
                if let Ok(mut packet) = TcpPacket::new_checked(&mut data[..]) {
                    let _ = (packet.src_port(), packet.dst_port(), packet.seq_number());
                    let _ = (packet.ack_number(), packet.header_len(), packet.flags());
                    let _ = (packet.syn(), packet.ack(), packet.fin(), packet.rst(), packet.psh());
                    let _ = (packet.window_len(), packet.checksum(), packet.urgent_at());
                    prop_assert!(packet.header_len() >= HEADER_LEN);
                    prop_assert_eq!(
                        packet.options().len() + packet.payload().len() + HEADER_LEN,
                        packet.as_ref().len()
                    );
                    packet.fill_checksum(SRC, DST);
                    prop_assert!(packet.verify_checksum(SRC, DST));
                }
            }

            /// The FNAT rewrite: client → VIP becomes local → real server, with a sequence
            /// offset. RFC 1624 adjustment of both checksums equals recomputation.
            #[test]
            fn nat_adjust_equals_recompute(
                src in addr(), dst in addr(), new_src in addr(), new_dst in addr(),
                ports in any::<(u16, u16)>(), new_ports in any::<(u16, u16)>(),
                seq in any::<u32>(), new_seq in any::<u32>(),
                opts in options(), payload in vec(any::<u8>(), 0..64),
            ) {
                let mut buf = datagram(src, dst, ports, seq, &opts, &payload);
                let mut ip = Ipv4Packet::new_checked(&mut buf[..]).expect("valid IPv4");

                let mut ip_sum = ip.checksum();
                ip_sum = checksum::adjust(ip_sum, &src.octets(), &new_src.octets());
                ip_sum = checksum::adjust(ip_sum, &dst.octets(), &new_dst.octets());
                ip.set_src_addr(new_src);
                ip.set_dst_addr(new_dst);
                ip.set_checksum(ip_sum);
                prop_assert!(ip.verify_checksum());

                let mut tcp = TcpPacket::new_checked(ip.payload_mut()).expect("valid TCP");
                let mut sum = tcp.checksum();
                // Pseudo-header addresses, then ports, then sequence number.
                sum = checksum::adjust(sum, &src.octets(), &new_src.octets());
                sum = checksum::adjust(sum, &dst.octets(), &new_dst.octets());
                sum = checksum::adjust(sum, &ports.0.to_be_bytes(), &new_ports.0.to_be_bytes());
                sum = checksum::adjust(sum, &ports.1.to_be_bytes(), &new_ports.1.to_be_bytes());
                sum = checksum::adjust(sum, &seq.to_be_bytes(), &new_seq.to_be_bytes());
                tcp.set_src_port(new_ports.0);
                tcp.set_dst_port(new_ports.1);
                tcp.set_seq_number(new_seq);
                tcp.set_checksum(sum);
                prop_assert!(tcp.verify_checksum(new_src, new_dst));
                tcp.fill_checksum(new_src, new_dst);
                prop_assert_eq!(sum, tcp.checksum());
            }

            /// Our checksum agrees with etherparse's on random segments.
            #[test]
            fn checksum_matches_etherparse(
                src in addr(), dst in addr(), ports in any::<(u16, u16)>(), seq in any::<u32>(),
                opts in options(), payload in vec(any::<u8>(), 0..64),
            ) {
                let buf = datagram(src, dst, ports, seq, &opts, &payload);
                let (hdr, rest) = etherparse::TcpHeader::from_slice(&buf[20..]).expect("parses");
                let theirs = hdr
                    .calc_checksum_ipv4_raw(src.octets(), dst.octets(), rest)
                    .expect("small");
                prop_assert_eq!(theirs, hdr.checksum);
            }
        }
    }
}
