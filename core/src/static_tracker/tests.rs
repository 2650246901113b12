//! Owner behaviour, fallback and violations, driven in memory: single peers
//! fed by hand, and a tiny instant network for whole runs with a peer that
//! dies half-way.

use std::collections::{BTreeSet, VecDeque};

use super::{Peer, StaticTrackerConfig, TrackerFile};
use crate::client_server::Server;
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

fn drain(node: &mut dyn Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
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
    let out = drain(&mut p1);
    assert_eq!(
        out,
        vec![
            Output::Command(Command::Connect { peer: SERVER }),
            Output::Command(Command::Connect { peer: NodeId(2) }),
        ]
    );
    p1.handle_connection(NodeId(2), ConnectionEvent::Opened, T0);
    assert_eq!(requests_to(&drain(&mut p1), NodeId(2)), vec![(1, 0), (1, 1024)]);

    // p2 asks for piece 2 before p1 holds it (or is even connected to the
    // server): no answer, no violation ...
    p1.handle_message(NodeId(2), Message::Request(block(l, 2, 1)), T0);
    assert!(drain(&mut p1).is_empty());
    // ... and piece 2 goes to the front of p1's server queue.
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    assert_eq!(requests_to(&drain(&mut p1), SERVER), vec![(2, 0), (2, 1024)]);

    p1.handle_message(SERVER, Message::Block(block(l, 2, 0)), T0);
    let out = drain(&mut p1);
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
    let out = drain(&mut p1);
    assert!(out.contains(&Output::Command(Command::VerifyPiece { piece: 2 })));
    assert!(
        blocks_to(&out, NodeId(2)).is_empty(),
        "not served before its hash check"
    );

    p1.handle_storage(StorageResult::Verified { piece: 2 }, T0);
    let out = drain(&mut p1);
    assert!(out.contains(&Output::Event(Event::PieceVerified { piece: 2 })));
    assert_eq!(
        blocks_to(&out, NodeId(2)),
        vec![(2, 1024)],
        "the queued request is answered"
    );

    // A held piece is served at once.
    p1.handle_message(NodeId(2), Message::Request(block(l, 2, 0)), T0);
    assert_eq!(blocks_to(&drain(&mut p1), NodeId(2)), vec![(2, 0)]);
}

#[test]
fn a_piece_that_fails_its_hash_check_is_neither_counted_nor_served() {
    let l = layout(1);
    let mut p1 = peer(1, l, &[1], 4);
    p1.handle_start(T0);
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    p1.handle_connection(NodeId(2), ConnectionEvent::Opened, T0);
    p1.handle_message(NodeId(2), Message::Request(block(l, 0, 0)), T0);
    drain(&mut p1);
    for i in 0..2 {
        p1.handle_message(SERVER, Message::Block(block(l, 0, i)), T0);
    }
    drain(&mut p1);
    p1.handle_storage(StorageResult::Corrupt { piece: 0 }, T0);
    let out = drain(&mut p1);
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
    let out = drain(&mut p1);
    assert_eq!(requests_to(&out, SERVER), vec![(0, 0), (0, 1024)]);
    assert_eq!(requests_to(&out, NodeId(2)), vec![(1, 0), (1, 1024)]);
    assert_eq!(p1.source_of(1), Some(NodeId(2)));

    p1.handle_message(NodeId(2), Message::Block(block(l, 1, 0)), T0);
    drain(&mut p1);
    p1.handle_connection(NodeId(2), ConnectionEvent::Closed, T0);
    let out = drain(&mut p1);
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
        drain(&mut p1),
        vec![Output::Command(Command::Connect { peer: NodeId(2) })],
        "owning nothing, p1 leaves the server alone"
    );
    // A refused owner may just not be up yet: it is dialled again, with
    // growing waits, and only after the last refusal is the server used.
    let mut now = T0;
    for _ in 1..4 {
        p1.handle_connection(NodeId(2), ConnectionEvent::Failed, now);
        assert!(drain(&mut p1).is_empty(), "no fallback yet");
        now = p1.poll_timeout().expect("a redial is scheduled");
        p1.handle_timeout(now);
        assert_eq!(
            drain(&mut p1),
            vec![Output::Command(Command::Connect { peer: NodeId(2) })]
        );
    }
    p1.handle_connection(NodeId(2), ConnectionEvent::Failed, now);
    let out = drain(&mut p1);
    assert!(out.contains(&Output::Command(Command::Connect { peer: SERVER })));
    p1.handle_connection(SERVER, ConnectionEvent::Opened, T0);
    assert_eq!(requests_to(&drain(&mut p1), SERVER).len(), 4);
}

