//! `peerlab compare A B`: two sets of runs of the same scenarios side by
//! side — typically the simulator's prediction (A) against a real network
//! (B, the reference) — with the relative error |A − B| / B of each
//! distribution time, a summary, and a figure.
//!
//! A and B are each a single report (`peerlab run --report`) or a sweep's
//! `reports.jsonl` (`{"point": {...}, "report": {...}}` per line). Sweep
//! points are matched by their `point` object; two single reports match
//! trivially and are also compared peer by peer (by host name).

mod figure;
mod input;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use peerlab_scenarios::{Report, Role};
use serde_json::Value;

use crate::human;
use input::{Entry, Input, Kind};

/// `peerlab compare --help`, after the options.
pub const HELP: &str = "\
Examples:
  # The simulator's sweep against the same sweep on a real network
  peerlab sweep lab-client-server --set peers.count=1..8 --out sim
  peerlab sweep lab-client-server --set peers.count=1..8 --on mininet --out real
  peerlab compare sim/reports.jsonl real/reports.jsonl

  # Two single runs, also compared peer by peer
  peerlab run lab-client-server --report sim.json
  peerlab run lab-client-server --on loopback --report real.json
  peerlab compare sim.json real.json --out figs/cs

A and B are each a report (`peerlab run --report`) or a sweep's
reports.jsonl. Sweep points are matched by their `point` object; points
only one side has are listed in a warning. Matched points must be runs of
the same scenario: the same protocol, file size and number of downloaders.

B is the reference (typically the real network): the relative error of a
point is |A - B| / B of the distribution times.

Written to DIR (default compare-<A stem>-vs-<B stem>/):
  plot.png, plot.svg
                 distribution time against the first numeric point field,
                 A solid and B dashed, and the relative error below (single
                 reports: each downloader's completion time)

Exit status: 0 when the comparison was made, 1 when an input is unreadable,
not a report, empty, or the runs compared are of different scenarios.";

/// Arguments of `peerlab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The runs to judge (typically the simulator's): a report or a sweep's
    /// reports.jsonl.
    a: PathBuf,
    /// The reference runs (typically a real network's), in the same form.
    b: PathBuf,
    /// Where to write plot.png and plot.svg
    /// [default: compare-<A stem>-vs-<B stem>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// One point both sides ran.
#[derive(Debug)]
struct Pair<'a> {
    a: &'a Entry,
    b: &'a Entry,
}

impl Pair<'_> {
    /// |A − B| / B of the distribution times, if both completed.
    fn relative_error(&self) -> Option<f64> {
        relative_error(
            self.a.report.distribution_time_s,
            self.b.report.distribution_time_s,
        )
    }
}

/// |a − b| / b, if both are known and b is positive.
fn relative_error(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a - b).abs() / b),
        _ => None,
    }
}

/// Runs `peerlab compare`.
pub fn run(args: &CompareArgs) -> Result<ExitCode> {
    let a = Input::load(&args.a)?;
    let b = Input::load(&args.b)?;
    let pairs = pair(&a, &b)?;
    for p in &pairs {
        check_same_scenario(&a, &b, p)?;
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("compare-{}-vs-{}", stem(&args.a), stem(&args.b))));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let single = a.kind == Kind::Report && b.kind == Kind::Report;
    print_points(&a, &b, &pairs);
    let fig = if single {
        let peers = peer_pairs(&pairs[0]);
        print_peers(&peers);
        figure::peers(&a, &b, &pairs[0], &peers)
    } else {
        figure::points(&a, &b, &pairs)
    };
    crate::plotting::write(&fig, &dir, "plot")?;
    println!(
        "plot: {} {}",
        dir.join("plot.png").display(),
        dir.join("plot.svg").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The file's name without its extension, for the default directory.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "input".into(), |s| s.to_string_lossy().into_owned())
}

