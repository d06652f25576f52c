//! What a message may show of text that came from outside.
//!
//! - A message is printed with its control characters escaped ([`line`]):
//!   a file name may hold a newline, which would split a one-line error in
//!   two and let a file name forge a line of its own.
//! - A credential is never shown. [`Redactor`] replaces the secrets it was
//!   given (tokens from `$NAME`, values of credential headers) and the value
//!   of every URL query parameter whose name says it is a credential
//!   (`?api_key=`, `sig=`, `X-Amz-Signature=`...), wherever they appear.
//! - A connection URL whose user info is ambiguous (an unencoded `@` after
//!   a `/`, `?` or `#`, or two of them) is refused by [`check_userinfo`]
//!   before anything shows or uses any part of it: the servers' own clients
//!   and etlkit would disagree on where the password ends, and a message
//!   would show the rest of it as a host or database name.

use anyhow::Result;

use crate::error::Failure;

/// What replaces a secret in messages.
pub const MASK: &str = "***";

/// Shorter values are not treated as secrets: masking every `2` because
/// `$API_VERSION` is 2 would garble messages and hide nothing.
const MIN_SECRET_LEN: usize = 4;

/// Does this header or query parameter name say that its value is a
/// credential? Names holding auth, token, key, secret, password, pwd,
/// session, signature, credential or jwt, and `cookie`, `sig`, `code`,
/// `pass`, `otp` (case-insensitive).
pub fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "cookie" | "sig" | "code" | "pass" | "otp" | "pw"
    ) || [
        "auth",
        "token",
        "key",
        "secret",
        "password",
        "passwd",
        "pwd",
        "session",
        "signature",
        "credential",
        "jwt",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Removes secrets from text that etlkit is about to show or write.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Each secret and its percent-encoded form, longest first.
    secrets: Vec<String>,
}

