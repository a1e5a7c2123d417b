//! The engine's face: datagrams and `now` in; datagrams, events and deadlines out
//! (the quinn-proto style). One `Endpoint` serves every connection of a gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{EndpointConfig, PeerConfig};
use crate::cookie_secret::CookieSecrets;
use crate::crypto::{cookie, verify_cookie, Rng};
use crate::deadlines::Deadlines;
use crate::events::{Event, IkeSaId, Transmit};
use crate::index::{PeerIndex, SaIdent, SaIndex};
use crate::sa::{self, Ctx, IkeSa, Outputs, SaAction, State, Task, WallClock};
use crate::spi::random_ike_spi;
pub use crate::stats::EndpointStats;
use crate::wire::{self, ExchangeType, Message, NotifyType, Payload, Payloads};

/// How long the liveness check an INVALID_SPI hint starts may go unanswered when the
/// connection sets no DPD timeout of its own.
const HINT_GIVE_UP: Duration = Duration::from_secs(30);

/// New IKE_SA_INIT requests counted in one-second windows: the rate trigger of the cookie
/// challenge ([`EndpointConfig::cookie_rate_threshold`]).
#[derive(Debug, Default)]
struct InitRate {
    window: Option<Instant>,
    current: u64,
    previous: u64,
}

impl InitRate {
    /// Counts one request at `now`; returns the larger of this window's count and the last
    /// one's, so cookies stay on for a second after a flood stops rather than switching off at
    /// each window's start.
    fn count(&mut self, now: Instant) -> u64 {
        const W: Duration = Duration::from_secs(1);
        match self.window {
            Some(start) if now.saturating_duration_since(start) < W => {}
            Some(start) if now.saturating_duration_since(start) < 2 * W => {
                self.previous = self.current;
                self.current = 0;
                self.window = Some(start + W);
            }
            _ => {
                self.previous = 0;
                self.current = 0;
                self.window = Some(now);
            }
        }
        self.current += 1;
        self.current.max(self.previous)
    }
}

/// See [`Endpoint::liveness`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLiveness {
    pub last_heard: Instant,
    pub probing: bool,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    #[error("no connection named '{0}'")]
    NoSuchConnection(String),
    #[error("no IKE SA {0:#018x}")]
    NoSuchSa(IkeSaId),
    #[error("no CHILD_SA with inbound SPI {0:#010x}")]
    NoSuchChild(u32),
}

/// Keys of one IKE SA for an outside decoder (feature `key-export`, tests only).
#[cfg(feature = "key-export")]
#[derive(Clone, Debug)]
pub struct ExportedIkeKeys {
    pub spi_i: u64,
    pub spi_r: u64,
    pub encr: ironsec_esp::Suite,
    /// key (|| salt for an AEAD), as tshark's IKEv2 decryption table wants them.
    pub sk_ei: Vec<u8>,
    pub sk_er: Vec<u8>,
    /// Integrity keys; empty for an AEAD.
    pub sk_ai: Vec<u8>,
    pub sk_ar: Vec<u8>,
}

/// A snapshot of one IKE SA, for status displays.
#[derive(Clone, Debug)]
pub struct IkeSaSummary {
    pub id: IkeSaId,
    pub conn: Option<Arc<str>>,
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub established: bool,
    pub established_at: Option<Instant>,
    pub rekey_at: Option<Instant>,
    pub algorithms: Option<crate::crypto::IkeAlgorithms>,
    pub children: Vec<ChildSummary>,
    /// Message ID our next request will carry (RFC 7296 2.2).
    pub next_request_id: u32,
    /// Message ID the peer's next request must carry to be processed.
    pub expected_request_id: u32,
    /// The EAP user a remote-access client authenticated as (escaped), if it used EAP.
    pub eap_identity: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ChildSummary {
    pub spi_in: u32,
    pub spi_out: u32,
    pub algorithms: crate::crypto::EspAlgorithms,
    pub rekey_at: Option<Instant>,
    pub expire_at: Option<Instant>,
    /// A rekey of it was started (by either side): its successor is on the way, so another
    /// rekey of it (an operator's `rekey`) would only race that one.
    pub rekeying: bool,
}

pub struct Endpoint {
    cfg: EndpointConfig,
    rng: Box<dyn Rng + Send>,
    /// The connections, indexed by name, address and identity; shared with the half-open SAs
    /// made from it (their candidates).
    peers: Arc<PeerIndex>,
    sas: HashMap<IkeSaId, IkeSa>,
    /// Responder: (initiator SPI, peer address) -> our half-open SA, to recognise a
    /// retransmitted IKE_SA_INIT.
    init_index: HashMap<(u64, SocketAddr), IkeSaId>,
    /// The reverse of `init_index`: what a half-open SA is entered under there.
    init_of: HashMap<IkeSaId, (u64, SocketAddr)>,
    /// The SAs by connection, identity, address and state ([`SaIndex`]). Updated by
    /// [`Endpoint::reindex`] with the deadlines.
    ix: SaIndex,
    /// Every SA's next deadline, sorted: [`Endpoint::poll_timeout`] and
    /// [`Endpoint::handle_timeout`] look only here, never at every SA. Updated by
    /// [`Endpoint::reindex`] whenever an SA may have changed.
    deadlines: Deadlines,
    /// The SAs `handle_timeout` visited, so tests can check it visits only the due ones.
    #[cfg(test)]
    timeout_visits: Vec<IkeSaId>,
    /// Transmissions, events, counters and the SAs' pending [`SaAction`]s.
    out: Outputs,
    /// Makes and checks cookies; rotated on a schedule ([`crate::cookie_secret`]).
    cookie_secrets: CookieSecrets,
    invalid_spi: crate::invalid_spi::Pacing,
    /// Pacing of INVALID_MAJOR_VERSION answers: the trigger is one unauthenticated datagram.
    bad_version: crate::invalid_spi::Pacing,
    init_rate: InitRate,
    clock: WallClock,
}

impl Endpoint {
    pub fn new(
        cfg: EndpointConfig,
        peers: Vec<PeerConfig>,
        mut rng: Box<dyn Rng + Send>,
    ) -> Endpoint {
        let cookie_secrets = CookieSecrets::new(&mut *rng);
        Endpoint {
            cfg,
            rng,
            peers: Arc::new(PeerIndex::new(peers.into_iter().map(Arc::new).collect())),
            sas: HashMap::new(),
            init_index: HashMap::new(),
            init_of: HashMap::new(),
            ix: SaIndex::default(),
            deadlines: Deadlines::default(),
            clock: WallClock::default(),
            #[cfg(test)]
            timeout_visits: Vec::new(),
            out: Outputs::default(),
            cookie_secrets,
            invalid_spi: Default::default(),
            bad_version: Default::default(),
            init_rate: InitRate::default(),
        }
        .with_pools()
    }

