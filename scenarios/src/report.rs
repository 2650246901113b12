//! The report: what a run produced, identical in shape for every backend
//! (DESIGN.md §6). Backends feed node events into a [`ReportBuilder`]; the
//! metrics come from the events alone, so simulator and real runs are
//! comparable by construction.

use peerlab_core::{Event, NodeId, Time};
use serde::{Deserialize, Serialize};

use crate::bounds::Bounds;
use crate::scenario::{Host, Protocol, Role, Scenario};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every downloader holds the whole file.
    Complete,
    /// Nothing was left to happen but some downloaders were not done.
    Stalled,
    /// `limits.max_time` was reached first.
    TimeLimit,
    /// `limits.max_events` was reached first.
    EventLimit,
}

/// Per-host results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// The host's name.
    pub name: String,
    /// What it did.
    pub role: Role,
    /// When it held the whole file (downloaders only; null if never).
    pub completed_s: Option<f64>,
    /// Payload bytes it received (including discarded duplicates).
    pub bytes_down: u64,
    /// Payload bytes others received from it.
    pub bytes_up: u64,
    /// Pieces it verified.
    pub pieces_verified: u32,
}

/// Whole-run counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Blocks that arrived but were not needed.
    pub blocks_discarded: u64,
    /// Pieces that failed their hash check.
    pub pieces_corrupt: u64,
    /// Peers disconnected for breaking the protocol.
    pub protocol_violations: u64,
    /// Times a downloader lost its source and had to reconnect.
    pub sources_lost: u64,
    /// Storage failures (disk full, unwritable).
    pub storage_failures: u64,
    /// Faults applied to the run.
    pub faults: u64,
    /// Failovers to another source or relay.
    pub failovers: u64,
}

/// Simulator-only statistics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end of the run, in nanoseconds.
    pub end_time_ns: u64,
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `sim`, `loopback` or `mininet`.
    pub backend: String,
    /// The scenario's name, if it has one.
    pub scenario: Option<String>,
    /// The protocol run.
    pub protocol: Protocol,
    /// The run's seed.
    pub seed: u64,
    /// Size of the file.
    pub file_bytes: u64,
    /// Size of a piece.
    pub piece_bytes: u64,
    /// Number of downloaders (N).
    pub downloaders: u32,
    /// The goodput factor the bounds and the simulator used.
    pub goodput_factor: f64,
    /// How the run ended.
    pub outcome: Outcome,
    /// When the last downloader completed (null unless `outcome` is complete).
    pub distribution_time_s: Option<f64>,
    /// Lower bounds on payload rates.
    pub bounds: Bounds,
    /// `distribution_time_s` over the bound of this protocol's family
    /// (client-server bound for client-server, P2P bound otherwise).
    pub ratio_to_bound: Option<f64>,
    /// Payload bytes the server uploaded.
    pub server_bytes_up: u64,
    /// Every host, server first.
    pub hosts: Vec<HostReport>,
    /// Whole-run counters.
    pub counters: Counters,
    /// Hash of the simulator's full event trace (null for real backends).
    pub trace_hash: Option<String>,
    /// Simulator statistics (null for real backends).
    pub sim: Option<SimStats>,
    /// Relay runs: when the sender's upload last finished (every chunk
    /// acknowledged by the destination or held by a live relay); absent if
    /// it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_finished_s: Option<f64>,
    /// Relay runs: how long the destination had made no progress when the
    /// sender first failed over; absent without a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_s: Option<f64>,
    /// Relay runs: payload bytes relays accepted from the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_relayed: Option<u64>,
}

