//! Swarm quality: distribution time over the P2P lower bound for
//! homogeneous swarms of N = 2..1,000 peers and for a heterogeneous mix,
//! next to the exact piece-level optimum (F/u)(1 + floor(log2 N)/M), with
//! the default uploads (every request answered at once) and serial ones, and
//! the tuned profile of docs/swarm.md (serial uploads, super-seeding, a
//! 500 ms rechoke, 6 regular unchoke slots and up to 160 neighbours: the
//! `swarm-tuned` library scenario).
//! The numbers are ratios by nature: time over a bound of the same run.
//!
//! Run: `cargo bench -p peerlab-sim --bench swarm`
//! (`PEERLAB_BENCH_MAX_N=128` stops the table early.)
//!
//! `PEERLAB_BENCH_REFERENCE=1` adds the tuned profile with the scale target's
//! reference file, 256 MiB in 1,024 pieces (the scale target's), at N = 128
//! .. 1,000: the piece-level optimum's start-up term, floor(log2 N)/M, is a
//! quarter of the 64 MiB file's there. The same four runs took 54 minutes
//! as `peerlab run` on this machine, with both cores busy.

// A benchmark prints what it measured and reads the wall clock.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::time::Instant;

use peerlab_scenarios::bounds::piece_level_optimum;
use peerlab_scenarios::{Report, Scenario, library};

/// The swarms compared, as (serial uploads, super-seed, rechoke interval,
/// regular unchoke slots, most neighbours, peers asked of the tracker):
/// normal, super-seed, serial, serial + super (BitTorrent's 4 slots, 80
/// and 50), and the tuned profile (`swarm-tuned`).
const CONFIGS: [Config; 5] = [
    (false, false, "10 s", 4, 80, 50),
    (false, true, "10 s", 4, 80, 50),
    (true, false, "10 s", 4, 80, 50),
    (true, true, "10 s", 4, 80, 50),
    (true, true, "500 ms", 6, 160, 100),
];

type Config = (bool, bool, &'static str, u32, u32, u32);

fn knobs((serial, sup, rechoke, slots, max_peers, numwant): Config) -> [String; 6] {
    [
        format!("swarm.super_seed={sup}"),
        format!("swarm.serial_uploads={serial}"),
        format!("swarm.rechoke_interval={rechoke}"),
        format!("swarm.unchoke_slots={slots}"),
        format!("swarm.max_peers={max_peers}"),
        format!("swarm.numwant={numwant}"),
    ]
}

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

/// The piece-level optimum for `n` peers and `pieces` pieces, over the P2P
/// bound of run `r` (u_s = u = 20 Mbit/s).
fn optimum(r: &Report, n: u32, pieces: u32) -> f64 {
    let f_bits = r.file_bytes as f64 * 8.0;
    // The bound applies the goodput factor to every rate; so must the optimum.
    let u = 20e6 * r.goodput_factor;
    piece_level_optimum(f_bits, n, u, pieces) / r.bounds.p2p_s
}

/// The tuned profile with the 256 MiB reference file.
fn reference(max_n: u32) {
    println!();
    println!("tuned, the scale target's reference file: 256 MiB in 1,024 pieces, otherwise as above");
    println!(
        "{:>5} {:>8} {:>9} {:>20} {:>10} {:>8}",
        "N", "tuned", "optimum", "excess, piece-times", "events", "wall s"
    );
    for n in [128u32, 256, 512, 1000].into_iter().filter(|&n| n <= max_n) {
        let mut sets = vec![format!("peers.count={n}"), "file.size=256 MiB".to_string()];
        sets.extend(knobs(CONFIGS[4]));
        let (r, wall) = run("swarm-homogeneous", &sets);
        let events = r.sim.as_ref().map_or(0, |s| s.events);
        let opt = optimum(&r, n, 1024);
        // Time beyond the optimum, in piece-times: the bound is 1,024 of them.
        let excess = r
            .ratio_to_bound
            .map_or_else(|| "-".into(), |x| format!("{:.1}", (x - opt) * 1024.0));
        println!(
            "{n:>5} {:>8} {opt:>9.4} {excess:>20} {:>9.1}M {wall:>8.1}",
            r.ratio_to_bound
                .map_or_else(|| format!("({:?})", r.outcome), |x| format!("{x:.4}")),
            events as f64 / 1e6
        );
    }
}

fn main() {
    let max_n: u32 = std::env::var("PEERLAB_BENCH_MAX_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!("homogeneous swarm: 64 MiB in 256 pieces, u_s = u = 20 Mbit/s, unlimited download, seed 1");
    println!("time / P2P bound; serial = swarm.serial_uploads (one piece to one neighbour at a time);");
    println!(
        "tuned = serial + super + swarm.rechoke_interval=500 ms + swarm.unchoke_slots=6 + swarm.max_peers=160 + swarm.numwant=100"
    );
    println!(
        "{:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>32} {:>8}",
        "N",
        "normal",
        "super",
        "serial",
        "ser+sup",
        "tuned",
        "optimum",
        "server up MiB (n/s/sn/ss/t)",
        "wall s"
    );
    for n in [2u32, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
        .into_iter()
        .filter(|&n| n <= max_n)
    {
        let count = format!("peers.count={n}");
        let mut runs = Vec::new();
        let mut wall = 0.0;
        for config in CONFIGS {
            let mut sets = vec![count.clone()];
            sets.extend(knobs(config));
            let (r, w) = run("swarm-homogeneous", &sets);
            wall += w;
            runs.push(r);
        }
        let opt = optimum(&runs[0], n, 256);
        let up: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.1}", r.server_bytes_up as f64 / 1048576.0))
            .collect();
        let ratios: Vec<String> = runs.iter().map(|r| format!("{:>8}", ratio(r))).collect();
        println!(
            "{n:>5} {} {opt:>9.3} {:>32} {wall:>8.1}",
            ratios.join(" "),
            up.join(" / "),
        );
    }
    if std::env::var("PEERLAB_BENCH_REFERENCE").is_ok_and(|v| v == "1") {
        reference(max_n);
    }
    println!();
    println!("heterogeneous swarm: swarm-churn with peers staying (64 peers, 5-40 Mbit/s)");
    for config in CONFIGS {
        let mut sets = vec!["swarm.leave=stay".to_string()];
        sets.extend(knobs(config));
        let (r, wall) = run("swarm-churn", &sets);
        let (serial, super_seed, rechoke, slots, max_peers, _) = config;
        println!(
            "  serial_uploads={serial:<5} super_seed={super_seed:<5} rechoke={rechoke:<7} slots={slots} max_peers={max_peers:<4} time / P2P bound {}   ({wall:.1} s wall)",
            ratio(&r)
        );
    }
}
