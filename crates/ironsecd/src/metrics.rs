//! Prometheus text exposition (format 0.0.4) of the [`Status`] document, served over a
//! minimal HTTP/1.x responder: one GET per connection, no keep-alive. On by default on
//! loopback (`gateway.metrics`, `"off"` to disable); with `gateway.metrics_token_file` a
//! scrape must send `Authorization: Bearer TOKEN`, checked in constant time.
//!
//! Series are stable: a label value never changes while the thing it names exists, so
//! alert rules and graphs follow one series per tunnel across state changes, rekeys, NAT
//! moves and new DNS answers. A tunnel is labelled with its connection and its configured
//! `local` and `remote` (the peer's address or DNS name as written, no port); its state is a
//! value (`ironsec_tunnel_up`, and `ironsec_tunnel_state` with one series per possible state,
//! 1 for the current one), never a label of a series that comes and goes.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::limits::{
    AcceptBackoff, METRICS_CONNECTIONS, METRICS_REQUEST_HEAD, READ_DEADLINE, WRITE_DEADLINE,
};

use crate::certs::{CertList, CertRole};
use crate::config::MetricsToken;
use crate::status::{Status, TunnelStatus, TUNNEL_STATES};

/// Label values are quoted; a connection name cannot hold `"` or `\` (config validation),
/// but escape anyway so the output stays parseable whatever a name holds.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn help(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample; `v` is a counter or gauge (u64), or a Unix time (i64, negative before 1970).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// Tunnel states as numbers, so alerts can say `ironsec_tunnel_up == 0`.
fn up(state: &str) -> u64 {
    u64::from(state == "up")
}

/// A tunnel's identity labels: stable for its life (module doc).
fn tunnel_labels<'a>(conn: &'a str, t: &'a TunnelStatus) -> [(&'static str, &'a str); 3] {
    [
        ("connection", conn),
        ("local", t.metrics_local()),
        ("remote", t.metrics_remote()),
    ]
}

/// `base` plus one more label.
fn with<'a>(
    base: [(&'static str, &'a str); 3],
    k: &'static str,
    v: &'a str,
) -> [(&'static str, &'a str); 4] {
    [base[0], base[1], base[2], (k, v)]
}

