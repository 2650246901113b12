//! How closely the pieces model follows the message model away from the
//! defaults: a grid of swarm knobs x N x seeds, both models on each point
//! (`peerlab_sim::agreement`), and per knob set and N the mean difference
//! of the distribution time and of the peers' median (p50) and
//! 90th-percentile (p90) completion times, with the worst seed's.
//! docs/simulator.md ("How closely the two models agree") quotes its table.
//!
//! Run: `cargo run --release -p peerlab-sim --example model_agreement`
//! (`PEERLAB_GRID_N=32,128` for other sizes, `PEERLAB_GRID_SEEDS=3` for
//! another number of seeds, `PEERLAB_GRID_MIB=16` for another file,
//! `PEERLAB_GRID_KNOBS=churn,defaults` for the knob sets whose names
//! contain one of these; the runs go to every core). The scenario is `swarm-homogeneous` (every
//! link 20 Mbit/s, unlimited downloads) with 256 KiB pieces.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Mutex;

use peerlab_sim::agreement::{KNOBS, Point, Times, difference};

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: {x:?} is not a number"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

type Outcome = Result<(Times, Times), String>;

fn main() {
    let ns = env_list("PEERLAB_GRID_N", &[32, 128, 512]);
    let seeds = env_list("PEERLAB_GRID_SEEDS", &[3])[0];
    let mib = env_list("PEERLAB_GRID_MIB", &[64])[0];
    let only: Option<Vec<String>> = std::env::var("PEERLAB_GRID_KNOBS")
        .ok()
        .map(|v| v.split(',').map(|x| x.trim().to_string()).collect());
    let chosen = |k: usize| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|x| KNOBS[k].0.contains(x.as_str())))
    };
    let mut points = Vec::new();
    for knobs in (0..KNOBS.len()).filter(|&k| chosen(k)) {
        for &n in &ns {
            for seed in 1..=seeds {
                points.push(Point { knobs, n, mib, seed });
            }
        }
    }
    // Largest first, so that the cores finish together.
    points.sort_by_key(|p| std::cmp::Reverse(p.n));
    let total = points.len();
    let queue = Mutex::new(points.into_iter());
    let results: Mutex<Vec<(Point, Outcome)>> = Mutex::new(Vec::new());
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                loop {
                    let Some(p) = queue.lock().expect("queue").next() else {
                        return;
                    };
                    let out = p.measure();
                    let mut all = results.lock().expect("results");
                    all.push((p, out));
                    eprint!("\r{} of {total} points", all.len());
                }
            });
        }
    });
    eprintln!();
    let results = results.into_inner().expect("results");
    println!(
        "swarm-homogeneous, {mib} MiB, seeds 1..={seeds}; the pieces model's difference from the \
         message model (mean of the seeds; the worst seed in brackets)"
    );
    println!();
    println!("| knobs | N | messages: time (s) | pieces: time (s) | time | p50 | p90 |");
    println!("|---|---|---|---|---|---|---|");
    for (k, (name, _)) in KNOBS.iter().enumerate().filter(|&(k, _)| chosen(k)) {
        for &n in &ns {
            let rows: Vec<&Outcome> = results
                .iter()
                .filter(|(p, _)| p.knobs == k && p.n == n)
                .map(|(_, o)| o)
                .collect();
            if let Some(Err(field)) = rows.first() {
                println!("| {name} | {n} | | refused by name (`{field}`) | | | |");
                continue;
            }
            let ok: Vec<&(Times, Times)> = rows.iter().filter_map(|r| r.as_ref().ok()).collect();
            let mean =
                |f: &dyn Fn(&(Times, Times)) -> f64| ok.iter().map(|r| f(r)).sum::<f64>() / ok.len() as f64;
            let diff = |i: usize| {
                let d: Vec<f64> = ok.iter().map(|(m, p)| difference(m, p)[i]).collect();
                let worst = d
                    .iter()
                    .copied()
                    .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                    .unwrap_or(0.0);
                format!(
                    "{:+.1}% ({:+.1}%)",
                    100.0 * d.iter().sum::<f64>() / d.len() as f64,
                    100.0 * worst
                )
            };
            println!(
                "| {name} | {n} | {:.2} | {:.2} | {} | {} | {} |",
                mean(&|r| r.0[0]),
                mean(&|r| r.1[0]),
                diff(0),
                diff(1),
                diff(2)
            );
        }
    }
}
