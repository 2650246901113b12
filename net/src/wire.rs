//! The wire codec: BitTorrent's peer wire protocol (BEP 3), the handshake
//! and the length-prefixed frames that carry [`Message`]s between two nodes.
//!
//! ```text
//! handshake  19 | "BitTorrent protocol" | reserved [u8; 8] | info_hash [u8; 20] | peer_id [u8; 20]
//! frame      length u32 BE | id u8 | body          (length counts id + body)
//! keep-alive 0u32                                   (a frame of length 0, no id)
//!   0 choke, 1 unchoke, 2 interested, 3 not interested   no body
//!   4 have      piece u32
//!   5 bitfield  ceil(pieces / 8) bytes, high bit of the first byte = piece 0
//!   6 request, 8 cancel   piece u32 | offset u32 | len u32
//!   7 piece     piece u32 | offset u32 | payload       ([`Message::Block`])
//! peerlab's relay failover (seed 000), ids past BEP 3's:
//!  64 push      piece u32 | offset u32 | payload       ([`Message::Push`])
//!  65 ack, 67 forwarded   piece u32
//!  66 relay-for dest u32                               (a [`NodeId`])
//!  68 relay-alive         no body
//! ```
//!
//! All integers are big-endian. A frame occupies exactly
//! [`Message::wire_len`] bytes, the size the simulator charges a link for it.
//!
//! # Decoding
//!
//! [`decode`] and [`decode_handshake`] read from the caller's buffer and
//! return what they decoded with the number of bytes it took, or `None` when
//! the buffer holds only part of it: read more from the socket, call again.
//! Every length and count read from the wire is checked against [`Limits`] as
//! soon as it is read — before anything is allocated, and before waiting for
//! the rest of a frame that could never be accepted. A block's payload is not
//! copied: [`Frame::Block`] borrows it from the buffer, so the driver copies
//! it once, to storage.
//!
//! The codec checks framing only: lengths, counts and message ids, and that
//! every block is 1 to [`MAX_BLOCK_SIZE`] bytes. Whether a block is one of
//! the file's blocks, or a piece index is in range, is for the protocol core
//! to judge ([`peerlab_core::PieceLayout::is_valid_block`]), so that a peer
//! breaking it shows up as the same protocol-violation event in the
//! simulator and on a real network.
//!
//! Message ids other than BEP 3's 0 to 8 and the relay's 64 to 68 are
//! rejected as [`WireError::UnknownMessage`]: peerlab sets no reserved bit in
//! its handshake, so a conforming peer never sends the Fast extension's (BEP
//! 6), the DHT port (BEP 5) or extension-protocol (BEP 10) messages. (The
//! relay ids sit in a range no BEP assigns; only peerlab nodes running the
//! relay protocol send them.)
//!
//! The swarm tracker's [`Message::Announce`] and [`Message::AnnounceReply`]
//! are not peer-wire messages: BitTorrent carries them over HTTP (BEP 3
//! announce, BEP 23 compact peers). [`encode`] refuses them with
//! [`WireError::Unencodable`]; over a real network they go through the HTTP
//! tracker of [`crate::tracker_http`].
//!
//! # Example
//!
//! ```
//! use peerlab_core::{BlockRef, Message};
//! use peerlab_net::wire::{self, Frame, Limits};
//!
//! let block = BlockRef { piece: 3, offset: 16_384, len: 4 };
//! let mut out = Vec::new();
//! wire::encode(&Message::Request(block), None, &mut out)?;
//! wire::encode(&Message::Block(block), Some(b"data"), &mut out)?;
//!
//! // The receiving side: decode frames from the front of its buffer.
//! let limits = Limits::new(10);
//! let mut buf = &out[..];
//! let mut frames = Vec::new();
//! while let Some((frame, used)) = wire::decode(buf, &limits)? {
//!     frames.push(frame);
//!     buf = &buf[used..];
//! }
//! assert_eq!(frames, [
//!     Frame::Message(Message::Request(block)),
//!     Frame::Block { block, payload: b"data" },
//! ]);
//! # Ok::<(), wire::WireError>(())
//! ```

use peerlab_core::pieces::MAX_BLOCK_SIZE;
use peerlab_core::{Bitfield, BlockRef, Message, NodeId};

/// The protocol name a BEP 3 handshake starts with (after its length, 19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// Bytes in a handshake: 1 + 19 + 8 + 20 + 20.
pub const HANDSHAKE_LEN: usize = 68;

