//! How a direction of a connection drains: messages queue in FIFO order,
//! control messages leave as soon as they reach the head, a payload message
//! at the head flows at the direction's current rate (set by the sharing in
//! `rates`), and its sender hears it was sent once the send window lets it.

use std::collections::VecDeque;
use std::time::Duration;

use peerlab_core::{Message, Time};

use super::MessageSim;
use super::conns::Conn;
use super::events::SimEvent;

/// One direction of a connection: its FIFO of messages and the progress
/// of the payload message at its head.
#[derive(Debug, Default)]
pub(super) struct Channel {
    pub(super) queue: VecDeque<Message>,
    /// Bytes of the head message still to send, as of `last_update`.
    pub(super) remaining: f64,
    /// Current rate in bytes per second.
    pub(super) rate: f64,
    /// The rate it would have if no acknowledgements took any link: what
    /// its own acknowledgements are charged at (`network.ack_load`).
    pub(super) base_rate: f64,
    pub(super) last_update: Time,
    pub(super) version: u64,
    pub(super) active: bool,
    /// Wire lengths of the payload messages at the tail of the queue whose
    /// sender has not been told they were sent, oldest first (see
    /// `MessageSim::send_window`).
    pub(super) unreported: VecDeque<u64>,
    /// Wire bytes of the payload messages in the queue that were reported
    /// sent: the rest of the queue.
    pub(super) reported_bytes: u64,
    /// When this direction first lost bytes at a cut link (they were
    /// moving, or sent, while its sender's or receiver's link was down),
    /// until it has sent them again: TCP's retransmission timer runs from
    /// then.
    pub(super) lost_at: Option<Time>,
    /// The link is back and this direction waits for its next
    /// retransmission, at this time: nothing it holds leaves until then.
    pub(super) retransmit_at: Option<Time>,
    /// Numbers the retransmissions scheduled, so a stale one is ignored.
    pub(super) retry: u64,
    /// It was carrying payload when it lost bytes at the cut: its
    /// retransmission timeout is that of a loaded path.
    pub(super) lost_busy: bool,
}

/// Channel `chan`: direction `chan % 2` of connection `chan / 2`.
pub(super) fn channel(conns: &[Conn], chan: u32) -> &Channel {
    &conns[(chan / 2) as usize].chans[(chan % 2) as usize]
}

pub(super) fn channel_mut(conns: &mut [Conn], chan: u32) -> &mut Channel {
    &mut conns[(chan / 2) as usize].chans[(chan % 2) as usize]
}

/// Wire bytes of the payload messages reported sent on `ch` that have not
/// left the uplink by `now`: what the sender's TCP holds for it. The head,
/// when it is moving, is one of them: the first payload message queued
/// behind no reported bytes is always reported at once.
fn unsent_reported(ch: &Channel, now: Time) -> f64 {
    let head_done = match ch.queue.front() {
        Some(head) if ch.active => {
            let left = ch.remaining - ch.rate * (now - ch.last_update).as_secs_f64();
            head.wire_len() as f64 - left.max(0.0)
        }
        _ => 0.0,
    };
    (ch.reported_bytes as f64 - head_done).max(0.0)
}

impl MessageSim {
    /// Queues `msg` from `from` to `to` on their connection; dropped if
    /// there is none, `from` has not seen it open, or `from` is closing it.
    pub(super) fn transmit(&mut self, from: u32, to: u32, msg: Message) {
        let Some(conn) = self.live.get(from, to) else {
            tracing::debug!(from, to, ?msg, "message to a peer without a connection dropped");
            return;
        };
        let c = &self.conns[conn as usize];
        let dir = c.side(from);
        if !c.open[dir] || c.close_after_drain[dir] {
            tracing::debug!(from, to, ?msg, "message on a connection not open dropped");
            return;
        }
        let chan = conn * 2 + dir as u32;
        let ch = channel_mut(&mut self.conns, chan);
        if !ch.active && ch.queue.is_empty() && msg.payload_len() == 0 && ch.retransmit_at.is_none() {
            // What `pump` would do with it, without the trip through the
            // queue: a control message on an idle direction leaves at once.
            let arrival = self.now + self.path_latency(from, to);
            self.schedule(arrival, SimEvent::Deliver { conn, from, to, msg });
            return;
        }
        let payload = (msg.payload_len() > 0).then(|| msg.wire_len());
        ch.queue.push_back(msg);
        if let (Some(len), Some(_)) = (payload, self.send_window) {
            ch.unreported.push_back(len);
        }
        if !ch.active {
            self.pump(chan);
        }
        if payload.is_some() {
            self.release_sent(chan);
        }
    }

