//! ironsecd: the ironsec gateway daemon.

use std::process::ExitCode;

use clap::Parser;
use ironsecd::cli::daemon::{Cli, Command};
use ironsecd::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ironsecd::logging::init(cli.log_format) {
        eprintln!("ironsecd: {e}");
        return ExitCode::FAILURE;
    }
    // Before any key file is read: no core dump may ever hold one.
    if let Err(e) = ironsecd::privs::forbid_core_dumps() {
        eprintln!("ironsecd: {e}");
        return ExitCode::FAILURE;
    }
    let check_only = match cli.command {
        Some(Command::Cleanup) => return cleanup(&cli.config),
        Some(Command::Check) => true,
        None => false,
    };
    // `check` accepts the example secret files shipped under conf/ (with a warning each), so
    // every example can be checked from a fresh clone; the daemon refuses them.
    let loaded = if check_only {
        Config::load_for_check(&cli.config)
    } else {
        Config::load(&cli.config)
    };
    let cfg = match loaded {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    if check_only {
        for w in cfg.warnings().iter().chain(&cfg.example_secrets) {
            eprintln!("warning: {w}");
        }
        println!("{}: OK ({})", cli.config.display(), cfg.describe());
        return ExitCode::SUCCESS;
    }
    match ironsecd::daemon::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ironsecd stopped");
            eprintln!("ironsecd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ironsecd cleanup`: removes every guard route of this network namespace. A config that does
/// not load does not stop it (the guards may belong to an older one); a daemon that answers on
/// the config's control socket does, since it would be left running without its guards.
fn cleanup(config: &std::path::Path) -> ExitCode {
    match Config::load(config) {
        Ok(cfg) => {
            let sock = &cfg.gateway.control_socket;
            if std::os::unix::net::UnixStream::connect(sock).is_ok() {
                eprintln!(
                    "ironsecd cleanup: ironsecd is running (its control socket {} answers); stop it first",
                    sock.display()
                );
                return ExitCode::FAILURE;
            }
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("warning: {e}");
            }
            eprintln!(
                "warning: cannot check for a running ironsecd ({} does not load); removing the guards anyway",
                config.display()
            );
        }
    }
    match ironsec_dataplane::guard::remove_all() {
        Ok(removed) => {
            let list: Vec<String> = removed.iter().map(|p| p.to_string()).collect();
            println!(
                "removed {} guard route(s){}{}",
                removed.len(),
                if list.is_empty() { "" } else { ": " },
                list.join(" ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ironsecd cleanup: {e}");
            ExitCode::FAILURE
        }
    }
}
