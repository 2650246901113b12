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
    /// Relay failover (seed 000): this chunk's payload follows, unrequested;
    /// answered by [`Message::Ack`] once stored and verified (peerlab id 64:
    /// piece, offset, payload — the layout of [`Message::Block`]).
    Push(BlockRef),
    /// Relay failover: the sender of this message holds `piece`, stored and
    /// verified (peerlab id 65).
    Ack {
        /// The chunk.
        piece: u32,
    },
    /// Relay failover: the chunks pushed after this message are for `dest`;
    /// hold them and forward them when `dest` answers (peerlab id 66).
    RelayFor {
        /// The destination the chunks are for.
        dest: NodeId,
    },
    /// Relay failover: the relay's destination acknowledged `piece`, so the
    /// relay no longer answers for it (peerlab id 67).
    Forwarded {
        /// The chunk.
        piece: u32,
    },
    /// Relay failover: the relay is alive and still holds chunks it has not
    /// forwarded (peerlab id 68, no fields).
    RelayAlive,
    /// A swarm peer tells the tracker about itself and asks for peers (BEP 3
    /// HTTP announce).
    Announce {
        /// The announcing peer (BEP 3 `peer_id` + address; the driver maps it).
        peer: NodeId,
        /// Why it announces now.
        event: AnnounceEvent,
        /// Bytes it still needs (0 for a seed).
        left: u64,
        /// Payload bytes it has uploaded so far.
        uploaded: u64,
        /// Payload bytes it has downloaded so far.
        downloaded: u64,
        /// How many peers it wants back.
        numwant: u32,
    },
    /// The tracker's answer to an [`Message::Announce`]: a random subset of
    /// the swarm (BEP 23 compact peer list) and when to announce again.
    AnnounceReply {
        /// Seconds until the next regular announce.
        interval_s: u32,
        /// Peers to connect to (never the announcing peer itself).
        peers: Vec<NodeId>,
    },
}

/// Why a peer announces (BEP 3 `event` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum AnnounceEvent {
    /// The first announce of a peer (re)joining the swarm.
    Started,
    /// The peer just completed the file (now a seed).
    Completed,
    /// The peer leaves the swarm.
    Stopped,
    /// A regular announce, every interval (BEP 3: no `event`).
    Periodic,
}

/// Estimated bytes of an HTTP announce request: `GET /announce?` with
/// url-encoded 20-byte `info_hash` and `peer_id` (up to 60 characters each),
/// `port`, `uploaded`, `downloaded`, `left`, `event`, `numwant`, `compact=1`,
/// plus the request line and `Host`/`User-Agent` headers.
pub const ANNOUNCE_REQUEST_BYTES: u64 = 350;

/// Estimated fixed bytes of an HTTP announce response: status line and
/// headers (~100 bytes) plus the bencoded `d8:intervali…e5:peers…:` frame
/// (~30 bytes); BEP 23 compact peers add 6 bytes per IPv4 peer.
pub const ANNOUNCE_REPLY_BYTES: u64 = 130;

/// Bytes per peer in a BEP 23 compact peer list (IPv4 address + port).
pub const COMPACT_PEER_BYTES: u64 = 6;

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
                Message::Push(b) => 8 + u64::from(b.len),
                Message::Ack { .. } | Message::Forwarded { .. } => 4,
                Message::RelayFor { .. } => 4,
                Message::RelayAlive => 0,
                // HTTP, not a BEP 3 frame: no length prefix to add.
                Message::Announce { .. } => ANNOUNCE_REQUEST_BYTES - FRAME_HEADER,
                Message::AnnounceReply { peers, .. } => {
                    ANNOUNCE_REPLY_BYTES + COMPACT_PEER_BYTES * peers.len() as u64 - FRAME_HEADER
                }
            }
    }

    /// Payload (file) bytes this message carries.
    pub fn payload_len(&self) -> u64 {
        match self {
            Message::Block(b) | Message::Push(b) => u64::from(b.len),
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
        let reply = Message::AnnounceReply {
            interval_s: 60,
            peers: vec![NodeId(1), NodeId(2)],
        };
        assert_eq!(reply.wire_len(), ANNOUNCE_REPLY_BYTES + 12);
        assert_eq!(reply.payload_len(), 0);
    }
}
