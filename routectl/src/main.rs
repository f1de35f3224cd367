//! `routectl`: parse the command line, run it, print the error and exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = routectl::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("routectl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(routectl::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("routectl: {e}");
            e.exit_code()
        }
    }
}
