//! LSA header and the LSA bodies dpvsd needs (RFC 2328 §A.4).

use std::net::Ipv4Addr;

use super::checksum::{fletcher16, fletcher16_verify};
use super::{get_addr, get_u16, get_u32, put_addr, put_u16, put_u32, Error, Result};

/// Length of the LSA header.
pub const LSA_HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;
    pub const AGE: Range<usize> = 0..2;
    pub const OPTIONS: usize = 2;
    pub const TYPE: usize = 3;
    pub const LS_ID: usize = 4;
    pub const ADV_ROUTER: usize = 8;
    pub const SEQ: usize = 12;
    pub const CHECKSUM: usize = 16;
    pub const LENGTH: usize = 18;
}

/// LS type. Unknown types keep their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LsType {
    /// Type 1.
    Router,
    /// Type 2.
    Network,
    /// Type 3.
    SummaryNetwork,
    /// Type 4.
    SummaryAsbr,
    /// Type 5.
    AsExternal,
    /// Anything else (NSSA, opaque, …), carried unchanged.
    Unknown(u8),
}

impl From<u8> for LsType {
    fn from(v: u8) -> Self {
        match v {
            1 => LsType::Router,
            2 => LsType::Network,
            3 => LsType::SummaryNetwork,
            4 => LsType::SummaryAsbr,
            5 => LsType::AsExternal,
            other => LsType::Unknown(other),
        }
    }
}

impl From<LsType> for u8 {
    fn from(v: LsType) -> u8 {
        match v {
            LsType::Router => 1,
            LsType::Network => 2,
            LsType::SummaryNetwork => 3,
            LsType::SummaryAsbr => 4,
            LsType::AsExternal => 5,
            LsType::Unknown(other) => other,
        }
    }
}

/// A view over one LSA (header and body) or, for DBD/LSAck, just a header.
#[derive(Debug, Clone, Copy)]
pub struct LsaHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> LsaHeader<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        LsaHeader { buffer }
    }

    /// Wrap and check that the 20-byte header is present.
    ///
    /// # Errors
    /// [`Error::Truncated`] if it is not.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Check the header fits.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the buffer is shorter than 20 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < LSA_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Check that the whole LSA (as long as its length field says) fits and
    /// that the length is at least a header.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`].
    pub fn check_full_len(&self) -> Result<()> {
        self.check_len()?;
        let len = usize::from(self.length());
        if len < LSA_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if self.buffer.as_ref().len() < len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consume the view.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// LS age in seconds.
    pub fn age(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::AGE.start)
    }
    /// Options.
    pub fn options(&self) -> u8 {
        self.buffer.as_ref()[field::OPTIONS]
    }
    /// LS type.
    pub fn ls_type(&self) -> LsType {
        LsType::from(self.buffer.as_ref()[field::TYPE])
    }
    /// Link State ID.
    pub fn ls_id(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::LS_ID)
    }
    /// Advertising router.
    pub fn adv_router(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::ADV_ROUTER)
    }
    /// LS sequence number.
    pub fn seq(&self) -> i32 {
        get_u32(self.buffer.as_ref(), field::SEQ) as i32
    }
    /// Fletcher checksum.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Length of the whole LSA.
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the Fletcher checksum verifies. Call after `check_full_len`.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        let len = usize::from(self.length()).min(b.len());
        len >= LSA_HEADER_LEN && fletcher16_verify(&b[2..len])
    }

    /// The body after the header, up to the length field. Call after `check_full_len`.
    pub fn body(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let len = usize::from(self.length()).clamp(LSA_HEADER_LEN, b.len());
        &b[LSA_HEADER_LEN..len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> LsaHeader<T> {
    /// Set the age.
    pub fn set_age(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::AGE.start, v)
    }
    /// Set the options.
    pub fn set_options(&mut self, v: u8) {
        self.buffer.as_mut()[field::OPTIONS] = v
    }
    /// Set the LS type.
    pub fn set_ls_type(&mut self, v: LsType) {
        self.buffer.as_mut()[field::TYPE] = v.into()
    }
    /// Set the Link State ID.
    pub fn set_ls_id(&mut self, v: Ipv4Addr) {
        put_addr(self.buffer.as_mut(), field::LS_ID, v)
    }
    /// Set the advertising router.
    pub fn set_adv_router(&mut self, v: Ipv4Addr) {
        put_addr(self.buffer.as_mut(), field::ADV_ROUTER, v)
    }
    /// Set the sequence number.
    pub fn set_seq(&mut self, v: i32) {
        put_u32(self.buffer.as_mut(), field::SEQ, v as u32)
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    /// Set the length field.
    pub fn set_length(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    /// Compute and store the Fletcher checksum over `length` bytes.
    pub fn fill_checksum(&mut self) {
        let len = usize::from(self.length()).min(self.buffer.as_ref().len());
        if len < LSA_HEADER_LEN {
            return;
        }
        let ck = fletcher16(&self.buffer.as_ref()[2..len], field::CHECKSUM - 2);
        self.set_checksum(ck);
    }
}

/// The LSA header as data. Identifies one LSA instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LsaHeaderRepr {
    /// LS age in seconds.
    pub age: u16,
    /// Options.
    pub options: u8,
    /// LS type.
    pub ls_type: LsType,
    /// Link State ID.
    pub ls_id: Ipv4Addr,
    /// Advertising router.
    pub adv_router: Ipv4Addr,
    /// Sequence number.
    pub seq: i32,
    /// Fletcher checksum.
    pub checksum: u16,
    /// Length of the whole LSA.
    pub length: u16,
}

impl LsaHeaderRepr {
    /// Parse a header.
    pub fn parse<T: AsRef<[u8]>>(h: &LsaHeader<T>) -> Self {
        LsaHeaderRepr {
            age: h.age(),
            options: h.options(),
            ls_type: h.ls_type(),
            ls_id: h.ls_id(),
            adv_router: h.adv_router(),
            seq: h.seq(),
            checksum: h.checksum(),
            length: h.length(),
        }
    }

    /// Emit the header exactly as given (checksum and length included).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut LsaHeader<T>) {
        h.set_age(self.age);
        h.set_options(self.options);
        h.set_ls_type(self.ls_type);
        h.set_ls_id(self.ls_id);
        h.set_adv_router(self.adv_router);
        h.set_seq(self.seq);
        h.set_checksum(self.checksum);
        h.set_length(self.length);
    }

    /// The (type, id, advertising router) key that names an LSA.
    pub fn key(&self) -> (LsType, Ipv4Addr, Ipv4Addr) {
        (self.ls_type, self.ls_id, self.adv_router)
    }
}

/// Router-LSA link type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouterLinkType {
    /// 1: point-to-point to another router.
    PointToPoint,
    /// 2: connection to a transit network.
    Transit,
    /// 3: connection to a stub network.
    Stub,
    /// 4: virtual link.
    Virtual,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for RouterLinkType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::PointToPoint,
            2 => Self::Transit,
            3 => Self::Stub,
            4 => Self::Virtual,
            o => Self::Unknown(o),
        }
    }
}

