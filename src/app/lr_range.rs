//! `shallow lr-range`: the learning-rate range test (Smith 2015) that the
//! Assignment 2 bonus asks for to find the cyclical schedule's bounds. One short
//! run grows eta exponentially from --eta-lo to --eta-hi; every logged point
//! evaluates the whole validation set; `lr_range.png` plots accuracy and loss
//! against eta, and eta_min / eta_max are suggested from where the validation
//! accuracy starts to rise and where it peaks.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::args::{CommonArgs, SettingsArgs};
use super::common::{print_json, train_in_folder, Finish};
use super::train::run_folder;
use crate::report::plot::RangePoint;
use crate::train::{Control, Schedule, Status, TrainSettings};

/// Flags of `shallow lr-range`.
#[derive(Args)]
pub struct LrRangeArgs {
    /// First learning rate.
    #[arg(long, default_value_t = 1e-5)]
    pub eta_lo: f64,
    /// Last learning rate.
    #[arg(long, default_value_t = 1.0)]
    pub eta_hi: f64,
    /// Logged points (each evaluates the whole validation set).
    #[arg(long, default_value_t = 60)]
    pub points: usize,
    /// The network and data (defaults: mlp 50, lambda 0.01, batch 100, split
    /// full; --steps defaults to 2 epochs, --epochs counts epochs).
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Data, output folder (the test's own folder), display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
    /// --resume and --force.
    #[command(flatten)]
    pub again: super::common::ResumeArgs,
}

/// What the range test found, written as `lr_range.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LrRange {
    /// Suggested lowest eta: where the validation accuracy has made a tenth of
    /// its rise to the peak.
    pub eta_min: f64,
    /// Suggested highest eta: where the validation accuracy peaks.
    pub eta_max: f64,
    /// The peak validation accuracy (0-1).
    pub peak_val_acc: f64,
    /// Where the cost stopped being finite, if it did.
    pub diverged_at_eta: Option<f64>,
    /// (eta, training accuracy, validation accuracy, validation loss) per
    /// logged point after the start.
    pub points: Vec<RangePoint>,
}

/// Suggests the bounds from logged (eta, train acc, val acc, val loss) points.
pub fn suggest(points: &[RangePoint], start_acc: f64) -> Option<(f64, f64, f64)> {
    let finite: Vec<&RangePoint> = points.iter().filter(|p| p.2.is_finite()).collect();
    let peak = finite.iter().max_by(|a, b| a.2.total_cmp(&b.2))?;
    let threshold = start_acc + 0.1 * (peak.2 - start_acc);
    let first = finite.iter().find(|p| p.2 >= threshold)?;
    Some((first.0, peak.0, peak.2))
}

fn read_points(dir: &Path) -> Result<(f64, Vec<RangePoint>)> {
    let path = dir.join("metrics.csv");
    let mut r =
        csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut start = f64::NAN;
    let mut points = Vec::new();
    for row in r.deserialize::<std::collections::HashMap<String, String>>() {
        let row = row?;
        let get = |k: &str| -> f64 { row.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN) };
        if get("step") == 0.0 {
            start = get("val_acc");
        } else {
            points.push((
                get("eta"),
                get("train_acc"),
                get("val_acc"),
                get("val_loss"),
            ));
        }
    }
    Ok((start, points))
}

/// `shallow lr-range`: runs the test into `--out` and prints the suggestion.
pub fn run(a: &LrRangeArgs, control: &Control) -> Result<Finish> {
    if a.points == 0 {
        bail!("--points 0: log at least one point");
    }
    let base = TrainSettings {
        lambda: 0.01,
        ..TrainSettings::sweep_default()
    }
    .for_data(crate::data::probe(&a.common.data.source())?);
    let mut settings = a.settings.settings();
    if settings.eta.is_some()
        || settings.eta_min.is_some()
        || settings.eta_max.is_some()
        || settings.cycles.is_some()
    {
        bail!("lr-range sets eta itself: give its range with --eta-lo and --eta-hi");
    }
    settings.schedule = Some(crate::train::ScheduleKind::Fixed);
    let s = settings.train_settings(TrainSettings {
        schedule: crate::train::ScheduleKind::Fixed,
        epochs: 2,
        ..base
    })?;
    let (parent, name) = run_folder(&a.common.out)?;
    let mut config = s.run_config(&name)?;
    config.schedule = Schedule::Exponential {
        eta_lo: a.eta_lo,
        eta_hi: a.eta_hi,
        steps: config.steps,
    };
    config.log_every = (config.steps / a.points).max(1);
    let run_dir = parent.join(&name);
    let mut common = a.common.clone();
    common.out = parent;
    let (r, _lock) = train_in_folder(
        config.clone(),
        &common,
        crate::folder::FolderKind::LrRange,
        a.again,
        control,
    )?;
    let r = &r;
    if r.status == Status::Interrupted {
        return Ok(Finish::Interrupted);
    }
    let (start, points) = read_points(&run_dir)?;
    let Some((eta_min, eta_max, peak)) = suggest(&points, start) else {
        bail!(
            "the validation accuracy never rose in {}: raise --eta-hi or train more --steps",
            run_dir.display()
        );
    };
    let found = LrRange {
        eta_min,
        eta_max,
        peak_val_acc: peak,
        diverged_at_eta: r.diverged.map(|d| d.eta),
        points,
    };
    crate::util::write_json(&run_dir.join("lr_range.json"), &found)?;
    crate::report::plot::lr_range(
        &run_dir.join("lr_range.png"),
        &format!("Learning-rate range test: {}", config.describe()),
        &found.points,
        (found.eta_min, found.eta_max),
    )?;
    if a.common.json {
        print_json(&found)?;
    } else if !a.common.quiet {
        use crate::util::short_number as n;
        crate::outln!(
            "suggested: --eta-min {} --eta-max {} (validation accuracy peaks at {:.2}% there{})\n  \
             lr_range.png and lr_range.json in {}",
            n(eta_min),
            n(eta_max),
            100.0 * peak,
            found
                .diverged_at_eta
                .map_or(String::new(), |e| format!("; the cost diverged at eta {}", n(e))),
            run_dir.display()
        )?;
    }
    Ok(Finish::Done)
}
