//! `etl-extract`: files and databases in, NDJSON out.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = etlkit::cli::extract::ExtractArgs::parse();
    let log_json = args.verbosity.log_json;
    etlkit::error::finish("etl-extract", etlkit::extract::run(args), log_json)
}
