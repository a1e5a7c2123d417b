//! Turns the config and the SAs that exist into the fast path's tables.
//!
//! SA entries live in a [`SaStore`] for as long as their SA does, and every table rebuild
//! shares them: a rebuilt table must carry the same sequence counters and replay windows on.
//! Tunnel ids are positions in [`tunnel_specs`], which only the config decides.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ironsec_dataplane::{
    InboundEntry, OutboundEntry, PerWorker, Policy, Prefix, TableError, Tables, Tunnel, TunnelId,
};
use ironsec_esp::{InboundSa, KeyError, OutboundSa};
use ironsec_ike::wire::TrafficSelector;
use ironsec_ike::{ChildSaInfo, IkeSaId};

use crate::config::{Config, Keying};

#[derive(thiserror::Error, Debug)]
pub enum BuildError {
    #[error("connection '{conn}': {source}")]
    Key {
        conn: String,
        #[source]
        source: KeyError,
    },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("cannot get random bytes for the IV offset: {0}")]
    Random(String),
}

/// One tunnel of the config, in config order.
#[derive(Clone, Debug)]
pub struct TunnelSpec {
    pub conn: Arc<str>,
    /// Index of the connection in the config.
    pub conn_index: usize,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub ike: bool,
}

pub fn tunnel_specs(cfg: &Config) -> Vec<TunnelSpec> {
    let mut v = Vec::new();
    for (i, c) in cfg.connections.iter().enumerate() {
        let pairs: Vec<(IpAddr, IpAddr, bool)> = match &c.keying {
            Keying::Static(s) => s
                .tunnels
                .iter()
                .map(|t| (t.local, t.remote.ip(), false))
                .collect(),
            Keying::Ike(k) => k
                .tunnels
                .iter()
                .map(|t| (t.local, t.remote, true))
                .collect(),
        };
        for (local, remote, ike) in pairs {
            v.push(TunnelSpec {
                conn: c.name.as_str().into(),
                conn_index: i,
                local,
                remote,
                ike,
            });
        }
    }
    v
}

/// A negotiated CHILD_SA installed in the fast path.
pub struct IkeChild {
    pub conn: Arc<str>,
    pub ike: IkeSaId,
    pub tunnel: TunnelId,
    pub info: ChildSaInfo,
    pub outbound: Arc<OutboundEntry>,
    pub inbound: Arc<InboundEntry>,
    pub installed: Instant,
    /// Deleted: the inbound SA stays a moment for packets already in flight, then goes.
    pub retiring_until: Option<Instant>,
}

/// The SAs that exist, static and negotiated.
#[derive(Default)]
pub struct SaStore {
    /// Per tunnel id: the static outbound SA (None for IKE tunnels).
    pub static_out: Vec<Option<Arc<OutboundEntry>>>,
    pub static_in: Vec<Arc<InboundEntry>>,
    pub children: BTreeMap<u32, IkeChild>,
    /// Per tunnel: inbound SPI of the CHILD_SA it sends with.
    pub active_out: HashMap<TunnelId, u32>,
}

/// Address ranges from a negotiation as prefixes for the fast path (a range that is not a
/// single prefix becomes the prefixes that cover exactly it). Ports and protocols are not
/// enforced by the fast path.
pub fn ts_prefixes(ts: &[TrafficSelector]) -> Vec<Prefix> {
    let mut out = Vec::new();
    for t in ts {
        let (s, e, bits) = match (t.start, t.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => continue,
        };
        let mut cur = s;
        while cur <= e {
            // Largest aligned block starting at `cur` that stays within `e`.
            let mut size_bits = if cur == 0 {
                bits
            } else {
                cur.trailing_zeros().min(bits)
            };
            while size_bits > 0 {
                let span = if size_bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << size_bits) - 1
                };
                if cur.checked_add(span).is_some_and(|end| end <= e) {
                    break;
                }
                size_bits -= 1;
            }
            let len = (bits - size_bits) as u8;
            let addr = if bits == 32 {
                IpAddr::V4((cur as u32).into())
            } else {
                IpAddr::V6(cur.into())
            };
            if let Ok(p) = Prefix::new(addr, len) {
                out.push(p);
            }
            let span = if size_bits >= 128 {
                u128::MAX
            } else {
                1u128 << size_bits
            };
            match cur.checked_add(span) {
                Some(n) if size_bits < bits => cur = n,
                _ => break,
            }
        }
    }
    out
}

fn random_u64() -> Result<u64, BuildError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 8];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| BuildError::Random("getrandom failed".into()))?;
    Ok(u64::from_ne_bytes(b))
}

