//! keepalived.conf for dpvsd: text → AST (with spans) → typed [`Model`] plus
//! every [`Diagnostic`], in one pass.
//!
//! ```text
//!  file(s) ──preprocess──► logical lines ──grammar (nom)──► AST ──lower──► Model + Vec<Diagnostic>
//!          include, @cond,   (span kept)     keyword/args/block     defaults, inheritance,
//!          $NAME, ~SEQ                                              range checks
//! ```
//!
//! Stages:
//! 1. [`preprocess`]: keepalived's lexical layer (KEEPALIVED.md §1): 1024-byte
//!    lines, `#`/`!` comments, `@ID` conditionals, `$NAME=` definitions and
//!    substitution (re-examined as in 2.2.7), `~SEQ`/`~SEQx`/`~LST`,
//!    `include` with globs and `{a,b}` braces, brace splitting, tokens.
//! 2. [`ast`]: a nom grammar over the logical lines; pure syntax, brace
//!    errors reported with their location.
//! 3. lowering: keepalived's block engine (unknown keywords and their blocks
//!    behave exactly as in keepalived, with a louder warning), then typed
//!    values, defaults and inheritance into [`Model`].
//!
//! Invariants:
//! * loading never panics and never stops at the first problem: every
//!   problem becomes a [`Diagnostic`] with file, line and column (≥ 1 for
//!   anything that comes from a file) and, when known, the source line;
//! * severities follow keepalived: [`Severity::Fatal`] (keepalived would not
//!   start, e.g. a missing parameter), [`Severity::Error`] (the item is
//!   dropped), [`Severity::Warning`] (runs as written or with a default);
//! * the [`Model`] holds effective values only (defaults and inheritance applied);
//! * no keyword is silently ignored: unknown and not-yet-supported keywords warn.
//!
//! ```
//! use keepalived_parser::{load_str, LoadOptions};
//! use std::path::Path;
//!
//! let conf = "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n\
//!             real_server 10.0.1.1 80 { TCP_CHECK { } }\n}\n";
//! let loaded = load_str(conf, Path::new("keepalived.conf"), &LoadOptions::default());
//! assert!(loaded.is_runnable());
//! assert_eq!(loaded.model.virtual_servers[0].real_servers[0].weight, 1);
//! ```

pub mod ast;
pub mod diag;
pub mod diff;
pub mod dump;
mod lower;
pub mod model;
pub mod preprocess;
mod values;

use std::path::{Path, PathBuf};

pub use ast::Statement;
pub use diag::{DiagClass, Diagnostic, Location, Severity};
pub use diff::{diff, ChangeSet};
pub use dump::{dump, without_locations};
pub use model::Model;
pub use preprocess::{LogicalLine, Token};

/// How to load a configuration.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The id matched by `@ID` conditional lines (keepalived's `-i`).
    /// `None` means the hostname up to its first `.`.
    pub config_id: Option<String>,
}

/// Which keepalived a configuration is written for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// keepalived 2.2.7 (with the DPVS keywords accepted as extensions).
    #[default]
    Keepalived,
    /// DPVS's fork of keepalived 2.0.19 (KEEPALIVED.md §10): real-server
    /// weights are limited to 0..65535, and `misc_dynamic` sets the weight
    /// absolutely ([`model::MiscCheck::absolute_weight`]).
    Dpvs,
}

impl std::str::FromStr for Dialect {
    type Err = String;

    /// `keepalived` or `dpvs`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keepalived" => Ok(Dialect::Keepalived),
            "dpvs" => Ok(Dialect::Dpvs),
            _ => Err(format!(
                "unknown dialect '{s}' (expected 'keepalived' or 'dpvs')"
            )),
        }
    }
}

/// How strictly, and as which keepalived, a configuration is read (the
/// `--strict` and `--dialect` flags of `dpvsd`). Separate from
/// [`LoadOptions`] so that code building that with a struct literal keeps
/// compiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ParseMode {
    /// Unknown keywords are fatal (keepalived only warns).
    pub strict: bool,
    pub dialect: Dialect,
}

/// A loaded configuration: the model that would run and every problem found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub model: Model,
    /// In stage order (preprocessing, grammar, lowering), each in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// The worst severity among the diagnostics, `None` when there are none.
    pub fn max_severity(&self) -> Option<Severity> {
        self.diagnostics.iter().map(|d| d.severity).max()
    }

    /// No diagnostics of severity Error or Fatal.
    pub fn is_runnable(&self) -> bool {
        // `None` (no diagnostics) orders below every `Some`.
        self.max_severity() < Some(Severity::Error)
    }
}

