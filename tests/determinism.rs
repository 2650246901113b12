//! The same scenario and seed give the same run, event for event.

mod common;

use common::{scenario, simulate};
use peerlab_scenarios::library;

#[test]
fn same_scenario_and_seed_give_identical_trace_hash_and_report() {
    for name in library::names() {
        let s = scenario(
            library::get(name).expect("library scenario"),
            &["peers.count=6".into()],
        );
        let a = simulate(&s);
        let b = simulate(&s);
        assert!(
            a.trace_hash.is_some(),
            "{name}: the simulator reports a trace hash"
        );
        assert_eq!(a.trace_hash, b.trace_hash, "{name}: trace hashes differ");
        assert_eq!(
            serde_json::to_value(&a).expect("report serialises"),
            serde_json::to_value(&b).expect("report serialises"),
            "{name}: reports differ"
        );
    }
}

#[test]
fn the_trace_hash_changes_when_the_run_changes() {
    let text = library::get("cs-heterogeneous").expect("library scenario");
    let base = simulate(&scenario(text, &[]));
    for change in [
        "network.latency=6 ms",
        "peers.count=5",
        "client_server.pipeline=3",
        "file.size=9 MiB",
    ] {
        let other = simulate(&scenario(text, &[change.into()]));
        assert_ne!(
            base.trace_hash, other.trace_hash,
            "{change} left the trace hash unchanged"
        );
    }
}
