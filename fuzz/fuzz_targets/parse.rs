//! Any input (bytes, lossily decoded as keepalived reads them) loads without
//! panicking, with every diagnostic located, and its model dumps.
#![no_main]

use keepalived_parser::{dump, load_str, LoadOptions};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A directory that does not exist: relative includes find nothing.
    let name = Path::new("/nonexistent-fuzz-dir/keepalived.conf");
    let opts = LoadOptions {
        config_id: Some("fuzz".into()),
    };
    let loaded = load_str(&text, name, &opts);
    for d in &loaded.diagnostics {
        assert!(
            d.location.line >= 1 && d.location.col >= 1,
            "unlocated diagnostic: {d}"
        );
    }
    let _ = dump(&loaded.model);
});
