//! Limits on password guessing against remote-access (EAP) logins: failed logins are counted
//! per source address and per user name, each in a leaky bucket; while either bucket is full,
//! a new login from that source (or for that user) is refused before any challenge, so an
//! attacker learns nothing from it and costs the gateway no password check.
//!
//! Both, because either alone fails someone: a per-user limit alone lets one source try a
//! few passwords for every user in turn; a per-source limit alone lets a botnet try many
//! passwords for one user. Neither locks out the other users: a user whose name is being
//! guessed from elsewhere is limited (as the guesser is), but users at other addresses with
//! other names are not. The buckets drain over time, so a limited user or source can try
//! again once the rate of failures falls.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] sources and as many users are remembered; when
//! full, empty buckets are dropped first, then the one that would drain first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many entries each map holds at most.
pub const MAX_TRACKED: usize = 10_000;

/// A failure limit: `burst` failures at once, then one more every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// The limits (EndpointConfig::auth_limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthLimits {
    pub per_source: Rate,
    pub per_user: Rate,
}

impl Default for AuthLimits {
    /// Per source: 10 failures, then one every 6 s (a NAT with many honest users in front of
    /// it makes a few mistakes; a guesser gets 10 a minute). Per user: 5, then one a minute
    /// (someone who mistyped a few times gets on after a minute).
    fn default() -> Self {
        AuthLimits {
            per_source: Rate {
                burst: 10,
                every: Duration::from_secs(6),
            },
            per_user: Rate {
                burst: 5,
                every: Duration::from_secs(60),
            },
        }
    }
}

/// Failures in a bucket that drains one per `every`: its level is `count` at `at`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    count: u32,
    at: Instant,
}

impl Bucket {
    /// The level at `now`.
    fn level(&self, now: Instant, rate: Rate) -> u32 {
        let drained = if rate.every.is_zero() {
            u32::MAX
        } else {
            (now.saturating_duration_since(self.at).as_nanos() / rate.every.as_nanos())
                .min(u128::from(u32::MAX)) as u32
        };
        self.count.saturating_sub(drained)
    }

    /// When it is empty.
    fn empty_at(&self, rate: Rate) -> Instant {
        self.at + rate.every * self.count
    }
}

/// Which limit refused a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    Source,
    User,
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limited::Source => "too many failed logins from this address",
            Limited::User => "too many failed logins for this user",
        })
    }
}

/// The failures counted so far.
#[derive(Debug, Default)]
pub struct AuthLimiter {
    limits: AuthLimits,
    sources: HashMap<IpAddr, Bucket>,
    users: HashMap<String, Bucket>,
}

fn add<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Bucket>,
    key: &K,
    now: Instant,
    rate: Rate,
) {
    if !map.contains_key(key) && map.len() >= MAX_TRACKED {
        map.retain(|_, b| b.level(now, rate) > 0);
        if map.len() >= MAX_TRACKED {
            if let Some(k) = map
                .iter()
                .min_by_key(|(_, b)| b.empty_at(rate))
                .map(|(k, _)| k.clone())
            {
                map.remove(&k);
            }
        }
    }
    let level = map.get(key).map_or(0, |b| b.level(now, rate));
    map.insert(
        key.clone(),
        Bucket {
            count: level.saturating_add(1),
            at: now,
        },
    );
}

impl AuthLimiter {
    pub fn new(limits: AuthLimits) -> AuthLimiter {
        AuthLimiter {
            limits,
            ..Default::default()
        }
    }

    pub fn set_limits(&mut self, limits: AuthLimits) {
        self.limits = limits;
    }

    /// Whether a login from `source` may start now.
    pub fn check_source(&self, source: IpAddr, now: Instant) -> Result<(), Limited> {
        let r = self.limits.per_source;
        match self.sources.get(&source) {
            Some(b) if b.level(now, r) >= r.burst => Err(Limited::Source),
            _ => Ok(()),
        }
    }

    /// Whether a login as `user` may go on to its challenge now.
    pub fn check_user(&self, user: &str, now: Instant) -> Result<(), Limited> {
        let r = self.limits.per_user;
        match self.users.get(user) {
            Some(b) if b.level(now, r) >= r.burst => Err(Limited::User),
            _ => Ok(()),
        }
    }

    /// A login from `source` as `user` (if it got that far) failed.
    pub fn failed(&mut self, source: IpAddr, user: Option<&str>, now: Instant) {
        add(&mut self.sources, &source, now, self.limits.per_source);
        if let Some(u) = user {
            add(&mut self.users, &u.to_string(), now, self.limits.per_user);
        }
    }

    /// How many sources and users are remembered (for tests and status).
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.len(), self.users.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_user_limit_does_not_lock_out_others_and_drains() {
        let t0 = Instant::now();
        let mut l = AuthLimiter::new(AuthLimits::default());
        let guesser = ip("198.51.100.66");
        for i in 0..5 {
            assert!(l.check_user("alice", t0).is_ok(), "try {i}");
            l.failed(guesser, Some("alice"), t0);
        }
        assert_eq!(l.check_user("alice", t0), Err(Limited::User));
        // Bob, and alice's own source for another user, are fine.
        assert!(l.check_user("bob", t0).is_ok());
        assert!(l.check_source(ip("203.0.113.5"), t0).is_ok());
        // The guesser's source has 5 of its 10.
        assert!(l.check_source(guesser, t0).is_ok());
        // A minute later alice may try once more.
        let t1 = t0 + Duration::from_secs(60);
        assert!(l.check_user("alice", t1).is_ok());
        l.failed(guesser, Some("alice"), t1);
        assert_eq!(l.check_user("alice", t1), Err(Limited::User));
    }

    #[test]
    fn per_source_limit_stops_a_spray_over_many_users() {
        let t0 = Instant::now();
        let mut l = AuthLimiter::new(AuthLimits::default());
        let sprayer = ip("198.51.100.66");
        for i in 0..10 {
            assert!(l.check_source(sprayer, t0).is_ok(), "try {i}");
            l.failed(sprayer, Some(&format!("user{i}")), t0);
        }
        assert_eq!(l.check_source(sprayer, t0), Err(Limited::Source));
        assert!(l.check_user("user0", t0).is_ok(), "one failure per user");
        assert!(l.check_source(ip("198.51.100.67"), t0).is_ok());
        assert!(l.check_source(sprayer, t0 + Duration::from_secs(6)).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut l = AuthLimiter::new(AuthLimits::default());
        for i in 0..(MAX_TRACKED as u32 + 50) {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.failed(a, Some(&format!("u{i}")), t0);
        }
        let (s, u) = l.tracked();
        assert!(s <= MAX_TRACKED && u <= MAX_TRACKED, "{s} {u}");
    }
}
