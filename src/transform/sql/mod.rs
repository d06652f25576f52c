//! `--sql`: a SELECT over all records of a stream (as the table `input`)
//! and any `--with NAME=FILE` lookup files, run by polars SQL. This holds
//! the stream's records in memory, as sorting, grouping and joining must,
//! but only the fields the query names: `SELECT zip, sum(quantity) ...`
//! holds two columns, however wide the records are.

mod columns;
mod decimal;
mod rows;

use std::collections::HashSet;

use anyhow::{Context, Result, anyhow};
use polars::prelude::*;
use polars::sql::SQLContext;
use serde_json::{Map, Value};

pub use columns::{Builder, Origins, Wanted, frame};
pub use rows::Answer;

/// The fields of `input` a query can read: every word and quoted name in
/// it, lower-cased (a superset: a keyword or alias that is also a field
/// name keeps that field). All fields when the query has a `*` that is not
/// `count(*)`, `COLUMNS(...)` (names by pattern), or a NATURAL join (which
/// joins on the fields both sides share, unnamed).
pub fn wanted(sql: &str) -> Wanted {
    let tokens = tokens(sql);
    let mut names = HashSet::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Word(w) if w == "natural" || w == "columns" => return Wanted::All,
            Token::Word(w) | Token::Quoted(w) => {
                names.insert(w.clone());
            }
            Token::Punct('*') => {
                let before = i.checked_sub(1).map(|i| &tokens[i]);
                let after = tokens.get(i + 1);
                let wildcard = match before {
                    None => true,
                    Some(Token::Word(w)) => ["select", "distinct", "all"].contains(&w.as_str()),
                    Some(Token::Punct(',' | '.')) => true,
                    Some(Token::Punct('(')) => {
                        let call = i.checked_sub(2).map(|i| &tokens[i]);
                        !(matches!(call, Some(Token::Word(w)) if w == "count")
                            && after == Some(&Token::Punct(')')))
                    }
                    _ => false,
                };
                if wildcard {
                    return Wanted::All;
                }
            }
            _ => {}
        }
    }
    Wanted::Only(names)
}

#[derive(Debug, PartialEq)]
enum Token {
    /// A bare word, lower-cased.
    Word(String),
    /// A "quoted" or `quoted` name, lower-cased.
    Quoted(String),
    Punct(char),
}

/// The query's words, quoted names and punctuation; string literals,
/// numbers and comments are skipped.
fn tokens(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // Up to the closing `close` (a doubled one stands for itself).
    let quoted = |i: &mut usize, close: char| {
        let mut s = String::new();
        *i += 1;
        while *i < chars.len() {
            if chars[*i] == close {
                if chars.get(*i + 1) == Some(&close) {
                    s.push(close);
                    *i += 2;
                    continue;
                }
                *i += 1;
                break;
            }
            s.push(chars[*i]);
            *i += 1;
        }
        s
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                quoted(&mut i, '\'');
            }
            '"' | '`' => out.push(Token::Quoted(quoted(&mut i, c).to_lowercase())),
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                out.push(Token::Word(
                    chars[start..i].iter().collect::<String>().to_lowercase(),
                ));
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_whitespace() => i += 1,
            c => {
                out.push(Token::Punct(c));
                i += 1;
            }
        }
    }
    out
}

/// Runs `sql` over `input` and named lookup tables: the answer, checked
/// and ready to be written (see [`Answer::schema`] and [`Answer::write`]).
pub fn run(
    sql: &str,
    input: Builder,
    lookups: &[(String, Vec<Map<String, Value>>)],
) -> Result<Answer> {
    let mut ctx = SQLContext::new();
    let (table, origins) = input.finish()?;
    ctx.register("input", table.lazy());
    for (name, rows) in lookups {
        ctx.register(
            name,
            frame(rows)
                .with_context(|| format!("--with {name}"))?
                .lazy(),
        );
    }
    let result = ctx.execute(sql).and_then(LazyFrame::collect).map_err(|e| {
        let message = format!("--sql: {e}");
        if message.contains("binary") {
            // Nested values (and numbers no typed column holds) are
            // JSON columns, held as binary.
            crate::error::Failure::new(crate::error::Kind::Runtime, message)
                .hint("nested values are JSON columns: CAST(name AS VARCHAR) gives their JSON text")
                .into()
        } else {
            anyhow!(message)
        }
    })?;
    Answer::new(result, &origins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat::parse_object;

    fn only(names: &[&str]) -> Wanted {
        Wanted::Only(names.iter().map(|n| n.to_string()).collect())
    }

    fn same(a: &Wanted, b: &Wanted) -> bool {
        match (a, b) {
            (Wanted::All, Wanted::All) => true,
            (Wanted::Only(a), Wanted::Only(b)) => a == b,
            _ => false,
        }
    }

    #[test]
    fn the_fields_a_query_names() {
        let cases: [(&str, Wanted); 9] = [
            ("SELECT * FROM input", Wanted::All),
            ("SELECT i.* FROM input i", Wanted::All),
            ("SELECT a, * FROM input", Wanted::All),
            (
                "SELECT COUNT(*) AS n FROM input",
                only(&["select", "count", "as", "n", "from", "input"]),
            ),
            (
                "SELECT Zip, sum(q * 2) -- note\nFROM input WHERE s = 'x y' /* c */ AND \"Odd Name\" > 1.5e3",
                only(&[
                    "select", "zip", "sum", "q", "from", "input", "where", "s", "and", "odd name",
                ]),
            ),
            ("SELECT a FROM input NATURAL JOIN t", Wanted::All),
            ("SELECT COLUMNS('^a.*$') FROM input", Wanted::All),
            (
                "SELECT `b c`, 'it''s' FROM input",
                only(&["select", "b c", "from", "input"]),
            ),
            (
                "SELECT (a) * b FROM input",
                only(&["select", "a", "b", "from", "input"]),
            ),
        ];
        for (sql, expected) in cases {
            let got = wanted(sql);
            assert!(same(&got, &expected), "{sql}: {got:?}");
        }
    }

    #[test]
    fn group_by_and_types() {
        let lines = [
            r#"{"k":"a","n":1,"p":1.5,"unused":"x"}"#,
            r#"{"k":"b","n":2,"p":null}"#,
            r#"{"k":"a","n":3,"p":2.5}"#,
        ];
        let sql = "SELECT k, SUM(n) AS total, COUNT(*) AS c FROM input GROUP BY k ORDER BY k";
        let mut builder = Builder::new(wanted(sql));
        for line in lines {
            builder.push(&parse_object(line.as_bytes()).unwrap());
        }
        let mut out = Vec::new();
        assert_eq!(run(sql, builder, &[]).unwrap().write(&mut out).unwrap(), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"k\":\"a\",\"total\":4,\"c\":2}\n{\"k\":\"b\",\"total\":2,\"c\":1}\n"
        );
    }
}
