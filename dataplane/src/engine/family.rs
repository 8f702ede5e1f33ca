//! What differs between IPv4 and IPv6 forwarding: where the family's half of
//! the [`Snapshot`] is, how headers are rewritten and encapsulated, and how
//! neighbours are asked (ARP / neighbor solicitation).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    encapsulate, insert_toa, push_arp, push_arp_request, rewrite, rewrite_by, v6, ConnPolicy,
    FamilySnap, ServiceSnap, Snapshot, SnatRule,
};
use crate::acl::AccessList;
use crate::command::{Forwarding, Persistence, ProxyProtocol, Quic};
use crate::conn::{ConnTable, Deltas, IpAddress, Key};
use crate::fasthash::FastMap;
use crate::io::Burst;
use crate::sched::{addr_hash, HashTarget, SchedTable};
use crate::stats::Drop;
use crate::threshold::ServerLimits;
use crate::wire::{ArpOperation, MacAddr};

/// An address family the engine forwards.
pub trait Family: IpAddress {
    /// The other family (whose table NAT64 shares local ports with).
    type Peer: IpAddress;

    /// This family's half of the snapshot.
    fn snap(s: &Snapshot) -> &FamilySnap<Self>;

    #[inline]
    fn services(s: &Snapshot) -> &[ServiceSnap<Self>] {
        &Self::snap(s).services
    }
    #[inline]
    fn lookup(s: &Snapshot) -> &FastMap<(Self, u16, u8), usize> {
        &Self::snap(s).lookup
    }
    #[inline]
    fn owned_vips(s: &Snapshot) -> &[Self] {
        &Self::snap(s).owned_vips
    }
    #[inline]
    fn local_addrs(s: &Snapshot) -> &[Self] {
        &Self::snap(s).local_addrs
    }
    #[inline]
    fn nat_servers(s: &Snapshot) -> &[Self] {
        &Self::snap(s).nat_servers
    }
    #[inline]
    fn neighbours(s: &Snapshot) -> &[(Self, Self)] {
        &Self::snap(s).neighbours
    }
    #[inline]
    fn forwarding(s: &Snapshot) -> &[Forwarding] {
        &Self::snap(s).forwarding
    }
    #[inline]
    fn persistence(s: &Snapshot) -> &[Option<Persistence>] {
        &Self::snap(s).persistence
    }
    #[inline]
    fn interface(s: &Snapshot) -> Option<Self> {
        Self::snap(s).interface
    }
    #[inline]
    fn acl(s: &Snapshot) -> &[Option<AccessList>] {
        &Self::snap(s).acl
    }
    #[inline]
    fn limits(s: &Snapshot) -> &[Option<Box<ServerLimits>>] {
        &Self::snap(s).limits
    }
    #[inline]
    fn snat_rules(s: &Snapshot) -> &[SnatRule<Self>] {
        &Self::snap(s).snat
    }

    /// Where packets of service number `i` towards a server go when not
    /// to the server itself (SNAT: the gateway).
    #[inline]
    fn next_hop_of(s: &Snapshot, i: usize) -> Option<Self> {
        Self::snap(s).next_hop.get(i).copied().flatten()
    }

    /// Whether service number `i` proxies SYNs (no when missing).
    #[inline]
    fn synproxy_of(s: &Snapshot, i: usize) -> bool {
        Self::snap(s).synproxy.get(i).copied().unwrap_or(false)
    }

    /// The QUIC options of service number `i` (none when missing).
    #[inline]
    fn quic_of(s: &Snapshot, i: usize) -> Quic {
        Self::snap(s).quic.get(i).copied().unwrap_or_default()
    }

    /// The PROXY protocol of service number `i` (none when missing).
    #[inline]
    fn proxy_protocol_of(s: &Snapshot, i: usize) -> Option<ProxyProtocol> {
        Self::snap(s).proxy_protocol.get(i).copied().flatten()
    }

