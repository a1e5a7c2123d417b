//! What an operator's tooling reads from ironsecd (issue 21): its log in each format and its
//! metrics, against the alert rules and dashboard shipped in `contrib/`.
//!
//! - `json_logs`: both gateways of an IKE tunnel log JSON (one by `--log-format json`, one by
//!   `IRONSEC_LOG_FORMAT=json`): every line of their stderr is one JSON object with
//!   `timestamp`, `level` and `fields` (holding the `message`), the tunnel's events carry
//!   their fields (connection, remote_id, SPIs), and no PSK byte appears.
//! - `journald_native_protocol`: gwA runs in a mount namespace of its own where a unix
//!   datagram socket of this test is bound at `/run/systemd/journal/socket`, with
//!   `JOURNAL_STREAM` naming its stderr (as systemd sets it) and no `--log-format`: `auto`
//!   must detect the journal and speak its native protocol there. The datagrams are parsed:
//!   a warning has `PRIORITY=4` and its fields upper-case (`KEY=connection[0].psk_file`), an
//!   info line `PRIORITY=6`, a debug line `PRIORITY=7`; nothing goes to stderr. Asked for by
//!   name without a journal, `--log-format journald` makes ironsecd exit 1 saying why.
//! - `contrib_metrics_exist_in_a_live_scrape`: every `ironsec_*` metric the alert rules and
//!   the Grafana dashboard name is in a live gateway's scrape (with samples, except the static
//!   tunnels' one in an IKE lab), from the endpoint that is on by default on 127.0.0.1:14500
//!   and not reachable from the WAN; with `metrics_token_file` (set by the environment) a
//!   scrape without the token, or with a wrong one, gets 401 and no metric, and the token is
//!   in no log.
//! - `promtool_checks_and_tests_the_alert_rules` (needs promtool, Debian `prometheus`):
//!   `promtool check rules` and `promtool test rules` on `contrib/prometheus/`, every alert
//!   tested, and the dashboard's queries all use the `$datasource` template variable and are
//!   valid PromQL (checked by promtool as recording rules).
//!
//! Run: `cargo test -p ironsecd --test observability -- --include-ignored --test-threads=1`

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The metrics endpoint's default address (gateway.metrics unset).
const DEFAULT_METRICS: &str = "127.0.0.1:14500";

/// Writes gwA's or gwB's config from the IKE examples with `psk` (mode `psk_mode`) and
/// `extra` lines appended to the connection.
fn ike_config(
    dir: &TempDir,
    example: &str,
    tag: &str,
    psk_text: &str,
    psk_mode: u32,
    extra: &str,
) -> (PathBuf, PathBuf) {
    let psk = dir.join(&format!("psk-{tag}"));
    write_secret(&psk, format!("{psk_text}\n"));
    fs::set_permissions(&psk, fs::Permissions::from_mode(psk_mode)).unwrap();
    let sock = dir.join(&format!("{tag}.sock"));
    let text = rewrite_toml_lines(
        &example_config(example),
        &[
            ("control_socket", toml_str(sock.to_str().unwrap())),
            ("psk_file", toml_str(psk.to_str().unwrap())),
        ],
    ) + extra;
    let cfg = dir.join(&format!("gw-{tag}.toml"));
    fs::write(&cfg, text).unwrap();
    (cfg, sock)
}

