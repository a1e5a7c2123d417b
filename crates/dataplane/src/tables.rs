//! The SA database and outbound policy table, as one immutable snapshot.
//!
//! The control plane builds a new [`Tables`] and swaps it in; workers load the current snapshot
//! once per batch without taking a lock. SAs sit behind `Arc`s so a snapshot swap keeps their
//! sequence counters, replay windows and counters: a rebuilt table can carry the same SA on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ironsec_esp::{InboundSa, OutboundSa};
use socket2::SockAddr;

use crate::activity::Watch;
use crate::counters::{PerWorker, SaCounters};
pub use crate::interfaces::{DeviceCell, IfaceId};
use crate::packet::{self, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
pub use crate::packet::{inner_addrs, InnerAddr};
use crate::prefix::Prefix;
use crate::selector::{PolicyPorts, PortSelectors};

/// Index of a tunnel in [`Tables::tunnels`].
pub type TunnelId = usize;

/// An outbound SA with its counters.
pub struct OutboundEntry {
    pub sa: OutboundSa,
    pub counters: PerWorker<SaCounters>,
    /// Reports the first packet sealed after the control plane armed
    /// [`Direction::Outbound`](crate::Direction::Outbound); `None` = not watched.
    pub watch: Option<Arc<Watch>>,
}

/// An inbound SA and the selectors decrypted packets must match. Which tunnel it belongs to
/// is the control plane's business: tunnel ids change when a reload adds or removes tunnels,
/// and an SA must live on across that.
pub struct InboundEntry {
    pub sa: InboundSa,
    /// Inner destination must fall in one of these.
    pub local_ts: Arc<[Prefix]>,
    /// Inner source must fall in one of these.
    pub remote_ts: Arc<[Prefix]>,
    /// The selectors' protocols and ports, when any selector has them; `None` (address-only
    /// selectors) keeps the check to the two prefix lookups above.
    pub ports: Option<Box<PortSelectors>>,
    pub counters: PerWorker<SaCounters>,
    /// Reports the first packet delivered after the control plane armed
    /// [`Direction::Inbound`](crate::Direction::Inbound); `None` = not watched.
    pub watch: Option<Arc<Watch>>,
    /// The device its decrypted packets are written to: the shared TUN device, or the
    /// route-based connection's own (set by the control plane with each table it builds).
    pub device: DeviceCell,
}

impl InboundEntry {
    /// Whether a decrypted packet from `src` to `dst` may enter the site: its source must
    /// belong to the peer's selectors and its destination to ours.
    #[inline]
    pub fn admits(&self, src: InnerAddr, dst: InnerAddr) -> bool {
        src.within(&self.remote_ts) && dst.within(&self.local_ts)
    }

    /// Whether the decrypted packet at `range` of `buf`, which [`admits`](Self::admits) by
    /// its addresses, also matches the protocol and ports of an SA narrowed to them; true
    /// without a look at the packet for an address-only SA (the slice is taken only in the
    /// out-of-line check, so the common case costs one test of `ports`).
    #[inline]
    pub fn admits_ports(&self, buf: &[u8], range: std::ops::Range<usize>) -> bool {
        match &self.ports {
            None => true,
            Some(p) => p.admits_inbound(buf.get(range).unwrap_or_default()),
        }
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
    /// Set when a packet with no SA should make the control plane negotiate one (an IPsec
    /// "trap" policy): the fast path then reports the tunnel, at most every
    /// [`Trap::INTERVAL_MS`].
    pub trap: Option<Trap>,
    /// Active-active: traffic routed to this tunnel is spread per flow over these tunnels
    /// (this one included or not); `None` sends it here.
    pub spread: Option<Spread>,
    /// The connection's share of the gateway's bandwidth; None = unlimited.
    pub shaper: Option<Arc<crate::shaper::Bucket>>,
    /// What fits through this tunnel: the MSS its SYNs are clamped to (both directions) and
    /// the inner size above which DF packets get an ICMP error back.
    pub mtu: crate::mtu::TunnelMtu,
    /// Copy the inner packet's DSCP to the outer header (`copy_dscp = "out"`, strongSwan's
    /// default): WAN routers can then queue the tunnel's traffic by class without seeing in.
    pub dscp_out: bool,
    /// Copy the outer header's DSCP into packets decrypted for the site that this tunnel
    /// answers (`copy_dscp = "in"`): found by the route back, like the inbound MSS clamp.
    pub dscp_in: bool,
    /// `remote` already in the kernel's form, so sending needs no conversion per packet.
    remote_raw: SockAddr,
}

/// Rate limit of one tunnel's acquire reports: a burst of packets before the SA exists must
/// not become a burst of messages to the control plane.
#[derive(Default)]
pub struct Trap {
    last_ms: AtomicU64,
}

/// Milliseconds since the first call: a clock only for spacing acquire reports.
fn coarse_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // +1 so the very first report is never mistaken for "reported at 0".
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + Trap::INTERVAL_MS + 1
}

impl Trap {
    pub const INTERVAL_MS: u64 = 250;

    /// Whether this packet should be reported; several workers may race, and then more than
    /// one report gets through, which the control plane tolerates.
    pub fn due(&self) -> bool {
        let now = coarse_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < Trap::INTERVAL_MS {
            return false;
        }
        self.last_ms.store(now, Ordering::Relaxed);
        true
    }
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
            trap: None,
            spread: None,
            shaper: None,
            mtu: crate::mtu::TunnelMtu::UNLIMITED,
            dscp_out: true,
            dscp_in: false,
            remote_raw: remote.into(),
        }
    }

    /// Marks the tunnel as trapped: packets without an SA are reported for negotiation.
    pub fn with_trap(mut self) -> Tunnel {
        self.trap = Some(Trap::default());
        self
    }

    /// Spreads this tunnel's traffic over several tunnels by flow (active-active).
    pub fn with_spread(mut self, spread: Spread) -> Tunnel {
        self.spread = Some(spread);
        self
    }

    #[inline]
    pub fn remote_sockaddr(&self) -> &SockAddr {
        &self.remote_raw
    }
}

