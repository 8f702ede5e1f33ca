//! Schedulers. The control side builds an immutable [`SchedTable`] whenever a
//! service's servers or weights change; workers only index it (no lock, no
//! allocation on the hot path).
//!
//! | scheduler | table | a new flow's server |
//! | --- | --- | --- |
//! | `rr`, `wrr` | [`wrr`] cycle | entry `cursor % len` (per-worker cursor) |
//! | `fo` | the one highest-weight server | that server |
//! | `sh`, `dh` | weighted [`wrr`] cycle used as buckets | bucket of the source / destination address hash |
//! | `mh` | [`maglev`] lookup table (65 537 slots) | slot of the source address hash |
//! | `conhash` | [`conhash`] ring of virtual nodes | first point after the source address hash |
//! | `lc`, `wlc` | the weights | the least loaded server, from live counts ([`least`]) |
//!
//! The engine asks the table which hash it needs ([`SchedTable::flow_hash`],
//! `0` for cursor schedulers) and passes it with its cursor to
//! [`SchedTable::pick`]. A weight of 0 is quiescent for every scheduler: the
//! server keeps its connections but is never picked for a new one. Hashed
//! lookups map a 32-bit hash onto a table with a multiply-shift, no division.

mod conhash;
pub(crate) mod hash;
pub mod least;
mod maglev;
mod wrr;

use std::net::{Ipv4Addr, SocketAddr};

use crate::command::Scheduler;

pub use conhash::{MAX_POINTS as CONHASH_MAX_POINTS, REPLICAS as CONHASH_REPLICAS};
pub use hash::addr_hash;
pub use maglev::TABLE_SIZE as MAGLEV_TABLE_SIZE;

/// Upper bound on a cycle's length; larger weight sets are scaled down
/// proportionally (each server with weight > 0 keeps at least one slot).
pub const MAX_TABLE_LEN: usize = 1 << 16;

/// A real server as a scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedServer {
    /// Stable identity: Maglev permutations and ring points derive from it,
    /// so a server keeps its share of keys across rebuilds.
    pub id: SocketAddr,
    /// 0 = quiescent.
    pub weight: u32,
}

/// What a new flow's hash is computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HashTarget {
    /// No hash: the pick uses the worker's cursor.
    #[default]
    None,
    /// The client's address (`sh`, `mh`, `conhash` with `hash_target sip`).
    SrcAddr,
    /// The destination address (`dh`).
    DstAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    /// Pick `cursor % len`.
    Cycle(Vec<u32>),
    /// Pick the slot of the hash.
    Slots(Vec<u32>),
    /// Pick the ring point after the hash.
    Ring(conhash::Ring),
    /// The servers' weights: the least loaded is picked from live counts
    /// ([`least`]); `weighted`: `wlc`, else `lc`.
    Least { weights: Vec<u32>, weighted: bool },
}

/// A precomputed scheduler table: lookups yield indices into the service's
/// server list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedTable {
    lookup: Lookup,
    target: HashTarget,
}

impl Default for SchedTable {
    fn default() -> Self {
        SchedTable {
            lookup: Lookup::Cycle(Vec::new()),
            target: HashTarget::None,
        }
    }
}

