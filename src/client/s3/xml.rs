//! The few XML answers the S3 client reads (a listing page, an upload id,
//! an error's code and message) are flat documents of known elements:
//! this finds an element's text by name, and undoes XML's escapes. It is
//! no XML parser and reads nothing else.

/// The text of every `<name>…</name>` in `doc`, in order, unescaped
/// (elements nested inside are returned as their raw text).
pub fn all<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut found = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// The text of the first `<name>…</name>`, unescaped.
pub fn first(doc: &str, name: &str) -> Option<String> {
    all(doc, name).first().map(|t| unescape(t))
}

/// Undoes `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` and numeric references.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` escaped for an element's content.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_and_unescapes() {
        let doc = "<R><Contents><Key>a&amp;b</Key></Contents><Contents><Key>c&#x41;&#66;</Key></Contents><IsTruncated>false</IsTruncated></R>";
        let keys: Vec<String> = all(doc, "Contents")
            .iter()
            .filter_map(|c| first(c, "Key"))
            .collect();
        assert_eq!(keys, ["a&b", "cAB"]);
        assert_eq!(first(doc, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(first(doc, "Missing"), None);
        assert_eq!(unescape("x & y &zz; &lt;"), "x & y &zz; <");
        assert_eq!(escape("\"a\"<&>"), "&quot;a&quot;&lt;&amp;&gt;");
    }
}
