//! What an idle control plane costs per timer round, by number of tunnels. Measure with
//! `IRONSEC_PLANE_BENCH_SIZES=100,1000,4000 cargo test -p ironsecd --release --lib plane::bench
//! -- --nocapture`; it prints times and asserts nothing about them, only that every tunnel came
//! up and that an idle plane has nothing due. The test suite runs it at 100 tunnels (the
//! default) as that check. It also times a drain's 100 ms sample and its close of every IKE
//! SA (`plane/drain.rs`).
//!
//! [`bring_up_per_event`] times one connection coming up again while every other one is up
//! (the initiator's plane only: its engine's and the plane's work per event), at the sizes of
//! `IRONSEC_PLANE_BRINGUP_SIZES` (default 100): the cost per event should not grow with the
//! number of tunnels, e.g. `IRONSEC_PLANE_BRINGUP_SIZES=1000,10000 cargo test -p ironsecd
//! --release --lib plane::bench::bring_up -- --nocapture`.

use std::time::{Duration, Instant};

use super::tests::ConfFile;
use super::Plane;
use crate::testutil::settle;

/// `n` tunnels, every one up (an IKE SA and a CHILD_SA each) and idle: either one tunnel
/// per connection, or two (active-standby) so the liveness tick has work.
pub(super) fn configs(n: usize, two_per_connection: bool) -> (String, String) {
    let gw = "[gateway]\ntun = \"ipsec0\"\nport = 4500\nike_port = 500\n";
    let (mut a, mut b) = (gw.to_string(), gw.to_string());
    let conns = if two_per_connection { n / 2 } else { n };
    for i in 0..conns {
        let (hi, lo) = (i / 256, i % 256);
        let mut ta =
            format!("{{ local = \"192.0.2.1\", remote = \"100.64.{hi}.{lo}\", priority = 100 }}");
        let mut tb =
            format!("{{ local = \"100.64.{hi}.{lo}\", remote = \"192.0.2.1\", priority = 100 }}");
        let mut mode = String::new();
        if two_per_connection {
            ta += &format!(
                ", {{ local = \"198.51.100.1\", remote = \"100.65.{hi}.{lo}\", priority = 50 }}"
            );
            tb += &format!(
                ", {{ local = \"100.65.{hi}.{lo}\", remote = \"198.51.100.1\", priority = 50 }}"
            );
            mode = "mode = \"active-standby\"\n".into();
        }
        let conn =
            |name: &str, me: &str, peer: &str, lts: &str, rts: &str, start: &str, t: &str| {
                format!(
                    "[[connection]]\nname = \"{name}\"\nkeying = \"ike\"\nlocal_id = \"{me}\"\n\
                 remote_id = \"{peer}\"\npsk = \"0123456789abcdef0123456789abcdef\"\n\
                 local_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n\
                 ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\n\
                 esp_proposals = [\"aes256gcm16\"]\nstart_action = \"{start}\"\n{mode}\
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
            "start",
            &ta,
        );
        b += &conn(
            &format!("h{i}"),
            &format!("b{i}.example"),
            &format!("a{i}.example"),
            &site,
            &hub,
            "none",
            &tb,
        );
    }
    (a, b)
}

/// Mean time of `f` over `rounds` calls.
fn mean(rounds: u32, mut f: impl FnMut(u32)) -> Duration {
    let t = Instant::now();
    for i in 0..rounds {
        f(i);
    }
    t.elapsed() / rounds
}

/// Sizes from `IRONSEC_PLANE_BENCH_SIZES` (comma-separated tunnel counts), default 100.
fn sizes() -> Vec<usize> {
    sizes_of("IRONSEC_PLANE_BENCH_SIZES")
}

/// Tunnel counts from environment variable `var` (comma-separated), default 100.
fn sizes_of(var: &str) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("{var}: tunnel counts"))
                })
                .collect()
        })
        .unwrap_or_else(|| vec![100])
}

#[test]
fn idle_cost() {
    for two in [false, true] {
        for n in sizes() {
            let (ca, cb) = configs(n, two);
            let (fa, fb) = (ConfFile::new("bench-a", &ca), ConfFile::new("bench-b", &cb));
            let mut a = Plane::new(fa.load(), 1).unwrap();
            let mut b = Plane::new(fb.load(), 1).unwrap();
            let mut now = Instant::now();
            a.start_tunnels(now);
            let all_up = |a: &Plane| a.specs().iter().all(|s| a.sas().is_sending(&s.key()));
            // The responder admits so many half-open SAs at once; the rest retransmit.
            for _ in 0..120 {
                settle(&mut a, &mut b, now);
                if all_up(&a) {
                    break;
                }
                now += Duration::from_millis(500);
                a.on_timeout(now);
                b.on_timeout(now);
            }
            assert!(all_up(&a), "every tunnel is up");
            // A moment later: nothing is due (rekeys and DPD are far away).
            now += Duration::from_millis(10);
            a.on_timeout(now);
            assert!(
                a.next_deadline().is_none_or(|d| d > now),
                "an idle plane has nothing due"
            );
            // What the daemon's 100 ms timer does now (bandwidth sharing only, off here).
            let tick = mean(100, |i| {
                a.reshare(now + Duration::from_millis(100) * i);
                a.drain_events(now);
            });
            let deadline = mean(1000, |_| {
                std::hint::black_box(a.next_deadline());
            });
            let engine_deadline = mean(1000, |_| {
                std::hint::black_box(a.ep.poll_timeout());
            });
            let timeout = mean(1000, |_| a.on_timeout(now));
            let engine_timeout = mean(1000, |_| a.ep.handle_timeout(now));
            // One volume look per CHILD_SA (what each costs when its deadline comes, at
            // most every MIN_CHECK and every MAX_CHECK when idle): all made due at once.
            let spis: Vec<u32> = a.volume_samples.keys().copied().collect();
            let looks = spis.len().max(1) as u32;
            let volume_look = mean(10, |_| {
                for s in &spis {
                    a.volume.set(*s, now);
                }
                a.check_volumes(now);
            }) / looks;
            assert!(
                a.volume.next().is_some_and(|d| d > now),
                "every SA looked at has its next look filed"
            );
            println!(
                "{n:>5} tunnels ({}): tick {tick:>10.1?}  next_deadline {deadline:>10.1?} (engine {engine_deadline:>10.1?})  on_timeout {timeout:>10.1?} (engine {engine_timeout:>10.1?})  volume look per CHILD_SA {volume_look:>8.1?}",
                if two { "2 per connection" } else { "1 per connection" }
            );
            // A drain's 100 ms sample (every tunnel's counters, the connections up), then
            // its close of every IKE SA under the plane's lock (plane/drain.rs).
            let sample = mean(100, |_| {
                std::hint::black_box((a.traffic_packets(), a.drain_ready()));
            });
            let t = Instant::now();
            let deleted = a.drain_close(now);
            let close = t.elapsed();
            assert_eq!(deleted, n, "one IKE SA per tunnel deleted");
            println!(
                "{n:>5} tunnels ({}): drain sample {sample:>10.1?}  drain close {close:>10.1?}",
                if two {
                    "2 per connection"
                } else {
                    "1 per connection"
                }
            );
        }
    }
}

