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
//! | the same over IPv6 (no extension headers) | likewise                    |
//! | ARP reply or gratuitous ARP, IPv6 neighbor advertisement | every worker (each keeps its neighbours) |
//! | anything else                   | the worker that received it (RSS)          |
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
        let n = self.workers;
        if n <= 1 || frame.len() < 14 {
            return Owner::Here;
        }
        let w = match u16::from_be_bytes([frame[12], frame[13]]) {
            0x0806 => {
                // ARP: replies (and gratuitous ARP) teach every worker's
                // neighbour table; a request is answered where it landed.
                let op = frame.get(20..22).map(|o| u16::from_be_bytes([o[0], o[1]]));
                let gratuitous = frame.len() >= 42 && frame[28..32] == frame[38..42];
                return if op == Some(2) || gratuitous {
                    Owner::All
                } else {
                    Owner::Here
                };
            }
            0x0800 => match self.ipv4_owner(&frame[14..]) {
                Some(w) => w,
                None => return Owner::Here,
            },
            // Neighbor advertisements, as ARP replies: every worker.
            0x86dd if frame.get(20) == Some(&58) && frame.get(54) == Some(&136) => {
                return Owner::All
            }
            0x86dd => match self.ipv6_owner(&frame[14..]) {
                Some(w) => w,
                None => return Owner::Here,
            },
            _ => return Owner::Here,
        };
        if w == here {
            Owner::Here
        } else {
            Owner::Worker(w)
        }
    }

    /// IPv6 TCP/UDP/ICMPv6 as IPv4's; packets with extension headers stay
    /// where they landed.
    #[inline]
    fn ipv6_owner(&self, ip: &[u8]) -> Option<usize> {
        if ip.len() < 44 || ip[0] >> 4 != 6 {
            return None;
        }
        let addr = |at: usize| {
            <[u8; 16]>::try_from(&ip[at..at + 16])
                .ok()
                .map(Ipv6Addr::from)
        };
        let (src, dst) = (addr(8)?, addr(24)?);
        let l4 = &ip[40..];
        let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
        match ip[6] {
            6 | 17 => self.v6.owner((src, port(0)), (dst, port(2)), self.workers),
            58 => self.v6.icmp_owner(dst, l4, true, self.workers),
            _ => None,
        }
    }

    #[inline]
    fn ipv4_owner(&self, ip: &[u8]) -> Option<usize> {
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let proto = ip[9];
        // Not the first fragment: no ports to look at.
        if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 || !matches!(proto, 1 | 6 | 17) {
            return None;
        }
        let l4 = ip.get(ihl..ihl + 4)?;
        let addr = |at: usize| {
            <[u8; 4]>::try_from(&ip[at..at + 4])
                .ok()
                .map(Ipv4Addr::from)
        };
        let (src, dst) = (addr(12)?, addr(16)?);
        if proto == 1 {
            return self.v4.icmp_owner(dst, &ip[ihl..], false, self.workers);
        }
        let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
        self.v4.owner((src, port(0)), (dst, port(2)), self.workers)
    }
}

/// The local port an ICMP (`v6`: ICMPv6) message `icmp` to a local
/// address is about: an echo reply's identifier (SNAT maps echo
/// identifiers into the worker's local port range, engine/snat.rs), or
/// the source port of the TCP/UDP packet an error (unreachable, time
/// exceeded, parameter problem; ICMPv6: also packet too big) quotes,
/// which left from that port.
fn icmp_local_port(icmp: &[u8], v6: bool) -> Option<u16> {
    let at = |b: &[u8], i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    let t = *icmp.first()?;
    let (reply, error) = match v6 {
        false => (0, matches!(t, 3 | 11 | 12)),
        true => (129, matches!(t, 1..=4)),
    };
    if t == reply {
        return at(icmp, 4);
    }
    if !error {
        return None;
    }
    // The quoted packet's IP header: IPv4 (with options), or IPv6
    // without extension headers.
    let q = icmp.get(8..)?;
    let (proto, l4) = match q.first()? >> 4 {
        4 => (*q.get(9)?, usize::from(q[0] & 0x0f) * 4),
        6 => (*q.get(6)?, 40),
        _ => return None,
    };
    if !matches!(proto, 6 | 17) || l4 < 20 {
        return None;
    }
    at(q, l4)
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
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
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
        f
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
        // Elsewhere, an echo request, an extension header: stay.
        assert_eq!(
            s.owner(&ip6(9, 0x201, 17, &[0, 53, p[0], p[1], 0, 8, 0, 0]), 0),
            Owner::Here
        );
        assert_eq!(
            s.owner(&ip6(9, 0x200, 58, &[128, 0, 0, 0, p[0], p[1], 0, 1]), 0),
            Owner::Here
        );
        assert_eq!(
            s.owner(&ip6(9, 0x200, 0, &[17, 0, 0, 0, 0, 0, 0, 0]), 0),
            Owner::Here
        );
    }
}
