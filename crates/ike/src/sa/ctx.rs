//! What one call into an SA may use and produce: the time, the RNG, the config, and the
//! endpoint's output queues, among them [`SaAction`]s, the requests an SA makes of the
//! endpoint (the way quinn-proto's connections hand `EndpointEvent`s to their endpoint).

use std::collections::VecDeque;
use std::time::Instant;

use super::IkeSa;
use crate::config::EndpointConfig;
use crate::crypto::Rng;
use crate::events::{Event, IkeSaId, Transmit};
use crate::stats::EndpointStats;

/// What an SA cannot do itself because it touches other SAs or the SA table: the endpoint
/// carries these out, in order, once the call that queued them returns.
pub(crate) enum SaAction {
    /// A rekey made this IKE SA (RFC 7296 2.18): the endpoint takes it into its table.
    Adopt(Box<IkeSa>),
    /// The peer of `ike` authenticated with INITIAL_CONTACT (RFC 7296 3.16): its older SAs
    /// from the same address are stale, and the endpoint closes them.
    InitialContact { ike: IkeSaId },
    /// Reauthentication of `ike` is due: the endpoint starts its replacement.
    Reauthenticate { ike: IkeSaId },
    /// `by`, which reauthenticates `old`, is up with its CHILD_SAs: now `old` may go
    /// (make-before-break).
    DeleteReplaced { by: IkeSaId, old: IkeSaId },
}

/// The endpoint's output queues, in one place so one [`Ctx`] borrows them all.
#[derive(Default)]
pub(crate) struct Outputs {
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<Event>,
    pub stats: EndpointStats,
    pub actions: VecDeque<SaAction>,
}

/// Everything an SA method may use and produce, borrowed from the endpoint for one call.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub rng: &'a mut dyn Rng,
    pub cfg: &'a EndpointConfig,
    pub transmits: &'a mut VecDeque<Transmit>,
    pub events: &'a mut VecDeque<Event>,
    pub stats: &'a mut EndpointStats,
    pub actions: &'a mut VecDeque<SaAction>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        now: Instant,
        rng: &'a mut dyn Rng,
        cfg: &'a EndpointConfig,
        out: &'a mut Outputs,
    ) -> Ctx<'a> {
        let Outputs {
            transmits,
            events,
            stats,
            actions,
        } = out;
        Ctx {
            now,
            rng,
            cfg,
            transmits,
            events,
            stats,
            actions,
        }
    }
}
