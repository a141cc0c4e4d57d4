//! Path templates of `google.api.http` rules.
//!
//! This module owns the parser for the template grammar of
//! `google/api/http.proto` and the parsed form, [`PathTemplate`]:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! Beyond the grammar it enforces what the specification says in prose:
//! `{var}` means `{var=*}`, `**` may only be the last segment, variables do not
//! nest and a field path is bound at most once. As an extension shared with
//! grpc-gateway, the template `/` (no segments) is accepted for a root route.
//! A LITERAL is one or more URL path characters (RFC 3986 `pchar` without `:`,
//! `=` and `*`, which the grammar uses), percent escapes included.
//!
//! It only parses: matching requests against templates is the route table's
//! job (`crate::routes`), and nothing here knows about descriptors.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// A parsed `google.api.http` path template, such as `/v1/{name=shelves/*/books/*}:publish`.
///
/// Built only by [`PathTemplate::parse`], so its invariants hold: at least one
/// segment unless it is the root template `/`, `**` only last, variables cover
/// disjoint, non-empty ranges of [`segments`](Self::segments) in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathTemplate {
    segments: Vec<Segment>,
    verb: Option<String>,
    variables: Vec<Variable>,
}

/// One path segment of a template, variables already flattened into their segments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A literal segment, as written (percent escapes not decoded).
    Literal(String),
    /// `*`: exactly one non-empty path segment.
    Wildcard,
    /// `**`: zero or more path segments, to the end of the path (before the verb).
    DoubleWildcard,
}

/// A variable of a template: the request field it binds and the segments it covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Variable {
    /// The field path, one identifier per element (`{book.name}` is `["book", "name"]`).
    pub field_path: Vec<String>,
    /// The range of [`PathTemplate::segments`] the variable covers.
    pub segments: Range<usize>,
}

impl Variable {
    /// The field path joined with dots, as written in the template (`book.name`).
    pub fn dotted(&self) -> String {
        self.field_path.join(".")
    }
}

/// Why a template does not parse, with the byte position in the template where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template `{template}` at byte {position}: {kind}")]
pub struct TemplateError {
    /// The template as given.
    pub template: String,
    /// Byte offset in `template` of the offending character (its length when the template ends early).
    pub position: usize,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

/// The kinds of [`TemplateError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateErrorKind {
    /// The template does not begin with `/`.
    #[error("a template must begin with `/`")]
    MissingLeadingSlash,
    /// A segment is empty (`//`, a trailing `/`, `{x=}`).
    #[error("empty segment")]
    EmptySegment,
    /// A character that cannot appear here.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// The template ended where something else was expected.
    #[error("unexpected end, expected {0}")]
    UnexpectedEnd(&'static str),
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent escape")]
    BadPercentEscape,
    /// A variable inside a variable.
    #[error("variables cannot be nested")]
    NestedVariable,
    /// A field path that is not `IDENT { "." IDENT }`.
    #[error("invalid field path, expected IDENT {{ \".\" IDENT }}")]
    BadFieldPath,
    /// The same field path bound twice.
    #[error("field path `{0}` is bound twice")]
    DuplicateVariable(String),
    /// `**` followed by another segment.
    #[error("`**` must be the last segment")]
    DoubleWildcardNotLast,
    /// `:` with nothing after it.
    #[error("empty verb")]
    EmptyVerb,
}

impl PathTemplate {
    /// Parses a template, such as `/v1/{name=shelves/*}/books:search`.
    pub fn parse(template: &str) -> Result<PathTemplate, TemplateError> {
        Parser {
            src: template,
            pos: 0,
            segments: Vec::new(),
            segment_positions: Vec::new(),
            variables: Vec::new(),
        }
        .parse()
    }

    /// The segments, variables flattened (`/a/{b=c/*}` is `[a, c, *]`).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The verb without its `:`, if the template has one.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// The variables in the order they appear.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// Whether the last segment is `**`.
    pub fn ends_with_double_wildcard(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::DoubleWildcard))
    }
}

impl FromStr for PathTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathTemplate::parse(s)
    }
}

/// The canonical form: `{x=*}` is written `{x}`, everything else as parsed.
impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        let mut vars = self.variables.iter().peekable();
        let mut i = 0;
        while i < self.segments.len() {
            f.write_str("/")?;
            match vars.peek() {
                Some(var) if var.segments.start == i => {
                    write!(f, "{{{}", var.field_path.join("."))?;
                    let inner = &self.segments[var.segments.clone()];
                    if inner != [Segment::Wildcard] {
                        f.write_str("=")?;
                        for (n, seg) in inner.iter().enumerate() {
                            if n > 0 {
                                f.write_str("/")?;
                            }
                            write!(f, "{seg}")?;
                        }
                    }
                    f.write_str("}")?;
                    i = var.segments.end;
                    vars.next();
                }
                _ => {
                    write!(f, "{}", self.segments[i])?;
                    i += 1;
                }
            }
        }
        if let Some(verb) = &self.verb {
            write!(f, ":{verb}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Literal(s) => f.write_str(s),
            Segment::Wildcard => f.write_str("*"),
            Segment::DoubleWildcard => f.write_str("**"),
        }
    }
}

