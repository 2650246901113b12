//! `fidelity.md`: what was run and how, the summary table, the method, and
//! every metric of every row.

use std::fmt::Write as _;

use super::matrix::Matrix;
use super::metrics::{Metric, Stats};
use super::{
    FidelityArgs, Real, RowResult, RunRecord, Verdict, error_text, stats_text, summary_cells, verdict_text,
};
use crate::human;
use crate::run::LinkQueue;

/// The matrix's results as Markdown: what was run and how, the summary, and
/// every metric of every row.
pub(super) fn markdown(
    matrix: &Matrix,
    results: &[RowResult],
    records: &[&RunRecord],
    args: &FidelityArgs,
) -> String {
    let real = args.real.name();
    let mut md = String::new();
    write_heading(&mut md, matrix, results, args);
    write_run_time(&mut md, records, args);
    write_summary(&mut md, matrix, results, real);
    write_method(&mut md, matrix, args);
    write_every_metric(&mut md, results, real);
    md
}

/// Writes the title and which matrix was run, how often, at what tolerance.
fn write_heading(md: &mut String, matrix: &Matrix, results: &[RowResult], args: &FidelityArgs) {
    let real = args.real.name();
    let _ = writeln!(md, "# Fidelity: the simulator against {real}\n");
    let _ = writeln!(
        md,
        "Matrix `{}`{}: {} rows, {} runs per row on each side (run k with seed k), \
         tolerance {:.0}% on the means (relay timings: or {} ms). Written by `peerlab fidelity {}`.\n",
        matrix.name,
        matrix
            .description
            .as_deref()
            .map_or_else(String::new, |d| format!(" ({d})")),
        results.len(),
        matrix.repeats,
        matrix.tolerance.relative * 100.0,
        (matrix.tolerance.relay_s * 1000.0).round(),
        args.matrix
    );
}

/// Writes how long the runs took and the CPU pressure during the real ones.
fn write_run_time(md: &mut String, records: &[&RunRecord], args: &FidelityArgs) {
    let real = args.real.name();
    let real_runs: Vec<&&RunRecord> = records.iter().filter(|r| r.backend == real).collect();
    let real_wall: f64 = real_runs.iter().map(|r| r.wall_s).sum();
    // From the runs, not this invocation: a resumed matrix ran fewer.
    let all_wall: f64 = records.iter().map(|r| r.wall_s).sum();
    let pressures: Vec<f64> = real_runs.iter().filter_map(|r| r.cpu_pressure).collect();
    let left_out = real_runs.iter().filter(|r| !r.counts).count();
    let _ = writeln!(
        md,
        "{} {real} runs took {} of wall time ({} with the simulator's runs); \
         CPU pressure (share of a run's time some task waited for a CPU): {}; {left_out} {} \
         left out for more than {:.0}%.\n",
        real_runs.len(),
        human::secs(real_wall),
        human::secs(all_wall),
        if pressures.is_empty() {
            "not measured".to_string()
        } else {
            let s = Stats::of(&pressures).expect("some");
            let max = pressures.iter().copied().fold(0.0, f64::max);
            format!("mean {:.1}%, max {:.1}%", s.mean * 100.0, max * 100.0)
        },
        if left_out == 1 { "run" } else { "runs" },
        args.max_cpu_pressure * 100.0
    );
}

/// Writes how many rows passed and the table of every row's summary.
fn write_summary(md: &mut String, matrix: &Matrix, results: &[RowResult], real: &str) {
    let passed = results.iter().filter(|r| r.verdict == Verdict::Pass).count();
    let _ = writeln!(md, "**{passed} of {} rows within tolerance.**\n", results.len());
    let _ = writeln!(
        md,
        "| row | sim time (mean ± sd) | {real} time | error | p50 error | p90 error | verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in results {
        let verdict = verdict_cell(matrix, r);
        let [sim, real, e, p50, p90] = summary_cells(r);
        let _ = writeln!(
            md,
            "| {} | {sim} | {real} | {e} | {p50} | {p90} | {verdict} |",
            r.row
        );
    }
    let _ = writeln!(md, "\n![errors per row](plot.png)\n");
}

/// A row's verdict with why, the row's own tolerance and a known miss.
fn verdict_cell(matrix: &Matrix, r: &RowResult) -> String {
    let mut verdict = verdict_text(r).to_string();
    if let Some(why) = &r.why {
        verdict.push_str(&format!(" ({why})"));
    }
    let own = matrix
        .rows
        .iter()
        .find(|row| row.name == r.row)
        .and_then(|row| row.tolerance);
    if let Some(t) = own {
        verdict.push_str(&format!(" at this row's tolerance {:.0}%", t.relative * 100.0));
    }
    if let Some(k) = &r.known_miss {
        verdict.push_str(&format!("; known: {k}"));
    }
    verdict
}

