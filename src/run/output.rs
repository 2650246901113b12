//! What every backend of `peerlab run` prints and writes: the progress bar,
//! the report (written atomically) and the table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use peerlab_scenarios::{Report, Role};

use super::RunArgs;
use crate::human;

/// The report's path: --report, or `<name>.report.json`.
pub fn report_path(args: &RunArgs, name: &str) -> PathBuf {
    args.report
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.report.json")))
}

/// The bar of a run: its share of the downloaders' bytes, and a message.
pub fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    human::progress_bar(
        quiet,
        1,
        "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
    )
}

/// Writes the report next to its final place, then renames it there, so an
/// interrupted run never leaves a half-written report behind.
pub(crate) fn write_report(path: &Path, report: &Report) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.partial");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, report)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write the report to {}", path.display()))
}

pub(crate) fn print_table(r: &Report, all: bool, wall: Duration) {
    println!(
        "{} · {} · seed {} · {} backend",
        r.scenario.as_deref().unwrap_or("scenario"),
        r.protocol,
        r.seed,
        r.backend
    );
    println!(
        "file {} in {} pieces · {} downloaders · goodput factor {}",
        human::bytes(r.file_bytes),
        r.file_bytes.div_ceil(r.piece_bytes),
        r.downloaders,
        r.goodput_factor
    );
    println!();
    println!(
        "{:<12} {:<7} {:>12} {:>12} {:>12}",
        "host", "role", "completed", "down", "up"
    );
    let mut rows: Vec<&_> = r.hosts.iter().collect();
    // Peers by completion time (unfinished last), the server first.
    rows.sort_by(|a, b| {
        let key = |h: &&peerlab_scenarios::report::HostReport| {
            (h.role != Role::Server, h.completed_s.unwrap_or(f64::INFINITY))
        };
        key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let shown: Vec<usize> = if all || rows.len() <= 16 {
        (0..rows.len()).collect()
    } else {
        (0..8).chain(rows.len() - 5..rows.len()).collect()
    };
    let mut last = None;
    for i in shown {
        if last.is_some_and(|l: usize| i > l + 1) {
            println!(
                "{:<12} ({} more; --all shows every host)",
                "…",
                i - last.unwrap_or(0) - 1
            );
        }
        last = Some(i);
        let h = rows[i];
        let role = match h.role {
            Role::Server => "server",
            Role::Peer => "peer",
            Role::Tracker => "tracker",
            Role::Relay => "relay",
        };
        let done = h.completed_s.map_or_else(|| "-".to_string(), human::secs);
        println!(
            "{:<12} {:<7} {:>12} {:>12} {:>12}",
            h.name,
            role,
            done,
            human::bytes(h.bytes_down),
            human::bytes(h.bytes_up)
        );
    }
    println!();
    let bound = r.bound_s();
    match r.distribution_time_s {
        Some(d) => println!("distribution time      {}", human::secs(d)),
        None => println!("distribution time      - (run ended: {:?})", r.outcome),
    }
    if let Some(st) = &r.longest_stall {
        println!(
            "longest stall          {} ({} received nothing from t = {} to {})",
            human::secs(st.length_s()),
            st.host,
            human::secs(st.from_s),
            human::secs(st.to_s)
        );
    }
    println!("client-server bound    {}", human::secs(r.bounds.client_server_s));
    println!("peer-to-peer bound     {}", human::secs(r.bounds.p2p_s));
    if let Some(ratio) = r.ratio_to_bound {
        println!(
            "time / {} bound  {ratio:.4} (bound {})",
            r.bound_name(),
            human::secs(bound)
        );
    }
    if let Some(t) = r.sender_finished_s {
        println!(
            "sender finished        {} ({} failovers, first detected after {}, {} relayed)",
            human::secs(t),
            r.counters.failovers,
            r.detection_s.map_or_else(|| "-".to_string(), human::secs),
            human::bytes(r.bytes_relayed.unwrap_or(0))
        );
    }
    let c = &r.counters;
    let trouble = c.sources_lost
        + c.pieces_corrupt
        + c.protocol_violations
        + c.storage_failures
        + c.peers_banned
        + c.peers_suspended
        + c.requests_timed_out;
    if trouble > 0 {
        println!(
            "trouble: {} sources lost, {} corrupt pieces ({}), {} peers banned, {} suspended, {} request timeouts, {} protocol violations, {} storage failures",
            c.sources_lost,
            c.pieces_corrupt,
            human::bytes(c.corrupt_bytes),
            c.peers_banned,
            c.peers_suspended,
            c.requests_timed_out,
            c.protocol_violations,
            c.storage_failures
        );
    }
    if let Some(sim) = &r.sim {
        println!(
            "simulated {} events in {} wall ({} events/s) · trace {}",
            human::count(sim.events),
            human::secs(wall.as_secs_f64()),
            human::count((sim.events as f64 / wall.as_secs_f64().max(1e-9)) as u64),
            r.trace_hash.as_deref().unwrap_or("-")
        );
    }
}
