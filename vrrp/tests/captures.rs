//! Byte-exact checks against keepalived 2.2.7 captures in ../shared/captures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use vrrp::wire::{
    emit_ip_advert, gratuitous_arp, parse_ip, unsolicited_na, AuthType, Family, MessageType,
    Version, VrrpPacket, VrrpRepr, IP_PROTO_VRRP,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/captures");

/// Ethernet frames of a classic little- or big-endian pcap file.
fn frames(path: &PathBuf) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).expect("read capture");
    assert!(data.len() >= 24, "pcap header");
    let le = match data[0..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("{}: not a classic pcap", path.display()),
    };
    let u32_at = |o: usize| {
        let b = [data[o], data[o + 1], data[o + 2], data[o + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = u32_at(off + 8) as usize;
        let start = off + 16;
        out.push(data[start..start + caplen].to_vec());
        off = start + caplen;
    }
    assert_eq!(off, data.len(), "{}: trailing bytes", path.display());
    out
}

fn captures(prefix: &str) -> Option<Vec<PathBuf>> {
    let Ok(rd) = std::fs::read_dir(DIR) else {
        println!("SKIP: {DIR} absent");
        return None;
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".pcap"))
        })
        .collect();
    v.sort();
    Some(v)
}

fn ethertype(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[12], f[13]])
}

/// Every VRRP packet in every capture: parse, check it, and re-emit the IP
/// header and the VRRP packet byte for byte (checksums included).
#[test]
fn every_vrrp_packet_roundtrips() {
    let Some(files) = captures("vrrp") else {
        return;
    };
    assert!(!files.is_empty());
    let mut seen = 0;
    for path in &files {
        for (n, f) in frames(path).iter().enumerate() {
            if !matches!(ethertype(f), 0x0800 | 0x86dd) {
                continue;
            }
            let ip = &f[14..];
            let (meta, payload) = parse_ip(ip).expect("ip");
            if meta.proto != IP_PROTO_VRRP {
                continue;
            }
            let what = format!("{} #{n}", path.display());
            let family = Family::of(&meta.src);
            let pkt = VrrpPacket::new_checked(payload, family).expect(&what);
            assert!(pkt.verify_checksum(meta.src, meta.dst), "{what}: checksum");
            assert_eq!(meta.ttl, 255, "{what}: ttl");
            let repr = VrrpRepr::parse(&pkt).expect(&what);
            assert_eq!(repr.vrid, 51, "{what}");
            assert_eq!(repr.msg_type, MessageType::Advertisement, "{what}");
            assert_eq!(
                repr.to_bytes(meta.src, meta.dst),
                payload,
                "{what}: vrrp emit"
            );
            // The IP header: identification (v4) / flow label (v6) are the
            // kernel's choice, so take them from the capture.
            let id_or_flow = match family {
                Family::V4 => u32::from(u16::from_be_bytes([ip[4], ip[5]])),
                Family::V6 => u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]) & 0xfffff,
            };
            let built = emit_ip_advert(meta.src, meta.dst, id_or_flow, &repr).expect(&what);
            assert_eq!(built, ip, "{what}: ip emit");
            seen += 1;
        }
    }
    assert!(seen > 50, "only {seen} VRRP packets");
    println!("{seen} VRRP packets round-tripped byte-exact");
}

fn single_vrrp(name: &str) -> Option<(IpAddr, IpAddr, VrrpRepr, Vec<u8>)> {
    let path = PathBuf::from(DIR).join(name);
    if !path.exists() {
        println!("SKIP: {} absent", path.display());
        return None;
    }
    let fs = frames(&path);
    assert_eq!(fs.len(), 1, "{name}");
    let ip = &fs[0][14..];
    let (meta, payload) = parse_ip(ip).expect("ip");
    let pkt = VrrpPacket::new_checked(payload, Family::of(&meta.src)).expect("vrrp");
    Some((
        meta.src,
        meta.dst,
        VrrpRepr::parse(&pkt).expect("repr"),
        ip.to_vec(),
    ))
}

