//! The ipv6 wire view on arbitrary bytes (`views::ipv6`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = views::ipv6(data);
});
