//! The relay protocol driven in memory: a small network with virtual time
//! in which the test decides who hangs, who dies and who comes back.
//!
//! The network: each node's uplink sends payload messages one after another
//! at its rate, control messages take no bandwidth, every message then
//! takes `LATENCY`, and each direction of a connection stays FIFO. A hung
//! node (the simulator's `hang` fault) reads nothing and runs no timer
//! until it resumes — everything sent to it waits — while connecting to it
//! still succeeds; a killed node loses its connections and refuses new
//! ones; a restarted node keeps what it had verified.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::message::Message;
use crate::node::{Command, ConnectionEvent, Node, NodeId, Output, StorageResult};
use crate::pieces::{Bitfield, BlockRef};
use crate::{Event, Time};

const LATENCY: Duration = Duration::from_millis(1);
const FILE: u64 = 256 * 1024;
const SENDER: usize = 0;
const DEST: usize = 1;

#[derive(Debug)]
enum Ev {
    Start(usize),
    Deliver {
        from: usize,
        to: usize,
        msg: Message,
    },
    Conn {
        node: usize,
        peer: usize,
        ev: ConnectionEvent,
    },
    Verify {
        node: usize,
        piece: u32,
    },
    Timer {
        node: usize,
        at: Time,
    },
    Hang(usize),
    Resume(usize),
    Kill(usize),
    Restart(usize),
}

struct Net {
    nodes: Vec<Box<dyn Node>>,
    up_rate: Vec<f64>,
    up_free: Vec<Time>,
    now: Time,
    seq: u64,
    queue: BTreeMap<(Time, u64), Ev>,
    last_arrival: BTreeMap<(usize, usize), Time>,
    conns: BTreeSet<(usize, usize)>,
    hung: BTreeSet<usize>,
    parked: Vec<(usize, Ev)>,
    dead: BTreeSet<usize>,
    timer_at: Vec<Option<Time>>,
    /// StoreBlock commands per node and chunk: what reached storage.
    stored: Vec<BTreeMap<u32, u32>>,
    events: Vec<(Time, usize, Event)>,
    steps: u64,
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

fn layout() -> PieceLayout {
    chunk_layout(FILE, 1024).unwrap()
}

fn secs(s: f64) -> Time {
    Time::from_nanos((s * 1e9) as u64)
}

impl Net {
    /// Sender (node 0, 2 Mbit/s up), destination (node 1) and one relay
    /// per `(upload, download)` in bytes per second (nodes 2, 3, …).
    fn new(relays: &[(u64, u64)]) -> Net {
        let config = RelayConfig::default();
        let l = layout();
        let candidates = relays
            .iter()
            .enumerate()
            .map(|(i, &(upload, download))| RelayCandidate {
                id: NodeId(2 + i as u32),
                upload,
                download,
            })
            .collect();
        let mut nodes: Vec<Box<dyn Node>> = vec![
            Box::new(Sender::new(NodeId(0), l, NodeId(1), candidates, config)),
            Box::new(Destination::new(NodeId(1), l, Bitfield::new(l.pieces()))),
        ];
        let mut up_rate = vec![250_000.0, 1e6];
        for (i, &(upload, _)) in relays.iter().enumerate() {
            nodes.push(Box::new(Relay::new(
                NodeId(2 + i as u32),
                l,
                Bitfield::new(l.pieces()),
                config,
            )));
            up_rate.push(upload as f64);
        }
        let n = nodes.len();
        let mut net = Net {
            nodes,
            up_rate,
            up_free: vec![Time::ZERO; n],
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            last_arrival: BTreeMap::new(),
            conns: BTreeSet::new(),
            hung: BTreeSet::new(),
            parked: Vec::new(),
            dead: BTreeSet::new(),
            timer_at: vec![None; n],
            stored: vec![BTreeMap::new(); n],
            events: Vec::new(),
            steps: 0,
        };
        for i in 0..n {
            net.at(Time::ZERO, Ev::Start(i));
        }
        net
    }

