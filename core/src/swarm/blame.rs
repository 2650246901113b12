//! Who to blame for a piece that failed its hash check, and when to stop
//! trusting a neighbour for good.
//!
//! The download remembers which neighbour sent each block of a piece. When a
//! piece fails:
//! - if every block came from one neighbour, that neighbour sent bad data:
//!   it is banned at once;
//! - otherwise each of them gets a strike, and storage digests the failed
//!   blocks ([`Command::DigestBlocks`](crate::Command::DigestBlocks)). Once
//!   the piece has been fetched again and passes, storage digests its good
//!   blocks, and a neighbour whose block differs from the good one is shown
//!   to have sent bad data: it is banned at once, and a neighbour whose
//!   blocks all matched loses the strike (libtorrent's smart ban works the
//!   same way). A neighbour with [`STRIKES_TO_SUSPEND`] strikes not yet
//!   cleared is *suspended* ([`Blame::is_suspended`]): it is asked only for
//!   pieces no other neighbour that is not suspended holds, until a
//!   comparison clears a strike or shows it lied. That bounds what a liar
//!   that only ever shares pieces can spoil while those are fetched again,
//!   without banning the honest neighbours that happened to share the same
//!   pieces with it (a co-sender of three spoiled pieces is not shown to
//!   have sent anything bad).
//!
//! A banned neighbour is disconnected and never accepted or dialled again,
//! and a suspended one is asked only for what nobody else holds, so a liar
//! wastes at most the blocks of [`STRIKES_TO_SUSPEND`] pieces per
//! downloader (one, when it sends whole pieces), instead of as much as it
//! cares to send.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;

/// Strikes (failed pieces shared with other senders, not yet cleared by a
/// comparison) that suspend a neighbour; a sole sender of a failed piece is
/// banned at once instead.
pub const STRIKES_TO_SUSPEND: u32 = 3;

/// The strikes and bans of one node.
#[derive(Clone, Debug, Default)]
pub struct Blame {
    strikes: BTreeMap<NodeId, u32>,
    banned: BTreeSet<NodeId>,
    /// Pieces that failed with blocks from several neighbours, waiting to
    /// be compared with their good copy.
    suspects: BTreeMap<u32, Suspect>,
}

#[derive(Clone, Debug)]
struct Suspect {
    /// Who sent each block of the failed copy, in block order.
    senders: Vec<NodeId>,
    /// The failed copy's block digests, once storage has them.
    bad: Option<Vec<u64>>,
    /// Copies of the piece that failed in a row, this one included.
    failures: u32,
}

/// What a failed piece leads to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The neighbours banned now, in id order.
    pub banned: Vec<NodeId>,
    /// The neighbours suspended now ([`Blame::is_suspended`]), in id order.
    pub suspended: Vec<NodeId>,
    /// Whether to have storage digest the failed blocks now, before they
    /// are fetched again and overwritten.
    pub digest: bool,
}

impl Blame {
    /// `piece`, whose blocks came from `senders` (in block order), failed
    /// its check.
    pub fn piece_failed(&mut self, piece: u32, senders: &[NodeId]) -> Verdict {
        let sources: BTreeSet<NodeId> = senders.iter().copied().collect();
        let mut verdict = Verdict::default();
        for &peer in &sources {
            if self.banned.contains(&peer) {
                continue;
            }
            let strikes = self.strikes.entry(peer).or_default();
            if sources.len() == 1 {
                self.ban(peer);
                verdict.banned.push(peer);
            } else {
                *strikes += 1;
                if *strikes == STRIKES_TO_SUSPEND {
                    verdict.suspended.push(peer);
                }
            }
        }
        if sources.len() > 1 {
            let failures = self.failures(piece) + 1;
            self.suspects.insert(
                piece,
                Suspect {
                    senders: senders.to_vec(),
                    bad: None,
                    failures,
                },
            );
            verdict.digest = true;
        }
        verdict
    }

