//! The bulk path into a PostgreSQL table. Rows travel with COPY: straight
//! into the table for append and replace (which deleted the old rows first,
//! in the same transaction: readers see them until the commit), through a
//! temporary staging table for upsert, so that it is merged only at the
//! end, inside the same transaction as everything else. The COPY runs on a writer thread that holds the connection until
//! it ends ([`Session`]): rows are encoded here while the server stores the
//! previous chunk.

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};
use postgres::Client;
use postgres::error::SqlState;

use super::binary::{BINARY_HEADER, BINARY_TRAILER, binary_value};
use super::conn::{db_message, pg_err};
use super::table::{Column, Table, quote};
use super::values::copy_value;
use crate::format::flat::{Fields, Raw};
use crate::sink::{LoadMode, LoadOptions};

/// COPY data is sent in chunks of about this many bytes.
const CHUNK: usize = 4 << 20;

/// A COPY in progress on a writer thread, which holds the connection
/// until the COPY ends: rows are parsed here while the server stores the
/// previous chunk.
struct CopyStream {
    chunks: SyncSender<Vec<u8>>,
    done: JoinHandle<(Client, Result<()>)>,
    columns: Vec<usize>,
}

/// The load's connection: here, or lent to the writer thread of a COPY in
/// progress.
pub struct Session {
    client: Option<Client>,
    copy: Option<CopyStream>,
    /// The target as messages show it.
    name: String,
}

impl Session {
    /// The connection `client` to the target shown as `name`.
    pub fn new(client: Client, name: &str) -> Session {
        Session {
            client: Some(client),
            copy: None,
            name: name.to_string(),
        }
    }

    /// The target as messages show it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection, once any COPY in progress has finished (its error,
    /// if the server refused the rows, surfaces here).
    pub fn client(&mut self) -> Result<&mut Client> {
        if let Some(stream) = self.copy.take() {
            drop(stream.chunks);
            let (returned, result) = stream
                .done
                .join()
                .map_err(|_| anyhow::anyhow!("the COPY writer thread panicked"))?;
            self.client = Some(returned);
            result.map_err(|e| anyhow::anyhow!("{}: {e}", self.name))?;
        }
        self.client
            .as_mut()
            .context("the connection was lost with a failed COPY")
    }

    /// Hands the connection to a writer thread running `sql` (a COPY FROM
    /// STDIN of `columns`), which sends the chunks it is given.
    fn start_copy(&mut self, sql: String, binary: bool, columns: Vec<usize>) -> Result<()> {
        self.client()?;
        let mut client = self.client.take().context("no connection")?;
        let (chunks, incoming) = sync_channel::<Vec<u8>>(2);
        let done = std::thread::spawn(move || {
            let result = (|| -> Result<()> {
                let mut writer = client
                    .copy_in(&sql)
                    .map_err(|e| anyhow::anyhow!("cannot start COPY: {}", db_message(&e)))?;
                if binary {
                    writer
                        .write_all(BINARY_HEADER)
                        .context("cannot send rows")?;
                }
                for chunk in incoming {
                    writer.write_all(&chunk).context("cannot send rows")?;
                }
                if binary {
                    writer
                        .write_all(BINARY_TRAILER)
                        .context("cannot send rows")?;
                }
                writer
                    .finish()
                    .map_err(|e| anyhow::anyhow!("COPY failed: {}", db_message(&e)))?;
                Ok(())
            })();
            (client, result)
        });
        self.copy = Some(CopyStream {
            chunks,
            done,
            columns,
        });
        Ok(())
    }
}

/// The COPY format of the rows being buffered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    /// Every column has a binary form: the server skips text parsing.
    Binary,
    /// Some column (a date, a uuid, ...) is sent as text.
    Text,
}

/// Rows on their way into the table: buffered as COPY data, sent in
/// chunks, and (upsert) merged from the staging table at the end of each
/// transaction.
pub struct Stage {
    /// Through the staging table `etl_stage` (upsert), not straight into
    /// the table (append, replace).
    pub staged: bool,
    upsert: bool,
    chunk: Vec<u8>,
    /// Columns the input has named so far: the only ones sent and updated
    /// (the rest keep their defaults, or their values on upsert).
    copy_cols: Vec<usize>,
    /// How the rows of `copy_cols` are written.
    format: Format,
    /// Upsert: which of `copy_cols` each staged record carried (a field a
    /// record omits keeps its stored value). Each distinct set gets a
    /// number, staged with the record in `_etl_pat`.
    patterns: Vec<Vec<bool>>,
    pattern_ids: HashMap<Vec<bool>, usize>,
    pattern: Vec<bool>,
    /// The table was created in this transaction: COPY FREEZE writes its
    /// rows already frozen, so no reader or VACUUM rewrites every page
    /// later to set hint bits (no other transaction can see the table
    /// before the commit).
    pub freeze: bool,
}

