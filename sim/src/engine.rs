//! The discrete-event engine: integer nanosecond time, an event queue ordered
//! by (time, sequence), connections whose two directions are FIFO queues of
//! messages, and the bandwidth model deciding how fast each queue drains.
//!
//! # The network model
//!
//! A message carrying file bytes ([`Message::payload_len`] > 0) is a fluid
//! flow: it drains at the max-min fair rate of its direction of its
//! connection (see [`crate::bandwidth`]), then arrives after the path's
//! latency (sender's access latency + receiver's). Control messages (requests,
//! haves, choke, …) keep their place in the FIFO but take no bandwidth: they
//! are a few bytes next to 16 KiB blocks (<0.1%), and leaving them out of the
//! fair share keeps rates stable while requests flow, which is what makes
//! thousands of peers affordable. Rates are recomputed once per instant in
//! which the set of busy directions changed.
//!
//! Opening a connection takes one round trip. Closing one delivers what the
//! closer had already queued, then tells both ends; messages towards an end
//! that has seen the close are lost.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use peerlab_core::node::CONNECT_TIMEOUT;
use peerlab_core::vec_map::VecMap;
use peerlab_core::{
    Bitfield, Command, ConnectionEvent, Event, Message, Node, NodeId, Output, StorageResult, Time,
};
use peerlab_scenarios::faults::FaultKind;
use peerlab_scenarios::nodes::{build_node, build_nodes, check_runnable};
use peerlab_scenarios::report::SimStats;
use peerlab_scenarios::{Outcome, Report, ReportBuilder, Role, Scenario, ScenarioError};

use crate::bandwidth::{Allocator, Flow};
use crate::liveness::{HostNow, Liveness, Starvation};
use crate::queue::EventQueue;
use crate::trace::TraceHasher;

/// How a run is going, handed to the progress callback now and then.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Virtual time reached.
    pub now: Time,
    /// Events processed so far.
    pub events: u64,
    /// Downloaders that hold the whole file.
    pub completed: u32,
    /// Downloaders in all.
    pub downloaders: u32,
    /// Payload bytes received by all hosts so far.
    pub bytes_down: u64,
    /// Payload bytes every downloader needs in all (N x file size).
    pub bytes_wanted: u64,
}

/// Something scheduled to happen. Inputs for a node carry the node's
/// incarnation when they were scheduled, so nothing reaches a restarted
/// process that was meant for the one that died.
#[derive(Debug)]
enum SimEvent {
    Start {
        node: u32,
        inc: u32,
    },
    Timer {
        node: u32,
        inc: u32,
        deadline: Time,
    },
    FlowDone {
        chan: u32,
        version: u64,
    },
    Deliver {
        conn: u32,
        from: u32,
        to: u32,
        msg: Message,
    },
    Connection {
        conn: Option<u32>,
        node: u32,
        inc: u32,
        peer: u32,
        event: ConnectionEvent,
    },
    Storage {
        node: u32,
        inc: u32,
        result: StorageResult,
    },
    /// A payload message `node` sent to `peer` has left its uplink.
    Sent {
        node: u32,
        inc: u32,
        peer: u32,
    },
    Fault {
        host: u32,
        index: usize,
    },
    /// A host that starts after time zero (`start` in the scenario) starts.
    Launch {
        host: u32,
    },
    /// The dialer of `conn` stops waiting for its handshake
    /// ([`CONNECT_TIMEOUT`] after its `connect`).
    HandshakeTimeout {
        conn: u32,
    },
}

impl SimEvent {
    /// The node whose process this input is for.
    fn target(&self) -> Option<(u32, u32)> {
        match *self {
            SimEvent::Start { node, inc }
            | SimEvent::Timer { node, inc, .. }
            | SimEvent::Connection { node, inc, .. }
            | SimEvent::Storage { node, inc, .. }
            | SimEvent::Sent { node, inc, .. } => Some((node, inc)),
            _ => None,
        }
    }
}

/// Sequence numbers of ordinary events start here; released events (see
/// `MessageSim::schedule_released`) number from 1, below all of them.
const ORDINARY_SEQ: u64 = 1 << 62;

/// An event waiting for a hung process or a cut link, with the key (time,
/// sequence number) it was first scheduled with.
#[derive(Debug)]
struct Held {
    origin: (Time, u64),
    event: SimEvent,
}

/// The connection (open or opening) between each pair of hosts: per host,
/// its peers in increasing order. A host has tens of connections, so one
/// lookup is a short binary search in memory of its own, where a single map
/// of every pair (hundreds of thousands in a large swarm) costs a cache miss
/// per level; every message sent looks its connection up.
#[derive(Debug)]
struct LiveConns {
    per_host: Vec<VecMap<u32, u32>>,
}

