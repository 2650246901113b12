//! One in-memory network for protocol tests: it holds any set of nodes,
//! carries their outputs to one another on a logical clock, answers their
//! storage commands, and lets a test hang, kill, restart and cut them.
//!
//! Compiled for the crate's own tests and, with the `testing` feature, for
//! other crates' tests.
//!
//! # The model
//!
//! - **Messages.** A payload message ([`Message::payload_len`] above zero)
//!   first waits for its sender's uplink, which sends payload messages one
//!   after another at [`TestNet::set_rate`] (unlimited by default); control
//!   messages take no bandwidth. Every message then takes the network's
//!   latency, and each direction between two nodes stays FIFO. A message
//!   is delivered only on the connection it was sent on: one closed in the
//!   meantime loses it. A node is told [`Node::handle_sent`] when a payload
//!   message has left its uplink.
//! - **Connections.** A new connection opens at both ends two latencies
//!   after the [`Command::Connect`] (the dialler is told first); a connect
//!   to a node already connected is answered at once. A connect to a dead
//!   or unknown node fails after one latency. A [`Command::Disconnect`]
//!   closes the connection at once for the closing node and one latency
//!   later for the other end, never before that end heard it open.
//! - **Storage.** Each node has a [`Disk`]: every [`Command::StoreBlock`]
//!   is counted there, and a [`Command::VerifyPiece`] is answered at once
//!   with [`StorageResult::Verified`], or with [`StorageResult::Corrupt`]
//!   when a block of the piece came from a node that sends corrupt data
//!   ([`TestNet::send_corrupt`]). A killed node keeps its disk.
//! - **Time.** Inputs are handled in order of time, then in the order they
//!   were scheduled, so a run is deterministic. A node's
//!   [`Node::poll_timeout`] is honoured after every input it handles.
//!
//! # Faults
//!
//! Each can be applied now ([`TestNet::hang`] …) or scheduled
//! ([`TestNet::at`]).
//!
//! - **Hang**: the node reads nothing and runs no timer until it resumes.
//!   Everything for it waits in order (messages queue, they are not
//!   dropped), and connecting to it still succeeds: its kernel accepts.
//!   On resume it handles what waited, in order.
//! - **Kill**: its connections close (the other ends are told after one
//!   latency), inputs for it are dropped and connects to it fail.
//! - **Restart**: a killed (or live: it is killed first) node comes back:
//!   a fresh node from the factory given to [`TestNet::add_restartable`],
//!   built from its disk, or else the same node started again. It is
//!   started at once.
//! - **Cut** a link: the connection stays open, but messages between the
//!   two nodes wait on the link until it is restored (TCP retransmits);
//!   connects across it fail after [`CONNECT_TIMEOUT`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::event::Event;
use crate::message::Message;
use crate::node::{CONNECT_TIMEOUT, Command, ConnectionEvent, Node, NodeId, Output, StorageResult};
use crate::time::Time;

/// Every output `node` has queued, in order.
pub fn outputs(node: &mut dyn Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

/// The peers `outputs` dial ([`Command::Connect`]), in order.
pub fn dialled(outputs: &[Output]) -> Vec<NodeId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Command(Command::Connect { peer }) => Some(*peer),
            _ => None,
        })
        .collect()
}

/// What a node's storage holds; it outlives the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    /// Pieces storage has verified.
    pub verified: BTreeSet<u32>,
    /// Blocks stored, per piece (every [`Command::StoreBlock`], copies
    /// included).
    pub stored: BTreeMap<u32, u32>,
    /// Per stored block (piece, offset), whether it came from a node that
    /// sends corrupt data: a piece holding such a block fails its check.
    bad: BTreeMap<(u32, u32), bool>,
}

impl Disk {
    /// Whether each stored block of `piece` is bad, in offset order.
    fn blocks_of(&self, piece: u32) -> impl Iterator<Item = bool> + '_ {
        self.bad
            .range((piece, 0)..=(piece, u32::MAX))
            .map(|(_, &bad)| bad)
    }
}

/// Builds a node from its disk: the first one (from an empty disk) and each
/// restarted one.
pub type Factory = Box<dyn FnMut(&Disk) -> Box<dyn Node>>;

/// A fault a test applies to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The node stops reading and running timers.
    Hang(NodeId),
    /// A hung node goes on.
    Resume(NodeId),
    /// The node dies: its connections close.
    Kill(NodeId),
    /// The node comes back (see the [module docs](self)).
    Restart(NodeId),
    /// Messages between two nodes wait until the link is restored.
    Cut(NodeId, NodeId),
    /// A cut link carries messages again.
    Restore(NodeId, NodeId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Up,
    Hung,
    Dead,
}