/// A per-flow choice among tunnels, weighted: a table of slots filled by weighted rendezvous
/// hashing, so that when a tunnel joins or leaves only the flows of its own slots move, and
/// flows on the other tunnels keep their tunnel (no reordering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spread {
    slots: Box<[TunnelId]>,
}

impl Spread {
    /// Enough slots that weights up to 100:1 still get their share within a percent or two.
    pub const SLOTS: usize = 1024;

    /// `members` with their weights (0 = not used); None when no member has a weight.
    pub fn weighted(members: &[(TunnelId, u32)]) -> Option<Spread> {
        let members: Vec<(TunnelId, f64)> = members
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|(t, w)| (*t, f64::from(*w)))
            .collect();
        if members.is_empty() {
            return None;
        }
        let slots = (0..Spread::SLOTS)
            .map(|slot| {
                members
                    .iter()
                    .map(|(t, w)| {
                        // Uniform in (0, 1) from (slot, tunnel); score w / -ln(u) is the
                        // weighted rendezvous winner.
                        let h = mix64(((slot as u64) << 32) ^ (*t as u64) ^ 0x9e37_79b9_7f4a_7c15);
                        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                        (*t, w / -u.ln())
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(t, _)| t)
                    .expect("members is not empty")
            })
            .collect();
        Some(Spread { slots })
    }

    #[inline]
    pub fn pick(&self, flow_hash: u32) -> TunnelId {
        self.slots[flow_hash as usize % self.slots.len()]
    }

    /// How many slots each tunnel holds.
    pub fn shares(&self) -> HashMap<TunnelId, usize> {
        let mut m = HashMap::new();
        for t in self.slots.iter() {
            *m.entry(*t).or_insert(0) += 1;
        }
        m
    }
}

/// A 64-bit finaliser (splitmix64): cheap, and every input bit reaches every output bit.
#[inline]
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hash of a packet's flow: addresses, protocol and, for TCP, UDP and SCTP packets that are
/// not fragments, the ports. One TCP connection always hashes the same, so it stays on one
/// tunnel; fragments of a datagram hash on addresses and protocol only.
#[inline]
pub fn flow_hash(pkt: &[u8]) -> u32 {
    let mut h: u64 = 0;
    let (proto, l4): (u8, Option<&[u8]>) = match packet::version(pkt) {
        Some(4) if pkt.len() >= 20 => {
            h ^= u64::from(u32::from_be_bytes([pkt[12], pkt[13], pkt[14], pkt[15]])) << 32
                | u64::from(u32::from_be_bytes([pkt[16], pkt[17], pkt[18], pkt[19]]));
            let ihl = packet::ipv4_header_len(pkt).unwrap_or(0);
            let frag = packet::ipv4_is_fragment(pkt).unwrap_or(false);
            (
                pkt[9],
                (!frag && ihl >= 20).then(|| pkt.get(ihl..)).flatten(),
            )
        }
        Some(6) if pkt.len() >= 40 => {
            for c in pkt[8..40].chunks_exact(8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                h = mix64(h ^ u64::from_be_bytes(w));
            }
            // Extension headers are not walked: ports only when the next header is L4.
            (pkt[6], pkt.get(40..))
        }
        _ => (0, None),
    };
    h ^= u64::from(proto) << 40;
    if matches!(proto, PROTO_TCP | PROTO_UDP | PROTO_SCTP) {
        if let Some(p) = l4.filter(|p| p.len() >= 4) {
            h ^= u64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]])) << 8;
        }
    }
    mix64(h) as u32
}

