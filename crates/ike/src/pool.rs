//! Virtual IP address pools for remote-access clients (RFC 7296 §3.15, INTERNAL_IP4_ADDRESS):
//! which inner address each client gets, kept for it while it is connected and for a grace
//! period after, so that a client that reconnects or reauthenticates gets the same address
//! again (its open connections survive; the gateway's routes and filters need not change).
//!
//! Pure bookkeeping on the caller's clock, like the rest of the engine: no I/O, no timers of its
//! own. The caller releases a lease when the client's last IKE SA goes and calls
//! [`AddressPool::expire`] when [`AddressPool::next_expiry`] is due.
//!
//! How an address is chosen for `acquire(owner, requested)`, in order:
//! 1. the address `owner` holds already (connected, or released less than the grace period
//!    ago): one client identity, one address, however many IKE SAs it has;
//! 2. the address the client asked for, if nobody holds it and nobody's grace period covers it;
//! 3. the lowest address nobody holds (never handed out, or its lease expired);
//! 4. the address released longest ago (its grace period is cut short: the pool is full);
//! 5. none: [`PoolError::Exhausted`], which IKE answers with INTERNAL_ADDRESS_FAILURE.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Most addresses one pool may hold: a /16. Leases are kept per address, so a larger pool
/// would only cost memory no gateway's client count needs.
pub const MAX_POOL_SIZE: u32 = 1 << 16;

/// Why a pool could not be made or an address not be handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("'{0}' is neither an IPv4 prefix (10.10.0.0/24) nor a range (10.10.0.10-10.10.0.99)")]
    Syntax(String),
    #[error("'{0}' holds no usable address")]
    Empty(String),
    #[error("'{text}' holds {size} addresses; at most {max} are allowed")]
    TooLarge { text: String, size: u64, max: u32 },
    #[error("pool {pool} is exhausted: all {size} addresses are leased")]
    Exhausted { pool: String, size: u32 },
}

/// What a pool knows about one address it has handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// The client identity (IKE identity or EAP user name) the address belongs to.
    pub owner: String,
    pub state: LeaseState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Held by `holders` IKE SAs of the owner, since `since`.
    Active { since: Instant, holders: u32 },
    /// The owner's last IKE SA went at `at`; the address stays the owner's until `at + grace`.
    Released { at: Instant },
}

/// One pool of IPv4 addresses, `first..=last`.
pub struct AddressPool {
    name: String,
    /// As configured, to tell whether a reload changed the pool.
    text: String,
    first: u32,
    last: u32,
    grace: Duration,
    /// Every address handed out and not yet expired, by address.
    leases: BTreeMap<u32, Lease>,
    by_owner: HashMap<String, u32>,
    /// Released leases by (release time, address): the oldest is reused first when the pool
    /// has nothing better, and expires first.
    released: BTreeSet<(Instant, u32)>,
    /// Addresses from `next_fresh` on were never handed out.
    next_fresh: u64,
    /// Addresses below `next_fresh` whose lease expired: anyone's again.
    free: BTreeSet<u32>,
}

impl fmt::Debug for AddressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressPool")
            .field("name", &self.name)
            .field("first", &Ipv4Addr::from(self.first))
            .field("last", &Ipv4Addr::from(self.last))
            .field("leases", &self.leases.len())
            .finish()
    }
}

