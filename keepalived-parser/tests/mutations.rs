//! Mutation tests on the conformance corpus: for every block of every corpus
//! file (found with the parser's own AST), three broken copies of the file
//! are loaded, and each must yield a *new* diagnostic at the line that was
//! broken:
//!
//! * **unknown keyword**: a line `dpvsd_mutation_unknown 1` inserted just
//!   before the block's `}` (or just after its `{`); expected at that line
//!   (as an unknown keyword, or as a bad entry of a value block);
//! * **bad value**: the first numeric or IP-like value of the block's
//!   statements (an argument, or the entry of a value block) replaced by
//!   `bogus!`; expected at that value's line;
//! * **missing brace**: the block's `}` blanked out; expected at the line of
//!   the block's `{` (the parser's convention: a missing `}` is reported at
//!   the `{` it should close, and when an outer `}` was taken in its place,
//!   the block whose `}` is indented like an outer block is named too).
//!
//! Blocks where a mutation cannot be placed unambiguously (the `}` shares
//! its line with other text, the block has no numeric value, the block has
//! no `}` at all) are counted as skipped for that mutation. So are, for the
//! first two mutations, blocks that dpvsd reports as "not yet supported,
//! ignored" (it reads nothing inside them, and says so at their keyword), and
//! values of keywords that are themselves unknown or ignored, or that take
//! any text (`auth_pass`).

use keepalived_parser::{load_str, parse_str, Diagnostic, LoadOptions, Statement, Token};
use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::path::Path;

const UNKNOWN_LINE: &str = "dpvsd_mutation_unknown 1";
const BAD_VALUE: &str = "bogus!";
/// Keywords whose argument may be any text (a password, a host name), so
/// `bogus!` (read as `bogus`: `!` starts a comment) is a valid value.
const FREE_TEXT: &[&str] = &["auth_pass", "smtp_server"];
/// Value blocks whose entries may be any text (e-mail addresses, unchecked
/// by keepalived too), so an inserted line is a valid entry.
const FREE_TEXT_BLOCKS: &[&str] = &["notification_email"];

fn opts() -> LoadOptions {
    LoadOptions {
        config_id: Some("high".into()),
    }
}

/// Every statement that has a block, in file order, if it stands in `file`,
/// with whether dpvsd ignores it (it, or a block around it, is reported as
/// "not yet supported", at a keyword location in `ignored`).
fn blocks<'a>(
    stmts: &'a [Statement],
    file: &Path,
    ignored: &HashSet<(u32, u32)>,
    inside_ignored: bool,
    out: &mut Vec<(&'a Statement, bool)>,
) {
    for s in stmts {
        if let Some(body) = &s.block {
            let here = inside_ignored || ignored.contains(&(s.location.line, s.location.col));
            if s.open_brace.as_ref().is_some_and(|o| *o.file == *file) {
                out.push((s, here));
            }
            blocks(body, file, ignored, here, out);
        }
    }
}

/// A word that a keyword would read as a number, an address or a range.
fn numeric_or_ip(text: &str) -> bool {
    let head = text.split('/').next().unwrap_or_default();
    let numeric = text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || ".:/-[]".contains(c));
    numeric || head.parse::<Ipv6Addr>().is_ok()
}

/// Lines of the unmutated file where dpvsd reads nothing: an unknown keyword
/// or one it ignores.
fn unread_lines(diags: &[Diagnostic], file: &Path) -> HashSet<u32> {
    diags
        .iter()
        .filter(|d| *d.location.file == *file)
        .filter(|d| {
            d.message.starts_with("unknown keyword") || d.message.contains("not yet supported")
        })
        .map(|d| d.location.line)
        .collect()
}

/// The token of the block's first numeric or IP-like value, if its text
/// stands as written in the source (not produced by `$NAME` or `~SEQ`).
fn first_value<'a>(
    body: &'a [Statement],
    file: &Path,
    lines: &[&str],
    unread: &HashSet<u32>,
) -> Option<&'a Token> {
    body.iter()
        .filter(|s| !FREE_TEXT.contains(&s.keyword.text.as_str()))
        .filter(|s| !unread.contains(&s.location.line))
        .flat_map(|s| {
            // A value block's entries are keywords in the AST.
            let entry = numeric_or_ip(&s.keyword.text).then_some(&s.keyword);
            entry.into_iter().chain(s.args.iter())
        })
        .filter(|t| numeric_or_ip(&t.text) && *t.location.file == *file)
        .find(|t| {
            let (line, col) = (t.location.line as usize, t.location.col as usize);
            lines
                .get(line - 1)
                .and_then(|l| l.get(col - 1..))
                .is_some_and(|rest| rest.starts_with(&t.text))
        })
}

/// Whether the text of `line` before column `col` is blank.
fn first_on_line(lines: &[&str], line: u32, col: u32) -> bool {
    lines
        .get(line as usize - 1)
        .and_then(|l| l.get(..col as usize - 1))
        .is_some_and(|before| before.trim().is_empty())
}

/// Whether nothing but blanks or a comment follows column `col` of `line`.
fn last_on_line(lines: &[&str], line: u32, col: u32) -> bool {
    lines
        .get(line as usize - 1)
        .and_then(|l| l.get(col as usize..))
        .is_some_and(|after| {
            let t = after.trim_start();
            t.is_empty() || t.starts_with('#') || t.starts_with('!')
        })
}

