//! The VRRP advertisement (RFC 3768 §5 for version 2, RFC 5798 §5 for version 3).
//!
//! ```text
//!  0                   1                   2                   3
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IPvX Addr|
//! v2: | Auth Type   |   Adver Int   |          Checksum              |
//! v3: |(rsvd)|     Max Adver Int    |          Checksum              |
//! |                  IPvX Address(es) ...                             |
//! v2: |                  Authentication Data (8 bytes)                |
//! ```
//!
//! The address length depends on the IP family that carried the packet, so
//! the view is built with a [`Family`]. Version 2 always carries the 8-byte
//! authentication field after the addresses (keepalived does so for IPv6 too).

use super::{checksum, WireError, IP_PROTO_VRRP};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod field {
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    pub const AUTH_TYPE: usize = 4;
    pub const ADVER_INT_V2: usize = 5;
    pub const ADVER_INT_V3: std::ops::Range<usize> = 4..6;
    pub const CHECKSUM: std::ops::Range<usize> = 6..8;
    pub const ADDRS: usize = 8;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::ADDRS;
/// Length of the VRRPv2 authentication data.
pub const AUTH_DATA_LEN: usize = 8;

/// The IP family that carries a packet; it fixes the address length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 4-byte addresses.
    V4,
    /// IPv6: 16-byte addresses.
    V6,
}

impl Family {
    /// Address length in bytes.
    pub const fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// The family of `addr`.
    pub const fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: seconds, authentication field, checksum without pseudo-header over IPv4.
    V2,
    /// RFC 5798: centiseconds, no authentication, checksum with pseudo-header.
    V3,
}

impl Version {
    /// The number in the version field.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

macro_rules! enum_with_unknown {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
            /// A value this implementation does not know; carried unchanged.
            Unknown(u8),
        }
        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $($value => $name::$variant,)+
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $($name::$variant => $value,)+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

enum_with_unknown! {
    /// The VRRP message type.
    pub enum MessageType {
        /// The only type defined.
        Advertisement = 1,
    }
}

enum_with_unknown! {
    /// VRRPv2 authentication type (RFC 2338 / keepalived).
    pub enum AuthType {
        /// No authentication.
        None = 0,
        /// Simple text password (keepalived `auth_type PASS`).
        Pass = 1,
        /// IP Authentication Header (keepalived `auth_type AH`).
        Ah = 2,
    }
}

/// A read/write view of a VRRP packet.
#[derive(Debug, Clone)]
pub struct VrrpPacket<T: AsRef<[u8]>> {
    buffer: T,
    family: Family,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic on short input.
    pub const fn new_unchecked(buffer: T, family: Family) -> VrrpPacket<T> {
        VrrpPacket { buffer, family }
    }

    /// Wraps a buffer and checks it with [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::BadVersion`].
    pub fn new_checked(buffer: T, family: Family) -> Result<VrrpPacket<T>, WireError> {
        let p = Self::new_unchecked(buffer, family);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the header, the addresses announced by
    /// the count and (v2) the authentication data, so no accessor panics.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if it is too short; [`WireError::BadVersion`]
    /// if the version is neither 2 nor 3 (the layout depends on it).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let version = self.version().ok_or(WireError::BadVersion)?;
        if len < Self::packet_len(version, self.family, usize::from(self.addr_count())) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Length of a packet with `count` addresses.
    pub const fn packet_len(version: Version, family: Family, count: usize) -> usize {
        let auth = match version {
            Version::V2 => AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        HEADER_LEN + count * family.addr_len() + auth
    }

    /// The family given at construction.
    pub const fn family(&self) -> Family {
        self.family
    }

    /// Consumes the view, giving the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw version number.
    pub fn version_number(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// The version, if it is 2 or 3.
    pub fn version(&self) -> Option<Version> {
        match self.version_number() {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    /// The message type.
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::VER_TYPE] & 0x0f)
    }

    /// Virtual router id.
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// Priority (0: the master stops, 255: address owner).
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// Number of addresses.
    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// VRRPv2 authentication type (meaningless for v3).
    pub fn auth_type(&self) -> AuthType {
        AuthType::from(self.buffer.as_ref()[field::AUTH_TYPE])
    }

    /// The advertisement interval: seconds for v2, centiseconds (12 bits) for v3.
    pub fn adver_int(&self) -> u16 {
        let b = self.buffer.as_ref();
        match self.version() {
            Some(Version::V2) => u16::from(b[field::ADVER_INT_V2]),
            _ => {
                u16::from_be_bytes([
                    b[field::ADVER_INT_V3.start],
                    b[field::ADVER_INT_V3.start + 1],
                ]) & 0x0fff
            }
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]])
    }

