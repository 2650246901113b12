//! How many neighbours a peer holds, and when it asks for more.
//!
//! A peer dials the peers the tracker names only up to half of
//! `max_peers`, counting attempts still in flight, and keeps the other half
//! for peers that dial it (mainline BitTorrent's `max_initiate` 40 of
//! `max_allow_in` 80). Were every peer to fill all its slots with its own
//! attempts, all would refuse each other's, and a swarm whose tracker hands
//! out `numwant` >= `max_peers` peers would be left with only the pairs that
//! happened to dial each other. A peer short of the dialling quota asks the
//! tracker again early rather than at the next regular announce.

/// How many neighbours a peer dials itself: half of `max_peers`, at least one.
pub fn dial_quota(max_peers: u32) -> usize {
    (max_peers as usize / 2).max(1)
}

/// Whether a peer holding `held` neighbours (attempts in flight included)
/// is short of its dialling quota: it dials more, and asks the tracker
/// for more when it has nobody left to try.
pub fn is_short(held: usize, max_peers: u32) -> bool {
    held < dial_quota(max_peers)
}

/// Whether a peer holding `held` neighbours (attempts in flight included)
/// accepts one more that dialled it.
pub fn accepts(held: usize, max_peers: u32) -> bool {
    held < max_peers as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_dials_half_its_neighbours_and_accepts_up_to_all() {
        assert_eq!(dial_quota(80), 40);
        assert_eq!(dial_quota(7), 3);
        assert_eq!(dial_quota(1), 1, "a peer with room for one dials one");
        assert!(is_short(39, 80) && !is_short(40, 80));
        assert!(is_short(0, 1) && !is_short(1, 1));
        assert!(accepts(79, 80) && !accepts(80, 80));
    }
}
