//! Which page comes next, and the proof that the pages move.
//!
//! An API that repeats itself (the same next link or cursor twice, or the
//! same records again, under a new URL or because it ignores the offset
//! parameter) would make a naive client loop forever or load the same rows
//! again and again. A [`Pager`] remembers every link and cursor it followed
//! and a fingerprint of every page's records (8 bytes a page, never the
//! records), and fails the run ("pagination did not advance") instead.

use std::collections::HashMap;
use std::hash::Hasher as _;

use anyhow::{Result, bail};
use serde_json::Value;

use super::path::JsonPath;
use super::secrets::NameValue;
use super::url::Url;

/// How an API hands out its pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// RFC 8288 `Link: <...>; rel="next"` headers, when the server sends
    /// them; one page when it does not.
    LinkHeader,
    /// The next page's URL at a place in the body (`--next`).
    NextLink(JsonPath),
    /// An opaque token at a place in the body (`--cursor-path`), sent back
    /// as a query parameter (`--cursor-param`).
    Cursor {
        /// The query parameter that carries the token.
        param: String,
        /// Where the token is in the body.
        path: JsonPath,
    },
    /// The number of records already read, as a query parameter
    /// (`--offset-param`); an empty page is the last.
    Offset {
        /// The query parameter.
        param: String,
    },
    /// A page number (`--page-param`, from `--first-page`); an empty page
    /// is the last.
    PageNumber {
        /// The query parameter.
        param: String,
        /// The number of the first page (usually 0 or 1).
        first: u64,
    },
}

/// What the pager needs to know about a page it was given.
pub struct Page<'a> {
    /// Its number, from 1.
    pub number: u64,
    /// The URL it was fetched from.
    pub url: &'a Url,
    /// The parsed body.
    pub body: &'a Value,
    /// The values of its `Link` headers.
    pub links: &'a [String],
    /// How many records it held.
    pub records: usize,
    /// A fingerprint of its records ([`fingerprint`]).
    pub fingerprint: u64,
}

