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
//! lost interest or left) at once, so its uplink does not idle for 10 s,
//! except in its first [`START_GRACE`] (50 ms): a node that has just started
//! leaves its slots shut while its neighbours connect, then fills them at
//! random among all who wait. Filled as interest arrives, they would go to
//! whoever connected first: on a real network the winner of a race between
//! processes, in the simulator the host listed first, so that in a swarm
//! whose fast peers are listed first the seed's first pieces would all go to
//! them in the simulator and to anyone on a real network.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::rng::{self, NodeRng};
use crate::{NodeId, Time};

/// How long a node that has just (re)started keeps its unchoke slots shut.
/// Longer than connecting, the handshake, the bitfield and the interest take
/// on a LAN or Mininet (the last of 16 peers is connected to the seed 13 ms
/// after the start there), short against sending a piece (256 KiB at
/// 20 Mbit/s take 105 ms): the seed's uplink idles once, for 50 ms.
pub const START_GRACE: Duration = Duration::from_millis(50);

/// When the slots of a node started at `started` open ([`START_GRACE`]).
pub fn slots_open_at(started: Time) -> Time {
    started + START_GRACE
}

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

impl Candidate {
    /// `peer` ranked by tit-for-tat: the bytes it sent us over the last
    /// window (`received`) or, once we are a seed and download nothing,
    /// the bytes we sent it (`sent`).
    pub fn tit_for_tat(peer: NodeId, seeding: bool, sent: u64, received: u64, snubbed: bool) -> Self {
        Candidate {
            peer,
            rate: if seeding { sent } else { received },
            snubbed,
        }
    }
}

/// Whether a neighbour snubs us: we are `interested` in it and it has sent
/// us nothing for `silent_for`, at least `snub_timeout`. The silence counts
/// from the later of our last received byte and the moment we became
/// interested; a snubbed neighbour gets no regular slot until it sends
/// again.
pub fn is_snubbed(interested: bool, silent_for: Duration, snub_timeout: Duration) -> bool {
    interested && silent_for >= snub_timeout
}

/// Whether a neighbour may get an unchoke slot: it is `interested` in us
/// or, while we super-seed ([`super::super_seed`]), it `lacks_pieces` —
/// a super-seed shows nobody its pieces before offering them, so nobody
/// could be interested in it first. Only the answer that counts is asked.
pub fn is_eligible(
    super_seeding: bool,
    interested: impl FnOnce() -> bool,
    lacks_pieces: impl FnOnce() -> bool,
) -> bool {
    if super_seeding {
        lacks_pieces()
    } else {
        interested()
    }
}

/// Whether an unchoked neighbour that loses interest in us is choked at
/// once, its slot going to someone else: yes, except while we super-seed,
/// where it keeps the slot for the next piece we offer it.
pub fn chokes_on_lost_interest(super_seeding: bool) -> bool {
    !super_seeding
}

/// When a peer rechokes: every `rechoke_interval`, and every
/// `optimistic_interval` with the optimistic slot rotated.
#[derive(Clone, Copy, Debug)]
pub struct ChokeClock {
    rechoke: Time,
    optimistic: Time,
    rechoke_interval: Duration,
    optimistic_interval: Duration,
}

impl ChokeClock {
    /// A clock started at `now`: the first rechoke one `rechoke_interval`
    /// later, the first rotation one `optimistic_interval` later.
    pub fn new(now: Time, rechoke_interval: Duration, optimistic_interval: Duration) -> Self {
        ChokeClock {
            rechoke: now + rechoke_interval,
            optimistic: now + optimistic_interval,
            rechoke_interval,
            optimistic_interval,
        }
    }

    /// When the clock next fires.
    pub fn next(&self) -> Time {
        self.rechoke.min(self.optimistic)
    }

    /// At `now`: `None` if nothing is due, else a rechoke is due, with the
    /// optimistic rotation (`Some(true)`) or without it; what was due is
    /// scheduled again one interval from `now`.
    pub fn fire(&mut self, now: Time) -> Option<bool> {
        let rechoke = self.rechoke <= now;
        let rotate = self.optimistic <= now;
        if rechoke {
            self.rechoke = now + self.rechoke_interval;
        }
        if rotate {
            self.optimistic = now + self.optimistic_interval;
        }
        (rechoke || rotate).then_some(rotate)
    }
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