impl LiveConns {
    fn new(hosts: usize) -> Self {
        LiveConns {
            per_host: (0..hosts).map(|_| VecMap::new()).collect(),
        }
    }

    fn get(&self, a: u32, b: u32) -> Option<u32> {
        self.per_host.get(a as usize)?.get(&b).copied()
    }

    fn insert(&mut self, a: u32, b: u32, conn: u32) {
        self.per_host[a as usize].insert(b, conn);
        self.per_host[b as usize].insert(a, conn);
    }

    fn remove(&mut self, a: u32, b: u32) {
        self.per_host[a as usize].remove(&b);
        self.per_host[b as usize].remove(&a);
    }

    /// `host`'s connections, by peer.
    fn of(&self, host: u32) -> Vec<u32> {
        self.per_host[host as usize].values().copied().collect()
    }
}

#[derive(Debug)]
struct Conn {
    ends: [u32; 2],
    /// Whether each end has been told the connection is open (and not yet
    /// that it closed).
    open: [bool; 2],
    /// Torn down: no more sending on it.
    closed: bool,
    /// Close once this direction's queue has drained.
    close_after_drain: [bool; 2],
    /// A handshake timeout is scheduled (its opening was held).
    timeout_armed: bool,
    /// Each direction's traffic, channel `2 * conn + side` of the sender:
    /// kept with the connection, as sending a message reads both.
    chans: [Channel; 2],
}

impl Conn {
    fn side(&self, node: u32) -> usize {
        usize::from(self.ends[1] == node)
    }
}

/// Channel `chan`: direction `chan % 2` of connection `chan / 2`.
fn channel(conns: &[Conn], chan: u32) -> &Channel {
    &conns[(chan / 2) as usize].chans[(chan % 2) as usize]
}

fn channel_mut(conns: &mut [Conn], chan: u32) -> &mut Channel {
    &mut conns[(chan / 2) as usize].chans[(chan % 2) as usize]
}

/// Wire bytes of the payload messages reported sent on `ch` that have not
/// left the uplink by `now`: what the sender's TCP holds for it. The head,
/// when it is moving, is one of them: the first payload message queued
/// behind no reported bytes is always reported at once.
fn unsent_reported(ch: &Channel, now: Time) -> f64 {
    let head_done = match ch.queue.front() {
        Some(head) if ch.active => {
            let left = ch.remaining - ch.rate * (now - ch.last_update).as_secs_f64();
            head.wire_len() as f64 - left.max(0.0)
        }
        _ => 0.0,
    };
    (ch.reported_bytes as f64 - head_done).max(0.0)
}

#[derive(Debug, Default)]
struct Channel {
    queue: VecDeque<Message>,
    /// Bytes of the head message still to send, as of `last_update`.
    remaining: f64,
    /// Current rate in bytes per second.
    rate: f64,
    last_update: Time,
    version: u64,
    active: bool,
    /// Wire lengths of the payload messages at the tail of the queue whose
    /// sender has not been told they were sent, oldest first (see
    /// `MessageSim::send_window`).
    unreported: VecDeque<u64>,
    /// Wire bytes of the payload messages in the queue that were reported
    /// sent: the rest of the queue.
    reported_bytes: u64,
}

/// What faults have done to one host.
#[derive(Debug)]
struct HostState {
    /// The process is alive.
    up: bool,
    /// The process is stopped (SIGSTOP); its inputs wait in `held`.
    hung: bool,
    /// Its access link is cut; traffic through it waits in `held_link`.
    link_down: bool,
    /// Bumped at every crash and restart.
    incarnation: u32,
    held: Vec<Held>,
    held_link: Vec<Held>,
    /// Pieces verified on disk: what a restart starts from.
    disk: BTreeSet<u32>,
    /// Current access-link capacities (bytes/s, goodput applied).
    capacity: (f64, f64),
}

/// A fault of the scenario, resolved: host index, rates in bytes/s with
/// goodput applied.
#[derive(Clone, Copy, Debug)]
struct ScheduledFault {
    at: Time,
    host: u32,
    kind: FaultKind,
    upload: Option<f64>,
    download: Option<f64>,
}

/// Receives the trace, one JSON line per record.
pub(crate) type TraceSink = Box<dyn FnMut(&str)>;
/// Receives every node event as it happens.
pub(crate) type Observer = Box<dyn FnMut(Time, NodeId, &Event)>;
/// Receives the starvations found by the liveness check at the end of a run.
pub(crate) type StarvationSink = Box<dyn FnOnce(Vec<Starvation>)>;

