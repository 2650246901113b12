//! Max-min fair sharing of access links (docs/simulator.md, "Links and sharing").
//!
//! Every host has an uplink and a downlink; a flow from `a` to `b` uses
//! `a`'s uplink and `b`'s downlink. Rates are found by progressive filling
//! (as in SimGrid's flow model): raise every unfrozen flow's rate together;
//! when a link fills, freeze the flows through it; repeat. The link with the
//! smallest fair share `remaining capacity / unfrozen flows` always fills
//! next, so a heap of shares gives the allocation in O(F log L).
//!
//! A link's share can only grow as other links freeze flows (they take at
//! most their own, smaller share), so stale heap entries are simply skipped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A flow: source host index, destination host index.
pub type Flow = (u32, u32);

#[derive(Clone, Copy, Debug, PartialEq)]
struct Share(f64);

impl Eq for Share {}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Share {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The link capacities of a star network and scratch space to share them.
#[derive(Clone, Debug)]
pub struct Allocator {
    /// Capacity of link `2h` (uplink of host h) and `2h+1` (downlink), in
    /// bytes per second; infinite for an unlimited link.
    capacity: Vec<f64>,
    remaining: Vec<f64>,
    unfrozen: Vec<u32>,
    users: Vec<Vec<u32>>,
    touched: Vec<u32>,
    done: Vec<bool>,
    heap: BinaryHeap<Reverse<(Share, u32)>>,
}

impl Allocator {
    /// Links for hosts with these `(upload, download)` capacities in bytes
    /// per second (`f64::INFINITY` for unlimited).
    pub fn new(hosts: &[(f64, f64)]) -> Self {
        let capacity: Vec<f64> = hosts.iter().flat_map(|&(u, d)| [u, d]).collect();
        let n = capacity.len();
        Allocator {
            capacity,
            remaining: vec![0.0; n],
            unfrozen: vec![0; n],
            users: vec![Vec::new(); n],
            touched: Vec::new(),
            done: vec![false; n],
            heap: BinaryHeap::new(),
        }
    }

    /// Capacity of link `link` (`2h` uplink, `2h+1` downlink of host h).
    pub fn capacity(&self, link: u32) -> f64 {
        self.capacity[link as usize]
    }

    /// Changes the capacities of host `host` (bandwidth-change faults).
    pub fn set_capacity(&mut self, host: u32, upload: f64, download: f64) {
        self.capacity[2 * host as usize] = upload;
        self.capacity[2 * host as usize + 1] = download;
    }

