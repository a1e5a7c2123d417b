//! Which tunnels carry a connection's traffic: all that are up (active-active), or one
//! (active-standby) chosen by priority, moved off a tunnel that fails, to the tunnel the
//! peer moved to, and back to a better one with preempt. [`decide`] is the policy, a pure
//! function of the tunnels' facts and `now`; [`Plane::select`] gathers the facts and
//! applies the decision (failure marks, counters, log lines), for the connections an event
//! touched (`select_dirty`), or all of them after a start, reload or rejoin.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Plane;
use crate::config::{IkeKeying, Mode};
use crate::tables::TunnelKey;

/// Traffic heard on another tunnel this recently, while ours is silent, means the peer moved.
const HEARD_RECENTLY: Duration = Duration::from_millis(300);

/// Which tunnels carry a connection's traffic, and the story of its failovers.
#[derive(Default, Debug, Clone)]
pub struct Selection {
    /// The tunnels traffic goes to now (one in active-standby).
    pub active: Vec<TunnelKey>,
    /// When, and what happened, e.g. "192.0.2.2 -> 198.51.100.2: probe unanswered".
    pub last_failover: Option<(Instant, String)>,
}

/// Why traffic moved. Its text is what logs and `ironsecctl status` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverReason {
    /// The tunnel that carried the traffic lost its SA.
    Down(IpAddr),
    /// No tunnel of the connection has an SA.
    NoneUp,
    /// The peer sends on this tunnel while ours is silent: it failed over first.
    PeerMoved(IpAddr),
    /// A better tunnel that never failed came up (at start, a moment after the first).
    HigherPriority(IpAddr),
    /// A better tunnel that failed is up again, for the hold time (preempt).
    Preempt(IpAddr),
}

impl FailoverReason {
    /// Traffic moved to a better tunnel, not off a failed one: the tunnel left is not marked
    /// as failed.
    pub fn is_upgrade(self) -> bool {
        matches!(
            self,
            FailoverReason::HigherPriority(_) | FailoverReason::Preempt(_)
        )
    }
}

impl std::fmt::Display for FailoverReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailoverReason::Down(a) => write!(f, "{a} is down"),
            FailoverReason::NoneUp => f.write_str("no tunnel is up"),
            FailoverReason::PeerMoved(a) => write!(f, "the peer moved to {a}"),
            FailoverReason::HigherPriority(a) => write!(f, "{a} has a higher priority"),
            FailoverReason::Preempt(a) => write!(f, "{a} is back (preempt)"),
        }
    }
}

/// What [`decide`] needs to know of one tunnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelFacts {
    /// Configured priority (higher is preferred).
    pub priority: u32,
    /// It has an SA to send with.
    pub up: bool,
    /// When ESP last arrived on it (as last seen).
    pub rx_at: Option<Instant>,
    /// Its IKE SA is checking that the peer is alive.
    pub probing: bool,
    /// When its current IKE SA came up.
    pub established_at: Option<Instant>,
    /// When traffic last moved off it because it failed.
    pub failed_at: Option<Instant>,
}

/// The connection's settings [`decide`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Silence this long on the active tunnel lets traffic follow the peer (a sixth of
    /// `failover_after`).
    pub probe_after: Duration,
    /// Move back to a better tunnel up this long; None = never.
    pub preempt_hold: Option<Duration>,
}

impl Policy {
    pub fn of(k: &IkeKeying) -> Policy {
        Policy {
            mode: k.mode,
            probe_after: k.failover_after / 6,
            preempt_hold: k.preempt_hold,
        }
    }
}

/// The tunnels that carry traffic now, and why they changed (None when nothing worth
/// saying happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub active: Vec<TunnelKey>,
    pub reason: Option<FailoverReason>,
}

