//! The frames a new master sends so switches and neighbours learn where the
//! VIP lives: a gratuitous ARP request (sender = target = VIP, target MAC
//! broadcast, as keepalived sends it) and an unsolicited neighbour
//! advertisement (RFC 4861 §7.2.6: to ff02::1, Override set, Solicited and
//! Router clear, with the target link-layer address option).

use super::checksum;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Length of the gratuitous ARP frame (no padding).
pub const ARP_FRAME_LEN: usize = 42;
/// Length of the unsolicited NA frame.
pub const NA_FRAME_LEN: usize = 86;

const BROADCAST: [u8; 6] = [0xff; 6];

/// A gratuitous ARP request for `vip` from `mac`, Ethernet header included.
pub fn gratuitous_arp(mac: [u8; 6], vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&vip.octets());
    f[32..38].copy_from_slice(&BROADCAST);
    f[38..42].copy_from_slice(&vip.octets());
    f
}

/// An unsolicited NA for `vip` from `mac`, sent from the VIP itself to
/// all-nodes (ff02::1), hop limit 255, Ethernet header included.
pub fn unsolicited_na(mac: [u8; 6], vip: Ipv6Addr) -> [u8; NA_FRAME_LEN] {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut f = [0u8; NA_FRAME_LEN];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut f[14..];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&32u16.to_be_bytes());
    ip[6] = 58; // ICMPv6
    ip[7] = 255;
    ip[8..24].copy_from_slice(&vip.octets());
    ip[24..40].copy_from_slice(&all_nodes.octets());
    let icmp = &mut ip[40..72];
    icmp[0] = 136; // neighbour advertisement
    icmp[4] = 0x20; // Override
    icmp[8..24].copy_from_slice(&vip.octets());
    icmp[24] = 2; // target link-layer address
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    let acc = checksum::pseudo_header(vip.into(), all_nodes.into(), 58, 32);
    let c = checksum::finish(icmp, acc);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f
}
