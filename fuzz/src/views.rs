//! The fuzz bodies of the dataplane's wire views, one per parser: each
//! per-parser target (`fuzz_targets/ethernet.rs`, `vlan.rs`, `arp.rs`,
//! `ipv4.rs`, `ipv6.rs`, `tcp.rs`, `udp.rs`, `icmpv4.rs`, `icmpv6.rs`) hands
//! the fuzzer's bytes straight to one of them, so the fuzzer explores that
//! header rather than first getting past the ones below it; the `wire`
//! target runs them on every layer of a whole frame ([`frame`]).
//!
//! Each checks the wire module's promise (`dataplane/src/wire/mod.rs`):
//! once `new_checked` accepts the bytes, no accessor panics, even after a
//! setter wrote a length field that disagrees with the buffer. And what can
//! be checked without a second implementation: a parsed `Repr` emits bytes
//! that parse back to it, a setter's value reads back, a filled checksum
//! verifies.

use dataplane::wire::icmpv4::Quote;
use dataplane::wire::icmpv6::Quote6;
use dataplane::wire::{
    ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, TcpPacket, UdpPacket, VlanTag,
};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Addresses for the pseudo-header of a bare TCP, UDP or ICMPv6 input.
const SRC4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// A 16-bit value taken from the input (its last two bytes), for setters.
fn word(data: &[u8]) -> u16 {
    match data {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// An Ethernet frame: every layer's view on what it carries.
pub fn frame(data: &[u8]) {
    let Some(l3) = ethernet(data) else {
        return;
    };
    vlan(&l3);
    arp(&l3);
    if let Some((src, dst, l4)) = ipv4(&l3) {
        tcp(&l4, src, dst);
        udp(&l4, src, dst);
        icmpv4(&l4);
    }
    if let Some((src, dst, l4)) = ipv6(&l3) {
        icmpv6(&l4, src, dst);
    }
}

/// Ethernet; returns the payload.
pub fn ethernet(data: &[u8]) -> Option<Vec<u8>> {
    let mut buf = data.to_vec();
    let mut eth = EthernetFrame::new_checked(&mut buf[..]).ok()?;
    let (src, dst, t) = (eth.src_addr(), eth.dst_addr(), eth.ethertype());
    let payload = eth.payload().to_vec();
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
    eth.set_ethertype(t);
    assert_eq!((eth.src_addr(), eth.dst_addr()), (dst, src));
    // Unknown EtherTypes are kept as numbers: the field is unchanged.
    assert_eq!(buf[12..14], data[12..14]);
    Some(payload)
}

/// An 802.1Q tag (the bytes after the TPID).
pub fn vlan(data: &[u8]) {
    let mut buf = data.to_vec();
    let Ok(mut tag) = VlanTag::new_checked(&mut buf[..]) else {
        return;
    };
    let _ = (tag.pcp(), tag.dei(), tag.ethertype(), tag.payload().len());
    let w = word(data);
    let (id, pcp, dei) = (w & 0x0fff, (w >> 13) as u8, w & 0x1000 != 0);
    tag.set_vlan_id(id);
    tag.set_pcp(pcp);
    tag.set_dei(dei);
    tag.set_ethertype(EtherType::Ipv6);
    assert_eq!(
        (tag.vlan_id(), tag.pcp(), tag.dei(), tag.ethertype()),
        (id, pcp, dei, EtherType::Ipv6)
    );
    let _ = tag.payload_mut().len();
}

/// ARP: a parsed packet emits bytes that parse back to it.
pub fn arp(data: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        packet.hardware_type(),
        packet.protocol_type(),
        packet.hardware_len(),
        packet.protocol_len(),
        packet.operation(),
        packet.source_hardware_addr(),
        packet.source_protocol_addr(),
        packet.target_hardware_addr(),
        packet.target_protocol_addr(),
    );
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    let again = ArpPacket::new_checked(&out[..]).expect("an emitted ARP packet is whole");
    assert_eq!(ArpRepr::parse(&again), Ok(repr));
}

/// IPv4: returns the addresses and payload. A parsed header emits one
/// that parses back to it; with the version or lengths overwritten,
/// nothing panics; a filled checksum verifies (when the header holds it).
pub fn ipv4(data: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, Vec<u8>)> {
    let mut buf = data.to_vec();
    let mut ip = Ipv4Packet::new_checked(&mut buf[..]).ok()?;
    let found = (ip.src_addr(), ip.dst_addr(), ip.payload().to_vec());
    let _ = (ip.dscp_ecn(), ip.ident(), ip.dont_frag(), ip.more_frags());
    let _ = (ip.frag_offset(), ip.is_fragment(), ip.ttl(), ip.protocol());
    let _ = (ip.checksum(), ip.verify_checksum(), ip.options().len());
    if let Ok(repr) = Ipv4Repr::parse(&ip) {
        let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        let again = Ipv4Packet::new_checked(&out[..]).expect("an emitted header is whole");
        assert_eq!(Ipv4Repr::parse(&again), Ok(repr));
    }
    let w = word(data);
    ip.set_version_and_header_len((w >> 12) as u8, usize::from(w & 0xff));
    ip.set_total_len(w.rotate_left(5));
    let _ = (ip.header_len(), ip.total_len(), ip.options().len());
    let _ = (
        ip.payload().len(),
        ip.options_mut().len(),
        ip.payload_mut().len(),
    );
    ip.fill_checksum();
    // (An IHL below 5 leaves the checksum field out of the header it covers.)
    if ip.header_len() >= 20 {
        assert!(ip.verify_checksum(), "a filled checksum verifies");
    }
    Some(found)
}

/// IPv6: returns the addresses and the payload. A parsed header emits one
/// that parses back to it; with the payload length overwritten, nothing
/// panics.
pub fn ipv6(data: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, Vec<u8>)> {
    let mut buf = data.to_vec();
    let mut ip = Ipv6Packet::new_checked(&mut buf[..]).ok()?;
    let found = (ip.src_addr(), ip.dst_addr(), ip.payload().to_vec());
    let _ = (
        ip.version(),
        ip.traffic_class(),
        ip.flow_label(),
        ip.hop_limit(),
    );
    let _ = ip.upper_layer();
    if let Ok(repr) = Ipv6Repr::parse(&ip) {
        let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        let again = Ipv6Packet::new_checked(&out[..]).expect("an emitted header is whole");
        assert_eq!(Ipv6Repr::parse(&again), Ok(repr));
    }
    ip.set_payload_len(word(data));
    let _ = (ip.payload().len(), ip.upper_layer(), ip.payload_mut().len());
    Some(found)
}

/// TCP from `src` to `dst`: with the data offset overwritten, nothing
/// panics; a filled checksum verifies.
pub fn tcp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let mut buf = data.to_vec();
    let Ok(mut t) = TcpPacket::new_checked(&mut buf[..]) else {
        return;
    };
    let _ = (t.src_port(), t.dst_port(), t.seq_number(), t.ack_number());
    let _ = (t.flags(), t.header_len(), t.window_len(), t.urgent_at());
    let _ = (
        t.options().len(),
        t.payload().len(),
        t.verify_checksum(src, dst),
    );
    t.set_header_len(usize::from(word(data)));
    let _ = (t.options().len(), t.payload().len());
    let _ = (t.options_mut().len(), t.payload_mut().len());
    t.fill_checksum(src, dst);
    assert!(t.verify_checksum(src, dst), "a filled checksum verifies");
}

