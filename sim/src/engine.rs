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

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

use peerlab_core::{Command, ConnectionEvent, Event, Message, Node, NodeId, Output, StorageResult, Time};
use peerlab_scenarios::nodes::{build_nodes, check_runnable};
use peerlab_scenarios::report::SimStats;
use peerlab_scenarios::{Outcome, Report, ReportBuilder, Scenario, ScenarioError};

use crate::bandwidth::{Allocator, Flow};
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

#[derive(Debug)]
enum SimEvent {
    Start {
        node: u32,
    },
    Timer {
        node: u32,
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
        peer: u32,
        event: ConnectionEvent,
    },
    Storage {
        node: u32,
        result: StorageResult,
    },
}

#[derive(Debug)]
struct Queued {
    at: Time,
    seq: u64,
    event: SimEvent,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
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
}

/// One simulated run of a scenario.
pub struct Simulation {
    scenario: Scenario,
    nodes: Vec<Box<dyn Node>>,
    latency: Vec<Duration>,
    node_timer: Vec<Option<Time>>,
    now: Time,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    conns: Vec<Conn>,
    live: BTreeMap<(u32, u32), u32>,
    chans: Vec<Channel>,
    active: BTreeSet<u32>,
    dirty: bool,
    allocator: Allocator,
    flows: Vec<Flow>,
    rates: Vec<f64>,
    report: ReportBuilder,
    trace: TraceHasher,
    events: u64,
    all_complete: bool,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
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
const TAG_EVENT: u8 = 6;
const TAG_COMMAND: u8 = 7;

impl Simulation {
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
        let mut sim = Simulation {
            nodes: build_nodes(scenario),
            latency: hosts.iter().map(|h| h.latency).collect(),
            node_timer: vec![None; hosts.len()],
            now: Time::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            conns: Vec::new(),
            live: BTreeMap::new(),
            chans: Vec::new(),
            active: BTreeSet::new(),
            dirty: false,
            allocator: Allocator::new(&caps),
            flows: Vec::new(),
            rates: Vec::new(),
            report: ReportBuilder::new(scenario),
            trace: TraceHasher::default(),
            events: 0,
            all_complete: false,
            scenario: scenario.clone(),
        };
        for node in 0..hosts.len() as u32 {
            sim.schedule(Time::ZERO, SimEvent::Start { node });
        }
        Ok(sim)
    }

    fn schedule(&mut self, at: Time, event: SimEvent) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn path_latency(&self, a: u32, b: u32) -> Duration {
        self.latency[a as usize] + self.latency[b as usize]
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
            let next_at = self.queue.peek().map(|Reverse(q)| q.at);
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
            let Some(Reverse(q)) = self.queue.pop() else {
                break Outcome::Stalled;
            };
            self.now = q.at;
            self.process(q.event);
            if self.events % 65_536 == 0 {
                progress(&self.progress());
            }
        };
        progress(&self.progress());
        let stats = SimStats {
            events: self.events,
            end_time_ns: self.now.as_nanos(),
        };
        let hash = self.trace.hex();
        self.report.finish("sim", outcome, Some(hash), Some(stats))
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

