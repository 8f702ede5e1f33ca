//! Which worker owns a received frame, for backends with several workers
//! on one port (DPDK: one rx/tx queue pair per worker, RSS across them).
//!
//! RSS places a client's packets to a VIP on some queue, and that worker
//! creates the connection. The replies must reach the same worker:
//!
//! | frame                           | owner                                     |
//! |---------------------------------|-------------------------------------------|
//! | RS → LIP:lport (FNAT reply)     | the worker whose local port range holds lport |
//! | outside → SNAT address:port     | likewise (SNAT addresses are local addresses) |
//! | ICMP echo reply to a local address | likewise by its identifier (SNAT maps echo ids into that range) |
//! | ICMP error to a local address   | likewise by the quoted packet's source port |
//! | client → NAT VIP                | hash of (client IP, client port)          |
//! | NAT RS → client (NAT reply)     | hash of (client IP, client port): the same |
//! | the same over IPv6, past hop-by-hop, routing and destination options headers | likewise |
//! | ARP reply or gratuitous ARP, IPv6 neighbor advertisement | every worker (each keeps its neighbours) |
//! | an IPv4 or IPv6 fragment, the first one too | the worker that received it |
//! | a malformed packet or extension header chain | the worker that received it |
//! | any of the above behind one 802.1Q tag | the same as untagged        |
//! | stacked (QinQ) tags             | the worker that received it (the engine drops them) |
//! | anything else                   | the worker that received it (RSS)          |
//!
//! Headers are read by the engine's own parsers ([`Ipv4Packet`] with its
//! options, [`Ipv6Packet::upper_layer`]'s bounded extension header walk,
//! [`Quote`] and [`Quote6`] for ICMP errors), so a frame is steered by the
//! ports the engine will look up. The engine does not reassemble (as
//! DPVS): it counts fragments and drops them (`fragment`), or hands a real
//! server's own ones to the kernel, on whichever worker has them, so they
//! are not moved; a first fragment could be steered by its ports, but its
//! fate would be the same.
//!
//! FNAT replies are steered by port range, as DPVS does with flow director
//! rules or its "conn redirect" ring. NAT replies carry no port of ours, so
//! both directions of a NAT connection are placed by a hash of the client
//! side instead (the one part both directions share): no lookup in another
//! worker's table, no shared state; the cost is that client packets to NAT
//! VIPs that RSS put on another queue are redirected too. FNAT, DR and TUN
//! client traffic stays where RSS put it.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::conn::IpAddress;
use crate::engine::{Family, FamilySnap, Snapshot, LOCAL_PORT_MIN};
use crate::wire::icmpv4::Quote;
use crate::wire::icmpv6::{Quote6, NEIGHBOR_ADVERT};
use crate::wire::ipv6::HEADER_LEN;
use crate::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, Ipv6Upper};
use crate::Forwarding;

/// Worker `worker`'s FNAT local ports out of `workers`: the range
/// `LOCAL_PORT_MIN..=65535` split into equal, disjoint parts.
pub fn local_port_range(worker: usize, workers: usize) -> (u16, u16) {
    let n = workers.max(1);
    let span = (usize::from(u16::MAX) - usize::from(LOCAL_PORT_MIN) + 1) / n;
    let lo = usize::from(LOCAL_PORT_MIN) + worker.min(n - 1) * span;
    let hi = (lo + span - 1).min(usize::from(u16::MAX));
    (lo as u16, hi as u16)
}

/// The worker whose [`local_port_range`] holds `port`, if any.
pub fn local_port_owner(port: u16, workers: usize) -> Option<usize> {
    let n = workers.max(1);
    let span = (usize::from(u16::MAX) - usize::from(LOCAL_PORT_MIN) + 1) / n;
    let off = usize::from(port).checked_sub(usize::from(LOCAL_PORT_MIN))?;
    let w = off / span;
    (w < n).then_some(w)
}

/// Where a received frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The worker that received it.
    Here,
    /// Another worker.
    Worker(usize),
    /// Every worker (a copy each).
    All,
}

/// The steering rules of one snapshot (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Steering {
    workers: usize,
    v4: Sets<Ipv4Addr>,
    v6: Sets<Ipv6Addr>,
}

/// One family's addresses the rules look at (each sorted).
#[derive(Debug, Clone)]
struct Sets<A> {
    /// Local addresses (FNAT, NAT64, SNAT).
    lips: Vec<A>,
    /// VIPs of NAT services.
    nat_vips: Vec<A>,
    /// Real servers of NAT services.
    nat_servers: Vec<A>,
}

