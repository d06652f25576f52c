//! `--mode sync`: the stream is the whole source, so a row of the target
//! whose key the stream does not hold was deleted at the source. Each
//! database store collects the stream's keys (its staging table, or a
//! table of keys) and, before it commits, runs the same sweep: count the
//! rows to go, check `--max-deletes`, then delete them, or with
//! `--soft-delete COL` stamp COL with the time (and clear it on rows that
//! came back). The sweep is SQL every store speaks; only quoting, the
//! clock and MySQL's DELETE differ.

use std::str::FromStr;

use anyhow::{Result, bail};

/// What `--mode sync` does with rows missing from the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncOptions {
    /// Stamp this column with the time instead of deleting the row.
    pub soft_delete: Option<String>,
    /// Fail the run, before anything commits, when more rows would go.
    pub max_deletes: Option<DeleteLimit>,
}

/// `--max-deletes N` or `P%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeleteLimit {
    /// At most this many rows.
    Rows(u64),
    /// At most this share of the table's rows, in percent.
    Percent(f64),
}

impl FromStr for DeleteLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a row count (1000) or a share of the table (5%)");
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(DeleteLimit::Percent(p)),
                _ => Err(bad()),
            },
            None => s.trim().parse().map(DeleteLimit::Rows).map_err(|_| bad()),
        }
    }
}

impl DeleteLimit {
    /// Fails when `going` of `rows` is past the limit.
    pub fn check(self, going: u64, rows: u64, table: &str) -> Result<()> {
        let (over, limit) = match self {
            DeleteLimit::Rows(n) => (going > n, n.to_string()),
            DeleteLimit::Percent(p) => {
                let share = if rows == 0 {
                    0.0
                } else {
                    going as f64 * 100.0 / rows as f64
                };
                (share > p, format!("{p}% ({share:.2}% would)"))
            }
        };
        if over {
            bail!(
                "--mode sync would remove {going} of the {rows} rows of {table}, past \
                 --max-deletes {limit}; nothing was committed (a partial source read looks \
                 like a mass delete: check the source, or raise --max-deletes)"
            );
        }
        Ok(())
    }
}

/// The SQL dialect of a store, for the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
    /// SQLite.
    Sqlite,
}

/// The sweep of one table: `table` and `seen` (a table holding the
/// stream's keys) as the store quotes them, and the key columns quoted.
#[derive(Debug, Clone)]
pub struct Sweep<'a> {
    /// The target table.
    pub table: &'a str,
    /// The table of the stream's keys (staging table or key table).
    pub seen: &'a str,
    /// The key columns, quoted.
    pub keys: Vec<String>,
    /// The soft-delete column, quoted.
    pub soft: Option<String>,
    /// Quoting and clock.
    pub dialect: Dialect,
}

