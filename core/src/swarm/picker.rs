//! Which block to ask a neighbour for next (BEP 3's piece selection).
//!
//! 1. Keep going with the piece this neighbour is already sending (one piece
//!    per neighbour, so pieces complete — and can be passed on — quickly).
//! 2. Else finish a started piece nobody is working on any more (its
//!    requests were lost to a choke or a disconnection).
//! 3. Else start a new piece: a random one for the first few pieces (a
//!    newcomer needs *something* to trade soon, and the rarest piece is
//!    slow to get), then the rarest one among the neighbours (availability
//!    counted from their `Bitfield`/`Have` messages), ties broken at random.
//! 4. Else help with a piece another neighbour is sending.
//! 5. Else, once every missing block is in flight (the *end game*), ask an
//!    idle neighbour (nothing requested from it) for one block that is
//!    already requested elsewhere — at most `endgame_copies` requests per
//!    block at a time, the least-requested first; when one copy arrives the
//!    others are cancelled. One duplicate per idle neighbour (as libtorrent
//!    does) keeps the bytes wasted on duplicates small: a neighbour with
//!    its own requests outstanding is not idle.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;
use crate::download::Download;
use crate::pieces::{Bitfield, BlockRef};
use crate::rng::{self, NodeRng};

/// Piece availability and the pieces in progress, per neighbour.
#[derive(Clone, Debug)]
pub struct Picker {
    availability: Vec<u32>,
    random_first: u32,
    endgame_copies: u32,
    /// Pieces with a block requested since they were last completed.
    active: BTreeSet<u32>,
    /// The piece each neighbour is sending us…
    current: BTreeMap<NodeId, u32>,
    /// …and who is sending each such piece.
    owner: BTreeMap<u32, NodeId>,
}

impl Picker {
    /// A picker for `pieces` pieces that chooses the first `random_first`
    /// pieces at random and lets at most `endgame_copies` requests for one
    /// block be in flight at once in the end game.
    pub fn new(pieces: u32, random_first: u32, endgame_copies: u32) -> Self {
        Picker {
            availability: vec![0; pieces as usize],
            random_first,
            endgame_copies: endgame_copies.max(1),
            active: BTreeSet::new(),
            current: BTreeMap::new(),
            owner: BTreeMap::new(),
        }
    }

    /// How many neighbours are known to hold `piece`.
    pub fn availability(&self, piece: u32) -> u32 {
        self.availability.get(piece as usize).copied().unwrap_or(0)
    }

    /// How much our neighbours want the pieces in `have` (another
    /// neighbour's): for each of them, the share of our `neighbours` that
    /// lack it, in sixteenths, summed. A neighbour whose pieces are common
    /// around us scores low: it has little to upload, so its uplink is
    /// likely idle, and a new piece would put it to work. Our neighbourhood
    /// stands in for its own, which we cannot see.
    pub fn demand(&self, have: &Bitfield, neighbours: u32) -> u32 {
        if neighbours == 0 {
            return 0;
        }
        have.iter()
            .map(|p| neighbours.saturating_sub(self.availability(p)) * 16 / neighbours)
            .sum()
    }

    /// A neighbour with these pieces connected (or sent its bitfield).
    pub fn add_peer(&mut self, have: &Bitfield) {
        for p in have.iter() {
            self.availability[p as usize] += 1;
        }
    }

    /// A neighbour with these pieces went away (or replaced its bitfield).
    pub fn remove_peer(&mut self, have: &Bitfield) {
        for p in have.iter() {
            let a = &mut self.availability[p as usize];
            *a = a.saturating_sub(1);
        }
    }

