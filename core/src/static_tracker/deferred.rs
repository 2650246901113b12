//! What an owner does when asked for a block of a piece it does not hold
//! yet: it keeps the request here until the piece has been fetched from the
//! server and has passed its hash check, then answers it.
//!
//! The queue is bounded by construction: a request is a (requester, block)
//! pair kept in a set, so repeating it adds nothing, and only the owner's
//! own pieces are ever deferred — at most (peers x blocks owned) entries.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;
use crate::pieces::BlockRef;

/// Requests waiting for pieces the owner is still fetching.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deferred {
    waiting: BTreeMap<u32, BTreeSet<(NodeId, BlockRef)>>,
}

impl Deferred {
    /// `peer` asked for `block`, whose piece is not held yet.
    pub(crate) fn defer(&mut self, peer: NodeId, block: BlockRef) {
        self.waiting.entry(block.piece).or_default().insert((peer, block));
    }

    /// `peer` no longer wants `block`.
    pub(crate) fn cancel(&mut self, peer: NodeId, block: BlockRef) {
        if let Some(w) = self.waiting.get_mut(&block.piece) {
            w.remove(&(peer, block));
            if w.is_empty() {
                self.waiting.remove(&block.piece);
            }
        }
    }

    /// `peer` went away: forget everything it asked for.
    pub(crate) fn forget_peer(&mut self, peer: NodeId) {
        self.waiting.retain(|_, w| {
            w.retain(|&(p, _)| p != peer);
            !w.is_empty()
        });
    }

    /// `piece` is held now: the requests to answer, by requester and block.
    pub(crate) fn take(&mut self, piece: u32) -> BTreeSet<(NodeId, BlockRef)> {
        self.waiting.remove(&piece).unwrap_or_default()
    }

    /// Forgets every request.
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
    }
}
