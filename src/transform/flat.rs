//! The fast path for row-wise steps: records stay borrowed fields (see
//! `format::flat`) and only the fields an expression or a cast reads become
//! JSON values. Used when no step needs whole records (--dedup, --sql,
//! --validate).

use std::borrow::Cow;

use serde_json::Value;

use super::expr::Scalar;
use super::{Step, cast, check_logical, expr};
use crate::format::flat::{Fields, Raw};
use crate::format::json;
use crate::record::FieldType;

/// A field's value as JSON, or why it cannot be read (e.g. nested deeper
/// than serde_json goes): never null in its place, which a filter would
/// take for a missing value.
fn value_of(name: &str, raw: &Raw<'_>) -> anyhow::Result<Value> {
    Ok(match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(*b),
        Raw::Number(n) => Value::Number(
            n.parse::<serde_json::Number>()
                .map_err(|e| anyhow::anyhow!("field {name:?} cannot be evaluated: {e}"))?,
        ),
        Raw::Str(s) => Value::String(s.to_string()),
        Raw::Nested(j) => serde_json::from_str(j)
            .map_err(|e| anyhow::anyhow!("field {name:?} cannot be evaluated: {e}"))?,
    })
}

/// The value of field `name` (null when missing) for an expression.
fn field_value(fields: &Fields<'_>, name: &str) -> anyhow::Result<Value> {
    get(fields, name).map_or(Ok(Value::Null), |raw| value_of(name, raw))
}

/// A JSON value as a field.
pub(crate) fn raw_of(value: Value) -> Raw<'static> {
    match value {
        Value::Null => Raw::Null,
        Value::Bool(b) => Raw::Bool(b),
        Value::Number(n) => Raw::Number(Cow::Owned(n.to_string())),
        Value::String(s) => Raw::Str(Cow::Owned(s)),
        other => Raw::Nested(Cow::Owned(other.to_string())),
    }
}

/// The input fields a stage has to build: the steps (and a query after
/// them) read or write only these, so the reader passes over the rest of
/// each line after checking it.
#[derive(Debug, Clone, PartialEq)]
pub enum Needed {
    /// Every field.
    All,
    /// Only these names; with `any_case`, in any ASCII case (a query's
    /// names), and any name that is not ASCII is kept.
    Only {
        /// The names.
        names: Vec<String>,
        /// Names match in any ASCII case.
        any_case: bool,
    },
}

impl Needed {
    /// Whether the reader builds field `name`.
    #[inline(always)]
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            Needed::All => true,
            Needed::Only {
                names,
                any_case: false,
            } => {
                // A plain loop: it stays inlined in the reader.
                for n in names {
                    if same(n, name) {
                        return true;
                    }
                }
                false
            }
            Needed::Only {
                names,
                any_case: true,
            } => !name.is_ascii() || names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }

    /// [`Needed::keeps`] as the reader asks it, once per field of every
    /// line.
    pub fn matcher(&self) -> Matcher<'_> {
        let lengths = match self {
            Needed::All => u64::MAX,
            Needed::Only { names, .. } => names.iter().fold(0, |m, n| m | length_bit(n.len())),
        };
        Matcher {
            needed: self,
            lengths,
        }
    }

    fn add(&mut self, name: &str) {
        if let Needed::Only { names, .. } = self
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }

    /// Adds the fields an expression reads.
    fn add_read(&mut self, e: &expr::Expr) {
        let mut names = Vec::new();
        e.field_names(&mut names);
        names.into_iter().for_each(|n| self.add(n));
    }

    /// What the steps need from their input, given what comes after them
    /// needs `after`. Walked from the last step back: a select names all
    /// that can survive it; filters, derives and casts add what they read
    /// (a cast or an expression can reject a record, so its fields are
    /// always built); a rename needs the old name of a new one.
    pub fn before(steps: &[Step], after: Needed) -> Needed {
        let mut needed = after;
        for step in steps.iter().rev() {
            match step {
                Step::Select(names) => {
                    needed = Needed::Only {
                        names: names.clone(),
                        any_case: false,
                    }
                }
                Step::Drop(_) => {}
                Step::Rename(pairs) => {
                    for (old, new) in pairs {
                        if needed.keeps(new) {
                            needed.add(old);
                        }
                    }
                }
                Step::Filter(e) => needed.add_read(e),
                Step::Derive(name, e) => {
                    // The derived field replaces one of its name in place.
                    needed.add(name);
                    needed.add_read(e);
                }
                Step::Cast(pairs) => pairs.iter().for_each(|(col, _)| needed.add(col)),
            }
        }
        needed
    }
}

