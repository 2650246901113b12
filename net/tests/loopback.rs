//! The tokio driver end to end on 127.0.0.1: real sockets, real files, the
//! protocol nodes of `peerlab-core` unchanged.

mod common;

use std::time::Duration;

use peerlab_core::pace::Paced;

use common::{Fixture, PATIENCE, bytes_received, flip_byte, listeners, spawn, spawn_io, until_complete};
use peerlab_core::client_server::{Client, ClientServerConfig, Server};
use peerlab_core::static_tracker::{Peer, StaticTrackerConfig, TrackerFile};
use peerlab_core::{Bitfield, Event, NodeId};
use peerlab_net::conn::peer_id;
use peerlab_net::driver::{DEFAULT_MAX_HALF_OPEN, DEFAULT_MAX_HALF_OPEN_PER_ADDRESS, NodeIo, PROBE_WAIT};
use peerlab_net::metainfo_file::info_hash;
use peerlab_net::storage::Storage;
use peerlab_net::wire::{self, Handshake};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const SERVER: NodeId = NodeId(0);
const MIB: usize = 1024 * 1024;
const PIECE: u32 = 256 * 1024;

fn ids(n: u32) -> Vec<NodeId> {
    (0..n).map(NodeId).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_server_four_clients_get_identical_files() {
    let fx = Fixture::new("cs", 3 * MIB, PIECE, 1);
    let all = ids(5);
    let (mut listeners, book) = listeners(&all).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut running = Vec::new();
    let server = Box::new(Server::new(SERVER, fx.layout));
    let listener = listeners.remove(&SERVER).expect("listener");
    running.push(spawn(server, listener, &book, fx.seed_storage(), tx.clone()));
    for &id in &all[1..] {
        let storage = fx.storage(id);
        let have = storage.verified().clone();
        let client = Client::new(id, SERVER, fx.layout, have, ClientServerConfig::default());
        let listener = listeners.remove(&id).expect("listener");
        running.push(spawn(Box::new(client), listener, &book, storage, tx.clone()));
    }

    let seen = until_complete(&mut events, &all[1..]).await;

    for &id in &all[1..] {
        fx.assert_identical(id);
        assert_eq!(
            bytes_received(&seen, id),
            fx.bytes.len() as u64,
            "{id} downloaded the file once"
        );
    }
    for node in running {
        node.stop().await.expect("driver stops cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_tracker_four_peers_get_identical_files() {
    let fx = Fixture::new("static", 3 * MIB, PIECE, 2);
    let all = ids(5);
    let peers = &all[1..];
    let tracker = TrackerFile::round_robin(fx.layout.pieces(), peers);
    let (mut listeners, book) = listeners(&all).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut running = Vec::new();
    let listener = listeners.remove(&SERVER).expect("listener");
    running.push(spawn(
        Box::new(Server::new(SERVER, fx.layout)),
        listener,
        &book,
        fx.seed_storage(),
        tx.clone(),
    ));
    for &id in peers {
        let storage = fx.storage(id);
        let have = storage.verified().clone();
        let config = StaticTrackerConfig::default();
        let peer = Peer::new(id, SERVER, fx.layout, tracker.clone(), have, config);
        let listener = listeners.remove(&id).expect("listener");
        running.push(spawn(Box::new(peer), listener, &book, storage, tx.clone()));
    }

    let seen = until_complete(&mut events, peers).await;

    for &id in peers {
        fx.assert_identical(id);
    }
    // The peers shared the work: no peer lost an owner to a connection
    // race (duplicate connections are resolved without the nodes noticing).
    let lost: Vec<_> = seen
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::SourceLost { .. }))
        .collect();
    assert!(lost.is_empty(), "sources lost: {lost:?}");
    for node in running {
        node.abort_and_forget();
    }
}

/// A sender whose copy is corrupt: node 1 claims every piece but serves a
/// tampered file. Node 2, told by the tracker file that node 1 owns every
/// piece, fetches from it, finds a piece failing its hash check, and gets
/// it (and the rest) from the server: its file ends byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_block_is_caught_and_fetched_again() {
    let fx = Fixture::new("corrupt", 2 * MIB, PIECE, 3);
    let (liar, honest) = (NodeId(1), NodeId(2));
    let all = ids(3);
    let pieces = fx.layout.pieces();
    let tracker = TrackerFile::new(vec![liar; pieces as usize]);
    let bad_piece = 3;
    let tampered = fx.root.join("liar.bin");
    std::fs::copy(&fx.source, &tampered).expect("copy");
    flip_byte(&tampered, fx.layout.piece_offset(bad_piece) + 20_000);
    // Trusted: the liar's storage is not checked, so it serves the bad byte.
    let liar_storage = Storage::open_seed_trusted(&tampered, &fx.metainfo).expect("liar storage");

    let (mut listeners, book) = listeners(&all).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let config = StaticTrackerConfig::default();
    let full = Bitfield::full(pieces);
    let mut running = vec![
        spawn(
            Box::new(Server::new(SERVER, fx.layout)),
            listeners.remove(&SERVER).expect("listener"),
            &book,
            fx.seed_storage(),
            tx.clone(),
        ),
        spawn(
            Box::new(Peer::new(liar, SERVER, fx.layout, tracker.clone(), full, config)),
            listeners.remove(&liar).expect("listener"),
            &book,
            liar_storage,
            tx.clone(),
        ),
    ];
    let storage = fx.storage(honest);
    let have = storage.verified().clone();
    running.push(spawn(
        Box::new(Peer::new(honest, SERVER, fx.layout, tracker, have, config)),
        listeners.remove(&honest).expect("listener"),
        &book,
        storage,
        tx.clone(),
    ));

    let seen = until_complete(&mut events, &[honest]).await;

    let of_honest: Vec<&Event> = seen
        .iter()
        .filter(|(_, n, _)| *n == honest)
        .map(|(_, _, e)| e)
        .collect();
    let corrupt = of_honest
        .iter()
        .position(|e| **e == Event::PieceCorrupt { piece: bad_piece })
        .expect("the tampered piece fails its hash check");
    assert!(
        of_honest[corrupt..].contains(&&Event::PieceVerified { piece: bad_piece }),
        "the piece is fetched again and verified"
    );
    fx.assert_identical(honest);
    for node in running {
        node.abort_and_forget();
    }
}

