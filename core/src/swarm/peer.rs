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
//! - a seed drops connections to other seeds.

use std::collections::BTreeSet;

use super::choker::{Candidate, ChokeClock, Choker, is_snubbed};
use super::neighbours;
use super::picker::Picker;
use super::super_seed::SuperSeed;
use super::upload::Uploads;
use super::{Leave, SwarmConfig};
use crate::backoff::Backoff;
use crate::download::{BlockOutcome, Download};
use crate::event::{Event, ViolationKind};
use crate::message::{AnnounceEvent, Message};
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::{Bitfield, PieceLayout};
use crate::rng::{self, NodeRng};
use crate::time::Time;
use crate::timers::Timers;
use crate::vec_map::VecMap;

/// With serial uploads, requests to a neighbour that has sent us no block
/// for this long may move to an idle one: they are queued behind
/// someone else's piece. A serial uploader sending to us delivers a block
/// every few milliseconds (16 KiB at 20 Mbit/s: 7 ms), so 50 ms of silence
/// means waiting; the measured ratios hardly move between 20 and 100 ms
/// (docs/swarm.md).
const STALLED_REQUEST: std::time::Duration = std::time::Duration::from_millis(50);

/// Without serial uploads, requests to a neighbour that has sent us no
/// block for this long (or four times the gap between its last two blocks,
/// if longer) may move to an idle neighbour: it hung, its link went down,
/// or its uplink is swamped. Blocks arrive every few milliseconds from a
/// healthy neighbour on links of a few Mbit/s and more; a slow one sets its
/// own, longer limit by its gaps.
const SILENT_SOURCE: std::time::Duration = std::time::Duration::from_millis(500);

/// An unchoked neighbour that has asked us for nothing for this long, and
/// has nothing on its way from us, leaves its unchoke slot idle: another
/// interested neighbour gets unchoked on top of it, so that our uplink
/// does not idle while someone waits (a neighbour with requests elsewhere,
/// or with nothing it wants now, may hold a slot for a whole rechoke).
const IDLE_SLOT: std::time::Duration = std::time::Duration::from_millis(500);

/// Unfinished super-seeding offers per neighbour.
const SUPER_SEED_OFFERS: u32 = 2;

