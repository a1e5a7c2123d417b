//! The MTU each remote selector's route into the TUN device carries (`ip route ... mtu N`), so
//! path MTU discovery across a tunnel takes one step (README "MTU and DSCP").
//!
//! Without it the kernel forwards into the TUN device up to the device's MTU (`tun_mtu`) and
//! answers a larger DF packet with that MTU; the fast path then answers the next, smaller
//! packet with the tunnel's real MTU: two round trips of loss before a sender's segments fit.
//! With the route carrying the tunnel's MTU the kernel's first answer is already right (and a
//! packet without DF is fragmented by the kernel to fit, as the fast path would), for the
//! gateway's own packets too. The fast path's own checks stay for what the route cannot
//! know: a path MTU that shrank since the tables were last built.

use std::collections::HashMap;

use ironsec_dataplane::mtu::TunnelMtu;
use ironsec_dataplane::Prefix;

/// The route MTU of every remote prefix of `conns` (name, remote prefixes) that its tunnels
/// (connection name, what the tunnel carries) carry less of than the device's MTU: the
/// smallest over the connection's tunnels, since the route cannot tell which tunnel a packet
/// will take (active-active, failover). IPv6 is never given less than 1280
/// ([`TunnelMtu::limit`]). Prefixes absent from the map need no `mtu` on their route.
pub fn route_mtus<'a>(
    conns: impl IntoIterator<Item = (&'a str, &'a [Prefix])>,
    tunnels: impl IntoIterator<Item = (&'a str, TunnelMtu)>,
    device_mtu: u16,
) -> HashMap<Prefix, u16> {
    // Per connection: the smallest limit for IPv4 and for IPv6 inner packets.
    let mut least: HashMap<&str, (u16, u16)> = HashMap::new();
    for (conn, mtu) in tunnels {
        let e = least.entry(conn).or_insert((u16::MAX, u16::MAX));
        e.0 = e.0.min(mtu.limit(false));
        e.1 = e.1.min(mtu.limit(true));
    }
    let mut out: HashMap<Prefix, u16> = HashMap::new();
    for (conn, prefixes) in conns {
        let Some(&(v4, v6)) = least.get(conn) else {
            continue;
        };
        for p in prefixes {
            let m = if p.is_v4() { v4 } else { v6 };
            if m < device_mtu {
                let e = out.entry(*p).or_insert(m);
                *e = (*e).min(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironsec_dataplane::mtu::MssClamp;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn path(mtu: u16) -> TunnelMtu {
        TunnelMtu::for_path(
            mtu,
            false,
            1400,
            MssClamp::Auto,
            ironsec_esp::Suite::Aes128Gcm16,
        )
    }

    #[test]
    fn each_prefix_gets_its_connections_smallest_tunnel_mtu() {
        let b = [p("10.2.0.0/24"), p("fd02::/64")];
        let c = [p("10.3.0.0/24")];
        let d = [p("10.4.0.0/24")];
        let m = route_mtus(
            [("b", &b[..]), ("c", &c[..]), ("d", &d[..])],
            [
                // b: two tunnels, one over a 1280 path: the route gets the smaller.
                ("b", path(1500)),
                ("b", path(1280)),
                // c: 1500 path: 1438 fits, capped by the device's 1400: no route MTU.
                ("c", path(1500)),
                // d: no tunnel in the tables (UNLIMITED in tests): no route MTU.
                ("d", TunnelMtu::UNLIMITED),
            ],
            1400,
        );
        assert_eq!(m.get(&p("10.2.0.0/24")), Some(&1218));
        // IPv6 is never told less than 1280, though the tunnel carries 1218 in one datagram.
        assert_eq!(m.get(&p("fd02::/64")), Some(&1280));
        assert_eq!(m.get(&p("10.3.0.0/24")), None);
        assert_eq!(m.get(&p("10.4.0.0/24")), None);
    }

    #[test]
    fn a_changed_path_changes_the_route_mtu() {
        let b = [p("10.2.0.0/24")];
        let before = route_mtus([("b", &b[..])], [("b", path(1500))], 1400);
        let after = route_mtus([("b", &b[..])], [("b", path(1300))], 1400);
        assert_eq!(before.get(&p("10.2.0.0/24")), None);
        assert_eq!(after.get(&p("10.2.0.0/24")), Some(&1238));
    }
}
