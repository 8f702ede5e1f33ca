use std::net::{Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

const ALL: [Scheduler; 7] = [
    Scheduler::Rr,
    Scheduler::Wrr,
    Scheduler::Mh,
    Scheduler::Sh,
    Scheduler::Dh,
    Scheduler::Conhash,
    Scheduler::Fo,
];

/// Flow hashes of `n` consecutive client addresses, as the engine makes them.
fn client_hashes(n: u32) -> impl Iterator<Item = u32> {
    (0..n).map(|i| addr_hash(Ipv4Addr::from(0x0a00_0000 + i)))
}

fn servers(weights: &[u32]) -> Vec<SchedServer> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| SchedServer {
            id: SocketAddr::new(Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8).into(), 8080),
            weight,
        })
        .collect()
}

/// How often each server is picked over one cursor cycle.
fn cycle_counts(t: &SchedTable, n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for k in 0..t.len() as u64 {
        c[t.pick(k, 0).expect("non-empty") as usize] += 1;
    }
    c
}

/// Each server's share of `keys` client hashes.
fn key_shares(t: &SchedTable, n: usize, keys: u32) -> Vec<f64> {
    let mut c = vec![0u32; n];
    for h in client_hashes(keys) {
        c[t.pick(0, h).expect("non-empty") as usize] += 1;
    }
    c.iter().map(|&x| f64::from(x) / f64::from(keys)).collect()
}

fn weight_shares(weights: &[u32]) -> Vec<f64> {
    let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    weights.iter().map(|&w| f64::from(w) / sum).collect()
}

fn owners(t: &SchedTable, s: &[SchedServer], keys: u32) -> Vec<SocketAddr> {
    client_hashes(keys)
        .map(|h| s[t.pick(0, h).expect("non-empty") as usize].id)
        .collect()
}

#[test]
fn rr_skips_quiescent_servers() {
    let t = SchedTable::build(Scheduler::Rr, &[1, 0, 5]);
    let picks: Vec<u32> = (0..4).filter_map(|k| t.pick(k, 0)).collect();
    assert_eq!(picks, vec![0, 2, 0, 2]);
}

#[test]
fn wrr_matches_ipvs_interleaving() {
    // IPVS wrr with weights 4,3,2: a a b a b c a b c
    let t = SchedTable::build(Scheduler::Wrr, &[4, 3, 2]);
    let picks: Vec<u32> = (0..9).filter_map(|k| t.pick(k, 0)).collect();
    assert_eq!(picks, vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
}

#[test]
fn wrr_proportional_and_gcd_reduced() {
    let t = SchedTable::build(Scheduler::Wrr, &[200, 100, 0]);
    assert_eq!(t.len(), 3);
    assert_eq!(cycle_counts(&t, 3), vec![2, 1, 0]);
}

#[test]
fn empty_when_all_quiescent() {
    for s in ALL {
        assert!(SchedTable::build(s, &[0, 0]).pick(7, 7).is_none(), "{s:?}");
        assert!(SchedTable::build(s, &[]).pick(0, 0).is_none(), "{s:?}");
        assert!(SchedTable::build(s, &[0, 0]).is_empty(), "{s:?}");
    }
}

#[test]
fn huge_weights_are_bounded_and_keep_every_server() {
    let t = SchedTable::build(Scheduler::Wrr, &[u32::MAX, 1, 65_537]);
    assert!(t.len() <= MAX_TABLE_LEN);
    assert!(cycle_counts(&t, 3).iter().all(|&c| c >= 1));
    let ring = SchedTable::build(Scheduler::Conhash, &[u32::MAX, 1, 65_537]);
    assert!(ring.len() <= CONHASH_MAX_POINTS + 3);
}

#[test]
fn failover_picks_the_highest_weight_first_of_equals() {
    let t = SchedTable::build(Scheduler::Fo, &[3, 9, 0, 9, 1]);
    assert!((0..10).all(|k| t.pick(k, k as u32) == Some(1)));
    let t = SchedTable::build(Scheduler::Fo, &[0, 0, 2]);
    assert_eq!(t.pick(0, 0), Some(2));
}

#[test]
fn hash_targets_follow_the_scheduler() {
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 99, 0, 100));
    for (s, target, hash) in [
        (Scheduler::Rr, HashTarget::None, 0),
        (Scheduler::Wrr, HashTarget::None, 0),
        (Scheduler::Fo, HashTarget::None, 0),
        (Scheduler::Sh, HashTarget::SrcAddr, addr_hash(src)),
        (Scheduler::Mh, HashTarget::SrcAddr, addr_hash(src)),
        (Scheduler::Conhash, HashTarget::SrcAddr, addr_hash(src)),
        (Scheduler::Dh, HashTarget::DstAddr, addr_hash(dst)),
        (Scheduler::Lc, HashTarget::None, 0),
        (Scheduler::Wlc, HashTarget::None, 0),
    ] {
        let t = SchedTable::build(s, &[1, 2]);
        assert_eq!(
            (t.hash_target(), t.flow_hash(src, dst)),
            (target, hash),
            "{s:?}"
        );
    }
}

