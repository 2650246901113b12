//! Simulator speed: simulated events per second for the client-server
//! scenario at N = 1,000 (`scenarios/library/cs-1000.json`), reported next to
//! a baseline measured in the same run — a bare binary-heap event queue doing
//! one push and one pop per event at the same queue depth — so the figure
//! that matters, the ratio, does not depend on how busy the machine is.
//!
//! Run: `cargo bench -p peerlab-sim --bench events`

// A benchmark measures wall time; determinism rules do not apply here.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::time::{Duration, Instant};

use peerlab_scenarios::{Scenario, library};
use peerlab_sim::Simulation;

#[path = "common/mod.rs"]
mod common;
use common::{bare_queue, median};

const REPEATS: usize = 5;

fn main() {
    let text = library::get("cs-1000").expect("cs-1000 is in the library");
    let scenario = Scenario::from_json(text, "cs-1000", &[]).expect("library scenario is valid");
    let n = u64::from(scenario.downloaders());
    let mut sim_times = Vec::new();
    let mut events = 0;
    let mut hash = String::new();
    for _ in 0..REPEATS {
        let sim = Simulation::new(&scenario, "cs-1000").expect("runnable");
        let start = Instant::now();
        let report = sim.run(|_| {});
        sim_times.push(start.elapsed());
        let stats = report.sim.expect("simulator statistics");
        events = stats.events;
        let h = report.trace_hash.expect("trace hash");
        assert!(hash.is_empty() || hash == h, "benchmark runs diverged");
        hash = h;
    }
    // The simulator's queue holds about one flow completion and a few
    // deliveries per client.
    let base_times: Vec<Duration> = (0..REPEATS).map(|_| bare_queue(events, 2 * n)).collect();
    let sim = median(sim_times).as_secs_f64();
    let base = median(base_times).as_secs_f64();
    let sim_rate = events as f64 / sim;
    let base_rate = events as f64 / base;
    println!(
        "client-server, N = {n}, {} per client (median of {REPEATS} runs)",
        scenario.file.size
    );
    println!("{:<38} {:>14} {:>12} {:>16}", "", "events", "wall", "events/s");
    println!(
        "{:<38} {:>14} {:>10.3} s {:>16.0}",
        "simulator (cs-1000)", events, sim, sim_rate
    );
    println!(
        "{:<38} {:>14} {:>10.3} s {:>16.0}",
        "baseline: bare heap push+pop", events, base, base_rate
    );
    println!("simulator speed / bare event queue = {:.3}", sim_rate / base_rate);
    println!("trace {hash}");
}
