//! What a client of the metrics endpoint or the control socket may hold (issue 19, findings 1
//! and 4): a gateway run with a low descriptor limit (`prlimit --nofile=128:256`; the daemon
//! raises the soft limit to the hard one) is flooded with 400 idle TCP connections to its metrics
//! port, re-opened as the daemon closes them, for more than ten seconds. Meanwhile
//! `ironsecctl status` and `reload` answer, WATCHDOG=1 keeps coming to a notify socket the test
//! reads (WATCHDOG_USEC as systemd sets it), a ping crosses the tunnel, refused clients are told
//! 503, and the log grows by a handful of lines. Then: an idle control client and an idle
//! metrics client are dropped after the read deadline, a 10 MiB control request without a
//! newline is refused with an error while the daemon's peak RSS stays put, and the 17th
//! concurrent control client is told the socket is busy. A second test gives the daemon only 64
//! descriptors, so the same flood makes accept() fail (EMFILE): one warning per listener, the
//! keep-alives and the tunnel unharmed, and one line counting the failures when it is over.
//!
//!   lanA 10.1.0.2 - gwA 192.0.2.1 ==== 192.0.2.2 gwB - lanB 10.2.0.2
//!
//! Needs root: `#[ignore = "needs root"]`, FAILS (never skips) without it. Run:
//! `cargo test -p ironsecd --test client_limits -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const METRICS: &str = "127.0.0.1:9815";
/// Connections the flood keeps open: more than the daemon's 256 descriptors.
const FLOOD_CONNECTIONS: usize = 400;
/// The daemon's descriptor limit (hard); it starts with a soft limit of half that.
const NOFILE_HARD: u64 = 256;
/// How long the flood lasts at most, whatever happens to the test.
const FLOOD_MAX: Duration = Duration::from_secs(40);
/// The daemon's read deadline (crates/ironsecd/src/limits.rs, README "Limits").
const READ_DEADLINE: Duration = Duration::from_secs(5);
const WATCHDOG_USEC: u64 = 2_000_000;
/// How long ironsecctl may take to get an answer during the flood.
const CTL_DEADLINE: Duration = Duration::from_secs(3);

fn wait_up(d: &Daemon, conn: &str) {
    let ok = poll_until(Duration::from_secs(20), || {
        conn_tunnel(&d.status(), conn)["state"] == "up"
    });
    assert!(ok, "{conn} not up within 20 s\nlog:\n{}", d.log_text());
}

/// `ironsecctl ARGS`, killed after `deadline` (a daemon whose accept loop is stuck never
/// answers; one that works answers in milliseconds).
fn ctl(d: &Daemon, args: &[&str], deadline: Duration) -> std::process::Output {
    run_timeout(
        std::process::Command::new(env!("CARGO_BIN_EXE_ironsecctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args),
        deadline,
    )
}

fn log_lines(d: &Daemon) -> usize {
    d.log_text().lines().count()
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct FloodStats {
    connects: u64,
    connect_failures: u64,
    refused_503: u64,
    most_open: usize,
}

/// Keeps `FLOOD_CONNECTIONS` connections to the metrics port open, sending nothing and
/// re-opening each one the daemon closes, until `stop` (or `FLOOD_MAX`). Runs inside the
/// gateway's namespace.
fn flood(stop: Arc<AtomicBool>) -> FloodStats {
    let addr: SocketAddr = METRICS.parse().unwrap();
    let mut conns: Vec<Option<TcpStream>> = (0..FLOOD_CONNECTIONS).map(|_| None).collect();
    let mut st = FloodStats::default();
    let end = Instant::now() + FLOOD_MAX;
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        for slot in conns.iter_mut() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let closed = match slot {
                None => true,
                Some(s) => match s.read(&mut buf) {
                    Ok(0) => true,
                    Ok(n) => {
                        if buf[..n].starts_with(b"HTTP/1.1 503") {
                            st.refused_503 += 1;
                        }
                        true
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                    Err(_) => true,
                },
            };
            if closed {
                st.connects += 1;
                *slot = match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                    Ok(s) => {
                        s.set_nonblocking(true).unwrap();
                        Some(s)
                    }
                    Err(_) => {
                        st.connect_failures += 1;
                        None
                    }
                };
            }
        }
        st.most_open = st.most_open.max(conns.iter().flatten().count());
        std::thread::sleep(Duration::from_millis(300));
    }
    st
}

/// Records when each WATCHDOG=1 arrives on `sock`, until `stop`; returns the socket, so that
/// it stays bound.
fn watch_keepalives(
    sock: UnixDatagram,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Instant>>>,
) -> UnixDatagram {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        if let Ok(n) = sock.recv(&mut buf) {
            if buf[..n].split(|&b| b == b'\n').any(|l| l == b"WATCHDOG=1") {
                seen.lock().unwrap().push(Instant::now());
            }
        }
    }
    sock
}

