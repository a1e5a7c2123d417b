//! The SA database and outbound policy table, as one immutable snapshot.
//!
//! The control plane builds a new [`Tables`] and swaps it in; workers load the current snapshot
//! once per batch without taking a lock. SAs sit behind `Arc`s so a snapshot swap keeps their
//! sequence counters, replay windows and counters: a rebuilt table can carry the same SA on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ironsec_esp::{InboundSa, OutboundSa};
use socket2::SockAddr;

use crate::counters::{PerWorker, SaCounters};
use crate::prefix::Prefix;

/// Index of a tunnel in [`Tables::tunnels`].
pub type TunnelId = usize;

/// An outbound SA with its counters.
pub struct OutboundEntry {
    pub sa: OutboundSa,
    pub counters: PerWorker<SaCounters>,
}

/// An inbound SA, the tunnel it belongs to and the selectors decrypted packets must match.
pub struct InboundEntry {
    pub sa: InboundSa,
    pub tunnel: TunnelId,
    /// Inner destination must fall in one of these.
    pub local_ts: Arc<[Prefix]>,
    /// Inner source must fall in one of these.
    pub remote_ts: Arc<[Prefix]>,
    pub counters: PerWorker<SaCounters>,
}

impl InboundEntry {
    /// Whether a decrypted packet may enter the site: its source must belong to the peer's
    /// selectors and its destination to ours.
    #[inline]
    pub fn admits(&self, src: InnerAddr, dst: InnerAddr) -> bool {
        src.within(&self.remote_ts) && dst.within(&self.local_ts)
    }
}

/// One tunnel: a local/remote address pair and the SA it sends with.
pub struct Tunnel {
    /// Connection name, for status and logs.
    pub connection: Arc<str>,
    /// Index of the socket in [`crate::DataplaneConfig::local_addrs`] this tunnel sends from.
    pub socket: usize,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `None` while no SA is established: matching packets are dropped (`no_sa`), never sent
    /// in clear.
    pub outbound: Option<Arc<OutboundEntry>>,
    /// `remote` already in the kernel's form, so sending needs no conversion per packet.
    remote_raw: SockAddr,
}

impl Tunnel {
    pub fn new(
        connection: Arc<str>,
        socket: usize,
        local: SocketAddr,
        remote: SocketAddr,
        outbound: Option<Arc<OutboundEntry>>,
    ) -> Tunnel {
        Tunnel {
            connection,
            socket,
            local,
            remote,
            outbound,
            remote_raw: remote.into(),
        }
    }

    #[inline]
    pub fn remote_sockaddr(&self) -> &SockAddr {
        &self.remote_raw
    }
}

/// Outbound policy: traffic from `local` to `remote` goes to `tunnel`.
#[derive(Clone, Debug)]
pub struct Policy {
    pub local: Prefix,
    pub remote: Prefix,
    pub tunnel: TunnelId,
}

/// An address pulled out of an inner packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerAddr {
    V4(u32),
    V6(u128),
}

impl InnerAddr {
    #[inline]
    fn within(self, set: &[Prefix]) -> bool {
        match self {
            InnerAddr::V4(a) => set.iter().any(|p| p.contains_v4(a)),
            InnerAddr::V6(a) => set.iter().any(|p| p.contains_v6(a)),
        }
    }

    #[inline]
    fn matches(self, p: &Prefix) -> bool {
        match self {
            InnerAddr::V4(a) => p.contains_v4(a),
            InnerAddr::V6(a) => p.contains_v6(a),
        }
    }
}

/// Source and destination of an inner IPv4/IPv6 packet, or `None` when the header is not a
/// plausible IP header.
#[inline]
pub fn inner_addrs(pkt: &[u8]) -> Option<(InnerAddr, InnerAddr)> {
    match pkt.first()? >> 4 {
        4 if pkt.len() >= 20 => {
            let src = u32::from_be_bytes(pkt[12..16].try_into().ok()?);
            let dst = u32::from_be_bytes(pkt[16..20].try_into().ok()?);
            Some((InnerAddr::V4(src), InnerAddr::V4(dst)))
        }
        6 if pkt.len() >= 40 => {
            let src = u128::from_be_bytes(pkt[8..24].try_into().ok()?);
            let dst = u128::from_be_bytes(pkt[24..40].try_into().ok()?);
            Some((InnerAddr::V6(src), InnerAddr::V6(dst)))
        }
        _ => None,
    }
}

