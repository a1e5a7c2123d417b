//! NAT traversal against strongSwan through a real NAT (nftables masquerade in a namespace of
//! its own, UDP mappings forgotten after 10 s of silence; tests/common/nat_lab.rs):
//!
//!   lanA 10.1.0.2 -- gwA 172.16.0.2 -- NAT 192.0.2.254 -- 192.0.2.2 gwB -- lanB 10.2.0.2
//!
//! - `ironsec_behind_nat_keeps_the_mapping_alive`: ironsecd on gwA (behind the NAT),
//!   strongSwan on gwB. With DPD off on both sides, only ironsec's NAT keepalives cross the
//!   NAT during a 60 s idle period (counted by an nftables counter in the NAT, the outside
//!   judge); afterwards strongSwan's side starts traffic to ironsec's LAN, which only gets
//!   through if the mapping is still there.
//! - `strongswan_behind_nat_is_followed_when_the_nat_remaps`: strongSwan on gwA (behind the
//!   NAT) initiates, ironsecd on gwB; traffic both ways; then the NAT re-maps its source ports
//!   (new port range, old mappings flushed) and traffic from strongSwan's side arrives from a
//!   new port: ironsec's fast path follows it, and its own traffic reaches the new port.
//! - `both_ends_behind_nats`: strongSwan behind a NAT of its own that forwards UDP 500/4500
//!   to it; ironsec (behind the first NAT) finds both ends behind NATs, keeps its mapping over
//!   an idle period longer than the NAT timeout, and traffic crosses both NATs both ways.
//!
//! The first test also names strongSwan's gateway by DNS name (a hosts file bind-mounted over
//! /etc/hosts in ironsecd's own mount namespace) and checks that a reconnect resolves it again.
//!
//! Root, strongSwan and nftables needed (tests/install-deps.sh); `#[ignore = "needs root"]`.
//! Run: `cargo test -p ironsecd --test nat_traversal -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::strongswan::*;
use common::*;
use serde_json::Value;

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const UP_TIMEOUT: Duration = Duration::from_secs(20);
/// Longer than the NAT's UDP timeout several times over.
const IDLE: Duration = Duration::from_secs(60);
/// ironsec's keepalive interval in the first test: short, so the idle minute holds many.
const KEEPALIVE_S: u64 = 3;
/// strongSwan's gateway as ironsec's config names it in the first test.
const PEER_NAME: &str = "gw-b.nat.test";
/// strongSwan's second address, where [`PEER_NAME`] moves.
const GW_B_MOVED: &str = "192.0.2.3";

/// ironsecd's config: one IKE connection, DPD off (so nothing but keepalives crosses an
/// idle NAT), with `extra` lines.
#[allow(clippy::too_many_arguments)]
fn ironsec_toml(
    socket: &Path,
    psk: &Path,
    local: &str,
    remote: &str,
    local_ts: &str,
    remote_ts: &str,
    start_action: &str,
    extra: &str,
) -> String {
    format!(
        r#"{gateway}
[[connection]]
name = "site"
keying = "ike"
local_id = "gw-a.example"
remote_id = "gw-b.example"
psk_file = {psk}
local_ts = ["{local_ts}"]
remote_ts = ["{remote_ts}"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
start_action = "{start_action}"
dpd_interval = 0
retransmit_timeout = 0.5
{extra}
tunnels = [ {{ local = "{local}", remote = "{remote}" }} ]
"#,
        gateway = gateway_toml(socket, ""),
        psk = toml_str(psk.to_str().unwrap()),
    )
}

/// strongSwan's swanctl.conf: identity gw-b.example, DPD off, its CHILD_SA `site-a`.
fn swanctl_conf(
    psk: &str,
    local: &str,
    remote: &str,
    local_ts: &str,
    remote_ts: &str,
    start_action: &str,
) -> String {
    format!(
        r#"connections {{
    gw-a {{
        version = 2
        local_addrs = {local}
        remote_addrs = {remote}
        proposals = aes128gcm16-prfsha256-x25519
        encap = yes
        dpd_delay = 0s
        local {{
            auth = psk
            id = gw-b.example
        }}
        remote {{
            auth = psk
            id = gw-a.example
        }}
        children {{
            site-a {{
                local_ts = {local_ts}
                remote_ts = {remote_ts}
                esp_proposals = aes128gcm16
                start_action = {start_action}
                close_action = none
            }}
        }}
    }}
}}
secrets {{
    ike-gw-a {{
        id-a = gw-a.example
        id-b = gw-b.example
        secret = {psk}
    }}
}}
"#
    )
}