/// Writes the method: how both sides run, when a run counts, when a row
/// passes, Mininet's links and the simulator's shared constants.
fn write_method(md: &mut String, matrix: &Matrix, args: &FidelityArgs) {
    let real = args.real.name();
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "Each row is one library scenario with its `--set` variation. Run k of a row has seed k \
         on both sides, so the two sides draw the same random choices until their timings \
         part. The simulator's side is `peerlab run --on sim`; the real side starts the very \
         same nodes as processes on {real} (`peerlab run --on {real}`), one run at a time. A \
         real run counts only if some task waited for a CPU during at most {:.0}% of its wall \
         time (Linux PSI, `/proc/pressure/cpu`): a starved node is slow for reasons the \
         network model does not claim to know. A row passes when the means of its judged \
         metrics are within {:.0}% of the real means (relay timings: or within {} ms).\n",
        args.max_cpu_pressure * 100.0,
        matrix.tolerance.relative * 100.0,
        (matrix.tolerance.relay_s * 1000.0).round(),
    );
    if args.real == Real::Mininet {
        let _ = writeln!(
            md,
            "Mininet's links: {}.\n",
            match args.link_queue {
                LinkQueue::Fair =>
                    "each shaped direction (htb) keeps one queue per other host and \
                     serves them in turn (`--link-queue fair`), as a fair-queueing \
                     link does and as the simulator models a link",
                LinkQueue::Fifo =>
                    "each shaped direction (htb) is one first-in first-out queue \
                     (`--link-queue fifo`); the simulator models fair links, so \
                     rows where flows share a link are expected to miss",
            }
        );
    }
    write_constants(md);
}

/// Writes the simulator's constants measured against Mininet, and the
/// connect timeout both sides share.
fn write_constants(md: &mut String) {
    let _ = writeln!(
        md,
        "The simulator has four constants measured against Mininet, the same for every row \
         (`network.goodput`, `network.send_window`, `network.ack_load` and `network.rto` in a \
         scenario): the \
         goodput factor {} (the share of a link left for peerlab's frames once \
         TCP/IP/Ethernet headers are paid), the send window {} (how far ahead of the wire a \
         sender's TCP takes payload: a block counts as sent, and the sender may hand over \
         the next, once at most this much queued before it is still to leave), the \
         acknowledgement load {} (the wire bytes a receiver's TCP acknowledgements and \
         requests take per byte it receives, on its uplink and the sender's downlink) and the \
         retransmission timeout {} of a loaded connection (after a cut link, a connection \
         resumes at its next retransmission). docs/simulator.md says how each was measured. One more constant is shared rather than measured: a connection \
         opens once the other process answers within {} s (`CONNECT_TIMEOUT`, the real \
         backend's default), or fails.\n",
        peerlab_scenarios::CALIBRATED_GOODPUT,
        peerlab_scenarios::CALIBRATED_SEND_WINDOW,
        peerlab_scenarios::CALIBRATED_ACK_LOAD,
        peerlab_scenarios::CALIBRATED_RTO,
        peerlab_core::node::CONNECT_TIMEOUT.as_secs(),
    );
}

/// Writes a section per row with every metric either side has.
fn write_every_metric(md: &mut String, results: &[RowResult], real: &str) {
    let _ = writeln!(md, "## Every metric\n");
    let _ = writeln!(
        md,
        "Judged: distribution time, the median and 90th percentile of the downloaders' \
         completion times, and a relay's sender-finished and detection times. Shown only: \
         the rest.\n"
    );
    for r in results {
        let _ = writeln!(md, "### {}\n", r.row);
        if r.set.is_empty() {
            let _ = writeln!(md, "`{}` as shipped\n", r.scenario);
        } else {
            let _ = writeln!(md, "`{}` with `{}`\n", r.scenario, r.set.join("` `"));
        }
        let _ = writeln!(md, "| metric | sim | {real} | error | judged |");
        let _ = writeln!(md, "|---|---|---|---|---|");
        for m in Metric::ALL {
            let Some(row) = r.metrics.get(m.name()) else {
                continue;
            };
            let judged = match row.pass {
                Some(true) => "pass",
                Some(false) => "**miss**",
                None if row.judged => "-",
                None => "shown",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {judged} |",
                m.name(),
                stats_text(m, row.sim),
                stats_text(m, row.real),
                error_text(row)
            );
        }
        md.push('\n');
    }
}
