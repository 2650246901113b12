//! What every peerlab figure shares (`peerlab sweep`, `peerlab compare`):
//! the bundled font, the palette, tick labels without noise, markers, and
//! writing one figure as SVG and PNG. Text is drawn with a bundled font
//! (`sweep/fonts/`), so no system font library is needed.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use peerlab_scenarios::{Dur, Rate, Size};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DynElement;
use plotters::prelude::*;

/// Pixel size of both the PNG and the SVG.
pub const SIZE: (u32, u32) = (1280, 800);
/// The family the bundled font is registered under.
pub const FONT: &str = "sans-serif";
/// Tableau 10: distinct, print- and colour-blind-friendly enough.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// What drawing into a backend `DB` returns.
pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can draw itself on any plotters backend.
pub trait Draw {
    /// Draws the whole figure on `root` and presents it.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Writes `<stem>.svg` and `<stem>.png` into `dir`, each through a
/// temporary file renamed into place.
pub fn write(fig: &impl Draw, dir: &Path, stem: &str) -> Result<()> {
    register_font()?;
    let svg_path = dir.join(format!("{stem}.svg"));
    let mut svg = String::new();
    fig.draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area())
        .map_err(|e| anyhow!("cannot draw {}: {e}", svg_path.display()))?;
    let tmp = dir.join(format!("{stem}.partial.svg"));
    std::fs::write(&tmp, svg)
        .and_then(|()| std::fs::rename(&tmp, &svg_path))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;

    let png_path = dir.join(format!("{stem}.png"));
    // BitMapBackend picks the format from the extension: keep `.png` last.
    let tmp = dir.join(format!("{stem}.partial.png"));
    fig.draw(BitMapBackend::new(&tmp, SIZE).into_drawing_area())
        .map_err(|e| anyhow!("cannot draw {}: {e}", png_path.display()))?;
    std::fs::rename(&tmp, &png_path).with_context(|| format!("cannot write {}", png_path.display()))
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        let bytes: &'static [u8] = include_bytes!("sweep/fonts/DejaVuSans.ttf");
        plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the bundled font cannot be read"))
    }
}

/// `2` for 2.0, `2.5` for 2.5, `0.125` for 0.125: ticks without noise.
pub fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{:.0}", v.round())
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Ticks at round numbers (1, 2 or 5 times a power of ten) covering
/// `lo..=hi`, about ten of them; whole numbers only if `integer`.
pub fn round_ticks(lo: f64, hi: f64, integer: bool) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let raw = (hi - lo) / 10.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(raw);
    let step = if integer { step.max(1.0).round() } else { step };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A linear f64 axis with ticks where we say (plotters' `with_key_points`
/// loses the label formatter of f64 axes).
#[derive(Debug)]
pub struct TickedAxis {
    /// The values the axis spans.
    pub range: Range<f64>,
    /// Where its labelled ticks go.
    pub ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A line chart: x on a [`TickedAxis`], y from zero up.
pub type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, RangedCoordf64>>;

/// Fills `root` white and writes the title and, below it in grey, the
/// subtitle (font sizes `(title, subtitle)`); returns the area left below.
pub fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    (title_size, subtitle_size): (u32, u32),
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let area = root.margin(16, 8, 8, 28);
    let area = area.titled(title, (FONT, title_size).into_font().color(&BLACK))?;
    area.titled(
        subtitle,
        (FONT, subtitle_size).into_font().color(&RGBColor(90, 90, 90)),
    )
}

/// How a line chart's grid and axes are labelled.
#[derive(Debug)]
pub struct Mesh<'a> {
    /// The x axis's description, if it has one.
    pub x_desc: Option<&'a str>,
    /// The y axis's description.
    pub y_desc: &'a str,
    /// Font sizes of the descriptions and of the tick labels.
    pub fonts: (u32, u32),
    /// About how many y ticks.
    pub y_labels: usize,
}