    /// Replaces the connection list (reload). Running SAs keep the config they started with.
    /// A remote-access connection whose pool is the same range keeps its leases.
    /// The connections are indexed anew (O(connections)); SAs in progress keep the index
    /// they were made with.
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>) {
        self.peers = Arc::new(PeerIndex::new(peers.into_iter().map(Arc::new).collect()));
        self.sync_pools();
    }

    fn with_pools(mut self) -> Endpoint {
        self.sync_pools();
        self
    }

    /// The pools of each remote-access connection (`VipRole::Assign`, one per range): new
    /// ones made, unchanged ones kept with their leases (a connection that gains an IPv6
    /// pool keeps its IPv4 leases), others dropped. A range that does not parse gives no
    /// pool (the owner's config check refuses it first), so its clients get
    /// INTERNAL_ADDRESS_FAILURE.
    fn sync_pools(&mut self) {
        let mut pools = std::mem::take(&mut self.out.pools);
        let mut next = HashMap::new();
        for p in self.peers.peers() {
            let crate::config::VipRole::Assign(v) = &p.vip else {
                continue;
            };
            let mut old = pools.remove(&p.name).unwrap_or_default();
            let mut mine = Vec::new();
            for range in &v.ranges {
                let kept = old
                    .iter()
                    .position(|o| o.range_text() == range && o.grace() == v.grace)
                    .map(|i| old.swap_remove(i));
                let pool =
                    kept.or_else(|| crate::pool::AddressPool::new(&p.name, range, v.grace).ok());
                mine.extend(pool);
            }
            next.insert(p.name.clone(), mine);
        }
        self.out.pools = next;
    }

    /// The leases of remote-access connection `conn`'s pools (IPv4 first, by address).
    pub fn leases(&self, conn: &str) -> Vec<crate::pool::Lease> {
        let mut out: Vec<_> = self
            .out
            .pools
            .get(conn)
            .into_iter()
            .flatten()
            .flat_map(|p| p.leases().cloned())
            .collect();
        out.sort_by_key(|l| l.address);
        out
    }

    /// The engine-wide settings in force.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Replaces the admission and fragmentation settings (reload): `cookie_threshold`,
    /// `cookie_rate_threshold`, `max_half_open`, `half_open_timeout` and `fragment_size`
    /// apply to the next IKE_SA_INIT and the next message sent. The ports stay as they were:
    /// the sockets are bound to them.
    pub fn set_limits(&mut self, cfg: EndpointConfig) {
        self.cfg = EndpointConfig {
            ike_port: self.cfg.ike_port,
            natt_port: self.cfg.natt_port,
            ..cfg
        };
    }

    pub fn stats(&self) -> EndpointStats {
        self.out.stats
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Tells the engine the wall-clock time: at monotonic `now` it was `unix_secs` seconds
    /// since the Unix epoch. Certificates are checked against it; the owner calls this at
    /// start and again from time to time (a stepped system clock is picked up then).
    pub fn set_wall_clock(&mut self, now: Instant, unix_secs: i64) {
        self.clock.set(now, unix_secs);
    }

    /// The earliest moment [`Endpoint::handle_timeout`] has work. O(log n) in the SAs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first()
    }

    /// Brings SA `id`'s entries in the deadline index and the SA index up to date (or drops
    /// them, if the SA is gone). Called after anything that may have changed the SA; costs
    /// one SA's [`IkeSa::deadline`] and O(log n) index updates, not a scan.
    fn reindex(&mut self, id: IkeSaId) {
        let sa = self.sas.get(&id);
        self.deadlines.set(id, sa.and_then(|s| s.deadline()));
        self.ix.update(id, sa);
    }

    /// Removes SA `id` and every index entry of it.
    fn forget(&mut self, id: IkeSaId) {
        self.sas.remove(&id);
        self.reindex(id);
        if let Some(key) = self.init_of.remove(&id) {
            self.init_index.remove(&key);
        }
    }

    fn with_sa<R>(
        &mut self,
        id: IkeSaId,
        now: Instant,
        f: impl FnOnce(&mut IkeSa, &mut Ctx) -> R,
    ) -> Option<R> {
        // An initiator still negotiating decides INITIAL_CONTACT when it sends IKE_AUTH: by
        // then a sibling tunnel started at the same moment may exist (RFC 7296 3.16 says "the
        // only IKE SA"), so look again now rather than only when it was created.
        let initiating = self
            .sas
            .get(&id)
            .filter(|s| s.initiator && s.state == crate::sa::State::Init)
            .and_then(|s| s.conn.as_ref().map(|c| c.name.clone()));
        if let Some(name) = initiating {
            // Looks at two SAs of the connection at most, not at every SA.
            let siblings = self.ix.of_conn(&name).any(|k| k != id);
            if let Some(sa) = self.sas.get_mut(&id) {
                sa.siblings |= siblings;
            }
        }
        let sa = self.sas.get_mut(&id)?;
        let mut ctx = Ctx::new(now, self.clock, &mut *self.rng, &self.cfg, &mut self.out);
        let r = f(sa, &mut ctx);
        // The actions look the SAs up in the indexes: this one's entries go first.
        self.reindex(id);
        self.apply_actions(now);
        self.settle(id);
        self.reindex(id);
        Some(r)
    }

    /// Carries out what the SAs asked for ([`SaAction`]), in the order they asked.
    fn apply_actions(&mut self, now: Instant) {
        while let Some(action) = self.out.actions.pop_front() {
            match action {
                SaAction::Adopt(new) => {
                    let id = new.id;
                    self.sas.insert(id, *new);
                    self.reindex(id);
                }
                SaAction::Unique {
                    ike,
                    initial_contact,
                } => self.apply_unique(now, ike, initial_contact),
                SaAction::Reauthenticate { ike } => {
                    // Fails only if the SA went away meanwhile: then there is nothing to renew.
                    let _ = self.reauthenticate(now, ike);
                }
                SaAction::DeleteReplaced { by, old } => {
                    if self
                        .sas
                        .get(&by)
                        .is_some_and(|s| s.state == State::Established)
                    {
                        self.with_sa(old, now, |o, ctx| o.enqueue(ctx, Task::DeleteIke));
                    }
                }
            }
        }
    }

    /// Forgets SA `id` if it is dead, and its half-open index entry once it is established.
    fn settle(&mut self, id: IkeSaId) {
        let Some(sa) = self.sas.get(&id) else { return };
        if sa.state == State::Dead {
            let key = (sa.spi_i, sa.remote);
            self.forget(id);
            // What another SA may be entered under with this SA's SPI and address goes too.
            if let Some(other) = self.init_index.remove(&key) {
                self.init_of.remove(&other);
            }
        } else if sa.state == State::Established {
            if let Some(key) = self.init_of.remove(&id) {
                self.init_index.remove(&key);
            }
        }
    }

