//! A loopback harness for the driver tests: a random source file with its
//! metainfo in a unique temporary directory, nodes on 127.0.0.1 port 0, and
//! their events on one channel.

#![allow(dead_code)] // each test binary uses part of the harness

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use peerlab_core::pieces::DEFAULT_BLOCK_SIZE;
use peerlab_core::swarm::metainfo::Metainfo;
use peerlab_core::{Event, Node, NodeId, PieceLayout, Time};
use peerlab_net::driver::{DriverError, NodeIo, run_node};
use peerlab_net::metainfo_file::{HashKind, create_metainfo};
use peerlab_net::storage::Storage;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Bound on every wait in these tests.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub type Events = mpsc::UnboundedReceiver<(Time, NodeId, Event)>;

/// A source file and its metainfo in a fresh directory, removed on drop.
pub struct Fixture {
    pub root: PathBuf,
    pub source: PathBuf,
    pub bytes: Vec<u8>,
    pub metainfo: Metainfo,
    pub layout: PieceLayout,
}

impl Fixture {
    /// `size` random bytes (ChaCha seeded with `seed`) in pieces of
    /// `piece_len`.
    pub fn new(name: &str, size: usize, piece_len: u32, seed: u64) -> Fixture {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "peerlab-net-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("source")).expect("temp dir");
        let mut bytes = vec![0; size];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
        let source = root.join("source").join("file.bin");
        std::fs::write(&source, &bytes).expect("source file");
        let metainfo = create_metainfo(&source, piece_len, HashKind::Sha1).expect("metainfo");
        let layout = metainfo.layout(DEFAULT_BLOCK_SIZE).expect("layout");
        Fixture {
            root,
            source,
            bytes,
            metainfo,
            layout,
        }
    }

    /// The seed's storage: the source file, checked.
    pub fn seed_storage(&self) -> Storage {
        Storage::open_seed(&self.source, &self.metainfo).expect("seed storage")
    }

    /// Node `id`'s download directory.
    pub fn dir(&self, id: NodeId) -> PathBuf {
        self.root.join(format!("node-{}", id.0))
    }

    /// Node `id`'s download storage, opened (or resumed) in its directory.
    pub fn storage(&self, id: NodeId) -> Storage {
        Storage::open(&self.dir(id), &self.metainfo, self.layout).expect("download storage")
    }

    /// Asserts that node `id` holds a byte-identical copy of the source.
    pub fn assert_identical(&self, id: NodeId) {
        let got = std::fs::read(self.dir(id).join(&self.metainfo.name)).expect("downloaded file");
        assert_eq!(got.len(), self.bytes.len(), "{id}: file length");
        if let Some(at) = got.iter().zip(&self.bytes).position(|(a, b)| a != b) {
            panic!("{id}: first differing byte at offset {at}");
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Binds one listener per node on 127.0.0.1, port 0; the address book.
pub async fn listeners(ids: &[NodeId]) -> (BTreeMap<NodeId, TcpListener>, BTreeMap<NodeId, SocketAddr>) {
    let mut listeners = BTreeMap::new();
    let mut book = BTreeMap::new();
    for &id in ids {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        book.insert(id, listener.local_addr().expect("local addr"));
        listeners.insert(id, listener);
    }
    (listeners, book)
}

/// A running node: its task and the switch that stops it cleanly.
pub struct Running {
    pub task: JoinHandle<Result<(), DriverError>>,
    stop: oneshot::Sender<()>,
}

impl Running {
    /// Kills the node: its task is aborted, as a process is killed.
    pub fn abort_and_forget(self) {
        self.task.abort();
    }

    /// Stops the node cleanly and returns what the driver returned.
    pub async fn stop(self) -> Result<(), DriverError> {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("driver stops in time")
            .expect("driver task")
    }
}

/// Spawns `node` with `listener`, `book` and `storage`.
pub fn spawn(
    node: Box<dyn Node + Send>,
    listener: TcpListener,
    book: &BTreeMap<NodeId, SocketAddr>,
    storage: Storage,
    events: mpsc::UnboundedSender<(Time, NodeId, Event)>,
) -> Running {
    spawn_io(node, NodeIo::new(listener, book.clone(), storage), events)
}

/// Spawns `node` with `io` (its timeouts and limits set by the test).
pub fn spawn_io(
    node: Box<dyn Node + Send>,
    io: NodeIo,
    events: mpsc::UnboundedSender<(Time, NodeId, Event)>,
) -> Running {
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run_node(node, io, events, async {
        let _ = stopped.await;
    }));
    Running { task, stop }
}

/// Every event received until each of `nodes` reported
/// [`Event::DownloadComplete`]; panics after [`PATIENCE`].
pub async fn until_complete(events: &mut Events, nodes: &[NodeId]) -> Vec<(Time, NodeId, Event)> {
    let mut waiting: BTreeSet<NodeId> = nodes.iter().copied().collect();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !waiting.is_empty() {
        let next = tokio::time::timeout_at(deadline, events.recv()).await;
        let Ok(Some(event)) = next else {
            panic!("nodes {waiting:?} did not complete in {PATIENCE:?}; events: {seen:#?}");
        };
        if event.2 == Event::DownloadComplete {
            waiting.remove(&event.1);
        }
        seen.push(event);
    }
    seen
}

/// Payload bytes `node` received, by its events.
pub fn bytes_received(events: &[(Time, NodeId, Event)], node: NodeId) -> u64 {
    events
        .iter()
        .filter(|(_, n, _)| *n == node)
        .map(|(_, _, e)| match e {
            Event::BlockReceived { block, .. } | Event::BlockDiscarded { block, .. } => u64::from(block.len),
            _ => 0,
        })
        .sum()
}

/// Reads from `path`, as a file the test tampers with.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("file to tamper with");
    let mut byte = [0];
    file.read_exact_at(&mut byte, offset).expect("read");
    byte[0] ^= 0xff;
    file.write_all_at(&byte, offset).expect("write");
}
