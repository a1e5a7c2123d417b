//! ironsecctl: asks a running ironsecd over its control socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ironsecd::control::{request, Request, Response};

#[derive(Parser)]
#[command(name = "ironsecctl", version, about = "control a running ironsecd")]
struct Cli {
    /// The daemon's control socket (gateway.control_socket).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/run/ironsec/ironsecd.sock"
    )]
    socket: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tunnels, SAs and counters.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let req = match cli.command {
        Command::Status => Request::Status,
    };
    match request(&cli.socket, &req) {
        Ok(Response::Status(s)) => {
            if cli.json {
                match serde_json::to_string_pretty(&s) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("ironsecctl: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", s.render());
            }
            ExitCode::SUCCESS
        }
        Ok(Response::Error(e)) => {
            eprintln!("ironsecd: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("ironsecctl: {e}");
            ExitCode::FAILURE
        }
    }
}
