//! The config translated into the IKE engine's settings for each peer.

use std::time::Duration;

use ironsec_dataplane::Selector;
use std::sync::Arc;

use ironsec_ike::{
    ts, Credentials, EndpointConfig, Lifetimes, LocalAuth, PeerConfig, PeerTrust, RemoteAuth,
};

use crate::config::pki::{LocalAuthConfig, RemoteAuthConfig, Trust};
use crate::config::{Config, Connection, Keying};

/// IPv6 (40) and UDP (8) headers: what an IKE datagram adds to its payload at most.
const IPV6_UDP_HEADERS: usize = 48;

/// The engine-wide settings from `[gateway]`.
pub(super) fn endpoint_config(cfg: &Config) -> EndpointConfig {
    let g = &cfg.gateway;
    EndpointConfig {
        ike_port: g.ike_port,
        natt_port: g.port,
        cookie_threshold: g.cookie_threshold,
        max_half_open: g.half_open_limit,
        // The operator's number is the whole IP datagram (strongSwan's charon.fragment_size);
        // the engine's is the UDP payload. IPv6 and UDP headers (48 bytes) come off, so a
        // fragment fits over either family.
        fragment_size: g.ike_fragment_size.saturating_sub(IPV6_UDP_HEADERS),
        ..Default::default()
    }
}

fn peer_config(c: &Connection, trust: &Trust) -> Option<PeerConfig> {
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
        local_auth: match (&k.auth.local, &k.psk) {
            (LocalAuthConfig::Pubkey(c), _) => LocalAuth::Pubkey(Credentials::new(
                c.iter().map(|lc| lc.credential.clone()).collect(),
                trust.store.anchors(),
            )?),
            (LocalAuthConfig::Psk, Some(psk)) => LocalAuth::Psk(psk.clone()),
            // Validation requires a PSK for PSK authentication.
            (LocalAuthConfig::Psk, None) => return None,
        },
        remote_auth: match (&k.auth.remote, &k.psk) {
            (RemoteAuthConfig::Pubkey { pinned }, _) => RemoteAuth::Pubkey(Arc::new(PeerTrust {
                store: trust.store.clone(),
                pinned: pinned.as_ref().map(|p| p.cert.clone()),
            })),
            (RemoteAuthConfig::Psk, Some(psk)) => RemoteAuth::Psk(psk.clone()),
            (RemoteAuthConfig::Psk, None) => return None,
            (RemoteAuthConfig::EapMschapv2(u), _) => RemoteAuth::EapMschapv2(u.users.clone()),
            // One RADIUS server per connection: named after it (plane/radius.rs).
            (RemoteAuthConfig::EapRadius(_), _) => RemoteAuth::EapRadius {
                server: c.name.as_str().into(),
            },
            (RemoteAuthConfig::EapTls, _) => RemoteAuth::EapTls(Arc::new(PeerTrust {
                store: trust.store.clone(),
                pinned: None,
            })),
        },
        ike_proposals: k.ike_proposals.clone(),
        esp_proposals: k.esp_proposals.clone(),
        local_ts: to_ts(&c.local_selectors),
        remote_ts: to_ts(&c.remote_selectors),
        remote_addrs: k.tunnels.iter().map(|t| t.remote).collect(),
        retransmit,
        lifetimes: Lifetimes {
            ike_rekey: k.ike_rekey_time,
            ike_reauth: k.reauth_time,
            child_rekey: k.rekey_time,
            child_hard: k.rekey_time + k.rekey_time / 10 + jitter,
            child_rekey_bytes: k.volume.rekey_bytes,
            child_rekey_packets: k.volume.rekey_packets,
            child_hard_bytes: k.volume.life_bytes,
            child_hard_packets: k.volume.life_packets,
            jitter,
        },
        dpd_interval: k.dpd_interval,
        force_encap: k.encap,
        // A remote-access connection answers any address (remote_addrs is empty: it has no
        // configured tunnels) and leases each client an address.
        vip: match &k.remote_access {
            Some(ra) => ironsec_ike::config::VipRole::Assign(ra.vip_pool()),
            None => ironsec_ike::config::VipRole::None,
        },
        unique: k.unique,
    })
}

/// The engine's peers: one per IKE-keyed connection.
pub(super) fn peer_configs(cfg: &Config) -> Vec<PeerConfig> {
    cfg.connections
        .iter()
        .filter_map(|c| peer_config(c, &cfg.trust))
        .collect()
}
