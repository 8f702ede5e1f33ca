//! Stage 1: the lexical layer of keepalived's `lib/parser.c` (KEEPALIVED.md §1).
//!
//! Physical lines → decommented, trimmed text → `@` conditionals → `$NAME=`
//! definitions → `~SEQ`/`~LST` → `$NAME` substitution (re-examined, as in
//! 2.2.7) → `include` → brace splitting → tokens.
//!
//! Invariants:
//! * every [`Token`] carries the file, line and column where it was written;
//!   text produced by a substitution carries the column of its `$`;
//! * every `{` and `}` outside double quotes becomes its own [`LogicalLine`];
//! * nothing here knows any keyword except `include`.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{DiagClass, Diagnostic, Location, Severity};

/// keepalived reads lines with `fgets` into a 1024-byte buffer (`MAXBUF`):
/// text plus newline plus NUL must fit.
const MAX_LINE_BYTES: usize = 1022;
/// Bound on nested re-examination (substitution, multiline parameters, `~SEQ`).
const MAX_DEPTH: usize = 32;
/// Bound on substitutions in one line (catches `$X=$X`).
const MAX_SUBSTITUTIONS: usize = 1000;
/// Bound on values produced by one `~SEQ`.
const MAX_SEQ_VALUES: usize = 100_000;
/// Bound on nested includes.
const MAX_INCLUDE_DEPTH: usize = 32;
/// The include keywords (all but `include` itself check what they include).
const INCLUDES: &[&str] = &[
    "include", "includer", "includem", "includew", "includeb", "includea",
];

/// One word of a configuration line, with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The word, with surrounding double quotes removed.
    pub text: String,
    /// Where the word (or the substitution that produced it) starts.
    pub location: Location,
    /// On the first word of a logical line only: the rest of the line as it
    /// stands after preprocessing (quotes kept), which keepalived's script
    /// tokeniser (`misc_path`, `notify*`, ...) reads instead of the words.
    pub rest: Option<String>,
}

/// One logical line: a braceless run of words, or a single brace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicalLine {
    Words(Vec<Token>),
    Open(Location),
    Close(Location),
}

/// A compact position in the files read: an index into [`Sources`] plus
/// the line and column. The pipeline carries these (8 bytes, `Copy`, no
/// reference count) and makes a [`Location`] only for what it keeps or
/// reports ([`Sources::location`]). A column fits in 16 bits because
/// longer lines than [`MAX_LINE_BYTES`] are dropped; file ids saturate at
/// 65535 files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: u32,
    pub file: u16,
    pub col: u16,
}

/// A [`Token`] as the loading pipeline passes it on: borrowed from the
/// preprocessor's output, so that no word is copied after preprocessing.
///
/// 32 bytes (a large configuration has about two per line): a word's rest
/// of the line follows it in the text it is borrowed from, so one slice
/// holds both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tok<'a> {
    /// The word, followed by its rest when it has one.
    span: &'a str,
    pub location: Pos,
    /// The length of the word in `span`.
    len: u32,
    has_rest: bool,
}

impl<'a> Tok<'a> {
    /// A word with no rest.
    pub const fn word(text: &'a str, location: Pos) -> Self {
        Tok {
            span: text,
            location,
            len: text.len() as u32,
            has_rest: false,
        }
    }

    /// The word, with surrounding double quotes removed.
    pub fn text(&self) -> &'a str {
        self.span.get(..self.len as usize).unwrap_or(self.span)
    }

    /// See [`Token::rest`].
    pub fn rest(&self) -> Option<&'a str> {
        self.has_rest
            .then(|| self.span.get(self.len as usize..).unwrap_or(""))
    }

    pub fn to_token(self, sources: &Sources) -> Token {
        Token {
            text: self.text().to_string(),
            location: sources.location(self.location),
            rest: self.rest().map(str::to_string),
        }
    }
}

/// A [`LogicalLine`] in the preprocessor's output.
#[derive(Debug)]
pub(crate) enum Item {
    /// A range of [`Preprocessed::tokens`].
    Words(Range<u32>),
    Open(Pos),
    Close(Pos),
}

/// A [`Token`] in the preprocessor's output: its text, followed by its
/// rest if it has one, is a range of [`Preprocessed::text`] (or of the
/// file read).
///
/// It has the size and alignment of a [`Tok`] (the range is a
/// `Range<usize>` for that), so that [`tokens`] turns the `Vec` of these
/// into the `Vec` of those in place, without a second buffer of a few tens
/// of megabytes for a large configuration (see the `tokens_reuse_the_words_buffer` test).
#[derive(Debug, Clone)]
pub(crate) struct FlatToken {
    span: Range<usize>,
    location: Pos,
    /// The length of the word in `span`.
    len: u32,
    has_rest: bool,
    /// The range is in the text of the file read (plain lines) rather
    /// than in [`Preprocessed::text`].
    in_source: bool,
}

/// A word as the general tokenizer produces it.
#[derive(Debug)]
struct Word {
    text: String,
    col: u32,
    rest: Option<String>,
}

/// Text with the 1-based column of every character in its physical line.
type Text = Vec<(char, u32)>;

/// A `$NAME` definition.
#[derive(Debug, Clone)]
enum Definition {
    Single(String),
    /// Each stored line is fed back as a separate configuration line.
    Multi(Vec<String>),
}

/// Where the line being processed comes from.
#[derive(Debug, Clone, Copy)]
struct Ctx<'a> {
    file: &'a Arc<Path>,
    /// The index of `file` in [`Sources`].
    id: u16,
    dir: &'a Path,
    line: u32,
}

impl Ctx<'_> {
    fn loc(&self, col: u32) -> Location {
        Location {
            file: Arc::clone(self.file),
            line: self.line,
            col,
        }
    }

    fn pos(&self, col: u32) -> Pos {
        Pos {
            file: self.id,
            line: self.line,
            col: u16::try_from(col).unwrap_or(u16::MAX),
        }
    }
}

/// The text of one file read (invalid UTF-8 replaced), for the caret
/// display and the indentation of blocks.
#[derive(Debug)]
pub(crate) struct Source {
    text: String,
    /// Where each physical line starts, computed on first use.
    starts: OnceCell<Vec<usize>>,
}

impl Source {
    fn new(text: String) -> Self {
        Source {
            text,
            starts: OnceCell::new(),
        }
    }

    /// Physical line `n` (1-based), without its `\n` or `\r\n`.
    pub fn line(&self, n: u32) -> Option<&str> {
        let idx = usize::try_from(n).ok()?.checked_sub(1)?;
        let starts = self
            .starts
            .get_or_init(|| physical_lines(&self.text).map(|(start, _)| start).collect());
        let start = *starts.get(idx)?;
        let end = starts.get(idx + 1).map_or(self.text.len(), |next| next - 1);
        let line = &self.text[start..end];
        let line = line.strip_suffix('\n').unwrap_or(line);
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

/// The physical lines of a file with their start offsets: split on `\n`,
/// one `\r` before it dropped; a final newline does not start another line.
fn physical_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut start = 0;
    (!text.is_empty())
        .then(|| body.split('\n'))
        .into_iter()
        .flatten()
        .map(move |l| {
            let at = start;
            start += l.len() + 1;
            (at, l.strip_suffix('\r').unwrap_or(l))
        })
}

/// A file read, with its text.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub path: Arc<Path>,
    pub source: Source,
}

