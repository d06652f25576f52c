//! SQLite as a store: a table or query as a source (`source.rs`), a table
//! as a target (`sink.rs`: one transaction per run, opened in `conn.rs`;
//! the table's columns and DDL in `table.rs`, prepared inserts in
//! `stage.rs`, values fitted to their columns in `values.rs`), and the
//! state kept beside the data (`state.rs`).

pub mod conn;
pub mod sink;
pub mod source;
pub mod stage;
pub mod state;
pub mod store;
pub mod table;
pub mod values;
