//! Downloading a file block by block: which blocks are in flight and from
//! whom, which are stored, when a piece is ready for its hash check, and
//! which pieces count as held. Every downloading node (client-server client,
//! static-tracker peer, swarm peer) keeps one; the piece *choice* (in order,
//! rarest first, …) stays with the protocol.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;
use crate::event::Event;
use crate::node::{Command, Outbox};
use crate::pieces::{Bitfield, BlockRef, PieceLayout};
use crate::vec_map::VecMap;

/// What became of a block that arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// The block is new: store it. `piece_complete` says whether every block
    /// of its piece is now stored, so the piece can be hash-checked.
    Accepted {
        /// Whether the piece is now ready for its hash check.
        piece_complete: bool,
        /// Other peers the same block was also requested from (end game);
        /// their requests should be cancelled.
        also_requested_from: Vec<NodeId>,
    },
    /// The block is already stored or its piece is held or being checked.
    Unwanted,
}

#[derive(Clone, Debug)]
struct Partial {
    /// Who sent each stored block, for blame when the hash fails.
    senders: Vec<Option<NodeId>>,
    stored_count: u32,
}

/// Download state of one file at one node.
#[derive(Clone, Debug)]
pub struct Download {
    layout: PieceLayout,
    have: Bitfield,
    verifying: BTreeSet<u32>,
    partial: BTreeMap<u32, Partial>,
    /// (piece, offset, peer): a request in flight. A few dozen at most
    /// (the pipeline times the neighbours that unchoke us), so a sorted
    /// vector: every block's arrival removes one and looks up its piece.
    in_flight: VecMap<(u32, u32, NodeId), ()>,
    per_peer: BTreeMap<NodeId, u32>,
}

impl Download {
    /// A download of `layout` that already holds the verified pieces `have`
    /// (empty for a fresh start, the on-disk state after a restart).
    pub fn new(layout: PieceLayout, have: Bitfield) -> Self {
        assert_eq!(have.len(), layout.pieces(), "bitfield does not fit the layout");
        Download {
            layout,
            have,
            verifying: BTreeSet::new(),
            partial: BTreeMap::new(),
            in_flight: VecMap::new(),
            per_peer: BTreeMap::new(),
        }
    }

