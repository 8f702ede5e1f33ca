//! Rate estimation as LVS's `ip_vs_est.c`: every 2 s the control side
//! samples a [`crate::stats::Traffic`]'s counters and folds the 2-second
//! deltas into exponentially weighted moving averages with weight 1/4,
//! kept in LVS's fixed point (packets and connections scaled by 2^10 per
//! second, bytes by 2^5). Readers get per-second values rounded as
//! `ip_vs_read_estimator` does. Nothing here runs on the packet path:
//! workers only bump their counters.

use crate::stats::TrafficSnapshot;

/// LVS's estimation period.
pub const PERIOD_MS: u64 = 2_000;

/// Per-second rates (`ipvsadm -ln --rate`'s columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

/// One counter set's estimator state (`struct ip_vs_estimator`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RateEstimator {
    /// Time and counters of the last sample (`None` before the first).
    last: Option<(u64, [u64; 5])>,
    /// cps, in_pps, out_pps (×2^10) and in_bps, out_bps (×2^5).
    avg: [i64; 5],
}

fn counters(s: &TrafficSnapshot) -> [u64; 5] {
    [s.conns, s.in_pkts, s.out_pkts, s.in_bytes, s.out_bytes]
}

impl RateEstimator {
    /// Takes a sample of `s` at `now_ms`. LVS's timer fires every 2 s; a
    /// late sample's deltas are scaled to 2 s so a slow control thread
    /// does not inflate the rates. Samples closer than 1 s to the last one
    /// are ignored (the next one covers them).
    pub fn sample(&mut self, s: &TrafficSnapshot, now_ms: u64) {
        let now = counters(s);
        let Some((t0, before)) = self.last else {
            self.last = Some((now_ms, now));
            return;
        };
        let elapsed = now_ms.saturating_sub(t0);
        if elapsed < PERIOD_MS / 2 {
            return;
        }
        self.last = Some((now_ms, now));
        for i in 0..5 {
            // A counter that went back (re-created object) counts as 0.
            let delta = now[i].saturating_sub(before[i]);
            let per_period = u128::from(delta) * u128::from(PERIOD_MS) / u128::from(elapsed);
            let per_period = i64::try_from(per_period).unwrap_or(i64::MAX >> 10);
            // Connections and packets: delta << 9 (per 2 s = per s << 10);
            // bytes: delta << 4 (per s << 5).
            let shift = if i < 3 { 9 } else { 4 };
            let rate = per_period.saturating_mul(1 << shift);
            self.avg[i] += (rate - self.avg[i]) >> 2;
        }
    }

    /// The current per-second rates.
    pub fn rates(&self) -> Rates {
        let pk = |v: i64| (v.max(0) as u64 + 0x1ff) >> 10;
        let by = |v: i64| (v.max(0) as u64 + 0xf) >> 5;
        Rates {
            cps: pk(self.avg[0]),
            in_pps: pk(self.avg[1]),
            out_pps: pk(self.avg[2]),
            in_bps: by(self.avg[3]),
            out_bps: by(self.avg[4]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(conns: u64, pkts: u64, bytes: u64) -> TrafficSnapshot {
        TrafficSnapshot {
            conns,
            in_pkts: pkts,
            out_pkts: pkts / 2,
            in_bytes: bytes,
            out_bytes: bytes * 2,
            ..TrafficSnapshot::default()
        }
    }

    #[test]
    fn steady_traffic_converges_to_its_rate_with_lvs_weights() {
        let mut e = RateEstimator::default();
        // 100 conn/s, 1000 pkt/s, 1 MB/s in, fake clock in 2 s steps.
        let mut t = 0;
        e.sample(&at(0, 0, 0), t);
        assert_eq!(e.rates(), Rates::default(), "one sample is no rate");
        t += PERIOD_MS;
        e.sample(&at(200, 2000, 2_000_000), t);
        // First step: a quarter of the way (EWMA weight 1/4).
        assert_eq!(e.rates().cps, 25);
        assert_eq!(e.rates().in_pps, 250);
        assert_eq!(e.rates().in_bps, 250_000);
        for k in 2..100 {
            t += PERIOD_MS;
            e.sample(&at(200 * k, 2000 * k, 2_000_000 * k), t);
        }
        assert_eq!(
            e.rates(),
            Rates {
                cps: 100,
                in_pps: 1000,
                out_pps: 500,
                in_bps: 1_000_000,
                out_bps: 2_000_000
            }
        );
        // Traffic stops: the rates decay by 3/4 per period.
        let before = e.rates().in_pps;
        t += PERIOD_MS;
        e.sample(&at(200 * 99, 2000 * 99, 2_000_000 * 99), t);
        assert_eq!(e.rates().in_pps, before * 3 / 4);
    }

    #[test]
    fn late_and_early_samples_are_scaled_or_skipped() {
        let mut a = RateEstimator::default();
        let mut b = RateEstimator::default();
        a.sample(&at(0, 0, 0), 0);
        b.sample(&at(0, 0, 0), 0);
        // 100 pkt/s for 4 s, sampled once late vs. twice on time.
        a.sample(&at(0, 400, 0), 4_000);
        b.sample(&at(0, 200, 0), 2_000);
        b.sample(&at(0, 200, 0), 2_500); // too early: ignored
        assert_eq!(a.rates().in_pps, 25);
        assert_eq!(b.rates().in_pps, 25);
    }

    #[test]
    fn counters_going_back_count_as_zero() {
        let mut e = RateEstimator::default();
        e.sample(&at(100, 100, 100), 0);
        e.sample(&at(0, 0, 0), PERIOD_MS);
        assert_eq!(e.rates(), Rates::default());
    }
}
