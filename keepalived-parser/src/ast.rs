//! Stage 2: a nom grammar over [`LogicalLine`](crate::LogicalLine)s producing a keyword-agnostic AST.
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

use nom::combinator::opt;
use nom::error::{Error, ErrorKind};
use nom::multi::many0_count;
use nom::IResult;

use crate::diag::{DiagClass, Diagnostic, Location, Severity};
use crate::preprocess::{Item, Pos, Sources, Tok, Token};

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

/// A statement as the loading pipeline builds it: it borrows its words
/// from the preprocessor's output (see [`Statement`] for what the accessors
/// return). The tree is flat: one `Vec` in file order (pre-order), a
/// statement's block being the [`Stmt::size`] statements that follow it
/// (see [`members`]), so that a block costs no allocation of its own.
///
/// Kept small (40 bytes; a large configuration has about one per line):
/// the keyword is the first of the line's words, the statement's location
/// is its keyword's (or, for a bare block, its `{`'s), and a missing brace
/// is a position with column 0 (no character of a file has that column).
#[derive(Debug)]
pub(crate) struct Stmt<'a> {
    /// The words of the line, keyword first; empty for a bare block.
    words: &'a [Tok<'a>],
    open_brace: Pos,
    close_brace: Pos,
    /// How many statements, at every depth, the block holds.
    pub size: u32,
    /// How many of those are direct members of the block.
    pub members: u32,
}

/// The keyword of a bare block (its location is the statement's).
static BARE: Tok<'static> = Tok::word("{", NO_POS);

/// A brace that is not there (see [`Stmt`]).
const NO_POS: Pos = Pos {
    line: 0,
    file: 0,
    col: 0,
};

fn some_pos(p: Pos) -> Option<Pos> {
    (p.col != 0).then_some(p)
}

impl<'a> Stmt<'a> {
    /// The first word (for a bare block, a `{` with no location).
    pub fn keyword(&self) -> &'a Tok<'a> {
        self.words.first().unwrap_or(&BARE)
    }

    /// The remaining words of the line.
    pub fn args(&self) -> &'a [Tok<'a>] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// Where the keyword (or a bare block's `{`) stands.
    pub fn location(&self) -> Pos {
        match self.words.first() {
            Some(k) => k.location,
            None => self.open_brace,
        }
    }

    /// Where the block's `{` stands.
    pub fn open_brace(&self) -> Option<Pos> {
        some_pos(self.open_brace)
    }

    /// Where the block's `}` stands; `None` when the file ended first (or
    /// there is no block).
    pub fn close_brace(&self) -> Option<Pos> {
        some_pos(self.close_brace)
    }

    /// See [`Statement::is_bare_block`].
    pub fn is_bare_block(&self) -> bool {
        self.words.is_empty()
    }
}

/// The top-level statements of a flat tree (or of a block of one), each
/// with its block (empty when it has none).
pub(crate) fn members<'s, 'a>(stmts: &'s [Stmt<'a>]) -> Members<'s, 'a> {
    Members { rest: stmts }
}

/// See [`members`].
#[derive(Debug, Clone)]
pub(crate) struct Members<'s, 'a> {
    rest: &'s [Stmt<'a>],
}

impl<'s, 'a> Iterator for Members<'s, 'a> {
    type Item = (&'s Stmt<'a>, &'s [Stmt<'a>]);

    fn next(&mut self) -> Option<Self::Item> {
        let (first, tail) = self.rest.split_first()?;
        let (block, after) = tail.split_at((first.size as usize).min(tail.len()));
        self.rest = after;
        Some((first, block))
    }
}

