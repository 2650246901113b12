//! The scenario file: one JSON document that drives the simulator, loopback and
//! Mininet alike (README: "Scenarios" and "Reports"). Unknown fields and
//! impossible values are errors that name the field.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use peerlab_core::PieceLayout;
use peerlab_core::client_server::ClientServerConfig;
use peerlab_core::static_tracker::StaticTrackerConfig;
use peerlab_core::swarm::SwarmConfig;
use serde::{Deserialize, Serialize};

use crate::faults::{Fault, FaultKind};
use crate::overrides::apply_override;
use crate::relay::RelayOptions;
use crate::swarm::SwarmOptions;
use crate::units::{Dur, Rate, Size};

/// Smallest block and piece: every block is a message on the wire and an
/// event in the simulator, so 1-byte blocks would make a run endless.
pub const MIN_BLOCK: u64 = 1024;

/// Most pieces a file may have: each host keeps a bitfield and counts per
/// piece (1 TiB in 256 KiB pieces is 4 Mi pieces: usually a typo).
pub const MAX_PIECES: u64 = 1 << 20;

/// Longest host name.
pub const MAX_HOST_NAME: usize = 64;

/// Largest scenario file read (a scenario listing 100,000 hosts one per line
/// takes about 5 MiB).
pub const MAX_SCENARIO_BYTES: u64 = 16 << 20;

/// Whether `name` may name a host: it becomes a directory on the real
/// backends (`hosts/<name>`), a Mininet host and a log label, so it is 1 to
/// [`MAX_HOST_NAME`] ASCII letters, digits, `-`, `_` and `.`, starting with a
/// letter or a digit (no path separators, no `..`, nothing hidden, no
/// control characters). The error says why not.
pub fn check_host_name(name: &str) -> Result<(), String> {
    let shown = name.escape_debug();
    if name.is_empty() || name.len() > MAX_HOST_NAME {
        return Err(format!(
            "the name \"{shown}\" must have 1 to {MAX_HOST_NAME} characters"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the name \"{shown}\" must start with a letter or a digit"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "the name \"{shown}\" holds {:?}: host names are letters, digits, '-', '_' and '.' \
             (each becomes a directory)",
            c
        ));
    }
    Ok(())
}

/// The distribution protocol a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// One server uploads the whole file to every client (seed 001, part 1).
    ClientServer,
    /// The seed lab's P2P: a tracker file maps each chunk to an owner peer.
    StaticTracker,
    /// BitTorrent-style swarm with a tracker.
    Swarm,
    /// A sender streams to a destination and fails over to a relay (seed 000).
    Relay,
}

impl Protocol {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::ClientServer => "client-server",
            Protocol::StaticTracker => "static-tracker",
            Protocol::Swarm => "swarm",
            Protocol::Relay => "relay",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario as written in its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in tables and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the scenario shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The protocol to run.
    pub protocol: Protocol,
    /// Seed of every random choice in the run.
    #[serde(default)]
    pub seed: u64,
    /// The file to distribute.
    pub file: FileSpec,
    /// The host that holds the file at the start.
    pub server: HostSpec,
    /// The hosts that download it.
    pub peers: PeerGroup,
    /// Properties of the whole network.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Knobs of the client-server protocol.
    #[serde(default)]
    pub client_server: ClientServerOptions,
    /// Knobs of the static-tracker protocol.
    #[serde(default, skip_serializing_if = "StaticTrackerOptions::is_default")]
    pub static_tracker: StaticTrackerOptions,
    /// Knobs of the swarm protocol.
    #[serde(default, skip_serializing_if = "SwarmOptions::is_default")]
    pub swarm: SwarmOptions,
    /// Knobs of the relay failover protocol.
    #[serde(default, skip_serializing_if = "RelayOptions::is_default")]
    pub relay: RelayOptions,
    /// Which model the simulator runs (the real backends ignore it).
    #[serde(default, skip_serializing_if = "SimulatorOptions::is_default")]
    pub simulator: SimulatorOptions,
    /// Bounds on the run, so that no run goes on forever.
    #[serde(default)]
    pub limits: Limits,
    /// Faults injected during the run, each at a time (see [`crate::faults`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
}

/// The file to distribute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Its length.
    pub size: Size,
    /// The unit that is hash-checked and advertised (default 256 KiB).
    #[serde(default = "default_piece_size")]
    pub piece_size: Size,
    /// The unit that is requested (default 16 KiB, at most 128 KiB).
    #[serde(default = "default_block_size")]
    pub block_size: Size,
}

fn default_piece_size() -> Size {
    Size(256 * 1024)
}

fn default_block_size() -> Size {
    Size(u64::from(peerlab_core::pieces::DEFAULT_BLOCK_SIZE))
}

/// One host's access link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Upload capacity.
    pub upload: Rate,
    /// Download capacity (default unlimited).
    #[serde(default = "unlimited")]
    pub download: Rate,
    /// One-way latency of the access link (default: `network.latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Dur>,
    /// When the host starts, counted from the start of the run (default 0):
    /// until then it is not running and refuses connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Dur>,
}

fn unlimited() -> Rate {
    Rate::UNLIMITED
}

/// The downloading hosts: `count` alike, plus individual `hosts`; the
/// group's values are the defaults of each individual host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerGroup {
    /// Number of identical peers (named p1, p2, …).
    #[serde(default)]
    pub count: u32,
    /// Upload capacity of each peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Rate>,
    /// Download capacity of each peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Rate>,
    /// One-way latency of each peer's access link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Dur>,
    /// When each peer starts (default 0: with the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Dur>,
    /// Peers with their own values, after the `count` identical ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<PeerSpec>,
}

