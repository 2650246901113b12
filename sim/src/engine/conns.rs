//! Connections: which pairs of hosts are connected, and a connection's
//! life — opening in one round trip, the handshake timeout when its opening
//! has to wait, the SYN retransmission after a cut link, and closing, which
//! lets the closer's queued messages go first.

use std::time::Duration;

use peerlab_core::node::CONNECT_TIMEOUT;
use peerlab_core::vec_map::VecMap;
use peerlab_core::{ConnectionEvent, NodeId, Time};

use super::MessageSim;
use super::events::{SimEvent, TAG_CONNECTION};
use super::flows::{Channel, channel_mut};

/// The connection (open or opening) between each pair of hosts: per host,
/// its peers in increasing order. A host has tens of connections, so one
/// lookup is a short binary search in memory of its own, where a single map
/// of every pair (hundreds of thousands in a large swarm) costs a cache miss
/// per level; every message sent looks its connection up.
#[derive(Debug)]
pub(super) struct LiveConns {
    per_host: Vec<VecMap<u32, u32>>,
}

impl LiveConns {
    pub(super) fn new(hosts: usize) -> Self {
        LiveConns {
            per_host: (0..hosts).map(|_| VecMap::new()).collect(),
        }
    }

    pub(super) fn get(&self, a: u32, b: u32) -> Option<u32> {
        self.per_host.get(a as usize)?.get(&b).copied()
    }

    pub(super) fn insert(&mut self, a: u32, b: u32, conn: u32) {
        self.per_host[a as usize].insert(b, conn);
        self.per_host[b as usize].insert(a, conn);
    }

    pub(super) fn remove(&mut self, a: u32, b: u32) {
        self.per_host[a as usize].remove(&b);
        self.per_host[b as usize].remove(&a);
    }

    /// `host`'s connections, by peer.
    pub(super) fn of(&self, host: u32) -> Vec<u32> {
        self.per_host[host as usize].values().copied().collect()
    }
}

/// A connection between two hosts: its two ends (dialer first), what each
/// end has been told, and the traffic of each direction.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) ends: [u32; 2],
    /// Whether each end has been told the connection is open (and not yet
    /// that it closed).
    pub(super) open: [bool; 2],
    /// Torn down: no more sending on it.
    pub(super) closed: bool,
    /// Close once this direction's queue has drained.
    pub(super) close_after_drain: [bool; 2],
    /// A handshake timeout is scheduled (its opening was held).
    pub(super) timeout_armed: bool,
    /// Each direction's traffic, channel `2 * conn + side` of the sender:
    /// kept with the connection, as sending a message reads both.
    pub(super) chans: [Channel; 2],
}

impl Conn {
    pub(super) fn side(&self, node: u32) -> usize {
        usize::from(self.ends[1] == node)
    }
}

impl MessageSim {
    /// The one-way latency between hosts `a` and `b`.
    pub(super) fn path_latency(&self, a: u32, b: u32) -> Duration {
        self.latency[a as usize] + self.latency[b as usize]
    }

    /// A dialer's `Opened` (due at `due`) has to wait: its `connect` fails
    /// [`CONNECT_TIMEOUT`] after it was made unless the wait ends first.
    /// That holds for the dialer's own hang too: its timer has expired when
    /// it resumes, and it hears `Failed`.
    pub(super) fn arm_handshake_timeout(&mut self, due: Time, event: &SimEvent) {
        let SimEvent::Connection {
            conn: Some(conn),
            node,
            peer,
            event: ConnectionEvent::Opened,
            ..
        } = *event
        else {
            return;
        };
        let c = &mut self.conns[conn as usize];
        if c.ends[0] != node || c.timeout_armed {
            return;
        }
        c.timeout_armed = true;
        let at = self.connected_at(due, node, peer) + CONNECT_TIMEOUT;
        self.schedule(at, SimEvent::HandshakeTimeout { conn });
    }

    /// When the `connect` was made whose `Opened` was due at `due`.
    pub(super) fn connected_at(&self, due: Time, node: u32, peer: u32) -> Time {
        let rtt = 2 * self.path_latency(node, peer);
        Time::ZERO + due.saturating_since(Time::ZERO + rtt)
    }

    /// The dialer of `conn` gives up on a handshake that has not completed:
    /// it hears `Failed`. The acceptor hears `Closed` if it had seen the
    /// connection open, else nothing (its process never took it).
    pub(super) fn handshake_timeout(&mut self, conn: u32) {
        let c = &mut self.conns[conn as usize];
        if c.closed || c.open[0] {
            return;
        }
        self.events += 1;
        let [dialer, acceptor] = c.ends;
        if c.open[1] {
            self.close(conn, dialer, false);
        } else {
            c.closed = true;
            self.live.remove(dialer, acceptor);
        }
        self.connection_event(self.now, Some(conn), dialer, acceptor, ConnectionEvent::Failed);
    }

