//! Virtual IP address pools for remote-access clients (RFC 7296 §3.15, INTERNAL_IP4_ADDRESS and
//! INTERNAL_IP6_ADDRESS): which inner address each client gets, kept for it while it is
//! connected and for a grace period after, so that a client that reconnects or reauthenticates
//! gets the same address again (its open connections survive; the gateway's routes and filters
//! need not change).
//!
//! A pool is of one family. An IPv6 pool hands out single addresses (the client's selector is
//! its /128, INTERNAL_IP6_ADDRESS says prefix length 128), from a /64 or a longer prefix.
//!
//! Pure bookkeeping on the caller's clock, like the rest of the engine: no I/O, no timers of its
//! own. The caller releases a lease when the client's last IKE SA goes and calls
//! [`AddressPool::expire`] when [`AddressPool::next_expiry`] is due.
//!
//! How an address is chosen for `acquire(owner, requested)`, in order:
//! 1. the address `owner` holds already (connected, or released less than the grace period
//!    ago): one client identity, one address (per family), however many IKE SAs it has;
//! 2. the address the client asked for, if nobody holds it and nobody's grace period covers it;
//! 3. the lowest address nobody holds (never handed out, or its lease expired);
//! 4. the address released longest ago (its grace period is cut short: the pool is full);
//! 5. none: [`PoolError::Exhausted`], which IKE answers with INTERNAL_ADDRESS_FAILURE.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Most addresses one IPv4 pool may hold: a /16. Leases are kept per address, so a larger pool
/// would only cost memory no gateway's client count needs.
pub const MAX_POOL_SIZE: u32 = 1 << 16;

/// Shortest IPv6 pool prefix: a /64 (RFC 4291's subnet size). Leases are kept only for the
/// addresses handed out, so the size costs nothing; a shorter prefix is a site's, not a pool.
pub const MIN_POOL6_PREFIX: u32 = 64;

/// Why a pool could not be made or an address not be handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error(
        "'{0}' is neither a prefix (10.10.0.0/24, 2001:db8:99::/112) nor a range \
         (10.10.0.10-10.10.0.99) of one family"
    )]
    Syntax(String),
    #[error("'{0}' holds no usable address")]
    Empty(String),
    #[error("'{text}' holds {size} addresses; at most {max} are allowed")]
    TooLarge { text: String, size: u128, max: u128 },
    #[error("'{0}' is shorter than /64: an IPv6 pool is a /64 or a longer prefix")]
    TooShort6(String),
    #[error("pool {pool} is exhausted: all {size} addresses are leased")]
    Exhausted { pool: String, size: u64 },
}

/// What a pool knows about one address it has handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: IpAddr,
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

/// One pool of addresses of one family, `first..=last` (IPv4 addresses as the low 32 bits).
pub struct AddressPool {
    name: String,
    /// As configured, to tell whether a reload changed the pool.
    text: String,
    v6: bool,
    first: u128,
    last: u128,
    grace: Duration,
    /// Every address handed out and not yet expired, by address.
    leases: BTreeMap<u128, Lease>,
    by_owner: HashMap<String, u128>,
    /// Released leases by (release time, address): the oldest is reused first when the pool
    /// has nothing better, and expires first.
    released: BTreeSet<(Instant, u128)>,
    /// Addresses from `first + next_fresh` on were never handed out (an offset, so that a
    /// range ending at the family's last address cannot overflow).
    next_fresh: u128,
    /// Addresses below `first + next_fresh` whose lease expired: anyone's again.
    free: BTreeSet<u128>,
}

impl fmt::Debug for AddressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressPool")
            .field("name", &self.name)
            .field("first", &self.ip(self.first))
            .field("last", &self.ip(self.last))
            .field("leases", &self.leases.len())
            .finish()
    }
}

