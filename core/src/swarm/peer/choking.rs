//! Whom the peer uploads to: unchoking and choking, the regular rechoke,
//! filling slots that fall free or idle, and the super-seed's offers.

use super::{Peer, Remote, Timer};
use crate::event::Event;
use crate::message::Message;
use crate::node::NodeId;
use crate::swarm::choker::{Candidate, is_snubbed, slots_open_at};
use crate::swarm::super_seed::is_protected;
use crate::time::Time;

/// An unchoked neighbour that has asked us for nothing for this long, and
/// has nothing on its way from us, leaves its unchoke slot idle: another
/// interested neighbour gets unchoked on top of it, so that our uplink
/// does not idle while someone waits (a neighbour with requests elsewhere,
/// or with nothing it wants now, may hold a slot for a whole rechoke).
const IDLE_SLOT: std::time::Duration = std::time::Duration::from_millis(500);

impl Peer {
    /// Whether `r` may get an unchoke slot.
    pub(super) fn eligible(&self, r: &Remote) -> bool {
        r.eligible(self.is_super_seeding())
    }

    pub(super) fn unchoke(&mut self, peer: NodeId) {
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

    pub(super) fn choke(&mut self, peer: NodeId) {
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
    pub(super) fn offer(&mut self, peer: NodeId) {
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
    pub(super) fn rechoke(&mut self, now: Time, rotate: bool) {
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
            if is_protected(self.super_seed.as_ref(), peer) {
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
    pub(super) fn is_idle(&self, peer: NodeId, r: &Remote) -> bool {
        !r.am_choking
            && r.in_transport == 0
            && !self.uploads.has_work_for(peer)
            && self.now.saturating_since(r.last_request) >= IDLE_SLOT
    }

    /// Fills unchoke slots that fell free since the last rechoke, or that
    /// their neighbours leave idle.
    pub(super) fn fill_slots(&mut self) {
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
        let open = slots_open_at(self.started);
        if self.now < open {
            // Slots stay shut while the swarm connects; then they go at
            // random among everyone waiting, not to whoever was first.
            if self.timers.get(Timer::IdleSlots).is_none() {
                self.timers.set(Timer::IdleSlots, open);
            }
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

    /// Every piece has left once: announce them all and seed normally.
    pub(super) fn end_super_seeding(&mut self) {
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
}
