//! Integration tests of ironsecctl as swanctl users use it, against real gateways: `rekey`
//! (CHILD and IKE) while a ping keeps flowing, `list-conns` showing the running config (and
//! what a reload applied), `status NAME|PATTERN`, `--json` outcomes of every command
//! (`initiate` up and timed out, errors), the "permission denied" and "not running" errors,
//! and `genpsk` files the daemon's loader accepts.
//!
//! Two sites on netns-scripts/topology.sh:
//!
//!   lanA 10.1.0.2 - gwA 192.0.2.1 ==br0== 192.0.2.2 gwB - lanB 10.2.0.2
//!
//! gwA also has `site-c`, a connection to 192.0.2.9, where nobody answers.
//!
//! Every namespace, daemon and file is removed by guards, also when a test fails. Tests that
//! need root are `#[ignore = "needs root"]` (tests/run.sh runs them) and FAIL (never skip)
//! without root; `genpsk` and "not running" need nothing and always run.
//!
//! Run: `cargo test -p ironsecd --test ctl_ops -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-CTL-PING!\xa5";
const UP_TIMEOUT: Duration = Duration::from_secs(20);

fn ctl(d: &Daemon, args: &[&str]) -> Output {
    ironsecctl(&d.socket, args)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", text(o)))
}

/// `--json ARGS` that must succeed, as JSON.
fn ctl_json(d: &Daemon, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = ctl(d, &a);
    assert!(o.status.success(), "{args:?}: {:?}", text(&o));
    json_of(&o)
}

fn tunnel(d: &Daemon, conn: &str) -> Value {
    conn_tunnel(&d.status(), conn).clone()
}

fn wait_up(d: &Daemon, conn: &str) {
    let ok = poll_until(UP_TIMEOUT, || tunnel(d, conn)["state"] == "up");
    assert!(
        ok,
        "{}: {conn} not up within {UP_TIMEOUT:?}: {:#}\nlog:\n{}",
        d.name,
        tunnel(d, conn),
        d.log_text()
    );
}

struct Pair {
    a: Daemon,
    b: Daemon,
    topo: Topology,
    dir: TempDir,
    psk: std::path::PathBuf,
    config_a: std::path::PathBuf,
}

/// gwA's config: `site-b` (to gwB) and `site-c` (to nobody), `site_c_esp` its ESP proposal.
fn config_a(sock: &Path, psk: &Path, a_start: &str, site_c_esp: &str) -> String {
    gateway_toml(sock, "")
        + &conn_toml(&Conn {
            name: "site-b",
            local_id: "gw-a.example",
            remote_id: "gw-b.example",
            psk_file: psk,
            local_ts: "10.1.0.0/24",
            remote_ts: "10.2.0.0/24",
            local: Ipv4Addr::new(192, 0, 2, 1),
            remote: Ipv4Addr::new(192, 0, 2, 2),
            start_action: a_start,
            extra: "",
        })
        + &conn_toml(&Conn {
            name: "site-c",
            local_id: "gw-a.example",
            remote_id: "gw-c.example",
            psk_file: psk,
            local_ts: "10.1.0.0/24",
            remote_ts: "10.3.0.0/24",
            local: Ipv4Addr::new(192, 0, 2, 1),
            remote: Ipv4Addr::new(192, 0, 2, 9),
            start_action: "none",
            extra: "",
        })
        .replace(
            "esp_proposals = [\"aes128gcm16\"]\nstart_action = \"none\"",
            &format!("esp_proposals = [\"{site_c_esp}\"]\nstart_action = \"none\""),
        )
}

fn pair(a_start: &str) -> Pair {
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let psk = write_psk(&dir, "ab.psk");
    let (sa, sb) = (dir.join("a.sock"), dir.join("b.sock"));
    let ca = dir.join("gw-a.toml");
    let cb = dir.join("gw-b.toml");
    fs::write(&ca, config_a(&sa, &psk, a_start, "aes128gcm16")).unwrap();
    fs::write(
        &cb,
        gateway_toml(&sb, "")
            + &conn_toml(&Conn {
                name: "site-a",
                local_id: "gw-b.example",
                remote_id: "gw-a.example",
                psk_file: &psk,
                local_ts: "10.2.0.0/24",
                remote_ts: "10.1.0.0/24",
                local: Ipv4Addr::new(192, 0, 2, 2),
                remote: Ipv4Addr::new(192, 0, 2, 1),
                start_action: "none",
                extra: "",
            }),
    )
    .unwrap();
    let b = Daemon::start("gwB", &topo.gw_b, &cb, &sb, dir.join("ironsecd-b.log"));
    let a = Daemon::start("gwA", &topo.gw_a, &ca, &sa, dir.join("ironsecd-a.log"));
    Pair {
        a,
        b,
        topo,
        dir,
        psk,
        config_a: ca,
    }
}

