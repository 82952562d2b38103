//! The `palisade` command line: `palisade lookup IP` asks a Palisade server what it knows about
//! an address, printed for a person (or as JSON with `--json`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use palisade::lookup::LookupClient;

/// Palisade client.
#[derive(Debug, Parser)]
#[command(name = "palisade", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Look an IP address up: reputation, scores, behaviours, blocklists, and why.
    Lookup {
        /// IPv4 or IPv6 address.
        ip: String,
        /// Server base URL.
        #[arg(long, env = "PALISADE_SERVER", default_value = "http://127.0.0.1:8080/")]
        server: String,
        /// API key.
        #[arg(long, env = "PALISADE_API_KEY")]
        api_key: String,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Command::Lookup { ip, server, api_key, json } = Cli::parse().command;
    match LookupClient::new(&server, &api_key).lookup(&ip).await {
        Ok(found) if json => match serde_json::to_string_pretty(&found) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("palisade: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(found) => {
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            println!("{}  {} (confidence {})", found.ip, found.reputation, found.confidence);
            println!("  AS          {} {}", found.as_num.map_or("-".into(), |n| format!("AS{n}")), or_dash(found.as_name));
            println!("  country     {}", or_dash(found.country));
            println!("  seen        {} .. {}", or_dash(found.first_seen), or_dash(found.last_seen));
            println!("  reporters   {}   background noise {}", found.reporters, found.background_noise);
            let overall = found.scores.overall;
            println!(
                "  score       total {}/5 (aggressiveness {}, threat {}, trust {}, anomaly {})",
                overall.total, overall.aggressiveness, overall.threat, overall.trust, overall.anomaly
            );
            let list = |items: &[String]| if items.is_empty() { "-".to_string() } else { items.join(", ") };
            println!("  behaviours  {}", list(&found.behaviors));
            println!("  blocklists  {}", list(&found.blocklists));
            println!("  allowlisted {}", list(&found.false_positives));
            if let Some(rule) = found.explanation.rule {
                println!("  listed by   rule {rule}, until {}", or_dash(found.explanation.expires_at));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("palisade: {error}");
            ExitCode::FAILURE
        }
    }
}
