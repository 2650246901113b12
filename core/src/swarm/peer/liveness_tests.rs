//! How a peer keeps its download going when sources go away: it finds the
//! seed whatever the announce order, asks the tracker again soon when it has
//! no source, retries a tracker it cannot reach with backoff, moves requests
//! away from a neighbour gone silent (and asks it again after a pause), and
//! gives away unchoke slots its neighbours leave idle. Each rule is one
//! test; `tests/liveness.rs` checks them together over random swarms.

use std::time::Duration;

use super::*;
use crate::node::Command;
use crate::pieces::BlockRef;
use crate::swarm::Leave;
use crate::swarm::choker::slots_open_at;
use crate::testing::{dialled, outputs as drain};

const TRACKER: NodeId = NodeId(100);

fn ms(m: u64) -> Time {
    Time::ZERO + Duration::from_millis(m)
}

/// Messages `out` sends to `to`.
fn sent_to(out: &[Output], to: NodeId) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transmit(t) if t.to == to => Some(t.msg.clone()),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Eight pieces of four 16 KiB blocks.
fn layout() -> PieceLayout {
    PieceLayout::new(8 * 65_536, 65_536, 16_384).unwrap()
}

/// A peer started at time zero, its tracker connection open and its first
/// announce answered with `peers`.
fn started(id: u32, have: Bitfield, config: SwarmConfig, peers: Vec<NodeId>) -> Peer {
    let mut p = Peer::new(NodeId(id), TRACKER, layout(), have, config, 11);
    p.handle_start(Time::ZERO);
    p.handle_connection(TRACKER, ConnectionEvent::Opened, Time::ZERO);
    let reply = Message::AnnounceReply {
        interval_s: 120,
        peers,
    };
    p.handle_message(TRACKER, reply, Time::ZERO);
    p
}

/// Runs every timer due up to `until`, in order; what the peer said.
fn run_until(p: &mut Peer, until: Time) -> Vec<(Time, Output)> {
    let mut out = Vec::new();
    while let Some(t) = p.poll_timeout().filter(|&t| t <= until) {
        p.handle_timeout(t);
        out.extend(drain(p).into_iter().map(|o| (t, o)));
    }
    out
}

/// The initial seed of a swarm whose peers leave at completion asks the
/// tracker for peers like anyone else, and dials those that announced
/// before it: they cannot know it. (It used to ask for none, and a swarm
/// whose peers all announced first waited for their next announce, 120 s.)
#[test]
fn the_seed_asks_for_peers_and_dials_those_that_came_first() {
    let config = SwarmConfig {
        leave: Leave::AtCompletion,
        ..SwarmConfig::default()
    };
    let mut seed = Peer::new(NodeId(0), TRACKER, layout(), Bitfield::full(8), config, 1);
    seed.handle_start(Time::ZERO);
    seed.handle_connection(TRACKER, ConnectionEvent::Opened, Time::ZERO);
    let out = drain(&mut seed);
    let numwant = sent_to(&out, TRACKER).iter().find_map(|m| match m {
        Message::Announce { numwant, .. } => Some(*numwant),
        _ => None,
    });
    assert_eq!(numwant, Some(config.numwant));
    let early = vec![NodeId(1), NodeId(2)];
    let reply = Message::AnnounceReply {
        interval_s: 120,
        peers: early.clone(),
    };
    seed.handle_message(TRACKER, reply, Time::ZERO);
    let dialled: Vec<NodeId> = dialled(&drain(&mut seed));
    assert_eq!(dialled.len(), 2);
    assert!(early.iter().all(|p| dialled.contains(p)), "{dialled:?}");
}

/// A peer with nothing to fetch from (its only neighbour has nothing it
/// lacks) and nobody left to try asks the tracker again 500 ms after its
/// last announce, then after 1 s, 2 s, …; once a neighbour can serve it, it
/// stops asking early.
#[test]
fn a_peer_without_a_source_asks_the_tracker_again_soon_then_less_often() {
    let empty = NodeId(7);
    let mut p = started(1, Bitfield::new(8), SwarmConfig::default(), vec![empty]);
    p.handle_connection(empty, ConnectionEvent::Opened, Time::ZERO);
    p.handle_message(empty, Message::Bitfield(Bitfield::new(8)), Time::ZERO);
    drain(&mut p);
    let announces: Vec<Time> = run_until(&mut p, ms(8_000))
        .into_iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(t) if t.to == TRACKER))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(announces, [ms(500), ms(1_500), ms(3_500), ms(7_500)]);

    // The neighbour gets a piece and unchokes us: a source, no more early
    // announces.
    p.handle_message(empty, Message::Have { piece: 3 }, ms(8_000));
    p.handle_message(empty, Message::Unchoke, ms(8_000));
    drain(&mut p);
    let later = run_until(&mut p, ms(60_000));
    assert!(
        !later
            .iter()
            .any(|(_, o)| matches!(o, Output::Transmit(t) if t.to == TRACKER)),
        "{later:?}"
    );
}

