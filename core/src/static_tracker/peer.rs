//! The static-tracker peer: a downloader that also serves the pieces the
//! tracker file gives it (see the [module documentation](super)).

use std::collections::BTreeMap;

use super::deferred::Deferred;
use super::sources::Sources;
use super::{StaticTrackerConfig, TrackerFile};
use crate::backoff::Backoff;
use crate::download::Download;
use crate::event::{Event, ViolationKind};
use crate::message::Message;
use crate::node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
use crate::pieces::{Bitfield, BlockRef, PieceLayout};
use crate::pipeline::request_blocks;
use crate::time::Time;
use crate::timers::Timers;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    ReconnectServer,
    /// Dial an owner again whose connection was refused.
    ReconnectOwner(NodeId),
    /// Look for owners that stopped sending (hung, or cut off).
    StallCheck,
}

/// Dials of an owner that may be refused before its pieces are fetched
/// from the server instead (waiting 1x, 2x, 4x `reconnect_min` between).
const OWNER_DIALS: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Connecting,
    Up,
}

/// A static-tracker peer: fetches its own pieces from the server and every
/// other piece from its owner, serves its own pieces to every peer that
/// asks (fetching them first if it must), and falls back to the server for
/// the pieces of an owner it loses.
///
/// Drive it like any [`Node`]; outputs come out in the order they must be
/// carried out.
#[derive(Debug)]
pub struct Peer {
    id: NodeId,
    server: NodeId,
    config: StaticTrackerConfig,
    tracker: TrackerFile,
    download: Download,
    sources: Sources,
    deferred: Deferred,
    /// Connections open or opening; a peer absent here is not connected.
    links: BTreeMap<NodeId, Link>,
    backoff: Backoff,
    /// For each owner with requests in flight: when it last sent a block, or
    /// when we started waiting on it.
    progress: BTreeMap<NodeId, Time>,
    /// Refused dials per owner since it was last reached.
    refused: BTreeMap<NodeId, u32>,
    stopped: bool,
    announced_complete: bool,
    timers: Timers<Timer>,
    outbox: Outbox,
}