/// Outbound policy: traffic from `local` to `remote` goes to `tunnel`.
#[derive(Clone, Debug)]
pub struct Policy {
    pub local: Prefix,
    pub remote: Prefix,
    pub tunnel: TunnelId,
    /// The protocol and ports the policy is narrowed to; `None` = addresses only, and then
    /// the packet's transport header is never read.
    pub ports: Option<PolicyPorts>,
    /// Which device's packets it applies to: `None`, those of the shared TUN device (a
    /// policy-based connection); `Some`, those a route-based connection's own device reads,
    /// which the kernel's routes sent there.
    pub scope: Option<IfaceId>,
}

/// Everything the fast path needs to move packets, swapped as a whole.
/// An inbound SA in one table snapshot: the entry (shared by every snapshot) and, for a peer
/// behind a NAT, the address the tunnel sends to now. A packet that authenticates from another
/// address shows the peer's NAT mapping changed; the fast path reports it (see
/// [`crate::PeerMovedSink`]). `None`: the peer's address is fixed and not followed.
struct InboundSlot {
    entry: Arc<InboundEntry>,
    /// Boxed: a fixed peer's slot stays two words, so the lookup every packet makes costs
    /// what it did before NAT peers were followed.
    nat_peer: Option<Box<SocketAddr>>,
}

#[derive(Default)]
pub struct Tables {
    inbound: HashMap<u32, InboundSlot>,
    /// The shared TUN device's policies, most specific remote prefix first, so the first
    /// match is the longest match.
    policies: Vec<Policy>,
    /// Each route-based device's policies, in the same order.
    scoped: HashMap<IfaceId, Vec<Policy>>,
    tunnels: Vec<Tunnel>,
    /// Some tunnel has `dscp_in`: only then do workers read the outer TOS of what they
    /// receive and look up the route back of each decrypted packet.
    any_dscp_in: bool,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum TableError {
    #[error("inbound SPI 0x{0:08x} is used twice")]
    DuplicateSpi(u32),
    #[error("policy refers to tunnel {0}, which does not exist")]
    NoSuchTunnel(TunnelId),
}

impl Tables {
    /// The same tables with every tunnel sized `mtu` (tests and benches; the daemon sets
    /// each tunnel's own when it builds them).
    pub fn with_mtu(mut self, mtu: crate::mtu::TunnelMtu) -> Tables {
        for t in &mut self.tunnels {
            t.mtu = mtu;
        }
        self
    }

    /// The same tables with every tunnel's `copy_dscp` outbound set to `on` (tests).
    pub fn with_dscp_out(mut self, on: bool) -> Tables {
        for t in &mut self.tunnels {
            t.dscp_out = on;
        }
        self
    }

    /// Checks the cross references so the fast path can index without checks failing.
    pub fn new(
        tunnels: Vec<Tunnel>,
        mut policies: Vec<Policy>,
        inbound: Vec<Arc<InboundEntry>>,
    ) -> Result<Tables, TableError> {
        if let Some(p) = policies.iter().find(|p| p.tunnel >= tunnels.len()) {
            return Err(TableError::NoSuchTunnel(p.tunnel));
        }
        if let Some(t) = tunnels
            .iter()
            .filter_map(|t| t.spread.as_ref())
            .flat_map(|s| s.slots.iter())
            .find(|t| **t >= tunnels.len())
        {
            return Err(TableError::NoSuchTunnel(*t));
        }
        let mut map = HashMap::with_capacity(inbound.len());
        for e in inbound {
            let spi = e.sa.spi();
            let slot = InboundSlot {
                entry: e,
                nat_peer: None,
            };
            if map.insert(spi, slot).is_some() {
                return Err(TableError::DuplicateSpi(spi));
            }
        }
        // Longest prefixes first, and among equal prefixes the narrower protocol/ports (as
        // strongSwan orders its policies), so a port-specific SA beside an address-only one
        // for the same subnets gets its ports' traffic and the other the rest.
        let narrowness = |p: &Policy| p.ports.map_or((false, 0), |pp| pp.specificity());
        policies.sort_by(|a, b| {
            b.remote
                .len()
                .cmp(&a.remote.len())
                .then(b.local.len().cmp(&a.local.len()))
                .then(narrowness(b).cmp(&narrowness(a)))
        });
        let mut scoped: HashMap<IfaceId, Vec<Policy>> = HashMap::new();
        let policies = policies
            .into_iter()
            .filter_map(|p| match p.scope {
                None => Some(p),
                Some(dev) => {
                    scoped.entry(dev).or_default().push(p);
                    None
                }
            })
            .collect();
        Ok(Tables {
            inbound: map,
            policies,
            scoped,
            any_dscp_in: tunnels.iter().any(|t| t.dscp_in),
            tunnels,
        })
    }

