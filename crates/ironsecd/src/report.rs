//! Builds the [`Status`] document from the fast path's counters and the control plane's
//! state. `ironsecctl status` and the metrics endpoint both read it, so they always agree.

use std::collections::BTreeMap;
use std::time::Instant;

use ironsec_dataplane::{Dataplane, DropTotals};

use crate::config::{Keying, Mode, StartAction};
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

pub fn status(dp: &Dataplane, plane: &Plane, started: Instant) -> Status {
    let tables = dp.tables();
    let totals = dp.totals();
    let ike_sas = plane.ike_sas();
    let now = Instant::now();
    let mut connections: Vec<status::ConnectionStatus> = plane
        .config()
        .connections
        .iter()
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
                interface: c.route_based.as_ref().map(|rb| {
                    let kernel = status::InterfaceCounters::read(&rb.interface);
                    status::InterfaceStatus {
                        name: rb.interface.clone(),
                        present: kernel.is_some() && plane.devices().contains_key(c.name.as_str()),
                        // Filled in below, with the tunnels.
                        state: "down".into(),
                        address: rb.address_text(),
                        routes: rb.routes.iter().map(|p| p.to_string()).collect(),
                        protect: rb.protect.iter().map(|p| p.to_string()).collect(),
                        kernel,
                    }
                }),
                tunnels: Vec::new(),
                pools: match &c.keying {
                    Keying::Ike(k) => k
                        .remote_access
                        .iter()
                        .flat_map(|ra| &ra.pools)
                        .map(|pool| {
                            let leases: Vec<_> = plane
                                .leases(&c.name)
                                .into_iter()
                                .filter(|l| pool.contains(l.address))
                                .collect();
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
                        .collect(),
                    Keying::Static(_) => Vec::new(),
                },
                clients: Vec::new(),
            }
        })
        .collect();
    for (id, spec) in plane.specs().iter().enumerate() {
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
            .and_then(|ike| ike_sas.iter().find(|s| s.id == ike));
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
        let conn_cfg = &plane.config().connections[spec.conn_index];
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
        if let Some(c) = connections.iter_mut().find(|c| *c.name == *spec.conn) {
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
    }
    let es = plane.engine_stats();
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        tun: dp.tun_name().to_string(),
        workers: dp.workers(),
        workers_failed: dp.workers_failed(),
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