/// Everything the fast path needs to move packets, swapped as a whole.
#[derive(Default)]
pub struct Tables {
    inbound: HashMap<u32, Arc<InboundEntry>>,
    /// Most specific remote prefix first, so the first match is the longest match.
    policies: Vec<Policy>,
    tunnels: Vec<Tunnel>,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum TableError {
    #[error("inbound SPI 0x{0:08x} is used twice")]
    DuplicateSpi(u32),
    #[error("policy refers to tunnel {0}, which does not exist")]
    NoSuchTunnel(TunnelId),
    #[error("inbound SA 0x{spi:08x} refers to tunnel {tunnel}, which does not exist")]
    InboundNoSuchTunnel { spi: u32, tunnel: TunnelId },
}

impl Tables {
    /// Checks the cross references so the fast path can index without checks failing.
    pub fn new(
        tunnels: Vec<Tunnel>,
        mut policies: Vec<Policy>,
        inbound: Vec<Arc<InboundEntry>>,
    ) -> Result<Tables, TableError> {
        if let Some(p) = policies.iter().find(|p| p.tunnel >= tunnels.len()) {
            return Err(TableError::NoSuchTunnel(p.tunnel));
        }
        let mut map = HashMap::with_capacity(inbound.len());
        for e in inbound {
            let spi = e.sa.spi();
            if e.tunnel >= tunnels.len() {
                return Err(TableError::InboundNoSuchTunnel {
                    spi,
                    tunnel: e.tunnel,
                });
            }
            if map.insert(spi, e).is_some() {
                return Err(TableError::DuplicateSpi(spi));
            }
        }
        policies.sort_by(|a, b| {
            b.remote
                .len()
                .cmp(&a.remote.len())
                .then(b.local.len().cmp(&a.local.len()))
        });
        Ok(Tables {
            inbound: map,
            policies,
            tunnels,
        })
    }

    #[inline]
    pub fn inbound(&self, spi: u32) -> Option<&InboundEntry> {
        self.inbound.get(&spi).map(|e| &**e)
    }

    /// The tunnel for a packet from `src` to `dst`: longest remote prefix wins.
    #[inline]
    pub fn route(&self, src: InnerAddr, dst: InnerAddr) -> Option<&Tunnel> {
        self.route_id(src, dst).map(|(_, t)| t)
    }

    #[inline]
    pub fn route_id(&self, src: InnerAddr, dst: InnerAddr) -> Option<(TunnelId, &Tunnel)> {
        self.policies
            .iter()
            .find(|p| dst.matches(&p.remote) && src.matches(&p.local))
            .map(|p| (p.tunnel, &self.tunnels[p.tunnel]))
    }

    pub fn tunnels(&self) -> &[Tunnel] {
        &self.tunnels
    }

    pub fn inbound_entries(&self) -> impl Iterator<Item = &Arc<InboundEntry>> {
        self.inbound.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironsec_esp::Suite;

    fn tunnel(name: &str, outbound: Option<Arc<OutboundEntry>>) -> Tunnel {
        Tunnel::new(
            name.into(),
            0,
            "192.0.2.1:4500".parse().unwrap(),
            "192.0.2.2:4500".parse().unwrap(),
            outbound,
        )
    }

    fn v4(s: &str) -> InnerAddr {
        let a: std::net::Ipv4Addr = s.parse().unwrap();
        InnerAddr::V4(a.into())
    }

    #[test]
    fn longest_prefix_wins() {
        let p = |l: &str, r: &str, t| Policy {
            local: l.parse().unwrap(),
            remote: r.parse().unwrap(),
            tunnel: t,
        };
        let t = Tables::new(
            vec![tunnel("wide", None), tunnel("narrow", None)],
            vec![
                p("10.1.0.0/24", "10.0.0.0/8", 0),
                p("10.1.0.0/24", "10.2.0.0/24", 1),
            ],
            vec![],
        )
        .unwrap();
        let r = |s, d| t.route(v4(s), v4(d)).map(|t| &*t.connection);
        assert_eq!(r("10.1.0.2", "10.2.0.9"), Some("narrow"));
        assert_eq!(r("10.1.0.2", "10.3.0.9"), Some("wide"));
        assert_eq!(
            r("10.9.0.2", "10.2.0.9"),
            None,
            "source outside local selectors"
        );
    }

    #[test]
    fn rejects_duplicate_spi_and_dangling_refs() {
        let key = [7u8; 20];
        let e = || {
            Arc::new(InboundEntry {
                sa: InboundSa::new(Suite::Aes128Gcm16, 0x1000, &key, true, 0).unwrap(),
                tunnel: 0,
                local_ts: Arc::from(vec![]),
                remote_ts: Arc::from(vec![]),
                counters: PerWorker::new(1),
            })
        };
        assert_eq!(
            Tables::new(vec![tunnel("a", None)], vec![], vec![e(), e()]).err(),
            Some(TableError::DuplicateSpi(0x1000))
        );
        assert!(matches!(
            Tables::new(vec![], vec![], vec![e()]),
            Err(TableError::InboundNoSuchTunnel { .. })
        ));
    }

    #[test]
    fn inner_addresses() {
        let mut p = [0u8; 20];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        assert_eq!(inner_addrs(&p), Some((v4("10.1.0.2"), v4("10.2.0.2"))));
        assert_eq!(inner_addrs(&p[..19]), None);
        assert_eq!(inner_addrs(&[]), None);
        p[0] = 0x65;
        assert_eq!(inner_addrs(&p), None, "v6 needs 40 bytes");
    }
}
