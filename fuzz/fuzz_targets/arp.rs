//! The arp wire view on arbitrary bytes (`views::arp`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    views::arp(data);
});
