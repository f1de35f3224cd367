//! Label selectors in Calico's syntax: `role == "db" && env in {"prod","stage"}`.
//!
//! Grammar (whitespace allowed between tokens):
//! ```text
//! expr    = and ( "||" and )*
//! and     = unary ( "&&" unary )*
//! unary   = "!" unary | primary
//! primary = "(" expr ")" | "all()" | "has(" key ")"
//!         | key "==" string | key "!=" string | key "in" set | key "not in" set
//!         | key "contains" string | key "starts with" string | key "ends with" string
//! set     = "{" [ string ( "," string )* ] "}"
//! string  = '"' chars '"' | "'" chars "'"
//! key     = [A-Za-z0-9_./-]+
//! ```
//! As in Calico, `key != "v"` and `key not in {…}` also match endpoints without `key`.
//!
//! One language for the whole project: pool node selectors (`[[ipam.pools]] node_selector`,
//! stored as text in etcd by IPAM) and host-firewall policy selectors both use this type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, multispace0, multispace1};
use nom::combinator::{all_consuming, cut, map, opt, value};
use nom::error::{ErrorKind, ParseError};
use nom::multi::separated_list0;
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Labels of a node, endpoint or host: key → value.
pub type Labels = BTreeMap<String, String>;

/// A parsed selector; matches a set of labels. The default is `all()`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `all()`: every endpoint.
    #[default]
    All,
    /// `has(key)`.
    Has(String),
    /// `key == "value"`.
    Eq(String, String),
    /// `key != "value"` (true when the key is absent).
    Ne(String, String),
    /// `key in {"a","b"}`.
    In(String, BTreeSet<String>),
    /// `key not in {"a","b"}` (true when the key is absent).
    NotIn(String, BTreeSet<String>),
    /// `key contains "s"` (false when the key is absent).
    Contains(String, String),
    /// `key starts with "s"`.
    StartsWith(String, String),
    /// `key ends with "s"`.
    EndsWith(String, String),
    /// `!selector`.
    Not(Box<Selector>),
    /// `a && b`.
    And(Box<Selector>, Box<Selector>),
    /// `a || b`.
    Or(Box<Selector>, Box<Selector>),
}

impl Selector {
    /// Parses `text`; the error says where and what was expected.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        match all_consuming(delimited(multispace0, expr, multispace0)).parse(text) {
            Ok((_, selector)) => Ok(selector),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(SelectorError::at(text, e)),
            Err(nom::Err::Incomplete(_)) => Err(SelectorError::at(
                text,
                Expected {
                    rest: "",
                    what: vec!["more input"],
                },
            )),
        }
    }

    /// Whether an endpoint with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Selector::All => true,
            Selector::Has(k) => labels.contains_key(k),
            Selector::Eq(k, v) => labels.get(k) == Some(v),
            Selector::Ne(k, v) => labels.get(k) != Some(v),
            Selector::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Selector::NotIn(k, vs) => !labels.get(k).is_some_and(|v| vs.contains(v)),
            Selector::Contains(k, v) => labels.get(k).is_some_and(|l| l.contains(v.as_str())),
            Selector::StartsWith(k, v) => labels.get(k).is_some_and(|l| l.starts_with(v.as_str())),
            Selector::EndsWith(k, v) => labels.get(k).is_some_and(|l| l.ends_with(v.as_str())),
            Selector::Not(s) => !s.matches(labels),
            Selector::And(a, b) => a.matches(labels) && b.matches(labels),
            Selector::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Binding strength of a selector's top operator: `||` < `&&` < `!` < a single term.
fn rank(s: &Selector) -> u8 {
    match s {
        Selector::Or(..) => 0,
        Selector::And(..) => 1,
        Selector::Not(_) => 2,
        _ => 3,
    }
}

/// `v` in quotes that cannot end it early: single quotes unless `v` holds one (the grammar has
/// no escapes, so a value holds at most one kind of quote).
fn quoted(v: &str) -> String {
    if v.contains('\'') {
        format!("\"{v}\"")
    } else {
        format!("'{v}'")
    }
}