    /// Slots that fell free between rechokes: with `busy` slots taken, which
    /// neighbours to unchoke, chosen uniformly at random among the
    /// `candidates` that `qualify` (choked neighbours that may have a slot).
    /// Candidates are drawn in a random order (Fisher-Yates, one step at a
    /// time) until the free slots are filled, so `qualify` is asked only of
    /// those drawn. The chosen are moved to the front of `candidates`;
    /// returns how many. Draws nothing at random when no slot is free.
    pub fn fill<T>(
        &self,
        busy: u32,
        candidates: &mut [T],
        mut qualify: impl FnMut(&T) -> bool,
        rng: &mut NodeRng,
    ) -> usize {
        let max = self.max_unchoked();
        if busy >= max {
            return 0;
        }
        let free = (max - busy) as usize;
        let mut chosen = 0;
        for i in 0..candidates.len() {
            if chosen == free {
                break;
            }
            let j = i + rng::below(rng, (candidates.len() - i) as u64) as usize;
            candidates.swap(i, j);
            if qualify(&candidates[i]) {
                candidates.swap(chosen, i);
                chosen += 1;
            }
        }
        chosen
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
    fn free_slots_go_to_qualifying_neighbours_at_random_and_no_more() {
        let mut rng = node_rng(3, NodeId(0));
        let choker = Choker::new(2); // 3 slots with the optimistic one
        let even = |p: &u32| p % 2 == 0;
        let mut all: Vec<u32> = (0..10).collect();
        assert_eq!(choker.fill(3, &mut all, even, &mut rng), 0, "no slot free");
        assert_eq!(all, (0..10).collect::<Vec<_>>(), "nothing drawn");
        assert_eq!(choker.fill(1, &mut all, even, &mut rng), 2);
        assert!(all[..2].iter().all(even), "{all:?}");
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "a permutation");
        let mut few = vec![1, 7, 4];
        assert_eq!(
            choker.fill(0, &mut few, even, &mut rng),
            1,
            "fewer qualify than slots are free"
        );
        assert_eq!(few[0], 4);
        // Uniform: every qualifying neighbour gets a slot about equally often.
        let mut won = [0u32; 10];
        for _ in 0..3000 {
            let mut w: Vec<u32> = (0..10).collect();
            let k = choker.fill(1, &mut w, even, &mut rng);
            for &p in &w[..k] {
                won[p as usize] += 1;
            }
        }
        for (p, &n) in won.iter().enumerate() {
            if p % 2 == 0 {
                assert!((1000..1400).contains(&n), "{won:?}");
            } else {
                assert_eq!(n, 0, "{won:?}");
            }
        }
    }

    #[test]
    fn a_neighbour_is_snubbed_only_while_we_want_something_from_it() {
        let t = Duration::from_secs(60);
        assert!(is_snubbed(true, Duration::from_secs(60), t));
        assert!(!is_snubbed(true, Duration::from_secs(59), t));
        assert!(!is_snubbed(false, Duration::from_secs(600), t));
    }

    #[test]
    fn a_super_seed_gives_slots_by_lack_of_pieces_and_keeps_them_without_interest() {
        assert!(is_eligible(
            false,
            || true,
            || unreachable!("only interest counts")
        ));
        assert!(!is_eligible(
            false,
            || false,
            || unreachable!("only interest counts")
        ));
        assert!(is_eligible(
            true,
            || unreachable!("only the lack counts"),
            || true
        ));
        assert!(!is_eligible(
            true,
            || unreachable!("only the lack counts"),
            || false
        ));
        assert!(chokes_on_lost_interest(false));
        assert!(!chokes_on_lost_interest(true));
    }

    #[test]
    fn a_seed_ranks_by_what_it_sent_a_downloader_by_what_it_received() {
        assert_eq!(Candidate::tit_for_tat(NodeId(1), true, 10, 99, false).rate, 10);
        assert_eq!(Candidate::tit_for_tat(NodeId(1), false, 10, 99, true).rate, 99);
    }

    #[test]
    fn the_clock_rechokes_every_interval_and_rotates_every_third() {
        let mut clock = ChokeClock::new(
            Time::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(30),
        );
        assert_eq!(clock.next(), Time::from_secs(15));
        assert_eq!(clock.fire(Time::from_secs(14)), None);
        let mut fired = Vec::new();
        while clock.next() <= Time::from_secs(65) {
            let at = clock.next();
            fired.push((at.as_nanos() / 1_000_000_000, clock.fire(at).unwrap()));
        }
        assert_eq!(
            fired,
            [
                (15, false),
                (25, false),
                (35, true),
                (45, false),
                (55, false),
                (65, true)
            ]
        );
        // Late: both due fire once, and count again from then.
        let mut late = ChokeClock::new(Time::ZERO, Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(late.fire(Time::from_secs(100)), Some(true));
        assert_eq!(late.next(), Time::from_secs(110));
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