#[test]
fn hashing_schedulers_ignore_the_cursor() {
    for s in [
        Scheduler::Sh,
        Scheduler::Dh,
        Scheduler::Mh,
        Scheduler::Conhash,
    ] {
        let t = SchedTable::build(s, &[1, 2, 3, 4]);
        for h in client_hashes(100) {
            let first = t.pick(0, h);
            assert!(first.is_some());
            assert!((1..5).all(|c| t.pick(c, h) == first), "{s:?}");
        }
    }
}

#[test]
fn maglev_table_is_full_and_prime_sized() {
    let t = SchedTable::build_servers(Scheduler::Mh, &servers(&[1, 1, 1]));
    assert_eq!(t.len(), MAGLEV_TABLE_SIZE);
    let Lookup::Slots(slots) = &t.lookup else {
        panic!("maglev uses slots")
    };
    assert!(slots.iter().all(|&s| s < 3));
}

#[test]
fn maglev_and_ring_ignore_insertion_order() {
    let s = servers(&[3, 1, 4, 1, 5]);
    let mut rev = s.clone();
    rev.reverse();
    for sched in [Scheduler::Mh, Scheduler::Conhash] {
        let a = owners(&SchedTable::build_servers(sched, &s), &s, 5000);
        let b = owners(&SchedTable::build_servers(sched, &rev), &rev, 5000);
        assert_eq!(a, b, "{sched:?}");
    }
}

