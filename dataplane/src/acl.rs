//! Client access lists of a service: DPVS's `allow_address_group` (whtlst)
//! and `deny_address_group` (blklst).
//!
//! Semantics (as DPVS's `dp_vs_blklst_filtered` / `dp_vs_whtlst_filtered`,
//! checked when a connection is scheduled): a client in the deny list may
//! not open connections; when the allow list is not empty, only clients in
//! it may. Both are consulted only when a packet would open a new
//! connection; packets of existing connections are never filtered, so a
//! list changed by a reload affects new connections only.
//!
//! The control side compiles the configured ranges into sorted, merged,
//! disjoint intervals ([`AccessList::new`]); a worker answers with one
//! binary search per list, without allocating.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::command::{AddrRange, Protection};
use crate::stats::Drop;

/// An inclusive interval of addresses as integers.
type Span<T> = (T, T);

/// Sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Intervals<T>(Vec<(T, T)>);

impl<T: Copy + Ord + Step> Intervals<T> {
    fn new(mut v: Vec<(T, T)>) -> Intervals<T> {
        for r in &mut v {
            if r.1 < r.0 {
                *r = (r.1, r.0);
            }
        }
        v.sort_unstable();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                // Overlapping or adjacent (a == last + 1): extend.
                Some(last) if a <= last.1 || last.1.next() == Some(a) => {
                    last.1 = last.1.max(b);
                }
                _ => out.push((a, b)),
            }
        }
        Intervals(out)
    }

    fn contains(&self, x: T) -> bool {
        // The last interval starting at or before x.
        let i = self.0.partition_point(|&(a, _)| a <= x);
        i > 0 && x <= self.0[i - 1].1
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

trait Step: Sized {
    fn next(self) -> Option<Self>;
}

impl Step for u32 {
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Step for u128 {
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

/// One address family's allow and deny intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Lists<T> {
    allow: Intervals<T>,
    deny: Intervals<T>,
}

impl<T: Copy + Ord + Step> Lists<T> {
    fn admit(&self, client: T, any_allow: bool) -> Result<(), Drop> {
        if self.deny.contains(client) {
            return Err(Drop::AclDenied);
        }
        if any_allow && !self.allow.contains(client) {
            return Err(Drop::AclNotAllowed);
        }
        Ok(())
    }
}

/// A service's compiled allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    v4: Lists<u32>,
    v6: Lists<u128>,
    /// Some allow range exists (of either family): clients outside every
    /// allow range are refused.
    any_allow: bool,
}

impl AccessList {
    /// Compiles a service's lists; `None` when both are empty (nothing to
    /// check on the hot path). A range whose ends are of different families
    /// is ignored (the control side refuses those).
    pub fn new(p: &Protection) -> Option<AccessList> {
        if p.allow.is_empty() && p.deny.is_empty() {
            return None;
        }
        fn split(rs: &[AddrRange]) -> (Vec<Span<u32>>, Vec<Span<u128>>) {
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            for r in rs {
                match (r.first, r.last) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => v4.push((u32::from(a), u32::from(b))),
                    (IpAddr::V6(a), IpAddr::V6(b)) => v6.push((u128::from(a), u128::from(b))),
                    _ => {}
                }
            }
            (v4, v6)
        }
        let (a4, a6) = split(&p.allow);
        let (d4, d6) = split(&p.deny);
        Some(AccessList {
            any_allow: !a4.is_empty() || !a6.is_empty(),
            v4: Lists {
                allow: Intervals::new(a4),
                deny: Intervals::new(d4),
            },
            v6: Lists {
                allow: Intervals::new(a6),
                deny: Intervals::new(d6),
            },
        })
    }

    /// Whether an IPv4 client may open a connection.
    ///
    /// # Errors
    /// [`Drop::AclDenied`] (in the deny list) or [`Drop::AclNotAllowed`]
    /// (an allow list exists and the client is not in it).
    #[inline]
    pub fn admit_v4(&self, client: Ipv4Addr) -> Result<(), Drop> {
        self.v4.admit(u32::from(client), self.any_allow)
    }

    /// Whether an IPv6 client may open a connection.
    ///
    /// # Errors
    /// As [`AccessList::admit_v4`].
    #[inline]
    pub fn admit_v6(&self, client: Ipv6Addr) -> Result<(), Drop> {
        self.v6.admit(u128::from(client), self.any_allow)
    }

    /// Whether a client may open a connection.
    ///
    /// # Errors
    /// As [`AccessList::admit_v4`].
    pub fn admit(&self, client: IpAddr) -> Result<(), Drop> {
        match client {
            IpAddr::V4(a) => self.admit_v4(a),
            IpAddr::V6(a) => self.admit_v6(a),
        }
    }

    /// Merged IPv4 intervals (allow, deny), for tests and status.
    pub fn v4_intervals(&self) -> [&[Span<u32>]; 2] {
        [&self.v4.allow.0, &self.v4.deny.0]
    }

    /// No IPv4 and no IPv6 range at all.
    pub fn is_empty(&self) -> bool {
        self.v4.allow.is_empty()
            && self.v4.deny.is_empty()
            && self.v6.allow.is_empty()
            && self.v6.deny.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: [u8; 4], b: [u8; 4]) -> AddrRange {
        AddrRange {
            first: Ipv4Addr::from(a).into(),
            last: Ipv4Addr::from(b).into(),
        }
    }

    fn one(a: [u8; 4]) -> AddrRange {
        AddrRange::one(Ipv4Addr::from(a).into())
    }

    #[test]
    fn nothing_configured_compiles_to_nothing() {
        assert_eq!(AccessList::new(&Protection::default()), None);
    }

    #[test]
    fn single_addresses_merge_into_intervals() {
        // The parser expands `10.0.0.1-3` into three addresses.
        let p = Protection {
            deny: vec![
                one([10, 0, 0, 3]),
                one([10, 0, 0, 1]),
                one([10, 0, 0, 2]),
                one([10, 0, 0, 9]),
                r([10, 0, 0, 20], [10, 0, 0, 10]), // reversed ends
                r([10, 0, 0, 15], [10, 0, 0, 25]), // overlapping
            ],
            ..Protection::default()
        };
        let acl = AccessList::new(&p).expect("lists");
        let ip = |a: [u8; 4]| u32::from(Ipv4Addr::from(a));
        assert_eq!(
            acl.v4_intervals()[1],
            [
                (ip([10, 0, 0, 1]), ip([10, 0, 0, 3])),
                (ip([10, 0, 0, 9]), ip([10, 0, 0, 25]))
            ]
        );
        assert!(acl.v4_intervals()[0].is_empty());
    }

    #[test]
    fn deny_refuses_listed_clients_only() {
        let p = Protection {
            deny: vec![r([10, 0, 0, 1], [10, 0, 0, 3])],
            ..Protection::default()
        };
        let acl = AccessList::new(&p).expect("lists");
        for (a, want) in [
            ([10, 0, 0, 0], Ok(())),
            ([10, 0, 0, 1], Err(Drop::AclDenied)),
            ([10, 0, 0, 3], Err(Drop::AclDenied)),
            ([10, 0, 0, 4], Ok(())),
            ([0, 0, 0, 0], Ok(())),
            ([255, 255, 255, 255], Ok(())),
        ] {
            assert_eq!(acl.admit_v4(a.into()), want, "{a:?}");
        }
        assert_eq!(acl.admit("2001:db8::1".parse().expect("v6")), Ok(()));
    }

    #[test]
    fn allow_refuses_everyone_else_and_deny_wins() {
        let p = Protection {
            allow: vec![r([10, 0, 0, 0], [10, 0, 0, 255])],
            deny: vec![one([10, 0, 0, 7])],
            ..Protection::default()
        };
        let acl = AccessList::new(&p).expect("lists");
        assert_eq!(acl.admit_v4([10, 0, 0, 8].into()), Ok(()));
        assert_eq!(acl.admit_v4([10, 0, 0, 7].into()), Err(Drop::AclDenied));
        assert_eq!(acl.admit_v4([10, 0, 1, 0].into()), Err(Drop::AclNotAllowed));
        // An allow list of one family refuses clients of the other.
        assert_eq!(
            acl.admit("2001:db8::1".parse().expect("v6")),
            Err(Drop::AclNotAllowed)
        );
    }

    #[test]
    fn edges_of_the_address_space() {
        let p = Protection {
            allow: vec![
                r([255, 255, 255, 254], [255, 255, 255, 255]),
                one([0, 0, 0, 0]),
            ],
            ..Protection::default()
        };
        let acl = AccessList::new(&p).expect("lists");
        assert_eq!(acl.admit_v4(Ipv4Addr::BROADCAST), Ok(()));
        assert_eq!(acl.admit_v4(Ipv4Addr::UNSPECIFIED), Ok(()));
        assert_eq!(acl.admit_v4([0, 0, 0, 1].into()), Err(Drop::AclNotAllowed));
    }

    proptest::proptest! {
        #[test]
        fn lookup_matches_a_linear_scan(
            ranges in proptest::collection::vec((0u32..64, 0u32..64), 0..8),
            x in 0u32..70,
        ) {
            let p = Protection {
                deny: ranges
                    .iter()
                    .map(|&(a, b)| AddrRange {
                        first: Ipv4Addr::from(a).into(),
                        last: Ipv4Addr::from(b).into(),
                    })
                    .collect(),
                ..Protection::default()
            };
            let linear = ranges.iter().any(|&(a, b)| a.min(b) <= x && x <= a.max(b));
            let got = AccessList::new(&p).is_some_and(|acl| acl.admit_v4(x.into()).is_err());
            proptest::prop_assert_eq!(got, linear);
        }
    }
}
