//! Data contracts for `--validate`: required fields, types, not-null,
//! allowed values and key uniqueness. A record that breaks a rule is
//! rejected with the rule's name; the others flow on.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::error::usage;
use crate::record::FieldType;

/// A parsed contract, and the keys seen so far for `unique`.
#[derive(Debug, Default)]
pub struct Contract {
    required: Vec<String>,
    not_null: Vec<String>,
    types: Vec<(String, FieldType)>,
    allowed: Vec<(String, Vec<Value>)>,
    unique: Vec<String>,
    /// Hashes of the unique keys seen (16 bytes a key, see `held`).
    seen: HashSet<super::held::Key>,
}

fn names(doc: &Value, key: &str) -> Vec<String> {
    doc.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

impl Contract {
    /// Reads a contract file.
    pub fn load(path: &Path) -> Result<Contract> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read contract {}", path.display()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "contract {} is not valid JSON: {e}",
                path.display()
            ))
        })?;
        if !doc.is_object() {
            return Err(usage(format!(
                "contract {} must be a JSON object",
                path.display()
            )));
        }
        let mut types = Vec::new();
        if let Some(Value::Object(t)) = doc.get("types") {
            for (field, ty) in t {
                let parsed = ty
                    .as_str()
                    .and_then(FieldType::from_name)
                    .filter(|t| t.is_basic())
                    .ok_or_else(|| {
                    usage(format!(
                        "contract {}: type of {field:?} must be integer, float, boolean, text or json",
                        path.display()
                    ))
                })?;
                types.push((field.clone(), parsed));
            }
        }
        let allowed = match doc.get("allowed") {
            Some(Value::Object(a)) => a
                .iter()
                .map(|(f, v)| (f.clone(), v.as_array().cloned().unwrap_or_default()))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Contract {
            required: names(&doc, "required"),
            not_null: names(&doc, "not_null"),
            types,
            allowed,
            unique: names(&doc, "unique"),
            seen: HashSet::new(),
        })
    }

    /// Checks a record; the error names the rule and the field.
    pub fn check(&mut self, record: &Map<String, Value>) -> Result<(), String> {
        for f in &self.required {
            if !record.contains_key(f) {
                return Err(format!("contract rule required: field {f:?} is missing"));
            }
        }
        for f in &self.not_null {
            if record.get(f).is_none_or(Value::is_null) {
                return Err(format!("contract rule not_null: field {f:?} is null"));
            }
        }
        for (f, t) in &self.types {
            let Some(v) = record.get(f).filter(|v| !v.is_null()) else {
                continue;
            };
            let ok = match t {
                FieldType::Integer => v
                    .as_number()
                    .is_some_and(|n| crate::format::infer::is_integer(&n.to_string())),
                FieldType::Float => v.is_number(),
                FieldType::Boolean => v.is_boolean(),
                FieldType::Text => v.is_string(),
                FieldType::Json => v.is_object() || v.is_array(),
                // A contract names only the version-1 types (see `load`).
                _ => v.is_string(),
            };
            if !ok {
                return Err(format!(
                    "contract rule types: field {f:?} should be {} but is {v}",
                    t.name()
                ));
            }
        }
        for (f, values) in &self.allowed {
            if let Some(v) = record.get(f).filter(|v| !v.is_null())
                && !values.contains(v)
            {
                return Err(format!(
                    "contract rule allowed: field {f:?} has {v}, which is not allowed"
                ));
            }
        }
        if !self.unique.is_empty()
            && !self
                .seen
                .insert(super::held::key_hash(record, &self.unique))
        {
            let key: Vec<String> = self
                .unique
                .iter()
                .map(|k| record.get(k).map_or("null".into(), Value::to_string))
                .collect();
            return Err(format!(
                "contract rule unique: key ({}) = ({}) was seen before",
                self.unique.join(", "),
                key.join(", ")
            ));
        }
        Ok(())
    }
}