    /// The `unique` policy of IKE SA `id`'s connection (it just came up by IKE_AUTH). With
    /// the default (`No`), INITIAL_CONTACT (RFC 7296 3.16) means the peer restarted, so every
    /// other SA of the same connection and identity is stale: they are closed without a
    /// DELETE it could not read. For a site, only those from the same peer address: a
    /// connection's other tunnels (other addresses of the same peer) come back with their own
    /// IKE SA, and a peer that sends INITIAL_CONTACT on one tunnel while another is up (older
    /// ironsec, strongSwan with several connections) must not tear down the tunnel that still
    /// carries the traffic. A remote-access client is matched by its user at any address.
    fn apply_unique(&mut self, now: Instant, id: IkeSaId, initial_contact: bool) {
        let Some(policy) = self
            .sas
            .get(&id)
            .and_then(|s| s.conn.as_ref())
            .map(|c| c.unique)
        else {
            return;
        };
        let others = self.same_identity(id, policy == crate::config::Unique::No);
        match policy {
            crate::config::Unique::Never => {}
            crate::config::Unique::No if !initial_contact => {}
            crate::config::Unique::No | crate::config::Unique::Replace => {
                self.close_stale(now, others)
            }
            crate::config::Unique::Keep => {
                if !others.is_empty() {
                    // The established session stays; the new one goes (with a DELETE, so
                    // the peer knows).
                    let _ = self.terminate(now, id);
                }
            }
        }
    }

    /// The other established IKE SAs of IKE SA `id`'s connection and peer identity (a
    /// remote-access client's EAP user when it has one): from any address for a remote-access
    /// connection, else (`same_address`) from the same address only.
    fn same_identity(&self, id: IkeSaId, same_address: bool) -> Vec<IkeSaId> {
        let Some(sa) = self.sas.get(&id) else {
            return Vec::new();
        };
        let (Some(conn), peer, peer_id) = (sa.conn.clone(), sa.remote.ip(), sa.remote_identity())
        else {
            return Vec::new();
        };
        let remote_access = matches!(conn.vip, crate::config::VipRole::Assign(_));
        // The EAP user when there is one, else the IKE identity: one index lookup, in
        // (address, id) order.
        let ident = match &sa.eap_identity {
            Some(e) => SaIdent::Eap(e.clone()),
            None => SaIdent::Ike(peer_id),
        };
        let at = (!remote_access && same_address).then_some(peer);
        self.ix
            .same_identity(&conn.name, ident, at)
            .into_iter()
            .filter(|other| {
                *other != id
                    // A client's login in progress is not a session yet; a site's SAs of
                    // any state go (the peer that restarted has none of them).
                    && (!remote_access
                        || self.sas.get(other).is_some_and(|s| s.state == State::Established))
            })
            .collect()
    }

    /// Closes `stale` (replaced by a newer IKE SA of the same identity).
    fn close_stale(&mut self, now: Instant, stale: Vec<IkeSaId>) {
        for old in stale {
            if let Some(s) = self.sas.get_mut(&old) {
                let mut ctx = Ctx::new(now, self.clock, &mut *self.rng, &self.cfg, &mut self.out);
                s.close(&mut ctx, crate::events::CloseReason::Replaced);
            }
            self.forget(old);
        }
    }

    /// Runs the timers of the SAs that are due at `now`, and only those (found in the
    /// deadline index, not by visiting every SA).
    pub fn handle_timeout(&mut self, now: Instant) {
        for id in self.deadlines.due(now) {
            #[cfg(test)]
            self.timeout_visits.push(id);
            self.with_sa(id, now, |sa, ctx| sa.on_timeout(ctx));
        }
    }

    fn new_spi(&mut self) -> u64 {
        loop {
            let s = random_ike_spi(&mut *self.rng);
            if !self.sas.contains_key(&s) {
                return s;
            }
        }
    }

