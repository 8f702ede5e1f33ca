//! The icmpv4 wire view on arbitrary bytes (`views::icmpv4`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    views::icmpv4(data);
});
