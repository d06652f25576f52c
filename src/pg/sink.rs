//! A PostgreSQL table as a sink. Rows travel with COPY: straight into the
//! table for append, through a temporary staging table for replace and
//! upsert, so that the table is emptied (replace) or merged (upsert) only
//! at the end, inside the same transaction as everything else. Values are
//! checked against their columns before they are sent, so a bad row is a
//! reject, not a failed COPY. The bookmark is stored in `_etl_state` in the
//! target schema, in the same transaction.

use std::collections::HashMap;
use std::io::Write;

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};
use postgres::Client;
use serde_json::Value;

use super::conn::{MAX_IDENTIFIER_BYTES, identifier_too_long, quote, schema_of};
use super::copy::{BINARY_HEADER, BINARY_TRAILER, Binary, Kind, binary_value, copy_value};
use super::source::db_message;
use crate::format::flat::{Fields, Raw};
use crate::format::typing::{column_types, type_of_value};
use crate::record::{FieldType, Schema};
use crate::sink::Sink;
use crate::sink::{LoadMode, TableOptions};
use crate::state::{StateChanges, StateStore};

/// COPY data is sent in chunks of about this many bytes.
const CHUNK: usize = 4 << 20;

struct Column {
    name: String,
    kind: Kind,
    type_name: String,
    /// The column's binary COPY form, when etlkit writes one.
    binary: Option<Binary>,
}

impl Column {
    fn new(name: String, kind: Kind, type_name: String) -> Column {
        Column {
            binary: Binary::of(kind, &type_name),
            name,
            kind,
            type_name,
        }
    }

    /// A column etlkit creates for a wire type.
    fn declared(name: String, t: FieldType) -> Column {
        Column::new(name, Kind::of(t), Kind::declared(t).into())
    }
}

/// A COPY in progress on a writer thread, which holds the connection
/// until the COPY ends: rows are parsed here while the server stores the
/// previous chunk.
struct CopyStream {
    chunks: SyncSender<Vec<u8>>,
    done: JoinHandle<(Client, Result<()>)>,
    columns: Vec<usize>,
}

/// The COPY format of the rows being buffered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    /// Every column has a binary form: the server skips text parsing.
    Binary,
    /// Some column (a date, a uuid, ...) is sent as text.
    Text,
}

/// Loads into one PostgreSQL table inside one transaction.
pub struct PgSink {
    client: Option<Client>,
    copy: Option<CopyStream>,
    name: String,
    schema: String,
    table: String,
    qtable: String,
    options: TableOptions,
    exists: bool,
    columns: Vec<Column>,
    null_only: Vec<String>,
    /// The column each field of the record being inserted names
    /// (`usize::MAX`: a field without a column, only null so far).
    bound: Vec<usize>,
    /// The field names `bound` was found for: a record with the same names
    /// in the same order reuses it without looking a name up.
    bound_names: Vec<String>,
    /// The key columns (`--key`), found once by `prepare`.
    key_cols: Vec<usize>,
    staged: bool,
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
    log: Vec<String>,
    deleted: u64,
}

/// The connection, once any COPY in progress has finished (its error, if
/// the server refused the rows, surfaces here). A free function so that
/// callers can borrow the sink's other fields at the same time.
fn conn<'a>(
    copy: &mut Option<CopyStream>,
    client: &'a mut Option<Client>,
    name: &str,
) -> Result<&'a mut Client> {
    if let Some(stream) = copy.take() {
        drop(stream.chunks);
        let (returned, result) = stream
            .done
            .join()
            .map_err(|_| anyhow::anyhow!("the COPY writer thread panicked"))?;
        *client = Some(returned);
        result.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    client
        .as_mut()
        .context("the connection was lost with a failed COPY")
}

fn pg_err(what: &str) -> impl Fn(postgres::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", db_message(&e))
}

