//! The tracker file: which peer owns which piece (seed 001's table of
//! `file chunk id -> peer ip`, with node ids for addresses).

use std::collections::BTreeSet;

use crate::NodeId;

/// The owner of every piece, indexed by piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerFile {
    owners: Vec<NodeId>,
}

impl TrackerFile {
    /// Piece `k` is owned by `owners[k]`.
    ///
    /// # Panics
    /// If `owners` is empty (a file has at least one piece).
    pub fn new(owners: Vec<NodeId>) -> Self {
        assert!(!owners.is_empty(), "a tracker file names at least one owner");
        TrackerFile { owners }
    }

    /// The default assignment: piece `k` is owned by `peers[k mod N]`.
    ///
    /// # Panics
    /// If `peers` is empty or `pieces` is zero.
    pub fn round_robin(pieces: u32, peers: &[NodeId]) -> Self {
        assert!(!peers.is_empty(), "round robin over no peers");
        TrackerFile::new((0..pieces as usize).map(|k| peers[k % peers.len()]).collect())
    }

    /// Number of pieces the file lists.
    pub fn pieces(&self) -> u32 {
        self.owners.len() as u32
    }

    /// The owner of `piece`, `None` if the file has no such piece.
    pub fn owner_of(&self, piece: u32) -> Option<NodeId> {
        self.owners.get(piece as usize).copied()
    }

    /// The pieces `peer` owns, in order.
    pub fn pieces_of(&self, peer: NodeId) -> impl Iterator<Item = u32> + '_ {
        (0..self.pieces()).filter(move |&k| self.owners[k as usize] == peer)
    }

    /// Every peer that owns at least one piece, in id order.
    pub fn owners(&self) -> BTreeSet<NodeId> {
        self.owners.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_deals_pieces_like_cards() {
        let peers = [NodeId(1), NodeId(2), NodeId(3)];
        let t = TrackerFile::round_robin(7, &peers);
        assert_eq!(t.pieces(), 7);
        assert_eq!(t.pieces_of(NodeId(1)).collect::<Vec<_>>(), vec![0, 3, 6]);
        assert_eq!(t.pieces_of(NodeId(3)).collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(t.owner_of(4), Some(NodeId(2)));
        assert_eq!(t.owner_of(7), None);
        // More peers than pieces: the last ones own nothing.
        let t = TrackerFile::round_robin(2, &peers);
        assert_eq!(
            t.owners().into_iter().collect::<Vec<_>>(),
            vec![NodeId(1), NodeId(2)]
        );
    }
}
