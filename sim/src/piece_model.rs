//! The pieces model (`simulator.model = pieces`): a swarm simulated one
//! piece at a time, for swarms too large for the message model.
//!
//! The message model ([`crate::engine`]) runs the core's sans-IO peers and
//! delivers every message: at 10,000 peers x 1,024 pieces that is over a
//! billion events, about an hour on one core (docs/swarm.md, "Simulator
//! scale"). Most of them are the protocol telling neighbours what it holds
//! (`Have`, `Interested`, `NotInterested`: 5.4 per 16 KiB block) and the
//! blocks with their requests. This model keeps the swarm's *decisions* and
//! drops the messages that carry them:
//!
//! - **Kept, by calling the core.** The tracker's random neighbour sets
//!   ([`sample`], `numwant` capped as the tracker caps it) and the dialling
//!   rule ([`neighbours`]: dial up to half of `max_peers`, accept up to all
//!   of it, announce again early when short), periodic announces every
//!   `announce_interval` at which hosts short of neighbours dial more, and
//!   a starving host's announces (no source, short of neighbours: after
//!   half a second, doubling, [`neighbours::is_starving`]);
//!   choking by the core's [`Choker`] on its [`ChokeClock`] (tit-for-tat
//!   windows ranked by [`Candidate::tit_for_tat`], the optimistic slot,
//!   [`is_snubbed`], a snub ended by any byte received), slots shut until
//!   [`slots_open_at`] and then, and whenever they fall free, filled at once
//!   by [`Choker::fill`], and a neighbour that wants
//!   nothing more choked and forgotten; piece selection in the core
//!   picker's order — a started piece nobody sends first, then a new one by
//!   [`rarest`] (at random while [`picks_at_random`]), then the end game's
//!   [`least_copied`] piece, the first copy in cancelling the others; BEP 3
//!   framing (13 bytes per block), the goodput factor and the uplink an
//!   uploader keeps for the acknowledgements of what it receives
//!   (`network.ack_load`; downloads are unlimited here). Churn
//!   (`swarm.leave`): a host leaves when
//!   [`Leave::on_completion`](peerlab_core::swarm::Leave::on_completion) says, the
//!   tracker [`forget`]s it, its uploads stop with the downloaders keeping
//!   what arrived, and each neighbour forgets it (choker, availability
//!   counts), fills the slot it held, asks the tracker again early when
//!   short ([`neighbours::reannounce_at`]) and looks whether it starves.
//!   Super-seeding (`swarm.super_seed`): the server keeps the core's
//!   [`SuperSeed`] and shows each neighbour only the pieces it offered it
//!   ([`SuperSeed::top_up`], [`SUPER_SEED_OFFERS`] per neighbour, on
//!   unchoking it and when it reports an offer held, [`SuperSeed::on_have`]),
//!   so a neighbour's availability counts and interest follow the offers
//!   and it asks only for them ([`SuperSeed::may_serve`]); slots go to
//!   neighbours lacking pieces ([`is_eligible`]), a neighbour that wants
//!   nothing more keeps its slot ([`chokes_on_lost_interest`]), a rechoke
//!   keeps those with unfinished offers unchoked ([`is_protected`]), and a
//!   leaving neighbour's offers and the pieces only it held go back to the
//!   pool ([`SuperSeed::on_departure`]). Once every piece has left the
//!   server, it shows its neighbours all its pieces and seeds normally.
//! - **Dropped.** Messages: a peer knows the instant a neighbour verifies a
//!   piece, and interest follows holdings at once. A piece moves from one
//!   uploader to one downloader as one fluid flow (no blocks, no request
//!   pipeline, no socket buffer, no two uploaders sharing one piece outside
//!   the end game); a flow choked half-way leaves its bytes with the
//!   downloader, which finishes the piece from another neighbour (a flow
//!   choked before its first byte leaves nothing, and the piece goes back
//!   to rarest first, as the core picker's `release` does). A rechoke
//!   counts the bytes its host's flows have carried so far, as the core
//!   peer counts every block as it goes. An
//!   uploader's uplink is shared equally among the pieces it is sending
//!   (with unlimited downloads that is exactly the max-min share). A host
//!   leaving at completion leaves after whatever else happens at that
//!   instant, where the core peer leaves at once. A super-seed's unchoked
//!   neighbour left with nothing offered (every piece has been offered
//!   once) keeps its slot until the next rechoke, where the core peer
//!   unchokes someone on top after half a second of idling. No
//!   latency, faults, late starts, serial uploads,
//!   limited downloads, other pipeline depths or send windows: the scenario
//!   check refuses them by name.
//!
//! Per piece delivered the work is one flow completion and one pass over the
//! downloader's neighbours (their availability counts and interest), so the
//! cost grows with pieces x neighbours, not with blocks x messages. Its
//! error against the message model is measured in docs/simulator.md ("Two
//! models of a swarm").
//!
//! Determinism: integer nanosecond time, a heap ordered by (time, sequence),
//! every host's randomness from its own seeded stream, vectors only.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use peerlab_core::pieces::{Bitfield, BlockRef};
use peerlab_core::rng::{self, NodeRng};
use peerlab_core::swarm::choker::{
    Candidate, ChokeClock, Choker, chokes_on_lost_interest, is_eligible, is_snubbed, slots_open_at,
};
use peerlab_core::swarm::picker::{least_copied, picks_at_random, rarest};
use peerlab_core::swarm::super_seed::{SUPER_SEED_OFFERS, SuperSeed, is_protected};
use peerlab_core::swarm::tracker::{MAX_NUMWANT, forget, sample};
use peerlab_core::swarm::{Departure, SwarmConfig, neighbours};
use peerlab_core::{Event, NodeId, PieceLayout, Time};
use peerlab_scenarios::report::SimStats;
use peerlab_scenarios::{Outcome, Report, ReportBuilder, Scenario, ScenarioError, SimModel};

use crate::bandwidth::MAX_ACK_SHARE;
use crate::engine::{Observer, Progress, TAG_EVENT, TraceSink};
use crate::trace::TraceHasher;

/// BEP 3 framing of one block message (length, id, index, begin).
const BLOCK_FRAMING: f64 = 13.0;
/// A flow this close to its end (in bytes) is done: float rounding.
const EPSILON: f64 = 1e-3;
/// Trace record tag of a flow (after the message model's tags; events
/// share the message model's tag).
const TAG_FLOW: u8 = 10;
/// Trace record tag of a connection opened after time zero.
const TAG_LINK: u8 = 11;
/// The host of the timer entry at which every host's slots open.
const SLOTS_OPEN: u32 = u32::MAX;

/// One end of a connection, as the host holding it sees it. The links of
/// all hosts sit in one vector, each host's together, so the pass over a
/// host's neighbours reads its own links in a row and jumps once per
/// neighbour, to the other end.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// The neighbour.
    peer: u32,
    /// The index of the other end of this connection.
    mirror: u32,
    /// This host unchokes the neighbour.
    unchoked: bool,
    /// This host is sending the neighbour a piece.
    sending: bool,
    /// The neighbour is snubbing this host (set at each rechoke).
    snubbed: bool,
}

/// What a link counts between rechokes (apart from [`Link`]: read rarely).
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// Payload bytes received from / sent to the neighbour since the last
    /// rechoke (tit-for-tat).
    down: u64,
    up: u64,
    /// When the neighbour last sent us something or we became interested in
    /// it (snubbing).
    last_progress: u64,
}

/// A piece on its way from a host (the uploader) to a neighbour.
#[derive(Clone, Copy, Debug)]
struct Flow {
    /// The uploader's link to the downloader.
    link: u32,
    piece: u32,
    /// Payload bytes of the piece the downloader already had when the flow
    /// started (a piece finished after a choke, or an end-game copy).
    base: u32,
    /// Payload bytes of the flow already counted in the rechoke windows
    /// ([`Window`]): a rechoke counts what its flows have carried so far,
    /// as the core peer counts every block when it goes.
    counted: u32,
    /// The uploader's service counter when the flow started and the value
    /// at which it ends (wire bytes).
    start: f64,
    end: f64,
}

#[derive(Debug)]
struct Host {
    /// Uplink in wire bytes per second (goodput applied).
    capacity: f64,
    /// What of it the host's flows share: `capacity` less what the
    /// acknowledgements of the host's downloads take.
    upload: f64,
    flows: Vec<Flow>,
    /// Processor sharing: wire bytes each of the host's flows has been given
    /// since the start (all flows progress at the same rate).
    service: f64,
    /// When `service` was brought up to date.
    since: u64,
    /// Neighbours this host unchokes.
    unchoked: u32,
    choker: Choker,
    rng: NodeRng,
    held: u32,
    /// Pieces on their way to this host (at least one flow each).
    busy: u32,
    complete: bool,
    /// The host left the swarm (churn): it does nothing more.
    gone: bool,
    /// (uploader, the uploader's link) of the neighbours unchoking us.
    unchoked_by: Vec<(u32, u32)>,
    /// Started pieces nobody is sending: (piece, payload bytes held).
    partial: Vec<(u32, u32)>,
    /// Flows towards this host: (piece, uploader).
    inflight: Vec<(u32, u32)>,
    /// Neighbours (links in use of the host's `max_peers` slots).
    degree: u32,
    clock: ChokeClock,
    /// When the host last announced, and when it announces next: the
    /// periodic announce, and the look whether it is starving ([`NEVER`]:
    /// none due).
    last_announce: u64,
    periodic_at: u64,
    starving_at: u64,
    /// How long after an announce a starving host looks again.
    starving_delay: Duration,
}

