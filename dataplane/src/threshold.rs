//! Per-real-server connection limits: LVS's `uthreshold` / `lthreshold`.
//!
//! LVS (`ip_vs_bind_dest` / `ip_vs_unbind_dest`): a server whose
//! connections (active + inactive, `ip_vs_dest_totalconns`) reach the upper
//! threshold is flagged overloaded (`IP_VS_DEST_F_OVERLOAD`) and schedulers
//! skip it; the flag clears when the count falls below the lower threshold,
//! or, without one, below 3/4 of the upper one.
//!
//! **Counting.** Connections live in per-worker tables, and each worker
//! keeps its own slot of the server's [`Traffic`] gauge (`active`). The
//! total is the sum of the slots, read with relaxed loads: it is exact up
//! to the connections other workers are opening or freeing at that very
//! moment (at most one per worker in flight), which is the same slack LVS
//! has between CPUs. A per-worker share of the threshold (upper / workers)
//! would refuse connections while the server is far from its limit when
//! the flows are unevenly spread over workers, so the honest aggregate is
//! used; it costs one relaxed load per worker, and only when a new
//! connection is scheduled on a service that has thresholds.
//!
//! **Hysteresis.** The overload flag is shared by all workers (an
//! `AtomicBool` per server, kept across snapshots). It is evaluated when a
//! worker schedules a new connection rather than when connections are
//! freed: the flag matters only then, and between two schedulings the count
//! can only fall, so the decision is the one LVS would take.
//!
//! **Schedulers.** As LVS: round-robin style schedulers (rr, wrr, fo's
//! one-entry cycle) skip an overloaded server and try the next one of the
//! cycle (at most one full cycle); hashing schedulers (sh, dh, mh,
//! conhash) refuse the connection when their server is overloaded (LVS's
//! `sh`/`mh` without the `*-fallback` flags). A refusal is counted as
//! `server_overloaded`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::command::Thresholds;
use crate::engine::ServerSnap;
use crate::sched::SchedTable;
use crate::stats::{Drop, Traffic};

/// One real server's limits and its shared overload flag.
#[derive(Debug, Default)]
pub struct Threshold {
    limits: Thresholds,
    overloaded: AtomicBool,
}

impl Threshold {
    /// A limit (`None` when `limits.upper` is 0: no limit).
    pub fn new(limits: Thresholds) -> Option<Threshold> {
        (limits.upper > 0).then(|| Threshold {
            limits,
            overloaded: AtomicBool::new(false),
        })
    }

    pub fn limits(&self) -> Thresholds {
        self.limits
    }

    /// Whether the server is flagged overloaded (as last evaluated).
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Whether a server with `total` connections may get a new one;
    /// updates the overload flag with LVS's hysteresis.
    pub fn admits(&self, total: u64) -> bool {
        let Thresholds { upper, lower } = self.limits;
        let (upper, lower) = (u64::from(upper), u64::from(lower));
        let mut over = self.overloaded.load(Ordering::Relaxed);
        if over {
            let below = if lower > 0 {
                total < lower
            } else {
                total * 4 < upper * 3
            };
            if below {
                over = false;
                self.overloaded.store(false, Ordering::Relaxed);
            }
        }
        if !over && total >= upper {
            over = true;
            self.overloaded.store(true, Ordering::Relaxed);
        }
        !over
    }

    /// Whether the server counted by `stats` may get a new connection.
    #[inline]
    pub fn admits_server(&self, stats: &Traffic) -> bool {
        self.admits(stats.active())
    }
}

/// Per server of a service (same order as its `servers`): its limit.
pub type ServerLimits = [Option<Arc<Threshold>>];