#[test]
fn bad_requests_are_violations_and_close_the_connection() {
    let l = layout(2);
    let mut p1 = peer(1, l, &[1, 2], 8);
    p1.handle_start(T0);
    p1.handle_connection(NodeId(3), ConnectionEvent::Opened, T0);
    drain(&mut p1);
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
            drain(&mut p1),
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
    drain(&mut p1);
    for i in 0..2 {
        p1.handle_message(SERVER, Message::Block(block(l, 0, i)), T0);
    }
    drain(&mut p1);
    p1.handle_storage(StorageResult::Verified { piece: 0 }, T0);
    let out = drain(&mut p1);
    assert!(out.contains(&Output::Event(Event::DownloadComplete)));
    assert!(out.contains(&Output::Command(Command::Disconnect { peer: SERVER })));
    assert!(!out.contains(&Output::Command(Command::Disconnect { peer: NodeId(2) })));
    p1.handle_connection(SERVER, ConnectionEvent::Closed, T0);
    p1.handle_message(NodeId(2), Message::Request(block(l, 0, 1)), T0);
    assert_eq!(blocks_to(&drain(&mut p1), NodeId(2)), vec![(0, 1024)]);
}

/// An instant in-memory network: every message is delivered in order,
/// every connection opens, every piece verifies. `kill` makes a node die
/// (all its connections close, it hears nothing more) after it has sent
/// that many blocks.
struct Net {
    nodes: Vec<Box<dyn Node>>,
    dead: Vec<bool>,
    links: BTreeSet<(u32, u32)>,
    queue: VecDeque<(u32, Input)>,
    complete: BTreeSet<u32>,
    /// Payload bytes sent, per node.
    up: Vec<u64>,
    kill: Option<(u32, u64)>,
}

enum Input {
    Msg(NodeId, Message),
    Conn(NodeId, ConnectionEvent),
    Storage(StorageResult),
}

impl Net {
    fn new(peers: u32, l: PieceLayout, owners: &[u32]) -> Self {
        let mut nodes: Vec<Box<dyn Node>> = vec![Box::new(Server::new(SERVER, l))];
        for id in 1..=peers {
            nodes.push(Box::new(peer(id, l, owners, 4)));
        }
        let n = nodes.len();
        Net {
            nodes,
            dead: vec![false; n],
            links: BTreeSet::new(),
            queue: VecDeque::new(),
            complete: BTreeSet::new(),
            up: vec![0; n],
            kill: None,
        }
    }

    fn close(&mut self, a: u32, b: u32) {
        if self.links.remove(&(a.min(b), a.max(b))) {
            self.queue
                .push_back((a, Input::Conn(NodeId(b), ConnectionEvent::Closed)));
            self.queue
                .push_back((b, Input::Conn(NodeId(a), ConnectionEvent::Closed)));
        }
    }

    fn die(&mut self, node: u32) {
        self.dead[node as usize] = true;
        let links: Vec<(u32, u32)> = self
            .links
            .iter()
            .copied()
            .filter(|&(a, b)| a == node || b == node)
            .collect();
        for (a, b) in links {
            self.close(a, b);
        }
    }

