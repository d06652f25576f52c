//! `etl-extract`: files, databases, datasets and HTTP APIs in, the wire out.
use clap::{CommandFactory, Parser};

fn main() -> std::process::ExitCode {
    if etlkit::cli::completions(etlkit::cli::extract::ExtractArgs::command()) {
        return std::process::ExitCode::SUCCESS;
    }
    let args = etlkit::cli::extract::ExtractArgs::parse();
    let log_json = args.verbosity.log_json;
    etlkit::error::finish(
        "etl-extract",
        args.plan().and_then(etlkit::extract::run),
        log_json,
    )
}
