//! The tcp wire view on arbitrary bytes (`views::tcp_alone`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    views::tcp_alone(data);
});
