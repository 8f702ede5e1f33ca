//! IEEE 802.1Q VLAN tags: the 4 bytes after an Ethernet header whose
//! EtherType is 0x8100 (TCI, then the inner EtherType).
//!
//! Invariant: after [`VlanTag::new_checked`] succeeds the buffer holds at
//! least the 4-byte tag, so no accessor can panic. The view is over the
//! Ethernet payload (`EthernetFrame::payload`); stacked tags (QinQ) are
//! read by viewing the payload again.

use super::bytes::{read_u16, write_u16, Field, Rest};
use super::{EtherType, Result, WireError};

mod field {
    use super::{Field, Rest};

    /// Tag control information: PCP (3 bits), DEI (1), VLAN id (12).
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: Rest = 4..;
}

/// Length of an 802.1Q tag.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of an 802.1Q tag and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps a buffer without checking it.
    ///
    /// Accessors panic if the buffer is shorter than 4 bytes.
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than 4 bytes.
    pub fn new_checked(buffer: T) -> Result<VlanTag<T>> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
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

    fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point (0..=7).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (0..=4095; 0 = priority tag only).
    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The EtherType of what follows the tag.
    pub fn ethertype(&self) -> EtherType {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }

    /// What follows the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    fn set_tci(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::TCI, value);
    }

    /// Sets the priority code point (masked to 3 bits).
    pub fn set_pcp(&mut self, value: u8) {
        let tci = self.tci() & 0x1fff | (u16::from(value & 7) << 13);
        self.set_tci(tci);
    }

    /// Sets the drop eligible indicator.
    pub fn set_dei(&mut self, value: bool) {
        let tci = self.tci() & !0x1000 | if value { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Sets the VLAN id (masked to 12 bits).
    pub fn set_vlan_id(&mut self, value: u16) {
        let tci = self.tci() & 0xf000 | (value & 0x0fff);
        self.set_tci(tci);
    }

    /// Sets the EtherType of what follows the tag.
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, value.into());
    }

    /// What follows the tag, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetFrame;
    use etherparse::{PacketBuilder, SlicedPacket, VlanId, VlanPcp};

    /// A UDP packet on VLAN 100, priority 5, DEI set, built by etherparse.
    fn tagged() -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::Ethernet2Header {
            source: [2, 0, 0, 0, 0, 1],
            destination: [2, 0, 0, 0, 0, 2],
            ether_type: etherparse::EtherType::VLAN_TAGGED_FRAME,
        }
        .write(&mut out)
        .expect("eth");
        etherparse::SingleVlanHeader {
            pcp: VlanPcp::try_new(5).expect("pcp"),
            drop_eligible_indicator: true,
            vlan_id: VlanId::try_new(100).expect("vid"),
            ether_type: etherparse::EtherType::IPV4,
        }
        .write(&mut out)
        .expect("tag");
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut out, b"x")
            .expect("build");
        out
    }

    #[test]
    fn deconstruct() {
        let frame = tagged();
        let eth = EthernetFrame::new_checked(&frame[..]).expect("eth");
        assert_eq!(eth.ethertype(), EtherType::Vlan);
        let tag = VlanTag::new_checked(eth.payload()).expect("tag");
        assert_eq!((tag.pcp(), tag.dei(), tag.vlan_id()), (5, true, 100));
        assert_eq!(tag.ethertype(), EtherType::Ipv4);
        assert_eq!(tag.payload(), &frame[18..]);
    }

    #[test]
    fn construct_matches_etherparse() {
        let want = tagged();
        let mut built = want.clone();
        built[14..18].fill(0);
        let mut tag = VlanTag::new_unchecked(&mut built[14..]);
        tag.set_vlan_id(0xf064); // only 12 bits are kept
        tag.set_dei(true);
        tag.set_pcp(5);
        tag.set_ethertype(EtherType::Ipv4);
        assert_eq!(built, want);
        let p = SlicedPacket::from_ethernet(&built).expect("etherparse");
        let Some(etherparse::VlanSlice::SingleVlan(v)) = p.vlan else {
            panic!("etherparse sees no tag")
        };
        assert_eq!(v.vlan_identifier().value(), 100);
        assert!(p.net.is_some(), "etherparse parses past the tag");
        let mut tag = VlanTag::new_unchecked(&mut built[14..]);
        tag.set_dei(false);
        tag.set_pcp(0);
        assert_eq!((tag.pcp(), tag.dei(), tag.vlan_id()), (0, false, 100));
    }

    #[test]
    fn truncated_at_every_length() {
        let frame = tagged();
        for n in 0..HEADER_LEN {
            assert_eq!(
                VlanTag::new_checked(&frame[14..14 + n]).err(),
                Some(WireError::Truncated)
            );
        }
        let tag = VlanTag::new_checked(&frame[14..18]).expect("bare tag");
        assert!(tag.payload().is_empty());
    }

    mod prop {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(mut data in vec(any::<u8>(), 0..16)) {
                if let Ok(mut tag) = VlanTag::new_checked(&mut data[..]) {
                    let _ = (tag.pcp(), tag.dei(), tag.vlan_id(), tag.ethertype(), tag.payload().len());
                    let id = tag.vlan_id();
                    tag.set_pcp(7);
                    tag.set_dei(false);
                    prop_assert_eq!(tag.vlan_id(), id);
                    tag.payload_mut().fill(0);
                }
            }

            #[test]
            fn fields_round_trip(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096) {
                let mut b = [0u8; 4];
                let mut tag = VlanTag::new_unchecked(&mut b[..]);
                tag.set_vlan_id(vid);
                tag.set_pcp(pcp);
                tag.set_dei(dei);
                prop_assert_eq!((tag.pcp(), tag.dei(), tag.vlan_id()), (pcp, dei, vid));
            }
        }
    }
}
