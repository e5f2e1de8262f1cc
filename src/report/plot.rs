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
    super::register_font();
    let (w, h) = (1500u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (title, body) = root.split_vertically(44);
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
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    TRAIN_COLOR.stroke_width(2),
                ))
                .map_err(err)?
                .label("training")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], TRAIN_COLOR.stroke_width(2))
                });
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.2)),
                    VAL_COLOR.stroke_width(2),
                ))
                .map_err(err)?
                .label("validation")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], VAL_COLOR.stroke_width(2))
                });
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
    super::save_png(path, &buf, w, h)
}
