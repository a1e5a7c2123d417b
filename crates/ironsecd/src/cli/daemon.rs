//! ironsecd's command line (the man page and shell completions are generated from it).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ironsecd",
    version = super::VERSION,
    about = "ironsec IPsec gateway daemon",
    long_about = "ironsec IPsec gateway daemon: joins the local site's networks to remote sites \
                  over IKEv2-negotiated (or manually keyed) ESP-in-UDP tunnels through a TUN \
                  device. Without a command it runs in the foreground (under systemd as \
                  ironsecd.service), logging to stderr or the journal; `ironsecctl` controls it.",
    after_help = super::DAEMON_SHORT_HELP,
    after_long_help = super::long_help(super::DAEMON_SECTIONS)
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/ironsec/ironsecd.toml"
    )]
    pub config: PathBuf,
    /// How to log (the level is set by `IRONSEC_LOG`, e.g. `debug`; default `info`).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "IRONSEC_LOG_FORMAT",
        default_value_t = crate::logging::LogFormat::Auto
    )]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate the configuration (and the key files it names) and exit: 0 when valid,
    /// 1 with one `FILE: KEY: REASON` line per problem otherwise.
    Check,
    /// Remove the guard routes ironsecd leaves in place when it stops (so that traffic for the
    /// remote sites is dropped, never sent in clear, while it is not running). The explicit
    /// uninstall step: refused while the daemon of this config answers on its control socket.
    Cleanup,
}
