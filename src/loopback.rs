//! `peerlab run SCENARIO --on loopback`: the whole scenario on this machine,
//! every host a real `peerlab node` process on 127.0.0.1.
//!
//! 1. A work directory gets the source file (seeded random bytes, written
//!    1 MiB at a time), its metainfo (pieces of the scenario's layout: relay
//!    runs use the chunk size), the resolved scenario, and an address file
//!    with one free 127.0.0.1 port per host.
//! 2. Every host starts as `peerlab node` (this executable) on its own data
//!    directory, all with the same `--epoch-unix-ns`, so the `t_ns` of every
//!    process's `events.jsonl` shares one origin. The server starts first
//!    (relay runs: last, so the destination is up before the sender pushes).
//! 3. Faults happen for real at their times: crash = SIGKILL, restart = the
//!    process again on the same data directory (it resumes from its
//!    verified pieces), hang = SIGSTOP, resume = SIGCONT, leave = SIGTERM,
//!    join = start again. Link faults need an emulated network and are
//!    refused (`--on mininet`).
//! 4. The run ends when every downloader reported `DownloadComplete` (relay:
//!    and the sender finished), or at `limits.max_time`. Every process gets
//!    SIGTERM, then SIGKILL after a grace period — also on Ctrl-C and on any
//!    error (a guard's `Drop`), and a node whose parent dies stops by itself.
//! 5. The events files are merged in time order into the same
//!    [`ReportBuilder`] the simulator uses: the report has the simulator's
//!    shape, `backend: "loopback"`, no trace hash, no simulator statistics.
//!    Every downloader's file is then compared with the source.
//!
//! Link rates are not enforced: nodes send as fast as loopback carries, so
//! distribution times are far below the scenario's bounds.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use peerlab_core::NodeId;
use peerlab_core::time::Time;
use peerlab_net::metainfo_file::{self, HashKind};
use peerlab_scenarios::faults::FaultKind;
use peerlab_scenarios::{Outcome, Protocol, ReportBuilder, Role, Scenario};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::node_cmd::{self, EVENTS_FILE, Record};
use crate::run::RunArgs;
use crate::{human, run, scenario_arg};

/// The source file's name (and so every downloader's).
const FILE_NAME: &str = "file.bin";

/// How long a node gets to stop after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(3);

/// How long a node may take to listen after it is started (the server
/// hashes its whole file first).
const START_PATIENCE: Duration = Duration::from_secs(120);

/// How often the run looks at its processes, events and faults.
const TICK: Duration = Duration::from_millis(10);

/// Exit status when a downloader's file differs from the source.
pub const EXIT_MISMATCH: u8 = 5;

/// What `peerlab run --on loopback` leaves in the work directory besides
/// the report: measurements that are not part of the report's contract.
#[derive(Debug, Serialize)]
struct Stats {
    /// Wall time from the common epoch to the end of the run.
    wall_s: f64,
    /// Each host's largest peak RSS (VmHWM) over its processes.
    peak_rss_bytes: Vec<(String, u64)>,
    /// Each downloader's file compared with the source.
    identical: Vec<(String, bool)>,
}

/// Refuses what loopback cannot run, naming the field.
pub fn check_supported(scenario: &Scenario, origin: &str) -> Result<()> {
    for (i, f) in scenario.faults.iter().enumerate() {
        if matches!(
            f.kind,
            FaultKind::LinkDown | FaultKind::LinkUp | FaultKind::Bandwidth
        ) {
            bail!(
                "{origin}: field `faults[{i}]` ({} on {}) needs --on mininet: loopback cannot cut \
                 or shape one host's link",
                f.kind.name(),
                f.host
            );
        }
    }
    Ok(())
}

