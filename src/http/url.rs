//! Just enough of RFC 3986 for paging through an API: split an absolute
//! http(s) URL, resolve a relative next link against the page it came from,
//! and set query parameters. The `url` crate would do this too, but it
//! brings the whole IDNA tables for four functions.

use anyhow::{Result, bail};

/// An absolute `http://` or `https://` URL, split into its parts (the
/// fragment is dropped: it is never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`, lowercase.
    pub scheme: String,
    /// Host and optional port, as written (no user info).
    pub authority: String,
    /// The path, `/` when empty.
    pub path: String,
    /// The query without its `?`, if there is one.
    pub query: Option<String>,
}

/// True when an input argument names an HTTP(S) URL rather than a file.
pub fn is_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

impl Url {
    /// Parses an absolute http(s) URL.
    pub fn parse(text: &str) -> Result<Url> {
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!("not an absolute http:// or https:// URL");
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            bail!("only http:// and https:// URLs are supported");
        }
        if text
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_control())
        {
            bail!("a URL may not contain spaces or control characters (percent-encode them)");
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            bail!(
                "a user name or password in the URL would show in the process list; \
                 send credentials with --header 'Authorization: Basic $API_BASIC' instead"
            );
        }
        if authority.is_empty() {
            bail!("the URL has no host");
        }
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (tail, None),
        };
        Ok(Url {
            scheme,
            authority: authority.to_string(),
            path: if path.is_empty() { "/" } else { path }.to_string(),
            query,
        })
    }

    /// Scheme, host and port (default ports made explicit): two URLs with
    /// the same origin are the same server.
    pub fn origin(&self) -> String {
        let authority = self.authority.to_ascii_lowercase();
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
            && !authority.ends_with(']');
        if has_port {
            format!("{}://{authority}", self.scheme)
        } else {
            let port = if self.scheme == "https" { 443 } else { 80 };
            format!("{}://{authority}:{port}", self.scheme)
        }
    }

    /// Resolves a reference found in a page (absolute, `//host/...`,
    /// `/path`, `?query` or a relative path) against this URL (RFC 3986 5.2).
    pub fn join(&self, reference: &str) -> Result<Url> {
        let reference = reference.trim();
        if is_url(reference) {
            return Url::parse(reference);
        }
        if reference.contains("://") {
            bail!("{reference:?} is not an http:// or https:// URL");
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme));
        }
        let reference = reference.split('#').next().unwrap_or_default();
        let (ref_path, ref_query) = match reference.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (reference, None),
        };
        let (path, query) = if ref_path.is_empty() {
            (self.path.clone(), ref_query.or_else(|| self.query.clone()))
        } else if ref_path.starts_with('/') {
            (remove_dot_segments(ref_path), ref_query)
        } else {
            let base = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
            (remove_dot_segments(&format!("{base}{ref_path}")), ref_query)
        };
        Ok(Url {
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            path: if path.is_empty() { "/".into() } else { path },
            query,
        })
    }

    /// The same URL with query parameter `name` set to `value` (encoded):
    /// the first existing one replaced and later ones dropped, else appended.
    pub fn with_param(&self, name: &str, value: &str) -> Url {
        let name = encode(name);
        let pair = format!("{name}={}", encode(value));
        let mut pairs: Vec<String> = Vec::new();
        let mut replaced = false;
        for existing in self.query.iter().flat_map(|q| q.split('&')) {
            let existing_name = existing.split('=').next().unwrap_or_default();
            if existing_name == name {
                if !replaced {
                    pairs.push(pair.clone());
                    replaced = true;
                }
            } else if !existing.is_empty() {
                pairs.push(existing.to_string());
            }
        }
        if !replaced {
            pairs.push(pair);
        }
        Url {
            query: Some(pairs.join("&")),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

pub use crate::percent::encode;

/// RFC 3986 5.2.4: `/a/b/../c/./d` becomes `/a/c/d`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if path.starts_with('/') && !joined.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let u = url("HTTPS://api.example.com:8443/v1/orders?limit=10#frag");
        assert_eq!(u.scheme, "https");
        assert_eq!(u.authority, "api.example.com:8443");
        assert_eq!(u.path, "/v1/orders");
        assert_eq!(u.query.as_deref(), Some("limit=10"));
        assert_eq!(
            u.to_string(),
            "https://api.example.com:8443/v1/orders?limit=10"
        );
        assert_eq!(url("http://h").to_string(), "http://h/");
        assert!(Url::parse("ftp://h/x").is_err());
        assert!(Url::parse("https://user:pw@h/x").is_err());
        assert!(Url::parse("https:///x").is_err());
        assert!(Url::parse("https://h/a b").is_err());
    }

    #[test]
    fn origins_make_default_ports_explicit() {
        assert_eq!(url("https://H.example/x").origin(), "https://h.example:443");
        assert_eq!(url("http://h:8080/x").origin(), "http://h:8080");
        assert_eq!(url("http://[::1]/x").origin(), "http://[::1]:80");
        assert_eq!(url("http://[::1]:81/x").origin(), "http://[::1]:81");
    }

    #[test]
    fn joins_references_as_rfc_3986_does() {
        let base = url("http://a/b/c/d;p?q");
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("https://other/x?p=1", "https://other/x?p=1"),
        ];
        for (reference, expected) in cases {
            assert_eq!(
                base.join(reference).unwrap().to_string(),
                expected,
                "{reference}"
            );
        }
        assert!(base.join("ftp://x/y").is_err());
    }

    #[test]
    fn sets_query_parameters() {
        let u = url("http://h/x?a=1&limit=5&b=2&limit=7");
        assert_eq!(
            u.with_param("limit", "100").to_string(),
            "http://h/x?a=1&limit=100&b=2"
        );
        assert_eq!(
            url("http://h/x")
                .with_param("since", "2026-11-05T09:00:00+01:00")
                .to_string(),
            "http://h/x?since=2026-11-05T09%3A00%3A00%2B01%3A00"
        );
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
