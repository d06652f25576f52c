//! Append and replace straight into a MySQL table with `LOAD DATA LOCAL
//! INFILE`, the server's own bulk path, inside the load's transaction.
//!
//! Rows are checked and written as LOAD DATA's tab-separated text
//! (`values.rs`), in chunks of whole rows. Each chunk is one statement,
//! run by a writer thread through the client's local-infile handler while
//! the next chunk is encoded here. Between chunks no statement is open, so
//! a pause in the input never leaves the server waiting for file data
//! (it gives up after its net_read_timeout).
//!
//! MySQL commits the open transaction at every CREATE or ALTER TABLE. So
//! every chunk sent is also written to a spill file: when a column must be
//! added mid-stream (or a state table created at commit), the transaction
//! is rolled back (nothing was ever visible), the DDL runs, and the spill is
//! sent again, chunk by chunk, in a new transaction.
//!
//! With LOCAL, the server turns a duplicate key or a value it had to change
//! into a warning and goes on; a statement whose rows did not all go in
//! unchanged, or that left a warning, fails the load.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use mysql::prelude::Queryable;
use mysql::{Conn, LocalInfileHandler};

use super::conn::message;
use super::table::{Column, Table, quote};
use super::values::Kind;

/// Chunks of about this many bytes go to the server, one statement each.
pub const CHUNK: usize = 4 << 20;

/// What the writer thread hands back: the connection, and the statement's
/// affected rows and warnings (or why it failed).
type Outcome = (Conn, Result<(u64, u16)>);

/// A LOAD DATA statement running on a writer thread, which holds the
/// connection until it ends.
struct LoadStream {
    done: JoinHandle<Outcome>,
    /// Rows the statement was given.
    rows: u64,
}

/// The load's connection: here, or lent to the writer thread of a LOAD
/// DATA in progress.
pub struct Session {
    conn: Option<Conn>,
    load: Option<LoadStream>,
    /// The target as messages show it.
    name: String,
}

impl Session {
    /// The connection `conn` to the target shown as `name`.
    pub fn new(conn: Conn, name: &str) -> Session {
        Session {
            conn: Some(conn),
            load: None,
            name: name.to_string(),
        }
    }

    /// The connection, once any LOAD DATA in progress has ended: its error
    /// surfaces here, as does a row the server skipped or changed.
    pub fn conn(&mut self) -> Result<&mut Conn> {
        self.finish()?;
        self.conn
            .as_mut()
            .context("the connection was lost with a failed LOAD DATA")
    }

    /// Waits for the LOAD DATA in progress, if any, and checks that the
    /// server took every row it was given, unchanged.
    fn finish(&mut self) -> Result<()> {
        let Some(load) = self.load.take() else {
            return Ok(());
        };
        let (mut conn, result) = load
            .done
            .join()
            .map_err(|_| anyhow!("the LOAD DATA writer thread panicked"))?;
        let checked = result
            .and_then(|(affected, warnings)| check_taken(&mut conn, load.rows, affected, warnings));
        self.conn = Some(conn);
        checked.map_err(|e| anyhow!("{}: {e}", self.name))
    }

    /// Once the statement before has ended, hands the connection to a
    /// writer thread that runs `sql` (a LOAD DATA LOCAL INFILE) with
    /// `chunk`, `rows` whole rows, as its file.
    fn start(&mut self, sql: String, chunk: Vec<u8>, rows: u64) -> Result<()> {
        self.finish()?;
        let mut conn = self.conn.take().context("no connection")?;
        let done = std::thread::spawn(move || {
            let result = run_load(&mut conn, &sql, chunk);
            (conn, result)
        });
        self.load = Some(LoadStream { done, rows });
        Ok(())
    }
}