/// Draws a line chart's light grid at the ticks, its axes and their labels,
/// x ticks labelled by `x_format`.
pub fn draw_mesh<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    mesh: &Mesh<'_>,
    x_format: &dyn Fn(&f64) -> String,
) -> DrawResult<DB> {
    let mut style = chart.configure_mesh();
    if let Some(desc) = mesh.x_desc {
        style.x_desc(desc);
    }
    style
        .y_desc(mesh.y_desc)
        .axis_desc_style((FONT, mesh.fonts.0))
        .label_style((FONT, mesh.fonts.1))
        .y_labels(mesh.y_labels)
        .x_label_formatter(x_format)
        .y_label_formatter(&|v| tick(*v))
        .bold_line_style(RGBColor(222, 222, 222))
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(60, 60, 60))
        .draw()
}

/// Draws `points` as a solid line with markers of shape `kind` in the
/// palette's `kind`th colour, under `label` in the legend.
pub fn draw_marked_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    points: &[(f64, f64)],
    kind: usize,
    label: String,
) -> DrawResult<DB> {
    let color = PALETTE[kind % PALETTE.len()];
    let line = color.stroke_width(2);
    chart
        .draw_series(LineSeries::new(points.iter().copied(), line))?
        .label(label)
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (28, 0)], line)
                + marker::<DB>(kind, (14, 0), color)
        });
    chart.draw_series(
        points
            .iter()
            .map(|&p| EmptyElement::at(p) + marker::<DB>(kind, (0, 0), color)),
    )?;
    Ok(())
}

/// Draws the chart's legend in a white box at `position`, `margin` pixels
/// from the plot's edges, in `font_size`.
pub fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
    margin: u32,
    font_size: u32,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(margin)
        .legend_area_size(36)
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(190, 190, 190))
        .draw()
}

/// The x range of a chart: the categories' positions with half a step
/// around, else the values' span padded by 4% (half a unit for one value).
pub fn x_range(categories: Option<&[String]>, xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    if let Some(c) = categories {
        return (-0.5, c.len() as f64 - 0.5);
    }
    let (lo, hi) = (
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
    );
    if !lo.is_finite() {
        return (-0.5, 0.5);
    }
    let pad = if hi > lo { (hi - lo) * 0.04 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Where the x ticks go: at each category, at every x when there are few,
/// else at round numbers (whole ones if `integer`).
pub fn x_ticks(categories: Option<&[String]>, xs: impl Iterator<Item = f64>, integer: bool) -> Vec<f64> {
    if let Some(c) = categories {
        return (0..c.len()).map(|k| k as f64).collect();
    }
    let mut xs: Vec<f64> = xs.collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    if xs.len() <= 16 {
        return xs;
    }
    round_ticks(xs[0], xs[xs.len() - 1], integer)
}

/// The label of the x tick at `v`: its category's name, else the number.
pub fn x_tick_label(categories: Option<&[String]>, v: f64) -> String {
    match categories {
        Some(c) => c.get(v.round().max(0.0) as usize).cloned().unwrap_or_default(),
        None => tick(v),
    }
}

/// The x axis's description: the swept field, with its unit.
pub fn x_desc(field: Option<&str>, unit: &str) -> String {
    match (field, unit) {
        (None, _) => String::new(),
        (Some("peers.count"), "") => "downloaders N (peers.count)".to_string(),
        (Some(k), "") => k.to_string(),
        (Some(k), unit) => format!("{k} ({unit})"),
    }
}

/// A marker of shape `kind` centred `at` pixels from its anchor.
pub fn marker<DB: DrawingBackend>(
    kind: usize,
    at: (i32, i32),
    color: RGBColor,
) -> DynElement<'static, DB, (i32, i32)> {
    let (x, y) = at;
    match kind % 4 {
        0 => Circle::new(at, 5, color.filled()).into_dyn(),
        1 => TriangleMarker::new(at, 7, color.filled()).into_dyn(),
        2 => Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], color.filled()).into_dyn(),
        _ => Cross::new(at, 5, color.stroke_width(2)).into_dyn(),
    }
}

