//! The vlan wire view on arbitrary bytes (`views::vlan`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    views::vlan(data);
});
