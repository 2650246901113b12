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
use crate::plotting::{self, Draw, DrawResult, FONT, PALETTE, TickedAxis, marker, numeric, tick};

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

/// The figure of a sweep: `results` in grid order, `first` the scenario of
/// the first point (for the title's facts).
pub fn figure(name: &str, axes: &[Axis], first: &Scenario, results: &[PointResult]) -> Figure {
    let x = choose_x(axes);
    let others: Vec<usize> = (0..axes.len())
        .filter(|&i| axes[i].varies() && Some(i) != x.axis)
        .collect();
    let mut keys: Vec<Vec<usize>> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for r in results {
        let key: Vec<usize> = others.iter().map(|&i| r.point[i]).collect();
        let s = match keys.iter().position(|k| *k == key) {
            Some(s) => s,
            None => {
                let label = if others.is_empty() {
                    first.protocol.to_string()
                } else {
                    let parts: Vec<String> = others
                        .iter()
                        .zip(&key)
                        .map(|(&i, &v)| match axes[i].path.as_str() {
                            "protocol" => axes[i].values[v].clone(),
                            path => format!("{path}={}", axes[i].values[v]),
                        })
                        .collect();
                    parts.join(", ")
                };
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
    let path = x.axis.map(|i| axes[i].path.as_str());
    let x_label = match (path, x.unit.as_str()) {
        (None, _) => String::new(),
        (Some("peers.count"), "") => "downloaders N (peers.count)".to_string(),
        (Some(p), "") => p.to_string(),
        (Some(p), unit) => format!("{p} ({unit})"),
    };
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
        x_label,
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

/// Where the x ticks go: at every x when there are few, else at round
/// numbers.
fn x_ticks(fig: &Figure) -> Vec<f64> {
    if let Some(c) = &fig.categories {
        return (0..c.len()).map(|k| k as f64).collect();
    }
    let mut xs: Vec<f64> = fig.bounds.iter().flat_map(|b| &b.points).map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    if xs.len() <= 16 {
        return xs;
    }
    plotting::round_ticks(xs[0], xs[xs.len() - 1], fig.integer_x)
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

fn draw<DB: DrawingBackend>(fig: &Figure, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let area = root.margin(16, 8, 8, 28);
    let area = area.titled(&fig.title, (FONT, 30).into_font().color(&BLACK))?;
    let area = area.titled(&fig.subtitle, (FONT, 19).into_font().color(&RGBColor(90, 90, 90)))?;

    let all_y = fig
        .series
        .iter()
        .flat_map(|s| &s.points)
        .chain(fig.bounds.iter().flat_map(|b| &b.points))
        .map(|p| p.1);
    let y_max = all_y.fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.08 } else { 1.0 };
    let all_x = || fig.bounds.iter().flat_map(|b| &b.points).map(|p| p.0);
    let (x_min, x_max) = (
        all_x().fold(f64::INFINITY, f64::min),
        all_x().fold(f64::NEG_INFINITY, f64::max),
    );
    let (x_min, x_max) = if x_min.is_finite() {
        (x_min, x_max)
    } else {
        (0.0, 0.0)
    };
    let pad = if x_max > x_min {
        (x_max - x_min) * 0.04
    } else {
        0.5
    };
    let (x_lo, x_hi) = match &fig.categories {
        Some(c) => (-0.5, c.len() as f64 - 0.5),
        None => (x_min - pad, x_max + pad),
    };

    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(64)
        .y_label_area_size(72)
        .build_cartesian_2d(
            TickedAxis {
                range: x_lo..x_hi,
                ticks: x_ticks(fig),
            },
            0.0..y_max,
        )?;
    let x_format = |v: &f64| match &fig.categories {
        Some(c) => c.get(v.round().max(0.0) as usize).cloned().unwrap_or_default(),
        None => tick(*v),
    };
    chart
        .configure_mesh()
        .x_desc(fig.x_label.as_str())
        .y_desc("distribution time (s)")
        .axis_desc_style((FONT, 22))
        .label_style((FONT, 17))
        .y_labels(10)
        .x_label_formatter(&x_format)
        .y_label_formatter(&|v| tick(*v))
        .bold_line_style(RGBColor(222, 222, 222))
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(60, 60, 60))
        .draw()?;

    let bound_style = |b: &BoundLine| {
        let (color, dash, gap) = match (b.series, b.kind) {
            (Some(i), BoundKind::ClientServer) => (PALETTE[i % PALETTE.len()], 12, 6),
            (Some(i), BoundKind::P2p) => (PALETTE[i % PALETTE.len()], 4, 5),
            (None, BoundKind::ClientServer) => (CS_BOUND, 12, 6),
            (None, BoundKind::P2p) => (P2P_BOUND, 4, 5),
        };
        (color.stroke_width(2), dash, gap)
    };
    for (i, s) in fig.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), line))?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (28, 0)], line)
                    + marker::<DB>(i, (14, 0), color)
            });
        chart.draw_series(
            s.points
                .iter()
                .map(|&p| EmptyElement::at(p) + marker::<DB>(i, (0, 0), color)),
        )?;
    }
    // Bounds over the measurements, which often run right along them: the
    // dashes leave the line visible.
    for b in &fig.bounds {
        let (style, dash, gap) = bound_style(b);
        chart.draw_series(DashedLineSeries::new(b.points.iter().copied(), dash, gap, style))?;
    }
    // The bounds' legend entries, after the measurements'.
    for b in &fig.bounds {
        let (style, dash, gap) = bound_style(b);
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label(b.label.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y)) + DashedPathElement::new(vec![(0, 0), (28, 0)], dash, gap, style)
            });
    }
    chart
        .configure_series_labels()
        .position(legend_corner(fig, (x_lo, x_hi), y_max))
        .margin(16)
        .legend_area_size(36)
        .label_font((FONT, 18))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(190, 190, 190))
        .draw()?;
    root.present()?;
    Ok(())
}
