//! Golden traces: every library scenario, on both simulator models, pinned
//! by its trace hash and headline numbers (`tests/golden/traces.json`). A
//! change that alters any simulated behaviour — a message more or less, a
//! timer moved, a random draw taken in another order — fails here, naming
//! each scenario that moved and how.
//!
//! When a change is meant to alter behaviour, re-bless and commit the file
//! with the change (its diff shows what moved):
//!
//! ```sh
//! PEERLAB_BLESS=1 cargo test --test golden
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use peerlab_scenarios::{Scenario, SimModel, library};
use serde::{Deserialize, Serialize};

/// What one (scenario, model) pair pins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Golden {
    /// The model runs it: the trace hash and the numbers a reader checks.
    Ran {
        trace_hash: String,
        outcome: String,
        distribution_time_s: Option<f64>,
        events: u64,
        server_bytes_up: u64,
    },
    /// The model refuses it, naming this field.
    Refused { field: String },
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/traces.json")
}

fn model_name(m: SimModel) -> &'static str {
    match m {
        SimModel::Messages => "messages",
        SimModel::Pieces => "pieces",
    }
}

/// Runs library scenario `name` in `model`, as shipped.
fn run(name: &str, model: SimModel) -> Golden {
    let text = library::get(name).expect("library scenario");
    let set = format!("simulator.model={}", model_name(model));
    let scenario = match Scenario::from_json(text, name, &[set]) {
        Ok(s) => s,
        Err(e) => return Golden::Refused { field: e.field },
    };
    let r = peerlab_sim::run(&scenario, name).unwrap_or_else(|e| panic!("{e}"));
    let outcome = serde_json::to_value(&r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Golden::Ran {
        trace_hash: r.trace_hash.unwrap_or_default(),
        outcome,
        distribution_time_s: r.distribution_time_s,
        events: r.sim.map_or(0, |s| s.events),
        server_bytes_up: r.server_bytes_up,
    }
}

#[test]
fn every_library_scenario_matches_its_golden_trace() {
    // Runs in parallel, one thread per scenario and model.
    let jobs: Vec<(String, SimModel)> = library::names()
        .flat_map(|n| [SimModel::Messages, SimModel::Pieces].map(|m| (n.to_string(), m)))
        .collect();
    let results: Vec<((String, String), Golden)> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(name, model)| scope.spawn(move || run(name, *model)))
            .collect();
        jobs.iter()
            .zip(handles)
            .map(|((name, model), h)| ((name.clone(), model_name(*model).to_string()), h.join().unwrap()))
            .collect()
    });
    let now: BTreeMap<String, BTreeMap<String, Golden>> =
        results
            .into_iter()
            .fold(BTreeMap::new(), |mut acc, ((name, model), g)| {
                acc.entry(name).or_default().insert(model, g);
                acc
            });
    let path = golden_path();
    if std::env::var_os("PEERLAB_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("tests/golden");
        let text = serde_json::to_string_pretty(&now).expect("JSON") + "\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("blessed {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with PEERLAB_BLESS=1 cargo test --test golden",
            path.display()
        )
    });
    let pinned: BTreeMap<String, BTreeMap<String, Golden>> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut moved = Vec::new();
    for (name, models) in &now {
        for (model, got) in models {
            match pinned.get(name).and_then(|m| m.get(model)) {
                Some(want) if want == got => {}
                Some(want) => moved.push(format!("{name} ({model}):\n  pinned {want:?}\n  now    {got:?}")),
                None => moved.push(format!("{name} ({model}): not pinned yet; now {got:?}")),
            }
        }
    }
    for name in pinned.keys().filter(|n| !now.contains_key(*n)) {
        moved.push(format!("{name}: pinned, but no longer in the library"));
    }
    assert!(
        moved.is_empty(),
        "simulated behaviour changed:\n{}\n\nIf the change is meant, re-bless and commit \
         tests/golden/traces.json with it: PEERLAB_BLESS=1 cargo test --test golden",
        moved.join("\n")
    );
}