/// A 64-bit fingerprint of a page's records, hashed as they serialise
/// (no copy of the page is made).
pub fn fingerprint(records: &[Value]) -> u64 {
    struct Hashing(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(std::collections::hash_map::DefaultHasher::new());
    // Writing into a hasher cannot fail, and a Value always serialises.
    let _ = serde_json::to_writer(&mut hashing, records);
    hashing.0.finish()
}

/// Walks the pages of one run.
#[derive(Debug)]
pub struct Pager {
    style: Pagination,
    start: Url,
    /// The `--param`s, set again on every link followed: a next link the
    /// API builds need not carry them.
    params: Vec<NameValue>,
    /// Links followed and cursors sent, with the page that used them.
    seen: HashMap<String, u64>,
    /// The fingerprints of the records of every page read so far, with the
    /// page that held them.
    pages: HashMap<u64, u64>,
    offset: u64,
    /// The cursor the last page was asked for with.
    sent: Option<String>,
}

impl Pager {
    /// A pager from `start` (the URL with the run's own parameters);
    /// `params` are set on every link followed.
    pub fn new(style: Pagination, start: Url, params: Vec<NameValue>) -> Pager {
        let mut seen = HashMap::new();
        seen.insert(start.to_string(), 1);
        Pager {
            style,
            start,
            params,
            seen,
            pages: HashMap::new(),
            offset: 0,
            sent: None,
        }
    }

    /// The first page's URL.
    pub fn first(&self) -> Url {
        match &self.style {
            Pagination::Offset { param } => self.start.with_param(param, "0"),
            Pagination::PageNumber { param, first } => {
                self.start.with_param(param, &first.to_string())
            }
            _ => self.start.clone(),
        }
    }

    /// The URL of the page after `page`, or `None` when it was the last.
    /// Fails when the pagination would not advance (a page holding the
    /// same records as an earlier one, whatever its URL, included), or
    /// would leave the API's server (its headers carry credentials).
    pub fn next(&mut self, page: &Page<'_>) -> Result<Option<Url>> {
        if page.records > 0 {
            self.check_new_records(page)?;
        }
        let style = self.style.clone();
        match &style {
            Pagination::LinkHeader => {
                let Some(link) = page.links.iter().find_map(|v| next_link(v)) else {
                    if let Some(advice) = unfollowed_pages(page.body) {
                        bail!(
                            "page {}: {advice}; without that only this page would be read",
                            page.number
                        );
                    }
                    return Ok(None);
                };
                self.follow(page, &link, "Link header")
            }
            Pagination::NextLink(path) => {
                let link = match path.find(page.body) {
                    None | Some(Value::Null) => return Ok(None),
                    Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => bail!(
                        "page {}: --next {path} is {}, not a URL",
                        page.number,
                        crate::record::describe_kind(other)
                    ),
                };
                let where_ = format!("--next {path}");
                self.follow(page, &link, &where_)
            }
            Pagination::Cursor { param, path } => {
                let token = match path.find(page.body) {
                    None | Some(Value::Null | Value::Bool(false)) => return Ok(None),
                    Some(Value::String(s)) if s.is_empty() => return Ok(None),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(other) => bail!(
                        "page {}: --cursor-path {path} is {}, not a token",
                        page.number,
                        crate::record::describe_kind(other)
                    ),
                };
                // An empty page that hands back the cursor it was asked
                // with says "nothing more yet" (APIs meant for polling do).
                if page.records == 0 && self.sent.as_deref() == Some(token.as_str()) {
                    return Ok(None);
                }
                if let Some(first) = self.seen.insert(format!("cursor {token}"), page.number) {
                    bail!(
                        "pagination did not advance: page {} returned the cursor {token:?} \
                         that page {first} returned already",
                        page.number
                    );
                }
                let next = self.start.with_param(param, &token);
                self.sent = Some(token);
                Ok(Some(next))
            }
            Pagination::Offset { param } => {
                if page.records == 0 {
                    return Ok(None);
                }
                self.offset += page.records as u64;
                Ok(Some(self.start.with_param(param, &self.offset.to_string())))
            }
            Pagination::PageNumber { param, first } => {
                if page.records == 0 {
                    return Ok(None);
                }
                let next = first + page.number;
                Ok(Some(self.start.with_param(param, &next.to_string())))
            }
        }
    }

    fn follow(&mut self, page: &Page<'_>, link: &str, where_: &str) -> Result<Option<Url>> {
        let mut url = page.url.join(link).map_err(|e| {
            anyhow::anyhow!(
                "page {}: the next link ({where_}) is not usable: {e}",
                page.number
            )
        })?;
        for param in &self.params {
            url = url.with_param(&param.name, &param.value);
        }
        // An empty page linking to itself says "nothing more yet".
        if page.records == 0 && url == *page.url {
            return Ok(None);
        }
        if url.origin() != self.start.origin() {
            bail!(
                "page {}: the next link ({where_}) leaves {} for {}; etlkit does not send \
                 the API's headers to another server",
                page.number,
                self.start.origin(),
                url.origin()
            );
        }
        if let Some(first) = self.seen.insert(url.to_string(), page.number + 1) {
            bail!(
                "pagination did not advance: page {} links ({where_}) to {url}, \
                 which was page {first}",
                page.number
            );
        }
        Ok(Some(url))
    }

    /// Fails when `page` holds the same records as an earlier page: loading
    /// them again would double them downstream.
    fn check_new_records(&mut self, page: &Page<'_>) -> Result<()> {
        let Some(&first) = self.pages.get(&page.fingerprint) else {
            self.pages.insert(page.fingerprint, page.number);
            return Ok(());
        };
        let hint = match &self.style {
            Pagination::Offset { param } | Pagination::PageNumber { param, .. } => {
                format!(" (does the API read the {param:?} parameter?)")
            }
            _ => String::new(),
        };
        bail!(
            "pagination did not advance: page {} holds the same records as page {first}{hint}",
            page.number
        );
    }
}

/// Objects of a body where APIs put their paging fields.
const PAGING_OBJECTS: [&str; 8] = [
    "links",
    "_links",
    "meta",
    "pagination",
    "paging",
    "response_metadata",
    "page_info",
    "pageinfo",
];

/// What to do about a body that says more pages follow (a non-empty
/// `next...` field, `has_more: true`) when no pagination was chosen and no
/// Link header came: reading one page and calling it complete would drop
/// the rest silently.
fn unfollowed_pages(body: &Value) -> Option<String> {
    let Value::Object(top) = body else {
        return None;
    };
    let mut places = vec![(Vec::new(), top)];
    for (key, value) in top {
        if let Value::Object(inner) = value
            && PAGING_OBJECTS.contains(&key.to_ascii_lowercase().as_str())
        {
            places.push((vec![key.as_str()], inner));
        }
    }
    let choose = "choose --next, --cursor-param with --cursor-path, --offset-param or --page-param";
    for (prefix, fields) in places {
        for (key, value) in fields {
            let lower = key.to_ascii_lowercase();
            let mut steps = prefix.clone();
            steps.push(key.as_str());
            let flag = matches!(lower.as_str(), "has_more" | "hasmore" | "more")
                || (lower.contains("next") && value.is_boolean());
            if flag {
                if value == &Value::Bool(true) {
                    return Some(format!(
                        "the response says {} is true, but no pagination was chosen: {choose}",
                        path_text(&steps)
                    ));
                }
                continue;
            }
            if !lower.contains("next") {
                continue;
            }
            let (value, steps) = match value.get("href").filter(|h| h.is_string()) {
                Some(href) => (href, [steps, vec!["href"]].concat()),
                None => (value, steps),
            };
            let more = match value {
                Value::String(s) => !s.trim().is_empty(),
                Value::Number(_) => true,
                _ => false,
            };
            if !more {
                continue;
            }
            let path = path_text(&steps);
            let flags = if lower.contains("cursor") || lower.contains("token") {
                format!("--cursor-param NAME --cursor-path {path}")
            } else {
                format!("--next {path}")
            };
            return Some(format!(
                "the response has a next page ({path} is {}) but no pagination was chosen \
                 and no Link header came: follow it with {flags}",
                crate::record::preview(value)
            ));
        }
    }
    None
}

/// A place as a user writes it: dotted, or a JSON pointer when a step holds
/// a dot or slash.
fn path_text(steps: &[&str]) -> String {
    if steps.iter().any(|s| s.contains(['.', '/', '~'])) {
        steps
            .iter()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect()
    } else {
        steps.join(".")
    }
}

/// The `rel="next"` target of one `Link` header value (RFC 8288), if any:
/// `<https://api/x?page=2>; rel="next", <...>; rel="last"`.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        // The parameters run to the next link (a comma outside quotes).
        let mut end = after.len();
        let mut quoted = false;
        for (i, c) in after.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let params = &after[..end];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_string());
        }
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page<'a>(number: u64, url: &'a Url, body: &'a Value, links: &'a [String]) -> Page<'a> {
        let records = body
            .get("data")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Page {
            number,
            url,
            body,
            links,
            records,
            fingerprint: body["data"]
                .as_array()
                .map_or(0, |records| fingerprint(records)),
        }
    }

    #[test]
    fn link_headers_name_the_next_page() {
        assert_eq!(
            next_link(r#"<https://a/x?page=1>; rel="prev", <https://a/x?page=3>; rel="next""#),
            Some("https://a/x?page=3".into())
        );
        assert_eq!(
            next_link(r#"</x?p=2>; title="a, b"; rel="last next""#),
            Some("/x?p=2".into())
        );
        assert_eq!(
            next_link("<https://a/x?page=9>; REL=next"),
            Some("https://a/x?page=9".into())
        );
        assert_eq!(next_link(r#"<https://a/x>; rel="last""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn a_repeated_cursor_fails_the_run() {
        let start = Url::parse("http://h/orders?limit=2").unwrap();
        let style = Pagination::Cursor {
            param: "cursor".into(),
            path: JsonPath::parse("meta.next").unwrap(),
        };
        let mut pager = Pager::new(style, start.clone(), Vec::new());
        let body = json!({"data": [1, 2], "meta": {"next": "abc"}});
        let next = pager.next(&page(1, &start, &body, &[])).unwrap().unwrap();
        assert_eq!(next.to_string(), "http://h/orders?limit=2&cursor=abc");
        let err = pager
            .next(&page(2, &next, &body, &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("pagination did not advance: page 2"),
            "{err}"
        );
        let last = json!({"data": [], "meta": {"next": null}});
        assert_eq!(pager.next(&page(3, &next, &last, &[])).unwrap(), None);
    }

    #[test]
    fn next_links_resolve_and_must_stay_on_the_server() {
        let start = Url::parse("http://h/v1/orders").unwrap();
        let mut pager = Pager::new(
            Pagination::NextLink(JsonPath::field("next")),
            start.clone(),
            Vec::new(),
        );
        let body = json!({"data": [1], "next": "?page=2"});
        let second = pager.next(&page(1, &start, &body, &[])).unwrap().unwrap();
        assert_eq!(second.to_string(), "http://h/v1/orders?page=2");
        let back = json!({"data": [2], "next": "/v1/orders"});
        let err = pager
            .next(&page(2, &second, &back, &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did not advance") && err.contains("which was page 1"),
            "{err}"
        );
        let away = json!({"data": [3], "next": "https://evil.example/steal"});
        let err = pager
            .next(&page(2, &second, &away, &[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not send"), "{err}");
        assert_eq!(
            pager
                .next(&page(2, &second, &json!({"data": []}), &[]))
                .unwrap(),
            None
        );
    }

    #[test]
    fn an_empty_page_handing_back_its_own_cursor_or_link_is_the_end() {
        let start = Url::parse("http://h/x").unwrap();
        let style = Pagination::Cursor {
            param: "c".into(),
            path: JsonPath::field("next"),
        };
        let mut pager = Pager::new(style, start.clone(), Vec::new());
        let full = json!({"data": [1], "next": "t1"});
        let second = pager.next(&page(1, &start, &full, &[])).unwrap().unwrap();
        let empty = json!({"data": [], "next": "t1"});
        assert_eq!(pager.next(&page(2, &second, &empty, &[])).unwrap(), None);

        let mut pager = Pager::new(
            Pagination::NextLink(JsonPath::field("next")),
            start.clone(),
            Vec::new(),
        );
        let itself = json!({"data": [], "next": "/x"});
        assert_eq!(pager.next(&page(1, &start, &itself, &[])).unwrap(), None);
    }

    #[test]
    fn a_paginated_body_without_chosen_pagination_fails() {
        let start = Url::parse("http://h/x").unwrap();
        let mut pager = Pager::new(Pagination::LinkHeader, start.clone(), Vec::new());
        let advice = |body: Value| unfollowed_pages(&body).unwrap_or_default();
        assert!(
            advice(json!({"data": [1], "next": "/x?p=2"})).ends_with("follow it with --next next")
        );
        assert!(
            advice(json!({"data": [1], "meta": {"next_cursor": "abc"}}))
                .ends_with("--cursor-param NAME --cursor-path meta.next_cursor")
        );
        assert!(
            advice(json!({"value": [], "@odata.nextLink": "https://h/x?$skip=10"}))
                .ends_with("--next /@odata.nextLink")
        );
        assert!(
            advice(json!({"_links": {"next": {"href": "/x?p=2"}}}))
                .ends_with("--next _links.next.href")
        );
        assert!(advice(json!({"data": [], "has_more": true})).contains("has_more is true"));
        for finished in [
            json!({"data": [1], "next": null}),
            json!({"data": [1], "next": ""}),
            json!({"data": [1], "has_more": false, "meta": {"next_cursor": null}}),
            json!({"data": [1], "_links": {"next": null}}),
            json!([1, 2]),
        ] {
            assert_eq!(unfollowed_pages(&finished), None, "{finished}");
        }
        let err = pager
            .next(&page(
                1,
                &start,
                &json!({"data": [1], "next": "/x?p=2"}),
                &[],
            ))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("page 1: the response has a next page"),
            "{err}"
        );
    }

    #[test]
    fn offsets_and_page_numbers_end_at_an_empty_page() {
        let start = Url::parse("http://h/x").unwrap();
        let mut pager = Pager::new(
            Pagination::Offset {
                param: "offset".into(),
            },
            start.clone(),
            Vec::new(),
        );
        assert_eq!(pager.first().to_string(), "http://h/x?offset=0");
        let one = json!({"data": [1, 2, 3]});
        let next = pager.next(&page(1, &start, &one, &[])).unwrap().unwrap();
        assert_eq!(next.to_string(), "http://h/x?offset=3");
        let err = pager
            .next(&page(2, &next, &one, &[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("same records as page 1"), "{err}");

        let style = Pagination::PageNumber {
            param: "page".into(),
            first: 1,
        };
        let mut pager = Pager::new(style, start.clone(), Vec::new());
        assert_eq!(pager.first().to_string(), "http://h/x?page=1");
        let next = pager.next(&page(1, &start, &one, &[])).unwrap().unwrap();
        assert_eq!(next.to_string(), "http://h/x?page=2");
        let empty = json!({"data": []});
        assert_eq!(pager.next(&page(2, &next, &empty, &[])).unwrap(), None);
    }

    #[test]
    fn a_page_repeating_any_earlier_page_fails_whatever_its_url() {
        let start = Url::parse("http://h/x").unwrap();
        let mut pager = Pager::new(
            Pagination::NextLink(JsonPath::field("next")),
            start.clone(),
            Vec::new(),
        );
        let mut url = start.clone();
        for (number, data) in [(1, json!([1, 2])), (2, json!([3, 4])), (3, json!([5]))] {
            let body = json!({"data": data, "next": format!("/x?p={}", number + 1)});
            url = pager
                .next(&page(number, &url, &body, &[]))
                .unwrap()
                .unwrap();
        }
        let again = json!({"data": [3, 4], "next": "/x?p=5"});
        let err = pager
            .next(&page(4, &url, &again, &[]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "pagination did not advance: page 4 holds the same records as page 2"
        );
    }

    #[test]
    fn params_are_set_on_every_link_followed() {
        let start = Url::parse("http://h/x?status=open").unwrap();
        let params = vec![NameValue {
            name: "status".into(),
            value: "open".into(),
        }];
        let mut pager = Pager::new(Pagination::LinkHeader, start.clone(), params);
        let body = json!({"data": [1]});
        let links = [r#"</x?page=2>; rel="next""#.to_string()];
        let next = pager
            .next(&page(1, &start, &body, &links))
            .unwrap()
            .unwrap();
        assert_eq!(next.to_string(), "http://h/x?page=2&status=open");
    }
}
