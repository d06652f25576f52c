//! A logical replication slot read over the ordinary SQL connection, for
//! change data capture (`etl-watch postgres://... --slot S --publication
//! P`).
//!
//! Changes are read with `pg_logical_slot_peek_binary_changes` (the
//! built-in `pgoutput` plugin, protocol 1): peeking never moves the slot,
//! so what was read but not loaded is read again after a crash. The slot
//! moves only by [`Slot::advance`], called once the batch holding a
//! transaction was committed downstream. The SQL functions work through
//! every connection etlkit makes (TLS, `.pgpass`, the `PG*` variables),
//! where the replication protocol would need a connection of its own
//! kind.

use anyhow::{Context, Result, bail};
use postgres::Client;

use super::changes::{Decoder, Relation, Transaction, parse_lsn};
use super::conn::{self, db_message};
use super::table::quote;

/// What to read: the slot, its publication, and (to create them) the
/// table.
#[derive(Debug, Clone)]
pub struct SlotPlan {
    /// The server, as given (holds the password, if any).
    pub url: String,
    /// The slot's name.
    pub slot: String,
    /// The publication's name.
    pub publication: String,
    /// `[schema.]table`: needed to create the publication; checked against
    /// an existing one.
    pub table: Option<String>,
    /// Create the publication and the slot when missing.
    pub create: bool,
}

/// An open slot.
pub struct Slot {
    client: Client,
    /// The server without its password.
    pub server: String,
    /// The database's name (part of the slot's identity).
    pub database: String,
    /// The slot's name.
    pub slot: String,
    publication: String,
    /// The published table, `schema.table`.
    pub table: String,
    /// Its primary key columns (empty: none).
    key: Vec<String>,
    /// The table's columns as the catalog has them (until a Relation
    /// message tells newer ones).
    pub relation: Relation,
    /// Where the slot stands: its changes before this were loaded.
    pub confirmed: u64,
    /// The slot was created by this run.
    pub created: bool,
}

/// How a slot looks in `pg_replication_slots`.
struct Found {
    plugin: String,
    database: String,
    confirmed: u64,
}

