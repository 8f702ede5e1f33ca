//! The ethernet wire view on arbitrary bytes (`views::ethernet`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = views::ethernet(data);
});
