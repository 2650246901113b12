//! `peerlab node`: one real node — server, client, peer, relay — on this
//! machine, playing the role its scenario gives its host, over
//! peerlab-net's tokio driver.
//!
//! What a node needs from outside, all from flags, so that nodes can run on
//! separate machines:
//!
//! - the scenario (the same file on every machine) and the host it plays;
//! - an address file: where every host of the scenario listens, as
//!   `name = ip:port` lines (`#` starts a comment) or a JSON object
//!   `{"name": "ip:port", …}`;
//! - a data directory: downloads go to `DIR/<file name>` (resumed from its
//!   verified pieces after a crash), the events to `DIR/events.jsonl`;
//! - the file's metainfo (`peerlab metainfo create`), and for the server the
//!   file itself.
//!
//! SIGUSR1 switches the node to the misbehaviour named in `DIR/misbehave`
//! (`corrupt every=K`, `silent`, `lying` or `flood rate=K`; without the
//! file, corrupt every piece), SIGUSR2 makes it honest again ([`peerlab_net::misbehave`]).
//!
//! `DIR/events.jsonl` has one line per node event,
//! `{"t_ns":…,"node":…,"event":…}` (the serde JSON of `peerlab_core::Event`),
//! written with one `write` per line and never buffered, so a SIGKILL loses
//! nothing already reported. A restarted node appends. `t_ns` counts from
//! `--epoch-unix-ns` (default: the node's start), so nodes started with the
//! same epoch share the time origin.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::ProgressBar;
use peerlab_core::{Event, NodeId, Time};
use peerlab_net::driver::{NodeIo, run_node};
use peerlab_net::metainfo_file;
use peerlab_net::storage::Storage;
use peerlab_scenarios::{Dur, Protocol, Role, Scenario, nodes};
use serde::{Deserialize, Serialize};

use crate::{human, scenario_arg};

/// The events file in a node's data directory.
pub use peerlab_net::metainfo_file::EVENTS_FILE;

/// Arguments of `peerlab node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Scenario file (JSON) or library scenario name; the same on every
    /// machine of the run.
    #[arg(long)]
    scenario: String,
    /// Override a scenario field, e.g. --set peers.count=8 (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// The scenario host this node plays (`server`, `p3`, a relay's name…).
    #[arg(long)]
    host: String,
    /// Data directory: the downloaded file, its resume journal, and
    /// events.jsonl. Created if missing.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Address file: `name = ip:port` per host (or a JSON object). This
    /// node listens on its own entry and dials the others.
    #[arg(long, value_name = "FILE")]
    addresses: PathBuf,
    /// The file's metainfo (`peerlab metainfo create`). Default for the
    /// server: FILE.peerlab.json next to --file.
    #[arg(long, value_name = "FILE")]
    metainfo: Option<PathBuf>,
    /// Server only: the file to serve [default: DIR/<name in the metainfo>].
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Origin of event times, in nanoseconds since the UNIX epoch; give every
    /// node of a run the same one [default: when this node starts].
    #[arg(long, value_name = "NS")]
    epoch_unix_ns: Option<u64>,
    /// Start barrier: open storage and listen, then wait until FILE exists
    /// and start at the epoch it holds (UNIX nanoseconds). An orchestrator
    /// writes it once every node is ready, a moment ahead, so that all
    /// downloads start together and no node's start-up is timed. Overrides
    /// --epoch-unix-ns.
    #[arg(long, value_name = "FILE")]
    start_file: Option<PathBuf>,
    /// Send at most one message per DUR (e.g. "2 ms"): a deliberately slow
    /// node, so that faults can land mid-transfer on a fast network.
    #[arg(long, value_name = "DUR", value_parser = parse_dur)]
    pace: Option<Dur>,
    /// Stop when the process that started this node goes away (used by
    /// `peerlab run --on loopback`, so that no node outlives it).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_dur(text: &str) -> Result<Dur, String> {
    serde_json::from_value::<Dur>(serde_json::Value::String(text.to_string())).map_err(|e| e.to_string())
}

/// One line of an events file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// Nanoseconds since the run's epoch.
    pub t_ns: u64,
    /// The node that reported it.
    pub node: NodeId,
    /// What happened.
    pub event: Event,
}

