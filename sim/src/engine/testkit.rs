//! Small scenarios for the engine's unit tests, and what a run of one
//! shows: its report and every node event with its time. The expected
//! values the tests compare with are worked out from the scenario's
//! numbers here, not taken from a run.

use std::cell::RefCell;
use std::rc::Rc;

use peerlab_core::Event;
use peerlab_scenarios::{Report, Scenario};

use super::MessageSim;

/// One server sending a 1 MiB file (four pieces of 256 KiB, blocks of
/// 16 KiB) to `peers.count` clients. Every access link has 5 ms of
/// latency; goodput 1.0 leaves the whole link to the frames, so the
/// server's 8 Mbit/s uplink (`SERVER_RATE`) is the bottleneck of one
/// download.
pub(super) const CS: &str = r#"{
    "protocol": "client-server",
    "seed": 1,
    "file": { "size": "1 MiB", "piece_size": "256 KiB", "block_size": "16 KiB" },
    "server": { "upload": "8 Mbit/s", "download": "8 Mbit/s" },
    "peers": { "count": 1, "upload": "100 Mbit/s", "download": "100 Mbit/s" },
    "network": { "latency": "5 ms", "goodput": 1.0 },
    "limits": { "max_time": "1 min" }
}"#;

/// `CS`'s file, pieces and blocks, in bytes.
pub(super) const FILE: u64 = 1 << 20;
pub(super) const PIECE: u64 = 256 << 10;
pub(super) const BLOCK: u64 = 16 << 10;
/// `CS`'s server uplink in bytes per second (8 Mbit/s).
pub(super) const SERVER_RATE: f64 = 1e6;
/// `CS`'s one-way latency between two hosts: 5 ms at each end.
pub(super) const PATH: f64 = 0.010;

/// Bytes on the wire for `bytes` of file sent in blocks of `BLOCK`: a
/// BEP 3 `piece` message frames each block with 13 bytes (length prefix
/// 4, id 1, index 4, offset 4).
pub(super) fn wire(bytes: u64) -> f64 {
    (bytes + 13 * bytes.div_ceil(BLOCK)) as f64
}

/// The time one client of `CS` takes alone, from its start: the connect
/// handshake (one round trip), its first requests reaching the server,
/// the file draining at the server's rate, the last block's way back.
pub(super) fn alone(bytes: u64) -> f64 {
    2.0 * PATH + PATH + wire(bytes) / SERVER_RATE + PATH
}

/// `json` with `faults` (JSON objects, comma-separated) added.
pub(super) fn with_faults(json: &str, faults: &str) -> String {
    json.replace("\"limits\"", &format!("\"faults\": [{faults}],\n    \"limits\""))
}

/// The scenario of `json` with `--set`-style overrides.
pub(super) fn scenario(json: &str, sets: &[&str]) -> Scenario {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Scenario::from_json(json, "unit test", &sets).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `s` in the message model to its end.
pub(super) fn run(s: &Scenario) -> Report {
    run_observed(s).0
}

/// Runs `s` and returns, with the report, every node event as (seconds,
/// node, event).
pub(super) fn run_observed(s: &Scenario) -> (Report, Vec<(f64, u32, Event)>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&seen);
    let sim = MessageSim::new(s, "unit test")
        .unwrap_or_else(|e| panic!("{e}"))
        .observe(move |at, node, event| {
            sink.borrow_mut().push((at.as_secs_f64(), node.0, event.clone()));
        });
    let report = sim.run(|_| {});
    let events = seen.take();
    (report, events)
}

/// When node `node` reported each event `pick` selects, in seconds.
pub(super) fn times(events: &[(f64, u32, Event)], node: u32, pick: fn(&Event) -> bool) -> Vec<f64> {
    events
        .iter()
        .filter(|(_, n, e)| *n == node && pick(e))
        .map(|(t, ..)| *t)
        .collect()
}

/// When node `node` lost its source (a connection failed or closed).
pub(super) fn source_lost(events: &[(f64, u32, Event)], node: u32) -> Vec<f64> {
    times(events, node, |e| matches!(e, Event::SourceLost { .. }))
}

/// When host `name` of `r` completed, in seconds.
pub(super) fn completed(r: &Report, name: &str) -> f64 {
    let host = r.hosts.iter().find(|h| h.name == name).expect("host in report");
    host.completed_s
        .unwrap_or_else(|| panic!("{name} never completed: {:?}", r.outcome))
}

/// Asserts `actual` is within `tolerance` of `expected` (seconds).
#[track_caller]
pub(super) fn assert_near(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} s, expected {expected} s (within {tolerance} s)"
    );
}
