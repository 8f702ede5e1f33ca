//! The OSPFv2 packet header with its authentication, and the five packet
//! bodies (RFC 2328 §A.3, §D).

use std::net::Ipv4Addr;

use md5::{Digest, Md5};

use super::lsa::{LsType, LsaHeader, LsaHeaderRepr, LsaRepr, LSA_HEADER_LEN};
use super::{get_addr, get_u16, get_u32, put_addr, put_u16, put_u32, Error, Result};

/// Length of the common OSPF header.
pub const HEADER_LEN: usize = 24;
/// Length of a keyed-MD5 digest.
pub const MD5_DIGEST_LEN: usize = 16;
/// Options bit E: the area takes AS-external LSAs.
pub const OPTION_E: u8 = 0x02;
/// DBD flag I (init).
pub const DBD_FLAG_I: u8 = 0x04;
/// DBD flag M (more).
pub const DBD_FLAG_M: u8 = 0x02;
/// DBD flag MS (master).
pub const DBD_FLAG_MS: u8 = 0x01;

mod field {
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const LENGTH: usize = 2;
    pub const ROUTER_ID: usize = 4;
    pub const AREA_ID: usize = 8;
    pub const CHECKSUM: usize = 12;
    pub const AU_TYPE: usize = 14;
    pub const AUTH: core::ops::Range<usize> = 16..24;
    pub const KEY_ID: usize = 18;
    pub const AUTH_LEN: usize = 19;
    pub const CRYPTO_SEQ: usize = 20;
}

const AU_NONE: u16 = 0;
const AU_SIMPLE: u16 = 1;
const AU_CRYPTO: u16 = 2;

/// OSPF packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 1.
    Hello,
    /// 2.
    DbDesc,
    /// 3.
    LsRequest,
    /// 4.
    LsUpdate,
    /// 5.
    LsAck,
    /// Anything else (refused by [`PacketRepr::parse`]).
    Unknown(u8),
}

impl From<u8> for PacketType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Hello,
            2 => Self::DbDesc,
            3 => Self::LsRequest,
            4 => Self::LsUpdate,
            5 => Self::LsAck,
            o => Self::Unknown(o),
        }
    }
}

impl From<PacketType> for u8 {
    fn from(v: PacketType) -> u8 {
        match v {
            PacketType::Hello => 1,
            PacketType::DbDesc => 2,
            PacketType::LsRequest => 3,
            PacketType::LsUpdate => 4,
            PacketType::LsAck => 5,
            PacketType::Unknown(o) => o,
        }
    }
}

