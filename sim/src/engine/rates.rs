//! Sharing the links: which directions are busy on each access link, and
//! their max-min fair rates ([`crate::bandwidth`]), recomputed for the part
//! of the network a change can reach. A direction through a stalled host
//! (hung, cut off or dead) gets rate zero and loads nobody.

use crate::liveness::HostNow;

use super::MessageSim;
use super::events::SimEvent;
use super::flows::{channel, channel_mut, transfer_time};

impl MessageSim {
    /// Every host as the liveness check sees it, from now until the next
    /// instant (rates are settled).
    pub(super) fn hosts_now(&self) -> Vec<HostNow> {
        (0..self.hosts.len() as u32)
            .map(|h| {
                let rate_sum = |link: u32| -> f64 {
                    self.link_flows[link as usize]
                        .iter()
                        .map(|&c| channel(&self.conns, c).rate)
                        .sum()
                };
                let cap = self.allocator.capacity(2 * h);
                HostNow {
                    running: !self.stalled(h),
                    receiving: self.link_flows[2 * h as usize + 1]
                        .iter()
                        .any(|&c| channel(&self.conns, c).rate > 0.0),
                    spare_upload: !cap.is_finite() || rate_sum(2 * h) < 0.5 * cap,
                }
            })
            .collect()
    }

    /// Adds busy direction `chan` to the component being collected, and its
    /// finite links to the walk.
    fn visit(&mut self, chan: u32, epoch: u32, component: &mut Vec<u32>, stack: &mut Vec<u32>) {
        if !channel(&self.conns, chan).active || self.chan_mark[chan as usize] == epoch {
            return;
        }
        self.chan_mark[chan as usize] = epoch;
        component.push(chan);
        // A stalled direction loads nothing, but its links are walked all
        // the same: when it stalls, the share it gave up goes to the others
        // on those links.
        let (_, from, to) = self.endpoints(chan);
        for link in [2 * from, 2 * to + 1] {
            if self.link_mark[link as usize] != epoch && self.allocator.capacity(link).is_finite() {
                stack.push(link);
            }
        }
    }

    /// Whether direction `chan` moves no bytes at the moment: one of its
    /// hosts is stalled, or it waits for a retransmission.
    pub(super) fn chan_stalled(&self, chan: u32) -> bool {
        let (_, from, to) = self.endpoints(chan);
        self.stalled(from) || self.stalled(to) || channel(&self.conns, chan).retransmit_at.is_some()
    }

    /// Whether `host` moves no bytes at the moment (hung, cut off or dead).
    pub(super) fn stalled(&self, host: u32) -> bool {
        let h = &self.hosts[host as usize];
        h.hung || h.link_down || !h.up
    }

    /// A direction starts or stops carrying payload: index it by its two
    /// links and remember what changed.
    pub(super) fn set_busy(&mut self, chan: u32, busy: bool) {
        let (_, from, to) = self.endpoints(chan);
        let links = [2 * from, 2 * to + 1];
        channel_mut(&mut self.conns, chan).active = busy;
        self.dirty = true;
        if busy {
            // Not yet allocated: whatever it comes to differs, so the links
            // its acknowledgements take are reallocated too.
            channel_mut(&mut self.conns, chan).base_rate = f64::NAN;
            for (side, link) in links.into_iter().enumerate() {
                self.chan_slot[chan as usize][side] = self.link_flows[link as usize].len() as u32;
                self.link_flows[link as usize].push(chan);
            }
            self.dirty_chans.push(chan);
            return;
        }
        for (side, link) in links.into_iter().enumerate() {
            let list = &mut self.link_flows[link as usize];
            let slot = self.chan_slot[chan as usize][side] as usize;
            list.swap_remove(slot);
            if let Some(&moved) = list.get(slot) {
                let (_, mfrom, _) = self.endpoints(moved);
                let moved_side = usize::from(2 * mfrom != link);
                self.chan_slot[moved as usize][moved_side] = slot as u32;
            }
            self.dirty_links.push(link);
        }
        // Its acknowledgements no longer load the receiver's uplink and the
        // sender's downlink.
        if self.allocator.ack_load() > 0.0 {
            self.dirty_links.extend([2 * to, 2 * from + 1]);
        }
    }