    /// Whether some tunnel copies the outer DSCP inwards (see [`Tunnel::dscp_in`]).
    #[inline]
    pub fn any_dscp_in(&self) -> bool {
        self.any_dscp_in
    }

    /// The same tables with every tunnel's `copy_dscp` inbound set to `on` (tests).
    pub fn with_dscp_in(mut self, on: bool) -> Tables {
        for t in &mut self.tunnels {
            t.dscp_in = on;
        }
        self.any_dscp_in = on && !self.tunnels.is_empty();
        self
    }

    /// Marks the inbound SAs of peers behind a NAT with the address their tunnel sends to
    /// now (SPI, address); SPIs this table does not hold are ignored.
    pub fn following(mut self, peers: impl IntoIterator<Item = (u32, SocketAddr)>) -> Tables {
        for (spi, addr) in peers {
            if let Some(slot) = self.inbound.get_mut(&spi) {
                slot.nat_peer = Some(Box::new(addr));
            }
        }
        self
    }

    #[inline]
    pub fn inbound(&self, spi: u32) -> Option<&InboundEntry> {
        self.inbound.get(&spi).map(|e| &*e.entry)
    }

    /// The inbound SA for `spi` and, if its peer is behind a NAT, the address its tunnel
    /// sends to now (see [`Tables::following`]).
    #[inline]
    pub fn inbound_followed(&self, spi: u32) -> Option<(&InboundEntry, Option<&SocketAddr>)> {
        self.inbound
            .get(&spi)
            .map(|e| (&*e.entry, e.nat_peer.as_deref()))
    }

    /// The tunnel for a packet from `src` to `dst` judged by addresses alone (a policy
    /// narrowed to a protocol or ports never matches): longest remote prefix wins.
    #[inline]
    pub fn route(&self, src: InnerAddr, dst: InnerAddr) -> Option<&Tunnel> {
        self.route_id(&[], src, dst).map(|(_, t)| t)
    }

    /// The tunnel for packet `pkt` from `src` to `dst`: the first policy in table order
    /// (longest prefix, then narrowest protocol/ports) whose addresses and, if it has them,
    /// protocol and ports match. Only a policy narrowed to ports, whose addresses matched,
    /// reads the transport header.
    #[inline]
    pub fn route_id(
        &self,
        pkt: &[u8],
        src: InnerAddr,
        dst: InnerAddr,
    ) -> Option<(TunnelId, &Tunnel)> {
        self.route_id_in(None, pkt, src, dst)
    }

    /// [`route_id`](Self::route_id) among the policies of the device the packet was read
    /// from (`None`: the shared TUN device).
    #[inline]
    pub fn route_id_in(
        &self,
        scope: Option<IfaceId>,
        pkt: &[u8],
        src: InnerAddr,
        dst: InnerAddr,
    ) -> Option<(TunnelId, &Tunnel)> {
        self.policies_of(scope)
            .iter()
            .find(|p| {
                dst.matches(&p.remote)
                    && src.matches(&p.local)
                    && p.ports.as_ref().is_none_or(|pp| pp.admits_packet(pkt))
            })
            .map(|p| (p.tunnel, &self.tunnels[p.tunnel]))
    }

    /// The tunnel that carries the flow of packet `pkt` arriving from the peer, `src` (remote)
    /// to `dst` (local): the policy [`route_id`](Self::route_id) would pick for its reply, with
    /// ports read in the arriving direction.
    pub fn route_back(&self, pkt: &[u8], src: InnerAddr, dst: InnerAddr) -> Option<&Tunnel> {
        self.route_back_in(None, pkt, src, dst)
    }