/// Runs `sql` (a LOAD DATA LOCAL INFILE) with `data` as its file: the
/// affected rows and warnings.
fn run_load(conn: &mut Conn, sql: &str, data: Vec<u8>) -> Result<(u64, u16)> {
    let mut data = Some(data);
    conn.set_local_infile_handler(Some(LocalInfileHandler::new(move |_, out| {
        // Whatever file the server names, only these rows are sent.
        if let Some(data) = data.take() {
            out.write_all(&data)?;
        }
        Ok(())
    })));
    let result = conn.query_drop(sql);
    conn.set_local_infile_handler(None);
    result.map_err(|e| anyhow!("LOAD DATA failed: {}", message(&e)))?;
    Ok((conn.affected_rows(), conn.warnings()))
}

/// Did the server take all `rows` rows unchanged (`affected` of them, with
/// `warnings`)? If not, its first warnings say why.
fn check_taken(conn: &mut Conn, rows: u64, affected: u64, warnings: u16) -> Result<()> {
    if affected == rows && warnings == 0 {
        return Ok(());
    }
    Err(anyhow!(
        "the server took {affected} of {rows} rows{}: {}",
        if warnings > 0 {
            format!(" with {warnings} warnings")
        } else {
            String::new()
        },
        first_warnings(conn)
    ))
}

/// Runs `sql` (a LOAD DATA LOCAL INFILE) with `data`, `rows` rows, as its
/// file, here and now: the staging path's statement.
pub fn load_chunk(conn: &mut Conn, sql: &str, data: Vec<u8>, rows: u64) -> Result<()> {
    let (affected, warnings) = run_load(conn, sql, data)?;
    check_taken(conn, rows, affected, warnings)
}

