//! Cost of bringing up N IKE SAs between two sans-IO endpoints, all spokes behind one
//! address (the worst case for a hub's per-address peer lookup): wall time per SA (both
//! sides' work, DH included) and the hub's heap per established SA, from a counting global
//! allocator. Only public engine APIs, so the same file measures any revision.
//!
//! `cargo run --release -p ironsec-ike --example sa_scale [N ...]` (default 1000 10000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use ironsec_ike::crypto::TestRng;
use ironsec_ike::testkit::peer;
use ironsec_ike::{Endpoint, EndpointConfig, Event};

/// The system allocator, counting the bytes live now and allocated in all.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Relaxed);
            TOTAL.fetch_add(l.size(), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new, Relaxed);
            LIVE.fetch_sub(l.size(), Relaxed);
            TOTAL.fetch_add(new.saturating_sub(l.size()), Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

/// CPU time (user + system) this thread has used, from /proc/thread-self/stat (Linux): the
/// figure that holds on a machine busy with other work, where wall time does not.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux /proc");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().expect("stat field"))
        .collect();
    // USER_HZ is 100 on every Linux architecture we run on.
    (f[0] + f[1]) as f64 / 100.0
}

fn spoke_net(i: usize) -> String {
    format!("10.{}.{}.0/24", 1 + i / 256, i % 256)
}

/// Moves datagrams both ways until both sides are quiet; returns the IKE SAs that came up
/// at the spoke side.
fn pump(now: Instant, a: &mut Endpoint, b: &mut Endpoint) -> usize {
    let mut up = 0;
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            b.handle(now, t.remote, t.local, &t.payload);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle(now, t.remote, t.local, &t.payload);
        }
        while let Some(e) = a.poll_event() {
            up += usize::from(matches!(e, Event::IkeSaUp { .. }));
        }
        while b.poll_event().is_some() {}
        if !moved {
            return up;
        }
    }
}

/// The hub's connections: spoke `i` as `spoke{i}.example`, every one at address `spokes`.
fn hub_peers(n: usize, spokes: std::net::IpAddr) -> Vec<ironsec_ike::PeerConfig> {
    (0..n)
        .map(|i| {
            let mut p = peer(
                &format!("spoke{i}"),
                "hub.example",
                &format!("spoke{i}.example"),
                "10.0.0.0/16",
                &spoke_net(i),
                IKE,
                ESP,
            );
            p.remote_addrs = vec![spokes];
            p.dpd_interval = None;
            p
        })
        .collect()
}

fn run(n: usize) {
    let cfg = EndpointConfig {
        cookie_threshold: usize::MAX,
        cookie_rate_threshold: u64::MAX,
        max_half_open: usize::MAX,
        ..EndpointConfig::default()
    };
    let (spoke_addr, hub_addr): (SocketAddr, SocketAddr) = (
        "192.0.2.1:500".parse().unwrap(),
        "192.0.2.2:500".parse().unwrap(),
    );
    let hub_config = hub_peers(n, spoke_addr.ip());
    let spoke_peers: Vec<_> = (0..n)
        .map(|i| {
            let mut p = peer(
                &format!("hub{i}"),
                &format!("spoke{i}.example"),
                "hub.example",
                &spoke_net(i),
                "10.0.0.0/16",
                IKE,
                ESP,
            );
            p.dpd_interval = None;
            p
        })
        .collect();
    let live0 = LIVE.load(Relaxed);
    let mut hub = Endpoint::new(cfg.clone(), hub_config, Box::new(TestRng::new(2)));
    let live_hub_config = LIVE.load(Relaxed);
    let mut spokes = Endpoint::new(cfg, spoke_peers, Box::new(TestRng::new(1)));
    let now = Instant::now();
    let total0 = TOTAL.load(Relaxed);
    let t0 = Instant::now();
    let cpu0 = thread_cpu();
    let mut up = 0;
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        for &i in batch {
            spokes
                .initiate(now, &format!("hub{i}"), spoke_addr, hub_addr)
                .unwrap();
        }
        up += pump(now, &mut spokes, &mut hub);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu0;
    let churn = TOTAL.load(Relaxed) - total0;
    assert_eq!(up, n, "every IKE SA came up");
    drop(spokes);
    let live_hub = LIVE.load(Relaxed);
    // What a reload that replaces the connection list costs the engine (index and pools).
    let again = hub_peers(n, spoke_addr.ip());
    let (t1, cpu1) = (Instant::now(), thread_cpu());
    hub.set_peers(again);
    let (reload, reload_cpu) = (t1.elapsed().as_secs_f64(), thread_cpu() - cpu1);
    println!(
        "N={n}: {secs:.3} s wall, {cpu:.2} s CPU, {:.1} us CPU/SA (both sides), hub config {} \
         B/peer, hub {} B/SA established, {} B/SA allocated in all (both sides), set_peers \
         {:.1} ms wall {:.0} ms CPU",
        cpu * 1e6 / n as f64,
        (live_hub_config - live0) / n,
        (live_hub - live_hub_config) / n,
        churn / n,
        reload * 1e3,
        reload_cpu * 1e3,
    );
}

fn main() {
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number of SAs"))
        .collect();
    let ns = if ns.is_empty() {
        vec![1000, 10_000]
    } else {
        ns
    };
    for n in ns {
        run(n);
    }
}
