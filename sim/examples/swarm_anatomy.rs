//! Where a swarm's time goes: how fast it reaches full rate, how busy it
//! stays, and how long the last pieces take to reach everyone.
//!
//! Run: `cargo run --release -p peerlab-sim --example swarm_anatomy -- \
//!       swarm-tuned [path=value ...]` (a library scenario and `--set`-style
//! overrides). docs/swarm.md quotes its output.
//!
//! "Rate" is piece copies verified per second over the swarm's upload
//! capacity (every uplink, server included, at the calibrated goodput): 1.0
//! means every uplink is busy with bytes that end up in a verified piece.

#![allow(clippy::print_stdout)]

use std::cell::RefCell;
use std::rc::Rc;

use peerlab_core::event::Event;

#[path = "common/mod.rs"]
mod common;

fn main() -> Result<(), String> {
    let (name, s) = common::scenario_from_args("swarm-tuned")?;
    let layout = s.layout();
    let pieces = layout.pieces() as usize;

    let verified: Rc<RefCell<Vec<(f64, u32, u32)>>> = Rc::default();
    let sink = verified.clone();
    let sim = peerlab_sim::Simulation::new(&s, &name)
        .map_err(|e| e.to_string())?
        .observe(move |at, node, e| {
            if let Event::PieceVerified { piece } = e {
                sink.borrow_mut()
                    .push((at.as_nanos() as f64 / 1e9, node.0, *piece));
            }
        });
    let r = sim.run(|_| {});
    let end = r.distribution_time_s.ok_or("the run did not complete")?;
    let up = common::Uplinks::of(&s, r.goodput_factor);
    let uplinks = &up.rates;
    let piece_bits = f64::from(layout.piece_size(0)) * 8.0;
    let capacity = up.total() / piece_bits; // copies per second
    let piece_time = up.piece_time;

    println!(
        "{name}: {} peers, {pieces} pieces; time {end:.3} s, P2P bound {:.3} s, ratio {:.4}; server sent {:.1} MiB",
        uplinks.len() - 1,
        r.bounds.p2p_s,
        r.ratio_to_bound.unwrap_or(f64::NAN),
        r.server_bytes_up as f64 / 1048576.0
    );
    let verified = verified.borrow();
    let seconds = (end.ceil() as usize).max(1);
    let mut per_second = vec![0u32; seconds];
    for &(t, _, _) in verified.iter() {
        per_second[(t as usize).min(seconds - 1)] += 1;
    }
    println!("rate per second (copies verified / upload capacity of {capacity:.0} copies/s):");
    let rates: Vec<f64> = per_second.iter().map(|&c| f64::from(c) / capacity).collect();
    for (i, chunk) in rates.chunks(10).enumerate() {
        let line: Vec<String> = chunk.iter().map(|x| format!("{x:.2}")).collect();
        let mean = chunk.iter().sum::<f64>() / chunk.len() as f64;
        println!(
            "  {:>4}-{:<4} s  mean {mean:.2}  [{}]",
            i * 10,
            i * 10 + chunk.len(),
            line.join(" ")
        );
    }
    if let Some(full) = rates.iter().position(|&x| x >= 0.9) {
        println!("first second at >= 0.9 of capacity: {full}-{} s", full + 1);
    }
    // How fast pieces reach peers that had none: uploaders the swarm gains.
    let mut holders = std::collections::BTreeSet::new();
    let mut at_half = None;
    let mut all = None;
    for &(t, node, _) in verified.iter() {
        if at_half.is_none() && t > 0.5 {
            at_half = Some(holders.len());
        }
        if holders.insert(node) && holders.len() == uplinks.len() - 1 {
            all = Some(t);
            break;
        }
    }
    println!(
        "peers holding a piece: {} after 0.5 s; all {} at {}",
        at_half.unwrap_or(holders.len()),
        uplinks.len() - 1,
        all.map_or_else(|| "never".into(), |t| format!("{t:.2} s"))
    );

    let mut first = vec![f64::INFINITY; pieces];
    for &(t, _, p) in verified.iter() {
        let f = &mut first[p as usize];
        *f = f.min(t);
    }
    let last_out = first.iter().copied().fold(0.0, f64::max);
    println!(
        "last piece first verified at {last_out:.3} s; the tail after it: {:.3} s = {:.1} piece-times of a mean peer uplink ({:.4} s)",
        end - last_out,
        (end - last_out) / piece_time,
        piece_time
    );
    // The ideal schedule doubles the copies every piece-time (2^k - 1 after
    // k) until every uplink is busy; where ours falls behind, it builds the
    // backlog that the tail then pays off.
    let copies: Vec<usize> = (1..=12)
        .map(|k| {
            let t = k as f64 * piece_time;
            verified.iter().take_while(|&&(v, _, _)| v <= t).count()
        })
        .collect();
    println!("copies verified after k = 1..12 piece-times: {copies:?} (ideal doubling: 2^k - 1)");
    let owed = (uplinks.len() - 1) * pieces - verified.iter().take_while(|&&(v, _, _)| v <= last_out).count();
    println!(
        "copies still owed when the last piece is first verified: {owed} = {:.1} piece-times of the swarm's capacity",
        owed as f64 / capacity / piece_time
    );
    Ok(())
}
