//! ironsecd: the ironsec gateway daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ironsecd::config::Config;

#[derive(Parser)]
#[command(name = "ironsecd", version, about = "ironsec IPsec gateway daemon")]
struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/ironsec/ironsecd.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration (and the key files it names) and exit: 0 when valid,
    /// 1 with one `FILE: KEY: REASON` line per problem otherwise.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ironsecd::logging::init();
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Check) => {
            println!("{}: OK ({})", cli.config.display(), cfg.describe());
            ExitCode::SUCCESS
        }
        None => match ironsecd::daemon::run(cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "ironsecd stopped");
                eprintln!("ironsecd: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
