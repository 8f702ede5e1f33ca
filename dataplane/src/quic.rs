//! QUIC on UDP services, as DPVS does it (`quic` and `hash_target qid`).
//!
//! * **Connection migration** (`quic`): a QUIC client that changes address
//!   or port keeps its connection ID, but its packets carry a 5-tuple no
//!   connection knows. DPVS agrees with the servers on a connection-ID
//!   format that carries the server's address (DPVS's
//!   `include/ipvs/quic.h`), so such a packet can be sent to the server
//!   that holds the QUIC connection:
//!
//!   ```text
//!   octet 0        any (QUIC-LB's first octet, unused)
//!   octet 1        LLL F AAAA   L = L3 length − 1 (1..=8 bytes), F = port present,
//!                               A = first nibble of the address
//!   then           the rest of the address (low bytes of the server's
//!                  address, nibble-shifted), then the port (16 bits) if F
//!   then           a nonce (at least 32 bits)
//!   ```
//!
//!   [`server_hint`] reads it from a long-header packet (its destination
//!   connection ID has an explicit length; shorter than 7 bytes: a client's
//!   own random ID, no hint) or a short-header packet (the length follows
//!   from octet 1).
//! * **Connection-ID hashing** (`hash_target qid` with `conhash`): the
//!   8-byte connection ID of a gQUIC public header is hashed instead of the
//!   client address ([`gquic_cid`]); DPVS notes gQUIC is obsolete and that
//!   IETF QUIC should use `quic`.
//!
//! Both run only when a packet opens a connection, never per packet.

use std::net::IpAddr;

use crate::sched::hash::fmix64;

/// The shortest destination connection ID that can carry a server hint.
const MIN_CID: usize = 7;
/// QUIC's longest connection ID (RFC 9000 §17.2).
const MAX_CID: usize = 20;

/// The server a QUIC connection ID names: the low `len` bytes of its
/// address and, maybe, its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHint {
    /// The address's low bytes, right-aligned (`bytes[8 - len..]`).
    bytes: [u8; 8],
    len: u8,
    port: Option<u16>,
}

impl ServerHint {
    /// Whether the server `addr:port` is the one the hint names: the
    /// address's low bytes agree (bytes beyond an IPv4 address must be
    /// zero) and so does the port when the hint has one.
    pub fn names(&self, addr: IpAddr, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        // No allocation: connections open here.
        let (v4, v6);
        let octets: &[u8] = match addr {
            IpAddr::V4(a) => {
                v4 = a.octets();
                &v4
            }
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                // A NAT64 service's IPv4 server, as its servers know it.
                Some(m) => {
                    v4 = m.octets();
                    &v4
                }
                None => {
                    v6 = a.octets();
                    &v6
                }
            },
        };
        let want = &self.bytes[8 - usize::from(self.len)..];
        let (extra, low) = want.split_at(want.len().saturating_sub(octets.len()));
        extra.iter().all(|&b| b == 0) && octets.ends_with(low)
    }
}

/// The server hint in the QUIC packet `payload` (a UDP payload), if it has
/// one. `None` for anything that is not a QUIC packet carrying a hint (a
/// client's Initial with its own random ID, other UDP traffic, truncated
/// bytes): such a packet is scheduled as any other.
pub fn server_hint(payload: &[u8]) -> Option<ServerHint> {
    let (&first, rest) = payload.split_first()?;
    // The fixed bit (RFC 9000 §17).
    if first & 0x40 == 0 {
        return None;
    }
    let cid = if first & 0x80 != 0 {
        // Long header: version (4), DCID length (1), DCID.
        let version = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        if version > 1 {
            return None;
        }
        let len = usize::from(*rest.get(4)?);
        if !(MIN_CID..=MAX_CID).contains(&len) {
            return None;
        }
        rest.get(5..5 + len)?
    } else {
        // Short header: the DCID runs to the packet number, whose start
        // only the endpoints know; the fields are at its front.
        rest
    };
    let b1 = *cid.get(1)?;
    let len = usize::from(b1 >> 5) + 1;
    let has_port = b1 & 0x10 != 0;
    // The format's shortest ID: two octets, the fields, a 32-bit nonce
    // (less one nibble shared with octet 1).
    if cid.len() < MIN_CID.max(len + if has_port { 2 } else { 0 } + 5) {
        return None;
    }
    // Fields start at the low nibble of octet 1: field byte i is the low
    // nibble of cid[1 + i] followed by the high nibble of cid[2 + i].
    let nibbled = |i: usize| -> Option<u8> {
        let hi = *cid.get(1 + i)?;
        let lo = *cid.get(2 + i)?;
        Some((hi << 4) | (lo >> 4))
    };
    let mut bytes = [0u8; 8];
    for (i, b) in bytes[8 - len..].iter_mut().enumerate() {
        *b = nibbled(i)?;
    }
    let port = if has_port {
        Some(u16::from_be_bytes([nibbled(len)?, nibbled(len + 1)?]))
    } else {
        None
    };
    Some(ServerHint {
        bytes,
        len: len as u8,
        port,
    })
}

/// gQUIC's public flags bit for "an 8-byte connection ID follows".
const GQUIC_CID_PRESENT: u8 = 0x08;

/// The 8-byte connection ID of a gQUIC public header in `payload` (a UDP
/// payload): the first byte is the public flags; with bit 0x08 set the
/// ID follows.
pub fn gquic_cid(payload: &[u8]) -> Option<u64> {
    let (&flags, rest) = payload.split_first()?;
    if flags & GQUIC_CID_PRESENT == 0 {
        return None;
    }
    Some(u64::from_ne_bytes(rest.get(..8)?.try_into().ok()?))
}