    /// Reports sent (`Node::handle_sent`) every payload message of `chan`
    /// that now fits in the send window: the messages reported before it
    /// have at most `send_window` wire bytes left to leave the uplink. The
    /// reports are events at the current instant, as a real driver's come
    /// from its connection tasks, not calls into the node now sending.
    fn release_sent(&mut self, chan: u32) {
        let Some(window) = self.send_window else {
            return;
        };
        let (_, from, to) = self.endpoints(chan);
        let now = self.now;
        loop {
            let ch = channel_mut(&mut self.conns, chan);
            let Some(&len) = ch.unreported.front() else {
                return;
            };
            if unsent_reported(ch, now) > window as f64 {
                return;
            }
            ch.unreported.pop_front();
            ch.reported_bytes += len;
            let inc = self.inc(from);
            self.schedule(
                now,
                SimEvent::Sent {
                    node: from,
                    inc,
                    peer: to,
                },
            );
        }
    }

    /// The direction of connection `conn` that `from` sends on.
    pub(super) fn chan_from(&self, conn: u32, from: u32) -> u32 {
        2 * conn + self.conns[conn as usize].side(from) as u32
    }

    /// The connection of direction `chan`, its sender and its receiver.
    pub(super) fn endpoints(&self, chan: u32) -> (u32, u32, u32) {
        let conn = chan / 2;
        let dir = (chan % 2) as usize;
        let c = &self.conns[conn as usize];
        (conn, c.ends[dir], c.ends[1 - dir])
    }

    /// Sends the control messages at the head of an idle direction and starts
    /// the first payload message, if any. A direction waiting for its
    /// retransmission sends nothing yet.
    pub(super) fn pump(&mut self, chan: u32) {
        let (conn, from, to) = self.endpoints(chan);
        let dir = (chan % 2) as usize;
        if channel(&self.conns, chan).retransmit_at.is_some() {
            return;
        }
        let arrival = self.now + self.path_latency(from, to);
        let cut = self.hosts[from as usize].link_down || self.hosts[to as usize].link_down;
        loop {
            let ch = channel_mut(&mut self.conns, chan);
            let Some(head) = ch.queue.front() else {
                if ch.active {
                    self.set_busy(chan, false);
                }
                if self.conns[conn as usize].close_after_drain[dir] {
                    self.close(conn, from, true);
                }
                return;
            };
            if head.payload_len() > 0 {
                if cut {
                    // Its first bytes go nowhere: TCP's timer starts.
                    ch.lost_at.get_or_insert(self.now);
                }
                ch.remaining = head.wire_len() as f64;
                ch.last_update = self.now;
                ch.version += 1;
                if ch.active {
                    // Same rate as the message before it: schedule directly.
                    let (rate, remaining, version) = (ch.rate, ch.remaining, ch.version);
                    if let Some(t) = transfer_time(remaining, rate) {
                        self.schedule(self.now + t, SimEvent::FlowDone { chan, version });
                    }
                } else {
                    ch.rate = 0.0;
                    self.set_busy(chan, true);
                }
                return;
            }
            let Some(msg) = ch.queue.pop_front() else {
                return;
            };
            self.schedule(arrival, SimEvent::Deliver { conn, from, to, msg });
        }
    }

