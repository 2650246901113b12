//! `peerlab sweep`: run a scenario over a grid of `--set` values in
//! parallel, write every report, plot distribution time against the swept
//! parameter with the lower bounds, print a table.
//!
//! Each point is the scenario with that point's `--set`s applied by the same
//! code as `peerlab run`, and run by the same simulator, so its report is the
//! one `peerlab run` writes for it (same `trace_hash`). Points are checked
//! before any runs, run on every core, and written in grid order whatever
//! order they finish in.

mod grid;
mod plot;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use indicatif::ProgressBar;
use peerlab_scenarios::{Bounds, Outcome, Report, Scenario};
use peerlab_sim::Simulation;

use crate::human;
use crate::scenario_arg;
use grid::Axis;

/// `peerlab sweep --help`, after the options.
pub const HELP: &str = "\
Examples:
  # The seed lab's figure: distribution time against the number of clients
  peerlab sweep lab-client-server --set peers.count=2..14

  # Client-server against peer-to-peer on one plot, one line per protocol
  peerlab sweep lab-client-server --set protocol=client-server,static-tracker,swarm \\
      --set peers.count=2,4,6,8,10,12,14

  # One line per latency, a smaller file, figures in figs/latency/
  peerlab sweep lab-client-server --set peers.count=1..8 \\
      --set network.latency='0 ms,5 ms,20 ms' --set file.size='1 MiB' --out figs/latency

Values of --set PATH=VALUES (PATH as for `peerlab run --set`):
  a,b,c        a list: each value in turn
  2..14        the whole numbers 2 to 14, both included
  2..14/3      the same in steps of 3: 2, 5, 8, 11, 14
  1,2,4..16/4  lists and ranges mix
A value that itself contains a comma cannot be one of several values: a
whole JSON list or object is taken as one value (--set peers.hosts='[...]');
anything else with a comma belongs in the scenario file. A --set with one
value is the same as in `peerlab run`.

The sweep runs every combination of the --set lists (the last --set varies
fastest; at most 10000 points). Every point is checked before any runs; an
impossible value names the field and the point. Points run in parallel
(--jobs); the results do not depend on it.

Written to DIR (default sweep-<scenario name>/), each file replaced whole:
  reports.jsonl  one line per point, in grid order:
                 {\"point\": {\"peers.count\": 2, ...}, \"report\": {...}}
                 where report is what `peerlab run --set ...` writes for it
  plot.png, plot.svg
                 distribution time (s) against the first numeric swept field,
                 one line per combination of the other swept fields, and the
                 client-server and peer-to-peer lower bounds dashed

Exit status: 0 when every point completed, 1 when the scenario, a value or
the command is wrong (nothing is run), 3 when some point's run ended before
every downloader completed (it is left out of the plot; its report says why).";

/// Arguments of `peerlab sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Scenario file (JSON) or library scenario name.
    scenario: String,
    /// Sweep a scenario field over values, e.g. --set peers.count=2..14 or
    /// --set protocol=client-server,swarm (repeatable; see below).
    #[arg(long = "set", value_name = "PATH=V1,V2,..")]
    set: Vec<String>,
    /// Where to write reports.jsonl, plot.png and plot.svg
    /// [default: sweep-<scenario name>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Points run at once [default: the number of cores].
    #[arg(short, long, value_name = "N")]
    jobs: Option<NonZeroUsize>,
    /// Print no table and no progress, only warnings, errors and the paths.
    #[arg(short, long)]
    quiet: bool,
}

/// What the table and the plot need of one point's report.
#[derive(Clone, Debug)]
pub struct PointResult {
    /// Index of the point's value on each axis.
    pub point: Vec<usize>,
    /// How its run ended.
    pub outcome: Outcome,
    /// Its distribution time (complete runs only).
    pub distribution_time_s: Option<f64>,
    /// Both lower bounds.
    pub bounds: Bounds,
    /// The bound of its protocol's family.
    pub bound_s: f64,
    /// Distribution time over that bound.
    pub ratio_to_bound: Option<f64>,
    /// The longest time a downloader lacked pieces and received nothing.
    pub longest_stall_s: Option<f64>,
}

