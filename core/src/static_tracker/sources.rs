//! Where a peer fetches each piece it still needs, and in which order: from
//! the piece's owner, or from the server for the pieces the peer owns itself
//! and for those of owners it has given up on (the fallback).
//!
//! The server queue is ordered by [`Priority`]: pieces other peers are
//! already waiting for come first, then the rest of the peer's own pieces
//! (others will ask for them soon), then fallback pieces only this peer
//! needs. Each owner's queue is in piece order.

use std::collections::{BTreeMap, BTreeSet};

use super::TrackerFile;
use crate::NodeId;
use crate::pieces::Bitfield;

/// The order in which pieces are fetched from one source (lowest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    /// An owned piece another peer has asked this peer for.
    Awaited,
    /// An owned piece nobody has asked for yet.
    Owned,
    /// Someone else's piece: fetched from its owner, or from the server
    /// once the owner was given up on.
    Other,
}

/// The pieces still to fetch, grouped by the source they come from.
#[derive(Clone, Debug)]
pub(crate) struct Sources {
    server: NodeId,
    queues: BTreeMap<NodeId, BTreeSet<(Priority, u32)>>,
    /// Reverse index: piece -> (source, priority).
    index: BTreeMap<u32, (NodeId, Priority)>,
    /// Owners given up on; never asked again.
    lost: BTreeSet<NodeId>,
}

impl Sources {
    /// The sources of every piece `me` lacks (`have` holds the verified
    /// pieces): owned pieces and pieces the tracker gives to the server come
    /// from the server, the others from their owners.
    pub(crate) fn new(me: NodeId, server: NodeId, tracker: &TrackerFile, have: &Bitfield) -> Self {
        let mut s = Sources {
            server,
            queues: BTreeMap::new(),
            index: BTreeMap::new(),
            lost: BTreeSet::new(),
        };
        for piece in (0..tracker.pieces()).filter(|&p| !have.contains(p)) {
            let owner = tracker.owner_of(piece).unwrap_or(server);
            let entry = match owner {
                o if o == me => (server, Priority::Owned),
                o => (o, Priority::Other),
            };
            s.insert(piece, entry);
        }
        s
    }

    fn insert(&mut self, piece: u32, (source, priority): (NodeId, Priority)) {
        self.queues.entry(source).or_default().insert((priority, piece));
        self.index.insert(piece, (source, priority));
    }

    fn remove(&mut self, piece: u32) -> Option<(NodeId, Priority)> {
        let (source, priority) = self.index.remove(&piece)?;
        if let Some(q) = self.queues.get_mut(&source) {
            q.remove(&(priority, piece));
            if q.is_empty() {
                self.queues.remove(&source);
            }
        }
        Some((source, priority))
    }

    /// The pieces to fetch from `source`, in the order to fetch them.
    pub(crate) fn pieces_from(&self, source: NodeId) -> impl Iterator<Item = u32> + '_ {
        self.queues
            .get(&source)
            .into_iter()
            .flatten()
            .map(|&(_, piece)| piece)
    }

    /// Whether anything is left to fetch from `source`.
    pub(crate) fn wants_from(&self, source: NodeId) -> bool {
        self.queues.contains_key(&source)
    }

    /// Every source other than the server with pieces left to fetch.
    pub(crate) fn owners(&self) -> impl Iterator<Item = NodeId> + '_ {
        let server = self.server;
        self.queues.keys().copied().filter(move |&s| s != server)
    }

    /// The source `piece` is fetched from, `None` once it is held.
    pub(crate) fn source_of(&self, piece: u32) -> Option<NodeId> {
        self.index.get(&piece).map(|&(source, _)| source)
    }

    /// Another peer asked for owned `piece`: fetch it before the others.
    pub(crate) fn awaited(&mut self, piece: u32) {
        if let Some(&(source, Priority::Owned)) = self.index.get(&piece) {
            self.remove(piece);
            self.insert(piece, (source, Priority::Awaited));
        }
    }

    /// `piece` is held: nothing more to fetch for it.
    pub(crate) fn done(&mut self, piece: u32) {
        self.remove(piece);
    }

    /// Gives up on `owner` for good: its pieces now come from the server.
    /// Returns whether it was the source of any piece still needed.
    pub(crate) fn give_up(&mut self, owner: NodeId) -> bool {
        if owner == self.server || !self.lost.insert(owner) {
            return false;
        }
        let Some(queue) = self.queues.remove(&owner) else {
            return false;
        };
        for (_, piece) in queue {
            self.index.remove(&piece);
            self.insert(piece, (self.server, Priority::Other));
        }
        true
    }

    /// Whether `owner` was given up on.
    pub(crate) fn is_lost(&self, owner: NodeId) -> bool {
        self.lost.contains(&owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awaited_pieces_jump_the_server_queue_and_lost_owners_fall_back_to_it() {
        let (server, me, other) = (NodeId(0), NodeId(1), NodeId(2));
        let tracker = TrackerFile::round_robin(6, &[me, other]);
        let mut have = Bitfield::new(6);
        have.insert(0);
        let mut s = Sources::new(me, server, &tracker, &have);
        assert_eq!(s.pieces_from(server).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(s.pieces_from(other).collect::<Vec<_>>(), vec![1, 3, 5]);
        s.awaited(4);
        s.awaited(3); // not ours: no effect
        assert_eq!(s.pieces_from(server).collect::<Vec<_>>(), vec![4, 2]);
        s.done(3);
        assert!(s.give_up(other));
        assert!(!s.give_up(other), "only once");
        assert!(s.is_lost(other));
        assert_eq!(s.pieces_from(server).collect::<Vec<_>>(), vec![4, 2, 1, 5]);
        assert_eq!(s.owners().count(), 0);
        assert_eq!(s.source_of(5), Some(server));
        for p in [1, 2, 4, 5] {
            s.done(p);
        }
        assert!(!s.wants_from(server));
    }
}
