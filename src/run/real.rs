//! What the real backends (`--on loopback`, `--on mininet`) share: one
//! run's path — prepare, launch, wait, conclude — with the backend filling in
//! only where its hosts live and how their processes start and stop
//! ([`RealBackend`]). Around it: the work directory with the source file,
//! its metainfo, the resolved scenario and the address file; every node's
//! command line; the fault schedule; reading the nodes' `events.jsonl`;
//! merging them into the simulator's [`ReportBuilder`]; comparing the
//! downloaded files with the source; and the end of the run (report,
//! summary, exit status).

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use peerlab_core::time::Time;
use peerlab_net::metainfo_file::{self, HashKind};
use peerlab_scenarios::faults::FaultKind;
use peerlab_scenarios::nodes;
use peerlab_scenarios::scenario::Host;
use peerlab_scenarios::{Outcome, Report, ReportBuilder, Role, Scenario};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{Map, Value};

use super::RunArgs;
use super::output;
use crate::node_cmd::{EVENTS_FILE, Record};
use crate::{human, scenario_arg};

/// What a real backend does in a run; [`run`] does the rest.
pub trait RealBackend {
    /// The backend's name: the report's `backend`, the work directory's
    /// prefix, the stats file's (`<name>-stats.json`).
    const NAME: &'static str;

    /// Refuses what this backend cannot run (naming the field), or cannot
    /// run on this machine.
    fn check(&self, scenario: &Scenario, origin: &str) -> Result<()>;

    /// Each host's listening address, in the scenario's host order.
    fn addresses(&self, hosts: &[Host]) -> Result<Vec<SocketAddr>>;

    /// Where the hosts run, for the line printed before the run.
    fn describe(&self, hosts: usize) -> String;

    /// Starts every node, applies the faults at their times, waits for the
    /// run's end and stops every node.
    fn launch_and_wait(&mut self, launch: &Launch) -> Result<Ran>;
}

/// A prepared run, handed to [`RealBackend::launch_and_wait`].
pub struct Launch<'a> {
    pub args: &'a RunArgs,
    pub scenario: &'a Scenario,
    pub prep: &'a Prepared,
    pub hosts: Vec<Host>,
    pub addrs: Vec<SocketAddr>,
    /// The address file every node reads.
    pub addresses: PathBuf,
    /// Each host's data directory.
    pub dirs: Vec<PathBuf>,
}

impl Launch<'_> {
    /// The `peerlab node` arguments of host `k`: the run's files, its host
    /// name and data directory, the source file and pacing for the server,
    /// the verbosity.
    pub fn node_args(&self, k: usize) -> Vec<String> {
        let prep = self.prep;
        let mut args: Vec<String> = vec![
            "--scenario".into(),
            prep.scenario.display().to_string(),
            "--addresses".into(),
            self.addresses.display().to_string(),
            "--metainfo".into(),
            prep.metainfo.display().to_string(),
            "--host".into(),
            self.hosts[k].name.clone(),
            "--data".into(),
            self.dirs[k].display().to_string(),
            "--exit-with-parent".into(),
            "--quiet".into(),
        ];
        if k == 0 {
            args.extend(["--file".into(), prep.source.display().to_string()]);
            if let Some(gap) = self.args.pace_server {
                args.extend(["--pace".into(), format!("{} ns", gap.0.as_nanos())]);
            }
        }
        args.extend((0..self.args.verbose.max(1)).map(|_| "-v".to_string()));
        args
    }

    /// Every node's events so far, read from each data directory.
    pub fn read_all_events(&self) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        for dir in &self.dirs {
            records.extend(EventsFile::in_dir(dir).read_new()?);
        }
        Ok(records)
    }
}

/// How a real run ended, as [`RealBackend::launch_and_wait`] saw it.
pub struct Ran {
    pub outcome: Outcome,
    /// Every node's events.
    pub records: Vec<Record>,
    /// How many faults were applied (the disruptive halves).
    pub applied: u64,
    /// Wall time of the run.
    pub wall: Duration,
    /// Where the report's run ends, after the common epoch.
    pub end: Duration,
    /// The backend's own measurements, for the stats file.
    pub stats: Map<String, Value>,
    /// Lines printed after the table.
    pub summary: Vec<String>,
}

