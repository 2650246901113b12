//! Super-seeding (after BEP 16): the initial seed hides its bitfield and
//! offers each neighbour it unchokes a few pieces (by `Have`) that it has
//! never offered anyone, so that no piece is sent twice before every piece
//! has left the seed once — the seed's upload, the scarcest resource at the
//! start, is spent only on new pieces, and the swarm spreads them.
//!
//! A piece has *left* once some neighbour reports holding it (`Have` or
//! `Bitfield`) — not when its last block was handed to the transport, which
//! may still be sending it. Once every piece has left, super-seeding ends:
//! the seed announces all its pieces and seeds normally (duplicates are
//! then useful: they shorten the tail).
//!
//! An offered piece stays reserved to its neighbour until the neighbour
//! reports it (the seed does not choke a neighbour with an unfinished
//! offer). If the neighbour leaves first the piece is offered again, so
//! under churn some blocks may be sent twice.
//! The pieces a departing neighbour was the last to hold go back to the
//! pool too: a neighbour offered every piece takes the seed for a seed and
//! reports nothing more to it, so pieces may leave the swarm with it
//! unreported.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;
use crate::pieces::{Bitfield, PieceLayout};
use crate::rng::{self, NodeRng};

/// Unfinished offers per neighbour a super-seeding peer keeps (2 keeps a
/// neighbour's requests flowing while it learns of the next piece).
pub const SUPER_SEED_OFFERS: u32 = 2;

/// Whether a rechoke keeps `peer` unchoked on top of the choker's choice:
/// the seed super-seeds (`super_seed`) and `peer` holds an unfinished
/// offer — the piece is reserved to it, and choking it would strand the
/// piece until the next rechoke.
pub fn is_protected(super_seed: Option<&SuperSeed>, peer: NodeId) -> bool {
    super_seed.is_some_and(|s| s.has_unfinished_offer(peer))
}

/// Super-seeding state of the initial seed.
#[derive(Clone, Debug)]
pub struct SuperSeed {
    per_peer: u32,
    /// Pieces never offered, in no particular order.
    fresh: Vec<u32>,
    /// Pieces some neighbour reported holding.
    left: Bitfield,
    /// Offers not yet fully sent, per neighbour.
    offers: BTreeMap<NodeId, BTreeSet<u32>>,
    active: bool,
}

impl SuperSeed {
    /// Super-seeding of `layout`, with at most `per_peer` unfinished offers
    /// per neighbour (2 keeps a neighbour's requests flowing while it
    /// learns of the next piece).
    pub fn new(layout: PieceLayout, per_peer: u32) -> Self {
        SuperSeed {
            per_peer: per_peer.max(1),
            fresh: (0..layout.pieces()).rev().collect(),
            left: Bitfield::new(layout.pieces()),
            offers: BTreeMap::new(),
            active: true,
        }
    }

    /// Whether super-seeding is still on (some piece has not left once).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Pieces that have left the seed at least once.
    pub fn left_once(&self) -> u32 {
        self.left.count()
    }

    /// Whether `peer` holds an offer whose blocks have not all been sent.
    pub fn has_unfinished_offer(&self, peer: NodeId) -> bool {
        self.offers.get(&peer).is_some_and(|o| !o.is_empty())
    }

    /// New pieces to offer `peer`, which holds `holds` (send it a `Have`
    /// for each), so that it holds `per_peer` unfinished offers, as far as
    /// fresh pieces it lacks last.
    pub fn top_up(&mut self, peer: NodeId, holds: &Bitfield, rng: &mut NodeRng) -> Vec<u32> {
        if !self.active {
            return Vec::new();
        }
        let offers = self.offers.entry(peer).or_default();
        let mut new = Vec::new();
        while (offers.len() as u32) < self.per_peer {
            let lacked: Vec<usize> = (0..self.fresh.len())
                .filter(|&i| !holds.contains(self.fresh[i]))
                .collect();
            if lacked.is_empty() {
                break;
            }
            let i = lacked[rng::below(rng, lacked.len() as u64) as usize];
            let piece = self.fresh.swap_remove(i);
            offers.insert(piece);
            new.push(piece);
        }
        new
    }

