//! The peer and its tracker: announces (started, completed, stopped,
//! periodic), retries of a tracker it cannot reach, and early re-announces
//! when it is short of neighbours or has no source.

use super::{Peer, Timer, TrackerLink};
use crate::event::Event;
use crate::message::{AnnounceEvent, Message};
use crate::node::{Command, ConnectionEvent, NodeId};
use crate::swarm::neighbours;
use crate::time::Time;

/// The first retry of an announce that did not reach the tracker comes
/// after this long; each further failure doubles it, up to
/// [`TRACKER_RETRY_MAX`].
pub(super) const TRACKER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
pub(super) const TRACKER_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

impl Peer {
    pub(super) fn bytes_left(&self) -> u64 {
        let have = self.download.have();
        (0..self.layout.pieces())
            .filter(|&p| !have.contains(p))
            .map(|p| u64::from(self.layout.piece_size(p)))
            .sum()
    }

    pub(super) fn announce(&mut self, event: AnnounceEvent, now: Time) {
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

    pub(super) fn flush_announce(&mut self, now: Time) {
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
    pub(super) fn maybe_reannounce(&mut self, now: Time) {
        if self.gone
            || !neighbours::reannounces_when_short(self.completed, self.remotes.len(), self.config.max_peers)
        {
            return;
        }
        let at = neighbours::reannounce_at(now, self.last_announce);
        let next = self.timers.get(Timer::Announce);
        if next.is_none_or(|n| n > at) {
            self.timers.set(Timer::Announce, at);
        }
    }

    /// Whether some neighbour that unchokes us holds a piece we lack.
    pub(super) fn has_source(&self) -> bool {
        self.remotes.values().any(|r| r.wanted > 0 && !r.peer_choking)
    }

    /// Whether we lack pieces, no neighbour could send us one now, and we
    /// hold fewer neighbours than we dial ourselves with nobody left to try:
    /// only the tracker can name a source.
    pub(super) fn starving(&self) -> bool {
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
    pub(super) fn check_starving(&mut self, now: Time) {
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
    pub(super) fn on_starving_timer(&mut self, now: Time) {
        if !self.starving() {
            self.starving_delay = neighbours::STARVING_REANNOUNCE;
            return;
        }
        self.announce(AnnounceEvent::Periodic, now);
        self.starving_delay =
            neighbours::next_starving_delay(self.starving_delay, self.config.announce_interval);
        self.timers.set(Timer::Starving, now + self.starving_delay);
    }

    /// The tracker connection opened (the pending announce goes out) or
    /// failed or closed (an unanswered announce is sent again after the
    /// backoff).
    pub(super) fn on_tracker_connection(&mut self, event: ConnectionEvent, now: Time) {
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
    }

    /// The tracker answered: the next announce is due after `interval_s`,
    /// and the peers it named are the candidates to dial.
    pub(super) fn on_announce_reply(&mut self, interval_s: u32, peers: Vec<NodeId>, now: Time) {
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
}
