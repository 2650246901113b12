//! Helpers shared by the integration tests.

#![allow(dead_code)]

use peerlab_scenarios::{Report, Scenario};

/// A scenario from JSON text with `--set`-style overrides; panics with the
/// scenario error, which names the field.
pub fn scenario(json: &str, sets: &[String]) -> Scenario {
    Scenario::from_json(json, "test scenario", sets).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a scenario in the simulator; panics if it cannot run.
pub fn simulate(s: &Scenario) -> Report {
    peerlab_sim::run(s, "test scenario").unwrap_or_else(|e| panic!("{e}"))
}

/// `--set` arguments from `(path, value)` pairs.
pub fn sets(pairs: &[(&str, String)]) -> Vec<String> {
    pairs.iter().map(|(p, v)| format!("{p}={v}")).collect()
}