    /// A host's links changed state or capacity.
    pub(super) fn touch_host(&mut self, host: u32) {
        self.dirty_links.extend([2 * host, 2 * host + 1]);
        self.dirty = true;
    }

    /// Recomputes the max-min fair rates of the busy directions whose rates
    /// the changes since last time can affect, and reschedules the ones whose
    /// rate changed. Directions through a stalled host get rate zero.
    ///
    /// Only the changed links' component is recomputed: the busy directions
    /// reachable from them through links of finite capacity (an unlimited
    /// link couples nobody). Every busy direction on a finite link of the
    /// component is in it, so the fair shares found are exactly those of a
    /// recomputation from scratch.
    ///
    /// With acknowledgements charged (`network.ack_load`), as
    /// [`crate::bandwidth::Allocator::allocate`] does it, in two steps that
    /// keep components local: the component's rates without
    /// acknowledgements (`base_rate`) first; then, wherever one of those
    /// changed, the links its acknowledgements take (its receiver's uplink,
    /// its sender's downlink) join the component, and its rates are found
    /// with each link reduced by the acknowledgements of the directions the
    /// other way through its host, at their `base_rate`s. A direction's
    /// `base_rate` depends only on its own component, so the result is, to
    /// the bit, that of both passes over every busy direction at once.
    pub(super) fn reallocate(&mut self) {
        self.dirty = false;
        self.epoch += 1;
        let epoch = self.epoch;
        let mut stack = std::mem::take(&mut self.dirty_links);
        let mut component = Vec::new();
        let seeds = std::mem::take(&mut self.dirty_chans);
        for &chan in &seeds {
            self.visit(chan, epoch, &mut component, &mut stack);
        }
        self.walk(epoch, &mut component, &mut stack);
        let acks = self.allocator.ack_load() > 0.0;
        if acks {
            let stalled = self.split_component(&mut component);
            self.allocator.allocate_without_acks(&self.flows, &mut self.rates);
            let bases = self.rates_by_chan(stalled);
            for (chan, base) in bases {
                let ch = channel_mut(&mut self.conns, chan);
                if ch.base_rate.to_bits() == base.to_bits() {
                    continue;
                }
                ch.base_rate = base;
                let (_, from, to) = self.endpoints(chan);
                for link in [2 * to, 2 * from + 1] {
                    if self.link_mark[link as usize] != epoch && self.allocator.capacity(link).is_finite() {
                        stack.push(link);
                    }
                }
            }
            self.walk(epoch, &mut component, &mut stack);
        }
        let stalled = self.split_component(&mut component);
        if acks {
            self.reserve_for_acks();
            let reserved = &self.reserved;
            self.allocator
                .allocate_with_reserved(&self.flows, &mut self.rates, |link| reserved[link as usize]);
        } else {
            self.allocator.allocate(&self.flows, &mut self.rates);
        }
        let updates = self.rates_by_chan(stalled);
        let now = self.now;
        for (chan, rate) in updates {
            let ch = channel_mut(&mut self.conns, chan);
            if ch.rate == rate {
                continue;
            }
            let elapsed = (now - ch.last_update).as_secs_f64();
            if ch.rate > 0.0 {
                ch.remaining = (ch.remaining - ch.rate * elapsed).max(0.0);
            }
            ch.last_update = now;
            ch.rate = rate;
            ch.version += 1;
            let (remaining, version) = (ch.remaining, ch.version);
            if let Some(t) = transfer_time(remaining, rate) {
                self.schedule(now + t, SimEvent::FlowDone { chan, version });
            }
        }
        #[cfg(test)]
        if self.verify_rates {
            self.assert_rates_as_from_scratch();
        }
    }

    /// Walks from the links on `stack` through their busy directions and
    /// those directions' finite links, adding the directions to `component`.
    fn walk(&mut self, epoch: u32, component: &mut Vec<u32>, stack: &mut Vec<u32>) {
        while let Some(link) = stack.pop() {
            if self.link_mark[link as usize] == epoch {
                continue;
            }
            self.link_mark[link as usize] = epoch;
            for i in 0..self.link_flows[link as usize].len() {
                let chan = self.link_flows[link as usize][i];
                self.visit(chan, epoch, component, stack);
            }
        }
    }

