//! Host tuning that ironsecd can only advise on: checked once at startup and logged, never
//! changed behind the operator's back (the LAN interfaces are theirs, and the setting also
//! changes what every other forwarded flow costs).

use std::collections::BTreeSet;

use ironsec_dataplane::ethtool::Features;
use ironsec_dataplane::{iproute, Prefix};

/// The kernel's names of the features that let forwarded UDP datagrams of one flow reach the
/// TUN device merged, with the short names `ethtool -K` takes.
const UDP_GRO_FORWARDING: [(&str, &str); 2] = [
    ("rx-gro", "gro"),
    ("rx-udp-gro-forwarding", "rx-udp-gro-forwarding"),
];

/// The interfaces the local traffic selectors are routed out of: the LAN side, where the
/// tunnel's outbound traffic comes from. A catch-all selector names no interface and is
/// skipped, as are loopback and the TUN device itself.
pub fn lan_interfaces<'a>(
    local_ts: impl IntoIterator<Item = &'a Prefix>,
    tun: &str,
    route_dev: impl Fn(std::net::IpAddr) -> Option<String>,
) -> BTreeSet<String> {
    // Many connections often share one LAN prefix: look each up once (one `ip` run each).
    let prefixes: std::collections::HashSet<&Prefix> =
        local_ts.into_iter().filter(|p| !p.is_catch_all()).collect();
    prefixes
        .into_iter()
        .filter_map(|p| route_dev(p.addr()))
        .filter(|d| d != "lo" && d != tun)
        .collect()
}

/// What is off on one interface, as `ethtool -K` short names; empty when all is on or the
/// kernel does not name a feature.
fn udp_gro_forwarding_off(f: &Features) -> Vec<&'static str> {
    UDP_GRO_FORWARDING
        .iter()
        .filter(|(long, _)| f.active(long) == Some(false))
        .map(|&(_, short)| short)
        .collect()
}

/// Logs, for each LAN interface without UDP GRO forwarding, the command that turns it on.
/// Only worth saying when the TUN device takes UDP super-packets (USO): otherwise the kernel
/// splits merged datagrams again before the device and nothing is gained.
pub fn advise_udp_gro_forwarding<'a>(local_ts: impl IntoIterator<Item = &'a Prefix>, tun: &str) {
    for dev in lan_interfaces(local_ts, tun, iproute::route_dev) {
        match Features::read(&dev) {
            Ok(f) => {
                let off = udp_gro_forwarding_off(&f);
                if off.is_empty() {
                    tracing::debug!(interface = %dev, "UDP GRO forwarding is on");
                    continue;
                }
                let words: Vec<String> = off.iter().map(|s| format!("{s} on")).collect();
                tracing::info!(
                    interface = %dev,
                    off = %off.join(","),
                    advice = %format!("ethtool -K {dev} {}", words.join(" ")),
                    "small UDP datagrams from this LAN interface reach the tunnel one TUN read \
                     each; turn on UDP GRO forwarding to have floods of them arrive merged \
                     (README: Host tuning for small-datagram floods)"
                );
            }
            Err(e) => {
                tracing::debug!(interface = %dev, error = %e, "cannot read offload features")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn lan_interfaces_skip_catch_all_loopback_tun_and_unrouted() {
        let ts = [
            p("10.1.0.0/24"),
            p("10.1.1.0/24"),
            p("0.0.0.0/0"),
            p("10.9.0.0/16"),
            p("10.1.0.1/32"),
            p("10.3.0.0/24"),
        ];
        let route = |a: IpAddr| -> Option<String> {
            match a.to_string().as_str() {
                "10.1.0.0" | "10.1.1.0" => Some("lan".into()),
                "10.1.0.1" => Some("lo".into()),
                "10.3.0.0" => Some("ipsec0".into()),
                "0.0.0.0" => panic!("a catch-all selector was looked up"),
                _ => None,
            }
        };
        let got = lan_interfaces(&ts, "ipsec0", route);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["lan"]);

        let lookups = std::cell::Cell::new(0);
        let counting = |_: IpAddr| {
            lookups.set(lookups.get() + 1);
            Some("lan".to_string())
        };
        let same = [p("10.1.0.0/24"), p("10.1.0.0/24"), p("10.1.0.0/24")];
        assert_eq!(lan_interfaces(&same, "ipsec0", counting).len(), 1);
        assert_eq!(lookups.get(), 1, "a shared prefix is looked up once");
    }
}
