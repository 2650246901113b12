//! The sweep's figure: distribution time against the swept parameter, one
//! line per combination of the other swept fields, with the client-server
//! and peer-to-peer lower bounds dashed (seed 001's "C/S vs P2P on one
//! plot"). Written as SVG and PNG with plotters; text is drawn with a
//! bundled font (`fonts/`), so no system font library is needed.

use std::path::Path;

use anyhow::Result;
use peerlab_scenarios::{Rate, Scenario};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::PointResult;
use super::grid::Axis;
use crate::plotting::{self, Chart, Draw, DrawResult, Mesh, PALETTE, TickedAxis, numeric};

const CS_BOUND: RGBColor = RGBColor(70, 70, 70);
const P2P_BOUND: RGBColor = RGBColor(150, 150, 150);

/// One measured line.
#[derive(Debug)]
struct Series {
    label: String,
    /// (x, distribution time) of the points that completed, by x.
    points: Vec<(f64, f64)>,
    /// (x, bound) of every point, by x.
    cs_bound: Vec<(f64, f64)>,
    p2p_bound: Vec<(f64, f64)>,
}

/// Which lower bound a dashed line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BoundKind {
    ClientServer,
    P2p,
}

#[derive(Debug)]
struct BoundLine {
    kind: BoundKind,
    label: String,
    /// Colour of the series it belongs to; `None` when every series shares it.
    series: Option<usize>,
    points: Vec<(f64, f64)>,
}

/// Everything the figure shows, computed before anything is drawn.
#[derive(Debug)]
pub struct Figure {
    title: String,
    subtitle: String,
    x_label: String,
    /// Tick labels of a categorical x (positions 0, 1, …).
    categories: Option<Vec<String>>,
    /// Whether every x is a whole number.
    integer_x: bool,
    series: Vec<Series>,
    bounds: Vec<BoundLine>,
}

/// The x parameter: the first varying axis whose values are all numbers
/// (with one unit), else the first varying axis as categories.
struct XAxis {
    axis: Option<usize>,
    /// x of each value of that axis.
    xs: Vec<f64>,
    unit: String,
    categorical: bool,
}

fn choose_x(axes: &[Axis]) -> XAxis {
    let varying = || axes.iter().enumerate().filter(|(_, a)| a.varies());
    if let Some((i, (xs, unit))) = varying().find_map(|(i, a)| numeric(&a.values).map(|n| (i, n))) {
        return XAxis {
            axis: Some(i),
            xs,
            unit,
            categorical: false,
        };
    }
    match varying().next() {
        Some((i, a)) => XAxis {
            axis: Some(i),
            xs: (0..a.values.len()).map(|k| k as f64).collect(),
            unit: String::new(),
            categorical: true,
        },
        None => XAxis {
            axis: None,
            xs: vec![0.0],
            unit: String::new(),
            categorical: true,
        },
    }
}

/// The label of the series at `key` (a value index per `others` axis):
/// the protocol when nothing else varies, else `path=value` of each.
fn series_label(axes: &[Axis], others: &[usize], key: &[usize], first: &Scenario) -> String {
    if others.is_empty() {
        return first.protocol.to_string();
    }
    let parts: Vec<String> = others
        .iter()
        .zip(key)
        .map(|(&i, &v)| match axes[i].path.as_str() {
            "protocol" => axes[i].values[v].clone(),
            path => format!("{path}={}", axes[i].values[v]),
        })
        .collect();
    parts.join(", ")
}

