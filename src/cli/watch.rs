//! `etl-watch`: follow files, directories, stdin, an S3 prefix or a broker
//! and hand on batches.

use std::path::PathBuf;

use anyhow::Result;
use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};

use super::VerbosityArgs;
use crate::error::usage;
use crate::registry::address::{self, Role};
use crate::watch::broker::{
    BinlogPlan, BrokerPlan, BrokerUrl, RestartFrom, SlotPlan, is_broker_url,
};
use crate::watch::objects::Inbox;
use crate::watch::{WatchFormat, WatchPlan};

const AFTER_HELP: &str = "\
etl-watch turns data that keeps arriving into batches. It follows files
(appended lines, rotation by rename, truncation by copytruncate, deleted
files it still holds open), directories and quoted globs (new files are
picked up), or an endless stdin. A file is known by its device, inode,
birth time and a fingerprint of its first bytes, not by its name; on a
restart, the bytes before its checkpointed offset (its first 64 KiB and the
64 KiB before the offset) must still be the ones read, or it is another file
(rewritten in place, or new on a reused inode) and is read from its start.
Under a glob or a directory, a copytruncate copy (app.log.1, a new file
holding what was read from app.log) is not read again: a new file equal so
far to the start of a followed file waits (for 30 seconds after its last
write, then it is read as a file of its own), and once that file is
truncated it is followed from the point the original was read up to, when
its bytes up to there hash the same as those read. A half-written last line is held
until its newline arrives. Changes are
noticed through inotify as they happen, and by polling every
--poll-interval milliseconds as well, so network filesystems (where inotify
stays silent) work too; --poll turns inotify off.

A batch closes at --batch-rows records, --batch-bytes bytes or
--batch-interval seconds, whichever comes first. Each batch is framed by
control lines: its begin line carries a batch id derived from the source
positions it covers and the bytes they hold, and its end line the positions
themselves.

Without --exec, batches go to stdout as NDJSON, and the checkpoint moves
once a batch is written to the pipe (use --exec when the next stage must
confirm it). With --exec CMD, each batch
is piped into sh -c CMD; the checkpoint moves past the batch only when CMD
exits 0. A failed CMD is retried with backoff (--max-retries), then
etl-watch exits non-zero and the batch is sent again on the next run.

Exactly once into a database: before running CMD, etl-watch writes the
batch's positions to the checkpoint; after a crash it first sends that same
batch again, with the same id, and etl-load skips a batch id it has already
committed into the same table for the same --stream (kept in the
_etl_batches table, in the same transaction as the rows). So even --mode
append repeats nothing, and two jobs following one file into two tables (or
under two stream names) each load every batch.

--checkpoint FILE is written atomically and guarded by a lock: a second
etl-watch on the same checkpoint exits with an error. --once handles what is
there now and exits, for cron. Records: with --format lines (the default)
each line becomes {\"line\":...,\"file\":...,\"offset\":...}; ndjson lines pass
through (a line that is not a JSON object is a reject); csv files are read
with their header line, every value as text, an empty one null (and, with
--null-value TOKEN, an unquoted TOKEN null, as in etl-extract).

S3: etl-watch s3://BUCKET/PREFIX/ (or a quoted glob over keys,
's3://BUCKET/PREFIX/*.csv.gz') lists the prefix every --poll-interval
(default 5000 ms here) and hands on each object not yet handed on, in key
order, read with --format (gzip and zstd undone). An object is known by its
key and ETag: one written again with new content is handed on again, and
objects written in the same second are all seen. An object is fetched
whole into a local spool file before its records enter a batch (a GET that
fails part way hands on nothing of it; it is read again later, and a --once
run exits 1), then read in chunks: a batch that fills inside an object is
handed on there, its positions byte ranges of the object version. An
object deleted before it is read is skipped with a warning. The checkpoint
keeps the versions handed on that the listing still holds and how far an
object read part way got, and names the batch in flight as for files. Keys come
from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, another server
from AWS_ENDPOINT_URL; no secret is ever printed.

