//! The rung picture of a pruned search (`rungs.png`): validation accuracy
//! against the budget, one line per configuration from rung to rung, ending
//! where it was pruned; the survivors' lines carry on to the top budget.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::sweep::halving::RungRecord;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the rung picture: {e:?}")
}

const PRUNED: RGBColor = RGBColor(150, 150, 150);
const FINISHED: RGBColor = RGBColor(31, 119, 180);
const BEST: RGBColor = RGBColor(214, 39, 40);

/// One configuration's points: (budget, validation accuracy %) per rung.
type Line = Vec<(f64, f64)>;

/// Every rung's budget, once each, increasing.
fn all_budgets(ladder: &crate::sweep::ladder::Ladder) -> Vec<usize> {
    let mut budgets: Vec<usize> = ladder
        .brackets
        .iter()
        .flat_map(|b| b.budgets.iter().copied())
        .collect();
    budgets.sort_unstable();
    budgets.dedup();
    budgets
}

/// Per configuration: (budget, validation %) at each rung it reached, whether
/// it finished at the top budget; and the best finished one.
fn rung_lines(record: &RungRecord) -> (Vec<Line>, Vec<bool>, Option<usize>) {
    let ladder = &record.ladder;
    let n = ladder.configurations();
    let mut lines: Vec<Line> = vec![Vec::new(); n];
    let mut finished = vec![false; n];
    let mut rungs: Vec<_> = record.rungs.iter().collect();
    rungs.sort_by_key(|r| (r.bracket, r.rung));
    for rung in &rungs {
        let last = rung.rung + 1 == ladder.brackets[rung.bracket].budgets.len();
        for e in &rung.entries {
            if e.val_acc.is_finite() {
                lines[e.index].push((rung.budget as f64, 100.0 * e.val_acc));
            }
            finished[e.index] |= last && e.kept;
        }
    }
    let best = (0..n)
        .filter(|&i| finished[i])
        .filter_map(|i| lines[i].last().map(|p| (i, p.1)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i);
    (lines, finished, best)
}

/// Draws `path`: every configuration's validation accuracy at each rung it
/// reached (budget on a log scale), pruned ones grey and ending with a cross,
/// finished ones blue, the best finished one red.
pub fn rungs_png(path: &Path, record: &RungRecord) -> Result<()> {
    super::png::register_font();
    let ladder = &record.ladder;
    let n = ladder.configurations();
    let (lines, finished, best) = rung_lines(record);
    let ys: Vec<f64> = lines.iter().flatten().map(|p| p.1).collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 100.0)
    };
    let pad = 0.06 * (hi - lo);
    let (xmin, xmax) = (ladder.min as f64 / 1.25, ladder.max as f64 * 1.25);
    let (w, h) = (1000u32, 620u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = match ladder.method {
            crate::sweep::ladder::Method::Halving => "Successive halving",
            crate::sweep::ladder::Method::Hyperband => "Hyperband",
        }
        .to_string()
            + ": validation accuracy at each rung";
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((xmin..xmax).log_scale(), (lo - pad)..(hi + pad))
            .map_err(err)?;
        let unit = ladder.unit;
        let budgets = all_budgets(ladder);
        chart
            .configure_mesh()
            .x_desc(format!("budget ({}, log scale)", unit.name()))
            .y_desc("validation accuracy (%)")
            .x_labels(40)
            .x_label_formatter(&|v| {
                let r = v.round();
                if (v - r).abs() < 1e-6 && budgets.contains(&(r as usize)) {
                    format!("{r:.0}")
                } else {
                    String::new()
                }
            })
            .disable_x_mesh()
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        // A vertical line at each rung's budget.
        for &b in &budgets {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(b as f64, lo - pad), (b as f64, hi + pad)],
                    RGBColor(215, 215, 215).stroke_width(1),
                )))
                .map_err(err)?;
        }
        // Pruned first, then finished, the best last: on top.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (finished[i], Some(i) == best));
        let mut legend = [false; 3];
        for i in order {
            let pts = &lines[i];
            if pts.is_empty() {
                continue;
            }
            let (color, width, kind) = match (Some(i) == best, finished[i]) {
                (true, _) => (BEST, 3, 2),
                (false, true) => (FINISHED, 2, 1),
                _ => (PRUNED, 1, 0),
            };
            let style = color.stroke_width(width);
            let series = chart
                .draw_series(LineSeries::new(pts.iter().copied(), style))
                .map_err(err)?;
            if !legend[kind] {
                legend[kind] = true;
                let label = ["pruned at a rung", "trained to the top budget", "best"][kind];
                series
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
            let &(x, y) = pts.last().expect("not empty");
            if finished[i] {
                chart
                    .draw_series(std::iter::once(Circle::new((x, y), 4, color.filled())))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(std::iter::once(Cross::new(
                        (x, y),
                        4,
                        color.stroke_width(1),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    super::png::save_png(path, &buf, w, h)
}
