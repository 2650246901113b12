//! The relay: stores the chunks a sender redirects to it, acknowledges
//! them, probes their destination and forwards them once it answers,
//! reporting each forwarded chunk back to the sender.
//!
//! Probing the destination is a [`Lane`] like the sender's: connect, push a
//! window, wait for acknowledgements. A connection that closes or never
//! opens is retried after a backoff; an open connection on which nothing is
//! acknowledged for the detection timeout is kept (what is queued on it
//! arrives when a hung destination resumes) and waited on again, a backoff
//! longer each time. After [`RelayConfig::max_attempts`] retries without
//! progress the relay gives up and closes its connection to the sender,
//! which takes the chunks back.

use std::collections::BTreeSet;

use super::lane::Lane;
use super::{RelayConfig, assert_chunks};
use crate::backoff::Backoff;
use crate::download::{BlockOutcome, Download};
use crate::event::{Event, ViolationKind};
use crate::message::Message;
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::{Bitfield, PieceLayout};
use crate::time::Time;
use crate::timers::Timers;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Try the destination again.
    Reconnect,
    /// Tell the sender this relay is alive.
    Alive,
}

/// A relay: holds chunks for a destination that does not answer and
/// forwards them when it does.
#[derive(Debug)]
pub struct Relay {
    id: NodeId,
    config: RelayConfig,
    store: Download,
    /// The peer that asked for relaying, while connected.
    sender: Option<NodeId>,
    dest: Option<NodeId>,
    /// Chunks held and verified that the destination has not acknowledged
    /// (those in flight included).
    unforwarded: BTreeSet<u32>,
    forwarded: Bitfield,
    lane: Option<Lane>,
    attempts: u32,
    backoff: Backoff,
    gave_up: bool,
    timers: Timers<Timer>,
    outbox: Outbox,
}

impl Relay {
    /// A relay `id` for a file cut as `layout` (a
    /// [`chunk_layout`](super::chunk_layout)), already holding the verified
    /// chunks `have` (after a restart they are forwarded again to the next
    /// destination it is asked to relay for).
    ///
    /// # Panics
    /// If `layout` has more than one block per piece.
    pub fn new(id: NodeId, layout: PieceLayout, have: Bitfield, config: RelayConfig) -> Self {
        assert_chunks(&layout);
        Relay {
            id,
            config,
            store: Download::new(layout, have),
            sender: None,
            dest: None,
            unforwarded: BTreeSet::new(),
            forwarded: Bitfield::new(layout.pieces()),
            lane: None,
            attempts: 0,
            backoff: Backoff::new(config.retry_min, config.retry_max),
            gave_up: false,
            timers: Timers::default(),
            outbox: Outbox::default(),
        }
    }

    /// Chunks held and not yet acknowledged by the destination.
    pub fn unforwarded(&self) -> u32 {
        self.unforwarded.len() as u32
    }

    /// Chunks the destination has acknowledged to this relay.
    pub fn forwarded(&self) -> u32 {
        self.forwarded.count()
    }

    fn layout(&self) -> PieceLayout {
        *self.store.layout()
    }

    /// Opens a lane to the destination if there is something to forward and
    /// no retry is pending.
    fn ensure_lane(&mut self, now: Time) {
        let Some(dest) = self.dest else { return };
        if self.lane.is_none()
            && !self.unforwarded.is_empty()
            && !self.gave_up
            && !self.timers.is_set(Timer::Reconnect)
        {
            self.lane = Some(Lane::connect(
                dest,
                now,
                self.config.detection_timeout,
                &mut self.outbox,
            ));
        }
    }

    /// Pushes unforwarded chunks, lowest first, while the window has room.
    fn pump(&mut self, now: Time) {
        let layout = self.layout();
        let Some(lane) = self.lane.as_mut() else { return };
        if !lane.has_room(self.config.window) {
            return;
        }
        let next: Vec<u32> = self
            .unforwarded
            .iter()
            .copied()
            .filter(|&p| !lane.is_in_flight(p))
            .take(self.config.window as usize - lane.in_flight().len())
            .collect();
        for piece in next {
            lane.push(piece, &layout, now, &mut self.outbox);
        }
    }

