//! Every corpus file loads without panicking and with located diagnostics;
//! the project's sample loads without errors.

use keepalived_parser::{load_file, LoadOptions, Severity};
use std::path::Path;

#[test]
fn every_corpus_file_loads() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    if !root.is_dir() {
        println!("SKIP: ../shared/corpus not found");
        return;
    }
    let mut files = 0;
    for sub in ["keepalived", "dpvs"] {
        let dir = root.join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !path.is_file() {
                continue;
            }
            let loaded = load_file(
                &path,
                &LoadOptions {
                    config_id: Some("high".into()),
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
            files += 1;
            for d in &loaded.diagnostics {
                assert!(d.location.line >= 1, "{}: {d}", path.display());
                assert!(d.location.col >= 1, "{}: {d}", path.display());
                assert!(d.source_line.is_some(), "{}: {d}", path.display());
            }
        }
    }
    assert!(files > 0, "corpus directory holds no files");
}

#[test]
fn dpvs_fnat_tutorial_lowers_its_local_address_group() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/dpvs/tutorial__Full-NAT-with-Keepalived-one-arm__master.conf"
    ));
    if !path.is_file() {
        println!("SKIP: ../shared/corpus not found");
        return;
    }
    let l = load_file(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let g = &l.model.local_address_groups[0];
    assert_eq!((g.name.as_str(), g.addresses.len()), ("laddr_g1", 2));
    assert_eq!(g.addresses[0].ifname, "dpdk0");
    assert_eq!(l.model.global_defs.router_id.as_deref(), Some("DPVS_DEVEL"));
    // `virtual_server group NAME` names its `virtual_server_group`.
    let vs = &l.model.virtual_servers[0];
    assert_eq!(vs.group.as_deref(), Some("192.168.100.254-80"));
    assert_eq!(vs.laddr_group_name.as_deref(), Some("laddr_g1"));
    assert_eq!(vs.real_servers.len(), 2);
    let g = &l.model.virtual_server_groups[0];
    assert_eq!(g.name, "192.168.100.254-80");
    assert_eq!(g.entries.len(), 1);
}

#[test]
fn project_sample_has_no_errors() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/keepalived.conf"
    ));
    if !path.is_file() {
        println!("SKIP: samples/keepalived.conf not found");
        return;
    }
    let l = load_file(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let bad: Vec<String> = l
        .diagnostics
        .iter()
        .filter(|d| d.severity >= Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(!l.model.virtual_servers.is_empty());
}