    /// A neighbour announced `piece`.
    pub fn add_have(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a += 1;
        }
    }

    /// `piece` is held, or failed its check (its blocks are gone): it is no
    /// longer in progress.
    pub fn piece_done(&mut self, piece: u32) {
        self.active.remove(&piece);
        if let Some(peer) = self.owner.remove(&piece) {
            self.current.remove(&peer);
        }
    }

    /// `peer` no longer sends us anything (choked us or went away), and
    /// `download` has forgotten the requests it held. A piece left with
    /// nothing stored and nothing requested goes back to the pool of new
    /// pieces: it was only asked for, so finishing it first (step 2) would
    /// send the next neighbour, often the seed, after a piece chosen for
    /// the one that just choked us instead of the rarest.
    pub fn release(&mut self, peer: NodeId, download: &Download) {
        self.unassign(peer);
        let owner = &self.owner;
        self.active
            .retain(|p| owner.contains_key(p) || !download.is_untouched(*p));
    }

    /// A block of `piece` was stored: the piece is in progress (it may
    /// have gone back to the pool on a [`Self::release`] while the block
    /// was on its way).
    pub fn touch(&mut self, piece: u32) {
        self.active.insert(piece);
    }

    fn unassign(&mut self, peer: NodeId) {
        if let Some(piece) = self.current.remove(&peer) {
            self.owner.remove(&piece);
        }
    }

    fn assign(&mut self, peer: NodeId, piece: u32) {
        self.unassign(peer);
        if let Some(old) = self.owner.insert(piece, peer) {
            self.current.remove(&old);
        }
        self.current.insert(peer, piece);
        self.active.insert(piece);
    }

    /// Whether every missing block is stored or in flight.
    pub fn in_endgame(&self, download: &Download) -> bool {
        let l = download.layout();
        let wanted = l.pieces() - download.have().count() - download.verifying_count();
        let active_wanted = self.active.iter().filter(|&&p| download.is_wanted(p)).count() as u32;
        wanted > 0
            && active_wanted == wanted
            && self.active.iter().all(|&p| download.next_block_in(p).is_none())
    }

    /// The next block to request from `peer`, which holds `remote`, or
    /// `None` if it has nothing we may ask for now. The caller marks the
    /// block requested in `download` before asking again.
    pub fn next_block(
        &mut self,
        download: &Download,
        peer: NodeId,
        remote: &Bitfield,
        rng: &mut NodeRng,
    ) -> Option<BlockRef> {
        // 1. The piece this neighbour is sending.
        if let Some(&piece) = self.current.get(&peer) {
            if let Some(b) = download.next_block_in(piece) {
                return Some(b);
            }
            self.unassign(peer);
        }
        // 2. A started piece without a sender.
        let orphan = self
            .active
            .iter()
            .copied()
            .filter(|p| !self.owner.contains_key(p) && remote.contains(*p))
            .find_map(|p| download.next_block_in(p).map(|b| (p, b)));
        if let Some((piece, b)) = orphan {
            self.assign(peer, piece);
            return Some(b);
        }
        // 3. A new piece: random first, then rarest first.
        if let Some(piece) = self.pick_new(download, remote, rng)
            && let Some(b) = download.next_block_in(piece)
        {
            self.assign(peer, piece);
            return Some(b);
        }
        // 4. Help with a piece another neighbour is sending.
        let shared = self
            .active
            .iter()
            .copied()
            .filter(|p| remote.contains(*p))
            .find_map(|p| download.next_block_in(p));
        if shared.is_some() {
            return shared;
        }
        // 5. End game.
        if download.in_flight_to(peer) > 0 || !self.in_endgame(download) {
            return None;
        }
        self.endgame_block(download, peer, remote)
    }

    fn pick_new(&self, download: &Download, remote: &Bitfield, rng: &mut NodeRng) -> Option<u32> {
        let random = picks_at_random(download.have().count(), self.random_first);
        let fresh = remote
            .iter_minus(download.have())
            .filter(|p| !self.active.contains(p) && download.is_untouched(*p));
        rarest(fresh, |p| self.availability(p), random, rng)
    }

    /// A block of a piece in progress that `peer` (which holds `remote`)
    /// could send and that is requested only from neighbours that are
    /// `stalled` (a serial uploader queues it behind another neighbour's
    /// piece, or the neighbour went silent), so the request can move to
    /// `peer`: the caller cancels it at the stalled ones, so the copies in
    /// flight do not grow. The first such block in piece order, or `None`.
    pub fn stalled_block(
        &self,
        download: &Download,
        peer: NodeId,
        remote: &Bitfield,
        stalled: impl Fn(NodeId) -> bool,
    ) -> Option<BlockRef> {
        self.duplicable(download, peer, remote).find(|&b| {
            let mut copies = 0;
            let mut all_stalled = true;
            for q in download.requested_from(b) {
                copies += 1;
                all_stalled &= stalled(q);
            }
            copies > 0 && all_stalled
        })
    }

    fn endgame_block(&self, download: &Download, peer: NodeId, remote: &Bitfield) -> Option<BlockRef> {
        let blocks = self.duplicable(download, peer, remote);
        least_copied(
            blocks.map(|b| (b, download.in_flight_copies(b))),
            self.endgame_copies,
        )
    }

    /// The blocks of pieces in progress that `peer` (holding `remote`) could
    /// send us and that are neither stored nor already asked of it.
    fn duplicable<'a>(
        &'a self,
        download: &'a Download,
        peer: NodeId,
        remote: &'a Bitfield,
    ) -> impl Iterator<Item = BlockRef> + 'a {
        let l = download.layout();
        self.active
            .iter()
            .copied()
            .filter(move |&piece| remote.contains(piece) && download.is_wanted(piece))
            .flat_map(move |piece| (0..l.blocks_in(piece)).map(move |i| l.block(piece, i)))
            .filter(move |&b| !download.is_stored(b) && !download.is_requested_from(b, peer))
    }
}