    fn process(&mut self, event: SimEvent) {
        let now = self.now;
        match event {
            SimEvent::Start { node } => {
                self.events += 1;
                self.trace.record(TAG_START, now.as_nanos(), node, &());
                self.nodes[node as usize].handle_start(now);
                self.drain(node);
            }
            SimEvent::Timer { node, deadline } => {
                if self.node_timer[node as usize] != Some(deadline) {
                    return; // superseded
                }
                self.events += 1;
                self.node_timer[node as usize] = None;
                self.trace.record(TAG_TIMER, now.as_nanos(), node, &());
                self.nodes[node as usize].handle_timeout(now);
                self.drain(node);
            }
            SimEvent::FlowDone { chan, version } => {
                if self.chans[chan as usize].version != version || !self.chans[chan as usize].active {
                    return; // rescheduled or torn down
                }
                self.events += 1;
                self.finish_head(chan);
            }
            SimEvent::Deliver { conn, from, to, msg } => {
                let c = &self.conns[conn as usize];
                let side = usize::from(c.ends[1] == to);
                if !c.open[side] {
                    return; // the receiver has seen the connection close
                }
                self.events += 1;
                self.trace.record(TAG_DELIVER, now.as_nanos(), to, &(from, &msg));
                self.nodes[to as usize].handle_message(NodeId(from), msg, now);
                self.drain(to);
            }
            SimEvent::Connection {
                conn,
                node,
                peer,
                event,
            } => {
                if let Some(conn) = conn {
                    let c = &mut self.conns[conn as usize];
                    let side = usize::from(c.ends[1] == node);
                    match event {
                        ConnectionEvent::Opened if c.closed => return,
                        ConnectionEvent::Opened => c.open[side] = true,
                        ConnectionEvent::Closed | ConnectionEvent::Failed => c.open[side] = false,
                    }
                }
                self.events += 1;
                self.trace
                    .record(TAG_CONNECTION, now.as_nanos(), node, &(peer, event));
                self.nodes[node as usize].handle_connection(NodeId(peer), event, now);
                self.drain(node);
            }
            SimEvent::Storage { node, result } => {
                self.events += 1;
                self.trace.record(TAG_STORAGE, now.as_nanos(), node, &result);
                self.nodes[node as usize].handle_storage(result, now);
                self.drain(node);
            }
        }
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
                self.schedule(deadline.max(self.now), SimEvent::Timer { node, deadline });
            }
        }
    }

    fn node_event(&mut self, node: u32, event: Event) {
        self.trace.record(TAG_EVENT, self.now.as_nanos(), node, &event);
        self.report.record(self.now, NodeId(node), &event);
        if event == Event::DownloadComplete {
            self.all_complete = self.report.all_complete();
        }
    }

    fn command(&mut self, node: u32, command: Command) {
        self.trace
            .record(TAG_COMMAND, self.now.as_nanos(), node, &command);
        match command {
            Command::Connect { peer } => self.connect(node, peer.0),
            Command::Disconnect { peer } => self.disconnect(node, peer.0),
            // The simulator models no disk: blocks are "stored" at once and
            // every piece passes its check (corruption is a fault to inject).
            Command::StoreBlock { .. } => {}
            Command::VerifyPiece { piece } => self.schedule(
                self.now,
                SimEvent::Storage {
                    node,
                    result: StorageResult::Verified { piece },
                },
            ),
            other => tracing::warn!(node, ?other, "command not modelled by the simulator"),
        }
    }

    fn connect(&mut self, node: u32, peer: u32) {
        let key = (node.min(peer), node.max(peer));
        if peer == node || peer as usize >= self.nodes.len() {
            let failed = SimEvent::Connection {
                conn: None,
                node,
                peer,
                event: ConnectionEvent::Failed,
            };
            self.schedule(self.now, failed);
            return;
        }
        if let Some(&conn) = self.live.get(&key) {
            // Already open or opening: the node hears `Opened` (again).
            let c = &self.conns[conn as usize];
            if c.open[usize::from(c.ends[1] == node)] {
                let opened = SimEvent::Connection {
                    conn: Some(conn),
                    node,
                    peer,
                    event: ConnectionEvent::Opened,
                };
                self.schedule(self.now, opened);
            }
            return;
        }
        let conn = self.conns.len() as u32;
        self.conns.push(Conn {
            ends: [node, peer],
            open: [false; 2],
            closed: false,
            close_after_drain: [false; 2],
        });
        self.chans.push(Channel::default());
        self.chans.push(Channel::default());
        self.live.insert(key, conn);
        let at = self.now + 2 * self.path_latency(node, peer);
        for (n, p) in [(node, peer), (peer, node)] {
            let opened = SimEvent::Connection {
                conn: Some(conn),
                node: n,
                peer: p,
                event: ConnectionEvent::Opened,
            };
            self.schedule(at, opened);
        }
    }

    fn disconnect(&mut self, node: u32, peer: u32) {
        let Some(&conn) = self.live.get(&(node.min(peer), node.max(peer))) else {
            return;
        };
        let dir = usize::from(self.conns[conn as usize].ends[1] == node);
        let chan = &self.chans[(conn * 2) as usize + dir];
        if chan.queue.is_empty() {
            self.close(conn, node);
        } else {
            self.conns[conn as usize].close_after_drain[dir] = true;
        }
    }

    /// Tears `conn` down now; `closer` hears of it at once, the other end
    /// after the path latency.
    fn close(&mut self, conn: u32, closer: u32) {
        let c = &mut self.conns[conn as usize];
        c.closed = true;
        let ends = c.ends;
        self.live.remove(&(ends[0].min(ends[1]), ends[0].max(ends[1])));
        for chan in [conn * 2, conn * 2 + 1] {
            let ch = &mut self.chans[chan as usize];
            ch.queue.clear();
            ch.version += 1;
            if ch.active {
                ch.active = false;
                self.active.remove(&chan);
                self.dirty = true;
            }
        }
        let other = if ends[0] == closer { ends[1] } else { ends[0] };
        let later = self.now + self.path_latency(closer, other);
        for (n, p, at) in [(closer, other, self.now), (other, closer, later)] {
            let closed = SimEvent::Connection {
                conn: Some(conn),
                node: n,
                peer: p,
                event: ConnectionEvent::Closed,
            };
            self.schedule(at, closed);
        }
    }

    fn transmit(&mut self, from: u32, to: u32, msg: Message) {
        let Some(&conn) = self.live.get(&(from.min(to), from.max(to))) else {
            tracing::debug!(from, to, ?msg, "message to a peer without a connection dropped");
            return;
        };
        let c = &self.conns[conn as usize];
        let dir = usize::from(c.ends[1] == from);
        if !c.open[dir] || c.close_after_drain[dir] {
            tracing::debug!(from, to, ?msg, "message on a connection not open dropped");
            return;
        }
        let chan = conn * 2 + dir as u32;
        self.chans[chan as usize].queue.push_back(msg);
        if !self.chans[chan as usize].active {
            self.pump(chan);
        }
    }

    /// Sends the control messages at the head of an idle direction and starts
    /// the first payload message, if any.
    fn pump(&mut self, chan: u32) {
        let conn = chan / 2;
        let dir = (chan % 2) as usize;
        let (from, to) = {
            let c = &self.conns[conn as usize];
            (c.ends[dir], c.ends[1 - dir])
        };
        let arrival = self.now + self.path_latency(from, to);
        loop {
            let ch = &mut self.chans[chan as usize];
            let Some(head) = ch.queue.front() else {
                if ch.active {
                    ch.active = false;
                    self.active.remove(&chan);
                    self.dirty = true;
                }
                if self.conns[conn as usize].close_after_drain[dir] {
                    self.close(conn, from);
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
                    self.schedule(
                        self.now + transfer_time(remaining, rate),
                        SimEvent::FlowDone { chan, version },
                    );
                } else {
                    ch.active = true;
                    ch.rate = 0.0;
                    self.active.insert(chan);
                    self.dirty = true;
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
        let conn = chan / 2;
        let dir = (chan % 2) as usize;
        let (from, to) = {
            let c = &self.conns[conn as usize];
            (c.ends[dir], c.ends[1 - dir])
        };
        if let Some(msg) = self.chans[chan as usize].queue.pop_front() {
            let arrival = self.now + self.path_latency(from, to);
            self.schedule(arrival, SimEvent::Deliver { conn, from, to, msg });
        }
        self.pump(chan);
    }

    /// Recomputes the max-min fair rates of every busy direction and
    /// reschedules the ones whose rate changed.
    fn reallocate(&mut self) {
        self.dirty = false;
        self.flows.clear();
        for &chan in &self.active {
            let c = &self.conns[(chan / 2) as usize];
            let dir = (chan % 2) as usize;
            self.flows.push((c.ends[dir], c.ends[1 - dir]));
        }
        self.allocator.allocate(&self.flows, &mut self.rates);
        let now = self.now;
        let active: Vec<u32> = self.active.iter().copied().collect();
        for (i, chan) in active.into_iter().enumerate() {
            let rate = self.rates[i];
            let ch = &mut self.chans[chan as usize];
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
            self.schedule(
                now + transfer_time(remaining, rate),
                SimEvent::FlowDone { chan, version },
            );
        }
    }
}

/// Time to send `bytes` at `rate` bytes per second, rounded up to the next
/// nanosecond so that nothing ever arrives sooner than the link allows.
fn transfer_time(bytes: f64, rate: f64) -> Duration {
    if bytes <= 0.0 || rate.is_infinite() {
        return Duration::ZERO;
    }
    Duration::from_nanos((bytes / rate * 1e9).ceil() as u64)
}

/// Runs `scenario` to the end and returns its report.
pub fn run(scenario: &Scenario, origin: &str) -> Result<Report, ScenarioError> {
    Ok(Simulation::new(scenario, origin)?.run(|_| {}))
}
