//! The order in which a peer sends the blocks its unchoked neighbours asked
//! for: one piece to one neighbour at a time, at the full rate of the
//! uplink.
//!
//! Choking decides *who* may download from a peer; this module decides in
//! which order their requests are served. Answering every request at once
//! splits the uplink among the ~5 unchoked neighbours, so every piece takes
//! ~5 piece-times to cross one hop and a swarm's last pieces crawl through
//! the log(N) hops between the seed and the farthest peer. Serving one piece
//! at a time sends the same bytes in the same total time, but each piece
//! arrives whole after one piece-time and can be forwarded at once: the
//! schedule of the piece-level optimum (docs/swarm.md).
//!
//! To do that the scheduler keeps the transport's queue short: at most
//! [`WINDOW`] blocks are handed to the driver and not yet reported sent
//! ([`crate::Node::handle_sent`]); the rest wait here, where a `Cancel` can
//! still recall them. The window is two blocks so that the uplink never idles
//! between one block and the next.
//!
//! A neighbour that stops reading (hung, cut off) would hold the window
//! for good: its blocks never finish sending. One whose blocks have made no
//! progress for [`STALL`] is *stalled*: its blocks stop counting against
//! the window, and it is sent nothing more until they move again.
//!
//! The current piece is not left while its neighbour's last blocks are
//! still in the transport: its requests for the next blocks may still be on
//! their way (they are sent as blocks arrive), and the transport is busy
//! meanwhile. Only when the piece is done, or nothing is in transport for
//! that neighbour, does the next piece start.
//!
//! Which piece goes next when the current one is done: a queued request of
//! the neighbour that has the least to upload itself, by the caller's
//! `rank` (the swarm peer's: the fewest pieces wanted around it, then the
//! fewest pieces); among its requests (and between neighbours ranked
//! alike), the piece this peer has uploaded the fewest times (a piece that
//! has left only once is the scarcest it can offer); then the neighbour
//! that was served longest ago (round robin). So a seed may send a piece
//! twice to a poorer neighbour while another piece has not left yet;
//! super-seeding (`super_seed.rs`) is what rules that out.
//!
//! The poorest neighbour goes first because a piece makes the most
//! difference there: a neighbour with nothing to offer has an idle uplink,
//! and its first piece puts that uplink to work, where one more piece for a
//! neighbour that is already uploading adds no capacity. That is how the
//! piece-level optimum doubles its uploaders every piece-time.
//! "Poorest" counts pieces worth uploading, not pieces: a neighbour holding
//! three pieces that everyone around already holds has an idler uplink
//! than one holding a single piece nobody else has. docs/swarm.md ("Serial
//! uploads") gives today's measurements.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::node::NodeId;
use crate::pieces::{BlockRef, PieceLayout};
use crate::time::Time;

/// Blocks handed to the transport and not yet sent, over all neighbours.
pub const WINDOW: u32 = 2;

/// A neighbour whose blocks in transport made no progress for this long is
/// stalled (it stopped reading): the window no longer waits for it. A
/// neighbour that reads takes a 16 KiB block in 7 ms at 20 Mbit/s, 130 ms
/// at 1 Mbit/s; a quarter of a second keeps hung neighbours — one after the
/// other, each taking the window in turn — from idling the uplink for
/// seconds while others wait in its queue.
pub const STALL: Duration = Duration::from_millis(250);

/// Requests queued per neighbour beyond which new ones are dropped (a
/// peer keeps `pipeline` outstanding; a flood is refused, not buffered).
pub const MAX_QUEUED: usize = 256;

/// What the current piece upload wants next.
enum Continue {
    /// Its neighbour's queued block at this index.
    With(NodeId, usize),
    /// Its neighbour's next request is probably on its way: the transport
    /// still holds blocks for it.
    Wait,
    /// It is done (or abandoned): start another.
    Done,
}

#[derive(Clone, Debug, Default)]
struct Queue {
    requests: VecDeque<BlockRef>,
    /// Handed to the transport, not yet sent.
    in_transport: u32,
    /// When its blocks in transport last made progress (one was handed
    /// over while none was, or one was reported sent).
    progress: Time,
    /// When a piece upload to it last began (round robin).
    last_served: u64,
}

/// What a request did to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Queued.
    Yes,
    /// Already queued: ignored.
    Duplicate,
    /// The neighbour has [`MAX_QUEUED`] requests queued: dropped.
    Full,
}

/// The upload queue of one peer. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Uploads {
    queues: BTreeMap<NodeId, Queue>,
    layout: PieceLayout,
    /// The piece being sent, to whom, and how many of its blocks so far.
    current: Option<(NodeId, u32, u32)>,
    /// How many times each piece's upload began.
    piece_uploads: Vec<u32>,
    serial: u64,
}