/// One run of the message model: every node and message of a scenario.
pub(crate) struct MessageSim {
    scenario: Scenario,
    nodes: Vec<Box<dyn Node>>,
    hosts: Vec<HostState>,
    latency: Vec<Duration>,
    node_timer: Vec<Option<Time>>,
    now: Time,
    /// Sequence numbers of ordinary events: they start above every number
    /// `released` will ever reach.
    seq: u64,
    /// Sequence numbers of released inputs (see `schedule_released`).
    released: u64,
    /// Where each released event was first scheduled (its key then).
    origin: BTreeMap<u64, (Time, u64)>,
    queue: EventQueue<SimEvent>,
    conns: Vec<Conn>,
    live: LiveConns,
    /// Busy directions by link (`2h`: uplink of host h, `2h+1`: downlink),
    /// and where each busy direction sits in its two lists.
    link_flows: Vec<Vec<u32>>,
    chan_slot: Vec<[u32; 2]>,
    /// What changed since the last reallocation: links whose flows or
    /// capacity changed, and directions that just became busy.
    dirty_links: Vec<u32>,
    dirty_chans: Vec<u32>,
    /// Visit marks for the component walk of `reallocate`.
    epoch: u32,
    link_mark: Vec<u32>,
    chan_mark: Vec<u32>,
    dirty: bool,
    allocator: Allocator,
    flows: Vec<Flow>,
    flow_chans: Vec<u32>,
    rates: Vec<f64>,
    faults: Vec<ScheduledFault>,
    report: ReportBuilder,
    trace: TraceHasher,
    /// Receives one line per trace record when the trace is being recorded.
    trace_sink: Option<TraceSink>,
    events: u64,
    all_complete: bool,
    observer: Option<Observer>,
    liveness: Option<(Liveness, StarvationSink)>,
    /// A payload message counts as sent (`Node::handle_sent`) once at most
    /// this many wire bytes of the messages reported before it are still
    /// to leave the uplink: the sender's TCP has taken it into its window
    /// and send buffer (`network.send_window`). `None`: once its own last
    /// byte has left the uplink.
    send_window: Option<u64>,
}

impl std::fmt::Debug for MessageSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSim")
            .field("now", &self.now)
            .field("events", &self.events)
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

const TAG_START: u8 = 1;
const TAG_TIMER: u8 = 2;
const TAG_DELIVER: u8 = 3;
const TAG_CONNECTION: u8 = 4;
const TAG_STORAGE: u8 = 5;
pub(crate) const TAG_EVENT: u8 = 6;
const TAG_COMMAND: u8 = 7;
const TAG_FAULT: u8 = 8;
const TAG_SENT: u8 = 9;
const TAG_NAMES: [&str; 10] = [
    "",
    "start",
    "timer",
    "deliver",
    "connection",
    "storage",
    "event",
    "command",
    "fault",
    "sent",
];

