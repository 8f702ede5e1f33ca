//! OSPFv2 wire codec (RFC 2328 appendix A).
//!
//! Every protocol unit comes in two layers, as in smoltcp:
//!
//! * a view (`Packet<T>`, `LsaHeader<T>`, …) over a byte buffer with a
//!   `new_checked` constructor; once that succeeded no getter can panic;
//! * a `*Repr` with `parse`, `buffer_len` and `emit`, the owned high-level form.
//!
//! `parse` followed by `emit` reproduces the input bytes (the capture tests
//! check this against real BIRD and FRR traffic). LSA types this crate does
//! not understand are carried as raw bytes and re-emitted unchanged.

mod checksum;
mod lsa;
mod packet;

pub use checksum::{fletcher16, fletcher16_verify, internet_checksum};
pub use lsa::{
    ExternalLsaRepr, ExternalMetric, LsType, LsaBody, LsaHeader, LsaHeaderRepr, LsaRepr,
    NetworkLsaRepr, RouterLink, RouterLinkType, RouterLsaRepr, LSA_HEADER_LEN, ROUTER_FLAG_E,
};
pub use packet::{
    AuthRepr, Body, DbDescRepr, HelloRepr, LsRequestEntry, Packet, PacketRepr, PacketType,
    DBD_FLAG_I, DBD_FLAG_M, DBD_FLAG_MS, HEADER_LEN, MD5_DIGEST_LEN, OPTION_E,
};

/// Why bytes were refused. Small and `Copy`: it doubles as a drop-counter cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Error {
    /// The buffer is shorter than a length field or a fixed layout requires.
    Truncated,
    /// A field holds a value the layout forbids (bad version, bad length, unknown type).
    Malformed,
    /// The OSPF header checksum or an LSA Fletcher checksum is wrong.
    Checksum,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "bad checksum",
        })
    }
}

impl std::error::Error for Error {}

/// Result of the wire layer.
pub type Result<T> = core::result::Result<T, Error>;

pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn get_addr(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(get_u32(b, at))
}

pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_addr(b: &mut [u8], at: usize, v: std::net::Ipv4Addr) {
    b[at..at + 4].copy_from_slice(&v.octets());
}