/// A view over an OSPF packet (the IP payload).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn sum16(sum: &mut u32, data: &[u8]) {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        *sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        *sum += u32::from(*last) << 8;
    }
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn md5_digest(packet: &[u8], key: &[u8]) -> [u8; MD5_DIGEST_LEN] {
    let mut k = [0u8; MD5_DIGEST_LEN];
    let n = key.len().min(MD5_DIGEST_LEN);
    k[..n].copy_from_slice(&key[..n]);
    let mut h = Md5::new();
    h.update(packet);
    h.update(k);
    h.finalize().into()
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wrap and run [`Self::check_len`].
    ///
    /// # Errors
    /// See [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Check the header is present, the version is 2 and the length field
    /// (plus the digest when cryptographic authentication is used) fits.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`].
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VERSION] != 2 {
            return Err(Error::Malformed);
        }
        let len = usize::from(self.length());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        let trailer = if self.au_type() == AU_CRYPTO {
            usize::from(self.auth_len())
        } else {
            0
        };
        if b.len() < len + trailer {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consume the view.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (2).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// Packet type.
    pub fn packet_type(&self) -> PacketType {
        PacketType::from(self.buffer.as_ref()[field::TYPE])
    }
    /// Packet length (header and body, no digest).
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Router ID of the sender.
    pub fn router_id(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::ROUTER_ID)
    }
    /// Area ID.
    pub fn area_id(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::AREA_ID)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Authentication type.
    pub fn au_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::AU_TYPE)
    }
    /// The 8-byte authentication field.
    pub fn auth(&self) -> [u8; 8] {
        let mut a = [0; 8];
        a.copy_from_slice(&self.buffer.as_ref()[field::AUTH]);
        a
    }
    /// Key ID (cryptographic authentication).
    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[field::KEY_ID]
    }
    /// Authentication data length (cryptographic authentication).
    pub fn auth_len(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_LEN]
    }
    /// Cryptographic sequence number.
    pub fn crypto_seq(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::CRYPTO_SEQ)
    }
    /// The body, after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let len = usize::from(self.length()).clamp(HEADER_LEN, b.len());
        &b[HEADER_LEN..len]
    }
    /// The authentication trailer (digest) after the packet, if any.
    pub fn digest(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let start = usize::from(self.length()).min(b.len());
        let end = (start + usize::from(self.auth_len())).min(b.len());
        &b[start..end]
    }

    /// Whether the header checksum (computed without the authentication
    /// field) is right. Meaningless with cryptographic authentication.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        let len = usize::from(self.length()).clamp(HEADER_LEN, b.len());
        let mut sum = 0;
        sum16(&mut sum, &b[..field::AUTH.start]);
        sum16(&mut sum, &b[HEADER_LEN..len]);
        fold(sum) == 0
    }

    /// Whether the keyed-MD5 digest after the packet matches `key`
    /// (RFC 2328 §D.4.3). False if the packet does not use cryptographic
    /// authentication or the digest is not 16 bytes.
    pub fn verify_md5(&self, key: &[u8]) -> bool {
        if self.au_type() != AU_CRYPTO || self.auth_len() as usize != MD5_DIGEST_LEN {
            return false;
        }
        let b = self.buffer.as_ref();
        let len = usize::from(self.length()).min(b.len());
        let digest = self.digest();
        digest.len() == MD5_DIGEST_LEN && md5_digest(&b[..len], key)[..] == digest[..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v
    }
    /// Set the packet type.
    pub fn set_packet_type(&mut self, v: PacketType) {
        self.buffer.as_mut()[field::TYPE] = v.into()
    }
    /// Set the length.
    pub fn set_length(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    /// Set the router ID.
    pub fn set_router_id(&mut self, v: Ipv4Addr) {
        put_addr(self.buffer.as_mut(), field::ROUTER_ID, v)
    }
    /// Set the area ID.
    pub fn set_area_id(&mut self, v: Ipv4Addr) {
        put_addr(self.buffer.as_mut(), field::AREA_ID, v)
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    /// Set the authentication type.
    pub fn set_au_type(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::AU_TYPE, v)
    }
    /// Set the 8-byte authentication field.
    pub fn set_auth(&mut self, v: [u8; 8]) {
        self.buffer.as_mut()[field::AUTH].copy_from_slice(&v)
    }
    /// Compute and store the header checksum (authentication field excluded).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = usize::from(self.length()).clamp(HEADER_LEN, b.len());
        let mut sum = 0;
        sum16(&mut sum, &b[..field::AUTH.start]);
        sum16(&mut sum, &b[HEADER_LEN..len]);
        let ck = fold(sum);
        self.set_checksum(ck);
    }
    /// Compute and append the keyed-MD5 digest after `length` bytes.
    ///
    /// # Panics
    /// If the buffer has no room for the 16-byte digest.
    pub fn fill_md5(&mut self, key: &[u8]) {
        let len = usize::from(self.length());
        let d = md5_digest(&self.buffer.as_ref()[..len], key);
        self.buffer.as_mut()[len..len + MD5_DIGEST_LEN].copy_from_slice(&d);
    }
}

/// Authentication in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthRepr {
    /// Type 0.
    None,
    /// Type 1: clear-text password (8 bytes, zero-padded).
    Simple([u8; 8]),
    /// Type 2 with a 16-byte keyed-MD5 digest after the packet.
    Md5 {
        /// Key ID.
        key_id: u8,
        /// Non-decreasing cryptographic sequence number.
        seq: u32,
    },
}

