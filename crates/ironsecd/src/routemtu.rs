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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ironsec_dataplane::mtu::TunnelMtu;
use ironsec_dataplane::Prefix;

use crate::config::{Config, Connection};

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

/// One route into a TUN device (the shared one, or a route-based connection's) as the
/// daemon wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunRoute {
    /// The device: the gateway's `tun`, or a route-based connection's `interface`.
    pub dev: String,
    /// The source of the gateway's own packets to the site.
    pub src: Option<IpAddr>,
    /// The tunnels' MTU, when less than the device's.
    pub mtu: Option<u16>,
}

/// The host's addresses as last read, and whether they may have changed since: the address
/// watch (`crate::addrwatch`) bumps `changes` at every address added or removed on the host,
/// so they are read again only then, never at every flush.
pub struct HostAddrs {
    changes: Arc<AtomicU64>,
    /// The addresses and the value of `changes` when they were read.
    read: Option<(u64, Vec<IpAddr>)>,
}

/// `changes` at this value: nothing watches the addresses, read them every time they are needed.
pub const UNWATCHED: u64 = u64::MAX;

impl HostAddrs {
    pub fn new(changes: Arc<AtomicU64>) -> HostAddrs {
        HostAddrs {
            changes,
            read: None,
        }
    }

    /// Whether the addresses read last may be out of date.
    fn stale(&self) -> bool {
        let now = self.changes.load(Ordering::Acquire);
        now == UNWATCHED || self.read.as_ref().is_none_or(|(at, _)| *at != now)
    }

    /// The addresses, read with `read` only if they may have changed.
    fn get(&mut self, read: impl FnOnce() -> Vec<IpAddr>) -> &[IpAddr] {
        if self.stale() {
            // Read the counter first: a change during the read is seen at the next call.
            let at = self.changes.load(Ordering::Acquire);
            self.read = Some((at, read()));
        }
        self.read.as_ref().map_or(&[], |(_, a)| a.as_slice())
    }
}

/// What one connection adds to the routes and guards, as of the last update.
#[derive(Clone, Debug, PartialEq)]
struct Part {
    name: String,
    /// `None`: policy-based, into the shared device; else the route-based interface.
    dev: Option<String>,
    /// The remote selectors (policy-based) or the static routes (route-based).
    routes: Vec<Prefix>,
    /// The local selectors (policy-based: the routes' source comes from inside them).
    local_ts: Vec<Prefix>,
    /// The prefixes guarded for it.
    guarded: Vec<Prefix>,
    /// The smallest inner MTU (IPv4, IPv6) of its tunnels in the tables; policy-based only.
    limits: Option<(u16, u16)>,
}

impl Part {
    /// Whether `c` (with tunnel limits `limits`) still makes this part, compared in place.
    fn same(&self, c: &Connection, limits: Option<(u16, u16)>) -> bool {
        if self.name != c.name || self.limits != limits {
            return false;
        }
        match (&self.dev, &c.route_based) {
            (None, None) => {
                self.routes == c.remote_ts
                    && self.local_ts == c.local_ts
                    && self.guarded == c.remote_ts
            }
            (Some(d), Some(rb)) => {
                *d == rb.interface
                    && self.routes == rb.routes
                    && self.guarded.len() == rb.routes.len() + rb.protect.len()
                    && self.guarded.iter().eq(rb.routes.iter().chain(&rb.protect))
            }
            _ => false,
        }
    }

    fn of(c: &Connection, limits: Option<(u16, u16)>) -> Part {
        match &c.route_based {
            None => Part {
                name: c.name.clone(),
                dev: None,
                routes: c.remote_ts.clone(),
                local_ts: c.local_ts.clone(),
                guarded: c.remote_ts.clone(),
                limits,
            },
            Some(rb) => Part {
                name: c.name.clone(),
                dev: Some(rb.interface.clone()),
                routes: rb.routes.clone(),
                local_ts: Vec::new(),
                guarded: rb.routes.iter().chain(&rb.protect).copied().collect(),
                limits: None,
            },
        }
    }
}