impl AddressPool {
    /// A pool named `name` from `text`: a prefix (IPv4 `10.10.0.0/24`: its network and
    /// broadcast addresses are left out up to /30, as strongSwan's pools do; IPv6
    /// `2001:db8:99::/112`, /64 or longer: its first address, the subnet-router anycast
    /// address of RFC 4291 §2.6.1, is left out up to /126) or an inclusive range
    /// (`10.10.0.10-10.10.0.99`). Addresses are kept for their owner `grace` after release.
    pub fn new(name: &str, text: &str, grace: Duration) -> Result<AddressPool, PoolError> {
        let (v6, first, last) = parse_range(text)?;
        let size = last - first + 1;
        let max = if v6 {
            u128::from(u64::MAX)
        } else {
            u128::from(MAX_POOL_SIZE)
        };
        if size > max {
            return Err(PoolError::TooLarge {
                text: text.to_string(),
                size,
                max,
            });
        }
        Ok(AddressPool {
            name: name.to_string(),
            text: text.to_string(),
            v6,
            first,
            last,
            grace,
            leases: BTreeMap::new(),
            by_owner: HashMap::new(),
            released: BTreeSet::new(),
            next_fresh: 0,
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

    /// Whether it is a pool of IPv6 addresses.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// How many addresses the pool holds (an IPv6 pool at most 2^64 - 1, a /64 less its
    /// first address).
    pub fn size(&self) -> u64 {
        (self.last - self.first + 1) as u64
    }

    /// How many are held by connected clients.
    pub fn active(&self) -> usize {
        self.leases.len() - self.released.len()
    }

    /// Whether `a` is one of the pool's addresses.
    pub fn contains(&self, a: IpAddr) -> bool {
        self.key(a).is_some()
    }

    /// The address for `owner`'s new IKE SA (see the module documentation for which); the
    /// lease then has one more holder. A requested address of the other family is ignored.
    pub fn acquire(
        &mut self,
        owner: &str,
        requested: Option<IpAddr>,
        now: Instant,
    ) -> Result<IpAddr, PoolError> {
        self.expire(now);
        if let Some(&a) = self.by_owner.get(owner) {
            self.hold(a, now);
            return Ok(self.ip(a));
        }
        let wanted = requested
            .and_then(|a| self.key(a))
            .filter(|a| !self.leases.contains_key(a));
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
        Ok(self.ip(a))
    }

    /// One of `a`'s holders is gone (its IKE SA closed); with the last, the lease is released
    /// and kept for its owner until the grace period ends. Unknown addresses are ignored.
    pub fn release(&mut self, a: IpAddr, now: Instant) {
        let Some(a) = self.key(a) else { return };
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
            if a - self.first < self.next_fresh {
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

    /// `a` as the pool keeps it, if it is one of the pool's addresses.
    fn key(&self, a: IpAddr) -> Option<u128> {
        let k = match (a, self.v6) {
            (IpAddr::V4(a), false) => u128::from(u32::from(a)),
            (IpAddr::V6(a), true) => u128::from(a),
            _ => return None,
        };
        (self.first..=self.last).contains(&k).then_some(k)
    }

    fn ip(&self, a: u128) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::from(a as u32))
        }
    }

    /// The lowest address never handed out (skipping those clients asked for by name).
    fn fresh(&mut self) -> Option<u128> {
        while self.next_fresh <= self.last - self.first {
            let a = self.first + self.next_fresh;
            self.next_fresh += 1;
            if !self.leases.contains_key(&a) {
                return Some(a);
            }
        }
        None
    }

    fn hold(&mut self, a: u128, now: Instant) {
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

    fn grant(&mut self, a: u128, owner: &str, now: Instant) {
        let address = self.ip(a);
        self.leases.insert(
            a,
            Lease {
                address,
                owner: owner.to_string(),
                state: LeaseState::Active {
                    since: now,
                    holders: 1,
                },
            },
        );
        self.by_owner.insert(owner.to_string(), a);
    }

    fn forget(&mut self, a: u128) {
        if let Some(lease) = self.leases.remove(&a) {
            self.by_owner.remove(&lease.owner);
        }
    }

    /// Every address was handed out: take the one released longest ago, or give up.
    fn reuse_oldest(&mut self, owner: &str, now: Instant) -> Result<IpAddr, PoolError> {
        let Some((_, a)) = self.released.pop_first() else {
            return Err(PoolError::Exhausted {
                pool: self.name.clone(),
                size: self.size(),
            });
        };
        self.forget(a);
        self.grant(a, owner, now);
        Ok(self.ip(a))
    }
}

/// Whether the pool is IPv6, and `first..=last` of its prefix or range.
fn parse_range(text: &str) -> Result<(bool, u128, u128), PoolError> {
    let syntax = || PoolError::Syntax(text.to_string());
    let ip = |s: &str| match s.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok((false, u128::from(u32::from(a)))),
        Ok(IpAddr::V6(a)) => Ok((true, u128::from(a))),
        Err(_) => Err(syntax()),
    };
    let (v6, first, last) = if let Some((a, len)) = text.split_once('/') {
        let (v6, a) = ip(a)?;
        let bits = if v6 { 128 } else { 32 };
        let len: u32 = len.trim().parse().map_err(|_| syntax())?;
        if len > bits {
            return Err(syntax());
        }
        if v6 && len < MIN_POOL6_PREFIX {
            return Err(PoolError::TooShort6(text.to_string()));
        }
        let all = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        let host = all.checked_shr(len).unwrap_or(0);
        let net = a & !host & all;
        let end = net | host;
        if v6 && len <= 126 {
            (v6, net + 1, end)
        } else if !v6 && len <= 30 {
            (v6, net + 1, end - 1)
        } else {
            (v6, net, end)
        }
    } else if let Some((a, b)) = text.split_once('-') {
        let ((v6, a), (v6b, b)) = (ip(a)?, ip(b)?);
        if v6 != v6b {
            return Err(syntax());
        }
        (v6, a, b)
    } else {
        return Err(syntax());
    };
    if first > last {
        return Err(PoolError::Empty(text.to_string()));
    }
    Ok((v6, first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GRACE: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
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
        assert!(err("10.10.0.0").contains("neither a prefix"));
        assert!(err("10.10.0.0/33").contains("neither a prefix"));
        assert!(err("10.10.0.9-10.10.0.1").contains("no usable address"));
        assert!(err("10.0.0.0/8").contains("at most 65536"));
        assert!(err("10.10.0.1-2001:db8::9").contains("of one family"));
        assert!(err("2001:db8::/63").contains("shorter than /64"));
        assert!(err("2001:db8::/129").contains("neither a prefix"));
        assert!(err("2001:db8::-2001:db9::").contains("at most 18446744073709551615"));
    }

    #[test]
    fn ipv6_prefixes_leave_out_the_subnet_router_anycast_address_only() {
        let p = pool("2001:db8:99::/112");
        assert!(p.is_v6());
        assert_eq!(p.size(), 65535);
        assert!(!p.contains(ip("2001:db8:99::")));
        assert!(p.contains(ip("2001:db8:99::1")) && p.contains(ip("2001:db8:99::ffff")));
        assert!(!p.contains(ip("2001:db8:99::1:0")) && !p.contains(ip("10.10.0.1")));
        // A /64 holds 2^64 - 1 addresses; its leases cost only what is handed out.
        assert_eq!(pool("2001:db8:99::/64").size(), u64::MAX);
        assert_eq!(pool("2001:db8:99::7/128").size(), 1);
        assert_eq!(pool("2001:db8:99::4/127").size(), 2);
        assert_eq!(pool("2001:db8:99::10-2001:db8:99::1f").size(), 16);
        // The family's last address ends a range without overflowing.
        let mut top = pool("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
        let t0 = Instant::now();
        assert_eq!(
            top.acquire("a", None, t0).unwrap(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")
        );
        assert_eq!(
            top.acquire("b", None, t0).unwrap(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
        assert!(matches!(
            top.acquire("c", None, t0),
            Err(PoolError::Exhausted { size: 2, .. })
        ));
    }

    #[test]
    fn ipv6_leases_follow_the_same_rules_and_ignore_ipv4_requests() {
        let mut p = pool("2001:db8:99::/64");
        let t0 = Instant::now();
        let a = p.acquire("alice", None, t0).unwrap();
        assert_eq!(a, ip("2001:db8:99::1"));
        assert_eq!(
            p.acquire("bob", Some(ip("10.10.0.5")), t0).unwrap(),
            ip("2001:db8:99::2"),
            "a request of the other family is no request"
        );
        assert_eq!(
            p.acquire("carol", Some(ip("2001:db8:99::abcd")), t0)
                .unwrap(),
            ip("2001:db8:99::abcd")
        );
        p.release(a, t0);
        p.release(ip("10.10.0.1"), t0);
        assert_eq!(p.active(), 2);
        assert_eq!(
            p.acquire("alice", None, t0 + Duration::from_secs(5))
                .unwrap(),
            a
        );
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
            let base = u32::from(Ipv4Addr::new(10, 10, 0, 0));
            let mut now = Instant::now();
            // owner -> (address, IKE SAs it holds)
            let mut model: HashMap<u8, (IpAddr, u32)> = HashMap::new();
            for o in ops {
                match o {
                    Op::Acquire(who, req) => {
                        let owner = format!("user{who}");
                        let req = req.map(|r| IpAddr::V4(Ipv4Addr::from(base + u32::from(r))));
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
