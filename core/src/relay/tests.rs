//! The relay protocol driven in memory on the shared test network
//! ([`crate::testing`]), in which the test decides who hangs, who dies and
//! who comes back.
//!
//! Each node's uplink sends payload messages one after another at its rate,
//! control messages take no bandwidth and every message then takes
//! `LATENCY`. A hung node reads nothing and runs no timer until it resumes
//! (the simulator's `hang` fault), while connecting to it still succeeds; a
//! killed node loses its connections and refuses new ones; a restarted
//! destination keeps the chunks it had stored (its disk).

use std::time::Duration;

use super::*;
use crate::message::Message;
use crate::node::{Command, Node, NodeId, Output, StorageResult};
use crate::pieces::{Bitfield, BlockRef};
use crate::testing::{Fault, TestNet};
use crate::{Event, Time};

const LATENCY: Duration = Duration::from_millis(1);
const FILE: u64 = 256 * 1024;
const SENDER: NodeId = NodeId(0);
const DEST: NodeId = NodeId(1);

fn layout() -> PieceLayout {
    chunk_layout(FILE, 1024).unwrap()
}

fn secs(s: f64) -> Time {
    Time::from_nanos((s * 1e9) as u64)
}

/// Sender (node 0, 2 Mbit/s up), destination (node 1, 8 Mbit/s up) and one
/// relay per `(upload, download)` in bytes per second (nodes 2, 3, …). A
/// restarted destination starts from the chunks it had stored.
fn net(relays: &[(u64, u64)]) -> TestNet {
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
    let mut net = TestNet::new(LATENCY);
    net.add(Box::new(Sender::new(SENDER, l, DEST, candidates, config)));
    net.add_restartable(move |disk| {
        let mut have = Bitfield::new(l.pieces());
        for &piece in disk.stored.keys() {
            have.insert(piece);
        }
        Box::new(Destination::new(DEST, l, have))
    });
    net.set_rate(SENDER, 250_000.0);
    net.set_rate(DEST, 1e6);
    for (i, &(upload, _)) in relays.iter().enumerate() {
        let id = net.add(Box::new(Relay::new(
            NodeId(2 + i as u32),
            l,
            Bitfield::new(l.pieces()),
            config,
        )));
        net.set_rate(id, upload as f64);
    }
    net
}

fn failovers(net: &TestNet) -> Vec<(Time, NodeId, NodeId, Duration)> {
    net.events_of(SENDER)
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

/// Chunks stored at `node`.
fn stored(net: &TestNet, node: u32) -> usize {
    net.disk(NodeId(node)).stored.len()
}

/// The destination holds every chunk, each stored exactly once.
fn assert_delivered_exactly_once(net: &TestNet) {
    let pieces = layout().pieces();
    assert!(
        net.first(DEST, |e| *e == Event::DownloadComplete).is_some(),
        "destination never completed"
    );
    let disk = net.disk(DEST);
    assert_eq!(
        disk.stored.len() as u32,
        pieces,
        "chunks missing at the destination"
    );
    let twice: Vec<_> = disk.stored.iter().filter(|&(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "chunks stored more than once: {twice:?}");
    assert!(
        net.events()
            .all(|(_, _, e)| !matches!(e, Event::GaveUp { .. } | Event::ProtocolViolation { .. })),
        "nobody should give up or break the protocol"
    );
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
    let mut net = net(&[FAST]);
    net.run_until(secs(30.0));
    assert_delivered_exactly_once(&net);
    assert!(failovers(&net).is_empty(), "no failover without a fault");
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
    assert_eq!(stored(&net, 2), 0, "the relay is not used");
}

#[test]
fn a_hung_destination_is_detected_and_the_sender_finishes_early_through_the_best_relay() {
    // Relay 2 is slow, relay 3 fast: the sender must choose 3.
    let mut net = net(&[SLOW, FAST]);
    net.at(secs(0.3), Fault::Hang(DEST));
    net.at(secs(12.0), Fault::Resume(DEST));
    net.run_until(secs(60.0));
    assert_delivered_exactly_once(&net);

    let failovers = failovers(&net);
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
        net.first(NodeId(3), |e| matches!(
            e,
            Event::RelayFlushed { dest: NodeId(1), .. }
        ))
        .is_some()
    );
    assert_eq!(stored(&net, 2), 0, "the slow relay was not used");
    // The relay held what the destination had not acknowledged: at least
    // the chunks sent after the hang.
    assert!(stored(&net, 3) > 150, "relay held {}", stored(&net, 3));
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
    let mut net = net(&[FAST, SLOW]);
    net.at(secs(0.3), Fault::Hang(DEST));
    net.at(secs(5.0), Fault::Kill(NodeId(2)));
    net.at(secs(15.0), Fault::Resume(DEST));
    net.run_until(secs(80.0));
    assert_delivered_exactly_once(&net);
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
    let relays: Vec<NodeId> = failovers(&net).iter().map(|f| f.2).collect();
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
        net.first(NodeId(3), |e| matches!(e, Event::RelayFlushed { .. }))
            .is_some()
    );
}

#[test]
fn a_dead_relay_and_no_other_sends_the_sender_back_to_the_destination() {
    let mut net = net(&[FAST]);
    net.at(secs(0.3), Fault::Hang(DEST));
    net.at(secs(5.0), Fault::Kill(NodeId(2)));
    net.at(secs(15.0), Fault::Resume(DEST));
    net.run_until(secs(80.0));
    assert_delivered_exactly_once(&net);
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
    let mut net = net(&[FAST, SLOW]);
    net.at(secs(0.3), Fault::Hang(DEST));
    net.at(secs(5.0), Fault::Hang(NodeId(2)));
    net.at(secs(15.0), Fault::Resume(DEST));
    net.at(secs(40.0), Fault::Resume(NodeId(2)));
    net.run_until(secs(90.0));
    assert_delivered_exactly_once(&net);
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
    let mut net = net(&[FAST]);
    net.at(secs(0.3), Fault::Kill(DEST));
    net.at(secs(9.0), Fault::Restart(DEST));
    net.run_until(secs(80.0));
    assert_delivered_exactly_once(&net);
    let failovers = failovers(&net);
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
