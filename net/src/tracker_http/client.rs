//! A peer's side: the driver's "connection" to an HTTP tracker.
//!
//! The core peer connects to its tracker, sends [`Message::Announce`]s on
//! the connection and hears [`Message::AnnounceReply`]s back, as in the
//! simulator. Here that connection is one HTTP/1.1 keep-alive connection:
//!
//! - [`Command::Connect`](peerlab_core::Command::Connect): dial the
//!   tracker's address, bounded by the connect timeout; the node hears
//!   `Opened` once the TCP connection is up, `Failed` if it cannot be made;
//! - an announce on an open link is a `GET /announce?…` on it (in order,
//!   one at a time); the reply becomes a [`Message::AnnounceReply`] whose
//!   compact peers are named through the address book. The tracker closes
//!   idle connections ([`super::server::HEADER_TIMEOUT`]); the link then
//!   dials again for its next announce, unnoticed by the node;
//! - a request that fails — the tracker cannot be reached again, did not
//!   answer within [`ANNOUNCE_TIMEOUT`], answered garbage or a `failure
//!   reason` (logged) — ends the link: the node hears `Closed`, as when the
//!   simulator's tracker drops a connection, and retries as it would there;
//! - [`Command::Disconnect`](peerlab_core::Command::Disconnect): the node
//!   hears `Closed` at once; announces already queued (a leaving peer's
//!   `stopped`) are still sent, their replies ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use peerlab_core::{ConnectionEvent, Message, NodeId};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use super::query::AnnounceQuery;
use super::reply::{self, Reply};
use crate::conn::peer_id;

/// Bound on one announce request and its reply.
pub const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);

/// A keep-alive connection idle this long is not reused: the tracker
/// closes it at [`super::server::HEADER_TIMEOUT`], perhaps as a request
/// arrives.
const REUSE_IDLE: Duration = Duration::from_secs(20);

/// Announces queued on a link; more while the tracker is slow close it.
const LINK_QUEUE: usize = 16;

/// What a link task tells the driver.
#[derive(Debug)]
pub(crate) enum LinkReport {
    /// The connection is up.
    Opened { link: u64 },
    /// The tracker answered an announce.
    Reply { link: u64, msg: Message },
    /// The link ended, or never came up.
    Closed { link: u64, reason: String },
}

/// What the driver hands a link task.
#[derive(Debug)]
enum LinkCmd {
    Announce(Message),
    /// Send what is queued, then end.
    Close,
}

/// What a link task needs to know.
#[derive(Debug)]
struct LinkCtx {
    tracker: NodeId,
    addr: SocketAddr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    port: u16,
    connect_timeout: Duration,
    by_addr: BTreeMap<SocketAddr, NodeId>,
}

#[derive(Debug)]
struct Current {
    id: u64,
    open: bool,
    cmds: mpsc::Sender<LinkCmd>,
    abort: AbortHandle,
}

/// What the node should hear after a link report.
#[derive(Debug)]
pub(crate) enum Delivery {
    Connection(ConnectionEvent),
    Message(Message),
}

/// The driver's link to an HTTP tracker (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct HttpTracker {
    ctx: Arc<LinkCtx>,
    current: Option<Current>,
    next_id: u64,
    reports_tx: mpsc::Sender<LinkReport>,
    reports: mpsc::Receiver<LinkReport>,
}

impl HttpTracker {
    /// The link of node `me` (listening on `port`) to the tracker
    /// `tracker`; `None`, logged, if the book has no address for it.
    pub(crate) fn new(
        me: NodeId,
        port: u16,
        tracker: NodeId,
        book: &BTreeMap<NodeId, SocketAddr>,
        info_hash: [u8; 20],
        connect_timeout: Duration,
    ) -> Option<Self> {
        let Some(&addr) = book.get(&tracker) else {
            tracing::warn!(%tracker, "HTTP tracker not in the address book: announces will fail");
            return None;
        };
        let (reports_tx, reports) = mpsc::channel(LINK_QUEUE);
        Some(HttpTracker {
            ctx: Arc::new(LinkCtx {
                tracker,
                addr,
                info_hash,
                peer_id: peer_id(me),
                port,
                connect_timeout,
                by_addr: reply::by_addr(book),
            }),
            current: None,
            next_id: 0,
            reports_tx,
            reports,
        })
    }