    /// Whether a request of `peer` for `piece` may be served: always once
    /// super-seeding is over, else only for a piece offered to it.
    pub fn may_serve(&self, peer: NodeId, piece: u32) -> bool {
        !self.active || self.offers.get(&peer).is_some_and(|o| o.contains(&piece))
    }

    /// `peer` reports holding `piece` (a `Have`). Returns whether that
    /// finished one of its offers (time to [`SuperSeed::top_up`] it).
    pub fn on_have(&mut self, peer: NodeId, piece: u32) -> bool {
        let finished = self.offers.get_mut(&peer).is_some_and(|o| o.remove(&piece));
        if self.left.insert(piece) && self.left.is_full() {
            self.active = false;
            self.offers.clear();
        }
        finished
    }

    /// `peer`'s bitfield: its pieces have left (or never needed to). An
    /// offer of a piece it already holds (made before its bitfield arrived)
    /// is finished: it will neither fetch nor report it. Returns whether
    /// that finished one (time to top it up).
    pub fn on_bitfield(&mut self, peer: NodeId, bits: &Bitfield) -> bool {
        let finished = self.offers.get_mut(&peer).is_some_and(|o| {
            let before = o.len();
            o.retain(|&p| !bits.contains(p));
            o.len() < before
        });
        for piece in bits.iter() {
            self.left.insert(piece);
        }
        if self.left.is_full() {
            self.active = false;
            self.offers.clear();
        }
        finished
    }

    /// No neighbour holds `piece` any more (its holders left): unless it is
    /// waiting to be offered or on offer, it goes back to the fresh pool,
    /// or it would never be offered again.
    pub fn lost(&mut self, piece: u32) {
        if self.active && !self.fresh.contains(&piece) && !self.offers.values().any(|o| o.contains(&piece)) {
            self.fresh.push(piece);
        }
    }

    /// `peer` went away: its unfinished offers go back to the fresh pool.
    pub fn forget_peer(&mut self, peer: NodeId) {
        if let Some(o) = self.offers.remove(&peer) {
            self.fresh.extend(o);
        }
    }