Brokers: etl-watch nats://HOST[:PORT] --subject SUBJECT --durable NAME
reads a NATS JetStream stream through a durable pull consumer (created when
missing; a missing stream is an error unless --create-stream), and
etl-watch redis://HOST[:PORT][/DB] --key KEY --group NAME reads a Redis
stream through a consumer group with XREADGROUP (group created when
missing), and etl-watch kafka://HOST[:PORT] --topic TOPIC --group NAME reads
every partition of a Kafka topic, starting at the group's committed offsets
(a group with none starts at the log's start, or its end with --from-end;
record batches compressed with gzip, snappy, lz4 or zstd are read).
A message's record is its payload (a Redis entry's payload field;
an entry without one is one record of all its fields), read by --format:
ndjson (the default for brokers), lines, or csv with a header line in each
payload. --checkpoint is required: it names the batch in flight. A batch's
position is the broker's sequence range (stream, consumer, first..last; for
Kafka topic, group and each partition's first..last offset) and its id
derives from it. Messages are acknowledged (JetStream ack, Redis XACK, the
Kafka group's offset commit) only after --exec exited 0, or, without --exec, once the batch was
written and flushed to stdout (a reader that dies after that loses it: use
--exec for exactly once). After a crash the unacknowledged messages come
again; the batch named in the checkpoint is rebuilt from exactly its
messages and sent again with the same id, which etl-load skips if it
committed it. Redis gives them back at once (the consumer's pending
entries: keep --consumer the same); JetStream redelivers after --ack-wait,
so the batch is read from the stream by sequence and those deliveries are
acknowledged when they come; Kafka resumes at the committed offsets and
the batch is read again by its offsets. A message that is not valid for
--format goes to --rejects with its sequence number (Kafka: partition and
offset) and is acknowledged once written
there (the file is added to across runs). A batch holds at most the
consumer's max_ack_pending messages (a consumer etl-watch creates allows
twice --batch-rows). Kafka: etl-watch is the group's one reader (it does
not join the group's rebalancing; its checkpoint lock keeps a second
etl-watch out); the topic must exist. TLS and sign-in: the options under
\"TLS and authentication for brokers\".

The checkpoint also keeps how far messages were handed on (Redis: the last
entry id; NATS: the last sequence; Kafka: the committed offsets). When it
shows progress but the Redis group, the NATS durable consumer, the Kafka
group's offsets or the stream itself are gone (deleted by an operator, or
lost in a restart), etl-watch does not silently create them again from the
start (which would load everything again): it exits 1 naming what is gone,
unless --restart-from says where to start: checkpoint (Redis: the group is
created at the last entry handed on; NATS: the consumer starts at the
sequence after it; Kafka: the checkpoint's offsets are committed again; the
batch in flight is rebuilt and sent with its id, so nothing is repeated),
start or end. A NATS stream that was created again numbers its messages
from 1: only start or end apply there. Without a checkpoint (a first run)
the group or consumer is created as always.

Change data capture: etl-watch postgres://USER@HOST/DB --slot NAME
--publication NAME reads one table's inserts, updates and deletes from a
logical replication slot (pgoutput; the server needs wal_level = logical),
in commit order; a batch closes only between transactions. --create-slot
with --table [SCHEMA.]TABLE makes the publication (inserts, updates and
deletes of that one table) and the slot when missing. A record is the row
(a delete: its key), then _op (insert, update, delete), _deleted,
_position (the commit's LSN) and _commit_time; the begin line names the
columns' types.
The slot is read without moving it and advanced past a batch only after
--exec exited 0, so a crash repeats nothing that etl-load committed:
  etl-watch postgres://etl@db/app --slot wh_orders --publication wh_orders \
    --checkpoint orders.cdc --once \
    --exec 'etl-load wh.db --table orders --mode upsert --key id --delete-when _deleted'
--once reads what was committed when it began, however busy the table,
and ends by saying how much WAL the server keeps for the slot; while no
batch is open the slot is moved up to the server's WAL position. A
TRUNCATE, a publication of several tables, and a slot that is gone while
the checkpoint shows loaded changes are refused, saying what to do.

From MySQL or MariaDB: etl-watch mysql://USER@HOST/DB --table TABLE reads
the table's changes from the binary log, as a replica does (the server
needs log_bin, binlog_format = ROW, binlog_row_image = FULL and
binlog_row_metadata = FULL, and the user REPLICATION SLAVE and
REPLICATION CLIENT; the table a primary key). The same records, _position
being FILE:OFFSET just past the transaction's commit. The checkpoint keeps
the position: a first run starts at the log's current end (copy the table
in full once), and after a batch was handed on it moves past it.

