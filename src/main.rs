//! `peerlab`: the command line over peerlab's simulator and scenarios.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)] // the CLI talks to people

mod compare;
mod disk;
mod fidelity;
mod human;
mod metainfo_cmd;
mod node_cmd;
mod plotting;
mod run;
mod scenario_arg;
mod sweep;
mod trace_file;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const ABOUT: &str = "A laboratory for file distribution: client-server versus peer-to-peer, \
simulated deterministically and (soon) run on real networks, measured against the theoretical \
lower bounds.";

const RUN_HELP: &str = "\
Examples:
  # The seed lab's client-server case: 14 clients fetch 10 MiB from one server
  peerlab run lab-client-server

  # The same with 4 clients, a bigger file and 5 ms of latency per access link
  peerlab run lab-client-server --set peers.count=4 --set file.size='50 MiB' \\
      --set network.latency='5 ms'

  # Your own scenario file, report written where you say
  peerlab run my-scenario.json --report out/my-run.json

  # Every host a real process on 127.0.0.1 (link rates not enforced)
  peerlab run lab-client-server --on loopback --set file.size='4 MiB'

SCENARIO is a JSON file or the name of a library scenario (`peerlab list`).
`--set path=value` changes any field before the scenario is checked: dotted
paths, list items by index (peers.hosts.0.upload='1 Mbit/s'), values read as
JSON when they parse as JSON and as text otherwise.

Exit status: 0 when every downloader completed, 1 when the scenario or the
command is wrong, 3 when the run ended before every downloader completed
(the report says why), 5 (loopback) when a downloaded file differs from the
source.";

#[derive(Debug, Parser)]
#[command(name = "peerlab", version, about = ABOUT, long_about = None)]
struct Cli {
    /// Log what the nodes do (-v: info, -vv: debug, -vvv: trace) to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario in the simulator, print a table and write the report.
    #[command(after_help = RUN_HELP)]
    Run(run::RunArgs),
    /// Run a scenario over a grid of --set values in parallel: every report,
    /// a plot of distribution time against the bounds, and a table.
    #[command(after_help = sweep::HELP)]
    Sweep(sweep::SweepArgs),
    /// Compare two reports or sweeps (e.g. simulator vs real network) point
    /// by point: relative error of the distribution time, and a figure.
    #[command(after_help = compare::HELP)]
    Compare(compare::CompareArgs),
    /// Run a fidelity matrix: scenarios on the simulator and on a real
    /// network (Mininet), several runs each, and how far apart they are.
    #[command(after_help = fidelity::HELP)]
    Fidelity(fidelity::FidelityArgs),
    /// Run a recorded trace (`peerlab run --trace FILE`) again and say
    /// whether the outcome is identical, or where it first diverged.
    #[command(
        after_help = "Example:\n  peerlab run relay-seed000 --trace t.jsonl\n  peerlab replay t.jsonl\n\nExit status: 0 identical, 4 diverged, 1 unreadable trace."
    )]
    Replay {
        /// The trace file.
        trace: PathBuf,
    },
    /// Start one real node: the host of a scenario this machine plays
    /// (server, client, peer or relay), over TCP, with its file on disk.
    #[command(after_help = node_cmd::HELP)]
    Node(node_cmd::NodeArgs),
    /// Metainfo files: the piece hashes every downloader checks against.
    #[command(subcommand)]
    Metainfo(metainfo_cmd::MetainfoCmd),
    /// List the library of named scenarios.
    List,
    /// Print a scenario (file or library name) as JSON, overrides applied:
    /// a starting point for your own.
    Show {
        /// Scenario file or library name.
        scenario: String,
        /// Override a field, e.g. --set peers.count=8 (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .init();
}

/// Standard error for the log, where a failed write is dropped: a node whose
/// log cannot be written (a full disk under `node.log`, a closed pipe) keeps
/// running, since its events file, not its log, is what a run reads. Writing
/// through `std::io::stderr` instead, the logging library reported the
/// failure on stderr again, and that failure panicked (exit 101).
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn replay(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (verdict, report) = trace_file::replay(path)?;
    match verdict {
        trace_file::Verdict::Identical { records, trace_hash } => {
            println!(
                "identical: {} records, outcome {:?}, distribution time {}, trace {trace_hash}",
                human::count(records),
                report.outcome,
                report.distribution_time_s.map_or_else(|| "-".into(), human::secs)
            );
            Ok(ExitCode::SUCCESS)
        }
        trace_file::Verdict::Diverged {
            line,
            recorded,
            replayed,
        } => {
            println!("diverged at line {line} of {}:", path.display());
            println!("  recorded: {recorded}");
            println!("  replayed: {replayed}");
            Ok(ExitCode::from(4))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(mut args) => {
            args.verbose = cli.verbose;
            run::run(&args)
        }
        Command::Node(args) => node_cmd::run(&args),
        Command::Metainfo(cmd) => metainfo_cmd::run(&cmd),
        Command::Sweep(args) => sweep::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Fidelity(args) => fidelity::run(&args),
        Command::Replay { trace } => replay(&trace),
        Command::List => {
            for name in peerlab_scenarios::library::names() {
                let text = peerlab_scenarios::library::get(name).unwrap_or_default();
                let description = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v["description"].as_str().map(str::to_string))
                    .unwrap_or_default();
                println!("{name:<20} {description}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { scenario, set } => scenario_arg::load(&scenario, &set).and_then(|(s, _)| {
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // An unwritable stderr (a full disk under a node's log) must not
            // turn the error into a panic.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::from(1)
        }
    }
}