/// `tshark -r PCAP -Y FILTER -T fields -e ...`: one line per matching packet.
fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> String {
    let mut c = std::process::Command::new("tshark");
    c.arg("-r").arg(pcap).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    String::from_utf8_lossy(&run_ok(&mut c, Duration::from_secs(60)).stdout).into_owned()
}

/// Field order: both daemons stop before the namespaces go, the directory (kept on failure)
/// last.
struct Run {
    ironsec: Daemon,
    sw: StrongSwan,
    lab: NatLab,
    dir: TempDir,
}

impl Run {
    fn logs(&self) -> String {
        format!(
            "(files in {})\n----- ironsecd log -----\n{}\n----- charon.log -----\n{}",
            self.dir.path.display(),
            self.ironsec.log_text(),
            self.sw.log_text()
        )
    }

    /// Waits until ironsec's tunnel is up and strongSwan has an INSTALLED CHILD_SA.
    fn wait_up(&self) -> Value {
        let mut last = Value::Null;
        let ok = poll_until(UP_TIMEOUT, || {
            let Ok(st) = ctl_status(&self.ironsec.socket) else {
                return false;
            };
            let up = tunnel_up(&st)
                && self.sw.sas().iter().any(|s| {
                    s.state == "ESTABLISHED" && s.children.iter().any(|c| c.state == "INSTALLED")
                });
            last = st;
            up
        });
        assert!(
            ok,
            "tunnel not up through the NAT: {last:#}\n{}",
            self.logs()
        );
        last
    }

    /// `count` pings from `ns` to `dst`; returns how many were answered.
    fn ping(&self, ns: &str, dst: Ipv4Addr, count: u16) -> u32 {
        ping(
            ns,
            dst,
            count,
            pattern_payload(b"IRONSEC-NAT", 56),
            Duration::from_millis(200),
            Duration::from_secs(1),
        )
        .received
    }

    fn conn_counter(&self, name: &str) -> u64 {
        num(
            &self.ironsec.status(),
            &format!("/connections/0/counters/{name}"),
        )
    }
}

/// Starts strongSwan, then ironsecd. With `hosts`, ironsecd runs in a mount namespace of its
/// own where that file is /etc/hosts: peer names resolve there, and nowhere else on the host.
fn start(
    lab: NatLab,
    dir: TempDir,
    hosts: Option<&Path>,
    ironsec_ns: &str,
    ironsec_cfg: impl FnOnce(&Path, &Path) -> String,
    sw_ns: &str,
    sw_conf: impl FnOnce(&str) -> String,
) -> Run {
    let psk_text = format!("0x{}", hex(&random_bytes(32)));
    let psk = dir.join("site.psk");
    write_secret(&psk, format!("{psk_text}\n"));
    let sock = dir.join("ironsec.sock");
    let cfg: PathBuf = dir.join("ironsec.toml");
    fs::write(&cfg, ironsec_cfg(&sock, &psk)).unwrap();
    let sw = StrongSwan::start(sw_ns, &dir.join("strongswan"), &sw_conf(&psk_text));
    let log = dir.join("ironsecd.log");
    let ironsec = match hosts {
        None => Daemon::start("ironsec", ironsec_ns, &cfg, &sock, log),
        Some(hosts) => {
            let mut cmd = ns_cmd(ironsec_ns, "unshare");
            cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind "$1" /etc/hosts && exec "$2" --config "$3""#)
                .arg("sh")
                .arg(hosts)
                .arg(IRONSECD)
                .arg(&cfg);
            Daemon::start_command("ironsec", ironsec_ns, cmd, &cfg, &sock, log, None, &[])
        }
    };
    Run {
        ironsec,
        sw,
        lab,
        dir,
    }
}