impl<A> Default for Sets<A> {
    fn default() -> Sets<A> {
        Sets {
            lips: Vec::new(),
            nat_vips: Vec::new(),
            nat_servers: Vec::new(),
        }
    }
}

impl<A: Family> Sets<A> {
    fn of(half: &FamilySnap<A>) -> Sets<A> {
        let mut nat_vips: Vec<A> = half
            .services
            .iter()
            .enumerate()
            .filter(|(i, _)| half.forwarding.get(*i) == Some(&Forwarding::Nat))
            .filter_map(|(_, s)| A::from_ip(s.key.addr))
            .collect();
        nat_vips.sort_unstable();
        nat_vips.dedup();
        Sets {
            lips: half.local_addrs.clone(),
            nat_vips,
            nat_servers: half.nat_servers.clone(),
        }
    }

    /// The owner of a TCP/UDP packet `src:sport → dst:dport`: a local
    /// address's port owner, or for NAT the client's hash in both
    /// directions.
    #[inline]
    fn owner(&self, (src, sport): (A, u16), (dst, dport): (A, u16), n: usize) -> Option<usize> {
        let has = |set: &[A], a: A| set.binary_search(&a).is_ok();
        if has(&self.lips, dst) {
            return local_port_owner(dport, n);
        }
        if has(&self.nat_servers, src) {
            return Some(client_owner(dst, dport, n));
        }
        if has(&self.nat_vips, dst) {
            return Some(client_owner(src, sport, n));
        }
        None
    }

    /// The owner of an ICMP message `icmp` (`v6`: ICMPv6) to `dst`: a
    /// local address's owner of the port it is about.
    #[inline]
    fn icmp_owner(&self, dst: A, icmp: &[u8], v6: bool, n: usize) -> Option<usize> {
        self.lips.binary_search(&dst).ok()?;
        local_port_owner(icmp_local_port(icmp, v6)?, n)
    }
}

/// Hash of a client's (address, port) onto `workers`.
#[inline]
fn client_owner<A: IpAddress>(ip: A, port: u16, workers: usize) -> usize {
    let x = (ip.digest() << 16 ^ u64::from(port)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 32) % workers as u64) as usize
}

impl Steering {
    /// The rules for `snap` on a port shared by `workers` workers.
    pub fn from_snapshot(snap: &Snapshot, workers: usize) -> Steering {
        Steering {
            workers: workers.max(1),
            v4: Sets::of(&snap.v4),
            v6: Sets::of(&snap.v6),
        }
    }

    /// Workers the rules steer between.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The owner of an Ethernet `frame` received by worker `here`.
    #[inline]
    pub fn owner(&self, frame: &[u8], here: usize) -> Owner {
        if self.workers <= 1 || frame.len() < 14 {
            return Owner::Here;
        }
        // One 802.1Q tag (VIPs and local addresses on VLANs, engine/vlan.rs)
        // is looked through; the engine drops stacked tags wherever they are.
        let (ethertype, l3) = match u16::from_be_bytes([frame[12], frame[13]]) {
            0x8100 => match (frame.get(16..18), frame.get(18..)) {
                (Some(t), Some(l3)) => (u16::from_be_bytes([t[0], t[1]]), l3),
                _ => return Owner::Here,
            },
            t => (t, &frame[14..]),
        };
        let owner = match ethertype {
            0x0806 => {
                // ARP: replies (and gratuitous ARP) teach every worker's
                // neighbour table; a request is answered where it landed.
                let op = l3.get(6..8).map(|o| u16::from_be_bytes([o[0], o[1]]));
                let gratuitous = l3.len() >= 28 && l3[14..18] == l3[24..28];
                return if op == Some(2) || gratuitous {
                    Owner::All
                } else {
                    Owner::Here
                };
            }
            0x0800 => self.ipv4_owner(l3).map(Owner::Worker),
            0x86dd => self.ipv6_owner(l3),
            _ => None,
        };
        match owner {
            Some(Owner::Worker(w)) if w != here => Owner::Worker(w),
            Some(Owner::All) => Owner::All,
            _ => Owner::Here,
        }
    }

