//! BIRD 2 (Debian `bird2`) under guard in a gateway namespace, and `birdc` queries against it:
//! protocols (BGP sessions), routes of its table, BFD sessions, with deadlines.
//!
//! Each instance has its own config, control socket (`-s`), pid file (`-P`) and log, all in the
//! test's directory; it runs in the foreground (`-f`) as a child of the test, which kills it by
//! PID when the guard is dropped (SIGTERM: BIRD then removes the routes it put in the kernel).
//! It runs with TZ=UTC, so the times in its log and in `birdc` answers are UTC, comparable with
//! the test's `SystemTime`. The configs under conf/bird/ set `timeformat ... "%F %T.%3f"`
//! (milliseconds); [`bird_time`] reads that format.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{ns_cmd, poll_until, run_timeout, BgProc};

pub const BIRD: &str = "bird";
pub const BIRDC: &str = "birdc";

/// One line of `birdc show protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdProtocol {
    pub name: String,
    /// "BGP", "BFD", "Kernel", "Direct", "Device", ...
    pub proto: String,
    /// "up", "start", "down", ...
    pub state: String,
    /// For BGP: "Established", "Active", "Connect", ..., possibly with the last error after it.
    pub info: String,
}

impl BirdProtocol {
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// One route of `birdc show route` (a network with several routes gives several).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdRoute {
    pub net: String,
    /// The protocol that brought it ("spoke_b", "direct1", ...).
    pub from: String,
    /// The best route for its network (BIRD's `*`): the one exported to the kernel.
    pub primary: bool,
    /// Next hop address, if any ("via X on IF").
    pub via: Option<String>,
    /// Interface ("on IF" or "dev IF").
    pub iface: Option<String>,
    /// The AS path as BIRD shows it in brackets, e.g. "AS65020i" (the origin AS and code).
    pub attrs: String,
}

/// One line of `birdc show bfd sessions`.
#[derive(Clone, Debug, PartialEq)]
pub struct BfdSession {
    pub addr: String,
    pub iface: String,
    /// "Up", "Down", "Init", "AdminDown".
    pub state: String,
    /// When the session entered its state (UTC; None if BIRD's time format was not understood).
    pub since: Option<SystemTime>,
    /// Negotiated transmit interval and detection timeout, seconds.
    pub interval: f64,
    pub timeout: f64,
}

/// "2026-12-07 03:37:16.339" (the configs' "%F %T.%3f", UTC) as a SystemTime.
pub fn bird_time(date: &str, time: &str) -> Option<SystemTime> {
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<u64>().ok()?,
        t.next()?.parse::<u64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + hh * 3600 + mm * 60;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_secs_f64(ss))
}

/// How many whitespace-separated fields a "since" column takes starting at `fields[i]`: two
/// for "DATE TIME" (the configs' format), one for a bare time (BIRD's default format).
fn since_at(fields: &[&str], i: usize) -> (Option<SystemTime>, usize) {
    match (fields.get(i), fields.get(i + 1)) {
        (Some(d), Some(t)) if d.len() == 10 && d.as_bytes()[4] == b'-' => (bird_time(d, t), 2),
        (Some(_), _) => (None, 1),
        _ => (None, 0),
    }
}

/// Parses `birdc show protocols`.
pub fn parse_protocols(text: &str) -> Vec<BirdProtocol> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[0] == "Name" || f[0] == "BIRD" {
            continue;
        }
        let (_, n) = since_at(&f, 4);
        out.push(BirdProtocol {
            name: f[0].to_string(),
            proto: f[1].to_string(),
            state: f[3].to_string(),
            info: f.get(4 + n..).map(|r| r.join(" ")).unwrap_or_default(),
        });
    }
    out
}

/// Parses `birdc show route` (BIRD 2 layout: a network line, more routes of the same network
/// indented, each followed by a tab-indented "via ... on ..." or "dev ..." line).
pub fn parse_routes(text: &str) -> Vec<BirdRoute> {
    let mut out: Vec<BirdRoute> = Vec::new();
    let mut net = String::new();
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        let t = line.trim();
        if line.starts_with('\t') {
            let f: Vec<&str> = t.split_whitespace().collect();
            if let Some(r) = out.last_mut() {
                match f.as_slice() {
                    ["via", addr, "on", dev, ..] => {
                        r.via = Some(addr.to_string());
                        r.iface = Some(dev.to_string());
                    }
                    ["dev", dev, ..] => r.iface = Some(dev.to_string()),
                    _ => {}
                }
            }
            continue;
        }
        let mut rest = t;
        if !line.starts_with(' ') {
            let (n, r) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            net = n.to_string();
            rest = r.trim_start();
        }
        // "unicast [spoke_c 03:37:16.290] * (100) [AS65020i]"
        let from = rest
            .split_once('[')
            .map(|(_, r)| r.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_default();
        let after = rest.split_once(']').map(|(_, r)| r).unwrap_or("");
        out.push(BirdRoute {
            net: net.clone(),
            from: from.trim_end_matches(']').to_string(),
            primary: after.trim_start().starts_with('*'),
            via: None,
            iface: None,
            attrs: after
                .rsplit_once('[')
                .map(|(_, a)| a.trim_end_matches(']').to_string())
                .unwrap_or_default(),
        });
    }
    out
}

