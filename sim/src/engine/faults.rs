//! Faults: what each has done to its host (process up, hung or restarted;
//! link cut or reshaped), the inputs that wait for a hung process or a cut
//! link and the order they come back in, and crash and restart, which keep
//! only the pieces verified on disk.

use std::collections::{BTreeMap, BTreeSet};

use peerlab_core::misbehave::Misbehaviour;
use peerlab_core::{Bitfield, ConnectionEvent, NodeId, Time};
use peerlab_scenarios::faults::FaultKind;
use peerlab_scenarios::nodes::build_node;
use peerlab_scenarios::scenario::Host;
use peerlab_scenarios::{Role, Scenario};

use super::MessageSim;
use super::conns::syn_retry;
use super::events::{Held, SimEvent};
use super::flows::{RTO_MIN, channel, channel_mut, retransmission_at};

/// What faults have done to one host.
#[derive(Debug)]
pub(super) struct HostState {
    /// The process is alive.
    pub(super) up: bool,
    /// The process is stopped (SIGSTOP); its inputs wait in `held`.
    pub(super) hung: bool,
    /// Its access link is cut; traffic through it waits in `held_link`.
    pub(super) link_down: bool,
    /// Bumped at every crash and restart.
    pub(super) incarnation: u32,
    pub(super) held: Vec<Held>,
    pub(super) held_link: Vec<Held>,
    /// Pieces verified on disk: what a restart starts from.
    pub(super) disk: BTreeSet<u32>,
    /// Current access-link capacities (bytes/s, goodput applied).
    pub(super) capacity: (f64, f64),
    /// What the host does wrong (faults `corrupt`, `silent`, `lying`),
    /// applied to its messages as they leave and arrive.
    pub(super) misbehaviour: Misbehaviour,
    /// Stored blocks (piece, offset) that came from a corrupting host and
    /// have not been overwritten since: a piece holding one fails its check.
    pub(super) bad_blocks: BTreeSet<(u32, u32)>,
}

impl HostState {
    /// `host` before anything happened to it, with access-link capacities
    /// `capacity`, in a file of `pieces` pieces.
    pub(super) fn new(capacity: (f64, f64), host: &Host, pieces: u32) -> Self {
        HostState {
            // A host with a later start is not running until then.
            up: host.start.is_zero(),
            hung: false,
            link_down: false,
            incarnation: 0,
            held: Vec::new(),
            held_link: Vec::new(),
            // The server starts with the whole file on its disk and
            // comes back from a crash with it.
            disk: if host.role == Role::Server {
                (0..pieces).collect()
            } else {
                BTreeSet::new()
            },
            capacity,
            misbehaviour: Misbehaviour::Honest,
            bad_blocks: BTreeSet::new(),
        }
    }
}

/// A fault of the scenario, resolved: host index, rates in bytes/s with
/// goodput applied.
#[derive(Clone, Copy, Debug)]
pub(super) struct ScheduledFault {
    pub(super) at: Time,
    pub(super) host: u32,
    pub(super) kind: FaultKind,
    pub(super) upload: Option<f64>,
    pub(super) download: Option<f64>,
    /// For the misbehaviour faults and `honest`: what the host does now.
    pub(super) misbehaviour: Option<Misbehaviour>,
}

/// The faults of `scenario` (whose hosts are `hosts`), each recovery
/// its own fault, in the scenario's order.
pub(super) fn scheduled_faults(scenario: &Scenario, hosts: &[Host]) -> Vec<ScheduledFault> {
    let g = scenario.network.goodput;
    let index: BTreeMap<&str, u32> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i as u32))
        .collect();
    let mut faults = Vec::new();
    for f in &scenario.faults {
        let host = index[f.host.as_str()];
        let rate = |r: Option<peerlab_scenarios::Rate>| r.map(|r| r.bytes_per_sec() * g);
        for (at, kind) in f.expand() {
            let (upload, download) = (rate(f.upload), rate(f.download));
            faults.push(ScheduledFault {
                at: Time::ZERO + at.0,
                host,
                kind,
                upload,
                download,
                misbehaviour: f.misbehaviour(kind),
            });
        }
    }
    faults
}

