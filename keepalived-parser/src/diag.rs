//! Diagnostics: every problem found while reading a configuration, with its
//! location, in one pass.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// How bad a problem is. Follows keepalived's classes: `Fatal` means the
/// configuration cannot be started at all, `Error` means the item is dropped
/// and the rest runs, `Warning` means it runs as written (or with a default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
    Fatal,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        })
    }
}

/// What keepalived 2.2.7 would make of a problem, for `keepalived -t`'s exit
/// code (KEEPALIVED.md §1.9; see [`crate::config_test_exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagClass {
    /// Reported through keepalived's `report_config_error` (any ordinary
    /// error or warning class): `-t` exits 5.
    #[default]
    Config,
    /// "missing a parameter": keepalived exits 2 at once, even with `-t`.
    MissingParameter,
    /// A failed checked include (`includer`, ...): exit 6 after reading.
    IncludeFailed,
    /// `CONFIG_SECURITY_ERROR` ("SECURITY VIOLATION"): exit 6.
    Security,
    /// The file-not-found, bad-interface or fatal classes: exit 4 unless an
    /// ordinary class was also reported (keepalived keeps the numerically
    /// largest class, and those come first in its enum).
    Fatal,
    /// Reported by dpvsd only (a dpvsd limitation, or extra explanation of
    /// a keepalived behaviour); keepalived says nothing, so it does not
    /// change the `-t` exit code.
    Dpvsd,
}

/// A position in a configuration file (1-based line and column).
///
/// The file name is shared: every location in one file points at the same
/// `Arc<Path>`, so cloning a location never allocates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: u32,
    pub col: u32,
}

impl Default for Location {
    fn default() -> Self {
        Location {
            file: Arc::from(Path::new("")),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    /// The offending source line as written (for the caret display), when known.
    pub source_line: Option<String>,
    /// How keepalived would classify it (for `-t` exit codes).
    pub class: DiagClass,
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error: message`, then the source line and a caret when known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.severity, self.message)?;
        if let Some(src) = &self.source_line {
            let col = self.location.col.max(1) as usize;
            let pad: String = src
                .chars()
                .take(col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n    {src}\n    {pad}^")?;
        }
        Ok(())
    }
}
