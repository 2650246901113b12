//! The tracker's side: an HTTP server whose announces are handed to the
//! core tracker node, and whose replies are the node's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use peerlab_core::{Command, ConnectionEvent, Event, Message, Node, NodeId, Output, Time};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::query::AnnounceQuery;
use super::reply;
use crate::conn::node_of;

/// The default [`TrackerIo::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The default [`TrackerIo::max_connections_per_address`]: a peer needs
/// one at a time.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 8;

/// A connection that sends no complete request header for this long is
/// closed (an idle keep-alive connection too).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Announces waiting for the node loop.
const REQUEST_QUEUE: usize = 256;

/// Interval put in the reply to an announce the node does not answer (a
/// `stopped`), until a reply of the node's says otherwise.
const FALLBACK_INTERVAL_S: u32 = 120;

/// What the tracker needs from the outside world.
#[derive(Debug)]
pub struct TrackerIo {
    /// Where peers send their HTTP announces (bind port 0 in tests).
    pub listener: TcpListener,
    /// The address book: the peers that may announce, and the addresses a
    /// reply hands out for them.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The file's info hash ([`crate::metainfo_file::info_hash`]); an
    /// announce naming another is refused.
    pub info_hash: [u8; 20],
    /// The origin of the node's clock; give every node of a run the same.
    pub epoch: Instant,
    /// HTTP connections served at once; more are closed on arrival.
    pub max_connections: usize,
    /// HTTP connections from one address at once, on top of one per node
    /// of the address book at that address; a new one past it closes the
    /// address's oldest, so idle sockets from one host never lock the
    /// others out.
    pub max_connections_per_address: usize,
}