impl MessageSim {
    /// The current incarnation of `node`'s process.
    pub(super) fn inc(&self, node: u32) -> u32 {
        self.hosts[node as usize].incarnation
    }

    /// Whether `event` must wait: its process is hung, or it has to cross a
    /// cut access link. Returns the host to hold it for.
    pub(super) fn held_by(&self, event: &SimEvent) -> Option<(u32, bool)> {
        let down = |h: u32| self.hosts[h as usize].link_down;
        match *event {
            SimEvent::Deliver { from, to, .. } => {
                if down(from) {
                    return Some((from, true));
                }
                if down(to) {
                    return Some((to, true));
                }
                self.hosts[to as usize].hung.then_some((to, false))
            }
            SimEvent::Connection {
                conn: Some(_),
                node,
                peer,
                ..
            } if down(node) || down(peer) => Some((if down(node) { node } else { peer }, true)),
            // The dialer's connection opens when the acceptor's process
            // answers its handshake: not while that process is hung.
            SimEvent::Connection {
                conn: Some(conn),
                node,
                peer,
                event: ConnectionEvent::Opened,
                ..
            } if self.conns[conn as usize].ends[0] == node && self.hosts[peer as usize].hung => {
                Some((peer, false))
            }
            _ => {
                let (node, _) = event.target()?;
                self.hosts[node as usize].hung.then_some((node, false))
            }
        }
    }

    /// Makes `event` (first scheduled with the key `origin`) wait for
    /// `host`: its process to resume, or its link to come back if `link`.
    pub(super) fn hold(&mut self, origin: (Time, u64), host: u32, link: bool, event: SimEvent) {
        self.arm_handshake_timeout(origin.0, &event);
        if link && let SimEvent::Deliver { conn, from, .. } = event {
            // A message that meets a cut link is lost: its sender's
            // retransmission timer starts.
            let chan = self.chan_from(conn, from);
            let now = self.now;
            channel_mut(&mut self.conns, chan).lost_at.get_or_insert(now);
        }
        let h = &mut self.hosts[host as usize];
        let held = if link { &mut h.held_link } else { &mut h.held };
        // In the order the events were first scheduled, not the order
        // they came to wait here: an event released from one wait (a
        // hang) may be held again behind a cut link, where events
        // scheduled after it already wait. Appended, a connection's
        // news could pass the messages sent on it, or an old
        // connection's close the opening of its successor.
        let at = held.partition_point(|h| h.origin < origin);
        held.insert(at, Held { origin, event });
    }

    /// Applies a fault to `host` now; crash, hang, link-down, bandwidth,
    /// leave, corrupt, silent and lying count in the report as faults,
    /// recoveries do not.
    pub(super) fn apply_fault(&mut self, host: u32, fault: &ScheduledFault) {
        let ScheduledFault {
            kind,
            upload,
            download,
            misbehaviour,
            ..
        } = *fault;
        let h = host as usize;
        let disruptive = matches!(
            kind,
            FaultKind::Crash
                | FaultKind::Hang
                | FaultKind::LinkDown
                | FaultKind::Bandwidth
                | FaultKind::Leave
        ) || kind.misbehaves();
        if disruptive {
            self.report.count_fault();
        }
        match kind {
            FaultKind::Crash | FaultKind::Leave => self.crash(host),
            FaultKind::Restart | FaultKind::Join => self.restart(host),
            FaultKind::Hang if self.hosts[h].up => {
                self.hosts[h].hung = true;
                self.touch_host(host);
            }
            FaultKind::Hang => {}
            FaultKind::Resume => {
                self.hosts[h].hung = false;
                self.release(host, false);
            }
            FaultKind::LinkDown => {
                self.hosts[h].link_down = true;
                // What its connections were sending is lost at the cut.
                let now = self.now;
                for conn in self.live.of(host) {
                    for chan in [2 * conn, 2 * conn + 1] {
                        let ch = channel_mut(&mut self.conns, chan);
                        if !ch.queue.is_empty() {
                            ch.lost_at.get_or_insert(now);
                            ch.lost_busy = ch.active;
                        }
                    }
                }
                self.touch_host(host);
            }
            FaultKind::LinkUp => {
                self.hosts[h].link_down = false;
                self.release(host, true);
            }
            FaultKind::Bandwidth => {
                let (u, d) = self.hosts[h].capacity;
                let cap = (upload.unwrap_or(u), download.unwrap_or(d));
                self.hosts[h].capacity = cap;
                self.allocator.set_capacity(host, cap.0, cap.1);
                self.touch_host(host);
            }
            // A flood costs the honest hosts nothing (see Misbehaviour::Flood).
            FaultKind::Corrupt
            | FaultKind::Silent
            | FaultKind::Lying
            | FaultKind::Flood
            | FaultKind::Honest => {
                self.hosts[h].misbehaviour = misbehaviour.unwrap_or_default();
            }
        }
    }

