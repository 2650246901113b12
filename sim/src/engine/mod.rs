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
//!
//! The parts of the model, one file each: `events` (what can happen, in
//! what order, and its trace record), `nodes` (inputs handed to a node and
//! its outputs carried out), `conns` (a connection's life), `flows` (how
//! a direction of a connection drains), `rates` (max-min sharing of the
//! links) and `faults` (crashes, hangs, cut links and what waits for them).

mod conns;
mod events;
mod faults;
mod flows;
mod nodes;
mod rates;
#[cfg(test)]
mod testkit;

use std::collections::BTreeMap;
use std::time::Duration;

use peerlab_core::{Event, Node, NodeId, Time};
use peerlab_scenarios::nodes::{build_nodes, check_runnable};
use peerlab_scenarios::report::SimStats;
use peerlab_scenarios::{Outcome, Report, ReportBuilder, Role, Scenario, ScenarioError};

use crate::bandwidth::{Allocator, Flow};
use crate::liveness::{Liveness, Starvation};
use crate::queue::EventQueue;
use crate::trace::TraceHasher;

use conns::{Conn, LiveConns};
pub(crate) use events::TAG_EVENT;
use events::{ORDINARY_SEQ, SimEvent, TAG_FAULT, TAG_SENT, TAG_START, TAG_STORAGE};
use faults::{HostState, ScheduledFault, scheduled_faults};
use flows::channel;

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
    /// Per link, what acknowledgements take of it in the allocation being
    /// made (`reallocate`).
    reserved: Vec<f64>,
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
    /// TCP's retransmission timeout before backoff (`network.rto`): how a
    /// direction that lost bytes at a cut link comes back (`flows`).
    rto: Duration,
    /// Unit tests: after every reallocation, check the rates against an
    /// allocation of every busy direction from scratch.
    #[cfg(test)]
    verify_rates: bool,
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
        let faults = scheduled_faults(scenario, &hosts);
        let pieces = scenario.layout().pieces();
        let mut sim = MessageSim {
            nodes: build_nodes(scenario),
            hosts: caps
                .iter()
                .zip(&hosts)
                .map(|(&capacity, host)| HostState::new(capacity, host, pieces))
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
            reserved: vec![0.0; 2 * hosts.len()],
            link_mark: vec![0; 2 * hosts.len()],
            chan_mark: Vec::new(),
            dirty: false,
            allocator: Allocator::new(&caps).with_ack_load(scenario.network.ack_load),
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
            rto: scenario.network.rto.0,
            scenario: scenario.clone(),
            #[cfg(test)]
            verify_rates: false,
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
            self.hold(origin, host, link, event);
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
            SimEvent::Timer { node, deadline, .. } => self.timer(node, deadline),
            SimEvent::FlowDone { chan, version } => {
                let ch = channel(&self.conns, chan);
                if ch.version != version || !ch.active {
                    return; // rescheduled or torn down
                }
                self.events += 1;
                self.finish_head(chan);
            }
            SimEvent::Deliver { conn, from, to, msg } => self.deliver(conn, from, to, msg),
            SimEvent::Connection {
                conn,
                node,
                peer,
                event,
                ..
            } => self.connection_news(conn, node, peer, event),
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
                self.apply_fault(host, &f);
            }
            SimEvent::Launch { host } => self.restart(host),
            SimEvent::HandshakeTimeout { conn } => self.handshake_timeout(conn),
            SimEvent::Retransmit { chan, retry } => self.retransmit(chan, retry),
        }
    }
}
