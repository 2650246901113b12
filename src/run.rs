//! `peerlab run`: simulate a scenario, print the table, write the report.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use peerlab_scenarios::{Outcome, Report, Role};
use peerlab_sim::Simulation;

use crate::human;
use crate::scenario_arg;

/// Arguments of `peerlab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (JSON) or library scenario name.
    pub(crate) scenario: String,
    /// Where to write the JSON report [default: <scenario name>.report.json].
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Override a scenario field, e.g. --set peers.count=8 (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub(crate) set: Vec<String>,
    /// Record every event of the run to FILE (JSON lines) so that
    /// `peerlab replay FILE` can run it again and compare. Large runs make
    /// large traces (about 100 bytes per event). Simulator only.
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,
    /// Print every host in the table, not only the first and last few.
    #[arg(long)]
    pub(crate) all: bool,
    /// Print no table, only errors and the report's path.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Where to run: `sim` (the deterministic simulator) or `loopback`
    /// (every host a real `peerlab node` process on 127.0.0.1; link rates
    /// are not enforced) or `mininet` (real nodes on an emulated network,
    /// link rates shaped; needs root and Mininet).
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    pub(crate) on: Backend,
    /// Loopback: the work directory (source file, address file, each
    /// host's data directory) [default: a new directory under $TMPDIR,
    /// removed after a run whose files all match].
    #[arg(long, value_name = "DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// Loopback: keep the work directory even when the run succeeded.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Loopback: the server sends at most one message per DUR (e.g. "2 ms"),
    /// so that faults land mid-transfer.
    #[arg(long, value_name = "DUR", value_parser = parse_dur)]
    pub(crate) pace_server: Option<peerlab_scenarios::Dur>,
    /// Mininet: how each shaped link shares its rate between the hosts
    /// sending through it. `fair` (the default): one queue per other host,
    /// served in turn, as a fair-queueing link (fq_codel, Linux's default
    /// qdisc) does and as the simulator models links; `fifo`: one queue for
    /// everything, where TCP flows share unevenly and a message to an idle
    /// host waits behind every other host's backlog.
    #[arg(long, value_enum, value_name = "QUEUE")]
    pub(crate) link_queue: Option<LinkQueue>,
    /// Loopback: the verbosity passed on to every node (set by -v).
    #[arg(skip)]
    pub(crate) verbose: u8,
}

/// Where `peerlab run` runs a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The deterministic simulator.
    Sim,
    /// Real processes and sockets on 127.0.0.1.
    Loopback,
    /// Real processes on a Mininet network (root; link rates shaped).
    Mininet,
}

/// How a shaped Mininet link shares its rate (`--link-queue`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkQueue {
    /// One queue per other host, served round robin.
    #[default]
    Fair,
    /// A single first-in first-out queue.
    Fifo,
}

impl LinkQueue {
    /// The name on the command line and in the Mininet driver's plan.
    pub fn name(self) -> &'static str {
        match self {
            LinkQueue::Fair => "fair",
            LinkQueue::Fifo => "fifo",
        }
    }
}

fn parse_dur(text: &str) -> Result<peerlab_scenarios::Dur, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|e| e.to_string())
}

/// Runs `peerlab run`.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    if args.link_queue.is_some() && args.on != Backend::Mininet {
        bail!("--link-queue shapes Mininet's links; it is for --on mininet only");
    }
    if args.on == Backend::Loopback {
        return crate::loopback::run(args);
    }
    if args.on == Backend::Mininet {
        return crate::mininet::run(args);
    }
    let (scenario, origin) = scenario_arg::load(&args.scenario, &args.set)?;
    let mut sim = Simulation::new(&scenario, &origin)?;
    let trace = match &args.trace {
        Some(path) => Some(crate::trace_file::TraceWriter::start(path, &scenario, &mut sim)?),
        None => None,
    };
    let bar = progress_bar(args.quiet);
    let started = Instant::now();
    let report = sim.run(|p| {
        if let Some(bar) = &bar {
            bar.set_length(p.bytes_wanted.max(1));
            bar.set_position(p.bytes_down);
            bar.set_message(format!(
                "t={} · {}/{} done · {} events",
                human::secs(p.now.as_secs_f64()),
                p.completed,
                p.downloaders,
                human::count(p.events)
            ));
        }
    });
    let wall = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let name = scenario.name.clone().unwrap_or_else(|| "scenario".into());
    let path = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.report.json")));
    write_report(&path, &report)?;
    if let Some(trace) = trace {
        trace.finish(&report)?;
    }
    if !args.quiet {
        print_table(&report, args.all, wall);
    }
    println!("report: {}", path.display());
    if let Some(trace) = &args.trace {
        println!(
            "trace:  {} (replay with: peerlab replay {})",
            trace.display(),
            trace.display()
        );
    }
    Ok(match report.outcome {
        Outcome::Complete => ExitCode::SUCCESS,
        _ => ExitCode::from(3),
    })
}