/// No such time.
const NEVER: u64 = u64::MAX;

/// No such host.
const NOBODY: u32 = u32::MAX;

/// What a host's announce timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Announce {
    Periodic,
    Starving,
    /// Its `Stopped` announce: it leaves the swarm ([`Departure`]).
    Leave,
}

/// Hosts' wake-ups (each host's earliest flow end), at most one per host,
/// ordered by (time, sequence): a binary heap that knows where each host
/// sits, so a host's new time replaces its old one in place instead of
/// leaving a stale entry behind.
#[derive(Debug)]
struct Wakes {
    heap: Vec<(u64, u64, u32)>,
    /// Where each host is in `heap`, or [`ABSENT`].
    pos: Vec<u32>,
}

const ABSENT: u32 = u32::MAX;

impl Wakes {
    fn new(hosts: usize) -> Wakes {
        Wakes {
            heap: Vec::with_capacity(hosts),
            pos: vec![ABSENT; hosts],
        }
    }

    fn peek(&self) -> Option<(u64, u64, u32)> {
        self.heap.first().copied()
    }

    /// `host` wakes at `at` (sequence `seq`), whenever it was to wake before.
    fn set(&mut self, host: u32, at: u64, seq: u64) {
        let key = (at, seq, host);
        match self.pos[host as usize] {
            ABSENT => {
                self.heap.push(key);
                self.pos[host as usize] = (self.heap.len() - 1) as u32;
                self.up(self.heap.len() - 1);
            }
            i => {
                let i = i as usize;
                let old = std::mem::replace(&mut self.heap[i], key);
                if key < old {
                    self.up(i);
                } else {
                    self.down(i);
                }
            }
        }
    }

    /// `host` has nothing to wake up for.
    fn remove(&mut self, host: u32) {
        let i = std::mem::replace(&mut self.pos[host as usize], ABSENT);
        if i == ABSENT {
            return;
        }
        let last = self.heap.pop().expect("a host in the heap");
        let i = i as usize;
        if i < self.heap.len() {
            self.heap[i] = last;
            self.pos[last.2 as usize] = i as u32;
            self.up(i);
            self.down(self.pos[last.2 as usize] as usize);
        }
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent] <= self.heap[i] {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.heap[l] < self.heap[least] {
                least = l;
            }
            if r < self.heap.len() && self.heap[r] < self.heap[least] {
                least = r;
            }
            if least == i {
                return;
            }
            self.swap(i, least);
            i = least;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].2 as usize] = a as u32;
        self.pos[self.heap[b].2 as usize] = b as u32;
    }
}

/// A run of the pieces model.
pub(crate) struct PieceSim {
    scenario: Scenario,
    layout: PieceLayout,
    config: SwarmConfig,
    pieces: u32,
    words: usize,
    /// Distance between two hosts' rows in `have` and `busy` (words) and in
    /// `avail` (bytes): one word or cache line more than a row needs. Rows
    /// a power of two apart would put piece `p` of every host in the same
    /// few cache sets, and the pass over a host's neighbours reads exactly
    /// that (about 15% of the run's time at 3,000 peers).
    hrow: usize,
    row: usize,
    /// Wire bytes per payload byte.
    wire: f64,
    hosts: Vec<Host>,
    /// Host `h`'s links are `links[h * slots..][..degree]`: room for
    /// `max_peers` each, so connections opened later (periodic announces)
    /// join their host's row and no link moves.
    slots: usize,
    links: Vec<Link>,
    windows: Vec<Window>,
    /// Held pieces, one bitfield of `words` words per host.
    have: Vec<u64>,
    /// Pieces with a flow towards the host.
    busy: Vec<u64>,
    /// Per host and piece: how many of its neighbours hold the piece (as
    /// far as they show it: a super-seed's only once offered); kept up to
    /// date only while the host lacks the piece (nothing reads it after).
    avail: Vec<u8>,
    /// The server's super-seeding (`swarm.super_seed`), by the core's
    /// rules; `None` without.
    super_seed: Option<SuperSeed>,
    /// The host whose neighbours see only the pieces it offered them: the
    /// server while it super-seeds, else [`NOBODY`]. Every reading of what
    /// a neighbour holds goes through [`PieceSim::shown_word`], which
    /// compares with this once.
    hidden: u32,
    /// Per host, the pieces the hidden host offered it (rows as in
    /// `have`); empty without super-seeding.
    shown: Vec<u64>,
    wakes: Wakes,
    /// The hosts' choking timers: (time, sequence, host).
    timers: BinaryHeap<Reverse<(u64, u64, u32)>>,
    seq: u64,
    now: u64,
    /// When the hosts' unchoke slots open (all start at zero), and the
    /// hosts that wanted to fill theirs before.
    slots_open: u64,
    shut: Vec<u32>,
    /// The tracker's random stream (its id follows the peers').
    tracker_rng: NodeRng,
    /// Every host, in the order they announced.
    announced: Vec<u32>,
    /// The hosts' announce timers: (time, sequence, host, what for); an
    /// entry the host has since moved is skipped.
    announces: BinaryHeap<Reverse<(u64, u64, u32, Announce)>>,
    events: u64,
    downloaders: u32,
    completed: u32,
    report: ReportBuilder,
    trace: TraceHasher,
    trace_sink: Option<TraceSink>,
    observer: Option<Observer>,
    /// Scratch space, kept between calls so that the hot paths allocate
    /// nothing: flows ending at once…
    done: Vec<Flow>,
    /// …neighbours to ask for a piece, and to unchoke…
    take: Vec<(u32, u32)>,
    newly: Vec<u32>,
    /// …and links in a random order.
    order: Vec<u32>,
    /// Bytes of acknowledgements per byte a host receives, taken from its
    /// uplink (`network.ack_load`).
    ack_load: f64,
    /// Hosts whose downloads changed rate in this step: their uplinks are
    /// set again once the step is done.
    acks_changed: Vec<u32>,
}

impl PieceSim {
    /// A run of `scenario`, which must ask for the pieces model.
    pub(crate) fn new(scenario: &Scenario, origin: &str) -> Result<Self, ScenarioError> {
        peerlab_scenarios::nodes::check_runnable(scenario, origin)?;
        assert_eq!(
            scenario.simulator.model,
            SimModel::Pieces,
            "the scenario check admits only pieces-model scenarios here"
        );
        let layout = scenario.layout();
        let config = scenario.swarm_config();
        let pieces = layout.pieces();
        let words = pieces.div_ceil(64) as usize;
        let g = scenario.network.goodput;
        let swarm_hosts: Vec<_> = scenario
            .hosts()
            .into_iter()
            .filter(|h| h.role != peerlab_scenarios::Role::Tracker)
            .collect();
        let n = swarm_hosts.len();
        let hosts = swarm_hosts
            .iter()
            .enumerate()
            .map(|(i, h)| Host {
                capacity: h.upload.bytes_per_sec() * g,
                upload: h.upload.bytes_per_sec() * g,
                flows: Vec::new(),
                service: 0.0,
                since: 0,
                unchoked: 0,
                choker: Choker::new(config.unchoke_slots),
                rng: rng::node_rng(scenario.seed, NodeId(i as u32)),
                held: 0,
                busy: 0,
                complete: false,
                gone: false,
                unchoked_by: Vec::new(),
                partial: Vec::new(),
                inflight: Vec::new(),
                degree: 0,
                clock: ChokeClock::new(Time::ZERO, config.rechoke_interval, config.optimistic_interval),
                last_announce: 0,
                periodic_at: NEVER,
                starving_at: NEVER,
                starving_delay: neighbours::STARVING_REANNOUNCE,
            })
            .collect();
        let mut sim = PieceSim {
            layout,
            config,
            pieces,
            words,
            hrow: words + 1,
            row: (pieces as usize).next_multiple_of(64) + 64,
            wire: 1.0 + BLOCK_FRAMING / f64::from(layout.block_len()),
            hosts,
            slots: config.max_peers as usize,
            links: Vec::new(),
            windows: Vec::new(),
            have: vec![0; n * (words + 1)],
            busy: vec![0; n * (words + 1)],
            avail: vec![0; n * ((pieces as usize).next_multiple_of(64) + 64)],
            wakes: Wakes::new(n),
            super_seed: config
                .super_seed
                .then(|| SuperSeed::new(layout, SUPER_SEED_OFFERS)),
            hidden: if config.super_seed { 0 } else { NOBODY },
            shown: if config.super_seed {
                vec![0; n * (words + 1)]
            } else {
                Vec::new()
            },
            timers: BinaryHeap::new(),
            seq: 0,
            now: 0,
            slots_open: slots_open_at(Time::ZERO).as_nanos(),
            shut: Vec::new(),
            tracker_rng: rng::node_rng(scenario.seed, NodeId(n as u32)),
            announced: Vec::with_capacity(n),
            announces: BinaryHeap::new(),
            events: 0,
            downloaders: scenario.downloaders(),
            completed: 0,
            report: ReportBuilder::new(scenario),
            trace: TraceHasher::default(),
            trace_sink: None,
            observer: None,
            done: Vec::new(),
            take: Vec::new(),
            newly: Vec::new(),
            order: Vec::new(),
            ack_load: scenario.network.ack_load,
            acks_changed: Vec::new(),
            scenario: scenario.clone(),
        };
        sim.connect_swarm();
        sim.seed_server();
        sim.seq += 1;
        sim.timers.push(Reverse((sim.slots_open, sim.seq, SLOTS_OPEN)));
        for h in 0..n as u32 {
            sim.schedule_timer(h);
            // As the core peer on its tracker's answer.
            sim.check_starving(h);
        }
        Ok(sim)
    }