/// The owned form of a flat tree, for [`crate::parse_str`].
pub(crate) fn to_statements(stmts: &[Stmt<'_>], src: &Sources) -> Vec<Statement> {
    members(stmts)
        .map(|(s, block)| {
            let mut keyword = s.keyword().to_token(src);
            keyword.location = src.location(s.location());
            Statement {
                keyword,
                args: s.args().iter().map(|t| t.to_token(src)).collect(),
                block: s.open_brace().map(|_| to_statements(block, src)),
                location: src.location(s.location()),
                open_brace: s.open_brace().map(|l| src.location(l)),
                close_brace: s.close_brace().map(|l| src.location(l)),
            }
        })
        .collect()
}

/// A logical line as the grammar reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Line<'a> {
    Words(&'a [Tok<'a>]),
    Open(Pos),
    Close(Pos),
}

/// The grammar's input: the preprocessor's logical lines over its words
/// (`tokens`, from [`crate::preprocess::tokens`]), read in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct In<'a, 'b> {
    items: &'b [Item],
    tokens: &'a [Tok<'a>],
}

impl<'a, 'b> In<'a, 'b> {
    pub fn new(items: &'b [Item], tokens: &'a [Tok<'a>]) -> Self {
        In { items, tokens }
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The first line and the rest.
    fn split_first(self) -> Option<(Line<'a>, Self)> {
        let (first, items) = self.items.split_first()?;
        let line = match first {
            Item::Words(r) => Line::Words(
                self.tokens
                    .get(r.start as usize..r.end as usize)
                    .unwrap_or(&[]),
            ),
            Item::Open(l) => Line::Open(*l),
            Item::Close(l) => Line::Close(*l),
        };
        Some((line, In { items, ..self }))
    }

    fn lines(self) -> impl Iterator<Item = Line<'a>> + 'b
    where
        'a: 'b,
    {
        let mut rest = self;
        std::iter::from_fn(move || {
            let (line, r) = rest.split_first()?;
            rest = r;
            Some(line)
        })
    }
}

impl nom::InputLength for In<'_, '_> {
    fn input_len(&self) -> usize {
        self.items.len()
    }
}

fn fail<'a, 'b, T>(i: In<'a, 'b>) -> IResult<In<'a, 'b>, T> {
    Err(nom::Err::Error(Error::new(i, ErrorKind::Tag)))
}

fn words_line<'a, 'b>(i: In<'a, 'b>) -> IResult<In<'a, 'b>, &'a [Tok<'a>]> {
    match i.split_first() {
        Some((Line::Words(w), rest)) => Ok((rest, w)),
        _ => fail(i),
    }
}

fn open_brace<'a, 'b>(i: In<'a, 'b>) -> IResult<In<'a, 'b>, Pos> {
    match i.split_first() {
        Some((Line::Open(l), rest)) => Ok((rest, l)),
        _ => fail(i),
    }
}

fn close_brace<'a, 'b>(i: In<'a, 'b>) -> IResult<In<'a, 'b>, Pos> {
    match i.split_first() {
        Some((Line::Close(l), rest)) => Ok((rest, l)),
        _ => fail(i),
    }
}

/// A block's `{`, number of members and `}`; its statements are pushed to `out`.
type Block = (Pos, usize, Option<Pos>);

fn block<'a, 'b>(i: In<'a, 'b>, out: &mut Vec<Stmt<'a>>) -> IResult<In<'a, 'b>, Block> {
    let (i, open) = open_brace(i)?;
    let (i, members) = many0_count(|j| statement(j, out))(i)?;
    let (i, close) = opt(close_brace)(i)?;
    Ok((i, (open, members, close)))
}

/// `words [ block ] | block`, pushed to `out` before its block. Fails
/// without pushing anything, or succeeds.
fn statement<'a, 'b>(i: In<'a, 'b>, out: &mut Vec<Stmt<'a>>) -> IResult<In<'a, 'b>, ()> {
    let (rest, words, open) = match words_line(i) {
        Ok((_, [])) => return fail(i),
        Ok((rest, words)) => (rest, words, NO_POS),
        Err(_) => {
            // A bare block: its location is its `{` (set below).
            let (_, open) = open_brace(i)?;
            (i, &[][..], open)
        }
    };
    let at = out.len();
    out.push(Stmt {
        words,
        open_brace: open,
        close_brace: NO_POS,
        size: 0,
        members: 0,
    });
    let (rest, blk) = opt(|j| block(j, out))(rest)?;
    if let Some((open, members, close)) = blk {
        let size = offset(out.len() - at - 1);
        if let Some(s) = out.get_mut(at) {
            s.open_brace = open;
            s.close_brace = close.unwrap_or(NO_POS);
            s.size = size;
            s.members = offset(members);
        }
    }
    Ok((rest, ()))
}

/// A count as stored in a [`Stmt`] (a file holds far fewer than 4 G statements).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Parses the logical lines of a whole configuration into a flat tree.
pub(crate) fn parse<'a>(
    lines: In<'a, '_>,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Stmt<'a>> {
    let mut depth = 0usize;
    let mut words = 0usize;
    for l in lines.lines() {
        match l {
            Line::Open(loc) => {
                depth += 1;
                if depth > MAX_NESTING {
                    diags.push(diag(
                        Severity::Fatal,
                        sources.location(loc),
                        format!("blocks nested more than {MAX_NESTING} deep"),
                    ));
                    return Vec::new();
                }
            }
            Line::Close(_) => depth = depth.saturating_sub(1),
            Line::Words(_) => words += 1,
        }
    }
    // One statement per line of words, plus the bare blocks.
    let mut out = Vec::with_capacity(words);
    let mut rest = lines;
    while !rest.is_empty() {
        if let Ok((r, ())) = statement(rest, &mut out) {
            rest = r;
        } else if let Ok((r, loc)) = close_brace(rest) {
            diags.push(diag(
                Severity::Error,
                sources.location(loc),
                "Extra '}' found",
            ));
            rest = r;
        } else {
            // Every logical line is a statement or a '}', so this cannot
            // happen; report it anyway.
            diags.push(diag(
                Severity::Fatal,
                sources.location(first_location(rest)),
                "internal error: grammar failed",
            ));
            break;
        }
    }
    report_unclosed(&out, sources, diags);
    out
}

