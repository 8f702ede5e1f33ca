//! IPVS's `lc` and `wlc`: the server with the fewest connections (for
//! `wlc`, relative to its weight), from the live counts the workers keep.
//!
//! A server's load is its connection gauge summed over workers
//! ([`crate::stats::Traffic::active`], the count [`crate::threshold`]
//! uses): exact up to the connections other workers are opening at that
//! moment, the slack LVS has between CPUs. LVS weighs connections by state
//! (`active << 8 + inactive`); the gauge counts a connection the same in
//! every state, so a server holding many half-closed connections looks
//! busier here than in LVS. As LVS: quiescent (weight 0) and overloaded
//! servers are skipped, and of equals the first listed wins. The scan is
//! linear in the servers and runs only when a connection opens.

use crate::engine::ServerSnap;
use crate::stats::Drop;
use crate::threshold::ServerLimits;

/// The server (index into `servers`) a new connection goes to under `lc`
/// (`weighted` false) or `wlc`, `weights` being the servers' weights.
///
/// # Errors
/// [`Drop::NoRealServer`] when every server is quiescent,
/// [`Drop::ServerOverloaded`] when every other one is over its limit.
pub fn pick<A>(
    weights: &[u32],
    weighted: bool,
    servers: &[ServerSnap<A>],
    limits: Option<&ServerLimits>,
) -> Result<usize, Drop> {
    // (index, load, weight) of the best so far.
    let mut best: Option<(usize, u64, u64)> = None;
    let mut overloaded = false;
    for (i, (s, &w)) in servers.iter().zip(weights).enumerate() {
        if w == 0 {
            continue;
        }
        let load = s.stats.active();
        if let Some(Some(t)) = limits.and_then(|l| l.get(i)) {
            if !t.admits(load) {
                overloaded = true;
                continue;
            }
        }
        let w = u64::from(w);
        let better = match best {
            None => true,
            // load / w < best_load / best_w, without division (as LVS).
            Some((_, bl, bw)) if weighted => {
                u128::from(bl) * u128::from(w) > u128::from(load) * u128::from(bw)
            }
            Some((_, bl, _)) => load < bl,
        };
        if better {
            best = Some((i, load, w));
        }
    }
    match best {
        Some((i, _, _)) => Ok(i),
        None if overloaded => Err(Drop::ServerOverloaded),
        None => Err(Drop::NoRealServer),
    }
}
