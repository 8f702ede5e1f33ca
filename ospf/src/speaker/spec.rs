//! Configured data of a speaker (what `dpvsd::assemble` fills in).

use std::net::Ipv4Addr;

/// How the VIPs are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceAs {
    /// As /32 stub links of our Router-LSA.
    Stub,
    /// As AS-external (type 5) LSAs with an E2 metric.
    External,
}

/// Network type of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkType {
    /// Broadcast multi-access, with DR/BDR election.
    Broadcast,
    /// Point-to-point.
    PointToPoint,
}

/// Interface authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSpec {
    /// Type 0.
    None,
    /// Type 1: clear-text password, up to 8 bytes.
    Simple(Vec<u8>),
    /// Type 2: keyed MD5, key up to 16 bytes.
    Md5 {
        /// Key ID.
        key_id: u8,
        /// Key.
        key: Vec<u8>,
    },
}

/// One OSPF interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// Interface name (for the driver and the status).
    pub name: String,
    /// Our address on it.
    pub address: Ipv4Addr,
    /// Prefix length of the attached network.
    pub prefix_len: u8,
    /// Network type.
    pub network: NetworkType,
    /// HelloInterval in seconds.
    pub hello_interval: u16,
    /// RouterDeadInterval in seconds.
    pub dead_interval: u32,
    /// RxmtInterval in seconds.
    pub retransmit_interval: u16,
    /// Router priority (0: never DR/BDR).
    pub priority: u8,
    /// Interface output cost.
    pub cost: u16,
    /// Interface MTU (checked against DBDs, limits packet sizes).
    pub mtu: u16,
    /// Authentication.
    pub auth: AuthSpec,
}

impl InterfaceSpec {
    /// A broadcast interface with the defaults of RFC 2328 appendix C
    /// (hello 10, dead 40, rxmt 5, priority 1, cost 10, MTU 1500, no auth).
    pub fn broadcast(name: &str, address: Ipv4Addr, prefix_len: u8) -> Self {
        InterfaceSpec {
            name: name.to_owned(),
            address,
            prefix_len,
            network: NetworkType::Broadcast,
            hello_interval: 10,
            dead_interval: 40,
            retransmit_interval: 5,
            priority: 1,
            cost: 10,
            mtu: 1500,
            auth: AuthSpec::None,
        }
    }

    /// The network mask.
    pub fn mask(&self) -> Ipv4Addr {
        let bits = u32::from(self.prefix_len.min(32));
        Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0))
    }

    /// The network address.
    pub fn network_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & u32::from(self.mask()))
    }
}

/// The whole speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerSpec {
    /// Our router ID.
    pub router_id: Ipv4Addr,
    /// The (single) area.
    pub area: Ipv4Addr,
    /// Interfaces, indexed by [`IfaceIdx`](super::IfaceIdx).
    pub interfaces: Vec<InterfaceSpec>,
    /// How VIPs are announced.
    pub announce_as: AnnounceAs,
    /// Metric of a VIP (stub link cost, or E2 metric).
    pub metric: u32,
    /// Base of the cryptographic sequence number; the driver passes the Unix
    /// time at start so a restarted speaker never goes backwards.
    pub crypto_seq_base: u32,
}
