//! `summary.png` of a sweep or search folder: validation accuracy against the
//! swept axis (a log axis for scale axes, categories for widths or losses),
//! stages as separate series, the chosen runs ringed; a heatmap for a
//! two-axis grid.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::train::{Axis, Value};

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the summary: {e:?}")
}

/// One finished run on the summary picture.
#[derive(Clone, Debug)]
pub struct Point {
    /// Its value of each axis, in the axes' order.
    pub coords: Vec<Value>,
    /// Validation accuracy (0-1); not finite for a diverged run.
    pub val_acc: f64,
    /// Index of its series (a search's stage), into the series names.
    pub series: usize,
    /// Whether the run was chosen (the best, or a search's final values).
    pub chosen: bool,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Draws `path`: a heatmap when `axes` are two and the points fill their grid,
/// else validation accuracy against the first axis.
pub fn summary_png(
    path: &Path,
    title: &str,
    axes: &[Axis],
    series: &[&str],
    points: &[Point],
) -> Result<()> {
    super::png::register_font();
    let (w, h) = (960u32, 560u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let full_grid = axes.len() == 2 && {
            let xs = distinct(points, 0);
            let ys = distinct(points, 1);
            let mut cells: Vec<(String, String)> = points
                .iter()
                .map(|p| (p.coords[0].label(), p.coords[1].label()))
                .collect();
            cells.sort();
            cells.dedup();
            cells.len() == xs.len() * ys.len() && xs.len() * ys.len() <= 400
        };
        if full_grid {
            heatmap(&root, title, axes, points)?;
        } else if axes.len() == 2 {
            scatter_2d(&root, title, axes, points)?;
        } else {
            against_axis(&root, title, axes.first().copied(), series, points)?;
        }
        root.present().map_err(err)?;
    }
    super::png::save_png(path, &buf, w, h)
}

/// Distinct values of coordinate `k`, sorted (numerically when they are numbers).
fn distinct(points: &[Point], k: usize) -> Vec<Value> {
    let mut v: Vec<Value> = Vec::new();
    for p in points {
        if let Some(c) = p.coords.get(k) {
            if !v.contains(c) {
                v.push(c.clone());
            }
        }
    }
    if v.iter().all(|x| x.as_number().is_some()) {
        v.sort_by(|a, b| {
            a.as_number()
                .unwrap_or(0.0)
                .total_cmp(&b.as_number().unwrap_or(0.0))
        });
    }
    v
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The summary's chart area on `root`: `caption` above, the house margins,
/// `y_labels` pixels for the y axis's labels.
fn chart<'a, 'b>(
    root: &'a Area<'b>,
    caption: &str,
    y_labels: u32,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<Chart<'a, 'b>> {
    ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(y_labels)
        .build_cartesian_2d(x, y)
        .map_err(err)
}

/// How one axis's values map to x in [`against_axis`]: numbers (their log10
/// on a positive scale axis) or, for anything else, category positions.
struct XAxis {
    values: Vec<Value>,
    numeric: bool,
    log: bool,
}

impl XAxis {
    fn new(points: &[Point], axis: Option<Axis>) -> Self {
        let values = distinct(points, 0);
        let numeric = !values.is_empty() && values.iter().all(|v| v.as_number().is_some());
        let log = numeric
            && axis.is_some_and(Axis::is_scale)
            && values.iter().all(|v| v.as_number().unwrap_or(0.0) > 0.0);
        XAxis {
            values,
            numeric,
            log,
        }
    }

    /// Where value `v` lies on the x axis.
    fn x(&self, v: &Value) -> f64 {
        if !self.numeric {
            return self.values.iter().position(|u| u == v).unwrap_or(0) as f64;
        }
        let x = v.as_number().unwrap_or(0.0);
        if self.log {
            x.log10()
        } else {
            x
        }
    }

    /// The tick label at x (categories only at their positions).
    fn label(&self, x: f64) -> String {
        if self.numeric {
            let v = if self.log { 10f64.powf(x) } else { x };
            return crate::util::short_number(v);
        }
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            self.values
                .get(i as usize)
                .map(Value::label)
                .unwrap_or_default()
        } else {
            String::new()
        }
    }

    /// The chart's x and y ranges around points (x, accuracy in %), padded.
    fn ranges(&self, pts: &[(f64, f64, &Point)]) -> (f64, f64, f64, f64) {
        let (xl, xh) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
            (a.0.min(p.0), a.1.max(p.0))
        });
        let (yl, yh) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
            (a.0.min(p.1), a.1.max(p.1))
        });
        let pad_x = if self.numeric {
            0.06 * (xh - xl).max(if self.log { 1.0 } else { xh.abs().max(1.0) })
        } else {
            0.5
        };
        let (xl, xh) = if xl.is_finite() {
            (xl - pad_x, xh + pad_x)
        } else {
            (0.0, 1.0)
        };
        let (yl, yh) = if yl.is_finite() {
            let pad = (0.08 * (yh - yl)).max(0.5);
            (yl - pad, yh + pad)
        } else {
            (0.0, 100.0)
        };
        (xl, xh, yl, yh)
    }
}

