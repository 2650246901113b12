//! `peerlab run --on loopback`, `peerlab node` and `peerlab metainfo` as a
//! user meets them: real processes on 127.0.0.1, byte-identical files,
//! reports of the simulator's shape, errors that name what was wrong.
//! Every command is bounded by [`PATIENCE`] and killed after it.

mod common;

use common::{Ran, key_paths, read_json};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bound on every command these tests run.
const PATIENCE: Duration = Duration::from_secs(120);

const MIB: u64 = 1024 * 1024;

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peerlab-loopback-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `peerlab ARGS` in `dir`, bounded by [`PATIENCE`].
fn peerlab(dir: &Path, args: &[&str]) -> Ran {
    common::peerlab_in(dir, args, PATIENCE)
}

/// Runs `scenario` with `sets` on loopback and in the simulator; checks the
/// loopback run completed with every file identical, and that both reports
/// have the same keys. Returns the loopback report.
fn loopback_like_sim(name: &str, scenario: &str, sets: &[&str], extra: &[&str]) -> (Value, PathBuf) {
    loopback_like_sim_but(name, scenario, sets, extra, 0)
}

/// [`loopback_like_sim`] where `liars` downloaders lie about their pieces
/// (fault `lying`): the run does not wait for them, nor compares their
/// files.
fn loopback_like_sim_but(
    name: &str,
    scenario: &str,
    sets: &[&str],
    extra: &[&str],
    liars: usize,
) -> (Value, PathBuf) {
    let dir = scratch(name);
    let mut args = vec!["run", scenario, "--on", "loopback", "--report", "loopback.json"];
    args.extend(["--work-dir", "work", "--keep"]);
    for s in sets {
        args.extend(["--set", s]);
    }
    args.extend(extra);
    let out = peerlab(&dir, &args);
    assert_eq!(
        out.code,
        Some(0),
        "loopback run failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("byte-identical to the source") && !out.stdout.contains("DIFFERENT"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("link rates are not enforced"),
        "{}",
        out.stdout
    );
    let report = read_json(&dir.join("loopback.json"));
    assert_eq!(report["backend"], "loopback");
    assert_eq!(report["outcome"], "complete");
    assert!(report["trace_hash"].is_null() && report["sim"].is_null());
    let stats = read_json(&dir.join("work/loopback-stats.json"));
    for pair in stats["identical"].as_array().expect("identical") {
        assert_eq!(pair[1], true, "{pair} differs from the source");
    }
    let downloaders = report["downloaders"].as_u64().expect("downloaders");
    assert_eq!(
        stats["identical"].as_array().map(Vec::len),
        Some(downloaders as usize - liars)
    );

    let mut args = vec!["run", scenario, "--report", "sim.json", "-q"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let out = peerlab(&dir, &args);
    assert_eq!(out.code, Some(0), "sim run failed: {}", out.stderr);
    let sim = read_json(&dir.join("sim.json"));
    let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&report, "", &mut a);
    key_paths(&sim, "", &mut b);
    // `sim` is an object in a simulator report and null here.
    b.retain(|k| !k.starts_with(".sim."));
    assert_eq!(a, b, "the loopback and simulator reports differ in shape");
    (report, dir)
}

