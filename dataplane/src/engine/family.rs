//! What differs between IPv4 and IPv6 forwarding: where the family's half of
//! the [`Snapshot`] is, how headers are rewritten and encapsulated, and how
//! neighbours are asked (ARP / neighbor solicitation).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    encapsulate, insert_toa, push_arp, push_arp_request, rewrite, v6, ServiceSnap, Snapshot,
};
use crate::acl::AccessList;
use crate::command::{Forwarding, Persistence};
use crate::conn::{IpAddress, Key};
use crate::fasthash::FastMap;
use crate::io::Burst;
use crate::sched::{addr_hash, HashTarget, SchedTable};
use crate::stats::Drop;
use crate::threshold::ServerLimits;
use crate::wire::{ArpOperation, MacAddr};

/// An address family the engine forwards.
pub trait Family: IpAddress {
    fn services(s: &Snapshot) -> &[ServiceSnap<Self>];
    fn lookup(s: &Snapshot) -> &FastMap<(Self, u16, u8), usize>;
    fn owned_vips(s: &Snapshot) -> &[Self];
    fn local_addrs(s: &Snapshot) -> &[Self];
    fn nat_servers(s: &Snapshot) -> &[Self];
    fn neighbours(s: &Snapshot) -> &[(Self, Self)];
    fn forwarding(s: &Snapshot) -> &[Forwarding];
    fn persistence(s: &Snapshot) -> &[Option<Persistence>];
    fn interface(s: &Snapshot) -> Option<Self>;
    fn acl(s: &Snapshot) -> &[Option<AccessList>];
    fn limits(s: &Snapshot) -> &[Option<Box<ServerLimits>>];

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

    /// Whether `acl` lets `client` open connections.
    fn admit(acl: &AccessList, client: Self) -> Result<(), Drop>;

    /// The forwarding method of service number `i` (FNAT when missing).
    fn forwarding_of(s: &Snapshot, i: usize) -> Forwarding {
        Self::forwarding(s)
            .get(i)
            .copied()
            .unwrap_or(Forwarding::Fnat)
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

    /// An address of this family for `ip`; with `nat64`, IPv4 addresses
    /// also map into IPv6 (`::ffff:a.b.c.d`, see [`super::v6`]).
    fn from_ip_for(ip: std::net::IpAddr, nat64: bool) -> Option<Self>;

    /// Whether this is an IPv4 address mapped into IPv6 (a NAT64 real
    /// server or local address).
    fn is_mapped(self) -> bool;

    /// Inserts a TOA option carrying `client` into the rewritten TCP segment
    /// `src → dst`; `None` when there is no room. Returns the new frame length.
    fn insert_toa(
        buf: &mut [u8],
        hl: usize,
        tl: usize,
        addrs: (Self, Self),
        client: (Self, u16),
    ) -> Option<usize>;

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
    fn services(s: &Snapshot) -> &[ServiceSnap] {
        &s.services
    }
    fn lookup(s: &Snapshot) -> &FastMap<(Ipv4Addr, u16, u8), usize> {
        &s.lookup
    }
    fn owned_vips(s: &Snapshot) -> &[Ipv4Addr] {
        &s.owned_vips
    }
    fn local_addrs(s: &Snapshot) -> &[Ipv4Addr] {
        &s.local_addrs
    }
    fn nat_servers(s: &Snapshot) -> &[Ipv4Addr] {
        &s.nat_servers
    }
    fn neighbours(s: &Snapshot) -> &[(Ipv4Addr, Ipv4Addr)] {
        &s.neighbours
    }
    fn forwarding(s: &Snapshot) -> &[Forwarding] {
        &s.forwarding
    }
    fn persistence(s: &Snapshot) -> &[Option<Persistence>] {
        &s.persistence
    }
    fn interface(s: &Snapshot) -> Option<Ipv4Addr> {
        s.interface_v4
    }
    fn acl(s: &Snapshot) -> &[Option<AccessList>] {
        &s.acl
    }
    fn limits(s: &Snapshot) -> &[Option<Box<ServerLimits>>] {
        &s.limits
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
    fn from_ip_for(ip: std::net::IpAddr, _: bool) -> Option<Ipv4Addr> {
        Ipv4Addr::from_ip(ip)
    }
    #[inline]
    fn is_mapped(self) -> bool {
        false
    }
    fn insert_toa(
        buf: &mut [u8],
        hl: usize,
        tl: usize,
        addrs: (Ipv4Addr, Ipv4Addr),
        client: (Ipv4Addr, u16),
    ) -> Option<usize> {
        insert_toa(buf, hl, tl, addrs, client)
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
    fn services(s: &Snapshot) -> &[ServiceSnap<Ipv6Addr>] {
        &s.v6.services
    }
    fn lookup(s: &Snapshot) -> &FastMap<(Ipv6Addr, u16, u8), usize> {
        &s.v6.lookup
    }
    fn owned_vips(s: &Snapshot) -> &[Ipv6Addr] {
        &s.v6.owned_vips
    }
    fn local_addrs(s: &Snapshot) -> &[Ipv6Addr] {
        &s.v6.local_addrs
    }
    fn nat_servers(s: &Snapshot) -> &[Ipv6Addr] {
        &s.v6.nat_servers
    }
    fn neighbours(s: &Snapshot) -> &[(Ipv6Addr, Ipv6Addr)] {
        &s.v6.neighbours
    }
    fn forwarding(s: &Snapshot) -> &[Forwarding] {
        &s.v6.forwarding
    }
    fn persistence(s: &Snapshot) -> &[Option<Persistence>] {
        &s.v6.persistence
    }
    fn interface(s: &Snapshot) -> Option<Ipv6Addr> {
        s.v6.interface
    }
    fn acl(s: &Snapshot) -> &[Option<AccessList>] {
        &s.v6.acl
    }
    fn limits(s: &Snapshot) -> &[Option<Box<ServerLimits>>] {
        &s.v6.limits
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
            g => u32::from(g.min(128)),
        };
        let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
        Ipv6Addr::from(u128::from(self) & mask)
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
    fn from_ip_for(ip: std::net::IpAddr, nat64: bool) -> Option<Ipv6Addr> {
        match ip {
            std::net::IpAddr::V6(a) => Some(a),
            std::net::IpAddr::V4(a) => nat64.then(|| a.to_ipv6_mapped()),
        }
    }
    fn is_mapped(self) -> bool {
        self.to_ipv4_mapped().is_some()
    }
    fn insert_toa(
        buf: &mut [u8],
        hl: usize,
        tl: usize,
        addrs: (Ipv6Addr, Ipv6Addr),
        client: (Ipv6Addr, u16),
    ) -> Option<usize> {
        v6::insert_toa(buf, hl, tl, addrs, client)
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
