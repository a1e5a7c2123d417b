//! What connections may not share: remote addresses (policy-based), interfaces and routed
//! prefixes (route-based). Checked in O(N log N + errors) over N connections: remote
//! selectors by a sort and a sweep, interfaces and routes by hash lookups, so that a config
//! of 10,000 sites validates (and reloads) in linear time.
//!
//! The errors and their order are those of the pairwise check this replaces (every
//! connection `a`, then every later connection `b`; see [`Rank`]): each error carries its
//! place in that order, and they are sorted by it at the end.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::path::PathBuf;

use ironsec_dataplane::{Ports, Prefix};

use super::{place, ConfigError, Connection};

/// An error's place in the pairwise order: `(a, 0, ..)` is the check of connection `a`
/// alone (its interface against the gateway's TUN device), `(a, 1, b, step, item)` a check
/// of the pair `a < b`: step 0 their interfaces, 1 `b`'s routes against what `a` claims, 2
/// `a`'s routes against what `b` claims, 3 `a`'s remote selector `item` against `b`'s.
type Rank = (usize, u8, usize, u8, usize);

/// The checks between connections (and of each route-based one against the gateway's TUN
/// device `tun`, when the gateway could be read). `origins` holds each connection's file
/// and key.
pub(super) fn between_connections(
    tun: Option<&str>,
    connections: &[Connection],
    origins: &[(PathBuf, String)],
) -> Vec<ConfigError> {
    let mut found: Vec<(Rank, ConfigError)> = Vec::new();
    shared_interfaces(tun, connections, origins, &mut found);
    routed_twice(connections, origins, &mut found);
    overlapping_remotes(connections, origins, &mut found);
    found.sort_by_key(|(rank, _)| *rank);
    found.into_iter().map(|(_, e)| e).collect()
}

/// A route-based connection's interface may be neither the gateway's TUN device nor another
/// connection's: the later one is refused, naming the first.
fn shared_interfaces(
    tun: Option<&str>,
    connections: &[Connection],
    origins: &[(PathBuf, String)],
    found: &mut Vec<(Rank, ConfigError)>,
) {
    let mut by_interface: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in connections.iter().enumerate() {
        let Some(rb) = &c.route_based else { continue };
        let (f, k) = &origins[i];
        if tun == Some(rb.interface.as_str()) {
            found.push((
                (i, 0, 0, 0, 0),
                ConfigError::new(
                    f,
                    format!("{k}.interface"),
                    format!(
                        "'{}' is the gateway's shared TUN device (gateway.tun); a route-based \
                         connection needs an interface of its own",
                        rb.interface
                    ),
                ),
            ));
        }
        let earlier = by_interface.entry(rb.interface.as_str()).or_default();
        // Every earlier holder, as the pairwise check reported them.
        for &a in earlier.iter() {
            let (fa, ka) = &origins[a];
            found.push((
                (a, 1, i, 0, 0),
                ConfigError::new(
                    f,
                    format!("{k}.interface"),
                    format!(
                        "'{}' is already the interface of connection '{}' ({})",
                        rb.interface,
                        connections[a].name,
                        place(f, fa, &format!("{ka}.interface"))
                    ),
                ),
            ));
        }
        earlier.push(i);
    }
}

/// The prefixes a connection claims in the kernel's routing table: a route-based one's
/// static routes, a policy-based one's remote prefixes.
fn claimed(c: &Connection) -> &[Prefix] {
    match &c.route_based {
        Some(rb) => &rb.routes,
        None => &c.remote_ts,
    }
}

