//! PostgreSQL as a source and a target: connections that follow libpq's
//! conventions and never show a password (`conn.rs`, `pgpass.rs`, and TLS
//! as libpq sets it up in `tls.rs`), a streamed source (`source.rs`), and
//! a sink (`sink.rs`) that creates and widens its table (`table.rs`),
//! writes with COPY through a staging table (`stage.rs`), fits values to
//! their columns (`values.rs`) and keeps the bookmarks with the rows
//! (`state.rs`).

pub mod conn;
pub mod pgpass;
pub mod sink;
pub mod source;
pub mod stage;
pub mod state;
pub mod table;
pub mod tls;
pub mod values;

/// Is `target` a PostgreSQL connection URL? A libpq key=value string
/// (`host=db dbname=wh`) counts too, so that it is refused as such rather
/// than taken for a file name.
pub fn is_url(target: &str) -> bool {
    target.starts_with("postgres://")
        || target.starts_with("postgresql://")
        || conn::is_keyword_string(target)
}
