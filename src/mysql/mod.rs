//! MySQL and MariaDB as a store: a table or query as a streamed source
//! (`source.rs`), a table as a target (`sink.rs`: the table's columns and
//! DDL in `table.rs`; rows streamed straight into an existing table with
//! LOAD DATA LOCAL INFILE for append and replace in `bulk.rs`, or staged in
//! a temporary table and then moved in one InnoDB transaction in
//! `stage.rs`; values fitted to their columns in `values.rs` and
//! `dates.rs`), and the state kept beside the data
//! (`state.rs`), over connections made as the `mysql` client makes them
//! (`conn.rs`, with TLS in `tls.rs`).

pub mod binlog;
mod binlog_values;
pub mod bulk;
pub mod conn;
pub mod dates;
pub mod sink;
pub mod source;
pub mod stage;
pub mod state;
pub mod store;
pub mod table;
pub mod tls;
pub mod values;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(is_url("mysql://root@127.0.0.1/test"));
        assert!(is_url("mariadb://root@127.0.0.1/test"));
        assert!(!is_url("postgres://x"));
    }
}
