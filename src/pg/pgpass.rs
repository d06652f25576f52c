//! The password file libpq reads (`~/.pgpass`, PGPASSFILE or the URL's
//! `passfile`): found, checked for safe permissions, and searched for the
//! password of a host, port, database and user.

use std::path::PathBuf;

/// The password file to read: `passfile` from the URL, else PGPASSFILE,
/// else `~/.pgpass`.
pub fn file(passfile: Option<&PathBuf>) -> Option<PathBuf> {
    if let Some(p) = passfile {
        return Some(p.clone());
    }
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// The text of a pgpass file, if it exists and is safe to use. As libpq
/// does, one that is not a plain file or that its group or others may
/// read or write is ignored with a warning on stderr (once a run): a
/// password others can read is no secret.
pub fn read(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let problem = if !meta.is_file() {
        Some("is not a plain file".to_string())
    } else {
        insecure_mode(&meta).map(|mode| {
            format!(
                "has group or world access (mode {mode:04o}); permissions should be u=rw (0600) \
                 or less"
            )
        })
    };
    if let Some(problem) = problem {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!(
                "{}: warning: password file {} {problem}: it is ignored",
                crate::error::program_name(),
                crate::error::line(&path.display().to_string())
            );
        });
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// The permission bits of a file its group or others may use, if any.
#[cfg(unix)]
fn insecure_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn insecure_mode(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

/// Looks a password up in a pgpass file: `host:port:database:user:password`
/// lines, `*` matching anything, `\:` and `\\` escaped.
pub fn lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        field.push(next);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let port = port.to_string();
        let wanted = [host, port.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(pattern, value)| pattern == "*" || pattern == value)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_matching() {
        let text =
            "# comment\nother:5432:*:etl:nope\ndb.example:*:wh:etl:pa\\:ss\n*:*:*:*:fallback\n";
        assert_eq!(
            lookup(text, "db.example", 5432, "wh", "etl").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(lookup(text, "x", 1, "y", "z").as_deref(), Some("fallback"));
        assert_eq!(lookup("h:1:d:u:p\n", "h", 2, "d", "u"), None);
    }
}
