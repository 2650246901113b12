//! `peerlab compare` end to end: two small sweeps (goodput 0.9 against
//! 1.0, standing in for simulator and real network) and two single reports.

#![allow(clippy::print_stderr)] // a failing test shows what the binary said

mod common;

use common::{peerlab, scratch};

use std::path::{Path, PathBuf};

use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A sweep of lab-client-server over peers.count=1..3 with `extra` --sets;
/// returns its reports.jsonl.
fn sweep(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "sweep",
        "lab-client-server",
        "--set",
        "peers.count=1..3",
        "--set",
        "file.size=1 MiB",
        "-q",
        "--out",
        s(&out),
    ];
    for e in extra {
        args.extend(["--set", e]);
    }
    assert!(peerlab(&args).status.success());
    out.join("reports.jsonl")
}

fn times(jsonl: &Path) -> Vec<f64> {
    std::fs::read_to_string(jsonl)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["report"]["distribution_time_s"].as_f64().unwrap()
        })
        .collect()
}

fn assert_figures(dir: &Path) {
    let png = std::fs::read(dir.join("plot.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "plot.png is a PNG");
    let svg = std::fs::read_to_string(dir.join("plot.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "plot.svg is an SVG"
    );
}

#[test]
fn two_sweeps_are_compared_point_by_point_with_b_as_the_reference() {
    let dir = scratch("sweeps");
    let a = sweep(&dir, "a", &["network.goodput=0.9"]);
    let b = sweep(&dir, "b", &["network.goodput=1.0"]);
    let figs = dir.join("figs");
    let o = peerlab(&["compare", s(&a), s(&b), "--out", s(&figs)]);
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    let (ta, tb) = (times(&a), times(&b));
    assert_eq!(ta.len(), 3);
    let errors: Vec<f64> = ta.iter().zip(&tb).map(|(a, b)| (a - b).abs() / b).collect();
    for (n, e) in (1..=3).zip(&errors) {
        assert!(
            (e - 1.0 / 9.0).abs() < 0.01,
            "goodput 0.9 vs 1.0 is about 0.111: {e}"
        );
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&n.to_string()))
            .unwrap_or_else(|| panic!("a row for peers.count={n}: {stdout}"));
        assert!(row.contains(&format!("{e:.4}")), "row {row:?} shows {e:.4}");
    }
    let max = errors.iter().copied().fold(0.0, f64::max);
    assert!(stdout.contains(&format!("max {max:.4}")), "summary: {stdout}");
    assert_figures(&figs);
}

#[test]
fn two_single_reports_are_also_compared_peer_by_peer() {
    let dir = scratch("single");
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    for (path, goodput) in [(&a, "0.9"), (&b, "1.0")] {
        let set = format!("network.goodput={goodput}");
        let args = [
            "run",
            "lab-client-server",
            "--set",
            "peers.count=3",
            "--set",
            "file.size=1 MiB",
        ];
        let o = peerlab(&[&args[..], &["--set", &set, "--report", s(path)]].concat());
        assert!(o.status.success());
    }
    let figs = dir.join("figs");
    let o = peerlab(&["compare", s(&a), s(&b), "--out", s(&figs)]);
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    let report = |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (ra, rb) = (report(&a), report(&b));
    for host in ra["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["role"] == "peer")
    {
        let name = host["name"].as_str().unwrap();
        let hb = rb["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap();
        let (ca, cb) = (
            host["completed_s"].as_f64().unwrap(),
            hb["completed_s"].as_f64().unwrap(),
        );
        let e = (ca - cb).abs() / cb;
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("a row for {name}: {stdout}"));
        assert!(row.contains(&format!("{e:.4}")), "row {row:?} shows {e:.4}");
    }
    assert!(stdout.contains("per-peer relative error"));
    assert_figures(&figs);
}

#[test]
fn a_different_protocol_at_a_matched_point_is_an_error_naming_it() {
    let dir = scratch("mismatch");
    let a = sweep(&dir, "a", &[]);
    let b = sweep(&dir, "b", &["protocol=static-tracker"]);
    let o = peerlab(&["compare", s(&a), s(&b), "--out", s(&dir.join("figs"))]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("peers.count=1"), "names the point: {stderr}");
    assert!(stderr.contains("protocol"), "names the field: {stderr}");
}

#[test]
fn an_unreadable_or_empty_input_is_an_error_naming_it() {
    let dir = scratch("unreadable");
    let missing = dir.join("missing.jsonl");
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let junk = dir.join("junk.jsonl");
    std::fs::write(&junk, "{\"point\": {}, \"report\": {}}\nnot json\n").unwrap();
    for (path, says) in [
        (&missing, "cannot read"),
        (&empty, "is empty"),
        (&junk, "junk.jsonl:1"),
    ] {
        let o = peerlab(&["compare", s(path), s(&empty), "--out", s(&dir.join("figs"))]);
        assert_eq!(o.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(s(path)) && stderr.contains(says),
            "{says}: {stderr}"
        );
    }
}