#[test]
#[ignore = "needs root"]
fn json_logs() {
    require_root();
    let _g = serial();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let psk = format!("0x{}", hex(&random_bytes(32)));
    let (cfg_a, sock_a) = ike_config(&dir, "ike-gw-a.toml", "a", &psk, 0o600, "");
    let (cfg_b, sock_b) = ike_config(&dir, "ike-gw-b.toml", "b", &psk, 0o600, "");
    // gwB by the environment variable (as the unit's default file sets it), gwA by the flag.
    let mut b = Daemon::start_with_env(
        "gwB",
        &topo.gw_b,
        &cfg_b,
        &sock_b,
        dir.join("b.log"),
        Some("info"),
        &[("IRONSEC_LOG_FORMAT", "json".to_string())],
    );
    let mut cmd = ns_cmd(&topo.gw_a, IRONSECD);
    cmd.args(["--log-format", "json", "--config"]).arg(&cfg_a);
    let mut a = Daemon::start_command(
        "gwA",
        &topo.gw_a,
        cmd,
        &cfg_a,
        &sock_a,
        dir.join("a.log"),
        Some("info"),
        &[],
    );
    let up = poll_until(
        Duration::from_secs(10),
        || matches!((ctl_status(&sock_a), ctl_status(&sock_b)), (Ok(x), Ok(y)) if tunnel_up(&x) && tunnel_up(&y)),
    );
    assert!(up, "tunnel not up\n{}", Daemon::both_logs(&a, &b));
    assert!(a.stop().is_some_and(|s| s.success()));
    assert!(b.stop().is_some_and(|s| s.success()));
    let psk_hex = psk.trim_start_matches("0x").to_string();
    for (who, d) in [("gwA", &a), ("gwB", &b)] {
        let text = d.log_text();
        assert!(!text.contains(&psk_hex), "{who}: PSK in the log");
        let mut events = Vec::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{who}: not one JSON object per line ({e}): {line:?}"));
            assert!(v["timestamp"].is_string(), "{who}: {line}");
            assert!(
                ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                    .contains(&v["level"].as_str().unwrap_or("")),
                "{who}: {line}"
            );
            assert!(v["fields"]["message"].is_string(), "{who}: {line}");
            events.push(v);
        }
        let find = |msg: &str| {
            events
                .iter()
                .find(|v| v["fields"]["message"] == msg)
                .unwrap_or_else(|| panic!("{who}: no {msg:?} in\n{text}"))
        };
        let ike = find("IKE SA up");
        assert_eq!(ike["level"], "INFO");
        assert!(
            ike["fields"]["connection"]
                .as_str()
                .unwrap()
                .starts_with("site-"),
            "{ike}"
        );
        assert!(
            ike["fields"]["remote_id"]
                .as_str()
                .unwrap()
                .ends_with(".example"),
            "{ike}"
        );
        // Booleans and numbers stay typed.
        assert!(ike["fields"]["initiator"].is_boolean(), "{ike}");
        let child = find("CHILD_SA up");
        let spi = child["fields"]["spi_in"].as_str().unwrap();
        assert!(
            spi.len() == 10 && spi.starts_with("0x") && u32::from_str_radix(&spi[2..], 16).is_ok(),
            "{child}"
        );
        assert!(find("ironsecd ready")["fields"]["workers"].is_u64());
        find("SIGTERM: shutting down");
    }
}

/// One journal entry of the native protocol: `KEY=value` lines, or `KEY`, a 64-bit
/// little-endian length and the value's bytes for values holding a newline.
fn parse_journal_entry(mut d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let nl = d
            .iter()
            .position(|&b| b == b'\n')
            .expect("newline-terminated field");
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            ));
            d = &d[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let val = &d[nl + 9..nl + 9 + len];
            assert_eq!(
                d[nl + 9 + len],
                b'\n',
                "length-encoded field {key} not terminated"
            );
            out.push((key, String::from_utf8_lossy(val).into_owned()));
            d = &d[nl + 10 + len..];
        }
    }
    out
}

/// `sh -c` script run by `unshare --mount`: bind `$0` over /run (so the journal's socket is
/// this test's) and run the rest. The daemon's network namespace is entered before (by `ip
/// netns exec`, which needs the real /run/netns).
const BIND_RUN: &str = "mount --bind \"$0\" /run && exec \"$@\"";

