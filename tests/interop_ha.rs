//! Active-standby against strongSwan as the two-address peer (issue 6), the way an Azure VPN
//! gateway in active-active mode has two instance IPs: one charon on gwB with two connections,
//! one per address pair, the same identities, PSK and selectors
//! (conf/strongswan/swanctl-two-addresses.conf with conf/strongswan/strongswan-ha.conf), and
//! ironsecd on gwA with one active-standby connection of two tunnels that it initiates:
//!
//!   lanA 10.1.0.2 - gwA 192.0.2.1    ===wan===  192.0.2.2    gwB - lanB 10.2.0.2
//!       ironsecd        198.51.100.1 ===wan2=== 198.51.100.2    strongSwan (kernel-libipsec)
//!
//! What strongSwan does here, and what the test relies on (see the README, "Redundant tunnels"):
//! both CHILD_SAs have the same selectors and so the same reqid, one route in table 220 and one
//! policy; libipsec sends on the CHILD_SA installed last, whichever tunnel that is, and on the
//! other one once that one is deleted. strongSwan drops a dead tunnel's SAs only when its DPD on
//! that IKE SA runs out of retransmissions, so its replies keep going into a dead link until then.
//!
//! The test brings both tunnels up (both sides agree on every SPI), pings both ways at 20/s,
//! rekeys the primary's CHILD_SA from strongSwan so that strongSwan sends on the primary too,
//! then cuts the primary link (`ip link set wan down` in gwA) under pings at 20/s: traffic must
//! resume on the standby, with ironsec's `active` the standby address and strongSwan's standby
//! CHILD_SA carrying the traffic. It prints ironsec's failover time (its log), strongSwan's DPD
//! time (its log) and the interruption seen by the pings. Then the link comes back: ironsec
//! re-establishes the primary (close_action restart) and traffic returns to it (strongSwan
//! moves at once to the new CHILD_SA, ironsec follows or preempts) without losing a ping.
//!
//! Needs root and the strongSwan packages of tests/install-deps.sh: `#[ignore = "needs root"]`
//! (tests/run.sh runs it); FAILS (never skips) without them. Everything it starts is removed by guards (ironsecd and charon by PID, the
//! namespaces), also when it fails.
//!
//! Run: `cargo test -p ironsecd --test interop_ha -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use common::strongswan::*;
use common::*;
use serde_json::Value;

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-SWAN-HA-PING!\xa5";
const PING_INTERVAL: Duration = Duration::from_millis(50);
const PRIMARY_B: &str = "192.0.2.2";
const STANDBY_B: &str = "198.51.100.2";

/// strongSwan's connection and CHILD_SA for ironsec's tunnel 0 (primary) and 1 (standby).
const SW_CONNS: [&str; 2] = ["gw-a-1", "gw-a-2"];
const SW_CHILDREN: [&str; 2] = ["site-a-1", "site-a-2"];

/// strongSwan's dpd_delay (its smallest: whole seconds) and dpd_action.
const SW_DPD_DELAY: &str = "1s";
const SW_DPD_ACTION: &str = "clear";

/// strongSwan's DPD gives up ~1 s (dpd_delay) + 2.2 s (retransmissions, strongswan-ha.conf)
/// after the link died, plus up to a second of DPD scheduling: 8 s is a generous bound.
const MAX_INTERRUPTION: Duration = Duration::from_secs(8);

// ------------------------------------------------------------------------------------------
// The lab

/// Field order matters: ironsecd and charon stop before the namespaces go, the directory (logs,
/// kept on failure) last.
struct Lab {
    a: Daemon,
    sw: StrongSwan,
    topo: Topology,
    dir: TempDir,
}

