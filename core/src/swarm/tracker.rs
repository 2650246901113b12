//! The tracker (BEP 3): every peer announces itself (started, completed,
//! stopped, or periodically); the tracker remembers who is in the swarm and
//! answers each announce with a bounded random subset of the other peers and
//! the interval after which to announce again.
//!
//! It never sees a piece. Sampling is O(numwant) per announce, so a tracker
//! of a 10,000-peer swarm costs little. A peer not heard from for
//! [`EXPIRY_INTERVALS`] announce intervals (it crashed, or its `stopped`
//! never arrived) is forgotten at the next announce, so the tracker stops
//! handing out peers that are gone; peers re-announce every interval, so a
//! running peer is never forgotten.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::event::{Event, ViolationKind};
use crate::message::{AnnounceEvent, Message};
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::rng::{self, NodeRng};
use crate::time::Time;

/// Most peers one announce gets back, whatever it asks for (BitTorrent
/// trackers commonly cap `numwant` at 200).
pub const MAX_NUMWANT: u32 = 200;

/// Announce intervals after its last announce that a silent peer is
/// forgotten (as common trackers do, e.g. opentracker's 2 intervals).
pub const EXPIRY_INTERVALS: u32 = 2;

/// What the tracker knows of one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    index: usize,
    left: u64,
    /// When it last announced.
    last: Time,
}

/// The tracker node.
#[derive(Debug)]
pub struct Tracker {
    id: NodeId,
    interval: Duration,
    rng: NodeRng,
    /// Peers in the swarm, in a vector for O(1) random access…
    order: Vec<NodeId>,
    /// …and by id…
    entries: BTreeMap<NodeId, Entry>,
    /// …and by last announce, oldest first.
    by_last: BTreeSet<(Time, NodeId)>,
    outbox: Outbox,
}

impl Tracker {
    /// A tracker `id` telling peers to re-announce every `interval`; its
    /// random choices come from `rng::node_rng(seed, id)`.
    pub fn new(id: NodeId, interval: Duration, seed: u64) -> Self {
        Tracker {
            id,
            interval,
            rng: rng::node_rng(seed, id),
            order: Vec::new(),
            entries: BTreeMap::new(),
            by_last: BTreeSet::new(),
            outbox: Outbox::default(),
        }
    }

    /// Number of peers in the swarm.
    pub fn swarm_size(&self) -> usize {
        self.order.len()
    }

    /// Number of peers that announced they hold the whole file.
    pub fn seeds(&self) -> usize {
        self.entries.values().filter(|e| e.left == 0).count()
    }

    fn upsert(&mut self, peer: NodeId, left: u64, now: Time) {
        match self.entries.get_mut(&peer) {
            Some(e) => {
                self.by_last.remove(&(e.last, peer));
                e.left = left;
                e.last = now;
            }
            None => {
                self.entries.insert(
                    peer,
                    Entry {
                        index: self.order.len(),
                        left,
                        last: now,
                    },
                );
                self.order.push(peer);
            }
        }
        self.by_last.insert((now, peer));
    }

    /// Forgets the peers silent for [`EXPIRY_INTERVALS`] intervals by `now`.
    fn expire(&mut self, now: Time) {
        let silent_for = self.interval * EXPIRY_INTERVALS;
        while let Some(&(last, peer)) = self.by_last.first() {
            if now.saturating_since(last) <= silent_for {
                return;
            }
            self.remove(peer);
        }
    }

    fn remove(&mut self, peer: NodeId) {
        let Some(e) = self.entries.remove(&peer) else {
            return;
        };
        self.by_last.remove(&(e.last, peer));
        if let Some(moved) = forget(&mut self.order, e.index)
            && let Some(m) = self.entries.get_mut(&moved)
        {
            m.index = e.index;
        }
    }

    /// Up to `want` distinct peers other than `asker`, uniformly at random.
    fn sample(&mut self, asker: NodeId, want: u32) -> Vec<NodeId> {
        let listed = self.entries.contains_key(&asker);
        sample(&mut self.rng, &self.order, asker, listed, want as usize)
    }
}

