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
    let hub_peers: Vec<_> = (0..n)
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
            p.remote_addrs = vec![spoke_addr.ip()];
            p.dpd_interval = None;
            p
        })
        .collect();
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
    let mut hub = Endpoint::new(cfg.clone(), hub_peers, Box::new(TestRng::new(2)));
    let live_hub_config = LIVE.load(Relaxed);
    let mut spokes = Endpoint::new(cfg, spoke_peers, Box::new(TestRng::new(1)));
    let now = Instant::now();
    let total0 = TOTAL.load(Relaxed);
    let t0 = Instant::now();
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
    let churn = TOTAL.load(Relaxed) - total0;
    assert_eq!(up, n, "every IKE SA came up");
    drop(spokes);
    let live_hub = LIVE.load(Relaxed);
    println!(
        "N={n}: {secs:.3} s, {:.1} us/SA (both sides), hub config {} B/peer, hub {} B/SA \
         established, {} B/SA allocated in all (both sides)",
        secs * 1e6 / n as f64,
        (live_hub_config - live0) / n,
        (live_hub - live_hub_config) / n,
        churn / n,
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