    /// The tracker's node id.
    pub(crate) fn tracker(&self) -> NodeId {
        self.ctx.tracker
    }

    /// The node asked to connect; what it hears at once, if anything.
    pub(crate) fn connect(&mut self, tasks: &mut JoinSet<()>) -> Option<ConnectionEvent> {
        match &self.current {
            Some(c) if c.open => return Some(ConnectionEvent::Opened),
            Some(_) => return None, // answered when the dial settles
            None => {}
        }
        let id = self.next_id;
        self.next_id += 1;
        let (cmds, rx) = mpsc::channel(LINK_QUEUE);
        let task = run_link(Arc::clone(&self.ctx), id, rx, self.reports_tx.clone());
        let span = tracing::debug_span!("tracker_link", link = id, tracker = %self.ctx.tracker);
        let abort = tasks.spawn(task.instrument(span));
        self.current = Some(Current {
            id,
            open: false,
            cmds,
            abort,
        });
        None
    }

    /// The node asked to disconnect; what it hears at once, if anything.
    pub(crate) fn disconnect(&mut self) -> Option<ConnectionEvent> {
        let c = self.current.take()?;
        if !c.open || c.cmds.try_send(LinkCmd::Close).is_err() {
            c.abort.abort();
        }
        Some(ConnectionEvent::Closed)
    }

    /// The node sent `msg` to the tracker; what it hears at once, if
    /// anything (`Closed` when the link cannot keep up).
    pub(crate) fn transmit(&mut self, msg: Message) -> Option<ConnectionEvent> {
        let Some(c) = self.current.as_ref().filter(|c| c.open) else {
            tracing::debug!(?msg, "message to the tracker without a connection dropped");
            return None;
        };
        if !matches!(msg, Message::Announce { .. }) {
            tracing::warn!(?msg, "only announces can be sent to an HTTP tracker: dropped");
            return None;
        }
        match c.cmds.try_send(LinkCmd::Announce(msg)) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("closing the tracker link: {LINK_QUEUE} announces unanswered");
                c.abort.abort();
                self.current = None;
                Some(ConnectionEvent::Closed)
            }
            // The task ended; its Closed report is on its way.
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        }
    }

    /// The next report of a link task.
    pub(crate) async fn recv(&mut self) -> LinkReport {
        // This holds a sender, so the channel never closes.
        match self.reports.recv().await {
            Some(report) => report,
            None => std::future::pending().await,
        }
    }

    /// What the node hears of `report`, if anything (reports of a link the
    /// node closed are ignored).
    pub(crate) fn on_report(&mut self, report: LinkReport) -> Option<Delivery> {
        let (id, current) = match &report {
            LinkReport::Opened { link }
            | LinkReport::Reply { link, .. }
            | LinkReport::Closed { link, .. } => (*link, self.current.as_mut().filter(|c| c.id == *link)),
        };
        let Some(c) = current else {
            tracing::trace!(link = id, "report of a closed tracker link ignored");
            return None;
        };
        match report {
            LinkReport::Opened { .. } => {
                c.open = true;
                Some(Delivery::Connection(ConnectionEvent::Opened))
            }
            LinkReport::Reply { msg, .. } => c.open.then_some(Delivery::Message(msg)),
            LinkReport::Closed { reason, .. } => {
                let event = if c.open {
                    ConnectionEvent::Closed
                } else {
                    ConnectionEvent::Failed
                };
                tracing::info!(tracker = %self.ctx.tracker, "tracker link {event:?}: {reason}");
                self.current = None;
                Some(Delivery::Connection(event))
            }
        }
    }
}

/// One link's life: dial, then announces in order until closed or failed.
async fn run_link(
    ctx: Arc<LinkCtx>,
    link: u64,
    mut cmds: mpsc::Receiver<LinkCmd>,
    reports: mpsc::Sender<LinkReport>,
) {
    let reason = match serve(&ctx, link, &mut cmds, &reports).await {
        Ok(reason) | Err(reason) => reason,
    };
    let _ = reports.send(LinkReport::Closed { link, reason }).await;
}

