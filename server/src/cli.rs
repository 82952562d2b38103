//! Command line: parses arguments ([`args`]), loads the configuration once, and dispatches to
//! the chosen subcommand: [`serve`] (the composition root), `migrate`, `openapi`, or [`admin`].

pub mod admin;
pub mod args;
pub mod serve;

use crate::config::{Config, Overrides};
use crate::telemetry;

pub use self::args::Cli;
use self::args::Command;
pub use self::serve::{build_state, open_store};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let (listen, public_url) = match &cli.command {
        Command::Serve { listen, public_url } => (*listen, public_url.clone()),
        _ => (None, None),
    };
    let config = Config::load(cli.config.as_deref(), Overrides { listen, data_dir: cli.data_dir.clone(), public_url })?;
    telemetry::init_tracing(config.log_format);
    match cli.command {
        Command::Serve { .. } => serve::serve(config, cli.config.as_deref()).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("migrations applied ({})", serve::describe_backend(&config));
            drop(store);
            Ok(())
        }
        Command::Openapi => {
            println!("{}", crate::http::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Admin(command) => admin::admin(&config, command).await,
    }
}