/// One scrape: the first line of the answer, or the error.
fn scrape(ns: &str) -> Result<String, String> {
    in_netns(ns, || {
        let addr: SocketAddr = METRICS.parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        Ok(line.trim_end().to_string())
    })
}

/// Connects to the control socket, sends nothing and waits up to `wait` for the daemon to
/// close: Ok(how long it took) or Err(what happened instead).
fn idle_control_client(socket: &Path, wait: Duration) -> Result<Duration, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(wait)).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Ok(t0.elapsed()),
        Ok(n) => Err(format!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&buf[..n])
        )),
        Err(e) => Err(format!("still open after {:?} ({e})", t0.elapsed())),
    }
}

/// Connects to the metrics port, sends nothing and returns what the daemon says (or the error)
/// within `wait`.
fn idle_metrics_client(ns: &str, wait: Duration) -> (Duration, Result<String, String>) {
    in_netns(ns, move || {
        let mut s = TcpStream::connect(METRICS).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let r = s
            .read_to_end(&mut out)
            .map(|_| String::from_utf8_lossy(&out).into_owned())
            .map_err(|e| format!("{e}"));
        (t0.elapsed(), r)
    })
}

/// Sends `len` bytes without a newline to the control socket and returns the first line the
/// daemon answers within `wait` (or the error).
fn oversized_request(socket: &Path, len: usize, wait: Duration) -> Result<String, String> {
    let s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(wait)).unwrap();
    s.set_write_timeout(Some(wait)).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            match w.write(&chunk[..chunk.len().min(len - sent)]) {
                Ok(n) => sent += n,
                Err(_) => break, // the daemon closed (EPIPE) or stopped reading
            }
        }
        sent
    });
    let mut line = String::new();
    let r = BufReader::new(s).read_line(&mut line);
    let sent = writer.join().unwrap();
    println!("oversized request: {sent} of {len} bytes written");
    match r {
        Ok(n) if n > 0 => Ok(line.trim_end().to_string()),
        Ok(_) => Err("closed without an answer".into()),
        Err(e) => Err(format!("no answer within {wait:?}: {e}")),
    }
}

/// gwA (metrics on, a notify socket the test reads, run under `prlimit --nofile=NOFILE`) with
/// a tunnel up to gwB. Fields drop in order: daemons, then namespaces, then files.
struct Gateways {
    a: Daemon,
    _b: Daemon,
    notify: UnixDatagram,
    topo: Topology,
    _dir: TempDir,
}

