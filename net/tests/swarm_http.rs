//! The swarm over real sockets with its tracker over HTTP (BEP 3 announce,
//! BEP 23 compact peers): the core `Tracker` and `Peer` nodes unchanged,
//! on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{Fixture, PATIENCE, listeners, until_complete};
use peerlab_core::swarm::{Peer, SwarmConfig, Tracker};
use peerlab_core::{Bitfield, Event, Node, NodeId, Time};
use peerlab_net::bencode::{self, Value};
use peerlab_net::conn::peer_id;
use peerlab_net::driver::{DriverError, NodeIo, run_node};
use peerlab_net::metainfo_file::info_hash;
use peerlab_net::storage::Storage;
use peerlab_net::tracker_http::query::percent_encode;
use peerlab_net::tracker_http::server::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS};
use peerlab_net::tracker_http::{TrackerIo, run_tracker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

const TRACKER: NodeId = NodeId(0);
const SEED: NodeId = NodeId(1);
const MIB: usize = 1024 * 1024;
const PIECE: u32 = 32 * 1024;

type EventTx = mpsc::UnboundedSender<(Time, NodeId, Event)>;

/// Spawns the HTTP tracker; dropping the returned sender stops it.
fn spawn_tracker(
    listener: TcpListener,
    book: &BTreeMap<NodeId, SocketAddr>,
    hash: [u8; 20],
    events: EventTx,
) -> (tokio::task::JoinHandle<()>, oneshot::Sender<()>) {
    let node = Box::new(Tracker::new(TRACKER, Duration::from_secs(30), 11));
    let io = TrackerIo::new(listener, book.clone(), hash);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_tracker(node, io, events, async {
        let _ = stopped.await;
    }));
    (task, stop)
}

/// A running swarm node and the switch that stops it.
struct Running {
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
    stop: oneshot::Sender<()>,
}

impl Running {
    async fn stop(self) -> Result<(), DriverError> {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("driver stops in time")
            .expect("driver task")
    }
}

/// Spawns a swarm node that reaches [`TRACKER`] over HTTP.
fn spawn_peer(
    node: Box<dyn Node + Send>,
    listener: TcpListener,
    book: &BTreeMap<NodeId, SocketAddr>,
    storage: Storage,
    events: EventTx,
) -> Running {
    let mut io = NodeIo::new(listener, book.clone(), storage);
    io.http_tracker = Some(TRACKER);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run_node(node, io, events, async {
        let _ = stopped.await;
    }));
    Running { task, stop }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_and_six_peers_swarm_through_the_http_tracker() {
    let fx = Fixture::new("swarm-http", 2 * MIB, PIECE, 21);
    let all: Vec<NodeId> = (0..8).map(NodeId).collect();
    let leechers = &all[2..];
    let (mut listeners, book) = listeners(&all).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let hash = info_hash(&fx.metainfo);
    let (tracker, stop_tracker) = spawn_tracker(
        listeners.remove(&TRACKER).expect("listener"),
        &book,
        hash,
        tx.clone(),
    );
    let config = SwarmConfig::default();
    let pieces = fx.layout.pieces();
    let mut running = vec![spawn_peer(
        Box::new(Peer::new(
            SEED,
            TRACKER,
            fx.layout,
            Bitfield::full(pieces),
            config,
            5,
        )),
        listeners.remove(&SEED).expect("listener"),
        &book,
        fx.seed_storage(),
        tx.clone(),
    )];
    for &id in leechers {
        let storage = fx.storage(id);
        let have = storage.verified().clone();
        let peer = Peer::new(id, TRACKER, fx.layout, have, config, 5);
        let listener = listeners.remove(&id).expect("listener");
        running.push(spawn_peer(Box::new(peer), listener, &book, storage, tx.clone()));
    }

    let seen = until_complete(&mut events, leechers).await;

    for &id in leechers {
        fx.assert_identical(id);
    }
    let violations: Vec<_> = seen
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::ProtocolViolation { .. }))
        .collect();
    assert!(violations.is_empty(), "protocol violations: {violations:?}");
    // Pieces came from peers too, not only from the seed: the tracker
    // introduced the leechers to each other.
    let from_peers = seen
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::BlockReceived { from, .. } if *from != SEED))
        .count();
    assert!(from_peers > 0, "every block came from the seed");
    for node in running {
        node.stop().await.expect("driver stops cleanly");
    }
    drop(stop_tracker);
    tokio::time::timeout(PATIENCE, tracker)
        .await
        .expect("tracker stops in time")
        .expect("tracker task");
}

