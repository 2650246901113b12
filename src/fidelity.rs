//! `peerlab fidelity MATRIX`: the simulator against a real network, row by
//! row. Each row of the matrix ([`matrix`]) is a scenario with its `--set`
//! variation, run `repeats` times on each side (run k with seed k): in the
//! simulator, in this process; on Mininet (or loopback, to try the command
//! without root) as `peerlab run … --on mininet`, one run at a time, with
//! the machine's CPU pressure recorded around each run. The means of every
//! metric ([`metrics`]) are compared; a row passes when each judged metric
//! agrees within the tolerance.
//!
//! Everything lands in the output directory as it is measured, so an
//! interrupted matrix loses nothing and `--resume` carries on:
//!
//! - `runs.jsonl`: one line per run (row, backend, seed, wall time, CPU
//!   pressure, whether it counts, the report);
//! - `rows.jsonl`: one line per row (each metric's mean and spread on each
//!   side, the relative error, the verdict);
//! - `fidelity.md`: the table and the method, ready for the docs;
//! - `plot.png` / `plot.svg`: each row's errors against the tolerance.

mod figure;
mod markdown;
pub mod matrix;
pub mod metrics;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use peerlab_scenarios::Report;
use serde::{Deserialize, Serialize};

use crate::run::LinkQueue;
use crate::{human, scenario_arg};
use matrix::{Matrix, Row, Tolerance};
use metrics::{Metric, Stats, relative_error};

/// `peerlab fidelity --help` examples.
pub const HELP: &str = "\
Examples:
  # The shipped matrix on Mininet (as root), three runs per row and side
  sudo peerlab fidelity matrix --out fidelity/

  # Two rows only, five runs each
  sudo peerlab fidelity matrix --rows cs-8,swarm-8 --repeats 5

  # Carry on after an interruption (finished runs are kept)
  sudo peerlab fidelity matrix --out fidelity/ --resume

  # Try a matrix without root: loopback instead of Mininet (link rates are
  # not enforced there, so the errors mean nothing; the command works)
  peerlab fidelity my-matrix.json --real loopback

