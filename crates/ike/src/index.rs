//! The connection list indexed for the responder's per-datagram questions, built once per
//! connection list ([`crate::Endpoint::set_peers`]) rather than scanned per IKE_SA_INIT and
//! IKE_AUTH:
//!
//! - which connections a peer at an address might be (those listing the address, and those
//!   for any address), in configuration order, without copying them per SA;
//! - which of them takes an identity: exact `remote_id`s by a hash lookup, patterns (and
//!   DNs, whose comparison is attribute by attribute) by a scan of those alone;
//! - a connection by name.
//!
//! An SA made by an IKE_SA_INIT keeps an [`Arc`] to the index it was made with (a
//! [`Candidates`]), as it kept its copy of the list before: a reload does not change the
//! connections an SA in progress may become.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Identity, PeerConfig};
use crate::credentials::PeerTrust;
use crate::crypto::IkeProposal;
use crate::events::IkeSaId;
use crate::sa::{IkeSa, State};

#[cfg(test)]
thread_local! {
    /// Connections and SAs looked at by the engine's lookups on this thread: the unit tests
    /// compare it at 10 and at 10,000 to show the cost does not grow with their number.
    pub(crate) static VISITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` connections or SAs looked at (tests only; nothing in a release build).
#[inline]
pub(crate) fn visit(n: usize) {
    #[cfg(test)]
    VISITS.with(|v| v.set(v.get() + n as u64));
    #[cfg(not(test))]
    let _ = n;
}

/// An identity as an exact (non-pattern) `remote_id` compares it: FQDNs and e-mail
/// addresses without case ([`Identity::matches`]), others by value. None for those that are
/// never looked up by key: `%any`, patterns, DNs (compared attribute by attribute).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum IdKey {
    Fqdn(String),
    Email(String),
    Ipv4(std::net::Ipv4Addr),
    Ipv6(std::net::Ipv6Addr),
    KeyId(Vec<u8>),
}

impl IdKey {
    fn of(id: &Identity) -> Option<IdKey> {
        Some(match id {
            Identity::Fqdn(s) => IdKey::Fqdn(s.to_ascii_lowercase()),
            Identity::Email(s) => IdKey::Email(s.to_ascii_lowercase()),
            Identity::Ipv4(a) => IdKey::Ipv4(*a),
            Identity::Ipv6(a) => IdKey::Ipv6(*a),
            Identity::KeyId(b) => IdKey::KeyId(b.clone()),
            Identity::Dn(_) | Identity::Any => return None,
        })
    }

    /// The key of a configured `remote_id` that names one identity only.
    fn of_config(id: &Identity) -> Option<IdKey> {
        if id.is_pattern() {
            return None;
        }
        IdKey::of(id)
    }
}

/// The connections of one address (or of any address), as positions in the configuration.
#[derive(Debug, Default)]
struct Group {
    /// All of them, ascending.
    all: Vec<u32>,
    /// Those whose `remote_id` has no [`IdKey`] (patterns, `%any`, DNs), ascending.
    unkeyed: Vec<u32>,
    /// The first of each distinct list of IKE proposals, ascending: what an IKE_SA_INIT
    /// tries, however many connections share the list.
    proposals: Vec<u32>,
    /// The first that authenticates the peer by certificate.
    first_trust: Option<u32>,
    /// Whether any of them signs or checks signatures.
    signatures: bool,
    /// Whether any of them authenticates the peer by EAP.
    eap: bool,
}

impl Group {
    fn push(&mut self, i: u32, p: &PeerConfig) {
        if self.all.last() == Some(&i) {
            // The address listed twice by one connection.
            return;
        }
        self.all.push(i);
        if IdKey::of_config(&p.remote_id).is_none() {
            self.unkeyed.push(i);
        }
        if self.first_trust.is_none() && p.remote_auth.trust().is_some() {
            self.first_trust = Some(i);
        }
        self.signatures |= crate::sa::proof::uses_signatures(p);
        self.eap |= p.remote_auth.is_eap();
    }
}

static EMPTY: Group = Group {
    all: Vec::new(),
    unkeyed: Vec::new(),
    proposals: Vec::new(),
    first_trust: None,
    signatures: false,
    eap: false,
};

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct PeerIndex {
    peers: Vec<Arc<PeerConfig>>,
    /// The first connection of each name (a name is unique in a valid config).
    by_name: HashMap<Arc<str>, u32>,
    /// Connections without `remote_addrs`.
    any: Group,
    by_addr: HashMap<IpAddr, Group>,
    /// Exact `remote_id`s: (the address, or None for a connection for any address, key) ->
    /// positions, ascending.
    exact: HashMap<(Option<IpAddr>, IdKey), Vec<u32>>,
}

impl PeerIndex {
    /// Indexes `peers` (in configuration order). O(peers); a per-connection change rebuilds
    /// it from the edited list.
    pub(crate) fn new(peers: Vec<Arc<PeerConfig>>) -> PeerIndex {
        let mut ix = PeerIndex::default();
        // The proposal lists each group has seen (while building only).
        let mut seen: HashMap<Option<IpAddr>, HashSet<&[IkeProposal]>> = HashMap::new();
        for (i, p) in peers.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 connections");
            ix.by_name.entry(p.name.clone()).or_insert(i);
            let key = IdKey::of_config(&p.remote_id);
            let groups = p.remote_addrs.iter().map(|a| Some(*a));
            for g in groups.chain(p.remote_addrs.is_empty().then_some(None)) {
                if seen.entry(g).or_default().insert(&p.ike_proposals) {
                    let group = match g {
                        Some(a) => ix.by_addr.entry(a).or_default(),
                        None => &mut ix.any,
                    };
                    group.proposals.push(i);
                }
            }
            if p.remote_addrs.is_empty() {
                ix.any.push(i, p);
                if let Some(k) = &key {
                    push_once(ix.exact.entry((None, k.clone())).or_default(), i);
                }
            }
            for a in &p.remote_addrs {
                ix.by_addr.entry(*a).or_default().push(i, p);
                if let Some(k) = &key {
                    push_once(ix.exact.entry((Some(*a), k.clone())).or_default(), i);
                }
            }
        }
        drop(seen);
        ix.peers = peers;
        ix
    }

    pub(crate) fn peers(&self) -> &[Arc<PeerConfig>] {
        &self.peers
    }

    /// The index with one connection changed: `conn` replaces the connection of its name
    /// where it stands (a new name goes last), or, with None, connection `name` is gone. The
    /// other connections keep their order and their `Arc`s. For a reload that changes one
    /// connection; O(connections) (a rebuild from the edited list: a few ms at 10,000).
    #[allow(dead_code)] // For the per-connection reload (`Endpoint::set_peer`/`remove_peer`).
    pub(crate) fn edited(&self, name: &str, conn: Option<Arc<PeerConfig>>) -> PeerIndex {
        let mut peers = self.peers.clone();
        match (self.by_name.get(name).map(|&i| i as usize), conn) {
            (Some(i), Some(c)) => peers[i] = c,
            (Some(_), None) => peers.retain(|p| &*p.name != name),
            (None, Some(c)) => peers.push(c),
            (None, None) => {}
        }
        PeerIndex::new(peers)
    }

    /// The connection named `name` (the first, should there be two).
    pub(crate) fn by_name(&self, name: &str) -> Option<&Arc<PeerConfig>> {
        visit(1);
        self.by_name.get(name).map(|&i| &self.peers[i as usize])
    }

    fn group(&self, addr: IpAddr) -> &Group {
        self.by_addr.get(&addr).unwrap_or(&EMPTY)
    }
}

fn push_once(v: &mut Vec<u32>, i: u32) {
    if v.last() != Some(&i) {
        v.push(i);
    }
}

/// How many connections a refusal names at most: with thousands for one address, the detail
/// of each refused datagram would otherwise grow with them (and an unauthenticated
/// IKE_SA_INIT could make us write it).
pub(crate) const LISTED: usize = 8;

/// `items` described by `describe` and joined by `sep`; past [`LISTED`] of them, the rest
/// only counted (`... and 3 more`).
pub(crate) fn listed<T>(
    items: impl Iterator<Item = T>,
    describe: impl Fn(T) -> String,
    sep: &str,
) -> String {
    let mut items = items.peekable();
    let shown: Vec<String> = items.by_ref().take(LISTED).map(describe).collect();
    let mut out = shown.join(sep);
    let rest = items.count();
    if rest > 0 {
        out.push_str(&format!("{sep}... and {rest} more"));
    }
    out
}

/// The ascending union of two ascending lists of positions.
fn merge<'a>(a: &'a [u32], b: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x <= y => a.next().copied(),
        (Some(_), Some(_)) | (None, Some(_)) => b.next().copied(),
        (Some(_), None) => a.next().copied(),
        (None, None) => None,
    })
}

/// The connections a peer at one address might be, in configuration order: those that list
/// the address and those for any address. A view of the shared [`PeerIndex`], not a copy.
#[derive(Clone, Debug)]
pub(crate) struct Candidates {
    index: Arc<PeerIndex>,
    addr: IpAddr,
}

impl Candidates {
    pub(crate) fn new(index: Arc<PeerIndex>, addr: IpAddr) -> Candidates {
        Candidates { index, addr }
    }

    fn groups(&self) -> (&Group, &Group) {
        (self.index.group(self.addr), &self.index.any)
    }

    fn at(&self, i: u32) -> &Arc<PeerConfig> {
        visit(1);
        &self.index.peers[i as usize]
    }

    /// All of them, in configuration order (for what a refusal reports: not per success).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<PeerConfig>> + '_ {
        let (g, any) = self.groups();
        merge(&g.all, &any.all).map(|i| self.at(i))
    }

    /// The first of them with each distinct list of IKE proposals, in configuration order:
    /// `find_map` over these with a function of the proposals alone finds what it finds over
    /// [`Candidates::iter`], trying each list once.
    pub(crate) fn by_proposals(&self) -> impl Iterator<Item = &Arc<PeerConfig>> + '_ {
        let (g, any) = self.groups();
        merge(&g.proposals, &any.proposals).map(|i| self.at(i))
    }

    pub(crate) fn first(&self) -> Option<&Arc<PeerConfig>> {
        self.iter().next()
    }

    pub(crate) fn is_empty(&self) -> bool {
        let (g, any) = self.groups();
        g.all.is_empty() && any.all.is_empty()
    }

    /// The trust anchors of the first that authenticates the peer by certificate.
    pub(crate) fn first_trust(&self) -> Option<&Arc<PeerTrust>> {
        let (g, any) = self.groups();
        let i = match (g.first_trust, any.first_trust) {
            (Some(x), Some(y)) => x.min(y),
            (x, y) => x.or(y)?,
        };
        self.at(i).remote_auth.trust()
    }

    /// Whether any of them signs or checks signatures.
    pub(crate) fn any_signatures(&self) -> bool {
        let (g, any) = self.groups();
        g.signatures || any.signatures
    }

    /// Whether any of them authenticates the peer by EAP.
    pub(crate) fn any_eap(&self) -> bool {
        let (g, any) = self.groups();
        g.eap || any.eap
    }

    /// The connection for peer identity `peer` among those `accept` takes: the most specific
    /// `remote_id` that matches ([`Identity::specificity`]), among equals the first
    /// configured. What a scan of [`Candidates::iter`] with
    /// `filter(matches && accept).min_by_key(Reverse(specificity))` picks, by a lookup of the
    /// exact identity and a scan of the patterns only.
    pub(crate) fn by_identity(
        &self,
        peer: &Identity,
        accept: impl Fn(&PeerConfig) -> bool,
    ) -> Option<Arc<PeerConfig>> {
        let (g, any) = self.groups();
        // An exact `remote_id` is the most specific kind (2); of the unkeyed ones only a DN
        // can be as specific, and a DN matches only a DN, which has no key.
        if let Some(k) = IdKey::of(peer) {
            let ix = &self.index;
            let here = ix.exact.get(&(Some(self.addr), k.clone()));
            let anywhere = ix.exact.get(&(None, k));
            let (here, anywhere) = (
                here.map_or(&[][..], |v| &v[..]),
                anywhere.map_or(&[][..], |v| &v[..]),
            );
            if let Some(c) = merge(here, anywhere)
                .map(|i| self.at(i))
                .find(|c| accept(c))
            {
                return Some(c.clone());
            }
        }
        merge(&g.unkeyed, &any.unkeyed)
            .map(|i| self.at(i))
            .filter(|c| c.remote_id.matches(peer) && accept(c))
            .min_by_key(|c| std::cmp::Reverse(c.remote_id.specificity()))
            .cloned()
    }
}

/// The identity an IKE SA is unique by ([`crate::Endpoint`]'s `unique` policy): a
/// remote-access client's EAP user when it has one, else its IKE identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SaIdent {
    Eap(String),
    Ike(Option<Identity>),
}

impl SaIdent {
    pub(crate) fn of(sa: &IkeSa) -> SaIdent {
        match &sa.eap_identity {
            Some(e) => SaIdent::Eap(e.clone()),
            None => SaIdent::Ike(sa.remote_identity()),
        }
    }

    fn is_of(&self, sa: &IkeSa) -> bool {
        match (self, &sa.eap_identity) {
            (SaIdent::Eap(a), Some(b)) => a == b,
            (SaIdent::Ike(a), None) => {
                a.as_ref()
                    == sa
                        .peer_id
                        .as_ref()
                        .or_else(|| sa.conn.as_ref().map(|c| &c.remote_id))
            }
            _ => false,
        }
    }
}

/// What one IKE SA is indexed under: what the indexes hold about it, to update them when it
/// changes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SaEntry {
    /// A responder's SA between IKE_SA_INIT and IKE_AUTH.
    half_open: bool,
    conn: Option<Arc<str>>,
    /// Only with a connection.
    ident: Option<SaIdent>,
    ip: IpAddr,
    established: bool,
}

impl SaEntry {
    fn of(sa: &IkeSa) -> SaEntry {
        let conn = sa.conn_name();
        SaEntry {
            half_open: !sa.initiator && sa.state == State::Init,
            ident: conn.as_ref().map(|_| SaIdent::of(sa)),
            conn,
            ip: sa.remote.ip(),
            established: sa.state == State::Established,
        }
    }

    /// Whether `sa` is still indexed as this says (compared in place: no copy per datagram).
    fn is_of(&self, sa: &IkeSa) -> bool {
        self.half_open == (!sa.initiator && sa.state == State::Init)
            && self.established == (sa.state == State::Established)
            && self.ip == sa.remote.ip()
            && self.conn.as_deref() == sa.conn.as_ref().map(|c| &*c.name)
            && match &self.ident {
                Some(i) => i.is_of(sa),
                None => sa.conn.is_none(),
            }
    }
}

/// The endpoint's IKE SAs indexed for what it asks per datagram and per SA change, each
/// question a lookup rather than a visit of every SA: how many are half-open; which belong to a
/// connection; which are of one connection and identity (`unique`, INITIAL_CONTACT); which are
/// established with an address (INVALID_SPI). Ordered where the answer is iterated, so what
/// follows from it (closes, probes) happens in the same order every run.
///
/// Kept by [`SaIndex::update`] after every change of an SA, as the deadline index is, and
/// checked against a scan by [`SaIndex::check`] in the tests.
#[derive(Debug, Default)]
pub(crate) struct SaIndex {
    entries: HashMap<IkeSaId, SaEntry>,
    half_open: usize,
    by_conn: BTreeMap<Arc<str>, BTreeSet<IkeSaId>>,
    by_ident: HashMap<(Arc<str>, SaIdent), BTreeMap<IpAddr, BTreeSet<IkeSaId>>>,
    established: BTreeMap<IpAddr, BTreeSet<IkeSaId>>,
}

fn remove_from<K: Ord>(m: &mut BTreeMap<K, BTreeSet<IkeSaId>>, k: &K, id: IkeSaId) {
    if let Some(set) = m.get_mut(k) {
        set.remove(&id);
        if set.is_empty() {
            m.remove(k);
        }
    }
}

impl SaIndex {
    /// Brings SA `id`'s entries up to date with `sa` (None: it is gone). O(log n).
    pub(crate) fn update(&mut self, id: IkeSaId, sa: Option<&IkeSa>) {
        if let (Some(old), Some(sa)) = (self.entries.get(&id), sa) {
            if old.is_of(sa) {
                return;
            }
        }
        if let Some(old) = self.entries.remove(&id) {
            self.half_open -= usize::from(old.half_open);
            if let Some(c) = &old.conn {
                remove_from(&mut self.by_conn, c, id);
                if let Some(i) = old.ident {
                    let key = (c.clone(), i);
                    if let Some(m) = self.by_ident.get_mut(&key) {
                        remove_from(m, &old.ip, id);
                        if m.is_empty() {
                            self.by_ident.remove(&key);
                        }
                    }
                }
            }
            if old.established {
                remove_from(&mut self.established, &old.ip, id);
            }
        }
        let Some(sa) = sa else { return };
        let new = SaEntry::of(sa);
        self.half_open += usize::from(new.half_open);
        if let Some(c) = &new.conn {
            self.by_conn.entry(c.clone()).or_default().insert(id);
            if let Some(i) = &new.ident {
                self.by_ident
                    .entry((c.clone(), i.clone()))
                    .or_default()
                    .entry(new.ip)
                    .or_default()
                    .insert(id);
            }
        }
        if new.established {
            self.established.entry(new.ip).or_default().insert(id);
        }
        self.entries.insert(id, new);
    }

    /// Responders' SAs between IKE_SA_INIT and IKE_AUTH. O(1).
    pub(crate) fn half_open(&self) -> usize {
        self.half_open
    }

    /// The SAs of connection `conn`, by id.
    pub(crate) fn of_conn<'a>(&'a self, conn: &str) -> impl Iterator<Item = IkeSaId> + 'a {
        self.by_conn
            .get(conn)
            .into_iter()
            .flatten()
            .inspect(|_| visit(1))
            .copied()
    }

    /// How many SAs connection `conn` has. O(log n).
    pub(crate) fn count_of_conn(&self, conn: &str) -> usize {
        self.by_conn.get(conn).map_or(0, BTreeSet::len)
    }

    /// The SAs of connection `conn` and identity `ident`: from address `at` only, or from
    /// any (by address, then id).
    pub(crate) fn same_identity(
        &self,
        conn: &Arc<str>,
        ident: SaIdent,
        at: Option<IpAddr>,
    ) -> Vec<IkeSaId> {
        let Some(m) = self.by_ident.get(&(conn.clone(), ident)) else {
            return Vec::new();
        };
        let ids: Vec<IkeSaId> = match at {
            Some(ip) => m.get(&ip).into_iter().flatten().copied().collect(),
            None => m.values().flatten().copied().collect(),
        };
        visit(ids.len());
        ids
    }

    /// Whether an SA with peer address `ip` is established. O(log n).
    pub(crate) fn has_established(&self, ip: IpAddr) -> bool {
        self.established.contains_key(&ip)
    }

    /// The established SAs with peer address `ip`, by id.
    pub(crate) fn established_at(&self, ip: IpAddr) -> Vec<IkeSaId> {
        let ids: Vec<IkeSaId> = self
            .established
            .get(&ip)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        visit(ids.len());
        ids
    }

    /// Panics unless every index says what a scan of `sas` would.
    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn check(&self, sas: &HashMap<IkeSaId, IkeSa>) {
        assert_eq!(
            self.entries.len(),
            sas.len(),
            "SA index: SAs missing or stale"
        );
        let mut fresh = SaIndex::default();
        let mut ids: Vec<&IkeSaId> = sas.keys().collect();
        ids.sort();
        for id in ids {
            let sa = &sas[id];
            assert_eq!(
                self.entries.get(id),
                Some(&SaEntry::of(sa)),
                "SA index out of step for IKE SA {id:#x}"
            );
            fresh.update(*id, Some(sa));
        }
        let scan_half_open = sas
            .values()
            .filter(|s| !s.initiator && s.state == State::Init)
            .count();
        assert_eq!(self.half_open, scan_half_open, "half-open count");
        assert_eq!(self.by_conn, fresh.by_conn, "SAs by connection");
        assert_eq!(self.by_ident, fresh.by_ident, "SAs by identity");
        assert_eq!(
            self.established, fresh.established,
            "established SAs by address"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Rng, TestRng};

    fn conn(i: usize, remote_id: &str, addrs: &[&str]) -> Arc<PeerConfig> {
        let mut p = crate::testkit::peer(
            &format!("c{i}"),
            "gw.example",
            remote_id,
            "10.1.0.0/24",
            "10.2.0.0/24",
            "aes128gcm16-prfsha256-x25519",
            "aes128gcm16",
        );
        p.remote_addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
        if i.is_multiple_of(3) {
            p.remote_auth = crate::RemoteAuth::EapMschapv2(Arc::new(ironsec_eap::Users::new()));
        }
        Arc::new(p)
    }

    /// The rule as it was written before the index: a scan of every connection for the
    /// address.
    fn by_scan(
        peers: &[Arc<PeerConfig>],
        addr: IpAddr,
        peer: &Identity,
        accept: impl Fn(&PeerConfig) -> bool,
    ) -> Option<Arc<PeerConfig>> {
        peers
            .iter()
            .filter(|c| c.remote_addrs.is_empty() || c.remote_addrs.contains(&addr))
            .filter(|c| c.remote_id.matches(peer) && accept(c))
            .min_by_key(|c| std::cmp::Reverse(c.remote_id.specificity()))
            .cloned()
    }

    const IDS: &[&str] = &[
        "%any",
        "a.example",
        "A.Example",
        "*.example",
        "*xample",
        "b.example",
        "user@example",
        "USER@example",
        "*@example",
        "192.0.2.9",
        "2001:db8::9",
        "@#0102",
        "CN=a, O=x",
        "CN=*, O=x",
        "CN=b, O=x",
    ];
    const ADDRS: &[&str] = &["192.0.2.1", "192.0.2.2", "2001:db8::1"];
    const PROPOSALS: &[&str] = &[
        "aes128gcm16-prfsha256-x25519",
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-prfsha384-ecp384,aes128gcm16-prfsha256-x25519",
    ];

    /// Random connection lists (identities, patterns, DNs, duplicates, addresses, EAP or
    /// not) and random peers: the index picks exactly what the scan picked, with every
    /// `accept` the IKE_AUTH code uses (by auth kind, by IDr).
    #[test]
    fn identity_lookup_picks_what_the_scan_picked() {
        let mut rng = TestRng::new(27);
        let mut pick = |n: usize| {
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            u32::from_le_bytes(b) as usize % n
        };
        for _ in 0..300 {
            let peers: Vec<Arc<PeerConfig>> = (0..1 + pick(12))
                .map(|i| {
                    let addrs: Vec<&str> = (0..pick(3)).map(|_| ADDRS[pick(ADDRS.len())]).collect();
                    let mut c = (*conn(i, IDS[pick(IDS.len())], &addrs)).clone();
                    c.ike_proposals = PROPOSALS[pick(PROPOSALS.len())]
                        .split(',')
                        .map(|p| p.parse().unwrap())
                        .collect();
                    Arc::new(c)
                })
                .collect();
            let ix = Arc::new(PeerIndex::new(peers.clone()));
            for addr in ADDRS.iter().chain(&["198.51.100.1"]) {
                let addr: IpAddr = addr.parse().unwrap();
                let c = Candidates::new(ix.clone(), addr);
                let expected: Vec<_> = peers
                    .iter()
                    .filter(|p| p.remote_addrs.is_empty() || p.remote_addrs.contains(&addr))
                    .map(|p| p.name.clone())
                    .collect();
                let got: Vec<_> = c.iter().map(|p| p.name.clone()).collect();
                assert_eq!(got, expected);
                // One of each proposal list, the first configured.
                let mut firsts: Vec<Arc<str>> = Vec::new();
                let mut lists: Vec<&[IkeProposal]> = Vec::new();
                for p in c.iter() {
                    if !lists.contains(&&p.ike_proposals[..]) {
                        lists.push(&p.ike_proposals);
                        firsts.push(p.name.clone());
                    }
                }
                let reps: Vec<Arc<str>> = c.by_proposals().map(|p| p.name.clone()).collect();
                assert!(
                    firsts.iter().all(|f| reps.contains(f)),
                    "{firsts:?} in {reps:?}"
                );
                for p in c.iter() {
                    let first = c
                        .by_proposals()
                        .find(|r| r.ike_proposals == p.ike_proposals);
                    assert_eq!(
                        first.map(|r| r.name.clone()),
                        firsts
                            .get(
                                lists
                                    .iter()
                                    .position(|l| *l == &p.ike_proposals[..])
                                    .unwrap()
                            )
                            .cloned()
                    );
                }
                assert_eq!(c.is_empty(), expected.is_empty());
                for id in IDS.iter().skip(1) {
                    let id = Identity::parse(id);
                    for eap in [false, true] {
                        let accept = |p: &PeerConfig| p.remote_auth.is_eap() == eap;
                        let name = |r: Option<Arc<PeerConfig>>| r.map(|p| p.name.clone());
                        assert_eq!(
                            name(c.by_identity(&id, accept)),
                            name(by_scan(&peers, addr, &id, accept)),
                            "{id} at {addr}, eap {eap}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_edit_is_the_index_of_the_edited_list() {
        let ix = PeerIndex::new(vec![
            conn(1, "a.example", &["192.0.2.1"]),
            conn(2, "b.example", &[]),
            conn(4, "c.example", &["192.0.2.1"]),
        ]);
        let here = |ix: PeerIndex| Candidates::new(Arc::new(ix), "192.0.2.1".parse().unwrap());
        let names = |c: &Candidates| -> Vec<String> {
            c.iter()
                .map(|p| format!("{}={}", p.name, p.remote_id))
                .collect()
        };
        let all = |_: &PeerConfig| true;
        let found = |c: &Candidates, id: &str| {
            c.by_identity(&Identity::parse(id), all)
                .map(|p| p.name.to_string())
        };
        // Replaced where it stood, found by its new identity only.
        let mut c2 = (*conn(2, "z.example", &["192.0.2.1"])).clone();
        c2.name = "c2".into();
        let e = here(ix.edited("c2", Some(Arc::new(c2))));
        assert_eq!(names(&e), ["c1=a.example", "c2=z.example", "c4=c.example"]);
        assert_eq!(found(&e, "b.example"), None);
        assert_eq!(found(&e, "z.example"), Some("c2".into()));
        // Removed; added last; an unknown name removed changes nothing.
        let e = here(ix.edited("c1", None));
        assert_eq!(names(&e), ["c2=b.example", "c4=c.example"]);
        assert_eq!(found(&e, "a.example"), None);
        let e = here(ix.edited("c9", Some(conn(9, "d.example", &[]))));
        assert_eq!(names(&e).last().unwrap(), "c9=d.example");
        assert_eq!(found(&e, "d.example"), Some("c9".into()));
        assert_eq!(ix.edited("c7", None).peers().len(), 3);
    }

    #[test]
    fn a_refusal_names_a_few_connections_and_counts_the_rest() {
        let d = |n: usize| listed(0..n, |i| format!("c{i}"), ", ");
        assert_eq!(d(0), "");
        assert_eq!(d(2), "c0, c1");
        assert_eq!(d(LISTED), "c0, c1, c2, c3, c4, c5, c6, c7");
        assert_eq!(
            d(10_000),
            "c0, c1, c2, c3, c4, c5, c6, c7, ... and 9992 more"
        );
    }

    #[test]
    fn most_specific_then_first_configured() {
        let peers = vec![
            conn(1, "%any", &[]),
            conn(2, "*.example", &["192.0.2.1"]),
            conn(4, "a.example", &[]),
            conn(5, "A.EXAMPLE", &["192.0.2.1"]),
            conn(7, "a.example", &["192.0.2.1"]),
        ];
        let ix = Arc::new(PeerIndex::new(peers));
        let here = Candidates::new(ix.clone(), "192.0.2.1".parse().unwrap());
        let name = |r: Option<Arc<PeerConfig>>| r.map(|p| p.name.to_string());
        let all = |_: &PeerConfig| true;
        // Exact beats pattern beats %any; among exact ones the first configured.
        assert_eq!(
            name(here.by_identity(&Identity::parse("a.example"), all)),
            Some("c4".into())
        );
        assert_eq!(
            name(here.by_identity(&Identity::parse("b.example"), all)),
            Some("c2".into())
        );
        assert_eq!(
            name(here.by_identity(&Identity::parse("x.org"), all)),
            Some("c1".into())
        );
        // `accept` passes over the first exact one to the next exact one, not to a pattern.
        let not4 = |p: &PeerConfig| &*p.name != "c4";
        assert_eq!(
            name(here.by_identity(&Identity::parse("a.example"), not4)),
            Some("c5".into())
        );
        // Elsewhere only the connections for any address.
        let there = Candidates::new(ix, "192.0.2.7".parse().unwrap());
        assert_eq!(
            name(there.by_identity(&Identity::parse("b.example"), all)),
            Some("c1".into())
        );
        assert_eq!(
            name(there.by_identity(&Identity::parse("a.example"), not4)),
            Some("c1".into())
        );
    }
}
