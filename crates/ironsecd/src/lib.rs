//! ironsecd: configuration, the wiring from config to the fast path, the control socket, and
//! the status model shared with ironsecctl.
//!
//! The crates, the control plane's modules and where each kind of change goes:
//! `ARCHITECTURE.md` at the repository root.

pub mod addrwatch;
pub mod certs;
pub mod cli;
pub mod config;
pub mod conns;
pub mod control;
pub mod daemon;
pub mod drain;
pub mod genpsk;
pub mod guards;
pub mod ikeadmit;
pub mod ikelog;
pub mod leases;
pub mod limits;
pub mod logging;
pub mod loglimit;
pub mod metrics;
pub mod namefilter;
pub mod nthash;
pub mod pathmtu;
pub mod plane;
pub mod privs;
pub mod rekey;
pub mod report;
pub mod routemtu;
pub mod sdnotify;
pub mod share;
pub mod status;
pub mod tables;
pub mod tuning;

#[cfg(test)]
mod testutil;
