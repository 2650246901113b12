//! Pipelined fetching from one source: keep a bounded number of block
//! requests outstanding to a peer, taking blocks from a list of pieces in
//! the order the protocol chose. Every protocol that asks one source for a
//! stream of blocks (the client-server client, a static-tracker peer asking
//! an owner or the server) fills its pipeline this way; which pieces, and in
//! which order, stays with the protocol.

use crate::download::Download;
use crate::message::Message;
use crate::node::{NodeId, Outbox};

/// Requests blocks from `source`, taking the pieces of `pieces` in order and
/// the blocks of each piece in order (skipping blocks already stored or in
/// flight), until `limit` requests are in flight to `source` or `pieces` has
/// no block left to ask for. Each request is recorded in `download` and
/// queued in `outbox`.
///
/// Returns how many leading pieces of `pieces` were passed over because
/// none of their blocks is left to request; a caller walking a fixed list
/// can skip that many next time (until a block is given up or a piece fails
/// its check, which makes blocks requestable again).
pub fn request_blocks(
    download: &mut Download,
    source: NodeId,
    limit: u32,
    pieces: impl IntoIterator<Item = u32>,
    outbox: &mut Outbox,
) -> usize {
    let mut passed = 0;
    for piece in pieces {
        loop {
            if download.in_flight_to(source) >= limit {
                return passed;
            }
            match download.next_block_in(piece) {
                Some(block) => {
                    download.mark_requested(block, source);
                    outbox.send(source, Message::Request(block));
                }
                None => break,
            }
        }
        passed += 1;
    }
    passed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Output;
    use crate::pieces::{Bitfield, PieceLayout};

    fn requests(outbox: &mut Outbox) -> Vec<(u32, u32)> {
        std::iter::from_fn(|| outbox.pop())
            .map(|o| match o {
                Output::Transmit(t) => match t.msg {
                    Message::Request(b) => (b.piece, b.offset),
                    other => panic!("unexpected {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_pipeline_is_bounded_and_follows_the_given_piece_order() {
        // 3 pieces of 2 blocks each.
        let l = PieceLayout::new(6 * 1024, 2 * 1024, 1024).unwrap();
        let mut d = Download::new(l, Bitfield::new(l.pieces()));
        let mut out = Outbox::default();
        let src = NodeId(9);
        let passed = request_blocks(&mut d, src, 3, [2, 0, 1], &mut out);
        assert_eq!(requests(&mut out), vec![(2, 0), (2, 1024), (0, 0)]);
        assert_eq!(passed, 1, "piece 2 is fully requested, piece 0 is not");
        assert_eq!(d.in_flight_to(src), 3);
        // Full pipeline: nothing more until a block arrives.
        assert_eq!(request_blocks(&mut d, src, 3, [0, 1], &mut out), 0);
        assert!(requests(&mut out).is_empty());
        d.on_block(src, l.block(2, 0));
        assert_eq!(request_blocks(&mut d, src, 3, [0, 1], &mut out), 0);
        assert_eq!(requests(&mut out), vec![(0, 1024)]);
        // Other sources have pipelines of their own.
        assert_eq!(request_blocks(&mut d, NodeId(4), 8, [0, 1], &mut out), 2);
        assert_eq!(requests(&mut out), vec![(1, 0), (1, 1024)]);
    }
}
