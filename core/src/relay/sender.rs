//! The sender of a relayed transfer: it pushes every chunk to the
//! destination, detects when the destination stops answering, fails over to
//! the relay with the most spare capacity, and takes chunks back from a
//! relay that is lost.
//!
//! Each chunk is in one of four states: unsent (nobody answers for it),
//! in flight to one peer, held by a relay (acknowledged by a live relay, not
//! yet forwarded) or done (the destination has it). The upload is finished
//! when every chunk is held or done; the sender is through when every chunk
//! is done.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::lane::Lane;
use super::{RelayCandidate, RelayConfig, assert_chunks, choose_relay};
use crate::backoff::Backoff;
use crate::event::{Event, ViolationKind};
use crate::message::Message;
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::PieceLayout;
use crate::time::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Unsent,
    InFlight(NodeId),
    AtRelay(NodeId),
    Done,
}

/// The sender: holds the whole file and pushes it to the destination, or to
/// a relay while the destination does not answer.
#[derive(Debug)]
pub struct Sender {
    id: NodeId,
    layout: PieceLayout,
    dest: NodeId,
    candidates: Vec<RelayCandidate>,
    config: RelayConfig,
    chunks: Vec<Chunk>,
    unsent: BTreeSet<u32>,
    done: u32,
    at_relay: u32,
    /// Where unsent chunks go; `None` while waiting to retry.
    target: Option<NodeId>,
    lanes: BTreeMap<NodeId, Lane>,
    /// Chunks each live relay holds and has not reported forwarded.
    held: BTreeMap<NodeId, BTreeSet<u32>>,
    /// Relays lost since the last retry round; not chosen again until then.
    lost: BTreeSet<NodeId>,
    /// Redirections and retries since the last progress.
    attempts: u32,
    backoff: Backoff,
    retry_at: Option<Time>,
    /// When the destination last acknowledged a chunk to the sender.
    dest_progress: Time,
    finished: bool,
    through: bool,
    gave_up: bool,
    outbox: Outbox,
}

impl Sender {
    /// A sender `id` holding the whole file cut as `layout` (a
    /// [`chunk_layout`](super::chunk_layout)), for destination `dest`, with
    /// the relays it may fail over to and their access links.
    ///
    /// # Panics
    /// If `layout` has more than one block per piece.
    pub fn new(
        id: NodeId,
        layout: PieceLayout,
        dest: NodeId,
        candidates: Vec<RelayCandidate>,
        config: RelayConfig,
    ) -> Self {
        assert_chunks(&layout);
        let candidates = candidates
            .into_iter()
            .filter(|c| c.id != dest && c.id != id)
            .collect();
        Sender {
            id,
            layout,
            dest,
            candidates,
            config,
            chunks: vec![Chunk::Unsent; layout.pieces() as usize],
            unsent: (0..layout.pieces()).collect(),
            done: 0,
            at_relay: 0,
            target: None,
            lanes: BTreeMap::new(),
            held: BTreeMap::new(),
            lost: BTreeSet::new(),
            attempts: 0,
            backoff: Backoff::new(config.retry_min, config.retry_max),
            retry_at: None,
            dest_progress: Time::ZERO,
            finished: false,
            through: false,
            gave_up: false,
            outbox: Outbox::default(),
        }
    }

    /// Chunks the destination has acknowledged, directly or through a relay.
    pub fn chunks_done(&self) -> u32 {
        self.done
    }

    /// Whether the upload is finished: every chunk is acknowledged by the
    /// destination or held by a live relay.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The relay unsent chunks go to now, if any.
    pub fn current_relay(&self) -> Option<NodeId> {
        self.target.filter(|&t| t != self.dest)
    }

    fn open_lane(&mut self, peer: NodeId, now: Time) {
        if !self.lanes.contains_key(&peer) {
            let lane = Lane::connect(peer, now, self.config.detection_timeout, &mut self.outbox);
            self.lanes.insert(peer, lane);
        }
    }

    /// Pushes unsent chunks, lowest first, to the target while its window
    /// has room.
    fn pump(&mut self, now: Time) {
        let Some(target) = self.target else { return };
        let Some(lane) = self.lanes.get_mut(&target) else {
            return;
        };
        while lane.has_room(self.config.window) {
            let Some(piece) = self.unsent.pop_first() else {
                break;
            };
            self.chunks[piece as usize] = Chunk::InFlight(target);
            lane.push(piece, &self.layout, now, &mut self.outbox);
        }
    }

