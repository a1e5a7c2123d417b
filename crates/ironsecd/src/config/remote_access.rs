//! Remote-access connections (point-to-site): one connection serves any number of clients
//! from any address, each given an address from the connection's pool.
//!
//! Written as an IKE connection with one tunnel whose `remote` is `"%any"` and a `pool`:
//!
//! ```toml
//! [[connection]]
//! name = "roadwarriors"
//! keying = "ike"
//! local_ts = ["10.1.0.0/16"]             # what clients reach
//! pool = "10.99.0.0/24"                  # their addresses: the connection's remote side
//! tunnels = [{ local = "192.0.2.1", remote = "%any" }]
//! ```
//!
//! The pool is the connection's `remote_ts` (so it gets one route into the TUN device and its
//! guard route like any policy-based remote selector, and overlaps with other connections are
//! refused the same way); each client's CHILD_SAs are narrowed to its own address.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use ironsec_dataplane::Prefix;

use super::error::ConfigError;
use super::schema::{ConnectionSchema, StartAction};

/// The word a tunnel's `remote` takes for "any client".
pub const ANY: &str = "%any";

/// Default `lease_grace`: long enough for a laptop to come back from a network change or a
/// short sleep with the same address, short enough that a pool is not held by the departed.
pub const DEFAULT_LEASE_GRACE: Duration = Duration::from_secs(600);

/// What makes an IKE connection a remote-access one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAccess {
    /// Where clients connect to (IKE and ESP).
    pub local: IpAddr,
    /// The clients' addresses.
    pub pool: Prefix,
    /// Sent to clients as INTERNAL_IP4_DNS.
    pub dns: Vec<Ipv4Addr>,
    /// How long an address stays its client's after the client left.
    pub lease_grace: Duration,
}

impl RemoteAccess {
    /// The pool as the IKE engine's pools take it.
    pub fn vip_pool(&self) -> ironsec_ike::config::VipPool {
        ironsec_ike::config::VipPool {
            range: self.pool.to_string(),
            grace: self.lease_grace,
            dns: self.dns.clone(),
        }
    }
}

/// Whether the schema describes a remote-access connection (a `pool`, or a tunnel to
/// `"%any"`); the rest of validation then treats it as one.
pub(super) fn is_remote_access(c: &ConnectionSchema) -> bool {
    c.pool.is_some()
        || c.tunnels
            .iter()
            .flatten()
            .any(|t| t.remote.as_deref() == Some(ANY))
}

/// Its remote side is the pool: `remote_ts` is not written but taken from `pool`.
pub(super) fn default_remote_ts(
    file: &Path,
    key: &str,
    c: &mut ConnectionSchema,
    errs: &mut Vec<ConfigError>,
) {
    let Some(pool) = c.pool.clone() else { return };
    if c.remote_ts.is_some() {
        errs.push(ConfigError::new(
            file,
            format!("{key}.remote_ts"),
            "a remote-access connection's remote side is its pool: remove remote_ts",
        ));
    }
    // A bad pool is reported once, as `pool` (validate), not again as a remote_ts the
    // operator never wrote.
    c.remote_ts = pool.parse::<Prefix>().is_ok().then(|| vec![pool]);
}

