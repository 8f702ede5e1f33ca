//! FFI to Debian's libdpdk 22.11.
//!
//! Built only with the `dpdk` feature (without it this crate is empty and
//! needs nothing installed). Contents:
//!
//! * bindgen output for EAL, ethdev, mbuf, mempool, vdev and lcore APIs
//!   (allowlisted, generated at build time from the installed headers);
//! * `dpvs_*`: a C shim exporting DPDK's static-inline fast path
//!   (`rte_eth_rx_burst`/`tx_burst`, `rte_pktmbuf_alloc[_bulk]`/`free`,
//!   `mtod`, `data_len`/`pkt_len`, `rte_errno`, `rte_lcore_id`);
//! * [`mbuf_data`], [`mbuf_data_len`], … : the per-packet accessors
//!   re-implemented in Rust (inlined, no call per packet).
//!
//! Missing libdpdk makes the build fail with the apt packages to install:
//! `apt-get install dpdk-dev libdpdk-dev libclang-dev pkg-config`.
#![cfg_attr(
    feature = "dpdk",
    allow(
        unsafe_code,
        non_upper_case_globals,
        non_camel_case_types,
        non_snake_case,
        missing_debug_implementations,
        improper_ctypes,
        clippy::all,
        clippy::pedantic
    )
)]

#[cfg(feature = "dpdk")]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(feature = "dpdk")]
pub use bindings::*;

/// The libdpdk version the bindings were generated from (`pkg-config --modversion`).
#[cfg(feature = "dpdk")]
pub const DPDK_VERSION: &str = env!("DPDK_SYS_DPDK_VERSION");

/// Start of the mbuf's (first segment's) data: `rte_pktmbuf_mtod`.
///
/// # Safety
/// `m` points to a valid, initialised `rte_mbuf`.
#[cfg(feature = "dpdk")]
#[inline(always)]
pub unsafe fn mbuf_data(m: *mut rte_mbuf) -> *mut u8 {
    // SAFETY: the caller guarantees `m` is a valid mbuf; buf_addr + data_off
    // is inside its buffer by DPDK's invariants.
    unsafe { (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)) }
}

/// Bytes of data in the mbuf's first segment: `rte_pktmbuf_data_len`.
///
/// # Safety
/// `m` points to a valid, initialised `rte_mbuf`.
#[cfg(feature = "dpdk")]
#[inline(always)]
pub unsafe fn mbuf_data_len(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is a valid mbuf.
    unsafe { (*m).data_len }
}

/// Total packet length over all segments: `rte_pktmbuf_pkt_len`.
///
/// # Safety
/// `m` points to a valid, initialised `rte_mbuf`.
#[cfg(feature = "dpdk")]
#[inline(always)]
pub unsafe fn mbuf_pkt_len(m: *const rte_mbuf) -> u32 {
    // SAFETY: the caller guarantees `m` is a valid mbuf.
    unsafe { (*m).pkt_len }
}

/// Sets a freshly allocated (reset) single-segment mbuf's length to `len`
/// (what `rte_pktmbuf_append` does on an empty mbuf). Returns the data
/// pointer, or `None` when `len` exceeds the tailroom.
///
/// # Safety
/// `m` points to a valid mbuf straight from `rte_pktmbuf_alloc` (one
/// segment, no data), owned by the caller.
#[cfg(feature = "dpdk")]
#[inline(always)]
pub unsafe fn mbuf_set_len(m: *mut rte_mbuf, len: u16) -> Option<*mut u8> {
    // SAFETY: the caller guarantees `m` is a valid, owned, empty mbuf.
    unsafe {
        let room = (*m).buf_len.checked_sub((*m).data_off)?;
        if len > room {
            return None;
        }
        (*m).data_len = len;
        (*m).pkt_len = u32::from(len);
        Some(mbuf_data(m))
    }
}

/// `rte_errno` of this thread, with DPDK's message for it.
#[cfg(feature = "dpdk")]
pub fn last_error() -> (i32, String) {
    // SAFETY: dpvs_errno reads a thread-local int; rte_strerror returns a
    // pointer to a static or thread-local NUL-terminated string.
    unsafe {
        let e = dpvs_errno();
        let msg = std::ffi::CStr::from_ptr(rte_strerror(e))
            .to_string_lossy()
            .into_owned();
        (e, msg)
    }
}
