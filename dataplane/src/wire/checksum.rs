//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! A *partial sum* is a `u32` holding an unfolded one's-complement sum of 16-bit
//! big-endian words. Partial sums of 16-bit-aligned pieces can be added together
//! (`sum(a) + sum(b)` equals `sum(a ++ b)` after folding when `a` has even length);
//! [`sum`] and [`pseudo_v4`] return values ≤ `0xffff` + a few carries, so tens of
//! thousands of them can be added without overflow. [`fold`] folds the carries back,
//! [`finish`] also complements, giving the value to store in a header.
//!
//! None of these functions panics or allocates.

use super::IpProtocol;
use core::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement partial sum of `data` as 16-bit big-endian words; an odd trailing
/// byte is padded with a zero byte. The result is folded to at most `0xffff`, so callers
/// may add many partial sums without overflow.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // Sum 32-bit words into a u64: the one's-complement sum of 32-bit words folds to the
    // same 16-bit value as the sum of 16-bit words, and this halves the loop count.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Fold 64 → 16 bits. Two rounds of each width always suffice.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    let mut s = (acc & 0xffff) + (acc >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    // `s` ≤ 0xffff here; the cast is lossless.
    s as u32
}

/// Whether an option-less IPv4 header (five 32-bit words) has a correct
/// checksum (its sum folds to 0xffff): no loop and no call, for the
/// per-packet header check. Summed in the machine's byte order, which
/// folds to the byte-swapped sum (RFC 1071 §2(B)); 0xffff either way.
#[inline(always)]
pub fn header20_ok(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    // Five words: at most 5 × (2³² − 1), so two 32-bit folds leave 32 bits.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    fold(acc as u32) == 0xffff
}

/// Folds the carries of a partial sum into 16 bits. Not complemented.
#[inline]
pub fn fold(sum: u32) -> u16 {
    // Two rounds, no loop: the first leaves at most 0xffff + 0xffff, the
    // second at most 0xffff (a carry out of the first is absorbed).
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    // `s` ≤ 0xffff here; the cast is lossless.
    s as u16
}

/// Folds and complements: the value to store in a checksum field.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 / RFC 768):
/// source, destination, zero, protocol, and the transport length `len`.
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(u8::from(proto))
        + u32::from(len)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1) used by TCP, UDP