/// The routes and guard routes the daemon wants, kept up to date by change, and what the
/// kernel has of them. A flush's [`RouteState::update`] recomputes only the prefixes of
/// connections whose config or tunnel MTU changed (or all policy-based ones when the host's
/// addresses changed), and [`RouteState::work`] hands out only the prefixes that may differ
/// from what is installed (those, and the ones whose change failed before): the kernel is
/// never asked about the others. `daemon::wanted_tun_routes` and `guards::wanted` are the
/// same result computed whole; the tests check the two agree.
pub struct RouteState {
    tun: String,
    device_mtu: u16,
    protect: Vec<Prefix>,
    parts: Vec<Part>,
    /// Connection name -> position in the config.
    index: HashMap<String, usize>,
    /// Per routed prefix: the connections (positions) that route it.
    routers: HashMap<Prefix, BTreeSet<usize>>,
    /// Per guarded prefix: how many connections (and `[gateway] protect`) guard it.
    guard_refs: HashMap<Prefix, usize>,
    host: HostAddrs,
    /// Whether the host addresses were part of the routes computed last.
    host_used: bool,
    want: HashMap<Prefix, TunRoute>,
    have: HashMap<Prefix, TunRoute>,
    have_guards: HashSet<Prefix>,
    /// Prefixes whose route or guard may differ from what the kernel has.
    pending: HashSet<Prefix>,
    pending_guards: HashSet<Prefix>,
    /// Connections whose part was recomputed, in total (for tests: work done by change).
    pub recomputed: u64,
}

/// What the kernel should be told, in this order: guards first (a new prefix never follows
/// the main table in clear), then routes, then routes gone, then stale guards.
#[derive(Debug, Default, PartialEq)]
pub struct RouteWork {
    pub add_guards: Vec<Prefix>,
    pub set: Vec<(Prefix, TunRoute)>,
    /// Prefix and the device its route is on.
    pub del: Vec<(Prefix, String)>,
    pub del_guards: Vec<Prefix>,
}

impl RouteState {
    /// Nothing wanted yet; the kernel has the guards `guards` (put in place at start).
    pub fn new(guards: &[Prefix], host: HostAddrs) -> RouteState {
        RouteState {
            tun: String::new(),
            device_mtu: 0,
            protect: Vec::new(),
            parts: Vec::new(),
            index: HashMap::new(),
            routers: HashMap::new(),
            guard_refs: HashMap::new(),
            host,
            host_used: false,
            want: HashMap::new(),
            have: HashMap::new(),
            have_guards: guards.iter().copied().collect(),
            pending: HashSet::new(),
            pending_guards: guards.iter().copied().collect(),
            recomputed: 0,
        }
    }