pub(crate) fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(1);
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// Writes the report next to its final place, then renames it there, so an
/// interrupted run never leaves a half-written report behind.
pub(crate) fn write_report(path: &Path, report: &Report) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.partial");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, report)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write the report to {}", path.display()))
}

pub(crate) fn print_table(r: &Report, all: bool, wall: Duration) {
    println!(
        "{} · {} · seed {} · {} backend",
        r.scenario.as_deref().unwrap_or("scenario"),
        r.protocol,
        r.seed,
        r.backend
    );
    println!(
        "file {} in {} pieces · {} downloaders · goodput factor {}",
        human::bytes(r.file_bytes),
        r.file_bytes.div_ceil(r.piece_bytes),
        r.downloaders,
        r.goodput_factor
    );
    println!();
    println!(
        "{:<12} {:<7} {:>12} {:>12} {:>12}",
        "host", "role", "completed", "down", "up"
    );
    let mut rows: Vec<&_> = r.hosts.iter().collect();
    // Peers by completion time (unfinished last), the server first.
    rows.sort_by(|a, b| {
        let key = |h: &&peerlab_scenarios::report::HostReport| {
            (h.role != Role::Server, h.completed_s.unwrap_or(f64::INFINITY))
        };
        key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let shown: Vec<usize> = if all || rows.len() <= 16 {
        (0..rows.len()).collect()
    } else {
        (0..8).chain(rows.len() - 5..rows.len()).collect()
    };
    let mut last = None;
    for i in shown {
        if last.is_some_and(|l: usize| i > l + 1) {
            println!(
                "{:<12} ({} more; --all shows every host)",
                "…",
                i - last.unwrap_or(0) - 1
            );
        }
        last = Some(i);
        let h = rows[i];
        let role = match h.role {
            Role::Server => "server",
            Role::Peer => "peer",
            Role::Tracker => "tracker",
            Role::Relay => "relay",
        };
        let done = h.completed_s.map_or_else(|| "-".to_string(), human::secs);
        println!(
            "{:<12} {:<7} {:>12} {:>12} {:>12}",
            h.name,
            role,
            done,
            human::bytes(h.bytes_down),
            human::bytes(h.bytes_up)
        );
    }
    println!();
    let bound = r.bound_s();
    match r.distribution_time_s {
        Some(d) => println!("distribution time      {}", human::secs(d)),
        None => println!("distribution time      - (run ended: {:?})", r.outcome),
    }
    if let Some(st) = &r.longest_stall {
        println!(
            "longest stall          {} ({} received nothing from t = {} to {})",
            human::secs(st.length_s()),
            st.host,
            human::secs(st.from_s),
            human::secs(st.to_s)
        );
    }
    println!("client-server bound    {}", human::secs(r.bounds.client_server_s));
    println!("peer-to-peer bound     {}", human::secs(r.bounds.p2p_s));
    if let Some(ratio) = r.ratio_to_bound {
        println!(
            "time / {} bound  {ratio:.4} (bound {})",
            r.bound_name(),
            human::secs(bound)
        );
    }
    if let Some(t) = r.sender_finished_s {
        println!(
            "sender finished        {} ({} failovers, first detected after {}, {} relayed)",
            human::secs(t),
            r.counters.failovers,
            r.detection_s.map_or_else(|| "-".to_string(), human::secs),
            human::bytes(r.bytes_relayed.unwrap_or(0))
        );
    }
    let c = &r.counters;
    if c.sources_lost + c.pieces_corrupt + c.protocol_violations + c.storage_failures > 0 {
        println!(
            "trouble: {} sources lost, {} corrupt pieces, {} protocol violations, {} storage failures",
            c.sources_lost, c.pieces_corrupt, c.protocol_violations, c.storage_failures
        );
    }
    if let Some(sim) = &r.sim {
        println!(
            "simulated {} events in {} wall ({} events/s) · trace {}",
            human::count(sim.events),
            human::secs(wall.as_secs_f64()),
            human::count((sim.events as f64 / wall.as_secs_f64().max(1e-9)) as u64),
            r.trace_hash.as_deref().unwrap_or("-")
        );
    }
}