/// Runs `peerlab run SCENARIO --on <backend>`: prepares the work directory,
/// lets the backend launch the nodes and wait, then writes the report,
/// compares the files, writes the stats and concludes.
pub fn run<B: RealBackend>(args: &RunArgs, mut backend: B) -> Result<ExitCode> {
    let (scenario, origin) = scenario_arg::load(&args.scenario, &args.set)?;
    if args.trace.is_some() {
        bail!("--trace records the simulator's events; it is for --on sim only");
    }
    backend.check(&scenario, &origin)?;
    let started = Instant::now();
    let prep = prepare(args, &scenario, B::NAME)?;
    let hosts = scenario.hosts();
    let addrs = backend.addresses(&hosts)?;
    let addresses = prep.work.join("addresses.txt");
    write_addresses(&addresses, &hosts, &addrs)?;
    if !args.quiet {
        println!(
            "{}: {}, work directory {} (prepared in {})",
            B::NAME,
            backend.describe(hosts.len()),
            prep.work.display(),
            human::secs(started.elapsed().as_secs_f64())
        );
    }
    let dirs = hosts
        .iter()
        .map(|h| prep.work.join("hosts").join(&h.name))
        .collect();
    let launch = Launch {
        args,
        scenario: &scenario,
        prep: &prep,
        hosts,
        addrs,
        addresses,
        dirs,
    };
    let ran = backend.launch_and_wait(&launch)?;
    let report = build_report(
        &scenario,
        ran.records,
        ran.applied,
        ran.outcome.clone(),
        B::NAME,
        ran.end,
    );
    let report_path = output::report_path(args, &prep.name);
    output::write_report(&report_path, &report)?;
    let identical = if ran.outcome == Outcome::Complete {
        compare_files(&scenario, &launch.hosts, &prep.source, &launch.dirs)?
    } else {
        Vec::new()
    };
    let mut stats = ran.stats;
    stats.insert("wall_s".into(), ran.wall.as_secs_f64().into());
    stats.insert("identical".into(), serde_json::to_value(&identical)?);
    let stats_path = prep.work.join(format!("{}-stats.json", B::NAME));
    std::fs::write(&stats_path, serde_json::to_string_pretty(&stats)?)
        .with_context(|| format!("cannot write the stats to {}", stats_path.display()))?;
    if !args.quiet {
        output::print_table(&report, args.all, ran.wall);
        for line in &ran.summary {
            println!("{line}");
        }
    }
    Ok(conclude(args, &report_path, &ran.outcome, &identical, &prep.work))
}

/// Set on Ctrl-C or SIGTERM.
pub fn interrupt_flag() -> Arc<AtomicBool> {
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

/// The source file's name (and so every downloader's).
pub const FILE_NAME: &str = "file.bin";

/// Exit status when a downloader's file differs from the source.
pub const EXIT_MISMATCH: u8 = 5;

/// The prepared work directory of a run.
pub struct Prepared {
    /// The scenario's name (for the default report path).
    pub name: String,
    pub work: PathBuf,
    /// The source file, served by host 0.
    pub source: PathBuf,
    pub metainfo: PathBuf,
    /// The resolved scenario, as JSON, for every node.
    pub scenario: PathBuf,
}

/// Creates the (new or empty) work directory and writes the source file,
/// its metainfo and the resolved scenario into it.
pub fn prepare(args: &RunArgs, scenario: &Scenario, backend: &str) -> Result<Prepared> {
    let name = scenario.name.clone().unwrap_or_else(|| "scenario".into());
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("peerlab-{backend}-{name}-{}", std::process::id())),
    };
    if work.exists() && std::fs::read_dir(&work).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "work directory {} is not empty; give an empty or new one (--work-dir)",
            work.display()
        );
    }
    // The source and one copy per downloader, all under the work directory.
    let size = scenario.file.size.0;
    let copies = u64::from(scenario.downloaders()) + 1;
    crate::disk::ensure_room(
        &work,
        size.saturating_mul(copies),
        &format!(
            "this run ({copies} copies of the {} file: the source and every download)",
            human::bytes(size)
        ),
    )?;
    std::fs::create_dir_all(work.join("source"))
        .with_context(|| format!("cannot create the work directory {}", work.display()))?;
    let source = work.join("source").join(FILE_NAME);
    if let Err(e) = write_source(&source, size, scenario.seed) {
        // Leave no partial source behind (a full disk stays full otherwise).
        let _ = std::fs::remove_file(&source);
        return Err(e);
    }
    let meta = metainfo_file::create_metainfo(&source, scenario.layout().piece_len(), HashKind::Sha1)?;
    let metainfo = metainfo_file::save(&meta, &metainfo_file::metainfo_path(&source))?;
    let scenario_path = work.join("scenario.json");
    std::fs::write(&scenario_path, serde_json::to_string_pretty(scenario)?)
        .with_context(|| format!("cannot write {}", scenario_path.display()))?;
    Ok(Prepared {
        name,
        work,
        source,
        metainfo,
        scenario: scenario_path,
    })
}