impl Uploads {
    /// An empty queue for a file of this layout.
    pub fn new(layout: PieceLayout) -> Self {
        Uploads {
            queues: BTreeMap::new(),
            layout,
            current: None,
            piece_uploads: vec![0; layout.pieces() as usize],
            serial: 0,
        }
    }

    /// `peer` asks for `block`.
    pub fn request(&mut self, peer: NodeId, block: BlockRef) -> Queued {
        let q = self.queues.entry(peer).or_default();
        if q.requests.contains(&block) {
            return Queued::Duplicate;
        }
        if q.requests.len() >= MAX_QUEUED {
            return Queued::Full;
        }
        q.requests.push_back(block);
        Queued::Yes
    }

    /// `peer` no longer wants `block`; whether it was still queued (not yet
    /// handed to the transport).
    pub fn cancel(&mut self, peer: NodeId, block: BlockRef) -> bool {
        let Some(q) = self.queues.get_mut(&peer) else {
            return false;
        };
        let before = q.requests.len();
        q.requests.retain(|b| *b != block);
        before != q.requests.len()
    }

    /// `peer` was choked: its queued requests are dropped (BEP 3); blocks
    /// already handed to the transport still go out.
    pub fn choked(&mut self, peer: NodeId) {
        if let Some(q) = self.queues.get_mut(&peer) {
            q.requests.clear();
        }
        if self.current.is_some_and(|(p, _, _)| p == peer) {
            self.current = None;
        }
    }

    /// The connection to `peer` is gone, and with it whatever the transport
    /// still held for it.
    pub fn disconnected(&mut self, peer: NodeId) {
        self.queues.remove(&peer);
        if self.current.is_some_and(|(p, _, _)| p == peer) {
            self.current = None;
        }
    }

    /// The transport finished sending a block to `peer`.
    pub fn sent(&mut self, peer: NodeId, now: Time) {
        if let Some(q) = self.queues.get_mut(&peer)
            && q.in_transport > 0
        {
            q.in_transport -= 1;
            q.progress = now;
        }
    }

    fn is_stalled(q: &Queue, now: Time) -> bool {
        q.in_transport > 0 && now.saturating_since(q.progress) >= STALL
    }

    /// Blocks handed to the transport and not yet sent, to neighbours that
    /// are not stalled: what counts against the window.
    pub fn in_transport(&self, now: Time) -> u32 {
        self.queues
            .values()
            .filter(|q| !Self::is_stalled(q, now))
            .map(|q| q.in_transport)
            .sum()
    }

    /// When a neighbour holding blocks in transport will count as stalled,
    /// if uploads wait for it (the window is full, or the current piece's
    /// neighbour has blocks in transport and no request queued): the node
    /// must look again then.
    pub fn deadline(&self, now: Time) -> Option<Time> {
        let waiting = self.in_transport(now) >= WINDOW || matches!(self.continuation(now), Continue::Wait);
        if !waiting {
            return None;
        }
        self.queues
            .values()
            .filter(|q| q.in_transport > 0 && !Self::is_stalled(q, now))
            .map(|q| q.progress + STALL)
            .min()
    }

    /// Whether `peer` has requests queued here or blocks in transport.
    pub fn has_work_for(&self, peer: NodeId) -> bool {
        self.queues
            .get(&peer)
            .is_some_and(|q| !q.requests.is_empty() || q.in_transport > 0)
    }

    /// Requests waiting here.
    pub fn queued(&self) -> usize {
        self.queues.values().map(|q| q.requests.len()).sum()
    }

    /// The next block to hand to the transport, if the window has room and
    /// a request waits. `rank` says how little a neighbour has to upload
    /// itself (the caller's measure; the lowest is served first).
    pub fn next(&mut self, now: Time, rank: impl Fn(NodeId) -> u64) -> Option<(NodeId, BlockRef)> {
        if self.in_transport(now) >= WINDOW {
            return None;
        }
        let (peer, index) = match self.continuation(now) {
            Continue::With(peer, index) => (peer, index),
            Continue::Wait => return None,
            Continue::Done => self.switch(now, rank)?,
        };
        if let Some((_, _, sent)) = self.current.as_mut() {
            *sent += 1;
        }
        let q = self.queues.get_mut(&peer)?;
        let block = q.requests.remove(index)?;
        if q.in_transport == 0 {
            q.progress = now;
        }
        q.in_transport += 1;
        Some((peer, block))
    }

    /// What the current piece upload wants next.
    fn continuation(&self, now: Time) -> Continue {
        let Some((peer, piece, sent)) = self.current else {
            return Continue::Done;
        };
        let Some(q) = self.queues.get(&peer).filter(|q| !Self::is_stalled(q, now)) else {
            return Continue::Done;
        };
        if let Some(index) = q.requests.iter().position(|b| b.piece == piece) {
            return Continue::With(peer, index);
        }
        if sent < self.layout.blocks_in(piece) && q.in_transport > 0 {
            Continue::Wait
        } else {
            Continue::Done
        }
    }