    /// Chunk `piece` is at the destination.
    fn mark_done(&mut self, piece: u32) {
        match self.chunks[piece as usize] {
            Chunk::Done => return,
            Chunk::Unsent => {
                self.unsent.remove(&piece);
            }
            Chunk::InFlight(peer) => {
                if let Some(lane) = self.lanes.get_mut(&peer) {
                    lane.settle(piece);
                }
            }
            Chunk::AtRelay(relay) => {
                self.at_relay -= 1;
                if let Some(held) = self.held.get_mut(&relay) {
                    held.remove(&piece);
                    if held.is_empty() {
                        self.held.remove(&relay);
                    }
                }
            }
        }
        self.chunks[piece as usize] = Chunk::Done;
        self.done += 1;
    }

    /// Some peer made progress: retries start over.
    fn progress(&mut self) {
        self.attempts = 0;
        self.backoff.reset();
    }

    fn take_back(&mut self, pieces: impl IntoIterator<Item = u32>) -> u32 {
        let mut n = 0;
        for piece in pieces {
            match self.chunks[piece as usize] {
                Chunk::Done | Chunk::Unsent => continue,
                Chunk::AtRelay(_) => self.at_relay -= 1,
                Chunk::InFlight(_) => {}
            }
            self.chunks[piece as usize] = Chunk::Unsent;
            self.unsent.insert(piece);
            n += 1;
        }
        n
    }

    /// `relay` can no longer be trusted with chunks (it made no progress
    /// for `detection`, or its connection is gone): take back everything it
    /// answered for.
    fn lose_relay(&mut self, relay: NodeId, detection: Duration, now: Time) {
        let mut pieces = self
            .lanes
            .remove(&relay)
            .map(|mut l| l.take_in_flight())
            .unwrap_or_default();
        pieces.extend(self.held.remove(&relay).unwrap_or_default());
        let taken_back = self.take_back(pieces);
        self.lost.insert(relay);
        if taken_back > 0 {
            self.outbox.event(Event::RelayLost { relay, taken_back });
        }
        if self.target == Some(relay) {
            self.redirect(relay, detection, now);
        } else {
            self.pump(now);
        }
    }

    /// `from` stopped answering (for `detection`): send the unsent chunks
    /// elsewhere — the best relay left, else the destination again, else
    /// wait and retry.
    fn redirect(&mut self, from: NodeId, detection: Duration, now: Time) {
        self.target = None;
        self.attempts += 1;
        if self.attempts > self.config.max_attempts {
            self.give_up(from);
            return;
        }
        let mut excluded = self.lost.clone();
        excluded.insert(from);
        if let Some(relay) = choose_relay(&self.candidates, &excluded) {
            self.outbox.event(Event::FailoverStarted {
                from,
                relay,
                detection,
            });
            self.target = Some(relay);
            // A new lane announces the destination when it opens; an open one
            // already has.
            self.open_lane(relay, now);
            self.pump(now);
        } else if from != self.dest {
            self.target = Some(self.dest);
            self.open_lane(self.dest, now);
            self.pump(now);
        } else {
            self.outbox.event(Event::SourceLost { peer: from });
            self.retry_at = Some(now + self.backoff.next_delay());
        }
    }

    fn give_up(&mut self, peer: NodeId) {
        self.gave_up = true;
        self.target = None;
        self.retry_at = None;
        self.outbox.event(Event::GaveUp { peer });
        for (&p, _) in std::mem::take(&mut self.lanes).iter() {
            self.outbox.command(Command::Disconnect { peer: p });
        }
    }

    /// The wait for `peer` expired.
    fn stalled(&mut self, peer: NodeId, now: Time) {
        let Some(lane) = self.lanes.get_mut(&peer) else {
            return;
        };
        let detection = now - lane.last_progress();
        if peer != self.dest {
            self.outbox.command(Command::Disconnect { peer });
            self.lose_relay(peer, detection, now);
            return;
        }
        // The destination: keep an open connection (what is queued on it
        // arrives if it resumes), give up on one that never opened.
        let pieces = if lane.open {
            lane.take_in_flight()
        } else {
            let mut lane = self.lanes.remove(&peer).expect("checked above");
            self.outbox.command(Command::Disconnect { peer });
            lane.take_in_flight()
        };
        self.take_back(pieces);
        if self.target == Some(self.dest) {
            self.redirect(peer, detection, now);
        }
    }

