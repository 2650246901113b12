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
//!
//! A receiver's TCP acknowledges what it receives, so acknowledgements take
//! part of the receiver's uplink and of the sender's downlink. With an
//! acknowledgement load `a` ([`Allocator::with_ack_load`]), a flow at rate
//! `r` leaves `a * r` of both to them: the allocation is found once without
//! acknowledgements, each link is reduced by `a` times what flows the other
//! way through its host, and the allocation is found again.
//! Acknowledgements are small packets a fair-queueing link serves first, so
//! they are a reservation, not a flow that competes for a share (a flow
//! frozen by its receiver's uplink would be held to that uplink's share).
//! The second pass moves a little less than the first (its links are
//! narrower), so the reservation is high by `a` times that difference: under
//! 0.1% of a link at `a` = 0.023.

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
    /// Bytes of acknowledgements per byte of a flow, on its receiver's
    /// uplink and its sender's downlink.
    ack_load: f64,
    /// Per link, what acknowledgements take of it in this allocation.
    reserved: Vec<f64>,
}

/// At most this share of a link goes to acknowledgements, however fast its
/// host receives or sends (an unlimited sender into an unlimited downlink
/// would otherwise reserve it all).
pub(crate) const MAX_ACK_SHARE: f64 = 0.5;

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
            ack_load: 0.0,
            reserved: vec![0.0; 2 * hosts.len()],
        }
    }

    /// The same links, with `ack_load` bytes of acknowledgements per byte
    /// of a flow on its receiver's uplink and its sender's downlink
    /// (0 <= `ack_load` < 1).
    pub fn with_ack_load(mut self, ack_load: f64) -> Self {
        assert!((0.0..1.0).contains(&ack_load), "ack load {ack_load}");
        self.ack_load = ack_load;
        self
    }

    /// Capacity of link `link` (`2h` uplink, `2h+1` downlink of host h).
    pub fn capacity(&self, link: u32) -> f64 {
        self.capacity[link as usize]
    }

    /// Bytes of acknowledgements per byte of a flow, on its receiver's
    /// uplink and its sender's downlink.
    pub fn ack_load(&self) -> f64 {
        self.ack_load
    }

    /// Changes the capacities of host `host` (bandwidth-change faults).
    pub fn set_capacity(&mut self, host: u32, upload: f64, download: f64) {
        self.capacity[2 * host as usize] = upload;
        self.capacity[2 * host as usize + 1] = download;
    }

    /// The max-min fair rate of each flow, in bytes per second, written to
    /// `rates` (same order as `flows`), acknowledgements charged to the
    /// receivers' uplinks and the senders' downlinks.
    pub fn allocate(&mut self, flows: &[Flow], rates: &mut Vec<f64>) {
        self.allocate_without_acks(flows, rates);
        if self.ack_load == 0.0 {
            return;
        }
        for (f, &(src, dst)) in flows.iter().enumerate() {
            self.reserved[2 * dst as usize] += self.ack_load * rates[f];
            self.reserved[2 * src as usize + 1] += self.ack_load * rates[f];
        }
        let reserved = std::mem::take(&mut self.reserved);
        self.allocate_with_reserved(flows, rates, |link| reserved[link as usize]);
        self.reserved = reserved;
        for &(src, dst) in flows {
            self.reserved[2 * dst as usize] = 0.0;
            self.reserved[2 * src as usize + 1] = 0.0;
        }
    }

    /// The first pass of [`Allocator::allocate`]: max-min fair rates on the
    /// links' whole capacities.
    pub fn allocate_without_acks(&mut self, flows: &[Flow], rates: &mut Vec<f64>) {
        self.index(flows);
        for &l in &self.touched {
            self.remaining[l as usize] = self.capacity[l as usize];
        }
        self.fill(flows, rates);
    }

    /// The second pass of [`Allocator::allocate`]: max-min fair rates with
    /// `reserved(link)` of each finite link kept for acknowledgements (at
    /// most half of it). The caller sums the reservations exactly as
    /// `allocate` does, so that the two give the same rates to the bit.
    pub fn allocate_with_reserved(
        &mut self,
        flows: &[Flow],
        rates: &mut Vec<f64>,
        reserved: impl Fn(u32) -> f64,
    ) {
        self.index(flows);
        for &link in &self.touched {
            let l = link as usize;
            self.remaining[l] = self.capacity[l];
            if self.capacity[l].is_finite() {
                self.remaining[l] -= reserved(link).min(MAX_ACK_SHARE * self.capacity[l]);
            }
        }
        self.fill(flows, rates);
    }

    /// Lists the flows through each link `flows` use.
    fn index(&mut self, flows: &[Flow]) {
        for &l in &self.touched {
            self.users[l as usize].clear();
        }
        self.touched.clear();
        for (f, &(src, dst)) in flows.iter().enumerate() {
            for link in [2 * src, 2 * dst + 1] {
                let l = link as usize;
                if self.users[l].is_empty() {
                    self.touched.push(link);
                }
                self.users[l].push(f as u32);
            }
        }
    }

    /// Progressive filling over the links in `touched`, each starting from
    /// `remaining` (set by the caller) with every user unfrozen.
    fn fill(&mut self, flows: &[Flow], rates: &mut Vec<f64>) {
        rates.clear();
        rates.resize(flows.len(), f64::NAN);
        self.heap.clear();
        for &l in &self.touched {
            let l = l as usize;
            self.unfrozen[l] = self.users[l].len() as u32;
            self.done[l] = false;
            let share = self.remaining[l] / f64::from(self.unfrozen[l]);
            self.heap.push(Reverse((Share(share), l as u32)));
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
    fn a_host_receiving_keeps_part_of_its_uplink_for_its_acknowledgements() {
        // 0 sends to 1 at 0's full uplink (10); 1 forwards to 2 and to 3.
        // At an ack load of 0.02, 1's acknowledgements of 10 take 0.2 of
        // its uplink of 10: 4.9 each to 2 and 3. 0 receives nothing and
        // keeps its whole uplink.
        let inf = f64::INFINITY;
        let hosts = [(10.0, inf), (10.0, inf), (inf, inf), (inf, inf)];
        let flows = [(0, 1), (1, 2), (1, 3)];
        let mut a = Allocator::new(&hosts).with_ack_load(0.02);
        let mut r = Vec::new();
        a.allocate(&flows, &mut r);
        assert_eq!(r, vec![10.0, 4.9, 4.9]);
        // Without acknowledgements, 5 each; and the next allocation starts
        // afresh (nothing reserved is left over).
        assert_eq!(rates(&hosts, &flows), vec![10.0, 5.0, 5.0]);
        a.allocate(&flows[1..], &mut r);
        assert_eq!(r, vec![5.0, 5.0]);
    }

    #[test]
    fn a_host_sending_keeps_part_of_its_downlink_for_the_acknowledgements() {
        // 0 sends to 1 at 10 and receives from 2 at 10, both its links
        // full: the acknowledgements of each take 0.2 of the other link.
        let inf = f64::INFINITY;
        let mut a = Allocator::new(&[(10.0, 10.0), (inf, inf), (inf, inf)]).with_ack_load(0.02);
        let mut r = Vec::new();
        a.allocate(&[(0, 1), (2, 0)], &mut r);
        assert_eq!(r, vec![9.8, 9.8]);
    }

    #[test]
    fn acknowledgements_take_at_most_half_an_uplink() {
        // An unlimited sender into an unlimited downlink: 1 receives at an
        // infinite rate and still uploads on half its uplink.
        let inf = f64::INFINITY;
        let mut a = Allocator::new(&[(inf, inf), (10.0, inf), (inf, inf)]).with_ack_load(0.02);
        let mut r = Vec::new();
        a.allocate(&[(0, 1), (1, 2)], &mut r);
        assert_eq!(r, vec![inf, 5.0]);
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