    /// The rates just allocated, by direction, and zero for `stalled`.
    fn rates_by_chan(&self, stalled: Vec<u32>) -> Vec<(u32, f64)> {
        self.flow_chans
            .iter()
            .copied()
            .zip(self.rates.iter().copied())
            .chain(stalled.into_iter().map(|c| (c, 0.0)))
            .collect()
    }

    /// Sorts `component` and lists its directions that can move bytes in
    /// `flows` / `flow_chans`; returns the stalled ones.
    fn split_component(&mut self, component: &mut [u32]) -> Vec<u32> {
        component.sort_unstable();
        self.flows.clear();
        self.flow_chans.clear();
        let mut stalled = Vec::new();
        for &chan in component.iter() {
            let (_, from, to) = self.endpoints(chan);
            if self.chan_stalled(chan) {
                stalled.push(chan);
            } else {
                self.flows.push((from, to));
                self.flow_chans.push(chan);
            }
        }
        stalled
    }

    /// Sets `reserved` for every link the component's directions use: the
    /// acknowledgement load times the `base_rate`s of the directions the
    /// other way through its host, summed in direction order as
    /// `Allocator::allocate` sums them.
    fn reserve_for_acks(&mut self) {
        let a = self.allocator.ack_load();
        let mut others = Vec::new();
        for i in 0..self.flows.len() {
            let (from, to) = self.flows[i];
            for link in [2 * from, 2 * to + 1] {
                others.clear();
                others.extend(
                    self.link_flows[(link ^ 1) as usize]
                        .iter()
                        .copied()
                        .filter(|&c| !self.chan_stalled(c)),
                );
                others.sort_unstable();
                let mut sum = 0.0;
                for &c in &others {
                    sum += a * channel(&self.conns, c).base_rate;
                }
                self.reserved[link as usize] = sum;
            }
        }
    }

