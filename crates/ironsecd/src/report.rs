//! Builds the [`Status`] document from the fast path's counters and the control plane's
//! state. `ironsecctl status` and the metrics endpoint both read it, so they always agree.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ironsec_dataplane::{Dataplane, DropTotals, GatewayTotals, Tables};

use crate::config::{Keying, Mode, StartAction};
use crate::namefilter::NameFilter;
use crate::plane::volume::{left, ChildVolume};
use crate::plane::Plane;
use crate::status::{self, Status};
use crate::tables::ts_selectors;
use ironsec_ike::pool::LeaseState;

fn drops_map(d: &DropTotals) -> BTreeMap<String, u64> {
    d.iter().map(|(r, n)| (r.name().to_string(), n)).collect()
}

/// Negotiated selectors in the config's syntax: `10.2.0.0/24`, `10.2.0.0/24[tcp/443]`.
fn selectors(v: &[ironsec_ike::wire::TrafficSelector]) -> Vec<String> {
    ts_selectors(v).iter().map(|p| p.to_string()).collect()
}

/// A CHILD_SA's volume and limits as status shows them.
fn volume_status(v: &ChildVolume, now: Instant) -> status::VolumeStatus {
    status::VolumeStatus {
        bytes: v.used.bytes,
        packets: v.used.packets,
        seq: v.used.seq,
        rekey_bytes: v.limits.rekey_bytes,
        life_bytes: v.limits.life_bytes,
        rekey_packets: v.limits.rekey_packets,
        life_packets: v.limits.life_packets,
        seq_rekey_at: v.seq_rekey_at,
        rekey_in_bytes: left(v.limits.rekey_bytes, v.used.bytes),
        rekey_in_packets: left(v.limits.rekey_packets, v.used.packets),
        rekey_in_seq: left(v.seq_rekey_at, v.used.seq),
        next_check_in_ms: v
            .next_check
            .map(|t| t.saturating_duration_since(now).as_millis() as u64),
    }
}

/// What status reads of the fast path: its tables and counters (the daemon's [`Dataplane`];
/// in tests, tables built from a plane and zero counters).
pub struct FastPath<'a> {
    pub tables: &'a Tables,
    pub totals: GatewayTotals,
    pub tun: &'a str,
    pub workers: usize,
    pub workers_failed: usize,
}

/// The status document of the connections `filter` matches (all without one), built under the
/// plane's lock: O(connections + tunnels + SAs), each lookup by index or hash. What is slow
/// and needs no plane (the interfaces' kernel counters, [`read_interfaces`]; the guard routes;
/// serialising) is left for the caller to do after the lock is released.
pub fn status(
    dp: &Dataplane,
    plane: &Plane,
    started: Instant,
    filter: Option<&NameFilter>,
) -> Status {
    let tables = dp.tables();
    let fast = FastPath {
        tables: &tables,
        totals: dp.totals(),
        tun: dp.tun_name(),
        workers: dp.workers(),
        workers_failed: dp.workers_failed(),
    };
    build(&fast, plane, started, filter, &mut Work::default())
}

/// Items a status build looked at (connections, tunnels, IKE SAs, CHILD_SAs of an IKE SA):
/// a test checks it grows linearly with the tunnels, not with their square.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub visits: u64,
}

/// Fills in each route-based connection's interface counters from /sys (4 small files per
/// interface) and whether the device exists: done after the plane's lock is released.
pub fn read_interfaces(st: &mut Status) {
    for c in &mut st.connections {
        if let Some(i) = c.interface.as_mut() {
            i.kernel = status::InterfaceCounters::read(&i.name);
            i.present = i.present && i.kernel.is_some();
        }
    }
}