impl From<RouterLinkType> for u8 {
    fn from(v: RouterLinkType) -> u8 {
        match v {
            RouterLinkType::PointToPoint => 1,
            RouterLinkType::Transit => 2,
            RouterLinkType::Stub => 3,
            RouterLinkType::Virtual => 4,
            RouterLinkType::Unknown(o) => o,
        }
    }
}

/// One link of a Router-LSA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouterLink {
    /// Link ID.
    pub link_id: Ipv4Addr,
    /// Link Data.
    pub link_data: Ipv4Addr,
    /// Link type.
    pub link_type: RouterLinkType,
    /// TOS 0 metric.
    pub metric: u16,
    /// Extra TOS metrics `(tos, metric)`, carried unchanged.
    pub tos: Vec<(u8, u16)>,
}

/// Router-LSA body (type 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouterLsaRepr {
    /// The V/E/B flag byte.
    pub flags: u8,
    /// Links.
    pub links: Vec<RouterLink>,
}

/// Router-LSA flag E: AS boundary router.
pub const ROUTER_FLAG_E: u8 = 0x02;

/// Network-LSA body (type 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkLsaRepr {
    /// Network mask.
    pub mask: Ipv4Addr,
    /// Attached routers.
    pub routers: Vec<Ipv4Addr>,
}

/// One metric entry of an AS-external-LSA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalMetric {
    /// E bit: type 2 metric.
    pub e_bit: bool,
    /// TOS (0 for the first entry).
    pub tos: u8,
    /// 24-bit metric.
    pub metric: u32,
    /// Forwarding address.
    pub forwarding: Ipv4Addr,
    /// External route tag.
    pub tag: u32,
}

/// AS-external-LSA body (type 5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalLsaRepr {
    /// Network mask.
    pub mask: Ipv4Addr,
    /// Metrics (TOS 0 first).
    pub metrics: Vec<ExternalMetric>,
}