    /// The head message of `chan` has been fully sent.
    pub(super) fn finish_head(&mut self, chan: u32) {
        let (conn, from, to) = self.endpoints(chan);
        let ch = channel_mut(&mut self.conns, chan);
        if let Some(msg) = ch.queue.pop_front() {
            let windowed = self.send_window.is_some();
            if windowed && msg.payload_len() > 0 {
                ch.reported_bytes -= msg.wire_len();
            }
            let arrival = self.now + self.path_latency(from, to);
            self.schedule(arrival, SimEvent::Deliver { conn, from, to, msg });
            if !windowed {
                // Handled now, not queued: it is part of the send that
                // finished (a hung sender holds it like any input).
                let inc = self.inc(from);
                self.seq += 1;
                self.process(
                    (self.now, self.seq),
                    SimEvent::Sent {
                        node: from,
                        inc,
                        peer: to,
                    },
                );
            }
        }
        self.pump(chan);
        self.release_sent(chan);
    }
}

/// The longest TCP waits between two retransmissions (Linux's
/// `TCP_RTO_MAX`).
const RTO_MAX: Duration = Duration::from_secs(120);

/// The shortest retransmission timeout (Linux's `TCP_RTO_MIN`): a path's
/// timeout is its smoothed round trip plus at least this.
pub(super) const RTO_MIN: Duration = Duration::from_millis(200);

/// When TCP sends again bytes it lost at `lost`: `rto` later, then after
/// twice as long, and so on (each wait at most [`RTO_MAX`]); the first such
/// time at or after `now`. A zero `rto` sends again at `now`.
pub(super) fn retransmission_at(lost: Time, now: Time, rto: Duration) -> Time {
    if rto.is_zero() {
        return now;
    }
    let mut wait = rto;
    let mut at = lost + wait;
    while at < now {
        wait = (wait * 2).min(RTO_MAX);
        at += wait;
    }
    at
}

