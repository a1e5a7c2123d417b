//! Peers given by DNS name (`remote = "gw-b.example"` in an IKE connection's tunnels): the
//! name is resolved when the config is loaded (at start and on every reload) and again each
//! time the tunnel initiates (every reconnect), so a peer whose address changes (a dynamic
//! address, a moved VM) is found again without a reload.

use std::net::{IpAddr, ToSocketAddrs};

/// Whether `s` is written as a DNS host name (RFC 1123 labels), as opposed to an IP address
/// or a typo such as "10.0.0.300".
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    !s.is_empty()
        && s.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // An all-numeric last label is a mistyped address, not a name.
        && labels
            .last()
            .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

/// The first address `name` resolves to in the family of `local` (the system resolver:
/// /etc/hosts, then DNS, as nsswitch.conf says).
pub fn resolve(name: &str, local: IpAddr) -> Result<IpAddr, String> {
    let addrs = (name, 0u16)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{name}': {e}"))?;
    let mut other = None;
    for a in addrs {
        if a.is_ipv4() == local.is_ipv4() {
            return Ok(a.ip());
        }
        other = Some(a.ip());
    }
    Err(match other {
        Some(a) => format!(
            "'{name}' resolves only to {a}, not to an address of the same family as local {local}"
        ),
        None => format!("'{name}' resolves to no address"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_told_apart() {
        for name in ["gw-b.example", "localhost", "a.b-c.example.", "x1"] {
            assert!(is_dns_name(name), "{name}");
        }
        for not in [
            "10.0.0.300",
            "",
            "-a.example",
            "a..b",
            "gw_b.example",
            "1.2.3",
        ] {
            assert!(!is_dns_name(not), "{not}");
        }
    }

    #[test]
    fn localhost_resolves_in_the_family_asked_for() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(resolve("localhost", v4), Ok(v4));
        assert!(resolve("no-such-host.invalid", v4).is_err());
    }
}