/// `s`, in parentheses when its operator binds less tightly than `min`.
struct Operand<'a>(&'a Selector, u8);

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if rank(self.0) < self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The canonical text: it parses back to the same selector, with parentheses only where
/// needed (`&&` and `||` group to the left) and single-quoted values, as ipam stores them.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn set(vs: &BTreeSet<String>) -> String {
            let items: Vec<String> = vs.iter().map(|v| quoted(v)).collect();
            format!("{{{}}}", items.join(", "))
        }
        match self {
            Selector::All => write!(f, "all()"),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::Eq(k, v) => write!(f, "{k} == {}", quoted(v)),
            Selector::Ne(k, v) => write!(f, "{k} != {}", quoted(v)),
            Selector::In(k, vs) => write!(f, "{k} in {}", set(vs)),
            Selector::NotIn(k, vs) => write!(f, "{k} not in {}", set(vs)),
            Selector::Contains(k, v) => write!(f, "{k} contains {}", quoted(v)),
            Selector::StartsWith(k, v) => write!(f, "{k} starts with {}", quoted(v)),
            Selector::EndsWith(k, v) => write!(f, "{k} ends with {}", quoted(v)),
            Selector::Not(s) => write!(f, "!{}", Operand(s, 2)),
            Selector::And(a, b) => write!(f, "{} && {}", Operand(a, 1), Operand(b, 2)),
            Selector::Or(a, b) => write!(f, "{} || {}", Operand(a, 0), Operand(b, 1)),
        }
    }
}

/// Stored and sent as its canonical text.
impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read from text; a selector that does not parse is an error saying where and why.
impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Selector::parse(&text).map_err(de::Error::custom)
    }
}

/// A selector that does not parse: where, what was expected there, and what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("selector {selector:?}: at column {column}: expected {}, found {}", list(.expected), found_text(.found))]
pub struct SelectorError {
    /// The selector text as written.
    pub selector: String,
    /// 1-based character column of the problem.
    pub column: usize,
    /// What would have been accepted there.
    pub expected: Vec<&'static str>,
    /// The text from the problem to the end (empty at end of input).
    pub found: String,
}

fn list(items: &[&str]) -> String {
    match items {
        [] => "a selector".to_string(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn found_text(found: &str) -> String {
    if found.is_empty() {
        "end of input".to_string()
    } else {
        format!("{found:?}")
    }
}

impl SelectorError {
    fn at(text: &str, e: Expected<'_>) -> SelectorError {
        let offset = text.len() - e.rest.len();
        let mut expected = e.what;
        expected.sort_unstable();
        expected.dedup();
        SelectorError {
            selector: text.to_string(),
            column: text[..offset].chars().count() + 1,
            expected,
            found: e.rest.to_string(),
        }
    }
}

/// nom error that remembers the furthest position reached and what would have fit there.
#[derive(Debug)]
struct Expected<'a> {
    rest: &'a str,
    what: Vec<&'static str>,
}

impl<'a> ParseError<&'a str> for Expected<'a> {
    fn from_error_kind(input: &'a str, _: ErrorKind) -> Self {
        Expected {
            rest: input,
            what: Vec::new(),
        }
    }
    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
    fn or(mut self, other: Self) -> Self {
        // The branch that got further explains the problem best; at a tie, list both.
        match self.rest.len().cmp(&other.rest.len()) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            std::cmp::Ordering::Equal => {
                self.what.extend(other.what);
                self
            }
        }
    }
}

type Res<'a, O> = IResult<&'a str, O, Expected<'a>>;