    /// Brings the wanted routes and guards in line with `cfg` and the tunnels of the installed
    /// tables (connection name, what it carries); `read_host` reads the host's addresses,
    /// called only when they may have changed and a policy-based route needs them.
    pub fn update<'a>(
        &mut self,
        cfg: &Config,
        tunnels: impl IntoIterator<Item = (&'a str, TunnelMtu)>,
        read_host: impl FnOnce() -> Vec<IpAddr>,
    ) {
        let g = &cfg.gateway;
        if self.tun != g.tun || self.device_mtu != g.tun_mtu || self.protect != g.protect {
            // Whatever the gateway's device or protect list: start over (rare, at reload).
            self.parts.clear();
            self.routers.clear();
            self.pending.extend(self.want.keys().copied());
            self.want.clear();
            self.pending_guards
                .extend(self.guard_refs.drain().map(|(p, _)| p));
            self.tun = g.tun.clone();
            self.device_mtu = g.tun_mtu;
            self.protect = g.protect.clone();
            for p in &g.protect {
                *self.guard_refs.entry(*p).or_default() += 1;
                self.pending_guards.insert(*p);
            }
            self.index.clear();
        }
        // The index follows the config; checking it costs a lookup per connection.
        let reindex = self.parts.len() != cfg.connections.len()
            || cfg
                .connections
                .iter()
                .enumerate()
                .any(|(i, c)| self.parts.get(i).is_none_or(|p| p.name != c.name));
        if reindex {
            self.index = cfg
                .connections
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect();
        }
        let mut limits: Vec<Option<(u16, u16)>> = vec![None; cfg.connections.len()];
        for (conn, mtu) in tunnels {
            if let Some(&i) = self.index.get(conn) {
                let e = limits[i].get_or_insert((u16::MAX, u16::MAX));
                e.0 = e.0.min(mtu.limit(false));
                e.1 = e.1.min(mtu.limit(true));
            }
        }
        let mut touched: HashSet<Prefix> = HashSet::new();
        // Connections gone from the end of the list.
        while self.parts.len() > cfg.connections.len() {
            let i = self.parts.len() - 1;
            let p = self.parts.pop().expect("not empty");
            touched.extend(&p.routes);
            self.forget(&p, i);
        }
        for (i, c) in cfg.connections.iter().enumerate() {
            let lim = if c.route_based.is_none() {
                limits[i]
            } else {
                None
            };
            if self.parts.get(i).is_some_and(|p| p.same(c, lim)) {
                continue;
            }
            self.recomputed += 1;
            let new = Part::of(c, lim);
            if i < self.parts.len() {
                let old = self.parts[i].clone();
                touched.extend(&old.routes);
                self.forget(&old, i);
            }
            touched.extend(&new.routes);
            for r in &new.routes {
                self.routers.entry(*r).or_default().insert(i);
            }
            for p in &new.guarded {
                *self.guard_refs.entry(*p).or_default() += 1;
                self.pending_guards.insert(*p);
            }
            if i < self.parts.len() {
                self.parts[i] = new;
            } else {
                self.parts.push(new);
            }
        }
        let policy_routes = self.parts.iter().any(|p| p.dev.is_none());
        if policy_routes && self.host.stale() {
            // A source address may have come or gone: every policy-based route again.
            self.host.get(read_host);
            if self.host_used {
                for p in self.parts.iter().filter(|p| p.dev.is_none()) {
                    touched.extend(&p.routes);
                }
            }
        }
        self.host_used = policy_routes;
        for p in touched {
            match self.route_of(&p) {
                Some(r) => {
                    self.want.insert(p, r);
                }
                None => {
                    self.want.remove(&p);
                }
            }
            self.pending.insert(p);
        }
    }

    /// Takes connection `i`'s part `p` out of the routers and guard counts.
    fn forget(&mut self, p: &Part, i: usize) {
        for r in &p.routes {
            if let Some(set) = self.routers.get_mut(r) {
                set.remove(&i);
                if set.is_empty() {
                    self.routers.remove(r);
                }
            }
        }
        for g in &p.guarded {
            self.unguard(*g);
        }
    }

    fn unguard(&mut self, g: Prefix) {
        if let Some(n) = self.guard_refs.get_mut(&g) {
            *n -= 1;
            if *n == 0 {
                self.guard_refs.remove(&g);
            }
        }
        self.pending_guards.insert(g);
    }

    /// The route prefix `p` should have: the device and source of the last connection in
    /// config order that routes it, the smallest MTU of the policy-based ones.
    fn route_of(&self, p: &Prefix) -> Option<TunRoute> {
        let routers = self.routers.get(p)?;
        let last = &self.parts[*routers.last()?];
        let mtu = routers
            .iter()
            .filter_map(|i| self.parts[*i].limits)
            .map(|(v4, v6)| if p.is_v4() { v4 } else { v6 })
            .filter(|m| *m < self.device_mtu)
            .min();
        Some(match &last.dev {
            Some(d) => TunRoute {
                dev: d.clone(),
                src: None,
                mtu,
            },
            None => TunRoute {
                dev: self.tun.clone(),
                src: self
                    .host
                    .read
                    .iter()
                    .flat_map(|(_, a)| a)
                    .find(|a| {
                        a.is_ipv4() == p.is_v4() && last.local_ts.iter().any(|l| l.contains(**a))
                    })
                    .copied(),
                mtu,
            },
        })
    }