/// The default [`Limits::max_frame_len`]: a piece message carrying a block of
/// [`MAX_BLOCK_SIZE`] bytes (length prefix, id, piece, offset, payload).
pub const DEFAULT_MAX_FRAME_LEN: u32 = MAX_BLOCK_SIZE + 13;

const ID_CHOKE: u8 = 0;
const ID_UNCHOKE: u8 = 1;
const ID_INTERESTED: u8 = 2;
const ID_NOT_INTERESTED: u8 = 3;
const ID_HAVE: u8 = 4;
const ID_BITFIELD: u8 = 5;
const ID_REQUEST: u8 = 6;
const ID_PIECE: u8 = 7;
const ID_CANCEL: u8 = 8;
const ID_PUSH: u8 = 64;
const ID_ACK: u8 = 65;
const ID_RELAY_FOR: u8 = 66;
const ID_FORWARDED: u8 = 67;
const ID_RELAY_ALIVE: u8 = 68;

/// Bytes of a length prefix.
const PREFIX: u64 = 4;
/// Length (id + piece + offset) of a piece or push message without its
/// payload.
const PIECE_HEADER: u32 = 9;

/// Unwraps a [`Reader`] result, or returns `Ok(None)` ("read more") from the
/// decoder when the buffer ends first.
macro_rules! need {
    ($read:expr) => {
        match $read {
            Some(value) => value,
            None => return Ok(None),
        }
    };
}

/// The opening message each side of a connection sends first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Extension bits; peerlab sets none and ignores the peer's.
    pub reserved: [u8; 8],
    /// The SHA-1 of the metainfo's info dictionary: which file this
    /// connection is about.
    pub info_hash: [u8; 20],
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// A handshake for `info_hash` from `peer_id`, advertising no extension.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Self {
        Handshake {
            reserved: [0; 8],
            info_hash,
            peer_id,
        }
    }
}

/// Bounds on what [`decode`] accepts from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame accepted, in bytes, length prefix included (the
    /// unit of [`Message::wire_len`]).
    pub max_frame_len: u32,
    /// Pieces in the file: a bitfield must have exactly `ceil(pieces / 8)`
    /// bytes and no bit set past the last piece.
    pub pieces: u32,
}

impl Limits {
    /// Limits for a file of `pieces` pieces: frames up to
    /// [`DEFAULT_MAX_FRAME_LEN`] bytes, or the size of the file's bitfield
    /// message if that is larger.
    pub fn new(pieces: u32) -> Self {
        let bitfield_frame = 5 + pieces.div_ceil(8);
        Limits {
            max_frame_len: DEFAULT_MAX_FRAME_LEN.max(bitfield_frame),
            pieces,
        }
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A zero-length frame: the peer is still there (BEP 3 keep-alive).
    KeepAlive,
    /// Any message except [`Message::Block`] and [`Message::Push`], which
    /// arrive as [`Frame::Block`] and [`Frame::Push`].
    Message(Message),
    /// A block and its payload, borrowed from the buffer given to
    /// [`decode`]; `payload.len() == block.len`.
    Block {
        /// The block (its `len` is the payload's length).
        block: BlockRef,
        /// The block's bytes.
        payload: &'a [u8],
    },
    /// A relay push ([`Message::Push`]) and its payload, borrowed like
    /// [`Frame::Block`]'s.
    Push {
        /// The chunk (its `len` is the payload's length).
        block: BlockRef,
        /// The chunk's bytes.
        payload: &'a [u8],
    },
}

impl Frame<'_> {
    /// The message to hand the protocol core ([`Message::Block`] or
    /// [`Message::Push`] for a payload, which the driver keeps), or `None`
    /// for a keep-alive.
    pub fn into_message(self) -> Option<Message> {
        match self {
            Frame::KeepAlive => None,
            Frame::Message(msg) => Some(msg),
            Frame::Block { block, .. } => Some(Message::Block(block)),
            Frame::Push { block, .. } => Some(Message::Push(block)),
        }
    }

    /// The payload this frame carries (a block's or a push's bytes).
    pub fn payload(&self) -> Option<&[u8]> {
        match self {
            Frame::Block { payload, .. } | Frame::Push { payload, .. } => Some(payload),
            _ => None,
        }
    }
}