/// The same prefix routed two ways (the kernel keeps one route per prefix): each route of a
/// route-based connection that another connection claims too is refused, once per claimer.
fn routed_twice(
    connections: &[Connection],
    origins: &[(PathBuf, String)],
    found: &mut Vec<(Rank, ConfigError)>,
) {
    if connections.iter().all(|c| c.route_based.is_none()) {
        return;
    }
    // Prefix -> the connections claiming it, each once, in config order.
    let mut claimers: HashMap<Prefix, Vec<usize>> = HashMap::new();
    for (x, c) in connections.iter().enumerate() {
        for p in claimed(c) {
            let v = claimers.entry(*p).or_default();
            if v.last() != Some(&x) {
                v.push(x);
            }
        }
    }
    for (y, c) in connections.iter().enumerate() {
        let Some(rb) = &c.route_based else { continue };
        let (fy, ky) = &origins[y];
        for (iy, p) in rb.routes.iter().enumerate() {
            for &x in claimers.get(p).into_iter().flatten() {
                if x == y {
                    continue;
                }
                let rank = if x < y {
                    (x, 1, y, 1, iy)
                } else {
                    (y, 1, x, 2, iy)
                };
                found.push((
                    rank,
                    ConfigError::new(
                        fy,
                        format!("{ky}.routes[{iy}]"),
                        format!(
                            "{p} is routed by connection '{}' already; one prefix takes one \
                             route (several paths for a prefix: let the routing daemon \
                             choose)",
                            connections[x].name
                        ),
                    ),
                ));
            }
        }
    }
}

/// A prefix as an address range, both families in one number space (`v6` tells them apart).
fn range(p: &Prefix) -> (bool, u128, u128) {
    match *p {
        Prefix::V4 { addr, len } => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            let start = addr & mask;
            (false, u128::from(start), u128::from(start | !mask))
        }
        Prefix::V6 { addr, len } => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            let start = addr & mask;
            (true, start, start | !mask)
        }
    }
}

/// One remote selector of a policy-based connection, for the sweep.
struct Item {
    ports: (u8, u16, u16),
    v6: bool,
    start: u128,
    end: u128,
    conn: usize,
    sel: usize,
}

fn ports_key(p: &Ports) -> (u8, u16, u16) {
    (p.proto, p.start, p.end)
}