    /// The routes as wanted now, every one.
    pub fn wanted(&self) -> &HashMap<Prefix, TunRoute> {
        &self.want
    }

    /// The guarded prefixes as wanted now.
    pub fn wanted_guards(&self) -> impl Iterator<Item = &Prefix> {
        self.guard_refs.keys()
    }

    /// What the kernel should be told now: only prefixes changed since (or failed at) the
    /// last [`RouteState::done`]. Each item is reported back with `route_set`, `route_gone`,
    /// `guard_added`, `guard_removed` when it worked; what is not stays pending.
    pub fn work(&mut self) -> RouteWork {
        let mut w = RouteWork::default();
        for g in std::mem::take(&mut self.pending_guards) {
            match (
                self.guard_refs.contains_key(&g),
                self.have_guards.contains(&g),
            ) {
                (true, false) => w.add_guards.push(g),
                (false, true) => w.del_guards.push(g),
                _ => {}
            }
        }
        for p in std::mem::take(&mut self.pending) {
            match (self.want.get(&p), self.have.get(&p)) {
                (Some(r), h) if h != Some(r) => w.set.push((p, r.clone())),
                (None, Some(h)) => w.del.push((p, h.dev.clone())),
                _ => {}
            }
        }
        w
    }

    /// The route is in the kernel.
    pub fn route_set(&mut self, p: Prefix, r: TunRoute) {
        self.have.insert(p, r);
    }

    /// The route is out of the kernel.
    pub fn route_gone(&mut self, p: Prefix) {
        self.have.remove(&p);
    }

    pub fn guard_added(&mut self, p: Prefix) {
        self.have_guards.insert(p);
    }

    pub fn guard_removed(&mut self, p: Prefix) {
        self.have_guards.remove(&p);
    }

    /// A change that failed: tried again at the next [`RouteState::work`].
    pub fn retry_route(&mut self, p: Prefix) {
        self.pending.insert(p);
    }

    pub fn retry_guard(&mut self, p: Prefix) {
        self.pending_guards.insert(p);
    }

    /// The route the kernel has for `p`, as installed.
    pub fn installed(&self, p: &Prefix) -> Option<&TunRoute> {
        self.have.get(p)
    }
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

#[cfg(test)]
mod by_change {
    //! The routes and guards kept by change equal the whole computation
    //! (`daemon::wanted_tun_routes`, `guards::wanted`) after random sequences of config, MTU
    //! and host address changes, and the kernel they are applied to (with failures) ends equal.

    use std::collections::BTreeMap;

    use super::*;
    use crate::testutil::ConfFile;
    use ironsec_dataplane::mtu::MssClamp;