    /// IPv6 TCP/UDP/ICMPv6 as IPv4's, past any extension headers (the
    /// engine's walk, [`Ipv6Packet::upper_layer`]); neighbor
    /// advertisements to every worker. Fragments and malformed packets:
    /// `None` (they stay where they landed, where the engine counts and
    /// drops them).
    #[inline]
    fn ipv6_owner(&self, ip: &[u8]) -> Option<Owner> {
        let pkt = Ipv6Packet::new_checked(ip).ok()?;
        // The usual packet, without extension headers, needs no walk (its
        // next header byte is there: new_checked saw 40 bytes at least).
        let (protocol, offset) = match ip[6] {
            p @ (6 | 17 | 58) => (p, HEADER_LEN),
            _ => match pkt.upper_layer().ok()? {
                Ipv6Upper::Upper { protocol, offset } => (u8::from(protocol), offset),
                Ipv6Upper::Fragment => return None,
            },
        };
        let l4 = ip.get(offset..HEADER_LEN + usize::from(pkt.payload_len()))?;
        let (src, dst) = (pkt.src_addr(), pkt.dst_addr());
        let w = match protocol {
            6 | 17 => {
                let (sport, dport) = ports(l4)?;
                self.v6.owner((src, sport), (dst, dport), self.workers)
            }
            58 if l4.first() == Some(&NEIGHBOR_ADVERT) => return Some(Owner::All),
            58 => self.v6.icmp_owner(dst, l4, true, self.workers),
            _ => None,
        }?;
        Some(Owner::Worker(w))
    }

    /// IPv4 TCP/UDP/ICMP past the header's options. Fragments (the first
    /// one too: the engine does not reassemble, it counts and drops them)
    /// and malformed packets: `None`.
    #[inline]
    fn ipv4_owner(&self, ip: &[u8]) -> Option<usize> {
        let pkt = Ipv4Packet::new_checked(ip).ok()?;
        if pkt.is_fragment() {
            return None;
        }
        let (src, dst, l4) = (pkt.src_addr(), pkt.dst_addr(), pkt.payload());
        match pkt.protocol() {
            IpProtocol::Tcp | IpProtocol::Udp => {
                let (sport, dport) = ports(l4)?;
                self.v4.owner((src, sport), (dst, dport), self.workers)
            }
            IpProtocol::Icmp => self.v4.icmp_owner(dst, l4, false, self.workers),
            _ => None,
        }
    }
}

/// The source and destination ports at the start of a TCP/UDP header.
#[inline]
fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    let p = l4.get(..4)?;
    Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ))
}

