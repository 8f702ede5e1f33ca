//! ICMPv4 messages (RFC 792), and the packet an error message quotes.
//!
//! Invariant: after [`Icmpv4Packet::new_checked`] succeeds the buffer holds
//! at least the 8-byte header, so no accessor can panic; the message is the
//! whole buffer (the caller hands over the IPv4 payload). [`Quote`] reads the
//! IPv4 header and ports quoted by an error message; it checks that they are
//! all there and never reads past the quote.

use super::bytes::{read_ipv4, read_u16, read_u32, write_u16, write_u32, Field};
use super::{checksum, Result, WireError};
use core::net::Ipv4Addr;

mod field {
    use super::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// The type-specific second word (identifier/sequence, next-hop MTU, …).
    pub const REST: Field = 4..8;
    pub const MTU: Field = 6..8;
}

/// Length of the ICMPv4 header.
pub const HEADER_LEN: usize = field::REST.end;

/// Destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Destination unreachable code: fragmentation needed and DF set (RFC 1191).
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Source quench (deprecated, still an error message).
pub const SOURCE_QUENCH: u8 = 4;
/// Redirect.
pub const REDIRECT: u8 = 5;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Parameter problem.
pub const PARAMETER_PROBLEM: u8 = 12;
/// Echo request.
pub const ECHO_REQUEST: u8 = 8;

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// Accessors panic if the buffer is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
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

    /// The type-specific second word.
    pub fn rest(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST)
    }

    /// Next-hop MTU of a "fragmentation needed" message (0 if the sender
    /// predates RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MTU)
    }

    /// Whether the message reports an error about a packet it quotes
    /// (destination unreachable, source quench, redirect, time exceeded,
    /// parameter problem).
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }

    /// Everything after the header (for errors: the quoted packet).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
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

    /// Sets the type-specific second word.
    pub fn set_rest(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REST, value);
    }

    /// The message after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or_default()
    }

    /// Computes and stores the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

/// The start of the IPv4 packet an ICMP error quotes: its header and the
/// first 4 bytes of its payload (the TCP/UDP ports). The quote may end
/// anywhere after that (RFC 792 requires only 8 payload bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// The quoted IPv4 header's length in bytes.
    pub header_len: usize,
}

impl Quote {
    /// Reads a quoted packet.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the header or the ports are cut off;
    /// [`WireError::Malformed`] if it is not IPv4 or its header length is
    /// below 20.
    pub fn parse(quote: &[u8]) -> Result<Quote> {
        let first = *quote.first().ok_or(WireError::Truncated)?;
        if first >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < 20 {
            return Err(WireError::Malformed);
        }
        if quote.len() < header_len + 4 {
            return Err(WireError::Truncated);
        }
        Ok(Quote {
            src: read_ipv4(quote, 12..16),
            dst: read_ipv4(quote, 16..20),
            protocol: quote[9],
            src_port: read_u16(quote, header_len..header_len + 2),
            dst_port: read_u16(quote, header_len + 2..header_len + 4),
            header_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Header, Icmpv4Type, PacketBuilder};

    /// A "fragmentation needed" (MTU 1400) quoting a whole TCP SYN
    /// 10.0.0.1:1000 → 10.0.0.2:80, built by etherparse.
    fn frag_needed() -> (Vec<u8>, Vec<u8>) {
        let mut quoted = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 80, 1, 65535)
            .syn()
            .write(&mut quoted, &[])
            .expect("tcp");
        let mut msg = Vec::new();
        let t = Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        );
        Icmpv4Header::with_checksum(t, &quoted)
            .write(&mut msg)
            .expect("icmp");
        msg.extend_from_slice(&quoted);
        (msg, quoted)
    }

    #[test]
    fn deconstruct_frag_needed_and_its_quote() {
        let (msg, quoted) = frag_needed();
        let p = Icmpv4Packet::new_checked(&msg[..]).expect("valid");
        assert_eq!(
            (p.msg_type(), p.code()),
            (DEST_UNREACHABLE, CODE_FRAG_NEEDED)
        );
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(p.is_error());
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &quoted[..]);
        let q = Quote::parse(p.payload()).expect("quote");
        assert_eq!(
            q,
            Quote {
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(10, 0, 0, 2),
                protocol: 6,
                src_port: 1000,
                dst_port: 80,
                header_len: 20,
            }
        );
    }

    #[test]
    fn construct_matches_etherparse() {
        let (msg, _) = frag_needed();
        let mut built = vec![0u8; msg.len()];
        built[HEADER_LEN..].copy_from_slice(&msg[HEADER_LEN..]);
        let mut p = Icmpv4Packet::new_unchecked(&mut built[..]);
        p.set_msg_type(DEST_UNREACHABLE);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_rest(1400);
        p.fill_checksum();
        assert_eq!(built, msg);
    }

    #[test]
    fn echo_is_not_an_error_and_a_bad_checksum_is_seen() {
        let (mut msg, _) = frag_needed();
        msg[0] = ECHO_REQUEST;
        let p = Icmpv4Packet::new_checked(&msg[..]).expect("valid");
        assert!(!p.is_error());
        assert!(!p.verify_checksum());
    }

    #[test]
    fn truncated_at_every_length() {
        let (msg, quoted) = frag_needed();
        for n in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&msg[..n]).err(),
                Some(WireError::Truncated)
            );
        }
        for n in 0..24 {
            assert_eq!(
                Quote::parse(&quoted[..n]).err(),
                Some(WireError::Truncated),
                "{n}"
            );
        }
        assert!(Quote::parse(&quoted[..24]).is_ok());
        let mut bad = quoted.clone();
        bad[0] = 0x44;
        assert_eq!(Quote::parse(&bad).err(), Some(WireError::Malformed));
        bad[0] = 0x65;
        assert_eq!(Quote::parse(&bad).err(), Some(WireError::Malformed));
    }

    mod prop {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(mut data in vec(any::<u8>(), 0..64)) {
                if let Ok(mut p) = Icmpv4Packet::new_checked(&mut data[..]) {
                    let _ = (p.msg_type(), p.code(), p.rest(), p.next_hop_mtu(), p.is_error());
                    let _ = p.verify_checksum();
                    let _ = Quote::parse(p.payload());
                    p.payload_mut().fill(0);
                    p.fill_checksum();
                    prop_assert!(p.verify_checksum());
                }
                let _ = Quote::parse(&data);
            }

            #[test]
            fn checksum_matches_etherparse(
                rest in any::<[u8; 4]>(), payload in vec(any::<u8>(), 0..64),
            ) {
                // An unknown type: etherparse keeps the second word as sent.
                let mut msg = vec![200, 7, 0, 0];
                msg.extend_from_slice(&rest);
                msg.extend_from_slice(&payload);
                let mut p = Icmpv4Packet::new_checked(&mut msg[..]).expect("len");
                p.fill_checksum();
                let ours = p.checksum();
                let s = etherparse::Icmpv4Slice::from_slice(&msg).expect("etherparse");
                let want = s.header().icmp_type.calc_checksum(s.payload());
                prop_assert_eq!(ours, want);
            }
        }
    }
}
