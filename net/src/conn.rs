//! One TCP connection to a peer, as a task the node loop
//! ([`crate::driver`]) spawns: the BEP 3 handshake, then a reader that
//! decodes frames and a writer that streams the node's messages.
//!
//! # Life of a connection
//!
//! 1. **Handshake.** The side that dialed sends its [`Handshake`] at once;
//!    the side that accepted reads the dialer's first. Either side checks
//!    the info hash (a peer of another file is refused) and parses the peer
//!    id ([`peer_id`]: `-PL0100-` then the node id in 12 ASCII digits). A
//!    dialer also checks that it reached the node it dialed. The whole
//!    handshake is bounded by the connect timeout.
//! 2. **Decision.** The task reports [`Report::Handshaked`] and waits: the
//!    node loop alone knows the address book and the other connections to
//!    the same peer, so it answers [`Decision::Accept`] or
//!    [`Decision::Reject`]. Only then does an accepting side send its own
//!    handshake — so a dialer whose connection is refused (a duplicate, an
//!    unknown peer) never sees it open.
//! 3. **Frames.** The reader decodes frames with [`wire::decode`] under the
//!    node's [`Limits`] and forwards each as [`Report::Frame`], block and
//!    push payloads copied out once. A malformed frame closes this
//!    connection, with the reason logged; nothing else is affected. The
//!    writer takes [`Outgoing`] messages from a bounded queue, reads each
//!    block's payload from storage on a blocking thread just before it is
//!    sent (so queued blocks cost a few bytes each, never their payload),
//!    and writes them in batches. Once a batch is written it reports
//!    [`Report::Sent`] for its payload messages, so a node that keeps the
//!    transport's queue short (the swarm's upload scheduler) hands over the
//!    next block. The socket's unsent bytes are held to
//!    [`NOTSENT_LOWAT`], so "written" means "nearly on the wire", not
//!    "in a send buffer of megabytes". [`Outgoing::Close`] flushes what was
//!    queued before it, then closes.
//! 4. **End.** Whatever ends the connection — the peer, an I/O error, a bad
//!    frame, a close, nothing from the peer for [`ConnCtx::idle_timeout`]
//!    (the writer sends a keep-alive after half of that without sending, so
//!    only a dead or hung peer goes quiet) — the task reports
//!    [`Report::Closed`] once, after every frame it forwarded.
//!
//! Reports go through one bounded channel shared by every connection of
//! the node: a reader whose frames the loop has not taken yet stops
//! reading, and TCP's flow control slows the sender down.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use peerlab_core::{BlockRef, Message, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::storage::Storage;
use crate::wire::{self, Handshake, Limits};

/// A connection's number within one node, never reused.
pub type ConnId = u64;

/// The prefix of every peerlab peer id (Azureus style: client "PL",
/// version 0100).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-PL0100-";

/// The BEP 3 peer id of `node`: [`PEER_ID_PREFIX`] then the id in 12 ASCII
/// digits, e.g. `-PL0100-000000000007` for node 7.
pub fn peer_id(node: NodeId) -> [u8; 20] {
    let mut id = [0; 20];
    id[..8].copy_from_slice(PEER_ID_PREFIX);
    id[8..].copy_from_slice(format!("{:012}", node.0).as_bytes());
    id
}

/// The node a peer id names, if it is a peerlab peer id ([`peer_id`]).
pub fn node_of(peer_id: &[u8; 20]) -> Option<NodeId> {
    let digits = peer_id.strip_prefix(PEER_ID_PREFIX)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok().map(NodeId)
}

/// Which side opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This node dialed `peer`.
    Outbound {
        /// The node dialed.
        peer: NodeId,
    },
    /// A peer dialed this node.
    Inbound,
}

/// What the node loop answers to [`Report::Handshaked`].
#[derive(Debug)]
pub enum Decision {
    /// Use the connection: the node's messages to the peer arrive here.
    Accept(mpsc::Receiver<Outgoing>),
    /// Close it without a word (a duplicate, an unknown peer).
    Reject,
}

/// What the node loop hands a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// Send this message; a [`Message::Block`] or [`Message::Push`] payload
    /// is read from storage just before it is sent.
    Message(Message),
    /// Send what was queued before, then close the connection.
    Close,
    /// Send a keep-alive now: if the peer's end is gone (it restarted),
    /// its kernel answers with a reset and the connection ends.
    Probe,
}

