//! A liveness check for the message model: no downloader waits long while
//! another running host holds a piece it lacks and has upload to spare.
//!
//! A swarm may leave a peer idle for many reasons the protocol controls —
//! it does not know a seed that has pieces (the tracker never named it, or
//! named it before it arrived), every source it knew left, its requests sit
//! with a neighbour that hung, every uploader with room chokes it until the
//! next rechoke. Each of those looks the same from outside: a peer that
//! lacks pieces receives nothing while somebody who could serve it idles.
//! [`Liveness`] measures exactly that, between every two instants of the
//! simulation, so a property test can ask "did any peer starve for longer
//! than a bound?" over random scenarios.
//!
//! A host counts as a possible source while it runs (started, not crashed,
//! not hung, its link up, not left the swarm) and its uplink carries less
//! than half its capacity. A downloader counts as waiting while it runs,
//! lacks pieces and no payload flows into it at a positive rate. Whether the
//! two are connected does not matter: finding sources is the protocol's job.

use std::time::Duration;

use peerlab_core::{Bitfield, Event, NodeId, Time};

/// A downloader that received nothing for longer than the bound while a
/// running host with upload to spare held a piece it lacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Starvation {
    /// The downloader.
    pub host: NodeId,
    /// When it began to wait with a source available.
    pub from: Time,
    /// When that ended: it received again, it stopped running, no source
    /// was left, or the run ended.
    pub to: Time,
    /// A host that could have served it when the wait began.
    pub source: NodeId,
}

impl Starvation {
    /// How long it lasted.
    pub fn length(&self) -> Duration {
        self.to - self.from
    }
}

/// What the engine knows of one host at an instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostNow {
    /// Started, not crashed, not hung, link up.
    pub running: bool,
    /// Payload flows into it at a positive rate.
    pub receiving: bool,
    /// Its uplink carries less than half its capacity.
    pub spare_upload: bool,
}

/// Follows one run; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Liveness {
    bound: Duration,
    /// Which hosts download (the others only serve, or track).
    downloader: Vec<bool>,
    /// Which hosts can serve pieces (not the tracker).
    server: Vec<bool>,
    /// Verified pieces of each host (kept across crashes: they are on disk).
    held: Vec<Bitfield>,
    /// Hosts that left the swarm (until they start again).
    left: Vec<bool>,
    /// Per downloader: since when it waits with a source available, and
    /// that source.
    since: Vec<Option<(Time, NodeId)>>,
    found: Vec<Starvation>,
}

impl Liveness {
    /// A check with `bound` for hosts whose roles are given: `downloader`
    /// (lacks the file at the start), `serves` (may hold pieces), with
    /// `pieces` pieces in the file; `full` hosts start with every piece.
    pub fn new(
        bound: Duration,
        downloader: Vec<bool>,
        serves: Vec<bool>,
        full: Vec<bool>,
        pieces: u32,
    ) -> Self {
        let n = downloader.len();
        Liveness {
            bound,
            held: full
                .iter()
                .map(|&f| {
                    if f {
                        Bitfield::full(pieces)
                    } else {
                        Bitfield::new(pieces)
                    }
                })
                .collect(),
            downloader,
            server: serves,
            left: vec![false; n],
            since: vec![None; n],
            found: Vec::new(),
        }
    }

    /// Host `node` reported `event`.
    pub fn on_event(&mut self, node: u32, event: &Event) {
        let i = node as usize;
        match event {
            Event::PieceVerified { piece } => {
                self.held[i].insert(*piece);
            }
            Event::Left => self.left[i] = true,
            _ => {}
        }
    }

    /// Host `node` (re)started.
    pub fn on_start(&mut self, node: u32) {
        self.left[node as usize] = false;
    }

    /// The state of every host from `now` until the next instant.
    pub fn step(&mut self, now: Time, hosts: &[HostNow]) {
        let left = &self.left;
        let live = |i: usize, h: &HostNow| h.running && !left[i];
        let mut sources = vec![None; hosts.len()];
        for (i, p) in hosts.iter().enumerate() {
            let waiting = self.downloader[i] && live(i, p) && !self.held[i].is_full() && !p.receiving;
            let source = if waiting {
                hosts.iter().enumerate().position(|(j, q)| {
                    j != i
                        && self.server[j]
                        && live(j, q)
                        && q.spare_upload
                        && self.held[j].iter_minus(&self.held[i]).next().is_some()
                })
            } else {
                None
            };
            sources[i] = source;
        }
        for (i, source) in sources.into_iter().enumerate() {
            match (self.since[i], source) {
                (None, Some(q)) => self.since[i] = Some((now, NodeId(q as u32))),
                (Some(_), None) => self.close(i, now),
                _ => {}
            }
        }
    }

    fn close(&mut self, i: usize, now: Time) {
        if let Some((from, source)) = self.since[i].take()
            && now - from > self.bound
        {
            self.found.push(Starvation {
                host: NodeId(i as u32),
                from,
                to: now,
                source,
            });
        }
    }

    /// The run ended at `now`: every starvation longer than the bound, in
    /// the order they ended.
    pub fn finish(mut self, now: Time) -> Vec<Starvation> {
        for i in 0..self.since.len() {
            self.close(i, now);
        }
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Time {
        Time::ZERO + Duration::from_millis(ms)
    }

    const IDLE: HostNow = HostNow {
        running: true,
        receiving: false,
        spare_upload: true,
    };

    /// Host 0 holds everything and idles, host 1 waits: a starvation from
    /// the first step until host 1 receives, counted only past the bound.
    #[test]
    fn a_wait_counts_while_a_source_idles_and_only_past_the_bound() {
        let new = || {
            Liveness::new(
                Duration::from_secs(1),
                vec![false, true],
                vec![true, true],
                vec![true, false],
                4,
            )
        };
        let receiving = HostNow {
            receiving: true,
            ..IDLE
        };
        let mut l = new();
        l.step(at(0), &[IDLE, IDLE]);
        l.step(at(1500), &[IDLE, receiving]);
        let found = l.finish(at(2000));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].host, found[0].source), (NodeId(1), NodeId(0)));
        assert_eq!(found[0].length(), Duration::from_millis(1500));

        let mut l = new();
        l.step(at(0), &[IDLE, IDLE]);
        l.step(at(900), &[IDLE, receiving]);
        assert!(l.finish(at(5000)).is_empty(), "0.9 s is within the bound");

        // A busy or hung source, or a host that left, is no source.
        for source in [
            HostNow {
                spare_upload: false,
                ..IDLE
            },
            HostNow {
                running: false,
                ..IDLE
            },
        ] {
            let mut l = new();
            l.step(at(0), &[source, IDLE]);
            assert!(l.finish(at(5000)).is_empty(), "{source:?}");
        }
        let mut l = new();
        l.on_event(0, &Event::Left);
        l.step(at(0), &[IDLE, IDLE]);
        assert!(l.finish(at(5000)).is_empty(), "the source left");
    }

    /// Once the downloader holds what the source holds, it waits for
    /// nothing.
    #[test]
    fn a_source_with_nothing_new_is_no_source() {
        let mut l = Liveness::new(
            Duration::from_secs(1),
            vec![true, true],
            vec![true, true],
            vec![false, false],
            2,
        );
        l.on_event(0, &Event::PieceVerified { piece: 1 });
        l.on_event(1, &Event::PieceVerified { piece: 1 });
        l.step(at(0), &[IDLE, IDLE]);
        assert!(l.finish(at(5000)).is_empty());
    }
}