/// Runs `peerlab run SCENARIO --on loopback`.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let (scenario, origin) = scenario_arg::load(&args.scenario, &args.set)?;
    check_supported(&scenario, &origin)?;
    if args.trace.is_some() {
        bail!("--trace records the simulator's events; it is for --on sim only");
    }
    let name = scenario.name.clone().unwrap_or_else(|| "scenario".into());
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("peerlab-loopback-{name}-{}", std::process::id())),
    };
    if work.exists() && std::fs::read_dir(&work).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "work directory {} is not empty; give an empty or new one (--work-dir)",
            work.display()
        );
    }
    std::fs::create_dir_all(work.join("source"))
        .with_context(|| format!("cannot create the work directory {}", work.display()))?;

    let layout = scenario.layout();
    let source = work.join("source").join(FILE_NAME);
    let started = Instant::now();
    write_source(&source, scenario.file.size.0, scenario.seed)?;
    let metainfo = metainfo_file::create_metainfo(&source, layout.piece_len(), HashKind::Sha1)?;
    let metainfo_path = metainfo_file::save(&metainfo, &metainfo_file::metainfo_path(&source))?;
    let scenario_path = work.join("scenario.json");
    std::fs::write(&scenario_path, serde_json::to_string_pretty(&scenario)?)
        .with_context(|| format!("cannot write {}", scenario_path.display()))?;
    let hosts = scenario.hosts();
    let addrs = free_ports(hosts.len())?;
    let addresses = work.join("addresses.txt");
    let mut text = String::from("# peerlab address file: one `name = ip:port` per host\n");
    for (h, a) in hosts.iter().zip(&addrs) {
        text.push_str(&format!("{} = {a}\n", h.name));
    }
    std::fs::write(&addresses, text).with_context(|| format!("cannot write {}", addresses.display()))?;
    if !args.quiet {
        println!(
            "loopback: {} hosts as processes on 127.0.0.1, work directory {} (prepared in {})",
            hosts.len(),
            work.display(),
            human::secs(started.elapsed().as_secs_f64())
        );
    }

    let interrupted = interrupt_flag();
    let epoch_ns = node_cmd::unix_now_ns();
    let epoch = Instant::now();
    let mut fleet = Fleet {
        slots: hosts
            .iter()
            .zip(&addrs)
            .map(|(h, &addr)| Slot {
                name: h.name.clone(),
                addr,
                dir: work.join("hosts").join(&h.name),
                child: None,
                peak_rss: 0,
                events_offset: 0,
            })
            .collect(),
        common: vec![
            "--scenario".into(),
            scenario_path.display().to_string(),
            "--addresses".into(),
            addresses.display().to_string(),
            "--metainfo".into(),
            metainfo_path.display().to_string(),
            "--epoch-unix-ns".into(),
            epoch_ns.to_string(),
            "--exit-with-parent".into(),
            "--quiet".into(),
        ],
        source: source.clone(),
        pace_server: args.pace_server.map(|d| format!("{} ns", d.0.as_nanos())),
        verbose: args.verbose,
    };
    // The sender of a relay run fails over when its destination does not
    // answer: start it last. Everyone else dials the server: start it first.
    let server_first = scenario.protocol != Protocol::Relay;
    let order: Vec<usize> = if scenario.protocol == Protocol::Swarm {
        // Peers announce to the tracker as they start: start it first.
        let tracker = hosts.len() - 1;
        [tracker].into_iter().chain(0..tracker).collect()
    } else if server_first {
        (0..hosts.len()).collect()
    } else {
        (1..hosts.len()).chain([0]).collect()
    };
    for &i in &order {
        fleet.start(i)?;
        if i == 0 || order.first() == Some(&i) || order.last() == Some(&i) || !server_first {
            fleet.wait_listening(i, &interrupted)?;
        }
    }

    let mut faults: Vec<(Duration, FaultKind, usize)> = scenario
        .faults
        .iter()
        .flat_map(|f| {
            let host = hosts.iter().position(|h| h.name == f.host).unwrap_or(0);
            f.expand().into_iter().map(move |(at, kind)| (at.0, kind, host))
        })
        .collect();
    faults.sort_by_key(|&(at, _, host)| (at, host));
    let mut faults = faults.into_iter().peekable();
    let mut applied = 0;
    let mut records: Vec<Record> = Vec::new();
    let mut progress = ReportBuilder::new(&scenario);
    let bar = run::progress_bar(args.quiet);
    let wanted = u64::from(scenario.downloaders()) * scenario.file.size.0;
    let max_time = scenario.limits.max_time.0;
    let outcome = loop {
        if interrupted.load(Ordering::Relaxed) {
            bail!(
                "interrupted; every node was stopped; work directory {}",
                work.display()
            );
        }
        let now = epoch.elapsed();
        while let Some(&(at, kind, host)) = faults.peek() {
            if at > now {
                break;
            }
            faults.next();
            applied += u64::from(fleet.apply(host, kind)?);
        }
        for (i, slot) in fleet.slots.iter_mut().enumerate() {
            for r in slot.read_events()? {
                if r.node != NodeId(i as u32) {
                    bail!("{} holds events of node {}", slot.events_path().display(), r.node);
                }
                progress.record(Time::from_nanos(r.t_ns), r.node, &r.event);
                records.push(r);
            }
        }
        fleet.check_alive()?;
        if let Some(bar) = &bar {
            bar.set_length(wanted.max(1));
            bar.set_position(progress.bytes_down());
            bar.set_message(format!(
                "t={} · {}/{} done",
                human::secs(now.as_secs_f64()),
                progress.completed(),
                scenario.downloaders()
            ));
        }
        if progress.all_complete() {
            break Outcome::Complete;
        }
        if now >= max_time {
            break Outcome::TimeLimit;
        }
        std::thread::sleep(TICK);
    };
    let wall = epoch.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    fleet.stop_all();
    for slot in &mut fleet.slots {
        records.extend(slot.read_events()?);
    }

    // Every process's clock counts from the same epoch: merge by time.
    records.sort_by_key(|r| (r.t_ns, r.node));
    let mut builder = ReportBuilder::new(&scenario);
    for _ in 0..applied {
        builder.count_fault();
    }
    for r in &records {
        builder.record(Time::from_nanos(r.t_ns), r.node, &r.event);
    }
    let report = builder.finish("loopback", outcome.clone(), None, None);
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.report.json")));
    run::write_report(&report_path, &report)?;

    let mut identical = Vec::new();
    if outcome == Outcome::Complete {
        for (h, slot) in hosts.iter().zip(&fleet.slots) {
            if h.role == Role::Peer {
                let same = same_bytes(&source, &slot.dir.join(FILE_NAME))?;
                identical.push((h.name.clone(), same));
            }
        }
    }
    let stats = Stats {
        wall_s: wall.as_secs_f64(),
        peak_rss_bytes: fleet.slots.iter().map(|s| (s.name.clone(), s.peak_rss)).collect(),
        identical: identical.clone(),
    };
    std::fs::write(
        work.join("loopback-stats.json"),
        serde_json::to_string_pretty(&stats)?,
    )
    .with_context(|| format!("cannot write the stats in {}", work.display()))?;

    if !args.quiet {
        run::print_table(&report, args.all, wall);
        let (peak_host, peak) = stats
            .peak_rss_bytes
            .iter()
            .max_by_key(|(_, b)| *b)
            .cloned()
            .unwrap_or_default();
        println!(
            "loopback: {} processes, {} faults applied, peak RSS {} ({peak_host}), wall {}",
            fleet.slots.len(),
            applied,
            human::bytes(peak),
            human::secs(wall.as_secs_f64())
        );
        println!(
            "note: link rates are not enforced on loopback; nodes send as fast as 127.0.0.1 \
             carries, so times are not comparable with the bounds (use --on mininet for that)"
        );
    }
    let differ: Vec<&str> = identical
        .iter()
        .filter(|(_, same)| !same)
        .map(|(n, _)| n.as_str())
        .collect();
    if outcome == Outcome::Complete {
        println!(
            "files: {}/{} byte-identical to the source{}",
            identical.len() - differ.len(),
            identical.len(),
            if differ.is_empty() {
                String::new()
            } else {
                format!("; DIFFERENT: {}", differ.join(", "))
            }
        );
    }
    println!("report: {}", report_path.display());
    let keep = args.keep || outcome != Outcome::Complete || !differ.is_empty();
    if keep {
        println!("work directory kept: {}", work.display());
    } else {
        drop(fleet);
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(match (outcome, differ.is_empty()) {
        (Outcome::Complete, true) => ExitCode::SUCCESS,
        (Outcome::Complete, false) => ExitCode::from(EXIT_MISMATCH),
        _ => ExitCode::from(3),
    })
}

