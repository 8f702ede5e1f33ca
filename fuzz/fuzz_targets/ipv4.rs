//! The ipv4 wire view on arbitrary bytes (`views::ipv4`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = views::ipv4(data);
});