async fn serve(
    ctx: &LinkCtx,
    link: u64,
    cmds: &mut mpsc::Receiver<LinkCmd>,
    reports: &mpsc::Sender<LinkReport>,
) -> Result<String, String> {
    let mut http = Some(Http::dial(ctx).await?);
    reports
        .send(LinkReport::Opened { link })
        .await
        .map_err(|_| "node stopped".to_string())?;
    while let Some(cmd) = cmds.recv().await {
        let LinkCmd::Announce(msg) = cmd else {
            return Ok("closed by this node".to_string());
        };
        let Some(request) = request(ctx, &msg) else {
            continue;
        };
        // The tracker closes connections idle for HEADER_TIMEOUT: an idle
        // or closed one is replaced before it is used, so only a tracker
        // that cannot be reached or does not answer ends the link.
        let conn = match http.take().filter(Http::reusable) {
            Some(conn) => conn,
            None => Http::dial(ctx).await?,
        };
        let conn = http.insert(conn);
        let reply = tokio::time::timeout(ANNOUNCE_TIMEOUT, announce(ctx, &mut conn.sender, request))
            .await
            .map_err(|_| format!("the tracker did not answer within {ANNOUNCE_TIMEOUT:?}"))??;
        conn.idle_since = Instant::now();
        reports
            .send(LinkReport::Reply { link, msg: reply })
            .await
            .map_err(|_| "node stopped".to_string())?;
    }
    Ok("node stopped".to_string())
}

/// One HTTP/1.1 keep-alive connection to the tracker; its connection task
/// ends with it.
struct Http {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    conn: tokio::task::JoinHandle<()>,
    idle_since: Instant,
}

impl Http {
    async fn dial(ctx: &LinkCtx) -> Result<Http, String> {
        let stream = tokio::time::timeout(ctx.connect_timeout, TcpStream::connect(ctx.addr))
            .await
            .map_err(|_| {
                format!(
                    "no answer from the tracker at {} within {:?}",
                    ctx.addr, ctx.connect_timeout
                )
            })?
            .map_err(|e| format!("cannot connect to the tracker at {}: {e}", ctx.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with the tracker failed: {e}"))?;
        let conn = tokio::spawn(
            async move {
                if let Err(e) = conn.await {
                    tracing::debug!("tracker connection ended: {e}");
                }
            }
            .in_current_span(),
        );
        Ok(Http {
            sender,
            conn,
            idle_since: Instant::now(),
        })
    }

    /// Whether the connection can take the next request: open, and idle
    /// for less than [`REUSE_IDLE`].
    fn reusable(&self) -> bool {
        !self.sender.is_closed() && self.idle_since.elapsed() < REUSE_IDLE
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// The HTTP request of an announce.
fn request(ctx: &LinkCtx, msg: &Message) -> Option<Request<Empty<Bytes>>> {
    let &Message::Announce {
        event,
        left,
        uploaded,
        downloaded,
        numwant,
        ..
    } = msg
    else {
        return None;
    };
    let query = AnnounceQuery {
        info_hash: ctx.info_hash,
        peer_id: ctx.peer_id,
        port: ctx.port,
        uploaded,
        downloaded,
        left,
        event,
        numwant,
    };
    Request::get(format!("/announce?{}", query.encode()))
        .header(HOST, ctx.addr.to_string())
        .header(USER_AGENT, concat!("peerlab/", env!("CARGO_PKG_VERSION")))
        .body(Empty::new())
        .map_err(|e| tracing::error!("cannot build an announce request: {e}"))
        .ok()
}

/// Sends one announce and reads its reply.
async fn announce(
    ctx: &LinkCtx,
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
) -> Result<Message, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("tracker connection unusable: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("announce failed: {e}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), reply::MAX_REPLY_LEN)
        .collect()
        .await
        .map_err(|e| format!("cannot read the tracker's reply (HTTP {status}): {e}"))?
        .to_bytes();
    match reply::decode(&body, &ctx.by_addr) {
        Ok(Reply::Peers { interval_s, peers }) if status.is_success() => {
            Ok(Message::AnnounceReply { interval_s, peers })
        }
        Ok(Reply::Peers { .. }) => Err(format!("tracker answered HTTP {status}")),
        Ok(Reply::Failure(reason)) => Err(format!("tracker refused the announce: {reason}")),
        Err(e) => Err(format!("{e} (HTTP {status})")),
    }
}