/// The tracker is down when the swarm starts: every peer's connection to it
/// fails, and they retry (as against the simulator's tracker) until it is
/// up, then swarm as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_retry_a_tracker_that_comes_up_late() {
    let fx = Fixture::new("swarm-http-late", MIB, PIECE, 22);
    let all: Vec<NodeId> = (0..4).map(NodeId).collect();
    let leechers = &all[2..];
    let (mut listeners, book) = listeners(&all).await;
    // Nobody listens at the tracker's address yet.
    drop(listeners.remove(&TRACKER));
    let (tx, mut events) = mpsc::unbounded_channel();
    let config = SwarmConfig::default();
    let pieces = fx.layout.pieces();
    let mut running = vec![spawn_peer(
        Box::new(Peer::new(
            SEED,
            TRACKER,
            fx.layout,
            Bitfield::full(pieces),
            config,
            6,
        )),
        listeners.remove(&SEED).expect("listener"),
        &book,
        fx.seed_storage(),
        tx.clone(),
    )];
    for &id in leechers {
        let storage = fx.storage(id);
        let have = storage.verified().clone();
        let peer = Peer::new(id, TRACKER, fx.layout, have, config, 6);
        let listener = listeners.remove(&id).expect("listener");
        running.push(spawn_peer(Box::new(peer), listener, &book, storage, tx.clone()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listener = TcpListener::bind(book[&TRACKER])
        .await
        .expect("rebind the tracker's port");
    let started = tokio::time::Instant::now();
    let (tracker, stop_tracker) = spawn_tracker(listener, &book, info_hash(&fx.metainfo), tx.clone());

    until_complete(&mut events, leechers).await;

    assert!(started.elapsed() < PATIENCE);
    for &id in leechers {
        fx.assert_identical(id);
    }
    for node in running {
        node.stop().await.expect("driver stops cleanly");
    }
    drop(stop_tracker);
    tokio::time::timeout(PATIENCE, tracker)
        .await
        .expect("tracker stops in time")
        .expect("tracker task");
}

/// One raw HTTP/1.1 request from 127.0.0.3 (peer #3's address in the
/// tests' address book); the response's status code and body.
async fn get(addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    get_from([127, 0, 0, 3], addr, target).await
}

/// One raw HTTP/1.1 request from the loopback address `from`.
async fn get_from(from: [u8; 4], addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("bind a loopback address");
        let mut s = socket.connect(addr).await.expect("connect");
        let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("send");
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.expect("read");
        resp
    };
    let resp = tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("tracker answers in time");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, resp[split..].to_vec())
}

fn query(hash: &[u8; 20], node: NodeId, port: u16, event: &str, numwant: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=100&event={event}&numwant={numwant}&compact=1",
        percent_encode(hash),
        percent_encode(&peer_id(node)),
    )
}

