//! What one flush costs the daemon, by number of connections: the fast path's tables built
//! and installed, and the routes and guards the config and those tables want, compared with
//! what is in place (`daemon::Running::flush`, `apply_routes`), after one more CHILD_SA came
//! up. Measure with
//! `IRONSEC_FLUSH_BENCH_SIZES=100,1000,10000 cargo test -p ironsecd --release --lib
//! tables::bench -- --nocapture`; it prints times and asserts nothing about them, only that
//! every tunnel came up. The test suite runs it at 100 connections (the default) as that check.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_dataplane::{Prefix, Tables};

use std::sync::atomic::AtomicU64;

use crate::plane::Plane;
use crate::routemtu::{HostAddrs, RouteState};
use crate::testutil::{settle, ConfFile};

/// `n` connections of one tunnel each, hub (`a`) and spokes (`b`).
fn configs(n: usize) -> (String, String) {
    let gw = "[gateway]\ntun = \"ipsec0\"\nport = 4500\nike_port = 500\n";
    let (mut a, mut b) = (gw.to_string(), gw.to_string());
    for i in 0..n {
        let (hi, lo) = (i / 256, i % 256);
        let conn = |name: &str, me: &str, peer: &str, lts: &str, rts: &str, t: &str| {
            format!(
                "[[connection]]\nname = \"{name}\"\nkeying = \"ike\"\nlocal_id = \"{me}\"\n\
                 remote_id = \"{peer}\"\npsk = \"0123456789abcdef0123456789abcdef\"\n\
                 local_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n\
                 ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\n\
                 esp_proposals = [\"aes256gcm16\"]\nstart_action = \"start\"\n\
                 tunnels = [ {t} ]\n"
            )
        };
        let site = format!("10.{hi}.{lo}.0/24");
        let hub = format!("172.{}.{lo}.0/24", 16 + hi);
        a += &conn(
            &format!("s{i}"),
            &format!("a{i}.example"),
            &format!("b{i}.example"),
            &hub,
            &site,
            &format!("{{ local = \"192.0.2.1\", remote = \"100.64.{hi}.{lo}\" }}"),
        );
        b += &conn(
            &format!("h{i}"),
            &format!("b{i}.example"),
            &format!("a{i}.example"),
            &site,
            &hub,
            &format!("{{ local = \"100.64.{hi}.{lo}\", remote = \"192.0.2.1\" }}"),
        )
        .replace("start_action = \"start\"", "start_action = \"none\"");
    }
    (a, b)
}

/// Sizes from `IRONSEC_FLUSH_BENCH_SIZES` (comma-separated connection counts), default 100.
fn sizes() -> Vec<usize> {
    std::env::var("IRONSEC_FLUSH_BENCH_SIZES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("IRONSEC_FLUSH_BENCH_SIZES: connection counts")
                })
                .collect()
        })
        .unwrap_or_else(|| vec![100])
}

/// Mean time of `f` over `rounds` calls.
fn mean(rounds: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..rounds {
        f();
    }
    t.elapsed() / rounds
}

/// The route and guard work of one flush as `apply_routes` does it, with the kernel's state
/// already equal to what is wanted (the common case: nothing to change).
struct Kernel {
    routes: BTreeMap<String, crate::routemtu::TunRoute>,
    guards: Vec<Prefix>,
}

fn route_work(cfg: &crate::config::Config, tables: &Tables, k: &mut Kernel, host: &[IpAddr]) {
    let want = crate::daemon::wanted_tun_routes(
        cfg,
        tables.tunnels().iter().map(|t| (&*t.connection, t.mtu)),
        || host.to_vec(),
    );
    let want_guards = crate::guards::wanted(cfg);
    for g in &want_guards {
        if !k.guards.contains(g) {
            k.guards.push(*g);
        }
    }
    for (p, r) in &want {
        if k.routes.get(p) != Some(r) {
            k.routes.insert(p.clone(), r.clone());
        }
    }
    let stale: Vec<String> = k
        .routes
        .keys()
        .filter(|p| !want.contains_key(*p))
        .cloned()
        .collect();
    for p in stale {
        k.routes.remove(&p);
    }
    k.guards.retain(|g| want_guards.contains(g));
}

#[test]
fn flush_cost() {
    for n in sizes() {
        let (ca, cb) = configs(n);
        let (fa, fb) = (
            ConfFile::new("flush-bench-a", &ca),
            ConfFile::new("flush-bench-b", &cb),
        );
        let mut a = Plane::new(fa.load(), 1).unwrap();
        let mut b = Plane::new(fb.load(), 1).unwrap();
        let mut now = Instant::now();
        a.start_tunnels(now);
        let all_up = |a: &Plane| a.specs().iter().all(|s| a.sas().is_sending(&s.key()));
        for _ in 0..200 {
            settle(&mut a, &mut b, now);
            if all_up(&a) {
                break;
            }
            now += Duration::from_millis(500);
            a.on_timeout(now);
            b.on_timeout(now);
        }
        assert!(all_up(&a), "every tunnel is up");
        let host: Vec<IpAddr> = vec!["172.16.0.1".parse().unwrap(), "192.0.2.1".parse().unwrap()];
        let mut installed = Arc::new(a.tables().unwrap());
        let mut kernel = Kernel {
            routes: BTreeMap::new(),
            guards: Vec::new(),
        };
        route_work(a.config(), &installed, &mut kernel, &host);
        assert_eq!(kernel.routes.len(), n, "a route per connection");
        let rounds = (100_000 / n).clamp(3, 200) as u32;
        let build = mean(rounds, || {
            std::hint::black_box(a.tables().unwrap());
        });
        // Installing swaps the new tables in and drops the old ones.
        let mut install = Duration::ZERO;
        for _ in 0..rounds {
            let t = a.tables().unwrap();
            let at = Instant::now();
            installed = Arc::new(t);
            install += at.elapsed();
        }
        let install = install / rounds;
        let routes = mean(rounds, || {
            route_work(a.config(), &installed, &mut kernel, &host);
        });
        let dump = mean(rounds, || {
            std::hint::black_box(ironsec_dataplane::iproute::host_addresses());
        });
        // The same by change (what `apply_routes` does now): nothing changed, nothing to do.
        let mut st = RouteState::new(&[], HostAddrs::new(Arc::new(AtomicU64::new(0))));
        let settle_routes = |st: &mut RouteState, cfg: &crate::config::Config, t: &Tables| {
            st.update(
                cfg,
                t.tunnels().iter().map(|x| (&*x.connection, x.mtu)),
                || host.clone(),
            );
            let w = st.work();
            for g in w.add_guards {
                st.guard_added(g);
            }
            let set = w.set.len();
            for (p, r) in w.set {
                st.route_set(p, r);
            }
            set
        };
        assert_eq!(settle_routes(&mut st, a.config(), &installed), n);
        let before = st.recomputed;
        let by_change = mean(rounds, || {
            assert_eq!(settle_routes(&mut st, a.config(), &installed), 0);
        });
        assert_eq!(st.recomputed, before, "no connection recomputed");
        println!(
            "{n:>6} connections: tables build {build:>10.1?}  install (drop of the old) {install:>10.1?}  routes+guards whole {routes:>10.1?}  by change {by_change:>10.1?}  host address dump {dump:>10.1?}",
        );
    }
}