/// Validation accuracy against one axis: numbers on a linear or log axis,
/// anything else (several hidden layers, losses) as categories.
fn against_axis(
    root: &Area,
    title: &str,
    axis: Option<Axis>,
    series: &[&str],
    points: &[Point],
) -> Result<()> {
    let xs = XAxis::new(points, axis);
    // One run per value of a one-axis grid: a line joins them.
    let grid_line = xs.values.len() <= 16 && xs.values.len() == points.len();
    let (numeric, log) = (xs.numeric, xs.log);
    let pts: Vec<(f64, f64, &Point)> = points
        .iter()
        .filter(|p| p.val_acc.is_finite() && !p.coords.is_empty())
        .map(|p| (xs.x(&p.coords[0]), 100.0 * p.val_acc, p))
        .collect();
    let (xl, xh, yl, yh) = xs.ranges(&pts);
    let axis_name = axis.map_or("run", Axis::name);
    let mut chart = chart(root, title, 64, xl..xh, yl..yh)?;
    let x_fmt = |v: &f64| xs.label(*v);
    chart
        .configure_mesh()
        .x_desc(if log {
            format!("{axis_name} (log scale)")
        } else {
            axis_name.to_string()
        })
        .y_desc("validation accuracy (%)")
        .x_labels(if numeric { 10 } else { xs.values.len() * 2 + 1 })
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for (s, name) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let mut mine: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.2.series == s)
            .map(|p| (p.0, p.1))
            .collect();
        if mine.is_empty() {
            continue;
        }
        mine.sort_by(|a, b| a.0.total_cmp(&b.0));
        if series.len() == 1 && mine.len() > 1 && grid_line {
            // One series over a grid: the line shows the trend.
            chart
                .draw_series(LineSeries::new(
                    mine.clone(),
                    color.mix(0.5).stroke_width(1),
                ))
                .map_err(err)?;
        }
        let marker = s;
        chart
            .draw_series(mine.iter().map(move |&(x, y)| -> DynElement<_, _> {
                if marker % 2 == 0 {
                    Circle::new((x, y), 6, color.filled()).into_dyn()
                } else {
                    TriangleMarker::new((x, y), 8, color.filled()).into_dyn()
                }
            }))
            .map_err(err)?
            .label(name.to_string())
            .legend(move |(x, y)| -> DynElement<_, _> {
                if marker % 2 == 0 {
                    Circle::new((x + 10, y), 6, color.filled()).into_dyn()
                } else {
                    TriangleMarker::new((x + 10, y), 8, color.filled()).into_dyn()
                }
            });
    }
    let ring = RGBColor(20, 20, 20);
    chart
        .draw_series(
            pts.iter()
                .filter(|p| p.2.chosen)
                .map(|p| Circle::new((p.0, p.1), 11, ring.stroke_width(2))),
        )
        .map_err(err)?
        .label("chosen")
        .legend(move |(x, y)| Circle::new((x + 10, y), 8, ring.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Two axes that do not fill a grid (random draws): one dot per run at its
/// two values, coloured and labelled with its validation accuracy, the best ringed.
fn scatter_2d(root: &Area, title: &str, axes: &[Axis], points: &[Point]) -> Result<()> {
    let pts: Vec<&Point> = points
        .iter()
        .filter(|p| p.val_acc.is_finite() && p.coords.len() >= 2)
        .collect();
    let coord = |p: &Point, k: usize| -> Option<f64> {
        let v = p.coords[k].as_number()?;
        Some(if axes[k].is_scale() && v > 0.0 {
            v.log10()
        } else {
            v
        })
    };
    if pts
        .iter()
        .any(|p| coord(p, 0).is_none() || coord(p, 1).is_none())
    {
        return against_axis(root, title, axes.first().copied(), &["runs"], points);
    }
    let range = |k: usize| -> (f64, f64) {
        let (lo, hi) = pts
            .iter()
            .filter_map(|p| coord(p, k))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |m, v| {
                (m.0.min(v), m.1.max(v))
            });
        let pad = 0.08
            * (hi - lo).max(if axes[k].is_scale() {
                0.5
            } else {
                hi.abs().max(1.0)
            });
        if lo.is_finite() {
            (lo - pad, hi + pad)
        } else {
            (0.0, 1.0)
        }
    };
    let ((xl, xh), (yl, yh)) = (range(0), range(1));
    let accs: Vec<f64> = pts.iter().map(|p| 100.0 * p.val_acc).collect();
    let lo = accs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let caption = format!("{title}: validation accuracy (%)");
    let mut chart = chart(root, &caption, 72, xl..xh, yl..yh)?;
    let fmt = |k: usize, v: f64| -> String {
        crate::util::short_number(if axes[k].is_scale() { 10f64.powf(v) } else { v })
    };
    let desc = |k: usize| {
        if axes[k].is_scale() {
            format!("{} (log scale)", axes[k].name())
        } else {
            axes[k].name().to_string()
        }
    };
    chart
        .configure_mesh()
        .x_desc(desc(0))
        .y_desc(desc(1))
        .x_label_formatter(&|v| fmt(0, *v))
        .y_label_formatter(&|v| fmt(1, *v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let span = if hi > lo { hi - lo } else { 1.0 };
    for (p, acc) in pts.iter().zip(&accs) {
        let (x, y) = (coord(p, 0).unwrap_or(0.0), coord(p, 1).unwrap_or(0.0));
        chart
            .draw_series(std::iter::once(Circle::new(
                (x, y),
                9,
                color_scale((acc - lo) / span).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x, y))
                    + Text::new(
                        format!("{acc:.2}"),
                        (16, -8),
                        ("sans-serif", 15).into_font().color(&BLACK),
                    ),
            ))
            .map_err(err)?;
        if p.chosen {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x, y),
                    14,
                    RGBColor(230, 30, 30).stroke_width(3),
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Viridis-like colour for t in 0..1 (dark blue, green, yellow).
fn color_scale(t: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A two-axis grid: one cell per combination, coloured and labelled with its
/// validation accuracy (the mean over repeats), the best cell outlined.
fn heatmap(root: &Area, title: &str, axes: &[Axis], points: &[Point]) -> Result<()> {
    let xs = distinct(points, 0);
    let ys = distinct(points, 1);
    let mut acc = vec![vec![(0.0f64, 0usize); ys.len()]; xs.len()];
    for p in points.iter().filter(|p| p.val_acc.is_finite()) {
        let i = xs.iter().position(|v| *v == p.coords[0]).unwrap_or(0);
        let j = ys.iter().position(|v| *v == p.coords[1]).unwrap_or(0);
        acc[i][j].0 += 100.0 * p.val_acc;
        acc[i][j].1 += 1;
    }
    let cell = |i: usize, j: usize| -> Option<f64> {
        let (s, n) = acc[i][j];
        (n > 0).then(|| s / n as f64)
    };
    let all: Vec<f64> = (0..xs.len())
        .flat_map(|i| (0..ys.len()).filter_map(move |j| cell(i, j)))
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let best = (0..xs.len())
        .flat_map(|i| (0..ys.len()).map(move |j| (i, j)))
        .find(|&(i, j)| cell(i, j) == Some(hi));
    let (nx, ny) = (xs.len() as f64, ys.len() as f64);
    let caption = format!("{title}: validation accuracy (%)");
    let mut chart = chart(root, &caption, 80, 0.0..nx, 0.0..ny)?;
    let xl: Vec<String> = xs.iter().map(Value::label).collect();
    let yl: Vec<String> = ys.iter().map(Value::label).collect();
    let centre_label = |labels: &[String], v: f64| -> String {
        let k = v - 0.5;
        let i = k.round();
        if (k - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(axes[0].name())
        .y_desc(axes[1].name())
        .x_labels(2 * xs.len() + 1)
        .y_labels(2 * ys.len() + 1)
        .x_label_formatter(&|v| centre_label(&xl, *v))
        .y_label_formatter(&|v| centre_label(&yl, *v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    let span = if hi > lo { hi - lo } else { 1.0 };
    for i in 0..xs.len() {
        for j in 0..ys.len() {
            let (x0, y0) = (i as f64, j as f64);
            let (fill, text) = match cell(i, j) {
                Some(v) => (color_scale((v - lo) / span), format!("{v:.2}")),
                None => (RGBColor(220, 220, 220), "diverged".into()),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                    fill.filled(),
                )))
                .map_err(err)?;
            let light = fill.0 as u32 + fill.1 as u32 + fill.2 as u32 > 380;
            let ink = if light { BLACK } else { WHITE };
            let size = if xs.len() > 8 { 13 } else { 18 };
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (x0 + 0.5, y0 + 0.5),
                    ("sans-serif", size).into_font().color(&ink).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    ),
                )))
                .map_err(err)?;
        }
    }
    if let Some((i, j)) = best {
        let (x0, y0) = (i as f64, j as f64);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0 + 0.03, y0 + 0.03), (x0 + 0.97, y0 + 0.97)],
                RGBColor(230, 30, 30).stroke_width(4),
            )))
            .map_err(err)?;
    }
    Ok(())
}