fn join(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

fn located(diags: &[Diagnostic], file: &Path) -> HashSet<(u32, String)> {
    diags
        .iter()
        .filter(|d| *d.location.file == *file)
        .map(|d| (d.location.line, d.message.clone()))
        .collect()
}

#[derive(Default)]
struct Tally {
    checked: [usize; 3],
    skipped: [usize; 3],
    /// Mutations not applied because dpvsd ignores the block.
    ignored: usize,
    failures: Vec<String>,
}

const KINDS: [&str; 3] = ["unknown keyword", "bad value", "missing brace"];

impl Tally {
    /// Loads `text` and checks it has a diagnostic at `line` that `before`
    /// (the unmutated file's diagnostics, by line and message) did not have.
    fn check(
        &mut self,
        kind: usize,
        path: &Path,
        text: &str,
        line: u32,
        before: &HashSet<(u32, String)>,
        what: &str,
    ) {
        self.checked[kind] += 1;
        let loaded = load_str(text, path, &opts());
        let after = located(&loaded.diagnostics, path);
        if !after
            .iter()
            .any(|(l, m)| *l == line && !before.contains(&(*l, m.clone())))
        {
            let near: Vec<String> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.location.line.abs_diff(line) <= 3)
                .map(|d| format!("{}:{} {}", d.location.line, d.location.col, d.message))
                .collect();
            self.failures.push(format!(
                "{}: {} ({what}): no new diagnostic at line {line}; nearby: {near:#?}",
                path.display(),
                KINDS[kind]
            ));
        }
    }
}

fn mutate_file(path: &Path, tally: &mut Tally) {
    let Ok(text) = std::fs::read_to_string(path) else {
        println!("SKIP: {} is not UTF-8 text", path.display());
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    let owned: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
    let (ast, _) = parse_str(&text, path, &opts());
    let original = load_str(&text, path, &opts());
    let before = located(&original.diagnostics, path);
    let unread = unread_lines(&original.diagnostics, path);
    let ignored: HashSet<(u32, u32)> = original
        .diagnostics
        .iter()
        .filter(|d| *d.location.file == *path && d.message.contains("not yet supported"))
        .map(|d| (d.location.line, d.location.col))
        .collect();
    let mut found = Vec::new();
    blocks(&ast, path, &ignored, false, &mut found);
    for (b, ignored) in found {
        let (Some(open), Some(body)) = (&b.open_brace, &b.block) else {
            continue;
        };
        let what = format!("'{}' block at line {}", b.keyword.text, open.line);
        let close = b.close_brace.as_ref().filter(|c| *c.file == *path);

        // (a) an unknown keyword inside the block.
        let insert_at = match close {
            Some(c) if c.line > open.line && first_on_line(&lines, c.line, c.col) => {
                Some(c.line as usize - 1)
            }
            _ if last_on_line(&lines, open.line, open.col) && close.is_some() => {
                Some(open.line as usize)
            }
            _ => None,
        };
        match insert_at {
            Some(_) if ignored => tally.ignored += 1,
            Some(_) if FREE_TEXT_BLOCKS.contains(&b.keyword.text.as_str()) => {
                tally.skipped[0] += 1;
            }
            Some(at) => {
                let mut m = owned.clone();
                m.insert(at, UNKNOWN_LINE.to_string());
                // Lines after the insertion moved: compare nothing from before.
                tally.check(0, path, &join(&m), at as u32 + 1, &HashSet::new(), &what);
            }
            None => tally.skipped[0] += 1,
        }

        // (b) a bad value for the first numeric/IP value of the block.
        match first_value(body, path, &lines, &unread) {
            Some(_) if ignored => tally.ignored += 1,
            Some(t) => {
                let (line, col) = (t.location.line as usize, t.location.col as usize);
                let mut m = owned.clone();
                let src = &lines[line - 1];
                m[line - 1] = format!(
                    "{}{BAD_VALUE}{}",
                    &src[..col - 1],
                    &src[col - 1 + t.text.len()..]
                );
                let what = format!("{what}: '{}' at {line}:{col}", t.text);
                tally.check(1, path, &join(&m), line as u32, &before, &what);
            }
            None => tally.skipped[1] += 1,
        }

        // (c) the block's closing brace deleted.
        match close {
            Some(c)
                if lines[c.line as usize - 1].get(c.col as usize - 1..c.col as usize)
                    == Some("}") =>
            {
                let mut m = owned.clone();
                let (line, col) = (c.line as usize, c.col as usize);
                let src = &lines[line - 1];
                m[line - 1] = format!("{} {}", &src[..col - 1], &src[col..]);
                tally.check(2, path, &join(&m), open.line, &before, &what);
            }
            _ => tally.skipped[2] += 1,
        }
    }
}

#[test]
fn every_block_of_every_corpus_file_reports_mutations_at_their_line() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    if !root.is_dir() {
        println!("SKIP: ../shared/corpus not found");
        return;
    }
    let mut tally = Tally::default();
    let mut files = 0;
    for sub in ["keepalived", "dpvs"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            files += 1;
            mutate_file(path, &mut tally);
        }
    }
    for (k, name) in KINDS.iter().enumerate() {
        println!(
            "{name}: {} mutations checked, {} blocks skipped",
            tally.checked[k], tally.skipped[k]
        );
    }
    println!(
        "not applied inside blocks dpvsd ignores (not yet supported): {}",
        tally.ignored
    );
    let total: usize = tally.checked.iter().sum();
    println!(
        "mutations checked: {total} in {files} files, {} failed",
        tally.failures.len()
    );
    for f in &tally.failures {
        println!("FAIL {f}");
    }
    assert!(files > 0, "corpus directory holds no files");
    assert!(
        tally.checked.iter().all(|&n| n > 0),
        "a mutation kind was never applied"
    );
    assert!(
        tally.failures.is_empty(),
        "{} mutations not located",
        tally.failures.len()
    );
}
