//! Owner behaviour, fallback and violations, driven in memory: single peers
//! fed by hand, and the shared test network ([`crate::testing`]) for whole
//! runs with a peer that dies half-way.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Peer, StaticTrackerConfig, TrackerFile};
use crate::client_server::Server;
use crate::testing::{TestNet, outputs};
use crate::{
    BlockRef, Command, ConnectionEvent, Event, Message, Node, NodeId, Output, PieceLayout, StorageResult,
    Time, ViolationKind,
};

const SERVER: NodeId = NodeId(0);
const T0: Time = Time::ZERO;

/// `pieces` pieces of two 1 KiB blocks each.
fn layout(pieces: u32) -> PieceLayout {
    PieceLayout::new(u64::from(pieces) * 2048, 2048, 1024).unwrap()
}

fn config(pipeline: u32) -> StaticTrackerConfig {
    StaticTrackerConfig {
        pipeline,
        ..StaticTrackerConfig::default()
    }
}

fn peer(id: u32, l: PieceLayout, owners: &[u32], pipeline: u32) -> Peer {
    let tracker = TrackerFile::new(owners.iter().map(|&o| NodeId(o)).collect());
    Peer::new(
        NodeId(id),
        SERVER,
        l,
        tracker,
        crate::Bitfield::new(l.pieces()),
        config(pipeline),
    )
}