/// The bit of a name's length in [`Matcher::lengths`] (names of 63 bytes
/// and more share the last bit).
#[inline(always)]
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// [`Needed::keeps`] with the lengths of the needed names at hand: most
/// names that are not needed have a length that no needed name has, and
/// are passed over after one bit test.
pub struct Matcher<'n> {
    needed: &'n Needed,
    /// A bit per length of a needed name.
    lengths: u64,
}

impl Matcher<'_> {
    /// Whether the reader builds field `name`.
    #[inline(always)]
    pub fn keeps(&self, name: &str) -> bool {
        if self.lengths & length_bit(name.len()) == 0 {
            // No needed name of this length (ASCII case changes no length).
            let any_case = matches!(self.needed, Needed::Only { any_case: true, .. });
            return any_case && !name.is_ascii();
        }
        self.needed.keeps(name)
    }
}

/// A field as a filter reads it without a JSON value; `None` for a nested
/// value (it takes the full evaluation).
fn scalar_of<'f>(raw: Option<&'f Raw<'_>>) -> Option<Scalar<'f>> {
    Some(match raw {
        None | Some(Raw::Null) => Scalar::Null,
        Some(Raw::Bool(b)) => Scalar::Bool(*b),
        Some(Raw::Number(n)) => Scalar::Number(n),
        Some(Raw::Str(s)) => Scalar::Text(s),
        Some(Raw::Nested(_)) => return None,
    })
}

/// Name equality for the hot path: most names differ in length or in
/// their first or last byte, and short names compare a word at a time,
/// without a call to memcmp.
#[inline(always)]
fn same(a: &str, b: &str) -> bool {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    x.len() == y.len()
        && x.first() == y.first()
        && x.last() == y.last()
        && crate::format::swar::same_bytes(x, y)
}

fn get<'f>(fields: &'f Fields<'_>, name: &str) -> Option<&'f Raw<'f>> {
    fields.iter().find(|(n, _)| same(n, name)).map(|(_, v)| v)
}

/// Applies the steps: `Ok(None)` when a filter drops the record,
/// `Err(reason)` when it must be rejected.
pub fn apply<'a>(steps: &[Step], mut fields: Fields<'a>) -> Result<Option<Fields<'a>>, String> {
    Ok(apply_in_place(steps, &mut fields)?.then_some(fields))
}

/// Applies the steps to `fields` where they are: `Ok(false)` when a filter
/// drops the record, `Err(reason)` when it must be rejected.
pub fn apply_in_place(steps: &[Step], fields: &mut Fields<'_>) -> Result<bool, String> {
    for step in steps {
        match step {
            Step::Select(names) => {
                // In place: each named field moves to the front, in order.
                let mut kept = 0;
                for name in names {
                    if let Some(i) = fields[kept..].iter().position(|(n, _)| same(n, name)) {
                        fields.swap(kept, kept + i);
                        kept += 1;
                    }
                }
                fields.truncate(kept);
            }
            Step::Drop(names) => fields.retain(|(n, _)| !names.iter().any(|d| d == n)),
            Step::Rename(pairs) => {
                for (old, new) in pairs {
                    for (n, _) in fields.iter_mut().filter(|(n, _)| n == old) {
                        *n = Cow::Owned(new.clone());
                    }
                }
            }
            Step::Filter(e) => {
                // Most filters are decided on the borrowed fields.
                match e.test_with(&|name| scalar_of(get(fields, name))) {
                    Some(true) => continue,
                    Some(false) => return Ok(false),
                    None => {}
                }
                let v = e
                    .eval_with(&|name| field_value(fields, name))
                    .map_err(|e| format!("--filter: {e}"))?;
                if !expr::is_true(&v) {
                    return Ok(false);
                }
            }
            Step::Derive(name, e) => {
                let v = e
                    .eval_with(&|n| field_value(fields, n))
                    .map_err(|e| format!("--derive {name}: {e}"))?;
                let raw = raw_of(v);
                match fields.iter_mut().find(|(n, _)| n == name) {
                    Some((_, slot)) => *slot = raw,
                    None => fields.push((Cow::Owned(name.clone()), raw)),
                }
            }
            Step::Cast(pairs) => {
                for (col, t) in pairs {
                    if let Some((_, slot)) = fields.iter_mut().find(|(n, _)| n == col) {
                        // Text in a logical type's wire form stays as it is:
                        // checked where it lies.
                        if let Raw::Str(s) = slot
                            && !t.is_basic()
                            && !matches!(t, FieldType::Decimal(_))
                        {
                            check_logical(*t, s).map_err(|why| {
                                format!("--cast {col}: {} {why}", Value::String(s.to_string()))
                            })?;
                            continue;
                        }
                        let cast = value_of(col, slot)
                            .map_err(|e| e.to_string())
                            .and_then(|v| cast(&v, *t))
                            .map_err(|e| format!("--cast {col}: {e}"))?;
                        *slot = raw_of(cast);
                    }
                }
            }
        }
    }
    if fields
        .first()
        .is_some_and(|(n, _)| n == crate::wire::CONTROL_KEY)
    {
        return Err(crate::wire::CONTROL_KEY_FIRST.into());
    }
    Ok(true)
}