fn gateways(nofile: &str) -> Gateways {
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let psk = write_psk(&dir, "ab.psk");
    let (sa, sb) = (dir.join("a.sock"), dir.join("b.sock"));
    let (ca, cb) = (dir.join("gw-a.toml"), dir.join("gw-b.toml"));
    let conn = |name, lid, rid, lts, rts, local, remote, start| {
        conn_toml(&Conn {
            name,
            local_id: lid,
            remote_id: rid,
            psk_file: &psk,
            local_ts: lts,
            remote_ts: rts,
            local,
            remote,
            start_action: start,
            extra: "",
        })
    };
    let (ip_a, ip_b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    fs::write(
        &ca,
        gateway_toml(&sa, &format!("metrics = \"{METRICS}\""))
            + &conn(
                "site-b",
                "gw-a.example",
                "gw-b.example",
                "10.1.0.0/24",
                "10.2.0.0/24",
                ip_a,
                ip_b,
                "start",
            ),
    )
    .unwrap();
    fs::write(
        &cb,
        gateway_toml(&sb, "")
            + &conn(
                "site-a",
                "gw-b.example",
                "gw-a.example",
                "10.2.0.0/24",
                "10.1.0.0/24",
                ip_b,
                ip_a,
                "none",
            ),
    )
    .unwrap();
    let _b = Daemon::start("gwB", &topo.gw_b, &cb, &sb, dir.join("ironsecd-b.log"));
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let a = Daemon::start_wrapped(
        "gwA",
        &topo.gw_a,
        &ca,
        &sa,
        dir.join("ironsecd-a.log"),
        None,
        &[
            ("NOTIFY_SOCKET", notify_path.display().to_string()),
            ("WATCHDOG_USEC", WATCHDOG_USEC.to_string()),
        ],
        &["prlimit".into(), format!("--nofile={nofile}")],
    );
    wait_up(&a, "site-b");
    Gateways {
        a,
        _b,
        notify,
        topo,
        _dir: dir,
    }
}

/// The flood and the keep-alive watcher while they run.
struct Flooding {
    stop: Arc<AtomicBool>,
    start: Instant,
    lines_before: usize,
    flooder: Option<std::thread::JoinHandle<FloodStats>>,
    watcher: Option<std::thread::JoinHandle<UnixDatagram>>,
    keepalives: Arc<Mutex<Vec<Instant>>>,
}

/// What a flood did.
struct FloodReport {
    stats: FloodStats,
    window: Duration,
    beats: usize,
    worst_gap: Duration,
    log_grew: usize,
    /// The notify socket, still bound.
    _notify: UnixDatagram,
}

impl Flooding {
    /// Starts flooding gwA's metrics port and recording the keep-alives on `notify`.
    fn start(a: &Daemon, ns: &str, notify: UnixDatagram) -> Flooding {
        let stop = Arc::new(AtomicBool::new(false));
        let keepalives = Arc::new(Mutex::new(Vec::new()));
        let watcher = {
            let (stop, seen) = (stop.clone(), keepalives.clone());
            std::thread::spawn(move || watch_keepalives(notify, stop, seen))
        };
        let lines_before = log_lines(a);
        let start = Instant::now();
        let flooder = {
            let (stop, ns) = (stop.clone(), ns.to_string());
            std::thread::spawn(move || in_netns(&ns, move || flood(stop)))
        };
        Flooding {
            stop,
            start,
            lines_before,
            flooder: Some(flooder),
            watcher: Some(watcher),
            keepalives,
        }
    }

    /// Stops the flood once it has lasted `at_least`.
    fn finish(mut self, a: &Daemon, at_least: Duration) -> FloodReport {
        while self.start.elapsed() < at_least {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop.store(true, Ordering::Relaxed);
        let window = self.start.elapsed();
        let stats = self.flooder.take().unwrap().join().unwrap();
        let notify = self.watcher.take().unwrap().join().unwrap();
        let log_grew = log_lines(a) - self.lines_before;
        let beats = self.keepalives.lock().unwrap().clone();
        let mut gaps: Vec<Duration> = beats.windows(2).map(|w| w[1] - w[0]).collect();
        if let (Some(first), Some(last)) = (beats.first(), beats.last()) {
            gaps.push(*first - self.start);
            gaps.push(self.start + window - *last);
        }
        if log_grew >= 20 {
            let log = a.log_text();
            let first: Vec<&str> = log.lines().skip(self.lines_before).take(5).collect();
            println!("first lines of the flood's log:\n{}", first.join("\n"));
        }
        FloodReport {
            stats,
            window,
            beats: beats.len(),
            worst_gap: gaps.iter().max().copied().unwrap_or(window),
            log_grew,
            _notify: notify,
        }
    }
}

impl Drop for Flooding {
    /// Stops the threads however the test ends.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Collects checks, so that one run reports each that fails (the tests ran once against the
/// daemon before issue 19's fix: each check marked so in the module doc failed there).
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check(&mut self, ok: bool, what: String) {
        println!("{} {what}", if ok { "ok:    " } else { "FAILED:" });
        if !ok {
            self.0.push(what);
        }
    }

    fn assert_all(self, d: &Daemon) {
        assert!(
            self.0.is_empty(),
            "{} check(s) failed:\n  {}\nlog of {} (first 200 lines):\n{}",
            self.0.len(),
            self.0.join("\n  "),
            d.name,
            d.log_text()
                .lines()
                .take(200)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
#[ignore = "needs root"]
fn a_connection_flood_leaves_control_watchdog_and_tunnel_working() {
    let _s = serial();
    let g = gateways(&format!("{}:{NOFILE_HARD}", NOFILE_HARD / 2));
    let (a, notify) = (&g.a, g.notify.try_clone().unwrap());
    let ns = a.ns.clone();
    let pid = a.proc_.pid();

    let mut checks = Checks::default();
    let mut check = |ok: bool, what: String| checks.check(ok, what);

    // The soft limit was raised to the hard one, and said so.
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let soft: u64 = nofile.split_whitespace().nth(3).unwrap().parse().unwrap();
    check(
        soft == NOFILE_HARD && a.log_text().contains("descriptor limit raised"),
        format!("soft descriptor limit raised to the hard one and logged: {nofile}"),
    );

    let flooding = Flooding::start(a, &ns, notify);
    std::thread::sleep(Duration::from_secs(2));
    let fds_during = open_fds(pid);
    let status = ctl(a, &["status", "--json"], CTL_DEADLINE);
    check(
        status.status.success(),
        format!(
            "status during the flood (within {CTL_DEADLINE:?}): {}",
            String::from_utf8_lossy(&status.stderr).trim_end()
        ),
    );
    let reload = ctl(a, &["reload"], CTL_DEADLINE);
    check(
        reload.status.success(),
        format!(
            "reload during the flood (within {CTL_DEADLINE:?}): {}{}",
            String::from_utf8_lossy(&reload.stdout).trim_end(),
            String::from_utf8_lossy(&reload.stderr).trim_end()
        ),
    );
    let scraped = scrape(&ns);
    let run = ping_paced(
        &g.topo.lan_a,
        Ipv4Addr::new(10, 2, 0, 2),
        20,
        pattern_payload(b"ironsec-client-limits", 56),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let fds_late = open_fds(pid);
    let r = flooding.finish(a, Duration::from_secs(11));
    let stats = &r.stats;
    let worst_gap = r.worst_gap;
    println!(
        "flood of {FLOOD_CONNECTIONS} connections for {:?}: {stats:?}; daemon fds {fds_during} / {fds_late} \
         (limit {NOFILE_HARD}); log +{} lines; {} keep-alives, longest gap {worst_gap:?}; \
         scrape: {scraped:?}; ping {}/{}",
        r.window,
        r.log_grew,
        r.beats,
        run.received(),
        run.sent()
    );
    check(
        stats.most_open + stats.refused_503 as usize > NOFILE_HARD as usize,
        format!("the flood exceeded the descriptor limit: {stats:?}"),
    );
    check(
        stats.refused_503 > 0,
        format!(
            "clients beyond the cap were told 503: {}",
            stats.refused_503
        ),
    );
    check(
        matches!(&scraped, Ok(l) if l.starts_with("HTTP/1.1 200") || l.starts_with("HTTP/1.1 503")),
        format!("a scrape during the flood got an answer: {scraped:?}"),
    );
    check(
        run.received() >= 18,
        format!(
            "ping through the tunnel during the flood: {} of {}",
            run.received(),
            run.sent()
        ),
    );
    let interval = Duration::from_micros(WATCHDOG_USEC / 2);
    check(
        worst_gap <= interval * 5 / 2,
        format!(
            "WATCHDOG=1 every {interval:?} during the flood: {} beats, longest gap {worst_gap:?}",
            r.beats
        ),
    );
    check(
        r.log_grew < 20,
        format!(
            "the log grew by {} lines during the flood (< 20)",
            r.log_grew
        ),
    );

    // Idle clients are dropped after the read deadline: the control socket closes, the
    // metrics endpoint answers 408 first.
    let idle = idle_control_client(&a.socket, READ_DEADLINE * 2);
    check(
        matches!(idle, Ok(took) if took >= READ_DEADLINE - Duration::from_millis(500)),
        format!("an idle control client is closed at the read deadline: {idle:?}"),
    );
    let (took, answer) = idle_metrics_client(&ns, READ_DEADLINE * 2);
    check(
        matches!(&answer, Ok(a) if a.starts_with("HTTP/1.1 408")),
        format!(
            "an idle metrics client is told 408 at the read deadline: {answer:?} after {took:?}"
        ),
    );

    // A 10 MiB request without a newline: refused with an error, nothing kept.
    let hwm_before = proc_kb(pid, "VmHWM");
    let answer = oversized_request(&a.socket, 10 << 20, Duration::from_secs(10));
    let hwm_after = proc_kb(pid, "VmHWM");
    println!(
        "oversized control request: {answer:?}; VmHWM {hwm_before} -> {hwm_after} kB, VmRSS {} kB",
        proc_kb(pid, "VmRSS")
    );
    check(
        matches!(&answer, Ok(l) if l.contains("\"error\"") && l.contains("request longer than")),
        format!("a 10 MiB control request is refused with an error: {answer:?}"),
    );
    check(
        hwm_after < hwm_before + 4 * 1024,
        format!("peak RSS stays within 4 MiB: {hwm_before} kB -> {hwm_after} kB"),
    );

    // The 17th concurrent control client is told the socket is busy; once the idle ones are
    // dropped, status works again.
    let held: Vec<UnixStream> = (0..16)
        .map(|_| UnixStream::connect(&a.socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let busy = ctl(a, &["status"], CTL_DEADLINE);
    let said =
        String::from_utf8_lossy(&busy.stderr).into_owned() + &String::from_utf8_lossy(&busy.stdout);
    check(
        !busy.status.success() && said.contains("too many control clients"),
        format!("the 17th control client is told the socket is busy: {said:?}"),
    );
    let ok = poll_until(READ_DEADLINE * 2, || ctl_status(&a.socket).is_ok());
    drop(held);
    check(
        ok,
        "status answers again once the idle clients are dropped".into(),
    );
    let up = ctl_status(&a.socket).map(|st| conn_tunnel(&st, "site-b")["state"].clone());
    check(
        matches!(&up, Ok(s) if s == "up"),
        format!("the tunnel is still up at the end: {up:?}"),
    );
    checks.assert_all(a);
}

#[test]
#[ignore = "needs root"]
fn running_out_of_descriptors_is_backed_off_and_logged_once() {
    let _s = serial();
    // 64 descriptors: fewer than the metrics endpoint's cap of 64 clients plus what the daemon
    // holds anyway, so the flood makes accept() fail with EMFILE, as a host-wide shortage
    // (ENFILE) or a misjudged limit would.
    let g = gateways("64:64");
    let (a, notify) = (&g.a, g.notify.try_clone().unwrap());
    let ns = a.ns.clone();
    let pid = a.proc_.pid();
    let mut checks = Checks::default();
    let mut check = |ok: bool, what: String| checks.check(ok, what);

    let flooding = Flooding::start(a, &ns, notify);
    std::thread::sleep(Duration::from_secs(2));
    let fds_during = open_fds(pid);
    let run = ping_paced(
        &g.topo.lan_a,
        Ipv4Addr::new(10, 2, 0, 2),
        20,
        pattern_payload(b"ironsec-client-limits", 56),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let r = flooding.finish(a, Duration::from_secs(11));
    let log = a.log_text();
    let backoff_lines = log.matches("accept failed; backing off").count();
    println!(
        "flood of {FLOOD_CONNECTIONS} connections for {:?}: {:?}; daemon fds {fds_during} (limit 64); \
         log +{} lines ({backoff_lines} back-off warnings); {} keep-alives, longest gap {:?}; ping {}/{}",
        r.window,
        r.stats,
        r.log_grew,
        r.beats,
        r.worst_gap,
        run.received(),
        run.sent()
    );
    check(
        fds_during >= 60,
        format!("the flood used up the daemon's descriptors: {fds_during} of 64"),
    );
    check(
        (1..=2).contains(&backoff_lines),
        format!("one back-off warning per listener, not one per failure: {backoff_lines}"),
    );
    check(
        r.log_grew < 20,
        format!(
            "the log grew by {} lines during the flood (< 20)",
            r.log_grew
        ),
    );
    let interval = Duration::from_micros(WATCHDOG_USEC / 2);
    check(
        r.worst_gap <= interval * 5 / 2,
        format!(
            "WATCHDOG=1 every {interval:?} while out of descriptors: {} beats, longest gap {:?}",
            r.beats, r.worst_gap
        ),
    );
    check(
        run.received() >= 18,
        format!(
            "ping through the tunnel while out of descriptors: {} of {}",
            run.received(),
            run.sent()
        ),
    );

    // The flood's connections are dropped at the read deadline; once accepts have worked for
    // the quiet period (10 s), the episode ends with one line counting its failures.
    let recovered = poll_until(Duration::from_secs(25), || {
        let _ = scrape(&ns);
        std::thread::sleep(Duration::from_millis(500));
        a.log_text().contains("accept works again")
    });
    let log = a.log_text();
    let summary = log
        .lines()
        .find(|l| l.contains("accept works again"))
        .unwrap_or("");
    check(
        recovered && summary.contains("failures="),
        format!("the episode's end is logged with its count: {summary:?}"),
    );
    check(
        ctl_status(&a.socket).is_ok(),
        "status answers after the flood".into(),
    );
    checks.assert_all(a);
}