/// Reads an address file: `name = ip:port` lines (blank lines and `#`
/// comments allowed) or a JSON object of the same. Errors name the file and
/// the line.
pub fn load_addresses(path: &Path) -> Result<BTreeMap<String, SocketAddr>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the address file {}", path.display()))?;
    let parse_addr = |where_: &str, name: &str, value: &str| -> Result<SocketAddr> {
        value.trim().parse().with_context(|| {
            format!(
                "address file {}, {where_}: host {name:?} has address {:?}, which is not ip:port \
                 (e.g. 10.0.0.2:6881)",
                path.display(),
                value.trim()
            )
        })
    };
    let mut book = BTreeMap::new();
    if text.trim_start().starts_with('{') {
        let map: BTreeMap<String, String> = serde_json::from_str(&text).with_context(|| {
            format!(
                "address file {} is not a JSON object of \"name\": \"ip:port\" strings",
                path.display()
            )
        })?;
        for (name, value) in map {
            let addr = parse_addr("JSON", &name, &value)?;
            book.insert(name, addr);
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let where_ = format!("line {}", i + 1);
            let Some((name, value)) = line.split_once('=') else {
                bail!(
                    "address file {}, {where_}: expected `name = ip:port`, found {line:?}",
                    path.display()
                );
            };
            let name = name.trim();
            if name.is_empty() {
                bail!(
                    "address file {}, {where_}: the host name is empty",
                    path.display()
                );
            }
            let addr = parse_addr(&where_, name, value)?;
            if book.insert(name.to_string(), addr).is_some() {
                bail!(
                    "address file {}, {where_}: host {name:?} is listed twice",
                    path.display()
                );
            }
        }
    }
    Ok(book)
}

/// The address book of a run of `scenario` by node id: every host of the
/// scenario must have an address, and every address a host.
pub fn address_book(
    scenario: &Scenario,
    names: &BTreeMap<String, SocketAddr>,
    path: &Path,
) -> Result<BTreeMap<NodeId, SocketAddr>> {
    let hosts = scenario.hosts();
    let missing: Vec<&str> = hosts
        .iter()
        .map(|h| h.name.as_str())
        .filter(|n| !names.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        bail!(
            "address file {} has no address for scenario host(s) {}; add a `name = ip:port` line for each",
            path.display(),
            missing.join(", ")
        );
    }
    let unknown: Vec<&str> = names
        .keys()
        .map(String::as_str)
        .filter(|n| !hosts.iter().any(|h| h.name == *n))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        bail!(
            "address file {} names host(s) {} that the scenario does not have; its hosts are {}",
            path.display(),
            unknown.join(", "),
            known.join(", ")
        );
    }
    Ok(hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (NodeId(i as u32), names[&h.name]))
        .collect())
}

/// Nanoseconds since the UNIX epoch, now.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The monotonic instant matching `unix_ns` on the wall clock.
/// The node's tokio runtime.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Listens on `listen`, then waits at the start barrier. `None`: the node
/// was told to stop before it started.
async fn listen_then_wait(
    args: &NodeArgs,
    listen: std::net::SocketAddr,
    epoch_ns: u64,
) -> Result<Option<(tokio::net::TcpListener, u64)>> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen} (host {:?} in {}); is the address this machine's, \
             and the port free?",
            args.host,
            args.addresses.display()
        )
    })?;
    tokio::select! {
        epoch = start_barrier(args.start_file.as_deref(), epoch_ns) => Ok(Some((listener, epoch?))),
        () = shutdown_signal(args.exit_with_parent) => Ok(None),
    }
}

/// A host whose scenario `start` is later than the run's: it stops
/// listening (dialers are refused, as by a host that is not running yet)
/// until the epoch plus `start`, then listens again. A node restarted after
/// that time listens on. `None`: told to stop meanwhile.
async fn join_later(
    args: &NodeArgs,
    listener: tokio::net::TcpListener,
    listen: std::net::SocketAddr,
    epoch_ns: u64,
    start: Duration,
) -> Result<Option<tokio::net::TcpListener>> {
    let at = epoch_instant(epoch_ns) + start;
    if at <= tokio::time::Instant::now() {
        return Ok(Some(listener));
    }
    drop(listener);
    tracing::info!(host = %args.host, start_s = start.as_secs_f64(), "joining later");
    tokio::select! {
        () = tokio::time::sleep_until(at) => {}
        () = shutdown_signal(args.exit_with_parent) => return Ok(None),
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen again on {listen} (host {:?}) at its start",
            args.host
        )
    })?;
    Ok(Some(listener))
}

