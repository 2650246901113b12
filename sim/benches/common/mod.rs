//! Pieces shared by the simulator benchmarks.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The median of some timings.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// The baseline every speed figure is divided by: one push and one pop per
/// event on a bare binary heap holding `depth` entries, timed in the same
/// run, so that the ratio does not depend on how busy the machine is.
pub fn bare_queue(events: u64, depth: u64) -> Duration {
    let start = Instant::now();
    let mut heap: BinaryHeap<Reverse<(u64, u64)>> =
        (0..depth).map(|i| Reverse((i * 7919 % depth, i))).collect();
    let mut seq = depth;
    for _ in 0..events {
        let Reverse((t, _)) = heap.pop().expect("never empty");
        seq += 1;
        heap.push(Reverse((t + 1 + seq % 1000, seq)));
    }
    black_box(heap.len());
    start.elapsed()
}

/// Peak resident memory of this process so far, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
