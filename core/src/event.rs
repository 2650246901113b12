//! What a node reports about itself. Events are the metrics: the simulator
//! and the real backend turn the same event stream into the same report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::message::AnnounceEvent;
use crate::pieces::BlockRef;

/// Something observable that happened at a node. New variants go last: a
/// simulator's trace hash folds in each event's variant index, so inserting
/// one earlier would change every pinned hash without changing behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[non_exhaustive]
pub enum Event {
    /// A block this node asked for arrived and was handed to storage.
    BlockReceived {
        /// Who sent it.
        from: NodeId,
        /// Which block.
        block: BlockRef,
    },
    /// A block arrived that this node did not need (not requested, already
    /// held, or a duplicate); its bytes crossed the link all the same.
    BlockDiscarded {
        /// Who sent it.
        from: NodeId,
        /// Which block.
        block: BlockRef,
    },
    /// A piece passed its hash check and now counts as held.
    PieceVerified {
        /// The piece.
        piece: u32,
    },
    /// A piece failed its hash check; its blocks were thrown away.
    PieceCorrupt {
        /// The piece.
        piece: u32,
    },
    /// This node now holds every piece of the file.
    DownloadComplete,
    /// A peer broke the protocol; the connection to it was closed.
    ProtocolViolation {
        /// The offender.
        peer: NodeId,
        /// What it did.
        reason: ViolationKind,
    },
    /// Storage failed (disk full, unwritable directory); the node stopped
    /// downloading and keeps the pieces it had verified.
    StorageFailed {
        /// The piece being written.
        piece: u32,
        /// What storage said.
        reason: String,
    },
    /// The connection to a source was lost before the download finished; the
    /// node will try again.
    SourceLost {
        /// The peer that went away.
        peer: NodeId,
    },
    /// Relay failover: the sender stopped waiting for `from` (the
    /// destination, or a relay that was lost) and redirects every chunk the
    /// destination has not acknowledged to `relay`.
    FailoverStarted {
        /// The peer that stopped making progress.
        from: NodeId,
        /// The relay chosen.
        relay: NodeId,
        /// How long `from` had made no progress when the sender gave up on
        /// it (the detection delay).
        detection: Duration,
    },
    /// Relay failover: a relay was lost (connection closed, or silent for
    /// the detection timeout) while answering for chunks; the sender took
    /// them back.
    RelayLost {
        /// The relay.
        relay: NodeId,
        /// Chunks the sender took back.
        taken_back: u32,
    },
    /// Relay failover: this relay forwarded every chunk it held to `dest`.
    RelayFlushed {
        /// The destination.
        dest: NodeId,
        /// Chunks this relay has forwarded to `dest` so far.
        chunks: u32,
    },
    /// Relay failover: the sender's upload is finished — every chunk is
    /// acknowledged by the destination or held by a live relay. Emitted
    /// again if a relay is lost and the sender has to finish a second time.
    SenderFinished,
    /// The node stopped trying to reach `peer` after its bounded retries.
    GaveUp {
        /// The peer.
        peer: NodeId,
    },
    /// Swarm: the node sent the tracker an announce.
    Announced {
        /// Why: started, completed, stopped or periodic.
        event: AnnounceEvent,
        /// How many peers it asked for.
        numwant: u32,
    },
    /// Swarm: the tracker answered an announce.
    AnnounceAnswered {
        /// Peers it named (other than the node itself).
        peers: u32,
    },
    /// Swarm: an announce did not reach the tracker, or the tracker went
    /// away before answering; it is sent again after `retry`.
    AnnounceFailed {
        /// The delay before the next attempt.
        retry: Duration,
    },
    /// Swarm: a connection with a neighbour opened.
    Connected {
        /// The neighbour.
        peer: NodeId,
        /// Whether this node dialled it (it dialled us otherwise).
        outgoing: bool,
    },
    /// Swarm: the connection with a neighbour closed (either end closed
    /// it, or it broke).
    Disconnected {
        /// The neighbour.
        peer: NodeId,
    },
    /// Swarm: this node unchoked a neighbour: it answers its requests.
    Unchoked {
        /// The neighbour.
        peer: NodeId,
    },
    /// Swarm: this node choked a neighbour: it stops answering its
    /// requests.
    Choked {
        /// The neighbour.
        peer: NodeId,
    },
    /// Swarm: the node left the swarm (churn): it told the tracker and
    /// closed every connection.
    Left,
    /// A neighbour was shown to send bad data ([`crate::swarm::blame`]): the
    /// connection to it is closed and it is neither accepted nor dialled
    /// again.
    PeerBanned {
        /// The neighbour.
        peer: NodeId,
    },
    /// Swarm: a neighbour left this node's requests unanswered too long
    /// (it unchoked us but sends nothing): they were cancelled there and
    /// went to other neighbours (after 5 s, or one by one from its silence
    /// limit on, as neighbours that idle take them over); it is asked
    /// nothing for a while.
    RequestsTimedOut {
        /// The neighbour.
        peer: NodeId,
    },
    /// Swarm: a neighbour had a hand in [`crate::swarm::blame::STRIKES_TO_SUSPEND`]
    /// failed pieces that no comparison has cleared: it is asked only for
    /// pieces no other neighbour holds until a comparison clears a strike
    /// or bans it.
    PeerSuspended {
        /// The neighbour.
        peer: NodeId,
    },
}

/// The ways a peer can break the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[non_exhaustive]
pub enum ViolationKind {
    /// It requested or sent a block that is not one of the file's blocks.
    InvalidBlock,
    /// It sent a message this protocol never sends in this direction.
    UnexpectedMessage,
    /// It requested a piece the node does not have.
    RequestedMissingPiece,
}
