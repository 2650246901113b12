//! The peer's upload side: answering requests, at once or through the
//! serial upload queue.

use super::Peer;
use crate::event::ViolationKind;
use crate::message::Message;
use crate::node::NodeId;
use crate::time::Time;

impl Peer {
    pub(super) fn on_request(&mut self, peer: NodeId, block: crate::pieces::BlockRef, now: Time) {
        if !self.layout.is_valid_block(block) {
            self.violation(peer, ViolationKind::InvalidBlock);
            return;
        }
        let Some(r) = self.remotes.get_mut(&peer) else {
            return;
        };
        if r.am_choking {
            return; // BEP 3: requests from a choked peer are dropped
        }
        r.last_request = now;
        if !self.download.have().contains(block.piece) {
            self.violation(peer, ViolationKind::RequestedMissingPiece);
            return;
        }
        if let Some(ss) = &self.super_seed
            && !ss.may_serve(peer, block.piece)
        {
            return; // not offered to this peer (it cannot know we have it)
        }
        if self.config.serial_uploads {
            self.uploads.request(peer, block);
            self.send_blocks(now);
        } else {
            self.send_block(peer, block);
        }
    }

    pub(super) fn send_block(&mut self, peer: NodeId, block: crate::pieces::BlockRef) {
        self.outbox.send(peer, Message::Block(block));
        self.stats.uploaded += u64::from(block.len);
        if let Some(r) = self.remotes.get_mut(&peer) {
            r.up_window += u64::from(block.len);
            if !self.config.serial_uploads {
                r.in_transport += 1;
            }
        }
    }

    /// Hands the transport the blocks the upload window has room for.
    pub(super) fn send_blocks(&mut self, now: Time) {
        loop {
            let (remotes, picker) = (&self.remotes, &self.picker);
            let neighbours = remotes.len() as u32;
            // Serve first whoever has the least to upload itself: the
            // fewest pieces wanted around us, then the fewest pieces.
            let rank = |p: NodeId| {
                remotes.get(&p).map_or(u64::MAX, |r| {
                    (u64::from(picker.demand(&r.have, neighbours)) << 32) | u64::from(r.have.count())
                })
            };
            let Some((peer, block)) = self.uploads.next(now, rank) else {
                break;
            };
            self.send_block(peer, block);
        }
        self.upload_deadline = self.uploads.deadline(now);
    }
}
