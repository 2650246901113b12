//! The churn stall on loopback: ten downloaders of 20 MB leave as soon as
//! they complete (`swarm-churn`), as real processes on 127.0.0.1. When the
//! seed's announce reached the tracker after some peers' (the order is
//! random: every node starts at once from the start barrier), those peers
//! never heard of the seed and waited for a timer — 10 s or 120 s in runs
//! whose median took well under a second. Twenty runs: none may take more
//! than a small multiple of the median, and no downloader may go without a
//! block for seconds.
//!
//! Its own test binary, so that no other test shares the two cores while
//! the runs are timed.

mod common;

use std::time::Duration;

/// Runs of the scenario (`PEERLAB_CHURN_RUNS` to change).
fn runs() -> usize {
    std::env::var("PEERLAB_CHURN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// No run beyond this multiple of the median distribution time.
const SPREAD: f64 = 3.0;

/// No downloader without a block for longer than this: the stall this test
/// guards against lasted 10 s or 120 s; a debug build on two busy cores
/// hashes 20 MB per peer in a few seconds at most.
const STALL: f64 = 5.0;

#[test]
fn peers_leaving_at_completion_do_not_stall_the_rest_on_loopback() {
    let dir = common::scratch("loopback-churn");
    let mut times = Vec::new();
    let mut stalls = Vec::new();
    for i in 0..runs() {
        let report = format!("run{i}.json");
        let ran = common::peerlab_in(
            &dir,
            &[
                "run",
                "swarm-churn",
                "--on",
                "loopback",
                "--set",
                "peers.count=10",
                "--set",
                "file.size=20MB",
                "--set",
                "peers.hosts=[]",
                "--set",
                "limits.max_time=60 s",
                "--report",
                &report,
                "--quiet",
            ],
            Duration::from_secs(180),
        );
        assert_eq!(
            ran.code,
            Some(0),
            "run {i} did not complete or a file differs:\n{}\n{}",
            ran.stdout,
            ran.stderr
        );
        let r = common::read_json(&dir.join(&report));
        let time = r["distribution_time_s"].as_f64().expect("complete");
        let stall = &r["longest_stall"];
        let (len, who) = (
            stall["to_s"].as_f64().unwrap_or(0.0) - stall["from_s"].as_f64().unwrap_or(0.0),
            stall["host"].as_str().unwrap_or("-").to_string(),
        );
        eprintln!("run {i}: {time:.3} s, longest stall {len:.3} s ({who})");
        times.push(time);
        stalls.push((len, who, i));
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    for (i, t) in times.iter().enumerate() {
        assert!(
            *t <= SPREAD * median,
            "run {i} took {t:.3} s, more than {SPREAD} x the median {median:.3} s: {times:?}"
        );
    }
    for (len, who, i) in &stalls {
        assert!(
            *len <= STALL,
            "run {i}: {who} received nothing for {len:.3} s (all runs: {times:?})"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