    fn check_finished(&mut self) {
        let total = self.layout.pieces();
        let settled = self.done + self.at_relay == total;
        if settled && !self.finished {
            self.finished = true;
            self.retry_at = None;
            self.outbox.event(Event::SenderFinished);
        } else if !settled {
            self.finished = false;
        }
        if self.done == total && !self.through {
            self.through = true;
            self.target = None;
            self.retry_at = None;
            for (&peer, _) in std::mem::take(&mut self.lanes).iter() {
                self.outbox.command(Command::Disconnect { peer });
            }
        }
    }

    fn violation(&mut self, peer: NodeId, reason: ViolationKind, now: Time) {
        self.outbox.event(Event::ProtocolViolation { peer, reason });
        self.outbox.command(Command::Disconnect { peer });
        self.connection_lost(peer, now);
    }

    fn connection_lost(&mut self, peer: NodeId, now: Time) {
        if peer == self.dest {
            if let Some(mut lane) = self.lanes.remove(&peer) {
                let pieces = lane.take_in_flight();
                self.take_back(pieces);
                if self.target == Some(peer) {
                    let detection = now - lane.last_progress();
                    self.redirect(peer, detection, now);
                }
            }
        } else if let Some(lane) = self.lanes.get(&peer) {
            let detection = now - lane.last_progress();
            self.lose_relay(peer, detection, now);
        } else if self.held.contains_key(&peer) {
            self.lose_relay(peer, Duration::ZERO, now);
        }
    }
}

impl Node for Sender {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, now: Time) {
        self.outbox.clear();
        self.dest_progress = now;
        self.check_finished();
        if self.through || self.gave_up {
            return;
        }
        self.target = Some(self.dest);
        self.open_lane(self.dest, now);
    }

    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        if self.through || self.gave_up {
            return;
        }
        match event {
            ConnectionEvent::Opened => {
                let Some(lane) = self.lanes.get_mut(&peer) else {
                    return; // not ours, or already given up on
                };
                if !lane.open {
                    lane.opened(now);
                    if peer != self.dest {
                        self.outbox.send(peer, Message::RelayFor { dest: self.dest });
                    }
                }
                self.pump(now);
            }
            ConnectionEvent::Failed | ConnectionEvent::Closed => {
                self.connection_lost(peer, now);
                self.check_finished();
            }
        }
    }

    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time) {
        if let Some(lane) = self.lanes.get_mut(&peer) {
            lane.heard(now, self.config.detection_timeout);
        }
        match msg {
            Message::Ack { piece } | Message::Forwarded { piece } if piece >= self.layout.pieces() => {
                self.violation(peer, ViolationKind::InvalidBlock, now);
            }
            Message::Ack { piece } if peer == self.dest => {
                self.progress();
                self.dest_progress = now;
                self.mark_done(piece);
            }
            Message::Ack { piece } => {
                if self.chunks[piece as usize] == Chunk::InFlight(peer) {
                    self.progress();
                    if let Some(lane) = self.lanes.get_mut(&peer) {
                        lane.settle(piece);
                    }
                    self.chunks[piece as usize] = Chunk::AtRelay(peer);
                    self.at_relay += 1;
                    self.held.entry(peer).or_default().insert(piece);
                }
                // Otherwise stale: the chunk was taken back or is done.
            }
            Message::Forwarded { piece } if peer != self.dest => {
                self.progress();
                self.mark_done(piece);
            }
            Message::RelayAlive if peer != self.dest => {}
            _ => self.violation(peer, ViolationKind::UnexpectedMessage, now),
        }
        self.pump(now);
        self.check_finished();
    }

    fn handle_storage(&mut self, _result: StorageResult, _now: Time) {}

    fn handle_timeout(&mut self, now: Time) {
        if self.through || self.gave_up {
            return;
        }
        let due: Vec<NodeId> = self
            .lanes
            .iter()
            .filter(|(p, l)| l.deadline(self.held.contains_key(p)).is_some_and(|d| d <= now))
            .map(|(&p, _)| p)
            .collect();
        for peer in due {
            self.stalled(peer, now);
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            // A new round: every relay gets another chance.
            self.lost.clear();
            if let Some(relay) = choose_relay(&self.candidates, &self.lost) {
                self.target = Some(relay);
                self.outbox.event(Event::FailoverStarted {
                    from: self.dest,
                    relay,
                    detection: now - self.dest_progress,
                });
                self.open_lane(relay, now);
            } else {
                self.target = Some(self.dest);
                self.open_lane(self.dest, now);
            }
            self.pump(now);
        }
        self.check_finished();
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        let stalls = self
            .lanes
            .iter()
            .filter_map(|(p, l)| l.deadline(self.held.contains_key(p)));
        stalls.chain(self.retry_at).min()
    }
}