impl Peer {
    /// Peer `id` of a run whose file is `layout`, held in full by `server`
    /// and assigned to owners by `tracker`; it already holds the verified
    /// pieces `have` (empty for a fresh start, the on-disk state after a
    /// restart).
    ///
    /// # Panics
    /// If `tracker` or `have` do not list exactly the layout's pieces.
    pub fn new(
        id: NodeId,
        server: NodeId,
        layout: PieceLayout,
        tracker: TrackerFile,
        have: Bitfield,
        config: StaticTrackerConfig,
    ) -> Self {
        assert_eq!(
            tracker.pieces(),
            layout.pieces(),
            "tracker file does not fit the layout"
        );
        let sources = Sources::new(id, server, &tracker, &have);
        Peer {
            id,
            server,
            config,
            tracker,
            download: Download::new(layout, have),
            sources,
            deferred: Deferred::default(),
            links: BTreeMap::new(),
            backoff: Backoff::new(config.reconnect_min, config.reconnect_max),
            progress: BTreeMap::new(),
            refused: BTreeMap::new(),
            stopped: false,
            announced_complete: false,
            timers: Timers::default(),
            outbox: Outbox::default(),
        }
    }

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        self.download.have()
    }

    /// The peer this one fetches `piece` from (its owner, or the server for
    /// its own pieces and after a fallback); `None` once the piece is held.
    pub fn source_of(&self, piece: u32) -> Option<NodeId> {
        self.sources.source_of(piece)
    }

    fn connect(&mut self, peer: NodeId) {
        self.links.insert(peer, Link::Connecting);
        self.outbox.command(Command::Connect { peer });
    }

    /// Connects to the server if something must come from it and no
    /// connection or retry is under way.
    fn ensure_server(&mut self) {
        if !self.stopped
            && self.sources.wants_from(self.server)
            && !self.links.contains_key(&self.server)
            && !self.timers.is_set(Timer::ReconnectServer)
        {
            self.connect(self.server);
        }
    }

    /// Keeps `pipeline` requests outstanding to `source`, if it is up.
    fn fill(&mut self, source: NodeId) {
        if self.stopped || self.links.get(&source) != Some(&Link::Up) {
            return;
        }
        request_blocks(
            &mut self.download,
            source,
            self.config.pipeline,
            self.sources.pieces_from(source),
            &mut self.outbox,
        );
    }

    /// Gives up on `owner` as a source: its pieces come from the server.
    fn give_up(&mut self, owner: NodeId) {
        if !self.sources.give_up(owner) {
            return;
        }
        for block in self.download.forget_peer(owner) {
            if self.links.get(&owner) == Some(&Link::Up) {
                self.outbox.send(owner, Message::Cancel(block));
            }
        }
        self.ensure_server();
        self.fill(self.server);
    }

    /// Gives up on every owner that has sent nothing for `stall_timeout`
    /// while we waited on it: a hung or cut-off owner must not hold up the
    /// download, so its pieces come from the server instead. (An owner that
    /// is slow because it is itself waiting on a busy server looks the same;
    /// falling back costs the server some upload, never correctness.)
    fn check_stalls(&mut self, now: Time) {
        if self.announced_complete || self.stopped {
            return;
        }
        let owners: Vec<NodeId> = self.links.keys().copied().filter(|&p| p != self.server).collect();
        for owner in owners {
            if self.download.in_flight_to(owner) == 0 {
                self.progress.remove(&owner);
                continue;
            }
            let since = *self.progress.entry(owner).or_insert(now);
            if now.saturating_since(since) >= self.config.stall_timeout {
                self.progress.remove(&owner);
                self.outbox.event(Event::SourceLost { peer: owner });
                self.give_up(owner);
                self.outbox.command(Command::Disconnect { peer: owner });
            }
        }
        self.timers
            .set(Timer::StallCheck, now + self.config.stall_timeout / 4);
    }

    fn finish_if_complete(&mut self) -> bool {
        if !self.download.is_complete() {
            return false;
        }
        if !self.announced_complete {
            self.announced_complete = true;
            self.outbox.event(Event::DownloadComplete);
            self.timers.cancel(Timer::ReconnectServer);
            // Leave the server; keep every peer connection open, since
            // other peers may still need this peer's pieces.
            if self.links.contains_key(&self.server) {
                self.outbox.command(Command::Disconnect { peer: self.server });
            }
        }
        true
    }

    fn violation(&mut self, peer: NodeId, reason: ViolationKind) {
        self.outbox.event(Event::ProtocolViolation { peer, reason });
        self.outbox.command(Command::Disconnect { peer });
    }

    fn on_request(&mut self, peer: NodeId, block: BlockRef) {
        if !self.download.layout().is_valid_block(block) {
            return self.violation(peer, ViolationKind::InvalidBlock);
        }
        if peer == self.server {
            return self.violation(peer, ViolationKind::UnexpectedMessage);
        }
        if self.stopped {
            return;
        }
        if self.download.have().contains(block.piece) {
            self.outbox.send(peer, Message::Block(block));
        } else if self.tracker.owner_of(block.piece) == Some(self.id) {
            self.deferred.defer(peer, block);
            self.sources.awaited(block.piece);
            self.ensure_server();
            self.fill(self.server);
        } else {
            self.violation(peer, ViolationKind::RequestedMissingPiece);
        }
    }

    fn on_block(&mut self, peer: NodeId, block: BlockRef) {
        if !self.download.layout().is_valid_block(block) {
            return self.violation(peer, ViolationKind::InvalidBlock);
        }
        let _ = self.download.receive(peer, block, &mut self.outbox);
        self.fill(peer);
    }

    fn on_verified(&mut self, piece: u32) {
        self.download.on_verified(piece, true);
        self.sources.done(piece);
        self.outbox.event(Event::PieceVerified { piece });
        for (peer, block) in self.deferred.take(piece) {
            self.outbox.send(peer, Message::Block(block));
        }
        self.finish_if_complete();
    }

    fn on_corrupt(&mut self, piece: u32) {
        let blamed = self.download.on_verified(piece, false);
        self.outbox.event(Event::PieceCorrupt { piece });
        // An owner that sent a bad piece is not asked again; the server is
        // the reference copy and is simply asked again.
        for source in blamed {
            self.give_up(source);
        }
        if let Some(source) = self.sources.source_of(piece) {
            self.fill(source);
        }
    }

    fn stop(&mut self, piece: u32, reason: String) {
        self.download.drop_piece(piece);
        self.stopped = true;
        self.deferred.clear();
        self.timers.cancel(Timer::ReconnectServer);
        self.outbox.event(Event::StorageFailed { piece, reason });
        // Peers waiting on this one hear the close and fall back.
        let peers: Vec<NodeId> = self.links.keys().copied().collect();
        for peer in peers {
            self.outbox.command(Command::Disconnect { peer });
        }
    }
}