/// Every file read, indexed by [`Pos::file`].
#[derive(Debug, Default)]
pub(crate) struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// The full location of a position.
    pub fn location(&self, p: Pos) -> Location {
        let file = self
            .files
            .get(p.file as usize)
            .map_or_else(|| Location::default().file, |f| Arc::clone(&f.path));
        Location {
            file,
            line: p.line,
            col: u32::from(p.col),
        }
    }

    /// The physical line a position stands on.
    pub fn line_of(&self, p: Pos) -> Option<&str> {
        self.files.get(p.file as usize)?.source.line(p.line)
    }

    /// The text of the file read from `path`.
    pub fn by_path(&self, path: &Path) -> Option<&Source> {
        let f = self.files.iter().find(|f| &*f.path == path)?;
        Some(&f.source)
    }

    /// The index of `path`, adding it (with no text yet) when new.
    fn intern(&mut self, path: &Path) -> u16 {
        if let Some(i) = self.files.iter().position(|f| &*f.path == path) {
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        if self.files.len() > usize::from(u16::MAX) {
            return u16::MAX;
        }
        self.files.push(SourceFile {
            path: Arc::from(path),
            source: Source::new(String::new()),
        });
        u16::try_from(self.files.len() - 1).unwrap_or(u16::MAX)
    }
}

/// The output of preprocessing.
#[derive(Debug, Default)]
pub(crate) struct Preprocessed {
    /// The logical lines.
    pub items: Vec<Item>,
    /// The words of all logical lines, in order.
    pub words: Vec<FlatToken>,
    /// The text of all words (and rests).
    pub text: String,
    pub diagnostics: Vec<Diagnostic>,
    /// The text of every file read.
    pub sources: Sources,
}

/// The words of [`Preprocessed::words`] over its `text`, indexed as by
/// [`Item::Words`]. (The caller may drop the flat words afterwards, so
/// that only one form of the words is held at a time.)
pub(crate) fn tokens<'a>(
    text: &'a str,
    sources: &'a Sources,
    words: Vec<FlatToken>,
) -> Vec<Tok<'a>> {
    words
        .into_iter()
        .map(|t| {
            let buf = if t.in_source {
                sources
                    .files
                    .get(t.location.file as usize)
                    .map_or("", |f| f.source.text.as_str())
            } else {
                text
            };
            Tok {
                span: buf.get(t.span).unwrap_or(""),
                location: t.location,
                len: t.len,
                has_rest: t.has_rest,
            }
        })
        .collect()
}

impl Preprocessed {
    /// Appends one logical line of words.
    fn push_words(&mut self, words: impl Iterator<Item = FlatToken>) {
        let start = self.words.len();
        self.words.extend(words);
        if self.words.len() > start {
            self.items
                .push(Item::Words(offset(start)..offset(self.words.len())));
        }
    }
}

/// An offset in the output (which is far smaller than 4 GiB for any real
/// configuration; a larger one saturates and its text reads as empty).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Stateful preprocessor (definitions persist across included files, as in keepalived).
#[derive(Debug)]
pub(crate) struct Preprocessor {
    config_id: String,
    defs: HashMap<String, Definition>,
    include_stack: Vec<PathBuf>,
    /// Set by a definition whose value ends in `\`; the file loop feeds it.
    pending_multi: Option<(String, Vec<String>)>,
    /// The state of `${_RANDOM}`'s generator (never 0).
    random_state: std::cell::Cell<u64>,
    /// Scratch space of [`Self::plain_line`].
    pieces: Vec<Piece>,
    out: Preprocessed,
}

