//! How many neighbours a peer holds, and when it asks for more.
//!
//! A peer dials the peers the tracker names only up to half of
//! `max_peers`, counting attempts still in flight, and keeps the other half
//! for peers that dial it (mainline BitTorrent's `max_initiate` 40 of
//! `max_allow_in` 80). Were every peer to fill all its slots with its own
//! attempts, all would refuse each other's, and a swarm whose tracker hands
//! out `numwant` >= `max_peers` peers would be left with only the pairs that
//! happened to dial each other. A peer short of the dialling quota asks the
//! tracker again early rather than at the next regular announce; one that is
//! also *starving* (no neighbour unchoking it holds a piece it lacks) asks
//! within half a second of its last announce, then after twice as long each
//! time it is still starving, up to the announce interval.

use std::time::Duration;

use crate::Time;

/// How soon after its last announce a starving peer asks the tracker again
/// (the first time; the delay doubles while it stays starving).
pub const STARVING_REANNOUNCE: Duration = Duration::from_millis(500);

/// A peer that lost neighbours but still has a source asks the tracker for
/// more, but no sooner than this after its last announce.
pub const MIN_REANNOUNCE: Duration = Duration::from_secs(10);

/// When a peer that fell short of neighbours at `now` asks the tracker
/// again: [`MIN_REANNOUNCE`] after its last announce, and not before `now`.
pub fn reannounce_at(now: Time, last_announce: Option<Time>) -> Time {
    last_announce.map_or(now, |t| (t + MIN_REANNOUNCE).max(now))
}

/// How many neighbours a peer dials itself: half of `max_peers`, at least one.
pub fn dial_quota(max_peers: u32) -> usize {
    (max_peers as usize / 2).max(1)
}

/// Whether a peer that lost neighbours asks the tracker for more (at
/// [`reannounce_at`]): while it still downloads and is short of its
/// dialling quota with `held` neighbours.
pub fn reannounces_when_short(completed: bool, held: usize, max_peers: u32) -> bool {
    !completed && is_short(held, max_peers)
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

/// Whether a peer is starving: it lacks pieces (`complete` is false), no
/// neighbour unchoking it holds one it lacks (`has_source` is false), and it
/// is `short` of neighbours with nobody the tracker named left to try
/// (`untried` is false): only the tracker can name a source.
pub fn is_starving(complete: bool, short: bool, untried: bool, has_source: bool) -> bool {
    !complete && short && !untried && !has_source
}

/// When a peer that may be starving looks again: `delay` after its last
/// announce, and not before `now`.
pub fn starving_look_at(now: Time, last_announce: Option<Time>, delay: Duration) -> Time {
    last_announce.map_or(now, |t| (t + delay).max(now))
}

/// The delay after a starving peer's announce before it looks again: twice
/// the last one, at most the `announce_interval`.
pub fn next_starving_delay(delay: Duration, announce_interval: Duration) -> Duration {
    (delay * 2).min(announce_interval)
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

    #[test]
    fn a_starving_peer_asks_again_sooner_then_less_often() {
        assert!(is_starving(false, true, false, false));
        assert!(!is_starving(true, true, false, false), "a seed wants nothing");
        assert!(
            !is_starving(false, false, false, false),
            "enough neighbours: wait for them"
        );
        assert!(!is_starving(false, true, true, false), "someone left to try");
        assert!(!is_starving(false, true, false, true), "a source");
        let s = Time::from_secs;
        assert_eq!(
            starving_look_at(s(3), Some(s(1)), STARVING_REANNOUNCE),
            s(3),
            "not before now"
        );
        assert_eq!(
            starving_look_at(s(1), Some(s(1)), STARVING_REANNOUNCE),
            s(1) + STARVING_REANNOUNCE
        );
        assert_eq!(starving_look_at(s(7), None, STARVING_REANNOUNCE), s(7));
        let mut d = STARVING_REANNOUNCE;
        let mut seen = Vec::new();
        for _ in 0..10 {
            d = next_starving_delay(d, Duration::from_secs(10));
            seen.push(d.as_millis());
        }
        assert_eq!(
            seen,
            [
                1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000
            ]
        );
    }
}
