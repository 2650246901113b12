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
//!    join = start again; corrupt, silent and lying = their line in the
//!    node's control file (`DATA/misbehave`), then SIGUSR1 (one due at 0 s
//!    just before the nodes are released), honest = SIGUSR2. Link faults
//!    need an emulated network and are refused (`--on mininet`).
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

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use peerlab_core::NodeId;
use peerlab_core::time::Time;
use peerlab_scenarios::faults::{Fault, FaultKind};
use peerlab_scenarios::scenario::Host;
use peerlab_scenarios::{Outcome, ReportBuilder, Scenario};
use serde_json::Map;

use super::output;
use super::real::{self, EventsFile, Launch, Ran, RealBackend};
use crate::human;
use crate::node_cmd::{self, Record};

/// How long a node gets to stop after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(3);

/// How long a node may take to listen after it is started (the server
/// hashes its whole file first).
const START_PATIENCE: Duration = Duration::from_secs(120);

/// How often the run looks at its processes, events and faults.
const TICK: Duration = Duration::from_millis(10);

/// How far ahead of the release the common epoch lies: time for every node
/// to read the start file.
const START_MARGIN: Duration = Duration::from_millis(50);

/// Every host a process on 127.0.0.1.
pub struct Loopback;

impl RealBackend for Loopback {
    const NAME: &'static str = "loopback";

    /// Refuses link faults: loopback cannot cut or shape one host's link.
    fn check(&self, scenario: &Scenario, origin: &str) -> Result<()> {
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

    /// One free port on 127.0.0.1 per host (bound together, then released
    /// for the nodes to bind).
    fn addresses(&self, hosts: &[Host]) -> Result<Vec<SocketAddr>> {
        let listeners = (0..hosts.len())
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .context("cannot bind a port on 127.0.0.1")?;
        listeners
            .iter()
            .map(|l| l.local_addr().context("local address"))
            .collect()
    }

    fn describe(&self, hosts: usize) -> String {
        format!("{hosts} hosts as processes on 127.0.0.1")
    }

    fn launch_and_wait(&mut self, launch: &Launch) -> Result<Ran> {
        let interrupted = real::interrupt_flag();
        let start_file = launch.prep.work.join("start");
        let mut fleet = Fleet::new(launch, &start_file);
        let (epoch, early) = fleet.start_together(launch.scenario, &start_file, &interrupted)?;
        let watched = fleet.watch(launch, epoch, early, &interrupted);
        let wall = epoch.elapsed();
        fleet.stop_all();
        let (outcome, mut records, applied) = watched?;
        for slot in &mut fleet.slots {
            records.extend(slot.read_events()?);
        }
        let peak_rss: Vec<(String, u64)> = fleet.slots.iter().map(|s| (s.name.clone(), s.peak_rss)).collect();
        let (peak_host, peak) = peak_rss
            .iter()
            .max_by_key(|(_, b)| *b)
            .cloned()
            .unwrap_or_default();
        let mut stats = Map::new();
        stats.insert("peak_rss_bytes".into(), serde_json::to_value(&peak_rss)?);
        Ok(Ran {
            outcome,
            records,
            applied,
            wall,
            end: wall,
            stats,
            summary: vec![
                format!(
                    "loopback: {} processes, {applied} faults applied, peak RSS {} ({peak_host}), wall {}",
                    fleet.slots.len(),
                    human::bytes(peak),
                    human::secs(wall.as_secs_f64())
                ),
                "note: link rates are not enforced on loopback; nodes send as fast as 127.0.0.1 \
                 carries, so times are not comparable with the bounds (use --on mininet for that)"
                    .into(),
            ],
        })
    }
}

/// Every host's process, stopped when dropped.
struct Fleet {
    slots: Vec<Slot>,
}

struct Slot {
    name: String,
    addr: SocketAddr,
    dir: PathBuf,
    /// The running process (None: not started, crashed or left).
    child: Option<Child>,
    peak_rss: u64,
    /// Its events file, read as it grows.
    events: EventsFile,
    /// Its `peerlab node` arguments.
    args: Vec<String>,
}

impl Slot {
    fn log_path(&self) -> PathBuf {
        self.dir.join(peerlab_net::metainfo_file::LOG_FILE)
    }

