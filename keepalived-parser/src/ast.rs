//! Stage 2: a nom grammar over [`LogicalLine`]s producing a keyword-agnostic AST.
//!
//! ```text
//! file      = { statement | '}' }            // a '}' here is "Extra '}' found"
//! statement = words [ block ] | block        // a bare block has the '{' as keyword
//! block     = '{' { statement } [ '}' ]      // a missing '}' is reported at its '{'
//! ```
//!
//! Invariants: pure syntax (no keyword is known here); every brace problem is
//! reported with its location; the AST keeps every token's location, so
//! flattening it back gives the logical-line stream minus the extra `}`s.

use nom::combinator::{map, opt};
use nom::error::{Error, ErrorKind};
use nom::multi::many0;
use nom::{branch::alt, IResult};

use crate::diag::{DiagClass, Diagnostic, Location, Severity};
use crate::preprocess::{LogicalLine, Token};

/// Deeper brace nesting than this is refused (it would only be an attack on the stack).
const MAX_NESTING: usize = 200;

/// One statement: a keyword line, optionally followed by a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The first word. For a bare block (a `{` with no keyword line before it)
    /// this is the `{` itself (see [`Statement::is_bare_block`]).
    pub keyword: Token,
    /// The remaining words of the line.
    pub args: Vec<Token>,
    /// The statements between the braces that follow the line, if any.
    pub block: Option<Vec<Statement>>,
    /// Where the keyword stands.
    pub location: Location,
    /// Where the block's `{` stands.
    pub open_brace: Option<Location>,
    /// Where the block's `}` stands; `None` when the file ended first.
    pub close_brace: Option<Location>,
}

impl Statement {
    /// A `{` that follows no keyword line (for example `a { b } { c }`).
    pub fn is_bare_block(&self) -> bool {
        self.keyword.text == "{"
            && self.args.is_empty()
            && self.open_brace.as_ref() == Some(&self.keyword.location)
    }
}

type In<'a> = &'a [LogicalLine];

