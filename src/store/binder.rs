//! One rule for binding a record's fields to a table's columns, shared by
//! the database stores (SQLite, PostgreSQL, MySQL/MariaDB), so that a field
//! finds the same column, and a record is refused for the same reasons, in
//! every one of them:
//!
//! - a field finds the column of its exact name, else the one column whose
//!   name differs only in case; two such columns (a table made by another
//!   tool may hold `id` and `Id`) make the record a reject;
//! - two fields naming one column (`id` and `Id`) make it a reject;
//! - under `--schema strict` a field without a column is a reject;
//!   otherwise it asks for a new column, typed by its value, or, while it
//!   has only been null, is left unbound and gets a text column at the end;
//! - a key field null or missing is a reject.
//!
//! The store keeps its columns' types and DDL; the binder keeps their
//! names, in the table's order, so a column's index is the same in both.

use std::collections::HashMap;

use crate::format::flat::Fields;
use crate::format::typing::type_of_value;
use crate::record::FieldType;

/// A field bound to no column (it has only been null so far).
pub const UNBOUND: usize = usize::MAX;

/// What a field name finds among the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The column of that exact name, else the one differing in case.
    Found(usize),
    /// None.
    Missing,
    /// Two columns differing only in case, neither of the exact name.
    Ambiguous(usize, usize),
}

/// The columns' names and the binding of the record being written.
#[derive(Debug, Default)]
pub struct Binder {
    /// How messages name the table (`table "t"`, `"s"."t"`).
    shown: String,
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    /// The columns of each lower-cased name (at most two are kept).
    by_lower: HashMap<String, Vec<usize>>,
    /// The column each field of the record being written names
    /// ([`UNBOUND`]: a field without a column, only null so far).
    pub bound: Vec<usize>,
    /// The field names `bound` was found for: a record with the same names
    /// in the same order reuses it without looking a name up.
    last: Vec<String>,
    /// Fields seen only as null so far: given a text column at the end.
    null_only: Vec<String>,
}

impl Binder {
    /// A binder for a table with no columns yet, named `shown` in messages.
    pub fn new(shown: impl Into<String>) -> Binder {
        Binder {
            shown: shown.into(),
            ..Binder::default()
        }
    }

    /// Forgets the columns (the table is read again) and the binding.
    pub fn clear_columns(&mut self) {
        self.names.clear();
        self.by_name.clear();
        self.by_lower.clear();
        self.forget();
    }

    /// Adds a column after the others; its index.
    pub fn push(&mut self, name: &str) -> usize {
        let i = self.names.len();
        self.names.push(name.to_string());
        self.by_name.entry(name.to_string()).or_insert(i);
        let same = self.by_lower.entry(name.to_lowercase()).or_default();
        if same.len() < 2 {
            same.push(i);
        }
        self.null_only.retain(|n| !n.eq_ignore_ascii_case(name));
        i
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Has the table no column?
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// What `name` finds: see the module's rules.
    pub fn lookup(&self, name: &str) -> Lookup {
        if let Some(&i) = self.by_name.get(name) {
            return Lookup::Found(i);
        }
        match self.by_lower.get(&name.to_lowercase()).map(Vec::as_slice) {
            Some(&[i]) => Lookup::Found(i),
            Some(&[a, b, ..]) => Lookup::Ambiguous(a, b),
            _ => Lookup::Missing,
        }
    }

    /// The column `name` finds, if exactly one.
    pub fn find(&self, name: &str) -> Option<usize> {
        match self.lookup(name) {
            Lookup::Found(i) => Some(i),
            Lookup::Missing | Lookup::Ambiguous(..) => None,
        }
    }

    /// Makes the next [`bind`](Self::bind) look every name up again (a
    /// field bound to no column may have one now).
    pub fn forget(&mut self) {
        self.last.clear();
    }

    /// Binds each field of `fields` to its column in `bound`; the reason
    /// when the record cannot be bound. Returns the columns new fields need
    /// (name and type, by the value): once the store has added them (with
    /// [`push`](Self::push)), [`rebind`](Self::rebind). A record with the
    /// same field names as the last one reuses its binding.
    pub fn bind(
        &mut self,
        fields: &Fields<'_>,
        strict: bool,
    ) -> Result<Vec<(String, FieldType)>, String> {
        let same = self.last.len() == fields.len()
            && self
                .last
                .iter()
                .zip(fields)
                .all(|(last, (name, _))| last == name)
            && self
                .bound
                .iter()
                .zip(fields)
                .all(|(&i, (_, v))| i != UNBOUND || v.is_null());
        if same {
            return Ok(Vec::new());
        }
        self.last.clear();
        self.bound.clear();
        let mut new_columns: Vec<(String, FieldType)> = Vec::new();
        for (name, value) in fields {
            match self.lookup(name) {
                Lookup::Found(i) if self.bound.contains(&i) => {
                    return Err(self.twice(name, &self.names[i]));
                }
                Lookup::Found(i) => {
                    self.bound.push(i);
                    continue;
                }
                Lookup::Ambiguous(a, b) => {
                    return Err(format!(
                        "field {name:?} could be column {:?} or {:?} of {}, which differ only in case",
                        self.names[a], self.names[b], self.shown
                    ));
                }
                Lookup::Missing => {}
            }
            if let Some((first, _)) = new_columns
                .iter()
                .find(|(n, _)| n.to_lowercase() == name.to_lowercase())
            {
                return Err(self.twice(name, first));
            }
            if strict {
                return Err(format!(
                    "field {name:?} is not a column of {} (--schema strict)",
                    self.shown
                ));
            }
            self.bound.push(UNBOUND);
            match type_of_value(value) {
                Some(t) => new_columns.push((name.to_string(), t)),
                None if !self.null_only.iter().any(|n| n.eq_ignore_ascii_case(name)) => {
                    self.null_only.push(name.to_string());
                }
                None => {}
            }
        }
        if new_columns.is_empty() {
            self.last = fields.iter().map(|(n, _)| n.to_string()).collect();
        }
        Ok(new_columns)
    }

    fn twice(&self, name: &str, column: &str) -> String {
        format!("field {name:?} names column {column:?} a second time (names are case-insensitive)")
    }

    /// Binds `fields` again, after the columns [`bind`](Self::bind) asked
    /// for were added.
    pub fn rebind(&mut self, fields: &Fields<'_>) {
        self.bound.clear();
        for (name, _) in fields {
            let i = self.find(name).unwrap_or(UNBOUND);
            self.bound.push(i);
        }
        self.last = fields.iter().map(|(n, _)| n.to_string()).collect();
    }

    /// The columns the last bound record's fields went to, in field order
    /// (fields without a column left out).
    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.bound.iter().copied().filter(|&i| i != UNBOUND)
    }

