//! Append and replace straight into a MySQL table with `LOAD DATA LOCAL
//! INFILE`, the server's own bulk path, inside the load's transaction.
//!
//! Rows are checked and written as LOAD DATA's tab-separated text
//! (`values.rs`), in chunks that a writer thread streams to the server
//! through the client's local-infile handler while the next chunk is
//! encoded here: one statement for each run of rows with the same columns.
//!
//! MySQL commits the open transaction at every CREATE or ALTER TABLE. So
//! every chunk sent is also written to a spill file: when a column must be
//! added mid-stream (or a state table created at commit), the transaction
//! is rolled back (nothing was ever visible), the DDL runs, and the spill is
//! sent again in a new transaction.
//!
//! With LOCAL, the server turns a duplicate key or a value it had to change
//! into a warning and goes on; a statement whose rows did not all go in
//! unchanged, or that left a warning, fails the load.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use mysql::prelude::Queryable;
use mysql::{Conn, LocalInfileHandler};

use super::conn::message;
use super::table::{Column, Table, quote};
use super::values::Kind;

/// Chunks of about this many bytes go to the server.
pub const CHUNK: usize = 4 << 20;

/// What the writer thread hands back: the connection, and the statement's
/// affected rows and warnings (or why it failed).
type Outcome = (Conn, Result<(u64, u16)>);

/// A LOAD DATA in progress on a writer thread, which holds the connection
/// until it ends.
struct LoadStream {
    chunks: SyncSender<Vec<u8>>,
    done: JoinHandle<Outcome>,
    /// Rows sent so far.
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

    /// Ends the LOAD DATA in progress, if any, and checks that the server
    /// took every row it was sent, unchanged.
    fn finish(&mut self) -> Result<()> {
        let Some(load) = self.load.take() else {
            return Ok(());
        };
        drop(load.chunks);
        let (mut conn, result) = load
            .done
            .join()
            .map_err(|_| anyhow!("the LOAD DATA writer thread panicked"))?;
        let checked = result
            .and_then(|(affected, warnings)| check_taken(&mut conn, load.rows, affected, warnings));
        self.conn = Some(conn);
        checked.map_err(|e| anyhow!("{}: {e}", self.name))
    }

    /// Hands the connection to a writer thread that runs `sql` (a LOAD
    /// DATA LOCAL INFILE) and streams it the chunks it is sent.
    fn start(&mut self, sql: String) -> Result<()> {
        self.finish()?;
        let mut conn = self.conn.take().context("no connection")?;
        let (chunks, incoming) = sync_channel::<Vec<u8>>(2);
        let done = std::thread::spawn(move || {
            let mut incoming = Some(incoming);
            conn.set_local_infile_handler(Some(LocalInfileHandler::new(move |_, out| {
                // Whatever file the server names, only these rows are sent.
                for chunk in incoming.take().into_iter().flatten() {
                    out.write_all(&chunk)?;
                }
                Ok(())
            })));
            let result = conn
                .query_drop(&sql)
                .map(|()| (conn.affected_rows(), conn.warnings()))
                .map_err(|e| anyhow!("LOAD DATA failed: {}", message(&e)));
            // Drops the handler, so a send after a failure returns at once.
            conn.set_local_infile_handler(None);
            (conn, result)
        });
        self.load = Some(LoadStream {
            chunks,
            done,
            rows: 0,
        });
        Ok(())
    }

    /// Sends a chunk of `rows` rows to the LOAD DATA in progress.
    fn send(&mut self, chunk: Vec<u8>, rows: u64) -> Result<()> {
        let load = self.load.as_mut().context("no LOAD DATA in progress")?;
        load.rows += rows;
        if load.chunks.send(chunk).is_err() {
            // The statement ended early: its error says why.
            self.finish()?;
            anyhow::bail!("{}: the server stopped reading the rows", self.name);
        }
        Ok(())
    }
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
    let mut data = Some(data);
    conn.set_local_infile_handler(Some(LocalInfileHandler::new(move |_, out| {
        if let Some(data) = data.take() {
            out.write_all(&data)?;
        }
        Ok(())
    })));
    let result = conn.query_drop(sql);
    conn.set_local_infile_handler(None);
    result.map_err(|e| anyhow!("LOAD DATA failed: {}", message(&e)))?;
    let (affected, warnings) = (conn.affected_rows(), conn.warnings());
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
    columns: Vec<usize>,
    start: u64,
    bytes: u64,
    rows: u64,
}