    /// `piece` passed its check: whether to have storage digest its blocks
    /// now (an earlier copy failed and its digests are known).
    pub fn piece_verified(&mut self, piece: u32) -> bool {
        let ready = self.suspects.get(&piece).is_some_and(|s| s.bad.is_some());
        if !ready {
            self.suspects.remove(&piece);
        }
        ready
    }

    /// Storage digested the blocks of `piece`: the failed copy's first,
    /// then the good one's. Returns the neighbours banned now, in id order:
    /// those whose block differs from the good copy's.
    pub fn digests(&mut self, piece: u32, digests: &[u64]) -> Vec<NodeId> {
        let Some(suspect) = self.suspects.get_mut(&piece) else {
            return Vec::new();
        };
        let Some(bad) = &suspect.bad else {
            suspect.bad = Some(digests.to_vec());
            return Vec::new();
        };
        let mut liars = BTreeSet::new();
        let mut cleared = BTreeSet::new();
        for ((&peer, bad), good) in suspect.senders.iter().zip(bad).zip(digests) {
            if bad == good {
                cleared.insert(peer);
            } else {
                liars.insert(peer);
            }
        }
        self.suspects.remove(&piece);
        for peer in cleared.difference(&liars) {
            if let Some(strikes) = self.strikes.get_mut(peer) {
                *strikes -= 1;
                if *strikes == 0 {
                    self.strikes.remove(peer);
                }
            }
        }
        let mut banned = Vec::new();
        for peer in liars {
            if !self.banned.contains(&peer) {
                self.ban(peer);
                banned.push(peer);
            }
        }
        banned
    }

    /// How many copies of `piece` failed in a row with blocks from several
    /// neighbours, not compared with a good one yet (0: none).
    pub fn failures(&self, piece: u32) -> u32 {
        self.suspects.get(&piece).map_or(0, |s| s.failures)
    }

    /// Whether `peer` sent a block of the failed copy of `piece` that is
    /// still to be compared with a good one.
    pub fn is_suspect(&self, peer: NodeId, piece: u32) -> bool {
        self.suspects
            .get(&piece)
            .is_some_and(|s| s.senders.contains(&peer))
    }

