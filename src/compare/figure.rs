//! The comparison's figure: distribution time of A (solid, filled markers)
//! and B (dashed, hollow markers) against the first numeric point field, one
//! colour per (protocol, file, other point fields), and below it a panel of
//! the relative error |A − B| / B of each point with the 5% fidelity target
//! (docs/fidelity.md). Two single reports show each downloader's completion
//! time instead.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::input::Input;
use super::{Pair, PeerPair, fixed_fields, point_value, relative_error, varying_fields};
use crate::human;
use crate::plotting::{self, Chart, Draw, DrawResult, FONT, Mesh, PALETTE, TickedAxis, marker};

/// The simulator's fidelity target against the real network, in percent.
const TARGET_PERCENT: f64 = 5.0;
/// Relative errors are written next to their points up to this many.
const MAX_ERROR_LABELS: usize = 40;

/// One colour: A's and B's line of the same runs.
#[derive(Debug, Default)]
struct Series {
    label: String,
    /// (x, time) of A's and B's completed runs, by x.
    a: Vec<(f64, f64)>,
    b: Vec<(f64, f64)>,
    /// (x, relative error in percent) where both completed, by x.
    err: Vec<(f64, f64)>,
}

/// Everything the figure shows, computed before anything is drawn.
#[derive(Debug)]
pub struct Figure {
    title: String,
    subtitle: String,
    x_label: String,
    y_label: String,
    /// Tick labels of a categorical x (positions 0, 1, …).
    categories: Option<Vec<String>>,
    integer_x: bool,
    /// Legend names of the two sides.
    a_name: String,
    b_name: String,
    series: Vec<Series>,
}

/// `A: sim` / `B: mininet (reference)`.
fn side_names(pair: &Pair<'_>) -> (String, String) {
    (
        format!("A: {}", pair.a.report.backend),
        format!("B: {} (reference)", pair.b.report.backend),
    )
}