Examples:
  $ etl-watch --once --format csv sample-data/orders.csv --batch-rows 5 | grep -c '\"@etl\":\"end\"'
  $ etl-watch --once --format ndjson sample-data/events.ndjson --checkpoint events.ckpt --exec 'etl-load wh.db --table events_watch'
  $ etl-watch --once sample-data/events.ndjson --batch-rows 3 | head -n 2
  $ etl-watch s3://drops/inbox/ --format ndjson --once --checkpoint drops.ckpt --exec 'etl-load wh.db --table drops'
  $ etl-watch redis://127.0.0.1:6379 --key orders --group etl --create-stream --once --checkpoint orders.ckpt --exec 'etl-load wh.db --table orders'
  $ etl-watch nats://127.0.0.1:4222 --subject 'orders.>' --durable etl-orders --js-stream ORDERS --create-stream --once --checkpoint nats.ckpt --exec 'etl-load wh.db --table orders'
  $ etl-watch kafka://127.0.0.1:9092 --topic orders --group etl-orders --once --checkpoint kafka.ckpt --exec 'etl-load wh.db --table orders'
";

/// Follow files, an S3 prefix or stdin and hand on micro-batches, losing and repeating nothing
#[derive(Debug, Parser)]
#[command(
    name = "etl-watch",
    version,
    after_help = "Examples:\n  $ etl-watch --once sample-data/events.ndjson --batch-rows 3 | head -n 2\n\nMore in --help.",
    after_long_help = format!("{AFTER_HELP}\n{}", super::EXIT_CODES),
)]
pub struct WatchArgs {
    /// Files, directories or quoted globs to follow, - for stdin (the
    /// default), one S3 prefix or glob over keys (s3://BUCKET/PREFIX/), or
    /// one broker: nats://[USER:PASSWORD@|TOKEN@]HOST[:PORT]
    /// (tls://... over TLS), redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
    /// (rediss://... over TLS) or kafka://HOST[:PORT], or one database
    /// whose change log to read (postgres://... --slot, mysql://... --table)
    #[arg(value_name = "PATH|URL")]
    pub paths: Vec<PathBuf>,

    /// How lines (or message payloads) become records [default: lines for
    /// files and stdin, ndjson for brokers]
    #[arg(short, long, value_enum)]
    pub format: Option<WatchFormat>,

    /// --null-value (--format csv)
    #[command(flatten)]
    pub nulls: super::input::NullArgs,

    /// Close a batch at this many records
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub batch_rows: usize,

    /// Close a batch at this many bytes of input
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub batch_bytes: usize,

    /// Close a non-empty batch after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub batch_interval: f64,

    /// Pipe each batch into sh -c CMD; move on only when it exits 0
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,

    /// Retries of a failed --exec batch before giving up (backoff doubles from 1 s)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_retries: u32,

    /// Where positions are kept between runs (written atomically, locked)
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Handle what has arrived, then exit (for cron)
    #[arg(long)]
    pub once: bool,

    /// Read files seen for the first time from their start (the default)
    #[arg(long, conflicts_with = "from_end")]
    pub from_start: bool,

    /// Read files seen for the first time from their current end
    #[arg(long)]
    pub from_end: bool,

    /// How often to look for changes, in milliseconds (also between inotify
    /// events; for s3:// how often the prefix is listed) [default: 250;
    /// 5000 for s3://]
    #[arg(long, value_name = "MS")]
    pub poll_interval: Option<u64>,

    /// Do not use inotify; only poll (e.g. on network filesystems, where
    /// change notifications do not arrive)
    #[arg(long)]
    pub poll: bool,

    /// Stream name in control lines [default: "watch"]
    #[arg(long, value_name = "NAME", default_value = "watch")]
    pub stream: String,

    /// NATS: the subject filter of the JetStream consumer (e.g. 'orders.>')
    #[arg(long, value_name = "SUBJECT", help_heading = "Brokers")]
    pub subject: Option<String>,