/// One point, checked and ready to run.
struct Point {
    index: Vec<usize>,
    scenario: Scenario,
    origin: String,
}

/// Runs `peerlab sweep`.
pub fn run(args: &SweepArgs) -> Result<ExitCode> {
    let axes = grid::parse(&args.set)?;
    let points = check_points(&args.scenario, &axes)?;
    let total = points.len();
    let first = &points[0].scenario;
    let name = first.name.clone().unwrap_or_else(|| {
        Path::new(&args.scenario)
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
    });
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("sweep-{name}")));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let jobs = args
        .jobs
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .min(total);
    let bar = human::progress_bar(
        args.quiet,
        total as u64,
        "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} points (eta {eta}) · last: {msg}",
    );
    let started = Instant::now();
    let jsonl = dir.join("reports.jsonl");
    let results = run_points(&axes, &points, jobs, &jsonl, bar.as_ref())?;
    let wall = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let figure = plot::figure(&name, &axes, first, &results);
    plot::write(&figure, &dir)?;

    if !args.quiet {
        print_table(&name, &axes, &results, wall, jobs);
    }
    let incomplete: Vec<&PointResult> = results
        .iter()
        .filter(|r| r.distribution_time_s.is_none())
        .collect();
    if !incomplete.is_empty() {
        let list: Vec<String> = incomplete
            .iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    grid::describe(&axes, &r.point),
                    outcome_name(&r.outcome)
                )
            })
            .collect();
        eprintln!(
            "warning: {} of {total} points did not complete and are left out of the plot: {}",
            incomplete.len(),
            list.join("; ")
        );
    }
    println!("reports: {}", jsonl.display());
    println!(
        "plot:    {} {}",
        dir.join("plot.png").display(),
        dir.join("plot.svg").display()
    );
    Ok(if incomplete.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Loads every point of the grid and checks that the simulator accepts it,
/// so that a bad value stops the sweep before anything runs.
fn check_points(scenario: &str, axes: &[Axis]) -> Result<Vec<Point>> {
    let grid = grid::points(axes);
    let total = grid.len();
    grid.into_iter()
        .enumerate()
        .map(|(k, index)| {
            let at = || format!("point {} of {total} ({})", k + 1, grid::describe(axes, &index));
            let (scenario, origin) =
                scenario_arg::load(scenario, &grid::overrides(axes, &index)).with_context(at)?;
            Simulation::new(&scenario, &origin).with_context(at)?;
            Ok(Point {
                index,
                scenario,
                origin,
            })
        })
        .collect()
}

/// Runs every point on `jobs` threads, streaming reports into `jsonl` in
/// grid order; returns the summaries in grid order.
fn run_points(
    axes: &[Axis],
    points: &[Point],
    jobs: usize,
    jsonl: &Path,
    bar: Option<&ProgressBar>,
) -> Result<Vec<PointResult>> {
    let tmp = jsonl.with_extension("jsonl.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<Report>)>();
    let written = std::thread::scope(|scope| -> Result<Vec<PointResult>> {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = points.get(i) else { break };
                    let report = Simulation::new(&p.scenario, &p.origin)
                        .map(|sim| sim.run(|_| {}))
                        .map_err(anyhow::Error::from);
                    if tx.send((i, report)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Stops the workers after their current point.
        let stop = || next.store(points.len(), Ordering::Relaxed);
        let mut pending: BTreeMap<usize, Report> = BTreeMap::new();
        let mut results = Vec::with_capacity(points.len());
        for (i, report) in rx.iter() {
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    stop();
                    return Err(e.context(format!(
                        "point {} of {} ({})",
                        i + 1,
                        points.len(),
                        grid::describe(axes, &points[i].index)
                    )));
                }
            };
            if let Some(bar) = bar {
                bar.inc(1);
                bar.set_message(grid::describe(axes, &points[i].index));
            }
            pending.insert(i, report);
            while let Some(report) = pending.remove(&results.len()) {
                let point = &points[results.len()];
                if let Err(e) = write_line(&mut out, axes, &point.index, &report) {
                    stop();
                    return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
                }
                results.push(PointResult {
                    point: point.index.clone(),
                    outcome: report.outcome.clone(),
                    distribution_time_s: report.distribution_time_s,
                    bounds: report.bounds,
                    bound_s: report.bound_s(),
                    ratio_to_bound: report.ratio_to_bound,
                    longest_stall_s: report.longest_stall.as_ref().map(|s| s.length_s()),
                });
            }
        }
        if results.len() == points.len() {
            Ok(results)
        } else {
            Err(anyhow!(
                "a worker stopped early: {} of {} points ran",
                results.len(),
                points.len()
            ))
        }
    });
    let finish = |results: Vec<PointResult>| -> Result<Vec<PointResult>> {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, jsonl)?;
        Ok(results)
    };
    match written {
        Ok(results) => finish(results).with_context(|| format!("cannot write {}", jsonl.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `{"point": {...}, "report": {...}}`: the point's fields in grid order.
fn write_line(out: &mut impl Write, axes: &[Axis], point: &[usize], report: &Report) -> Result<()> {
    out.write_all(b"{\"point\":{")?;
    for (k, (axis, &v)) in axes.iter().zip(point).enumerate() {
        if k > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &axis.path)?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut *out, &grid::json_value(&axis.values[v]))?;
    }
    out.write_all(b"},\"report\":")?;
    serde_json::to_writer(&mut *out, report)?;
    out.write_all(b"}\n")?;
    Ok(())
}

/// How a run ended, as reports spell it (`time-limit`).
fn outcome_name(o: &Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{o:?}"))
}

fn print_table(name: &str, axes: &[Axis], results: &[PointResult], wall: Duration, jobs: usize) {
    let fixed: Vec<String> = axes
        .iter()
        .filter(|a| !a.varies())
        .map(|a| format!("{}={}", a.path, a.values[0]))
        .collect();
    println!(
        "{name} · {} points in {} on {jobs} thread{}{}",
        results.len(),
        human::secs(wall.as_secs_f64()),
        if jobs == 1 { "" } else { "s" },
        if fixed.is_empty() {
            String::new()
        } else {
            format!(" · {}", fixed.join(", "))
        }
    );
    println!();
    let shown: Vec<usize> = (0..axes.len()).filter(|&i| axes[i].varies()).collect();
    let widths: Vec<usize> = shown
        .iter()
        .map(|&i| {
            let a = &axes[i];
            a.values
                .iter()
                .map(|v| v.chars().count())
                .chain([a.path.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut header = String::new();
    for (&i, w) in shown.iter().zip(&widths) {
        header.push_str(&format!("{:<w$}  ", axes[i].path));
    }
    println!(
        "{header}{:>15} {:>12} {:>8} {:>12}",
        "time", "bound", "ratio", "stall"
    );
    for r in results {
        let mut row = String::new();
        for (&i, w) in shown.iter().zip(&widths) {
            row.push_str(&format!("{:<w$}  ", axes[i].values[r.point[i]]));
        }
        let time = r
            .distribution_time_s
            .map_or_else(|| format!("- ({})", outcome_name(&r.outcome)), human::secs);
        let ratio = r
            .ratio_to_bound
            .map_or_else(|| "-".to_string(), |x| format!("{x:.4}"));
        let stall = r.longest_stall_s.map_or_else(|| "-".to_string(), human::secs);
        println!(
            "{row}{time:>15} {:>12} {ratio:>8} {stall:>12}",
            human::secs(r.bound_s)
        );
    }
    println!();
}
