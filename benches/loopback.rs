//! 1 GiB from one server to one client on loopback, as two real `peerlab
//! node` processes, against `iperf3` on the same machine in the same run;
//! and the peak RSS (VmHWM) of each process (target: < 64 MiB).
//!
//! `cargo bench --bench loopback` (PEERLAB_BENCH_SIZE overrides the size,
//! e.g. "256 MiB"). Without iperf3 only the absolute throughput is printed.

#![allow(clippy::print_stdout)] // a benchmark reports what it measured

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MIB: f64 = 1024.0 * 1024.0;
const RSS_TARGET: u64 = 64 << 20;

fn main() {
    let size = std::env::var("PEERLAB_BENCH_SIZE").unwrap_or_else(|_| "1 GiB".into());
    let dir = std::env::temp_dir().join(format!("peerlab-bench-loopback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");

    let iperf = iperf3_bits_per_second();

    let scenario = format!(
        r#"{{ "name": "bench-loopback", "protocol": "client-server", "seed": 1,
        "file": {{ "size": "{size}", "piece_size": "256 KiB" }},
        "server": {{ "upload": "10 Gbit/s" }},
        "peers": {{ "count": 1, "upload": "10 Gbit/s", "download": "10 Gbit/s" }},
        "limits": {{ "max_time": "10 min" }} }}"#
    );
    std::fs::write(dir.join("bench.json"), scenario).expect("scenario");
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["run", "bench.json", "--on", "loopback", "--report", "report.json"])
        .args(["--work-dir", "work", "--keep", "-q"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("peerlab starts");
    let status = wait_bounded(&mut child, Duration::from_secs(900)).expect("peerlab run finished in 15 min");
    assert!(status.success(), "peerlab run --on loopback failed: {status}");

    let report = read_json(&dir.join("report.json"));
    let stats = read_json(&dir.join("work/loopback-stats.json"));
    let bytes = report["file_bytes"].as_f64().unwrap_or(0.0);
    let distribution = report["distribution_time_s"].as_f64().unwrap_or(f64::NAN);
    // The transfer itself: first block received to download complete (the
    // distribution time also holds process start-up and the seed's hash
    // check of its whole file).
    let events = std::fs::read_to_string(dir.join("work/hosts/p1/events.jsonl")).expect("client events");
    let mut first = None;
    let mut done = None;
    for line in events.lines() {
        let r: Value = serde_json::from_str(line).expect("event line");
        let t = r["t_ns"].as_f64().unwrap_or(0.0) / 1e9;
        if r["event"].get("BlockReceived").is_some() && first.is_none() {
            first = Some(t);
        }
        if r["event"] == "DownloadComplete" {
            done = Some(t);
        }
    }
    let transfer = done.unwrap_or(f64::NAN) - first.unwrap_or(f64::NAN);
    let rate = bytes * 8.0 / transfer;

    println!("loopback, {size} from one server to one client (two processes):");
    println!(
        "  transfer            {:.3} s  {:.1} MiB/s  {:.2} Gbit/s",
        transfer,
        bytes / transfer / MIB,
        rate / 1e9
    );
    println!("  distribution time   {distribution:.3} s (from the common start, after every node is ready)");
    match iperf {
        Some(iperf) => println!(
            "  iperf3 (same run)   {:.2} Gbit/s  -> peerlab / iperf3 = {:.3}",
            iperf / 1e9,
            rate / iperf
        ),
        None => println!(
            "  iperf3 not found: install it (apt-get install iperf3) for the ratio; absolute throughput only"
        ),
    }
    for pair in stats["peak_rss_bytes"].as_array().into_iter().flatten() {
        let rss = pair[1].as_u64().unwrap_or(0);
        println!(
            "  peak RSS {:<10} {:.1} MiB ({} the {} MiB target)",
            pair[0].as_str().unwrap_or("?"),
            rss as f64 / MIB,
            if rss < RSS_TARGET { "within" } else { "OVER" },
            RSS_TARGET >> 20
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// iperf3's TCP throughput on 127.0.0.1 over 5 s, in bits per second; None
/// if iperf3 is missing or fails.
fn iperf3_bits_per_second() -> Option<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port()
        .to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // No probe connection: a one-off server would take it for its test.
    std::thread::sleep(Duration::from_millis(500));
    let client = Command::new("iperf3")
        .args(["-c", "127.0.0.1", "-p", &port, "-t", "5", "-J"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok();
    let result = client.and_then(|mut c| {
        let status = wait_bounded(&mut c, Duration::from_secs(30))?;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut c.stdout.take()?, &mut out).ok()?;
        status.success().then_some(out)
    });
    let _ = wait_bounded(&mut server, Duration::from_secs(5));
    let json: Value = serde_json::from_str(&result?).ok()?;
    json["end"]["sum_received"]["bits_per_second"].as_f64()
}