/// Rows on their way into the table with LOAD DATA, and the spill of every
/// row sent in the open transaction.
#[derive(Default)]
pub struct Bulk {
    /// The columns of the statement in progress (`None`: none started).
    columns: Option<Vec<usize>>,
    chunk: Vec<u8>,
    chunk_rows: u64,
    spill: Option<File>,
    spilled: u64,
    segments: Vec<Segment>,
}

impl Bulk {
    /// Is a statement of these columns in progress?
    pub fn runs(&self, columns: impl Iterator<Item = usize>) -> bool {
        self.columns
            .as_ref()
            .is_some_and(|c| c.iter().copied().eq(columns))
    }

    /// Starts a statement for rows of `columns` (the one in progress ends).
    pub fn begin_run(
        &mut self,
        session: &mut Session,
        table: &Table,
        columns: Vec<usize>,
    ) -> Result<()> {
        self.end_run(session)?;
        session.start(statement(table, &columns))?;
        self.segments.push(Segment {
            columns: columns.clone(),
            start: self.spilled,
            bytes: 0,
            rows: 0,
        });
        self.columns = Some(columns);
        Ok(())
    }

    /// Adds one encoded row (its fields, each after a tab) to the
    /// statement in progress. A row of no columns is sent as `\N` into a
    /// variable: every column takes its default.
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

    /// Sends the chunk being built, after writing it to the spill.
    fn send(&mut self, session: &mut Session) -> Result<()> {
        if self.chunk_rows == 0 {
            return Ok(());
        }
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
        self.spilled += bytes;
        if let Some(segment) = self.segments.last_mut() {
            segment.bytes += bytes;
            segment.rows += self.chunk_rows;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK + (64 << 10)));
        let rows = std::mem::take(&mut self.chunk_rows);
        session.send(chunk, rows)
    }

    /// Ends the statement in progress: the rest of its rows are sent and
    /// the server's count checked.
    pub fn end_run(&mut self, session: &mut Session) -> Result<()> {
        if self.columns.take().is_some() {
            self.send(session)?;
        }
        session.conn()?;
        Ok(())
    }

    /// Sends every row of the open transaction again, statement by
    /// statement, into a new transaction (after a rollback and DDL).
    pub fn replay(&mut self, session: &mut Session, table: &Table) -> Result<()> {
        self.end_run(session)?;
        let Some(spill) = &mut self.spill else {
            return Ok(());
        };
        spill.flush().context("cannot write the rows' spill file")?;
        for segment in &self.segments {
            if segment.rows == 0 {
                continue;
            }
            session.start(statement(table, &segment.columns))?;
            spill
                .seek(SeekFrom::Start(segment.start))
                .context("cannot read the rows' spill file")?;
            let mut left = segment.bytes;
            let mut rows = segment.rows;
            while left > 0 {
                let n = left.min(CHUNK as u64);
                let mut chunk = vec![0; n as usize];
                spill
                    .read_exact(&mut chunk)
                    .context("cannot read the rows' spill file")?;
                left -= n;
                // The row count goes with the last piece.
                let count = if left == 0 {
                    std::mem::take(&mut rows)
                } else {
                    0
                };
                session.send(chunk, count)?;
            }
            session.conn()?;
        }
        spill
            .seek(SeekFrom::End(0))
            .context("cannot write the rows' spill file")?;
        Ok(())
    }

    /// Forgets the spilled rows once their transaction committed (or
    /// rolled back for good).
    pub fn committed(&mut self) -> Result<()> {
        self.columns = None;
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
