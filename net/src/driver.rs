//! The tokio driver: runs any core [`Node`] over real TCP sockets and a real
//! file, with the semantics the simulator gives it (`sim/src/engine/`).
//! No protocol decision is made here: the driver moves bytes, opens and
//! closes connections, and answers storage commands.
//!
//! # The loop
//!
//! [`run_node`] calls [`Node::handle_start`], then repeats:
//!
//! 1. drain [`Node::poll_output`] in order, carrying out each output:
//!    - [`Output::Transmit`]: queue the message on the peer's connection (a
//!      message to a peer without an open connection is dropped, as in the
//!      simulator). The connection's writer encodes it; a
//!      [`Message::Block`] or [`Message::Push`] payload is read from storage
//!      just before it is sent, and only verified pieces can be read, so a
//!      node never serves unverified data;
//!    - [`Command::Connect`]: dial the peer's address from the address book
//!      ([`NodeIo::peers`]), bounded by [`NodeIo::connect_timeout`];
//!      answered by [`ConnectionEvent::Opened`] or [`ConnectionEvent::Failed`]
//!      (at once when the connection is already open, or the peer is unknown
//!      or the node itself);
//!    - [`Command::Disconnect`]: the node hears [`ConnectionEvent::Closed`]
//!      at once; the messages already queued are still sent, then the socket
//!      closes;
//!    - [`Command::StoreBlock`]: write the payload of the block or push just
//!      handed to [`Node::handle_message`]; a payload the node does not
//!      claim during that drain is dropped;
//!    - [`Command::VerifyPiece`]: hash-check the piece on disk, answered by
//!      [`StorageResult::Verified`] or [`StorageResult::Corrupt`];
//!    - [`Command::DigestBlocks`]: digest each block of the piece on disk,
//!      answered by [`StorageResult::Digests`];
//!    - [`Output::Event`]: send `(now, node, event)` to the events channel;
//! 2. wait for the first of: a frame, a connection change or a "payload
//!    written" report ([`Node::handle_sent`]) from a connection task, a
//!    storage result, the node's [`Node::poll_timeout`] deadline
//!    (then [`Node::handle_timeout`]), or the shutdown future.
//!
//! With [`NodeIo::http_tracker`], the connection to that node and the
//! announces sent on it go over HTTP instead ([`crate::tracker_http`]),
//! with the same connection events.
//!
//! Storage commands run in order on one storage thread, so a piece is
//! verified only after all its blocks are written; a failed write (disk
//! full, unwritable) answers [`StorageResult::WriteFailed`], and the
//! piece's pending verification is skipped.
//!
//! # Connections
//!
//! Each side of a connection sends a BEP 3 handshake whose peer id carries
//! its [`NodeId`] ([`conn::peer_id`]); a peer naming another info hash, a
//! peer id that is not peerlab's or a node missing from the address book is
//! refused and logged (`tracing::warn`). Frames are decoded under
//! [`NodeIo::limits`]; a malformed frame closes that connection only, with
//! its reason logged, and the node hears [`ConnectionEvent::Closed`].
//!
//! **One connection per pair.** The node sees at most one connection per
//! peer. When both sides dial each other, the connection dialed by the
//! lower [`NodeId`] is kept, and neither node hears of the other one:
//!
//! - the lower side holds the higher side's incoming connection unanswered
//!   while its own dial is under way or open, and uses the held one only if
//!   its own fails or closes (a held connection whose dialer gives up ends
//!   by itself);
//! - the higher side accepts the lower side's dial and abandons its own.
//!
//! Any other new connection from a peer that already has an open one is
//! held unanswered while the old one is probed with a keep-alive: the peer
//! dials only when it holds no connection, so if the peer is genuine the old
//! one is dead on its side (it restarted, or closed and came back before
//! the close reached this node), its kernel answers the probe with a reset,
//! and the held connection replaces it (the node hears `Closed`, then
//! `Opened`). If the old one is still alive after [`PROBE_WAIT`], the new
//! one is an impostor using a live peer's id and is refused. A connection
//! is that peer's only if it comes from the peer's address in the address
//! book (any port): a peer id used from another address is refused at once.
//!
//! **Backpressure.** Each connection's writer has a queue of
//! [`NodeIo::queue_limit`] messages. Queued blocks are only references —
//! their payload is read from disk when it is sent — so a full queue costs
//! a few hundred KiB at most. The loop never waits for a writer: when a
//! peer's queue is full, the peer has stopped reading for that long while
//! still asking for more, and the connection is closed (logged; the node
//! hears `Closed`). The other direction: connection tasks hand frames to
//! the loop through one bounded channel, and a reader waits for room before
//! reading more from its socket, so a node busy with its disk slows its
//! senders down through TCP flow control rather than buffering.
//!
//! **Limits.** At most [`NodeIo::max_half_open`] incoming connections may
//! be in their handshake at once and [`NodeIo::max_connections`] open in
//! all; past either, an incoming connection is closed unread, so a flood of
//! half-sent handshakes costs a bounded number of read buffers. One address
//! may hold at most [`NodeIo::max_half_open_per_address`] of them, plus one
//! per node the address book places there (every node of a loopback run
//! shares 127.0.0.1): a new connection past that closes the address's
//! oldest one still in its handshake. So a flooding host takes a few
//! handshake slots, never all of them, and its own node still gets through
//! (an honest handshake takes a round trip, a flood slot is taken back at
//! the flooder's next connection). After the handshake, a connection that
//! brings nothing for [`NodeIo::idle_timeout`] is closed, and each side
//! sends a keep-alive when it has sent nothing for half of it (BEP 3), so
//! only a dead or hung peer's connection goes idle.
//!
//! # Shutdown
//!
//! When `shutdown` completes, or the future of [`run_node`] is dropped (its
//! task aborted: a kill), every connection is dropped at once, as when the
//! process dies. Storage keeps what it verified (see [`crate::storage`]);
//! a new driver with [`Storage::open`] on the same directory resumes.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use peerlab_core::{
    Bitfield, BlockRef, Command, ConnectionEvent, Event, Message, Node, NodeId, Output, StorageResult, Time,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use crate::conn::{self, ConnCtx, ConnId, Decision, Direction, Outgoing, Report};
