//! What a node reports about itself. Events are the metrics: the simulator
//! and the real backend turn the same event stream into the same report.

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::pieces::BlockRef;

/// Something observable that happened at a node.
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
