//! The SA database and outbound policy table, as one immutable snapshot.
//!
//! The control plane builds a new [`Tables`] and swaps it in; workers load the current snapshot
//! once per batch without taking a lock. SAs sit behind `Arc`s so a snapshot swap keeps their
//! sequence counters, replay windows and counters: a rebuilt table can carry the same SA on.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
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
    /// The shared TUN device's policies.
    policies: PolicySet,
    /// Each route-based device's policies.
    scoped: HashMap<IfaceId, PolicySet>,
    tunnels: Vec<Tunnel>,
    /// Some tunnel has `dscp_in`: only then do workers read the outer TOS of what they
    /// receive and look up the route back of each decrypted packet.
    any_dscp_in: bool,
}

/// The order of the policy table: longest remote prefix first, then longest local prefix,
/// and among equal prefixes the narrower protocol/ports (as strongSwan orders its policies),
/// so a port-specific SA beside an address-only one for the same subnets gets its ports'
/// traffic and the other the rest. The first match in this order is the one that applies.
fn policy_order(a: &Policy, b: &Policy) -> std::cmp::Ordering {
    let narrowness = |p: &Policy| p.ports.map_or((false, 0), |pp| pp.specificity());
    b.remote
        .len()
        .cmp(&a.remote.len())
        .then(b.local.len().cmp(&a.local.len()))
        .then(narrowness(b).cmp(&narrowness(a)))
}

/// One device's policies, split so that a lookup need not walk the policies of every
/// remote-access client (one per virtual IP, a /32 or /128 remote selector) to reach a
/// site's.
///
/// The first match in [`policy_order`] is the answer, and the index keeps it: a host's
/// prefix is the longest of its family, so no policy before a host's own policies can match
/// a packet to that host (longer prefixes are of the other family, equal ones of other
/// hosts). So a host whose policies are all address-only goes into `hosts4`/`hosts6` with all
/// of them, in table order; a lookup tries that host's policies first and then `rest`, which
/// holds no policy for that host. A host that has a policy narrowed to a protocol or ports
/// keeps all of its policies in `rest`, where the ports order them as before.
///
/// `rest` is walked in table order while it is short (the common gateway: a site or a few);
/// past [`LINEAR_MAX`] policies it is a [`PrefixIndex`], whose lookup costs a hash probe per
/// distinct remote prefix length instead of a comparison per policy (10,000 sites, a /24
/// each: one probe).
#[derive(Default)]
struct PolicySet {
    hosts4: HashMap<u32, Box<[HostPolicy]>, HostHash>,
    hosts6: HashMap<u128, Box<[HostPolicy]>, HostHash>,
    /// Every other policy.
    rest: Rest,
}

/// Up to this many policies outside the host index are walked in table order; more are
/// indexed. Under callgrind (`examples/path_instructions.rs`, `route_*site*_loop`) a walk
/// costs about 15 instructions a policy passed (109 a lookup that matches the first, 150,094
/// one that matches the 10,000th) and an indexed lookup about 228 with one prefix length:
/// even at 8 policies the walk to the last is shorter.
const LINEAR_MAX: usize = 8;

/// The policies of a [`PolicySet`] outside the host index.
enum Rest {
    /// In table order, walked.
    Linear(Vec<Policy>),
    Indexed(Box<PrefixIndex>),
}

impl Default for Rest {
    fn default() -> Rest {
        Rest::Linear(Vec::new())
    }
}

impl Rest {
    /// How many policies it holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Rest::Linear(ps) => ps.len(),
            Rest::Indexed(ix) => ix.policies.len(),
        }
    }
}

/// Policies grouped by remote selector, for a first match in [`policy_order`] without walking
/// them all. Among the policies of one remote prefix length `len`, only those whose remote
/// prefix is the packet's address cut to `len` can match it, and table order puts longer
/// remote prefixes first. So trying the lengths of a family from the longest down, and at each
/// the one group of that prefix in table order, finds the policy the walk finds.
struct PrefixIndex {
    /// Every policy, grouped by remote prefix (a group's policies in table order, together).
    policies: Box<[Policy]>,
    /// The IPv4 remote prefix lengths present, longest first.
    v4: Box<[Level<u32>]>,
    /// The IPv6 ones.
    v6: Box<[Level<u128>]>,
}