    /// How the connections of service number `i` live (defaults when missing).
    #[inline]
    fn conn_policy_of(s: &Snapshot, i: usize) -> Option<&ConnPolicy> {
        Self::snap(s).conn_policy.get(i)
    }

    /// The client access list of service number `i` (none when missing).
    #[inline]
    fn acl_of(s: &Snapshot, i: usize) -> Option<&AccessList> {
        Self::acl(s).get(i)?.as_ref()
    }

    /// The server limits of service number `i` (none when missing).
    #[inline]
    fn limits_of(s: &Snapshot, i: usize) -> Option<&ServerLimits> {
        Self::limits(s).get(i)?.as_deref()
    }

    /// Whether the other family's table `peer` holds a connection whose
    /// reply key is `key` written in that family (IPv4 ↔ IPv4-mapped
    /// IPv6): a NAT64 connection and an IPv4 FNAT connection on the same
    /// local address must not get the same (LIP, port) towards the same
    /// real server.
    fn peer_holds(s: &Snapshot, peer: &ConnTable<Self::Peer>, key: &Key<Self>) -> bool;

    /// Whether `acl` lets `client` open connections.
    fn admit(acl: &AccessList, client: Self) -> Result<(), Drop>;

    /// The forwarding method of service number `i` (FNAT when missing).
    fn forwarding_of(s: &Snapshot, i: usize) -> Forwarding {
        Self::forwarding(s)
            .get(i)
            .copied()
            .unwrap_or(Forwarding::Fnat)
    }

    /// Whether the real servers of service number `i` learn the client
    /// from a TOA option: FNAT without PROXY protocol (DPVS adds no TOA
    /// when the header tells the server).
    fn toa_of(s: &Snapshot, i: usize) -> bool {
        Self::forwarding_of(s, i) == Forwarding::Fnat && Self::proxy_protocol_of(s, i).is_none()
    }

    /// The persistence of service number `i` (none when missing).
    fn persistence_of(s: &Snapshot, i: usize) -> Option<Persistence> {
        Self::persistence(s).get(i).copied().flatten()
    }

    /// The client network of this client address under persistence `p`.
    fn network(self, p: Persistence) -> Self;

    /// The scheduler hash [`SchedTable::pick`] needs for a flow `src → dst`.
    fn flow_hash(table: &SchedTable, src: Self, dst: Self) -> u32;

    /// Rewrites the validated packet at the start of `l3` (L4 header at
    /// `hl`, total length `tl`; the rest of `l3` is room to grow) from
    /// 5-tuple `old` to `new`, TTL / hop limit − 1, checksums updated
    /// incrementally. Returns the packet's new length when it changed
    /// (NAT64 translates between IPv6 and IPv4 headers).
    fn rewrite(
        l3: &mut [u8],
        hl: usize,
        tl: usize,
        old: &Key<Self>,
        new: Key<Self>,
    ) -> Result<Option<usize>, Drop>;

    /// [`Family::rewrite`] within the family (not NAT64) by the checksum
    /// differences `d` of the 5-tuple change, precomputed per connection
    /// ([`crate::conn::Conn::deltas`]).
    fn rewrite_by(l3: &mut [u8], hl: usize, tl: usize, new: &Key<Self>, d: Deltas);

    /// An address of this family for `ip`; with `nat64`, IPv4 addresses
    /// also map into IPv6 (`::ffff:a.b.c.d`, see [`super::v6`]).
    fn from_ip_for(ip: std::net::IpAddr, nat64: bool) -> Option<Self>;

    /// Whether this is an IPv4 address mapped into IPv6 (a NAT64 real
    /// server or local address).
    fn is_mapped(self) -> bool;

    /// Length of the TOA option carrying a client of this family (DPVS's
    /// `TCP_OLEN_IP4_ADDR` / `TCP_OLEN_IP6_ADDR`).
    const TOA_LEN: usize;

    /// Inserts a TOA option carrying `client` into the rewritten TCP
    /// segment; `None` when there is no room. Returns the new frame length.
    fn insert_toa(buf: &mut [u8], hl: usize, tl: usize, client: (Self, u16)) -> Option<usize>;