/// The values as numbers in one unit: plain numbers, numbers sharing a unit
/// (`0 ms, 5 ms`), or durations, sizes or rates in mixed units (shown in
/// ms, MiB or Mbit/s).
pub fn numeric(values: &[String]) -> Option<(Vec<f64>, String)> {
    let split: Option<Vec<(f64, &str)>> = values
        .iter()
        .map(|v| {
            let v = v.trim();
            let end = v
                .char_indices()
                .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (c == '-' && i == 0)))
                .map_or(v.len(), |(i, _)| i);
            let x: f64 = v[..end].parse().ok()?;
            x.is_finite().then_some((x, v[end..].trim()))
        })
        .collect();
    if let Some(split) = split
        && split.iter().all(|(_, u)| *u == split[0].1)
    {
        let unit = split[0].1.to_string();
        return Some((split.into_iter().map(|(x, _)| x).collect(), unit));
    }
    let all = |f: &dyn Fn(&str) -> Option<f64>| values.iter().map(|v| f(v)).collect::<Option<Vec<f64>>>();
    if let Some(xs) = all(&|v| Dur::parse(v).ok().map(|d| d.0.as_secs_f64() * 1e3)) {
        return Some((xs, "ms".into()));
    }
    if let Some(xs) = all(&|v| Size::parse(v).ok().map(|s| s.0 as f64 / (1u64 << 20) as f64)) {
        return Some((xs, "MiB".into()));
    }
    if let Some(xs) = all(&|v| {
        Rate::parse(v)
            .ok()
            .filter(|r| !r.is_unlimited())
            .map(|r| r.bits_per_sec() / 1e6)
    }) {
        return Some((xs, "Mbit/s".into()));
    }
    None
}

/// The corner of a panel the lines cross least, for its legend; `(w, h)`
/// is the legend's rough share of the panel's width and height.
pub fn legend_corner(
    lines: &[&[(f64, f64)]],
    (x_lo, x_hi): (f64, f64),
    y_max: f64,
    (w, h): (f64, f64),
) -> SeriesLabelPosition {
    let mut samples = Vec::new();
    for line in lines {
        let norm = |p: &(f64, f64)| ((p.0 - x_lo) / (x_hi - x_lo), p.1 / y_max);
        for pair in line.windows(2) {
            let (a, b) = (norm(&pair[0]), norm(&pair[1]));
            for k in 0..=20 {
                let t = f64::from(k) / 20.0;
                samples.push((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
            }
        }
        samples.extend(line.iter().map(norm));
    }
    let crossing = |left: bool, top: bool| {
        samples
            .iter()
            .filter(|(x, y)| {
                (if left { *x <= w } else { *x >= 1.0 - w }) && (if top { *y >= 1.0 - h } else { *y <= h })
            })
            .count()
    };
    [
        (SeriesLabelPosition::UpperLeft, crossing(true, true)),
        (SeriesLabelPosition::UpperRight, crossing(false, true)),
        (SeriesLabelPosition::LowerRight, crossing(false, false)),
        (SeriesLabelPosition::LowerLeft, crossing(true, false)),
    ]
    .into_iter()
    .min_by_key(|&(_, n)| n)
    .map_or(SeriesLabelPosition::UpperLeft, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn numbers_with_one_unit_or_a_known_kind_are_numeric() {
        assert_eq!(
            numeric(&strings(&["2", "4"])),
            Some((vec![2.0, 4.0], String::new()))
        );
        assert_eq!(
            numeric(&strings(&["0 ms", "5 ms"])),
            Some((vec![0.0, 5.0], "ms".into()))
        );
        assert_eq!(
            numeric(&strings(&["500 ms", "1 s"])),
            Some((vec![500.0, 1000.0], "ms".into()))
        );
        assert_eq!(
            numeric(&strings(&["512 KiB", "1 MiB"])),
            Some((vec![0.5, 1.0], "MiB".into()))
        );
        assert_eq!(numeric(&strings(&["client-server", "swarm"])), None);
        assert_eq!(numeric(&strings(&["10 Mbit/s", "unlimited"])), None);
    }

    #[test]
    fn ticks_have_no_noise() {
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(12.5), "12.5");
        assert_eq!(round_ticks(0.0, 100.0, true).len(), 11);
    }
}