impl AddressPool {
    /// A pool named `name` from `text`: a prefix (`10.10.0.0/24`: its network and broadcast
    /// addresses are left out up to /30, as strongSwan's pools do) or an inclusive range
    /// (`10.10.0.10-10.10.0.99`). Addresses are kept for their owner `grace` after release.
    pub fn new(name: &str, text: &str, grace: Duration) -> Result<AddressPool, PoolError> {
        let (first, last) = parse_range(text)?;
        let size = u64::from(last) - u64::from(first) + 1;
        if size > u64::from(MAX_POOL_SIZE) {
            return Err(PoolError::TooLarge {
                text: text.to_string(),
                size,
                max: MAX_POOL_SIZE,
            });
        }
        Ok(AddressPool {
            name: name.to_string(),
            text: text.to_string(),
            first,
            last,
            grace,
            leases: BTreeMap::new(),
            by_owner: HashMap::new(),
            released: BTreeSet::new(),
            next_fresh: u64::from(first),
            free: BTreeSet::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix or range it was made from.
    pub fn range_text(&self) -> &str {
        &self.text
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// How many addresses the pool holds.
    pub fn size(&self) -> u32 {
        self.last - self.first + 1
    }

    /// How many are held by connected clients.
    pub fn active(&self) -> usize {
        self.leases.len() - self.released.len()
    }

    /// Whether `a` is one of the pool's addresses.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(a))
    }

    /// The address for `owner`'s new IKE SA (see the module documentation for which); the
    /// lease then has one more holder.
    pub fn acquire(
        &mut self,
        owner: &str,
        requested: Option<Ipv4Addr>,
        now: Instant,
    ) -> Result<Ipv4Addr, PoolError> {
        self.expire(now);
        if let Some(&a) = self.by_owner.get(owner) {
            self.hold(a, now);
            return Ok(Ipv4Addr::from(a));
        }
        let wanted = requested
            .map(u32::from)
            .filter(|a| (self.first..=self.last).contains(a) && !self.leases.contains_key(a));
        let a = match wanted {
            Some(a) => {
                self.free.remove(&a);
                a
            }
            None => match self.free.pop_first().or_else(|| self.fresh()) {
                Some(a) => a,
                None => return self.reuse_oldest(owner, now),
            },
        };
        self.grant(a, owner, now);
        Ok(Ipv4Addr::from(a))
    }

    /// One of `a`'s holders is gone (its IKE SA closed); with the last, the lease is released
    /// and kept for its owner until the grace period ends. Unknown addresses are ignored.
    pub fn release(&mut self, a: Ipv4Addr, now: Instant) {
        let a = u32::from(a);
        let Some(lease) = self.leases.get_mut(&a) else {
            return;
        };
        if let LeaseState::Active { holders, .. } = &mut lease.state {
            *holders -= 1;
            if *holders == 0 {
                lease.state = LeaseState::Released { at: now };
                self.released.insert((now, a));
            }
        }
    }

    /// Forgets released leases whose grace period is over: their addresses go to anyone.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, a)) = self.released.first() {
            if now.saturating_duration_since(at) < self.grace {
                break;
            }
            self.released.pop_first();
            self.forget(a);
            // An address a client asked for ahead of the fresh ones is fresh again.
            if u64::from(a) < self.next_fresh {
                self.free.insert(a);
            }
        }
    }

    /// When the next released lease's grace period ends, if any is running.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.released.first().map(|&(at, _)| at + self.grace)
    }

    /// Every lease, by address.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// The lowest address never handed out (skipping those clients asked for by name).
    fn fresh(&mut self) -> Option<u32> {
        while self.next_fresh <= u64::from(self.last) {
            let a = self.next_fresh as u32;
            self.next_fresh += 1;
            if !self.leases.contains_key(&a) {
                return Some(a);
            }
        }
        None
    }

    fn hold(&mut self, a: u32, now: Instant) {
        let Some(lease) = self.leases.get_mut(&a) else {
            return;
        };
        match &mut lease.state {
            LeaseState::Active { holders, .. } => *holders += 1,
            LeaseState::Released { at } => {
                self.released.remove(&(*at, a));
                lease.state = LeaseState::Active {
                    since: now,
                    holders: 1,
                };
            }
        }
    }

    fn grant(&mut self, a: u32, owner: &str, now: Instant) {
        self.leases.insert(
            a,
            Lease {
                address: Ipv4Addr::from(a),
                owner: owner.to_string(),
                state: LeaseState::Active {
                    since: now,
                    holders: 1,
                },
            },
        );
        self.by_owner.insert(owner.to_string(), a);
    }

    fn forget(&mut self, a: u32) {
        if let Some(lease) = self.leases.remove(&a) {
            self.by_owner.remove(&lease.owner);
        }
    }

    /// Every address was handed out: take the one released longest ago, or give up.
    fn reuse_oldest(&mut self, owner: &str, now: Instant) -> Result<Ipv4Addr, PoolError> {
        let Some((_, a)) = self.released.pop_first() else {
            return Err(PoolError::Exhausted {
                pool: self.name.clone(),
                size: self.size(),
            });
        };
        self.forget(a);
        self.grant(a, owner, now);
        Ok(Ipv4Addr::from(a))
    }
}