/// The local port an ICMP (`v6`: ICMPv6) message `icmp` to a local
/// address is about: an echo reply's identifier (SNAT maps echo
/// identifiers into the worker's local port range, engine/snat.rs), or
/// the source port of the TCP/UDP packet an error (unreachable, time
/// exceeded, parameter problem; ICMPv6: also packet too big) quotes,
/// which left from that port. The quote is read as the engine reads it
/// ([`Quote`], [`Quote6`]: IPv4 options, IPv6 extension headers).
fn icmp_local_port(icmp: &[u8], v6: bool) -> Option<u16> {
    let t = *icmp.first()?;
    let (reply, error) = match v6 {
        false => (0, matches!(t, 3 | 11 | 12)),
        true => (129, matches!(t, 1..=4)),
    };
    if t == reply {
        return icmp.get(4..6).map(|id| u16::from_be_bytes([id[0], id[1]]));
    }
    if !error {
        return None;
    }
    let quote = icmp.get(8..)?;
    let (protocol, sport) = match v6 {
        false => Quote::parse(quote).map(|q| (q.protocol, q.src_port)).ok()?,
        true => Quote6::parse(quote)
            .map(|q| (q.protocol, q.src_port))
            .ok()?,
    };
    matches!(protocol, 6 | 17).then_some(sport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_are_disjoint_and_owned() {
        for n in 1..=8 {
            let mut prev_hi = LOCAL_PORT_MIN - 1;
            for w in 0..n {
                let (lo, hi) = local_port_range(w, n);
                assert_eq!(lo, prev_hi + 1, "n={n} w={w}");
                assert!(hi >= lo);
                for p in [lo, hi, lo + (hi - lo) / 2] {
                    assert_eq!(local_port_owner(p, n), Some(w), "n={n} port {p}");
                }
                prev_hi = hi;
            }
            assert_eq!(local_port_owner(LOCAL_PORT_MIN - 1, n), None);
        }
    }

    fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f
    }

    fn rules() -> Steering {
        let v6 = |i| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i);
        Steering {
            workers: 2,
            v4: Sets {
                lips: vec![Ipv4Addr::new(10, 0, 0, 200)],
                nat_vips: vec![Ipv4Addr::new(10, 0, 0, 100)],
                nat_servers: vec![Ipv4Addr::new(10, 1, 0, 1)],
            },
            v6: Sets {
                lips: vec![v6(0x200)],
                nat_vips: vec![v6(0x100)],
                nat_servers: vec![v6(0x301)],
            },
        }
    }

    #[test]
    fn fnat_replies_go_to_the_port_owner() {
        let s = rules();
        let (lo1, _) = local_port_range(1, 2);
        let f = frame([10, 1, 0, 9], [10, 0, 0, 200], 80, lo1 + 5);
        assert_eq!(s.owner(&f, 0), Owner::Worker(1));
        assert_eq!(s.owner(&f, 1), Owner::Here);
        let f = frame([10, 1, 0, 9], [10, 0, 0, 200], 80, LOCAL_PORT_MIN);
        assert_eq!(s.owner(&f, 1), Owner::Worker(0));
    }

    #[test]
    fn both_nat_directions_land_on_one_worker() {
        let s = rules();
        let mut seen = [0usize; 2];
        for cport in 40000..40064u16 {
            let client = [192, 168, 7, (cport % 200) as u8];
            let to_vip = frame(client, [10, 0, 0, 100], cport, 80);
            let reply = frame([10, 1, 0, 1], client, 80, cport);
            let owner = |f: &[u8]| match s.owner(f, 0) {
                Owner::Here => 0,
                Owner::Worker(w) => w,
                Owner::All => panic!("not broadcast"),
            };
            let w = owner(&to_vip);
            assert_eq!(owner(&reply), w, "client port {cport}");
            seen[w] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0, "the hash spreads: {seen:?}");
    }

    #[test]
    fn other_traffic_stays_and_arp_replies_go_everywhere() {
        let s = rules();
        // FNAT/DR client traffic to another VIP: where RSS put it.
        let f = frame([192, 168, 7, 1], [10, 0, 0, 101], 40000, 80);
        assert_eq!(s.owner(&f, 1), Owner::Here);
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        arp[20..22].copy_from_slice(&2u16.to_be_bytes());
        arp[28..32].copy_from_slice(&[10, 1, 0, 1]);
        assert_eq!(s.owner(&arp, 0), Owner::All);
        arp[20..22].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(s.owner(&arp, 0), Owner::Here);
        // One worker: nothing moves.
        let one = Steering {
            workers: 1,
            ..rules()
        };
        let (lo1, _) = local_port_range(1, 2);
        let f = frame([10, 1, 0, 9], [10, 0, 0, 200], 80, lo1 + 5);
        assert_eq!(one.owner(&f, 0), Owner::Here);
        // Truncated frames are not parsed.
        assert_eq!(s.owner(&f[..30], 0), Owner::Here);
    }

    /// An ICMP message `src → dst` of `msg_type` whose bytes after the
    /// type are `rest` (code, checksum, …).
    fn icmp(src: [u8; 4], dst: [u8; 4], msg_type: u8, rest: &[u8]) -> Vec<u8> {
        let mut f = frame(src, dst, 0, 0);
        f.truncate(34);
        f[23] = 1;
        f.push(msg_type);
        f.extend_from_slice(rest);
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f
    }

    /// `frame` with `options` (a multiple of 4 bytes) after the fixed
    /// IPv4 header.
    fn with_options(f: &[u8], options: &[u8]) -> Vec<u8> {
        let mut g = f[..34].to_vec();
        g[14] = 0x45 + (options.len() / 4) as u8;
        g.extend_from_slice(options);
        g.extend_from_slice(&f[34..]);
        let total = (g.len() - 14) as u16;
        g[16..18].copy_from_slice(&total.to_be_bytes());
        g
    }

    #[test]
    fn ipv4_options_fragments_and_bad_headers() {
        let s = rules();
        let (lo1, _) = local_port_range(1, 2);
        let f = frame([10, 1, 0, 9], [10, 0, 0, 200], 80, lo1 + 5);
        assert_eq!(s.owner(&f, 0), Owner::Worker(1));
        // Options (router alert, then a timestamp whose bytes as ports
        // would point at worker 0): the ports after them count.
        let (lo0, _) = local_port_range(0, 2);
        let t = lo0.to_be_bytes();
        let opt = with_options(&f, &[148, 4, 0, 0, 68, 8, t[0], t[1], t[0], t[1], 0, 0]);
        assert_eq!(s.owner(&opt, 0), Owner::Worker(1));
        assert_eq!(s.owner(&opt, 1), Owner::Here);
        let e = etherparse::SlicedPacket::from_ethernet(&opt).expect("etherparse");
        let Some(etherparse::TransportSlice::Tcp(tcp)) = e.transport else {
            panic!("etherparse found no TCP")
        };
        assert_eq!(tcp.destination_port(), lo1 + 5);
        // An ICMP error behind options quoting a packet with options.
        let quoted = &with_options(&frame([10, 0, 0, 200], [8, 8, 8, 8], lo1 + 3, 53), &[1; 8]);
        let err = icmp(
            [10, 1, 0, 254],
            [10, 0, 0, 200],
            11,
            &[[0, 0, 0, 0, 0, 0, 0].as_slice(), &quoted[14..42 + 8]].concat(),
        );
        assert_eq!(s.owner(&err, 0), Owner::Worker(1));
        let err = with_options(&err, &[148, 4, 0, 0]);
        assert_eq!(s.owner(&err, 0), Owner::Worker(1));
        // Fragments, the first one (more fragments, offset 0) too: stay,
        // as in IPv6; the engine drops them wherever they are.
        for flags in [0x2000u16, 0x2001, 0x0001, 0x4000] {
            let mut g = f.clone();
            g[20..22].copy_from_slice(&flags.to_be_bytes());
            let want = if flags == 0x4000 {
                Owner::Worker(1)
            } else {
                Owner::Here
            };
            assert_eq!(s.owner(&g, 0), want, "flags {flags:#x}");
        }
        // A header length below 20 (ports would be read from the
        // header), a total length ending before the ports (they would be
        // read from the Ethernet padding) or past the frame: stay.
        let mut g = f.clone();
        g[14] = 0x44;
        assert_eq!(s.owner(&g, 0), Owner::Here);
        let mut g = f.clone();
        g[16..18].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(s.owner(&g, 0), Owner::Here);
        g[16..18].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(s.owner(&g, 0), Owner::Worker(1));
        g[16..18].copy_from_slice(&51u16.to_be_bytes());
        assert_eq!(s.owner(&g, 0), Owner::Here);
        for n in 0..f.len() {
            let want = if n >= 14 + 50 {
                Owner::Worker(1)
            } else {
                Owner::Here
            };
            assert_eq!(s.owner(&f[..n], 0), want, "cut at {n}");
        }
    }

    /// `f` with an 802.1Q tag of VLAN `id` after the MAC addresses.
    fn tagged(f: &[u8], id: u16) -> Vec<u8> {
        let id = id.to_be_bytes();
        [&f[..12], &[0x81, 0x00, id[0], id[1]], &f[12..]].concat()
    }

    #[test]
    fn vlan_tagged_frames_are_steered_as_untagged() {
        let s = rules();
        let (lo1, _) = local_port_range(1, 2);
        // An FNAT reply to a local address on VLAN 100, over IPv4 and
        // over IPv6 behind an extension header.
        let f = tagged(&frame([10, 1, 0, 9], [10, 0, 0, 200], 80, lo1 + 5), 100);
        assert_eq!(s.owner(&f, 0), Owner::Worker(1));
        assert_eq!(s.owner(&f, 1), Owner::Here);
        let p = (lo1 + 4).to_be_bytes();
        let udp = [0, 53, p[0], p[1], 0, 8, 0, 0];
        let f6 = tagged(&ip6_ext(9, 0x200, &[60], 17, &udp), 100);
        assert_eq!(s.owner(&f6, 0), Owner::Worker(1));
        // NAT: the tagged reply lands with the untagged client packet.
        for cport in 40000..40016u16 {
            let client = [192, 168, 7, (cport % 200) as u8];
            let to_vip = frame(client, [10, 0, 0, 100], cport, 80);
            let reply = tagged(&frame([10, 1, 0, 1], client, 80, cport), 7);
            assert_eq!(dest(&s, &reply, 0), dest(&s, &to_vip, 0), "port {cport}");
        }
        // A tagged ARP reply teaches every worker; a request stays.
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        arp[20..22].copy_from_slice(&2u16.to_be_bytes());
        arp[28..32].copy_from_slice(&[10, 1, 0, 1]);
        assert_eq!(s.owner(&tagged(&arp, 100), 0), Owner::All);
        arp[20..22].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(s.owner(&tagged(&arp, 100), 0), Owner::Here);
        // Stacked tags, a cut tag: stay.
        assert_eq!(s.owner(&tagged(&f, 5), 0), Owner::Here);
        assert_eq!(s.owner(&f[..17], 0), Owner::Here);
        assert_eq!(s.owner(&f[..18], 0), Owner::Here);
    }

    proptest::proptest! {
        /// Arbitrary bytes, and arbitrary bytes behind an IPv4 or IPv6
        /// Ethernet type (with a plausible version nibble), never panic.
        #[test]
        fn owner_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..160),
            kind in 0u8..5,
            here in 0usize..3,
        ) {
            let s = rules();
            let mut f = bytes;
            if f.len() > 14 {
                match kind {
                    0 => {
                        f[12..14].copy_from_slice(&[0x08, 0x00]);
                        f[14] = 0x40 | (f[14] & 0x0f);
                    }
                    1 => {
                        f[12..14].copy_from_slice(&[0x86, 0xdd]);
                        f[14] = 0x60;
                    }
                    2 => f[12..14].copy_from_slice(&[0x08, 0x06]),
                    3 => f[12..14].copy_from_slice(&[0x81, 0x00]),
                    _ => {}
                }
            }
            let _ = s.owner(&f, here);
        }
    }

    #[test]
    fn icmp_to_a_local_address_goes_to_the_port_owner() {
        let s = rules();
        let (lo1, _) = local_port_range(1, 2);
        let id = (lo1 + 9).to_be_bytes();
        // An echo reply with a mapped identifier.
        let reply = icmp(
            [8, 8, 8, 8],
            [10, 0, 0, 200],
            0,
            &[0, 0, 0, id[0], id[1], 0, 1],
        );
        assert_eq!(s.owner(&reply, 0), Owner::Worker(1));
        assert_eq!(s.owner(&reply, 1), Owner::Here);
        // An error quoting LIP:lport → server.
        let quoted = &frame([10, 0, 0, 200], [8, 8, 8, 8], lo1 + 3, 53)[14..42];
        let err = icmp(
            [10, 1, 0, 254],
            [10, 0, 0, 200],
            3,
            &[[4, 0, 0, 0, 0, 0, 0].as_slice(), quoted].concat(),
        );
        assert_eq!(s.owner(&err, 0), Owner::Worker(1));
        // Echo requests, ICMP to other addresses, truncated quotes: stay.
        let req = icmp(
            [8, 8, 8, 8],
            [10, 0, 0, 200],
            8,
            &[0, 0, 0, id[0], id[1], 0, 1],
        );
        assert_eq!(s.owner(&req, 0), Owner::Here);
        let other = icmp(
            [8, 8, 8, 8],
            [10, 0, 0, 201],
            0,
            &[0, 0, 0, id[0], id[1], 0, 1],
        );
        assert_eq!(s.owner(&other, 0), Owner::Here);
        assert_eq!(s.owner(&err[..50], 0), Owner::Here);
    }

    /// An IPv6 packet `src → dst` of next header `nh` carrying `l4`.
    fn ip6(src: u16, dst: u16, nh: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(l4.len() as u16).to_be_bytes());
        f[20] = nh;
        f[21] = 64;
        f[22..38].copy_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, src).octets());
        f[38..54].copy_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, dst).octets());
        f.extend_from_slice(l4);
        f
    }

    #[test]
    fn both_ipv6_nat_directions_land_on_one_worker() {
        let s = rules();
        let mut seen = [0usize; 2];
        for cport in 40000..40064u16 {
            let c = cport.to_be_bytes();
            let to_vip = ip6(0x7000 + cport % 200, 0x100, 6, &[c[0], c[1], 0, 80]);
            let reply = ip6(0x301, 0x7000 + cport % 200, 6, &[0, 80, c[0], c[1]]);
            let w = match s.owner(&to_vip, 0) {
                Owner::Here => 0,
                Owner::Worker(w) => w,
                Owner::All => panic!("a NAT packet goes to one worker"),
            };
            let here = |o| if o == Owner::Here { w } else { usize::MAX };
            assert_eq!(here(s.owner(&to_vip, w)), w, "client → VIP, port {cport}");
            assert_eq!(here(s.owner(&reply, w)), w, "server → client, port {cport}");
            seen[w] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "clients spread: {seen:?}");
    }

    #[test]
    fn ipv6_to_a_local_address_goes_to_the_port_owner() {
        let s = rules();
        let (lo1, _) = local_port_range(1, 2);
        let p = (lo1 + 4).to_be_bytes();
        // A TCP/UDP reply to the local address.
        let reply = ip6(9, 0x200, 17, &[0, 53, p[0], p[1], 0, 8, 0, 0]);
        assert_eq!(s.owner(&reply, 0), Owner::Worker(1));
        assert_eq!(s.owner(&reply, 1), Owner::Here);
        // An echo reply with a mapped identifier.
        let echo = ip6(9, 0x200, 58, &[129, 0, 0, 0, p[0], p[1], 0, 1]);
        assert_eq!(s.owner(&echo, 0), Owner::Worker(1));
        // Packet too big quoting local:port → server.
        let quoted = &ip6(0x200, 9, 6, &[p[0], p[1], 0, 80, 0, 0, 0, 0])[14..];
        let err = ip6(
            0xfe,
            0x200,
            58,
            &[[2, 0, 0, 0, 0, 0, 5, 0].as_slice(), quoted].concat(),
        );
        assert_eq!(s.owner(&err, 0), Owner::Worker(1));
        // A neighbor advertisement teaches every worker.
        let na = ip6(9, 0x200, 58, &[136, 0, 0, 0, 0x60, 0, 0, 0]);
        assert_eq!(s.owner(&na, 0), Owner::All);
        // Elsewhere, an echo request: stay.
        assert_eq!(
            s.owner(&ip6(9, 0x201, 17, &[0, 53, p[0], p[1], 0, 8, 0, 0]), 0),
            Owner::Here
        );
        assert_eq!(
            s.owner(&ip6(9, 0x200, 58, &[128, 0, 0, 0, p[0], p[1], 0, 1]), 0),
            Owner::Here
        );
    }

    /// Extension headers of the types `chain` (hop-by-hop 0, routing 43,
    /// destination options 60), each 16 bytes of padding and naming the
    /// next, the last naming `upper`.
    fn ext(chain: &[u8], upper: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, _) in chain.iter().enumerate() {
            let next = chain.get(i + 1).copied().unwrap_or(upper);
            // 16 bytes (length field 1): PadN of 12 after the first two.
            out.extend_from_slice(&[next, 1, 1, 12]);
            out.extend_from_slice(&[0; 12]);
        }
        out
    }

    /// `ip6` with the extension headers `chain` before the upper layer `nh`.
    fn ip6_ext(src: u16, dst: u16, chain: &[u8], nh: u8, l4: &[u8]) -> Vec<u8> {
        let first = chain.first().copied().unwrap_or(nh);
        ip6(src, dst, first, &[ext(chain, nh).as_slice(), l4].concat())
    }

    /// Where `frame` ends up when worker `here` received it.
    fn dest(s: &Steering, frame: &[u8], here: usize) -> usize {
        match s.owner(frame, here) {
            Owner::Here => here,
            Owner::Worker(w) => w,
            Owner::All => panic!("not a broadcast"),
        }
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let s = rules();
        let (lo1, _) = local_port_range(1, 2);
        let p = (lo1 + 4).to_be_bytes();
        let mut tcp = [0u8; 20];
        tcp[..4].copy_from_slice(&[0, 80, p[0], p[1]]);
        tcp[12] = 0x50;
        // FNAT replies behind a destination options header, and behind
        // hop-by-hop + routing headers: the port owner.
        for chain in [&[60][..], &[0, 43], &[0, 43, 60]] {
            let reply = ip6_ext(9, 0x200, chain, 6, &tcp);
            assert_eq!(s.owner(&reply, 0), Owner::Worker(1), "{chain:?}");
            assert_eq!(s.owner(&reply, 1), Owner::Here, "{chain:?}");
            // The walk agrees with etherparse's.
            let e = etherparse::SlicedPacket::from_ethernet(&reply).expect("etherparse");
            let Some(etherparse::TransportSlice::Tcp(t)) = e.transport else {
                panic!("etherparse found no TCP behind {chain:?}")
            };
            assert_eq!(t.destination_port(), lo1 + 4);
        }
        let (lo0, _) = local_port_range(0, 2);
        let q = lo0.to_be_bytes();
        let reply = ip6_ext(9, 0x200, &[60], 17, &[0, 53, q[0], q[1], 0, 8, 0, 0]);
        assert_eq!(s.owner(&reply, 1), Owner::Worker(0));
        // An ICMPv6 error behind an extension header, quoting a packet
        // with one too: the owner of the quoted source port.
        let quoted = &ip6_ext(0x200, 9, &[60], 6, &[p[0], p[1], 0, 80, 0, 0, 0, 0])[14..];
        let err = ip6_ext(
            0xfe,
            0x200,
            &[0],
            58,
            &[[1, 4, 0, 0, 0, 0, 0, 0].as_slice(), quoted].concat(),
        );
        assert_eq!(s.owner(&err, 0), Owner::Worker(1));
        // An echo reply behind a hop-by-hop header.
        let echo = ip6_ext(9, 0x200, &[0], 58, &[129, 0, 0, 0, p[0], p[1], 0, 1]);
        assert_eq!(s.owner(&echo, 0), Owner::Worker(1));
        // A neighbor advertisement behind one: every worker.
        let na = ip6_ext(9, 0x200, &[0], 58, &[136, 0, 0, 0, 0x60, 0, 0, 0]);
        assert_eq!(s.owner(&na, 0), Owner::All);
    }

    #[test]
    fn ipv6_nat_with_extension_headers_lands_with_the_client() {
        let s = rules();
        for cport in 40000..40032u16 {
            let c = cport.to_be_bytes();
            let client = 0x7000 + cport % 200;
            let to_vip = ip6(client, 0x100, 6, &[c[0], c[1], 0, 80]);
            let w = dest(&s, &to_vip, 0);
            // The server's reply with a destination options header, and
            // the client's next packet with a hop-by-hop one: both there.
            let reply = ip6_ext(0x301, client, &[60], 6, &[0, 80, c[0], c[1]]);
            let again = ip6_ext(client, 0x100, &[0], 6, &[c[0], c[1], 0, 80]);
            for here in 0..2 {
                assert_eq!(dest(&s, &reply, here), w, "reply, port {cport}");
                assert_eq!(dest(&s, &again, here), w, "client, port {cport}");
            }
        }
    }

    #[test]
    fn ipv6_fragments_and_bad_chains_stay() {
        let s = rules();
        let (lo1, _) = local_port_range(1, 2);
        let p = (lo1 + 4).to_be_bytes();
        let udp = [0, 53, p[0], p[1], 0, 8, 0, 0];
        let good = ip6_ext(9, 0x200, &[60], 17, &udp);
        assert_eq!(s.owner(&good, 0), Owner::Worker(1));
        // A first fragment (offset 0, more fragments) carries the ports,
        // a later one does not: both stay, where the engine drops them.
        for frag in [[17, 0, 0, 1, 0, 0, 0, 7], [17, 0, 0x05, 0x08, 0, 0, 0, 7]] {
            let f = ip6(9, 0x200, 44, &[frag.as_slice(), &udp].concat());
            assert_eq!(s.owner(&f, 0), Owner::Here, "{frag:?}");
            let f = ip6_ext(9, 0x200, &[0], 44, &[frag.as_slice(), &udp].concat());
            assert_eq!(s.owner(&f, 0), Owner::Here, "{frag:?} behind hop-by-hop");
        }
        // A header running past the payload, every truncation of the
        // frame, a chain longer than the walk's bound, a payload length
        // beyond the frame: stay, no panic.
        let mut long = good.clone();
        long[14 + 41] = 200;
        assert_eq!(s.owner(&long, 0), Owner::Here);
        for n in 0..good.len() {
            assert_eq!(s.owner(&good[..n], 0), Owner::Here, "cut at {n}");
        }
        let chain = [60; crate::wire::ipv6::MAX_EXT_HEADERS + 1];
        assert_eq!(
            s.owner(&ip6_ext(9, 0x200, &chain, 17, &udp), 0),
            Owner::Here
        );
        let fits = [60; crate::wire::ipv6::MAX_EXT_HEADERS];
        assert_eq!(
            s.owner(&ip6_ext(9, 0x200, &fits, 17, &udp), 0),
            Owner::Worker(1)
        );
        let mut over = good.clone();
        over[18..20].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(s.owner(&over, 0), Owner::Here);
        // An ICMPv6 error quoting a fragment: no port to go by.
        let quoted = &ip6(0x200, 9, 44, &[17, 0, 0, 1, 0, 0, 0, 7, p[0], p[1], 0, 53])[14..];
        let err = ip6(
            0xfe,
            0x200,
            58,
            &[[1, 4, 0, 0, 0, 0, 0, 0].as_slice(), quoted].concat(),
        );
        assert_eq!(s.owner(&err, 0), Owner::Here);
    }
}
