//! Where things are in a page: `--records`, `--next` and `--cursor-path`
//! name a place in the response body, as a JSON pointer (`/data/items`,
//! RFC 6901) or a dotted path (`data.items`, `links.next`).

use std::fmt;

use anyhow::{Result, bail};
use serde_json::Value;

/// A place in a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<String>,
}

impl JsonPath {
    /// Parses a JSON pointer (starts with `/`) or a dotted path; the empty
    /// string is the whole document.
    pub fn parse(text: &str) -> Result<JsonPath> {
        let steps = if text.is_empty() {
            Vec::new()
        } else if let Some(pointer) = text.strip_prefix('/') {
            pointer
                .split('/')
                .map(|step| {
                    if step.replace("~0", "").replace("~1", "").contains('~') {
                        bail!("JSON pointer {text:?}: '~' must be written ~0 (and '/' as ~1)");
                    }
                    Ok(step.replace("~1", "/").replace("~0", "~"))
                })
                .collect::<Result<_>>()?
        } else {
            let steps: Vec<String> = text.split('.').map(str::to_string).collect();
            if steps.iter().any(String::is_empty) {
                bail!(
                    "path {text:?} has an empty step; write a field with dots in its \
                     name as a JSON pointer (/a.b/c)"
                );
            }
            steps
        };
        Ok(JsonPath {
            text: text.to_string(),
            steps,
        })
    }

    /// A path to one top-level field.
    pub fn field(name: &str) -> JsonPath {
        JsonPath {
            text: name.to_string(),
            steps: vec![name.to_string()],
        }
    }

    /// The whole document.
    pub fn root() -> JsonPath {
        JsonPath {
            text: String::new(),
            steps: Vec::new(),
        }
    }

    /// The value at this place; `None` when a step is missing. A numeric
    /// step indexes an array.
    pub fn find<'a>(&self, document: &'a Value) -> Option<&'a Value> {
        let mut here = document;
        for step in &self.steps {
            here = match here {
                Value::Object(fields) => fields.get(step)?,
                Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(here)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            f.write_str("(the whole body)")
        } else {
            f.write_str(&self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_and_dotted_paths_find_the_same_places() {
        let doc = json!({"data": {"items": [1, 2], "a.b": {"c/d": 3, "e~f": 4}}, "links": [{"next": "x"}]});
        let find = |p: &str| JsonPath::parse(p).unwrap().find(&doc).cloned();
        assert_eq!(find("data.items"), Some(json!([1, 2])));
        assert_eq!(find("/data/items"), Some(json!([1, 2])));
        assert_eq!(find("/data/a.b/c~1d"), Some(json!(3)));
        assert_eq!(find("/data/a.b/e~0f"), Some(json!(4)));
        assert_eq!(find("links.0.next"), Some(json!("x")));
        assert_eq!(find("data.items.5"), None);
        assert_eq!(find("data.missing"), None);
        assert_eq!(find(""), Some(doc.clone()));
        assert!(JsonPath::parse("a..b").is_err());
        assert!(JsonPath::parse("/a~2").is_err());
    }
}
