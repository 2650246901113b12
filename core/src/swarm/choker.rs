//! Whom to upload to (BEP 3's choking algorithm, as in the mainline client).
//!
//! - Every `rechoke_interval` (10 s) the `slots` (4) interested neighbours
//!   with the best rate get the regular slots: tit-for-tat, the rate at which
//!   they sent *us* data over the last interval; a seed, which downloads
//!   nothing, ranks by the rate at which it sent them data instead. Ties are
//!   broken at random.
//! - One more neighbour is unchoked optimistically, at random among the
//!   others, and keeps that slot for `optimistic_interval` (30 s): it gives
//!   newcomers a chance to prove themselves.
//! - A snubbed neighbour (it sent nothing for `snub_timeout` although we
//!   were interested) gets no regular slot.
//!
//! Between rechokes the peer fills slots that fall free (an unchoked peer
//! lost interest or left) at once, so its uplink does not idle for 10 s.

use std::collections::BTreeSet;

use crate::NodeId;
use crate::rng::{self, NodeRng};

/// A neighbour that wants to download from us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Who.
    pub peer: NodeId,
    /// Bytes it sent us (or, for a seed, we sent it) over the last window.
    pub rate: u64,
    /// Whether it is snubbing us.
    pub snubbed: bool,
}

/// The choking state that outlives one rechoke: the optimistic unchoke.
#[derive(Clone, Debug)]
pub struct Choker {
    slots: u32,
    optimistic: Option<NodeId>,
}

impl Choker {
    /// A choker with `slots` regular slots and one optimistic slot.
    pub fn new(slots: u32) -> Self {
        Choker {
            slots,
            optimistic: None,
        }
    }

    /// Most neighbours unchoked at once (regular slots + the optimistic one).
    pub fn max_unchoked(&self) -> u32 {
        self.slots + 1
    }

    /// The neighbour holding the optimistic slot.
    pub fn optimistic(&self) -> Option<NodeId> {
        self.optimistic
    }

    /// `peer` went away or lost interest.
    pub fn forget(&mut self, peer: NodeId) {
        if self.optimistic == Some(peer) {
            self.optimistic = None;
        }
    }

    /// The neighbours to unchoke from now on: the best `slots` candidates
    /// and the optimistic one, which moves to another random candidate if
    /// `rotate` is set (every optimistic interval) or it is no longer a
    /// candidate.
    pub fn rechoke(&mut self, candidates: &[Candidate], rotate: bool, rng: &mut NodeRng) -> BTreeSet<NodeId> {
        let mut ranked: Vec<Candidate> = candidates.to_vec();
        rng::shuffle(rng, &mut ranked);
        ranked.sort_by_key(|c| std::cmp::Reverse(c.rate)); // stable: random among ties
        let regular: BTreeSet<NodeId> = ranked
            .iter()
            .filter(|c| !c.snubbed)
            .take(self.slots as usize)
            .map(|c| c.peer)
            .collect();
        let still_valid = self
            .optimistic
            .is_some_and(|o| !regular.contains(&o) && candidates.iter().any(|c| c.peer == o));
        if rotate || !still_valid {
            let others: Vec<NodeId> = ranked
                .iter()
                .map(|c| c.peer)
                .filter(|p| !regular.contains(p) && (Some(*p) != self.optimistic || !rotate))
                .collect();
            self.optimistic = if others.is_empty() {
                // Nobody else: keep the current one if it still qualifies.
                self.optimistic.filter(|_| still_valid)
            } else {
                Some(others[rng::below(rng, others.len() as u64) as usize])
            };
        }
        let mut unchoked = regular;
        unchoked.extend(self.optimistic);
        unchoked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::node_rng;

    fn c(peer: u32, rate: u64) -> Candidate {
        Candidate {
            peer: NodeId(peer),
            rate,
            snubbed: false,
        }
    }

    #[test]
    fn the_four_fastest_get_regular_slots_plus_one_optimistic() {
        let mut rng = node_rng(1, NodeId(0));
        let mut choker = Choker::new(4);
        let cands: Vec<Candidate> = (1..=10).map(|p| c(p, u64::from(p) * 100)).collect();
        let u = choker.rechoke(&cands, true, &mut rng);
        assert_eq!(u.len(), 5);
        for p in 7..=10 {
            assert!(u.contains(&NodeId(p)), "{p} is among the fastest: {u:?}");
        }
        let opt = choker.optimistic().unwrap();
        assert!(opt.0 <= 6);
    }

    #[test]
    fn snubbed_peers_lose_their_regular_slot() {
        let mut rng = node_rng(1, NodeId(0));
        let mut choker = Choker::new(2);
        let mut cands = vec![c(1, 900), c(2, 800), c(3, 10)];
        cands[0].snubbed = true;
        let u = choker.rechoke(&cands, false, &mut rng);
        assert!(u.contains(&NodeId(2)) && u.contains(&NodeId(3)));
        // Peer 1 can only be the optimistic unchoke, and is the only other.
        assert_eq!(choker.optimistic(), Some(NodeId(1)));
    }

    #[test]
    fn the_optimistic_slot_rotates_only_when_asked() {
        let mut rng = node_rng(9, NodeId(0));
        let mut choker = Choker::new(1);
        let cands: Vec<Candidate> = (1..=6).map(|p| c(p, if p == 1 { 1000 } else { 0 })).collect();
        choker.rechoke(&cands, true, &mut rng);
        let first = choker.optimistic().unwrap();
        for _ in 0..5 {
            choker.rechoke(&cands, false, &mut rng);
            assert_eq!(choker.optimistic(), Some(first), "kept between rotations");
        }
        let mut moved = 0;
        for _ in 0..10 {
            let before = choker.optimistic();
            choker.rechoke(&cands, true, &mut rng);
            assert_ne!(choker.optimistic(), Some(NodeId(1)), "never a regular peer");
            moved += usize::from(choker.optimistic() != before);
        }
        assert_eq!(moved, 10, "a rotation always picks someone else");
    }
}
