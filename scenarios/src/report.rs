//! The report: what a run produced, identical in shape for every backend
//! (README: "Scenarios" and "Reports"). Backends feed node events into a
//! [`ReportBuilder`]; the metrics come from the events alone, so simulator and
//! real runs are comparable by construction.

use peerlab_core::{Event, NodeId, Time};
use serde::{Deserialize, Serialize};

use crate::bounds::Bounds;
use crate::nodes::Milestone;
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
    /// Pieces it received that failed their hash check (their blocks were
    /// thrown away and fetched again).
    #[serde(default)]
    pub pieces_corrupt: u32,
    /// Payload bytes of those pieces: what bad data cost it.
    #[serde(default)]
    pub corrupt_bytes: u64,
    /// Neighbours it banned for sending bad data.
    #[serde(default)]
    pub peers_banned: u32,
    /// Neighbours it suspended: each shared failed pieces that no
    /// comparison had cleared yet (swarm).
    #[serde(default)]
    pub peers_suspended: u32,
    /// Times a neighbour left its requests unanswered too long (swarm: they
    /// were cancelled there and asked of others).
    #[serde(default)]
    pub requests_timed_out: u32,
    /// Downloaders: the longest time it lacked pieces and received nothing
    /// (from its start, between blocks, and until the run ended if it never
    /// completed; time it was down counts too).
    #[serde(default)]
    pub longest_stall_s: Option<f64>,
}

/// A downloader that received nothing for a while although it lacked
/// pieces: the longest such wait of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// The downloader.
    pub host: String,
    /// When its wait began (its start, or its last block before the wait).
    pub from_s: f64,
    /// When it ended (its next block, or the end of the run).
    pub to_s: f64,
}

impl Stall {
    /// How long it waited.
    pub fn length_s(&self) -> f64 {
        self.to_s - self.from_s
    }
}

/// Whole-run counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Blocks that arrived but were not needed.
    pub blocks_discarded: u64,
    /// Pieces that failed their hash check.
    pub pieces_corrupt: u64,
    /// Payload bytes of the pieces that failed their hash check.
    #[serde(default)]
    pub corrupt_bytes: u64,
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
    /// Neighbours banned for sending bad data (each ban by each downloader).
    #[serde(default)]
    pub peers_banned: u64,
    /// Neighbours suspended for shared failed pieces (each time, by each
    /// downloader).
    #[serde(default)]
    pub peers_suspended: u64,
    /// Requests timed out at a neighbour that unchoked but did not answer
    /// (each time, at each downloader).
    #[serde(default)]
    pub requests_timed_out: u64,
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
    /// The longest time any downloader lacked pieces and received nothing
    /// ([`HostReport::longest_stall_s`]): a run that stalled shows here.
    #[serde(default)]
    pub longest_stall: Option<Stall>,
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

    /// The `q` quantile (nearest rank) of the downloaders' completion
    /// times, if any completed.
    pub fn completion_quantile(&self, q: f64) -> Option<f64> {
        let mut times: Vec<f64> = self
            .hosts
            .iter()
            .filter(|h| h.role == Role::Peer)
            .filter_map(|h| h.completed_s)
            .collect();
        times.sort_by(f64::total_cmp);
        nearest_rank(&times, q)
    }

    /// The name of the bound this run is measured against.
    pub fn bound_name(&self) -> &'static str {
        match self.protocol {
            Protocol::ClientServer => "client-server",
            _ => "peer-to-peer",
        }
    }
}

/// The `q` quantile of sorted `values` (nearest rank), if any.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[derive(Clone, Debug, Default)]
struct Stats {
    completed: Option<Time>,
    bytes_down: u64,
    bytes_up: u64,
    pieces_verified: u32,
    pieces_corrupt: u32,
    corrupt_bytes: u64,
    peers_banned: u32,
    peers_suspended: u32,
    requests_timed_out: u32,
    /// Downloaders: when it last received a block (its start at first).
    last_block: Time,
    /// Its longest wait without a block, so far: (from, to).
    stall: Option<(Time, Time)>,
}

impl Stats {
    /// A wait from its last block until `at`.
    fn waited_until(&mut self, at: Time) {
        let from = self.last_block;
        if at > from && self.stall.is_none_or(|(f, t)| at - from > t - f) {
            self.stall = Some((from, at));
        }
    }
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
    /// What ends the run.
    ends_when: Vec<(usize, Milestone)>,
}

impl ReportBuilder {
    /// A builder for a run of `scenario`.
    pub fn new(scenario: &Scenario) -> Self {
        let hosts = scenario.hosts();
        ReportBuilder {
            scenario: scenario.clone(),
            stats: hosts
                .iter()
                .map(|h| Stats {
                    last_block: Time::ZERO + h.start,
                    ..Stats::default()
                })
                .collect(),
            hosts,
            counters: Counters::default(),
            bytes_down: 0,
            sender_finished: None,
            detection: None,
            bytes_relayed: 0,
            ends_when: crate::nodes::run_ends_when(scenario),
        }
    }