/// What a connection task tells the node loop, in order.
#[derive(Debug)]
pub enum Report {
    /// The listener accepted a TCP connection (from the accept task).
    Accepted {
        /// The new socket.
        stream: TcpStream,
        /// Where it comes from.
        addr: SocketAddr,
    },
    /// The peer's handshake arrived and checks out; answer through
    /// `decide`.
    Handshaked {
        /// The connection.
        conn: ConnId,
        /// The peer, from its peer id.
        peer: NodeId,
        /// Who opened the connection.
        direction: Direction,
        /// Where the loop's answer goes.
        decide: oneshot::Sender<Decision>,
    },
    /// A message arrived.
    Frame {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: Message,
        /// The payload of a block or push.
        payload: Option<Vec<u8>>,
    },
    /// The writer wrote `count` payload messages (blocks, pushes) to the
    /// socket.
    Sent {
        /// The connection.
        conn: ConnId,
        /// How many.
        count: u32,
    },
    /// A second connection from a peer that has a live one was held for
    /// [`crate::driver::PROBE_WAIT`] while the old one was probed (from a
    /// timer task of the node loop).
    ProbeOver {
        /// The peer.
        peer: NodeId,
        /// The connection held.
        conn: ConnId,
    },
    /// The connection ended, or never got past its handshake.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
    },
}

/// What every connection of one node shares.
#[derive(Debug)]
pub struct ConnCtx {
    /// This node.
    pub me: NodeId,
    /// The file's info hash: peers must name the same.
    pub info_hash: [u8; 20],
    /// Bounds on frames read from peers.
    pub limits: Limits,
    /// Where block payloads are read from.
    pub storage: Arc<RwLock<Storage>>,
    /// The node loop's inbox.
    pub reports: mpsc::Sender<Report>,
    /// Bound on a dial plus the handshake (and on an accepted peer's
    /// handshake).
    pub handshake_timeout: Duration,
    /// After the handshake: a connection that brings nothing for this long
    /// is closed; the writer sends a keep-alive after half of it unsent.
    pub idle_timeout: Duration,
}

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// A writer sends at most this many payload bytes per batch.
const BATCH_BYTES: u64 = 1024 * 1024;
/// Unsent bytes a socket may hold (`TCP_NOTSENT_LOWAT`): a write completes
/// only once the kernel is this close to having sent everything, so
/// [`Report::Sent`] follows the bytes leaving the host within about one
/// block (16 KiB). Large enough that a writer keeps the pipe full (it refills on
/// every ack), small enough not to hide a queue from the node.
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// A writer sends at most this many messages per batch.
const BATCH_MESSAGES: usize = 256;

/// Dials `peer` at `addr` and runs the connection; a failure to connect
/// within the timeout is reported as [`Report::Closed`].
pub async fn dial(ctx: Arc<ConnCtx>, conn: ConnId, peer: NodeId, addr: SocketAddr) {
    let stream = match tokio::time::timeout(ctx.handshake_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return closed(&ctx, conn, format!("cannot connect to {peer} at {addr}: {e}")).await,
        Err(_) => {
            let reason = format!(
                "no answer from {peer} at {addr} within {:?}",
                ctx.handshake_timeout
            );
            return closed(&ctx, conn, reason).await;
        }
    };
    run(ctx, conn, stream, Direction::Outbound { peer }).await;
}

/// Runs a connected socket to its end: handshake, decision, frames.
pub async fn run(ctx: Arc<ConnCtx>, conn: ConnId, stream: TcpStream, direction: Direction) {
    let reason = match serve(&ctx, conn, stream, direction).await {
        Ok(reason) | Err(reason) => reason,
    };
    closed(&ctx, conn, reason).await;
}

async fn closed(ctx: &ConnCtx, conn: ConnId, reason: String) {
    let _ = ctx.reports.send(Report::Closed { conn, reason }).await;
}