impl PgSink {
    /// Starts the transaction, takes the table's load lock (a second load
    /// of the same table waits) and reads the table's columns.
    /// `schema` none: the connection's current schema.
    pub fn new(
        mut client: Client,
        name: &str,
        schema: Option<&str>,
        table: &str,
        options: TableOptions,
    ) -> Result<Self> {
        super::conn::check_identifier("table name", table)?;
        let schema = schema_of(&mut client, schema, name)?;
        let qtable = format!("{}.{}", quote(&schema), quote(table));
        let mut sink = PgSink {
            client: Some(client),
            copy: None,
            name: name.to_string(),
            schema,
            table: table.to_string(),
            qtable,
            staged: options.mode != LoadMode::Append,
            options,
            exists: false,
            columns: Vec::new(),
            null_only: Vec::new(),
            bound: Vec::new(),
            bound_names: Vec::new(),
            key_cols: Vec::new(),
            chunk: Vec::with_capacity(CHUNK + 65_536),
            copy_cols: Vec::new(),
            format: Format::Binary,
            patterns: Vec::new(),
            pattern_ids: HashMap::new(),
            pattern: Vec::new(),
            log: Vec::new(),
            deleted: 0,
        };
        sink.begin()?;
        Ok(sink)
    }

    fn begin(&mut self) -> Result<()> {
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute("BEGIN")
            .map_err(pg_err("cannot start a transaction"))?;
        conn(&mut self.copy, &mut self.client, &self.name)?
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("etlkit:{}", self.qtable)],
            )
            .map_err(pg_err("cannot take the table's load lock"))?;
        let rows = conn(&mut self.copy, &mut self.client, &self.name)?
            .query(
                "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&self.qtable],
            )
            .map_err(pg_err("cannot read the table's columns"))?;
        self.exists = !rows.is_empty();
        self.columns = rows
            .iter()
            .map(|r| Column::new(r.get(0), Kind::from_typname(r.get(1)), r.get(2)))
            .collect();
        if self.exists && self.staged {
            self.create_staging()?;
        }
        Ok(())
    }

    fn create_staging(&mut self) -> Result<()> {
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS etl_stage (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP; \
                 ALTER TABLE etl_stage ADD COLUMN IF NOT EXISTS _etl_seq bigserial, \
                 ADD COLUMN IF NOT EXISTS _etl_pat integer",
                self.qtable
            ))
            .map_err(pg_err("cannot create the staging table"))
    }

    fn copy_target(&self) -> String {
        if self.staged {
            "etl_stage".into()
        } else {
            self.qtable.clone()
        }
    }

    /// Hands the buffered rows to the COPY writer, starting one if needed.
    fn flush(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        if self
            .copy
            .as_ref()
            .is_some_and(|c| c.columns != self.copy_cols)
        {
            conn(&mut self.copy, &mut self.client, &self.name)?;
        }
        if self.copy.is_none() {
            let mut names: Vec<String> = self
                .copy_cols
                .iter()
                .map(|&i| quote(&self.columns[i].name))
                .collect();
            if self.options.mode == LoadMode::Upsert {
                names.push("_etl_pat".into());
            }
            let binary = self.format == Format::Binary;
            let sql = format!(
                "COPY {} ({}) FROM STDIN{}",
                self.copy_target(),
                names.join(", "),
                if binary { " (FORMAT binary)" } else { "" }
            );
            conn(&mut self.copy, &mut self.client, &self.name)?;
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
                columns: self.copy_cols.clone(),
            });
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK + 65_536));
        let sent = self.copy.as_ref().map(|c| c.chunks.send(chunk));
        if let Some(Err(_)) = sent {
            // The writer stopped early: collect its error.
            conn(&mut self.copy, &mut self.client, &self.name)?;
            bail!("{}: the COPY ended before all rows were sent", self.name);
        }
        Ok(())
    }

    fn add_columns(&mut self, columns: &[(String, FieldType)]) -> Result<()> {
        if columns.is_empty() {
            return Ok(());
        }
        // A field bound to no column may have one now.
        self.bound_names.clear();
        if let Some((n, _)) = columns.iter().find(|(n, _)| n.len() > MAX_IDENTIFIER_BYTES) {
            bail!("{}", identifier_too_long("column name", n));
        }
        self.flush()?;
        if !self.exists {
            if !self.schema.is_empty() {
                conn(&mut self.copy, &mut self.client, &self.name)?
                    .batch_execute(&format!(
                        "CREATE SCHEMA IF NOT EXISTS {}",
                        quote(&self.schema)
                    ))
                    .map_err(pg_err("cannot create the schema"))?;
            }
            let defs: Vec<String> = columns
                .iter()
                .map(|(n, t)| format!("{} {}", quote(n), Kind::declared(*t)))
                .collect();
            conn(&mut self.copy, &mut self.client, &self.name)?
                .batch_execute(&format!(
                    "CREATE TABLE {} ({})",
                    self.qtable,
                    defs.join(", ")
                ))
                .map_err(pg_err("cannot create the table"))?;
            self.log.push(format!(
                "created table {}: {}",
                self.qtable,
                defs.join(", ")
            ));
            self.exists = true;
            for (n, t) in columns {
                self.columns.push(Column::declared(n.clone(), *t));
            }
            if self.staged {
                self.create_staging()?;
            }
        } else {
            for (n, t) in columns {
                let mut sql = format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    self.qtable,
                    quote(n),
                    Kind::declared(*t)
                );
                if self.staged {
                    sql.push_str(&format!(
                        "; ALTER TABLE etl_stage ADD COLUMN {} {}",
                        quote(n),
                        Kind::declared(*t)
                    ));
                }
                conn(&mut self.copy, &mut self.client, &self.name)?
                    .batch_execute(&sql)
                    .map_err(pg_err("cannot add a column"))?;
                self.log
                    .push(format!("added column {n:?} to {}", self.qtable));
                self.columns.push(Column::declared(n.clone(), *t));
            }
        }
        self.null_only
            .retain(|n| !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(n)));
        Ok(())
    }

    /// The column a field names: the column of that exact name, else the
    /// one column whose name differs only in case (as SQLite and MySQL
    /// find columns, so a field binds to the same column in every store).
    fn find(&self, name: &str) -> Option<usize> {
        match self.lookup(name) {
            Lookup::Found(i) => Some(i),
            Lookup::Missing | Lookup::Ambiguous(..) => None,
        }
    }

    /// [`find`](Self::find), telling a name no column has from one that two
    /// columns differing only in case both have (a table made by another
    /// tool may hold `id` and `Id`).
    fn lookup(&self, name: &str) -> Lookup {
        if let Some(i) = self.columns.iter().position(|c| c.name == name) {
            return Lookup::Found(i);
        }
        let lower = name.to_lowercase();
        let mut found = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.to_lowercase() == lower)
            .map(|(i, _)| i);
        match (found.next(), found.next()) {
            (Some(i), None) => Lookup::Found(i),
            (Some(a), Some(b)) => Lookup::Ambiguous(a, b),
            _ => Lookup::Missing,
        }
    }

    /// Binds each field of `fields` to its column in `bound` (`usize::MAX`:
    /// no column yet, only null so far), adding the columns new fields
    /// need; the reason when the record cannot be bound. A record with the
    /// same field names as the last one reuses its binding.
    fn bind(&mut self, fields: &Fields<'_>) -> Result<Result<(), String>> {
        let same = self.bound_names.len() == fields.len()
            && self
                .bound_names
                .iter()
                .zip(fields)
                .all(|(last, (name, _))| last == name)
            && self
                .bound
                .iter()
                .zip(fields)
                .all(|(&i, (_, v))| i != usize::MAX || v.is_null());
        if same {
            return Ok(Ok(()));
        }
        self.bound_names.clear();
        let mut new_columns: Vec<(String, FieldType)> = Vec::new();
        self.bound.clear();
        for (name, value) in fields {
            match self.lookup(name) {
                Lookup::Found(i) if self.bound.contains(&i) => {
                    return Ok(Err(format!(
                        "field {name:?} names column {:?} a second time (names are case-insensitive)",
                        self.columns[i].name
                    )));
                }
                Lookup::Found(i) => {
                    self.bound.push(i);
                    continue;
                }
                Lookup::Ambiguous(a, b) => {
                    return Ok(Err(format!(
                        "field {name:?} could be column {:?} or {:?} of {}, which differ only in case",
                        self.columns[a].name, self.columns[b].name, self.qtable
                    )));
                }
                Lookup::Missing => {}
            }
            if let Some((first, _)) = new_columns
                .iter()
                .find(|(n, _)| n.to_lowercase() == name.to_lowercase())
            {
                return Ok(Err(format!(
                    "field {name:?} names column {first:?} a second time (names are case-insensitive)"
                )));
            } else {
                self.bound.push(usize::MAX);
                if self.options.strict {
                    return Ok(Err(format!(
                        "field {name:?} is not a column of {} (--schema strict)",
                        self.qtable
                    )));
                }
                match type_of_value(value) {
                    Some(t) => new_columns.push((name.to_string(), t)),
                    None if !self.null_only.iter().any(|n| n.eq_ignore_ascii_case(name)) => {
                        self.null_only.push(name.to_string());
                    }
                    None => {}
                }
            }
        }
        if !new_columns.is_empty() {
            self.add_columns(&new_columns)?;
            self.bound.clear();
            for (name, _) in fields {
                let i = self.find(name).unwrap_or(usize::MAX);
                self.bound.push(i);
            }
        }
        self.bound_names = fields.iter().map(|(n, _)| n.to_string()).collect();
        Ok(Ok(()))
    }

    /// Moves staged rows into the table (replace empties it first; upsert
    /// merges by key, the last record for a key winning), then stores the
    /// bookmarks: the end of every transaction.
    fn settle(&mut self, changes: &StateChanges) -> Result<()> {
        let pending: Vec<(String, FieldType)> = std::mem::take(&mut self.null_only)
            .into_iter()
            .map(|n| (n, FieldType::Text))
            .collect();
        if !self.options.strict || !self.exists {
            self.add_columns(&pending)?;
        }
        self.flush()?;
        if self.staged && self.exists {
            let cols: Vec<String> = self
                .copy_cols
                .iter()
                .map(|&i| quote(&self.columns[i].name))
                .collect();
            let cols = cols.join(", ");
            match self.options.mode {
                LoadMode::Replace => {
                    conn(&mut self.copy, &mut self.client, &self.name)?
                        .batch_execute(&format!(
                            // DELETE, not TRUNCATE: readers keep seeing the old
                            // rows (MVCC) until the transaction commits.
                            "DELETE FROM {t}; INSERT INTO {t} ({cols}) SELECT {cols} FROM etl_stage ORDER BY _etl_seq; \
                             TRUNCATE etl_stage",
                            t = self.qtable
                        ))
                        .map_err(pg_err("cannot replace the table's rows"))?;
                }
                LoadMode::Upsert => self.merge()?,
                // ReplacePartitions is refused for tables when the flags are checked.
                LoadMode::Append | LoadMode::ReplacePartitions => {}
            }
        }
        let client = conn(&mut self.copy, &mut self.client, &self.name)?;
        super::state::write(client, &self.schema, &self.table, changes)
    }

    /// Is there a unique index (or primary key) on exactly the key columns?
    /// Then ON CONFLICT can use it and no second index is built.
    fn has_key_index(&mut self) -> Result<bool> {
        let keys: Vec<String> = self.options.keys.clone();
        Ok(conn(&mut self.copy, &mut self.client, &self.name)?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL \
                 AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($2::text[]) \
                 AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a \
                      WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[])) \
                     = (SELECT array_agg(k ORDER BY k) FROM unnest($2::text[]) AS k))",
                &[&self.qtable, &keys],
            )
            .map_err(pg_err("cannot read the table's indexes"))?
            .get(0))
    }

    /// Merges the staged rows into the table by key. The last record for a
    /// key wins for each field it carries; a field it omits keeps the
    /// stored value (or the column default for a new key); a record that
    /// deletes its key (--delete-when) drops the stored row, and the
    /// records after it start a fresh one.
    fn merge(&mut self) -> Result<()> {
        let keys: Vec<String> = self.options.keys.iter().map(|k| quote(k)).collect();
        let key_list = keys.join(", ");
        let on = |a: &str, b: &str| -> String {
            keys.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        if !self.has_key_index()? {
            conn(&mut self.copy, &mut self.client, &self.name)?
                .batch_execute(&format!(
                    "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({key_list})",
                    quote(&key_index_name(&self.table)),
                    self.qtable
                ))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot upsert into {} by key ({key_list}): {}",
                        self.qtable,
                        db_message(&e)
                    )
                })?;
        }
        // No staged record named the flag: none deletes (and the column may
        // not exist yet).
        if let Some(flag) = &self.options.delete_when
            && self
                .copy_cols
                .iter()
                .any(|&i| self.columns[i].name == *flag)
        {
            let flag = quote(flag);
            let client = conn(&mut self.copy, &mut self.client, &self.name)?;
            let deleted = client
                .execute(
                    &format!(
                        "DELETE FROM {} AS t USING (SELECT DISTINCT {key_list} FROM etl_stage \
                         WHERE {flag} IS TRUE) AS d WHERE {}",
                        self.qtable,
                        on("t", "d")
                    ),
                    &[],
                )
                .map_err(pg_err("cannot apply deletes"))?;
            self.deleted += deleted;
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
            let name = &self.columns[i].name;
            if self.options.keys.contains(name) {
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
                self.qtable,
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
            let cols: Vec<String> = groups.into_iter().flat_map(|(_, c)| c).collect();
            upsert(&cols, &latest, "")
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
            let client = conn(&mut self.copy, &mut self.client, &self.name)?;
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
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute(&format!("{sql}; TRUNCATE etl_stage"))
            .map_err(pg_err("cannot upsert"))?;
        self.patterns.clear();
        self.pattern_ids.clear();
        Ok(())
    }
}

