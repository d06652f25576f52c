//! `etl-watch`: files and stdin in, batches out (or into --exec).
use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = etlkit::cli::watch::WatchArgs::parse();
    etlkit::error::finish("etl-watch", etlkit::watch::run(args))
}