/// Writes fields as one JSON object (no newline).
pub fn write(out: &mut Vec<u8>, fields: &Fields<'_>) {
    out.push(b'{');
    for (i, (name, raw)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(out, name);
        out.push(b':');
        write_value(out, raw);
    }
    out.push(b'}');
}

#[inline(always)]
fn write_value(out: &mut Vec<u8>, raw: &Raw<'_>) {
    match raw {
        Raw::Null => out.extend_from_slice(b"null"),
        Raw::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Raw::Number(n) | Raw::Nested(n) => out.extend_from_slice(n.as_bytes()),
        Raw::Str(s) => json::write_str(out, s),
    }
}

/// [`write`] for a stream of records: the records of one stream repeat
/// their names in the same order, so each position keeps the encoded
/// name it wrote last (`{"id":`, `,"qty":`) and writes it again after
/// comparing the name.
#[derive(Default)]
pub struct Writer {
    keys: Vec<(String, Vec<u8>)>,
}

impl Writer {
    /// Writes fields as one JSON object (no newline).
    pub fn write(&mut self, out: &mut Vec<u8>, fields: &Fields<'_>) {
        for (i, (name, raw)) in fields.iter().enumerate() {
            match self.keys.get(i) {
                Some((known, key)) if same(known, name) => out.extend_from_slice(key),
                _ => self.learn(out, i, name),
            }
            write_value(out, raw);
        }
        out.extend_from_slice(if fields.is_empty() { b"{}" } else { b"}" });
    }

