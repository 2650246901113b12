//! The swarm peer: announces itself to the tracker, connects to the peers it
//! hands out, trades pieces with them (BEP 3 peer wire protocol) and, once
//! complete, seeds or leaves. The initial seed is the same node started
//! with a full bitfield.
//!
//! What it does, by message:
//!
//! - on connecting it sends its `Bitfield` (an empty one when
//!   super-seeding); afterwards a `Have` for each piece it verifies, to
//!   every neighbour but seeds (they need nothing; a super-seed appears
//!   incomplete and learns from these `Have`s where its pieces went);
//! - it is `Interested` in a neighbour exactly while the neighbour holds a
//!   piece it lacks, and keeps `pipeline` requests outstanding with every
//!   neighbour that unchoked it ([`super::picker`]);
//! - it unchokes by [`super::choker`] every `rechoke_interval`, rotates the
//!   optimistic unchoke every `optimistic_interval`, and fills a slot that
//!   falls free between rechokes at once;
//! - it answers a request at once with the block, so the uplink is shared
//!   among the neighbours it serves; a `Cancel` arrives after the block was
//!   handed to the transport and is ignored (the end game's duplicates are
//!   bounded by `endgame_copies` instead). With `serial_uploads` it queues
//!   the requests instead and sends one piece to one neighbour at a time
//!   ([`super::upload`]), keeping the transport's queue two blocks short;
//!   a `Cancel` then recalls a block still queued. Its own requests may
//!   then wait in another uploader's queue: a block asked of a neighbour
//!   silent for 50 ms moves to an unchoking neighbour it asks nothing of
//!   (after every block it receives it looks for one): asked there,
//!   cancelled at the silent one;
//! - without serial uploads, requests a neighbour leaves unanswered for
//!   5 s (it unchoked us but sends nothing: it hung, or answers nobody),
//!   or four times the gap between its last two blocks, are cancelled
//!   there and go back to the picker for the others; that neighbour is
//!   asked nothing for 5 s, doubling at each new timeout up to a minute,
//!   and normally again from its next block on;
//! - a seed drops connections to other seeds.
//!
//! The code is split by concern: `announce` (the tracker), `connections`
//! (neighbours coming and going, leaving the swarm), `downloading`
//! (interest, requests, received blocks, verified pieces), `uploading`
//! (answering requests) and `choking` (whom to upload to); this file holds
//! the state and the [`Node`] entry points that dispatch to them.

mod announce;
mod choking;
mod connections;
mod downloading;
mod uploading;

use std::collections::BTreeSet;

use super::SwarmConfig;
use super::blame::Blame;
use super::choker::{self, ChokeClock, Choker};
use super::neighbours;
use super::picker::Picker;
use super::super_seed::{SUPER_SEED_OFFERS, SuperSeed};
use super::upload::Uploads;
use crate::backoff::Backoff;
use crate::download::Download;
use crate::event::{Event, ViolationKind};
use crate::message::{AnnounceEvent, Message};
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::{Bitfield, PieceLayout};
use crate::rng::{self, NodeRng};
use crate::time::Time;
use crate::timers::Timers;
use crate::vec_map::VecMap;
use announce::{TRACKER_RETRY, TRACKER_RETRY_MAX};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Announce,
    /// Whether a peer without a source should ask the tracker early.
    Starving,
    /// Whether a neighbour holding our requests went silent.
    Silence,
    /// Whether an unchoked neighbour left its slot idle; also when the
    /// slots of a node that has just started open.
    IdleSlots,
    Leave,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrackerLink {
    Down,
    Connecting,
    Up,
}

