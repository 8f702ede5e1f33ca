//! Schedulers. The control side builds an immutable [`SchedTable`] whenever a
//! service's servers or weights change; workers only index it with their own
//! cursor (no lock, no allocation, no division on the hot path).

use crate::command::Scheduler;

/// Upper bound on a table's length; larger weight sets are scaled down
/// proportionally (each server with weight > 0 keeps at least one slot).
pub const MAX_TABLE_LEN: usize = 1 << 16;

/// A precomputed pick sequence: indices into the service's server list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedTable {
    seq: Vec<u32>,
}

impl SchedTable {
    /// Builds the table for `weights` (index = server index). Servers with
    /// weight 0 are quiescent and never picked.
    pub fn build(scheduler: Scheduler, weights: &[u32]) -> SchedTable {
        let seq = match scheduler {
            Scheduler::Rr => (0..weights.len() as u32)
                .filter(|&i| weights[i as usize] > 0)
                .collect(),
            Scheduler::Wrr => wrr_sequence(&scale(weights)),
        };
        SchedTable { seq }
    }

    /// The server for pick number `cursor`, or `None` when no server is available.
    #[inline]
    pub fn pick(&self, cursor: u64) -> Option<u32> {
        if self.seq.is_empty() {
            return None;
        }
        let i = (cursor % self.seq.len() as u64) as usize;
        self.seq.get(i).copied()
    }

    pub fn len(&self) -> usize {
        self.seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Scales weights so that the WRR cycle fits in [`MAX_TABLE_LEN`].
fn scale(weights: &[u32]) -> Vec<u64> {
    let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
    if g == 0 {
        return vec![0; weights.len()];
    }
    let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w) / g).collect();
    let sum: u64 = reduced.iter().sum();
    if sum as usize <= MAX_TABLE_LEN {
        return reduced;
    }
    let budget = (MAX_TABLE_LEN - weights.len()) as u64;
    reduced
        .iter()
        .map(|&w| if w == 0 { 0 } else { (w * budget / sum).max(1) })
        .collect()
}

/// IPVS's interleaved weighted round robin, one full cycle.
fn wrr_sequence(weights: &[u64]) -> Vec<u32> {
    let max = weights.iter().copied().max().unwrap_or(0);
    let step = weights.iter().fold(0u64, |g, &w| gcd(g, w));
    if max == 0 {
        return Vec::new();
    }
    let mut seq = Vec::new();
    let mut cw = max;
    loop {
        for (i, &w) in weights.iter().enumerate() {
            if w >= cw {
                seq.push(i as u32);
            }
        }
        if cw <= step {
            break;
        }
        cw -= step;
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(t: &SchedTable, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for k in 0..t.len() as u64 {
            c[t.pick(k).expect("non-empty") as usize] += 1;
        }
        c
    }

    #[test]
    fn rr_skips_quiescent_servers() {
        let t = SchedTable::build(Scheduler::Rr, &[1, 0, 5]);
        assert_eq!(t.seq, vec![0, 2]);
    }

    #[test]
    fn wrr_matches_ipvs_interleaving() {
        // IPVS wrr with weights 4,3,2: a a b a b c a b c
        let t = SchedTable::build(Scheduler::Wrr, &[4, 3, 2]);
        assert_eq!(t.seq, vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn wrr_proportional_and_gcd_reduced() {
        let t = SchedTable::build(Scheduler::Wrr, &[200, 100, 0]);
        assert_eq!(t.len(), 3);
        assert_eq!(counts(&t, 3), vec![2, 1, 0]);
    }

    #[test]
    fn empty_when_all_quiescent() {
        assert!(SchedTable::build(Scheduler::Wrr, &[0, 0]).pick(7).is_none());
        assert!(SchedTable::build(Scheduler::Rr, &[]).pick(0).is_none());
    }

    #[test]
    fn huge_weights_are_bounded_and_keep_every_server() {
        let t = SchedTable::build(Scheduler::Wrr, &[u32::MAX, 1, 65_537]);
        assert!(t.len() <= MAX_TABLE_LEN);
        assert!(counts(&t, 3).iter().all(|&c| c >= 1));
    }
}