    /// The file's layout.
    pub fn layout(&self) -> &PieceLayout {
        &self.layout
    }

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.have.is_full()
    }

    /// Whether `piece` still needs blocks (not held, not awaiting its check).
    pub fn is_wanted(&self, piece: u32) -> bool {
        piece < self.layout.pieces() && !self.have.contains(piece) && !self.verifying.contains(&piece)
    }

    /// Whether some block of `piece` has been stored but the piece is not
    /// complete yet (finishing such pieces first saves disk seeks and gets
    /// pieces verified sooner).
    pub fn is_partial(&self, piece: u32) -> bool {
        self.partial.contains_key(&piece)
    }

    /// The first block of `piece` that is neither stored nor in flight.
    pub fn next_block_in(&self, piece: u32) -> Option<BlockRef> {
        if !self.is_wanted(piece) {
            return None;
        }
        let partial = self.partial.get(&piece);
        // The piece's requests in flight, by offset: one walk of the set
        // instead of one lookup per block.
        let mut requested = self
            .requests_in(piece)
            .iter()
            .map(|&(_, offset, _)| offset)
            .peekable();
        for i in 0..self.layout.blocks_in(piece) {
            let block = self.layout.block(piece, i);
            while requested.next_if(|&offset| offset < block.offset).is_some() {}
            if requested.peek() == Some(&block.offset)
                || partial.is_some_and(|p| p.senders[i as usize].is_some())
            {
                continue;
            }
            return Some(block);
        }
        None
    }

    /// Whether `block` has been requested from anyone and not arrived yet.
    pub fn is_in_flight(&self, block: BlockRef) -> bool {
        self.requested_from(block).next().is_some()
    }

    /// Whether `piece` is wanted and none of its blocks is stored or in
    /// flight (a piece nobody has started on).
    pub fn is_untouched(&self, piece: u32) -> bool {
        self.is_wanted(piece) && !self.partial.contains_key(&piece) && self.requests_in(piece).is_empty()
    }

    /// The requests in flight for blocks of `piece`, by offset.
    fn requests_in(&self, piece: u32) -> &[(u32, u32, NodeId)] {
        self.in_flight
            .keys_in(&(piece, 0, NodeId(0)), &(piece, u32::MAX, NodeId(u32::MAX)))
    }

    /// The requests in flight for `block`, by peer.
    fn requests_for(&self, block: BlockRef) -> &[(u32, u32, NodeId)] {
        self.in_flight.keys_in(
            &(block.piece, block.offset, NodeId(0)),
            &(block.piece, block.offset, NodeId(u32::MAX)),
        )
    }

    /// Whether `block` is already stored (its piece not yet verified).
    pub fn is_stored(&self, block: BlockRef) -> bool {
        let index = (block.offset / self.layout.block_len()) as usize;
        self.partial
            .get(&block.piece)
            .is_some_and(|p| p.senders.get(index).is_some_and(Option::is_some))
    }

    /// How many peers `block` is requested from right now.
    pub fn in_flight_copies(&self, block: BlockRef) -> u32 {
        self.requested_from(block).count() as u32
    }

    /// The peers `block` is requested from right now.
    pub fn requested_from(&self, block: BlockRef) -> impl Iterator<Item = NodeId> + '_ {
        self.requests_for(block).iter().map(|&(_, _, p)| p)
    }

    /// Whether `block` is requested from `peer` right now.
    pub fn is_requested_from(&self, block: BlockRef, peer: NodeId) -> bool {
        self.in_flight.contains_key(&(block.piece, block.offset, peer))
    }

    /// Number of pieces whose blocks are all stored and await their check.
    pub fn verifying_count(&self) -> u32 {
        self.verifying.len() as u32
    }

    /// Records that `block` was requested from `peer`.
    pub fn mark_requested(&mut self, block: BlockRef, peer: NodeId) {
        if self
            .in_flight
            .insert((block.piece, block.offset, peer), ())
            .is_none()
        {
            *self.per_peer.entry(peer).or_default() += 1;
        }
    }

    /// Number of requests in flight to `peer`.
    pub fn in_flight_to(&self, peer: NodeId) -> u32 {
        self.per_peer.get(&peer).copied().unwrap_or(0)
    }

    /// Withdraws the request for `block` from `peer`; whether it was in
    /// flight.
    pub fn cancel(&mut self, block: BlockRef, peer: NodeId) -> bool {
        self.unmark(block.piece, block.offset, peer)
    }

    fn unmark(&mut self, piece: u32, offset: u32, peer: NodeId) -> bool {
        if self.in_flight.remove(&(piece, offset, peer)).is_none() {
            return false;
        }
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
        true
    }

    /// Forgets every request in flight to `peer` (it disconnected, choked
    /// us or timed out) so the blocks can be asked of someone else; returns
    /// them.
    pub fn forget_peer(&mut self, peer: NodeId) -> Vec<BlockRef> {
        let blocks: Vec<(u32, u32)> = self
            .in_flight
            .keys()
            .filter(|&&(_, _, p)| p == peer)
            .map(|&(piece, offset, _)| (piece, offset))
            .collect();
        for &(piece, offset) in &blocks {
            self.unmark(piece, offset, peer);
        }
        blocks
            .into_iter()
            .map(|(piece, offset)| self.layout.block(piece, offset / self.layout.block_len()))
            .collect()
    }

    /// A block arrived from `from`. The caller has checked that it is one of
    /// the layout's blocks ([`PieceLayout::is_valid_block`]).
    pub fn on_block(&mut self, from: NodeId, block: BlockRef) -> BlockOutcome {
        debug_assert!(self.layout.is_valid_block(block));
        self.unmark(block.piece, block.offset, from);
        if !self.is_wanted(block.piece) {
            return BlockOutcome::Unwanted;
        }
        let blocks = self.layout.blocks_in(block.piece) as usize;
        let index = (block.offset / self.layout.block_len()) as usize;
        let partial = self.partial.entry(block.piece).or_insert_with(|| Partial {
            senders: vec![None; blocks],
            stored_count: 0,
        });
        if partial.senders[index].is_some() {
            return BlockOutcome::Unwanted;
        }
        partial.senders[index] = Some(from);
        partial.stored_count += 1;
        let piece_complete = partial.stored_count as usize == blocks;
        let others: Vec<NodeId> = self.requested_from(block).collect();
        for &p in &others {
            self.unmark(block.piece, block.offset, p);
        }
        if piece_complete {
            self.verifying.insert(block.piece);
        }
        BlockOutcome::Accepted {
            piece_complete,
            also_requested_from: others,
        }
    }

    /// Takes in a block that arrived from `from` (already checked to be one
    /// of the layout's blocks) and queues what every downloader does with
    /// it: `StoreBlock`, `BlockReceived` and, once its piece is complete,
    /// `VerifyPiece`; or `BlockDiscarded` when it was not needed. Returns the
    /// outcome for the protocol's own follow-up (acks, cancels, requests).
    pub fn receive(&mut self, from: NodeId, block: BlockRef, outbox: &mut Outbox) -> BlockOutcome {
        let outcome = self.on_block(from, block);
        match &outcome {
            BlockOutcome::Accepted { piece_complete, .. } => {
                outbox.command(Command::StoreBlock { from, block });
                outbox.event(Event::BlockReceived { from, block });
                if *piece_complete {
                    outbox.command(Command::VerifyPiece { piece: block.piece });
                }
            }
            BlockOutcome::Unwanted => outbox.event(Event::BlockDiscarded { from, block }),
        }
        outcome
    }

    /// Storage finished the hash check of `piece`. On success the piece is
    /// held; on failure its blocks are forgotten so they are fetched again.
    /// Returns the peers that contributed blocks to the piece.
    pub fn on_verified(&mut self, piece: u32, ok: bool) -> BTreeSet<NodeId> {
        let was_verifying = self.verifying.remove(&piece);
        let sources = self
            .partial
            .remove(&piece)
            .map(|p| p.senders.into_iter().flatten().collect())
            .unwrap_or_default();
        if ok && was_verifying {
            self.have.insert(piece);
        }
        sources
    }

    /// Who sent each block of `piece`, in block order, while it waits for
    /// its hash check (empty otherwise).
    pub fn block_senders(&self, piece: u32) -> Vec<NodeId> {
        match self.partial.get(&piece) {
            Some(p) if self.verifying.contains(&piece) => p.senders.iter().flatten().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// Forgets the stored blocks of `piece` (storage failed to keep them).
    pub fn drop_piece(&mut self, piece: u32) {
        self.verifying.remove(&piece);
        self.partial.remove(&piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> PieceLayout {
        PieceLayout::new(40_000, 32_768, 16_384).unwrap()
    }

    #[test]
    fn a_piece_is_held_only_after_every_block_and_a_good_hash() {
        let l = layout();
        let mut d = Download::new(l, Bitfield::new(l.pieces()));
        let a = NodeId(1);
        let b0 = d.next_block_in(0).unwrap();
        d.mark_requested(b0, a);
        let b1 = d.next_block_in(0).unwrap();
        assert_ne!(b0, b1);
        d.mark_requested(b1, a);
        assert_eq!(d.next_block_in(0), None, "both blocks in flight");
        assert_eq!(d.in_flight_to(a), 2);
        assert!(matches!(
            d.on_block(a, b0),
            BlockOutcome::Accepted {
                piece_complete: false,
                ..
            }
        ));
        assert_eq!(d.on_block(a, b0), BlockOutcome::Unwanted, "duplicate");
        assert!(matches!(
            d.on_block(a, b1),
            BlockOutcome::Accepted {
                piece_complete: true,
                ..
            }
        ));
        assert!(!d.is_wanted(0), "awaiting its hash check");
        assert!(!d.have().contains(0));
        d.on_verified(0, true);
        assert!(d.have().contains(0));
        assert_eq!(d.in_flight_to(a), 0);
    }

    proptest::proptest! {
        /// Whatever has been requested, cancelled and stored, the block
        /// `next_block_in` offers is the first one of its piece that is
        /// neither stored nor in flight.
        #[test]
        fn next_block_in_is_the_first_block_neither_stored_nor_in_flight(
            ops in proptest::collection::vec((0u8..3, 0u32..3, 0u32..5, 1u32..4), 0..60),
        ) {
            // 3 pieces of 5 blocks, the last one short.
            let l = PieceLayout::new(2 * 5 * 16_384 + 3 * 16_384 + 100, 5 * 16_384, 16_384).unwrap();
            let mut d = Download::new(l, Bitfield::new(l.pieces()));
            for (kind, piece, index, peer) in ops {
                if index >= l.blocks_in(piece) {
                    continue;
                }
                let (block, peer) = (l.block(piece, index), NodeId(peer));
                match kind {
                    0 => d.mark_requested(block, peer),
                    1 => {
                        d.cancel(block, peer);
                    }
                    _ => {
                        d.on_block(peer, block);
                    }
                }
                for p in 0..l.pieces() {
                    let expected = if d.is_wanted(p) {
                        (0..l.blocks_in(p))
                            .map(|i| l.block(p, i))
                            .find(|&b| !d.is_stored(b) && !d.is_in_flight(b))
                    } else {
                        None
                    };
                    proptest::prop_assert_eq!(d.next_block_in(p), expected);
                }
            }
        }
    }

    #[test]
    fn a_corrupt_piece_is_fetched_again_and_blames_its_sources() {
        let l = layout();
        let mut d = Download::new(l, Bitfield::new(l.pieces()));
        let last = l.block(1, 0);
        d.mark_requested(last, NodeId(7));
        assert!(matches!(
            d.on_block(NodeId(7), last),
            BlockOutcome::Accepted {
                piece_complete: true,
                ..
            }
        ));
        let blamed = d.on_verified(1, false);
        assert_eq!(blamed.into_iter().collect::<Vec<_>>(), vec![NodeId(7)]);
        assert!(!d.have().contains(1));
        assert_eq!(d.next_block_in(1), Some(last));
    }

    #[test]
    fn forgetting_a_peer_frees_its_blocks_and_end_game_duplicates_are_reported() {
        let l = layout();
        let mut d = Download::new(l, Bitfield::new(l.pieces()));
        let b = l.block(0, 0);
        d.mark_requested(b, NodeId(1));
        d.mark_requested(b, NodeId(2));
        assert_eq!(d.forget_peer(NodeId(1)), vec![b]);
        assert!(d.is_in_flight(b), "still asked of peer 2");
        d.mark_requested(b, NodeId(3));
        match d.on_block(NodeId(3), b) {
            BlockOutcome::Accepted {
                also_requested_from, ..
            } => {
                assert_eq!(also_requested_from, vec![NodeId(2)])
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(d.in_flight_to(NodeId(2)), 0);
    }
}