/// The name of the unique index etlkit puts on an upsert key: within
/// PostgreSQL's 63 bytes, and different for tables whose long names share
/// a prefix (a truncated name would be one index for both).
fn key_index_name(table: &str) -> String {
    let name = format!("{table}__etl_key");
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    // FNV-1a: the same name on every build and platform.
    let hash = table.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let suffix = format!("_{hash:08x}__etl_key");
    let mut cut = MAX_IDENTIFIER_BYTES - suffix.len();
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &table[..cut])
}

impl Sink for PgSink {
    fn state(&mut self) -> &mut dyn StateStore {
        self
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        let missing: Vec<(String, FieldType)> = column_types(schema, sample)
            .into_iter()
            .filter(|(n, _)| matches!(self.lookup(n), Lookup::Missing))
            .collect();
        if !(self.options.strict && self.exists) {
            self.add_columns(&missing)?;
        }
        // Keys (and the delete flag) name their columns as the table spells
        // them, so the merge's SQL and the checks below use one name.
        self.key_cols.clear();
        for k in 0..self.options.keys.len() {
            match self.find(&self.options.keys[k]) {
                Some(i) => {
                    self.options.keys[k] = self.columns[i].name.clone();
                    self.key_cols.push(i);
                }
                None => {
                    return Err(crate::error::usage(format!(
                        "key column {:?} is neither in the input nor in table {}",
                        self.options.keys[k], self.qtable
                    )));
                }
            }
        }
        if let Some(flag) = &self.options.delete_when
            && let Some(i) = self.find(flag)
        {
            self.options.delete_when = Some(self.columns[i].name.clone());
        }
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        if let Err(reason) = self.bind(fields)? {
            return Ok(Err(reason));
        }
        for (key, &k) in self.options.keys.iter().zip(&self.key_cols) {
            let held = self
                .bound
                .iter()
                .position(|&b| b == k)
                .map(|p| &fields[p].1);
            if held.is_none_or(|v| v.is_null()) {
                return Ok(Err(format!("key field {key:?} is null or missing")));
            }
        }
        let named: Vec<usize> = self
            .bound
            .iter()
            .copied()
            .filter(|&i| i != usize::MAX && !self.copy_cols.contains(&i))
            .collect();
        if !named.is_empty() {
            // Rows so far go with the old column list; later ones with the new.
            self.flush()?;
            for i in named {
                if !self.copy_cols.contains(&i) {
                    self.copy_cols.push(i);
                }
            }
            self.format = if self
                .copy_cols
                .iter()
                .all(|&i| self.columns[i].binary.is_some())
            {
                Format::Binary
            } else {
                Format::Text
            };
        }
        if self.copy_cols.is_empty() {
            // A record with no values at all: a row of defaults.
            let target = self.copy_target();
            conn(&mut self.copy, &mut self.client, &self.name)?
                .batch_execute(&format!("INSERT INTO {target} DEFAULT VALUES"))
                .map_err(pg_err("cannot insert a row of defaults"))?;
            return Ok(Ok(()));
        }
        let start = self.chunk.len();
        let upsert = self.options.mode == LoadMode::Upsert;
        let binary = self.format == Format::Binary;
        if binary {
            let count = self.copy_cols.len() + usize::from(upsert);
            let count = i16::try_from(count).context("more than 32767 columns")?;
            self.chunk.extend_from_slice(&count.to_be_bytes());
        }
        self.pattern.clear();
        for (n, &i) in self.copy_cols.iter().enumerate() {
            let column = &self.columns[i];
            if n > 0 && !binary {
                self.chunk.push(b'\t');
            }
            let field = self.bound.iter().position(|&b| b == i).map(|p| &fields[p]);
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
            self.flush()?;
        }
        Ok(Ok(()))
    }