/// Raw sockets that break the protocol are cut off one by one; the node
/// keeps serving its real client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let fx = Fixture::new("malformed", MIB, PIECE, 4);
    let (client, stranger) = (NodeId(1), NodeId(2));
    let all = ids(3);
    let (mut listeners, book) = listeners(&all).await;
    let server_addr = book[&SERVER];
    let (tx, mut events) = mpsc::unbounded_channel();
    let server = spawn(
        Box::new(Server::new(SERVER, fx.layout)),
        listeners.remove(&SERVER).expect("listener"),
        &book,
        fx.seed_storage(),
        tx.clone(),
    );
    let hash = info_hash(&fx.metainfo);

    // A known peer id, a good handshake, then garbage: an unknown message
    // id, an oversized length prefix, a truncated piece.
    let garbage: [&[u8]; 3] = [
        &[0, 0, 0, 3, 99, 1, 2],
        &[0xff, 0xff, 0xff, 0xff, 7],
        &[0, 0, 0, 5, 7, 0, 0, 0, 0],
    ];
    for bytes in garbage {
        let mut raw = handshaken(server_addr, Handshake::new(hash, peer_id(stranger)))
            .await
            .expect("the server answers a good handshake");
        raw.write_all(bytes).await.expect("send garbage");
        assert_closed(&mut raw).await;
    }
    // Refused before any answer: not BitTorrent, another file, an unknown node.
    let mut raw = TcpStream::connect(server_addr).await.expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    assert_closed(&mut raw).await;
    for refused in [
        Handshake::new([7; 20], peer_id(stranger)),
        Handshake::new(hash, peer_id(NodeId(99))),
        Handshake::new(hash, *b"-qB4650-abcdefghijkl"),
    ] {
        assert!(
            handshaken(server_addr, refused).await.is_none(),
            "{refused:?} is refused"
        );
    }
    // A known peer id from an address that is not its own (127.0.0.2: the
    // address book says 127.0.0.1) is an impostor.
    assert!(
        handshaken_from(
            [127, 0, 0, 2],
            server_addr,
            Handshake::new(hash, peer_id(stranger))
        )
        .await
        .is_none(),
        "a peer id used from another address is refused"
    );

    // A flood of half-sent handshakes from one address (127.0.0.2, no
    // node's): it holds at most its share of handshake slots, each new
    // connection closing its oldest, while a good peer elsewhere is served
    // at once, mid-flood.
    let per_address = DEFAULT_MAX_HALF_OPEN_PER_ADDRESS;
    let flood = quarter_handshakes(&[[127, 0, 0, 2]], per_address + 30, server_addr).await;
    assert!(
        handshaken(server_addr, Handshake::new(hash, peer_id(stranger)))
            .await
            .is_some(),
        "a good peer is served while another address floods"
    );
    let (closed, held) = closed_within_a_second(flood).await;
    assert_eq!(
        closed, 30,
        "one address holds at most {per_address} connections in their handshake"
    );
    // From many addresses (8 each, within their share), the flood meets
    // the node's own limit: past it, each is closed unread at once.
    let froms: Vec<[u8; 4]> = (0..(DEFAULT_MAX_HALF_OPEN - held.len()) / per_address + 3)
        .map(|i| [127, 0, 1, u8::try_from(i + 1).expect("few addresses")])
        .collect();
    let extra = held.len() + froms.len() * per_address - DEFAULT_MAX_HALF_OPEN;
    let flood = quarter_handshakes(&froms, per_address, server_addr).await;
    let (closed, more) = closed_within_a_second(flood).await;
    assert_eq!(
        closed, extra,
        "connections past the half-open limit are closed at once"
    );
    drop((held, more));

    // One bad connection open while the client downloads. The node frees
    // the flood's handshake slots as it sees each close, which a loaded
    // machine may take a moment to get to: until then a new connection is
    // past the limit and closed unread, so try again for a while.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut raw = loop {
        if let Some(raw) = handshaken(server_addr, Handshake::new(hash, peer_id(stranger))).await {
            break raw;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node still refuses handshakes after the flood went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let storage = fx.storage(client);
    let have = storage.verified().clone();
    let node = Client::new(client, SERVER, fx.layout, have, ClientServerConfig::default());
    let client_node = spawn(
        Box::new(node),
        listeners.remove(&client).expect("listener"),
        &book,
        storage,
        tx.clone(),
    );
    raw.write_all(&[0, 0, 0, 1, 200]).await.expect("send garbage");
    assert_closed(&mut raw).await;

    until_complete(&mut events, &[client]).await;
    fx.assert_identical(client);
    server.stop().await.expect("the server survived");
    client_node.abort_and_forget();
}