/// Runs `p`; a failure where it started is reported as "expected `what`".
fn expect<'a, O>(
    what: &'static str,
    mut p: impl Parser<&'a str, Output = O, Error = Expected<'a>>,
) -> impl FnMut(&'a str) -> Res<'a, O> {
    move |i: &'a str| {
        p.parse(i).map_err(|e| {
            e.map(|mut err| {
                if err.rest.len() == i.len() {
                    err.what = vec![what];
                }
                err
            })
        })
    }
}

fn ws<'a, O>(
    p: impl Parser<&'a str, Output = O, Error = Expected<'a>>,
) -> impl Parser<&'a str, Output = O, Error = Expected<'a>> {
    delimited(multispace0, p, multispace0)
}

fn expr(i: &str) -> Res<'_, Selector> {
    let (mut i, mut acc) = and(i)?;
    loop {
        match opt(ws(tag("||"))).parse(i)? {
            (rest, Some(_)) => {
                let (rest, rhs) = cut(and).parse(rest)?;
                acc = Selector::Or(Box::new(acc), Box::new(rhs));
                i = rest;
            }
            (_, None) => return Ok((i, acc)),
        }
    }
}

fn and(i: &str) -> Res<'_, Selector> {
    let (mut i, mut acc) = unary(i)?;
    loop {
        match opt(ws(tag("&&"))).parse(i)? {
            (rest, Some(_)) => {
                let (rest, rhs) = cut(unary).parse(rest)?;
                acc = Selector::And(Box::new(acc), Box::new(rhs));
                i = rest;
            }
            (_, None) => return Ok((i, acc)),
        }
    }
}

fn unary(i: &str) -> Res<'_, Selector> {
    let (i, _) = multispace0(i)?;
    alt((
        map(preceded(char('!'), cut(unary)), |s| {
            Selector::Not(Box::new(s))
        }),
        primary,
    ))
    .parse(i)
}

fn primary(i: &str) -> Res<'_, Selector> {
    let (i, _) = multispace0(i)?;
    alt((
        delimited(
            char('('),
            cut(expr),
            cut(expect("`)`", preceded(multispace0, char(')')))),
        ),
        value(
            Selector::All,
            (tag("all"), multispace0, char('('), multispace0, char(')')),
        ),
        map(
            preceded(
                (tag("has"), multispace0, char('(')),
                cut(terminated(
                    ws(key),
                    expect("`)`", preceded(multispace0, char(')'))),
                )),
            ),
            Selector::Has,
        ),
        comparison,
    ))
    .parse(i)
}

fn comparison(i: &str) -> Res<'_, Selector> {
    let (i, k) = key(i)?;
    let (i, _) = multispace0(i)?;
    cut(alt((
        map(preceded(tag("=="), ws(string)), {
            let k = k.clone();
            move |v| Selector::Eq(k.clone(), v)
        }),
        map(preceded(tag("!="), ws(string)), {
            let k = k.clone();
            move |v| Selector::Ne(k.clone(), v)
        }),
        map(
            preceded((tag("not"), multispace1, tag("in")), ws(string_set)),
            {
                let k = k.clone();
                move |vs| Selector::NotIn(k.clone(), vs)
            },
        ),
        map(preceded(tag("in"), ws(string_set)), {
            let k = k.clone();
            move |vs| Selector::In(k.clone(), vs)
        }),
        map(preceded(tag("contains"), ws(string)), {
            let k = k.clone();
            move |v| Selector::Contains(k.clone(), v)
        }),
        map(
            preceded((tag("starts"), multispace1, tag("with")), ws(string)),
            {
                let k = k.clone();
                move |v| Selector::StartsWith(k.clone(), v)
            },
        ),
        map(
            preceded((tag("ends"), multispace1, tag("with")), ws(string)),
            {
                let k = k.clone();
                move |v| Selector::EndsWith(k.clone(), v)
            },
        ),
        expect(
            "`==`, `!=`, `in`, `not in`, `contains`, `starts with` or `ends with`",
            |i| {
                Err(nom::Err::Error(Expected::from_error_kind(
                    i,
                    ErrorKind::Tag,
                )))
            },
        ),
    )))
    .parse(i)
}