/// Picks a server for a new connection as [`SchedTable::pick`] does, but
/// skipping overloaded servers (see the module docs). Advances `cursor` past
/// the entries it used.
///
/// # Errors
/// [`Drop::NoRealServer`] when the table is empty, [`Drop::ServerOverloaded`]
/// when every candidate is overloaded.
pub fn pick<A>(
    table: &SchedTable,
    cursor: &mut u64,
    hash: u32,
    limits: &ServerLimits,
    servers: &[ServerSnap<A>],
) -> Result<usize, Drop> {
    let tries = if table.is_cycle() { table.len() } else { 1 };
    for _ in 0..tries.max(1) {
        let i = table.pick(*cursor, hash).ok_or(Drop::NoRealServer)? as usize;
        *cursor = table.advance(*cursor);
        let ok = match (limits.get(i), servers.get(i)) {
            (Some(Some(t)), Some(s)) => t.admits_server(&s.stats),
            _ => true,
        };
        if ok {
            return Ok(i);
        }
    }
    Err(Drop::ServerOverloaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Scheduler;
    use std::net::Ipv4Addr;

    fn th(upper: u32, lower: u32) -> Threshold {
        Threshold::new(Thresholds { upper, lower }).expect("limit")
    }

    #[test]
    fn no_upper_means_no_limit() {
        assert!(Threshold::new(Thresholds { upper: 0, lower: 5 }).is_none());
    }

    #[test]
    fn overloaded_at_upper_until_below_lower() {
        let t = th(10, 5);
        assert!(t.admits(0));
        assert!(t.admits(9)); // the 10th connection is accepted
        assert!(!t.admits(10));
        assert!(t.is_overloaded());
        assert!(!t.admits(9)); // hysteresis: still overloaded
        assert!(!t.admits(5));
        assert!(t.admits(4)); // below lower: cleared
        assert!(!t.is_overloaded());
        assert!(t.admits(9));
        assert!(!t.admits(12));
    }

    #[test]
    fn default_lower_is_three_quarters_of_upper() {
        let t = th(8, 0);
        assert!(!t.admits(8));
        assert!(!t.admits(6)); // 6 * 4 = 24 is not < 24
        assert!(t.admits(5)); // 20 < 24
    }

    fn servers(active: &[u64]) -> Vec<ServerSnap> {
        active
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let stats = Traffic::new(2);
                // Spread over two workers: the aggregate is what counts.
                stats.count_active(0, (n / 2) as i64);
                stats.count_active(1, (n - n / 2) as i64);
                ServerSnap {
                    addr: Ipv4Addr::new(10, 0, 0, i as u8 + 1),
                    port: 80,
                    stats: Arc::new(stats),
                }
            })
            .collect()
    }

    #[test]
    fn round_robin_skips_overloaded_servers() {
        let table = SchedTable::build(Scheduler::Rr, &[1, 1, 1]);
        let srv = servers(&[3, 10, 3]);
        let limit = || Some(Arc::new(th(10, 0)));
        let limits = [limit(), limit(), limit()];
        let mut cursor = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| pick(&table, &mut cursor, 0, &limits, &srv).expect("pick"))
            .collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        let all = servers(&[10, 10, 10]);
        assert_eq!(
            pick(&table, &mut cursor, 0, &limits, &all),
            Err(Drop::ServerOverloaded)
        );
        // Servers without a limit are never refused.
        let none = [None, None, None];
        assert!(pick(&table, &mut cursor, 0, &none, &all).is_ok());
    }

    #[test]
    fn hashing_schedulers_refuse_rather_than_move_the_client() {
        let table = SchedTable::build(Scheduler::Mh, &[1, 1]);
        let srv = servers(&[10, 0]);
        let limits = [Some(Arc::new(th(10, 0))), None];
        // Find a hash that lands on server 0.
        let h = (0..1000u32)
            .map(|i| i.wrapping_mul(0x9E37_79B9))
            .find(|&h| table.pick(0, h) == Some(0))
            .expect("some hash picks server 0");
        let mut cursor = 0;
        assert_eq!(
            pick(&table, &mut cursor, h, &limits, &srv),
            Err(Drop::ServerOverloaded)
        );
        let h1 = (0..1000u32)
            .map(|i| i.wrapping_mul(0x9E37_79B9))
            .find(|&h| table.pick(0, h) == Some(1))
            .expect("some hash picks server 1");
        assert_eq!(pick(&table, &mut cursor, h1, &limits, &srv), Ok(1));
    }
}