/// An input on its way to a node.
#[derive(Debug)]
enum Input {
    Start,
    Message { from: NodeId, conn: u64, msg: Message },
    Connection { peer: NodeId, event: ConnectionEvent },
    Storage(StorageResult),
    Sent { peer: NodeId, conn: u64 },
    Timer(Time),
}

#[derive(Debug)]
enum Ev {
    /// `input` for incarnation `inc` of `node`; `checked`: it passed the
    /// connection and link checks when it arrived (it waited on a hung node).
    Input {
        node: NodeId,
        inc: u32,
        input: Input,
        checked: bool,
    },
    Fault(Fault),
}

/// Where an input waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    Node(NodeId),
    Link(NodeId, NodeId),
}

struct Slot {
    node: Box<dyn Node>,
    factory: Option<Factory>,
    state: State,
    /// Bumped when the node dies: inputs for an earlier one are dropped.
    inc: u32,
    timer_at: Option<Time>,
    /// Uplink rate in bytes per second; `None`: unlimited.
    rate: Option<f64>,
    up_free: Time,
    uploaded: u64,
    corrupt: bool,
    disk: Disk,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    id: u64,
    /// When both ends hear it opened.
    open_at: Time,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

/// The network (see the [module docs](self)).
pub struct TestNet {
    slots: BTreeMap<NodeId, Slot>,
    latency: Duration,
    now: Time,
    seq: u64,
    queue: BTreeMap<(Time, u64), Ev>,
    conns: BTreeMap<(NodeId, NodeId), Conn>,
    next_conn: u64,
    last_arrival: BTreeMap<(NodeId, NodeId), Time>,
    cut: BTreeSet<(NodeId, NodeId)>,
    parked: Vec<(Hold, Ev)>,
    log: Vec<(Time, NodeId, Output)>,
    completed: BTreeSet<NodeId>,
    steps: u64,
    max_steps: u64,
}

impl fmt::Debug for TestNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestNet")
            .field("now", &self.now)
            .field("nodes", &self.slots.keys().collect::<Vec<_>>())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl TestNet {
    /// An empty network whose messages take `latency`.
    pub fn new(latency: Duration) -> Self {
        TestNet {
            slots: BTreeMap::new(),
            latency,
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            last_arrival: BTreeMap::new(),
            cut: BTreeSet::new(),
            parked: Vec::new(),
            log: Vec::new(),
            completed: BTreeSet::new(),
            steps: 0,
            max_steps: 5_000_000,
        }
    }

    /// Adds `node`, started at the current time (after what is already
    /// scheduled for then). A restart starts it again.
    pub fn add(&mut self, node: Box<dyn Node>) -> NodeId {
        self.insert(node, None)
    }

    /// Adds the node `factory` builds from an empty disk; a restart
    /// replaces it with one the factory builds from its disk.
    pub fn add_restartable(&mut self, mut factory: impl FnMut(&Disk) -> Box<dyn Node> + 'static) -> NodeId {
        let node = factory(&Disk::default());
        self.insert(node, Some(Box::new(factory)))
    }

    fn insert(&mut self, node: Box<dyn Node>, factory: Option<Factory>) -> NodeId {
        let id = node.id();
        let slot = Slot {
            node,
            factory,
            state: State::Up,
            inc: 0,
            timer_at: None,
            rate: None,
            up_free: Time::ZERO,
            uploaded: 0,
            corrupt: false,
            disk: Disk::default(),
        };
        assert!(self.slots.insert(id, slot).is_none(), "{id} added twice");
        self.input(self.now, id, Input::Start);
        id
    }

    /// Limits `node`'s uplink to `bytes_per_sec` for payload messages.
    pub fn set_rate(&mut self, node: NodeId, bytes_per_sec: f64) {
        self.slot(node).rate = Some(bytes_per_sec);
    }

    /// Every block `node` sends from now on is corrupt: a piece holding one
    /// fails its hash check where it is stored.
    pub fn send_corrupt(&mut self, node: NodeId) {
        self.slot(node).corrupt = true;
    }

    /// The most inputs a run may handle before the test fails as runaway.
    pub fn set_max_steps(&mut self, steps: u64) {
        self.max_steps = steps;
    }

    fn slot(&mut self, node: NodeId) -> &mut Slot {
        self.slots
            .get_mut(&node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    // ----- running -------------------------------------------------------

    /// The network's clock.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Schedules `fault` at `at` (after what is already scheduled for then).
    pub fn at(&mut self, at: Time, fault: Fault) {
        self.schedule(at, Ev::Fault(fault));
    }

    /// Handles everything due up to `end`; the clock then reads `end`.
    pub fn run_until(&mut self, end: Time) {
        self.run_while(end, |_| true);
        self.now = self.now.max(end);
    }

    /// Handles inputs in order while `go` holds (it is asked before each)
    /// and they are due by `end`. Returns whether `go` stopped the run.
    pub fn run_while(&mut self, end: Time, mut go: impl FnMut(&TestNet) -> bool) -> bool {
        loop {
            if !go(self) {
                return true;
            }
            let Some(entry) = self.queue.first_entry() else {
                return false;
            };
            if entry.key().0 > end {
                return false;
            }
            let ((at, _), ev) = entry.remove_entry();
            self.now = at;
            self.steps += 1;
            assert!(self.steps < self.max_steps, "runaway run at {}", self.now);
            match ev {
                Ev::Fault(fault) => self.apply(fault),
                Ev::Input {
                    node,
                    inc,
                    input,
                    checked,
                } => self.arrive(node, inc, input, checked),
            }
        }
    }

    /// Runs, up to `end` at the latest, until nothing but timers is in
    /// flight. Returns whether it got quiet.
    pub fn run_until_quiet(&mut self, end: Time) -> bool {
        self.run_while(end, |net| !net.is_quiet())
    }

    /// Whether nothing but timers is in flight: no message, connection
    /// event, storage answer or fault is queued or waiting.
    pub fn is_quiet(&self) -> bool {
        self.parked.is_empty()
            && self.queue.values().all(|ev| {
                matches!(
                    ev,
                    Ev::Input {
                        input: Input::Timer(_),
                        ..
                    }
                )
            })
    }

    // ----- faults --------------------------------------------------------

    /// Applies `fault` now.
    pub fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::Hang(n) => self.hang(n),
            Fault::Resume(n) => self.resume(n),
            Fault::Kill(n) => self.kill(n),
            Fault::Restart(n) => self.restart(n),
            Fault::Cut(a, b) => self.cut(a, b),
            Fault::Restore(a, b) => self.restore(a, b),
        }
    }

    /// `node` stops reading and running timers; inputs for it wait.
    pub fn hang(&mut self, node: NodeId) {
        let slot = self.slot(node);
        if slot.state == State::Up {
            slot.state = State::Hung;
        }
    }

    /// Hung `node` goes on with what waited for it, in order.
    pub fn resume(&mut self, node: NodeId) {
        if self.slot(node).state != State::Hung {
            return;
        }
        self.slot(node).state = State::Up;
        self.release(Hold::Node(node));
        self.slot(node).timer_at = None;
        self.drain(node);
    }

    /// `node` dies: its connections close, inputs for it are dropped.
    pub fn kill(&mut self, node: NodeId) {
        let slot = self.slot(node);
        if slot.state == State::Dead {
            return;
        }
        slot.state = State::Dead;
        slot.inc += 1;
        slot.timer_at = None;
        self.parked.retain(|(hold, _)| *hold != Hold::Node(node));
        let gone: Vec<(NodeId, NodeId)> = self
            .conns
            .keys()
            .copied()
            .filter(|&(a, b)| a == node || b == node)
            .collect();
        for key in gone {
            let peer = if key.0 == node { key.1 } else { key.0 };
            if let Some(conn) = self.conns.remove(&key) {
                let at = (self.now + self.latency).max(conn.open_at);
                self.connection(at, peer, node, ConnectionEvent::Closed);
            }
        }
    }

    /// `node` comes back, killed first if it is not dead: a fresh node
    /// from its factory and disk, or the same node started again.
    pub fn restart(&mut self, node: NodeId) {
        self.kill(node);
        let slot = self.slot(node);
        if let Some(factory) = slot.factory.as_mut() {
            slot.node = factory(&slot.disk);
            assert_eq!(slot.node.id(), node, "the factory built another node");
        }
        slot.state = State::Up;
        self.deliver(node, Input::Start);
    }

    /// Messages between `a` and `b` wait on the link until it is restored.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert(pair(a, b));
    }