/// An announce that cannot reach the tracker is sent again after 1 s, 2 s,
/// 4 s, … (each failure said in an event), and an answer resets the delay.
#[test]
fn a_tracker_that_cannot_be_reached_is_retried_with_backoff() {
    let mut p = Peer::new(
        NodeId(1),
        TRACKER,
        layout(),
        Bitfield::new(8),
        SwarmConfig::default(),
        3,
    );
    p.handle_start(Time::ZERO);
    let mut retries = Vec::new();
    let mut now = Time::ZERO;
    for _ in 0..4 {
        // Our `Connect` fails; the retry comes after the backoff.
        p.handle_connection(TRACKER, ConnectionEvent::Failed, now);
        let out = drain(&mut p);
        let retry = events(&out).into_iter().find_map(|e| match e {
            Event::AnnounceFailed { retry } => Some(retry),
            _ => None,
        });
        let retry = retry.expect("the failure is reported");
        retries.push(retry.as_secs());
        now += retry;
        // The announce timer (not an earlier one) brings the next attempt.
        let due = run_until(&mut p, now);
        let dialled = due
            .iter()
            .any(|(_, o)| matches!(o, Output::Command(Command::Connect { peer }) if *peer == TRACKER));
        assert!(dialled, "dials the tracker again at {now:?}: {due:?}");
    }
    assert_eq!(retries, [1, 2, 4, 8]);
    p.handle_connection(TRACKER, ConnectionEvent::Opened, now);
    let reply = Message::AnnounceReply {
        interval_s: 120,
        peers: vec![],
    };
    p.handle_message(TRACKER, reply, now);
    p.handle_connection(TRACKER, ConnectionEvent::Closed, now);
    drain(&mut p);
    // Nothing was pending: a close after the answer is no failure. The
    // next announce fails from scratch.
    p.handle_connection(TRACKER, ConnectionEvent::Failed, now);
    assert!(events(&drain(&mut p)).is_empty());
}

/// The silent neighbour and the idle one of the two tests below.
const SILENT: NodeId = NodeId(10);
const IDLE: NodeId = NodeId(11);

/// A peer connected to [`SILENT`], which holds every piece and unchokes it
/// at time zero, and to [`IDLE`], which has said nothing yet; what it asked
/// of [`SILENT`] (its pipeline of four blocks).
fn asking_a_silent_neighbour() -> (Peer, Vec<BlockRef>) {
    let mut p = started(1, Bitfield::new(8), SwarmConfig::default(), vec![]);
    for q in [SILENT, IDLE] {
        p.handle_connection(q, ConnectionEvent::Opened, Time::ZERO);
    }
    p.handle_message(SILENT, Message::Bitfield(Bitfield::full(8)), Time::ZERO);
    p.handle_message(SILENT, Message::Unchoke, Time::ZERO);
    let asked: Vec<BlockRef> = sent_to(&drain(&mut p), SILENT)
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 4, "the pipeline");
    (p, asked)
}

/// Without serial uploads, requests to a neighbour that has sent nothing
/// for 500 ms (it hung, or its link went down) move to a neighbour that
/// unchokes us and that we ask nothing of.
#[test]
fn requests_at_a_silent_neighbour_move_to_an_idle_one() {
    let (mut p, asked) = asking_a_silent_neighbour();
    let piece = asked[0].piece;
    // The other neighbour holds only that piece, and unchokes us.
    p.handle_message(IDLE, Message::Bitfield(Bitfield::of(8, &[piece])), ms(10));
    p.handle_message(IDLE, Message::Unchoke, ms(10));
    assert_eq!(
        sent_to(&drain(&mut p), IDLE),
        [Message::Interested],
        "nothing to move yet"
    );
    let out: Vec<Output> = run_until(&mut p, ms(499)).into_iter().map(|(_, o)| o).collect();
    assert!(
        sent_to(&out, IDLE).is_empty(),
        "silent for less than 500 ms: {out:?}"
    );
    let out: Vec<Output> = run_until(&mut p, ms(500)).into_iter().map(|(_, o)| o).collect();
    let first = asked[0];
    assert!(
        sent_to(&out, IDLE).contains(&Message::Request(first)),
        "asked of the idle neighbour: {out:?}"
    );
    assert!(sent_to(&out, SILENT).contains(&Message::Cancel(first)));
}

