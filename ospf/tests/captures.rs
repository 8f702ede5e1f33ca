//! Byte-exact parse → emit against every OSPF packet in the shared captures
//! (BIRD↔BIRD, BIRD↔FRR, BIRD↔FRR with keyed MD5).

use std::path::{Path, PathBuf};

use ospf::wire::{AuthRepr, Body, LsaHeader, Packet, PacketRepr};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/captures");

/// The OSPF payloads (IP payload, digest included) of an Ethernet pcap.
fn ospf_payloads(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).expect("read pcap");
    assert!(data.len() >= 24, "pcap header");
    let le = match data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |b: &[u8], at: usize| {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(u32_at(&data, 20), 1, "Ethernet link type");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = u32_at(&data, at + 8) as usize;
        let frame = &data[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        if ip[9] != 89 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        out.push(ip[ihl..total].to_vec());
    }
    out
}

fn captures() -> Option<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(DIR)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ospf-") && n.ends_with(".pcap"))
        })
        .collect();
    v.sort();
    Some(v)
}

#[test]
fn every_capture_round_trips_byte_exact() {
    let Some(files) = captures() else {
        println!("SKIP: {DIR} is absent");
        return;
    };
    if files.is_empty() {
        println!("SKIP: no ospf-*.pcap in {DIR}");
        return;
    }
    for file in files {
        let md5 = file.to_string_lossy().contains("md5");
        let key: &[u8] = if md5 { b"secret" } else { b"" };
        let packets = ospf_payloads(&file);
        assert!(!packets.is_empty(), "{file:?} has OSPF packets");
        let mut lsas = 0;
        for (i, raw) in packets.iter().enumerate() {
            let p = Packet::new_checked(&raw[..]).expect("new_checked");
            let repr = PacketRepr::parse(&p).unwrap_or_else(|e| panic!("{file:?} #{i}: {e}"));
            if md5 {
                assert!(matches!(repr.auth, AuthRepr::Md5 { key_id: 1, .. }));
                assert_eq!(p.checksum(), 0);
                assert!(p.verify_md5(b"secret"), "{file:?} #{i}: digest");
                assert!(
                    !p.verify_md5(b"Secret"),
                    "{file:?} #{i}: wrong key accepted"
                );
            } else {
                assert_eq!(repr.auth, AuthRepr::None);
                assert!(p.verify_checksum());
            }
            if let Body::LsUpdate(list) = &repr.body {
                let mut at = 28;
                for lsa in list {
                    let view = LsaHeader::new_checked(&raw[at..]).expect("lsa");
                    assert!(view.verify_checksum(), "{file:?} #{i}: LSA checksum");
                    at += usize::from(lsa.header.length);
                    lsas += 1;
                }
            }
            assert_eq!(&repr.to_bytes(key), raw, "{file:?} #{i}: emit differs");
        }
        assert!(lsas > 0, "{file:?} carries LSAs");
        println!("{}: {} packets byte-exact", file.display(), packets.len());
    }
}
