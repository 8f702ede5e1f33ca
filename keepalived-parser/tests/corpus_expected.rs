//! `keepalived -t` agreement on the conformance corpus: for every row of
//! `shared/corpus/EXPECTED.tsv`, clean (exit 0) versus not clean, as
//! recorded by keepalived 2.2.7 with the interfaces present
//! (`exit_with_ifaces`), against [`config_test_exit_code`].

use keepalived_parser::{config_test_exit_code, load_file, LoadOptions};
use std::path::Path;

/// Files where dpvsd deliberately differs from stock keepalived 2.2.7, and
/// why. All are DPVS files that stock keepalived rejects only because it
/// does not know DPVS's keywords, and that DPVS's fork (keepalived 2.0.19
/// plus the §10 additions) accepts; dpvsd must load them clean, which the
/// test checks (exit code 0, not merely "differs").
const ALLOWED_DIFFERENCES: &[(&str, &str)] = &[
    (
        "dpvs/keepalived.conf",
        "keepalived: \"Unknown keyword 'local_address_group'\" (also laddr_group_name, \
         deny_address_group, daddr_group_name, lb_kind FNAT, syn_proxy ...): all DPVS keywords",
    ),
    (
        "dpvs/tutorial__SNAT-Mode-two-arm__match-alpha-omega.conf",
        "keepalived: \"invalid number 'SNAT'\": stock keepalived has no `virtual_server match \
         NAME` header (nor src-range/oif, lb_kind SNAT); DPVS's SNAT match service",
    ),
    (
        "dpvs/tutorial__SNAT-Mode-two-arm__match.conf",
        "keepalived: \"invalid number 'SNAT1'\": the same `virtual_server match` header",
    ),
    (
        "dpvs/tutorial__Tunnel-Device.conf",
        "keepalived: \"Unknown keyword 'tunnel_group'\": DPVS's tunnel devices",
    ),
];

#[test]
fn clean_versus_not_clean_matches_keepalived() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    let Ok(tsv) = std::fs::read_to_string(root.join("EXPECTED.tsv")) else {
        println!("SKIP: ../shared/corpus/EXPECTED.tsv not found");
        return;
    };
    let mut rows = 0;
    let mut agree = 0;
    let mut unexpected = Vec::new();
    println!("{:<80} {:>5} {:>5}  verdict", "file", "kad", "ours");
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(file), Some(expected)) = (cols.first(), cols.get(5)) else {
            continue;
        };
        let expected: u8 = expected
            .parse()
            .unwrap_or_else(|_| panic!("bad exit_with_ifaces in {line:?}"));
        let loaded = load_file(
            &root.join(file),
            &LoadOptions {
                config_id: Some("corpus".into()),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ours = config_test_exit_code(&loaded);
        rows += 1;
        let same = (expected == 0) == (ours == 0);
        let reason = ALLOWED_DIFFERENCES
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, why)| *why);
        let allowed = reason.is_some();
        let verdict = match (same, allowed) {
            (true, false) => "agree",
            (true, true) => "agree (allow-listed: remove from the list)",
            (false, true) => "differs (allow-listed)",
            (false, false) => "DIFFERS",
        };
        if same {
            agree += 1;
        }
        if allowed && ours != 0 {
            unexpected.push(format!(
                "{file}: a DPVS file the DPVS fork accepts must load clean, ours {ours}"
            ));
        }
        if same == allowed {
            unexpected.push(format!(
                "{file}: keepalived {expected}, ours {ours}: {verdict}"
            ));
        }
        println!("{file:<80} {expected:>5} {ours:>5}  {verdict}");
        if let Some(why) = reason {
            println!("      why: {why}");
        }
        if !same {
            for d in loaded.diagnostics.iter().take(3) {
                println!("      {:?} {}", d.class, d);
            }
        }
    }
    println!("agreement: {agree}/{rows}");
    assert!(rows > 0, "EXPECTED.tsv has no rows");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