    /// Re-schedules, in their order, the inputs held for `host`. A
    /// connection whose handshake met the cut link (neither end has seen it
    /// open) opens only when the connecting kernel next retransmits its SYN
    /// ([`syn_retry`]), if the dialer still waits then. One end may have
    /// seen it open while the other's news waited for a hang: that
    /// handshake was done, and messages sent on it must not arrive before
    /// the news.
    fn release(&mut self, host: u32, link: bool) {
        if link {
            self.schedule_retransmissions(host);
        }
        let h = &mut self.hosts[host as usize];
        let held = std::mem::take(if link { &mut h.held_link } else { &mut h.held });
        for event in held {
            match event.event {
                // A message lost at the cut arrives after its direction's
                // retransmission.
                SimEvent::Deliver { conn, from, to, .. } if link => {
                    let chan = self.chan_from(conn, from);
                    let at = match channel(&self.conns, chan).retransmit_at {
                        Some(at) => at + self.path_latency(from, to),
                        None => self.now,
                    };
                    self.schedule_released(at, event);
                }
                SimEvent::Connection {
                    conn: Some(conn),
                    node,
                    peer,
                    event: ConnectionEvent::Opened,
                    ..
                } if link && self.conns[conn as usize].open == [false; 2] => {
                    let rtt = 2 * self.path_latency(node, peer);
                    let connected_at = self.connected_at(event.origin.0, node, peer);
                    // No SYN left before the dialer's timeout: the
                    // handshake never completes, the timeout fails it.
                    if let Some(sent) = syn_retry(connected_at, self.now) {
                        self.schedule_released(sent + rtt, event);
                    }
                }
                _ => self.schedule_released(self.now, event),
            }
        }
        self.touch_host(host);
    }

    /// `host`'s link is back: each direction of its connections that lost
    /// bytes at the cut sends them again at its next retransmission
    /// ([`retransmission_at`]) and moves nothing until then. A connection
    /// whose other end is still cut off waits for that link.
    ///
    /// The timeout is Linux's: the smoothed round trip plus at least
    /// [`RTO_MIN`]. A direction that was carrying blocks when the link
    /// went down has the round trip of a loaded path, queueing included,
    /// which the simulator does not model: `network.rto`, measured. One
    /// that was not has the bare round trip of its path. A zero
    /// `network.rto` resumes every direction at once.
    fn schedule_retransmissions(&mut self, host: u32) {
        let now = self.now;
        let rto = self.rto;
        for conn in self.live.of(host) {
            let ends = self.conns[conn as usize].ends;
            if ends.iter().any(|&e| self.hosts[e as usize].link_down) {
                continue;
            }
            let idle = RTO_MIN + 2 * self.path_latency(ends[0], ends[1]);
            for chan in [2 * conn, 2 * conn + 1] {
                let ch = channel_mut(&mut self.conns, chan);
                let Some(lost) = ch.lost_at else {
                    continue;
                };
                let timeout = if rto.is_zero() || ch.lost_busy { rto } else { idle };
                let at = retransmission_at(lost, now, timeout);
                if at <= now {
                    ch.lost_at = None;
                    ch.lost_busy = false;
                    continue;
                }
                ch.retransmit_at = Some(at);
                ch.retry += 1;
                let retry = ch.retry;
                self.schedule(at, SimEvent::Retransmit { chan, retry });
            }
        }
    }

