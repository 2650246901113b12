//! The simulator's event queue: events ordered by (time, sequence number).
//!
//! A binary heap alone does it, but most events of a swarm are due at the
//! very instant they are scheduled: with no latency configured every control
//! message is delivered at once, and every verified piece sends a `Have` to
//! each neighbour. Those go to a FIFO beside the heap instead, as long as the
//! FIFO stays in (time, sequence) order, which it does because sequence
//! numbers grow; the next event is the smaller of the two heads. The order
//! events come out in is exactly the heap's, so runs and their trace hashes
//! do not change; only the heap's `log n` work per event goes.
//!
//! The heap itself holds only keys (time, sequence, slot): 24 bytes to move
//! per level of a sift instead of the whole event; the events wait in a slab
//! of slots reused as they are taken.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use peerlab_core::Time;

#[derive(Debug)]
struct Entry<E> {
    at: Time,
    seq: u64,
    event: E,
}

impl<E> Entry<E> {
    fn key(&self) -> (Time, u64) {
        (self.at, self.seq)
    }
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Events in (time, sequence) order. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct EventQueue<E> {
    /// Keys of the events due later; `event` is the slot holding it.
    heap: BinaryHeap<Reverse<Entry<u32>>>,
    slots: Vec<Option<E>>,
    /// Slots emptied by `pop`, to fill again.
    free: Vec<u32>,
    /// Events due at one instant, in sequence order.
    now: VecDeque<Entry<E>>,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            now: VecDeque::new(),
        }
    }

    /// Adds `event`, due at `at`, taken after every event due at `at` with
    /// a smaller `seq` (sequence numbers are unique).
    pub(crate) fn push(&mut self, at: Time, seq: u64, event: E) {
        let entry = Entry { at, seq, event };
        let fits = match (self.now.front(), self.now.back()) {
            (Some(front), Some(back)) => front.at == at && back.seq < seq,
            _ => self.heap.peek().is_none_or(|Reverse(h)| h.at >= at),
        };
        if fits {
            self.now.push_back(entry);
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry.event);
                slot
            }
            None => {
                self.slots.push(Some(entry.event));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 events waiting")
            }
        };
        self.heap.push(Reverse(Entry { at, seq, event: slot }));
    }

    /// When the next event is due.
    pub(crate) fn next_at(&self) -> Option<Time> {
        let fifo = self.now.front().map(|e| e.at);
        let heap = self.heap.peek().map(|Reverse(e)| e.at);
        fifo.into_iter().chain(heap).min()
    }

    /// The next event, when it is due and its sequence number.
    pub(crate) fn pop(&mut self) -> Option<(Time, u64, E)> {
        if self.head_is_fifo()? {
            let entry = self.now.pop_front()?;
            return Some((entry.at, entry.seq, entry.event));
        }
        let key = self.heap.pop()?.0;
        let event = self.slots[key.event as usize]
            .take()
            .expect("a heap key's slot holds its event");
        self.free.push(key.event);
        Some((key.at, key.seq, event))
    }

    /// Events waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len() + self.now.len()
    }

    /// Whether the next event is the FIFO's (`None`: no event at all).
    fn head_is_fifo(&self) -> Option<bool> {
        match (self.now.front(), self.heap.peek()) {
            (Some(f), Some(Reverse(h))) => Some(f.key() < h.key()),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// One step of a run: push an event `dt` ns after the last one popped
    /// (often 0: due at once), push one ahead of everything due then
    /// (`first`), or pop.
    #[derive(Clone, Debug)]
    enum Op {
        Push { dt: u64 },
        PushFirst,
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop_oneof![Just(0u64), 0u64..5, 0u64..1000].prop_map(|dt| Op::Push { dt }),
            1 => Just(Op::PushFirst),
            3 => Just(Op::Pop),
        ]
    }

    proptest! {
        /// The queue hands out events in exactly the order a plain heap
        /// ordered by (time, sequence) does, the engine's way of scheduling
        /// included: ordinary events get growing sequence numbers, events
        /// "first" at the current instant get small ones.
        #[test]
        fn pops_in_the_order_of_a_plain_heap(ops in proptest::collection::vec(op(), 1..400)) {
            let mut q = EventQueue::new();
            let mut reference: BinaryHeap<Reverse<(Time, u64)>> = BinaryHeap::new();
            let (mut now, mut seq, mut first) = (Time::ZERO, 1_000_000u64, 0u64);
            for op in ops {
                match op {
                    Op::Push { dt } => {
                        seq += 1;
                        let at = now + Duration::from_nanos(dt);
                        q.push(at, seq, seq);
                        reference.push(Reverse((at, seq)));
                    }
                    Op::PushFirst => {
                        first += 1;
                        q.push(now, first, first);
                        reference.push(Reverse((now, first)));
                    }
                    Op::Pop => {
                        let want = reference.pop().map(|Reverse(k)| k);
                        prop_assert_eq!(q.next_at(), want.map(|(at, _)| at));
                        let got = q.pop();
                        if let Some((_, seq, event)) = got {
                            prop_assert_eq!(event, seq, "an event comes out with its own key");
                        }
                        let got = got.map(|(at, seq, _)| (at, seq));
                        prop_assert_eq!(got, want);
                        if let Some((at, _)) = got {
                            now = at;
                        }
                    }
                }
                prop_assert_eq!(q.len(), reference.len());
            }
            while let Some(Reverse(want)) = reference.pop() {
                prop_assert_eq!(q.pop(), Some((want.0, want.1, want.1)));
            }
            prop_assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn events_due_at_once_bypass_the_heap() {
        let mut q = EventQueue::new();
        let t = Time::ZERO + Duration::from_secs(1);
        q.push(t, 1, 'a');
        q.push(t + Duration::from_secs(1), 2, 'z');
        q.push(t, 3, 'b');
        q.push(t, 4, 'c');
        assert_eq!(q.now.len(), 3, "the three events due at t wait in the FIFO");
        assert_eq!(q.heap.len(), 1);
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, _, e)| e)).collect();
        assert_eq!(order, ['a', 'b', 'c', 'z']);
    }
}