    /// Schedules, at `at`, `node`'s news about its connection to `peer`.
    fn connection_event(
        &mut self,
        at: Time,
        conn: Option<u32>,
        node: u32,
        peer: u32,
        event: ConnectionEvent,
    ) {
        let inc = self.inc(node);
        self.schedule(
            at,
            SimEvent::Connection {
                conn,
                node,
                inc,
                peer,
                event,
            },
        );
    }

    /// `node` connects to `peer`: both ends hear `Opened` a round trip
    /// later, or `node` hears `Failed` if nobody can answer.
    pub(super) fn connect(&mut self, node: u32, peer: u32) {
        if peer == node || peer as usize >= self.nodes.len() {
            self.connection_event(self.now, None, node, peer, ConnectionEvent::Failed);
            return;
        }
        let rtt = 2 * self.path_latency(node, peer);
        if !self.hosts[peer as usize].up {
            // Nobody listens: the peer's kernel refuses after a round trip.
            self.connection_event(self.now + rtt, None, node, peer, ConnectionEvent::Failed);
            return;
        }
        if let Some(conn) = self.live.get(node, peer) {
            // Already open or opening: the node hears `Opened` (again).
            let c = &self.conns[conn as usize];
            if c.open[c.side(node)] {
                self.connection_event(self.now, Some(conn), node, peer, ConnectionEvent::Opened);
            }
            return;
        }
        let conn = self.conns.len() as u32;
        self.conns.push(Conn {
            ends: [node, peer],
            open: [false; 2],
            closed: false,
            close_after_drain: [false; 2],
            timeout_armed: false,
            chans: Default::default(),
        });
        for _ in 0..2 {
            self.chan_slot.push([0; 2]);
            self.chan_mark.push(0);
        }
        self.live.insert(node, peer, conn);
        let at = self.now + rtt;
        self.connection_event(at, Some(conn), node, peer, ConnectionEvent::Opened);
        self.connection_event(at, Some(conn), peer, node, ConnectionEvent::Opened);
    }

    /// `node` closes its connection to `peer` once what it queued on it
    /// has left.
    pub(super) fn disconnect(&mut self, node: u32, peer: u32) {
        let Some(conn) = self.live.get(node, peer) else {
            return;
        };
        let dir = self.conns[conn as usize].side(node);
        let chan = &self.conns[conn as usize].chans[dir];
        if chan.queue.is_empty() {
            self.close(conn, node, true);
        } else {
            self.conns[conn as usize].close_after_drain[dir] = true;
        }
    }

    /// Tears `conn` down now. The other end hears of it after the path
    /// latency (`Failed` if it was still connecting); `closer` hears at once
    /// if `tell_closer` (a crashed closer hears nothing).
    pub(super) fn close(&mut self, conn: u32, closer: u32, tell_closer: bool) {
        let c = &mut self.conns[conn as usize];
        c.closed = true;
        let ends = c.ends;
        let closer_side = c.side(closer);
        let other_side = 1 - closer_side;
        let other_was_open = c.open[other_side];
        if !tell_closer {
            c.open[closer_side] = false;
        }
        self.live.remove(ends[0], ends[1]);
        for chan in [conn * 2, conn * 2 + 1] {
            let ch = channel_mut(&mut self.conns, chan);
            ch.queue.clear();
            ch.unreported.clear();
            ch.reported_bytes = 0;
            ch.version += 1;
            ch.lost_at = None;
            ch.lost_busy = false;
            ch.retransmit_at = None;
            ch.retry += 1;
            if ch.active {
                self.set_busy(chan, false);
            }
        }
        let other = ends[other_side];
        let later = self.now + self.path_latency(closer, other);
        let news = if other_was_open {
            ConnectionEvent::Closed
        } else {
            ConnectionEvent::Failed
        };
        self.connection_event(later, Some(conn), other, closer, news);
        if tell_closer {
            self.connection_event(self.now, Some(conn), closer, other, ConnectionEvent::Closed);
        }
    }

    /// Hands `node` the news of its connection to `peer`, after noting on
    /// `conn` what that end now believes. An `Opened` for a connection torn
    /// down meanwhile is not delivered.
    pub(super) fn connection_news(
        &mut self,
        conn: Option<u32>,
        node: u32,
        peer: u32,
        event: ConnectionEvent,
    ) {
        let now = self.now;
        if let Some(conn) = conn {
            let c = &mut self.conns[conn as usize];
            let side = c.side(node);
            match event {
                ConnectionEvent::Opened if c.closed => return,
                ConnectionEvent::Opened => c.open[side] = true,
                ConnectionEvent::Closed | ConnectionEvent::Failed => c.open[side] = false,
            }
        }
        self.events += 1;
        self.record(TAG_CONNECTION, now.as_nanos(), node, &(peer, event));
        self.nodes[node as usize].handle_connection(NodeId(peer), event, now);
        self.drain(node);
    }
}