/// The connection's life; the reason it ended either way.
async fn serve(
    ctx: &ConnCtx,
    conn: ConnId,
    stream: TcpStream,
    direction: Direction,
) -> Result<String, String> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(conn, "cannot set TCP_NODELAY: {e}");
    }
    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(conn, "cannot set TCP_NOTSENT_LOWAT: {e}");
    }
    let (mut read, mut write) = stream.into_split();
    let ours = Handshake::new(ctx.info_hash, peer_id(ctx.me));
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let peer = tokio::time::timeout(
        ctx.handshake_timeout,
        handshake(ctx, &ours, &mut read, &mut write, &mut buf, direction),
    )
    .await
    .map_err(|_| format!("no handshake within {:?}", ctx.handshake_timeout))??;

    let (decide, decision) = oneshot::channel();
    let report = Report::Handshaked {
        conn,
        peer,
        direction,
        decide,
    };
    ctx.reports
        .send(report)
        .await
        .map_err(|_| "node stopped".to_string())?;
    let decision = match direction {
        // The peer answered our handshake and may already be sending.
        Direction::Outbound { .. } => decision.await,
        // The loop may hold an incoming connection for a while; notice if
        // the dialer gives up on it meanwhile.
        Direction::Inbound => tokio::select! {
            decision = decision => decision,
            gone = dialer_gone(ctx, &mut read, &mut buf) => return gone,
        },
    };
    let queue = match decision {
        Ok(Decision::Accept(queue)) => queue,
        Ok(Decision::Reject) => return Ok("refused by this node".into()),
        Err(_) => return Ok("node stopped".into()),
    };
    if direction == Direction::Inbound {
        let mut out = Vec::with_capacity(wire::HANDSHAKE_LEN);
        wire::encode_handshake(&ours, &mut out);
        write
            .write_all(&out)
            .await
            .map_err(|e| format!("cannot send handshake: {e}"))?;
    }
    tokio::select! {
        r = read_frames(ctx, conn, read, buf) => r,
        w = write_frames(ctx, conn, write, queue) => w,
    }
}

/// Exchanges handshakes; the peer's node id.
async fn handshake(
    ctx: &ConnCtx,
    ours: &Handshake,
    read: &mut OwnedReadHalf,
    write: &mut OwnedWriteHalf,
    buf: &mut Vec<u8>,
    direction: Direction,
) -> Result<NodeId, String> {
    if let Direction::Outbound { .. } = direction {
        let mut out = Vec::with_capacity(wire::HANDSHAKE_LEN);
        wire::encode_handshake(ours, &mut out);
        write
            .write_all(&out)
            .await
            .map_err(|e| format!("cannot send handshake: {e}"))?;
    }
    let theirs = loop {
        match wire::decode_handshake(buf) {
            Ok(Some((theirs, used))) => {
                buf.drain(..used);
                break theirs;
            }
            Ok(None) => {}
            Err(e) => return Err(warn_close(format!("bad handshake: {e}"))),
        }
        buf.reserve(READ_CHUNK);
        match read.read_buf(buf).await {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed during the handshake: {e}")),
        }
    };
    if theirs.info_hash != ctx.info_hash {
        return Err(warn_close(format!(
            "peer handshake names info hash {}, not this file's {}",
            hex(&theirs.info_hash),
            hex(&ctx.info_hash)
        )));
    }
    let Some(peer) = node_of(&theirs.peer_id) else {
        return Err(warn_close(format!(
            "peer id {:?} is not a peerlab peer id",
            String::from_utf8_lossy(&theirs.peer_id)
        )));
    };
    match direction {
        Direction::Outbound { peer: dialed } if dialed != peer => Err(warn_close(format!(
            "dialed {dialed} but {peer} answered: the address book is wrong"
        ))),
        _ => Ok(peer),
    }
}