/// Why bytes could not be encoded or decoded. Each decoding error means the
/// peer broke the protocol and the connection should be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The handshake does not start with 19, the length of
    /// "BitTorrent protocol".
    #[error(
        "handshake names a protocol of {len} bytes, expected 19 (\"BitTorrent protocol\"); \
         the peer does not speak BitTorrent"
    )]
    HandshakeProtocolLength {
        /// The length byte received.
        len: u8,
    },
    /// The handshake's protocol name is not "BitTorrent protocol".
    #[error(
        "handshake protocol name differs from \"BitTorrent protocol\" at byte {at} \
         ({byte:#04x}); the peer does not speak BitTorrent"
    )]
    HandshakeProtocolName {
        /// Offset of the first wrong byte in the handshake.
        at: usize,
        /// The byte received there.
        byte: u8,
    },
    /// A frame is longer than [`Limits::max_frame_len`].
    #[error("frame of {len} bytes exceeds the {limit}-byte limit")]
    FrameTooLong {
        /// The frame's length, prefix included.
        len: u64,
        /// The limit.
        limit: u32,
    },
    /// A message id outside BEP 3's 0 to 8 and the relay's 64 to 68.
    #[error("unknown message id {id} (BEP 3 defines ids 0 to 8, peerlab's relay 64 to 68)")]
    UnknownMessage {
        /// The id received.
        id: u8,
    },
    /// A fixed-size message whose length prefix is not that size.
    #[error("{message} message has length {len}, expected {expected}")]
    LengthMismatch {
        /// The message, by its BEP 3 name.
        message: &'static str,
        /// The length prefix received (id + body).
        len: u32,
        /// The length that message always has.
        expected: u32,
    },
    /// A piece or push message too short to hold its piece index and offset.
    #[error("{message} message has length {len}, shorter than its 9-byte header")]
    TruncatedPiece {
        /// The message, by its name ("piece" or "push").
        message: &'static str,
        /// The length prefix received (id + body).
        len: u32,
    },
    /// A bitfield whose size does not match the file's piece count.
    #[error("bitfield of {len} bytes does not match the file's {pieces} pieces ({expected} bytes)")]
    BitfieldLength {
        /// Bytes received.
        len: u32,
        /// `ceil(pieces / 8)`.
        expected: u32,
        /// Pieces in the file ([`Limits::pieces`]).
        pieces: u32,
    },
    /// A bitfield with bits set past the last piece.
    #[error("bitfield sets bits past the last of the file's {pieces} pieces (last byte {byte:#010b})")]
    BitfieldSpareBits {
        /// Pieces in the file ([`Limits::pieces`]).
        pieces: u32,
        /// The bitfield's last byte.
        byte: u8,
    },
    /// A request, piece or cancel for a zero-length block.
    #[error("{message} message names a zero-length block (piece {piece}, offset {offset})")]
    EmptyBlock {
        /// The message, by its BEP 3 name.
        message: &'static str,
        /// The block's piece.
        piece: u32,
        /// The block's offset.
        offset: u32,
    },
    /// A request, piece or cancel for a block larger than [`MAX_BLOCK_SIZE`].
    #[error("{message} message names a block of {len} bytes, more than the {max}-byte maximum")]
    BlockTooLarge {
        /// The message, by its BEP 3 name.
        message: &'static str,
        /// The block's length.
        len: u32,
        /// [`MAX_BLOCK_SIZE`].
        max: u32,
    },
    /// [`encode`] was given a [`Message::Block`] or [`Message::Push`]
    /// without its payload.
    #[error("block (piece {piece}, offset {offset}, {len} bytes) needs its payload to be sent")]
    MissingPayload {
        /// The block's piece.
        piece: u32,
        /// The block's offset.
        offset: u32,
        /// The block's length.
        len: u32,
    },
    /// [`encode`] was given a payload whose length is not the block's.
    #[error("payload of {actual} bytes for a block of {expected} bytes")]
    PayloadLenMismatch {
        /// The block's length.
        expected: u32,
        /// The payload's length.
        actual: usize,
    },
    /// [`encode`] was given a payload for a message that carries none.
    #[error("{message} message carries no payload, but {len} bytes were given")]
    UnexpectedPayload {
        /// The message, by its BEP 3 name.
        message: &'static str,
        /// The payload's length.
        len: usize,
    },
    /// [`encode`] was given a message that has no peer-wire encoding: the
    /// swarm tracker's announce and its reply, which go over HTTP.
    #[error(
        "message has no peer-wire encoding (tracker announces go over HTTP, which this \
         backend does not speak yet): {message:?}"
    )]
    Unencodable {
        /// The message.
        message: Box<Message>,
    },
}

