//! Flags shared by several commands: where the data is, where results go,
//! the split and its preprocessing, and the shape of a sweep.

use std::path::PathBuf;

use clap::Args;

use crate::data::{SplitKind, Whitening};
use crate::nn::{Loss, ModelKind, Precision};
use crate::sweep::plan::SweepSettings;
use crate::train::ScheduleKind;

/// Data, output, display and cores: every command that trains.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Where the data is.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output folder.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Cores to use (BLAS threads and parallel runs); default all.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Where the CIFAR-10 files are.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// CIFAR-10 folder (else $CIFAR10_DIR, else ./data/cifar-10-batches-bin).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Every setting of a training run, each optional: `train` fills the rest
/// from its defaults (Assignment 1), `sweep` and `search` from a TOML file and
/// theirs (Assignment 2's network, cyclical, split full).
#[derive(Args, Clone, Default)]
pub struct SettingsArgs {
    /// Network: linear or mlp [train: linear; sweep: mlp].
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Hidden widths of the mlp, e.g. 50 or 100,50 [50].
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Output loss: ce or bce [ce].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// L2 penalty lambda [train: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
    /// Schedule: fixed, decay or cyclic [inferred from the settings given:
    /// --eta/--epochs fixed, --decay-* decay, --cycles/--ns/--eta-min/--eta-max
    /// cyclic; else train: fixed, sweep: cyclic].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Fixed learning rate, or the initial one with --decay-factor [0.001].
    #[arg(long, allow_negative_numbers = true)]
    pub eta: Option<f64>,
    /// Step decay: multiply eta by this every --decay-every epochs.
    #[arg(long)]
    pub decay_factor: Option<f64>,
    /// Step decay: epochs between decays [10].
    #[arg(long)]
    pub decay_every: Option<usize>,
    /// Epochs of the fixed and decay schedules [40].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Update steps (overrides --epochs and --cycles).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Cyclical schedule: number of cycles [train: 1; sweep: 2].
    #[arg(long)]
    pub cycles: Option<usize>,
    /// Cyclical schedule: lowest eta [1e-5].
    #[arg(long, allow_negative_numbers = true)]
    pub eta_min: Option<f64>,
    /// Cyclical schedule: highest eta [1e-1].
    #[arg(long, allow_negative_numbers = true)]
    pub eta_max: Option<f64>,
    /// Cyclical schedule: half-cycle steps n_s; 0: 2 floor(n_train / batch)
    /// [train: 500; sweep: 0].
    #[arg(long)]
    pub ns: Option<usize>,
    /// Mini-batch size [100].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Data split: a1 (batch 1 / batch 2 / test) or full (batches 1-5, the
    /// last --n-val validate) [train: a1; sweep: full].
    #[arg(long, value_enum)]
    pub split: Option<SplitKind>,
    /// Validation images held out (split full) [5000].
    #[arg(long)]
    pub n_val: Option<usize>,
    /// Use only the first N training images.
    #[arg(long)]
    pub n_train: Option<usize>,
    /// Whiten the standardised inputs: pca or zca, fitted on the training
    /// images only (the decomposition is cached, see docs/data.md) [none].
    #[arg(long, value_enum)]
    pub whiten: Option<Whitening>,
    /// Added to every eigenvalue of the training covariance before whitening
    /// (the eigenvalues of the standardised features sum to 3072) [10].
    #[arg(long)]
    pub whiten_eps: Option<f64>,
    /// Base seed of initialisation and shuffling [1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Logged points per cycle (cyclical; fixed and decay log every epoch);
    /// 0: only the start and the end [train: 10; sweep: 5].
    #[arg(long)]
    pub log_points: Option<usize>,
    /// Training images the intermediate logged points evaluate: N (a fixed
    /// sample chosen from the seed) or `all`. The validation set, and at the
    /// last point the training set, are always evaluated in full
    /// [train: 5000; sweep: 1000].
    #[arg(long, value_name = "N|all")]
    pub eval_train: Option<crate::train::EvalTrain>,
    /// Reshuffle the training set every epoch.
    #[arg(long, overrides_with = "no_shuffle")]
    pub shuffle: bool,
    /// Turn --shuffle off (where a --config file turns it on).
    #[arg(long, overrides_with = "shuffle")]
    pub no_shuffle: bool,
    /// Floating-point precision: f32, f64, or bf16 (mixed: layer 0's two big
    /// products in bf16 with f32 sums, on CPUs with AVX512-BF16) [f32].
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Save the trained weights as .npy.
    #[arg(long, overrides_with = "no_save_weights")]
    pub save_weights: bool,
    /// Turn --save-weights off (where a --config file turns it on).
    #[arg(long, overrides_with = "save_weights")]
    pub no_save_weights: bool,
    /// Augmentation: flip each training image left-right with probability 1/2.
    #[arg(long, overrides_with = "no_flip")]
    pub flip: bool,
    /// Turn --flip off (where a --config file turns it on).
    #[arg(long, overrides_with = "flip")]
    pub no_flip: bool,
    /// Augmentation: shift each training image by up to K pixels in x and y [0].
    #[arg(long, value_name = "K")]
    pub translate: Option<usize>,
    /// Augmentation: what fills the pixels a translation uncovers: zero (the
    /// mean pixel) or reflect [zero].
    #[arg(long, value_enum)]
    pub pad: Option<crate::data::Pad>,
    /// Inverted dropout: probability of dropping each hidden unit in training [0].
    #[arg(long, value_name = "P")]
    pub dropout: Option<f64>,
    /// Label smoothing: softmax targets (1 - eps) one-hot + eps / 10 [0].
    #[arg(long, value_name = "EPS")]
    pub label_smoothing: Option<f64>,
    /// Batch normalisation on every hidden layer (batch statistics in training,
    /// running averages in evaluation).
    #[arg(long, overrides_with = "no_batch_norm")]
    pub batch_norm: bool,
    /// Turn --batch-norm off (where a --config file turns it on).
    #[arg(long, overrides_with = "batch_norm")]
    pub no_batch_norm: bool,
    /// Seed-ensemble member: another initialisation with the same data order
    /// (sweep `--grid member=0:7:8:lin` trains eight in one lockstep group) [0].
    #[arg(long, value_name = "N")]
    pub member: Option<u64>,
    /// Snapshot ensemble: also evaluate the averaged softmax of the nets at the
    /// ends of the last N cycles [0].
    #[arg(long, value_name = "N")]
    pub snapshots: Option<usize>,
    /// Save the validation and test class probabilities (val_probs.npy,
    /// test_probs.npy) for ensembles across runs.
    #[arg(long, overrides_with = "no_save_probs")]
    pub save_probs: bool,
    /// Turn --save-probs off (where a --config file turns it on).
    #[arg(long, overrides_with = "save_probs")]
    pub no_save_probs: bool,
    /// SGD with momentum MU (v <- MU v + gradient, W <- W - eta v); scale the
    /// learning rates down by about 1 - MU [0: plain SGD].
    #[arg(long, value_name = "MU")]
    pub momentum: Option<f64>,
    /// Test-time flips: the averaged prediction (and --save-probs) averages
    /// each validation and test image with its mirror image.
    #[arg(long, overrides_with = "no_tta")]
    pub tta: bool,
    /// Turn --tta off (where a --config file turns it on).
    #[arg(long, overrides_with = "tta")]
    pub no_tta: bool,
}

