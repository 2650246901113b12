//! Pacing: a wrapper that makes any node a deliberately slow sender — at
//! most one message leaves per `gap` — so that a test or a demo on a network
//! as fast as loopback can act in the middle of a transfer. It uses nothing
//! but the node contract (its pacing is a timer), so it runs unchanged in
//! the simulator and on real backends.

use std::collections::VecDeque;
use std::time::Duration;

use crate::message::Message;
use crate::node::{ConnectionEvent, Node, NodeId, Output, StorageResult};
use crate::time::Time;

/// A node whose outputs leave at most one message per `gap`: a slow
/// sender, so that a test can act in the middle of a transfer. It uses
/// nothing but the node contract (its pacing is a timer).
#[derive(Debug)]
pub struct Paced<N> {
    inner: N,
    gap: Duration,
    held: VecDeque<Output>,
    ready: VecDeque<Output>,
    next: Time,
}

impl<N: Node> Paced<N> {
    /// `inner`, sending at most one message per `gap`.
    pub fn new(inner: N, gap: Duration) -> Self {
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

impl<N: Node> Node for Paced<N> {
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
    fn handle_sent(&mut self, peer: NodeId, now: Time) {
        self.inner.handle_sent(peer, now);
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