/// Appends the handshake's 68 bytes to `out`.
pub fn encode_handshake(handshake: &Handshake, out: &mut Vec<u8>) {
    out.reserve(HANDSHAKE_LEN);
    out.push(19);
    out.extend_from_slice(PROTOCOL);
    out.extend_from_slice(&handshake.reserved);
    out.extend_from_slice(&handshake.info_hash);
    out.extend_from_slice(&handshake.peer_id);
}

/// Decodes a handshake from the front of `buf`: the handshake and the bytes
/// it took ([`HANDSHAKE_LEN`]), or `None` if `buf` holds only part of one.
/// A peer that does not speak BitTorrent is rejected from its first bytes.
pub fn decode_handshake(buf: &[u8]) -> Result<Option<(Handshake, usize)>, WireError> {
    let mut r = Reader(buf);
    let [len] = need!(r.array());
    if usize::from(len) != PROTOCOL.len() {
        return Err(WireError::HandshakeProtocolLength { len });
    }
    if let Some(i) = r.0.iter().zip(PROTOCOL).position(|(got, want)| got != want) {
        return Err(WireError::HandshakeProtocolName {
            at: 1 + i,
            byte: r.0[i],
        });
    }
    need!(r.array::<19>());
    let handshake = Handshake {
        reserved: need!(r.array()),
        info_hash: need!(r.array()),
        peer_id: need!(r.array()),
    };
    Ok(Some((handshake, r.consumed(buf))))
}

