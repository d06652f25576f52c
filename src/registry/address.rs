//! Addresses on the command line: which URL schemes etlkit knows (the
//! stores' own, gathered by the registry, and etl-watch's brokers) and
//! where each may be used. Anything else of the form `scheme://...` is refused as
//! a usage error naming the scheme, never taken for a local path (which
//! would make `etl-load s3://bucket/lake` create a directory `s3:`). Every
//! program checks its targets, inputs and `--state` here, before any I/O.

use std::path::Path;

use crate::error::usage;

/// Where an address is used; each place knows its own schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `etl-load TARGET`.
    LoadTarget,
    /// `etl-extract INPUT...` and `etl-load TARGET INPUT...`.
    ExtractInput,
    /// `--state STATE`.
    State,
    /// `etl-watch PATH...`.
    WatchInput,
}

const BROKERS: &[&str] = &["nats", "tls", "redis", "rediss", "kafka"];

impl Role {
    /// The schemes this place takes.
    fn schemes(self) -> Vec<&'static str> {
        match self {
            Role::State => super::database_schemes()
                .filter(|s| !super::object_schemes().any(|o| o == *s))
                .collect(),
            Role::LoadTarget => super::database_schemes().collect(),
            Role::ExtractInput => super::database_schemes()
                .chain(super::source_schemes())
                .collect(),
            Role::WatchInput => BROKERS
                .iter()
                .copied()
                .chain(super::object_schemes())
                .chain(crate::pg::SCHEMES)
                .chain(crate::mysql::SCHEMES)
                .collect(),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Role::LoadTarget => "etl-load's TARGET",
            Role::ExtractInput => "an INPUT",
            Role::State => "--state",
            Role::WatchInput => "etl-watch's PATH",
        }
    }

    fn paths(self) -> &'static str {
        match self {
            Role::LoadTarget => "a local file or directory",
            Role::ExtractInput => "a local file, a glob or -",
            Role::State => "a SQLite file, a dataset directory or a .json file",
            Role::WatchInput => "a local file, directory, glob or -",
        }
    }
}

/// The scheme of `text` when it has the form `scheme://...` (RFC 3986:
/// a letter, then letters, digits, `+`, `-` or `.`), lowercased.
pub fn scheme_of(text: &str) -> Option<String> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| scheme.to_ascii_lowercase())
}

/// Refuses an address whose `scheme://` this place does not take (usage
/// error, exit 2). Only the scheme is shown: the rest of a URL may hold a
/// password. A plain path (no scheme) passes.
pub fn check(text: &str, role: Role) -> anyhow::Result<()> {
    let Some(scheme) = scheme_of(text) else {
        return Ok(());
    };
    let schemes = role.schemes();
    if schemes.contains(&scheme.as_str()) {
        return Ok(());
    }
    let known: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
    let everywhere = super::database_schemes()
        .chain(super::source_schemes())
        .chain(BROKERS.iter().copied())
        .any(|s| s == scheme);
    let kind = if everywhere {
        "cannot be used as"
    } else {
        "is an address scheme etlkit does not know, so it cannot be"
    };
    Err(usage(format!(
        "{scheme}:// {kind} {}: it takes {} or {}",
        role.what(),
        known.join(", "),
        role.paths()
    )))
}

/// [`check`] for a path argument.
pub fn check_path(path: &Path, role: Role) -> anyhow::Result<()> {
    check(&path.to_string_lossy(), role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_found_only_at_the_start() {
        assert_eq!(scheme_of("s3://bucket/lake"), Some("s3".into()));
        assert_eq!(scheme_of("S3://b"), Some("s3".into()));
        assert_eq!(scheme_of("gs+x.y-z://b"), Some("gs+x.y-z".into()));
        assert_eq!(scheme_of("./s3://b"), None);
        assert_eq!(scheme_of("data/x.parquet"), None);
        assert_eq!(scheme_of("1x://b"), None);
        assert_eq!(scheme_of("://b"), None);
    }

    #[test]
    fn each_place_takes_its_own_schemes() {
        assert!(check("postgres://u@h/db", Role::LoadTarget).is_ok());
        assert!(check("lake/orders", Role::LoadTarget).is_ok());
        assert!(check("https://api/x", Role::ExtractInput).is_ok());
        assert!(check("kafka://h", Role::WatchInput).is_ok());
        assert!(check("s3://b/x.csv", Role::LoadTarget).is_ok());
        assert!(check("s3://b/*.csv", Role::ExtractInput).is_ok());
        let err = format!(
            "{:#}",
            check("gs://key:secret@b/x", Role::LoadTarget).unwrap_err()
        );
        assert!(
            err.starts_with("gs:// is an address scheme etlkit does not know"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let err = format!(
            "{:#}",
            check("https://api/x", Role::LoadTarget).unwrap_err()
        );
        assert!(
            err.starts_with("https:// cannot be used as etl-load's TARGET"),
            "{err}"
        );
        let err = format!("{:#}", check("s3://b/s.json", Role::State).unwrap_err());
        assert!(err.starts_with("s3:// cannot be used as --state"), "{err}");
    }
}