/// The body of an LSA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LsaBody {
    /// Type 1.
    Router(RouterLsaRepr),
    /// Type 2.
    Network(NetworkLsaRepr),
    /// Type 5.
    External(ExternalLsaRepr),
    /// Any other type: the body bytes, unchanged.
    Other(Vec<u8>),
}

/// A whole LSA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LsaRepr {
    /// Header. `emit` recomputes `length` and `checksum`.
    pub header: LsaHeaderRepr,
    /// Body.
    pub body: LsaBody,
}

fn parse_router(b: &[u8]) -> Result<RouterLsaRepr> {
    if b.len() < 4 {
        return Err(Error::Truncated);
    }
    let flags = b[0];
    let n = usize::from(get_u16(b, 2));
    let mut at = 4;
    let mut links = Vec::with_capacity(n.min(b.len() / 12));
    for _ in 0..n {
        if b.len() < at + 12 {
            return Err(Error::Truncated);
        }
        let ntos = usize::from(b[at + 9]);
        let end = at + 12 + 4 * ntos;
        if b.len() < end {
            return Err(Error::Truncated);
        }
        let tos = (0..ntos)
            .map(|i| {
                let t = at + 12 + 4 * i;
                (b[t], get_u16(b, t + 2))
            })
            .collect();
        links.push(RouterLink {
            link_id: get_addr(b, at),
            link_data: get_addr(b, at + 4),
            link_type: RouterLinkType::from(b[at + 8]),
            metric: get_u16(b, at + 10),
            tos,
        });
        at = end;
    }
    if at != b.len() {
        return Err(Error::Malformed);
    }
    Ok(RouterLsaRepr { flags, links })
}

fn parse_network(b: &[u8]) -> Result<NetworkLsaRepr> {
    if b.len() < 4 || b.len() % 4 != 0 {
        return Err(Error::Malformed);
    }
    Ok(NetworkLsaRepr {
        mask: get_addr(b, 0),
        routers: (4..b.len()).step_by(4).map(|i| get_addr(b, i)).collect(),
    })
}

fn parse_external(b: &[u8]) -> Result<ExternalLsaRepr> {
    if b.len() < 16 || (b.len() - 4) % 12 != 0 {
        return Err(Error::Malformed);
    }
    let metrics = (4..b.len())
        .step_by(12)
        .map(|i| ExternalMetric {
            e_bit: b[i] & 0x80 != 0,
            tos: b[i] & 0x7f,
            metric: get_u32(b, i) & 0x00ff_ffff,
            forwarding: get_addr(b, i + 4),
            tag: get_u32(b, i + 8),
        })
        .collect();
    Ok(ExternalLsaRepr {
        mask: get_addr(b, 0),
        metrics,
    })
}

impl LsaBody {
    fn len(&self) -> usize {
        match self {
            LsaBody::Router(r) => 4 + r.links.iter().map(|l| 12 + 4 * l.tos.len()).sum::<usize>(),
            LsaBody::Network(n) => 4 + 4 * n.routers.len(),
            LsaBody::External(e) => 4 + 12 * e.metrics.len(),
            LsaBody::Other(v) => v.len(),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        match self {
            LsaBody::Router(r) => {
                b[0] = r.flags;
                b[1] = 0;
                put_u16(b, 2, r.links.len() as u16);
                let mut at = 4;
                for l in &r.links {
                    put_addr(b, at, l.link_id);
                    put_addr(b, at + 4, l.link_data);
                    b[at + 8] = l.link_type.into();
                    b[at + 9] = l.tos.len() as u8;
                    put_u16(b, at + 10, l.metric);
                    at += 12;
                    for &(tos, metric) in &l.tos {
                        b[at] = tos;
                        b[at + 1] = 0;
                        put_u16(b, at + 2, metric);
                        at += 4;
                    }
                }
            }
            LsaBody::Network(n) => {
                put_addr(b, 0, n.mask);
                for (i, r) in n.routers.iter().enumerate() {
                    put_addr(b, 4 + 4 * i, *r);
                }
            }
            LsaBody::External(e) => {
                put_addr(b, 0, e.mask);
                for (i, m) in e.metrics.iter().enumerate() {
                    let at = 4 + 12 * i;
                    let first = (u32::from(m.e_bit) << 31) | (u32::from(m.tos & 0x7f) << 24);
                    put_u32(b, at, first | (m.metric & 0x00ff_ffff));
                    put_addr(b, at + 4, m.forwarding);
                    put_u32(b, at + 8, m.tag);
                }
            }
            LsaBody::Other(v) => b[..v.len()].copy_from_slice(v),
        }
    }
}

impl LsaRepr {
    /// Parse a whole LSA; checks the length and the Fletcher checksum.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::Malformed`] (also for a body that does not
    /// match its known type) or [`Error::Checksum`].
    pub fn parse<T: AsRef<[u8]>>(lsa: &LsaHeader<T>) -> Result<Self> {
        lsa.check_full_len()?;
        if !lsa.verify_checksum() {
            return Err(Error::Checksum);
        }
        let header = LsaHeaderRepr::parse(lsa);
        let b = lsa.body();
        let body = match header.ls_type {
            LsType::Router => LsaBody::Router(parse_router(b)?),
            LsType::Network => LsaBody::Network(parse_network(b)?),
            LsType::AsExternal => LsaBody::External(parse_external(b)?),
            _ => LsaBody::Other(b.to_vec()),
        };
        Ok(LsaRepr { header, body })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        LSA_HEADER_LEN + self.body.len()
    }

