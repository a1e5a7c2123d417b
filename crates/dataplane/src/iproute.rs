//! Link and route changes. These run on setup and reload only, never per packet: what runs
//! once per route or device goes through rtnetlink (`crate::netlink`: a hub may have
//! thousands), the rest through iproute2's `ip`, simpler and easier to audit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use crate::DataplaneError;

/// Runs `ip ARGS`, turning a failure into an error that quotes the command and ip's message.
pub fn ip(args: &[&str]) -> Result<(), DataplaneError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| DataplaneError::Ip {
            cmd: args.join(" "),
            reason: format!("cannot run ip: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DataplaneError::Ip {
            cmd: args.join(" "),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Points `prefix` at the TUN device, replacing any route for it. Routes stay installed while a
/// tunnel is down so traffic for the remote site is dropped and counted, never leaked in clear
/// via a default route (fail closed).
///
/// `src` is the address the gateway's own packets to that site leave with. Without it the
/// kernel may pick the WAN address, which is outside the selectors, and the gateway itself
/// could not reach the remote site.
///
/// `mtu`, when the tunnel carries less than the device's MTU, makes the kernel answer (or
/// fragment) larger packets itself with the tunnel's MTU, so path MTU discovery takes one step.
/// `replace` matches the route by prefix and metric, so the guard route for the same prefix
/// (`guard`, another metric) is never touched.
pub fn route_via(
    prefix: &str,
    dev: &str,
    src: Option<IpAddr>,
    mtu: Option<u16>,
) -> Result<(), DataplaneError> {
    let p: crate::Prefix = prefix.parse().map_err(|e| DataplaneError::Netlink {
        what: format!("installing the route {prefix} into device {dev}"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    // Through rtnetlink: a start installs one per route, and a thousand route-based
    // connections' static routes were a thousand `ip` processes.
    crate::netlink::route_replace(&p, dev, src, mtu)
}

/// Addresses configured on this host's interfaces (in the current network namespace).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free exactly once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

pub fn route_del(prefix: &str, dev: &str) -> Result<(), DataplaneError> {
    ip(&["route", "del", prefix, "dev", dev])
}

/// The interface the kernel would send a packet for `addr` out of (`ip route get`), or `None`
/// when there is no route or `ip` cannot be run.
pub fn route_dev(addr: IpAddr) -> Option<String> {
    let out = Command::new("ip")
        .args(["-o", "route", "get", &addr.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    dev_of(&String::from_utf8_lossy(&out.stdout))
}

/// The word after "dev" in one line of `ip -o route get` output.
fn dev_of(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "dev")?;
    words.next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_is_the_word_after_dev() {
        assert_eq!(
            dev_of("10.1.0.0 dev lan src 10.1.0.1 uid 0 \\    cache ").as_deref(),
            Some("lan")
        );
        assert_eq!(
            dev_of("local 10.1.0.1 dev lo table local src 10.1.0.1").as_deref(),
            Some("lo")
        );
        assert_eq!(dev_of("unreachable 10.9.0.0"), None);
        assert_eq!(dev_of("x dev"), None);
    }

    #[test]
    fn loopback_address_routes_through_lo() {
        assert_eq!(
            route_dev("127.0.0.1".parse().unwrap()).as_deref(),
            Some("lo")
        );
    }
}