/// A peer that sends corrupt blocks (the fault `corrupt`, SIGUSR1 to its
/// process) on loopback: every honest peer completes with the source's
/// bytes, each bans the liar, and the junk is bounded (at most three failed
/// pieces per downloader); the simulator bans it the same way.
#[test]
fn a_corrupting_peer_is_banned_on_loopback() {
    let sets = [
        "peers.count=8",
        "file.size=4 MiB",
        "file.piece_size=64 KiB",
        r#"faults=[{"kind": "corrupt", "host": "p3", "at": "0 s"}]"#,
    ];
    let (report, dir) = loopback_like_sim("liar", "swarm-homogeneous", &sets, &[]);
    let sim = read_json(&dir.join("sim.json"));
    for r in [&report, &sim] {
        let c = &r["counters"];
        assert_eq!(
            c["peers_banned"], 7,
            "{}: every other peer bans p3: {c}",
            r["backend"]
        );
        let corrupt = c["pieces_corrupt"].as_u64().expect("pieces_corrupt");
        assert!(
            (1..=7 * 3).contains(&corrupt),
            "{}: {corrupt} corrupt pieces",
            r["backend"]
        );
        assert_eq!(c["corrupt_bytes"], corrupt * 64 * 1024, "{}: {c}", r["backend"]);
        common::assert_liar_banned_by_each(r, "p3", 64 * 1024);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Every event of `host` in a kept loopback work directory.
fn host_events(dir: &Path, host: &str) -> Vec<Value> {
    let path = dir.join(format!("work/hosts/{host}/events.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("event line")["event"].clone())
        .collect()
}

/// The corrupt fault with `every` on loopback (the control file, then
/// SIGUSR1): only pieces whose index is a multiple of 4 fail, in both
/// backends; every honest peer completes with the source's bytes and bans
/// the liar, which spoiled at most 7 pieces per downloader.
#[test]
fn a_peer_corrupting_one_piece_in_four_spoils_only_those_on_loopback() {
    let sets = [
        "peers.count=8",
        "file.size=4 MiB",
        "file.piece_size=64 KiB",
        r#"faults=[{"kind": "corrupt", "host": "p3", "at": "0 s", "every": 4}]"#,
    ];
    let (report, dir) = loopback_like_sim("liar-every", "swarm-homogeneous", &sets, &[]);
    let mut failed = Vec::new();
    for k in 1..=8 {
        for e in host_events(&dir, &format!("p{k}")) {
            if let Some(p) = e["PieceCorrupt"]["piece"].as_u64() {
                failed.push(p);
            }
        }
    }
    assert!(
        !failed.is_empty(),
        "the liar spoiled nothing: {}",
        report["counters"]
    );
    assert!(failed.iter().all(|p| p % 4 == 0), "{failed:?}");
    let sim = read_json(&dir.join("sim.json"));
    for r in [&report, &sim] {
        let backend = &r["backend"];
        for h in r["hosts"].as_array().expect("hosts") {
            let failed = h["pieces_corrupt"].as_u64().expect("pieces_corrupt");
            assert_eq!(h["corrupt_bytes"], failed * 64 * 1024, "{backend}: {h}");
            assert!(failed <= 7, "{backend}: {h}");
            // Who received a spoiled piece banned the liar, nobody else.
            let banned = u64::from(failed > 0 && h["name"] != "p3");
            assert_eq!(h["peers_banned"], banned, "{backend}: {h}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A peer that answers no request (fault `silent`: its process drops every
/// request it receives) on loopback: it uploads nothing, the others route
/// around it (their requests there time out after 5 s and move) and all
/// complete with the source's bytes, in at most 5 s more than the
/// simulator's unshaped-link time allows for the timeout.
#[test]
fn a_silent_peer_is_routed_around_on_loopback() {
    let sets = [
        "peers.count=8",
        "file.size=4 MiB",
        "file.piece_size=64 KiB",
        r#"faults=[{"kind": "silent", "host": "p3", "at": "0 s"}]"#,
    ];
    let (report, dir) = loopback_like_sim("silent", "swarm-homogeneous", &sets, &[]);
    let p3 = &report["hosts"][3];
    assert_eq!(p3["name"], "p3");
    assert_eq!(p3["bytes_up"], 0, "the silent peer sent blocks: {p3}");
    assert!(p3["completed_s"].is_number(), "it still downloads: {p3}");
    let d = report["distribution_time_s"].as_f64().expect("complete");
    assert!(d < 15.0, "{d} s: the honest peers waited on the silent one");
    let _ = std::fs::remove_dir_all(dir);
}

/// A peer flooding every other host with half-sent handshakes (fault
/// `flood`, 50 new connections a second to each) on loopback: each victim
/// closes the flood's oldest connection in its handshake as new ones come
/// (its log says so), the swarm completes with the source's bytes, and the
/// flooder itself, whose own connections come from the same address,
/// downloads too.
#[test]
fn a_flooding_peer_costs_the_others_a_few_sockets_on_loopback() {
    let sets = [
        "peers.count=8",
        "file.size=4 MiB",
        "file.piece_size=64 KiB",
        r#"faults=[{"kind": "flood", "host": "p3", "at": "0 s", "rate": 50}]"#,
    ];
    // The server paced to a block per 10 ms, so the run lasts seconds: the
    // flood needs a few tenths of one to fill an address's share.
    let (report, dir) = loopback_like_sim("flood", "swarm-homogeneous", &sets, &["--pace-server", "10 ms"]);
    for h in report["hosts"].as_array().expect("hosts") {
        if h["role"] == "peer" {
            assert!(h["completed_s"].is_number(), "{h}");
        }
    }
    let d = report["distribution_time_s"].as_f64().expect("complete");
    assert!(d < 15.0, "{d} s: the flood held the swarm up");
    for host in ["server", "p1", "p8"] {
        let log = dir.join(format!("work/hosts/{host}/node.log"));
        let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(
            log.contains("closing the oldest connection in its handshake"),
            "{host} never saw the flood: {log}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A peer that claims every piece (fault `lying`: its process sends a full
/// bitfield and drops requests for pieces it lacks) on loopback: the
/// honest peers complete with the source's bytes; the liar is neither
/// waited for nor compared.
#[test]
fn a_lying_peer_does_not_hold_up_the_others_on_loopback() {
    let sets = [
        "peers.count=8",
        "file.size=4 MiB",
        "file.piece_size=64 KiB",
        r#"faults=[{"kind": "lying", "host": "p3", "at": "0 s"}]"#,
    ];
    let (report, dir) = loopback_like_sim_but("lying", "swarm-homogeneous", &sets, &[], 1);
    for h in report["hosts"].as_array().expect("hosts") {
        if h["role"] == "peer" && h["name"] != "p3" {
            assert!(h["completed_s"].is_number(), "{h}");
        }
    }
    let d = report["distribution_time_s"].as_f64().expect("complete");
    assert!(d < 15.0, "{d} s: the honest peers waited on the liar");
    // Its first bitfield already lied: the server, a seed, dropped it as
    // a fellow seed before it unchoked anyone.
    let server = host_events(&dir, "server");
    let dropped = server.iter().position(|e| e["Disconnected"]["peer"] == 3);
    let unchoked = server.iter().position(|e| e.get("Unchoked").is_some());
    assert!(dropped.is_some() && dropped < unchoked, "{server:?}");
    assert!(report["hosts"][3]["completed_s"].is_null(), "the liar completed");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn client_server_eight_clients_on_loopback() {
    let (report, dir) = loopback_like_sim(
        "cs",
        "lab-client-server",
        &["peers.count=8", "file.size=3 MiB"],
        &[],
    );
    for h in report["hosts"].as_array().expect("hosts").iter().skip(1) {
        assert_eq!(h["bytes_down"], 3 * MIB, "{h}");
        assert!(h["completed_s"].is_number());
    }
    assert_eq!(report["server_bytes_up"], 8 * 3 * MIB);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn static_tracker_eight_peers_on_loopback() {
    let (report, dir) = loopback_like_sim(
        "st",
        "lab-static-tracker",
        &["peers.count=8", "file.size=3 MiB"],
        &[],
    );
    // The peers shared the work: the server sent each piece about once.
    let up = report["server_bytes_up"].as_u64().expect("server_bytes_up");
    assert!(up < 8 * 3 * MIB / 2, "the server uploaded {up} bytes");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn swarm_eight_peers_through_the_http_tracker_on_loopback() {
    let (report, dir) = loopback_like_sim(
        "swarm",
        "swarm-homogeneous",
        &["peers.count=8", "file.size=3 MiB", "file.piece_size=64 KiB"],
        &[],
    );
    let hosts = report["hosts"].as_array().expect("hosts");
    let peers: Vec<&Value> = hosts.iter().filter(|h| h["role"] == "peer").collect();
    assert_eq!(peers.len(), 8);
    for h in &peers {
        assert!(h["completed_s"].is_number(), "{h}");
    }
    // Peers served each other, not only the seed.
    let from_peers: u64 = peers.iter().map(|h| h["bytes_up"].as_u64().unwrap_or(0)).sum();
    assert!(from_peers > 0, "no peer uploaded anything: {report}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Relay with its own shape: one destination, seven relay candidates; the
/// destination hangs (SIGSTOP) while the paced sender streams, the sender
/// fails over to a relay, the destination resumes and gets every chunk.
#[test]
fn relay_fails_over_on_loopback() {
    let hosts: Vec<String> = (1..=7)
        .map(|k| format!(r#"{{"name":"r{k}","upload":"50 Mbit/s","download":"50 Mbit/s"}}"#))
        .collect();
    let hosts = format!(
        "peers.hosts=[{{\"name\":\"dest\",\"upload\":\"20 Mbit/s\"}},{}]",
        hosts.join(",")
    );
    let (report, dir) = loopback_like_sim(
        "relay",
        "relay-seed000",
        &[
            "file.size=2 MiB",
            "relay.chunk_size=16 KiB",
            "relay.detection_timeout=300 ms",
            &hosts,
            "faults.0.at=150 ms",
            "faults.0.for=2 s",
        ],
        &["--pace-server", "5 ms"],
    );
    assert_eq!(report["downloaders"], 1);
    assert_eq!(report["hosts"].as_array().map(Vec::len), Some(9));
    assert!(report["counters"]["failovers"].as_u64() >= Some(1), "{report}");
    assert!(report["bytes_relayed"].as_u64() > Some(0), "{report}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A client SIGKILLed mid-download restarts on its data directory and
/// fetches only what it had not verified.
///
/// The bound: a kill loses the blocks of pieces not yet verified. The
/// client keeps at most `pipeline` blocks requested, in piece order, so at
/// the kill it holds unverified data of at most the pieces those requests
/// span: less than one piece plus the pipeline window (16 × 16 KiB). So
/// `bytes_down < file + piece + window`; a restart from scratch would
/// instead download everything verified before the kill again, which the
/// test makes larger than that margin.
#[test]
fn a_killed_client_restarts_and_resumes() {
    let dir = scratch("crash");
    let scenario = r#"{ "name": "cs-crash", "protocol": "client-server", "seed": 7,
      "file": { "size": "4 MiB", "piece_size": "256 KiB" },
      "server": { "upload": "20 Mbit/s" },
      "peers": { "count": 1, "upload": "20 Mbit/s", "download": "20 Mbit/s" },
      "client_server": { "pipeline": 16 },
      "faults": [ { "kind": "crash", "host": "p1", "at": "1200 ms", "for": "300 ms" } ] }"#;
    std::fs::write(dir.join("crash.json"), scenario).expect("scenario");
    // 256 blocks, at most one per 8 ms: the transfer takes over 2 s, so the
    // crash at 1.2 s lands in the middle (the test checks that it did).
    let out = peerlab(
        &dir,
        &[
            "run",
            "crash.json",
            "--on",
            "loopback",
            "--pace-server",
            "8 ms",
            "--report",
            "r.json",
            "--work-dir",
            "work",
            "--keep",
        ],
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let report = read_json(&dir.join("r.json"));
    assert_eq!(report["outcome"], "complete");
    assert_eq!(report["counters"]["faults"], 1);

    let crash_ns = 1_200_000_000;
    let events = std::fs::read_to_string(dir.join("work/hosts/p1/events.jsonl")).expect("events");
    let records: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect();
    let before: Vec<&Value> = records
        .iter()
        .filter(|r| r["t_ns"].as_u64() < Some(crash_ns))
        .collect();
    let verified_before = before
        .iter()
        .filter(|r| r["event"].get("PieceVerified").is_some())
        .count() as u64;
    assert!(
        !before.iter().any(|r| r["event"] == "DownloadComplete"),
        "the crash came after the download"
    );
    let piece = 256 * 1024;
    let window = 16 * 16 * 1024;
    let margin = piece + window;
    assert!(
        verified_before * piece > margin,
        "only {verified_before} pieces verified before the crash: too few to tell a resume from a restart"
    );
    assert!(
        records
            .iter()
            .any(|r| r["t_ns"].as_u64() > Some(crash_ns) && r["event"] == "DownloadComplete"),
        "the restarted client completed"
    );
    let down = report["hosts"][1]["bytes_down"].as_u64().expect("bytes_down");
    assert!(
        down < 4 * MIB + margin,
        "p1 downloaded {down} bytes: verified pieces were fetched again"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn metainfo_create_round_trip() {
    let dir = scratch("metainfo");
    let bytes: Vec<u8> = (0..1_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("film.bin"), &bytes).expect("file");
    let out = peerlab(
        &dir,
        &[
            "metainfo",
            "create",
            "film.bin",
            "--piece-size",
            "64KiB",
            "--hash",
            "sha256",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let hash_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("info hash:"))
        .expect("info hash");
    let hash = hash_line.trim_start_matches("info hash:").trim();
    assert_eq!(hash.len(), 40, "{hash_line}");
    let meta = read_json(&dir.join("film.bin.peerlab.json"));
    assert_eq!(meta["name"], "film.bin");
    assert_eq!(meta["length"], 1_000_003);
    assert_eq!(meta["piece_length"], 65_536);
    assert_eq!(meta["pieces"].as_array().map(Vec::len), Some(16));
    assert_eq!(
        meta["pieces"][0].as_str().map(str::len),
        Some(64),
        "SHA-256 digests"
    );
    // The same file makes the same metainfo.
    let again = peerlab(
        &dir,
        &[
            "metainfo",
            "create",
            "film.bin",
            "--piece-size",
            "64KiB",
            "--hash",
            "sha256",
        ],
    );
    assert!(again.stdout.contains(hash));
    let _ = std::fs::remove_dir_all(dir);
}

/// A server and a client started by hand with `peerlab node`, as on two
/// machines: the client's file is the server's. Both log at debug level to
/// a standard error where every write fails (`/dev/full`, as a full disk
/// under a node's log): a node whose log cannot be written keeps working.
#[test]
fn two_nodes_by_hand() {
    let dir = scratch("by-hand");
    let bytes: Vec<u8> = (0..3 * MIB as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    std::fs::write(dir.join("data.bin"), &bytes).expect("file");
    let out = peerlab(
        &dir,
        &["metainfo", "create", "data.bin", "--piece-size", "256KiB"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        })
        .collect();
    std::fs::write(
        dir.join("addrs.txt"),
        format!("server = 127.0.0.1:{}\np1 = 127.0.0.1:{}\n", ports[0], ports[1]),
    )
    .expect("addresses");
    let common = [
        "node",
        "--scenario",
        "lab-client-server",
        "--set",
        "peers.count=1",
        "--set",
        "file.size=3 MiB",
        "--addresses",
        "addrs.txt",
        "-vv",
    ];
    let spawn = |extra: &[&str]| {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        Command::new(env!("CARGO_BIN_EXE_peerlab"))
            .args(common)
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(full))
            .spawn()
            .expect("node starts")
    };
    let mut server = spawn(&["--host", "server", "--data", "srv", "--file", "data.bin"]);
    let mut client = spawn(&[
        "--host",
        "p1",
        "--data",
        "dl",
        "--metainfo",
        "data.bin.peerlab.json",
    ]);
    let deadline = Instant::now() + PATIENCE;
    let events = dir.join("dl/events.jsonl");
    let done = loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if text.contains("\"DownloadComplete\"") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = server.kill();
    let _ = client.kill();
    let _ = server.wait();
    let _ = client.wait();
    assert!(done, "the client did not complete in {PATIENCE:?}");
    assert_eq!(std::fs::read(dir.join("dl/data.bin")).expect("download"), bytes);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_address_files_and_hosts_are_named() {
    let dir = scratch("bad");
    std::fs::write(dir.join("f.bin"), vec![1u8; 1000]).expect("file");
    let meta = ["--metainfo", "f.bin.peerlab.json"];
    assert_eq!(
        peerlab(&dir, &["metainfo", "create", "f.bin", "--piece-size", "256KiB"]).code,
        Some(0)
    );
    let node = |addresses: &str, host: &str| {
        std::fs::write(dir.join("a.txt"), addresses).expect("addresses");
        let mut args = vec![
            "node",
            "--scenario",
            "lab-client-server",
            "--set",
            "peers.count=1",
            "--set",
            "file.size=1000",
            "--host",
            host,
            "--data",
            "d",
            "--addresses",
            "a.txt",
        ];
        args.extend(meta);
        let out = peerlab(&dir, &args);
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        out.stderr
    };
    let e = node("server = 127.0.0.1:1\np1 = 127.0.0.1\n", "p1");
    assert!(
        e.contains("line 2") && e.contains("p1") && e.contains("ip:port"),
        "{e}"
    );
    let e = node("server = 127.0.0.1:1\n", "p1");
    assert!(e.contains("no address for scenario host(s) p1"), "{e}");
    let e = node("server = 127.0.0.1:1\np1 = 127.0.0.1:2\np9 = 127.0.0.1:3\n", "p1");
    assert!(e.contains("p9") && e.contains("does not have"), "{e}");
    let e = node("server 127.0.0.1:1\n", "p1");
    assert!(e.contains("line 1") && e.contains("name = ip:port"), "{e}");
    let e = node("server = 127.0.0.1:1\np1 = 127.0.0.1:2\n", "p7");
    assert!(e.contains("no host \"p7\"") && e.contains("server, p1"), "{e}");

    // A metainfo of another size, and a data directory through a file.
    std::fs::write(dir.join("a.txt"), "server = 127.0.0.1:1\np1 = 127.0.0.1:2\n").expect("addresses");
    let mut args = vec![
        "node",
        "--scenario",
        "lab-client-server",
        "--set",
        "peers.count=1",
        "--host",
        "p1",
        "--data",
        "d",
        "--addresses",
        "a.txt",
    ];
    args.extend(meta);
    let e = peerlab(&dir, &args).stderr;
    assert!(
        e.contains("describes 1000 bytes") && e.contains("file.size"),
        "{e}"
    );
    let mut args = vec![
        "node",
        "--scenario",
        "lab-client-server",
        "--set",
        "peers.count=1",
        "--set",
        "file.size=1000",
        "--host",
        "p1",
        "--data",
        "f.bin/sub",
        "--addresses",
        "a.txt",
    ];
    args.extend(meta);
    let e = peerlab(&dir, &args).stderr;
    assert!(e.contains("data directory") && e.contains("f.bin/sub"), "{e}");
    args[10] = "d";
    let e = peerlab(&dir, &args[..args.len() - 2]).stderr;
    assert!(e.contains("--metainfo"), "{e}");

    // Faults loopback cannot apply are refused up front.
    let out = peerlab(
        &dir,
        &[
            "run",
            "relay-seed000",
            "--on",
            "loopback",
            "--set",
            "faults.0.kind=link-down",
        ],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("faults[0]") && out.stderr.contains("--on mininet"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A run or a download that cannot fit on its disk fails at once, with the
/// numbers, and leaves nothing behind: a `100 TiB` run writes no source, a
/// downloader given a 100 TiB metainfo creates no (sparse) file.
#[test]
fn a_run_or_download_that_cannot_fit_fails_at_once() {
    let dir = scratch("no-room");
    let work = dir.join("work");
    let out = peerlab(
        &dir,
        &[
            "run",
            "lab-client-server",
            "--on",
            "loopback",
            "--set",
            "peers.count=1",
            "--set",
            "file.size=100 TiB",
            "--set",
            "file.piece_size=128 MiB",
            "--work-dir",
            work.to_str().expect("utf-8 path"),
            "--quiet",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("needs 200.0 TiB") && out.stderr.contains("free"),
        "{}",
        out.stderr
    );
    assert!(
        !work.join("source").join("file.bin").exists(),
        "a source was written"
    );

    let (length, piece): (u64, u64) = (100 << 40, 2 << 30);
    let digests = vec![format!("\"{}\"", "a".repeat(40)); (length / piece) as usize].join(",");
    std::fs::write(
        dir.join("huge.json"),
        format!(r#"{{"name":"huge.bin","length":{length},"piece_length":{piece},"pieces":[{digests}]}}"#),
    )
    .expect("metainfo");
    std::fs::write(dir.join("a.txt"), "server = 127.0.0.1:1\np1 = 127.0.0.1:2\n").expect("addresses");
    let out = peerlab(
        &dir,
        &[
            "node",
            "--scenario",
            "lab-client-server",
            "--set",
            "peers.count=1",
            "--set",
            "file.size=100 TiB",
            "--set",
            "file.piece_size=2 GiB",
            "--host",
            "p1",
            "--data",
            "d",
            "--addresses",
            "a.txt",
            "--metainfo",
            "huge.json",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("the download of \"huge.bin\" needs"),
        "{}",
        out.stderr
    );
    assert!(
        !dir.join("d").join("huge.bin").exists(),
        "a sparse file was created"
    );
    let _ = std::fs::remove_dir_all(dir);
}