fn weights_strategy() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..=100, 1..=16).prop_filter("at least one server has a weight", |w| {
        w.iter().any(|&x| x > 0)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn quiescent_servers_are_never_picked(weights in weights_strategy()) {
        let s = servers(&weights);
        for sched in ALL {
            let t = SchedTable::build_servers(sched, &s);
            for (k, h) in client_hashes(2000).enumerate() {
                let i = t.pick(k as u64, h).expect("a server has a weight");
                prop_assert!(weights[i as usize] > 0, "{:?} picked quiescent {}", sched, i);
            }
        }
    }

    #[test]
    fn cycle_and_bucket_tables_match_weights_exactly(weights in weights_strategy()) {
        // gcd-reduced weights sum to at most 1600 < MAX_TABLE_LEN: no scaling.
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        for sched in [Scheduler::Wrr, Scheduler::Sh, Scheduler::Dh] {
            let t = SchedTable::build(sched, &weights);
            let (Lookup::Cycle(seq) | Lookup::Slots(seq)) = &t.lookup else {
                panic!("wrr/sh/dh use a cycle")
            };
            let mut counts = vec![0u64; weights.len()];
            seq.iter().for_each(|&i| counts[i as usize] += 1);
            for (c, &w) in counts.iter().zip(&weights) {
                prop_assert_eq!(c * sum, u64::from(w) * seq.len() as u64);
            }
        }
    }

    #[test]
    fn hashed_key_shares_follow_weights(weights in weights_strategy()) {
        // 50k client addresses: sampling error ≈ 0.2 % (σ); the tolerance
        // adds each scheduler's own table granularity.
        let want = weight_shares(&weights);
        let s = servers(&weights);
        for (sched, tol) in [
            (Scheduler::Sh, 0.01),
            (Scheduler::Mh, 0.02),
            // ≥ 160 points per unit of weight: relative spread ≈ 8 %.
            (Scheduler::Conhash, 0.06),
        ] {
            let t = SchedTable::build_servers(sched, &s);
            let got = key_shares(&t, weights.len(), 50_000);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!((g - w).abs() <= tol,
                    "{:?} server {} share {:.4} want {:.4}", sched, i, g, w);
            }
        }
    }

    #[test]
    fn maglev_slot_shares_follow_weights(weights in weights_strategy()) {
        let t = SchedTable::build(Scheduler::Mh, &weights);
        let Lookup::Slots(slots) = &t.lookup else { panic!("maglev uses slots") };
        let mut counts = vec![0u32; weights.len()];
        slots.iter().for_each(|&i| counts[i as usize] += 1);
        for (c, w) in counts.iter().zip(weight_shares(&weights)) {
            let share = f64::from(*c) / slots.len() as f64;
            // Only the last round of turns is partial: ≤ 1024 slots of 65537.
            prop_assert!((share - w).abs() <= 0.016, "share {:.4} want {:.4}", share, w);
        }
    }

    #[test]
    fn maglev_removal_remaps_about_one_nth(n in 3usize..=40, gone in 0usize..40) {
        let gone = gone % n;
        let all = servers(&vec![1; n]);
        let mut rest = all.clone();
        let removed = rest.remove(gone).id;
        let keys = 40_000;
        let before = owners(&SchedTable::build_servers(Scheduler::Mh, &all), &all, keys);
        let after = owners(&SchedTable::build_servers(Scheduler::Mh, &rest), &rest, keys);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let own = before.iter().filter(|&&b| b == removed).count();
        // Every key of the removed server moves; of the others only a few
        // (the paper measures a few % of the table for small N).
        prop_assert!(moved >= own);
        let extra = (moved - own) as f64 / f64::from(keys);
        let frac = moved as f64 / f64::from(keys);
        prop_assert!(extra <= 0.05, "n={} extra {:.4}", n, extra);
        prop_assert!(frac <= 1.0 / n as f64 + 0.06, "n={} moved {:.4}", n, frac);
        // Adding it back, at the end of the list, restores every key.
        let mut back = rest.clone();
        back.push(all[gone]);
        let again = owners(&SchedTable::build_servers(Scheduler::Mh, &back), &back, keys);
        prop_assert_eq!(again, before);
    }

    #[test]
    fn conhash_removal_moves_only_the_removed_servers_keys(
        weights in weights_strategy(), gone in 0usize..16,
    ) {
        let gone = gone % weights.len();
        let all = servers(&weights);
        let mut rest = all.clone();
        let removed = rest.remove(gone).id;
        if rest.iter().all(|s| s.weight == 0) {
            return Ok(());
        }
        let before = owners(&SchedTable::build_servers(Scheduler::Conhash, &all), &all, 20_000);
        let after = owners(&SchedTable::build_servers(Scheduler::Conhash, &rest), &rest, 20_000);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(b == a || *b == removed);
        }
    }
}

/// Servers 10.0.0.1.. with `conns` connections each, spread over two
/// workers (the sum is what counts).
fn loaded(conns: &[u64]) -> Vec<crate::engine::ServerSnap> {
    conns
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let stats = crate::stats::Traffic::new(2);
            stats.count_active(0, (n / 2) as i64);
            stats.count_active(1, (n - n / 2) as i64);
            crate::engine::ServerSnap {
                addr: Ipv4Addr::new(10, 0, 0, i as u8 + 1),
                port: 80,
                stats: std::sync::Arc::new(stats),
            }
        })
        .collect()
}

