use crate::event::{Event, ViolationKind};
use crate::message::Message;
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::PieceLayout;
use crate::time::Time;

/// The client-server protocol's server: holds every piece and answers every
/// valid block request.
#[derive(Debug)]
pub struct Server {
    id: NodeId,
    layout: PieceLayout,
    outbox: Outbox,
}

impl Server {
    /// A server with id `id` holding the whole file described by `layout`.
    pub fn new(id: NodeId, layout: PieceLayout) -> Self {
        Server {
            id,
            layout,
            outbox: Outbox::default(),
        }
    }

    fn violation(&mut self, peer: NodeId, reason: ViolationKind) {
        self.outbox.event(Event::ProtocolViolation { peer, reason });
        self.outbox.command(Command::Disconnect { peer });
    }
}

impl Node for Server {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, _now: Time) {
        self.outbox.clear();
    }

    fn handle_connection(&mut self, _peer: NodeId, _event: ConnectionEvent, _now: Time) {}

    fn handle_message(&mut self, peer: NodeId, msg: Message, _now: Time) {
        match msg {
            Message::Request(block) if self.layout.is_valid_block(block) => {
                self.outbox.send(peer, Message::Block(block));
            }
            Message::Request(_) => self.violation(peer, ViolationKind::InvalidBlock),
            // A queued block cannot be recalled; clients only cancel when
            // they no longer care, so sending it anyway is harmless.
            Message::Cancel(_) | Message::Interested | Message::NotInterested => {}
            _ => self.violation(peer, ViolationKind::UnexpectedMessage),
        }
    }

    fn handle_storage(&mut self, _result: StorageResult, _now: Time) {}

    fn handle_timeout(&mut self, _now: Time) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}
