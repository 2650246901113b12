//! `peerlab sweep` end to end: the built binary over a small grid.

#![allow(clippy::print_stderr)] // a failing test shows what the binary said

mod common;

use common::{peerlab, scratch};

use std::path::Path;

use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_sweep_writes_in_grid_order_the_reports_peerlab_run_writes() {
    let dir = scratch("matches-run");
    let out = dir.join("sweep");
    let o = peerlab(&[
        "sweep",
        "lab-client-server",
        "--set",
        "peers.count=1..4",
        "--set",
        "file.size=1 MiB",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("ratio"), "the table is printed: {stdout}");

    let points = lines(&out.join("reports.jsonl"));
    assert_eq!(points.len(), 4);
    for (k, line) in (1..=4).zip(&points) {
        assert_eq!(
            line["point"],
            serde_json::json!({"peers.count": k, "file.size": "1 MiB"})
        );
        let report = &line["report"];
        assert_eq!(report["downloaders"], k);

        let single = dir.join(format!("run-{k}.json"));
        let o = peerlab(&[
            "run",
            "lab-client-server",
            "--set",
            &format!("peers.count={k}"),
            "--set",
            "file.size=1 MiB",
            "--report",
            single.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success());
        let run: Value = serde_json::from_str(&std::fs::read_to_string(&single).unwrap()).unwrap();
        assert!(report["trace_hash"].is_string());
        assert_eq!(report["trace_hash"], run["trace_hash"], "point {k}");
        assert_eq!(
            report["distribution_time_s"], run["distribution_time_s"],
            "point {k}"
        );
        assert_eq!(report["bounds"], run["bounds"], "point {k}");
    }

    let png = std::fs::read(out.join("plot.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "plot.png is a PNG");
    let svg = std::fs::read_to_string(out.join("plot.svg")).unwrap();
    assert!(svg.contains("<svg"));
    assert!(svg.contains("peer-to-peer bound"), "the legend names the bounds");
    assert!(!out.join("reports.jsonl.partial").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweeping_twice_gives_identical_reports_whatever_the_threads() {
    let dir = scratch("twice");
    let mut files = Vec::new();
    for (run, jobs) in [("a", "1"), ("b", "2")] {
        let out = dir.join(run);
        let o = peerlab(&[
            "sweep",
            "lab-client-server",
            "--set",
            "network.latency=0 ms,5 ms",
            "--set",
            "peers.count=1..3",
            "--set",
            "file.size=512 KiB",
            "--jobs",
            jobs,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success());
        files.push(std::fs::read(out.join("reports.jsonl")).unwrap());
    }
    assert_eq!(files[0], files[1]);
    let points = lines(&dir.join("a/reports.jsonl"));
    let order: Vec<(String, u64)> = points
        .iter()
        .map(|l| {
            let p = &l["point"];
            (
                p["network.latency"].as_str().unwrap().to_string(),
                p["peers.count"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = ["0 ms", "5 ms"]
        .iter()
        .flat_map(|l| (1..=3).map(move |n| (l.to_string(), n)))
        .collect();
    assert_eq!(order, want, "the last --set varies fastest");
    // Latency slows every point down, never below its bound.
    for l in &points {
        let r = &l["report"];
        assert!(
            r["distribution_time_s"].as_f64().unwrap() >= r["bounds"]["client_server_s"].as_f64().unwrap()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_value_stops_the_sweep_before_anything_runs() {
    let dir = scratch("bad-value");
    let out = dir.join("sweep");
    let o = peerlab(&[
        "sweep",
        "lab-client-server",
        "--set",
        "peers.count=1,2,many",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("peers.count"), "names the field: {stderr}");
    assert!(stderr.contains("point 3 of 3"), "names the point: {stderr}");
    assert!(!out.exists(), "nothing was run or written");

    let o = peerlab(&[
        "sweep",
        "lab-client-server",
        "--set",
        "protocol=client-server,carrier-pigeon",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("field `protocol`"), "{stderr}");
    assert!(!out.exists());

    let o = peerlab(&["sweep", "lab-client-server", "--set", "peers.count=9..2"]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("peers.count") && stderr.contains("below the start"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_documents_ranges_and_commas() {
    let o = peerlab(&["sweep", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("2..14/3"), "{help}");
    assert!(help.contains("contains a comma"), "{help}");
}
