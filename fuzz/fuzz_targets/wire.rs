//! Any frame through every wire view and through the forwarding engine
//! (FNAT, NAT, DR and TUN, IPv4, IPv6, ICMP and neighbor discovery paths;
//! the FNAT TCP services send PROXY protocol headers, the UDP services
//! look for QUIC connection IDs; the NAT engine also has SNAT match
//! services, TCP, UDP and ICMP / ICMPv6 from anywhere to anywhere):
//! nothing panics, and a forwarded IPv4 frame has a valid header checksum.
//!
//! Input: byte 0 picks the engine (bits 0-1) and how much of the frame is
//! made valid so the fuzzer gets past the checks (bit 6: our MAC, IPv4
//! ethertype, version/IHL and header checksum fixed, or with bit 7 IPv6
//! ethertype and version; bit 5: destination is the VIP, else the LIP;
//! bit 4: source is the real server; bit 2: then an 802.1Q tag is inserted,
//! VLAN 100 (the VIPs' VLAN) with bit 3, else an id taken from the frame's
//! first two bytes: unknown VLANs, priority tags, stacked tags); the rest
//! is the frame. The VIPs are on VLAN 100, the LIPs untagged.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};

use dataplane::bench::{server, service};
use dataplane::engine::{
    Engine, Family, FamilySnap, Snapshot, Snapshot4, Snapshot6, SnatRule, Verdict,
};
use dataplane::io::Burst;
use dataplane::wire::{
    ArpPacket, ArpRepr, EthernetFrame, Icmpv6Packet, Ipv4Packet, Ipv6Packet, Ipv6Repr, MacAddr,
};
use dataplane::{Forwarding, Protocol, ProxyProtocol, ProxyVersion, Quic};
use libfuzzer_sys::fuzz_target;

const LB_MAC: MacAddr = MacAddr([2, 0x99, 0, 0, 0, 1]);
const RS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 200);
const RS6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 3);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x100);
const LIP6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x200);
const VLAN: u16 = 100;
/// The NAT engine's SNAT addresses (their gateway is the real server).
const SNAT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 50);
const SNAT6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x50);
const QUIC: Quic = Quic {
    migrate: true,
    cid_hash: true,
};
const MODES: [Forwarding; 4] = [
    Forwarding::Fnat,
    Forwarding::Nat,
    Forwarding::Dr,
    Forwarding::Tun,
];

struct State {
    engines: Vec<(Engine, Burst)>,
    now_ms: u64,
}

