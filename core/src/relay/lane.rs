//! One push stream to one peer: the connection's state, the window of
//! chunks pushed and not yet acknowledged, and the progress clock that
//! says when the peer has been quiet for too long. The sender keeps one per
//! peer it pushes to; a relay keeps one towards its destination.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::message::Message;
use crate::node::{Command, NodeId, Outbox};
use crate::pieces::PieceLayout;
use crate::time::Time;

#[derive(Clone, Debug)]
pub(crate) struct Lane {
    pub(crate) peer: NodeId,
    /// The connection is open (not just asked for).
    pub(crate) open: bool,
    in_flight: BTreeSet<u32>,
    /// When the peer last made progress, or when this wait began.
    last_progress: Time,
    /// How long the peer may make no progress.
    patience: Duration,
}

impl Lane {
    /// Asks the driver for a connection to `peer`; the wait for it starts now.
    pub(crate) fn connect(peer: NodeId, now: Time, patience: Duration, outbox: &mut Outbox) -> Lane {
        outbox.command(Command::Connect { peer });
        Lane {
            peer,
            open: false,
            in_flight: BTreeSet::new(),
            last_progress: now,
            patience,
        }
    }

    /// The connection opened.
    pub(crate) fn opened(&mut self, now: Time) {
        self.open = true;
        self.last_progress = now;
    }

    /// The peer said something: it is making progress.
    pub(crate) fn heard(&mut self, now: Time, patience: Duration) {
        self.last_progress = now;
        self.patience = patience;
    }

    /// When the peer last made progress.
    pub(crate) fn last_progress(&self) -> Time {
        self.last_progress
    }

    /// Waits again, `patience` long from now (a retry on the same lane).
    pub(crate) fn wait_again(&mut self, now: Time, patience: Duration) {
        self.last_progress = now;
        self.patience = patience;
    }

    /// Whether another chunk fits in a window of `window`.
    pub(crate) fn has_room(&self, window: u32) -> bool {
        self.open && self.in_flight.len() < window as usize
    }

    /// Whether `piece` was pushed here and not acknowledged.
    pub(crate) fn is_in_flight(&self, piece: u32) -> bool {
        self.in_flight.contains(&piece)
    }

    /// The chunks pushed here and not acknowledged, lowest first.
    pub(crate) fn in_flight(&self) -> &BTreeSet<u32> {
        &self.in_flight
    }

    /// Pushes chunk `piece`. The first chunk of a wait starts its clock.
    pub(crate) fn push(&mut self, piece: u32, layout: &PieceLayout, now: Time, outbox: &mut Outbox) {
        if self.in_flight.is_empty() {
            self.last_progress = now;
        }
        self.in_flight.insert(piece);
        outbox.send(self.peer, Message::Push(layout.block(piece, 0)));
    }

    /// `piece` needs no acknowledgement any more; returns whether it was in
    /// flight here.
    pub(crate) fn settle(&mut self, piece: u32) -> bool {
        self.in_flight.remove(&piece)
    }

    /// Forgets every chunk in flight and returns them (they will be sent
    /// again, here or elsewhere).
    pub(crate) fn take_in_flight(&mut self) -> BTreeSet<u32> {
        std::mem::take(&mut self.in_flight)
    }

    /// When the peer counts as not answering: if the connection is still
    /// opening, chunks are in flight, or `waiting` (something else is
    /// expected of it), `patience` after the last progress; otherwise never.
    pub(crate) fn deadline(&self, waiting: bool) -> Option<Time> {
        (!self.open || !self.in_flight.is_empty() || waiting).then(|| self.last_progress + self.patience)
    }
}
