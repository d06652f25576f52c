//! PostgreSQL as a source and a target: connections that follow libpq's
//! conventions and never show a password, a streamed source, and a sink
//! that writes with COPY.

pub mod conn;
pub mod copy;
pub mod sink;
pub mod source;
pub mod state;

/// Is `target` a PostgreSQL connection URL? A libpq key=value string
/// (`host=db dbname=wh`) counts too, so that it is refused as such rather
/// than taken for a file name.
pub fn is_url(target: &str) -> bool {
    target.starts_with("postgres://")
        || target.starts_with("postgresql://")
        || conn::is_keyword_string(target)
}