    /// The complete lines appended to its events file since the last call.
    fn read_events(&mut self) -> Result<Vec<Record>> {
        self.events.read_new()
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
    /// One slot per host, not started yet; every node waits at `start_file`.
    fn new(launch: &Launch, start_file: &std::path::Path) -> Fleet {
        let slots = (0..launch.hosts.len())
            .map(|k| {
                let mut args = launch.node_args(k);
                args.extend(["--start-file".into(), start_file.display().to_string()]);
                Slot {
                    name: launch.hosts[k].name.clone(),
                    addr: launch.addrs[k],
                    dir: launch.dirs[k].clone(),
                    child: None,
                    peak_rss: 0,
                    events: EventsFile::in_dir(&launch.dirs[k]),
                    args,
                }
            })
            .collect();
        Fleet { slots }
    }

    /// Starts every node in the scenario's order; each opens its storage
    /// and listens, then waits at the start barrier. Released together a
    /// moment later, no start-up is timed. Misbehaviour due at the start is
    /// switched on just before the release ([`real::before_release`]).
    /// Returns the common epoch and how many faults that applied.
    fn start_together(
        &mut self,
        scenario: &Scenario,
        start_file: &std::path::Path,
        interrupted: &AtomicBool,
    ) -> Result<(Instant, u64)> {
        let order = peerlab_scenarios::nodes::start_order(scenario);
        for &i in &order {
            self.start(i)?;
        }
        for &i in &order {
            self.wait_listening(i, interrupted)?;
        }
        let mut applied = 0;
        for (at, kind, host, k) in real::schedule(scenario) {
            if real::before_release(at, kind) {
                applied += u64::from(self.apply(host, kind, &scenario.faults[k])?);
            }
        }
        let epoch = Instant::now() + START_MARGIN;
        node_cmd::release_start(
            start_file,
            node_cmd::unix_now_ns() + START_MARGIN.as_nanos() as u64,
        )?;
        std::thread::sleep(START_MARGIN);
        Ok((epoch, applied))
    }

    /// Applies the faults at their times and reads every node's events
    /// until every downloader completed or the time limit; returns the
    /// outcome, the events read and how many faults were applied.
    fn watch(
        &mut self,
        launch: &Launch,
        epoch: Instant,
        applied_early: u64,
        interrupted: &AtomicBool,
    ) -> Result<(Outcome, Vec<Record>, u64)> {
        let scenario = launch.scenario;
        let mut faults = real::schedule(scenario)
            .into_iter()
            .filter(|&(at, kind, _, _)| !real::before_release(at, kind))
            .peekable();
        let mut applied = applied_early;
        let mut records: Vec<Record> = Vec::new();
        let mut progress = ReportBuilder::new(scenario);
        let bar = output::progress_bar(launch.args.quiet);
        let wanted = u64::from(scenario.downloaders()) * scenario.file.size.0;
        let max_time = scenario.limits.max_time.0;
        let outcome = loop {
            if interrupted.load(Ordering::Relaxed) {
                bail!(
                    "interrupted; every node was stopped; work directory {}",
                    launch.prep.work.display()
                );
            }
            let now = epoch.elapsed();
            while let Some(&(at, kind, host, k)) = faults.peek() {
                if at > now {
                    break;
                }
                faults.next();
                applied += u64::from(self.apply(host, kind, &scenario.faults[k])?);
            }
            for (i, slot) in self.slots.iter_mut().enumerate() {
                for r in slot.read_events()? {
                    if r.node != NodeId(i as u32) {
                        bail!("{} holds events of node {}", slot.events.path.display(), r.node);
                    }
                    progress.record(Time::from_nanos(r.t_ns), r.node, &r.event);
                    records.push(r);
                }
            }
            self.check_alive()?;
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
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok((outcome, records, applied))
    }

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
        let child = Command::new(exe)
            .arg("node")
            .args(&slot.args)
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

    /// Applies one fault to host `i` (`kind`: `fault`'s own or its
    /// undoing's); returns whether it counts as a fault (the disruptive
    /// half, as the simulator counts).
    fn apply(&mut self, i: usize, kind: FaultKind, fault: &Fault) -> Result<bool> {
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
            // The node reads what to do from its control file on SIGUSR1.
            FaultKind::Corrupt | FaultKind::Silent | FaultKind::Lying | FaultKind::Flood => {
                let mode = fault.misbehaviour(kind).unwrap_or_default();
                let control = self.slots[i].dir.join(peerlab_net::misbehave::CONTROL_FILE);
                std::fs::write(&control, mode.to_line() + "\n")
                    .with_context(|| format!("cannot write {}", control.display()))?;
                self.slots[i].signal(Signal::SIGUSR1);
                Ok(true)
            }
            FaultKind::Honest => {
                self.slots[i].signal(Signal::SIGUSR2);
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
