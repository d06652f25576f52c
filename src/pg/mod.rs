//! PostgreSQL as a source and a target: connections that follow libpq's
//! conventions and never show a password (`conn.rs`, `pgpass.rs`, and TLS
//! as libpq sets it up in `tls.rs`), a streamed source (`source.rs`), and
//! a sink (`sink.rs`) that creates and widens its table (`table.rs`),
//! writes with COPY through a staging table (`stage.rs`), fits values to
//! their columns (`values.rs`; COPY's binary format in `binary.rs`,
//! numeric's base-10000 digits in `numeric.rs`) and keeps the bookmarks
//! with the rows (`state.rs`).

pub mod binary;
mod change_values;
pub mod changes;
pub mod conn;
mod numeric;
pub mod pgpass;
pub mod sink;
pub mod slot;
pub mod source;
pub mod stage;
pub mod state;
pub mod store;
pub mod table;
pub mod tls;
pub mod values;

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
