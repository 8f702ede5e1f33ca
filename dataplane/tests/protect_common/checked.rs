//! Frame checks by etherparse (independent checksum code), shared by the
//! engine's unit tests and the protection tests.

use etherparse::SlicedPacket;

/// Parses an Ethernet + IPv4 frame with etherparse and checks the IPv4
/// header checksum; returns the packet, its Ethernet and its IPv4 slices.
pub fn checked_ipv4(
    frame: &[u8],
) -> (
    SlicedPacket<'_>,
    etherparse::Ethernet2Slice<'_>,
    etherparse::Ipv4Slice<'_>,
) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses our output");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link.clone() else {
        panic!("not ethernet")
    };
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net.clone() else {
        panic!("not ipv4")
    };
    let h = ip.header();
    assert_eq!(
        h.to_header().calc_header_checksum(),
        h.header_checksum(),
        "IPv4 checksum"
    );
    (p, eth, ip)
}