impl Lab {
    fn start() -> Lab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&prefix);
        let topo = Topology::up_links(&prefix, 2);
        let psk = format!("0x{}", hex(&random_bytes(32)));

        let template = example_config("strongswan/swanctl-two-addresses.conf");
        let swanctl = template
            .replace("@PSK@", &psk)
            .replace("@DPD@", SW_DPD_DELAY)
            .replace("@DPD_ACTION@", SW_DPD_ACTION);
        assert!(
            !swanctl.contains('@'),
            "a placeholder of swanctl-two-addresses.conf is not filled:\n{swanctl}"
        );
        // Log times in UTC, like ironsec's: the test compares charon's log lines with them.
        let sw = StrongSwan::start_with(
            &topo.gw_b,
            &dir.join("strongswan"),
            &swanctl,
            SwOptions {
                template: Some(&workspace_root().join("conf/strongswan/strongswan-ha.conf")),
                utc: true,
            },
        );

        let psk_file = dir.join("site-b.psk");
        write_secret(&psk_file, format!("{psk}\n"));
        let sock = dir.join("a.sock");
        let cfg = dir.join("gw-a.toml");
        let text = format!(
            r#"{gateway}
[[connection]]
name = "site-b"
keying = "ike"
local_id = "gw-a.example"
remote_id = "gw-b.example"
psk_file = {psk}
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
start_action = "start"
close_action = "restart"
dpd_interval = 2
retransmit_timeout = 0.5
retransmit_tries = 3
mode = "active-standby"
failover_after = 3
preempt = true
preempt_hold = 3
tunnels = [
  {{ local = "192.0.2.1", remote = "{PRIMARY_B}", priority = 100 }},
  {{ local = "198.51.100.1", remote = "{STANDBY_B}", priority = 50 }},
]
"#,
            gateway = gateway_toml(&sock, ""),
            psk = toml_str(psk_file.to_str().unwrap()),
        );
        fs::write(&cfg, text).unwrap();
        let a = Daemon::start("gwA", &topo.gw_a, &cfg, &sock, dir.join("ironsecd-a.log"));
        Lab { a, sw, topo, dir }
    }

    fn logs(&self) -> String {
        format!(
            "----- ironsecd (gwA) log -----\n{}\n----- strongSwan (gwB) charon.log -----\n{}",
            self.a.log_text(),
            self.sw.log_text()
        )
    }

    fn link(&self, iface: &str, up: bool) {
        run_ok(
            ns_cmd(&self.topo.gw_a, "ip").args([
                "link",
                "set",
                iface,
                if up { "up" } else { "down" },
            ]),
            Duration::from_secs(5),
        );
    }

    /// Waits until tunnel `i` is up on both sides and they agree on it: strongSwan's IKE SA of
    /// that address pair has ironsec's IKE SPIs, and an INSTALLED CHILD_SA with ironsec's SPIs
    /// crossed; `accept` may ask for more (e.g. a new SPI after a rekey). Returns strongSwan's
    /// CHILD_SA and ironsec's status.
    fn wait_tunnel(
        &self,
        i: usize,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&SwChild) -> bool,
    ) -> (SwChild, Value) {
        let mut last = (Value::Null, Vec::new());
        let mut found = None;
        let ok = poll_until(timeout, || {
            let Ok(st) = ctl_status(&self.a.socket) else {
                return false;
            };
            let sas = self.sw.sas();
            found = sw_child_of(&st, i, &sas).filter(|c| accept(c));
            last = (st, sas);
            found.is_some()
        });
        let (st, sas) = last;
        assert!(
            ok,
            "{what}: tunnel {i} not up on both sides within {timeout:?}\nironsec: {st:#}\n\
             strongSwan: {sas:#?}\n{}",
            self.logs()
        );
        (found.unwrap(), st)
    }

    /// strongSwan's CHILD_SA of each tunnel right now (both sides must agree on both).
    fn children(&self) -> [SwChild; 2] {
        let st = self.a.status();
        let sas = self.sw.sas();
        [0, 1].map(|i| {
            sw_child_of(&st, i, &sas).unwrap_or_else(|| {
                panic!(
                    "tunnel {i} is not the same on both sides\nironsec: {st:#}\nstrongSwan: \
                     {sas:#?}\n{}",
                    self.logs()
                )
            })
        })
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Value) -> bool) {
        let mut last = Value::Null;
        let ok = poll_until(timeout, || {
            last = self.a.status();
            f(&last)
        });
        assert!(
            ok,
            "{what}: not within {timeout:?}\nironsec: {last:#}\nstrongSwan: {:#?}\n{}",
            self.sw.sas(),
            self.logs()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] strongSwan HA lab {} failed; files kept in {}",
                self.topo.prefix,
                self.dir.path.display()
            );
        }
    }
}

