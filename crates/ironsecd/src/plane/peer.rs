//! The config translated into the IKE engine's settings for each peer.

use std::time::Duration;

use ironsec_dataplane::Selector;
use ironsec_ike::{ts, Lifetimes, PeerConfig};

use crate::config::{Config, Connection, Keying};

fn peer_config(c: &Connection) -> Option<PeerConfig> {
    let Keying::Ike(k) = &c.keying else {
        return None;
    };
    // Proposed exactly as configured, protocol and ports included.
    let to_ts = |v: &[Selector]| {
        v.iter()
            .map(|s| {
                let mut t = ts::from_prefix(s.prefix.addr(), s.prefix.len());
                t.ip_protocol = s.ports.proto;
                t.start_port = s.ports.start;
                t.end_port = s.ports.end;
                t
            })
            .collect()
    };
    let jitter = (k.rekey_time / 10).min(Duration::from_secs(60));
    let mut retransmit = k.retransmit;
    retransmit.give_up_after = k.dpd_timeout;
    Some(PeerConfig {
        name: c.name.as_str().into(),
        local_id: k.local_id.clone(),
        remote_id: k.remote_id.clone(),
        psk: k.psk.clone(),
        ike_proposals: k.ike_proposals.clone(),
        esp_proposals: k.esp_proposals.clone(),
        local_ts: to_ts(&c.local_selectors),
        remote_ts: to_ts(&c.remote_selectors),
        remote_addrs: k.tunnels.iter().map(|t| t.remote).collect(),
        retransmit,
        lifetimes: Lifetimes {
            ike_rekey: k.ike_rekey_time,
            ike_reauth: None,
            child_rekey: k.rekey_time,
            child_hard: k.rekey_time + k.rekey_time / 10 + jitter,
            child_rekey_bytes: None,
            child_rekey_packets: None,
            child_hard_bytes: None,
            child_hard_packets: None,
            jitter,
        },
        dpd_interval: k.dpd_interval,
        force_encap: k.encap,
    })
}

/// The engine's peers: one per IKE-keyed connection.
pub(super) fn peer_configs(cfg: &Config) -> Vec<PeerConfig> {
    cfg.connections.iter().filter_map(peer_config).collect()
}
