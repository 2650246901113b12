//! Why are uplinks idle early in a swarm? Runs a scenario with its trace
//! recorded and, at a few instants, counts the uplinks that sent nothing in
//! the last 50 ms, and why their unchoked neighbours do not ask them: and
//! whether any neighbour at all (unchoked or not) lacks one of their pieces
//! and asks nobody for it, a neighbour they could serve.
//!
//! Run: `cargo run --release -p peerlab-sim --example idle_uplinks -- \
//!       swarm-homogeneous peers.count=128 swarm.super_seed=true \
//!       swarm.serial_uploads=true "swarm.rechoke_interval=500 ms"`
//! (a library scenario and `--set`-style overrides; the instants are 1.5,
//! 2 and 3 s unless `PEERLAB_AT` lists others in seconds, e.g.
//! `PEERLAB_AT=15,18.5`). docs/swarm.md ("Analysis tools") quotes it.
//!
//! It also prints how many blocks left all uplinks in each of the first 16
//! piece-times (a piece-time: one piece at a peer's mean uplink rate), next
//! to the most they could send, and for the whole run, per 20 piece-times,
//! how much of the uplinks' capacity went unused (in piece-times of the
//! whole swarm: 1.0 is every uplink idle for one piece-time).
//!
//! It reads the trace's records as a replay would: the `detail` of each is
//! the Debug text of core's messages and events.

#![allow(clippy::print_stdout)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

#[path = "common/mod.rs"]
mod common;

const INSTANTS: [f64; 3] = [1.5, 2.0, 3.0];
const IDLE_S: f64 = 0.05;
/// Capacity lost is summed over windows of this many piece-times.
const WINDOW_PT: usize = 20;

#[derive(Default)]
struct State {
    nodes: BTreeSet<u32>,
    tracker: Option<u32>,
    conn: BTreeMap<u32, BTreeSet<u32>>,
    have: BTreeMap<u32, BTreeSet<u32>>,
    unchoked: BTreeMap<u32, BTreeSet<u32>>,
    /// Per node, the blocks (piece, offset) it asked for and of whom.
    asked: BTreeMap<u32, BTreeMap<(u32, u32), u32>>,
    last_sent: BTreeMap<u32, f64>,
    /// When each block left its uplink.
    sent: Vec<f64>,
    /// The instants to report at, in seconds, and the next one.
    instants: Vec<f64>,
    next: usize,
}

/// The number after `key` in `text`.
fn field(text: &str, key: &str) -> Option<u32> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `(peer, Name...` → (peer, Name).
fn peer_and_name(detail: &str) -> Option<(u32, &str)> {
    let inner = detail.strip_prefix('(')?;
    let (peer, rest) = inner.split_once(", ")?;
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    Some((peer.parse().ok()?, &rest[..end]))
}

impl State {
    fn report(&self, t: f64) {
        let uplinks: Vec<u32> = self
            .nodes
            .iter()
            .copied()
            .filter(|n| Some(*n) != self.tracker)
            .collect();
        let (mut idle, mut nobody, mut none_lacks) = (0, 0, 0);
        let (mut elsewhere, mut from_it, mut not_asked) = (0, 0, 0);
        let mut useless = 0;
        let empty = BTreeSet::new();
        for &p in &uplinks {
            if self.last_sent.get(&p).is_some_and(|&s| s > t - IDLE_S) {
                continue;
            }
            idle += 1;
            let conn = self.conn.get(&p).unwrap_or(&empty);
            let mine = self.have.get(&p).unwrap_or(&empty);
            let qs: Vec<u32> = self
                .unchoked
                .get(&p)
                .unwrap_or(&empty)
                .iter()
                .copied()
                .filter(|q| conn.contains(q))
                .collect();
            let mut lacking = 0;
            for q in &qs {
                let theirs = self.have.get(q).unwrap_or(&empty);
                for x in mine.difference(theirs) {
                    lacking += 1;
                    let asked: BTreeSet<u32> = self
                        .asked
                        .get(q)
                        .into_iter()
                        .flatten()
                        .filter(|((piece, _), _)| piece == x)
                        .map(|(_, &u)| u)
                        .collect();
                    if asked.contains(&p) {
                        from_it += 1;
                    } else if asked.is_empty() {
                        not_asked += 1;
                    } else {
                        elsewhere += 1;
                    }
                }
            }
            let asks_anyone = |q: &u32, x: &u32| {
                self.asked
                    .get(q)
                    .into_iter()
                    .flatten()
                    .any(|((piece, _), _)| piece == x)
            };
            let could_serve = conn.iter().filter(|q| Some(**q) != self.tracker).any(|q| {
                let theirs = self.have.get(q).unwrap_or(&empty);
                mine.difference(theirs).any(|x| !asks_anyone(q, x))
            });
            if !could_serve {
                useless += 1;
            }
            if qs.is_empty() {
                nobody += 1;
            } else if lacking == 0 {
                none_lacks += 1;
            }
        }
        println!(
            "{t} s: {idle} of {} uplinks (peers and server) sent nothing in the last {} ms; \
             of those, {nobody} had unchoked nobody and {none_lacks} only neighbours lacking none of its pieces",
            uplinks.len(),
            IDLE_S * 1e3
        );
        println!(
            "  {useless} of the {idle} have no neighbour that lacks one of their pieces and asks nobody for it"
        );
        println!(
            "  (idle uplink, unchoked neighbour, piece it lacks): being requested from another uploader \
             {elsewhere}, from the idle one {from_it}, not requested {not_asked}"
        );
    }