    /// NATS: the durable pull consumer's name (created when missing)
    #[arg(long, value_name = "NAME", help_heading = "Brokers")]
    pub durable: Option<String>,

    /// NATS: the JetStream stream [default: the one stream that holds --subject]
    #[arg(long, value_name = "NAME", help_heading = "Brokers")]
    pub js_stream: Option<String>,

    /// NATS: how long a delivered message may stay unacknowledged before it
    /// is delivered again, for a consumer created by this run
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30.0,
        help_heading = "Brokers"
    )]
    pub ack_wait: f64,

    /// Redis: the stream's key
    #[arg(long, value_name = "KEY", help_heading = "Brokers")]
    pub key: Option<String>,

    /// Kafka: the topic (every partition is read)
    #[arg(long, value_name = "TOPIC", help_heading = "Brokers")]
    pub topic: Option<String>,

    /// Redis: the consumer group (created when missing); Kafka: the group
    /// whose committed offsets etl-watch reads and moves
    #[arg(long, value_name = "NAME", help_heading = "Brokers")]
    pub group: Option<String>,

    /// Redis: this reader's name in the group; keep it the same across
    /// restarts, one etl-watch per name
    #[arg(
        long,
        value_name = "NAME",
        default_value = "etl-watch",
        help_heading = "Brokers"
    )]
    pub consumer: String,

    /// Create the stream when it is missing (NATS: --js-stream on --subject;
    /// Redis: --key); without it a missing stream is an error
    #[arg(long, help_heading = "Brokers")]
    pub create_stream: bool,

    /// When the checkpoint shows messages were loaded but the Redis group,
    /// the NATS durable consumer, the Kafka group's offsets or the stream
    /// are gone (deleted, or lost in a restart), create them again from
    /// here; without it etl-watch refuses to read everything again. For a
    /// replication slot that is gone (with --create-slot) or a binary log
    /// position: start or end begin at the log's current end
    #[arg(long, value_enum, value_name = "WHERE", help_heading = "Brokers")]
    pub restart_from: Option<RestartFrom>,

    /// PostgreSQL: the logical replication slot to read (pgoutput)
    #[arg(long, value_name = "NAME", help_heading = "Change data capture")]
    pub slot: Option<String>,

    /// PostgreSQL: the publication naming the one table to read
    #[arg(long, value_name = "NAME", help_heading = "Change data capture")]
    pub publication: Option<String>,

    /// PostgreSQL: the table ([SCHEMA.]TABLE) --create-slot publishes,
    /// checked against an existing publication; MySQL: the table whose
    /// changes to read
    #[arg(long, value_name = "TABLE", help_heading = "Change data capture")]
    pub table: Option<String>,

    /// PostgreSQL: create the publication (inserts, updates and deletes of
    /// --table) and the slot when missing
    #[arg(long, help_heading = "Change data capture")]
    pub create_slot: bool,

    /// TLS and authentication for brokers
    #[command(flatten)]
    pub security: super::broker_security::BrokerSecurityArgs,

    /// --rejects and --max-rejects (for lines that are not valid records)
    #[command(flatten)]
    pub rejects: super::RejectsArgs,

    /// -q and -v
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

impl ValueEnum for RestartFrom {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            RestartFrom::Checkpoint,
            RestartFrom::Start,
            RestartFrom::End,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            RestartFrom::Checkpoint => PossibleValue::new("checkpoint").help(
                "After the last message the checkpoint says was handed on (nothing repeated); \
                 not for a stream that was created again",
            ),
            RestartFrom::Start => {
                PossibleValue::new("start").help("The stream's start: everything is read again")
            }
            RestartFrom::End => {
                PossibleValue::new("end").help("The stream's end: only new messages are read")
            }
        })
    }
}

impl ValueEnum for WatchFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[WatchFormat::Lines, WatchFormat::Ndjson, WatchFormat::Csv]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            WatchFormat::Lines => PossibleValue::new("lines")
                .help("Each line is a record: {\"line\", \"file\", \"offset\"}"),
            WatchFormat::Ndjson => {
                PossibleValue::new("ndjson").help("Each line is a JSON object, passed on as it is")
            }
            WatchFormat::Csv => PossibleValue::new("csv")
                .help("CSV with a header line in each file; values as text"),
        })
    }
}