    fn at(&mut self, t: Time, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    fn target(ev: &Ev) -> Option<usize> {
        match *ev {
            Ev::Deliver { to, .. } => Some(to),
            Ev::Conn { node, .. } | Ev::Verify { node, .. } | Ev::Timer { node, .. } => Some(node),
            _ => None,
        }
    }

    fn run_until(&mut self, end: Time) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > end {
                break;
            }
            let ((t, _), ev) = entry.remove_entry();
            self.now = t;
            self.steps += 1;
            assert!(self.steps < 5_000_000, "runaway run at {}", self.now);
            if let Some(n) = Net::target(&ev) {
                if self.dead.contains(&n) {
                    continue;
                }
                if self.hung.contains(&n) {
                    self.parked.push((n, ev));
                    continue;
                }
            }
            self.process(ev);
        }
        self.now = end;
    }

    fn process(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Start(n) => {
                self.nodes[n].handle_start(now);
                self.drain(n);
            }
            Ev::Deliver { from, to, msg } => {
                if !self.conns.contains(&pair(from, to)) {
                    return;
                }
                self.nodes[to].handle_message(NodeId(from as u32), msg, now);
                self.drain(to);
            }
            Ev::Conn { node, peer, ev } => {
                self.nodes[node].handle_connection(NodeId(peer as u32), ev, now);
                self.drain(node);
            }
            Ev::Verify { node, piece } => {
                self.nodes[node].handle_storage(StorageResult::Verified { piece }, now);
                self.drain(node);
            }
            Ev::Timer { node, at } => {
                if self.timer_at[node] != Some(at) {
                    return;
                }
                self.timer_at[node] = None;
                self.nodes[node].handle_timeout(now);
                self.drain(node);
            }
            Ev::Hang(n) => {
                self.hung.insert(n);
            }
            Ev::Resume(n) => {
                self.hung.remove(&n);
                let parked = std::mem::take(&mut self.parked);
                for (m, ev) in parked {
                    if m == n {
                        self.at(now, ev);
                    } else {
                        self.parked.push((m, ev));
                    }
                }
                self.timer_at[n] = None;
                self.drain(n);
            }
            Ev::Kill(n) => {
                self.dead.insert(n);
                self.parked.retain(|(m, _)| *m != n);
                let gone: Vec<(usize, usize)> = self
                    .conns
                    .iter()
                    .copied()
                    .filter(|&(a, b)| a == n || b == n)
                    .collect();
                for (a, b) in gone {
                    self.conns.remove(&(a, b));
                    let peer = if a == n { b } else { a };
                    let closed = Ev::Conn {
                        node: peer,
                        peer: n,
                        ev: ConnectionEvent::Closed,
                    };
                    self.at(now + LATENCY, closed);
                }
            }
            Ev::Restart(n) => {
                // Only the destination restarts in these tests; it keeps the
                // chunks it had verified (its disk).
                assert_eq!(n, DEST);
                let l = layout();
                let mut have = Bitfield::new(l.pieces());
                for &piece in self.stored[n].keys() {
                    have.insert(piece);
                }
                self.nodes[n] = Box::new(Destination::new(NodeId(n as u32), l, have));
                self.dead.remove(&n);
                self.timer_at[n] = None;
                self.nodes[n].handle_start(now);
                self.drain(n);
            }
        }
    }

    fn drain(&mut self, n: usize) {
        let now = self.now;
        while let Some(out) = self.nodes[n].poll_output() {
            match out {
                Output::Transmit(t) => {
                    let to = t.to.0 as usize;
                    if !self.conns.contains(&pair(n, to)) {
                        continue;
                    }
                    let sent = if t.msg.payload_len() > 0 {
                        let start = self.up_free[n].max(now);
                        let done = start + Duration::from_secs_f64(t.msg.wire_len() as f64 / self.up_rate[n]);
                        self.up_free[n] = done;
                        done
                    } else {
                        now
                    };
                    let arrival =
                        (sent + LATENCY).max(self.last_arrival.get(&(n, to)).copied().unwrap_or(Time::ZERO));
                    self.last_arrival.insert((n, to), arrival);
                    self.at(
                        arrival,
                        Ev::Deliver {
                            from: n,
                            to,
                            msg: t.msg,
                        },
                    );
                }
                Output::Command(Command::Connect { peer }) => {
                    let p = peer.0 as usize;
                    if self.dead.contains(&p) {
                        let failed = Ev::Conn {
                            node: n,
                            peer: p,
                            ev: ConnectionEvent::Failed,
                        };
                        self.at(now + LATENCY, failed);
                    } else if self.conns.insert(pair(n, p)) {
                        for (a, b) in [(n, p), (p, n)] {
                            let opened = Ev::Conn {
                                node: a,
                                peer: b,
                                ev: ConnectionEvent::Opened,
                            };
                            self.at(now + 2 * LATENCY, opened);
                        }
                    } else {
                        let opened = Ev::Conn {
                            node: n,
                            peer: p,
                            ev: ConnectionEvent::Opened,
                        };
                        self.at(now, opened);
                    }
                }
                Output::Command(Command::Disconnect { peer }) => {
                    let p = peer.0 as usize;
                    if self.conns.remove(&pair(n, p)) {
                        for (a, b, t) in [(n, p, now), (p, n, now + LATENCY)] {
                            let closed = Ev::Conn {
                                node: a,
                                peer: b,
                                ev: ConnectionEvent::Closed,
                            };
                            self.at(t, closed);
                        }
                    }
                }
                Output::Command(Command::StoreBlock { block, .. }) => {
                    *self.stored[n].entry(block.piece).or_default() += 1;
                }
                Output::Command(Command::VerifyPiece { piece }) => {
                    self.at(now, Ev::Verify { node: n, piece })
                }
                Output::Event(e) => self.events.push((now, n, e)),
            }
        }
        let next = self.nodes[n].poll_timeout();
        if next != self.timer_at[n] {
            self.timer_at[n] = next;
            if let Some(at) = next {
                self.at(at.max(now), Ev::Timer { node: n, at });
            }
        }
    }

    fn events_of(&self, node: usize) -> impl Iterator<Item = (Time, &Event)> + '_ {
        self.events
            .iter()
            .filter(move |(_, n, _)| *n == node)
            .map(|(t, _, e)| (*t, e))
    }

    fn first(&self, node: usize, f: impl Fn(&Event) -> bool) -> Option<Time> {
        self.events_of(node).find(|(_, e)| f(e)).map(|(t, _)| t)
    }

    fn last(&self, node: usize, f: impl Fn(&Event) -> bool) -> Option<Time> {
        self.events_of(node).filter(|(_, e)| f(e)).map(|(t, _)| t).last()
    }

    fn failovers(&self) -> Vec<(Time, NodeId, NodeId, Duration)> {
        self.events_of(SENDER)
            .filter_map(|(t, e)| match e {
                Event::FailoverStarted {
                    from,
                    relay,
                    detection,
                } => Some((t, *from, *relay, *detection)),
                _ => None,
            })
            .collect()
    }

    /// The destination holds every chunk, each stored exactly once.
    fn assert_delivered_exactly_once(&self) {
        let pieces = layout().pieces();
        assert!(
            self.first(DEST, |e| *e == Event::DownloadComplete).is_some(),
            "destination never completed"
        );
        assert_eq!(
            self.stored[DEST].len() as u32,
            pieces,
            "chunks missing at the destination"
        );
        let twice: Vec<_> = self.stored[DEST].iter().filter(|&(_, &n)| n != 1).collect();
        assert!(twice.is_empty(), "chunks stored more than once: {twice:?}");
        assert!(
            self.events
                .iter()
                .all(|(_, _, e)| !matches!(e, Event::GaveUp { .. } | Event::ProtocolViolation { .. })),
            "nobody should give up or break the protocol"
        );
    }
}

