//! Null tokens: the text a CSV or TSV file writes where a value is missing
//! (R's `NA`, MySQL's `\N`, `NULL`, `-`), named by the user with
//! `--null-value`.
//!
//! A field is null when its whole unquoted text equals a token: exactly,
//! letter case and spaces included. A quoted field is text even when its
//! text equals a token, as in PostgreSQL's `COPY ... (FORMAT csv, NULL
//! 'NA')`: quoting is how a CSV writer says "the value is the word NA".
//! (DuckDB reads a quoted token as null too, unless `allow_quoted_nulls =
//! false`.) TSV has no quoting, so there every field equal to a token is
//! null. An empty field is null with or without tokens. A null token says
//! nothing about its column's type, so it takes no part in inference.

use super::csv::RawRecord;

/// The tokens that stand for null in one stream's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NullTokens {
    tokens: Vec<String>,
}

impl NullTokens {
    /// The tokens, each once, in the order given.
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        let mut unique: Vec<String> = Vec::new();
        for token in tokens {
            if !unique.contains(&token) {
                unique.push(token);
            }
        }
        NullTokens { tokens: unique }
    }

    /// True when no token was named (only empty fields are null).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether field `i` of `rec`, whose text is `text`, is a null token:
    /// unquoted and equal to one of them.
    #[inline]
    pub fn matches(&self, rec: &RawRecord, i: usize, text: &str) -> bool {
        self.tokens.iter().any(|t| t == text) && !rec.in_quotes(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::csv::{CsvParser, Quoting, Step};

    fn first_record(input: &[u8], quoting: Quoting) -> RawRecord {
        let delimiter = if quoting == Quoting::None {
            b'\t'
        } else {
            b','
        };
        let mut parser = CsvParser::new(input, "t", delimiter, quoting);
        let mut rec = RawRecord::default();
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        rec
    }

    fn nulls(rec: &RawRecord, tokens: &NullTokens) -> Vec<bool> {
        (0..rec.len())
            .map(|i| tokens.matches(rec, i, rec.text(i).unwrap()))
            .collect()
    }

    #[test]
    fn only_whole_unquoted_fields_equal_to_a_token_are_null() {
        let tokens = NullTokens::new(["NA".to_string(), r"\N".to_string()]);
        let rec = first_record(br#"NA,"NA",na,NA ,\N,"\N",NAN,,"""NA""""#, Quoting::Rfc4180);
        assert_eq!(
            nulls(&rec, &tokens),
            [true, false, false, false, true, false, false, false, false]
        );
    }

    #[test]
    fn tsv_fields_are_never_quoted() {
        let tokens = NullTokens::new(["NA".to_string()]);
        let rec = first_record(b"NA\t\"NA\"\tx\n", Quoting::None);
        assert_eq!(nulls(&rec, &tokens), [true, false, false]);
    }

    #[test]
    fn no_tokens_match_nothing_and_repeats_count_once() {
        let rec = first_record(b"NA,\n", Quoting::Rfc4180);
        assert_eq!(nulls(&rec, &NullTokens::default()), [false, false]);
        let twice = NullTokens::new(["NA".to_string(), "-".to_string(), "NA".to_string()]);
        assert_eq!(twice, NullTokens::new(["NA".to_string(), "-".to_string()]));
    }
}