impl WatchArgs {
    /// The checked plan of this run: bad combinations of flags are usage
    /// errors here, before anything is read.
    pub fn plan(&self) -> Result<WatchPlan> {
        let args = self;
        if args.batch_rows == 0
            || args.batch_bytes == 0
            || !args.batch_interval.is_finite()
            || args.batch_interval < 0.0
        {
            return Err(usage("batch limits must be positive"));
        }
        for path in &args.paths {
            address::check_path(path, Role::WatchInput)?;
        }
        let broker = self.broker()?;
        let inbox = self.inbox()?;
        let stdin = broker.is_none()
            && inbox.is_none()
            && (args.paths.is_empty() || args.paths.iter().any(|p| p.as_os_str() == "-"));
        if stdin && args.paths.len() > 1 {
            return Err(usage("stdin (-) cannot be watched together with files"));
        }
        if stdin && args.checkpoint.is_some() {
            return Err(usage(
                "a checkpoint needs files: stdin cannot be read again after a restart",
            ));
        }
        if broker.is_some() && args.checkpoint.is_none() {
            return Err(usage(
                "a broker needs --checkpoint FILE: it names the batch in flight, so that a batch \
                 delivered again after a crash keeps its id and is not loaded twice",
            ));
        }
        let format = args.format.unwrap_or(if broker.is_some() {
            WatchFormat::Ndjson
        } else {
            WatchFormat::Lines
        });
        match format {
            WatchFormat::Csv => {}
            WatchFormat::Lines => args.nulls.refuse("--format lines")?,
            WatchFormat::Ndjson => args.nulls.refuse("--format ndjson")?,
        }
        Ok(WatchPlan {
            paths: args.paths.clone(),
            stdin,
            format,
            nulls: args.nulls.tokens()?,
            batch_rows: args.batch_rows,
            batch_bytes: args.batch_bytes,
            batch_interval: args.batch_interval,
            exec: args.exec.clone(),
            max_retries: args.max_retries,
            checkpoint: args.checkpoint.clone(),
            once: args.once,
            from_end: args.from_end,
            poll_interval: args
                .poll_interval
                .unwrap_or(if inbox.is_some() { 5000 } else { 250 }),
            poll: args.poll,
            stream: args.stream.clone(),
            rejects: args.rejects.options(),
            verbosity: args.verbosity.verbosity(),
            broker,
            inbox,
            create_stream: args.create_stream,
            restart_from: args.restart_from,
        })
    }

    /// The S3 prefix (or glob over keys) named on the command line.
    fn inbox(&self) -> Result<Option<Inbox>> {
        let Some(url) = self
            .paths
            .iter()
            .filter_map(|p| p.to_str())
            .find(|p| crate::client::s3::url::is_url(p))
        else {
            return Ok(None);
        };
        if self.paths.len() > 1 {
            return Err(usage(
                "an s3:// prefix is watched alone, not with files, brokers or other prefixes",
            ));
        }
        if self.from_end {
            return Err(usage(
                "--from-end is for files and brokers: an s3:// prefix hands on every object \
                 not yet handed on",
            ));
        }
        Inbox::parse(url).map(Some)
    }

