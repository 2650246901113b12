//! A small timer table keyed by an enum (STYLE.md rule 4): each key holds at
//! most one deadline; `next` is the earliest; expiring is idempotent, so
//! handling a timeout early or twice is harmless.

use std::collections::BTreeMap;

use crate::Time;

/// Deadlines keyed by `K`.
#[derive(Clone, Debug)]
pub struct Timers<K: Ord + Copy> {
    deadlines: BTreeMap<K, Time>,
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            deadlines: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> Timers<K> {
    /// Sets (or moves) the deadline of `key`.
    pub fn set(&mut self, key: K, at: Time) {
        self.deadlines.insert(key, at);
    }

    /// Sets the deadline of `key` unless it already has one.
    pub fn set_if_unset(&mut self, key: K, at: Time) {
        self.deadlines.entry(key).or_insert(at);
    }

    /// Removes the deadline of `key`.
    pub fn cancel(&mut self, key: K) {
        self.deadlines.remove(&key);
    }

    /// Whether `key` has a deadline.
    pub fn is_set(&self, key: K) -> bool {
        self.deadlines.contains_key(&key)
    }

    /// The deadline of `key`, if it has one.
    pub fn get(&self, key: K) -> Option<Time> {
        self.deadlines.get(&key).copied()
    }

    /// The earliest deadline of all.
    pub fn next(&self) -> Option<Time> {
        self.deadlines.values().copied().min()
    }

    /// Removes and returns every key whose deadline is at or before `now`,
    /// in key order.
    pub fn expire(&mut self, now: Time) -> Vec<K> {
        let due: Vec<K> = self
            .deadlines
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(&k, _)| k)
            .collect();
        for k in &due {
            self.deadlines.remove(k);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum T {
        A,
        B,
    }

    #[test]
    fn expiry_is_idempotent_and_ordered() {
        let mut t = Timers::default();
        t.set(T::B, Time::from_secs(1));
        t.set(T::A, Time::from_secs(2));
        assert_eq!(t.next(), Some(Time::from_secs(1)));
        assert!(t.expire(Time::ZERO).is_empty());
        assert_eq!(t.expire(Time::from_secs(5)), vec![T::A, T::B]);
        assert!(t.expire(Time::from_secs(5)).is_empty());
        assert_eq!(t.next(), None);
    }
}
