//! A fixed, fast hasher for the engine's small maps (services by
//! VIP:port:proto, neighbours by address). Keys are few and come from the
//! configuration, so flooding resistance (SipHash) buys nothing here while
//! costing a noticeable share of a packet's budget.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::sched::hash::fmix64;

/// Folds written integers with a multiply, finishes with MurmurHash3's mixer.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        fmix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u8(b);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn distinct_keys_hash_apart_and_maps_work() {
        let mut m: FastMap<(Ipv4Addr, u16, u8), usize> = FastMap::default();
        for i in 0..1000u16 {
            m.insert(
                (Ipv4Addr::new(10, 0, 0, (i % 7) as u8), i, 6),
                usize::from(i),
            );
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(&(Ipv4Addr::new(10, 0, 0, 3), 500, 6)), Some(&500));
        assert_eq!(m.get(&(Ipv4Addr::new(10, 0, 0, 4), 500, 6)), None);
    }
}
