//! Bulk traffic between namespaces: a TCP transfer of a known pattern, and iperf3 runs.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{in_netns, ns_cmd, pattern_payload, poll_until, run_timeout, BgProc};

/// Sends `total` bytes of `pattern` over TCP from namespace `client_ns` to `server` (listening
/// in `server_ns`) and returns the number of bytes the server received. Bounded by `timeout`.
pub fn tcp_transfer(
    client_ns: &str,
    server_ns: &str,
    server: impl Into<SocketAddr>,
    pattern: &'static [u8],
    total: usize,
    timeout: Duration,
) -> usize {
    let server: SocketAddr = server.into();
    let listener: TcpListener = in_netns(server_ns, move || {
        TcpListener::bind(server).expect("bind TCP listener")
    });
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    let srv = std::thread::spawn(move || -> Result<usize, String> {
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err("no connection before the deadline".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        s.set_nonblocking(false).unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("receive timed out after {got} bytes"));
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got += n,
                Err(e) => return Err(format!("read after {got} bytes: {e}")),
            }
        }
    });
    let client: Result<(), String> = in_netns(client_ns, move || {
        let mut c = TcpStream::connect_timeout(&server, Duration::from_secs(5))
            .map_err(|e| format!("connect {server}: {e}"))?;
        c.set_write_timeout(Some(timeout)).unwrap();
        let chunk = pattern_payload(pattern, 16384);
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n])
                .map_err(|e| format!("write: {e}"))?;
            left -= n;
        }
        c.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        // Wait for the server's FIN so the whole exchange is on the wire before we return.
        c.set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 16];
        let _ = c.read(&mut b);
        Ok(())
    });
    let got = srv.join().unwrap();
    client.unwrap_or_else(|e| panic!("TCP client {client_ns} -> {server}: {e}"));
    got.unwrap_or_else(|e| panic!("TCP server {server_ns} {server}: {e}"))
}

// ------------------------------------------------------------------------------------------
// iperf3

pub struct Iperf3Result {
    pub sent: u64,
    pub received: u64,
    pub secs: f64,
    pub mbit_s: f64,
}

/// A one-shot iperf3 server (-s -1, JSON report in DIR/iperf3-server-TAG.json) on
/// `server_ip`:`port` in `server_ns`; returns once it listens (TCP or UDP), panics with its
/// output if it does not within 10 s.
fn iperf3_server(server_ns: &str, server_ip: IpAddr, port: u16, dir: &Path, tag: &str) -> BgProc {
    let port_s = port.to_string();
    let mut srv_cmd = ns_cmd(server_ns, "iperf3");
    srv_cmd.args([
        "-s",
        "-1",
        "-B",
        &server_ip.to_string(),
        "-p",
        &port_s,
        "--json",
    ]);
    let srv = BgProc::spawn(
        &format!("iperf3 server {tag}"),
        srv_cmd,
        dir.join(format!("iperf3-server-{tag}.json")),
    );
    let listening = poll_until(Duration::from_secs(10), || {
        let o = run_timeout(
            ns_cmd(server_ns, "ss").args(["-Htln", "sport", "=", &format!(":{port}")]),
            Duration::from_secs(5),
        );
        let udp = run_timeout(
            ns_cmd(server_ns, "ss").args(["-Huln", "sport", "=", &format!(":{port}")]),
            Duration::from_secs(5),
        );
        !String::from_utf8_lossy(&o.stdout).trim().is_empty()
            || !String::from_utf8_lossy(&udp.stdout).trim().is_empty()
    });
    assert!(
        listening,
        "iperf3 server {tag} did not listen within 10 s:\n{}",
        srv.log_text()
    );
    srv
}

/// One iperf3 run from `client_ns` to a one-shot server on `server_ip`:`port` in `server_ns`
/// with the client arguments `args` (e.g. `["-t", "5", "-P", "4"]`); returns the client's JSON
/// report. Bounded in time (the run's own length plus 60 s); panics with both sides' output if
/// iperf3 fails.
pub fn iperf3_json(
    client_ns: &str,
    server_ns: &str,
    server_ip: impl Into<IpAddr>,
    port: u16,
    args: &[&str],
    dir: &Path,
    tag: &str,
) -> Value {
    let server_ip = server_ip.into();
    let port_s = port.to_string();
    let mut srv = iperf3_server(server_ns, server_ip, port, dir, tag);
    let secs: u64 = args
        .windows(2)
        .find(|w| w[0] == "-t")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(10);
    let mut cli = ns_cmd(client_ns, "iperf3");
    cli.args(["-c", &server_ip.to_string(), "-p", &port_s, "--json"])
        .args(args);
    let out = run_timeout(&mut cli, Duration::from_secs(secs + 60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "iperf3 client ({tag}) failed: {}\n{text}\n{}\nserver:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        srv.log_text(),
    );
    let _ = srv.wait_exit(Duration::from_secs(15));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("iperf3 JSON ({e}): {text}"))
}

/// Throughput of each interval of an iperf3 JSON report (from [`iperf3_json`]), Mbit/s.
pub fn iperf3_interval_mbits(report: &Value) -> Vec<f64> {
    report["intervals"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| i["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6)
        .collect()
}

/// TCP retransmissions the sender of an iperf3 JSON report counted (0 when absent, as for UDP).
pub fn iperf3_retransmits(report: &Value) -> u64 {
    report
        .pointer("/end/sum_sent/retransmits")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// One iperf3 TCP run of `bytes` (-n) from `client_ns` to a one-shot server (-1) on
/// `server_ip`:5201 in `server_ns` (reverse: -R), IPv4 or IPv6. Bounded in time; panics with both sides'
/// output on failure. iperf3 stops counting at the sender's end-of-test message, so the
/// receiver's total may fall short of `bytes` (esnet/iperf#382): only the sender's is exact.
pub fn iperf3_tcp(
    client_ns: &str,
    server_ns: &str,
    server_ip: impl Into<IpAddr>,
    bytes: u64,
    reverse: bool,
    dir: &Path,
    tag: &str,
) -> Iperf3Result {
    let server_ip = server_ip.into();
    let port = "5201";
    let mut srv = iperf3_server(server_ns, server_ip, 5201, dir, tag);
    let t0 = Instant::now();
    let mut cli = ns_cmd(client_ns, "iperf3");
    cli.args([
        "-c",
        &server_ip.to_string(),
        "-p",
        port,
        "-n",
        &bytes.to_string(),
        "--json",
        "--connect-timeout",
        "5000",
    ]);
    if reverse {
        cli.arg("-R");
    }
    let out = run_timeout(&mut cli, Duration::from_secs(90));
    let secs = t0.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "iperf3 client ({tag}) failed: {}\n{text}\n{}\nserver:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        srv.log_text(),
    );
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("iperf3 JSON ({e}): {text}"));
    let get = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("iperf3 JSON has no {p}: {v:#}"))
    };
    let received = get("/end/sum_received/bytes");
    let sent = get("/end/sum_sent/bytes");
    let bps = v
        .pointer("/end/sum_received/bits_per_second")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let st = srv.wait_exit(Duration::from_secs(15));
    assert!(
        st.success(),
        "iperf3 server ({tag}) exited {st}:\n{}",
        srv.log_text()
    );
    Iperf3Result {
        sent,
        received,
        secs,
        mbit_s: bps / 1e6,
    }
}
