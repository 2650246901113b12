//! A deliberately slow node: at most one message leaves per `gap`. It
//! wraps any node through the node contract alone (its pacing is a timer),
//! so a fault can land mid-transfer on a network as fast as loopback.

use std::collections::VecDeque;
use std::time::Duration;

use peerlab_core::{ConnectionEvent, Message, Node, NodeId, Output, StorageResult, Time};

/// A node whose outputs leave at most one message per `gap`: a slow
/// sender, so that a test can act in the middle of a transfer. It uses
/// nothing but the node contract (its pacing is a timer).
pub struct Paced {
    inner: Box<dyn Node + Send>,
    gap: Duration,
    held: VecDeque<Output>,
    ready: VecDeque<Output>,
    next: Time,
}

impl std::fmt::Debug for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced")
            .field("node", &self.inner.id())
            .field("gap", &self.gap)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Paced {
    /// `inner`, sending at most one message per `gap`.
    pub fn new(inner: Box<dyn Node + Send>, gap: Duration) -> Self {
        Paced {
            inner,
            gap,
            held: VecDeque::new(),
            ready: VecDeque::new(),
            next: Time::ZERO,
        }
    }

    fn pump(&mut self, now: Time) {
        while let Some(output) = self.inner.poll_output() {
            self.held.push_back(output);
        }
        while let Some(output) = self.held.front() {
            let transmit = matches!(output, Output::Transmit(_));
            if transmit && self.next > now {
                break;
            }
            if transmit {
                self.next = now + self.gap;
            }
            self.ready.extend(self.held.pop_front());
        }
    }
}

impl Node for Paced {
    fn id(&self) -> NodeId {
        self.inner.id()
    }
    fn handle_start(&mut self, now: Time) {
        self.inner.handle_start(now);
        self.pump(now);
    }
    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        if event != ConnectionEvent::Opened {
            // What was held for the peer would have been lost with the
            // connection.
            self.held
                .retain(|o| !matches!(o, Output::Transmit(t) if t.to == peer));
        }
        self.inner.handle_connection(peer, event, now);
        self.pump(now);
    }
    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time) {
        self.inner.handle_message(peer, msg, now);
        self.pump(now);
    }
    fn handle_storage(&mut self, result: StorageResult, now: Time) {
        self.inner.handle_storage(result, now);
        self.pump(now);
    }
    fn handle_timeout(&mut self, now: Time) {
        self.inner.handle_timeout(now);
        self.pump(now);
    }
    fn poll_output(&mut self) -> Option<Output> {
        self.ready.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        let pacing = (!self.held.is_empty()).then_some(self.next);
        match (self.inner.poll_timeout(), pacing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
