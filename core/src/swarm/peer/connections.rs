//! The peer's connections with its neighbours: dialling the candidates the
//! tracker named, accepting or refusing connections, dropping a neighbour
//! that went away or broke the protocol, and leaving the swarm.

use super::{Peer, Remote, TrackerLink};
use crate::event::{Event, ViolationKind};
use crate::message::{AnnounceEvent, Message};
use crate::node::{Command, ConnectionEvent, NodeId};
use crate::pieces::Bitfield;
use crate::swarm::neighbours;
use crate::time::Time;
use crate::timers::Timers;

impl Peer {
    /// Opens connections to tracker-supplied peers while we are short of
    /// our dialling quota ([`neighbours`]), counting attempts in flight.
    pub(super) fn connect_more(&mut self) {
        while neighbours::is_short(self.remotes.len() + self.connecting.len(), self.config.max_peers) {
            let Some(p) = self.candidates.pop() else {
                return;
            };
            if p == self.id
                || p == self.tracker
                || self.blame.is_banned(p)
                || self.remotes.contains_key(&p)
                || self.connecting.contains(&p)
            {
                continue;
            }
            self.connecting.insert(p);
            self.outbox.command(Command::Connect { peer: p });
        }
    }

    /// Leaves the swarm: tells the tracker, closes every connection.
    pub(super) fn leave(&mut self, now: Time) {
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

    pub(super) fn violation(&mut self, peer: NodeId, reason: ViolationKind) {
        self.outbox.event(Event::ProtocolViolation { peer, reason });
        self.outbox.command(Command::Disconnect { peer });
    }

    pub(super) fn drop_remote(&mut self, peer: NodeId, now: Time) {
        let Some(r) = self.remotes.remove(&peer) else {
            return;
        };
        self.outbox.event(Event::Disconnected { peer });
        self.picker.remove_peer(&r.have);
        self.download.forget_peer(peer);
        self.picker.release(peer, &self.download);
        self.choker.forget(peer);
        self.uploads.disconnected(peer);
        self.send_blocks(now);
        if let Some(ss) = self.super_seed.as_mut() {
            // Its unfinished offers, and the pieces nobody else holds, go
            // back to the pool: offer them to the neighbours we unchoke
            // (nobody else would ever be offered them).
            let picker = &self.picker;
            ss.on_departure(peer, r.have.iter(), |piece| picker.availability(piece) > 0);
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

    /// The connection with neighbour `peer` opened, failed or closed.
    pub(super) fn on_connection(&mut self, peer: NodeId, event: ConnectionEvent, now: Time) {
        match event {
            ConnectionEvent::Opened => {
                let outgoing = self.connecting.remove(&peer);
                if self.gone || self.stopped && !self.completed || self.blame.is_banned(peer) {
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
                        requests_paused: None,
                        pauses: 0,
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
}