/// One series per combination of the `others` axes' values, holding each
/// point's time and bounds at its x, sorted by x.
fn group_series(
    axes: &[Axis],
    x: &XAxis,
    others: &[usize],
    first: &Scenario,
    results: &[PointResult],
) -> Vec<Series> {
    let mut keys: Vec<Vec<usize>> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for r in results {
        let key: Vec<usize> = others.iter().map(|&i| r.point[i]).collect();
        let s = match keys.iter().position(|k| *k == key) {
            Some(s) => s,
            None => {
                let label = series_label(axes, others, &key, first);
                keys.push(key);
                series.push(Series {
                    label,
                    points: Vec::new(),
                    cs_bound: Vec::new(),
                    p2p_bound: Vec::new(),
                });
                series.len() - 1
            }
        };
        let xv = x.axis.map_or(x.xs[0], |i| x.xs[r.point[i]]);
        let s = &mut series[s];
        if let Some(d) = r.distribution_time_s {
            s.points.push((xv, d));
        }
        s.cs_bound.push((xv, r.bounds.client_server_s));
        s.p2p_bound.push((xv, r.bounds.p2p_s));
    }
    for s in &mut series {
        for line in [&mut s.points, &mut s.cs_bound, &mut s.p2p_bound] {
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    series
}

/// The dashed bound lines: one of each kind when every series has the same
/// curve, else one per series in its colour.
fn bound_lines(series: &[Series]) -> Vec<BoundLine> {
    let mut bounds = Vec::new();
    for kind in [BoundKind::ClientServer, BoundKind::P2p] {
        let line = |s: &Series| match kind {
            BoundKind::ClientServer => s.cs_bound.clone(),
            BoundKind::P2p => s.p2p_bound.clone(),
        };
        let name = match kind {
            BoundKind::ClientServer => "client-server bound",
            BoundKind::P2p => "peer-to-peer bound",
        };
        let shared = series.windows(2).all(|w| same_curve(&line(&w[0]), &line(&w[1])));
        if shared {
            if let Some(s) = series.first() {
                bounds.push(BoundLine {
                    kind,
                    label: name.to_string(),
                    series: None,
                    points: line(s),
                });
            }
        } else {
            for (i, s) in series.iter().enumerate() {
                bounds.push(BoundLine {
                    kind,
                    label: format!("{name} ({})", s.label),
                    series: Some(i),
                    points: line(s),
                });
            }
        }
    }
    bounds
}

/// The figure of a sweep: `results` in grid order, `first` the scenario of
/// the first point (for the title's facts).
pub fn figure(name: &str, axes: &[Axis], first: &Scenario, results: &[PointResult]) -> Figure {
    let x = choose_x(axes);
    let others: Vec<usize> = (0..axes.len())
        .filter(|&i| axes[i].varies() && Some(i) != x.axis)
        .collect();
    let series = group_series(axes, &x, &others, first, results);
    let bounds = bound_lines(&series);
    let path = x.axis.map(|i| axes[i].path.as_str());
    let swept: Vec<&str> = axes
        .iter()
        .filter(|a| a.varies())
        .map(|a| a.path.as_str())
        .collect();
    let incomplete = results.iter().filter(|r| r.distribution_time_s.is_none()).count();
    Figure {
        title: match path {
            Some(p) => format!("{name}: distribution time vs {p}"),
            None => format!("{name}: distribution time"),
        },
        subtitle: subtitle(first, &swept, incomplete),
        x_label: plotting::x_desc(path, &x.unit),
        categories: (x.categorical).then(|| {
            x.axis
                .map_or_else(|| vec![String::new()], |i| axes[i].values.clone())
        }),
        integer_x: x.xs.iter().all(|v| v.fract() == 0.0),
        series,
        bounds,
    }
}

/// Equal within rounding: the bounds of two series are the same curve.
fn same_curve(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(p, q)| p.0 == q.0 && (p.1 - q.1).abs() <= 1e-9 * p.1.abs().max(q.1.abs()))
}

/// The scenario's facts that hold for every point: file size and link rates
/// unless swept.
fn subtitle(s: &Scenario, swept: &[&str], incomplete: usize) -> String {
    // Neither the field, nor an object holding it, nor a part of it is swept.
    let fixed = |path: &str| {
        !swept
            .iter()
            .any(|p| *p == path || path.starts_with(&format!("{p}.")) || p.starts_with(&format!("{path}.")))
    };
    let mut facts = Vec::new();
    if fixed("file.size") {
        facts.push(format!("file {}", crate::human::bytes(s.file.size.0)));
    }
    if fixed("server.upload") {
        facts.push(format!("server upload {}", s.server.upload));
    }
    let group = [("upload", s.peers.upload), ("download", s.peers.download)];
    let links: Vec<String> = group
        .iter()
        .filter(|(what, rate)| rate.is_some() && fixed(&format!("peers.{what}")))
        .map(|(what, rate)| format!("{} {what}", rate.unwrap_or(Rate::UNLIMITED)))
        .collect();
    if !links.is_empty() {
        facts.push(format!("peers {}", links.join(", ")));
    }
    if !s.peers.hosts.is_empty() && fixed("peers.hosts") {
        facts.push(format!("+ {} individual peers", s.peers.hosts.len()));
    }
    if fixed("network.latency") && !s.network.latency.0.is_zero() {
        facts.push(format!("latency {}", s.network.latency));
    }
    if fixed("network.goodput") && s.network.goodput != 1.0 {
        facts.push(format!("goodput {}", s.network.goodput));
    }
    let mut line = facts.join(" · ");
    if incomplete > 0 {
        line.push_str(&format!(
            "  ({incomplete} point{} did not complete, left out)",
            if incomplete == 1 { "" } else { "s" }
        ));
    }
    line
}

/// Writes `plot.svg` and `plot.png` into `dir`, each through a temporary
/// file renamed into place.
pub fn write(fig: &Figure, dir: &Path) -> Result<()> {
    plotting::write(fig, dir, "plot")
}

impl Draw for Figure {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw(self, root)
    }
}