/// One remote prefix length of a family in a [`PrefixIndex`].
struct Level<A> {
    len: u8,
    /// The netmask of `len`.
    mask: A,
    /// Remote prefix (address with host bits zero) -> where its group is in
    /// [`PrefixIndex::policies`].
    groups: HashMap<A, (u32, u32), HostHash>,
}

impl<A> Level<A> {
    fn new(len: u8, mask: A) -> Level<A> {
        Level {
            len,
            mask,
            groups: HashMap::with_hasher(HostHash::default()),
        }
    }
}

impl PrefixIndex {
    /// Indexes `sorted`, policies in [`policy_order`].
    fn new(mut policies: Vec<Policy>) -> PrefixIndex {
        // Stable: a group keeps table order. By family, then the longest length first.
        policies.sort_by_key(|p| match p.remote {
            Prefix::V4 { addr, len } => (false, Reverse(len), u128::from(addr)),
            Prefix::V6 { addr, len } => (true, Reverse(len), addr),
        });
        let (mut v4, mut v6): (Vec<Level<u32>>, Vec<Level<u128>>) = (Vec::new(), Vec::new());
        let mut start = 0;
        while let Some(first) = policies.get(start) {
            let remote = first.remote;
            let end = start
                + policies[start..]
                    .iter()
                    .take_while(|p| p.remote == remote)
                    .count();
            let group = (start as u32, end as u32);
            match remote {
                Prefix::V4 { addr, len } => {
                    if v4.last().is_none_or(|l| l.len != len) {
                        v4.push(Level::new(
                            len,
                            u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0),
                        ));
                    }
                    v4.last_mut().map(|l| l.groups.insert(addr, group));
                }
                Prefix::V6 { addr, len } => {
                    if v6.last().is_none_or(|l| l.len != len) {
                        v6.push(Level::new(
                            len,
                            u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0),
                        ));
                    }
                    v6.last_mut().map(|l| l.groups.insert(addr, group));
                }
            }
            start = end;
        }
        PrefixIndex {
            policies: policies.into_boxed_slice(),
            v4: v4.into_boxed_slice(),
            v6: v6.into_boxed_slice(),
        }
    }

    /// [`PolicySet::find`] among the indexed policies. Out of line, so that a lookup in a
    /// short table stays small.
    #[inline(never)]
    fn find(
        &self,
        remote: InnerAddr,
        local: InnerAddr,
        ports: impl Fn(&PolicyPorts) -> bool,
    ) -> Option<TunnelId> {
        let first = |&(start, end): &(u32, u32)| {
            self.policies[start as usize..end as usize]
                .iter()
                .find(|p| local.matches(&p.local) && p.ports.as_ref().is_none_or(&ports))
                .map(|p| p.tunnel)
        };
        match remote {
            InnerAddr::V4(a) => self
                .v4
                .iter()
                .find_map(|l| first(l.groups.get(&(a & l.mask))?)),
            InnerAddr::V6(a) => self
                .v6
                .iter()
                .find_map(|l| first(l.groups.get(&(a & l.mask))?)),
        }
    }
}

/// An address-only policy to one host: where the index keeps it.
#[derive(Clone, Copy, Debug)]
struct HostPolicy {
    local: Prefix,
    tunnel: TunnelId,
}

impl PolicySet {
    /// Splits `sorted`, policies in [`policy_order`].
    fn new(sorted: Vec<Policy>) -> PolicySet {
        PolicySet::with_linear_max(sorted, LINEAR_MAX)
    }

