//! Who to blame for a piece that failed its hash check, and when to stop
//! trusting a neighbour for good.
//!
//! The download remembers which neighbours sent blocks of each piece. When a
//! piece fails:
//! - if every block came from one neighbour, that neighbour sent bad data:
//!   it is banned at once;
//! - otherwise each of them gets a strike, and [`STRIKES_TO_BAN`] strikes ban
//!   a neighbour (an honest one that helped with a piece a liar spoiled is
//!   struck too, but seldom three times: outside the end game a piece comes
//!   from one neighbour at a time).
//!
//! A banned neighbour is disconnected and never accepted or dialled again,
//! so a liar wastes at most the blocks of [`STRIKES_TO_BAN`] pieces per
//! downloader (one, when it sends whole pieces), instead of as much as it
//! cares to send. Mature clients do the same in spirit (Transmission bans
//! after strikes; libtorrent's smart ban compares block digests, which a
//! sans-IO core does not see).

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;

/// Strikes (failed pieces shared with other senders) that ban a neighbour.
pub const STRIKES_TO_BAN: u32 = 3;

/// The strikes and bans of one node.
#[derive(Clone, Debug, Default)]
pub struct Blame {
    strikes: BTreeMap<NodeId, u32>,
    banned: BTreeSet<NodeId>,
}

impl Blame {
    /// A piece sent by `sources` failed its check: returns the neighbours
    /// banned now, in id order.
    pub fn piece_failed(&mut self, sources: &BTreeSet<NodeId>) -> Vec<NodeId> {
        let mut now_banned = Vec::new();
        for &peer in sources {
            if self.banned.contains(&peer) {
                continue;
            }
            let strikes = self.strikes.entry(peer).or_default();
            *strikes = if sources.len() == 1 {
                STRIKES_TO_BAN
            } else {
                *strikes + 1
            };
            if *strikes >= STRIKES_TO_BAN {
                self.strikes.remove(&peer);
                self.banned.insert(peer);
                now_banned.push(peer);
            }
        }
        now_banned
    }

    /// Whether `peer` is banned.
    pub fn is_banned(&self, peer: NodeId) -> bool {
        self.banned.contains(&peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u32]) -> BTreeSet<NodeId> {
        ids.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn a_sole_sender_of_a_bad_piece_is_banned_at_once() {
        let mut b = Blame::default();
        assert_eq!(b.piece_failed(&set(&[7])), vec![NodeId(7)]);
        assert!(b.is_banned(NodeId(7)));
        assert!(b.piece_failed(&set(&[7])).is_empty(), "banned once");
    }

    #[test]
    fn shared_senders_are_banned_after_three_strikes() {
        let mut b = Blame::default();
        assert!(b.piece_failed(&set(&[1, 2])).is_empty());
        assert!(b.piece_failed(&set(&[1, 3])).is_empty());
        assert_eq!(b.piece_failed(&set(&[1, 4])), vec![NodeId(1)]);
        assert!(b.is_banned(NodeId(1)));
        for honest in [2, 3, 4] {
            assert!(!b.is_banned(NodeId(honest)), "{honest}: one strike");
        }
        // Alone, a struck neighbour is banned at once.
        assert_eq!(b.piece_failed(&set(&[2])), vec![NodeId(2)]);
    }
}