fn failure_reason(body: &[u8]) -> String {
    let v = bencode::decode(body).expect("bencoded body");
    let reason = v
        .get("failure reason")
        .and_then(Value::as_bytes)
        .expect("failure reason");
    String::from_utf8_lossy(reason).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_announces_get_compact_peers_or_a_clear_failure_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The tracker never dials its peers, and checks they announce from
    // their own address: peer i at 127.0.0.i.
    let book: BTreeMap<NodeId, SocketAddr> = (1..=3)
        .map(|i| {
            (
                NodeId(i),
                SocketAddr::from(([127, 0, 0, i as u8], 6880 + i as u16)),
            )
        })
        .chain([(TRACKER, addr)])
        .collect();
    // Bytes that need percent-encoding, '&' and '%' among them.
    let hash: [u8; 20] = std::array::from_fn(|i| [0x26, 0x25, 0x00, 0xff, b'+'][i % 5]);
    let (tx, _events) = mpsc::unbounded_channel();
    let (_tracker, _stop) = spawn_tracker(listener, &book, hash, tx);

    for i in [1, 2] {
        let from = [127, 0, 0, i as u8];
        let (status, body) = get_from(
            from,
            addr,
            &query(&hash, NodeId(i), 6880 + i as u16, "started", "50"),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            bencode::decode(&body)
                .expect("bencoded")
                .get("failure reason")
                .is_none()
        );
    }
    let (status, body) = get(addr, &query(&hash, NodeId(3), 6883, "started", "50")).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"d8:intervali30e5:peers12:"), "{body:?}");
    let reply = bencode::decode(&body).expect("bencoded");
    let mut peers: Vec<&[u8]> = reply
        .get("peers")
        .and_then(Value::as_bytes)
        .expect("compact peers")
        .chunks(6)
        .collect();
    peers.sort();
    assert_eq!(
        peers,
        [&[127, 0, 0, 1, 0x1a, 0xe1][..], &[127, 0, 0, 2, 0x1a, 0xe2][..]]
    );
    // numwant bounds the reply.
    let (_, body) = get(addr, &query(&hash, NodeId(3), 6883, "", "1")).await;
    assert!(body.starts_with(b"d8:intervali30e5:peers6:"), "{body:?}");

    let good = query(&hash, NodeId(3), 6883, "", "50");
    let no_hash = good.replace(&format!("info_hash={}&", percent_encode(&hash)), "");
    let wrong_hash = query(&[9; 20], NodeId(3), 6883, "", "50");
    let cases = [
        (no_hash, "missing parameter info_hash"),
        (wrong_hash, "wrong info_hash 0909"),
        (
            good.replace("numwant=50", "numwant=many"),
            "malformed parameter numwant",
        ),
        (
            good.replace("numwant=50", "numwant=-1"),
            "malformed parameter numwant",
        ),
        (good.replace("port=6883", "port=1"), "port 1 is not #3's port"),
        (query(&hash, NodeId(99), 6883, "", "50"), "unknown peer: #99"),
        (good.replace("compact=1", "compact=0"), "compact"),
        (format!("{good}&key={}", "k".repeat(3000)), "longer than"),
    ];
    for (target, want) in cases {
        let (status, body) = get(addr, &target).await;
        assert_eq!(status, 200, "{target}");
        let reason = failure_reason(&body);
        assert!(reason.contains(want), "{target}: {reason:?} should say {want:?}");
    }
    // Nobody announces for another peer, `stopped` least of all: #1 is
    // still listed after a stop sent from #3's address.
    let stop_1 = query(&hash, NodeId(1), 6881, "stopped", "50");
    let (_, body) = get(addr, &stop_1).await;
    assert!(
        failure_reason(&body).contains("#1 announces from 127.0.0.3"),
        "{body:?}"
    );
    let (_, body) = get(addr, &good).await;
    assert!(body.starts_with(b"d8:intervali30e5:peers12:"), "{body:?}");
    let (status, body) = get(addr, "/scrape").await;
    assert_eq!(status, 404);
    assert!(failure_reason(&body).contains("/announce"));
}

/// Idle sockets from one address (127.0.0.9, no peer's) take only that
/// address's share of the tracker's connections, each new one closing the
/// oldest: a peer elsewhere still announces at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_address_do_not_lock_peers_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let book: BTreeMap<NodeId, SocketAddr> = [
        (NodeId(1), SocketAddr::from(([127, 0, 0, 1], 6881))),
        (TRACKER, addr),
    ]
    .into_iter()
    .collect();
    let hash = [7; 20];
    let (tx, _events) = mpsc::unbounded_channel();
    let (_tracker, _stop) = spawn_tracker(listener, &book, hash, tx);

    let flood = DEFAULT_MAX_CONNECTIONS + 100;
    let mut idle = Vec::with_capacity(flood);
    for _ in 0..flood {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 9], 0)))
            .expect("bind a loopback address");
        idle.push(socket.connect(addr).await.expect("connect"));
    }
    let (status, body) = get_from(
        [127, 0, 0, 1],
        addr,
        &query(&hash, NodeId(1), 6881, "started", "50"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Every idle socket but the newest few was closed long before the
    // tracker's 30 s header timeout.
    let mut open = 0;
    for mut s in idle {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(20), s.read(&mut byte)).await;
        open += usize::from(read.is_err());
    }
    assert_eq!(
        open, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        "idle sockets the tracker kept"
    );
}