/// The points both sides ran, in A's order; warns about the others.
fn pair<'a>(a: &'a Input, b: &'a Input) -> Result<Vec<Pair<'a>>> {
    // A single report stands for the one run of its side.
    if a.kind == Kind::Report || b.kind == Kind::Report {
        let (single, other) = if a.kind == Kind::Report { (a, b) } else { (b, a) };
        if other.entries.len() != 1 {
            bail!(
                "{} is a single report but {} holds {} sweep points: compare a report with a \
                 report, or a sweep with a sweep",
                single.path.display(),
                other.path.display(),
                other.entries.len()
            );
        }
        return Ok(vec![Pair {
            a: &a.entries[0],
            b: &b.entries[0],
        }]);
    }
    // Points are matched by their coordinates: the fields either sweep
    // varies. Fixed settings may differ (that is often the point: a
    // goodput, a backend's knob); the scenario check below guards the rest.
    let mut keys = a.varying();
    for k in b.varying() {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    note_fixed_settings(a, b, &keys);
    let pairs = match_points(a, b, &keys);
    if pairs.is_empty() {
        bail!(
            "no point of {} matches a point of {}: the sweeps must share their --set values \
             (e.g. A's first point is {{{}}}, B's is {{{}}})",
            a.path.display(),
            b.path.display(),
            describe(&a.entries[0].point),
            describe(&b.entries[0].point)
        );
    }
    Ok(pairs)
}

/// Notes on stderr when the two sweeps' settings other than `keys` differ.
fn note_fixed_settings(a: &Input, b: &Input, keys: &[String]) {
    let fixed = |i: &Input| {
        let mut f: Vec<(String, Value)> = i.entries[0]
            .point
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .cloned()
            .collect();
        f.sort_by(|x, y| x.0.cmp(&y.0));
        f
    };
    let (fa, fb) = (fixed(a), fixed(b));
    if fa != fb {
        eprintln!(
            "note: fixed settings differ: A {{{}}}, B {{{}}}",
            describe(&fa),
            describe(&fb)
        );
    }
}

/// The points of A that B also has (the same values of `keys`), in A's
/// order; warns about the points only one side has.
fn match_points<'a>(a: &'a Input, b: &'a Input, keys: &[String]) -> Vec<Pair<'a>> {
    let mut pairs = Vec::new();
    let mut only_a = Vec::new();
    for ea in &a.entries {
        match b.find(&ea.point, keys) {
            Some(eb) => pairs.push(Pair { a: ea, b: eb }),
            None => only_a.push(describe(&ea.point)),
        }
    }
    let only_b: Vec<String> = b
        .entries
        .iter()
        .filter(|eb| a.find(&eb.point, keys).is_none())
        .map(|eb| describe(&eb.point))
        .collect();
    for (side, list) in [(a, &only_a), (b, &only_b)] {
        if !list.is_empty() {
            eprintln!(
                "warning: {} point{} only in {}, not compared: {}",
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                side.path.display(),
                list.join("; ")
            );
        }
    }
    pairs
}

/// Both runs of a pair must be of the same scenario.
fn check_same_scenario(a: &Input, b: &Input, p: &Pair<'_>) -> Result<()> {
    let (ra, rb) = (&p.a.report, &p.b.report);
    let fields = [
        ("protocol", ra.protocol.to_string(), rb.protocol.to_string()),
        ("file_bytes", ra.file_bytes.to_string(), rb.file_bytes.to_string()),
        (
            "downloaders",
            ra.downloaders.to_string(),
            rb.downloaders.to_string(),
        ),
    ];
    for (field, va, vb) in fields {
        if va != vb {
            let point = if p.a.point.is_empty() {
                "the reports".to_string()
            } else {
                format!("point {{{}}}", describe(&p.a.point))
            };
            bail!(
                "{point} is not the same scenario in A and B: {field} is {va} in {} ({}) but {vb} \
                 in {} ({}); compare runs of the same scenario",
                a.path.display(),
                p.a.at(),
                b.path.display(),
                p.b.at()
            );
        }
    }
    Ok(())
}

/// A point value as the sweep's --set spelled it.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The pair's value of point field `k` (empty if it has none).
fn point_value(p: &Pair<'_>, k: &str) -> String {
    p.a.point
        .iter()
        .find(|(n, _)| n == k)
        .map_or_else(String::new, |(_, v)| value_text(v))
}

/// The first pair's point fields other than `shown`, as `k=v`.
fn fixed_fields(pairs: &[Pair<'_>], shown: &[String]) -> Vec<String> {
    pairs[0]
        .a
        .point
        .iter()
        .filter(|(k, _)| !shown.contains(k))
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect()
}

/// `peers.count=2, file.size=1 MiB`.
fn describe(point: &[(String, Value)]) -> String {
    point
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The point fields whose value differs between the pairs (all of them if
/// none does), in A's order.
fn varying_fields(pairs: &[Pair<'_>]) -> Vec<String> {
    let first = &pairs[0].a.point;
    let varies = |k: &str| {
        let value = |p: &Pair<'_>| p.a.point.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        pairs.iter().any(|p| value(p) != value(&pairs[0]))
    };
    first
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| varies(k))
        .collect()
}

/// What a run's distribution time shows in a table.
fn time_text(r: &Report) -> String {
    r.distribution_time_s.map_or_else(
        || {
            let outcome = serde_json::to_value(&r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!("- ({outcome})")
        },
        human::secs,
    )
}

/// A run's longest stall ([`Report::longest_stall`]), for a table.
fn stall_text(r: &Report) -> String {
    r.longest_stall
        .as_ref()
        .map_or_else(|| "-".to_string(), |s| human::secs(s.length_s()))
}

/// Mean and max of the known errors, with the index of the max.
fn summary(errors: &[Option<f64>]) -> Option<(f64, f64, usize)> {
    let known: Vec<(usize, f64)> = errors
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|e| (i, e)))
        .collect();
    let (imax, max) = known.iter().copied().max_by(|x, y| x.1.total_cmp(&y.1))?;
    let mean = known.iter().map(|(_, e)| e).sum::<f64>() / known.len() as f64;
    Some((mean, max, imax))
}

/// Prints the matched points: a heading, a row per point, the summary.
fn print_points(a: &Input, b: &Input, pairs: &[Pair<'_>]) {
    let shown = if pairs[0].a.point.is_empty() {
        Vec::new()
    } else {
        varying_fields(pairs)
    };
    print_heading(a, b, pairs, &shown);
    let errors: Vec<Option<f64>> = pairs.iter().map(Pair::relative_error).collect();
    print_point_rows(pairs, &shown, &errors);
    println!();
    print_summary(pairs, &shown, &errors);
}

/// Prints both files, the scenario, the number of points and the fields
/// that are not `shown` as columns.
fn print_heading(a: &Input, b: &Input, pairs: &[Pair<'_>], shown: &[String]) {
    println!("A: {}   B (reference): {}", a.path.display(), b.path.display());
    let fixed = fixed_fields(pairs, shown);
    let r0 = &pairs[0].a.report;
    println!(
        "{} · {} matched point{}{}",
        r0.scenario.as_deref().unwrap_or(r0.protocol.name()),
        pairs.len(),
        if pairs.len() == 1 { "" } else { "s" },
        if fixed.is_empty() {
            String::new()
        } else {
            format!(" · {}", fixed.join(", "))
        }
    );
    println!();
}

/// Prints the table of points: the `shown` fields, each side's backend,
/// time and longest stall, and the relative error.
fn print_point_rows(pairs: &[Pair<'_>], shown: &[String], errors: &[Option<f64>]) {
    let widths: Vec<usize> = shown
        .iter()
        .map(|k| {
            pairs
                .iter()
                .map(|p| point_value(p, k).chars().count())
                .chain([k.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let backend_w = pairs
        .iter()
        .flat_map(|p| [p.a.report.backend.len(), p.b.report.backend.len()])
        .chain([9])
        .max()
        .unwrap_or(9);
    let mut header = String::new();
    for (k, w) in shown.iter().zip(&widths) {
        header.push_str(&format!("{k:<w$}  "));
    }
    println!(
        "{header}{:<backend_w$} {:>15} {:>10}  {:<backend_w$} {:>15} {:>10}  {:>10}",
        "A backend", "A time", "A stall", "B backend", "B time", "B stall", "rel. error"
    );
    for (p, e) in pairs.iter().zip(errors) {
        let mut row = String::new();
        for (k, w) in shown.iter().zip(&widths) {
            row.push_str(&format!("{:<w$}  ", point_value(p, k)));
        }
        println!(
            "{row}{:<backend_w$} {:>15} {:>10}  {:<backend_w$} {:>15} {:>10}  {:>10}",
            p.a.report.backend,
            time_text(&p.a.report),
            stall_text(&p.a.report),
            p.b.report.backend,
            time_text(&p.b.report),
            stall_text(&p.b.report),
            e.map_or_else(|| "-".to_string(), |e| format!("{e:.4}")),
        );
    }
}

/// Prints the mean and max relative error (where the max is when points
/// are `shown`), and warns about points left out of it.
fn print_summary(pairs: &[Pair<'_>], shown: &[String], errors: &[Option<f64>]) {
    match summary(errors) {
        Some((mean, max, i)) => {
            let at = if shown.is_empty() {
                String::new()
            } else {
                format!(" at {}", describe(&pairs[i].a.point))
            };
            println!(
                "relative error |A - B| / B: mean {mean:.4} ({:.2}%), max {max:.4} ({:.2}%){at}",
                mean * 100.0,
                max * 100.0
            );
        }
        None => println!("relative error |A - B| / B: none (no point completed on both sides)"),
    }
    let missing = errors.iter().filter(|e| e.is_none()).count();
    if missing > 0 {
        eprintln!(
            "warning: {missing} matched point{} did not complete on both sides and are left out of \
             the summary and the plot",
            if missing == 1 { "" } else { "s" }
        );
    }
}

/// One downloader both single reports hold.
#[derive(Debug)]
struct PeerPair {
    name: String,
    a: Option<f64>,
    b: Option<f64>,
}

/// The downloaders (and relays) of the pair's reports, matched by name in
/// A's order; warns about names only one side has.
fn peer_pairs(p: &Pair<'_>) -> Vec<PeerPair> {
    let downloads = |r: &Role| matches!(r, Role::Peer | Role::Relay);
    let (ra, rb) = (&p.a.report, &p.b.report);
    let mut out = Vec::new();
    let mut only_a = Vec::new();
    for ha in ra.hosts.iter().filter(|h| downloads(&h.role)) {
        match rb.hosts.iter().find(|hb| hb.name == ha.name) {
            Some(hb) => out.push(PeerPair {
                name: ha.name.clone(),
                a: ha.completed_s,
                b: hb.completed_s,
            }),
            None => only_a.push(ha.name.clone()),
        }
    }
    let only_b: Vec<String> = rb
        .hosts
        .iter()
        .filter(|hb| downloads(&hb.role) && !ra.hosts.iter().any(|ha| ha.name == hb.name))
        .map(|hb| hb.name.clone())
        .collect();
    for (side, list) in [("A", only_a), ("B", only_b)] {
        if !list.is_empty() {
            eprintln!("warning: hosts only in {side}, not compared: {}", list.join(", "));
        }
    }
    out
}

fn print_peers(peers: &[PeerPair]) {
    println!();
    let w = peers.iter().map(|p| p.name.len()).chain([4]).max().unwrap_or(4);
    println!(
        "{:<w$}  {:>15}  {:>15}  {:>10}",
        "peer", "A completed", "B completed", "rel. error"
    );
    let secs = |s: Option<f64>| s.map_or_else(|| "-".to_string(), human::secs);
    let errors: Vec<Option<f64>> = peers.iter().map(|p| relative_error(p.a, p.b)).collect();
    for (p, e) in peers.iter().zip(&errors) {
        println!(
            "{:<w$}  {:>15}  {:>15}  {:>10}",
            p.name,
            secs(p.a),
            secs(p.b),
            e.map_or_else(|| "-".to_string(), |e| format!("{e:.4}"))
        );
    }
    println!();
    if let Some((mean, max, i)) = summary(&errors) {
        println!(
            "per-peer relative error: mean {mean:.4} ({:.2}%), max {max:.4} ({:.2}%) at {}",
            mean * 100.0,
            max * 100.0,
            peers[i].name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b_is_the_reference() {
        let e = relative_error(Some(0.9), Some(1.0)).unwrap();
        assert!((e - 0.1).abs() < 1e-12);
        let e = relative_error(Some(1.0), Some(0.9)).unwrap();
        assert!((e - 1.0 / 9.0).abs() < 1e-12);
        assert_eq!(relative_error(None, Some(1.0)), None);
        assert_eq!(relative_error(Some(1.0), Some(0.0)), None);
    }

    #[test]
    fn the_summary_skips_points_that_did_not_complete() {
        let (mean, max, i) = summary(&[Some(0.1), None, Some(0.3)]).unwrap();
        assert!((mean - 0.2).abs() < 1e-12);
        assert_eq!((max, i), (0.3, 2));
        assert!(summary(&[None]).is_none());
    }
}
