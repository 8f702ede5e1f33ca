//! The link-state database: installed LSAs, their ages, and instance comparison.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{LsType, LsaHeaderRepr, LsaRepr};

/// (LS type, Link State ID, advertising router): names an LSA.
pub type LsaKey = (LsType, Ipv4Addr, Ipv4Addr);

/// MaxAge (RFC 2328 appendix B).
pub const MAX_AGE: u16 = 3600;
/// MaxAgeDiff.
pub const MAX_AGE_DIFF: u16 = 900;
/// LSRefreshTime in seconds.
pub const LS_REFRESH_TIME: u16 = 1800;
/// MinLSInterval.
pub const MIN_LS_INTERVAL: Duration = Duration::from_secs(5);
/// MinLSArrival.
pub const MIN_LS_ARRIVAL: Duration = Duration::from_secs(1);
/// InitialSequenceNumber.
pub const INITIAL_SEQ: i32 = i32::MIN + 1;
/// MaxSequenceNumber.
pub const MAX_SEQ: i32 = i32::MAX;

/// Which of two instances of the same LSA is newer (§13.1). `Greater`: `a` is newer.
pub fn compare(a: &LsaHeaderRepr, b: &LsaHeaderRepr) -> Ordering {
    a.seq
        .cmp(&b.seq)
        .then(a.checksum.cmp(&b.checksum))
        .then_with(|| match (a.age >= MAX_AGE, b.age >= MAX_AGE) {
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ if a.age.abs_diff(b.age) > MAX_AGE_DIFF => b.age.cmp(&a.age),
            _ => Ordering::Equal,
        })
}

/// One installed LSA.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The LSA as received or originated; `header.age` is the age at `installed`.
    pub lsa: LsaRepr,
    /// When it was installed.
    pub installed: Duration,
}

impl Entry {
    pub fn age(&self, now: Duration) -> u16 {
        let a = self.lsa.header.age;
        if a >= MAX_AGE {
            return MAX_AGE;
        }
        let elapsed = now.saturating_sub(self.installed).as_secs();
        u16::try_from(u64::from(a) + elapsed)
            .unwrap_or(MAX_AGE)
            .min(MAX_AGE)
    }

    /// The header with the current age.
    pub fn header(&self, now: Duration) -> LsaHeaderRepr {
        LsaHeaderRepr {
            age: self.age(now),
            ..self.lsa.header
        }
    }

    /// The LSA with its age as it leaves through an interface (+InfTransDelay).
    pub fn for_flooding(&self, now: Duration) -> LsaRepr {
        let mut lsa = self.lsa.clone();
        lsa.header.age = self.age(now).saturating_add(1).min(MAX_AGE);
        lsa
    }

    /// When the age reaches `target`, or `None` if it is already there.
    pub fn when_age(&self, target: u16) -> Option<Duration> {
        let a = self.lsa.header.age;
        (a < target).then(|| self.installed + Duration::from_secs(u64::from(target - a)))
    }
}

/// The database of one area.
#[derive(Debug, Default)]
pub(crate) struct Lsdb {
    pub entries: BTreeMap<LsaKey, Entry>,
}

impl Lsdb {
    pub fn get(&self, key: &LsaKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn install(&mut self, lsa: LsaRepr, now: Duration) {
        self.entries.insert(
            lsa.header.key(),
            Entry {
                lsa,
                installed: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seq: i32, checksum: u16, age: u16) -> LsaHeaderRepr {
        LsaHeaderRepr {
            age,
            options: 2,
            ls_type: LsType::Router,
            ls_id: Ipv4Addr::LOCALHOST,
            adv_router: Ipv4Addr::LOCALHOST,
            seq,
            checksum,
            length: 20,
        }
    }

    #[test]
    fn newer_instance_rules() {
        assert_eq!(compare(&h(2, 0, 0), &h(1, 9, 0)), Ordering::Greater);
        assert_eq!(compare(&h(1, 5, 0), &h(1, 4, 0)), Ordering::Greater);
        assert_eq!(compare(&h(1, 5, MAX_AGE), &h(1, 5, 3)), Ordering::Greater);
        assert_eq!(compare(&h(1, 5, 10), &h(1, 5, 1000)), Ordering::Greater);
        assert_eq!(compare(&h(1, 5, 10), &h(1, 5, 900)), Ordering::Equal);
    }
}