    /// Neighbour `peer`, which held `held`, went away: its unfinished
    /// offers go back to the pool ([`SuperSeed::forget_peer`]), and so do
    /// the pieces of `held` that no remaining neighbour holds
    /// (`held_elsewhere` says whether one does; [`SuperSeed::lost`]).
    pub fn on_departure(
        &mut self,
        peer: NodeId,
        held: impl IntoIterator<Item = u32>,
        mut held_elsewhere: impl FnMut(u32) -> bool,
    ) {
        self.forget_peer(peer);
        for piece in held {
            if !held_elsewhere(piece) {
                self.lost(piece);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::node_rng;

    #[test]
    fn every_piece_is_offered_once_before_super_seeding_ends() {
        let l = PieceLayout::new(8 * 32_768, 32_768, 16_384).unwrap();
        let mut s = SuperSeed::new(l, 2);
        let mut rng = node_rng(1, NodeId(0));
        let none = Bitfield::new(l.pieces());
        let mut offered = Vec::new();
        for round in 0..4 {
            for peer in [NodeId(1), NodeId(2)] {
                let new = s.top_up(peer, &none, &mut rng);
                assert_eq!(new.len(), if round == 0 { 2 } else { 0 }, "round {round}");
                offered.extend(new.iter().map(|&p| (peer, p)));
            }
        }
        // Peer 3 sees nothing it may request.
        assert!(!s.may_serve(NodeId(3), offered[0].1));
        // Each offer the neighbour reports holding frees a slot for a new one.
        let mut seen = BTreeSet::new();
        while let Some((peer, piece)) = offered.pop() {
            assert!(s.may_serve(peer, piece));
            assert!(seen.insert(piece), "piece {piece} offered twice");
            assert!(s.is_active());
            assert!(s.on_have(peer, piece));
            offered.extend(s.top_up(peer, &none, &mut rng).into_iter().map(|p| (peer, p)));
        }
        assert_eq!(s.left_once(), 8);
        assert!(!s.is_active());
        assert!(s.may_serve(NodeId(3), 0), "normal seeding afterwards");
    }

    #[test]
    fn offers_of_a_departed_peer_are_offered_again() {
        let l = PieceLayout::new(4 * 32_768, 32_768, 16_384).unwrap();
        let mut s = SuperSeed::new(l, 2);
        let mut rng = node_rng(1, NodeId(0));
        let none = Bitfield::new(l.pieces());
        assert_eq!(s.top_up(NodeId(1), &none, &mut rng).len(), 2);
        assert_eq!(s.top_up(NodeId(2), &none, &mut rng).len(), 2);
        assert!(s.top_up(NodeId(3), &none, &mut rng).is_empty());
        s.forget_peer(NodeId(1));
        assert_eq!(s.top_up(NodeId(3), &none, &mut rng).len(), 2);
    }

    /// An offer made before the neighbour's bitfield arrived, of a piece it
    /// turns out to hold (a restarted seed meets its old swarm), is
    /// finished: the neighbour will not fetch it, nor report it.
    #[test]
    fn an_offer_of_a_piece_the_bitfield_shows_held_is_finished() {
        let l = PieceLayout::new(4 * 32_768, 32_768, 16_384).unwrap();
        let mut s = SuperSeed::new(l, 2);
        let mut rng = node_rng(1, NodeId(0));
        let offered = s.top_up(NodeId(1), &Bitfield::new(4), &mut rng);
        assert_eq!(offered.len(), 2);
        let held = Bitfield::of(4, &offered);
        assert!(s.on_bitfield(NodeId(1), &held));
        assert!(!s.has_unfinished_offer(NodeId(1)));
        let next = s.top_up(NodeId(1), &held, &mut rng);
        assert_eq!(next.len(), 2);
        assert!(next.iter().all(|p| !offered.contains(p)));
    }

    /// A departing neighbour's unfinished offers go back to the pool, and
    /// so do the pieces it held that no other neighbour holds; an
    /// unfinished offer protects its neighbour at a rechoke.
    #[test]
    fn a_departure_returns_its_offers_and_the_pieces_only_it_held() {
        let l = PieceLayout::new(4 * 32_768, 32_768, 16_384).unwrap();
        let none = Bitfield::new(4);
        for elsewhere in [false, true] {
            let mut s = SuperSeed::new(l, 4);
            let mut rng = node_rng(1, NodeId(0));
            let offered = s.top_up(NodeId(1), &none, &mut rng);
            assert_eq!(offered.len(), 4);
            assert!(is_protected(Some(&s), NodeId(1)));
            assert!(!is_protected(Some(&s), NodeId(2)));
            assert!(!is_protected(None, NodeId(1)));
            assert!(s.on_have(NodeId(1), offered[0]));
            s.on_departure(NodeId(1), [offered[0]], |p| elsewhere && p == offered[0]);
            assert!(!is_protected(Some(&s), NodeId(1)));
            let again = s.top_up(NodeId(2), &none, &mut rng);
            assert_eq!(again.len(), if elsewhere { 3 } else { 4 }, "{again:?}");
        }
    }

    /// A piece nobody holds any more goes back to the pool, unless it is
    /// waiting there or on offer already.
    #[test]
    fn a_lost_piece_is_offered_again() {
        let l = PieceLayout::new(2 * 32_768, 32_768, 16_384).unwrap();
        let mut s = SuperSeed::new(l, 1);
        let mut rng = node_rng(1, NodeId(0));
        let none = Bitfield::new(2);
        let first = s.top_up(NodeId(1), &none, &mut rng);
        assert!(s.on_have(NodeId(1), first[0]));
        let second = s.top_up(NodeId(1), &none, &mut rng);
        assert!(s.top_up(NodeId(2), &none, &mut rng).is_empty(), "nothing fresh");
        s.lost(second[0]);
        assert!(
            s.top_up(NodeId(2), &none, &mut rng).is_empty(),
            "still on offer to 1"
        );
        s.lost(first[0]);
        assert_eq!(s.top_up(NodeId(2), &none, &mut rng), first, "its holder left");
        // A neighbour is never offered a piece it holds.
        let holds = Bitfield::full(2);
        s.forget_peer(NodeId(2));
        assert!(s.top_up(NodeId(3), &holds, &mut rng).is_empty());
    }
}
