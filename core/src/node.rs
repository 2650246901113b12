//! The contract every peerlab node keeps with the driver that runs it.
//!
//! A node — server, client, tracker, peer, relay — is a plain state machine.
//! Inputs arrive through the `handle_*` methods of [`Node`], each with the
//! current time; outputs are pulled with [`Node::poll_output`] until it
//! returns `None`, then [`Node::poll_timeout`] tells when the node next wants
//! [`Node::handle_timeout`]. The driver (simulator or tokio) carries out each
//! [`Output`] in the order it was produced: a [`Transmit`] is sent, a
//! [`Command`] is executed, an [`Event`] is recorded.
//!
//! Nodes never see sockets, files, clocks or threads. Peers are named by
//! [`NodeId`]; the driver keeps the one connection between two nodes
//! (whichever side opened it) and maps ids to addresses.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::message::{Message, Transmit};
use crate::pieces::BlockRef;
use crate::time::Time;

/// A node's identity within a run (an index into the scenario's hosts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What happened to the connection with a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum ConnectionEvent {
    /// The connection is open (this node or the peer opened it).
    Opened,
    /// A [`Command::Connect`] this node issued did not succeed.
    Failed,
    /// An open connection was closed by the peer, the network or a
    /// [`Command::Disconnect`]. Messages in flight on it are lost.
    Closed,
}

/// How long a driver lets a [`Command::Connect`] take before it answers
/// [`ConnectionEvent::Failed`]: the TCP handshake and the peer process's
/// answer to ours. A peer whose kernel accepts but whose process is hung
/// never answers, so the connection fails after this long. Every driver
/// uses it: the real backend as its default, the simulator always.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Work other than sending that a node asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[non_exhaustive]
pub enum Command {
    /// Open a connection to `peer`; answered by
    /// [`ConnectionEvent::Opened`] or [`ConnectionEvent::Failed`].
    Connect {
        /// The peer.
        peer: NodeId,
    },
    /// Close the connection to `peer` (messages already queued are sent
    /// first); answered by [`ConnectionEvent::Closed`].
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// Write the payload of the block just received from `from` to storage.
    /// Issued only while handling that [`Message::Block`]; a block payload
    /// the node does not claim this way is dropped by the driver.
    StoreBlock {
        /// The sender of the payload.
        from: NodeId,
        /// The block.
        block: BlockRef,
    },
    /// Hash-check `piece` against the metainfo once all its blocks are
    /// stored; answered by [`StorageResult::Verified`] or
    /// [`StorageResult::Corrupt`].
    VerifyPiece {
        /// The piece.
        piece: u32,
    },
    /// Digest each block of `piece` as it is in storage now, checked or
    /// not; answered by [`StorageResult::Digests`]. A swarm peer asks for
    /// the blocks of a piece several neighbours sent when it fails its
    /// check, and again once it passes, to see whose blocks were bad
    /// ([`crate::swarm::blame`]).
    DigestBlocks {
        /// The piece.
        piece: u32,
    },
}

/// The answer of storage to a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[non_exhaustive]
pub enum StorageResult {
    /// The piece matches its hash.
    Verified {
        /// The piece.
        piece: u32,
    },
    /// The piece does not match its hash; its bytes must not be used.
    Corrupt {
        /// The piece.
        piece: u32,
    },
    /// The digests of `piece`'s blocks, in block order, for
    /// [`Command::DigestBlocks`]: equal digests mean equal bytes (the real
    /// backend truncates each block's SHA-1 to 64 bits).
    Digests {
        /// The piece.
        piece: u32,
        /// One digest per block.
        digests: Vec<u64>,
    },
    /// Storage could not write a block of `piece` (disk full, unwritable).
    WriteFailed {
        /// The piece.
        piece: u32,
        /// What storage said.
        reason: String,
    },
}

/// One output of a node, in the order it must be carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send a message.
    Transmit(Transmit),
    /// Do some work.
    Command(Command),
    /// Record an observation.
    Event(Event),
}

/// A sans-IO node. See the [module documentation](self) for the contract and
/// [the crate documentation](crate) for the driver loop.
pub trait Node {
    /// This node's id.
    fn id(&self) -> NodeId;

    /// The node process starts (or restarts) at `now`.
    fn handle_start(&mut self, now: Time);

    /// The connection with `peer` changed.
    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time);

    /// `msg` arrived from `peer`.
    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time);

    /// Storage answered a [`Command`].
    fn handle_storage(&mut self, result: StorageResult, now: Time);

    /// The transport finished sending a payload message (a
    /// [`Message::Block`] or [`Message::Push`]) to `peer`: its bytes have
    /// left this host's queue for the network, so the node may hand the
    /// driver the next one and keep the driver's queue short (see
    /// [`crate::swarm::upload`]). Drivers report every payload message, once,
    /// in the order of each connection; a message lost with its connection
    /// is never reported. The default ignores it.
    fn handle_sent(&mut self, peer: NodeId, now: Time) {
        let _ = (peer, now);
    }

    /// The deadline from [`Node::poll_timeout`] passed. Calling it early or
    /// twice is harmless.
    fn handle_timeout(&mut self, now: Time);

    /// The next output to carry out, `None` when there is nothing left.
    #[must_use]
    fn poll_output(&mut self) -> Option<Output>;

    /// When the node next wants [`Node::handle_timeout`], if ever.
    #[must_use]
    fn poll_timeout(&self) -> Option<Time>;
}

/// A boxed node is a node (so wrappers such as [`crate::pace::Paced`] take
/// the boxed nodes drivers hold).
impl<N: Node + ?Sized> Node for Box<N> {
    fn id(&self) -> NodeId {
        (**self).id()
    }
    fn handle_start(&mut self, now: Time) {
        (**self).handle_start(now);
    }
    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        (**self).handle_connection(peer, event, now);
    }
    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time) {
        (**self).handle_message(peer, msg, now);
    }
    fn handle_storage(&mut self, result: StorageResult, now: Time) {
        (**self).handle_storage(result, now);
    }
    fn handle_sent(&mut self, peer: NodeId, now: Time) {
        (**self).handle_sent(peer, now);
    }
    fn handle_timeout(&mut self, now: Time) {
        (**self).handle_timeout(now);
    }
    fn poll_output(&mut self) -> Option<Output> {
        (**self).poll_output()
    }
    fn poll_timeout(&self) -> Option<Time> {
        (**self).poll_timeout()
    }
}

/// The queue of outputs a node has produced and the driver has not pulled
/// yet; every node keeps one.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Output>,
}

impl Outbox {
    /// Queues a message to `to`.
    pub fn send(&mut self, to: NodeId, msg: Message) {
        self.queue.push_back(Output::Transmit(Transmit { to, msg }));
    }

    /// Queues a command.
    pub fn command(&mut self, command: Command) {
        self.queue.push_back(Output::Command(command));
    }

    /// Queues an event.
    pub fn event(&mut self, event: Event) {
        self.queue.push_back(Output::Event(event));
    }

    /// The oldest output not pulled yet.
    pub fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// Forgets every output not pulled yet (the process died).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}