/// Once every request at a silent neighbour has moved away it is paused
/// for its silence limit (an event `RequestsTimedOut`), and asked again
/// when the pause ends: nothing else would ask it, since it sends nothing.
/// (Without the pause a downloader whose last piece only a silent
/// neighbour and a suspect held waited for good.)
#[test]
fn a_silent_neighbour_whose_requests_all_moved_is_asked_again_after_a_pause() {
    let (mut p, asked) = asking_a_silent_neighbour();
    assert!(asked.iter().all(|b| b.piece == asked[0].piece), "{asked:?}");
    p.handle_message(
        IDLE,
        Message::Bitfield(Bitfield::of(8, &[asked[0].piece])),
        ms(10),
    );
    p.handle_message(IDLE, Message::Unchoke, ms(10));
    drain(&mut p);
    let mut out: Vec<Output> = run_until(&mut p, ms(500)).into_iter().map(|(_, o)| o).collect();
    // Each block the idle neighbour sends brings the next one over.
    for (k, &block) in asked.iter().enumerate() {
        assert!(
            sent_to(&out, IDLE).contains(&Message::Request(block)),
            "block {k} moved: {out:?}"
        );
        assert!(sent_to(&out, SILENT).contains(&Message::Cancel(block)));
        let last = k + 1 == asked.len();
        assert_eq!(
            events(&out).contains(&Event::RequestsTimedOut { peer: SILENT }),
            last,
            "paused once nothing is left there (block {k})"
        );
        p.handle_message(IDLE, Message::Block(block), ms(501 + k as u64));
        out = drain(&mut p);
    }
    // Moved at 503 ms: paused for 500 ms.
    let out: Vec<Output> = run_until(&mut p, ms(1002)).into_iter().map(|(_, o)| o).collect();
    assert!(sent_to(&out, SILENT).is_empty(), "paused: {out:?}");
    let out: Vec<Output> = run_until(&mut p, ms(1003)).into_iter().map(|(_, o)| o).collect();
    assert!(
        sent_to(&out, SILENT)
            .iter()
            .any(|m| matches!(m, Message::Request(b) if b.piece != asked[0].piece)),
        "asked again after its pause: {out:?}"
    );
}

/// An uploader whose unchoked neighbours ask it for nothing for 500 ms
/// unchokes another interested neighbour on top of them, rather than let
/// its uplink idle until the next rechoke; a neighbour that keeps asking
/// keeps its slot to itself.
#[test]
fn slots_left_idle_go_to_a_waiting_neighbour() {
    let config = SwarmConfig {
        unchoke_slots: 1,
        ..SwarmConfig::default()
    };
    let (busy, quiet, waiting) = (NodeId(10), NodeId(11), NodeId(12));
    let mut p = started(0, Bitfield::full(8), config, vec![]);
    for q in [busy, quiet, waiting] {
        p.handle_connection(q, ConnectionEvent::Opened, Time::ZERO);
        p.handle_message(q, Message::Bitfield(Bitfield::new(8)), Time::ZERO);
    }
    // Two slots (one regular, one optimistic) for three interested.
    p.handle_message(busy, Message::Interested, Time::ZERO);
    p.handle_message(quiet, Message::Interested, Time::ZERO);
    p.handle_message(waiting, Message::Interested, Time::ZERO);
    run_until(&mut p, slots_open_at(Time::ZERO));
    drain(&mut p);
    let unchoked = p.unchoked();
    assert_eq!(unchoked.len(), 2);
    // Whoever got the slots: the first asks every 100 ms, the other never.
    let mut holders: Vec<NodeId> = unchoked.into_iter().collect();
    let left_out = [busy, quiet, waiting]
        .into_iter()
        .find(|q| !holders.contains(q))
        .unwrap();
    let asker = holders.remove(0);
    // Unchoked when the slots opened, at 50 ms.
    for t in (100..=500).step_by(100) {
        let block = BlockRef {
            piece: 0,
            offset: 0,
            len: 16_384,
        };
        p.handle_message(asker, Message::Request(block), ms(t));
        p.handle_sent(asker, ms(t));
        run_until(&mut p, ms(t));
        drain(&mut p);
    }
    assert!(!p.unchoked().contains(&left_out), "nobody idle for 500 ms yet");
    run_until(&mut p, ms(550));
    assert!(
        p.unchoked().contains(&left_out),
        "the silent neighbour's slot is given away: {:?}",
        p.unchoked()
    );
}