#[test]
#[ignore = "needs root"]
fn ironsec_behind_nat_keeps_the_mapping_alive() {
    let _g = serial();
    let prefix = unique_prefix();
    let lab = NatLab::up(&prefix);
    let dir = TempDir::new(&prefix);
    let (gw_a, gw_b) = (lab.gw_a.clone(), lab.gw_b.clone());
    // strongSwan's gateway by name, resolved from a hosts file only ironsecd sees.
    let hosts = dir.join("hosts");
    fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n{GW_B_PUBLIC} {PEER_NAME}\n"),
    )
    .unwrap();
    let r = start(
        lab,
        dir,
        Some(&hosts),
        &gw_a,
        |sock, psk| {
            ironsec_toml(
                sock,
                psk,
                GW_A_PRIVATE,
                PEER_NAME,
                "10.1.0.0/24",
                "10.2.0.0/24",
                "start",
                &format!("nat_keepalive = {KEEPALIVE_S}"),
            )
        },
        &gw_b,
        |psk| {
            swanctl_conf(
                psk,
                &format!("{GW_B_PUBLIC}, {GW_B_MOVED}"),
                "%any",
                "10.2.0.0/24",
                "10.1.0.0/24",
                "none",
            )
        },
    );
    r.wait_up();
    let st = r.ironsec.status();
    assert_eq!(
        st.pointer(&format!("{T0}/nat/we_are_behind_nat")),
        Some(&Value::Bool(true)),
        "{st:#}"
    );
    assert_eq!(
        r.ping(&r.lab.lan_a, LAN_B_HOST, 3),
        3,
        "lanA -> lanB\n{}",
        r.logs()
    );
    assert_eq!(
        r.ping(&r.lab.lan_b, LAN_A_HOST, 3),
        3,
        "lanB -> lanA\n{}",
        r.logs()
    );

    // The last ESP went out before this moment (the pings above were answered): the first
    // keepalive is due one interval after it, not later.
    let idle_from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The wire on the NAT's public side, for tshark to judge what crossed it.
    let pcap = r.dir.join("nat-out.pcap");
    let cap = Capture::start(
        &r.lab.nat,
        "out",
        &pcap,
        &["udp", "port", "4500"],
        r.dir.join("tcpdump.log"),
    );
    let before = r.lab.counter("keepalive_out");
    std::thread::sleep(IDLE);
    let sent = r.lab.counter("keepalive_out") - before;
    cap.stop();
    eprintln!("[test] NAT keepalives through the NAT in {IDLE:?} of idle: {sent}");
    // tshark's own dissector (udpencap) calls them NAT-keepalives: from the NAT's public
    // address (ironsec's mapping) to strongSwan's UDP/4500, and nothing else crossed.
    let fields = tshark_fields(
        &pcap,
        "udpencap.nat_keepalive",
        &["ip.src", "ip.dst", "udp.dstport"],
    );
    let seen = fields.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    assert!(
        fields
            .lines()
            .all(|l| l.split_whitespace().collect::<Vec<_>>() == [NAT_PUBLIC, GW_B_PUBLIC, "4500"]),
        "keepalives between the wrong addresses:\n{fields}"
    );
    // One interval after the last send, plus the daemon's loop and the capture's latency (a
    // tenth of a second each at most here); the look once per interval this replaced sent
    // it up to two intervals late.
    let first_at: f64 = tshark_fields(&pcap, "udpencap.nat_keepalive", &["frame.time_epoch"])
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("a keepalive in the capture");
    let first_after = first_at - idle_from;
    eprintln!("[test] first keepalive {first_after:.2} s after the tunnel fell idle");
    assert!(
        first_after <= KEEPALIVE_S as f64 + 0.5,
        "the first keepalive went {first_after:.2} s after the last ESP, interval {KEEPALIVE_S} s"
    );
    let others = tshark_fields(&pcap, "!udpencap.nat_keepalive", &["frame.number"]);
    assert!(
        others.trim().is_empty(),
        "the idle tunnel carried more than keepalives:\n{others}"
    );
    assert!(
        seen + 1 >= sent && seen <= sent + 1,
        "tshark saw {seen} keepalives, the NAT counted {sent}"
    );
    // The peer in front of the NAT reaches the LAN behind ironsec first: only possible if
    // the NAT still maps ironsec's UDP/4500, i.e. the keepalives kept it.
    let got = r.ping(&r.lab.lan_b, LAN_A_HOST, 5);
    assert!(
        got >= 4,
        "after {IDLE:?} idle ({sent} keepalives), lanB -> lanA: {got}/5 answered\n{}",
        r.logs()
    );
    // One every KEEPALIVE_S while idle, the first one interval after the last ESP.
    let least = IDLE.as_secs() / KEEPALIVE_S - 1;
    assert!(
        sent >= least,
        "{sent} keepalives crossed the NAT in {IDLE:?}, expected at least {least}\n{}",
        r.logs()
    );
    assert!(
        r.conn_counter("nat_keepalives") >= sent,
        "status counts fewer keepalives than the NAT saw: {:#}",
        r.ironsec.status()
    );
    assert_eq!(
        r.lab.counter("keepalive_in"),
        0,
        "strongSwan is not behind a NAT and must send none"
    );
    assert_eq!(
        r.ping(&r.lab.lan_a, LAN_B_HOST, 3),
        3,
        "lanA -> lanB after idle\n{}",
        r.logs()
    );
    // Traffic keeps the mapping by itself: no keepalive while the tunnel is busy.
    let busy_before = r.lab.counter("keepalive_out");
    let busy = r.ping(&r.lab.lan_a, LAN_B_HOST, 40);
    let during = r.lab.counter("keepalive_out") - busy_before;
    assert!(busy >= 38, "{busy}/40 answered");
    assert!(
        during <= 1,
        "{during} keepalives while the tunnel carried a ping every 200 ms"
    );

    // The peer's name now resolves elsewhere; the next reconnect (strongSwan deletes the IKE
    // SA, ironsec's close action restarts it) resolves it again and goes there.
    run_ok(
        ns_cmd(&r.lab.gw_b, "ip").args(["addr", "add", &format!("{GW_B_MOVED}/24"), "dev", "wan"]),
        Duration::from_secs(10),
    );
    fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n{GW_B_MOVED} {PEER_NAME}\n"),
    )
    .unwrap();
    r.sw.swanctl_ok(&["--terminate", "--ike", "gw-a"]);
    let mut last = String::new();
    let moved = poll_until(UP_TIMEOUT, || {
        last = r.sw.swanctl_ok(&["--list-sas"]);
        last.contains("ESTABLISHED")
            && last.contains(&format!("@ {GW_B_MOVED}[4500]"))
            && last.contains("INSTALLED")
            && ctl_status(&r.ironsec.socket).is_ok_and(|st| tunnel_up(&st))
    });
    assert!(
        moved,
        "ironsec did not reconnect to the new address of {PEER_NAME}:\n{last}\n{}",
        r.logs()
    );
    assert_eq!(
        r.ping(&r.lab.lan_a, LAN_B_HOST, 3),
        3,
        "lanA -> lanB after the move\n{}",
        r.logs()
    );
    let log = r.ironsec.log_text();
    assert!(
        log.contains("resolves to a new address"),
        "no log line for the new address:\n{log}"
    );
}