    /// Starts an IKE SA (with its first CHILD_SA) for connection `conn` between two addresses.
    pub fn initiate(
        &mut self,
        now: Instant,
        conn: &str,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaId, CommandError> {
        let c = self
            .peers
            .by_name(conn)
            .cloned()
            .ok_or_else(|| CommandError::NoSuchConnection(conn.to_string()))?;
        let spi = self.new_spi();
        let mut sa = IkeSa::new(spi, true, spi, 0, local, remote, now);
        // INITIAL_CONTACT says "I have no other IKE SA with you" (RFC 7296 3.16): false while
        // another tunnel of this connection is up, and the peer would drop that one.
        sa.siblings = self.ix.count_of_conn(&c.name) > 0;
        sa.conn = Some(c);
        self.sas.insert(spi, sa);
        self.with_sa(spi, now, |sa, ctx| sa.start_init(ctx, None, None, None));
        Ok(spi)
    }

    /// Reauthenticates an IKE SA: a fresh IKE_SA_INIT/IKE_AUTH with the same connection and
    /// addresses; the old SA and its CHILD_SAs are deleted only once the new ones are up.
    pub fn reauthenticate(&mut self, now: Instant, ike: IkeSaId) -> Result<IkeSaId, CommandError> {
        let old = self.sas.get(&ike).ok_or(CommandError::NoSuchSa(ike))?;
        let conn = old.conn.clone().ok_or(CommandError::NoSuchSa(ike))?;
        let (mut local, mut remote) = (old.local, old.remote);
        local.set_port(self.cfg.ike_port);
        remote.set_port(self.cfg.ike_port);
        let spi = self.new_spi();
        let mut sa = IkeSa::new(spi, true, spi, 0, local, remote, now);
        sa.conn = Some(conn);
        sa.replaces = Some(ike);
        self.sas.insert(spi, sa);
        self.with_sa(spi, now, |sa, ctx| sa.start_init(ctx, None, None, None));
        Ok(spi)
    }

    /// The RADIUS server's answer to the EAP message of [`crate::Event::EapRadius`] for `ike`:
    /// it goes to the client in the IKE_AUTH response that was waiting for it. Ignored when
    /// the SA waits for no answer (it was answered already, or gave up).
    pub fn eap_radius_answer(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        answer: crate::events::RadiusAnswer,
    ) -> Result<(), CommandError> {
        self.with_sa(ike, now, |sa, ctx| sa.eap_radius_answer(ctx, answer))
            .ok_or(CommandError::NoSuchSa(ike))
    }

    /// Deletes an IKE SA and its CHILD_SAs (INFORMATIONAL with DELETE).
    pub fn terminate(&mut self, now: Instant, ike: IkeSaId) -> Result<(), CommandError> {
        self.with_sa(ike, now, |sa, ctx| {
            if sa.state == State::Established {
                sa.enqueue(ctx, Task::DeleteIke);
            } else {
                sa.close(ctx, crate::events::CloseReason::Local);
            }
        })
        .ok_or(CommandError::NoSuchSa(ike))
    }

    /// Forgets an IKE SA and its CHILD_SAs without sending anything: the down events
    /// ([`crate::Event::ChildSaDown`], [`crate::Event::IkeSaDown`]) with
    /// [`crate::CloseReason::Abandoned`] come out as for any close, but no DELETE, no
    /// retransmission of a pending request and no answer. For when our local address is gone
    /// (a shared address taken over by the other gateway of a pair): a DELETE could not leave
    /// from it, and the peer hears of the change from the new owner's INITIAL_CONTACT.
    pub fn abandon(&mut self, now: Instant, ike: IkeSaId) -> Result<(), CommandError> {
        self.with_sa(ike, now, |sa, ctx| {
            sa.close(ctx, crate::events::CloseReason::Abandoned)
        })
        .ok_or(CommandError::NoSuchSa(ike))
    }

    pub fn rekey_child(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        spi_in: u32,
    ) -> Result<(), CommandError> {
        let sa = self.sas.get(&ike).ok_or(CommandError::NoSuchSa(ike))?;
        if !sa.children.iter().any(|c| c.info.spi_in == spi_in) {
            return Err(CommandError::NoSuchChild(spi_in));
        }
        self.with_sa(ike, now, |sa, ctx| {
            sa.enqueue(ctx, Task::RekeyChild(spi_in))
        });
        Ok(())
    }

    /// Reports how much a CHILD_SA has carried so far (the fast path counts; the engine has
    /// no packets). Past the soft byte/packet limit it is rekeyed, past the hard one deleted.
    pub fn child_traffic(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        spi_in: u32,
        bytes: u64,
        packets: u64,
    ) -> Result<(), CommandError> {
        let sa = self.sas.get(&ike).ok_or(CommandError::NoSuchSa(ike))?;
        let c = sa
            .children
            .iter()
            .find(|c| c.info.spi_in == spi_in)
            .ok_or(CommandError::NoSuchChild(spi_in))?;
        let Some(l) = sa.conn.as_ref().map(|c| c.lifetimes) else {
            return Ok(());
        };
        let over = |limit: Option<u64>, v: u64| limit.is_some_and(|l| v >= l);
        let task = if over(l.child_hard_bytes, bytes) || over(l.child_hard_packets, packets) {
            Some(Task::DeleteChild(spi_in))
        } else if !c.rekeyed
            && (over(l.child_rekey_bytes, bytes) || over(l.child_rekey_packets, packets))
        {
            Some(Task::RekeyChild(spi_in))
        } else {
            None
        };
        if let Some(t) = task {
            self.with_sa(ike, now, |sa, ctx| {
                if t == Task::DeleteChild(spi_in) {
                    // A hard volume limit: the delete reports the SA as expired.
                    sa.mark_expired(spi_in);
                }
                sa.enqueue(ctx, t)
            });
        }
        Ok(())
    }

    /// Checks now that the peer of an established IKE SA is alive: unless it answers within
    /// `give_up`, the SA closes with [`crate::CloseReason::PeerUnreachable`]. For failover,
    /// where DPD's pace (seconds of silence, then the whole retransmission schedule) is too
    /// slow. Returns whether a probe started: not for an SA that is not established or is
    /// probing already.
    pub fn probe(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        give_up: Duration,
    ) -> Result<bool, CommandError> {
        self.with_sa(ike, now, |sa, ctx| sa.start_probe(ctx, give_up))
            .ok_or(CommandError::NoSuchSa(ike))
    }

    /// When the peer of `ike` last proved alive (any authenticated message), and whether a
    /// probe is out: what a gateway needs to decide on failover without keeping a copy.
    pub fn liveness(&self, ike: IkeSaId) -> Option<PeerLiveness> {
        self.sas.get(&ike).map(|s| PeerLiveness {
            last_heard: s.last_inbound,
            probing: s.probe.is_some(),
        })
    }

    /// An authenticated, replay-checked ESP packet of one of `ike`'s CHILD_SAs came from
    /// `from` (the fast path checked it): a peer behind a NAT whose mapping changed. The SA
    /// follows it as it would an IKE message (RFC 3948 / RFC 7296 2.23), for a peer NAT
    /// detection put behind a NAT only; a change comes out as
    /// [`crate::Event::PeerAddressChanged`]. Returns whether the address changed.
    pub fn peer_moved(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        from: SocketAddr,
    ) -> Result<bool, CommandError> {
        self.with_sa(ike, now, |sa, ctx| {
            sa.state == State::Established && sa.learn_address(ctx, from)
        })
        .ok_or(CommandError::NoSuchSa(ike))
    }

    pub fn rekey_ike(&mut self, now: Instant, ike: IkeSaId) -> Result<(), CommandError> {
        self.with_sa(ike, now, |sa, ctx| sa.enqueue(ctx, Task::RekeyIke))
            .ok_or(CommandError::NoSuchSa(ike))
    }

    pub fn delete_child(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        spi_in: u32,
    ) -> Result<(), CommandError> {
        self.with_sa(ike, now, |sa, ctx| {
            sa.enqueue(ctx, Task::DeleteChild(spi_in))
        })
        .ok_or(CommandError::NoSuchSa(ike))
    }

    /// A summary of every IKE SA (for a full status; O(SAs)). See [`Endpoint::sa_count`] and
    /// [`Endpoint::ike_sas_of`] for the cheaper questions.
    pub fn ike_sas(&self) -> Vec<IkeSaSummary> {
        self.sas.values().map(summary).collect()
    }

    /// How many IKE SAs there are, in any state. O(1).
    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }

    /// How many IKE SAs connection `conn` has, in any state. O(log n).
    pub fn sa_count_of(&self, conn: &str) -> usize {
        self.ix.count_of_conn(conn)
    }

    /// A summary of each IKE SA of connection `conn`, by id. O(log n + its SAs).
    pub fn ike_sas_of(&self, conn: &str) -> Vec<IkeSaSummary> {
        self.ix
            .of_conn(conn)
            .filter_map(|id| self.sas.get(&id))
            .map(summary)
            .collect()
    }

    /// A summary of IKE SA `id`. O(1).
    pub fn ike_sa(&self, id: IkeSaId) -> Option<IkeSaSummary> {
        self.sas.get(&id).map(summary)
    }