impl TrackerIo {
    /// The I/O of a tracker of the file whose info hash is `info_hash`; the
    /// clock starts now.
    pub fn new(listener: TcpListener, peers: BTreeMap<NodeId, SocketAddr>, info_hash: [u8; 20]) -> Self {
        TrackerIo {
            listener,
            peers,
            info_hash,
            epoch: Instant::now(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// What the node made of one announce.
#[derive(Debug)]
enum Outcome {
    /// It answered with these peers.
    Reply { interval_s: u32, peers: Vec<NodeId> },
    /// It closed the "connection" without answering: refused.
    Refused,
    /// It said nothing (a `stopped` announce).
    Silent,
}

/// An announce checked by a connection task, for the node loop.
#[derive(Debug)]
struct Announce {
    peer: NodeId,
    msg: Message,
    answer: oneshot::Sender<Outcome>,
}

/// What every HTTP connection shares.
#[derive(Debug)]
struct Shared {
    info_hash: [u8; 20],
    book: BTreeMap<NodeId, SocketAddr>,
    announces: mpsc::Sender<Announce>,
}

/// Runs the tracker node `node` behind an HTTP server on `io.listener`
/// until `shutdown` completes (or the future is dropped: every connection
/// goes with it).
///
/// Each valid `GET /announce` is one short "connection" of the announcing
/// peer to the node, as the simulator's tracker sees a peer that connects
/// to announce: the node hears [`ConnectionEvent::Opened`], the
/// [`Message::Announce`], then [`ConnectionEvent::Closed`]. Its
/// [`Message::AnnounceReply`] to the peer is the HTTP reply, a
/// [`Command::Disconnect`] of the peer instead is a refusal (`failure
/// reason`). Requests the server itself can refuse (malformed, another
/// file, an unknown peer) never reach the node. Events go to `events`.
pub async fn run_tracker(
    node: Box<dyn Node + Send>,
    io: TrackerIo,
    events: mpsc::UnboundedSender<(Time, NodeId, Event)>,
    shutdown: impl Future<Output = ()>,
) {
    let span = tracing::info_span!("tracker", id = node.id().0);
    TrackerLoop {
        node,
        epoch: io.epoch,
        events,
        interval_s: FALLBACK_INTERVAL_S,
    }
    .run(io, shutdown)
    .instrument(span)
    .await;
}

struct TrackerLoop {
    node: Box<dyn Node + Send>,
    epoch: Instant,
    events: mpsc::UnboundedSender<(Time, NodeId, Event)>,
    interval_s: u32,
}

impl TrackerLoop {
    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    async fn run(mut self, io: TrackerIo, shutdown: impl Future<Output = ()>) {
        let (tx, mut announces) = mpsc::channel(REQUEST_QUEUE);
        let per_address = crate::driver::AddressLimits::new(&io.peers, io.max_connections_per_address);
        // The connections served, oldest first.
        let mut open: Vec<(tokio::task::Id, std::net::IpAddr, tokio::task::AbortHandle)> = Vec::new();
        // Connections closed for their address's limit, for the log.
        let mut evicted = 0u64;
        let shared = Arc::new(Shared {
            info_hash: io.info_hash,
            book: io.peers,
            announces: tx,
        });
        let mut conns = JoinSet::new();
        let now = self.now();
        self.node.handle_start(now);
        self.drain(None);
        tokio::pin!(shutdown);
        loop {
            let wake = self
                .node
                .poll_timeout()
                .map(|t| self.epoch + Duration::from_nanos(t.as_nanos()));
            tokio::select! {
                () = &mut shutdown => return,
                accepted = io.listener.accept() => match accepted {
                    Ok((stream, addr)) if conns.len() < io.max_connections => {
                        let ip = addr.ip();
                        let limit = per_address.of(ip);
                        if open.iter().filter(|(_, a, _)| *a == ip).count() >= limit {
                            let k = open.iter().position(|(_, a, _)| *a == ip).expect("counted above");
                            if evicted % 1000 == 0 {
                                tracing::warn!(%addr, limit, evicted = evicted + 1, "closing the oldest HTTP connection from an address that opened too many");
                            }
                            evicted += 1;
                            open.remove(k).2.abort();
                        }
                        let span = tracing::debug_span!("http", %addr);
                        let handle = conns.spawn(serve(stream, addr, Arc::clone(&shared)).instrument(span));
                        open.push((handle.id(), ip, handle));
                    }
                    Ok((_, addr)) => tracing::warn!(%addr, "refusing an HTTP connection: {} already open", conns.len()),
                    Err(e) => {
                        tracing::warn!("cannot accept an HTTP connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(announce) = announces.recv() => self.announce(announce),
                () = sleep_until(wake), if wake.is_some() => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                    self.drain(None);
                }
                Some(done) = conns.join_next_with_id(), if !conns.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    open.retain(|(i, _, _)| *i != id);
                }
            }
        }
    }

    /// Hands one announce to the node and sends back what it made of it.
    fn announce(&mut self, Announce { peer, msg, answer }: Announce) {
        let now = self.now();
        self.node.handle_connection(peer, ConnectionEvent::Opened, now);
        self.drain(None);
        self.node.handle_message(peer, msg, now);
        let outcome = self.drain(Some(peer));
        if !matches!(outcome, Outcome::Refused) {
            self.node.handle_connection(peer, ConnectionEvent::Closed, now);
            self.drain(None);
        }
        // The connection task may be gone (the peer hung up): nothing to do.
        let _ = answer.send(outcome);
    }

    /// Carries out the node's outputs; what it told `asker`, if any.
    fn drain(&mut self, asker: Option<NodeId>) -> Outcome {
        let mut outcome = Outcome::Silent;
        let mut refused = false;
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Transmit(t) => match t.msg {
                    Message::AnnounceReply { interval_s, peers } if Some(t.to) == asker && !refused => {
                        self.interval_s = interval_s;
                        outcome = Outcome::Reply { interval_s, peers };
                    }
                    msg => tracing::debug!(to = %t.to, ?msg, "message to a peer without a request dropped"),
                },
                Output::Command(Command::Disconnect { peer }) if Some(peer) == asker => {
                    refused = true;
                    outcome = Outcome::Refused;
                }
                Output::Command(c) => tracing::debug!(?c, "command ignored by the HTTP tracker"),
                Output::Event(e) => {
                    let _ = self.events.send((self.now(), self.node.id(), e));
                }
            }
        }
        outcome
    }
}

/// Sleeps until `wake` (never returns if there is none).
async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Serves one HTTP/1 connection (keep-alive) from `remote` to its end.
async fn serve(stream: tokio::net::TcpStream, remote: SocketAddr, shared: Arc<Shared>) {
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(req, remote, &shared).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        // The smallest buffer hyper allows bounds the request head.
        .max_buf_size(8192)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("HTTP connection ended: {e}");
    }
}

/// Answers one request from `remote`. A peer announces only for itself:
/// from the address the address book gives it (the port may differ, as the
/// announce comes from an ephemeral one), so nobody can announce `stopped`,
/// or anything else, for another peer from elsewhere.
async fn handle(req: Request<Incoming>, remote: SocketAddr, shared: &Shared) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return failure(StatusCode::METHOD_NOT_ALLOWED, "only GET /announce is served");
    }
    if req.uri().path() != "/announce" {
        return failure(StatusCode::NOT_FOUND, "only GET /announce is served");
    }
    let query = match AnnounceQuery::parse(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return refuse(e.to_string()),
    };
    if query.info_hash != shared.info_hash {
        return refuse(format!(
            "wrong info_hash {}: this tracker serves {}",
            hex(&query.info_hash),
            hex(&shared.info_hash)
        ));
    }
    let Some(peer) = node_of(&query.peer_id) else {
        return refuse(format!(
            "unknown peer: peer_id {:?} is not a peerlab peer id",
            String::from_utf8_lossy(&query.peer_id)
        ));
    };
    let Some(addr) = shared.book.get(&peer) else {
        return refuse(format!(
            "unknown peer: {peer} is not in the tracker's address book"
        ));
    };
    if addr.ip() != remote.ip() {
        return refuse(format!(
            "{peer} announces from {}, not from its address in the tracker's address book ({})",
            remote.ip(),
            addr.ip()
        ));
    }
    if addr.port() != query.port {
        return refuse(format!(
            "port {} is not {peer}'s port in the tracker's address book ({})",
            query.port,
            addr.port()
        ));
    }
    let msg = Message::Announce {
        peer,
        event: query.event,
        left: query.left,
        uploaded: query.uploaded,
        downloaded: query.downloaded,
        numwant: query.numwant.min(peerlab_core::swarm::tracker::MAX_NUMWANT),
    };
    let (answer, outcome) = oneshot::channel();
    let announce = Announce { peer, msg, answer };
    if shared.announces.send(announce).await.is_err() {
        return failure(StatusCode::SERVICE_UNAVAILABLE, "the tracker is stopping");
    }
    match outcome.await {
        Ok(Outcome::Reply { interval_s, peers }) => ok(reply::encode_peers(interval_s, &peers, &shared.book)),
        Ok(Outcome::Silent) => ok(reply::encode_peers(FALLBACK_INTERVAL_S, &[], &shared.book)),
        Ok(Outcome::Refused) => refuse(format!("announce of {peer} refused by the tracker")),
        Err(_) => failure(StatusCode::SERVICE_UNAVAILABLE, "the tracker is stopping"),
    }
}

fn ok(body: Vec<u8>) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, body)
}

/// A refused announce: `200 OK` with a bencoded `failure reason`, as
/// BitTorrent trackers answer (clients read the reason from the body).
fn refuse(reason: String) -> Response<Full<Bytes>> {
    tracing::debug!("announce refused: {reason}");
    respond(StatusCode::OK, reply::encode_failure(&reason))
}

fn failure(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    respond(status, reply::encode_failure(reason))
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