    /// Direction `chan` sends again what it lost at a cut link: it moves
    /// again (what it queued leaves, its payload gets a rate). If a link of
    /// its hosts was cut again meanwhile, it waits for that one, its timer
    /// still running from the first loss.
    pub(super) fn retransmit(&mut self, chan: u32, retry: u64) {
        let (conn, from, to) = self.endpoints(chan);
        let cut = self.hosts[from as usize].link_down || self.hosts[to as usize].link_down;
        let closed = self.conns[conn as usize].closed;
        let ch = channel_mut(&mut self.conns, chan);
        if ch.retry != retry || ch.retransmit_at.is_none() {
            return;
        }
        ch.retransmit_at = None;
        if closed || cut {
            return;
        }
        ch.lost_at = None;
        ch.lost_busy = false;
        let active = ch.active;
        self.dirty_links.extend([2 * from, 2 * to + 1]);
        self.dirty = true;
        if !active {
            self.pump(chan);
        }
    }

    /// Kills `host`'s process: its inputs, timer and connections are lost,
    /// its disk stays.
    fn crash(&mut self, host: u32) {
        let h = &mut self.hosts[host as usize];
        if !h.up {
            return;
        }
        h.up = false;
        h.hung = false;
        // A new process starts honest, and forgets unchecked blocks.
        h.misbehaviour = Misbehaviour::Honest;
        h.bad_blocks.clear();
        h.held.clear();
        h.incarnation += 1;
        self.node_timer[host as usize] = None;
        let conns = self.live.of(host);
        for conn in conns {
            self.close(conn, host, false);
        }
        // A connection the other end already tore down is no longer live,
        // but this end had not heard yet; it never will now. Marking its
        // side closed keeps messages still on the way to it (held at a cut
        // link, say) from reaching the restarted process as if it were the
        // old one.
        for c in self.conns.iter_mut().filter(|c| c.ends.contains(&host)) {
            let side = c.side(host);
            c.open[side] = false;
        }
        self.touch_host(host);
    }

