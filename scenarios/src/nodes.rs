//! From a scenario to the nodes that run it: the same nodes for every
//! backend.

use peerlab_core::client_server::{Client, Server};
use peerlab_core::static_tracker::{Peer, TrackerFile};
use peerlab_core::{Bitfield, Node, NodeId};

use crate::scenario::{Protocol, Role, Scenario, ScenarioError};

/// Id of the server in every run.
pub const SERVER: NodeId = NodeId(0);

/// Checks that `scenario` can be run as it stands: every rule a parsed
/// scenario obeys (a scenario built or changed in code has not been
/// checked), including what its simulator model refuses, with an error
/// naming the field (`origin`: where the scenario came from). Every
/// protocol has nodes for every role [`build_node`] is asked for.
pub fn check_runnable(scenario: &Scenario, origin: &str) -> Result<(), ScenarioError> {
    scenario.check(origin)
}

/// The order the hosts start in on a real network: the server first (in a
/// swarm the tracker, then the server), in a relay run the sender last, so
/// that whoever others dial first is listening first. Nodes also wait at a
/// start barrier until every one listens, so the order decides only who is
/// ready first.
pub fn start_order(scenario: &Scenario) -> Vec<usize> {
    let n = scenario.hosts().len();
    match scenario.protocol {
        Protocol::Swarm => [n - 1].into_iter().chain(0..n - 1).collect(),
        Protocol::Relay => (1..n).chain([0]).collect(),
        Protocol::ClientServer | Protocol::StaticTracker => (0..n).collect(),
    }
}

/// An event a run waits for before it is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Milestone {
    /// The host holds the whole file (`Event::DownloadComplete`).
    DownloadComplete,
    /// The relay sender heard that the destination is done
    /// (`Event::SenderFinished`).
    SenderFinished,
}

impl Milestone {
    /// The name of the event, as nodes log it.
    pub fn event_name(self) -> &'static str {
        match self {
            Milestone::DownloadComplete => "DownloadComplete",
            Milestone::SenderFinished => "SenderFinished",
        }
    }
}

/// What ends a run, for every backend: (host index, event) pairs that must
/// all have happened. Every downloader completes; a relay run also waits
/// for its sender to hear that the destination is done (normally just
/// after it completes). A peer that ever lies about its pieces (fault
/// `lying`) is not waited for: its neighbours take it for a seed, so they
/// stop telling it what they have and seeds drop it, and it may never
/// complete.
pub fn run_ends_when(scenario: &Scenario) -> Vec<(usize, Milestone)> {
    let lies = |name: &str| {
        scenario
            .faults
            .iter()
            .any(|f| f.kind == crate::faults::FaultKind::Lying && f.host == name)
    };
    let mut all: Vec<(usize, Milestone)> = scenario
        .hosts()
        .iter()
        .enumerate()
        .filter(|(_, h)| h.role == Role::Peer && !lies(&h.name))
        .map(|(k, _)| (k, Milestone::DownloadComplete))
        .collect();
    if scenario.protocol == Protocol::Relay {
        all.push((SERVER.0 as usize, Milestone::SenderFinished));
    }
    all
}