/// A boolean flag and its `--no-` twin as a setting: on, off, or not given
/// (so a TOML file's `shuffle = true` can be switched off on the command line).
fn on_off(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        (false, false) => None,
    }
}

impl SettingsArgs {
    /// The flags given, as settings (no axes).
    pub fn settings(&self) -> SweepSettings {
        SweepSettings {
            model: self.model,
            hidden: self.hidden.clone(),
            loss: self.loss,
            lambda: self.lambda,
            schedule: self.schedule,
            eta: self.eta,
            decay_factor: self.decay_factor,
            decay_every: self.decay_every,
            epochs: self.epochs,
            steps: self.steps,
            cycles: self.cycles,
            ns: self.ns,
            eta_min: self.eta_min,
            eta_max: self.eta_max,
            batch: self.batch,
            split: self.split,
            n_val: self.n_val,
            n_train: self.n_train,
            whiten: self.whiten,
            whiten_eps: self.whiten_eps,
            seed: self.seed,
            log_points: self.log_points,
            shuffle: on_off(self.shuffle, self.no_shuffle),
            precision: self.precision,
            eval_train: self.eval_train,
            save_weights: on_off(self.save_weights, self.no_save_weights),
            flip: on_off(self.flip, self.no_flip),
            translate: self.translate,
            pad: self.pad,
            dropout: self.dropout,
            label_smoothing: self.label_smoothing,
            batch_norm: on_off(self.batch_norm, self.no_batch_norm),
            member: self.member,
            snapshots: self.snapshots,
            save_probs: on_off(self.save_probs, self.no_save_probs),
            momentum: self.momentum,
            tta: on_off(self.tta, self.no_tta),
            ..Default::default()
        }
    }
}