    /// Panics unless every index (deadlines, the SA index, the half-open index) says what a
    /// scan of every SA would. For the tests and the fuzzer, which call it after every step
    /// (feature `testkit`).
    #[cfg(any(test, feature = "testkit"))]
    #[doc(hidden)]
    pub fn check_indexes(&self) {
        self.check_deadline_index();
        self.ix.check(&self.sas);
        assert_eq!(
            self.init_index.len(),
            self.init_of.len(),
            "init index reverse"
        );
        for (key, id) in &self.init_index {
            assert_eq!(self.init_of.get(id), Some(key), "init index reverse");
            assert!(self.sas.contains_key(id), "init index: a forgotten SA");
        }
    }

    /// Panics unless the deadline index says what a scan of every SA would. For the tests and
    /// the fuzzer, which call it after every step (feature `testkit`).
    #[cfg(any(test, feature = "testkit"))]
    #[doc(hidden)]
    pub fn check_deadline_index(&self) {
        for (id, sa) in &self.sas {
            assert_eq!(
                self.deadlines.get(*id),
                sa.deadline(),
                "deadline index out of step for IKE SA {id:#x}"
            );
        }
        let with_deadline = self.sas.values().filter(|s| s.deadline().is_some()).count();
        assert_eq!(
            self.deadlines.len(),
            with_deadline,
            "deadline index has stale entries"
        );
    }

    /// SK_e* and SK_a* of an IKE SA, for tests that let an outside decoder (tshark) read the
    /// encrypted messages. Compiled only with the `key-export` feature; never in a release.
    #[cfg(feature = "key-export")]
    pub fn export_ike_keys(&self, id: IkeSaId) -> Option<ExportedIkeKeys> {
        let sa = self.sas.get(&id)?;
        let c = sa.crypto.as_ref()?;
        Some(ExportedIkeKeys {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            encr: c.algs.encr,
            sk_ei: c.sk_e.0.to_vec(),
            sk_er: c.sk_e.1.to_vec(),
            sk_ai: c.sk_a.0.to_vec(),
            sk_ar: c.sk_a.1.to_vec(),
        })
    }

    /// ESP arrived on `local` from `remote` with an SPI the fast path has no SA for. With no
    /// established IKE SA to that address (we restarted and the peer still uses the SAs we
    /// forgot), tells the peer with an unprotected INVALID_SPI notification (RFC 7296 1.5), at
    /// most once a second per address. With an IKE SA there, the packet is a straggler from
    /// a rekeyed or deleted CHILD_SA and nothing is sent.
    pub fn unknown_esp_spi(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        spi: u32,
    ) {
        let peer = remote.ip();
        if self.ix.has_established(peer) {
            return;
        }
        if !self.invalid_spi.allow(now, peer) {
            return;
        }
        let m = crate::invalid_spi::message(&mut *self.rng, spi);
        self.send_framed(local, remote, m);
        self.out.stats.invalid_spi_sent += 1;
        self.out
            .events
            .push_back(Event::InvalidSpiSent { remote, spi });
    }

    /// Queues one IKE message from `local` to `remote`, with the non-ESP marker in front when
    /// `local` is the NAT-T port.
    fn send_framed(&mut self, local: SocketAddr, remote: SocketAddr, m: Vec<u8>) {
        let payload = if local.port() == self.cfg.natt_port {
            [&wire::NON_ESP_MARKER[..], &m].concat()
        } else {
            m
        };
        self.out.transmits.push_back(Transmit {
            local,
            remote,
            payload,
        });
    }

    /// An unprotected INVALID_SPI from `remote`: only a hint (it may be forged), so no answer
    /// and no SA changes (RFC 7296 2.21.4), but a liveness check of every established IKE SA
    /// with that address starts now, giving up as the connection's DPD would. A peer that is
    /// alive answers it; one that restarted does not, and its SAs close as unreachable.
    fn invalid_spi_hint(&mut self, now: Instant, remote: SocketAddr) {
        self.out.stats.invalid_spi_hints += 1;
        self.out.events.push_back(Event::InvalidSpiHint { remote });
        let ids: Vec<(IkeSaId, Duration)> = self
            .ix
            .established_at(remote.ip())
            .into_iter()
            .filter_map(|id| self.sas.get(&id))
            .map(|s| {
                let give_up = s
                    .conn
                    .as_ref()
                    .and_then(|c| c.retransmit.give_up_after)
                    .unwrap_or(HINT_GIVE_UP);
                (s.id, give_up)
            })
            .collect();
        for (id, give_up) in ids {
            self.with_sa(id, now, |sa, ctx| sa.start_probe(ctx, give_up));
        }
    }

    /// A request of a later IKE major version: dropped, and answered (RFC 7296 1.5, 2.5) with
    /// an unprotected INVALID_MAJOR_VERSION response carrying the request's SPIs, exchange type
    /// and Message ID, in a version 2.0 header: the version we can speak. Responses are never
    /// answered (two gateways must not bounce these at each other), and each address gets at
    /// most one a second, as the trigger can be spoofed.
    fn invalid_major_version(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        let Ok(req) = wire::Header::decode(bytes) else {
            return;
        };
        if req.flags.response || !self.bad_version.allow(now, remote.ip()) {
            return;
        }
        // Same SPIs, exchange and Message ID; our version; answered as the other side.
        let header = wire::Header::new(
            req.spi_i,
            req.spi_r,
            req.exchange,
            wire::Flags::response(!req.flags.initiator),
            req.message_id,
        );
        let m = wire::encode_message(
            &header,
            &[Payload::notify(NotifyType::InvalidMajorVersion, Vec::new())],
        );
        self.send_framed(local, remote, m);
        self.out.stats.invalid_major_version_sent += 1;
    }

    /// Responders' SAs between IKE_SA_INIT and IKE_AUTH: a count kept by the SA index.
    fn half_open(&self) -> usize {
        self.ix.half_open()
    }