    /// A seeded xorshift: the same sequence every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
            &v[self.below(v.len())]
        }
        fn some<T: Copy>(&mut self, v: &[T]) -> Vec<T> {
            v.iter().copied().filter(|_| self.below(2) == 0).collect()
        }
    }

    fn base(n: usize) -> Config {
        let mut t = String::from("[gateway]\ntun = \"ipsec0\"\nport = 4500\nike_port = 500\n");
        for i in 0..n {
            let (hi, lo) = (i / 256, i % 256);
            let sel = if i % 3 == 2 {
                format!("interface = \"vti{i}\"\nroutes = [\"10.{hi}.{lo}.0/24\"]\nprotect = [\"10.128.0.0/10\"]\n")
            } else {
                format!("local_ts = [\"172.16.0.0/12\"]\nremote_ts = [\"10.{hi}.{lo}.0/24\"]\n")
            };
            t += &format!(
                "[[connection]]\nname = \"c{i}\"\nkeying = \"ike\"\nlocal_id = \"a{i}.example\"\n\
                 remote_id = \"b{i}.example\"\npsk = \"0123456789abcdef0123456789abcdef\"\n{sel}\
                 tunnels = [ {{ local = \"192.0.2.1\", remote = \"100.64.{hi}.{lo}\" }} ]\n"
            );
        }
        ConfFile::new("routes-by-change", &t).load()
    }

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

    /// A fake kernel: applies `work`, failing what `fail` says, reporting back.
    #[derive(Default)]
    struct Kernel {
        routes: HashMap<Prefix, TunRoute>,
        guards: HashSet<Prefix>,
    }

    impl Kernel {
        fn apply(&mut self, st: &mut RouteState, mut fail: impl FnMut() -> bool) -> usize {
            let w = st.work();
            let n = w.add_guards.len() + w.set.len() + w.del.len() + w.del_guards.len();
            for g in w.add_guards {
                if fail() {
                    st.retry_guard(g);
                } else {
                    self.guards.insert(g);
                    st.guard_added(g);
                }
            }
            for (p, r) in w.set {
                if fail() {
                    st.retry_route(p);
                } else {
                    self.routes.insert(p, r.clone());
                    st.route_set(p, r);
                }
            }
            for (p, dev) in w.del {
                assert_eq!(self.routes[&p].dev, dev, "deleted from its device");
                if fail() {
                    st.retry_route(p);
                } else {
                    self.routes.remove(&p);
                    st.route_gone(p);
                }
            }
            for g in w.del_guards {
                if fail() {
                    st.retry_guard(g);
                } else {
                    self.guards.remove(&g);
                    st.guard_removed(g);
                }
            }
            n
        }
    }

    #[test]
    fn routes_by_change_equal_the_whole_computation() {
        let pool = [
            p("10.0.0.0/24"),
            p("10.0.1.0/24"),
            p("10.9.0.0/16"),
            p("fd02::/64"),
            p("10.128.0.0/10"),
        ];
        let local_pool = [p("172.16.0.0/12"), p("10.1.0.0/24"), p("fd01::/64")];
        let host_pool: Vec<IpAddr> = ["172.16.0.1", "10.1.0.1", "fd01::1", "192.0.2.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mtu_pool = [1280u16, 1400, 1500, 9000];
        let orig = base(9);
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut cfg = orig.clone();
            let mut next_name = cfg.connections.len();
            let changes = Arc::new(AtomicU64::new(0));
            let mut host: Vec<IpAddr> = rng.some(&host_pool);
            let mut st = RouteState::new(&[], HostAddrs::new(changes.clone()));
            let mut kernel = Kernel::default();
            // Per connection name: its tunnels' path MTUs (absent: none in the tables).
            let mut mtus: BTreeMap<String, Vec<u16>> = BTreeMap::new();
            for step in 0..60 {
                match rng.below(9) {
                    0 if !cfg.connections.is_empty() => {
                        let i = rng.below(cfg.connections.len());
                        let c = &mut cfg.connections[i];
                        match &mut c.route_based {
                            None => c.remote_ts = rng.some(&pool),
                            Some(rb) => rb.routes = rng.some(&pool),
                        }
                    }
                    1 if !cfg.connections.is_empty() => {
                        let i = rng.below(cfg.connections.len());
                        let c = &mut cfg.connections[i];
                        match &mut c.route_based {
                            None => c.local_ts = rng.some(&local_pool),
                            Some(rb) => rb.protect = rng.some(&pool),
                        }
                    }
                    2 if !cfg.connections.is_empty() => {
                        let i = rng.below(cfg.connections.len());
                        cfg.connections.remove(i);
                    }
                    3 => {
                        let mut c = rng.pick(&orig.connections).clone();
                        c.name = format!("n{next_name}");
                        next_name += 1;
                        let at = rng.below(cfg.connections.len() + 1);
                        cfg.connections.insert(at, c);
                    }
                    4 | 5 if !cfg.connections.is_empty() => {
                        let name = rng.pick(&cfg.connections).name.clone();
                        let k = rng.below(3);
                        let m: Vec<u16> = (0..k).map(|_| *rng.pick(&mtu_pool)).collect();
                        mtus.insert(name, m);
                    }
                    6 => {
                        host = rng.some(&host_pool);
                        changes.fetch_add(1, Ordering::AcqRel);
                    }
                    7 => cfg.gateway.protect = rng.some(&pool[..2]),
                    8 => cfg.gateway.tun_mtu = *rng.pick(&[1400u16, 1300, 1500]),
                    _ => {}
                }
                let tunnels: Vec<(String, TunnelMtu)> = mtus
                    .iter()
                    .flat_map(|(c, v)| v.iter().map(|m| (c.clone(), path(*m))))
                    .collect();
                let mut reads = 0;
                st.update(&cfg, tunnels.iter().map(|(c, m)| (c.as_str(), *m)), || {
                    reads += 1;
                    host.clone()
                });
                assert!(reads <= 1, "the host's addresses are read once at most");
                let whole = crate::daemon::wanted_tun_routes(
                    &cfg,
                    tunnels.iter().map(|(c, m)| (c.as_str(), *m)),
                    || host.clone(),
                );
                let by_change: BTreeMap<String, TunRoute> = st
                    .wanted()
                    .iter()
                    .map(|(p, r)| (p.to_string(), r.clone()))
                    .collect();
                assert_eq!(by_change, whole, "seed {seed} step {step}");
                let guards: HashSet<Prefix> = st.wanted_guards().copied().collect();
                let whole_guards: HashSet<Prefix> =
                    crate::guards::wanted(&cfg).into_iter().collect();
                assert_eq!(guards, whole_guards, "seed {seed} step {step}");
                // The kernel refuses some changes; they are tried again until it takes them.
                let mut fails = Rng(rng.next() | 1);
                kernel.apply(&mut st, || fails.below(4) == 0);
                for _ in 0..100 {
                    if kernel.apply(&mut st, || false) == 0 {
                        break;
                    }
                }
                assert_eq!(&kernel.routes, st.wanted(), "seed {seed} step {step}");
                assert_eq!(kernel.guards, whole_guards, "seed {seed} step {step}");
            }
        }
    }

    #[test]
    fn one_changed_connection_is_all_a_flush_recomputes() {
        let cfg = base(1000);
        let changes = Arc::new(AtomicU64::new(0));
        let mut st = RouteState::new(&[], HostAddrs::new(changes.clone()));
        let mut kernel = Kernel::default();
        let mut mtus: Vec<(String, TunnelMtu)> = cfg
            .connections
            .iter()
            .map(|c| (c.name.clone(), path(1500)))
            .collect();
        let mut reads = 0;
        let mut update = |st: &mut RouteState, mtus: &[(String, TunnelMtu)]| {
            st.update(&cfg, mtus.iter().map(|(c, m)| (c.as_str(), *m)), || {
                reads += 1;
                vec!["172.16.0.1".parse().unwrap()]
            });
        };
        update(&mut st, &mtus);
        assert_eq!(st.recomputed, 1000);
        // A route per connection, a guard per route and the shared `protect` prefix.
        assert_eq!(kernel.apply(&mut st, || false), 1000 + 1000 + 1);
        // Nothing changed: nothing recomputed, nothing asked of the kernel.
        update(&mut st, &mtus);
        assert_eq!(st.recomputed, 1000);
        assert_eq!(kernel.apply(&mut st, || false), 0);
        // One tunnel's path shrank: its connection's route only.
        mtus[4].1 = path(1280);
        update(&mut st, &mtus);
        assert_eq!(st.recomputed, 1001);
        assert_eq!(kernel.apply(&mut st, || false), 1);
        assert_eq!(kernel.routes[&p("10.0.4.0/24")].mtu, Some(1218));
        assert_eq!(reads, 1, "the host's addresses were read once");
        // The watch saw an address change: read again, every policy-based route checked,
        // none recomputed from the config.
        changes.fetch_add(1, Ordering::AcqRel);
        let mut reads = 0;
        st.update(&cfg, mtus.iter().map(|(c, m)| (c.as_str(), *m)), || {
            reads += 1;
            vec!["172.16.0.1".parse().unwrap()]
        });
        assert_eq!((reads, st.recomputed), (1, 1001));
        assert_eq!(kernel.apply(&mut st, || false), 0, "same addresses");
    }
}
