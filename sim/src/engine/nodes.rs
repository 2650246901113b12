//! The engine's side of the sans-IO node interface: the inputs handed to a
//! node (timers, messages) and everything it asks for in return —
//! messages to send, commands to carry out, events to report — after which
//! its timer is re-armed.

use peerlab_core::{Command, Event, Message, NodeId, Output, StorageResult, Time};

use super::MessageSim;
use super::events::{SimEvent, TAG_COMMAND, TAG_DELIVER, TAG_EVENT, TAG_TIMER};

impl MessageSim {
    /// `node`'s timer for `deadline` fires, unless a later poll moved it.
    pub(super) fn timer(&mut self, node: u32, deadline: Time) {
        let now = self.now;
        if self.node_timer[node as usize] != Some(deadline) {
            return; // superseded
        }
        self.events += 1;
        self.node_timer[node as usize] = None;
        self.record(TAG_TIMER, now.as_nanos(), node, &());
        self.nodes[node as usize].handle_timeout(now);
        self.drain(node);
    }

    /// `msg` from `from` arrives at `to` on `conn`: lost if `to` is down or
    /// has seen the connection close.
    pub(super) fn deliver(&mut self, conn: u32, from: u32, to: u32, msg: Message) {
        let now = self.now;
        let c = &self.conns[conn as usize];
        if !self.hosts[to as usize].up || !c.open[c.side(to)] {
            // The receiver has seen the connection close, or is down.
            tracing::debug!(from, to, ?msg, "message on a closed connection lost");
            return;
        }
        // A silent or lying host never hears the requests it will not
        // answer (`peerlab_core::misbehave`).
        if let Message::Request(block) = &msg {
            let host = &self.hosts[to as usize];
            if !host
                .misbehaviour
                .passes_request(|| host.disk.contains(&block.piece))
            {
                tracing::debug!(from, to, ?block, "request to a misbehaving host dropped");
                return;
            }
        }
        self.events += 1;
        self.record(TAG_DELIVER, now.as_nanos(), to, &(from, &msg));
        self.nodes[to as usize].handle_message(NodeId(from), msg, now);
        self.drain(to);
    }

    /// Carries out every output of `node`, then re-arms its timer.
    pub(super) fn drain(&mut self, node: u32) {
        while let Some(output) = self.nodes[node as usize].poll_output() {
            match output {
                Output::Transmit(t) => {
                    let msg = self.hosts[node as usize].misbehaviour.outgoing(t.msg);
                    self.transmit(node, t.to.0, msg);
                }
                Output::Command(c) => self.command(node, c),
                Output::Event(e) => self.node_event(node, e),
            }
        }
        let next = self.nodes[node as usize].poll_timeout();
        if next != self.node_timer[node as usize] {
            self.node_timer[node as usize] = next;
            if let Some(deadline) = next {
                let inc = self.inc(node);
                self.schedule(deadline.max(self.now), SimEvent::Timer { node, inc, deadline });
            }
        }
    }

    fn node_event(&mut self, node: u32, event: Event) {
        self.record(TAG_EVENT, self.now.as_nanos(), node, &event);
        self.report.record(self.now, NodeId(node), &event);
        if let Some(observer) = self.observer.as_mut() {
            observer(self.now, NodeId(node), &event);
        }
        if let Some((check, _)) = self.liveness.as_mut() {
            check.on_event(node, &event);
        }
        match event {
            Event::DownloadComplete | Event::SenderFinished => self.all_complete = self.report.all_complete(),
            Event::PieceVerified { piece } => {
                self.hosts[node as usize].disk.insert(piece);
            }
            _ => {}
        }
    }

    pub(super) fn command(&mut self, node: u32, command: Command) {
        self.record(TAG_COMMAND, self.now.as_nanos(), node, &command);
        match command {
            Command::Connect { peer } => self.connect(node, peer.0),
            Command::Disconnect { peer } => self.disconnect(node, peer.0),
            // The simulator models no disk: blocks are "stored" at once and
            // a piece passes its check unless a block of it came from a host
            // sending corrupt blocks of its piece (fault `corrupt`) when it
            // was stored.
            Command::StoreBlock { from, block } => {
                let corrupt = self
                    .hosts
                    .get(from.0 as usize)
                    .is_some_and(|h| h.misbehaviour.spoils(block.piece));
                let bad = &mut self.hosts[node as usize].bad_blocks;
                if corrupt {
                    bad.insert((block.piece, block.offset));
                } else if !bad.is_empty() {
                    bad.remove(&(block.piece, block.offset));
                }
            }
            Command::VerifyPiece { piece } => {
                let inc = self.inc(node);
                let bad = &self.hosts[node as usize].bad_blocks;
                let result = if bad.range((piece, 0)..=(piece, u32::MAX)).next().is_some() {
                    StorageResult::Corrupt { piece }
                } else {
                    StorageResult::Verified { piece }
                };
                self.schedule(self.now, SimEvent::Storage { node, inc, result });
            }
            // A block's digest: 1 for a corrupting host's bytes, 0 for the
            // file's own.
            Command::DigestBlocks { piece } => {
                let inc = self.inc(node);
                let layout = self.scenario.layout();
                let bad = &self.hosts[node as usize].bad_blocks;
                let digests = (0..layout.blocks_in(piece))
                    .map(|i| u64::from(bad.contains(&(piece, layout.block(piece, i).offset))))
                    .collect();
                let result = StorageResult::Digests { piece, digests };
                self.schedule(self.now, SimEvent::Storage { node, inc, result });
            }
            other => tracing::warn!(node, ?other, "command not modelled by the simulator"),
        }
    }
}