/// `--grid`'s help, listing every axis a sweep accepts (from the one list
/// of axes, so that it cannot leave one out).
fn grid_help() -> String {
    let names: Vec<&str> = crate::train::settings::AXES
        .iter()
        .map(|a| a.name())
        .collect();
    format!(
        "Grid axis, repeatable: NAME=V1,V2,... or NAME=LO:HI:N[:log|lin] (log by default on lambda \
         and learning rates). Every combination of the grid axes is trained. Axes: {} (hidden as 50 or \
         100x50, loss as ce,bce, booleans as 0,1, several seeds are repeats)",
        names.join(", ")
    )
}

/// The axes of a sweep: grids, ranges and random draws over any setting.
#[derive(Args, Clone, Default)]
pub struct AxesArgs {
    /// Grid axis, repeatable (see the help's list of axes).
    #[arg(long, value_name = "NAME=VALUES", help = grid_help())]
    pub grid: Vec<String>,
    /// Random axis, repeatable: NAME=LO:HI[:log|lin], drawn --draws times
    /// (log-uniform on lambda and learning rates), jointly with the other
    /// random axes, seeded by --seed.
    #[arg(long, value_name = "NAME=LO:HI")]
    pub random: Vec<String>,
    /// Random draws [8].
    #[arg(long)]
    pub draws: Option<usize>,
    /// Shorthand: --grid lambda=V1,V2,...
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["lambda_grid", "lambda_random"])]
    pub lambdas: Option<Vec<f64>>,
    /// Shorthand: N lambdas log-spaced in [LO, HI] (--grid lambda=LO:HI:N:log).
    #[arg(long, value_name = "LO:HI:N", conflicts_with = "lambda_random")]
    pub lambda_grid: Option<String>,
    /// Shorthand: N lambdas log-uniform at random in [LO, HI]
    /// (--random lambda=LO:HI --draws N).
    #[arg(long, value_name = "LO:HI:N")]
    pub lambda_random: Option<String>,
}

impl AxesArgs {
    /// The axes as settings; `NAME=VALUES` that does not parse is refused.
    pub fn settings(&self) -> anyhow::Result<SweepSettings> {
        let table = |items: &[String], flag: &str| -> anyhow::Result<Option<toml::Table>> {
            let mut t = toml::Table::new();
            for item in items {
                let Some((name, values)) = item.split_once('=') else {
                    anyhow::bail!(
                        "{flag} {item}: expected NAME=VALUES, e.g. {flag} eta_max=0.05,0.1,0.2"
                    );
                };
                let axis = crate::train::Axis::parse(name)?;
                if t.insert(axis.name().into(), values.trim().into()).is_some() {
                    anyhow::bail!("{flag} {}: the axis is given twice", axis.name());
                }
            }
            Ok((!t.is_empty()).then_some(t))
        };
        Ok(SweepSettings {
            grid: table(&self.grid, "--grid")?,
            random: table(&self.random, "--random")?,
            draws: self.draws,
            lambdas: self.lambdas.clone(),
            lambda_grid: self.lambda_grid.clone(),
            lambda_random: self.lambda_random.clone(),
            ..Default::default()
        })
    }
}