    /// Emit header and body, computing the length and the Fletcher checksum.
    ///
    /// # Panics
    /// If `buf` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let mut hdr = self.header;
        hdr.length = len as u16;
        hdr.checksum = 0;
        let mut h = LsaHeader::new_unchecked(&mut *buf);
        hdr.emit(&mut h);
        self.body.emit(&mut buf[LSA_HEADER_LEN..]);
        LsaHeader::new_unchecked(buf).fill_checksum();
    }

    /// Emit into a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router_lsa() -> LsaRepr {
        LsaRepr {
            header: LsaHeaderRepr {
                age: 1,
                options: 0x02,
                ls_type: LsType::Router,
                ls_id: Ipv4Addr::new(10, 99, 0, 1),
                adv_router: Ipv4Addr::new(10, 99, 0, 1),
                seq: i32::MIN + 1,
                checksum: 0,
                length: 0,
            },
            body: LsaBody::Router(RouterLsaRepr {
                flags: 0,
                links: vec![RouterLink {
                    link_id: Ipv4Addr::new(10, 99, 100, 1),
                    link_data: Ipv4Addr::BROADCAST,
                    link_type: RouterLinkType::Stub,
                    metric: 10,
                    tos: vec![],
                }],
            }),
        }
    }

    #[test]
    fn emit_then_parse() {
        let lsa = router_lsa();
        let bytes = lsa.to_bytes();
        assert_eq!(bytes.len(), 36);
        let view = LsaHeader::new_checked(&bytes[..]).expect("header");
        assert!(view.verify_checksum());
        let back = LsaRepr::parse(&view).expect("parse");
        assert_eq!(back.body, lsa.body);
        assert_eq!(back.header.length, 36);
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn corrupt_and_truncated() {
        let mut bytes = router_lsa().to_bytes();
        bytes[25] ^= 0xff;
        let view = LsaHeader::new_checked(&bytes[..]).expect("header");
        assert_eq!(LsaRepr::parse(&view), Err(Error::Checksum));
        let short = &bytes[..30];
        assert_eq!(
            LsaRepr::parse(&LsaHeader::new_unchecked(short)),
            Err(Error::Truncated)
        );
        assert_eq!(
            LsaHeader::new_checked(&bytes[..10]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn unknown_type_carried() {
        let mut lsa = router_lsa();
        lsa.header.ls_type = LsType::Unknown(10);
        lsa.body = LsaBody::Other(vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let bytes = lsa.to_bytes();
        let back = LsaRepr::parse(&LsaHeader::new_unchecked(&bytes[..])).expect("parse");
        assert_eq!(back.body, lsa.body);
        assert_eq!(back.header.ls_type, LsType::Unknown(10));
    }

    #[test]
    fn external_roundtrip() {
        let mut lsa = router_lsa();
        lsa.header.ls_type = LsType::AsExternal;
        lsa.body = LsaBody::External(ExternalLsaRepr {
            mask: Ipv4Addr::BROADCAST,
            metrics: vec![ExternalMetric {
                e_bit: true,
                tos: 0,
                metric: 0x00ab_cdef,
                forwarding: Ipv4Addr::UNSPECIFIED,
                tag: 7,
            }],
        });
        let bytes = lsa.to_bytes();
        assert_eq!(&bytes[24..26], &[0x80, 0xab]);
        let back = LsaRepr::parse(&LsaHeader::new_unchecked(&bytes[..])).expect("parse");
        assert_eq!(back.body, lsa.body);
    }
}