    /// One UDP datagram received on `local` from `remote` (the whole UDP payload: on the NAT-T
    /// port that includes the non-ESP marker).
    pub fn handle(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, datagram: &[u8]) {
        self.out.stats.received += 1;
        let bytes = if local.port() == self.cfg.natt_port {
            match datagram.strip_prefix(&wire::NON_ESP_MARKER[..]) {
                Some(b) => b,
                None => {
                    self.out.stats.malformed += 1;
                    return;
                }
            }
        } else {
            datagram
        };
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(wire::ParseError::BadVersion { major, .. }) if major > 2 => {
                self.out.stats.malformed += 1;
                self.invalid_major_version(now, local, remote, bytes);
                return;
            }
            Err(_) => {
                self.out.stats.malformed += 1;
                return;
            }
        };
        let h = msg.header.clone();
        if h.exchange == ExchangeType::IkeSaInit && !h.flags.response && h.spi_r == 0 {
            self.init_request(now, local, remote, bytes, msg);
            return;
        }
        let ours = if h.flags.initiator { h.spi_r } else { h.spi_i };
        let theirs = if h.flags.initiator { h.spi_i } else { h.spi_r };
        let Some(sa) = self.sas.get_mut(&ours) else {
            self.out.stats.unknown_spi += 1;
            if crate::invalid_spi::hint(&msg).is_some() {
                self.invalid_spi_hint(now, remote);
            }
            return;
        };
        let peer_spi = if sa.initiator { sa.spi_r } else { sa.spi_i };
        // An IKE_SA_INIT response is where the initiator learns the responder's SPI.
        let learning =
            h.exchange == ExchangeType::IkeSaInit && sa.initiator && sa.state == State::Init;
        if !learning && peer_spi != theirs {
            self.out.stats.unknown_spi += 1;
            return;
        }
        if sa.natt && local.port() == self.cfg.natt_port && sa.local.port() != self.cfg.natt_port {
            sa.local = local;
        }
        self.with_sa(ours, now, |sa, ctx| sa.handle(ctx, bytes, msg, remote));
    }

    fn init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        msg: Message,
    ) {
        let h = &msg.header;
        if let Some(id) = self.init_index.get(&(h.spi_i, remote)).copied() {
            // A retransmitted IKE_SA_INIT: resend our answer, create nothing.
            if let Some(sa) = self.sas.get(&id) {
                if let Some((0, datagrams)) = sa.last_response.clone() {
                    for d in datagrams {
                        // Answer from where the retransmission arrived, framed for that port.
                        self.send_framed(local, remote, d);
                    }
                    self.out.stats.retransmits_answered += 1;
                }
            }
            return;
        }
        let rate = self.init_rate.count(now);
        let half_open = self.half_open();
        if half_open >= self.cfg.max_half_open {
            self.out.stats.half_open_dropped += 1;
            return;
        }
        if half_open >= self.cfg.cookie_threshold || rate > self.cfg.cookie_rate_threshold {
            let ni = msg.payloads.nonce().cloned();
            let ni = ni.as_deref().unwrap_or(&[]);
            let presented = match msg.payloads.first() {
                Some(Payload::Notify(n)) if n.kind == NotifyType::Cookie => Some(&n.data),
                _ => None,
            };
            // Compared in constant time: the cookie is a MAC of the sender's own inputs.
            // The version byte names the secret that made it: the current one, or the one
            // before it during its grace period.
            let valid = presented.is_some_and(|p| {
                let Some(&version) = p.first() else {
                    return false;
                };
                self.cookie_secrets
                    .for_version(now, &mut *self.rng, version)
                    .is_some_and(|secret| verify_cookie(secret, version, ni, h.spi_i, remote, p))
            });
            if !valid {
                let (secret, version) = self.cookie_secrets.current(now, &mut *self.rng);
                let expected = cookie(secret, version, ni, h.spi_i, remote);
                self.out.stats.cookies_sent += 1;
                let reply = [Payload::notify(NotifyType::Cookie, expected)];
                sa::init::stateless_reply(
                    &self.cfg,
                    &mut self.out.transmits,
                    h.spi_i,
                    local,
                    remote,
                    &reply,
                );
                return;
            }
        }
        let spi = self.new_spi();
        let mut ctx = Ctx::new(now, self.clock, &mut *self.rng, &self.cfg, &mut self.out);
        if let Some(sa) = sa::init::respond(&mut ctx, &self.peers, spi, local, remote, bytes, &msg)
        {
            self.init_index.insert((h.spi_i, remote), spi);
            self.init_of.insert(spi, (h.spi_i, remote));
            self.sas.insert(spi, sa);
            self.reindex(spi);
        }
    }
}

/// What status shows of one IKE SA.
fn summary(s: &IkeSa) -> IkeSaSummary {
    IkeSaSummary {
        id: s.id,
        conn: s.conn_name(),
        initiator: s.initiator,
        spi_i: s.spi_i,
        spi_r: s.spi_r,
        local: s.local,
        remote: s.remote,
        established: s.state == State::Established,
        established_at: s.established_at,
        rekey_at: s.rekey_at,
        algorithms: s.crypto.as_ref().map(|c| c.algs),
        children: s
            .children
            .iter()
            .map(|c| ChildSummary {
                spi_in: c.info.spi_in,
                spi_out: c.info.spi_out,
                algorithms: c.info.algorithms,
                rekey_at: c.rekey_at,
                expire_at: c.expire_at,
                rekeying: c.rekeyed,
            })
            .collect(),
        next_request_id: s.next_request_id,
        expected_request_id: s.expected_request_id,
        eap_identity: s.eap_identity.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TestRng;

    fn peer(name: &str, remote: &str) -> PeerConfig {
        crate::testkit::peer(
            name,
            "gw-a.example",
            remote,
            "10.1.0.0/24",
            "10.2.0.0/24",
            "aes128gcm16-prfsha256-x25519",
            "aes128gcm16",
        )
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn index_matches_a_scan(ep: &Endpoint) {
        ep.check_indexes();
    }

    #[test]
    fn handle_timeout_visits_only_the_due_sas() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(
            EndpointConfig::default(),
            vec![peer("to-b", "gw-b.example"), peer("to-c", "gw-c.example")],
            Box::new(TestRng::new(1)),
        );
        // Two IKE_SA_INIT requests, sent 10 s apart, neither answered.
        let (local, b, c) = (
            addr("192.0.2.1:500"),
            addr("192.0.2.2:500"),
            addr("192.0.2.3:500"),
        );
        let early = ep.initiate(t0, "to-b", local, b).unwrap();
        let late = ep
            .initiate(t0 + Duration::from_secs(10), "to-c", local, c)
            .unwrap();
        assert_eq!(std::iter::from_fn(|| ep.poll_transmit()).count(), 2);
        index_matches_a_scan(&ep);
        let due = ep.poll_timeout().expect("a retransmission is due");
        assert_eq!(Some(due), ep.sas[&early].deadline());
        assert!(ep.sas[&late].deadline().unwrap() > due);

        // Before the deadline nothing is visited at all.
        ep.handle_timeout(due - Duration::from_millis(1));
        assert!(ep.timeout_visits.is_empty());

        // At it, the early SA retransmits and the late one is not even looked at.
        ep.handle_timeout(due);
        assert_eq!(ep.timeout_visits, [early]);
        let sent: Vec<Transmit> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].remote, b);
        assert_eq!(ep.sas[&early].pending.as_ref().map(|p| p.retries), Some(1));
        assert_eq!(ep.sas[&late].pending.as_ref().map(|p| p.retries), Some(0));
        index_matches_a_scan(&ep);
        assert!(
            ep.poll_timeout().unwrap() > due,
            "the fired deadline moved on"
        );
    }

    #[test]
    fn the_index_follows_sas_through_retransmission_give_up_and_removal() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(
            EndpointConfig::default(),
            vec![peer("to-b", "gw-b.example")],
            Box::new(TestRng::new(2)),
        );
        let id = ep
            .initiate(t0, "to-b", addr("192.0.2.1:500"), addr("192.0.2.2:500"))
            .unwrap();
        // Follow the deadlines until the unanswered SA gives up and is forgotten.
        let mut steps = 0;
        while let Some(t) = ep.poll_timeout() {
            ep.handle_timeout(t);
            index_matches_a_scan(&ep);
            steps += 1;
            assert!(steps < 100, "deadlines never ran out");
        }
        assert!(!ep.sas.contains_key(&id));
        assert_eq!(ep.deadlines.len(), 0);
        assert!(ep.timeout_visits.iter().all(|v| *v == id));
        assert!(std::iter::from_fn(|| ep.poll_event())
            .any(|e| matches!(e, Event::IkeSaDown { ike, .. } if ike == id)));
    }

    #[test]
    fn terminate_keeps_the_index_in_step() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(
            EndpointConfig::default(),
            vec![peer("to-b", "gw-b.example")],
            Box::new(TestRng::new(3)),
        );
        let ids: Vec<IkeSaId> = (0..50u8)
            .map(|i| {
                let remote = SocketAddr::from(([192, 0, 2, 100 + i], 500));
                let t = t0 + Duration::from_millis(u64::from(i) * 10);
                ep.initiate(t, "to-b", addr("192.0.2.1:500"), remote)
                    .unwrap()
            })
            .collect();
        index_matches_a_scan(&ep);
        for id in ids.iter().step_by(2) {
            ep.terminate(t0, *id).unwrap();
        }
        index_matches_a_scan(&ep);
        assert_eq!(ep.deadlines.len(), 25);
        // Only the earliest of the survivors is due at its deadline.
        let first = ep.poll_timeout().unwrap();
        ep.handle_timeout(first);
        assert_eq!(ep.timeout_visits, [ids[1]]);
        index_matches_a_scan(&ep);
    }
}

