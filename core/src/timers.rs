//! A small timer table keyed by an enum: each key holds at
//! most one deadline; `next` is the earliest; expiring is idempotent, so
//! handling a timeout early or twice is harmless.

use crate::Time;
use crate::vec_map::VecMap;

/// Deadlines keyed by `K`.
///
/// Most nodes have a handful of timers (a static-tracker peer adds one per
/// owner that refused it), so the table is a [`VecMap`]: the earliest
/// deadline, asked for after every input the node handles, is a scan of
/// adjacent entries rather than a walk of a tree (the tree's was a scan of
/// every entry too).
#[derive(Clone, Debug)]
pub struct Timers<K: Ord + Copy> {
    deadlines: VecMap<K, Time>,
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            deadlines: VecMap::new(),
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
        if !self.deadlines.contains_key(&key) {
            self.deadlines.insert(key, at);
        }
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

    #[test]
    fn a_key_holds_one_deadline_that_moves_or_stays() {
        let mut t = Timers::default();
        t.set(T::B, Time::from_secs(3));
        t.set_if_unset(T::B, Time::from_secs(1));
        assert_eq!(
            t.get(T::B),
            Some(Time::from_secs(3)),
            "set_if_unset keeps the deadline"
        );
        t.set(T::B, Time::from_secs(4));
        t.set_if_unset(T::A, Time::from_secs(5));
        assert_eq!(t.next(), Some(Time::from_secs(4)), "set moves it");
        t.cancel(T::B);
        assert!(!t.is_set(T::B));
        assert_eq!(t.next(), Some(Time::from_secs(5)));
        assert_eq!(t.expire(Time::from_secs(4)), Vec::<T>::new());
        assert_eq!(t.expire(Time::from_secs(5)), vec![T::A]);
    }
}