    /// [`new`](Self::new), indexing `rest` if it has more than `linear_max` policies.
    fn with_linear_max(sorted: Vec<Policy>, linear_max: usize) -> PolicySet {
        let is_host = |p: &Policy| {
            matches!(
                p.remote,
                Prefix::V4 { len: 32, .. } | Prefix::V6 { len: 128, .. }
            )
        };
        let narrowed: HashSet<Prefix> = sorted
            .iter()
            .filter(|p| p.ports.is_some() && is_host(p))
            .map(|p| p.remote)
            .collect();
        let (mut hosts4, mut hosts6) = (HashMap::new(), HashMap::new());
        let mut rest = Vec::new();
        for p in sorted {
            if !is_host(&p) || narrowed.contains(&p.remote) {
                rest.push(p);
                continue;
            }
            let h = HostPolicy {
                local: p.local,
                tunnel: p.tunnel,
            };
            match p.remote {
                Prefix::V4 { addr, .. } => hosts4.entry(addr).or_insert_with(Vec::new).push(h),
                Prefix::V6 { addr, .. } => hosts6.entry(addr).or_insert_with(Vec::new).push(h),
            }
        }
        fn boxed<K: Eq + std::hash::Hash>(
            m: HashMap<K, Vec<HostPolicy>>,
        ) -> HashMap<K, Box<[HostPolicy]>, HostHash> {
            let mut out = HashMap::with_capacity_and_hasher(m.len(), HostHash::default());
            out.extend(m.into_iter().map(|(k, v)| (k, v.into_boxed_slice())));
            out
        }
        PolicySet {
            hosts4: boxed(hosts4),
            hosts6: boxed(hosts6),
            rest: if rest.len() > linear_max {
                Rest::Indexed(Box::new(PrefixIndex::new(rest)))
            } else {
                Rest::Linear(rest)
            },
        }
    }

    /// The tunnel of the first policy in table order whose remote selector holds `remote`,
    /// whose local one holds `local` and, for a policy narrowed to them, whose protocol and
    /// ports `ports` admits.
    #[inline]
    fn find(
        &self,
        remote: InnerAddr,
        local: InnerAddr,
        ports: impl Fn(&PolicyPorts) -> bool,
    ) -> Option<TunnelId> {
        // The emptiness checks spare a table without clients the call and the hashing.
        let host = match remote {
            InnerAddr::V4(a) if !self.hosts4.is_empty() => self.host4(a, local),
            InnerAddr::V6(a) if !self.hosts6.is_empty() => self.host6(a, local),
            _ => None,
        };
        if host.is_some() {
            return host;
        }
        match &self.rest {
            Rest::Linear(rest) => rest
                .iter()
                .find(|p| {
                    remote.matches(&p.remote)
                        && local.matches(&p.local)
                        && p.ports.as_ref().is_none_or(&ports)
                })
                .map(|p| p.tunnel),
            Rest::Indexed(ix) => ix.find(remote, local, ports),
        }
    }

    /// The first of IPv4 host `remote`'s policies whose local selector holds `local`. Out of
    /// line, so that a lookup in a table without clients stays small.
    #[inline(never)]
    fn host4(&self, remote: u32, local: InnerAddr) -> Option<TunnelId> {
        first_local(self.hosts4.get(&remote)?, local)
    }

    /// [`host4`](Self::host4) for IPv6.
    #[inline(never)]
    fn host6(&self, remote: u128, local: InnerAddr) -> Option<TunnelId> {
        first_local(self.hosts6.get(&remote)?, local)
    }
}

#[inline]
fn first_local(hosts: &[HostPolicy], local: InnerAddr) -> Option<TunnelId> {
    hosts
        .iter()
        .find(|h| local.matches(&h.local))
        .map(|h| h.tunnel)
}

/// The hash of the host index: one [`mix64`] round per word, keyed per table. The standard
/// SipHash costs about 100 instructions more per lookup (`examples/path_instructions.rs`);
/// the keys are addresses the control plane chose and the seed is random, so packets cannot
/// aim at a crowded slot.
#[derive(Clone, Copy)]
struct HostHash(u64);

impl Default for HostHash {
    fn default() -> HostHash {
        HostHash(RandomState::new().hash_one(0x6873_7473u32))
    }
}

impl BuildHasher for HostHash {
    type Hasher = HostHasher;