    /// The broker named on the command line, with its flags checked.
    fn broker(&self) -> Result<Option<BrokerPlan>> {
        let urls: Vec<&str> = self
            .paths
            .iter()
            .filter_map(|p| p.to_str())
            .filter(|p| is_broker_url(p) || is_postgres_url(p) || crate::mysql::is_url(p))
            .collect();
        let cdc_flags = self.slot.is_some()
            || self.publication.is_some()
            || self.table.is_some()
            || self.create_slot;
        let nats_flags =
            self.subject.is_some() || self.durable.is_some() || self.js_stream.is_some();
        let redis_flags = self.key.is_some() || self.group.is_some();
        let Some(url) = urls.first() else {
            if cdc_flags {
                return Err(usage(
                    "--slot, --publication, --table and --create-slot need a postgres:// or \
                     mysql:// URL",
                ));
            }
            if nats_flags
                || redis_flags
                || self.topic.is_some()
                || self.create_stream
                || self.restart_from.is_some()
            {
                return Err(usage(
                    "--subject, --durable, --js-stream, --key, --topic, --group, --create-stream \
                     and --restart-from need a broker URL (nats://..., redis://... or kafka://...)",
                ));
            }
            let s = &self.security;
            if s.ca_cert.is_some()
                || s.client_cert.is_some()
                || s.client_key.is_some()
                || s.creds.is_some()
                || s.kafka_config.is_some()
                || s.security_protocol.is_some()
                || s.sasl_mechanism.is_some()
                || s.sasl_username.is_some()
                || s.sasl_password.is_some()
            {
                return Err(usage(
                    "the broker security options (--ca-cert, --client-cert, --client-key, \
                     --creds, --kafka-config, --security-protocol, --sasl-*) need a broker URL",
                ));
            }
            return Ok(None);
        };
        if self.paths.len() > 1 {
            return Err(usage(
                "a broker is watched alone, not with files or other brokers",
            ));
        }
        if is_postgres_url(url) {
            return self.slot_plan(url).map(Some);
        }
        if crate::mysql::is_url(url) {
            return self.binlog_plan(url).map(Some);
        }
        if cdc_flags {
            return Err(usage(
                "--slot, --publication, --table and --create-slot are for postgres:// and \
                 mysql://",
            ));
        }
        let url = BrokerUrl::parse(url).map_err(|e| usage(format!("{e:#}")))?;
        if url.scheme != "kafka" && self.topic.is_some() {
            return Err(usage("--topic is for kafka://"));
        }
        if url.scheme == "kafka" {
            if nats_flags || self.key.is_some() {
                return Err(usage(
                    "--subject, --durable, --js-stream and --key are not for kafka://; \
                     Kafka takes --topic and --group",
                ));
            }
            let (Some(topic), Some(group)) = (&self.topic, &self.group) else {
                return Err(usage("kafka:// needs --topic TOPIC and --group NAME"));
            };
            if topic.is_empty() || group.is_empty() {
                return Err(usage("--topic and --group cannot be empty"));
            }
            if self.create_stream {
                return Err(usage(
                    "--create-stream is not for kafka://: create the topic with its partitions \
                     using Kafka's own tools",
                ));
            }
            let security = self.security.kafka(&url)?;
            return Ok(Some(BrokerPlan::Kafka {
                url,
                topic: topic.clone(),
                group: group.clone(),
                security,
            }));
        }
        if url.scheme == "nats" {
            if redis_flags {
                return Err(usage(
                    "--key and --group are for redis://; NATS takes --subject and --durable",
                ));
            }
            let (Some(subject), Some(durable)) = (&self.subject, &self.durable) else {
                return Err(usage("nats:// needs --subject SUBJECT and --durable NAME"));
            };
            let bad_name =
                |n: &str| n.is_empty() || n.contains(['.', '*', '>', ' ', '\t', '/', '\\']);
            if bad_name(durable) || self.js_stream.as_deref().is_some_and(bad_name) {
                return Err(usage(
                    "--durable and --js-stream are names without '.', '*', '>', '/', '\\' or spaces",
                ));
            }
            if subject.is_empty() || subject.contains([' ', '\t']) {
                return Err(usage(
                    "--subject is a NATS subject without spaces, e.g. 'orders.>'",
                ));
            }
            if self.create_stream && self.js_stream.is_none() {
                return Err(usage(
                    "--create-stream for NATS needs --js-stream NAME (the stream to create)",
                ));
            }
            if !self.ack_wait.is_finite() || self.ack_wait < 1.0 {
                return Err(usage("--ack-wait is at least 1 second"));
            }
            let auth = self.security.nats(&url)?;
            Ok(Some(BrokerPlan::Nats {
                url,
                subject: subject.clone(),
                durable: durable.clone(),
                js_stream: self.js_stream.clone(),
                ack_wait: self.ack_wait,
                auth,
            }))
        } else {
            if nats_flags {
                return Err(usage(
                    "--subject, --durable and --js-stream are for nats://; Redis takes --key and --group",
                ));
            }
            let (Some(key), Some(group)) = (&self.key, &self.group) else {
                return Err(usage("redis:// needs --key KEY and --group NAME"));
            };
            if key.is_empty() || group.is_empty() || self.consumer.is_empty() {
                return Err(usage("--key, --group and --consumer cannot be empty"));
            }
            let tls = self.security.redis(&url)?;
            Ok(Some(BrokerPlan::Redis {
                url,
                key: key.clone(),
                group: group.clone(),
                consumer: self.consumer.clone(),
                tls,
            }))
        }
    }
}

