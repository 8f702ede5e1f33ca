//! SNAT: DPVS's `match` services (`virtual_server match`, `lb_kind SNAT`).
//!
//! A packet routed through the dataplane (sent to our MAC, addressed to
//! none of our addresses and not a NAT reply) whose source and destination
//! fall in an SNAT service's `src-range` / `dst-range` is an inside host's
//! traffic to the outside. The first packet of a flow picks one of the
//! service's "real servers" (the SNAT addresses, DPVS's WAN addresses
//! added with `sapool`) with the service's scheduler and allocates a source
//! port on it from the worker's local port range ([`alloc_local`], as FNAT
//! does for its local addresses). The connection is FNAT-shaped:
//!
//! | direction | packet                    | becomes                        |
//! |-----------|---------------------------|--------------------------------|
//! | outbound  | inside:p → outside:q      | SNAT:port → outside:q, TTL − 1 |
//! | reply     | outside:q → SNAT:port     | outside:q → inside:p, TTL − 1  |
//!
//! so the client key (inside, outside, p, q) and the reply key (outside,
//! SNAT, q, port) are both indexed, per-state timeouts, statistics and
//! ICMP error translation are the other modes' (an error from a router
//! about an outbound packet keeps the router as its source). Outbound
//! packets go to the service's next hop (the WAN gateway the control plane
//! read from the kernel's route, resolved like a real server); replies go
//! to the inside host's MAC, learned from its first packet.
//!
//! IPv4 and IPv6 work alike: the match, the connection and the rewrite
//! are the family-generic ones ([`Side::snat_open`], [`super::Family`]);
//! SNAT addresses are local addresses, so ARP and neighbor solicitations
//! for them are answered.
//!
//! ICMP echo (`protocol ICMP`) and ICMPv6 echo (`protocol ICMPV6`): the
//! echo identifier is mapped like a port (requests carry it as the source
//! port, replies as the destination port), so two inside hosts using the
//! same identifier towards one destination do not collide, and the mapped
//! identifier lies in the worker's local port range, so replies are
//! steered to the worker holding the mapping as TCP/UDP replies are
//! ([`crate::steer`]). The checksum is updated incrementally, ICMPv6's
//! over its pseudo-header too ([`EchoFamily`]). DPVS keeps the
//! identifier unchanged ("ID may conflict for diff host, need we use ID
//! pool?" in `dp_vs_snat_schedule`); this is where dpvsd differs.
//!
//! Packets a match service does not take (other protocols or ports, TCP
//! segments other than a SYN of an unknown flow, fragments) are left to
//! the kernel ([`Verdict::Ignore`]), as any traffic that is not ours. A
//! packet a service took (a new flow's, or a tracked flow's) that cannot
//! be sent (no neighbour yet, TTL 1, no local port, …) is dropped and
//! counted under its reason.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::{
    alloc_local, check_ttl, Action, Engine, Family, Parsed, ServerSnap, Side, Snapshot, Verdict,
    ETH_LEN,
};
use crate::command::Forwarding;
use crate::conn::{Conn, ConnTable, Dir, Key, TcpFlags};
use crate::io::Burst;
use crate::stats::Drop;
use crate::wire::{checksum, icmpv6, EthernetFrame, Icmpv4Packet, Icmpv6Packet, MacAddr};

/// One SNAT service's match, as workers see it (service number `svc` of
/// the family's snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnatRule<A> {
    pub svc: usize,
    /// IP protocol number (6, 17, 1, 58).
    pub proto: u8,
    /// Inclusive source (inside) address range and port range.
    pub src: (A, A),
    pub sports: (u16, u16),
    /// Inclusive destination (outside) address range and port range.
    pub dst: (A, A),
    pub dports: (u16, u16),
}

impl<A: Family> SnatRule<A> {
    /// Whether `src → dst` falls in the address ranges.
    #[inline]
    fn covers(&self, src: A, dst: A) -> bool {
        (self.src.0..=self.src.1).contains(&src) && (self.dst.0..=self.dst.1).contains(&dst)
    }

    /// Whether the rule takes a new flow `key` (ICMP has no ports).
    fn matches(&self, key: &Key<A>) -> bool {
        let within = |p: u16, (lo, hi): (u16, u16)| (lo..=hi).contains(&p);
        self.proto == key.proto
            && self.covers(key.src, key.dst)
            && (matches!(key.proto, 1 | 58)
                || (within(key.sport, self.sports) && within(key.dport, self.dports)))
    }
}

/// Whether a packet `src → dst` not addressed to us may belong to an SNAT
/// service (the address ranges of some rule cover it; protocol and ports
/// are checked when a flow is opened).
#[inline]
pub(super) fn candidate<A: Family>(rules: &[SnatRule<A>], src: A, dst: A) -> bool {
    rules.iter().any(|r| r.covers(src, dst))
}

