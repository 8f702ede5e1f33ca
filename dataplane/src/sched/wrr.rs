//! Weighted sequences: IPVS's interleaved WRR cycle, and the weight scaling
//! shared by every table builder.

/// Greatest common divisor (`gcd(0, x) == x`).
pub(super) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Reduces weights by their gcd and, if their sum exceeds `limit`, scales
/// them down proportionally. Zero stays zero (quiescent); every non-zero
/// weight keeps at least 1, so the sum may exceed `limit` by at most the
/// number of servers.
pub(super) fn scale(weights: &[u32], limit: usize) -> Vec<u64> {
    let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
    if g == 0 {
        return vec![0; weights.len()];
    }
    let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w) / g).collect();
    let sum: u64 = reduced.iter().sum();
    if sum <= limit as u64 {
        return reduced;
    }
    let budget = limit.saturating_sub(weights.len()).max(1) as u64;
    reduced
        .iter()
        .map(|&w| if w == 0 { 0 } else { (w * budget / sum).max(1) })
        .collect()
}

/// IPVS's interleaved weighted round robin, one full cycle: server `i`
/// appears `weights[i]` times (after gcd reduction), spread over the cycle.
pub(super) fn sequence(weights: &[u64]) -> Vec<u32> {
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