/// Hello body (§A.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HelloRepr {
    /// Network mask of the interface.
    pub mask: Ipv4Addr,
    /// HelloInterval in seconds.
    pub hello_interval: u16,
    /// Options.
    pub options: u8,
    /// Router priority.
    pub priority: u8,
    /// RouterDeadInterval in seconds.
    pub dead_interval: u32,
    /// Designated router (interface address), or 0.0.0.0.
    pub dr: Ipv4Addr,
    /// Backup designated router, or 0.0.0.0.
    pub bdr: Ipv4Addr,
    /// Router IDs heard from.
    pub neighbors: Vec<Ipv4Addr>,
}

/// Database Description body (§A.3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DbDescRepr {
    /// Interface MTU.
    pub mtu: u16,
    /// Options.
    pub options: u8,
    /// I/M/MS flags (whole byte, unknown bits kept).
    pub flags: u8,
    /// DD sequence number.
    pub seq: u32,
    /// LSA headers.
    pub lsas: Vec<LsaHeaderRepr>,
}

/// One Link State Request entry (§A.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LsRequestEntry {
    /// LS type.
    pub ls_type: LsType,
    /// Link State ID.
    pub ls_id: Ipv4Addr,
    /// Advertising router.
    pub adv_router: Ipv4Addr,
}

/// The packet body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    /// Type 1.
    Hello(HelloRepr),
    /// Type 2.
    DbDesc(DbDescRepr),
    /// Type 3.
    LsRequest(Vec<LsRequestEntry>),
    /// Type 4.
    LsUpdate(Vec<LsaRepr>),
    /// Type 5.
    LsAck(Vec<LsaHeaderRepr>),
}

/// A whole OSPF packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketRepr {
    /// Router ID of the sender.
    pub router_id: Ipv4Addr,
    /// Area ID.
    pub area_id: Ipv4Addr,
    /// Authentication.
    pub auth: AuthRepr,
    /// Body.
    pub body: Body,
}

fn lsa_headers(b: &[u8]) -> Result<Vec<LsaHeaderRepr>> {
    if b.len() % LSA_HEADER_LEN != 0 {
        return Err(Error::Malformed);
    }
    Ok(b.chunks_exact(LSA_HEADER_LEN)
        .map(|c| LsaHeaderRepr::parse(&LsaHeader::new_unchecked(c)))
        .collect())
}

impl Body {
    fn packet_type(&self) -> PacketType {
        match self {
            Body::Hello(_) => PacketType::Hello,
            Body::DbDesc(_) => PacketType::DbDesc,
            Body::LsRequest(_) => PacketType::LsRequest,
            Body::LsUpdate(_) => PacketType::LsUpdate,
            Body::LsAck(_) => PacketType::LsAck,
        }
    }

    fn parse(ty: PacketType, b: &[u8]) -> Result<Self> {
        Ok(match ty {
            PacketType::Hello => {
                if b.len() < 20 || b.len() % 4 != 0 {
                    return Err(Error::Malformed);
                }
                Body::Hello(HelloRepr {
                    mask: get_addr(b, 0),
                    hello_interval: get_u16(b, 4),
                    options: b[6],
                    priority: b[7],
                    dead_interval: get_u32(b, 8),
                    dr: get_addr(b, 12),
                    bdr: get_addr(b, 16),
                    neighbors: (20..b.len()).step_by(4).map(|i| get_addr(b, i)).collect(),
                })
            }
            PacketType::DbDesc => {
                if b.len() < 8 {
                    return Err(Error::Malformed);
                }
                Body::DbDesc(DbDescRepr {
                    mtu: get_u16(b, 0),
                    options: b[2],
                    flags: b[3],
                    seq: get_u32(b, 4),
                    lsas: lsa_headers(&b[8..])?,
                })
            }
            PacketType::LsRequest => {
                if b.len() % 12 != 0 {
                    return Err(Error::Malformed);
                }
                let mut v = Vec::with_capacity(b.len() / 12);
                for c in b.chunks_exact(12) {
                    let ty = u8::try_from(get_u32(c, 0)).map_err(|_| Error::Malformed)?;
                    v.push(LsRequestEntry {
                        ls_type: LsType::from(ty),
                        ls_id: get_addr(c, 4),
                        adv_router: get_addr(c, 8),
                    });
                }
                Body::LsRequest(v)
            }
            PacketType::LsUpdate => {
                if b.len() < 4 {
                    return Err(Error::Malformed);
                }
                let n = get_u32(b, 0) as usize;
                let mut at = 4;
                let mut v = Vec::with_capacity(n.min(b.len() / LSA_HEADER_LEN));
                for _ in 0..n {
                    let h = LsaHeader::new_checked(b.get(at..).ok_or(Error::Truncated)?)?;
                    let lsa = LsaRepr::parse(&h)?;
                    at += usize::from(lsa.header.length);
                    v.push(lsa);
                }
                if at != b.len() {
                    return Err(Error::Malformed);
                }
                Body::LsUpdate(v)
            }
            PacketType::LsAck => Body::LsAck(lsa_headers(b)?),
            PacketType::Unknown(_) => return Err(Error::Malformed),
        })
    }