/// Whether a failure to open an SNAT connection means a match service
/// took the packet (and it is dropped and counted), rather than that no
/// service takes it (it is the kernel's).
#[inline]
pub(super) fn taken(d: Drop) -> bool {
    !matches!(
        d,
        Drop::NoService | Drop::NoConnection | Drop::IcmpUnhandled
    )
}

impl<A: Family> Side<A> {
    /// A new SNAT connection for the inside host's packet `p` (`peer`: see
    /// [`Side::forward`]): returns the rewrite towards the outside and the
    /// next hop's MAC. `NoService` when no match service takes it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn snat_open(
        &mut self,
        snap: &Snapshot,
        peer: &ConnTable<A::Peer>,
        p: &Parsed<A>,
        client_mac: MacAddr,
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Action<A>, MacAddr), Drop> {
        let key = &p.key;
        let rule = A::snat_rules(snap)
            .iter()
            .find(|r| r.matches(key))
            .ok_or(Drop::NoService)?;
        let svc_idx = rule.svc;
        let f = p.flags;
        self.may_open(snap, p, svc_idx)?;
        check_ttl(Forwarding::Snat, p.ttl)?;
        let svc = A::services(snap).get(svc_idx).ok_or(Drop::NoService)?;
        let hash = A::flow_hash(&svc.table, key.src, key.dst);
        // No persistence for match services (DPVS skips it too); the
        // thresholds of SNAT addresses apply as for any real server.
        let rs_idx = self.pick_server(snap, svc, svc_idx, hash)?;
        let dest = self.dest_id(svc_idx, rs_idx)?;
        let mac = self.dest_mac(dest, now_ms, ctl)?;
        let rs = svc.servers.get(rs_idx).ok_or(Drop::NoRealServer)?;
        // The outside destination stands where FNAT's real server does,
        // the SNAT address where its local address does.
        let outside = ServerSnap {
            addr: key.dst,
            port: key.dport,
            stats: Arc::clone(&rs.stats),
        };
        let (out_key, out_hash) = alloc_local(
            &mut self.next_port,
            (self.port_min, self.port_max),
            &self.conns,
            std::slice::from_ref(&rs.addr),
            &outside,
            key.proto,
            |k| A::peer_holds(snap, peer, k),
        )
        .ok_or(Drop::NoLocalPort)?;
        let aging = self.conns.dest(dest).ok_or(Drop::NoRealServer)?.aging;
        let conn = Conn::open(*key, out_key, client_mac, dest, aging, f, now_ms);
        self.conns
            .insert_hashed(conn, p.hash, out_hash)
            .ok_or(Drop::ConnTableFull)?;
        self.count_opened(dest, len);
        Ok((Action::Nat(out_key.reversed()), mac))
    }
}

/// What SNAT's echo mapping needs of an address family: ICMP's numbers,
/// its checksum's pseudo-header, and where the family's state is.
pub(super) trait EchoFamily: Family {
    /// The IP protocol number of the family's ICMP (1, 58).
    const ICMP: u8;
    /// Echo request and echo reply types.
    const ECHO_REQUEST: u8;
    const ECHO_REPLY: u8;
    /// The engine's side of this family, the other family's connections
    /// and the snapshot.
    fn echo_split(e: &mut Engine) -> (&mut Side<Self>, &ConnTable<Self::Peer>, &Snapshot);
    /// Whether the ICMP message `msg` sent `src → dst` has a good checksum.
    fn echo_checksum_ok(msg: &[u8], src: Self, dst: Self) -> bool;
    /// The partial sum of what the ICMP checksum covers of `k` beyond the
    /// message (ICMPv6's pseudo-header addresses; ICMPv4 has none: 0).
    fn pseudo_sum(k: &Key<Self>) -> u32;
}

impl EchoFamily for Ipv4Addr {
    const ICMP: u8 = 1;
    const ECHO_REQUEST: u8 = 8;
    const ECHO_REPLY: u8 = 0;
    fn echo_split(e: &mut Engine) -> (&mut Side<Ipv4Addr>, &ConnTable<Ipv6Addr>, &Snapshot) {
        (&mut e.v4, &e.v6.conns, &e.snap)
    }
    fn echo_checksum_ok(msg: &[u8], _: Ipv4Addr, _: Ipv4Addr) -> bool {
        Icmpv4Packet::new_unchecked(msg).verify_checksum()
    }
    fn pseudo_sum(_: &Key<Ipv4Addr>) -> u32 {
        0
    }
}

