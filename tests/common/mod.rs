//! Shared helpers for ironsec's integration tests, one module per kind of thing: child
//! processes with deadlines ([`process`]), network namespaces ([`netns`]), daemon configs and
//! keys ([`config`]), ironsecd under guard ([`daemon`]) and its status documents ([`status`]),
//! the static and IKE labs ([`lab`], [`ike_lab`]), captures and pcap files ([`capture`],
//! [`pcap`]), packet builders ([`packets`]), pingers ([`ping`]), bulk traffic ([`traffic`]),
//! daemon log times ([`logtime`]), the outside judge of fail-closed tests ([`judge`]), the `netns-scripts` reports and lab topologies ([`scripts`]), kernel routes and interface counters in a namespace ([`routes`]), BIRD 2 under guard
//! with `birdc` queries for BGP sessions, routes and BFD sessions ([`bird`]), keepalived
//! moving a shared address ([`keepalived`]), strongSwan as
//! a peer ([`strongswan`]), a test PKI made with strongSwan's `pki` tool ([`pki`]) and
//! remote-access clients with their topology ([`rwclient`]).
//! Everything but `strongswan`, `pki` and `rwclient` is re-exported here, so a test file says
//! `use common::*;`.
//!
//! Tests that need root (namespaces, TUN devices, raw sockets) are marked
//! `#[ignore = "needs root"]`: `cargo test --workspace` runs the rest as any user, and
//! tests/run.sh (as root) runs all of them with `--include-ignored`. Such a test run without
//! root fails in [`require_root`]; it never skips.
//!
//! Safety rules every helper keeps: all traffic stays inside namespaces the test created; every
//! process a test starts is killed by PID (never by name) and every namespace removed, also when
//! the test panics (Drop guards); every wait has a deadline.
#![allow(dead_code)]

mod bird;
mod capture;
mod config;
mod daemon;
mod ike_lab;
mod judge;
mod keepalived;
mod lab;
mod logtime;
mod nat_lab;
mod netns;
mod packets;
mod pcap;
mod ping;
pub mod pki;
mod process;
pub mod radius;
mod routes;
pub mod rwclient;
mod scripts;
mod status;
pub mod strongswan;
mod tempdir;
mod traffic;

// Each test file uses its own share of these.
#[allow(unused_imports)]
pub use {
    bird::*, capture::*, config::*, daemon::*, ike_lab::*, judge::*, keepalived::*, lab::*,
    logtime::*, nat_lab::*, netns::*, packets::*, pcap::*, ping::*, process::*, routes::*,
    scripts::*, status::*, tempdir::*, traffic::*,
};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

pub const IRONSECD: &str = env!("CARGO_BIN_EXE_ironsecd");
pub const IRONSECCTL: &str = env!("CARGO_BIN_EXE_ironsecctl");

/// Workspace root (crates/ironsecd/../..; env IRONSEC_WORKSPACE_ROOT overrides it).
pub fn workspace_root() -> PathBuf {
    let p = match std::env::var_os("IRONSEC_WORKSPACE_ROOT") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    p.canonicalize().expect("workspace root")
}

// ------------------------------------------------------------------------------------------
// Serialization, root check, unique names

static SERIAL: Mutex<()> = Mutex::new(());

/// The tests share two cores with two gateways, iperf3 and the kernel: run them one at a time
/// even when the harness runs tests in parallel. A panicking test poisons the lock; the next one
/// takes it anyway (every test cleans up after itself through its guards).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Panics (never skips) when the test cannot do what it must: namespaces need root. Every test
/// that calls it (directly or through a lab or topology) is `#[ignore = "needs root"]`.
pub fn require_root() {
    // SAFETY: geteuid takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this integration test needs root (network namespaces, TUN devices, raw sockets); \
         run it as root (tests/run.sh, or `cargo test -- --include-ignored`) — it is not skipped on purpose"
    );
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A short prefix unique to this process and this call: "ist<pid>-<n>".
pub fn unique_prefix() -> String {
    format!(
        "ist{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::SeqCst)
    )
}