/// Appends a keep-alive (a zero-length frame) to `out`.
pub fn encode_keep_alive(out: &mut Vec<u8>) {
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Appends `msg`'s frame, [`Message::wire_len`] bytes, to `out`.
///
/// `payload` is the block's bytes for a [`Message::Block`] or
/// [`Message::Push`] and must be `None` for every other message. Blocks in
/// requests, pieces, cancels and pushes must be 1 to [`MAX_BLOCK_SIZE`]
/// bytes, as [`decode`] demands. [`Message::Announce`] and
/// [`Message::AnnounceReply`] are [`WireError::Unencodable`] (HTTP, see the
/// [module docs](self)). On error nothing is appended.
pub fn encode(msg: &Message, payload: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), WireError> {
    match (msg, payload) {
        (Message::Block(b) | Message::Push(b), None) => {
            return Err(WireError::MissingPayload {
                piece: b.piece,
                offset: b.offset,
                len: b.len,
            });
        }
        (Message::Block(b) | Message::Push(b), Some(payload)) if payload.len() != b.len as usize => {
            return Err(WireError::PayloadLenMismatch {
                expected: b.len,
                actual: payload.len(),
            });
        }
        (Message::Block(_) | Message::Push(_), Some(_)) => {}
        (other, Some(payload)) => {
            return Err(WireError::UnexpectedPayload {
                message: name(other),
                len: payload.len(),
            });
        }
        (_, None) => {}
    }
    if let Message::Request(b) | Message::Cancel(b) | Message::Block(b) | Message::Push(b) = msg {
        check_block_len(name(msg), *b)?;
    }
    out.reserve(usize::try_from(msg.wire_len()).unwrap_or(0));
    match msg {
        Message::Choke => header(out, 1, ID_CHOKE),
        Message::Unchoke => header(out, 1, ID_UNCHOKE),
        Message::Interested => header(out, 1, ID_INTERESTED),
        Message::NotInterested => header(out, 1, ID_NOT_INTERESTED),
        Message::Have { piece } => {
            header(out, 5, ID_HAVE);
            out.extend_from_slice(&piece.to_be_bytes());
        }
        Message::Bitfield(bits) => {
            header(out, 1 + bits.wire_len(), ID_BITFIELD);
            let start = out.len();
            out.resize(start + bits.wire_len() as usize, 0);
            for piece in bits.iter() {
                out[start + (piece / 8) as usize] |= 0x80 >> (piece % 8);
            }
        }
        Message::Request(b) => {
            header(out, 13, ID_REQUEST);
            put_block(out, *b);
        }
        Message::Cancel(b) => {
            header(out, 13, ID_CANCEL);
            put_block(out, *b);
        }
        Message::Block(b) | Message::Push(b) => {
            let id = if matches!(msg, Message::Block(_)) {
                ID_PIECE
            } else {
                ID_PUSH
            };
            header(out, PIECE_HEADER + b.len, id);
            out.extend_from_slice(&b.piece.to_be_bytes());
            out.extend_from_slice(&b.offset.to_be_bytes());
            out.extend_from_slice(payload.unwrap_or_default());
        }
        Message::Ack { piece } => {
            header(out, 5, ID_ACK);
            out.extend_from_slice(&piece.to_be_bytes());
        }
        Message::RelayFor { dest } => {
            header(out, 5, ID_RELAY_FOR);
            out.extend_from_slice(&dest.0.to_be_bytes());
        }
        Message::Forwarded { piece } => {
            header(out, 5, ID_FORWARDED);
            out.extend_from_slice(&piece.to_be_bytes());
        }
        Message::RelayAlive => header(out, 1, ID_RELAY_ALIVE),
        other => {
            return Err(WireError::Unencodable {
                message: Box::new(other.clone()),
            });
        }
    }
    Ok(())
}

/// Decodes one frame from the front of `buf`: the frame and the bytes it
/// took, or `None` if `buf` holds only part of one (read more and call
/// again with the bytes appended).
///
/// The length prefix, the message id and the body's length are checked as
/// soon as they are in `buf`, so an oversized or malformed frame is
/// rejected without waiting for (or allocating) its body. The only
/// allocation is a bitfield's, of [`Limits::pieces`] bits.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<(Frame<'a>, usize)>, WireError> {
    let mut r = Reader(buf);
    let len = need!(r.u32());
    let frame_len = PREFIX + u64::from(len);
    if frame_len > u64::from(limits.max_frame_len) {
        return Err(WireError::FrameTooLong {
            len: frame_len,
            limit: limits.max_frame_len,
        });
    }
    if len == 0 {
        return Ok(Some((Frame::KeepAlive, r.consumed(buf))));
    }
    let [id] = need!(r.array());
    let frame = match id {
        ID_CHOKE | ID_UNCHOKE | ID_INTERESTED | ID_NOT_INTERESTED | ID_RELAY_ALIVE => {
            expect_len(id, len, 1)?;
            Frame::Message(match id {
                ID_CHOKE => Message::Choke,
                ID_UNCHOKE => Message::Unchoke,
                ID_INTERESTED => Message::Interested,
                ID_NOT_INTERESTED => Message::NotInterested,
                _ => Message::RelayAlive,
            })
        }
        ID_HAVE | ID_ACK | ID_RELAY_FOR | ID_FORWARDED => {
            expect_len(id, len, 5)?;
            let value = need!(r.u32());
            Frame::Message(match id {
                ID_HAVE => Message::Have { piece: value },
                ID_ACK => Message::Ack { piece: value },
                ID_RELAY_FOR => Message::RelayFor { dest: NodeId(value) },
                _ => Message::Forwarded { piece: value },
            })
        }
        ID_BITFIELD => {
            let expected = limits.pieces.div_ceil(8);
            if len - 1 != expected {
                return Err(WireError::BitfieldLength {
                    len: len - 1,
                    expected,
                    pieces: limits.pieces,
                });
            }
            let bytes = need!(r.take(expected));
            Frame::Message(Message::Bitfield(bitfield(bytes, limits.pieces)?))
        }
        ID_REQUEST | ID_CANCEL => {
            expect_len(id, len, 13)?;
            let block = BlockRef {
                piece: need!(r.u32()),
                offset: need!(r.u32()),
                len: need!(r.u32()),
            };
            let message = id_name(id);
            check_block_len(message, block)?;
            Frame::Message(if id == ID_REQUEST {
                Message::Request(block)
            } else {
                Message::Cancel(block)
            })
        }
        ID_PIECE | ID_PUSH => {
            let Some(block_len) = len.checked_sub(PIECE_HEADER) else {
                return Err(WireError::TruncatedPiece {
                    message: id_name(id),
                    len,
                });
            };
            if block_len > MAX_BLOCK_SIZE {
                return Err(WireError::BlockTooLarge {
                    message: id_name(id),
                    len: block_len,
                    max: MAX_BLOCK_SIZE,
                });
            }
            let block = BlockRef {
                piece: need!(r.u32()),
                offset: need!(r.u32()),
                len: block_len,
            };
            check_block_len(id_name(id), block)?; // rejects an empty block
            let payload = need!(r.take(block_len));
            if id == ID_PIECE {
                Frame::Block { block, payload }
            } else {
                Frame::Push { block, payload }
            }
        }
        _ => return Err(WireError::UnknownMessage { id }),
    };
    Ok(Some((frame, r.consumed(buf))))
}

