//! Consistent hashing on a ring (Karger et al.), as DPVS's `conhash`.
//!
//! Each server owns `weight × REPLICAS` points ("virtual nodes") placed by
//! hashing its identity with the replica number; a key belongs to the first
//! point at or after its hash, wrapping around. Removing a server moves only
//! the keys it owned; every other key keeps its server. Shares follow
//! weights statistically (relative spread ≈ 1/√points per server).
//! A lookup indexes a bucket by the hash's top bits, then binary-searches
//! the few points in it.
//!
//! Invariant: the ring depends on the set of (identity, weight) pairs only;
//! ties between points are broken by identity.

use super::hash::{fmix64, id_hash};
use super::SchedServer;

/// Virtual nodes per unit of weight, DPVS's replica count.
pub const REPLICAS: u64 = 160;
/// Most points on a ring (2 MiB): weights summing to more than
/// `MAX_POINTS / REPLICAS` (1638) are scaled down to fit.
pub const MAX_POINTS: usize = 1 << 18;

/// A sorted ring: `points[i]` is owned by `owners[i]` (split for a compact
/// search). `index[b]` is the first point whose top `32 - shift` bits are ≥
/// `b` (`index` ends with `points.len()`), so a lookup binary-searches only
/// the few points of its hash's bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ring {
    points: Vec<u32>,
    owners: Vec<u32>,
    index: Vec<u32>,
    shift: u32,
}

impl Ring {
    pub(super) fn build(servers: &[SchedServer]) -> Ring {
        let total: u64 = servers.iter().map(|s| u64::from(s.weight)).sum();
        if total == 0 {
            return Ring::default();
        }
        // Normally a server's points depend on its own weight only, so other
        // servers' changes never move its points; past MAX_POINTS everything
        // is scaled down (each weighted server keeps at least one point).
        let points = |w: u32| -> u64 {
            let p = u64::from(w) * REPLICAS;
            if total * REPLICAS <= MAX_POINTS as u64 || w == 0 {
                p
            } else {
                (p * MAX_POINTS as u64 / (total * REPLICAS)).max(1)
            }
        };
        let mut nodes: Vec<(u32, std::net::SocketAddr, u32)> = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let base = id_hash(&s.id, 2);
            for k in 0..points(s.weight) {
                let point = (fmix64(base ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as u32;
                nodes.push((point, s.id, i as u32));
            }
        }
        nodes.sort_unstable_by_key(|&(p, id, _)| (p, id));
        let points: Vec<u32> = nodes.iter().map(|n| n.0).collect();
        // About one bucket per point, at most 2^16 buckets.
        let bits = points
            .len()
            .next_power_of_two()
            .trailing_zeros()
            .clamp(1, 16);
        let shift = 32 - bits;
        let index = (0..=1u64 << bits)
            .map(|b| points.partition_point(|&p| u64::from(p) < b << shift) as u32)
            .collect();
        Ring {
            owners: nodes.iter().map(|n| n.2).collect(),
            points,
            index,
            shift,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.points.len()
    }

    /// The owner of the first point at or after `hash` (wrapping).
    #[inline]
    pub(super) fn pick(&self, hash: u32) -> Option<u32> {
        let b = (hash >> self.shift) as usize;
        let lo = *self.index.get(b)? as usize;
        let hi = *self.index.get(b + 1)? as usize;
        let i = lo + self.points.get(lo..hi)?.partition_point(|&p| p < hash);
        let i = if i == self.points.len() { 0 } else { i };
        self.owners.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_index_agrees_with_a_plain_search() {
        for n in [1u32, 2, 5, 16] {
            let servers: Vec<SchedServer> = (0..n)
                .map(|i| SchedServer {
                    id: std::net::SocketAddr::new([10, 2, 0, i as u8].into(), 80),
                    weight: i + 1,
                })
                .collect();
            let ring = Ring::build(&servers);
            let first = ring.points.first().copied().unwrap_or(0);
            let last = ring.points.last().copied().unwrap_or(0);
            let edges = [
                0,
                1,
                first,
                first.wrapping_add(1),
                last,
                last.wrapping_add(1),
                u32::MAX,
            ];
            let samples = (0..20_000u32).map(|i| i.wrapping_mul(0x9E37_79B9));
            for h in edges.into_iter().chain(samples) {
                let i = ring.points.iter().position(|&p| p >= h).unwrap_or(0);
                assert_eq!(
                    ring.pick(h),
                    ring.owners.get(i).copied(),
                    "n={n} hash={h:#x}"
                );
            }
        }
    }
}