/// The start barrier: with a start file, waits until it exists and reads
/// the common epoch from it; then waits until that epoch. Returns the epoch.
async fn start_barrier(start_file: Option<&Path>, epoch_ns: u64) -> Result<u64> {
    let epoch_ns = match start_file {
        None => epoch_ns,
        Some(path) => loop {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    break text.trim().parse::<u64>().with_context(|| {
                        format!("{}: not a start time in UNIX nanoseconds", path.display())
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        },
    };
    tokio::time::sleep_until(epoch_instant(epoch_ns)).await;
    Ok(epoch_ns)
}

/// Writes the start file of [`start_barrier`] (atomically: a node never
/// reads half of it): every node waiting on it starts at `epoch_ns`.
pub fn release_start(path: &Path, epoch_ns: u64) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, epoch_ns.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the start file {}", path.display()))
}

fn epoch_instant(unix_ns: u64) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let wall = unix_now_ns();
    if wall >= unix_ns {
        now.checked_sub(Duration::from_nanos(wall - unix_ns))
            .unwrap_or(now)
    } else {
        now + Duration::from_nanos(unix_ns - wall)
    }
}

/// Runs `peerlab node`.
pub fn run(args: &NodeArgs) -> Result<ExitCode> {
    let epoch_ns = args.epoch_unix_ns.unwrap_or_else(unix_now_ns);
    let (scenario, origin) = scenario_arg::load(&args.scenario, &args.set)?;
    let hosts = scenario.hosts();
    let Some(index) = hosts.iter().position(|h| h.name == args.host) else {
        let known: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        bail!(
            "{origin} has no host {:?}; its hosts are {}",
            args.host,
            known.join(", ")
        );
    };
    let id = NodeId(index as u32);
    let role = hosts[index].role;
    let book = address_book(&scenario, &load_addresses(&args.addresses)?, &args.addresses)?;
    let events_file = open_events_file(&args.data)?;
    let metainfo = load_metainfo(args, &scenario, &origin, role)?;
    if role == Role::Tracker {
        return run_tracker_host(args, &scenario, id, book, &metainfo, events_file, epoch_ns);
    }
    // A swarm's peers reach its tracker over HTTP (BEP 3 announce).
    let http_tracker = hosts
        .iter()
        .position(|h| h.role == Role::Tracker)
        .map(|i| NodeId(i as u32));
    let layout = scenario.layout();
    let storage = if role == Role::Server {
        let file = args
            .file
            .clone()
            .unwrap_or_else(|| args.data.join(&metainfo.name));
        Storage::open_seed(&file, &metainfo)?
    } else {
        // What an earlier run already wrote (the file is sparse until then).
        let present = std::fs::metadata(args.data.join(&metainfo.name)).map_or(0, |m| {
            use std::os::unix::fs::MetadataExt;
            m.len().min(m.blocks().saturating_mul(512))
        });
        crate::disk::ensure_room(
            &args.data,
            metainfo.length.saturating_sub(present),
            &format!("the download of {:?}", metainfo.name),
        )?;
        Storage::open(&args.data, &metainfo, layout)?
    };
    let have = (role != Role::Server).then(|| storage.verified().clone());
    let resumed = have.as_ref().map_or(0, |h| h.count());
    let mut node = nodes::build_node(&scenario, id, have);
    if let Some(gap) = args.pace {
        node = Box::new(peerlab_core::pace::Paced::new(node, gap.0));
    }
    let listen = book[&id];
    tracing::info!(host = %args.host, %id, ?role, %listen, resumed, "starting");

    let runtime = runtime()?;
    let bar = human::progress_bar(
        args.quiet || role != Role::Peer,
        u64::from(layout.pieces()),
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} pieces {msg}",
    );
    if let Some(bar) = &bar {
        bar.set_position(u64::from(resumed));
    }
    let start = hosts[index].start;
    let result = runtime.block_on(async {
        // Before listening: a driver signals only nodes that listen, and
        // SIGUSR1 unhandled would end the process.
        misbehave_on_signals(&args.host, &args.data);
        let Some((listener, epoch_ns)) = listen_then_wait(args, listen, epoch_ns).await? else {
            return Ok(()); // stopped while waiting to start
        };
        let Some(listener) = join_later(args, listener, listen, epoch_ns, start).await? else {
            return Ok(()); // stopped while waiting to join
        };
        let mut io = NodeIo::new(listener, book, storage);
        io.epoch = epoch_instant(epoch_ns);
        io.http_tracker = http_tracker;
        let (tx, writer) = EventsWriter::start(args, events_file, bar.clone())?;
        let driven = run_node(node, io, tx, shutdown_signal(args.exit_with_parent)).await;
        // The driver dropped its sender: the writer drains and ends.
        let written = writer.join();
        driven?;
        written
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(peak) = peak_rss_bytes(std::process::id()) {
        tracing::info!(peak_rss_bytes = peak, "stopped");
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Creates the data directory and opens its events file for appending.
fn open_events_file(data: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(data).with_context(|| {
        format!(
            "cannot create the data directory {}; choose one this user can write (--data)",
            data.display()
        )
    })?;
    let events_path = data.join(EVENTS_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&events_path)
        .with_context(|| {
            format!(
                "cannot write {} in the data directory; choose a directory this user can write (--data)",
                events_path.display()
            )
        })
}

/// The file's metainfo (--metainfo, or the server's next to --file),
/// refused unless it describes the scenario's file and pieces.
fn load_metainfo(
    args: &NodeArgs,
    scenario: &Scenario,
    origin: &str,
    role: Role,
) -> Result<peerlab_core::swarm::metainfo::Metainfo> {
    let metainfo_path = match (&args.metainfo, &args.file) {
        (Some(m), _) => m.clone(),
        (None, Some(f)) if role == Role::Server => metainfo_file::metainfo_path(f),
        _ => bail!(
            "--metainfo FILE is needed: the file's metainfo, made on the server's machine with \
             `peerlab metainfo create FILE --piece-size {}`",
            scenario.layout().piece_len()
        ),
    };
    let metainfo = metainfo_file::load(&metainfo_path)?;
    let layout = scenario.layout();
    if metainfo.length != layout.file_len() || metainfo.piece_length != layout.piece_len() {
        let piece_field = if scenario.protocol == Protocol::Relay {
            "relay.chunk_size"
        } else {
            "file.piece_size"
        };
        bail!(
            "metainfo {} describes {} bytes in pieces of {} bytes, but {origin} has {} bytes \
             (file.size) in pieces of {} ({piece_field}); make them agree, e.g. \
             --set file.size={} --set {piece_field}={}",
            metainfo_path.display(),
            metainfo.length,
            metainfo.piece_length,
            layout.file_len(),
            layout.piece_len(),
            metainfo.length,
            metainfo.piece_length
        );
    }
    Ok(metainfo)
}

/// The thread that writes a node's events to its events file.
struct EventsWriter {
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    path: PathBuf,
}

/// Where a driver hands its events.
type EventSender = tokio::sync::mpsc::UnboundedSender<(Time, NodeId, Event)>;

impl EventsWriter {
    /// Starts the writer thread; it ends once the returned sender is gone.
    fn start(
        args: &NodeArgs,
        file: std::fs::File,
        bar: Option<ProgressBar>,
    ) -> Result<(EventSender, EventsWriter)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let host = args.host.clone();
        let thread = std::thread::Builder::new()
            .name("peerlab-events".into())
            .spawn(move || write_events(rx, file, bar.as_ref(), &host))
            .context("cannot start the events thread")?;
        let path = args.data.join(EVENTS_FILE);
        Ok((tx, EventsWriter { thread, path }))
    }

    /// Waits for the writer to drain, and says whether every event was
    /// written.
    fn join(self) -> Result<()> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the events thread panicked"))?
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Runs the swarm's tracker host: the core tracker node behind the HTTP
/// announce endpoint (BEP 3, compact peers as in BEP 23).
fn run_tracker_host(
    args: &NodeArgs,
    scenario: &Scenario,
    id: NodeId,
    book: BTreeMap<NodeId, SocketAddr>,
    metainfo: &peerlab_core::swarm::metainfo::Metainfo,
    events_file: std::fs::File,
    epoch_ns: u64,
) -> Result<ExitCode> {
    let listen = book[&id];
    let node = nodes::build_node(scenario, id, None);
    let info_hash = metainfo_file::info_hash(metainfo);
    tracing::info!(host = %args.host, %id, %listen, "starting the HTTP tracker");
    let runtime = runtime()?;
    runtime.block_on(async {
        let Some((listener, epoch_ns)) = listen_then_wait(args, listen, epoch_ns).await? else {
            return Ok(()); // stopped while waiting to start
        };
        let mut io = peerlab_net::TrackerIo::new(listener, book, info_hash);
        io.epoch = epoch_instant(epoch_ns);
        let (tx, writer) = EventsWriter::start(args, events_file, None)?;
        peerlab_net::run_tracker(node, io, tx, shutdown_signal(args.exit_with_parent)).await;
        writer.join()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Writes every event as one JSON line, one `write` each, until the
/// driver's sender is gone.
fn write_events(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(Time, NodeId, Event)>,
    mut file: std::fs::File,
    bar: Option<&ProgressBar>,
    host: &str,
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(256);
    while let Some((at, node, event)) = rx.blocking_recv() {
        if let Some(bar) = bar {
            match event {
                Event::PieceVerified { .. } => bar.inc(1),
                Event::DownloadComplete => bar.set_message("complete; serving until stopped (Ctrl-C)"),
                _ => {}
            }
        }
        if event == Event::DownloadComplete {
            tracing::info!(host, t_s = at.as_secs_f64(), "download complete");
        }
        line.clear();
        let record = Record {
            t_ns: at.as_nanos(),
            node,
            event,
        };
        serde_json::to_writer(&mut line, &record)?;
        line.push(b'\n');
        file.write_all(&line)?;
    }
    Ok(())
}

/// The misbehaviour faults on a real network ([`peerlab_net::misbehave`]):
/// SIGUSR1 switches this node to the misbehaviour named in the control file
/// of its data directory `data` (`corrupt` without one), SIGUSR2 makes it
/// honest again.
fn misbehave_on_signals(host: &str, data: &Path) {
    use peerlab_core::misbehave::Misbehaviour;
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, on) in [
        (SignalKind::user_defined1(), true),
        (SignalKind::user_defined2(), false),
    ] {
        let Ok(mut s) = signal(kind) else {
            tracing::warn!(
                host,
                "cannot listen for SIGUSR1/SIGUSR2: the misbehaviour faults will not apply"
            );
            continue;
        };
        let host = host.to_string();
        let data = data.to_path_buf();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let mode = if on {
                    match peerlab_net::misbehave::read_control(&data) {
                        Ok(mode) => mode,
                        Err(e) => {
                            tracing::warn!(host = %host, "misbehaviour not switched: {e}");
                            continue;
                        }
                    }
                } else {
                    Misbehaviour::Honest
                };
                tracing::info!(host = %host, mode = %mode.to_line(), "misbehaviour switched");
                peerlab_net::misbehave::set(mode);
            }
        });
    }
}

/// Completes on Ctrl-C, SIGTERM, or (with `with_parent`) when the parent
/// process is gone.
async fn shutdown_signal(with_parent: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let parent = nix::unistd::getppid();
    let orphaned = async move {
        if !with_parent {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if nix::unistd::getppid() != parent {
                tracing::warn!("the process that started this node is gone; stopping");
                return;
            }
        }
    };
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = orphaned => {}
    }
}

/// Peak resident set size (VmHWM) of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `peerlab node --help` examples.
pub const HELP: &str = "\
Example: client-server on two machines
  # on both: the same scenario file and address file
  cat > addrs.txt <<END
  server = 10.0.0.1:6881
  p1     = 10.0.0.2:6881
  END
  # on 10.0.0.1 (the server; prints the info hash)
  peerlab metainfo create film.mkv --piece-size 256KiB
  peerlab node --scenario my.json --set peers.count=1 --host server \\
      --data srv/ --addresses addrs.txt --file film.mkv
  # copy film.mkv.peerlab.json to 10.0.0.2, then
  peerlab node --scenario my.json --set peers.count=1 --host p1 \\
      --data dl/ --addresses addrs.txt --metainfo film.mkv.peerlab.json

The scenario's file.size and piece size must match the metainfo. Events go to
DIR/events.jsonl; the node runs (and serves) until Ctrl-C or SIGTERM; killed,
it resumes from DIR on the next start.

To test how others cope, SIGUSR1 switches the node to the misbehaviour named
in DIR/misbehave (one line: corrupt [every=K], silent, lying, or flood
rate=K; no file: corrupt) and SIGUSR2 makes it honest again:
  echo 'flood rate=50' > dl/misbehave && kill -USR1 $(pgrep -f 'host p1')";