/// Reads big-endian fields off the front of a buffer; `None` when it ends.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn take(&mut self, len: u32) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(usize::try_from(len).ok()?)?;
        self.0 = rest;
        Some(head)
    }

    /// Bytes read so far from `buf`, the buffer this reader started on.
    fn consumed(&self, buf: &[u8]) -> usize {
        buf.len() - self.0.len()
    }
}

fn header(out: &mut Vec<u8>, len: u32, id: u8) {
    out.extend_from_slice(&len.to_be_bytes());
    out.push(id);
}

fn put_block(out: &mut Vec<u8>, b: BlockRef) {
    out.extend_from_slice(&b.piece.to_be_bytes());
    out.extend_from_slice(&b.offset.to_be_bytes());
    out.extend_from_slice(&b.len.to_be_bytes());
}

fn expect_len(id: u8, len: u32, expected: u32) -> Result<(), WireError> {
    if len == expected {
        Ok(())
    } else {
        Err(WireError::LengthMismatch {
            message: id_name(id),
            len,
            expected,
        })
    }
}

fn check_block_len(message: &'static str, block: BlockRef) -> Result<(), WireError> {
    if block.len == 0 {
        return Err(WireError::EmptyBlock {
            message,
            piece: block.piece,
            offset: block.offset,
        });
    }
    if block.len > MAX_BLOCK_SIZE {
        return Err(WireError::BlockTooLarge {
            message,
            len: block.len,
            max: MAX_BLOCK_SIZE,
        });
    }
    Ok(())
}

/// A bitfield of `pieces` pieces from exactly `ceil(pieces / 8)` bytes.
fn bitfield(bytes: &[u8], pieces: u32) -> Result<Bitfield, WireError> {
    let spare = match (bytes.last(), pieces % 8) {
        (Some(&last), used @ 1..) => last & (0xff >> used),
        _ => 0,
    };
    if spare != 0 {
        return Err(WireError::BitfieldSpareBits {
            pieces,
            byte: bytes.last().copied().unwrap_or_default(),
        });
    }
    let mut bits = Bitfield::new(pieces);
    for (first, &byte) in (0u32..).step_by(8).zip(bytes) {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                bits.insert(first + bit);
            }
        }
    }
    Ok(bits)
}

/// The name of message `id` (one the decoder knows): BEP 3's, or the relay's.
fn id_name(id: u8) -> &'static str {
    match id {
        ID_CHOKE => "choke",
        ID_UNCHOKE => "unchoke",
        ID_INTERESTED => "interested",
        ID_NOT_INTERESTED => "not interested",
        ID_HAVE => "have",
        ID_BITFIELD => "bitfield",
        ID_REQUEST => "request",
        ID_PIECE => "piece",
        ID_CANCEL => "cancel",
        ID_PUSH => "push",
        ID_ACK => "ack",
        ID_RELAY_FOR => "relay-for",
        ID_FORWARDED => "forwarded",
        ID_RELAY_ALIVE => "relay-alive",
        _ => "unknown",
    }
}

/// The wire name of `msg`.
fn name(msg: &Message) -> &'static str {
    id_name(match msg {
        Message::Choke => ID_CHOKE,
        Message::Unchoke => ID_UNCHOKE,
        Message::Interested => ID_INTERESTED,
        Message::NotInterested => ID_NOT_INTERESTED,
        Message::Have { .. } => ID_HAVE,
        Message::Bitfield(_) => ID_BITFIELD,
        Message::Request(_) => ID_REQUEST,
        Message::Block(_) => ID_PIECE,
        Message::Cancel(_) => ID_CANCEL,
        Message::Push(_) => ID_PUSH,
        Message::Ack { .. } => ID_ACK,
        Message::RelayFor { .. } => ID_RELAY_FOR,
        Message::Forwarded { .. } => ID_FORWARDED,
        Message::RelayAlive => ID_RELAY_ALIVE,
        _ => u8::MAX,
    })
}

#[cfg(test)]
mod tests;