pub fn render(s: &Status) -> String {
    let mut o = Out(String::new());
    o.help(
        "ironsec_uptime_seconds",
        "gauge",
        "Seconds since ironsecd started.",
    );
    o.sample("ironsec_uptime_seconds", &[], s.uptime_secs);
    o.help(
        "ironsec_workers_failed",
        "gauge",
        "Fast-path workers that panicked or stopped on their own (the daemon then exits to be restarted).",
    );
    o.sample(
        "ironsec_workers_failed",
        &[],
        u64::try_from(s.workers_failed).unwrap_or(u64::MAX),
    );

    o.help(
        "ironsec_connection_up",
        "gauge",
        "1 when at least one tunnel of the connection has an SA to send with.",
    );
    for c in &s.connections {
        let any = c.tunnels.iter().any(|t| t.state == "up")
            || c.clients.iter().any(|cl| cl.tunnel.state == "up");
        o.sample(
            "ironsec_connection_up",
            &[("connection", &c.name)],
            u64::from(any),
        );
    }
    o.help(
        "ironsec_eap_failures_total",
        "counter",
        "Remote-access EAP logins that failed, by reason: wrong_password, unknown_user, refused_method (Nak), certificate (EAP-TLS chain refused), identity (certificate or remote_id mismatch), protocol (malformed or out of turn), radius_reject, radius_unreachable.",
    );
    for (reason, n) in &s.ike.eap_failure_reasons {
        o.sample(
            "ironsec_eap_failures_total",
            &[("reason", reason.as_str())],
            *n,
        );
    }
    o.help(
        "ironsec_clients",
        "gauge",
        "Remote-access clients connected (each with its address from the connection's pool).",
    );
    for c in &s.connections {
        if !c.pools.is_empty() {
            o.sample(
                "ironsec_clients",
                &[("connection", &c.name)],
                c.clients.len() as u64,
            );
        }
    }
    o.help(
        "ironsec_pool_addresses",
        "gauge",
        "A remote-access pool's addresses by state: online (held by a connected client), offline (kept for a client that left, until its grace period ends), free; one pool per family (label pool: its prefix).",
    );
    for c in &s.connections {
        for p in &c.pools {
            let free = p.size.saturating_sub(p.online + p.offline);
            for (state, n) in [("online", p.online), ("offline", p.offline), ("free", free)] {
                o.sample(
                    "ironsec_pool_addresses",
                    &[
                        ("connection", &c.name),
                        ("pool", &p.prefix),
                        ("state", state),
                    ],
                    n,
                );
            }
        }
    }
    o.help(
        "ironsec_interface_up",
        "gauge",
        "A route-based connection's tunnel interface: 1 while it exists and a tunnel of the connection has an SA (what is routed into it is sealed), 0 otherwise (dropped and counted as no_sa).",
    );
    for c in &s.connections {
        if let Some(i) = &c.interface {
            o.sample(
                "ironsec_interface_up",
                &[("connection", &c.name), ("interface", &i.name)],
                u64::from(i.present && i.state == "up"),
            );
        }
    }
    for (metric, help, pick) in [
        (
            "ironsec_interface_bytes_total",
            "Bytes the kernel counted on a route-based connection's tunnel interface: direction out = routed into the tunnel, in = delivered from it.",
            (|k: &crate::status::InterfaceCounters| (k.tx_bytes, k.rx_bytes))
                as fn(&crate::status::InterfaceCounters) -> (u64, u64),
        ),
        (
            "ironsec_interface_packets_total",
            "Packets the kernel counted on a route-based connection's tunnel interface (directions as for the bytes).",
            |k: &crate::status::InterfaceCounters| (k.tx_packets, k.rx_packets),
        ),
    ] {
        o.help(metric, "counter", help);
        for c in &s.connections {
            let Some(i) = &c.interface else { continue };
            let Some(k) = &i.kernel else { continue };
            let (out, inn) = pick(k);
            for (dir, v) in [("out", out), ("in", inn)] {
                o.sample(
                    metric,
                    &[
                        ("connection", &c.name),
                        ("interface", &i.name),
                        ("direction", dir),
                    ],
                    v,
                );
            }
        }
    }
    o.help(
        "ironsec_tunnel_up",
        "gauge",
        "1 when the tunnel has an SA to send with, 0 when connecting, down, trapped or dormant.",
    );
    for c in &s.connections {
        for t in &c.tunnels {
            o.sample(
                "ironsec_tunnel_up",
                &tunnel_labels(&c.name, t),
                up(&t.state),
            );
        }
    }
    o.help(
        "ironsec_tunnel_state",
        "gauge",
        "The tunnel's state: one series per state (up, connecting, down, trapped, dormant), 1 for the current one.",
    );
    for c in &s.connections {
        for t in &c.tunnels {
            for state in TUNNEL_STATES {
                o.sample(
                    "ironsec_tunnel_state",
                    &with(tunnel_labels(&c.name, t), "state", state),
                    u64::from(t.state == state),
                );
            }
        }
    }
    o.help(
        "ironsec_tunnel_active",
        "gauge",
        "1 when the tunnel carries its connection's traffic (multi-tunnel connections).",
    );
    for c in &s.connections {
        for t in &c.tunnels {
            if let Some(role) = &t.role {
                o.sample(
                    "ironsec_tunnel_active",
                    &tunnel_labels(&c.name, t),
                    u64::from(role == "active"),
                );
            }
        }
    }
    for (metric, help, pick) in [
        (
            "ironsec_tunnel_bytes_total",
            "Inner packet bytes through the tunnel, over every SA it has had.",
            (|t: &crate::status::Traffic| t.bytes) as fn(&crate::status::Traffic) -> u64,
        ),
        (
            "ironsec_tunnel_packets_total",
            "Inner packets through the tunnel, over every SA it has had.",
            |t: &crate::status::Traffic| t.packets,
        ),
    ] {
        o.help(metric, "counter", help);
        for c in &s.connections {
            for t in &c.tunnels {
                for (dir, tr) in [("out", &t.total_out), ("in", &t.total_in)] {
                    o.sample(
                        metric,
                        &with(tunnel_labels(&c.name, t), "direction", dir),
                        pick(tr),
                    );
                }
            }
        }
    }
    o.help(
        "ironsec_drops_total",
        "counter",
        "Packets dropped by the fast path, by reason.",
    );
    for (reason, n) in &s.drops {
        o.sample("ironsec_drops_total", &[("reason", reason)], *n);
    }
    o.help(
        "ironsec_rekeys_total",
        "counter",
        "Completed rekeys by connection and SA kind.",
    );
    for c in &s.connections {
        o.sample(
            "ironsec_rekeys_total",
            &[("connection", &c.name), ("sa", "child")],
            c.counters.child_rekeys,
        );
        o.sample(
            "ironsec_rekeys_total",
            &[("connection", &c.name), ("sa", "ike")],
            c.counters.ike_rekeys,
        );
    }
    o.help(
        "ironsec_child_rekey_failures_total",
        "counter",
        "CHILD_SA rekeys that failed: refused by the peer, or the SA reached its hard lifetime or volume limit first.",
    );
    for c in &s.connections {
        o.sample(
            "ironsec_child_rekey_failures_total",
            &[("connection", &c.name)],
            c.counters.child_rekey_failures,
        );
    }
    for (metric, help, pick) in [
        (
            "ironsec_dpd_failures_total",
            "Established IKE SAs whose peer stopped answering.",
            (|c: &crate::status::ConnectionCounters| c.dpd_failures)
                as fn(&crate::status::ConnectionCounters) -> u64,
        ),
        (
            "ironsec_negotiation_failures_total",
            "Failed negotiations (authentication, proposals, selectors...).",
            |c| c.failures,
        ),
        (
            "ironsec_ike_sa_established_total",
            "IKE SAs established.",
            |c| c.ike_up,
        ),
        (
            "ironsec_failovers_total",
            "Times traffic moved off a failed tunnel (or back, with preempt).",
            |c| c.failovers,
        ),
        (
            "ironsec_nat_keepalives_sent_total",
            "NAT keepalives sent (this gateway is behind a NAT and the tunnel was idle).",
            |c| c.nat_keepalives,
        ),
        (
            "ironsec_peer_moves_total",
            "Times a peer behind a NAT was followed to a new address or port.",
            |c| c.peer_moves,
        ),
    ] {
        o.help(metric, "counter", help);
        for c in &s.connections {
            o.sample(metric, &[("connection", &c.name)], pick(&c.counters));
        }
    }
    o.help(
        "ironsec_bandwidth_rate_bits",
        "gauge",
        "The rate a connection may send at now (its share of gateway.bandwidth), bits/s.",
    );
    for c in &s.connections {
        if let Some(b) = &c.bandwidth {
            o.sample(
                "ironsec_bandwidth_rate_bits",
                &[("connection", &c.name)],
                b.rate_bps,
            );
        }
    }
    o.help(
        "ironsec_bandwidth_shaped_packets_total",
        "counter",
        "Packets dropped for being over the connection's bandwidth share.",
    );
    for c in &s.connections {
        if let Some(b) = &c.bandwidth {
            o.sample(
                "ironsec_bandwidth_shaped_packets_total",
                &[("connection", &c.name)],
                b.shaped_packets,
            );
        }
    }
    o.help(
        "ironsec_bandwidth_offered_bytes_total",
        "counter",
        "Bytes a connection offered to send (admitted or shaped).",
    );
    for c in &s.connections {
        if let Some(b) = &c.bandwidth {
            o.sample(
                "ironsec_bandwidth_offered_bytes_total",
                &[("connection", &c.name)],
                b.offered_bytes,
            );
        }
    }
    let ike = &s.ike;
    for (metric, help, v) in [
        (
            "ironsec_ike_requests_total",
            "IKE exchanges this gateway started.",
            ike.requests_sent,
        ),
        (
            "ironsec_ike_retransmits_total",
            "Retransmissions of this gateway's IKE requests.",
            ike.retransmits_sent,
        ),
        (
            "ironsec_ike_received_total",
            "IKE messages received.",
            ike.received,
        ),
        (
            "ironsec_ike_malformed_total",
            "IKE messages dropped as malformed.",
            ike.malformed,
        ),
        (
            "ironsec_ike_no_proposal_chosen_total",
            "IKE_SA_INIT requests answered with NO_PROPOSAL_CHOSEN (no connection for the sender, or no acceptable proposal).",
            ike.no_proposal_chosen,
        ),
        (
            "ironsec_auth_rate_limited_total",
            "Remote-access EAP logins refused before any challenge: too many recent failures from the source address or for the user.",
            ike.auth_rate_limited,
        ),
        (
            "ironsec_log_lines_suppressed_total",
            "Log lines caused by unauthenticated datagrams and not written (per-source rate limit).",
            ike.log_suppressed,
        ),
        (
            "ironsec_ike_cookies_sent_total",
            "IKE_SA_INIT requests answered with a cookie (under load).",
            ike.cookies_sent,
        ),
        (
            "ironsec_ike_invalid_spi_sent_total",
            "INVALID_SPI notifications sent for ESP this gateway has no SA for.",
            ike.invalid_spi_sent,
        ),
        (
            "ironsec_ike_invalid_spi_hints_total",
            "INVALID_SPI notifications received (each starts a liveness check).",
            ike.invalid_spi_hints,
        ),
        (
            "ironsec_ike_integrity_failed_total",
            "Encrypted IKE messages for a known SA whose ICV did not verify.",
            ike.integrity_failed,
        ),
        (
            "ironsec_ike_wrong_message_id_total",
            "IKE messages for a known SA with a Message ID that fits no exchange.",
            ike.wrong_message_id,
        ),
        (
            "ironsec_ike_invalid_major_version_sent_total",
            "IKE requests of a later major version answered with INVALID_MAJOR_VERSION.",
            ike.invalid_major_version_sent,
        ),
        (
            "ironsec_ike_queue_dropped_total",
            "IKE datagrams dropped before the engine: its queue was full (a flood).",
            ike.queue_dropped,
        ),
    ] {
        o.help(metric, "counter", help);
        o.sample(metric, &[], v);
    }
    let c = &s.counters;
    o.help(
        "ironsec_packets_total",
        "counter",
        "Packets through the gateway's devices: tun rx/tx, udp rx/tx.",
    );
    for (path, v) in [
        ("tun_rx", c.tun_rx_packets),
        ("tun_tx", c.tun_tx_packets),
        ("udp_rx", c.udp_rx_packets),
        ("udp_tx", c.udp_tx_packets),
    ] {
        o.sample("ironsec_packets_total", &[("path", path)], v);
    }
    o.help(
        "ironsec_tun_super_packets_total",
        "counter",
        "TUN offload at work: super-packets read and split (rx), coalesced writes (tx).",
    );
    for (dir, v) in [
        ("rx", c.tun_rx_super_packets),
        ("tx", c.tun_tx_super_packets),
    ] {
        o.sample("ironsec_tun_super_packets_total", &[("direction", dir)], v);
    }
    o.help(
        "ironsec_udp_super_packets_total",
        "counter",
        "UDP offload at work on the ESP sockets: coalesced receives (rx, GRO), segmented sends (tx, GSO).",
    );
    for (dir, v) in [
        ("rx", c.udp_rx_super_packets),
        ("tx", c.udp_tx_super_packets),
    ] {
        o.sample("ironsec_udp_super_packets_total", &[("direction", dir)], v);
    }
    if let Some(n) = c.udp6_checksum_errors {
        o.help(
            "ironsec_udp6_checksum_errors_total",
            "counter",
            "UDP/IPv6 datagrams the kernel dropped for a bad checksum, or a zero one unless gateway.udp6_zero_checksum = \"accept\" (the namespace's Udp6InCsumErrors).",
        );
        o.sample("ironsec_udp6_checksum_errors_total", &[], n);
    }
    for (metric, help, v) in [
        (
            "ironsec_gro_bad_checksums_total",
            "Decrypted packets not coalesced because a checksum failed (written alone, unchanged).",
            c.gro_bad_checksums,
        ),
        (
            "ironsec_mss_clamped_total",
            "TCP SYNs whose MSS was lowered to fit a tunnel, both directions.",
            c.mss_clamped,
        ),
        (
            "ironsec_icmp_too_big_total",
            "ICMP fragmentation-needed / packet-too-big errors sent to the site.",
            c.icmp_too_big,
        ),
        (
            "ironsec_icmp_rate_limited_total",
            "ICMP too-big errors not sent: over the rate limit.",
            c.icmp_limited,
        ),
        (
            "ironsec_inner_fragmented_total",
            "Packets without DF cut into fragments to fit a tunnel before sealing.",
            c.inner_fragmented,
        ),
    ] {
        o.help(metric, "counter", help);
        o.sample(metric, &[], v);
    }
    o.help(
        "ironsec_child_sa_volume",
        "gauge",
        "The tunnel's CHILD_SA: bytes and packets in its busier direction and the highest sequence number, as its volume limits count them.",
    );
    for c in &s.connections {
        for t in &c.tunnels {
            if let Some(v) = t.child.as_ref().and_then(|ch| ch.volume.as_ref()) {
                for (measure, n) in [("bytes", v.bytes), ("packets", v.packets), ("seq", v.seq)] {
                    o.sample(
                        "ironsec_child_sa_volume",
                        &with(tunnel_labels(&c.name, t), "measure", measure),
                        n,
                    );
                }
            }
        }
    }
    o.help(
        "ironsec_child_sa_volume_limit",
        "gauge",
        "The tunnel's CHILD_SA: its volume limits (rekey_bytes, life_bytes, rekey_packets, life_packets; seq_rekey without ESN).",
    );
    for c in &s.connections {
        for t in &c.tunnels {
            if let Some(v) = t.child.as_ref().and_then(|ch| ch.volume.as_ref()) {
                for (limit, n) in [
                    ("rekey_bytes", v.rekey_bytes),
                    ("life_bytes", v.life_bytes),
                    ("rekey_packets", v.rekey_packets),
                    ("life_packets", v.life_packets),
                    ("seq_rekey", v.seq_rekey_at),
                ] {
                    if let Some(n) = n {
                        o.sample(
                            "ironsec_child_sa_volume_limit",
                            &with(tunnel_labels(&c.name, t), "limit", limit),
                            n,
                        );
                    }
                }
            }
        }
    }
    o.help(
        "ironsec_static_seq_space_used_percent",
        "gauge",
        "Static SAs (which cannot rekey): percent of the sequence space used; at 100 they stop sending.",
    );
    for c in &s.connections {
        for t in &c.tunnels {
            if let Some(q) = &t.seq_space {
                o.sample(
                    "ironsec_static_seq_space_used_percent",
                    &tunnel_labels(&c.name, t),
                    u64::from(q.percent),
                );
            }
        }
    }
    if !s.shared_addresses.is_empty() {
        o.help(
            "ironsec_shared_address_present",
            "gauge",
            "1 when the shared address (active-standby) is on this host, 0 when the other gateway should hold it.",
        );
        for a in &s.shared_addresses {
            o.sample(
                "ironsec_shared_address_present",
                &[("address", &a.address)],
                u64::from(a.present),
            );
        }
    }
    if let Some(g) = &s.guards {
        for (metric, help, v) in [
            (
                "ironsec_guard_routes",
                "Guard routes (fail closed while the daemon is absent) installed in the kernel now.",
                g.installed,
            ),
            (
                "ironsec_guard_routes_adopted",
                "Guard routes found in place at start and kept (left by a stop, crash or restart).",
                g.adopted_at_start,
            ),
        ] {
            o.help(metric, "gauge", help);
            o.sample(metric, &[], v as u64);
        }
        o.help(
            "ironsec_remote_selector_guarded",
            "gauge",
            "1 when the remote selector's guard route is installed, 0 when it is missing.",
        );
        for x in &g.selectors {
            o.sample(
                "ironsec_remote_selector_guarded",
                &[("prefix", &x.prefix)],
                u64::from(x.guarded),
            );
        }
    }
    if let Some(d) = &s.drain {
        o.help(
            "ironsec_drain_state",
            "gauge",
            "Planned maintenance: 0 ready (in service), 1 draining, 2 drained.",
        );
        let state = match d.state.as_str() {
            "draining" => 1u64,
            "drained" => 2,
            _ => 0,
        };
        o.sample("ironsec_drain_state", &[], state);
        // Absent until a drain finished: no made-up 0.
        if let Some(ms) = d.last_drain_ms {
            o.help(
                "ironsec_drain_last_seconds",
                "gauge",
                "How long the last drain took (withdraw, wait for traffic, close).",
            );
            o.sample(
                "ironsec_drain_last_seconds",
                &[],
                format_args!("{:.3}", ms as f64 / 1000.0),
            );
        }
    }
    o.0
}

