//! Each IKE SA's next deadline, kept sorted, so the endpoint finds the earliest one and the
//! due ones without visiting every SA: with thousands of idle tunnels, a scan of them all on
//! every timer tick is what an idle gateway would otherwise spend its CPU on.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::events::IkeSaId;

/// The index: `order` sorts (deadline, SA), `at` says where each SA sits in it. An SA with
/// no deadline is in neither.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    order: BTreeSet<(Instant, IkeSaId)>,
    at: HashMap<IkeSaId, Instant>,
}

impl Deadlines {
    /// Records SA `id`'s next deadline (`None`: it has none), replacing what was there.
    /// O(log n).
    pub fn set(&mut self, id: IkeSaId, when: Option<Instant>) {
        let old = match when {
            Some(t) => self.at.insert(id, t),
            None => self.at.remove(&id),
        };
        if old == when {
            return;
        }
        if let Some(o) = old {
            self.order.remove(&(o, id));
        }
        if let Some(t) = when {
            self.order.insert((t, id));
        }
    }

    /// The earliest deadline of all. O(log n).
    pub fn first(&self) -> Option<Instant> {
        self.order.first().map(|(t, _)| *t)
    }

    /// The SAs whose deadline is `now` or earlier, earliest first. O(log n + due).
    pub fn due(&self, now: Instant) -> Vec<IkeSaId> {
        self.order
            .range(..=(now, IkeSaId::MAX))
            .map(|(_, id)| *id)
            .collect()
    }

    /// SA `id`'s recorded deadline.
    #[cfg(any(test, feature = "testkit"))]
    pub fn get(&self, id: IkeSaId) -> Option<Instant> {
        self.at.get(&id).copied()
    }

    #[cfg(any(test, feature = "testkit"))]
    pub fn len(&self) -> usize {
        debug_assert_eq!(self.order.len(), self.at.len());
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_and_due_follow_updates() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        assert_eq!(d.first(), None);
        d.set(1, Some(t0 + s(10)));
        d.set(2, Some(t0 + s(5)));
        d.set(3, Some(t0 + s(5)));
        d.set(4, None);
        assert_eq!(d.len(), 3);
        assert_eq!(d.first(), Some(t0 + s(5)));
        assert_eq!(d.due(t0 + s(4)), Vec::<IkeSaId>::new());
        assert_eq!(d.due(t0 + s(5)), vec![2, 3]);
        // Moving a deadline leaves no trace of the old one.
        d.set(2, Some(t0 + s(20)));
        assert_eq!(d.due(t0 + s(10)), vec![3, 1]);
        assert_eq!(d.get(2), Some(t0 + s(20)));
        d.set(3, None);
        d.set(1, None);
        assert_eq!(d.first(), Some(t0 + s(20)));
        assert_eq!(d.len(), 1);
        d.set(2, None);
        assert_eq!((d.first(), d.len()), (None, 0));
    }
}
