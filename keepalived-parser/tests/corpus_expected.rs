//! `keepalived -t` agreement on the conformance corpus: for every row of
//! `shared/corpus/EXPECTED.tsv`, clean (exit 0) versus not clean, as
//! recorded by keepalived 2.2.7 with the interfaces present
//! (`exit_with_ifaces`), against [`config_test_exit_code`].

use keepalived_parser::{config_test_exit_code, load_file, LoadOptions};
use std::path::Path;

/// Files where dpvsd deliberately (or, for now, knowingly) differs from
/// stock keepalived 2.2.7, and why.
const ALLOWED_DIFFERENCES: &[(&str, &str)] = &[
    // DPVS dialect: stock keepalived rejects local_address_group,
    // laddr_group_name, FNAT, conhash, `virtual_server match`, tunnel_group...;
    // dpvsd accepts them on purpose (KEEPALIVED.md §10, §13 item 3).
    ("dpvs/keepalived.conf", DPVS),
    (
        "dpvs/tutorial__SNAT-Mode-two-arm__match-alpha-omega.conf",
        DPVS,
    ),
    ("dpvs/tutorial__SNAT-Mode-two-arm__match.conf", DPVS),
    ("dpvs/tutorial__Tunnel-Device.conf", DPVS),
];

const DPVS: &str = "DPVS keywords are accepted deliberately; stock keepalived calls them unknown";

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
        let allowed = ALLOWED_DIFFERENCES.iter().any(|(f, _)| f == file);
        let verdict = match (same, allowed) {
            (true, false) => "agree",
            (true, true) => "agree (allow-listed: remove from the list)",
            (false, true) => "differs (allow-listed)",
            (false, false) => "DIFFERS",
        };
        if same {
            agree += 1;
        }
        if same == allowed {
            unexpected.push(format!(
                "{file}: keepalived {expected}, ours {ours}: {verdict}"
            ));
        }
        println!("{file:<80} {expected:>5} {ours:>5}  {verdict}");
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