/// Time to send `bytes` at `rate` bytes per second, rounded up to the next
/// nanosecond so that nothing ever arrives sooner than the link allows;
/// `None` at rate zero (a stalled flow never finishes by itself).
pub(super) fn transfer_time(bytes: f64, rate: f64) -> Option<Duration> {
    if bytes <= 0.0 || rate.is_infinite() {
        return Some(Duration::ZERO);
    }
    if rate <= 0.0 {
        return None;
    }
    Some(Duration::from_nanos((bytes / rate * 1e9).ceil() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::*;
    use peerlab_core::BlockRef;

    #[test]
    fn transfer_time_of_nothing_or_at_an_unlimited_rate_is_zero() {
        assert_eq!(transfer_time(0.0, 1e6), Some(Duration::ZERO));
        assert_eq!(transfer_time(-5.0, 1e6), Some(Duration::ZERO));
        assert_eq!(transfer_time(0.0, 0.0), Some(Duration::ZERO));
        assert_eq!(transfer_time(16_397.0, f64::INFINITY), Some(Duration::ZERO));
    }

    #[test]
    fn a_retransmission_comes_after_one_two_four_timeouts() {
        let t = |ms: u64| Time::ZERO + Duration::from_millis(ms);
        let rto = Duration::from_millis(300);
        // Lost at 1 s: sent again at 1.3, 1.9, 3.1, 5.5 s...
        assert_eq!(retransmission_at(t(1_000), t(1_000), rto), t(1_300));
        assert_eq!(retransmission_at(t(1_000), t(1_300), rto), t(1_300));
        assert_eq!(retransmission_at(t(1_000), t(1_301), rto), t(1_900));
        assert_eq!(retransmission_at(t(1_000), t(4_000), rto), t(5_500));
        // Without a timeout: at once.
        assert_eq!(retransmission_at(t(1_000), t(4_000), Duration::ZERO), t(4_000));
        // The waits stop growing at two minutes.
        let late = retransmission_at(t(0), t(1_000_000), Duration::from_secs(100));
        assert_eq!(late, t(100_000 + 120_000 * 8));
    }

    #[test]
    fn transfer_time_at_rate_zero_never_ends() {
        assert_eq!(transfer_time(1.0, 0.0), None);
        assert_eq!(transfer_time(1.0, -1.0), None);
    }

    #[test]
    fn transfer_time_is_exact_or_rounded_up_to_the_nanosecond() {
        // 1,000 bytes at 1 MB/s: 1 ms exactly.
        assert_eq!(transfer_time(1_000.0, 1e6), Some(Duration::from_millis(1)));
        // 1 byte at 3 bytes/s: 333,333,333.3 ns, so 333,333,334.
        assert_eq!(transfer_time(1.0, 3.0), Some(Duration::from_nanos(333_333_334)));
        // Never sooner than the link allows, even by a fraction of a ns.
        let t = transfer_time(16_397.0, 2_500_000.0).expect("finite");
        assert!(t.as_secs_f64() * 2_500_000.0 >= 16_397.0);
        assert!(t.as_nanos() - 6_558_800 <= 1, "{t:?}");
    }

    fn block(len: u32) -> Message {
        Message::Block(BlockRef {
            piece: 0,
            offset: 0,
            len,
        })
    }

    #[test]
    fn unsent_reported_counts_what_the_moving_head_has_not_sent() {
        let head = block(16_384);
        let wire = head.wire_len();
        let mut ch = Channel {
            queue: [head, block(16_384)].into(),
            remaining: wire as f64,
            rate: 1e6,
            last_update: Time::ZERO,
            active: true,
            reported_bytes: 2 * wire,
            ..Channel::default()
        };
        let at = |ms: u64| Time::ZERO + Duration::from_millis(ms);
        // 10 ms at 1 MB/s: 10,000 bytes of the head have left.
        assert_eq!(unsent_reported(&ch, at(10)), (2 * wire - 10_000) as f64);
        // Past the head's end, no more than its own bytes count as gone.
        assert_eq!(unsent_reported(&ch, at(100)), wire as f64);
        // An idle direction has sent none of what it holds.
        ch.active = false;
        assert_eq!(unsent_reported(&ch, at(10)), (2 * wire) as f64);
        // Never below zero.
        ch.reported_bytes = 0;
        ch.active = true;
        assert_eq!(unsent_reported(&ch, at(10)), 0.0);
    }

    #[test]
    fn one_download_takes_its_wire_bytes_at_the_bottleneck_plus_two_round_trips() {
        let r = run(&scenario(CS, &[]));
        let d = r.distribution_time_s.expect("complete");
        // 1 MiB + 64 blocks x 13 bytes at 1 MB/s, plus 40 ms of latency.
        assert_near(d, 1.049_408 + 0.040, 1e-6, "one client");
        assert_near(d, alone(FILE), 1e-6, "one client");
        assert_eq!(r.server_bytes_up, FILE);
    }

    #[test]
    fn latency_adds_two_round_trips_and_nothing_else() {
        let at = |ms: u32| {
            let s = scenario(CS, &[&format!("network.latency={ms} ms")]);
            run(&s).distribution_time_s.expect("complete")
        };
        let (zero, twenty) = (at(0), at(20));
        assert_near(zero, wire(FILE) / SERVER_RATE, 1e-6, "no latency");
        // 20 ms per access link: 40 ms per path, four paths.
        assert_near(twenty - zero, 4.0 * 0.040, 1e-6, "20 ms links");
    }

    #[test]
    fn a_slow_download_link_sets_the_pace() {
        // The client's 2 Mbit/s downlink (250 kB/s) is below the server's
        // 1 MB/s: the file drains at the downlink's rate.
        let r = run(&scenario(CS, &["peers.download=2 Mbit/s"]));
        let d = r.distribution_time_s.expect("complete");
        assert_near(d, 4.0 * PATH + wire(FILE) / 250_000.0, 1e-6, "slow downlink");
    }

    #[test]
    fn without_a_send_window_the_timing_of_one_download_is_the_same() {
        // Sent reports only once a block's last byte has left: the server
        // answers requests at once, so nothing waits on them.
        let r = run(&scenario(CS, &["network.send_window=0"]));
        assert_near(
            r.distribution_time_s.expect("complete"),
            alone(FILE),
            1e-6,
            "window 0",
        );
    }
}