/// The file's name with its directory's (`sim/reports.jsonl`).
fn file_name(input: &Input) -> String {
    let parts: Vec<String> = input
        .path
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The mean and max relative error, for the subtitle.
fn error_summary(series: &[Series]) -> String {
    let errs: Vec<f64> = series.iter().flat_map(|s| &s.err).map(|p| p.1).collect();
    if errs.is_empty() {
        return "no point completed on both sides".to_string();
    }
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    let max = errs.iter().copied().fold(0.0, f64::max);
    format!("relative error |A − B| / B: mean {mean:.2}%, max {max:.2}%")
}

/// Where a points figure puts its x: the first varying field whose values
/// are numbers, else the first varying field as categories.
struct PointsX {
    field: Option<String>,
    /// x of each pair, in order.
    xs: Vec<f64>,
    unit: String,
    categories: Option<Vec<String>>,
}

/// Chooses the x field among `varying` and places each pair on it.
fn choose_x(pairs: &[Pair<'_>], varying: &[String]) -> PointsX {
    let numeric_x = varying.iter().find_map(|k| {
        let values: Vec<String> = pairs.iter().map(|p| point_value(p, k)).collect();
        plotting::numeric(&values).map(|(xs, unit)| (k.clone(), xs, unit))
    });
    if let Some((k, xs, unit)) = numeric_x {
        return PointsX {
            field: Some(k),
            xs,
            unit,
            categories: None,
        };
    }
    match varying.first() {
        Some(k) => {
            let mut cats: Vec<String> = Vec::new();
            let xs = pairs
                .iter()
                .map(|p| {
                    let v = point_value(p, k);
                    let i = cats.iter().position(|c| *c == v).unwrap_or_else(|| {
                        cats.push(v);
                        cats.len() - 1
                    });
                    i as f64
                })
                .collect();
            PointsX {
                field: Some(k.clone()),
                xs,
                unit: String::new(),
                categories: Some(cats),
            }
        }
        None => PointsX {
            field: None,
            xs: vec![0.0; pairs.len()],
            unit: String::new(),
            categories: Some(vec![String::new()]),
        },
    }
}

/// One series per (protocol, file, `others` fields), holding each pair's
/// times and error at its x, sorted by x.
fn point_series(pairs: &[Pair<'_>], xs: &[f64], others: &[&String]) -> Vec<Series> {
    let mut keys: Vec<String> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for (p, &x) in pairs.iter().zip(xs) {
        let r = &p.a.report;
        let mut parts = vec![r.protocol.to_string(), human::bytes(r.file_bytes)];
        parts.extend(others.iter().map(|k| format!("{k}={}", point_value(p, k))));
        let label = parts.join(", ");
        let i = keys.iter().position(|k| *k == label).unwrap_or_else(|| {
            keys.push(label.clone());
            series.push(Series {
                label,
                ..Series::default()
            });
            series.len() - 1
        });
        let s = &mut series[i];
        let (ta, tb) = (p.a.report.distribution_time_s, p.b.report.distribution_time_s);
        if let Some(t) = ta {
            s.a.push((x, t));
        }
        if let Some(t) = tb {
            s.b.push((x, t));
        }
        if let Some(e) = relative_error(ta, tb) {
            s.err.push((x, e * 100.0));
        }
    }
    for s in &mut series {
        for line in [&mut s.a, &mut s.b, &mut s.err] {
            line.sort_by(|p, q| p.0.total_cmp(&q.0));
        }
    }
    series
}

/// The subtitle of a points figure: both files, the fields no point
/// varies, and the error summary.
fn points_subtitle(
    a: &Input,
    b: &Input,
    pairs: &[Pair<'_>],
    varying: &[String],
    series: &[Series],
) -> String {
    let fixed = fixed_fields(pairs, varying);
    let mut subtitle = format!("A = {} · B = {}", file_name(a), file_name(b));
    if !fixed.is_empty() {
        subtitle.push_str(&format!(" · {}", fixed.join(", ")));
    }
    subtitle.push_str(&format!(" · {}", error_summary(series)));
    subtitle
}

/// The figure of two sweeps' matched points.
pub fn points(a: &Input, b: &Input, pairs: &[Pair<'_>]) -> Figure {
    let varying = varying_fields(pairs);
    let x = choose_x(pairs, &varying);
    let others: Vec<&String> = varying
        .iter()
        .filter(|k| Some(*k) != x.field.as_ref() && *k != "protocol" && *k != "file.size")
        .collect();
    let series = point_series(pairs, &x.xs, &others);
    let (a_name, b_name) = side_names(&pairs[0]);
    let r0 = &pairs[0].a.report;
    let name = r0.scenario.clone().unwrap_or_else(|| r0.protocol.to_string());
    Figure {
        title: match x.field.as_deref() {
            Some(k) => format!("{name}: {a_name} vs {b_name}, distribution time vs {k}"),
            None => format!("{name}: {a_name} vs {b_name}, distribution time"),
        }
        .replace(" (reference)", ""),
        subtitle: points_subtitle(a, b, pairs, &varying, &series),
        x_label: plotting::x_desc(x.field.as_deref(), &x.unit),
        y_label: "distribution time (s)".to_string(),
        integer_x: x.xs.iter().all(|v| v.fract() == 0.0),
        categories: x.categories,
        a_name,
        b_name,
        series,
    }
}

/// The figure of two single reports: each downloader's completion time.
pub fn peers(a: &Input, b: &Input, pair: &Pair<'_>, peers: &[PeerPair]) -> Figure {
    let r = &pair.a.report;
    let mut s = Series {
        label: format!("{}, {}", r.protocol, human::bytes(r.file_bytes)),
        ..Series::default()
    };
    for (i, p) in peers.iter().enumerate() {
        let x = i as f64;
        if let Some(t) = p.a {
            s.a.push((x, t));
        }
        if let Some(t) = p.b {
            s.b.push((x, t));
        }
        if let Some(e) = relative_error(p.a, p.b) {
            s.err.push((x, e * 100.0));
        }
    }
    let (a_name, b_name) = side_names(pair);
    let name = r.scenario.clone().unwrap_or_else(|| r.protocol.to_string());
    let times = |t: Option<f64>| t.map_or_else(|| "-".to_string(), human::secs);
    let err = relative_error(r.distribution_time_s, pair.b.report.distribution_time_s)
        .map_or_else(|| "-".to_string(), |e| format!("{:.2}%", e * 100.0));
    let few = peers.len() <= 16;
    Figure {
        title: format!("{name}: {a_name} vs {b_name}, completion time per downloader")
            .replace(" (reference)", ""),
        subtitle: format!(
            "A = {} · B = {} · {} downloaders · distribution time {} vs {} ({err})",
            file_name(a),
            file_name(b),
            r.downloaders,
            times(r.distribution_time_s),
            times(pair.b.report.distribution_time_s),
        ),
        x_label: if few {
            "downloader".to_string()
        } else {
            "downloader (in A's host order, from 0)".to_string()
        },
        y_label: "completion time (s)".to_string(),
        categories: few.then(|| peers.iter().map(|p| p.name.clone()).collect()),
        integer_x: true,
        a_name,
        b_name,
        series: vec![s],
    }
}

impl Figure {
    /// Every x that A or B has a time at.
    fn xs(&self) -> impl Iterator<Item = f64> + Clone + '_ {
        self.series
            .iter()
            .flat_map(|s| s.a.iter().chain(&s.b))
            .map(|p| p.0)
    }

    /// Both panels' x axis.
    fn x_axis(&self) -> TickedAxis {
        let (lo, hi) = plotting::x_range(self.categories.as_deref(), self.xs());
        TickedAxis {
            range: lo..hi,
            ticks: plotting::x_ticks(self.categories.as_deref(), self.xs(), self.integer_x),
        }
    }

    fn legend_label(&self, s: &Series, side: &str) -> String {
        if self.series.len() == 1 {
            format!("{side} · {}", s.label)
        } else {
            format!("{} · {side}", s.label)
        }
    }

    /// Draws the upper panel: A's and B's times, one colour per series.
    fn draw_times<DB: DrawingBackend>(&self, upper: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let y_max = self
            .series
            .iter()
            .flat_map(|s| s.a.iter().chain(&s.b))
            .map(|p| p.1)
            .fold(0.0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let x_axis = self.x_axis();
        let x_range = (x_axis.range.start, x_axis.range.end);
        let mut chart = ChartBuilder::on(upper)
            .margin(12)
            .margin_bottom(4)
            .x_label_area_size(36)
            .y_label_area_size(84)
            .build_cartesian_2d(x_axis, 0.0..y_max)?;
        let mesh = Mesh {
            x_desc: None,
            y_desc: &self.y_label,
            fonts: (20, 16),
            y_labels: 8,
        };
        let categories = self.categories.as_deref();
        plotting::draw_mesh(&mut chart, &mesh, &|v| plotting::x_tick_label(categories, *v))?;
        for (i, s) in self.series.iter().enumerate() {
            plotting::draw_marked_line(&mut chart, &s.a, i, self.legend_label(s, &self.a_name))?;
            self.draw_reference_line(&mut chart, s, i)?;
        }
        let lines: Vec<&[(f64, f64)]> = self
            .series
            .iter()
            .flat_map(|s| [s.a.as_slice(), s.b.as_slice()])
            .collect();
        let entries = self.series.len() * 2;
        let corner = plotting::legend_corner(
            &lines,
            x_range,
            y_max,
            (0.42, (0.06 + entries as f64 * 0.07).min(0.9)),
        );
        plotting::draw_legend(&mut chart, corner, 14, 17)
    }

    /// Draws B's times of series `i`: dashed, with hollow circles.
    fn draw_reference_line<'a, DB: DrawingBackend + 'a>(
        &self,
        chart: &mut Chart<'a, DB>,
        s: &Series,
        i: usize,
    ) -> DrawResult<DB> {
        let line = PALETTE[i % PALETTE.len()].stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(s.b.iter().copied(), 10, 6, line))?
            .label(self.legend_label(s, &self.b_name))
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + DashedPathElement::new(vec![(0, 0), (28, 0)], 8, 4, line)
                    + Circle::new((14, 0), 6, WHITE.filled())
                    + Circle::new((14, 0), 6, line)
            });
        chart.draw_series(s.b.iter().map(|&p| {
            EmptyElement::at(p) + Circle::new((0, 0), 6, WHITE.filled()) + Circle::new((0, 0), 6, line)
        }))?;
        Ok(())
    }

    /// Draws the lower panel: each point's relative error in percent, with
    /// the fidelity target dashed.
    fn draw_errors<DB: DrawingBackend>(&self, lower: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let e_max = self
            .series
            .iter()
            .flat_map(|s| &s.err)
            .map(|p| p.1)
            .fold(0.0f64, f64::max);
        let e_max = (e_max * 1.35).max(TARGET_PERCENT * 1.4);
        let x_axis = self.x_axis();
        let (x_lo, x_hi) = (x_axis.range.start, x_axis.range.end);
        let mut panel = ChartBuilder::on(lower)
            .margin(12)
            .margin_top(4)
            .x_label_area_size(60)
            .y_label_area_size(84)
            .build_cartesian_2d(x_axis, 0.0..e_max)?;
        let mesh = Mesh {
            x_desc: Some(&self.x_label),
            y_desc: "|A − B| / B (%)",
            fonts: (20, 16),
            y_labels: 5,
        };
        let categories = self.categories.as_deref();
        plotting::draw_mesh(&mut panel, &mesh, &|v| plotting::x_tick_label(categories, *v))?;
        let target = RGBColor(120, 120, 120).stroke_width(1);
        panel
            .draw_series(DashedLineSeries::new(
                [(x_lo, TARGET_PERCENT), (x_hi, TARGET_PERCENT)],
                6,
                5,
                target,
            ))?
            .label(format!("{TARGET_PERCENT}% fidelity target"))
            .legend(move |(x, y)| {
                EmptyElement::at((x, y)) + DashedPathElement::new(vec![(0, 0), (28, 0)], 6, 5, target)
            });
        self.draw_error_lines(&mut panel)?;
        let corner = plotting::legend_corner(
            &self.series.iter().map(|s| s.err.as_slice()).collect::<Vec<_>>(),
            (x_lo, x_hi),
            e_max,
            (0.42, 0.3),
        );
        plotting::draw_legend(&mut panel, corner, 10, 15)
    }

    /// Draws each series' errors as a thin line with markers, and writes
    /// them next to their points when there are few.
    fn draw_error_lines<'a, DB: DrawingBackend + 'a>(&self, panel: &mut Chart<'a, DB>) -> DrawResult<DB> {
        let labelled = self.series.iter().map(|s| s.err.len()).sum::<usize>() <= MAX_ERROR_LABELS;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            panel.draw_series(LineSeries::new(s.err.iter().copied(), color.stroke_width(1)))?;
            panel.draw_series(
                s.err
                    .iter()
                    .map(|&p| EmptyElement::at(p) + marker::<DB>(i, (0, 0), color)),
            )?;
            if labelled {
                let font = (FONT, 15).into_font().color(&color);
                panel.draw_series(s.err.iter().map(|&(x, e)| {
                    EmptyElement::at((x, e)) + Text::new(format!("{e:.1}%"), (-16, -24), font.clone())
                }))?;
            }
        }
        Ok(())
    }
}

impl Draw for Figure {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = plotting::titled(&root, &self.title, &self.subtitle, (28, 18))?;
        let height = area.dim_in_pixel().1;
        let (upper, lower) = area.split_vertically((f64::from(height) * 0.66) as i32);
        self.draw_times(&upper)?;
        self.draw_errors(&lower)?;
        root.present()?;
        Ok(())
    }
}
