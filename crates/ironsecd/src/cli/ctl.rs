//! ironsecctl's command line (the man page and shell completions are generated from it).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ironsecctl",
    version = super::VERSION,
    about = "control a running ironsecd",
    after_help = super::CTL_SHORT_HELP,
    after_long_help = super::long_help(super::CTL_SECTIONS)
)]
pub struct Cli {
    /// The daemon's control socket (gateway.control_socket).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/run/ironsec/ironsecd.sock"
    )]
    pub socket: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Connections, tunnels, IKE and CHILD SAs, counters (swanctl --list-sas).
    ///
    /// With more than 50 connections and no filter, the text is one summary line and the
    /// tunnels that are not up (`--all` for everything); `--json` is always the whole
    /// document.
    Status {
        /// Only this connection, or the connections a glob pattern (`*`, `?`) matches, e.g.
        /// `site-*` (the daemon builds only those). An unknown name is an error.
        connection: Option<String>,
        /// Every connection and tunnel, however many.
        #[arg(long, conflicts_with = "summary")]
        all: bool,
        /// Only the summary line (with --json, the summary and IKE counters): connections
        /// configured, up, down and failing, tunnels up, IKE drops and retransmissions.
        #[arg(long)]
        summary: bool,
    },
    /// The running config's connections: keying, identities, selectors, proposals, mode,
    /// tunnels and lifetimes (swanctl --list-conns). Secrets are never shown.
    ListConns {
        /// A connection name or glob pattern, as for `status`.
        connection: Option<String>,
    },
    /// The certificates and CRLs the daemon has loaded (trust anchors from ca_dir, each
    /// connection's certificate and intermediates, pinned remote_cert, CRLs from crl_dir):
    /// subject, issuer, altNames, serial, validity, days to expiry, SHA-256 fingerprint and
    /// the connections using each. Shows what the last reload read. Keys are never shown.
    Certs,
    /// Negotiate a connection now and wait until its tunnels are up.
    Initiate {
        connection: String,
        /// Seconds to wait for the tunnels; 0 returns at once.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Delete a connection's IKE SAs; it stays down until `initiate` (a trapped connection
    /// comes back on traffic).
    Terminate { connection: String },
    /// Re-read the configuration; a bad one is refused and the running one stays.
    Reload,
    /// The remote-access pools' leases: each address held by a connected client or kept for
    /// one that left (until its grace period ends), with the client's identity.
    Leases,
    /// Disconnect a remote-access client: delete the IKE SAs of every session that
    /// authenticated as IDENTITY (as `status` and `leases` show it). It may connect again.
    Disconnect { identity: String },
    /// Rekey a connection's CHILD_SAs now (or its IKE SAs with --ike), make-before-break as
    /// lifetimes do; the new SPIs show in `status` once the exchanges complete.
    Rekey {
        connection: String,
        /// Rekey the IKE SA of each tunnel instead of its CHILD_SAs.
        #[arg(long)]
        ike: bool,
    },
    /// Take the gateway out of service for maintenance ([drain] in the config): write the
    /// state file, run the withdraw commands, wait until the tunnels carry less than idle_pps
    /// for `quiet` seconds (or `timeout`), then delete every IKE SA and hold the connections
    /// down. TUN devices, routes and guards stay (fail closed). Prints a one-line report.
    Drain {
        /// Return once the drain has started; `status` shows its progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// Bring a drained gateway back: state file "0", connections up, and once every
    /// start_action = "start" connection has a CHILD_SA (or `timeout`), the rejoin commands.
    Rejoin {
        /// Return once the rejoin has started.
        #[arg(long)]
        no_wait: bool,
    },
    /// Print the eap_users_file line (`USER:NT-hash`) for USER, the password read from the
    /// terminal (asked twice, not echoed) or from stdin. The password is never an argument and
    /// never stored; only its NT hash is. Needs no running daemon.
    Nthash { user: String },
    /// Print a new random pre-shared key (32 bytes, hex) in the format psk_file takes, or
    /// write it to FILE (created mode 0600; an existing file is never overwritten). Needs no
    /// running daemon.
    Genpsk {
        /// The PSK file to create; stdout when absent.
        file: Option<PathBuf>,
    },
}
