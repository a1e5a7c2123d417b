//! Moments at which something is due, by key, so the event loop learns the next one and
//! handles those due without looking at the keys that have nothing due.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// At most one deadline per key; setting one replaces the key's previous deadline.
#[derive(Debug)]
pub struct Deadlines<K> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: HashMap<K, Instant>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            by_time: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Clone + Ord + Hash> Deadlines<K> {
    /// Sets (or moves) `key`'s deadline.
    pub fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key));
    }

    /// Clears `key`'s deadline, if it had one.
    pub fn clear(&mut self, key: &K) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    /// `key`'s deadline.
    pub fn get(&self, key: &K) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Whether some deadline is at or before `now`.
    pub fn any_due(&self, now: Instant) -> bool {
        self.next().is_some_and(|t| t <= now)
    }

    /// Removes and returns the keys due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((t, _)) = self.by_time.first() {
            if *t > now {
                break;
            }
            if let Some((_, k)) = self.by_time.pop_first() {
                self.by_key.remove(&k);
                due.push(k);
            }
        }
        due
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.by_key.retain(|k, _| keep(k));
        let by_key = &self.by_key;
        self.by_time.retain(|(_, k)| by_key.contains_key(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_keys_come_out_in_order_and_moved_ones_once() {
        let base = Instant::now();
        let at = |ms| base + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        d.set("a", at(30));
        d.set("b", at(10));
        d.set("c", at(20));
        d.set("a", at(5));
        assert_eq!(d.next(), Some(at(5)));
        assert!(!d.any_due(at(4)));
        assert_eq!(d.take_due(at(20)), vec!["a", "b", "c"]);
        assert_eq!(d.next(), None);
        d.set("x", at(50));
        d.clear(&"x");
        assert_eq!(d.get(&"x"), None);
        assert!(d.take_due(at(100)).is_empty());
    }
}