/// Two policy-based connections whose remote selectors overlap with the same protocol and
/// ports would make routing ambiguous: for each remote selector of connection `a` and each
/// later connection `b`, the first of `b`'s selectors it overlaps is refused.
///
/// Prefixes overlap exactly when one holds the other, so after sorting each (ports, family)
/// group by start, widest first, a sweep with a stack of the prefixes holding the current
/// one finds every overlapping pair once: O(S log S + pairs) for S selectors.
fn overlapping_remotes(
    connections: &[Connection],
    origins: &[(PathBuf, String)],
    found: &mut Vec<(Rank, ConfigError)>,
) {
    let mut items: Vec<Item> = Vec::new();
    for (conn, c) in connections.iter().enumerate() {
        if c.route_based.is_some() {
            continue;
        }
        for (sel, s) in c.remote_selectors.iter().enumerate() {
            let (v6, start, end) = range(&s.prefix);
            items.push(Item {
                ports: ports_key(&s.ports),
                v6,
                start,
                end,
                conn,
                sel,
            });
        }
    }
    items.sort_unstable_by_key(|it| (it.ports, it.v6, it.start, Reverse(it.end), it.conn, it.sel));
    // (a, selector of a, b, selector of b) with a < b, for every overlapping pair.
    let mut pairs: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut stack: Vec<&Item> = Vec::new();
    for it in &items {
        while let Some(top) = stack.last() {
            if top.ports == it.ports && top.v6 == it.v6 && top.end >= it.start {
                break;
            }
            stack.pop();
        }
        // Every prefix on the stack holds this one.
        for holder in &stack {
            if holder.conn == it.conn {
                continue;
            }
            let (x, y): (&Item, &Item) = if holder.conn < it.conn {
                (holder, it)
            } else {
                (it, holder)
            };
            pairs.push((x.conn, x.sel, y.conn, y.sel));
        }
        stack.push(it);
    }
    // Per (a, selector of a, b): b's first overlapping selector, as `find` took it.
    pairs.sort_unstable();
    pairs.dedup_by_key(|(a, ia, b, _)| (*a, *ia, *b));
    for (a, ia, b, ib) in pairs {
        let (fa, ka) = &origins[a];
        let (fb, kb) = &origins[b];
        let pa = &connections[a].remote_selectors[ia];
        let pb = &connections[b].remote_selectors[ib];
        found.push((
            (a, 1, b, 3, ia),
            ConfigError::new(
                fb,
                format!("{kb}.remote_ts[{ib}]"),
                format!(
                    "{pb} overlaps {pa} of connection '{}' ({})",
                    connections[a].name,
                    place(fb, fa, &format!("{ka}.remote_ts[{ia}]"))
                ),
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use ironsec_dataplane::Selector;

    use super::*;
    use crate::config::{Config, RouteBased};

    /// The pairwise check this module replaces, as it was: the reference for the errors and
    /// their order.
    fn pairwise(
        tun: Option<&str>,
        connections: &[Connection],
        origins: &[(PathBuf, String)],
    ) -> Vec<ConfigError> {
        let mut out = Vec::new();
        for (i, a) in connections.iter().enumerate() {
            let (fa, ka) = &origins[i];
            if let Some(ra) = &a.route_based {
                if tun == Some(ra.interface.as_str()) {
                    out.push(ConfigError::new(
                        fa,
                        format!("{ka}.interface"),
                        format!(
                            "'{}' is the gateway's shared TUN device (gateway.tun); a route-based \
                             connection needs an interface of its own",
                            ra.interface
                        ),
                    ));
                }
            }
            for (b, (fb, kb)) in connections[i + 1..].iter().zip(&origins[i + 1..]) {
                if let (Some(ra), Some(rb)) = (&a.route_based, &b.route_based) {
                    if ra.interface == rb.interface {
                        out.push(ConfigError::new(
                            fb,
                            format!("{kb}.interface"),
                            format!(
                                "'{}' is already the interface of connection '{}' ({})",
                                rb.interface,
                                a.name,
                                place(fb, fa, &format!("{ka}.interface"))
                            ),
                        ));
                    }
                }
                // The same prefix routed two ways: the kernel keeps one route per prefix.
                for (x, y, fy, ky) in [(a, b, fb, kb), (b, a, fa, ka)] {
                    let Some(ry) = &y.route_based else { continue };
                    let claimed: Vec<Prefix> = match &x.route_based {
                        Some(rx) => rx.routes.clone(),
                        None => x.remote_ts.clone(),
                    };
                    for (iy, p) in ry.routes.iter().enumerate() {
                        if claimed.contains(p) {
                            out.push(ConfigError::new(
                                fy,
                                format!("{ky}.routes[{iy}]"),
                                format!(
                                    "{p} is routed by connection '{}' already; one prefix takes one \
                                     route (several paths for a prefix: let the routing daemon \
                                     choose)",
                                    x.name
                                ),
                            ));
                        }
                    }
                }
                if a.route_based.is_some() || b.route_based.is_some() {
                    continue;
                }
                for (ia, pa) in a.remote_selectors.iter().enumerate() {
                    if let Some((ib, pb)) = b
                        .remote_selectors
                        .iter()
                        .enumerate()
                        .find(|(_, pb)| pa.prefix.overlaps(&pb.prefix) && pa.ports == pb.ports)
                    {
                        out.push(ConfigError::new(
                            fb,
                            format!("{kb}.remote_ts[{ib}]"),
                            format!(
                                "{pb} overlaps {pa} of connection '{}' ({})",
                                a.name,
                                place(fb, fa, &format!("{ka}.remote_ts[{ia}]"))
                            ),
                        ));
                    }
                }
            }
        }
        out
    }

    /// A small deterministic generator (xorshift64*), so a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }

        fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
            &v[self.below(v.len())]
        }
    }

    /// One valid connection, loaded, to vary.
    fn base() -> Connection {
        let d = std::env::temp_dir().join(format!("ironsec-overlap-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("c.toml");
        std::fs::write(
            &p,
            "[gateway]\ntun = \"ipsec0\"\n[[connection]]\nname = \"c\"\nkeying = \"ike\"\n\
             local_id = \"a.example\"\nremote_id = \"b.example\"\n\
             psk = \"0123456789abcdef0123456789abcdef\"\nlocal_ts = [\"10.1.0.0/24\"]\n\
             remote_ts = [\"10.2.0.0/24\"]\n\
             tunnels = [ { local = \"192.0.2.1\", remote = \"192.0.2.2\" } ]\n",
        )
        .unwrap();
        let c = Config::load_with_env(&p, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&d);
        c.connections[0].clone()
    }

    /// `n` connections drawn from small pools of prefixes, ports, interfaces and files, so
    /// that every kind of clash happens many times, in every order.
    fn drawn(rng: &mut Rng, n: usize) -> (Vec<Connection>, Vec<(PathBuf, String)>) {
        let prefixes: Vec<Prefix> = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.2.0.0/16",
            "10.2.0.0/24",
            "10.2.0.128/25",
            "10.2.0.192/26",
            "10.2.1.0/24",
            "10.3.0.0/24",
            "192.168.7.0/24",
            "192.168.7.9/32",
            "::/0",
            "fd00::/8",
            "fd00:1::/64",
            "fd00:1::/64",
            "fd00:2::1/128",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
        let ports = [
            Ports::ANY,
            Ports {
                proto: 6,
                start: 443,
                end: 443,
            },
            Ports {
                proto: 17,
                start: 53,
                end: 53,
            },
        ];
        let interfaces = ["rb0", "rb1", "rb2", "ipsec0"];
        let files = ["main.toml", "conf.d/a.toml", "conf.d/b.toml"];
        let template = base();
        let mut conns = Vec::new();
        let mut origins = Vec::new();
        let mut in_file = [0usize; 3];
        for i in 0..n {
            let mut c = template.clone();
            c.name = format!("c{i}");
            c.remote_selectors = (0..1 + rng.below(3))
                .map(|_| Selector {
                    prefix: *rng.pick(&prefixes),
                    ports: *rng.pick(&ports),
                })
                .collect();
            c.remote_ts = Vec::new();
            for s in &c.remote_selectors {
                if !c.remote_ts.contains(&s.prefix) {
                    c.remote_ts.push(s.prefix);
                }
            }
            c.route_based = (rng.below(3) == 0).then(|| RouteBased {
                interface: rng.pick(&interfaces).to_string(),
                address: None,
                routes: (0..rng.below(4)).map(|_| *rng.pick(&prefixes)).collect(),
                protect: Vec::new(),
            });
            let f = rng.below(files.len());
            origins.push((
                PathBuf::from(files[f]),
                format!("connection[{}]", in_file[f]),
            ));
            in_file[f] += 1;
            conns.push(c);
        }
        (conns, origins)
    }

    #[test]
    fn the_same_errors_in_the_same_order_as_the_pairwise_check() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut total = 0;
        for round in 0..40 {
            let n = [1, 2, 3, 5, 8, 20, 60, 150][round % 8];
            let (conns, origins) = drawn(&mut rng, n);
            for tun in [Some("ipsec0"), None] {
                let want = pairwise(tun, &conns, &origins);
                let got = between_connections(tun, &conns, &origins);
                assert_eq!(got, want, "round {round}, {n} connections, tun {tun:?}");
                total += want.len();
            }
        }
        assert!(
            total > 1000,
            "the draws clash often enough to compare: {total}"
        );
        // Each kind of error was among them.
        let (conns, origins) = drawn(&mut Rng(7), 150);
        let errs = between_connections(Some("ipsec0"), &conns, &origins);
        for kind in [
            "is the gateway's shared TUN device",
            "is already the interface of connection",
            "is routed by connection",
            "overlaps",
        ] {
            assert!(errs.iter().any(|e| e.reason.contains(kind)), "{kind}");
        }
    }
}