/// A peer that lost neighbours but still has a source asks the tracker for
/// more, but no more often than this.
const MIN_REANNOUNCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The first retry of an announce that did not reach the tracker comes
/// after this long; each further failure doubles it, up to
/// [`TRACKER_RETRY_MAX`].
const TRACKER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
const TRACKER_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Announce,
    /// Whether a peer without a source should ask the tracker early.
    Starving,
    /// Whether a neighbour holding our requests went silent.
    Silence,
    /// Whether an unchoked neighbour left its slot idle.
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
        if super_seeding {
            !self.have.is_full()
        } else {
            self.peer_interested
        }
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

    // ----- tracker -------------------------------------------------------

    fn bytes_left(&self) -> u64 {
        let have = self.download.have();
        (0..self.layout.pieces())
            .filter(|&p| !have.contains(p))
            .map(|p| u64::from(self.layout.piece_size(p)))
            .sum()
    }

    fn announce(&mut self, event: AnnounceEvent, now: Time) {
        // A pending Started/Completed is not downgraded to Periodic.
        if self.pending_announce.is_none() || event != AnnounceEvent::Periodic {
            self.pending_announce = Some(event);
        }
        match self.tracker_link {
            TrackerLink::Up => self.flush_announce(now),
            TrackerLink::Connecting => {}
            TrackerLink::Down => {
                self.tracker_link = TrackerLink::Connecting;
                self.outbox.command(Command::Connect { peer: self.tracker });
            }
        }
    }

    fn flush_announce(&mut self, now: Time) {
        let Some(event) = self.pending_announce.take() else {
            return;
        };
        self.unanswered = Some(event);
        self.last_announce = Some(now);
        // A peer on its way out wants nobody; every other peer, the initial
        // seed included, asks for peers to trade with (a seed dials the
        // peers that announced before it: they cannot know it yet).
        let numwant = if event == AnnounceEvent::Stopped {
            0
        } else {
            self.config.numwant
        };
        let msg = Message::Announce {
            peer: self.id,
            event,
            left: self.bytes_left(),
            uploaded: self.stats.uploaded,
            downloaded: self.stats.downloaded,
            numwant,
        };
        self.outbox.event(Event::Announced { event, numwant });
        self.outbox.send(self.tracker, msg);
    }

    /// Asks the tracker for more peers soon if we are short of neighbours.
    fn maybe_reannounce(&mut self, now: Time) {
        if self.gone || self.completed || !neighbours::is_short(self.remotes.len(), self.config.max_peers) {
            return;
        }
        let at = self.last_announce.map_or(now, |t| (t + MIN_REANNOUNCE).max(now));
        let next = self.timers.get(Timer::Announce);
        if next.is_none_or(|n| n > at) {
            self.timers.set(Timer::Announce, at);
        }
    }

    /// Whether some neighbour that unchokes us holds a piece we lack.
    fn has_source(&self) -> bool {
        self.remotes.values().any(|r| r.wanted > 0 && !r.peer_choking)
    }

    /// Whether we lack pieces, no neighbour could send us one now, and we
    /// hold fewer neighbours than we dial ourselves with nobody left to try:
    /// only the tracker can name a source.
    fn starving(&self) -> bool {
        !self.gone
            && !self.stopped
            && neighbours::is_starving(
                self.completed,
                neighbours::is_short(self.remotes.len() + self.connecting.len(), self.config.max_peers),
                !self.candidates.is_empty(),
                self.has_source(),
            )
    }

    /// A source may have gone (a neighbour left, choked us, or has nothing
    /// more for us): look again shortly after the last announce, in case we
    /// are starving.
    fn check_starving(&mut self, now: Time) {
        let announcing = self.pending_announce.is_some() || self.unanswered.is_some();
        if self.gone || self.completed || announcing || self.timers.get(Timer::Starving).is_some() {
            // An announce on its way checks again when answered.
            return;
        }
        let at = neighbours::starving_look_at(now, self.last_announce, self.starving_delay);
        self.timers.set(Timer::Starving, at);
    }

    /// [`Timer::Starving`]: still without a source, ask the tracker (and
    /// look again after twice as long); with one, back to the short delay.
    fn on_starving_timer(&mut self, now: Time) {
        if !self.starving() {
            self.starving_delay = neighbours::STARVING_REANNOUNCE;
            return;
        }
        self.announce(AnnounceEvent::Periodic, now);
        self.starving_delay =
            neighbours::next_starving_delay(self.starving_delay, self.config.announce_interval);
        self.timers.set(Timer::Starving, now + self.starving_delay);
    }

    /// Opens connections to tracker-supplied peers while we are short of
    /// our dialling quota ([`neighbours`]), counting attempts in flight.
    fn connect_more(&mut self) {
        while neighbours::is_short(self.remotes.len() + self.connecting.len(), self.config.max_peers) {
            let Some(p) = self.candidates.pop() else {
                return;
            };
            if p == self.id
                || p == self.tracker
                || self.remotes.contains_key(&p)
                || self.connecting.contains(&p)
            {
                continue;
            }
            self.connecting.insert(p);
            self.outbox.command(Command::Connect { peer: p });
        }
    }

    // ----- choking -------------------------------------------------------

    /// Whether `r` may get an unchoke slot.
    fn eligible(&self, r: &Remote) -> bool {
        r.eligible(self.is_super_seeding())
    }

    fn unchoke(&mut self, peer: NodeId) {
        let Some(r) = self.remotes.get_mut(&peer) else {
            return;
        };
        if !r.am_choking {
            return;
        }
        r.am_choking = false;
        r.last_request = self.now;
        self.outbox.send(peer, Message::Unchoke);
        self.outbox.event(Event::Unchoked { peer });
        self.offer(peer);
    }

    fn choke(&mut self, peer: NodeId) {
        let Some(r) = self.remotes.get_mut(&peer) else {
            return;
        };
        if r.am_choking {
            return;
        }
        r.am_choking = true;
        self.outbox.send(peer, Message::Choke);
        self.outbox.event(Event::Choked { peer });
        self.uploads.choked(peer);
    }

    /// Super-seeding: offer `peer` new pieces up to its quota.
    fn offer(&mut self, peer: NodeId) {
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        let Some(r) = self.remotes.get(&peer) else {
            return;
        };
        for piece in ss.top_up(peer, &r.have, &mut self.rng) {
            self.outbox.send(peer, Message::Have { piece });
        }
    }

    /// The regular rechoke, every `rechoke_interval` (and, with `rotate`,
    /// the optimistic rotation every `optimistic_interval`).
    fn rechoke(&mut self, now: Time, rotate: bool) {
        let seeding = self.download.is_complete();
        let mut candidates = Vec::new();
        let mut protected = Vec::new();
        for r in self.remotes.values_mut() {
            r.snubbed = is_snubbed(r.am_interested, now - r.last_progress, self.config.snub_timeout);
        }
        for (&peer, r) in &self.remotes {
            if !self.eligible(r) {
                continue;
            }
            if self
                .super_seed
                .as_ref()
                .is_some_and(|s| s.has_unfinished_offer(peer))
            {
                protected.push(peer);
            }
            candidates.push(Candidate::tit_for_tat(
                peer,
                seeding,
                r.up_window,
                r.down_window,
                r.snubbed,
            ));
        }
        let mut unchoke = self.choker.rechoke(&candidates, rotate, &mut self.rng);
        unchoke.extend(protected);
        let peers: Vec<NodeId> = self.remotes.keys().copied().collect();
        for peer in peers {
            if unchoke.contains(&peer) {
                self.unchoke(peer);
            } else {
                self.choke(peer);
            }
            if let Some(r) = self.remotes.get_mut(&peer) {
                r.down_window = 0;
                r.up_window = 0;
            }
        }
        // A chosen neighbour that leaves its slot idle does not keep
        // another waiting.
        self.fill_slots();
    }

    /// Whether unchoked `peer` leaves its slot idle ([`IDLE_SLOT`]).
    fn is_idle(&self, peer: NodeId, r: &Remote) -> bool {
        !r.am_choking
            && r.in_transport == 0
            && !self.uploads.has_work_for(peer)
            && self.now.saturating_since(r.last_request) >= IDLE_SLOT
    }

    /// Fills unchoke slots that fell free since the last rechoke, or that
    /// their neighbours leave idle.
    fn fill_slots(&mut self) {
        let busy = self
            .remotes
            .iter()
            .filter(|(p, r)| !r.am_choking && !self.is_idle(**p, r))
            .count() as u32;
        let super_seeding = self.is_super_seeding();
        let waits = |r: &Remote| r.am_choking && !r.snubbed && r.eligible(super_seeding);
        let waiting = self.remotes.values().filter(|r| waits(r)).count();
        if waiting == 0 {
            return;
        }
        let remotes = &self.remotes;
        let qualify = |p: &NodeId| remotes.get(p).is_some_and(waits);
        let mut peers: Vec<NodeId> = remotes.keys().copied().collect();
        let chosen = self.choker.fill(busy, &mut peers, qualify, &mut self.rng);
        for &peer in &peers[..chosen] {
            self.unchoke(peer);
        }
        if chosen == waiting {
            return;
        }
        // Someone still waits: look again when a slot may have gone idle.
        if self.timers.get(Timer::IdleSlots).is_none() {
            self.timers.set(Timer::IdleSlots, self.now + IDLE_SLOT);
        }
    }

    // ----- downloading ---------------------------------------------------

    fn update_interest(&mut self, peer: NodeId, now: Time) {
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
    fn request_from(&mut self, peer: NodeId) {
        if self.stopped || self.gone || self.download.is_complete() {
            return;
        }
        let Some(r) = self.remotes.get(&peer) else {
            return;
        };
        if r.peer_choking || !r.am_interested {
            return;
        }
        while self.download.in_flight_to(peer) < self.config.pipeline {
            let Some(r) = self.remotes.get(&peer) else {
                return;
            };
            let picked = self
                .picker
                .next_block(&self.download, peer, &r.have, &mut self.rng);
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

    /// How long `peer` may send nothing while our requests wait there
    /// before they may move elsewhere.
    fn silence_limit(&self, peer: NodeId) -> std::time::Duration {
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
    fn is_silent(&self, peer: NodeId) -> bool {
        self.remotes
            .get(&peer)
            .and_then(|r| r.waiting_since)
            .is_some_and(|t| self.now.saturating_since(t) >= self.silence_limit(peer))
            && self.download.in_flight_to(peer) > 0
    }

    /// [`Timer::Silence`]: if a neighbour holding requests went silent, the
    /// neighbours that unchoke us and that we ask nothing of take over its
    /// blocks ([`Self::move_stalled_request`]). Then the timer is set for
    /// the next neighbour that could go silent.
    fn on_silence_timer(&mut self, now: Time) {
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
        if let Some(at) = next {
            self.timers.set(Timer::Silence, at);
        }
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
    fn move_stalled_request(&mut self, peer: NodeId) -> Option<crate::pieces::BlockRef> {
        if self.download.in_flight_to(peer) > 0 {
            return None;
        }
        let remote = &self.remotes.get(&peer)?.have;
        let block = self
            .picker
            .stalled_block(&self.download, peer, remote, |q| self.is_silent(q))?;
        let stalled: Vec<NodeId> = self.download.requested_from(block).collect();
        for q in stalled {
            self.download.cancel(block, q);
            self.stats.cancels_sent += 1;
            self.outbox.send(q, Message::Cancel(block));
        }
        Some(block)
    }

    fn request_all(&mut self) {
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

    fn on_block(&mut self, peer: NodeId, block: crate::pieces::BlockRef, now: Time) {
        if !self.layout.is_valid_block(block) {
            self.violation(peer, ViolationKind::InvalidBlock);
            return;
        }
        if let Some(r) = self.remotes.get_mut(&peer) {
            r.down_window += u64::from(block.len);
            r.last_progress = now;
            r.snubbed = false;
            r.waiting_since = Some(now);
            if let Some(last) = r.last_block {
                r.block_gap = now.saturating_since(last);
            }
            r.last_block = Some(now);
        }
        match self.download.receive(peer, block, &mut self.outbox) {
            BlockOutcome::Accepted {
                also_requested_from, ..
            } => {
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

    fn on_request(&mut self, peer: NodeId, block: crate::pieces::BlockRef, now: Time) {
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

    fn send_block(&mut self, peer: NodeId, block: crate::pieces::BlockRef) {
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
    fn send_blocks(&mut self, now: Time) {
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

    /// Every piece has left once: announce them all and seed normally.
    fn end_super_seeding(&mut self) {
        let peers: Vec<NodeId> = self.remotes.keys().copied().collect();
        for peer in peers {
            let Some(r) = self.remotes.get(&peer) else {
                continue;
            };
            let missing: Vec<u32> = (0..self.layout.pieces())
                .filter(|&p| !r.have.contains(p))
                .collect();
            for piece in missing {
                self.outbox.send(peer, Message::Have { piece });
            }
        }
        self.fill_slots();
    }

    fn on_verified(&mut self, piece: u32, now: Time) {
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

    fn on_complete(&mut self, now: Time) {
        self.completed = true;
        self.outbox.event(Event::DownloadComplete);
        match self.config.leave {
            Leave::AtCompletion => {
                self.leave(now);
                return;
            }
            Leave::After(d) => self.timers.set(Timer::Leave, now + d),
            Leave::Stay => {}
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

    /// Leaves the swarm: tells the tracker, closes every connection.
    fn leave(&mut self, now: Time) {
        if self.gone {
            return;
        }
        self.gone = true;
        self.outbox.event(Event::Left);
        if self.tracker_link == TrackerLink::Up {
            self.pending_announce = Some(AnnounceEvent::Stopped);
            self.flush_announce(now);
        }
        if self.tracker_link != TrackerLink::Down {
            self.outbox.command(Command::Disconnect { peer: self.tracker });
        }
        for p in self.remotes.keys().chain(self.connecting.iter()) {
            self.outbox.command(Command::Disconnect { peer: *p });
        }
        self.timers = Timers::default();
        self.candidates.clear();
    }

    fn violation(&mut self, peer: NodeId, reason: ViolationKind) {
        self.outbox.event(Event::ProtocolViolation { peer, reason });
        self.outbox.command(Command::Disconnect { peer });
    }

    fn drop_remote(&mut self, peer: NodeId, now: Time) {
        let Some(r) = self.remotes.remove(&peer) else {
            return;
        };
        self.outbox.event(Event::Disconnected { peer });
        self.picker.remove_peer(&r.have);
        self.picker.release(peer);
        self.download.forget_peer(peer);
        self.choker.forget(peer);
        self.uploads.disconnected(peer);
        self.send_blocks(now);
        if let Some(ss) = self.super_seed.as_mut() {
            // Its unfinished offers, and the pieces nobody else holds, go
            // back to the pool: offer them to the neighbours we unchoke
            // (nobody else would ever be offered them).
            ss.forget_peer(peer);
            for piece in r.have.iter() {
                if self.picker.availability(piece) == 0 {
                    ss.lost(piece);
                }
            }
            let unchoked: Vec<NodeId> = self
                .remotes
                .iter()
                .filter(|(_, r)| !r.am_choking)
                .map(|(&p, _)| p)
                .collect();
            for p in unchoked {
                self.offer(p);
            }
        }
        if !r.am_choking {
            self.fill_slots();
        }
        self.request_all();
        self.connect_more();
        self.maybe_reannounce(now);
        self.check_starving(now);
    }

    fn on_remote_have(&mut self, peer: NodeId, piece: u32, now: Time) {
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

    fn on_bitfield(&mut self, peer: NodeId, bits: Bitfield, now: Time) {
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
}

impl Node for Peer {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, now: Time) {
        self.now = now;
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
            match event {
                ConnectionEvent::Opened => {
                    self.tracker_link = TrackerLink::Up;
                    self.flush_announce(now);
                }
                ConnectionEvent::Failed | ConnectionEvent::Closed => {
                    self.tracker_link = TrackerLink::Down;
                    if let Some(event) = self.unanswered.take()
                        && self.pending_announce.is_none()
                    {
                        self.pending_announce = Some(event);
                    }
                    if !self.gone && self.pending_announce.is_some() {
                        let retry = self.tracker_retry.next_delay();
                        self.timers.set(Timer::Announce, now + retry);
                        self.outbox.event(Event::AnnounceFailed { retry });
                    }
                }
            }
            return;
        }
        match event {
            ConnectionEvent::Opened => {
                let outgoing = self.connecting.remove(&peer);
                if self.gone || self.stopped && !self.completed {
                    self.outbox.command(Command::Disconnect { peer });
                    return;
                }
                if self.remotes.contains_key(&peer) {
                    return; // both sides connected: one connection
                }
                if !outgoing
                    && !neighbours::accepts(self.remotes.len() + self.connecting.len(), self.config.max_peers)
                {
                    self.outbox.command(Command::Disconnect { peer });
                    return;
                }
                self.remotes.insert(
                    peer,
                    Remote {
                        have: Bitfield::new(self.layout.pieces()),
                        wanted: 0,
                        am_choking: true,
                        am_interested: false,
                        peer_choking: true,
                        peer_interested: false,
                        down_window: 0,
                        up_window: 0,
                        last_progress: now,
                        snubbed: false,
                        waiting_since: None,
                        last_block: None,
                        block_gap: std::time::Duration::ZERO,
                        last_request: now,
                        in_transport: 0,
                    },
                );
                self.outbox.event(Event::Connected { peer, outgoing });
                let bits = if self.is_super_seeding() {
                    Bitfield::new(self.layout.pieces())
                } else {
                    self.download.have().clone()
                };
                self.outbox.send(peer, Message::Bitfield(bits));
                if self.is_super_seeding() {
                    self.fill_slots();
                }
            }
            ConnectionEvent::Failed => {
                self.connecting.remove(&peer);
                self.connect_more();
                self.maybe_reannounce(now);
                self.check_starving(now);
            }
            ConnectionEvent::Closed => {
                self.connecting.remove(&peer);
                self.drop_remote(peer, now);
            }
        }
    }

    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time) {
        self.now = now;
        if self.gone {
            return;
        }
        if peer == self.tracker {
            match msg {
                Message::AnnounceReply { interval_s, peers } => {
                    self.unanswered = None;
                    self.outbox.event(Event::AnnounceAnswered {
                        peers: peers.iter().filter(|p| **p != self.id).count() as u32,
                    });
                    let interval = std::time::Duration::from_secs(u64::from(interval_s.max(1)));
                    self.timers.set(Timer::Announce, now + interval);
                    let mut fresh: Vec<NodeId> = peers
                        .into_iter()
                        .filter(|p| *p != self.id && !self.remotes.contains_key(p))
                        .collect();
                    // The tracker's order is random; try them in that order.
                    fresh.reverse();
                    if !fresh.is_empty() {
                        // Someone new to try: if it is no source either, ask
                        // again soon rather than later.
                        self.starving_delay = neighbours::STARVING_REANNOUNCE;
                    }
                    self.candidates = fresh;
                    self.tracker_retry.reset();
                    self.connect_more();
                    self.check_starving(now);
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
                if unchoked && !self.is_super_seeding() {
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
                self.picker.release(peer);
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
            StorageResult::Verified { piece } => self.on_verified(piece, now),
            StorageResult::Corrupt { piece } => {
                self.download.on_verified(piece, false);
                self.picker.piece_done(piece);
                self.outbox.event(Event::PieceCorrupt { piece });
                self.request_all();
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
mod tests {
    use super::*;
    use crate::pieces::BlockRef;

    const TRACKER: NodeId = NodeId(100);

    fn drain(p: &mut Peer) -> Vec<Output> {
        std::iter::from_fn(|| p.poll_output()).collect()
    }

    /// A peer dials at most half of `max_peers` itself, however many peers
    /// the tracker hands it, and accepts peers that dial it up to the full
    /// `max_peers`, attempts in flight included. Dialling them all left
    /// every peer refusing every other's attempts (N = 128, max_peers 40:
    /// 2.07 x the bound instead of 1.24).
    #[test]
    fn a_peer_dials_half_of_max_peers_and_keeps_the_rest_for_incoming() {
        let layout = PieceLayout::new(16 * 65_536, 65_536, 16_384).unwrap();
        let config = SwarmConfig {
            max_peers: 8,
            ..SwarmConfig::default()
        };
        let mut p = Peer::new(NodeId(1), TRACKER, layout, Bitfield::new(16), config, 7);
        p.handle_start(Time::ZERO);
        p.handle_connection(TRACKER, ConnectionEvent::Opened, Time::ZERO);
        drain(&mut p);
        let offered: Vec<NodeId> = (10..30).map(NodeId).collect();
        let reply = Message::AnnounceReply {
            interval_s: 120,
            peers: offered.clone(),
        };
        p.handle_message(TRACKER, reply, Time::ZERO);
        let dialled: Vec<NodeId> = drain(&mut p)
            .into_iter()
            .filter_map(|o| match o {
                Output::Command(Command::Connect { peer }) => Some(peer),
                _ => None,
            })
            .collect();
        assert_eq!(dialled.len(), 4, "half of max_peers 8: {dialled:?}");
        assert!(dialled.iter().all(|d| offered.contains(d)));

        // Peers that dial us take the other half; the ninth is refused.
        let mut refused = Vec::new();
        for k in 0..5 {
            let caller = NodeId(50 + k);
            p.handle_connection(caller, ConnectionEvent::Opened, Time::ZERO);
            for o in drain(&mut p) {
                match o {
                    Output::Command(Command::Disconnect { peer }) => refused.push(peer),
                    Output::Transmit(t) => {
                        assert_eq!(t.to, caller);
                        assert!(matches!(t.msg, Message::Bitfield(_)));
                    }
                    Output::Event(Event::Connected { peer, outgoing }) => {
                        assert_eq!((peer, outgoing), (caller, false));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(refused, [NodeId(54)], "4 dialled + 4 accepted = max_peers");
        assert_eq!(p.neighbours().count(), 4);

        // Our own attempts still complete: 8 neighbours in all.
        for &d in &dialled {
            p.handle_connection(d, ConnectionEvent::Opened, Time::ZERO);
        }
        assert_eq!(p.neighbours().count(), 8);
    }

    /// Each verified piece is announced to the neighbours in a fresh order.
    #[test]
    fn a_verified_piece_is_announced_in_a_random_order() {
        let layout = PieceLayout::new(4 * 16_384, 16_384, 16_384).unwrap();
        let mut p = Peer::new(
            NodeId(1),
            TRACKER,
            layout,
            Bitfield::new(4),
            SwarmConfig::default(),
            3,
        );
        p.handle_start(Time::ZERO);
        let remotes: Vec<NodeId> = (10..30).map(NodeId).collect();
        for &r in &remotes {
            p.handle_connection(r, ConnectionEvent::Opened, Time::ZERO);
            p.handle_message(r, Message::Unchoke, Time::ZERO);
        }
        // One neighbour holds everything and sends it all.
        let seed = remotes[0];
        p.handle_message(seed, Message::Bitfield(Bitfield::full(4)), Time::ZERO);
        drain(&mut p);
        let mut orders = Vec::new();
        for piece in 0..4 {
            let block = BlockRef {
                piece,
                offset: 0,
                len: 16_384,
            };
            p.handle_message(seed, Message::Block(block), Time::ZERO);
            // The sim answers VerifyPiece with Verified.
            p.handle_storage(StorageResult::Verified { piece }, Time::ZERO);
            let order: Vec<NodeId> = drain(&mut p)
                .into_iter()
                .filter_map(|o| match o {
                    Output::Transmit(crate::Transmit {
                        to,
                        msg: Message::Have { piece: h },
                    }) if h == piece => Some(to),
                    _ => None,
                })
                .collect();
            assert_eq!(order.len(), remotes.len() - 1, "every neighbour but the seed");
            orders.push(order);
        }
        let sorted = |o: &Vec<NodeId>| o.windows(2).all(|w| w[0] < w[1]);
        assert!(!orders.iter().all(sorted), "{orders:?}");
        assert!(orders.windows(2).any(|w| w[0] != w[1]), "{orders:?}");
    }

    /// With serial uploads, a block asked of a neighbour that has sent
    /// nothing for 50 ms moves to an unchoking neighbour we ask nothing of:
    /// asked there, cancelled at the silent one. Should the silent one send
    /// it anyway, the first copy to arrive cancels the other. Without serial
    /// uploads (every request answered at once) nothing moves.
    #[test]
    fn a_request_stuck_in_a_serial_uploaders_queue_moves_to_an_idle_neighbour() {
        let (a, b) = (NodeId(10), NodeId(11));
        let ms = |m: u64| Time::ZERO + std::time::Duration::from_millis(m);
        let to = |peer: NodeId, out: &[Output]| -> Vec<Message> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Transmit(t) if t.to == peer => Some(t.msg.clone()),
                    _ => None,
                })
                .filter(|m| matches!(m, Message::Request(_) | Message::Cancel(_)))
                .collect()
        };
        let to_b = |out: &[Output]| to(b, out);
        for serial in [true, false] {
            // Two pieces of four blocks: the pipeline asks A for all of one.
            let layout = PieceLayout::new(2 * 65_536, 65_536, 16_384).unwrap();
            let config = SwarmConfig {
                serial_uploads: serial,
                ..SwarmConfig::default()
            };
            let mut p = Peer::new(NodeId(1), TRACKER, layout, Bitfield::new(2), config, 5);
            p.handle_start(Time::ZERO);
            p.handle_connection(a, ConnectionEvent::Opened, Time::ZERO);
            p.handle_connection(b, ConnectionEvent::Opened, Time::ZERO);
            p.handle_message(a, Message::Bitfield(Bitfield::full(2)), Time::ZERO);
            p.handle_message(b, Message::Bitfield(Bitfield::new(2)), Time::ZERO);
            p.handle_message(a, Message::Unchoke, Time::ZERO);
            let asked_a: Vec<BlockRef> = drain(&mut p)
                .into_iter()
                .filter_map(|o| match o {
                    Output::Transmit(crate::Transmit {
                        to,
                        msg: Message::Request(r),
                    }) if to == a => Some(r),
                    _ => None,
                })
                .collect();
            assert_eq!(asked_a.len(), 4);
            let piece = asked_a[0].piece;
            assert!(asked_a.iter().all(|r| r.piece == piece), "{asked_a:?}");
            // B gets that piece (and only it) and unchokes us 30 ms in: A
            // may still be about to send.
            p.handle_message(b, Message::Have { piece }, Time::ZERO);
            p.handle_message(b, Message::Unchoke, ms(30));
            assert_eq!(
                to_b(&drain(&mut p)),
                [],
                "serial {serial}: A silent for 30 ms only"
            );
            // And again at 60 ms: A has sent nothing since it was asked.
            // The request moves: asked of B, withdrawn from A.
            p.handle_message(b, Message::Choke, ms(60));
            p.handle_message(b, Message::Unchoke, ms(60));
            let first = layout.block(piece, 0);
            let out = drain(&mut p);
            let (want_b, want_a) = if serial {
                (vec![Message::Request(first)], vec![Message::Cancel(first)])
            } else {
                (vec![], vec![])
            };
            assert_eq!(to_b(&out), want_b, "serial {serial}: A silent for 60 ms");
            assert_eq!(to(a, &out), want_a, "serial {serial}: withdrawn from A");
            // A had already handed it to its transport, and its copy
            // arrives first: it is kept, and B's is cancelled.
            p.handle_message(a, Message::Block(first), ms(70));
            let want = if serial {
                vec![Message::Cancel(first)]
            } else {
                vec![]
            };
            assert_eq!(to_b(&drain(&mut p)), want, "serial {serial}");
        }
    }

    /// A serial uploader serves first the waiting neighbour with the least
    /// to upload itself. A holds three pieces that nearly all our other
    /// neighbours hold too, B one piece none of them holds: B's uplink has
    /// work, A's hardly any, so A's piece goes first although A holds more
    /// (and X, holding nothing, before both).
    #[test]
    fn a_serial_uploader_serves_first_the_neighbour_whose_pieces_are_common() {
        let layout = PieceLayout::new(8 * 65_536, 65_536, 16_384).unwrap();
        let config = SwarmConfig {
            serial_uploads: true,
            ..SwarmConfig::default()
        };
        let mut p = Peer::new(NodeId(1), TRACKER, layout, Bitfield::full(8), config, 3);
        p.handle_start(Time::ZERO);
        let (x, a, b) = (NodeId(10), NodeId(11), NodeId(12));
        let bits = |set: &[u32]| Bitfield::of(8, set);
        let held = [(x, bits(&[])), (a, bits(&[1, 2, 3])), (b, bits(&[0]))];
        let fillers = (20..26).map(|k| (NodeId(k), bits(&[1, 2, 3])));
        for (peer, have) in held.iter().cloned().chain(fillers) {
            p.handle_connection(peer, ConnectionEvent::Opened, Time::ZERO);
            p.handle_message(peer, Message::Bitfield(have), Time::ZERO);
        }
        for peer in [x, a, b] {
            p.handle_message(peer, Message::Interested, Time::ZERO);
        }
        drain(&mut p);
        assert!([x, a, b].iter().all(|q| p.unchoked().contains(q)));
        // X asks first and is served at once; A and B ask while it is.
        for (peer, piece) in [(x, 7), (a, 5), (b, 6)] {
            for i in 0..4 {
                p.handle_message(peer, Message::Request(layout.block(piece, i)), Time::ZERO);
            }
        }
        let mut served = Vec::new();
        loop {
            let blocks: Vec<(NodeId, u32)> = drain(&mut p)
                .into_iter()
                .filter_map(|o| match o {
                    Output::Transmit(crate::Transmit {
                        to,
                        msg: Message::Block(blk),
                    }) => Some((to, blk.piece)),
                    _ => None,
                })
                .collect();
            if blocks.is_empty() {
                break;
            }
            for (to, piece) in blocks {
                served.push((to.0, piece));
                p.handle_sent(to, Time::ZERO);
            }
        }
        let pieces: Vec<(u32, u32)> = served.chunks(4).map(|c| c[0]).collect();
        assert!(
            served.chunks(4).all(|c| c.iter().all(|s| *s == c[0])),
            "{served:?}"
        );
        assert_eq!(pieces, [(10, 7), (11, 5), (12, 6)], "X, then A, then B");
    }

    /// A leecher with 8 neighbours that hold every piece but the one it
    /// has and all want it; four of them send it 5x more than the others.
    #[test]
    fn tit_for_tat_keeps_the_four_best_senders_and_rotates_the_optimistic_slot() {
        let layout = PieceLayout::new(64 * 65_536, 65_536, 16_384).unwrap();
        let mut have = Bitfield::new(64);
        have.insert(63); // something to trade
        let mut p = Peer::new(NodeId(1), TRACKER, layout, have, SwarmConfig::default(), 42);
        let remotes: Vec<NodeId> = (2..=9).map(NodeId).collect();
        p.handle_start(Time::ZERO);
        p.handle_connection(TRACKER, ConnectionEvent::Opened, Time::ZERO);
        let mut full_but_63 = Bitfield::full(64);
        full_but_63.remove(63);
        for &r in &remotes {
            p.handle_connection(r, ConnectionEvent::Opened, Time::ZERO);
            p.handle_message(r, Message::Bitfield(full_but_63.clone()), Time::ZERO);
            p.handle_message(r, Message::Interested, Time::ZERO);
        }
        drain(&mut p);
        assert_eq!(p.unchoked().len(), 5, "free slots are filled at once");
        let mut optimistic = Vec::new();
        for round in 1..=6u64 {
            let now = Time::from_secs(10 * round);
            for (k, &r) in remotes.iter().enumerate() {
                // The last four send 5 blocks per interval, the others 1
                // (duplicates count too: the rate is what crossed the link).
                let blocks = if k >= 4 { 5 } else { 1 };
                for _ in 0..blocks {
                    let block = BlockRef {
                        piece: k as u32,
                        offset: 0,
                        len: 16_384,
                    };
                    p.handle_message(r, Message::Block(block), now);
                }
            }
            // Every unchoked neighbour asks for something (a neighbour that
            // asks for nothing leaves its slot idle: another would be
            // unchoked on top of it).
            let ours = BlockRef {
                piece: 63,
                offset: 0,
                len: 16_384,
            };
            for r in p.unchoked() {
                p.handle_message(r, Message::Request(ours), now);
            }
            assert!(p.poll_timeout().is_some_and(|t| t <= now), "the rechoke is due");
            p.handle_timeout(now);
            drain(&mut p);
            let unchoked = p.unchoked();
            for &r in &remotes[4..] {
                assert!(
                    unchoked.contains(&r),
                    "round {round}: {r} is among the 4 best: {unchoked:?}"
                );
            }
            assert_eq!(unchoked.len(), 5, "4 regular + 1 optimistic");
            let opt = p.optimistic().unwrap();
            assert!(remotes[..4].contains(&opt));
            optimistic.push(opt);
        }
        // The optimistic unchoke moves at 30 s and 60 s only.
        assert_eq!(optimistic[0], optimistic[1]);
        assert_ne!(optimistic[1], optimistic[2], "rotated at 30 s");
        assert_eq!(optimistic[2], optimistic[3]);
        assert_eq!(optimistic[3], optimistic[4]);
        assert_ne!(optimistic[4], optimistic[5], "rotated at 60 s");
    }
}