/// Both planes up with `n` tunnels, one per connection: A initiates every one.
pub(super) fn all_up(n: usize, tag: &str, now: &mut Instant) -> (Plane, Plane, ConfFile, ConfFile) {
    let (ca, cb) = configs(n, false);
    let (fa, fb) = (
        ConfFile::new(&format!("{tag}-a"), &ca),
        ConfFile::new(&format!("{tag}-b"), &cb),
    );
    let mut a = Plane::new(fa.load(), 1).unwrap();
    let mut b = Plane::new(fb.load(), 1).unwrap();
    a.start_tunnels(*now);
    let up = |a: &Plane| a.specs().iter().all(|s| a.sas().is_sending(&s.key()));
    for _ in 0..120 {
        settle(&mut a, &mut b, *now);
        if up(&a) {
            break;
        }
        *now += Duration::from_millis(500);
        a.on_timeout(*now);
        b.on_timeout(*now);
    }
    assert!(up(&a), "every tunnel is up");
    (a, b, fa, fb)
}

/// This thread's CPU time: what a call cost, however busy the machine's other cores are
/// and whoever else had this one meanwhile.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Like [`settle`], one message or event at a time, timing A's calls only (thread CPU
/// time): returns A's time, the part of it spent applying engine events (the plane's own
/// work: `drain_events`), and the number of calls made into A (datagrams handled and event
/// batches).
fn settle_timed(a: &mut Plane, b: &mut Plane, now: Instant) -> (Duration, Duration, u32) {
    let (mut spent, mut events, mut calls) = (Duration::ZERO, Duration::ZERO, 0);
    loop {
        let mut moved = false;
        let t = cpu_now();
        a.drain_events(now);
        events += cpu_now() - t;
        let mut out = Vec::new();
        while let Some(t) = a.poll_transmit() {
            out.push(t);
        }
        spent += cpu_now() - t;
        calls += 1;
        for t in out {
            b.on_ike_datagram(now, t.remote, t.local, &t.payload);
            moved = true;
        }
        b.drain_events(now);
        while let Some(t) = b.poll_transmit() {
            let s = cpu_now();
            a.on_ike_datagram(now, t.remote, t.local, &t.payload);
            // The daemon drains the events of every message it handles (its batch).
            let e = cpu_now();
            a.drain_events(now);
            events += cpu_now() - e;
            spent += cpu_now() - s;
            calls += 1;
            moved = true;
        }
        if !moved {
            return (spent, events, calls);
        }
    }
}

/// One connection brought up again (the operator's terminate, then initiate, at one moment:
/// no other timer comes due) while every other connection is up: A's CPU time per call (an IKE
/// message handled, a batch of events applied, the initiate) and per connection. Flat in
/// the number of tunnels when per-event work is per connection.
#[test]
fn bring_up_per_event() {
    const AGAIN: usize = 20;
    for n in sizes_of("IRONSEC_PLANE_BRINGUP_SIZES") {
        let mut now = Instant::now();
        let (mut a, mut b, _fa, _fb) = all_up(n, "bringup", &mut now);
        let (mut spent, mut events, mut calls) = (Duration::ZERO, Duration::ZERO, 0);
        let mut restarted = 0;
        // Spread over the config: the first, the last and some between.
        for j in 0..AGAIN.min(n) {
            let i = j * (n - 1) / AGAIN.min(n).saturating_sub(1).max(1);
            let name = format!("s{i}");
            a.terminate(&name, now).unwrap();
            settle(&mut a, &mut b, now);
            let key = a.specs()[i].key();
            assert!(!a.sas().is_sending(&key), "{name} is down");
            let t = cpu_now();
            a.initiate(&name, now).unwrap();
            spent += cpu_now() - t;
            calls += 1;
            let (s, e, c) = settle_timed(&mut a, &mut b, now);
            spent += s;
            events += e;
            calls += c;
            assert!(a.sas().is_sending(&key), "{name} is up again");
            restarted += 1;
        }
        println!(
            "{n:>5} tunnels: bring-up of one connection among them: {:>10.1?} per call into the plane ({} calls), {:>10.1?} per connection, of which {:>10.1?} applying engine events",
            spent / calls.max(1),
            calls,
            spent / restarted.max(1),
            events / restarted.max(1),
        );
    }
}