/// One individually described peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    /// Its name (default p<k>).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Upload capacity (default: the group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Rate>,
    /// Download capacity (default: the group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Rate>,
    /// One-way latency (default: the group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Dur>,
    /// When it starts (default: the group's): a peer that joins later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Dur>,
}

/// Properties of the whole network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Share of a link's capacity left for peerlab's own frames once
    /// TCP/IP/Ethernet headers are paid (0 < goodput <= 1). The default,
    /// [`CALIBRATED_GOODPUT`], was measured against Mininet; 1.0 models no
    /// overhead at all.
    #[serde(default = "calibrated_goodput")]
    pub goodput: f64,
    /// Default one-way latency of every access link (default 0).
    #[serde(default)]
    pub latency: Dur,
    /// How far ahead of the wire a sender's TCP takes payload: the
    /// simulator reports a block sent to its sender (which then hands over
    /// the next) once at most this many bytes queued before it are still
    /// to leave the uplink. The default, [`CALIBRATED_SEND_WINDOW`], was
    /// measured on Mininet; `0` reports a block sent only when its own
    /// last byte has left, as if the sender had no socket buffer.
    #[serde(default = "calibrated_send_window")]
    pub send_window: Size,
    /// Wire bytes a receiver's TCP acknowledgements (and its requests)
    /// take per byte of frames it receives (0 <= ack_load < 0.5). They
    /// travel the other way, so the simulator reserves that much of the
    /// receiver's uplink and of the sender's downlink for every flow. The
    /// default, [`CALIBRATED_ACK_LOAD`], was measured on Mininet; 0
    /// charges nothing.
    #[serde(default = "calibrated_ack_load")]
    pub ack_load: f64,
    /// TCP's retransmission timeout: a connection whose bytes were lost at
    /// a cut link (fault `link-down`) sends them again this long after
    /// losing them, then after twice as long again, and so on (at most
    /// 120 s apart), so after the link is back it resumes at its next
    /// retransmission, not at once. The default, [`CALIBRATED_RTO`], was
    /// measured on Mininet; `0` resumes every connection the moment the
    /// link is back.
    #[serde(default = "calibrated_rto")]
    pub rto: Dur,
}

/// The goodput factor measured against Mininet (docs/mininet.md): the slope
/// of client-server distribution time over N on 20 Mbit/s htb-shaped links
/// gives 0.9533 of the link for peerlab's frames' payload; peerlab's own
/// BEP 3 framing (13 bytes per 16 KiB block), which the simulator models
/// itself, leaves 0.954 for TCP/IP/Ethernet — theory for a 1500-byte MTU
/// with TCP timestamps: 1448/1514 = 0.956.
pub const CALIBRATED_GOODPUT: f64 = 0.954;

fn calibrated_goodput() -> f64 {
    CALIBRATED_GOODPUT
}

/// The send window measured on Mininet (docs/simulator.md): `ss -tin` on
/// the swarm's busy connections at 20 Mbit/s (htb-shaped uplinks, the
/// real backend's 16 KiB `TCP_NOTSENT_LOWAT`) shows 40 to 67 KiB of
/// unacknowledged plus not-yet-sent bytes per connection (22 samples of
/// connections with data queued), median 60 KiB;
/// the simulated swarm times are flat from 64 KiB up (docs/simulator.md).
pub const CALIBRATED_SEND_WINDOW: Size = Size(64 * 1024);

fn calibrated_send_window() -> Size {
    CALIBRATED_SEND_WINDOW
}

/// The acknowledgement load measured on Mininet (docs/simulator.md): `tc -s
/// class show` on every host's htb uplink during swarm runs, against the
/// frames each host sent and received, leaves 0.021 to 0.026 wire bytes per
/// byte of frames received beyond the host's own frames (mean 0.023, at
/// every rate from 5 to 40 Mbit/s): one 66-byte ACK per two 1448-byte
/// segments is 0.023, the requests a few thousandths more.
pub const CALIBRATED_ACK_LOAD: f64 = 0.023;

fn calibrated_ack_load() -> f64 {
    CALIBRATED_ACK_LOAD
}

/// The retransmission timeout measured on Mininet (docs/simulator.md): `ss
/// -tin` in every host's namespace 2 s and 5 s into 8-peer swarm runs
/// (seeds 1-3, 20 Mbit/s links) shows an `rto` of 224 to 692 ms on the
/// connections with unacknowledged data, median 324 ms (344 samples): Linux
/// keeps it at the smoothed round trip plus at least 200 ms, and the round
/// trip of a busy connection there is mostly queueing in the shaped links.
pub const CALIBRATED_RTO: Dur = Dur(std::time::Duration::from_millis(320));

fn calibrated_rto() -> Dur {
    CALIBRATED_RTO
}

/// The longest a scenario's `network.rto` may be (Linux's `TCP_RTO_MAX`
/// is 120 s; a first timeout above a minute is a typo).
pub const MAX_RTO: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            goodput: CALIBRATED_GOODPUT,
            latency: Dur::default(),
            send_window: CALIBRATED_SEND_WINDOW,
            ack_load: CALIBRATED_ACK_LOAD,
            rto: CALIBRATED_RTO,
        }
    }
}

/// Knobs of the client-server protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientServerOptions {
    /// Block requests each client keeps outstanding (default 64).
    #[serde(default = "default_pipeline")]
    pub pipeline: u32,
}

fn default_pipeline() -> u32 {
    ClientServerConfig::default().pipeline
}