    /// The `i`th address, or `None` past the count.
    pub fn addr(&self, i: usize) -> Option<IpAddr> {
        if i >= usize::from(self.addr_count()) {
            return None;
        }
        let len = self.family.addr_len();
        let start = field::ADDRS + i * len;
        let raw = self.buffer.as_ref().get(start..start + len)?;
        Some(match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(raw).ok()?)),
        })
    }

    /// The addresses in order.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        (0..usize::from(self.addr_count())).filter_map(move |i| self.addr(i))
    }

    /// The VRRPv2 authentication data (zeros for v3 or a short buffer).
    pub fn auth_data(&self) -> [u8; AUTH_DATA_LEN] {
        let mut out = [0u8; AUTH_DATA_LEN];
        if self.version() == Some(Version::V2) {
            let start = field::ADDRS + usize::from(self.addr_count()) * self.family.addr_len();
            if let Some(src) = self.buffer.as_ref().get(start..start + AUTH_DATA_LEN) {
                out.copy_from_slice(src);
            }
        }
        out
    }

    /// Whether the checksum uses the pseudo-header: VRRPv3, and anything over IPv6.
    pub fn uses_pseudo_header(&self) -> bool {
        self.version() != Some(Version::V2) || self.family == Family::V6
    }

    /// The checksum over the buffer as it is (call with the field zeroed).
    fn compute_checksum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let data = self.buffer.as_ref();
        let acc = if self.uses_pseudo_header() {
            checksum::pseudo_header(src, dst, IP_PROTO_VRRP, data.len() as u32)
        } else {
            0
        };
        checksum::finish(data, acc)
    }

    /// Whether the checksum verifies over the whole buffer (the caller slices
    /// the buffer to the IP payload). `src`/`dst` are only used for the
    /// pseudo-header.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let data = self.buffer.as_ref();
        let acc = if self.uses_pseudo_header() {
            checksum::pseudo_header(src, dst, IP_PROTO_VRRP, data.len() as u32)
        } else {
            0
        };
        checksum::fold(acc + checksum::sum(data)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VrrpPacket<T> {
    /// Sets version and type.
    pub fn set_version_type(&mut self, version: Version, ty: MessageType) {
        self.buffer.as_mut()[field::VER_TYPE] = (version.number() << 4) | (u8::from(ty) & 0x0f);
    }

    /// Sets the virtual router id.
    pub fn set_vrid(&mut self, v: u8) {
        self.buffer.as_mut()[field::VRID] = v;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }

    /// Sets the address count.
    pub fn set_addr_count(&mut self, v: u8) {
        self.buffer.as_mut()[field::COUNT] = v;
    }

    /// Sets the v2 auth type and interval (seconds, truncated to 8 bits) or
    /// the v3 interval (centiseconds, 12 bits, reserved bits zero), according
    /// to the version already set.
    pub fn set_auth_and_interval(&mut self, auth: AuthType, adver_int: u16) {
        let v2 = self.version() == Some(Version::V2);
        let b = self.buffer.as_mut();
        if v2 {
            b[field::AUTH_TYPE] = u8::from(auth);
            b[field::ADVER_INT_V2] = adver_int.min(255) as u8;
        } else {
            b[field::ADVER_INT_V3].copy_from_slice(&(adver_int & 0x0fff).to_be_bytes());
        }
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the `i`th address (ignored if it does not fit or has the wrong family).
    pub fn set_addr(&mut self, i: usize, addr: IpAddr) {
        let len = self.family.addr_len();
        let start = field::ADDRS + i * len;
        let octets: Vec<u8> = match (self.family, addr) {
            (Family::V4, IpAddr::V4(a)) => a.octets().to_vec(),
            (Family::V6, IpAddr::V6(a)) => a.octets().to_vec(),
            _ => return,
        };
        if let Some(dst) = self.buffer.as_mut().get_mut(start..start + len) {
            dst.copy_from_slice(&octets);
        }
    }

    /// Sets the v2 authentication data after `count` addresses.
    pub fn set_auth_data(&mut self, data: &[u8; AUTH_DATA_LEN]) {
        let start = field::ADDRS + usize::from(self.addr_count()) * self.family.addr_len();
        if let Some(dst) = self.buffer.as_mut().get_mut(start..start + AUTH_DATA_LEN) {
            dst.copy_from_slice(data);
        }
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let c = self.compute_checksum(src, dst);
        self.set_checksum(c);
    }
}

/// A parsed VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VrrpRepr {
    /// Protocol version.
    pub version: Version,
    /// Message type (adverts are type 1).
    pub msg_type: MessageType,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// Interval in the version's unit: seconds (v2, at most 255) or centiseconds (v3, at most 4095).
    pub adver_int: u16,
    /// v2 auth type ([`AuthType::None`] for v3).
    pub auth_type: AuthType,
    /// v2 auth data (zeros for v3).
    pub auth_data: [u8; AUTH_DATA_LEN],
    /// The virtual addresses, all of the packet's family.
    pub addrs: Vec<IpAddr>,
}

impl VrrpRepr {
    /// Parses a checked packet. The checksum is not verified here (see
    /// [`VrrpPacket::verify_checksum`]) so that callers can count it apart.
    ///
    /// # Errors
    /// [`WireError`] as in [`VrrpPacket::check_len`].
    pub fn parse<T: AsRef<[u8]>>(packet: &VrrpPacket<T>) -> Result<VrrpRepr, WireError> {
        packet.check_len()?;
        let version = packet.version().ok_or(WireError::BadVersion)?;
        Ok(VrrpRepr {
            version,
            msg_type: packet.msg_type(),
            vrid: packet.vrid(),
            priority: packet.priority(),
            adver_int: packet.adver_int(),
            auth_type: match version {
                Version::V2 => packet.auth_type(),
                Version::V3 => AuthType::None,
            },
            auth_data: packet.auth_data(),
            addrs: packet.addrs().collect(),
        })
    }

    /// The family of the addresses (IPv4 for an empty list).
    pub fn family(&self) -> Family {
        self.addrs.first().map_or(Family::V4, Family::of)
    }

    /// The advertisement interval as a duration.
    pub fn interval(&self) -> std::time::Duration {
        match self.version {
            Version::V2 => std::time::Duration::from_secs(u64::from(self.adver_int)),
            Version::V3 => std::time::Duration::from_millis(u64::from(self.adver_int) * 10),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        VrrpPacket::<&[u8]>::packet_len(self.version, self.family(), self.addrs.len().min(255))
    }

    /// Writes the packet, checksum included (`src`/`dst` feed the
    /// pseudo-header where one is used). At most 255 addresses are written.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut VrrpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        let count = self.addrs.len().min(255);
        packet.set_version_type(self.version, self.msg_type);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_addr_count(count as u8);
        packet.set_auth_and_interval(self.auth_type, self.adver_int);
        for (i, a) in self.addrs.iter().take(count).enumerate() {
            packet.set_addr(i, *a);
        }
        if self.version == Version::V2 {
            packet.set_auth_data(&self.auth_data);
        }
        packet.fill_checksum(src, dst);
    }

    /// Emits into a new vector of [`buffer_len`](Self::buffer_len) bytes.
    pub fn to_bytes(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        let mut p = VrrpPacket::new_unchecked(&mut buf[..], self.family());
        self.emit(&mut p, src, dst);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // keepalived VRRPv2 advert (vrrp2-advert.pcap): vrid 51, prio 150, 1 s, 10.99.0.100.
    const V2: [u8; 20] = [
        0x21, 0x33, 0x96, 0x01, 0x00, 0x01, 0x3e, 0x03, 0x0a, 0x63, 0x00, 0x64, 0, 0, 0, 0, 0, 0,
        0, 0,
    ];
    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

    fn v2_repr() -> VrrpRepr {
        VrrpRepr {
            version: Version::V2,
            msg_type: MessageType::Advertisement,
            vrid: 51,
            priority: 150,
            adver_int: 1,
            auth_type: AuthType::None,
            auth_data: [0; 8],
            addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100))],
        }
    }

    #[test]
    fn deconstruct() {
        let p = VrrpPacket::new_checked(&V2[..], Family::V4).expect("valid");
        assert_eq!(p.version(), Some(Version::V2));
        assert_eq!(p.msg_type(), MessageType::Advertisement);
        assert_eq!(p.vrid(), 51);
        assert_eq!(p.priority(), 150);
        assert_eq!(p.addr_count(), 1);
        assert_eq!(p.auth_type(), AuthType::None);
        assert_eq!(p.adver_int(), 1);
        assert_eq!(p.checksum(), 0x3e03);
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.addr(1), None);
    }

    #[test]
    fn construct_and_emit() {
        let mut buf = [0xffu8; 20];
        let mut p = VrrpPacket::new_unchecked(&mut buf[..], Family::V4);
        v2_repr().emit(&mut p, SRC, DST);
        assert_eq!(buf, V2);
        assert_eq!(v2_repr().to_bytes(SRC, DST), V2.to_vec());
    }

    #[test]
    fn parse() {
        let p = VrrpPacket::new_checked(&V2[..], Family::V4).expect("valid");
        assert_eq!(VrrpRepr::parse(&p), Ok(v2_repr()));
    }

    #[test]
    fn truncated_and_bad_version() {
        for n in 0..V2.len() {
            assert_eq!(
                VrrpPacket::new_checked(&V2[..n], Family::V4).err(),
                Some(WireError::Truncated),
                "len {n}"
            );
        }
        let mut bad = V2;
        bad[0] = 0x41;
        assert_eq!(
            VrrpPacket::new_checked(&bad[..], Family::V4).err(),
            Some(WireError::BadVersion)
        );
    }

    #[test]
    fn checksum_detects_corruption() {
        let mut bad = V2;
        bad[2] = 200;
        let p = VrrpPacket::new_checked(&bad[..], Family::V4).expect("len ok");
        assert!(!p.verify_checksum(SRC, DST));
    }

    #[test]
    fn v3_pass_roundtrip_and_pseudo_header_matters() {
        let mut r = v2_repr();
        r.version = Version::V3;
        r.adver_int = 10;
        let bytes = r.to_bytes(SRC, DST);
        assert_eq!(bytes.len(), 12);
        let p = VrrpPacket::new_checked(&bytes[..], Family::V4).expect("valid");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)), DST));
        assert_eq!(VrrpRepr::parse(&p), Ok(r));
    }

    #[test]
    fn v2_pass_auth() {
        let mut r = v2_repr();
        r.auth_type = AuthType::Pass;
        r.auth_data = *b"secret\0\0";
        let bytes = r.to_bytes(SRC, DST);
        assert_eq!(&bytes[12..], b"secret\0\0");
        assert_eq!(bytes[4], 1);
        let p = VrrpPacket::new_checked(&bytes[..], Family::V4).expect("valid");
        assert_eq!(VrrpRepr::parse(&p), Ok(r));
    }

    #[test]
    fn fuzzish_never_panics() {
        // Every prefix and many byte patterns: new_checked then all accessors.
        for seed in 0u32..2000 {
            let len = (seed % 64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|i| (seed.wrapping_mul(2654435761).rotate_left(i as u32) & 0xff) as u8)
                .collect();
            for fam in [Family::V4, Family::V6] {
                if let Ok(p) = VrrpPacket::new_checked(&buf[..], fam) {
                    let r = VrrpRepr::parse(&p).expect("checked packets parse");
                    assert_eq!(r.addrs.len(), usize::from(p.addr_count()));
                    let _ = p.auth_data();
                    let _ = p.verify_checksum(SRC, DST);
                }
            }
        }
    }
}