    fn arm_alive(&mut self, now: Time) {
        if self.sender.is_some() && !self.unforwarded.is_empty() {
            self.timers
                .set_if_unset(Timer::Alive, now + self.config.alive_interval());
        } else {
            self.timers.cancel(Timer::Alive);
        }
    }

    /// One more retry of the destination, or giving up after too many.
    fn retry(&mut self, now: Time) -> bool {
        self.attempts += 1;
        if self.attempts <= self.config.max_attempts {
            return true;
        }
        self.gave_up = true;
        self.timers.cancel(Timer::Reconnect);
        if let Some(dest) = self.dest {
            self.outbox.event(Event::GaveUp { peer: dest });
            if self.lane.take().is_some() {
                self.outbox.command(Command::Disconnect { peer: dest });
            }
        }
        // The sender sees the relay go and takes its chunks back.
        if let Some(sender) = self.sender.take() {
            self.outbox.command(Command::Disconnect { peer: sender });
        }
        self.arm_alive(now);
        false
    }

    /// The connection to the destination is gone or never opened.
    fn lane_lost(&mut self, now: Time) {
        self.lane = None;
        if self.retry(now) {
            self.timers.set(Timer::Reconnect, now + self.backoff.next_delay());
        }
    }

    fn flushed_if_done(&mut self) {
        if !self.unforwarded.is_empty() {
            return;
        }
        if let (Some(lane), Some(dest)) = (self.lane.take(), self.dest) {
            debug_assert!(lane.in_flight().is_empty());
            self.outbox.event(Event::RelayFlushed {
                dest,
                chunks: self.forwarded.count(),
            });
            self.outbox.command(Command::Disconnect { peer: dest });
            self.timers.cancel(Timer::Alive);
        }
    }

    fn on_relay_for(&mut self, peer: NodeId, dest: NodeId, now: Time) {
        if dest == self.id || dest == peer {
            return self.violation(peer, ViolationKind::UnexpectedMessage);
        }
        if self.dest.is_some_and(|d| d != dest) {
            if !self.unforwarded.is_empty() {
                // One destination at a time.
                return self.violation(peer, ViolationKind::UnexpectedMessage);
            }
            if self.lane.take().is_some() {
                self.outbox.command(Command::Disconnect {
                    peer: self.dest.expect("checked"),
                });
            }
        }
        if self.dest != Some(dest) {
            self.dest = Some(dest);
            self.forwarded = Bitfield::new(self.layout().pieces());
            // Chunks held from before (a restart) are forwarded again; the
            // destination drops those it has.
            self.unforwarded = self.store.have().iter().collect();
        }
        self.sender = Some(peer);
        self.gave_up = false;
        self.attempts = 0;
        self.backoff.reset();
        self.ensure_lane(now);
        self.pump(now);
        self.arm_alive(now);
    }

    fn on_push(&mut self, peer: NodeId, block: crate::pieces::BlockRef) {
        if self.sender != Some(peer) || self.dest.is_none() {
            return self.violation(peer, ViolationKind::UnexpectedMessage);
        }
        if !self.store.layout().is_valid_block(block) {
            return self.violation(peer, ViolationKind::InvalidBlock);
        }
        let piece = block.piece;
        match self.store.receive(peer, block, &mut self.outbox) {
            BlockOutcome::Accepted { .. } => {}
            BlockOutcome::Unwanted => {
                if self.forwarded.contains(piece) {
                    self.outbox.send(peer, Message::Forwarded { piece });
                } else if self.store.have().contains(piece) {
                    self.outbox.send(peer, Message::Ack { piece });
                }
                // Else it is being verified: acknowledged when it is.
            }
        }
    }

    fn on_dest_ack(&mut self, piece: u32, now: Time) {
        if let Some(lane) = self.lane.as_mut() {
            lane.settle(piece);
            lane.heard(now, self.config.detection_timeout);
        }
        self.attempts = 0;
        self.backoff.reset();
        if piece < self.layout().pieces() && self.unforwarded.remove(&piece) && self.forwarded.insert(piece) {
            if let Some(sender) = self.sender {
                self.outbox.send(sender, Message::Forwarded { piece });
            }
        }
        self.pump(now);
        self.flushed_if_done();
    }