    /// Records the trace: one JSON line per record, as the message model.
    pub(crate) fn record_trace(&mut self, sink: impl FnMut(&str) + 'static) {
        self.trace_sink = Some(Box::new(sink));
    }

    /// Calls `observer` with every event a host reports.
    pub(crate) fn observe(&mut self, observer: impl FnMut(Time, NodeId, &Event) + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Runs to the end: every downloader complete, nothing left to happen,
    /// or a limit reached.
    pub(crate) fn run(mut self, mut progress: impl FnMut(&Progress)) -> Report {
        let max_time = u64::try_from(self.scenario.limits.max_time.0.as_nanos()).unwrap_or(u64::MAX);
        let max_events = self.scenario.limits.max_events;
        let outcome = loop {
            if let Some(end) = self.step(max_time, max_events) {
                break end;
            }
            if self.events % 65_536 == 0 {
                progress(&self.progress());
            }
        };
        progress(&self.progress());
        let stats = SimStats {
            events: self.events,
            end_time_ns: self.now,
        };
        let hash = self.trace.hex();
        self.report.finish(
            "sim",
            outcome,
            Time::from_nanos(self.now),
            Some(hash),
            Some(stats),
        )
    }

    /// Does what happens next, or says how the run ends.
    fn step(&mut self, max_time: u64, max_events: u64) -> Option<Outcome> {
        if self.completed == self.downloaders {
            return Some(Outcome::Complete);
        }
        let wake = self.wakes.peek();
        let timer = self.timers.peek().map(|t| t.0);
        let (at, _, host) = match (wake, timer) {
            (None, None) => return Some(Outcome::Stalled),
            (Some(w), None) => w,
            (None, Some(t)) => t,
            (Some(w), Some(t)) => w.min(t),
        };
        // Announces come after what else happens at the same instant.
        let next_announce = self.announces.peek().map(|a| a.0);
        let announce = next_announce.filter(|a| a.0 < at);
        let at = announce.map_or(at, |a| a.0);
        if at > max_time {
            return Some(Outcome::TimeLimit);
        }
        if self.events >= max_events {
            return Some(Outcome::EventLimit);
        }
        self.now = at;
        if let Some((_, _, host, what)) = announce {
            self.announces.pop();
            self.announce_timer(host, what);
        } else if wake.is_some_and(|w| Some(w) < timer || timer.is_none()) {
            self.wakes.remove(host);
            self.wake(host);
        } else {
            self.timers.pop();
            self.timer(host);
        }
        self.settle_acks();
        self.events += 1;
        None
    }

    fn progress(&self) -> Progress {
        Progress {
            now: Time::from_nanos(self.now),
            events: self.events,
            completed: self.completed,
            downloaders: self.downloaders,
            bytes_down: self.report.bytes_down(),
            bytes_wanted: u64::from(self.downloaders) * self.scenario.file.size.0,
        }
    }

    // ----- the swarm at time zero ------------------------------------------

    /// Every host announces in id order (the server first) and dials the
    /// peers the tracker hands it, as `core::swarm::Peer` does; hosts still
    /// short of their dialling quota once everyone has announced announce
    /// again (the message model's early re-announce).
    fn connect_swarm(&mut self) {
        let n = self.hosts.len();
        let closed = Link {
            peer: 0,
            mirror: 0,
            unchoked: false,
            sending: false,
            snubbed: false,
        };
        self.links = vec![closed; n * self.slots];
        self.windows = vec![Window::default(); n * self.slots];
        for h in 0..n as u32 {
            self.announced.push(h);
            self.announce(h, false);
        }
        for h in 0..n as u32 {
            if self.is_short(h) {
                self.announce(h, false);
            }
        }
    }

    fn is_short(&self, h: u32) -> bool {
        neighbours::is_short(self.hosts[h as usize].degree as usize, self.config.max_peers)
    }

    /// `h` announces and dials the peers the tracker names, in its order,
    /// while it is short of its quota; a peer already holding `max_peers`
    /// refuses. With `running`, the connections open in a running swarm
    /// (both ends count and want each other's pieces at once); otherwise
    /// the swarm is being wired at time zero. Returns whether the tracker
    /// named anyone `h` was not connected to.
    fn announce(&mut self, h: u32, running: bool) -> bool {
        let want = self.config.numwant.min(MAX_NUMWANT) as usize;
        let offer = sample(&mut self.tracker_rng, &self.announced, h, true, want);
        let periodic_at = self.now.saturating_add(nanos(self.config.announce_interval));
        let host = &mut self.hosts[h as usize];
        host.last_announce = self.now;
        if host.periodic_at != periodic_at {
            host.periodic_at = periodic_at;
            self.seq += 1;
            self.announces
                .push(Reverse((periodic_at, self.seq, h, Announce::Periodic)));
        }
        let fresh = offer
            .iter()
            .any(|&p| p != h && !self.links_of(h).any(|g| self.links[g].peer == p));
        for p in offer {
            if !self.is_short(h) {
                break;
            }
            let full = !neighbours::accepts(self.hosts[p as usize].degree as usize, self.config.max_peers);
            if p == h || full || self.links_of(h).any(|g| self.links[g].peer == p) {
                continue;
            }
            let (gh, gp) = self.connect(h, p);
            if running {
                self.opened(h, p, gh, gp);
            }
        }
        fresh
    }

    /// Adds the connection between `h` and `p`: their links' indices.
    fn connect(&mut self, h: u32, p: u32) -> (u32, u32) {
        let gh = self.links_of(h).end;
        let gp = self.links_of(p).end;
        self.links[gh] = Link {
            peer: p,
            mirror: gp as u32,
            unchoked: false,
            sending: false,
            snubbed: false,
        };
        self.links[gp] = Link {
            peer: h,
            mirror: gh as u32,
            unchoked: false,
            sending: false,
            snubbed: false,
        };
        for (x, g) in [(h, gh), (p, gp)] {
            self.hosts[x as usize].degree += 1;
            self.windows[g] = Window {
                last_progress: self.now,
                ..Window::default()
            };
        }
        (gh as u32, gp as u32)
    }

    /// A connection opened in a running swarm: each end counts the pieces
    /// the other shows that it lacks (the core peer's `Bitfield`: a
    /// super-seed's is empty), and an end the other wants something from
    /// fills a free slot with it (the core peer's `Interested`). A
    /// super-seeding server learns from the newcomer's bitfield which
    /// pieces have left, and fills its slots with any neighbour lacking
    /// pieces, as the core peer does on a new connection.
    fn opened(&mut self, h: u32, p: u32, gh: u32, gp: u32) {
        self.trace_record(TAG_LINK, h, &p);
        for (a, b) in [(h, p), (p, h)] {
            let ra = a as usize * self.hrow;
            for w in 0..self.words {
                for bit in BitIter(self.shown_word(b, a, w) & !self.have[ra + w]) {
                    self.avail[a as usize * self.row + w * 64 + bit as usize] += 1;
                }
            }
        }
        if self.hidden == h {
            self.super_seed_bitfield(p);
        } else if self.hidden == p {
            self.super_seed_bitfield(h);
        }
        for (x, y, gx) in [(p, h, gp), (h, p, gh)] {
            if x == self.hidden {
                self.fill_slots(x);
            } else if self.wants(x, y) {
                self.fill_from(x, &mut [gx]);
            }
        }
    }

    /// A host's announce timer is due (unless the host moved it since or
    /// left).
    fn announce_timer(&mut self, h: u32, what: Announce) {
        let host = &self.hosts[h as usize];
        let now = self.now;
        if host.gone {
            return;
        }
        match what {
            Announce::Leave => self.leave(h),
            Announce::Periodic if host.periodic_at == now => {
                if self.announce(h, true) {
                    self.hosts[h as usize].starving_delay = neighbours::STARVING_REANNOUNCE;
                }
                self.check_starving(h);
            }
            Announce::Starving if host.starving_at == now => {
                self.hosts[h as usize].starving_at = NEVER;
                if !self.starving(h) {
                    self.hosts[h as usize].starving_delay = neighbours::STARVING_REANNOUNCE;
                    return;
                }
                // As the core peer: the next look comes after twice the
                // delay; a tracker that named someone new resets the delay
                // for the look after it.
                let doubled = neighbours::next_starving_delay(
                    self.hosts[h as usize].starving_delay,
                    self.config.announce_interval,
                );
                let fresh = self.announce(h, true);
                let host = &mut self.hosts[h as usize];
                host.starving_delay = if fresh {
                    neighbours::STARVING_REANNOUNCE
                } else {
                    doubled
                };
                host.starving_at = now.saturating_add(nanos(doubled));
                self.seq += 1;
                self.announces
                    .push(Reverse((host.starving_at, self.seq, h, Announce::Starving)));
            }
            _ => {} // moved since
        }
    }

    /// Whether `h` lacks pieces and, short of neighbours, has no neighbour
    /// unchoking it that holds one it lacks.
    fn starving(&self, h: u32) -> bool {
        let host = &self.hosts[h as usize];
        let has_source = host.unchoked_by.iter().any(|&(u, _)| self.wants(u, h));
        neighbours::is_starving(host.complete, self.is_short(h), false, has_source)
    }

    /// A source of `h` may have gone: it looks again after its starving
    /// delay, unless a look is due already. A host with its quota of
    /// neighbours does not starve, so it is not asked; should neighbours
    /// leave it short, [`PieceSim::leave`] asks it then.
    fn check_starving(&mut self, h: u32) {
        let host = &self.hosts[h as usize];
        if host.complete || host.starving_at != NEVER || !self.is_short(h) {
            return;
        }
        let now = Time::from_nanos(self.now);
        let last = Time::from_nanos(host.last_announce);
        let at = neighbours::starving_look_at(now, Some(last), host.starving_delay).as_nanos();
        self.hosts[h as usize].starving_at = at;
        self.seq += 1;
        self.announces
            .push(Reverse((at, self.seq, h, Announce::Starving)));
    }

    fn links_of(&self, h: u32) -> std::ops::Range<usize> {
        let first = h as usize * self.slots;
        first..first + self.hosts[h as usize].degree as usize
    }

    /// The server holds every piece; its neighbours count it and want it
    /// — unless it super-seeds: then they see nothing until it offers them
    /// pieces, and it unchokes neighbours that lack pieces.
    fn seed_server(&mut self) {
        let m = self.pieces as usize;
        for p in 0..self.pieces {
            self.set_have(0, p);
        }
        self.hosts[0].held = self.pieces;
        self.hosts[0].complete = true;
        if self.hidden != 0 {
            for g in self.links_of(0) {
                let w = self.links[g].peer as usize;
                for s in &mut self.avail[w * self.row..w * self.row + m] {
                    *s += 1;
                }
            }
        }
        self.fill_slots(0);
    }

    // ----- time ---------------------------------------------------------------

    fn schedule_timer(&mut self, h: u32) {
        let at = self.hosts[h as usize].clock.next().as_nanos();
        self.seq += 1;
        self.timers.push(Reverse((at, self.seq, h)));
    }

    /// Brings `h`'s service counter up to now.
    fn advance(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        let k = host.flows.len();
        if k > 0 && self.now > host.since {
            host.service += (self.now - host.since) as f64 * 1e-9 * host.upload / k as f64;
        }
        host.since = self.now;
    }

    /// Schedules `h`'s wake-up for its earliest flow end (the flows of `h`
    /// changed; `h` is up to date).
    fn reschedule(&mut self, h: u32) {
        let host = &self.hosts[h as usize];
        let Some(end) = host.flows.iter().map(|f| f.end).min_by(f64::total_cmp) else {
            self.wakes.remove(h);
            return;
        };
        let k = host.flows.len() as f64;
        let secs = (end - host.service).max(0.0) * k / host.upload;
        let at = self.now + (secs * 1e9).ceil() as u64;
        self.seq += 1;
        self.wakes.set(h, at, self.seq);
    }

    /// The flows of `u` changed: each of its downloaders, and `gone` (the
    /// downloader of a flow that ended), now receives at another rate.
    fn rates_changed(&mut self, u: u32, gone: Option<u32>) {
        if self.ack_load == 0.0 {
            return;
        }
        let links = &self.links;
        let downloaders = self.hosts[u as usize]
            .flows
            .iter()
            .map(|f| links[f.link as usize].peer);
        self.acks_changed.extend(downloaders.chain(gone));
    }

    /// Sets the uplink of each host whose downloads changed rate: its
    /// capacity less `ack_load` times what it receives, as the message
    /// model's links reserve it. What a host receives is counted at the
    /// senders' full uplinks (each flow of `u` at `capacity / flows`), as
    /// the message model counts it at the rates found without
    /// acknowledgements, so that one host's change stops at its
    /// downloaders.
    fn settle_acks(&mut self) {
        if self.acks_changed.is_empty() {
            return;
        }
        let mut changed = std::mem::take(&mut self.acks_changed);
        changed.sort_unstable();
        changed.dedup();
        for &d in &changed {
            let host = &self.hosts[d as usize];
            if !host.capacity.is_finite() {
                continue;
            }
            let received: f64 = host
                .inflight
                .iter()
                .map(|&(_, u)| {
                    let u = &self.hosts[u as usize];
                    u.capacity / u.flows.len() as f64
                })
                .sum();
            let reserved = (self.ack_load * received).min(MAX_ACK_SHARE * host.capacity);
            let upload = host.capacity - reserved;
            if upload == host.upload {
                continue;
            }
            self.advance(d);
            self.hosts[d as usize].upload = upload;
            self.reschedule(d);
        }
        changed.clear();
        self.acks_changed = changed;
    }

    /// The choking timer of `h`: the rechoke, with the optimistic rotation
    /// when that is due too.
    fn timer(&mut self, h: u32) {
        if h == SLOTS_OPEN {
            for h in std::mem::take(&mut self.shut) {
                self.fill_slots(h);
            }
            return;
        }
        if self.hosts[h as usize].gone {
            return;
        }
        let now = Time::from_nanos(self.now);
        if let Some(rotate) = self.hosts[h as usize].clock.fire(now) {
            self.rechoke(h, rotate);
        }
        self.schedule_timer(h);
    }

    /// Flows of `u` that are done now end; their downloaders take them.
    fn wake(&mut self, u: u32) {
        self.advance(u);
        let host = &mut self.hosts[u as usize];
        let limit = host.service + EPSILON;
        let mut done = std::mem::take(&mut self.done);
        done.clear();
        host.flows.retain(|f| {
            let end = f.end <= limit;
            if end {
                done.push(*f);
            }
            !end
        });
        for f in &done {
            self.links[f.link as usize].sending = false;
        }
        self.reschedule(u);
        for f in &done {
            let d = self.links[f.link as usize].peer;
            self.rates_changed(u, Some(d));
        }
        for &f in &done {
            self.deliver(u, f);
        }
        self.done = done;
    }

    // ----- pieces ---------------------------------------------------------------

    fn deliver(&mut self, u: u32, f: Flow) {
        let link = self.links[f.link as usize];
        let d = link.peer;
        let bytes = self.layout.piece_size(f.piece) - f.base;
        self.count_payload(f.link, u64::from(bytes - f.counted), true);
        remove_inflight(&mut self.hosts[d as usize].inflight, f.piece, u);
        self.emit(
            d,
            Event::BlockReceived {
                from: NodeId(u),
                block: BlockRef {
                    piece: f.piece,
                    offset: f.base,
                    len: bytes,
                },
            },
        );
        // The first copy in wins; end-game copies elsewhere are cancelled.
        let mut freed = Vec::new();
        while let Some(k) = self.hosts[d as usize]
            .inflight
            .iter()
            .position(|&(p, _)| p == f.piece)
        {
            let (_, v) = self.hosts[d as usize].inflight.remove(k);
            freed.push((v, self.cancel(v, d, f.piece, false)));
        }
        self.clear_busy(d, f.piece);
        self.verified(d, f.piece);
        self.request(d, u, f.link);
        for (v, lv) in freed {
            self.request(d, v, lv);
        }
    }

    /// `d` verified `piece`: its neighbours count it, their interest follows.
    fn verified(&mut self, d: u32, piece: u32) {
        let now = self.now;
        self.set_have(d, piece);
        let host = &mut self.hosts[d as usize];
        host.held += 1;
        let complete = host.held == self.pieces;
        self.emit(d, Event::PieceVerified { piece });
        // A host leaving at completion neither serves nor seeds: its
        // neighbours only count the piece until it goes.
        let mut leaves_now = false;
        if complete {
            self.hosts[d as usize].complete = true;
            self.completed += 1;
            self.emit(d, Event::DownloadComplete);
            let at = match self.config.leave.on_completion(Time::from_nanos(now)) {
                Departure::Now => Some(now),
                Departure::At(t) => Some(t.as_nanos()),
                Departure::Never => None,
            };
            if let Some(at) = at {
                // It leaves after what else happens at this instant (the
                // core peer leaves before anything else reaches it).
                leaves_now = at == now;
                self.seq += 1;
                self.announces.push(Reverse((at, self.seq, d, Announce::Leave)));
            }
        } else {
            // The neighbour it came from may have nothing more for it.
            self.check_starving(d);
        }
        // Neighbours that lack the piece count it (a count is read only for
        // pieces its host lacks, and a host never loses a piece, so the
        // counts of neighbours holding it may stay behind). Among them, the
        // ones `d` unchokes that wait for something to ask for, and, if `d`
        // has a free slot, the ones now interested in it.
        let mut take = std::mem::take(&mut self.take);
        let mut newly = std::mem::take(&mut self.newly);
        take.clear();
        newly.clear();
        let free = self.hosts[d as usize].unchoked < self.hosts[d as usize].choker.max_unchoked();
        let range = self.links_of(d);
        let (first, links) = (range.start, &self.links[range]);
        // The fields are borrowed apart (and `has` written out) so that the
        // loop keeps their addresses in registers: calling `self.has` and
        // indexing `self.avail` was 2-13% slower in three side-by-side runs.
        let (have, avail) = (&self.have, &mut self.avail);
        let (word, bit) = (piece as usize / 64, 1u64 << (piece % 64));
        for (g, l) in (first..).zip(links) {
            let peer = l.peer as usize;
            if have[peer * self.hrow + word] & bit != 0 {
                continue;
            }
            avail[peer * self.row + piece as usize] += 1;
            if l.unchoked {
                if !l.sending {
                    take.push((l.peer, g as u32));
                }
            } else if free && !l.snubbed {
                newly.push(g as u32);
            }
        }
        // A super-seeding server hears of the piece (the core peer's `Have`).
        if self.hidden == 0 {
            self.super_seed_have(d, piece);
        }
        // Neighbours unchoking `d` that show nothing more for it choke it and
        // give the slot to someone else (the core peer's `NotInterested`),
        // unless they super-seed. Backwards: a choke removes its entry by
        // moving the last one into its place, which has been looked at
        // already.
        for k in (0..self.hosts[d as usize].unchoked_by.len()).rev() {
            let Some(&(u, lu)) = self.hosts[d as usize].unchoked_by.get(k) else {
                continue;
            };
            if self.shows(u, d, piece) && !self.wants(u, d) && chokes_on_lost_interest(u == self.hidden) {
                self.choke(u, lu);
                self.hosts[u as usize].choker.forget(NodeId(d));
                self.fill_slots(u);
            }
        }
        if leaves_now {
            take.clear();
        }
        for &(w, g) in &take {
            self.request(w, d, g);
        }
        if complete {
            // Seeding from now on: every interested neighbour may fill a slot.
            if !leaves_now {
                self.fill_slots(d);
            }
        } else if !newly.is_empty() {
            // The core peer fills free slots when an `Interested` arrives;
            // only neighbours lacking this piece can have become interested.
            self.fill_from(d, &mut newly);
        }
        self.take = take;
        self.newly = newly;
    }

    /// `d` asks `u` (which unchokes it on `u`'s link `lu`) for a piece.
    fn request(&mut self, d: u32, u: u32, lu: u32) {
        let l = self.links[lu as usize];
        if !l.unchoked || l.sending || self.hosts[d as usize].complete {
            return;
        }
        let Some((piece, base)) = self.pick(d, u) else {
            return;
        };
        // `d` asks a super-seed only for what it was shown, which is what it
        // is offered (the unit tests check this in release builds too).
        debug_assert!(
            u != self.hidden
                || self
                    .super_seed
                    .as_ref()
                    .is_some_and(|s| s.may_serve(NodeId(d), piece)),
            "{d} asks the super-seed for piece {piece}, not offered to it"
        );
        self.advance(u);
        let size = self.layout.piece_size(piece);
        let host = &mut self.hosts[u as usize];
        let start = host.service;
        host.flows.push(Flow {
            link: lu,
            piece,
            base,
            counted: 0,
            start,
            end: start + f64::from(size - base) * self.wire,
        });
        self.links[lu as usize].sending = true;
        self.reschedule(u);
        self.rates_changed(u, None);
        let w = d as usize * self.hrow + piece as usize / 64;
        let bit = 1u64 << (piece % 64);
        if self.busy[w] & bit == 0 {
            self.busy[w] |= bit;
            self.hosts[d as usize].busy += 1;
        }
        self.hosts[d as usize].inflight.push((piece, u));
        self.trace_record(TAG_FLOW, d, &(u, piece, base));
    }

    /// The piece `d` asks `u` for, and the bytes of it `d` already holds:
    /// the core picker's order (a started piece nobody sends, a new piece —
    /// random for the first few, then rarest first, ties at random — then
    /// the end game).
    fn pick(&mut self, d: u32, u: u32) -> Option<(u32, u32)> {
        let (du, uu) = (d as usize, u as usize);
        if let Some(k) = self.hosts[du]
            .partial
            .iter()
            .position(|&(p, _)| self.shows(u, d, p))
        {
            return Some(self.hosts[du].partial.swap_remove(k));
        }
        let random = picks_at_random(self.hosts[du].held, self.config.random_first_pieces);
        let mine = du * self.hrow;
        // What `u` shows `d` (`shown_word`, with the fields borrowed apart).
        let (shown, theirs) = if u == self.hidden {
            (&self.shown, mine)
        } else {
            (&self.have, uu * self.hrow)
        };
        let (have, busy, row) = (&self.have, &self.busy, du * self.row);
        let fresh = (0..self.words).flat_map(|w| {
            let bits = shown[theirs + w] & !have[mine + w] & !busy[mine + w];
            BitIter(bits).map(move |b| (w * 64) as u32 + b)
        });
        let avail = |p: u32| u32::from(self.avail[row + p as usize]);
        if let Some(p) = rarest(fresh, avail, random, &mut self.hosts[du].rng) {
            return Some((p, 0));
        }
        self.endgame_piece(d, u)
    }

    /// Once every missing piece of `d` is on its way, a piece on its way
    /// from someone else that `u` could send too, with fewer than
    /// `endgame_copies` copies, the least-copied first. The copy starts
    /// where the furthest copy has got to (the blocks still missing).
    fn endgame_piece(&mut self, d: u32, u: u32) -> Option<(u32, u32)> {
        let host = &self.hosts[d as usize];
        if !host.partial.is_empty() || host.held + host.busy < self.pieces || host.busy == 0 {
            return None;
        }
        let copies = |p: u32| host.inflight.iter().filter(|&&(q, _)| q == p).count() as u32;
        let candidates = host
            .inflight
            .iter()
            .filter(|&&(p, v)| v != u && self.shows(u, d, p) && !host.inflight.contains(&(p, u)))
            .map(|&(p, _)| (p, copies(p)));
        let piece = least_copied(candidates, self.config.endgame_copies)?;
        let senders: Vec<u32> = host
            .inflight
            .iter()
            .filter(|&&(p, _)| p == piece)
            .map(|&(_, v)| v)
            .collect();
        let mut furthest = 0;
        for v in senders {
            self.advance(v);
            let uploader = &self.hosts[v as usize];
            if let Some(f) = uploader
                .flows
                .iter()
                .find(|f| f.piece == piece && self.links[f.link as usize].peer == d)
            {
                furthest = furthest.max(f.base + self.payload_sent(uploader.service, f));
            }
        }
        let block = self.layout.block_len();
        Some((
            piece,
            (furthest / block * block).min(self.layout.piece_size(piece)),
        ))
    }

    /// Payload bytes flow `f` has carried by service counter `service`.
    fn payload_sent(&self, service: f64, f: &Flow) -> u32 {
        let left = self.layout.piece_size(f.piece) - f.base;
        (((service - f.start) / self.wire).floor().max(0.0) as u32).min(left)
    }

    /// Stops the flow of `piece` from `v` to `d`; returns `v`'s link to `d`.
    /// With `keep`, `d` keeps the bytes that arrived (a choke: the piece is
    /// finished from someone else later); otherwise they are discarded (an
    /// end-game copy that lost the race).
    fn cancel(&mut self, v: u32, d: u32, piece: u32, keep: bool) -> u32 {
        self.advance(v);
        let host = &self.hosts[v as usize];
        let k = host
            .flows
            .iter()
            .position(|f| f.piece == piece && self.links[f.link as usize].peer == d)
            .expect("a flow in a downloader's in-flight list exists at its uploader");
        let f = host.flows[k];
        let sent = self.payload_sent(host.service, &f);
        self.hosts[v as usize].flows.remove(k);
        self.links[f.link as usize].sending = false;
        self.reschedule(v);
        self.rates_changed(v, Some(d));
        self.count_payload(f.link, u64::from(sent.saturating_sub(f.counted)), sent > 0);
        let block = BlockRef {
            piece,
            offset: f.base,
            len: sent,
        };
        let from = NodeId(v);
        if keep {
            if sent > 0 {
                self.emit(d, Event::BlockReceived { from, block });
            }
            let others = self.hosts[d as usize].inflight.iter().any(|&(p, _)| p == piece);
            if !others {
                self.clear_busy(d, piece);
                // A piece with nothing of it held goes back to the pool of
                // new pieces (the core picker's `release`).
                if f.base + sent > 0 {
                    self.hosts[d as usize].partial.push((piece, f.base + sent));
                }
            }
        } else if sent > 0 {
            self.emit(d, Event::BlockDiscarded { from, block });
        }
        f.link
    }

    // ----- choking -------------------------------------------------------------

    fn unchoke(&mut self, u: u32, lu: u32) {
        let l = &mut self.links[lu as usize];
        if l.unchoked {
            return;
        }
        l.unchoked = true;
        let d = l.peer;
        self.hosts[u as usize].unchoked += 1;
        self.hosts[d as usize].unchoked_by.push((u, lu));
        if u == self.hidden {
            self.offer(d);
        }
        self.request(d, u, lu);
    }

    fn choke(&mut self, u: u32, lu: u32) {
        let l = self.links[lu as usize];
        if !l.unchoked {
            return;
        }
        self.links[lu as usize].unchoked = false;
        self.hosts[u as usize].unchoked -= 1;
        let d = l.peer;
        let by = &mut self.hosts[d as usize].unchoked_by;
        if let Some(k) = by.iter().position(|&x| x == (u, lu)) {
            by.swap_remove(k);
        }
        let flow = self.hosts[u as usize]
            .flows
            .iter()
            .find(|f| f.link == lu)
            .map(|f| f.piece);
        if let Some(piece) = flow {
            remove_inflight(&mut self.hosts[d as usize].inflight, piece, u);
            self.cancel(u, d, piece, true);
            // As the core's peer on a choke: ask everyone still unchoking us
            // (asking changes nobody's unchoking).
            for k in 0..self.hosts[d as usize].unchoked_by.len() {
                let (v, lv) = self.hosts[d as usize].unchoked_by[k];
                self.request(d, v, lv);
            }
        }
        self.check_starving(d);
    }

    /// Unchokes eligible (interested, or lacking pieces while `h`
    /// super-seeds: [`is_eligible`]), unsnubbed neighbours at random while
    /// slots are free, as the core's choker fills them.
    fn fill_slots(&mut self, h: u32) {
        if self.keeps_shut(h) {
            return;
        }
        let mut links = std::mem::take(&mut self.order);
        links.clear();
        links.extend(self.links_of(h).map(|g| g as u32));
        let (all, have, hrow, words) = (&self.links, &self.have, self.hrow, self.words);
        let mine = h as usize * hrow;
        let super_seeding = h == self.hidden;
        let qualify = |&g: &u32| {
            let l = all[g as usize];
            let theirs = l.peer as usize * hrow;
            // `self.lacks_any_of(h, peer)`, written out to borrow the fields
            // apart; unless `h` super-seeds it equals `self.wants(h, peer)`.
            let lacks = || (0..words).any(|w| have[mine + w] & !have[theirs + w] != 0);
            !l.unchoked && !l.snubbed && is_eligible(super_seeding, lacks, lacks)
        };
        let host = &mut self.hosts[h as usize];
        let chosen = host
            .choker
            .fill(host.unchoked, &mut links, qualify, &mut host.rng);
        for &g in &links[..chosen] {
            self.unchoke(h, g);
        }
        self.order = links;
    }

    /// Whether the slots of `h` are still shut (the core's
    /// [`slots_open_at`]); it fills them all when they open.
    fn keeps_shut(&mut self, h: u32) -> bool {
        if self.now >= self.slots_open {
            return false;
        }
        if !self.shut.contains(&h) {
            self.shut.push(h);
        }
        true
    }

    /// Unchokes links of `h` from `waiting` (choked, unsnubbed, interested)
    /// at random while slots are free, as the core's choker fills them.
    fn fill_from(&mut self, h: u32, waiting: &mut [u32]) {
        if self.keeps_shut(h) {
            return;
        }
        let host = &mut self.hosts[h as usize];
        let chosen = host.choker.fill(host.unchoked, waiting, |_| true, &mut host.rng);
        for &g in &waiting[..chosen] {
            self.unchoke(h, g);
        }
    }

    /// The regular rechoke of `h` by the core's choker; a super-seed keeps
    /// the neighbours with unfinished offers unchoked on top
    /// ([`is_protected`]).
    fn rechoke(&mut self, h: u32, rotate: bool) {
        let now = self.now;
        self.count_progress(h);
        let seeding = self.hosts[h as usize].complete;
        let mut candidates = Vec::new();
        let mut protected = Vec::new();
        for g in self.links_of(h) {
            let l = self.links[g];
            // The snubbing clock starts when `h` becomes interested in the
            // neighbour: here, at the last rechoke it was not.
            let interested = self.wants(l.peer, h);
            if !interested {
                self.windows[g].last_progress = now;
            }
            let silent = Duration::from_nanos(now.saturating_sub(self.windows[g].last_progress));
            let snubbed = is_snubbed(interested, silent, self.config.snub_timeout);
            self.links[g].snubbed = snubbed;
            if self.eligible(h, l.peer) {
                let ss = self.super_seed.as_ref().filter(|_| h == 0);
                if is_protected(ss, NodeId(l.peer)) {
                    protected.push(NodeId(l.peer));
                }
                let w = self.windows[g];
                candidates.push(Candidate::tit_for_tat(
                    NodeId(l.peer),
                    seeding,
                    w.up,
                    w.down,
                    snubbed,
                ));
            }
        }
        let host = &mut self.hosts[h as usize];
        let mut unchoke: BTreeSet<NodeId> = host.choker.rechoke(&candidates, rotate, &mut host.rng);
        unchoke.extend(protected);
        for g in self.links_of(h) {
            if unchoke.contains(&NodeId(self.links[g].peer)) {
                self.unchoke(h, g as u32);
            } else {
                self.choke(h, g as u32);
            }
            let w = &mut self.windows[g];
            w.down = 0;
            w.up = 0;
        }
    }

    /// Counts in the rechoke windows what the flows `h` sends and receives
    /// have carried so far.
    fn count_progress(&mut self, h: u32) {
        self.advance(h);
        for k in 0..self.hosts[h as usize].flows.len() {
            self.count_flow(h, k);
        }
        for i in 0..self.hosts[h as usize].inflight.len() {
            let (piece, v) = self.hosts[h as usize].inflight[i];
            self.advance(v);
            let links = &self.links;
            let k = self.hosts[v as usize]
                .flows
                .iter()
                .position(|f| f.piece == piece && links[f.link as usize].peer == h)
                .expect("a flow in a downloader's in-flight list exists at its uploader");
            self.count_flow(v, k);
        }
    }

    /// Counts the payload flow `k` of `u` (brought up to date) has carried
    /// since it was last counted.
    fn count_flow(&mut self, u: u32, k: usize) {
        let host = &self.hosts[u as usize];
        let f = host.flows[k];
        let sent = self.payload_sent(host.service, &f);
        if sent <= f.counted {
            return;
        }
        self.hosts[u as usize].flows[k].counted = sent;
        self.count_payload(f.link, u64::from(sent - f.counted), true);
    }

    /// Counts `bytes` of payload sent on the uploader's link `g` in both
    /// ends' rechoke windows and, if bytes `arrived`, as progress at the
    /// downloader, which ends a snub there as every block does at the core
    /// peer.
    fn count_payload(&mut self, g: u32, bytes: u64, arrived: bool) {
        self.windows[g as usize].up += bytes;
        let mirror = self.links[g as usize].mirror as usize;
        let back = &mut self.windows[mirror];
        back.down += bytes;
        if arrived {
            back.last_progress = self.now;
            self.links[mirror].snubbed = false;
        }
    }

    // ----- super-seeding ---------------------------------------------------------

    /// The server's link to `d`, if they are neighbours.
    fn server_link(&self, d: u32) -> Option<u32> {
        self.links_of(0)
            .find(|&g| self.links[g].peer == d)
            .map(|g| g as u32)
    }

    /// `h`'s pieces as the core's bitfield (what it tells a neighbour).
    fn bitfield(&self, h: u32) -> Bitfield {
        let mut bits = Bitfield::new(self.pieces);
        let row = h as usize * self.hrow;
        for w in 0..self.words {
            for b in BitIter(self.have[row + w]) {
                bits.insert((w * 64) as u32 + b);
            }
        }
        bits
    }

    /// The super-seeding server offers `d` new pieces up to its quota
    /// ([`SuperSeed::top_up`]; the core peer sends a `Have` for each): `d`
    /// sees them from now on, in its availability counts and its interest.
    /// Allocates (as `top_up` does): once per piece and unchoke, never
    /// without super-seeding.
    fn offer(&mut self, d: u32) {
        if self.hidden != 0 {
            return;
        }
        let holds = self.bitfield(d);
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        for p in ss.top_up(NodeId(d), &holds, &mut self.hosts[0].rng) {
            let (w, bit) = (d as usize * self.hrow + p as usize / 64, 1u64 << (p % 64));
            self.shown[w] |= bit;
            if self.have[w] & bit == 0 {
                self.avail[d as usize * self.row + p as usize] += 1;
            }
        }
    }

    /// `d` verified `piece`: if it is the super-seeding server's neighbour,
    /// the server hears of it (the core's [`SuperSeed::on_have`]), which may
    /// finish `d`'s offer — then `d`, if unchoked, is offered more and asks
    /// for it — or end super-seeding.
    fn super_seed_have(&mut self, d: u32, piece: u32) {
        let Some(g) = self.server_link(d) else {
            return; // not a neighbour: the server hears nothing
        };
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        let finished = ss.on_have(NodeId(d), piece);
        if !ss.is_active() {
            self.end_super_seeding();
        } else if finished && self.links[g as usize].unchoked {
            self.offer(d);
            self.request(d, 0, g);
        }
    }

    /// `d` connected to the super-seeding server mid-run: its bitfield
    /// tells the server which pieces have left ([`SuperSeed::on_bitfield`]),
    /// which may end super-seeding. A new neighbour holds no offer yet, so
    /// none is finished.
    fn super_seed_bitfield(&mut self, d: u32) {
        let bits = self.bitfield(d);
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        ss.on_bitfield(NodeId(d), &bits);
        if !ss.is_active() {
            self.end_super_seeding();
        }
    }

    /// Every piece has left the server once: it shows every neighbour all
    /// its pieces (the core peer's `end_super_seeding`), which count them;
    /// it fills its slots, by interest from now on, and the neighbours it
    /// unchokes ask it for pieces.
    fn end_super_seeding(&mut self) {
        self.hidden = NOBODY;
        for g in self.links_of(0) {
            let d = self.links[g].peer as usize;
            let rd = d * self.hrow;
            for w in 0..self.words {
                let news = self.have[w] & !self.shown[rd + w] & !self.have[rd + w];
                for b in BitIter(news) {
                    self.avail[d * self.row + w * 64 + b as usize] += 1;
                }
            }
        }
        self.fill_slots(0);
        for g in self.links_of(0) {
            let d = self.links[g].peer;
            self.request(d, 0, g as u32);
        }
    }

    /// Neighbour `x` of the super-seeding server left (its link already
    /// dropped): its unfinished offers, and the pieces no other neighbour
    /// of the server holds, go back to the pool
    /// ([`SuperSeed::on_departure`]), and the neighbours the server
    /// unchokes are offered more and ask for them, as at the core peer.
    fn super_seed_departure(&mut self, x: u32) {
        let server = self.links_of(0);
        let (have, links, hrow, words) = (&self.have, &self.links, self.hrow, self.words);
        let rx = x as usize * hrow;
        let held = (0..words).flat_map(|w| BitIter(have[rx + w]).map(move |b| (w * 64) as u32 + b));
        let elsewhere = |p: u32| {
            let (w, bit) = (p as usize / 64, 1u64 << (p % 64));
            links[server.clone()]
                .iter()
                .any(|l| have[l.peer as usize * hrow + w] & bit != 0)
        };
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        ss.on_departure(NodeId(x), held, elsewhere);
        for g in self.links_of(0) {
            if self.links[g].unchoked {
                let d = self.links[g].peer;
                self.offer(d);
                self.request(d, 0, g as u32);
            }
        }
    }

    // ----- churn -----------------------------------------------------------------

    /// `x` leaves the swarm as the core peer does: it reports `Left`, the
    /// tracker forgets it (its `Stopped` announce) and every connection
    /// closes. Its uploads stop with the downloaders keeping the bytes that
    /// arrived (as on a choke); each neighbour then does what the core peer
    /// does when a neighbour goes: forgets it in its choker and its
    /// availability counts, fills the slot it held, asks the neighbours
    /// unchoking it, asks the tracker again if short of neighbours, and
    /// looks whether it is starving.
    fn leave(&mut self, x: u32) {
        let xi = x as usize;
        self.hosts[xi].gone = true;
        self.emit(x, Event::Left);
        if let Some(i) = self.announced.iter().position(|&h| h == x) {
            forget(&mut self.announced, i);
        }
        while let Some(f) = self.hosts[xi].flows.last().copied() {
            let d = self.links[f.link as usize].peer;
            remove_inflight(&mut self.hosts[d as usize].inflight, f.piece, x);
            self.cancel(x, d, f.piece, true);
        }
        debug_assert!(self.hosts[xi].inflight.is_empty(), "a host leaves complete");
        // Every neighbour drops the link first, so that none of what they
        // do next sees `x`: (neighbour, whether it unchoked `x`).
        let mut left = std::mem::take(&mut self.take);
        left.clear();
        for g in self.links_of(x) {
            let l = self.links[g];
            let p = l.peer;
            let pi = p as usize;
            if l.unchoked {
                let by = &mut self.hosts[pi].unchoked_by;
                if let Some(k) = by.iter().position(|&e| e == (x, g as u32)) {
                    by.swap_remove(k);
                }
            }
            let freed = self.links[l.mirror as usize].unchoked;
            if freed {
                self.hosts[pi].unchoked -= 1;
            }
            self.hosts[pi].choker.forget(NodeId(x));
            let rp = pi * self.hrow;
            for w in 0..self.words {
                for bit in BitIter(self.shown_word(x, p, w) & !self.have[rp + w]) {
                    self.avail[pi * self.row + w * 64 + bit as usize] -= 1;
                }
            }
            self.drop_link(p, l.mirror);
            left.push((p, u32::from(freed)));
        }
        let host = &mut self.hosts[xi];
        host.degree = 0;
        host.unchoked = 0;
        host.unchoked_by.clear();
        for &(p, freed) in &left {
            if p == self.hidden {
                self.super_seed_departure(x);
            }
            if freed == 1 {
                self.fill_slots(p);
            }
            for k in 0..self.hosts[p as usize].unchoked_by.len() {
                let (v, lv) = self.hosts[p as usize].unchoked_by[k];
                self.request(p, v, lv);
            }
            self.reannounce_if_short(p);
            self.check_starving(p);
        }
        self.take = left;
    }

    /// `h` closes its link `g`: its last link takes the place (the other
    /// end of that link, the flow on it and the neighbour's list of who
    /// unchokes it follow).
    fn drop_link(&mut self, h: u32, g: u32) {
        let last = self.links_of(h).end - 1;
        let g = g as usize;
        if g != last {
            let moved = self.links[last];
            self.links[g] = moved;
            self.windows[g] = self.windows[last];
            self.links[moved.mirror as usize].mirror = g as u32;
            for f in &mut self.hosts[h as usize].flows {
                if f.link as usize == last {
                    f.link = g as u32;
                }
            }
            if moved.unchoked {
                for e in &mut self.hosts[moved.peer as usize].unchoked_by {
                    if *e == (h, last as u32) {
                        e.1 = g as u32;
                    }
                }
            }
        }
        self.hosts[h as usize].degree -= 1;
    }

    /// A neighbour of `h` went: short of neighbours, `h` asks the tracker
    /// again soon rather than at its next periodic announce (the core
    /// peer's early re-announce).
    fn reannounce_if_short(&mut self, h: u32) {
        let host = &self.hosts[h as usize];
        if !neighbours::reannounces_when_short(host.complete, host.degree as usize, self.config.max_peers) {
            return;
        }
        let last = Time::from_nanos(host.last_announce);
        let at = neighbours::reannounce_at(Time::from_nanos(self.now), Some(last)).as_nanos();
        if at < host.periodic_at {
            self.hosts[h as usize].periodic_at = at;
            self.seq += 1;
            self.announces
                .push(Reverse((at, self.seq, h, Announce::Periodic)));
        }
    }

    // ----- bits and records ----------------------------------------------------

    /// Whether `a` shows a piece `b` lacks (`b` is interested in `a`).
    fn wants(&self, a: u32, b: u32) -> bool {
        let y = b as usize * self.hrow;
        let (shown, x) = if a == self.hidden {
            (&self.shown, y)
        } else {
            (&self.have, a as usize * self.hrow)
        };
        shown[x..x + self.words]
            .iter()
            .zip(&self.have[y..y + self.words])
            .any(|(a, b)| a & !b != 0)
    }

    /// Word `w` of the pieces `a` shows `b`: those it holds, or, while `a`
    /// super-seeds, those it offered `b` (the core peer's empty `Bitfield`
    /// and the `Have`s of its offers).
    fn shown_word(&self, a: u32, b: u32, w: usize) -> u64 {
        if a == self.hidden {
            self.shown[b as usize * self.hrow + w]
        } else {
            self.have[a as usize * self.hrow + w]
        }
    }

    /// Whether `a` shows `b` that it holds `piece`.
    fn shows(&self, a: u32, b: u32, piece: u32) -> bool {
        self.shown_word(a, b, piece as usize / 64) & (1 << (piece % 64)) != 0
    }

    /// Whether `peer` lacks one of `h`'s pieces (for a super-seed, which
    /// holds every piece: whether it lacks pieces at all).
    fn lacks_any_of(&self, h: u32, peer: u32) -> bool {
        let (x, y) = (h as usize * self.hrow, peer as usize * self.hrow);
        (0..self.words).any(|w| self.have[x + w] & !self.have[y + w] != 0)
    }

    /// Whether `peer` may get an unchoke slot at `h` ([`is_eligible`]).
    fn eligible(&self, h: u32, peer: u32) -> bool {
        is_eligible(
            h == self.hidden,
            || self.wants(h, peer),
            || self.lacks_any_of(h, peer),
        )
    }

    #[cfg(test)]
    fn has(&self, h: u32, piece: u32) -> bool {
        self.have[h as usize * self.hrow + piece as usize / 64] & (1 << (piece % 64)) != 0
    }

    fn set_have(&mut self, h: u32, piece: u32) {
        self.have[h as usize * self.hrow + piece as usize / 64] |= 1 << (piece % 64);
    }

    fn clear_busy(&mut self, d: u32, piece: u32) {
        let w = d as usize * self.hrow + piece as usize / 64;
        let bit = 1u64 << (piece % 64);
        if self.busy[w] & bit != 0 {
            self.busy[w] &= !bit;
            self.hosts[d as usize].busy -= 1;
        }
    }

    fn emit(&mut self, node: u32, event: Event) {
        let at = Time::from_nanos(self.now);
        self.report.record(at, NodeId(node), &event);
        self.trace_record(TAG_EVENT, node, &event);
        if let Some(o) = &mut self.observer {
            o(at, NodeId(node), &event);
        }
    }

    fn trace_record<T: std::hash::Hash + std::fmt::Debug + ?Sized>(
        &mut self,
        tag: u8,
        node: u32,
        fields: &T,
    ) {
        self.trace.record(tag, self.now, node, fields);
        if let Some(sink) = &mut self.trace_sink {
            let kind = match tag {
                TAG_FLOW => "flow",
                TAG_LINK => "link",
                _ => "event",
            };
            sink(&crate::trace::json_line(self.now, node, kind, fields));
        }
    }
}

fn remove_inflight(list: &mut Vec<(u32, u32)>, piece: u32, from: u32) {
    if let Some(k) = list.iter().position(|&x| x == (piece, from)) {
        list.swap_remove(k);
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The set bits of a word, lowest first.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn swarm(n: u32, more: &[&str]) -> PieceSim {
        let mut sets = vec![
            format!("peers.count={n}"),
            "file.size=4 MiB".to_string(),
            "simulator.model=pieces".to_string(),
        ];
        sets.extend(more.iter().map(|s| s.to_string()));
        let lib = peerlab_scenarios::library::get("swarm-homogeneous").expect("a library scenario");
        let s = Scenario::from_json(lib, "swarm-homogeneous", &sets).expect("a pieces-model scenario");
        PieceSim::new(&s, "test").expect("it runs")
    }

    fn churn(leave: &str, n: u32) -> PieceSim {
        swarm(n, &[&format!("swarm.leave={leave}")])
    }

    /// What every step must keep: links in pairs that point at each other,
    /// none to a host that left, the tracker naming only hosts still in
    /// the swarm, unchoking counted at both ends, flows on links that
    /// send, and availability counts that match the pieces the neighbours
    /// show. While the server super-seeds, what it shows a neighbour and
    /// the neighbour lacks is exactly its unfinished offer, and it sends
    /// only offered pieces ([`SuperSeed::may_serve`]).
    fn check_consistent(sim: &PieceSim) {
        if let Some(ss) = sim.super_seed.as_ref().filter(|s| s.is_active()) {
            assert_eq!(sim.hidden, 0, "super-seeding, the server's pieces are hidden");
            for g in sim.links_of(0) {
                let d = sim.links[g].peer;
                let offered = (0..sim.pieces).filter(|&p| sim.shows(0, d, p) && !sim.has(d, p));
                let mut any = false;
                for p in offered {
                    any = true;
                    assert!(ss.may_serve(NodeId(d), p), "{d} is shown {p}, not offered it");
                }
                assert_eq!(any, ss.has_unfinished_offer(NodeId(d)), "{d}: offers");
            }
            for f in &sim.hosts[0].flows {
                let d = NodeId(sim.links[f.link as usize].peer);
                assert!(ss.may_serve(d, f.piece), "the server sends {d:?} {}", f.piece);
            }
        } else {
            assert_eq!(sim.hidden, NOBODY, "not super-seeding, nothing is hidden");
        }
        for (x, host) in sim.hosts.iter().enumerate() {
            let x = x as u32;
            if host.gone {
                assert!(!sim.announced.contains(&x), "the tracker still lists {x}");
                assert!(host.flows.is_empty(), "{x} uploads after leaving");
                continue;
            }
            let mut unchoked = 0;
            let mut unchoked_by = 0;
            for g in sim.links_of(x) {
                let l = sim.links[g];
                let p = l.peer;
                assert!(!sim.hosts[p as usize].gone, "{x} still links to {p}, which left");
                assert!(
                    sim.links_of(p).contains(&(l.mirror as usize)),
                    "{x}->{p}: mirror out of row"
                );
                let back = sim.links[l.mirror as usize];
                assert_eq!((back.peer, back.mirror as usize), (x, g), "{x}->{p}: mirror");
                unchoked += u32::from(l.unchoked);
                unchoked_by += usize::from(back.unchoked);
                if back.unchoked {
                    assert!(
                        host.unchoked_by.contains(&(p, l.mirror)),
                        "{p} unchokes {x} unlisted"
                    );
                }
                assert_eq!(
                    l.sending,
                    host.flows.iter().any(|f| f.link as usize == g),
                    "{x}->{p}: sending without a flow or the reverse"
                );
            }
            assert_eq!(host.unchoked, unchoked, "{x}: unchoked count");
            assert_eq!(host.unchoked_by.len(), unchoked_by, "{x}: unchoked_by");
            for piece in (0..sim.pieces).filter(|&p| !sim.has(x, p)) {
                let holders = sim
                    .links_of(x)
                    .filter(|&g| sim.shows(sim.links[g].peer, x, piece))
                    .count();
                assert_eq!(
                    usize::from(sim.avail[x as usize * sim.row + piece as usize]),
                    holders,
                    "{x}: availability of piece {piece}"
                );
            }
        }
    }

    /// Steps `sim` until the hosts' unchoke slots have opened.
    fn open_slots(sim: &mut PieceSim) {
        while sim.now < sim.slots_open || !sim.shut.is_empty() {
            assert_eq!(sim.step(u64::MAX, u64::MAX), None);
        }
    }

    /// Churn step by step: hosts leave (at completion, or after seeding a
    /// while), the swarm stays consistent after every step, the tracker
    /// never names a host that left, and everyone completes.
    #[test]
    fn hosts_leave_cleanly_and_the_tracker_forgets_them() {
        for leave in ["at-completion", "after 100 ms"] {
            let mut sim = churn(leave, 24);
            let mut left = 0;
            let end = loop {
                if let Some(end) = sim.step(u64::MAX, u64::MAX) {
                    break end;
                }
                check_consistent(&sim);
                let gone = sim.hosts.iter().filter(|h| h.gone).count();
                if gone > left {
                    left = gone;
                    for asker in 0..sim.hosts.len() as u32 {
                        let offer = sample(&mut sim.tracker_rng, &sim.announced, asker, true, 50);
                        assert!(
                            offer.iter().all(|&p| !sim.hosts[p as usize].gone),
                            "{leave}: {offer:?}"
                        );
                    }
                }
            };
            assert_eq!(end, Outcome::Complete, "{leave}");
            assert!(left > 0, "{leave}: nobody left");
        }
    }

    /// The server leaving as its slots open, mid-upload: its flows stop, nobody
    /// counts its pieces any more and the tracker forgets it.
    #[test]
    fn a_host_leaving_mid_upload_leaves_nothing_behind() {
        let mut sim = churn("at-completion", 16);
        open_slots(&mut sim);
        assert!(
            !sim.hosts[0].flows.is_empty(),
            "the server uploads from the start"
        );
        sim.leave(0);
        check_consistent(&sim);
        assert!(sim.hosts.iter().all(|h| h.inflight.iter().all(|&(_, u)| u != 0)));
        assert!(sim.hosts[1..].iter().all(|h| h.unchoked_by.is_empty()));
    }

    /// Super-seeding step by step, with and without churn: once its slots
    /// open the server unchokes a full set of neighbours and offers each
    /// [`SUPER_SEED_OFFERS`] pieces, which only they see; the swarm stays
    /// consistent after every step (neighbours see only what they were
    /// offered, the server sends only offered pieces); super-seeding ends
    /// and everyone completes.
    #[test]
    fn a_super_seed_shows_each_neighbour_only_its_offers() {
        for leave in ["stay", "at-completion", "after 100 ms"] {
            let mut sim = swarm(24, &["swarm.super_seed=true", &format!("swarm.leave={leave}")]);
            assert_eq!(sim.hosts[0].unchoked, 0, "{leave}: slots shut at the start");
            open_slots(&mut sim);
            let slots = sim.hosts[0].choker.max_unchoked();
            assert_eq!(sim.hosts[0].unchoked, slots, "{leave}");
            for d in 1..24 {
                let shown = (0..sim.pieces).filter(|&p| sim.shows(0, d, p)).count() as u32;
                let unchoked = sim.server_link(d).is_some_and(|g| sim.links[g as usize].unchoked);
                let want = if unchoked { SUPER_SEED_OFFERS } else { 0 };
                assert_eq!(shown, want, "{leave}: {d} is shown {shown} pieces");
            }
            check_consistent(&sim);
            let mut ended = false;
            let end = loop {
                if let Some(end) = sim.step(u64::MAX, u64::MAX) {
                    break end;
                }
                check_consistent(&sim);
                ended |= sim.hidden == NOBODY;
            };
            assert_eq!(end, Outcome::Complete, "{leave}");
            assert!(ended, "{leave}: super-seeding never ended");
        }
    }

    proptest! {
        /// The indexed heap against a plain model: set, remove and pop in
        /// any order give the earliest (time, sequence) each time, with each
        /// host at most once.
        #[test]
        fn wakes_match_a_plain_model(ops in prop::collection::vec((0u32..8, 0u64..50, 0u8..4), 1..200)) {
            let mut heap = Wakes::new(8);
            let mut model: Vec<Option<(u64, u64)>> = vec![None; 8];
            for (seq, (host, at, op)) in ops.into_iter().enumerate() {
                let seq = seq as u64;
                match op {
                    0 => {
                        heap.remove(host);
                        model[host as usize] = None;
                    }
                    1 => {
                        let want = model
                            .iter()
                            .enumerate()
                            .filter_map(|(h, k)| k.map(|(a, s)| (a, s, h as u32)))
                            .min();
                        prop_assert_eq!(heap.peek(), want);
                        if let Some((_, _, h)) = want {
                            heap.remove(h);
                            model[h as usize] = None;
                        }
                    }
                    _ => {
                        heap.set(host, at, seq);
                        model[host as usize] = Some((at, seq));
                    }
                }
                prop_assert_eq!(heap.heap.len(), model.iter().flatten().count());
            }
        }
    }
}