#[test]
#[ignore = "needs root"]
fn rekey_child_and_ike_sas_while_a_ping_flows() {
    let _s = serial();
    let p = pair("start");
    wait_up(&p.a, "site-b");
    wait_up(&p.b, "site-a");

    // 10 s of pings at 20/s, each answered within a second, across both rekeys.
    let ping = ping_paced_in_background(
        &p.topo.lan_a,
        Ipv4Addr::new(10, 2, 0, 2),
        200,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(50),
        Duration::from_secs(1),
    );
    std::thread::sleep(Duration::from_secs(1));

    // CHILD_SA: new SPIs on both ends, the IKE SA stays.
    let before = tunnel(&p.a, "site-b");
    let old_child = before["child"]["spi_in"].as_str().unwrap().to_string();
    let old_ike = before["ike"]["spi_i"].as_str().unwrap().to_string();
    let o = ctl(&p.a, &["rekey", "site-b"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "rekey: {out}{err}\n{}", p.a.log_text());
    println!("$ ironsecctl rekey site-b\n{out}");
    assert!(
        out.starts_with("connection 'site-b': rekeying 1 CHILD_SA\n  192.0.2.1 -> 192.0.2.2: "),
        "{out}"
    );
    assert!(out.contains(&format!("CHILD_SA {old_child}_i")), "{out}");
    let ok = poll_until(Duration::from_secs(5), || {
        let t = tunnel(&p.a, "site-b");
        t["child"]["spi_in"] != old_child.as_str() && t["state"] == "up"
    });
    let after = tunnel(&p.a, "site-b");
    assert!(ok, "CHILD_SA not rekeyed: {after:#}\n{}", p.a.log_text());
    assert_eq!(after["ike"]["spi_i"], old_ike.as_str(), "{after:#}");
    assert_eq!(
        num(&p.a.status(), "/connections/0/counters/child_rekeys"),
        1
    );
    // gwB answered the rekey: it sends on the new SA once gwA deleted the old one.
    let ok = poll_until(Duration::from_secs(5), || {
        tunnel(&p.b, "site-a")["child"]["spi_out"] == after["child"]["spi_in"]
    });
    assert!(
        ok,
        "gwB does not send on the new SA: {:#}",
        tunnel(&p.b, "site-a")
    );

    // IKE SA, with --json: new IKE SPIs, the CHILD_SA moves along.
    std::thread::sleep(Duration::from_secs(1));
    let v = ctl_json(&p.a, &["rekey", "site-b", "--ike"]);
    println!("$ ironsecctl --json rekey site-b --ike\n{v:#}");
    assert_eq!(v["command"], "rekey");
    assert_eq!(v["kind"], "ike");
    assert_eq!(v["connection"], "site-b");
    assert_eq!(v["started"][0]["ike_spi_i"], old_ike.as_str(), "{v:#}");
    assert_eq!(v["started"][0]["remote"], "192.0.2.2");
    let child_now = after["child"]["spi_in"].clone();
    let ok = poll_until(Duration::from_secs(5), || {
        let t = tunnel(&p.a, "site-b");
        t["ike"]["spi_i"] != old_ike.as_str() && t["ike"]["state"] == "established"
    });
    let after = tunnel(&p.a, "site-b");
    assert!(ok, "IKE SA not rekeyed: {after:#}\n{}", p.a.log_text());
    assert_eq!(after["child"]["spi_in"], child_now, "{after:#}");
    assert_eq!(num(&p.a.status(), "/connections/0/counters/ike_rekeys"), 1);

    let run = ping.join().expect("ping thread");
    let lost: Vec<u16> = run.lost().iter().map(|r| r.seq).collect();
    assert!(
        lost.is_empty(),
        "{} of {} pings lost across the rekeys (seq {lost:?})\n{}",
        lost.len(),
        run.sent(),
        Daemon::both_logs(&p.a, &p.b)
    );

    // Refusals: unknown, never negotiated (site-c has no IKE SA), exit code 1.
    for (args, want) in [
        (
            vec!["rekey", "nope"],
            "ironsecd: no connection named 'nope'\n".to_string(),
        ),
        (
            vec!["rekey", "site-c", "--ike"],
            "ironsecd: connection 'site-c': nothing to rekey: 192.0.2.1 -> 192.0.2.9: no IKE SA \
             (the tunnel is down)\n"
                .to_string(),
        ),
    ] {
        let o = ctl(&p.a, &args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {out}{err}");
        assert_eq!(err, want, "{args:?}");
    }
    let o = ctl(&p.a, &["--json", "rekey", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"], "no connection named 'nope'");
    drop(p.dir);
}

#[test]
#[ignore = "needs root"]
fn list_conns_shows_the_running_config_and_status_filters_by_name() {
    let _s = serial();
    let p = pair("start");
    wait_up(&p.a, "site-b");

    let o = ctl(&p.a, &["list-conns"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    println!("$ ironsecctl list-conns\n{out}");
    for want in [
        "site-b: IKEv2, psk auth, active-standby, start_action start, close_action restart\n",
        "  local:  gw-a.example  10.1.0.0/24\n",
        "  remote: gw-b.example  10.2.0.0/24\n",
        "  ike proposals: aes128gcm16-prfsha256-x25519\n",
        "  esp proposals: aes128gcm16\n",
        "  lifetimes: CHILD rekey 3600s, IKE rekey 14400s, reauth never\n",
        "    192.0.2.1 -> 192.0.2.2  priority ",
        "site-c: IKEv2, psk auth, active-standby, start_action none, close_action none\n",
        "  remote: gw-c.example  10.3.0.0/24\n",
        "    192.0.2.1 -> 192.0.2.9  priority ",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    assert!(
        out.contains(&format!("  psk_file: {}\n", p.psk.display())),
        "{out}"
    );
    let psk = fs::read_to_string(&p.psk).unwrap();
    let psk = psk.trim();
    assert!(!out.contains(&psk[2..]), "the PSK is shown:\n{out}");

    // One by name, several by pattern, none by pattern (said, not an error), unknown (error).
    let o = ctl(&p.a, &["list-conns", "site-c"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.starts_with("site-c: ") && !out.contains("site-b"),
        "{out}"
    );
    let v = ctl_json(&p.a, &["list-conns", "site-*"]);
    let names: Vec<&str> = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["site-b", "site-c"]);
    assert_eq!(
        v["connections"][0]["ike"]["esp_proposals"][0],
        "aes128gcm16"
    );
    assert_eq!(v["connections"][0]["tunnels"][0]["remote"], "192.0.2.2");
    assert!(!v.to_string().contains(&psk[2..]), "the PSK is in JSON");
    let ike = &v["connections"][0]["ike"];
    assert_eq!(
        (&ike["auth"], &ike["local_auth"], &ike["remote_auth"]),
        (&"psk".into(), &"psk".into(), &"psk".into()),
        "{v:#}"
    );
    // No certificate in a PSK gateway: `certs` says so (tests/interop_certs.rs lists some).
    let o = ctl(&p.a, &["certs"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        text(&o).0.starts_with("no certificates loaded"),
        "{:?}",
        text(&o)
    );
    let v = ctl_json(&p.a, &["certs"]);
    assert_eq!(v["certificates"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["crls"], serde_json::json!([]), "{v:#}");
    let o = ctl(&p.a, &["list-conns", "hub-*"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(
        text(&o).0,
        "no connection matches 'hub-*' (configured: site-b, site-c)\n"
    );
    let o = ctl(&p.a, &["list-conns", "site-x"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o).1,
        "ironsecctl: no connection named 'site-x' (configured: site-b, site-c)\n"
    );

    // status NAME|PATTERN
    let o = ctl(&p.a, &["status", "site-c"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("site-c") && !out.contains("site-b"), "{out}");
    let st = ctl_json(&p.a, &["status", "site-b"]);
    assert_eq!(st["connections"].as_array().unwrap().len(), 1, "{st:#}");
    assert_eq!(st["connections"][0]["name"], "site-b");
    let st = ctl_json(&p.a, &["status", "site-?"]);
    assert_eq!(st["connections"].as_array().unwrap().len(), 2, "{st:#}");
    let o = ctl(&p.a, &["status", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o).1,
        "ironsecctl: no connection named 'nope' (configured: site-b, site-c)\n"
    );
    let o = ctl(&p.a, &["--json", "status", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        json_of(&o)["error"],
        "no connection named 'nope' (configured: site-b, site-c)"
    );
    let o = ctl(&p.a, &["status", "x*"]);
    assert!(o.status.success());
    assert!(
        text(&o)
            .0
            .ends_with("no connection matches 'x*' (configured: site-b, site-c)\n"),
        "{:?}",
        text(&o)
    );

    // What a reload applied shows, not what the file said at start.
    fs::write(
        &p.config_a,
        config_a(&p.a.socket, &p.psk, "start", "aes256gcm16"),
    )
    .unwrap();
    let v = ctl_json(&p.a, &["reload"]);
    assert_eq!(v["command"], "reload");
    assert!(v["ok"].as_str().unwrap().starts_with("reloaded "), "{v:#}");
    let v = ctl_json(&p.a, &["list-conns", "site-c"]);
    assert_eq!(
        v["connections"][0]["ike"]["esp_proposals"],
        serde_json::json!(["aes256gcm16"]),
        "{v:#}"
    );
    // A refused reload changes nothing.
    fs::write(&p.config_a, "[gateway]\nnot_a_key = 1\n").unwrap();
    let o = ctl(&p.a, &["--json", "reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        json_of(&o)["error"]
            .as_str()
            .unwrap()
            .starts_with("reload refused, the running config stays"),
        "{:?}",
        text(&o)
    );
    let v = ctl_json(&p.a, &["list-conns"]);
    assert_eq!(v["connections"].as_array().unwrap().len(), 2);
    drop(p.b);
    drop(p.dir);
}

#[test]
#[ignore = "needs root"]
fn json_outcomes_of_initiate_and_terminate() {
    let _s = serial();
    let p = pair("none");
    std::thread::sleep(Duration::from_millis(500));

    let v = ctl_json(&p.a, &["initiate", "site-b", "--timeout", "15"]);
    assert_eq!(v["command"], "initiate");
    assert_eq!(v["connection"], "site-b");
    assert_eq!(v["outcome"], "up", "{v:#}");
    assert_eq!(v["ok"], "connection 'site-b': initiating 1 tunnel");
    assert_eq!(v["tunnels"][0]["state"], "up");
    assert_eq!(v["tunnels"][0]["remote"], "192.0.2.2:4500");

    // Nobody answers at 192.0.2.9: the outcome after the wait says so, exit code 1.
    let o = ctl(&p.a, &["--json", "initiate", "site-c", "--timeout", "2"]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    let v = json_of(&o);
    println!("$ ironsecctl --json initiate site-c --timeout 2\n{v:#}");
    assert_eq!(v["outcome"], "timeout", "{v:#}");
    assert_eq!(v["connection"], "site-c");
    assert_eq!(v["waited_secs"], 2);
    assert!(
        v["error"].as_str().unwrap().starts_with(
            "connection 'site-c' is not up after 2s\n  tunnel 192.0.2.1:4500 -> 192.0.2.9:4500: "
        ),
        "{v:#}"
    );
    assert_eq!(v["tunnels"][0]["remote"], "192.0.2.9:4500");
    assert_ne!(v["tunnels"][0]["state"], "up");
    // The same in text: the reason on stderr.
    let o = ctl(&p.a, &["initiate", "site-b", "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o).1,
        "ironsecd: connection 'site-b': every tunnel already has an IKE SA\n"
    );

    // Without waiting, the outcome is that it started.
    let v = ctl_json(&p.a, &["terminate", "site-c"]);
    assert_eq!(v["ok"], "connection 'site-c': deleting 1 IKE SA", "{v:#}");
    let v = ctl_json(&p.a, &["initiate", "site-c", "--timeout", "0"]);
    assert_eq!(v["outcome"], "initiating", "{v:#}");
    assert!(v.get("tunnels").is_none(), "{v:#}");

    let v = ctl_json(&p.a, &["terminate", "site-b"]);
    assert_eq!(v["command"], "terminate");
    assert_eq!(v["connection"], "site-b");
    assert_eq!(v["ok"], "connection 'site-b': deleting 1 IKE SA");
    let o = ctl(&p.a, &["--json", "terminate", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"], "no connection named 'nope'");
    drop(p.b);
    drop(p.dir);
}

/// `bin` (a copy of ironsecctl) as user nobody, through setpriv.
fn ctl_as_nobody(bin: &Path, socket: &Path, args: &[&str]) -> Output {
    run_timeout(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin)
            .arg("--socket")
            .arg(socket)
            .args(args),
        Duration::from_secs(30),
    )
}

/// Removes a directory on drop.
struct Gone(std::path::PathBuf);

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root"]
fn permission_denied_says_run_as_root() {
    let _s = serial();
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    // A socket as ironsecd makes it: 0600 in a 0700 directory, owned by root, listening.
    let sock = dir.join("ironsecd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o600)).unwrap();
    // ironsecctl where nobody can run it (the build tree need not be reachable).
    let bin_dir = std::env::temp_dir().join(format!("ironsec-it-{prefix}-bin"));
    let _gone = Gone(bin_dir.clone());
    fs::create_dir_all(&bin_dir).unwrap();
    fs::set_permissions(&bin_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.join("ironsecctl");
    fs::copy(IRONSECCTL, &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    for (args, json) in [(vec!["status"], false), (vec!["--json", "reload"], true)] {
        let o = ctl_as_nobody(&bin, &sock, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {:?}", text(&o));
        let want = format!("permission denied on {}: run as root", sock.display());
        if json {
            assert_eq!(json_of(&o)["error"], want.as_str());
        } else {
            assert_eq!(text(&o).1, format!("ironsecctl: {want}\n"));
        }
    }
    // The socket alone closed to nobody (its directory open): the same answer.
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o755)).unwrap();
    let o = ctl_as_nobody(&bin, &sock, &["status"]);
    assert_eq!(
        text(&o).1,
        format!(
            "ironsecctl: permission denied on {}: run as root\n",
            sock.display()
        )
    );
    drop(listener);
}

#[test]
fn not_running_is_not_permission_denied() {
    let dir = std::env::temp_dir().join(format!("ironsec-it-ctl-nr-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    // No socket at all.
    let missing = dir.join("missing.sock");
    let o = ironsecctl(&missing, &["status"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o).1;
    assert!(
        err.starts_with(&format!(
            "ironsecctl: ironsecd is not running on {} (",
            missing.display()
        )),
        "{err}"
    );
    // A socket left behind by a daemon that is gone: connection refused, the same answer.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let o = ironsecctl(&stale, &["--json", "rekey", "site-b"]);
    assert_eq!(o.status.code(), Some(1));
    let e = json_of(&o)["error"].as_str().unwrap().to_string();
    assert!(
        e.starts_with(&format!("ironsecd is not running on {} (", stale.display())),
        "{e}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn genpsk_writes_a_private_key_file_check_accepts() {
    let dir = std::env::temp_dir().join(format!("ironsec-it-genpsk-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let psk = dir.join("site-b.psk");
    let nowhere = dir.join("no-daemon.sock");
    let o = ironsecctl(&nowhere, &["genpsk", psk.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    let mode = fs::metadata(&psk).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = fs::read_to_string(&psk).unwrap();
    assert_eq!(key.len(), 67, "{key:?}");
    assert!(key.starts_with("0x") && key.ends_with('\n'));
    assert!(key[2..66].bytes().all(|b| b.is_ascii_hexdigit()));

    // Never overwritten.
    let o = ironsecctl(&nowhere, &["genpsk", psk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o).1,
        format!("ironsecctl: {} exists; not overwriting it\n", psk.display())
    );
    assert_eq!(fs::read_to_string(&psk).unwrap(), key);

    // To stdout, a different key each time; --json too.
    let a = ironsecctl(&nowhere, &["genpsk"]);
    let b = ironsecctl(&nowhere, &["--json", "genpsk"]);
    assert!(a.status.success() && b.status.success());
    let a = String::from_utf8(a.stdout).unwrap();
    assert_eq!(a.len(), 67);
    let b = json_of(&b)["psk"].as_str().unwrap().to_string();
    assert_eq!(b.len(), 66);
    assert_ne!(a.trim(), b);
    assert_ne!(a, key);

    // ironsecd check takes it as psk_file.
    let cfg = dir.join("gw.toml");
    fs::write(
        &cfg,
        gateway_toml(&dir.join("x.sock"), "")
            + &conn_toml(&Conn {
                name: "site-b",
                local_id: "gw-a.example",
                remote_id: "gw-b.example",
                psk_file: &psk,
                local_ts: "10.1.0.0/24",
                remote_ts: "10.2.0.0/24",
                local: Ipv4Addr::new(192, 0, 2, 1),
                remote: Ipv4Addr::new(192, 0, 2, 2),
                start_action: "start",
                extra: "",
            }),
    )
    .unwrap();
    let o = run_timeout(
        Command::new(IRONSECD)
            .arg("--config")
            .arg(&cfg)
            .arg("check"),
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "ironsecd check: {:?}", text(&o));
    let _ = fs::remove_dir_all(&dir);
}
