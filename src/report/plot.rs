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

/// A panel's value range (0..1 when there is none) and a 5% margin for it.
fn padded(lo: f64, hi: f64) -> (f64, f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    (lo, hi, 0.05 * (hi - lo))
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
            let (lo, hi, pad) = padded(lo, hi);
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

/// One logged point of a learning-rate range test: (eta, training accuracy,
/// validation accuracy, validation loss), accuracies 0-1.
pub type RangePoint = (f64, f64, f64, f64);

/// Draws the learning-rate range test: accuracy (training and validation)
/// and validation loss against eta on a log axis, with the suggested bounds
/// as vertical lines. `points` are (eta, train acc, val acc, val loss).
pub fn lr_range(
    path: &Path,
    title: &str,
    points: &[RangePoint],
    (eta_min, eta_max): (f64, f64),
) -> Result<()> {
    super::png::register_font();
    let (w, h) = (1300u32, 520u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (head, body) = root.split_vertically(44);
        head.draw(&Text::new(
            title.to_string(),
            (16, 12),
            ("sans-serif", 21).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        let pts: Vec<&RangePoint> = points
            .iter()
            .filter(|p| p.0 > 0.0 && p.2.is_finite())
            .collect();
        let (xl, xh) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
            (a.0.min(p.0.log10()), a.1.max(p.0.log10()))
        });
        let (xl, xh) = if xl.is_finite() && xh > xl {
            (xl, xh)
        } else {
            (-5.0, 0.0)
        };
        let panels = body.split_evenly((1, 2));
        type Get = fn(&RangePoint) -> Vec<(f64, &'static str, RGBColor)>;
        let specs: [(&str, Get); 2] = [
            ("accuracy (%)", |p| {
                vec![
                    (100.0 * p.1, "training (sample)", TRAIN_COLOR),
                    (100.0 * p.2, "validation", VAL_COLOR),
                ]
            }),
            ("validation loss", |p| vec![(p.3, "validation", VAL_COLOR)]),
        ];
        for (panel, (name, get)) in panels.iter().zip(specs) {
            let ys: Vec<f64> = pts
                .iter()
                .flat_map(|p| get(p).into_iter().map(|v| v.0))
                .filter(|v| v.is_finite())
                .collect();
            let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
            // The loss explodes at the end: cap the axis at 1.5 times its start.
            let mut hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if name.contains("loss") {
                if let Some(first) = pts.first().map(|p| p.3) {
                    hi = hi.min(1.5 * first);
                }
            }
            let (lo, hi, pad) = padded(lo, hi);
            let mut chart = ChartBuilder::on(panel)
                .caption(name, ("sans-serif", 19))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(xl..xh, (lo - pad)..(hi + pad))
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("eta (log scale)")
                .x_label_formatter(&|v| crate::util::short_number(10f64.powf(*v)))
                .y_label_formatter(&|v| format!("{v:.2}"))
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(err)?;
            let series = get(pts.first().copied().unwrap_or(&(1.0, 0.0, 0.0, 0.0)));
            for (k, (_, label, color)) in series.into_iter().enumerate() {
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().filter_map(|p| {
                            let v = get(p)[k].0;
                            (v.is_finite() && v <= hi + pad).then_some((p.0.log10(), v))
                        }),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            for (eta, label, color) in [
                (eta_min, "suggested eta_min", RGBColor(44, 160, 44)),
                (eta_max, "suggested eta_max", RGBColor(148, 103, 189)),
            ] {
                let x = eta.log10();
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, lo - pad), (x, hi + pad)],
                        color.stroke_width(2),
                    )))
                    .map_err(err)?
                    .label(format!("{label} {}", crate::util::short_number(eta)))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    super::png::save_png(path, &buf, w, h)
}