    fn commit_point(&mut self, changes: &StateChanges) -> Result<()> {
        self.settle(changes)?;
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute("COMMIT")
            .map_err(pg_err("cannot commit"))?;
        self.begin()
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        self.settle(changes)?;
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute("COMMIT")
            .map_err(|e| anyhow::anyhow!("{}: cannot commit: {}", self.name, db_message(&e)))?;
        let mut log = std::mem::take(&mut self.log);
        if self.deleted > 0 {
            log.push(format!("deleted {} rows (--delete-when)", self.deleted));
        }
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        let client = conn(&mut self.copy, &mut self.client, &self.name)?;
        let columns: Vec<String> = client
            .query(
                "SELECT quote_ident(column_name) || ' ' || format_type(a.atttypid, a.atttypmod) \
                 FROM information_schema.columns c JOIN pg_attribute a \
                   ON a.attrelid = to_regclass(quote_ident($1) || '.' || quote_ident($2)) \
                  AND a.attname = c.column_name \
                 WHERE c.table_schema = $1 AND c.table_name = $2 ORDER BY c.ordinal_position",
                &[&self.schema, &self.table],
            )
            .map_err(pg_err("cannot read the table's definition"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(vec![format!(
            "CREATE TABLE {} ({});",
            self.qtable,
            columns.join(", ")
        )])
    }

    fn abort(mut self: Box<Self>) {
        // The server rolls back if this fails too (the session ends).
        if let Ok(client) = conn(&mut self.copy, &mut self.client, &self.name) {
            let _ = client.batch_execute("ROLLBACK");
        }
    }
}

/// PostgreSQL's state is read through the load's own connection, inside
/// its transaction (see `state.rs` in this folder).
impl StateStore for PgSink {
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>> {
        let client = conn(&mut self.copy, &mut self.client, &self.name)?;
        super::state::read_bookmark(client, &self.schema, stream, true)
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        let client = conn(&mut self.copy, &mut self.client, &self.name)?;
        super::state::batch_committed(client, &self.schema, &self.table, stream, id)
    }
}

/// What a field's name finds among a table's columns.
enum Lookup {
    /// One column: of that exact name, or the one differing only in case.
    Found(usize),
    /// None.
    Missing,
    /// Two columns differing only in case, neither of the exact name.
    Ambiguous(usize, usize),
}