    /// A name at a position for the first time (or a new one there).
    #[cold]
    fn learn(&mut self, out: &mut Vec<u8>, i: usize, name: &str) {
        let mut key = vec![if i == 0 { b'{' } else { b',' }];
        key.extend_from_slice(&json::key_prefix(name));
        out.extend_from_slice(&key);
        let entry = (name.to_string(), key);
        match self.keys.get_mut(i) {
            Some(slot) => *slot = entry,
            None => self.keys.push(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat::parse_object;

    fn names(needed: &Needed) -> Vec<&str> {
        match needed {
            Needed::All => vec!["*"],
            Needed::Only { names, .. } => names.iter().map(String::as_str).collect(),
        }
    }

    #[test]
    fn only_the_fields_the_steps_read_are_needed() {
        let steps = |list: Vec<Step>| Needed::before(&list, Needed::All);
        let select = |n: &[&str]| Step::Select(n.iter().map(|s| s.to_string()).collect());
        assert_eq!(steps(vec![]), Needed::All);
        assert_eq!(
            steps(vec![Step::Filter(expr::parse("q > 1").unwrap())]),
            Needed::All
        );
        let filtered = steps(vec![
            Step::Filter(expr::parse("q > 1 and lower(s) = 'x'").unwrap()),
            select(&["id", "q"]),
        ]);
        assert_eq!(names(&filtered), ["id", "q", "s"]);
        // A field renamed into the selection is needed by its old name;
        // a cast and a derive are always evaluated.
        let renamed = steps(vec![
            Step::Cast(vec![("c".into(), crate::record::FieldType::Integer)]),
            Step::Derive("d".into(), expr::parse("a + 1").unwrap()),
            Step::Rename(vec![("old".into(), "new".into())]),
            select(&["new"]),
        ]);
        assert_eq!(names(&renamed), ["new", "old", "d", "a", "c"]);
        // After a select, a drop needs nothing more; a select after a
        // select needs only what both keep.
        assert_eq!(
            names(&steps(vec![
                select(&["a", "b"]),
                Step::Drop(vec!["a".into()])
            ])),
            ["a", "b"]
        );
        let query = Needed::Only {
            names: vec!["status".into()],
            any_case: true,
        };
        assert!(query.keeps("Status") && query.keeps("é") && !query.keeps("day"));
        // The matcher answers as the names do.
        for needed in [&query, &filtered, &renamed, &Needed::All] {
            let matcher = needed.matcher();
            for name in [
                "Status", "status", "é", "day", "id", "q", "s", "ss", "new", "old", "c", "",
            ] {
                assert_eq!(
                    matcher.keeps(name),
                    needed.keeps(name),
                    "{name:?} in {needed:?}"
                );
            }
        }
        let before_query = Needed::before(&[Step::Filter(expr::parse("q > 1").unwrap())], query);
        assert!(before_query.keeps("STATUS") && before_query.keeps("q"));
    }

    #[test]
    fn passing_over_fields_keeps_the_same_results() {
        let steps = vec![
            Step::Filter(expr::parse("qty > 1").unwrap()),
            Step::Rename(vec![("qty".into(), "n".into())]),
            Step::Select(vec!["id".into(), "n".into()]),
        ];
        let needed = Needed::before(&steps, Needed::All);
        for line in [
            &br#"{"id":1,"wide":"a\"b","qty":3,"x":[1,{"y":2}]}"#[..],
            br#"{"wide":null,"qty":1,"id":2}"#,
        ] {
            let full = apply(&steps, parse_object(line).unwrap()).unwrap();
            let mut lean = Vec::new();
            crate::format::flat::parse_object_keeping(line, &mut lean, |n| needed.keeps(n))
                .unwrap();
            assert_eq!(full, apply(&steps, lean).unwrap());
        }
        // A passed-over field is still checked.
        let mut lean = Vec::new();
        for bad in [
            &br#"{"id":1,"x":"\q"}"#[..],
            br#"{"id":1,"x":[1,}"#,
            br#"{"id":1,"x":01}"#,
        ] {
            assert!(
                crate::format::flat::parse_object_keeping(bad, &mut lean, |n| needed.keeps(n))
                    .is_err()
            );
        }
    }

    #[test]
    fn the_stream_writer_writes_what_write_does() {
        let mut writer = Writer::default();
        for line in [
            &br#"{"id":1,"q":"a\"b"}"#[..],
            br#"{"id":2,"q":3}"#,
            br#"{}"#,
            br#"{"q":4,"id":5,"x\u00e9":null}"#,
            br#"{"id":6}"#,
            br#"{"id":7,"q":[1,{"y":2}],"x\u00e9":true}"#,
        ] {
            let fields = parse_object(line).unwrap();
            let (mut ours, mut plain) = (Vec::new(), Vec::new());
            writer.write(&mut ours, &fields);
            write(&mut plain, &fields);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(plain).unwrap()
            );
        }
    }

    #[test]
    fn same_results_as_the_record_path() {
        let steps = vec![
            Step::Derive("total".into(), expr::parse("qty * 2").unwrap()),
            Step::Rename(vec![("qty".into(), "n".into())]),
            Step::Filter(expr::parse("n > 1").unwrap()),
            Step::Cast(vec![("id".into(), crate::record::FieldType::Text)]),
            Step::Select(vec!["id".into(), "total".into(), "n".into(), "s".into()]),
        ];
        let line = br#"{"id":12345678901234567890,"qty":3,"s":"a\"b"}"#;
        let fields = parse_object(line).unwrap();
        let out = apply(&steps, fields).unwrap().unwrap();
        let mut text = Vec::new();
        write(&mut text, &out);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"id":"12345678901234567890","total":6,"n":3,"s":"a\"b"}"#
        );
        let dropped = apply(&steps, parse_object(br#"{"id":1,"qty":1}"#).unwrap()).unwrap();
        assert!(dropped.is_none());
    }
}
