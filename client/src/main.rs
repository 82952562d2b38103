//! The `palisade` binary: parses the command line and runs it (see `cli.rs`). A failure is one
//! `palisade: …` line on standard error and a non-zero exit.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::Cli::parse().run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("palisade: {error:#}");
            ExitCode::FAILURE
        }
    }
}