fn requests_to(outputs: &[Output], to: NodeId) -> Vec<(u32, u32)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) if t.to == to => match t.msg {
                Message::Request(b) => Some((b.piece, b.offset)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn blocks_to(outputs: &[Output], to: NodeId) -> Vec<(u32, u32)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) if t.to == to => match t.msg {
                Message::Block(b) => Some((b.piece, b.offset)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn block(l: PieceLayout, piece: u32, index: u32) -> BlockRef {
    l.block(piece, index)
}

#[test]
fn an_owner_fetches_a_requested_piece_from_the_server_first_then_answers() {
    let l = layout(4);
    // p1 owns pieces 0 and 2, p2 owns 1 and 3. One piece in flight at a time.
    let mut p1 = peer(1, l, &[1, 2, 1, 2], 2);
    p1.handle_start(T0);
    let out = outputs(&mut p1);
    assert_eq!(
        out,
        vec![
            Output::Command(Command::Connect { peer: SERVER }),
            Output::Command(Command::Connect { peer: NodeId(2) }),
        ]
    );
    p1.handle_connection(NodeId(2), ConnectionEvent::Opened, T0);
    assert_eq!(requests_to(&outputs(&mut p1), NodeId(2)), vec![(1, 0), (1, 1024)]);

    // p2 asks for piece 2 before p1 holds it (or is even connected to the
    // server): no answer, no violation ...
    p1.handle_message(NodeId(2), Message::Request(block(l, 2, 1)), T0);
    assert!(outputs(&mut p1).is_empty());
    // ... and piece 2 goes to the front of p1's server queue.
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    assert_eq!(requests_to(&outputs(&mut p1), SERVER), vec![(2, 0), (2, 1024)]);

    p1.handle_message(SERVER, Message::Block(block(l, 2, 0)), T0);
    let out = outputs(&mut p1);
    assert!(
        blocks_to(&out, NodeId(2)).is_empty(),
        "half a piece is not served"
    );
    assert_eq!(
        requests_to(&out, SERVER),
        vec![(0, 0)],
        "pipeline refilled with piece 0"
    );
    p1.handle_message(SERVER, Message::Block(block(l, 2, 1)), T0);
    let out = outputs(&mut p1);
    assert!(out.contains(&Output::Command(Command::VerifyPiece { piece: 2 })));
    assert!(
        blocks_to(&out, NodeId(2)).is_empty(),
        "not served before its hash check"
    );

    p1.handle_storage(StorageResult::Verified { piece: 2 }, T0);
    let out = outputs(&mut p1);
    assert!(out.contains(&Output::Event(Event::PieceVerified { piece: 2 })));
    assert_eq!(
        blocks_to(&out, NodeId(2)),
        vec![(2, 1024)],
        "the queued request is answered"
    );

    // A held piece is served at once.
    p1.handle_message(NodeId(2), Message::Request(block(l, 2, 0)), T0);
    assert_eq!(blocks_to(&outputs(&mut p1), NodeId(2)), vec![(2, 0)]);
}

#[test]
fn a_piece_that_fails_its_hash_check_is_neither_counted_nor_served() {
    let l = layout(1);
    let mut p1 = peer(1, l, &[1], 4);
    p1.handle_start(T0);
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    p1.handle_connection(NodeId(2), ConnectionEvent::Opened, T0);
    p1.handle_message(NodeId(2), Message::Request(block(l, 0, 0)), T0);
    outputs(&mut p1);
    for i in 0..2 {
        p1.handle_message(SERVER, Message::Block(block(l, 0, i)), T0);
    }
    outputs(&mut p1);
    p1.handle_storage(StorageResult::Corrupt { piece: 0 }, T0);
    let out = outputs(&mut p1);
    assert!(blocks_to(&out, NodeId(2)).is_empty());
    assert_eq!(
        requests_to(&out, SERVER),
        vec![(0, 0), (0, 1024)],
        "fetched again"
    );
    assert!(!p1.have().contains(0));
}

#[test]
fn a_lost_owner_is_replaced_by_the_server() {
    let l = layout(2);
    let mut p1 = peer(1, l, &[1, 2], 8);
    p1.handle_start(T0);
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    p1.handle_connection(NodeId(2), ConnectionEvent::Opened, T0);
    let out = outputs(&mut p1);
    assert_eq!(requests_to(&out, SERVER), vec![(0, 0), (0, 1024)]);
    assert_eq!(requests_to(&out, NodeId(2)), vec![(1, 0), (1, 1024)]);
    assert_eq!(p1.source_of(1), Some(NodeId(2)));

    p1.handle_message(NodeId(2), Message::Block(block(l, 1, 0)), T0);
    outputs(&mut p1);
    p1.handle_connection(NodeId(2), ConnectionEvent::Closed, T0);
    let out = outputs(&mut p1);
    assert!(out.contains(&Output::Event(Event::SourceLost { peer: NodeId(2) })));
    assert_eq!(
        requests_to(&out, SERVER),
        vec![(1, 1024)],
        "only the missing block, from the server"
    );
    assert_eq!(p1.source_of(1), Some(SERVER));
}

#[test]
fn a_failed_connection_to_an_owner_falls_back_too() {
    let l = layout(2);
    let mut p1 = peer(1, l, &[2, 2], 8);
    p1.handle_start(T0);
    assert_eq!(
        outputs(&mut p1),
        vec![Output::Command(Command::Connect { peer: NodeId(2) })],
        "owning nothing, p1 leaves the server alone"
    );
    // A refused owner may just not be up yet: it is dialled again, with
    // growing waits, and only after the last refusal is the server used.
    let mut now = T0;
    for _ in 1..4 {
        p1.handle_connection(NodeId(2), ConnectionEvent::Failed, now);
        assert!(outputs(&mut p1).is_empty(), "no fallback yet");
        now = p1.poll_timeout().expect("a redial is scheduled");
        p1.handle_timeout(now);
        assert_eq!(
            outputs(&mut p1),
            vec![Output::Command(Command::Connect { peer: NodeId(2) })]
        );
    }
    p1.handle_connection(NodeId(2), ConnectionEvent::Failed, now);
    let out = outputs(&mut p1);
    assert!(out.contains(&Output::Command(Command::Connect { peer: SERVER })));
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    assert_eq!(requests_to(&outputs(&mut p1), SERVER).len(), 4);
}

#[test]
fn bad_requests_are_violations_and_close_the_connection() {
    let l = layout(2);
    let mut p1 = peer(1, l, &[1, 2], 8);
    p1.handle_start(T0);
    p1.handle_connection(NodeId(3), ConnectionEvent::Opened, T0);
    outputs(&mut p1);
    let cases = [
        (
            Message::Request(BlockRef {
                piece: 0,
                offset: 1,
                len: 1024,
            }),
            ViolationKind::InvalidBlock,
        ),
        (
            Message::Request(block(l, 1, 0)),
            ViolationKind::RequestedMissingPiece,
        ),
        (
            Message::Block(BlockRef {
                piece: 9,
                offset: 0,
                len: 1024,
            }),
            ViolationKind::InvalidBlock,
        ),
        (Message::Have { piece: 0 }, ViolationKind::UnexpectedMessage),
    ];
    for (msg, reason) in cases {
        p1.handle_message(NodeId(3), msg, T0);
        assert_eq!(
            outputs(&mut p1),
            vec![
                Output::Event(Event::ProtocolViolation {
                    peer: NodeId(3),
                    reason
                }),
                Output::Command(Command::Disconnect { peer: NodeId(3) }),
            ]
        );
    }
}

#[test]
fn a_complete_peer_leaves_the_server_and_keeps_serving() {
    let l = layout(1);
    let mut p1 = peer(1, l, &[1], 8);
    p1.handle_start(T0);
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    p1.handle_connection(NodeId(2), ConnectionEvent::Opened, T0);
    outputs(&mut p1);
    for i in 0..2 {
        p1.handle_message(SERVER, Message::Block(block(l, 0, i)), T0);
    }
    outputs(&mut p1);
    p1.handle_storage(StorageResult::Verified { piece: 0 }, T0);
    let out = outputs(&mut p1);
    assert!(out.contains(&Output::Event(Event::DownloadComplete)));
    assert!(out.contains(&Output::Command(Command::Disconnect { peer: SERVER })));
    assert!(!out.contains(&Output::Command(Command::Disconnect { peer: NodeId(2) })));
    p1.handle_connection(SERVER, ConnectionEvent::Closed, T0);
    p1.handle_message(NodeId(2), Message::Request(block(l, 0, 1)), T0);
    assert_eq!(blocks_to(&outputs(&mut p1), NodeId(2)), vec![(0, 1024)]);
}

/// An instant network ([`crate::testing`]): every message is delivered in
/// order without delay, every connection opens, every piece verifies. The
/// server is node 0, peers 1 to `peers` pipeline 4 requests.
fn net(peers: u32, l: PieceLayout, owners: &[u32]) -> TestNet {
    let mut net = TestNet::new(Duration::ZERO);
    net.add(Box::new(Server::new(SERVER, l)));
    for id in 1..=peers {
        net.add(Box::new(peer(id, l, owners, 4)));
    }
    net
}

/// Runs until only far-off housekeeping is left.
const HOUR: Time = Time::from_secs(3600);

#[test]
fn in_memory_every_peer_completes_and_the_server_sends_the_file_once() {
    let l = layout(10);
    let owners: Vec<u32> = (0..10).map(|k| k % 4 + 1).collect();
    let mut net = net(4, l, &owners);
    net.run_until(HOUR);
    assert_eq!(*net.completed(), (1..=4).map(NodeId).collect());
    assert_eq!(
        net.uploaded(SERVER),
        l.file_len(),
        "the server sends each piece once"
    );
    for p in 1..=4u32 {
        let owned = owners.iter().filter(|&&o| o == p).count() as u64;
        assert_eq!(net.uploaded(NodeId(p)), owned * 2048 * 3);
    }
}

#[test]
fn in_memory_survivors_complete_when_an_owner_dies_half_way() {
    let l = layout(12);
    let owners: Vec<u32> = (0..12).map(|k| k % 3 + 1).collect();
    let victim = NodeId(2);
    for after in [0, 1024, 4096, 8192] {
        let mut net = net(3, l, &owners);
        // p2 dies once it has sent `after` payload bytes.
        let died = net.run_while(HOUR, |net| net.uploaded(victim) < after);
        assert!(died, "p2 never sent {after} bytes");
        net.kill(victim);
        net.run_until(HOUR);
        assert_eq!(
            *net.completed(),
            BTreeSet::from([NodeId(1), NodeId(3)]),
            "p2 killed after {after} bytes"
        );
    }
}