/// The certificate series: one per loaded certificate and user (trust anchors by file,
/// the others by connection), valued notAfter; one per CRL with a nextUpdate. The family
/// headers are always there, so a gateway without certificates still names the metrics.
pub fn render_certs(l: &CertList) -> String {
    let mut o = Out(String::new());
    let cert = "ironsec_certificate_expiry_timestamp_seconds";
    o.help(
        cert,
        "gauge",
        "notAfter of each loaded certificate, Unix seconds: trust anchors (role anchor, by file), each connection's own certificate and intermediates (local, intermediate) and pinned peer certificates (pinned), by connection.",
    );
    for c in &l.certificates {
        let base = [
            ("subject", c.subject.as_str()),
            ("serial", c.serial.as_str()),
            ("role", c.role.name()),
        ];
        if c.role == CertRole::Anchor {
            let labels = with(base, "file", c.file.as_str());
            o.sample(cert, &labels, c.not_after_unix);
        } else {
            for conn in &c.connections {
                let labels = with(base, "connection", conn.as_str());
                o.sample(cert, &labels, c.not_after_unix);
            }
        }
    }
    let crl = "ironsec_crl_next_update_timestamp_seconds";
    o.help(
        crl,
        "gauge",
        "nextUpdate of each loaded CRL (crl_dir), Unix seconds; a CRL without nextUpdate has no series.",
    );
    for c in &l.crls {
        if let Some(n) = c.next_update_unix {
            o.sample(
                crl,
                &[("issuer", c.issuer.as_str()), ("file", c.file.as_str())],
                n,
            );
        }
    }
    o.0
}