/// Is `path` a PostgreSQL URL (change data capture)?
fn is_postgres_url(path: &str) -> bool {
    crate::pg::SCHEMES
        .iter()
        .any(|s| path.strip_prefix(s).is_some_and(|r| r.starts_with("://")))
}

impl WatchArgs {
    /// The plan for reading a MySQL or MariaDB binary log, with its flags
    /// checked.
    fn binlog_plan(&self, url: &str) -> Result<BrokerPlan> {
        self.no_broker_flags("mysql:// takes --table")?;
        if self.slot.is_some() || self.publication.is_some() || self.create_slot {
            return Err(usage(
                "--slot, --publication and --create-slot are for postgres://; mysql:// takes \
                 --table (the binary log holds every table)",
            ));
        }
        let Some(table) = &self.table else {
            return Err(usage(
                "mysql:// needs --table TABLE (in the URL's database)",
            ));
        };
        if table.is_empty() || table.contains('.') {
            return Err(usage(
                "--table for mysql:// is a table of the URL's database, without a schema",
            ));
        }
        Ok(BrokerPlan::Mysql(BinlogPlan {
            url: url.to_string(),
            table: table.clone(),
        }))
    }

    /// Refuses the broker flags for a database's change log; `takes` says
    /// what it takes instead.
    fn no_broker_flags(&self, takes: &str) -> Result<()> {
        let s = &self.security;
        let broker_flags = self.subject.is_some()
            || self.durable.is_some()
            || self.js_stream.is_some()
            || self.key.is_some()
            || self.topic.is_some()
            || self.group.is_some()
            || self.create_stream
            || self.from_end;
        if broker_flags {
            return Err(usage(format!(
                "{takes}, not the broker flags (--subject, --durable, --js-stream, --key, \
                 --topic, --group, --create-stream, --from-end)"
            )));
        }
        if s.ca_cert.is_some()
            || s.client_cert.is_some()
            || s.client_key.is_some()
            || s.creds.is_some()
            || s.kafka_config.is_some()
            || s.security_protocol.is_some()
            || s.sasl_mechanism.is_some()
            || s.sasl_username.is_some()
            || s.sasl_password.is_some()
        {
            return Err(usage(
                "a database takes its TLS settings in the URL (postgres://: sslmode, \
                 sslrootcert, sslcert, sslkey or the PGSSL* variables; mysql://: ssl-mode, \
                 ssl-ca, ssl-cert, ssl-key), not the broker security options",
            ));
        }
        if self.format.is_some_and(|f| f != WatchFormat::Ndjson) {
            return Err(usage(
                "a database's change log hands on change records (JSON objects): --format \
                 does not apply",
            ));
        }
        Ok(())
    }

    /// The plan for reading a replication slot, with its flags checked.
    fn slot_plan(&self, url: &str) -> Result<BrokerPlan> {
        self.no_broker_flags(
            "postgres:// takes --slot and --publication (--table, --create-slot)",
        )?;
        let (Some(slot), Some(publication)) = (&self.slot, &self.publication) else {
            return Err(usage(
                "postgres:// needs --slot NAME and --publication NAME",
            ));
        };
        let slot_ok = !slot.is_empty()
            && slot.len() <= 63
            && slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !slot_ok {
            return Err(usage(
                "--slot is a replication slot name: lower-case letters, digits and _, at most 63",
            ));
        }
        if publication.is_empty() {
            return Err(usage("--publication cannot be empty"));
        }
        if self.create_slot && self.table.is_none() {
            return Err(usage(
                "--create-slot needs --table TABLE (the table the publication holds)",
            ));
        }
        Ok(BrokerPlan::Postgres(SlotPlan {
            url: url.to_string(),
            slot: slot.clone(),
            publication: publication.clone(),
            table: self.table.clone(),
            create: self.create_slot,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        WatchArgs::command().debug_assert();
    }
}