const FAST: (u64, u64) = (1_000_000, 1_000_000);
const SLOW: (u64, u64) = (100_000, 100_000);

fn is_finished(e: &Event) -> bool {
    *e == Event::SenderFinished
}

fn is_complete(e: &Event) -> bool {
    *e == Event::DownloadComplete
}

#[test]
fn relay_messages_have_honest_frames() {
    let b = BlockRef {
        piece: 3,
        offset: 0,
        len: 1024,
    };
    assert_eq!(Message::Push(b).wire_len(), 4 + 1 + 8 + 1024);
    assert_eq!(
        Message::Push(b).payload_len(),
        1024,
        "the simulator must charge pushed chunks"
    );
    assert_eq!(Message::Ack { piece: 3 }.wire_len(), 9);
    assert_eq!(Message::Forwarded { piece: 3 }.wire_len(), 9);
    assert_eq!(Message::RelayFor { dest: NodeId(1) }.wire_len(), 9);
    assert_eq!(Message::RelayAlive.wire_len(), 5);
    assert_eq!(Message::Ack { piece: 3 }.payload_len(), 0);
}

#[test]
fn a_healthy_destination_gets_everything_directly() {
    let mut net = Net::new(&[FAST]);
    net.run_until(secs(30.0));
    net.assert_delivered_exactly_once();
    assert!(net.failovers().is_empty(), "no failover without a fault");
    let done = net.first(DEST, is_complete).unwrap();
    let finished = net.first(SENDER, is_finished).unwrap();
    // 256 chunks of 1037 wire bytes at 250 kB/s.
    assert!(
        done.as_secs_f64() > 1.06 && done.as_secs_f64() < 1.1,
        "completed at {done}"
    );
    assert!(
        finished >= done && finished - done <= 2 * LATENCY,
        "finished {finished}, complete {done}"
    );
    assert!(net.stored[2].is_empty(), "the relay is not used");
}

