//! MySQL and MariaDB as a store: a table or query as a streamed source, a
//! table as a target (rows staged in a temporary table, then moved in one
//! InnoDB transaction with the bookmark and batch ids), and the state kept
//! beside the data. This file holds the conventions both sides share: URL
//! detection, identifier quoting and limits, and the types etlkit gives
//! the columns it creates.

pub mod conn;
pub mod sink;
pub mod source;
pub mod state;
pub mod store;
pub mod values;

use crate::record::FieldType;

/// The URL schemes of a MySQL or MariaDB connection URL.
pub const SCHEMES: [&str; 2] = ["mysql", "mariadb"];

/// Is `target` a MySQL or MariaDB connection URL?
pub fn is_url(target: &str) -> bool {
    SCHEMES.iter().any(|s| {
        target
            .strip_prefix(s)
            .is_some_and(|rest| rest.starts_with("://"))
    })
}

/// MySQL's limit on table, column and index names, in characters.
pub const NAME_LIMIT: usize = 64;

/// Quotes an identifier that may come from data: backticks doubled, the
/// whole name wrapped. Never paste a name into SQL any other way.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Refuses a name MySQL would not keep as given: longer than 64
/// characters (MySQL refuses it, never truncates; we say so first), with a
/// trailing space (stripped by the server) or a NUL, or empty.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(format!("{what} name is empty"));
    }
    if chars > NAME_LIMIT {
        return Err(format!(
            "{what} name {name:?} is {chars} characters long; MySQL allows {NAME_LIMIT}"
        ));
    }
    if name.ends_with(' ') {
        return Err(format!(
            "{what} name {name:?} ends with a space, which MySQL does not allow"
        ));
    }
    if name.contains('\0') {
        return Err(format!("{what} name {name:?} holds a NUL character"));
    }
    Ok(())
}

/// The column type etlkit gives a new column for a wire type. Booleans
/// are BIT(1), which reads back as true/false (TINYINT(1) would read back
/// as a number); text key columns are VARCHAR(191) so that a unique index
/// fits in InnoDB's 3072 bytes.
pub fn declared_type(t: FieldType, key: bool) -> &'static str {
    match t {
        FieldType::Integer => "BIGINT",
        FieldType::Float => "DOUBLE",
        FieldType::Boolean => "BIT(1)",
        FieldType::Text if key => "VARCHAR(191)",
        FieldType::Text => "LONGTEXT",
        FieldType::Json => "JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_backticks() {
        assert_eq!(quote("a`b; DROP TABLE x"), "`a``b; DROP TABLE x`");
    }

    #[test]
    fn names_past_the_limit_are_refused() {
        assert!(check_name("column", &"c".repeat(64)).is_ok());
        assert!(check_name("column", &"é".repeat(64)).is_ok());
        let err = check_name("column", &"c".repeat(65)).unwrap_err();
        assert!(err.contains("65 characters"), "{err}");
        assert!(check_name("table", "t ").is_err());
        assert!(check_name("table", "").is_err());
    }

    #[test]
    fn urls() {
        assert!(is_url("mysql://root@127.0.0.1/test"));
        assert!(is_url("mariadb://root@127.0.0.1/test"));
        assert!(!is_url("postgres://x"));
    }
}