    #[inline]
    fn build_hasher(&self) -> HostHasher {
        HostHasher(self.0)
    }
}

/// See [`HostHash`]; only `u32` and `u128` keys are hashed with it.
struct HostHasher(u64);

impl Hasher for HostHasher {
    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = mix64(self.0 ^ u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.0 ^= u64::from(n);
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.0 = mix64(self.0 ^ n as u64) ^ (n >> 64) as u64;
    }
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
        policies.sort_by(policy_order);
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
            policies: PolicySet::new(policies),
            scoped: scoped
                .into_iter()
                .map(|(dev, ps)| (dev, PolicySet::new(ps)))
                .collect(),
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
        let t = self
            .policy_set(scope)?
            .find(dst, src, |pp| pp.admits_packet(pkt))?;
        Some((t, &self.tunnels[t]))
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
        let t = self
            .policy_set(scope)?
            .find(src, dst, |pp| pp.admits_arriving(pkt))?;
        Some(&self.tunnels[t])
    }

    /// The policies of one device: the shared TUN device's (`None`) or a route-based
    /// device's (`None` if it has no policies in this snapshot: its packets are dropped).
    #[inline]
    fn policy_set(&self, scope: Option<IfaceId>) -> Option<&PolicySet> {
        match scope {
            None => Some(&self.policies),
            Some(dev) => self.scoped.get(&dev),
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

    fn v6(s: &str) -> InnerAddr {
        let a: std::net::Ipv6Addr = s.parse().unwrap();
        InnerAddr::V6(a.into())
    }

    fn policy(local: &str, remote: &str, tunnel: TunnelId) -> Policy {
        Policy {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            tunnel,
            ports: None,
            scope: None,
        }
    }

    /// Tables with a tunnel per policy, named by its index.
    fn tables_of(policies: Vec<Policy>) -> Tables {
        let n = policies.iter().map(|p| p.tunnel + 1).max().unwrap_or(0);
        let tunnels = (0..n).map(|i| tunnel(&i.to_string(), None)).collect();
        Tables::new(tunnels, policies, vec![]).unwrap()
    }

    /// An IPv4 or IPv6 packet from `src` to `dst` with transport `proto` and ports (or, for
    /// ICMP, type and code in `sport`).
    fn packet(src: InnerAddr, dst: InnerAddr, proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = match (src, dst) {
            (InnerAddr::V4(s), InnerAddr::V4(d)) => {
                let mut p = vec![0u8; 20];
                p[0] = 0x45;
                p[9] = proto;
                p[12..16].copy_from_slice(&s.to_be_bytes());
                p[16..20].copy_from_slice(&d.to_be_bytes());
                p
            }
            (InnerAddr::V6(s), InnerAddr::V6(d)) => {
                let mut p = vec![0u8; 40];
                p[0] = 0x60;
                p[6] = proto;
                p[8..24].copy_from_slice(&s.to_be_bytes());
                p[24..40].copy_from_slice(&d.to_be_bytes());
                p
            }
            _ => panic!("addresses of two families"),
        };
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0u8; 16]);
        p
    }

    #[test]
    fn a_client_host_beside_a_site_subnet() {
        // A client's virtual IP inside the site's remote subnet, its policy for a narrower
        // local subnet than the site's.
        let t = tables_of(vec![
            policy("10.1.0.0/16", "10.2.0.0/24", 0),
            policy("10.1.0.0/24", "10.2.0.77/32", 1),
            policy("10.1.0.0/16", "10.2.0.0/16", 2),
        ]);
        assert_eq!(t.policies.hosts4.len(), 1, "the /32 is in the index");
        assert_eq!(t.policies.rest.len(), 2);
        let r = |s, d| t.route(v4(s), v4(d)).map(|t| &*t.connection);
        assert_eq!(r("10.1.0.2", "10.2.0.77"), Some("1"));
        assert_eq!(r("10.1.0.2", "10.2.0.78"), Some("0"));
        assert_eq!(r("10.1.0.2", "10.2.1.77"), Some("2"));
        assert_eq!(
            r("10.1.5.2", "10.2.0.77"),
            Some("0"),
            "outside the client's local selector the site's policy applies"
        );
        assert_eq!(r("10.3.0.2", "10.2.0.77"), None);
        // The route back: the client's packets to its local selector, the rest to the site.
        let back = |s, d| t.route_back(&[], v4(s), v4(d)).map(|t| &*t.connection);
        assert_eq!(back("10.2.0.77", "10.1.0.9"), Some("1"));
        assert_eq!(back("10.2.0.77", "10.1.7.9"), Some("0"));
        assert_eq!(back("10.2.0.78", "10.1.0.9"), Some("0"));
    }

    #[test]
    fn a_hosts_policies_keep_their_order_among_themselves() {
        // Two policies for one host: the longer local prefix first, whatever the order given.
        let t = tables_of(vec![
            policy("10.1.0.0/16", "10.9.0.1/32", 0),
            policy("10.1.2.0/24", "10.9.0.1/32", 1),
        ]);
        let r = |s| t.route(v4(s), v4("10.9.0.1")).map(|t| &*t.connection);
        assert_eq!(r("10.1.2.3"), Some("1"));
        assert_eq!(r("10.1.3.3"), Some("0"));
    }

    #[test]
    fn a_host_with_a_port_policy_stays_in_the_linear_list() {
        let tcp443 = PolicyPorts::of(
            crate::selector::Ports::ANY,
            crate::selector::Ports {
                proto: PROTO_TCP,
                start: 443,
                end: 443,
            },
        );
        let mut web = policy("10.1.0.0/16", "10.9.0.1/32", 1);
        web.ports = tcp443;
        let t = tables_of(vec![
            policy("10.1.0.0/16", "10.9.0.1/32", 0),
            web,
            policy("10.1.0.0/16", "10.9.0.2/32", 2),
        ]);
        assert!(!t.policies.hosts4.contains_key(&0x0a09_0001));
        assert!(t.policies.hosts4.contains_key(&0x0a09_0002));
        assert_eq!(t.policies.rest.len(), 2, "both of 10.9.0.1's policies");
        let (src, dst) = (v4("10.1.0.5"), v4("10.9.0.1"));
        let r = |pkt: &[u8]| t.route_id(pkt, src, dst).map(|(id, _)| id);
        assert_eq!(r(&packet(src, dst, PROTO_TCP, 40000, 443)), Some(1));
        assert_eq!(r(&packet(src, dst, PROTO_TCP, 40000, 80)), Some(0));
        assert_eq!(r(&packet(src, dst, PROTO_UDP, 40000, 443)), Some(0));
        let back = |pkt: &[u8]| t.route_back(pkt, dst, src).map(|t| &*t.connection);
        assert_eq!(back(&packet(dst, src, PROTO_TCP, 443, 40000)), Some("1"));
        assert_eq!(back(&packet(dst, src, PROTO_TCP, 80, 40000)), Some("0"));
    }

    #[test]
    fn ipv6_hosts_are_indexed_apart_from_ipv4() {
        let t = tables_of(vec![
            policy("2001:db8:1::/48", "2001:db8:2::/64", 0),
            policy("2001:db8:1::/48", "2001:db8:2::77/128", 1),
            policy("10.1.0.0/16", "10.2.0.0/24", 2),
            // A /32 of IPv6 sorts among the IPv4 hosts but is not one.
            policy("2001:db8:1::/48", "2001:db9::/32", 3),
        ]);
        assert_eq!((t.policies.hosts4.len(), t.policies.hosts6.len()), (0, 1));
        let r = |s, d| t.route(v6(s), v6(d)).map(|t| &*t.connection);
        assert_eq!(r("2001:db8:1::5", "2001:db8:2::77"), Some("1"));
        assert_eq!(r("2001:db8:1::5", "2001:db8:2::78"), Some("0"));
        assert_eq!(r("2001:db8:1::5", "2001:db9::1"), Some("3"));
        assert_eq!(r("2001:db8:9::5", "2001:db8:2::77"), None);
        assert_eq!(
            t.route(v4("10.1.0.1"), v4("10.2.0.77"))
                .map(|t| &*t.connection),
            Some("2")
        );
        assert!(t
            .route_back(&[], v6("2001:db8:2::77"), v6("2001:db8:1::1"))
            .is_some_and(|t| &*t.connection == "1"));
    }

    /// The policy lookup as it was before the host index: the first match in table order.
    fn linear(
        policies: &[Policy],
        scope: Option<IfaceId>,
        remote: InnerAddr,
        local: InnerAddr,
        ports: impl Fn(&PolicyPorts) -> bool,
    ) -> Option<TunnelId> {
        let mut sorted: Vec<&Policy> = policies.iter().filter(|p| p.scope == scope).collect();
        sorted.sort_by(|a, b| policy_order(a, b));
        sorted
            .into_iter()
            .find(|p| {
                remote.matches(&p.remote)
                    && local.matches(&p.local)
                    && p.ports.as_ref().is_none_or(&ports)
            })
            .map(|p| p.tunnel)
    }

    mod index_is_linear {
        use super::*;
        use crate::selector::Ports;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// Addresses from a small pool, so that hosts, subnets and packets meet often.
        fn addr(v6: bool, pick: u8) -> InnerAddr {
            let low = u32::from(pick % 4) << 8 | u32::from(pick / 4 % 4);
            if v6 {
                InnerAddr::V6(0x2001_0db8_u128 << 96 | u128::from(low))
            } else {
                InnerAddr::V4(0x0a00_0000 | low)
            }
        }

        /// The prefix of `a` of one of eight lengths, hosts among them.
        fn prefix(a: InnerAddr, pick: u8) -> Prefix {
            let i = usize::from(pick % 8);
            match a {
                InnerAddr::V4(a) => {
                    let len = [0, 8, 16, 22, 24, 30, 31, 32][i];
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    Prefix::V4 {
                        addr: a & mask,
                        len,
                    }
                }
                InnerAddr::V6(a) => {
                    let len = [0, 32, 96, 112, 118, 120, 127, 128][i];
                    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    Prefix::V6 {
                        addr: a & mask,
                        len,
                    }
                }
            }
        }

        fn ports() -> impl Strategy<Value = Option<PolicyPorts>> {
            let one = (
                select(vec![0u8, PROTO_TCP, PROTO_UDP]),
                select(vec![(0u16, u16::MAX), (443, 443), (1024, u16::MAX)]),
            )
                .prop_map(|(proto, (start, end))| Ports { proto, start, end });
            prop_oneof![
                3 => Just(None),
                1 => (one.clone(), one).prop_map(|(l, r)| PolicyPorts::of(l, r)),
            ]
        }

        prop_compose! {
            fn a_policy(tunnels: usize)(
                v6 in any::<bool>(),
                (l, ll) in (any::<u8>(), any::<u8>()),
                // Mostly hosts, as with remote-access clients.
                (r, rl) in (any::<u8>(), prop_oneof![3 => Just(7u8), 2 => any::<u8>()]),
                tunnel in 0..tunnels,
                ports in ports(),
                scope in select(vec![None, Some(1u32), Some(2)]),
            ) -> Policy {
                Policy {
                    local: prefix(addr(v6, l), ll),
                    remote: prefix(addr(v6, r), rl),
                    tunnel,
                    ports,
                    scope: scope.and_then(IfaceId::new),
                }
            }
        }

        proptest! {
            #[test]
            fn for_random_policies_and_packets(
                policies in proptest::collection::vec(a_policy(6), 0..60),
                packets in proptest::collection::vec(
                    (any::<bool>(), any::<u8>(), any::<u8>(),
                     select(vec![PROTO_TCP, PROTO_UDP, 1u8]),
                     select(vec![53u16, 443, 40000])),
                    1..30,
                ),
            ) {
                let t = Tables::new(
                    (0..6).map(|i| tunnel(&i.to_string(), None)).collect(),
                    policies.clone(),
                    vec![],
                ).unwrap();
                // Each device's policies indexed however few they are, and walked however
                // many.
                let by = |scope: Option<IfaceId>, linear_max| {
                    let mut ps: Vec<Policy> =
                        policies.iter().filter(|p| p.scope == scope).cloned().collect();
                    ps.sort_by(policy_order);
                    PolicySet::with_linear_max(ps, linear_max)
                };
                let scopes = [None, IfaceId::new(1), IfaceId::new(2)];
                let indexed: Vec<PolicySet> = scopes.iter().map(|&s| by(s, 0)).collect();
                let walked: Vec<PolicySet> = scopes.iter().map(|&s| by(s, usize::MAX)).collect();
                for (v6, s, d, proto, port) in packets {
                    let (src, dst) = (addr(v6, s), addr(v6, d));
                    let out = packet(src, dst, proto, 40000, port);
                    let back = packet(dst, src, proto, port, 40000);
                    for ((&scope, ix), walk) in scopes.iter().zip(&indexed).zip(&walked) {
                        let expect = linear(&policies, scope, dst, src, |pp| pp.admits_packet(&out));
                        prop_assert_eq!(ix.find(dst, src, |pp| pp.admits_packet(&out)), expect);
                        prop_assert_eq!(walk.find(dst, src, |pp| pp.admits_packet(&out)), expect);
                        let expect = linear(&policies, scope, dst, src, |pp| pp.admits_arriving(&back));
                        prop_assert_eq!(ix.find(dst, src, |pp| pp.admits_arriving(&back)), expect);
                        prop_assert_eq!(walk.find(dst, src, |pp| pp.admits_arriving(&back)), expect);
                    }
                    for scope in [None, IfaceId::new(1), IfaceId::new(2), IfaceId::new(3)] {
                        prop_assert_eq!(
                            t.route_id_in(scope, &out, src, dst).map(|(id, _)| id),
                            linear(&policies, scope, dst, src, |pp| pp.admits_packet(&out)),
                            "outbound {:?} -> {:?} proto {} port {} scope {:?}",
                            src, dst, proto, port, scope
                        );
                        let expect = linear(&policies, scope, dst, src, |pp| pp.admits_arriving(&back));
                        prop_assert_eq!(
                            t.route_back_in(scope, &back, dst, src).map(|t| t.connection.to_string()),
                            expect.map(|id| id.to_string()),
                            "back {:?} -> {:?} proto {} port {} scope {:?}",
                            dst, src, proto, port, scope
                        );
                    }
                }
            }
        }
    }

    /// 10,000 sites, a /24 each: the lookup of a packet to any of them is one probe of one
    /// group of one policy, and finds that site's tunnel.
    #[test]
    fn many_sites_are_indexed_by_prefix() {
        let site = |i: u32| Prefix::V4 {
            addr: 0x0a80_0000 + (i << 8),
            len: 24,
        };
        let n = 10_000;
        let policies: Vec<Policy> = (0..n)
            .map(|i| Policy {
                local: "10.1.0.0/16".parse().unwrap(),
                remote: site(i),
                tunnel: i as usize,
                ports: None,
                scope: None,
            })
            .collect();
        let t = tables_of(policies);
        let Rest::Indexed(ix) = &t.policies.rest else {
            panic!("10,000 policies walked");
        };
        assert_eq!(ix.v4.len(), 1, "one prefix length, one probe");
        assert!(ix.v6.is_empty());
        assert!(ix.v4[0].groups.values().all(|&(s, e)| e - s == 1));
        for i in [0, 1, n / 2, n - 1] {
            let Prefix::V4 { addr, .. } = site(i) else {
                unreachable!()
            };
            let dst = InnerAddr::V4(addr | 7);
            let src = v4("10.1.2.3");
            assert_eq!(
                t.route_id(&[], src, dst).map(|(id, _)| id),
                Some(i as usize)
            );
            assert!(
                t.route_id(&[], v4("10.3.0.1"), dst).is_none(),
                "local selector"
            );
        }
        assert!(t
            .route_id(&[], v4("10.1.2.3"), v4("10.127.255.1"))
            .is_none());
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
