//! The fidelity figure: one line per row of the matrix, the relative error
//! of the simulator's mean distribution time, median and 90th-percentile
//! completion against the real network's, and the tolerance as a dashed
//! line. A row that misses shows right of the line at a glance.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::matrix::Matrix;
use super::metrics::Metric;
use super::{RowResult, Verdict};
use crate::plotting::{Draw, DrawResult, FONT, PALETTE, TickedAxis, marker, round_ticks, tick};

/// The chart: errors across, rows down.
type RowChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, TickedAxis>>;

/// The metrics drawn, one marker shape and colour each.
const DRAWN: [Metric; 3] = [Metric::DistributionTime, Metric::PeerP50, Metric::PeerP90];

/// Everything the figure shows, computed before anything is drawn.
#[derive(Debug)]
pub struct Figure {
    title: String,
    tolerance: f64,
    /// Per row: its name, whether it passed, and each drawn metric's error
    /// in percent.
    rows: Vec<(String, bool, Vec<Option<f64>>)>,
}

impl Figure {
    /// The figure of `results`, judged against `matrix`'s tolerance.
    pub fn new(matrix: &Matrix, results: &[RowResult]) -> Figure {
        let real = results.first().map_or("real", |r| r.real.as_str());
        Figure {
            title: format!(
                "{}: simulator vs {real}, {} runs per side",
                matrix.name, matrix.repeats
            ),
            tolerance: matrix.tolerance.relative * 100.0,
            rows: results
                .iter()
                .map(|r| {
                    let errors = DRAWN
                        .iter()
                        .map(|m| r.metrics.get(m.name()).and_then(|m| m.error).map(|e| e * 100.0))
                        .collect();
                    (r.row.clone(), r.verdict == Verdict::Pass, errors)
                })
                .collect(),
        }
    }
}

impl Figure {
    /// The largest error drawn (at least twice the tolerance), with room.
    fn x_max(&self) -> f64 {
        let worst = self
            .rows
            .iter()
            .flat_map(|(_, _, e)| e.iter().flatten().copied())
            .fold(self.tolerance * 2.0, f64::max);
        worst * 1.1
    }

    /// Each row's label: its name, marked when it misses.
    fn row_labels(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|(name, pass, _)| {
                if *pass {
                    name.clone()
                } else {
                    format!("{name} ✗")
                }
            })
            .collect()
    }

    /// The tolerance as a dashed vertical line across every row.
    fn draw_tolerance<'a, DB: DrawingBackend + 'a>(&self, chart: &mut RowChart<'a, DB>) -> DrawResult<DB> {
        let (tol, n) = (self.tolerance, self.rows.len().max(1));
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                vec![(tol, -0.5), (tol, n as f64 - 0.5)],
                6,
                4,
                RED.stroke_width(2),
            )))?
            .label(format!("tolerance {}%", tick(tol)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        Ok(())
    }

    /// One marker per row and metric, the metrics side by side within a
    /// row's line; errors beyond the axis sit at its end.
    fn draw_errors<'a, DB: DrawingBackend + 'a>(
        &self,
        chart: &mut RowChart<'a, DB>,
        x_max: f64,
    ) -> DrawResult<DB> {
        let n = self.rows.len().max(1);
        for (k, m) in DRAWN.iter().enumerate() {
            let color = PALETTE[k];
            let offset = (1.0 - k as f64) * 0.22;
            let points: Vec<(f64, f64)> = self
                .rows
                .iter()
                .enumerate()
                .filter_map(|(i, (_, _, e))| e[k].map(|e| (e.min(x_max), (n - 1 - i) as f64 + offset)))
                .collect();
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(move |p| EmptyElement::at(p) + marker::<DB>(k, (0, 0), color)),
                )?
                .label(m.name())
                .legend(move |(x, y)| marker::<DB>(k, (x + 10, y), color));
        }
        Ok(())
    }
}

impl Draw for Figure {
    /// Rows down the left (the first at the top), errors across: two
    /// dozen row names stay readable.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let n = self.rows.len().max(1);
        let x_max = self.x_max();
        let x = TickedAxis {
            range: 0.0..x_max,
            ticks: round_ticks(0.0, x_max, false),
        };
        // Row i sits at n - 1 - i, so the first row is at the top.
        let y = TickedAxis {
            range: -0.5..n as f64 - 0.5,
            ticks: (0..n).map(|i| i as f64).collect(),
        };
        let names = self.row_labels();
        let label_w = names.iter().map(|s| s.chars().count()).max().unwrap_or(4) as u32 * 9 + 20;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v: &f64| {
                let i = n as i64 - 1 - v.round() as i64;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| names.get(i))
                    .cloned()
                    .unwrap_or_default()
            })
            .x_label_formatter(&|v: &f64| format!("{}%", tick(*v)))
            .x_desc("|sim − real| / real, mean of the runs (✗: the row misses)")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .draw()?;
        self.draw_tolerance(&mut chart)?;
        self.draw_errors(&mut chart, x_max)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 16))
            .draw()?;
        root.present()
    }
}