/// Writes the address file: one `name = ip:port` line per host.
pub fn write_addresses(path: &Path, hosts: &[Host], addrs: &[SocketAddr]) -> Result<()> {
    let mut text = String::from("# peerlab address file: one `name = ip:port` per host\n");
    for (h, a) in hosts.iter().zip(addrs) {
        text.push_str(&format!("{} = {a}\n", h.name));
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Every fault (and its undoing) as (time, kind, host index, the fault),
/// in time order.
pub fn schedule(scenario: &Scenario) -> Vec<(Duration, FaultKind, usize, usize)> {
    let hosts = scenario.hosts();
    let mut faults: Vec<_> = scenario
        .faults
        .iter()
        .enumerate()
        .flat_map(|(k, f)| {
            let host = hosts.iter().position(|h| h.name == f.host).unwrap_or(0);
            f.expand()
                .into_iter()
                .map(move |(at, kind)| (at.0, kind, host, k))
        })
        .collect();
    faults.sort_by_key(|&(at, _, host, _)| (at, host));
    faults
}

/// Whether a fault is applied before the nodes are released rather than at
/// its time: a misbehaviour due at the start, so that a node's first
/// messages (a liar's bitfield leaves as its first connection opens) come
/// from the misbehaving node already. Nodes handle the signals before they
/// listen.
pub fn before_release(at: Duration, kind: FaultKind) -> bool {
    at.is_zero() && kind.misbehaves()
}

/// Whether a fault counts as one (the disruptive half, as the simulator
/// counts).
pub fn counts_as_fault(kind: FaultKind) -> bool {
    !matches!(
        kind,
        FaultKind::Restart | FaultKind::Join | FaultKind::Resume | FaultKind::LinkUp | FaultKind::Honest
    )
}

/// A node's `events.jsonl`, read as it grows.
pub struct EventsFile {
    pub path: PathBuf,
    /// How far it has been read (whole lines only).
    offset: u64,
}

impl EventsFile {
    /// The events file in data directory `dir`.
    pub fn in_dir(dir: &Path) -> EventsFile {
        EventsFile {
            path: dir.join(EVENTS_FILE),
            offset: 0,
        }
    }

    /// The complete lines appended since the last call.
    pub fn read_new(&mut self) -> Result<Vec<Record>> {
        let path = &self.path;
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        file.seek(SeekFrom::Start(self.offset))?;
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
            self.offset += n as u64;
            out.push(record);
        }
    }
}

/// Merges every node's events in time order (every process counts from the
/// same epoch) into the report of `backend`, for a run that ended `end`
/// after the epoch.
pub fn build_report(
    scenario: &Scenario,
    mut records: Vec<Record>,
    faults: u64,
    outcome: Outcome,
    backend: &str,
    end: Duration,
) -> Report {
    records.sort_by_key(|r| (r.t_ns, r.node));
    let mut builder = ReportBuilder::new(scenario);
    for _ in 0..faults {
        builder.count_fault();
    }
    for r in &records {
        builder.record(Time::from_nanos(r.t_ns), r.node, &r.event);
    }
    builder.finish(backend, outcome, Time::ZERO + end, None, None)
}

/// Each downloader's file compared with the source (after a complete run):
/// those the run waited for ([`nodes::run_ends_when`]; not a liar).
pub fn compare_files(
    scenario: &Scenario,
    hosts: &[Host],
    source: &Path,
    dirs: &[PathBuf],
) -> Result<Vec<(String, bool)>> {
    let waited: Vec<usize> = nodes::run_ends_when(scenario)
        .into_iter()
        .filter(|&(_, m)| m == nodes::Milestone::DownloadComplete)
        .map(|(k, _)| k)
        .collect();
    let mut identical = Vec::new();
    for (k, (h, dir)) in hosts.iter().zip(dirs).enumerate() {
        if h.role == Role::Peer && waited.contains(&k) {
            identical.push((h.name.clone(), same_bytes(source, &dir.join(FILE_NAME))?));
        }
    }
    Ok(identical)
}

/// Prints the files' verdict and the report's path, keeps or removes the
/// work directory, and gives the exit status.
pub fn conclude(
    args: &RunArgs,
    report_path: &Path,
    outcome: &Outcome,
    identical: &[(String, bool)],
    work: &Path,
) -> ExitCode {
    let differ: Vec<&str> = identical
        .iter()
        .filter(|(_, same)| !same)
        .map(|(n, _)| n.as_str())
        .collect();
    let complete = *outcome == Outcome::Complete;
    if complete {
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
    if args.keep || !complete || !differ.is_empty() {
        println!("work directory kept: {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(work);
    }
    match (complete, differ.is_empty()) {
        (true, true) => ExitCode::SUCCESS,
        (true, false) => ExitCode::from(EXIT_MISMATCH),
        _ => ExitCode::from(3),
    }
}

/// Writes `size` bytes of ChaCha8 output seeded with `seed` to `path`, 1 MiB
/// at a time.
pub fn write_source(path: &Path, size: u64, seed: u64) -> Result<()> {
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
pub fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
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