/// Forgets the peer at `index` of the swarm's `order` (it announced
/// `Stopped`): the last peer takes its place and is returned. The tracker's
/// rule, also followed by the simulator's pieces model.
pub fn forget<T: Copy>(order: &mut Vec<T>, index: usize) -> Option<T> {
    order.swap_remove(index);
    order.get(index).copied()
}

/// Up to `want` distinct entries of `order` other than `asker` (which is in
/// `order` if `listed`), uniformly at random: the tracker's answer, also
/// drawn by the simulator's pieces model when it wires a swarm.
pub fn sample<T: Copy + Ord>(rng: &mut NodeRng, order: &[T], asker: T, listed: bool, want: usize) -> Vec<T> {
    let others = order.len() - usize::from(listed);
    let want = want.min(others);
    if want * 2 >= others {
        // Dense: shuffle everyone and take a prefix.
        let mut all: Vec<T> = order.iter().copied().filter(|&p| p != asker).collect();
        rng::shuffle(rng, &mut all);
        all.truncate(want);
        return all;
    }
    // Sparse: rejection sampling needs fewer than 2 draws per peer.
    let mut chosen = BTreeSet::new();
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let p = order[rng::below(rng, order.len() as u64) as usize];
        if p != asker && chosen.insert(p) {
            out.push(p);
        }
    }
    out
}

