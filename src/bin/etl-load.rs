//! `etl-load`: the wire (or a file etl-extract reads) in; a table of
//! SQLite, PostgreSQL or MySQL, a file or a dataset out, all or nothing.
use clap::{CommandFactory, Parser};

fn main() -> std::process::ExitCode {
    if etlkit::cli::completions(etlkit::cli::load::LoadArgs::command()) {
        return std::process::ExitCode::SUCCESS;
    }
    let args = etlkit::cli::load::LoadArgs::parse();
    let log_json = args.verbosity.log_json;
    etlkit::error::finish(
        "etl-load",
        args.plan().and_then(etlkit::load::run),
        log_json,
    )
}