impl Report {
    /// The bound this run is measured against.
    pub fn bound_s(&self) -> f64 {
        match self.protocol {
            Protocol::ClientServer => self.bounds.client_server_s,
            _ => self.bounds.p2p_s,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Stats {
    completed: Option<Time>,
    bytes_down: u64,
    bytes_up: u64,
    pieces_verified: u32,
}

/// Turns a run's event stream into its [`Report`].
#[derive(Clone, Debug)]
pub struct ReportBuilder {
    scenario: Scenario,
    hosts: Vec<Host>,
    stats: Vec<Stats>,
    counters: Counters,
    bytes_down: u64,
    sender_finished: Option<Time>,
    detection: Option<std::time::Duration>,
    bytes_relayed: u64,
}

impl ReportBuilder {
    /// A builder for a run of `scenario`.
    pub fn new(scenario: &Scenario) -> Self {
        let hosts = scenario.hosts();
        ReportBuilder {
            scenario: scenario.clone(),
            stats: vec![Stats::default(); hosts.len()],
            hosts,
            counters: Counters::default(),
            bytes_down: 0,
            sender_finished: None,
            detection: None,
            bytes_relayed: 0,
        }
    }

    /// Records `event`, which happened at `node` at `at`.
    pub fn record(&mut self, at: Time, node: NodeId, event: &Event) {
        let i = node.0 as usize;
        match event {
            Event::BlockReceived { from, block } | Event::BlockDiscarded { from, block } => {
                self.stats[i].bytes_down += u64::from(block.len);
                self.bytes_down += u64::from(block.len);
                if let Some(s) = self.stats.get_mut(from.0 as usize) {
                    s.bytes_up += u64::from(block.len);
                }
                if matches!(event, Event::BlockDiscarded { .. }) {
                    self.counters.blocks_discarded += 1;
                } else if self.hosts[i].role == Role::Relay {
                    self.bytes_relayed += u64::from(block.len);
                }
            }
            Event::PieceVerified { .. } => self.stats[i].pieces_verified += 1,
            Event::PieceCorrupt { .. } => self.counters.pieces_corrupt += 1,
            Event::DownloadComplete => {
                self.stats[i].completed.get_or_insert(at);
            }
            Event::ProtocolViolation { .. } => self.counters.protocol_violations += 1,
            Event::SourceLost { .. } => self.counters.sources_lost += 1,
            Event::StorageFailed { .. } => self.counters.storage_failures += 1,
            Event::FailoverStarted { detection, .. } => {
                self.counters.failovers += 1;
                self.detection.get_or_insert(*detection);
            }
            Event::SenderFinished => self.sender_finished = Some(at),
            _ => {}
        }
    }

    /// Whether every downloader has completed.
    pub fn all_complete(&self) -> bool {
        self.hosts
            .iter()
            .zip(&self.stats)
            .all(|(h, s)| h.role != Role::Peer || s.completed.is_some())
            // A relay run is over when the sender has also heard that it is
            // done (normally after the destination completes).
            && (self.scenario.protocol != Protocol::Relay || self.sender_finished.is_some())
    }

    /// Counts one fault applied to the run.
    pub fn count_fault(&mut self) {
        self.counters.faults += 1;
    }

    /// Payload bytes received by all hosts so far.
    pub fn bytes_down(&self) -> u64 {
        self.bytes_down
    }

    /// Downloaders that have completed.
    pub fn completed(&self) -> u32 {
        self.hosts
            .iter()
            .zip(&self.stats)
            .filter(|(h, s)| h.role == Role::Peer && s.completed.is_some())
            .count() as u32
    }

    /// The report. `outcome` says how the run ended.
    pub fn finish(
        self,
        backend: &str,
        outcome: Outcome,
        trace_hash: Option<String>,
        sim: Option<SimStats>,
    ) -> Report {
        let s = &self.scenario;
        let bounds = Bounds::of(s);
        let distribution = if outcome == Outcome::Complete {
            self.hosts
                .iter()
                .zip(&self.stats)
                .filter(|(h, _)| h.role == Role::Peer)
                .filter_map(|(_, st)| st.completed)
                .max()
                .map(Time::as_secs_f64)
        } else {
            None
        };
        let mut report = Report {
            backend: backend.to_string(),
            scenario: s.name.clone(),
            protocol: s.protocol,
            seed: s.seed,
            file_bytes: s.file.size.0,
            piece_bytes: u64::from(s.layout().piece_len()),
            downloaders: s.downloaders(),
            goodput_factor: s.network.goodput,
            outcome,
            distribution_time_s: distribution,
            bounds,
            ratio_to_bound: None,
            server_bytes_up: self.stats[0].bytes_up,
            hosts: self
                .hosts
                .iter()
                .zip(&self.stats)
                .map(|(h, st)| HostReport {
                    name: h.name.clone(),
                    role: h.role,
                    completed_s: st.completed.map(Time::as_secs_f64),
                    bytes_down: st.bytes_down,
                    bytes_up: st.bytes_up,
                    pieces_verified: st.pieces_verified,
                })
                .collect(),
            counters: self.counters,
            trace_hash,
            sim,
            sender_finished_s: None,
            detection_s: None,
            bytes_relayed: None,
        };
        if s.protocol == Protocol::Relay {
            report.sender_finished_s = self.sender_finished.map(Time::as_secs_f64);
            report.detection_s = self.detection.map(|d| d.as_secs_f64());
            report.bytes_relayed = Some(self.bytes_relayed);
        }
        report.ratio_to_bound = report.distribution_time_s.map(|d| d / report.bound_s());
        report
    }
}