/// After the handshake, a peer that sends nothing, not even a keep-alive,
/// is closed after the idle timeout; one that sends keep-alives stays, and
/// the node sends its own while it has nothing else to say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_and_keep_alives_keep_them() {
    const IDLE: Duration = Duration::from_millis(800);
    let fx = Fixture::new("idle", MIB, PIECE, 5);
    let stranger = NodeId(1);
    let (mut listeners, book) = listeners(&ids(2)).await;
    let server_addr = book[&SERVER];
    let (tx, _events) = mpsc::unbounded_channel();
    let mut io = NodeIo::new(
        listeners.remove(&SERVER).expect("listener"),
        book.clone(),
        fx.seed_storage(),
    );
    io.idle_timeout = IDLE;
    let server = spawn_io(Box::new(Server::new(SERVER, fx.layout)), io, tx);
    let hash = info_hash(&fx.metainfo);

    // Quiet: closed after the idle timeout, not before. What the server
    // sends meanwhile (its bitfield, keep-alives) is read and dropped.
    let mut quiet = handshaken(server_addr, Handshake::new(hash, peer_id(stranger)))
        .await
        .expect("handshake");
    let opened = tokio::time::Instant::now();
    assert_closed(&mut quiet).await;
    let after = opened.elapsed();
    assert!(
        after >= IDLE,
        "closed after {after:?}, before the idle timeout {IDLE:?}"
    );

    // Talkative: a keep-alive every quarter of the timeout, for three
    // timeouts; the server's own keep-alives arrive meanwhile.
    let raw = handshaken(server_addr, Handshake::new(hash, peer_id(stranger)))
        .await
        .expect("handshake");
    let (mut read, mut write) = raw.into_split();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut keep_alives = 0;
        let mut chunk = [0u8; 4096];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return keep_alives,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let limits = wire::Limits::new(fx.layout.pieces());
            while let Ok(Some((frame, used))) = wire::decode(&buf, &limits) {
                keep_alives += usize::from(matches!(frame, wire::Frame::KeepAlive));
                buf.drain(..used);
            }
        }
    });
    for _ in 0..12 {
        tokio::time::sleep(IDLE / 4).await;
        write
            .write_all(&[0, 0, 0, 0])
            .await
            .expect("the connection is still open");
    }
    assert!(
        !reader.is_finished(),
        "the server kept a peer sending keep-alives"
    );
    drop(write);
    server.stop().await.expect("the server survived");
    let keep_alives = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("closed")
        .expect("reader");
    assert!(
        keep_alives >= 2,
        "the server sent {keep_alives} keep-alives in 3 idle timeouts"
    );
}

