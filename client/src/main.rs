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
            eprintln!("palisade: {}", sentence(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes as one sentence, each cause said once: many error types print their
/// cause in their own message and also hand it on as their source, and the plain chain then says
/// the same thing twice ("pulling community: cannot reach …: cannot reach …").
fn sentence(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sentence;

    #[derive(Debug, thiserror::Error)]
    #[error("pulling community: {source}")]
    struct Pull {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "cannot reach http://x: Connection refused");
        let error = anyhow::Error::new(Pull { source: io }).context("syncing");
        assert_eq!(sentence(&error), "syncing: pulling community: cannot reach http://x: Connection refused");
        let plain = anyhow::anyhow!("the server at http://x/ is unreachable");
        assert_eq!(sentence(&plain), "the server at http://x/ is unreachable");
    }
}
