//! CPU time of one side's Diffie-Hellman per group (key pair + agreement, what a responder
//! spends per IKE_SA_INIT), read from the kernel's per-thread CPU accounting rather than the
//! clock, so the figure holds on a machine that is busy with other work (where the criterion
//! bench, `cargo bench -p ironsec-ike --bench dh`, measures wall time).
//!
//! `cargo run --release -p ironsec-ike --example dh_cost [SECONDS_PER_GROUP]` (Linux).

use std::time::{Duration, Instant};

use ironsec_ike::crypto::{DhGroup, KeyExchange, TestRng};

/// CPU time (user + system) this thread has used, from /proc/thread-self/stat.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux /proc");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().expect("stat field"))
        .collect();
    // USER_HZ is 100 on every Linux architecture we run on.
    Duration::from_millis((f[0] + f[1]) * 10)
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seconds"))
        .unwrap_or(2.0);
    let mut rng = TestRng::new(1);
    println!("group          exchange (keygen + agree), CPU time per side");
    for g in DhGroup::ALL {
        let peer = KeyExchange::new(g, &mut rng);
        let (wall, cpu0) = (Instant::now(), thread_cpu());
        let mut n = 0u32;
        while wall.elapsed().as_secs_f64() < secs || n < 3 {
            let k = KeyExchange::new(g, &mut rng);
            std::hint::black_box(k.agree(peer.public()).unwrap());
            n += 1;
        }
        let cpu = thread_cpu() - cpu0;
        println!(
            "{:<14} {:>9.3} ms   ({n} exchanges, {:.2} s CPU in {:.2} s)",
            g.name(),
            cpu.as_secs_f64() * 1e3 / f64::from(n),
            cpu.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
    }
}