/// Picks the tunnels that carry a connection's traffic. `tunnels` in config order, `before`
/// the current choice.
pub fn decide(
    policy: Policy,
    tunnels: &[(TunnelKey, TunnelFacts)],
    before: &[TunnelKey],
    now: Instant,
) -> Decision {
    let up: Vec<&(TunnelKey, TunnelFacts)> = tunnels.iter().filter(|(_, f)| f.up).collect();
    let decision = |active: Vec<TunnelKey>, reason| Decision { active, reason };
    if policy.mode == Mode::ActiveActive {
        return decision(up.iter().map(|(k, _)| k.clone()).collect(), None);
    }
    let facts = |key: &TunnelKey| tunnels.iter().find(|(k, _)| k == key).map(|(_, f)| *f);
    let silent = |key: &TunnelKey| {
        facts(key)
            .and_then(|f| f.rx_at)
            .is_some_and(|t| now.saturating_duration_since(t) >= policy.probe_after)
    };
    let heard_recently = |key: &TunnelKey| {
        facts(key)
            .and_then(|f| f.rx_at)
            .is_some_and(|t| now.saturating_duration_since(t) < HEARD_RECENTLY)
    };
    // Best first: highest priority, then config order (max_by_key keeps the last of equals,
    // so walk in reverse).
    let best = up.iter().rev().max_by_key(|(_, f)| f.priority).copied();
    let current = before
        .first()
        .and_then(|c| up.iter().find(|(k, _)| k == c).copied());
    match (current, best) {
        (None, Some((b, _))) => decision(
            vec![b.clone()],
            before.first().map(|old| FailoverReason::Down(old.remote)),
        ),
        (None, None) => decision(Vec::new(), Some(FailoverReason::NoneUp)),
        (Some((c, cf)), best) => {
            // The peer moved first: traffic arrives on another tunnel while ours is silent.
            // Follow it rather than wait for our own probe.
            if let Some((o, _)) = up
                .iter()
                .find(|(o, _)| o != c && silent(c) && heard_recently(o))
            {
                return decision(vec![o.clone()], Some(FailoverReason::PeerMoved(o.remote)));
            }
            // A better tunnel that never failed (it just came up a moment after this one, at
            // start) takes over at once, preempt or not; one that failed comes back only with
            // preempt, on an IKE SA newer than the failure that has been up for the hold time.
            let better = best.filter(|(_, bf)| bf.priority > cf.priority && !bf.probing);
            match better {
                Some((b, bf)) if bf.failed_at.is_none() => decision(
                    vec![b.clone()],
                    Some(FailoverReason::HigherPriority(b.remote)),
                ),
                Some((b, bf))
                    if bf
                        .established_at
                        .is_some_and(|t| bf.failed_at.is_some_and(|f| t > f))
                        && policy.preempt_hold.is_some_and(|hold| {
                            bf.established_at
                                .is_some_and(|t| now.saturating_duration_since(t) >= hold)
                        }) =>
                {
                    decision(vec![b.clone()], Some(FailoverReason::Preempt(b.remote)))
                }
                _ => decision(vec![c.clone()], None),
            }
        }
    }
}

/// A tunnel's share of the flows (active-active).
pub(super) fn weight_of(k: &IkeKeying, key: &TunnelKey) -> u32 {
    k.tunnels
        .iter()
        .find(|t| t.local == key.local && t.remote == key.remote)
        .map_or(1, |t| t.weight)
}

fn show(v: &[TunnelKey]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|k| k.remote.to_string())
        .collect::<Vec<_>>()
        .join("+")
}

impl Plane {
    /// Re-decides which tunnels carry each IKE connection's traffic; returns whether
    /// anything changed.
    pub fn select_all(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for i in 0..self.cfg.connections.len() {
            changed |= self.select(i, now);
        }
        self.dirty.clear();
        self.dirty_all = false;
        changed
    }

    /// Re-decides the connections an event touched since their last decision (all of them
    /// after a start, reload or rejoin); returns whether anything changed. The cost is
    /// O(touched connections), not O(connections).
    pub(super) fn select_dirty(&mut self, now: Instant) -> bool {
        if self.dirty_all {
            return self.select_all(now);
        }
        let mut changed = false;
        for i in std::mem::take(&mut self.dirty) {
            // An index from before a reload that shrank the config (a reload sets
            // `dirty_all` anyway).
            if i < self.cfg.connections.len() {
                changed |= self.select(i, now);
            }
        }
        changed
    }