    /// The field of the bound record that column `column` takes, if any.
    pub fn field_of(&self, column: usize) -> Option<usize> {
        self.bound.iter().position(|&b| b == column)
    }

    /// The fields seen only as null so far.
    pub fn null_only(&self) -> &[String] {
        &self.null_only
    }

    /// The fields seen only as null, as text columns to add at the end.
    pub fn take_null_only(&mut self) -> Vec<(String, FieldType)> {
        std::mem::take(&mut self.null_only)
            .into_iter()
            .map(|n| (n, FieldType::Text))
            .collect()
    }

    /// The reason a bound record cannot be written: a key field (`keys`)
    /// null or missing.
    pub fn missing_key(&self, fields: &Fields<'_>, keys: &[String]) -> Option<String> {
        for key in keys {
            let held = self
                .find(key)
                .and_then(|k| self.field_of(k))
                .map(|p| &fields[p].1);
            if held.is_none_or(|v| v.is_null()) {
                return Some(format!("key field {key:?} is null or missing"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat::parse_object;

    fn fields(json: &str) -> Fields<'_> {
        parse_object(json.as_bytes()).expect("a record")
    }

    #[test]
    fn the_same_rules_in_every_store() {
        let mut b = Binder::new("table \"t\"");
        b.push("id");
        b.push("Name");
        // Exact, then by case.
        assert_eq!(b.bind(&fields(r#"{"id":1,"name":"a"}"#), false), Ok(vec![]));
        assert_eq!(b.bound, vec![0, 1]);
        // Two fields for one column.
        assert_eq!(
            b.bind(&fields(r#"{"id":1,"ID":2}"#), false),
            Err(
                "field \"ID\" names column \"id\" a second time (names are case-insensitive)"
                    .into()
            )
        );
        // Two new fields differing in case.
        assert_eq!(
            b.bind(&fields(r#"{"x":1,"X":2}"#), false),
            Err("field \"X\" names column \"x\" a second time (names are case-insensitive)".into())
        );
        // Strict, and a new field typed by its value; a null one waits.
        assert_eq!(
            b.bind(&fields(r#"{"id":1,"n":2}"#), true),
            Err("field \"n\" is not a column of table \"t\" (--schema strict)".into())
        );
        assert_eq!(
            b.bind(&fields(r#"{"id":1,"n":2,"z":null}"#), false),
            Ok(vec![("n".to_string(), FieldType::Integer)])
        );
        b.push("n");
        b.rebind(&fields(r#"{"id":1,"n":2,"z":null}"#));
        assert_eq!(b.bound, vec![0, 2, UNBOUND]);
        assert_eq!(b.take_null_only(), vec![("z".to_string(), FieldType::Text)]);
        // A missing key, and a null one.
        let record = fields(r#"{"n":2}"#);
        assert_eq!(b.bind(&record, false), Ok(vec![]));
        assert_eq!(
            b.missing_key(&record, &["id".into()]),
            Some("key field \"id\" is null or missing".into())
        );
        let record = fields(r#"{"n":2,"ID":null}"#);
        assert_eq!(b.bind(&record, false), Ok(vec![]));
        assert_eq!(
            b.missing_key(&record, &["id".into()]),
            Some("key field \"id\" is null or missing".into())
        );
        // Two columns differing only in case.
        b.push("ID");
        assert_eq!(b.lookup("Id"), Lookup::Ambiguous(0, 3));
        assert_eq!(b.lookup("ID"), Lookup::Found(3));
    }
}
