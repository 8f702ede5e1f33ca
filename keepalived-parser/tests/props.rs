//! Property: arbitrary config-like text never panics and every diagnostic is located.

use keepalived_parser::{load_str, LoadOptions};
use proptest::prelude::*;
use std::path::Path;

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("\"".to_string()),
        Just("#".to_string()),
        Just("\\".to_string()),
        Just("$X=".to_string()),
        Just("$X".to_string()),
        Just("${X}".to_string()),
        Just("@main ".to_string()),
        Just("~SEQ(i,3) ".to_string()),
        Just("virtual_server 10.0.0.1 80".to_string()),
        Just("real_server 10.0.1.1 80".to_string()),
        Just("TCP_CHECK".to_string()),
        Just("weight".to_string()),
        Just("global_defs".to_string()),
        Just("vrrp_instance".to_string()),
        Just("local_address_group g".to_string()),
        Just("bogus".to_string()),
        "[a-z0-9.]{1,8}",
    ]
}

proptest! {
    #[test]
    fn never_panics_and_diagnostics_are_located(parts in prop::collection::vec(piece(), 0..60)) {
        let text: String = parts.concat();
        let l = load_str(&text, Path::new("p.conf"), &LoadOptions { config_id: Some("main".into()) });
        for d in &l.diagnostics {
            prop_assert!(d.location.line >= 1, "{}", d);
            prop_assert!(d.location.col >= 1, "{}", d);
        }
        prop_assert_eq!(l.is_runnable(), l.diagnostics.iter().all(|d| d.severity < keepalived_parser::Severity::Error));
    }
}