    /// NAT64: inserts DPVS's IPv6 TOA carrying the IPv6 `client` into the
    /// translated IPv4 segment (total length `tl`); `None` for IPv4 or
    /// when there is no room. Returns the new frame length.
    fn insert_toa64(buf: &mut [u8], tl: usize, client: (Self, u16)) -> Option<usize>;

    /// Encapsulates the frame's packet (total length `tl`) in an outer
    /// header `src → dst` (IPIP / ip6ip6). Returns the new frame length.
    fn encapsulate(buf: &mut [u8], tl: usize, src: Self, dst: Self) -> Result<usize, Drop>;

    /// Asks who has `target` from `source` (ARP request / neighbor
    /// solicitation); false when `ctl` is full.
    fn solicit(ctl: &mut Burst, mac: MacAddr, source: Self, target: Self) -> bool;

    /// Announces that `ip` is at `mac` (gratuitous ARP / unsolicited NA).
    fn announce(ctl: &mut Burst, mac: MacAddr, ip: Self) -> bool;
}

impl Family for Ipv4Addr {
    type Peer = Ipv6Addr;
    const TOA_LEN: usize = super::TOA_LEN;
    #[inline]
    fn snap(s: &Snapshot) -> &FamilySnap<Ipv4Addr> {
        &s.v4
    }
    /// Only local addresses NAT64 services use too are shared.
    #[inline]
    fn peer_holds(s: &Snapshot, peer: &ConnTable<Ipv6Addr>, key: &Key<Ipv4Addr>) -> bool {
        !s.nat64_lips.is_empty()
            && s.nat64_lips.binary_search(&key.dst).is_ok()
            && peer.contains(&Key {
                proto: key.proto,
                src: key.src.to_ipv6_mapped(),
                dst: key.dst.to_ipv6_mapped(),
                sport: key.sport,
                dport: key.dport,
            })
    }
    #[inline]
    fn admit(acl: &AccessList, client: Ipv4Addr) -> Result<(), Drop> {
        acl.admit_v4(client)
    }
    fn network(self, p: Persistence) -> Ipv4Addr {
        p.network(self)
    }
    #[inline]
    fn flow_hash(table: &SchedTable, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        table.flow_hash(src, dst)
    }
    #[inline(always)]
    fn rewrite(
        l3: &mut [u8],
        hl: usize,
        tl: usize,
        old: &Key<Self>,
        new: Key<Self>,
    ) -> Result<Option<usize>, Drop> {
        rewrite(l3, hl, tl, old, new);
        Ok(None)
    }
    #[inline(always)]
    fn rewrite_by(l3: &mut [u8], hl: usize, tl: usize, new: &Key<Self>, d: Deltas) {
        rewrite_by(l3, hl, tl, new, d);
    }
    fn from_ip_for(ip: std::net::IpAddr, _: bool) -> Option<Ipv4Addr> {
        Ipv4Addr::from_ip(ip)
    }
    #[inline]
    fn is_mapped(self) -> bool {
        false
    }
    fn insert_toa(buf: &mut [u8], hl: usize, tl: usize, client: (Ipv4Addr, u16)) -> Option<usize> {
        insert_toa(buf, hl, tl, client)
    }
    fn insert_toa64(_: &mut [u8], _: usize, _: (Ipv4Addr, u16)) -> Option<usize> {
        None
    }
    fn encapsulate(buf: &mut [u8], tl: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize, Drop> {
        encapsulate(buf, tl, src, dst)
    }
    fn solicit(ctl: &mut Burst, mac: MacAddr, source: Ipv4Addr, target: Ipv4Addr) -> bool {
        push_arp_request(ctl, mac, source, target)
    }
    fn announce(ctl: &mut Burst, mac: MacAddr, ip: Ipv4Addr) -> bool {
        push_arp(
            ctl,
            mac,
            ArpOperation::Request,
            ip,
            MacAddr::default(),
            ip,
            MacAddr::BROADCAST,
        )
    }
}

impl Family for Ipv6Addr {
    type Peer = Ipv4Addr;
    const TOA_LEN: usize = v6::TOA6_LEN;
    #[inline]
    fn snap(s: &Snapshot) -> &FamilySnap<Ipv6Addr> {
        &s.v6
    }
    /// NAT64 keys (mapped local address and server) are IPv4 keys too.
    fn peer_holds(_: &Snapshot, peer: &ConnTable<Ipv4Addr>, key: &Key<Ipv6Addr>) -> bool {
        let (Some(src), Some(dst)) = (key.src.to_ipv4_mapped(), key.dst.to_ipv4_mapped()) else {
            return false;
        };
        peer.contains(&Key {
            proto: key.proto,
            src,
            dst,
            sport: key.sport,
            dport: key.dport,
        })
    }
    #[inline]
    fn admit(acl: &AccessList, client: Ipv6Addr) -> Result<(), Drop> {
        acl.admit_v6(client)
    }
    /// IPv6 granularity is a prefix length, except that the default (32,
    /// one IPv4 host) means one host (/128) here too.
    fn network(self, p: Persistence) -> Ipv6Addr {
        let bits = match p.granularity {
            32 => 128,
            g => g,
        };
        Ipv6Addr::from(u128::from(self) & crate::wire::ipv6::netmask(bits))
    }
    fn flow_hash(table: &SchedTable, src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
        let fold = |a: Ipv6Addr| {
            let v = u128::from(a);
            Ipv4Addr::from((v ^ v >> 32 ^ v >> 64 ^ v >> 96) as u32)
        };
        match table.hash_target() {
            HashTarget::None => 0,
            HashTarget::SrcAddr => addr_hash(fold(src)),
            HashTarget::DstAddr => addr_hash(fold(dst)),
        }
    }
    fn rewrite(
        l3: &mut [u8],
        hl: usize,
        tl: usize,
        old: &Key<Self>,
        new: Key<Self>,
    ) -> Result<Option<usize>, Drop> {
        v6::rewrite(l3, hl, tl, old, &new)
    }
    #[inline(always)]
    fn rewrite_by(l3: &mut [u8], hl: usize, tl: usize, new: &Key<Self>, d: Deltas) {
        v6::rewrite_by(l3, hl, tl, new, d);
    }
    fn from_ip_for(ip: std::net::IpAddr, nat64: bool) -> Option<Ipv6Addr> {
        match ip {
            std::net::IpAddr::V6(a) => Some(a),
            std::net::IpAddr::V4(a) => nat64.then(|| a.to_ipv6_mapped()),
        }
    }
    fn is_mapped(self) -> bool {
        self.to_ipv4_mapped().is_some()
    }
    fn insert_toa(buf: &mut [u8], hl: usize, tl: usize, client: (Ipv6Addr, u16)) -> Option<usize> {
        v6::insert_toa(buf, hl, tl, client)
    }
    fn insert_toa64(buf: &mut [u8], tl: usize, client: (Ipv6Addr, u16)) -> Option<usize> {
        v6::insert_toa64(buf, tl, client)
    }
    fn encapsulate(buf: &mut [u8], tl: usize, src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize, Drop> {
        v6::encapsulate(buf, tl, src, dst)
    }
    /// NAT64 real servers (mapped IPv4) are asked by ARP.
    fn solicit(ctl: &mut Burst, mac: MacAddr, source: Ipv6Addr, target: Ipv6Addr) -> bool {
        match target.to_ipv4_mapped() {
            Some(t) => {
                let s = source.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
                push_arp_request(ctl, mac, s, t)
            }
            None => v6::push_ns(ctl, mac, source, target),
        }
    }
    /// Mapped IPv4 addresses are announced by the IPv4 side.
    fn announce(ctl: &mut Burst, mac: MacAddr, ip: Ipv6Addr) -> bool {
        ip.is_mapped() || v6::push_unsolicited_na(ctl, mac, ip)
    }
}