impl Preprocessor {
    pub fn new(config_id: String) -> Self {
        Preprocessor {
            config_id,
            defs: HashMap::new(),
            include_stack: Vec::new(),
            pending_multi: None,
            random_state: std::cell::Cell::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
                    ^ u64::from(std::process::id()).rotate_left(32)
                    | 1,
            ),
            pieces: Vec::new(),
            out: Preprocessed::default(),
        }
    }

    pub fn finish(self) -> Preprocessed {
        self.out
    }

    fn diag(&mut self, severity: Severity, location: Location, message: impl Into<String>) {
        self.out.diagnostics.push(Diagnostic {
            severity,
            location,
            message: message.into(),
            source_line: None,
            class: DiagClass::Config,
        });
    }

    /// Processes the contents of one file (the main file or an included one).
    pub fn process_file(&mut self, file: &Path, bytes: Vec<u8>) {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let id = self.out.sources.intern(file);
        let file: Arc<Path> = Arc::from(file);
        // Roughly one logical line and two words per physical line (of at
        // least 16 bytes, usually): grow the output once.
        // (An estimate from the length: counting the newlines costs a scan
        // of the file, and capacity that is never written costs nothing.)
        let lines = text.len() / 16 + 16;
        self.out.items.reserve(lines);
        self.out.words.reserve(2 * lines);

        let mut multi: Option<(String, Vec<String>)> = None;
        // The physical lines as `physical_lines` splits them; the fast path
        // finds the end of its line itself, in the same pass.
        let mut next = 0;
        let mut idx = 0usize;
        while next < text.len() {
            let start = next;
            idx += 1;
            let ctx = Ctx {
                file: &file,
                id,
                dir: &dir,
                line: u32::try_from(idx).unwrap_or(u32::MAX),
            };
            if multi.is_none() {
                if let Some(after) = self.plain_line_at(&text, start, ctx) {
                    next = after;
                    continue;
                }
            }
            let end = text[start..].find('\n').map_or(text.len(), |p| start + p);
            next = end + 1;
            let raw = &text[start..end];
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.len() > MAX_LINE_BYTES {
                self.diag(Severity::Error, ctx.loc(1), "line too long - ignoring");
                continue;
            }
            // (The fast path leaves lines with a NUL to this one.)
            if raw.contains('\0') {
                self.diag(
                    Severity::Error,
                    ctx.loc(1),
                    "line contains a NUL character - ignoring",
                );
                continue;
            }
            if multi.is_none() && self.plain_line(raw, start, ctx) {
                continue;
            }
            let text: Text = raw.chars().zip(1u32..).collect();
            let text = trim(&self.decomment(&text, ctx));
            if let Some((name, mut lines)) = multi.take() {
                if text.is_empty() {
                    self.defs.insert(name, Definition::Multi(lines));
                } else if text.last().map(|c| c.0) == Some('\\') {
                    let s = to_string(&trim(&text[..text.len() - 1]));
                    if !s.is_empty() {
                        lines.push(s);
                    }
                    multi = Some((name, lines));
                } else {
                    lines.push(to_string(&text));
                    self.defs.insert(name, Definition::Multi(lines));
                }
                continue;
            }
            if text.is_empty() {
                continue;
            }
            self.line(text, ctx, 0);
            multi = self.pending_multi.take();
        }
        if let Some((name, lines)) = multi {
            self.defs.insert(name, Definition::Multi(lines));
        }
        if let Some(f) = self.out.sources.files.get_mut(id as usize) {
            f.source = Source::new(text);
        }
    }

    /// The fast path for the common line: ASCII up to its comment, with no
    /// `"`, `\\` or `$` there, not starting with `@` or `~`, and not an
    /// include. Such a line goes through steps 1–5 unchanged, so only the
    /// brace splitting and tokenizing of step 6 apply; they are done here in
    /// one pass over the text. Returns false (having done nothing) for any
    /// other line.
    fn plain_line(&mut self, raw: &str, line_start: usize, ctx: Ctx<'_>) -> bool {
        let bytes = raw.as_bytes();
        let mut pieces = std::mem::take(&mut self.pieces);
        pieces.clear();
        let mut i = 0;
        let plain = loop {
            let Some(&b) = bytes.get(i) else {
                break true;
            };
            match b {
                b' ' | b'\t' => i += 1,
                b'#' | b'!' => break true,
                b'{' | b'}' => {
                    pieces.push(Piece::Brace(i));
                    i += 1;
                }
                b'"' | b'\\' | b'$' | 0x80.. => break false,
                _ => {
                    let start = i;
                    while bytes.get(i).is_some_and(|&b| !ends_plain_word(b)) {
                        i += 1;
                    }
                    pieces.push(Piece::Word(start, i));
                }
            }
        };
        let plain = plain && !self.special_start(raw, &pieces);
        if plain {
            self.plain_pieces(raw, line_start, &pieces, ctx);
        }
        self.pieces = pieces;
        plain
    }

    /// [`Self::plain_line`] fused with finding the end of the line: the
    /// line starts at byte `start` of `text` and runs to the next `\n`.
    /// Returns where the next line starts when the line was plain (and has
    /// been emitted); `None`, having done nothing, for any other line and
    /// for those the general loop must look at first (too long, with a NUL,
    /// ending in `\r`), which then take the general path.
    fn plain_line_at(&mut self, text: &str, start: usize, ctx: Ctx<'_>) -> Option<usize> {
        let bytes = text.as_bytes().get(start..)?;
        let mut pieces = std::mem::take(&mut self.pieces);
        pieces.clear();
        // Indentation by spaces, eight or four at a time.
        let mut i = 0;
        while bytes.get(i..i + 8) == Some(b"        ") {
            i += 8;
        }
        while bytes.get(i..i + 4) == Some(b"    ") {
            i += 4;
        }
        // (end of the line's text, end of its words and braces)
        let ends = loop {
            let Some(&b) = bytes.get(i) else {
                break Some((i, i));
            };
            match PLAIN_CLASS[usize::from(b)] {
                BLANK => i += 1,
                WORD => {
                    let at = i;
                    i += 1;
                    while bytes
                        .get(i)
                        .is_some_and(|&b| PLAIN_CLASS[usize::from(b)] == WORD)
                    {
                        i += 1;
                    }
                    pieces.push(Piece::Word(at, i));
                }
                BRACE => {
                    pieces.push(Piece::Brace(i));
                    i += 1;
                }
                NEWLINE => break Some((i, i)),
                COMMENT => {
                    let end = bytes[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |p| i + p);
                    let comment = &bytes[i..end];
                    let plain = !comment.contains(&0) && !comment.ends_with(b"\r");
                    break plain.then_some((end, i));
                }
                _ => break None,
            }
        };
        let plain = ends
            .filter(|&(end, _)| end <= MAX_LINE_BYTES)
            .and_then(|(end, _)| {
                let raw = text.get(start..start + end)?;
                (!self.special_start(raw, &pieces)).then_some(raw)
            });
        if let Some(raw) = plain {
            self.plain_pieces(raw, start, &pieces, ctx);
        }
        self.pieces = pieces;
        plain.map(|raw| start + raw.len() + 1)
    }

    /// Whether a line, split into `pieces`, starts with `@` or `~`, or with
    /// an include keyword.
    fn special_start(&self, raw: &str, pieces: &[Piece]) -> bool {
        let Some(&Piece::Word(start, end)) = pieces.first() else {
            return false;
        };
        let text = &raw[start..];
        if text.starts_with(['@', '~']) {
            return true;
        }
        // The keyword runs to the first blank (a brace does not end it), so
        // it starts with `include` only when the first word does (the byte
        // after a shorter word is a brace or a comment sign).
        if !raw[start..end].starts_with("include") {
            return false;
        }
        let first_word = text
            .bytes()
            .position(is_blank_byte)
            .map_or(text, |p| &text[..p]);
        INCLUDES.contains(&first_word)
    }

    /// Emits the words and braces of a plain line (which starts at byte
    /// `line_start` of its file). Its words are unchanged text of the file,
    /// so they are ranges of it; the rest of the first word of each run of
    /// words runs to the next brace, else to the last word.
    fn plain_pieces(&mut self, raw: &str, line_start: usize, pieces: &[Piece], ctx: Ctx<'_>) {
        let out = &mut self.out;
        // The run of words being read: the index of its first word in
        // `out.words` and where that word ends.
        let mut run: Option<(usize, usize)> = None;
        let mut last_end = 0;
        // The first word's span runs to the end of its rest.
        let end_run = |out: &mut Preprocessed, (first, _): (usize, usize), end: usize| {
            if let Some(w) = out.words.get_mut(first) {
                w.span.end = line_start + end;
                w.has_rest = true;
            }
            out.items
                .push(Item::Words(offset(first)..offset(out.words.len())));
        };
        for &piece in pieces {
            match piece {
                Piece::Word(s, e) => {
                    if run.is_none() {
                        run = Some((out.words.len(), e));
                    }
                    out.words.push(FlatToken {
                        span: line_start + s..line_start + e,
                        location: ctx.pos(column(s)),
                        len: offset(e - s),
                        has_rest: false,
                        in_source: true,
                    });
                    last_end = e;
                }
                Piece::Brace(b) => {
                    if let Some(r) = run.take() {
                        end_run(out, r, b);
                    }
                    let loc = ctx.pos(column(b));
                    out.items.push(if raw.as_bytes()[b] == b'{' {
                        Item::Open(loc)
                    } else {
                        Item::Close(loc)
                    });
                }
            }
        }
        if let Some(r) = run {
            end_run(out, r, last_end);
        }
    }

    /// `decomment`: cuts unquoted `#`/`!` comments, turns `\#`/`\!` into
    /// literals, and reports an unbalanced `"`.
    fn decomment(&mut self, text: &[(char, u32)], ctx: Ctx<'_>) -> Text {
        let mut out = Vec::with_capacity(text.len());
        let mut quote: Option<u32> = None;
        let mut i = 0;
        while i < text.len() {
            let (c, col) = text[i];
            match c {
                '"' => {
                    quote = if quote.is_some() { None } else { Some(col) };
                    out.push((c, col));
                }
                '\\' if i + 1 < text.len() => {
                    let next = text[i + 1].0;
                    if quote.is_none() && (next == '#' || next == '!') {
                        out.push(text[i + 1]);
                    } else {
                        out.push((c, col));
                        out.push(text[i + 1]);
                    }
                    i += 1;
                }
                '#' | '!' if quote.is_none() => break,
                _ => out.push((c, col)),
            }
            i += 1;
        }
        if let Some(col) = quote {
            self.diag(Severity::Error, ctx.loc(col), "Unterminated quote");
        }
        out
    }

    /// Steps 1–6 of §1.7 for one non-empty, decommented, trimmed line.
    fn line(&mut self, text: Text, ctx: Ctx<'_>, depth: usize) {
        let first_col = text.first().map_or(1, |c| c.1);
        if depth > MAX_DEPTH {
            self.diag(
                Severity::Error,
                ctx.loc(first_col),
                "substitutions nested too deeply - line ignored",
            );
            return;
        }
        // 1. conditional
        let Some(text) = self.conditional(text) else {
            return;
        };
        // 2. definition
        if let Some((name, value)) = definition(&text) {
            if let Some(first) = value.strip_suffix('\\') {
                let first = first.trim().to_string();
                let lines = if first.is_empty() {
                    vec![]
                } else {
                    vec![first]
                };
                self.pending_multi = Some((name, lines));
            } else {
                self.defs.insert(name, Definition::Single(value));
            }
            return;
        }
        // 3. sequences
        if text.first().map(|c| c.0) == Some('~') && self.sequence(&text, ctx, depth) {
            return;
        }
        // 4. substitution; a multiline parameter alone on its line is re-fed line by line.
        if let Some(lines) = self.multiline_alone(&text) {
            for l in lines {
                let t: Text = l.chars().map(|c| (c, first_col)).collect();
                let t = trim(&self.decomment(&t, ctx));
                if !t.is_empty() {
                    self.line(t, ctx, depth + 1);
                }
            }
            return;
        }
        match self.substitute(&text, ctx) {
            Err(()) => return,
            Ok(Some((new, rehash))) => {
                let new = if rehash {
                    self.decomment(&new, ctx)
                } else {
                    new
                };
                let new = trim(&new);
                if !new.is_empty() {
                    // v2.2.7 re-examines a substituted line from the start.
                    self.line(new, ctx, depth + 1);
                }
                return;
            }
            Ok(None) => {}
        }
        // 5. include
        let s = to_string(&text);
        let word_end = s.find([' ', '\t']).unwrap_or(s.len());
        let first_word = &s[..word_end];
        if INCLUDES.contains(&first_word) {
            let skip = first_word.chars().count();
            self.include(first_word, &text[skip..], ctx);
            return;
        }
        // 6. braces and tokens
        self.emit(&text, ctx);
    }

    /// `@ID rest` / `@^ID rest`: `Some(rest)` when the line is kept.
    fn conditional(&self, text: Text) -> Option<Text> {
        if text.first().map(|c| c.0) != Some('@') {
            return Some(text);
        }
        let negate = text.get(1).map(|c| c.0) == Some('^');
        let start = if negate { 2 } else { 1 };
        let end = text[start..]
            .iter()
            .position(|c| is_blank(c.0))
            .map_or(text.len(), |p| p + start);
        let id = to_string(&text[start..end]);
        let rest = trim(&text[end..]);
        if rest.is_empty() || (id == self.config_id) == negate {
            None
        } else {
            Some(rest)
        }
    }

    fn multiline_alone(&self, text: &[(char, u32)]) -> Option<Vec<String>> {
        let s = to_string(text);
        let name = s
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .or_else(|| s.strip_prefix('$'))?;
        match self.defs.get(name) {
            Some(Definition::Multi(lines)) => Some(lines.clone()),
            _ => None,
        }
    }

    /// The value of a parameter, user definitions first, then the predefined ones.
    fn lookup(&self, name: &str, ctx: Ctx<'_>) -> Option<String> {
        if let Some(d) = self.defs.get(name) {
            return Some(match d {
                Definition::Single(v) => v.clone(),
                Definition::Multi(lines) => lines.join(" "),
            });
        }
        match name {
            "_PWD" => Some(
                std::fs::canonicalize(ctx.dir)
                    .unwrap_or_else(|_| ctx.dir.to_path_buf())
                    .display()
                    .to_string(),
            ),
            "_INSTANCE" => Some(self.config_id.clone()),
            "_HASH" => Some("#".into()),
            "_BANG" => Some("!".into()),
            _ if name.starts_with("_RANDOM") => self.random(&name["_RANDOM".len()..]),
            _ => {
                let var = name.strip_prefix("_ENV")?;
                if !var.starts_with([' ', '\t']) {
                    return None;
                }
                Some(std::env::var(var.trim()).unwrap_or_default())
            }
        }
    }

    /// `${_RANDOM [MIN [MAX]]}`: a number from MIN (0) to MAX (32767), as
    /// keepalived's `get_random` (`random() % (max - min + 1) + min`). Only
    /// blanks and decimal digits may follow the name. (keepalived's
    /// `random_seed` is not applied: the generator is seeded from the clock.)
    fn random(&self, params: &str) -> Option<String> {
        if !params.is_empty() && !params.starts_with([' ', '\t']) {
            return None;
        }
        if !params
            .bytes()
            .all(|b| b.is_ascii_digit() || is_blank_byte(b))
        {
            return None;
        }
        let mut nums = params
            .split_ascii_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or(u64::MAX));
        let min = nums.next().unwrap_or(0);
        let max = nums.next().unwrap_or(32767);
        // xorshift64*: plenty for a configuration parameter.
        let mut x = self.random_state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random_state.set(x);
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
        let span = max.wrapping_sub(min).wrapping_add(1);
        let value = if span == 0 { r } else { r % span };
        Some(value.wrapping_add(min).to_string())
    }

    /// Replaces `$NAME` / `${NAME}` recursively. `Ok(None)`: nothing replaced;
    /// `Ok(Some((text, rehash)))`: rehash when `_HASH`/`_BANG` was expanded.
    fn substitute(
        &mut self,
        text: &[(char, u32)],
        ctx: Ctx<'_>,
    ) -> Result<Option<Substituted>, ()> {
        let mut buf: Text = text.to_vec();
        let mut count = 0usize;
        let mut rehash = false;
        let mut i = 0;
        while i < buf.len() {
            if buf[i].0 != '$' {
                i += 1;
                continue;
            }
            let col = buf[i].1;
            let (name, end) = if buf.get(i + 1).map(|c| c.0) == Some('{') {
                match buf[i + 2..].iter().position(|c| c.0 == '}') {
                    Some(p) => (to_string(&buf[i + 2..i + 2 + p]), i + 3 + p),
                    None => {
                        i += 1;
                        continue;
                    }
                }
            } else {
                let len = buf[i + 1..]
                    .iter()
                    .take_while(|c| c.0.is_ascii_alphanumeric() || c.0 == '_')
                    .count();
                let end = i + 1 + len;
                let follows_ok = match buf.get(end) {
                    None => true,
                    Some(&(c, _)) => is_blank(c) || c == ',' || c == ')',
                };
                let starts_ok = buf
                    .get(i + 1)
                    .is_some_and(|c| c.0.is_ascii_alphabetic() || c.0 == '_');
                if !follows_ok || !starts_ok {
                    i += 1;
                    continue;
                }
                (to_string(&buf[i + 1..end]), end)
            };
            let Some(value) = self.lookup(&name, ctx) else {
                i += 1;
                continue;
            };
            count += 1;
            if count > MAX_SUBSTITUTIONS {
                self.diag(
                    Severity::Error,
                    ctx.loc(col),
                    format!(
                        "too many substitutions (recursive definition of '{name}'?) - line ignored"
                    ),
                );
                return Err(());
            }
            rehash |= name == "_HASH" || name == "_BANG";
            buf.splice(i..end, value.chars().map(|c| (c, col)));
            // The scan resumes at the point of replacement.
        }
        Ok((count > 0).then_some((buf, rehash)))
    }

    /// `~SEQ(...)`, `~SEQx(...)`, `~LST(...)`. Returns false when the line is not one.
    fn sequence(&mut self, text: &[(char, u32)], ctx: Ctx<'_>, depth: usize) -> bool {
        let s = to_string(text);
        let (kind, open) = if s.starts_with("~SEQ(") {
            (SeqKind::Dec, 5)
        } else if s.starts_with("~SEQx(") {
            (SeqKind::Hex, 6)
        } else if s.starts_with("~LST(") {
            (SeqKind::List, 5)
        } else {
            return false;
        };
        let loc = ctx.loc(text[0].1);
        let chars: Vec<char> = s.chars().collect();
        let mut nest = 0i32;
        let mut close = None;
        for (i, &c) in chars.iter().enumerate().skip(open) {
            match c {
                '{' => nest += 1,
                '}' => nest -= 1,
                ')' if nest == 0 => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            self.diag(
                Severity::Error,
                loc,
                "missing ')' in sequence - line ignored",
            );
            return true;
        };
        let inner: String = chars[open..close].iter().collect();
        let rest = trim(&text[close + 1..]);
        let iterations = match kind {
            SeqKind::List => list_values(&inner),
            SeqKind::Dec | SeqKind::Hex => seq_values(&inner, kind == SeqKind::Hex),
        };
        let (vars, rows) = match iterations {
            Ok(v) => v,
            Err(msg) => {
                self.diag(Severity::Error, loc, format!("{msg} - line ignored"));
                return true;
            }
        };
        if rest.is_empty() {
            return true;
        }
        let saved: Vec<Option<Definition>> = vars.iter().map(|v| self.defs.remove(v)).collect();
        for row in rows {
            for (var, value) in vars.iter().zip(row) {
                self.defs.insert(var.clone(), Definition::Single(value));
            }
            self.line(rest.clone(), ctx, depth + 1);
        }
        for (var, old) in vars.into_iter().zip(saved) {
            match old {
                Some(d) => self.defs.insert(var, d),
                None => self.defs.remove(&var),
            };
        }
        true
    }

    /// `include PATTERN`, relative to the including file's directory. The
    /// checked variants (`includer`, ...) turn the problems they check into
    /// [`DiagClass::IncludeFailed`] errors (`-t` exits 6), as
    /// `file_config_error` in keepalived 2.2.7's lib/parser.c does; plain
    /// `include` stays silent about missing files, as keepalived's log-only
    /// messages change nothing. (The `global_defs` `include_check` default
    /// is not applied.)
    fn include(&mut self, keyword: &str, rest: &[(char, u32)], ctx: Ctx<'_>) {
        let checks = IncludeChecks::of(keyword);
        let words = tokenize(rest);
        let Some(pattern) = words.first() else {
            self.diag(
                Severity::Error,
                ctx.loc(rest.first().map_or(1, |c| c.1)),
                format!("'{keyword}' without a file name"),
            );
            return;
        };
        let at = ctx.loc(pattern.col);
        if self.include_stack.len() >= MAX_INCLUDE_DEPTH {
            self.diag(Severity::Error, at, "includes nested too deeply - ignoring");
            return;
        }
        let (mut paths, mut missing, mut wildcards) = (Vec::new(), 0usize, false);
        for alternative in brace_expand(&pattern.text) {
            let full = if Path::new(&alternative).is_absolute() {
                alternative
            } else {
                let dir = glob::Pattern::escape(&ctx.dir.display().to_string());
                format!("{dir}/{alternative}")
            };
            let found = match glob::glob(&full) {
                Ok(p) => p.flatten().collect::<Vec<_>>(),
                Err(e) => {
                    self.diag(
                        Severity::Error,
                        at.clone(),
                        format!("invalid include pattern '{}': {e}", pattern.text),
                    );
                    continue;
                }
            };
            // keepalived's glob counts a literal name, or the directory
            // before a wildcard, that does not exist as missing.
            let first_wild = full.find(['*', '?', '[']);
            wildcards |= first_wild.is_some();
            if found.is_empty() {
                let missing_here = match first_wild {
                    None => true,
                    Some(w) => full[..w]
                        .rfind('/')
                        .is_some_and(|slash| !Path::new(&full[..=slash]).is_dir()),
                };
                missing += usize::from(missing_here);
            }
            paths.extend(found);
        }
        let brace = pattern.text.contains('{');
        if paths.is_empty() {
            if missing > 0 {
                let check = if brace { INCLUDE_B } else { INCLUDE_M };
                self.include_problem(
                    checks,
                    check,
                    &at,
                    format!("Config files missing '{}'.", pattern.text),
                    false,
                );
            } else if wildcards {
                self.include_problem(
                    checks,
                    INCLUDE_W,
                    &at,
                    format!("No config files matched '{}'.", pattern.text),
                    false,
                );
            }
            return;
        }
        if missing > 0 {
            self.include_problem(
                checks,
                INCLUDE_B,
                &at,
                format!("Some config files missing: \"{}\".", pattern.text),
                false,
            );
            if checks.0 & INCLUDE_B != 0 {
                return;
            }
        }
        for path in paths {
            self.include_one(&path, &at, checks);
        }
    }

    /// keepalived's `file_config_error`: an error that fails the load (exit
    /// 6) when `check` is among the include's checks. Otherwise keepalived
    /// only logs it; dpvsd then says nothing, except (with `note`) as a
    /// warning of its own that does not change the `-t` exit code.
    fn include_problem(
        &mut self,
        checks: IncludeChecks,
        check: u8,
        at: &Location,
        message: String,
        note: bool,
    ) {
        let (severity, class) = if checks.0 & check != 0 {
            (Severity::Error, DiagClass::IncludeFailed)
        } else if note {
            (Severity::Warning, DiagClass::Dpvsd)
        } else {
            return;
        };
        self.diag(severity, at.clone(), message);
        if let Some(d) = self.out.diagnostics.last_mut() {
            d.class = class;
        }
    }

    fn include_one(&mut self, path: &Path, at: &Location, checks: IncludeChecks) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            self.include_problem(
                checks,
                INCLUDE_R,
                at,
                format!(
                    "Configuration file '{}' is a directory - skipping",
                    path.display()
                ),
                false,
            );
            return;
        }
        if !meta.is_file() || is_executable(&meta) {
            self.include_problem(
                checks,
                INCLUDE_R,
                at,
                format!(
                    "Configuration file '{}' is not a regular non-executable file - skipping",
                    path.display()
                ),
                true,
            );
            return;
        }
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.include_stack.contains(&canon) {
            self.diag(
                Severity::Error,
                at.clone(),
                format!("{} includes itself - ignoring", path.display()),
            );
            return;
        }
        match std::fs::read(path) {
            Ok(bytes) => {
                self.include_stack.push(canon);
                self.process_file(path, bytes);
                self.include_stack.pop();
            }
            Err(e) => self.include_problem(
                checks,
                INCLUDE_R,
                at,
                format!(
                    "Configuration file '{}' open problem ({e}) - skipping",
                    path.display()
                ),
                true,
            ),
        }
    }

    /// Step 6: split on unquoted braces, tokenize the pieces.
    fn emit(&mut self, text: &[(char, u32)], ctx: Ctx<'_>) {
        let mut rest = trim(text);
        while !rest.is_empty() {
            let mut quote = false;
            let brace = rest.iter().position(|&(c, _)| {
                if c == '"' {
                    quote = !quote;
                }
                !quote && (c == '{' || c == '}')
            });
            let Some(at) = brace else {
                self.push_words(&rest, ctx);
                break;
            };
            if at > 0 {
                self.push_words(&rest[..at], ctx);
            }
            let (c, col) = rest[at];
            self.out.items.push(if c == '{' {
                Item::Open(ctx.pos(col))
            } else {
                Item::Close(ctx.pos(col))
            });
            rest = trim(&rest[at + 1..]);
        }
    }

    fn push_words(&mut self, text: &[(char, u32)], ctx: Ctx<'_>) {
        let arena = &mut self.out.text;
        let words: Vec<FlatToken> = tokenize(text)
            .into_iter()
            .map(|t| {
                // The rest right after the word (see `Tok`).
                let start = arena.len();
                arena.push_str(&t.text);
                arena.push_str(t.rest.as_deref().unwrap_or(""));
                FlatToken {
                    span: start..arena.len(),
                    len: offset(t.text.len()),
                    has_rest: t.rest.is_some(),
                    location: ctx.pos(t.col),
                    in_source: false,
                }
            })
            .collect();
        self.out.push_words(words.into_iter());
    }
}

