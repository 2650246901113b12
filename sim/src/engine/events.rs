//! What can happen and in what order: the events of the queue, the two
//! ranges of sequence numbers (ordinary events, and inputs released from a
//! wait, which go first), and the trace record each handled input leaves.

use std::hash::Hash;

use peerlab_core::{ConnectionEvent, Message, StorageResult, Time};

use super::MessageSim;

/// Something scheduled to happen. Inputs for a node carry the node's
/// incarnation when they were scheduled, so nothing reaches a restarted
/// process that was meant for the one that died.
#[derive(Debug)]
pub(super) enum SimEvent {
    Start {
        node: u32,
        inc: u32,
    },
    Timer {
        node: u32,
        inc: u32,
        deadline: Time,
    },
    FlowDone {
        chan: u32,
        version: u64,
    },
    Deliver {
        conn: u32,
        from: u32,
        to: u32,
        msg: Message,
    },
    Connection {
        conn: Option<u32>,
        node: u32,
        inc: u32,
        peer: u32,
        event: ConnectionEvent,
    },
    Storage {
        node: u32,
        inc: u32,
        result: StorageResult,
    },
    /// A payload message `node` sent to `peer` has left its uplink.
    Sent {
        node: u32,
        inc: u32,
        peer: u32,
    },
    Fault {
        host: u32,
        index: usize,
    },
    /// A host that starts after time zero (`start` in the scenario) starts.
    Launch {
        host: u32,
    },
    /// The dialer of `conn` stops waiting for its handshake
    /// ([`CONNECT_TIMEOUT`] after its `connect`).
    HandshakeTimeout {
        conn: u32,
    },
    /// Direction `chan`, which lost bytes at a cut link that is back now,
    /// sends them again (`MessageSim::retransmit`); stale unless `retry` is
    /// still the direction's.
    Retransmit {
        chan: u32,
        retry: u64,
    },
}

impl SimEvent {
    /// The node whose process this input is for.
    pub(super) fn target(&self) -> Option<(u32, u32)> {
        match *self {
            SimEvent::Start { node, inc }
            | SimEvent::Timer { node, inc, .. }
            | SimEvent::Connection { node, inc, .. }
            | SimEvent::Storage { node, inc, .. }
            | SimEvent::Sent { node, inc, .. } => Some((node, inc)),
            _ => None,
        }
    }
}

/// Sequence numbers of ordinary events start here; released events (see
/// `MessageSim::schedule_released`) number from 1, below all of them.
pub(super) const ORDINARY_SEQ: u64 = 1 << 62;

/// An event waiting for a hung process or a cut link, with the key (time,
/// sequence number) it was first scheduled with.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) origin: (Time, u64),
    pub(super) event: SimEvent,
}

pub(super) const TAG_START: u8 = 1;
pub(super) const TAG_TIMER: u8 = 2;
pub(super) const TAG_DELIVER: u8 = 3;
pub(super) const TAG_CONNECTION: u8 = 4;
pub(super) const TAG_STORAGE: u8 = 5;
pub(crate) const TAG_EVENT: u8 = 6;
pub(super) const TAG_COMMAND: u8 = 7;
pub(super) const TAG_FAULT: u8 = 8;
pub(super) const TAG_SENT: u8 = 9;
const TAG_NAMES: [&str; 10] = [
    "",
    "start",
    "timer",
    "deliver",
    "connection",
    "storage",
    "event",
    "command",
    "fault",
    "sent",
];

impl MessageSim {
    /// Folds one record into the trace hash and, if recording, the trace.
    pub(super) fn record<T: Hash + std::fmt::Debug + ?Sized>(
        &mut self,
        tag: u8,
        at: u64,
        node: u32,
        fields: &T,
    ) {
        self.trace.record(tag, at, node, fields);
        if let Some(sink) = &mut self.trace_sink {
            sink(&crate::trace::json_line(
                at,
                node,
                TAG_NAMES[tag as usize],
                fields,
            ));
        }
    }

    /// Schedules `event` at `at`, after everything already scheduled then.
    pub(super) fn schedule(&mut self, at: Time, event: SimEvent) {
        self.seq += 1;
        self.queue.push(at, self.seq, event);
    }

    /// Schedules a released input at `at` (not before now), ahead of
    /// everything else scheduled for that instant: inputs that waited for a
    /// hung process or a cut link keep their place before inputs that
    /// arrive at the very instant they are released. It keeps the key it
    /// was first scheduled with, so if it is held again it waits in its
    /// first place.
    pub(super) fn schedule_released(&mut self, at: Time, held: Held) {
        self.released += 1;
        self.origin.insert(self.released, held.origin);
        self.queue.push(at.max(self.now), self.released, held.event);
    }
}