    /// Records `event`, which happened at `node` at `at`.
    pub fn record(&mut self, at: Time, node: NodeId, event: &Event) {
        let i = node.0 as usize;
        match event {
            Event::BlockReceived { from, block } | Event::BlockDiscarded { from, block } => {
                if self.stats[i].completed.is_none() {
                    self.stats[i].waited_until(at);
                    self.stats[i].last_block = at;
                }
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
            Event::PieceCorrupt { piece } => {
                let layout = self.scenario.layout();
                let bytes = if *piece < layout.pieces() {
                    u64::from(layout.piece_size(*piece))
                } else {
                    0 // not a piece of this file: nothing to count
                };
                self.counters.pieces_corrupt += 1;
                self.counters.corrupt_bytes += bytes;
                self.stats[i].pieces_corrupt += 1;
                self.stats[i].corrupt_bytes += bytes;
            }
            Event::PeerBanned { .. } => {
                self.counters.peers_banned += 1;
                self.stats[i].peers_banned += 1;
            }
            Event::PeerSuspended { .. } => {
                self.counters.peers_suspended += 1;
                self.stats[i].peers_suspended += 1;
            }
            Event::RequestsTimedOut { .. } => {
                self.counters.requests_timed_out += 1;
                self.stats[i].requests_timed_out += 1;
            }
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

    /// Whether the run is over ([`crate::nodes::run_ends_when`]).
    pub fn all_complete(&self) -> bool {
        self.ends_when.iter().all(|&(k, m)| match m {
            Milestone::DownloadComplete => self.stats[k].completed.is_some(),
            Milestone::SenderFinished => self.sender_finished.is_some(),
        })
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

    /// The report of a run that ended at `end`. `outcome` says how.
    pub fn finish(
        mut self,
        backend: &str,
        outcome: Outcome,
        end: Time,
        trace_hash: Option<String>,
        sim: Option<SimStats>,
    ) -> Report {
        for (h, st) in self.hosts.iter().zip(&mut self.stats) {
            if h.role == Role::Peer && st.completed.is_none() {
                st.waited_until(end);
            }
        }
        let secs = |(from, to): (Time, Time)| (from.as_secs_f64(), to.as_secs_f64());
        let longest_stall = self
            .hosts
            .iter()
            .zip(&self.stats)
            .filter(|(h, _)| h.role == Role::Peer)
            .filter_map(|(h, st)| st.stall.map(|w| (h, w)))
            .max_by_key(|&(_, (from, to))| to - from)
            .map(|(h, w)| {
                let (from_s, to_s) = secs(w);
                Stall {
                    host: h.name.clone(),
                    from_s,
                    to_s,
                }
            });
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
                    pieces_corrupt: st.pieces_corrupt,
                    corrupt_bytes: st.corrupt_bytes,
                    peers_banned: st.peers_banned,
                    peers_suspended: st.peers_suspended,
                    requests_timed_out: st.requests_timed_out,
                    longest_stall_s: (h.role == Role::Peer).then(|| {
                        st.stall.map_or(0.0, |w| {
                            let (from, to) = secs(w);
                            to - from
                        })
                    }),
                })
                .collect(),
            counters: self.counters,
            longest_stall,
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

#[cfg(test)]
mod tests {
    use peerlab_core::{BlockRef, Event, NodeId, Time};

    use super::*;

    fn at(ms: u64) -> Time {
        Time::ZERO + std::time::Duration::from_millis(ms)
    }

    /// The longest stall of each downloader runs from its start or its last
    /// block to its next block, or to the end of the run if it never
    /// completed; waits after completion do not count.
    #[test]
    fn the_longest_stall_is_the_longest_wait_of_an_incomplete_downloader() {
        let s = Scenario::from_json(
            r#"{ "protocol": "client-server", "file": { "size": "64 KiB", "piece_size": "16 KiB" },
                 "server": { "upload": "1 Mbit/s" },
                 "peers": { "count": 2, "upload": "1 Mbit/s", "download": "1 Mbit/s",
                            "hosts": [ { "name": "late", "start": "4 s" } ] } }"#,
            "test",
            &[],
        )
        .unwrap();
        let mut b = ReportBuilder::new(&s);
        let block = |piece| Event::BlockReceived {
            from: NodeId(0),
            block: BlockRef {
                piece,
                offset: 0,
                len: 16_384,
            },
        };
        // p1: blocks at 1, 2 and 5 s, complete at 5 s: its longest wait is
        // 2 to 5 s. p2: one block at 0.5 s, then nothing until the end at
        // 10 s. late: starts at 4 s, a block at 6 s, complete at 6 s.
        for (t, node, e) in [
            (500, 2, block(0)),
            (1000, 1, block(0)),
            (2000, 1, block(1)),
            (5000, 1, block(2)),
            (5000, 1, Event::DownloadComplete),
            (6000, 3, block(0)),
            (6000, 3, Event::DownloadComplete),
            (9000, 1, block(3)),
        ] {
            b.record(at(t), NodeId(node), &e);
        }
        let r = b.finish("sim", Outcome::TimeLimit, at(10_000), None, None);
        let stalls: Vec<Option<f64>> = r.hosts.iter().map(|h| h.longest_stall_s).collect();
        assert_eq!(stalls, [None, Some(3.0), Some(9.5), Some(2.0)]);
        assert_eq!(
            r.longest_stall,
            Some(Stall {
                host: "p2".into(),
                from_s: 0.5,
                to_s: 10.0
            })
        );
    }
}