/// [`status`] from the fast path's view, counting what it looks at in `work`.
pub fn build(
    dp: &FastPath<'_>,
    plane: &Plane,
    started: Instant,
    filter: Option<&NameFilter>,
    work: &mut Work,
) -> Status {
    let tables = dp.tables;
    let totals = &dp.totals;
    let ike_sas = plane.ike_sas();
    work.visits += ike_sas.len() as u64;
    let ike_by_id: HashMap<_, _> = ike_sas.iter().map(|s| (s.id, s)).collect();
    let now = Instant::now();
    let cfg = plane.config();
    work.visits += cfg.connections.len() as u64;
    let mut connections: Vec<status::ConnectionStatus> = cfg
        .connections
        .iter()
        .filter(|c| filter.is_none_or(|f| f.matches(&c.name)))
        .map(|c| {
            let st = plane.conn_stats(&c.name);
            status::ConnectionStatus {
                name: c.name.clone(),
                keying: c.keying.name().into(),
                local_ts: c.local_selectors.iter().map(|p| p.to_string()).collect(),
                remote_ts: c.remote_selectors.iter().map(|p| p.to_string()).collect(),
                start_action: match &c.keying {
                    Keying::Ike(k) => Some(
                        match k.start_action {
                            StartAction::Start => "start",
                            StartAction::Trap => "trap",
                            StartAction::None => "none",
                        }
                        .into(),
                    ),
                    Keying::Static(_) => None,
                },
                counters: status::ConnectionCounters {
                    ike_up: st.ike_up,
                    child_rekeys: st.child_rekeys,
                    ike_rekeys: st.ike_rekeys,
                    dpd_failures: st.dpd_failures,
                    failures: st.failures,
                    failovers: st.failovers,
                    follows: st.follows,
                    nat_keepalives: st.nat_keepalives,
                    peer_moves: st.peer_moves,
                    child_rekey_failures: st.child_rekey_failures,
                },
                mode: match &c.keying {
                    Keying::Ike(k) => Some(
                        match k.mode {
                            Mode::ActiveStandby => "active-standby",
                            Mode::ActiveActive => "active-active",
                        }
                        .into(),
                    ),
                    Keying::Static(_) => None,
                },
                active: plane
                    .selection(&c.name)
                    .map(|s| s.active.iter().map(|k| k.remote.to_string()).collect())
                    .unwrap_or_default(),
                bandwidth: plane.share(&c.name).map(|sh| {
                    let (offered_bytes, offered_packets, shaped_packets) = sh.bucket().counters();
                    status::BandwidthStatus {
                        weight: c.bandwidth_weight,
                        cap_bps: c.bandwidth,
                        rate_bps: sh.bucket().rate() * 8,
                        demand_bps: sh.demand() as u64,
                        offered_bytes,
                        offered_packets,
                        shaped_packets,
                    }
                }),
                last_failover: plane
                    .selection(&c.name)
                    .and_then(|s| s.last_failover.as_ref())
                    .map(|(t, text)| {
                        format!(
                            "{}s ago: {text}",
                            now.saturating_duration_since(*t).as_secs()
                        )
                    }),
                interface: c.route_based.as_ref().map(|rb| status::InterfaceStatus {
                    name: rb.interface.clone(),
                    // And the kernel's device exists: `read_interfaces`, after the lock.
                    present: plane.devices().contains_key(c.name.as_str()),
                    // Filled in below, with the tunnels.
                    state: "down".into(),
                    address: rb.address_text(),
                    routes: rb.routes.iter().map(|p| p.to_string()).collect(),
                    protect: rb.protect.iter().map(|p| p.to_string()).collect(),
                    kernel: None,
                }),
                tunnels: Vec::new(),
                pools: match &c.keying {
                    Keying::Ike(k) => {
                        // Read once for all of the connection's pools.
                        let all = match &k.remote_access {
                            Some(_) => plane.leases(&c.name),
                            None => Vec::new(),
                        };
                        k.remote_access
                            .iter()
                            .flat_map(|ra| &ra.pools)
                            .map(|pool| {
                                let leases: Vec<_> =
                                    all.iter().filter(|l| pool.contains(l.address)).collect();
                                let online = leases
                                    .iter()
                                    .filter(|l| matches!(l.state, LeaseState::Active { .. }))
                                    .count() as u64;
                                status::PoolStatus {
                                    prefix: pool.to_string(),
                                    size: plane.pool_size(&c.name, pool),
                                    online,
                                    offline: leases.len() as u64 - online,
                                }
                            })
                            .collect()
                    }
                    Keying::Static(_) => Vec::new(),
                },
                clients: Vec::new(),
            }
        })
        .collect();
    // Where each shown connection is in `connections`, by name: one lookup per tunnel.
    let position: HashMap<String, usize> = connections
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    for (id, spec) in plane.specs().iter().enumerate() {
        work.visits += 1;
        let Some(&position) = position.get(&*spec.conn) else {
            continue;
        };
        let Some(t) = tables.tunnels().get(id) else {
            continue;
        };
        let key = spec.key();
        let outbound = t.outbound.as_ref().map(|o| {
            let tot = o.counters.totals();
            status::OutboundStatus {
                spi: status::spi_string(o.sa.spi()),
                suite: o.sa.suite().to_string(),
                esn: o.sa.esn(),
                packets: tot.packets,
                bytes: tot.bytes,
                next_seq: o.sa.next_seq(),
                drops: drops_map(&tot.drops),
            }
        });
        // The inbound SA shown is the one paired with the SA we send with (or the newest).
        let active = plane.sas().active_out(&key);
        let inbound_spi = active.or_else(|| {
            plane
                .sas()
                .inbound_of(&key)
                .into_iter()
                .max_by_key(|spi| plane.sas().child(*spi).map(|c| c.installed))
        });
        let inbound = inbound_spi.and_then(|spi| tables.inbound(spi)).map(|e| {
            let tot = e.counters.totals();
            status::InboundStatus {
                spi: status::spi_string(e.sa.spi()),
                suite: e.sa.suite().to_string(),
                esn: e.sa.esn(),
                packets: tot.packets,
                bytes: tot.bytes,
                highest_seq: e.sa.highest_seq(),
                drops: drops_map(&tot.drops),
            }
        });
        let state = plane.tunnel(&key);
        let ike = state
            .and_then(|s| s.ike)
            .and_then(|ike| ike_by_id.get(&ike).copied());
        // An IKE SA's few CHILD_SAs, searched per CHILD_SA shown.
        work.visits += ike.map_or(0, |i| i.children.len() as u64);
        let child_status = |spi: u32| {
            plane.sas().child(spi).map(|c| {
                let rekey_at = ike.and_then(|i| {
                    i.children
                        .iter()
                        .find(|ch| ch.spi_in == c.info.spi_in)
                        .and_then(|ch| ch.rekey_at)
                });
                status::ChildStatus {
                    spi_in: status::spi_string(c.info.spi_in),
                    spi_out: status::spi_string(c.info.spi_out),
                    algorithms: c.info.algorithms.to_string(),
                    local_ts: selectors(&c.info.local_ts),
                    remote_ts: selectors(&c.info.remote_ts),
                    established_secs: now.saturating_duration_since(c.installed).as_secs(),
                    rekey_in_secs: rekey_at.map(|t| t.saturating_duration_since(now).as_secs()),
                    volume: plane.child_volume(spi).map(|v| volume_status(&v, now)),
                }
            })
        };
        let child = active.and_then(child_status);
        let children: Vec<status::ChildStatus> = plane
            .sas()
            .sending_of(&key)
            .iter()
            .filter_map(|spi| child_status(*spi))
            .collect();
        let ike_status = ike.map(|s| status::IkeStatus {
            state: if s.established {
                "established"
            } else {
                "connecting"
            }
            .into(),
            initiator: s.initiator,
            spi_i: format!("0x{:016x}", s.spi_i),
            spi_r: format!("0x{:016x}", s.spi_r),
            algorithms: s.algorithms.map(|a| a.to_string()),
            established_secs: s
                .established_at
                .map(|t| now.saturating_duration_since(t).as_secs()),
            rekey_in_secs: s
                .rekey_at
                .map(|t| t.saturating_duration_since(now).as_secs()),
            children: s.children.len(),
        });
        let state_name = if outbound.is_some() {
            "up"
        } else if ike_status.is_some() {
            "connecting"
        } else if plane.is_dormant(spec.local) {
            "dormant"
        } else if state.is_some_and(|s| s.trapped) {
            "trapped"
        } else {
            "down"
        };
        let (out_total, in_total) = plane.tunnel_traffic(&key);
        let conn_cfg = &cfg.connections[spec.conn_index];
        let (role, priority, weight) = match &conn_cfg.keying {
            Keying::Ike(k) if k.tunnels.len() > 1 => {
                let t = k
                    .tunnels
                    .iter()
                    .find(|t| t.local == spec.local && t.remote == spec.remote);
                let active = plane
                    .selection(&conn_cfg.name)
                    .is_some_and(|s| s.active.contains(&key));
                (
                    Some(if active { "active" } else { "standby" }.to_string()),
                    t.map_or(0, |t| t.priority),
                    t.map_or(1, |t| t.weight),
                )
            }
            _ => (None, 0, 1),
        };
        let ts = status::TunnelStatus {
            local: t.local.to_string(),
            remote: t.remote.to_string(),
            peer: spec
                .remote_name
                .as_deref()
                .map_or_else(|| spec.remote.to_string(), str::to_string),
            state: state_name.into(),
            role,
            priority,
            weight,
            last_error: state.and_then(|s| s.last_error.clone()),
            child_refused: state.and_then(|s| s.child_refused.as_ref()).map(|r| {
                status::ChildRefusedStatus {
                    notify: r.notify.to_string(),
                    detail: r.detail.clone(),
                    refusals: r.refusals,
                    secs_ago: now.saturating_duration_since(r.at).as_secs(),
                    rekey: r.rekey_retry_at.is_some(),
                    next_try_in_secs: plane
                        .child_retry_at(&key)
                        .or(r.rekey_retry_at)
                        .map(|t| t.saturating_duration_since(now).as_secs()),
                }
            }),
            child,
            children,
            total_out: status::Traffic {
                packets: out_total.packets,
                bytes: out_total.bytes,
            },
            total_in: status::Traffic {
                packets: in_total.packets,
                bytes: in_total.bytes,
            },
            ike: ike_status,
            outbound,
            inbound,
            nat: state
                .filter(|s| s.ike.is_some())
                .and_then(|s| s.nat)
                .map(|n| status::NatStatus {
                    we_are_behind_nat: n.nat.local,
                    peer_is_behind_nat: n.nat.remote,
                    peer: n.remote.to_string(),
                }),
            seq_space: plane
                .static_seq_space(&key)
                .map(|q| status::SeqSpaceStatus {
                    used: q.used,
                    size: q.size,
                    percent: q.percent(),
                    esn: q.esn,
                }),
        };
        let c = &mut connections[position];
        if let Some(i) = c.interface.as_mut().filter(|_| ts.state == "up") {
            i.state = "up".into();
        }
        match plane.client(&key) {
            Some(cl) => c.clients.push(status::ClientStatus {
                identity: cl.identity.clone(),
                address: crate::plane::clients::Clients::vips_text(cl),
                connected_secs: now.saturating_duration_since(cl.since_instant).as_secs(),
                tunnel: ts,
            }),
            None => c.tunnels.push(ts),
        }
    }
    let no_match = match filter {
        Some(f) if connections.is_empty() => {
            Some(f.no_match(cfg.connections.iter().map(|c| c.name.clone()).collect()))
        }
        _ => None,
    };
    let es = plane.engine_stats();
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        tun: dp.tun.to_string(),
        workers: dp.workers,
        workers_failed: dp.workers_failed,
        uptime_secs: started.elapsed().as_secs(),
        counters: status::Counters {
            tun_rx_packets: totals.tun_rx_packets,
            tun_tx_packets: totals.tun_tx_packets,
            tun_rx_super_packets: totals.tun_rx_super_packets,
            tun_tx_super_packets: totals.tun_tx_super_packets,
            udp_rx_packets: totals.udp_rx_packets,
            udp_tx_packets: totals.udp_tx_packets,
            udp_rx_super_packets: totals.udp_rx_super_packets,
            udp_tx_super_packets: totals.udp_tx_super_packets,
            udp6_checksum_errors: udp6_checksum_errors(),
            ike_packets: totals.ike_packets,
            keepalives: totals.keepalives,
            mss_clamped: totals.mss_clamped,
            gro_bad_checksums: totals.gro_bad_checksums,
            icmp_too_big: totals.icmp_too_big,
            icmp_limited: totals.icmp_limited,
            inner_fragmented: totals.inner_fragmented,
        },
        // Workers count every drop gateway-wide as well as per SA: the totals include them.
        drops: drops_map(&totals.drops),
        ike: status::IkeCounters {
            received: es.received,
            malformed: es.malformed,
            unknown_spi: es.unknown_spi,
            cookies_sent: es.cookies_sent,
            half_open_dropped: es.half_open_dropped,
            retransmits_answered: es.retransmits_answered,
            requests_sent: es.requests_sent,
            retransmits_sent: es.retransmits_sent,
            invalid_spi_sent: es.invalid_spi_sent,
            invalid_spi_hints: es.invalid_spi_hints,
            integrity_failed: es.integrity_failed,
            wrong_message_id: es.wrong_message_id,
            invalid_major_version_sent: es.invalid_major_version_sent,
            queue_dropped: plane.admission().dropped(),
            socket_dropped: plane.admission().socket_dropped(),
            no_proposal_chosen: es.no_proposal_chosen,
            eap_failures: es.eap_failures,
            eap_failure_reasons: es
                .eap_failure_reasons
                .iter()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            auth_rate_limited: es.auth_rate_limited,
            log_suppressed: plane.log_suppressed(),
        },
        guards: None,
        shared_addresses: plane
            .shared_addresses()
            .iter()
            .enumerate()
            .map(|(i, a)| status::SharedAddressStatus {
                address: a.address.to_string(),
                present: a.present,
                changes: a.changes,
                ignored_acquires: if i == 0 { plane.ignored_acquires() } else { 0 },
            })
            .collect(),
        drain: None,
        summary: None,
        no_match,
        connections,
    }
}