/// The node for host `id`, holding the verified pieces `have` (`None`: what
/// its role starts with — everything for the server, nothing for a peer).
///
/// # Panics
/// If the protocol is not runnable ([`check_runnable`]) or `id` is not a
/// host of the scenario.
pub fn build_node(scenario: &Scenario, id: NodeId, have: Option<Bitfield>) -> Box<dyn Node + Send> {
    let layout = scenario.layout();
    let host = &scenario.hosts()[id.0 as usize];
    match (scenario.protocol, host.role) {
        (Protocol::Swarm, Role::Server | Role::Peer) => {
            let have = have.unwrap_or_else(|| match host.role {
                Role::Server => Bitfield::full(layout.pieces()),
                _ => Bitfield::new(layout.pieces()),
            });
            Box::new(peerlab_core::swarm::Peer::new(
                id,
                swarm_tracker(scenario),
                layout,
                have,
                scenario.swarm_config(),
                scenario.seed,
            ))
        }
        (Protocol::Swarm, Role::Tracker) => Box::new(peerlab_core::swarm::Tracker::new(
            id,
            scenario.swarm.announce_interval.0,
            scenario.seed,
        )),
        (Protocol::ClientServer | Protocol::StaticTracker, Role::Server) => Box::new(Server::new(id, layout)),
        (Protocol::StaticTracker, Role::Peer) => Box::new(Peer::new(
            id,
            SERVER,
            layout,
            tracker_file(scenario),
            have.unwrap_or_else(|| Bitfield::new(layout.pieces())),
            scenario.static_tracker_config(),
        )),
        (Protocol::ClientServer, Role::Peer) => Box::new(Client::new(
            id,
            SERVER,
            layout,
            have.unwrap_or_else(|| Bitfield::new(layout.pieces())),
            scenario.client_server_config(),
        )),
        (Protocol::Relay, Role::Server) => Box::new(peerlab_core::relay::Sender::new(
            id,
            layout,
            crate::relay::destination(scenario),
            crate::relay::candidates(scenario),
            scenario.relay.config(),
        )),
        (Protocol::Relay, Role::Peer) => Box::new(peerlab_core::relay::Destination::new(
            id,
            layout,
            have.unwrap_or_else(|| Bitfield::new(layout.pieces())),
        )),
        (Protocol::Relay, Role::Relay) => Box::new(peerlab_core::relay::Relay::new(
            id,
            layout,
            have.unwrap_or_else(|| Bitfield::new(layout.pieces())),
            scenario.relay.config(),
        )),
        (p, _) => panic!("protocol {p} is not runnable; call check_runnable first"),
    }
}

/// The static-tracker protocol's tracker file for `scenario`: the owners it
/// names in `static_tracker.owners`, or piece k to the k-th peer mod N.
pub fn tracker_file(scenario: &Scenario) -> TrackerFile {
    let hosts = scenario.hosts();
    let pieces = scenario.layout().pieces();
    match &scenario.static_tracker.owners {
        Some(names) => {
            let ids: std::collections::BTreeMap<&str, NodeId> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.name.as_str(), NodeId(i as u32)))
                .collect();
            TrackerFile::new(names.iter().map(|n| ids[n.as_str()]).collect())
        }
        None => {
            let peers: Vec<NodeId> = (1..hosts.len() as u32).map(NodeId).collect();
            TrackerFile::round_robin(pieces, &peers)
        }
    }
}

/// Id of the swarm protocol's tracker: right after the peers (N+1).
pub fn swarm_tracker(scenario: &Scenario) -> NodeId {
    NodeId(scenario.downloaders() + 1)
}

/// Every node of the run, in id order, in its starting state.
pub fn build_nodes(scenario: &Scenario) -> Vec<Box<dyn Node>> {
    (0..scenario.hosts().len() as u32)
        .map(|i| -> Box<dyn Node> { build_node(scenario, NodeId(i), None) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str) -> Scenario {
        Scenario::from_json(crate::library::get(name).expect("a library scenario"), name, &[]).expect("valid")
    }

    #[test]
    fn whoever_others_dial_first_starts_first() {
        let swarm = lib("swarm-homogeneous");
        let order = start_order(&swarm);
        let hosts = swarm.hosts();
        assert_eq!(hosts[order[0]].role, Role::Tracker, "{order:?}");
        assert_eq!(hosts[order[1]].role, Role::Server, "{order:?}");
        let relay = lib("relay-seed000");
        assert_eq!(
            start_order(&relay).last(),
            Some(&(SERVER.0 as usize)),
            "the sender last"
        );
        let cs = lib("lab-client-server");
        assert_eq!(start_order(&cs), (0..cs.hosts().len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_run_ends_when_every_downloader_completes_and_a_relay_sender_knows() {
        let cs = lib("lab-client-server");
        let ends = run_ends_when(&cs);
        assert_eq!(ends.len() as u32, cs.downloaders());
        assert!(
            ends.iter()
                .all(|&(k, m)| k > 0 && m == Milestone::DownloadComplete)
        );
        let relay = lib("relay-seed000");
        let ends = run_ends_when(&relay);
        assert_eq!(ends.last(), Some(&(0, Milestone::SenderFinished)));
        assert_eq!(ends.len() as u32, relay.downloaders() + 1);
    }
}