/// A second connection using the peer id of a peer whose connection is
/// alive is an impostor's: it is held while the live one is probed, then
/// refused, and the live one carries on. Once the live one is gone, the
/// same peer id gets in again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_peers_id_is_not_taken_over() {
    let fx = Fixture::new("impostor", MIB, PIECE, 6);
    let stranger = NodeId(1);
    let (mut listeners, book) = listeners(&ids(2)).await;
    let server_addr = book[&SERVER];
    let (tx, _events) = mpsc::unbounded_channel();
    let server = spawn(
        Box::new(Server::new(SERVER, fx.layout)),
        listeners.remove(&SERVER).expect("listener"),
        &book,
        fx.seed_storage(),
        tx,
    );
    let hash = info_hash(&fx.metainfo);
    let mut live = handshaken(server_addr, Handshake::new(hash, peer_id(stranger)))
        .await
        .expect("the first connection is answered");
    let asked = tokio::time::Instant::now();
    assert!(
        handshaken(server_addr, Handshake::new(hash, peer_id(stranger)))
            .await
            .is_none(),
        "a second connection with a live peer's id is refused"
    );
    assert!(asked.elapsed() >= PROBE_WAIT, "refused before the probe was over");
    // The live one is still open: reads bring data or nothing, never EOF.
    let mut sink = [0; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(read) = tokio::time::timeout_at(deadline, live.read(&mut sink)).await {
        assert!(
            matches!(read, Ok(n) if n > 0),
            "the live connection was closed: {read:?}"
        );
    }
    drop(live);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while handshaken(server_addr, Handshake::new(hash, peer_id(stranger)))
        .await
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline, "the peer id stays taken");
    }
    server.stop().await.expect("the server survived");
}

/// `count` connections from each loopback address of `froms` to `addr`,
/// in order, each sending a quarter of a handshake.
async fn quarter_handshakes(froms: &[[u8; 4]], count: usize, addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut flood = Vec::new();
    for &from in froms {
        for _ in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(std::net::SocketAddr::from((from, 0)))
                .expect("bind a loopback address");
            let mut raw = socket.connect(addr).await.expect("connect");
            raw.write_all(&[19, b'B', b'i', b't'])
                .await
                .expect("send a quarter handshake");
            flood.push(raw);
        }
    }
    flood
}