use crate::metainfo_file;
use crate::storage::Storage;
use crate::tracker_http::client::{Delivery, HttpTracker};
use crate::wire::Limits;

/// The default [`NodeIo::connect_timeout`] (the simulator models this one).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = peerlab_core::node::CONNECT_TIMEOUT;

/// The default [`NodeIo::queue_limit`]: far more than any protocol keeps
/// outstanding (a client pipelines 64 requests).
pub const DEFAULT_QUEUE_LIMIT: usize = 4096;

/// The default [`NodeIo::max_half_open`]: connections that peers opened and
/// have not finished their handshake (each holds a read buffer until it
/// does, or for up to the handshake timeout).
pub const DEFAULT_MAX_HALF_OPEN: usize = 256;

/// The default [`NodeIo::max_half_open_per_address`]: more than any peer
/// dials at once, a small share of [`DEFAULT_MAX_HALF_OPEN`].
pub const DEFAULT_MAX_HALF_OPEN_PER_ADDRESS: usize = 8;

/// The default [`NodeIo::idle_timeout`]: BEP 3's two minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The default [`NodeIo::max_connections`]: far above any swarm's
/// `max_peers`, far below what exhausts memory or descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;

/// How long a second connection from a peer with a live one is held while
/// the old one is probed ([`Outgoing::Probe`]): many round trips, even on a
/// loaded machine.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Flood connections held open to each target, the newest; older ones are
/// dropped (a victim closes them anyway).
const FLOOD_HOLD: usize = 64;

/// How often a node that does not flood looks whether it should.
const FLOOD_POLL: Duration = Duration::from_millis(100);

/// Reports from connection tasks the loop may lag behind by.
const REPORT_QUEUE: usize = 256;

/// Storage commands the loop may be ahead of the storage thread by; each
/// write holds one block's payload.
const STORAGE_QUEUE: usize = 64;

/// Everything a node needs from the outside world, besides its protocol
/// state machine.
#[derive(Debug)]
pub struct NodeIo {
    /// Where peers connect to this node (bind port 0 in tests).
    pub listener: TcpListener,
    /// The address book: where to dial each node, and the nodes accepted as
    /// peers. A node missing from it can neither be dialed nor connect.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// This node's copy of the file.
    pub storage: Storage,
    /// The file's info hash ([`metainfo_file::info_hash`]), sent and
    /// checked in every handshake.
    pub info_hash: [u8; 20],
    /// Bounds on frames read from peers.
    pub limits: Limits,
    /// The origin of the node's clock (`now` is the time elapsed since).
    /// Give every node of a run the same one so their event times compare.
    pub epoch: Instant,
    /// Bound on a dial and its handshake.
    pub connect_timeout: Duration,
    /// Messages a connection's writer may have queued before the
    /// connection is closed (see the [module docs](self)).
    pub queue_limit: usize,
    /// The swarm tracker this node reaches over HTTP (BEP 3 announce)
    /// rather than the peer wire: its connection and messages go through
    /// [`crate::tracker_http::client`]. `None` (the default): every node is
    /// a peer-wire peer.
    pub http_tracker: Option<NodeId>,
    /// Most connections peers opened that have not finished their
    /// handshake; more are closed at once (a flood of half-sent handshakes
    /// costs at most this many read buffers).
    pub max_half_open: usize,
    /// Most connections in their handshake from one address, on top of one
    /// per node of the address book at that address; a new one past it
    /// closes the address's oldest.
    pub max_half_open_per_address: usize,
    /// Most connections at once, either way; more incoming ones are closed
    /// at once.
    pub max_connections: usize,
    /// A connection that brings nothing for this long after its handshake
    /// is closed; a keep-alive goes out after half of it without sending.
    pub idle_timeout: Duration,
}