    fn record(&mut self, line: &str) {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let (Some(t), Some(kind), Some(d), Some(n)) = (
            r["t"].as_u64(),
            r["kind"].as_str(),
            r["detail"].as_str(),
            r["node"].as_u64(),
        ) else {
            return;
        };
        let (t, n) = (t as f64 / 1e9, n as u32);
        while let Some(&at) = self.instants.get(self.next)
            && t >= at
        {
            self.report(at);
            self.next += 1;
        }
        match kind {
            "start" => {
                self.nodes.insert(n);
            }
            "sent" => {
                self.sent.push(t);
                self.last_sent.insert(n, t);
            }
            "event" if d.starts_with("PieceVerified") => {
                if let Some(piece) = field(d, "piece: ") {
                    self.have.entry(n).or_default().insert(piece);
                }
            }
            "connection" => {
                if let Some((q, ev)) = peer_and_name(d) {
                    let conn = self.conn.entry(n).or_default();
                    if ev == "Opened" {
                        conn.insert(q);
                    } else {
                        conn.remove(&q);
                        self.unchoked.entry(n).or_default().remove(&q);
                    }
                }
            }
            "deliver" => {
                let Some((from, msg)) = peer_and_name(d) else {
                    return;
                };
                let block = field(d, "piece: ").zip(field(d, "offset: "));
                match (msg, block) {
                    ("Announce", _) => self.tracker = Some(n),
                    ("Unchoke", _) => {
                        self.unchoked.entry(from).or_default().insert(n);
                    }
                    ("Choke", _) => {
                        self.unchoked.entry(from).or_default().remove(&n);
                    }
                    ("Request", Some(b)) => {
                        self.asked.entry(from).or_default().insert(b, n);
                    }
                    ("Cancel", Some(b)) => {
                        self.asked.entry(from).or_default().remove(&b);
                    }
                    ("Block", Some(b)) => {
                        self.asked.entry(n).or_default().remove(&b);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

fn main() -> Result<(), String> {
    let (name, s) = common::scenario_from_args("swarm-homogeneous")?;
    let instants = match std::env::var("PEERLAB_AT") {
        Ok(list) => list
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<f64>()
                    .map_err(|e| format!("PEERLAB_AT: {x:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Err(_) => INSTANTS.to_vec(),
    };
    let state: Rc<RefCell<State>> = Rc::new(RefCell::new(State {
        instants,
        ..State::default()
    }));
    let sink = state.clone();
    let mut sim = peerlab_sim::Simulation::new(&s, &name).map_err(|e| e.to_string())?;
    sim.record_trace(move |line| sink.borrow_mut().record(line));
    let r = sim.run(|_| {});
    println!(
        "{name}: {} downloaders, time / P2P bound {}",
        r.downloaders,
        r.ratio_to_bound
            .map_or_else(|| format!("({:?})", r.outcome), |x| format!("{x:.4}"))
    );
    let up = common::Uplinks::of(&s, r.goodput_factor);
    let piece_time = up.piece_time;
    let block_bits = f64::from(s.layout().block_len()) * 8.0;
    let most = up.total() * piece_time / block_bits;
    // Blocks sent in each piece-time of the run.
    let mut per_piece_time: Vec<usize> = Vec::new();
    for &t in &state.borrow().sent {
        let k = (t / piece_time) as usize;
        if k >= per_piece_time.len() {
            per_piece_time.resize(k + 1, 0);
        }
        per_piece_time[k] += 1;
    }
    println!(
        "blocks sent in piece-times k = 0..15 ({:.1} ms each; the uplinks could send {most:.0}): {:?}",
        piece_time * 1e3,
        &per_piece_time[..per_piece_time.len().min(16)]
    );
    // An unfinished run ends with its last block sent.
    let last = state.borrow().sent.iter().copied().fold(0.0, f64::max);
    let end = r.distribution_time_s.unwrap_or(last) / piece_time;
    println!("uplink capacity unused, in piece-times of the whole swarm (the run: {end:.1} piece-times):");
    for (w, chunk) in per_piece_time.chunks(WINDOW_PT).enumerate() {
        let from = w * WINDOW_PT;
        // The last window ends with the run, not after WINDOW_PT.
        let span = (end - from as f64).clamp(0.0, WINDOW_PT as f64);
        let sent: usize = chunk.iter().sum();
        println!(
            "  {from:>4}-{:<6.1} {:6.2}",
            from as f64 + span,
            span - sent as f64 / most
        );
    }
    Ok(())
}
