//! Helpers shared by the integration tests.
// Each test crate uses a subset of these helpers.
#![allow(dead_code)]

use keepalived_parser::{load_str, Diagnostic, LoadOptions, Loaded, Severity};
use std::path::Path;

pub fn load(text: &str) -> Loaded {
    load_str(
        text,
        Path::new("/etc/keepalived/keepalived.conf"),
        &LoadOptions {
            config_id: Some("main".into()),
        },
    )
}

/// `line:col severity message` for every diagnostic.
pub fn diags(l: &Loaded) -> Vec<String> {
    l.diagnostics.iter().map(short).collect()
}

pub fn short(d: &Diagnostic) -> String {
    format!(
        "{}:{} {} {}",
        d.location.line, d.location.col, d.severity, d.message
    )
}

pub fn find<'a>(l: &'a Loaded, needle: &str) -> &'a Diagnostic {
    l.diagnostics
        .iter()
        .find(|d| d.message.contains(needle))
        .unwrap_or_else(|| panic!("no diagnostic containing {needle:?} in {:#?}", diags(l)))
}

pub fn count(l: &Loaded, sev: Severity) -> usize {
    l.diagnostics.iter().filter(|d| d.severity == sev).count()
}