impl NodeIo {
    /// The I/O of a node serving or downloading `storage`'s file: the info
    /// hash and limits come from its metainfo, the clock starts now, and the
    /// timeouts and bounds are the defaults.
    pub fn new(listener: TcpListener, peers: BTreeMap<NodeId, SocketAddr>, storage: Storage) -> Self {
        NodeIo {
            listener,
            peers,
            info_hash: metainfo_file::info_hash(storage.metainfo()),
            limits: Limits::new(storage.layout().pieces()),
            storage,
            epoch: Instant::now(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            http_tracker: None,
            max_half_open: DEFAULT_MAX_HALF_OPEN,
            max_half_open_per_address: DEFAULT_MAX_HALF_OPEN_PER_ADDRESS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why a driver stopped before its shutdown signal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The storage thread could not be started.
    #[error("cannot start the storage thread: {0}")]
    StorageThread(std::io::Error),
    /// The storage thread died (it panicked); nothing more can be stored.
    #[error("the storage thread of node {node} died; restart the node to resume from its verified pieces")]
    StorageDied {
        /// The node.
        node: NodeId,
    },
}

/// Runs `node` over real sockets and storage until `shutdown` completes.
/// Every event the node reports is sent to `events` with the time and the
/// node's id. See the [module docs](self) for what the driver does.
pub async fn run_node(
    node: Box<dyn Node + Send>,
    io: NodeIo,
    events: mpsc::UnboundedSender<(Time, NodeId, Event)>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let span = tracing::info_span!("node", id = node.id().0);
    Driver::new(node, io, events)?
        .run(shutdown)
        .instrument(span)
        .await
}

/// An input for the node that an output produced; fed after the drain.
#[derive(Debug)]
struct Input {
    peer: NodeId,
    event: ConnectionEvent,
}

/// The connection the node knows with a peer.
#[derive(Debug)]
struct Open {
    conn: ConnId,
    /// Its writer's queue.
    queue: mpsc::Sender<Outgoing>,
    /// Whether this node dialed it.
    dialed: bool,
}

/// The connections this node has with one peer.
#[derive(Debug, Default)]
struct Links {
    /// The connection the node knows.
    open: Option<Open>,
    /// This node's dial, not yet through its handshake.
    dialing: Option<ConnId>,
    /// The peer's dial, held unanswered while this node's own connection
    /// (dialing or open) is preferred; used if that one fails or closes.
    /// Only when this node has the lower id.
    held: Option<(ConnId, oneshot::Sender<Decision>)>,
}

/// A storage command for the storage thread.
#[derive(Debug)]
enum Job {
    Write { block: BlockRef, payload: Vec<u8> },
    Verify { piece: u32 },
    Digest { piece: u32 },
}

struct Driver {
    me: NodeId,
    node: Box<dyn Node + Send>,
    epoch: Instant,
    book: BTreeMap<NodeId, SocketAddr>,
    ctx: Arc<ConnCtx>,
    listener: Option<TcpListener>,
    queue_limit: usize,
    max_half_open: usize,
    /// The most connections in their handshake from one address.
    per_address: AddressLimits,
    max_connections: usize,
    /// Incoming connections closed for the limits, for the log.
    refused: u64,
    reports: mpsc::Receiver<Report>,
    tasks: JoinSet<()>,
    /// Every connection task alive, and its peer once known.
    conns: BTreeMap<ConnId, (AbortHandle, Option<NodeId>)>,
    /// Where each connection a peer dialed comes from, until its handshake.
    inbound_from: BTreeMap<ConnId, std::net::IpAddr>,
    next_conn: ConnId,
    links: BTreeMap<NodeId, Links>,
    inputs: VecDeque<Input>,
    /// The payload of the block or push being handled, until the drain
    /// after it.
    payload: Option<(NodeId, BlockRef, Vec<u8>)>,
    jobs: mpsc::Sender<Job>,
    results: mpsc::UnboundedReceiver<StorageResult>,
    events: mpsc::UnboundedSender<(Time, NodeId, Event)>,
    /// The link to an HTTP tracker ([`NodeIo::http_tracker`]).
    http: Option<HttpTracker>,
    /// The pieces the node has verified (it starts with storage's), for
    /// [`crate::misbehave::passes_request`] when lying.
    have: Bitfield,
}

impl Driver {
    fn new(
        node: Box<dyn Node + Send>,
        io: NodeIo,
        events: mpsc::UnboundedSender<(Time, NodeId, Event)>,
    ) -> Result<Self, DriverError> {
        let me = node.id();
        let have = io.storage.verified().clone();
        let storage = Arc::new(RwLock::new(io.storage));
        let (jobs, job_rx) = mpsc::channel(STORAGE_QUEUE);
        let (result_tx, results) = mpsc::unbounded_channel();
        let worker_storage = Arc::clone(&storage);
        std::thread::Builder::new()
            .name(format!("peerlab-storage-{}", me.0))
            .spawn(move || storage_thread(&worker_storage, job_rx, &result_tx))
            .map_err(DriverError::StorageThread)?;
        let (report_tx, reports) = mpsc::channel(REPORT_QUEUE);
        let per_address = AddressLimits::new(&io.peers, io.max_half_open_per_address);
        let http = io.http_tracker.and_then(|tracker| {
            let port = io.peers.get(&me).map(SocketAddr::port);
            let port = port.or_else(|| io.listener.local_addr().ok().map(|a| a.port()))?;
            HttpTracker::new(me, port, tracker, &io.peers, io.info_hash, io.connect_timeout)
        });
        Ok(Driver {
            me,
            node,
            epoch: io.epoch,
            book: io.peers,
            ctx: Arc::new(ConnCtx {
                me,
                info_hash: io.info_hash,
                limits: io.limits,
                storage,
                reports: report_tx,
                handshake_timeout: io.connect_timeout,
                idle_timeout: io.idle_timeout.max(Duration::from_millis(2)),
            }),
            listener: Some(io.listener),
            queue_limit: io.queue_limit.max(1),
            max_half_open: io.max_half_open.max(1),
            per_address,
            max_connections: io.max_connections.max(1),
            refused: 0,
            reports,
            tasks: JoinSet::new(),
            conns: BTreeMap::new(),
            inbound_from: BTreeMap::new(),
            next_conn: 0,
            links: BTreeMap::new(),
            inputs: VecDeque::new(),
            payload: None,
            jobs,
            results,
            events,
            http,
            have,
        })
    }

    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DriverError> {
        if let Some(listener) = self.listener.take() {
            let reports = self.ctx.reports.clone();
            self.tasks.spawn(accept_loop(listener, reports).in_current_span());
        }
        let others = self
            .book
            .iter()
            .filter(|(id, _)| **id != self.me)
            .map(|(_, a)| *a);
        self.tasks.spawn(flood_loop(others.collect()).in_current_span());
        let now = self.now();
        self.node.handle_start(now);
        self.settle().await;
        tokio::pin!(shutdown);
        loop {
            let deadline = self.node.poll_timeout();
            let wake = deadline.map(|t| self.epoch + Duration::from_nanos(t.as_nanos()));
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                Some(report) = self.reports.recv() => self.on_report(report).await,
                result = self.results.recv() => {
                    let Some(result) = result else {
                        return Err(DriverError::StorageDied { node: self.me });
                    };
                    let now = self.now();
                    self.node.handle_storage(result, now);
                    self.settle().await;
                }
                () = sleep_until(wake), if wake.is_some() => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                    self.settle().await;
                }
                report = recv_http(&mut self.http) => {
                    let delivery = self.http.as_mut().and_then(|h| h.on_report(report));
                    self.deliver_http(delivery).await;
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match joined {
                        Err(e) if e.is_panic() => tracing::error!("a connection task panicked: {e}"),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Carries out every output, then feeds the node the inputs they
    /// produced, until nothing is left.
    async fn settle(&mut self) {
        loop {
            self.drain().await;
            let Some(Input { peer, event }) = self.inputs.pop_front() else {
                return;
            };
            let now = self.now();
            self.node.handle_connection(peer, event, now);
        }
    }

    async fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Transmit(t) => self.transmit(t.to, t.msg),
                Output::Command(c) => self.command(c).await,
                Output::Event(e) => {
                    if let Event::PieceVerified { piece } = e {
                        self.have.insert(piece);
                    }
                    let _ = self.events.send((self.now(), self.me, e));
                }
            }
        }
        if let Some((from, block, _)) = self.payload.take() {
            tracing::trace!(%from, ?block, "payload not claimed, dropped");
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Connect { peer } => self.connect(peer),
            Command::Disconnect { peer } => self.disconnect(peer),
            Command::StoreBlock { from, block } => match self.payload.take() {
                Some((f, b, payload)) if f == from && b == block => {
                    self.storage(Job::Write { block, payload }).await;
                }
                other => {
                    self.payload = other;
                    tracing::warn!(%from, ?block, "StoreBlock for a block not being handled: nothing to store");
                }
            },
            Command::VerifyPiece { piece } => self.storage(Job::Verify { piece }).await,
            Command::DigestBlocks { piece } => self.storage(Job::Digest { piece }).await,
            other => tracing::warn!(?other, "command not supported by the tokio driver"),
        }
    }

    async fn storage(&mut self, job: Job) {
        // Waits only for the storage thread, which never waits for the loop.
        if self.jobs.send(job).await.is_err() {
            tracing::error!("storage thread is gone; the command is lost");
        }
    }

    fn transmit(&mut self, to: NodeId, msg: Message) {
        if let Some(h) = self.http.as_mut().filter(|h| h.tracker() == to) {
            let event = h.transmit(msg);
            self.inputs.extend(event.map(|event| Input { peer: to, event }));
            return;
        }
        let Some(open) = self.links.get(&to).and_then(|l| l.open.as_ref()) else {
            tracing::debug!(%to, ?msg, "message to a peer without a connection dropped");
            return;
        };
        let conn = open.conn;
        let msg = crate::misbehave::outgoing(msg);
        match open.queue.try_send(Outgoing::Message(msg)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    peer = %to,
                    "closing connection: the peer has not read its last {} messages",
                    self.queue_limit
                );
                self.abort(conn);
                self.lose(to, conn);
            }
            // The task ended; its Closed report is on its way.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn connect(&mut self, peer: NodeId) {
        if let Some(h) = self.http.as_mut().filter(|h| h.tracker() == peer) {
            let event = h.connect(&mut self.tasks);
            self.inputs.extend(event.map(|event| Input { peer, event }));
            return;
        }
        let Some(&addr) = self.book.get(&peer).filter(|_| peer != self.me) else {
            tracing::warn!(%peer, "cannot connect: not in the address book");
            self.inputs.push_back(Input {
                peer,
                event: ConnectionEvent::Failed,
            });
            return;
        };
        let links = self.links.entry(peer).or_default();
        if links.open.is_some() {
            self.inputs.push_back(Input {
                peer,
                event: ConnectionEvent::Opened,
            });
            return;
        }
        if links.dialing.is_some() {
            return; // answered when the dial settles
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        links.dialing = Some(conn);
        let task = conn::dial(Arc::clone(&self.ctx), conn, peer, addr);
        let span = tracing::debug_span!("conn", conn, %peer, dir = "out");
        let abort = self.tasks.spawn(task.instrument(span));
        self.conns.insert(conn, (abort, Some(peer)));
    }

    fn disconnect(&mut self, peer: NodeId) {
        if let Some(h) = self.http.as_mut().filter(|h| h.tracker() == peer) {
            let event = h.disconnect();
            self.inputs.extend(event.map(|event| Input { peer, event }));
            return;
        }
        let Some(links) = self.links.get_mut(&peer) else {
            return;
        };
        if let Some((_, held)) = links.held.take() {
            let _ = held.send(Decision::Reject);
        }
        let doomed = if let Some(open) = links.open.take() {
            // The writer sends what is queued, then closes. A full queue:
            // the peer is not reading; drop the socket.
            open.queue.try_send(Outgoing::Close).is_err().then_some(open.conn)
        } else if let Some(conn) = links.dialing.take() {
            Some(conn)
        } else {
            return;
        };
        if let Some(conn) = doomed {
            self.abort(conn);
        }
        self.inputs.push_back(Input {
            peer,
            event: ConnectionEvent::Closed,
        });
    }

    /// Hands the node what the HTTP tracker link reported.
    async fn deliver_http(&mut self, delivery: Option<Delivery>) {
        let Some(tracker) = self.http.as_ref().map(HttpTracker::tracker) else {
            return;
        };
        match delivery {
            None => return,
            Some(Delivery::Connection(event)) => self.inputs.push_back(Input { peer: tracker, event }),
            Some(Delivery::Message(msg)) => {
                let now = self.now();
                self.node.handle_message(tracker, msg, now);
            }
        }
        self.settle().await;
    }

    fn abort(&mut self, conn: ConnId) {
        self.inbound_from.remove(&conn);
        if let Some((abort, _)) = self.conns.remove(&conn) {
            abort.abort();
        }
    }

    /// The open connection `conn` to `peer` is gone: the node hears
    /// `Closed`, and `Opened` again if a held connection takes over.
    fn lose(&mut self, peer: NodeId, conn: ConnId) {
        let links = self.links.entry(peer).or_default();
        if links.open.as_ref().is_some_and(|o| o.conn == conn) {
            links.open = None;
            let held = links.held.take();
            self.inputs.push_back(Input {
                peer,
                event: ConnectionEvent::Closed,
            });
            if let Some((held, decide)) = held {
                self.open(peer, held, false, decide);
            }
        }
    }

    /// Makes `conn` the connection to `peer` the node knows.
    fn open(&mut self, peer: NodeId, conn: ConnId, dialed: bool, decide: oneshot::Sender<Decision>) {
        let (queue, rx) = mpsc::channel(self.queue_limit);
        // If the task is gone, its Closed report follows and undoes this.
        let _ = decide.send(Decision::Accept(rx));
        self.links.entry(peer).or_default().open = Some(Open { conn, queue, dialed });
        self.inputs.push_back(Input {
            peer,
            event: ConnectionEvent::Opened,
        });
    }

    async fn on_report(&mut self, report: Report) {
        match report {
            Report::Accepted { stream, addr } => {
                if self.inbound_from.len() >= self.max_half_open || self.conns.len() >= self.max_connections {
                    // Closed unread: a flood costs nothing past the limits.
                    if self.refused % 1000 == 0 {
                        tracing::warn!(
                            %addr,
                            half_open = self.inbound_from.len(),
                            open = self.conns.len(),
                            refused = self.refused + 1,
                            "closing incoming connections: too many open or still in their handshake"
                        );
                    }
                    self.refused += 1;
                    drop(stream);
                    return;
                }
                self.evict_oldest_from(addr.ip());
                let conn = self.next_conn;
                self.next_conn += 1;
                let task = conn::run(Arc::clone(&self.ctx), conn, stream, Direction::Inbound);
                let span = tracing::debug_span!("conn", conn, %addr, dir = "in");
                let abort = self.tasks.spawn(task.instrument(span));
                self.conns.insert(conn, (abort, None));
                self.inbound_from.insert(conn, addr.ip());
            }
            Report::Handshaked {
                conn,
                peer,
                direction,
                decide,
            } => {
                self.on_handshake(conn, peer, direction, decide);
                self.settle().await;
            }
            Report::Frame { conn, msg, payload } => {
                let Some(peer) = self.open_peer(conn) else {
                    return;
                };
                if let (Some(payload), Message::Block(block) | Message::Push(block)) = (payload, &msg) {
                    self.payload = Some((peer, *block, payload));
                }
                // A silent or lying node never hears the requests it will
                // not answer.
                if let Message::Request(block) = &msg
                    && !crate::misbehave::passes_request(|| self.have.contains(block.piece))
                {
                    tracing::debug!(%peer, ?block, "request dropped: misbehaving");
                    return;
                }
                let now = self.now();
                self.node.handle_message(peer, msg, now);
                self.settle().await;
            }
            Report::Sent { conn, count } => {
                let Some(peer) = self.open_peer(conn) else {
                    return;
                };
                for _ in 0..count {
                    let now = self.now();
                    self.node.handle_sent(peer, now);
                }
                self.settle().await;
            }
            Report::ProbeOver { peer, conn } => {
                let links = self.links.entry(peer).or_default();
                if links.open.is_some() && links.held.as_ref().is_some_and(|(c, _)| *c == conn) {
                    tracing::warn!(%peer, "closing connection: its peer id is in use by a live connection");
                    if let Some((_, held)) = links.held.take() {
                        let _ = held.send(Decision::Reject);
                    }
                }
            }
            Report::Closed { conn, reason } => {
                self.inbound_from.remove(&conn);
                let Some((_, peer)) = self.conns.remove(&conn) else {
                    return; // aborted or detached by the loop
                };
                tracing::debug!(conn, ?peer, "connection ended: {reason}");
                if let Some(peer) = peer {
                    self.on_closed(peer, conn);
                }
                self.settle().await;
            }
        }
    }

    /// The peer of `conn` if `conn` is the connection to it the node knows
    /// (`None` for one it no longer knows).
    fn open_peer(&self, conn: ConnId) -> Option<NodeId> {
        let peer = self.conns.get(&conn)?.1?;
        let open = self.links.get(&peer)?.open.as_ref()?;
        (open.conn == conn).then_some(peer)
    }

    /// Makes room for one more connection in its handshake from `ip`: if
    /// the address holds its most, its oldest is closed.
    fn evict_oldest_from(&mut self, ip: std::net::IpAddr) {
        let limit = self.per_address.of(ip);
        let mut from_ip = self.inbound_from.iter().filter(|(_, a)| **a == ip);
        let oldest = from_ip.next().map(|(c, _)| *c);
        if let Some(oldest) = oldest
            && 1 + from_ip.count() >= limit
        {
            if self.refused % 1000 == 0 {
                tracing::warn!(
                    %ip,
                    limit,
                    refused = self.refused + 1,
                    "closing the oldest connection in its handshake from an address that opened too many"
                );
            }
            self.refused += 1;
            self.abort(oldest);
        }
    }

    fn on_handshake(
        &mut self,
        conn: ConnId,
        peer: NodeId,
        direction: Direction,
        decide: oneshot::Sender<Decision>,
    ) {
        if !self.conns.contains_key(&conn) {
            // Closed by the loop (evicted) after its task reported.
            let _ = decide.send(Decision::Reject);
            return;
        }
        if peer == self.me || !self.book.contains_key(&peer) {
            tracing::warn!(%peer, "closing connection: peer id names a node not in the address book");
            let _ = decide.send(Decision::Reject);
            return;
        }
        // A peer id is good only from its owner's address: another host
        // using it would otherwise replace the real peer's connection.
        if let Some(from) = self.inbound_from.remove(&conn)
            && self.book.get(&peer).is_some_and(|a| a.ip() != from)
        {
            tracing::warn!(%peer, %from, "closing connection: peer id used from an address not its own");
            let _ = decide.send(Decision::Reject);
            return;
        }
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.1 = Some(peer);
        }
        let me = self.me;
        let links = self.links.entry(peer).or_default();
        match direction {
            Direction::Outbound { .. } => {
                if links.dialing != Some(conn) || links.open.is_some() {
                    let _ = decide.send(Decision::Reject);
                    return;
                }
                links.dialing = None;
                if let Some((_, held)) = links.held.take() {
                    let _ = held.send(Decision::Reject);
                }
                self.open(peer, conn, true, decide);
            }
            Direction::Inbound => {
                let ours = links.dialing.is_some() || links.open.as_ref().is_some_and(|o| o.dialed);
                if ours && me < peer {
                    // Both dialed: ours wins. Hold theirs in case ours
                    // fails or closes; if they gave up on it, it ends by
                    // itself.
                    if let Some((_, older)) = links.held.replace((conn, decide)) {
                        let _ = older.send(Decision::Reject);
                    }
                } else if let Some(old) = &links.open {
                    // The peer dials only when it holds no connection: if
                    // the old one is dead on its side, a probe ends it and
                    // the held one takes over (`lose`); if not, the held one
                    // is refused when the probe is over.
                    tracing::info!(%peer, "peer connected again: probing its old connection");
                    let _ = old.queue.try_send(Outgoing::Probe);
                    if let Some((_, older)) = links.held.replace((conn, decide)) {
                        let _ = older.send(Decision::Reject);
                    }
                    let reports = self.ctx.reports.clone();
                    self.tasks.spawn(async move {
                        tokio::time::sleep(PROBE_WAIT).await;
                        let _ = reports.send(Report::ProbeOver { peer, conn }).await;
                    });
                } else {
                    // Both dialed and theirs wins, or only they dialed.
                    if let Some(ours) = links.dialing.take() {
                        self.abort(ours);
                    }
                    self.open(peer, conn, false, decide);
                }
            }
        }
    }

    /// A connection task with `peer` ended.
    fn on_closed(&mut self, peer: NodeId, conn: ConnId) {
        let links = self.links.entry(peer).or_default();
        if links.held.as_ref().is_some_and(|(c, _)| *c == conn) {
            links.held = None;
        } else if links.dialing == Some(conn) {
            links.dialing = None;
            match links.held.take() {
                Some((held, decide)) => self.open(peer, held, false, decide),
                None => self.inputs.push_back(Input {
                    peer,
                    event: ConnectionEvent::Failed,
                }),
            }
        } else {
            self.lose(peer, conn);
        }
    }
}

/// While this process floods ([`crate::misbehave::flood_rate`]), opens that
/// many connections a second to each of `targets`, each sending a quarter
/// of a handshake and nothing more, and holds the newest [`FLOOD_HOLD`] per
/// target open. Nothing of it reaches the node.
async fn flood_loop(targets: Vec<SocketAddr>) {
    let mut held: Vec<VecDeque<tokio::net::TcpStream>> = targets.iter().map(|_| VecDeque::new()).collect();
    let mut dials = JoinSet::new();
    let mut next = Instant::now();
    let mut opened = 0u64;
    loop {
        let Some(rate) = crate::misbehave::flood_rate() else {
            if opened > 0 {
                tracing::info!(opened, "flood over");
                opened = 0;
            }
            held.iter_mut().for_each(VecDeque::clear);
            dials.abort_all();
            tokio::time::sleep(FLOOD_POLL).await;
            next = Instant::now();
            continue;
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {
                next = (next + Duration::from_secs(1) / rate).max(Instant::now());
                // A victim that does not answer holds up no more than its share.
                if dials.len() < targets.len() * FLOOD_HOLD {
                    for (k, &addr) in targets.iter().enumerate() {
                        dials.spawn(async move { (k, quarter_handshake(addr).await) });
                    }
                }
            }
            Some(Ok((k, Some(stream)))) = dials.join_next(), if !dials.is_empty() => {
                opened += 1;
                let q = &mut held[k];
                q.push_back(stream);
                if q.len() > FLOOD_HOLD {
                    q.pop_front();
                }
            }
        }
    }
}

/// A connection to `addr` that has sent a quarter of a BEP 3 handshake, or
/// `None` if it could not be made within a second.
async fn quarter_handshake(addr: SocketAddr) -> Option<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let dial = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(&[19, b'B', b'i', b't']).await.ok()?;
        Some(stream)
    };
    tokio::time::timeout(Duration::from_secs(1), dial)
        .await
        .ok()
        .flatten()
}

