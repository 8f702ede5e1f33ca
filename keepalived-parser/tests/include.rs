//! `include` with globs, csh braces and paths relative to the including file.

mod common;
use common::diags;
use keepalived_parser::{load_file, LoadError, LoadOptions};
use std::fs;
use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("keepalived-parser-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).expect("create dir");
        }
        fs::write(&p, text).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn opts() -> LoadOptions {
    LoadOptions {
        config_id: Some("main".into()),
    }
}

fn vs(addr: &str) -> String {
    format!("virtual_server {addr} 80 {{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.9.9.9 80 {{\n }}\n}}\n")
}

#[test]
fn globs_braces_and_relative_paths() {
    let t = TempDir::new("glob");
    let main = t.write(
        "etc/keepalived.conf",
        "include conf.d/*.conf\ninclude other/{x,y}.inc\ninclude missing/*.conf\ninclude none.conf\n",
    );
    t.write("etc/conf.d/b.conf", &vs("10.0.0.2"));
    t.write("etc/conf.d/a.conf", &vs("10.0.0.1"));
    t.write("etc/conf.d/ignored.txt", &vs("10.0.0.99"));
    // Relative to the including file: other/x.inc includes ../sub/z.inc
    t.write("etc/other/x.inc", "include ../sub/z.inc\n");
    t.write("etc/sub/z.inc", &vs("10.0.0.3"));
    t.write("etc/other/y.inc", &vs("10.0.0.4"));
    fs::create_dir_all(t.0.join("etc/conf.d/dir.conf")).expect("create dir");
    let l = load_file(&main, &opts()).expect("main file readable");
    assert!(l.diagnostics.is_empty(), "{:#?}", diags(&l));
    let addrs: Vec<String> = l
        .model
        .virtual_servers
        .iter()
        .map(|v| v.addr.to_string())
        .collect();
    assert_eq!(addrs, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    // Locations name the included file.
    let loc = &l.model.virtual_servers[2].location;
    assert!(loc.file.ends_with("sub/z.inc"), "{loc:?}");
    assert_eq!(loc.line, 1);
}

#[test]
fn diagnostics_in_included_files_carry_their_source_line() {
    let t = TempDir::new("diag");
    let main = t.write("k.conf", "include inc.conf\n");
    t.write("inc.conf", "\nglobal_defs {\n  bogus_kw 1\n}\n");
    let l = load_file(&main, &opts()).expect("main file readable");
    let d = &l.diagnostics[0];
    assert!(d.location.file.ends_with("inc.conf"));
    assert_eq!((d.location.line, d.location.col), (3, 3));
    assert_eq!(d.source_line.as_deref(), Some("  bogus_kw 1"));
}

#[test]
fn include_loops_are_reported() {
    let t = TempDir::new("loop");
    let main = t.write("a.conf", "include b.conf\n");
    t.write("b.conf", "include a.conf\n");
    let l = load_file(&main, &opts()).expect("main file readable");
    assert_eq!(l.diagnostics.len(), 1, "{:#?}", diags(&l));
    assert!(l.diagnostics[0].message.contains("includes itself"));
}

#[test]
fn definitions_cross_includes() {
    let t = TempDir::new("defs");
    let main = t.write(
        "m.conf",
        "include d.conf\nglobal_defs {\n router_id $ID\n}\n",
    );
    t.write("d.conf", "$ID=from_include\n");
    let l = load_file(&main, &opts()).expect("main file readable");
    assert_eq!(
        l.model.global_defs.router_id.as_deref(),
        Some("from_include")
    );
}

#[test]
fn unreadable_main_file_is_a_load_error() {
    let err = load_file(Path::new("/nonexistent/keepalived.conf"), &opts())
        .expect_err("missing main file");
    let LoadError::Read { path, .. } = &err;
    assert_eq!(path, Path::new("/nonexistent/keepalived.conf"));
    assert!(err
        .to_string()
        .starts_with("/nonexistent/keepalived.conf: cannot read configuration:"));
}

/// keepalived 2.2.7 lib/parser.c `check_include` / `file_config_error`: the
/// checked include variants fail the load (`-t` exits 6,
/// KEEPALIVED_EXIT_NO_CONFIG) on what they check; plain `include` does not.
#[test]
fn checked_includes_fail_with_exit_6() {
    let t = TempDir::new("checked");
    t.write("conf.d/a.conf", &vs("10.0.0.1"));
    fs::create_dir_all(t.0.join("empty.d")).expect("create dir");
    // (include line, what it finds, fails?)
    let cases = [
        ("include none.conf", None, false),
        ("includer none.conf", None, false),
        (
            "includem none.conf",
            Some("Config files missing 'none.conf'."),
            true,
        ),
        ("includem empty.d/*.conf", None, false),
        (
            "includew empty.d/*.conf",
            Some("No config files matched 'empty.d/*.conf'."),
            true,
        ),
        (
            "includem nodir/*.conf",
            Some("Config files missing 'nodir/*.conf'."),
            true,
        ),
        (
            "includeb conf.d/{a,b}.conf",
            Some("Some config files missing: \"conf.d/{a,b}.conf\"."),
            true,
        ),
        ("includem conf.d/{a,b}.conf", None, false),
        ("includea conf.d/*.conf", None, false),
        ("includer conf.d", Some("is a directory - skipping"), true),
        ("include conf.d", None, false),
    ];
    for (line, message, fails) in cases {
        let main = t.write("k.conf", &format!("{line}\n"));
        let l = load_file(&main, &opts()).expect("main file readable");
        let code = keepalived_parser::config_test_exit_code(&l);
        assert_eq!(code, if fails { 6 } else { 0 }, "{line}: {:#?}", diags(&l));
        if let Some(m) = message {
            let d = l.diagnostics.iter().find(|d| d.message.contains(m));
            let d = d.unwrap_or_else(|| panic!("{line}: no '{m}' in {:#?}", diags(&l)));
            assert_eq!((d.location.line, d.location.col), (1, 10), "{line}");
            assert_eq!(d.class, keepalived_parser::DiagClass::IncludeFailed);
        }
    }
    // The brace check skips the whole include; without it, what exists is read.
    let main = t.write("k.conf", "includeb conf.d/{a,b}.conf\n");
    let l = load_file(&main, &opts()).expect("readable");
    assert!(l.model.virtual_servers.is_empty());
    let main = t.write("k.conf", "includem conf.d/{a,b}.conf\n");
    let l = load_file(&main, &opts()).expect("readable");
    assert_eq!(l.model.virtual_servers.len(), 1);
}
