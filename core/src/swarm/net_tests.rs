//! Whole swarms on the shared test network ([`crate::testing`]): a tracker,
//! a seed and a few leechers trading pieces, with a leecher killed and
//! restarted, one hung, or a seed that sends corrupt blocks.

use super::blame::STRIKES_TO_SUSPEND;
use std::collections::BTreeSet;
use std::time::Duration;

use super::{Peer, SwarmConfig, Tracker};
use crate::testing::{Disk, TestNet};
use crate::{Bitfield, BlockRef, Command, Event, Message, NodeId, Output, PieceLayout, Time};

const TRACKER: NodeId = NodeId(100);
const SEED: NodeId = NodeId(0);
const PIECES: u32 = 16;
const LATENCY: Duration = Duration::from_millis(5);
/// Every uplink: 1 MB/s.
const RATE: f64 = 1e6;
/// Long enough for any of these swarms to finish.
const END: Time = Time::from_secs(300);

/// 16 pieces of four 16 KiB blocks: 1 MiB.
fn layout() -> PieceLayout {
    PieceLayout::new(u64::from(PIECES) * 65_536, 65_536, 16_384).unwrap()
}

fn bits(pieces: &BTreeSet<u32>) -> Bitfield {
    let mut b = Bitfield::new(PIECES);
    for &p in pieces {
        b.insert(p);
    }
    b
}

/// A tracker, a seed (node 0) and `leechers` peers (nodes 1, 2, …), every
/// uplink at [`RATE`]. A restarted leecher is a fresh peer holding the
/// pieces its disk verified.
fn swarm(leechers: u32, config: SwarmConfig) -> TestNet {
    let mut net = TestNet::new(LATENCY);
    net.add(Box::new(Tracker::new(TRACKER, config.announce_interval, 1)));
    let seed = Peer::new(SEED, TRACKER, layout(), Bitfield::full(PIECES), config, 1);
    net.add(Box::new(seed));
    net.set_rate(SEED, RATE);
    for i in 1..=leechers {
        let id = NodeId(i);
        net.add_restartable(move |disk: &Disk| {
            Box::new(Peer::new(id, TRACKER, layout(), bits(&disk.verified), config, 1))
        });
        net.set_rate(id, RATE);
    }
    net
}

fn leechers(n: u32) -> BTreeSet<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// Runs until every one of `peers` has completed (or [`END`]).
fn run_until_complete(net: &mut TestNet, peers: &BTreeSet<NodeId>) {
    net.run_while(END, |net| !net.completed().is_superset(peers));
}

/// Pieces `node` reported verified, in order.
fn verified(net: &TestNet, node: NodeId) -> Vec<u32> {
    net.events_of(node)
        .filter_map(|(_, e)| match e {
            Event::PieceVerified { piece } => Some(*piece),
            _ => None,
        })
        .collect()
}

/// Checks what every peer told storage: each piece that failed its hash
/// check held a block from `bad` and each that passed held none, since the
/// piece's previous check. Returns the failures.
fn check_verdicts(net: &TestNet, node: NodeId, bad: Option<NodeId>) -> u32 {
    let mut tainted = BTreeSet::new();
    let mut corrupt = 0;
    for (_, out) in net.outputs_of(node) {
        match out {
            Output::Command(Command::StoreBlock { from, block }) if Some(*from) == bad => {
                tainted.insert(block.piece);
            }
            Output::Event(Event::PieceVerified { piece }) => {
                assert!(
                    !tainted.remove(piece),
                    "{node}: piece {piece} from {bad:?} passed"
                );
            }
            Output::Event(Event::PieceCorrupt { piece }) => {
                assert!(
                    tainted.remove(piece),
                    "{node}: piece {piece} failed, no bad block"
                );
                corrupt += 1;
            }
            _ => {}
        }
    }
    corrupt
}

fn assert_no_violation(net: &TestNet) {
    let violations: Vec<_> = net
        .events()
        .filter(|(_, _, e)| matches!(e, Event::ProtocolViolation { .. }))
        .collect();
    assert!(violations.is_empty(), "{violations:?}");
}