impl Sweep<'_> {
    /// Rows of the table (alias `x`) whose key the stream does not hold.
    fn missing(&self) -> String {
        let on: Vec<String> = self.keys.iter().map(|k| format!("s.{k} = x.{k}")).collect();
        format!(
            "NOT EXISTS (SELECT 1 FROM {} AS s WHERE {})",
            self.seen,
            on.join(" AND ")
        )
    }

    /// Only rows not marked already count, with --soft-delete.
    fn live(&self) -> Option<String> {
        self.soft.as_ref().map(|col| format!("x.{col} IS NULL"))
    }

    fn now(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "now()",
            // DATETIME(6) holds instants in UTC in etlkit's MySQL tables.
            Dialect::Mysql => "UTC_TIMESTAMP(6)",
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    /// The rows the table holds (not marked), and the rows that would go.
    /// The first is also what a store counts before its rows go in.
    pub fn count_sql(&self) -> (String, String) {
        let live = self.live();
        let rows = match &live {
            Some(l) => format!(" WHERE {l}"),
            None => String::new(),
        };
        let going = match &live {
            Some(l) => format!(" AND {l}"),
            None => String::new(),
        };
        (
            format!("SELECT count(*) FROM {} AS x{rows}", self.table),
            format!(
                "SELECT count(*) FROM {} AS x WHERE {}{going}",
                self.table,
                self.missing()
            ),
        )
    }

    /// The statements that remove the missing rows, in order.
    pub fn apply_sql(&self) -> Vec<String> {
        let missing = self.missing();
        match &self.soft {
            Some(col) => vec![
                // A row that came back is live again.
                format!(
                    "UPDATE {} AS x SET {col} = NULL WHERE x.{col} IS NOT NULL AND NOT {missing}",
                    self.table
                ),
                format!(
                    "UPDATE {} AS x SET {col} = {} WHERE x.{col} IS NULL AND {missing}",
                    self.table,
                    self.now()
                ),
            ],
            None if self.dialect == Dialect::Mysql => {
                vec![format!("DELETE x FROM {} AS x WHERE {missing}", self.table)]
            }
            None => vec![format!("DELETE FROM {} AS x WHERE {missing}", self.table)],
        }
    }

    /// Runs the sweep with the store's `sql`, checking `limit` before
    /// anything changes; returns the rows removed.
    /// `sql(text, true)` returns a count query's count, `sql(text, false)`
    /// the rows a statement changed.
    /// `rows` is the table's row count before the load, when the stream's
    /// rows are in the table already (counted now otherwise).
    pub fn run(
        &self,
        limit: Option<DeleteLimit>,
        rows: Option<u64>,
        shown: &str,
        sql: &mut dyn FnMut(&str, bool) -> Result<u64>,
    ) -> Result<u64> {
        let (rows_sql, going_sql) = self.count_sql();
        let going = sql(&going_sql, true)?;
        if let Some(limit) = limit {
            let rows = match rows {
                Some(rows) => rows,
                None => sql(&rows_sql, true)?,
            };
            limit.check(going, rows, shown)?;
        }
        let statements = self.apply_sql();
        let last = statements.len() - 1;
        let mut removed = 0;
        for (i, text) in statements.iter().enumerate() {
            let n = sql(text, false)?;
            if i == last {
                removed = n;
            }
        }
        Ok(removed)
    }
}

/// The line `-v` prints for a sweep.
pub fn summary(removed: u64, options: &SyncOptions) -> String {
    match &options.soft_delete {
        Some(col) => format!("marked {removed} rows missing from the source (--soft-delete {col})"),
        None => format!("deleted {removed} rows missing from the source (--mode sync)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_rows_or_a_share() {
        assert_eq!("1000".parse(), Ok(DeleteLimit::Rows(1000)));
        assert_eq!("5%".parse(), Ok(DeleteLimit::Percent(5.0)));
        assert_eq!(" 0.5 %".parse(), Ok(DeleteLimit::Percent(0.5)));
        assert!("-1".parse::<DeleteLimit>().is_err());
        assert!("101%".parse::<DeleteLimit>().is_err());
        assert!("lots".parse::<DeleteLimit>().is_err());
    }

    #[test]
    fn a_limit_fails_only_past_it() {
        assert!(DeleteLimit::Rows(10).check(10, 100, "t").is_ok());
        let err = DeleteLimit::Rows(10).check(11, 100, "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("would remove 11 of the 100 rows of t")
        );
        assert!(DeleteLimit::Percent(5.0).check(5, 100, "t").is_ok());
        assert!(DeleteLimit::Percent(5.0).check(6, 100, "t").is_err());
        assert!(DeleteLimit::Percent(0.0).check(0, 0, "t").is_ok());
    }

    #[test]
    fn the_sweep_is_one_anti_join() {
        let sweep = Sweep {
            table: "\"t\"",
            seen: "etl_stage",
            keys: vec!["\"a\"".into(), "\"b\"".into()],
            soft: None,
            dialect: Dialect::Postgres,
        };
        assert_eq!(
            sweep.apply_sql(),
            [
                "DELETE FROM \"t\" AS x WHERE NOT EXISTS (SELECT 1 FROM etl_stage AS s \
                 WHERE s.\"a\" = x.\"a\" AND s.\"b\" = x.\"b\")"
            ]
        );
        let soft = Sweep {
            soft: Some("\"gone_at\"".into()),
            ..sweep
        };
        let (rows, going) = soft.count_sql();
        assert_eq!(
            rows,
            "SELECT count(*) FROM \"t\" AS x WHERE x.\"gone_at\" IS NULL"
        );
        assert!(going.ends_with(" AND x.\"gone_at\" IS NULL"), "{going}");
        assert_eq!(soft.apply_sql().len(), 2);
    }
}