fn snapshot(mode: Forwarding) -> Arc<Snapshot> {
    let lips = if mode == Forwarding::Fnat {
        vec![LIP]
    } else {
        vec![]
    };
    let svc = |port, protocol| service(VIP, (port, protocol), vec![server(RS, port)], lips.clone());
    let lips6 = if mode == Forwarding::Fnat {
        vec![LIP6]
    } else {
        vec![]
    };
    let svc6 = |port, protocol| {
        service(
            VIP6,
            (port, protocol),
            vec![server(RS6, port)],
            lips6.clone(),
        )
    };
    let pp = |version, insecure| {
        (mode == Forwarding::Fnat).then_some(ProxyProtocol { version, insecure })
    };
    let mut v6 = Snapshot6 {
        services: vec![svc6(80, Protocol::Tcp), svc6(53, Protocol::Udp)],
        owned_vips: vec![VIP6],
        local_addrs: lips6,
        neighbours: vec![(RS6, Ipv6Addr::UNSPECIFIED)],
        forwarding: vec![mode; 2],
        nat_servers: if mode == Forwarding::Nat {
            vec![RS6]
        } else {
            vec![]
        },
        interface: Some(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1)),
        proxy_protocol: vec![pp(ProxyVersion::V2, true), None],
        quic: vec![Quic::default(), QUIC],
        ..Snapshot6::default()
    };
    v6.lookup.insert((VIP6, 80, 6), 0);
    v6.lookup.insert((VIP6, 53, 17), 1);
    let mut snap = Snapshot {
        v4: Snapshot4 {
            services: vec![svc(80, Protocol::Tcp), svc(53, Protocol::Udp)],
            owned_vips: vec![VIP],
            local_addrs: lips,
            neighbours: vec![(RS, Ipv4Addr::new(10, 99, 0, 1))],
            forwarding: vec![mode; 2],
            nat_servers: if mode == Forwarding::Nat {
                vec![RS]
            } else {
                vec![]
            },
            interface: Some(Ipv4Addr::new(10, 99, 0, 1)),
            proxy_protocol: vec![pp(ProxyVersion::V1, false), None],
            quic: vec![Quic::default(), QUIC],
            ..Snapshot4::default()
        },
        v6,
        ..Snapshot::default()
    };
    snap.v4.lookup.insert((VIP, 80, 6), 0);
    snap.v4.lookup.insert((VIP, 53, 17), 1);
    if mode == Forwarding::Nat {
        let all4 = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
        let all6 = (Ipv6Addr::UNSPECIFIED, Ipv6Addr::from(u128::MAX));
        add_snat(&mut snap.v4, (SNAT, RS), all4, Protocol::Icmp);
        add_snat(&mut snap.v6, (SNAT6, RS6), all6, Protocol::Icmpv6);
    }
    snap.addr_vlans = vec![(VIP.into(), VLAN), (VIP6.into(), VLAN)];
    snap.vlan_ids = vec![VLAN];
    Arc::new(snap)
}