    /// The max-min fair rate of each flow, in bytes per second, written to
    /// `rates` (same order as `flows`).
    pub fn allocate(&mut self, flows: &[Flow], rates: &mut Vec<f64>) {
        rates.clear();
        rates.resize(flows.len(), f64::NAN);
        for &l in &self.touched {
            let l = l as usize;
            self.users[l].clear();
            self.unfrozen[l] = 0;
            self.done[l] = false;
        }
        self.touched.clear();
        for (f, &(src, dst)) in flows.iter().enumerate() {
            for link in [2 * src, 2 * dst + 1] {
                let l = link as usize;
                if self.users[l].is_empty() {
                    self.touched.push(link);
                    self.remaining[l] = self.capacity[l];
                }
                self.users[l].push(f as u32);
                self.unfrozen[l] += 1;
            }
        }
        self.heap.clear();
        for &l in &self.touched {
            let share = self.remaining[l as usize] / f64::from(self.unfrozen[l as usize]);
            self.heap.push(Reverse((Share(share), l)));
        }
        while let Some(Reverse((Share(share), link))) = self.heap.pop() {
            let l = link as usize;
            if self.done[l] || self.unfrozen[l] == 0 {
                continue;
            }
            let current = self.remaining[l] / f64::from(self.unfrozen[l]);
            if current != share {
                continue; // stale: a newer, larger share is in the heap
            }
            self.done[l] = true;
            for i in 0..self.users[l].len() {
                let f = self.users[l][i] as usize;
                if !rates[f].is_nan() {
                    continue;
                }
                rates[f] = share;
                let (src, dst) = flows[f];
                let other = if link == 2 * src { 2 * dst + 1 } else { 2 * src } as usize;
                self.unfrozen[other] -= 1;
                if self.remaining[other].is_finite() {
                    self.remaining[other] = (self.remaining[other] - share).max(0.0);
                }
                if self.unfrozen[other] > 0 && !self.done[other] {
                    let s = self.remaining[other] / f64::from(self.unfrozen[other]);
                    self.heap.push(Reverse((Share(s), other as u32)));
                }
            }
            self.unfrozen[l] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(hosts: &[(f64, f64)], flows: &[Flow]) -> Vec<f64> {
        let mut a = Allocator::new(hosts);
        let mut r = Vec::new();
        a.allocate(flows, &mut r);
        r
    }

    #[test]
    fn a_shared_uplink_is_split_evenly() {
        let inf = f64::INFINITY;
        let r = rates(&[(10.0, inf), (inf, inf), (inf, inf)], &[(0, 1), (0, 2)]);
        assert_eq!(r, vec![5.0, 5.0]);
    }

    #[test]
    fn a_slow_downlink_leaves_its_spare_share_to_the_others() {
        // Server uplink 10; client downlinks 1, 100, 100: max-min gives 1, 4.5, 4.5.
        let r = rates(
            &[(10.0, 0.0), (0.0, 1.0), (0.0, 100.0), (0.0, 100.0)],
            &[(0, 1), (0, 2), (0, 3)],
        );
        assert_eq!(r, vec![1.0, 4.5, 4.5]);
    }

    #[test]
    fn both_ends_constrain_a_flow() {
        // A->C and B->C share C's downlink of 6; A also sends to D, whose link is wide.
        // C's share 3 freezes A->C and B->C; A's uplink (8) leaves 5 for A->D.
        let inf = f64::INFINITY;
        let r = rates(
            &[(8.0, inf), (inf, inf), (inf, 6.0), (inf, inf)],
            &[(0, 2), (1, 2), (0, 3)],
        );
        assert_eq!(r, vec![3.0, 3.0, 5.0]);
    }

    #[test]
    fn unlimited_links_give_unlimited_rates() {
        let inf = f64::INFINITY;
        assert_eq!(rates(&[(inf, inf), (inf, inf)], &[(0, 1)]), vec![inf]);
    }

    #[test]
    fn allocation_is_feasible_and_every_flow_has_a_saturated_bottleneck() {
        // Max-min fairness: no link over capacity, and each flow crosses a
        // full link on which it has the largest rate.
        let hosts: Vec<(f64, f64)> = (0..12)
            .map(|h| (1.0 + (h * 7 % 5) as f64, 2.0 + (h * 3 % 4) as f64))
            .collect();
        let flows: Vec<Flow> = (0..40)
            .map(|i| ((i * 5 % 12) as u32, ((i * 7 + 1) % 12) as u32))
            .filter(|(a, b)| a != b)
            .collect();
        let r = rates(&hosts, &flows);
        let mut load = [0.0; 24];
        for (f, &(s, d)) in flows.iter().enumerate() {
            load[2 * s as usize] += r[f];
            load[2 * d as usize + 1] += r[f];
        }
        let cap: Vec<f64> = hosts.iter().flat_map(|&(u, d)| [u, d]).collect();
        for l in 0..24 {
            assert!(load[l] <= cap[l] * (1.0 + 1e-12), "link {l} over capacity");
        }
        for (f, &(s, d)) in flows.iter().enumerate() {
            let bottleneck = [2 * s as usize, 2 * d as usize + 1].into_iter().any(|l| {
                let full = load[l] >= cap[l] * (1.0 - 1e-9);
                let largest = flows.iter().enumerate().all(|(g, &(s2, d2))| {
                    let uses = 2 * s2 as usize == l || 2 * d2 as usize + 1 == l;
                    !uses || r[g] <= r[f] * (1.0 + 1e-12)
                });
                full && largest
            });
            assert!(bottleneck, "flow {f} has no bottleneck: rates {r:?}");
        }
    }
}
