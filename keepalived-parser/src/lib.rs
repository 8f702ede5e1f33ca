//! keepalived.conf for dpvsd: text → AST (with spans) → typed [`Model`] plus
//! every [`Diagnostic`], in one pass.
//!
//! ```text
//!  file(s) ──preprocess──► logical lines ──grammar (nom)──► AST ──lower──► Model + Vec<Diagnostic>
//!          include, @cond,   (span kept)     keyword/args/block     defaults, inheritance,
//!          $NAME, ~SEQ                                              range checks
//! ```

pub mod diag;
pub mod model;

pub use diag::{Diagnostic, Location, Severity};
pub use model::Model;
