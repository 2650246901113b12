//! The SCENARIO argument: a file path or the name of a library scenario.

use std::path::Path;

use anyhow::{Result, bail};
use peerlab_scenarios::{Scenario, library};

/// Loads `arg` (file or library name) with `--set` overrides applied.
/// Returns the scenario and the name to call it by in messages.
pub fn load(arg: &str, overrides: &[String]) -> Result<(Scenario, String)> {
    let path = Path::new(arg);
    if path.exists() {
        return Ok((Scenario::load(path, overrides)?, arg.to_string()));
    }
    if let Some(text) = library::get(arg) {
        let origin = format!("library scenario `{arg}`");
        return Ok((Scenario::from_json(text, &origin, overrides)?, origin));
    }
    let names: Vec<&str> = library::names().collect();
    bail!(
        "no scenario file or library scenario named {arg:?}; library scenarios: {}",
        names.join(", ")
    )
}