/// What we know of one neighbour.
#[derive(Clone, Debug)]
struct Remote {
    have: Bitfield,
    /// Pieces it holds that we do not.
    wanted: u32,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    /// Payload bytes it sent us / we sent it since the last rechoke.
    down_window: u64,
    up_window: u64,
    /// Last time it sent us a block, or we became interested in it.
    last_progress: Time,
    snubbed: bool,
    /// Since when we wait for a block from it (requests out, none arrived).
    waiting_since: Option<Time>,
    /// When its last block arrived, and the gap before that one.
    last_block: Option<Time>,
    block_gap: std::time::Duration,
    /// Our requests there timed out ([`downloading`]'s `REQUEST_TIMEOUT`)
    /// or all moved away for its silence: it gets none until then; and how
    /// many such pauses it had since its last block (each doubles the next).
    requests_paused: Option<Time>,
    pauses: u32,
    /// When it last asked us for a block (or we unchoked it).
    last_request: Time,
    /// Blocks handed to the transport for it and not yet reported sent
    /// (without serial uploads; [`Uploads`] counts its own).
    in_transport: u32,
}

impl Remote {
    /// Whether the neighbour may get an unchoke slot: it is interested, or,
    /// while we super-seed, it lacks pieces.
    fn eligible(&self, super_seeding: bool) -> bool {
        choker::is_eligible(super_seeding, || self.peer_interested, || !self.have.is_full())
    }
}

/// Counters a test or a report may want.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Payload bytes received and kept.
    pub downloaded: u64,
    /// `Cancel` messages sent (end game, and requests moved away from a
    /// stalled serial uploader).
    pub cancels_sent: u64,
    /// Blocks requested while another request for them was in flight.
    pub endgame_requests: u64,
}

/// A swarm peer (also the initial seed). See the [module docs](self).
// Fields in declaration order (`repr(C)`), those most inputs touch first:
// with thousands of peers in one simulation every input finds its peer's
// state cold in the cache, and the fewer cache lines it spans, the fewer
// misses (the random generator's 304 bytes, used once per piece, go last).
#[derive(Debug)]
#[repr(C)]
pub struct Peer {
    /// The time of the input being handled.
    now: Time,
    /// When the node (re)started: its slots stay shut until
    /// [`slots_open_at`](crate::swarm::choker::slots_open_at) this.
    started: Time,
    id: NodeId,
    tracker: NodeId,
    /// Storage failed: we stop downloading.
    stopped: bool,
    /// We left the swarm.
    gone: bool,
    completed: bool,
    remotes: VecMap<NodeId, Remote>,
    layout: PieceLayout,
    outbox: Outbox,
    timers: Timers<Timer>,
    download: Download,
    picker: Picker,
    uploads: Uploads,
    /// When a neighbour holding the upload window counts as stalled.
    upload_deadline: Option<Time>,
    choker: Choker,
    /// Strikes and bans for pieces that failed their check.
    blame: Blame,
    /// When to rechoke (none before the start).
    choke_clock: Option<ChokeClock>,
    super_seed: Option<SuperSeed>,
    config: SwarmConfig,
    stats: PeerStats,
    connecting: BTreeSet<NodeId>,
    /// Peers the tracker named that we have not tried yet.
    candidates: Vec<NodeId>,
    tracker_link: TrackerLink,
    pending_announce: Option<AnnounceEvent>,
    /// An announce sent and not answered yet: if the tracker goes away
    /// before replying, it is sent again (nobody waits forever for a
    /// tracker that lost it).
    unanswered: Option<AnnounceEvent>,
    last_announce: Option<Time>,
    /// Retries of an announce that did not reach the tracker.
    tracker_retry: Backoff,
    /// How long after the last announce a peer without a source asks
    /// again ([`neighbours::STARVING_REANNOUNCE`], doubling).
    starving_delay: std::time::Duration,
    rng: NodeRng,
}

