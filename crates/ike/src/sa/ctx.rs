//! What one call into an SA may use and produce: the time, the RNG, the config, and the
//! endpoint's output queues, among them [`SaAction`]s, the requests an SA makes of the
//! endpoint (the way quinn-proto's connections hand `EndpointEvent`s to their endpoint).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::IkeSa;
use crate::config::EndpointConfig;
use crate::crypto::Rng;
use crate::events::{Event, IkeSaId, Transmit};
use crate::pool::AddressPool;
use crate::stats::EndpointStats;

/// What an SA cannot do itself because it touches other SAs or the SA table: the endpoint
/// carries these out, in order, once the call that queued them returns.
pub(crate) enum SaAction {
    /// A rekey made this IKE SA (RFC 7296 2.18): the endpoint takes it into its table.
    Adopt(Box<IkeSa>),
    /// The peer of `ike` authenticated with INITIAL_CONTACT (RFC 7296 3.16): its older SAs
    /// from the same address are stale, and the endpoint closes them.
    /// A peer's IKE SA came up by IKE_AUTH (we responded): its connection's `unique` policy
    /// applies to the other IKE SAs of its identity.
    Unique { ike: IkeSaId, initial_contact: bool },
    /// Reauthentication of `ike` is due: the endpoint starts its replacement.
    Reauthenticate { ike: IkeSaId },
    /// `by`, which reauthenticates `old`, is up with its CHILD_SAs: now `old` may go
    /// (make-before-break).
    DeleteReplaced { by: IkeSaId, old: IkeSaId },
}

/// The endpoint's output queues, and the shared state SAs change (the virtual IP pools), in
/// one place so one [`Ctx`] borrows them all.
#[derive(Default)]
pub(crate) struct Outputs {
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<Event>,
    pub stats: EndpointStats,
    pub actions: VecDeque<SaAction>,
    /// Each remote-access connection's address pools, by connection name: at most one per
    /// family.
    pub pools: HashMap<Arc<str>, Vec<AddressPool>>,
    /// Failed EAP logins per source and per user (password guessing limits).
    pub auth: crate::authlimit::AuthLimiter,
}

/// Wall-clock time for certificate validity, handed in by the owner
/// ([`crate::Endpoint::set_wall_clock`]) as "at monotonic instant `t`, Unix time was `u`":
/// the engine reads no clock, and a certificate check at `now` is `u + (now - t)`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WallClock {
    anchor: Option<(Instant, i64)>,
}

impl WallClock {
    pub fn set(&mut self, at: Instant, unix: i64) {
        self.anchor = Some((at, unix));
    }

    /// Unix seconds at `now`; None until the owner set the clock.
    pub fn unix_at(&self, now: Instant) -> Option<i64> {
        let (at, unix) = self.anchor?;
        let ahead = now.saturating_duration_since(at).as_secs() as i64;
        let behind = at.saturating_duration_since(now).as_secs() as i64;
        Some(unix + ahead - behind)
    }
}

/// Everything an SA method may use and produce, borrowed from the endpoint for one call.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    /// Unix seconds at `now`, if the owner gave a wall clock: certificates are checked
    /// against it, and refused without it.
    pub unix: Option<i64>,
    pub rng: &'a mut dyn Rng,
    pub cfg: &'a EndpointConfig,
    pub transmits: &'a mut VecDeque<Transmit>,
    pub events: &'a mut VecDeque<Event>,
    pub stats: &'a mut EndpointStats,
    pub actions: &'a mut VecDeque<SaAction>,
    pub pools: &'a mut HashMap<Arc<str>, Vec<AddressPool>>,
    pub auth: &'a mut crate::authlimit::AuthLimiter,
}

impl<'a> Ctx<'a> {
    pub fn new(
        now: Instant,
        clock: WallClock,
        rng: &'a mut dyn Rng,
        cfg: &'a EndpointConfig,
        out: &'a mut Outputs,
    ) -> Ctx<'a> {
        let Outputs {
            transmits,
            events,
            stats,
            actions,
            pools,
            auth,
        } = out;
        Ctx {
            now,
            unix: clock.unix_at(now),
            rng,
            cfg,
            transmits,
            events,
            stats,
            actions,
            pools,
            auth,
        }
    }
}