fn first_location(lines: In<'_, '_>) -> Pos {
    match lines.split_first().map(|(l, _)| l) {
        Some(Line::Open(l) | Line::Close(l)) => l,
        Some(Line::Words(w)) => w.first().map(|t| t.location).unwrap_or_default(),
        None => Pos::default(),
    }
}

/// Reports every block left open at end of file. Those form one chain (each
/// holds everything after its `{`), so the outermost one is searched, once,
/// for the block that probably lost its `}` (see [`misclosed`]).
fn report_unclosed(stmts: &[Stmt<'_>], sources: &Sources, diags: &mut Vec<Diagnostic>) {
    report_unclosed_in(stmts, sources, false, diags);
}

fn report_unclosed_in(
    stmts: &[Stmt<'_>],
    sources: &Sources,
    in_unclosed: bool,
    diags: &mut Vec<Diagnostic>,
) {
    for (s, block) in members(stmts) {
        let unclosed = s.open_brace().is_some() && s.close_brace().is_none();
        if let (Some(open), true) = (s.open_brace(), unclosed) {
            diags.push(diag(
                Severity::Error,
                sources.location(open),
                format!(
                    "missing '}}': the block of '{}' opened here is not closed at end of file",
                    s.keyword().text()
                ),
            ));
        }
        if unclosed && !in_unclosed {
            let indent = column(sources, s.location());
            let culprit = misclosed(block, indent, sources);
            if let Some((culprit, open, close)) = culprit {
                let mut d =
                    diag(
                        Severity::Error,
                        sources.location(open),
                        format!(
                        "'{}' is probably missing its '}}': the '}}' at line {}, indented like an \
                         outer block, was taken to close it, which leaves '{}' (line {}) unclosed",
                        culprit.keyword().text(), close.line, s.keyword().text(), s.location().line
                    ),
                    );
                // keepalived only counts the missing braces; this is dpvsd's hint.
                d.class = DiagClass::Dpvsd;
                diags.push(d);
            }
        }
        // A block left open holds every other one (they all end at end of
        // file), so a closed block has none inside.
        if unclosed {
            report_unclosed_in(block, sources, true, diags);
        }
    }
}

/// Where a `}` was probably forgotten inside a block left open at end of
/// file (whose keyword stands at visual column `parent_indent`): among the
/// closed blocks below, the first one (by the position of its `}`) whose `}`
/// stands on a later line, left of its keyword and nearer its parent's
/// indentation than its own, that is, indented like an outer block's `}`. Returns the
/// block with its `{` and `}`.
fn misclosed<'s, 'a>(
    stmts: &'s [Stmt<'a>],
    parent_indent: u32,
    sources: &Sources,
) -> Option<(&'s Stmt<'a>, Pos, Pos)> {
    let mut best: Option<(&Stmt<'a>, Pos, Pos)> = None;
    let mut consider = |found: (&'s Stmt<'a>, Pos, Pos)| {
        let pos = |l: Pos| (l.line, l.col);
        if best.is_none_or(|b| pos(found.2) < pos(b.2)) {
            best = Some(found);
        }
    };
    for (s, block) in members(stmts) {
        let indent = column(sources, s.location());
        if let (Some(open), Some(close)) = (s.open_brace(), s.close_brace()) {
            let close_col = column(sources, close);
            // Its `}` is left of its keyword and nearer the parent's indentation.
            if close.file == s.location().file
                && close.line > s.location().line
                && close_col < indent
                && close_col.abs_diff(parent_indent) < close_col.abs_diff(indent)
            {
                consider((s, open, close));
            }
        }
        if let Some(found) = misclosed(block, indent, sources) {
            consider(found);
        }
    }
    best
}

/// The visual column of a location: tabs before it advance to the next
/// multiple of 8; the character column when the line is not known.
fn column(sources: &Sources, loc: Pos) -> u32 {
    let line = sources.line_of(loc);
    let Some(line) = line else {
        return u32::from(loc.col);
    };
    let before = line.chars().take(usize::from(loc.col).saturating_sub(1));
    let width = before.fold(0u32, |w, c| if c == '\t' { (w / 8 + 1) * 8 } else { w + 1 });
    width + 1
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
        p.process_file(std::path::Path::new("t.conf"), text.as_bytes().to_vec());
        let mut pre = p.finish();
        let mut diags = std::mem::take(&mut pre.diagnostics);
        let words = std::mem::take(&mut pre.words);
        let tokens = crate::preprocess::tokens(&pre.text, &pre.sources, words);
        let ast = parse(In::new(&pre.items, &tokens), &pre.sources, &mut diags);
        (to_statements(&ast, &pre.sources), diags)
    }

    #[test]
    fn ast_is_keyword_agnostic() {
        // (About one statement per line of a large configuration.)
        #[cfg(target_pointer_width = "64")]
        assert_eq!(size_of::<Stmt<'_>>(), 40);
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
    fn a_lost_brace_is_blamed_on_the_block_whose_brace_is_outdented() {
        // CK's `}` is missing: rs's `}` (line 5) closes CK, vs's closes rs,
        // and vs swallows vs2. Tabs count to column 9, so CK is the block
        // whose `}` sits at its parent's indentation.
        let text = "vs {\n    rs {\n\tCK {\n\t\tretry 4\n    }\n}\nvs2 {\n}\n";
        let (_, diags) = parse_text(text);
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.location.line, d.location.col, d.class))
            .collect();
        assert_eq!(
            got,
            [(1, 4, DiagClass::Config), (3, 5, DiagClass::Dpvsd)],
            "{diags:#?}"
        );
        assert!(diags[1]
            .message
            .starts_with("'CK' is probably missing its '}'"));
        // A block closed one column off its keyword is not blamed.
        let (_, diags) = parse_text("vs {\n  rs {\n    x\n   }\n");
        assert_eq!(diags.len(), 1, "{diags:#?}");
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