/// `first..=last` of a prefix or range.
fn parse_range(text: &str) -> Result<(u32, u32), PoolError> {
    let syntax = || PoolError::Syntax(text.to_string());
    let ip = |s: &str| {
        s.trim()
            .parse::<Ipv4Addr>()
            .map(u32::from)
            .map_err(|_| syntax())
    };
    let (first, last) = if let Some((a, len)) = text.split_once('/') {
        let len: u32 = len.trim().parse().map_err(|_| syntax())?;
        if len > 32 {
            return Err(syntax());
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let net = ip(a)? & mask;
        let bcast = net | !mask;
        if len <= 30 {
            (net + 1, bcast - 1)
        } else {
            (net, bcast)
        }
    } else if let Some((a, b)) = text.split_once('-') {
        (ip(a)?, ip(b)?)
    } else {
        return Err(syntax());
    };
    if first > last {
        return Err(PoolError::Empty(text.to_string()));
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GRACE: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn pool(text: &str) -> AddressPool {
        AddressPool::new("clients", text, GRACE).unwrap()
    }

    #[test]
    fn prefixes_leave_out_network_and_broadcast_ranges_do_not() {
        let p = pool("10.10.0.0/24");
        assert_eq!(p.size(), 254);
        assert!(!p.contains(ip("10.10.0.0")) && !p.contains(ip("10.10.0.255")));
        assert!(p.contains(ip("10.10.0.1")) && p.contains(ip("10.10.0.254")));
        assert_eq!(pool("10.10.0.4/31").size(), 2);
        assert_eq!(pool("10.10.0.7/32").size(), 1);
        assert_eq!(pool("10.10.0.10 - 10.10.0.19").size(), 10);
        // A host address in a prefix is the same prefix.
        assert_eq!(pool("10.10.0.77/24").size(), 254);
    }

    #[test]
    fn bad_pools_are_refused_with_the_reason() {
        let err = |t: &str| AddressPool::new("p", t, GRACE).unwrap_err().to_string();
        assert!(err("10.10.0.0").contains("neither an IPv4 prefix"));
        assert!(err("10.10.0.0/33").contains("neither an IPv4 prefix"));
        assert!(err("10.10.0.9-10.10.0.1").contains("no usable address"));
        assert!(err("10.0.0.0/8").contains("at most 65536"));
        assert!(err("fd00::/64").contains("neither an IPv4 prefix"));
    }

    #[test]
    fn one_owner_one_address_across_ike_sas_and_reconnects() {
        let mut p = pool("10.10.0.0/29");
        let t0 = Instant::now();
        let a = p.acquire("alice", None, t0).unwrap();
        assert_eq!(a, ip("10.10.0.1"));
        // A second IKE SA of alice (a reauthentication overlapping the old one).
        assert_eq!(p.acquire("alice", None, t0).unwrap(), a);
        let b = p.acquire("bob", None, t0).unwrap();
        assert_eq!(b, ip("10.10.0.2"));
        p.release(a, t0);
        assert_eq!(p.active(), 2, "alice still has one IKE SA");
        p.release(a, t0 + Duration::from_secs(1));
        assert_eq!(p.active(), 1);
        // Back within the grace period: the same address, even though others connected.
        let c = p
            .acquire("carol", None, t0 + Duration::from_secs(2))
            .unwrap();
        assert_eq!(c, ip("10.10.0.3"));
        assert_eq!(
            p.acquire("alice", None, t0 + Duration::from_secs(30))
                .unwrap(),
            a
        );
        assert_eq!(p.next_expiry(), None);
    }

    #[test]
    fn after_the_grace_period_the_address_is_anyones() {
        let mut p = pool("10.10.0.1/32");
        let t0 = Instant::now();
        let a = p.acquire("alice", None, t0).unwrap();
        p.release(a, t0);
        assert_eq!(p.next_expiry(), Some(t0 + GRACE));
        // Within the grace period, the address is still alice's; the pool (of one) has no
        // other, so bob takes it over: a full pool cuts grace periods short.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(p.acquire("bob", None, t1).unwrap(), a);
        assert_eq!(
            p.leases().map(|l| l.owner.as_str()).collect::<Vec<_>>(),
            ["bob"]
        );
        // alice now finds the pool exhausted.
        assert_eq!(
            p.acquire("alice", None, t1),
            Err(PoolError::Exhausted {
                pool: "clients".into(),
                size: 1
            })
        );
        p.release(a, t1);
        p.expire(t1 + GRACE);
        assert_eq!(p.leases().count(), 0);
        assert_eq!(p.next_expiry(), None);
    }

    #[test]
    fn requested_addresses_are_honoured_when_free() {
        let mut p = pool("10.10.0.0/29");
        let t0 = Instant::now();
        assert_eq!(
            p.acquire("alice", Some(ip("10.10.0.5")), t0).unwrap(),
            ip("10.10.0.5")
        );
        // Taken: bob gets the next fresh one instead; outside the pool: ignored.
        assert_eq!(
            p.acquire("bob", Some(ip("10.10.0.5")), t0).unwrap(),
            ip("10.10.0.1")
        );
        assert_eq!(
            p.acquire("carol", Some(ip("192.0.2.1")), t0).unwrap(),
            ip("10.10.0.2")
        );
        // Fresh addresses skip the one alice asked for.
        for (who, want) in [("d", "10.10.0.3"), ("e", "10.10.0.4"), ("f", "10.10.0.6")] {
            assert_eq!(p.acquire(who, None, t0).unwrap(), ip(want));
        }
        assert!(matches!(
            p.acquire("g", None, t0),
            Err(PoolError::Exhausted { size: 6, .. })
        ));
        // A released address inside its grace period is not handed to whoever asks for it.
        p.release(ip("10.10.0.5"), t0);
        assert_eq!(
            p.acquire("h", Some(ip("10.10.0.5")), t0 + Duration::from_secs(1))
                .unwrap(),
            ip("10.10.0.5"),
            "the pool is full: the oldest released address goes, grace or not"
        );
    }

    #[test]
    fn an_expired_address_is_handed_out_once() {
        let mut p = pool("10.10.0.0/29");
        let t0 = Instant::now();
        // alice asks for .5 ahead of the fresh addresses, leaves, and her lease expires.
        let a = p.acquire("alice", Some(ip("10.10.0.5")), t0).unwrap();
        p.release(a, t0);
        let t1 = t0 + GRACE;
        p.expire(t1);
        let mut got = BTreeSet::new();
        for who in ["b", "c", "d", "e", "f", "g"] {
            assert!(
                got.insert(p.acquire(who, None, t1).unwrap()),
                "{who}: twice"
            );
        }
        assert!(p.acquire("h", None, t1).is_err());
        // And one below the fresh ones comes back as the lowest free address.
        p.release(ip("10.10.0.2"), t1);
        p.expire(t1 + GRACE);
        assert_eq!(p.acquire("i", None, t1 + GRACE).unwrap(), ip("10.10.0.2"));
    }

    #[test]
    fn a_full_pool_reuses_the_address_released_longest_ago() {
        let mut p = pool("10.10.0.0/30");
        let t0 = Instant::now();
        let a = p.acquire("alice", None, t0).unwrap();
        let b = p.acquire("bob", None, t0).unwrap();
        p.release(b, t0 + Duration::from_secs(1));
        p.release(a, t0 + Duration::from_secs(2));
        assert_eq!(
            p.acquire("carol", None, t0 + Duration::from_secs(3))
                .unwrap(),
            b
        );
        assert_eq!(
            p.acquire("alice", None, t0 + Duration::from_secs(4))
                .unwrap(),
            a,
            "alice's grace period still runs"
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Acquire(u8, Option<u8>),
        Release(u8),
        Wait(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12, proptest::option::of(0u8..20)).prop_map(|(o, r)| Op::Acquire(o, r)),
            (0u8..20).prop_map(Op::Release),
            (0u8..90).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Whatever clients do: no address has two owners, no owner two addresses, every
        /// address handed out is in the pool, an owner keeps its address while it holds it,
        /// and the pool only reports exhaustion when every address is held by a connected client
        /// or by someone else's running grace period... and it has none released.
        #[test]
        fn leases_stay_consistent(ops in proptest::collection::vec(op(), 1..200)) {
            let mut p = pool("10.10.0.0/29");
            let base = u32::from(ip("10.10.0.0"));
            let mut now = Instant::now();
            // owner -> (address, IKE SAs it holds)
            let mut model: HashMap<u8, (Ipv4Addr, u32)> = HashMap::new();
            for o in ops {
                match o {
                    Op::Acquire(who, req) => {
                        let owner = format!("user{who}");
                        let req = req.map(|r| Ipv4Addr::from(base + u32::from(r)));
                        match p.acquire(&owner, req, now) {
                            Ok(a) => {
                                prop_assert!(p.contains(a));
                                let e = model.entry(who).or_insert((a, 0));
                                if e.1 > 0 {
                                    prop_assert_eq!(e.0, a, "a connected owner moved");
                                }
                                *e = (a, e.1 + 1);
                                // Whoever had this address before and is not connected lost it.
                                model.retain(|w, (x, n)| *w == who || *x != a || *n > 0);
                                for (w, (x, n)) in &model {
                                    if *w != who && *n > 0 {
                                        prop_assert_ne!(*x, a, "two connected owners");
                                    }
                                }
                            }
                            Err(PoolError::Exhausted { .. }) => {
                                let connected = model.values().filter(|(_, n)| *n > 0).count();
                                prop_assert_eq!(connected, p.size() as usize);
                            }
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                    Op::Release(who) => {
                        if let Some((a, n)) = model.get_mut(&(who % 12)) {
                            if *n > 0 {
                                *n -= 1;
                                p.release(*a, now);
                            }
                        }
                    }
                    Op::Wait(s) => {
                        now += Duration::from_secs(u64::from(s));
                        p.expire(now);
                    }
                }
                let mut seen = BTreeSet::new();
                for l in p.leases() {
                    prop_assert!(seen.insert(l.address), "an address twice");
                }
                // Every connected owner's address is leased to it, and to nobody else.
                for (w, (a, n)) in &model {
                    if *n > 0 {
                        let owner = format!("user{w}");
                        let holder = p.leases().find(|l| l.address == *a).map(|l| l.owner.clone());
                        prop_assert_eq!(holder.as_deref(), Some(owner.as_str()));
                    }
                }
                let connected = model.values().filter(|(_, n)| *n > 0).count();
                prop_assert_eq!(p.active(), connected);
                prop_assert!(p.active() <= p.size() as usize);
            }
        }
    }
}