/// Appends SNAT match services (TCP, UDP and the family's ICMP `icmp`,
/// anything to anything) on `addr` via gateway `gw`, as the control plane
/// builds them: keyed by the unspecified address and an ordinal, no VIP.
fn add_snat<A: Family>(half: &mut FamilySnap<A>, (addr, gw): (A, A), all: (A, A), icmp: Protocol) {
    let first = half.services.len();
    half.forwarding.resize(first, Forwarding::Fnat);
    half.next_hop.resize(first, None);
    for (i, protocol) in [Protocol::Tcp, Protocol::Udp, icmp].into_iter().enumerate() {
        let svc = service(A::UNSPECIFIED, (1, protocol), vec![server(addr, 0)], vec![]);
        half.snat.push(SnatRule {
            svc: first + i,
            proto: protocol.number(),
            src: all,
            sports: (0, u16::MAX),
            dst: all,
            dports: (0, u16::MAX),
        });
        half.services.push(svc);
        half.forwarding.push(Forwarding::Snat);
        half.next_hop.push(Some(gw));
    }
    half.local_addrs.push(addr);
    half.local_addrs.sort();
    half.neighbours.push((gw, addr));
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        let engines = MODES
            .iter()
            .map(|&mode| {
                let mut e = Engine::new(0, LB_MAC, 4096, (1024, 65535), Arc::default());
                let mut ctl = Burst::new(64);
                e.set_snapshot(snapshot(mode), 0, &mut ctl);
                // The real server answers ARP.
                let mut reply = [0u8; 42];
                let mut eth = EthernetFrame::new_unchecked(&mut reply[..]);
                eth.set_dst_addr(LB_MAC);
                eth.set_src_addr(MacAddr([2, 0x99, 0, 0, 0, 3]));
                eth.set_ethertype(dataplane::wire::EtherType::Arp);
                ArpRepr {
                    operation: dataplane::wire::ArpOperation::Reply,
                    source_hardware_addr: MacAddr([2, 0x99, 0, 0, 0, 3]),
                    source_protocol_addr: RS,
                    target_hardware_addr: LB_MAC,
                    target_protocol_addr: Ipv4Addr::new(10, 99, 0, 1),
                }
                .emit(&mut ArpPacket::new_unchecked(&mut reply[14..]));
                e.handle(&mut reply, 0, &mut ctl);
                // And neighbor solicitation (an NA to our link-local address).
                let mut na = [0u8; 86];
                na[..6].copy_from_slice(&LB_MAC.0);
                na[6..12].copy_from_slice(&[2, 0x99, 0, 0, 0, 3]);
                na[12..14].copy_from_slice(&[0x86, 0xdd]);
                Ipv6Repr {
                    src_addr: RS6,
                    dst_addr: Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1),
                    next_header: dataplane::wire::IpProtocol::Icmpv6,
                    payload_len: 32,
                    hop_limit: 255,
                }
                .emit(&mut Ipv6Packet::new_unchecked(&mut na[14..]));
                {
                    let msg = &mut na[54..];
                    msg[0] = 136;
                    msg[4] = 0x60;
                    msg[8..24].copy_from_slice(&RS6.octets());
                    msg[24..26].copy_from_slice(&[2, 1]);
                    msg[26..32].copy_from_slice(&[2, 0x99, 0, 0, 0, 3]);
                    let mut m = Icmpv6Packet::new_unchecked(msg);
                    m.fill_checksum(RS6, Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1));
                }
                e.handle(&mut na, 0, &mut ctl);
                ctl.clear();
                (e, ctl)
            })
            .collect();
        Mutex::new(State { engines, now_ms: 1 })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl_byte, rest)) = data.split_first() else {
        return;
    };
    let mut frame = rest.to_vec();
    views::frame(&frame);
    if ctl_byte & 0xc0 == 0xc0 && frame.len() >= 54 {
        frame[..6].copy_from_slice(&LB_MAC.0);
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        frame[14] = 0x60 | (frame[14] & 0x0f);
        let dst = if ctl_byte & 0x20 != 0 { VIP6 } else { LIP6 };
        frame[38..54].copy_from_slice(&dst.octets());
        if ctl_byte & 0x10 != 0 {
            frame[22..38].copy_from_slice(&RS6.octets());
        }
    } else if ctl_byte & 0x40 != 0 && frame.len() >= 34 {
        frame[..6].copy_from_slice(&LB_MAC.0);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        let dst = if ctl_byte & 0x20 != 0 { VIP } else { LIP };
        frame[30..34].copy_from_slice(&dst.octets());
        if ctl_byte & 0x10 != 0 {
            frame[26..30].copy_from_slice(&RS.octets());
        }
        Ipv4Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    }
    if ctl_byte & 0x04 != 0 && frame.len() >= 14 {
        let vid = if ctl_byte & 0x08 != 0 {
            VLAN.to_be_bytes()
        } else {
            [frame[0], frame[1]]
        };
        frame.splice(12..12, [0x81, 0x00, vid[0], vid[1]]);
    }
    let mut st = state().lock().unwrap_or_else(|e| e.into_inner());
    st.now_ms += 1;
    let now = st.now_ms;
    let (e, ctl) = &mut st.engines[usize::from(ctl_byte & 3)];
    let mut rx = Burst::new(1);
    if !rx.push(&frame) {
        return;
    }
    let f = &mut rx.frames_mut()[0];
    if e.handle_frame(f, now, ctl) == Verdict::Forward {
        let out = f.data();
        if let Ok(eth) = EthernetFrame::new_checked(out) {
            let l3 = match eth.ethertype() {
                dataplane::wire::EtherType::Vlan => out.get(18..).unwrap_or_default(),
                _ => eth.payload(),
            };
            let is_ipv4 = eth.ethertype() != dataplane::wire::EtherType::Vlan
                || out.get(16..18) == Some(&[0x08, 0x00][..]);
            if let (true, Ok(ip)) = (is_ipv4, Ipv4Packet::new_checked(l3)) {
                assert!(ip.verify_checksum(), "forwarded a bad IPv4 checksum");
            }
        }
    }
    ctl.clear();
    if now.is_multiple_of(64) {
        e.housekeeping(now, 256, ctl);
        ctl.clear();
    }
});