/// The scheduler hash of a gQUIC connection ID (in place of the client
/// address's).
pub fn cid_hash(cid: u64) -> u32 {
    fmix64(cid) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A connection ID in DPVS's format naming the low `l3len` bytes of
    /// `addr` and, with `port`, the port; `cidlen` bytes long (the
    /// generator DPVS documents for servers, written from its description).
    fn cid(cidlen: usize, l3len: usize, addr: &[u8], port: Option<u16>) -> Vec<u8> {
        let mut fields: Vec<u8> = addr[addr.len() - l3len..].to_vec();
        if let Some(p) = port {
            fields.extend(p.to_be_bytes());
        }
        let mut c = vec![0xa5u8; cidlen];
        c[1] = (((l3len - 1) as u8) << 5) | if port.is_some() { 0x10 } else { 0 };
        // Shift the fields in by a nibble from octet 1's low half.
        for (i, f) in fields.iter().enumerate() {
            c[1 + i] = (c[1 + i] & 0xf0) | (f >> 4);
            c[2 + i] = (f << 4) | (c[2 + i] & 0x0f);
        }
        c
    }

    fn long_header(dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc3, 0, 0, 0, 1, dcid.len() as u8];
        p.extend(dcid);
        p.extend([0u8, 0x40, 0x10]);
        p
    }

    fn short_header(dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![0x41];
        p.extend(dcid);
        p.extend([0x12, 0x34, 0x56, 0x78]);
        p
    }

    #[test]
    fn dpvs_documented_example_names_its_server() {
        // quic.h: cidlen 10, l3len 2, l4len 2, 192.168.111.222:8029 gives
        // XX36 FDE1 F5DX XXXX XXXX.
        let c = cid(10, 2, &[192, 168, 111, 222], Some(8029));
        assert_eq!(&c[1..5], &[0x36, 0xfd, 0xe1, 0xf5]);
        assert_eq!(c[5] & 0xf0, 0xd0);
        let h = server_hint(&short_header(&c)).expect("hint");
        let rs = IpAddr::V4(Ipv4Addr::new(192, 168, 111, 222));
        assert!(h.names(rs, 8029));
        assert!(!h.names(rs, 8030), "the port is part of the hint");
        // Only the low 16 bits are named: another /16 matches too.
        assert!(h.names(IpAddr::V4(Ipv4Addr::new(10, 0, 111, 222)), 8029));
        assert!(!h.names(IpAddr::V4(Ipv4Addr::new(192, 168, 111, 223)), 8029));
    }

    #[test]
    fn long_headers_carry_the_hint_and_short_ids_are_the_clients_own() {
        let rs = Ipv4Addr::new(10, 99, 0, 3);
        let c = cid(12, 4, &rs.octets(), None);
        let h = server_hint(&long_header(&c)).expect("hint");
        assert!(
            h.names(IpAddr::V4(rs), 1234),
            "no port in the hint: any port"
        );
        assert!(!h.names(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 4)), 1234));
        // A client's Initial with a 6-byte random ID: no hint.
        assert_eq!(server_hint(&long_header(&c[..6])), None);
        // Versions other than 1 (and 0, version negotiation) are unknown.
        let mut v2 = long_header(&c);
        v2[4] = 2;
        assert_eq!(server_hint(&v2), None);
    }

    #[test]
    fn ipv6_servers_are_named_by_their_low_bytes() {
        let rs: Ipv6Addr = "fd99::1:3".parse().expect("addr");
        let c = cid(16, 8, &rs.octets(), Some(443));
        let h = server_hint(&short_header(&c)).expect("hint");
        assert!(h.names(IpAddr::V6(rs), 443));
        assert!(!h.names(IpAddr::V6("fd99::1:4".parse().expect("addr")), 443));
        // An IPv4 server named with 8 bytes: the 4 extra must be zero.
        let v4 = Ipv4Addr::new(10, 0, 0, 7);
        let mut padded = [0u8; 8];
        padded[4..].copy_from_slice(&v4.octets());
        let h = server_hint(&short_header(&cid(16, 8, &padded, None))).expect("hint");
        assert!(h.names(IpAddr::V4(v4), 80));
        assert!(h.names(IpAddr::V6(v4.to_ipv6_mapped()), 80), "NAT64 server");
        padded[0] = 1;
        let h = server_hint(&short_header(&cid(16, 8, &padded, None))).expect("hint");
        assert!(!h.names(IpAddr::V4(v4), 80), "a byte beyond IPv4 is set");
    }

    #[test]
    fn anything_else_has_no_hint_and_never_panics() {
        assert_eq!(server_hint(&[]), None);
        assert_eq!(server_hint(&[0x01, 2, 3]), None, "fixed bit clear");
        for n in 0..40 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 0xc1) as u8).collect();
            let _ = server_hint(&bytes);
            let _ = gquic_cid(&bytes);
        }
        // Truncated after the length octet.
        assert_eq!(server_hint(&[0xc0, 0, 0, 0, 1, 12, 1, 2]), None);
        // A short header too short for the fields it announces.
        let c = cid(12, 8, &[1, 2, 3, 4, 5, 6, 7, 8], Some(1));
        assert_eq!(server_hint(&short_header(&c)[..12]), None);
    }

    #[test]
    fn gquic_ids_are_read_only_when_flagged() {
        let mut p = vec![0x08];
        p.extend(0x0102_0304_0506_0708u64.to_ne_bytes());
        assert_eq!(gquic_cid(&p), Some(0x0102_0304_0506_0708));
        p[0] = 0x00;
        assert_eq!(gquic_cid(&p), None);
        assert_eq!(gquic_cid(&[0x08, 1, 2, 3]), None, "truncated");
        assert_ne!(cid_hash(1), cid_hash(2));
    }
}
