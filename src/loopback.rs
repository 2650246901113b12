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

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use peerlab_core::NodeId;
use peerlab_core::time::Time;
use peerlab_scenarios::faults::FaultKind;
use peerlab_scenarios::{Outcome, ReportBuilder, Scenario};
use serde::Serialize;

use crate::node_cmd::{self, Record};
use crate::orchestrate::{self, EventsFile};
use crate::run::RunArgs;
use crate::{human, run, scenario_arg};

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
    let started = Instant::now();
    let prep = orchestrate::prepare(args, &scenario, "loopback")?;
    let (name, work, source) = (prep.name.clone(), prep.work.clone(), prep.source.clone());
    let hosts = scenario.hosts();
    let addrs = free_ports(hosts.len())?;
    let addresses = work.join("addresses.txt");
    orchestrate::write_addresses(&addresses, &hosts, &addrs)?;
    if !args.quiet {
        println!(
            "loopback: {} hosts as processes on 127.0.0.1, work directory {} (prepared in {})",
            hosts.len(),
            work.display(),
            human::secs(started.elapsed().as_secs_f64())
        );
    }

    let interrupted = interrupt_flag();
    let start_file = work.join("start");
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
                events: EventsFile::in_dir(&work.join("hosts").join(&h.name)),
            })
            .collect(),
        common: vec![
            "--scenario".into(),
            prep.scenario.display().to_string(),
            "--addresses".into(),
            addresses.display().to_string(),
            "--metainfo".into(),
            prep.metainfo.display().to_string(),
            "--start-file".into(),
            start_file.display().to_string(),
            "--exit-with-parent".into(),
            "--quiet".into(),
        ],
        source: source.clone(),
        pace_server: args.pace_server.map(|d| format!("{} ns", d.0.as_nanos())),
        verbose: args.verbose,
    };
    // Every node opens its storage and listens, then waits at the start
    // barrier; released together a moment later, no start-up is timed.
    let order = peerlab_scenarios::nodes::start_order(&scenario);
    for &i in &order {
        fleet.start(i)?;
    }
    for &i in &order {
        fleet.wait_listening(i, &interrupted)?;
    }
    let epoch = Instant::now() + START_MARGIN;
    node_cmd::release_start(
        &start_file,
        node_cmd::unix_now_ns() + START_MARGIN.as_nanos() as u64,
    )?;
    std::thread::sleep(START_MARGIN);

    let mut faults = orchestrate::schedule(&scenario).into_iter().peekable();
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
        while let Some(&(at, kind, host, _)) = faults.peek() {
            if at > now {
                break;
            }
            faults.next();
            applied += u64::from(fleet.apply(host, kind)?);
        }
        for (i, slot) in fleet.slots.iter_mut().enumerate() {
            for r in slot.read_events()? {
                if r.node != NodeId(i as u32) {
                    bail!("{} holds events of node {}", slot.events.path.display(), r.node);
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

    let report = orchestrate::build_report(&scenario, records, applied, outcome.clone(), "loopback", wall);
    let report_path = orchestrate::report_path(args, &name);
    run::write_report(&report_path, &report)?;

    let identical = if outcome == Outcome::Complete {
        let dirs: Vec<PathBuf> = fleet.slots.iter().map(|s| s.dir.clone()).collect();
        orchestrate::compare_files(&hosts, &source, &dirs)?
    } else {
        Vec::new()
    };
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
    drop(fleet);
    Ok(orchestrate::conclude(
        args,
        &report_path,
        &outcome,
        &identical,
        &work,
    ))
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
pub(crate) fn interrupt_flag() -> Arc<AtomicBool> {
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
    /// Its events file, read as it grows.
    events: EventsFile,
}

impl Slot {
    fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
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