impl SaStore {
    /// Creates the static SAs once, at start.
    ///
    /// Static SAs start their sequence numbers at 1 on every start of the daemon, so each gets
    /// a random IV offset: the GCM/ChaCha nonce must never repeat under one key, and with
    /// manual keys the key outlives the process.
    pub fn with_static(
        cfg: &Config,
        specs: &[TunnelSpec],
        workers: usize,
    ) -> Result<SaStore, BuildError> {
        let mut store = SaStore {
            static_out: vec![None; specs.len()],
            ..Default::default()
        };
        let mut id = 0;
        for c in &cfg.connections {
            match &c.keying {
                Keying::Ike(k) => id += k.tunnels.len(),
                Keying::Static(st) => {
                    let local_ts: Arc<[_]> = c.local_ts.clone().into();
                    let remote_ts: Arc<[_]> = c.remote_ts.clone().into();
                    for t in &st.tunnels {
                        let key_err = |source| BuildError::Key {
                            conn: c.name.clone(),
                            source,
                        };
                        let out = OutboundSa::new(st.suite, t.spi_out, t.key_out.bytes(), st.esn)
                            .map_err(key_err)?
                            .with_iv_offset(random_u64()?);
                        let inb = InboundSa::new(
                            st.suite,
                            t.spi_in,
                            t.key_in.bytes(),
                            st.esn,
                            cfg.gateway.replay_window,
                        )
                        .map_err(key_err)?;
                        store.static_out[id] = Some(Arc::new(OutboundEntry {
                            sa: out,
                            counters: PerWorker::new(workers),
                        }));
                        store.static_in.push(Arc::new(InboundEntry {
                            sa: inb,
                            tunnel: id,
                            local_ts: local_ts.clone(),
                            remote_ts: remote_ts.clone(),
                            counters: PerWorker::new(workers),
                        }));
                        id += 1;
                    }
                }
            }
        }
        Ok(store)
    }

    /// Installs a negotiated CHILD_SA's entries.
    pub fn child_entries(
        info: &ChildSaInfo,
        tunnel: TunnelId,
        replay_window: usize,
        workers: usize,
    ) -> Result<(Arc<OutboundEntry>, Arc<InboundEntry>), KeyError> {
        let a = info.algorithms;
        let out = OutboundSa::new(a.encr, info.spi_out, info.key_out.bytes(), a.esn)?;
        let inb = InboundSa::new(
            a.encr,
            info.spi_in,
            info.key_in.bytes(),
            a.esn,
            replay_window,
        )?;
        Ok((
            Arc::new(OutboundEntry {
                sa: out,
                counters: PerWorker::new(workers),
            }),
            Arc::new(InboundEntry {
                sa: inb,
                tunnel,
                local_ts: ts_prefixes(&info.local_ts).into(),
                remote_ts: ts_prefixes(&info.remote_ts).into(),
                counters: PerWorker::new(workers),
            }),
        ))
    }
}

fn policies_for(local: &[Prefix], remote: &[Prefix], tunnel: TunnelId, out: &mut Vec<Policy>) {
    for l in local {
        for r in remote {
            if l.is_v4() == r.is_v4() {
                out.push(Policy {
                    local: *l,
                    remote: *r,
                    tunnel,
                });
            }
        }
    }
}

/// Builds the fast path's tables from the config and the SAs that exist.
pub fn build(cfg: &Config, specs: &[TunnelSpec], store: &SaStore) -> Result<Tables, BuildError> {
    let addrs = cfg.local_addrs();
    let mut tunnels = Vec::with_capacity(specs.len());
    for (id, s) in specs.iter().enumerate() {
        let socket = addrs
            .iter()
            .position(|a| a.ip() == s.local)
            .expect("local_addrs() covers every tunnel's local address");
        let (remote, outbound) = if s.ike {
            match store
                .active_out
                .get(&id)
                .and_then(|spi| store.children.get(spi))
            {
                Some(c) => (c.info.remote, Some(c.outbound.clone())),
                None => (SocketAddr::new(s.remote, cfg.gateway.port), None),
            }
        } else {
            let remote = match &cfg.connections[s.conn_index].keying {
                Keying::Static(st) => st
                    .tunnels
                    .iter()
                    .find(|t| t.local == s.local && t.remote.ip() == s.remote)
                    .map(|t| t.remote),
                Keying::Ike(_) => None,
            }
            .unwrap_or(SocketAddr::new(s.remote, cfg.gateway.port));
            (remote, store.static_out[id].clone())
        };
        tunnels.push(Tunnel::new(
            s.conn.clone(),
            socket,
            addrs[socket],
            remote,
            outbound,
        ));
    }
    let mut policies = Vec::new();
    for (ci, c) in cfg.connections.iter().enumerate() {
        let ids: Vec<TunnelId> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn_index == ci)
            .map(|(i, _)| i)
            .collect();
        let Some(&first) = ids.first() else { continue };
        // Outbound uses the connection's first tunnel that has an SA; with none, traffic for
        // the site still matches (and is dropped as no_sa) rather than leaking elsewhere.
        let up = ids
            .iter()
            .find(|id| tunnels[**id].outbound.is_some())
            .copied();
        match (&c.keying, up) {
            (Keying::Ike(_), Some(id)) => {
                let child = &store.children[&store.active_out[&id]];
                policies_for(
                    &ts_prefixes(&child.info.local_ts),
                    &ts_prefixes(&child.info.remote_ts),
                    id,
                    &mut policies,
                );
            }
            _ => policies_for(
                &c.local_ts,
                &c.remote_ts,
                up.unwrap_or(first),
                &mut policies,
            ),
        }
    }
    let mut inbound: Vec<Arc<InboundEntry>> = store.static_in.clone();
    inbound.extend(store.children.values().map(|c| c.inbound.clone()));
    Ok(Tables::new(tunnels, policies, inbound)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(a: &str, b: &str) -> TrafficSelector {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        }
    }

    fn show(v: Vec<Prefix>) -> Vec<String> {
        v.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn ranges_become_covering_prefixes() {
        assert_eq!(
            show(ts_prefixes(&[ts("10.2.0.0", "10.2.0.255")])),
            ["10.2.0.0/24"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts("0.0.0.0", "255.255.255.255")])),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts("10.0.0.1", "10.0.0.6")])),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts(
                "::",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            )])),
            ["::/0"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts("10.0.0.9", "10.0.0.9")])),
            ["10.0.0.9/32"]
        );
    }
}
