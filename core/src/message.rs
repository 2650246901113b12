//! Every message any peerlab node sends to another, for every protocol.
//!
//! The piece-moving messages mirror BitTorrent's peer wire protocol (BEP 3)
//! and [`Message::wire_len`] gives their size in that layout, so the
//! simulator charges a link exactly what the real backend will send. A
//! [`Message::Block`] names its payload but does not carry it: the driver
//! moves the bytes (real backend) or only their count (simulator).

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::pieces::{Bitfield, BlockRef};

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[non_exhaustive]
pub enum Message {
    /// The sender will not answer requests from the receiver (BEP 3 id 0).
    Choke,
    /// The sender will answer requests from the receiver (BEP 3 id 1).
    Unchoke,
    /// The sender wants pieces the receiver has (BEP 3 id 2).
    Interested,
    /// The sender wants nothing the receiver has (BEP 3 id 3).
    NotInterested,
    /// The sender has verified `piece` (BEP 3 id 4).
    Have {
        /// The piece.
        piece: u32,
    },
    /// Every piece the sender holds, sent first on a connection (BEP 3 id 5).
    Bitfield(Bitfield),
    /// Please send this block (BEP 3 id 6).
    Request(BlockRef),
    /// This block's payload follows (BEP 3 id 7, "piece").
    Block(BlockRef),
    /// Forget an earlier request for this block (BEP 3 id 8).
    Cancel(BlockRef),
}

/// BEP 3 frames: 4-byte length prefix, then a 1-byte message id.
const FRAME_HEADER: u64 = 5;

impl Message {
    /// Bytes this message occupies on the wire, payload included.
    pub fn wire_len(&self) -> u64 {
        FRAME_HEADER
            + match self {
                Message::Choke | Message::Unchoke => 0,
                Message::Interested | Message::NotInterested => 0,
                Message::Have { .. } => 4,
                Message::Bitfield(b) => u64::from(b.wire_len()),
                Message::Request(_) | Message::Cancel(_) => 12,
                Message::Block(b) => 8 + u64::from(b.len),
            }
    }

    /// Payload (file) bytes this message carries.
    pub fn payload_len(&self) -> u64 {
        match self {
            Message::Block(b) => u64::from(b.len),
            _ => 0,
        }
    }
}

/// A message to send: the output a node produces most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The node to send to; the connection must be open.
    pub to: NodeId,
    /// What to send.
    pub msg: Message,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_bep3() {
        let b = BlockRef {
            piece: 1,
            offset: 16_384,
            len: 16_384,
        };
        assert_eq!(Message::Choke.wire_len(), 5);
        assert_eq!(Message::Have { piece: 9 }.wire_len(), 9);
        assert_eq!(Message::Request(b).wire_len(), 17);
        assert_eq!(Message::Block(b).wire_len(), 13 + 16_384);
        assert_eq!(Message::Block(b).payload_len(), 16_384);
        assert_eq!(Message::Bitfield(Bitfield::new(9)).wire_len(), 7);
    }
}