    fn violation(&mut self, peer: NodeId, reason: ViolationKind) {
        self.outbox.event(Event::ProtocolViolation { peer, reason });
        self.outbox.command(Command::Disconnect { peer });
        if self.sender == Some(peer) {
            self.sender = None;
        }
    }
}

impl Node for Relay {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, _now: Time) {
        self.outbox.clear();
    }

    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        let to_dest = self.dest == Some(peer) && self.lane.is_some();
        match event {
            ConnectionEvent::Opened if to_dest => {
                if let Some(lane) = self.lane.as_mut().filter(|l| !l.open) {
                    lane.opened(now);
                }
                self.pump(now);
            }
            ConnectionEvent::Opened => {}
            ConnectionEvent::Failed | ConnectionEvent::Closed => {
                if to_dest {
                    self.lane_lost(now);
                }
                if self.sender == Some(peer) {
                    // Keep forwarding: the destination still wants the
                    // chunks, and duplicates cost it nothing but bandwidth.
                    self.sender = None;
                }
            }
        }
        self.arm_alive(now);
    }

    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time) {
        match msg {
            Message::RelayFor { dest } => self.on_relay_for(peer, dest, now),
            Message::Push(block) => self.on_push(peer, block),
            Message::Ack { piece } if Some(peer) == self.dest => self.on_dest_ack(piece, now),
            _ => self.violation(peer, ViolationKind::UnexpectedMessage),
        }
        self.arm_alive(now);
    }

    fn handle_storage(&mut self, result: StorageResult, now: Time) {
        match result {
            StorageResult::Verified { piece } => {
                self.store.on_verified(piece, true);
                self.outbox.event(Event::PieceVerified { piece });
                if self.dest.is_some() && !self.forwarded.contains(piece) {
                    self.unforwarded.insert(piece);
                    if let Some(sender) = self.sender {
                        self.outbox.send(sender, Message::Ack { piece });
                    }
                    self.ensure_lane(now);
                    self.pump(now);
                }
            }
            StorageResult::Corrupt { piece } => {
                // Not acknowledged: the sender's wait expires and it takes
                // the chunk back.
                self.store.on_verified(piece, false);
                self.outbox.event(Event::PieceCorrupt { piece });
            }
            StorageResult::WriteFailed { piece, reason } => {
                self.store.drop_piece(piece);
                self.outbox.event(Event::StorageFailed { piece, reason });
            }
            // A chunk has one pusher: never asked for.
            StorageResult::Digests { .. } => {}
        }
        self.arm_alive(now);
    }

    fn handle_timeout(&mut self, now: Time) {
        for timer in self.timers.expire(now) {
            match timer {
                Timer::Reconnect => self.ensure_lane(now),
                Timer::Alive => {
                    if let Some(sender) = self.sender.filter(|_| !self.unforwarded.is_empty()) {
                        self.outbox.send(sender, Message::RelayAlive);
                    }
                }
            }
        }
        let stalled = self
            .lane
            .as_ref()
            .filter(|l| l.deadline(false).is_some_and(|d| d <= now));
        if let Some(open) = stalled.map(|l| l.open) {
            if open {
                // Keep the connection: a hung destination reads what is
                // queued on it when it resumes. Wait again, longer.
                if self.retry(now) {
                    let patience = self.config.detection_timeout + self.backoff.next_delay();
                    if let Some(lane) = self.lane.as_mut() {
                        lane.wait_again(now, patience);
                    }
                }
            } else {
                if let Some(dest) = self.dest {
                    self.outbox.command(Command::Disconnect { peer: dest });
                }
                self.lane_lost(now);
            }
        }
        self.arm_alive(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        let stall = self.lane.as_ref().and_then(|l| l.deadline(false));
        [self.timers.next(), stall].into_iter().flatten().min()
    }
}