/// Udp6InCsumErrors of this process's network namespace: UDP over IPv6 the kernel dropped
/// for a bad checksum, or a zero one on a socket without UDP_NO_CHECK6_RX (RFC 6936; the
/// kernel counts both alike, so one number tells the operator both). Read per status request
/// (one small file), so the fast path pays nothing. None without IPv6.
fn udp6_checksum_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp6").ok()?;
    snmp6_value(&text, "Udp6InCsumErrors")
}

/// A counter of /proc/net/snmp6's `NAME VALUE` lines.
fn snmp6_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some(name)).then(|| w.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod snmp6_tests {
    use super::snmp6_value;

    #[test]
    fn reads_one_snmp6_counter_and_nothing_else() {
        let text = "Udp6InDatagrams                 \t5\nUdp6InErrors                    \t3\n\
                    Udp6InCsumErrors                \t2\nUdpLite6InCsumErrors            \t9\n";
        assert_eq!(snmp6_value(text, "Udp6InCsumErrors"), Some(2));
        assert_eq!(snmp6_value(text, "Udp6InErrors"), Some(3));
        assert_eq!(snmp6_value(text, "Udp6NoPorts"), None);
        assert_eq!(
            snmp6_value("Udp6InCsumErrors x\n", "Udp6InCsumErrors"),
            None
        );
    }
}

/// Status at scale without root: planes of `n` tunnels (two planes talking to each other, as
/// `plane/bench.rs` does, for tunnels that are up), the fast path's tables built from the
/// plane. `IRONSEC_STATUS_BENCH_SIZES=1000,10000 cargo test -p ironsecd --release --lib
/// report::scale -- --nocapture` prints how long a status holds the plane (the build) and
/// what serialising and rendering it cost afterwards; the suite runs it at 100.
#[cfg(test)]
mod scale {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::testutil::{settle, ConfFile};

    /// `n` connections of one tunnel each: the hub side (`a`, initiating when `start`) and
    /// the sites' side (`b`), as plane/bench.rs's.
    /// Connections `from..from + n`.
    fn configs_from(from: usize, n: usize, start: &str) -> (String, String) {
        let gw = "[gateway]\ntun = \"ipsec0\"\nport = 4500\nike_port = 500\n";
        let (mut a, mut b) = (gw.to_string(), gw.to_string());
        let conn =
            |name: &str, me: &str, peer: &str, lts: &str, rts: &str, start: &str, t: &str| {
                format!(
                    "[[connection]]\nname = \"{name}\"\nkeying = \"ike\"\nlocal_id = \"{me}\"\n\
                 remote_id = \"{peer}\"\npsk = \"0123456789abcdef0123456789abcdef\"\n\
                 local_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n\
                 ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\n\
                 esp_proposals = [\"aes256gcm16\"]\nstart_action = \"{start}\"\n\
                 tunnels = [ {t} ]\n"
                )
            };
        for i in from..from + n {
            let (hi, lo) = (i / 256, i % 256);
            let site = format!("10.{hi}.{lo}.0/24");
            let hub = format!("172.{}.{lo}.0/24", 16 + hi);
            let ta = format!("{{ local = \"192.0.2.1\", remote = \"100.64.{hi}.{lo}\" }}");
            let tb = format!("{{ local = \"100.64.{hi}.{lo}\", remote = \"192.0.2.1\" }}");
            let (ia, ib) = (format!("a{i}.example"), format!("b{i}.example"));
            a += &conn(&format!("s{i}"), &ia, &ib, &hub, &site, start, &ta);
            b += &conn(&format!("h{i}"), &ib, &ia, &site, &hub, "none", &tb);
        }
        (a, b)
    }

    /// A hub plane of `n` connections, every tunnel up when `up` (else never started).
    fn hub(n: usize, up: bool) -> Plane {
        if !up {
            return Plane::new(load_in_chunks(n), 1).unwrap();
        }
        let mut a = Plane::new(load_side_in_chunks(n, true), 1).unwrap();
        let mut b = Plane::new(load_side_in_chunks(n, false), 1).unwrap();
        let mut now = Instant::now();
        a.start_tunnels(now);
        let all_up = |a: &Plane| a.specs().iter().all(|s| a.sas().is_sending(&s.key()));
        for _ in 0..200 {
            settle(&mut a, &mut b, now);
            if all_up(&a) {
                break;
            }
            now += Duration::from_millis(500);
            a.on_timeout(now);
            b.on_timeout(now);
        }
        assert!(all_up(&a), "every tunnel is up");
        a
    }

    /// The hub's config of `n` connections, loaded 1,000 at a time and put together: the
    /// same connections as one file, without the config check's pairwise overlap test over
    /// all of them (the connections are apart by construction), which at 10,000 takes most
    /// of a minute in a debug build.
    fn load_in_chunks(n: usize) -> crate::config::Config {
        load_side_in_chunks(n, true)
    }

    /// [`load_in_chunks`] for the hub (`a`) or the sites' side.
    fn load_side_in_chunks(n: usize, a: bool) -> crate::config::Config {
        const CHUNK: usize = 1_000;
        let mut all: Option<crate::config::Config> = None;
        for from in (0..n).step_by(CHUNK) {
            let (ca, cb) = configs_from(from, CHUNK.min(n - from), "start");
            let cfg = ConfFile::new("report-chunk", if a { &ca } else { &cb }).load();
            match &mut all {
                None => all = Some(cfg),
                Some(a) => a.connections.extend(cfg.connections),
            }
        }
        all.expect("at least one connection")
    }

    fn build_of(plane: &Plane, filter: Option<&NameFilter>) -> (Status, Work) {
        let tables = plane.tables().unwrap();
        let fast = FastPath {
            tables: &tables,
            totals: GatewayTotals::default(),
            tun: "ipsec0",
            workers: 1,
            workers_failed: 0,
        };
        let mut work = Work::default();
        let st = build(&fast, plane, Instant::now(), filter, &mut work);
        (st, work)
    }

    #[test]
    fn building_status_is_linear_in_the_tunnels_and_filtered_at_the_source() {
        // Configured, never started: 1,000 and 10,000 connections cost the same per tunnel.
        let mut per_tunnel = Vec::new();
        for n in [1_000, 10_000] {
            let plane = hub(n, false);
            let (st, work) = build_of(&plane, None);
            assert_eq!(st.connections.len(), n);
            assert!(st.connections.iter().all(|c| c.tunnels.len() == 1));
            assert_eq!(st.no_match, None);
            // A connection and its tunnel each, no search per tunnel.
            assert_eq!(work.visits, 2 * n as u64, "at {n}");
            per_tunnel.push(work.visits / n as u64);
            // One name: one connection built, and the rest looked at once.
            let (st, work) = build_of(&plane, Some(&NameFilter::new("s7")));
            assert_eq!(st.connections.len(), 1);
            assert_eq!(st.connections[0].name, "s7");
            assert!(work.visits <= 2 * n as u64);
            let (st, _) = build_of(&plane, Some(&NameFilter::new("s1?")));
            assert_eq!(
                st.connections.iter().map(|c| &c.name).collect::<Vec<_>>(),
                (10..20)
                    .map(|i| format!("s{i}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .collect::<Vec<_>>()
            );
            // Nothing matched: said in the answer, the configured names cut short.
            let (st, _) = build_of(&plane, Some(&NameFilter::new("nope")));
            assert!(st.connections.is_empty());
            let e = st.no_match.expect("no match is said");
            assert!(e.is_error());
            assert!(e.to_string().contains("... and "), "{e}");
            let (st, _) = build_of(&plane, Some(&NameFilter::new("x*")));
            assert!(!st.no_match.expect("no match is said").is_error());
            // Brief: the summary, and only what is not up (here: everything is down).
            let (mut st, _) = build_of(&plane, None);
            st.make_brief();
            let s = st.summary.clone().unwrap();
            assert_eq!((s.connections, s.up, s.down, s.tunnels), (n, 0, n, n));
            assert_eq!(s.omitted, 0);
        }
        assert_eq!(per_tunnel[0], per_tunnel[1]);
    }

    /// Sizes from `IRONSEC_STATUS_BENCH_SIZES` (comma-separated tunnel counts), default 100.
    fn sizes() -> Vec<usize> {
        std::env::var("IRONSEC_STATUS_BENCH_SIZES")
            .ok()
            .map(|v| v.split(',').map(|n| n.trim().parse().unwrap()).collect())
            .unwrap_or_else(|| vec![100])
    }

    #[test]
    fn status_cost_with_every_tunnel_up() {
        for n in sizes() {
            let plane = hub(n, true);
            let t = Instant::now();
            let (st, work) = build_of(&plane, None);
            let held = t.elapsed();
            // Each up tunnel: itself, its IKE SA, its one CHILD_SA in that SA; and its
            // connection.
            assert_eq!(work.visits, 4 * n as u64, "at {n}");
            assert!(st
                .connections
                .iter()
                .all(|c| c.tunnels.iter().all(|t| t.state == "up" && t.ike.is_some())));
            let t = Instant::now();
            let (one, _) = build_of(&plane, Some(&NameFilter::new(&format!("s{}", n - 1))));
            let held_one = t.elapsed();
            assert_eq!(one.connections.len(), 1);
            let t = Instant::now();
            let mut bytes = CountingSink(0);
            serde_json::to_writer(&mut bytes, &st).unwrap();
            let json = t.elapsed();
            let t = Instant::now();
            let text = st.render();
            let render = t.elapsed();
            let mut brief = st.clone();
            brief.make_brief();
            let s = brief.summary.clone().unwrap();
            assert_eq!((s.connections, s.up, s.tunnels_up), (n, n, n));
            let line = brief.summary_line();
            assert!(
                line.starts_with(&format!(
                    "connections: {n} configured, {n} up, 0 down (0 failing); tunnels: {n} of {n} up"
                )),
                "{line}"
            );
            println!(
                "{n:>6} tunnels up: build (plane locked) {held:>10.1?}, one connection {held_one:>9.1?}; \
                 after the lock: json {json:>10.1?} ({} bytes), text {render:>10.1?} ({} bytes)",
                bytes.0,
                text.len()
            );
        }
    }

    /// Counts what is written, keeps nothing.
    struct CountingSink(usize);

    impl std::io::Write for CountingSink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
