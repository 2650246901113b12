//! Relay failover (seed 000) in the simulator: a healthy destination gets
//! every chunk straight from the sender; a hung one is detected after the
//! detection timeout, the sender finishes early through the relay with the
//! most spare capacity, and the destination still ends with every chunk,
//! each stored exactly once — even when the relay dies on the way.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use common::{scenario, simulate};
use peerlab_core::{Event, NodeId};
use peerlab_scenarios::{Outcome, Report, Scenario, library};
use peerlab_sim::Simulation;

/// relay-seed000 with `faults` in place of the library's own (a hang of
/// `dest`); hosts: server 0, dest 1, relay-fast 2, relay-slow 3.
fn seed000(faults: &str) -> Scenario {
    let text = library::get("relay-seed000").expect("relay-seed000 is in the library");
    scenario(text, &[format!("faults=[{faults}]")])
}

/// Runs `s`, counting how often each chunk reached the destination's
/// storage (BlockReceived at the destination).
fn run_counting(s: &Scenario) -> (Report, BTreeMap<u32, u32>) {
    let stored = Rc::new(RefCell::new(BTreeMap::new()));
    let sink = Rc::clone(&stored);
    let sim = Simulation::new(s, "test scenario")
        .unwrap_or_else(|e| panic!("{e}"))
        .observe(move |_, node, e| {
            if let (NodeId(1), Event::BlockReceived { block, .. }) = (node, e) {
                *sink.borrow_mut().entry(block.piece).or_insert(0u32) += 1;
            }
        });
    let report = sim.run(|_| {});
    let stored = stored.borrow().clone();
    (report, stored)
}

fn assert_every_chunk_once(r: &Report, stored: &BTreeMap<u32, u32>) {
    assert_eq!(r.outcome, Outcome::Complete, "outcome {:?}", r.outcome);
    let chunks = r.file_bytes.div_ceil(r.piece_bytes) as usize;
    assert_eq!(stored.len(), chunks, "chunks missing at the destination");
    let twice: Vec<_> = stored.iter().filter(|&(_, &n)| n != 1).take(5).collect();
    assert!(twice.is_empty(), "chunks stored more than once: {twice:?}");
    assert_eq!(r.hosts[1].pieces_verified as usize, chunks);
}

#[test]
fn a_healthy_destination_gets_every_chunk_straight_from_the_sender() {
    let s = seed000("");
    let (r, stored) = run_counting(&s);
    assert_every_chunk_once(&r, &stored);
    assert_eq!(r.downloaders, 1, "only the destination downloads");
    assert_eq!(r.piece_bytes, 1024, "chunks are the pieces");
    assert_eq!(r.counters.failovers, 0);
    assert_eq!(r.detection_s, None);
    assert_eq!(r.bytes_relayed, Some(0));
    assert_eq!(r.counters.blocks_discarded, 0, "nothing sent twice");
    assert_eq!(r.server_bytes_up, r.file_bytes);
    // Paced by the sender's 20 Mbit/s; each 1 KiB chunk carries a 13-byte
    // frame, which the bound (on payload) does not count.
    let d = r.distribution_time_s.expect("complete");
    let bound = r.bounds.client_server_s;
    assert!(
        d >= bound && d <= bound * (1.0 + 13.0 / 1024.0 + 0.001),
        "{d} s vs bound {bound} s"
    );
    // The sender hears the last acknowledgement after the destination
    // completes; the run may end first.
    assert!(r.sender_finished_s.is_none_or(|f| f >= d));
}