impl Slot {
    /// Connects and checks (or, with `create`, makes) the publication and
    /// the slot; what is missing and not to be made is an error saying
    /// what to do. `missing` is asked first when the slot is not there
    /// (an error from it is the run's).
    pub fn open(plan: &SlotPlan, missing: &mut dyn FnMut() -> Result<()>) -> Result<Slot> {
        let server = conn::redact(&plan.url);
        let mut client = conn::connect(&plan.url)?;
        let fail = |what: &str, e: postgres::Error| {
            anyhow::anyhow!("{server}: {what}: {}", db_message(&e))
        };
        let row = client
            .query_one(
                "SELECT current_setting('wal_level'), current_database()",
                &[],
            )
            .map_err(|e| fail("cannot read wal_level", e))?;
        let (wal_level, database): (String, String) = (row.get(0), row.get(1));
        if wal_level != "logical" {
            bail!(
                "{server}: wal_level is {wal_level}; change data capture needs wal_level = \
                 logical (set it in postgresql.conf and restart the server)"
            );
        }
        client
            .batch_execute(
                "SET DateStyle = ISO; SET bytea_output = hex; SET extra_float_digits = 3",
            )
            .map_err(|e| fail("cannot set up the session", e))?;
        let found = find(&mut client, &plan.slot).map_err(|e| fail("cannot read the slot", e))?;
        if found.is_none() {
            missing()?;
        }
        let published: Vec<String> = client
            .query(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) \
                 FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
                &[&plan.publication],
            )
            .map_err(|e| fail("cannot read the publication", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let flags = client
            .query_opt(
                "SELECT pubinsert AND pubupdate AND pubdelete FROM pg_publication \
                 WHERE pubname = $1",
                &[&plan.publication],
            )
            .map_err(|e| fail("cannot read the publication", e))?;
        let exists = flags.is_some();
        if let Some(row) = flags
            && !row.get::<_, bool>(0)
        {
            bail!(
                "{server}: publication {:?} does not publish every insert, update and delete, \
                 so the target would miss some; hint: ALTER PUBLICATION {} SET (publish = \
                 'insert, update, delete')",
                plan.publication,
                quote(&plan.publication)
            );
        }
        let wanted = match &plan.table {
            Some(t) => Some(qualified(&mut client, t).map_err(|e| fail("no such table", e))?),
            None => None,
        };
        let pubq = quote(&plan.publication);
        let table = if !exists {
            let Some(table) = wanted.filter(|_| plan.create) else {
                bail!(
                    "{server}: there is no publication {:?}; hint: --create-slot --table TABLE \
                     creates it and the slot (or CREATE PUBLICATION {pubq} FOR TABLE ... WITH \
                     (publish = 'insert, update, delete'))",
                    plan.publication
                );
            };
            check_identity(&mut client, &server, &table)?;
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {pubq} FOR TABLE {table} \
                     WITH (publish = 'insert, update, delete')"
                ))
                .map_err(|e| fail("cannot create the publication", e))?;
            table
        } else {
            match published.as_slice() {
                [one] => {
                    if let Some(t) = wanted
                        && t != *one
                    {
                        bail!(
                            "{server}: publication {:?} publishes {one}, not {t}",
                            plan.publication
                        );
                    }
                    one.clone()
                }
                [] => bail!(
                    "{server}: publication {:?} publishes no table; etl-watch reads one \
                     table per publication and slot",
                    plan.publication
                ),
                many => bail!(
                    "{server}: publication {:?} publishes {} tables ({}); etl-watch reads one \
                     table per publication and slot, so that each batch goes to one target table",
                    plan.publication,
                    many.len(),
                    many.join(", ")
                ),
            }
        };
        let mut created = false;
        let found = match found {
            Some(found) => found,
            None if plan.create => {
                client
                    .execute(
                        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[&plan.slot],
                    )
                    .map_err(|e| fail("cannot create the replication slot", e))?;
                created = true;
                find(&mut client, &plan.slot)
                    .map_err(|e| fail("cannot read the slot", e))?
                    .context("the slot just created is not listed")?
            }
            None => bail!(
                "{server}: there is no replication slot {:?}; hint: --create-slot creates it",
                plan.slot
            ),
        };
        if found.plugin != "pgoutput" {
            bail!(
                "{server}: replication slot {:?} decodes with {}; etl-watch reads pgoutput slots",
                plan.slot,
                found.plugin
            );
        }
        if found.database != database {
            bail!(
                "{server}: replication slot {:?} belongs to database {:?}, not {database:?}",
                plan.slot,
                found.database
            );
        }
        let key = primary_key(&mut client, &table).map_err(|e| fail("cannot read the key", e))?;
        let relation =
            catalog_relation(&mut client, &table).map_err(|e| fail("cannot read the table", e))?;
        Ok(Slot {
            client,
            server,
            database,
            slot: plan.slot.clone(),
            publication: plan.publication.clone(),
            table,
            key,
            relation,
            confirmed: found.confirmed,
            created,
        })
    }

    /// The committed transactions after the slot's position: those that
    /// commit before `upto_lsn`, or (with `upto_rows`) those decoded
    /// until that many rows were, whole transactions always. Never moves
    /// the slot.
    pub fn peek(
        &mut self,
        upto_lsn: Option<u64>,
        upto_rows: Option<usize>,
    ) -> Result<Vec<Transaction>> {
        let upto_lsn = upto_lsn.map(super::changes::lsn_text);
        let upto_rows = upto_rows.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let publication = format!("\"{}\"", self.publication.replace('"', "\"\""));
        let rows = self
            .client
            .query(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3, \
                 'proto_version', '1', 'publication_names', $4)",
                &[&self.slot, &upto_lsn, &upto_rows, &publication],
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: cannot read replication slot {:?}: {}",
                    self.server,
                    self.slot,
                    db_message(&e)
                )
            })?;
        let mut decoder = Decoder::new(self.key.clone());
        let mut out = Vec::new();
        for row in &rows {
            let data: &[u8] = row.get(0);
            let done = decoder
                .push(data)
                .with_context(|| format!("{}: replication slot {:?}", self.server, self.slot))?;
            if let Some(relation) = decoder.relation() {
                self.relation = relation.clone();
            }
            if let Some(tx) = done {
                out.push(tx);
            }
        }
        Ok(out)
    }

    /// The server's current WAL position.
    pub fn current_wal(&mut self) -> Result<u64> {
        let text: String = self
            .client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .map_err(|e| anyhow::anyhow!("{}: {}", self.server, db_message(&e)))?
            .get(0);
        parse_lsn(&text).with_context(|| format!("{}: an LSN {text:?}", self.server))
    }

    /// Moves the slot to `lsn` (a transaction's end): the server may drop
    /// the WAL before it. Nothing happens when the slot is there already.
    pub fn advance(&mut self, lsn: u64) -> Result<()> {
        if lsn <= self.confirmed {
            return Ok(());
        }
        self.client
            .execute(
                "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                &[&self.slot, &super::changes::lsn_text(lsn)],
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: cannot advance replication slot {:?}: {}",
                    self.server,
                    self.slot,
                    db_message(&e)
                )
            })?;
        self.confirmed = lsn;
        Ok(())
    }

    /// Bytes of WAL the server keeps for the slot (from its restart point
    /// to the current position).
    pub fn retained(&mut self) -> Result<i64> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .map_err(|e| anyhow::anyhow!("{}: {}", self.server, db_message(&e)))?;
        Ok(row.get(0))
    }
}