    fn drain(&mut self, i: u32) {
        while let Some(output) = self.nodes[i as usize].poll_output() {
            if self.dead[i as usize] {
                continue;
            }
            match output {
                Output::Transmit(t) => {
                    if let Message::Block(b) = t.msg {
                        self.up[i as usize] += u64::from(b.len);
                    }
                    if self.links.contains(&(i.min(t.to.0), i.max(t.to.0))) {
                        self.queue.push_back((t.to.0, Input::Msg(NodeId(i), t.msg)));
                    }
                }
                Output::Command(Command::Connect { peer }) if self.dead[peer.0 as usize] => {
                    self.queue
                        .push_back((i, Input::Conn(peer, ConnectionEvent::Failed)));
                }
                Output::Command(Command::Connect { peer }) => {
                    if self.links.insert((i.min(peer.0), i.max(peer.0))) {
                        self.queue
                            .push_back((peer.0, Input::Conn(NodeId(i), ConnectionEvent::Opened)));
                    }
                    self.queue
                        .push_back((i, Input::Conn(peer, ConnectionEvent::Opened)));
                }
                Output::Command(Command::Disconnect { peer }) => self.close(i, peer.0),
                Output::Command(Command::VerifyPiece { piece }) => {
                    self.queue
                        .push_back((i, Input::Storage(StorageResult::Verified { piece })));
                }
                Output::Command(_) => {}
                Output::Event(Event::DownloadComplete) => {
                    self.complete.insert(i);
                }
                Output::Event(_) => {}
            }
        }
        if let Some((victim, after)) = self.kill {
            if self.up[victim as usize] >= after && !self.dead[victim as usize] {
                self.die(victim);
            }
        }
    }

    fn run(&mut self) {
        for i in 0..self.nodes.len() as u32 {
            self.nodes[i as usize].handle_start(T0);
            self.drain(i);
        }
        let mut steps = 0;
        let mut now = T0;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "the run does not end");
            let Some((to, input)) = self.queue.pop_front() else {
                // Nothing in flight: jump to the earliest timer of a live node.
                let next = (0..self.nodes.len())
                    .filter(|&i| !self.dead[i])
                    .filter_map(|i| self.nodes[i].poll_timeout().map(|t| (t, i)))
                    .min();
                let Some((at, i)) = next else { break };
                if at > T0 + std::time::Duration::from_secs(3600) {
                    break; // only far-off housekeeping is left
                }
                now = now.max(at);
                self.nodes[i].handle_timeout(now);
                self.drain(i as u32);
                continue;
            };
            if self.dead[to as usize] {
                continue;
            }
            let node = &mut self.nodes[to as usize];
            match input {
                Input::Msg(from, msg) => {
                    if self.links.contains(&(to.min(from.0), to.max(from.0))) {
                        node.handle_message(from, msg, now);
                    }
                }
                Input::Conn(peer, ev) => node.handle_connection(peer, ev, now),
                Input::Storage(r) => node.handle_storage(r, now),
            }
            self.drain(to);
        }
    }
}

#[test]
fn in_memory_every_peer_completes_and_the_server_sends_the_file_once() {
    let l = layout(10);
    let owners: Vec<u32> = (0..10).map(|k| k % 4 + 1).collect();
    let mut net = Net::new(4, l, &owners);
    net.run();
    assert_eq!(net.complete, (1..=4).collect());
    assert_eq!(net.up[0], l.file_len(), "the server sends each piece once");
    for p in 1..=4u32 {
        let owned = owners.iter().filter(|&&o| o == p).count() as u64;
        assert_eq!(net.up[p as usize], owned * 2048 * 3);
    }
}

#[test]
fn in_memory_survivors_complete_when_an_owner_dies_half_way() {
    let l = layout(12);
    let owners: Vec<u32> = (0..12).map(|k| k % 3 + 1).collect();
    for after in [0, 1024, 4096, 8192] {
        let mut net = Net::new(3, l, &owners);
        net.kill = Some((2, after));
        net.run();
        assert_eq!(
            net.complete,
            BTreeSet::from([1, 3]),
            "p2 killed after {after} bytes"
        );
    }
}