    fn len(&self) -> usize {
        match self {
            Body::Hello(h) => 20 + 4 * h.neighbors.len(),
            Body::DbDesc(d) => 8 + LSA_HEADER_LEN * d.lsas.len(),
            Body::LsRequest(r) => 12 * r.len(),
            Body::LsUpdate(u) => 4 + u.iter().map(LsaRepr::buffer_len).sum::<usize>(),
            Body::LsAck(a) => LSA_HEADER_LEN * a.len(),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        match self {
            Body::Hello(h) => {
                put_addr(b, 0, h.mask);
                put_u16(b, 4, h.hello_interval);
                b[6] = h.options;
                b[7] = h.priority;
                put_u32(b, 8, h.dead_interval);
                put_addr(b, 12, h.dr);
                put_addr(b, 16, h.bdr);
                for (i, n) in h.neighbors.iter().enumerate() {
                    put_addr(b, 20 + 4 * i, *n);
                }
            }
            Body::DbDesc(d) => {
                put_u16(b, 0, d.mtu);
                b[2] = d.options;
                b[3] = d.flags;
                put_u32(b, 4, d.seq);
                for (i, h) in d.lsas.iter().enumerate() {
                    let at = 8 + LSA_HEADER_LEN * i;
                    h.emit(&mut LsaHeader::new_unchecked(
                        &mut b[at..at + LSA_HEADER_LEN],
                    ));
                }
            }
            Body::LsRequest(r) => {
                for (i, e) in r.iter().enumerate() {
                    let at = 12 * i;
                    put_u32(b, at, u32::from(u8::from(e.ls_type)));
                    put_addr(b, at + 4, e.ls_id);
                    put_addr(b, at + 8, e.adv_router);
                }
            }
            Body::LsUpdate(u) => {
                put_u32(b, 0, u.len() as u32);
                let mut at = 4;
                for lsa in u {
                    lsa.emit(&mut b[at..]);
                    at += lsa.buffer_len();
                }
            }
            Body::LsAck(a) => {
                for (i, h) in a.iter().enumerate() {
                    let at = LSA_HEADER_LEN * i;
                    h.emit(&mut LsaHeader::new_unchecked(
                        &mut b[at..at + LSA_HEADER_LEN],
                    ));
                }
            }
        }
    }
}

impl PacketRepr {
    /// Parse a checked packet. This checks the header checksum unless the
    /// packet uses cryptographic authentication; it does not check the
    /// password or digest (see [`Packet::verify_md5`]).
    ///
    /// # Errors
    /// [`Error::Checksum`] (header or any LSA), [`Error::Malformed`] (unknown
    /// packet or authentication type, bad body layout), [`Error::Truncated`].
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        let auth = match p.au_type() {
            AU_NONE => AuthRepr::None,
            AU_SIMPLE => AuthRepr::Simple(p.auth()),
            AU_CRYPTO => {
                if usize::from(p.auth_len()) != MD5_DIGEST_LEN {
                    return Err(Error::Malformed);
                }
                AuthRepr::Md5 {
                    key_id: p.key_id(),
                    seq: p.crypto_seq(),
                }
            }
            _ => return Err(Error::Malformed),
        };
        if !matches!(auth, AuthRepr::Md5 { .. }) && !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(PacketRepr {
            router_id: p.router_id(),
            area_id: p.area_id(),
            auth,
            body: Body::parse(p.packet_type(), p.payload())?,
        })
    }