#[test]
fn a_hung_destination_fails_over_to_the_fastest_relay_and_the_sender_finishes_early() {
    let s = seed000(r#"{ "kind": "hang", "host": "dest", "at": "1 s", "for": "20 s" }"#);
    let (r, stored) = run_counting(&s);
    assert_every_chunk_once(&r, &stored);
    assert_eq!(r.counters.failovers, 1);
    let detection = r.detection_s.expect("a failover has a detection delay");
    assert!((2.0..2.05).contains(&detection), "detection {detection} s");
    let finished = r.sender_finished_s.expect("the sender finished");
    let clean = 10.0 * 1024.0 * 1024.0 * 8.0 / 20e6;
    // Lost time: the detection delay, plus the window stuck at the hung
    // destination; well before the destination resumes at 21 s.
    assert!(
        finished < clean + detection + 0.5,
        "sender finished at {finished} s"
    );
    let done = r.distribution_time_s.expect("complete");
    assert!(done > 21.0, "destination completed at {done} s, while hung?");
    let fast = &r.hosts[2];
    let slow = &r.hosts[3];
    assert!(
        fast.bytes_down > 7 * 1024 * 1024,
        "relay-fast held {} B",
        fast.bytes_down
    );
    assert_eq!(slow.bytes_down, 0, "relay-slow has less spare capacity");
    assert_eq!(r.bytes_relayed, Some(fast.bytes_down));
}

#[test]
fn a_relay_that_crashes_is_survived_through_the_other_relay() {
    let s = seed000(
        r#"{ "kind": "hang", "host": "dest", "at": "1 s", "for": "20 s" },
           { "kind": "crash", "host": "relay-fast", "at": "8 s" }"#,
    );
    let (r, stored) = run_counting(&s);
    assert_every_chunk_once(&r, &stored);
    assert_eq!(
        r.counters.failovers, 2,
        "dest -> relay-fast, relay-fast -> relay-slow"
    );
    let finished = r.sender_finished_s.expect("the sender finished again");
    assert!(
        finished > 8.0 && finished < 21.0,
        "sender finished at {finished} s"
    );
    assert!(r.hosts[3].bytes_down > 0, "relay-slow took over");
}

#[test]
fn relay_runs_are_reproducible() {
    let s = seed000(r#"{ "kind": "hang", "host": "dest", "at": "500 ms", "for": "5 s" }"#);
    let (a, b) = (simulate(&s), simulate(&s));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a, b);
}

#[test]
fn relay_names_are_checked() {
    let text = library::get("relay-seed000").expect("in the library");
    let bad = |from: &str, to: &str| {
        Scenario::from_json(&text.replace(from, to), "t", &[]).expect_err("must be refused")
    };
    assert_eq!(
        bad("\"destination\": \"dest\"", "\"destination\": \"nobody\"").field,
        "relay.destination"
    );
    assert_eq!(
        bad(
            "\"destination\": \"dest\"",
            "\"destination\": \"dest\", \"relays\": [\"relay-fast\", \"dest\"]"
        )
        .field,
        "relay.relays[1]"
    );
    assert_eq!(
        bad(
            "\"destination\": \"dest\"",
            "\"destination\": \"dest\", \"relays\": [\"relay-fast\"]"
        )
        .field,
        "relay.relays"
    );
    assert_eq!(bad("\"1 KiB\"", "\"1 MiB\"").field, "relay.chunk_size");
    assert_eq!(bad("\"window\": 64", "\"window\": 0").field, "relay.window");
}

/// Seed 000's promise, on its library scenario (the destination hangs 1 s in
/// and resumes 20 s later): with a relay the sender's upload is over long
/// before the destination is back; without one it waits for the destination.
#[test]
fn the_seed000_scenario_frees_the_sender_early_thanks_to_the_relay() {
    let text = peerlab_scenarios::library::get("relay-seed000").expect("library scenario");
    let with = peerlab_sim::run(
        &Scenario::from_json(text, "with relay", &[]).expect("valid"),
        "with",
    )
    .expect("runs");
    let alone = Scenario::from_json(
        text,
        "without relay",
        &[r#"peers.hosts=[{"name":"dest"}]"#.into()],
    )
    .expect("valid");
    let without = peerlab_sim::run(&alone, "without").expect("runs");
    for r in [&with, &without] {
        assert_eq!(
            r.outcome,
            peerlab_scenarios::Outcome::Complete,
            "the destination ends with the file"
        );
    }
    let (a, b) = (
        with.sender_finished_s.expect("finished"),
        without.sender_finished_s.expect("finished"),
    );
    assert!(
        a < 21.0,
        "with a relay the sender is done before the destination resumes at 21 s: {a}"
    );
    assert!(b > 21.0, "without one it must wait for the destination: {b}");
    assert_eq!(with.counters.failovers, 1);
    assert!(with.bytes_relayed.unwrap_or(0) > 0);
    assert_eq!(without.counters.failovers, 0);
}