impl Default for ClientServerOptions {
    fn default() -> Self {
        ClientServerOptions {
            pipeline: default_pipeline(),
        }
    }
}

/// Knobs of the static-tracker protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTrackerOptions {
    /// Block requests each peer keeps outstanding per connection (default 64).
    #[serde(default = "default_pipeline")]
    pub pipeline: u32,
    /// The tracker file: the name of the peer owning each piece, one per
    /// piece (default: round robin, piece k to the k-th peer mod N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<Vec<String>>,
    /// How long an owner may send nothing while requests to it are
    /// outstanding before its pieces come from the server (default 30 s).
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: Dur,
}

fn default_stall_timeout() -> Dur {
    Dur(StaticTrackerConfig::default().stall_timeout)
}

impl Default for StaticTrackerOptions {
    fn default() -> Self {
        StaticTrackerOptions {
            pipeline: default_pipeline(),
            owners: None,
            stall_timeout: default_stall_timeout(),
        }
    }
}

impl StaticTrackerOptions {
    fn is_default(&self) -> bool {
        *self == StaticTrackerOptions::default()
    }
}

/// The `simulator` section: which model of the protocol the simulator runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorOptions {
    /// `messages` (the default) or `pieces`.
    #[serde(default)]
    pub model: SimModel,
}

impl SimulatorOptions {
    /// Whether every knob has its default.
    pub fn is_default(&self) -> bool {
        *self == SimulatorOptions::default()
    }
}

/// How finely the simulator models a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimModel {
    /// Every protocol message of the sans-IO nodes, blocks over max-min fair
    /// links: the model the real backends are compared with.
    #[default]
    Messages,
    /// Swarms only: whole pieces as fluid flows sharing each uploader's
    /// uplink equally, neighbours' holdings known at once (no `Have`,
    /// `Interested` or request messages), the same choking, piece selection
    /// and end game decided per piece. Orders of magnitude fewer events, for
    /// swarms of thousands of peers; docs/simulator.md ("Two models of a
    /// swarm") gives its error against `messages`.
    Pieces,
}

/// Bounds on a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most events the simulator processes before it gives up.
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// Latest (virtual) time a run may reach before it gives up.
    #[serde(default = "default_max_time")]
    pub max_time: Dur,
}

fn default_max_events() -> u64 {
    1_000_000_000
}

fn default_max_time() -> Dur {
    Dur(Duration::from_secs(24 * 3600))
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: default_max_events(),
            max_time: default_max_time(),
        }
    }
}

/// A scenario that cannot be used, with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {}{message}", field_prefix(.field))]
pub struct ScenarioError {
    /// Where the scenario came from (a path or a library name).
    pub origin: String,
    /// The field at fault, as a dotted path (`peers.hosts[2].upload`); empty
    /// for the document as a whole.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() || field == "." {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}

/// The role a host plays in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Holds the file at the start.
    Server,
    /// Downloads the file.
    Peer,
    /// The swarm protocol's tracker (id N+1, after the peers).
    Tracker,
    /// A relay candidate of the relay protocol: downloads nothing of its
    /// own, holds chunks for the destination.
    Relay,
}

/// A host of the run with every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    /// Its name (`server`, `p1`, …).
    pub name: String,
    /// What it does.
    pub role: Role,
    /// Upload capacity.
    pub upload: Rate,
    /// Download capacity.
    pub download: Rate,
    /// One-way latency of its access link.
    pub latency: Duration,
    /// When it starts, from the start of the run.
    pub start: Duration,
}

