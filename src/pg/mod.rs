//! PostgreSQL as a source and a target: connections that follow libpq's
//! conventions and never show a password, a streamed source, and a sink
//! that writes with COPY.

pub mod conn;
pub mod copy;
pub mod sink;
pub mod source;
pub mod state;
pub mod store;

/// The URL schemes of a PostgreSQL connection URL.
pub const SCHEMES: [&str; 2] = ["postgres", "postgresql"];

/// Is `target` a PostgreSQL connection URL? A libpq key=value string
/// (`host=db dbname=wh`) counts too, so that it is refused as such rather
/// than taken for a file name.
pub fn is_url(target: &str) -> bool {
    SCHEMES.iter().any(|s| {
        target
            .strip_prefix(s)
            .is_some_and(|rest| rest.starts_with("://"))
    }) || conn::is_keyword_string(target)
}