/// Writes `size` bytes of ChaCha8 output seeded with `seed` to `path`, 1 MiB
/// at a time.
fn write_source(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut buf = vec![0; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", path.display()))?;
        left -= n as u64;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Whether two files hold the same bytes (read 1 MiB at a time).
fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()));
    let (mut fa, mut fb) = match (open(a), open(b)) {
        (Ok(fa), Ok(fb)) => (fa, fb),
        (Err(e), _) => return Err(e),
        (_, Err(_)) => return Ok(false),
    };
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// `n` free ports on 127.0.0.1 (bound together, then released for the
/// nodes to bind).
fn free_ports(n: usize) -> Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot bind a port on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| l.local_addr().context("local address"))
        .collect()
}

/// Set on Ctrl-C or SIGTERM.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    let _ = std::thread::Builder::new()
        .name("peerlab-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut term) = signal(SignalKind::terminate()) else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            });
            set.store(true, Ordering::Relaxed);
        });
    flag
}

/// Every host's process, stopped when dropped.
struct Fleet {
    slots: Vec<Slot>,
    /// Arguments every `peerlab node` gets.
    common: Vec<String>,
    source: PathBuf,
    pace_server: Option<String>,
    verbose: u8,
}

struct Slot {
    name: String,
    addr: SocketAddr,
    dir: PathBuf,
    /// The running process (None: not started, crashed or left).
    child: Option<Child>,
    peak_rss: u64,
    /// How far its events file has been read (whole lines only).
    events_offset: u64,
}