/// Parses `birdc show bfd sessions`.
pub fn parse_bfd_sessions(text: &str) -> Vec<BfdSession> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5
            || f[0] == "IP"
            || f[0] == "BIRD"
            || f[0].parse::<std::net::IpAddr>().is_err()
        {
            continue;
        }
        let (since, n) = since_at(&f, 3);
        let num = |i: usize| {
            f.get(i)
                .and_then(|x| x.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        out.push(BfdSession {
            addr: f[0].to_string(),
            iface: f[1].to_string(),
            state: f[2].to_string(),
            since,
            interval: num(3 + n),
            timeout: num(4 + n),
        });
    }
    out
}

/// BIRD running in namespace `ns`, under guard (killed by PID on drop).
pub struct Bird {
    pub name: String,
    pub ns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    /// The file the config's `log` statement writes (what [`Bird::log_text`] reads).
    pub log: PathBuf,
    pub proc_: BgProc,
}

impl Bird {
    /// Starts `bird -f -c CONFIG -s DIR/NAME.bird.sock -P DIR/NAME.bird.pid` in `ns` and waits
    /// (up to 10 s) until birdc answers. `log` is where the config logs to (its stdout and
    /// stderr go to DIR/NAME.bird.out).
    pub fn start(name: &str, ns: &str, config: &Path, log: &Path, dir: &Path) -> Bird {
        let socket = dir.join(format!("{name}.bird.sock"));
        let pidfile = dir.join(format!("{name}.bird.pid"));
        let mut cmd = ns_cmd(ns, "env");
        cmd.args(["TZ=UTC", BIRD, "-f", "-c"])
            .arg(config)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(&pidfile);
        let proc_ = BgProc::spawn(
            &format!("bird {name}"),
            cmd,
            dir.join(format!("{name}.bird.out")),
        );
        let mut b = Bird {
            name: name.to_string(),
            ns: ns.to_string(),
            config: config.to_path_buf(),
            socket,
            pidfile,
            log: log.to_path_buf(),
            proc_,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = b.proc_.try_wait() {
                panic!(
                    "bird {name} exited during startup ({st}):\n{}\nlog:\n{}",
                    b.proc_.log_text(),
                    b.log_text()
                );
            }
            if b.birdc(&["show", "status"]).is_ok() {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "bird {name} did not answer birdc within 10 s:\n{}",
                b.proc_.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc_.pid()
    }

    /// What the config's log file holds so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `birdc -s SOCKET ARGS...` (5 s deadline): its output, or why it failed.
    pub fn birdc(&self, args: &[&str]) -> Result<String, String> {
        let out = run_timeout(
            Command::new(BIRDC).arg("-s").arg(&self.socket).args(args),
            Duration::from_secs(5),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !text.contains("Unable to connect") {
            Ok(text)
        } else {
            Err(format!(
                "birdc {args:?} ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `birdc` that must succeed.
    pub fn birdc_ok(&self, args: &[&str]) -> String {
        self.birdc(args)
            .unwrap_or_else(|e| panic!("bird {}: {e}\nlog:\n{}", self.name, self.log_text()))
    }

    pub fn protocols(&self) -> Vec<BirdProtocol> {
        parse_protocols(&self.birdc_ok(&["show", "protocols"]))
    }

    pub fn protocol(&self, name: &str) -> BirdProtocol {
        self.protocols()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("bird {}: no protocol {name}", self.name))
    }

    /// Every route of BIRD's table.
    pub fn routes(&self) -> Vec<BirdRoute> {
        parse_routes(&self.birdc_ok(&["show", "route"]))
    }

    /// The routes BIRD has for exactly `prefix` (best first as BIRD lists them).
    pub fn routes_for(&self, prefix: &str) -> Vec<BirdRoute> {
        self.routes()
            .into_iter()
            .filter(|r| r.net == prefix)
            .collect()
    }

    pub fn bfd_sessions(&self) -> Vec<BfdSession> {
        parse_bfd_sessions(&self.birdc_ok(&["show", "bfd", "sessions"]))
    }

    /// The BFD session with neighbour `addr`, if BIRD has one.
    pub fn bfd_session(&self, addr: &str) -> Option<BfdSession> {
        self.bfd_sessions().into_iter().find(|s| s.addr == addr)
    }

    /// Waits for BGP protocol `protocol` to be Established; returns how long it took. Panics
    /// with its state and the log when `timeout` passes.
    pub fn wait_established(&self, protocol: &str, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        let mut last = None;
        if poll_until(timeout, || {
            let p = self.protocols().into_iter().find(|p| p.name == protocol);
            let ok = p.as_ref().is_some_and(BirdProtocol::established);
            last = p;
            ok
        }) {
            return t0.elapsed();
        }
        panic!(
            "bird {}: BGP {protocol} not established within {timeout:?} (last: {last:?})\nlog:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Waits until BIRD's table has a best route for exactly `prefix`; returns it and how long
    /// it took. Panics with the table when `timeout` passes.
    pub fn wait_route(&self, prefix: &str, timeout: Duration) -> (BirdRoute, Duration) {
        let t0 = Instant::now();
        let mut found = None;
        if poll_until(timeout, || {
            found = self.routes_for(prefix).into_iter().find(|r| r.primary);
            found.is_some()
        }) {
            return (found.unwrap(), t0.elapsed());
        }
        panic!(
            "bird {}: no route for {prefix} within {timeout:?}; table:\n{}",
            self.name,
            self.birdc(&["show", "route"]).unwrap_or_else(|e| e)
        );
    }

    /// Waits until the BFD session with `addr` is `Up`; returns how long it took. BGP comes up
    /// first (BFD starts with a slow transmit interval), so a test that stops a peer to watch
    /// BFD declare it down must wait for this first: a session that never was up has nothing
    /// to declare, and the BGP session then lasts until its hold timer.
    pub fn wait_bfd_up(&self, addr: &str, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        if poll_until(timeout, || {
            self.bfd_session(addr).is_some_and(|s| s.state == "Up")
        }) {
            return t0.elapsed();
        }
        panic!(
            "bird {}: BFD session with {addr} not up within {timeout:?}:\n{}",
            self.name,
            self.birdc(&["show", "bfd", "sessions"])
                .unwrap_or_else(|e| e)
        );
    }

    /// Waits until the BFD session with `addr` is in a state other than `Up` (Down, Init,
    /// AdminDown) and returns it. Polls every 10 ms, so that the session is seen in its first
    /// state after Up, whose `since` is when BFD declared the neighbour down.
    pub fn wait_bfd_not_up(&self, addr: &str, timeout: Duration) -> BfdSession {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.bfd_session(addr) {
                if s.state != "Up" {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "bird {}: BFD session with {addr} still up after {timeout:?}:\n{}",
                self.name,
                self.birdc(&["show", "bfd", "sessions"])
                    .unwrap_or_else(|e| e)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM (by PID) and wait.
    pub fn stop(&mut self) {
        self.proc_.stop(libc::SIGTERM, Duration::from_secs(5));
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- bird {} log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.log_text()
            );
            if let Ok(p) = self.birdc(&["show", "protocols", "all"]) {
                eprintln!("----- bird {}: show protocols all -----\n{p}", self.name);
            }
        }
        // self.proc_ (BgProc) kills the process by PID when it is dropped after this.
    }
}

/// A shipped BIRD example's text `t` (from `path`, named in failures) as a test runs it:
/// logging to `log` instead of syslog, and with BIRD's events (connection attempts, refusals,
/// errors) in the log beside its state changes, for a failure's diagnosis. Panics if the
/// example has no `log syslog all;` or `debug { states };` line to rewrite.
/// `bird -p -c path` (parse only): panics with BIRD's message if the file does not parse.
pub fn bird_parse_ok(path: &Path) {
    let out = run_timeout(
        Command::new(BIRD).arg("-p").arg("-c").arg(path),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "bird -p -c {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn bird_example_for_test(t: &str, path: &Path, log: &Path) -> String {
    assert!(t.contains("\nlog syslog all;\n"), "{}", path.display());
    assert!(t.contains("debug { states };"), "{}", path.display());
    t.replace("debug { states };", "debug { states, events };")
        .replace(
            "\nlog syslog all;\n",
            &format!("\nlog \"{}\" all;\n", log.display()),
        )
}
