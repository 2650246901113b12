//! `peerlab run`: run a scenario on the simulator or on real nodes, print
//! the table, write the report.

//!
//! Each backend is a child module: `sim` drives the simulator; `loopback`
//! and `mininet` are [`real::RealBackend`]s, run by [`real::run`] — prepare,
//! launch, wait, conclude — so neither knows the other. `output` writes the
//! report and prints the table for all three.

mod loopback;
mod mininet;
mod output;
mod real;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

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

/// Runs `peerlab run` on the chosen backend.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    if args.link_queue.is_some() && args.on != Backend::Mininet {
        bail!("--link-queue shapes Mininet's links; it is for --on mininet only");
    }
    match args.on {
        Backend::Sim => sim::run(args),
        Backend::Loopback => real::run(args, loopback::Loopback),
        Backend::Mininet => real::run(args, mininet::Mininet),
    }
}