/// and ICMPv6; `len` is the upper-layer length.
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: IpProtocol, len: u32) -> u32 {
    sum(&src.octets())
        + sum(&dst.octets())
        + (len >> 16)
        + (len & 0xffff)
        + u32::from(u8::from(proto))
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for replacing `old` bytes by `new` bytes
/// (same even length, 16-bit aligned in the covered data).
///
/// `checksum` is the value currently stored in the header (`HC`); the result is the value
/// to store after the rewrite (`HC'`). To account for several rewritten fields, chain
/// calls or pass concatenated pieces; each piece must start at an even offset of the
/// checksummed data (pseudo-header addresses, ports and IPv4 addresses all do).
///
/// An odd-length piece is handled as if zero-padded, which is still exact when it starts
/// at an even offset and `old` and `new` have the same length: the byte after it is
/// common to both and cancels out. Pieces of different lengths are treated as removing
/// `old` and adding `new` to the sum.
///
/// For a header whose full sum is non-zero (every IPv4 and TCP header, because the
/// version / protocol fields are non-zero) the result is bit-identical to recomputing
/// the checksum from scratch; the property tests in `ipv4`, `tcp` and `udp` check this.
/// UDP's "checksum 0 means none" rule is not handled here; see
/// [`udp::adjust_checksum`](super::udp::adjust_checksum).
#[inline]
pub fn adjust(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    adjust_sums(checksum, sum(old), sum(new))
}

/// [`adjust`] on partial sums: `old` is the partial sum of the replaced
/// words, `new` that of their replacements (e.g. [`sum32`] of addresses and
/// ports), so a NAT rewrite adjusts a checksum with a few adds instead of
/// summing byte slices.
#[inline(always)]
pub fn adjust_sums(checksum: u16, old: u32, new: u32) -> u16 {
    adjust_by(checksum, delta(old.into(), new.into()))
}

/// 2⁴⁸ − 1, a multiple of 0xffff (2¹⁶ ≡ 1): `NEG_BASE − x` is `−x` in
/// one's complement arithmetic for any partial sum `x` up to it.
const NEG_BASE: u64 = (1 << 48) - 1;

/// The one's complement difference `new − old` of two partial sums (each
/// below 2⁴⁷; sums of 16- or 32-bit big-endian words alike, as 2¹⁶ ≡ 1),
/// itself a partial sum, never zero: deltas of several fields add up, and
/// one [`adjust_by`] applies them, with no fold in between.
#[inline(always)]
pub fn delta(old: u64, new: u64) -> u64 {
    NEG_BASE - old + new
}

/// RFC 1624 eqn. 3 with the difference precomputed: HC' = ~(~HC + (m' − m))
/// for a [`delta`] (or a sum of at most a few of them). The sum folded is
/// never zero, so the result is never 0xffff: bit-identical to
/// recomputing a checksum whose full sum is non-zero.
#[inline(always)]
pub fn adjust_by(checksum: u16, delta: u64) -> u16 {
    adjust_folded(checksum, u32::from(fold64(delta)))
}

/// [`adjust_by`] for a small difference: a sum of a few [`fold64`]ed
/// deltas and constants (non-zero, below 2³¹), one 32-bit fold.
#[inline(always)]
pub fn adjust_folded(checksum: u16, delta: u32) -> u16 {
    !fold(u32::from(!checksum) + delta)
}

/// Folds a partial sum (e.g. a [`delta`]) into 16 bits, not
/// complemented; a non-zero sum folds to a non-zero value.
#[inline(always)]
pub fn fold64(sum: u64) -> u16 {
    // 64 → 33 → 32 bits, then the 16-bit fold.
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    // `s` < 2³² here; the cast is lossless.
    fold(s as u32)
}

/// Partial sum of a 32-bit big-endian word (an IPv4 address, two ports).
#[inline]
pub fn sum32(v: u32) -> u32 {
    (v >> 16) + (v & 0xffff)
}

#[cfg(test)]
mod test {
    use super::*;

    /// Plain RFC 1071 reference: 16-bit words, one at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for chunk in data.chunks(2) {
            let hi = u64::from(chunk[0]) << 8;
            let lo = chunk.get(1).copied().map_or(0, u64::from);
            acc += hi | lo;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn header20_ok_is_a_full_sum_check() {
        let mut h = [0u8; 20];
        for seed in 0u32..2000 {
            for (i, b) in h.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2_654_435_761) >> (i % 24)) as u8
                    ^ (i as u8).wrapping_mul(37);
            }
            if seed % 3 == 0 {
                h = [0xff; 20];
            }
            assert_eq!(header20_ok(&h), fold(sum(&h)) == 0xffff, "{h:?}");
            // With its checksum set (bytes 10..12), a header checks.
            h[10..12].fill(0);
            let c = finish(sum(&h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            assert!(header20_ok(&h), "{h:?}");
            h[seed as usize % 20] ^= 1 << (seed % 8);
            assert!(!header20_ok(&h), "{h:?}");
        }
    }

    #[test]
    fn fold_carries() {
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0002_0000), 0x0002);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 → m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(adjust(0xdd2f, &[0x55, 0x55], &[0x32, 0x85]), 0x0000);
    }

    #[test]
    fn pseudo_header_matches_byte_sum() {
        let src = Ipv4Addr::new(192, 168, 1, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 255);
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&src.octets());
        bytes[4..8].copy_from_slice(&dst.octets());
        bytes[9] = 6;
        bytes[10..12].copy_from_slice(&1234u16.to_be_bytes());
        assert_eq!(
            fold(pseudo_v4(src, dst, IpProtocol::Tcp, 1234)),
            fold(sum(&bytes))
        );
    }

    mod prop {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn sum_matches_reference(data in vec(any::<u8>(), 0..300)) {
                prop_assert_eq!(finish(sum(&data)), reference(&data));
            }

            #[test]
            fn partial_sums_add(a in vec(any::<u16>(), 0..100), b in vec(any::<u8>(), 0..100)) {
                let a: Vec<u8> = a.iter().flat_map(|w| w.to_be_bytes()).collect();
                let mut ab = a.clone();
                ab.extend_from_slice(&b);
                prop_assert_eq!(fold(sum(&a) + sum(&b)), fold(sum(&ab)));
            }

            /// RFC 1624: rewriting any aligned window and adjusting equals recomputing,
            /// as long as the data's sum is non-zero (guaranteed by a non-zero word).
            #[test]
            fn adjust_equals_recompute(
                mut data in vec(any::<u8>(), 2..200),
                at in any::<usize>(),
                len in 0usize..16,
                repl in vec(any::<u8>(), 16),
            ) {
                data[0] |= 0x40; // non-zero sum, like an IPv4 version nibble
                let start = (at % data.len()) & !1;
                let start = start.max(2);
                let end = (start + len).min(data.len());
                let before = finish(sum(&data));
                let old = data.get(start..end).unwrap_or(&[]).to_vec();
                let new = &repl[..old.len()];
                if let Some(window) = data.get_mut(start..end) {
                    window.copy_from_slice(new);
                }
                prop_assert_eq!(adjust(before, &old, new), finish(sum(&data)));
            }
        }
    }
}