/// Reads while an incoming connection waits for the loop's decision, and
/// returns once the dialer has closed it. What the dialer sends meanwhile
/// (a BitTorrent client may send its bitfield at once) is kept for the
/// reader, up to a frame's worth.
async fn dialer_gone(ctx: &ConnCtx, read: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Result<String, String> {
    loop {
        if buf.len() > ctx.limits.max_frame_len as usize + READ_CHUNK {
            return Err(warn_close(
                "peer sent too much before its handshake was answered".into(),
            ));
        }
        buf.reserve(READ_CHUNK);
        match read.read_buf(buf).await {
            Ok(0) => return Ok("the peer gave up on it before it was answered".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed before the handshake was answered: {e}")),
        }
    }
}

/// Logs why a peer is refused and returns the reason.
fn warn_close(reason: String) -> String {
    tracing::warn!("closing connection: {reason}");
    reason
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes frames until the connection ends; why it ended.
async fn read_frames(
    ctx: &ConnCtx,
    conn: ConnId,
    mut read: OwnedReadHalf,
    mut buf: Vec<u8>,
) -> Result<String, String> {
    loop {
        let mut start = 0;
        loop {
            match wire::decode(&buf[start..], &ctx.limits) {
                Ok(Some((frame, used))) => {
                    start += used;
                    let payload = frame.payload().map(<[u8]>::to_vec);
                    if let Some(msg) = frame.into_message() {
                        let report = Report::Frame { conn, msg, payload };
                        ctx.reports
                            .send(report)
                            .await
                            .map_err(|_| "node stopped".to_string())?;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(warn_close(format!("malformed frame from the peer: {e}"))),
            }
        }
        buf.drain(..start);
        buf.reserve(READ_CHUNK);
        let Ok(got) = tokio::time::timeout(ctx.idle_timeout, read.read_buf(&mut buf)).await else {
            return Err(format!(
                "nothing from the peer for {:?}, not even a keep-alive",
                ctx.idle_timeout
            ));
        };
        match got {
            Ok(0) if buf.is_empty() => return Ok("closed by the peer".into()),
            Ok(0) => {
                return Err(format!(
                    "closed by the peer in the middle of a frame ({} bytes)",
                    buf.len()
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

/// Sends queued messages until [`Outgoing::Close`] or an error; why it ended.
async fn write_frames(
    ctx: &ConnCtx,
    conn: ConnId,
    mut write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Outgoing>,
) -> Result<String, String> {
    let mut out = Vec::new();
    loop {
        let Ok(first) = tokio::time::timeout(ctx.idle_timeout / 2, queue.recv()).await else {
            out.clear();
            wire::encode_keep_alive(&mut out);
            write
                .write_all(&out)
                .await
                .map_err(|e| format!("write failed: {e}"))?;
            continue;
        };
        let Some(first) = first else {
            return Ok("node stopped".into());
        };
        let mut batch = Vec::new();
        let mut close = false;
        let mut probe = false;
        let mut payload_bytes = 0;
        let mut payloads = 0;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Close => {
                    close = true;
                    break;
                }
                Outgoing::Probe => probe = true,
                Outgoing::Message(msg) => {
                    payload_bytes += msg.payload_len();
                    payloads += u32::from(msg.payload_len() > 0);
                    batch.push(msg);
                }
            }
            if batch.len() < BATCH_MESSAGES && payload_bytes < BATCH_BYTES {
                next = queue.try_recv().ok();
            }
        }
        out.clear();
        out = if payload_bytes > 0 {
            let storage = Arc::clone(&ctx.storage);
            tokio::task::spawn_blocking(move || encode_batch(&storage, &batch, out))
                .await
                .map_err(|e| format!("block reader failed: {e}"))??
        } else {
            encode_messages(&batch, out)
        };
        if probe {
            wire::encode_keep_alive(&mut out);
        }
        write
            .write_all(&out)
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        if payloads > 0 {
            let sent = Report::Sent {
                conn,
                count: payloads,
            };
            ctx.reports
                .send(sent)
                .await
                .map_err(|_| "node stopped".to_string())?;
        }
        if close {
            let _ = write.shutdown().await;
            return Ok("closed by this node".into());
        }
    }
}

/// Encodes messages that carry no payload. One that has no peer-wire
/// encoding (a tracker announce) is logged and left out.
fn encode_messages(batch: &[Message], mut out: Vec<u8>) -> Vec<u8> {
    for msg in batch {
        if let Err(e) = wire::encode(msg, None, &mut out) {
            tracing::warn!("message not sent: {e}");
        }
    }
    out
}

/// Encodes a batch, reading each payload from storage (blocking). A payload
/// that cannot be read — above all a piece that is not verified, which is
/// never served — ends the connection: the peer would otherwise wait for it
/// forever.
fn encode_batch(storage: &RwLock<Storage>, batch: &[Message], mut out: Vec<u8>) -> Result<Vec<u8>, String> {
    let storage = storage.read().map_err(|_| "storage is poisoned".to_string())?;
    let mut payload = Vec::new();
    for msg in batch {
        let block: Option<BlockRef> = match msg {
            Message::Block(b) | Message::Push(b) => Some(*b),
            _ => None,
        };
        let Some(block) = block else {
            out = encode_messages(std::slice::from_ref(msg), out);
            continue;
        };
        payload.resize(block.len as usize, 0);
        if let Err(e) = storage.read_block_into(block, &mut payload) {
            return Err(warn_close(format!("cannot send a block: {e}")));
        }
        crate::misbehave::spoil(block, &mut payload);
        wire::encode(msg, Some(&payload), &mut out)
            .map_err(|e| warn_close(format!("cannot send a block: {e}")))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_name_nodes_both_ways() {
        assert_eq!(&peer_id(NodeId(7)), b"-PL0100-000000000007");
        for id in [0, 7, 12_345, u32::MAX] {
            assert_eq!(node_of(&peer_id(NodeId(id))), Some(NodeId(id)));
        }
        assert_eq!(node_of(b"-qB4650-abcdefghijkl"), None);
        assert_eq!(node_of(b"-PL0100-00000000000x"), None);
        assert_eq!(node_of(b"-PL0100-999999999999"), None, "beyond u32");
    }
}