/// A seed and three leechers: every leecher verifies every piece exactly
/// once, and the leechers trade among themselves, so the seed sends less
/// than three copies of the file.
#[test]
fn a_seed_and_three_leechers_all_finish_with_every_piece_verified() {
    let mut net = swarm(3, SwarmConfig::default());
    run_until_complete(&mut net, &leechers(3));
    assert_eq!(*net.completed(), leechers(3));
    let file = layout().file_len();
    for peer in leechers(3) {
        let mut pieces = verified(&net, peer);
        pieces.sort_unstable();
        assert_eq!(pieces, (0..PIECES).collect::<Vec<_>>(), "{peer}");
        assert_eq!(net.disk(peer).verified.len() as u32, PIECES);
        assert_eq!(check_verdicts(&net, peer, None), 0);
    }
    let shared: u64 = leechers(3).iter().map(|&p| net.uploaded(p)).sum();
    assert!(net.uploaded(SEED) < 3 * file, "seed sent {}", net.uploaded(SEED));
    // Every byte a leecher holds came from the seed or another leecher.
    assert!(net.uploaded(SEED) + shared >= 3 * file, "{shared}");
    assert_no_violation(&net);
}

/// A leecher killed half-way is restarted five seconds later from its
/// disk: it asks for none of the pieces it had verified, fetches exactly
/// the others, and completes; its neighbours saw it go.
#[test]
fn a_leecher_killed_mid_transfer_resumes_from_its_disk_after_a_restart() {
    let victim = NodeId(1);
    let mut net = swarm(3, SwarmConfig::default());
    let half = net.run_while(END, |net| net.disk(victim).verified.len() < PIECES as usize / 2);
    assert!(half, "the victim never got half the file");
    net.kill(victim);
    let killed = net.now();
    let kept = net.disk(victim).verified.clone();
    assert!(kept.len() >= PIECES as usize / 2 && kept.len() < PIECES as usize);
    net.run_until(killed + Duration::from_secs(5));
    for other in [SEED, NodeId(2), NodeId(3)] {
        let saw = net.first(other, |e| *e == Event::Disconnected { peer: victim });
        assert!(
            saw.is_some_and(|t| t > killed),
            "{other} saw the victim go at {saw:?}"
        );
    }
    net.restart(victim);
    let restarted = net.now();
    run_until_complete(&mut net, &leechers(3));
    assert_eq!(*net.completed(), leechers(3));
    let done = net.last(victim, |e| *e == Event::DownloadComplete).unwrap();
    assert!(done > restarted, "completed at {done}, restarted at {restarted}");
    let asked_again: Vec<u32> = net
        .outputs_of(victim)
        .filter(|(t, _)| *t >= restarted)
        .filter_map(|(_, o)| match o {
            Output::Transmit(t) => match t.msg {
                Message::Request(b) if kept.contains(&b.piece) => Some(b.piece),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(asked_again.is_empty(), "asked again for {asked_again:?}");
    let after: BTreeSet<u32> = net
        .events_of(victim)
        .filter(|(t, _)| *t >= restarted)
        .filter_map(|(_, e)| match e {
            Event::PieceVerified { piece } => Some(*piece),
            _ => None,
        })
        .collect();
    let missing: BTreeSet<u32> = (0..PIECES).filter(|p| !kept.contains(p)).collect();
    assert_eq!(after, missing, "after the restart, exactly what was missing");
    assert_no_violation(&net);
}

/// Blocks `peer` asked of `of` up to `until` and neither got from it nor
/// cancelled there.
fn outstanding(net: &TestNet, peer: NodeId, of: NodeId, until: Time) -> BTreeSet<BlockRef> {
    let mut asked = BTreeSet::new();
    for (_, out) in net.outputs_of(peer).take_while(|(t, _)| *t <= until) {
        match out {
            Output::Transmit(t) if t.to == of => match t.msg {
                Message::Request(b) => {
                    asked.insert(b);
                }
                Message::Cancel(b) => {
                    asked.remove(&b);
                }
                _ => {}
            },
            Output::Event(Event::BlockReceived { from, block } | Event::BlockDiscarded { from, block })
                if *from == of =>
            {
                asked.remove(block);
            }
            _ => {}
        }
    }
    asked
}

/// A leecher that hangs while it serves holds up nobody: every block its
/// neighbours asked of it and did not get is cancelled there and fetched
/// elsewhere, and the others finish while it is hung. Resumed, it
/// finishes too.
#[test]
fn a_hung_leechers_requests_move_elsewhere_and_the_others_finish_without_it() {
    let hung = NodeId(3);
    let mut net = swarm(3, SwarmConfig::default());
    // It hangs just as a neighbour asks it for a block.
    let asked = |net: &TestNet| {
        net.log().last().is_some_and(
            |(_, _, o)| matches!(o, Output::Transmit(m) if m.to == hung && matches!(m.msg, Message::Request(_))),
        )
    };
    let serving = net.run_while(END, |net| !asked(net));
    assert!(serving, "nobody asked it for anything");
    net.hang(hung);
    let hung_at = net.now();
    let resume_at = hung_at + Duration::from_secs(60);
    run_until_complete(&mut net, &leechers(2));
    assert_eq!(*net.completed(), leechers(2), "the others finish without it");
    let others_done = net.now();
    assert!(others_done < resume_at, "done at {others_done}");
    // What it was asked and had not sent when it hung was cancelled there
    // and fetched elsewhere.
    let mut stuck = 0;
    for peer in leechers(2) {
        stuck += outstanding(&net, peer, hung, hung_at).len();
        let left = outstanding(&net, peer, hung, others_done);
        assert!(
            left.is_empty(),
            "{peer} still waits on the hung peer for {left:?}"
        );
    }
    assert!(stuck > 0, "nothing was waiting at the hung peer");
    net.run_until(resume_at);
    net.resume(hung);
    run_until_complete(&mut net, &leechers(3));
    let done = net.first(hung, |e| *e == Event::DownloadComplete).unwrap();
    assert!(
        done >= resume_at,
        "it completed at {done}, hung until {resume_at}"
    );
    assert_no_violation(&net);
}

/// A second seed sends corrupt blocks. Every piece holding one of its
/// blocks fails its check and is fetched again, every other passes, and
/// every leecher still completes. Each leecher bans the liar once it is
/// shown (a piece all its own, or three shared ones) and stores no block
/// from it afterwards; nobody honest is banned.
#[test]
fn pieces_with_corrupt_blocks_fail_their_check_and_are_fetched_again() {
    let bad = NodeId(9);
    let config = SwarmConfig::default();
    let mut net = swarm(3, config);
    net.add(Box::new(Peer::new(
        bad,
        TRACKER,
        layout(),
        Bitfield::full(PIECES),
        config,
        1,
    )));
    net.set_rate(bad, RATE);
    net.send_corrupt(bad);
    run_until_complete(&mut net, &leechers(3));
    assert_eq!(*net.completed(), leechers(3));
    let corrupt: u32 = leechers(3)
        .iter()
        .map(|&p| check_verdicts(&net, p, Some(bad)))
        .sum();
    assert!(corrupt > 0, "the bad seed sent nobody a block");
    for peer in leechers(3) {
        assert_eq!(net.disk(peer).verified, (0..PIECES).collect(), "{peer}");
        let mut banned_at = None;
        let mut failed = 0;
        for (i, (_, out)) in net.outputs_of(peer).enumerate() {
            match out {
                Output::Event(Event::PeerBanned { peer: who }) => {
                    assert_eq!(*who, bad, "{peer} banned an honest peer");
                    assert!(banned_at.replace(i).is_none(), "{peer} banned {bad} twice");
                }
                Output::Event(Event::PieceCorrupt { .. }) => failed += 1,
                Output::Command(Command::StoreBlock { from, .. }) if *from == bad => {
                    assert!(
                        banned_at.is_none(),
                        "{peer} stored a block from {bad} after banning it"
                    );
                }
                _ => {}
            }
        }
        assert!(
            failed <= STRIKES_TO_SUSPEND,
            "{peer}: {failed} pieces failed, more than the strikes that suspend"
        );
        if failed > 0 {
            assert!(banned_at.is_some(), "{peer}: {failed} bad pieces and no ban");
        }
    }
    assert_no_violation(&net);
}
