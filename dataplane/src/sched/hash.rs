//! Hash functions of the schedulers. They are fixed (no random seed, no
//! dependence on the Rust release) so that every worker, every restart and
//! every load balancer of a cluster builds the same tables from the same
//! servers and maps the same flow to the same server.

use std::net::{Ipv4Addr, SocketAddr};

/// MurmurHash3's 64-bit finaliser: a bijection with full avalanche.
#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// The 32-bit flow hash of an address, as the engine computes it per new
/// flow (MurmurHash3's 32-bit finaliser: cheap, no table, well mixed).
#[inline]
pub fn addr_hash(ip: Ipv4Addr) -> u32 {
    let mut h = u32::from(ip);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// A 64-bit hash of a server's identity (address and port), one independent
/// function per `seed` (FNV-1a over the bytes, then [`fmix64`]).
pub(super) fn id_hash(id: &SocketAddr, seed: u64) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325 ^ fmix64(seed.wrapping_add(1));
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    };
    match id {
        SocketAddr::V4(a) => a.ip().octets().into_iter().for_each(&mut eat),
        SocketAddr::V6(a) => a.ip().octets().into_iter().for_each(&mut eat),
    }
    id.port().to_be_bytes().into_iter().for_each(&mut eat);
    fmix64(h)
}

/// Maps a 32-bit hash uniformly onto `0..n` without a division (Lemire's
/// multiply-shift; uses the hash's high bits).
#[inline]
pub(super) fn reduce(hash: u32, n: usize) -> usize {
    ((u64::from(hash) * n as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hashes_are_stable_and_seed_dependent() {
        let a: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let b: SocketAddr = "10.0.0.1:81".parse().expect("addr");
        assert_eq!(id_hash(&a, 0), id_hash(&a, 0));
        assert_ne!(id_hash(&a, 0), id_hash(&a, 1));
        assert_ne!(id_hash(&a, 0), id_hash(&b, 0));
        // Pinned: tables must not change between releases.
        assert_eq!(
            addr_hash(Ipv4Addr::new(10, 0, 0, 1)),
            addr_hash(0x0a00_0001.into())
        );
        assert_eq!(addr_hash(Ipv4Addr::UNSPECIFIED), 0);
    }

    #[test]
    fn reduce_stays_in_range_and_covers_it() {
        for n in [1usize, 3, 7, 65_537] {
            assert_eq!(reduce(0, n), 0);
            assert_eq!(reduce(u32::MAX, n), n - 1);
        }
    }
}