impl EchoFamily for Ipv6Addr {
    const ICMP: u8 = 58;
    const ECHO_REQUEST: u8 = icmpv6::ECHO_REQUEST;
    const ECHO_REPLY: u8 = icmpv6::ECHO_REPLY;
    fn echo_split(e: &mut Engine) -> (&mut Side<Ipv6Addr>, &ConnTable<Ipv4Addr>, &Snapshot) {
        (&mut e.v6, &e.v4.conns, &e.snap)
    }
    fn echo_checksum_ok(msg: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        Icmpv6Packet::new_unchecked(msg).verify_checksum(src, dst)
    }
    fn pseudo_sum(k: &Key<Ipv6Addr>) -> u32 {
        checksum::sum(&k.src.octets()) + checksum::sum(&k.dst.octets())
    }
}

impl Engine {
    /// An ICMP(v6) echo request from an inside host (`dir` In) or an echo
    /// reply to an SNAT address (`dir` Out) in the frame `buf[..len]`,
    /// whose IP header was validated: addresses and TTL (hop limit) `ip`,
    /// the ICMP message at `hl` up to the packet's total length `tl`.
    /// Anything else is `IcmpUnhandled`, as before SNAT.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn snat_echo<A: EchoFamily>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        dir: Dir,
        (src, dst, ttl): (A, A, u8),
        (hl, tl): (usize, usize),
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Verdict, usize), Drop> {
        if !A::snat_rules(&self.snap).iter().any(|r| r.proto == A::ICMP) {
            return Err(Drop::IcmpUnhandled);
        }
        let msg = buf
            .get(ETH_LEN + hl..ETH_LEN + tl)
            .filter(|m| m.len() >= ECHO_HEADER_LEN)
            .ok_or(Drop::Truncated)?;
        let id = u16::from_be_bytes([msg[4], msg[5]]);
        let echo_key = |sport, dport| Key {
            proto: A::ICMP,
            src,
            dst,
            sport,
            dport,
        };
        let key = match (dir, msg[0], msg[1]) {
            (Dir::In, t, 0) if t == A::ECHO_REQUEST => echo_key(id, 0),
            (Dir::Out, t, 0) if t == A::ECHO_REPLY => echo_key(0, id),
            _ => return Err(Drop::IcmpUnhandled),
        };
        if !A::echo_checksum_ok(msg, src, dst) {
            return Err(Drop::BadChecksum);
        }
        let client_mac = EthernetFrame::new_unchecked(&buf[..len]).src_addr();
        let p = Parsed {
            key,
            hash: key.hash(),
            dir,
            transit: dir == Dir::In,
            flags: TcpFlags::default(),
            ack: 0,
            ttl,
            hl,
            tl,
            hint: crate::conn::NO_HINT,
        };
        let (side, peer, snap) = A::echo_split(self);
        let res = match dir {
            Dir::In => match side.forward_in(&p, buf, len, now_ms, ctl) {
                Some(res) => res,
                None => side.snat_open(snap, peer, &p, client_mac, len, now_ms, ctl),
            },
            Dir::Out => side.forward_out(&p, buf, len, now_ms),
        };
        let (action, mac) = match res {
            Ok(x) => x,
            // An inside host's echo a service took: counted, not the kernel's.
            Err(d) if dir == Dir::In && taken(d) => return Ok((Verdict::Drop(d), len)),
            Err(d) => return Err(d),
        };
        let Action::Nat(new) = action else {
            return Err(Drop::NoConnection);
        };
        rewrite_echo(&mut buf[ETH_LEN..len], (hl, tl), &key, new, dir)?;
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..len]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(mac);
        Ok((Verdict::Forward, len))
    }
}

/// Type, code, checksum, identifier and sequence number: the echo header
/// of ICMPv4 and ICMPv6 alike.
const ECHO_HEADER_LEN: usize = 8;

/// Rewrites an echo (IP packet `l3`) from `old` to `new`: addresses and
/// TTL / hop limit as the family's rewrite does (given no L4 bytes), the
/// identifier (the source port of a request, `dir` In; the destination
/// port of a reply) with an incremental checksum update that covers
/// ICMPv6's pseudo-header too.
fn rewrite_echo<A: EchoFamily>(
    l3: &mut [u8],
    (hl, tl): (usize, usize),
    old: &Key<A>,
    new: Key<A>,
    dir: Dir,
) -> Result<(), Drop> {
    // An empty L4 slice: only the IP header is rewritten.
    A::rewrite(l3, hl, hl, old, new)?;
    let (old_id, new_id) = match dir {
        Dir::In => (old.sport, new.sport),
        Dir::Out => (old.dport, new.dport),
    };
    let Some(msg) = l3.get_mut(hl..tl).filter(|m| m.len() >= ECHO_HEADER_LEN) else {
        return Ok(());
    };
    let c = u16::from_be_bytes([msg[2], msg[3]]);
    let c = checksum::adjust_sums(
        c,
        A::pseudo_sum(old) + u32::from(old_id),
        A::pseudo_sum(&new) + u32::from(new_id),
    );
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    msg[4..6].copy_from_slice(&new_id.to_be_bytes());
    Ok(())
}
