//! Software prefetch, the one hint the burst pipeline needs: start loading a
//! cache line that a later stage will read, so the misses of a whole burst
//! overlap instead of being taken one after another.
#![allow(unsafe_code)]

/// Hints the CPU to load the cache line holding `*p` into all cache levels.
/// A no-op on targets without a prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 (SSE, part of the x86_64 baseline) is a hint: it
    // never faults, whatever the address, and has no architectural effect.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