/// Whether a peer holding `held` verified pieces picks its next new piece
/// at random rather than rarest first: it holds fewer than
/// `random_first_pieces`.
pub fn picks_at_random(held: u32, random_first_pieces: u32) -> bool {
    held < random_first_pieces
}

/// The end game's choice among `candidates` (blocks, or whole pieces, with
/// the requests for each already in flight): the least-requested one with
/// fewer than `endgame_copies` requests (at least one), the first among
/// ties; `None` if every candidate has its copies.
pub fn least_copied<T>(candidates: impl IntoIterator<Item = (T, u32)>, endgame_copies: u32) -> Option<T> {
    let limit = endgame_copies.max(1);
    let mut best: Option<(u32, T)> = None;
    for (item, copies) in candidates {
        if copies < limit && best.as_ref().is_none_or(|(c, _)| copies < *c) {
            best = Some((copies, item));
        }
    }
    best.map(|(_, item)| item)
}

/// The rarest of `candidates` by `availability` (or any of them, when
/// `random`), ties broken uniformly at random by reservoir sampling — one
/// draw per tie as the candidates go by. BEP 3's choice of a new piece, for
/// the peer's picker and the simulator's pieces model alike.
pub fn rarest(
    candidates: impl IntoIterator<Item = u32>,
    availability: impl Fn(u32) -> u32,
    random: bool,
    rng: &mut NodeRng,
) -> Option<u32> {
    let mut best: Option<(u32, u32)> = None; // (availability, piece)
    let mut ties = 0u64;
    for piece in candidates {
        let a = if random { 0 } else { availability(piece) };
        match best {
            Some((b, _)) if a > b => continue,
            Some((b, _)) if a == b => {
                // Reservoir sampling: uniform among the ties.
                ties += 1;
                if rng::below(rng, ties) == 0 {
                    best = Some((a, piece));
                }
            }
            _ => {
                best = Some((a, piece));
                ties = 1;
            }
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::BlockOutcome;
    use crate::pieces::PieceLayout;
    use crate::rng::node_rng;

    fn layout(pieces: u32) -> PieceLayout {
        // Two blocks per piece.
        PieceLayout::new(u64::from(pieces) * 32_768, 32_768, 16_384).unwrap()
    }

    #[test]
    fn the_end_game_asks_for_the_least_requested_below_the_limit() {
        let c = [(10, 1), (11, 0), (12, 0), (13, 2)];
        assert_eq!(least_copied(c, 2), Some(11), "least copies, first among ties");
        assert_eq!(least_copied([(10, 2), (13, 3)], 2), None, "all have their copies");
        assert_eq!(least_copied([(10, 0)], 0), Some(10), "a limit of 0 counts as 1");
        assert_eq!(least_copied([(10, 1)], 0), None);
        assert!(picks_at_random(3, 4) && !picks_at_random(4, 4));
    }

    /// Demand counts, per piece a neighbour holds, the share of our
    /// neighbours lacking it, in sixteenths: a piece every one of them
    /// holds is worth nothing, one nobody holds is worth 16.
    #[test]
    fn demand_weighs_a_neighbours_pieces_by_how_many_around_us_lack_them() {
        let mut p = Picker::new(4, 0, 1);
        // Of 8 neighbours, all hold piece 0, two hold piece 1, none 2 or 3.
        for k in 0..8 {
            p.add_peer(&Bitfield::of(4, if k < 2 { &[0, 1] } else { &[0] }));
        }
        assert_eq!(p.demand(&Bitfield::of(4, &[0]), 8), 0);
        assert_eq!(p.demand(&Bitfield::of(4, &[1]), 8), 12); // 6 of 8 lack it
        assert_eq!(p.demand(&Bitfield::of(4, &[2]), 8), 16);
        assert_eq!(p.demand(&Bitfield::of(4, &[0, 1, 2, 3]), 8), 44);
        assert_eq!(p.demand(&Bitfield::of(4, &[3]), 0), 0, "no neighbours, no demand");
    }

    /// A block waiting at a stalled neighbour may be asked of another one,
    /// up to `endgame_copies` requests; one at a neighbour that is sending
    /// may not, and neither may a block the other neighbour lacks.
    #[test]
    fn a_block_queued_at_a_stalled_neighbour_may_be_asked_of_another() {
        let l = layout(4);
        let mut rng = node_rng(1, NodeId(1));
        let full = Bitfield::full(4);
        let mut picker = Picker::new(4, 0, 2);
        let mut d = Download::new(l, Bitfield::new(4));
        // Neighbour 10 is asked for both blocks of a piece.
        let b0 = picker.next_block(&d, NodeId(10), &full, &mut rng).unwrap();
        d.mark_requested(b0, NodeId(10));
        let b1 = picker.next_block(&d, NodeId(10), &full, &mut rng).unwrap();
        d.mark_requested(b1, NodeId(10));
        assert_eq!(b0.piece, b1.piece);
        let stalled = |p: NodeId| p == NodeId(10);
        let sending = |_: NodeId| false;
        assert_eq!(picker.stalled_block(&d, NodeId(11), &full, sending), None);
        assert_eq!(
            picker.stalled_block(&d, NodeId(11), &Bitfield::of(4, &[(b0.piece + 1) % 4]), stalled),
            None,
            "neighbour 11 lacks the piece"
        );
        let dup = picker.stalled_block(&d, NodeId(11), &full, stalled);
        assert_eq!(dup, Some(b0));
        d.mark_requested(b0, NodeId(11));
        // Two copies of b0 are out (endgame_copies 2): the next is b1.
        assert_eq!(picker.stalled_block(&d, NodeId(12), &full, stalled), Some(b1));
        d.mark_requested(b1, NodeId(12));
        // Neighbours 11 and 12 are not stalled: nothing left to duplicate.
        assert_eq!(picker.stalled_block(&d, NodeId(13), &full, stalled), None);
    }

    /// A neighbour that chokes us takes its requests with it. A piece with
    /// a block of it stored is finished first, from whoever holds it; one
    /// that was only asked for goes back to rarest first, so the next
    /// neighbour (often the seed) is not asked for a common piece.
    #[test]
    fn a_piece_only_asked_for_goes_back_to_the_pool_on_a_choke() {
        let l = layout(8);
        let mut rng = node_rng(1, NodeId(1));
        let full = Bitfield::full(8);
        // Neighbour 10 holds pieces 0 and 1; the seed (11) holds
        // everything, and pieces 2..=7 nobody else holds.
        let holder = Bitfield::of(8, &[0, 1]);
        let known = || {
            let mut p = Picker::new(8, 0, 2);
            p.add_peer(&full);
            p.add_peer(&holder);
            p
        };
        let mut picker = known();
        let mut d = Download::new(l, Bitfield::new(8));
        // 10 is asked for a whole piece, and another piece is started at 10.
        let a = picker.next_block(&d, NodeId(10), &holder, &mut rng).unwrap();
        d.mark_requested(a, NodeId(10));
        let a2 = picker.next_block(&d, NodeId(10), &holder, &mut rng).unwrap();
        d.mark_requested(a2, NodeId(10));
        assert_eq!(a.piece, a2.piece);
        let b = picker.next_block(&d, NodeId(10), &holder, &mut rng).unwrap();
        assert_ne!(b.piece, a.piece);
        d.mark_requested(b, NodeId(10));
        assert!(matches!(d.on_block(NodeId(10), b), BlockOutcome::Accepted { .. }));
        // 10 chokes us: its requests are gone.
        d.forget_peer(NodeId(10));
        picker.release(NodeId(10), &d);
        // The seed is asked to finish the started piece first...
        let next = picker.next_block(&d, NodeId(11), &full, &mut rng).unwrap();
        assert_eq!(
            next.piece, b.piece,
            "a piece with a block stored is finished first"
        );
        d.mark_requested(next, NodeId(11));
        // ...and then for the rarest piece, not the one only asked of 10.
        let then = picker.next_block(&d, NodeId(11), &full, &mut rng).unwrap();
        assert!(then.piece >= 2, "asked the seed for common piece {}", then.piece);
        // Ownership dropped without the release, the piece only asked for
        // still counts as started and would come first.
        let mut kept = known();
        let mut d = Download::new(l, Bitfield::new(8));
        let a = kept.next_block(&d, NodeId(10), &holder, &mut rng).unwrap();
        d.mark_requested(a, NodeId(10));
        d.forget_peer(NodeId(10));
        kept.unassign(NodeId(10));
        assert_eq!(
            kept.next_block(&d, NodeId(11), &full, &mut rng).unwrap().piece,
            a.piece,
            "without the release, the common piece would be asked of the seed"
        );
    }

    #[test]
    fn rarest_first_after_the_random_first_pieces() {
        let l = layout(8);
        let mut rng = node_rng(1, NodeId(1));
        // Neighbour A has everything; B and C make pieces 0..=5 common,
        // piece 6 is held by A and B, piece 7 by A alone.
        let a = Bitfield::full(8);
        let mut picker = Picker::new(8, 0, 2);
        picker.add_peer(&a);
        picker.add_peer(&Bitfield::of(8, &[0, 1, 2, 3, 4, 5, 6]));
        picker.add_peer(&Bitfield::of(8, &[0, 1, 2, 3, 4, 5]));
        let mut d = Download::new(l, Bitfield::new(8));
        let first = picker.next_block(&d, NodeId(10), &a, &mut rng).unwrap();
        assert_eq!(first.piece, 7, "the rarest piece");
        d.mark_requested(first, NodeId(10));
        let second = picker.next_block(&d, NodeId(10), &a, &mut rng).unwrap();
        assert_eq!(second.piece, 7, "the same neighbour finishes its piece");
        d.mark_requested(second, NodeId(10));
        // Another neighbour with everything gets the next rarest.
        let other = picker.next_block(&d, NodeId(11), &a, &mut rng).unwrap();
        assert_eq!(other.piece, 6);
        // Have messages make pieces 0..=4 commoner than piece 5.
        for p in 0..5 {
            picker.add_have(p);
        }
        d.mark_requested(other, NodeId(11));
        let b = picker.next_block(&d, NodeId(11), &a, &mut rng).unwrap();
        d.mark_requested(b, NodeId(11));
        let next = picker.next_block(&d, NodeId(11), &a, &mut rng).unwrap();
        assert_eq!(next.piece, 5, "availability counts Have messages");
    }

    #[test]
    fn the_first_pieces_are_random_then_rarest() {
        let l = layout(64);
        let full = Bitfield::full(64);
        let mut seen = BTreeSet::new();
        for seed in 0..20 {
            let mut rng = node_rng(seed, NodeId(1));
            let mut picker = Picker::new(64, 4, 2);
            picker.add_peer(&full);
            picker.add_have(63); // piece 63 is the least rare
            let d = Download::new(l, Bitfield::new(64));
            seen.insert(picker.next_block(&d, NodeId(2), &full, &mut rng).unwrap().piece);
        }
        assert!(seen.len() > 10, "random first pieces: {seen:?}");
        // With enough pieces held, rarest first takes over.
        let mut have = Bitfield::new(64);
        for p in 0..4 {
            have.insert(p);
        }
        let mut picker = Picker::new(64, 4, 2);
        picker.add_peer(&full);
        for p in 4..64 {
            if p != 40 {
                picker.add_have(p);
            }
        }
        let d = Download::new(l, have);
        let mut rng = node_rng(3, NodeId(1));
        assert_eq!(
            picker.next_block(&d, NodeId(2), &full, &mut rng).unwrap().piece,
            40
        );
    }

    #[test]
    fn end_game_duplicates_are_bounded() {
        let l = layout(1);
        let full = Bitfield::full(1);
        let mut rng = node_rng(1, NodeId(1));
        let mut picker = Picker::new(1, 0, 2);
        let mut d = Download::new(l, Bitfield::new(1));
        for _ in 1..=4 {
            picker.add_peer(&full);
        }
        // Neighbour 1 takes both blocks.
        for _ in 0..2 {
            let b = picker.next_block(&d, NodeId(1), &full, &mut rng).unwrap();
            d.mark_requested(b, NodeId(1));
        }
        assert!(picker.in_endgame(&d));
        // An idle neighbour gets one duplicate, then nothing while it is busy.
        let d2 = picker.next_block(&d, NodeId(2), &full, &mut rng).unwrap();
        d.mark_requested(d2, NodeId(2));
        assert_eq!(picker.next_block(&d, NodeId(2), &full, &mut rng), None);
        // The next idle neighbour duplicates the other block (fewest copies).
        let d3 = picker.next_block(&d, NodeId(3), &full, &mut rng).unwrap();
        assert_ne!(d2, d3);
        d.mark_requested(d3, NodeId(3));
        // Every block is at its cap of 2 copies.
        assert_eq!(picker.next_block(&d, NodeId(4), &full, &mut rng), None);
        // A copy arrives: the other request for it must be cancelled.
        match d.on_block(NodeId(2), d2) {
            BlockOutcome::Accepted {
                also_requested_from, ..
            } => assert_eq!(also_requested_from, vec![NodeId(1)]),
            other => panic!("{other:?}"),
        }
        // Neighbour 2 is idle again, but the only block left is at its cap.
        assert_eq!(picker.next_block(&d, NodeId(2), &full, &mut rng), None);
    }
}
