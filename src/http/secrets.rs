//! Credentials for an API, kept out of sight.
//!
//! `--header 'Authorization: Bearer $API_TOKEN'` is written in single quotes
//! so that the shell passes `$API_TOKEN` through unexpanded: etlkit expands
//! it here, from its own environment, and the token never appears in the
//! process list or the shell history. Every value that came from the
//! environment, and the whole value of a header or query parameter whose
//! name says it is a credential, is a secret: [`Redactor`] removes secrets
//! from every message, warning, `--log-json` record, control line and
//! rejects file entry that etlkit writes.

use anyhow::{Result, bail};

pub use crate::shown::{MASK, Redactor, is_credential_name};

/// A header or query parameter, its value expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameValue {
    /// The header or parameter name.
    pub name: String,
    /// The value, `$NAME` expanded.
    pub value: String,
}

/// Expands `$NAME` and `${NAME}` from `lookup`; `$$` is a literal `$`. A
/// variable that is unset or empty is an error naming it (never its value).
/// Returns the text and the values that were substituted.
pub fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>)> {
    let mut out = String::with_capacity(text.len());
    let mut used = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let Some(close) = braced.find('}') else {
                bail!("unclosed ${{ in {text:?}");
            };
            (&braced[..close], &braced[close + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            bail!(
                "{text:?}: '$' must start a variable such as $API_TOKEN or ${{API_TOKEN}} \
                 (write $$ for a literal $)"
            );
        }
        match lookup(name) {
            Some(value) if !value.is_empty() => {
                out.push_str(&value);
                used.push(value);
            }
            Some(_) => bail!("environment variable {name} is empty"),
            None => bail!("environment variable {name} is not set"),
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok((out, used))
}

/// Splits `Name: value` (a `--header`), checking the name.
pub fn split_header(text: &str) -> Result<(String, String)> {
    let Some((name, value)) = text.split_once(':') else {
        bail!("--header {text:?} is not of the form 'Name: value'");
    };
    let name = name.trim();
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token_char) {
        bail!("--header {name:?} is not a valid header name");
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Splits `name=value` (a `--param`).
pub fn split_param(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => bail!("--param {text:?} is not of the form 'name=value'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "API_TOKEN" => Some("s3cr3t-t0ken".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_reports_what_it_used() {
        let (text, used) = expand("Bearer $API_TOKEN", &env).unwrap();
        assert_eq!(text, "Bearer s3cr3t-t0ken");
        assert_eq!(used, ["s3cr3t-t0ken"]);
        let (text, _) = expand("x${API_TOKEN}y $$5", &env).unwrap();
        assert_eq!(text, "xs3cr3t-t0keny $5");
        let err = expand("Bearer $MISSING", &env).unwrap_err().to_string();
        assert_eq!(err, "environment variable MISSING is not set");
        assert!(expand("$EMPTY", &env).is_err());
        assert!(expand("cost $5", &env).is_err());
        assert!(expand("${API_TOKEN", &env).is_err());
        assert_eq!(expand("plain", &env).unwrap(), ("plain".into(), vec![]));
    }

    #[test]
    fn headers_and_params_split() {
        assert_eq!(
            split_header("Authorization:  Bearer x ").unwrap(),
            ("Authorization".into(), "Bearer x".into())
        );
        assert!(split_header("no colon").is_err());
        assert!(split_header("bad name: x").is_err());
        assert_eq!(split_param("q=a=b").unwrap(), ("q".into(), "a=b".into()));
        assert!(split_param("=x").is_err());
        assert!(is_credential_name("Authorization"));
        assert!(is_credential_name("X-Api-Key"));
        assert!(is_credential_name("access_token"));
        assert!(!is_credential_name("Accept"));
    }
}