impl Redactor {
    /// Adds a secret (ignored when too short to be one).
    pub fn add(&mut self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        for form in [secret.to_string(), crate::percent::encode(secret)] {
            if !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// The text with every secret, and the value of every credential query
    /// parameter of a URL in it, replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        mask_credential_params(&out)
    }

    /// An error whose message is redacted. Its chain becomes one message;
    /// its exit code and hint stay, and a closed pipe stays one (its
    /// message holds nothing from outside).
    pub fn error(&self, err: anyhow::Error) -> anyhow::Error {
        crate::error::rewrite(err, |message| self.redact(message))
    }

    /// A JSON value with every string in it (keys too) redacted.
    pub fn value(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (self.redact(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Masks the value of each `?name=value` or `&name=value` in `text` whose
/// name is a credential's ([`is_credential_name`]). A value ends at `&`,
/// `#`, white space, a quote, `<`, `>` or `)`.
fn mask_credential_params(text: &str) -> String {
    if !text.contains('=') {
        return text.to_string();
    }
    let ends_name = |c: char| c == '=' || "?&#\"'<>() \t\r\n".contains(c);
    let ends_value = |c: char| "&#\"'<>) \t\r\n".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['?', '&']) {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let name_end = rest.find(ends_name).unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty()
            || !rest[name_end..].starts_with('=')
            || !is_credential_name(&crate::percent::decode_lenient(name))
        {
            continue;
        }
        let value = &rest[name_end + 1..];
        let value_end = value.find(ends_value).unwrap_or(value.len());
        out.push_str(name);
        out.push('=');
        if value_end > 0 {
            out.push_str(MASK);
        }
        rest = &value[value_end..];
    }
    out.push_str(rest);
    out
}

/// Refuses a `scheme://` URL whose user info cannot be told apart from the
/// rest: every `@` must lie in the authority (before the first `/`, `?` or
/// `#`), and there may be only one. Otherwise a password holding an
/// unencoded `@`, `/`, `?` or `#` is read one way by the server's client
/// (libpq ends the user info at the first `@` before a `/`), another by
/// other parsers, and what one takes for the host, database or query is
/// the rest of the password. The refusal (a usage error) shows no part of
/// the URL.
pub fn check_userinfo(url: &str) -> Result<()> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let ats = rest[..authority_end].matches('@').count();
    if ats > 1 || !ats_outside_are_query_values(&rest[authority_end..]) {
        return Err(Failure::new(
            crate::error::Kind::Usage,
            format!(
                "a {scheme}:// URL holds an '@' after a '/', '?' or '#', or more than one '@': \
                 where its password ends is ambiguous, so it is not used (nor shown)"
            ),
        )
        .hint(
            "percent-encode these characters in the user name, the password and the query: \
             @ as %40, / as %2F, ? as %3F, # as %23, : as %3A",
        )
        .into());
    }
    Ok(())
}

/// Whether every `@` past the authority (`tail`: path, query, fragment)
/// is plainly inside a query parameter's value (`?user=me@project`,
/// `&application_name=etl@nightly`): after the parameter's `=`, with no
/// `/` after it, which a host and database taken from a password would
/// have. An `@` in the path or fragment, or anywhere else in the query,
/// could end a password.
fn ats_outside_are_query_values(tail: &str) -> bool {
    let (before_fragment, fragment) = tail.split_once('#').unwrap_or((tail, ""));
    let (path, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    !path.contains('@')
        && !fragment.contains('@')
        && query.split('&').all(|pair| match pair.find('@') {
            None => true,
            Some(at) => pair[..at].contains('=') && !pair[at..].contains('/'),
        })
}

/// What [`crate::pg::conn::redact`] and its kin show for a URL that
/// [`check_userinfo`] refuses: the scheme alone.
pub fn refused_url(url: &str) -> Option<String> {
    let scheme = url.split_once("://")?.0;
    check_userinfo(url)
        .is_err()
        .then(|| format!("{scheme}://{MASK}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for name in [
            "Authorization",
            "X-Api-Key",
            "access_token",
            "sig",
            "JWT",
            "pwd",
            "code",
            "X-Amz-Credential",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
            "client_secret",
        ] {
            assert!(is_credential_name(name), "{name}");
        }
        for name in ["Accept", "limit", "page", "since", "X-Amz-Date"] {
            assert!(!is_credential_name(name), "{name}");
        }
    }

    #[test]
    fn redacts_plain_and_encoded_forms() {
        let mut r = Redactor::default();
        r.add("a+b/c secret");
        r.add("2");
        let text = "url ?k=a%2Bb%2Fc%20secret and a+b/c secret, version 2";
        assert_eq!(r.redact(text), "url ?k=*** and ***, version 2");
    }

    #[test]
    fn credential_query_values_are_masked_wherever_a_url_shows() {
        let r = Redactor::default();
        assert_eq!(
            r.redact(
                "page 2 (https://h/x?limit=5&sig=AbC%2Bd&X-Amz-Signature=f00d&jwt=e.y.J#frag): \
                 HTTP 404"
            ),
            "page 2 (https://h/x?limit=5&sig=***&X-Amz-Signature=***&jwt=***#frag): HTTP 404"
        );
        assert_eq!(
            r.redact("links to /a?pwd=x y&code=1"),
            "links to /a?pwd=*** y&code=***"
        );
        assert_eq!(r.redact("a=b & c=d ?=x"), "a=b & c=d ?=x");
        assert_eq!(r.redact("https://h/x?token="), "https://h/x?token=");
    }

    #[test]
    fn redacts_json_values() {
        let mut r = Redactor::default();
        r.add("tok-123456");
        let value = serde_json::json!({"echo": "Bearer tok-123456", "n": [1, "tok-123456"]});
        assert_eq!(
            r.value(&value),
            serde_json::json!({"echo": "Bearer ***", "n": [1, "***"]})
        );
    }

    #[test]
    fn ambiguous_user_info_is_refused_without_showing_it() {
        for url in [
            "postgres://u:p@S3cr3t/w?rd@h0st/db",
            "postgres://u:S@S3cr3t/c%r#e?t@h0st/db",
            "postgres://u:pa/S3cr3t@h0st/db",
            "postgres://u:a?S3cr3t@h0st/db",
            "postgres://u:p@S3cr3t@h0st/db",
            "mysql://u:p@S3cr3t/w@h0st/db",
            "redis://:p@S3cr3t/w@h0st:6379",
            "postgres://u:p?x=y@h0st/db",
            "postgres://h0st/d@S3cr3t",
        ] {
            let err = check_userinfo(url).unwrap_err();
            let text = format!("{err:#}");
            assert!(!text.contains("S3cr3t") && !text.contains("h0st"), "{text}");
            assert_eq!(crate::error::exit_code_for(&err), 2);
            assert!(refused_url(url).is_some_and(|s| s.ends_with("://***")));
        }
        for url in [
            "postgres://u:p%40ss%2Fw@host/db?sslmode=disable",
            "postgres://host/db",
            "mysql://u@h/db?user=a%40b",
            "postgres://127.0.0.1/test?user=postgres&application_name=etl@nightly",
            "postgres://h/db?user=me@project.iam&sslmode=require",
            "redis://:pw@127.0.0.1:6379/0",
            "not a url",
        ] {
            assert!(check_userinfo(url).is_ok(), "{url}");
            assert_eq!(refused_url(url), None);
        }
    }
}