/// The exit status `keepalived -t` (2.2.7) would give this configuration
/// (KEEPALIVED.md §1.9): 2 when a parameter is missing (keepalived exits at
/// once), 6 after a failed checked include, otherwise from the numerically
/// largest class reported: 6 for a security violation, 5 for any ordinary
/// error or warning, 4 when only file-not-found / bad-interface / fatal
/// classes were seen, 0 when nothing was. [`DiagClass::Dpvsd`] diagnostics
/// (dpvsd's own notes) do not count.
pub fn config_test_exit_code(loaded: &Loaded) -> u8 {
    let has = |c: DiagClass| loaded.diagnostics.iter().any(|d| d.class == c);
    if has(DiagClass::MissingParameter) {
        2
    } else if has(DiagClass::IncludeFailed) || has(DiagClass::Security) {
        6
    } else if has(DiagClass::Config) {
        5
    } else if has(DiagClass::Fatal) {
        4
    } else {
        0
    }
}

/// Why a configuration could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read configuration: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Loads the configuration in `path` and everything it includes.
///
/// # Errors
/// [`LoadError::Read`] only when the main file cannot be read; every other
/// problem (including unreadable included files) is a [`Diagnostic`].
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    load_file_with(path, opts, ParseMode::default())
}

/// [`load_file`] in a given [`ParseMode`].
///
/// # Errors
/// As [`load_file`].
pub fn load_file_with(
    path: &Path,
    opts: &LoadOptions,
    mode: ParseMode,
) -> Result<Loaded, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(load_bytes(bytes, path, opts, mode))
}

/// Loads configuration text; `name` is used in locations, and relative
/// includes resolve against its directory.
pub fn load_str(text: &str, name: &Path, opts: &LoadOptions) -> Loaded {
    load_str_with(text, name, opts, ParseMode::default())
}

/// [`load_str`] in a given [`ParseMode`].
///
/// ```
/// use keepalived_parser::{load_str_with, Dialect, LoadOptions, ParseMode, Severity};
/// use std::path::Path;
///
/// let conf = "global_defs {\n router_idd r1\n}\n";
/// let strict = ParseMode { strict: true, dialect: Dialect::Keepalived };
/// let loaded = load_str_with(conf, Path::new("k.conf"), &LoadOptions::default(), strict);
/// assert_eq!(loaded.max_severity(), Some(Severity::Fatal));
/// assert!(loaded.diagnostics[0].message.contains("did you mean 'router_id'?"));
/// ```
pub fn load_str_with(text: &str, name: &Path, opts: &LoadOptions, mode: ParseMode) -> Loaded {
    load_bytes(text.as_bytes().to_vec(), name, opts, mode)
}

/// The syntax tree of configuration text (stages 1 and 2 only, no keyword
/// is interpreted), with the preprocessing and brace diagnostics. For tools
/// that need the block structure of a file, such as the mutation tests.
pub fn parse_str(text: &str, name: &Path, opts: &LoadOptions) -> (Vec<Statement>, Vec<Diagnostic>) {
    let mut pre = preprocess(text.as_bytes().to_vec(), name, opts);
    let mut diagnostics = std::mem::take(&mut pre.diagnostics);
    let words = std::mem::take(&mut pre.words);
    let tokens = preprocess::tokens(&pre.text, &pre.sources, words);
    let ast = ast::parse(
        ast::In::new(&pre.items, &tokens),
        &pre.sources,
        &mut diagnostics,
    );
    (ast::to_statements(&ast, &pre.sources), diagnostics)
}

fn preprocess(bytes: Vec<u8>, name: &Path, opts: &LoadOptions) -> preprocess::Preprocessed {
    let config_id = opts.config_id.clone().unwrap_or_else(default_config_id);
    let mut pp = preprocess::Preprocessor::new(config_id);
    pp.process_file(name, bytes);
    pp.finish()
}

fn load_bytes(bytes: Vec<u8>, name: &Path, opts: &LoadOptions, mode: ParseMode) -> Loaded {
    let preprocess::Preprocessed {
        items,
        words,
        text,
        mut diagnostics,
        sources,
    } = preprocess(bytes, name, opts);
    // Each intermediate form is dropped as soon as the next one is built.
    // In place: the words' buffer becomes the tokens' one.
    let tokens = preprocess::tokens(&text, &sources, words);
    let ast = ast::parse(ast::In::new(&items, &tokens), &sources, &mut diagnostics);
    drop(items);
    let model = lower::lower(&ast, &sources, mode, &mut diagnostics);
    for d in &mut diagnostics {
        if d.source_line.is_none() {
            d.source_line = sources
                .by_path(&d.location.file)
                .and_then(|s| s.line(d.location.line))
                .map(str::to_string);
        }
    }
    Loaded { model, diagnostics }
}

/// keepalived's default config id: the hostname up to its first `.`.
fn default_config_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    host.trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}
