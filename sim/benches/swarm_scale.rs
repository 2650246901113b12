//! Simulator scale: a homogeneous swarm of 1,000 peers fetching 256 MiB
//! (1,024 pieces), wall time, events per second as a ratio to a bare event
//! queue timed in the same run, and peak memory, in the message model and
//! in the pieces model (`simulator.model`), with the pieces model's time
//! and distribution time as ratios to the message model's; then the
//! 10,000-peer run of the scale target (under 60 s on one core;
//! docs/simulator.md, "Speed") in the pieces model, under a minute. The message model's
//! 10,000-peer run, about an hour, is opt-in (`PEERLAB_BENCH_10K=1`).
//!
//! Run: `cargo bench -p peerlab-sim --bench swarm_scale`
//! (`PEERLAB_BENCH_SCALE_MIB=64` for a quicker, smaller file;
//! `PEERLAB_BENCH_SCALE_N=10000` for one size alone, or a comma-separated
//! list, in both models; `PEERLAB_BENCH_MODEL=pieces` or `messages` for one
//! model alone. Peak RSS is the process's so far, so a model's own peak
//! shows when it runs alone.)
//!
//! The scenario's event limit (10^9 by default) is lifted to 10^11: a
//! 10,000-peer swarm needs about 1.24 billion events in the message model.
//! A run that stops short anyway says how far it got: virtual time and
//! share of the bytes delivered.

// A benchmark prints what it measured and reads the wall clock.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::time::Instant;

use peerlab_scenarios::{Scenario, library};

#[path = "common/mod.rs"]
mod common;
use common::{bare_queue, peak_rss_kib};

fn main() {
    let mib: u64 = std::env::var("PEERLAB_BENCH_SCALE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let only: Option<&str> = match std::env::var("PEERLAB_BENCH_MODEL").as_deref() {
        Ok("pieces") => Some("pieces"),
        Ok("messages") => Some("messages"),
        Ok(other) => panic!("PEERLAB_BENCH_MODEL: {other:?} is neither `pieces` nor `messages`"),
        Err(_) => None,
    };
    // (peers, models to run at that size).
    let both = vec!["messages", "pieces"];
    let mut sizes: Vec<(u32, Vec<&str>)> = vec![(1000, both.clone())];
    if std::env::var("PEERLAB_BENCH_10K").is_ok_and(|v| v == "1") {
        sizes.push((10_000, both.clone()));
    } else {
        sizes.push((10_000, vec!["pieces"]));
    }
    if let Ok(list) = std::env::var("PEERLAB_BENCH_SCALE_N") {
        sizes = list
            .split(',')
            .map(|n| {
                let n = n
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("PEERLAB_BENCH_SCALE_N: {n:?} is not a peer count"));
                (n, both.clone())
            })
            .collect();
    }
    for (n, models) in sizes {
        let models: Vec<&str> = models
            .into_iter()
            .filter(|m| only.is_none_or(|o| o == *m))
            .collect();
        // (wall s, time / bound) of each model, for the comparison.
        let mut seen: Vec<(&str, f64, Option<f64>)> = Vec::new();
        for &model in &models {
            let (wall, ratio) = run_one(n, mib, model);
            seen.push((model, wall, ratio));
        }
        if let [(_, mw, Some(mr)), (_, pw, Some(pr))] = seen[..] {
            println!(
                "  N = {n}: the pieces model took {:.4} x the message model's time \
                 ({:.0} x faster); its distribution time is {:.4} x the message model's",
                pw / mw,
                mw / pw,
                pr / mr
            );
        }
        if let (10_000, 256) = (n, mib)
            && let Some(&(_, wall, _)) = seen.iter().find(|(m, _, _)| *m == "pieces")
        {
            println!(
                "  scale target, 10,000 peers x 256 MiB in under 60 s on one core: {wall:.1} s \
                 in the pieces model, {} (wall time: compare within one session only)",
                if wall < 60.0 { "met" } else { "not met" }
            );
        }
    }
}

/// Runs the homogeneous swarm of `n` peers and `mib` MiB in `model`,
/// prints what it measured, returns (wall seconds, time / P2P bound).
fn run_one(n: u32, mib: u64, model: &str) -> (f64, Option<f64>) {
    let text = library::get("swarm-homogeneous").expect("library scenario");
    let sets = [
        format!("peers.count={n}"),
        format!("file.size={mib} MiB"),
        format!("simulator.model={model}"),
        "limits.max_events=100000000000".to_string(),
    ];
    let s = Scenario::from_json(text, "swarm-homogeneous", &sets).expect("valid");
    let started = Instant::now();
    let r = peerlab_sim::run(&s, "scale").expect("runnable");
    let wall = started.elapsed().as_secs_f64();
    let events = r.sim.as_ref().map_or(0, |s| s.events);
    let base = bare_queue(events, 6 * u64::from(n)).as_secs_f64();
    println!(
        "N = {n}, {mib} MiB ({} pieces), {model} model: {:?}, time / P2P bound {}, {events} events \
         in {wall:.1} s = {:.0} events/s = {:.3} x a bare event queue; peak RSS {} MiB",
        s.layout().pieces(),
        r.outcome,
        r.ratio_to_bound.map_or_else(|| "-".into(), |x| format!("{x:.3}")),
        events as f64 / wall,
        base / wall,
        peak_rss_kib().map_or_else(|| "?".into(), |k| (k / 1024).to_string())
    );
    if r.distribution_time_s.is_none() {
        let delivered: u64 = r.hosts.iter().map(|h| h.bytes_down).sum();
        let wanted = u64::from(r.downloaders) * r.file_bytes;
        println!(
            "  stopped at {:.2} s of virtual time with {:.1}% of the bytes delivered",
            r.sim.as_ref().map_or(0.0, |s| s.end_time_ns as f64 / 1e9),
            100.0 * delivered as f64 / wanted.max(1) as f64
        );
    }
    (wall, r.ratio_to_bound)
}