/// The first warnings the server left, as its own words.
fn first_warnings(conn: &mut Conn) -> String {
    let rows: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS LIMIT 3").unwrap_or_default();
    if rows.is_empty() {
        return "it gave no reason".to_string();
    }
    rows.into_iter()
        .map(|(_, _, text)| text)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The statement that loads rows of `columns` into `table`.
fn statement(table: &Table, columns: &[usize]) -> String {
    let columns: Vec<&Column> = columns.iter().map(|&i| &table.columns[i]).collect();
    load_sql(&table.qtable, None, &columns)
}

/// The LOAD DATA statement for rows of `columns` (after a `first` column,
/// if given) into the table `into` (quoted): bytes arrive as hex digits and
/// BIT values as decimal digits, each through a user variable. The escape
/// is named (a backslash, in hex): under the session's
/// NO_BACKSLASH_ESCAPES the server's default is none, and `\N` would be
/// text.
pub fn load_sql(into: &str, first: Option<&str>, columns: &[&Column]) -> String {
    let mut targets: Vec<String> = first.map(quote).into_iter().collect();
    let mut sets = Vec::new();
    for (n, column) in columns.iter().enumerate() {
        let name = quote(&column.name);
        match column.kind {
            Kind::Binary(..) => {
                targets.push(format!("@v{n}"));
                sets.push(format!("{name} = UNHEX(@v{n})"));
            }
            Kind::Bit(_) => {
                targets.push(format!("@v{n}"));
                sets.push(format!("{name} = CAST(@v{n} AS UNSIGNED)"));
            }
            _ => targets.push(name),
        }
    }
    if targets.is_empty() {
        targets.push("@none".to_string());
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'etlkit-rows' INTO TABLE {into} CHARACTER SET utf8mb4 \
         FIELDS ESCAPED BY X'5C' ({})",
        targets.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

/// One statement's rows in the spill file.
struct Segment {
    sql: String,
    start: u64,
    bytes: u64,
    rows: u64,
}

/// Rows on their way into the table with LOAD DATA, and the spill of every
/// row sent in the open transaction.
#[derive(Default)]
pub struct Bulk {
    /// The columns of the run being built, and its statement (`None`: no
    /// run yet).
    run: Option<(Vec<usize>, String)>,
    chunk: Vec<u8>,
    chunk_rows: u64,
    spill: Option<File>,
    spilled: u64,
    segments: Vec<Segment>,
}

impl Bulk {
    /// Is the run being built one of these columns?
    pub fn runs(&self, columns: impl Iterator<Item = usize>) -> bool {
        self.run
            .as_ref()
            .is_some_and(|(c, _)| c.iter().copied().eq(columns))
    }

    /// Starts a run of rows of `columns` (the rows of the one before are
    /// sent).
    pub fn begin_run(
        &mut self,
        session: &mut Session,
        table: &Table,
        columns: Vec<usize>,
    ) -> Result<()> {
        self.end_run(session)?;
        let sql = statement(table, &columns);
        self.run = Some((columns, sql));
        Ok(())
    }

    /// Adds one encoded row (its fields, each after a tab) to the run. A
    /// row of no columns is sent as `\N` into a variable: every column
    /// takes its default.
    pub fn push_row(&mut self, session: &mut Session, row: &[u8]) -> Result<()> {
        match row.split_first() {
            Some((_, fields)) => self.chunk.extend_from_slice(fields),
            None => self.chunk.extend_from_slice(b"\\N"),
        }
        self.chunk.push(b'\n');
        self.chunk_rows += 1;
        if self.chunk.len() >= CHUNK {
            self.send(session)?;
        }
        Ok(())
    }

    /// Sends the chunk being built as a statement of its own, after
    /// writing it to the spill.
    fn send(&mut self, session: &mut Session) -> Result<()> {
        if self.chunk_rows == 0 {
            return Ok(());
        }
        let Some((_, sql)) = &self.run else {
            anyhow::bail!("rows without a LOAD DATA statement");
        };
        let spill = match &mut self.spill {
            Some(file) => file,
            None => self
                .spill
                .insert(tempfile::tempfile().context("cannot create a spill file for the rows")?),
        };
        spill
            .write_all(&self.chunk)
            .context("cannot write the rows' spill file")?;
        let bytes = self.chunk.len() as u64;
        let rows = std::mem::take(&mut self.chunk_rows);
        self.segments.push(Segment {
            sql: sql.clone(),
            start: self.spilled,
            bytes,
            rows,
        });
        self.spilled += bytes;
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK + (64 << 10)));
        session.start(sql.clone(), chunk, rows)
    }

    /// Ends the run: the rest of its rows are sent and the server's count
    /// checked.
    pub fn end_run(&mut self, session: &mut Session) -> Result<()> {
        if self.run.is_some() {
            self.send(session)?;
            self.run = None;
        }
        session.conn()?;
        Ok(())
    }

    /// Sends every row of the open transaction again, statement by
    /// statement, into a new transaction (after a rollback and DDL).
    pub fn replay(&mut self, session: &mut Session) -> Result<()> {
        self.end_run(session)?;
        let Some(spill) = &mut self.spill else {
            return Ok(());
        };
        spill.flush().context("cannot write the rows' spill file")?;
        for segment in &self.segments {
            spill
                .seek(SeekFrom::Start(segment.start))
                .context("cannot read the rows' spill file")?;
            let mut chunk = vec![0; usize::try_from(segment.bytes)?];
            spill
                .read_exact(&mut chunk)
                .context("cannot read the rows' spill file")?;
            session.start(segment.sql.clone(), chunk, segment.rows)?;
        }
        session.conn()?;
        spill
            .seek(SeekFrom::End(0))
            .context("cannot write the rows' spill file")?;
        Ok(())
    }

    /// Forgets the spilled rows once their transaction committed.
    pub fn committed(&mut self) -> Result<()> {
        self.run = None;
        self.chunk.clear();
        self.chunk_rows = 0;
        self.segments.clear();
        self.spilled = 0;
        if let Some(spill) = &mut self.spill {
            spill
                .set_len(0)
                .context("cannot empty the rows' spill file")?;
            spill
                .seek(SeekFrom::Start(0))
                .context("cannot empty the rows' spill file")?;
        }
        Ok(())
    }
}
