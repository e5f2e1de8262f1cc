//! Line charts of cost, loss and accuracy, training vs validation, per run.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::train::{LogPoint, RunOutcome};

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VAL_COLOR: RGBColor = RGBColor(214, 39, 40);

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the chart: {e:?}")
}

/// Draws `curves.png`: cost, loss and accuracy panels against the update step,
/// training and validation, titled with the run's hyperparameters.
pub fn curves(path: &Path, run: &RunOutcome) -> Result<()> {
    super::png::register_font();
    let (w, h) = (1500u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (title, body) = root.split_vertically(66);
        let mut heading = format!("{}: {}", run.config.name, run.config.describe());
        if run.status == crate::train::Status::Done {
            heading.push_str(&format!("  |  test accuracy {:.2}%", 100.0 * run.test.acc));
        }
        title
            .draw(&Text::new(
                heading,
                (16, 12),
                ("sans-serif", 22).into_font().color(&BLACK),
            ))
            .map_err(err)?;
        title
            .draw(&Text::new(
                curves_caption(run),
                (16, 40),
                ("sans-serif", 16).into_font().color(&RGBColor(90, 90, 90)),
            ))
            .map_err(err)?;
        let panels = body.split_evenly((1, 3));
        type Getter = fn(&LogPoint) -> (f64, f64);
        let specs: [(&str, Getter); 3] = [
            ("cost", |p| (p.train.cost, p.val.cost)),
            ("loss", |p| (p.train.loss, p.val.loss)),
            ("accuracy (%)", |p| (100.0 * p.train.acc, 100.0 * p.val.acc)),
        ];
        let xmax = run.history.last().map(|p| p.step).unwrap_or(1).max(1) as f64;
        for (panel, (name, get)) in panels.iter().zip(specs) {
            let pts: Vec<(f64, f64, f64)> = run
                .history
                .iter()
                .map(|p| {
                    let (a, b) = get(p);
                    (p.step as f64, a, b)
                })
                .filter(|(_, a, b)| a.is_finite() && b.is_finite())
                .collect();
            let lo = pts
                .iter()
                .map(|p| p.1.min(p.2))
                .fold(f64::INFINITY, f64::min);
            let hi = pts
                .iter()
                .map(|p| p.1.max(p.2))
                .fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if lo.is_finite() && hi > lo {
                (lo, hi)
            } else {
                (0.0, 1.0)
            };
            let pad = 0.05 * (hi - lo);
            let mut chart = ChartBuilder::on(panel)
                .caption(name, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..xmax, (lo - pad)..(hi + pad))
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("update step")
                .y_desc(name)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.2}"))
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(err)?;
            for (label, color, val) in [
                ("training", TRAIN_COLOR, false),
                ("validation", VAL_COLOR, true),
            ] {
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, if val { p.2 } else { p.1 })),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            let pos = if name.starts_with("acc") {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            };
            chart
                .configure_series_labels()
                .position(pos)
                .label_font(("sans-serif", 15))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    super::png::save_png(path, &buf, w, h)
}

/// What the curves of `run` were measured on, e.g. "training: a fixed sample of
/// 5,000 of the 45,000 training images (all of them at the last point);
/// validation: all 5,000 images". Shared by the plot and the reports.
pub fn curves_caption(run: &RunOutcome) -> String {
    let total = run
        .history
        .iter()
        .map(|p| p.train_images)
        .max()
        .unwrap_or(0);
    let least = run
        .history
        .iter()
        .map(|p| p.train_images)
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(total);
    let train = if least < total {
        format!(
            "training: a fixed sample of {} of the {} training images (all of them at the last point)",
            thousands(least),
            thousands(total)
        )
    } else {
        format!("training: all {} training images", thousands(total))
    };
    let points = run.history.len();
    format!("{train}; validation: the whole validation set; {points} logged points")
}

/// 45000 -> "45,000".
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Draws validation accuracy against lambda (log scale) for the coarse and the
/// fine sweep of a search: `series` is (label, [(lambda, val_acc 0-1)]).
pub fn lambda_scatter(path: &Path, title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> Result<()> {
    super::png::register_font();
    let (w, h) = (900u32, 520u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let pts: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|p| p.0 > 0.0 && p.1.is_finite())
            .map(|(l, a)| (l.log10(), 100.0 * a))
            .collect();
        let (xl, xh) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
            (a.0.min(p.0), a.1.max(p.0))
        });
        let (yl, yh) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
            (a.0.min(p.1), a.1.max(p.1))
        });
        let (xl, xh) = if xl.is_finite() && xh > xl {
            (xl - 0.2, xh + 0.2)
        } else {
            (-6.0, 0.0)
        };
        let (yl, yh) = if yl.is_finite() && yh > yl {
            (yl - 1.0, yh + 1.0)
        } else {
            (0.0, 100.0)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(xl..xh, yl..yh)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("lambda (log scale)")
            .y_desc("validation accuracy (%)")
            .x_label_formatter(&|v| format!("{:.0e}", 10f64.powf(*v)))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        let colors = [TRAIN_COLOR, VAL_COLOR, RGBColor(44, 160, 44)];
        for (i, (label, s)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            let p: Vec<(f64, f64)> = s
                .iter()
                .filter(|p| p.0 > 0.0 && p.1.is_finite())
                .map(|(l, a)| (l.log10(), 100.0 * a))
                .collect();
            chart
                .draw_series(
                    p.iter()
                        .map(|&(x, y)| Circle::new((x, y), 6, color.filled())),
                )
                .map_err(err)?
                .label(*label)
                .legend(move |(x, y)| Circle::new((x + 10, y), 6, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    super::png::save_png(path, &buf, w, h)
}