    /// The link between `a` and `b` carries what waited on it, in order.
    pub fn restore(&mut self, a: NodeId, b: NodeId) {
        if self.cut.remove(&pair(a, b)) {
            let (a, b) = pair(a, b);
            self.release(Hold::Link(a, b));
        }
    }

    /// Schedules now, in order, every input held by `hold`.
    fn release(&mut self, hold: Hold) {
        let parked = std::mem::take(&mut self.parked);
        for (h, ev) in parked {
            if h == hold {
                self.schedule(self.now, ev);
            } else {
                self.parked.push((h, ev));
            }
        }
    }

    // ----- what happened -------------------------------------------------

    /// Every output of every node, with when and who, in order.
    pub fn log(&self) -> &[(Time, NodeId, Output)] {
        &self.log
    }

    /// The outputs of `node` (all its incarnations), in order.
    pub fn outputs_of(&self, node: NodeId) -> impl Iterator<Item = (Time, &Output)> + '_ {
        self.log
            .iter()
            .filter(move |(_, n, _)| *n == node)
            .map(|(t, _, o)| (*t, o))
    }

    /// The events of `node` (all its incarnations), in order.
    pub fn events_of(&self, node: NodeId) -> impl Iterator<Item = (Time, &Event)> + '_ {
        self.outputs_of(node).filter_map(|(t, o)| match o {
            Output::Event(e) => Some((t, e)),
            _ => None,
        })
    }

    /// Every event, with when and who, in order.
    pub fn events(&self) -> impl Iterator<Item = (Time, NodeId, &Event)> + '_ {
        self.log.iter().filter_map(|(t, n, o)| match o {
            Output::Event(e) => Some((*t, *n, e)),
            _ => None,
        })
    }

    /// When `node` first reported an event `f` accepts.
    pub fn first(&self, node: NodeId, f: impl Fn(&Event) -> bool) -> Option<Time> {
        self.events_of(node).find(|(_, e)| f(e)).map(|(t, _)| t)
    }

    /// When `node` last reported an event `f` accepts.
    pub fn last(&self, node: NodeId, f: impl Fn(&Event) -> bool) -> Option<Time> {
        self.events_of(node).filter(|(_, e)| f(e)).map(|(t, _)| t).last()
    }

    /// The nodes that reported [`Event::DownloadComplete`] (cheap enough
    /// to ask before every input).
    pub fn completed(&self) -> &BTreeSet<NodeId> {
        &self.completed
    }

    /// `node`'s storage.
    pub fn disk(&self, node: NodeId) -> &Disk {
        &self.slots[&node].disk
    }

    /// Payload bytes `node` sent on open connections.
    pub fn uploaded(&self, node: NodeId) -> u64 {
        self.slots[&node].uploaded
    }

    /// Whether a connection between `a` and `b` is open (or opening).
    pub fn is_connected(&self, a: NodeId, b: NodeId) -> bool {
        self.conns.contains_key(&pair(a, b))
    }

    /// Whether `node` is dead (killed and not restarted).
    pub fn is_dead(&self, node: NodeId) -> bool {
        self.slots[&node].state == State::Dead
    }

    // ----- the machinery -------------------------------------------------

    fn schedule(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn input(&mut self, at: Time, node: NodeId, input: Input) {
        let inc = self.slots.get(&node).map_or(0, |s| s.inc);
        let ev = Ev::Input {
            node,
            inc,
            input,
            checked: false,
        };
        self.schedule(at, ev);
    }

    fn connection(&mut self, at: Time, node: NodeId, peer: NodeId, event: ConnectionEvent) {
        self.input(at, node, Input::Connection { peer, event });
    }

    fn conn_id(&self, a: NodeId, b: NodeId) -> Option<u64> {
        self.conns.get(&pair(a, b)).map(|c| c.id)
    }

    /// An input reaches `node`: dropped, held, or handled.
    fn arrive(&mut self, node: NodeId, inc: u32, input: Input, checked: bool) {
        let Some(slot) = self.slots.get(&node) else {
            return;
        };
        if slot.inc != inc || slot.state == State::Dead {
            return;
        }
        let state = slot.state;
        if !checked {
            match input {
                Input::Message { from, conn, .. } => {
                    if self.conn_id(node, from) != Some(conn) {
                        return; // lost with its connection
                    }
                    if self.cut.contains(&pair(node, from)) {
                        let (a, b) = pair(node, from);
                        let ev = Ev::Input {
                            node,
                            inc,
                            input,
                            checked: false,
                        };
                        self.parked.push((Hold::Link(a, b), ev));
                        return;
                    }
                }
                Input::Sent { peer, conn } if self.conn_id(node, peer) != Some(conn) => return,
                _ => {}
            }
        }
        if state == State::Hung {
            let ev = Ev::Input {
                node,
                inc,
                input,
                checked: true,
            };
            self.parked.push((Hold::Node(node), ev));
            return;
        }
        self.deliver(node, input);
    }

    fn deliver(&mut self, id: NodeId, input: Input) {
        let now = self.now;
        let slot = self.slot(id);
        let node = &mut slot.node;
        match input {
            Input::Start => node.handle_start(now),
            Input::Message { from, msg, .. } => node.handle_message(from, msg, now),
            Input::Connection { peer, event } => node.handle_connection(peer, event, now),
            Input::Storage(result) => node.handle_storage(result, now),
            Input::Sent { peer, .. } => node.handle_sent(peer, now),
            Input::Timer(at) => {
                if slot.timer_at != Some(at) {
                    return;
                }
                slot.timer_at = None;
                node.handle_timeout(now);
            }
        }
        self.drain(id);
    }

    /// Carries out every output `n` has queued, then arms its timer.
    fn drain(&mut self, n: NodeId) {
        let now = self.now;
        while let Some(out) = self.slot(n).node.poll_output() {
            self.log.push((now, n, out.clone()));
            match out {
                Output::Transmit(t) => self.transmit(n, t.to, t.msg),
                Output::Command(Command::Connect { peer }) => self.connect(n, peer),
                Output::Command(Command::Disconnect { peer }) => {
                    if let Some(conn) = self.conns.remove(&pair(n, peer)) {
                        self.connection(now.max(conn.open_at), n, peer, ConnectionEvent::Closed);
                        let later = (now + self.latency).max(conn.open_at);
                        self.connection(later, peer, n, ConnectionEvent::Closed);
                    }
                }
                Output::Command(Command::StoreBlock { from, block }) => {
                    let corrupt = self.slots.get(&from).is_some_and(|s| s.corrupt);
                    let disk = &mut self.slot(n).disk;
                    *disk.stored.entry(block.piece).or_default() += 1;
                    disk.bad.insert((block.piece, block.offset), corrupt);
                }
                Output::Command(Command::VerifyPiece { piece }) => {
                    let disk = &mut self.slot(n).disk;
                    let result = if disk.blocks_of(piece).any(|bad| bad) {
                        StorageResult::Corrupt { piece }
                    } else {
                        disk.verified.insert(piece);
                        StorageResult::Verified { piece }
                    };
                    self.input(now, n, Input::Storage(result));
                }
                // A block's digest: 1 for a corrupt sender's bytes, 0 for
                // the file's own.
                Output::Command(Command::DigestBlocks { piece }) => {
                    let digests = self.slot(n).disk.blocks_of(piece).map(u64::from).collect();
                    self.input(now, n, Input::Storage(StorageResult::Digests { piece, digests }));
                }
                Output::Event(Event::DownloadComplete) => {
                    self.completed.insert(n);
                }
                Output::Event(_) => {}
            }
        }
        let next = self.slot(n).node.poll_timeout();
        if next != self.slot(n).timer_at {
            self.slot(n).timer_at = next;
            if let Some(at) = next {
                self.input(at.max(now), n, Input::Timer(at));
            }
        }
    }

    fn transmit(&mut self, n: NodeId, to: NodeId, msg: Message) {
        let Some(conn) = self.conn_id(n, to) else {
            return; // no connection: nowhere to send
        };
        let now = self.now;
        let payload = msg.payload_len();
        let slot = self.slot(n);
        let sent = match slot.rate {
            Some(rate) if payload > 0 => {
                let start = slot.up_free.max(now);
                let done = start + Duration::from_secs_f64(msg.wire_len() as f64 / rate);
                slot.up_free = done;
                done
            }
            _ => now,
        };
        slot.uploaded += payload;
        let last = self.last_arrival.get(&(n, to)).copied().unwrap_or(Time::ZERO);
        let arrival = (sent + self.latency).max(last);
        self.last_arrival.insert((n, to), arrival);
        self.input(arrival, to, Input::Message { from: n, conn, msg });
        if payload > 0 {
            self.input(sent, n, Input::Sent { peer: to, conn });
        }
    }

    fn connect(&mut self, n: NodeId, peer: NodeId) {
        let now = self.now;
        let alive = self.slots.get(&peer).is_some_and(|s| s.state != State::Dead);
        if !alive {
            self.connection(now + self.latency, n, peer, ConnectionEvent::Failed);
        } else if let Some(conn) = self.conns.get(&pair(n, peer)).copied() {
            self.connection(now.max(conn.open_at), n, peer, ConnectionEvent::Opened);
        } else if self.cut.contains(&pair(n, peer)) {
            self.connection(now + CONNECT_TIMEOUT, n, peer, ConnectionEvent::Failed);
        } else {
            let open_at = now + 2 * self.latency;
            self.next_conn += 1;
            let conn = Conn {
                id: self.next_conn,
                open_at,
            };
            self.conns.insert(pair(n, peer), conn);
            self.connection(open_at, n, peer, ConnectionEvent::Opened);
            self.connection(open_at, peer, n, ConnectionEvent::Opened);
        }
    }
}