/// Reads every socket of `flood` at once for a second (less than the 5 s
/// handshake timeout): how many the node closed, and the ones still open.
async fn closed_within_a_second(flood: Vec<TcpStream>) -> (usize, Vec<TcpStream>) {
    let mut reads = tokio::task::JoinSet::new();
    for mut raw in flood {
        reads.spawn(async move {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(1), raw.read(&mut byte)).await;
            assert!(
                !matches!(read, Ok(Ok(n)) if n > 0),
                "the node answered half a handshake"
            );
            // Closed (EOF or reset) rather than still waiting.
            (read.is_ok(), raw)
        });
    }
    let mut closed = 0;
    let mut held = Vec::new();
    while let Some(done) = reads.join_next().await {
        let (was_closed, raw) = done.expect("read task");
        if was_closed {
            closed += 1;
        } else {
            held.push(raw);
        }
    }
    (closed, held)
}

/// Connects, sends `handshake`, and returns the socket once the peer's
/// handshake arrived, or `None` if the peer closed first.
async fn handshaken(addr: std::net::SocketAddr, handshake: Handshake) -> Option<TcpStream> {
    handshaken_from([127, 0, 0, 1], addr, handshake).await
}

/// [`handshaken`] from the loopback address `from`.
async fn handshaken_from(
    from: [u8; 4],
    addr: std::net::SocketAddr,
    handshake: Handshake,
) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    let mut raw = socket.connect(addr).await.expect("connect");
    let mut out = Vec::new();
    wire::encode_handshake(&handshake, &mut out);
    raw.write_all(&out).await.expect("send handshake");
    let mut theirs = [0; wire::HANDSHAKE_LEN];
    let read = tokio::time::timeout(PATIENCE, raw.read_exact(&mut theirs))
        .await
        .expect("an answer or a close in time");
    read.ok()?;
    let (theirs, _) = wire::decode_handshake(&theirs).ok()??;
    assert_eq!(theirs.peer_id, peer_id(SERVER));
    Some(raw)
}

/// Asserts that the peer closes `raw` (reads reach EOF or fail).
async fn assert_closed(raw: &mut TcpStream) {
    let mut sink = [0; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match raw.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    closed.await.expect("the node closes the connection");
}

/// A client killed mid-download resumes from what it verified: the second
/// run downloads only the rest (plus at most the piece in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_resumes_from_its_verified_pieces() {
    let fx = Fixture::new("resume", 4 * MIB, PIECE, 5);
    let client = NodeId(1);
    let all = ids(2);
    let (mut listeners, book) = listeners(&all).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    // One block per millisecond: 16 MiB/s, so the kill lands mid-download.
    let server = Paced::new(Server::new(SERVER, fx.layout), Duration::from_millis(1));
    let server = spawn(
        Box::new(server),
        listeners.remove(&SERVER).expect("listener"),
        &book,
        fx.seed_storage(),
        tx.clone(),
    );
    let storage = fx.storage(client);
    let have = storage.verified().clone();
    let node = Client::new(client, SERVER, fx.layout, have, ClientServerConfig::default());
    let first = spawn(
        Box::new(node),
        listeners.remove(&client).expect("listener"),
        &book,
        storage,
        tx.clone(),
    );

    // Kill once a quarter of the pieces are verified.
    let quarter = fx.layout.pieces() / 4;
    let mut before = Vec::new();
    let mut verified = 0;
    while verified < quarter {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("progress in time")
            .expect("events");
        verified += u32::from(event.1 == client && matches!(event.2, Event::PieceVerified { .. }));
        before.push(event);
    }
    first.task.abort();
    assert!(first.task.await.expect_err("aborted").is_cancelled());
    while let Ok(event) = events.try_recv() {
        before.push(event);
    }
    assert!(
        !before
            .iter()
            .any(|(_, n, e)| *n == client && *e == Event::DownloadComplete),
        "the kill came too late to test anything"
    );
    let verified_bytes: u64 = before
        .iter()
        .filter(|(_, n, _)| *n == client)
        .filter_map(|(_, _, e)| match e {
            Event::PieceVerified { piece } => Some(u64::from(fx.layout.piece_size(*piece))),
            _ => None,
        })
        .sum();

    // Restart on the same directory: storage re-checks what it verified.
    let storage = fx.storage(client);
    assert!(u64::from(storage.verified().count()) * u64::from(PIECE) >= verified_bytes);
    let have = storage.verified().clone();
    let node = Client::new(client, SERVER, fx.layout, have, ClientServerConfig::default());
    let (tx2, mut events2) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let second = spawn(Box::new(node), listener, &book, storage, tx2);
    let after = until_complete(&mut events2, &[client]).await;

    fx.assert_identical(client);
    let again = bytes_received(&after, client);
    let allowed = fx.bytes.len() as u64 - verified_bytes + u64::from(PIECE);
    assert!(
        again <= allowed,
        "downloaded {again} bytes after the restart, more than the {allowed} missing (+ one piece)"
    );
    assert!(again > 0, "the kill left something to download");
    second.abort_and_forget();
    server.abort_and_forget();
}