    /// Starts `host`'s process again (or for the first time, for a late
    /// start) from the pieces on its disk.
    pub(super) fn restart(&mut self, host: u32) {
        let h = &mut self.hosts[host as usize];
        if h.up {
            return;
        }
        h.up = true;
        h.incarnation += 1;
        let inc = h.incarnation;
        let pieces = self.scenario.layout().pieces();
        let mut have = Bitfield::new(pieces);
        for &p in &self.hosts[host as usize].disk {
            have.insert(p);
        }
        self.nodes[host as usize] = build_node(&self.scenario, NodeId(host), Some(have));
        self.schedule(self.now, SimEvent::Start { node: host, inc });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::*;
    use peerlab_core::{Event, Message};

    /// `CS` with `fault` (a JSON object).
    fn cs_with(fault: &str) -> Scenario {
        scenario(&with_faults(CS, fault), &[])
    }

    #[test]
    fn a_cut_link_or_a_hung_download_pauses_it_for_as_long_as_it_lasts() {
        // From 500 to 800 ms p1's link is down, or its process stopped:
        // what is on the way to it waits, its connection stalls (the
        // server sees no progress), and the download resumes where it was
        // (after a cut, at once only without a retransmission timeout).
        for kind in ["link-down", "hang"] {
            let fault = format!(r#"{{ "kind": "{kind}", "host": "p1", "at": "500 ms", "for": "300 ms" }}"#);
            let s = scenario(&with_faults(CS, &fault), &["network.rto=0"]);
            let (r, events) = run_observed(&s);
            let d = r.distribution_time_s.expect("complete");
            assert_near(d, alone(FILE) + 0.3, 1e-6, kind);
            let blocks = times(&events, 1, |e| matches!(e, Event::BlockReceived { .. }));
            assert!(
                blocks.iter().all(|&t| t <= 0.5 || t >= 0.8),
                "{kind}: a block arrived meanwhile: {blocks:?}"
            );
            assert_eq!(r.counters.faults, 1, "{kind} counts, its end does not");
            assert_eq!(r.counters.sources_lost, 0, "{kind} is no disconnection");
        }
    }

    #[test]
    fn after_a_cut_link_the_download_resumes_at_its_next_retransmission() {
        // The server's blocks to p1 are lost from 500 ms on; TCP sends
        // again 320 ms later, then 640 ms after that, then 1,280 ms after
        // that... The first retransmission after the link is back gets
        // through: a cut of 300 ms costs 320 ms, one of 1 s costs 2.24 s
        // (sent again at 0.82, 1.46 and 2.74 s).
        for (cut, resumed) in [(0.3, 0.82), (1.0, 2.74)] {
            let fault =
                format!(r#"{{ "kind": "link-down", "host": "p1", "at": "500 ms", "for": "{cut} s" }}"#);
            let (r, events) = run_observed(&cs_with(&fault));
            let d = r.distribution_time_s.expect("complete");
            assert_near(d, alone(FILE) + resumed - 0.5, 1e-6, &format!("cut {cut} s"));
            let blocks = times(&events, 1, |e| matches!(e, Event::BlockReceived { .. }));
            assert!(
                blocks.iter().all(|&t| t <= 0.5 || t >= resumed),
                "cut {cut} s: a block arrived before the retransmission: {blocks:?}"
            );
        }
        // A hang loses nothing: no retransmission to wait for.
        let hang = r#"{ "kind": "hang", "host": "p1", "at": "500 ms", "for": "1 s" }"#;
        let d = run(&cs_with(hang)).distribution_time_s.expect("complete");
        assert_near(d, alone(FILE) + 1.0, 1e-6, "hang");
    }

    #[test]
    fn a_direction_that_carried_no_blocks_times_out_after_the_bare_round_trip() {
        // One request outstanding: when a block arrives, p1 sends the next
        // request, which takes PATH to reach the server. The link goes down
        // 1 ms after a block arrives (at `t`), for 300 ms: the request is
        // lost at t + PATH on a direction that carried no blocks, so TCP
        // sends it again 200 ms + the round trip later (t + 0.23 s: the link
        // is still down), then twice as long after that (t + 0.67 s). The
        // server has nothing to send meanwhile, so it loses nothing; the
        // next block leaves once the request is in.
        let s = scenario(CS, &["client_server.pipeline=1"]);
        let (_, events) = run_observed(&s);
        let blocks = times(&events, 1, |e| matches!(e, Event::BlockReceived { .. }));
        let t = blocks
            .into_iter()
            .find(|&b| b > 0.5)
            .expect("a block after 0.5 s");
        let fault = format!(
            r#"{{ "kind": "link-down", "host": "p1", "at": "{:.6} ms", "for": "300 ms" }}"#,
            (t + 0.001) * 1e3
        );
        let (r, events) = run_observed(&scenario(&with_faults(CS, &fault), &["client_server.pipeline=1"]));
        assert!(r.distribution_time_s.is_some(), "complete");
        let blocks = times(&events, 1, |e| matches!(e, Event::BlockReceived { .. }));
        let next = blocks
            .into_iter()
            .find(|&b| b > t)
            .expect("a block after the cut");
        let rtt = 2.0 * PATH;
        let resent = t + PATH + 3.0 * (0.2 + rtt);
        assert_near(
            next,
            resent + PATH + wire(BLOCK) / SERVER_RATE + PATH,
            1e-6,
            "next block",
        );
    }

    #[test]
    fn a_hung_acceptor_answers_the_handshake_when_it_resumes_or_the_connect_times_out() {
        // The server hangs from the start. Hung 4 s: the client's connect
        // waits for it and opens at 4 s. Hung 6 s: the connect made at 0
        // fails at exactly 5 s (the connect timeout); the retry after the
        // backoff (5.5 s) waits again and opens when the server resumes.
        // Requests and the file follow the opening.
        let timeout = peerlab_core::node::CONNECT_TIMEOUT.as_secs_f64();
        for (hang, lost) in [(4.0, vec![]), (6.0, vec![timeout])] {
            let fault = format!(r#"{{ "kind": "hang", "host": "server", "at": "0 s", "for": "{hang} s" }}"#);
            let (r, events) = run_observed(&cs_with(&fault));
            assert_eq!(source_lost(&events, 1), lost, "hung {hang} s");
            let d = r.distribution_time_s.expect("complete");
            let expected = hang + PATH + wire(FILE) / SERVER_RATE + PATH;
            assert_near(d, expected, 1e-6, &format!("hung {hang} s"));
        }
    }

    #[test]
    fn a_crashed_download_restarts_from_the_pieces_on_its_disk() {
        // p1 crashes at 500 ms and restarts at 700 ms. Pieces complete
        // every wire(PIECE) / rate (262 ms) from 40 ms on: one is on its
        // disk at the crash; the blocks of the second are lost with the
        // process. The restarted client connects afresh for the rest.
        let s = cs_with(r#"{ "kind": "crash", "host": "p1", "at": "500 ms", "for": "200 ms" }"#);
        let (r, events) = run_observed(&s);
        let per_piece = wire(PIECE) / SERVER_RATE;
        let kept = ((0.5 - 4.0 * PATH) / per_piece).floor() as u64;
        assert_eq!(kept, 1);
        let d = r.distribution_time_s.expect("complete");
        assert_near(d, 0.7 + alone(FILE - kept * PIECE), 1e-6, "restart");
        let mut verified: Vec<u32> = events
            .iter()
            .filter_map(|(_, n, e)| match e {
                Event::PieceVerified { piece } if *n == 1 => Some(*piece),
                _ => None,
            })
            .collect();
        verified.sort_unstable();
        assert_eq!(verified, vec![0, 1, 2, 3], "each piece verified once");
        assert_eq!(r.counters.faults, 1, "the crash counts, the restart does not");
        assert_eq!(r.hosts[1].pieces_verified, 4);
    }

    #[test]
    fn a_late_host_starts_at_its_start_time() {
        let r = run(&scenario(CS, &["peers.start=1500 ms"]));
        let d = r.distribution_time_s.expect("complete");
        assert_near(d, 1.5 + alone(FILE), 1e-6, "started at 1.5 s");
        assert_eq!(r.counters.faults, 0, "a late start is no fault");
    }

    #[test]
    fn what_waits_for_whom() {
        let s = scenario(CS, &["peers.count=2"]);
        let mut sim = MessageSim::new(&s, "unit test").expect("runnable");
        sim.connect(1, 0);
        let deliver = |from, to| SimEvent::Deliver {
            conn: 0,
            from,
            to,
            msg: Message::Interested,
        };
        let opened = |node, peer| SimEvent::Connection {
            conn: Some(0),
            node,
            inc: 0,
            peer,
            event: ConnectionEvent::Opened,
        };
        let timer = |node| SimEvent::Timer {
            node,
            inc: 0,
            deadline: Time::ZERO,
        };
        assert_eq!(sim.held_by(&deliver(0, 1)), None, "nothing wrong yet");

        sim.hosts[0].hung = true;
        // Messages to a hung process wait for it; what it sent before it
        // stopped still arrives. Its timers wait.
        assert_eq!(sim.held_by(&deliver(1, 0)), Some((0, false)));
        assert_eq!(sim.held_by(&deliver(0, 1)), None);
        assert_eq!(sim.held_by(&timer(0)), Some((0, false)));
        // The dialer's connection opens when the hung acceptor answers; the
        // acceptor's own news waits for it too.
        assert_eq!(sim.held_by(&opened(1, 0)), Some((0, false)));
        assert_eq!(sim.held_by(&opened(0, 1)), Some((0, false)));
        // A flow's progress waits for nobody: its rate is what stops.
        assert_eq!(sim.held_by(&SimEvent::FlowDone { chan: 0, version: 0 }), None);

        // A cut link holds what crosses it, at either end, before a hang.
        sim.hosts[1].link_down = true;
        assert_eq!(sim.held_by(&deliver(1, 0)), Some((1, true)));
        assert_eq!(sim.held_by(&deliver(0, 1)), Some((1, true)));
        assert_eq!(sim.held_by(&opened(0, 1)), Some((1, true)));
        assert_eq!(sim.held_by(&timer(1)), None, "its process runs on");
    }
}
