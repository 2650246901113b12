//! The `peerlab` command as a user meets it: exit codes, tables, reports and
//! errors that name what was wrong.

mod common;

use common::{peerlab, scratch};

const GOOD: &str = r#"{
    "name": "tiny",
    "protocol": "client-server",
    "file": { "size": "1 MiB" },
    "server": { "upload": "10 Mbit/s" },
    "peers": { "count": 3, "upload": "10 Mbit/s", "download": "10 Mbit/s" }
}"#;

/// Runs `peerlab run` on `json` and returns (exit code, stderr).
fn run_json(name: &str, json: &str) -> (Option<i32>, String) {
    let dir = scratch(name);
    let file = dir.join("scenario.json");
    std::fs::write(&file, json).expect("write scenario");
    let report = dir.join("report.json");
    let out = peerlab(&[
        "run",
        file.to_str().expect("utf-8 path"),
        "--report",
        report.to_str().expect("utf-8 path"),
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_scenario_prints_the_table_and_writes_the_report() {
    let dir = scratch("good");
    let file = dir.join("tiny.json");
    std::fs::write(&file, GOOD).expect("write scenario");
    let report = dir.join("out").join("tiny-report.json");
    let out = peerlab(&[
        "run",
        file.to_str().expect("path"),
        "--report",
        report.to_str().expect("path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("distribution time"), "{stdout}");
    assert!(stdout.contains("client-server bound"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("report is JSON");
    assert_eq!(r["backend"], "sim");
    assert_eq!(r["protocol"], "client-server");
    assert_eq!(r["file_bytes"], 1 << 20);
    assert_eq!(r["hosts"].as_array().map(Vec::len), Some(4));
    // 3 x 1 MiB through a 10 Mbit/s uplink, of which the calibrated
    // goodput factor is left for payload.
    assert_eq!(
        r["goodput_factor"],
        peerlab_scenarios::scenario::CALIBRATED_GOODPUT
    );
    let bound = r["bounds"]["client_server_s"].as_f64().expect("bound");
    let payload_rate = 10e6 * peerlab_scenarios::scenario::CALIBRATED_GOODPUT;
    assert!((bound - 3.0 * 8.0 * 1_048_576.0 / payload_rate).abs() < 1e-9);
    let d = r["distribution_time_s"].as_f64().expect("distribution time");
    assert!(d >= bound && d <= bound * 1.005, "{d} vs {bound}");
    assert!(r["trace_hash"].as_str().is_some_and(|h| h.len() == 16));
}

#[test]
fn an_unknown_field_is_named() {
    let (code, err) = run_json(
        "unknown",
        &GOOD.replace("\"upload\": \"10 Mbit/s\" }", "\"uplaod\": \"10 Mbit/s\" }"),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("server.uplaod"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn a_negative_size_is_named() {
    let (code, err) = run_json("negative", &GOOD.replace("\"1 MiB\"", "\"-1 MiB\""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("file.size"), "{err}");
    assert!(err.contains("negative"), "{err}");
}

/// Host names become directories on the real backends: one that is a path
/// is refused before anything is written, on every backend.
#[test]
fn a_host_name_that_is_a_path_is_refused() {
    let dir = scratch("host-path");
    let file = dir.join("scenario.json");
    let json = GOOD.replace(
        "\"count\": 3,",
        "\"count\": 3, \"hosts\": [{ \"name\": \"../escaped\" }],",
    );
    std::fs::write(&file, json).expect("write scenario");
    for on in ["sim", "loopback"] {
        let work = dir.join(format!("work-{on}"));
        let out = peerlab(&[
            "run",
            file.to_str().expect("utf-8 path"),
            "--on",
            on,
            "--work-dir",
            work.to_str().expect("utf-8 path"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{on}: {err}");
        assert!(err.contains("peers.hosts[0].name"), "{on}: {err}");
        assert!(
            !dir.join("escaped").exists(),
            "{on}: wrote outside the work directory"
        );
    }
}

#[test]
fn a_missing_protocol_is_named() {
    let (code, err) = run_json("noproto", &GOOD.replace("\"protocol\": \"client-server\",", ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("missing field `protocol`"), "{err}");
}

#[test]
fn invalid_json_says_where() {
    let (code, err) = run_json("badjson", &GOOD.replace("\"tiny\",", "\"tiny\""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn a_bad_override_is_named() {
    let out = peerlab(&["run", "lab-client-server", "--set", "peers.count=-3", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("peers.count"), "{err}");
}

#[test]
fn a_link_queue_outside_mininet_is_refused() {
    for on in ["sim", "loopback"] {
        let out = peerlab(&[
            "run",
            "lab-client-server",
            "--on",
            on,
            "--link-queue",
            "fifo",
            "--quiet",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{on}: {err}");
        assert!(
            err.contains("--link-queue") && err.contains("mininet"),
            "{on}: {err}"
        );
    }
}

#[test]
fn an_unknown_scenario_lists_the_library() {
    let out = peerlab(&["run", "no-such-scenario"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("lab-client-server"), "{err}");
}

#[test]
fn a_run_cut_short_by_its_time_limit_exits_3_and_says_so() {
    let dir = scratch("limit");
    let report = dir.join("r.json");
    let out = peerlab(&[
        "run",
        "lab-client-server",
        "--set",
        "limits.max_time=1 s",
        "--report",
        report.to_str().expect("path"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(r["outcome"], "time-limit");
    assert!(r["distribution_time_s"].is_null());
}

#[test]
fn help_teaches_with_an_example() {
    let out = peerlab(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("peerlab run lab-client-server"), "{help}");
    assert!(help.contains("--set"), "{help}");
}