    /// [`route_back`](Self::route_back) for a packet delivered to device `scope`.
    pub fn route_back_in(
        &self,
        scope: Option<IfaceId>,
        pkt: &[u8],
        src: InnerAddr,
        dst: InnerAddr,
    ) -> Option<&Tunnel> {
        self.policies_of(scope)
            .iter()
            .find(|p| {
                src.matches(&p.remote)
                    && dst.matches(&p.local)
                    && p.ports.as_ref().is_none_or(|pp| pp.admits_arriving(pkt))
            })
            .map(|p| &self.tunnels[p.tunnel])
    }

    /// The policies of one device: the shared TUN device's (`None`) or a route-based
    /// device's (none if it has no policies in this snapshot: its packets are dropped).
    #[inline]
    pub fn policies_of(&self, scope: Option<IfaceId>) -> &[Policy] {
        match scope {
            None => &self.policies,
            Some(dev) => self.scoped.get(&dev).map_or(&[], |v| v.as_slice()),
        }
    }

    pub fn tunnels(&self) -> &[Tunnel] {
        &self.tunnels
    }

    pub fn inbound_entries(&self) -> impl Iterator<Item = &Arc<InboundEntry>> {
        self.inbound.values().map(|s| &s.entry)
    }
}

/// One side of an AES-128-GCM tunnel between `local` and `remote` selectors, sending with
/// `out` (SPI, key material) and receiving `inb`: the fixture of the fast path's unit tests
/// and its criterion bench, kept in one place.
#[doc(hidden)]
pub fn one_tunnel(local: &str, remote: &str, out: (u32, &[u8]), inb: (u32, &[u8])) -> Tables {
    one_tunnel_with(ironsec_esp::Suite::Aes128Gcm16, local, remote, out, inb)
}

/// [`one_tunnel`] with another suite (key material of its [`ironsec_esp::Suite::keymat_len`]).
#[doc(hidden)]
pub fn one_tunnel_with(
    suite: ironsec_esp::Suite,
    local: &str,
    remote: &str,
    out: (u32, &[u8]),
    inb: (u32, &[u8]),
) -> Tables {
    use crate::counters::{PerWorker, SaCounters};
    let l: Prefix = local.parse().expect("prefix");
    let r: Prefix = remote.parse().expect("prefix");
    let o = OutboundSa::new(suite, out.0, out.1, true).expect("key");
    let i = InboundSa::new(suite, inb.0, inb.1, true, 1024).expect("key");
    Tables::new(
        vec![Tunnel::new(
            "peer".into(),
            0,
            "192.0.2.1:4500".parse().expect("addr"),
            "192.0.2.2:4500".parse().expect("addr"),
            Some(Arc::new(OutboundEntry {
                sa: o,
                counters: PerWorker::new(1),
                watch: None,
            })),
        )],
        vec![Policy {
            local: l,
            remote: r,
            tunnel: 0,
            ports: None,
            scope: None,
        }],
        vec![Arc::new(InboundEntry {
            sa: i,
            local_ts: vec![l].into(),
            remote_ts: vec![r].into(),
            ports: None,
            counters: PerWorker::<SaCounters>::new(1),
            watch: None,
            device: DeviceCell::default(),
        })],
    )
    .expect("one tunnel")
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
            ports: None,
            scope: None,
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
    fn a_devices_packets_see_only_that_devices_policies() {
        let (d1, d2) = (IfaceId::new(1).unwrap(), IfaceId::new(2).unwrap());
        let p = |r: &str, t, scope| Policy {
            local: "0.0.0.0/0".parse().unwrap(),
            remote: r.parse().unwrap(),
            tunnel: t,
            ports: None,
            scope,
        };
        let t = Tables::new(
            vec![
                tunnel("shared", None),
                tunnel("vti-b", None),
                tunnel("vti-c", None),
            ],
            vec![
                p("10.2.0.0/24", 0, None),
                p("0.0.0.0/0", 1, Some(d1)),
                p("0.0.0.0/0", 2, Some(d2)),
            ],
            vec![],
        )
        .unwrap();
        let r = |scope, d| {
            t.route_id_in(scope, &[], v4("10.1.0.2"), v4(d))
                .map(|(_, t)| &*t.connection)
        };
        // The shared device never sees a route-based connection's 0.0.0.0/0.
        assert_eq!(r(None, "10.2.0.9"), Some("shared"));
        assert_eq!(r(None, "10.3.0.9"), None);
        // A device's packets go to its own connection, whatever the address.
        assert_eq!(r(Some(d1), "10.2.0.9"), Some("vti-b"));
        assert_eq!(r(Some(d2), "10.2.0.9"), Some("vti-c"));
        assert_eq!(r(IfaceId::new(3), "10.2.0.9"), None, "an unknown device");
        assert!(t
            .route_back_in(Some(d2), &[], v4("10.9.9.9"), v4("10.1.0.2"))
            .is_some_and(|t| &*t.connection == "vti-c"));
    }

    #[test]
    fn rejects_duplicate_spi_and_dangling_refs() {
        let key = [7u8; 20];
        let e = || {
            Arc::new(InboundEntry {
                sa: InboundSa::new(Suite::Aes128Gcm16, 0x1000, &key, true, 0).unwrap(),
                local_ts: Arc::from(vec![]),
                remote_ts: Arc::from(vec![]),
                ports: None,
                counters: PerWorker::new(1),
                watch: None,
                device: DeviceCell::default(),
            })
        };
        assert_eq!(
            Tables::new(vec![tunnel("a", None)], vec![], vec![e(), e()]).err(),
            Some(TableError::DuplicateSpi(0x1000))
        );
        assert_eq!(
            Tables::new(
                vec![],
                vec![Policy {
                    local: "10.1.0.0/24".parse().unwrap(),
                    remote: "10.2.0.0/24".parse().unwrap(),
                    tunnel: 0,
                    ports: None,
                    scope: None,
                }],
                vec![e()],
            )
            .err(),
            Some(TableError::NoSuchTunnel(0))
        );
    }

    #[test]
    fn spread_follows_weights_and_moves_only_the_lost_tunnels_flows() {
        let s = Spread::weighted(&[(0, 3), (1, 1)]).unwrap();
        let shares = s.shares();
        let frac = shares[&0] as f64 / Spread::SLOTS as f64;
        assert!((frac - 0.75).abs() < 0.05, "3:1 gave {frac}");
        // Tunnel 1 gone: its slots go to 0, tunnel 0's slots stay where they were.
        let only0 = Spread::weighted(&[(0, 3), (1, 0)]).unwrap();
        for h in 0..Spread::SLOTS as u32 {
            assert_eq!(only0.pick(h), 0);
        }
        // A third tunnel joins: only slots it wins move, to it.
        let three = Spread::weighted(&[(0, 3), (1, 1), (2, 1)]).unwrap();
        for h in 0..Spread::SLOTS as u32 {
            let (before, after) = (s.pick(h), three.pick(h));
            assert!(
                before == after || after == 2,
                "slot {h}: {before} -> {after}"
            );
        }
        assert!(Spread::weighted(&[(0, 0)]).is_none());
    }

    #[test]
    fn flow_hash_is_per_flow() {
        let pkt = |sport: u16, frag: bool| {
            let mut p = vec![0u8; 40];
            p[0] = 0x45;
            p[9] = 6;
            p[12..16].copy_from_slice(&[10, 1, 0, 2]);
            p[16..20].copy_from_slice(&[10, 2, 0, 2]);
            if frag {
                p[6] = 0x20; // more fragments
            }
            p[20..22].copy_from_slice(&sport.to_be_bytes());
            p[22..24].copy_from_slice(&5201u16.to_be_bytes());
            p
        };
        assert_eq!(flow_hash(&pkt(40000, false)), flow_hash(&pkt(40000, false)));
        let distinct: std::collections::HashSet<u32> = (0..64)
            .map(|i| flow_hash(&pkt(40000 + i, false)) % 16)
            .collect();
        assert!(distinct.len() > 8, "ports spread flows: {distinct:?}");
        // A first fragment and a later one of the same datagram hash alike (no ports).
        let mut later = pkt(1, true);
        later[7] = 0x10;
        assert_eq!(flow_hash(&pkt(40000, true)), flow_hash(&later));
        assert_eq!(flow_hash(&[]), flow_hash(&[0x45]));
    }

    #[test]
    fn trap_reports_are_spaced() {
        let t = Trap::default();
        assert!(t.due(), "first packet is reported");
        assert!(!t.due(), "the next ones within the interval are not");
        std::thread::sleep(std::time::Duration::from_millis(Trap::INTERVAL_MS + 20));
        assert!(t.due());
    }
}
