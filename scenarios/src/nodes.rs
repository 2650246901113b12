//! From a scenario to the nodes that run it: the same nodes for every
//! backend.

use peerlab_core::client_server::{Client, Server};
use peerlab_core::{Bitfield, Node, NodeId};

use crate::scenario::{Protocol, Role, Scenario, ScenarioError};

/// Id of the server in every run.
pub const SERVER: NodeId = NodeId(0);

/// Checks that `scenario`'s protocol can be run today.
pub fn check_runnable(scenario: &Scenario, origin: &str) -> Result<(), ScenarioError> {
    match scenario.protocol {
        Protocol::ClientServer => Ok(()),
        other => Err(ScenarioError {
            origin: origin.to_string(),
            field: "protocol".into(),
            message: format!("protocol `{other}` is not implemented yet; `client-server` is"),
        }),
    }
}

/// The node for host `id`, holding the verified pieces `have` (`None`: what
/// its role starts with — everything for the server, nothing for a peer).
///
/// # Panics
/// If the protocol is not runnable ([`check_runnable`]) or `id` is not a
/// host of the scenario.
pub fn build_node(scenario: &Scenario, id: NodeId, have: Option<Bitfield>) -> Box<dyn Node> {
    let layout = scenario.layout();
    let host = &scenario.hosts()[id.0 as usize];
    match (scenario.protocol, host.role) {
        (Protocol::ClientServer, Role::Server) => Box::new(Server::new(id, layout)),
        (Protocol::ClientServer, Role::Peer) => Box::new(Client::new(
            id,
            SERVER,
            layout,
            have.unwrap_or_else(|| Bitfield::new(layout.pieces())),
            scenario.client_server_config(),
        )),
        (p, _) => panic!("protocol {p} is not runnable; call check_runnable first"),
    }
}

/// Every node of the run, in id order, in its starting state.
pub fn build_nodes(scenario: &Scenario) -> Vec<Box<dyn Node>> {
    (0..scenario.hosts().len() as u32)
        .map(|i| build_node(scenario, NodeId(i), None))
        .collect()
}
