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
//! ICMP echo (IPv4): the echo identifier is mapped like a port (requests
//! carry it as the source port, replies as the destination port), so two
//! inside hosts using the same identifier towards one destination do not
//! collide. DPVS keeps the identifier unchanged ("ID may conflict for diff
//! host, need we use ID pool?" in `dp_vs_snat_schedule`); this is where
//! dpvsd differs.
//!
//! Packets a match service does not take (other protocols or ports, TCP
//! segments other than a SYN of an unknown flow, fragments) are left to
//! the kernel ([`Verdict::Ignore`]), as any traffic that is not ours.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::{
    alloc_local, check_ttl, rewrite, wire_drop, Action, Engine, Family, Parsed, ServerSnap, Side,
    Snapshot, Verdict, ETH_LEN,
};
use crate::command::Forwarding;
use crate::conn::{Conn, ConnTable, Dir, FlowKey, Key, TcpFlags};
use crate::io::Burst;
use crate::stats::Drop;
use crate::wire::{checksum, EthernetFrame, Icmpv4Packet, Ipv4Packet, MacAddr};

/// ICMP echo reply / echo request types.
const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;

/// One SNAT service's match, as workers see it (service number `svc` of
/// the family's snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnatRule<A> {
    pub svc: usize,
    /// IP protocol number (6, 17, 1).
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
            && (key.proto == 1
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

impl Engine {
    /// An ICMP echo request from an inside host (`dir` In) or an echo
    /// reply to an SNAT address (`dir` Out) in the frame `buf[..len]`,
    /// whose IPv4 header was validated (`hl`, `tl`: its header and total
    /// length). Anything else is `IcmpUnhandled`, as before SNAT.
    pub(super) fn snat_echo(
        &mut self,
        buf: &mut [u8],
        len: usize,
        dir: Dir,
        (hl, tl): (usize, usize),
        now_ms: u64,
        ctl: &mut Burst,
    ) -> Result<(Verdict, usize), Drop> {
        let rules = &self.snap.v4.snat;
        if !rules.iter().any(|r| r.proto == 1) {
            return Err(Drop::IcmpUnhandled);
        }
        let l3 = buf.get(ETH_LEN..len).ok_or(Drop::Truncated)?;
        let ip = Ipv4Packet::new_unchecked(l3);
        let (src, dst, ttl) = (ip.src_addr(), ip.dst_addr(), ip.ttl());
        let icmp =
            Icmpv4Packet::new_checked(l3.get(hl..tl).ok_or(Drop::Truncated)?).map_err(wire_drop)?;
        let id = (icmp.rest() >> 16) as u16;
        let key = match (dir, icmp.msg_type(), icmp.code()) {
            (Dir::In, ECHO_REQUEST, 0) => echo_key(src, dst, id, 0),
            (Dir::Out, ECHO_REPLY, 0) => echo_key(src, dst, 0, id),
            _ => return Err(Drop::IcmpUnhandled),
        };
        if !icmp.verify_checksum() {
            return Err(Drop::BadChecksum);
        }
        let client_mac = EthernetFrame::new_unchecked(&buf[..len]).src_addr();
        let p = Parsed {
            key,
            hash: key.hash(),
            dir,
            transit: dir == Dir::In,
            flags: TcpFlags::default(),
            ttl,
            hl,
            tl,
            hint: crate::conn::NO_HINT,
        };
        let (peer, side) = (&self.v6.conns, &mut self.v4);
        let res = match dir {
            Dir::In => match side.forward_in(&p, len, now_ms, ctl) {
                Some(res) => res,
                None => side.snat_open(&self.snap, peer, &p, client_mac, len, now_ms, ctl),
            },
            Dir::Out => side.forward_out(&p, len, now_ms),
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
        rewrite_echo(&mut buf[ETH_LEN..len], (hl, tl), &key, new, dir);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..len]);
        eth.set_src_addr(self.mac);
        eth.set_dst_addr(mac);
        Ok((Verdict::Forward, len))
    }
}

/// The connection key of an echo `src → dst` (request: the identifier as
/// the source port; reply: as the destination port).
fn echo_key(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> FlowKey {
    Key {
        proto: 1,
        src,
        dst,
        sport,
        dport,
    }
}

/// Rewrites an echo (IPv4 packet `l3`) from `old` to `new`: addresses and
/// TTL as [`rewrite`] does (the ICMP header has no pseudo-header sum), the
/// identifier (the source port of a request, `dir` In; the destination
/// port of a reply) with an incremental ICMP checksum update.
fn rewrite_echo(l3: &mut [u8], (hl, tl): (usize, usize), old: &FlowKey, new: FlowKey, dir: Dir) {
    // An empty L4 slice: only the IPv4 header is rewritten.
    rewrite(l3, hl, hl, old, new);
    let (old_id, new_id) = match dir {
        Dir::In => (old.sport, new.sport),
        Dir::Out => (old.dport, new.dport),
    };
    let Some(icmp) = l3.get_mut(hl..tl) else {
        return;
    };
    let mut icmp = Icmpv4Packet::new_unchecked(icmp);
    let c = checksum::adjust_sums(icmp.checksum(), u32::from(old_id), u32::from(new_id));
    let rest = icmp.rest();
    icmp.set_rest(u32::from(new_id) << 16 | (rest & 0xffff));
    icmp.set_checksum(c);
}