/// Every x a point of the sweep is at (every point has its bounds).
fn all_x(fig: &Figure) -> impl Iterator<Item = f64> + Clone + '_ {
    fig.bounds.iter().flat_map(|b| &b.points).map(|p| p.0)
}

/// The corner of the plot the lines cross least, for the legend.
fn legend_corner(fig: &Figure, x: (f64, f64), y_max: f64) -> SeriesLabelPosition {
    let entries = fig.series.len() + fig.bounds.len();
    // The legend's share of the plot, roughly.
    let size = (0.36, (0.05 + entries as f64 * 0.04).min(0.9));
    let lines: Vec<&[(f64, f64)]> = fig
        .series
        .iter()
        .map(|s| s.points.as_slice())
        .chain(fig.bounds.iter().map(|b| b.points.as_slice()))
        .collect();
    plotting::legend_corner(&lines, x, y_max, size)
}

/// Draws the whole figure: title, axes, the measured lines, the bounds
/// over them, and the legend.
fn draw<DB: DrawingBackend>(fig: &Figure, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let area = plotting::titled(&root, &fig.title, &fig.subtitle, (30, 19))?;
    let y_max = fig
        .series
        .iter()
        .flat_map(|s| &s.points)
        .chain(fig.bounds.iter().flat_map(|b| &b.points))
        .map(|p| p.1)
        .fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.08 } else { 1.0 };
    let categories = fig.categories.as_deref();
    let (x_lo, x_hi) = plotting::x_range(categories, all_x(fig));
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(64)
        .y_label_area_size(72)
        .build_cartesian_2d(
            TickedAxis {
                range: x_lo..x_hi,
                ticks: plotting::x_ticks(categories, all_x(fig), fig.integer_x),
            },
            0.0..y_max,
        )?;
    let mesh = Mesh {
        x_desc: Some(&fig.x_label),
        y_desc: "distribution time (s)",
        fonts: (22, 17),
        y_labels: 10,
    };
    plotting::draw_mesh(&mut chart, &mesh, &|v| plotting::x_tick_label(categories, *v))?;
    for (i, s) in fig.series.iter().enumerate() {
        plotting::draw_marked_line(&mut chart, &s.points, i, s.label.clone())?;
    }
    draw_bounds(fig, &mut chart)?;
    let corner = legend_corner(fig, (x_lo, x_hi), y_max);
    plotting::draw_legend(&mut chart, corner, 16, 18)?;
    root.present()?;
    Ok(())
}

/// The colour, dash and gap of a bound line: the series' colour when it
/// has one, grey otherwise; long dashes for client-server, short for P2P.
fn bound_style(b: &BoundLine) -> (ShapeStyle, u32, u32) {
    let (color, dash, gap) = match (b.series, b.kind) {
        (Some(i), BoundKind::ClientServer) => (PALETTE[i % PALETTE.len()], 12, 6),
        (Some(i), BoundKind::P2p) => (PALETTE[i % PALETTE.len()], 4, 5),
        (None, BoundKind::ClientServer) => (CS_BOUND, 12, 6),
        (None, BoundKind::P2p) => (P2P_BOUND, 4, 5),
    };
    (color.stroke_width(2), dash, gap)
}

/// Draws the bounds dashed over the measurements, then their legend
/// entries after the measurements'.
fn draw_bounds<'a, DB: DrawingBackend + 'a>(fig: &Figure, chart: &mut Chart<'a, DB>) -> DrawResult<DB> {
    // Bounds over the measurements, which often run right along them: the
    // dashes leave the line visible.
    for b in &fig.bounds {
        let (style, dash, gap) = bound_style(b);
        chart.draw_series(DashedLineSeries::new(b.points.iter().copied(), dash, gap, style))?;
    }
    for b in &fig.bounds {
        let (style, dash, gap) = bound_style(b);
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label(b.label.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y)) + DashedPathElement::new(vec![(0, 0), (28, 0)], dash, gap, style)
            });
    }
    Ok(())
}