impl Peer {
    /// Peer `id` of a swarm whose tracker is `tracker`, sharing `layout`
    /// and already holding the verified pieces `have` (full for the initial
    /// seed). It super-seeds if `config.super_seed` and it starts with the
    /// whole file. Its random choices come from `rng::node_rng(seed, id)`.
    pub fn new(
        id: NodeId,
        tracker: NodeId,
        layout: PieceLayout,
        have: Bitfield,
        config: SwarmConfig,
        seed: u64,
    ) -> Self {
        let completed = have.is_full();
        let super_seed = (config.super_seed && completed).then(|| SuperSeed::new(layout, SUPER_SEED_OFFERS));
        Peer {
            id,
            tracker,
            layout,
            rng: rng::node_rng(seed, id),
            download: Download::new(layout, have),
            picker: Picker::new(layout.pieces(), config.random_first_pieces, config.endgame_copies),
            choker: Choker::new(config.unchoke_slots),
            blame: Blame::default(),
            choke_clock: None,
            super_seed,
            uploads: Uploads::new(layout),
            upload_deadline: None,
            remotes: VecMap::new(),
            connecting: BTreeSet::new(),
            candidates: Vec::new(),
            tracker_link: TrackerLink::Down,
            pending_announce: None,
            unanswered: None,
            last_announce: None,
            tracker_retry: Backoff::new(TRACKER_RETRY, TRACKER_RETRY_MAX),
            starving_delay: neighbours::STARVING_REANNOUNCE,
            timers: Timers::default(),
            outbox: Outbox::default(),
            stats: PeerStats::default(),
            stopped: false,
            gone: false,
            completed,
            config,
            now: Time::ZERO,
            started: Time::ZERO,
        }
    }

    // ----- getters -------------------------------------------------------

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        self.download.have()
    }

    /// Counters.
    pub fn stats(&self) -> PeerStats {
        self.stats
    }

    /// Connected neighbours.
    pub fn neighbours(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.remotes.keys().copied()
    }

    /// Neighbours we currently upload to (unchoked).
    pub fn unchoked(&self) -> BTreeSet<NodeId> {
        self.remotes
            .iter()
            .filter(|(_, r)| !r.am_choking)
            .map(|(&p, _)| p)
            .collect()
    }

    /// The neighbour holding the optimistic unchoke.
    pub fn optimistic(&self) -> Option<NodeId> {
        self.choker.optimistic()
    }

    /// Whether the node is still super-seeding.
    pub fn is_super_seeding(&self) -> bool {
        self.super_seed.as_ref().is_some_and(SuperSeed::is_active)
    }

    /// Whether the node has left the swarm.
    pub fn has_left(&self) -> bool {
        self.gone
    }

    /// `peer` was just banned ([`Blame`]): say so, never dial it again,
    /// and drop the connection to it.
    fn banned(&mut self, peer: NodeId) {
        self.outbox.event(Event::PeerBanned { peer });
        self.candidates.retain(|&c| c != peer);
        if self.remotes.contains_key(&peer) || self.connecting.contains(&peer) {
            self.outbox.command(Command::Disconnect { peer });
        }
    }
}

