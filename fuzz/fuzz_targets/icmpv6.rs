//! The icmpv6 wire view on arbitrary bytes (`views::icmpv6_alone`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    views::icmpv6_alone(data);
});
