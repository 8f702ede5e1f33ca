//! Probe durations as a fixed-bucket histogram (Prometheus-style upper
//! bounds), kept per checker and reported in [`crate::CheckStatus`].
//!
//! Recording is `O(buckets)` with no allocation; the bucket counts are
//! per-bucket (not cumulative), the last bucket holding everything above the
//! largest bound.

use std::time::Duration;

/// Upper bounds of the buckets, in microseconds: 1 ms … 10 s.
pub const LATENCY_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// How long a checker's probes took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    /// `buckets[i]` counts probes with `LATENCY_BOUNDS_US[i-1] < d <=
    /// LATENCY_BOUNDS_US[i]`; the last entry counts those above every bound.
    pub buckets: Vec<u64>,
    /// Sum of all durations, in microseconds.
    pub sum_us: u64,
    /// Probes recorded.
    pub count: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: vec![0; LATENCY_BOUNDS_US.len() + 1],
            sum_us: 0,
            count: 0,
        }
    }
}

impl Latency {
    /// Records one probe that took `d`.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        if self.buckets.len() <= i {
            self.buckets.resize(LATENCY_BOUNDS_US.len() + 1, 0);
        }
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_bucket() {
        let mut l = Latency::default();
        l.record(Duration::from_micros(1_000)); // on the bound: first bucket
        l.record(Duration::from_micros(1_001)); // just above: second
        l.record(Duration::from_millis(300));
        l.record(Duration::from_secs(60)); // above every bound
        assert_eq!(l.count, 4);
        assert_eq!(l.sum_us, 1_000 + 1_001 + 300_000 + 60_000_000);
        assert_eq!(l.buckets[0], 1);
        assert_eq!(l.buckets[1], 1);
        assert_eq!(l.buckets[8], 1, "300 ms is in (250 ms, 500 ms]");
        assert_eq!(l.buckets[LATENCY_BOUNDS_US.len()], 1);
        assert_eq!(l.buckets.iter().sum::<u64>(), l.count);
    }
}