/// UDP from `src` to `dst`: with the length overwritten, nothing panics;
/// a filled checksum verifies (when the datagram holds it).
pub fn udp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let mut buf = data.to_vec();
    let Ok(mut u) = UdpPacket::new_checked(&mut buf[..]) else {
        return;
    };
    let _ = (u.src_port(), u.dst_port(), u.len(), u.checksum());
    let _ = (u.payload().len(), u.verify_checksum(src, dst));
    u.set_len(word(data));
    let _ = (u.payload().len(), u.payload_mut().len());
    u.fill_checksum(src, dst);
    assert_ne!(u.checksum(), 0, "0 means no checksum");
    // (A length below 8 leaves the checksum field out of the datagram.)
    if u.len() >= 8 {
        assert!(u.verify_checksum(src, dst), "a filled checksum verifies");
    }
}

/// ICMPv4, and the packet an error quotes; a filled checksum verifies.
pub fn icmpv4(data: &[u8]) {
    let mut buf = data.to_vec();
    let Ok(mut i) = Icmpv4Packet::new_checked(&mut buf[..]) else {
        return;
    };
    let _ = (i.msg_type(), i.code(), i.checksum(), i.rest());
    let _ = (i.is_error(), i.next_hop_mtu(), i.verify_checksum());
    let _ = Quote::parse(i.payload());
    i.fill_checksum();
    assert!(i.verify_checksum(), "a filled checksum verifies");
}

/// ICMPv6 from `src` to `dst`: neighbor discovery's fields and options,
/// the packet an error quotes; a filled checksum verifies.
pub fn icmpv6(data: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let mut buf = data.to_vec();
    let Ok(mut i) = Icmpv6Packet::new_checked(&mut buf[..]) else {
        return;
    };
    let _ = (i.msg_type(), i.code(), i.checksum(), i.rest(), i.is_error());
    let _ = (i.nd_target(), i.na_flags(), i.nd_options().count());
    let _ = (i.nd_lladdr(1), i.nd_lladdr(2), i.verify_checksum(src, dst));
    let _ = Quote6::parse(i.payload());
    i.fill_checksum(src, dst);
    assert!(i.verify_checksum(src, dst), "a filled checksum verifies");
}

/// A bare TCP segment (IPv4 pseudo-header of fixed addresses).
pub fn tcp_alone(data: &[u8]) {
    tcp(data, SRC4, DST4);
}

/// A bare UDP datagram (IPv4 pseudo-header of fixed addresses).
pub fn udp_alone(data: &[u8]) {
    udp(data, SRC4, DST4);
}

/// A bare ICMPv6 message (pseudo-header of fixed addresses).
pub fn icmpv6_alone(data: &[u8]) {
    icmpv6(data, SRC6, DST6);
}