fn find(client: &mut Client, slot: &str) -> Result<Option<Found>, postgres::Error> {
    let row = client.query_opt(
        "SELECT plugin::text, database::text, confirmed_flush_lsn::text \
         FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'logical'",
        &[&slot],
    )?;
    Ok(row.map(|r| {
        let plugin: Option<String> = r.get(0);
        let database: Option<String> = r.get(1);
        let confirmed: Option<String> = r.get(2);
        Found {
            plugin: plugin.unwrap_or_default(),
            database: database.unwrap_or_default(),
            confirmed: confirmed.as_deref().and_then(parse_lsn).unwrap_or(0),
        }
    }))
}

/// `schema.table` quoted, as `pg_publication_tables` names it, for a table
/// the search path finds.
fn qualified(client: &mut Client, table: &str) -> Result<String, postgres::Error> {
    let row = client.query_one(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::text::regclass",
        &[&table],
    )?;
    Ok(row.get(0))
}

/// A table without a primary key or replica identity index cannot have
/// its updates and deletes published (PostgreSQL then refuses them on the
/// source): refused before the publication is made.
fn check_identity(client: &mut Client, server: &str, table: &str) -> Result<()> {
    let row = client
        .query_one(
            "SELECT c.relreplident::text, EXISTS (SELECT 1 FROM pg_index i \
             WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) \
             FROM pg_class c WHERE c.oid = $1::text::regclass",
            &[&table],
        )
        .map_err(|e| anyhow::anyhow!("{server}: {}", db_message(&e)))?;
    let (identity, has_index): (String, bool) = (row.get(0), row.get(1));
    let usable = match identity.as_str() {
        "f" => true,
        "n" => false,
        _ => has_index,
    };
    if !usable {
        bail!(
            "{server}: table {table} has no primary key (nor a replica identity): once \
             published, PostgreSQL would refuse its updates and deletes; hint: add a primary \
             key, or ALTER TABLE {table} REPLICA IDENTITY FULL"
        );
    }
    Ok(())
}

fn primary_key(client: &mut Client, table: &str) -> Result<Vec<String>, postgres::Error> {
    let rows = client.query(
        "SELECT a.attname::text FROM pg_index i \
         JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY k.n",
        &[&table],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn catalog_relation(client: &mut Client, table: &str) -> Result<Relation, postgres::Error> {
    let names = client.query_one(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::text::regclass",
        &[&table],
    )?;
    let rows = client.query(
        "SELECT attname::text, atttypid::oid, atttypmod FROM pg_attribute \
         WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[&table],
    )?;
    Ok(Relation {
        schema: names.get(0),
        name: names.get(1),
        columns: rows
            .iter()
            .map(|r| super::changes::Column {
                name: r.get(0),
                identity: false,
                oid: r.get(1),
                typmod: r.get(2),
            })
            .collect(),
    })
}