/// When a connecting kernel sends the SYN that gets through once a cut link
/// is back at `now`, for a `connect` made at `connected_at`; `None` when the
/// dialer stops waiting first ([`CONNECT_TIMEOUT`]). Linux sends the first
/// SYN at once and retransmits it 1, 3, 7, 15… s later (initial timeout
/// 1 s, doubled each time).
pub(super) fn syn_retry(connected_at: Time, now: Time) -> Option<Time> {
    let deadline = connected_at + CONNECT_TIMEOUT;
    (0..=6u32)
        .map(|k| connected_at + Duration::from_secs((1u64 << k) - 1))
        .take_while(|&sent| sent < deadline)
        .find(|&sent| sent >= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::*;

    fn secs(s: f64) -> Time {
        Time::ZERO + Duration::from_secs_f64(s)
    }

    #[test]
    fn the_syn_that_gets_through_is_the_first_sent_once_the_link_is_back() {
        // A connect at 10 s sends SYNs at 10, 11 and 13 s (timeouts of 1,
        // 2, 4 s); the next, at 17 s, is past the 5 s connect timeout.
        let at = secs(10.0);
        assert_eq!(syn_retry(at, secs(10.0)), Some(secs(10.0)));
        assert_eq!(syn_retry(at, secs(10.2)), Some(secs(11.0)));
        assert_eq!(syn_retry(at, secs(11.0)), Some(secs(11.0)));
        assert_eq!(syn_retry(at, secs(11.5)), Some(secs(13.0)));
        assert_eq!(syn_retry(at, secs(13.0)), Some(secs(13.0)));
        assert_eq!(syn_retry(at, secs(13.001)), None);
        assert_eq!(syn_retry(at, secs(15.0)), None);
        assert_eq!(syn_retry(at, secs(100.0)), None);
    }

    #[test]
    fn live_connections_are_found_from_either_end_and_listed_by_peer() {
        let mut live = LiveConns::new(4);
        live.insert(2, 0, 7);
        live.insert(2, 1, 3);
        assert_eq!(live.get(0, 2), Some(7));
        assert_eq!(live.get(2, 0), Some(7));
        assert_eq!(live.get(1, 0), None);
        assert_eq!(live.get(9, 0), None, "no such host");
        assert_eq!(live.of(2), vec![7, 3], "by peer: host 0, then host 1");
        live.remove(0, 2);
        assert_eq!(live.get(2, 0), None);
        assert_eq!(live.of(2), vec![3]);
        assert_eq!(live.of(0), Vec::<u32>::new());
    }

    /// `CS` with p1's link cut from the start for `down`.
    fn cut_from_the_start(down: &str) -> peerlab_scenarios::Scenario {
        let fault = format!(r#"{{ "kind": "link-down", "host": "p1", "at": "0 s", "for": "{down}" }}"#);
        scenario(&with_faults(CS, &fault), &[])
    }

    #[test]
    fn a_connect_behind_a_cut_link_opens_with_the_next_syn_after_it_is_back() {
        // Back at 500 ms: the retransmission at 1 s gets through. Back at
        // 2.5 s: the one at 3 s. The handshake then takes its round trip.
        for (down, syn) in [("500 ms", 1.0), ("2500 ms", 3.0)] {
            let r = run(&cut_from_the_start(down));
            let d = r.distribution_time_s.expect("complete");
            assert_near(d, syn + alone(FILE), 1e-6, down);
            assert_eq!(r.counters.sources_lost, 0, "{down}: the connect did not fail");
        }
    }

    #[test]
    fn a_connect_still_cut_off_at_its_timeout_fails_when_the_link_is_back() {
        // The last SYN before the 5 s timeout leaves at 3 s, still cut off:
        // the handshake timeout fails the connect at 5 s, and the client
        // hears it when its link is back at 7.5 s. It reconnects after its
        // first backoff.
        let s = cut_from_the_start("7500 ms");
        let backoff = s.client_server_config().reconnect_min.as_secs_f64();
        let (r, events) = run_observed(&s);
        let lost = source_lost(&events, 1);
        assert_eq!(lost, vec![7.5]);
        let d = r.distribution_time_s.expect("complete");
        assert_near(d, 7.5 + backoff + alone(FILE), 1e-6, "after the failed connect");
    }

    #[test]
    fn a_connect_to_a_host_not_running_is_refused_after_a_round_trip() {
        // The server starts at 1 s. The client's connect at 0 is refused at
        // 20 ms (one round trip); it retries after 500 ms, is refused again
        // at 540 ms, retries after 1 s and gets through at 1.54 s.
        let s = scenario(CS, &["server.start=1 s"]);
        let c = s.client_server_config();
        let (first, second) = (c.reconnect_min.as_secs_f64(), 2.0 * c.reconnect_min.as_secs_f64());
        let (r, events) = run_observed(&s);
        let lost = source_lost(&events, 1);
        let rtt = 2.0 * PATH;
        let refused = [rtt, rtt + first + rtt];
        assert_eq!(lost.len(), 2, "{lost:?}");
        for (t, expected) in lost.iter().zip(refused) {
            assert_near(*t, expected, 1e-9, "refused");
        }
        let d = r.distribution_time_s.expect("complete");
        assert_near(d, refused[1] + second + alone(FILE), 1e-6, "third connect");
    }
}
