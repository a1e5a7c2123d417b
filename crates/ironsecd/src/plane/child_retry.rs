//! A CHILD_SA the peer refused (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, ...) at IKE_AUTH leaves
//! an IKE SA up with nothing to send on. The engine reports it
//! ([`ironsec_ike::Event::ChildSaRefused`]) and leaves the decision here: the tunnel starts a
//! new IKE SA after a backoff ([`backoff`]: 5 s doubling to 5 min), until a CHILD_SA comes up
//! or the operator terminates the connection. Status shows the refusal and the next try.
//!
//! A refused rekey (CREATE_CHILD_SA) is the engine's to retry while the old SA lives; it is
//! recorded here for status, and if the old SA reaches its hard lifetime before a rekey
//! succeeds (a PFS group the peer no longer takes, say) the tunnel is in the same place as
//! after a refusal at IKE_AUTH and takes the same way out.
//!
//! Why a new IKE SA and not a CREATE_CHILD_SA on the existing one: the refusal usually comes
//! from the peer's config, and peers judge a CREATE_CHILD_SA by the config their IKE SA was
//! authenticated with. strongSwan, for one, keeps the old connection for an established IKE SA
//! after `swanctl --load-conns`, so only a new IKE SA sees the fixed proposals.

use std::time::{Duration, Instant};

use ironsec_ike::wire::NotifyType;
use ironsec_ike::IkeSaId;

use super::Plane;
use crate::tables::TunnelKey;

/// The first retry's delay.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest delay between retries.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// The delay before try number `refusals + 1`, after `refusals` refusals in a row (>= 1):
/// [`FIRST_RETRY`] doubled per refusal, at most [`MAX_RETRY`].
pub fn backoff(refusals: u32) -> Duration {
    let doublings = refusals.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY)
}

/// What was refused, for status and the retry. When the next try is: the plane's deadline
/// (`Plane::child_retry_at`) for a new IKE SA, `rekey_retry_at` for the engine's rekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRefusal {
    /// The peer's error notify (or ours, when its answer was unusable).
    pub notify: NotifyType,
    pub detail: String,
    /// When the last refusal came.
    pub at: Instant,
    /// Refusals in a row; a CHILD_SA that comes up (or is rekeyed) clears the record.
    pub refusals: u32,
    /// The IKE SA that got the last refusal: a retry replaces it.
    pub ike: IkeSaId,
    /// The refusal was of a rekey, which the engine tries again then while the old SA lives.
    pub rekey_retry_at: Option<Instant>,
}

impl Plane {
    /// The CHILD_SA that IKE SA `ike` asked for was refused: record it and, unless it was a
    /// rekey (`rekey_retry_at`: the engine's next try), schedule a new IKE SA for its tunnel.
    pub(super) fn on_child_refused(
        &mut self,
        conn: &str,
        ike: IkeSaId,
        (notify, detail): (NotifyType, String),
        rekey_retry_at: Option<Instant>,
        now: Instant,
    ) {
        let Some(key) = self.tunnel_of_ike(ike) else {
            return;
        };
        if self.tunnels.get(&key).is_none_or(|st| st.held) {
            return;
        }
        if rekey_retry_at.is_some() {
            self.stats_of(conn).child_rekey_failures += 1;
        }
        let Some(st) = self.tunnels.get_mut(&key) else {
            return;
        };
        let refusals = st.child_refused.as_ref().map_or(0, |r| r.refusals) + 1;
        if let Some(retry) = rekey_retry_at {
            tracing::warn!(
                connection = %conn,
                remote = %key.remote,
                notify = %notify,
                refusals,
                retry_in_secs = retry.saturating_duration_since(now).as_secs(),
                "CHILD_SA rekey refused: {detail}; the old SA carries on, the rekey will try again"
            );
        }
        st.child_refused = Some(ChildRefusal {
            notify,
            detail: detail.clone(),
            at: now,
            refusals,
            ike,
            rekey_retry_at,
        });
        if rekey_retry_at.is_none() {
            let delay = backoff(refusals);
            tracing::warn!(
                connection = %conn,
                remote = %key.remote,
                notify = %notify,
                refusals,
                retry_in_secs = delay.as_secs(),
                "CHILD_SA refused: {detail}; a new IKE SA will try again"
            );
            self.child_retries.set(key, now + delay);
        }
    }

    /// A CHILD_SA of IKE SA `ike` expired. If its rekeys were refused and the tunnel has no
    /// other SA to send on, the IKE SA is of no use any more: a new one starts at once (the
    /// peer did accept this CHILD_SA at IKE_AUTH, and the tunnel is down until then); if that
    /// one is refused too, the backoff of a refusal at IKE_AUTH follows.
    pub(super) fn on_child_expired(&mut self, key: &TunnelKey, ike: IkeSaId, now: Instant) {
        if self.is_up(key) {
            return;
        }
        let Some(st) = self.tunnels.get_mut(key) else {
            return;
        };
        let Some(r) = st.child_refused.as_mut() else {
            return;
        };
        if st.held || r.ike != ike || st.ike != Some(ike) {
            return;
        }
        r.rekey_retry_at = None;
        tracing::warn!(
            connection = %key.conn,
            remote = %key.remote,
            notify = %r.notify,
            refusals = r.refusals,
            "CHILD_SA expired, its rekeys refused; a new IKE SA tries again now"
        );
        self.child_retries.set(key.clone(), now);
    }

    /// A CHILD_SA came up on `key`: nothing left to retry.
    pub(super) fn child_accepted(&mut self, key: &TunnelKey) {
        self.child_retries.clear(key);
        if let Some(st) = self.tunnels.get_mut(key) {
            st.child_refused = None;
        }
    }

    /// Tunnels whose retry is due: the IKE SA that got the refusal is deleted and a new one
    /// started (its IKE_AUTH carries the CHILD_SA again). A tunnel whose IKE SA has been
    /// replaced meanwhile (lost and restarted, terminated) is left to what replaced it.
    pub(super) fn retry_refused_children(&mut self, now: Instant) {
        for key in self.child_retries.take_due(now) {
            let Some(st) = self.tunnels.get(&key) else {
                continue;
            };
            let Some(refusal) = st.child_refused.as_ref() else {
                continue;
            };
            if st.held || st.ike != Some(refusal.ike) || self.is_up(&key) {
                continue;
            }
            let old = refusal.ike;
            let Some(&ci) = self.by_name.get(&key.conn) else {
                continue;
            };
            let Some(spec) = self.specs_of(ci).iter().find(|s| s.key() == key).cloned() else {
                continue;
            };
            if let Err(e) = self.ep.terminate(now, old) {
                tracing::debug!(connection = %key.conn, error = %e, "delete the IKE SA without a CHILD_SA");
            }
            if let Some(st) = self.tunnels.get_mut(&key) {
                st.established_at = None;
                self.set_ike(&key, None);
            }
            self.initiate_tunnel(&spec, now, "retry after a refused CHILD_SA");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_5s_to_5min() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_RETRY);
    }
}
