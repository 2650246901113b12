//! The peer's download side: interest, keeping requests outstanding,
//! moving requests away from silent neighbours, received blocks, what
//! neighbours hold (`Bitfield`, `Have`), verified pieces and completion.

use super::{Peer, Timer};
use crate::download::BlockOutcome;
use crate::event::{Event, ViolationKind};
use crate::message::{AnnounceEvent, Message};
use crate::node::{Command, NodeId};
use crate::pieces::Bitfield;
use crate::rng;
use crate::swarm::Departure;
use crate::swarm::super_seed::SuperSeed;
use crate::time::Time;

/// With serial uploads, requests to a neighbour that has sent us no block
/// for this long may move to an idle one: they are queued behind
/// someone else's piece. A serial uploader sending to us delivers a block
/// every few milliseconds (16 KiB at 20 Mbit/s: 7 ms), so 50 ms of silence
/// means waiting.
const STALLED_REQUEST: std::time::Duration = std::time::Duration::from_millis(50);

/// Without serial uploads, requests to a neighbour that has sent us no
/// block for this long (or four times the gap between its last two blocks,
/// if longer) may move to an idle neighbour: it hung, its link went down,
/// or its uplink is swamped. Blocks arrive every few milliseconds from a
/// healthy neighbour on links of a few Mbit/s and more; a slow one sets its
/// own, longer limit by its gaps.
const SILENT_SOURCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Requests to a neighbour that has sent us no block for this long (or four
/// times the gap between its last two blocks, if longer: a slow neighbour,
/// or a serial uploader that serves us in turns, sets its own) time out: they are cancelled there and go back
/// to the picker, and the neighbour is asked nothing for as long again
/// (doubling at each consecutive timeout, up to [`MAX_REQUEST_PAUSE`]). A
/// neighbour that unchokes us but never answers (hung, or silent on
/// purpose) would otherwise hold the blocks it was asked for, and so their
/// pieces, until the end game. Ten times [`SILENT_SOURCE`]: a healthy
/// neighbour's blocks come far more often; a choke releases requests
/// sooner. Not with serial uploads: an uploader then queues requests
/// behind other neighbours' pieces for seconds by design (at N = 64 with
/// no send window, 63 timeouts fired in a healthy run), and
/// [`STALLED_REQUEST`] moves them.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest pause in asking a neighbour whose requests keep timing out.
const MAX_REQUEST_PAUSE: std::time::Duration = std::time::Duration::from_secs(60);

impl Peer {
    pub(super) fn update_interest(&mut self, peer: NodeId, now: Time) {
        let stopped = self.stopped;
        let Some(r) = self.remotes.get_mut(&peer) else {
            return;
        };
        let want = r.wanted > 0 && !stopped;
        if want == r.am_interested {
            return;
        }
        r.am_interested = want;
        if want {
            r.last_progress = now;
            self.outbox.send(peer, Message::Interested);
        } else {
            self.outbox.send(peer, Message::NotInterested);
        }
    }

    /// Keeps `pipeline` requests outstanding with `peer`.
    pub(super) fn request_from(&mut self, peer: NodeId) {
        if self.stopped || self.gone || self.download.is_complete() {
            return;
        }
        let Some(r) = self.remotes.get(&peer) else {
            return;
        };
        if r.peer_choking || !r.am_interested || r.requests_paused.is_some() {
            return;
        }
        let masked = self.without_suspect_pieces(peer, &r.have);
        while self.download.in_flight_to(peer) < self.config.pipeline {
            let Some(r) = self.remotes.get(&peer) else {
                return;
            };
            let have = masked.as_ref().unwrap_or(&r.have);
            let picked = self.picker.next_block(&self.download, peer, have, &mut self.rng);
            let Some(block) = picked.or_else(|| self.move_stalled_request(peer)) else {
                return;
            };
            if self.download.is_in_flight(block) {
                self.stats.endgame_requests += 1;
            }
            if self.download.in_flight_to(peer) == 0
                && let Some(r) = self.remotes.get_mut(&peer)
            {
                r.waiting_since = Some(self.now);
                if self.timers.get(Timer::Silence).is_none() {
                    let limit = self.silence_limit(peer);
                    self.timers.set(Timer::Silence, self.now + limit);
                }
            }
            self.download.mark_requested(block, peer);
            self.outbox.send(peer, Message::Request(block));
        }
    }

    /// `have`, `peer`'s pieces, without those whose failed copy it had a
    /// hand in (`Blame::suspect_pieces`) and that another neighbour, not a
    /// suspect of that copy, also holds; `None` when that removes nothing.
    /// A piece that only suspects hold and that failed twice in a row is
    /// fetched again from one of them alone (the first in id order that
    /// unchokes us): mixed again, a liar's blocks would spoil each new copy
    /// and strike every sender of it until all were banned, honest ones
    /// with the liar, before a good copy could clear them (at N = 4 with
    /// `endgame_copies` 3, a downloader banned all four neighbours in the
    /// end game of its last piece and never completed). Alone, a liar's
    /// copy fails and bans it at once; an honest one's passes and is
    /// compared with the failed copy. After one failure the piece is still
    /// fetched from all of them: most such copies pass, and one sender
    /// alone slowed the liar run of the README by 5% (7.96 s to 8.34 s).
    ///
    /// A suspended `peer` (`Blame::is_suspended`) is asked only for pieces
    /// no neighbour that is not suspended holds.
    ///
    /// A neighbour whose requests are paused or that went silent
    /// ([`Self::answers`]) does not count as holding a piece elsewhere:
    /// hiding the piece from `peer` for its sake would leave nobody asked
    /// for it (a downloader missing one piece that a corrupting seed and a
    /// silent peer held waited for good). One that chokes us does: it
    /// unchokes us in time, and asking the suspects meanwhile lets a liar
    /// spoil the piece again (16 peers, one liar, three end-game copies:
    /// a downloader's piece failed three times and the comparisons never
    /// singled the liar out).
    fn without_suspect_pieces(&self, peer: NodeId, have: &Bitfield) -> Option<Bitfield> {
        let mut masked: Option<Bitfield> = None;
        if self.blame.is_suspended(peer) {
            let trusted: Vec<&Bitfield> = self
                .remotes
                .iter()
                .filter(|(q, _)| **q != peer && !self.blame.is_suspended(**q) && self.answers(**q))
                .map(|(_, r)| &r.have)
                .collect();
            for piece in have.iter() {
                if trusted.iter().any(|h| h.contains(piece)) {
                    masked.get_or_insert_with(|| have.clone()).remove(piece);
                }
            }
        }
        for piece in self.blame.suspect_pieces(peer) {
            if !have.contains(piece) {
                continue;
            }
            let elsewhere = self.remotes.iter().any(|(&q, r)| {
                q != peer && r.have.contains(piece) && !self.blame.is_suspect(q, piece) && self.answers(q)
            });
            let sole = self
                .remotes
                .iter()
                .find(|(q, r)| r.have.contains(piece) && !r.peer_choking && self.answers(**q))
                .map(|(&q, _)| q);
            let alone = self.blame.failures(piece) >= 2;
            if elsewhere || (alone && sole.is_some_and(|q| q != peer)) {
                masked.get_or_insert_with(|| have.clone()).remove(piece);
            }
        }
        masked
    }

    /// Whether `peer` can be expected to answer requests: they are not
    /// paused there, and it has not gone silent on the ones it holds.
    fn answers(&self, peer: NodeId) -> bool {
        self.remotes
            .get(&peer)
            .is_some_and(|r| r.requests_paused.is_none())
            && !self.is_silent(peer)
    }

    /// How long `peer` may send nothing while our requests wait there
    /// before they may move elsewhere.
    pub(super) fn silence_limit(&self, peer: NodeId) -> std::time::Duration {
        if self.config.serial_uploads {
            return STALLED_REQUEST;
        }
        let gap = self
            .remotes
            .get(&peer)
            .map_or(std::time::Duration::ZERO, |r| r.block_gap);
        SILENT_SOURCE.max(gap * 4)
    }

    /// Whether our requests at `peer` have waited past its silence limit.
    pub(super) fn is_silent(&self, peer: NodeId) -> bool {
        self.remotes
            .get(&peer)
            .and_then(|r| r.waiting_since)
            .is_some_and(|t| self.now.saturating_since(t) >= self.silence_limit(peer))
            && self.download.in_flight_to(peer) > 0
    }

    /// [`Timer::Silence`]: requests at a neighbour silent past
    /// [`REQUEST_TIMEOUT`] time out ([`Self::time_out_requests`]); a
    /// neighbour whose pause is over is asked again. If a neighbour holding
    /// requests went silent, the neighbours that unchoke us and that we ask
    /// nothing of take over its blocks ([`Self::move_stalled_request`]).
    /// Then the timer is set for the next neighbour that could go silent,
    /// or whose pause ends.
    pub(super) fn on_silence_timer(&mut self, now: Time) {
        // A serial uploader queues our requests behind other neighbours'
        // pieces by design: waiting there is no silence.
        let serial = self.config.serial_uploads;
        let timed_out: Vec<NodeId> = self
            .remotes
            .iter()
            .filter(|(p, r)| {
                !serial
                    && self.download.in_flight_to(**p) > 0
                    && r.waiting_since
                        .is_some_and(|t| now.saturating_since(t) >= REQUEST_TIMEOUT.max(r.block_gap * 4))
            })
            .map(|(p, _)| *p)
            .collect();
        for p in timed_out {
            self.time_out_requests(p, now);
        }
        let resumed: Vec<NodeId> = self
            .remotes
            .iter()
            .filter(|(_, r)| r.requests_paused.is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for p in resumed {
            if let Some(r) = self.remotes.get_mut(&p) {
                r.requests_paused = None;
            }
            self.request_from(p);
        }
        let waiting: Vec<NodeId> = self
            .remotes
            .keys()
            .copied()
            .filter(|&p| self.download.in_flight_to(p) > 0)
            .collect();
        if waiting.iter().any(|&p| self.is_silent(p)) {
            let idle: Vec<NodeId> = self
                .remotes
                .iter()
                .filter(|(p, r)| !r.peer_choking && r.am_interested && self.download.in_flight_to(**p) == 0)
                .map(|(p, _)| *p)
                .collect();
            for p in idle {
                self.request_from(p);
            }
        }
        let next = waiting
            .iter()
            .filter(|&&p| self.download.in_flight_to(p) > 0)
            .filter_map(|&p| {
                let since = self.remotes.get(&p)?.waiting_since?;
                Some((since + self.silence_limit(p)).max(now + SILENT_SOURCE))
            })
            .min();
        let paused = self.remotes.values().filter_map(|r| r.requests_paused).min();
        if let Some(at) = next.into_iter().chain(paused).min() {
            self.timers.set(Timer::Silence, at);
        }
    }

    /// `peer` left our requests unanswered past [`REQUEST_TIMEOUT`]: they
    /// are cancelled there, their blocks go back to the picker and to the
    /// neighbours that can send them, and `peer` is asked nothing for a
    /// while (its pause, doubling each time, reset by its next block).
    fn time_out_requests(&mut self, peer: NodeId, now: Time) {
        let blocks = self.download.forget_peer(peer);
        for block in blocks {
            self.stats.cancels_sent += 1;
            self.outbox.send(peer, Message::Cancel(block));
        }
        self.picker.release(peer, &self.download);
        self.pause_requests(peer, REQUEST_TIMEOUT, now);
        self.request_all();
    }

    /// A block for idle `peer` (nothing asked of it) that is requested only
    /// from neighbours that went silent ([`Self::silence_limit`]): with
    /// serial uploads, an uploader queues requests behind the piece it is
    /// sending to someone else; without, a neighbour may hang or lose its
    /// link with our requests. Either way a neighbour holding the same piece
    /// has unchoked us and idles. The request moves: it is cancelled at the
    /// silent neighbours here, and the caller asks `peer`. (Copied instead
    /// of moved, a serial uploader sent the block too once it turned to us:
    /// at N = 256, 5,507 discarded blocks instead of 1,670.)
    pub(super) fn move_stalled_request(&mut self, peer: NodeId) -> Option<crate::pieces::BlockRef> {
        if self.download.in_flight_to(peer) > 0 {
            return None;
        }
        let have = &self.remotes.get(&peer)?.have;
        let masked = self.without_suspect_pieces(peer, have);
        let remote = masked.as_ref().unwrap_or(have);
        let block = self
            .picker
            .stalled_block(&self.download, peer, remote, |q| self.is_silent(q))?;
        let stalled: Vec<NodeId> = self.download.requested_from(block).collect();
        for q in stalled {
            self.download.cancel(block, q);
            self.stats.cancels_sent += 1;
            self.outbox.send(q, Message::Cancel(block));
            if !self.config.serial_uploads && self.download.in_flight_to(q) == 0 {
                let limit = self.silence_limit(q);
                self.pause_requests(q, limit, self.now);
            }
        }
        Some(block)
    }

    /// `peer` is asked nothing for `base`, doubled for each pause it had
    /// since its last block (up to [`MAX_REQUEST_PAUSE`]); the silence
    /// timer asks it again then. Its requests timed out (`base` is
    /// [`REQUEST_TIMEOUT`]), or all moved away for its silence (`base` is
    /// its silence limit): without the pause nothing would ask it again,
    /// since only its own messages, an unchoke, a timeout or a block from
    /// it call `request_from` for it, and a silent neighbour that already
    /// holds what we lack sends none of them. A neighbour silent for a
    /// second is asked again within a second; one hung for good ever more
    /// rarely. Either way the report counts it as a request timeout.
    fn pause_requests(&mut self, peer: NodeId, base: std::time::Duration, now: Time) {
        let Some(r) = self.remotes.get_mut(&peer) else {
            return;
        };
        let pause = base.saturating_mul(1 << r.pauses.min(16)).min(MAX_REQUEST_PAUSE);
        let until = now + pause;
        r.waiting_since = None;
        r.requests_paused = Some(until);
        r.pauses += 1;
        if self.timers.get(Timer::Silence).is_none_or(|t| t > until) {
            self.timers.set(Timer::Silence, until);
        }
        self.outbox.event(Event::RequestsTimedOut { peer });
    }

    pub(super) fn request_all(&mut self) {
        let peers: Vec<NodeId> = self
            .remotes
            .iter()
            .filter(|(_, r)| !r.peer_choking && r.am_interested)
            .map(|(&p, _)| p)
            .collect();
        for p in peers {
            self.request_from(p);
        }
    }

    pub(super) fn on_block(&mut self, peer: NodeId, block: crate::pieces::BlockRef, now: Time) {
        if !self.layout.is_valid_block(block) {
            self.violation(peer, ViolationKind::InvalidBlock);
            return;
        }
        if let Some(r) = self.remotes.get_mut(&peer) {
            r.down_window += u64::from(block.len);
            r.last_progress = now;
            r.snubbed = false;
            r.waiting_since = Some(now);
            r.requests_paused = None;
            r.pauses = 0;
            if let Some(last) = r.last_block {
                r.block_gap = now.saturating_since(last);
            }
            r.last_block = Some(now);
        }
        match self.download.receive(peer, block, &mut self.outbox) {
            BlockOutcome::Accepted {
                also_requested_from, ..
            } => {
                self.picker.touch(block.piece);
                self.stats.downloaded += u64::from(block.len);
                for &other in &also_requested_from {
                    self.stats.cancels_sent += 1;
                    self.outbox.send(other, Message::Cancel(block));
                }
                self.request_from(peer);
                for other in also_requested_from {
                    self.request_from(other);
                }
                if self.config.serial_uploads {
                    // Neighbours that unchoke us and that we ask nothing of
                    // may take over blocks queued behind others elsewhere
                    // (`move_stalled_request`).
                    let idle: Vec<NodeId> = self
                        .remotes
                        .iter()
                        .filter(|(p, r)| {
                            !r.peer_choking && r.am_interested && self.download.in_flight_to(**p) == 0
                        })
                        .map(|(p, _)| *p)
                        .collect();
                    for p in idle {
                        self.request_from(p);
                    }
                }
            }
            BlockOutcome::Unwanted => self.request_from(peer),
        }
    }

    pub(super) fn on_remote_have(&mut self, peer: NodeId, piece: u32, now: Time) {
        if piece >= self.layout.pieces() {
            self.violation(peer, ViolationKind::InvalidBlock);
            return;
        }
        let we_have = self.download.have().contains(piece);
        let Some(r) = self.remotes.get_mut(&peer) else {
            return;
        };
        if !r.have.insert(piece) {
            return;
        }
        self.picker.add_have(piece);
        if !we_have {
            r.wanted += 1;
        }
        let was_super = self.is_super_seeding();
        if let Some(ss) = self.super_seed.as_mut()
            && ss.on_have(peer, piece)
            && self.remotes.get(&peer).is_some_and(|r| !r.am_choking)
        {
            self.offer(peer);
        }
        if was_super && !self.is_super_seeding() {
            self.end_super_seeding();
        }
        let Some(r) = self.remotes.get(&peer) else {
            return;
        };
        let full = r.have.is_full();
        self.update_interest(peer, now);
        if full && self.completed {
            self.outbox.command(Command::Disconnect { peer });
            return;
        }
        self.request_from(peer);
    }

    pub(super) fn on_bitfield(&mut self, peer: NodeId, bits: Bitfield, now: Time) {
        if bits.len() != self.layout.pieces() {
            self.violation(peer, ViolationKind::UnexpectedMessage);
            return;
        }
        let ours = self.download.have();
        let wanted = bits.iter().filter(|&p| !ours.contains(p)).count() as u32;
        let Some(r) = self.remotes.get_mut(&peer) else {
            return;
        };
        self.picker.remove_peer(&r.have);
        self.picker.add_peer(&bits);
        r.wanted = wanted;
        let was_super = self.super_seed.as_ref().is_some_and(SuperSeed::is_active);
        let offer_more = self
            .super_seed
            .as_mut()
            .is_some_and(|ss| ss.on_bitfield(peer, &bits));
        r.have = bits;
        let full = r.have.is_full();
        let unchoked = !r.am_choking;
        if was_super && !self.is_super_seeding() {
            self.end_super_seeding();
        } else if offer_more && unchoked {
            self.offer(peer);
        }
        self.update_interest(peer, now);
        if full && self.completed {
            self.outbox.command(Command::Disconnect { peer });
            return;
        }
        self.request_from(peer);
    }

    pub(super) fn on_verified(&mut self, piece: u32, now: Time) {
        self.download.on_verified(piece, true);
        self.picker.piece_done(piece);
        self.outbox.event(Event::PieceVerified { piece });
        // Neighbours hear of the piece in a random order. In id order, the
        // same low ids would answer first everywhere and win every free
        // unchoke slot, so the swarm's first copies would pile onto a few
        // peers instead of spreading (where links have equal latency, as in
        // the simulator's default; real jitter shuffles them only partly).
        //
        // Who held the piece is read first, in table order: one sweep over
        // the neighbours (whose bitfields are cold when thousands of peers
        // share the cache) instead of a jump per neighbour. Shuffling their
        // positions draws the same order as shuffling their ids, and
        // `update_interest` reads only its own neighbour, so the messages
        // and their order are those of a single shuffled pass.
        let held: Vec<(bool, bool)> = self
            .remotes
            .values_mut()
            .map(|r| {
                let had = r.have.contains(piece);
                if had {
                    r.wanted -= 1;
                }
                (had, r.have.is_full())
            })
            .collect();
        let peers: Vec<NodeId> = self.remotes.keys().copied().collect();
        let mut order: Vec<u32> = (0..peers.len() as u32).collect();
        rng::shuffle(&mut self.rng, &mut order);
        for i in order {
            let (peer, (had, full)) = (peers[i as usize], held[i as usize]);
            if had {
                self.update_interest(peer, now);
            }
            if !full {
                self.outbox.send(peer, Message::Have { piece });
            }
        }
        if self.download.is_complete() && !self.completed {
            self.on_complete(now);
        } else if held.iter().any(|&(had, _)| had) {
            // A neighbour we fetched from may have nothing more for us.
            self.check_starving(now);
        }
    }

    pub(super) fn on_complete(&mut self, now: Time) {
        self.completed = true;
        self.outbox.event(Event::DownloadComplete);
        match self.config.leave.on_completion(now) {
            Departure::Now => {
                self.leave(now);
                return;
            }
            Departure::At(at) => self.timers.set(Timer::Leave, at),
            Departure::Never => {}
        }
        self.announce(AnnounceEvent::Completed, now);
        // Seeds have nothing to say to each other.
        let seeds: Vec<NodeId> = self
            .remotes
            .iter()
            .filter(|(_, r)| r.have.is_full())
            .map(|(&p, _)| p)
            .collect();
        for p in seeds {
            self.outbox.command(Command::Disconnect { peer: p });
        }
        // Rank by upload from now on; uninterested peers free their slots.
        self.fill_slots();
    }
}