/// The per-datagram lookups cost the same with 10 SAs and connections as with 10,000: the
/// connections and SAs the indexes hand out are counted ([`crate::index::VISITS`]), the way
/// `handle_timeout_visits_only_the_due_sas` counts timer visits, not timed.
#[cfg(test)]
mod scale_tests {
    use super::*;
    use crate::config::Identity;
    use crate::crypto::TestRng;
    use crate::index::VISITS;

    const SPOKES: &str = "192.0.2.1";
    const HUB: &str = "192.0.2.2";

    fn open() -> EndpointConfig {
        EndpointConfig {
            cookie_threshold: usize::MAX,
            cookie_rate_threshold: u64::MAX,
            max_half_open: usize::MAX,
            ..EndpointConfig::default()
        }
    }

    fn spoke_id(i: usize) -> String {
        format!("spoke{i}.example")
    }

    /// The hub's connection for spoke `i`: every spoke behind the one address `SPOKES`.
    fn hub_peer(i: usize) -> PeerConfig {
        let mut p = crate::testkit::peer(
            &format!("spoke{i}"),
            "hub.example",
            &spoke_id(i),
            "10.0.0.0/16",
            &format!("10.{}.{}.0/24", 1 + i / 256, i % 256),
            "aes128gcm16-prfsha256-x25519",
            "aes128gcm16",
        );
        p.remote_addrs = vec![SPOKES.parse().unwrap()];
        p
    }

    /// Spoke `i`'s side of it.
    fn spoke_peer(i: usize) -> PeerConfig {
        crate::testkit::peer(
            &format!("hub{i}"),
            &spoke_id(i),
            "hub.example",
            &format!("10.{}.{}.0/24", 1 + i / 256, i % 256),
            "10.0.0.0/16",
            "aes128gcm16-prfsha256-x25519",
            "aes128gcm16",
        )
    }

    /// A hub with `n + 1` connections and an established IKE SA for each of the first `n`
    /// (made up: nothing but the indexes looks at them here).
    fn hub_with(n: usize, t0: Instant) -> Endpoint {
        let mut hub = Endpoint::new(
            open(),
            (0..=n).map(hub_peer).collect(),
            Box::new(TestRng::new(2)),
        );
        let local: SocketAddr = format!("{HUB}:500").parse().unwrap();
        for i in 0..n {
            let id = 0x1000_0000 + i as u64;
            let port = 1024 + u16::try_from(i).unwrap();
            let remote = SocketAddr::new(SPOKES.parse().unwrap(), port);
            let mut sa = IkeSa::new(id, false, id << 8, id, local, remote, t0);
            sa.state = State::Established;
            sa.conn = Some(hub.peers.peers()[i].clone());
            sa.peer_id = Some(Identity::parse(&spoke_id(i)));
            hub.sas.insert(id, sa);
            hub.reindex(id);
        }
        hub.check_indexes();
        hub
    }

    /// Brings up spoke `n` against [`hub_with`]`(n)`; returns what the hub looked at while
    /// it handled the datagrams (IKE_SA_INIT, IKE_AUTH).
    fn hub_visits_for_one_more(n: usize) -> u64 {
        let t0 = Instant::now();
        let mut hub = hub_with(n, t0);
        let mut spoke = Endpoint::new(open(), vec![spoke_peer(n)], Box::new(TestRng::new(1)));
        let (s, h): (SocketAddr, SocketAddr) = (
            format!("{SPOKES}:500").parse().unwrap(),
            format!("{HUB}:500").parse().unwrap(),
        );
        spoke.initiate(t0, &format!("hub{n}"), s, h).unwrap();
        let mut visits = 0;
        let mut handled = 0;
        loop {
            let mut moved = false;
            while let Some(t) = spoke.poll_transmit() {
                moved = true;
                let before = VISITS.with(|v| v.get());
                hub.handle(t0, t.remote, t.local, &t.payload);
                visits += VISITS.with(|v| v.get()) - before;
                handled += 1;
            }
            while let Some(t) = hub.poll_transmit() {
                moved = true;
                spoke.handle(t0, t.remote, t.local, &t.payload);
            }
            hub.check_indexes();
            spoke.check_indexes();
            if !moved {
                break;
            }
        }
        assert_eq!(handled, 2, "IKE_SA_INIT and IKE_AUTH");
        assert!(
            std::iter::from_fn(|| spoke.poll_event()).any(|e| matches!(e, Event::IkeSaUp { .. }))
        );
        assert_eq!(hub.sa_count(), n + 1);
        assert_eq!(hub.ix.count_of_conn(&format!("spoke{n}")), 1);
        visits
    }