#[test]
fn a_hung_destination_is_detected_and_the_sender_finishes_early_through_the_best_relay() {
    // Relay 2 is slow, relay 3 fast: the sender must choose 3.
    let mut net = Net::new(&[SLOW, FAST]);
    net.at(secs(0.3), Ev::Hang(DEST));
    net.at(secs(12.0), Ev::Resume(DEST));
    net.run_until(secs(60.0));
    net.assert_delivered_exactly_once();

    let failovers = net.failovers();
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    let (at, from, relay, detection) = failovers[0];
    assert_eq!((from, relay), (NodeId(1), NodeId(3)), "most spare capacity wins");
    let timeout = RelayConfig::default().detection_timeout;
    assert!(
        detection >= timeout && detection < timeout + Duration::from_millis(10),
        "detection {detection:?}"
    );
    // The last acknowledgement came just before the hang at 0.3 s.
    let last_ack = Time::from_nanos(at.as_nanos() - detection.as_nanos() as u64);
    assert!(
        last_ack > secs(0.29) && last_ack <= secs(0.3),
        "failover at {at} after {detection:?}"
    );

    // The sender is done long before the destination is back.
    let finished = net.first(SENDER, is_finished).unwrap();
    assert!(finished < secs(3.5), "sender finished at {finished}");
    let done = net.first(DEST, is_complete).unwrap();
    assert!(
        done > secs(12.0) && done < secs(20.0),
        "destination completed at {done}"
    );
    assert!(
        net.first(3, |e| matches!(e, Event::RelayFlushed { dest: NodeId(1), .. }))
            .is_some()
    );
    assert!(net.stored[2].is_empty(), "the slow relay was not used");
    // The relay held what the destination had not acknowledged: at least
    // the chunks sent after the hang.
    assert!(net.stored[3].len() > 150, "relay held {}", net.stored[3].len());
}

#[test]
fn the_destination_stores_a_chunk_once_and_acknowledges_every_copy() {
    let l = layout();
    let mut d = Destination::new(NodeId(1), l, Bitfield::new(l.pieces()));
    let (a, b) = (NodeId(0), NodeId(2));
    let chunk = l.block(5, 0);
    let now = Time::ZERO;
    d.handle_message(a, Message::Push(chunk), now);
    // A second copy while the first is being verified.
    d.handle_message(b, Message::Push(chunk), now);
    let outs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
    let stores = outs
        .iter()
        .filter(|o| matches!(o, Output::Command(Command::StoreBlock { .. })))
        .count();
    assert_eq!(stores, 1);
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Transmit(_))),
        "no ack before the check"
    );
    d.handle_storage(StorageResult::Verified { piece: 5 }, now);
    let acks: Vec<NodeId> = std::iter::from_fn(|| d.poll_output())
        .filter_map(|o| match o {
            Output::Transmit(t) if t.msg == (Message::Ack { piece: 5 }) => Some(t.to),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![a, b], "both pushers hear the ack");
    // A third copy, after verification: acknowledged at once, not stored.
    d.handle_message(b, Message::Push(chunk), now);
    let outs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
    assert!(outs.contains(&Output::Event(Event::BlockDiscarded {
        from: b,
        block: chunk
    })));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Transmit(t) if t.to == b && t.msg == Message::Ack { piece: 5 }))
    );
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Command(Command::StoreBlock { .. })))
    );
    // Garbage is refused.
    d.handle_message(
        b,
        Message::Push(BlockRef {
            piece: 9999,
            offset: 0,
            len: 1024,
        }),
        now,
    );
    assert!(
        std::iter::from_fn(|| d.poll_output())
            .any(|o| matches!(o, Output::Event(Event::ProtocolViolation { .. })))
    );
}

