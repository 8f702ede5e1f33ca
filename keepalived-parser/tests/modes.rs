//! `--strict`, `--dialect dpvs` and "did you mean" hints.

use keepalived_parser::{
    config_test_exit_code, load_str, load_str_with, model::CheckerKind, Dialect, LoadOptions,
    Loaded, ParseMode, Severity,
};
use std::path::Path;

fn load(text: &str, mode: ParseMode) -> Loaded {
    load_str_with(text, Path::new("m.conf"), &LoadOptions::default(), mode)
}

fn vs(body: &str) -> String {
    format!("virtual_server 10.0.0.1 80 {{\n lb_algo rr\n lb_kind NAT\n protocol TCP\n{body}}}\n")
}

/// (line, col, message) of every diagnostic.
fn diags(l: &Loaded) -> Vec<(u32, u32, Severity, String)> {
    l.diagnostics
        .iter()
        .map(|d| {
            (
                d.location.line,
                d.location.col,
                d.severity,
                d.message.clone(),
            )
        })
        .collect()
}

#[test]
fn misspelt_keywords_get_the_closest_keyword_of_their_block() {
    let text = vs(" delay_lop 6\n real_server 10.0.1.1 80 {\n  wieght 2\n  tcp_check {\n   conect_timeout 3\n  }\n }\n");
    let l = load_str(&text, Path::new("m.conf"), &LoadOptions::default());
    let d = diags(&l);
    let hint = |line: u32, kw: &str, sugg: &str| {
        d.iter().any(|(l, _, _, m)| {
            *l == line && m == &format!("unknown keyword '{kw}' (did you mean '{sugg}'?)")
        })
    };
    assert!(hint(5, "delay_lop", "delay_loop"), "{d:#?}");
    assert!(hint(7, "wieght", "weight"), "{d:#?}");
    // Case only: keepalived keywords are case-sensitive, so it is unknown.
    assert!(hint(8, "tcp_check", "TCP_CHECK"), "{d:#?}");
    // tcp_check's block is read at the real-server level, so the hint for
    // conect_timeout is the real server's connect_timeout.
    assert!(hint(9, "conect_timeout", "connect_timeout"), "{d:#?}");
}

#[test]
fn no_hint_for_words_far_from_every_keyword() {
    let l = load_str(
        &vs(" frobnicate 1\n real_server 10.0.1.1 80 {\n }\n"),
        Path::new("m.conf"),
        &LoadOptions::default(),
    );
    let d = diags(&l);
    assert!(
        d.iter()
            .any(|(_, _, _, m)| m == "unknown keyword 'frobnicate'"),
        "{d:#?}"
    );
    // A keyword of another block is no hint here.
    let l = load_str(
        "global_defs {\n lb_algo rr\n}\n",
        Path::new("m.conf"),
        &LoadOptions::default(),
    );
    assert_eq!(l.diagnostics[0].message, "unknown keyword 'lb_algo'");
}

#[test]
fn strict_makes_unknown_keywords_fatal_and_nothing_else() {
    let text = vs(" delay_lop 6\n real_server 10.0.1.1 80 {\n }\n");
    let lax = load(&text, ParseMode::default());
    assert!(lax.is_runnable());
    assert_eq!(lax.max_severity(), Some(Severity::Warning));
    let strict = load(
        &text,
        ParseMode {
            strict: true,
            ..ParseMode::default()
        },
    );
    assert!(!strict.is_runnable());
    let d = diags(&strict);
    assert_eq!(d[0].0, 5);
    assert_eq!(d[0].2, Severity::Fatal);
    // keepalived -t's exit code is the same: it only warns.
    assert_eq!(config_test_exit_code(&strict), config_test_exit_code(&lax));
    // Known keywords (even unsupported ones) stay warnings.
    let l = load(
        &vs(" real_server 10.0.1.1 80 {\n }\n"),
        ParseMode {
            strict: true,
            ..ParseMode::default()
        },
    );
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
}

#[test]
fn dialect_dpvs_limits_weights_and_makes_misc_dynamic_absolute() {
    let text = vs(" real_server 10.0.1.1 80 {\n  weight 70000\n  MISC_CHECK {\n   misc_path /bin/true\n   misc_dynamic\n  }\n }\n");
    let k = load(&text, ParseMode::default());
    assert!(k.diagnostics.is_empty(), "{:#?}", k.diagnostics);
    let rs = &k.model.virtual_servers[0].real_servers[0];
    assert_eq!(rs.weight, 70000);
    let CheckerKind::Misc(m) = &rs.checkers[0].kind else {
        panic!("MISC_CHECK expected: {:?}", rs.checkers[0].kind);
    };
    assert!(m.dynamic && !m.absolute_weight);

    let d = load(
        &text,
        ParseMode {
            dialect: Dialect::Dpvs,
            ..ParseMode::default()
        },
    );
    let got = diags(&d);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!((got[0].0, got[0].2), (6, Severity::Error));
    let rs = &d.model.virtual_servers[0].real_servers[0];
    assert_eq!(
        rs.weight, 1,
        "the bad weight is ignored: the VS default applies"
    );
    let CheckerKind::Misc(m) = &rs.checkers[0].kind else {
        panic!("MISC_CHECK expected");
    };
    assert!(m.dynamic && m.absolute_weight);
    assert_eq!("dpvs".parse::<Dialect>(), Ok(Dialect::Dpvs));
    assert!("DPVS".parse::<Dialect>().is_err());
}
