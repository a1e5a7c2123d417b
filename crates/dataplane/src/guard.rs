//! Guard routes: fail closed while the daemon is absent (ARCHITECTURE.md, "Fail closed").
//!
//! Every remote selector gets, beside its route into the TUN device, a `blackhole` route for the
//! same prefix in the main table with a higher metric. While ironsecd runs, the TUN route (metric
//! 0 for IPv4, the kernel's 1024 for IPv6) wins and the guard is never used. When the TUN device
//! disappears (ironsecd stopped, crashed or restarting), the kernel removes the TUN routes with
//! it and the guard is what is left: traffic for the remote site is discarded instead of
//! following a less specific route (a default route out of the WAN) in clear.
//!
//! The guards are plain kernel routes, so they outlive the process; they are marked with their
//! own routing protocol number ([`GUARD_PROTO`]), so the daemon (at start, to adopt them and
//! forget those of removed connections) and `ironsecd cleanup` (the explicit removal step) can
//! find exactly ironsec's guards without touching anyone else's routes. One ironsecd per
//! network namespace owns all guards of that namespace.

use std::net::IpAddr;
use std::process::Command;

use crate::iproute::ip;
use crate::{DataplaneError, Prefix};

/// The `proto` of guard routes: a number iproute2 and the kernel leave uninterpreted (above
/// RTPROT_STATIC) and that no routing daemon in /etc/iproute2/rt_protos uses, so a guard is
/// recognisable as ironsec's.
pub const GUARD_PROTO: u8 = 147;

/// The metric of guard routes: above the kernel's default metrics for routes added without
/// one (0 for IPv4, 1024 for IPv6), which the TUN routes use, so the TUN route always wins
/// while it exists.
pub const GUARD_METRIC: u32 = 4242;
const _: () = assert!(GUARD_METRIC > 1024);

fn proto() -> String {
    GUARD_PROTO.to_string()
}

fn metric() -> String {
    GUARD_METRIC.to_string()
}

/// Installs (or keeps: `replace` is idempotent) the guard for `prefix`: `ip route replace
/// blackhole PREFIX proto 147 metric 4242`, through rtnetlink (a start installs every guard).
pub fn install(prefix: &Prefix) -> Result<(), DataplaneError> {
    crate::netlink::blackhole_replace(prefix, GUARD_PROTO, GUARD_METRIC)
}

/// Removes the guard for `prefix`; a guard that is already gone is not an error.
pub fn remove(prefix: &Prefix) -> Result<(), DataplaneError> {
    match ip(&[
        "route",
        "del",
        "blackhole",
        &prefix.to_string(),
        "proto",
        &proto(),
        "metric",
        &metric(),
    ]) {
        Err(DataplaneError::Ip { reason, .. }) if reason.contains("No such process") => Ok(()),
        r => r,
    }
}

/// The guards installed in this network namespace (IPv4 and IPv6, main table).
pub fn list() -> Result<Vec<Prefix>, DataplaneError> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        let args = [
            family,
            "route",
            "show",
            "table",
            "main",
            "proto",
            &proto(),
            "type",
            "blackhole",
        ];
        let o = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| DataplaneError::Ip {
                cmd: args.join(" "),
                reason: format!("cannot run ip: {e}"),
            })?;
        if !o.status.success() {
            return Err(DataplaneError::Ip {
                cmd: args.join(" "),
                reason: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            });
        }
        let v6 = family == "-6";
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| guard_prefix(l, v6)),
        );
    }
    Ok(out)
}

/// Removes every guard in this network namespace; returns what it removed.
pub fn remove_all() -> Result<Vec<Prefix>, DataplaneError> {
    let all = list()?;
    for p in &all {
        remove(p)?;
    }
    Ok(all)
}

/// The prefix of one line of `ip route show ... type blackhole`: "blackhole 10.2.0.0/24 metric
/// 4242", where a host route has no length and a catch-all reads "default".
fn guard_prefix(line: &str, v6: bool) -> Option<Prefix> {
    let mut words = line.split_whitespace();
    if words.next()? != "blackhole" {
        return None;
    }
    let p = words.next()?;
    let (addr, len) = match (p, p.split_once('/')) {
        ("default", _) if v6 => ("::", "0"),
        ("default", _) => ("0.0.0.0", "0"),
        (_, Some((a, l))) => (a, l),
        (a, None) if v6 => (a, "128"),
        (a, None) => (a, "32"),
    };
    let addr: IpAddr = addr.parse().ok()?;
    Prefix::new(addr, len.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn guard_lines_become_prefixes() {
        assert_eq!(
            guard_prefix("blackhole 10.2.0.0/24 metric 4242 ", false),
            Some(p("10.2.0.0/24"))
        );
        assert_eq!(
            guard_prefix("blackhole 10.2.0.9 metric 4242", false),
            Some(p("10.2.0.9/32"))
        );
        assert_eq!(
            guard_prefix("blackhole default metric 4242", false),
            Some(p("0.0.0.0/0"))
        );
        assert_eq!(
            guard_prefix("blackhole fd00:2::/64 dev lo metric 4242 pref medium", true),
            Some(p("fd00:2::/64"))
        );
        assert_eq!(
            guard_prefix("blackhole fd00:2::1 dev lo metric 4242", true),
            Some(p("fd00:2::1/128"))
        );
        assert_eq!(guard_prefix("10.2.0.0/24 dev ipsec0", false), None);
        assert_eq!(guard_prefix("blackhole bogus metric 1", false), None);
        assert_eq!(guard_prefix("", false), None);
    }
}