    #[test]
    fn admission_and_auth_look_at_as_much_with_10_000_sas_as_with_10() {
        let small = hub_visits_for_one_more(10);
        let large = hub_visits_for_one_more(10_000);
        assert_eq!(small, large, "visits at 10: {small}, at 10,000: {large}");
        // The exact connection, and nothing of the other spokes' SAs.
        assert!(small <= 4, "{small} visits");
    }

    #[test]
    fn half_open_is_a_count_kept_on_state_changes() {
        let t0 = Instant::now();
        let mut hub = Endpoint::new(
            open(),
            (0..3).map(hub_peer).collect(),
            Box::new(TestRng::new(2)),
        );
        let mut spokes = Endpoint::new(
            open(),
            (0..3).map(spoke_peer).collect(),
            Box::new(TestRng::new(1)),
        );
        let (s, h): (SocketAddr, SocketAddr) = (
            format!("{SPOKES}:500").parse().unwrap(),
            format!("{HUB}:500").parse().unwrap(),
        );
        for i in 0..3 {
            spokes.initiate(t0, &format!("hub{i}"), s, h).unwrap();
        }
        // The IKE_SA_INITs only: three half-open SAs at the hub.
        while let Some(t) = spokes.poll_transmit() {
            hub.handle(t0, t.remote, t.local, &t.payload);
            hub.check_indexes();
        }
        assert_eq!(hub.half_open(), 3);
        let answers: Vec<Transmit> = std::iter::from_fn(|| hub.poll_transmit()).collect();
        for t in answers {
            spokes.handle(t0, t.remote, t.local, &t.payload);
        }
        // Their IKE_AUTHs: established, none half-open.
        while let Some(t) = spokes.poll_transmit() {
            hub.handle(t0, t.remote, t.local, &t.payload);
            hub.check_indexes();
        }
        assert_eq!(hub.half_open(), 0);
        assert_eq!(hub.init_index.len(), 0);
        assert_eq!(hub.sa_count(), 3);
        assert_eq!(hub.ike_sas_of("spoke1").len(), 1);
        assert_eq!(hub.sa_count_of("spoke1"), 1);
        assert!(hub.ike_sas_of("nobody").is_empty());
    }

    /// INITIAL_CONTACT from a spoke with several stale SAs (same connection, identity and
    /// address) closes them all, in the order of their ids, every run.
    #[test]
    fn initial_contact_closes_the_stale_sas_in_id_order() {
        let t0 = Instant::now();
        let mut hub = Endpoint::new(open(), vec![hub_peer(0)], Box::new(TestRng::new(2)));
        let local: SocketAddr = format!("{HUB}:500").parse().unwrap();
        let remote: SocketAddr = format!("{SPOKES}:500").parse().unwrap();
        let ids = [0x9000_0003u64, 0x9000_0001, 0x9000_0005, 0x9000_0002];
        for id in ids {
            let mut sa = IkeSa::new(id, false, id << 8, id, local, remote, t0);
            sa.state = State::Established;
            sa.established_at = Some(t0);
            sa.conn = Some(hub.peers.peers()[0].clone());
            sa.peer_id = Some(Identity::parse(&spoke_id(0)));
            hub.sas.insert(id, sa);
            hub.reindex(id);
        }
        // And one of another identity, which stays.
        let other = 0x9000_0004;
        let mut sa = IkeSa::new(other, false, 7, other, local, remote, t0);
        sa.state = State::Established;
        sa.conn = Some(hub.peers.peers()[0].clone());
        sa.peer_id = Some(Identity::parse("someone-else.example"));
        hub.sas.insert(other, sa);
        hub.reindex(other);
        hub.check_indexes();

        let mut spoke = Endpoint::new(open(), vec![spoke_peer(0)], Box::new(TestRng::new(1)));
        let fresh = spoke.initiate(t0, "hub0", remote, local).unwrap();
        loop {
            let mut moved = false;
            while let Some(t) = spoke.poll_transmit() {
                moved = true;
                hub.handle(t0, t.remote, t.local, &t.payload);
                hub.check_indexes();
            }
            while let Some(t) = hub.poll_transmit() {
                moved = true;
                spoke.handle(t0, t.remote, t.local, &t.payload);
            }
            if !moved {
                break;
            }
        }
        assert!(spoke.sas[&fresh].state == State::Established);
        let closed: Vec<IkeSaId> = std::iter::from_fn(|| hub.poll_event())
            .filter_map(|e| match e {
                Event::IkeSaDown { ike, .. } => Some(ike),
                _ => None,
            })
            .collect();
        let mut sorted = ids.to_vec();
        sorted.sort();
        assert_eq!(closed, sorted);
        assert!(hub.sas.contains_key(&other));
        assert_eq!(hub.sa_count(), 2);
    }

    /// Two runs with the same seeds send the same bytes and report the same events, with
    /// many connections behind one address.
    #[test]
    fn same_seed_same_wire_and_events_with_many_peers() {
        fn run(t0: Instant) -> (Vec<Vec<u8>>, Vec<String>) {
            const N: usize = 100;
            let mut hub = Endpoint::new(
                open(),
                (0..N).map(hub_peer).collect(),
                Box::new(TestRng::new(2)),
            );
            let mut spokes = Endpoint::new(
                open(),
                (0..N).map(spoke_peer).collect(),
                Box::new(TestRng::new(1)),
            );
            let (s, h): (SocketAddr, SocketAddr) = (
                format!("{SPOKES}:500").parse().unwrap(),
                format!("{HUB}:500").parse().unwrap(),
            );
            for i in 0..N {
                spokes.initiate(t0, &format!("hub{i}"), s, h).unwrap();
            }
            let (mut wire, mut events) = (Vec::new(), Vec::new());
            loop {
                let mut moved = false;
                while let Some(t) = spokes.poll_transmit() {
                    moved = true;
                    hub.handle(t0, t.remote, t.local, &t.payload);
                    wire.push(t.payload);
                }
                while let Some(t) = hub.poll_transmit() {
                    moved = true;
                    spokes.handle(t0, t.remote, t.local, &t.payload);
                    wire.push(t.payload);
                }
                events.extend(std::iter::from_fn(|| hub.poll_event()).map(|e| format!("{e:?}")));
                if !moved {
                    break;
                }
            }
            hub.check_indexes();
            assert_eq!(hub.sa_count(), N);
            (wire, events)
        }
        let t0 = Instant::now();
        let (a, b) = (run(t0), run(t0));
        assert!(a.0 == b.0, "the same datagrams");
        assert_eq!(a.1, b.1);
    }
}
