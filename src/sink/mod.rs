//! Where records go. A sink takes parsed records and either commits all of
//! them or none.

pub mod convert;
pub mod sqlite;
