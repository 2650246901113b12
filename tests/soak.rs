//! The soak test: a swarm of 32 downloaders on loopback, real processes on
//! 127.0.0.1, for a few minutes with everything hostile at once — a peer
//! corrupting every block it sends, a peer flooding every host with
//! half-sent handshakes, peers leaving and joining, crashing and
//! restarting, hanging — and bounded in time ([`PATIENCE`]) and in count
//! (the hosts and faults below). Every honest downloader must complete
//! with a byte-identical file, ban the liar and nobody else, lose at most
//! a few pieces to it, and every process's peak RSS must stay small.
//!
//! Its own test binary, so that no other test shares the two cores with
//! its 34 processes.

mod common;

use std::time::Duration;

/// Bound on the run, which takes two minutes or more.
const PATIENCE: Duration = Duration::from_secs(600);

/// Downloaders.
const PEERS: usize = 32;

/// Most peak RSS of any process: nodes use 12-21 MiB in this run, and a
/// flood without per-address limits took one to 456 MiB.
const MAX_RSS: u64 = 64 * 1024 * 1024;

/// Most pieces the liar may spoil for one downloader: three failures ban it
/// at the latest, plus the pieces its blocks in flight then spoil, twice
/// for a downloader that crashed and forgot the ban.
const MAX_CORRUPT: u64 = 2 * (3 + 4);

#[test]
fn a_hostile_churning_swarm_of_32_completes_with_bounded_memory() {
    let dir = common::scratch("soak");
    let faults = [
        r#"{"kind": "corrupt", "host": "p5", "at": "0 s"}"#,
        r#"{"kind": "flood", "host": "p7", "at": "0 s", "rate": 20}"#,
        r#"{"kind": "leave", "host": "p10", "at": "15 s", "for": "30 s"}"#,
        r#"{"kind": "crash", "host": "p12", "at": "30 s", "for": "15 s"}"#,
        r#"{"kind": "leave", "host": "p11", "at": "40 s", "for": "20 s"}"#,
        r#"{"kind": "hang", "host": "p13", "at": "50 s", "for": "15 s"}"#,
        r#"{"kind": "leave", "host": "p14", "at": "70 s", "for": "30 s"}"#,
        r#"{"kind": "crash", "host": "p15", "at": "90 s", "for": "5 s"}"#,
    ];
    let faults = format!("faults=[{}]", faults.join(", "));
    let peers = format!("peers.count={PEERS}");
    let args = [
        "run",
        "swarm-homogeneous",
        "--on",
        "loopback",
        "--set",
        &peers,
        "--set",
        "file.size=48 MiB",
        "--set",
        "file.piece_size=256 KiB",
        "--set",
        &faults,
        "--pace-server",
        "30 ms",
        "--work-dir",
        "work",
        "--keep",
        "--report",
        "report.json",
    ];
    let out = common::peerlab_in(&dir, &args, PATIENCE);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("files: {PEERS}/{PEERS} byte-identical")),
        "{}",
        out.stdout
    );
    let report = common::read_json(&dir.join("report.json"));
    assert_eq!(report["outcome"], "complete");
    let piece = report["piece_bytes"].as_u64().expect("piece_bytes");

    for h in report["hosts"].as_array().expect("hosts") {
        let name = h["name"].as_str().expect("name");
        if h["role"] != "peer" || name == "p5" {
            continue;
        }
        let failed = h["pieces_corrupt"].as_u64().expect("pieces_corrupt");
        assert!(
            failed <= MAX_CORRUPT,
            "{name} lost {failed} pieces to the liar: {h}"
        );
        assert_eq!(h["corrupt_bytes"], failed * piece, "{h}");
        // Bans: the liar (#5), again after a crash that forgot it; nobody
        // else.
        let events = std::fs::read_to_string(dir.join(format!("work/hosts/{name}/events.jsonl")))
            .expect("events.jsonl");
        let banned: Vec<&str> = events
            .lines()
            .filter(|l| l.contains("\"PeerBanned\""))
            .filter(|l| !l.contains("\"PeerBanned\":{\"peer\":5}"))
            .collect();
        assert!(banned.is_empty(), "{name} banned an honest peer: {banned:?}");
    }
    assert!(
        report["counters"]["peers_banned"].as_u64() >= Some(PEERS as u64 - 1),
        "every honest downloader bans the liar: {}",
        report["counters"]
    );

    let stats = common::read_json(&dir.join("work/loopback-stats.json"));
    let rss = stats["peak_rss_bytes"].as_array().expect("peak_rss_bytes");
    assert_eq!(rss.len(), PEERS + 2, "every process sampled: {rss:?}");
    let (mut peak_host, mut peak) = (String::new(), 0);
    for entry in rss {
        let (host, bytes) = (
            entry[0].as_str().expect("host"),
            entry[1].as_u64().expect("bytes"),
        );
        assert!(bytes > 0, "{host} was never sampled");
        if bytes > peak {
            (peak_host, peak) = (host.to_string(), bytes);
        }
    }
    assert!(peak <= MAX_RSS, "{peak_host} peaked at {peak} bytes");
    eprintln!(
        "soak: distribution {} s, peak RSS {:.1} MiB ({peak_host}), counters {}",
        report["distribution_time_s"],
        peak as f64 / 1048576.0,
        report["counters"]
    );

    // The flood reached the hosts, which closed its connections as more came.
    let victims = report["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h["name"].as_str())
        .filter(|&name| {
            name != "p7"
                && std::fs::read_to_string(dir.join(format!("work/hosts/{name}/node.log")))
                    .is_ok_and(|log| log.contains("closing the oldest"))
        })
        .count();
    assert!(victims >= PEERS / 2, "only {victims} hosts saw the flood");
    let _ = std::fs::remove_dir_all(&dir);
}