    /// The pieces whose failed copy `peer` had a hand in, still to be
    /// compared with a good one: fetch them from others while others have
    /// them, so that a liar cannot spoil the same piece again and again.
    pub fn suspect_pieces(&self, peer: NodeId) -> impl Iterator<Item = u32> + '_ {
        self.suspects
            .iter()
            .filter(move |(_, s)| s.senders.contains(&peer))
            .map(|(&piece, _)| piece)
    }

    fn ban(&mut self, peer: NodeId) {
        self.strikes.remove(&peer);
        self.banned.insert(peer);
    }

    /// Whether `peer` is banned.
    pub fn is_banned(&self, peer: NodeId) -> bool {
        self.banned.contains(&peer)
    }

    /// Whether `peer` shared [`STRIKES_TO_SUSPEND`] failed pieces that no
    /// comparison has cleared yet: ask it only for what nobody else has.
    pub fn is_suspended(&self, peer: NodeId) -> bool {
        self.strikes.get(&peer).is_some_and(|&s| s >= STRIKES_TO_SUSPEND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[u32]) -> Vec<NodeId> {
        ids.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn a_sole_sender_of_a_bad_piece_is_banned_at_once() {
        let mut b = Blame::default();
        let v = b.piece_failed(0, &ids(&[7, 7, 7]));
        assert_eq!(
            v,
            Verdict {
                banned: ids(&[7]),
                suspended: vec![],
                digest: false
            }
        );
        assert!(b.is_banned(NodeId(7)));
        assert!(b.piece_failed(1, &ids(&[7])).banned.is_empty(), "banned once");
    }

    #[test]
    fn shared_senders_are_suspended_after_three_strikes_not_banned() {
        let mut b = Blame::default();
        assert_eq!(
            b.piece_failed(0, &ids(&[1, 2])),
            Verdict {
                banned: vec![],
                suspended: vec![],
                digest: true
            }
        );
        assert!(b.piece_failed(1, &ids(&[1, 3])).banned.is_empty());
        let third = b.piece_failed(2, &ids(&[1, 4]));
        assert!(third.banned.is_empty());
        assert_eq!(third.suspended, ids(&[1]), "suspended by its third strike");
        assert!(b.is_suspended(NodeId(1)) && !b.is_banned(NodeId(1)));
        for honest in [2, 3, 4] {
            assert!(!b.is_suspended(NodeId(honest)), "{honest}: one strike");
        }
        // Alone, a struck neighbour is banned at once.
        assert_eq!(b.piece_failed(3, &ids(&[2])).banned, ids(&[2]));
        // A comparison that clears the suspended one lifts the suspension.
        assert!(b.digests(0, &[5, 6]).is_empty(), "the failed copy's");
        assert!(b.piece_verified(0));
        assert!(b.digests(0, &[5, 7]).is_empty(), "the bad block was 2's");
        assert!(!b.is_suspended(NodeId(1)), "cleared once: two strikes left");
        // A third strike again suspends it again, and only once.
        assert_eq!(b.piece_failed(4, &ids(&[1, 5])).suspended, ids(&[1]));
        assert!(
            b.piece_failed(5, &ids(&[1, 6])).suspended.is_empty(),
            "already suspended"
        );
    }

    /// The smart ban: the good copy shows which block was bad. With strikes
    /// alone the honest neighbour 2, sharing three spoiled pieces with the
    /// liar 1, would be banned with it.
    #[test]
    fn comparing_a_failed_piece_with_its_good_copy_bans_the_liar_and_clears_the_others() {
        let mut b = Blame::default();
        // Piece 5: blocks from 2, 1, 2, 2; the liar's block is the second.
        assert!(b.piece_failed(5, &ids(&[2, 1, 2, 2])).digest);
        assert!(
            b.digests(5, &[10, 666, 12, 13]).is_empty(),
            "the failed copy's digests"
        );
        assert!(b.piece_verified(5), "fetched again, it passes: digest it");
        assert_eq!(b.digests(5, &[10, 11, 12, 13]), ids(&[1]));
        assert!(b.is_banned(NodeId(1)));
        // 2 lost its strike: two more shared failures do not ban it.
        for piece in [6, 7] {
            assert!(b.piece_failed(piece, &ids(&[2, 3])).banned.is_empty());
        }
        assert!(!b.is_suspended(NodeId(2)));
        assert!(b.piece_failed(8, &ids(&[2, 3])).banned.is_empty());
        assert!(b.is_suspended(NodeId(2)), "now three strikes");
        assert!(!b.is_banned(NodeId(2)), "never shown to have lied");
    }

    #[test]
    fn failures_of_a_piece_count_until_it_is_compared() {
        let mut b = Blame::default();
        assert_eq!(b.failures(4), 0);
        b.piece_failed(4, &ids(&[1, 2]));
        b.piece_failed(4, &ids(&[1, 2]));
        assert_eq!(b.failures(4), 2);
        assert!(b.digests(4, &[0, 1]).is_empty(), "the failed copy's");
        assert!(b.piece_verified(4));
        assert_eq!(b.digests(4, &[0, 0]), ids(&[2]));
        assert_eq!(b.failures(4), 0, "compared: forgotten");
    }

    #[test]
    fn a_piece_that_passes_before_its_failed_copy_was_digested_is_forgotten() {
        let mut b = Blame::default();
        assert!(b.piece_failed(0, &ids(&[1, 2])).digest);
        assert!(!b.piece_verified(0));
        assert!(b.digests(0, &[1, 2]).is_empty());
        assert!(b.digests(0, &[1, 3]).is_empty(), "nothing left to compare");
        assert!(!b.is_banned(NodeId(2)));
    }
}
