//! The udp wire view on arbitrary bytes (`views::udp_alone`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    views::udp_alone(data);
});