#[test]
#[ignore = "needs root"]
fn strongswan_behind_nat_is_followed_when_the_nat_remaps() {
    let _g = serial();
    let prefix = unique_prefix();
    let lab = NatLab::up(&prefix);
    let dir = TempDir::new(&prefix);
    let (gw_a, gw_b) = (lab.gw_a.clone(), lab.gw_b.clone());
    let r = start(
        lab,
        dir,
        None,
        &gw_b,
        |sock, psk| {
            ironsec_toml(
                sock,
                psk,
                GW_B_PUBLIC,
                NAT_PUBLIC,
                "10.2.0.0/24",
                "10.1.0.0/24",
                "none",
                "",
            )
        },
        &gw_a,
        |psk| {
            swanctl_conf(
                psk,
                GW_A_PRIVATE,
                GW_B_PUBLIC,
                "10.1.0.0/24",
                "10.2.0.0/24",
                "none",
            )
        },
    );
    r.sw.swanctl_ok(&["--initiate", "--child", "site-a"]);
    r.wait_up();
    let st = r.ironsec.status();
    assert_eq!(
        st.pointer(&format!("{T0}/nat/peer_is_behind_nat")),
        Some(&Value::Bool(true)),
        "{st:#}"
    );
    assert_eq!(
        st.pointer(&format!("{T0}/nat/we_are_behind_nat")),
        Some(&Value::Bool(false)),
        "{st:#}"
    );
    assert_eq!(
        r.ping(&r.lab.lan_a, LAN_B_HOST, 3),
        3,
        "lanA -> lanB\n{}",
        r.logs()
    );
    assert_eq!(
        r.ping(&r.lab.lan_b, LAN_A_HOST, 3),
        3,
        "lanB -> lanA\n{}",
        r.logs()
    );
    assert_eq!(r.conn_counter("peer_moves"), 0);
    assert_eq!(
        r.conn_counter("nat_keepalives"),
        0,
        "ironsec is not behind the NAT"
    );

    r.lab.remap();
    // strongSwan's side talks first, now from a new public port.
    let got = r.ping(&r.lab.lan_a, LAN_B_HOST, 10);
    assert!(
        got >= 8,
        "after the NAT re-mapped, lanA -> lanB: {got}/10 answered\n{}",
        r.logs()
    );
    assert!(
        r.conn_counter("peer_moves") >= 1,
        "ironsec did not follow the peer: {:#}\n{}",
        r.ironsec.status(),
        r.logs()
    );
    // Status says where the peer is now: the NAT's address, a port from the new range.
    let st = r.ironsec.status();
    let peer: std::net::SocketAddr = st
        .pointer(&format!("{T0}/nat/peer"))
        .and_then(Value::as_str)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no nat.peer in {st:#}"));
    assert_eq!(peer.ip().to_string(), NAT_PUBLIC);
    assert!(
        (REMAP_PORTS.0..=REMAP_PORTS.1).contains(&peer.port()),
        "peer {peer} is not on a re-mapped port"
    );
    let to_new_port = r.lab.counter("remapped_in");
    assert!(
        to_new_port >= 8,
        "only {to_new_port} datagrams reached the NAT's new ports"
    );
    // And ironsec's side can start traffic to the peer's new mapping.
    assert_eq!(
        r.ping(&r.lab.lan_b, LAN_A_HOST, 5),
        5,
        "lanB -> lanA after the re-map\n{}",
        r.logs()
    );
    let log = r.ironsec.log_text();
    assert!(
        log.contains("peer behind a NAT moved"),
        "no log line for the move:\n{log}"
    );
}

#[test]
#[ignore = "needs root"]
fn both_ends_behind_nats() {
    let _g = serial();
    let prefix = unique_prefix();
    let lab = NatLab::up_both(&prefix);
    let dir = TempDir::new(&prefix);
    let (gw_a, gw_b) = (lab.gw_a.clone(), lab.gw_b.clone());
    let r = start(
        lab,
        dir,
        None,
        &gw_a,
        |sock, psk| {
            ironsec_toml(
                sock,
                psk,
                GW_A_PRIVATE,
                GW_B_PUBLIC,
                "10.1.0.0/24",
                "10.2.0.0/24",
                "start",
                &format!("nat_keepalive = {KEEPALIVE_S}"),
            )
        },
        &gw_b,
        |psk| {
            swanctl_conf(
                psk,
                GW_B_PRIVATE,
                "%any",
                "10.2.0.0/24",
                "10.1.0.0/24",
                "none",
            )
        },
    );
    r.wait_up();
    let log = r.ironsec.log_text();
    assert!(
        log.contains("we_are_behind_nat=true peer_is_behind_nat=true"),
        "ironsec did not find both ends behind NATs:\n{log}"
    );
    assert_eq!(
        r.ping(&r.lab.lan_a, LAN_B_HOST, 3),
        3,
        "lanA -> lanB\n{}",
        r.logs()
    );
    assert_eq!(
        r.ping(&r.lab.lan_b, LAN_A_HOST, 3),
        3,
        "lanB -> lanA\n{}",
        r.logs()
    );
    // Idle longer than the NATs' UDP timeout: only ironsec's keepalives keep its NAT's
    // mapping (strongSwan's come every 20 s and its NAT forwards the ports anyway).
    let before = r.lab.counter("keepalive_out");
    let idle = Duration::from_secs(u64::from(NAT_UDP_TIMEOUT_S) + 6);
    std::thread::sleep(idle);
    let sent = r.lab.counter("keepalive_out") - before;
    assert!(
        sent >= idle.as_secs() / KEEPALIVE_S - 1,
        "{sent} keepalives in {idle:?}\n{}",
        r.logs()
    );
    let got = r.ping(&r.lab.lan_b, LAN_A_HOST, 5);
    assert!(
        got >= 4,
        "after {idle:?} idle, lanB -> lanA: {got}/5 answered\n{}",
        r.logs()
    );
    assert_eq!(
        r.ping(&r.lab.lan_a, LAN_B_HOST, 3),
        3,
        "lanA -> lanB after idle\n{}",
        r.logs()
    );
    eprintln!(
        "[test] both behind NATs: {sent} keepalives from ironsec, {} from strongSwan",
        r.lab.counter_b("keepalive_out")
    );
}
