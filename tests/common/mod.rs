//! Helpers shared by the integration tests.

#![allow(dead_code)]
#![allow(clippy::print_stderr)] // a failing test shows what the binary said

use peerlab_scenarios::{Report, Scenario};

/// A scenario from JSON text with `--set`-style overrides; panics with the
/// scenario error, which names the field.
pub fn scenario(json: &str, sets: &[String]) -> Scenario {
    Scenario::from_json(json, "test scenario", sets).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a scenario in the simulator; panics if it cannot run.
pub fn simulate(s: &Scenario) -> Report {
    peerlab_sim::run(s, "test scenario").unwrap_or_else(|e| panic!("{e}"))
}

/// `--set` arguments from `(path, value)` pairs.
pub fn sets(pairs: &[(&str, String)]) -> Vec<String> {
    pairs.iter().map(|(p, v)| format!("{p}={v}")).collect()
}

/// Saves a scenario that broke a property to
/// `target/peerlab-failures/<trace hash>.json` and returns the command that
/// replays it, for the failure message: a failing case is one command away
/// from a recorded, replayable trace.
pub fn reproduce_with(s: &Scenario, r: &Report) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peerlab-failures");
    let name = r.trace_hash.clone().unwrap_or_else(|| "run".into());
    let path = dir.join(format!("{name}.json"));
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_string_pretty(s).unwrap_or_default()));
    match saved {
        Ok(()) => format!(
            "reproduce: cargo run --release -- run {} --trace {name}.trace.jsonl",
            path.display()
        ),
        Err(e) => format!("(could not save the scenario to {}: {e})", path.display()),
    }
}

/// Runs the `peerlab` binary with `args`; what it printed goes to stderr,
/// where a failing test shows it.
pub fn peerlab(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(args)
        .output()
        .expect("peerlab starts");
    eprintln!(
        "peerlab {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a bounded run of `peerlab` left.
#[derive(Debug)]
pub struct Ran {
    /// Exit status (None: killed by a signal).
    pub code: Option<i32>,
    /// Everything it printed to stdout.
    pub stdout: String,
    /// Everything it printed to stderr.
    pub stderr: String,
}

/// Runs `peerlab ARGS` in `dir`, bounded by `patience`: past it, the run is
/// asked to stop (SIGTERM, so it tears down what it started), killed 5 s
/// later, and the test fails.
pub fn peerlab_in(dir: &std::path::Path, args: &[&str], patience: std::time::Duration) -> Ran {
    use std::time::{Duration, Instant};
    let (out, err) = (dir.join("cmd.stdout"), dir.join("cmd.stderr"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("peerlab starts");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + patience;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = std::process::Command::new("kill")
                .arg(child.id().to_string())
                .status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "peerlab {args:?} did not finish in {patience:?}; stderr: {}",
                read(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// A fresh scratch directory for one test, unique to this test process.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("peerlab-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Reads a JSON file, panicking with its path.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// A swarm report with one corrupting peer, `liar`, and BitTorrent's
/// default pipeline of 4 requests: every other downloader banned exactly
/// one neighbour (no honest one), failed at most 7 pieces and counts their
/// bytes (`piece` each), and the liar, fed only honest data, banned nobody
/// and failed nothing. Seven: the liar is banned by the third failed piece
/// it had a hand in (at once when it sent a failed piece alone), and its
/// 4 requested blocks in flight then can spoil 4 more pieces.
pub fn assert_liar_banned_by_each(r: &serde_json::Value, liar: &str, piece: u64) {
    let max_pieces = 3 + 4;
    let backend = &r["backend"];
    let peers = r["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter(|h| h["role"] == "peer");
    for h in peers {
        let failed = h["pieces_corrupt"].as_u64().expect("pieces_corrupt");
        assert_eq!(h["corrupt_bytes"], failed * piece, "{backend}: {h}");
        if h["name"] == liar {
            assert_eq!(
                (h["peers_banned"].as_u64(), failed),
                (Some(0), 0),
                "{backend}: {h}"
            );
        } else {
            assert_eq!(h["peers_banned"], 1, "{backend}: {h}");
            assert!(failed <= max_pieces, "{backend}: {h}");
        }
    }
}

/// Every key path of `v` (array items merged), e.g. `.hosts[].bytes_down`:
/// the shape of a report, to check that backends write the same shape.
pub fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = format!("{prefix}.{k}");
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Whether this machine can run Mininet (root, and Mininet's Python
/// package); prints why `test` is skipped otherwise, straight to stderr
/// past the harness's capture: a skip must be seen, never look like a pass.
pub fn mininet_available(test: &str) -> bool {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mininet = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import mininet.net"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !(root && mininet) {
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: needs root and mininet (root: {root}, mininet: {mininet})"
        );
    }
    root && mininet
}