    /// Checks every busy direction's rate against an allocation of all of
    /// them at once (unit tests).
    #[cfg(test)]
    fn assert_rates_as_from_scratch(&self) {
        let chans: Vec<u32> = (0..self.chan_mark.len() as u32)
            .filter(|&c| channel(&self.conns, c).active)
            .filter(|&c| !self.chan_stalled(c))
            .collect();
        let flows: Vec<_> = chans
            .iter()
            .map(|&c| {
                let (_, from, to) = self.endpoints(c);
                (from, to)
            })
            .collect();
        let mut rates = Vec::new();
        self.allocator.clone().allocate(&flows, &mut rates);
        for (&c, &expected) in chans.iter().zip(&rates) {
            let rate = channel(&self.conns, c).rate;
            assert!(
                (rate - expected).abs() <= 1e-9 * expected,
                "at {:?} direction {c} {:?} has rate {rate}, from scratch {expected}",
                self.now,
                self.endpoints(c),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::testkit::*;

    /// A swarm of mixed uplinks, peers staying: every reallocation, however
    /// small the part of the network it recomputes, gives the rates an
    /// allocation of every busy direction from scratch gives, with each
    /// receiver's acknowledgements charged to its uplink (a direction's
    /// rate then depends on what its sender receives).
    #[test]
    fn recomputing_a_component_gives_the_rates_of_a_recomputation_from_scratch() {
        let json = r#"{
            "protocol": "swarm",
            "seed": 3,
            "file": { "size": "2 MiB", "piece_size": "64 KiB", "block_size": "16 KiB" },
            "server": { "upload": "10 Mbit/s", "download": "unlimited" },
            "peers": { "count": 8, "upload": "5 Mbit/s", "download": "20 Mbit/s",
                       "hosts": [ { "name": "fast", "upload": "40 Mbit/s" },
                                  { "name": "wide", "download": "unlimited" } ] },
            "network": { "latency": "2 ms" },
            "limits": { "max_time": "5 min" }
        }"#;
        let s = scenario(json, &[]);
        assert!(
            s.network.ack_load > 0.0,
            "acknowledgements are charged by default"
        );
        let mut sim = crate::engine::MessageSim::new(&s, "unit test").expect("runnable");
        sim.verify_rates = true;
        let r = sim.run(|_| {});
        assert_eq!(r.outcome, peerlab_scenarios::Outcome::Complete);
    }

    /// `CS` with one 2 Mbit/s (250 kB/s) client, `slow`, besides `p1`.
    fn with_slow_client() -> String {
        CS.replace(
            "\"count\": 1,",
            "\"count\": 1, \"hosts\": [ { \"name\": \"slow\", \"download\": \"2 Mbit/s\" } ],",
        )
    }

    #[test]
    fn two_downloads_share_the_server_uplink_equally() {
        let r = run(&scenario(CS, &["peers.count=2"]));
        // Each gets half of the uplink the whole time: twice the wire time
        // of one download alone, the same latency.
        let expected = 4.0 * PATH + 2.0 * wire(FILE) / SERVER_RATE;
        for name in ["p1", "p2"] {
            assert_near(completed(&r, name), expected, 1e-5, name);
        }
        let one = run(&scenario(CS, &[])).distribution_time_s.expect("complete");
        let two = r.distribution_time_s.expect("complete");
        assert_near(two - 4.0 * PATH, 2.0 * (one - 4.0 * PATH), 1e-5, "twice as long");
    }

    #[test]
    fn a_download_held_back_by_its_own_link_leaves_the_rest_to_the_other() {
        // Max-min fairness, not an equal split: `slow` takes its 250 kB/s,
        // `p1` the remaining 750 kB/s of the server's 1 MB/s.
        let r = run(&scenario(&with_slow_client(), &[]));
        let w = wire(FILE);
        assert_near(completed(&r, "p1"), 4.0 * PATH + w / 750_000.0, 1e-5, "p1");
        assert_near(completed(&r, "slow"), 4.0 * PATH + w / 250_000.0, 1e-5, "slow");
    }

    #[test]
    fn a_narrower_uplink_slows_what_is_left_to_send() {
        // The server's uplink drops to 4 Mbit/s (500 kB/s) at 0.5 s. Bytes
        // flow from 30 ms on (connect, requests): 470 kB by then.
        let json = with_faults(
            CS,
            r#"{ "kind": "bandwidth", "host": "server", "at": "500 ms", "upload": "4 Mbit/s" }"#,
        );
        let r = run(&scenario(&json, &[]));
        let sent = (0.5 - 3.0 * PATH) * SERVER_RATE;
        let expected = 0.5 + (wire(FILE) - sent) / 500_000.0 + PATH;
        assert_near(
            r.distribution_time_s.expect("complete"),
            expected,
            1e-5,
            "narrowed",
        );
        assert_eq!(r.counters.faults, 1);
    }

    /// A work-conserving share, as TCP gives once the hung receiver's
    /// window is full: the direction to a hung host frees the server's
    /// uplink for the other download. (Were `visit` to stop at a stalled
    /// direction, the server's uplink would not be recomputed and p2 would
    /// keep its half while p1's idled: p2 done at 2.1388 s, not 1.6388 s.)
    #[test]
    fn a_hung_download_gets_no_share_and_the_other_takes_the_whole_uplink() {
        // p1 hangs from 200 ms to 700 ms. Each client asks for the whole
        // file at once (64 requests of 16 KiB), so the server's queues
        // never run dry. Up to 200 ms both flow at 500 kB/s; while p1 is
        // hung p2 takes 1 MB/s; then both share again until p2 is done,
        // and p1 has the uplink alone.
        let json = with_faults(
            CS,
            r#"{ "kind": "hang", "host": "p1", "at": "200 ms", "for": "500 ms" }"#,
        );
        let r = run(&scenario(&json, &["peers.count=2"]));
        let (w, half) = (wire(FILE), SERVER_RATE / 2.0);
        let before = (0.2 - 3.0 * PATH) * half;
        let p2_left = w - before - 0.5 * SERVER_RATE;
        let p2_done = 0.7 + p2_left / half;
        let p1_left = w - before - (p2_done - 0.7) * half;
        let p1_done = p2_done + p1_left / SERVER_RATE;
        assert_near(completed(&r, "p2"), p2_done + PATH, 1e-5, "p2");
        assert_near(completed(&r, "p1"), p1_done + PATH, 1e-5, "p1");
    }
}
