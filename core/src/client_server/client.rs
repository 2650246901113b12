use super::ClientServerConfig;
use crate::backoff::Backoff;
use crate::download::Download;
use crate::event::{Event, ViolationKind};
use crate::message::Message;
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::{Bitfield, PieceLayout};
use crate::pipeline::request_blocks;
use crate::time::Time;
use crate::timers::Timers;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Reconnect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down,
    Connecting,
    Up,
}

/// The client-server protocol's client: fetches every piece from the server
/// in order, keeping `pipeline` block requests outstanding, and reconnects
/// with exponential backoff if the server is lost.
#[derive(Debug)]
pub struct Client {
    id: NodeId,
    server: NodeId,
    config: ClientServerConfig,
    download: Download,
    /// No piece before this one needs a request.
    cursor: u32,
    link: Link,
    backoff: Backoff,
    stopped: bool,
    announced_complete: bool,
    timers: Timers<Timer>,
    outbox: Outbox,
}

impl Client {
    /// A client `id` fetching `layout` from `server`, already holding the
    /// verified pieces `have` (empty for a fresh start, the on-disk state
    /// after a restart).
    pub fn new(
        id: NodeId,
        server: NodeId,
        layout: PieceLayout,
        have: Bitfield,
        config: ClientServerConfig,
    ) -> Self {
        Client {
            id,
            server,
            config,
            download: Download::new(layout, have),
            cursor: 0,
            link: Link::Down,
            backoff: Backoff::new(config.reconnect_min, config.reconnect_max),
            stopped: false,
            announced_complete: false,
            timers: Timers::default(),
            outbox: Outbox::default(),
        }
    }

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        self.download.have()
    }

    fn connect(&mut self) {
        self.link = Link::Connecting;
        self.outbox.command(Command::Connect { peer: self.server });
    }

    fn schedule_reconnect(&mut self, now: Time) {
        self.link = Link::Down;
        self.timers.set(Timer::Reconnect, now + self.backoff.next_delay());
    }

    fn finish_if_complete(&mut self) -> bool {
        if !self.download.is_complete() {
            return false;
        }
        if !self.announced_complete {
            self.announced_complete = true;
            self.outbox.event(Event::DownloadComplete);
            self.timers.cancel(Timer::Reconnect);
            if self.link != Link::Down {
                self.outbox.command(Command::Disconnect { peer: self.server });
            }
        }
        true
    }

    /// Keeps `pipeline` requests outstanding, in piece order.
    fn fill_pipeline(&mut self) {
        if self.link != Link::Up || self.stopped {
            return;
        }
        let pieces = self.download.layout().pieces();
        let passed = request_blocks(
            &mut self.download,
            self.server,
            self.config.pipeline,
            self.cursor..pieces,
            &mut self.outbox,
        );
        self.cursor += passed as u32;
    }

    fn violation(&mut self, reason: ViolationKind) {
        self.outbox.event(Event::ProtocolViolation {
            peer: self.server,
            reason,
        });
        self.outbox.command(Command::Disconnect { peer: self.server });
    }
}

impl Node for Client {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, _now: Time) {
        if self.finish_if_complete() {
            return;
        }
        self.connect();
    }

    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        if peer != self.server {
            return;
        }
        match event {
            ConnectionEvent::Opened => {
                self.link = Link::Up;
                self.backoff.reset();
                if !self.finish_if_complete() {
                    self.fill_pipeline();
                }
            }
            ConnectionEvent::Failed | ConnectionEvent::Closed => {
                self.download.forget_peer(peer);
                self.cursor = 0;
                if self.announced_complete || self.stopped {
                    self.link = Link::Down;
                    return;
                }
                self.outbox.event(Event::SourceLost { peer });
                self.schedule_reconnect(now);
            }
        }
    }

    fn handle_message(&mut self, peer: NodeId, msg: Message, _now: Time) {
        if peer != self.server {
            return;
        }
        match msg {
            Message::Block(block) if self.download.layout().is_valid_block(block) => {
                let _ = self.download.receive(peer, block, &mut self.outbox);
                self.fill_pipeline();
            }
            Message::Block(_) => self.violation(ViolationKind::InvalidBlock),
            Message::Request(_) => self.violation(ViolationKind::UnexpectedMessage),
            _ => {}
        }
    }

    fn handle_storage(&mut self, result: StorageResult, _now: Time) {
        match result {
            StorageResult::Verified { piece } => {
                self.download.on_verified(piece, true);
                self.outbox.event(Event::PieceVerified { piece });
                self.finish_if_complete();
            }
            StorageResult::Corrupt { piece } => {
                self.download.on_verified(piece, false);
                self.outbox.event(Event::PieceCorrupt { piece });
                self.cursor = self.cursor.min(piece);
                self.fill_pipeline();
            }
            StorageResult::WriteFailed { piece, reason } => {
                self.download.drop_piece(piece);
                self.stopped = true;
                self.outbox.event(Event::StorageFailed { piece, reason });
                self.outbox.command(Command::Disconnect { peer: self.server });
            }
            // One source, nobody to tell apart: never asked for.
            StorageResult::Digests { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        for timer in self.timers.expire(now) {
            match timer {
                Timer::Reconnect if self.link == Link::Down && !self.stopped => self.connect(),
                Timer::Reconnect => {}
            }
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }
}