/// Checks the remote-access keys of connection `key`; `Some(None)` for a site connection,
/// `None` (errors pushed) when they are wrong.
pub(super) fn validate(
    file: &Path,
    key: &str,
    c: &ConnectionSchema,
    errs: &mut Vec<ConfigError>,
) -> Option<Option<RemoteAccess>> {
    if !is_remote_access(c) {
        return Some(None);
    }
    let before = errs.len();
    let err = |errs: &mut Vec<ConfigError>, k: &str, msg: String| {
        errs.push(ConfigError::new(file, format!("{key}.{k}"), msg));
    };
    if c.interface.is_some() {
        err(
            errs,
            "interface",
            "a remote-access connection (remote = \"%any\") cannot be route-based yet".into(),
        );
    }
    if matches!(c.start_action, Some(StartAction::Start | StartAction::Trap)) {
        err(
            errs,
            "start_action",
            "a remote-access connection only answers its clients: start_action must be \"none\""
                .into(),
        );
    }
    let tunnels: Vec<_> = c.tunnels.iter().flatten().collect();
    let local = match tunnels.as_slice() {
        [t] if t.remote.as_deref() == Some(ANY) => match t.local.as_deref() {
            Some(l) => match l.parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    err(
                        errs,
                        "tunnels[0].local",
                        format!("'{l}' is not an IP address"),
                    );
                    None
                }
            },
            None => {
                err(errs, "tunnels[0].local", super::MISSING.into());
                None
            }
        },
        _ => {
            err(
                errs,
                "tunnels",
                "a remote-access connection has exactly one tunnel, { local = \"ADDRESS\", \
                 remote = \"%any\" }; sites get connections of their own"
                    .into(),
            );
            None
        }
    };
    if let Some(t) = tunnels.first() {
        if t.priority.is_some() || t.weight.is_some() {
            err(
                errs,
                "tunnels[0]",
                "priority and weight are for a site's tunnels, not for remote access".into(),
            );
        }
    }
    let pool = match c.pool.as_deref() {
        None => {
            err(
                errs,
                "pool",
                "required with remote = \"%any\": the prefix clients get their addresses from"
                    .into(),
            );
            None
        }
        Some(p) => match p.parse::<Prefix>() {
            Ok(pre) if !pre.is_v4() => {
                err(errs, "pool", format!("'{p}': only IPv4 pools so far"));
                None
            }
            Ok(pre) => match ironsec_ike::pool::AddressPool::new("pool", p, DEFAULT_LEASE_GRACE) {
                Ok(_) => Some(pre),
                Err(e) => {
                    err(errs, "pool", format!("'{p}': {e}"));
                    None
                }
            },
            Err(e) => {
                err(errs, "pool", format!("'{p}': {e}"));
                None
            }
        },
    };
    if let (Some(pool), Some(local)) = (pool, local) {
        if pool.contains(local) {
            err(
                errs,
                "pool",
                format!("{pool} contains {local}, the address clients connect to"),
            );
        }
    }
    let mut dns = Vec::new();
    for (i, d) in c.pool_dns.iter().flatten().enumerate() {
        match d.parse::<Ipv4Addr>() {
            Ok(a) => dns.push(a),
            Err(_) => err(
                errs,
                &format!("pool_dns[{i}]"),
                format!("'{d}' is not an IPv4 address"),
            ),
        }
    }
    const MAX_GRACE: u64 = 7 * 86400;
    let lease_grace = match c.lease_grace {
        None => DEFAULT_LEASE_GRACE,
        Some(s) if s <= MAX_GRACE => Duration::from_secs(s),
        Some(s) => {
            err(
                errs,
                "lease_grace",
                format!("{s} s is more than a week ({MAX_GRACE} s)"),
            );
            DEFAULT_LEASE_GRACE
        }
    };
    if errs.len() > before {
        return None;
    }
    Some(Some(RemoteAccess {
        local: local?,
        pool: pool?,
        dns,
        lease_grace,
    }))
}

/// The keys that only mean something for remote access, refused on a site connection.
pub(super) fn refuse_on_site(
    file: &Path,
    key: &str,
    c: &ConnectionSchema,
    errs: &mut Vec<ConfigError>,
) {
    if is_remote_access(c) {
        return;
    }
    for (name, present) in [
        ("pool_dns", c.pool_dns.is_some()),
        ("lease_grace", c.lease_grace.is_some()),
    ] {
        if present {
            errs.push(ConfigError::new(
                file,
                format!("{key}.{name}"),
                "only for a remote-access connection (a `pool` and a tunnel with remote = \"%any\")",
            ));
        }
    }
}
