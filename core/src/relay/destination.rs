//! The destination of a relayed transfer: it never asks for anything. Every
//! chunk pushed to it — by the sender or by a relay — is stored if new,
//! hash-checked, and acknowledged to whoever pushed it; a chunk it already
//! holds is acknowledged again but never stored twice.

use std::collections::{BTreeMap, BTreeSet};

use super::assert_chunks;
use crate::download::{BlockOutcome, Download};
use crate::event::{Event, ViolationKind};
use crate::message::Message;
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::{Bitfield, PieceLayout};
use crate::time::Time;

/// The destination: receives pushed chunks and acknowledges each once it is
/// stored and verified.
#[derive(Debug)]
pub struct Destination {
    id: NodeId,
    download: Download,
    /// Pushers of each chunk being verified, to acknowledge once it is.
    /// Bounded by the chunks being verified times the peers pushing.
    waiting: BTreeMap<u32, BTreeSet<NodeId>>,
    announced_complete: bool,
    stopped: bool,
    outbox: Outbox,
}

impl Destination {
    /// A destination `id` for a file cut as `layout` (a
    /// [`chunk_layout`](super::chunk_layout)), already holding the verified
    /// chunks `have` (empty for a fresh start, the on-disk state after a
    /// restart).
    ///
    /// # Panics
    /// If `layout` has more than one block per piece.
    pub fn new(id: NodeId, layout: PieceLayout, have: Bitfield) -> Self {
        assert_chunks(&layout);
        Destination {
            id,
            download: Download::new(layout, have),
            waiting: BTreeMap::new(),
            announced_complete: false,
            stopped: false,
            outbox: Outbox::default(),
        }
    }

    /// The verified chunks.
    pub fn have(&self) -> &Bitfield {
        self.download.have()
    }

    fn finish_if_complete(&mut self) {
        if self.download.is_complete() && !self.announced_complete {
            self.announced_complete = true;
            self.outbox.event(Event::DownloadComplete);
        }
    }

    fn violation(&mut self, peer: NodeId, reason: ViolationKind) {
        self.outbox.event(Event::ProtocolViolation { peer, reason });
        self.outbox.command(Command::Disconnect { peer });
    }
}

impl Node for Destination {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, _now: Time) {
        self.outbox.clear();
        self.finish_if_complete();
    }

    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, _now: Time) {
        if event != ConnectionEvent::Opened {
            for pushers in self.waiting.values_mut() {
                pushers.remove(&peer);
            }
        }
    }

    fn handle_message(&mut self, peer: NodeId, msg: Message, _now: Time) {
        match msg {
            Message::Push(block) if self.download.layout().is_valid_block(block) => {
                if self.stopped {
                    self.outbox.event(Event::BlockDiscarded { from: peer, block });
                    return;
                }
                let piece = block.piece;
                match self.download.receive(peer, block, &mut self.outbox) {
                    BlockOutcome::Accepted { .. } => {
                        self.waiting.entry(piece).or_default().insert(peer);
                    }
                    BlockOutcome::Unwanted => {
                        if self.download.have().contains(piece) {
                            self.outbox.send(peer, Message::Ack { piece });
                        } else if let Some(pushers) = self.waiting.get_mut(&piece) {
                            // Being verified: acknowledged with the first copy.
                            pushers.insert(peer);
                        }
                    }
                }
            }
            Message::Push(_) => self.violation(peer, ViolationKind::InvalidBlock),
            _ => self.violation(peer, ViolationKind::UnexpectedMessage),
        }
    }

    fn handle_storage(&mut self, result: StorageResult, _now: Time) {
        match result {
            StorageResult::Verified { piece } => {
                self.download.on_verified(piece, true);
                self.outbox.event(Event::PieceVerified { piece });
                for peer in self.waiting.remove(&piece).unwrap_or_default() {
                    self.outbox.send(peer, Message::Ack { piece });
                }
                self.finish_if_complete();
            }
            StorageResult::Corrupt { piece } => {
                // No acknowledgement: the pusher's wait expires and the chunk
                // is pushed again, here or through a relay.
                self.download.on_verified(piece, false);
                self.waiting.remove(&piece);
                self.outbox.event(Event::PieceCorrupt { piece });
            }
            StorageResult::WriteFailed { piece, reason } => {
                self.download.drop_piece(piece);
                self.waiting.remove(&piece);
                self.stopped = true;
                self.outbox.event(Event::StorageFailed { piece, reason });
            }
            // A chunk has one pusher: never asked for.
            StorageResult::Digests { .. } => {}
        }
    }

    fn handle_timeout(&mut self, _now: Time) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}