impl Node for Peer {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, now: Time) {
        self.now = now;
        self.started = now;
        // A (re)start: connections, requests and choking state are gone;
        // verified pieces are kept.
        self.outbox.clear();
        self.remotes.clear();
        self.connecting.clear();
        self.candidates.clear();
        self.download = Download::new(self.layout, self.download.have().clone());
        self.picker = Picker::new(
            self.layout.pieces(),
            self.config.random_first_pieces,
            self.config.endgame_copies,
        );
        self.choker = Choker::new(self.config.unchoke_slots);
        self.blame = Blame::default();
        self.uploads = Uploads::new(self.layout);
        self.upload_deadline = None;
        self.timers = Timers::default();
        self.tracker_link = TrackerLink::Down;
        self.gone = false;
        self.choke_clock = Some(ChokeClock::new(
            now,
            self.config.rechoke_interval,
            self.config.optimistic_interval,
        ));
        self.starving_delay = neighbours::STARVING_REANNOUNCE;
        self.announce(AnnounceEvent::Started, now);
        self.check_starving(now);
    }

    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        self.now = now;
        if peer == self.tracker {
            self.on_tracker_connection(event, now);
            return;
        }
        self.on_connection(peer, event, now);
    }

    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time) {
        self.now = now;
        if self.gone {
            return;
        }
        if peer == self.tracker {
            match msg {
                Message::AnnounceReply { interval_s, peers } => {
                    self.on_announce_reply(interval_s, peers, now)
                }
                _ => self.violation(peer, ViolationKind::UnexpectedMessage),
            }
            return;
        }
        if !self.remotes.contains_key(&peer) {
            return; // a straggler from a connection we dropped
        }
        match msg {
            Message::Bitfield(bits) => self.on_bitfield(peer, bits, now),
            Message::Have { piece } => self.on_remote_have(peer, piece, now),
            Message::Interested => {
                if let Some(r) = self.remotes.get_mut(&peer) {
                    r.peer_interested = true;
                }
                self.fill_slots();
            }
            Message::NotInterested => {
                let unchoked = self.remotes.get_mut(&peer).is_some_and(|r| {
                    r.peer_interested = false;
                    !r.am_choking
                });
                if unchoked && choker::chokes_on_lost_interest(self.is_super_seeding()) {
                    self.choke(peer);
                    self.choker.forget(peer);
                    self.fill_slots();
                }
            }
            Message::Choke => {
                if let Some(r) = self.remotes.get_mut(&peer) {
                    r.peer_choking = true;
                }
                self.download.forget_peer(peer);
                self.picker.release(peer, &self.download);
                self.request_all();
                self.check_starving(now);
            }
            Message::Unchoke => {
                if let Some(r) = self.remotes.get_mut(&peer) {
                    r.peer_choking = false;
                }
                self.request_from(peer);
            }
            Message::Request(block) => self.on_request(peer, block, now),
            Message::Block(block) => self.on_block(peer, block, now),
            Message::Cancel(block) => {
                self.uploads.cancel(peer, block);
            }
            _ => self.violation(peer, ViolationKind::UnexpectedMessage),
        }
    }

    fn handle_storage(&mut self, result: StorageResult, now: Time) {
        self.now = now;
        if self.gone {
            return;
        }
        match result {
            StorageResult::Verified { piece } => {
                if self.blame.piece_verified(piece) {
                    self.outbox.command(Command::DigestBlocks { piece });
                }
                self.on_verified(piece, now);
            }
            StorageResult::Corrupt { piece } => {
                let senders = self.download.block_senders(piece);
                self.download.on_verified(piece, false);
                self.picker.piece_done(piece);
                self.outbox.event(Event::PieceCorrupt { piece });
                let verdict = self.blame.piece_failed(piece, &senders);
                if verdict.digest {
                    self.outbox.command(Command::DigestBlocks { piece });
                }
                for peer in verdict.suspended {
                    self.outbox.event(Event::PeerSuspended { peer });
                }
                for peer in verdict.banned {
                    self.banned(peer);
                }
                self.request_all();
            }
            StorageResult::Digests { piece, digests } => {
                for peer in self.blame.digests(piece, &digests) {
                    self.banned(peer);
                }
            }
            StorageResult::WriteFailed { piece, reason } => {
                self.download.drop_piece(piece);
                self.picker.piece_done(piece);
                self.stopped = true;
                self.outbox.event(Event::StorageFailed { piece, reason });
                let peers: Vec<NodeId> = self.remotes.keys().copied().collect();
                for p in peers {
                    self.update_interest(p, now);
                }
            }
        }
    }

    fn handle_sent(&mut self, peer: NodeId, now: Time) {
        self.now = now;
        self.uploads.sent(peer, now);
        if let Some(r) = self.remotes.get_mut(&peer) {
            r.in_transport = r.in_transport.saturating_sub(1);
        }
        if !self.gone {
            self.send_blocks(now);
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        if self.gone {
            return;
        }
        // A neighbour holding the upload window may have stalled.
        self.send_blocks(now);
        let due = self.timers.expire(now);
        for timer in &due {
            match timer {
                Timer::Announce => self.announce(AnnounceEvent::Periodic, now),
                Timer::Starving => self.on_starving_timer(now),
                Timer::Silence => self.on_silence_timer(now),
                Timer::IdleSlots => self.fill_slots(),
                Timer::Leave => {
                    self.leave(now);
                    return;
                }
            }
        }
        if let Some(rotate) = self.choke_clock.as_mut().and_then(|c| c.fire(now)) {
            self.rechoke(now, rotate);
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.gone {
            return None; // nothing left to do: no upload waits either
        }
        let clock = self.choke_clock.map(|c| c.next());
        self.timers
            .next()
            .into_iter()
            .chain(self.upload_deadline)
            .chain(clock)
            .min()
    }
}

#[cfg(test)]
mod liveness_tests;

#[cfg(test)]
mod tests;