/// keepalived's include checks (lib/parser.c `include_t`): error if a
/// file is not readable, if no file matches a name without wildcards, if
/// none matches even with wildcards, if a brace alternative is missing.
const INCLUDE_R: u8 = 1;
const INCLUDE_M: u8 = 2;
const INCLUDE_W: u8 = 4;
const INCLUDE_B: u8 = 8;

/// The checks of one include line.
#[derive(Debug, Clone, Copy)]
struct IncludeChecks(u8);

impl IncludeChecks {
    /// keepalived's `check_include`: `include` checks nothing, `includer`
    /// readability, `includem` also a match, `includew` also a wildcard
    /// match, `includeb` readability and braces, `includea` everything.
    fn of(keyword: &str) -> Self {
        IncludeChecks(match keyword {
            "includer" => INCLUDE_R,
            "includem" => INCLUDE_R | INCLUDE_M,
            "includew" => INCLUDE_R | INCLUDE_M | INCLUDE_W,
            "includeb" => INCLUDE_R | INCLUDE_B,
            "includea" => INCLUDE_R | INCLUDE_M | INCLUDE_W | INCLUDE_B,
            _ => 0,
        })
    }
}

/// A word (its byte range) or a brace (its offset) of a plain line.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Word(usize, usize),
    Brace(usize),
}