impl Stage {
    /// The bulk path for a load with `options` (its mode decides).
    pub fn new(options: &LoadOptions) -> Stage {
        Stage {
            staged: options.mode.merges_by_key(),
            upsert: options.mode.merges_by_key(),
            chunk: Vec::with_capacity(CHUNK + 65_536),
            copy_cols: Vec::new(),
            format: Format::Binary,
            patterns: Vec::new(),
            pattern_ids: HashMap::new(),
            pattern: Vec::new(),
            freeze: false,
        }
    }

    /// Creates the staging table for `table` (it lives until the
    /// transaction ends).
    pub fn create(&self, session: &mut Session, table: &Table) -> Result<()> {
        session
            .client()?
            .batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS etl_stage (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP; \
                 ALTER TABLE etl_stage ADD COLUMN IF NOT EXISTS _etl_seq bigserial, \
                 ADD COLUMN IF NOT EXISTS _etl_pat integer",
                table.qtable
            ))
            .map_err(pg_err("cannot create the staging table"))
    }

    fn target(&self, table: &Table) -> String {
        if self.staged {
            "etl_stage".into()
        } else {
            table.qtable.clone()
        }
    }

    /// Hands the buffered rows to the COPY writer, starting one if needed.
    pub fn flush(&mut self, session: &mut Session, table: &Table) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        if session
            .copy
            .as_ref()
            .is_some_and(|c| c.columns != self.copy_cols)
        {
            session.client()?;
        }
        if session.copy.is_none() {
            let mut names: Vec<String> = self
                .copy_cols
                .iter()
                .map(|&i| quote(&table.columns[i].name))
                .collect();
            if self.upsert {
                names.push("_etl_pat".into());
            }
            let binary = self.format == Format::Binary;
            let freeze = self.freeze && !self.staged;
            let sql = format!(
                "COPY {} ({}) FROM STDIN{}",
                self.target(table),
                names.join(", "),
                match (binary, freeze) {
                    (true, true) => " (FORMAT binary, FREEZE)",
                    (true, false) => " (FORMAT binary)",
                    (false, true) => " (FREEZE)",
                    (false, false) => "",
                }
            );
            session.start_copy(sql, binary, self.copy_cols.clone())?;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK + 65_536));
        let sent = session.copy.as_ref().map(|c| c.chunks.send(chunk));
        if let Some(Err(_)) = sent {
            // The writer stopped early: collect its error.
            session.client()?;
            bail!("{}: the COPY ended before all rows were sent", session.name);
        }
        Ok(())
    }

    /// Buffers one record, bound to `table`'s columns, as a COPY row; the
    /// reason when a value does not fit its column.
    pub fn write(
        &mut self,
        session: &mut Session,
        table: &Table,
        fields: &Fields<'_>,
    ) -> Result<Result<(), String>> {
        let named: Vec<usize> = table
            .binder
            .bound
            .iter()
            .copied()
            .filter(|&i| i != usize::MAX && !self.copy_cols.contains(&i))
            .collect();
        if !named.is_empty() {
            // Rows so far go with the old column list; later ones with the new.
            self.flush(session, table)?;
            for i in named {
                if !self.copy_cols.contains(&i) {
                    self.copy_cols.push(i);
                }
            }
            self.format = if self
                .copy_cols
                .iter()
                .all(|&i| table.columns[i].binary.is_some())
            {
                Format::Binary
            } else {
                Format::Text
            };
        }
        if self.copy_cols.is_empty() {
            // A record with no values at all: a row of defaults.
            let target = self.target(table);
            session
                .client()?
                .batch_execute(&format!("INSERT INTO {target} DEFAULT VALUES"))
                .map_err(pg_err("cannot insert a row of defaults"))?;
            return Ok(Ok(()));
        }
        let start = self.chunk.len();
        let upsert = self.upsert;
        let binary = self.format == Format::Binary;
        if binary {
            let count = self.copy_cols.len() + usize::from(upsert);
            let count = i16::try_from(count).context("more than 32767 columns")?;
            self.chunk.extend_from_slice(&count.to_be_bytes());
        }
        self.pattern.clear();
        for (n, &i) in self.copy_cols.iter().enumerate() {
            let column: &Column = &table.columns[i];
            if n > 0 && !binary {
                self.chunk.push(b'\t');
            }
            let field = table.binder.field_of(i).map(|p| &fields[p]);
            if upsert {
                self.pattern.push(field.is_some());
            }
            let value = field.map_or(&Raw::Null, |(_, v)| v);
            let written = match column.binary {
                Some(form) if binary => {
                    binary_value(&mut self.chunk, column.kind, form, &column.type_name, value)
                }
                _ => copy_value(&mut self.chunk, column.kind, &column.type_name, value),
            };
            if let Err(reason) = written {
                self.chunk.truncate(start);
                return Ok(Err(format!("column {:?}: {reason}", column.name)));
            }
        }
        if upsert {
            let id = match self.pattern_ids.get(&self.pattern) {
                Some(&id) => id,
                None => {
                    let id = self.patterns.len();
                    self.patterns.push(self.pattern.clone());
                    self.pattern_ids.insert(self.pattern.clone(), id);
                    id
                }
            };
            if binary {
                let id = i32::try_from(id).context("too many field patterns")?;
                self.chunk.extend_from_slice(&4i32.to_be_bytes());
                self.chunk.extend_from_slice(&id.to_be_bytes());
            } else {
                self.chunk.push(b'\t');
                self.chunk.extend_from_slice(id.to_string().as_bytes());
            }
        }
        if !binary {
            self.chunk.push(b'\n');
        }
        if self.chunk.len() >= CHUNK {
            self.flush(session, table)?;
        }
        Ok(Ok(()))
    }

    /// Merges the staged rows into the table by key (upsert); returns the
    /// rows deleted (--delete-when). Call after [`flush`](Self::flush).
    pub fn settle(
        &mut self,
        session: &mut Session,
        table: &Table,
        options: &LoadOptions,
    ) -> Result<u64> {
        if !(self.staged && table.exists) {
            return Ok(0);
        }
        if options.mode == LoadMode::DeleteMissing {
            // The staged keys said what stays; nothing is merged.
            session
                .client()?
                .batch_execute("TRUNCATE etl_stage")
                .map_err(pg_err("cannot empty the staging table"))?;
            self.patterns.clear();
            self.pattern_ids.clear();
            return Ok(0);
        }
        self.merge(session, table, options)
    }

    /// Merges the staged rows into the table by key. The last record for a
    /// key wins for each field it carries; a field it omits keeps the
    /// stored value (or the column default for a new key); a record that
    /// deletes its key (--delete-when) drops the stored row, and the
    /// records after it start a fresh one. Returns the rows deleted.
    fn merge(
        &mut self,
        session: &mut Session,
        table: &Table,
        options: &LoadOptions,
    ) -> Result<u64> {
        let mut deleted = 0;
        let keys: Vec<String> = options.keys.iter().map(|k| quote(k)).collect();
        let key_list = keys.join(", ");
        let on = |a: &str, b: &str| -> String {
            keys.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        table.ensure_key_index(session.client()?, &options.keys)?;
        // No staged record named the flag: none deletes (and the column may
        // not exist yet).
        if let Some(flag) = &options.delete_when
            && self
                .copy_cols
                .iter()
                .any(|&i| table.columns[i].name == *flag)
        {
            let flag = quote(flag);
            let client = session.client()?;
            deleted += client
                .execute(
                    &format!(
                        "DELETE FROM {} AS t USING (SELECT DISTINCT {key_list} FROM etl_stage \
                         WHERE {flag} IS TRUE) AS d WHERE {}",
                        table.qtable,
                        on("t", "d")
                    ),
                    &[],
                )
                .map_err(pg_err("cannot apply deletes"))?;
            client
                .execute(
                    &format!(
                        "DELETE FROM etl_stage AS s USING (SELECT {key_list}, max(_etl_seq) AS last \
                         FROM etl_stage WHERE {flag} IS TRUE GROUP BY {key_list}) AS d \
                         WHERE {} AND s._etl_seq <= d.last",
                        on("s", "d")
                    ),
                    &[],
                )
                .map_err(pg_err("cannot apply deletes"))?;
        }
        // Non-key columns grouped by the set of staged patterns that carry
        // them: columns of one group always come from the same record.
        let mut groups: Vec<(Vec<usize>, Vec<String>)> = Vec::new();
        for (p, &i) in self.copy_cols.iter().enumerate() {
            let name = &table.columns[i].name;
            if options.keys.contains(name) {
                continue;
            }
            let carriers: Vec<usize> = (0..self.patterns.len())
                .filter(|&j| self.patterns[j].get(p) == Some(&true))
                .collect();
            if carriers.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(c, _)| *c == carriers) {
                Some((_, cols)) => cols.push(quote(name)),
                None => groups.push((carriers, vec![quote(name)])),
            }
        }
        let upsert = |cols: &[String], from: &str, filter: &str| -> String {
            let updates: Vec<String> = cols.iter().map(|c| format!("{c} = excluded.{c}")).collect();
            let action = if updates.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            let all: Vec<String> = keys.iter().chain(cols).cloned().collect();
            let select: Vec<String> = all.iter().map(|c| format!("m.{c}")).collect();
            format!(
                "INSERT INTO {} ({}) SELECT {} FROM {from} AS m{filter} ON CONFLICT ({key_list}) {action}",
                table.qtable,
                all.join(", "),
                select.join(", ")
            )
        };
        let latest = format!(
            "(SELECT DISTINCT ON ({key_list}) * FROM etl_stage ORDER BY {key_list}, _etl_seq DESC)"
        );
        let everyone = self.patterns.len();
        let sql = if groups.iter().all(|(c, _)| c.len() == everyone) {
            // Every record carried every column: the latest record per key.
            // Most streams hold one record per key; merged as staged, with
            // no sort, unless the server finds a key twice (it refuses to
            // update a row twice in one statement): then rolled back to
            // the savepoint and merged from the latest records.
            let cols: Vec<String> = groups.into_iter().flat_map(|(_, c)| c).collect();
            let client = session.client()?;
            client
                .batch_execute("SAVEPOINT etl_merge")
                .map_err(pg_err("cannot upsert"))?;
            match client.batch_execute(&upsert(&cols, "etl_stage", "")) {
                Ok(()) => {
                    client
                        .batch_execute("RELEASE SAVEPOINT etl_merge")
                        .map_err(pg_err("cannot upsert"))?;
                    String::new()
                }
                Err(e) if e.code() == Some(&SqlState::CARDINALITY_VIOLATION) => {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT etl_merge")
                        .map_err(pg_err("cannot upsert"))?;
                    upsert(&cols, &latest, "")
                }
                Err(e) => return Err(pg_err("cannot upsert")(e)),
            }
        } else {
            let flags: Vec<String> = (0..groups.len())
                .map(|g| format!("NULL::boolean AS _etl_c{g}"))
                .collect();
            let mut sql = format!(
                "CREATE TEMP TABLE etl_merged AS SELECT DISTINCT ON ({key_list}) *, {} FROM etl_stage \
                 ORDER BY {key_list}, _etl_seq DESC;",
                flags.join(", ")
            );
            for (g, (carriers, cols)) in groups.iter().enumerate() {
                let ids: Vec<String> = carriers.iter().map(usize::to_string).collect();
                let set: Vec<String> = cols.iter().map(|c| format!("{c} = c.{c}")).collect();
                sql.push_str(&format!(
                    " UPDATE etl_merged AS m SET {}, _etl_c{g} = true FROM (SELECT DISTINCT ON ({key_list}) \
                     {key_list}, {} FROM etl_stage WHERE _etl_pat IN ({}) ORDER BY {key_list}, _etl_seq DESC) AS c \
                     WHERE {};",
                    set.join(", "),
                    cols.join(", "),
                    ids.join(", "),
                    on("m", "c")
                ));
            }
            // One insert per combination of groups a key's records carried,
            // naming only those columns.
            let checks: Vec<String> = (0..groups.len())
                .map(|g| format!("_etl_c{g} IS TRUE"))
                .collect();
            let client = session.client()?;
            client
                .batch_execute(&sql)
                .map_err(pg_err("cannot upsert"))?;
            let combinations = client
                .query(
                    &format!("SELECT DISTINCT {} FROM etl_merged", checks.join(", ")),
                    &[],
                )
                .map_err(pg_err("cannot upsert"))?;
            let mut sql = String::new();
            for row in combinations {
                let mut cols = Vec::new();
                let mut filter = Vec::new();
                for (g, (_, group)) in groups.iter().enumerate() {
                    if row.get::<_, bool>(g) {
                        cols.extend(group.iter().cloned());
                        filter.push(format!("m._etl_c{g} IS TRUE"));
                    } else {
                        filter.push(format!("m._etl_c{g} IS NOT TRUE"));
                    }
                }
                sql.push_str(&upsert(
                    &cols,
                    "etl_merged",
                    &format!(" WHERE {}", filter.join(" AND ")),
                ));
                sql.push_str("; ");
            }
            sql.push_str("DROP TABLE etl_merged");
            sql
        };
        if !sql.is_empty() {
            session
                .client()?
                .batch_execute(&sql)
                .map_err(pg_err("cannot upsert"))?;
        }
        session
            .client()?
            .batch_execute("TRUNCATE etl_stage")
            .map_err(pg_err("cannot upsert"))?;
        self.patterns.clear();
        self.pattern_ids.clear();
        Ok(deleted)
    }
}