impl Node for Peer {
    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_start(&mut self, now: Time) {
        if self.finish_if_complete() {
            return;
        }
        self.timers
            .set(Timer::StallCheck, now + self.config.stall_timeout / 4);
        self.ensure_server();
        let owners: Vec<NodeId> = self.sources.owners().collect();
        for owner in owners {
            if !self.links.contains_key(&owner) {
                self.connect(owner);
            }
        }
    }

    fn handle_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        match event {
            ConnectionEvent::Opened => {
                self.links.insert(peer, Link::Up);
                self.refused.remove(&peer);
                if peer == self.server {
                    self.backoff.reset();
                    if self.announced_complete || self.stopped {
                        self.outbox.command(Command::Disconnect { peer });
                        return;
                    }
                }
                self.fill(peer);
            }
            ConnectionEvent::Failed | ConnectionEvent::Closed => {
                self.links.remove(&peer);
                self.download.forget_peer(peer);
                self.deferred.forget_peer(peer);
                if self.announced_complete || self.stopped {
                    return;
                }
                if peer == self.server {
                    if self.sources.wants_from(peer) {
                        self.outbox.event(Event::SourceLost { peer });
                        self.timers
                            .set(Timer::ReconnectServer, now + self.backoff.next_delay());
                    }
                } else if self.sources.wants_from(peer) && !self.sources.is_lost(peer) {
                    // An owner that refuses may simply not be up yet (peers
                    // start at different times): dial again a few times
                    // before falling back to the server for good.
                    let refused = self.refused.entry(peer).or_default();
                    *refused += 1;
                    if event == ConnectionEvent::Failed && *refused < OWNER_DIALS {
                        let delay = self.config.reconnect_min * 2u32.pow(*refused - 1);
                        self.timers.set(Timer::ReconnectOwner(peer), now + delay);
                        return;
                    }
                    self.outbox.event(Event::SourceLost { peer });
                    self.give_up(peer);
                }
            }
        }
    }

    fn handle_message(&mut self, peer: NodeId, msg: Message, now: Time) {
        if let (Message::Block(_), Some(at)) = (&msg, self.progress.get_mut(&peer)) {
            *at = now;
        }
        match msg {
            Message::Request(block) => self.on_request(peer, block),
            Message::Block(block) => self.on_block(peer, block),
            Message::Cancel(block) => self.deferred.cancel(peer, block),
            Message::Interested | Message::NotInterested => {}
            _ => self.violation(peer, ViolationKind::UnexpectedMessage),
        }
    }

    fn handle_storage(&mut self, result: StorageResult, _now: Time) {
        match result {
            StorageResult::Verified { piece } => self.on_verified(piece),
            StorageResult::Corrupt { piece } => self.on_corrupt(piece),
            StorageResult::WriteFailed { piece, reason } => self.stop(piece, reason),
            // A piece comes from its owner or the server, whole: never asked for.
            StorageResult::Digests { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        for timer in self.timers.expire(now) {
            match timer {
                Timer::ReconnectServer => self.ensure_server(),
                Timer::StallCheck => self.check_stalls(now),
                Timer::ReconnectOwner(owner) => {
                    if !self.stopped
                        && !self.links.contains_key(&owner)
                        && self.sources.wants_from(owner)
                        && !self.sources.is_lost(owner)
                    {
                        self.connect(owner);
                    }
                }
            }
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }
}
