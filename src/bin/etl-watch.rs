//! `etl-watch`: files, stdin and brokers (NATS, Redis, Kafka) in, batches
//! out (or into --exec).
use clap::{CommandFactory, Parser};

fn main() -> std::process::ExitCode {
    if etlkit::cli::completions(etlkit::cli::watch::WatchArgs::command()) {
        return std::process::ExitCode::SUCCESS;
    }
    let args = etlkit::cli::watch::WatchArgs::parse();
    let log_json = args.verbosity.log_json;
    etlkit::error::finish(
        "etl-watch",
        args.plan().and_then(etlkit::watch::run),
        log_json,
    )
}
