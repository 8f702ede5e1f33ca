//! Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016, §3.4).
//!
//! Every server has a permutation of the table's slots derived from two
//! hashes of its identity (`offset = h1 % M`, `skip = h2 % (M - 1) + 1`,
//! slot `j` = `(offset + j * skip) % M`; `M` prime so every permutation
//! visits every slot). Servers take turns claiming their next free slot
//! until the table is full; a server of weight `w` takes `w` slots per turn
//! (weights reduced by their gcd and bounded, see [`TURN_BUDGET`]).
//!
//! Invariants:
//! * the table depends on the *set* of (identity, weight) pairs only, not on
//!   the order servers were added: turns go in identity order;
//! * removing one of `N` equal servers remaps its own ≈1/N of the slots plus
//!   a small fraction of the others (the paper's "minimal disruption");
//!   adding it back restores the previous table exactly.

use super::hash::id_hash;
use super::wrr::scale;
use super::SchedServer;

/// Default table size: a prime, as the paper requires, ≫ the server count.
pub const TABLE_SIZE: usize = 65_537;

/// Upper bound on the slots all servers claim in one round of turns. Small
/// against the table so the last, partial round cannot skew the shares by
/// more than `TURN_BUDGET / TABLE_SIZE` (1.6 %).
const TURN_BUDGET: usize = 1024;

const FREE: u32 = u32::MAX;

struct Perm {
    server: u32,
    turns: u64,
    pos: usize,
    skip: usize,
}

/// Fills a table of `size` slots (a prime) with server indices. Empty when
/// no server has a weight.
pub(super) fn populate(servers: &[SchedServer], size: usize) -> Vec<u32> {
    let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
    let turns = scale(&weights, TURN_BUDGET);
    let mut order: Vec<usize> = (0..servers.len()).filter(|&i| turns[i] > 0).collect();
    if order.is_empty() || size < 2 {
        return Vec::new();
    }
    order.sort_by_key(|&i| servers[i].id);
    let mut perms: Vec<Perm> = order
        .into_iter()
        .map(|i| Perm {
            server: i as u32,
            turns: turns[i],
            pos: (id_hash(&servers[i].id, 0) % size as u64) as usize,
            skip: (id_hash(&servers[i].id, 1) % (size as u64 - 1)) as usize + 1,
        })
        .collect();
    let mut table = vec![FREE; size];
    let mut filled = 0;
    loop {
        for p in &mut perms {
            for _ in 0..p.turns {
                // The permutation visits every slot, so a free one is found.
                while table[p.pos] != FREE {
                    p.pos = advance(p.pos, p.skip, size);
                }
                table[p.pos] = p.server;
                p.pos = advance(p.pos, p.skip, size);
                filled += 1;
                if filled == size {
                    return table;
                }
            }
        }
    }
}

#[inline]
fn advance(pos: usize, skip: usize, size: usize) -> usize {
    let next = pos + skip;
    if next >= size {
        next - size
    } else {
        next
    }
}