/// Everything a scrape returns: the status's families, then the certificates'.
pub fn render_all(s: &Status, certs: &CertList) -> String {
    let mut out = render(s);
    out.push_str(&render_certs(certs));
    out
}

/// Where reading an HTTP request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Complete,
    /// Longer than [`METRICS_REQUEST_HEAD`] without the blank line that ends it.
    TooLong,
    /// The client hung up or the read failed.
    Gone,
}

/// Reads a request head into `buf`, at most [`METRICS_REQUEST_HEAD`] bytes of it.
async fn read_head<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut Vec<u8>) -> Head {
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Head::Complete;
        }
        if buf.len() >= METRICS_REQUEST_HEAD {
            return Head::TooLong;
        }
        let room = (METRICS_REQUEST_HEAD - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A complete HTTP/1.1 answer that closes the connection.
fn response(code: &str, ctype: &str, text: &str) -> String {
    response_with(code, "", ctype, text)
}

/// [`response`] with `extra` header lines (each ending in CRLF).
fn response_with(code: &str, extra: &str, ctype: &str, text: &str) -> String {
    format!(
        "HTTP/1.1 {code}\r\n{extra}Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

/// Whether the request head carries `Authorization: Bearer <token>` (header name and scheme
/// in any case, RFC 9110 and RFC 6750). Every Authorization line is compared, each in constant
/// time; the token is never logged or echoed.
fn authorized(head: &str, token: &MetricsToken) -> bool {
    let mut ok = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("authorization") {
            continue;
        }
        let value = value.trim();
        if let Some((scheme, cred)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                ok |= token.matches(cred.trim().as_bytes());
            }
        }
    }
    ok
}

/// What a scrape without the right token gets.
fn unauthorized() -> String {
    response_with(
        "401 Unauthorized",
        "WWW-Authenticate: Bearer realm=\"ironsec metrics\"\r\n",
        "text/plain",
        "a bearer token is required (gateway.metrics_token_file)\n",
    )
}

/// What a client beyond [`METRICS_CONNECTIONS`] is told before its connection is closed.
fn busy() -> String {
    response(
        "503 Service Unavailable",
        "text/plain",
        &format!("too many metrics clients (at most {METRICS_CONNECTIONS} at once); retry\n"),
    )
}

/// Answers one HTTP request on `stream` with `body()` for `GET /metrics` (or `/`), if it
/// carries `token` when there is one. A client gets [`READ_DEADLINE`] to send its request
/// head and [`WRITE_DEADLINE`] to read the answer.
/// How long a rendered scrape is served again: a Prometheus scrape storm (or several
/// Prometheus servers) costs one status build per second at most, not one per request.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// Bumped by [`invalidate`]: a cached scrape from an older generation is not served.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Makes the next scrape render afresh: the daemon calls it after a command changed the
/// configuration or the tunnels (a reload, initiate, terminate, ...), so a scrape right
/// after one never shows the state from before it.
pub fn invalidate() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The current generation: what is cached with an older one is stale (the daemon's guard
/// status is cached the same way).
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// The last rendered scrape, when and in which [`GENERATION`].
type Rendered = Option<(Instant, u64, Arc<String>)>;

/// Renders scrapes with `body`, each at most once per [`CACHE_FOR`]: the render runs on a
/// blocking thread (it builds the status, which takes the plane's lock), never on the event
/// loop's, and concurrent scrapes wait for the one render under way and share it.
#[derive(Clone)]
struct Cache<F> {
    body: F,
    last: Arc<Mutex<Rendered>>,
    /// Renders done (tests count them).
    renders: Arc<AtomicU64>,
}

impl<F: Fn() -> String + Clone + Send + Sync + 'static> Cache<F> {
    fn new(body: F) -> Self {
        Cache {
            body,
            last: Arc::new(Mutex::new(None)),
            renders: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The text as of at most [`CACHE_FOR`] ago (and no older than the last [`invalidate`]).
    fn get_blocking(&self, now: Instant) -> Arc<String> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let generation = generation();
        if let Some((at, g, text)) = &*last {
            if *g == generation && now.saturating_duration_since(*at) < CACHE_FOR {
                return text.clone();
            }
        }
        self.renders.fetch_add(1, Ordering::Relaxed);
        let text = Arc::new((self.body)());
        *last = Some((Instant::now(), generation, text.clone()));
        text
    }

    async fn get(&self) -> Arc<String> {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.get_blocking(Instant::now())).await {
            Ok(t) => t,
            Err(e) => Arc::new(format!("# metrics render failed: {e}\n")),
        }
    }
}

async fn answer<F: Fn() -> String + Clone + Send + Sync + 'static>(
    mut stream: TcpStream,
    token: Option<&MetricsToken>,
    body: Cache<F>,
) {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(READ_DEADLINE, read_head(&mut stream, &mut buf)).await;
    let out = match head {
        Ok(Head::Complete) => {
            let line = String::from_utf8_lossy(&buf);
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match (method, path) {
                _ if token.is_some_and(|t| !authorized(&line, t)) => unauthorized(),
                ("GET", "/metrics") | ("GET", "/") => response(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    &body.get().await,
                ),
                ("GET", _) => response("404 Not Found", "text/plain", "try /metrics\n"),
                _ => response("405 Method Not Allowed", "text/plain", "GET only\n"),
            }
        }
        Ok(Head::TooLong) => response(
            "431 Request Header Fields Too Large",
            "text/plain",
            &format!("request head longer than {METRICS_REQUEST_HEAD} bytes\n"),
        ),
        Ok(Head::Gone) => return,
        Err(_) => response(
            "408 Request Timeout",
            "text/plain",
            &format!("no request within {} s\n", READ_DEADLINE.as_secs()),
        ),
    };
    let _ = tokio::time::timeout(WRITE_DEADLINE, async {
        stream.write_all(out.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves metrics until the runtime stops; `body` (the exposition text, [`render_all`]) is
/// called on a blocking thread, at most once per [`CACHE_FOR`] however many scrape. At most
/// [`METRICS_CONNECTIONS`] clients are served at once; one more is answered 503 without
/// waiting (a non-blocking write into its empty send buffer) and closed, so a flood of
/// connections holds no descriptors.
pub async fn serve<F>(listener: TcpListener, token: Option<MetricsToken>, body: F)
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    let body = Cache::new(body);
    let slots = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    let token = token.map(Arc::new);
    let mut backoff = AcceptBackoff::new("metrics");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff.succeeded(Instant::now());
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    let _ = stream.try_write(busy().as_bytes());
                    continue;
                };
                let f = body.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    answer(stream, token.as_deref(), f).await;
                    drop(slot);
                });
            }
            Err(e) => {
                let pause = backoff.failed(Instant::now(), &e);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::certs::{CertInfo, CrlInfo};
    use crate::status::*;

    /// A status document with one connection and one tunnel (also used by `status.rs`).
    pub(crate) fn sample_status() -> Status {
        Status {
            version: "0".into(),
            tun: "ipsec0".into(),
            workers: 2,
            workers_failed: 1,
            uptime_secs: 7,
            counters: Counters::default(),
            drops: [("replay".to_string(), 5u64)].into_iter().collect(),
            ike: IkeCounters {
                requests_sent: 3,
                retransmits_sent: 1,
                ..Default::default()
            },
            guards: Some(GuardsStatus {
                installed: 1,
                adopted_at_start: 1,
                removed_at_start: 0,
                selectors: vec![
                    GuardedSelector {
                        prefix: "10.2.0.0/24".into(),
                        guarded: true,
                    },
                    GuardedSelector {
                        prefix: "10.9.0.0/24".into(),
                        guarded: false,
                    },
                ],
                error: None,
            }),
            shared_addresses: vec![crate::status::SharedAddressStatus {
                address: "192.0.2.10".into(),
                present: false,
                changes: 2,
                ignored_acquires: 0,
            }],
            drain: Some(crate::status::DrainStatus {
                state: "drained".into(),
                detail: None,
                last: None,
                last_drain_ms: Some(1420),
                ike_sa_init_refused: 0,
            }),
            summary: None,
            no_match: None,
            connections: vec![ConnectionStatus {
                name: "site-b".into(),
                keying: "ike".into(),
                local_ts: vec!["10.1.0.0/24".into()],
                remote_ts: vec!["10.2.0.0/24".into()],
                start_action: Some("start".into()),
                mode: None,
                bandwidth: None,
                active: vec![],
                last_failover: None,
                interface: Some(crate::status::InterfaceStatus {
                    name: "vti-b".into(),
                    present: true,
                    state: "up".into(),
                    address: Some("169.254.21.1/30".into()),
                    routes: vec![],
                    protect: vec!["10.0.0.0/8".into()],
                    kernel: Some(crate::status::InterfaceCounters {
                        rx_packets: 9,
                        rx_bytes: 756,
                        tx_packets: 10,
                        tx_bytes: 840,
                    }),
                }),
                counters: ConnectionCounters {
                    child_rekeys: 2,
                    dpd_failures: 1,
                    ..Default::default()
                },
                tunnels: vec![TunnelStatus {
                    local: "192.0.2.1".into(),
                    remote: "192.0.2.2:4500".into(),
                    peer: "gw-b.example".into(),
                    state: "up".into(),
                    role: None,
                    priority: 0,
                    weight: 1,
                    last_error: None,
                    child_refused: None,
                    child: Some(ChildStatus {
                        spi_in: "0xc1".into(),
                        spi_out: "0xc2".into(),
                        algorithms: "AES_GCM_16_128".into(),
                        local_ts: vec!["10.1.0.0/24".into()],
                        remote_ts: vec!["10.2.0.0/24".into()],
                        established_secs: 5,
                        rekey_in_secs: Some(100),
                        volume: Some(VolumeStatus {
                            bytes: 3_000_000,
                            packets: 3,
                            seq: 3,
                            rekey_bytes: Some(4_000_000),
                            life_bytes: Some(40_000_000),
                            ..Default::default()
                        }),
                    }),
                    children: vec![],
                    total_out: Traffic {
                        packets: 10,
                        bytes: 840,
                    },
                    total_in: Traffic {
                        packets: 9,
                        bytes: 756,
                    },
                    ike: None,
                    outbound: None,
                    inbound: None,
                    nat: None,
                    seq_space: Some(SeqSpaceStatus {
                        used: 3_300_000_000,
                        size: u64::from(u32::MAX),
                        percent: 76,
                        esn: false,
                    }),
                }],
                pools: vec![],
                clients: vec![],
            }],
        }
    }

    /// A remote-access connection: clients counted, the pool by state; clients' tunnels do
    /// not make per-tunnel series (their number and addresses come and go).
    #[test]
    fn remote_access_series() {
        let mut st = sample_status();
        let mut rw = st.connections[0].clone();
        rw.name = "rw".into();
        rw.interface = None;
        let tunnel = rw.tunnels.remove(0);
        rw.pools = vec![
            crate::status::PoolStatus {
                prefix: "10.99.0.0/24".into(),
                size: 254,
                online: 1,
                offline: 2,
            },
            crate::status::PoolStatus {
                prefix: "2001:db8:99::/64".into(),
                size: u64::MAX,
                online: 1,
                offline: 0,
            },
        ];
        rw.clients = vec![crate::status::ClientStatus {
            identity: "alice".into(),
            address: "10.99.0.1, 2001:db8:99::1".into(),
            connected_secs: 5,
            tunnel,
        }];
        st.connections.push(rw);
        let text = render(&st);
        for line in [
            "ironsec_clients{connection=\"rw\"} 1",
            "ironsec_pool_addresses{connection=\"rw\",pool=\"10.99.0.0/24\",state=\"online\"} 1",
            "ironsec_pool_addresses{connection=\"rw\",pool=\"10.99.0.0/24\",state=\"offline\"} 2",
            "ironsec_pool_addresses{connection=\"rw\",pool=\"10.99.0.0/24\",state=\"free\"} 251",
            "ironsec_pool_addresses{connection=\"rw\",pool=\"2001:db8:99::/64\",state=\"online\"} 1",
            "ironsec_pool_addresses{connection=\"rw\",pool=\"2001:db8:99::/64\",state=\"free\"} 18446744073709551614",
            "ironsec_connection_up{connection=\"rw\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(!text.contains("ironsec_clients{connection=\"site-b\"}"));
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("ironsec_tunnel_up{connection=\"rw\"")),
            "{text}"
        );
    }

    fn cert(role: CertRole, file: &str, connections: &[&str], not_after: i64) -> CertInfo {
        CertInfo {
            role,
            file: file.into(),
            subject: format!("C=CH, O=ironsec test, CN={}", role.name()),
            issuer: "C=CH, O=ironsec test, CN=root".into(),
            san: vec![],
            serial: "0d:b2".into(),
            not_before: String::new(),
            not_after: String::new(),
            not_before_unix: 0,
            not_after_unix: not_after,
            days_left: 0,
            fingerprint_sha256: String::new(),
            connections: connections.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn certificates_have_one_series_per_user() {
        let l = CertList {
            now_unix: 0,
            certificates: vec![
                cert(
                    CertRole::Anchor,
                    "/ca/root.pem",
                    &["site-b", "site-c"],
                    2_000_000_000,
                ),
                cert(
                    CertRole::Local,
                    "/c/gw-a.pem",
                    &["site-b", "site-c"],
                    1_900_000_000,
                ),
                cert(
                    CertRole::Intermediate,
                    "/c/gw-a.pem",
                    &["site-b"],
                    1_950_000_000,
                ),
                cert(CertRole::Pinned, "/c/gw-b.pem", &["site-b"], -5),
            ],
            crls: vec![
                CrlInfo {
                    file: "/crl/int.pem".into(),
                    issuer: "C=CH, CN=int".into(),
                    this_update: String::new(),
                    this_update_unix: 1,
                    next_update: Some(String::new()),
                    next_update_unix: Some(1_700_000_000),
                    next_update_days_left: Some(3),
                    revoked: 2,
                },
                CrlInfo {
                    file: "/crl/none.pem".into(),
                    issuer: "C=CH, CN=none".into(),
                    this_update: String::new(),
                    this_update_unix: 1,
                    next_update: None,
                    next_update_unix: None,
                    next_update_days_left: None,
                    revoked: 0,
                },
            ],
        };
        let text = render_certs(&l);
        let m = "ironsec_certificate_expiry_timestamp_seconds";
        let want = [
            format!("{m}{{subject=\"C=CH, O=ironsec test, CN=anchor\",serial=\"0d:b2\",role=\"anchor\",file=\"/ca/root.pem\"}} 2000000000"),
            format!("{m}{{subject=\"C=CH, O=ironsec test, CN=local\",serial=\"0d:b2\",role=\"local\",connection=\"site-b\"}} 1900000000"),
            format!("{m}{{subject=\"C=CH, O=ironsec test, CN=local\",serial=\"0d:b2\",role=\"local\",connection=\"site-c\"}} 1900000000"),
            format!("{m}{{subject=\"C=CH, O=ironsec test, CN=intermediate\",serial=\"0d:b2\",role=\"intermediate\",connection=\"site-b\"}} 1950000000"),
            format!("{m}{{subject=\"C=CH, O=ironsec test, CN=pinned\",serial=\"0d:b2\",role=\"pinned\",connection=\"site-b\"}} -5"),
            "ironsec_crl_next_update_timestamp_seconds{issuer=\"C=CH, CN=int\",file=\"/crl/int.pem\"} 1700000000".to_string(),
        ];
        for w in &want {
            assert!(text.lines().any(|l| l == w), "missing {w}\n{text}");
        }
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, want.len(), "{text}");
        // Without certificates the families are still declared (alerts and tests name them).
        let empty = render_certs(&CertList::default());
        assert!(empty.contains(&format!("# TYPE {m} gauge")));
        assert!(empty.lines().all(|l| l.starts_with('#')), "{empty}");
        let all = render_all(&sample_status(), &l);
        assert!(all.contains("ironsec_uptime_seconds ") && all.contains(&want[0]));
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&sample_status());
        for line in [
            "ironsec_connection_up{connection=\"site-b\"} 1",
            "ironsec_tunnel_up{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\"} 1",
            "ironsec_tunnel_bytes_total{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\",direction=\"out\"} 840",
            "ironsec_tunnel_packets_total{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\",direction=\"in\"} 9",
            "ironsec_drops_total{reason=\"replay\"} 5",
            "ironsec_rekeys_total{connection=\"site-b\",sa=\"child\"} 2",
            "ironsec_dpd_failures_total{connection=\"site-b\"} 1",
            "ironsec_ike_requests_total 3",
            "ironsec_ike_retransmits_total 1",
            "ironsec_workers_failed 1",
            "ironsec_static_seq_space_used_percent{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\"} 76",
            "ironsec_child_sa_volume{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\",measure=\"bytes\"} 3000000",
            "ironsec_child_sa_volume_limit{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\",limit=\"rekey_bytes\"} 4000000",
            "ironsec_shared_address_present{address=\"192.0.2.10\"} 0",
            "ironsec_guard_routes 1",
            "ironsec_guard_routes_adopted 1",
            "ironsec_remote_selector_guarded{prefix=\"10.2.0.0/24\"} 1",
            "ironsec_remote_selector_guarded{prefix=\"10.9.0.0/24\"} 0",
            "ironsec_drain_state 2",
            "ironsec_drain_last_seconds 1.420",
            "ironsec_interface_up{connection=\"site-b\",interface=\"vti-b\"} 1",
            "ironsec_interface_bytes_total{connection=\"site-b\",interface=\"vti-b\",direction=\"out\"} 840",
            "ironsec_interface_packets_total{connection=\"site-b\",interface=\"vti-b\",direction=\"in\"} 9",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // Every sample belongs to a family declared with HELP and TYPE before it.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{name} has no TYPE line");
            }
        }
    }

    /// A state change changes values, never the set of series (alert rules and graphs
    /// follow one series per tunnel and state).
    #[test]
    fn tunnel_series_do_not_change_with_its_state() {
        let series = |st: &Status| -> Vec<String> {
            render(st)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
                .collect()
        };
        let mut st = sample_status();
        let before = series(&st);
        let text = render(&st);
        for (state, v) in [
            ("up", 1),
            ("connecting", 0),
            ("down", 0),
            ("trapped", 0),
            ("dormant", 0),
        ] {
            let line = format!("ironsec_tunnel_state{{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\",state=\"{state}\"}} {v}");
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        for state in ["connecting", "down", "trapped", "dormant"] {
            let t = &mut st.connections[0].tunnels[0];
            t.state = state.into();
            // The peer moved behind its NAT: `remote` changes, the labels do not.
            t.remote = "192.0.2.99:31337".into();
            assert_eq!(series(&st), before, "{state}");
            let text = render(&st);
            assert!(text.contains("ironsec_tunnel_up{connection=\"site-b\",local=\"192.0.2.1\",remote=\"gw-b.example\"} 0"));
            assert!(text.contains(&format!("remote=\"gw-b.example\",state=\"{state}\"}} 1")));
        }
        // Only ironsec_tunnel_state has a state label.
        for l in render(&st).lines().filter(|l| l.contains("state=")) {
            assert!(l.starts_with("ironsec_tunnel_state{"), "{l}");
        }
    }

    #[test]
    fn labels_carry_addresses_without_ports() {
        let mut t = sample_status().connections[0].tunnels[0].clone();
        t.peer = String::new();
        assert_eq!(t.metrics_local(), "192.0.2.1");
        assert_eq!(t.metrics_remote(), "192.0.2.2");
        t.local = "[2001:db8::1]:4500".into();
        t.remote = "[2001:db8::2]:500".into();
        assert_eq!(t.metrics_local(), "2001:db8::1");
        assert_eq!(t.metrics_remote(), "2001:db8::2");
        t.local = "2001:db8::1".into();
        assert_eq!(t.metrics_local(), "2001:db8::1");
    }

    #[test]
    fn a_token_is_required_when_configured() {
        let t = MetricsToken::new("s3cret-token\n").unwrap();
        let req = |auth: &str| format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
        assert!(authorized(
            &req("Authorization: Bearer s3cret-token\r\n"),
            &t
        ));
        assert!(authorized(
            &req("authorization:  bearer s3cret-token \r\n"),
            &t
        ));
        assert!(!authorized(&req(""), &t));
        assert!(!authorized(
            &req("Authorization: Bearer s3cret-toke\r\n"),
            &t
        ));
        assert!(!authorized(
            &req("Authorization: Bearer s3cret-token2\r\n"),
            &t
        ));
        assert!(!authorized(
            &req("Authorization: Basic czNjcmV0LXRva2Vu\r\n"),
            &t
        ));
        // The request line is not a header.
        assert!(!authorized(
            "Authorization: Bearer s3cret-token\r\n\r\n",
            &t
        ));
        let r = unauthorized();
        assert!(
            r.starts_with("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer"),
            "{r}"
        );
        assert!(!r.contains("s3cret"));
        assert_eq!(format!("{t:?}"), "MetricsToken(<redacted>)");
        assert!(MetricsToken::new(" \n").is_none());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    fn head_of(input: &[u8]) -> (Head, usize) {
        let mut r = input;
        let mut buf = Vec::new();
        let h = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_head(&mut r, &mut buf));
        (h, buf.len())
    }

    #[test]
    fn request_heads_are_read_up_to_the_limit() {
        let (h, _) = head_of(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h, Head::Complete);
        assert_eq!(head_of(b"GET /metrics HTTP/1.1\r\n").0, Head::Gone);
        let big = vec![b'a'; 1 << 20];
        let (h, held) = head_of(&big);
        assert_eq!(h, Head::TooLong);
        assert_eq!(
            held, METRICS_REQUEST_HEAD,
            "reads no further than the limit"
        );
    }

    #[test]
    fn scrapes_within_a_second_share_one_render_unless_invalidated() {
        let n = Arc::new(AtomicU64::new(0));
        let counted = n.clone();
        let cache = Cache::new(move || format!("x {}\n", counted.fetch_add(1, Ordering::Relaxed)));
        let t0 = Instant::now();
        let first = cache.get_blocking(t0);
        for ms in [0, 10, 500, 999] {
            assert_eq!(cache.get_blocking(t0 + Duration::from_millis(ms)), first);
        }
        assert_eq!(cache.renders.load(Ordering::Relaxed), 1);
        let later = cache.get_blocking(Instant::now() + CACHE_FOR);
        assert_ne!(later, first);
        assert_eq!(cache.renders.load(Ordering::Relaxed), 2);
        // A command that changed something: the next scrape renders again at once.
        let before = cache.get_blocking(Instant::now());
        invalidate();
        assert_ne!(cache.get_blocking(Instant::now()), before);
        // Concurrent scrapes on a runtime: rendered off its thread, once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        invalidate();
        let renders = cache.renders.load(Ordering::Relaxed);
        rt.block_on(async {
            let (a, b) = tokio::join!(cache.get(), cache.get());
            assert_eq!(a, b);
        });
        assert_eq!(cache.renders.load(Ordering::Relaxed), renders + 1);
    }

    #[test]
    fn a_refused_client_is_told_why() {
        let b = busy();
        assert!(b.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{b}");
        assert!(b.ends_with("retry\n"), "{b}");
        let body = b.split("\r\n\r\n").nth(1).unwrap();
        assert!(b.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