#[test]
fn adverts_parse_to_expected_fields() {
    let vip4: IpAddr = Ipv4Addr::new(10, 99, 0, 100).into();
    let vip6: IpAddr = "fd99::100".parse::<Ipv6Addr>().expect("lit").into();
    let h1: IpAddr = Ipv4Addr::new(10, 99, 0, 1).into();
    let ll1: IpAddr = "fe80::99:ff:fe00:1"
        .parse::<Ipv6Addr>()
        .expect("lit")
        .into();
    let g4: IpAddr = Ipv4Addr::new(224, 0, 0, 18).into();
    let g6: IpAddr = "ff02::12".parse::<Ipv6Addr>().expect("lit").into();
    let cases: [(&str, Version, u8, u16, IpAddr, IpAddr, IpAddr); 8] = [
        ("vrrp2-advert.pcap", Version::V2, 150, 1, vip4, h1, g4),
        ("vrrp2-advert-prio0.pcap", Version::V2, 0, 1, vip4, h1, g4),
        ("vrrp3-advert.pcap", Version::V3, 150, 100, vip4, h1, g4),
        ("vrrp3-advert-prio0.pcap", Version::V3, 0, 100, vip4, h1, g4),
        (
            "vrrp3-adv0.1-advert.pcap",
            Version::V3,
            150,
            10,
            vip4,
            h1,
            g4,
        ),
        (
            "vrrp3-ipv6-advert.pcap",
            Version::V3,
            150,
            100,
            vip6,
            ll1,
            g6,
        ),
        (
            "vrrp3-ipv6-advert-prio0.pcap",
            Version::V3,
            0,
            100,
            vip6,
            ll1,
            g6,
        ),
        (
            "vrrp3-ipv6-adv0.1-advert.pcap",
            Version::V3,
            150,
            10,
            vip6,
            ll1,
            g6,
        ),
    ];
    for (name, version, prio, int, vip, src, dst) in cases {
        let Some((s, d, repr, raw)) = single_vrrp(name) else {
            continue;
        };
        let expected = VrrpRepr {
            version,
            msg_type: MessageType::Advertisement,
            vrid: 51,
            priority: prio,
            adver_int: int,
            auth_type: AuthType::None,
            auth_data: [0; 8],
            addrs: vec![vip],
        };
        assert_eq!(s, src, "{name}");
        assert_eq!(d, dst, "{name}");
        assert_eq!(repr, expected, "{name}");
        let id_or_flow = if raw[0] >> 4 == 4 {
            u32::from(u16::from_be_bytes([raw[4], raw[5]]))
        } else {
            u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) & 0xfffff
        };
        assert_eq!(
            emit_ip_advert(s, d, id_or_flow, &expected).as_deref(),
            Some(&raw[..]),
            "{name}"
        );
    }
}

#[test]
fn garp_and_na_frames_are_byte_exact() {
    let Some(files) = captures("vrrp") else {
        return;
    };
    let mut checked = 0;
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        for f in frames(&path) {
            let mut src = [0u8; 6];
            src.copy_from_slice(&f[6..12]);
            if ethertype(&f) == 0x0806 {
                let vip = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
                // Only gratuitous requests (sender = target), not ARP replies.
                if f[28..32] != f[38..42] || f[20..22] != [0, 1] {
                    continue;
                }
                assert_eq!(gratuitous_arp(src, vip)[..], f[..42], "{name}");
                checked += 1;
            } else if ethertype(&f) == 0x86dd
                && f.len() == 86
                && f[20] == 58
                && f[54] == 136
                && f[58] == 0x20
            {
                let mut t = [0u8; 16];
                t.copy_from_slice(&f[62..78]);
                let vip = Ipv6Addr::from(t);
                assert_eq!(unsolicited_na(src, vip)[..], f[..], "{name}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "only {checked} GARP/NA frames");
    println!("{checked} GARP/NA frames byte-exact");
}