#[test]
fn a_dead_relay_is_survived_through_another_relay() {
    let mut net = Net::new(&[FAST, SLOW]);
    net.at(secs(0.3), Ev::Hang(DEST));
    net.at(secs(5.0), Ev::Kill(2));
    net.at(secs(15.0), Ev::Resume(DEST));
    net.run_until(secs(80.0));
    net.assert_delivered_exactly_once();
    let lost = net.events_of(SENDER).find_map(|(t, e)| match e {
        Event::RelayLost { relay, taken_back } => Some((t, *relay, *taken_back)),
        _ => None,
    });
    let (t, relay, taken_back) = lost.expect("the sender notices the dead relay");
    assert_eq!(relay, NodeId(2));
    assert!(
        taken_back > 150 && t < secs(5.01),
        "took back {taken_back} at {t}"
    );
    let relays: Vec<NodeId> = net.failovers().iter().map(|f| f.2).collect();
    assert_eq!(relays, vec![NodeId(2), NodeId(3)]);
    // Finished once through relay 2, again through relay 3 — before the
    // destination resumes.
    let finishes: Vec<Time> = net
        .events_of(SENDER)
        .filter(|(_, e)| is_finished(e))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(finishes.len(), 2, "{finishes:?}");
    assert!(
        finishes[0] < secs(3.5) && finishes[1] < secs(15.0),
        "{finishes:?}"
    );
    assert!(
        net.first(3, |e| matches!(e, Event::RelayFlushed { .. }))
            .is_some()
    );
}

#[test]
fn a_dead_relay_and_no_other_sends_the_sender_back_to_the_destination() {
    let mut net = Net::new(&[FAST]);
    net.at(secs(0.3), Ev::Hang(DEST));
    net.at(secs(5.0), Ev::Kill(2));
    net.at(secs(15.0), Ev::Resume(DEST));
    net.run_until(secs(80.0));
    net.assert_delivered_exactly_once();
    assert!(
        net.first(SENDER, |e| matches!(e, Event::RelayLost { relay: NodeId(2), .. }))
            .is_some()
    );
    let finished = net.last(SENDER, is_finished).unwrap();
    let done = net.first(DEST, is_complete).unwrap();
    assert!(
        done > secs(15.0) && finished >= done,
        "finished {finished}, complete {done}"
    );
}

#[test]
fn a_relay_that_hangs_after_acknowledging_is_given_up_on() {
    let mut net = Net::new(&[FAST, SLOW]);
    net.at(secs(0.3), Ev::Hang(DEST));
    net.at(secs(5.0), Ev::Hang(2));
    net.at(secs(15.0), Ev::Resume(DEST));
    net.at(secs(40.0), Ev::Resume(2));
    net.run_until(secs(90.0));
    net.assert_delivered_exactly_once();
    let lost = net
        .first(SENDER, |e| matches!(e, Event::RelayLost { relay: NodeId(2), .. }))
        .unwrap();
    let timeout = RelayConfig::default().detection_timeout;
    // Silent from 5 s on: its last message came at most an alive interval
    // before.
    assert!(
        lost >= secs(5.0) + (timeout - RelayConfig::default().alive_interval())
            && lost <= secs(5.0) + timeout,
        "lost at {lost}"
    );
    let done = net.first(DEST, is_complete).unwrap();
    assert!(
        done < secs(40.0),
        "relay 3 delivered without waiting for relay 2: {done}"
    );
}

#[test]
fn a_crashed_destination_is_failed_over_at_once_and_caught_up_after_its_restart() {
    let mut net = Net::new(&[FAST]);
    net.at(secs(0.3), Ev::Kill(DEST));
    net.at(secs(9.0), Ev::Restart(DEST));
    net.run_until(secs(80.0));
    net.assert_delivered_exactly_once();
    let failovers = net.failovers();
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    assert!(
        failovers[0].0 < secs(0.31),
        "a closed connection needs no timeout: {failovers:?}"
    );
    let finished = net.first(SENDER, is_finished).unwrap();
    assert!(finished < secs(2.0), "sender finished at {finished}");
    let done = net.first(DEST, is_complete).unwrap();
    assert!(
        done > secs(9.0) && done < secs(15.0),
        "destination completed at {done}"
    );
}