/// Relay failover over real sockets: the destination is down when the
/// sender starts, so the sender pushes every chunk to the relay, which
/// forwards them once the destination is up; the destination's file is
/// byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_forwards_to_a_destination_that_comes_up_late() {
    use peerlab_core::relay::{Destination, Relay, RelayCandidate, RelayConfig, Sender, chunk_layout};

    let chunk = 16 * 1024;
    let fx = Fixture::new("relay", MIB, chunk, 6);
    let layout = chunk_layout(fx.bytes.len() as u64, chunk).expect("chunk layout");
    let (sender, dest, relay) = (NodeId(0), NodeId(1), NodeId(2));
    let (mut listeners, book) = listeners(&[sender, dest, relay]).await;
    // The destination is down: nothing listens at its address yet.
    drop(listeners.remove(&dest));
    let config = RelayConfig {
        detection_timeout: Duration::from_millis(500),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        ..RelayConfig::default()
    };
    let candidates = vec![RelayCandidate {
        id: relay,
        upload: u64::MAX,
        download: u64::MAX,
    }];
    let (tx, mut events) = mpsc::unbounded_channel();
    let storage = Storage::open(&fx.dir(relay), &fx.metainfo, layout).expect("relay storage");
    let have = storage.verified().clone();
    let running = [
        spawn(
            Box::new(Sender::new(sender, layout, dest, candidates, config)),
            listeners.remove(&sender).expect("listener"),
            &book,
            fx.seed_storage(),
            tx.clone(),
        ),
        spawn(
            Box::new(Relay::new(relay, layout, have, config)),
            listeners.remove(&relay).expect("listener"),
            &book,
            storage,
            tx.clone(),
        ),
    ];
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(_, _, e)| matches!(e, Event::FailoverStarted { .. }))
    {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("failover in time")
            .expect("events");
        seen.push(event);
    }

    // The destination comes up at its address.
    let listener = tokio::net::TcpListener::bind(book[&dest])
        .await
        .expect("rebind the destination");
    let storage = Storage::open(&fx.dir(dest), &fx.metainfo, layout).expect("destination storage");
    let have = storage.verified().clone();
    let destination = spawn(
        Box::new(Destination::new(dest, layout, have)),
        listener,
        &book,
        storage,
        tx.clone(),
    );
    let after = until_complete(&mut events, &[dest]).await;

    fx.assert_identical(dest);
    let relayed = after
        .iter()
        .filter(|(_, n, e)| *n == dest && matches!(e, Event::BlockReceived { from, .. } if *from == relay))
        .count();
    assert!(relayed > 0, "the relay forwarded chunks to the destination");
    destination.abort_and_forget();
    for node in running {
        node.abort_and_forget();
    }
}
