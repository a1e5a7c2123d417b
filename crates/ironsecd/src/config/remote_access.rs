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
//! `pool` may list one prefix per family, `pool = ["10.99.0.0/24", "2001:db8:99::/112"]`: a
//! client gets an address of each family it asks for (a dual-stack client both, in one
//! CHILD_SA). An IPv6 pool is a /64 or longer and hands out /128s.
//!
//! The pools are the connection's `remote_ts` (so each gets one route into the TUN device and
//! its guard route like any policy-based remote selector, and overlaps with other connections
//! are refused the same way); each client's CHILD_SAs are narrowed to its own addresses.

use std::net::IpAddr;
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
    /// The clients' addresses: one prefix per family, IPv4 first.
    pub pools: Vec<Prefix>,
    /// Sent to clients as INTERNAL_IP4_DNS and INTERNAL_IP6_DNS (each family only to a
    /// client that got an address of it).
    pub dns: Vec<IpAddr>,
    /// How long an address stays its client's after the client left.
    pub lease_grace: Duration,
}

impl RemoteAccess {
    /// The pools as the IKE engine's pools take them.
    /// The pools as written in status and `leases`: "10.99.0.0/24, 2001:db8:99::/112".
    pub fn pools_text(&self) -> String {
        self.pools
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn vip_pool(&self) -> ironsec_ike::config::VipPool {
        ironsec_ike::config::VipPool {
            ranges: self.pools.iter().map(|p| p.to_string()).collect(),
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

/// Its remote side is the pools: `remote_ts` is not written but taken from `pool`.
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
    c.remote_ts = (!pool.0.is_empty() && pool.0.iter().all(|p| p.parse::<Prefix>().is_ok()))
        .then_some(pool.0);
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
    let written = c.pool.as_ref().map(|p| p.0.as_slice()).unwrap_or_default();
    // One pool is `pool` (however written), several are `pool[i]`.
    let pool_key = |i: usize| {
        if written.len() == 1 {
            "pool".to_string()
        } else {
            format!("pool[{i}]")
        }
    };
    let mut pools: Vec<Prefix> = Vec::new();
    if written.is_empty() {
        err(
            errs,
            "pool",
            "required with remote = \"%any\": the prefix clients get their addresses from \
             (or one IPv4 and one IPv6 prefix)"
                .into(),
        );
    }
    for (i, p) in written.iter().enumerate() {
        let key = pool_key(i);
        let pre = match p.parse::<Prefix>() {
            Ok(pre) => pre,
            Err(e) => {
                err(errs, &key, format!("'{p}': {e}"));
                continue;
            }
        };
        if let Err(e) = ironsec_ike::pool::AddressPool::new("pool", p, DEFAULT_LEASE_GRACE) {
            err(errs, &key, format!("'{p}': {e}"));
            continue;
        }
        if let Some(other) = pools.iter().find(|o| o.is_v4() == pre.is_v4()) {
            err(
                errs,
                &key,
                format!(
                    "'{p}': {other} is this connection's {} pool already; one pool per family",
                    if pre.is_v4() { "IPv4" } else { "IPv6" }
                ),
            );
            continue;
        }
        if let Some(local) = local.filter(|l| pre.contains(*l)) {
            err(
                errs,
                &key,
                format!("{pre} contains {local}, the address clients connect to"),
            );
            continue;
        }
        pools.push(pre);
    }
    pools.sort_by_key(|p| !p.is_v4());
    let mut dns = Vec::new();
    for (i, d) in c.pool_dns.iter().flatten().enumerate() {
        let key = format!("pool_dns[{i}]");
        match d.parse::<IpAddr>() {
            // Only a client with an address of the resolver's family can reach it.
            Ok(a)
                if !written.is_empty()
                    && !written.iter().any(|p| p.contains(':') == a.is_ipv6()) =>
            {
                err(
                    errs,
                    &key,
                    format!(
                        "'{d}' is {} but the connection has no {} pool: no client could reach it",
                        if a.is_ipv6() { "IPv6" } else { "IPv4" },
                        if a.is_ipv6() { "IPv6" } else { "IPv4" },
                    ),
                );
            }
            Ok(a) => dns.push(a),
            Err(_) => err(errs, &key, format!("'{d}' is not an IP address")),
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
        pools,
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