/// Running on a Slurm cluster: `--slurm N` writes job scripts (and with
/// `--submit` submits them) instead of training here.
#[derive(Args, Clone, Default)]
pub struct SlurmArgs {
    /// Write Slurm job scripts into --out/slurm instead of training here: an
    /// sbatch array of N tasks, one shard each, and the job that merges them
    /// (a search: coarse, fine and final arrays, then its report).
    #[arg(long, value_name = "N")]
    pub slurm: Option<usize>,
    /// With --slurm: also submit the jobs with sbatch and print their ids.
    #[arg(long, requires = "slurm")]
    pub submit: bool,
    /// With --slurm: cores per array task, the --threads of its shard [4].
    #[arg(long, requires = "slurm", value_name = "N")]
    pub cpus_per_task: Option<usize>,
    /// With --slurm: time limit per task, as sbatch takes it (e.g. 1:00:00).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// With --slurm: memory per task, as sbatch takes it (e.g. 8G).
    #[arg(long, requires = "slurm")]
    pub mem: Option<String>,
    /// With --slurm: the partition.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: the account charged.
    #[arg(long, requires = "slurm")]
    pub account: Option<String>,
}

impl SlurmArgs {
    /// The jobs' resources, checked.
    pub fn resources(&self) -> anyhow::Result<crate::sweep::slurm::Resources> {
        let cpus = self.cpus_per_task.unwrap_or(4);
        if cpus == 0 || cpus > 1024 {
            anyhow::bail!("--cpus-per-task {cpus}: give between 1 and the cores of a node");
        }
        for (flag, v) in [
            ("--time", &self.time),
            ("--mem", &self.mem),
            ("--partition", &self.partition),
            ("--account", &self.account),
        ] {
            if let Some(v) = v {
                if v.is_empty()
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == '\'' || c == '"')
                {
                    anyhow::bail!("{flag} {v:?}: give one word, as sbatch takes it");
                }
            }
        }
        Ok(crate::sweep::slurm::Resources {
            cpus_per_task: cpus,
            time: self.time.clone(),
            mem: self.mem.clone(),
            partition: self.partition.clone(),
            account: self.account.clone(),
            coretype: crate::sweep::slurm::Resources::user_coretype(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    fn settings(args: &[&str]) -> SweepSettings {
        let cmd = SettingsArgs::augment_args(clap::Command::new("shallow"));
        let m = cmd.try_get_matches_from(args).unwrap();
        SettingsArgs::from_arg_matches(&m).unwrap().settings()
    }

    /// A TOML file's `shuffle = true` (any boolean) is switched off by
    /// `--no-shuffle`; the last of `--X` and `--no-X` wins.
    /// `sweep --help` lists every axis the sweep accepts.
    #[test]
    fn the_grid_help_lists_every_axis() {
        let help = grid_help();
        for a in crate::train::settings::AXES {
            assert!(help.contains(a.name()), "{} missing from: {help}", a.name());
        }
    }

    #[test]
    fn booleans_have_a_no_flag_that_overrides_the_file() {
        let file: SweepSettings =
            toml::from_str("shuffle = true\nflip = true\ntta = true").unwrap();
        let merged = settings(&[
            "shallow",
            "--no-shuffle",
            "--flip",
            "--no-flip",
            "--no-tta",
            "--tta",
        ])
        .over(file)
        .unwrap();
        assert_eq!(merged.shuffle, Some(false));
        assert_eq!(merged.flip, Some(false));
        assert_eq!(merged.tta, Some(true));
        let untouched = settings(&["shallow"]).over(toml::from_str("shuffle = true").unwrap());
        assert_eq!(untouched.unwrap().shuffle, Some(true));
    }
}
