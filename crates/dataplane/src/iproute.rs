//! Link and route changes through iproute2's `ip`. These run on setup and reload only, never
//! per packet, so a subprocess is simpler and easier to audit than a netlink client.

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
pub fn route_via(prefix: &str, dev: &str, src: Option<IpAddr>) -> Result<(), DataplaneError> {
    match src {
        Some(src) => ip(&[
            "route",
            "replace",
            prefix,
            "dev",
            dev,
            "src",
            &src.to_string(),
        ]),
        None => ip(&["route", "replace", prefix, "dev", dev]),
    }
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
