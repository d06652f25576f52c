//! `etl-extract`: files and databases in, NDJSON out.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = etlkit::cli::extract::ExtractArgs::parse();
    etlkit::error::finish("etl-extract", etlkit::extract::run(args))
}