    /// Starts the next piece upload; the neighbour and the index of its
    /// first block in the neighbour's queue.
    fn switch(&mut self, now: Time, rank: impl Fn(NodeId) -> u64) -> Option<(NodeId, usize)> {
        let mut best: Option<((u64, u32, u64, NodeId), usize)> = None;
        for (&peer, q) in self.queues.iter().filter(|(_, q)| !Self::is_stalled(q, now)) {
            let rank = rank(peer);
            for (index, b) in q.requests.iter().enumerate() {
                let key = (rank, self.piece_uploads[b.piece as usize], q.last_served, peer);
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, index));
                }
            }
        }
        let ((_, _, _, peer), index) = best?;
        let piece = self.queues[&peer].requests[index].piece;
        self.serial += 1;
        self.piece_uploads[piece as usize] += 1;
        if let Some(q) = self.queues.get_mut(&peer) {
            q.last_served = self.serial;
        }
        self.current = Some((peer, piece, 0));
        Some((peer, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(piece: u32, index: u32) -> BlockRef {
        BlockRef {
            piece,
            offset: index * 16384,
            len: 16384,
        }
    }

    const T0: Time = Time::ZERO;

    /// Every neighbour holds nothing yet.
    fn empty(_: NodeId) -> u64 {
        0
    }

    /// `pieces` pieces of four 16 KiB blocks.
    fn uploads(pieces: u32) -> Uploads {
        let l = PieceLayout::new(u64::from(pieces) * 65536, 65536, 16384).expect("layout");
        Uploads::new(l)
    }

    /// Hands out what the window allows, reporting each block sent at once.
    fn order(u: &mut Uploads, n: usize) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some((peer, b)) = u.next(T0, empty) else { break };
            out.push((peer.0, b.piece, b.offset / 16384));
            u.sent(peer, T0);
        }
        out
    }

    #[test]
    fn one_piece_is_finished_before_the_next_neighbour_is_served() {
        let mut u = uploads(8);
        for i in 0..4 {
            u.request(NodeId(1), block(0, i));
            u.request(NodeId(2), block(1, i));
        }
        let got = order(&mut u, 8);
        let peers: Vec<u32> = got.iter().map(|g| g.0).collect();
        assert_eq!(peers, [1, 1, 1, 1, 2, 2, 2, 2], "{got:?}");
    }

    #[test]
    fn an_unfinished_piece_waits_for_its_next_request_while_the_transport_is_busy() {
        let mut u = uploads(4);
        u.request(NodeId(1), block(0, 0));
        u.request(NodeId(1), block(0, 1));
        u.request(NodeId(2), block(1, 0));
        assert_eq!(u.next(T0, empty).map(|(p, _)| p), Some(NodeId(1)));
        assert_eq!(u.next(T0, empty).map(|(p, _)| p), Some(NodeId(1)));
        u.sent(NodeId(1), T0);
        assert_eq!(
            u.next(T0, empty),
            None,
            "neighbour 1's next request is on its way"
        );
        u.request(NodeId(1), block(0, 2));
        assert_eq!(u.next(T0, empty), Some((NodeId(1), block(0, 2))));
        u.sent(NodeId(1), T0);
        u.sent(NodeId(1), T0);
        // Nothing in transport for neighbour 1 any more: it stopped asking.
        assert_eq!(u.next(T0, empty), Some((NodeId(2), block(1, 0))));
    }

    #[test]
    fn the_window_bounds_what_the_transport_holds() {
        let mut u = uploads(4);
        for i in 0..4 {
            u.request(NodeId(1), block(0, i));
        }
        assert!(u.next(T0, empty).is_some());
        assert!(u.next(T0, empty).is_some());
        assert_eq!(u.next(T0, empty), None, "a third block waits for a sent report");
        assert_eq!(u.in_transport(T0), WINDOW);
        u.sent(NodeId(1), T0);
        assert_eq!(u.next(T0, empty).map(|(_, b)| b), Some(block(0, 2)));
    }

    #[test]
    fn a_piece_never_uploaded_goes_before_one_already_sent() {
        let mut u = uploads(4);
        u.request(NodeId(1), block(0, 0));
        assert_eq!(order(&mut u, 1), [(1, 0, 0)]);
        // Neighbour 2 asks for piece 0 again, neighbour 3 for piece 3.
        u.request(NodeId(2), block(0, 0));
        u.request(NodeId(3), block(3, 0));
        assert_eq!(order(&mut u, 2), [(3, 3, 0), (2, 0, 0)]);
    }

    #[test]
    fn the_lowest_ranked_neighbour_is_served_first() {
        let mut u = uploads(16);
        // Neighbour 1 has the most to upload itself, 3 nothing (the swarm
        // peer ranks by pieces wanted around it). Piece 0 has left once
        // already, to neighbour 1.
        let rank = |p: NodeId| [0, 9, 3, 0][p.0 as usize];
        u.request(NodeId(1), block(0, 0));
        assert_eq!(u.next(T0, rank).map(|(p, _)| p), Some(NodeId(1)));
        u.sent(NodeId(1), T0);
        // Round robin over the least-uploaded pieces would serve 2, 1, 3.
        u.request(NodeId(1), block(1, 0));
        u.request(NodeId(2), block(2, 0));
        u.request(NodeId(3), block(0, 0));
        let mut served = Vec::new();
        while let Some((p, _)) = u.next(T0, rank) {
            served.push(p.0);
            u.sent(p, T0);
        }
        assert_eq!(served, [3, 2, 1]);
    }

    #[test]
    fn neighbours_take_turns_piece_by_piece() {
        let mut u = uploads(16);
        for piece in 0..3 {
            u.request(NodeId(1), block(piece, 0));
            u.request(NodeId(2), block(piece + 8, 0));
        }
        let peers: Vec<u32> = order(&mut u, 6).iter().map(|g| g.0).collect();
        assert_eq!(peers, [1, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn cancel_recalls_a_queued_block_but_not_one_in_transport() {
        let mut u = uploads(4);
        for i in 0..3 {
            u.request(NodeId(1), block(0, i));
        }
        let (_, first) = u.next(T0, empty).expect("a block");
        assert!(!u.cancel(NodeId(1), first), "already with the transport");
        assert!(u.cancel(NodeId(1), block(0, 2)));
        assert_eq!(u.queued(), 1);
    }

    #[test]
    fn choking_drops_requests_and_a_closed_connection_frees_the_window() {
        let mut u = uploads(4);
        for i in 0..4 {
            u.request(NodeId(1), block(0, i));
        }
        u.next(T0, empty);
        u.next(T0, empty);
        u.choked(NodeId(1));
        assert_eq!(u.queued(), 0);
        assert_eq!(u.in_transport(T0), 2, "blocks in transport still go out");
        u.disconnected(NodeId(1));
        assert_eq!(u.in_transport(T0), 0);
        u.request(NodeId(2), block(1, 0));
        assert!(u.next(T0, empty).is_some());
    }

    #[test]
    fn a_neighbour_that_stops_reading_releases_the_window_after_the_stall_time() {
        let mut u = uploads(4);
        for i in 0..4 {
            u.request(NodeId(1), block(0, i));
            u.request(NodeId(2), block(1, i));
        }
        let (first, _) = u.next(T0, empty).expect("a block");
        assert_eq!(u.next(T0, empty).map(|(p, _)| p), Some(first));
        let almost = T0 + (STALL - Duration::from_millis(1));
        assert_eq!(u.next(almost, empty), None, "not stalled yet");
        assert_eq!(u.deadline(almost), Some(T0 + STALL));
        let later = T0 + STALL;
        let (other, _) = u
            .next(later, empty)
            .expect("the window ignores the stalled neighbour");
        assert_ne!(other, first, "nothing more for the stalled one");
        // It reads again: its blocks count again, and it is served again.
        u.sent(first, later);
        assert_eq!(u.in_transport(later), 2);
    }

    /// A neighbour asking one block at a time holds the upload with one
    /// block in transport (the window is not full): if it stops reading,
    /// the others are served after the stall time, not never.
    #[test]
    fn a_stalled_neighbour_with_one_block_in_transport_releases_the_upload() {
        let mut u = uploads(4);
        u.request(NodeId(1), block(0, 0));
        u.request(NodeId(2), block(1, 0));
        let rank1 = |p: NodeId| u64::from(p != NodeId(1));
        assert_eq!(u.next(T0, rank1).map(|(p, _)| p), Some(NodeId(1)));
        assert_eq!(u.next(T0, rank1), None, "its next request is on its way");
        assert_eq!(u.deadline(T0), Some(T0 + STALL), "look again at the stall time");
        let later = T0 + STALL;
        assert_eq!(u.next(later, rank1).map(|(p, _)| p), Some(NodeId(2)));
    }

    #[test]
    fn duplicates_and_floods_are_refused() {
        let mut u = uploads(4096);
        assert_eq!(u.request(NodeId(1), block(0, 0)), Queued::Yes);
        assert_eq!(u.request(NodeId(1), block(0, 0)), Queued::Duplicate);
        for piece in 1..MAX_QUEUED as u32 {
            assert_eq!(u.request(NodeId(1), block(piece, 0)), Queued::Yes);
        }
        assert_eq!(u.request(NodeId(1), block(4000, 0)), Queued::Full);
    }
}