    /// Bytes `emit` writes (digest included).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + self.body.len()
            + match self.auth {
                AuthRepr::Md5 { .. } => MD5_DIGEST_LEN,
                _ => 0,
            }
    }

    /// Emit the packet: header checksum, or for [`AuthRepr::Md5`] a zero
    /// checksum and the digest computed with `md5_key`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buf: &mut [u8], md5_key: &[u8]) {
        let buf = &mut buf[..self.buffer_len()];
        let len = HEADER_LEN + self.body.len();
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_version(2);
        p.set_packet_type(self.body.packet_type());
        p.set_length(len as u16);
        p.set_router_id(self.router_id);
        p.set_area_id(self.area_id);
        p.set_checksum(0);
        let (au, data) = match self.auth {
            AuthRepr::None => (AU_NONE, [0; 8]),
            AuthRepr::Simple(pw) => (AU_SIMPLE, pw),
            AuthRepr::Md5 { key_id, seq } => {
                let s = seq.to_be_bytes();
                (
                    AU_CRYPTO,
                    [0, 0, key_id, MD5_DIGEST_LEN as u8, s[0], s[1], s[2], s[3]],
                )
            }
        };
        p.set_au_type(au);
        p.set_auth(data);
        self.body.emit(&mut buf[HEADER_LEN..len]);
        let mut p = Packet::new_unchecked(buf);
        match self.auth {
            AuthRepr::Md5 { .. } => p.fill_md5(md5_key),
            _ => p.fill_checksum(),
        }
    }

    /// Emit into a new vector.
    pub fn to_bytes(&self, md5_key: &[u8]) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v, md5_key);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> PacketRepr {
        PacketRepr {
            router_id: Ipv4Addr::new(10, 99, 0, 1),
            area_id: Ipv4Addr::UNSPECIFIED,
            auth: AuthRepr::None,
            body: Body::Hello(HelloRepr {
                mask: Ipv4Addr::new(255, 255, 255, 0),
                hello_interval: 1,
                options: OPTION_E,
                priority: 1,
                dead_interval: 4,
                dr: Ipv4Addr::new(10, 99, 0, 2),
                bdr: Ipv4Addr::new(10, 99, 0, 1),
                neighbors: vec![Ipv4Addr::new(10, 99, 0, 2)],
            }),
        }
    }

    #[test]
    fn hello_emit_parse() {
        let bytes = hello().to_bytes(&[]);
        assert_eq!(bytes.len(), 48);
        assert_eq!(&bytes[..4], &[2, 1, 0, 48]);
        let p = Packet::new_checked(&bytes[..]).expect("checked");
        assert!(p.verify_checksum());
        assert_eq!(PacketRepr::parse(&p).expect("parse"), hello());
    }

    #[test]
    fn md5_emit_verify() {
        let mut h = hello();
        h.auth = AuthRepr::Md5 { key_id: 1, seq: 42 };
        let bytes = h.to_bytes(b"secret");
        assert_eq!(bytes.len(), 64);
        let p = Packet::new_checked(&bytes[..]).expect("checked");
        assert_eq!(p.checksum(), 0);
        assert!(p.verify_md5(b"secret"));
        assert!(!p.verify_md5(b"other"));
        assert_eq!(PacketRepr::parse(&p).expect("parse"), h);
        // The digest is required.
        assert_eq!(
            Packet::new_checked(&bytes[..50]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn bad_input() {
        let mut bytes = hello().to_bytes(&[]);
        bytes[30] ^= 1;
        let p = Packet::new_checked(&bytes[..]).expect("checked");
        assert_eq!(PacketRepr::parse(&p), Err(Error::Checksum));
        bytes[0] = 3;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
        assert_eq!(
            Packet::new_checked(&bytes[..10]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = hello().to_bytes(&[]);
        bytes[3] = 200;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn every_prefix_is_refused_without_panic() {
        let bytes = hello().to_bytes(&[]);
        for n in 0..bytes.len() {
            if let Ok(p) = Packet::new_checked(&bytes[..n]) {
                assert!(PacketRepr::parse(&p).is_err());
            }
        }
    }
}
