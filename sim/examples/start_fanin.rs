//! How a swarm's first piece-times are spent: per piece-time, how many peers
//! hold a piece, how many blocks go to peers that hold nothing (each of those
//! makes a new uploader) and to peers that hold something, and how many peers
//! receive blocks from two or more uploaders in the same piece-time.
//!
//! Run: `cargo run --release -p peerlab-sim --example start_fanin -- \
//!       swarm-tuned [path=value ...]` (a library scenario and `--set`-style
//! overrides). docs/swarm.md ("Analysis tools") quotes it.
//!
//! It also prints how long peers wait from their first block to their first
//! verified piece (an ideal doubling schedule: one piece-time, from one
//! uploader) and from how many uploaders those blocks came.

#![allow(clippy::print_stdout)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use peerlab_core::event::Event;

#[path = "common/mod.rs"]
mod common;

#[derive(Default)]
struct Pt {
    to_empty: u32,
    to_holder: u32,
    /// Receiver → the uploaders it got blocks from in this piece-time.
    from: BTreeMap<u32, BTreeSet<u32>>,
    /// Receivers that held nothing when a block of this piece-time arrived.
    empty_receivers: BTreeSet<u32>,
}

#[derive(Default)]
struct State {
    /// Pieces verified, per peer.
    held: BTreeMap<u32, u32>,
    /// When each peer verified its first piece.
    first: Vec<f64>,
    /// Per peer holding nothing yet: when its first block arrived, and the
    /// uploaders of the blocks received since.
    first_block: BTreeMap<u32, (f64, BTreeSet<u32>)>,
    /// Per peer: first block to first piece, in piece-times, and uploaders.
    wait: Vec<(f64, usize)>,
    per: Vec<Pt>,
}

fn main() -> Result<(), String> {
    let (name, s) = common::scenario_from_args("swarm-tuned")?;
    // Piece-times reported.
    let pts = 24usize;
    let up = common::Uplinks::of(&s, s.network.goodput);
    let piece_time = up.piece_time;
    let state: Rc<RefCell<State>> = Rc::new(RefCell::new(State {
        per: (0..pts).map(|_| Pt::default()).collect(),
        ..State::default()
    }));
    let sink = state.clone();
    let sim = peerlab_sim::Simulation::new(&s, &name)
        .map_err(|e| e.to_string())?
        .observe(move |at, node, e| {
            let t = at.as_nanos() as f64 / 1e9;
            let k = (t / piece_time) as usize;
            let st = &mut *sink.borrow_mut();
            match e {
                Event::PieceVerified { .. } => {
                    let c = st.held.entry(node.0).or_insert(0);
                    *c += 1;
                    if *c == 1 {
                        st.first.push(t);
                        if let Some((t0, ups)) = st.first_block.get(&node.0) {
                            st.wait.push(((t - t0) / piece_time, ups.len()));
                        }
                    }
                }
                Event::BlockReceived { from, .. } => {
                    let empty = st.held.get(&node.0).is_none_or(|&c| c == 0);
                    if empty {
                        st.first_block
                            .entry(node.0)
                            .or_insert((t, BTreeSet::new()))
                            .1
                            .insert(from.0);
                    }
                    if let Some(slot) = st.per.get_mut(k) {
                        if empty {
                            slot.to_empty += 1;
                            slot.empty_receivers.insert(node.0);
                        } else {
                            slot.to_holder += 1;
                        }
                        slot.from.entry(node.0).or_default().insert(from.0);
                    }
                }
                _ => {}
            }
        });
    let r = sim.run(|_| {});
    println!(
        "{name}: time / P2P bound {}, piece-time {:.1} ms",
        r.ratio_to_bound.map_or("-".into(), |x| format!("{x:.4}")),
        piece_time * 1e3
    );
    let st = state.borrow();
    let first = &st.first;
    println!("k  holders  blocks→empty  blocks→holders  receivers  (≥2 uploaders)  empty receivers");
    for (k, slot) in st.per.iter().enumerate() {
        let holders = first.iter().filter(|&&t| t < k as f64 * piece_time).count();
        let multi = slot.from.values().filter(|u| u.len() >= 2).count();
        println!(
            "{k:<2} {holders:>7} {:>13} {:>15} {:>10} {multi:>15} {:>16}",
            slot.to_empty,
            slot.to_holder,
            slot.from.len(),
            slot.empty_receivers.len()
        );
    }
    let mut w = st.wait.clone();
    if w.is_empty() {
        return Ok(());
    }
    w.sort_by(|a, b| a.0.total_cmp(&b.0));
    let q = |f: f64| w[((w.len() - 1) as f64 * f) as usize].0;
    println!(
        "first block to first piece, in piece-times: median {:.2}, 90% {:.2}, max {:.2}; peers whose blocks until then came from 1, 2, 3, 4+ uploaders: {:?}",
        q(0.5),
        q(0.9),
        q(1.0),
        (1..=4)
            .map(|u| w.iter().filter(|x| x.1.min(4) == u).count())
            .collect::<Vec<_>>()
    );
    Ok(())
}