fn key(i: &str) -> Res<'_, String> {
    expect(
        "a label key, `all()`, `has(…)`, `!` or `(`",
        map(
            take_while1(|c: char| c.is_ascii_alphanumeric() || "_./-".contains(c)),
            str::to_string,
        ),
    )(i)
}

fn string(i: &str) -> Res<'_, String> {
    expect(
        "a quoted string",
        alt((
            delimited(char('"'), take_while(|c| c != '"'), cut(char('"'))),
            delimited(char('\''), take_while(|c| c != '\''), cut(char('\''))),
        )),
    )(i)
    .map(|(i, s)| (i, s.to_string()))
}

fn string_set(i: &str) -> Res<'_, BTreeSet<String>> {
    map(
        delimited(
            expect("`{`", char('{')),
            cut(separated_list0(char(','), ws(string))),
            cut(expect("`,` or `}`", preceded(multispace0, char('}')))),
        ),
        |vs| vs.into_iter().collect(),
    )
    .parse(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matches_table() {
        let db_prod = labels(&[("role", "db"), ("env", "prod")]);
        let db_dev = labels(&[("role", "db"), ("env", "dev")]);
        let web = labels(&[("role", "web")]);
        let cases: &[(&str, &Labels, bool)] = &[
            ("all()", &web, true),
            ("role == \"db\"", &db_prod, true),
            ("role == 'db'", &web, false),
            ("role != \"db\"", &web, true),
            ("env != \"prod\"", &web, true),
            ("has(env)", &web, false),
            ("has( env )", &db_dev, true),
            ("!has(env)", &web, true),
            (
                "role == \"db\" && env in {\"prod\",\"stage\"}",
                &db_prod,
                true,
            ),
            (
                "role == \"db\" && env in {\"prod\",\"stage\"}",
                &db_dev,
                false,
            ),
            ("env not in {\"prod\"}", &web, true),
            ("env not in {\"prod\"}", &db_prod, false),
            ("env in {}", &db_prod, false),
            ("role == \"web\" || env == \"dev\"", &db_dev, true),
            ("!(role == \"web\" || env == \"dev\")", &db_prod, true),
            (
                "role == \"db\" && (env == \"dev\" || env == \"prod\")",
                &db_prod,
                true,
            ),
            (
                "a == \"1\" || b == \"2\" && c == \"3\"",
                &labels(&[("a", "1")]),
                true,
            ),
            ("k8s.io/app == \"x\"", &labels(&[("k8s.io/app", "x")]), true),
            ("env contains \"ro\"", &db_prod, true),
            ("env contains \"ro\"", &web, false),
            ("env starts with \"pr\"", &db_prod, true),
            ("env ends with \"ev\"", &db_dev, true),
            ("env ends with \"ev\"", &db_prod, false),
        ];
        for (text, l, want) in cases {
            let s = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.matches(l), *want, "{text} on {l:?}");
            // The canonical form parses back to the same selector.
            assert_eq!(Selector::parse(&s.to_string()).as_ref(), Ok(&s), "{s}");
        }
    }

    /// The pool node selectors IPAM has always stored (single quotes included) mean the same.
    #[test]
    fn node_selector_table() {
        let node = labels(&[("rack", "r1"), ("zone", "a")]);
        for (text, want) in [
            ("all()", Some(true)),
            ("has(rack)", Some(true)),
            ("!has(rack)", Some(false)),
            ("rack == 'r1'", Some(true)),
            ("rack == \"r2\"", Some(false)),
            ("rack != 'r2' && zone == 'a'", Some(true)),
            ("rack == 'r1' && has(gpu)", Some(false)),
            ("rack = 'r1'", None),
            ("rack == r1", None),
            ("has()", None),
            ("bad key == 'x'", None),
        ] {
            let got = Selector::parse(text).ok().map(|s| s.matches(&node));
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn display_is_minimal_and_single_quoted() {
        for (text, shown) in [
            (
                "rack != \"r2\" && zone == 'a'",
                "rack != 'r2' && zone == 'a'",
            ),
            (
                "(a == 'x' && b == 'y') || c == 'z'",
                "a == 'x' && b == 'y' || c == 'z'",
            ),
            (
                "a == 'x' && (b == 'y' || c == 'z')",
                "a == 'x' && (b == 'y' || c == 'z')",
            ),
            (
                "a == 'x' || (b == 'y' || c == 'z')",
                "a == 'x' || (b == 'y' || c == 'z')",
            ),
            ("!(has(a) && has(b))", "!(has(a) && has(b))"),
            ("!!has(a)", "!!has(a)"),
            ("a == \"it's\"", "a == \"it's\""),
            ("a in {\"x\", 'y'}", "a in {'x', 'y'}"),
        ] {
            let s = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.to_string(), shown, "{text}");
            assert_eq!(Selector::parse(shown), Ok(s), "{shown}");
        }
    }

    #[test]
    fn serde_is_the_text() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Pool {
            node_selector: Selector,
        }
        let pool: Pool = toml::from_str("node_selector = \"rack == 'r1'\"").unwrap();
        assert_eq!(pool.node_selector, Selector::Eq("rack".into(), "r1".into()));
        assert_eq!(
            toml::to_string(&pool).unwrap().trim(),
            "node_selector = \"rack == 'r1'\""
        );
        let e = toml::from_str::<Pool>("node_selector = \"rack = 'r1'\"").unwrap_err();
        assert!(e.message().contains("at column 6: expected `==`"), "{e}");
        assert_eq!(Selector::default(), Selector::All);
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let s = Selector::parse("a == \"1\" || b == \"2\" && c == \"3\"").unwrap();
        assert!(matches!(s, Selector::Or(_, _)), "{s:?}");
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "role = \"db\"",
                6,
                "expected `==`, `!=`, `in`, `not in`, `contains`, `starts with` or `ends with`, found \"= \\\"db\\\"\"",
            ),
            ("role == db", 9, "expected a quoted string"),
            ("role == \"db\" &&", 16, "expected a label key"),
            ("(role == \"db\"", 14, "expected `)`"),
            ("env in {\"a\" \"b\"}", 13, "expected `,` or `}`"),
            ("env in \"a\"", 8, "expected `{`"),
            ("", 1, "expected a label key"),
            ("role == \"db\" extra", 14, "found \"extra\""),
            ("has(role", 9, "expected `)`, found end of input"),
            ("role == \"db", 12, "expected"),
        ];
        for (text, column, needle) in cases {
            let e = Selector::parse(text).expect_err(text);
            let msg = e.to_string();
            assert_eq!(e.column, *column, "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {msg:?} lacks {needle:?}");
        }
    }

    proptest::proptest! {
        /// Any text either parses or gives an error inside it; never a panic.
        #[test]
        fn any_text_parses_or_points_inside_it(text in "\\PC{0,40}") {
            if let Err(e) = Selector::parse(&text) {
                proptest::prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1);
            }
        }

        /// Text made of the grammar's own tokens round-trips through Display.
        #[test]
        fn display_round_trips(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", "==", "!=", "in", "not in", "contains", "starts with", "(", ")",
                    "&&", "||", "!", "\"x\"", "'y'", "{", "}", ",", "all()", "has(a)",
                ]),
                1..12,
            )
        ) {
            let text = words.join(" ");
            if let Ok(s) = Selector::parse(&text) {
                proptest::prop_assert_eq!(Selector::parse(&s.to_string()), Ok(s));
            }
        }
    }

    #[test]
    fn no_panic_on_odd_input() {
        for text in [
            "\u{1F600}",
            "((((",
            "!!!",
            "a in {",
            "'",
            "has()",
            "a not",
            "|| &&",
        ] {
            assert!(Selector::parse(text).is_err(), "{text}");
        }
    }
}