impl Node for Tracker {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, _now: Time) {
        // A restarted tracker has forgotten the swarm; peers re-announce.
        self.order.clear();
        self.entries.clear();
        self.by_last.clear();
        self.outbox.clear();
    }

    fn handle_connection(&mut self, _peer: NodeId, _event: ConnectionEvent, _now: Time) {}

    fn handle_message(&mut self, from: NodeId, msg: Message, now: Time) {
        match msg {
            Message::Announce {
                peer,
                event,
                left,
                numwant,
                ..
            } => {
                if peer != from {
                    // Announcing for someone else: refuse, as trackers that
                    // check the source address do.
                    self.outbox.event(Event::ProtocolViolation {
                        peer: from,
                        reason: ViolationKind::UnexpectedMessage,
                    });
                    self.outbox.command(Command::Disconnect { peer: from });
                    return;
                }
                self.expire(now);
                if event == AnnounceEvent::Stopped {
                    self.remove(peer);
                    return;
                }
                self.upsert(peer, left, now);
                let peers = self.sample(peer, numwant.min(MAX_NUMWANT));
                let interval_s = u32::try_from(self.interval.as_secs()).unwrap_or(u32::MAX).max(1);
                self.outbox
                    .send(from, Message::AnnounceReply { interval_s, peers });
            }
            _ => {
                self.outbox.event(Event::ProtocolViolation {
                    peer: from,
                    reason: ViolationKind::UnexpectedMessage,
                });
                self.outbox.command(Command::Disconnect { peer: from });
            }
        }
    }

    fn handle_storage(&mut self, _result: StorageResult, _now: Time) {}

    fn handle_timeout(&mut self, _now: Time) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sampling on its own (the simulator's pieces model calls it too).
    #[test]
    fn the_tracker_sample_is_distinct_and_never_the_asker() {
        let mut rng = rng::node_rng(7, NodeId(0));
        let announced: Vec<u32> = (0..500).collect();
        for asker in [0, 250, 499] {
            let s = sample(&mut rng, &announced, asker, true, 50);
            let distinct: BTreeSet<u32> = s.iter().copied().collect();
            assert_eq!((s.len(), distinct.len()), (50, 50));
            assert!(!distinct.contains(&asker));
        }
        // Fewer announced than wanted: everyone else.
        let s = sample(&mut rng, &announced[..5], 2, true, 50);
        assert_eq!(
            s.iter().copied().collect::<BTreeSet<u32>>(),
            BTreeSet::from([0, 1, 3, 4])
        );
    }

    fn announce(t: &mut Tracker, peer: u32, event: AnnounceEvent, numwant: u32) -> Option<Vec<NodeId>> {
        announce_at(t, peer, event, numwant, Time::ZERO)
    }

    fn announce_at(
        t: &mut Tracker,
        peer: u32,
        event: AnnounceEvent,
        numwant: u32,
        now: Time,
    ) -> Option<Vec<NodeId>> {
        t.handle_message(
            NodeId(peer),
            Message::Announce {
                peer: NodeId(peer),
                event,
                left: 100,
                uploaded: 0,
                downloaded: 0,
                numwant,
            },
            now,
        );
        let mut reply = None;
        while let Some(o) = t.poll_output() {
            if let Output::Transmit(tr) = o
                && let Message::AnnounceReply { peers, interval_s } = tr.msg
            {
                assert_eq!(tr.to, NodeId(peer));
                assert_eq!(interval_s, 30);
                reply = Some(peers);
            }
        }
        reply
    }

    #[test]
    fn replies_are_bounded_random_subsets_without_the_asker_or_leavers() {
        let mut t = Tracker::new(NodeId(999), Duration::from_secs(30), 7);
        for p in 0..200 {
            announce(&mut t, p, AnnounceEvent::Started, 50);
        }
        let a = announce(&mut t, 5, AnnounceEvent::Periodic, 50).unwrap();
        let b = announce(&mut t, 5, AnnounceEvent::Periodic, 50).unwrap();
        assert_eq!(a.len(), 50);
        assert_ne!(a, b, "subsets are random");
        let distinct: BTreeSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 50);
        assert!(!a.contains(&NodeId(5)));
        for p in 0..190 {
            announce(&mut t, p, AnnounceEvent::Stopped, 50);
        }
        assert_eq!(t.swarm_size(), 10);
        let c = announce(&mut t, 195, AnnounceEvent::Periodic, 50).unwrap();
        assert_eq!(c.len(), 9, "everyone else, fewer than numwant");
        assert!(c.iter().all(|p| p.0 >= 190 && p.0 != 195));
        let capped = announce(&mut t, 1000, AnnounceEvent::Started, 10_000).unwrap();
        assert_eq!(capped.len(), 10);
    }

    /// A peer silent for two intervals is no longer handed out; one that
    /// re-announces within them stays.
    #[test]
    fn peers_silent_for_two_intervals_are_forgotten() {
        let mut t = Tracker::new(NodeId(999), Duration::from_secs(30), 7);
        let s = Time::from_secs;
        announce_at(&mut t, 1, AnnounceEvent::Started, 50, s(0));
        announce_at(&mut t, 2, AnnounceEvent::Started, 50, s(0));
        announce_at(&mut t, 1, AnnounceEvent::Periodic, 50, s(50));
        // 60 s after its announce, peer 2 is still listed...
        let at_60 = announce_at(&mut t, 3, AnnounceEvent::Started, 50, s(60)).unwrap();
        assert_eq!(
            at_60.iter().collect::<BTreeSet<_>>(),
            BTreeSet::from([&NodeId(1), &NodeId(2)])
        );
        // ...and forgotten after that; 1 (51 s ago) and 3 stay.
        let at_61 = announce_at(&mut t, 4, AnnounceEvent::Started, 50, s(61)).unwrap();
        assert_eq!(
            at_61.iter().collect::<BTreeSet<_>>(),
            BTreeSet::from([&NodeId(1), &NodeId(3)])
        );
        assert_eq!(t.swarm_size(), 3);
        // A forgotten peer that announces again is listed again.
        announce_at(&mut t, 2, AnnounceEvent::Periodic, 50, s(70));
        assert_eq!(t.swarm_size(), 4);
    }

    #[test]
    fn same_seed_same_answers() {
        let run = || {
            let mut t = Tracker::new(NodeId(999), Duration::from_secs(30), 3);
            (0..100)
                .map(|p| announce(&mut t, p, AnnounceEvent::Started, 20).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
