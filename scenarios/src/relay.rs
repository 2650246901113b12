//! The `relay` section of a scenario (seed 000): the server is the sender,
//! one peer is the destination, and the other peers are relay candidates.
//!
//! ```json
//! "relay": { "chunk_size": "1 KiB", "destination": "dest",
//!            "relays": ["r1", "r2"], "window": 64, "detection_timeout": "2 s" }
//! ```
//!
//! Only the destination downloads (N = 1 for the bounds); candidates have
//! [`Role::Relay`] and count as done from the start.

use std::collections::BTreeSet;
use std::time::Duration;

use peerlab_core::NodeId;
use peerlab_core::pieces::MAX_BLOCK_SIZE;
use peerlab_core::relay::{DEFAULT_CHUNK_SIZE, RelayCandidate, RelayConfig};
use serde::{Deserialize, Serialize};

use crate::scenario::{Host, Role, Scenario};
use crate::units::{Dur, Size};

/// Knobs of the relay failover protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayOptions {
    /// The unit pushed, acknowledged and hash-checked (default 1 KiB, the
    /// seed's 1024 bytes; at most 128 KiB). Replaces `file.piece_size` and
    /// `file.block_size` in relay runs.
    #[serde(default = "d_chunk")]
    pub chunk_size: Size,
    /// The peer the file is for (default: the first peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The peers the sender may fail over to (default: every other peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relays: Option<Vec<String>>,
    /// Chunks pushed to one peer and not yet acknowledged (default 64).
    #[serde(default = "d_window")]
    pub window: u32,
    /// How long a peer may make no progress before it counts as not
    /// answering (default 2 s).
    #[serde(default = "d_detection")]
    pub detection_timeout: Dur,
}

fn d_chunk() -> Size {
    Size(u64::from(DEFAULT_CHUNK_SIZE))
}

fn d_window() -> u32 {
    RelayConfig::default().window
}

fn d_detection() -> Dur {
    Dur(RelayConfig::default().detection_timeout)
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            chunk_size: d_chunk(),
            destination: None,
            relays: None,
            window: d_window(),
            detection_timeout: d_detection(),
        }
    }
}

impl RelayOptions {
    /// Whether every knob has its default (the section is then left out
    /// when a scenario is written back).
    pub fn is_default(&self) -> bool {
        *self == RelayOptions::default()
    }

    /// Checks the knobs on their own: (field, message) on error.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((format!("relay.{f}"), m));
        if self.chunk_size.0 == 0 || self.chunk_size.0 > u64::from(MAX_BLOCK_SIZE) {
            return err(
                "chunk_size",
                format!(
                    "chunks must be between 1 B and {}",
                    Size(u64::from(MAX_BLOCK_SIZE))
                ),
            );
        }
        if self.window == 0 {
            return err("window", "at least one chunk must be in flight".into());
        }
        if self.detection_timeout.0 < Duration::from_millis(1) {
            return err(
                "detection_timeout",
                "must be at least 1 ms: a peer needs time to answer".into(),
            );
        }
        Ok(())
    }

    /// The knobs as the core takes them.
    pub fn config(&self) -> RelayConfig {
        RelayConfig {
            window: self.window,
            detection_timeout: self.detection_timeout.0,
            ..RelayConfig::default()
        }
    }
}

/// Checks the names in `scenario.relay` against its peers `peers` (host
/// index, name), in id order: (field, message) on error.
pub(crate) fn validate_names(scenario: &Scenario, peers: &[(usize, String)]) -> Result<(), (String, String)> {
    let opts = &scenario.relay;
    let names: BTreeSet<&str> = peers.iter().map(|(_, n)| n.as_str()).collect();
    let known = || {
        peers
            .iter()
            .take(8)
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(d) = opts.destination.as_ref().filter(|d| !names.contains(d.as_str())) {
        return Err((
            "relay.destination".into(),
            format!("{d:?} is not a peer; peers are named {}, …", known()),
        ));
    }
    let dest = dest_name(scenario, peers);
    if let Some(relays) = &opts.relays {
        let mut seen = BTreeSet::new();
        for (i, r) in relays.iter().enumerate() {
            let at = format!("relay.relays[{i}]");
            if !names.contains(r.as_str()) {
                return Err((at, format!("{r:?} is not a peer; peers are named {}, …", known())));
            }
            if Some(r.as_str()) == dest {
                return Err((at, format!("{r:?} is the destination; it cannot relay to itself")));
            }
            if !seen.insert(r.as_str()) {
                return Err((at, format!("{r:?} is listed twice")));
            }
        }
        if let Some((_, idle)) = peers
            .iter()
            .find(|(_, n)| Some(n.as_str()) != dest && !seen.contains(n.as_str()))
        {
            return Err((
                "relay.relays".into(),
                format!(
                    "peer {idle:?} is neither the destination nor a relay; list it in \
                     `relay.relays` or remove it from `peers`"
                ),
            ));
        }
    }
    Ok(())
}

fn dest_name<'a>(scenario: &'a Scenario, peers: &'a [(usize, String)]) -> Option<&'a str> {
    match &scenario.relay.destination {
        Some(d) => Some(d.as_str()),
        None => peers.first().map(|(_, n)| n.as_str()),
    }
}

/// Gives the relay candidates of a relay run [`Role::Relay`]; the
/// destination keeps [`Role::Peer`].
pub(crate) fn assign_roles(scenario: &Scenario, hosts: &mut [Host]) {
    let peers: Vec<(usize, String)> = hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.role == Role::Peer)
        .map(|(i, h)| (i, h.name.clone()))
        .collect();
    let dest = dest_name(scenario, &peers).map(str::to_string);
    for (i, name) in peers {
        let listed = scenario.relay.relays.as_ref().is_none_or(|r| r.contains(&name));
        if Some(&name) != dest.as_ref() && listed {
            hosts[i].role = Role::Relay;
        }
    }
}

/// The destination of a relay run: the one host with [`Role::Peer`].
pub fn destination(scenario: &Scenario) -> NodeId {
    let hosts = scenario.hosts();
    let i = hosts.iter().position(|h| h.role == Role::Peer).unwrap_or(1);
    NodeId(i as u32)
}

/// The relay candidates of a relay run, with their access links on
/// payload rates (capacity x goodput), in id order.
pub fn candidates(scenario: &Scenario) -> Vec<RelayCandidate> {
    let g = scenario.network.goodput;
    // `as` saturates: an unlimited link becomes u64::MAX.
    let rate = |r: crate::units::Rate| (r.bytes_per_sec() * g) as u64;
    scenario
        .hosts()
        .iter()
        .enumerate()
        .filter(|(_, h)| h.role == Role::Relay)
        .map(|(i, h)| RelayCandidate {
            id: NodeId(i as u32),
            upload: rate(h.upload),
            download: rate(h.download),
        })
        .collect()
}