    /// What [`decide`] needs of connection `conn_index`'s tunnels.
    fn facts_of(&self, conn_index: usize, k: &IkeKeying) -> Vec<(TunnelKey, TunnelFacts)> {
        self.specs_of(conn_index)
            .iter()
            .zip(k.tunnels.iter().map(|t| t.priority))
            .map(|(s, priority)| {
                let key = s.key();
                // Every configured tunnel has a state (made with the config).
                let st = self.tunnels.get(&key);
                let facts = TunnelFacts {
                    priority,
                    up: self.is_up(&key),
                    rx_at: st.and_then(|s| s.seen.rx_at),
                    probing: st
                        .and_then(|s| s.ike)
                        .and_then(|i| self.ep.liveness(i))
                        .is_some_and(|l| l.probing),
                    established_at: st.and_then(|s| s.established_at),
                    failed_at: st.and_then(|s| s.failed_at),
                };
                (key, facts)
            })
            .collect()
    }

    /// Re-decides connection `conn_index`'s tunnels and applies the decision; returns whether
    /// it changed.
    pub(super) fn select(&mut self, conn_index: usize, now: Instant) -> bool {
        #[cfg(test)]
        {
            self.select_visits += 1;
        }
        let c = &self.cfg.connections[conn_index];
        let crate::config::Keying::Ike(k) = &c.keying else {
            return false;
        };
        let name: Arc<str> = c.name.as_str().into();
        let multi = k.tunnels.len() > 1;
        let facts = self.facts_of(conn_index, k);
        let policy = Policy::of(k);
        let before = self
            .selections
            .get(&name)
            .map(|s| s.active.clone())
            .unwrap_or_default();
        let Decision {
            active: next,
            reason,
        } = decide(policy, &facts, &before, now);
        self.selections.entry(name.clone()).or_default();
        if next == before {
            return false;
        }
        if !reason.is_some_and(FailoverReason::is_upgrade) {
            for b in before.iter().filter(|b| !next.contains(b)) {
                if let Some(st) = self.tunnels.get_mut(b) {
                    st.failed_at = Some(now);
                }
            }
        }
        let lost = before.iter().any(|b| !next.contains(b));
        let why = reason.map(|r| r.to_string()).unwrap_or_default();
        match reason {
            // One tunnel: up and down are logged as such; there is nothing to fail over to.
            _ if !multi => {}
            Some(FailoverReason::HigherPriority(_)) => {
                tracing::info!(connection = %name, "traffic on {}: {why}", show(&next));
            }
            Some(FailoverReason::PeerMoved(_)) => {
                // Not a failure of ours: the peer sends on another tunnel (it failed over
                // first, or, like strongSwan, it uses its newest CHILD_SA), so we answer there
                // too.
                self.stats_of(&name).follows += 1;
                tracing::info!(connection = %name, "traffic follows the peer: {} -> {}: {why}", show(&before), show(&next));
            }
            _ if lost && !before.is_empty() => {
                self.stats_of(&name).failovers += 1;
                let text = format!(
                    "{} -> {}{}",
                    show(&before),
                    show(&next),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    }
                );
                tracing::warn!(connection = %name, "failover {text}");
                self.selections
                    .entry(name.clone())
                    .or_default()
                    .last_failover = Some((now, text));
            }
            _ if !next.is_empty() => {
                tracing::info!(connection = %name, active = %show(&next), "traffic on {}", show(&next));
            }
            _ => {}
        }
        // The next look for the peer's moves comes a moment later (as with the 100 ms scan
        // this replaced), so that a peer moving at the same time as we do is heard on its new
        // tunnel first rather than followed back at once.
        let next_look = now + super::probing::REARM_AFTER;
        if self.follow.get(&name).is_some_and(|t| t < next_look) {
            self.follow.set(name.clone(), next_look);
        }
        self.selections.entry(name).or_default().active = next;
        true
    }
}