/// The bytes that end a word of a plain line (blanks, braces, comments)
/// or make the line not plain.
fn ends_plain_word(b: u8) -> bool {
    ENDS_PLAIN_WORD[usize::from(b)]
}

/// [`ends_plain_word`] as a table (one load per byte in the scanner's
/// inner loop).
static ENDS_PLAIN_WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = matches!(
            i as u8,
            b' ' | b'\t' | b'{' | b'}' | b'#' | b'!' | b'"' | b'\\' | b'$' | 0x80..
        );
        i += 1;
    }
    t
};

/// Byte classes of [`Preprocessor::plain_line_at`]: blanks, word
/// bytes, braces, the end of the line, the start of a comment; anything
/// else (a quote, `\\`, `$`, non-ASCII, a NUL, `\r`) makes the line not
/// plain.
const BLANK: u8 = 0;
const WORD: u8 = 1;
const BRACE: u8 = 2;
const NEWLINE: u8 = 3;
const COMMENT: u8 = 4;
const NOT_PLAIN: u8 = 5;

static PLAIN_CLASS: [u8; 256] = {
    let mut t = [WORD; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b' ' | b'\t' => BLANK,
            b'{' | b'}' => BRACE,
            b'\n' => NEWLINE,
            b'#' | b'!' => COMMENT,
            b'"' | b'\\' | b'$' | b'\r' | 0 | 0x80.. => NOT_PLAIN,
            _ => WORD,
        };
        i += 1;
    }
    t
};