/// strongSwan's CHILD_SA that is ironsec's tunnel `i`: an ESTABLISHED IKE SA of connection
/// SW_CONNS[i] with ironsec's IKE SPIs and an INSTALLED CHILD_SA with ironsec's SPIs crossed.
fn sw_child_of(st: &Value, i: usize, sas: &[SwIke]) -> Option<SwChild> {
    let t = &st["connections"][0]["tunnels"][i];
    if t["state"] != "up" || t["ike"]["state"] != "established" {
        return None;
    }
    let spi = |v: &Value| v.as_str().map(bare);
    let (si, sr) = (spi(&t["ike"]["spi_i"])?, spi(&t["ike"]["spi_r"])?);
    let (out, inb) = (spi(&t["outbound"]["spi"])?, spi(&t["inbound"]["spi"])?);
    sas.iter()
        .find(|s| {
            s.name == SW_CONNS[i] && s.state == "ESTABLISHED" && s.spi_i == si && s.spi_r == sr
        })?
        .children
        .iter()
        .find(|c| {
            c.name == SW_CHILDREN[i]
                && c.state == "INSTALLED"
                && c.spi_in == out
                && c.spi_out == inb
        })
        .cloned()
}

fn active(st: &Value) -> Vec<String> {
    st["connections"][0]["active"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn role(st: &Value, i: usize) -> String {
    st["connections"][0]["tunnels"][i]["role"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ------------------------------------------------------------------------------------------
// Traffic and logs

fn ping_run(ns: &str, dst: Ipv4Addr, count: u16) -> PingRun {
    ping_paced(
        ns,
        dst,
        count,
        pattern_payload(PING_PATTERN, 56),
        PING_INTERVAL,
        Duration::from_secs(1),
    )
}

fn pinger(ns: &str, dst: Ipv4Addr, count: u16) -> std::thread::JoinHandle<PingRun> {
    ping_paced_in_background(
        ns,
        dst,
        count,
        pattern_payload(PING_PATTERN, 56),
        PING_INTERVAL,
        Duration::from_secs(1),
    )
}

fn ping_ok(lab: &Lab, ns: &str, dst: Ipv4Addr, count: u16) {
    let r = ping_run(ns, dst, count);
    assert_eq!(
        r.received(),
        r.sent(),
        "ping {ns} -> {dst}: {} of {} answered\n{}",
        r.received(),
        r.sent(),
        lab.logs()
    );
}

/// Seconds from `t` to Unix time `u` (negative if before).
fn since(t: SystemTime, u: f64) -> f64 {
    u - unix_secs(t)
}

/// Unix time of a strongSwan log line (`2025-01-31 12:34:56.789 ...`, UTC: charon runs with
/// TZ=UTC and time_add_ms).
fn sw_line_time(line: &str) -> Option<f64> {
    let mut w = line.split_whitespace();
    let (d, t) = (w.next()?, w.next()?);
    log_line_time(&format!("{d}T{t}Z"))
}

/// The first line after Unix time `after` with every needle, and its time.
fn first_after(
    log: &str,
    after: f64,
    time: fn(&str) -> Option<f64>,
    needles: &[&str],
) -> Option<(f64, String)> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .find_map(|l| time(l).filter(|t| *t >= after).map(|t| (t, l.to_string())))
}

fn fmt_secs(v: Option<f64>) -> String {
    v.map_or_else(|| "? (no log line)".to_string(), |s| format!("{s:.2} s"))
}

// ------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn active_standby_against_strongswan_with_two_addresses() {
    let _s = serial();
    require_root();
    let started = Instant::now();
    let lab = Lab::start();

    // 1. Both tunnels up, and both sides agree on each (IKE and CHILD_SA SPIs).
    let t0 = Instant::now();
    lab.wait_tunnel(0, "start", Duration::from_secs(20), |_| true);
    lab.wait_tunnel(1, "start", Duration::from_secs(20), |_| true);
    let ch = lab.children();
    println!(
        "both tunnels up on both sides {:.2?} after ironsecd started; strongSwan: {} (reqid {}) \
         and {} (reqid {}), the same selectors 10.2.0.0/24 === 10.1.0.0/24",
        t0.elapsed(),
        SW_CONNS[0],
        ch[0].reqid,
        SW_CONNS[1],
        ch[1].reqid
    );
    // ironsec sends INITIAL_CONTACT on the tunnel it starts first; when that IKE_AUTH reaches
    // strongSwan after the other tunnel's IKE SA is up, strongSwan 5.9 (unique = no) would
    // destroy that one, whatever its address. unique = never keeps it.
    let sw_log = lab.sw.log_text();
    let pos = |needle: &str| sw_log.lines().position(|l| l.contains(needle));
    let ic = pos("N(INIT_CONTACT)");
    let other_up = pos(&format!("IKE_SA {}[", SW_CONNS[1]));
    println!(
        "  INITIAL_CONTACT from ironsec: {}",
        match (ic, other_up) {
            (None, _) => "none".to_string(),
            (Some(i), Some(o)) if i > o => format!(
                "arrived after {}'s IKE SA was up (unique = never kept it)",
                SW_CONNS[1]
            ),
            (Some(_), _) => "arrived before the other IKE SA was up".to_string(),
        }
    );
    assert!(
        !sw_log.contains("destroying duplicate"),
        "strongSwan destroyed an IKE SA on INITIAL_CONTACT\n{}",
        lab.logs()
    );
    let routes = run_ok(
        ns_cmd(&lab.topo.gw_b, "ip").args(["route", "show", "table", "220"]),
        Duration::from_secs(5),
    );
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    println!("  gwB table 220: {}", routes.trim().replace('\n', "; "));
    assert!(
        routes.contains("10.1.0.0/24 dev ipsec0"),
        "gwB has no route into libipsec's ipsec0:\n{routes}"
    );

    // 2. Pings both ways at 20/s. strongSwan answers on one of its two CHILD_SAs (libipsec
    // takes the one installed last); ironsec accepts on both and follows the peer's choice.
    let before = lab.children();
    ping_ok(&lab, &lab.topo.lan_a, LAN_B_HOST, 40);
    ping_ok(&lab, &lab.topo.lan_b, LAN_A_HOST, 40);
    let after = lab.children();
    let sent_on: Vec<u64> = (0..2)
        .map(|i| after[i].packets_out - before[i].packets_out)
        .collect();
    // ironsec sends on what strongSwan sends on: the primary, or the standby it followed to.
    let peer_uses = if sent_on[1] > 0 && sent_on[0] == 0 {
        STANDBY_B
    } else {
        PRIMARY_B
    };
    lab.wait_for(
        "ironsec sends where strongSwan does",
        Duration::from_secs(3),
        |st| active(st) == [peer_uses],
    );
    let st = lab.a.status();
    println!(
        "pings both ways (2 x 40 at 20/s): all answered; strongSwan sent {} packets on {} and {} \
         on {}; ironsec active {:?}, last failover: {}",
        sent_on[0],
        SW_CHILDREN[0],
        sent_on[1],
        SW_CHILDREN[1],
        active(&st),
        st["connections"][0]["last_failover"]
    );

    // strongSwan sends on the primary once its CHILD_SA is the newest: rekey it there.
    let old_spi = after[0].spi_in.clone();
    lab.sw.swanctl_ok(&["--rekey", "--child", SW_CHILDREN[0]]);
    lab.wait_tunnel(0, "after the rekey", Duration::from_secs(10), |c| {
        c.spi_in != old_spi
    });
    ping_ok(&lab, &lab.topo.lan_a, LAN_B_HOST, 20);
    lab.wait_for(
        "ironsec sends on the primary",
        Duration::from_secs(5),
        |st| active(st) == [PRIMARY_B],
    );
    let before = lab.children();
    ping_ok(&lab, &lab.topo.lan_a, LAN_B_HOST, 20);
    ping_ok(&lab, &lab.topo.lan_b, LAN_A_HOST, 20);
    let after = lab.children();
    let d = |i: usize, f: fn(&SwChild) -> u64| f(&after[i]) - f(&before[i]);
    println!(
        "after strongSwan rekeyed {}: strongSwan in/out packets {} {}/{}, {} {}/{}",
        SW_CHILDREN[0],
        SW_CHILDREN[0],
        d(0, |c| c.packets_in),
        d(0, |c| c.packets_out),
        SW_CHILDREN[1],
        d(1, |c| c.packets_in),
        d(1, |c| c.packets_out)
    );
    assert!(
        d(0, |c| c.packets_in) >= 40 && d(0, |c| c.packets_out) >= 40,
        "both sides send on the primary: {before:#?} -> {after:#?}"
    );
    assert_eq!(
        (d(1, |c| c.packets_in), d(1, |c| c.packets_out)),
        (0, 0),
        "nothing on the standby: {before:#?} -> {after:#?}"
    );

    // 3. The primary link dies under pings at 20/s.
    let st = lab.a.status();
    let failovers = num(&st, "/connections/0/counters/failovers");
    let standby_before = lab.children()[1].clone();
    let pings = pinger(&lab.topo.lan_a, LAN_B_HOST, 280);
    std::thread::sleep(Duration::from_secs(2));
    let cut = SystemTime::now();
    lab.link("wan", false);
    let run = pings.join().unwrap();

    let lost = run.lost();
    assert!(
        !lost.is_empty(),
        "no ping was lost: did the link go down?\n{}",
        lab.logs()
    );
    let rel = |t: SystemTime| since(cut, unix_secs(t));
    let (first, last) = (lost[0].sent_at, lost[lost.len() - 1].sent_at);
    let interruption = last.duration_since(first).unwrap_or_default() + PING_INTERVAL;
    let after_resume: Vec<&PingRecord> = run.records.iter().filter(|r| r.sent_at > last).collect();
    let answered_after = after_resume.iter().filter(|r| r.rtt.is_some()).count();
    let a_log = lab.a.log_text();
    let sw_log = lab.sw.log_text();
    let at_cut = unix_secs(cut);
    let probe = first_after(
        &a_log,
        at_cut,
        log_line_time,
        &["probing the peer", "local=192.0.2.1 remote=192.0.2.2"],
    );
    let failover = first_after(
        &a_log,
        at_cut,
        log_line_time,
        &["failover 192.0.2.2 -> 198.51.100.2"],
    );
    let sw_tag = format!("<{}|", SW_CONNS[0]);
    let sw_dpd = first_after(
        &sw_log,
        at_cut,
        sw_line_time,
        &[sw_tag.as_str(), "sending DPD request"],
    );
    let sw_gone = first_after(
        &sw_log,
        at_cut,
        sw_line_time,
        &[sw_tag.as_str(), "giving up after"],
    )
    .or_else(|| {
        first_after(
            &sw_log,
            at_cut,
            sw_line_time,
            &[sw_tag.as_str(), "=> DESTROYING"],
        )
    });
    println!("primary link cut under pings at 20/s:");
    println!(
        "  ironsec: probe {} and failover to the standby {} after the cut ({})",
        fmt_secs(probe.as_ref().map(|p| p.0 - at_cut)),
        fmt_secs(failover.as_ref().map(|p| p.0 - at_cut)),
        failover
            .as_ref()
            .map_or("", |p| p.1.trim())
            .split_once("WARN ")
            .map_or("", |x| x.1)
    );
    println!(
        "  strongSwan: DPD request on {} {}, gave up (IKE SA and CHILD_SA deleted, replies move \
         to {}) {} after the cut",
        SW_CONNS[0],
        fmt_secs(sw_dpd.as_ref().map(|p| p.0 - at_cut)),
        SW_CHILDREN[1],
        fmt_secs(sw_gone.as_ref().map(|p| p.0 - at_cut))
    );
    println!(
        "  pings: {} of {} lost, first lost sent {:.2} s and last {:.2} s after the cut: traffic \
         stopped for {interruption:.2?}; {answered_after} of {} after it answered",
        lost.len(),
        run.sent(),
        rel(first),
        rel(last),
        after_resume.len()
    );
    assert!(
        answered_after == after_resume.len() && after_resume.len() >= 40,
        "traffic must resume and stay up for the rest of the run (at least 2 s of pings): \
         {answered_after} of {} answered after the last loss\n{}",
        after_resume.len(),
        lab.logs()
    );
    assert!(
        interruption <= MAX_INTERRUPTION,
        "traffic stopped for {interruption:?} (strongSwan's DPD should end it within ~4.5 s)\n{}",
        lab.logs()
    );
    assert!(
        failover.is_some(),
        "ironsec logged no failover\n{}",
        lab.logs()
    );
    let st = lab.a.status();
    assert_eq!(active(&st), [STANDBY_B], "{st:#}");
    assert_eq!(role(&st, 1), "active", "{st:#}");
    assert!(
        num(&st, "/connections/0/counters/failovers") > failovers,
        "{st:#}"
    );
    let lf = st["connections"][0]["last_failover"]
        .as_str()
        .unwrap_or_default();
    assert!(lf.contains("192.0.2.2 -> 198.51.100.2"), "{st:#}");
    println!(
        "  ironsecctl status: active {:?}, last failover: {lf}",
        active(&st)
    );
    let sas = lab.sw.sas();
    assert!(
        !sas.iter()
            .any(|s| s.name == SW_CONNS[0] && s.state == "ESTABLISHED"),
        "strongSwan still has the dead tunnel's IKE SA: {sas:#?}"
    );
    let standby = sw_child_of(&st, 1, &sas).unwrap_or_else(|| {
        panic!("the standby is not the same on both sides\nironsec: {st:#}\nstrongSwan: {sas:#?}")
    });
    let (din, dout) = (
        standby.packets_in - standby_before.packets_in,
        standby.packets_out - standby_before.packets_out,
    );
    println!(
        "  strongSwan {} during the run: +{din} packets in, +{dout} out (+{} / +{} bytes)",
        SW_CHILDREN[1],
        standby.bytes_in - standby_before.bytes_in,
        standby.bytes_out - standby_before.bytes_out
    );
    assert!(
        dout >= answered_after as u64 && din >= answered_after as u64,
        "strongSwan's standby CHILD_SA carries the traffic: {standby_before:#?} -> {standby:#?}"
    );

    // 4. The link comes back: ironsec re-establishes the primary (close_action restart) and
    // traffic returns to it, strongSwan at once (its newest CHILD_SA), ironsec following or
    // preempting after preempt_hold.
    let pings = pinger(&lab.topo.lan_a, LAN_B_HOST, 400);
    std::thread::sleep(Duration::from_secs(1));
    let up = SystemTime::now();
    lab.link("wan", true);
    lab.wait_tunnel(0, "primary back", Duration::from_secs(17), |_| true);
    lab.wait_for(
        "traffic back on the primary",
        Duration::from_secs(10),
        |st| active(st) == [PRIMARY_B],
    );
    let back = SystemTime::now().duration_since(up).unwrap_or_default();
    let run = pings.join().unwrap();
    let a_log = lab.a.log_text();
    let at_up = unix_secs(up);
    let ike_up = first_after(
        &a_log,
        at_up,
        log_line_time,
        &["IKE SA up", "remote=192.0.2.2"],
    );
    let moved = first_after(
        &a_log,
        at_up,
        log_line_time,
        &["failover 198.51.100.2 -> 192.0.2.2"],
    );
    println!("primary link back:");
    println!(
        "  ironsec: primary IKE SA up {} after the link, traffic back on it {} after the link \
         ({back:.2?} by status): {}",
        fmt_secs(ike_up.as_ref().map(|p| p.0 - at_up)),
        fmt_secs(moved.as_ref().map(|p| p.0 - at_up)),
        moved
            .as_ref()
            .map_or("", |p| p.1.trim())
            .split_once("WARN ")
            .map_or("", |x| x.1)
    );
    println!(
        "  pings during the return: {} of {} answered",
        run.received(),
        run.sent()
    );
    assert_eq!(
        run.lost().len(),
        0,
        "pings lost while traffic returned to the primary\n{}",
        lab.logs()
    );
    let ch = lab.children();
    assert!(
        ch[0].packets_out > 0 && ch[0].packets_in > 0,
        "strongSwan's new {} carries the traffic: {ch:#?}",
        SW_CHILDREN[0]
    );
    let sw_log = lab.sw.log_text();
    println!(
        "  strongSwan saw INITIAL_CONTACT {} time(s) in all (the re-established primary sends none \
         while the standby is up)",
        sw_log.matches("N(INIT_CONTACT)").count()
    );
    println!("total {:.1?}", started.elapsed());
}
