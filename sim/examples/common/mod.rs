//! What the examples share: a library scenario named on the command line,
//! and the swarm's uplinks. Not every example uses every item.

#![allow(dead_code)]

use peerlab_scenarios::{Role, Scenario, library};

/// The library scenario named by the first argument (`default` if none),
/// with the remaining arguments applied as `--set`-style overrides; its name
/// too.
pub fn scenario_from_args(default: &str) -> Result<(String, Scenario), String> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| default.into());
    let sets: Vec<String> = args.collect();
    let text = library::get(&name).ok_or_else(|| format!("no library scenario named {name:?}"))?;
    let s = Scenario::from_json(text, &name, &sets).map_err(|e| e.to_string())?;
    Ok((name, s))
}

/// The uplinks of a swarm's server and peers (server first), in bits per
/// second at the run's goodput, and the piece-time: one piece at a peer's
/// mean uplink rate.
pub struct Uplinks {
    pub rates: Vec<f64>,
    pub piece_time: f64,
}

impl Uplinks {
    pub fn of(s: &Scenario, goodput: f64) -> Self {
        let rates: Vec<f64> = s
            .hosts()
            .iter()
            .filter(|h| matches!(h.role, Role::Server | Role::Peer))
            .map(|h| h.upload.0 * goodput)
            .collect();
        let peer_mean = rates[1..].iter().sum::<f64>() / (rates.len() - 1) as f64;
        let piece_time = f64::from(s.layout().piece_size(0)) * 8.0 / peer_mean;
        Uplinks { rates, piece_time }
    }

    /// All of them together, in bits per second.
    pub fn total(&self) -> f64 {
        self.rates.iter().sum()
    }
}