/// A substituted line and whether it must be decommented again.
type Substituted = (Text, bool);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqKind {
    Dec,
    Hex,
    List,
}

type Iterations = (Vec<String>, Vec<Vec<String>>);

/// `var, [start,] [step,] end` → the variable and its values.
fn seq_values(inner: &str, hex: bool) -> Result<Iterations, String> {
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    let (var, nums) = parts
        .split_first()
        .ok_or_else(|| "empty ~SEQ".to_string())?;
    if var.is_empty() {
        return Err("~SEQ has no variable name".into());
    }
    let nums: Vec<i64> = nums
        .iter()
        .map(|n| {
            n.parse::<i64>()
                .map_err(|_| format!("invalid number '{n}' in ~SEQ"))
        })
        .collect::<Result<_, _>>()?;
    let (start, step, end) = match nums[..] {
        [end] => (if end < 0 { -1 } else { 1 }, None, end),
        [start, end] => (start, None, end),
        [start, step, end] => (start, Some(step), end),
        _ => return Err("~SEQ needs 1 to 3 numbers after the variable".into()),
    };
    let step = step.unwrap_or(if end >= start { 1 } else { -1 });
    if step == 0 || (step > 0 && end < start) || (step < 0 && end > start) {
        return Err(format!(
            "~SEQ step {step} goes the wrong way from {start} to {end}"
        ));
    }
    if hex && (start < 0 || end < 0) {
        return Err("~SEQx needs non-negative values".into());
    }
    let mut values = Vec::new();
    let mut v = start;
    while (step > 0 && v <= end) || (step < 0 && v >= end) {
        if values.len() >= MAX_SEQ_VALUES {
            return Err(format!("~SEQ produces more than {MAX_SEQ_VALUES} values"));
        }
        values.push(vec![if hex { format!("{v:x}") } else { v.to_string() }]);
        match v.checked_add(step) {
            Some(n) => v = n,
            None => break,
        }
    }
    Ok((vec![(*var).to_string()], values))
}

/// `var, v1, v2...` or `{a,b}, {1,2}, {3,4}`.
fn list_values(inner: &str) -> Result<Iterations, String> {
    let parts = split_top_level(inner);
    let (vars, values) = parts
        .split_first()
        .ok_or_else(|| "empty ~LST".to_string())?;
    let unbrace = |s: &str| -> Vec<String> {
        match s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(r) => r.split(',').map(|x| x.trim().to_string()).collect(),
            None => vec![s.to_string()],
        }
    };
    let vars = unbrace(vars);
    if vars.iter().any(String::is_empty) {
        return Err("~LST has an empty variable name".into());
    }
    let rows = values
        .iter()
        .map(|v| {
            let mut row = unbrace(v);
            row.resize(vars.len(), String::new());
            row
        })
        .collect();
    Ok((vars, rows))
}

/// Splits on commas that are not inside `{}`, trimming each part.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut nest = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' => nest += 1,
            '}' => nest -= 1,
            ',' if nest == 0 => {
                parts.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur.trim().to_string());
    parts
}