impl SchedTable {
    /// Builds the table for `weights` (index = server index), identifying
    /// server `i` by its index. Fine for `rr`, `wrr`, `fo`, `sh` and `dh`;
    /// `mh` and `conhash` keep keys on their servers across changes only when
    /// identities are stable: use [`SchedTable::build_servers`].
    pub fn build(scheduler: Scheduler, weights: &[u32]) -> SchedTable {
        let servers: Vec<SchedServer> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| SchedServer {
                id: SocketAddr::new(Ipv4Addr::from(i as u32).into(), 0),
                weight,
            })
            .collect();
        SchedTable::build_servers(scheduler, &servers)
    }

    /// Builds the table for `servers` (index = server index). Servers with
    /// weight 0 are quiescent and never picked.
    pub fn build_servers(scheduler: Scheduler, servers: &[SchedServer]) -> SchedTable {
        let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
        let cycle = || wrr::sequence(&wrr::scale(&weights, MAX_TABLE_LEN));
        let (lookup, target) = match scheduler {
            Scheduler::Rr => (
                Lookup::Cycle(
                    (0..weights.len() as u32)
                        .filter(|&i| weights[i as usize] > 0)
                        .collect(),
                ),
                HashTarget::None,
            ),
            Scheduler::Wrr => (Lookup::Cycle(cycle()), HashTarget::None),
            Scheduler::Fo => (Lookup::Cycle(failover(&weights)), HashTarget::None),
            Scheduler::Sh => (Lookup::Slots(cycle()), HashTarget::SrcAddr),
            Scheduler::Dh => (Lookup::Slots(cycle()), HashTarget::DstAddr),
            Scheduler::Mh => (
                Lookup::Slots(maglev::populate(servers, maglev::TABLE_SIZE)),
                HashTarget::SrcAddr,
            ),
            Scheduler::Conhash => (
                Lookup::Ring(conhash::Ring::build(servers)),
                HashTarget::SrcAddr,
            ),
            Scheduler::Lc | Scheduler::Wlc => (
                Lookup::Least {
                    weighted: scheduler == Scheduler::Wlc,
                    weights,
                },
                HashTarget::None,
            ),
        };
        SchedTable { lookup, target }
    }

    /// What [`SchedTable::pick`] needs hashed for a new flow.
    pub fn hash_target(&self) -> HashTarget {
        self.target
    }

    /// The hash [`SchedTable::pick`] needs for a flow from `src` to `dst`
    /// (0 for cursor schedulers, which ignore it).
    #[inline]
    pub fn flow_hash(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        match self.target {
            HashTarget::None => 0,
            HashTarget::SrcAddr => addr_hash(src),
            HashTarget::DstAddr => addr_hash(dst),
        }
    }

    /// The server for a new flow: cursor schedulers use pick number
    /// `cursor`, hashing schedulers the flow's `hash` (see
    /// [`SchedTable::flow_hash`]). `None` when no server is available.
    #[inline]
    pub fn pick(&self, cursor: u64, hash: u32) -> Option<u32> {
        match &self.lookup {
            Lookup::Cycle(seq) => {
                let n = seq.len() as u64;
                // Cursors kept below the length ([`SchedTable::advance`])
                // need no division (tens of cycles per new connection).
                let i = if cursor < n {
                    cursor
                } else if cursor < 2 * n {
                    cursor - n
                } else {
                    cursor.checked_rem(n)?
                };
                seq.get(i as usize).copied()
            }
            Lookup::Slots(slots) => slots.get(hash::reduce(hash, slots.len())).copied(),
            Lookup::Ring(ring) => ring.pick(hash),
            // Needs the live counts: see [`SchedTable::least`].
            Lookup::Least { .. } => None,
        }
    }

    /// For `lc` / `wlc`: the servers' weights and whether they weigh the
    /// counts ([`least::pick`] picks); `None` for table schedulers.
    pub fn least(&self) -> Option<(&[u32], bool)> {
        match &self.lookup {
            Lookup::Least { weights, weighted } => Some((weights, *weighted)),
            _ => None,
        }
    }

    /// The cursor after pick number `cursor`: `cursor + 1`, wrapped to
    /// the cycle's length (the same next pick, without [`SchedTable::pick`]
    /// dividing by the length). Cursors are per table: a new table starts
    /// its cursors afresh.
    #[inline]
    pub fn advance(&self, cursor: u64) -> u64 {
        let next = cursor.wrapping_add(1);
        match &self.lookup {
            Lookup::Cycle(seq) if next >= seq.len() as u64 => 0,
            _ => next,
        }
    }

    /// Whether [`SchedTable::pick`] walks a cycle with the cursor (rr, wrr,
    /// fo) rather than hashing.
    pub fn is_cycle(&self) -> bool {
        matches!(self.lookup, Lookup::Cycle(_))
    }

    /// Entries in the table (cycle length, slots or ring points).
    pub fn len(&self) -> usize {
        match &self.lookup {
            Lookup::Cycle(v) | Lookup::Slots(v) => v.len(),
            Lookup::Ring(r) => r.len(),
            Lookup::Least { weights, .. } => weights.iter().filter(|&&w| w > 0).count(),
        }
    }

    /// No server can be picked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// IPVS's `fo`: the server with the highest weight (the first of equals).
fn failover(weights: &[u32]) -> Vec<u32> {
    let mut best: Option<(u32, u32)> = None;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0 && best.is_none_or(|(_, bw)| w > bw) {
            best = Some((i as u32, w));
        }
    }
    best.map(|(i, _)| i).into_iter().collect()
}

#[cfg(test)]
mod tests;
