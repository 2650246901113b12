//! What the examples share: a library scenario named on the command line.

use peerlab_scenarios::{Scenario, library};

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