/// The most connections one address may hold in a given state: `base`,
/// plus one per node the address book places at that address (every node
/// of a loopback run shares 127.0.0.1).
#[derive(Debug)]
pub(crate) struct AddressLimits {
    base: usize,
    known: BTreeMap<std::net::IpAddr, usize>,
}

impl AddressLimits {
    pub(crate) fn new(book: &BTreeMap<NodeId, SocketAddr>, base: usize) -> Self {
        let base = base.max(1);
        let mut known = BTreeMap::new();
        for addr in book.values() {
            *known.entry(addr.ip()).or_insert(base) += 1;
        }
        AddressLimits { base, known }
    }

    /// The limit for `ip`.
    pub(crate) fn of(&self, ip: std::net::IpAddr) -> usize {
        self.known.get(&ip).copied().unwrap_or(self.base)
    }
}

/// The next report of the HTTP tracker link (never, without one).
async fn recv_http(http: &mut Option<HttpTracker>) -> crate::tracker_http::client::LinkReport {
    match http {
        Some(h) => h.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `wake` (never returns if there is none).
async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Accepts connections and hands them to the loop.
async fn accept_loop(listener: TcpListener, reports: mpsc::Sender<Report>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if reports.send(Report::Accepted { stream, addr }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Carries out storage commands in order until the loop goes away.
fn storage_thread(
    storage: &RwLock<Storage>,
    mut jobs: mpsc::Receiver<Job>,
    results: &mpsc::UnboundedSender<StorageResult>,
) {
    // Pieces with a failed write since their last check: their check is
    // skipped, the node already heard WriteFailed.
    let mut failed = std::collections::BTreeSet::new();
    while let Some(job) = jobs.blocking_recv() {
        let Ok(mut storage) = storage.write() else {
            return;
        };
        let result = match job {
            Job::Write { block, payload } => match storage.write_block(block, &payload) {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(piece = block.piece, "cannot store a block: {e}");
                    failed.insert(block.piece).then(|| StorageResult::WriteFailed {
                        piece: block.piece,
                        reason: e.to_string(),
                    })
                }
            },
            Job::Digest { piece } => match storage.block_digests(piece) {
                Ok(digests) => Some(StorageResult::Digests { piece, digests }),
                Err(e) => {
                    // Nobody is banned for it; the strikes still hold.
                    tracing::warn!(piece, "cannot digest a piece's blocks: {e}");
                    None
                }
            },
            Job::Verify { piece } if failed.remove(&piece) => None,
            Job::Verify { piece } => match storage.verify_piece(piece) {
                Ok(true) => Some(StorageResult::Verified { piece }),
                Ok(false) => Some(StorageResult::Corrupt { piece }),
                Err(e) => {
                    tracing::warn!(piece, "cannot verify a piece: {e}");
                    Some(StorageResult::WriteFailed {
                        piece,
                        reason: e.to_string(),
                    })
                }
            },
        };
        drop(storage);
        if result.is_some_and(|result| results.send(result).is_err()) {
            return;
        }
    }
}