fn fail<T>(i: In<'_>) -> IResult<In<'_>, T> {
    Err(nom::Err::Error(Error::new(i, ErrorKind::Tag)))
}

fn words_line(i: In<'_>) -> IResult<In<'_>, &Vec<Token>> {
    match i.split_first() {
        Some((LogicalLine::Words(w), rest)) => Ok((rest, w)),
        _ => fail(i),
    }
}

fn open_brace(i: In<'_>) -> IResult<In<'_>, &Location> {
    match i.split_first() {
        Some((LogicalLine::Open(l), rest)) => Ok((rest, l)),
        _ => fail(i),
    }
}

fn close_brace(i: In<'_>) -> IResult<In<'_>, &Location> {
    match i.split_first() {
        Some((LogicalLine::Close(l), rest)) => Ok((rest, l)),
        _ => fail(i),
    }
}

type Block<'a> = (&'a Location, Vec<Statement>, Option<&'a Location>);

fn block(i: In<'_>) -> IResult<In<'_>, Block<'_>> {
    let (i, open) = open_brace(i)?;
    let (i, body) = many0(statement)(i)?;
    let (i, close) = opt(close_brace)(i)?;
    Ok((i, (open, body, close)))
}

fn keyword_statement(i: In<'_>) -> IResult<In<'_>, Statement> {
    let (i, words) = words_line(i)?;
    let (i, blk) = opt(block)(i)?;
    let Some((keyword, args)) = words.split_first() else {
        return fail(i);
    };
    let (open_brace, block, close_brace) = match blk {
        Some((o, b, c)) => (Some(o.clone()), Some(b), c.cloned()),
        None => (None, None, None),
    };
    Ok((
        i,
        Statement {
            keyword: keyword.clone(),
            args: args.to_vec(),
            block,
            location: keyword.location.clone(),
            open_brace,
            close_brace,
        },
    ))
}

fn bare_block(i: In<'_>) -> IResult<In<'_>, Statement> {
    map(block, |(open, body, close)| Statement {
        keyword: Token {
            text: "{".into(),
            location: open.clone(),
            rest: None,
        },
        args: Vec::new(),
        block: Some(body),
        location: open.clone(),
        open_brace: Some(open.clone()),
        close_brace: close.cloned(),
    })(i)
}

fn statement(i: In<'_>) -> IResult<In<'_>, Statement> {
    alt((keyword_statement, bare_block))(i)
}

enum Item {
    Stmt(Statement),
    Extra(Location),
}

fn item(i: In<'_>) -> IResult<In<'_>, Item> {
    alt((
        map(statement, Item::Stmt),
        map(close_brace, |l| Item::Extra(l.clone())),
    ))(i)
}

/// Parses the logical lines of a whole configuration.
pub(crate) fn parse(lines: &[LogicalLine], diags: &mut Vec<Diagnostic>) -> Vec<Statement> {
    let mut depth = 0usize;
    for l in lines {
        match l {
            LogicalLine::Open(loc) => {
                depth += 1;
                if depth > MAX_NESTING {
                    diags.push(diag(
                        Severity::Fatal,
                        loc.clone(),
                        format!("blocks nested more than {MAX_NESTING} deep"),
                    ));
                    return Vec::new();
                }
            }
            LogicalLine::Close(_) => depth = depth.saturating_sub(1),
            LogicalLine::Words(_) => {}
        }
    }
    let items = match many0(item)(lines) {
        Ok((_, items)) => items,
        // `item` accepts every logical line, so this cannot happen; report it anyway.
        Err(_) => {
            let location = first_location(lines);
            diags.push(diag(
                Severity::Fatal,
                location,
                "internal error: grammar failed",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for it in items {
        match it {
            Item::Stmt(s) => out.push(s),
            Item::Extra(loc) => diags.push(diag(Severity::Error, loc, "Extra '}' found")),
        }
    }
    report_unclosed(&out, diags);
    out
}

fn first_location(lines: &[LogicalLine]) -> Location {
    match lines.first() {
        Some(LogicalLine::Open(l) | LogicalLine::Close(l)) => l.clone(),
        Some(LogicalLine::Words(w)) => w.first().map(|t| t.location.clone()).unwrap_or_default(),
        None => Location::default(),
    }
}

fn report_unclosed(stmts: &[Statement], diags: &mut Vec<Diagnostic>) {
    for s in stmts {
        if let (Some(open), None) = (&s.open_brace, &s.close_brace) {
            diags.push(diag(
                Severity::Error,
                open.clone(),
                format!(
                    "missing '}}': the block of '{}' opened here is not closed at end of file",
                    s.keyword.text
                ),
            ));
        }
        if let Some(b) = &s.block {
            report_unclosed(b, diags);
        }
    }
}

fn diag(severity: Severity, location: Location, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        severity,
        location,
        message: message.into(),
        source_line: None,
        class: DiagClass::Config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Preprocessor;

    fn parse_text(text: &str) -> (Vec<Statement>, Vec<Diagnostic>) {
        let mut p = Preprocessor::new("id".into());
        p.process_file(std::path::Path::new("t.conf"), text.as_bytes());
        let pre = p.finish();
        let mut diags = pre.diagnostics;
        let ast = parse(&pre.lines, &mut diags);
        (ast, diags)
    }

    #[test]
    fn ast_is_keyword_agnostic() {
        let (ast, diags) = parse_text("a 1 {\n b { c }\n}\n{ d }\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(ast.len(), 2);
        assert_eq!(ast[0].keyword.text, "a");
        assert_eq!(ast[0].args[0].text, "1");
        assert_eq!(
            ast[0].open_brace.as_ref().map(|l| (l.line, l.col)),
            Some((1, 5))
        );
        assert_eq!(
            ast[0].close_brace.as_ref().map(|l| (l.line, l.col)),
            Some((3, 1))
        );
        let inner = ast[0].block.as_ref().expect("a has a block");
        assert_eq!(inner[0].keyword.text, "b");
        assert_eq!(inner[0].block.as_ref().map(Vec::len), Some(1));
        assert!(!ast[0].is_bare_block());
        assert!(ast[1].is_bare_block());
        assert_eq!((ast[1].location.line, ast[1].location.col), (4, 1));
    }

    #[test]
    fn brace_errors_are_located() {
        let (ast, diags) = parse_text("a {\n}\n}\nb {\n c {\n");
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.location.line, d.location.col, d.message.clone()))
            .collect();
        assert_eq!(got[0], (3, 1, "Extra '}' found".to_string()));
        assert_eq!(got[1].0, 4);
        assert!(got[1].2.starts_with("missing '}'"));
        assert_eq!((got[2].0, got[2].1), (5, 4));
        assert_eq!(ast.len(), 2);
    }

    #[test]
    fn nesting_is_bounded() {
        let text = "a {\n".repeat(MAX_NESTING + 1);
        let (ast, diags) = parse_text(&text);
        assert!(ast.is_empty());
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Fatal);
    }
}