/// A super-seed learns that a piece left when a neighbour reports holding
/// it; a neighbour offered every piece takes the seed for a seed and
/// reports nothing. Should it leave, its unreported pieces are offered to
/// the others again (they would wait forever otherwise).
#[test]
fn a_super_seed_offers_again_what_a_departed_neighbour_never_reported() {
    let config = SwarmConfig {
        super_seed: true,
        ..SwarmConfig::default()
    };
    let two = PieceLayout::new(2 * 65_536, 65_536, 16_384).unwrap();
    let mut seed = Peer::new(NodeId(0), TRACKER, two, Bitfield::full(2), config, 5);
    seed.handle_start(Time::ZERO);
    let (first, other) = (NodeId(1), NodeId(2));
    // The first connects as the seed starts and has its slots once they
    // open; the other connects later.
    let open = slots_open_at(Time::ZERO);
    let mut out = Vec::new();
    for (q, at) in [(first, Time::ZERO), (other, open)] {
        out.extend(run_until(&mut seed, at).into_iter().map(|(_, o)| o));
        seed.handle_connection(q, ConnectionEvent::Opened, at);
        seed.handle_message(q, Message::Bitfield(Bitfield::new(2)), at);
    }
    let offers = |out: &[Output], q: NodeId| -> usize {
        sent_to(out, q)
            .iter()
            .filter(|m| matches!(m, Message::Have { .. }))
            .count()
    };
    out.extend(drain(&mut seed));
    assert_eq!((offers(&out, first), offers(&out, other)), (2, 0), "{out:?}");
    // The first downloads both and leaves without a word.
    seed.handle_connection(first, ConnectionEvent::Closed, ms(100));
    let out = drain(&mut seed);
    assert!(seed.is_super_seeding());
    assert_eq!(offers(&out, other), 2, "offered to the other: {out:?}");
}

/// A seed that has just started keeps its slots shut while its neighbours
/// connect, then fills them at random among everyone waiting: filled as
/// interest arrived they would go to the first to connect, a race between
/// processes on a real network and the host listed first in the simulator.
#[test]
fn a_starting_seed_gives_its_slots_at_random_once_the_swarm_has_connected() {
    let neighbours: Vec<NodeId> = (10..20).map(NodeId).collect();
    let open = slots_open_at(Time::ZERO);
    let mut late_ones_chosen = 0;
    for seed in 1..=8 {
        let mut p = Peer::new(
            NodeId(0),
            TRACKER,
            layout(),
            Bitfield::full(8),
            SwarmConfig::default(),
            seed,
        );
        p.handle_start(Time::ZERO);
        for (k, &q) in neighbours.iter().enumerate() {
            let at = ms(4 * k as u64); // one every 4 ms, all before 50 ms
            run_until(&mut p, at);
            p.handle_connection(q, ConnectionEvent::Opened, at);
            p.handle_message(q, Message::Bitfield(Bitfield::new(8)), at);
            p.handle_message(q, Message::Interested, at);
            assert!(p.unchoked().is_empty(), "seed {seed}: nobody before {open}");
        }
        run_until(&mut p, open);
        let unchoked = p.unchoked();
        assert_eq!(
            unchoked.len(),
            5,
            "seed {seed}: four slots and the optimistic one"
        );
        late_ones_chosen += unchoked.iter().filter(|q| !neighbours[..5].contains(q)).count();
    }
    // First come, first served would never choose the last five.
    assert!(
        late_ones_chosen >= 8,
        "{late_ones_chosen} of 40 slots went to the last five"
    );
}