#[test]
fn lc_picks_the_fewest_connections_and_wlc_the_fewest_per_weight() {
    use crate::stats::Drop;
    let pick = |s, weights: &[u32], conns: &[u64]| {
        let t = SchedTable::build(s, weights);
        let (w, weighted) = t.least().expect("a least-connection table");
        assert_eq!(t.pick(0, 0), None, "needs live counts");
        least::pick(w, weighted, &loaded(conns), None)
    };
    assert_eq!(pick(Scheduler::Lc, &[1, 1, 1], &[5, 2, 7]), Ok(1));
    assert_eq!(
        pick(Scheduler::Lc, &[1, 1, 1], &[2, 2, 7]),
        Ok(0),
        "first of equals"
    );
    // lc ignores weights (but for 0, quiescent).
    assert_eq!(pick(Scheduler::Lc, &[1, 9, 1], &[5, 6, 7]), Ok(0));
    assert_eq!(pick(Scheduler::Lc, &[0, 1, 1], &[0, 6, 7]), Ok(1));
    // wlc: 6/3 = 2 per weight beats 5/1.
    assert_eq!(pick(Scheduler::Wlc, &[1, 3, 1], &[5, 6, 7]), Ok(1));
    assert_eq!(pick(Scheduler::Wlc, &[1, 3, 1], &[1, 6, 7]), Ok(0));
    assert_eq!(
        pick(Scheduler::Wlc, &[0, 0], &[0, 0]),
        Err(Drop::NoRealServer)
    );
    // Overloaded servers are skipped; all of them: refused.
    let t = SchedTable::build(Scheduler::Wlc, &[1, 1]);
    let (w, weighted) = t.least().expect("table");
    let limit = || {
        Some(std::sync::Arc::new(
            crate::threshold::Threshold::new(crate::command::Thresholds { upper: 4, lower: 0 })
                .expect("limit"),
        ))
    };
    let limits = [limit(), None];
    assert_eq!(
        least::pick(w, weighted, &loaded(&[1, 9]), Some(&limits)),
        Ok(0)
    );
    assert_eq!(
        least::pick(w, weighted, &loaded(&[4, 9]), Some(&limits)),
        Ok(1)
    );
    let both = [limit(), limit()];
    assert_eq!(
        least::pick(w, weighted, &loaded(&[4, 9]), Some(&both)),
        Err(Drop::ServerOverloaded)
    );
}

#[test]
fn advanced_cursors_pick_what_counting_cursors_pick() {
    // The engine keeps cursors wrapped (`advance`); the picks must be those
    // of a plain counter, over several cycles, for every cycle scheduler.
    for (s, w) in [
        (Scheduler::Rr, vec![1, 1, 1, 1, 1]),
        (Scheduler::Wrr, vec![3, 1, 0, 2]),
        (Scheduler::Fo, vec![1, 5, 2]),
    ] {
        let t = SchedTable::build(s, &w);
        let mut cursor = 0u64;
        for k in 0..5 * t.len() as u64 + 3 {
            assert_eq!(t.pick(cursor, 0), t.pick(k, 0), "{s:?} pick {k}");
            assert!(
                cursor < t.len() as u64,
                "{s:?}: cursor {cursor} not wrapped"
            );
            cursor = t.advance(cursor);
        }
        // Far-out and just-past-the-end cursors still pick by remainder.
        let n = t.len() as u64;
        for c in [n, n + 1, 2 * n + 1, u64::MAX] {
            assert_eq!(t.pick(c, 0), t.pick(c % n, 0), "{s:?} cursor {c}");
        }
    }
    let empty = SchedTable::build(Scheduler::Rr, &[0, 0]);
    assert_eq!(empty.pick(7, 0), None);
    assert_eq!(empty.advance(0), 0);
}
