//! Single peers fed by hand: how many neighbours a peer dials and
//! accepts, the order of its `Have`s, requests stuck at a serial uploader,
//! the serial uploader's order, and tit-for-tat.

use super::*;
use crate::node::Command;
use crate::pieces::BlockRef;
use crate::swarm::choker::slots_open_at;
use crate::testing::{dialled, outputs as drain};

const TRACKER: NodeId = NodeId(100);

/// A peer dials at most half of `max_peers` itself, however many peers
/// the tracker hands it, and accepts peers that dial it up to the full
/// `max_peers`, attempts in flight included. Dialling them all left
/// every peer refusing every other's attempts (N = 128, max_peers 40:
/// 2.07 x the bound when it did; 1.24 dialling half).
#[test]
fn a_peer_dials_half_of_max_peers_and_keeps_the_rest_for_incoming() {
    let layout = PieceLayout::new(16 * 65_536, 65_536, 16_384).unwrap();
    let config = SwarmConfig {
        max_peers: 8,
        ..SwarmConfig::default()
    };
    let mut p = Peer::new(NodeId(1), TRACKER, layout, Bitfield::new(16), config, 7);
    p.handle_start(Time::ZERO);
    p.handle_connection(TRACKER, ConnectionEvent::Opened, Time::ZERO);
    drain(&mut p);
    let offered: Vec<NodeId> = (10..30).map(NodeId).collect();
    let reply = Message::AnnounceReply {
        interval_s: 120,
        peers: offered.clone(),
    };
    p.handle_message(TRACKER, reply, Time::ZERO);
    let dialled: Vec<NodeId> = dialled(&drain(&mut p));
    assert_eq!(dialled.len(), 4, "half of max_peers 8: {dialled:?}");
    assert!(dialled.iter().all(|d| offered.contains(d)));

    // Peers that dial us take the other half; the ninth is refused.
    let mut refused = Vec::new();
    for k in 0..5 {
        let caller = NodeId(50 + k);
        p.handle_connection(caller, ConnectionEvent::Opened, Time::ZERO);
        for o in drain(&mut p) {
            match o {
                Output::Command(Command::Disconnect { peer }) => refused.push(peer),
                Output::Transmit(t) => {
                    assert_eq!(t.to, caller);
                    assert!(matches!(t.msg, Message::Bitfield(_)));
                }
                Output::Event(Event::Connected { peer, outgoing }) => {
                    assert_eq!((peer, outgoing), (caller, false));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(refused, [NodeId(54)], "4 dialled + 4 accepted = max_peers");
    assert_eq!(p.neighbours().count(), 4);

    // Our own attempts still complete: 8 neighbours in all.
    for &d in &dialled {
        p.handle_connection(d, ConnectionEvent::Opened, Time::ZERO);
    }
    assert_eq!(p.neighbours().count(), 8);
}

/// Each verified piece is announced to the neighbours in a fresh order.
#[test]
fn a_verified_piece_is_announced_in_a_random_order() {
    let layout = PieceLayout::new(4 * 16_384, 16_384, 16_384).unwrap();
    let mut p = Peer::new(
        NodeId(1),
        TRACKER,
        layout,
        Bitfield::new(4),
        SwarmConfig::default(),
        3,
    );
    p.handle_start(Time::ZERO);
    let remotes: Vec<NodeId> = (10..30).map(NodeId).collect();
    for &r in &remotes {
        p.handle_connection(r, ConnectionEvent::Opened, Time::ZERO);
        p.handle_message(r, Message::Unchoke, Time::ZERO);
    }
    // One neighbour holds everything and sends it all.
    let seed = remotes[0];
    p.handle_message(seed, Message::Bitfield(Bitfield::full(4)), Time::ZERO);
    drain(&mut p);
    let mut orders = Vec::new();
    for piece in 0..4 {
        let block = BlockRef {
            piece,
            offset: 0,
            len: 16_384,
        };
        p.handle_message(seed, Message::Block(block), Time::ZERO);
        // The sim answers VerifyPiece with Verified.
        p.handle_storage(StorageResult::Verified { piece }, Time::ZERO);
        let order: Vec<NodeId> = drain(&mut p)
            .into_iter()
            .filter_map(|o| match o {
                Output::Transmit(crate::Transmit {
                    to,
                    msg: Message::Have { piece: h },
                }) if h == piece => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(order.len(), remotes.len() - 1, "every neighbour but the seed");
        orders.push(order);
    }
    let sorted = |o: &Vec<NodeId>| o.windows(2).all(|w| w[0] < w[1]);
    assert!(!orders.iter().all(sorted), "{orders:?}");
    assert!(orders.windows(2).any(|w| w[0] != w[1]), "{orders:?}");
}

/// With serial uploads, a block asked of a neighbour that has sent
/// nothing for 50 ms moves to an unchoking neighbour we ask nothing of:
/// asked there, cancelled at the silent one. Should the silent one send
/// it anyway, the first copy to arrive cancels the other. Without serial
/// uploads (every request answered at once) nothing moves.
#[test]
fn a_request_stuck_in_a_serial_uploaders_queue_moves_to_an_idle_neighbour() {
    let (a, b) = (NodeId(10), NodeId(11));
    let ms = |m: u64| Time::ZERO + std::time::Duration::from_millis(m);
    let to = |peer: NodeId, out: &[Output]| -> Vec<Message> {
        out.iter()
            .filter_map(|o| match o {
                Output::Transmit(t) if t.to == peer => Some(t.msg.clone()),
                _ => None,
            })
            .filter(|m| matches!(m, Message::Request(_) | Message::Cancel(_)))
            .collect()
    };
    let to_b = |out: &[Output]| to(b, out);
    for serial in [true, false] {
        // Two pieces of four blocks: the pipeline asks A for all of one.
        let layout = PieceLayout::new(2 * 65_536, 65_536, 16_384).unwrap();
        let config = SwarmConfig {
            serial_uploads: serial,
            ..SwarmConfig::default()
        };
        let mut p = Peer::new(NodeId(1), TRACKER, layout, Bitfield::new(2), config, 5);
        p.handle_start(Time::ZERO);
        p.handle_connection(a, ConnectionEvent::Opened, Time::ZERO);
        p.handle_connection(b, ConnectionEvent::Opened, Time::ZERO);
        p.handle_message(a, Message::Bitfield(Bitfield::full(2)), Time::ZERO);
        p.handle_message(b, Message::Bitfield(Bitfield::new(2)), Time::ZERO);
        p.handle_message(a, Message::Unchoke, Time::ZERO);
        let asked_a: Vec<BlockRef> = drain(&mut p)
            .into_iter()
            .filter_map(|o| match o {
                Output::Transmit(crate::Transmit {
                    to,
                    msg: Message::Request(r),
                }) if to == a => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(asked_a.len(), 4);
        let piece = asked_a[0].piece;
        assert!(asked_a.iter().all(|r| r.piece == piece), "{asked_a:?}");
        // B gets that piece (and only it) and unchokes us 30 ms in: A
        // may still be about to send.
        p.handle_message(b, Message::Have { piece }, Time::ZERO);
        p.handle_message(b, Message::Unchoke, ms(30));
        assert_eq!(
            to_b(&drain(&mut p)),
            [],
            "serial {serial}: A silent for 30 ms only"
        );
        // And again at 60 ms: A has sent nothing since it was asked.
        // The request moves: asked of B, withdrawn from A.
        p.handle_message(b, Message::Choke, ms(60));
        p.handle_message(b, Message::Unchoke, ms(60));
        let first = layout.block(piece, 0);
        let out = drain(&mut p);
        let (want_b, want_a) = if serial {
            (vec![Message::Request(first)], vec![Message::Cancel(first)])
        } else {
            (vec![], vec![])
        };
        assert_eq!(to_b(&out), want_b, "serial {serial}: A silent for 60 ms");
        assert_eq!(to(a, &out), want_a, "serial {serial}: withdrawn from A");
        // A had already handed it to its transport, and its copy
        // arrives first: it is kept, and B's is cancelled.
        p.handle_message(a, Message::Block(first), ms(70));
        let want = if serial {
            vec![Message::Cancel(first)]
        } else {
            vec![]
        };
        assert_eq!(to_b(&drain(&mut p)), want, "serial {serial}");
    }
}

/// A serial uploader serves first the waiting neighbour with the least
/// to upload itself. A holds three pieces that nearly all our other
/// neighbours hold too, B one piece none of them holds: B's uplink has
/// work, A's hardly any, so A's piece goes first although A holds more
/// (and X, holding nothing, before both).
#[test]
fn a_serial_uploader_serves_first_the_neighbour_whose_pieces_are_common() {
    let layout = PieceLayout::new(8 * 65_536, 65_536, 16_384).unwrap();
    let config = SwarmConfig {
        serial_uploads: true,
        ..SwarmConfig::default()
    };
    let mut p = Peer::new(NodeId(1), TRACKER, layout, Bitfield::full(8), config, 3);
    p.handle_start(Time::ZERO);
    let (x, a, b) = (NodeId(10), NodeId(11), NodeId(12));
    let bits = |set: &[u32]| Bitfield::of(8, set);
    let held = [(x, bits(&[])), (a, bits(&[1, 2, 3])), (b, bits(&[0]))];
    let fillers = (20..26).map(|k| (NodeId(k), bits(&[1, 2, 3])));
    for (peer, have) in held.iter().cloned().chain(fillers) {
        p.handle_connection(peer, ConnectionEvent::Opened, Time::ZERO);
        p.handle_message(peer, Message::Bitfield(have), Time::ZERO);
    }
    for peer in [x, a, b] {
        p.handle_message(peer, Message::Interested, Time::ZERO);
    }
    let open = slots_open_at(Time::ZERO);
    p.handle_timeout(open);
    drain(&mut p);
    assert!([x, a, b].iter().all(|q| p.unchoked().contains(q)));
    // X asks first and is served at once; A and B ask while it is.
    for (peer, piece) in [(x, 7), (a, 5), (b, 6)] {
        for i in 0..4 {
            p.handle_message(peer, Message::Request(layout.block(piece, i)), open);
        }
    }
    let mut served = Vec::new();
    loop {
        let blocks: Vec<(NodeId, u32)> = drain(&mut p)
            .into_iter()
            .filter_map(|o| match o {
                Output::Transmit(crate::Transmit {
                    to,
                    msg: Message::Block(blk),
                }) => Some((to, blk.piece)),
                _ => None,
            })
            .collect();
        if blocks.is_empty() {
            break;
        }
        for (to, piece) in blocks {
            served.push((to.0, piece));
            p.handle_sent(to, open);
        }
    }
    let pieces: Vec<(u32, u32)> = served.chunks(4).map(|c| c[0]).collect();
    assert!(
        served.chunks(4).all(|c| c.iter().all(|s| *s == c[0])),
        "{served:?}"
    );
    assert_eq!(pieces, [(10, 7), (11, 5), (12, 6)], "X, then A, then B");
}

/// A leecher with 8 neighbours that hold every piece but the one it
/// has and all want it; four of them send it 5x more than the others.
#[test]
fn tit_for_tat_keeps_the_four_best_senders_and_rotates_the_optimistic_slot() {
    let layout = PieceLayout::new(64 * 65_536, 65_536, 16_384).unwrap();
    let mut have = Bitfield::new(64);
    have.insert(63); // something to trade
    let mut p = Peer::new(NodeId(1), TRACKER, layout, have, SwarmConfig::default(), 42);
    let remotes: Vec<NodeId> = (2..=9).map(NodeId).collect();
    p.handle_start(Time::ZERO);
    p.handle_connection(TRACKER, ConnectionEvent::Opened, Time::ZERO);
    let mut full_but_63 = Bitfield::full(64);
    full_but_63.remove(63);
    for &r in &remotes {
        p.handle_connection(r, ConnectionEvent::Opened, Time::ZERO);
        p.handle_message(r, Message::Bitfield(full_but_63.clone()), Time::ZERO);
        p.handle_message(r, Message::Interested, Time::ZERO);
    }
    drain(&mut p);
    assert!(
        p.unchoked().is_empty(),
        "slots stay shut while the swarm connects"
    );
    p.handle_timeout(slots_open_at(Time::ZERO));
    drain(&mut p);
    assert_eq!(p.unchoked().len(), 5, "then every free slot is filled");
    let mut optimistic = Vec::new();
    for round in 1..=6u64 {
        let now = Time::from_secs(10 * round);
        for (k, &r) in remotes.iter().enumerate() {
            // The last four send 5 blocks per interval, the others 1
            // (duplicates count too: the rate is what crossed the link).
            let blocks = if k >= 4 { 5 } else { 1 };
            for _ in 0..blocks {
                let block = BlockRef {
                    piece: k as u32,
                    offset: 0,
                    len: 16_384,
                };
                p.handle_message(r, Message::Block(block), now);
            }
        }
        // Every unchoked neighbour asks for something (a neighbour that
        // asks for nothing leaves its slot idle: another would be
        // unchoked on top of it).
        let ours = BlockRef {
            piece: 63,
            offset: 0,
            len: 16_384,
        };
        for r in p.unchoked() {
            p.handle_message(r, Message::Request(ours), now);
        }
        assert!(p.poll_timeout().is_some_and(|t| t <= now), "the rechoke is due");
        p.handle_timeout(now);
        drain(&mut p);
        let unchoked = p.unchoked();
        for &r in &remotes[4..] {
            assert!(
                unchoked.contains(&r),
                "round {round}: {r} is among the 4 best: {unchoked:?}"
            );
        }
        assert_eq!(unchoked.len(), 5, "4 regular + 1 optimistic");
        let opt = p.optimistic().unwrap();
        assert!(remotes[..4].contains(&opt));
        optimistic.push(opt);
    }
    // The optimistic unchoke moves at 30 s and 60 s only.
    assert_eq!(optimistic[0], optimistic[1]);
    assert_ne!(optimistic[1], optimistic[2], "rotated at 30 s");
    assert_eq!(optimistic[2], optimistic[3]);
    assert_eq!(optimistic[3], optimistic[4]);
    assert_ne!(optimistic[4], optimistic[5], "rotated at 60 s");
}
