//! Turns validated connections into the fast path's tables.

use std::sync::Arc;

use ironsec_dataplane::{
    InboundEntry, OutboundEntry, PerWorker, Policy, TableError, Tables, Tunnel,
};
use ironsec_esp::{InboundSa, KeyError, OutboundSa};

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

/// Builds tables for every connection. `workers` sizes the per-worker counters.
///
/// Static SAs start their sequence numbers at 1 on every start of the daemon, so each gets a
/// random IV offset: the GCM/ChaCha nonce must never repeat under one key, and with manual keys
/// the key outlives the process.
pub fn build(cfg: &Config, workers: usize) -> Result<Tables, BuildError> {
    let addrs = cfg.local_addrs();
    let mut tunnels = Vec::new();
    let mut policies = Vec::new();
    let mut inbound = Vec::new();
    for c in &cfg.connections {
        let Keying::Static(st) = &c.keying;
        let local_ts: Arc<[_]> = c.local_ts.clone().into();
        let remote_ts: Arc<[_]> = c.remote_ts.clone().into();
        let first_tunnel = tunnels.len();
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
            let socket = addrs
                .iter()
                .position(|a| a.ip() == t.local)
                .expect("local_addrs() covers every tunnel's local address");
            let id = tunnels.len();
            tunnels.push(Tunnel::new(
                c.name.as_str().into(),
                socket,
                addrs[socket],
                t.remote,
                Some(Arc::new(OutboundEntry {
                    sa: out,
                    counters: PerWorker::new(workers),
                })),
            ));
            inbound.push(Arc::new(InboundEntry {
                sa: inb,
                tunnel: id,
                local_ts: local_ts.clone(),
                remote_ts: remote_ts.clone(),
                counters: PerWorker::new(workers),
            }));
        }
        // Outbound traffic uses the connection's first tunnel; every tunnel accepts inbound.
        // (Choosing among several tunnels is the active-standby/active-active work.)
        if first_tunnel < tunnels.len() {
            for l in &c.local_ts {
                for r in &c.remote_ts {
                    if l.is_v4() == r.is_v4() {
                        policies.push(Policy {
                            local: *l,
                            remote: *r,
                            tunnel: first_tunnel,
                        });
                    }
                }
            }
        }
    }
    Ok(Tables::new(tunnels, policies, inbound)?)
}

fn random_u64() -> Result<u64, BuildError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 8];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| BuildError::Random("getrandom failed".into()))?;
    Ok(u64::from_ne_bytes(b))
}
