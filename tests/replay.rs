//! Deterministic replay: a recorded run replays to the identical trace, and
//! a trace that does not match its scenario is caught at the exact line.

mod common;

use common::{peerlab, scratch};

use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Records `cs-faults` (crash, hang and link faults) into `dir/trace.jsonl`.
fn record(dir: &Path) -> (PathBuf, serde_json::Value) {
    let trace = dir.join("trace.jsonl");
    let report = dir.join("report.json");
    let out = peerlab(&[
        "run",
        "cs-faults",
        "--trace",
        s(&trace),
        "--report",
        s(&report),
        "--quiet",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    (trace, report)
}

#[test]
fn a_recorded_run_with_faults_replays_identically() {
    let dir = scratch("same");
    let (trace, report) = record(&dir);
    assert!(
        report["counters"]["faults"].as_u64() >= Some(3),
        "the faults were applied: {report}"
    );
    let out = peerlab(&["replay", s(&trace)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("identical"), "{stdout}");
    let hash = report["trace_hash"].as_str().expect("trace hash");
    assert!(
        stdout.contains(hash),
        "replay reports the recorded trace hash {hash}: {stdout}"
    );
}

#[test]
fn a_tampered_trace_is_caught_at_its_line() {
    let dir = scratch("tampered");
    let (trace, _) = record(&dir);
    let text = std::fs::read_to_string(&trace).expect("trace");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Shift one record's time by a nanosecond.
    let mut rec: serde_json::Value = serde_json::from_str(&lines[99]).expect("record");
    rec["t"] = serde_json::json!(rec["t"].as_u64().expect("time") + 1);
    lines[99] = rec.to_string();
    std::fs::write(&trace, lines.join("\n") + "\n").expect("rewrite");
    let out = peerlab(&["replay", s(&trace)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("diverged at line 100"), "{stdout}");
}

#[test]
fn a_truncated_trace_is_caught() {
    let dir = scratch("truncated");
    let (trace, _) = record(&dir);
    let text = std::fs::read_to_string(&trace).expect("trace");
    let kept: Vec<&str> = text.lines().take(500).collect();
    std::fs::write(&trace, kept.join("\n") + "\n").expect("rewrite");
    let out = peerlab(&["replay", s(&trace)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains("diverged at line 501") && stdout.contains("end of file"),
        "{stdout}"
    );
}

#[test]
fn a_file_that_is_not_a_trace_is_refused_clearly() {
    let dir = scratch("garbage");
    let file = dir.join("notes.txt");
    std::fs::write(&file, "hello\n").expect("write");
    let out = peerlab(&["replay", s(&file)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("not a trace header"), "{stderr}");
}