impl Slot {
    fn events_path(&self) -> PathBuf {
        self.dir.join(EVENTS_FILE)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// The complete lines appended to its events file since the last call.
    fn read_events(&mut self) -> Result<Vec<Record>> {
        let path = self.events_path();
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        file.seek(SeekFrom::Start(self.events_offset))?;
        let mut reader = std::io::BufReader::new(file);
        let mut out = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            // A line without its newline is still being written (or was cut
            // by a SIGKILL mid-write): read it next time, or never.
            if n == 0 || !line.ends_with('\n') {
                return Ok(out);
            }
            let record: Record = serde_json::from_str(line.trim_end())
                .with_context(|| format!("{}: bad event line {:?}", path.display(), line.trim_end()))?;
            self.events_offset += n as u64;
            out.push(record);
        }
    }

    fn sample_rss(&mut self) {
        if let Some(child) = &self.child
            && let Some(peak) = node_cmd::peak_rss_bytes(child.id())
        {
            self.peak_rss = self.peak_rss.max(peak);
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child
            && let Ok(pid) = i32::try_from(child.id())
        {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

impl Fleet {
    /// Starts host `i`'s process (again, after a crash: same data dir).
    fn start(&mut self, i: usize) -> Result<()> {
        let exe = std::env::current_exe().context("cannot find the peerlab executable")?;
        let slot = &mut self.slots[i];
        std::fs::create_dir_all(&slot.dir)
            .with_context(|| format!("cannot create {}", slot.dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(slot.log_path())
            .with_context(|| format!("cannot write {}", slot.log_path().display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("node")
            .args(&self.common)
            .arg("--host")
            .arg(&slot.name)
            .arg("--data")
            .arg(&slot.dir);
        if i == 0 {
            cmd.arg("--file").arg(&self.source);
            if let Some(gap) = &self.pace_server {
                cmd.arg("--pace").arg(gap);
            }
        }
        for _ in 0..self.verbose.max(1) {
            cmd.arg("-v");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start the node process of {}", slot.name))?;
        tracing::info!(host = %slot.name, pid = child.id(), "started");
        slot.child = Some(child);
        Ok(())
    }

    /// Waits until host `i` accepts connections.
    fn wait_listening(&mut self, i: usize, interrupted: &AtomicBool) -> Result<()> {
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&self.slots[i].addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            self.check_alive()?;
            if interrupted.load(Ordering::Relaxed) {
                bail!("interrupted while starting the nodes");
            }
            if started.elapsed() > START_PATIENCE {
                bail!(
                    "node {} did not listen on {} within {START_PATIENCE:?}; see {}",
                    self.slots[i].name,
                    self.slots[i].addr,
                    self.slots[i].log_path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails if a process ended that was not stopped by the run; samples
    /// every live process's peak RSS.
    fn check_alive(&mut self) -> Result<()> {
        for slot in &mut self.slots {
            slot.sample_rss();
            let Some(child) = &mut slot.child else {
                continue;
            };
            if let Some(status) = child.try_wait()? {
                slot.child = None;
                let log = std::fs::read_to_string(slot.log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "node {} exited on its own ({status}); its log {} ends:\n{}",
                    slot.name,
                    slot.log_path().display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// Applies one fault to host `i`; returns whether it counts as a fault
    /// (the disruptive half, as the simulator counts).
    fn apply(&mut self, i: usize, kind: FaultKind) -> Result<bool> {
        let name = self.slots[i].name.clone();
        tracing::info!(host = %name, fault = kind.name(), "applying fault");
        match kind {
            FaultKind::Crash | FaultKind::Leave => {
                let slot = &mut self.slots[i];
                slot.sample_rss();
                if kind == FaultKind::Crash {
                    slot.signal(Signal::SIGKILL);
                } else {
                    slot.signal(Signal::SIGTERM);
                    slot.signal(Signal::SIGCONT);
                }
                if let Some(mut child) = slot.child.take() {
                    reap(&mut child, kind == FaultKind::Leave);
                }
                Ok(true)
            }
            FaultKind::Restart | FaultKind::Join => {
                if self.slots[i].child.is_none() {
                    self.start(i)?;
                }
                Ok(false)
            }
            FaultKind::Hang => {
                self.slots[i].signal(Signal::SIGSTOP);
                Ok(true)
            }
            FaultKind::Resume => {
                self.slots[i].signal(Signal::SIGCONT);
                Ok(false)
            }
            FaultKind::LinkDown | FaultKind::LinkUp | FaultKind::Bandwidth => {
                bail!("a {} fault on {name} needs --on mininet", kind.name())
            }
        }
    }

    /// SIGTERM (and SIGCONT, for a hung one) to every process, SIGKILL to
    /// those still running after the grace period.
    fn stop_all(&mut self) {
        for slot in &mut self.slots {
            slot.sample_rss();
            slot.signal(Signal::SIGTERM);
            slot.signal(Signal::SIGCONT);
        }
        let deadline = Instant::now() + GRACE;
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                reap(&mut child, false);
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Waits for `child` to end (up to the grace period if `patient`), killing
/// it if it has not.
fn reap(child: &mut Child, patient: bool) {
    if patient {
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let _ = child.wait();
}