/// csh-style brace expansion (`GLOB_BRACE`): `a{b,c{d,e}}` → `ab`, `acd`, `ace`.
pub(crate) fn brace_expand(s: &str) -> Vec<String> {
    let Some(open) = s.find('{') else {
        return vec![s.to_string()];
    };
    let mut nest = 0;
    let mut close = None;
    for (i, c) in s[open..].char_indices() {
        match c {
            '{' => nest += 1,
            '}' => {
                nest -= 1;
                if nest == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![s.to_string()];
    };
    let inner = &s[open + 1..close];
    if inner.is_empty() {
        return vec![s.to_string()];
    }
    let mut alts = Vec::new();
    let mut nest = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => nest += 1,
            '}' => nest -= 1,
            ',' if nest == 0 => {
                alts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    alts.push(&inner[start..]);
    alts.into_iter()
        .flat_map(|alt| brace_expand(&format!("{}{alt}{}", &s[..open], &s[close + 1..])))
        .collect()
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// `$NAME=VALUE` (no blank before `=`): the name and the value after leading blanks.
fn definition(text: &[(char, u32)]) -> Option<(String, String)> {
    let s = to_string(text);
    let rest = s.strip_prefix('$')?;
    let name_len = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .count();
    let name = &rest[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let value = rest[name_len..].strip_prefix('=')?;
    Some((
        name.to_string(),
        value.trim_start_matches([' ', '\t']).to_string(),
    ))
}

/// keepalived's normal tokenizer (`alloc_strvec`).
fn tokenize(text: &[(char, u32)]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < text.len() && is_blank(text[i].0) {
            i += 1;
        }
        if i >= text.len() {
            break;
        }
        let (c, col) = text[i];
        if c == '#' || c == '!' {
            break;
        }
        let mut word = String::new();
        if c == '"' {
            i += 1;
            while i < text.len() && text[i].0 != '"' {
                word.push(text[i].0);
                i += 1;
            }
            i += 1;
        } else {
            while i < text.len() && !is_blank(text[i].0) && text[i].0 != '"' {
                word.push(text[i].0);
                i += 1;
            }
        }
        let rest = words
            .is_empty()
            .then(|| text[i.min(text.len())..].iter().map(|c| c.0).collect());
        words.push(Word {
            text: word,
            col,
            rest,
        });
    }
    words
}

/// The 1-based column of byte `offset` of an ASCII line.
fn column(offset: usize) -> u32 {
    u32::try_from(offset + 1).unwrap_or(u32::MAX)
}

fn is_blank_byte(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn trim(text: &[(char, u32)]) -> Text {
    let start = text
        .iter()
        .position(|c| !is_blank(c.0))
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|c| !is_blank(c.0))
        .map_or(start, |p| p + 1);
    text[start..end.max(start)].to_vec()
}

fn to_string(text: &[(char, u32)]) -> String {
    text.iter().map(|c| c.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Preprocessed {
        /// The logical lines in their owned form.
        fn lines(&self) -> Vec<LogicalLine> {
            let tokens = tokens(&self.text, &self.sources, self.words.clone());
            let src = &self.sources;
            self.items
                .iter()
                .map(|item| match item {
                    Item::Words(r) => LogicalLine::Words(
                        tokens[r.start as usize..r.end as usize]
                            .iter()
                            .map(|t| t.to_token(src))
                            .collect(),
                    ),
                    Item::Open(l) => LogicalLine::Open(src.location(*l)),
                    Item::Close(l) => LogicalLine::Close(src.location(*l)),
                })
                .collect()
        }
    }

    fn run(text: &str, id: &str) -> Preprocessed {
        let mut p = Preprocessor::new(id.to_string());
        p.process_file(Path::new("/cfg/test.conf"), text.as_bytes().to_vec());
        p.finish()
    }

    /// Logical lines rendered as `word word` / `{` / `}`.
    fn lines(text: &str) -> Vec<String> {
        render(&run(text, "main"))
    }

    fn render(p: &Preprocessed) -> Vec<String> {
        p.lines()
            .iter()
            .map(|l| match l {
                LogicalLine::Words(w) => w
                    .iter()
                    .map(|t| t.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                LogicalLine::Open(_) => "{".into(),
                LogicalLine::Close(_) => "}".into(),
            })
            .collect()
    }

    fn first_token(p: &Preprocessed) -> Token {
        match p.lines().into_iter().next() {
            Some(LogicalLine::Words(w)) => w[0].clone(),
            other => panic!("expected words, got {other:?}"),
        }
    }

    #[test]
    fn comments_anywhere_but_in_double_quotes() {
        assert_eq!(lines("a b # c\n! all\nd ! e"), ["a b", "d"]);
        assert_eq!(lines("x \"a # b\" c"), ["x a # b c"]);
        // Single quotes do not protect.
        assert_eq!(lines("x 'a # b'"), ["x 'a"]);
        assert_eq!(lines("pass a\\#b\\!c"), ["pass a#b!c"]);
    }

    #[test]
    fn unterminated_quote_is_an_error_at_the_quote() {
        let p = run("router_id \"abc", "main");
        assert_eq!(p.diagnostics.len(), 1);
        assert_eq!(p.diagnostics[0].message, "Unterminated quote");
        assert_eq!(p.diagnostics[0].location.col, 11);
        assert_eq!(render(&p), ["router_id abc"]);
    }

    #[test]
    fn braces_split_into_their_own_lines() {
        assert_eq!(lines("a { b } c"), ["a", "{", "b", "}", "c"]);
        assert_eq!(lines("a\n{\n}"), ["a", "{", "}"]);
        assert_eq!(lines("x \"{\" }"), ["x {", "}"]);
        assert_eq!(lines("{b}}"), ["{", "b", "}", "}"]);
    }

    #[test]
    fn tokens_keep_line_and_column() {
        let p = run("\n\n  \tweight   7 {", "main");
        let LogicalLine::Words(w) = &p.lines()[0] else {
            panic!("expected words");
        };
        assert_eq!((w[0].location.line, w[0].location.col), (3, 4));
        assert_eq!((w[1].location.line, w[1].location.col), (3, 13));
        assert_eq!(
            p.lines()[1],
            LogicalLine::Open(Location {
                file: Path::new("/cfg/test.conf").into(),
                line: 3,
                col: 15
            })
        );
    }

    #[test]
    fn tokenizer_quotes() {
        assert_eq!(
            run("a \"b c\"d 'e f'", "main").lines(),
            vec![LogicalLine::Words(vec![
                Token {
                    text: "a".into(),
                    location: Location {
                        file: Path::new("/cfg/test.conf").into(),
                        line: 1,
                        col: 1
                    },
                    rest: Some(r#" "b c"d 'e f'"#.into()),
                },
                Token {
                    text: "b c".into(),
                    location: Location {
                        file: Path::new("/cfg/test.conf").into(),
                        line: 1,
                        col: 3
                    },
                    rest: None,
                },
                Token {
                    text: "d".into(),
                    location: Location {
                        file: Path::new("/cfg/test.conf").into(),
                        line: 1,
                        col: 8
                    },
                    rest: None,
                },
                Token {
                    text: "'e".into(),
                    location: Location {
                        file: Path::new("/cfg/test.conf").into(),
                        line: 1,
                        col: 10
                    },
                    rest: None,
                },
                Token {
                    text: "f'".into(),
                    location: Location {
                        file: Path::new("/cfg/test.conf").into(),
                        line: 1,
                        col: 13
                    },
                    rest: None,
                },
            ])]
        );
    }

    #[test]
    fn long_lines_are_dropped_with_an_error() {
        let text = format!("a\n{}\nb\r\n", "x".repeat(2000));
        let p = run(&text, "main");
        assert_eq!(render(&p), ["a", "b"]);
        assert_eq!(p.diagnostics.len(), 1);
        assert_eq!(p.diagnostics[0].location.line, 2);
        assert_eq!(p.diagnostics[0].message, "line too long - ignoring");
        assert_eq!(lines(&"y".repeat(1000)).len(), 1);
    }

    #[test]
    fn line_ends_limits_nul_and_cr_on_the_fast_path() {
        let max = "x".repeat(MAX_LINE_BYTES);
        // At the limit (also with its `\r` and in a comment) a line is read;
        // one byte more and it is dropped.
        let comment = format!("# {}", "c".repeat(MAX_LINE_BYTES - 2));
        let text = format!("{max}\n{max}\r\n{max}y\n{comment}\r\n{comment}c\nz {{ \r\n");
        let p = run(&text, "main");
        assert_eq!(render(&p), [max.as_str(), max.as_str(), "z", "{"]);
        let dropped: Vec<_> = p.diagnostics.iter().map(|d| d.location.line).collect();
        assert_eq!(dropped, [3, 5]);
        // A NUL anywhere, comments included, drops the line; a `\r` that
        // does not end the line is part of a word.
        let p = run("a\0\nb # \0\nc\rd e\n\n!\nf\n", "main");
        assert_eq!(render(&p), ["c\rd e", "f"]);
        let dropped: Vec<_> = p.diagnostics.iter().map(|d| d.location.line).collect();
        assert_eq!(dropped, [1, 2]);
        assert_eq!(p.items.len(), 2);
        assert!(lines("").is_empty());
        assert_eq!(lines("\n\nq"), ["q"]);
    }

    #[test]
    fn conditionals_follow_the_config_id() {
        let text = "@main a\n@other b\n@^main c\n@^other d\n@main\n";
        assert_eq!(lines(text), ["a", "d"]);
        assert_eq!(render(&run(text, "other")), ["b", "c"]);
    }

    #[test]
    fn definitions_and_substitution() {
        let text = "$A=1\n$B=x$A\nv $B ${A}2 $A,$A) $Ab\n$A =9\n";
        // `$Ab` is not followed by a separator; `$A =9` substitutes instead of defining.
        assert_eq!(lines(text), ["v x1 12 1,1) $Ab", "1 =9"]);
    }

    #[test]
    fn undefined_names_are_left_as_is() {
        assert_eq!(lines("a $U b"), ["a $U b"]);
        assert_eq!(lines("a ${U}"), ["a $", "{", "U", "}"]);
    }

    #[test]
    fn substitution_is_recursive_and_lazy() {
        assert_eq!(lines("$A=$B\n$B=1\nx $A\n$B=2\nx $A"), ["x 1", "x 2"]);
        let p = run("$L=$L$L\nx $L", "main");
        assert!(render(&p).is_empty());
        assert_eq!(p.diagnostics.len(), 1);
    }

    #[test]
    fn substituted_text_is_re_examined() {
        // v2.2.7: a substitution can produce an @ prefix (man page's $IF_MAIN=@main).
        assert_eq!(
            lines("$IF_MAIN=@main\n$IF_MAIN kept\n$NOT=@other\n$NOT dropped"),
            ["kept"]
        );
        assert_eq!(lines("a${_HASH}b\n\"a${_BANG}b\""), ["a", "a!b"]);
    }

    #[test]
    fn substituted_tokens_have_the_column_of_the_dollar() {
        let p = run("$X=hello\n  $X", "main");
        let t = first_token(&p);
        assert_eq!(
            (t.text.as_str(), t.location.line, t.location.col),
            ("hello", 2, 3)
        );
    }

    #[test]
    fn tokens_reuse_the_words_buffer() {
        // (And stay small: about two per line of a large configuration.)
        #[cfg(target_pointer_width = "64")]
        assert_eq!(size_of::<Tok<'_>>(), 32);
        assert_eq!(
            (size_of::<FlatToken>(), align_of::<FlatToken>()),
            (size_of::<Tok<'_>>(), align_of::<Tok<'_>>())
        );
        let mut p = run("a b {\n c \"d e\"\n}\n", "id");
        let words = std::mem::take(&mut p.words);
        let (at, n) = (words.as_ptr() as usize, words.len());
        let toks = tokens(&p.text, &p.sources, words);
        assert_eq!((toks.as_ptr() as usize, toks.len()), (at, n));
        let text: Vec<_> = toks.iter().map(|t| t.text()).collect();
        assert_eq!(text, ["a", "b", "c", "d e"]);
    }

    #[test]
    fn predefined_parameters() {
        assert_eq!(lines("${_INSTANCE}"), ["main"]);
        // ${_RANDOM [MIN [MAX]]}: 0..=32767 by default.
        for _ in 0..200 {
            let v: Vec<u64> = lines("${_RANDOM} ${_RANDOM 5} ${_RANDOM 7 9} ${_RANDOM 4 4}")[0]
                .split(' ')
                .map(|n| n.parse().expect("a number"))
                .collect();
            assert!(v[0] <= 32767 && (5..=32767).contains(&v[1]), "{v:?}");
            assert!((7..=9).contains(&v[2]) && v[3] == 4, "{v:?}");
        }
        let many: std::collections::HashSet<String> = (0..50)
            .map(|_| lines("${_RANDOM 0 1000000}")[0].clone())
            .collect();
        assert!(many.len() > 1, "not random: {many:?}");
        // ${_ENV NAME}: the environment variable (empty when unset).
        let path = std::env::var("PATH").unwrap_or_default();
        if !path.is_empty() && !path.contains([' ', '\t', '#', '!', '"', '{', '}']) {
            assert_eq!(lines("x ${_ENV PATH}"), [format!("x {path}")]);
        }
        assert_eq!(lines("x ${_ENV DPVSD_SURELY_UNSET_VARIABLE} y"), ["x y"]);
        // Anything but blanks and digits after the name: not the parameter.
        assert_eq!(lines("${_RANDOM x}"), ["$", "{", "_RANDOM x", "}"]);
        let p = run("x ${_PWD}", "id");
        assert_eq!(render(&p), ["x /cfg"]);
    }

    #[test]
    fn multiline_definitions() {
        let text = "$RS=\\\nreal_server $IP 80 { \\\n weight 2 \\\n}\n$IP=10.0.0.1\n$RS\n";
        assert_eq!(
            lines(text),
            ["real_server 10.0.0.1 80", "{", "weight 2", "}"]
        );
        // An empty line ends a definition.
        assert_eq!(lines("$M=a \\\nb \\\n\nc\n$M"), ["c", "a", "b"]);
    }

    #[test]
    fn sequences() {
        assert_eq!(lines("~SEQ(i,3) x$i"), ["x1", "x2", "x3"]);
        assert_eq!(lines("~SEQ(i,3) x $i"), ["x 1", "x 2", "x 3"]);
        assert_eq!(lines("~SEQ(i,5,3) $i"), ["5", "4", "3"]);
        assert_eq!(lines("~SEQ(i,0,5,10) $i"), ["0", "5", "10"]);
        assert_eq!(lines("~SEQ(i,-2) $i"), ["-1", "-2"]);
        assert_eq!(lines("~SEQx(H,10,8,26) $H"), ["a", "12", "1a"]);
        assert_eq!(
            lines("~SEQ(a,2) ~SEQ(b,2) $a $b"),
            ["1 1", "1 2", "2 1", "2 2"]
        );
        let p = run("~SEQ(i,1,-1,5) $i", "main");
        assert!(p.lines().is_empty());
        assert_eq!(p.diagnostics.len(), 1);
    }

    #[test]
    fn lists() {
        assert_eq!(lines("~LST(v, a, b) $v"), ["a", "b"]);
        assert_eq!(lines("~LST({a,b}, {1,2}, {3}) $a $b"), ["1 2", "3"]);
    }

    #[test]
    fn brace_expansion_like_csh() {
        assert_eq!(brace_expand("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(brace_expand("x{}y"), ["x{}y"]);
        assert_eq!(brace_expand("plain"), ["plain"]);
    }

    /// The fast path's output for one physical line, and the general path's.
    fn both_paths(raw: &str) -> (bool, Vec<LogicalLine>, Vec<LogicalLine>) {
        let file: Arc<Path> = Arc::from(Path::new("/cfg/test.conf"));
        let mut fast = Preprocessor::new("main".into());
        let id = fast.out.sources.intern(&file);
        fast.out.sources.files[id as usize].source = Source::new(raw.to_string());
        let ctx = Ctx {
            file: &file,
            id,
            dir: Path::new("/cfg"),
            line: 1,
        };
        let handled = fast.plain_line(raw, 0, ctx);
        // The fused fast path, on the line followed by another one.
        let mut fused = Preprocessor::new("main".into());
        fused.out.sources.intern(&file);
        fused.out.sources.files[id as usize].source = Source::new(raw.to_string());
        let next = fused.plain_line_at(&format!("{raw}\nnext {{\n"), 0, ctx);
        // (The lines tested have no NUL or `\r`, and are short.)
        assert_eq!(next.is_some(), handled, "{raw:?}");
        if next.is_some() {
            assert_eq!(next, Some(raw.len() + 1), "{raw:?}");
        }
        let mut general = Preprocessor::new("main".into());
        general.out.sources.intern(&file);
        let text: Text = raw.chars().zip(1u32..).collect();
        let text = trim(&general.decomment(&text, ctx));
        if !text.is_empty() {
            general.line(text, ctx, 0);
        }
        let general = general.finish();
        assert!(general.diagnostics.is_empty() || !handled, "{raw:?}");
        let fast = fast.finish().lines();
        assert_eq!(fused.finish().lines(), fast, "{raw:?}");
        (handled, fast, general.lines())
    }

    #[test]
    fn the_fast_path_takes_only_plain_lines() {
        for (raw, plain) in [
            ("\tweight 1 {  # c", true),
            // The keyword runs to the first blank: this is no include.
            ("includer{x}", true),
            ("include x", false),
            ("@main a", false),
            (" ~SEQ(i,2) $i", false),
            ("a \"b\"", false),
            ("a$B", false),
            ("a\\#b", false),
            ("caf\u{e9} 1", false),
        ] {
            let (handled, fast, general) = both_paths(raw);
            assert_eq!(handled, plain, "{raw:?}");
            if handled {
                assert_eq!(fast, general, "{raw:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_general_one(
            raw in "[ \t{}a-z0-9_.#!@~$\"]{0,40}|(include|includer)[ {a-z]{0,10}"
        ) {
            let (handled, fast, general) = both_paths(&raw);
            if handled {
                proptest::prop_assert_eq!(fast, general, "{:?}", raw);
            }
        }
    }
}