impl MessageSim {
    /// A simulation of `scenario` at time zero. `origin` names the scenario
    /// in errors.
    pub fn new(scenario: &Scenario, origin: &str) -> Result<Self, ScenarioError> {
        check_runnable(scenario, origin)?;
        let hosts = scenario.hosts();
        let g = scenario.network.goodput;
        let caps: Vec<(f64, f64)> = hosts
            .iter()
            .map(|h| (h.upload.bytes_per_sec() * g, h.download.bytes_per_sec() * g))
            .collect();
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
                });
            }
        }
        let pieces = scenario.layout().pieces();
        let mut sim = MessageSim {
            nodes: build_nodes(scenario),
            hosts: caps
                .iter()
                .zip(&hosts)
                .map(|(&capacity, host)| HostState {
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
                })
                .collect(),
            latency: hosts.iter().map(|h| h.latency).collect(),
            node_timer: vec![None; hosts.len()],
            now: Time::ZERO,
            seq: ORDINARY_SEQ,
            released: 0,
            origin: BTreeMap::new(),
            queue: EventQueue::new(),
            conns: Vec::new(),
            live: LiveConns::new(hosts.len()),
            link_flows: vec![Vec::new(); 2 * hosts.len()],
            chan_slot: Vec::new(),
            dirty_links: Vec::new(),
            dirty_chans: Vec::new(),
            epoch: 0,
            link_mark: vec![0; 2 * hosts.len()],
            chan_mark: Vec::new(),
            dirty: false,
            allocator: Allocator::new(&caps),
            flows: Vec::new(),
            flow_chans: Vec::new(),
            rates: Vec::new(),
            faults: Vec::new(),
            report: ReportBuilder::new(scenario),
            trace: TraceHasher::default(),
            trace_sink: None,
            events: 0,
            all_complete: false,
            observer: None,
            liveness: None,
            send_window: Some(scenario.network.send_window.0).filter(|&w| w > 0),
            scenario: scenario.clone(),
        };
        for (node, host) in hosts.iter().enumerate() {
            let node = node as u32;
            if host.start.is_zero() {
                sim.schedule(Time::ZERO, SimEvent::Start { node, inc: 0 });
            } else {
                sim.schedule(Time::ZERO + host.start, SimEvent::Launch { host: node });
            }
        }
        for (index, f) in faults.iter().enumerate() {
            sim.schedule(f.at, SimEvent::Fault { host: f.host, index });
        }
        sim.faults = faults;
        Ok(sim)
    }

    /// Records the whole event trace: `sink` receives one JSON line per
    /// record, in order: the records the trace hash is made of.
    pub fn record_trace(&mut self, sink: impl FnMut(&str) + 'static) {
        self.trace_sink = Some(Box::new(sink));
    }

    /// Folds one record into the trace hash and, if recording, the trace.
    fn record<T: Hash + std::fmt::Debug + ?Sized>(&mut self, tag: u8, at: u64, node: u32, fields: &T) {
        self.trace.record(tag, at, node, fields);
        if let Some(sink) = &mut self.trace_sink {
            sink(&crate::trace::json_line(
                at,
                node,
                TAG_NAMES[tag as usize],
                fields,
            ));
        }
    }

    fn schedule(&mut self, at: Time, event: SimEvent) {
        self.seq += 1;
        self.queue.push(at, self.seq, event);
    }

    /// Schedules a released input at `at` (not before now), ahead of
    /// everything else scheduled for that instant: inputs that waited for a
    /// hung process or a cut link keep their place before inputs that
    /// arrive at the very instant they are released. It keeps the key it
    /// was first scheduled with, so if it is held again it waits in its
    /// first place.
    fn schedule_released(&mut self, at: Time, held: Held) {
        self.released += 1;
        self.origin.insert(self.released, held.origin);
        self.queue.push(at.max(self.now), self.released, held.event);
    }

    fn inc(&self, node: u32) -> u32 {
        self.hosts[node as usize].incarnation
    }

    fn path_latency(&self, a: u32, b: u32) -> Duration {
        self.latency[a as usize] + self.latency[b as usize]
    }

    /// Calls `observer` with every event a node reports, as it happens (for
    /// tests and tools that need more than the report).
    pub fn observe(mut self, observer: impl FnMut(Time, NodeId, &Event) + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Checks liveness ([`crate::liveness`]) throughout the run: `sink`
    /// receives, at the end, every wait longer than `bound` of a downloader
    /// while a running host with upload to spare held a piece it lacked.
    pub fn check_liveness(mut self, bound: Duration, sink: impl FnOnce(Vec<Starvation>) + 'static) -> Self {
        let hosts = self.scenario.hosts();
        let check = Liveness::new(
            bound,
            hosts.iter().map(|h| h.role == Role::Peer).collect(),
            hosts.iter().map(|h| h.role != Role::Tracker).collect(),
            hosts.iter().map(|h| h.role == Role::Server).collect(),
            self.scenario.layout().pieces(),
        );
        self.liveness = Some((check, Box::new(sink)));
        self
    }

    /// Every host as the liveness check sees it, from now until the next
    /// instant (rates are settled).
    fn hosts_now(&self) -> Vec<HostNow> {
        (0..self.hosts.len() as u32)
            .map(|h| {
                let rate_sum = |link: u32| -> f64 {
                    self.link_flows[link as usize]
                        .iter()
                        .map(|&c| channel(&self.conns, c).rate)
                        .sum()
                };
                let cap = self.allocator.capacity(2 * h);
                HostNow {
                    running: !self.stalled(h),
                    receiving: self.link_flows[2 * h as usize + 1]
                        .iter()
                        .any(|&c| channel(&self.conns, c).rate > 0.0),
                    spare_upload: !cap.is_finite() || rate_sum(2 * h) < 0.5 * cap,
                }
            })
            .collect()
    }

    /// Runs to the end: every downloader complete, nothing left to happen,
    /// or a limit reached. `progress` is called every so often.
    pub fn run(mut self, mut progress: impl FnMut(&Progress)) -> Report {
        let max_time = Time::ZERO + self.scenario.limits.max_time.0;
        let max_events = self.scenario.limits.max_events;
        let outcome = loop {
            if self.all_complete {
                break Outcome::Complete;
            }
            let next_at = self.queue.next_at();
            if self.dirty && next_at.is_none_or(|t| t > self.now) {
                self.reallocate();
                continue;
            }
            let Some(at) = next_at else {
                break Outcome::Stalled;
            };
            if at > max_time {
                break Outcome::TimeLimit;
            }
            if self.events >= max_events {
                break Outcome::EventLimit;
            }
            if at > self.now && self.liveness.is_some() {
                let hosts = self.hosts_now();
                if let Some((check, _)) = self.liveness.as_mut() {
                    check.step(self.now, &hosts);
                }
            }
            let Some((at, seq, event)) = self.queue.pop() else {
                break Outcome::Stalled;
            };
            self.now = at;
            let origin = if seq < ORDINARY_SEQ {
                self.origin.remove(&seq).unwrap_or((at, seq))
            } else {
                (at, seq)
            };
            self.process(origin, event);
            if self.events % 65_536 == 0 {
                progress(&self.progress());
            }
        };
        progress(&self.progress());
        if let Some((check, sink)) = self.liveness.take() {
            sink(check.finish(self.now));
        }
        let stats = SimStats {
            events: self.events,
            end_time_ns: self.now.as_nanos(),
        };
        let hash = self.trace.hex();
        self.report
            .finish("sim", outcome, self.now, Some(hash), Some(stats))
    }

    fn progress(&self) -> Progress {
        let downloaders = self.scenario.downloaders();
        Progress {
            now: self.now,
            events: self.events,
            completed: self.report.completed(),
            downloaders,
            bytes_down: self.report.bytes_down(),
            bytes_wanted: u64::from(downloaders) * self.scenario.file.size.0,
        }
    }

    /// Whether `event` must wait: its process is hung, or it has to cross a
    /// cut access link. Returns the host to hold it for.
    fn held_by(&self, event: &SimEvent) -> Option<(u32, bool)> {
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

    /// Handles `event`, first scheduled with the key `origin` (time,
    /// sequence number), which orders it among held events.
    fn process(&mut self, origin: (Time, u64), event: SimEvent) {
        if let Some((node, inc)) = event.target() {
            let h = &self.hosts[node as usize];
            if !h.up || h.incarnation != inc {
                return; // meant for a process that died
            }
        }
        if let Some((host, link)) = self.held_by(&event) {
            self.arm_handshake_timeout(origin.0, &event);
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
            return;
        }
        let now = self.now;
        match event {
            SimEvent::Start { node, .. } => {
                self.events += 1;
                self.record(TAG_START, now.as_nanos(), node, &());
                if let Some((check, _)) = self.liveness.as_mut() {
                    check.on_start(node);
                }
                self.nodes[node as usize].handle_start(now);
                self.drain(node);
            }
            SimEvent::Timer { node, deadline, .. } => {
                if self.node_timer[node as usize] != Some(deadline) {
                    return; // superseded
                }
                self.events += 1;
                self.node_timer[node as usize] = None;
                self.record(TAG_TIMER, now.as_nanos(), node, &());
                self.nodes[node as usize].handle_timeout(now);
                self.drain(node);
            }
            SimEvent::FlowDone { chan, version } => {
                let ch = channel(&self.conns, chan);
                if ch.version != version || !ch.active {
                    return; // rescheduled or torn down
                }
                self.events += 1;
                self.finish_head(chan);
            }
            SimEvent::Deliver { conn, from, to, msg } => {
                let c = &self.conns[conn as usize];
                if !self.hosts[to as usize].up || !c.open[c.side(to)] {
                    // The receiver has seen the connection close, or is down.
                    tracing::debug!(from, to, ?msg, "message on a closed connection lost");
                    return;
                }
                self.events += 1;
                self.record(TAG_DELIVER, now.as_nanos(), to, &(from, &msg));
                self.nodes[to as usize].handle_message(NodeId(from), msg, now);
                self.drain(to);
            }
            SimEvent::Connection {
                conn,
                node,
                peer,
                event,
                ..
            } => {
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
            SimEvent::Storage { node, result, .. } => {
                self.events += 1;
                self.record(TAG_STORAGE, now.as_nanos(), node, &result);
                self.nodes[node as usize].handle_storage(result, now);
                self.drain(node);
            }
            SimEvent::Sent { node, peer, .. } => {
                self.record(TAG_SENT, now.as_nanos(), node, &peer);
                self.nodes[node as usize].handle_sent(NodeId(peer), now);
                self.drain(node);
            }
            SimEvent::Fault { host, index } => {
                self.events += 1;
                let f = self.faults[index];
                self.record(TAG_FAULT, now.as_nanos(), host, &(index, f.kind.name()));
                self.apply_fault(host, f.kind, f.upload, f.download);
            }
            SimEvent::Launch { host } => self.restart(host),
            SimEvent::HandshakeTimeout { conn } => self.handshake_timeout(conn),
        }
    }

    /// A dialer's `Opened` (due at `due`) has to wait: its `connect` fails
    /// [`CONNECT_TIMEOUT`] after it was made unless the wait ends first.
    /// That holds for the dialer's own hang too: its timer has expired when
    /// it resumes, and it hears `Failed`.
    fn arm_handshake_timeout(&mut self, due: Time, event: &SimEvent) {
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
    fn connected_at(&self, due: Time, node: u32, peer: u32) -> Time {
        let rtt = 2 * self.path_latency(node, peer);
        Time::ZERO + due.saturating_since(Time::ZERO + rtt)
    }

    /// The dialer of `conn` gives up on a handshake that has not completed:
    /// it hears `Failed`. The acceptor hears `Closed` if it had seen the
    /// connection open, else nothing (its process never took it).
    fn handshake_timeout(&mut self, conn: u32) {
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

    fn apply_fault(&mut self, host: u32, kind: FaultKind, upload: Option<f64>, download: Option<f64>) {
        let h = host as usize;
        let disruptive = matches!(
            kind,
            FaultKind::Crash
                | FaultKind::Hang
                | FaultKind::LinkDown
                | FaultKind::Bandwidth
                | FaultKind::Leave
        );
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
        let h = &mut self.hosts[host as usize];
        let held = std::mem::take(if link { &mut h.held_link } else { &mut h.held });
        for event in held {
            match event.event {
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

    fn crash(&mut self, host: u32) {
        let h = &mut self.hosts[host as usize];
        if !h.up {
            return;
        }
        h.up = false;
        h.hung = false;
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

    fn restart(&mut self, host: u32) {
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

    /// Carries out every output of `node`, then re-arms its timer.
    fn drain(&mut self, node: u32) {
        while let Some(output) = self.nodes[node as usize].poll_output() {
            match output {
                Output::Transmit(t) => self.transmit(node, t.to.0, t.msg),
                Output::Command(c) => self.command(node, c),
                Output::Event(e) => self.node_event(node, e),
            }
        }
        let next = self.nodes[node as usize].poll_timeout();
        if next != self.node_timer[node as usize] {
            self.node_timer[node as usize] = next;
            if let Some(deadline) = next {
                let inc = self.inc(node);
                self.schedule(deadline.max(self.now), SimEvent::Timer { node, inc, deadline });
            }
        }
    }

    fn node_event(&mut self, node: u32, event: Event) {
        self.record(TAG_EVENT, self.now.as_nanos(), node, &event);
        self.report.record(self.now, NodeId(node), &event);
        if let Some(observer) = self.observer.as_mut() {
            observer(self.now, NodeId(node), &event);
        }
        if let Some((check, _)) = self.liveness.as_mut() {
            check.on_event(node, &event);
        }
        match event {
            Event::DownloadComplete | Event::SenderFinished => self.all_complete = self.report.all_complete(),
            Event::PieceVerified { piece } => {
                self.hosts[node as usize].disk.insert(piece);
            }
            _ => {}
        }
    }

    fn command(&mut self, node: u32, command: Command) {
        self.record(TAG_COMMAND, self.now.as_nanos(), node, &command);
        match command {
            Command::Connect { peer } => self.connect(node, peer.0),
            Command::Disconnect { peer } => self.disconnect(node, peer.0),
            // The simulator models no disk: blocks are "stored" at once and
            // every piece passes its check (corruption is a fault to inject).
            Command::StoreBlock { .. } => {}
            Command::VerifyPiece { piece } => {
                let inc = self.inc(node);
                let result = StorageResult::Verified { piece };
                self.schedule(self.now, SimEvent::Storage { node, inc, result });
            }
            other => tracing::warn!(node, ?other, "command not modelled by the simulator"),
        }
    }

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

    fn connect(&mut self, node: u32, peer: u32) {
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

    fn disconnect(&mut self, node: u32, peer: u32) {
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
    fn close(&mut self, conn: u32, closer: u32, tell_closer: bool) {
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

    fn transmit(&mut self, from: u32, to: u32, msg: Message) {
        let Some(conn) = self.live.get(from, to) else {
            tracing::debug!(from, to, ?msg, "message to a peer without a connection dropped");
            return;
        };
        let c = &self.conns[conn as usize];
        let dir = c.side(from);
        if !c.open[dir] || c.close_after_drain[dir] {
            tracing::debug!(from, to, ?msg, "message on a connection not open dropped");
            return;
        }
        let chan = conn * 2 + dir as u32;
        let ch = channel_mut(&mut self.conns, chan);
        if !ch.active && ch.queue.is_empty() && msg.payload_len() == 0 {
            // What `pump` would do with it, without the trip through the
            // queue: a control message on an idle direction leaves at once.
            let arrival = self.now + self.path_latency(from, to);
            self.schedule(arrival, SimEvent::Deliver { conn, from, to, msg });
            return;
        }
        let payload = (msg.payload_len() > 0).then(|| msg.wire_len());
        ch.queue.push_back(msg);
        if let (Some(len), Some(_)) = (payload, self.send_window) {
            ch.unreported.push_back(len);
        }
        if !ch.active {
            self.pump(chan);
        }
        if payload.is_some() {
            self.release_sent(chan);
        }
    }

    /// Reports sent (`Node::handle_sent`) every payload message of `chan`
    /// that now fits in the send window: the messages reported before it
    /// have at most `send_window` wire bytes left to leave the uplink. The
    /// reports are events at the current instant, as a real driver's come
    /// from its connection tasks, not calls into the node now sending.
    fn release_sent(&mut self, chan: u32) {
        let Some(window) = self.send_window else {
            return;
        };
        let (_, from, to) = self.endpoints(chan);
        let now = self.now;
        loop {
            let ch = channel_mut(&mut self.conns, chan);
            let Some(&len) = ch.unreported.front() else {
                return;
            };
            if unsent_reported(ch, now) > window as f64 {
                return;
            }
            ch.unreported.pop_front();
            ch.reported_bytes += len;
            let inc = self.inc(from);
            self.schedule(
                now,
                SimEvent::Sent {
                    node: from,
                    inc,
                    peer: to,
                },
            );
        }
    }

    fn endpoints(&self, chan: u32) -> (u32, u32, u32) {
        let conn = chan / 2;
        let dir = (chan % 2) as usize;
        let c = &self.conns[conn as usize];
        (conn, c.ends[dir], c.ends[1 - dir])
    }

    /// Sends the control messages at the head of an idle direction and starts
    /// the first payload message, if any.
    fn pump(&mut self, chan: u32) {
        let (conn, from, to) = self.endpoints(chan);
        let dir = (chan % 2) as usize;
        let arrival = self.now + self.path_latency(from, to);
        loop {
            let ch = channel_mut(&mut self.conns, chan);
            let Some(head) = ch.queue.front() else {
                if ch.active {
                    self.set_busy(chan, false);
                }
                if self.conns[conn as usize].close_after_drain[dir] {
                    self.close(conn, from, true);
                }
                return;
            };
            if head.payload_len() > 0 {
                ch.remaining = head.wire_len() as f64;
                ch.last_update = self.now;
                ch.version += 1;
                if ch.active {
                    // Same rate as the message before it: schedule directly.
                    let (rate, remaining, version) = (ch.rate, ch.remaining, ch.version);
                    if let Some(t) = transfer_time(remaining, rate) {
                        self.schedule(self.now + t, SimEvent::FlowDone { chan, version });
                    }
                } else {
                    ch.rate = 0.0;
                    self.set_busy(chan, true);
                }
                return;
            }
            let Some(msg) = ch.queue.pop_front() else {
                return;
            };
            self.schedule(arrival, SimEvent::Deliver { conn, from, to, msg });
        }
    }

    /// The head message of `chan` has been fully sent.
    fn finish_head(&mut self, chan: u32) {
        let (conn, from, to) = self.endpoints(chan);
        let ch = channel_mut(&mut self.conns, chan);
        if let Some(msg) = ch.queue.pop_front() {
            let windowed = self.send_window.is_some();
            if windowed && msg.payload_len() > 0 {
                ch.reported_bytes -= msg.wire_len();
            }
            let arrival = self.now + self.path_latency(from, to);
            self.schedule(arrival, SimEvent::Deliver { conn, from, to, msg });
            if !windowed {
                // Handled now, not queued: it is part of the send that
                // finished (a hung sender holds it like any input).
                let inc = self.inc(from);
                self.seq += 1;
                self.process(
                    (self.now, self.seq),
                    SimEvent::Sent {
                        node: from,
                        inc,
                        peer: to,
                    },
                );
            }
        }
        self.pump(chan);
        self.release_sent(chan);
    }

    /// Adds busy direction `chan` to the component being collected, and its
    /// finite links to the walk.
    fn visit(&mut self, chan: u32, epoch: u32, component: &mut Vec<u32>, stack: &mut Vec<u32>) {
        if !channel(&self.conns, chan).active || self.chan_mark[chan as usize] == epoch {
            return;
        }
        self.chan_mark[chan as usize] = epoch;
        component.push(chan);
        let (_, from, to) = self.endpoints(chan);
        if self.stalled(from) || self.stalled(to) {
            return;
        }
        for link in [2 * from, 2 * to + 1] {
            if self.link_mark[link as usize] != epoch && self.allocator.capacity(link).is_finite() {
                stack.push(link);
            }
        }
    }

    /// Whether `host` moves no bytes at the moment (hung, cut off or dead).
    fn stalled(&self, host: u32) -> bool {
        let h = &self.hosts[host as usize];
        h.hung || h.link_down || !h.up
    }

    /// A direction starts or stops carrying payload: index it by its two
    /// links and remember what changed.
    fn set_busy(&mut self, chan: u32, busy: bool) {
        let (_, from, to) = self.endpoints(chan);
        let links = [2 * from, 2 * to + 1];
        channel_mut(&mut self.conns, chan).active = busy;
        self.dirty = true;
        if busy {
            for (side, link) in links.into_iter().enumerate() {
                self.chan_slot[chan as usize][side] = self.link_flows[link as usize].len() as u32;
                self.link_flows[link as usize].push(chan);
            }
            self.dirty_chans.push(chan);
            return;
        }
        for (side, link) in links.into_iter().enumerate() {
            let list = &mut self.link_flows[link as usize];
            let slot = self.chan_slot[chan as usize][side] as usize;
            list.swap_remove(slot);
            if let Some(&moved) = list.get(slot) {
                let (_, mfrom, _) = self.endpoints(moved);
                let moved_side = usize::from(2 * mfrom != link);
                self.chan_slot[moved as usize][moved_side] = slot as u32;
            }
            self.dirty_links.push(link);
        }
    }

    /// A host's links changed state or capacity.
    fn touch_host(&mut self, host: u32) {
        self.dirty_links.extend([2 * host, 2 * host + 1]);
        self.dirty = true;
    }

    /// Recomputes the max-min fair rates of the busy directions whose rates
    /// the changes since last time can affect, and reschedules the ones whose
    /// rate changed. Directions through a stalled host get rate zero.
    ///
    /// Only the changed links' component is recomputed: the busy directions
    /// reachable from them through links of finite capacity (an unlimited
    /// link couples nobody; a stalled direction loads nothing). Every busy
    /// direction on a finite link of the component is in it, so the fair
    /// shares found are exactly those of a recomputation from scratch.
    fn reallocate(&mut self) {
        self.dirty = false;
        self.epoch += 1;
        let epoch = self.epoch;
        let mut stack = std::mem::take(&mut self.dirty_links);
        let mut component = Vec::new();
        let seeds = std::mem::take(&mut self.dirty_chans);
        for &chan in &seeds {
            self.visit(chan, epoch, &mut component, &mut stack);
        }
        while let Some(link) = stack.pop() {
            if self.link_mark[link as usize] == epoch {
                continue;
            }
            self.link_mark[link as usize] = epoch;
            for i in 0..self.link_flows[link as usize].len() {
                let chan = self.link_flows[link as usize][i];
                self.visit(chan, epoch, &mut component, &mut stack);
            }
        }
        component.sort_unstable();
        self.flows.clear();
        self.flow_chans.clear();
        let mut stalled = Vec::new();
        for chan in component {
            let (_, from, to) = self.endpoints(chan);
            if self.stalled(from) || self.stalled(to) {
                stalled.push(chan);
            } else {
                self.flows.push((from, to));
                self.flow_chans.push(chan);
            }
        }
        self.allocator.allocate(&self.flows, &mut self.rates);
        let updates: Vec<(u32, f64)> = self
            .flow_chans
            .iter()
            .copied()
            .zip(self.rates.iter().copied())
            .chain(stalled.into_iter().map(|c| (c, 0.0)))
            .collect();
        let now = self.now;
        for (chan, rate) in updates {
            let ch = channel_mut(&mut self.conns, chan);
            if ch.rate == rate {
                continue;
            }
            let elapsed = (now - ch.last_update).as_secs_f64();
            if ch.rate > 0.0 {
                ch.remaining = (ch.remaining - ch.rate * elapsed).max(0.0);
            }
            ch.last_update = now;
            ch.rate = rate;
            ch.version += 1;
            let (remaining, version) = (ch.remaining, ch.version);
            if let Some(t) = transfer_time(remaining, rate) {
                self.schedule(now + t, SimEvent::FlowDone { chan, version });
            }
        }
    }
}

/// When a connecting kernel sends the SYN that gets through once a cut link
/// is back at `now`, for a `connect` made at `connected_at`; `None` when the
/// dialer stops waiting first ([`CONNECT_TIMEOUT`]). Linux sends the first
/// SYN at once and retransmits it 1, 3, 7, 15… s later (initial timeout
/// 1 s, doubled each time).
fn syn_retry(connected_at: Time, now: Time) -> Option<Time> {
    let deadline = connected_at + CONNECT_TIMEOUT;
    (0..=6u32)
        .map(|k| connected_at + Duration::from_secs((1u64 << k) - 1))
        .take_while(|&sent| sent < deadline)
        .find(|&sent| sent >= now)
}

/// Time to send `bytes` at `rate` bytes per second, rounded up to the next
/// nanosecond so that nothing ever arrives sooner than the link allows;
/// `None` at rate zero (a stalled flow never finishes by itself).
fn transfer_time(bytes: f64, rate: f64) -> Option<Duration> {
    if bytes <= 0.0 || rate.is_infinite() {
        return Some(Duration::ZERO);
    }
    if rate <= 0.0 {
        return None;
    }
    Some(Duration::from_nanos((bytes / rate * 1e9).ceil() as u64))
}
