//! `shallow train`: one network, one run folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use super::args::{CommonArgs, SplitArgs};
use super::common::{print_json, run_and_write, Finish};
use crate::nn::{Loss, ModelKind, Precision};
use crate::train::{Control, RunConfig, Schedule, Status};

/// Flags of `shallow train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Network: linear (Assignment 1) or mlp (Assignment 2).
    #[arg(long, value_enum, default_value = "linear")]
    pub model: ModelKind,
    /// Hidden widths of the mlp, e.g. 50 or 100,50.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    pub hidden: Vec<usize>,
    /// Output loss.
    #[arg(long, value_enum, default_value = "ce")]
    pub loss: Loss,
    /// L2 penalty lambda.
    #[arg(long = "lambda", default_value_t = 0.0, allow_negative_numbers = true)]
    pub lambda: f64,
    /// Fixed learning rate (or the initial one with --decay-factor).
    #[arg(long, default_value_t = 0.001, allow_negative_numbers = true)]
    pub eta: f64,
    /// Step decay: multiply eta by this every --decay-every epochs.
    #[arg(long)]
    pub decay_factor: Option<f64>,
    /// Epochs between decays.
    #[arg(long, default_value_t = 10)]
    pub decay_every: usize,
    /// Cyclical schedule: number of cycles (selects the cyclical schedule).
    #[arg(long)]
    pub cycles: Option<usize>,
    /// Cyclical schedule: lowest eta.
    #[arg(long, default_value_t = 1e-5)]
    pub eta_min: f64,
    /// Cyclical schedule: highest eta.
    #[arg(long, default_value_t = 1e-1)]
    pub eta_max: f64,
    /// Cyclical schedule: half-cycle steps n_s (0: 2 floor(n_train / batch)).
    #[arg(long, default_value_t = 500)]
    pub ns: usize,
    /// Logged points per cycle (cyclical schedule; 0: only the start and the end).
    #[arg(long, default_value_t = 10)]
    pub log_points: usize,
    /// Training images the intermediate logged points evaluate: N (a fixed
    /// sample chosen from the seed) or `all`. The validation set, and at the
    /// last point the training set, are always evaluated in full.
    #[arg(long, value_name = "N|all", default_value = "5000")]
    pub eval_train: crate::train::EvalTrain,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Epochs (fixed and step-decay schedules).
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Update steps (overrides --epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Reshuffle the training set every epoch.
    #[arg(long)]
    pub shuffle: bool,
    /// Base seed of initialisation and shuffling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Data split and preprocessing.
    #[command(flatten)]
    pub split: SplitArgs,
    /// Floating-point precision.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Save the trained weights as .npy.
    #[arg(long)]
    pub save_weights: bool,
    /// Data, output folder, display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Run name: the run goes into --out/NAME. Without it, --out is the run's
    /// own folder and names the run.
    #[arg(long)]
    pub name: Option<String>,
}

/// Splits a run folder into (parent, folder name), e.g. `out/a2` -> (`out`, `a2`).
pub fn run_folder(out: &Path) -> Result<(PathBuf, String)> {
    // `.` and `..` have no name of their own: resolve them first.
    let path = match out.file_name() {
        Some(_) => out.to_path_buf(),
        None => out
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))?,
    };
    let name = path.file_name().ok_or_else(|| {
        anyhow::anyhow!(
            "--out {}: name a folder for the run, e.g. --out out/run",
            out.display()
        )
    })?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name.to_string_lossy().into_owned()))
}

/// Builds the run configuration of `shallow train` from its flags.
pub fn train_config(a: &TrainArgs) -> Result<RunConfig> {
    let split = a.split.spec();
    let n_train = split.train_len();
    let per_epoch = (n_train / a.batch.max(1)).max(1);
    let (schedule, steps, log_every) = if let Some(cycles) = a.cycles {
        let ns = if a.ns == 0 { 2 * per_epoch } else { a.ns };
        if cycles == 0 {
            bail!("--cycles 0: train at least one cycle");
        }
        let every = (2 * ns).checked_div(a.log_points).map_or(0, |e| e.max(1));
        (
            Schedule::Cyclic {
                eta_min: a.eta_min,
                eta_max: a.eta_max,
                ns,
            },
            2 * ns * cycles,
            every,
        )
    } else {
        let schedule = match a.decay_factor {
            Some(factor) => Schedule::StepDecay {
                eta: a.eta,
                factor,
                every_steps: a.decay_every.max(1) * per_epoch,
            },
            None => Schedule::Fixed { eta: a.eta },
        };
        (schedule, a.steps.unwrap_or(a.epochs * per_epoch), per_epoch)
    };
    Ok(RunConfig {
        name: a.name.clone().unwrap_or_else(|| "run".into()),
        hidden: if a.model == ModelKind::Linear {
            vec![]
        } else {
            a.hidden.clone()
        },
        loss: a.loss,
        lambda: a.lambda,
        schedule,
        batch: a.batch,
        steps,
        shuffle: a.shuffle,
        seed: a.seed,
        split,
        precision: a.precision,
        log_every,
        save_weights: a.save_weights,
        eval_train: a.eval_train,
    })
}

/// Trains the run of `a` and writes its folder; prints its figures.
pub fn run(a: &TrainArgs, control: &Control) -> Result<Finish> {
    let mut config = train_config(a)?;
    // Without --name, --out is the run folder itself: write into its parent
    // under its own name.
    let mut common = a.common.clone();
    if a.name.is_none() {
        let (parent, name) = run_folder(&a.common.out)?;
        config.name = name;
        common.out = parent;
    }
    let run_dir = common.out.join(&config.name);
    config.validate(config.split.train_len())?;
    crate::util::create_dir(&run_dir)?;
    let results = run_and_write(vec![config], &common, control)?;
    let r = &results[0];
    if a.common.json {
        print_json(r)?;
    } else if let (Some(d), false) = (r.diverged, a.common.quiet) {
        println!(
            "{} diverged at step {} (eta {:.3e}): the cost is not finite; lower the learning rate. \
             What was recorded is in {}",
            r.name,
            d.step,
            d.eta,
            run_dir.display()
        );
    } else if !a.common.quiet {
        println!(
            "{}: train {:.2}%  validation {:.2}%  test {:.2}%\n  {} steps, {:.3} ms/step, {:.1} s; files in {}",
            r.name,
            100.0 * r.train_acc,
            100.0 * r.val_acc,
            100.0 * r.test_acc,
            r.steps,
            r.ms_per_step,
            r.wall_s,
            run_dir.display()
        );
    }
    Ok(match r.status {
        Status::Done => Finish::Done,
        Status::Interrupted => Finish::Interrupted,
        Status::Diverged => Finish::Failed,
    })
}
