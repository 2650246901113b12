//! Swarm quality: distribution time over the P2P lower bound for
//! homogeneous swarms of N = 2..1,000 peers and for a heterogeneous mix,
//! next to the exact piece-level optimum (F/u)(1 + floor(log2 N)/M).
//! The numbers are ratios by nature: time over a bound of the same run.
//!
//! Run: `cargo bench -p peerlab-sim --bench swarm`
//! (`PEERLAB_BENCH_MAX_N=128` stops the table early.)

// A benchmark prints what it measured and reads the wall clock.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::time::Instant;

use peerlab_scenarios::bounds::piece_level_optimum;
use peerlab_scenarios::{Report, Scenario, library};

fn run(name: &str, sets: &[String]) -> (Report, f64) {
    let text = library::get(name).expect("library scenario");
    let s = Scenario::from_json(text, name, sets).expect("valid scenario");
    let started = Instant::now();
    let r = peerlab_sim::run(&s, name).expect("runnable");
    (r, started.elapsed().as_secs_f64())
}

fn ratio(r: &Report) -> String {
    r.ratio_to_bound
        .map_or_else(|| format!("({:?})", r.outcome), |x| format!("{x:.3}"))
}

fn main() {
    let max_n: u32 = std::env::var("PEERLAB_BENCH_MAX_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!("homogeneous swarm: 64 MiB in 256 pieces, u_s = u = 20 Mbit/s, unlimited download, seed 1");
    println!(
        "{:>5} {:>14} {:>17} {:>18} {:>16} {:>12}",
        "N", "normal / bound", "super-seed / bnd", "optimum / bound", "server up MiB", "wall s"
    );
    for n in [2u32, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
        .into_iter()
        .filter(|&n| n <= max_n)
    {
        let count = format!("peers.count={n}");
        let (normal, w1) = run("swarm-homogeneous", std::slice::from_ref(&count));
        let (sup, w2) = run("swarm-homogeneous", &[count, "swarm.super_seed=true".into()]);
        let f_bits = normal.file_bytes as f64 * 8.0;
        let opt = piece_level_optimum(f_bits, n, 20e6, 256) / normal.bounds.p2p_s;
        println!(
            "{n:>5} {:>14} {:>17} {opt:>18.3} {:>7.1} / {:<6.1} {:>12.1}",
            ratio(&normal),
            ratio(&sup),
            normal.server_bytes_up as f64 / 1048576.0,
            sup.server_bytes_up as f64 / 1048576.0,
            w1 + w2
        );
    }
    println!();
    println!("heterogeneous swarm: swarm-churn with peers staying (64 peers, 5-40 Mbit/s)");
    for super_seed in [false, true] {
        let sets = [
            "swarm.leave=stay".to_string(),
            format!("swarm.super_seed={super_seed}"),
        ];
        let (r, wall) = run("swarm-churn", &sets);
        println!(
            "  super_seed={super_seed:<5}  time / P2P bound {}   ({wall:.1} s wall)",
            ratio(&r)
        );
    }
}
