//! `peerlab fidelity`: the command's files, resume and errors, on loopback
//! (no root needed).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{peerlab_in, scratch};

/// A one-row matrix small enough for loopback.
const TINY: &str = r#"{
  "name": "tiny",
  "repeats": 2,
  "rows": [ { "name": "cs-2", "scenario": "lab-client-server",
              "set": ["peers.count=2", "file.size=256 KiB"] } ]
}"#;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// The command writes every run as it goes, a row line with both sides'
/// statistics, the Markdown table and the figure; a second invocation on
/// the same directory refuses without --resume and, with it, runs nothing
/// again.
#[test]
fn a_matrix_writes_its_runs_rows_table_and_figure_and_resumes() {
    let dir = scratch("fidelity-loopback");
    std::fs::write(dir.join("tiny.json"), TINY).expect("matrix");
    // Every loopback run counts, however busy the machine (it is no
    // measurement).
    let args = [
        "fidelity",
        "tiny.json",
        "--real",
        "loopback",
        "--out",
        "out",
        "--quiet",
        "--max-cpu-pressure",
        "1",
    ];
    let ran = peerlab_in(&dir, &args, Duration::from_secs(120));
    // Loopback enforces no link rates: the row misses, and says so.
    assert_eq!(ran.code, Some(2), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("0/1 rows within 5% of loopback"),
        "{}",
        ran.stdout
    );
    let out = dir.join("out");
    let runs = lines(&out.join("runs.jsonl"));
    assert_eq!(runs.len(), 4, "2 seeds x 2 sides");
    for (r, (backend, seed)) in runs
        .iter()
        .zip([("sim", 1), ("loopback", 1), ("sim", 2), ("loopback", 2)])
    {
        assert_eq!(
            (r["backend"].as_str(), r["seed"].as_u64()),
            (Some(backend), Some(seed))
        );
        assert_eq!(r["report"]["backend"], backend);
    }
    let rows = lines(&out.join("rows.jsonl"));
    assert_eq!(rows.len(), 1);
    let d = &rows[0]["metrics"]["distribution_time"];
    assert_eq!(d["sim"]["n"], 2);
    assert!(d["error"].as_f64().is_some(), "{d}");
    let md = std::fs::read_to_string(out.join("fidelity.md")).expect("fidelity.md");
    assert!(md.contains("| cs-2 |") && md.contains("### cs-2"), "{md}");
    assert!(out.join("plot.png").exists() && out.join("plot.svg").exists());

    let again = peerlab_in(&dir, &args, Duration::from_secs(60));
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);
    let resumed = peerlab_in(
        &dir,
        &[&args[..], &["--resume"]].concat(),
        Duration::from_secs(60),
    );
    assert_eq!(resumed.code, Some(2), "{}", resumed.stderr);
    assert_eq!(lines(&out.join("runs.jsonl")).len(), 4, "nothing run twice");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Mistakes name what is wrong before any run starts.
#[test]
fn matrix_mistakes_are_named() {
    let dir = scratch("fidelity-errors");
    let bad_row = TINY.replace("\"peers.count=2\"", "\"peers.cuont=2\"");
    std::fs::write(dir.join("bad-row.json"), bad_row).expect("matrix");
    let ran = peerlab_in(
        &dir,
        &["fidelity", "bad-row.json", "--real", "loopback"],
        Duration::from_secs(30),
    );
    assert_eq!(ran.code, Some(1));
    assert!(
        ran.stderr.contains("cs-2") && ran.stderr.contains("peers.cuont"),
        "{}",
        ran.stderr
    );
    std::fs::write(
        dir.join("bad.json"),
        TINY.replace("\"repeats\": 2", "\"repeats\": 0"),
    )
    .expect("matrix");
    let ran = peerlab_in(&dir, &["fidelity", "bad.json"], Duration::from_secs(30));
    assert!(ran.stderr.contains("`repeats`"), "{}", ran.stderr);
    let ran = peerlab_in(&dir, &["fidelity", "no-such-matrix"], Duration::from_secs(30));
    assert!(
        ran.stderr.contains("shipped matrices: matrix, ci"),
        "{}",
        ran.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}