/// Characters of a LITERAL besides `%` escapes: RFC 3986 `unreserved` and
/// `sub-delims` plus `@`, without `*` and `=` (template syntax). `:` is left
/// out too: it introduces the verb.
fn is_literal_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'+'
                | b','
                | b';'
                | b'@'
        )
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    segments: Vec<Segment>,
    /// Byte position of each segment, for errors found after parsing it.
    segment_positions: Vec<usize>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    fn parse(mut self) -> Result<PathTemplate, TemplateError> {
        if !self.src.starts_with('/') {
            return Err(self.error_at(0, TemplateErrorKind::MissingLeadingSlash));
        }
        self.pos = 1;
        if self.src.len() == 1 {
            return Ok(PathTemplate {
                segments: Vec::new(),
                verb: None,
                variables: Vec::new(),
            });
        }
        self.segments_rule(false)?;
        let verb = match self.peek() {
            Some(b':') => {
                self.pos += 1;
                let verb = self.literal()?;
                if verb.is_empty() {
                    return Err(self.error(TemplateErrorKind::EmptyVerb));
                }
                Some(verb)
            }
            _ => None,
        };
        if let Some(c) = self.peek_char() {
            return Err(self.error(TemplateErrorKind::UnexpectedChar(c)));
        }
        if let Some(i) = self.segments[..self.segments.len() - 1]
            .iter()
            .position(|s| *s == Segment::DoubleWildcard)
        {
            let position = self.segment_positions[i];
            return Err(self.error_at(position, TemplateErrorKind::DoubleWildcardNotLast));
        }
        Ok(PathTemplate {
            segments: self.segments,
            verb,
            variables: self.variables,
        })
    }

    fn segments_rule(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        loop {
            self.segment(in_variable)?;
            if self.peek() == Some(b'/') {
                self.pos += 1;
            } else {
                return Ok(());
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        let start = self.pos;
        match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                let seg = if self.peek() == Some(b'*') {
                    self.pos += 1;
                    Segment::DoubleWildcard
                } else {
                    Segment::Wildcard
                };
                self.push(seg, start);
            }
            Some(b'{') if in_variable => {
                return Err(self.error(TemplateErrorKind::NestedVariable));
            }
            Some(b'{') => self.variable()?,
            Some(b'/' | b'}' | b':') => return Err(self.error(TemplateErrorKind::EmptySegment)),
            None if self.src.ends_with('/') => {
                return Err(self.error(TemplateErrorKind::EmptySegment));
            }
            None => return Err(self.error(TemplateErrorKind::UnexpectedEnd("a segment"))),
            Some(_) => {
                let literal = self.literal()?;
                if literal.is_empty() {
                    let c = self.peek_char().unwrap_or('?');
                    return Err(self.error(TemplateErrorKind::UnexpectedChar(c)));
                }
                self.push(Segment::Literal(literal), start);
            }
        }
        Ok(())
    }

    fn variable(&mut self) -> Result<(), TemplateError> {
        let open = self.pos;
        self.pos += 1; // `{`
        let field_path = self.field_path()?;
        let first = self.segments.len();
        match self.peek() {
            Some(b'=') => {
                self.pos += 1;
                self.segments_rule(true)?;
            }
            _ => self.push(Segment::Wildcard, open),
        }
        match self.peek_char() {
            Some('}') => self.pos += 1,
            Some(c) => return Err(self.error(TemplateErrorKind::UnexpectedChar(c))),
            None => return Err(self.error(TemplateErrorKind::UnexpectedEnd("`}`"))),
        }
        if self.variables.iter().any(|v| v.field_path == field_path) {
            return Err(self.error_at(
                open + 1,
                TemplateErrorKind::DuplicateVariable(field_path.join(".")),
            ));
        }
        self.variables.push(Variable {
            field_path,
            segments: first..self.segments.len(),
        });
        Ok(())
    }

    fn field_path(&mut self) -> Result<Vec<String>, TemplateError> {
        let mut path = Vec::new();
        loop {
            let start = self.pos;
            match self.peek() {
                Some(b) if b.is_ascii_alphabetic() || b == b'_' => self.pos += 1,
                _ => return Err(self.error(TemplateErrorKind::BadFieldPath)),
            }
            while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
                self.pos += 1;
            }
            path.push(self.src[start..self.pos].to_owned());
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                return Ok(path);
            }
        }
    }

    /// Zero or more LITERAL characters; the caller decides whether empty is an error.
    fn literal(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'%' {
                let bytes = self.src.as_bytes();
                let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(self.pos + 1) && hex(self.pos + 2)) {
                    return Err(self.error(TemplateErrorKind::BadPercentEscape));
                }
                self.pos += 3;
            } else if is_literal_char(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.src[start..self.pos].to_owned())
    }

    fn push(&mut self, segment: Segment, position: usize) {
        self.segments.push(segment);
        self.segment_positions.push(position);
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn error(&self, kind: TemplateErrorKind) -> TemplateError {
        self.error_at(self.pos, kind)
    }

    fn error_at(&self, position: usize, kind: TemplateErrorKind) -> TemplateError {
        TemplateError {
            template: self.src.to_owned(),
            position,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(s: &str) -> Segment {
        match s {
            "*" => Segment::Wildcard,
            "**" => Segment::DoubleWildcard,
            lit => Segment::Literal(lit.to_owned()),
        }
    }

    #[test]
    fn parses_literals_wildcards_and_verb() {
        let t = PathTemplate::parse("/v1/*/books/**:publish").unwrap();
        assert_eq!(
            t.segments(),
            &[seg("v1"), seg("*"), seg("books"), seg("**")]
        );
        assert_eq!(t.verb(), Some("publish"));
        assert!(t.variables().is_empty());
        assert!(t.ends_with_double_wildcard());
    }

    #[test]
    fn bare_variable_means_single_wildcard() {
        let t = PathTemplate::parse("/products/{id}").unwrap();
        assert_eq!(t.segments(), &[seg("products"), seg("*")]);
        assert_eq!(
            t.variables(),
            &[Variable {
                field_path: vec!["id".into()],
                segments: 1..2
            }]
        );
        assert_eq!(t, PathTemplate::parse("/products/{id=*}").unwrap());
    }

    #[test]
    fn variable_with_segments_and_nested_field_path() {
        let t = PathTemplate::parse("/v1/{book.name=shelves/*/books/*}/x/{rest=**}:get").unwrap();
        assert_eq!(
            t.segments(),
            &[
                seg("v1"),
                seg("shelves"),
                seg("*"),
                seg("books"),
                seg("*"),
                seg("x"),
                seg("**")
            ]
        );
        assert_eq!(t.variables()[0].field_path, vec!["book", "name"]);
        assert_eq!(t.variables()[0].segments, 1..5);
        assert_eq!(t.variables()[0].dotted(), "book.name");
        assert_eq!(t.variables()[1].segments, 6..7);
        assert_eq!(t.verb(), Some("get"));
    }

    #[test]
    fn root_template_has_no_segments() {
        let t = PathTemplate::parse("/").unwrap();
        assert!(t.segments().is_empty());
        assert_eq!(t.to_string(), "/");
    }

    #[test]
    fn display_is_canonical() {
        for (input, canonical) in [
            ("/products/{id=*}", "/products/{id}"),
            ("/products/{id}", "/products/{id}"),
            (
                "/v1/{name=shelves/*}/books:search",
                "/v1/{name=shelves/*}/books:search",
            ),
            ("/files/{path=**}", "/files/{path=**}"),
            ("/a/*/b/**", "/a/*/b/**"),
            ("/a%2Fb/{x.y_z}:do", "/a%2Fb/{x.y_z}:do"),
        ] {
            let t = PathTemplate::parse(input).unwrap();
            assert_eq!(t.to_string(), canonical, "{input}");
            assert_eq!(
                PathTemplate::parse(canonical).unwrap(),
                t,
                "{input} round trip"
            );
        }
    }

    #[test]
    fn errors_carry_kind_and_position() {
        use TemplateErrorKind as K;
        let cases: &[(&str, usize, K)] = &[
            ("", 0, K::MissingLeadingSlash),
            ("products", 0, K::MissingLeadingSlash),
            ("//a", 1, K::EmptySegment),
            ("/a//b", 3, K::EmptySegment),
            ("/a/", 3, K::EmptySegment),
            ("/a/**/b", 3, K::DoubleWildcardNotLast),
            ("/{x=**}/b", 4, K::DoubleWildcardNotLast),
            ("/{x={y}}", 4, K::NestedVariable),
            ("/{}", 2, K::BadFieldPath),
            ("/{1x}", 2, K::BadFieldPath),
            ("/{a.}", 4, K::BadFieldPath),
            ("/{a", 3, K::UnexpectedEnd("`}`")),
            ("/{a=b", 5, K::UnexpectedEnd("`}`")),
            ("/{a=}", 4, K::EmptySegment),
            ("/{a}/{a}", 6, K::DuplicateVariable("a".into())),
            ("/a:", 3, K::EmptyVerb),
            ("/a:b:c", 4, K::UnexpectedChar(':')),
            ("/a%zz", 2, K::BadPercentEscape),
            ("/a%2", 2, K::BadPercentEscape),
            ("/a b", 2, K::UnexpectedChar(' ')),
            ("/a*", 2, K::UnexpectedChar('*')),
            ("/***", 3, K::UnexpectedChar('*')),
            ("/a}", 2, K::UnexpectedChar('}')),
            ("/é", 1, K::UnexpectedChar('é')),
            ("/:verb", 1, K::EmptySegment),
        ];
        for (template, position, kind) in cases {
            let err = PathTemplate::parse(template).expect_err(template);
            assert_eq!((err.position, &err.kind), (*position, kind), "{template}");
            assert_eq!(err.template, *template);
        }
        let message = PathTemplate::parse("/a//b").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid path template `/a//b` at byte 3: empty segment"
        );
    }
}