#[test]
#[ignore = "needs root"]
fn journald_native_protocol() {
    require_root();
    let _g = serial();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let run = dir.join("run");
    fs::create_dir_all(run.join("systemd/journal")).unwrap();
    let journal = UnixDatagram::bind(run.join("systemd/journal/socket")).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Read as journald does, from the start: a datagram socket's queue is short (10 by
    // default), and a daemon whose journal stops reading blocks on its next line.
    let entries = Arc::new(Mutex::new(Vec::<BTreeMap<String, String>>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (entries, done) = (entries.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while !done.load(Ordering::Relaxed) {
                match journal.recv(&mut buf) {
                    Ok(0) => {} // the layer's "is anyone there" probe
                    Ok(n) => entries
                        .lock()
                        .unwrap()
                        .push(parse_journal_entry(&buf[..n]).into_iter().collect()),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => panic!("journal socket: {e}"),
                }
            }
        })
    };
    // A group-readable PSK accepted with allow_readable_secret_file: a warning at start.
    let psk = format!("0x{}", hex(&random_bytes(32)));
    let (cfg, sock) = ike_config(
        &dir,
        "ike-gw-a.toml",
        "a",
        &psk,
        0o640,
        "allow_readable_secret_file = true\n",
    );
    // systemd sets JOURNAL_STREAM to the device and inode of the stream it gives as stderr:
    // here the log file (created now, reopened by the spawn with the same inode).
    let log = dir.join("a.log");
    fs::write(&log, "").unwrap();
    let m = fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", m.dev(), m.ino());
    let wrapper: Vec<String> = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        BIND_RUN,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([run.to_str().unwrap().to_string()])
    .collect();
    let mut a = Daemon::start_wrapped(
        "gwA",
        &topo.gw_a,
        &cfg,
        &sock,
        log.clone(),
        Some("debug"),
        &[("JOURNAL_STREAM", stream)],
        &wrapper,
    );
    let seen = poll_until(Duration::from_secs(10), || {
        let es = entries.lock().unwrap();
        es.iter().any(|e| {
            e.get("MESSAGE")
                .is_some_and(|m| m.contains("initiating IKE SA"))
        }) && es
            .iter()
            .any(|e| e.get("PRIORITY").map(String::as_str) == Some("7"))
    });
    a.stop();
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let entries = entries.lock().unwrap().clone();
    assert!(
        seen,
        "no initiation and debug line in the journal: {entries:#?}"
    );
    let shown = || format!("{entries:#?}\nstderr:\n{}", a.log_text());
    let find = |msg: &str| {
        entries
            .iter()
            .find(|e| e.get("MESSAGE").is_some_and(|m| m.contains(msg)))
            .unwrap_or_else(|| panic!("no journal entry {msg:?}\n{}", shown()))
    };
    let warn = find("secret file is readable by its group");
    assert_eq!(warn["PRIORITY"], "4", "{warn:?}");
    assert!(warn["KEY"].ends_with("psk_file"), "{warn:?}");
    assert_eq!(warn["MODE"], "0640", "{warn:?}");
    assert_eq!(warn["SYSLOG_IDENTIFIER"], "ironsecd", "{warn:?}");
    let ready = find("ironsecd ready");
    assert_eq!(ready["PRIORITY"], "6", "{ready:?}");
    assert_eq!(ready["TUN"], "ipsec0", "{ready:?}");
    let init = find("initiating IKE SA");
    assert_eq!(init["CONNECTION"], "site-b", "{init:?}");
    assert!(init["REMOTE"].starts_with("192.0.2.2"), "{init:?}");
    assert!(
        entries.iter().any(|e| e["PRIORITY"] == "7"),
        "no debug entry at PRIORITY=7\n{}",
        shown()
    );
    for e in &entries {
        assert!(
            e.keys().all(|k| !k.starts_with("F_")),
            "prefixed field: {e:?}"
        );
        assert!(e
            .values()
            .all(|v| !v.contains(psk.trim_start_matches("0x"))));
    }
    let stderr = a.log_text();
    assert!(
        !stderr.contains("ironsecd ready"),
        "text on stderr too:\n{stderr}"
    );

    // Asked for by name where no journal listens: a clear refusal, before anything starts.
    let empty = dir.join("empty-run");
    fs::create_dir_all(&empty).unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", BIND_RUN])
        .arg(&empty)
        .args([IRONSECD, "--log-format", "journald", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--log-format journald: cannot reach the journal's socket"),
        "{err}"
    );
}

/// `ironsec_*` names in `text`, each once.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find("ironsec_") {
        let start = i + off;
        let boundary =
            start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start;
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_')
        {
            end += 1;
        }
        if boundary {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

fn contrib(path: &str) -> String {
    let p = workspace_root().join("contrib").join(path);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `GET /metrics` from namespace `ns`, with `Authorization: Bearer TOKEN` when given.
fn scrape(ns: &str, addr: &'static str, token: Option<&str>) -> std::io::Result<String> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    in_netns(ns, move || {
        use std::io::{Read, Write};
        let mut s =
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
}

#[test]
#[ignore = "needs root"]
fn contrib_metrics_exist_in_a_live_scrape() {
    require_root();
    let _g = serial();
    // Bandwidth sharing on, so its series exist, and a bearer token; both set by the
    // environment, as an operator may (IRONSEC_GATEWAY__*).
    let dir = TempDir::new(&unique_prefix());
    let token = hex(&random_bytes(16));
    let token_file = dir.join("metrics.token");
    write_secret(&token_file, format!("{token}\n"));
    let opts = IkeLabOpts {
        wrapper: vec![
            "env".into(),
            "IRONSEC_GATEWAY__BANDWIDTH=100M".into(),
            format!(
                "IRONSEC_GATEWAY__METRICS_TOKEN_FILE={}",
                token_file.display()
            ),
        ],
        ..IkeLabOpts::default()
    };
    let lab = IkeLab::start(opts);
    lab.wait_up(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // Without the token, or with a wrong one: 401, nothing else.
    for t in [None, Some("wrong"), Some(&token[1..])] {
        let r = scrape(&lab.topo.gw_a, DEFAULT_METRICS, t).unwrap();
        assert!(r.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{t:?}: {r}");
        assert!(!r.contains("ironsec_"), "{r}");
    }
    let m = scrape(&lab.topo.gw_a, DEFAULT_METRICS, Some(&token))
        .unwrap_or_else(|e| panic!("default metrics endpoint: {e}\n{}", lab.logs()));
    assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
    assert!(
        lab.log_a()
            .contains("metrics endpoint listening listen=127.0.0.1:14500 auth=\"bearer token\""),
        "{}",
        lab.log_a()
    );
    assert!(!lab.logs().contains(&token), "the token is in a log");
    // Loopback only by default: not reachable from the WAN.
    assert!(
        scrape(&lab.topo.gw_b, "192.0.2.1:14500", Some(&token)).is_err(),
        "the default metrics endpoint answers on the WAN address"
    );
    let typed: BTreeSet<String> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    let sampled: BTreeSet<String> = m
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with("ironsec_"))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    // Only static tunnels have the first, only certificates the second, only remote-access
    // connections the third; the IKE lab (PSK, one site) has none of them
    // (tests/interop_certs.rs scrapes a gateway with certificates).
    let conditional = [
        "ironsec_static_seq_space_used_percent",
        "ironsec_certificate_expiry_timestamp_seconds",
        "ironsec_pool_addresses",
    ];
    for (file, names) in [
        (
            "prometheus/ironsec-alerts.yml",
            metric_names(&contrib("prometheus/ironsec-alerts.yml")),
        ),
        (
            "grafana/ironsec-dashboard.json",
            metric_names(&contrib("grafana/ironsec-dashboard.json")),
        ),
    ] {
        assert!(names.len() >= 10, "{file}: only {names:?}");
        for n in &names {
            assert!(
                typed.contains(n),
                "{file} names {n}, which the daemon does not export\n{m}"
            );
            assert!(
                sampled.contains(n) || conditional.contains(&n.as_str()),
                "{file} names {n}, which has no sample in a gateway with a tunnel up\n{m}"
            );
        }
    }
    // The tunnel's series: state is a value, never a label of ironsec_tunnel_up.
    let labels = "connection=\"site-b\",local=\"192.0.2.1\",remote=\"192.0.2.2\"";
    for want in [
        format!("ironsec_tunnel_up{{{labels}}} 1"),
        format!("ironsec_tunnel_state{{{labels},state=\"up\"}} 1"),
        format!("ironsec_tunnel_state{{{labels},state=\"connecting\"}} 0"),
        format!("ironsec_tunnel_state{{{labels},state=\"down\"}} 0"),
        format!("ironsec_tunnel_state{{{labels},state=\"trapped\"}} 0"),
    ] {
        assert!(m.lines().any(|l| l == want), "missing {want}\n{m}");
    }
}

#[test]
#[ignore = "needs promtool"]
fn promtool_checks_and_tests_the_alert_rules() {
    let dir = workspace_root().join("contrib/prometheus");
    for args in [
        &["check", "rules", "ironsec-alerts.yml"][..],
        &["test", "rules", "ironsec-alerts.test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool (Debian package prometheus, tests/install-deps.sh): {e}")
            });
        assert!(
            out.status.success(),
            "promtool {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert is tested: each name in the rules appears in the test file.
    let rules = contrib("prometheus/ironsec-alerts.yml");
    let tests = contrib("prometheus/ironsec-alerts.test.yml");
    for l in rules.lines() {
        if let Some(name) = l.trim().strip_prefix("- alert: ") {
            assert!(
                tests.contains(&format!("alertname: {name}\n")),
                "alert {name} has no promtool test"
            );
        }
    }
    // The dashboard imports anywhere: its data source is a template variable, used by
    // every panel and query.
    let d: Value = serde_json::from_str(&contrib("grafana/ironsec-dashboard.json")).unwrap();
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    // Every query is valid PromQL once Grafana's variables are filled in: promtool checks
    // them as recording rules.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{p}");
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{t}");
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains("ironsec_"), "{t}");
            let filled = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
                .replace("$connection", ".*");
            rules.push_str(&format!(
                "      - record: ironsec_dashboard_query\n        expr: {}\n",
                serde_json::to_string(&filled).unwrap()
            ));
        }
    }
    let tmp = TempDir::new(&unique_prefix());
    let file = tmp.join("dashboard-queries.yml");
    fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