MATRIX is a matrix file (JSON; see scenarios/fidelity/*.json) or the name of
a shipped one: `matrix` (every library scenario, swarm profile and fault
kind) or `ci` (a few minutes, what CI runs). A real run during which some
task waited for a CPU more than --max-cpu-pressure of the time is run again
(twice at most), then left out and marked: a starved node measures the
machine, not the network.

Exit status: 0 when every row passed, 2 when a row missed or could not be
judged, 1 on an error.";

/// Arguments of `peerlab fidelity`.
#[derive(Debug, Args)]
pub struct FidelityArgs {
    /// Matrix file (JSON) or shipped matrix name (`matrix`, `ci`).
    matrix: String,
    /// Output directory [default: fidelity-<matrix name>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Runs per row on each side [default: the matrix's `repeats`].
    #[arg(long)]
    repeats: Option<u32>,
    /// Only these rows (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    rows: Vec<String>,
    /// The real network to compare with.
    #[arg(long, value_enum, default_value_t = Real::Mininet)]
    real: Real,
    /// Mininet: how shaped links share their rate (see `peerlab run --help`).
    #[arg(long, value_enum, default_value_t = LinkQueue::Fair, value_name = "QUEUE")]
    link_queue: LinkQueue,
    /// Keep the runs already in DIR/runs.jsonl and do only the missing ones.
    #[arg(long)]
    resume: bool,
    /// Largest share of a real run's wall time during which some task
    /// waited for a CPU (Linux PSI, /proc/pressure/cpu) for the run to count.
    /// Mininet runs on an otherwise idle 2-core machine measured 2-11% at
    /// N <= 8 and 20-26% at N = 16; beside one busy core, 38-48%.
    #[arg(long, default_value_t = 0.30, value_name = "SHARE")]
    max_cpu_pressure: f64,
    /// No progress bar and no table; only the paths and the verdict.
    #[arg(short, long)]
    quiet: bool,
}

/// The real network a matrix is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Real {
    /// Real nodes on an emulated network (root, Mininet).
    Mininet,
    /// Real nodes on 127.0.0.1 (no link rates: for trying the command).
    Loopback,
}

impl Real {
    fn name(self) -> &'static str {
        match self {
            Real::Mininet => "mininet",
            Real::Loopback => "loopback",
        }
    }
}

/// One run, as `runs.jsonl` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// The row's name.
    pub row: String,
    /// `sim`, `mininet` or `loopback`.
    pub backend: String,
    /// Run k has seed k.
    pub seed: u32,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Share of the run's wall time some task waited for a CPU (real runs
    /// on Linux with PSI; null otherwise).
    pub cpu_pressure: Option<f64>,
    /// Whether the run counts: a real run with too much CPU pressure does
    /// not.
    pub counts: bool,
    /// The run's report.
    pub report: Report,
}

/// One metric of a row, as `rows.jsonl` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricRow {
    /// The simulator's runs.
    pub sim: Option<Stats>,
    /// The real network's runs.
    pub real: Option<Stats>,
    /// |sim mean − real mean| / real mean.
    pub error: Option<f64>,
    /// Whether the verdict depends on it.
    pub judged: bool,
    /// Whether it agrees within the tolerance (judged metrics only).
    pub pass: Option<bool>,
}

/// How a row came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every judged metric agrees.
    Pass,
    /// Some judged metric does not.
    Miss,
    /// A run did not complete, or too few real runs counted.
    Undecided,
}

/// One row's result, as `rows.jsonl` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowResult {
    /// The row's name.
    pub row: String,
    /// Its scenario and `--set` overrides (without the seed).
    pub scenario: String,
    pub set: Vec<String>,
    /// The real backend.
    pub real: String,
    /// Every metric either side has.
    pub metrics: BTreeMap<String, MetricRow>,
    /// The verdict, and why when it is not a pass.
    pub verdict: Verdict,
    pub why: Option<String>,
    /// The matrix's note on a row known to miss.
    pub known_miss: Option<String>,
}

/// Runs `peerlab fidelity`.
pub fn run(args: &FidelityArgs) -> Result<ExitCode> {
    let (matrix, rows) = load_matrix(args)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("fidelity-{}", matrix.name)));
    let runs_path = out.join("runs.jsonl");
    if runs_path.exists() && !args.resume {
        bail!(
            "{} already holds runs; --resume carries on with them, or give another --out",
            runs_path.display()
        );
    }
    std::fs::create_dir_all(out.join("logs")).with_context(|| format!("cannot create {}", out.display()))?;
    let mut done = read_runs(&runs_path)?;
    run_missing(&matrix, &rows, args, &out, &mut done)?;

    let results: Vec<RowResult> = rows
        .iter()
        .map(|row| judge(&matrix, row, args.real, &done))
        .collect();
    let rows_path = write_results(&matrix, &results, &done, args, &out)?;
    if !args.quiet {
        print_table(&matrix, &results);
    }
    println!("runs: {}", runs_path.display());
    println!("rows: {}", rows_path.display());
    println!(
        "table: {} · plot: {} {}",
        out.join("fidelity.md").display(),
        out.join("plot.png").display(),
        out.join("plot.svg").display()
    );
    let passed = print_verdict(&matrix, &rows, &results, args.real);
    Ok(if passed == results.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The matrix with `--repeats` applied and the rows `--rows` selects,
/// after checking the arguments and that every row's scenario loads.
fn load_matrix(args: &FidelityArgs) -> Result<(Matrix, Vec<Row>)> {
    let mut matrix = Matrix::load(&args.matrix)?;
    if let Some(r) = args.repeats {
        if r == 0 {
            bail!("--repeats must be at least 1");
        }
        matrix.repeats = r;
    }
    if !(0.0..=1.0).contains(&args.max_cpu_pressure) {
        bail!("--max-cpu-pressure is a share of the run's time, in [0, 1]");
    }
    let rows = matrix.select(&args.rows)?;
    // Every row's scenario must load before hours of runs start.
    for row in &rows {
        scenario_arg::load(&row.scenario, &matrix.sets(row, 1))
            .with_context(|| format!("matrix row {:?}", row.name))?;
    }
    Ok((matrix, rows))
}

/// Runs every (row, seed, side) not yet `done`, appending each record to
/// `runs.jsonl` as it finishes, with a progress bar unless quiet.
fn run_missing(
    matrix: &Matrix,
    rows: &[Row],
    args: &FidelityArgs,
    out: &Path,
    done: &mut Done,
) -> Result<()> {
    let runs_path = out.join("runs.jsonl");
    let total = rows.len() * matrix.repeats as usize * 2;
    let bar = human::progress_bar(
        args.quiet,
        total as u64,
        "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} runs (eta {eta}) · {msg}",
    );
    let mut runs = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&runs_path)
        .with_context(|| format!("cannot write {}", runs_path.display()))?;
    for row in rows {
        for k in 1..=matrix.repeats {
            for backend in ["sim", args.real.name()] {
                if let Some(bar) = &bar {
                    bar.set_message(format!("{} · {backend} · seed {k}", row.name));
                }
                let key = (row.name.clone(), backend.to_string(), k);
                if let std::collections::btree_map::Entry::Vacant(slot) = done.entry(key) {
                    let record = if backend == "sim" {
                        run_sim(matrix, row, k)?
                    } else {
                        run_real(matrix, row, k, args, out)?
                    };
                    let line = serde_json::to_string(&record)? + "\n";
                    runs.write_all(line.as_bytes())
                        .and_then(|()| runs.flush())
                        .with_context(|| format!("cannot write {}", runs_path.display()))?;
                    slot.insert(record);
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Writes `rows.jsonl`, `fidelity.md` and the figure into `out`; returns
/// the path of `rows.jsonl`.
fn write_results(
    matrix: &Matrix,
    results: &[RowResult],
    done: &Done,
    args: &FidelityArgs,
    out: &Path,
) -> Result<PathBuf> {
    let rows_path = out.join("rows.jsonl");
    let mut text = String::new();
    for r in results {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    std::fs::write(&rows_path, text).with_context(|| format!("cannot write {}", rows_path.display()))?;
    let records: Vec<&RunRecord> = done.values().collect();
    let md = markdown::markdown(matrix, results, &records, args);
    std::fs::write(out.join("fidelity.md"), md).context("cannot write fidelity.md")?;
    crate::plotting::write(&figure::Figure::new(matrix, results), out, "plot")?;
    Ok(rows_path)
}

/// Prints how many rows passed, and against what; returns that number.
fn print_verdict(matrix: &Matrix, rows: &[Row], results: &[RowResult], real: Real) -> usize {
    let passed = results.iter().filter(|r| r.verdict == Verdict::Pass).count();
    let own = if rows.iter().any(|r| r.tolerance.is_some()) {
        " (or the row's own tolerance)"
    } else {
        ""
    };
    println!(
        "{passed}/{} rows within {:.0}%{own} of {}",
        results.len(),
        matrix.tolerance.relative * 100.0,
        real.name()
    );
    passed
}

type Done = BTreeMap<(String, String, u32), RunRecord>;

/// The runs already in `runs.jsonl` (none if it does not exist).
fn read_runs(path: &Path) -> Result<Done> {
    let mut done = Done::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: RunRecord = serde_json::from_str(line)
            .with_context(|| format!("{}, line {}: not a fidelity run record", path.display(), i + 1))?;
        done.insert((r.row.clone(), r.backend.clone(), r.seed), r);
    }
    Ok(done)
}

fn run_sim(matrix: &Matrix, row: &Row, k: u32) -> Result<RunRecord> {
    let (scenario, origin) = scenario_arg::load(&row.scenario, &matrix.sets(row, k))?;
    let t = Instant::now();
    let report = peerlab_sim::run(&scenario, &origin)?;
    Ok(RunRecord {
        row: row.name.clone(),
        backend: "sim".into(),
        seed: k,
        wall_s: t.elapsed().as_secs_f64(),
        cpu_pressure: None,
        counts: true,
        report,
    })
}

/// Runs that may be repeated when the CPU was too busy for the run to count.
const STARVED_RETRIES: u32 = 2;

/// Runs row `row`'s seed `k` on the real network as `peerlab run`, again
/// (at most [`STARVED_RETRIES`] times) while the CPU was too busy for it
/// to count.
fn run_real(matrix: &Matrix, row: &Row, k: u32, args: &FidelityArgs, out: &Path) -> Result<RunRecord> {
    let exe = std::env::current_exe().context("cannot find the peerlab binary itself")?;
    let report_path = out
        .join("logs")
        .join(format!("{}-{}-{k}.json", row.name, args.real.name()));
    let log_path = report_path.with_extension("log");
    let mut last = None;
    for attempt in 0..=STARVED_RETRIES {
        let mut cmd = real_command(&exe, matrix, row, k, args, &report_path);
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        let pressure_before = cpu_pressure_us();
        let t = Instant::now();
        let status = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let wall = t.elapsed();
        let pressure = match (pressure_before, cpu_pressure_us()) {
            (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / (wall.as_micros().max(1) as f64)),
            _ => None,
        };
        let report = real_report(row, k, args, status, &report_path)?;
        let counts = pressure.is_none_or(|p| p <= args.max_cpu_pressure);
        let record = RunRecord {
            row: row.name.clone(),
            backend: args.real.name().into(),
            seed: k,
            wall_s: wall.as_secs_f64(),
            cpu_pressure: pressure,
            counts,
            report,
        };
        if counts {
            return Ok(record);
        }
        tracing::warn!(
            row = %row.name,
            seed = k,
            attempt,
            pressure = pressure.unwrap_or(0.0),
            "CPU too busy for the run to count; running it again"
        );
        last = Some(record);
        std::thread::sleep(Duration::from_secs(5));
    }
    Ok(last.expect("at least one attempt"))
}

/// `peerlab run SCENARIO --on REAL --quiet --report PATH --set …` for row
/// `row`'s seed `k`.
fn real_command(
    exe: &Path,
    matrix: &Matrix,
    row: &Row,
    k: u32,
    args: &FidelityArgs,
    report_path: &Path,
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args([
        "run",
        &row.scenario,
        "--on",
        args.real.name(),
        "--quiet",
        "--report",
    ])
    .arg(report_path);
    for s in matrix.sets(row, k) {
        cmd.arg("--set").arg(s);
    }
    if args.real == Real::Mininet {
        cmd.args(["--link-queue", args.link_queue.name()]);
    }
    cmd
}

/// The report a real run wrote, once its exit `status` says it has one;
/// an error ending with its log's last lines otherwise.
fn real_report(
    row: &Row,
    k: u32,
    args: &FidelityArgs,
    status: std::process::ExitStatus,
    report_path: &Path,
) -> Result<Report> {
    let log_path = report_path.with_extension("log");
    // 0: complete; 3: ended early (the report says how). Anything else
    // is an error the row cannot recover from.
    if !matches!(status.code(), Some(0 | 3)) {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "row {:?}, seed {k}: `peerlab run … --on {}` failed ({status}); {} ends:\n{}",
            row.name,
            args.real.name(),
            log_path.display(),
            tail.join("\n")
        );
    }
    let text = std::fs::read_to_string(report_path)
        .with_context(|| format!("cannot read {}", report_path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a report", report_path.display()))
}

/// Microseconds some task waited for a CPU since boot (Linux PSI), if the
/// kernel reports it.
fn cpu_pressure_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some"))?;
    let total = some.split_whitespace().find_map(|f| f.strip_prefix("total="))?;
    total.parse().ok()
}

/// The row's verdict from its runs on both sides.
fn judge(matrix: &Matrix, row: &Row, real: Real, done: &Done) -> RowResult {
    let runs_of = |backend: &str| -> Vec<&RunRecord> {
        (1..=matrix.repeats)
            .filter_map(|k| done.get(&(row.name.clone(), backend.to_string(), k)))
            .collect()
    };
    let (sim_runs, real_runs) = (runs_of("sim"), runs_of(real.name()));
    let counted: Vec<&RunRecord> = real_runs.iter().copied().filter(|r| r.counts).collect();
    let incomplete = sim_runs
        .iter()
        .chain(&counted)
        .filter(|r| r.report.distribution_time_s.is_none())
        .count();
    let tolerance = row.tolerance.unwrap_or(matrix.tolerance);
    let metrics = metric_rows(&sim_runs, &counted, &tolerance);
    let (verdict, why) = verdict_of(&metrics, real_runs.len(), counted.len(), incomplete);
    RowResult {
        row: row.name.clone(),
        scenario: row.scenario.clone(),
        set: matrix
            .sets(row, 1)
            .into_iter()
            .filter(|s| !s.starts_with("seed="))
            .collect(),
        real: real.name().into(),
        metrics,
        verdict,
        why,
        known_miss: row.known_miss.clone(),
    }
}

/// Each metric either side has: both sides' statistics, the error, and
/// whether it agrees within `tolerance`.
fn metric_rows(
    sim_runs: &[&RunRecord],
    counted: &[&RunRecord],
    tolerance: &Tolerance,
) -> BTreeMap<String, MetricRow> {
    let mut metrics = BTreeMap::new();
    for m in Metric::ALL {
        let values =
            |runs: &[&RunRecord]| -> Vec<f64> { runs.iter().filter_map(|r| m.of(&r.report)).collect() };
        let (s, r) = (Stats::of(&values(sim_runs)), Stats::of(&values(counted)));
        if s.is_none() && r.is_none() {
            continue;
        }
        let error = match (s, r) {
            (Some(s), Some(r)) => relative_error(s.mean, r.mean),
            _ => None,
        };
        let pass = match (s, r) {
            (Some(s), Some(r)) if m.judged() => Some(m.agrees(s.mean, r.mean, tolerance)),
            _ => None,
        };
        metrics.insert(
            m.name().to_string(),
            MetricRow {
                sim: s,
                real: r,
                error,
                judged: m.judged(),
                pass,
            },
        );
    }
    metrics
}

/// The verdict and why: undecided when a real run did not count or a run
/// did not complete, else a miss naming the metrics that disagree.
fn verdict_of(
    metrics: &BTreeMap<String, MetricRow>,
    real_runs: usize,
    counted: usize,
    incomplete: usize,
) -> (Verdict, Option<String>) {
    if counted < real_runs || counted == 0 {
        (
            Verdict::Undecided,
            Some(format!(
                "{} of {} real runs had more than the allowed CPU pressure",
                real_runs - counted,
                real_runs
            )),
        )
    } else if incomplete > 0 {
        (
            Verdict::Undecided,
            Some(format!("{incomplete} runs did not complete")),
        )
    } else {
        let missed: Vec<String> = metrics
            .iter()
            .filter(|(_, m)| m.pass == Some(false))
            .map(|(name, m)| format!("{name} {:.1}%", m.error.unwrap_or(f64::NAN) * 100.0))
            .collect();
        if missed.is_empty() {
            (Verdict::Pass, None)
        } else {
            (Verdict::Miss, Some(missed.join(", ")))
        }
    }
}

fn verdict_text(r: &RowResult) -> &'static str {
    match r.verdict {
        Verdict::Pass => "pass",
        Verdict::Miss => "MISS",
        Verdict::Undecided => "undecided",
    }
}

/// `12.3 ± 0.4 s` or `-`.
fn stats_text(m: Metric, s: Option<Stats>) -> String {
    match s {
        None => "-".into(),
        Some(s) if m.is_time() => format!("{} ± {}", human::secs(s.mean), human::secs(s.sd)),
        Some(s) if matches!(m, Metric::ServerBytesUp | Metric::BytesRelayed) => {
            format!("{} ± {}", human::bytes(s.mean as u64), human::bytes(s.sd as u64))
        }
        Some(s) => format!("{:.1} ± {:.1}", s.mean, s.sd),
    }
}

fn error_text(m: &MetricRow) -> String {
    m.error
        .map_or_else(|| "-".into(), |e| format!("{:.1}%", e * 100.0))
}

/// A row's summary: both sides' distribution times, and the errors of the
/// distribution time, median and 90th percentile.
fn summary_cells(r: &RowResult) -> [String; 5] {
    let get = |m: Metric| r.metrics.get(m.name());
    let d = get(Metric::DistributionTime);
    let e = |m: Metric| get(m).map_or_else(|| "-".into(), error_text);
    [
        stats_text(Metric::DistributionTime, d.and_then(|m| m.sim)),
        stats_text(Metric::DistributionTime, d.and_then(|m| m.real)),
        e(Metric::DistributionTime),
        e(Metric::PeerP50),
        e(Metric::PeerP90),
    ]
}

fn print_table(matrix: &Matrix, results: &[RowResult]) {
    println!(
        "{} · {} rows · {} runs per side · tolerance {:.0}%",
        matrix.name,
        results.len(),
        matrix.repeats,
        matrix.tolerance.relative * 100.0
    );
    println!();
    let w = results.iter().map(|r| r.row.len()).max().unwrap_or(3).max(3);
    println!(
        "{:<w$}  {:>22}  {:>22}  {:>7}  {:>7}  {:>7}  verdict",
        "row", "sim time", "real time", "error", "p50", "p90"
    );
    for r in results {
        let [sim, real, e, p50, p90] = summary_cells(r);
        println!(
            "{:<w$}  {sim:>22}  {real:>22}  {e:>7}  {p50:>7}  {p90:>7}  {}{}",
            r.row,
            verdict_text(r),
            r.why.as_deref().map_or_else(String::new, |w| format!(" ({w})")),
        );
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped matrix reads, and every row's scenario loads with its
    /// variation (a typo would otherwise surface hours into a run).
    #[test]
    fn the_shipped_matrices_load_row_by_row() {
        for (name, _) in matrix::SHIPPED {
            let m = Matrix::load(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            for row in &m.rows {
                scenario_arg::load(&row.scenario, &m.sets(row, 1))
                    .unwrap_or_else(|e| panic!("{name}, row {}: {e:#}", row.name));
            }
        }
    }
}
