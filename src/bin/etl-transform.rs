//! `etl-transform`: NDJSON in, reshaped NDJSON out, row by row.
use clap::CommandFactory;

fn main() -> std::process::ExitCode {
    if etlkit::cli::completions(etlkit::cli::transform::TransformArgs::command()) {
        return std::process::ExitCode::SUCCESS;
    }
    let matches = etlkit::cli::transform::TransformArgs::command().get_matches();
    let log_json = matches.get_flag("log_json");
    etlkit::error::finish(
        "etl-transform",
        etlkit::cli::transform::plan(&matches).and_then(etlkit::transform::run),
        log_json,
    )
}