impl Scenario {
    /// Reads a scenario file and applies `--set path=value` overrides.
    /// At most [`MAX_SCENARIO_BYTES`] are read: `/dev/zero` or a huge file
    /// given by mistake is an error, not an endless read.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        use std::io::Read;
        let origin = path.display().to_string();
        let err = |message: String| ScenarioError {
            origin: origin.clone(),
            field: String::new(),
            message,
        };
        let file =
            std::fs::File::open(path).map_err(|e| err(format!("cannot read the scenario file: {e}")))?;
        let mut bytes = Vec::new();
        file.take(MAX_SCENARIO_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(format!("cannot read the scenario file: {e}")))?;
        if bytes.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(err(format!(
                "the scenario file is larger than {}: is it the right file?",
                Size(MAX_SCENARIO_BYTES)
            )));
        }
        let text =
            String::from_utf8(bytes).map_err(|e| err(format!("the scenario file is not UTF-8 text: {e}")))?;
        Scenario::from_json(&text, &origin, overrides)
    }

    /// Parses a scenario from JSON text, applies overrides and validates it.
    /// `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let err = |field: String, message: String| ScenarioError {
            origin: origin.to_string(),
            field,
            message,
        };
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            err(
                String::new(),
                format!("not valid JSON (line {}, column {}): {e}", e.line(), e.column()),
            )
        })?;
        for o in overrides {
            apply_override(&mut value, o).map_err(|(field, message)| err(field, message))?;
        }
        let scenario: Scenario = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            err(field, e.into_inner().to_string())
        })?;
        scenario
            .validate()
            .map_err(|(field, message)| err(field.to_string(), message))?;
        Ok(scenario)
    }

    /// Checks a scenario however it was made (parsed scenarios are checked
    /// already; one built or changed in code is not): every rule of
    /// [`Scenario::from_json`], the simulator model's refusals included.
    pub fn check(&self, origin: &str) -> Result<(), ScenarioError> {
        self.validate().map_err(|(field, message)| ScenarioError {
            origin: origin.to_string(),
            field,
            message,
        })
    }

    /// Checks what the types alone cannot.
    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_file()?;
        self.relay.validate()?;
        if let Err(e) = self.layout_unchecked() {
            return Err(("file".into(), e.to_string()));
        }
        self.validate_numbers()?;
        let names = self.validate_hosts()?;
        self.swarm.validate()?;
        self.validate_pieces_model()?;
        self.validate_static_tracker(&names)?;
        if self.protocol == Protocol::Relay {
            let peers: Vec<(usize, String)> = self
                .hosts_unchecked()
                .into_iter()
                .enumerate()
                .filter(|(_, h)| matches!(h.role, Role::Peer | Role::Relay))
                .map(|(i, h)| (i, h.name))
                .collect();
            crate::relay::validate_names(self, &peers)?;
        }
        // Faults may be aimed at any host, the tracker included.
        let all_hosts: std::collections::BTreeSet<String> =
            self.hosts_unchecked().into_iter().map(|h| h.name).collect();
        self.validate_faults(&all_hosts)?;
        Ok(())
    }

    /// The file's sizes: nothing empty, pieces between [`MIN_BLOCK`] and
    /// 4 GiB and at most [`MAX_PIECES`] of them, blocks a BEP 3 peer
    /// accepts and no smaller than [`MIN_BLOCK`].
    fn validate_file(&self) -> Result<(), (String, String)> {
        let field = |f: &str, m: String| Err((f.to_string(), m));
        if self.file.size.0 == 0 {
            return field("file.size", "the file must not be empty".into());
        }
        if self.file.piece_size.0 < MIN_BLOCK {
            return field(
                "file.piece_size",
                format!("pieces must hold at least {}", Size(MIN_BLOCK)),
            );
        }
        if self.file.piece_size.0 > u64::from(u32::MAX) {
            return field("file.piece_size", "pieces must be smaller than 4 GiB".into());
        }
        let max_block = u64::from(peerlab_core::pieces::MAX_BLOCK_SIZE);
        if self.file.block_size.0 < MIN_BLOCK || self.file.block_size.0 > max_block {
            return field(
                "file.block_size",
                format!(
                    "blocks must be between {} (every block is a message and an event) and {} \
                     (BEP 3 peers refuse larger requests)",
                    Size(MIN_BLOCK),
                    Size(max_block)
                ),
            );
        }
        let pieces = self.file.size.0.div_ceil(self.file.piece_size.0);
        if pieces > MAX_PIECES {
            return field(
                "file.size",
                format!(
                    "{} in pieces of {} makes {pieces} pieces, more than the {MAX_PIECES} \
                     supported: is the size right? Otherwise raise file.piece_size",
                    self.file.size, self.file.piece_size
                ),
            );
        }
        Ok(())
    }

    /// The network, the server's rate, the pipeline, the limits and how
    /// many downloaders there are.
    fn validate_numbers(&self) -> Result<(), (String, String)> {
        let field = |f: &str, m: String| Err((f.to_string(), m));
        if !(self.network.goodput > 0.0 && self.network.goodput <= 1.0) {
            return field(
                "network.goodput",
                format!(
                    "{} is not a share of capacity: it must be in (0, 1]",
                    self.network.goodput
                ),
            );
        }
        if !(0.0..0.5).contains(&self.network.ack_load) {
            return field(
                "network.ack_load",
                format!(
                    "{} is not a share of the bytes received that acknowledgements take: \
                     it must be in [0, 0.5)",
                    self.network.ack_load
                ),
            );
        }
        if self.network.rto.0 > MAX_RTO {
            return field(
                "network.rto",
                format!(
                    "{} is not a plausible retransmission timeout: at most {} (0 resumes a \
                     connection the moment its link is back)",
                    self.network.rto,
                    Dur(MAX_RTO)
                ),
            );
        }
        if self.server.upload.is_unlimited() {
            return field(
                "server.upload",
                "an unlimited server upload makes every bound zero; give a rate".into(),
            );
        }
        if self.client_server.pipeline == 0 {
            return field(
                "client_server.pipeline",
                "at least one request must be outstanding".into(),
            );
        }
        if self.limits.max_events == 0 {
            return field("limits.max_events", "must be at least 1".into());
        }
        if self.downloaders() == 0 {
            return field(
                "peers",
                "there are no downloaders: set peers.count or list peers.hosts".into(),
            );
        }
        if self.downloaders() > 1_000_000 {
            return field(
                "peers.count",
                format!(
                    "{} peers is more than the 1,000,000 supported",
                    self.downloaders()
                ),
            );
        }
        Ok(())
    }

    /// Every peer's rates, name and start, and the server's start; returns
    /// the names of the server and the peers.
    fn validate_hosts(&self) -> Result<std::collections::BTreeSet<String>, (String, String)> {
        let field = |f: &str, m: String| Err((f.to_string(), m));
        let mut names = std::collections::BTreeSet::from(["server".to_string()]);
        let peers_end = 1 + self.peers.count as usize + self.peers.hosts.len();
        for (i, h) in self.hosts_unchecked().iter().enumerate().take(peers_end).skip(1) {
            let at = |what: &str| {
                if (i as u32) <= self.peers.count {
                    format!("peers.{what}")
                } else {
                    format!("peers.hosts[{}].{what}", i - 1 - self.peers.count as usize)
                }
            };
            if h.upload.0.is_nan() {
                return field(
                    &at("upload"),
                    "missing: give the group's `upload` or one for this peer".into(),
                );
            }
            if h.download.0.is_nan() {
                return field(
                    &at("download"),
                    "missing: give the group's `download` or one for this peer".into(),
                );
            }
            if let Err(why) = check_host_name(&h.name) {
                return field(&at("name"), why);
            }
            if !names.insert(h.name.clone()) {
                return field(&at("name"), format!("the name {:?} is used twice", h.name));
            }
            if h.start > self.limits.max_time.0 {
                return field(&at("start"), self.after_the_end(h.start));
            }
        }
        if self.server.start.is_some_and(|s| s.0 > self.limits.max_time.0) {
            return field(
                "server.start",
                self.after_the_end(self.server.start.unwrap_or_default().0),
            );
        }
        if self.protocol == Protocol::Swarm && names.contains("tracker") {
            return field(
                "peers",
                "no peer may be named \"tracker\" in a swarm: that is the tracker".into(),
            );
        }
        Ok(names)
    }

    fn after_the_end(&self, at: Duration) -> String {
        format!(
            "{} is after the end of the run (limits.max_time = {})",
            Dur(at),
            self.limits.max_time
        )
    }

    /// The pieces model covers the swarm as BitTorrent's defaults run it;
    /// what it does not model is refused by name rather than ignored.
    fn validate_pieces_model(&self) -> Result<(), (String, String)> {
        if self.simulator.model != SimModel::Pieces {
            return Ok(());
        }
        let refuse = |f: &str, m: &str| {
            Err((
                f.to_string(),
                format!("{m}; the pieces model does not simulate it (use `simulator.model = messages`)"),
            ))
        };
        if self.protocol != Protocol::Swarm {
            return refuse("simulator.model", "only the swarm protocol has a pieces model");
        }
        if !self.faults.is_empty() {
            return refuse("faults", "faults need the message model");
        }
        if self.swarm.serial_uploads {
            return refuse("swarm.serial_uploads", "serial uploads queue blocks");
        }
        if self.swarm.pipeline != SwarmConfig::default().pipeline {
            return refuse(
                "swarm.pipeline",
                &format!(
                    "pieces move as whole flows, with no requests queued; the model is measured \
                     against the message model's default pipeline of {} requests",
                    SwarmConfig::default().pipeline
                ),
            );
        }
        if self.network.send_window != CALIBRATED_SEND_WINDOW {
            return refuse(
                "network.send_window",
                &format!(
                    "pieces move as fluid flows, with no socket buffer; the model is measured \
                     against the message model's calibrated send window of {CALIBRATED_SEND_WINDOW}"
                ),
            );
        }
        if self.swarm.max_peers > 255 {
            return refuse("swarm.max_peers", "at most 255 neighbours per peer are modelled");
        }
        if !self.network.latency.0.is_zero() {
            return refuse("network.latency", "latency is not modelled");
        }
        for (i, h) in self.hosts_unchecked().iter().enumerate() {
            if h.role == Role::Tracker {
                continue;
            }
            let field = |server_field: &str| {
                if i == 0 {
                    server_field.to_string()
                } else {
                    format!("peers ({})", h.name)
                }
            };
            if !h.start.is_zero() {
                return refuse(&field("server.start"), "every host starts at time zero");
            }
            if i > 0 && !h.download.is_unlimited() {
                return refuse(
                    &field("server.download"),
                    "a limited download needs max-min sharing of both ends of a flow",
                );
            }
            if !h.latency.is_zero() {
                return refuse(&field("server.latency"), "latency is not modelled");
            }
        }
        Ok(())
    }

    fn validate_static_tracker(
        &self,
        names: &std::collections::BTreeSet<String>,
    ) -> Result<(), (String, String)> {
        let st = &self.static_tracker;
        if st.pipeline == 0 {
            let m = "at least one request must be outstanding".to_string();
            return Err(("static_tracker.pipeline".into(), m));
        }
        if st.stall_timeout.0.is_zero() {
            let m = "must be longer than zero: an owner needs time to answer".to_string();
            return Err(("static_tracker.stall_timeout".into(), m));
        }
        let Some(owners) = &st.owners else { return Ok(()) };
        let pieces = self.layout().pieces();
        if owners.len() != pieces as usize {
            let m = format!(
                "lists {} owners but the file has {pieces} pieces ({} in pieces of {}): \
                 name one owner per piece, or leave `owners` out for round robin",
                owners.len(),
                self.file.size,
                self.file.piece_size
            );
            return Err(("static_tracker.owners".into(), m));
        }
        for (i, name) in owners.iter().enumerate() {
            if name == "server" || !names.contains(name) {
                let known: Vec<String> = self
                    .hosts_unchecked()
                    .into_iter()
                    .skip(1)
                    .take(8)
                    .map(|h| h.name)
                    .collect();
                let m = format!(
                    "{name:?} is not a peer; owners must be peers, named {}, …",
                    known.join(", ")
                );
                return Err((format!("static_tracker.owners[{i}]"), m));
            }
        }
        Ok(())
    }

    fn validate_faults(&self, names: &std::collections::BTreeSet<String>) -> Result<(), (String, String)> {
        let hosts = self.hosts_unchecked();
        for (i, f) in self.faults.iter().enumerate() {
            if let Some(h) = hosts.iter().find(|h| h.name == f.host)
                && f.at.0 < h.start
            {
                return Err((
                    format!("faults[{i}].at"),
                    format!(
                        "{} is before {} starts (at {}): a fault needs a running host",
                        f.at,
                        h.name,
                        Dur(h.start)
                    ),
                ));
            }
            if !names.contains(&f.host) {
                let known: Vec<&str> = names.iter().map(String::as_str).take(8).collect();
                return Err((
                    format!("faults[{i}].host"),
                    format!(
                        "there is no host {:?}; hosts are named {}, …",
                        f.host,
                        known.join(", ")
                    ),
                ));
            }
            if f.at.0 > self.limits.max_time.0 {
                return Err((
                    format!("faults[{i}].at"),
                    format!(
                        "{} is after the end of the run (limits.max_time = {})",
                        f.at, self.limits.max_time
                    ),
                ));
            }
            let role = hosts.iter().find(|h| h.name == f.host).map(|h| h.role);
            let kind = f.kind.name();
            let misbehaves = f.kind.misbehaves() || f.kind == FaultKind::Honest;
            if misbehaves && role == Some(Role::Tracker) {
                return Err((
                    format!("faults[{i}].kind"),
                    format!(
                        "the tracker is no peer-wire node (it answers announces, sends no blocks): \
                         `{kind}` applies to a server or a peer"
                    ),
                ));
            }
            if f.kind == FaultKind::Silent && self.protocol == Protocol::Relay {
                return Err((
                    format!("faults[{i}].kind"),
                    "relay hosts push blocks unasked: `silent` (answering no request) needs a \
                     protocol whose downloaders request blocks (client-server, static-tracker, swarm)"
                        .into(),
                ));
            }
            if f.kind == FaultKind::Lying && self.protocol != Protocol::Swarm {
                return Err((
                    format!("faults[{i}].kind"),
                    "`lying` is a claim in the swarm's bitfields: it needs protocol swarm".into(),
                ));
            }
            if f.kind == FaultKind::Lying && role == Some(Role::Server) {
                return Err((
                    format!("faults[{i}].host"),
                    "the server holds every piece: it has nothing to lie about; make a peer lie".into(),
                ));
            }
            f.check()
                .map_err(|(field, message)| (format!("faults[{i}].{field}"), message))?;
        }
        Ok(())
    }

    fn layout_unchecked(&self) -> Result<PieceLayout, peerlab_core::pieces::LayoutError> {
        if self.protocol == Protocol::Relay {
            // Relay runs cut the file into chunks of one block each.
            let chunk = u32::try_from(self.relay.chunk_size.0).unwrap_or(u32::MAX);
            return peerlab_core::relay::chunk_layout(self.file.size.0, chunk);
        }
        PieceLayout::new(
            self.file.size.0,
            self.file.piece_size.0 as u32,
            self.file.block_size.0 as u32,
        )
    }

    /// The file's piece layout.
    pub fn layout(&self) -> PieceLayout {
        self.layout_unchecked()
            .expect("validated when the scenario was loaded")
    }

    /// Number of downloading peers (N).
    pub fn downloaders(&self) -> u32 {
        let peers = self.peers.count.saturating_add(self.peers.hosts.len() as u32);
        // A relay run has one destination; the other peers only relay.
        if self.protocol == Protocol::Relay {
            peers.min(1)
        } else {
            peers
        }
    }

    /// Every host of the run, in node-id order: the server first (id 0), then
    /// the peers (ids 1..=N), then (swarm only) the tracker (id N+1).
    pub fn hosts(&self) -> Vec<Host> {
        self.hosts_unchecked()
    }

    fn hosts_unchecked(&self) -> Vec<Host> {
        let missing = Rate(f64::NAN);
        let lat = |l: Option<Dur>| l.unwrap_or(self.network.latency).0;
        let start = |s: Option<Dur>| s.unwrap_or_default().0;
        let mut hosts = vec![Host {
            name: "server".into(),
            role: Role::Server,
            upload: self.server.upload,
            download: self.server.download,
            latency: lat(self.server.latency),
            start: start(self.server.start),
        }];
        let g = &self.peers;
        for k in 1..=g.count {
            hosts.push(Host {
                name: format!("p{k}"),
                role: Role::Peer,
                upload: g.upload.unwrap_or(missing),
                download: g.download.unwrap_or(missing),
                latency: lat(g.latency),
                start: start(g.start),
            });
        }
        for (i, h) in g.hosts.iter().enumerate() {
            hosts.push(Host {
                name: h
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("p{}", g.count as usize + i + 1)),
                role: Role::Peer,
                upload: h.upload.or(g.upload).unwrap_or(missing),
                download: h.download.or(g.download).unwrap_or(missing),
                latency: lat(h.latency.or(g.latency)),
                start: start(h.start.or(g.start)),
            });
        }
        if self.protocol == Protocol::Relay {
            crate::relay::assign_roles(self, &mut hosts);
        }
        if self.protocol == Protocol::Swarm {
            // After the peers, so server and peer ids are the same for
            // every protocol; its links are unlimited.
            hosts.push(Host {
                name: "tracker".into(),
                role: Role::Tracker,
                upload: Rate::UNLIMITED,
                download: Rate::UNLIMITED,
                latency: lat(None),
                start: Duration::ZERO,
            });
        }
        hosts
    }

    /// The client-server knobs as the core takes them.
    pub fn client_server_config(&self) -> ClientServerConfig {
        ClientServerConfig {
            pipeline: self.client_server.pipeline,
            ..ClientServerConfig::default()
        }
    }

    /// The swarm knobs as the core takes them.
    pub fn swarm_config(&self) -> peerlab_core::swarm::SwarmConfig {
        self.swarm.config()
    }

    /// The static-tracker knobs as the core takes them.
    pub fn static_tracker_config(&self) -> StaticTrackerConfig {
        StaticTrackerConfig {
            pipeline: self.static_tracker.pipeline,
            stall_timeout: self.static_tracker.stall_timeout.0,
            ..StaticTrackerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{
        "protocol": "client-server",
        "file": { "size": "10 MiB" },
        "server": { "upload": "20 Mbit/s" },
        "peers": { "count": 2, "upload": "5 Mbit/s", "download": "10 Mbit/s",
                   "hosts": [ { "name": "slow", "download": "1 Mbit/s" } ] }
    }"#;

    fn parse(text: &str, sets: &[&str]) -> Result<Scenario, ScenarioError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Scenario::from_json(text, "test.json", &sets)
    }

    #[test]
    fn group_values_are_defaults_of_individual_hosts() {
        let s = parse(OK, &[]).unwrap();
        let hosts = s.hosts();
        assert_eq!(hosts.len(), 4);
        assert_eq!(hosts[3].name, "slow");
        assert_eq!(hosts[3].upload, Rate(5e6));
        assert_eq!(hosts[3].download, Rate(1e6));
        assert_eq!(hosts[1].name, "p1");
        assert_eq!(s.layout().pieces(), 40);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(&OK.replace("\"count\"", "\"cuont\""), &[]).unwrap_err();
        assert_eq!(e.field, "peers.cuont");
        assert!(e.message.contains("unknown field `cuont`"), "{e}");
        let e = parse(&OK.replace("\"10 MiB\"", "\"-10 MiB\""), &[]).unwrap_err();
        assert_eq!(e.field, "file.size");
        assert!(e.to_string().contains("negative"), "{e}");
        let e = parse(&OK.replace("\"protocol\": \"client-server\",", ""), &[]).unwrap_err();
        assert!(e.message.contains("missing field `protocol`"), "{e}");
        let e = parse(&OK.replace("\"1 Mbit/s\"", "\"1 parsec\""), &[]).unwrap_err();
        assert_eq!(e.field, "peers.hosts[0].download");
    }

    #[test]
    fn missing_rates_and_duplicate_names_are_caught() {
        let e = parse(&OK.replace("\"download\": \"10 Mbit/s\",", ""), &[]).unwrap_err();
        assert_eq!(e.field, "peers.download");
        let e = parse(&OK.replace("\"slow\"", "\"p1\""), &[]).unwrap_err();
        assert_eq!(e.field, "peers.hosts[0].name");
    }

    /// Host names become directories on the real backends: a name that
    /// would leave the work directory, hide or carry control characters is
    /// refused when the scenario loads, naming the field.
    #[test]
    fn host_names_that_could_be_paths_are_refused() {
        for bad in [
            "../../x",
            "/abs/dir",
            "..",
            ".",
            ".hidden",
            "a/b",
            "a\\b",
            "a\nb",
            "",
            "caf\u{e9}",
            &"x".repeat(65),
        ] {
            let json = OK.replace("\"slow\"", &serde_json::to_string(bad).unwrap());
            let e = parse(&json, &[]).unwrap_err();
            assert_eq!(e.field, "peers.hosts[0].name", "{bad:?}: {e}");
        }
        for good in ["slow-2", "p_1.eu", "7", &"x".repeat(64)] {
            let json = OK.replace("\"slow\"", &serde_json::to_string(good).unwrap());
            assert!(parse(&json, &[]).is_ok(), "{good:?}");
        }
    }

    /// A corrupting host sends blocks: the tracker cannot be one.
    #[test]
    fn the_tracker_cannot_corrupt() {
        let swarm = r#"{ "protocol": "swarm", "file": { "size": "1 MiB" },
            "server": { "upload": "10 Mbit/s" },
            "peers": { "count": 2, "upload": "10 Mbit/s", "download": "10 Mbit/s" } }"#;
        let fault = |host: &str| {
            format!(r#"faults=[{{"kind": "corrupt", "host": "{host}", "at": "1 s", "for": "1 s"}}]"#)
        };
        assert!(parse(swarm, &[&fault("p1")]).is_ok());
        let e = parse(swarm, &[&fault("tracker")]).unwrap_err();
        assert_eq!(e.field, "faults[0].kind", "{e}");
    }

    /// Misbehaviour applies to hosts that send blocks, `lying` only to a
    /// swarm's peers, `every` only to `corrupt`, at least 1, and `rate` only
    /// to `flood`, within its bounds.
    #[test]
    fn misbehaviour_faults_are_checked_by_field() {
        let swarm = r#"{ "protocol": "swarm", "file": { "size": "1 MiB" },
            "server": { "upload": "10 Mbit/s" },
            "peers": { "count": 2, "upload": "10 Mbit/s", "download": "10 Mbit/s" } }"#;
        let cs = r#"{ "protocol": "client-server", "file": { "size": "1 MiB" },
            "server": { "upload": "10 Mbit/s" },
            "peers": { "count": 2, "upload": "10 Mbit/s", "download": "10 Mbit/s" } }"#;
        let fault = |body: &str| format!(r#"faults=[{{{body}, "at": "1 s"}}]"#);
        let ok = |json: &str, body: &str| {
            parse(json, &[&fault(body)]).unwrap_or_else(|e| panic!("{body}: {e}"));
        };
        let err = |json: &str, body: &str, field: &str| {
            let e = parse(json, &[&fault(body)]).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
        };
        ok(swarm, r#""kind": "corrupt", "host": "p1", "every": 3"#);
        ok(swarm, r#""kind": "silent", "host": "p1", "for": "2 s""#);
        ok(swarm, r#""kind": "silent", "host": "server""#);
        ok(swarm, r#""kind": "lying", "host": "p2", "for": "2 s""#);
        ok(cs, r#""kind": "silent", "host": "server""#);
        err(
            swarm,
            r#""kind": "corrupt", "host": "p1", "every": 0"#,
            "faults[0].every",
        );
        err(
            swarm,
            r#""kind": "silent", "host": "p1", "every": 2"#,
            "faults[0].every",
        );
        err(swarm, r#""kind": "silent", "host": "tracker""#, "faults[0].kind");
        err(swarm, r#""kind": "lying", "host": "tracker""#, "faults[0].kind");
        err(swarm, r#""kind": "lying", "host": "server""#, "faults[0].host");
        err(cs, r#""kind": "lying", "host": "p1""#, "faults[0].kind");
        ok(cs, r#""kind": "flood", "host": "p1", "for": "2 s""#);
        ok(swarm, r#""kind": "flood", "host": "server", "rate": 1000"#);
        err(
            swarm,
            r#""kind": "flood", "host": "p1", "rate": 0"#,
            "faults[0].rate",
        );
        err(
            swarm,
            r#""kind": "flood", "host": "p1", "rate": 1001"#,
            "faults[0].rate",
        );
        err(
            swarm,
            r#""kind": "silent", "host": "p1", "rate": 5"#,
            "faults[0].rate",
        );
        err(swarm, r#""kind": "flood", "host": "tracker""#, "faults[0].kind");
    }

    /// Sizes that would make a run endless or exhaust memory name the field.
    #[test]
    fn absurd_sizes_are_refused() {
        let e = parse(OK, &["file.block_size=1"]).unwrap_err();
        assert_eq!(e.field, "file.block_size", "{e}");
        let e = parse(OK, &["file.piece_size=1"]).unwrap_err();
        assert_eq!(e.field, "file.piece_size", "{e}");
        let e = parse(OK, &["file.size=1 TiB"]).unwrap_err();
        assert_eq!(e.field, "file.size", "{e}");
        assert!(e.message.contains("4194304 pieces"), "{e}");
        assert!(parse(OK, &["file.size=1 TiB", "file.piece_size=4 MiB"]).is_ok());
        assert!(parse(OK, &["file.block_size=1 KiB", "file.piece_size=1 KiB"]).is_ok());
    }

    /// A scenario file is read up to a bound.
    #[test]
    fn a_huge_scenario_file_is_refused_without_reading_it_all() {
        let dir = std::env::temp_dir().join(format!("peerlab-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.json");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_SCENARIO_BYTES + 1).unwrap(); // sparse
        let e = Scenario::load(&big, &[]).unwrap_err();
        assert!(e.message.contains("larger than"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overrides_apply_before_validation() {
        let s = parse(OK, &["peers.count=7", "file.size=1 MiB", "seed=42"]).unwrap();
        assert_eq!(s.downloaders(), 8);
        assert_eq!(s.file.size, Size(1 << 20));
        assert_eq!(s.seed, 42);
        let e = parse(OK, &["network.goodput=1.5"]).unwrap_err();
        assert_eq!(e.field, "network.goodput");
        assert_eq!(parse(OK, &[]).unwrap().network.ack_load, CALIBRATED_ACK_LOAD);
        assert_eq!(parse(OK, &["network.ack_load=0"]).unwrap().network.ack_load, 0.0);
        assert_eq!(parse(OK, &[]).unwrap().network.rto, CALIBRATED_RTO);
        assert_eq!(parse(OK, &["network.rto=0"]).unwrap().network.rto, Dur::default());
        let e = parse(OK, &["network.rto=2 min"]).unwrap_err();
        assert_eq!(e.field, "network.rto");
        for bad in ["network.ack_load=0.5", "network.ack_load=-0.01"] {
            let e = parse(OK, &[bad]).unwrap_err();
            assert_eq!(e.field, "network.ack_load", "{bad}");
        }
        let s = parse(OK, &["network.send_window=32 KiB"]).unwrap();
        assert_eq!(s.network.send_window, Size(32 << 10));
        assert_eq!(
            parse(OK, &[]).unwrap().network.send_window,
            CALIBRATED_SEND_WINDOW
        );
        let e = parse(OK, &["network.send_window=lots"]).unwrap_err();
        assert_eq!(e.field, "network.send_window");
        let e = parse(OK, &["peers.colour=red"]).unwrap_err();
        assert_eq!(e.field, "peers.colour");
    }

    /// Hosts may start later; a start after the end of the run, or a fault
    /// before its host has started, names the field.
    #[test]
    fn start_times_default_to_zero_and_are_checked() {
        let s = parse(OK, &["peers.start=2 s", "peers.hosts.0.start=5 s"]).unwrap();
        let starts: Vec<u64> = s.hosts().iter().map(|h| h.start.as_secs()).collect();
        assert_eq!(starts, [0, 2, 2, 5]);
        let e = parse(OK, &["peers.hosts.0.start=30 h"]).unwrap_err();
        assert_eq!(e.field, "peers.hosts[0].start");
        assert!(e.message.contains("after the end of the run"), "{e}");
        let e = parse(OK, &["server.start=30 h"]).unwrap_err();
        assert_eq!(e.field, "server.start");
        let late_fault = r#"[{ "kind": "crash", "host": "slow", "at": "1 s" }]"#;
        let e = parse(OK, &["peers.hosts.0.start=5 s", &format!("faults={late_fault}")]).unwrap_err();
        assert_eq!(e.field, "faults[0].at");
        assert!(e.message.contains("before slow starts"), "{e}");
    }

    #[test]
    fn a_scenario_survives_a_round_trip_through_json() {
        let s = parse(OK, &[]).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(parse(&text, &[]).unwrap(), s);
    }
}
